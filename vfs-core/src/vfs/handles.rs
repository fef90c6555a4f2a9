//! The handle table: opening and closing files and directories, the open flags a handle
//! was opened with, and looking handles up by number.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};

use meta_api::{access, Attr, Context, FileType, Ino, MetaError, ROOT_INO};

use super::attrs::SeenTimes;
use super::dirs::Listing;
use super::Vfs;
use crate::open_files::OpenFile;
use crate::readahead::ReadaheadWindow;
use crate::{Result, VfsError};

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

/// How a file handle was opened.
#[derive(Debug, Clone, Copy)]
pub(super) struct Access {
    pub(super) read: bool,
    pub(super) write: bool,
    pub(super) append: bool,
    pub(super) sync: bool,
}

/// An open file handle.
pub(super) struct FileHandle {
    pub(super) ino: Ino,
    pub(super) file: Arc<OpenFile>,
    pub(super) access: Access,
    /// Where this handle read last and how far ahead of it blocks were asked for.
    pub(super) readahead: Mutex<ReadaheadWindow>,
    /// The file's write-back failure count this handle has reported.
    pub(super) seen_errors: AtomicU64,
    /// The permission bits when the handle was opened.
    pub(super) mode: u16,
    /// Whether a write by a non-root caller has dropped setuid/setgid through this handle.
    pub(super) privs_dropped: AtomicBool,
    /// The times to decide access-time updates on; `None` when reads never update it.
    pub(super) atime: Option<Mutex<SeenTimes>>,
    /// [`CachedMeta::sessions_lost`](crate::meta_cache::CachedMeta::sessions_lost) when it
    /// was opened: once the session is found reaped, the handle fails with `SessionLost`.
    pub(super) session: u64,
}

/// An open directory handle.
pub(super) struct DirHandle {
    pub(super) ino: Ino,
    pub(super) parent: Ino,
    pub(super) listing: tokio::sync::Mutex<Listing>,
    pub(super) atime: Option<Mutex<SeenTimes>>,
}

/// The handles open in a VFS, by number.
#[derive(Default)]
pub(super) struct Handles {
    next: u64,
    pub(super) files: HashMap<u64, Arc<FileHandle>>,
    pub(super) dirs: HashMap<u64, Arc<DirHandle>>,
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

impl Vfs {
    /// The file handle numbered `fh` (`EBADF` if there is none).
    pub(super) fn file_handle(&self, fh: u64) -> Result<Arc<FileHandle>> {
        self.check_open()?;
        let h = self
            .inner
            .handles()
            .files
            .get(&fh)
            .cloned()
            .ok_or(VfsError::BadHandle)?;
        if h.session != self.inner.cached.sessions_lost() {
            return Err(MetaError::SessionLost.into());
        }
        Ok(h)
    }

    /// The directory handle numbered `dh` (`EBADF` if there is none).
    pub(super) fn dir_handle(&self, dh: u64) -> Result<Arc<DirHandle>> {
        self.check_open()?;
        self.inner
            .handles()
            .dirs
            .get(&dh)
            .cloned()
            .ok_or(VfsError::BadHandle)
    }

    /// Fails with `EMFILE` when the handle table is full.
    pub(super) fn check_handle_room(&self) -> Result<()> {
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
    pub(super) async fn finish_open(
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
        let session = self.inner.cached.sessions_lost();
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
            session,
        });
        Ok(self.inner.handles().add_file(handle))
    }

    /// Undoes the engine's record of an open that failed here.
    pub(super) async fn close_quietly(&self, ino: Ino) {
        if let Err(e) = self.inner.meta.close(ino).await {
            tracing::debug!(ino, error = %e, "undoing an open failed");
        }
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
        // What a handle from before a session loss wrote is not written back here: the
        // file it was opened on may be gone, or another file by now (a restore).
        let flushed = if h.session == self.inner.cached.sessions_lost() {
            self.flush_handle(&h).await
        } else {
            Err(MetaError::SessionLost.into())
        };
        let closed = self.inner.meta.close(h.ino).await;
        self.inner.files.release(h.ino);
        flushed?;
        closed?;
        Ok(())
    }

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
}

/// Validates `open(2)` flags and tells what the handle may do.
pub(super) fn check_open_flags(flags: i32) -> Result<Access> {
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
}
