//! Closes sent in batches: the last close of a file on this client unregisters the open
//! (`SREM` from the file's openers and from the session's opened set) together with other
//! closes, one round trip for many, instead of one round trip each.
//!
//! A close is queued (`RedisMeta::close`) and sent when the queue is [`BATCH`] long or
//! its oldest close is [`DELAY`] old (by the close that finds it so), at once for a file
//! this client unlinked while it was open, at every heartbeat, by `sync`, and before the
//! session ends. Until then the open stays registered, which only means
//! more protection than needed:
//!
//! - this client's own unlinks count this session as an opener only while the file is
//!   open here (`RedisMeta::live_openers`), so they delete at once as before;
//! - another client's unlink sustains the file for this session, and the batch that
//!   unregisters the open finds it unlinked and releases it (deletes it), as a close would;
//! - an open of a file whose close is queued takes the close back (the registration
//!   stays); one whose close is being sent waits for that round trip, then registers again.
//!
//! A batch that fails is queued again and retried by the next one; a crash leaves the
//! registrations to the session's cleanup, as a crash between open and close always did.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use meta_api::encoding::decode_attr;
use meta_api::{Ino, Result};

use crate::RedisMeta;

/// Closes that make a batch.
pub(crate) const BATCH: usize = 256;
/// The age of the oldest queued close at which the next close sends the batch.
pub(crate) const DELAY: Duration = Duration::from_millis(10);

/// This client's queued closes.
#[derive(Default)]
pub(crate) struct Closes {
    state: Mutex<State>,
    sent: tokio::sync::Notify,
}

#[derive(Default)]
struct State {
    /// Inode and the session that registered its open.
    queued: Vec<(Ino, u64)>,
    since: Option<Instant>,
    /// Inodes whose batch is on its way.
    in_flight: HashSet<Ino>,
    /// Open files this client unlinked: their last close is sent at once.
    unlinked: HashSet<Ino>,
}

impl Closes {
    fn state(&self) -> MutexGuard<'_, State> {
        // Each critical section leaves the lists whole.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues the close of `ino` registered by session `sid`; whether the batch is due
    /// (it is at once for a file this client unlinked).
    pub(crate) fn queue(&self, ino: Ino, sid: u64) -> bool {
        let mut st = self.state();
        st.queued.push((ino, sid));
        let since = *st.since.get_or_insert_with(Instant::now);
        let unlinked = st.unlinked.remove(&ino);
        unlinked || st.queued.len() >= BATCH || since.elapsed() >= DELAY
    }

    /// Notes that this client removed the last name of `ino` while it was open here (the
    /// change may still fail: then its close is only sent sooner than needed).
    pub(crate) fn unlinked_here(&self, ino: Ino) {
        let mut st = self.state();
        // Bounded: a file is noted once per unlink, and its close takes it out.
        if st.unlinked.len() < 65_536 {
            st.unlinked.insert(ino);
        }
    }

    /// Before `ino` is opened again: takes a queued close of it back, and waits while one
    /// is being sent.
    pub(crate) async fn reopen(&self, ino: Ino) {
        loop {
            let sent = self.sent.notified();
            {
                let mut st = self.state();
                st.queued.retain(|(i, _)| *i != ino);
                if st.queued.is_empty() {
                    st.since = None;
                }
                if !st.in_flight.contains(&ino) {
                    return;
                }
            }
            sent.await;
        }
    }

    /// Waits until no batch is on its way (one taken by a heartbeat or by another close
    /// may still be releasing its files).
    pub(crate) async fn settled(&self) {
        loop {
            let sent = self.sent.notified();
            if self.state().in_flight.is_empty() {
                return;
            }
            sent.await;
        }
    }

    /// Takes the queued closes out to be sent.
    fn take(&self) -> Vec<(Ino, u64)> {
        let mut st = self.state();
        let batch = std::mem::take(&mut st.queued);
        st.since = None;
        st.in_flight.extend(batch.iter().map(|(i, _)| *i));
        batch
    }

    /// After a batch was sent (`failed`: put it back to be sent again).
    fn done(&self, batch: &[(Ino, u64)], failed: bool) {
        let mut st = self.state();
        for (ino, _) in batch {
            st.in_flight.remove(ino);
        }
        if failed {
            st.queued.extend_from_slice(batch);
            st.since.get_or_insert_with(Instant::now);
        }
        drop(st);
        self.sent.notify_waiters();
    }
}

/// Marks a taken batch done even when the future sending it is dropped.
struct InFlight<'a> {
    closes: &'a Closes,
    batch: Vec<(Ino, u64)>,
    failed: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.closes.done(&self.batch, self.failed);
    }
}

impl RedisMeta {
    /// Sends the queued closes in one round trip, then releases those of files that lost
    /// their last name meanwhile.
    pub(crate) async fn flush_closes(&self) -> Result<()> {
        let batch = self.closes.take();
        if batch.is_empty() {
            return Ok(());
        }
        let mut guard = InFlight {
            closes: &self.closes,
            batch,
            failed: true,
        };
        let k = &self.keys;
        let mut p = redis::pipe();
        p.atomic();
        for &(ino, sid) in &guard.batch {
            p.cmd("SREM")
                .arg(k.openers(ino))
                .arg(sid)
                .ignore()
                .cmd("SREM")
                .arg(k.opened(sid))
                .arg(ino)
                .ignore()
                .cmd("GET")
                .arg(k.inode(ino));
        }
        let attrs: Vec<Option<Vec<u8>>> = self.read_pipe(&p).await?;
        // The opens are unregistered: from here on a failure is the release's alone.
        guard.failed = false;
        let mut first_err = None;
        for (&(ino, sid), raw) in guard.batch.iter().zip(attrs) {
            let unlinked = match raw {
                Some(b) => decode_attr(&b)?.nlink == 0,
                None => true,
            };
            if unlinked {
                if let Err(e) = self.release(ino, sid).await {
                    // Still sustained by this session: its cleanup releases it.
                    tracing::warn!(ino, error = %e, "releasing a closed unlinked file failed");
                    first_err.get_or_insert(e);
                }
            }
        }
        drop(guard);
        first_err.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A barrier that finds the queue empty still waits for a batch another task took.
    #[tokio::test]
    async fn settled_waits_for_a_batch_in_flight() {
        let closes = std::sync::Arc::new(Closes::default());
        closes.queue(7, 1);
        let batch = closes.take();
        assert_eq!(batch, vec![(7, 1)]);
        assert!(closes.take().is_empty());
        let waiter = tokio::spawn({
            let closes = closes.clone();
            async move { closes.settled().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !waiter.is_finished(),
            "returned while a batch was in flight"
        );
        closes.done(&batch, false);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("settled after the batch was done")
            .unwrap();
        // Nothing in flight: at once.
        closes.settled().await;
    }
}
