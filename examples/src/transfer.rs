//! Copies between a local directory tree and a volume (`tessera put` / `tessera get`).
//!
//! Both directions keep permission bits, modification times and symbolic links (copied as
//! links, never followed). Many small files move concurrently (a bounded number of spawned
//! tasks); a large file streams in [`PIECE`]-sized buffers, the local side reading or
//! writing on a blocking thread while the volume side writes or reads the previous piece,
//! so memory stays at a few pieces per large file in flight.

use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use meta_api::{SetAttr, SetTime, Timestamp};
use tokio::sync::mpsc;
use vfs_core::{FileSystem, Metadata};

use crate::at_path;

/// Bytes moved per I/O call on large files.
pub const PIECE: usize = 4 << 20;

/// Files up to this size count as small: they move many at a time.
const SMALL_FILE: u64 = PIECE as u64;

/// Small files (and links) in flight at once.
const SMALL_CONCURRENCY: usize = 16;

/// Large files in flight at once (each holds up to three pieces).
const LARGE_CONCURRENCY: usize = 2;

/// Pieces queued between the two sides of one large file.
const PIPELINE_DEPTH: usize = 2;

/// How to run a transfer.
#[derive(Debug, Clone, Copy, Default)]
pub struct TransferOptions {
    /// Draw a progress bar on stderr (only when it is a terminal).
    pub progress: bool,
}

/// What a transfer did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Regular files copied.
    pub files: u64,
    /// Directories created or updated.
    pub dirs: u64,
    /// Symbolic links copied.
    pub symlinks: u64,
    /// Special files (FIFOs, sockets, devices) skipped.
    pub skipped: u64,
    /// Bytes of file data copied.
    pub bytes: u64,
    /// Wall-clock time taken.
    pub elapsed: Duration,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64().max(1e-3);
        write!(
            f,
            "{} files ({}), {} directories, {} symlinks in {:.2} s ({}/s)",
            self.files,
            crate::human_bytes(self.bytes),
            self.dirs,
            self.symlinks,
            secs,
            crate::human_bytes((self.bytes as f64 / secs) as u64),
        )?;
        if self.skipped > 0 {
            write!(f, "; {} special files skipped", self.skipped)?;
        }
        Ok(())
    }
}

/// One thing to copy.
#[derive(Debug, Clone)]
struct Item {
    /// The local path.
    local: PathBuf,
    /// The volume path.
    vol: PathBuf,
    kind: Kind,
    /// Permission bits.
    mode: u32,
    mtime: SystemTime,
    atime: SystemTime,
}

#[derive(Debug, Clone)]
enum Kind {
    Dir,
    File(u64),
    Symlink(PathBuf),
    Special,
}

/// The attributes to give a copy, as a volume `SetAttr`.
fn attrs_of(item: &Item) -> io::Result<SetAttr> {
    Ok(SetAttr::new()
        .mode((item.mode & 0o7777) as u16)
        .atime(SetTime::At(timestamp(item.atime)?))
        .mtime(SetTime::At(timestamp(item.mtime)?)))
}

/// A `SystemTime` as a volume timestamp.
fn timestamp(t: SystemTime) -> io::Result<Timestamp> {
    let range = || io::Error::new(io::ErrorKind::InvalidInput, "time out of range");
    Ok(match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Timestamp::new(
            i64::try_from(d.as_secs()).map_err(|_| range())?,
            d.subsec_nanos(),
        ),
        Err(e) => {
            let d = e.duration();
            let secs = i64::try_from(d.as_secs()).map_err(|_| range())?;
            match d.subsec_nanos() {
                0 => Timestamp::new(-secs, 0),
                n => Timestamp::new(-secs - 1, 1_000_000_000 - n),
            }
        }
    })
}

/// A progress bar over `total` bytes, drawn only when asked and stderr is a terminal.
fn progress_bar(opts: TransferOptions, total: u64, files: u64) -> ProgressBar {
    if !opts.progress {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{elapsed_precise} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
    ) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(format!("0/{files} files"));
    pb
}

/// Counts finished files on the progress bar.
#[derive(Clone)]
struct Progress {
    bar: ProgressBar,
    done: Arc<std::sync::atomic::AtomicU64>,
    files: u64,
}

impl Progress {
    fn file_done(&self) {
        let n = self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        self.bar.set_message(format!("{n}/{} files", self.files));
    }
}

/// The last component of a path, for copying `src` into a directory.
fn base_name(p: &Path) -> io::Result<PathBuf> {
    match p.file_name() {
        Some(n) => Ok(PathBuf::from(n)),
        None => std::fs::canonicalize(p)?
            .file_name()
            .map(PathBuf::from)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{}: cannot copy a root directory by name", p.display()),
                )
            }),
    }
}

/// Lists a local tree, parents before children, without following links.
fn scan_local(local: &Path, vol: &Path, out: &mut Vec<Item>) -> io::Result<()> {
    let mut stack = vec![(local.to_path_buf(), vol.to_path_buf())];
    while let Some((local, vol)) = stack.pop() {
        let meta = std::fs::symlink_metadata(&local).map_err(|e| at_path(&local, e))?;
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            let mut children = Vec::new();
            for entry in std::fs::read_dir(&local).map_err(|e| at_path(&local, e))? {
                let entry = entry.map_err(|e| at_path(&local, e))?;
                children.push(entry.file_name());
            }
            // Popped in name order.
            children.sort_unstable_by(|a, b| b.cmp(a));
            for name in children {
                stack.push((local.join(&name), vol.join(&name)));
            }
            Kind::Dir
        } else if ft.is_file() {
            Kind::File(meta.len())
        } else if ft.is_symlink() {
            Kind::Symlink(std::fs::read_link(&local).map_err(|e| at_path(&local, e))?)
        } else {
            Kind::Special
        };
        out.push(Item {
            local,
            vol,
            kind,
            mode: meta.permissions().mode() & 0o7777,
            mtime: meta.modified().unwrap_or(UNIX_EPOCH),
            atime: meta.accessed().unwrap_or(UNIX_EPOCH),
        });
    }
    Ok(())
}

/// Splits items into directories, small jobs and large files; counts totals.
struct Plan {
    dirs: Vec<Item>,
    small: Vec<Item>,
    large: Vec<Item>,
    skipped: u64,
    total_bytes: u64,
    files: u64,
}

fn plan(items: Vec<Item>) -> Plan {
    let mut p = Plan {
        dirs: Vec::new(),
        small: Vec::new(),
        large: Vec::new(),
        skipped: 0,
        total_bytes: 0,
        files: 0,
    };
    for item in items {
        match item.kind {
            Kind::Dir => p.dirs.push(item),
            Kind::File(n) => {
                p.total_bytes += n;
                p.files += 1;
                if n > SMALL_FILE {
                    p.large.push(item)
                } else {
                    p.small.push(item)
                }
            }
            Kind::Symlink(_) => p.small.push(item),
            Kind::Special => {
                eprintln!("skipping special file {}", item.local.display());
                p.skipped += 1;
            }
        }
    }
    p
}

/// What one file or link job moved.
#[derive(Default)]
struct Moved {
    files: u64,
    symlinks: u64,
    bytes: u64,
}

/// Runs `job` on every item, `n` at a time, each on its own task.
async fn run_jobs<F, Fut>(items: Vec<Item>, n: usize, job: F) -> io::Result<Moved>
where
    F: Fn(Item) -> Fut,
    Fut: std::future::Future<Output = io::Result<Moved>> + Send + 'static,
{
    futures::stream::iter(items)
        .map(|item| {
            let task = tokio::spawn(job(item));
            async move { task.await.map_err(io::Error::other)? }
        })
        .buffer_unordered(n)
        .try_fold(Moved::default(), |mut acc, m| async move {
            acc.files += m.files;
            acc.symlinks += m.symlinks;
            acc.bytes += m.bytes;
            Ok(acc)
        })
        .await
}

/// Copies local files and trees into the volume, as `cp -r` does: into `dest` if it is a
/// directory (or `dest` ends with `/`, or there are several sources), else to `dest`.
pub async fn put(
    fs: &FileSystem,
    sources: &[PathBuf],
    dest: &Path,
    opts: TransferOptions,
) -> io::Result<Summary> {
    let start = Instant::now();
    let into_dir = match fs.metadata(dest).await {
        Ok(m) if m.is_dir() => true,
        Ok(_) if sources.len() > 1 => {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!(
                    "{}: not a directory (several sources need one)",
                    dest.display()
                ),
            ));
        }
        Ok(_) => false,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let as_dir = sources.len() > 1 || dest.as_os_str().to_string_lossy().ends_with('/');
            let dir = if as_dir { Some(dest) } else { dest.parent() };
            if let Some(dir) = dir.filter(|d| !d.as_os_str().is_empty()) {
                fs.create_dir_all(dir).await.map_err(|e| at_path(dir, e))?;
            }
            as_dir
        }
        Err(e) => return Err(at_path(dest, e)),
    };
    let mut pairs = Vec::new();
    for src in sources {
        let vol = if into_dir {
            dest.join(base_name(src).map_err(|e| at_path(src, e))?)
        } else {
            dest.to_path_buf()
        };
        pairs.push((src.clone(), vol));
    }
    let items = tokio::task::spawn_blocking(move || {
        let mut items = Vec::new();
        for (local, vol) in pairs {
            scan_local(&local, &vol, &mut items)?;
        }
        Ok::<_, io::Error>(items)
    })
    .await
    .map_err(io::Error::other)??;
    let plan = plan(items);
    let progress = Progress {
        bar: progress_bar(opts, plan.total_bytes, plan.files),
        done: Arc::default(),
        files: plan.files,
    };

    for d in &plan.dirs {
        make_vol_dir(fs, &d.vol).await?;
    }
    let job = |item: Item| {
        let (fs, progress) = (fs.clone(), progress.clone());
        async move { put_one(&fs, item, &progress).await }
    };
    let (small, large) = futures::try_join!(
        run_jobs(plan.small, SMALL_CONCURRENCY, job),
        run_jobs(plan.large, LARGE_CONCURRENCY, job),
    )?;
    // Children change their directory's times: directories get theirs last, deepest first.
    for d in plan.dirs.iter().rev() {
        let e = fs
            .symlink_metadata(&d.vol)
            .await
            .map_err(|e| at_path(&d.vol, e))?;
        fs.vfs()
            .setattr(fs.context(), e.ino(), &attrs_of(d)?)
            .await
            .map_err(|e| at_path(&d.vol, e.into()))?;
    }
    progress.bar.finish_and_clear();
    Ok(Summary {
        files: small.files + large.files,
        dirs: plan.dirs.len() as u64,
        symlinks: small.symlinks + large.symlinks,
        skipped: plan.skipped,
        bytes: small.bytes + large.bytes,
        elapsed: start.elapsed(),
    })
}

/// Creates a volume directory unless one is there already.
async fn make_vol_dir(fs: &FileSystem, vol: &Path) -> io::Result<()> {
    match fs.create_dir(vol).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match fs.metadata(vol).await {
            Ok(m) if m.is_dir() => Ok(()),
            _ => Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}: exists and is not a directory", vol.display()),
            )),
        },
        Err(e) => Err(at_path(vol, e)),
    }
}

/// Copies one local file or link into the volume.
async fn put_one(fs: &FileSystem, item: Item, progress: &Progress) -> io::Result<Moved> {
    match &item.kind {
        Kind::Symlink(target) => {
            match fs.symlink_metadata(&item.vol).await {
                Ok(m) if m.is_dir() => {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{}: a directory is in the way", item.vol.display()),
                    ))
                }
                Ok(_) => fs
                    .remove_file(&item.vol)
                    .await
                    .map_err(|e| at_path(&item.vol, e))?,
                Err(_) => {}
            }
            fs.symlink(target, &item.vol)
                .await
                .map_err(|e| at_path(&item.vol, e))?;
            Ok(Moved {
                symlinks: 1,
                ..Moved::default()
            })
        }
        Kind::File(size) => {
            let bytes = put_file(fs, &item, *size, progress)
                .await
                .map_err(|e| at_path(&item.vol, e))?;
            progress.file_done();
            Ok(Moved {
                files: 1,
                bytes,
                ..Moved::default()
            })
        }
        Kind::Dir | Kind::Special => Ok(Moved::default()),
    }
}

/// Streams one local file into the volume and gives the copy the original's attributes.
async fn put_file(fs: &FileSystem, item: &Item, size: u64, progress: &Progress) -> io::Result<u64> {
    let file = fs
        .open_options()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(item.mode)
        .open(&item.vol)
        .await?;
    let copied = async {
        let (tx, mut rx) = mpsc::channel::<Bytes>(PIPELINE_DEPTH);
        let local = item.local.clone();
        let reader = tokio::task::spawn_blocking(move || read_local(&local, size, tx));
        let mut off = 0u64;
        while let Some(piece) = rx.recv().await {
            let n = piece.len() as u64;
            file.write_bytes_at(piece, off).await?;
            off += n;
            progress.bar.inc(n);
        }
        reader
            .await
            .map_err(io::Error::other)?
            .map_err(|e| at_path(&item.local, e))?;
        // Committed before the times are set, so that the commit does not move them.
        file.sync_all().await?;
        fs.vfs()
            .setattr(fs.context(), file.ino(), &attrs_of(item)?)
            .await?;
        Ok::<_, io::Error>(off)
    }
    .await;
    let closed = file.close().await;
    let n = copied?;
    closed?;
    Ok(n)
}

/// Reads a local file in pieces into `tx` (blocking); stops early if the receiver left.
fn read_local(path: &Path, size_hint: u64, tx: mpsc::Sender<Bytes>) -> io::Result<()> {
    let mut file = std::fs::File::open(path)?;
    let mut off = 0u64;
    loop {
        // Sized to what is left, so a small file does not cost a whole piece.
        let want = size_hint.saturating_sub(off).clamp(4096, PIECE as u64) as usize;
        // Read into spare capacity: zero-filling a fresh buffer first costs a memset per byte.
        let mut buf = Vec::with_capacity(want);
        let filled = (&mut file).take(want as u64).read_to_end(&mut buf)?;
        if filled == 0 {
            return Ok(());
        }
        off += filled as u64;
        if tx.blocking_send(Bytes::from(buf)).is_err() {
            return Ok(());
        }
        if filled < want {
            return Ok(());
        }
    }
}

/// Lists a volume tree, parents before children, without following links. A directory
/// met twice (a hostile or corrupt volume whose entries loop back to an ancestor) is an
/// error: the walk never goes round a cycle.
async fn scan_vol(
    fs: &FileSystem,
    vol: &Path,
    local: &Path,
    top: Metadata,
) -> io::Result<Vec<Item>> {
    let mut out = Vec::new();
    let mut dirs = std::collections::HashSet::new();
    let mut stack = vec![(vol.to_path_buf(), local.to_path_buf(), top)];
    while let Some((vol, local, meta)) = stack.pop() {
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            if !dirs.insert(meta.ino()) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: directory {} is met twice in this tree (the volume is corrupt: \
                         a directory has two names)",
                        vol.display(),
                        meta.ino()
                    ),
                ));
            }
            let mut rd = fs.read_dir_plus(&vol).await.map_err(|e| at_path(&vol, e))?;
            let mut children = Vec::new();
            while let Some(entry) = rd.next_entry().await.map_err(|e| at_path(&vol, e))? {
                let m = match entry.cached_metadata() {
                    Some(m) => m,
                    None => match entry.metadata().await {
                        Ok(m) => m,
                        // Removed while listed.
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(at_path(entry.path(), e)),
                    },
                };
                children.push((entry.file_name(), m));
            }
            children.sort_unstable_by(|a, b| b.0.cmp(&a.0));
            for (name, m) in children {
                stack.push((vol.join(&name), local.join(&name), m));
            }
            Kind::Dir
        } else if ft.is_file() {
            Kind::File(meta.len())
        } else if ft.is_symlink() {
            Kind::Symlink(fs.read_link(&vol).await.map_err(|e| at_path(&vol, e))?)
        } else {
            Kind::Special
        };
        out.push(Item {
            local,
            vol,
            kind,
            mode: meta.permissions().mode(),
            mtime: meta.modified()?,
            atime: meta.accessed()?,
        });
    }
    Ok(out)
}

/// Copies a volume file or tree to the local file system, as `cp -r` does: into `dest`
/// if it is an existing directory, else to `dest`.
pub async fn get(
    fs: &FileSystem,
    src: &Path,
    dest: &Path,
    opts: TransferOptions,
) -> io::Result<Summary> {
    let start = Instant::now();
    let top = fs
        .symlink_metadata(src)
        .await
        .map_err(|e| at_path(src, e))?;
    let canonical = fs
        .canonicalize(src)
        .await
        .unwrap_or_else(|_| src.to_path_buf());
    let local = match std::fs::metadata(dest) {
        Ok(m) if m.is_dir() => match src.file_name().or(canonical.file_name()) {
            Some(name) => dest.join(name),
            // The volume root: its contents go into `dest`.
            None => dest.to_path_buf(),
        },
        _ => {
            if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| at_path(parent, e))?;
            }
            dest.to_path_buf()
        }
    };
    let items = scan_vol(fs, src, &local, top).await?;
    let plan = plan(items);
    let progress = Progress {
        bar: progress_bar(opts, plan.total_bytes, plan.files),
        done: Arc::default(),
        files: plan.files,
    };
    for d in &plan.dirs {
        match std::fs::create_dir(&d.local) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && d.local.is_dir() => {}
            Err(e) => return Err(at_path(&d.local, e)),
        }
    }
    let job = |item: Item| {
        let (fs, progress) = (fs.clone(), progress.clone());
        async move { get_one(&fs, item, &progress).await }
    };
    let (small, large) = futures::try_join!(
        run_jobs(plan.small, SMALL_CONCURRENCY, job),
        run_jobs(plan.large, LARGE_CONCURRENCY, job),
    )?;
    for d in plan.dirs.iter().rev() {
        set_local_attrs(&d.local, d).map_err(|e| at_path(&d.local, e))?;
    }
    progress.bar.finish_and_clear();
    Ok(Summary {
        files: small.files + large.files,
        dirs: plan.dirs.len() as u64,
        symlinks: small.symlinks + large.symlinks,
        skipped: plan.skipped,
        bytes: small.bytes + large.bytes,
        elapsed: start.elapsed(),
    })
}

/// Gives a local file or directory the attributes of its volume original.
fn set_local_attrs(path: &Path, item: &Item) -> io::Result<()> {
    let times = std::fs::FileTimes::new()
        .set_accessed(item.atime)
        .set_modified(item.mtime);
    let f = std::fs::File::open(path)?;
    f.set_times(times)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(item.mode & 0o7777))
}

/// Copies one volume file or link to the local file system.
async fn get_one(fs: &FileSystem, item: Item, progress: &Progress) -> io::Result<Moved> {
    match &item.kind {
        Kind::Symlink(target) => {
            let (local, target) = (item.local.clone(), target.clone());
            tokio::task::spawn_blocking(move || {
                match std::fs::symlink_metadata(&local) {
                    Ok(m) if m.is_dir() => {
                        return Err(io::Error::new(
                            io::ErrorKind::AlreadyExists,
                            "a directory is in the way",
                        ))
                    }
                    Ok(_) => std::fs::remove_file(&local)?,
                    Err(_) => {}
                }
                std::os::unix::fs::symlink(&target, &local)
            })
            .await
            .map_err(io::Error::other)?
            .map_err(|e| at_path(&item.local, e))?;
            Ok(Moved {
                symlinks: 1,
                ..Moved::default()
            })
        }
        Kind::File(_) => {
            let bytes = get_file(fs, &item, progress)
                .await
                .map_err(|e| at_path(&item.vol, e))?;
            progress.file_done();
            Ok(Moved {
                files: 1,
                bytes,
                ..Moved::default()
            })
        }
        Kind::Dir | Kind::Special => Ok(Moved::default()),
    }
}

/// Streams one volume file to a local file and gives it the original's attributes.
async fn get_file(fs: &FileSystem, item: &Item, progress: &Progress) -> io::Result<u64> {
    let file = fs.open(&item.vol).await?;
    let (tx, rx) = mpsc::channel::<Bytes>(PIPELINE_DEPTH);
    let (local, attrs) = (item.local.clone(), item.clone());
    let writer = tokio::task::spawn_blocking(move || write_local(&local, &attrs, rx));
    let read = async {
        let mut off = 0u64;
        loop {
            let piece = file.read_bytes_at(off, PIECE).await?;
            if piece.is_empty() {
                return Ok::<_, io::Error>(off);
            }
            let n = piece.len() as u64;
            if tx.send(piece).await.is_err() {
                // The writer failed; its error is reported below.
                return Ok(off);
            }
            off += n;
            progress.bar.inc(n);
        }
    }
    .await;
    drop(tx);
    let written = writer.await.map_err(io::Error::other)?;
    let closed = file.close().await;
    let n = read?;
    written.map_err(|e| at_path(&item.local, e))?;
    closed?;
    Ok(n)
}

/// Writes the pieces from `rx` to a new local file (blocking), then sets its attributes.
fn write_local(path: &Path, item: &Item, mut rx: mpsc::Receiver<Bytes>) -> io::Result<()> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        // Writing through a link would change what it points to.
        std::fs::remove_file(path)?;
    }
    let mut f = std::fs::File::create(path)?;
    while let Some(piece) = rx.blocking_recv() {
        f.write_all(&piece)?;
    }
    f.set_times(
        std::fs::FileTimes::new()
            .set_accessed(item.atime)
            .set_modified(item.mtime),
    )?;
    let perm = std::fs::Permissions::from_mode(item.mode & 0o7777);
    if f.metadata()?.mode() & 0o7777 != item.mode & 0o7777 {
        f.set_permissions(perm)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 5);
        assert_eq!(timestamp(t).unwrap(), Timestamp::new(1_700_000_000, 5));
        let before = UNIX_EPOCH - Duration::new(1, 250_000_000);
        assert_eq!(timestamp(before).unwrap(), Timestamp::new(-2, 750_000_000));
    }

    #[test]
    fn summary_reads_well() {
        let s = Summary {
            files: 3,
            dirs: 1,
            symlinks: 0,
            skipped: 0,
            bytes: 3 << 20,
            elapsed: Duration::from_secs(1),
        };
        assert_eq!(
            s.to_string(),
            "3 files (3.0 MiB), 1 directories, 0 symlinks in 1.00 s (3.0 MiB/s)"
        );
    }

    #[test]
    fn local_scan_is_parents_first() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/b/f"), b"x").unwrap();
        std::os::unix::fs::symlink("b/f", dir.path().join("a/l")).unwrap();
        let mut items = Vec::new();
        scan_local(&dir.path().join("a"), Path::new("/v"), &mut items).unwrap();
        let vols: Vec<_> = items.iter().map(|i| i.vol.display().to_string()).collect();
        assert_eq!(vols, ["/v", "/v/b", "/v/b/f", "/v/l"]);
        assert!(matches!(&items[3].kind, Kind::Symlink(t) if t == Path::new("b/f")));
        assert!(matches!(items[2].kind, Kind::File(1)));
    }
}
