//! `Retry<S>`: repeats calls that failed with a retryable error, with exponential backoff and
//! full jitter, a bounded number of attempts and a bounded total time.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::time::Instant;

use meta_api::backoff::{Backoff, SplitMix64};

use crate::{ChunkStore, ListPage, ObjectMeta, Result, StoreError};

/// How [`Retry`] retries.
///
/// The delay before attempt `n + 1` (`n` from 1) is drawn uniformly from
/// `0 ..= min(max_backoff, initial_backoff * 2^(n-1))` ("full jitter"), so that many clients
/// hitting the same throttled server spread out instead of retrying in lockstep.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryOptions {
    /// Attempts in all, the first one included (at least 1).
    pub max_attempts: u32,
    /// The ceiling of the first delay.
    pub initial_backoff: Duration,
    /// The largest ceiling any delay gets.
    pub max_backoff: Duration,
    /// The whole call, attempts and delays together, never takes longer than this: an attempt
    /// still running when it runs out is abandoned (blocks are immutable and every operation
    /// is idempotent, so abandoning one is harmless).
    pub max_elapsed: Duration,
    /// Seed of the jitter; `None` seeds from the clock. Tests pass a seed for repeatability.
    pub seed: Option<u64>,
}

impl Default for RetryOptions {
    fn default() -> RetryOptions {
        RetryOptions {
            max_attempts: 8,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            max_elapsed: Duration::from_secs(120),
            seed: None,
        }
    }
}

impl RetryOptions {
    /// The defaults: 8 attempts, delays from 100 ms up to 10 s, at most 2 minutes in all.
    pub fn new() -> RetryOptions {
        RetryOptions::default()
    }

    /// Sets [`max_attempts`](Self::max_attempts) (0 counts as 1).
    pub fn max_attempts(mut self, n: u32) -> RetryOptions {
        self.max_attempts = n.max(1);
        self
    }

    /// Sets [`initial_backoff`](Self::initial_backoff).
    pub fn initial_backoff(mut self, d: Duration) -> RetryOptions {
        self.initial_backoff = d;
        self
    }

    /// Sets [`max_backoff`](Self::max_backoff).
    pub fn max_backoff(mut self, d: Duration) -> RetryOptions {
        self.max_backoff = d;
        self
    }

    /// Sets [`max_elapsed`](Self::max_elapsed).
    pub fn max_elapsed(mut self, d: Duration) -> RetryOptions {
        self.max_elapsed = d;
        self
    }

    /// Sets [`seed`](Self::seed).
    pub fn seed(mut self, seed: u64) -> RetryOptions {
        self.seed = Some(seed);
        self
    }
}

/// Counters of what a [`Retry`] did, for tests and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RetryStats {
    /// Attempts made, first attempts included.
    pub attempts: u64,
    /// Attempts that were repeats of a failed one.
    pub retries: u64,
    /// Calls that failed with a retryable error after running out of attempts or time.
    pub exhausted: u64,
}

/// A decorator that retries the inner store's retryable errors
/// ([`StoreError::is_retryable`]); other errors and successes pass through at once.
///
/// When attempts or time run out, the last error is returned as it was, so callers still see
/// a `Transient` error and may decide to retry later at a higher level.
#[derive(Debug)]
pub struct Retry<S> {
    inner: S,
    opts: RetryOptions,
    rng: SplitMix64,
    attempts: AtomicU64,
    retries: AtomicU64,
    exhausted: AtomicU64,
}

impl<S: ChunkStore> Retry<S> {
    /// Wraps `inner` with the given options.
    pub fn new(inner: S, opts: RetryOptions) -> Retry<S> {
        let rng = opts
            .seed
            .map_or_else(SplitMix64::from_clock, SplitMix64::new);
        Retry {
            inner,
            opts,
            rng,
            attempts: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            exhausted: AtomicU64::new(0),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Unwraps the store.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The options in force.
    pub fn options(&self) -> &RetryOptions {
        &self.opts
    }

    /// What the decorator did so far.
    pub fn stats(&self) -> RetryStats {
        RetryStats {
            attempts: self.attempts.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            exhausted: self.exhausted.load(Ordering::Relaxed),
        }
    }

    async fn run<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let start = Instant::now();
        // A budget too large to add to the clock means no time limit at all.
        let deadline = start.checked_add(self.opts.max_elapsed);
        let mut attempt: u32 = 0;
        // One generator per call, seeded from the store's: calls do not pause in lock step,
        // and a seeded store repeats its pauses.
        let mut pauses = Backoff::new(self.opts.initial_backoff, self.opts.max_backoff)
            .seeded(self.rng.next_u64());
        loop {
            attempt += 1;
            self.attempts.fetch_add(1, Ordering::Relaxed);
            if attempt > 1 {
                self.retries.fetch_add(1, Ordering::Relaxed);
            }
            let outcome = match deadline {
                Some(d) => tokio::time::timeout_at(d, op()).await,
                None => Ok(op().await),
            };
            let err = match outcome {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) if !e.is_retryable() => return Err(e),
                Ok(Err(e)) => e,
                Err(_) => {
                    self.exhausted.fetch_add(1, Ordering::Relaxed);
                    return Err(StoreError::transient(format!(
                        "{what}: gave up after {:?} (attempt {attempt} still running)",
                        self.opts.max_elapsed
                    )));
                }
            };
            if attempt >= self.opts.max_attempts.max(1) {
                self.exhausted.fetch_add(1, Ordering::Relaxed);
                return Err(err);
            }
            let delay = pauses.next_pause();
            // Sleeping past the deadline would only end in the timeout above: stop now and
            // report the real error instead.
            if deadline.is_some_and(|d| Instant::now().checked_add(delay).is_none_or(|t| t >= d)) {
                self.exhausted.fetch_add(1, Ordering::Relaxed);
                return Err(err);
            }
            tokio::time::sleep(delay).await;
        }
    }
}

#[async_trait]
impl<S: ChunkStore> ChunkStore for Retry<S> {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        self.run("put", || self.inner.put(key, data.clone())).await
    }

    async fn get_range(&self, key: &str, off: u64, len: Option<u64>) -> Result<Bytes> {
        self.run("get", || self.inner.get_range(key, off, len))
            .await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.run("delete", || self.inner.delete(key)).await
    }

    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        self.run("list", || self.inner.list_page(prefix, start_after, limit))
            .await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        self.run("head", || self.inner.head(key)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_then_cap() {
        let o = RetryOptions::new()
            .initial_backoff(Duration::from_millis(100))
            .max_backoff(Duration::from_secs(1));
        let b = Backoff::new(o.initial_backoff, o.max_backoff);
        let got: Vec<u128> = (1..=7).map(|a| b.ceiling(a).as_millis()).collect();
        assert_eq!(got, vec![100, 200, 400, 800, 1000, 1000, 1000]);
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn max_attempts_is_at_least_one() {
        assert_eq!(RetryOptions::new().max_attempts(0).max_attempts, 1);
    }
}
