//! A FUSE frontend for a volume: a thin adapter from [`fuser`] onto [`vfs_core::Vfs`].
//!
//! Every kernel request becomes one call of the matching `Vfs` method. Requests that
//! change no metadata and seldom wait (lookups, attributes, opens and closes, reads,
//! listings, xattr reads, lock queries) are first polled once on the FUSE thread that
//! decoded them, and answered at once when the call completes without waiting (an engine
//! that runs in place, such as SQLite, or data in the block cache): a hand-over to another
//! thread and back costs more than such a call. A call that would wait, and every change,
//! runs as a task on a tokio runtime that answers the kernel when the call completes, so a
//! slow upload or a lock wait never holds up other requests, and changes from several
//! processes run at once. Errors answer with [`vfs_core::VfsError::errno`]. The adapter keeps no file
//! system state: inode numbers are the volume's (root = 1), file and directory handles
//! are the `Vfs`'s, directory offsets are the ones [`Vfs::readdir`] hands out, and file
//! locks are the engine's ([`meta_api::MetaEngine::flock`], `setlk`, `getlk`), shared
//! with every client of the volume. It only remembers which inodes had POSIX locks taken
//! through it, so that other closes skip the unlock.
//!
//! **POSIX ACLs** (`system.posix_acl_*` attributes) go to the engine like any xattr: on a
//! volume formatted with ACLs the engine stores and enforces them (this adapter passes every
//! permission decision to the `Vfs`); on other volumes it answers `ENOTSUP`, so tools such
//! as `cp -a` fall back to `chmod`.
//!
//! **What the kernel is not offered.** Both lock kinds at once (see [`LockKind`]);
//! interrupting a request: `fuser` 0.18 does not pass `FUSE_INTERRUPT` on, so a process
//! waiting for a blocking lock waits until it gets it.
//!
//! **Consistency between mounts.** The kernel caches names of files for
//! [`FuseOptions::entry_ttl`], names of directories for [`FuseOptions::dir_entry_ttl`] and
//! attributes for [`FuseOptions::attr_ttl`]. With the default file entry TTL of 0 the last
//! component of every path lookup reaches the volume, which refreshes the attributes the
//! kernel holds, and every `open` drops the kernel's page cache of the file: a file opened
//! after another client closed it shows that client's data and length (close-to-open), as
//! with NFS, also when the other client replaced it by a rename. Directories are cached
//! for 1 s by default, as juicefs does (`--dir-entry-cache`): a directory another client
//! renamed or removed can still be walked through on this mount for up to that long.
//!
//! [`daemon`] runs a mount (foreground or background, clean unmount on SIGINT/SIGTERM);
//! the `tessera mount` and `tessera umount` commands are built on it.

pub mod attr;
pub mod daemon;

use std::collections::HashSet;
use std::ffi::OsStr;
use std::future::Future;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use fuser::{
    AccessFlags, BsdFileFlags, CopyFileRangeFlags, Errno, FileHandle, FopenFlags, Generation,
    INodeNo, InitFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLock, ReplyOpen,
    ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use meta_api::locks::OFFSET_MAX;
use meta_api::{Attr, Context, Ino, LockType, PlockRequest, SetAttr};
use tokio::runtime::Handle;
use vfs_core::{Vfs, VfsError};

use self::attr::{file_attr, file_type, open_flags, set_time};

/// Directory entries asked from the VFS per `readdir` request: about what fits in the
/// page the kernel offers (the rest is asked again from the last offset returned).
const READDIR_BATCH: usize = 128;
/// The same for `readdirplus`, whose entries carry attributes and are larger.
const READDIRPLUS_BATCH: usize = 32;
/// Bytes per block `statfs` reports.
const STATFS_BLOCK: u64 = 4096;
/// The largest write request the kernel is asked to send.
const MAX_WRITE: u32 = 1 << 20;
/// Requests the kernel may have outstanding in the background (readahead, async reads).
const MAX_BACKGROUND: u16 = 64;

/// How the kernel talks to the mount: cache lifetimes and who may use it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FuseOptions {
    /// How long the kernel may use attributes without asking again (default 1 s). A path
    /// lookup refreshes them anyway while [`FuseOptions::entry_ttl`] is 0.
    pub attr_ttl: Duration,
    /// How long the kernel may use a looked-up name of a file (any inode but a directory)
    /// without asking again (default 0: every path resolution asks the volume for its
    /// last component, which keeps close-to-open consistency between mounts exact).
    pub entry_ttl: Duration,
    /// How long the kernel may use a looked-up name of a directory without asking again
    /// (default 1 s, as juicefs's `--dir-entry-cache`): the components of a path above its
    /// last are then resolved in the kernel.
    pub dir_entry_ttl: Duration,
    /// Let other users than the mounting one use the mount (`-o allow_other`).
    pub allow_other: bool,
    /// Let root use the mount besides the mounting user (`-o allow_root`).
    pub allow_root: bool,
    /// Mount read-only.
    pub read_only: bool,
    /// Let the kernel check permissions from the mode bits (`-o default_permissions`);
    /// the VFS checks them either way.
    pub default_permissions: bool,
    /// Further kernel mount flags (`noatime`, `nodev`, `nosuid`, `noexec`, …).
    pub mount_flags: Vec<String>,
    /// The file system name `mount` shows (default: the volume's name).
    pub fsname: Option<String>,
    /// Threads reading requests from the kernel (default 1: each only decodes and spawns).
    pub threads: usize,
    /// Which locks are shared with every client of the volume: [`LockKind::Flock`]
    /// (default) or [`LockKind::Posix`]. The other kind still works, but only among the
    /// processes using this mount (the kernel keeps it).
    pub locks: LockKind,
}

/// The kind of file lock a mount serves from the volume, so that it excludes processes on
/// other mounts and other clients.
///
/// Only one kind can be: the kernel sends both kinds as the same requests, told apart by a
/// flag (`FUSE_LK_FLOCK`) that `fuser` 0.18 does not pass on, so the adapter asks the kernel
/// for one kind only and the kernel handles the other within the mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LockKind {
    /// BSD `flock(2)` locks.
    #[default]
    Flock,
    /// POSIX `fcntl(2)` record locks (`F_SETLK`, `F_SETLKW`, `F_GETLK`, and `lockf`).
    Posix,
}

impl Default for FuseOptions {
    fn default() -> FuseOptions {
        FuseOptions {
            attr_ttl: Duration::from_secs(1),
            entry_ttl: Duration::ZERO,
            dir_entry_ttl: Duration::from_secs(1),
            allow_other: false,
            allow_root: false,
            read_only: false,
            default_permissions: false,
            mount_flags: Vec::new(),
            fsname: None,
            threads: 1,
            locks: LockKind::Flock,
        }
    }
}

impl FuseOptions {
    /// The defaults juicefs mounts with, added to what `-o` asked for: a mount by root is
    /// open to every user (`allow_other`; permissions still apply), and on a volume without
    /// POSIX ACLs the kernel checks the mode bits too (`default_permissions`), unless
    /// `non_default_permission` (juicefs's `--non-default-permission`).
    pub fn with_mount_defaults(
        mut self,
        by_root: bool,
        volume_acls: bool,
        non_default_permission: bool,
    ) -> FuseOptions {
        if by_root {
            self.allow_other = true;
        }
        if !volume_acls && !non_default_permission {
            self.default_permissions = true;
        }
        self
    }

    /// Applies one `-o` mount option (`allow_other`, `ro`, `fsname=x`, `noatime`, …).
    /// Unknown options are an `InvalidInput` error naming the option.
    pub fn apply_mount_option(&mut self, opt: &str) -> std::io::Result<()> {
        match opt {
            "" => {}
            "allow_other" => self.allow_other = true,
            "allow_root" => self.allow_root = true,
            "ro" => self.read_only = true,
            "rw" => self.read_only = false,
            "default_permissions" => self.default_permissions = true,
            "noatime" | "atime" | "nodev" | "dev" | "nosuid" | "suid" | "noexec" | "exec"
            | "dirsync" | "sync" | "async" => self.mount_flags.push(opt.to_string()),
            _ => match opt.split_once('=') {
                Some(("fsname", name)) if !name.is_empty() => self.fsname = Some(name.into()),
                _ => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("unknown mount option {opt:?}"),
                    ))
                }
            },
        }
        Ok(())
    }

    /// The `fuser` configuration for these options; `volume` names the file system.
    pub fn config(&self, volume: &str) -> fuser::Config {
        use fuser::MountOption as M;
        let mut cfg = fuser::Config::default();
        let fsname = self.fsname.clone().unwrap_or_else(|| volume.to_string());
        cfg.mount_options = vec![M::FSName(fsname), M::Subtype("tessera".into())];
        cfg.mount_options
            .push(if self.read_only { M::RO } else { M::RW });
        if self.default_permissions {
            cfg.mount_options.push(M::DefaultPermissions);
        }
        for flag in &self.mount_flags {
            cfg.mount_options.push(match flag.as_str() {
                "noatime" => M::NoAtime,
                "atime" => M::Atime,
                "nodev" => M::NoDev,
                "dev" => M::Dev,
                "nosuid" => M::NoSuid,
                "suid" => M::Suid,
                "noexec" => M::NoExec,
                "exec" => M::Exec,
                "dirsync" => M::DirSync,
                "sync" => M::Sync,
                "async" => M::Async,
                other => M::CUSTOM(other.to_string()),
            });
        }
        cfg.acl = if self.allow_other {
            fuser::SessionACL::All
        } else if self.allow_root {
            fuser::SessionACL::RootAndOwner
        } else {
            fuser::SessionACL::Owner
        };
        cfg.n_threads = Some(self.threads.max(1));
        // Each thread reads from its own clone of the device, so they never contend.
        cfg.clone_fd = self.threads > 1;
        cfg
    }
}

/// The `fuser` file system of a [`Vfs`]: see the [module docs](self).
pub struct VfsFuse {
    vfs: Vfs,
    rt: Handle,
    attr_ttl: Duration,
    entry_ttl: Duration,
    dir_entry_ttl: Duration,
    locks: LockKind,
    /// Inodes on which POSIX locks were taken through this mount: only their closes need
    /// to release the closing process's locks, which saves a transaction on every other.
    posix_locked: Arc<Mutex<HashSet<Ino>>>,
}

impl std::fmt::Debug for VfsFuse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VfsFuse")
            .field("vfs", &self.vfs)
            .field("attr_ttl", &self.attr_ttl)
            .field("entry_ttl", &self.entry_ttl)
            .field("dir_entry_ttl", &self.dir_entry_ttl)
            .finish_non_exhaustive()
    }
}

/// A reply that can carry an errno: every `fuser` reply type.
trait ErrorReply: Send + 'static {
    fn fail(self, errno: Errno);
}

macro_rules! error_reply {
    ($($t:ty),* $(,)?) => {
        $(impl ErrorReply for $t {
            fn fail(self, errno: Errno) {
                self.error(errno)
            }
        })*
    };
}

error_reply!(
    ReplyAttr,
    ReplyCreate,
    ReplyData,
    ReplyDirectory,
    ReplyDirectoryPlus,
    ReplyEmpty,
    ReplyEntry,
    ReplyLock,
    ReplyOpen,
    ReplyStatfs,
    ReplyWrite,
    ReplyXattr,
);

/// Who sent a request, as the kernel says.
#[derive(Debug, Clone, Copy)]
struct Caller {
    uid: u32,
    gid: u32,
    pid: u32,
}

impl Caller {
    fn of(req: &Request) -> Caller {
        Caller {
            uid: req.uid(),
            gid: req.gid(),
            pid: req.pid(),
        }
    }

    /// The caller's credentials with its supplementary groups, which the kernel does not
    /// send: they are read from `/proc` (not needed for root, who passes every check).
    fn context(self, umask: u32) -> Context {
        let mut ctx = Context::new(self.uid, self.gid);
        ctx.pid = self.pid;
        // The kernel already applied the umask (no FUSE_DONT_MASK); applying it again is
        // harmless and keeps the VFS's rule in one place.
        ctx.umask = (umask & 0o777) as u16;
        if self.uid != 0 {
            ctx.gids = supplementary_groups(self.pid);
        }
        ctx
    }
}

/// The supplementary groups of process `pid` (empty if it is gone).
fn supplementary_groups(pid: u32) -> Vec<u32> {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return Vec::new();
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|g| {
            g.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Writes one line to stderr (the log file of a background mount), ignoring failures:
/// logging must never take the file system down.
fn log_line(msg: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "{msg}");
}

impl VfsFuse {
    /// An adapter for `vfs` whose calls run on `rt`.
    pub fn new(vfs: Vfs, rt: Handle, opts: &FuseOptions) -> VfsFuse {
        VfsFuse {
            vfs,
            rt,
            attr_ttl: opts.attr_ttl,
            entry_ttl: opts.entry_ttl,
            dir_entry_ttl: opts.dir_entry_ttl,
            locks: opts.locks,
            posix_locked: Arc::default(),
        }
    }

    /// Whether POSIX locks may have been taken on `ino` through this mount.
    fn maybe_posix_locked(&self, ino: Ino) -> bool {
        self.locks == LockKind::Posix
            && self
                .posix_locked
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&ino)
    }

    /// Runs `call` on the runtime and answers with `ok` or the error's errno.
    fn serve<R, T, F, K>(&self, op: &'static str, reply: R, call: F, ok: K)
    where
        R: ErrorReply,
        T: Send + 'static,
        F: Future<Output = vfs_core::Result<T>> + Send + 'static,
        K: FnOnce(R, T) + Send + 'static,
    {
        self.rt.spawn(async move {
            match call.await {
                Ok(v) => ok(reply, v),
                Err(e) => reply.fail(errno_of(op, &e)),
            }
        });
    }

    /// [`serve`](Self::serve) for a request that seldom waits: the call is polled once
    /// here, on the FUSE thread, and answered at once if it is done; only a call that has
    /// to wait is handed to the runtime (which polls it again with a real waker).
    fn serve_now<R, T, F, K>(&self, op: &'static str, reply: R, call: F, ok: K)
    where
        R: ErrorReply,
        T: Send + 'static,
        F: Future<Output = vfs_core::Result<T>> + Send + 'static,
        K: FnOnce(R, T) + Send + 'static,
    {
        let mut task = Box::pin(async move {
            match call.await {
                Ok(v) => ok(reply, v),
                Err(e) => reply.fail(errno_of(op, &e)),
            }
        });
        let _runtime = self.rt.enter();
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        if task.as_mut().poll(&mut cx).is_pending() {
            self.rt.spawn(task);
        }
    }

    /// Answers an entry request (lookup, mknod, mkdir, symlink, link).
    fn entry_reply(&self) -> impl FnOnce(ReplyEntry, meta_api::Entry) + Send + 'static {
        let (attr_ttl, ttls) = (self.attr_ttl, self.entry_ttls());
        move |reply, e| {
            reply.entry_with_ttls(
                &attr_ttl,
                &ttls.of(&e.attr),
                &file_attr(e.ino, &e.attr),
                Generation(0),
            )
        }
    }

    /// How long the kernel keeps the names this mount answers with.
    fn entry_ttls(&self) -> EntryTtls {
        EntryTtls {
            file: self.entry_ttl,
            dir: self.dir_entry_ttl,
        }
    }

    fn attr_reply(&self, ino: Ino) -> impl FnOnce(ReplyAttr, Attr) + Send + 'static {
        let ttl = self.attr_ttl;
        move |reply, a| reply.attr(&ttl, &file_attr(ino, &a))
    }
}

/// The kernel's lifetimes of names: of files and of directories.
#[derive(Debug, Clone, Copy)]
struct EntryTtls {
    file: Duration,
    dir: Duration,
}

impl EntryTtls {
    /// The lifetime of a name of an inode with `attr`.
    fn of(&self, attr: &Attr) -> Duration {
        if attr.is_dir() {
            self.dir
        } else {
            self.file
        }
    }
}

/// The errno for `e`; failures that are not the caller's fault are logged.
fn errno_of(op: &str, e: &VfsError) -> Errno {
    let errno = e.errno();
    if errno == libc::EIO {
        log_line(format_args!("tessera: {op}: {e}"));
    }
    Errno::from_i32(errno)
}

/// The lock type of a kernel `l_type`.
fn lock_type(typ: i32) -> vfs_core::Result<LockType> {
    LockType::from_libc(typ).ok_or(VfsError::InvalidArgument("unknown lock type"))
}

fn bytes_of(name: &OsStr) -> Vec<u8> {
    name.as_bytes().to_vec()
}

/// Answers an xattr value or name list: its size when asked for 0 bytes, `ERANGE` when
/// it does not fit in `size`.
fn xattr_reply(reply: ReplyXattr, size: u32, data: &[u8]) {
    if size == 0 {
        match u32::try_from(data.len()) {
            Ok(n) => reply.size(n),
            Err(_) => reply.error(Errno::from_i32(libc::E2BIG)),
        }
    } else if data.len() > size as usize {
        reply.error(Errno::from_i32(libc::ERANGE));
    } else {
        reply.data(data);
    }
}

#[allow(clippy::too_many_arguments)]
impl fuser::Filesystem for VfsFuse {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let mut wanted = InitFlags::FUSE_ATOMIC_O_TRUNC
            | InitFlags::FUSE_AUTO_INVAL_DATA
            | InitFlags::FUSE_PARALLEL_DIROPS;
        if !self.entry_ttl.is_zero() {
            // Names listed with their attributes are worth caching only if they stay.
            wanted |= InitFlags::FUSE_DO_READDIRPLUS | InitFlags::FUSE_READDIRPLUS_AUTO;
        }
        wanted |= match self.locks {
            LockKind::Flock => InitFlags::FUSE_FLOCK_LOCKS,
            LockKind::Posix => InitFlags::FUSE_POSIX_LOCKS,
        };
        // What the kernel lacks is simply not used.
        for flag in wanted.iter() {
            let _ = config.add_capabilities(flag);
        }
        // Each setter answers the nearest value the kernel accepts when it refuses one.
        if let Err(nearest) = config.set_max_write(MAX_WRITE) {
            let _ = config.set_max_write(nearest);
        }
        if let Err(nearest) = config.set_max_readahead(MAX_WRITE) {
            let _ = config.set_max_readahead(nearest);
        }
        let _ = config.set_max_background(MAX_BACKGROUND);
        let _ = config.set_congestion_threshold(MAX_BACKGROUND * 3 / 4);
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let (vfs, who, name) = (self.vfs.clone(), Caller::of(req), bytes_of(name));
        let call = async move { vfs.lookup(&who.context(0), parent.0, &name).await };
        self.serve_now("lookup", reply, call, self.entry_reply());
    }

    fn getattr(&self, req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let (vfs, who) = (self.vfs.clone(), Caller::of(req));
        let call = async move { vfs.getattr(&who.context(0), ino.0).await };
        self.serve_now("getattr", reply, call, self.attr_reply(ino.0));
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut set = SetAttr::new();
        set.mode = mode.map(|m| (m & 0o7777) as u16);
        set.uid = uid;
        set.gid = gid;
        set.atime = atime.map(set_time);
        set.mtime = mtime.map(set_time);
        let (vfs, who) = (self.vfs.clone(), Caller::of(req));
        let call = async move {
            let ctx = who.context(0);
            // `ftruncate(2)` passes its handle: the permission was checked when it was opened.
            let truncated = match (size, fh) {
                (Some(len), Some(fh)) => Some(vfs.ftruncate(&ctx, fh.0, len).await?),
                (Some(len), None) => {
                    set.size = Some(len);
                    None
                }
                _ => None,
            };
            match truncated {
                Some(attr) if set == SetAttr::new() => Ok(attr),
                _ => vfs.setattr(&ctx, ino.0, &set).await,
            }
        };
        self.serve("setattr", reply, call, self.attr_reply(ino.0));
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        let (vfs, who) = (self.vfs.clone(), Caller::of(req));
        let call = async move { vfs.readlink(&who.context(0), ino.0).await };
        self.serve_now("readlink", reply, call, |r, target| r.data(&target));
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let (vfs, who, name) = (self.vfs.clone(), Caller::of(req), bytes_of(name));
        let call = async move {
            vfs.mknod(&who.context(umask), parent.0, &name, mode, rdev)
                .await
        };
        self.serve("mknod", reply, call, self.entry_reply());
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let (vfs, who, name) = (self.vfs.clone(), Caller::of(req), bytes_of(name));
        let call = async move { vfs.mkdir(&who.context(umask), parent.0, &name, mode).await };
        self.serve("mkdir", reply, call, self.entry_reply());
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let (vfs, who, name) = (self.vfs.clone(), Caller::of(req), bytes_of(name));
        let call = async move { vfs.unlink(&who.context(0), parent.0, &name).await };
        self.serve("unlink", reply, call, |r, ()| r.ok());
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let (vfs, who, name) = (self.vfs.clone(), Caller::of(req), bytes_of(name));
        let call = async move { vfs.rmdir(&who.context(0), parent.0, &name).await };
        self.serve("rmdir", reply, call, |r, ()| r.ok());
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let (vfs, who, name) = (self.vfs.clone(), Caller::of(req), bytes_of(link_name));
        let target = bytes_of(target.as_os_str());
        let call = async move { vfs.symlink(&who.context(0), parent.0, &name, &target).await };
        self.serve("symlink", reply, call, self.entry_reply());
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (vfs, who, name) = (self.vfs.clone(), Caller::of(req), bytes_of(name));
        let newname = bytes_of(newname);
        let call = async move {
            let ctx = who.context(0);
            vfs.rename(&ctx, parent.0, &name, newparent.0, &newname, flags.bits())
                .await
        };
        self.serve("rename", reply, call, |r, ()| r.ok());
    }

    fn link(
        &self,
        req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let (vfs, who, name) = (self.vfs.clone(), Caller::of(req), bytes_of(newname));
        let call = async move { vfs.link(&who.context(0), ino.0, newparent.0, &name).await };
        self.serve("link", reply, call, self.entry_reply());
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let (vfs, who) = (self.vfs.clone(), Caller::of(req));
        let call = async move { vfs.open(&who.context(0), ino.0, open_flags(flags.0)).await };
        // No FOPEN_KEEP_CACHE: every open drops the kernel's cached pages (close-to-open).
        self.serve_now("open", reply, call, |r, fh| {
            r.opened(FileHandle(fh), FopenFlags::empty())
        });
    }

    fn read(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let (vfs, who) = (self.vfs.clone(), Caller::of(req));
        let call = async move { vfs.read(&who.context(0), fh.0, offset, size as usize).await };
        self.serve_now("read", reply, call, |r, data| r.data(&data));
    }

    fn write(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let (vfs, who) = (self.vfs.clone(), Caller::of(req));
        // The request buffer is reused for the next request: the task needs its own copy.
        let data = Bytes::copy_from_slice(data);
        let call = async move { vfs.write(&who.context(0), fh.0, offset, data).await };
        // A write request is at most `MAX_WRITE` bytes, so the count fits.
        self.serve("write", reply, call, |r, n| {
            r.written(u32::try_from(n).unwrap_or(u32::MAX))
        });
    }

    fn flush(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let (vfs, who) = (self.vfs.clone(), Caller::of(req));
        let unlock = self.maybe_posix_locked(ino.0);
        let call = async move {
            let ctx = who.context(0);
            let flushed = vfs.flush(&ctx, fh.0).await;
            if unlock {
                // Any close by a process drops its POSIX locks on the file.
                let (all, end) = (LockType::Unlock, u64::MAX);
                let owner = lock_owner.0;
                let unlocked = vfs.meta().setlk(&ctx, ino.0, owner, false, all, 0, end, 0);
                unlocked.await?;
            }
            flushed
        };
        self.serve("flush", reply, call, |r, ()| r.ok());
    }

    fn release(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let (vfs, who) = (self.vfs.clone(), Caller::of(req));
        // The kernel names an owner here only when the open file held a `flock` lock.
        let flock_owner = lock_owner.filter(|_| self.locks == LockKind::Flock);
        let call = async move {
            let ctx = who.context(0);
            let unlocked = match flock_owner {
                Some(owner) => {
                    let unlock = vfs
                        .meta()
                        .flock(&ctx, ino.0, owner.0, LockType::Unlock, false);
                    unlock.await.map_err(VfsError::from)
                }
                None => Ok(()),
            };
            let released = vfs.release(&ctx, fh.0).await;
            unlocked.and(released)
        };
        self.serve_now("release", reply, call, |r, ()| r.ok());
    }

    fn fsync(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let (vfs, who) = (self.vfs.clone(), Caller::of(req));
        let call = async move { vfs.fsync(&who.context(0), fh.0, datasync).await };
        self.serve("fsync", reply, call, |r, ()| r.ok());
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let (vfs, who) = (self.vfs.clone(), Caller::of(req));
        let call = async move { vfs.opendir(&who.context(0), ino.0).await };
        self.serve_now("opendir", reply, call, |r, dh| {
            r.opened(FileHandle(dh), FopenFlags::empty())
        });
    }

    fn readdir(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectory,
    ) {
        let (vfs, who) = (self.vfs.clone(), Caller::of(req));
        let call = async move {
            vfs.readdir(&who.context(0), fh.0, offset, READDIR_BATCH, false)
                .await
        };
        self.serve_now("readdir", reply, call, |mut r, items| {
            for item in items {
                // A full reply ends here; the kernel asks again from the last offset.
                if r.add(
                    INodeNo(item.ino),
                    item.offset,
                    file_type(item.typ),
                    OsStr::from_bytes(&item.name),
                ) {
                    break;
                }
            }
            r.ok();
        });
    }

    fn readdirplus(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectoryPlus,
    ) {
        let (vfs, who, ttls) = (self.vfs.clone(), Caller::of(req), self.entry_ttls());
        let call = async move {
            vfs.readdir(&who.context(0), fh.0, offset, READDIRPLUS_BATCH, true)
                .await
        };
        self.serve_now("readdirplus", reply, call, move |mut r, items| {
            for item in items {
                // An entry removed since it was listed has no attributes: leave it out.
                let Some(a) = &item.attr else { continue };
                let name = OsStr::from_bytes(&item.name);
                let fa = file_attr(item.ino, a);
                if r.add(
                    INodeNo(item.ino),
                    item.offset,
                    name,
                    &ttls.of(a),
                    &fa,
                    Generation(0),
                ) {
                    break;
                }
            }
            r.ok();
        });
    }

    fn releasedir(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        let (vfs, who) = (self.vfs.clone(), Caller::of(req));
        let call = async move { vfs.releasedir(&who.context(0), fh.0).await };
        self.serve_now("releasedir", reply, call, |r, ()| r.ok());
    }

    fn fsyncdir(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let (vfs, who) = (self.vfs.clone(), Caller::of(req));
        let call = async move { vfs.fsyncdir(&who.context(0), fh.0, datasync).await };
        self.serve("fsyncdir", reply, call, |r, ()| r.ok());
    }

    fn statfs(&self, req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        let (vfs, who) = (self.vfs.clone(), Caller::of(req));
        let call = async move { vfs.statfs(&who.context(0), ino.0).await };
        self.serve_now("statfs", reply, call, |r, s| {
            let free = s.avail_space / STATFS_BLOCK;
            r.statfs(
                s.total_space / STATFS_BLOCK,
                free,
                free,
                s.used_inodes.saturating_add(s.avail_inodes),
                s.avail_inodes,
                STATFS_BLOCK as u32,
                meta_api::MAX_NAME_LEN as u32,
                STATFS_BLOCK as u32,
            )
        });
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let (vfs, who, name) = (self.vfs.clone(), Caller::of(req), bytes_of(name));
        let value = value.to_vec();
        let call = async move {
            let flags =
                u32::try_from(flags).map_err(|_| VfsError::InvalidArgument("xattr flags"))?;
            vfs.setxattr(&who.context(0), ino.0, &name, &value, flags)
                .await
        };
        self.serve("setxattr", reply, call, |r, ()| r.ok());
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let (vfs, who, name) = (self.vfs.clone(), Caller::of(req), bytes_of(name));
        let call = async move { vfs.getxattr(&who.context(0), ino.0, &name).await };
        self.serve_now("getxattr", reply, call, move |r, v| {
            xattr_reply(r, size, &v)
        });
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let (vfs, who) = (self.vfs.clone(), Caller::of(req));
        let call = async move { vfs.listxattr(&who.context(0), ino.0).await };
        self.serve_now("listxattr", reply, call, move |r, names| {
            // The kernel wants the names NUL-terminated, one after the other.
            let mut list = Vec::with_capacity(names.iter().map(|n| n.len() + 1).sum());
            for n in names {
                list.extend_from_slice(&n);
                list.push(0);
            }
            xattr_reply(r, size, &list)
        });
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let (vfs, who, name) = (self.vfs.clone(), Caller::of(req), bytes_of(name));
        let call = async move { vfs.removexattr(&who.context(0), ino.0, &name).await };
        self.serve("removexattr", reply, call, |r, ()| r.ok());
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let (vfs, who) = (self.vfs.clone(), Caller::of(req));
        let call = async move { vfs.access(&who.context(0), ino.0, mask.bits()).await };
        self.serve_now("access", reply, call, |r, ()| r.ok());
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let (vfs, who, name) = (self.vfs.clone(), Caller::of(req), bytes_of(name));
        let ttl = self.entry_ttl.min(self.attr_ttl);
        let call = async move {
            let ctx = who.context(umask);
            vfs.create(&ctx, parent.0, &name, mode, open_flags(flags))
                .await
        };
        self.serve("create", reply, call, move |r, (e, fh)| {
            let fa = file_attr(e.ino, &e.attr);
            r.created(
                &ttl,
                &fa,
                Generation(0),
                FileHandle(fh),
                FopenFlags::empty(),
            )
        });
    }

    fn getlk(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        lock_owner: LockOwner,
        start: u64,
        end: u64,
        typ: i32,
        pid: u32,
        reply: ReplyLock,
    ) {
        let (vfs, who) = (self.vfs.clone(), Caller::of(req));
        let call = async move {
            let ltype = lock_type(typ)?;
            let mut lock = PlockRequest::new(ltype, start, end, pid);
            let ctx = who.context(0);
            vfs.meta()
                .getlk(&ctx, ino.0, lock_owner.0, &mut lock)
                .await?;
            Ok(lock)
        };
        self.serve_now("getlk", reply, call, |r, l| {
            // The kernel refuses ends past its OFFSET_MAX; the volume says u64::MAX.
            r.locked(l.start, l.end.min(OFFSET_MAX), l.ltype.to_libc(), l.pid)
        });
    }

    fn setlk(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        lock_owner: LockOwner,
        start: u64,
        end: u64,
        typ: i32,
        pid: u32,
        sleep: bool,
        reply: ReplyEmpty,
    ) {
        let (vfs, who, kind) = (self.vfs.clone(), Caller::of(req), self.locks);
        let posix_locked = self.posix_locked.clone();
        // A blocking request waits in its task; the FUSE thread goes on serving.
        let call = async move {
            let ltype = lock_type(typ)?;
            let (ctx, ino, owner) = (who.context(0), ino.0, lock_owner.0);
            match kind {
                // Only one kind reaches the adapter (see `LockKind`): for `flock` the
                // kernel always asks for the whole file.
                LockKind::Flock => vfs.meta().flock(&ctx, ino, owner, ltype, sleep).await?,
                LockKind::Posix => {
                    if ltype != LockType::Unlock {
                        posix_locked
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(ino);
                    }
                    let m = vfs.meta();
                    m.setlk(&ctx, ino, owner, sleep, ltype, start, end, pid)
                        .await?
                }
            }
            Ok(())
        };
        self.serve("setlk", reply, call, |r, ()| r.ok());
    }

    fn fallocate(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let (vfs, who) = (self.vfs.clone(), Caller::of(req));
        let call = async move {
            let mode = u32::try_from(mode).map_err(|_| VfsError::InvalidArgument("mode"))?;
            vfs.fallocate(&who.context(0), fh.0, mode, offset, length)
                .await
        };
        self.serve("fallocate", reply, call, |r, ()| r.ok());
    }

    fn copy_file_range(
        &self,
        req: &Request,
        _ino_in: INodeNo,
        fh_in: FileHandle,
        offset_in: u64,
        _ino_out: INodeNo,
        fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        let (vfs, who) = (self.vfs.clone(), Caller::of(req));
        // The answer is a 32-bit count: never copy more than it can say.
        let len = len.min(u64::from(u32::MAX));
        let call = async move {
            let flags = u32::try_from(flags.bits())
                .map_err(|_| VfsError::InvalidArgument("copy_file_range flags"))?;
            let ctx = who.context(0);
            vfs.copy_file_range(&ctx, fh_in.0, offset_in, fh_out.0, offset_out, len, flags)
                .await
        };
        self.serve("copy_file_range", reply, call, |r, n| {
            r.written(u32::try_from(n).unwrap_or(u32::MAX))
        });
    }
}
