//! [`FileSystem`]: the path-level async API, shaped like `tokio::fs`.
//!
//! Paths are absolute or relative to the volume root (both mean the same) and are bytes:
//! on Unix any `OsStr` works, UTF-8 or not. They are resolved component by component as
//! the caller's [`Context`], following symbolic links (absolute targets from the volume
//! root, relative ones from the link's directory) up to 40 of them (`ELOOP`); a file used
//! as a directory is `ENOTDIR`; a component over 255 bytes or a path over 4096 bytes is
//! `ENAMETOOLONG`; `..` at the root stays at the root. Errors are [`std::io::Error`]s made
//! from [`VfsError`](crate::VfsError), so `raw_os_error()` is the errno a kernel would give.

mod dir;
mod file;
mod metadata;
mod resolve;

use std::future::Future;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use meta_api::{Context, FileType as Kind, MetaError, SetAttr, StatFs, ROOT_INO};

pub use dir::{DirEntry, ReadDir};
pub use file::{File, OpenOptions};
pub use metadata::{FileType, Metadata, Permissions};

use resolve::{meta_err, walk, Last};

use crate::{Vfs, VfsError};

/// Bytes moved per VFS call by whole-file helpers ([`FileSystem::read`],
/// [`FileSystem::write`], the copy fallback).
const IO_PIECE: usize = 8 << 20;

/// Runs the closing of a dropped handle on the current tokio runtime; without one, the
/// handle stays open until [`Vfs::close`].
pub(crate) fn release_in_background(fut: impl Future<Output = io::Result<()>> + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            rt.spawn(async move {
                if let Err(e) = fut.await {
                    let closed = e
                        .get_ref()
                        .and_then(|inner| inner.downcast_ref::<VfsError>())
                        .is_some_and(|v| matches!(v, VfsError::Closed));
                    if closed {
                        // Vfs::close released every handle: nothing is left to close.
                        tracing::debug!("a dropped handle outlived its file system");
                    } else {
                        tracing::warn!(error = %e, "closing a dropped handle failed");
                    }
                }
            });
        }
        Err(_) => {
            tracing::debug!("no tokio runtime: a dropped handle stays open until Vfs::close")
        }
    }
}

/// The error of an operation on a path that names no entry of a directory (`/`, `a/.`,
/// `a/..`).
fn no_entry_name() -> MetaError {
    MetaError::InvalidArgument("the path names no directory entry (/, . or ..)")
}

/// The path-level filesystem of a volume: `tokio::fs` in shape, a [`Vfs`] underneath.
///
/// Cheap to clone: clones share the VFS. Every call runs as the instance's [`Context`]
/// (root by default); [`FileSystem::with_context`] gives a view acting as someone else.
///
/// ```
/// # use std::sync::Arc;
/// # use meta_api::{testkit::model::ModelEngine, Format, MetaEngine};
/// use vfs_core::{FileSystem, Vfs, VfsOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// # let meta = ModelEngine::unformatted();
/// # let format = Format::new("demo", "00000000-0000-4000-8000-000000000000", "mem", "");
/// # meta.init(&format, false).await.map_err(std::io::Error::from)?;
/// # let store = Arc::new(chunkstore::MemStore::new());
/// let vfs = Vfs::new(Arc::new(meta), store, format, VfsOptions::default()).await?;
/// let fs = FileSystem::new(vfs);
/// fs.create_dir_all("/docs/2024").await?;
/// fs.write("/docs/2024/note.txt", b"hello").await?;
/// assert_eq!(fs.read_to_string("docs/2024/note.txt").await?, "hello");
/// fs.rename("/docs/2024", "/docs/archive").await?;
/// assert!(fs.metadata("/docs/archive/note.txt").await?.is_file());
/// fs.remove_dir_all("/docs").await?;
/// assert!(!fs.try_exists("/docs").await?);
/// fs.close().await
/// # }
/// ```
#[derive(Clone)]
pub struct FileSystem {
    vfs: Vfs,
    ctx: Arc<Context>,
}

impl std::fmt::Debug for FileSystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSystem")
            .field("vfs", &self.vfs)
            .field("uid", &self.ctx.uid)
            .field("gid", &self.ctx.gid)
            .finish()
    }
}

impl FileSystem {
    /// The path-level API of `vfs`, acting as root.
    pub fn new(vfs: Vfs) -> FileSystem {
        FileSystem {
            vfs,
            ctx: Arc::new(Context::root()),
        }
    }

    /// A view of the same volume acting as `ctx` (its uid, groups and umask).
    pub fn with_context(&self, ctx: Context) -> FileSystem {
        FileSystem {
            vfs: self.vfs.clone(),
            ctx: Arc::new(ctx),
        }
    }

    /// Who the calls run as.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    pub(crate) fn shared_context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// The inode-level VFS underneath.
    pub fn vfs(&self) -> &Vfs {
        &self.vfs
    }

    /// Closes the volume (see [`Vfs::close`]): writes back buffered data and ends the
    /// session. Every clone is closed with it.
    pub async fn close(&self) -> io::Result<()> {
        Ok(self.vfs.close().await?)
    }

    /// Volume usage.
    pub async fn statfs(&self) -> io::Result<StatFs> {
        Ok(self.vfs.statfs(&self.ctx, ROOT_INO).await?)
    }

    /// Options for opening a file.
    pub fn open_options(&self) -> OpenOptions {
        OpenOptions::new(self.clone())
    }

    /// Opens an existing file for reading.
    pub async fn open(&self, path: impl AsRef<Path>) -> io::Result<File> {
        File::open(self, path).await
    }

    /// Opens a file for writing, creating or emptying it.
    pub async fn create(&self, path: impl AsRef<Path>) -> io::Result<File> {
        File::create(self, path).await
    }

    async fn walk(&self, path: &Path, last: Last) -> io::Result<resolve::Walked> {
        walk(&self.vfs, &self.ctx, path, last).await
    }

    /// Creates a directory (mode `0o777` less the umask); `AlreadyExists` if the name is
    /// taken, `NotFound` if the parent is missing.
    pub async fn create_dir(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let w = self.walk(path.as_ref(), Last::Parent).await?;
        let (parent, name) = w.parent_and_name(MetaError::Exists)?;
        self.vfs.mkdir(&self.ctx, parent, name, 0o777).await?;
        Ok(())
    }

    /// Creates a directory and all missing parents; fine if it exists already as a
    /// directory (`AlreadyExists` if something else has the name).
    pub async fn create_dir_all(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let w = self.walk(path.as_ref(), Last::CreateDirs).await?;
        match w.entry {
            Some(e) if e.attr.typ == Kind::Directory => Ok(()),
            _ => Err(meta_err(MetaError::Exists)),
        }
    }

    /// The attributes of what `path` names, following symbolic links.
    pub async fn metadata(&self, path: impl AsRef<Path>) -> io::Result<Metadata> {
        let e = self.walk(path.as_ref(), Last::Follow).await?.existing()?;
        Ok(Metadata::new(e.ino, e.attr))
    }

    /// The attributes of what `path` names; a symbolic link is described itself.
    pub async fn symlink_metadata(&self, path: impl AsRef<Path>) -> io::Result<Metadata> {
        let e = self.walk(path.as_ref(), Last::NoFollow).await?.existing()?;
        Ok(Metadata::new(e.ino, e.attr))
    }

    /// Whether `path` names something (following symbolic links): `Ok(false)` only when it
    /// does not exist; other failures (permissions, `ENOTDIR`, …) are errors.
    pub async fn try_exists(&self, path: impl AsRef<Path>) -> io::Result<bool> {
        match self.metadata(path).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether `path` names something; any error counts as "no".
    pub async fn exists(&self, path: impl AsRef<Path>) -> bool {
        self.try_exists(path).await.unwrap_or(false)
    }

    /// The whole contents of a file.
    pub async fn read(&self, path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
        let file = self.open(path).await?;
        let result = read_all(&file).await;
        let closed = file.close().await;
        let data = result?;
        closed?;
        Ok(data)
    }

    /// The whole contents of a file as UTF-8 (`InvalidData` if it is not).
    pub async fn read_to_string(&self, path: impl AsRef<Path>) -> io::Result<String> {
        String::from_utf8(self.read(path).await?)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Makes `contents` the whole contents of a file, creating it if needed; returns once
    /// the data is committed (visible to every client).
    pub async fn write(
        &self,
        path: impl AsRef<Path>,
        contents: impl AsRef<[u8]>,
    ) -> io::Result<()> {
        let file = self.create(path).await?;
        let mut result = Ok(());
        let contents = contents.as_ref();
        let mut off = 0usize;
        while off < contents.len() && result.is_ok() {
            let end = contents.len().min(off + IO_PIECE);
            let piece = Bytes::copy_from_slice(&contents[off..end]);
            result = file.write_bytes_at(piece, off as u64).await.map(|_| ());
            off = end;
        }
        let closed = file.close().await;
        result?;
        closed
    }

    /// A listing of the directory at `path` (entries fetch their attributes on demand).
    pub async fn read_dir(&self, path: impl AsRef<Path>) -> io::Result<ReadDir> {
        self.open_dir(path.as_ref(), false).await
    }

    /// A listing of the directory at `path` that brings every entry's attributes along
    /// (`readdirplus`): [`DirEntry::metadata`] then needs no further call.
    pub async fn read_dir_plus(&self, path: impl AsRef<Path>) -> io::Result<ReadDir> {
        self.open_dir(path.as_ref(), true).await
    }

    async fn open_dir(&self, path: &Path, plus: bool) -> io::Result<ReadDir> {
        let e = self.walk(path, Last::Follow).await?.existing()?;
        ReadDir::open(&self.vfs, &self.ctx, e.ino, path.to_path_buf(), plus).await
    }

    /// Renames `from` to `to`, replacing `to` if it is a file or an empty directory (as
    /// `rename(2)`); symbolic links are renamed, not followed.
    pub async fn rename(&self, from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<()> {
        let src = self.walk(from.as_ref(), Last::Parent).await?;
        let dst = self.walk(to.as_ref(), Last::Parent).await?;
        let (sp, sn) = src.parent_and_name(no_entry_name())?;
        let (dp, dn) = dst.parent_and_name(no_entry_name())?;
        self.vfs.rename(&self.ctx, sp, sn, dp, dn, 0).await?;
        Ok(())
    }

    /// Removes a file or symbolic link (a directory is `EISDIR`).
    pub async fn remove_file(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let w = self.walk(path.as_ref(), Last::Parent).await?;
        let (parent, name) = w.parent_and_name(MetaError::IsDir)?;
        if w.must_be_dir {
            // `unlink("x/")`: a directory cannot be unlinked, anything else is no directory.
            let e = self.vfs.lookup(&self.ctx, parent, name).await?;
            let err = if e.attr.is_dir() {
                MetaError::IsDir
            } else {
                MetaError::NotDir
            };
            return Err(meta_err(err));
        }
        self.vfs.unlink(&self.ctx, parent, name).await?;
        Ok(())
    }

    /// Removes an empty directory.
    pub async fn remove_dir(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let w = self.walk(path.as_ref(), Last::Parent).await?;
        let (parent, name) = w.parent_and_name(no_entry_name())?;
        self.vfs.rmdir(&self.ctx, parent, name).await?;
        Ok(())
    }

    /// Removes a directory and everything in it. A symbolic link is removed itself, never
    /// followed; a file is `ENOTDIR`. The tree is removed inside the engine, a page of
    /// names per transaction where the engine batches them ([`Vfs::remove_tree`]); memory
    /// follows the tree's depth, not its size.
    pub async fn remove_dir_all(&self, path: impl AsRef<Path>) -> io::Result<()> {
        self.remove_dir_all_with(path, &crate::upkeep::Progress::default())
            .await
            .map(|_| ())
    }

    /// [`FileSystem::remove_dir_all`] counting the entries removed in `progress`; returns
    /// what was removed.
    pub async fn remove_dir_all_with(
        &self,
        path: impl AsRef<Path>,
        progress: &crate::upkeep::Progress,
    ) -> io::Result<meta_api::tree::RemovedTree> {
        let w = self.walk(path.as_ref(), Last::Parent).await?;
        let (parent, name) = w.parent_and_name(no_entry_name())?;
        let top = self.vfs.lookup(&self.ctx, parent, name).await?;
        if !matches!(top.attr.typ, Kind::Directory | Kind::Symlink) {
            return Err(meta_err(MetaError::NotDir));
        }
        Ok(self
            .vfs
            .remove_tree(&self.ctx, parent, name, progress)
            .await?)
    }

    /// Copies the contents and permission bits of file `from` to `to` (created or
    /// emptied) and returns the bytes copied. Blocks are shared, not copied
    /// ([`Vfs::copy_file_range`]) where the volume allows it.
    pub async fn copy(&self, from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<u64> {
        let src_meta = self.metadata(from.as_ref()).await?;
        if !src_meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the source path is not an existing regular file",
            ));
        }
        if let Ok(dst_meta) = self.metadata(to.as_ref()).await {
            if dst_meta.ino() == src_meta.ino() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "source and destination are the same file",
                ));
            }
        }
        let src = self.open(from).await?;
        let dst = self
            .open_options()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(src_meta.permissions().mode())
            .open(to)
            .await?;
        let copied = copy_contents(&self.vfs, &self.ctx, &src, &dst, src_meta.len()).await;
        let perms = match &copied {
            Ok(_) => dst.set_permissions(src_meta.permissions()).await,
            Err(_) => Ok(()),
        };
        let closed_src = src.close().await;
        let closed_dst = dst.close().await;
        let n = copied?;
        perms?;
        closed_dst?;
        closed_src?;
        Ok(n)
    }

    /// Clones `from` (a file, or a directory and everything in it) as `to` in metadata
    /// only (`juicefs clone`): the clone shares the source's blocks, no data is copied,
    /// and a directory appears whole or not at all ([`Vfs::clone_tree`]). The caller owns
    /// the clone, with its umask and times of now; a symbolic link is cloned itself.
    pub async fn clone_tree(
        &self,
        from: impl AsRef<Path>,
        to: impl AsRef<Path>,
    ) -> io::Result<meta_api::clone::Cloned> {
        self.clone_tree_with(
            from,
            to,
            meta_api::clone::CloneOptions::default(),
            &crate::upkeep::Progress::default(),
        )
        .await
    }

    /// [`FileSystem::clone_tree`] with options (`preserve` keeps the mode, times and, for
    /// root, the owner) and `progress` counting the entries cloned.
    pub async fn clone_tree_with(
        &self,
        from: impl AsRef<Path>,
        to: impl AsRef<Path>,
        opts: meta_api::clone::CloneOptions,
        progress: &crate::upkeep::Progress,
    ) -> io::Result<meta_api::clone::Cloned> {
        let src = self.walk(from.as_ref(), Last::NoFollow).await?.existing()?;
        let w = self.walk(to.as_ref(), Last::Parent).await?;
        let (parent, name) = w.parent_and_name(MetaError::Exists)?;
        Ok(self
            .vfs
            .clone_tree(&self.ctx, src.ino, (parent, name), opts, progress)
            .await?)
    }

    /// Makes `link` another name of what `original` names (a symbolic link is linked
    /// itself, as `link(2)` on Linux does).
    pub async fn hard_link(
        &self,
        original: impl AsRef<Path>,
        link: impl AsRef<Path>,
    ) -> io::Result<()> {
        let e = self
            .walk(original.as_ref(), Last::NoFollow)
            .await?
            .existing()?;
        let w = self.walk(link.as_ref(), Last::Parent).await?;
        let (parent, name) = w.parent_and_name(MetaError::Exists)?;
        self.vfs.link(&self.ctx, e.ino, parent, name).await?;
        Ok(())
    }

    /// Creates a symbolic link at `link` whose target is `original`, stored as given
    /// (relative targets resolve from the link's directory when followed).
    pub async fn symlink(
        &self,
        original: impl AsRef<Path>,
        link: impl AsRef<Path>,
    ) -> io::Result<()> {
        let target = original.as_ref().as_os_str().as_bytes();
        let w = self.walk(link.as_ref(), Last::Parent).await?;
        let (parent, name) = w.parent_and_name(MetaError::Exists)?;
        self.vfs.symlink(&self.ctx, parent, name, target).await?;
        Ok(())
    }

    /// The target of the symbolic link at `path` (`EINVAL` if it is not one).
    pub async fn read_link(&self, path: impl AsRef<Path>) -> io::Result<PathBuf> {
        let e = self.walk(path.as_ref(), Last::NoFollow).await?.existing()?;
        if e.attr.typ != Kind::Symlink {
            return Err(meta_err(MetaError::InvalidArgument("not a symbolic link")));
        }
        let target = self.vfs.readlink(&self.ctx, e.ino).await?;
        Ok(PathBuf::from(std::ffi::OsString::from_vec(target)))
    }

    /// The absolute volume path of what `path` names, with every symbolic link, `.` and
    /// `..` resolved (it must exist).
    pub async fn canonicalize(&self, path: impl AsRef<Path>) -> io::Result<PathBuf> {
        let w = self.walk(path.as_ref(), Last::Follow).await?;
        if w.entry.is_none() {
            return Err(meta_err(MetaError::NotFound));
        }
        Ok(w.physical_path())
    }

    /// Changes the permission bits of what `path` names (following symbolic links).
    pub async fn set_permissions(
        &self,
        path: impl AsRef<Path>,
        perm: Permissions,
    ) -> io::Result<()> {
        self.setattr(path.as_ref(), SetAttr::new().mode(file::perm_bits(perm)))
            .await
    }

    /// Sets the access and modification times of what `path` names (following symbolic
    /// links); `None` leaves a time as it is.
    pub async fn set_times(
        &self,
        path: impl AsRef<Path>,
        accessed: Option<SystemTime>,
        modified: Option<SystemTime>,
    ) -> io::Result<()> {
        self.setattr(path.as_ref(), file::times(accessed, modified)?)
            .await
    }

    /// Changes the owner and/or group of what `path` names (following symbolic links).
    pub async fn set_owner(
        &self,
        path: impl AsRef<Path>,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> io::Result<()> {
        let mut set = SetAttr::new();
        if let Some(uid) = uid {
            set = set.uid(uid);
        }
        if let Some(gid) = gid {
            set = set.gid(gid);
        }
        self.setattr(path.as_ref(), set).await
    }

    async fn setattr(&self, path: &Path, set: SetAttr) -> io::Result<()> {
        let e = self.walk(path, Last::Follow).await?.existing()?;
        self.vfs.setattr(&self.ctx, e.ino, &set).await?;
        Ok(())
    }
}

/// Reads a file from its start to its end.
async fn read_all(file: &File) -> io::Result<Vec<u8>> {
    let len = file.metadata().await?.len();
    let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0).min(64 << 20));
    loop {
        let piece = file.read_bytes_at(out.len() as u64, IO_PIECE).await?;
        if piece.is_empty() {
            return Ok(out);
        }
        out.extend_from_slice(&piece);
    }
}

/// Copies `len` bytes of `src` to the start of `dst`: by sharing blocks, or by reading
/// and writing where the volume cannot share them.
async fn copy_contents(
    vfs: &Vfs,
    ctx: &Context,
    src: &File,
    dst: &File,
    len: u64,
) -> io::Result<u64> {
    let mut off = 0u64;
    while off < len {
        let shared = vfs
            .copy_file_range(
                ctx,
                src.raw_handle(),
                off,
                dst.raw_handle(),
                off,
                len - off,
                0,
            )
            .await;
        match shared {
            Ok(0) => break,
            Ok(n) => off += n,
            Err(e) if cannot_share(&e) => return copy_by_reading(src, dst, off).await,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(off)
}

/// Whether a `copy_file_range` failure means "copy the bytes instead".
fn cannot_share(e: &VfsError) -> bool {
    matches!(e, VfsError::NotSupported(_))
        || e.as_meta()
            .is_some_and(|m| matches!(m, MetaError::NotSupported(_) | MetaError::CrossDevice))
}

/// Copies `src` from `off` to its end into `dst` at the same offsets.
async fn copy_by_reading(src: &File, dst: &File, mut off: u64) -> io::Result<u64> {
    loop {
        let piece = src.read_bytes_at(off, IO_PIECE).await?;
        if piece.is_empty() {
            return Ok(off);
        }
        let n = piece.len() as u64;
        dst.write_bytes_at(piece, off).await?;
        off += n;
    }
}
