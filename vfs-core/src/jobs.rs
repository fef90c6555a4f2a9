//! Background jobs of a VFS: the write-back flusher, the purge of deleted files and the
//! session heartbeat. Each gets only what it works on (the open files, a [`Purger`], the
//! engine) and holds it weakly while it waits, so dropping the last [`Vfs`](crate::Vfs)
//! stops them; the shutdown signal stops them at once.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use chunkstore::{slice_blocks, ChunkStore};
use futures::StreamExt;
use meta_api::{upkeep, DeletedFile, MetaEngine, Slice, Timestamp};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::backup::Backups;
use crate::budget::BufferBudget;
use crate::open_files::{OpenFile, OpenFiles};
use crate::trash::{self, TrashCleanup};
use crate::upkeep::finish_slices;
use crate::{Result, VfsOptions};

/// Deleted files asked from the engine at a time.
const PURGE_BATCH: usize = 1000;
/// Deleted files handed to the engine at a time ([`MetaEngine::purge_files`]): what one
/// purge transaction holds at most, and how far a purge goes between checks of
/// [`Purger::stop`].
const PURGE_GROUP: usize = 250;
/// Object deletions running at the same time during a purge.
const DELETE_PARALLELISM: usize = 16;
/// Stale sessions are reaped every this many heartbeats.
const REAP_EVERY: u32 = 5;
/// How often a client asks to be elected for the hourly trash cleanup.
const TRASH_ELECTION_EVERY: Duration = Duration::from_secs(60);

/// What the jobs of a VFS run on.
pub(crate) struct JobContext<'a> {
    /// The files whose buffered writes the flusher writes back.
    pub(crate) files: &'a Arc<OpenFiles>,
    /// The budget whose pressure wakes the flusher.
    pub(crate) budget: &'a Arc<BufferBudget>,
    /// What purges deleted files.
    pub(crate) purger: &'a Arc<Purger>,
    /// Wakes the purge job before its interval is over.
    pub(crate) purge_now: &'a Arc<Notify>,
    /// What backs the metadata up into the bucket.
    pub(crate) backups: &'a Arc<Backups>,
    /// The engine whose session the heartbeat extends.
    pub(crate) meta: &'a Arc<dyn MetaEngine>,
    /// Turns true when the VFS closes.
    pub(crate) shutdown: &'a watch::Sender<bool>,
    /// The intervals.
    pub(crate) opts: &'a VfsOptions,
}

/// Starts the jobs; returns their handles so that `close` can wait for them.
pub(crate) fn start(ctx: JobContext<'_>) -> Vec<JoinHandle<()>> {
    let idle = ctx.opts.flush_idle;
    let tick = (idle / 2).clamp(Duration::from_millis(10), Duration::from_millis(250));
    let mut jobs = vec![
        tokio::spawn(flusher(
            Arc::downgrade(ctx.files),
            ctx.shutdown.subscribe(),
            ctx.budget.clone(),
            tick,
            idle,
        )),
        tokio::spawn(purger(
            Arc::downgrade(ctx.purger),
            ctx.shutdown.subscribe(),
            ctx.purge_now.clone(),
            ctx.opts.purge_interval,
        )),
        tokio::spawn(heartbeat(
            Arc::downgrade(ctx.meta),
            ctx.shutdown.subscribe(),
            ctx.opts.heartbeat_interval.max(Duration::from_millis(10)),
        )),
    ];
    if let Some(every) = ctx.opts.backup_interval {
        jobs.push(tokio::spawn(backup(
            Arc::downgrade(ctx.backups),
            ctx.shutdown.subscribe(),
            every,
        )));
    }
    jobs
}

/// Backs the metadata up when this client is elected (see [`crate::backup`]); a backup
/// running when the VFS closes is abandoned (the next one, by any client, replaces it).
async fn backup(backups: Weak<Backups>, mut stop: watch::Receiver<bool>, every: Duration) {
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(crate::backup::check_every(every)) => {}
        }
        let Some(backups) = backups.upgrade() else {
            return;
        };
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            // Outcomes are logged and counted by the backup itself.
            _ = backups.run_if_due(every) => {}
        }
    }
}

async fn flusher(
    files: Weak<OpenFiles>,
    mut stop: watch::Receiver<bool>,
    budget: Arc<BufferBudget>,
    tick: Duration,
    idle: Duration,
) {
    loop {
        let urgent = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(tick) => false,
            _ = budget.pressure.notified() => true,
        };
        let Some(files) = files.upgrade() else {
            return;
        };
        flush_round(&files, &budget, idle, urgent).await;
    }
}

/// Commits what is uploaded, writes back files idle for `idle`, and under memory pressure
/// with no upload running (so nothing else will free memory) starts writing back every file.
async fn flush_round(files: &OpenFiles, budget: &BufferBudget, idle: Duration, urgent: bool) {
    let urgent = urgent && budget.uploads_in_flight() == 0;
    let files = files.with_pending();
    futures::future::join_all(files.iter().map(|of| flush_one(of, idle, urgent))).await;
}

async fn flush_one(of: &OpenFile, idle: Duration, urgent: bool) {
    let mut w = of.writer.lock().await;
    // Failures are kept by the writer and reported by the file's next flush.
    let _ = if urgent {
        w.start_flush().await
    } else if w.last_write.elapsed() >= idle {
        w.flush().await
    } else {
        w.commit_ready().await
    };
}

async fn purger(
    purger: Weak<Purger>,
    mut stop: watch::Receiver<bool>,
    now: Arc<Notify>,
    interval: Option<Duration>,
) {
    // The first round runs at once: what earlier clients left queued is continued here.
    let mut wait = interval.map(|_| Duration::ZERO);
    loop {
        let sleep = async {
            match wait {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = sleep => {}
            _ = now.notified() => {}
        }
        wait = interval;
        let Some(purger) = purger.upgrade() else {
            return;
        };
        if let Err(e) = purger.purge_deleted().await {
            tracing::warn!(error = %e, "purging deleted files failed");
        }
        match purger.cleanup_pending_if_elected().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(slices = n, "finished pending slices"),
            Err(e) => tracing::warn!(error = %e, "cleaning up pending slices failed"),
        }
        match purger.clean_trash_if_elected().await {
            Ok(None) => {}
            Ok(Some(done)) => tracing::info!(
                hours = done.hours,
                entries = done.entries,
                delayed_slices = done.delayed_slices,
                "cleaned the trash"
            ),
            Err(e) => tracing::warn!(error = %e, "cleaning the trash failed"),
        }
    }
}

/// Purges deleted files: releases their metadata in the engine, then deletes the blocks
/// nothing references any more from the store (metadata first, objects after).
pub(crate) struct Purger {
    meta: Arc<dyn MetaEngine>,
    /// The top of the store stack, so that cached and staged copies go too.
    store: Arc<dyn ChunkStore>,
    block_size: u32,
    hash_prefix: bool,
    /// When this client last asked to be elected for the trash cleanup.
    trash_asked: std::sync::Mutex<Option<std::time::Instant>>,
    /// Set when the VFS closes: a purge running stops after its current transaction.
    stopping: AtomicBool,
    /// Held by the purge running in this client.
    running: tokio::sync::Mutex<()>,
    /// Where this client starts in each listing of the queue, so that clients purging the
    /// same queue mostly take different files.
    spread: usize,
}

impl Purger {
    /// Purges files of `meta` whose slices are `block_size`-byte blocks of `store`, named
    /// with the volume's `hash_prefix` setting.
    pub(crate) fn new(
        meta: Arc<dyn MetaEngine>,
        store: Arc<dyn ChunkStore>,
        block_size: u32,
        hash_prefix: bool,
    ) -> Purger {
        Purger {
            meta,
            store,
            block_size,
            hash_prefix,
            trash_asked: std::sync::Mutex::new(None),
            stopping: AtomicBool::new(false),
            running: tokio::sync::Mutex::new(()),
            spread: random_u64() as usize,
        }
    }

    /// Makes a purge running stop after its current transaction and its objects (the VFS
    /// is closing): the queue is durable in the engine, any client continues it.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    fn stopped(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Purges the engine's deleted files and deletes the blocks nobody references any more:
    /// [`PURGE_GROUP`] files per engine call, the objects those freed deleted before the
    /// next. Returns how many files were purged; stops early once [`Purger::stop`] is
    /// called.
    pub(crate) async fn purge_deleted(&self) -> Result<usize> {
        // One purge at a time in a client: a second would only chase the first's files.
        let _one = self.running.lock().await;
        let mut purged = 0;
        while !self.stopped() {
            let mut files = self.meta.deleted_files(PURGE_BATCH).await?;
            let listed = files.len();
            if listed == 0 {
                break;
            }
            files.rotate_left(self.spread % listed);
            // Files that left the queue, by this client or another: none means the listed
            // files cannot be purged now (they failed), so the round ends.
            let mut progress = 0;
            for group in files.chunks(PURGE_GROUP) {
                if self.stopped() {
                    break;
                }
                let (n, gone, freed) = self.purge_group(group).await;
                purged += n;
                progress += n + gone;
                self.delete_slices(&freed).await;
            }
            if listed < PURGE_BATCH || progress == 0 {
                break;
            }
        }
        Ok(purged)
    }

    /// Purges `group` in as few transactions as the engine allows; when that fails, one
    /// file at a time, so that one bad file holds up only itself. Returns how many files
    /// were purged, how many another client purged first, and the slices freed (each once).
    async fn purge_group(&self, group: &[DeletedFile]) -> (usize, usize, Vec<Slice>) {
        let (mut n, mut gone, mut freed) = (0, 0, Vec::new());
        let mut add = |files: &[DeletedFile], done: meta_api::Purged| {
            n += done.files.len();
            gone += files.len().saturating_sub(done.files.len());
            freed.extend(done.freed);
        };
        match self.meta.purge_files(group).await {
            Ok(done) => add(group, done),
            Err(e) => {
                tracing::debug!(error = %e, "purging deleted files together failed; one at a time");
                for f in group {
                    let one = std::slice::from_ref(f);
                    match self.meta.purge_files(one).await {
                        Ok(done) => add(one, done),
                        Err(e) => {
                            tracing::warn!(ino = f.ino, error = %e, "purging a deleted file failed")
                        }
                    }
                }
            }
        }
        freed.sort_unstable_by_key(|s| s.id);
        freed.dedup_by_key(|s| s.id);
        (n, gone, freed)
    }

    /// Deletes every block of `slices` (no reference left), then forgets each slice whose
    /// blocks are gone; a slice with a failed delete stays pending for the cleanup job.
    /// Returns how many slices were forgotten.
    async fn delete_slices(&self, slices: &[Slice]) -> u64 {
        let Some(bs) = NonZeroU32::new(self.block_size) else {
            return 0;
        };
        finish_slices(
            &*self.meta,
            &*self.store,
            slices,
            bs,
            self.hash_prefix,
            DELETE_PARALLELISM,
        )
        .await
    }

    /// Cleans the trash at `now` (Unix seconds; see [`crate::trash`]): the hour directories
    /// due, then the delayed slices due, whose objects nobody references any more are
    /// deleted. `force` makes everything before `now` due.
    pub(crate) async fn clean_trash(&self, now: i64, force: bool) -> Result<TrashCleanup> {
        let days = self.meta.load().await?.trash_days;
        let mut done = trash::clean_hours(&*self.meta, now, days, force).await?;
        let before = if force {
            // Everything made up to now, this second included.
            now.saturating_add(1)
        } else {
            now.saturating_sub(i64::from(days) * 86_400)
        };
        let freed = trash::free_delayed(&*self.meta, before).await?;
        done.delayed_slices = self.delete_slices(&freed).await;
        Ok(done)
    }

    /// Cleans the trash if this client wins the election of the hourly cleanup
    /// ([`meta_api::trash::CLEANUP_TRASH`], shared with juicefs clients); asks at most once
    /// a minute. `None` when it was not this client's turn.
    pub(crate) async fn clean_trash_if_elected(&self) -> Result<Option<TrashCleanup>> {
        {
            let mut asked = self.trash_asked.lock().unwrap_or_else(|p| p.into_inner());
            if asked.is_some_and(|t| t.elapsed() < TRASH_ELECTION_EVERY) {
                return Ok(None);
            }
            *asked = Some(std::time::Instant::now());
        }
        let now = Timestamp::now().sec;
        let elected = self
            .meta
            .claim_job(
                meta_api::trash::CLEANUP_TRASH,
                now.max(0) as u64,
                meta_api::trash::CLEANUP_TRASH_EVERY_SECS,
            )
            .await?;
        if !elected {
            return Ok(None);
        }
        self.clean_trash(now, false).await.map(Some)
    }

    /// Finishes the volume's pending slices if this client wins the election of the hourly
    /// cleanup ([`upkeep::CLEANUP_SLICES`], shared with juicefs clients). Returns how many
    /// slices were finished (0 when another client's turn).
    pub(crate) async fn cleanup_pending_if_elected(&self) -> Result<u64> {
        let now = Timestamp::now().sec.max(0) as u64;
        let elected = self
            .meta
            .claim_job(
                upkeep::CLEANUP_SLICES,
                now,
                upkeep::CLEANUP_SLICES_EVERY_SECS,
            )
            .await?;
        if !elected {
            return Ok(0);
        }
        let mut finished = 0;
        loop {
            let batch = self.meta.pending_slices(PURGE_BATCH).await?;
            let n = self.delete_slices(&batch).await;
            finished += n;
            if batch.len() < PURGE_BATCH || n == 0 {
                return Ok(finished);
            }
        }
    }
}

/// A random number from a fresh hash seed (no RNG dependency): what spreads clients that
/// start together over a queue or a schedule.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// Deletes every block of `slices` (`block_size` blocks named with `hash_prefix`) from
/// `store`, [`DELETE_PARALLELISM`] at a time; a failure only leaks the object (gc reclaims
/// it).
pub(crate) async fn delete_slice_blocks(
    store: &dyn ChunkStore,
    slices: &[Slice],
    block_size: NonZeroU32,
    hash_prefix: bool,
) {
    let keys: Vec<String> = slices
        .iter()
        .filter(|s| s.id != 0)
        .flat_map(|s| slice_blocks(s.id, s.size, block_size))
        .map(|b| b.to_key(hash_prefix))
        .collect();
    futures::stream::iter(keys)
        .for_each_concurrent(DELETE_PARALLELISM, |key| async move {
            if let Err(e) = store.delete(&key).await {
                tracing::warn!(%key, error = %e, "deleting a block failed; it is leaked");
            }
        })
        .await;
}

async fn heartbeat(
    meta: Weak<dyn MetaEngine>,
    mut stop: watch::Receiver<bool>,
    interval: Duration,
) {
    let mut beats: u32 = 0;
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let Some(meta) = meta.upgrade() else {
            return;
        };
        if let Err(e) = meta.heartbeat().await {
            tracing::warn!(error = %e, "session heartbeat failed");
        }
        beats = beats.wrapping_add(1);
        if beats.is_multiple_of(REAP_EVERY) {
            match meta.reap_stale_sessions(Timestamp::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(sessions = n, "reaped stale sessions"),
                Err(e) => tracing::warn!(error = %e, "reaping stale sessions failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use bytes::Bytes;
    use chunkstore::{BlockKey, Faulty, ListPage, MemStore, ObjectMeta};
    use meta_api::testkit::model::ModelEngine;
    use meta_api::{Context, FileType, Format, Ino, ROOT_INO};

    use super::*;
    use crate::writer::SliceWriter;

    const BS: u32 = 4;

    /// A memory store that, at every delete, checks that the engine no longer lists the
    /// file whose blocks it holds as waiting to be purged.
    struct PurgeOrder {
        inner: MemStore,
        meta: Arc<ModelEngine>,
        ino: Ino,
        deletes: AtomicUsize,
        early_deletes: AtomicUsize,
    }

    #[async_trait]
    impl ChunkStore for PurgeOrder {
        async fn put(&self, key: &str, data: Bytes) -> chunkstore::Result<()> {
            self.inner.put(key, data).await
        }
        async fn get_range(
            &self,
            key: &str,
            off: u64,
            len: Option<u64>,
        ) -> chunkstore::Result<Bytes> {
            self.inner.get_range(key, off, len).await
        }
        async fn delete(&self, key: &str) -> chunkstore::Result<()> {
            let pending = self.meta.deleted_files(usize::MAX).await.unwrap();
            if pending.iter().any(|f| f.ino == self.ino) {
                self.early_deletes.fetch_add(1, Ordering::Relaxed);
            }
            self.deletes.fetch_add(1, Ordering::Relaxed);
            self.inner.delete(key).await
        }
        async fn list_page(
            &self,
            prefix: &str,
            start_after: Option<&str>,
            limit: usize,
        ) -> chunkstore::Result<ListPage> {
            self.inner.list_page(prefix, start_after, limit).await
        }
        async fn head(&self, key: &str) -> chunkstore::Result<ObjectMeta> {
            self.inner.head(key).await
        }
    }

    async fn engine() -> Arc<ModelEngine> {
        let meta = Arc::new(ModelEngine::unformatted());
        let format = Format::new("t", "00000000-0000-4000-8000-000000000000", "mem", "");
        meta.init(&format, false).await.unwrap();
        meta
    }

    /// Creates file `name` holding one 10-byte slice whose blocks are in `store`; returns
    /// its inode and the blocks' keys.
    async fn file_with_data(
        meta: &ModelEngine,
        store: &dyn ChunkStore,
        name: &[u8],
    ) -> (Ino, Vec<String>) {
        let e = meta
            .mknod(
                &Context::root(),
                ROOT_INO,
                name,
                FileType::Regular,
                0o644,
                0,
            )
            .await
            .unwrap();
        let id = meta.new_slice_id().await.unwrap();
        let mut keys = Vec::new();
        for (i, len) in [(0, 4), (1, 4), (2, 2)] {
            let key = BlockKey::new(id, i, len).to_key(false);
            store
                .put(&key, Bytes::from(vec![7; len as usize]))
                .await
                .unwrap();
            keys.push(key);
        }
        let slice = Slice {
            pos: 0,
            id,
            size: 10,
            off: 0,
            len: 10,
        };
        meta.write_slice(e.ino, 0, slice, Timestamp::now())
            .await
            .unwrap();
        (e.ino, keys)
    }

    #[tokio::test]
    async fn purge_deletes_the_objects_after_the_metadata() {
        let meta = engine().await;
        let scratch = MemStore::new();
        let (ino, keys) = file_with_data(&meta, &scratch, b"f").await;
        let store = Arc::new(PurgeOrder {
            inner: MemStore::new(),
            meta: meta.clone(),
            ino,
            deletes: AtomicUsize::new(0),
            early_deletes: AtomicUsize::new(0),
        });
        for k in &keys {
            store
                .put(k, scratch.get_range(k, 0, None).await.unwrap())
                .await
                .unwrap();
        }
        let engine: Arc<dyn MetaEngine> = meta.clone();
        let purger = Purger::new(engine, store.clone(), BS, false);
        // Nothing deleted yet: nothing to purge, nothing removed.
        assert_eq!(purger.purge_deleted().await.unwrap(), 0);
        assert_eq!(store.inner.len(), 3);

        meta.unlink(&Context::root(), ROOT_INO, b"f").await.unwrap();
        assert_eq!(meta.deleted_files(10).await.unwrap().len(), 1);
        assert_eq!(purger.purge_deleted().await.unwrap(), 1);
        assert!(meta.deleted_files(10).await.unwrap().is_empty());
        assert_eq!(store.deletes.load(Ordering::Relaxed), 3);
        assert_eq!(store.early_deletes.load(Ordering::Relaxed), 0);
        assert!(store.inner.is_empty());
        assert_eq!(purger.purge_deleted().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn purge_leaves_blocks_still_referenced_elsewhere() {
        let meta = engine().await;
        let store = Arc::new(MemStore::new());
        let (ino, keys) = file_with_data(&meta, &*store, b"f").await;
        // A second file sharing the slice (as `copy_file_range` makes one).
        let copy = meta
            .mknod(
                &Context::root(),
                ROOT_INO,
                b"g",
                FileType::Regular,
                0o644,
                0,
            )
            .await
            .unwrap();
        meta.copy_file_range(&Context::root(), ino, 0, copy.ino, 0, 10)
            .await
            .unwrap();
        let engine: Arc<dyn MetaEngine> = meta.clone();
        let purger = Purger::new(engine, store.clone(), BS, false);
        meta.unlink(&Context::root(), ROOT_INO, b"f").await.unwrap();
        assert_eq!(purger.purge_deleted().await.unwrap(), 1);
        assert_eq!(store.len(), keys.len());
        meta.unlink(&Context::root(), ROOT_INO, b"g").await.unwrap();
        assert_eq!(purger.purge_deleted().await.unwrap(), 1);
        assert!(store.is_empty());
    }

    #[tokio::test]
    async fn a_block_that_cannot_be_deleted_is_leaked_not_retried() {
        let meta = engine().await;
        let store = Arc::new(Faulty::new(MemStore::new(), 3));
        let (_, keys) = file_with_data(&meta, &*store, b"f").await;
        store.set_down(true);
        let engine: Arc<dyn MetaEngine> = meta.clone();
        let purger = Purger::new(engine, store.clone(), BS, false);
        meta.unlink(&Context::root(), ROOT_INO, b"f").await.unwrap();
        // The metadata is released; the blocks stay behind for gc.
        assert_eq!(purger.purge_deleted().await.unwrap(), 1);
        assert!(meta.deleted_files(10).await.unwrap().is_empty());
        assert_eq!(store.inner().len(), keys.len());
    }

    #[tokio::test]
    async fn a_flush_round_writes_back_idle_files_and_commits_the_rest_when_ready() {
        let meta = engine().await;
        let e = meta
            .mknod(
                &Context::root(),
                ROOT_INO,
                b"f",
                FileType::Regular,
                0o644,
                0,
            )
            .await
            .unwrap();
        let store = Arc::new(MemStore::new());
        let budget = Arc::new(BufferBudget::new(1 << 20));
        let engine: Arc<dyn MetaEngine> = meta.clone();
        let slices = SliceWriter::new(engine, store.clone(), BS, false, budget.clone(), 4);
        let files = OpenFiles::new(Arc::new(slices));
        let of = files.acquire(e.ino, 0).await;
        let res = budget.reserve(6).await.unwrap();
        of.writer
            .lock()
            .await
            .write(0, Bytes::from_static(b"abcdef"), res)
            .await
            .unwrap();

        // Not idle long enough: only what is uploaded and frozen is committed (nothing).
        let hour = Duration::from_secs(3600);
        flush_round(&files, &budget, hour, false).await;
        assert!(meta.read_chunk(e.ino, 0).await.unwrap().is_empty());
        assert!(of.state.has_pending());
        // Idle: written back and committed.
        flush_round(&files, &budget, Duration::ZERO, false).await;
        assert_eq!(meta.read_chunk(e.ino, 0).await.unwrap().len(), 1);
        assert!(!of.state.has_pending());
        assert_eq!(store.len(), 2);
    }

    #[tokio::test]
    async fn the_jobs_end_on_shutdown() {
        let meta = engine().await;
        let engine: Arc<dyn MetaEngine> = meta.clone();
        let store: Arc<dyn ChunkStore> = Arc::new(MemStore::new());
        let budget = Arc::new(BufferBudget::new(1 << 20));
        let slices = SliceWriter::new(engine.clone(), store.clone(), BS, false, budget.clone(), 1);
        let files = Arc::new(OpenFiles::new(Arc::new(slices)));
        let purger = Arc::new(Purger::new(engine.clone(), store.clone(), BS, false));
        let backups = Arc::new(Backups::new(engine.clone(), store, false));
        let (shutdown, _) = watch::channel(false);
        let opts = VfsOptions::default();
        let tasks = start(JobContext {
            files: &files,
            budget: &budget,
            purger: &purger,
            purge_now: &Arc::new(Notify::new()),
            backups: &backups,
            meta: &engine,
            shutdown: &shutdown,
            opts: &opts,
        });
        assert_eq!(tasks.len(), 4);
        shutdown.send_replace(true);
        for t in tasks {
            t.await.unwrap();
        }
    }
}
