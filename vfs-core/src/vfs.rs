//! [`Vfs`]: the inode-level POSIX API a frontend (FUSE, NFS, a path-level API) adapts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use cache::CacheMetrics;
use chunkstore::ChunkStore;
use meta_api::{
    access, perm, Attr, Context, DirEntry, Entry, FallocMode, FileType, Format, Ino, MetaEngine,
    MetaError, RenameFlags, SetAttr, SetTime, StatFs, Timestamp, MAX_FILE_SIZE, MAX_XATTR_NAME_LEN,
    MAX_XATTR_VALUE_LEN, ROOT_INO,
};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::budget::BufferBudget;
use crate::jobs::{self, JobContext, Purger};
use crate::open_files::{OpenFile, OpenFiles};
use crate::readahead::ReadaheadWindow;
use crate::reader::ChunkReader;
use crate::store_stack::StoreStack;
use crate::writer::SliceWriter;
use crate::{AtimeMode, Result, VfsError, VfsOptions};

/// Directory entries asked from the engine per page at least.
const READDIR_PAGE: usize = 512;

/// Open flags this VFS understands; any other bit is `EINVAL`.
const VALID_OPEN_FLAGS: i32 = libc::O_ACCMODE
    | libc::O_CREAT
    | libc::O_EXCL
    | libc::O_NOCTTY
    | libc::O_TRUNC
    | libc::O_APPEND
    | libc::O_NONBLOCK
    | libc::O_DSYNC
    | libc::O_SYNC
    | libc::O_DIRECT
    | libc::O_LARGEFILE
    | KERNEL_O_LARGEFILE
    | libc::O_DIRECTORY
    | libc::O_NOFOLLOW
    | libc::O_NOATIME
    | libc::O_CLOEXEC
    | libc::O_ASYNC;

/// The kernel's own `O_LARGEFILE` bit, which FUSE passes through although the C library
/// defines the flag as 0 on 64-bit targets.
#[cfg(target_arch = "x86_64")]
const KERNEL_O_LARGEFILE: i32 = 0o100000;
#[cfg(not(target_arch = "x86_64"))]
const KERNEL_O_LARGEFILE: i32 = libc::O_LARGEFILE;

/// One entry of a directory listing with its position: pass `offset` to
/// [`Vfs::readdir`] to continue after this entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DirItem {
    /// The offset of the next entry.
    pub offset: u64,
    /// The entry's name (bytes; `.` and `..` come first).
    pub name: Vec<u8>,
    /// The inode it points to.
    pub ino: Ino,
    /// The inode's type.
    pub typ: FileType,
    /// The attributes, when asked for (`plus`).
    pub attr: Option<Attr>,
}

/// How a file handle was opened.
#[derive(Debug, Clone, Copy)]
struct Access {
    read: bool,
    write: bool,
    append: bool,
    sync: bool,
}

/// An open file handle.
struct FileHandle {
    ino: Ino,
    file: Arc<OpenFile>,
    access: Access,
    /// Where this handle read last and how far ahead of it blocks were asked for.
    readahead: Mutex<ReadaheadWindow>,
    /// The file's write-back failure count this handle has reported.
    seen_errors: AtomicU64,
    /// The permission bits when the handle was opened.
    mode: u16,
    /// Whether a write by a non-root caller has dropped setuid/setgid through this handle.
    privs_dropped: AtomicBool,
    /// The times to decide access-time updates on; `None` when reads never update it.
    atime: Option<Mutex<SeenTimes>>,
}

/// An open directory handle.
struct DirHandle {
    ino: Ino,
    parent: Ino,
    listing: tokio::sync::Mutex<Listing>,
    atime: Option<Mutex<SeenTimes>>,
}

/// An inode's times as a handle last saw them: enough to decide whether a read updates
/// the access time without asking the engine.
#[derive(Debug, Clone, Copy)]
struct SeenTimes {
    atime: Timestamp,
    mtime: Timestamp,
    ctime: Timestamp,
}

impl SeenTimes {
    fn of(attr: &Attr) -> SeenTimes {
        SeenTimes {
            atime: attr.atime,
            mtime: attr.mtime,
            ctime: attr.ctime,
        }
    }
}

/// What a directory handle has listed so far.
#[derive(Default)]
struct Listing {
    loaded: bool,
    done: bool,
    items: Vec<DirItem>,
}

/// The handles open in a VFS, by number.
#[derive(Default)]
struct Handles {
    next: u64,
    files: HashMap<u64, Arc<FileHandle>>,
    dirs: HashMap<u64, Arc<DirHandle>>,
}

impl Handles {
    fn next_number(&mut self) -> u64 {
        // Handle 0 is never given out: some frontends use it for "no handle".
        self.next += 1;
        self.next
    }

    /// Adds a file handle; returns its number.
    fn add_file(&mut self, h: Arc<FileHandle>) -> u64 {
        let fh = self.next_number();
        self.files.insert(fh, h);
        fh
    }

    /// Adds a directory handle; returns its number.
    fn add_dir(&mut self, d: Arc<DirHandle>) -> u64 {
        let dh = self.next_number();
        self.dirs.insert(dh, d);
        dh
    }
}

/// Everything the clones of a [`Vfs`] share.
struct Inner {
    meta: Arc<dyn MetaEngine>,
    stores: StoreStack,
    format: Format,
    opts: VfsOptions,
    budget: Arc<BufferBudget>,
    reader: Arc<ChunkReader>,
    files: Arc<OpenFiles>,
    purger: Arc<Purger>,
    purge_now: Arc<Notify>,
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
/// Every call takes the caller's [`Context`] for permission checks. Errors are
/// [`VfsError`]s; [`VfsError::errno`] gives the errno to answer with.
///
/// Data written through a handle is buffered, cut into blocks and uploaded in the
/// background; it becomes visible to other clients when it is committed: on
/// [`flush`](Vfs::flush), [`fsync`](Vfs::fsync), [`release`](Vfs::release), about a second
/// after the last write, or when a slice fills its 64 MiB chunk. Reads through this `Vfs`
/// always see its own writes. Opening a file sees everything other clients committed
/// before (close-to-open consistency).
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
        let block_size = u32::try_from(format.block_bytes())
            .map_err(|_| VfsError::InvalidArgument("block size too large"))?;
        let budget = Arc::new(BufferBudget::new(
            opts.buffer_size.max(2 * block_size as usize),
        ));
        // Opened before the session so that a bad cache setting leaves nothing behind.
        let stores = StoreStack::with_cache(store, &format, &opts).await?;
        if opts.start_session {
            meta.new_session(&opts.effective_session_info()).await?;
        }
        let hash_prefix = format.hash_prefix;
        let slices = SliceWriter::new(
            meta.clone(),
            stores.top.clone(),
            block_size,
            hash_prefix,
            budget.clone(),
            opts.upload_concurrency,
        );
        let reader = ChunkReader::new(meta.clone(), &stores, block_size, hash_prefix);
        let purger = Purger::new(meta.clone(), stores.top.clone(), block_size, hash_prefix);
        let (shutdown, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            files: Arc::new(OpenFiles::new(Arc::new(slices))),
            reader: Arc::new(reader),
            purger: Arc::new(purger),
            purge_now: Arc::new(Notify::new()),
            session_started: opts.start_session,
            meta,
            stores,
            format,
            opts,
            budget,
            handles: Mutex::new(Handles::default()),
            closed: AtomicBool::new(false),
            shutdown,
            tasks: Mutex::new(Vec::new()),
        });
        let tasks = jobs::start(JobContext {
            files: &inner.files,
            budget: &inner.budget,
            purger: &inner.purger,
            purge_now: &inner.purge_now,
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

    fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            Err(VfsError::Closed)
        } else {
            Ok(())
        }
    }

    /// The file handle numbered `fh` (`EBADF` if there is none).
    fn file_handle(&self, fh: u64) -> Result<Arc<FileHandle>> {
        self.check_open()?;
        self.inner
            .handles()
            .files
            .get(&fh)
            .cloned()
            .ok_or(VfsError::BadHandle)
    }

    /// The directory handle numbered `dh` (`EBADF` if there is none).
    fn dir_handle(&self, dh: u64) -> Result<Arc<DirHandle>> {
        self.check_open()?;
        self.inner
            .handles()
            .dirs
            .get(&dh)
            .cloned()
            .ok_or(VfsError::BadHandle)
    }

    /// Fails with `EMFILE` when the handle table is full.
    fn check_handle_room(&self) -> Result<()> {
        let h = self.inner.handles();
        if h.files.len() + h.dirs.len() >= self.inner.opts.max_open_files {
            return Err(VfsError::TooManyOpenFiles);
        }
        Ok(())
    }

    /// The inode a file handle refers to.
    pub fn handle_ino(&self, fh: u64) -> Result<Ino> {
        Ok(self.file_handle(fh)?.ino)
    }

    /// Makes attributes of a file open here reflect its uncommitted writes (length, times).
    fn patch_attr(&self, ino: Ino, attr: &mut Attr) {
        if attr.typ != FileType::Regular {
            return;
        }
        if let Some(of) = self.inner.files.get(ino) {
            if of.state.has_pending() {
                attr.length = attr.length.max(of.state.length());
                let written = of.state.written();
                attr.mtime = attr.mtime.max(written);
                attr.ctime = attr.ctime.max(written);
            }
        }
    }

    /// What a handle of an inode with `attr` decides access-time updates on (`None`:
    /// never, for [`AtimeMode::NoAtime`] or `O_NOATIME`).
    fn atime_tracker(&self, attr: &Attr, noatime: bool) -> Option<Mutex<SeenTimes>> {
        (self.inner.opts.atime_mode != AtimeMode::NoAtime && !noatime)
            .then(|| Mutex::new(SeenTimes::of(attr)))
    }

    /// Updates the access time of `ino` after a read or listing when the policy asks for it.
    /// The decision uses the times `seen` by the handle (and `written`, this client's last
    /// write), so a read that changes nothing costs no metadata transaction. Best effort:
    /// a failure is logged, and not retried before the next change.
    async fn touch_atime(&self, ino: Ino, seen: &Mutex<SeenTimes>, written: Timestamp) {
        let now = Timestamp::now();
        let due = {
            let mut s = seen.lock().unwrap_or_else(|p| p.into_inner());
            s.mtime = s.mtime.max(written);
            atime_due(self.inner.opts.atime_mode, &s, now)
        };
        if !due {
            return;
        }
        let set = SetAttr::new().atime(SetTime::At(now)).keep_ctime();
        let r = self.inner.meta.setattr(&Context::root(), ino, &set).await;
        let mut s = seen.lock().unwrap_or_else(|p| p.into_inner());
        match r {
            Ok(a) => *s = SeenTimes::of(&a),
            Err(e) => {
                tracing::debug!(ino, error = %e, "access time not updated");
                s.atime = now;
            }
        }
    }

    /// Drops setuid, and setgid when group-executable, after `ctx` (not root) wrote or
    /// truncated file `ino` whose current attributes are `attr`, as Linux does; returns
    /// the attributes after it.
    async fn drop_privs(&self, ctx: &Context, ino: Ino, mut attr: Attr) -> Result<Attr> {
        if !perm::clear_suid_on_write(ctx, &mut attr) {
            return Ok(attr);
        }
        // The writer need not own the file: the kernel drops the bits with its own rights.
        let set = SetAttr::new().mode(attr.mode);
        Ok(self.inner.meta.setattr(&Context::root(), ino, &set).await?)
    }

    /// [`Vfs::drop_privs`] before a write by `ctx` through `h`: once per handle, and only
    /// for a file that had the bits when it was opened, so that ordinary writes cost no
    /// metadata round trip.
    async fn drop_privs_for_write(&self, ctx: &Context, h: &FileHandle) -> Result<()> {
        if ctx.is_root() || !has_exec_privs(h.mode) || h.privs_dropped.load(Ordering::Acquire) {
            return Ok(());
        }
        let attr = self.inner.meta.getattr(h.ino).await?;
        self.drop_privs(ctx, h.ino, attr).await?;
        h.privs_dropped.store(true, Ordering::Release);
        Ok(())
    }

    // ----- namespace -----

    /// Looks `name` up in directory `parent`.
    pub async fn lookup(&self, ctx: &Context, parent: Ino, name: &[u8]) -> Result<Entry> {
        self.check_open()?;
        let mut e = self.inner.meta.lookup(ctx, parent, name).await?;
        self.patch_attr(e.ino, &mut e.attr);
        Ok(e)
    }

    /// The attributes of `ino` (including this client's uncommitted writes in the length).
    pub async fn getattr(&self, _ctx: &Context, ino: Ino) -> Result<Attr> {
        self.check_open()?;
        let mut a = self.inner.meta.getattr(ino).await?;
        self.patch_attr(ino, &mut a);
        Ok(a)
    }

    /// Changes attributes. A new `size` truncates or extends the file (and, by a caller
    /// other than root, drops setuid and group-executable setgid, as Linux does). Buffered
    /// writes of a file open here are written back first, so that they can neither land
    /// past a new end nor overwrite a modification time set explicitly.
    pub async fn setattr(&self, ctx: &Context, ino: Ino, set: &SetAttr) -> Result<Attr> {
        self.check_open()?;
        if set.size.is_some_and(|size| size > MAX_FILE_SIZE) {
            return Err(VfsError::FileTooBig);
        }
        let attr = match self.inner.files.get(ino) {
            Some(of) => {
                let mut w = of.writer.lock().await;
                w.flush().await?;
                let attr = self.inner.meta.setattr(ctx, ino, set).await?;
                if set.size.is_some() {
                    of.state.set_length(attr.length);
                    of.state.invalidate_all();
                }
                attr
            }
            None => self.inner.meta.setattr(ctx, ino, set).await?,
        };
        if set.size.is_some() && set.mode.is_none() {
            return self.drop_privs(ctx, ino, attr).await;
        }
        Ok(attr)
    }

    /// Sets the length of the file open as `fh` (which must be open for writing; the
    /// permission was checked when it was opened).
    pub async fn ftruncate(&self, ctx: &Context, fh: u64, length: u64) -> Result<Attr> {
        let h = self.file_handle(fh)?;
        if !h.access.write {
            return Err(VfsError::BadHandle);
        }
        if length > MAX_FILE_SIZE {
            return Err(VfsError::FileTooBig);
        }
        self.truncate_open(&as_opener(ctx), ctx, &h.file, length)
            .await
    }

    /// Truncates an open file with the engine's permission check done as `engine_ctx`;
    /// `caller` decides whether setuid/setgid are dropped.
    async fn truncate_open(
        &self,
        engine_ctx: &Context,
        caller: &Context,
        of: &OpenFile,
        length: u64,
    ) -> Result<Attr> {
        let attr = {
            let mut w = of.writer.lock().await;
            w.flush().await?;
            let attr = self
                .inner
                .meta
                .truncate(engine_ctx, of.ino(), length)
                .await?;
            of.state.set_length(attr.length);
            of.state.invalidate_all();
            attr
        };
        self.drop_privs(caller, of.ino(), attr).await
    }

    /// Creates a node named `name` in `parent`: `mode` carries the type bits (`S_IFREG`,
    /// `S_IFIFO`, `S_IFSOCK`, `S_IFCHR`, `S_IFBLK`; none means a regular file) and the
    /// permission bits; `rdev` is a device's number. As in Linux, directories and symlinks
    /// have their own calls (`EINVAL` here), and only root creates devices (`EPERM`).
    /// Special files hold no data here: see [`Vfs::open`].
    pub async fn mknod(
        &self,
        ctx: &Context,
        parent: Ino,
        name: &[u8],
        mode: u32,
        rdev: u32,
    ) -> Result<Entry> {
        self.check_open()?;
        let typ = match mode & libc::S_IFMT {
            0 => FileType::Regular,
            libc::S_IFDIR | libc::S_IFLNK => {
                return Err(VfsError::InvalidArgument(
                    "mknod makes no directories or symlinks",
                ))
            }
            _ => FileType::from_mode(mode).ok_or(VfsError::InvalidArgument("unknown file type"))?,
        };
        if matches!(typ, FileType::CharDevice | FileType::BlockDevice) && !ctx.is_root() {
            return Err(MetaError::NotPermitted.into());
        }
        Ok(self
            .inner
            .meta
            .mknod(ctx, parent, name, typ, perm_bits(mode), rdev)
            .await?)
    }

    /// Creates a directory.
    pub async fn mkdir(&self, ctx: &Context, parent: Ino, name: &[u8], mode: u32) -> Result<Entry> {
        self.check_open()?;
        Ok(self
            .inner
            .meta
            .mkdir(ctx, parent, name, perm_bits(mode))
            .await?)
    }

    /// Removes a non-directory entry. An open file keeps its data until its last handle
    /// (in any client) is released.
    pub async fn unlink(&self, ctx: &Context, parent: Ino, name: &[u8]) -> Result<()> {
        self.check_open()?;
        self.inner.meta.unlink(ctx, parent, name).await?;
        Ok(())
    }

    /// Removes an empty directory.
    pub async fn rmdir(&self, ctx: &Context, parent: Ino, name: &[u8]) -> Result<()> {
        self.check_open()?;
        self.inner.meta.rmdir(ctx, parent, name).await?;
        Ok(())
    }

    /// Creates a symbolic link `name` in `parent` pointing to `target`.
    pub async fn symlink(
        &self,
        ctx: &Context,
        parent: Ino,
        name: &[u8],
        target: &[u8],
    ) -> Result<Entry> {
        self.check_open()?;
        Ok(self.inner.meta.symlink(ctx, parent, name, target).await?)
    }

    /// The target of a symbolic link.
    pub async fn readlink(&self, _ctx: &Context, ino: Ino) -> Result<Vec<u8>> {
        self.check_open()?;
        Ok(self.inner.meta.readlink(ino).await?)
    }

    /// Renames `parent/name` to `new_parent/new_name`; `flags` are Linux's
    /// `RENAME_NOREPLACE` / `RENAME_EXCHANGE` bits ([`RenameFlags`]).
    pub async fn rename(
        &self,
        ctx: &Context,
        parent: Ino,
        name: &[u8],
        new_parent: Ino,
        new_name: &[u8],
        flags: u32,
    ) -> Result<()> {
        self.check_open()?;
        self.inner
            .meta
            .rename(ctx, parent, name, new_parent, new_name, RenameFlags(flags))
            .await?;
        Ok(())
    }

    /// Adds a hard link to `ino` named `new_name` in `new_parent`.
    pub async fn link(
        &self,
        ctx: &Context,
        ino: Ino,
        new_parent: Ino,
        new_name: &[u8],
    ) -> Result<Entry> {
        self.check_open()?;
        let mut e = self.inner.meta.link(ctx, ino, new_parent, new_name).await?;
        self.patch_attr(e.ino, &mut e.attr);
        Ok(e)
    }

    /// Checks that `ctx` may access `ino` with `mask` (`R_OK | W_OK | X_OK`, or `F_OK`
    /// for existence only).
    pub async fn access(&self, ctx: &Context, ino: Ino, mask: i32) -> Result<()> {
        self.check_open()?;
        if mask & !(libc::R_OK | libc::W_OK | libc::X_OK) != 0 {
            return Err(VfsError::InvalidArgument("unknown access mode bits"));
        }
        // The mask bits are the same as `access::{R, W, X}`; the engine consults POSIX ACLs.
        self.inner
            .meta
            .check_access(ctx, ino, (mask & 7) as u8)
            .await?;
        Ok(())
    }

    /// Volume usage.
    pub async fn statfs(&self, _ctx: &Context, _ino: Ino) -> Result<StatFs> {
        self.check_open()?;
        Ok(self.inner.meta.statfs().await?)
    }

    // ----- files -----

    /// Opens regular file `ino` and returns a handle. `flags` are `open(2)` flags:
    /// `O_RDONLY`/`O_WRONLY`/`O_RDWR` are checked against the permission bits, `O_TRUNC`
    /// empties the file, `O_APPEND` makes every write go to the current end, `O_SYNC` /
    /// `O_DSYNC` make every write durable before it returns, `O_NOATIME` (owner or root
    /// only, else `EPERM`) keeps reads from updating the access time. Directories are
    /// `EISDIR` (use [`Vfs::opendir`]), symlinks `ELOOP`.
    ///
    /// FIFOs, sockets and device nodes are `EOPNOTSUPP`: a library without a kernel has no
    /// pipe, socket or driver behind them, so they can be created, listed, linked, renamed
    /// and have their attributes changed, but never opened for data. A frontend with a
    /// kernel (FUSE) never asks: the kernel serves them itself.
    ///
    /// The first write through a handle by a caller other than root drops the file's
    /// setuid bit, and its setgid bit when group-executable (Linux's rule), judged on the
    /// mode the file had when the handle was opened; `O_TRUNC` by such a caller does too.
    pub async fn open(&self, ctx: &Context, ino: Ino, flags: i32) -> Result<u64> {
        self.check_open()?;
        let access = check_open_flags(flags)?;
        self.check_handle_room()?;
        let flags = flags & !(libc::O_CREAT | libc::O_EXCL);
        let attr = self.inner.meta.open(ctx, ino, flags).await?;
        self.finish_open(ctx, ino, attr, access, flags).await
    }

    /// Registers an open the engine has recorded, truncating for `O_TRUNC`; on failure the
    /// engine's open is undone.
    async fn finish_open(
        &self,
        ctx: &Context,
        ino: Ino,
        attr: Attr,
        access: Access,
        flags: i32,
    ) -> Result<u64> {
        let type_error = match attr.typ {
            FileType::Regular if flags & libc::O_DIRECTORY != 0 => {
                Some(VfsError::Meta(MetaError::NotDir))
            }
            FileType::Regular => None,
            FileType::Directory => Some(VfsError::Meta(MetaError::IsDir)),
            FileType::Symlink => Some(VfsError::Meta(MetaError::Loop)),
            _ => Some(VfsError::NotSupported(
                "special files hold no data in this file system",
            )),
        };
        if let Some(e) = type_error {
            self.close_quietly(ino).await;
            return Err(e);
        }
        let noatime = flags & libc::O_NOATIME != 0;
        if noatime && !ctx.is_root() && ctx.uid != attr.uid {
            self.close_quietly(ino).await;
            return Err(MetaError::NotPermitted.into());
        }
        let of = self.inner.files.acquire(ino, attr.length).await;
        let mut attr = attr;
        // Even an empty file is truncated: O_TRUNC stamps mtime and ctime (POSIX).
        if flags & libc::O_TRUNC != 0 {
            match self.truncate_open(ctx, ctx, &of, 0).await {
                Ok(a) => attr = a,
                Err(e) => {
                    self.inner.files.release(ino);
                    self.close_quietly(ino).await;
                    return Err(e);
                }
            }
        }
        // Failures before this open are not this handle's to report.
        let seen = of.writer.lock().await.error_seq();
        let handle = Arc::new(FileHandle {
            ino,
            file: of,
            access,
            readahead: Mutex::new(ReadaheadWindow::default()),
            seen_errors: AtomicU64::new(seen),
            mode: attr.mode,
            privs_dropped: AtomicBool::new(false),
            atime: self.atime_tracker(&attr, noatime),
        });
        Ok(self.inner.handles().add_file(handle))
    }

    /// Undoes the engine's record of an open that failed here.
    async fn close_quietly(&self, ino: Ino) {
        if let Err(e) = self.inner.meta.close(ino).await {
            tracing::debug!(ino, error = %e, "undoing an open failed");
        }
    }

    /// Creates regular file `name` in `parent` and opens it. Without `O_EXCL` an existing
    /// file of that name is opened instead (honouring `O_TRUNC`), as `open(2)` with
    /// `O_CREAT` does; with it, an existing name is `EEXIST`. A new file is opened even if
    /// `mode` denies the requested access, as POSIX wants. An existing symlink is not
    /// followed at this level (`ELOOP`; the path-level [`FileSystem`](crate::FileSystem)
    /// resolves links first), and `O_DIRECTORY` is `EINVAL`, as in Linux.
    pub async fn create(
        &self,
        ctx: &Context,
        parent: Ino,
        name: &[u8],
        mode: u32,
        flags: i32,
    ) -> Result<(Entry, u64)> {
        self.check_open()?;
        let access = check_open_flags(flags)?;
        if flags & libc::O_DIRECTORY != 0 {
            return Err(VfsError::InvalidArgument("O_CREAT with O_DIRECTORY"));
        }
        self.check_handle_room()?;
        let created = self
            .inner
            .meta
            .mknod(ctx, parent, name, FileType::Regular, perm_bits(mode), 0)
            .await;
        let entry = match created {
            Ok(e) => e,
            Err(MetaError::Exists) if flags & libc::O_EXCL == 0 => {
                let existing = self.inner.meta.lookup(ctx, parent, name).await?;
                let fh = self.open(ctx, existing.ino, flags).await?;
                let mut attr = self.inner.meta.getattr(existing.ino).await?;
                self.patch_attr(existing.ino, &mut attr);
                return Ok((
                    Entry {
                        ino: existing.ino,
                        attr,
                    },
                    fh,
                ));
            }
            Err(e) => return Err(e.into()),
        };
        let open_flags = flags & !(libc::O_CREAT | libc::O_EXCL | libc::O_TRUNC);
        let attr = self
            .inner
            .meta
            .open(&as_opener(ctx), entry.ino, open_flags)
            .await?;
        let fh = self
            .finish_open(ctx, entry.ino, attr, access, open_flags)
            .await?;
        Ok((entry, fh))
    }

    /// Reads up to `size` bytes at `off` through `fh` (which must be open for reading).
    /// The result is shorter at the end of the file and empty past it; holes read as zeros.
    /// The access time is updated as [`VfsOptions::atime_mode`] says, judged on the times
    /// the handle saw when it was opened and this client's own writes since (a change by
    /// another client counts from the next open).
    pub async fn read(&self, _ctx: &Context, fh: u64, off: u64, size: usize) -> Result<Bytes> {
        let h = self.file_handle(fh)?;
        if !h.access.read {
            return Err(VfsError::BadHandle);
        }
        if size == 0 {
            return Ok(Bytes::new());
        }
        let of = &h.file;
        if of.state.has_pending() {
            let mut w = of.writer.lock().await;
            if w.overlaps_pending(off, size as u64) {
                w.flush().await?;
            }
        }
        let reader = &self.inner.reader;
        // Readahead fills the block cache, so without one there is none.
        let window = if reader.has_cache() {
            self.inner.opts.readahead
        } else {
            0
        };
        let plan = h
            .readahead
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .advance(off, size, window);
        let data = reader.read(&of.state, off, size, plan.sequential).await?;
        if let Some((start, end)) = plan.prefetch {
            reader.read_ahead(&of.state, start, end);
        }
        // After the readahead has started, which the caller's next read may need.
        if let Some(seen) = &h.atime {
            self.touch_atime(h.ino, seen, of.state.written()).await;
        }
        Ok(data)
    }

    /// Writes `data` at `off` through `fh` (which must be open for writing; with
    /// `O_APPEND` the data goes to the current end instead). Returns the bytes written.
    /// The data is buffered: a failed upload shows up here or in the next
    /// [`flush`](Vfs::flush) / [`fsync`](Vfs::fsync) / [`release`](Vfs::release) of each
    /// handle of the file, once per handle. A write larger than half the buffer budget is
    /// buffered in pieces, between which other writers of this VFS may get a turn.
    pub async fn write(&self, ctx: &Context, fh: u64, off: u64, data: Bytes) -> Result<usize> {
        let h = self.file_handle(fh)?;
        if !h.access.write {
            return Err(VfsError::BadHandle);
        }
        let total = data.len();
        if total == 0 {
            return Ok(0);
        }
        if !h.access.append && exceeds_max(off, total) {
            return Err(VfsError::FileTooBig);
        }
        self.drop_privs_for_write(ctx, &h).await?;
        let of = &h.file;
        let budget = &self.inner.budget;
        // Large writes go in pieces so that one call never needs more than half the budget.
        let max_piece = (budget.total() / 2)
            .min(meta_api::CHUNK_SIZE as usize)
            .max(1);
        let mut rest = data;
        let mut pos = off;
        let mut first = true;
        while !rest.is_empty() {
            let piece = rest.split_to(rest.len().min(max_piece));
            let n = piece.len();
            // Reserved before taking the file's writer so that the flusher can still write
            // this very file back while we wait for memory.
            let res = budget.reserve(n).await?;
            let mut w = of.writer.lock().await;
            if first && h.access.append {
                pos = of.state.length();
                if exceeds_max(pos, total) {
                    return Err(VfsError::FileTooBig);
                }
            }
            first = false;
            let mut r = w.write(pos, piece, res).await;
            if r.is_ok() {
                r = w.commit_ready().await;
            }
            if let Err(e) = r {
                // Reported by this call, so this handle's next flush does not repeat it.
                h.seen_errors.store(w.error_seq(), Ordering::Release);
                return Err(e);
            }
            pos += n as u64;
        }
        if h.access.sync {
            self.flush_handle(&h).await?;
        }
        Ok(total)
    }

    /// Writes back the file of `h` and reports the write-back failures `h` has not reported.
    async fn flush_handle(&self, h: &FileHandle) -> Result<()> {
        let of = &h.file;
        let mut w = of.writer.lock().await;
        // A failure here is counted by the writer and reported just below.
        let _ = w.flush().await;
        let seq = w.error_seq();
        let seen = h.seen_errors.swap(seq, Ordering::AcqRel);
        w.error_since(seen)
    }

    /// Writes back everything buffered for the file of `fh` and reports any write-back
    /// failure since the last flush (called on every `close(2)` of a descriptor).
    pub async fn flush(&self, _ctx: &Context, fh: u64) -> Result<()> {
        let h = self.file_handle(fh)?;
        self.flush_handle(&h).await
    }

    /// Makes everything written to the file of `fh` durable: all blocks stored and all
    /// slices committed (the engine's commit is durable, so `datasync` changes nothing).
    pub async fn fsync(&self, _ctx: &Context, fh: u64, _datasync: bool) -> Result<()> {
        let h = self.file_handle(fh)?;
        self.flush_handle(&h).await
    }

    /// Closes `fh`: writes back its file's buffered data, then tells the engine (the last
    /// close of an unlinked file lets its data be deleted). The handle is gone even when
    /// an error is returned.
    pub async fn release(&self, _ctx: &Context, fh: u64) -> Result<()> {
        self.check_open()?;
        let h = self
            .inner
            .handles()
            .files
            .remove(&fh)
            .ok_or(VfsError::BadHandle)?;
        let flushed = self.flush_handle(&h).await;
        let closed = self.inner.meta.close(h.ino).await;
        self.inner.files.release(h.ino);
        flushed?;
        closed?;
        Ok(())
    }

    /// Allocates (`mode` 0 or `FALLOC_FL_KEEP_SIZE`), punches (`FALLOC_FL_PUNCH_HOLE |
    /// FALLOC_FL_KEEP_SIZE`) or zeroes (`FALLOC_FL_ZERO_RANGE`) `off..off+len` of the file
    /// of `fh`, which must be open for writing.
    pub async fn fallocate(
        &self,
        ctx: &Context,
        fh: u64,
        mode: u32,
        off: u64,
        len: u64,
    ) -> Result<()> {
        let h = self.file_handle(fh)?;
        if !h.access.write {
            return Err(VfsError::BadHandle);
        }
        if len == 0 {
            return Err(VfsError::InvalidArgument("fallocate of zero bytes"));
        }
        if off.checked_add(len).is_none_or(|end| end > MAX_FILE_SIZE) {
            return Err(VfsError::FileTooBig);
        }
        let of = &h.file;
        let mut w = of.writer.lock().await;
        w.flush().await?;
        self.inner
            .meta
            .fallocate(&as_opener(ctx), h.ino, FallocMode(mode), off, len)
            .await?;
        of.state.invalidate_all();
        let attr = self.inner.meta.getattr(h.ino).await?;
        of.state.set_length(attr.length);
        Ok(())
    }

    /// Copies `len` bytes from `fh_in@off_in` to `fh_out@off_out` by sharing the source's
    /// blocks (no data is copied). Returns the bytes copied, short at the source's end.
    /// `flags` must be 0; overlapping ranges of one file are `EINVAL`.
    #[allow(clippy::too_many_arguments)]
    pub async fn copy_file_range(
        &self,
        ctx: &Context,
        fh_in: u64,
        off_in: u64,
        fh_out: u64,
        off_out: u64,
        len: u64,
        flags: u32,
    ) -> Result<u64> {
        let hin = self.file_handle(fh_in)?;
        let hout = self.file_handle(fh_out)?;
        if flags != 0 {
            return Err(VfsError::InvalidArgument("copy_file_range flags must be 0"));
        }
        if !hin.access.read || !hout.access.write || hout.access.append {
            return Err(VfsError::BadHandle);
        }
        // Shortened to the source's end first, as Linux does, so that a generous `len`
        // is neither an overlap nor past the largest file.
        let len = len.min(hin.file.state.length().saturating_sub(off_in));
        if hin.ino == hout.ino
            && off_in < off_out.saturating_add(len)
            && off_out < off_in.saturating_add(len)
        {
            return Err(VfsError::InvalidArgument(
                "copy_file_range within one file with overlapping ranges",
            ));
        }
        if off_out
            .checked_add(len)
            .is_none_or(|end| end > MAX_FILE_SIZE)
        {
            return Err(VfsError::FileTooBig);
        }
        if len == 0 {
            return Ok(0);
        }
        self.drop_privs_for_write(ctx, &hout).await?;
        if hin.ino != hout.ino {
            let mut w = hin.file.writer.lock().await;
            w.flush().await?;
        }
        let of = &hout.file;
        let mut w = of.writer.lock().await;
        w.flush().await?;
        let n = self
            .inner
            .meta
            .copy_file_range(&as_opener(ctx), hin.ino, off_in, hout.ino, off_out, len)
            .await?;
        of.state.invalidate_all();
        if n > 0 {
            of.state.extend_length(off_out + n);
        }
        Ok(n)
    }

    // ----- directories -----

    /// Opens directory `ino` for listing (needs read permission).
    pub async fn opendir(&self, ctx: &Context, ino: Ino) -> Result<u64> {
        self.check_open()?;
        let attr = self.inner.meta.getattr(ino).await?;
        if !attr.is_dir() {
            return Err(MetaError::NotDir.into());
        }
        // Checked by the engine so that a POSIX ACL granting read is honoured.
        self.inner.meta.check_access(ctx, ino, access::R).await?;
        self.check_handle_room()?;
        // The root is its own parent; a directory without a recorded parent uses itself.
        let parent = if ino == ROOT_INO || attr.parent == 0 {
            ino
        } else {
            attr.parent
        };
        let d = Arc::new(DirHandle {
            ino,
            parent,
            listing: tokio::sync::Mutex::new(Listing::default()),
            atime: self.atime_tracker(&attr, false),
        });
        Ok(self.inner.handles().add_dir(d))
    }

    /// Lists up to `limit` entries of the directory open as `dh`, starting at `offset`
    /// (0 for the beginning, then the `offset` of the last item returned). `.` and `..`
    /// come first. Offsets stay valid for the handle's life: entries added or removed
    /// meanwhile never make a later call skip or repeat one; offset 0 starts a fresh listing.
    /// `plus` fills in attributes. Listing is an access of the directory (see
    /// [`VfsOptions::atime_mode`]).
    pub async fn readdir(
        &self,
        ctx: &Context,
        dh: u64,
        offset: u64,
        limit: usize,
        plus: bool,
    ) -> Result<Vec<DirItem>> {
        let d = self.dir_handle(dh)?;
        let mut l = d.listing.lock().await;
        if offset == 0 || !l.loaded {
            *l = Listing::default();
            for (name, ino) in [(&b"."[..], d.ino), (&b".."[..], d.parent)] {
                let offset = l.items.len() as u64 + 1;
                l.items.push(DirItem {
                    offset,
                    name: name.to_vec(),
                    ino,
                    typ: FileType::Directory,
                    attr: None,
                });
            }
            l.loaded = true;
        }
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let want = start.saturating_add(limit);
        while l.items.len() < want && !l.done {
            let page_size = (want - l.items.len()).max(READDIR_PAGE);
            let after = if l.items.len() > 2 {
                l.items.last().map(|i| i.name.clone())
            } else {
                None
            };
            let page = self
                .inner
                .meta
                .readdir(ctx, d.ino, after.as_deref(), page_size, plus)
                .await?;
            if page.len() < page_size {
                l.done = true;
            }
            for DirEntry {
                name,
                ino,
                typ,
                attr,
            } in page
            {
                let offset = l.items.len() as u64 + 1;
                l.items.push(DirItem {
                    offset,
                    name,
                    ino,
                    typ,
                    attr,
                });
            }
        }
        let start = start.min(l.items.len());
        let end = want.min(l.items.len());
        let mut out = l.items[start..end].to_vec();
        drop(l);
        if plus {
            for item in &mut out {
                if item.attr.is_none() {
                    match self.inner.meta.getattr(item.ino).await {
                        Ok(a) => item.attr = Some(a),
                        // Removed since it was listed: the entry stays, without attributes.
                        Err(MetaError::NotFound) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                if let Some(a) = &mut item.attr {
                    self.patch_attr(item.ino, a);
                }
            }
        }
        if let Some(seen) = &d.atime {
            self.touch_atime(d.ino, seen, Timestamp::default()).await;
        }
        Ok(out)
    }

    /// Makes a directory's changes durable: every metadata operation is already a committed
    /// transaction, so this only checks the handle.
    pub async fn fsyncdir(&self, _ctx: &Context, dh: u64, _datasync: bool) -> Result<()> {
        self.dir_handle(dh).map(|_| ())
    }

    /// Closes a directory handle.
    pub async fn releasedir(&self, _ctx: &Context, dh: u64) -> Result<()> {
        self.check_open()?;
        self.inner
            .handles()
            .dirs
            .remove(&dh)
            .map(|_| ())
            .ok_or(VfsError::BadHandle)
    }

    // ----- extended attributes -----

    /// The value of extended attribute `name` of `ino` (`ENODATA` if missing). Names are
    /// 1 to 255 bytes; others are `ERANGE`, as Linux's xattr calls answer.
    pub async fn getxattr(&self, _ctx: &Context, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        self.check_open()?;
        check_xattr_name(name)?;
        Ok(self.inner.meta.getxattr(ino, name).await?)
    }

    /// Sets extended attribute `name`; `flags` are `XATTR_CREATE` / `XATTR_REPLACE`.
    /// Names are 1 to 255 bytes (`ERANGE` otherwise), values at most 64 KiB (`E2BIG`).
    pub async fn setxattr(
        &self,
        ctx: &Context,
        ino: Ino,
        name: &[u8],
        value: &[u8],
        flags: u32,
    ) -> Result<()> {
        self.check_open()?;
        check_xattr_name(name)?;
        if value.len() > MAX_XATTR_VALUE_LEN {
            return Err(VfsError::ValueTooLarge);
        }
        Ok(self
            .inner
            .meta
            .setxattr(ctx, ino, name, value, flags)
            .await?)
    }

    /// The names of the extended attributes of `ino`.
    pub async fn listxattr(&self, _ctx: &Context, ino: Ino) -> Result<Vec<Vec<u8>>> {
        self.check_open()?;
        Ok(self.inner.meta.listxattr(ino).await?)
    }

    /// Removes extended attribute `name` (`ENODATA` if missing, `ERANGE` for a name that
    /// cannot be one).
    pub async fn removexattr(&self, ctx: &Context, ino: Ino, name: &[u8]) -> Result<()> {
        self.check_open()?;
        check_xattr_name(name)?;
        Ok(self.inner.meta.removexattr(ctx, ino, name).await?)
    }

    // ----- whole-VFS operations -----

    /// Writes back the buffered data of every open file; returns the first failure.
    pub async fn flush_all(&self) -> Result<()> {
        self.check_open()?;
        self.flush_everything().await
    }

    async fn flush_everything(&self) -> Result<()> {
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

    /// Wakes the background purge job without waiting for it.
    pub fn request_purge(&self) {
        self.inner.purge_now.notify_one();
    }

    /// Shuts the VFS down: writes back all buffered data, closes every handle, stops the
    /// background jobs, in writeback mode waits (at most
    /// [`VfsOptions::upload_wait_on_close`]) for staged blocks to be uploaded, and ends the
    /// session. Returns the first failure; the VFS is closed either way and every later
    /// call fails with [`VfsError::Closed`]. The cache directories stay in use until the
    /// last clone of the VFS is dropped.
    pub async fn close(&self) -> Result<()> {
        // New calls are refused from here on; what is buffered is written back below.
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let mut first = self.flush_everything().await;
        let handles = std::mem::take(&mut *self.inner.handles());
        for (_, h) in handles.files {
            let r = self.inner.meta.close(h.ino).await;
            if first.is_ok() {
                first = r.map_err(VfsError::from);
            }
        }
        self.inner.files.clear();
        self.inner.shutdown.send_replace(true);
        let tasks =
            std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for t in tasks {
            if let Err(e) = t.await {
                tracing::debug!(error = %e, "a background job ended abnormally");
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
        first
    }
}

/// Validates `open(2)` flags and tells what the handle may do.
fn check_open_flags(flags: i32) -> Result<Access> {
    if flags & !VALID_OPEN_FLAGS != 0 {
        return Err(VfsError::InvalidArgument("unknown open flags"));
    }
    let (read, write) = match flags & libc::O_ACCMODE {
        libc::O_RDONLY => (true, false),
        libc::O_WRONLY => (false, true),
        libc::O_RDWR => (true, true),
        _ => return Err(VfsError::InvalidArgument("invalid access mode")),
    };
    Ok(Access {
        read,
        write,
        append: flags & libc::O_APPEND != 0,
        sync: flags & (libc::O_SYNC | libc::O_DSYNC) != 0,
    })
}

/// Checks an extended attribute's name the way Linux's xattr system calls do: an empty
/// or over-long name is `ERANGE`.
fn check_xattr_name(name: &[u8]) -> Result<()> {
    if name.is_empty() || name.len() > MAX_XATTR_NAME_LEN {
        return Err(MetaError::Range.into());
    }
    Ok(())
}

/// Whether a read now should update the access time, under `mode`, of an inode whose
/// times are `seen` (Linux's `relatime` rule: when the access time is not after the
/// modification or change time, or is a day old).
fn atime_due(mode: AtimeMode, seen: &SeenTimes, now: Timestamp) -> bool {
    const DAY_SECS: i64 = 24 * 60 * 60;
    if now <= seen.atime {
        return false;
    }
    match mode {
        AtimeMode::NoAtime => false,
        AtimeMode::StrictAtime => true,
        _ => {
            seen.atime <= seen.mtime
                || seen.atime <= seen.ctime
                || now.sec.saturating_sub(seen.atime.sec) >= DAY_SECS
        }
    }
}

/// Whether permission bits `mode` hold what a write by a non-root caller drops: setuid,
/// or setgid with group execute.
fn has_exec_privs(mode: u16) -> bool {
    mode & 0o4000 != 0 || mode & 0o2010 == 0o2010
}

/// The permission bits of a mode (type bits dropped).
fn perm_bits(mode: u32) -> u16 {
    // Masked to 12 bits, so it fits.
    (mode & 0o7777) as u16
}

/// Whether `len` bytes at `off` would pass the largest file size.
fn exceeds_max(off: u64, len: usize) -> bool {
    off.checked_add(len as u64)
        .is_none_or(|end| end > MAX_FILE_SIZE)
}

/// The context for operations on a file already opened by `ctx`: access was checked at
/// open time, as `ftruncate(2)` and friends rely on.
fn as_opener(ctx: &Context) -> Context {
    Context {
        uid: 0,
        gid: 0,
        ..ctx.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_flags() {
        let a = check_open_flags(libc::O_RDWR | libc::O_APPEND | libc::O_CLOEXEC).unwrap();
        assert!(a.read && a.write && a.append && !a.sync);
        let a = check_open_flags(libc::O_WRONLY | libc::O_DSYNC).unwrap();
        assert!(!a.read && a.write && a.sync);
        assert!(check_open_flags(libc::O_RDONLY | KERNEL_O_LARGEFILE).is_ok());
        assert_eq!(check_open_flags(3).unwrap_err().errno(), libc::EINVAL);
        assert_eq!(
            check_open_flags(libc::O_PATH).unwrap_err().errno(),
            libc::EINVAL
        );
        assert_eq!(check_open_flags(1 << 30).unwrap_err().errno(), libc::EINVAL);
    }

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

    #[test]
    fn relatime_rule() {
        let t = |sec| Timestamp::new(sec, 0);
        let seen = |a, m, c| SeenTimes {
            atime: t(a),
            mtime: t(m),
            ctime: t(c),
        };
        let day = 24 * 60 * 60;
        let rel = AtimeMode::RelAtime;
        assert!(
            atime_due(rel, &seen(10, 10, 5), t(20)),
            "atime not after mtime"
        );
        assert!(
            atime_due(rel, &seen(10, 5, 12), t(20)),
            "atime before ctime"
        );
        assert!(
            !atime_due(rel, &seen(10, 5, 5), t(20)),
            "recent and after both"
        );
        assert!(!atime_due(rel, &seen(10, 5, 5), t(10 + day - 1)));
        assert!(atime_due(rel, &seen(10, 5, 5), t(10 + day)), "a day old");
        assert!(
            !atime_due(rel, &seen(30, 40, 40), t(30)),
            "never to the same time"
        );
        assert!(!atime_due(rel, &seen(30, 40, 40), t(20)), "never backwards");
        assert!(atime_due(AtimeMode::StrictAtime, &seen(10, 5, 5), t(11)));
        assert!(!atime_due(AtimeMode::NoAtime, &seen(10, 50, 50), t(100)));
        assert!(has_exec_privs(0o4644) && has_exec_privs(0o2070) && has_exec_privs(0o6755));
        assert!(!has_exec_privs(0o2644) && !has_exec_privs(0o1777) && !has_exec_privs(0o755));
    }

    #[test]
    fn size_limits() {
        assert!(!exceeds_max(MAX_FILE_SIZE - 1, 1));
        assert!(exceeds_max(MAX_FILE_SIZE, 1));
        assert!(exceeds_max(u64::MAX, 1));
    }
}
