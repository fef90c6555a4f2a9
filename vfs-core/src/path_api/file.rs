//! [`File`]: an open file with a cursor, tokio's `AsyncRead`/`AsyncWrite`/`AsyncSeek`,
//! and positional I/O; [`OpenOptions`] to open one.

use std::io::{self, SeekFrom};
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context as TaskContext, Poll};
use std::time::SystemTime;

use bytes::{Buf, Bytes};
use futures::future::BoxFuture;
use meta_api::{Context, Ino, MetaError, SetAttr, SetTime};
use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

use super::metadata::timestamp;
use super::resolve::{meta_err, walk, Last};
use super::{release_in_background, FileSystem, Metadata, Permissions};
use crate::Vfs;

/// Largest piece one `AsyncRead`/`AsyncWrite` call moves (bounds the copy of a caller's
/// buffer and the size of one read).
const MAX_IO: usize = 8 << 20;

/// Smallest read asked from the VFS by `AsyncRead`; what the caller's buffer cannot take
/// is kept for its next read, so small reads do not each go to the volume.
const MIN_READ: usize = 128 << 10;

/// The VFS handle of an open file, released once: explicitly, or when the last owner drops.
struct OwnedFileHandle {
    vfs: Vfs,
    ctx: Arc<Context>,
    fh: u64,
    ino: Ino,
    released: AtomicBool,
}

impl OwnedFileHandle {
    /// Releases the handle unless that was done already.
    async fn release(&self) -> io::Result<()> {
        if self.released.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        Ok(self.vfs.release(&self.ctx, self.fh).await?)
    }
}

impl Drop for OwnedFileHandle {
    fn drop(&mut self) {
        if !self.released.swap(true, Ordering::AcqRel) {
            let (vfs, ctx, fh) = (self.vfs.clone(), self.ctx.clone(), self.fh);
            release_in_background(async move { Ok(vfs.release(&ctx, fh).await?) });
        }
    }
}

/// An operation in flight, started by one poll and finished by a later one.
enum Op {
    Read(BoxFuture<'static, io::Result<Bytes>>),
    Write(BoxFuture<'static, io::Result<usize>>),
    Seek(BoxFuture<'static, io::Result<u64>>),
    Flush(BoxFuture<'static, io::Result<()>>),
    Release(BoxFuture<'static, io::Result<()>>),
}

/// What a finished [`Op`] produced.
enum Done {
    Read(Bytes),
    Wrote(usize),
    Seeked(u64),
    Flushed,
    Released,
}

/// The cursor and the operation in flight.
struct State {
    op: Option<Op>,
    /// The cursor, when known (an append moves it to an end only the volume knows).
    pos: Option<u64>,
    /// Bytes read beyond what the caller's buffer took: the file's bytes at `pos..`.
    rbuf: Bytes,
    append: bool,
    /// `poll_shutdown` or `close` started: no new operation is accepted.
    closed: bool,
}

impl State {
    /// Polls the operation in flight to its end, applying its effect on the cursor.
    /// `None` when nothing is in flight.
    fn poll_op(&mut self, cx: &mut TaskContext<'_>) -> Poll<Option<io::Result<Done>>> {
        let Some(op) = self.op.as_mut() else {
            return Poll::Ready(None);
        };
        let done = match op {
            Op::Read(f) => ready!(f.as_mut().poll(cx)).map(Done::Read),
            Op::Write(f) => ready!(f.as_mut().poll(cx)).map(Done::Wrote),
            Op::Seek(f) => ready!(f.as_mut().poll(cx)).map(Done::Seeked),
            Op::Flush(f) => ready!(f.as_mut().poll(cx)).map(|()| Done::Flushed),
            Op::Release(f) => ready!(f.as_mut().poll(cx)).map(|()| Done::Released),
        };
        self.op = None;
        if let Ok(Done::Seeked(p)) = done {
            self.pos = Some(p);
        }
        Poll::Ready(Some(done))
    }

    /// Finishes whatever is in flight; its result is dropped unless it is an error.
    fn poll_drain(&mut self, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match ready!(self.poll_op(cx)) {
            Some(Err(e)) => Poll::Ready(Err(e)),
            _ => Poll::Ready(Ok(())),
        }
    }

    fn check_open(&self) -> io::Result<()> {
        if self.closed {
            Err(io::Error::from_raw_os_error(libc::EBADF))
        } else {
            Ok(())
        }
    }
}

/// An open file of a volume: the path-level counterpart of a file descriptor, shaped like
/// `tokio::fs::File`.
///
/// It implements tokio's [`AsyncRead`], [`AsyncWrite`] and [`AsyncSeek`] with a cursor,
/// and offers positional I/O ([`read_at`](File::read_at), [`write_at`](File::write_at))
/// that leaves the cursor alone. A write has normally reached the VFS when the write call
/// returns, and reads through this volume see it at once; one that must wait for buffer
/// space is finished by the next call on the file, which reports its failure (as
/// `tokio::fs::File` does). Other clients see writes after
/// [`flush`](tokio::io::AsyncWriteExt::flush), [`sync_all`](File::sync_all) or
/// [`close`](File::close). `poll_flush` writes buffered data back; `poll_shutdown` closes
/// the file (`shutdown().await` is an async close).
///
/// **Dropping** a `File` without closing it releases its handle in the background (a task
/// spawned on the current tokio runtime), which also writes back buffered data; a failure
/// there can only be logged. Without a runtime the handle stays open until
/// [`Vfs::close`](crate::Vfs::close). Call [`File::close`] to see write-back errors.
pub struct File {
    handle: Arc<OwnedFileHandle>,
    state: tokio::sync::Mutex<State>,
}

impl std::fmt::Debug for File {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("File")
            .field("ino", &self.handle.ino)
            .field("fh", &self.handle.fh)
            .finish_non_exhaustive()
    }
}

impl Drop for File {
    fn drop(&mut self) {
        // A write taken by `poll_write` may still be in flight: finish it before the
        // handle (which the operation holds) is released.
        if let Some(op) = self.state.get_mut().op.take() {
            release_in_background(async move {
                match op {
                    Op::Write(f) => f.await.map(drop),
                    Op::Read(f) => f.await.map(drop),
                    Op::Seek(f) => f.await.map(drop),
                    Op::Flush(f) | Op::Release(f) => f.await,
                }
            });
        }
    }
}

impl File {
    fn from_handle(vfs: &Vfs, ctx: &Arc<Context>, fh: u64, ino: Ino, append: bool) -> File {
        File {
            handle: Arc::new(OwnedFileHandle {
                vfs: vfs.clone(),
                ctx: ctx.clone(),
                fh,
                ino,
                released: AtomicBool::new(false),
            }),
            state: tokio::sync::Mutex::new(State {
                op: None,
                pos: Some(0),
                rbuf: Bytes::new(),
                append,
                closed: false,
            }),
        }
    }

    /// Opens an existing file for reading (as `File::open` does).
    pub async fn open(fs: &FileSystem, path: impl AsRef<Path>) -> io::Result<File> {
        fs.open_options().read(true).open(path).await
    }

    /// Opens a file for writing, creating it or emptying it (as `File::create` does).
    pub async fn create(fs: &FileSystem, path: impl AsRef<Path>) -> io::Result<File> {
        fs.open_options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .await
    }

    /// Options to open a file of `fs` with.
    pub fn options(fs: &FileSystem) -> OpenOptions {
        fs.open_options()
    }

    /// The inode of the file.
    pub fn ino(&self) -> Ino {
        self.handle.ino
    }

    /// The VFS file handle (for calls on [`Vfs`] directly).
    pub fn raw_handle(&self) -> u64 {
        self.handle.fh
    }

    /// Waits for the operation in flight (one a cancelled `AsyncRead`/`AsyncWrite` call
    /// left behind) and returns the locked state.
    async fn settled(&self) -> io::Result<tokio::sync::MutexGuard<'_, State>> {
        let mut st = self.state.lock().await;
        futures::future::poll_fn(|cx| st.poll_drain(cx)).await?;
        st.check_open()?;
        Ok(st)
    }

    /// Reads up to `buf.len()` bytes at `offset`, without moving the cursor; fewer only at
    /// the end of the file, 0 past it.
    pub async fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let data = self.read_bytes_at(offset, buf.len()).await?;
        buf[..data.len()].copy_from_slice(&data);
        Ok(data.len())
    }

    /// Reads up to `len` bytes at `offset` without copying them, without moving the
    /// cursor; fewer only at the end of the file.
    pub async fn read_bytes_at(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        drop(self.settled().await?);
        let h = &self.handle;
        Ok(h.vfs.read(&h.ctx, h.fh, offset, len).await?)
    }

    /// Writes all of `buf` at `offset`, without moving the cursor (in append mode the data
    /// goes to the end, as `pwrite(2)` does on Linux). Returns `buf.len()`.
    pub async fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.write_bytes_at(Bytes::copy_from_slice(buf), offset)
            .await
    }

    /// Writes all of `data` at `offset` without copying it (see [`File::write_at`]).
    pub async fn write_bytes_at(&self, data: Bytes, offset: u64) -> io::Result<usize> {
        let mut st = self.settled().await?;
        st.rbuf.clear();
        drop(st);
        let h = &self.handle;
        Ok(h.vfs.write(&h.ctx, h.fh, offset, data).await?)
    }

    /// Makes everything written so far durable: all blocks stored, all slices committed.
    pub async fn sync_all(&self) -> io::Result<()> {
        drop(self.settled().await?);
        let h = &self.handle;
        Ok(h.vfs.fsync(&h.ctx, h.fh, false).await?)
    }

    /// Same as [`File::sync_all`]: a commit makes data and attributes durable together.
    pub async fn sync_data(&self) -> io::Result<()> {
        drop(self.settled().await?);
        let h = &self.handle;
        Ok(h.vfs.fsync(&h.ctx, h.fh, true).await?)
    }

    /// Truncates or extends the file to `size` bytes (needs the file open for writing);
    /// the cursor stays where it is.
    pub async fn set_len(&self, size: u64) -> io::Result<()> {
        let mut st = self.settled().await?;
        st.rbuf.clear();
        drop(st);
        let h = &self.handle;
        h.vfs.ftruncate(&h.ctx, h.fh, size).await?;
        Ok(())
    }

    /// The file's attributes (the length includes writes not yet committed).
    pub async fn metadata(&self) -> io::Result<Metadata> {
        drop(self.settled().await?);
        let h = &self.handle;
        Ok(Metadata::new(h.ino, h.vfs.getattr(&h.ctx, h.ino).await?))
    }

    /// Changes the permission bits.
    pub async fn set_permissions(&self, perm: Permissions) -> io::Result<()> {
        self.setattr(SetAttr::new().mode(perm_bits(perm))).await
    }

    /// Sets the access and modification times (`None` leaves one as it is).
    pub async fn set_times(
        &self,
        accessed: Option<SystemTime>,
        modified: Option<SystemTime>,
    ) -> io::Result<()> {
        self.setattr(times(accessed, modified)?).await
    }

    /// Sets the modification time.
    pub async fn set_modified(&self, modified: SystemTime) -> io::Result<()> {
        self.set_times(None, Some(modified)).await
    }

    async fn setattr(&self, set: SetAttr) -> io::Result<()> {
        drop(self.settled().await?);
        let h = &self.handle;
        h.vfs.setattr(&h.ctx, h.ino, &set).await?;
        Ok(())
    }

    /// Closes the file: writes back buffered data and releases the handle, reporting any
    /// write-back failure (which dropping the file cannot).
    pub async fn close(self) -> io::Result<()> {
        let mut st = self.state.lock().await;
        let drained = futures::future::poll_fn(|cx| st.poll_drain(cx)).await;
        st.closed = true;
        drop(st);
        let released = self.handle.release().await;
        drained?;
        released
    }
}

/// `base + delta`, or `EINVAL` for a position before 0 or past `u64::MAX`.
fn offset_by(base: u64, delta: i64) -> io::Result<u64> {
    base.checked_add_signed(delta).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "invalid seek to a negative or overflowing position",
        )
    })
}

/// The permission bits of `perm`, as the engine stores them.
pub(crate) fn perm_bits(perm: Permissions) -> u16 {
    // `Permissions` keeps 12 bits only, so this fits.
    (perm.mode() & 0o7777) as u16
}

/// A `SetAttr` for new access and modification times.
pub(crate) fn times(
    accessed: Option<SystemTime>,
    modified: Option<SystemTime>,
) -> io::Result<SetAttr> {
    let mut set = SetAttr::new();
    if let Some(t) = accessed {
        set = set.atime(SetTime::At(timestamp(t)?));
    }
    if let Some(t) = modified {
        set = set.mtime(SetTime::At(timestamp(t)?));
    }
    Ok(set)
}

impl AsyncRead for File {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let st = this.state.get_mut();
        loop {
            if st.op.is_none() && !st.rbuf.is_empty() {
                let n = st.rbuf.len().min(buf.remaining());
                buf.put_slice(&st.rbuf[..n]);
                st.rbuf.advance(n);
                st.pos = st.pos.map(|p| p + n as u64);
                return Poll::Ready(Ok(()));
            }
            match ready!(st.poll_op(cx)) {
                Some(Ok(Done::Read(data))) => {
                    let n = data.len().min(buf.remaining());
                    buf.put_slice(&data[..n]);
                    st.pos = st.pos.map(|p| p + n as u64);
                    st.rbuf = data.slice(n..);
                    return Poll::Ready(Ok(()));
                }
                Some(Err(e)) => return Poll::Ready(Err(e)),
                Some(Ok(_)) | None => {}
            }
            st.check_open()?;
            if buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            // An unknown cursor (after an append) is found first: it is the end.
            FileRef(&this.handle).start_read(st, buf.remaining());
        }
    }
}

/// The handle of a [`File`], borrowed apart from its state to start operations.
struct FileRef<'a>(&'a Arc<OwnedFileHandle>);

impl FileRef<'_> {
    fn start_read(&self, st: &mut State, want: usize) {
        let Some(pos) = st.pos else {
            st.op = Some(Op::Seek(self.end_future(0)));
            return;
        };
        let h = self.0.clone();
        let len = want.clamp(MIN_READ, MAX_IO);
        st.op = Some(Op::Read(Box::pin(async move {
            Ok(h.vfs.read(&h.ctx, h.fh, pos, len).await?)
        })));
    }

    fn end_future(&self, delta: i64) -> BoxFuture<'static, io::Result<u64>> {
        let h = self.0.clone();
        Box::pin(async move {
            let len = h.vfs.getattr(&h.ctx, h.ino).await?.length;
            offset_by(len, delta)
        })
    }

    fn start_write(&self, st: &mut State, data: Bytes) {
        let h = self.0.clone();
        st.rbuf.clear();
        let n = data.len() as u64;
        let offset = match (st.append, st.pos) {
            // The VFS puts an append at the end; the cursor follows it there.
            (true, _) | (false, None) => {
                st.pos = None;
                0
            }
            (false, Some(p)) => {
                // A write that would pass u64::MAX fails with EFBIG; the cursor must not wrap.
                st.pos = Some(p.saturating_add(n));
                p
            }
        };
        st.op = Some(Op::Write(Box::pin(async move {
            Ok(h.vfs.write(&h.ctx, h.fh, offset, data).await?)
        })));
    }
}

impl AsyncWrite for File {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let st = this.state.get_mut();
        loop {
            // An earlier write still in flight was reported as done: only its failure is
            // news now.
            if let Some(Err(e)) = ready!(st.poll_op(cx)) {
                return Poll::Ready(Err(e));
            }
            st.check_open()?;
            if buf.is_empty() {
                return Poll::Ready(Ok(0));
            }
            let n = buf.len().min(MAX_IO);
            if !st.append && st.pos.is_none() {
                // A non-append write after an append: the cursor is at the end.
                st.op = Some(Op::Seek(FileRef(&this.handle).end_future(0)));
                continue;
            }
            FileRef(&this.handle).start_write(st, Bytes::copy_from_slice(&buf[..n]));
            // Most writes finish at once (into the VFS's buffer); one that waits for
            // buffer space has taken the data and finishes in the next call on this file,
            // which reports its failure (as `tokio::fs::File` does).
            return match st.poll_op(cx) {
                Poll::Ready(Some(Ok(Done::Wrote(n)))) => Poll::Ready(Ok(n)),
                Poll::Ready(Some(Err(e))) => Poll::Ready(Err(e)),
                Poll::Ready(_) | Poll::Pending => Poll::Ready(Ok(n)),
            };
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let st = this.state.get_mut();
        loop {
            match ready!(st.poll_op(cx)) {
                Some(Ok(Done::Flushed)) => return Poll::Ready(Ok(())),
                Some(Err(e)) => return Poll::Ready(Err(e)),
                Some(Ok(_)) | None => {}
            }
            if st.closed {
                return Poll::Ready(Ok(()));
            }
            let h = this.handle.clone();
            st.op = Some(Op::Flush(Box::pin(async move {
                Ok(h.vfs.flush(&h.ctx, h.fh).await?)
            })));
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let st = this.state.get_mut();
        loop {
            match ready!(st.poll_op(cx)) {
                Some(Ok(Done::Released)) => return Poll::Ready(Ok(())),
                Some(Err(e)) => return Poll::Ready(Err(e)),
                Some(Ok(_)) | None => {}
            }
            if st.closed {
                return Poll::Ready(Ok(()));
            }
            st.closed = true;
            let h = this.handle.clone();
            st.op = Some(Op::Release(Box::pin(async move { h.release().await })));
        }
    }
}

impl AsyncSeek for File {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
        let this = self.get_mut();
        let st = this.state.get_mut();
        if st.op.is_some() {
            return Err(io::Error::other(
                "other file operation is pending, call poll_complete before start_seek",
            ));
        }
        st.check_open()?;
        st.rbuf.clear();
        match (position, st.pos) {
            (SeekFrom::Start(p), _) => st.pos = Some(p),
            (SeekFrom::Current(d), Some(p)) => st.pos = Some(offset_by(p, d)?),
            (SeekFrom::Current(d), None) | (SeekFrom::End(d), _) => {
                st.op = Some(Op::Seek(FileRef(&this.handle).end_future(d)));
            }
        }
        Ok(())
    }

    fn poll_complete(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<u64>> {
        let this = self.get_mut();
        let st = this.state.get_mut();
        loop {
            match ready!(st.poll_op(cx)) {
                Some(Ok(Done::Seeked(p))) => return Poll::Ready(Ok(p)),
                Some(Err(e)) => return Poll::Ready(Err(e)),
                Some(Ok(_)) | None => {}
            }
            match st.pos {
                Some(p) => return Poll::Ready(Ok(p)),
                None => st.op = Some(Op::Seek(FileRef(&this.handle).end_future(0))),
            }
        }
    }
}

/// How to open a file, as [`std::fs::OpenOptions`] (with `OpenOptionsExt::mode`) does,
/// bound to a [`FileSystem`]. Get one from [`FileSystem::open_options`].
///
/// The same combinations are invalid as in `std` (`InvalidInput`): no access mode at
/// all; `truncate`, `create` or `create_new` without `write` or `append`; `truncate`
/// with `append` (unless `create_new`).
#[derive(Debug, Clone)]
pub struct OpenOptions {
    fs: FileSystem,
    read: bool,
    write: bool,
    append: bool,
    truncate: bool,
    create: bool,
    create_new: bool,
    mode: u32,
    custom_flags: i32,
}

impl OpenOptions {
    pub(crate) fn new(fs: FileSystem) -> OpenOptions {
        OpenOptions {
            fs,
            read: false,
            write: false,
            append: false,
            truncate: false,
            create: false,
            create_new: false,
            mode: 0o666,
            custom_flags: 0,
        }
    }

    /// Open for reading.
    pub fn read(&mut self, yes: bool) -> &mut Self {
        self.read = yes;
        self
    }

    /// Open for writing.
    pub fn write(&mut self, yes: bool) -> &mut Self {
        self.write = yes;
        self
    }

    /// Every write goes to the current end of the file (implies writing).
    pub fn append(&mut self, yes: bool) -> &mut Self {
        self.append = yes;
        self
    }

    /// Empty the file when opening it.
    pub fn truncate(&mut self, yes: bool) -> &mut Self {
        self.truncate = yes;
        self
    }

    /// Create the file if it does not exist.
    pub fn create(&mut self, yes: bool) -> &mut Self {
        self.create = yes;
        self
    }

    /// Create the file, failing with `AlreadyExists` if the name is taken (even by a
    /// dangling symbolic link).
    pub fn create_new(&mut self, yes: bool) -> &mut Self {
        self.create_new = yes;
        self
    }

    /// The permission bits of a created file (default `0o666`; the context's umask
    /// applies).
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode & 0o7777;
        self
    }

    /// Extra `open(2)` flags (`O_SYNC`, `O_NOATIME`, …); the access-mode bits are ignored.
    pub fn custom_flags(&mut self, flags: i32) -> &mut Self {
        self.custom_flags = flags & !libc::O_ACCMODE;
        self
    }

    /// The `open(2)` flags these options stand for, or `EINVAL` as `std` reports.
    fn flags(&self) -> io::Result<i32> {
        let invalid = || io::Error::from_raw_os_error(libc::EINVAL);
        let access = match (self.read, self.write, self.append) {
            (true, false, false) => libc::O_RDONLY,
            (false, true, false) => libc::O_WRONLY,
            (true, true, false) => libc::O_RDWR,
            (false, _, true) => libc::O_WRONLY | libc::O_APPEND,
            (true, _, true) => libc::O_RDWR | libc::O_APPEND,
            (false, false, false) => return Err(invalid()),
        };
        if !self.write && !self.append && (self.truncate || self.create || self.create_new) {
            return Err(invalid());
        }
        if self.append && self.truncate && !self.create_new {
            return Err(invalid());
        }
        let creation = match (self.create, self.truncate, self.create_new) {
            (_, _, true) => libc::O_CREAT | libc::O_EXCL,
            (true, true, false) => libc::O_CREAT | libc::O_TRUNC,
            (true, false, false) => libc::O_CREAT,
            (false, true, false) => libc::O_TRUNC,
            (false, false, false) => 0,
        };
        Ok(access | creation | self.custom_flags)
    }

    /// Opens the file at `path` with these options. Symbolic links are followed as
    /// `open(2)` does: with `create` a dangling link's target is created, `create_new`
    /// refuses any link as the last component (`EEXIST`), and `O_NOFOLLOW` in
    /// [`custom_flags`](Self::custom_flags) makes one `ELOOP`.
    pub async fn open(&self, path: impl AsRef<Path>) -> io::Result<File> {
        let flags = self.flags()?;
        let fs = &self.fs;
        let (vfs, ctx) = (fs.vfs(), fs.shared_context());
        let exclusive = flags & libc::O_EXCL != 0;
        let nofollow = flags & libc::O_NOFOLLOW != 0;
        // O_CREAT|O_EXCL never follows a last symlink (even a dangling one is EEXIST).
        let last = if exclusive || nofollow {
            Last::NoFollow
        } else {
            Last::Follow
        };
        let walked = walk(vfs, ctx, path.as_ref(), last).await?;
        let (fh, ino) = match &walked.entry {
            Some(_) if exclusive => return Err(meta_err(MetaError::Exists)),
            Some(e) if nofollow && e.attr.typ == meta_api::FileType::Symlink => {
                return Err(meta_err(MetaError::Loop))
            }
            Some(e) => (vfs.open(ctx, e.ino, flags).await?, e.ino),
            None if flags & libc::O_CREAT == 0 => return Err(meta_err(MetaError::NotFound)),
            None => {
                if walked.must_be_dir {
                    return Err(meta_err(MetaError::IsDir));
                }
                let (parent, name) = walked.parent_and_name(MetaError::IsDir)?;
                let (entry, fh) = vfs.create(ctx, parent, name, self.mode, flags).await?;
                (fh, entry.ino)
            }
        };
        Ok(File::from_handle(
            vfs,
            ctx,
            fh,
            ino,
            flags & libc::O_APPEND != 0,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets() {
        assert_eq!(offset_by(10, -3).unwrap(), 7);
        assert_eq!(
            offset_by(10, -11).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert!(offset_by(u64::MAX, 1).is_err());
    }
}
