//! The small transactional key-value contract the engine is written against, and its
//! retry policy.
//!
//! A store hands out transactions as retried closures (the shape of FoundationDB's
//! `Database::run`): [`KvStore::txn`] runs the closure against a fresh [`KvTxn`], commits
//! what it wrote, and runs it again from scratch when the commit conflicts with another
//! transaction. A closure that returns an error commits nothing.

use std::future::Future;

use meta_api::Result;

#[cfg(feature = "fdb")]
pub mod fdb;
pub mod mem;

/// A key and its value, as range scans return them.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// How many times a conflicting transaction is attempted before giving up with
/// [`meta_api::MetaError::Conflict`] (JuiceFS uses the same bound).
pub const MAX_ATTEMPTS: u32 = 50;

/// One transaction of an ordered key-value store with serializable isolation.
///
/// Reads see the transaction's own earlier writes. Writes are buffered and become visible
/// to others only when [`KvStore::txn`] commits them, all at once. Handles are cheap to
/// clone; all clones are the same transaction.
pub trait KvTxn: Clone + Send + Sync + 'static {
    /// The value of `key`, `None` if there is none.
    fn get(&self, key: &[u8]) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;

    /// The pairs with `begin <= key < end` in key order (descending when `reverse`), at
    /// most `limit` of them (`0` means no limit).
    fn scan(
        &self,
        begin: &[u8],
        end: &[u8],
        limit: usize,
        reverse: bool,
    ) -> impl Future<Output = Result<Vec<KeyValue>>> + Send;

    /// Sets `key` to `value`.
    fn set(&self, key: &[u8], value: &[u8]);

    /// Removes `key`.
    fn clear(&self, key: &[u8]);

    /// Removes every key with `begin <= key < end`.
    fn clear_range(&self, begin: &[u8], end: &[u8]);

    /// Adds `delta` to the little-endian 64-bit integer stored at `key` (a missing key
    /// counts as zero), without reading it: concurrent adds never conflict. This is
    /// FoundationDB's `ADD` mutation, the encoding JuiceFS uses for its counters.
    fn atomic_add(&self, key: &[u8], delta: i64);
}

/// An ordered key-value store with serializable transactions.
pub trait KvStore: Send + Sync + 'static {
    /// The store's transaction handle.
    type Txn: KvTxn;

    /// The URL scheme of the store (`tkv-mem`, `fdb`), also the engine's name.
    const SCHEME: &'static str;

    /// This store with its commit markers ([`markers`]) under `prefix`, the volume's key
    /// prefix (the engine sets it).
    fn with_marker_prefix(self, prefix: &[u8]) -> Self
    where
        Self: Sized;

    /// Runs `f` in a transaction and commits its writes, running it again on a conflict
    /// (with randomised, growing pauses, at most [`MAX_ATTEMPTS`] times). An error from `f`
    /// aborts the transaction and is returned as it is.
    fn txn<T, F, Fut>(&self, f: F) -> impl Future<Output = Result<T>> + Send
    where
        T: Send,
        F: Fn(Self::Txn) -> Fut + Send + Sync,
        Fut: Future<Output = Result<T>> + Send;
}

/// Commit markers: what makes a transaction safe to run again after a commit whose
/// outcome was unknown (FoundationDB's `commit_unknown_result`: the connection dropped
/// after the commit was sent). Running the closure again blindly would apply a
/// non-idempotent change twice — a create answering `EEXIST` to its own success, a
/// reference counted twice.
///
/// Each [`KvStore::txn`] call draws a token; every attempt writes the marker
/// `PREFIX txnMarker\0 SECONDS TOKEN` (seconds and token big-endian) whose value is the
/// attempt's number, and keeps the closure's answer while its outcome is unknown. The
/// attempt after an unknown outcome first reads the marker: present, that attempt
/// committed and its answer is returned; absent, none did (the read makes a late commit
/// conflict with this attempt), and the closure runs again. Markers are cleared in bulk,
/// by a range clear of those older than [`markers::KEEP_SECS`] that rides along with a
/// transaction at most once a minute.
pub mod markers {
    use meta_api::{MetaError, Result, Timestamp};

    /// What every marker key has after the volume prefix.
    pub const TAG: &[u8] = b"txnMarker\0";
    /// How long a marker is kept: far longer than any transaction may run.
    pub const KEEP_SECS: u64 = 600;
    /// How often, at most, old markers are cleared.
    pub const SWEEP_SECS: u64 = 60;

    fn now_secs() -> u64 {
        Timestamp::now().sec.max(0).unsigned_abs()
    }

    /// The marker key of a new [`KvStore::txn`](super::KvStore::txn) call.
    pub fn new_key(prefix: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(prefix.len() + TAG.len() + 24);
        k.extend_from_slice(prefix);
        k.extend_from_slice(TAG);
        k.extend_from_slice(&now_secs().to_be_bytes());
        k.extend_from_slice(&rand::random::<u128>().to_be_bytes());
        k
    }

    /// The range of markers under `prefix` old enough to clear, when a sweep is due by
    /// `last` (the time of the last sweep, updated here); `None` otherwise.
    pub fn due_sweep(
        prefix: &[u8],
        last: &std::sync::atomic::AtomicU64,
    ) -> Option<(Vec<u8>, Vec<u8>)> {
        use std::sync::atomic::Ordering;
        let now = now_secs();
        let before = last.load(Ordering::Relaxed);
        if now < before.saturating_add(SWEEP_SECS)
            || last
                .compare_exchange(before, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return None;
        }
        let mut begin = prefix.to_vec();
        begin.extend_from_slice(TAG);
        let mut end = begin.clone();
        end.extend_from_slice(&now.saturating_sub(KEEP_SECS).to_be_bytes());
        Some((begin, end))
    }

    /// The value of an attempt's marker.
    pub fn value(attempt: u32) -> [u8; 4] {
        attempt.to_le_bytes()
    }

    /// The answer of the attempt a marker found after an unknown outcome names, taken
    /// from the answers kept of attempts whose outcome was unknown.
    pub fn committed<T>(found: &[u8], kept: &mut Vec<(u32, T)>) -> Result<T> {
        let attempt = <[u8; 4]>::try_from(found)
            .map(u32::from_le_bytes)
            .map_err(|_| MetaError::Corrupt(format!("commit marker value {found:?}")))?;
        match kept.iter().position(|(a, _)| *a == attempt) {
            Some(i) => Ok(kept.swap_remove(i).1),
            None => Err(MetaError::Corrupt(format!(
                "commit marker names attempt {attempt}, whose outcome was not unknown"
            ))),
        }
    }
}

/// The smallest key greater than every key that starts with `prefix` (JuiceFS's
/// `nextKey`): the exclusive end of a prefix scan.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.last_mut() {
        if *last < 0xff {
            *last += 1;
            return end;
        }
        end.pop();
    }
    // Only an all-0xFF prefix gets here; no key of the engine's starts with one.
    vec![0xff; prefix.len() + 1]
}

/// The key right after `key` in byte order (`key` followed by a zero byte).
pub fn key_after(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.extend_from_slice(key);
    k.push(0);
    k
}

/// Encodes a counter value as JuiceFS's TKV engines do (little-endian, FoundationDB `ADD`
/// compatible).
pub fn pack_counter(v: i64) -> [u8; 8] {
    v.to_le_bytes()
}

/// Decodes a counter value; a missing value is zero. Values shorter than 8 bytes are
/// zero-extended, longer ones truncated, as FoundationDB's `ADD` treats its operand.
pub fn parse_counter(v: Option<&[u8]>) -> i64 {
    let mut b = [0u8; 8];
    if let Some(v) = v {
        let n = v.len().min(8);
        b[..n].copy_from_slice(&v[..n]);
    }
    i64::from_le_bytes(b)
}

/// Adds `delta` to a stored counter value the way FoundationDB's `ADD` mutation does with
/// an 8-byte operand.
pub(crate) fn add_counter(base: Option<&[u8]>, delta: i64) -> Vec<u8> {
    pack_counter(parse_counter(base).wrapping_add(delta)).to_vec()
}

/// The pauses between attempts of a conflicting transaction: full jitter under a ceiling
/// of 1 ms doubling up to 500 ms (JuiceFS waits up to `attempt²` ms).
pub(crate) fn conflict_backoff() -> meta_api::backoff::Backoff {
    meta_api::backoff::Backoff::new(
        std::time::Duration::from_millis(1),
        std::time::Duration::from_millis(500),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_carries_over_ff() {
        assert_eq!(prefix_end(b"A"), b"B".to_vec());
        assert_eq!(prefix_end(&[1, 0xff]), vec![2]);
        assert_eq!(prefix_end(&[0xff]), vec![0xff, 0xff]);
        assert_eq!(key_after(b"ab"), b"ab\0".to_vec());
    }

    #[test]
    fn counters_are_little_endian() {
        assert_eq!(pack_counter(1), [1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(parse_counter(None), 0);
        assert_eq!(parse_counter(Some(&[2])), 2);
        assert_eq!(parse_counter(Some(&pack_counter(-3))), -3);
        assert_eq!(
            add_counter(Some(&pack_counter(5)), -7),
            pack_counter(-2).to_vec()
        );
    }
}
