//! Tunables of a [`Vfs`](crate::Vfs).

use std::time::Duration;

use meta_api::SessionInfo;

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
    pub readahead: u64,
    /// Bytes of whole blocks kept in memory for readers (default 64 MiB).
    pub block_cache_size: usize,
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
}

impl Default for VfsOptions {
    fn default() -> VfsOptions {
        VfsOptions {
            buffer_size: 300 << 20,
            upload_concurrency: 20,
            readahead: 8 << 20,
            block_cache_size: 64 << 20,
            max_open_files: 65536,
            flush_idle: Duration::from_secs(1),
            purge_interval: Some(Duration::from_secs(5)),
            heartbeat_interval: Duration::from_secs(meta_api::HEARTBEAT_SECS.unsigned_abs()),
            start_session: true,
            session_info: None,
        }
    }
}

impl VfsOptions {
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
