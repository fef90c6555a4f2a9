//! `CacheOptions`: sizes, directories and modes of a [`Cached`](crate::Cached) store.

use std::path::PathBuf;

use chunkstore::{Result, StoreError};

/// How a [`Cached`](crate::Cached) store caches. Build with [`CacheOptions::builder`]; the
/// defaults follow JuiceFS's (`--cache-size 100G`, `--free-space-ratio 0.1`,
/// `--max-uploads 20`, `--prefetch 1`, writeback off).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CacheOptions {
    /// Bytes of block data held in memory (0: no memory cache).
    pub memory_bytes: u64,
    /// Cache directories (empty: no disk cache and no writeback). Blocks are spread over
    /// them by key hash; give one per disk.
    pub dirs: Vec<PathBuf>,
    /// Bytes on disk for cached blocks, shared equally by the directories. Staged
    /// (writeback) blocks are bounded separately by `staging_bytes`.
    pub disk_bytes: u64,
    /// Fraction of each cache disk kept free: below it, cached blocks are evicted and no new
    /// ones are written.
    pub free_space_ratio: f64,
    /// Writeback: `put` returns once the block is durable in a local staging directory and
    /// uploads it in the background (see the crate docs for what that means for durability).
    pub writeback: bool,
    /// Bytes of staged blocks waiting for upload; writers wait when it is reached.
    pub staging_bytes: u64,
    /// How long a writer waits for room in a full staging area (default 30 s). After it,
    /// the block is uploaded at once instead; if that fails too (the store is down), the
    /// write fails with an error saying staging is full — never a wait without end.
    pub staging_wait: std::time::Duration,
    /// Background uploads of staged blocks running at once.
    pub upload_concurrency: usize,
    /// Background prefetches (readahead) running at once; 0 disables prefetching.
    pub prefetch_concurrency: usize,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            memory_bytes: 128 << 20,
            dirs: Vec::new(),
            disk_bytes: 100 << 30,
            free_space_ratio: 0.1,
            writeback: false,
            staging_bytes: 1 << 30,
            staging_wait: std::time::Duration::from_secs(30),
            upload_concurrency: 20,
            prefetch_concurrency: 1,
        }
    }
}

impl CacheOptions {
    /// A builder starting from the defaults.
    pub fn builder() -> CacheOptionsBuilder {
        CacheOptionsBuilder {
            opts: CacheOptions::default(),
        }
    }

    /// Checks that the options make sense together.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..1.0).contains(&self.free_space_ratio) {
            return Err(StoreError::Invalid(format!(
                "free_space_ratio {} is not in [0, 1)",
                self.free_space_ratio
            )));
        }
        if self.writeback && self.dirs.is_empty() {
            return Err(StoreError::Invalid(
                "writeback needs at least one cache directory to stage blocks in".into(),
            ));
        }
        if self.writeback && (self.upload_concurrency == 0 || self.staging_bytes == 0) {
            return Err(StoreError::Invalid(
                "writeback needs upload_concurrency > 0 and staging_bytes > 0".into(),
            ));
        }
        Ok(())
    }
}

/// Builds [`CacheOptions`]; see its fields for the meaning of each setting.
#[derive(Debug, Clone)]
pub struct CacheOptionsBuilder {
    opts: CacheOptions,
}

impl CacheOptionsBuilder {
    /// Bytes of block data held in memory (0 disables the memory cache).
    pub fn memory_bytes(mut self, n: u64) -> Self {
        self.opts.memory_bytes = n;
        self
    }

    /// Adds a cache directory.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.opts.dirs.push(dir.into());
        self
    }

    /// Replaces the cache directories.
    pub fn dirs<I, P>(mut self, dirs: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<PathBuf>,
    {
        self.opts.dirs = dirs.into_iter().map(Into::into).collect();
        self
    }

    /// Bytes on disk for cached blocks, over all directories.
    pub fn disk_bytes(mut self, n: u64) -> Self {
        self.opts.disk_bytes = n;
        self
    }

    /// Fraction of each cache disk kept free, in `[0, 1)`.
    pub fn free_space_ratio(mut self, r: f64) -> Self {
        self.opts.free_space_ratio = r;
        self
    }

    /// Turns writeback on or off.
    pub fn writeback(mut self, on: bool) -> Self {
        self.opts.writeback = on;
        self
    }

    /// Sets [`CacheOptions::staging_wait`].
    pub fn staging_wait(mut self, d: std::time::Duration) -> Self {
        self.opts.staging_wait = d;
        self
    }

    /// Bytes of staged blocks allowed to wait for upload.
    pub fn staging_bytes(mut self, n: u64) -> Self {
        self.opts.staging_bytes = n;
        self
    }

    /// Background uploads running at once.
    pub fn upload_concurrency(mut self, n: usize) -> Self {
        self.opts.upload_concurrency = n;
        self
    }

    /// Background prefetches running at once (0 disables prefetching).
    pub fn prefetch_concurrency(mut self, n: usize) -> Self {
        self.opts.prefetch_concurrency = n;
        self
    }

    /// The options, checked with [`CacheOptions::validate`].
    pub fn build(self) -> Result<CacheOptions> {
        self.opts.validate()?;
        Ok(self.opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_sets_and_validates() {
        let o = CacheOptions::builder()
            .memory_bytes(1)
            .dir("/a")
            .dir("/b")
            .disk_bytes(2)
            .free_space_ratio(0.2)
            .writeback(true)
            .staging_bytes(3)
            .upload_concurrency(4)
            .prefetch_concurrency(5)
            .build()
            .unwrap();
        assert_eq!(o.dirs, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!(
            (
                o.memory_bytes,
                o.disk_bytes,
                o.staging_bytes,
                o.upload_concurrency,
                o.prefetch_concurrency
            ),
            (1, 2, 3, 4, 5)
        );
        assert!(o.writeback);
        assert_eq!(
            CacheOptions::builder().build().unwrap(),
            CacheOptions::default()
        );
    }

    #[test]
    fn rejects_nonsense() {
        let bad = [
            CacheOptions::builder().free_space_ratio(1.0),
            CacheOptions::builder().free_space_ratio(-0.1),
            CacheOptions::builder().free_space_ratio(f64::NAN),
            CacheOptions::builder().writeback(true),
            CacheOptions::builder()
                .writeback(true)
                .dir("/a")
                .upload_concurrency(0),
            CacheOptions::builder()
                .writeback(true)
                .dir("/a")
                .staging_bytes(0),
        ];
        for b in bad {
            assert!(matches!(b.build(), Err(StoreError::Invalid(_))));
        }
    }
}
