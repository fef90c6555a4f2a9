//! File locks in JuiceFS's `jfs_flock` and `jfs_plock` tables.
//!
//! Both tables hold one row per (inode, session, owner): `jfs_flock.ltype` is the byte
//! `'R'` or `'W'` of a BSD lock, `jfs_plock.records` the owner's POSIX ranges as JuiceFS
//! packs them ([`meta_api::locks`]). Owners are stored as the `i64` with the same bits, as
//! JuiceFS's schema declares the column. Closing or reaping a session deletes its rows
//! (`sustain::end_session`). Each attempt is one transaction; a blocking request sleeps
//! between attempts with nothing held.

use crate::sql::SqliteConnection;
use async_trait::async_trait;
use meta_api::backend::Locks;
use meta_api::locks::{
    decode_records, encode_records, find_conflict, flock_outcome, setlk_outcome, PlockRecord,
};
use meta_api::{Ino, LockOwner, LockType, MetaError, PlockRequest, Result};

use crate::txn::db_err;
use crate::SqliteMeta;

/// `missing` unless the one-parameter query `sql` (`SELECT 1 … WHERE key = ?`) finds a row
/// for `id`.
async fn need_row(c: &mut SqliteConnection, sql: &str, id: u64, missing: MetaError) -> Result<()> {
    let found = crate::sql::query(sql)
        .bind(id as i64)
        .fetch_optional(&mut *c)
        .await
        .map_err(db_err)?;
    found.map(|_| ()).ok_or(missing)
}

/// `SessionLost` unless session `sid` has its row (a lock of a reaped session would never
/// be reaped).
async fn need_session(c: &mut SqliteConnection, sid: u64) -> Result<()> {
    let sql = "SELECT 1 FROM jfs_session2 WHERE sid = ?";
    need_row(c, sql, sid, MetaError::SessionLost).await
}

/// `NotFound` unless inode `ino` exists.
async fn need_inode(c: &mut SqliteConnection, ino: Ino) -> Result<()> {
    need_row(
        c,
        "SELECT 1 FROM jfs_node WHERE inode = ?",
        ino,
        MetaError::NotFound,
    )
    .await
}

/// The session and owner columns of a lock row.
fn owner_of(r: &crate::sql::Row) -> Result<LockOwner> {
    let sid: i64 = r.try_get(0).map_err(db_err)?;
    let owner: i64 = r.try_get(1).map_err(db_err)?;
    Ok(LockOwner::new(sid as u64, owner as u64))
}

/// Every BSD lock of `ino`.
async fn flocks_of(c: &mut SqliteConnection, ino: Ino) -> Result<Vec<(LockOwner, LockType)>> {
    let rows = crate::sql::query("SELECT sid, owner, ltype FROM jfs_flock WHERE inode = ?")
        .bind(ino as i64)
        .fetch_all(&mut *c)
        .await
        .map_err(db_err)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let code: i64 = r.try_get(2).map_err(db_err)?;
        let t = u8::try_from(code)
            .ok()
            .and_then(LockType::from_flock_byte)
            .ok_or_else(|| MetaError::Corrupt(format!("flock type {code} of inode {ino}")))?;
        out.push((owner_of(r)?, t));
    }
    Ok(out)
}

/// Every owner's POSIX locks of `ino`.
async fn plocks_of(
    c: &mut SqliteConnection,
    ino: Ino,
) -> Result<Vec<(LockOwner, Vec<PlockRecord>)>> {
    let rows = crate::sql::query("SELECT sid, owner, records FROM jfs_plock WHERE inode = ?")
        .bind(ino as i64)
        .fetch_all(&mut *c)
        .await
        .map_err(db_err)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let records: Vec<u8> = r.try_get(2).map_err(db_err)?;
        out.push((owner_of(r)?, decode_records(&records)?));
    }
    Ok(out)
}

/// The POSIX lock value `me` stores on `ino`, if any.
async fn my_plock(c: &mut SqliteConnection, ino: Ino, me: LockOwner) -> Result<Option<Vec<u8>>> {
    let row = crate::sql::query(
        "SELECT records FROM jfs_plock WHERE inode = ? AND sid = ? AND owner = ?",
    )
    .bind(ino as i64)
    .bind(me.sid as i64)
    .bind(me.owner as i64)
    .fetch_optional(&mut *c)
    .await
    .map_err(db_err)?;
    row.map(|r| r.try_get(0).map_err(db_err)).transpose()
}

#[async_trait]
impl Locks for SqliteMeta {
    fn lock_session(&self) -> u64 {
        self.session_id()
    }

    /// One attempt of a lock (not unlock) request.
    async fn try_flock(&self, ino: Ino, me: LockOwner, ltype: LockType) -> Result<()> {
        self.fmt().await?;
        if ltype == LockType::Unlock {
            // Only the owner's own row matters: an unlock conflicts with nobody and needs no
            // inode.
            return self
                .db
                .txn(|c, _| {
                    Box::pin(async move {
                        crate::sql::query(
                            "DELETE FROM jfs_flock WHERE inode = ? AND sid = ? AND owner = ?",
                        )
                        .bind(ino as i64)
                        .bind(me.sid as i64)
                        .bind(me.owner as i64)
                        .execute(&mut *c)
                        .await
                        .map_err(db_err)?;
                        Ok(())
                    })
                })
                .await;
        }
        self.db
            .txn(|c, _| {
                Box::pin(async move {
                    need_session(c, me.sid).await?;
                    need_inode(c, ino).await?;
                    let held = flocks_of(c, ino).await?;
                    let Some(t) = flock_outcome(held, me, ltype)? else {
                        return Ok(());
                    };
                    let code = t.flock_byte().unwrap_or(b'R');
                    crate::sql::query(
                        "INSERT INTO jfs_flock (inode, sid, owner, ltype) VALUES (?, ?, ?, ?) \
                         ON CONFLICT (inode, sid, owner) DO UPDATE SET ltype = excluded.ltype",
                    )
                    .bind(ino as i64)
                    .bind(me.sid as i64)
                    .bind(me.owner as i64)
                    .bind(i64::from(code))
                    .execute(&mut *c)
                    .await
                    .map_err(db_err)?;
                    Ok(())
                })
            })
            .await
    }

    async fn getlk(&self, ino: Ino, me: LockOwner, lock: &mut PlockRequest) -> Result<()> {
        self.fmt().await?;
        // One read transaction: the inode and its locks from the same snapshot.
        let mut tx = self.db.pool.begin().await.map_err(db_err)?;
        need_inode(&mut tx, ino).await?;
        let held = plocks_of(&mut tx, ino).await?;
        tx.rollback().await.map_err(db_err)?;
        *lock = find_conflict(held.iter().map(|(o, r)| (*o, r.as_slice())), me, lock);
        Ok(())
    }

    /// One attempt of a `setlk`.
    async fn try_setlk(&self, ino: Ino, me: LockOwner, req: PlockRequest) -> Result<()> {
        self.fmt().await?;
        self.db
            .txn(|c, _| {
                Box::pin(async move {
                    let old = my_plock(c, ino, me).await?;
                    let new = if req.ltype == LockType::Unlock {
                        // Only the owner's own row matters: an unlock conflicts with nobody.
                        let Some(old) = &old else { return Ok(()) };
                        let mine = decode_records(old)?;
                        setlk_outcome([(me, mine.as_slice())], me, &req)?
                    } else {
                        need_session(c, me.sid).await?;
                        need_inode(c, ino).await?;
                        let held = plocks_of(c, ino).await?;
                        setlk_outcome(held.iter().map(|(o, r)| (*o, r.as_slice())), me, &req)?
                    };
                    let new = encode_records(&new);
                    let q = match (&old, new.is_empty()) {
                        (None, true) => return Ok(()),
                        (Some(old), false) if *old == new => return Ok(()),
                        (Some(_), true) => crate::sql::query(
                            "DELETE FROM jfs_plock WHERE inode = ? AND sid = ? AND owner = ?",
                        ),
                        (Some(_), false) => crate::sql::query(
                            "UPDATE jfs_plock SET records = ?4 \
                             WHERE inode = ?1 AND sid = ?2 AND owner = ?3",
                        ),
                        (None, false) => crate::sql::query(
                            "INSERT INTO jfs_plock (inode, sid, owner, records) \
                             VALUES (?1, ?2, ?3, ?4)",
                        ),
                    };
                    let q = q.bind(ino as i64).bind(me.sid as i64).bind(me.owner as i64);
                    let q = if new.is_empty() { q } else { q.bind(new) };
                    q.execute(&mut *c).await.map_err(db_err)?;
                    Ok(())
                })
            })
            .await
    }
}
