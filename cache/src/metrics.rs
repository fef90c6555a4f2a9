//! Counters of a [`Cached`](crate::Cached) store, read as a [`CacheMetrics`] snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a cache's counters (since it was opened) and gauges (now).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheMetrics {
    /// Block reads served from memory.
    pub mem_hits: u64,
    /// Block reads served from a cache directory.
    pub disk_hits: u64,
    /// Block reads served from writeback staging (written, not yet uploaded).
    pub staging_hits: u64,
    /// Block reads that had to wait for the store (their own fetch or a concurrent one).
    pub misses: u64,
    /// Reads issued to the underlying store for blocks (reads plus prefetches; concurrent
    /// misses of one block share one).
    pub fetches: u64,
    /// Bytes returned to readers from memory, disk or staging.
    pub bytes_from_cache: u64,
    /// Bytes read from the underlying store for blocks.
    pub bytes_from_store: u64,
    /// Blocks evicted from memory.
    pub mem_evictions: u64,
    /// Blocks evicted from the cache directories.
    pub disk_evictions: u64,
    /// Cache files found corrupt or truncated on read, dropped and refetched.
    pub corrupt_dropped: u64,
    /// Cache disk I/O errors (each bypasses the directory for a while).
    pub disk_errors: u64,
    /// Prefetches queued.
    pub prefetches: u64,
    /// Prefetches dropped because the queue was full.
    pub prefetches_dropped: u64,
    /// Staged blocks uploaded to the store.
    pub uploads: u64,
    /// Bytes of staged blocks uploaded.
    pub bytes_uploaded: u64,
    /// Failed upload attempts (each is retried).
    pub upload_errors: u64,
    /// Staged blocks that could not be read back for upload: data lost.
    pub staged_lost: u64,
    /// Writes that could not be staged and were uploaded synchronously instead.
    pub staging_bypassed: u64,
    /// Gauge: blocks staged and not yet uploaded.
    pub staged_blocks: u64,
    /// Gauge: bytes staged and not yet uploaded.
    pub staged_bytes: u64,
    /// Gauge: writers waiting for staging room.
    pub writers_waiting: u64,
    /// Gauge: bytes of block data in memory.
    pub mem_bytes: u64,
    /// Gauge: bytes on disk of cached blocks.
    pub disk_bytes: u64,
}

impl CacheMetrics {
    /// Reads served without the store: memory, disk and staging hits.
    pub fn hits(&self) -> u64 {
        self.mem_hits + self.disk_hits + self.staging_hits
    }
}

/// The live counters behind [`CacheMetrics`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) mem_hits: AtomicU64,
    pub(crate) disk_hits: AtomicU64,
    pub(crate) staging_hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) fetches: AtomicU64,
    pub(crate) bytes_from_cache: AtomicU64,
    pub(crate) bytes_from_store: AtomicU64,
    pub(crate) prefetches: AtomicU64,
    pub(crate) prefetches_dropped: AtomicU64,
    pub(crate) uploads: AtomicU64,
    pub(crate) bytes_uploaded: AtomicU64,
    pub(crate) upload_errors: AtomicU64,
    pub(crate) staged_lost: AtomicU64,
    pub(crate) staging_bypassed: AtomicU64,
}

/// Adds `n` to a counter.
pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    /// The counters' current values; gauges are filled in by the caller.
    pub(crate) fn snapshot(&self) -> CacheMetrics {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CacheMetrics {
            mem_hits: g(&self.mem_hits),
            disk_hits: g(&self.disk_hits),
            staging_hits: g(&self.staging_hits),
            misses: g(&self.misses),
            fetches: g(&self.fetches),
            bytes_from_cache: g(&self.bytes_from_cache),
            bytes_from_store: g(&self.bytes_from_store),
            prefetches: g(&self.prefetches),
            prefetches_dropped: g(&self.prefetches_dropped),
            uploads: g(&self.uploads),
            bytes_uploaded: g(&self.bytes_uploaded),
            upload_errors: g(&self.upload_errors),
            staged_lost: g(&self.staged_lost),
            staging_bypassed: g(&self.staging_bypassed),
            ..CacheMetrics::default()
        }
    }
}
