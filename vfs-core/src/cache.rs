//! The block cache of a VFS: the `cache` crate's [`Cached`](cache::Cached) store in front of
//! the volume's store, plus the bookkeeping of readahead tasks so that callers can wait for them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

pub(crate) use crate::store_stack::BlockCache;

/// Whether `cache` holds block `key` in memory or on disk, so that reading any range of it
/// costs no request.
pub(crate) fn holds(cache: &BlockCache, key: &str) -> bool {
    cache.mem_cache().contains(key) || cache.disk_cache().is_some_and(|d| d.contains(key))
}

/// Counts readahead tasks that have not handed their blocks to the cache yet.
#[derive(Default)]
pub(crate) struct ReadaheadTasks {
    running: AtomicUsize,
    done: Notify,
}

/// One running readahead task; dropping it marks the task done.
pub(crate) struct ReadaheadToken(Arc<ReadaheadTasks>);

impl ReadaheadTasks {
    /// Counts a new task.
    pub(crate) fn start(self: &Arc<Self>) -> ReadaheadToken {
        self.running.fetch_add(1, Ordering::AcqRel);
        ReadaheadToken(Arc::clone(self))
    }

    /// Waits until no task is running.
    pub(crate) async fn wait_idle(&self) {
        loop {
            let notified = self.done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.running.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for ReadaheadToken {
    fn drop(&mut self) {
        if self.0.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.done.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_waits_for_every_token() {
        let tasks = Arc::new(ReadaheadTasks::default());
        tasks.wait_idle().await;
        let a = tasks.start();
        let b = tasks.start();
        let waiter = tokio::spawn({
            let tasks = Arc::clone(&tasks);
            async move { tasks.wait_idle().await }
        });
        drop(a);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(b);
        waiter.await.unwrap();
        assert_eq!(tasks.running.load(Ordering::Acquire), 0);
    }
}
