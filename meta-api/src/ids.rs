//! Inode numbers and slice ids, reserved from the volume's counters in batches.
//!
//! JuiceFS's counters hold the next value nobody has been given: adding a batch `n` to
//! `nextInode` and reading back `v` hands this client `v - n .. v`. Every client of the
//! volume (this one, other processes, the real juicefs client) reserves the same way, so
//! ranges never overlap and ids are never reused.

use std::future::Future;

use crate::{MetaError, Result, INODE_BATCH, SLICE_ID_BATCH};

/// One client's reserved range of one counter, handed out one id at a time.
#[derive(Debug)]
pub struct IdPool {
    counter: &'static str,
    batch: u64,
    /// Ids below this are never handed out (0 and the root for inodes, 0 for slices).
    min: u64,
    range: tokio::sync::Mutex<(u64, u64)>,
}

impl IdPool {
    /// Inode numbers from `nextInode`, [`INODE_BATCH`] at a time, never 0 or 1.
    pub fn inodes() -> IdPool {
        IdPool::new("nextInode", INODE_BATCH, 2)
    }

    /// Slice ids from `nextChunk`, [`SLICE_ID_BATCH`] at a time, never 0 (a hole).
    pub fn slices() -> IdPool {
        IdPool::new("nextChunk", SLICE_ID_BATCH, 1)
    }

    fn new(counter: &'static str, batch: u64, min: u64) -> IdPool {
        IdPool {
            counter,
            batch,
            min,
            range: tokio::sync::Mutex::new((0, 0)),
        }
    }

    /// The counter's name (`nextInode`, `nextChunk`).
    pub fn counter(&self) -> &'static str {
        self.counter
    }

    /// The next free id. When the range is used up, `reserve(counter, batch)` must add
    /// `batch` to the counter in its own transaction and return the counter's new value.
    pub async fn next<F, Fut>(&self, mut reserve: F) -> Result<u64>
    where
        F: FnMut(&'static str, u64) -> Fut,
        Fut: Future<Output = Result<i64>>,
    {
        let mut r = self.range.lock().await;
        loop {
            if r.0 < r.1 {
                let n = r.0;
                r.0 += 1;
                if n >= self.min {
                    return Ok(n);
                }
                continue;
            }
            let top = reserve(self.counter, self.batch).await?;
            let top = u64::try_from(top)
                .ok()
                .filter(|t| *t >= self.batch)
                .ok_or_else(|| MetaError::Corrupt(format!("counter {} is {top}", self.counter)))?;
            *r = (top - self.batch, top);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batches_never_overlap_and_skip_reserved_ids() {
        let counter = std::sync::Mutex::new(1i64);
        let reserve = |_: &'static str, n: u64| {
            let mut c = counter.lock().unwrap_or_else(|p| p.into_inner());
            *c += n as i64;
            let v = *c;
            async move { Ok(v) }
        };
        let pool = IdPool::inodes();
        let first = pool.next(reserve).await.ok();
        assert_eq!(first, Some(2), "1 is the root");
        for want in 3..=INODE_BATCH {
            assert_eq!(pool.next(reserve).await.ok(), Some(want));
        }
        // The next batch starts where the counter was.
        assert_eq!(pool.next(reserve).await.ok(), Some(INODE_BATCH + 1));
        let bad = IdPool::slices();
        assert!(matches!(
            bad.next(|_, _| async { Ok(3) }).await,
            Err(MetaError::Corrupt(_))
        ));
    }
}
