//! `DiskCache`: blocks as checksummed files in one or more local cache directories.
//!
//! Layout of each cache directory:
//!
//! ```text
//! <dir>/raw/<key>              a cached block (its key's `/` are directories)
//! <dir>/staging/<escaped key>  a writeback block not yet uploaded (`%` → `%25`, `/` → `%2F`)
//! <dir>/tmp/                   files being written; emptied on open
//! <dir>/.lock                  locked (flock) by the cache that has the directory open
//! ```
//!
//! Every file is written under `tmp/` and renamed into place, so a reader sees a whole file
//! or none; its contents are checked on every read (see `format`). A directory belongs to one
//! cache at a time: opening takes an exclusive `flock` on `.lock` (holding the owner's process
//! id), so a second process — which would empty the first one's `tmp/` and race on staging —
//! is refused with the owner's pid instead.

mod format;
mod space;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use chunkstore::{validate_key, BlockKey};

pub(crate) use format::Fault;

use crate::lru::Lru;

const RAW: &str = "raw";
const STAGING: &str = "staging";
const TMP: &str = "tmp";
const LOCK: &str = ".lock";
/// How long opening waits for another cache on the same directory to let go (a cache of
/// this process still closing), before refusing.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// How long a directory that failed an I/O operation is left alone before it is tried again.
const FAILED_BACKOFF: Duration = Duration::from_secs(30);

/// The longest file name most local filesystems accept.
const MAX_NAME: usize = 255;

/// A block found in a staging directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StagedFile {
    pub(crate) key: String,
    pub(crate) dir: usize,
    pub(crate) data_len: u64,
    pub(crate) mtime: i64,
}

/// Blocks as files in one or more cache directories, each bounded by its share of a byte
/// capacity and by a floor of free space on its filesystem. Blocks are spread over the
/// directories by a hash of their key; within a directory the least recently used block is
/// evicted first.
///
/// Every block carries a CRC32C per 32 KiB page, verified on every read: a corrupt, truncated
/// or vanished file is dropped and reported as a miss, never returned. A directory whose disk
/// fails is bypassed for a while (reads miss, writes are skipped) and tried again later; a
/// directory deleted while in use is recreated on the next write.
///
/// Opening rebuilds the index from a directory listing (names and sizes, no contents), in
/// memory proportional to the number of files. Methods do blocking file I/O: call them from
/// a blocking context (`tokio::task::spawn_blocking`), as [`Cached`](crate::Cached) does.
pub struct DiskCache {
    dirs: Vec<CacheDir>,
    evictions: AtomicU64,
    corrupt: AtomicU64,
    errors: AtomicU64,
}

impl std::fmt::Debug for DiskCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskCache")
            .field(
                "dirs",
                &self.dirs.iter().map(|d| &d.root).collect::<Vec<_>>(),
            )
            .field("capacity", &self.capacity())
            .field("used", &self.used_bytes())
            .finish()
    }
}

struct CacheDir {
    root: PathBuf,
    capacity: u64,
    free_ratio: f64,
    index: Mutex<Lru<()>>,
    failed_until: Mutex<Option<Instant>>,
    full_warned: AtomicBool,
    /// The locked `.lock` file, held while the cache is open (closing it unlocks).
    lock: Mutex<Option<fs::File>>,
}

/// Numbers temporary files; process-wide so that two caches opened on one directory in the
/// same process (a reopen while the old one finishes a write) never pick the same name.
static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// The relative path of `key` under `raw/`, if the key can be a path on a local filesystem.
fn cache_rel(key: &str) -> Option<&Path> {
    let ok = validate_key(key).is_ok() && key.split('/').all(|s| s.len() <= MAX_NAME);
    ok.then(|| Path::new(key))
}

/// The staging file name of `key`: the key with `%` and `/` escaped, so staging is flat.
fn staged_name(key: &str) -> Option<String> {
    if validate_key(key).is_err() {
        return None;
    }
    let mut s = String::with_capacity(key.len() + 8);
    for c in key.chars() {
        match c {
            '%' => s.push_str("%25"),
            '/' => s.push_str("%2F"),
            c => s.push(c),
        }
    }
    (s.len() <= MAX_NAME).then_some(s)
}

fn unescape(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 3)?;
        out.push(match code {
            "25" => '%',
            "2F" => '/',
            _ => return None,
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Makes a directory's entries durable (best effort on filesystems that refuse it).
fn sync_dir(path: &Path) -> io::Result<()> {
    match fs::File::open(path)?.sync_all() {
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => Ok(()),
        r => r,
    }
}

fn remove_quietly(path: &Path) {
    if let Err(e) = fs::remove_file(path) {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::debug!(path = %path.display(), error = %e, "could not remove cache file");
        }
    }
}

impl CacheDir {
    fn new(root: PathBuf, capacity: u64, free_ratio: f64) -> CacheDir {
        CacheDir {
            root,
            capacity,
            free_ratio,
            index: Mutex::new(Lru::default()),
            failed_until: Mutex::new(None),
            full_warned: AtomicBool::new(false),
            lock: Mutex::new(None),
        }
    }

    /// Takes the directory for this cache: an exclusive `flock` on `.lock`, waited for up
    /// to [`LOCK_WAIT`]; `Err` (naming the owner's pid) when another cache holds it.
    fn take(&self) -> io::Result<()> {
        use std::io::{Read, Seek, Write};
        let path = self.root.join(LOCK);
        let mut f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => break,
                Err(e) if e == rustix::io::Errno::WOULDBLOCK && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                    let mut owner = String::new();
                    let _ = f.read_to_string(&mut owner);
                    return Err(io::Error::new(
                        io::ErrorKind::WouldBlock,
                        format!(
                            "cache directory {} is in use by another cache (process {}): \
                             give each process its own --cache-dir",
                            self.root.display(),
                            owner.trim()
                        ),
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        }
        f.set_len(0)?;
        f.rewind()?;
        write!(f, "{}", std::process::id())?;
        *self.lock.lock().unwrap_or_else(|e| e.into_inner()) = Some(f);
        Ok(())
    }

    // Index updates are single `Lru` calls, so a poisoned lock still guards a consistent map.
    fn index(&self) -> MutexGuard<'_, Lru<()>> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn raw(&self, rel: &Path) -> PathBuf {
        self.root.join(RAW).join(rel)
    }

    fn staging(&self) -> PathBuf {
        self.root.join(STAGING)
    }

    fn ensure_layout(&self) -> io::Result<()> {
        for sub in [RAW, STAGING, TMP] {
            fs::create_dir_all(self.root.join(sub))?;
        }
        // Staged files must survive a crash, and so must the directories that name them.
        sync_dir(&self.root)?;
        if let Some(parent) = self.root.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        Ok(())
    }

    fn clear_tmp(&self) {
        if let Ok(rd) = fs::read_dir(self.root.join(TMP)) {
            for e in rd.flatten() {
                remove_quietly(&e.path());
            }
        }
    }

    /// Whether the directory may be used now; a failed one is retried after the backoff.
    fn usable(&self) -> bool {
        let mut until = self.failed_until.lock().unwrap_or_else(|e| e.into_inner());
        match *until {
            Some(t) if Instant::now() < t => false,
            Some(_) => {
                *until = None;
                tracing::info!(dir = %self.root.display(), "retrying cache directory");
                true
            }
            None => true,
        }
    }

    fn fail(&self, op: &str, e: &io::Error) {
        let mut until = self.failed_until.lock().unwrap_or_else(|e| e.into_inner());
        if until.is_none() {
            tracing::warn!(
                dir = %self.root.display(), op, error = %e,
                "cache directory failing; bypassing it for {}s", FAILED_BACKOFF.as_secs()
            );
        }
        *until = Some(Instant::now() + FAILED_BACKOFF);
    }

    fn write_atomic(&self, dest: &Path, data: &[u8], durable: bool) -> io::Result<()> {
        match self.try_write(dest, data, durable) {
            // The directory was removed under us: recreate it and try once more.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.ensure_layout()?;
                self.try_write(dest, data, durable)
            }
            r => r,
        }
    }

    fn try_write(&self, dest: &Path, data: &[u8], durable: bool) -> io::Result<()> {
        let seq = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .root
            .join(TMP)
            .join(format!("{}-{seq}", std::process::id()));
        let r = (|| {
            format::write_new(&tmp, data, durable)?;
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::rename(&tmp, dest)?;
            if durable {
                if let Some(parent) = dest.parent() {
                    sync_dir(parent)?;
                }
            }
            Ok(())
        })();
        if r.is_err() {
            remove_quietly(&tmp);
        }
        r
    }

    /// Lists `raw/` into the index, oldest access first, dropping files that cannot be
    /// blocks of this directory. Reads names and sizes only.
    fn rebuild(&self, me: usize, ndirs: usize) -> io::Result<u64> {
        let mut found: Vec<(SystemTime, String, u64)> = Vec::new();
        let mut dropped = 0u64;
        let mut stack = vec![(self.root.join(RAW), String::new())];
        while let Some((dir, prefix)) = stack.pop() {
            let rd = match fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for entry in rd {
                let entry = entry?;
                let path = entry.path();
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    remove_quietly(&path);
                    dropped += 1;
                    continue;
                };
                let key = format!("{prefix}{name}");
                let ft = entry.file_type()?;
                if ft.is_dir() {
                    stack.push((path, format!("{key}/")));
                    continue;
                }
                let meta = entry.metadata()?;
                let data_len = format::data_len_of(meta.len());
                let block_ok = match (BlockKey::parse_prefixed(&key), data_len) {
                    (Some((_, b)), Some(n)) => u64::from(b.len) == n,
                    (None, Some(_)) => true,
                    (_, None) => false,
                };
                if !ft.is_file()
                    || !block_ok
                    || cache_rel(&key).is_none()
                    || pick_of(&key, ndirs) != me
                {
                    remove_quietly(&path);
                    dropped += 1;
                    continue;
                }
                let used = meta
                    .accessed()
                    .or_else(|_| meta.modified())
                    .unwrap_or(UNIX_EPOCH);
                found.push((used, key, meta.len()));
            }
        }
        found.sort();
        let mut idx = self.index();
        for (_, key, size) in found {
            idx.insert(&key, (), size);
        }
        Ok(dropped)
    }
}

fn pick_of(key: &str, n: usize) -> usize {
    (crc32c::crc32c(key.as_bytes()) as usize) % n.max(1)
}

impl DiskCache {
    /// Opens (creating if needed) the cache directories `dirs`, sharing `capacity` bytes
    /// equally, each also keeping `free_space_ratio` of its filesystem free. Rebuilds each
    /// directory's index from a listing and empties its `tmp/`. A directory that cannot be
    /// opened is bypassed (with a warning) and retried later; a directory another cache
    /// holds (its `.lock` is taken) is an error, and nothing of it is touched.
    pub fn open(dirs: &[PathBuf], capacity: u64, free_space_ratio: f64) -> io::Result<DiskCache> {
        let per_dir = capacity / (dirs.len().max(1) as u64);
        let cache = DiskCache {
            dirs: dirs
                .iter()
                .map(|d| CacheDir::new(d.clone(), per_dir, free_space_ratio))
                .collect(),
            evictions: AtomicU64::new(0),
            corrupt: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        };
        for (i, d) in cache.dirs.iter().enumerate() {
            if let Err(e) = d.ensure_layout() {
                d.fail("open", &e);
                continue;
            }
            match d.take() {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(e),
                Err(e) => {
                    d.fail("lock", &e);
                    continue;
                }
            }
            d.clear_tmp();
            match d.rebuild(i, dirs.len()) {
                Ok(dropped) => {
                    if dropped > 0 {
                        tracing::warn!(dir = %d.root.display(), dropped, "dropped unusable cache files");
                    }
                    let victims = cache.trim(d, 0);
                    cache.delete_files(d, &victims);
                    tracing::debug!(
                        dir = %d.root.display(), blocks = d.index().len(),
                        bytes = d.index().weight(), "cache index rebuilt"
                    );
                }
                Err(e) => d.fail("scan", &e),
            }
        }
        Ok(cache)
    }

    fn pick(&self, key: &str) -> Option<(usize, &CacheDir)> {
        if self.dirs.is_empty() {
            return None;
        }
        let i = pick_of(key, self.dirs.len());
        Some((i, &self.dirs[i]))
    }

    /// Evicts least recently used blocks of `d` until `extra` more bytes fit its capacity.
    fn trim(&self, d: &CacheDir, extra: u64) -> Vec<String> {
        let mut idx = d.index();
        let mut victims = Vec::new();
        while idx.weight() + extra > d.capacity {
            match idx.pop_lru() {
                Some((k, (), _)) => victims.push(k.to_string()),
                None => break,
            }
        }
        victims
    }

    fn delete_files(&self, d: &CacheDir, keys: &[String]) {
        for k in keys {
            remove_quietly(&d.raw(Path::new(k)));
        }
        self.evictions
            .fetch_add(keys.len() as u64, Ordering::Relaxed);
    }

    /// Evicts blocks of `d` until a file of `need` bytes fits both the free-space floor and
    /// (with `within_capacity`) the directory's capacity. Returns whether it fits.
    fn make_room(&self, d: &CacheDir, need: u64, within_capacity: bool) -> bool {
        if within_capacity && need > d.capacity {
            return false;
        }
        // A directory removed under us is recreated before its filesystem is asked.
        let sp = match space::space(&d.root).or_else(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                d.ensure_layout()?;
                space::space(&d.root)
            } else {
                Err(e)
            }
        }) {
            Ok(s) => s,
            Err(e) => {
                d.fail("statvfs", &e);
                return false;
            }
        };
        let floor = (d.free_ratio * sp.total as f64) as u64;
        let mut short = need.saturating_add(floor).saturating_sub(sp.available);
        let (victims, fits) = {
            let mut idx = d.index();
            let mut victims = Vec::new();
            while short > 0 || (within_capacity && idx.weight() + need > d.capacity) {
                match idx.pop_lru() {
                    Some((k, (), w)) => {
                        short = short.saturating_sub(w);
                        victims.push(k.to_string());
                    }
                    None => break,
                }
            }
            let fits = short == 0 && (!within_capacity || idx.weight() + need <= d.capacity);
            (victims, fits)
        };
        self.delete_files(d, &victims);
        if !fits && !d.full_warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                dir = %d.root.display(), available = sp.available, floor,
                "cache disk is full; not caching until space frees up"
            );
        }
        fits
    }

    /// Records that `key`'s file is unusable: drops it from the index and, if its bytes are
    /// bad, from the disk.
    fn drop_bad(&self, d: &CacheDir, key: &str, path: &Path, fault: Fault) {
        d.index().remove(key);
        match fault {
            Fault::Missing => {
                tracing::debug!(key, "cache file vanished");
            }
            Fault::Corrupt(why) => {
                tracing::warn!(key, path = %path.display(), why, "dropping corrupt cache file");
                self.corrupt.fetch_add(1, Ordering::Relaxed);
                remove_quietly(path);
            }
            Fault::Io(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                d.fail("read", &e);
            }
        }
    }

    /// The whole block cached under `key`, checked; `None` on a miss or a bad file.
    pub fn get(&self, key: &str) -> Option<Bytes> {
        self.get_range(key, 0, None)
    }

    /// Bytes `[off, off + len)` of the block cached under `key` (`len = None`: to the end),
    /// reading and checking only the pages the range touches. `None` on a miss; a corrupt,
    /// truncated or vanished file is dropped and reported as a miss.
    pub fn get_range(&self, key: &str, off: u64, len: Option<u64>) -> Option<Bytes> {
        let (_, d) = self.pick(key)?;
        if !d.usable() || d.index().get(key).is_none() {
            return None;
        }
        let path = d.raw(cache_rel(key)?);
        match format::read_range(&path, off, len) {
            Ok(b) => Some(b),
            Err(fault) => {
                self.drop_bad(d, key, &path, fault);
                None
            }
        }
    }

    /// Whether `key` is in the index (its file may still turn out bad when read).
    pub fn contains(&self, key: &str) -> bool {
        self.pick(key)
            .is_some_and(|(_, d)| d.usable() && d.index().contains(key))
    }

    /// Caches `data` under `key`, written atomically, evicting older blocks as needed.
    /// Returns whether the block is now cached; a full or failing disk just says `false`.
    pub fn insert(&self, key: &str, data: &[u8]) -> bool {
        let Some(rel) = cache_rel(key) else {
            return false;
        };
        let Some((_, d)) = self.pick(key) else {
            return false;
        };
        if !d.usable() {
            return false;
        }
        if d.index().get(key).is_some() {
            return true;
        }
        let need = format::file_len(data.len() as u64);
        if !self.make_room(d, need, true) {
            return false;
        }
        if let Err(e) = d.write_atomic(&d.raw(rel), data, false) {
            self.errors.fetch_add(1, Ordering::Relaxed);
            d.fail("write", &e);
            return false;
        }
        d.full_warned.store(false, Ordering::Relaxed);
        d.index().insert(key, (), need);
        // Concurrent inserts may have overshot; the new block is the most recent, so it stays.
        let victims = self.trim(d, 0);
        self.delete_files(d, &victims);
        true
    }

    /// Drops `key` from the cache.
    pub fn remove(&self, key: &str) {
        let Some((_, d)) = self.pick(key) else {
            return;
        };
        if d.index().remove(key).is_some() {
            if let Some(rel) = cache_rel(key) {
                remove_quietly(&d.raw(rel));
            }
        }
    }

    /// Where the block `key` is (or would be) cached; `None` if it cannot be cached.
    pub fn path_of(&self, key: &str) -> Option<PathBuf> {
        let (_, d) = self.pick(key)?;
        Some(d.raw(cache_rel(key)?))
    }

    /// The cache directories, in the order given to [`open`](Self::open).
    pub fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.dirs.iter().map(|d| d.root.as_path())
    }

    /// Total capacity over all directories, in bytes on disk (blocks and their checksums).
    pub fn capacity(&self) -> u64 {
        self.dirs.iter().map(|d| d.capacity).sum()
    }

    /// Bytes on disk used by cached blocks (staged blocks not included).
    pub fn used_bytes(&self) -> u64 {
        self.dirs.iter().map(|d| d.index().weight()).sum()
    }

    /// How many blocks are cached.
    pub fn len(&self) -> usize {
        self.dirs.iter().map(|d| d.index().len()).sum()
    }

    /// Whether no block is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Blocks evicted to make room since opening.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Cache files found corrupt or truncated on read, and dropped, since opening.
    pub fn corrupt_dropped(&self) -> u64 {
        self.corrupt.load(Ordering::Relaxed)
    }

    /// Disk I/O errors met since opening (each bypasses the directory for a while).
    pub fn io_errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    // ---- writeback staging (used by `Cached`) ----

    /// The directory a block is cached and staged in.
    pub(crate) fn dir_for(&self, key: &str) -> Option<usize> {
        self.pick(key).map(|(i, _)| i)
    }

    /// Whether `key` can be staged at all (its escaped name fits a file name).
    pub(crate) fn can_stage(&self, key: &str) -> bool {
        !self.dirs.is_empty() && staged_name(key).is_some()
    }

    fn staged_path(&self, dir: usize, key: &str) -> Option<PathBuf> {
        Some(self.dirs.get(dir)?.staging().join(staged_name(key)?))
    }

    /// Writes `data` durably into `dir`'s staging area: when this returns `Ok`, the block
    /// survives a crash of the process or the machine.
    pub(crate) fn stage(&self, dir: usize, key: &str, data: &[u8]) -> io::Result<()> {
        let (Some(d), Some(path)) = (self.dirs.get(dir), self.staged_path(dir, key)) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "key cannot be staged",
            ));
        };
        if !d.usable() {
            return Err(io::Error::other(
                "cache directory is being bypassed after errors",
            ));
        }
        // Staged blocks are bounded separately; only the free-space floor applies, and
        // cached blocks give way to them.
        if !self.make_room(d, format::file_len(data.len() as u64), false) {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "cache disk is full",
            ));
        }
        d.write_atomic(&path, data, true).inspect_err(|e| {
            self.errors.fetch_add(1, Ordering::Relaxed);
            d.fail("stage", e);
        })
    }

    /// Reads a range of a staged block, checked.
    pub(crate) fn read_staged(
        &self,
        dir: usize,
        key: &str,
        off: u64,
        len: Option<u64>,
    ) -> Result<Bytes, Fault> {
        let path = self.staged_path(dir, key).ok_or(Fault::Missing)?;
        format::read_range(&path, off, len)
    }

    /// Removes a staged block; with `durable`, the removal survives a crash.
    pub(crate) fn remove_staged(&self, dir: usize, key: &str, durable: bool) {
        if let Some(path) = self.staged_path(dir, key) {
            remove_quietly(&path);
            if durable {
                if let Some(parent) = path.parent() {
                    // Best effort: if it fails, the block is deleted again after a restart.
                    let _ = sync_dir(parent);
                }
            }
        }
    }

    /// Moves an uploaded staged block into the cache (a rename, no copy); if it does not
    /// belong or fit there, the staged file is removed instead.
    pub(crate) fn adopt_staged(&self, dir: usize, key: &str, data_len: u64) -> bool {
        let Some(from) = self.staged_path(dir, key) else {
            return false;
        };
        let Some(d) = self.dirs.get(dir) else {
            return false;
        };
        let rel = match cache_rel(key) {
            Some(rel) if self.dir_for(key) == Some(dir) && d.usable() => rel,
            _ => {
                remove_quietly(&from);
                return false;
            }
        };
        if d.index().get(key).is_some() {
            remove_quietly(&from);
            return true;
        }
        let need = format::file_len(data_len);
        let dest = d.raw(rel);
        let moved = need <= d.capacity && {
            let victims = self.trim(d, need);
            self.delete_files(d, &victims);
            dest.parent().is_none_or(|p| fs::create_dir_all(p).is_ok())
                && fs::rename(&from, &dest).is_ok()
        };
        if !moved {
            remove_quietly(&from);
            return false;
        }
        d.index().insert(key, (), need);
        let victims = self.trim(d, 0);
        self.delete_files(d, &victims);
        true
    }

    /// Every block in the staging areas (names and sizes only). Files that cannot be staged
    /// blocks — bad names, impossible lengths — are reported and removed.
    pub(crate) fn scan_staging(&self) -> Vec<StagedFile> {
        let mut out = Vec::new();
        for (i, d) in self.dirs.iter().enumerate() {
            let rd = match fs::read_dir(d.staging()) {
                Ok(rd) => rd,
                Err(e) => {
                    if e.kind() != io::ErrorKind::NotFound {
                        tracing::error!(
                            dir = %d.root.display(), error = %e,
                            "cannot list staging directory; its blocks will not be uploaded now"
                        );
                    }
                    continue;
                }
            };
            for entry in rd.flatten() {
                let path = entry.path();
                let key = entry.file_name().to_str().and_then(unescape);
                let meta = entry.metadata().ok();
                let data_len = meta.as_ref().and_then(|m| format::data_len_of(m.len()));
                match (key, data_len) {
                    (Some(key), Some(data_len)) if validate_key(&key).is_ok() => {
                        let mtime = meta.and_then(|m| m.modified().ok()).map_or(0, unix_secs);
                        out.push(StagedFile {
                            key,
                            dir: i,
                            data_len,
                            mtime,
                        });
                    }
                    _ => {
                        tracing::error!(
                            path = %path.display(),
                            "staged file is damaged or not a block; removing it (its block is lost)"
                        );
                        remove_quietly(&path);
                    }
                }
            }
        }
        out.sort_by_key(|f| f.mtime);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(n: usize, seed: u8) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
            .collect()
    }

    fn key(i: u64, len: usize) -> String {
        BlockKey::new(i, 0, len as u32).to_key(false)
    }

    const UNLIMITED: u64 = 1 << 40;

    #[test]
    fn escape_round_trips() {
        for k in ["a", "vol/chunks/0/0/1_0_5", "a%b/c%2F", "%%/%"] {
            let n = staged_name(k).unwrap();
            assert!(!n.contains('/'));
            assert_eq!(unescape(&n).as_deref(), Some(k));
        }
        assert_eq!(unescape("a%2"), None);
        assert_eq!(unescape("a%41"), None);
        assert_eq!(staged_name("a//b"), None);
    }

    #[test]
    fn insert_get_remove() {
        let dir = tempfile::tempdir().unwrap();
        let c = DiskCache::open(&[dir.path().to_path_buf()], UNLIMITED, 0.0).unwrap();
        let k = key(1, 5000);
        let data = bytes(5000, 1);
        assert!(c.get(&k).is_none());
        assert!(c.insert(&k, &data));
        assert!(c.contains(&k));
        assert_eq!(c.get(&k).unwrap(), &data[..]);
        assert_eq!(c.get_range(&k, 10, Some(20)).unwrap(), &data[10..30]);
        assert_eq!(c.used_bytes(), format::file_len(5000));
        let path = c.path_of(&k).unwrap();
        assert!(path.starts_with(dir.path().join(RAW)));
        assert!(path.exists());
        c.remove(&k);
        assert!(!path.exists());
        assert!(c.get(&k).is_none());
        assert!(c.is_empty());
    }

    #[test]
    fn eviction_keeps_the_byte_limit() {
        let dir = tempfile::tempdir().unwrap();
        let one = format::file_len(1000);
        let c = DiskCache::open(&[dir.path().to_path_buf()], 3 * one, 0.0).unwrap();
        for i in 0..10 {
            assert!(c.insert(&key(i, 1000), &bytes(1000, i as u8)));
            assert!(c.used_bytes() <= 3 * one);
            // Keep block 0 hot: it must survive.
            assert!(c.get(&key(0, 1000)).is_some(), "{i}");
        }
        assert_eq!(c.len(), 3);
        assert_eq!(c.evictions(), 7);
        assert!(c.contains(&key(9, 1000)) && c.contains(&key(8, 1000)));
        // The evicted files are gone from the disk too.
        assert!(!c.path_of(&key(1, 1000)).unwrap().exists());
        // A block bigger than the whole cache is refused.
        assert!(!c.insert(&key(99, 4000), &bytes(4000, 0)));
    }

    #[test]
    fn corrupt_truncated_and_vanished_files_are_misses() {
        let dir = tempfile::tempdir().unwrap();
        let c = DiskCache::open(&[dir.path().to_path_buf()], UNLIMITED, 0.0).unwrap();
        let data = bytes(70_000, 3);
        let k = key(7, data.len());
        let path = c.path_of(&k).unwrap();

        c.insert(&k, &data);
        let mut raw = fs::read(&path).unwrap();
        raw[40_000] ^= 1;
        fs::write(&path, &raw).unwrap();
        assert!(c.get(&k).is_none());
        assert!(!path.exists(), "corrupt file removed");
        assert_eq!(c.corrupt_dropped(), 1);

        c.insert(&k, &data);
        let raw = fs::read(&path).unwrap();
        fs::write(&path, &raw[..raw.len() - 3]).unwrap();
        assert!(c.get_range(&k, 0, Some(10)).is_none());
        assert_eq!(c.corrupt_dropped(), 2);

        c.insert(&k, &data);
        fs::remove_file(&path).unwrap();
        assert!(c.get(&k).is_none());
        assert!(!c.contains(&k));
        assert!(c.insert(&k, &data));
        assert_eq!(c.get(&k).unwrap(), &data[..]);
    }

    #[test]
    fn reopen_rebuilds_the_index_and_drops_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = [dir.path().to_path_buf()];
        let one = format::file_len(1000);
        {
            let c = DiskCache::open(&dirs, UNLIMITED, 0.0).unwrap();
            for i in 0..5 {
                c.insert(&key(i, 1000), &bytes(1000, i as u8));
            }
        }
        // A truncated file, a file whose length disagrees with its key, and a stray temp.
        let c = DiskCache::open(&dirs, UNLIMITED, 0.0).unwrap();
        let p3 = c.path_of(&key(3, 1000)).unwrap();
        let raw = fs::read(&p3).unwrap();
        fs::write(&p3, &raw[..100]).unwrap();
        let wrong = c.path_of(&key(50, 999)).unwrap();
        fs::create_dir_all(wrong.parent().unwrap()).unwrap();
        fs::copy(c.path_of(&key(4, 1000)).unwrap(), &wrong).unwrap();
        fs::write(dir.path().join(TMP).join("junk"), b"x").unwrap();
        drop(c);

        let c = DiskCache::open(&dirs, UNLIMITED, 0.0).unwrap();
        assert_eq!(c.len(), 4);
        assert_eq!(c.used_bytes(), 4 * one);
        for i in [0, 1, 2, 4] {
            assert_eq!(c.get(&key(i, 1000)).unwrap(), bytes(1000, i as u8));
        }
        assert!(!c.contains(&key(3, 1000)));
        assert!(!p3.exists() && !wrong.exists());
        assert_eq!(fs::read_dir(dir.path().join(TMP)).unwrap().count(), 0);

        // Reopening with a smaller capacity evicts down to it.
        drop(c);
        let c = DiskCache::open(&dirs, 2 * one, 0.0).unwrap();
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn blocks_spread_over_several_directories() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let dirs = [a.path().to_path_buf(), b.path().to_path_buf()];
        let c = DiskCache::open(&dirs, UNLIMITED, 0.0).unwrap();
        for i in 0..40 {
            assert!(c.insert(&key(i, 100), &bytes(100, 0)));
        }
        let in_a = (0..40)
            .filter(|&i| c.path_of(&key(i, 100)).unwrap().starts_with(a.path()))
            .count();
        assert!(in_a > 5 && in_a < 35, "{in_a}");
        drop(c);
        let c = DiskCache::open(&dirs, UNLIMITED, 0.0).unwrap();
        assert_eq!(c.len(), 40);
        // With one directory fewer, blocks that now hash elsewhere are dropped, not lost track of.
        drop(c);
        let c = DiskCache::open(&dirs[..1], UNLIMITED, 0.0).unwrap();
        assert_eq!(c.len(), in_a);
    }

    #[test]
    fn deleted_directory_is_recreated() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("cache");
        let c = DiskCache::open(std::slice::from_ref(&root), UNLIMITED, 0.0).unwrap();
        c.insert(&key(1, 10), &bytes(10, 0));
        fs::remove_dir_all(&root).unwrap();
        assert!(c.get(&key(1, 10)).is_none());
        assert!(c.insert(&key(2, 10), &bytes(10, 0)));
        assert_eq!(c.get(&key(2, 10)).unwrap(), bytes(10, 0));
    }

    #[test]
    fn a_directory_belongs_to_one_cache_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = [dir.path().to_path_buf()];
        let first = DiskCache::open(&dirs, UNLIMITED, 0.0).unwrap();
        first.insert(&key(1, 10), &bytes(10, 0));
        fs::write(dir.path().join(TMP).join("in-flight"), b"x").unwrap();
        let e = DiskCache::open(&dirs, UNLIMITED, 0.0).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        let msg = e.to_string();
        assert!(
            msg.contains("in use") && msg.contains(&std::process::id().to_string()),
            "{msg}"
        );
        // The refused open touched nothing of the owner's.
        assert!(dir.path().join(TMP).join("in-flight").exists());
        drop(first);
        let second = DiskCache::open(&dirs, UNLIMITED, 0.0).unwrap();
        assert_eq!(second.get(&key(1, 10)).unwrap(), bytes(10, 0));
    }

    #[test]
    fn failing_directory_is_bypassed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("cache");
        let c = DiskCache::open(std::slice::from_ref(&root), UNLIMITED, 0.0).unwrap();
        c.insert(&key(1, 10), &bytes(10, 0));
        // The directory turns into a file: every operation under it fails.
        fs::remove_dir_all(&root).unwrap();
        fs::write(&root, b"not a directory").unwrap();
        assert!(!c.insert(&key(2, 10), &bytes(10, 0)));
        assert!(c.get(&key(1, 10)).is_none());
        assert!(!c.contains(&key(1, 10)));
        assert!(c.io_errors() >= 1);
        // Opening on such a path does not fail either.
        let c2 = DiskCache::open(std::slice::from_ref(&root), UNLIMITED, 0.0).unwrap();
        assert!(!c2.insert(&key(3, 10), &bytes(10, 0)));
    }

    #[test]
    fn free_space_floor_stops_caching() {
        let dir = tempfile::tempdir().unwrap();
        let c = DiskCache::open(&[dir.path().to_path_buf()], UNLIMITED, 1.0).unwrap();
        assert!(!c.insert(&key(1, 10), &bytes(10, 0)));
        assert!(c.is_empty());
        assert_eq!(fs::read_dir(dir.path().join(RAW)).unwrap().count(), 0);
    }

    #[test]
    fn staging_round_trip_and_adoption() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = [dir.path().to_path_buf()];
        let c = DiskCache::open(&dirs, UNLIMITED, 0.0).unwrap();
        let k = format!("vol/{}", key(5, 3000));
        let data = bytes(3000, 9);
        let d = c.dir_for(&k).unwrap();
        assert!(c.can_stage(&k));
        c.stage(d, &k, &data).unwrap();
        assert_eq!(
            c.read_staged(d, &k, 100, Some(10)).unwrap(),
            &data[100..110]
        );
        let found = c.scan_staging();
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].key.as_str(), found[0].data_len),
            (k.as_str(), 3000)
        );
        assert!(c.adopt_staged(d, &k, 3000));
        assert!(c.scan_staging().is_empty());
        assert_eq!(c.get(&k).unwrap(), &data[..]);
        // A damaged staged file is dropped at scan.
        c.stage(d, &key(6, 10), &bytes(10, 0)).unwrap();
        let p = dir
            .path()
            .join(STAGING)
            .join(staged_name(&key(6, 10)).unwrap());
        fs::write(&p, b"short").unwrap();
        assert!(c.scan_staging().is_empty());
        assert!(!p.exists());
    }
}
