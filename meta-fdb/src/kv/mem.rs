//! An in-process ordered key-value store with serializable optimistic transactions.
//!
//! Every transaction records what it read (keys and scanned ranges) and buffers what it
//! writes. At commit it is checked against every transaction that committed since it
//! started: if one of them wrote a key it read, or into a range it scanned (a phantom),
//! the commit fails as a conflict and [`KvStore::txn`] runs the closure again. Blind
//! writes and [`KvTxn::atomic_add`] never conflict, as in FoundationDB.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::future::Future;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use meta_api::{MetaError, Result};

use super::{add_counter, conflict_backoff, markers, KeyValue, KvStore, KvTxn, MAX_ATTEMPTS};

/// An in-process ordered key-value store. Clones share the same data.
///
/// [`MemKv::named`] gives every caller in the process that uses the same name the same
/// store, so that two engine clients can open one volume (`tkv-mem://name`).
#[derive(Clone, Default)]
pub struct MemKv {
    shared: Arc<Shared>,
    /// Where this handle's commit markers go ([`super::markers`]; written only while
    /// unknown outcomes are injected).
    marker_prefix: Option<Arc<[u8]>>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Every this many commits ends with an unknown outcome (0: none), alternately
    /// applied and not.
    unknown_every: AtomicU64,
    /// Commits through [`KvStore::txn`] so far, for the injection.
    commits: AtomicU64,
    /// Unknown outcomes injected so far.
    unknowns: AtomicU64,
    /// When old commit markers were last cleared.
    last_sweep: AtomicU64,
}

/// How one commit through [`KvStore::txn`] ended.
enum Commit {
    Done,
    Conflict,
    /// The outcome is unknown (injected): the writes were applied or not.
    Unknown,
}

#[derive(Default)]
struct State {
    data: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Version of the last commit.
    version: u64,
    /// What each commit since the oldest live transaction started wrote.
    log: VecDeque<(u64, Arc<Written>)>,
    /// Start versions of live transactions, with how many started at each.
    active: BTreeMap<u64, usize>,
}

/// The keys and ranges one commit wrote.
#[derive(Default)]
struct Written {
    keys: Vec<Vec<u8>>,
    ranges: Vec<(Vec<u8>, Vec<u8>)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the maps consistent before it can panic, so a
    // poisoned lock still guards valid data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn registry() -> &'static Mutex<HashMap<String, MemKv>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, MemKv>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

impl MemKv {
    /// A new, empty store of its own.
    pub fn new() -> MemKv {
        MemKv::default()
    }

    /// The process-wide store called `name`, created empty on first use. It lives until
    /// the process exits or [`MemKv::forget`] drops the name.
    pub fn named(name: &str) -> MemKv {
        lock(registry())
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    /// Drops the process-wide name `name`; clients that already hold the store keep it.
    pub fn forget(name: &str) {
        lock(registry()).remove(name);
    }

    /// Makes every `every`-th commit through [`KvStore::txn`] end with an unknown outcome
    /// (0 stops it), alternately applied and not, as FoundationDB's
    /// `commit_unknown_result` can be: for testing that a transaction run again after one
    /// changes nothing twice. Every clone of the store is affected.
    pub fn inject_unknown_commits(&self, every: u64) {
        self.shared.unknown_every.store(every, Ordering::Relaxed);
    }

    /// How many unknown outcomes were injected so far.
    pub fn unknown_commits(&self) -> u64 {
        self.shared.unknowns.load(Ordering::Relaxed)
    }

    /// The marker key of a new transaction, when markers are written.
    fn new_marker(&self) -> Option<Vec<u8>> {
        let on = self.shared.unknown_every.load(Ordering::Relaxed) > 0;
        match &self.marker_prefix {
            Some(p) if on => Some(markers::new_key(p)),
            _ => None,
        }
    }

    /// Commits `tx` as [`KvStore::txn`] does, injecting an unknown outcome when asked to.
    fn commit_txn(&self, tx: &MemTxn) -> Result<Commit> {
        let every = self.shared.unknown_every.load(Ordering::Relaxed);
        let n = self.shared.commits.fetch_add(1, Ordering::Relaxed) + 1;
        let unknown = every > 0 && n.is_multiple_of(every);
        // Every other unknown outcome is lost before it is applied; the rest are applied
        // and only their answer is lost.
        if unknown && self.shared.unknowns.fetch_add(1, Ordering::Relaxed) % 2 == 1 {
            return Ok(Commit::Unknown);
        }
        match tx.commit() {
            Ok(()) if unknown => Ok(Commit::Unknown),
            Ok(()) => Ok(Commit::Done),
            Err(MetaError::Conflict) => Ok(Commit::Conflict),
            Err(e) => Err(e),
        }
    }

    /// Every committed pair, in key order (for tests and debugging).
    pub fn entries(&self) -> Vec<KeyValue> {
        let st = lock(&self.shared.state);
        st.data
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Starts a transaction. Most callers want [`KvStore::txn`], which also commits and
    /// retries; this is for driving transactions by hand.
    pub fn begin(&self) -> MemTxn {
        let mut st = lock(&self.shared.state);
        let start = st.version;
        *st.active.entry(start).or_insert(0) += 1;
        MemTxn {
            inner: Arc::new(TxnInner {
                shared: self.shared.clone(),
                start,
                began: std::time::Instant::now(),
                buf: Mutex::new(TxnBuf::default()),
            }),
        }
    }
}

/// A transaction of a [`MemKv`].
#[derive(Clone)]
pub struct MemTxn {
    inner: Arc<TxnInner>,
}

struct TxnInner {
    shared: Arc<Shared>,
    start: u64,
    began: std::time::Instant,
    buf: Mutex<TxnBuf>,
}

/// FoundationDB's limits, enforced here so that what passes on the in-process store also
/// commits on a cluster (<https://apple.github.io/foundationdb/known-limitations.html>).
pub mod limits {
    /// Largest key, in bytes.
    pub const KEY_BYTES: usize = 10_000;
    /// Largest value, in bytes.
    pub const VALUE_BYTES: usize = 100_000;
    /// Most bytes one transaction may write (keys and values of its mutations).
    pub const TXN_BYTES: usize = 10_000_000;
    /// Longest a transaction may run before it is too old to commit.
    pub const TXN_TIME: std::time::Duration = std::time::Duration::from_secs(5);
}

impl Drop for TxnInner {
    fn drop(&mut self) {
        let mut st = lock(&self.shared.state);
        if let Some(n) = st.active.get_mut(&self.start) {
            *n -= 1;
            if *n == 0 {
                st.active.remove(&self.start);
            }
        }
        prune_log(&mut st);
    }
}

fn prune_log(st: &mut State) {
    match st.active.keys().next().copied() {
        None => st.log.clear(),
        Some(oldest) => {
            while st.log.front().is_some_and(|(v, _)| *v <= oldest) {
                st.log.pop_front();
            }
        }
    }
}

/// A buffered write.
#[derive(Clone, Debug)]
enum Op {
    Set(Vec<u8>),
    Clear,
    /// An atomic add whose base value has not been looked at.
    Add(i64),
}

#[derive(Default)]
struct TxnBuf {
    read_keys: BTreeSet<Vec<u8>>,
    read_ranges: Vec<(Vec<u8>, Vec<u8>)>,
    writes: BTreeMap<Vec<u8>, Op>,
    /// Ranges cleared by this transaction, applied before `writes` at commit: a write
    /// into a cleared range is always newer than the clear (clearing drops older writes).
    cleared: Vec<(Vec<u8>, Vec<u8>)>,
}

impl TxnBuf {
    fn in_cleared(&self, key: &[u8]) -> bool {
        self.cleared
            .iter()
            .any(|(b, e)| b.as_slice() <= key && key < e.as_slice())
    }

    /// The value this transaction sees for a key whose committed value is `committed`.
    fn overlay(&self, key: &[u8], committed: Option<&Vec<u8>>) -> Option<Vec<u8>> {
        let base = if self.in_cleared(key) {
            None
        } else {
            committed
        };
        match self.writes.get(key) {
            Some(Op::Set(v)) => Some(v.clone()),
            Some(Op::Clear) => None,
            Some(Op::Add(d)) => Some(add_counter(base.map(|v| v.as_slice()), *d)),
            None => base.cloned(),
        }
    }

    fn conflicts_with(&self, w: &Written) -> bool {
        let hits_ranges = |k: &[u8]| {
            self.read_ranges
                .iter()
                .any(|(b, e)| b.as_slice() <= k && k < e.as_slice())
        };
        for k in &w.keys {
            if self.read_keys.contains(k) || hits_ranges(k) {
                return true;
            }
        }
        for (b, e) in &w.ranges {
            if b >= e {
                continue;
            }
            let range = (Bound::Included(b.clone()), Bound::Excluded(e.clone()));
            if self.read_keys.range(range).next().is_some() {
                return true;
            }
            if self.read_ranges.iter().any(|(rb, re)| rb < e && b < re) {
                return true;
            }
        }
        false
    }
}

impl MemTxn {
    fn buf(&self) -> MutexGuard<'_, TxnBuf> {
        lock(&self.inner.buf)
    }

    fn get_now(&self, key: &[u8]) -> Option<Vec<u8>> {
        let st = lock(&self.inner.shared.state);
        let mut buf = self.buf();
        let needs_base = !matches!(buf.writes.get(key), Some(Op::Set(_)) | Some(Op::Clear));
        if needs_base && !buf.in_cleared(key) {
            buf.read_keys.insert(key.to_vec());
        }
        buf.overlay(key, st.data.get(key))
    }

    fn scan_now(&self, begin: &[u8], end: &[u8], limit: usize, reverse: bool) -> Vec<KeyValue> {
        let mut out = Vec::new();
        if begin >= end {
            return out;
        }
        let st = lock(&self.inner.shared.state);
        let mut buf = self.buf();
        let range = || {
            (
                Bound::Included(begin.to_vec()),
                Bound::Excluded(end.to_vec()),
            )
        };
        // Merge the committed keys with this transaction's writes, in scan order.
        let mut committed: Box<dyn Iterator<Item = (&Vec<u8>, &Vec<u8>)>> = if reverse {
            Box::new(st.data.range(range()).rev())
        } else {
            Box::new(st.data.range(range()))
        };
        let mut written: Box<dyn Iterator<Item = (&Vec<u8>, &Op)>> = if reverse {
            Box::new(buf.writes.range(range()).rev())
        } else {
            Box::new(buf.writes.range(range()))
        };
        let mut c = committed.next();
        let mut w = written.next();
        let mut last: Option<Vec<u8>> = None;
        loop {
            let key = match (c, w) {
                (None, None) => break,
                (Some((ck, _)), None) => ck.clone(),
                (None, Some((wk, _))) => wk.clone(),
                (Some((ck, _)), Some((wk, _))) => {
                    if (ck < wk) != reverse {
                        ck.clone()
                    } else {
                        wk.clone()
                    }
                }
            };
            let base = match c {
                Some((ck, cv)) if *ck == key => {
                    c = committed.next();
                    Some(cv)
                }
                _ => None,
            };
            let value = match w {
                Some((wk, _)) if *wk == key => {
                    w = written.next();
                    buf.overlay(&key, base)
                }
                _ => {
                    if buf.in_cleared(&key) {
                        None
                    } else {
                        base.cloned()
                    }
                }
            };
            if let Some(v) = value {
                out.push((key.clone(), v));
                if limit > 0 && out.len() >= limit {
                    last = Some(key);
                    break;
                }
            }
        }
        drop(committed);
        drop(written);
        // Record what was actually read: a scan cut short by its limit only depends on
        // the keys up to where it stopped.
        let read = match (last, reverse) {
            (Some(k), false) => (begin.to_vec(), super::key_after(&k)),
            (Some(k), true) => (k, end.to_vec()),
            (None, _) => (begin.to_vec(), end.to_vec()),
        };
        buf.read_ranges.push(read);
        out
    }

    /// Whether a transaction committed since this one started wrote something this one
    /// read (so what it read may be inconsistent, and a commit would fail).
    pub fn is_stale(&self) -> bool {
        let st = lock(&self.inner.shared.state);
        let buf = self.buf();
        stale(&st, self.inner.start, &buf)
    }

    /// Commits the buffered writes, or fails with [`MetaError::Conflict`] when a
    /// transaction committed since this one started wrote something this one read.
    pub fn commit(&self) -> Result<()> {
        let mut st = lock(&self.inner.shared.state);
        let mut buf = self.buf();
        if stale(&st, self.inner.start, &buf) {
            return Err(MetaError::Conflict);
        }
        if buf.writes.is_empty() && buf.cleared.is_empty() {
            return Ok(());
        }
        check_limits(&buf, self.inner.began.elapsed())?;
        let cleared = std::mem::take(&mut buf.cleared);
        let writes = std::mem::take(&mut buf.writes);
        let mut written = Written::default();
        for (b, e) in cleared {
            if b < e {
                let doomed: Vec<Vec<u8>> = st
                    .data
                    .range((Bound::Included(b.clone()), Bound::Excluded(e.clone())))
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in doomed {
                    st.data.remove(&k);
                }
            }
            written.ranges.push((b, e));
        }
        for (k, op) in writes {
            match op {
                Op::Set(v) => {
                    st.data.insert(k.clone(), v);
                }
                Op::Clear => {
                    st.data.remove(&k);
                }
                Op::Add(d) => {
                    let v = add_counter(st.data.get(&k).map(|v| v.as_slice()), d);
                    st.data.insert(k.clone(), v);
                }
            }
            written.keys.push(k);
        }
        st.version += 1;
        let version = st.version;
        st.log.push_back((version, Arc::new(written)));
        prune_log(&mut st);
        Ok(())
    }
}

/// Refuses a commit FoundationDB would refuse: a key over 10,000 bytes or a value over
/// 100,000 (permanent errors, as FDB's `key_too_large`/`value_too_large`), more than 10 MB
/// written (`transaction_too_large`), or a transaction older than 5 s (`transaction_too_old`,
/// retried like a conflict, as FDB's own retry loop does).
fn check_limits(buf: &TxnBuf, age: std::time::Duration) -> Result<()> {
    let mut total = 0usize;
    for (k, op) in &buf.writes {
        if k.len() > limits::KEY_BYTES {
            return Err(MetaError::backend(
                false,
                format!(
                    "key of {} bytes: FoundationDB allows {}",
                    k.len(),
                    limits::KEY_BYTES
                ),
            ));
        }
        let v = match op {
            Op::Set(v) => v.len(),
            Op::Add(_) => 8,
            Op::Clear => 0,
        };
        if v > limits::VALUE_BYTES {
            return Err(MetaError::backend(
                false,
                format!(
                    "value of {v} bytes: FoundationDB allows {}",
                    limits::VALUE_BYTES
                ),
            ));
        }
        total += k.len() + v;
    }
    total += buf
        .cleared
        .iter()
        .map(|(b, e)| b.len() + e.len())
        .sum::<usize>();
    if total > limits::TXN_BYTES {
        return Err(MetaError::backend(
            false,
            format!(
                "transaction of {total} bytes: FoundationDB allows {}",
                limits::TXN_BYTES
            ),
        ));
    }
    if age > limits::TXN_TIME {
        return Err(MetaError::Conflict);
    }
    Ok(())
}

fn stale(st: &State, start: u64, buf: &TxnBuf) -> bool {
    if buf.read_keys.is_empty() && buf.read_ranges.is_empty() {
        return false;
    }
    st.log
        .iter()
        .filter(|(v, _)| *v > start)
        .any(|(_, w)| buf.conflicts_with(w))
}

impl KvTxn for MemTxn {
    fn get(&self, key: &[u8]) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send {
        std::future::ready(Ok(self.get_now(key)))
    }

    fn scan(
        &self,
        begin: &[u8],
        end: &[u8],
        limit: usize,
        reverse: bool,
    ) -> impl Future<Output = Result<Vec<KeyValue>>> + Send {
        std::future::ready(Ok(self.scan_now(begin, end, limit, reverse)))
    }

    fn set(&self, key: &[u8], value: &[u8]) {
        self.buf()
            .writes
            .insert(key.to_vec(), Op::Set(value.to_vec()));
    }

    fn clear(&self, key: &[u8]) {
        self.buf().writes.insert(key.to_vec(), Op::Clear);
    }

    fn clear_range(&self, begin: &[u8], end: &[u8]) {
        if begin >= end {
            return;
        }
        let mut buf = self.buf();
        let doomed: Vec<Vec<u8>> = buf
            .writes
            .range((
                Bound::Included(begin.to_vec()),
                Bound::Excluded(end.to_vec()),
            ))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            buf.writes.remove(&k);
        }
        buf.cleared.push((begin.to_vec(), end.to_vec()));
    }

    fn atomic_add(&self, key: &[u8], delta: i64) {
        let mut buf = self.buf();
        let known_absent = buf.in_cleared(key);
        let op = match buf.writes.get(key) {
            Some(Op::Set(v)) => Op::Set(add_counter(Some(v), delta)),
            Some(Op::Clear) => Op::Set(add_counter(None, delta)),
            Some(Op::Add(d)) => Op::Add(d.wrapping_add(delta)),
            None if known_absent => Op::Set(add_counter(None, delta)),
            None => Op::Add(delta),
        };
        buf.writes.insert(key.to_vec(), op);
    }
}

impl KvStore for MemKv {
    type Txn = MemTxn;
    const SCHEME: &'static str = "tkv-mem";

    fn with_marker_prefix(mut self, prefix: &[u8]) -> Self {
        self.marker_prefix = Some(prefix.into());
        self
    }

    fn txn<T, F, Fut>(&self, f: F) -> impl Future<Output = Result<T>> + Send
    where
        T: Send,
        F: Fn(Self::Txn) -> Fut + Send + Sync,
        Fut: Future<Output = Result<T>> + Send,
    {
        let store = self.clone();
        async move {
            let marker = store.new_marker();
            // The answers of attempts whose outcome was unknown (see `markers`).
            let mut unknown: Vec<(u32, T)> = Vec::new();
            let mut pauses = conflict_backoff();
            for attempt in 0..MAX_ATTEMPTS {
                let tx = store.begin();
                if let (Some(m), false) = (&marker, unknown.is_empty()) {
                    if let Some(found) = tx.get_now(m) {
                        return markers::committed(&found, &mut unknown);
                    }
                }
                match f(tx.clone()).await {
                    Ok(v) => {
                        // A read-only transaction stays one (nothing to apply twice).
                        let wrote = {
                            let buf = tx.buf();
                            !buf.writes.is_empty() || !buf.cleared.is_empty()
                        };
                        if let (true, Some(m), Some(p)) = (wrote, &marker, &store.marker_prefix) {
                            tx.set(m, &markers::value(attempt));
                            if let Some((b, e)) = markers::due_sweep(p, &store.shared.last_sweep) {
                                tx.clear_range(&b, &e);
                            }
                        }
                        match store.commit_txn(&tx)? {
                            Commit::Done => return Ok(v),
                            Commit::Conflict => {}
                            Commit::Unknown => unknown.push((attempt, v)),
                        }
                    }
                    // An error computed from reads that another commit has since changed
                    // may be an artefact of an inconsistent view: run again.
                    Err(e) => {
                        if !tx.is_stale() {
                            return Err(e);
                        }
                    }
                }
                drop(tx);
                tokio::time::sleep(pauses.next_pause()).await;
            }
            Err(MetaError::Conflict)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Adds one to counter `pn` by reading and writing it (not idempotent); the new value.
    async fn bump(kv: &MemKv) -> Result<i64> {
        kv.txn(|tx| async move {
            let n = super::super::parse_counter(tx.get(b"pn").await?.as_deref()) + 1;
            tx.set(b"pn", &super::super::pack_counter(n));
            Ok(n)
        })
        .await
    }

    #[tokio::test]
    async fn a_transaction_after_an_unknown_outcome_applies_once() {
        let kv = MemKv::new().with_marker_prefix(b"p");
        kv.inject_unknown_commits(1);
        for i in 1..=6 {
            assert_eq!(bump(&kv).await.unwrap(), i, "each call counts once");
        }
        assert!(kv.unknown_commits() >= 6, "{}", kv.unknown_commits());
        let markers = kv
            .entries()
            .iter()
            .filter(|(k, _)| k.starts_with(b"ptxnMarker"))
            .count();
        assert!(markers >= 1, "markers are written");
        kv.inject_unknown_commits(0);
        assert_eq!(bump(&kv).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn without_markers_an_unknown_outcome_would_count_twice() {
        // The same store with no marker prefix retries blindly: what markers prevent.
        let kv = MemKv::new();
        kv.inject_unknown_commits(2);
        let mut last = 0;
        for _ in 0..4 {
            last = bump(&kv).await.unwrap();
        }
        assert!(last > 4, "counted {last} for 4 calls");
    }

    fn get(tx: &MemTxn, k: &[u8]) -> Option<Vec<u8>> {
        tx.get_now(k)
    }

    #[test]
    fn reads_see_own_writes_and_commit_applies_them() {
        let kv = MemKv::new();
        let t = kv.begin();
        t.set(b"a", b"1");
        t.set(b"b", b"2");
        t.clear(b"a");
        t.atomic_add(b"c", 5);
        assert_eq!(get(&t, b"a"), None);
        assert_eq!(get(&t, b"c"), Some(5i64.to_le_bytes().to_vec()));
        t.commit().unwrap();
        let t = kv.begin();
        t.atomic_add(b"c", -2);
        assert_eq!(get(&t, b"c"), Some(3i64.to_le_bytes().to_vec()));
        t.commit().unwrap();
        assert_eq!(
            kv.entries(),
            vec![
                (b"b".to_vec(), b"2".to_vec()),
                (b"c".to_vec(), 3i64.to_le_bytes().to_vec())
            ]
        );
    }

    #[test]
    fn foundationdb_limits_are_enforced() {
        let kv = MemKv::new();
        let tx = kv.begin();
        tx.set(b"k", &vec![0u8; limits::VALUE_BYTES]);
        assert!(tx.commit().is_ok(), "a value at the limit commits");
        let tx = kv.begin();
        tx.set(b"k", &vec![0u8; limits::VALUE_BYTES + 1]);
        assert!(matches!(
            tx.commit(),
            Err(MetaError::Backend {
                retryable: false,
                ..
            })
        ));
        let tx = kv.begin();
        tx.set(&vec![b'k'; limits::KEY_BYTES + 1], b"v");
        assert!(matches!(
            tx.commit(),
            Err(MetaError::Backend {
                retryable: false,
                ..
            })
        ));
        let tx = kv.begin();
        for i in 0..101u32 {
            tx.set(&i.to_be_bytes(), &vec![0u8; limits::VALUE_BYTES]);
        }
        assert!(matches!(
            tx.commit(),
            Err(MetaError::Backend {
                retryable: false,
                ..
            })
        ));
        assert_eq!(
            get(&kv.begin(), b"k").map(|v| v.len()),
            Some(limits::VALUE_BYTES)
        );
        assert_eq!(
            get(&kv.begin(), &0u32.to_be_bytes()),
            None,
            "nothing of a refused commit"
        );
    }

    #[test]
    fn read_write_conflict_is_detected() {
        let kv = MemKv::new();
        let t1 = kv.begin();
        let t2 = kv.begin();
        assert_eq!(get(&t1, b"x"), None);
        t1.set(b"y", b"1");
        t2.set(b"x", b"2");
        t2.commit().unwrap();
        assert!(t1.is_stale());
        assert!(matches!(t1.commit(), Err(MetaError::Conflict)));
        // Nothing of the failed transaction is visible.
        assert_eq!(kv.entries(), vec![(b"x".to_vec(), b"2".to_vec())]);
    }

    #[test]
    fn blind_writes_and_atomic_adds_do_not_conflict() {
        let kv = MemKv::new();
        let t1 = kv.begin();
        let t2 = kv.begin();
        t1.atomic_add(b"n", 1);
        t1.set(b"k", b"1");
        t2.atomic_add(b"n", 1);
        t2.set(b"k", b"2");
        t2.commit().unwrap();
        t1.commit().unwrap();
        let t = kv.begin();
        assert_eq!(get(&t, b"n"), Some(2i64.to_le_bytes().to_vec()));
        assert_eq!(get(&t, b"k"), Some(b"1".to_vec()));
    }

    #[test]
    fn phantom_in_a_scanned_range_is_detected() {
        let kv = MemKv::new();
        let t0 = kv.begin();
        t0.set(b"d/a", b"1");
        t0.set(b"d/c", b"1");
        t0.commit().unwrap();

        let t1 = kv.begin();
        let t2 = kv.begin();
        let listed = t1.scan_now(b"d/", b"d0", 0, false);
        assert_eq!(listed.len(), 2);
        t1.set(b"count", b"2");
        // t2 inserts a key that t1's scan would have returned.
        t2.set(b"d/b", b"1");
        t2.commit().unwrap();
        assert!(matches!(t1.commit(), Err(MetaError::Conflict)));

        // A key outside the scanned range does not conflict.
        let t3 = kv.begin();
        let t4 = kv.begin();
        t3.scan_now(b"d/", b"d0", 0, false);
        t3.set(b"count", b"3");
        t4.set(b"e/x", b"1");
        t4.commit().unwrap();
        t3.commit().unwrap();
    }

    #[test]
    fn limited_scan_only_depends_on_what_it_returned() {
        let kv = MemKv::new();
        let t0 = kv.begin();
        for k in [b"k1", b"k3", b"k5"] {
            t0.set(k, b"v");
        }
        t0.commit().unwrap();
        let t1 = kv.begin();
        let t2 = kv.begin();
        let first = t1.scan_now(b"k", b"l", 1, false);
        assert_eq!(first, vec![(b"k1".to_vec(), b"v".to_vec())]);
        t1.set(b"z", b"1");
        t2.set(b"k4", b"v"); // past where the limited scan stopped
        t2.commit().unwrap();
        t1.commit().unwrap();

        // A clear_range over a key a transaction read conflicts.
        let t3 = kv.begin();
        let t4 = kv.begin();
        get(&t3, b"k3");
        t3.set(b"z", b"2");
        t4.clear_range(b"k2", b"k4");
        t4.commit().unwrap();
        assert!(matches!(t3.commit(), Err(MetaError::Conflict)));
    }

    #[test]
    fn scans_merge_pending_writes_in_both_directions() {
        let kv = MemKv::new();
        let t0 = kv.begin();
        for k in [b"a1", b"a2", b"a3", b"a4"] {
            t0.set(k, b"old");
        }
        t0.commit().unwrap();
        let t = kv.begin();
        t.clear_range(b"a2", b"a4");
        t.set(b"a3", b"new");
        t.set(b"a0", b"new");
        t.atomic_add(b"a5", 1);
        let keys = |v: Vec<KeyValue>| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(
            keys(t.scan_now(b"a", b"b", 0, false)),
            vec![
                b"a0".to_vec(),
                b"a1".to_vec(),
                b"a3".to_vec(),
                b"a4".to_vec(),
                b"a5".to_vec()
            ]
        );
        assert_eq!(
            keys(t.scan_now(b"a", b"b", 2, true)),
            vec![b"a5".to_vec(), b"a4".to_vec()]
        );
        t.commit().unwrap();
        assert_eq!(
            keys(kv.entries()),
            vec![
                b"a0".to_vec(),
                b"a1".to_vec(),
                b"a3".to_vec(),
                b"a4".to_vec(),
                b"a5".to_vec()
            ]
        );
    }

    #[tokio::test]
    async fn txn_retries_a_conflicting_closure() {
        let kv = MemKv::new();
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let other = kv.clone();
        let got = kv
            .txn(|tx| {
                let n = attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let other = other.clone();
                async move {
                    let v = tx.get(b"x").await?;
                    if n == 0 {
                        // Another client changes what we just read before we commit.
                        let t = other.begin();
                        t.set(b"x", b"theirs");
                        t.commit()?;
                    }
                    tx.set(b"y", b"mine");
                    Ok(v)
                }
            })
            .await
            .unwrap();
        assert_eq!(got, Some(b"theirs".to_vec()));
        assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_increments_are_serializable() {
        let kv = MemKv::new();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let kv = kv.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..20 {
                    kv.txn(|tx| async move {
                        let v = tx.get(b"n").await?;
                        let n = v.map_or(0, |b| b[0]);
                        tokio::task::yield_now().await;
                        tx.set(b"n", &[n + 1]);
                        Ok(())
                    })
                    .await
                    .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(kv.entries(), vec![(b"n".to_vec(), vec![160])]);
    }
}
