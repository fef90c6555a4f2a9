//! Sessions (`jfs_session2`, `jfs_sustained`) and open/close.

use async_trait::async_trait;
use meta_api::backend::Sessions;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::sql::SqliteConnection;
use meta_api::{
    Attr, Context, Heartbeat, Ino, MetaError, Result, Session, SessionInfo, Timestamp,
    SESSION_TTL_SECS,
};

use crate::engine::node::must_node;
use crate::engine::now_secs;
use crate::engine::sustain;
use crate::txn::db_err;
use crate::SqliteMeta;

/// Inserts (or refreshes) the row of session `sid`.
async fn put_session(c: &mut SqliteConnection, sid: u64, expire: i64, info: &[u8]) -> Result<()> {
    crate::sql::query(
        "INSERT INTO jfs_session2 (sid, expire, info) VALUES (?, ?, ?) \
         ON CONFLICT (sid) DO UPDATE SET expire = excluded.expire, info = excluded.info",
    )
    .bind(sid as i64)
    .bind(expire)
    .bind(info)
    .execute(&mut *c)
    .await
    .map_err(db_err)?;
    Ok(())
}

impl SqliteMeta {
    /// [`meta_api::perm::check_open`] on a reader connection, outside any write transaction.
    async fn check_open_read(&self, ctx: &Context, attr: &Attr, flags: i32) -> Result<()> {
        let rule = match meta_api::acl::rule_for_check(attr) {
            Some(_) if !ctx.is_root() => {
                let mut conn = self.db.pool.acquire().await.map_err(db_err)?;
                self.check_rule(&mut conn, ctx, Some(attr)).await?
            }
            _ => None,
        };
        meta_api::perm::check_open(ctx, attr, rule.as_deref(), flags)
    }

    /// Forgets one open of `ino`; the last one lets go of a sustained row, if any.
    async fn release_open(&self, ino: Ino) -> Result<()> {
        let sid = self.session_id();
        if !self.client.close(ino) || sid == 0 {
            return Ok(());
        }
        let now = now_secs();
        self.db
            .txn(|c, _| Box::pin(async move { sustain::release(c, sid, ino, now).await.map(drop) }))
            .await
    }
}

#[async_trait]
impl Sessions for SqliteMeta {
    async fn new_session(&self, info: &SessionInfo) -> Result<u64> {
        self.fmt().await?;
        if self.session_id() != 0 {
            return Err(MetaError::InvalidArgument(
                "this client already has a session",
            ));
        }
        let json = info.to_json();
        *self.info.lock().unwrap_or_else(|p| p.into_inner()) = info.clone();
        let expire = now_secs() + SESSION_TTL_SECS;
        let json = &json;
        let sid = self
            .db
            .txn(|c, _| {
                Box::pin(async move {
                    let row = crate::sql::query(
                        "INSERT INTO jfs_counter (name, value) VALUES ('nextSession', 1) \
                         ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value",
                    )
                    .fetch_one(&mut *c)
                    .await
                    .map_err(db_err)?;
                    let sid = row.try_get::<i64, _>(0).map_err(db_err)? as u64;
                    put_session(c, sid, expire, json).await?;
                    Ok(sid)
                })
            })
            .await?;
        self.sid.store(sid, Ordering::Release);
        sustain::register(&self.location, sid, Arc::downgrade(&self.client));
        Ok(sid)
    }

    /// Extends the session and lets go of sustained inodes this client does not have open;
    /// when a reaper took the session meanwhile, its row comes back under the same id (as
    /// JuiceFS does) and the answer is `Reregistered`.
    async fn heartbeat(&self) -> Result<Heartbeat> {
        self.fmt().await?;
        let sid = self.session_id();
        if sid == 0 {
            return Err(MetaError::BadHandle);
        }
        let info = self.info.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let json = info.to_json();
        let json = &json;
        let now = now_secs();
        let client = &self.client;
        let beat = self
            .db
            .txn(|c, _| {
                Box::pin(async move {
                    let done =
                        crate::sql::query("UPDATE jfs_session2 SET expire = ? WHERE sid = ?")
                            .bind(now + SESSION_TTL_SECS)
                            .bind(sid as i64)
                            .execute(&mut *c)
                            .await
                            .map_err(db_err)?;
                    if done.rows_affected() == 0 {
                        put_session(c, sid, now + SESSION_TTL_SECS, json).await?;
                        return Ok(Heartbeat::Reregistered);
                    }
                    for ino in sustain::sustained_by(c, sid).await? {
                        if !client.hold_if_open(ino) {
                            sustain::release(c, sid, ino, now).await?;
                        }
                    }
                    Ok(Heartbeat::Extended)
                })
            })
            .await?;
        if beat == Heartbeat::Reregistered {
            // The reaper forgot this session; the files still open here are asked again
            // by this process's unlinkers from now on.
            sustain::register(&self.location, sid, Arc::downgrade(&self.client));
        }
        Ok(beat)
    }

    async fn close_session(&self) -> Result<()> {
        self.fmt().await?;
        let sid = self.session_id();
        if sid == 0 {
            return Ok(());
        }
        let now = now_secs();
        meta_api::backend::end_session(&self.sid, sid, |sid| {
            self.db
                .txn(move |c, _| Box::pin(async move { sustain::end_session(c, sid, now).await }))
        })
        .await?;
        sustain::unregister(&self.location, sid);
        self.client.clear();
        Ok(())
    }

    async fn list_sessions(&self) -> Result<Vec<Session>> {
        self.fmt().await?;
        let rows = crate::sql::query(
            "SELECT s.sid, s.expire, s.info, t.inode FROM jfs_session2 s \
             LEFT JOIN jfs_sustained t ON t.sid = s.sid ORDER BY s.sid, t.inode",
        )
        .fetch_all(&self.db.pool)
        .await
        .map_err(db_err)?;
        let mut out: Vec<Session> = Vec::new();
        for r in rows {
            let sid = r.try_get::<i64, _>(0).map_err(db_err)? as u64;
            if out.last().is_none_or(|s| s.sid != sid) {
                let info: Option<Vec<u8>> = r.try_get(2).map_err(db_err)?;
                out.push(Session {
                    sid,
                    expire: r.try_get(1).map_err(db_err)?,
                    info: SessionInfo::from_json_lenient(info.as_deref()),
                    sustained: Vec::new(),
                });
            }
            let ino: Option<i64> = r.try_get(3).map_err(db_err)?;
            if let (Some(s), Some(ino)) = (out.last_mut(), ino) {
                s.sustained.push(ino as u64);
            }
        }
        Ok(out)
    }

    /// Ends every session whose expiry is before `now` — this client's own too, whose
    /// next heartbeat brings its row back (as JuiceFS does).
    async fn reap_stale_sessions(&self, now: Timestamp) -> Result<usize> {
        self.fmt().await?;
        let reaped = self
            .db
            .txn(|c, _| {
                Box::pin(async move {
                    let rows = crate::sql::query("SELECT sid FROM jfs_session2 WHERE expire < ?")
                        .bind(now.sec)
                        .fetch_all(&mut *c)
                        .await
                        .map_err(db_err)?;
                    let mut sids = Vec::with_capacity(rows.len());
                    for r in rows {
                        let sid = r.try_get::<i64, _>(0).map_err(db_err)? as u64;
                        sustain::end_session(c, sid, now.sec).await?;
                        sids.push(sid);
                    }
                    Ok(sids)
                })
            })
            .await?;
        let me = self.session_id();
        for sid in reaped.iter().filter(|&&sid| sid != me) {
            sustain::unregister(&self.location, *sid);
        }
        Ok(reaped.len())
    }

    /// Records the open first, then checks the inode: see `engine/sustain.rs` for why the
    /// first open of an inode reads it inside a write transaction.
    async fn open(&self, ctx: &Context, ino: Ino, flags: i32) -> Result<Attr> {
        self.fmt().await?;
        let first = !self.client.open.is_open(ino);
        self.client.open.open(ino);
        let checked = if first {
            self.db
                .txn(|c, _| {
                    Box::pin(async move {
                        let attr = must_node(c, ino).await?;
                        let rule = self.check_rule(c, ctx, Some(&attr)).await?;
                        meta_api::perm::check_open(ctx, &attr, rule.as_deref(), flags)?;
                        Ok(attr)
                    })
                })
                .await
        } else {
            match self.read_node(ino).await {
                Ok(Some(attr)) => self.check_open_read(ctx, &attr, flags).await.map(|()| attr),
                Ok(None) => Err(MetaError::NotFound),
                Err(e) => Err(e),
            }
        };
        if checked.is_err() {
            self.release_open(ino).await?;
        }
        checked
    }

    async fn close(&self, ino: Ino) -> Result<()> {
        self.fmt().await?;
        self.release_open(ino).await
    }
}
