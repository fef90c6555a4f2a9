//! The write path: per-file writers that buffer written bytes in memory as slices, cut
//! each slice into blocks, upload full blocks as they fill, and commit a slice to the
//! metadata engine only after all of its blocks are stored (data before metadata).
//!
//! [`SliceWriter`] is what the write path needs of a VFS (the engine, the store, how blocks
//! are cut and named, the buffer budget and the upload slots), shared by the
//! [`FileWriter`] of every open file.
//!
//! The state lives in the writer, never in a future's locals, so that a caller that drops a
//! write or flush half way (a timeout, a cancelled request) loses nothing: what was buffered
//! stays buffered, and a slice leaves the commit queue only once the engine has it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use chunkstore::{BlockKey, ChunkStore, StoreError};
use meta_api::{compact, Ino, MetaEngine, Slice, Timestamp, CHUNK_BITS, CHUNK_SIZE};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::budget::{BufferBudget, Reservation};
use crate::compactor::Compactor;
use crate::file_state::FileState;
use crate::{Result, VfsError};

/// A chunk keeps at most this many appendable slices; opening another freezes the oldest,
/// which bounds the slices a random writer leaves per chunk.
const MAX_OPEN_SLICES_PER_CHUNK: usize = 3;

type UploadResult = std::result::Result<(), Arc<StoreError>>;

/// Where the slices of a VFS's files go: blocks to the store, slice records to the engine.
/// Shared by the writers of every file.
pub(crate) struct SliceWriter {
    meta: Arc<dyn MetaEngine>,
    /// The store blocks are put in (the top of the store stack, so in writeback mode the
    /// block cache's staging).
    store: Arc<dyn ChunkStore>,
    block_size: u32,
    hash_prefix: bool,
    budget: Arc<BufferBudget>,
    upload_slots: Arc<Semaphore>,
    /// Where commits that leave many records in a chunk ask for its compaction.
    compactor: Option<Arc<Compactor>>,
}

impl SliceWriter {
    /// Slices of `block_size`-byte blocks (named with the volume's `hash_prefix` setting)
    /// committed to `meta` after their blocks are in `store`; buffered bytes are bounded by
    /// `budget`, concurrent block uploads by `upload_concurrency` (at least 1).
    pub(crate) fn new(
        meta: Arc<dyn MetaEngine>,
        store: Arc<dyn ChunkStore>,
        block_size: u32,
        hash_prefix: bool,
        budget: Arc<BufferBudget>,
        upload_concurrency: usize,
    ) -> SliceWriter {
        SliceWriter {
            meta,
            store,
            block_size,
            hash_prefix,
            budget,
            upload_slots: Arc::new(Semaphore::new(upload_concurrency.max(1))),
            compactor: None,
        }
    }

    /// Commits ask `compactor` to compact chunks as [`compact::on_write`] says.
    pub(crate) fn set_compactor(&mut self, compactor: Arc<Compactor>) {
        self.compactor = Some(compactor);
    }

    /// After a commit left `records` records in chunk `chunk` of `ino`: nothing, a
    /// background compaction, or (at the limit) a compaction the write waits for.
    async fn after_commit(&self, ino: Ino, chunk: u32, records: usize) {
        let Some(c) = &self.compactor else {
            return;
        };
        match compact::on_write(records) {
            compact::Trigger::None => {}
            compact::Trigger::Background => c.request(ino, chunk),
            compact::Trigger::Now => {
                if let Err(e) = c.compact_chunk(ino, chunk).await {
                    tracing::warn!(ino, chunk, records, error = %e, "compacting a full chunk failed");
                }
            }
        }
    }

    /// Starts uploading block `key`; `res` is the block's share of the buffer budget,
    /// returned once the store has the bytes (or refused them).
    fn spawn_upload(
        &self,
        key: String,
        data: Bytes,
        res: Reservation,
    ) -> JoinHandle<std::result::Result<(), StoreError>> {
        let store = self.store.clone();
        let slots = self.upload_slots.clone();
        let counted = self.budget.upload_started();
        tokio::spawn(async move {
            let _counted = counted;
            let _slot = slots
                .acquire_owned()
                .await
                .map_err(|_| StoreError::other("the file system is shutting down"))?;
            let r = store.put(&key, data).await;
            // The bytes leave the buffer budget once the store has them (or refused them).
            drop(res);
            r
        })
    }

    /// Deletes, in the background, the blocks of `uploads` that were stored: the blocks of
    /// slices that will never be committed.
    fn delete_orphans(&self, uploads: Vec<Upload>) {
        if uploads.is_empty() {
            return;
        }
        let store = self.store.clone();
        tokio::spawn(async move {
            for mut u in uploads {
                if u.wait().await.is_ok() {
                    if let Err(err) = store.delete(&u.key).await {
                        tracing::debug!(key = %u.key, error = %err, "could not delete an orphan block");
                    }
                }
            }
        });
    }
}

/// One block handed to the store.
struct Upload {
    key: String,
    /// The running upload, until its outcome is collected into `done`.
    task: Option<JoinHandle<std::result::Result<(), StoreError>>>,
    done: Option<UploadResult>,
}

impl Upload {
    fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Waits for the outcome. Cancel-safe: the handle is only given up once it has answered.
    async fn wait(&mut self) -> UploadResult {
        if let Some(task) = &mut self.task {
            let r = match task.await {
                Ok(r) => r.map_err(Arc::new),
                Err(join) => Err(Arc::new(StoreError::other(format!(
                    "upload of {} did not finish: {join}",
                    self.key
                )))),
            };
            self.task = None;
            self.done = Some(r);
        }
        self.done.clone().unwrap_or(Ok(()))
    }
}

/// A slice still accepting appends.
struct OpenSlice {
    chunk: u32,
    pos: u32,
    len: u32,
    id: u64,
    /// The bytes of the block being filled (the slice's last, partial block).
    buf: Vec<Bytes>,
    buf_len: u32,
    buf_res: Reservation,
    uploads: Vec<Upload>,
    mtime: Timestamp,
}

impl OpenSlice {
    fn end(&self) -> u32 {
        self.pos + self.len
    }

    fn overlaps(&self, pos: u32, len: u32) -> bool {
        pos < self.end() && self.pos < pos + len
    }

    /// Hands the buffered bytes to the store as the slice's next block.
    fn upload_buffered(&mut self, slices: &SliceWriter) -> Result<()> {
        if self.buf_len == 0 {
            return Ok(());
        }
        let index = u32::try_from(self.uploads.len())
            .map_err(|_| VfsError::InvalidArgument("too many blocks in a slice"))?;
        let key = BlockKey::new(self.id, index, self.buf_len).to_key(slices.hash_prefix);
        let data = concat(std::mem::take(&mut self.buf), self.buf_len as usize);
        let res = self.buf_res.split(self.buf_len as usize);
        self.buf_len = 0;
        let task = slices.spawn_upload(key.clone(), data, res);
        self.uploads.push(Upload {
            key,
            task: Some(task),
            done: None,
        });
        Ok(())
    }
}

/// A slice whose blocks are all handed to the store, waiting to be committed.
struct FrozenSlice {
    chunk: u32,
    slice: Slice,
    uploads: Vec<Upload>,
    mtime: Timestamp,
}

/// The buffered writes of one file (shared by every handle of the file in this VFS).
pub(crate) struct FileWriter {
    slices: Arc<SliceWriter>,
    file: Arc<FileState>,
    /// Appendable slices in creation order.
    open: Vec<OpenSlice>,
    /// Slices to commit, in creation order (within a chunk: write order).
    frozen: VecDeque<FrozenSlice>,
    /// The latest write-back failure, and how many there were: each handle remembers the
    /// count it has reported, so every handle sees each failure once (like Linux's errseq).
    error: Option<Arc<VfsError>>,
    error_seq: u64,
    /// When the file was last written, for the idle flush.
    pub(crate) last_write: Instant,
}

impl FileWriter {
    /// An empty writer for the open file `file`.
    pub(crate) fn new(slices: Arc<SliceWriter>, file: Arc<FileState>) -> FileWriter {
        FileWriter {
            slices,
            file,
            open: Vec::new(),
            frozen: VecDeque::new(),
            error: None,
            error_seq: 0,
            last_write: Instant::now(),
        }
    }

    /// Whether any written byte is not committed yet.
    pub(crate) fn has_pending(&self) -> bool {
        !self.open.is_empty() || !self.frozen.is_empty()
    }

    /// Whether some uncommitted write touches file bytes `off..off+len`.
    pub(crate) fn overlaps_pending(&self, off: u64, len: u64) -> bool {
        let end = off.saturating_add(len);
        let hit = |chunk: u32, pos: u32, slen: u32| {
            let start = (u64::from(chunk) << CHUNK_BITS) + u64::from(pos);
            start < end && off < start + u64::from(slen)
        };
        self.open.iter().any(|s| hit(s.chunk, s.pos, s.len))
            || self
                .frozen
                .iter()
                .any(|f| hit(f.chunk, f.slice.pos, f.slice.len))
    }

    /// How many write-back failures the file has had.
    pub(crate) fn error_seq(&self) -> u64 {
        self.error_seq
    }

    /// The latest write-back failure if there was one after the `seen`-th.
    pub(crate) fn error_since(&self, seen: u64) -> Result<()> {
        match &self.error {
            Some(e) if self.error_seq > seen => Err(VfsError::WriteBack(e.clone())),
            _ => Ok(()),
        }
    }

    /// Buffers `data` at file offset `off`; `res` is its share of the buffer budget.
    /// Full blocks start uploading at once. On failure every pending write of the file is
    /// dropped (nothing of it is committed) and the failure is counted for the handles.
    pub(crate) async fn write(&mut self, off: u64, data: Bytes, res: Reservation) -> Result<()> {
        self.last_write = Instant::now();
        let r = self.write_pieces(off, data, res).await;
        self.settle(r).await
    }

    async fn write_pieces(
        &mut self,
        mut off: u64,
        mut data: Bytes,
        mut res: Reservation,
    ) -> Result<()> {
        while !data.is_empty() {
            let chunk = u32::try_from(off >> CHUNK_BITS).map_err(|_| VfsError::FileTooBig)?;
            // The offset within a chunk is below 2^26.
            let pos = (off & (CHUNK_SIZE - 1)) as u32;
            let n = (CHUNK_SIZE - u64::from(pos)).min(data.len() as u64) as usize;
            // The only await of a piece comes before any change to the writer's state.
            let idx = self.writable_slice(chunk, pos, n as u32).await?;
            let piece = data.split_to(n);
            self.append(idx, piece, res.split(n))?;
            off += n as u64;
            self.file.set_pending(true);
            self.file.extend_length(off);
            self.file.touch();
            if u64::from(self.open[idx].end()) == CHUNK_SIZE {
                self.freeze(idx)?;
            }
        }
        Ok(())
    }

    /// The index of the open slice that `len` bytes at `pos` of `chunk` append to, opening
    /// a new slice when none ends exactly at `pos`. An older slice is only appended to when
    /// no newer pending slice covers the range, so the newest write still wins.
    async fn writable_slice(&mut self, chunk: u32, pos: u32, len: u32) -> Result<usize> {
        for (i, s) in self.open.iter().enumerate().rev() {
            if s.chunk != chunk {
                continue;
            }
            if s.end() == pos {
                return Ok(i);
            }
            if s.overlaps(pos, len) {
                break;
            }
        }
        // Ids come from the engine in batches, so this is rarely a round trip.
        let id = self.slices.meta.new_slice_id().await?;
        let in_chunk = self.open.iter().filter(|s| s.chunk == chunk).count();
        if in_chunk >= MAX_OPEN_SLICES_PER_CHUNK {
            if let Some(oldest) = self.open.iter().position(|s| s.chunk == chunk) {
                self.freeze(oldest)?;
            }
        }
        self.open.push(OpenSlice {
            chunk,
            pos,
            len: 0,
            id,
            buf: Vec::new(),
            buf_len: 0,
            buf_res: self.slices.budget.empty(),
            uploads: Vec::new(),
            mtime: Timestamp::now(),
        });
        Ok(self.open.len() - 1)
    }

    fn append(&mut self, idx: usize, mut data: Bytes, res: Reservation) -> Result<()> {
        let slices = &self.slices;
        let bs = slices.block_size;
        let s = &mut self.open[idx];
        s.buf_res.merge(res);
        s.mtime = Timestamp::now();
        while !data.is_empty() {
            let room = (bs - s.buf_len) as usize;
            let take = room.min(data.len());
            s.buf.push(data.split_to(take));
            // `take` is at most one block.
            s.buf_len += take as u32;
            s.len += take as u32;
            if s.buf_len == bs {
                s.upload_buffered(slices)?;
            }
        }
        Ok(())
    }

    /// Freezes the open slice at `idx` and, first, every older open slice of its chunk, so
    /// that slices of one chunk are committed in the order they were written.
    fn freeze(&mut self, idx: usize) -> Result<()> {
        let chunk = self.open[idx].chunk;
        let mut taken = Vec::new();
        let mut removed = 0;
        for orig in 0..=idx {
            let cur = orig - removed;
            if self.open[cur].chunk == chunk {
                taken.push(self.open.remove(cur));
                removed += 1;
            }
        }
        self.freeze_slices(taken)
    }

    /// Freezes every open slice.
    fn freeze_all(&mut self) -> Result<()> {
        let taken = std::mem::take(&mut self.open);
        self.freeze_slices(taken)
    }

    fn freeze_slices(&mut self, taken: Vec<OpenSlice>) -> Result<()> {
        let mut result = Ok(());
        for mut s in taken {
            if result.is_ok() {
                result = s.upload_buffered(&self.slices);
            }
            // Queued even after a failure so that `fail` finds and cleans up its uploads.
            self.frozen.push_back(FrozenSlice {
                chunk: s.chunk,
                slice: Slice {
                    pos: s.pos,
                    id: s.id,
                    size: s.len,
                    off: 0,
                    len: s.len,
                },
                uploads: s.uploads,
                mtime: s.mtime,
            });
        }
        result
    }

    /// Commits, in order, the frozen slices whose uploads have all finished, without waiting.
    pub(crate) async fn commit_ready(&mut self) -> Result<()> {
        let mut r = Ok(());
        while r.is_ok()
            && self
                .frozen
                .front()
                .is_some_and(|f| f.uploads.iter().all(Upload::is_finished))
        {
            r = self.commit_front().await;
        }
        self.settle(r).await
    }

    /// Turns every buffered byte into uploads and commits what is already uploaded, without
    /// waiting for the rest (used when the buffer budget runs out).
    pub(crate) async fn start_flush(&mut self) -> Result<()> {
        let r = self.freeze_all();
        if r.is_err() {
            return self.settle(r).await;
        }
        self.commit_ready().await
    }

    /// Uploads and commits everything buffered, waiting for it. A failure is returned and
    /// also counted (see [`FileWriter::error_since`]).
    pub(crate) async fn flush(&mut self) -> Result<()> {
        let mut r = self.freeze_all();
        while r.is_ok() && !self.frozen.is_empty() {
            r = self.commit_front().await;
        }
        self.settle(r).await
    }

    /// Turns a failure into dropped writes and a counted error; updates the pending flag.
    async fn settle(&mut self, r: Result<()>) -> Result<()> {
        let r = match r {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(e).await),
        };
        self.file.set_pending(self.has_pending());
        r
    }

    /// Waits for the oldest frozen slice's uploads and commits it; it leaves the queue only
    /// once committed. A failed upload leaves nothing in the metadata and its siblings'
    /// objects are deleted again.
    async fn commit_front(&mut self) -> Result<()> {
        let Some(f) = self.frozen.front_mut() else {
            return Ok(());
        };
        let mut failure = None;
        for u in &mut f.uploads {
            if let Err(e) = u.wait().await {
                failure.get_or_insert(e);
            }
        }
        if let Some(e) = failure {
            return Err(VfsError::Store(e));
        }
        let (chunk, slice, mtime) = (f.chunk, f.slice, f.mtime);
        let records = self
            .slices
            .meta
            .write_slice(self.file.ino(), chunk, slice, mtime)
            .await?;
        self.frozen.pop_front();
        self.file.invalidate_chunk(chunk);
        self.slices
            .after_commit(self.file.ino(), chunk, records)
            .await;
        Ok(())
    }

    /// Drops every pending write of the file after `e`, counts `e` for the handles, puts
    /// the file length back to what the engine has, and returns the error to report now.
    ///
    /// The objects of dropped slices are deleted, except those of a slice whose commit
    /// failed: the engine may have recorded it after all, so only gc may judge them.
    async fn fail(&mut self, e: VfsError) -> VfsError {
        let ino = self.file.ino();
        let e = match e {
            VfsError::WriteBack(inner_err) => inner_err,
            other => Arc::new(other),
        };
        tracing::warn!(ino, error = %e, "write-back failed; buffered writes dropped");
        self.error = Some(e.clone());
        self.error_seq += 1;
        let commit_failed = matches!(*e, VfsError::Meta(_));
        let mut uploads = Vec::new();
        for s in self.open.drain(..) {
            uploads.extend(s.uploads);
        }
        for (i, f) in self.frozen.drain(..).enumerate() {
            // The front slice is the one whose commit was attempted.
            if !(i == 0 && commit_failed) {
                uploads.extend(f.uploads);
            }
        }
        self.slices.delete_orphans(uploads);
        match self.slices.meta.getattr(ino).await {
            Ok(attr) => self.file.set_length(attr.length),
            Err(err) => tracing::debug!(ino, error = %err, "length not refreshed"),
        }
        VfsError::WriteBack(e)
    }
}

/// One buffer out of the pieces of a block; no copy when the block came in one write.
fn concat(mut parts: Vec<Bytes>, len: usize) -> Bytes {
    if parts.len() == 1 {
        return parts.pop().unwrap_or_default();
    }
    let mut out = BytesMut::with_capacity(len);
    for p in parts {
        out.extend_from_slice(&p);
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use async_trait::async_trait;
    use chunkstore::{ChunkStoreExt, Faulty, ListPage, MemStore, ObjectMeta};
    use meta_api::testkit::model::ModelEngine;
    use meta_api::{Context, FileType, Format, Ino, ROOT_INO};

    use super::*;

    /// A memory store whose puts wait until the gate is opened.
    struct GatedStore {
        inner: MemStore,
        gate: Semaphore,
    }

    impl GatedStore {
        fn new() -> GatedStore {
            GatedStore {
                inner: MemStore::new(),
                gate: Semaphore::new(0),
            }
        }

        fn open(&self) {
            self.gate.add_permits(Semaphore::MAX_PERMITS / 2);
        }
    }

    #[async_trait]
    impl ChunkStore for GatedStore {
        async fn put(&self, key: &str, data: Bytes) -> chunkstore::Result<()> {
            let _pass = self.gate.acquire().await.map_err(StoreError::other)?;
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

    struct Setup {
        meta: Arc<ModelEngine>,
        ino: Ino,
        file: Arc<FileState>,
        budget: Arc<BufferBudget>,
        writer: FileWriter,
    }

    /// A writer of a new empty file on a fresh engine, putting `block_size`-byte blocks
    /// into `store` within a budget of `budget` bytes.
    async fn setup(store: Arc<dyn ChunkStore>, block_size: u32, budget: usize) -> Setup {
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
        let budget = Arc::new(BufferBudget::new(budget));
        let engine: Arc<dyn MetaEngine> = meta.clone();
        let slices = Arc::new(SliceWriter::new(
            engine,
            store,
            block_size,
            false,
            budget.clone(),
            4,
        ));
        let file = Arc::new(FileState::new(e.ino, 0));
        Setup {
            writer: FileWriter::new(slices, file.clone()),
            meta,
            ino: e.ino,
            file,
            budget,
        }
    }

    impl Setup {
        async fn write(&mut self, off: u64, data: &'static [u8]) -> Result<()> {
            let res = self.budget.reserve(data.len()).await?;
            self.writer.write(off, Bytes::from_static(data), res).await
        }

        async fn slices(&self, chunk: u32) -> Vec<Slice> {
            self.meta.read_chunk(self.ino, chunk).await.unwrap()
        }
    }

    /// Lets background tasks run until `done` holds (a bounded number of turns).
    async fn settle_until(mut done: impl FnMut() -> bool) {
        for _ in 0..10_000 {
            if done() {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("background work did not finish");
    }

    #[tokio::test]
    async fn a_slice_is_committed_only_after_its_blocks_are_stored() {
        let store = Arc::new(GatedStore::new());
        let mut t = setup(store.clone(), 4, 1 << 20).await;
        t.write(0, b"abcdef").await.unwrap();
        assert!(t.file.has_pending() && t.writer.has_pending());
        assert_eq!(t.file.length(), 6);
        assert!(t.writer.overlaps_pending(5, 10) && !t.writer.overlaps_pending(6, 10));

        // Every block handed to the store, none stored yet: nothing is committed.
        t.writer.start_flush().await.unwrap();
        assert!(t.slices(0).await.is_empty());
        // A flush given up half way loses nothing and commits nothing.
        let gave_up = tokio::time::timeout(Duration::from_millis(20), t.writer.flush()).await;
        assert!(gave_up.is_err());
        assert!(t.slices(0).await.is_empty() && t.writer.has_pending());
        assert!(store.inner.is_empty());

        store.open();
        t.writer.flush().await.unwrap();
        assert_eq!(store.inner.len(), 2);
        let slices = t.slices(0).await;
        assert_eq!(slices.len(), 1);
        assert_eq!((slices[0].pos, slices[0].size, slices[0].len), (0, 6, 6));
        assert!(!t.file.has_pending() && !t.writer.has_pending());
        assert_eq!(t.writer.error_seq(), 0);
    }

    #[tokio::test]
    async fn blocks_are_cut_at_the_block_size() {
        let store = Arc::new(MemStore::new());
        let mut t = setup(store.clone(), 4, 1 << 20).await;
        // Two writes appending to one slice: blocks cut across the write boundary.
        t.write(0, b"abc").await.unwrap();
        t.write(3, b"defghij").await.unwrap();
        t.writer.flush().await.unwrap();
        let slices = t.slices(0).await;
        assert_eq!(slices.len(), 1, "{slices:?}");
        let id = slices[0].id;
        assert_eq!(slices[0].size, 10);
        let mut want = Vec::new();
        for (i, data) in [&b"abcd"[..], b"efgh", b"ij"].into_iter().enumerate() {
            let key = BlockKey::new(id, i as u32, data.len() as u32).to_key(false);
            assert_eq!(&store.get(&key).await.unwrap()[..], data, "{key}");
            want.push(key);
        }
        let mut keys: Vec<String> = store
            .list_all("chunks/")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        keys.sort();
        want.sort();
        assert_eq!(keys, want);
    }

    #[tokio::test]
    async fn a_write_across_a_chunk_boundary_makes_a_slice_per_chunk() {
        let store = Arc::new(MemStore::new());
        let mut t = setup(store.clone(), 4, 1 << 20).await;
        t.write(CHUNK_SIZE - 2, b"wxyz").await.unwrap();
        assert_eq!(t.file.length(), CHUNK_SIZE + 2);
        t.writer.flush().await.unwrap();
        let first = t.slices(0).await;
        let second = t.slices(1).await;
        assert_eq!(first.len(), 1);
        assert_eq!((first[0].pos, first[0].len), ((CHUNK_SIZE - 2) as u32, 2));
        assert_eq!(second.len(), 1);
        assert_eq!((second[0].pos, second[0].len), (0, 2));
        assert_ne!(first[0].id, second[0].id);
        assert_eq!(store.len(), 2);
    }

    #[tokio::test]
    async fn newer_pending_writes_win_over_older_ones() {
        let store = Arc::new(MemStore::new());
        let mut t = setup(store, 4, 1 << 20).await;
        t.write(0, b"aaaa").await.unwrap();
        // Overlaps the pending slice: a new slice, committed after the first.
        t.write(1, b"bb").await.unwrap();
        // Appends to the first slice, which ends here: the newer slice covers none of it.
        t.write(4, b"c").await.unwrap();
        t.writer.flush().await.unwrap();
        let slices = t.slices(0).await;
        let shape: Vec<(u32, u32)> = slices.iter().map(|s| (s.pos, s.len)).collect();
        assert_eq!(shape, [(0, 5), (1, 2)]);
        assert!(slices[0].id < slices[1].id);
        let visible: Vec<(u64, u32, u32)> = meta_api::overlay::build(&slices)
            .iter()
            .map(|s| (s.id, s.pos, s.len))
            .collect();
        assert_eq!(
            visible,
            [
                (slices[0].id, 0, 1),
                (slices[1].id, 1, 2),
                (slices[0].id, 3, 2)
            ]
        );
    }

    #[tokio::test]
    async fn a_failing_store_leaves_no_slice_committed() {
        let store = Arc::new(Faulty::new(MemStore::new(), 7));
        store.set_down(true);
        let mut t = setup(store.clone(), 4, 1 << 20).await;
        t.write(0, b"0123456789").await.unwrap();
        let e = t.writer.flush().await.unwrap_err();
        assert!(matches!(&e, VfsError::WriteBack(cause) if matches!(**cause, VfsError::Store(_))));
        assert_eq!(e.errno(), libc::EIO);
        assert!(t.slices(0).await.is_empty());
        // The writes are dropped: the length is the engine's again, nothing is pending.
        assert_eq!(t.file.length(), 0);
        assert!(!t.file.has_pending() && !t.writer.has_pending());
        // Counted once, for every handle that has not seen it yet.
        assert_eq!(t.writer.error_seq(), 1);
        assert!(t.writer.error_since(0).is_err());
        assert!(t.writer.error_since(1).is_ok());

        // Once the store is back, new writes go through; the old failure stays counted.
        store.set_down(false);
        t.write(0, b"ok").await.unwrap();
        t.writer.flush().await.unwrap();
        assert_eq!(t.slices(0).await.len(), 1);
        assert_eq!(t.writer.error_seq(), 1);
    }

    #[tokio::test]
    async fn a_failed_commit_keeps_its_blocks_and_drops_the_rest() {
        let store = Arc::new(MemStore::new());
        let mut t = setup(store.clone(), 4, 1 << 20).await;
        // A file the engine does not have, so committing its first slice fails.
        let file = Arc::new(FileState::new(t.ino + 1000, 0));
        t.writer = FileWriter::new(t.writer.slices.clone(), file);
        t.write(0, b"abcd").await.unwrap();
        t.write(CHUNK_SIZE, b"efgh").await.unwrap();
        let e = t.writer.flush().await.unwrap_err();
        assert!(e.as_meta().is_some(), "{e}");
        // The engine may have recorded the slice whose commit failed: its block stays for
        // gc to judge. The slice after it was never committed: its block is deleted.
        let keys = || {
            let store = store.clone();
            async move {
                let mut k: Vec<String> = store
                    .list_all("chunks/")
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|o| o.key)
                    .collect();
                k.sort();
                k
            }
        };
        let mut left = keys().await;
        for _ in 0..10_000 {
            if left.len() < 2 {
                break;
            }
            tokio::task::yield_now().await;
            left = keys().await;
        }
        assert_eq!(left.len(), 1, "{left:?}");
        assert!(left[0].ends_with("_0_4"), "{left:?}");
        assert_eq!(t.writer.error_seq(), 1);
    }

    #[tokio::test]
    async fn written_bytes_hold_the_budget_until_the_store_has_them() {
        let store = Arc::new(GatedStore::new());
        let mut t = setup(store.clone(), 4, 8).await;
        t.write(0, b"abcdefgh").await.unwrap();
        assert_eq!(t.budget.available(), 0);
        assert_eq!(t.budget.uploads_in_flight(), 2);
        // The next writer waits for memory while both blocks are uploading.
        let waiter = tokio::spawn({
            let budget = t.budget.clone();
            async move { budget.reserve(4).await.map(drop) }
        });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!waiter.is_finished());

        store.open();
        t.writer.flush().await.unwrap();
        waiter.await.unwrap().unwrap();
        settle_until(|| t.budget.uploads_in_flight() == 0).await;
        assert_eq!(t.budget.available(), 8);
        assert_eq!(t.slices(0).await.len(), 1);
    }
}
