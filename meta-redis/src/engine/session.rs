//! Settings, sessions, open files (sustained inodes) and the deletion queue.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use meta_api::encoding::decode_attr;
use meta_api::perm::open_mask;
use meta_api::{
    Attr, Context, FileType, Heartbeat, Ino, MetaError, Result, Session, SessionInfo, Timestamp,
    SESSION_TTL_SECS,
};

use async_trait::async_trait;
use meta_api::backend::Sessions;
use meta_api::space::align4k;

use super::{now, RedisMeta, Writes};
use crate::keys::delfile_member;
use crate::txn::Tx;

/// Parses a decimal id stored by Redis.
fn parse_id(b: &[u8]) -> Option<u64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

impl RedisMeta {
    /// Returns whether the session's description was new (the session was not registered).
    async fn register_session(&self, sid: u64, json: &str) -> Result<bool> {
        let expire = now().sec + SESSION_TTL_SECS;
        let mut p = redis::pipe();
        p.atomic()
            .cmd("ZADD")
            .arg(self.keys.all_sessions())
            .arg(expire)
            .arg(sid)
            .ignore()
            .cmd("HSET")
            .arg(self.keys.session_infos())
            .arg(sid)
            .arg(json);
        let (added,): (i64,) = self.read_pipe(&p).await?;
        Ok(added > 0)
    }

    /// Releases everything session `sid` holds — its open and sustained inodes, its
    /// locks — and removes it. Every step is idempotent, so an interrupted cleanup is
    /// finished by the next one.
    async fn clean_session(&self, sid: u64) -> Result<()> {
        let k = &self.keys;
        let mut p = redis::pipe();
        p.cmd("SMEMBERS")
            .arg(k.opened(sid))
            .cmd("SMEMBERS")
            .arg(k.sustained(sid))
            .cmd("SMEMBERS")
            .arg(k.locked(sid));
        let (opened, sustained, locked): (Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<String>) =
            self.read_pipe(&p).await?;
        let inos: BTreeSet<Ino> = opened
            .iter()
            .chain(sustained.iter())
            .filter_map(|m| parse_id(m))
            .collect();
        for ino in inos {
            self.release(ino, sid).await?;
        }
        let owner_prefix = format!("{sid}_");
        for lock_key in locked {
            let owners: Vec<String> = self.read(redis::cmd("HKEYS").arg(&lock_key)).await?;
            let mine: Vec<&String> = owners
                .iter()
                .filter(|o| o.starts_with(&owner_prefix))
                .collect();
            if !mine.is_empty() {
                self.read::<()>(redis::cmd("HDEL").arg(&lock_key).arg(&mine))
                    .await?;
            }
        }
        let mut p = redis::pipe();
        p.atomic()
            .cmd("DEL")
            .arg(k.opened(sid))
            .arg(k.sustained(sid))
            .arg(k.locked(sid))
            .ignore()
            .cmd("HDEL")
            .arg(k.session_infos())
            .arg(sid)
            .ignore()
            .cmd("ZREM")
            .arg(k.all_sessions())
            .arg(sid)
            .ignore();
        self.read_pipe::<()>(&p).await
    }

    /// The live sessions (present in `allSessions`) that have `ino` open.
    pub(crate) async fn live_openers(&self, tx: &mut Tx, ino: Ino) -> Result<Vec<u64>> {
        let members: Vec<Vec<u8>> = tx
            .cmd(redis::cmd("SMEMBERS").arg(self.keys.openers(ino)))
            .await?;
        // This session counts only while the file is open here: a close not sent yet
        // (see `closes`) leaves the registration behind it for a moment.
        let own = self.sid.load(Ordering::Relaxed);
        let sids: Vec<u64> = members
            .iter()
            .filter_map(|m| parse_id(m))
            .filter(|&s| s != own || self.open_files.is_open(ino))
            .collect();
        if sids.is_empty() {
            return Ok(sids);
        }
        let mut p = redis::pipe();
        for sid in &sids {
            p.cmd("ZSCORE").arg(self.keys.all_sessions()).arg(*sid);
        }
        let scores: Vec<Option<f64>> = tx.pipe(&p).await?;
        Ok(sids
            .into_iter()
            .zip(scores)
            .filter_map(|(sid, s)| s.map(|_| sid))
            .collect())
    }

    async fn open_checked(&self, ctx: &Context, ino: Ino, flags: i32, sid: u64) -> Result<Attr> {
        let k = &self.keys;
        let raw: Option<Vec<u8>> = if sid > 0 {
            // Registering the open and reading the attributes in one atomic round trip
            // means an unlink that committed after it sees the open.
            let mut p = redis::pipe();
            p.atomic()
                .cmd("SADD")
                .arg(k.openers(ino))
                .arg(sid)
                .ignore()
                .cmd("SADD")
                .arg(k.opened(sid))
                .arg(ino)
                .ignore()
                .cmd("GET")
                .arg(k.inode(ino));
            let (v,): (Option<Vec<u8>>,) = self.read_pipe(&p).await?;
            v
        } else {
            self.read(redis::cmd("GET").arg(k.inode(ino))).await?
        };
        let attr = decode_attr(&raw.ok_or(MetaError::NotFound)?)?;
        if sid > 0 && attr.nlink == 0 && attr.typ == FileType::Regular {
            // Opened by inode after its last name went: this session sustains it too.
            self.read::<()>(redis::cmd("SADD").arg(k.sustained(sid)).arg(ino))
                .await?;
        }
        let mask = open_mask(flags);
        let writes = mask & meta_api::access::W != 0;
        if attr.is_dir() && writes {
            return Err(MetaError::IsDir);
        }
        self.access(ctx, &attr, mask).await?;
        meta_api::flags::check_open(&attr, flags)?;
        Ok(attr)
    }

    /// Session `sid` lets go of `ino`: it is no longer open there nor sustained by it,
    /// and if it has no name left and no other live session has it open, it is deleted.
    pub(crate) async fn release(&self, ino: Ino, sid: u64) -> Result<()> {
        let keys = [self.keys.inode(ino), self.keys.openers(ino)];
        self.txn(&keys, |mut tx| async move {
            let k = &self.keys;
            let attr = tx.attr(ino).await?;
            let others: Vec<u64> = self
                .live_openers(&mut tx, ino)
                .await?
                .into_iter()
                .filter(|s| *s != sid)
                .collect();
            let mut w = Writes::new();
            w.srem(k.openers(ino), sid)
                .srem(k.opened(sid), ino)
                .srem(k.sustained(sid), ino);
            if let Some(a) = attr {
                if a.nlink == 0 && a.typ == FileType::Regular && others.is_empty() {
                    w.zadd(k.delfiles(), now().sec, &delfile_member(ino, a.length))
                        .del(k.inode(ino))
                        .del(k.openers(ino))
                        .del(k.xattrs(ino))
                        .incrby(k.used_space(), -align4k(a.length))
                        .incrby(k.total_inodes(), -1);
                }
            }
            Ok(w.commit(()))
        })
        .await
    }
}

#[async_trait]
impl Sessions for RedisMeta {
    async fn new_session(&self, info: &SessionInfo) -> Result<u64> {
        if self.sid.load(Ordering::Relaxed) != 0 {
            return Err(MetaError::InvalidArgument(
                "this client already has a session",
            ));
        }
        self.settings().await?;
        let json = String::from_utf8_lossy(&info.to_json()).into_owned();
        // A lost reply only wastes a session id.
        let sid: u64 = self
            .read(redis::cmd("INCR").arg(self.keys.next_session()))
            .await?;
        self.register_session(sid, &json).await?;
        self.sid.store(sid, Ordering::Relaxed);
        *self.session_info.write().unwrap_or_else(|p| p.into_inner()) = Some(info.clone());
        Ok(sid)
    }

    async fn heartbeat(&self) -> Result<Heartbeat> {
        let sid = self.sid.load(Ordering::Relaxed);
        if sid == 0 {
            return Err(MetaError::BadHandle);
        }
        // Closes queued by a client that then went quiet are sent at least this often.
        if let Err(e) = self.flush_closes().await {
            tracing::warn!(error = %e, "sending queued closes failed");
        }
        let info = self
            .session_info
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_default();
        let json = String::from_utf8_lossy(&info.to_json()).into_owned();
        if !self.register_session(sid, &json).await? {
            return Ok(Heartbeat::Extended);
        }
        // Reaped as stale: back under the same id (as JuiceFS does), holding nothing;
        // what the reap released is not taken back, and the caller is told.
        Ok(Heartbeat::Reregistered)
    }

    async fn close_session(&self) -> Result<()> {
        let sid = self.sid.load(Ordering::Relaxed);
        if sid == 0 {
            return Ok(());
        }
        // The session's cleanup releases whatever this leaves registered.
        if let Err(e) = self.flush_closes().await {
            tracing::debug!(error = %e, "sending queued closes failed");
        }
        meta_api::backend::end_session(&self.sid, sid, |sid| self.clean_session(sid)).await?;
        self.open_files.clear();
        Ok(())
    }

    async fn list_sessions(&self) -> Result<Vec<Session>> {
        let flat: Vec<Vec<u8>> = self
            .read(
                redis::cmd("ZRANGE")
                    .arg(self.keys.all_sessions())
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES"),
            )
            .await?;
        let mut sids = Vec::new();
        let mut it = flat.into_iter();
        while let (Some(m), Some(score)) = (it.next(), it.next()) {
            let (Some(sid), Ok(score)) =
                (parse_id(&m), String::from_utf8_lossy(&score).parse::<f64>())
            else {
                continue;
            };
            sids.push((sid, score as i64));
        }
        if sids.is_empty() {
            return Ok(Vec::new());
        }
        let mut p = redis::pipe();
        for (sid, _) in &sids {
            p.cmd("HGET").arg(self.keys.session_infos()).arg(*sid);
            p.cmd("SMEMBERS").arg(self.keys.sustained(*sid));
        }
        let replies: Vec<redis::Value> = self.read_pipe(&p).await?;
        let mut out = Vec::with_capacity(sids.len());
        let mut it = replies.into_iter();
        for (sid, expire) in sids {
            let (Some(info), Some(members)) = (it.next(), it.next()) else {
                break;
            };
            let info: Option<Vec<u8>> =
                redis::from_redis_value(&info).map_err(|e| MetaError::backend(false, e))?;
            let info = SessionInfo::from_json_lenient(info.as_deref());
            let members: Vec<Vec<u8>> =
                redis::from_redis_value(&members).map_err(|e| MetaError::backend(false, e))?;
            let mut sustained: Vec<Ino> = members.iter().filter_map(|m| parse_id(m)).collect();
            sustained.sort_unstable();
            out.push(Session {
                sid,
                expire,
                info,
                sustained,
            });
        }
        Ok(out)
    }

    async fn reap_stale_sessions(&self, at: Timestamp) -> Result<usize> {
        let max = format!("({}", at.sec);
        let stale: Vec<Vec<u8>> = self
            .read(
                redis::cmd("ZRANGEBYSCORE")
                    .arg(self.keys.all_sessions())
                    .arg("-inf")
                    .arg(max),
            )
            .await?;
        let mut n = 0;
        // This client's own session too: its next heartbeat registers it again under the
        // same id and says so (Heartbeat::Reregistered).
        for sid in stale.iter().filter_map(|m| parse_id(m)) {
            self.clean_session(sid).await?;
            n += 1;
        }
        Ok(n)
    }

    async fn open(&self, ctx: &Context, ino: Ino, flags: i32) -> Result<Attr> {
        let sid = self.sid.load(Ordering::Relaxed);
        self.open_files.open(ino);
        // A close of it not sent yet must not unregister this open.
        self.closes.reopen(ino).await;
        let checked = self.open_checked(ctx, ino, flags, sid).await;
        if checked.is_err() && self.open_files.close(ino) && sid > 0 {
            // Undo the registration; if this fails too the session's cleanup will.
            let _ = self.release(ino, sid).await;
        }
        checked
    }

    async fn close(&self, ino: Ino) -> Result<()> {
        let sid = self.sid.load(Ordering::Relaxed);
        if !self.open_files.close(ino) || sid == 0 {
            return Ok(());
        }
        // Unregistered with other closes in one round trip (see `closes`); a batch that
        // fails is sent again with the next.
        if self.closes.queue(ino, sid) {
            if let Err(e) = self.flush_closes().await {
                tracing::debug!(error = %e, "sending queued closes failed");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse() {
        assert_eq!(parse_id(b"42"), Some(42));
        assert_eq!(parse_id(b"x"), None);
    }
}
