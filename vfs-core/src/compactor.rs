//! Slice compaction: rewriting the visible bytes of a chunk's many small slices as one.
//!
//! [`meta_api::compact`] decides when and what (JuiceFS's triggers and plan); this module
//! does the work: it reads the planned pieces through the read path, writes the new slice's
//! blocks with the volume's block size and names (data first), asks the engine to swap the
//! records ([`MetaEngine::compact_chunk`], which commits only if the chunk still begins with
//! what the plan read), then deletes the objects nobody references any more (metadata
//! before deletion). A compaction that loses the race to another writer deletes its own new
//! blocks instead.
//!
//! **Readers and freed objects.** Objects freed by a compaction are deleted at once, in this
//! client or another, while some reader may still hold a layout naming them. The rule that
//! keeps such readers from `EIO`: a read that finds a block missing reads the chunk's
//! layout from the engine again and retries (see `ChunkReader::read`); `EIO` only when the
//! layout the engine has now names a missing block. Because the new slice's blocks are
//! stored before the records change, the layout read again always names blocks that exist.
//!
//! Background compactions run at most [`VfsOptions::compact_concurrency`] at a time, one per
//! chunk, and each holds one block of data in memory; requests beyond 64 waiting are
//! dropped (the next trigger asks again). A write waits only at [`compact::SYNC_SLICES`]
//! records, where the engines' value limits are near.
//!
//! [`VfsOptions::compact_concurrency`]: crate::VfsOptions::compact_concurrency

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};

use chunkstore::{slice_blocks, ChunkStore};
use meta_api::{compact, Ino, MetaEngine, MetaError, Slice};
use tokio::sync::Semaphore;

use crate::jobs::delete_slice_blocks;
use crate::open_files::OpenFiles;
use crate::reader::ChunkReader;
use crate::upkeep::finish_slices;
use crate::{Result, VfsError};

/// Deletions of freed blocks running at once after a compaction.
const DELETE_PARALLELISM: usize = 8;
/// Background compactions waiting or running at most; more requests are dropped.
pub(crate) const MAX_QUEUED: usize = 64;

/// What one compaction of a chunk did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CompactStats {
    /// Records the chunk had before.
    pub records_before: usize,
    /// Records replaced by the new slice (0: nothing was worth compacting).
    pub replaced: usize,
    /// Bytes written to the new slice.
    pub bytes_written: u64,
    /// Whether the chunk changed under the compaction, which then undid its work.
    pub lost_race: bool,
}

/// Compacts chunks of one volume.
pub(crate) struct Compactor {
    meta: Arc<dyn MetaEngine>,
    reader: Arc<ChunkReader>,
    /// The top of the store stack: new blocks go where the writer puts blocks, freed
    /// blocks leave every tier.
    store: Arc<dyn ChunkStore>,
    block_size: NonZeroU32,
    hash_prefix: bool,
    /// Whether triggers start background compactions at all (false after shutdown).
    background: std::sync::atomic::AtomicBool,
    /// Signalled whenever a background compaction ends.
    ended: tokio::sync::Notify,
    /// Background compactions running at once.
    slots: Arc<Semaphore>,
    /// Chunks with a background compaction queued or running.
    queued: Mutex<HashSet<(Ino, u32)>>,
    /// The open files, whose cached layouts a compaction invalidates.
    files: Mutex<std::sync::Weak<OpenFiles>>,
}

impl Compactor {
    /// A compactor reading through `reader` and writing `block_size` blocks (named with
    /// `hash_prefix`) to `store`; `concurrency` background compactions at once (0: no
    /// background compaction, only the synchronous one at the limit and explicit calls).
    pub(crate) fn new(
        meta: Arc<dyn MetaEngine>,
        reader: Arc<ChunkReader>,
        store: Arc<dyn ChunkStore>,
        block_size: NonZeroU32,
        hash_prefix: bool,
        concurrency: usize,
    ) -> Compactor {
        Compactor {
            meta,
            reader,
            store,
            block_size,
            hash_prefix,
            background: std::sync::atomic::AtomicBool::new(concurrency > 0),
            ended: tokio::sync::Notify::new(),
            slots: Arc::new(Semaphore::new(concurrency)),
            queued: Mutex::new(HashSet::new()),
            files: Mutex::new(std::sync::Weak::new()),
        }
    }

    /// Tells the compactor which open files to invalidate after a compaction.
    pub(crate) fn set_open_files(&self, files: &Arc<OpenFiles>) {
        *self.files.lock().unwrap_or_else(|p| p.into_inner()) = Arc::downgrade(files);
    }

    fn queued(&self) -> MutexGuard<'_, HashSet<(Ino, u32)>> {
        // Each critical section is one set operation, consistent even after a panic.
        self.queued.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks for a background compaction of chunk `index` of `ino`; returns at once. A
    /// chunk already queued, a full queue, or no background slots: nothing happens.
    pub(crate) fn request(self: &Arc<Self>, ino: Ino, index: u32) {
        if !self.background.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        {
            let mut q = self.queued();
            if q.len() >= MAX_QUEUED || !q.insert((ino, index)) {
                return;
            }
        }
        let this = self.clone();
        tokio::spawn(async move {
            let slot = this.slots.clone().acquire_owned().await;
            if slot.is_ok() {
                if let Err(e) = this.compact_chunk(ino, index).await {
                    tracing::debug!(ino, index, error = %e, "background compaction failed");
                }
            }
            this.queued().remove(&(ino, index));
            this.ended.notify_waiters();
        });
    }

    /// Stops starting background compactions and waits for those queued or running to end
    /// (on close: a compaction cut short leaves objects only gc can reclaim).
    pub(crate) async fn shut_down(&self) {
        self.background
            .store(false, std::sync::atomic::Ordering::Release);
        loop {
            let ended = self.ended.notified();
            if self.queued().is_empty() {
                return;
            }
            ended.await;
        }
    }

    /// Compacts chunk `index` of `ino` once, now.
    pub(crate) async fn compact_chunk(&self, ino: Ino, index: u32) -> Result<CompactStats> {
        let slices = self.meta.read_chunk(ino, index).await?;
        let mut stats = CompactStats {
            records_before: slices.len(),
            ..CompactStats::default()
        };
        let Some(plan) = compact::plan(&slices) else {
            return Ok(stats);
        };
        let id = self.meta.new_slice_id().await?;
        let written = match self.write_blocks(&plan, id).await {
            Ok(()) => self.meta.compact_chunk(ino, index, &plan, id).await,
            Err(e) => {
                self.delete_new(&plan, id).await;
                return Err(e);
            }
        };
        match written {
            Ok(Some(freed)) => {
                stats.replaced = plan.replaced().len();
                stats.bytes_written = u64::from(plan.len);
                self.invalidate(ino, index);
                finish_slices(
                    &*self.meta,
                    &*self.store,
                    &freed,
                    self.block_size,
                    self.hash_prefix,
                    DELETE_PARALLELISM,
                )
                .await;
                Ok(stats)
            }
            Ok(None) => {
                stats.lost_race = true;
                self.delete_new(&plan, id).await;
                Ok(stats)
            }
            // A refusal means nothing was committed; any other failure may have committed
            // after all, so the new blocks stay for gc to judge.
            Err(e @ (MetaError::NotFound | MetaError::IsDir | MetaError::InvalidArgument(_))) => {
                self.delete_new(&plan, id).await;
                Err(e.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Compacts every chunk of `ino` until none is worth compacting; returns the total.
    pub(crate) async fn compact_file(&self, ino: Ino, length: u64) -> Result<CompactStats> {
        let mut total = CompactStats::default();
        let chunks = length.div_ceil(meta_api::CHUNK_SIZE);
        for index in 0..chunks {
            let index = u32::try_from(index).map_err(|_| VfsError::FileTooBig)?;
            // Chunks are compacted MAX_COMPACT_SLICES leading records at a time.
            for pass in 0.. {
                let s = self.compact_chunk(ino, index).await?;
                if pass == 0 {
                    total.records_before += s.records_before;
                }
                total.replaced += s.replaced;
                total.bytes_written += s.bytes_written;
                if s.replaced == 0 || s.lost_race {
                    break;
                }
            }
        }
        Ok(total)
    }

    /// Writes the new slice `id`'s blocks, one block in memory at a time.
    async fn write_blocks(&self, plan: &compact::Plan, id: u64) -> Result<()> {
        for b in slice_blocks(id, plan.len, self.block_size) {
            let start = b.index * self.block_size.get();
            let data = self
                .reader
                .read_layout(&plan.pieces, plan.pos + start, b.len)
                .await?;
            self.store
                .put(&b.to_key(self.hash_prefix), data)
                .await
                .map_err(|e| VfsError::Store(Arc::new(e)))?;
        }
        Ok(())
    }

    /// Deletes the blocks of a new slice that was not committed.
    async fn delete_new(&self, plan: &compact::Plan, id: u64) {
        let new = Slice::whole(id, plan.len);
        delete_slice_blocks(&*self.store, &[new], self.block_size, self.hash_prefix).await;
    }

    /// Drops the cached layout of the chunk if the file is open here.
    fn invalidate(&self, ino: Ino, index: u32) {
        let files = self
            .files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .upgrade();
        if let Some(of) = files.and_then(|f| f.get(ino)) {
            of.state.invalidate_chunk(index);
        }
    }
}
