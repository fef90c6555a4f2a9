//! File locks in JuiceFS's Redis keys.
//!
//! * `lockf{ino}`: hash of BSD locks, field `{sid}_{owner as 16 upper-case hex digits}`,
//!   value `R` or `W`;
//! * `lockp{ino}`: hash of POSIX locks, same fields, value the owner's packed ranges
//!   ([`meta_api::locks`]);
//! * `locked{sid}`: set of the lock keys in which session `sid` holds a field, so that
//!   closing or reaping the session finds its locks (see `clean_session`).
//!
//! Each attempt is one transaction watching the lock key; a blocking request sleeps
//! between attempts with nothing held.

use std::collections::BTreeMap;

use async_trait::async_trait;
use meta_api::backend::Locks;
use meta_api::locks::{
    decode_records, encode_records, find_conflict, flock_outcome, setlk_outcome, PlockRecord,
};
use meta_api::{Ino, LockOwner, LockType, MetaError, PlockRequest, Result};

use super::RedisMeta;
use crate::txn::{Step, Tx};

/// The hash field of a lock owner: `{sid}_{owner:016X}`, as JuiceFS writes it.
pub(crate) fn owner_field(o: LockOwner) -> String {
    format!("{}_{:016X}", o.sid, o.owner)
}

/// Parses a hash field of a lock key.
pub(crate) fn parse_owner_field(f: &[u8]) -> Option<LockOwner> {
    let s = std::str::from_utf8(f).ok()?;
    let (sid, owner) = s.split_once('_')?;
    Some(LockOwner::new(
        sid.parse().ok()?,
        u64::from_str_radix(owner, 16).ok()?,
    ))
}

/// A lock hash field that cannot be read.
fn bad_field(key: &str, f: &[u8]) -> MetaError {
    MetaError::Corrupt(format!(
        "lock field {:?} of {key}",
        String::from_utf8_lossy(f)
    ))
}

/// The BSD locks of one `lockf` hash.
fn parse_flocks(key: &str, h: &BTreeMap<Vec<u8>, Vec<u8>>) -> Result<Vec<(LockOwner, LockType)>> {
    h.iter()
        .map(|(f, v)| {
            let who = parse_owner_field(f).ok_or_else(|| bad_field(key, f))?;
            let t = match v.as_slice() {
                [b] => LockType::from_flock_byte(*b),
                _ => None,
            }
            .ok_or_else(|| bad_field(key, f))?;
            Ok((who, t))
        })
        .collect()
}

/// The POSIX locks of one `lockp` hash.
fn parse_plocks(
    key: &str,
    h: &BTreeMap<Vec<u8>, Vec<u8>>,
) -> Result<Vec<(LockOwner, Vec<PlockRecord>)>> {
    h.iter()
        .map(|(f, v)| {
            let who = parse_owner_field(f).ok_or_else(|| bad_field(key, f))?;
            Ok((who, decode_records(v)?))
        })
        .collect()
}

/// Whether `fields` (of one lock key) hold no field of session `sid` other than `mine`:
/// then the key leaves the session's `locked` set with `mine`.
fn last_of_session(fields: &[Vec<u8>], mine: &str, sid: u64) -> bool {
    !fields.iter().any(|f| {
        f.as_slice() != mine.as_bytes() && parse_owner_field(f).is_some_and(|o| o.sid == sid)
    })
}

impl RedisMeta {
    /// `lockf{ino}`.
    fn flock_key(&self, ino: Ino) -> String {
        format!("{}lockf{ino}", self.keys.prefix())
    }

    /// `lockp{ino}`.
    fn plock_key(&self, ino: Ino) -> String {
        format!("{}lockp{ino}", self.keys.prefix())
    }

    /// `SessionLost` unless session `sid` is registered; the caller watches
    /// [`session_infos`](crate::keys::Keys::session_infos), so a reap before the commit
    /// aborts it (a lock of a reaped session would never be reaped).
    async fn need_session(&self, tx: &mut Tx, sid: u64) -> Result<()> {
        let known: bool = tx
            .cmd(
                redis::cmd("HEXISTS")
                    .arg(self.keys.session_infos())
                    .arg(sid),
            )
            .await?;
        if known {
            Ok(())
        } else {
            Err(MetaError::SessionLost)
        }
    }

    /// `NotFound` unless inode `ino` exists (read inside the transaction).
    async fn need_inode(&self, tx: &mut Tx, ino: Ino) -> Result<()> {
        let exists: bool = tx
            .cmd(redis::cmd("EXISTS").arg(self.keys.inode(ino)))
            .await?;
        if exists {
            Ok(())
        } else {
            Err(MetaError::NotFound)
        }
    }

    /// Removes `me`'s field from lock key `key` in a transaction, and the key from the
    /// session's `locked` set when it was the session's last field there.
    async fn drop_lock_field(&self, key: &str, me: LockOwner) -> Result<()> {
        let field = owner_field(me);
        let watch = [key.to_string()];
        self.txn(&watch, |mut tx| {
            let field = field.clone();
            async move {
                let fields: Vec<Vec<u8>> = tx.cmd(redis::cmd("HKEYS").arg(key)).await?;
                if !fields.iter().any(|f| f.as_slice() == field.as_bytes()) {
                    return Ok(Step::Done(()));
                }
                let mut p = redis::pipe();
                p.cmd("HDEL").arg(key).arg(&field).ignore();
                if last_of_session(&fields, &field, me.sid) {
                    p.cmd("SREM")
                        .arg(self.keys.locked(me.sid))
                        .arg(key)
                        .ignore();
                }
                Ok(Step::Commit(p, ()))
            }
        })
        .await
    }

    /// Sets `me`'s field of lock key `key` to `value` and records the key in the
    /// session's `locked` set.
    fn set_lock_field(&self, key: &str, me: LockOwner, value: &[u8]) -> redis::Pipeline {
        let mut p = redis::pipe();
        p.cmd("HSET")
            .arg(key)
            .arg(owner_field(me))
            .arg(value)
            .ignore()
            .cmd("SADD")
            .arg(self.keys.locked(me.sid))
            .arg(key)
            .ignore();
        p
    }
}

#[async_trait]
impl Locks for RedisMeta {
    fn lock_session(&self) -> u64 {
        self.session_id()
    }

    /// One attempt of a lock request; an unlock drops this owner's field, whatever else
    /// the inode holds.
    async fn try_flock(&self, ino: Ino, me: LockOwner, ltype: LockType) -> Result<()> {
        if ltype == LockType::Unlock {
            return self.drop_lock_field(&self.flock_key(ino), me).await;
        }
        let key = self.flock_key(ino);
        let key = key.as_str();
        let watch = [key.to_string(), self.keys.session_infos()];
        self.txn(&watch, |mut tx| async move {
            self.need_session(&mut tx, me.sid).await?;
            self.need_inode(&mut tx, ino).await?;
            let h: BTreeMap<Vec<u8>, Vec<u8>> = tx.cmd(redis::cmd("HGETALL").arg(key)).await?;
            let held = parse_flocks(key, &h)?;
            match flock_outcome(held, me, ltype)?.and_then(LockType::flock_byte) {
                Some(b) => Ok(Step::Commit(self.set_lock_field(key, me, &[b]), ())),
                None => Ok(Step::Done(())),
            }
        })
        .await
    }

    async fn getlk(&self, ino: Ino, me: LockOwner, lock: &mut PlockRequest) -> Result<()> {
        let key = self.plock_key(ino);
        let mut p = redis::pipe();
        p.cmd("EXISTS")
            .arg(self.keys.inode(ino))
            .cmd("HGETALL")
            .arg(&key);
        let (exists, h): (bool, BTreeMap<Vec<u8>, Vec<u8>>) = self.read_pipe(&p).await?;
        if !exists {
            return Err(MetaError::NotFound);
        }
        let held = parse_plocks(&key, &h)?;
        *lock = find_conflict(held.iter().map(|(o, r)| (*o, r.as_slice())), me, lock);
        Ok(())
    }

    /// One attempt of a `setlk`.
    async fn try_setlk(&self, ino: Ino, me: LockOwner, req: PlockRequest) -> Result<()> {
        let key = self.plock_key(ino);
        let key = key.as_str();
        let field = owner_field(me);
        let field = field.as_str();
        // An unlock needs no session; a lock watches the sessions too (see need_session).
        let watch = if req.ltype == LockType::Unlock {
            vec![key.to_string()]
        } else {
            vec![key.to_string(), self.keys.session_infos()]
        };
        self.txn(&watch, |mut tx| async move {
            let (old, new) = if req.ltype == LockType::Unlock {
                // Only the owner's own field matters: an unlock conflicts with nobody.
                let old: Option<Vec<u8>> = tx.cmd(redis::cmd("HGET").arg(key).arg(field)).await?;
                let Some(old) = old else {
                    return Ok(Step::Done(()));
                };
                let mine = decode_records(&old)?;
                (Some(old), setlk_outcome([(me, mine.as_slice())], me, &req)?)
            } else {
                self.need_session(&mut tx, me.sid).await?;
                self.need_inode(&mut tx, ino).await?;
                let mut h: BTreeMap<Vec<u8>, Vec<u8>> =
                    tx.cmd(redis::cmd("HGETALL").arg(key)).await?;
                let held = parse_plocks(key, &h)?;
                let new = setlk_outcome(held.iter().map(|(o, r)| (*o, r.as_slice())), me, &req)?;
                (h.remove(field.as_bytes()), new)
            };
            let new = encode_records(&new);
            if old.as_deref() == Some(new.as_slice()) {
                return Ok(Step::Done(()));
            }
            if !new.is_empty() {
                return Ok(Step::Commit(self.set_lock_field(key, me, &new), ()));
            }
            let fields: Vec<Vec<u8>> = tx.cmd(redis::cmd("HKEYS").arg(key)).await?;
            let mut p = redis::pipe();
            p.cmd("HDEL").arg(key).arg(field).ignore();
            if last_of_session(&fields, field, me.sid) {
                p.cmd("SREM")
                    .arg(self.keys.locked(me.sid))
                    .arg(key)
                    .ignore();
            }
            Ok(Step::Commit(p, ()))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_fields_follow_juicefs() {
        let o = LockOwner::new(12, 0xdead_beef);
        assert_eq!(owner_field(o), "12_00000000DEADBEEF");
        assert_eq!(parse_owner_field(b"12_00000000DEADBEEF"), Some(o));
        assert_eq!(parse_owner_field(b"12_deadbeef"), Some(o));
        let max = LockOwner::new(u64::MAX, u64::MAX);
        assert_eq!(parse_owner_field(owner_field(max).as_bytes()), Some(max));
        assert_eq!(parse_owner_field(b"12"), None);
        assert_eq!(parse_owner_field(b"x_1"), None);
    }

    #[test]
    fn the_locked_set_keeps_keys_with_other_fields_of_the_session() {
        let fields = vec![
            b"1_0000000000000001".to_vec(),
            b"2_0000000000000001".to_vec(),
        ];
        assert!(last_of_session(&fields, "1_0000000000000001", 1));
        let fields = vec![
            b"1_0000000000000001".to_vec(),
            b"1_0000000000000002".to_vec(),
        ];
        assert!(!last_of_session(&fields, "1_0000000000000001", 1));
    }

    #[test]
    fn unreadable_lock_values_are_corrupt() {
        let mut h = BTreeMap::new();
        h.insert(b"1_0000000000000001".to_vec(), b"R".to_vec());
        assert_eq!(
            parse_flocks("k", &h).unwrap(),
            vec![(LockOwner::new(1, 1), LockType::Read)]
        );
        h.insert(b"1_0000000000000002".to_vec(), b"X".to_vec());
        assert!(matches!(parse_flocks("k", &h), Err(MetaError::Corrupt(_))));
        let mut h = BTreeMap::new();
        h.insert(b"bad".to_vec(), Vec::new());
        assert!(matches!(parse_plocks("k", &h), Err(MetaError::Corrupt(_))));
    }
}
