//! `Retry<S>`: what is retried, how often, how long; and a faulty store read back whole
//! through it. Time is tokio's paused clock, so backoff costs no real time.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chunkstore::testkit::pattern;
use chunkstore::{
    testkit, ChunkStore, ChunkStoreExt, FaultConfig, Faulty, ListPage, MemStore, ObjectMeta,
    Result, Retry, RetryOptions, StoreError,
};
use tokio::time::Instant;

/// A store that fails its next calls with scripted errors, then serves from memory.
#[derive(Default)]
struct Scripted {
    errors: Mutex<VecDeque<StoreError>>,
    calls: AtomicU64,
    mem: MemStore,
}

impl Scripted {
    fn failing(errors: impl IntoIterator<Item = StoreError>) -> Scripted {
        Scripted {
            errors: Mutex::new(errors.into_iter().collect()),
            ..Scripted::default()
        }
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    fn next(&self) -> Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match self.errors.lock().unwrap().pop_front() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl ChunkStore for Scripted {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        self.next()?;
        self.mem.put(key, data).await
    }
    async fn get_range(&self, key: &str, off: u64, len: Option<u64>) -> Result<Bytes> {
        self.next()?;
        self.mem.get_range(key, off, len).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.next()?;
        self.mem.delete(key).await
    }
    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        self.next()?;
        self.mem.list_page(prefix, start_after, limit).await
    }
    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        self.next()?;
        self.mem.head(key).await
    }
}

fn transient(n: usize) -> Vec<StoreError> {
    (0..n)
        .map(|i| StoreError::transient(format!("blip {i}")))
        .collect()
}

fn quick() -> RetryOptions {
    RetryOptions::new()
        .initial_backoff(Duration::from_millis(100))
        .max_backoff(Duration::from_secs(2))
        .max_attempts(10)
        .max_elapsed(Duration::from_secs(60))
        .seed(1)
}

#[tokio::test(start_paused = true)]
async fn transient_errors_are_retried_until_success() {
    let store = Retry::new(Scripted::failing(transient(3)), quick());
    store.put("k", Bytes::from_static(b"v")).await.unwrap();
    assert_eq!(store.inner().calls(), 4);
    let s = store.stats();
    assert_eq!((s.attempts, s.retries, s.exhausted), (4, 3, 0));
    assert_eq!(store.get("k").await.unwrap(), &b"v"[..]);
}

#[tokio::test(start_paused = true)]
async fn every_operation_is_retried() {
    let store = Retry::new(Scripted::failing(transient(1)), quick());
    store.put("k", Bytes::from_static(b"v")).await.unwrap();
    for op in 0..4 {
        store
            .inner()
            .errors
            .lock()
            .unwrap()
            .push_back(StoreError::transient("blip"));
        match op {
            0 => assert_eq!(store.get("k").await.unwrap(), &b"v"[..]),
            1 => assert_eq!(store.head("k").await.unwrap().size, 1),
            2 => assert_eq!(
                store.list_page("", None, 10).await.unwrap().objects.len(),
                1
            ),
            _ => store.delete("k").await.unwrap(),
        }
    }
    assert_eq!(store.stats().retries, 5);
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_are_not_retried() {
    let permanent = [
        StoreError::NotFound("k".into()),
        StoreError::Corrupt("bad".into()),
        StoreError::Invalid("no".into()),
        StoreError::Denied("no".into()),
        StoreError::other("disk on fire"),
    ];
    for e in permanent {
        let want = format!("{e}");
        let store = Retry::new(Scripted::failing([e]), quick());
        let start = Instant::now();
        let got = store.put("k", Bytes::from_static(b"v")).await.unwrap_err();
        assert_eq!(format!("{got}"), want);
        assert_eq!(store.inner().calls(), 1, "{want}: one attempt only");
        assert_eq!(start.elapsed(), Duration::ZERO, "{want}: no backoff");
    }
    // NotFound from the real backend passes straight through too.
    let store = Retry::new(Scripted::default(), quick());
    assert!(matches!(
        store.get("missing").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.inner().calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn attempts_are_bounded() {
    let faulty = Faulty::new(MemStore::new(), 3);
    faulty.set_down(true);
    let store = Retry::new(faulty, quick().max_attempts(5));
    let err = store.put("k", Bytes::from_static(b"v")).await.unwrap_err();
    assert!(
        err.is_retryable(),
        "the last transient error is returned: {err}"
    );
    assert_eq!(store.inner().stats().refused_down, 5);
    let s = store.stats();
    assert_eq!((s.attempts, s.retries, s.exhausted), (5, 4, 1));
}

#[tokio::test(start_paused = true)]
async fn total_time_is_bounded() {
    let faulty = Faulty::new(MemStore::new(), 3);
    faulty.set_down(true);
    let opts = RetryOptions::new()
        .initial_backoff(Duration::from_secs(1))
        .max_backoff(Duration::from_secs(4))
        .max_attempts(1000)
        .max_elapsed(Duration::from_secs(10))
        .seed(9);
    let store = Retry::new(faulty, opts);
    let start = Instant::now();
    let err = store.get("k").await.unwrap_err();
    assert!(err.is_retryable());
    assert!(
        start.elapsed() <= Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    let attempts = store.inner().stats().refused_down;
    assert!((2..1000).contains(&attempts), "{attempts} attempts in 10 s");
    assert_eq!(store.stats().exhausted, 1);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_attempt_is_abandoned_at_the_deadline() {
    let faulty = Faulty::with_config(
        MemStore::new(),
        3,
        FaultConfig::new().latency(Duration::from_secs(3600)),
    );
    let store = Retry::new(faulty, quick().max_elapsed(Duration::from_secs(5)));
    let start = Instant::now();
    let err = store.put("k", Bytes::from_static(b"v")).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("gave up"), "{err}");
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert!(
        store.inner().inner().is_empty(),
        "the abandoned put never landed"
    );
}

#[tokio::test(start_paused = true)]
async fn backoff_is_jittered_below_exponential_ceilings() {
    // Four failures: the delays are at most 100 + 200 + 400 + 800 ms in all.
    let mut elapsed = Vec::new();
    for seed in [1u64, 2, 1] {
        let store = Retry::new(Scripted::failing(transient(4)), quick().seed(seed));
        let start = Instant::now();
        store.put("k", Bytes::from_static(b"v")).await.unwrap();
        let took = start.elapsed();
        assert!(took <= Duration::from_millis(1500), "{took:?}");
        elapsed.push(took);
    }
    assert_eq!(elapsed[0], elapsed[2], "the same seed, the same delays");
    assert_ne!(elapsed[0], elapsed[1], "another seed, other delays");
    // Full jitter: over many runs the waits spread over the whole range, not at its top.
    let mut total = Duration::ZERO;
    for seed in 0..50u64 {
        let store = Retry::new(Scripted::failing(transient(1)), quick().seed(seed));
        let start = Instant::now();
        store.put("k", Bytes::from_static(b"v")).await.unwrap();
        total += start.elapsed();
    }
    let mean = total / 50;
    assert!(
        mean > Duration::from_millis(20) && mean < Duration::from_millis(80),
        "mean first delay {mean:?} should be near 50 ms"
    );
}

#[tokio::test(start_paused = true)]
async fn ten_percent_faults_under_retry_lose_nothing() {
    let faulty = Faulty::with_config(
        MemStore::new(),
        2024,
        FaultConfig::new().error_rate(0.1).lost_reply_rate(0.05),
    );
    let store = Retry::new(faulty, quick().max_attempts(12));
    let rng = chunkstore_test_rng(77);
    let mut blocks = Vec::new();
    for i in 0..200u64 {
        let len = 1 + (rng() % 300_000) as usize;
        let key = format!("vol/chunks/0/0/{i}_0_{len}");
        let data = pattern(rng(), len);
        store.put(&key, data.clone()).await.unwrap();
        blocks.push((key, data));
    }
    for (key, data) in &blocks {
        let got = store.get_block(key, data.len() as u64).await.unwrap();
        assert!(got == *data, "{key} differs");
        let off = rng() % data.len() as u64;
        let part = store.get_range(key, off, Some(100)).await.unwrap();
        let end = (off as usize + 100).min(data.len());
        assert_eq!(part, data.slice(off as usize..end));
    }
    assert_eq!(store.list_all("vol/").await.unwrap().len(), 200);
    let faults = store.inner().stats();
    assert!(faults.injected_errors > 40, "{faults:?}");
    assert!(faults.lost_replies > 10, "{faults:?}");
    assert!(store.stats().retries >= faults.injected_errors + faults.lost_replies);
    assert_eq!(store.stats().exhausted, 0);
}

#[tokio::test(start_paused = true)]
async fn puts_fail_while_down_and_succeed_when_up() {
    let faulty = Faulty::new(MemStore::new(), 1);
    let store = Retry::new(faulty, quick().max_attempts(3));
    store.put("before", pattern(1, 1000)).await.unwrap();

    store.inner().set_down(true);
    assert!(store.inner().is_down());
    let err = store.put("during", pattern(2, 1000)).await.unwrap_err();
    assert!(matches!(err, StoreError::Transient { .. }), "{err:?}");
    assert!(store.get("before").await.unwrap_err().is_retryable());
    assert!(
        store.inner().inner().head("during").await.is_err(),
        "nothing landed"
    );

    store.inner().set_down(false);
    store.put("during", pattern(2, 1000)).await.unwrap();
    assert_eq!(store.get("during").await.unwrap(), pattern(2, 1000));
    assert_eq!(store.get("before").await.unwrap(), pattern(1, 1000));
}

#[tokio::test(start_paused = true)]
async fn an_outage_shorter_than_the_budget_is_ridden_out() {
    let store = std::sync::Arc::new(Retry::new(
        Faulty::new(MemStore::new(), 1),
        quick().max_attempts(100),
    ));
    store.inner().set_down(true);
    let s2 = store.clone();
    let healer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        s2.inner().set_down(false);
    });
    let start = Instant::now();
    store.put("k", pattern(5, 10)).await.unwrap();
    assert!(start.elapsed() >= Duration::from_secs(3));
    healer.await.unwrap();
    assert_eq!(store.get("k").await.unwrap(), pattern(5, 10));
    assert!(store.inner().stats().refused_down >= 2);
}

#[tokio::test(start_paused = true)]
async fn retry_passes_the_conformance_suite() {
    let store = Retry::new(
        Faulty::with_config(MemStore::new(), 5, FaultConfig::new().error_rate(0.05)),
        quick().max_attempts(20),
    );
    let opts = testkit::Options {
        many_objects: 1005,
        concurrency: 8,
    };
    testkit::run_all_with(&store, &opts).await;
}

/// A small deterministic generator for test data choices.
fn chunkstore_test_rng(seed: u64) -> impl Fn() -> u64 {
    let state = AtomicU64::new(seed);
    move || {
        let mut z = state
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[tokio::test(start_paused = true)]
async fn an_unbounded_time_budget_is_fine() {
    let opts = quick()
        .max_elapsed(Duration::MAX)
        .max_backoff(Duration::MAX);
    let store = Retry::new(Scripted::failing(transient(2)), opts);
    store.put("k", Bytes::from_static(b"v")).await.unwrap();
    assert_eq!(store.inner().calls(), 3);
}
