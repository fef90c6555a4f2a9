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

    /// Runs `f` in a transaction and commits its writes, running it again on a conflict
    /// (with randomised, growing pauses, at most [`MAX_ATTEMPTS`] times). An error from `f`
    /// aborts the transaction and is returned as it is.
    fn txn<T, F, Fut>(&self, f: F) -> impl Future<Output = Result<T>> + Send
    where
        T: Send,
        F: Fn(Self::Txn) -> Fut + Send + Sync,
        Fut: Future<Output = Result<T>> + Send;
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
