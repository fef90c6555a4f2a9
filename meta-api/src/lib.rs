//! The metadata contract of a JuiceFS-compatible filesystem.
//!
//! This crate defines [`MetaEngine`] — the POSIX metadata operations at inode level that
//! callers use — together with the types, the one error enum and its errno table, and
//! every rule that is the same for every engine: [`name`] validation, [`perm`]ission
//! checks, POSIX [`acl`]s, inode [`flags`], [`args`] checks, [`space`] accounting and the
//! one `statfs` formula, [`xattr`] rules, [`ids`] reserved in batches, the slice
//! [`overlay`], [`locks`] and their blocking wait, the one retry policy ([`backoff`]),
//! JuiceFS's binary [`encoding`], the [`trash`]'s layout and guards, and the volume
//! settings [`Format`].
//!
//! An engine implements only its storage: the ten traits of [`backend`] (one per
//! concern, each in the module of the same name in every engine crate), and gets
//! [`MetaEngine`] from the blanket implementation here, which runs the shared checks first.
//!
//! With the `testkit` feature it also publishes the conformance suite and the reference
//! model every engine runs (`meta_api::testkit`).
//!
//! ```
//! use meta_api::{overlay, Slice};
//!
//! // Two writes into one chunk: the newer one wins where they overlap.
//! let first = Slice { pos: 0, id: 1, size: 100, off: 0, len: 100 };
//! let second = Slice { pos: 50, id: 2, size: 10, off: 0, len: 10 };
//! let layout = overlay::build(&[first, second]);
//! let ids: Vec<u64> = overlay::pieces(&layout, 0, 120).iter().map(|p| p.id).collect();
//! assert_eq!(ids, vec![1, 2, 1, 0]); // the tail past 100 bytes is a hole
//! ```

pub mod acl;
pub mod args;
pub mod backend;
pub mod backoff;
pub mod checkpoint;
pub mod clone;
pub mod compact;
pub mod copy;
pub mod dump;
pub mod encoding;
mod engine;
mod error;
pub mod flags;
mod format;
pub mod ids;
pub mod locks;
pub mod name;
mod openfiles;
pub mod overlay;
pub mod perm;
pub mod quota;
pub mod space;
pub mod trash;
pub mod tree;
mod types;
pub mod upkeep;
pub mod xattr;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use engine::{DeletedFile, MetaEngine, Purged};
pub use error::{BoxError, MetaError, Result};
pub use format::{parse_version, Format, JUICEFS_COMPAT, MAX_META_VERSION, REMOVED_SECRET};
pub use locks::{LockOwner, LockType, PlockRequest};
pub use openfiles::OpenFiles;
pub use space::{Limits, Usage};
pub use types::*;

/// Heartbeat period of sessions, in seconds; a session expires after five missed beats.
pub const HEARTBEAT_SECS: i64 = 12;
/// How long a session lives without a heartbeat, in seconds.
pub const SESSION_TTL_SECS: i64 = 5 * HEARTBEAT_SECS;
/// Inode numbers reserved per counter round trip.
pub const INODE_BATCH: u64 = 1024;
/// Slice ids reserved per counter round trip.
pub const SLICE_ID_BATCH: u64 = 4096;
