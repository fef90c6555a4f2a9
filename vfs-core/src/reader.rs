//! The read path: chunk layouts from the engine (cached per open file), the slice overlay,
//! then ranged or whole-block reads through the block cache or from the store, every block
//! checked against the length in its key. Holes read as zeros; readahead asks the block
//! cache to prefetch the blocks ahead of a sequential reader.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use chunkstore::{BlockKey, ChunkStore, ChunkStoreExt, StoreError};
use futures::{StreamExt, TryStreamExt};
use meta_api::{compact, overlay, MetaEngine, Slice, CHUNK_BITS, CHUNK_SIZE};

use crate::compactor::Compactor;
use crate::file_state::FileState;
use crate::readahead::ReadaheadTasks;
use crate::store_stack::{BlockCache, StoreStack};
use crate::{Result, VfsError};

/// Block fetches one read runs at the same time.
const READ_PARALLELISM: usize = 16;
/// Times a read whose block is missing reads the chunk layouts again before `EIO`.
const STALE_LAYOUT_RETRIES: u32 = 3;

/// Whether `e` says a block is not in the store.
fn is_missing_block(e: &VfsError) -> bool {
    matches!(e, VfsError::Store(s) if matches!(**s, StoreError::NotFound(_)))
}

/// The part of one block a read needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BlockPart {
    key: String,
    block_len: u64,
    off: u64,
    len: u64,
}

enum Part {
    Zeros(usize),
    Block(BlockPart),
}

/// A part's bytes once fetched.
enum Got {
    Zeros(usize),
    Data(Bytes),
}

/// The blocks behind a visible piece of a slice, in order.
fn blocks_of(piece: &Slice, block_size: u32, hash_prefix: bool) -> Result<Vec<BlockPart>> {
    let bs = u64::from(block_size);
    let size = u64::from(piece.size);
    let start = u64::from(piece.off);
    let end = start + u64::from(piece.len);
    if end > size {
        return Err(VfsError::from(StoreError::Corrupt(format!(
            "slice {} is {size} bytes but a chunk uses {start}..{end} of it",
            piece.id
        ))));
    }
    let mut out = Vec::new();
    let mut at = start;
    while at < end {
        let index = at / bs;
        let block_start = index * bs;
        let block_len = bs.min(size - block_start);
        let take_end = end.min(block_start + block_len);
        // Block indexes and lengths fit in u32 because a slice is at most 4 GiB.
        let key = BlockKey::new(piece.id, index as u32, block_len as u32).to_key(hash_prefix);
        out.push(BlockPart {
            key,
            block_len,
            off: at - block_start,
            len: take_end - at,
        });
        at = take_end;
    }
    Ok(out)
}

/// What the read path needs of a VFS: the engine the layouts come from, the stores the
/// blocks come from, how blocks are cut and named, and the readahead tasks running.
pub(crate) struct ChunkReader {
    meta: Arc<dyn MetaEngine>,
    /// The volume's store without the cache, for ranged reads the cache would widen.
    volume: Arc<dyn ChunkStore>,
    cache: Option<Arc<BlockCache>>,
    block_size: u32,
    hash_prefix: bool,
    readaheads: Arc<ReadaheadTasks>,
    /// Where reads of chunks with many records ask for compaction (none: never).
    compactor: Option<Arc<Compactor>>,
}

impl ChunkReader {
    /// Reads layouts from `meta` and `block_size`-byte blocks (named with the volume's
    /// `hash_prefix` setting) through `stores`' cache, or from its volume store.
    pub(crate) fn new(
        meta: Arc<dyn MetaEngine>,
        stores: &StoreStack,
        block_size: u32,
        hash_prefix: bool,
    ) -> ChunkReader {
        ChunkReader {
            meta,
            volume: stores.volume.clone(),
            cache: stores.cache.clone(),
            block_size,
            hash_prefix,
            readaheads: Arc::new(ReadaheadTasks::default()),
            compactor: None,
        }
    }

    /// Reads of chunks with at least [`compact::READ_TRIGGER`] records ask `compactor`
    /// for their compaction.
    pub(crate) fn set_compactor(&mut self, compactor: Arc<Compactor>) {
        self.compactor = Some(compactor);
    }

    /// Whether blocks are read through a cache (readahead needs one to fill).
    pub(crate) fn has_cache(&self) -> bool {
        self.cache.is_some()
    }

    /// Reads up to `size` bytes at `off`, clipped to the length this client sees. With
    /// `whole_blocks` (a sequential reader), blocks are read through the block cache, which
    /// fetches and keeps them whole; see [`ChunkReader::fetch`] for random readers.
    ///
    /// A block that is missing from the store while the layout that named it was cached is
    /// not an error yet: a compaction or purge (here or in another client) may have freed it
    /// after the layout was read. The layouts of the range are read again from the engine
    /// and the read retried; `EIO` only when a block the engine's current layout names is
    /// missing.
    pub(crate) async fn read(
        &self,
        file: &FileState,
        off: u64,
        size: usize,
        whole_blocks: bool,
    ) -> Result<Bytes> {
        let mut stale_retries = 0;
        loop {
            match self.read_once(file, off, size, whole_blocks).await {
                Err(e) if is_missing_block(&e) && stale_retries < STALE_LAYOUT_RETRIES => {
                    stale_retries += 1;
                    let end = off.saturating_add(size as u64);
                    for chunk in (off >> CHUNK_BITS)..=(end.saturating_sub(1) >> CHUNK_BITS) {
                        if let Ok(chunk) = u32::try_from(chunk) {
                            file.invalidate_chunk(chunk);
                        }
                    }
                    tracing::debug!(ino = file.ino(), off, error = %e, "a block of a cached layout is gone; reading the layout again");
                }
                other => return other,
            }
        }
    }

    async fn read_once(
        &self,
        file: &FileState,
        off: u64,
        size: usize,
        whole_blocks: bool,
    ) -> Result<Bytes> {
        let length = file.length();
        if off >= length || size == 0 {
            return Ok(Bytes::new());
        }
        let end = off.saturating_add(size as u64).min(length);
        let mut parts = Vec::new();
        let mut at = off;
        while at < end {
            let chunk = u32::try_from(at >> CHUNK_BITS).map_err(|_| VfsError::FileTooBig)?;
            // The offset within a chunk and the length read from it are below 2^26 + 1.
            let pos = (at & (CHUNK_SIZE - 1)) as u32;
            let n = (CHUNK_SIZE - u64::from(pos)).min(end - at) as u32;
            let (layout, records) = file.layout_fetched(&*self.meta, chunk).await?;
            if let (Some(records), Some(c)) = (records, &self.compactor) {
                if compact::on_read(records) {
                    c.request(file.ino(), chunk);
                }
            }
            self.push_parts(&layout, pos, n, &mut parts)?;
            at += u64::from(n);
        }
        self.assemble(parts, (end - off) as usize, whole_blocks)
            .await
    }

    /// The bytes `pos..pos+n` of a chunk whose visible layout is `layout` (as
    /// [`overlay::build`] makes it, or a compaction plan's pieces), holes as zeros.
    pub(crate) async fn read_layout(&self, layout: &[Slice], pos: u32, n: u32) -> Result<Bytes> {
        let mut parts = Vec::new();
        self.push_parts(layout, pos, n, &mut parts)?;
        self.assemble(parts, n as usize, false).await
    }

    /// Appends the parts behind `pos..pos+n` of `layout`.
    fn push_parts(&self, layout: &[Slice], pos: u32, n: u32, parts: &mut Vec<Part>) -> Result<()> {
        for p in overlay::pieces(layout, pos, n) {
            if p.id == 0 {
                parts.push(Part::Zeros(p.len as usize));
            } else {
                for b in blocks_of(&p, self.block_size, self.hash_prefix)? {
                    parts.push(Part::Block(b));
                }
            }
        }
        Ok(())
    }

    /// Fetches `parts` (at most [`READ_PARALLELISM`] at once) into one buffer of `total`
    /// bytes.
    async fn assemble(&self, parts: Vec<Part>, total: usize, whole_blocks: bool) -> Result<Bytes> {
        // Parts are moved into their futures: borrowing them would tie the read future to a
        // higher-ranked lifetime that keeps it from being `Send` in boxed contexts.
        let fetched: Vec<Got> = futures::stream::iter(parts)
            .map(|part| async move {
                match part {
                    Part::Zeros(n) => Ok(Got::Zeros(n)),
                    Part::Block(b) => self.fetch(&b, whole_blocks).await.map(Got::Data),
                }
            })
            .buffered(READ_PARALLELISM)
            .try_collect()
            .await?;
        if let [Got::Data(only)] = fetched.as_slice() {
            return Ok(only.clone());
        }
        let mut out = BytesMut::with_capacity(total);
        for got in fetched {
            match got {
                Got::Data(d) => out.extend_from_slice(&d),
                Got::Zeros(n) => out.resize(out.len() + n, 0),
            }
        }
        Ok(out.freeze())
    }

    /// The bytes of one block part.
    ///
    /// With a block cache, a part is read through it (the cache fetches the whole block once
    /// and serves every later range of it) unless it is a small piece from the middle of a
    /// block the cache does not hold and the reader is not sequential: then, as JuiceFS does
    /// for reads of at most a quarter block at a non-zero offset, only that range is fetched,
    /// so random small reads do not pull whole blocks. In writeback mode everything goes
    /// through the cache, which also holds the blocks not uploaded yet. Without a cache, whole
    /// blocks are fetched with their length checked and anything else as a ranged read.
    async fn fetch(&self, b: &BlockPart, whole_blocks: bool) -> Result<Bytes> {
        let whole = b.off == 0 && b.len == b.block_len;
        let data = match &self.cache {
            Some(c) => {
                let small_random = !whole_blocks
                    && b.off > 0
                    && b.len <= u64::from(self.block_size) / 4
                    && !c.options().writeback
                    && !holds(c, &b.key);
                if small_random {
                    self.volume.get_range(&b.key, b.off, Some(b.len)).await?
                } else {
                    c.get_range(&b.key, b.off, Some(b.len)).await?
                }
            }
            None if whole => self.volume.get_block(&b.key, b.block_len).await?,
            None => self.volume.get_range(&b.key, b.off, Some(b.len)).await?,
        };
        if data.len() as u64 != b.len {
            return Err(VfsError::from(StoreError::Corrupt(format!(
                "{}: {} bytes at {}, expected {} (block of {} bytes)",
                b.key,
                data.len(),
                b.off,
                b.len,
                b.block_len
            ))));
        }
        Ok(data)
    }

    /// Starts reading ahead file bytes `start..end` in the background (nothing past the end
    /// of the file, nothing without a cache); [`ChunkReader::wait_readahead_idle`] waits for it.
    pub(crate) fn read_ahead(self: &Arc<Self>, file: &Arc<FileState>, start: u64, end: u64) {
        if self.cache.is_none() || start >= file.length() {
            return;
        }
        let token = self.readaheads.start();
        let (reader, file) = (self.clone(), file.clone());
        tokio::spawn(async move {
            reader.prefetch(&file, start, end).await;
            drop(token);
        });
    }

    /// Waits until the readahead started so far has handed its blocks to the cache.
    pub(crate) async fn wait_readahead_idle(&self) {
        self.readaheads.wait_idle().await;
    }

    /// Asks the block cache to prefetch the blocks behind file bytes `start..end` (best
    /// effort: the cache drops requests when its queue is full).
    async fn prefetch(&self, file: &FileState, start: u64, end: u64) {
        let Some(c) = &self.cache else {
            return;
        };
        let end = end.min(file.length());
        let mut last: Option<String> = None;
        let mut at = start;
        while at < end {
            let Ok(chunk) = u32::try_from(at >> CHUNK_BITS) else {
                return;
            };
            let pos = (at & (CHUNK_SIZE - 1)) as u32;
            let n = (CHUNK_SIZE - u64::from(pos)).min(end - at) as u32;
            let Ok(layout) = file.layout(&*self.meta, chunk).await else {
                return;
            };
            for p in overlay::pieces(&layout, pos, n) {
                if p.id == 0 {
                    continue;
                }
                let Ok(blocks) = blocks_of(&p, self.block_size, self.hash_prefix) else {
                    return;
                };
                for b in blocks {
                    if last.as_ref() != Some(&b.key) {
                        c.prefetch(&b.key);
                        last = Some(b.key);
                    }
                }
            }
            at += u64::from(n);
        }
    }
}

/// Whether `cache` holds block `key` in memory or on disk, so that reading any range of it
/// costs no request.
fn holds(cache: &BlockCache, key: &str) -> bool {
    cache.mem_cache().contains(key) || cache.disk_cache().is_some_and(|d| d.contains(key))
}

#[cfg(test)]
mod tests {
    use chunkstore::MemStore;
    use meta_api::testkit::model::ModelEngine;
    use meta_api::{Context, FileType, Format, Ino, Timestamp, ROOT_INO};

    use super::*;
    use crate::VfsOptions;

    const BS: u32 = 4;

    struct Setup {
        meta: Arc<ModelEngine>,
        ino: Ino,
        volume: Arc<MemStore>,
        cache: Option<Arc<BlockCache>>,
        reader: Arc<ChunkReader>,
    }

    /// A reader of `BS`-byte blocks over a fresh engine with one empty file, with a memory
    /// block cache or without one.
    async fn setup(with_cache: bool) -> Setup {
        let meta = Arc::new(ModelEngine::unformatted());
        let format = Format::new("t", "00000000-0000-4000-8000-000000000000", "mem", "");
        meta.init(&format, false).await.unwrap();
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
        let volume = Arc::new(MemStore::new());
        let opts = if with_cache {
            VfsOptions::default()
        } else {
            VfsOptions::default().block_cache_size(0)
        };
        let stores = StoreStack::with_cache(volume.clone(), &format, &opts)
            .await
            .unwrap();
        let engine: Arc<dyn MetaEngine> = meta.clone();
        let reader = Arc::new(ChunkReader::new(engine, &stores, BS, false));
        Setup {
            meta,
            ino: e.ino,
            volume,
            cache: stores.cache.clone(),
            reader,
        }
    }

    impl Setup {
        /// Stores `data` as a new slice's blocks and commits it at `pos` of chunk 0.
        async fn slice(&self, pos: u32, data: &[u8]) -> u64 {
            let id = self.meta.new_slice_id().await.unwrap();
            for (i, block) in data.chunks(BS as usize).enumerate() {
                let key = BlockKey::new(id, i as u32, block.len() as u32).to_key(false);
                self.volume
                    .put(&key, Bytes::copy_from_slice(block))
                    .await
                    .unwrap();
            }
            let len = data.len() as u32;
            let slice = Slice {
                pos,
                id,
                size: len,
                off: 0,
                len,
            };
            self.meta
                .write_slice(self.ino, 0, slice, Timestamp::now())
                .await
                .unwrap();
            id
        }

        /// The file as the engine has it now.
        async fn file(&self) -> Arc<FileState> {
            let len = self.meta.getattr(self.ino).await.unwrap().length;
            Arc::new(FileState::new(self.ino, len))
        }
    }

    #[tokio::test]
    async fn the_newest_slice_wins_and_holes_read_as_zeros() {
        for with_cache in [false, true] {
            let t = setup(with_cache).await;
            t.slice(0, b"AAAAAAAA").await;
            t.slice(2, b"BB").await;
            t.slice(12, b"CCCC").await;
            let f = t.file().await;
            assert_eq!(f.length(), 16);
            let all = t.reader.read(&f, 0, 16, false).await.unwrap();
            assert_eq!(&all[..], b"AABBAAAA\0\0\0\0CCCC", "cache: {with_cache}");
            let mid = t.reader.read(&f, 3, 6, true).await.unwrap();
            assert_eq!(&mid[..], b"BAAAA\0");
            let hole = t.reader.read(&f, 8, 4, false).await.unwrap();
            assert_eq!(&hole[..], [0; 4]);
        }
    }

    #[tokio::test]
    async fn reads_stop_at_the_length_this_client_sees() {
        let t = setup(false).await;
        t.slice(0, b"0123456789abcdef").await;
        let f = t.file().await;
        f.set_length(10);
        assert_eq!(&t.reader.read(&f, 8, 100, false).await.unwrap()[..], b"89");
        assert!(t.reader.read(&f, 10, 5, false).await.unwrap().is_empty());
        assert!(t.reader.read(&f, 0, 0, false).await.unwrap().is_empty());
        // Past what the engine has (this client extended the file): zeros.
        f.set_length(20);
        let tail = t.reader.read(&f, 14, 100, false).await.unwrap();
        assert_eq!(&tail[..], b"ef\0\0\0\0");
    }

    #[tokio::test]
    async fn a_block_of_the_wrong_length_is_eio() {
        for with_cache in [false, true] {
            let t = setup(with_cache).await;
            let id = t.slice(0, b"abcdefgh").await;
            // The second block is cut short behind the engine's back.
            let key = BlockKey::new(id, 1, BS).to_key(false);
            t.volume.put(&key, Bytes::from_static(b"ef")).await.unwrap();
            let f = t.file().await;
            assert_eq!(&t.reader.read(&f, 0, 4, true).await.unwrap()[..], b"abcd");
            let e = t.reader.read(&f, 0, 8, true).await.unwrap_err();
            assert_eq!(e.errno(), libc::EIO, "cache: {with_cache}: {e}");
            // A missing block is no better.
            t.volume.delete(&key).await.unwrap();
            let e = t.reader.read(&f, 4, 4, false).await.unwrap_err();
            assert_eq!(e.errno(), libc::EIO, "cache: {with_cache}: {e}");
        }
    }

    #[tokio::test]
    async fn small_random_reads_do_not_pull_whole_blocks_into_the_cache() {
        let t = setup(true).await;
        let id = t.slice(0, b"abcdefgh").await;
        let f = t.file().await;
        let cache = t.cache.clone().unwrap();
        let first = BlockKey::new(id, 0, BS).to_key(false);
        let second = BlockKey::new(id, 1, BS).to_key(false);
        // A quarter block from the middle, by a random reader: only that range is fetched.
        assert_eq!(&t.reader.read(&f, 1, 1, false).await.unwrap()[..], b"b");
        cache.idle().await;
        assert!(!cache.mem_cache().contains(&first));
        // A sequential reader reads whole blocks through the cache.
        assert_eq!(&t.reader.read(&f, 5, 1, true).await.unwrap()[..], b"f");
        cache.idle().await;
        assert!(cache.mem_cache().contains(&second));
    }

    #[tokio::test]
    async fn readahead_hands_the_blocks_ahead_to_the_cache() {
        let t = setup(true).await;
        let id = t.slice(0, b"0123456789").await;
        let f = t.file().await;
        let cache = t.cache.clone().unwrap();
        // Past the end of the file: nothing to read ahead.
        t.reader.read_ahead(&f, 10, 100);
        t.reader.wait_readahead_idle().await;
        assert_eq!(cache.metrics().prefetches, 0);

        t.reader.read_ahead(&f, 0, 100);
        t.reader.wait_readahead_idle().await;
        cache.idle().await;
        assert_eq!(cache.metrics().prefetches, 3);
        for (i, len) in [(0, 4), (1, 4), (2, 2)] {
            let key = BlockKey::new(id, i, len).to_key(false);
            assert!(cache.mem_cache().contains(&key), "{key}");
        }
        // Blocks the cache holds are not asked for again.
        t.reader.read_ahead(&f, 4, 100);
        t.reader.wait_readahead_idle().await;
        cache.idle().await;
        assert_eq!(cache.metrics().prefetches, 3);
    }

    #[tokio::test]
    async fn without_a_cache_there_is_no_readahead() {
        let t = setup(false).await;
        t.slice(0, b"0123456789").await;
        let f = t.file().await;
        assert!(!t.reader.has_cache());
        t.reader.read_ahead(&f, 0, 100);
        t.reader.wait_readahead_idle().await;
        assert_eq!(t.reader.readaheads.running(), 0);
    }

    #[test]
    fn pieces_map_to_block_ranges() {
        let piece = Slice {
            pos: 0,
            id: 7,
            size: 10,
            off: 3,
            len: 6,
        };
        let got = blocks_of(&piece, 4, false).unwrap();
        let want = vec![
            BlockPart {
                key: "chunks/0/0/7_0_4".into(),
                block_len: 4,
                off: 3,
                len: 1,
            },
            BlockPart {
                key: "chunks/0/0/7_1_4".into(),
                block_len: 4,
                off: 0,
                len: 4,
            },
            BlockPart {
                key: "chunks/0/0/7_2_2".into(),
                block_len: 2,
                off: 0,
                len: 1,
            },
        ];
        assert_eq!(got, want);
        let bad = Slice { len: 8, ..piece };
        assert_eq!(blocks_of(&bad, 4, false).unwrap_err().errno(), libc::EIO);
    }
}
