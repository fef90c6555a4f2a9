//! `Faulty<S>`: a fault-injecting decorator for tests — transient errors, lost replies,
//! latency, torn or corrupted reads, and a switch that takes the whole store down.
//!
//! It is always compiled (it is small and has no dependencies) so that integration tests of
//! other crates can stack it under their own decorators without a feature.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::{ChunkStore, ListPage, ObjectMeta, Result, StoreError};
use meta_api::backoff::SplitMix64;

/// Which faults a [`Faulty`] injects. Rates are fractions of calls, `0.0..=1.0`.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct FaultConfig {
    /// Calls that fail with a transient error without reaching the inner store.
    pub error_rate: f64,
    /// Calls that reach the inner store (a put lands, a delete deletes) and then fail with a
    /// transient error, as when the reply is lost on the way back.
    pub lost_reply_rate: f64,
    /// Delay added before every call that is not refused outright.
    pub latency: Duration,
    /// Non-empty reads returned cut short (to a random shorter length), without an error.
    pub truncate_rate: f64,
    /// Non-empty reads returned with one byte changed, without an error.
    pub corrupt_rate: f64,
}

impl FaultConfig {
    /// No faults.
    pub fn new() -> FaultConfig {
        FaultConfig::default()
    }

    /// Sets [`error_rate`](Self::error_rate).
    pub fn error_rate(mut self, rate: f64) -> FaultConfig {
        self.error_rate = rate;
        self
    }

    /// Sets [`lost_reply_rate`](Self::lost_reply_rate).
    pub fn lost_reply_rate(mut self, rate: f64) -> FaultConfig {
        self.lost_reply_rate = rate;
        self
    }

    /// Sets [`latency`](Self::latency).
    pub fn latency(mut self, latency: Duration) -> FaultConfig {
        self.latency = latency;
        self
    }

    /// Sets [`truncate_rate`](Self::truncate_rate).
    pub fn truncate_rate(mut self, rate: f64) -> FaultConfig {
        self.truncate_rate = rate;
        self
    }

    /// Sets [`corrupt_rate`](Self::corrupt_rate).
    pub fn corrupt_rate(mut self, rate: f64) -> FaultConfig {
        self.corrupt_rate = rate;
        self
    }
}

/// Counters of what a [`Faulty`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct FaultStats {
    /// Calls made to the decorator.
    pub calls: u64,
    /// Calls failed before reaching the inner store (`error_rate`).
    pub injected_errors: u64,
    /// Calls that reached the inner store and then reported an error (`lost_reply_rate`).
    pub lost_replies: u64,
    /// Reads returned cut short.
    pub truncated: u64,
    /// Reads returned with a changed byte.
    pub corrupted: u64,
    /// Calls refused because the store was down.
    pub refused_down: u64,
}

#[derive(Debug, Default)]
struct Counters {
    calls: AtomicU64,
    injected_errors: AtomicU64,
    lost_replies: AtomicU64,
    truncated: AtomicU64,
    corrupted: AtomicU64,
    refused_down: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// A decorator that injects faults into calls to the inner store. Thread-safe; the faults
/// can be changed while calls are running ([`set_config`](Self::set_config),
/// [`set_down`](Self::set_down)). Random choices come from a seeded generator, so a test that
/// makes its calls one at a time sees the same faults on every run.
///
/// ```
/// use chunkstore::{ChunkStore, FaultConfig, Faulty, MemStore};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = Faulty::new(MemStore::new(), 42);
/// store.set_down(true);
/// let err = store.put("k", bytes::Bytes::from_static(b"v")).await.unwrap_err();
/// assert!(err.is_retryable());
/// store.set_down(false);
/// store.set_config(FaultConfig::new().error_rate(0.0));
/// store.put("k", bytes::Bytes::from_static(b"v")).await.unwrap();
/// # }
/// ```
#[derive(Debug)]
pub struct Faulty<S> {
    inner: S,
    config: RwLock<FaultConfig>,
    down: AtomicBool,
    rng: SplitMix64,
    counters: Counters,
}

impl<S: ChunkStore> Faulty<S> {
    /// Wraps `inner`, injecting no fault until configured; `seed` drives every random choice.
    pub fn new(inner: S, seed: u64) -> Faulty<S> {
        Faulty::with_config(inner, seed, FaultConfig::default())
    }

    /// Wraps `inner` with the given faults.
    pub fn with_config(inner: S, seed: u64, config: FaultConfig) -> Faulty<S> {
        Faulty {
            inner,
            config: RwLock::new(config),
            down: AtomicBool::new(false),
            rng: SplitMix64::new(seed),
            counters: Counters::default(),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Replaces the faults injected from now on.
    pub fn set_config(&self, config: FaultConfig) {
        let mut guard = self.config.write().unwrap_or_else(|e| e.into_inner());
        *guard = config;
    }

    /// The faults in force.
    pub fn config(&self) -> FaultConfig {
        self.read_config().clone()
    }

    /// Takes the store down (every call fails with a transient error, without delay and
    /// without reaching the inner store) or brings it back up.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Whether the store is down.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    /// What was injected so far.
    pub fn stats(&self) -> FaultStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FaultStats {
            calls: get(&c.calls),
            injected_errors: get(&c.injected_errors),
            lost_replies: get(&c.lost_replies),
            truncated: get(&c.truncated),
            corrupted: get(&c.corrupted),
            refused_down: get(&c.refused_down),
        }
    }

    // The configuration is replaced whole under the lock, so a poisoned lock still holds a
    // consistent value.
    fn read_config(&self) -> RwLockReadGuard<'_, FaultConfig> {
        self.config.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs the faults that come before a call; returns the configuration to apply after it.
    async fn before(&self, op: &str, key: &str) -> Result<FaultConfig> {
        bump(&self.counters.calls);
        if self.is_down() {
            bump(&self.counters.refused_down);
            return Err(StoreError::transient(format!(
                "{op} {key}: store is down (injected)"
            )));
        }
        let cfg = self.config();
        if !cfg.latency.is_zero() {
            tokio::time::sleep(cfg.latency).await;
        }
        if self.rng.chance(cfg.error_rate) {
            bump(&self.counters.injected_errors);
            return Err(StoreError::transient(format!(
                "{op} {key}: injected transient error"
            )));
        }
        Ok(cfg)
    }

    /// Turns a successful reply into a lost one at the configured rate.
    fn after<T>(&self, cfg: &FaultConfig, op: &str, key: &str, r: Result<T>) -> Result<T> {
        if r.is_ok() && self.rng.chance(cfg.lost_reply_rate) {
            bump(&self.counters.lost_replies);
            return Err(StoreError::transient(format!(
                "{op} {key}: reply lost (injected)"
            )));
        }
        r
    }

    fn damage(&self, cfg: &FaultConfig, data: Bytes) -> Bytes {
        if data.is_empty() {
            return data;
        }
        let mut data = data;
        if self.rng.chance(cfg.truncate_rate) {
            bump(&self.counters.truncated);
            data = data.slice(..self.rng.below(data.len() as u64) as usize);
        }
        if !data.is_empty() && self.rng.chance(cfg.corrupt_rate) {
            bump(&self.counters.corrupted);
            let mut v = data.to_vec();
            let at = self.rng.below(v.len() as u64) as usize;
            // XOR with a non-zero value always changes the byte.
            v[at] ^= 1 + self.rng.below(255) as u8;
            data = Bytes::from(v);
        }
        data
    }
}

#[async_trait]
impl<S: ChunkStore> ChunkStore for Faulty<S> {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        let cfg = self.before("put", key).await?;
        let r = self.inner.put(key, data).await;
        self.after(&cfg, "put", key, r)
    }

    async fn get_range(&self, key: &str, off: u64, len: Option<u64>) -> Result<Bytes> {
        let cfg = self.before("get", key).await?;
        let r = self.inner.get_range(key, off, len).await;
        let data = self.after(&cfg, "get", key, r)?;
        Ok(self.damage(&cfg, data))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let cfg = self.before("delete", key).await?;
        let r = self.inner.delete(key).await;
        self.after(&cfg, "delete", key, r)
    }

    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        let cfg = self.before("list", prefix).await?;
        let r = self.inner.list_page(prefix, start_after, limit).await;
        self.after(&cfg, "list", prefix, r)
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let cfg = self.before("head", key).await?;
        let r = self.inner.head(key).await;
        self.after(&cfg, "head", key, r)
    }
}
