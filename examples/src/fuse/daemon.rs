//! Running a mount: `tessera mount` in the foreground until it is unmounted or signalled,
//! or in the background (the program runs itself again, detached, and returns once the
//! file system is mounted), and `tessera umount`.
//!
//! Shutting down on SIGINT, SIGTERM or SIGHUP writes back all buffered data, unmounts
//! (detaching lazily if files are still open, and serving them for a short grace period),
//! then closes the volume, which ends its session. Unmounted from outside (`tessera
//! umount`, `fusermount3 -u`), the volume is closed the same way.

use std::fs::OpenOptions;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rustix::mount::UnmountFlags;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::oneshot;
use vfs_core::{MetaCacheOptions, Vfs, VfsOptions};

use super::{log_line, FuseOptions, LockKind, VfsFuse};
use crate::{at_path, volume};

/// Set in the environment of the detached process of a background mount: the path of
/// its log file. The process mounts in the foreground and reports readiness on stderr.
pub const CHILD_ENV: &str = "TESSERA_MOUNT_LOG";

/// The line a background mount's process prints on stderr once it is mounted.
const READY: &str = "tessera-mount: ready";

/// How long a shutdown waits for open files on a lazily detached mount to be closed.
const DETACH_GRACE: Duration = Duration::from_secs(5);

/// The arguments of `tessera mount`.
#[derive(clap::Args, Debug, Clone)]
pub struct MountArgs {
    /// Metadata URL (sqlite3:///path/meta.db)
    pub meta_url: String,
    /// Directory to mount the volume on
    pub mountpoint: PathBuf,
    /// Run in the background; return once the volume is mounted
    #[arg(short = 'd', long)]
    pub background: bool,
    /// Mount options, comma-separated: allow_other, allow_root, ro, default_permissions,
    /// fsname=NAME, noatime, nodev, nosuid, noexec
    #[arg(short = 'o', value_name = "OPTIONS", value_delimiter = ',')]
    pub options: Vec<String>,
    /// Seconds the kernel caches attributes
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub attr_cache: f64,
    /// Seconds the kernel caches looked-up names of files (0 keeps close-to-open
    /// consistency between clients exact)
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    pub entry_cache: f64,
    /// Seconds the kernel caches looked-up names of directories
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub dir_entry_cache: f64,
    /// Memory for written data not yet uploaded, in MiB
    #[arg(long, value_name = "MIB", default_value_t = 300)]
    pub buffer_size: usize,
    /// Blocks uploaded at the same time
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub max_uploads: usize,
    /// Bytes read ahead of sequential readers, in MiB (0 disables)
    #[arg(long, value_name = "MIB", default_value_t = 8)]
    pub readahead: u64,
    /// Memory cache of whole blocks for readers, in MiB
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    pub block_cache: usize,
    /// Fraction of each cache disk kept free (the cache directories, size and writeback
    /// are the `tessera` command's global options)
    #[arg(long, value_name = "RATIO", default_value_t = 0.1)]
    pub free_space_ratio: f64,
    /// Threads reading requests from the kernel
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub fuse_threads: usize,
    /// Share POSIX (fcntl) locks with other clients instead of flock locks; the other
    /// kind then excludes only processes on this mount
    #[arg(long)]
    pub posix_locks: bool,
    /// Log file of a background mount (default: /var/log/tessera.log for root,
    /// ~/.tessera/tessera.log otherwise)
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Back the metadata up into the bucket this often, on one client of the volume (0:
    /// never from this mount)
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub backup_meta: u64,
    /// Leave the trash out of the metadata backups
    #[arg(long)]
    pub backup_skip_trash: bool,
    /// Do not ask the kernel to check permissions from the mode bits (by default it does on
    /// volumes without POSIX ACLs, as juicefs mounts; the library checks them either way)
    #[arg(long)]
    pub non_default_permission: bool,
}

impl MountArgs {
    /// The kernel-side options these arguments ask for.
    pub fn fuse_options(&self) -> io::Result<FuseOptions> {
        let mut opts = FuseOptions {
            attr_ttl: seconds("--attr-cache", self.attr_cache)?,
            entry_ttl: seconds("--entry-cache", self.entry_cache)?,
            dir_entry_ttl: seconds("--dir-entry-cache", self.dir_entry_cache)?,
            threads: self.fuse_threads.max(1),
            locks: if self.posix_locks {
                LockKind::Posix
            } else {
                LockKind::Flock
            },
            ..FuseOptions::default()
        };
        for o in &self.options {
            opts.apply_mount_option(o.trim())?;
        }
        Ok(opts)
    }

    /// The VFS options these arguments ask for, on top of `base` (which carries the disk
    /// cache settings).
    pub fn vfs_options(&self, base: VfsOptions) -> VfsOptions {
        // The kernel caches names and attributes for as long as the mount options say; a
        // second cache behind it would only make them older.
        base.meta_cache(MetaCacheOptions::off())
            .buffer_size(self.buffer_size.saturating_mul(1 << 20))
            .upload_concurrency(self.max_uploads.max(1))
            .readahead(self.readahead.saturating_mul(1 << 20))
            .block_cache_size(self.block_cache.saturating_mul(1 << 20))
            .cache_free_ratio(self.free_space_ratio)
            .backup_interval((self.backup_meta > 0).then(|| Duration::from_secs(self.backup_meta)))
            .backup_skip_trash(self.backup_skip_trash)
    }

    /// The log file of a background mount.
    fn log_file(&self) -> PathBuf {
        if let Some(p) = &self.log {
            return p.clone();
        }
        if rustix::process::geteuid().is_root() {
            return PathBuf::from("/var/log/tessera.log");
        }
        match std::env::var_os("HOME") {
            Some(home) => Path::new(&home).join(".tessera/tessera.log"),
            None => std::env::temp_dir().join("tessera.log"),
        }
    }
}

/// A non-negative number of seconds as a duration.
fn seconds(flag: &str, secs: f64) -> io::Result<Duration> {
    Duration::try_from_secs_f64(secs).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{flag} {secs}: expected a number of seconds, 0 or more"),
        )
    })
}

/// The arguments of `tessera umount`.
#[derive(clap::Args, Debug, Clone)]
pub struct UmountArgs {
    /// Mount point
    pub mountpoint: PathBuf,
    /// Detach the mount even if files are open there (lazy unmount)
    #[arg(short, long)]
    pub force: bool,
}

/// `tessera umount`: unmounts a mount point; the mount's process then closes the volume.
pub fn umount(args: &UmountArgs) -> io::Result<()> {
    unmount(&args.mountpoint, args.force)
}

/// `tessera mount`: mounts the volume and serves it until it is unmounted or the process
/// is signalled; in the background with [`MountArgs::background`]. `base` holds the VFS
/// options given outside `args` (disk cache, writeback).
pub async fn mount(args: MountArgs, base: VfsOptions) -> io::Result<()> {
    let fuse_opts = args.fuse_options()?;
    let mountpoint = std::path::absolute(&args.mountpoint)?;
    let meta = std::fs::metadata(&mountpoint).map_err(|e| at_path(&mountpoint, e))?;
    if !meta.is_dir() {
        return Err(at_path(
            &mountpoint,
            io::Error::from(io::ErrorKind::NotADirectory),
        ));
    }
    if is_mount_point(&mountpoint) {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{}: something is mounted there already (`tessera umount` it first)",
                mountpoint.display()
            ),
        ));
    }
    let child_log = std::env::var_os(CHILD_ENV).map(PathBuf::from);
    if args.background && child_log.is_none() {
        let log = args.log_file();
        return tokio::task::spawn_blocking(move || start_background(&log))
            .await
            .map_err(io::Error::other)?;
    }
    if child_log.is_some() {
        // Its own session: the terminal's signals and hang-up no longer reach it.
        let _ = rustix::process::setsid();
    }
    let fs = volume::open(&args.meta_url, args.vfs_options(base)).await?;
    let vfs = fs.vfs().clone();
    let fuse_opts = fuse_opts.with_mount_defaults(
        rustix::process::geteuid().is_root(),
        vfs.format().enable_acl,
        args.non_default_permission,
    );
    let served = serve(&vfs, &mountpoint, &fuse_opts, child_log.as_deref()).await;
    // Writes back everything still buffered and ends the session.
    let closed = vfs.close().await.map_err(io::Error::from);
    served?;
    closed
}

/// Mounts `vfs` on `mountpoint` and serves it until it is unmounted or a signal asks to
/// stop.
async fn serve(
    vfs: &Vfs,
    mountpoint: &Path,
    opts: &FuseOptions,
    child_log: Option<&Path>,
) -> io::Result<()> {
    let mut stop = Signals::new()?;
    let fuse = VfsFuse::new(vfs.clone(), tokio::runtime::Handle::current(), opts);
    let config = opts.config(&vfs.format().name);
    let mp = mountpoint.to_path_buf();
    // Mounting waits for the kernel's INIT request: blocking work.
    let session = tokio::task::spawn_blocking(move || fuser::Session::new(fuse, &mp, &config))
        .await
        .map_err(io::Error::other)?
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("mounting on {}: {e}", mountpoint.display()),
            )
        })?;
    let (done, mut ended) = oneshot::channel();
    std::thread::Builder::new()
        .name("fuse-session".into())
        .spawn(move || {
            let _ = done.send(session.run());
        })?;
    match child_log {
        Some(log) => report_ready(log)?,
        None => log_line(format_args!(
            "tessera: {} mounted on {} (Ctrl-C or `tessera umount` unmounts)",
            vfs.format().name,
            mountpoint.display()
        )),
    }

    tokio::select! {
        r = &mut ended => return session_result(r),
        sig = stop.next() => log_line(format_args!("tessera: {sig}: unmounting {}", mountpoint.display())),
    }
    if let Err(e) = vfs.flush_all().await {
        log_line(format_args!("tessera: writing back buffered data: {e}"));
    }
    let mp = mountpoint.to_path_buf();
    let unmounted = tokio::task::spawn_blocking(move || match unmount(&mp, false) {
        Err(e) if e.kind() == io::ErrorKind::ResourceBusy => {
            log_line(format_args!(
                "tessera: {} is busy; detaching it, open files have {} s",
                mp.display(),
                DETACH_GRACE.as_secs()
            ));
            unmount(&mp, true)
        }
        other => other,
    })
    .await
    .map_err(io::Error::other)?;
    if let Err(e) = unmounted {
        log_line(format_args!("tessera: {e}"));
    }
    match tokio::time::timeout(DETACH_GRACE, &mut ended).await {
        Ok(r) => session_result(r),
        // Files still open on the detached mount lose their connection when we exit.
        Err(_) => Ok(()),
    }
}

fn session_result(r: Result<io::Result<()>, oneshot::error::RecvError>) -> io::Result<()> {
    r.map_err(|_| io::Error::other("the FUSE session thread ended without a result"))?
}

/// SIGINT, SIGTERM and SIGHUP: each asks a mount to stop.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> io::Result<Signals> {
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for the next signal and names it.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
            _ = self.hup.recv() => "SIGHUP",
        }
    }
}

/// In the process of a background mount: tells the waiting parent that the volume is
/// mounted, then sends stderr to the log file for the rest of the process's life.
fn report_ready(log: &Path) -> io::Result<()> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).map_err(|e| at_path(dir, e))?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| at_path(log, e))?;
    {
        let mut err = io::stderr().lock();
        writeln!(err, "{READY}")?;
        err.flush()?;
    }
    // The parent waits for its end of stderr to close, so it exits only after this.
    rustix::stdio::dup2_stderr(&file)?;
    Ok(())
}

/// Runs this program again, detached, with the same arguments, and waits until it has
/// mounted (its stderr says so) or failed (its stderr ends; its last line is the error).
fn start_background(log: &Path) -> io::Result<()> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(CHILD_ENV, log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let Some(stderr) = child.stderr.take() else {
        return Err(io::Error::other("no stderr pipe to the mount process"));
    };
    let mut reader = BufReader::new(stderr);
    let mut last: Option<String> = None;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let text = line.trim_end();
        if text == READY {
            // Wait until it has switched to the log file, then leave it running.
            let mut rest = Vec::new();
            reader.read_to_end(&mut rest)?;
            return Ok(());
        }
        if let Some(prev) = last.replace(text.to_string()) {
            log_line(format_args!("{prev}"));
        }
    }
    let status = child.wait()?;
    Err(io::Error::other(match last {
        Some(l) => l.strip_prefix("tessera: ").unwrap_or(&l).to_string(),
        None => format!("the mount process ended ({status}) before the volume was mounted"),
    }))
}

/// Whether `dir` (absolute) is a mount point, as `/proc/self/mountinfo` lists them
/// (without touching `dir`, which may be a dead FUSE mount).
fn is_mount_point(dir: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let dir = dir.as_os_str().as_encoded_bytes();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| unescape_mountinfo(m) == dir)
}

/// A mountinfo path field with its octal escapes (`\040` for a space, …) decoded.
fn unescape_mountinfo(field: &str) -> Vec<u8> {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push(
                    d.iter()
                        .fold(0u8, |v, c| v.wrapping_mul(8).wrapping_add(c - b'0')),
                );
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Unmounts `dir`; `lazy` detaches it even while files are open (they keep working until
/// closed). Root unmounts directly; other users through `fusermount3`.
pub fn unmount(dir: &Path, lazy: bool) -> io::Result<()> {
    let flags = if lazy {
        UnmountFlags::DETACH
    } else {
        UnmountFlags::empty()
    };
    match rustix::mount::unmount(dir, flags) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::PERM) => fusermount_unmount(dir, lazy),
        Err(rustix::io::Errno::BUSY) => Err(io::Error::new(
            io::ErrorKind::ResourceBusy,
            format!(
                "{}: busy: files are open there (--force detaches it anyway)",
                dir.display()
            ),
        )),
        Err(rustix::io::Errno::INVAL) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a mount point", dir.display()),
        )),
        Err(e) => Err(at_path(dir, e.into())),
    }
}

/// Unmounts through the setuid `fusermount3` helper, as users other than root must.
fn fusermount_unmount(dir: &Path, lazy: bool) -> io::Result<()> {
    let mut cmd = Command::new("fusermount3");
    cmd.arg("-u");
    if lazy {
        cmd.arg("-z");
    }
    let out = cmd.arg("--").arg(dir).output().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("running fusermount3 (package fuse3): {e}"),
        )
    })?;
    if out.status.success() {
        return Ok(());
    }
    let msg = String::from_utf8_lossy(&out.stderr);
    Err(io::Error::other(msg.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        mount: MountArgs,
    }

    #[test]
    fn mount_arguments_become_options() {
        let cli = Cli::try_parse_from([
            "t",
            "sqlite3:///x.db",
            "/mnt",
            "-d",
            "-o",
            "allow_other,ro,fsname=vol1",
            "--attr-cache",
            "0.5",
            "--buffer-size",
            "64",
        ])
        .unwrap();
        let a = cli.mount;
        assert!(a.background);
        let f = a.fuse_options().unwrap();
        assert!(f.allow_other && f.read_only);
        assert_eq!(f.fsname.as_deref(), Some("vol1"));
        assert_eq!(f.attr_ttl, Duration::from_millis(500));
        assert_eq!(f.entry_ttl, Duration::ZERO);
        assert_eq!(f.dir_entry_ttl, Duration::from_secs(1), "as juicefs");
        let v = a.vfs_options(VfsOptions::default().writeback(true));
        assert_eq!(v.buffer_size, 64 << 20);
        assert!(v.writeback, "the base options are kept");
        let cfg = f.config("vol");
        assert_eq!(cfg.acl, fuser::SessionACL::All);
        assert!(cfg.mount_options.contains(&fuser::MountOption::RO));
    }

    #[test]
    fn root_mounts_get_juicefs_defaults() {
        let plain = FuseOptions::default();
        let root = plain.clone().with_mount_defaults(true, false, false);
        assert!(root.allow_other && root.default_permissions);
        let user_acl = plain.clone().with_mount_defaults(false, true, false);
        assert!(!user_acl.allow_other && !user_acl.default_permissions);
        let opted_out = plain.with_mount_defaults(true, false, true);
        assert!(opted_out.allow_other && !opted_out.default_permissions);
        let cli = Cli::try_parse_from(["t", "u", "/m", "--non-default-permission"]).unwrap();
        assert!(cli.mount.non_default_permission);
    }

    #[test]
    fn bad_options_are_refused() {
        let cli = Cli::try_parse_from(["t", "u", "/m", "-o", "bogus"]).unwrap();
        let e = cli.mount.fuse_options().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("bogus"), "{e}");
        let cli = Cli::try_parse_from(["t", "u", "/m", "--entry-cache=-1"]).unwrap();
        assert!(cli.mount.fuse_options().is_err());
    }

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(unescape_mountinfo(r"/mnt/a\040b"), b"/mnt/a b");
        assert_eq!(unescape_mountinfo(r"/x\134y\"), b"/x\\y\\");
        assert!(is_mount_point(Path::new("/")));
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_mount_point(dir.path()));
    }

    #[test]
    fn unmounting_a_plain_directory_fails_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let e = unmount(dir.path(), false).unwrap_err();
        // Other users go through fusermount3, which words it its own way.
        if rustix::process::geteuid().is_root() {
            assert!(e.to_string().contains("not a mount point"), "{e}");
        }
    }
}
