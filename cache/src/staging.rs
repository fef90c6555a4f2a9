//! Writeback bookkeeping: which blocks are staged and not yet uploaded, the staging byte
//! bound writers wait on, and the wait for uploads (`flush`). The files themselves are
//! written and read by [`DiskCache`](crate::DiskCache).

use std::collections::HashMap;
use std::pin::pin;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

/// One staged block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The cache directory holding the staged file.
    pub(crate) dir: usize,
    /// The block's length.
    pub(crate) data_len: u64,
    /// When it was staged, seconds since the Unix epoch.
    pub(crate) mtime: i64,
    seq: u64,
    uploading: bool,
    deleted: bool,
}

/// What [`Staging::delete`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deleted {
    /// The block was not staged.
    NotStaged,
    /// The entry is gone; the caller removes the staged file in `dir`.
    RemoveFile {
        /// The cache directory holding the staged file.
        dir: usize,
    },
    /// An upload is in progress; the uploader deletes the block when it finishes.
    Uploading,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    used: u64,
    next_seq: u64,
    waiting: u64,
}

/// The staged blocks of one [`Cached`](crate::Cached) store.
pub(crate) struct Staging {
    limit: u64,
    state: Mutex<State>,
    /// Signalled when staged bytes are released.
    room: Notify,
    /// Signalled when a block leaves staging.
    progress: Notify,
}

/// Room reserved for one block; released on drop unless committed.
pub(crate) struct Reservation<'a> {
    staging: &'a Staging,
    bytes: u64,
}

/// Counts a writer as waiting while it exists.
struct Waiting<'a>(&'a Staging);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.lock().waiting -= 1;
    }
}

impl Staging {
    pub(crate) fn new(limit: u64) -> Staging {
        Staging {
            limit,
            state: Mutex::new(State::default()),
            room: Notify::new(),
            progress: Notify::new(),
        }
    }

    // Every critical section leaves the state consistent before it can panic.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The staged block `key`, unless it is being deleted.
    pub(crate) fn get(&self, key: &str) -> Option<Entry> {
        self.lock().entries.get(key).filter(|e| !e.deleted).copied()
    }

    /// Waits until `bytes` more fit within the limit (a block larger than the whole limit
    /// waits until staging is empty), and reserves them.
    pub(crate) async fn reserve(&self, bytes: u64) -> Reservation<'_> {
        let mut waiting = None;
        loop {
            let mut notified = pin!(self.room.notified());
            notified.as_mut().enable();
            {
                let mut st = self.lock();
                if st.used == 0 || st.used + bytes <= self.limit {
                    st.used += bytes;
                    drop(st);
                    drop(waiting);
                    return Reservation {
                        staging: self,
                        bytes,
                    };
                }
                if waiting.is_none() {
                    st.waiting += 1;
                    waiting = Some(Waiting(self));
                }
            }
            notified.await;
        }
    }

    fn release(&self, bytes: u64) {
        let mut st = self.lock();
        st.used = st.used.saturating_sub(bytes);
        drop(st);
        self.room.notify_waiters();
    }

    /// Records a block found staged on disk at startup; its bytes count even beyond the
    /// limit (writers wait until uploads bring it back under). False if already known.
    pub(crate) fn recover(&self, key: &str, dir: usize, data_len: u64, mtime: i64) -> bool {
        let mut st = self.lock();
        if st.entries.contains_key(key) {
            return false;
        }
        st.used += data_len;
        insert_entry(&mut st, key, dir, data_len, mtime);
        true
    }

    /// Removes `key` from staging (uploaded, deleted or lost), releasing its bytes and
    /// waking writers and flushes.
    pub(crate) fn finish(&self, key: &str) -> Option<Entry> {
        let e = {
            let mut st = self.lock();
            let e = st.entries.remove(key)?;
            st.used = st.used.saturating_sub(e.data_len);
            e
        };
        self.room.notify_waiters();
        self.progress.notify_waiters();
        Some(e)
    }

    /// Marks `key` as being uploaded; `None` if it is no longer staged.
    pub(crate) fn begin_upload(&self, key: &str) -> Option<Entry> {
        let mut st = self.lock();
        let e = st.entries.get_mut(key)?;
        e.uploading = true;
        Some(*e)
    }

    /// Records a failed upload attempt; returns whether the block was deleted meanwhile
    /// (then the caller drops it instead of retrying).
    pub(crate) fn upload_failed(&self, key: &str) -> bool {
        let mut st = self.lock();
        match st.entries.get_mut(key) {
            Some(e) => {
                e.uploading = false;
                e.deleted
            }
            None => true,
        }
    }

    /// Whether `key` was deleted while it was being uploaded.
    pub(crate) fn was_deleted(&self, key: &str) -> bool {
        self.lock().entries.get(key).is_none_or(|e| e.deleted)
    }

    /// Deletes a staged block: immediately if no upload is running, else marks it for the
    /// uploader.
    pub(crate) fn delete(&self, key: &str) -> Deleted {
        let mut st = self.lock();
        let Some(e) = st.entries.get_mut(key) else {
            return Deleted::NotStaged;
        };
        if e.uploading {
            e.deleted = true;
            return Deleted::Uploading;
        }
        let dir = e.dir;
        drop(st);
        self.finish(key);
        Deleted::RemoveFile { dir }
    }

    /// Waits until every block staged before the call has left staging (uploaded or
    /// deleted). Blocks staged meanwhile are not waited for.
    pub(crate) async fn flush(&self) {
        let target = self.lock().next_seq;
        loop {
            let mut notified = pin!(self.progress.notified());
            notified.as_mut().enable();
            if !self.lock().entries.values().any(|e| e.seq < target) {
                return;
            }
            notified.await;
        }
    }

    /// Staged blocks whose keys start with `prefix`, sort after `after` and, with `upto`,
    /// not after it; in key order.
    pub(crate) fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        upto: Option<&str>,
    ) -> Vec<(String, Entry)> {
        let st = self.lock();
        let mut v: Vec<(String, Entry)> = st
            .entries
            .iter()
            .filter(|(k, e)| {
                !e.deleted
                    && k.starts_with(prefix)
                    && after.is_none_or(|a| k.as_str() > a)
                    && upto.is_none_or(|u| k.as_str() <= u)
            })
            .map(|(k, e)| (k.clone(), *e))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Staged blocks, staged bytes, writers waiting.
    pub(crate) fn gauges(&self) -> (u64, u64, u64) {
        let st = self.lock();
        (st.entries.len() as u64, st.used, st.waiting)
    }
}

fn insert_entry(st: &mut State, key: &str, dir: usize, data_len: u64, mtime: i64) {
    let seq = st.next_seq;
    st.next_seq += 1;
    st.entries.insert(
        key.to_string(),
        Entry {
            dir,
            data_len,
            mtime,
            seq,
            uploading: false,
            deleted: false,
        },
    );
}

impl Reservation<'_> {
    /// Turns the reservation into a staged entry for `key`. False (and the room released)
    /// if the block was already staged.
    pub(crate) fn commit(self, key: &str, dir: usize, mtime: i64) -> bool {
        let staging = self.staging;
        let bytes = self.bytes;
        let mut st = staging.lock();
        if st.entries.contains_key(key) {
            drop(st);
            // Dropping `self` releases the room.
            return false;
        }
        insert_entry(&mut st, key, dir, bytes, mtime);
        drop(st);
        std::mem::forget(self);
        true
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.staging.release(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn writers_wait_for_room() {
        let s = Arc::new(Staging::new(100));
        assert!(s.reserve(60).await.commit("a", 0, 0));
        assert_eq!(s.gauges(), (1, 60, 0));
        let s2 = Arc::clone(&s);
        let writer = tokio::spawn(async move { s2.reserve(60).await.commit("b", 0, 0) });
        while s.gauges().2 == 0 {
            tokio::task::yield_now().await;
        }
        assert!(!writer.is_finished());
        assert_eq!(s.begin_upload("a").map(|e| e.data_len), Some(60));
        s.finish("a");
        assert!(writer.await.unwrap());
        assert_eq!(s.gauges(), (1, 60, 0));
    }

    #[tokio::test]
    async fn oversized_blocks_and_duplicates() {
        let s = Staging::new(10);
        // Larger than the limit: admitted when staging is empty.
        assert!(s.reserve(50).await.commit("big", 0, 0));
        assert!(s.recover("old", 1, 5, 0));
        assert!(!s.recover("old", 1, 5, 0));
        assert_eq!(s.gauges(), (2, 55, 0));
        s.finish("big");
        s.finish("old");
        assert!(s.reserve(5).await.commit("x", 0, 0));
        assert!(!s.reserve(5).await.commit("x", 0, 0));
        assert_eq!(s.gauges(), (1, 5, 0));
        // A reservation dropped without commit gives its room back.
        drop(s.reserve(5).await);
        assert_eq!(s.gauges(), (1, 5, 0));
    }

    #[tokio::test]
    async fn flush_waits_for_earlier_blocks_only() {
        let s = Arc::new(Staging::new(1000));
        s.reserve(1).await.commit("a", 0, 0);
        let s2 = Arc::clone(&s);
        let flush = tokio::spawn(async move { s2.flush().await });
        tokio::task::yield_now().await;
        s.reserve(1).await.commit("later", 0, 0);
        assert!(!flush.is_finished());
        s.finish("a");
        flush.await.unwrap();
        assert!(s.get("later").is_some());
    }

    #[test]
    fn delete_now_or_after_upload() {
        let s = Staging::new(1000);
        s.recover("a", 2, 1, 0);
        s.recover("b", 3, 1, 0);
        assert_eq!(s.delete("a"), Deleted::RemoveFile { dir: 2 });
        assert_eq!(s.delete("a"), Deleted::NotStaged);
        s.begin_upload("b");
        assert_eq!(s.delete("b"), Deleted::Uploading);
        assert!(s.get("b").is_none());
        assert!(s.was_deleted("b"));
        assert!(s.upload_failed("b"));
        assert!(s.list("", None, None).is_empty());
    }

    #[test]
    fn list_filters_and_sorts() {
        let s = Staging::new(1000);
        for k in ["p/c", "p/a", "q/a", "p/b"] {
            s.recover(k, 0, 1, 0);
        }
        let keys = |v: Vec<(String, Entry)>| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(keys(s.list("p/", None, None)), ["p/a", "p/b", "p/c"]);
        assert_eq!(keys(s.list("p/", Some("p/a"), Some("p/b"))), ["p/b"]);
    }
}
