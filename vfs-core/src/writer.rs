//! The write path: per-file slice writers that buffer written bytes in memory, cut each
//! slice into blocks, upload full blocks as they fill, and commit a slice to the metadata
//! engine only after all of its blocks are stored (data before metadata).
//!
//! The state lives in the writer, never in a future's locals, so that a caller that drops a
//! write or flush half way (a timeout, a cancelled request) loses nothing: what was buffered
//! stays buffered, and a slice leaves the commit queue only once the engine has it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use chunkstore::{BlockKey, StoreError};
use meta_api::{Ino, Slice, Timestamp, CHUNK_BITS, CHUNK_SIZE};
use tokio::task::JoinHandle;

use crate::budget::Reservation;
use crate::file::OpenFile;
use crate::vfs::Inner;
use crate::{Result, VfsError};

/// A chunk keeps at most this many appendable slices; opening another freezes the oldest,
/// which bounds the slices a random writer leaves per chunk.
const MAX_OPEN_SLICES_PER_CHUNK: usize = 3;

type UploadResult = std::result::Result<(), Arc<StoreError>>;

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
struct SliceWriter {
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

impl SliceWriter {
    fn end(&self) -> u32 {
        self.pos + self.len
    }

    fn overlaps(&self, pos: u32, len: u32) -> bool {
        pos < self.end() && self.pos < pos + len
    }

    /// Hands the buffered bytes to the store as the slice's next block.
    fn upload_buffered(&mut self, inner: &Inner) -> Result<()> {
        if self.buf_len == 0 {
            return Ok(());
        }
        let index = u32::try_from(self.uploads.len())
            .map_err(|_| VfsError::InvalidArgument("too many blocks in a slice"))?;
        let key = BlockKey::new(self.id, index, self.buf_len).to_key(inner.hash_prefix);
        let data = concat(std::mem::take(&mut self.buf), self.buf_len as usize);
        let res = self.buf_res.split(self.buf_len as usize);
        self.buf_len = 0;
        let task = spawn_upload(inner, key.clone(), data, res);
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
    ino: Ino,
    /// Appendable slices in creation order.
    open: Vec<SliceWriter>,
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
    /// An empty writer for `ino`.
    pub(crate) fn new(ino: Ino) -> FileWriter {
        FileWriter {
            ino,
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
    pub(crate) async fn write(
        &mut self,
        inner: &Inner,
        of: &OpenFile,
        off: u64,
        data: Bytes,
        res: Reservation,
    ) -> Result<()> {
        self.last_write = Instant::now();
        let r = self.write_pieces(inner, of, off, data, res).await;
        let r = match r {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(inner, of, e).await),
        };
        of.set_pending(self.has_pending());
        r
    }

    async fn write_pieces(
        &mut self,
        inner: &Inner,
        of: &OpenFile,
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
            let idx = self.writable_slice(inner, chunk, pos, n as u32).await?;
            let piece = data.split_to(n);
            self.append(inner, idx, piece, res.split(n))?;
            off += n as u64;
            of.set_pending(true);
            of.extend_length(off);
            of.touch();
            if u64::from(self.open[idx].end()) == CHUNK_SIZE {
                self.freeze(inner, idx)?;
            }
        }
        Ok(())
    }

    /// The index of the open slice that `len` bytes at `pos` of `chunk` append to, opening
    /// a new slice when none ends exactly at `pos`. An older slice is only appended to when
    /// no newer pending slice covers the range, so the newest write still wins.
    async fn writable_slice(
        &mut self,
        inner: &Inner,
        chunk: u32,
        pos: u32,
        len: u32,
    ) -> Result<usize> {
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
        let id = inner.meta.new_slice_id().await?;
        let in_chunk = self.open.iter().filter(|s| s.chunk == chunk).count();
        if in_chunk >= MAX_OPEN_SLICES_PER_CHUNK {
            if let Some(oldest) = self.open.iter().position(|s| s.chunk == chunk) {
                self.freeze(inner, oldest)?;
            }
        }
        self.open.push(SliceWriter {
            chunk,
            pos,
            len: 0,
            id,
            buf: Vec::new(),
            buf_len: 0,
            buf_res: inner.budget.empty(),
            uploads: Vec::new(),
            mtime: Timestamp::now(),
        });
        Ok(self.open.len() - 1)
    }

    fn append(
        &mut self,
        inner: &Inner,
        idx: usize,
        mut data: Bytes,
        res: Reservation,
    ) -> Result<()> {
        let bs = inner.block_size;
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
                s.upload_buffered(inner)?;
            }
        }
        Ok(())
    }

    /// Freezes the open slice at `idx` and, first, every older open slice of its chunk, so
    /// that slices of one chunk are committed in the order they were written.
    fn freeze(&mut self, inner: &Inner, idx: usize) -> Result<()> {
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
        self.freeze_slices(inner, taken)
    }

    /// Freezes every open slice.
    fn freeze_all(&mut self, inner: &Inner) -> Result<()> {
        let taken = std::mem::take(&mut self.open);
        self.freeze_slices(inner, taken)
    }

    fn freeze_slices(&mut self, inner: &Inner, taken: Vec<SliceWriter>) -> Result<()> {
        let mut result = Ok(());
        for mut s in taken {
            if result.is_ok() {
                result = s.upload_buffered(inner);
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
    pub(crate) async fn commit_ready(&mut self, inner: &Inner, of: &OpenFile) -> Result<()> {
        let mut r = Ok(());
        while r.is_ok()
            && self
                .frozen
                .front()
                .is_some_and(|f| f.uploads.iter().all(Upload::is_finished))
        {
            r = self.commit_front(inner, of).await;
        }
        self.settle(inner, of, r).await
    }

    /// Turns every buffered byte into uploads and commits what is already uploaded, without
    /// waiting for the rest (used when the buffer budget runs out).
    pub(crate) async fn start_flush(&mut self, inner: &Inner, of: &OpenFile) -> Result<()> {
        let r = self.freeze_all(inner);
        if r.is_err() {
            return self.settle(inner, of, r).await;
        }
        self.commit_ready(inner, of).await
    }

    /// Uploads and commits everything buffered, waiting for it. A failure is returned and
    /// also counted (see [`FileWriter::error_since`]).
    pub(crate) async fn flush(&mut self, inner: &Inner, of: &OpenFile) -> Result<()> {
        let mut r = self.freeze_all(inner);
        while r.is_ok() && !self.frozen.is_empty() {
            r = self.commit_front(inner, of).await;
        }
        self.settle(inner, of, r).await
    }

    /// Turns a failure into dropped writes and a counted error; updates the pending flag.
    async fn settle(&mut self, inner: &Inner, of: &OpenFile, r: Result<()>) -> Result<()> {
        let r = match r {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(inner, of, e).await),
        };
        of.set_pending(self.has_pending());
        r
    }

    /// Waits for the oldest frozen slice's uploads and commits it; it leaves the queue only
    /// once committed. A failed upload leaves nothing in the metadata and its siblings'
    /// objects are deleted again.
    async fn commit_front(&mut self, inner: &Inner, of: &OpenFile) -> Result<()> {
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
        inner
            .meta
            .write_slice(self.ino, chunk, slice, mtime)
            .await?;
        self.frozen.pop_front();
        of.invalidate_chunk(chunk);
        Ok(())
    }

    /// Drops every pending write of the file after `e`, counts `e` for the handles, puts
    /// the file length back to what the engine has, and returns the error to report now.
    ///
    /// The objects of dropped slices are deleted, except those of a slice whose commit
    /// failed: the engine may have recorded it after all, so only gc may judge them.
    async fn fail(&mut self, inner: &Inner, of: &OpenFile, e: VfsError) -> VfsError {
        let e = match e {
            VfsError::WriteBack(inner_err) => inner_err,
            other => Arc::new(other),
        };
        tracing::warn!(ino = self.ino, error = %e, "write-back failed; buffered writes dropped");
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
        if !uploads.is_empty() {
            let store = inner.store.clone();
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
        match inner.meta.getattr(self.ino).await {
            Ok(attr) => of.set_length(attr.length),
            Err(err) => tracing::debug!(ino = self.ino, error = %err, "length not refreshed"),
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

fn spawn_upload(
    inner: &Inner,
    key: String,
    data: Bytes,
    res: Reservation,
) -> JoinHandle<std::result::Result<(), StoreError>> {
    let store = inner.store.clone();
    let slots = inner.upload_slots.clone();
    let counted = inner.budget.upload_started();
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
