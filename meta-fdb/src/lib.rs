//! A JuiceFS-compatible metadata engine over a transactional, ordered key-value store.
//!
//! JuiceFS's "TKV" engines (TiKV, FoundationDB, etcd, BadgerDB, its in-memory store) share
//! one key layout ([`keys`]) and one set of algorithms over a tiny transaction interface.
//! This crate does the same: [`TkvMeta`] implements every [`meta_api::MetaEngine`]
//! operation once, over the [`KvStore`]/[`KvTxn`] traits — transactions as retried
//! closures, in the shape of FoundationDB's `Database::run` — and two stores implement
//! those traits:
//!
//! - [`MemKv`]: an in-process ordered store with serializable optimistic transactions
//!   (read sets and scanned ranges validated at commit). Always built; the conformance
//!   suite runs on it in CI. URL `tkv-mem://NAME`: every client in the process that opens
//!   the same name shares the store, so two clients can open one volume.
//! - `FdbKv`: FoundationDB through the `foundationdb` crate, behind the cargo feature
//!   `fdb` (off by default). URL `fdb://[CLUSTER-FILE]?prefix=VOLUME`, e.g.
//!   `fdb:///etc/foundationdb/fdb.cluster?prefix=vol`; without a path the client library's
//!   default cluster file is used. As JuiceFS does, every key of the volume starts with
//!   the prefix followed by the byte `0xFD`, so a volume written here is a volume the
//!   `juicefs` client opens with the same URL, and the other way round.
//!
//! A transaction whose commit had an unknown outcome (FoundationDB's
//! `commit_unknown_result`) is run again only after its commit marker says whether the
//! earlier attempt landed ([`kv::markers`]), so no operation applies twice or answers
//! `EEXIST` to its own create. The conformance suite runs a second time on a [`MemKv`]
//! that makes every third commit's outcome unknown ([`MemKv::inject_unknown_commits`]).
//!
//! ```
//! use meta_api::{Context, Format, MetaEngine, SessionInfo, ROOT_INO};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> meta_api::Result<()> {
//! let meta = meta_fdb::open("tkv-mem://doc-example")?;
//! meta.init(&Format::new("vol", "5c8e1a2e", "file", "/tmp/vol/"), false).await?;
//! meta.new_session(&SessionInfo::default()).await?;
//!
//! let ctx = Context::root();
//! let dir = meta.mkdir(&ctx, ROOT_INO, b"docs", 0o755).await?;
//! assert_eq!(meta.lookup(&ctx, ROOT_INO, b"docs").await?.ino, dir.ino);
//!
//! // A second client of the same volume sees the directory.
//! let other = meta_fdb::open("tkv-mem://doc-example")?;
//! let names = other.readdir(&ctx, ROOT_INO, None, 100, false).await?;
//! assert_eq!(names[0].name, b"docs");
//! # Ok(())
//! # }
//! ```
//!
//! # Running against a real FoundationDB
//!
//! 1. Install the FoundationDB client (the `foundationdb-clients` package of a
//!    FoundationDB 7.3 release provides `libfdb_c.so` and `/etc/foundationdb/fdb.cluster`)
//!    and, for the bindings generator, `libclang-dev`.
//! 2. Build with the feature: `cargo build -p meta-fdb --features fdb`. Without
//!    `libfdb_c.so`, `cargo check`/`cargo clippy` still work (nothing is linked), which is
//!    how CI compiles this client.
//! 3. Run the conformance suite against the cluster:
//!    `FDB_CLUSTER_FILE=/etc/foundationdb/fdb.cluster cargo test -p meta-fdb --features fdb --test fdb_conformance`.
//!    Each test volume gets a fresh random prefix and is cleared afterwards.
//!
//! The FoundationDB network thread is started once per process on first use and stopped
//! by an `atexit` hook; see `kv::fdb` (feature `fdb`) for `stop_network` and for programs
//! that boot FoundationDB themselves.
//!
//! # Transaction limits
//!
//! FoundationDB aborts transactions that run longer than 5 s or write more than 10 MB.
//! Every operation is one transaction except the two that grow without bound: purging a
//! deleted file (batches of [`PURGE_BATCH`] chunks) and cleaning up a session (batches of
//! sustained inodes, open records and lock records). Each batch leaves the volume
//! consistent and the next call resumes. A bulk load (`meta_api::dump::load`) writes each
//! batch in transactions of at most 2 000 keys and 2 MB, and turns its slice counts into
//! reference keys a page per transaction; the volume's setting is written last.
//!
//! POSIX ACLs (volumes with `EnableACL`) live in `R{id}` keys counted by `CaclMaxId`, as
//! JuiceFS keeps them, and are read and written as the `system.posix_acl_*` extended
//! attributes (see [`meta_api::acl`]). Unlike JuiceFS, which stores a rule under an id
//! taken outside the transaction, the transaction that uses a new rule stores it, so
//! concurrent clients never store one rule twice.
//!
//! # Differences from JuiceFS
//!
//! - Opens are recorded in the volume (`OI`/`OS` keys, see [`keys`]) so that an unlink by
//!   any client sustains a file that another client's session has open; JuiceFS only
//!   looks at the unlinking client's own open files. JuiceFS clients ignore these keys.
//! - Deleted files go straight to the deletion queue: a volume's trash (`TrashDays`) is
//!   created by `init` but not filled, and directory statistics (`U` keys) are created
//!   empty with each directory but not maintained (`juicefs fsck --sync-dir-stat` fixes
//!   them for JuiceFS clients that use them).
//! - Chunks are never compacted here: FoundationDB refuses values over 100 kB, which a
//!   chunk reaches after about 4 000 writes into it without a JuiceFS client compacting.

mod engine;
pub mod keys;
pub mod kv;
mod url;

use std::sync::Arc;

use meta_api::{MetaEngine, MetaError, Result};

pub use engine::{Clock, TkvMeta};
#[cfg(feature = "fdb")]
pub use kv::fdb::{network_started_elsewhere, start_network, stop_network, FdbKv, FdbTxn};
pub use kv::mem::{MemKv, MemTxn};
pub use kv::{KeyValue, KvStore, KvTxn};
pub use url::VolumeUrl;

/// Chunks purged per transaction by [`meta_api::MetaEngine::purge_file`].
pub const PURGE_BATCH: usize = engine::PURGE_BATCH;

/// The engine over the in-process store.
pub type MemMeta = TkvMeta<MemKv>;

/// The engine over FoundationDB.
#[cfg(feature = "fdb")]
pub type FdbMeta = TkvMeta<FdbKv>;

/// The byte JuiceFS puts after a volume prefix (keeps volume keys out of FoundationDB's
/// `0xFF` system key space and apart from each other).
pub const PREFIX_SEPARATOR: u8 = 0xFD;

/// Opens a client of the volume at `url` (`tkv-mem://NAME[?prefix=P]` or, with the `fdb`
/// feature, `fdb://[CLUSTER-FILE][?prefix=P]`).
pub fn open(url: &str) -> Result<Arc<dyn MetaEngine>> {
    let u = VolumeUrl::parse(url)?;
    match u.scheme.as_str() {
        "tkv-mem" => Ok(Arc::new(open_mem_url(&u))),
        "fdb" => open_fdb_dyn(&u),
        _ => Err(MetaError::InvalidArgument(
            "meta-fdb opens tkv-mem:// and fdb:// URLs",
        )),
    }
}

/// Opens a client over the in-process store named in a `tkv-mem://NAME[?prefix=P]` URL.
pub fn open_mem(url: &str) -> Result<MemMeta> {
    let u = VolumeUrl::parse(url)?;
    if u.scheme != "tkv-mem" {
        return Err(MetaError::InvalidArgument("expected a tkv-mem:// URL"));
    }
    Ok(open_mem_url(&u))
}

fn open_mem_url(u: &VolumeUrl) -> MemMeta {
    let prefix = match &u.prefix {
        Some(p) => with_separator(p),
        None => Vec::new(),
    };
    TkvMeta::new(MemKv::named(&u.addr), &prefix)
}

fn with_separator(prefix: &[u8]) -> Vec<u8> {
    let mut p = prefix.to_vec();
    p.push(PREFIX_SEPARATOR);
    p
}

/// Opens a client of the FoundationDB volume at `fdb://[CLUSTER-FILE][?prefix=P]`,
/// starting the FoundationDB network thread if needed.
#[cfg(feature = "fdb")]
pub fn open_fdb(url: &str) -> Result<FdbMeta> {
    let u = VolumeUrl::parse(url)?;
    if u.scheme != "fdb" {
        return Err(MetaError::InvalidArgument("expected an fdb:// URL"));
    }
    let kv = FdbKv::open(u.cluster_file().as_deref())?;
    let prefix = with_separator(u.prefix.as_deref().unwrap_or_default());
    Ok(TkvMeta::new(kv, &prefix))
}

#[cfg(feature = "fdb")]
fn open_fdb_dyn(u: &VolumeUrl) -> Result<Arc<dyn MetaEngine>> {
    let kv = FdbKv::open(u.cluster_file().as_deref())?;
    let prefix = with_separator(u.prefix.as_deref().unwrap_or_default());
    Ok(Arc::new(TkvMeta::new(kv, &prefix)))
}

#[cfg(not(feature = "fdb"))]
fn open_fdb_dyn(_: &VolumeUrl) -> Result<Arc<dyn MetaEngine>> {
    Err(MetaError::NotSupported(
        "fdb:// URLs need meta-fdb built with the `fdb` feature",
    ))
}
