//! File locks in JuiceFS's TKV keys.
//!
//! * `F{ino}`: every BSD lock of `ino`, 17-byte records `sid u64 | owner u64 | type u8`
//!   (`'R'`/`'W'`), big-endian;
//! * `P{ino}`: every owner's POSIX locks of `ino`, records `sid u64 | owner u64 |
//!   length u32 | ranges` with the ranges packed as [`meta_api::locks`] describes.
//!
//! A key is removed when its last lock goes. Closing or reaping a session drops its
//! records from every key (`release_locks` in the session module). Each attempt is one
//! transaction; a blocking request sleeps between attempts with nothing held.

use std::collections::BTreeMap;

use async_trait::async_trait;
use meta_api::backend::Locks;
use meta_api::locks::{
    decode_records, encode_records, find_conflict, flock_outcome, setlk_outcome,
};
use meta_api::{Ino, LockOwner, LockType, MetaError, PlockRequest, Result};

use super::{must_attr, TkvMeta};
use crate::keys::{be_u32, be_u64, Keys};
use crate::kv::{KvStore, KvTxn};

/// Size of one `F` record.
const FLOCK_RECORD: usize = 17;

/// Decodes an `F{ino}` value.
fn decode_flocks(v: &[u8]) -> Result<BTreeMap<LockOwner, LockType>> {
    if !v.len().is_multiple_of(FLOCK_RECORD) {
        return Err(MetaError::Corrupt(format!(
            "flock value of {} bytes is not a list of 17-byte records",
            v.len()
        )));
    }
    let mut out = BTreeMap::new();
    for r in v.chunks_exact(FLOCK_RECORD) {
        let who = LockOwner::new(be_u64(r, 0).unwrap_or(0), be_u64(r, 8).unwrap_or(0));
        let t = LockType::from_flock_byte(r[16])
            .ok_or_else(|| MetaError::Corrupt(format!("flock type {}", r[16])))?;
        out.insert(who, t);
    }
    Ok(out)
}

/// Encodes an `F{ino}` value.
fn encode_flocks(locks: &BTreeMap<LockOwner, LockType>) -> Vec<u8> {
    let mut out = Vec::with_capacity(locks.len() * FLOCK_RECORD);
    for (who, t) in locks {
        out.extend_from_slice(&who.sid.to_be_bytes());
        out.extend_from_slice(&who.owner.to_be_bytes());
        out.push(t.flock_byte().unwrap_or(b'R'));
    }
    out
}

/// Decodes a `P{ino}` value into each owner's packed ranges.
fn decode_plocks(v: &[u8]) -> Result<BTreeMap<LockOwner, Vec<u8>>> {
    let corrupt = || MetaError::Corrupt(format!("plock value of {} bytes is truncated", v.len()));
    let mut out = BTreeMap::new();
    let mut at = 0;
    while at < v.len() {
        let sid = be_u64(v, at).ok_or_else(corrupt)?;
        let owner = be_u64(v, at + 8).ok_or_else(corrupt)?;
        let n = be_u32(v, at + 16).ok_or_else(corrupt)? as usize;
        let records = v.get(at + 20..at + 20 + n).ok_or_else(corrupt)?;
        out.insert(LockOwner::new(sid, owner), records.to_vec());
        at += 20 + n;
    }
    Ok(out)
}

/// Encodes a `P{ino}` value.
fn encode_plocks(locks: &BTreeMap<LockOwner, Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::with_capacity(locks.values().map(|r| 20 + r.len()).sum());
    for (who, records) in locks {
        out.extend_from_slice(&who.sid.to_be_bytes());
        out.extend_from_slice(&who.owner.to_be_bytes());
        // A value longer than 4 GiB would need 170 million ranges of one owner.
        out.extend_from_slice(&(records.len() as u32).to_be_bytes());
        out.extend_from_slice(records);
    }
    out
}

/// Writes a lock key, or removes it when no lock is left.
fn put_or_clear<T: KvTxn>(tx: &T, key: &[u8], value: &[u8]) {
    if value.is_empty() {
        tx.clear(key);
    } else {
        tx.set(key, value);
    }
}

/// `SessionLost` unless session `sid` has its key, read in the lock's transaction so that
/// a reap before the commit conflicts with it (a lock of a reaped session would never be
/// reaped).
async fn need_session<T: KvTxn>(tx: &T, keys: &Keys, sid: u64) -> Result<()> {
    match tx.get(&keys.session(sid)).await? {
        Some(_) => Ok(()),
        None => Err(MetaError::SessionLost),
    }
}

#[async_trait]
impl<K: KvStore> Locks for TkvMeta<K> {
    fn lock_session(&self) -> u64 {
        self.session_id().unwrap_or(0)
    }

    /// One attempt of a `flock` request.
    async fn try_flock(&self, ino: Ino, me: LockOwner, ltype: LockType) -> Result<()> {
        let keys = &self.keys;
        self.kv
            .txn(|tx| async move {
                let key = keys.flock(ino);
                let raw = tx.get(&key).await?;
                if ltype != LockType::Unlock {
                    need_session(&tx, keys, me.sid).await?;
                    must_attr(&tx, keys, ino).await?;
                }
                let mut locks = match &raw {
                    Some(v) => decode_flocks(v)?,
                    None if ltype == LockType::Unlock => return Ok(()),
                    None => BTreeMap::new(),
                };
                let held = locks.iter().map(|(o, t)| (*o, *t));
                match flock_outcome(held, me, ltype)? {
                    Some(t) => locks.insert(me, t),
                    None => locks.remove(&me),
                };
                let new = encode_flocks(&locks);
                if raw.as_deref() != Some(new.as_slice()) {
                    put_or_clear(&tx, &key, &new);
                }
                Ok(())
            })
            .await
    }

    async fn getlk(&self, ino: Ino, me: LockOwner, lock: &mut PlockRequest) -> Result<()> {
        let keys = &self.keys;
        let raw = self
            .kv
            .txn(|tx| async move {
                must_attr(&tx, keys, ino).await?;
                tx.get(&keys.plock(ino)).await
            })
            .await?;
        let mut held = Vec::new();
        for (who, records) in decode_plocks(raw.as_deref().unwrap_or_default())? {
            held.push((who, decode_records(&records)?));
        }
        *lock = find_conflict(held.iter().map(|(o, r)| (*o, r.as_slice())), me, lock);
        Ok(())
    }

    /// One attempt of a `setlk`.
    async fn try_setlk(&self, ino: Ino, me: LockOwner, req: PlockRequest) -> Result<()> {
        let keys = &self.keys;
        self.kv
            .txn(|tx| async move {
                let key = keys.plock(ino);
                let raw = tx.get(&key).await?;
                let unlock = req.ltype == LockType::Unlock;
                if !unlock {
                    need_session(&tx, keys, me.sid).await?;
                    must_attr(&tx, keys, ino).await?;
                }
                let mut owners = decode_plocks(raw.as_deref().unwrap_or_default())?;
                let new = if unlock {
                    // Only the owner's own ranges matter: an unlock conflicts with nobody.
                    let Some(mine) = owners.get(&me) else {
                        return Ok(());
                    };
                    let mine = decode_records(mine)?;
                    setlk_outcome([(me, mine.as_slice())], me, &req)?
                } else {
                    let mut held = Vec::with_capacity(owners.len());
                    for (who, records) in &owners {
                        held.push((*who, decode_records(records)?));
                    }
                    setlk_outcome(held.iter().map(|(o, r)| (*o, r.as_slice())), me, &req)?
                };
                if new.is_empty() {
                    owners.remove(&me);
                } else {
                    owners.insert(me, encode_records(&new));
                }
                let value = encode_plocks(&owners);
                if raw.as_deref() != Some(value.as_slice()) {
                    put_or_clear(&tx, &key, &value);
                }
                Ok(())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flock_values_round_trip() {
        let mut m = BTreeMap::new();
        m.insert(LockOwner::new(1, 2), LockType::Read);
        m.insert(LockOwner::new(3, u64::MAX), LockType::Write);
        let v = encode_flocks(&m);
        assert_eq!(v.len(), 34);
        assert_eq!(&v[..17], b"\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0\x02R");
        assert_eq!(decode_flocks(&v).unwrap(), m);
        assert!(matches!(
            decode_flocks(&v[..20]),
            Err(MetaError::Corrupt(_))
        ));
        let mut bad = v.clone();
        bad[16] = b'X';
        assert!(matches!(decode_flocks(&bad), Err(MetaError::Corrupt(_))));
    }

    #[test]
    fn plock_values_round_trip() {
        let mut m = BTreeMap::new();
        m.insert(LockOwner::new(1, 2), vec![7u8; 24]);
        m.insert(LockOwner::new(2, 1), vec![8u8; 48]);
        let v = encode_plocks(&m);
        assert_eq!(v.len(), 20 + 24 + 20 + 48);
        assert_eq!(&v[16..20], &[0, 0, 0, 24]);
        assert_eq!(decode_plocks(&v).unwrap(), m);
        assert!(matches!(
            decode_plocks(&v[..30]),
            Err(MetaError::Corrupt(_))
        ));
        assert!(decode_plocks(&[]).unwrap().is_empty());
    }
}
