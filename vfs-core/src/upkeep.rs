//! Volume upkeep run by an administrator (`tessera gc`, `fsck`, `info`, `summary`): the
//! logic lives here, the CLI only prints.
//!
//! * [`Vfs::gc`](crate::Vfs::gc) lists the store's block objects and compares them with
//!   everything the metadata references ([`MetaEngine::list_slices`]): an object of no
//!   chunk record, delayed slice or pending slice is leaked — unless it is younger than
//!   [`GcOptions::min_age`] (an upload whose slice is not committed yet is not a leak).
//!   It reports; with [`GcOptions::delete`] it also removes the detached trees of clones
//!   older than a day ([`meta_api::clone`]), deletes the leaked objects, purges the
//!   deleted files and finishes the pending slices.
//! * [`Vfs::fsck`](crate::Vfs::fsck) checks that every block the files of a tree reference
//!   exists with its length, the directories' link counts, parents and statistics, and with
//!   repair recomputes statistics and the volume's usage counters.
//! * [`Vfs::file_info`](crate::Vfs::file_info) and [`Vfs::summary`](crate::Vfs::summary)
//!   describe a file's chunks, slices and objects, and a tree's size.
//!
//! Work and memory follow what exists: directories are read a page at a time, and a file's
//! chunks are read only up to its length.

use std::collections::{HashMap, HashSet, VecDeque};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chunkstore::{slice_blocks, BlockKey, ChunkStore, ChunkStoreExt};
use futures::StreamExt;
use meta_api::upkeep::DirStat;
use meta_api::{Context, DirEntry, FileType, Ino, MetaEngine, MetaError, Slice, CHUNK_SIZE};

use crate::compactor::Compactor;
use crate::{Result, VfsError};

/// Entries read from a directory at a time.
const DIR_PAGE: usize = 1000;
/// Slices whose objects are deleted forgotten per engine call.
const FORGET_BATCH: usize = 1000;
/// Objects listed from the store at a time.
const LIST_PAGE: usize = 1000;
/// Where block objects live under the volume's prefix.
const CHUNKS_PREFIX: &str = "chunks/";

/// Counters a long-running job advances, for a progress display.
#[derive(Debug, Default)]
pub struct Progress {
    /// Items done (objects listed, files checked).
    pub items: AtomicU64,
    /// Bytes of those items.
    pub bytes: AtomicU64,
}

impl Progress {
    fn add(&self, items: u64, bytes: u64) {
        self.items.fetch_add(items, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// What [`Vfs::gc`](crate::Vfs::gc) does.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Compact every file first (`--compact`).
    pub compact: bool,
    /// Delete what is leaked or pending, instead of only reporting (`--delete`).
    pub delete: bool,
    /// Deletions (and compactions) running at once (`--threads`, at least 1).
    pub threads: usize,
    /// Objects younger than this are never leaked: their upload may be in flight (one hour,
    /// as juicefs). Ages are whole seconds counted from before the slices are read, and an
    /// object exactly `min_age` old is still young; zero protects nothing.
    pub min_age: Duration,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            compact: false,
            delete: false,
            threads: 10,
            min_age: Duration::from_secs(3600),
        }
    }
}

/// A count of objects or slices and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// How many.
    pub count: u64,
    /// Their bytes.
    pub bytes: u64,
}

impl Tally {
    fn add(&mut self, bytes: u64) {
        self.count += 1;
        self.bytes += bytes;
    }
}

/// What [`Vfs::gc`](crate::Vfs::gc) found (and did).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Every block object listed.
    pub listed: Tally,
    /// Objects of referenced slices.
    pub valid: Tally,
    /// Objects of no slice the metadata knows, old enough to be leaks.
    pub leaked: Tally,
    /// Objects of no known slice but younger than the minimum age (left alone).
    pub young: Tally,
    /// Objects of pending slices (references gone, deletion unfinished).
    pub pending_objects: Tally,
    /// Pending slices, by their size.
    pub pending_slices: Tally,
    /// Delayed slices kept for the trash, by their size.
    pub delayed_slices: Tally,
    /// Deleted files waiting for their purge, by their length.
    pub pending_files: Tally,
    /// Chunk records (with data) of every file.
    pub records: u64,
    /// With `compact`: chunk records replaced by compaction.
    pub compacted_records: u64,
    /// With `delete`: what the trash cleanup did first.
    pub trash: crate::trash::TrashCleanup,
    /// With `delete`: leaked objects deleted.
    pub deleted_leaked: Tally,
    /// With `delete`: pending slices finished (objects deleted, record dropped).
    pub finished_slices: u64,
    /// With `delete`: deleted files purged.
    pub purged_files: u64,
    /// Slices only checkpoints refer to (their objects are valid).
    pub checkpoint_slices: u64,
    /// Detached trees (clones being built, or left by a client that crashed while
    /// cloning), by their inodes.
    pub detached_trees: u64,
    /// Detached trees older than [`meta_api::clone::DETACHED_MAX_AGE_SECS`].
    pub old_detached_trees: u64,
    /// With `delete`: old detached trees removed (before the purge of deleted files, which
    /// then frees what they referenced alone).
    pub removed_detached_trees: u64,
}

/// What [`Vfs::fsck`](crate::Vfs::fsck) checks and repairs.
#[derive(Debug, Clone, Default)]
pub struct FsckOptions {
    /// The tree to check (`None`: the whole volume from the root).
    pub path: Option<String>,
    /// Check the whole subtree of `path`, not just it and its direct entries.
    pub recursive: bool,
    /// Fix what can be fixed: directory statistics and the usage counters.
    pub repair: bool,
    /// Recompute every visited directory's statistics.
    pub sync_dir_stat: bool,
}

/// One file with missing or mis-sized blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenFile {
    /// Its path (one of them, for hard links).
    pub path: String,
    /// Its inode.
    pub ino: Ino,
    /// Block keys that are missing, or present with another length.
    pub bad_blocks: Vec<String>,
}

/// One directory whose records disagree with its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirProblem {
    /// The directory's path.
    pub path: String,
    /// What is wrong.
    pub problem: String,
    /// Whether it was repaired.
    pub repaired: bool,
}

/// What [`Vfs::fsck`](crate::Vfs::fsck) found (and repaired).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsckReport {
    /// Regular files checked.
    pub files: u64,
    /// Directories visited.
    pub dirs: u64,
    /// Blocks checked.
    pub blocks: u64,
    /// Files with missing or mis-sized blocks.
    pub broken: Vec<BrokenFile>,
    /// Directory problems.
    pub dir_problems: Vec<DirProblem>,
    /// Directories whose statistics were recomputed.
    pub synced_dirs: u64,
    /// With repair of the whole volume: the usage counters before and after.
    pub usage: Option<meta_api::upkeep::Recount>,
}

impl FsckReport {
    /// Whether nothing is wrong (repaired problems count as wrong: they were).
    pub fn is_clean(&self) -> bool {
        self.broken.is_empty() && self.dir_problems.is_empty()
    }
}

/// One slice record of a chunk and its objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceInfo {
    /// The record.
    pub slice: Slice,
    /// The keys of its slice's blocks (empty for a hole).
    pub objects: Vec<String>,
}

/// A file's chunks as [`Vfs::file_info`](crate::Vfs::file_info) shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// The inode.
    pub ino: Ino,
    /// Its type.
    pub typ: FileType,
    /// Its length.
    pub length: u64,
    /// Every chunk with records: its index and records in write order.
    pub chunks: Vec<(u32, Vec<SliceInfo>)>,
}

/// A tree as [`Vfs::summary`](crate::Vfs::summary) counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeSummary {
    /// Sum of the lengths of its regular files.
    pub length: u64,
    /// Space as JuiceFS counts it (4 KiB blocks, at least one per inode).
    pub space: u64,
    /// Regular files.
    pub files: u64,
    /// Directories (the top one included).
    pub dirs: u64,
    /// Symbolic links and other inodes.
    pub others: u64,
}

/// What fsck checks files against: every block object and its size, and (for the whole
/// volume) every chunk record by file.
struct Inventory {
    records: Option<HashMap<Ino, Vec<Slice>>>,
    objects: HashMap<String, u64>,
}

/// What the upkeep jobs work on: the engine and the stores of one VFS.
pub(crate) struct Upkeep<'a> {
    pub(crate) meta: &'a Arc<dyn MetaEngine>,
    /// The volume's store (listing, heads).
    pub(crate) volume: &'a Arc<dyn ChunkStore>,
    /// The top of the store stack (deletions reach every tier).
    pub(crate) top: &'a Arc<dyn ChunkStore>,
    pub(crate) compactor: &'a Compactor,
    pub(crate) block_size: NonZeroU32,
    pub(crate) hash_prefix: bool,
    /// Whether objects are stored as written (sizes comparable with block lengths).
    pub(crate) plain_objects: bool,
}

/// The seconds since the Unix epoch now.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn store_err(e: chunkstore::StoreError) -> VfsError {
    VfsError::Store(Arc::new(e))
}

impl Upkeep<'_> {
    /// Whether block `b` is one of the blocks of a slice of `size` bytes.
    fn belongs(&self, b: &BlockKey, size: u32) -> bool {
        let bs = self.block_size.get();
        let blocks = size.div_ceil(bs);
        if b.index >= blocks {
            return false;
        }
        let expect = bs.min(size - b.index * bs);
        b.len == expect
    }

    /// See [`Vfs::gc`](crate::Vfs::gc).
    pub(crate) async fn gc(&self, opts: &GcOptions, progress: &Progress) -> Result<GcReport> {
        let mut report = GcReport::default();
        let threads = opts.threads.max(1);
        if opts.compact {
            report.compacted_records = self.compact_all(threads).await?;
        }
        let old = unix_now().saturating_sub(meta_api::clone::DETACHED_MAX_AGE_SECS);
        for (_, started) in self.meta.detached_nodes().await? {
            report.detached_trees += 1;
            if started < old {
                report.old_detached_trees += 1;
            }
        }
        if opts.delete {
            if report.old_detached_trees > 0 {
                let removed = meta_api::clone::remove_old_detached(&**self.meta, old).await?;
                report.removed_detached_trees = removed as u64;
            }
            report.purged_files = self.purge_deleted().await?;
        }
        for f in self.meta.deleted_files(usize::MAX).await? {
            report.pending_files.add(f.length);
        }
        // Taken before the slices are read: an object uploaded less than `min_age` before
        // that read is young even if the listing of objects comes much later.
        let now = unix_now();
        // Slice id -> size of everything referenced; pending slices apart.
        let listing = self.meta.list_slices().await?;
        let mut live: HashMap<u64, u32> = HashMap::with_capacity(listing.records.len());
        for (_, _, s) in &listing.records {
            report.records += 1;
            live.insert(s.id, s.size);
        }
        for &(id, size) in &listing.delayed {
            report.delayed_slices.add(u64::from(size));
            live.insert(id, size);
        }
        // What only a checkpoint still refers to is no leak.
        for (id, size) in crate::checkpoint::held_slices(&**self.volume).await? {
            if live.insert(id, size).is_none() {
                report.checkpoint_slices += 1;
            }
        }
        let mut pending: HashMap<u64, u32> = HashMap::new();
        for &(id, size) in &listing.pending {
            report.pending_slices.add(u64::from(size));
            pending.insert(id, size);
        }
        let min_age = i64::try_from(opts.min_age.as_secs()).unwrap_or(i64::MAX);
        let mut leaked = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .volume
                .list_page(CHUNKS_PREFIX, after.as_deref(), LIST_PAGE)
                .await
                .map_err(store_err)?;
            for o in &page.objects {
                report.listed.add(o.size);
                let known = BlockKey::parse(&o.key).and_then(|b| {
                    let of = |m: &HashMap<u64, u32>| {
                        m.get(&b.slice_id)
                            .is_some_and(|&size| self.belongs(&b, size))
                    };
                    match (of(&live), of(&pending)) {
                        (true, _) => Some(true),
                        (false, true) => Some(false),
                        _ => None,
                    }
                });
                match known {
                    Some(true) => report.valid.add(o.size),
                    Some(false) => report.pending_objects.add(o.size),
                    // Times are whole seconds: an object of the second `min_age` before is
                    // still young (at least `min_age` of protection, never less).
                    None if min_age > 0
                        && o.mtime > 0
                        && now.saturating_sub(o.mtime) <= min_age =>
                    {
                        report.young.add(o.size)
                    }
                    None => {
                        report.leaked.add(o.size);
                        if opts.delete {
                            leaked.push((o.key.clone(), o.size));
                        }
                    }
                }
            }
            progress.add(
                page.objects.len() as u64,
                page.objects.iter().map(|o| o.size).sum(),
            );
            after = page.objects.last().map(|o| o.key.clone());
            if !page.truncated || after.is_none() {
                break;
            }
            if leaked.len() >= LIST_PAGE {
                let batch = std::mem::take(&mut leaked);
                self.delete_objects(batch, threads, &mut report.deleted_leaked)
                    .await;
            }
        }
        if opts.delete {
            self.delete_objects(leaked, threads, &mut report.deleted_leaked)
                .await;
            report.finished_slices = self.finish_pending(threads).await?;
        }
        Ok(report)
    }

    /// Deletes `objects`, `threads` at a time, counting those deleted.
    async fn delete_objects(&self, objects: Vec<(String, u64)>, threads: usize, done: &mut Tally) {
        let top = self.top;
        let results: Vec<Option<u64>> = futures::stream::iter(objects)
            .map(|(key, size)| async move {
                match top.delete(&key).await {
                    Ok(()) => Some(size),
                    Err(e) => {
                        tracing::warn!(%key, error = %e, "gc could not delete a leaked object");
                        None
                    }
                }
            })
            .buffer_unordered(threads)
            .collect()
            .await;
        for size in results.into_iter().flatten() {
            done.add(size);
        }
    }

    /// Compacts every file with records; returns the records replaced.
    async fn compact_all(&self, threads: usize) -> Result<u64> {
        let listing = self.meta.list_slices().await?;
        let mut chunks: Vec<(Ino, u32)> =
            listing.records.iter().map(|(i, c, _)| (*i, *c)).collect();
        drop(listing);
        chunks.sort_unstable();
        chunks.dedup();
        let compactor = self.compactor;
        let replaced: Vec<u64> = futures::stream::iter(chunks)
            .map(|(ino, index)| async move {
                match compactor.compact_chunk(ino, index).await {
                    Ok(s) => s.replaced as u64,
                    // A file deleted meanwhile has nothing to compact.
                    Err(VfsError::Meta(MetaError::NotFound)) => 0,
                    Err(e) => {
                        tracing::warn!(ino, index, error = %e, "gc could not compact a chunk");
                        0
                    }
                }
            })
            .buffer_unordered(threads)
            .collect()
            .await;
        Ok(replaced.into_iter().sum())
    }

    /// Purges every deleted file that no client has open; returns how many.
    pub(crate) async fn purge_deleted(&self) -> Result<u64> {
        let mut purged = 0;
        for f in self.meta.deleted_files(usize::MAX).await? {
            match self.meta.purge_file(f.ino).await {
                Ok(freed) => {
                    purged += 1;
                    self.finish(&freed, 16).await;
                }
                Err(MetaError::NotFound) => {}
                Err(e) => tracing::warn!(ino = f.ino, error = %e, "gc could not purge a file"),
            }
        }
        Ok(purged)
    }

    /// Deletes the objects of pending slices and forgets them; returns how many finished.
    pub(crate) async fn finish_pending(&self, threads: usize) -> Result<u64> {
        let mut finished = 0;
        loop {
            let batch = self.meta.pending_slices(LIST_PAGE).await?;
            if batch.is_empty() {
                return Ok(finished);
            }
            let n = self.finish(&batch, threads).await;
            finished += n;
            if n == 0 || batch.len() < LIST_PAGE {
                return Ok(finished);
            }
        }
    }

    /// Deletes the objects of `slices` (which have no reference left), then forgets each
    /// slice whose objects are all gone; returns how many were forgotten.
    pub(crate) async fn finish(&self, slices: &[Slice], threads: usize) -> u64 {
        finish_slices(
            &**self.meta,
            &**self.top,
            slices,
            self.block_size,
            self.hash_prefix,
            threads,
        )
        .await
    }

    /// See [`Vfs::fsck`](crate::Vfs::fsck).
    pub(crate) async fn fsck(
        &self,
        opts: &FsckOptions,
        start: (Ino, String),
        progress: &Progress,
    ) -> Result<FsckReport> {
        let mut report = FsckReport::default();
        // Every block object and its size, once.
        let objects: HashMap<String, u64> = self
            .volume
            .list_all(CHUNKS_PREFIX)
            .await
            .map_err(store_err)?
            .into_iter()
            .map(|o| (o.key, o.size))
            .collect();
        let whole_volume = opts.path.is_none();
        let recursive = opts.recursive || whole_volume;
        let (start_ino, start_path) = start;
        let start_attr = self.meta.getattr(start_ino).await?;
        let mut seen_files: HashSet<Ino> = HashSet::new();
        // Checking the whole volume, one scan of every chunk beats a query per file.
        let inv = Inventory {
            records: if whole_volume {
                let mut by_ino: HashMap<Ino, Vec<Slice>> = HashMap::new();
                for (ino, _, s) in self.meta.list_slices().await?.records {
                    by_ino.entry(ino).or_default().push(s);
                }
                Some(by_ino)
            } else {
                None
            },
            objects,
        };
        if start_attr.typ == FileType::Regular {
            self.check_file(start_ino, start_attr.length, &start_path, &inv, &mut report)
                .await?;
            progress.add(1, start_attr.length);
        }
        let mut dirs: VecDeque<(Ino, String)> = VecDeque::new();
        if start_attr.typ == FileType::Directory {
            dirs.push_back((start_ino, start_path));
        }
        while let Some((dir, path)) = dirs.pop_front() {
            report.dirs += 1;
            let mut subdirs: u32 = 0;
            let mut counted = DirStat::default();
            let mut pages = DirPages::new(dir);
            while let Some(page) = pages.next(&**self.meta).await? {
                for e in &page {
                    let child = join(&path, &e.name);
                    let attr = match &e.attr {
                        Some(a) => a.clone(),
                        None => self.meta.getattr(e.ino).await?,
                    };
                    counted.add_entry(attr.typ, attr.length);
                    match attr.typ {
                        // A file with several names is checked once.
                        FileType::Regular if seen_files.insert(e.ino) => {
                            self.check_file(e.ino, attr.length, &child, &inv, &mut report)
                                .await?;
                            progress.add(1, attr.length);
                        }
                        FileType::Directory => {
                            subdirs += 1;
                            if attr.parent != dir {
                                report.dir_problems.push(DirProblem {
                                    path: child.clone(),
                                    problem: format!(
                                        "its parent is recorded as inode {}, but it is an entry of inode {dir}",
                                        attr.parent
                                    ),
                                    repaired: false,
                                });
                            }
                            if recursive {
                                dirs.push_back((e.ino, child));
                            }
                        }
                        _ => {}
                    }
                }
            }
            let attr = self.meta.getattr(dir).await?;
            if attr.nlink != 2 + subdirs {
                report.dir_problems.push(DirProblem {
                    path: path.clone(),
                    problem: format!(
                        "nlink is {} but it has {subdirs} subdirectories (expected {})",
                        attr.nlink,
                        2 + subdirs
                    ),
                    repaired: false,
                });
            }
            let stored = self.meta.dir_stat(dir).await?;
            if opts.sync_dir_stat || (opts.repair && stored.is_some_and(|s| s != counted)) {
                self.meta.sync_dir_stat(dir).await?;
                report.synced_dirs += 1;
            }
            if let Some(s) = stored.filter(|s| *s != counted) {
                report.dir_problems.push(DirProblem {
                    path,
                    problem: format!(
                        "stats say {} bytes, {} space, {} inodes; entries add up to {} bytes, {} space, {} inodes",
                        s.length, s.space, s.inodes, counted.length, counted.space, counted.inodes
                    ),
                    repaired: opts.repair || opts.sync_dir_stat,
                });
            }
        }
        if whole_volume && opts.repair {
            report.usage = Some(self.meta.recount_usage().await?);
        }
        Ok(report)
    }

    /// Checks that every block of every slice of regular file `ino` exists with its length.
    async fn check_file(
        &self,
        ino: Ino,
        length: u64,
        path: &str,
        inv: &Inventory,
        report: &mut FsckReport,
    ) -> Result<()> {
        report.files += 1;
        let mut slices = Vec::new();
        match &inv.records {
            Some(all) => slices.extend(all.get(&ino).into_iter().flatten().copied()),
            None => {
                for index in 0..length.div_ceil(CHUNK_SIZE) {
                    let index = u32::try_from(index).map_err(|_| VfsError::FileTooBig)?;
                    slices.extend(self.meta.read_chunk(ino, index).await?);
                }
            }
        }
        let objects = &inv.objects;
        let mut bad = Vec::new();
        for s in slices.into_iter().filter(|s| s.id != 0) {
            for b in slice_blocks(s.id, s.size, self.block_size) {
                report.blocks += 1;
                let key = b.to_key(self.hash_prefix);
                let ok = match objects.get(&key) {
                    None => false,
                    Some(&size) => !self.plain_objects || size == u64::from(b.len),
                };
                if !ok && !bad.contains(&key) {
                    bad.push(key);
                }
            }
        }
        if !bad.is_empty() {
            report.broken.push(BrokenFile {
                path: path.to_string(),
                ino,
                bad_blocks: bad,
            });
        }
        Ok(())
    }

    /// See [`Vfs::compact_tree`](crate::Vfs::compact_tree).
    pub(crate) async fn compact_tree(
        &self,
        ino: Ino,
        progress: &Progress,
    ) -> Result<(u64, crate::CompactStats)> {
        let mut total = crate::CompactStats::default();
        let mut files = 0;
        let compact = |attr_ino: Ino, length: u64| async move {
            let s = self.compactor.compact_file(attr_ino, length).await?;
            progress.add(1, s.bytes_written);
            Ok::<_, VfsError>(s)
        };
        let attr = self.meta.getattr(ino).await?;
        let mut dirs = VecDeque::new();
        match attr.typ {
            FileType::Regular => {
                let s = compact(ino, attr.length).await?;
                files += 1;
                total = s;
            }
            FileType::Directory => dirs.push_back(ino),
            _ => {}
        }
        while let Some(dir) = dirs.pop_front() {
            let mut pages = DirPages::new(dir);
            while let Some(page) = pages.next(&**self.meta).await? {
                for e in &page {
                    let (typ, length) = match &e.attr {
                        Some(a) => (a.typ, a.length),
                        None => (e.typ, 0),
                    };
                    match typ {
                        FileType::Regular => {
                            let s = compact(e.ino, length).await?;
                            files += 1;
                            total.records_before += s.records_before;
                            total.replaced += s.replaced;
                            total.bytes_written += s.bytes_written;
                        }
                        FileType::Directory => dirs.push_back(e.ino),
                        _ => {}
                    }
                }
            }
        }
        Ok((files, total))
    }

    /// See [`Vfs::file_info`](crate::Vfs::file_info).
    pub(crate) async fn file_info(&self, ino: Ino) -> Result<FileInfo> {
        let attr = self.meta.getattr(ino).await?;
        let mut chunks = Vec::new();
        if attr.typ == FileType::Regular {
            for index in 0..attr.length.div_ceil(CHUNK_SIZE) {
                let index = u32::try_from(index).map_err(|_| VfsError::FileTooBig)?;
                let slices = self.meta.read_chunk(ino, index).await?;
                if slices.is_empty() {
                    continue;
                }
                let infos = slices
                    .into_iter()
                    .map(|slice| SliceInfo {
                        objects: if slice.id == 0 {
                            Vec::new()
                        } else {
                            slice_blocks(slice.id, slice.size, self.block_size)
                                .map(|b| b.to_key(self.hash_prefix))
                                .collect()
                        },
                        slice,
                    })
                    .collect();
                chunks.push((index, infos));
            }
        }
        Ok(FileInfo {
            ino,
            typ: attr.typ,
            length: attr.length,
            chunks,
        })
    }

    /// See [`Vfs::summary`](crate::Vfs::summary).
    pub(crate) async fn summary(&self, ino: Ino, progress: &Progress) -> Result<TreeSummary> {
        let mut sum = TreeSummary::default();
        let attr = self.meta.getattr(ino).await?;
        let count = |sum: &mut TreeSummary, typ: FileType, length: u64| {
            let (length, space) = meta_api::space::entry_usage(typ, length);
            sum.length += length.max(0) as u64;
            sum.space += space.max(0) as u64;
            match typ {
                FileType::Regular => sum.files += 1,
                FileType::Directory => sum.dirs += 1,
                _ => sum.others += 1,
            }
        };
        count(&mut sum, attr.typ, attr.length);
        let mut dirs = VecDeque::new();
        if attr.typ == FileType::Directory {
            dirs.push_back(ino);
        }
        while let Some(dir) = dirs.pop_front() {
            let mut pages = DirPages::new(dir);
            while let Some(page) = pages.next(&**self.meta).await? {
                for e in &page {
                    let (typ, length) = match &e.attr {
                        Some(a) => (a.typ, a.length),
                        None => (e.typ, 0),
                    };
                    count(&mut sum, typ, length);
                    if typ == FileType::Directory {
                        dirs.push_back(e.ino);
                    }
                }
                progress.add(page.len() as u64, 0);
            }
        }
        Ok(sum)
    }
}

/// A directory read a page of [`DIR_PAGE`] entries (with attributes) at a time.
pub(crate) struct DirPages {
    dir: Ino,
    after: Option<Vec<u8>>,
    done: bool,
}

impl DirPages {
    pub(crate) fn new(dir: Ino) -> DirPages {
        DirPages {
            dir,
            after: None,
            done: false,
        }
    }

    /// The next page, `None` after the last.
    pub(crate) async fn next(&mut self, meta: &dyn MetaEngine) -> Result<Option<Vec<DirEntry>>> {
        if self.done {
            return Ok(None);
        }
        let page = meta
            .readdir(
                &Context::root(),
                self.dir,
                self.after.as_deref(),
                DIR_PAGE,
                true,
            )
            .await?;
        self.done = page.len() < DIR_PAGE;
        self.after = page.last().map(|e| e.name.clone());
        Ok((!page.is_empty()).then_some(page))
    }
}

/// `parent/name` with one `/`.
fn join(parent: &str, name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    if parent.ends_with('/') {
        format!("{parent}{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// Deletes the objects of `slices` (no reference left) from `store`, `threads` slices at a
/// time, then forgets in `meta` ([`FORGET_BATCH`] per call) each slice whose objects are all gone (an object already
/// missing counts as gone); returns how many were forgotten. A slice with a failed delete
/// stays pending for the next attempt.
pub(crate) async fn finish_slices(
    meta: &dyn MetaEngine,
    store: &dyn ChunkStore,
    slices: &[Slice],
    block_size: NonZeroU32,
    hash_prefix: bool,
    threads: usize,
) -> u64 {
    // Owned items: borrowed ones tie the future to a higher-ranked lifetime that keeps it
    // from being `Send` in spawned jobs.
    let owned: Vec<Slice> = slices.iter().filter(|s| s.id != 0).copied().collect();
    let deleted: Vec<Option<(u64, u32)>> = futures::stream::iter(owned)
        .map(|s| async move {
            for b in slice_blocks(s.id, s.size, block_size) {
                let key = b.to_key(hash_prefix);
                match store.delete(&key).await {
                    Ok(()) | Err(chunkstore::StoreError::NotFound(_)) => {}
                    Err(e) => {
                        tracing::warn!(%key, error = %e, "deleting a block failed; its slice stays pending");
                        return None;
                    }
                }
            }
            Some((s.id, s.size))
        })
        .buffer_unordered(threads.max(1))
        .collect()
        .await;
    let deleted: Vec<(u64, u32)> = deleted.into_iter().flatten().collect();
    let mut forgotten = 0;
    for batch in deleted.chunks(FORGET_BATCH) {
        match meta.forget_slices(batch).await {
            Ok(n) => forgotten += n as u64,
            Err(e) => {
                tracing::warn!(slices = batch.len(), error = %e, "pending slices could not be forgotten")
            }
        }
    }
    forgotten
}
