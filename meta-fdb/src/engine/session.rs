//! Sessions, open files and the inodes sessions sustain.

use std::sync::atomic::Ordering;

use meta_api::perm::{check_access, open_mask};
use meta_api::{
    Attr, Context, FileType, Ino, MetaError, Result, Session, SessionInfo, Timestamp,
    SESSION_TTL_SECS,
};

use super::{add_usage, align4k, get_attr, incr, must_attr, TkvMeta, FLAG_APPEND, FLAG_IMMUTABLE};
use crate::keys::{be_u64, le_u64, pack_int64, parse_int64, Keys, NEXT_SESSION};
use crate::kv::{KvStore, KvTxn};

/// Sustained inodes released per transaction when a session is cleaned up.
const RELEASE_BATCH: usize = 128;

/// How long a pre-1.0 (`SH`) session lives after its last heartbeat, in seconds.
const LEGACY_TTL_SECS: i64 = 5 * 60;

/// Reads a session info record leniently: JuiceFS writes more fields than
/// [`SessionInfo`] has, and an absent or damaged record reads as empty (as JuiceFS does).
fn parse_session_info(raw: Option<&[u8]>) -> SessionInfo {
    let Some(raw) = raw else {
        return SessionInfo::default();
    };
    let v: serde_json::Value = serde_json::from_slice(raw).unwrap_or_default();
    let text = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_string()
    };
    SessionInfo {
        version: text("Version"),
        host_name: text("HostName"),
        mount_point: text("MountPoint"),
        process_id: v
            .get("ProcessID")
            .and_then(|x| x.as_u64())
            .and_then(|x| u32::try_from(x).ok())
            .unwrap_or_default(),
    }
}

/// Deletes the sustained inode `ino` of session `sid`: queues its data for purging and
/// drops the inode and the session's claim on it (JuiceFS's `doDeleteSustainedInode`).
async fn release_sustained<T: KvTxn>(
    tx: &T,
    keys: &Keys,
    sid: u64,
    ino: Ino,
    now: Timestamp,
) -> Result<()> {
    if let Some(attr) = get_attr(tx, keys, ino).await? {
        if attr.nlink == 0 {
            tx.set(&keys.delfile(ino, attr.length), &pack_int64(now.sec));
            tx.clear(&keys.inode(ino));
            add_usage(tx, keys, -align4k(attr.length), -1);
        }
    }
    tx.clear(&keys.sustained(sid, ino));
    Ok(())
}

impl<K: KvStore> TkvMeta<K> {
    pub(super) async fn do_new_session(&self, info: &SessionInfo) -> Result<u64> {
        let info = serde_json::to_vec(info)
            .map_err(|e| MetaError::Corrupt(format!("session info: {e}")))?;
        let expire = self.now().sec + SESSION_TTL_SECS;
        let keys = &self.keys;
        let info = &info;
        let sid = self
            .kv
            .txn(|tx| async move {
                let sid = incr(&tx, &keys.counter(NEXT_SESSION), 1).await?;
                let sid = u64::try_from(sid)
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| MetaError::Corrupt(format!("session counter is {sid}")))?;
                tx.set(&keys.session(sid), &pack_int64(expire));
                tx.set(&keys.session_info(sid), info);
                Ok(sid)
            })
            .await?;
        self.sid.store(sid, Ordering::SeqCst);
        Ok(sid)
    }

    pub(super) async fn do_heartbeat(&self) -> Result<()> {
        let sid = self.session_id().ok_or(MetaError::BadHandle)?;
        let expire = self.now().sec + SESSION_TTL_SECS;
        let keys = &self.keys;
        self.kv
            .txn(|tx| async move {
                if tx.get(&keys.session(sid)).await?.is_none() {
                    // Reaped as stale while we were away: the sustained inodes are gone,
                    // but the session can carry on (JuiceFS writes its info back).
                    let info = serde_json::to_vec(&SessionInfo::default()).unwrap_or_default();
                    if tx.get(&keys.session_info(sid)).await?.is_none() {
                        tx.set(&keys.session_info(sid), &info);
                    }
                }
                tx.set(&keys.session(sid), &pack_int64(expire));
                Ok(())
            })
            .await
    }

    pub(super) async fn do_close_session(&self) -> Result<()> {
        let Some(sid) = self.session_id() else {
            return Ok(());
        };
        self.clean_session(sid).await?;
        self.sid.store(0, Ordering::SeqCst);
        self.sustained_set().clear();
        self.open_files.clear();
        Ok(())
    }

    /// Releases everything session `sid` holds, in batches, then drops the session.
    async fn clean_session(&self, sid: u64) -> Result<()> {
        let keys = &self.keys;
        let now = self.now();
        let prefix = keys.sustained_of(sid);
        let (begin, end) = (&prefix, &Keys::end_of(&prefix));
        loop {
            let done = self
                .kv
                .txn(|tx| async move {
                    let batch = tx.scan(begin, end, RELEASE_BATCH, false).await?;
                    for (k, _) in &batch {
                        // `SS` + session id + inode (little-endian).
                        if let Some(ino) = le_u64(keys.strip(k), 10) {
                            release_sustained(&tx, keys, sid, ino, now).await?;
                        } else {
                            tx.clear(k);
                        }
                    }
                    if batch.len() < RELEASE_BATCH {
                        tx.clear(&keys.session(sid));
                        tx.clear(&keys.legacy_session(sid));
                        tx.clear(&keys.session_info(sid));
                        return Ok(true);
                    }
                    Ok(false)
                })
                .await?;
            if done {
                return Ok(());
            }
        }
    }

    pub(super) async fn do_list_sessions(&self) -> Result<Vec<Session>> {
        let keys = &self.keys;
        self.kv
            .txn(|tx| async move {
                let mut out = Vec::new();
                for (tag, extra) in [(&b"SE"[..], 0), (&b"SH"[..], LEGACY_TTL_SECS)] {
                    let prefix = keys.tag(tag);
                    for (k, v) in tx.scan(&prefix, &Keys::end_of(&prefix), 0, false).await? {
                        let (Some(sid), Some(at)) = (be_u64(keys.strip(&k), 2), parse_int64(&v))
                        else {
                            continue;
                        };
                        let info = tx.get(&keys.session_info(sid)).await?;
                        let sprefix = keys.sustained_of(sid);
                        let sustained = tx
                            .scan(&sprefix, &Keys::end_of(&sprefix), 0, false)
                            .await?
                            .iter()
                            .filter_map(|(k, _)| le_u64(keys.strip(k), 10))
                            .collect();
                        out.push(Session {
                            sid,
                            expire: at + extra,
                            info: parse_session_info(info.as_deref()),
                            sustained,
                        });
                    }
                }
                out.sort_by_key(|s| s.sid);
                Ok(out)
            })
            .await
    }

    pub(super) async fn do_reap_stale_sessions(&self, now: Timestamp) -> Result<usize> {
        let keys = &self.keys;
        let stale = self
            .kv
            .txn(|tx| async move {
                let mut sids = Vec::new();
                for (tag, extra) in [(&b"SE"[..], 0), (&b"SH"[..], LEGACY_TTL_SECS)] {
                    let prefix = keys.tag(tag);
                    for (k, v) in tx.scan(&prefix, &Keys::end_of(&prefix), 0, false).await? {
                        if let (Some(sid), Some(at)) = (be_u64(keys.strip(&k), 2), parse_int64(&v))
                        {
                            if at + extra < now.sec {
                                sids.push(sid);
                            }
                        }
                    }
                }
                Ok(sids)
            })
            .await?;
        for sid in &stale {
            self.clean_session(*sid).await?;
        }
        Ok(stale.len())
    }

    pub(super) async fn do_open(&self, ctx: &Context, ino: Ino, flags: i32) -> Result<Attr> {
        let keys = &self.keys;
        let attr = self
            .kv
            .txn(|tx| async move { must_attr(&tx, keys, ino).await })
            .await?;
        let writes = flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
        if attr.typ == FileType::Directory && writes {
            return Err(MetaError::IsDir);
        }
        check_access(ctx, &attr, open_mask(flags))?;
        if attr.flags & FLAG_IMMUTABLE != 0 && writes {
            return Err(MetaError::NotPermitted);
        }
        if attr.flags & FLAG_APPEND != 0
            && writes
            && (flags & libc::O_APPEND == 0 || flags & libc::O_TRUNC != 0)
        {
            return Err(MetaError::NotPermitted);
        }
        self.open_files.open(ino);
        Ok(attr)
    }

    pub(super) async fn do_close(&self, ino: Ino) -> Result<()> {
        if !self.open_files.close(ino) {
            return Ok(());
        }
        let sustained = self.sustained_set().remove(&ino);
        let Some(sid) = self.session_id().filter(|_| sustained) else {
            return Ok(());
        };
        let keys = &self.keys;
        let now = self.now();
        self.kv
            .txn(|tx| async move { release_sustained(&tx, keys, sid, ino, now).await })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_info_is_read_leniently() {
        let raw = br#"{"Version":"1.4.2","HostName":"h","IPAddrs":["1.2.3.4"],"MountPoint":"/m","MountTime":"2024-01-01T00:00:00Z","ProcessID":42}"#;
        let info = parse_session_info(Some(raw));
        assert_eq!(info.version, "1.4.2");
        assert_eq!(info.host_name, "h");
        assert_eq!(info.mount_point, "/m");
        assert_eq!(info.process_id, 42);
        assert_eq!(parse_session_info(None), SessionInfo::default());
        assert_eq!(
            parse_session_info(Some(b"not json")),
            SessionInfo::default()
        );
    }
}
