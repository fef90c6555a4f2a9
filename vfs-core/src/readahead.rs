//! Readahead bookkeeping: how far ahead of a sequential reader blocks were asked for (per
//! handle), and the count of readahead tasks still running, so that callers can wait for
//! them. The blocks themselves are fetched by the block cache's prefetch.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// Where a handle's reader was, to tell sequential reading from random reading, and how
/// far ahead of it blocks were asked for.
#[derive(Debug, Default)]
pub(crate) struct ReadaheadWindow {
    /// Where the next read starts if it is sequential.
    next: u64,
    /// The end of what was asked for ahead of the reader.
    ahead: u64,
}

/// What a read should do about readahead, from [`ReadaheadWindow::advance`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReadaheadPlan {
    /// Whether the read continues where the previous one ended.
    pub(crate) sequential: bool,
    /// The file bytes `start..end` to prefetch now, if any.
    pub(crate) prefetch: Option<(u64, u64)>,
}

impl ReadaheadWindow {
    /// Records a read of `size` bytes at `off` and plans readahead for a window of
    /// `window` bytes (0: no readahead). The window moves on once the reader has come
    /// within half a window of its end, so a sequential reader asks for more about twice
    /// per window; a seek forgets what was read ahead.
    pub(crate) fn advance(&mut self, off: u64, size: usize, window: u64) -> ReadaheadPlan {
        let sequential = off == self.next;
        let end = off.saturating_add(size as u64);
        self.next = end;
        if !sequential {
            // A seek: whatever was read ahead is for another place.
            self.ahead = 0;
        }
        let mut prefetch = None;
        if sequential && window > 0 && self.ahead < end.saturating_add(window / 2) {
            let start = self.ahead.max(end);
            self.ahead = end.saturating_add(window);
            prefetch = Some((start, self.ahead));
        }
        ReadaheadPlan {
            sequential,
            prefetch,
        }
    }
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

    /// Tasks running now.
    #[cfg(test)]
    pub(crate) fn running(&self) -> usize {
        self.running.load(Ordering::Acquire)
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
        assert_eq!(tasks.running(), 0);
    }

    #[test]
    fn a_sequential_reader_gets_the_window_ahead_twice_per_window() {
        let mut w = ReadaheadWindow::default();
        let plan = w.advance(0, 100, 1000);
        assert_eq!(
            plan,
            ReadaheadPlan {
                sequential: true,
                prefetch: Some((100, 1100))
            }
        );
        // Still more than half a window ahead: nothing new to ask for.
        assert_eq!(w.advance(100, 100, 1000).prefetch, None);
        assert_eq!(w.advance(200, 400, 1000).prefetch, None);
        // Within half a window of the end: the window moves on from where it ended.
        let plan = w.advance(600, 100, 1000);
        assert!(plan.sequential);
        assert_eq!(plan.prefetch, Some((1100, 1700)));
    }

    #[test]
    fn a_seek_forgets_the_window() {
        let mut w = ReadaheadWindow::default();
        w.advance(0, 100, 1000);
        let plan = w.advance(5000, 100, 1000);
        assert_eq!(
            plan,
            ReadaheadPlan {
                sequential: false,
                prefetch: None
            }
        );
        // Reading on from the new place starts a fresh window there.
        let plan = w.advance(5100, 100, 1000);
        assert_eq!(plan.prefetch, Some((5200, 6200)));
        // Back to the start of the file: a seek again, even though a window was ahead.
        assert!(!w.advance(0, 10, 1000).sequential);
    }

    #[test]
    fn no_window_no_readahead() {
        let mut w = ReadaheadWindow::default();
        let plan = w.advance(0, 100, 0);
        assert!(plan.sequential);
        assert_eq!(plan.prefetch, None);
        assert!(w.advance(100, 100, 0).sequential);
    }
}
