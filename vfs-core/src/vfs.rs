//! [`Vfs`]: the inode-level POSIX API a frontend (FUSE, NFS, a path-level API) adapts.
//!
//! The type, its construction and the whole-VFS operations live here; the operations are
//! split by concern: [`handles`] (opening and closing files and directories), [`io`]
//! (reading, writing, flushing), [`dirs`] (the namespace and listings) and [`attrs`]
//! (attributes, access times, extended attributes).

mod attrs;
mod dirs;
mod handles;
mod io;

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use cache::CacheMetrics;
use chunkstore::ChunkStore;
use meta_api::{FileType, Format, Ino, MetaEngine, MetaError};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::backup::{BackupInfo, BackupReport, Backups};
use crate::budget::BufferBudget;
use crate::compactor::{CompactStats, Compactor};
use crate::jobs::{self, JobContext, Purger};
use crate::meta_cache::{CachedMeta, MetaCacheStats};
use crate::open_files::OpenFiles;
use crate::quota::QuotaCheck;
use crate::reader::ChunkReader;
use crate::store_stack::StoreStack;
use crate::trash::{RestoreReport, TrashCleanup};
use crate::upkeep::{
    FileInfo, FsckOptions, FsckReport, GcOptions, GcReport, Progress, TreeSummary, Upkeep,
};
use crate::writer::SliceWriter;
use crate::{Result, VfsError, VfsOptions};
use meta_api::quota::{Quota, QuotaKind};

pub use dirs::DirItem;
use handles::Handles;

/// How long [`Vfs::close`] waits for its background jobs (a purge finishing its current
/// transaction's object deletes) before it stops them.
pub const JOBS_WAIT_ON_CLOSE: std::time::Duration = std::time::Duration::from_secs(2);

/// Everything the clones of a [`Vfs`] share.
struct Inner {
    /// The engine behind this client's metadata cache ([`Inner::cached`], the same value).
    meta: Arc<dyn MetaEngine>,
    cached: Arc<CachedMeta>,
    stores: StoreStack,
    format: Format,
    opts: VfsOptions,
    budget: Arc<BufferBudget>,
    reader: Arc<ChunkReader>,
    compactor: Arc<Compactor>,
    block_size: NonZeroU32,
    files: Arc<OpenFiles>,
    purger: Arc<Purger>,
    purge_now: Arc<Notify>,
    pub(crate) backups: Arc<Backups>,
    handles: Mutex<Handles>,
    closed: AtomicBool,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    session_started: bool,
}

impl Inner {
    fn handles(&self) -> MutexGuard<'_, Handles> {
        // Every critical section is a few map operations; consistent even after a panic.
        self.handles.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Background jobs hold no strong reference while idle; tell them to stop now.
        self.shutdown.send_replace(true);
    }
}

/// The inode-level filesystem of one volume: what a FUSE or NFS frontend adapts, and what
/// the path-level API is built on.
///
/// Every call takes the caller's [`Context`](meta_api::Context) for permission checks.
/// Errors are [`VfsError`]s; [`VfsError::errno`] gives the errno to answer with.
///
/// Data written through a handle is buffered, cut into blocks and uploaded in the
/// background; it becomes visible to other clients when it is committed: on
/// [`flush`](Vfs::flush), [`fsync`](Vfs::fsync), [`release`](Vfs::release), about a second
/// after the last write, or when a slice fills its 64 MiB chunk. Reads through this `Vfs`
/// always see its own writes. Opening a file sees everything other clients committed
/// before (close-to-open consistency).
///
/// # Metadata cache
///
/// Attributes and names this client saw are answered from memory for a short while
/// ([`VfsOptions::meta_cache`]: attributes and directory names 1 s, file names never, by
/// default). This client's own changes update the cache as they commit; other clients'
/// changes show once the entries expire, and at once on [`open`](Vfs::open), which always
/// asks the engine. So a file opened after another client closed it shows that client's
/// data and length (close-to-open), also when it was replaced by a rename, while a
/// directory another client renamed can still be walked through by its old name for up to
/// the directory TTL, as in juicefs's and NFS's clients. [`MetaCacheOptions::off`](crate::MetaCacheOptions::off) asks
/// the engine every time.
///
/// A `Vfs` is cheap to clone (all clones share one client). Call [`Vfs::close`] at the end:
/// it writes back buffered data and ends the session. Dropping the last clone without
/// closing stops the background jobs but loses buffered writes and leaves the session to
/// expire.
///
/// # Block cache and writeback
///
/// Unless [`VfsOptions`] turn it off, blocks are read through a block cache
/// ([`cache::Cached`]) in front of the store: memory always
/// ([`block_cache_size`](VfsOptions::block_cache_size), 64 MiB by default), local disk when
/// [`cache_dirs`](VfsOptions::cache_dirs) are given (none by default). Sequential readers
/// get readahead through the cache's prefetch. Losing the cache never loses data: a cache
/// file that fails its checksum is dropped and the block fetched again.
///
/// With [`writeback`](VfsOptions::writeback), written blocks are staged durably on a cache
/// disk and uploaded in the background, and slices are committed once their blocks are
/// staged. So, in writeback mode:
///
/// - [`fsync`](Vfs::fsync), [`flush`](Vfs::flush) and [`release`](Vfs::release) return
///   when the data is durable **in local staging**, not in the object store; the blocks
///   reach the store later, and a crash only delays them: the next VFS opened with the same
///   cache directories uploads what is staged. Losing that disk before the upload loses
///   those blocks, and other clients cannot read them until they are uploaded.
/// - [`close`](Vfs::close) waits for uploads at most
///   [`upload_wait_on_close`](VfsOptions::upload_wait_on_close), so a store that is down
///   cannot hang it; what is still staged stays staged. [`flush_uploads`](Vfs::flush_uploads)
///   waits for every upload, [`cache_metrics`](Vfs::cache_metrics) shows what is staged.
#[derive(Clone)]
pub struct Vfs {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Vfs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vfs")
            .field("engine", &self.inner.meta.name())
            .field("volume", &self.inner.format.name)
            .finish_non_exhaustive()
    }
}

impl Vfs {
    /// Assembles a VFS from an engine, a block store (already wrapped for the volume's
    /// prefix and compression, see [`open_store`](crate::open_store)) and the volume's
    /// settings, puts the block cache the options ask for in front of the store, registers
    /// a session (unless [`VfsOptions::start_session`] is off) and starts the background
    /// jobs. Must run inside a tokio runtime.
    pub async fn new(
        meta: Arc<dyn MetaEngine>,
        store: Arc<dyn ChunkStore>,
        format: Format,
        opts: VfsOptions,
    ) -> Result<Vfs> {
        format.check_supported()?;
        meta_api::checkpoint::check_not_restoring(&format)?;
        let cached = Arc::new(CachedMeta::new(meta, opts.meta_cache));
        let meta: Arc<dyn MetaEngine> = cached.clone();
        let block_size = u32::try_from(format.block_bytes())
            .map_err(|_| VfsError::InvalidArgument("block size too large"))?;
        let block_nz = NonZeroU32::new(block_size)
            .ok_or(VfsError::InvalidArgument("the volume's block size is 0"))?;
        let budget = Arc::new(BufferBudget::new(
            opts.buffer_size.max(2 * block_size as usize),
        ));
        // Opened before the session so that a bad cache setting leaves nothing behind.
        let stores = StoreStack::with_cache(store, &format, &opts).await?;
        if opts.start_session {
            meta.new_session(&opts.effective_session_info()).await?;
        }
        let hash_prefix = format.hash_prefix;
        let mut slices = SliceWriter::new(
            meta.clone(),
            stores.top.clone(),
            block_size,
            hash_prefix,
            budget.clone(),
            opts.upload_concurrency,
        );
        let mut reader = ChunkReader::new(meta.clone(), &stores, block_size, hash_prefix);
        let compactor = Arc::new(Compactor::new(
            meta.clone(),
            // Its own reader: compaction's reads trigger no compaction.
            Arc::new(ChunkReader::new(
                meta.clone(),
                &stores,
                block_size,
                hash_prefix,
            )),
            stores.top.clone(),
            block_nz,
            hash_prefix,
            opts.compact_concurrency,
        ));
        reader.set_compactor(compactor.clone());
        slices.set_compactor(compactor.clone());
        let purger = Purger::new(meta.clone(), stores.top.clone(), block_size, hash_prefix);
        // Below the block cache: a backup is no block.
        let backups = Arc::new(Backups::new(
            meta.clone(),
            stores.volume.clone(),
            opts.backup_skip_trash,
        ));
        let (shutdown, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            files: Arc::new(OpenFiles::new(Arc::new(slices))),
            reader: Arc::new(reader),
            compactor,
            block_size: block_nz,
            purger: Arc::new(purger),
            purge_now: Arc::new(Notify::new()),
            backups,
            session_started: opts.start_session,
            meta,
            cached,
            stores,
            format,
            opts,
            budget,
            handles: Mutex::new(Handles::default()),
            closed: AtomicBool::new(false),
            shutdown,
            tasks: Mutex::new(Vec::new()),
        });
        inner.compactor.set_open_files(&inner.files);
        let tasks = jobs::start(JobContext {
            files: &inner.files,
            budget: &inner.budget,
            purger: &inner.purger,
            purge_now: &inner.purge_now,
            backups: &inner.backups,
            meta: &inner.meta,
            shutdown: &inner.shutdown,
            opts: &inner.opts,
        });
        *inner.tasks.lock().unwrap_or_else(|p| p.into_inner()) = tasks;
        Ok(Vfs { inner })
    }

    /// The volume's settings.
    pub fn format(&self) -> &Format {
        &self.inner.format
    }

    /// The metadata engine (one client with this VFS's session).
    pub fn meta(&self) -> &Arc<dyn MetaEngine> {
        &self.inner.meta
    }

    /// The block store, as the VFS uses it: volume prefix and compression applied, and the
    /// block cache in front when there is one (so in writeback mode it also answers for
    /// blocks still staged locally).
    pub fn store(&self) -> &Arc<dyn ChunkStore> {
        &self.inner.stores.top
    }

    /// A snapshot of the block cache's counters (hits, misses, fetches, prefetches,
    /// uploads, staged bytes…); `None` when the VFS runs without a cache.
    pub fn cache_metrics(&self) -> Option<CacheMetrics> {
        self.inner.stores.cache.as_ref().map(|c| c.metrics())
    }

    /// What the in-process metadata cache answered so far (zeros when it is off).
    pub fn meta_cache_stats(&self) -> MetaCacheStats {
        self.inner.cached.stats()
    }

    /// Forgets every attribute and name the metadata cache holds: the next calls ask the
    /// engine (what a client does when it learns that others changed the volume).
    pub fn invalidate_meta_cache(&self) {
        self.inner.cached.invalidate_all();
    }

    /// Waits until every block staged for writeback before the call is uploaded to the
    /// object store; at once without writeback. Uploads are retried until they succeed,
    /// so this waits as long as the store is down: wrap it in a timeout if that matters.
    pub async fn flush_uploads(&self) {
        if let Some(c) = &self.inner.stores.cache {
            c.flush().await;
        }
    }

    /// Waits until the readahead started so far and the cache's background fills (memory
    /// to disk) have finished. For tests and benchmarks that need a settled cache.
    pub async fn cache_idle(&self) {
        self.inner.reader.wait_readahead_idle().await;
        if let Some(c) = &self.inner.stores.cache {
            c.idle().await;
        }
    }

    /// The options this VFS runs with.
    pub fn options(&self) -> &VfsOptions {
        &self.inner.opts
    }

    /// The volume's block store below the cache (where backups and checkpoints live).
    pub(crate) fn volume_store(&self) -> &Arc<dyn ChunkStore> {
        &self.inner.stores.volume
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            Err(VfsError::Closed)
        } else {
            Ok(())
        }
    }

    /// Writes back the buffered data of every open file; returns the first failure.
    pub async fn flush_all(&self) -> Result<()> {
        self.check_open()?;
        self.flush_everything().await
    }

    /// `syncfs(2)` for this client: writes back the buffered data of every open file, then
    /// passes the engine's durability barrier ([`MetaEngine::sync`]), so that everything
    /// this client did before survives power loss, and whatever the engine deferred (closes
    /// sent in batches) is done.
    pub async fn sync(&self) -> Result<()> {
        self.check_open()?;
        self.flush_everything().await?;
        Ok(self.inner.meta.sync().await?)
    }

    pub(crate) async fn flush_everything(&self) -> Result<()> {
        let mut first = Ok(());
        for of in self.inner.files.all() {
            let r = of.writer.lock().await.flush().await;
            if first.is_ok() {
                first = r;
            }
        }
        first
    }

    /// Purges deleted files now: releases their metadata, then deletes the blocks nothing
    /// references any more. Returns how many files were purged. The background job does
    /// this every [`VfsOptions::purge_interval`].
    pub async fn purge_deleted(&self) -> Result<usize> {
        self.check_open()?;
        self.inner.purger.purge_deleted().await
    }

    /// Compacts the slices of regular file `ino` now (what `tessera compact` runs): every
    /// chunk with more than one record to merge is rewritten as one slice through the block
    /// writer, and the objects nobody references any more are deleted. Writes still
    /// buffered in this client are not included (flush them first to compact them too).
    /// See [`crate::compactor`]'s rule for readers of the freed objects.
    pub async fn compact(&self, ino: Ino) -> Result<CompactStats> {
        self.check_open()?;
        let attr = self.inner.meta.getattr(ino).await?;
        if attr.typ != FileType::Regular {
            return Err(match attr.typ {
                FileType::Directory => MetaError::IsDir,
                _ => MetaError::InvalidArgument("only regular files have slices to compact"),
            }
            .into());
        }
        self.inner.compactor.compact_file(ino, attr.length).await
    }

    pub(crate) fn upkeep(&self) -> Upkeep<'_> {
        let i = &*self.inner;
        let compression = i.format.compression.as_str();
        Upkeep {
            meta: &i.meta,
            volume: &i.stores.volume,
            top: &i.stores.top,
            compactor: &i.compactor,
            block_size: i.block_size,
            hash_prefix: i.format.hash_prefix,
            plain_objects: (compression.is_empty() || compression == "none")
                && i.format.encrypt_key.is_empty(),
        }
    }

    /// Collects garbage (what `tessera gc` runs): lists every block object and counts the
    /// valid, leaked, young and pending ones; with [`GcOptions::compact`] compacts every
    /// file first; with [`GcOptions::delete`] deletes the leaked objects, purges deleted
    /// files and finishes pending slices. `progress` counts the objects listed. See
    /// [`crate::upkeep`].
    pub async fn gc(&self, opts: &GcOptions, progress: &Progress) -> Result<GcReport> {
        self.check_open()?;
        let trash = if opts.delete {
            self.inner
                .purger
                .clean_trash(meta_api::Timestamp::now().sec, false)
                .await?
        } else {
            TrashCleanup::default()
        };
        let mut report = self.upkeep().gc(opts, progress).await?;
        report.trash = trash;
        Ok(report)
    }

    /// Backs the metadata up into the bucket now (what the backup job does when elected,
    /// see [`crate::backup`]), whatever the interval, then rotates the old backups.
    pub async fn backup_meta(&self) -> Result<BackupReport> {
        self.check_open()?;
        self.inner.backups.run_now().await
    }

    /// Backs the metadata up if a backup is due at `interval` and this client wins the
    /// election (the backup job's step, for a program that schedules backups itself with
    /// [`VfsOptions::backup_interval`] off); `None` when none was due or another client
    /// took it.
    pub async fn backup_meta_if_due(
        &self,
        interval: std::time::Duration,
    ) -> Result<Option<BackupReport>> {
        self.check_open()?;
        self.inner.backups.run_if_due(interval).await
    }

    /// The metadata backups in the volume's bucket, oldest first.
    pub async fn list_backups(&self) -> Result<Vec<BackupInfo>> {
        self.check_open()?;
        self.inner.backups.list().await
    }

    /// Cleans the trash now (what the hourly job does on one client, see
    /// [`crate::trash`]): empties and removes the hour directories older than the volume's
    /// trash days plus two hours, and frees the delayed slices older than its trash days.
    /// `force` cleans every hour directory and delayed slice made before now. The files
    /// deleted this way are purged by the purge job (or [`Vfs::purge_deleted`]).
    pub async fn clean_trash(&self, force: bool) -> Result<TrashCleanup> {
        self.check_open()?;
        let now = meta_api::Timestamp::now().sec;
        self.inner.purger.clean_trash(now, force).await
    }

    /// Sets the limits `(max space, max inodes)` (≤ 0: none) of quota `key` of `kind` (what
    /// `tessera quota set` runs): a new directory quota starts with its subtree's usage,
    /// the first user or group quota turns the volume's user and group quotas on and
    /// counts every owner's usage. See [`crate::quota`].
    pub async fn set_quota(&self, kind: QuotaKind, key: u64, limits: (i64, i64)) -> Result<()> {
        self.check_open()?;
        crate::quota::set(&*self.inner.meta, kind, key, limits).await
    }

    /// Quota `key` of `kind`, if there is one.
    pub async fn get_quota(&self, kind: QuotaKind, key: u64) -> Result<Option<Quota>> {
        self.check_open()?;
        Ok(self.inner.meta.get_quota(kind, key).await?)
    }

    /// Every quota of `kind`, by key.
    pub async fn list_quotas(&self, kind: QuotaKind) -> Result<Vec<(u64, Quota)>> {
        self.check_open()?;
        Ok(self.inner.meta.list_quotas(kind).await?)
    }

    /// Removes quota `key` of `kind`; returns whether there was one.
    pub async fn delete_quota(&self, kind: QuotaKind, key: u64) -> Result<bool> {
        self.check_open()?;
        Ok(self.inner.meta.delete_quota(kind, key).await?)
    }

    /// Recounts the usage of the quotas of `kind` (all, or `key`) and reports each;
    /// `repair` stores the counts that disagree (what `tessera quota check` runs).
    pub async fn check_quotas(
        &self,
        kind: QuotaKind,
        key: Option<u64>,
        repair: bool,
    ) -> Result<Vec<QuotaCheck>> {
        self.check_open()?;
        crate::quota::check(&*self.inner.meta, kind, key, repair).await
    }

    /// Restores the entries of the trash's hour directory `hour` (`YYYY-MM-DD-HH`, what
    /// `tessera restore` runs): with `put_back` every entry goes back where it was deleted
    /// from, without it only the entries whose directory was deleted in the same hour
    /// (rebuilding the deleted trees inside the trash). Names taken meanwhile are kept and
    /// counted as conflicts. See [`crate::trash`].
    pub async fn restore(&self, hour: &[u8], put_back: bool) -> Result<RestoreReport> {
        self.check_open()?;
        crate::trash::restore(&*self.inner.meta, hour, put_back).await
    }

    /// Checks the volume (what `tessera fsck` runs): `start` is the inode and path of the
    /// tree to check (the root and `/` for the whole volume, with
    /// [`FsckOptions::path`] `None`). `progress` counts the files checked. See
    /// [`crate::upkeep`].
    pub async fn fsck(
        &self,
        opts: &FsckOptions,
        start: (Ino, String),
        progress: &Progress,
    ) -> Result<FsckReport> {
        self.check_open()?;
        self.upkeep().fsck(opts, start, progress).await
    }

    /// Compacts the file at `ino`, or every file of the tree at `ino` (what `tessera
    /// compact PATH` runs); returns how many files and the totals. `progress` counts the
    /// files compacted and the bytes rewritten.
    pub async fn compact_tree(&self, ino: Ino, progress: &Progress) -> Result<(u64, CompactStats)> {
        self.check_open()?;
        self.upkeep().compact_tree(ino, progress).await
    }

    /// A file's chunks, slice records and their objects (what `tessera info PATH` shows).
    pub async fn file_info(&self, ino: Ino) -> Result<FileInfo> {
        self.check_open()?;
        self.upkeep().file_info(ino).await
    }

    /// The size, files and directories of the tree at `ino` (what `tessera summary`
    /// shows). `progress` counts the entries read.
    pub async fn summary(&self, ino: Ino, progress: &Progress) -> Result<TreeSummary> {
        self.check_open()?;
        self.upkeep().summary(ino, progress).await
    }

    /// Wakes the background purge job without waiting for it.
    pub fn request_purge(&self) {
        self.inner.purge_now.notify_one();
    }

    /// Shuts the VFS down: writes back all buffered data, closes every handle, stops the
    /// background jobs (a purge of deleted files stops after its current transaction and
    /// is waited for at most [`JOBS_WAIT_ON_CLOSE`]: the deletion queue is durable in the
    /// engine, and the next client to open the volume continues it), in writeback mode waits (at most
    /// [`VfsOptions::upload_wait_on_close`]) for staged blocks to be uploaded, and ends the
    /// session. Returns the first failure; the VFS is closed either way and every later
    /// call fails with [`VfsError::Closed`]. The cache directories stay in use until the
    /// last clone of the VFS is dropped.
    pub async fn close(&self) -> Result<()> {
        // New calls are refused from here on; what is buffered is written back below.
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // A purge running stops after its current transaction: the queue stays in the
        // engine for any client to continue.
        self.inner.purger.stop();
        let mut first = self.flush_everything().await;
        let handles = std::mem::take(&mut *self.inner.handles());
        for (_, h) in handles.files {
            let r = self.inner.meta.close(h.ino).await;
            if first.is_ok() {
                first = r.map_err(VfsError::from);
            }
        }
        self.inner.files.clear();
        self.inner.compactor.shut_down().await;
        self.inner.shutdown.send_replace(true);
        let tasks =
            std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        let deadline = tokio::time::Instant::now() + JOBS_WAIT_ON_CLOSE;
        for mut t in tasks {
            match tokio::time::timeout_at(deadline, &mut t).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(error = %e, "a background job ended abnormally"),
                Err(_) => {
                    // Only a purge's object deletes take this long; its slices stay
                    // pending in the engine and the cleanup of pending slices finishes them.
                    tracing::info!("a background job is still busy at close; stopping it");
                    t.abort();
                }
            }
        }
        if let Some(c) = self
            .inner
            .stores
            .cache
            .as_ref()
            .filter(|c| c.options().writeback)
        {
            // Staged blocks are durable locally; waiting forever for a store that is down
            // would turn a clean shutdown into a hang.
            let wait = self.inner.opts.upload_wait_on_close;
            if tokio::time::timeout(wait, c.flush()).await.is_err() {
                let m = c.metrics();
                tracing::warn!(
                    blocks = m.staged_blocks,
                    bytes = m.staged_bytes,
                    "closing with staged blocks not uploaded yet; the next VFS opened with \
                     the same cache directories uploads them"
                );
            }
        }
        if self.inner.session_started {
            let r = self.inner.meta.close_session().await;
            if first.is_ok() {
                first = r.map_err(VfsError::from);
            }
        }
        // A clean close leaves every change durable, as if each file had been fsynced.
        let r = self.inner.meta.sync().await;
        if first.is_ok() {
            first = r.map_err(VfsError::from);
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use meta_api::{Context, SetAttr};

    use super::*;

    /// Compiles only if the futures of the API are `Send + 'static` when they own their
    /// arguments, which frontends that box or spawn them need.
    #[allow(dead_code)]
    fn api_futures_are_send(vfs: Vfs, ctx: Context) {
        use futures::future::BoxFuture;
        fn boxed<T>(_: BoxFuture<'static, T>) {}
        let (v, c) = (vfs.clone(), ctx.clone());
        boxed(Box::pin(async move { v.read(&c, 1, 0, 1).await }));
        let (v, c) = (vfs.clone(), ctx.clone());
        boxed(Box::pin(
            async move { v.write(&c, 1, 0, Bytes::new()).await },
        ));
        let (v, c) = (vfs.clone(), ctx.clone());
        boxed(Box::pin(
            async move { v.create(&c, 1, b"x", 0o644, 0).await },
        ));
        let (v, c) = (vfs.clone(), ctx.clone());
        boxed(Box::pin(async move { v.open(&c, 1, 0).await }));
        let (v, c) = (vfs.clone(), ctx.clone());
        boxed(Box::pin(async move { v.release(&c, 1).await }));
        let (v, c) = (vfs.clone(), ctx.clone());
        boxed(Box::pin(async move { v.fsync(&c, 1, false).await }));
        let (v, c) = (vfs.clone(), ctx.clone());
        boxed(Box::pin(async move { v.readdir(&c, 1, 0, 10, true).await }));
        let (v, c) = (vfs.clone(), ctx.clone());
        boxed(Box::pin(async move {
            v.setattr(&c, 1, &SetAttr::new().size(0)).await
        }));
        let (v, c) = (vfs.clone(), ctx.clone());
        boxed(Box::pin(async move {
            v.copy_file_range(&c, 1, 0, 2, 0, 1, 0).await
        }));
        boxed(Box::pin(async move { vfs.close().await }));
    }
}
