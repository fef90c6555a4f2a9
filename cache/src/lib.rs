//! Memory and local-disk block cache for JuiceFS-compatible volumes, as a
//! [`ChunkStore`](chunkstore::ChunkStore) decorator, with crash-safe writeback staging.
//!
//! [`Cached<S>`](Cached) wraps any store and is itself a store, so it stacks like the other
//! decorators. It caches the blocks' plain bytes, whose length the block key states, so it
//! belongs *above* compression: `Cached<Compressed<Prefixed<S3Store>>>`.
//!
//! ```
//! use bytes::Bytes;
//! use cache::{CacheOptions, Cached};
//! use chunkstore::{BlockKey, ChunkStore, ChunkStoreExt, MemStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> chunkstore::Result<()> {
//! let opts = CacheOptions::builder().memory_bytes(64 << 20).build()?;
//! let store = Cached::open(MemStore::new(), opts).await?;
//!
//! let key = BlockKey::new(1234, 0, 11).to_key(false);
//! store.put(&key, Bytes::from_static(b"block bytes")).await?;
//! // Written blocks are cached: this read does not reach the inner store.
//! assert_eq!(store.get_range(&key, 6, Some(5)).await?, &b"bytes"[..]);
//! assert_eq!(store.metrics().mem_hits, 1);
//! assert_eq!(store.metrics().fetches, 0);
//! assert_eq!(store.inner().get(&key).await?, &b"block bytes"[..]);
//! # Ok(())
//! # }
//! ```
//!
//! # Reading
//!
//! A block read looks in memory ([`MemCache`]), then in writeback staging, then in the cache
//! directories ([`DiskCache`]), and only then asks the inner store — once per block however
//! many readers miss it at the same time (*singleflight*): the first fetches, the others wait
//! for its bytes. A fetched block goes into memory at once and onto disk in the background.
//! [`Cached::prefetch`] starts such a fetch without waiting for it (readahead).
//!
//! **Ranged reads** of a block fetch and cache the *whole* block, then serve the range from
//! it; a later range of the same block is a hit. That holds only for keys that look like
//! blocks — `[prefix/]chunks/…/{id}_{index}_{len}` as
//! [`BlockKey::parse_prefixed`](chunkstore::BlockKey::parse_prefixed) reads them, at most
//! [`MAX_CACHED_BLOCK`] long — because only there is the whole object known to be small.
//! Every other key (volume settings, dumps, anything else) passes through uncached.
//!
//! # Integrity and failures
//!
//! - A block fetched from the store must have the length its key states; otherwise the
//!   read fails with `Corrupt` and nothing is cached.
//! - A disk-cache file carries a CRC32C per 32 KiB page, verified on *every* read (only the
//!   pages a range touches). A corrupt, truncated or vanished file is dropped and the block
//!   refetched; bad bytes are never returned.
//! - The cache never fails a read: a full cache disk (below `free_space_ratio`) stops
//!   caching, a failing one is bypassed for a while (with a `tracing` warning) and retried,
//!   a cache directory deleted while running is recreated on the next write.
//! - Opening rebuilds each directory's index from a listing — names and sizes, not
//!   contents — in memory proportional to the number of cached blocks.
//!
//! # Writeback, and what `fsync` means with it
//!
//! With [`CacheOptions::writeback`], `put` of a block writes it to a staging directory on a
//! local cache disk, `fsync`s the file and its directory, and returns; a background task
//! uploads it to the inner store (retrying until it succeeds) and then moves the file into
//! the cache. Until then, reads of the block are served from staging, `head` and
//! `list_page` report it, and it cannot be evicted. Staging is bounded
//! ([`CacheOptions::staging_bytes`]): writers wait when it is full. [`Cached::flush`] waits
//! until everything staged so far is uploaded. After a crash, the next [`Cached::open`] of
//! the same directories finds the staged blocks and uploads them.
//!
//! So in writeback mode a slice may be committed to metadata as soon as its blocks are
//! staged durably, and the object store catches up later. **A block lives on one local
//! disk until it is uploaded: losing that disk (or its directory) before the upload loses
//! the block, and files whose metadata points at it read as errors.** Other clients of the
//! volume cannot read such a block until it is uploaded either. Without writeback, `put`
//! returns only when the inner store has the block. Non-block keys, and blocks that cannot
//! be staged (the disk is full or failing), are always written through synchronously.
//!
//! # Cache directories
//!
//! Each directory holds `raw/` (cached blocks, one file per block, named by key),
//! `staging/` (writeback blocks not yet uploaded) and `tmp/` (files being written, renamed
//! into place when complete). Blocks are spread over several directories by a hash of their
//! key. A directory must be used by one process at a time; give each volume its own (JuiceFS
//! uses `<cache-dir>/<volume UUID>/`).

mod cached;
mod disk;
mod flight;
mod lru;
mod mem;
mod metrics;
mod options;
mod staging;

pub use cached::{Cached, MAX_CACHED_BLOCK};
pub use disk::DiskCache;
pub use mem::MemCache;
pub use metrics::CacheMetrics;
pub use options::{CacheOptions, CacheOptionsBuilder};
