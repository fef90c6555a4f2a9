//! Background jobs of a VFS: the write-back flusher, the purge of deleted files and the
//! session heartbeat. Each holds only a weak reference to the VFS while it waits, so
//! dropping the last [`Vfs`](crate::Vfs) stops them.

use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::Duration;

use chunkstore::slice_blocks;
use futures::StreamExt;
use meta_api::{MetaError, Slice, Timestamp};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::file::OpenFile;
use crate::vfs::Inner;
use crate::Result;

/// Deleted files asked from the engine at a time.
const PURGE_BATCH: usize = 1000;
/// Object deletions running at the same time during a purge.
const DELETE_PARALLELISM: usize = 16;
/// Stale sessions are reaped every this many heartbeats.
const REAP_EVERY: u32 = 5;

/// Starts the jobs; returns their handles so that `close` can wait for them.
pub(crate) fn start(inner: &Arc<Inner>) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    let weak = Arc::downgrade(inner);
    let idle = inner.opts.flush_idle;
    let tick = (idle / 2).clamp(Duration::from_millis(10), Duration::from_millis(250));
    tasks.push(tokio::spawn(flusher(
        weak.clone(),
        inner.shutdown_signal(),
        inner.budget.clone(),
        tick,
    )));
    tasks.push(tokio::spawn(purger(
        weak.clone(),
        inner.shutdown_signal(),
        inner.purge_now.clone(),
        inner.opts.purge_interval,
    )));
    tasks.push(tokio::spawn(heartbeat(
        weak,
        inner.shutdown_signal(),
        inner.opts.heartbeat_interval.max(Duration::from_millis(10)),
    )));
    tasks
}

async fn flusher(
    weak: Weak<Inner>,
    mut stop: watch::Receiver<bool>,
    budget: Arc<crate::budget::BufferBudget>,
    tick: Duration,
) {
    loop {
        let urgent = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(tick) => false,
            _ = budget.pressure.notified() => true,
        };
        let Some(inner) = weak.upgrade() else {
            return;
        };
        flush_round(&inner, urgent).await;
    }
}

/// Commits what is uploaded, writes back idle files, and under memory pressure with no
/// upload running (so nothing else will free memory) starts writing back every file.
async fn flush_round(inner: &Inner, urgent: bool) {
    let urgent = urgent && inner.budget.uploads_in_flight() == 0;
    let files = inner.files_with_pending();
    futures::future::join_all(files.iter().map(|of| flush_one(inner, of, urgent))).await;
}

async fn flush_one(inner: &Inner, of: &OpenFile, urgent: bool) {
    let mut w = of.writer.lock().await;
    // Failures are kept by the writer and reported by the file's next flush.
    let _ = if urgent {
        w.start_flush(inner, of).await
    } else if w.last_write.elapsed() >= inner.opts.flush_idle {
        w.flush(inner, of).await
    } else {
        w.commit_ready(inner, of).await
    };
}

async fn purger(
    weak: Weak<Inner>,
    mut stop: watch::Receiver<bool>,
    now: Arc<tokio::sync::Notify>,
    interval: Option<Duration>,
) {
    loop {
        let sleep = async {
            match interval {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = sleep => {}
            _ = now.notified() => {}
        }
        let Some(inner) = weak.upgrade() else {
            return;
        };
        if let Err(e) = purge_deleted(&inner).await {
            tracing::warn!(error = %e, "purging deleted files failed");
        }
    }
}

/// Purges the engine's deleted files and deletes the blocks nobody references any more
/// (metadata first, objects after). Returns how many files were purged.
pub(crate) async fn purge_deleted(inner: &Inner) -> Result<usize> {
    let mut purged = 0;
    loop {
        let files = inner.meta.deleted_files(PURGE_BATCH).await?;
        let listed = files.len();
        let mut progress = 0;
        for f in files {
            match inner.meta.purge_file(f.ino).await {
                Ok(slices) => {
                    progress += 1;
                    delete_slices(inner, &slices).await;
                }
                // Another client purged it first.
                Err(MetaError::NotFound) => {}
                Err(e) => tracing::warn!(ino = f.ino, error = %e, "purging a deleted file failed"),
            }
        }
        purged += progress;
        if listed < PURGE_BATCH || progress == 0 {
            return Ok(purged);
        }
    }
}

/// Deletes every block of `slices`; a failure only leaks the object (gc reclaims it).
async fn delete_slices(inner: &Inner, slices: &[Slice]) {
    let Some(bs) = NonZeroU32::new(inner.block_size) else {
        return;
    };
    let keys: Vec<String> = slices
        .iter()
        .filter(|s| s.id != 0)
        .flat_map(|s| slice_blocks(s.id, s.size, bs))
        .map(|b| b.to_key(inner.hash_prefix))
        .collect();
    futures::stream::iter(keys)
        .for_each_concurrent(DELETE_PARALLELISM, |key| async move {
            if let Err(e) = inner.store.delete(&key).await {
                tracing::warn!(%key, error = %e, "deleting a block failed; it is leaked");
            }
        })
        .await;
}

async fn heartbeat(weak: Weak<Inner>, mut stop: watch::Receiver<bool>, interval: Duration) {
    let mut beats: u32 = 0;
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let Some(inner) = weak.upgrade() else {
            return;
        };
        if let Err(e) = inner.meta.heartbeat().await {
            tracing::warn!(error = %e, "session heartbeat failed");
        }
        beats = beats.wrapping_add(1);
        if beats.is_multiple_of(REAP_EVERY) {
            match inner.meta.reap_stale_sessions(Timestamp::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(sessions = n, "reaped stale sessions"),
                Err(e) => tracing::warn!(error = %e, "reaping stale sessions failed"),
            }
        }
    }
}
