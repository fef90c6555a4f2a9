//! Tunables of a [`Vfs`](crate::Vfs).

use std::path::PathBuf;
use std::time::Duration;

use cache::CacheOptions;
use meta_api::SessionInfo;

use crate::meta_cache::MetaCacheOptions;
use crate::{Result, VfsError};

/// Options of a [`Vfs`](crate::Vfs): memory budgets, concurrency and background-job timing.
///
/// Build with [`VfsOptions::default`] and the setters; new fields get defaults, so code
/// written against this version keeps compiling.
///
/// ```
/// let opts = vfs_core::VfsOptions::default()
///     .buffer_size(64 << 20)
///     .upload_concurrency(8);
/// assert_eq!(opts.buffer_size, 64 << 20);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VfsOptions {
    /// Bytes of written-but-not-uploaded data held in memory across all files; a writer
    /// waits when it is used up (default 300 MiB, JuiceFS's `--buffer-size`). Raised to at
    /// least two blocks.
    pub buffer_size: usize,
    /// Blocks uploaded at the same time (default 20, JuiceFS's `--max-uploads`).
    pub upload_concurrency: usize,
    /// Bytes read ahead of a sequential reader (default 8 MiB; 0 disables readahead).
    /// Readahead fills the block cache, so it needs one: with neither a memory cache
    /// ([`block_cache_size`](Self::block_cache_size) 0) nor a cache directory, there is none.
    pub readahead: u64,
    /// Bytes of whole blocks kept in memory for readers: the memory tier of the block
    /// cache (default 64 MiB; 0 turns it off).
    pub block_cache_size: usize,
    /// Directories of the disk block cache, one per disk (default none: no disk cache).
    /// Each volume uses a subdirectory named by its UUID, as JuiceFS's `--cache-dir` does,
    /// so one directory can serve several volumes; a volume's subdirectory is locked by the
    /// VFS that has it open, and a second one (another process) fails to open with an error
    /// naming the owner's pid.
    pub cache_dirs: Vec<PathBuf>,
    /// Bytes of cached blocks on disk over all cache directories (default 100 GiB,
    /// JuiceFS's `--cache-size`); blocks staged for writeback are bounded separately by
    /// [`staging_size`](Self::staging_size).
    pub cache_size: u64,
    /// Fraction of each cache disk kept free (default 0.1, JuiceFS's `--free-space-ratio`).
    pub cache_free_ratio: f64,
    /// Writeback (default off; needs a cache directory): a block counts as written once it
    /// is durable in a local staging directory, and is uploaded in the background. `fsync`
    /// then means "durable on this machine's cache disk"; see [`Vfs`](crate::Vfs) for what
    /// that means when the disk is lost and for [`Vfs::close`](crate::Vfs::close).
    pub writeback: bool,
    /// Bytes of staged blocks waiting for upload in writeback mode; writers wait when it
    /// is reached (default 1 GiB).
    pub staging_size: u64,
    /// How long [`Vfs::close`](crate::Vfs::close) waits for staged blocks to be uploaded
    /// in writeback mode (default 30 s). Blocks still staged then stay on the cache disk
    /// and are uploaded by the next VFS opened with the same cache directories.
    pub upload_wait_on_close: Duration,
    /// Blocks fetched in the background at once for readahead, over all files (default 8;
    /// 0 turns readahead off).
    pub prefetch_concurrency: usize,
    /// Slice compactions running in the background at once (default 2; 0 turns automatic
    /// background compaction off, leaving [`Vfs::compact`](crate::Vfs::compact) and the
    /// compaction a write waits for when its chunk reaches
    /// [`meta_api::compact::SYNC_SLICES`] records).
    pub compact_concurrency: usize,
    /// Open file and directory handles allowed at once; more is `EMFILE` (default 65536).
    pub max_open_files: usize,
    /// A file's buffered writes are written back after this long without a write
    /// (default 1 s).
    pub flush_idle: Duration,
    /// How often deleted files are purged in the background; `None` leaves purging to
    /// [`Vfs::purge_deleted`](crate::Vfs::purge_deleted) (default 5 s).
    pub purge_interval: Option<Duration>,
    /// How often the session is extended (default: [`meta_api::HEARTBEAT_SECS`]).
    pub heartbeat_interval: Duration,
    /// Whether the VFS registers its own session with the engine when it starts (default
    /// true). Turn it off when the engine was given a session already.
    pub start_session: bool,
    /// What the session says about this client; `None` fills in host, process and version.
    pub session_info: Option<SessionInfo>,
    /// When reads and directory listings update access times (default
    /// [`AtimeMode::RelAtime`]).
    pub atime_mode: AtimeMode,
    /// The in-process metadata cache: how long attributes and names are answered from
    /// memory (default [`MetaCacheOptions::default`]: attributes and directory names 1 s,
    /// file names never; see [`MetaCacheOptions`]).
    pub meta_cache: MetaCacheOptions,
    /// How often the volume's metadata is backed up into its bucket
    /// (`meta/dump-YYYY-MM-DD-HHMMSS.json.gz`, see [`crate::backup`]); one client of the
    /// volume is elected for each backup. `None` turns the job off in this client (default
    /// one hour, JuiceFS's `--backup-meta`).
    pub backup_interval: Option<Duration>,
    /// Leave the trash out of the metadata backups (default false, JuiceFS's
    /// `--backup-skip-trash`).
    pub backup_skip_trash: bool,
}

/// When reading a file or listing a directory updates its access time (`atime`), as
/// Linux's mount options of the same names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AtimeMode {
    /// Never: reads change no metadata.
    NoAtime,
    /// Only when the access time is not after the modification or change time, or is at
    /// least a day old: at most one metadata update per change or per day.
    #[default]
    RelAtime,
    /// On every read and listing (one metadata update each).
    StrictAtime,
}

impl Default for VfsOptions {
    fn default() -> VfsOptions {
        VfsOptions {
            buffer_size: 300 << 20,
            upload_concurrency: 20,
            readahead: 8 << 20,
            block_cache_size: 64 << 20,
            cache_dirs: Vec::new(),
            cache_size: 100 << 30,
            cache_free_ratio: 0.1,
            writeback: false,
            staging_size: 1 << 30,
            upload_wait_on_close: Duration::from_secs(30),
            prefetch_concurrency: 8,
            compact_concurrency: 2,
            max_open_files: 65536,
            flush_idle: Duration::from_secs(1),
            purge_interval: Some(Duration::from_secs(5)),
            heartbeat_interval: Duration::from_secs(meta_api::HEARTBEAT_SECS.unsigned_abs()),
            start_session: true,
            session_info: None,
            atime_mode: AtimeMode::default(),
            meta_cache: MetaCacheOptions::default(),
            backup_interval: Some(crate::backup::DEFAULT_INTERVAL),
            backup_skip_trash: false,
        }
    }
}

impl VfsOptions {
    /// Sets [`VfsOptions::backup_interval`] (`None`: no metadata backups from this client).
    pub fn backup_interval(mut self, every: Option<Duration>) -> Self {
        self.backup_interval = every;
        self
    }
    /// Sets [`VfsOptions::backup_skip_trash`].
    pub fn backup_skip_trash(mut self, skip: bool) -> Self {
        self.backup_skip_trash = skip;
        self
    }
    /// Sets [`VfsOptions::buffer_size`].
    pub fn buffer_size(mut self, bytes: usize) -> Self {
        self.buffer_size = bytes;
        self
    }
    /// Sets [`VfsOptions::upload_concurrency`].
    pub fn upload_concurrency(mut self, n: usize) -> Self {
        self.upload_concurrency = n;
        self
    }
    /// Sets [`VfsOptions::readahead`].
    pub fn readahead(mut self, bytes: u64) -> Self {
        self.readahead = bytes;
        self
    }
    /// Sets [`VfsOptions::block_cache_size`].
    pub fn block_cache_size(mut self, bytes: usize) -> Self {
        self.block_cache_size = bytes;
        self
    }
    /// Adds a disk cache directory ([`VfsOptions::cache_dirs`]).
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dirs.push(dir.into());
        self
    }
    /// Sets [`VfsOptions::cache_size`].
    pub fn cache_size(mut self, bytes: u64) -> Self {
        self.cache_size = bytes;
        self
    }
    /// Sets [`VfsOptions::cache_free_ratio`].
    pub fn cache_free_ratio(mut self, ratio: f64) -> Self {
        self.cache_free_ratio = ratio;
        self
    }
    /// Sets [`VfsOptions::writeback`].
    pub fn writeback(mut self, on: bool) -> Self {
        self.writeback = on;
        self
    }
    /// Sets [`VfsOptions::staging_size`].
    pub fn staging_size(mut self, bytes: u64) -> Self {
        self.staging_size = bytes;
        self
    }
    /// Sets [`VfsOptions::upload_wait_on_close`].
    pub fn upload_wait_on_close(mut self, d: Duration) -> Self {
        self.upload_wait_on_close = d;
        self
    }
    /// Sets [`VfsOptions::compact_concurrency`].
    pub fn compact_concurrency(mut self, n: usize) -> Self {
        self.compact_concurrency = n;
        self
    }

    /// Sets [`VfsOptions::prefetch_concurrency`].
    pub fn prefetch_concurrency(mut self, n: usize) -> Self {
        self.prefetch_concurrency = n;
        self
    }
    /// Sets [`VfsOptions::max_open_files`].
    pub fn max_open_files(mut self, n: usize) -> Self {
        self.max_open_files = n;
        self
    }
    /// Sets [`VfsOptions::flush_idle`].
    pub fn flush_idle(mut self, d: Duration) -> Self {
        self.flush_idle = d;
        self
    }
    /// Sets [`VfsOptions::purge_interval`].
    pub fn purge_interval(mut self, d: Option<Duration>) -> Self {
        self.purge_interval = d;
        self
    }
    /// Sets [`VfsOptions::heartbeat_interval`].
    pub fn heartbeat_interval(mut self, d: Duration) -> Self {
        self.heartbeat_interval = d;
        self
    }
    /// Sets [`VfsOptions::start_session`].
    pub fn start_session(mut self, yes: bool) -> Self {
        self.start_session = yes;
        self
    }
    /// Sets [`VfsOptions::session_info`].
    pub fn session_info(mut self, info: SessionInfo) -> Self {
        self.session_info = Some(info);
        self
    }
    /// Sets [`VfsOptions::atime_mode`].
    pub fn atime_mode(mut self, mode: AtimeMode) -> Self {
        self.atime_mode = mode;
        self
    }
    /// Sets [`VfsOptions::meta_cache`].
    pub fn meta_cache(mut self, opts: MetaCacheOptions) -> Self {
        self.meta_cache = opts;
        self
    }

    /// The block cache these options ask for, for the volume `volume_id` (its UUID);
    /// `None` when there is neither a memory cache nor a cache directory.
    pub(crate) fn cache_options(&self, volume_id: &str) -> Result<Option<CacheOptions>> {
        if self.writeback && self.cache_dirs.is_empty() {
            return Err(VfsError::InvalidArgument(
                "writeback needs a cache directory to stage blocks in",
            ));
        }
        if self.block_cache_size == 0 && self.cache_dirs.is_empty() {
            return Ok(None);
        }
        if !(0.0..1.0).contains(&self.cache_free_ratio) {
            return Err(VfsError::InvalidArgument(
                "cache_free_ratio must be in [0, 1)",
            ));
        }
        // The UUID names the volume's cache subdirectory; anything that is not a plain
        // file name must not pick a directory elsewhere.
        if volume_id.is_empty()
            || volume_id.starts_with('.')
            || volume_id.contains(['/', '\\', '\0'])
        {
            return Err(VfsError::InvalidArgument(
                "the volume has no UUID to name its cache directory by",
            ));
        }
        let opts = CacheOptions::builder()
            .memory_bytes(self.block_cache_size as u64)
            .dirs(self.cache_dirs.iter().map(|d| d.join(volume_id)))
            .disk_bytes(self.cache_size)
            .free_space_ratio(self.cache_free_ratio)
            .writeback(self.writeback)
            .staging_bytes(self.staging_size.max(1))
            .upload_concurrency(self.upload_concurrency.max(1))
            .prefetch_concurrency(self.prefetch_concurrency)
            .build()
            .map_err(|e| VfsError::Store(std::sync::Arc::new(e)))?;
        Ok(Some(opts))
    }

    /// The session description used when none was given.
    pub(crate) fn effective_session_info(&self) -> SessionInfo {
        if let Some(info) = &self.session_info {
            return info.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "localhost".to_string());
        SessionInfo {
            version: format!("tessera-vfs-core/{}", env!("CARGO_PKG_VERSION")),
            host_name: host,
            mount_point: std::env::current_exe()
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_default(),
            process_id: std::process::id(),
        }
    }
}
