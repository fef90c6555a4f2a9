//! The global budget of buffered write data: a semaphore of bytes that makes writers wait
//! (backpressure) while too much written data is still waiting to be uploaded.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};

use crate::{Result, VfsError};

/// How often a waiting writer reminds the flusher that memory is short.
const PRESSURE_RETRY: Duration = Duration::from_millis(100);

/// Bytes of buffered write data allowed in memory, shared by every file of a VFS.
#[derive(Debug)]
pub(crate) struct BufferBudget {
    sem: Arc<Semaphore>,
    total: usize,
    uploads_in_flight: AtomicUsize,
    /// Woken when a writer has to wait, so the flusher can turn buffers into uploads.
    pub(crate) pressure: Notify,
}

impl BufferBudget {
    /// A budget of `total` bytes (at least one byte).
    pub(crate) fn new(total: usize) -> BufferBudget {
        let total = total.clamp(1, Semaphore::MAX_PERMITS);
        BufferBudget {
            sem: Arc::new(Semaphore::new(total)),
            total,
            uploads_in_flight: AtomicUsize::new(0),
            pressure: Notify::new(),
        }
    }

    /// The size of the budget in bytes.
    pub(crate) fn total(&self) -> usize {
        self.total
    }

    /// Bytes not reserved right now.
    #[cfg(test)]
    pub(crate) fn available(&self) -> usize {
        self.sem.available_permits()
    }

    /// Reserves `n` bytes (clamped to the budget), waiting while they are not available.
    pub(crate) async fn reserve(&self, n: usize) -> Result<Reservation> {
        let n = n.min(self.total).min(u32::MAX as usize);
        if n == 0 {
            return Ok(self.empty());
        }
        // `n` fits in u32 by the clamp above.
        let permits = n as u32;
        if let Ok(p) = self.sem.try_acquire_many(permits) {
            p.forget();
            return Ok(Reservation {
                sem: self.sem.clone(),
                n,
            });
        }
        let acquire = self.sem.acquire_many(permits);
        tokio::pin!(acquire);
        loop {
            self.pressure.notify_one();
            tokio::select! {
                r = &mut acquire => {
                    r.map_err(|_| VfsError::Closed)?.forget();
                    return Ok(Reservation { sem: self.sem.clone(), n });
                }
                _ = tokio::time::sleep(PRESSURE_RETRY) => {}
            }
        }
    }

    /// A reservation of nothing, to merge others into.
    pub(crate) fn empty(&self) -> Reservation {
        Reservation {
            sem: self.sem.clone(),
            n: 0,
        }
    }

    /// Counts one block upload started; the guard counts it finished when dropped.
    pub(crate) fn upload_started(self: &Arc<Self>) -> UploadGuard {
        self.uploads_in_flight.fetch_add(1, Ordering::Relaxed);
        UploadGuard {
            budget: self.clone(),
        }
    }

    /// Block uploads running now.
    pub(crate) fn uploads_in_flight(&self) -> usize {
        self.uploads_in_flight.load(Ordering::Relaxed)
    }
}

/// Counts a running upload for [`BufferBudget::uploads_in_flight`].
#[derive(Debug)]
pub(crate) struct UploadGuard {
    budget: Arc<BufferBudget>,
}

impl Drop for UploadGuard {
    fn drop(&mut self) {
        self.budget
            .uploads_in_flight
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// Bytes taken from a [`BufferBudget`]; they go back when the reservation is dropped.
#[derive(Debug)]
pub(crate) struct Reservation {
    sem: Arc<Semaphore>,
    n: usize,
}

impl Reservation {
    /// Moves up to `k` bytes of this reservation into a new one.
    pub(crate) fn split(&mut self, k: usize) -> Reservation {
        let k = k.min(self.n);
        self.n -= k;
        Reservation {
            sem: self.sem.clone(),
            n: k,
        }
    }

    /// Adds `other`'s bytes to this reservation.
    pub(crate) fn merge(&mut self, mut other: Reservation) {
        self.n += other.n;
        other.n = 0;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.n > 0 {
            self.sem.add_permits(self.n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_return_their_bytes() {
        let b = BufferBudget::new(100);
        let mut r = b.reserve(60).await.unwrap();
        assert_eq!(b.available(), 40);
        let part = r.split(25);
        drop(r);
        assert_eq!(b.available(), 75);
        let mut e = b.empty();
        e.merge(part);
        assert_eq!(b.available(), 75);
        drop(e);
        assert_eq!(b.available(), 100);
        // A request larger than the budget is clamped instead of waiting forever.
        let all = b.reserve(1000).await.unwrap();
        assert_eq!(b.available(), 0);
        drop(all);
    }

    #[tokio::test]
    async fn a_waiting_writer_signals_pressure_and_proceeds_on_release() {
        let b = Arc::new(BufferBudget::new(10));
        let held = b.reserve(10).await.unwrap();
        let b2 = b.clone();
        let waiter = tokio::spawn(async move { b2.reserve(5).await.map(|r| r.n) });
        b.pressure.notified().await;
        drop(held);
        assert_eq!(waiter.await.unwrap().unwrap(), 5);
    }
}
