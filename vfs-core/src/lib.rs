//! The inode-level filesystem of a JuiceFS-compatible volume.
//!
//! `vfs-core` composes a metadata engine ([`meta_api::MetaEngine`]: SQLite, Redis, …) and a
//! block store ([`chunkstore::ChunkStore`]: a local directory, memory, object storage) into
//! [`Vfs`], the POSIX API at inode level that a FUSE or NFS frontend adapts and that the
//! path-level API is built on.
//!
//! - **Writes** are buffered per file in slices, cut into blocks of the volume's block size,
//!   and uploaded concurrently as blocks fill; a slice is committed to the engine only once
//!   all of its blocks are stored (data before metadata). A global memory budget makes
//!   writers wait when uploads fall behind.
//! - **Reads** overlay a chunk's slices (newest write wins, holes read as zeros), check every
//!   block's length against its key, and read ahead for sequential readers.
//! - **Deleted files** are purged in the background: metadata first, objects after. On a
//!   volume with trash days they first wait in JuiceFS's trash ([`trash`]), which is
//!   cleaned hourly and restored from with [`Vfs::restore`].
//! - **Volumes** are opened by metadata URL with [`VolumeBuilder`] (`sqlite3://…`), or
//!   assembled from parts with [`Vfs::new`]; [`format_volume`] creates one.
//!
//! - **Caching**: blocks are read through a block cache (the `cache` crate: memory, and
//!   local disk when cache directories are given), optionally with writeback staging; see
//!   [`Vfs`] for what `fsync` and `close` mean then, and [`open_store`] for the order of
//!   the store layers.
//!
//! # Durability
//!
//! What a caller may rely on, with every engine:
//!
//! - **An operation is atomic** (one engine transaction), and **survives a crash of the
//!   process once it returns**: it is committed, and nothing this process still holds in
//!   memory is needed to replay it. Data written to a file is part of this only once it is
//!   flushed (`fsync`, `flush`, the last `release`): until then it sits in the write buffer.
//! - **It survives power loss (or a kernel crash) once an `fsync` of the file
//!   ([`Vfs::fsync`]) or of a directory ([`Vfs::fsyncdir`]) returns** — for every operation
//!   this client completed before, not only the file's: `fsync` ends with the engine's
//!   durability barrier ([`MetaEngine::sync`](meta_api::MetaEngine::sync)). A clean
//!   [`Vfs::close`] passes it too.
//! - **Before any object is deleted on its behalf** (a purge, a compaction, the trash
//!   cleanup, gc), the commit that let go of it is durable: the engine passes the barrier
//!   before it hands out the slices to delete. A crash may leak objects (gc finds them); it
//!   never brings back metadata that points at deleted ones.
//!
//! How each engine keeps it: SQLite writes each commit to its write-ahead log at once and
//! syncs the log at the barrier (one `fdatasync`, free when nothing was committed since the
//! last); the TKV engine's commits are durable when acknowledged; Redis's depend on the
//! server's persistence (`appendonly yes` with `appendfsync always` for the contract as
//! written; `everysec`, Redis's default for AOF, may lose the last second on power loss).
//!
//! Cargo features: `sqlite` (default) builds in the SQLite engine for `sqlite3://` URLs;
//! `s3` (default) adds S3-compatible object storage (`s3` / `minio` volumes). Local
//! directories (`file`) and memory (`mem`) are always available.
//!
//! ```
//! use std::sync::Arc;
//!
//! use bytes::Bytes;
//! use chunkstore::MemStore;
//! use meta_api::testkit::model::ModelEngine;
//! use meta_api::{Context, Format, MetaEngine, ROOT_INO};
//! use vfs_core::{Vfs, VfsOptions};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> vfs_core::Result<()> {
//! // An in-memory engine and block store (any `MetaEngine` / `ChunkStore` works).
//! let meta = ModelEngine::unformatted();
//! let format = Format::new("demo", "00000000-0000-4000-8000-000000000000", "mem", "");
//! meta.init(&format, false).await?;
//! let vfs = Vfs::new(Arc::new(meta), Arc::new(MemStore::new()), format, VfsOptions::default()).await?;
//! let ctx = Context::root();
//!
//! let (entry, fh) = vfs
//!     .create(&ctx, ROOT_INO, b"hello.txt", 0o644, libc::O_RDWR)
//!     .await?;
//! vfs.write(&ctx, fh, 0, Bytes::from_static(b"hello, world")).await?;
//! vfs.release(&ctx, fh).await?; // uploads the block, then commits the slice
//!
//! let fh = vfs.open(&ctx, entry.ino, libc::O_RDONLY).await?;
//! assert_eq!(&vfs.read(&ctx, fh, 7, 100).await?[..], b"world");
//! vfs.release(&ctx, fh).await?;
//! vfs.close().await?;
//! # Ok(())
//! # }
//! ```

pub mod backup;
mod budget;
pub mod checkpoint;
pub mod compactor;
mod error;
mod file_state;
mod jobs;
mod meta_cache;
mod open_files;
mod options;
mod path_api;
pub mod quota;
mod readahead;
mod reader;
#[cfg(feature = "s3")]
mod secret;
mod store_stack;
pub mod trash;
pub mod upkeep;
mod vfs;
mod volume;
mod writer;

pub use ::cache::CacheMetrics;
pub use compactor::CompactStats;
pub use error::{Result, VfsError};
pub use meta_cache::{MetaCacheOptions, MetaCacheStats};
pub use options::{AtimeMode, VfsOptions};
pub use path_api::{
    DirEntry, File, FileSystem, FileType, Metadata, OpenOptions, Permissions, ReadDir,
};
pub use store_stack::open_store;
pub use vfs::{DirItem, Vfs, JOBS_WAIT_ON_CLOSE};
pub use volume::{connect_meta, format_volume, VolumeBuilder};

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
