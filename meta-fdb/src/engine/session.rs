//! Sessions, open files and the inodes sessions sustain.
//!
//! An open is recorded in the volume (`OI{ino}{sid}` and `OS{sid}{ino}`, see
//! [`crate::keys`]) so that an unlink by any client sees every live session that has the
//! file open: each of them then sustains it (`SS{sid}{ino}`, JuiceFS's key). A session
//! lets go of a file at its last close, when it is closed or when it is reaped; the last
//! one to let go of an unlinked file queues it for deletion.

use std::sync::atomic::Ordering;

use async_trait::async_trait;
use meta_api::backend::Sessions;
use meta_api::perm::check_open;
use meta_api::{
    Attr, Context, FileType, Heartbeat, Ino, MetaError, Result, Session, SessionInfo, Timestamp,
    SESSION_TTL_SECS,
};

use meta_api::space::align4k;

use super::{add_usage, get_attr, incr, must_attr, TkvMeta};
use crate::keys::{be_u32, be_u64, le_u64, pack_int64, parse_int64, Keys, NEXT_SESSION};
use crate::kv::{KvStore, KvTxn};

/// Inodes let go of per transaction when a session is cleaned up.
const RELEASE_BATCH: usize = 128;

/// How long a pre-1.0 (`SH`) session lives after its last heartbeat, in seconds.
const LEGACY_TTL_SECS: i64 = 5 * 60;

/// Whether session `sid` exists (current or pre-1.0 record).
async fn session_exists<T: KvTxn>(tx: &T, keys: &Keys, sid: u64) -> Result<bool> {
    Ok(tx.get(&keys.session(sid)).await?.is_some()
        || tx.get(&keys.legacy_session(sid)).await?.is_some())
}

/// The sessions other than `except` that have `ino` open and still exist; the records of
/// sessions that are gone are dropped on the way.
pub(crate) async fn live_openers<T: KvTxn>(
    tx: &T,
    keys: &Keys,
    ino: Ino,
    except: u64,
) -> Result<Vec<u64>> {
    let prefix = keys.openers(ino);
    let mut live = Vec::new();
    for (k, _) in tx.scan(&prefix, &Keys::end_of(&prefix), 0, false).await? {
        let Some(sid) = be_u64(&k, prefix.len()) else {
            tx.clear(&k);
            continue;
        };
        if sid == except {
            continue;
        }
        if session_exists(tx, keys, sid).await? {
            live.push(sid);
        } else {
            tx.clear(&k);
            tx.clear(&keys.opened(sid, ino));
        }
    }
    Ok(live)
}

/// Session `sid` lets go of `ino`: it no longer has it open nor sustains it. An unlinked
/// file nobody else has open is deleted and its data queued for purging (JuiceFS's
/// `doDeleteSustainedInode`).
async fn release<T: KvTxn>(tx: &T, keys: &Keys, sid: u64, ino: Ino, now: Timestamp) -> Result<()> {
    tx.clear(&keys.opener(ino, sid));
    tx.clear(&keys.opened(sid, ino));
    tx.clear(&keys.sustained(sid, ino));
    let Some(attr) = get_attr(tx, keys, ino).await? else {
        return Ok(());
    };
    if attr.nlink > 0 || attr.typ != FileType::Regular {
        return Ok(());
    }
    if live_openers(tx, keys, ino, sid).await?.is_empty() {
        tx.set(&keys.delfile(ino, attr.length), &pack_int64(now.sec));
        tx.clear(&keys.inode(ino));
        let xattrs = keys.xattrs(ino);
        tx.clear_range(&xattrs, &Keys::end_of(&xattrs));
        add_usage(tx, keys, -align4k(attr.length), -1);
    }
    Ok(())
}

/// The inode numbers of one batch of keys `{prefix}{ino}` (little-endian inode last).
fn inodes_of(keys: &Keys, batch: &[crate::KeyValue]) -> Vec<Option<Ino>> {
    batch
        .iter()
        .map(|(k, _)| {
            let k = keys.strip(k);
            le_u64(k, k.len().saturating_sub(8)).filter(|_| k.len() == 18)
        })
        .collect()
}

/// A BSD lock record without the locks of session `sid` (records of 17 bytes: session,
/// owner, lock type); `None` when nothing changes or the record cannot be read.
fn without_flocks_of(v: &[u8], sid: u64) -> Option<Vec<u8>> {
    if !v.len().is_multiple_of(17) {
        return None;
    }
    let kept: Vec<u8> = v
        .chunks_exact(17)
        .filter(|r| be_u64(r, 0) != Some(sid))
        .flatten()
        .copied()
        .collect();
    (kept.len() != v.len()).then_some(kept)
}

/// A POSIX lock record without the locks of session `sid` (records of session, owner,
/// a big-endian `u32` length and that many bytes of ranges); `None` when nothing changes
/// or the record cannot be read.
fn without_plocks_of(v: &[u8], sid: u64) -> Option<Vec<u8>> {
    let mut kept = Vec::with_capacity(v.len());
    let mut at = 0;
    while at < v.len() {
        let n = be_u32(v, at + 16)? as usize;
        let end = (at + 20).checked_add(n)?;
        let record = v.get(at..end)?;
        if be_u64(record, 0)? != sid {
            kept.extend_from_slice(record);
        }
        at = end;
    }
    (kept.len() != v.len()).then_some(kept)
}

#[async_trait]
impl<K: KvStore> Sessions for TkvMeta<K> {
    async fn new_session(&self, info: &SessionInfo) -> Result<u64> {
        if self.session_id().is_some() {
            return Err(MetaError::InvalidArgument(
                "this client already has a session",
            ));
        }
        let info = info.to_json();
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

    async fn heartbeat(&self) -> Result<Heartbeat> {
        let sid = self.session_id().ok_or(MetaError::BadHandle)?;
        let expire = self.now().sec + SESSION_TTL_SECS;
        let keys = &self.keys;
        let beat = self
            .kv
            .txn(|tx| async move {
                let mut beat = Heartbeat::Extended;
                if tx.get(&keys.session(sid)).await?.is_none() {
                    // Reaped as stale while away: back under the same id with an empty
                    // description, as JuiceFS does; what the session held was released by
                    // the reaper, and the caller is told.
                    beat = Heartbeat::Reregistered;
                }
                if tx.get(&keys.session_info(sid)).await?.is_none() {
                    let info = SessionInfo::default().to_json();
                    tx.set(&keys.session_info(sid), &info);
                }
                tx.set(&keys.session(sid), &pack_int64(expire));
                Ok(beat)
            })
            .await?;
        // Pick up settings other clients changed (capacity, inode limit), as JuiceFS
        // reloads them with every heartbeat.
        match self.load_format().await {
            Ok(_) | Err(MetaError::NotFormatted) => Ok(beat),
            Err(e) => Err(e),
        }
    }

    async fn close_session(&self) -> Result<()> {
        let Some(sid) = self.session_id() else {
            return Ok(());
        };
        meta_api::backend::end_session(&self.sid, sid, |sid| self.clean_session(sid)).await?;
        self.open_files.clear();
        Ok(())
    }

    async fn list_sessions(&self) -> Result<Vec<Session>> {
        let keys = &self.keys;
        let mut out = Vec::new();
        for (sid, expire) in self.session_expiries().await? {
            let (info, sustained) = self
                .kv
                .txn(|tx| async move {
                    let info = tx.get(&keys.session_info(sid)).await?;
                    let prefix = keys.sustained_of(sid);
                    let batch = tx.scan(&prefix, &Keys::end_of(&prefix), 0, false).await?;
                    let sustained: Vec<Ino> =
                        inodes_of(keys, &batch).into_iter().flatten().collect();
                    Ok((info, sustained))
                })
                .await?;
            out.push(Session {
                sid,
                expire,
                info: SessionInfo::from_json_lenient(info.as_deref()),
                sustained,
            });
        }
        out.sort_by_key(|s| s.sid);
        out.dedup_by_key(|s| s.sid);
        Ok(out)
    }

    async fn reap_stale_sessions(&self, now: Timestamp) -> Result<usize> {
        let mut stale: Vec<u64> = self
            .session_expiries()
            .await?
            .into_iter()
            .filter(|(_, expire)| *expire < now.sec)
            .map(|(sid, _)| sid)
            .collect();
        stale.sort_unstable();
        stale.dedup();
        for sid in &stale {
            self.clean_session(*sid).await?;
        }
        Ok(stale.len())
    }

    async fn open(&self, ctx: &Context, ino: Ino, flags: i32) -> Result<Attr> {
        let sid = self.session_id().unwrap_or(0);
        let (keys, cache) = (&self.keys, &self.acls);
        let attr = self
            .kv
            .txn(|tx| async move {
                let attr = must_attr(&tx, keys, ino).await?;
                let rule = super::acl::check_rule(&tx, keys, cache, ctx, &attr).await?;
                check_open(ctx, &attr, rule.as_deref(), flags)?;
                // Record the open in the same transaction that read the attributes: an
                // unlink that commits after it finds the open and sustains the file.
                if sid != 0 && attr.typ == FileType::Regular {
                    tx.set(&keys.opener(ino, sid), &[1]);
                    tx.set(&keys.opened(sid, ino), &[1]);
                }
                Ok(attr)
            })
            .await?;
        self.open_files.open(ino);
        Ok(attr)
    }

    async fn close(&self, ino: Ino) -> Result<()> {
        if !self.open_files.close(ino) {
            return Ok(());
        }
        let Some(sid) = self.session_id() else {
            return Ok(());
        };
        let keys = &self.keys;
        let now = self.now();
        self.kv
            .txn(|tx| async move { release(&tx, keys, sid, ino, now).await })
            .await
    }
}

impl<K: KvStore> TkvMeta<K> {
    /// Lets go of everything session `sid` has open or sustains, in batches, then drops
    /// the session. Each batch is one transaction, so a cleanup cut short is finished by
    /// the next one.
    async fn clean_session(&self, sid: u64) -> Result<()> {
        let keys = &self.keys;
        let now = self.now();
        for prefix in [keys.opened_by(sid), keys.sustained_of(sid)] {
            let (begin, end) = (&prefix, &Keys::end_of(&prefix));
            loop {
                let more = self
                    .kv
                    .txn(|tx| async move {
                        let batch = tx.scan(begin, end, RELEASE_BATCH, false).await?;
                        for (ino, (k, _)) in inodes_of(keys, &batch).into_iter().zip(&batch) {
                            match ino {
                                Some(ino) => release(&tx, keys, sid, ino, now).await?,
                                None => tx.clear(k),
                            }
                        }
                        Ok(batch.len() == RELEASE_BATCH)
                    })
                    .await?;
                if !more {
                    break;
                }
            }
        }
        for tag in [&b"F"[..], &b"P"[..]] {
            self.release_locks(sid, tag).await?;
        }
        self.kv
            .txn(|tx| async move {
                tx.clear(&keys.session(sid));
                tx.clear(&keys.legacy_session(sid));
                tx.clear(&keys.session_info(sid));
                Ok(())
            })
            .await
    }

    /// Drops the locks session `sid` holds in the `F` (BSD) or `P` (POSIX) lock records
    /// that JuiceFS clients keep, a batch of records per transaction.
    async fn release_locks(&self, sid: u64, tag: &[u8]) -> Result<()> {
        let keys = &self.keys;
        let prefix = keys.tag(tag);
        let end = &Keys::end_of(&prefix);
        let posix = tag == b"P";
        let mut from = prefix.clone();
        loop {
            let begin = &from;
            let last = self
                .kv
                .txn(|tx| async move {
                    let batch = tx.scan(begin, end, RELEASE_BATCH, false).await?;
                    for (k, v) in &batch {
                        let kept = if posix {
                            without_plocks_of(v, sid)
                        } else {
                            without_flocks_of(v, sid)
                        };
                        match kept {
                            Some(kept) if kept.is_empty() => tx.clear(k),
                            Some(kept) => tx.set(k, &kept),
                            None => {}
                        }
                    }
                    let more = batch.len() == RELEASE_BATCH;
                    Ok(batch.into_iter().last().filter(|_| more).map(|(k, _)| k))
                })
                .await?;
            match last {
                Some(k) => from = crate::kv::key_after(&k),
                None => return Ok(()),
            }
        }
    }

    /// Session ids with their expiry (`SE`, and `SH` of pre-1.0 clients, which expire
    /// five minutes after their heartbeat).
    async fn session_expiries(&self) -> Result<Vec<(u64, i64)>> {
        let keys = &self.keys;
        self.kv
            .txn(|tx| async move {
                let mut out = Vec::new();
                for (tag, extra) in [(&b"SE"[..], 0), (&b"SH"[..], LEGACY_TTL_SECS)] {
                    let prefix = keys.tag(tag);
                    for (k, v) in tx.scan(&prefix, &Keys::end_of(&prefix), 0, false).await? {
                        let k = keys.strip(&k);
                        if let (10, Some(sid), Some(at)) = (k.len(), be_u64(k, 2), parse_int64(&v))
                        {
                            out.push((sid, at.saturating_add(extra)));
                        }
                    }
                }
                Ok(out)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flock(sid: u64, owner: u64, t: u8) -> Vec<u8> {
        [&sid.to_be_bytes()[..], &owner.to_be_bytes(), &[t]].concat()
    }

    fn plock(sid: u64, owner: u64, data: &[u8]) -> Vec<u8> {
        let n = (data.len() as u32).to_be_bytes();
        [&sid.to_be_bytes()[..], &owner.to_be_bytes(), &n, data].concat()
    }

    #[test]
    fn locks_of_a_session_are_dropped() {
        let both = [flock(1, 10, b'R'), flock(2, 20, b'R')].concat();
        assert_eq!(without_flocks_of(&both, 1), Some(flock(2, 20, b'R')));
        assert_eq!(without_flocks_of(&both, 3), None);
        assert_eq!(without_flocks_of(&flock(1, 1, b'W'), 1), Some(Vec::new()));
        assert_eq!(without_flocks_of(&[1, 2, 3], 1), None);

        let both = [plock(1, 10, &[7; 24]), plock(2, 20, &[8; 48])].concat();
        assert_eq!(without_plocks_of(&both, 1), Some(plock(2, 20, &[8; 48])));
        assert_eq!(without_plocks_of(&both, 2), Some(plock(1, 10, &[7; 24])));
        assert_eq!(without_plocks_of(&both, 9), None);
        assert_eq!(without_plocks_of(&both[..30], 1), None, "truncated record");
    }

    #[test]
    fn session_info_is_read_leniently() {
        let raw = br#"{"Version":"1.4.2","HostName":"h","IPAddrs":["1.2.3.4"],"MountPoint":"/m","MountTime":"2024-01-01T00:00:00Z","ProcessID":42}"#;
        let info = SessionInfo::from_json_lenient(Some(raw));
        assert_eq!(info.version, "1.4.2");
        assert_eq!(info.host_name, "h");
        assert_eq!(info.mount_point, "/m");
        assert_eq!(info.process_id, 42);
        assert_eq!(SessionInfo::from_json_lenient(None), SessionInfo::default());
        assert_eq!(
            SessionInfo::from_json_lenient(Some(b"not json")),
            SessionInfo::default()
        );
    }
}
