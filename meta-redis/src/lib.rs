//! A JuiceFS-compatible [`MetaEngine`](meta_api::MetaEngine) on Redis.
//!
//! [`RedisMeta`] keeps a volume's metadata in Redis with JuiceFS 1.x's schema, so a volume
//! formatted by `juicefs format redis://…` opens here and the real `juicefs` client reads
//! what this client writes:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `i{ino}` | string | binary attributes ([`meta_api::encoding::encode_attr`]) |
//! | `d{ino}` | hash | entry name → type `u8` + inode `u64` |
//! | `p{ino}` | hash | parent → link count, for inodes with several hard links |
//! | `c{ino}_{indx}` | list | 24-byte slice records of one 64 MiB chunk, in write order |
//! | `s{ino}` / `x{ino}` | string / hash | symlink target / extended attributes |
//! | `sliceRef` | hash | `k{id}_{size}` → references − 1 (a missing field is one reference) |
//! | `delfiles` | zset | `{ino}:{length}` → deletion time: files whose data waits to be purged |
//! | `allSessions` / `sessionInfos` | zset / hash | session → expiry / client JSON |
//! | `session{sid}` | set | inodes a session sustains (unlinked while open) |
//! | `nextinode`, `nextchunk`, `nextsession` | counters | the **last** id handed out |
//! | `usedSpace`, `totalInodes`, `setting` | strings | usage counters, settings JSON |
//! | `dirDataLength`, `dirUsedSpace`, `dirUsedInodes` | hashes | per-directory statistics (when `DirStats` is on) |
//! | `acl` / `aclMaxId` | hash / counter | POSIX ACL id → rule ([`meta_api::acl::Rule::encode`]) / the last id (when `EnableACL` is on) |
//!
//! Every key starts with the volume's prefix: none on a single server (as `juicefs`
//! does), `{N}` on Redis Cluster in JuiceFS, or what [`RedisOptions::key_prefix`] says.
//! This client adds a few keys of its own, which `juicefs` ignores: `o{ino}` (the
//! sessions that have a file open) and `opened{sid}` (its reverse) so that an unlink by
//! *any* client sustains a file open in another one; `chunkTail` (inode → last chunk
//! that may hold slices past the length after a shrink) so that purging a file releases
//! every slice; `txmark{token}`, one short-lived commit marker per connection (see
//! below); and `loadSliceRefs`, the slices' occurrences counted while a load of a dump is
//! under way (turned into `sliceRef` fields and removed when it ends).
//!
//! Counters follow JuiceFS's Redis convention: they hold the last id used, ids are
//! reserved in batches ([`meta_api::INODE_BATCH`], [`meta_api::SLICE_ID_BATCH`]) with one
//! `INCRBY`, and a volume shared with `juicefs` clients never hands out an id twice.
//!
//! # Atomicity and retries
//!
//! Every operation is one atomic step: a `WATCH`/`MULTI`/`EXEC` transaction on a
//! dedicated connection from a small pool (retried on conflict), one atomic pipeline, or
//! a single read (lookup is one Lua script). Reads and idempotent writes are retried
//! after connection failures, with backoff, until [`RedisOptions::retry_window`] closes;
//! a failure before a commit is sent changed nothing and is retried the same way. A
//! commit whose reply was lost is never blindly repeated: every commit also sets its
//! connection's marker key, and after a lost reply the client fences the old connection
//! (`CLIENT KILL ID`, or the server's new `run_id` after a restart) and reads the marker
//! to learn whether the commit ran. Only if the server stays unreachable does the call
//! fail with [`TransportKind::OutcomeUnknown`] (not retryable). Every request has a
//! timeout ([`RedisOptions::op_timeout`]).
//!
//! # Example
//!
//! ```no_run
//! use meta_api::{Context, Format, MetaEngine, SessionInfo, ROOT_INO};
//! use meta_redis::RedisMeta;
//!
//! # async fn demo() -> meta_api::Result<()> {
//! let meta = RedisMeta::open("redis://127.0.0.1:6379/1").await?;
//! meta.init(&Format::new("vol", "uuid-1", "file", "/tmp/vol/"), false).await?;
//! meta.new_session(&SessionInfo::default()).await?;
//! let dir = meta.mkdir(&Context::root(), ROOT_INO, b"docs", 0o755).await?;
//! assert_eq!(meta.lookup(&Context::root(), ROOT_INO, b"docs").await?.ino, dir.ino);
//! # Ok(())
//! # }
//! ```
//!
//! # Not (yet) covered
//!
//! Redis Cluster and Sentinel addresses (Cluster is refused with a clear error), TLS
//! (`rediss://` is refused unless built with the `tls` feature), moving deleted files to
//! the trash (files are deleted directly even when the volume's `TrashDays` is set),
//! quotas (their fields are removed with their directory but neither enforced nor
//! updated), locks (a reaped session's locks are released, none are taken).

mod conn;
mod engine;
mod error;
mod keys;
mod txn;
mod url;

pub use engine::{server_warnings, RedisMeta, RedisOptions};
pub use error::{is_outcome_unknown, transport_kind, Transport, TransportKind};
