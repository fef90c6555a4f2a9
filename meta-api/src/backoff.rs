//! The one retry pause policy of the project: exponential backoff with full jitter.
//!
//! Every retry loop — SQLite busy and conflict retries, Redis reconnects and `WATCH`
//! conflicts, KV transaction conflicts, blocking lock waits, object store retries and
//! writeback uploads — takes its pauses from a [`Backoff`]: after failed attempt `n` it
//! sleeps a uniformly random time in `0 ..= min(max, initial · 2^(n-1))` ("full jitter"),
//! so that clients that collided once spread out instead of colliding again in lock step.
//!
//! ```
//! use std::time::Duration;
//! use meta_api::backoff::Backoff;
//!
//! let mut b = Backoff::new(Duration::from_millis(1), Duration::from_millis(50)).seeded(7);
//! for attempt in 1..=10u32 {
//!     let pause = b.next_pause();
//!     assert!(pause <= b.ceiling(attempt));
//! }
//! assert_eq!(b.attempts(), 10);
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Exponential backoff with full jitter (see the [module docs](self)).
#[derive(Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempts: u32,
    rng: SplitMix64,
}

impl Clone for Backoff {
    fn clone(&self) -> Backoff {
        Backoff {
            initial: self.initial,
            max: self.max,
            attempts: self.attempts,
            rng: SplitMix64::new(self.rng.state.load(Ordering::Relaxed)),
        }
    }
}

impl Backoff {
    /// Pauses whose ceiling starts at `initial` and doubles up to `max`; seeded from the
    /// clock (and a process-wide counter, so that two values made at once differ).
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        static SALT: AtomicU64 = AtomicU64::new(0);
        let salt = SALT.fetch_add(0x9E37_79B9, Ordering::Relaxed);
        Backoff {
            initial,
            max,
            attempts: 0,
            rng: SplitMix64::new(clock_seed() ^ salt),
        }
    }

    /// The same pauses from a fixed seed (tests).
    pub fn seeded(mut self, seed: u64) -> Backoff {
        self.rng = SplitMix64::new(seed);
        self
    }

    /// The largest pause after failed attempt `attempt` (counted from 1).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.initial.saturating_mul(1u32 << doublings).min(self.max)
    }

    /// Counts one more failed attempt and returns how long to pause before the next one.
    pub fn next_pause(&mut self) -> Duration {
        self.attempts = self.attempts.saturating_add(1);
        self.jitter(self.ceiling(self.attempts))
    }

    /// A uniformly random duration in `0 ..= ceiling` from this value's generator.
    pub fn jitter(&self, ceiling: Duration) -> Duration {
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.rng.below(nanos.saturating_add(1)))
    }

    /// Failed attempts counted so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Starts over (after a success).
    pub fn reset(&mut self) {
        self.attempts = 0;
    }
}

fn clock_seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x5EED)
}

/// SplitMix64 over an atomic counter: a lock-free, seedable generator good enough for
/// jitter and fault injection (not for anything secret). With one caller at a time its
/// sequence is fully determined by the seed.
#[derive(Debug)]
pub struct SplitMix64 {
    state: AtomicU64,
}

impl SplitMix64 {
    const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

    /// A generator starting at `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 {
            state: AtomicU64::new(seed),
        }
    }

    /// A generator seeded from the clock.
    pub fn from_clock() -> SplitMix64 {
        SplitMix64::new(clock_seed())
    }

    /// The next 64 random bits.
    pub fn next_u64(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(Self::GAMMA, Ordering::Relaxed)
            .wrapping_add(Self::GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`), by multiply-shift (bias below 2^-64 · n).
    pub fn below(&self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// `true` with probability `p` (clamped to `0.0..=1.0`).
    pub fn chance(&self, p: f64) -> bool {
        if p <= 0.0 || p.is_nan() {
            return false;
        }
        if p >= 1.0 {
            return true;
        }
        // 53 random bits make a uniform float in [0, 1).
        let x = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        x < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_up_to_the_maximum() {
        let b = Backoff::new(Duration::from_millis(1), Duration::from_millis(20));
        let c: Vec<u128> = (1..=7).map(|a| b.ceiling(a).as_millis()).collect();
        assert_eq!(c, vec![1, 2, 4, 8, 16, 20, 20]);
        assert_eq!(b.ceiling(u32::MAX), Duration::from_millis(20));
    }

    #[test]
    fn pauses_are_spread_over_the_whole_range() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(100)).seeded(1);
        let pauses: Vec<Duration> = (0..1000).map(|_| b.next_pause()).collect();
        assert!(pauses.iter().all(|p| *p <= Duration::from_millis(100)));
        let low = pauses
            .iter()
            .filter(|p| **p < Duration::from_millis(50))
            .count();
        assert!((350..650).contains(&low), "{low} of 1000 below the middle");
        b.reset();
        assert_eq!(b.attempts(), 0);
    }

    #[test]
    fn seeded_sequences_repeat() {
        let run = || {
            let mut b = Backoff::new(Duration::from_millis(1), Duration::from_secs(1)).seeded(42);
            (0..10).map(|_| b.next_pause()).collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }
}
