//! Immutable block storage for JuiceFS-compatible volumes.
//!
//! A file's bytes live in write-once **blocks** (at most 4 MiB by default), stored as objects
//! under JuiceFS's key layout (`{volume}/chunks/{id/1_000_000}/{id/1000}/{id}_{index}_{len}`,
//! see [`key`]). This crate holds:
//!
//! - the [`ChunkStore`] trait (put / ranged get / delete / list / head) and its conveniences
//!   in [`ChunkStoreExt`];
//! - backends: [`MemStore`] (in memory) and [`FsStore`] (a local directory, JuiceFS's `file`
//!   storage);
//! - decorators that implement the same trait and stack: [`Prefixed`] (the volume's key
//!   prefix) and [`Compressed`] (per-block LZ4 / zstd, byte-compatible with JuiceFS);
//! - the block key layout ([`BlockKey`], [`slice_blocks`]);
//! - with feature `testkit`, the conformance suite every backend runs.
//!
//! ```
//! use bytes::Bytes;
//! use chunkstore::{BlockKey, ChunkStore, ChunkStoreExt, Compressed, Compression, MemStore, Prefixed};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> chunkstore::Result<()> {
//! let store = MemStore::new();
//! store.put("greeting", Bytes::from_static(b"hello, world")).await?;
//! assert_eq!(store.get("greeting").await?, &b"hello, world"[..]);
//! assert_eq!(store.get_range("greeting", 7, Some(5)).await?, &b"world"[..]);
//!
//! // A volume "myvol" with LZ4-compressed blocks, as `juicefs format --compress lz4` makes.
//! let volume = Compressed::new(Prefixed::new(MemStore::new(), "myvol")?, Compression::Lz4);
//! let block = BlockKey::new(1234, 0, 11);
//! let key = block.to_key(false);
//! assert_eq!(key, "chunks/0/1/1234_0_11");
//! volume.put(&key, Bytes::from_static(b"block bytes")).await?;
//! assert_eq!(volume.get_block(&key, u64::from(block.len)).await?, &b"block bytes"[..]);
//! # Ok(())
//! # }
//! ```

mod compress;
mod error;
mod faulty;
mod fs;
pub mod key;
mod mem;
mod prefixed;
mod retry;
#[cfg(feature = "s3")]
mod s3;
mod store;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use compress::{Compressed, Compression, ZSTD_LEVEL};
pub use error::{BoxError, Result, StoreError};
pub use faulty::{FaultConfig, FaultStats, Faulty};
pub use fs::FsStore;
pub use key::{slice_blocks, validate_key, BlockKey, SliceBlocks};
pub use mem::MemStore;
pub use prefixed::Prefixed;
pub use retry::{Retry, RetryOptions, RetryStats};
#[cfg(feature = "s3")]
pub use s3::{ListOrder, S3Options, S3Store};
pub use store::{ChunkStore, ChunkStoreExt, ListPage, ObjectMeta};
