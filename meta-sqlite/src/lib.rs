//! A JuiceFS-compatible [`MetaEngine`](meta_api::MetaEngine) on SQLite.
//!
//! [`SqliteMeta`] keeps a volume's metadata in the exact SQL schema JuiceFS 1.x uses
//! (`jfs_node`, `jfs_edge`, `jfs_chunk`, `jfs_chunk_ref`, `jfs_session2`, `jfs_sustained`,
//! `jfs_delfile`, …), so a volume formatted by `juicefs format sqlite3://…` opens here and a
//! volume formatted here opens in the `juicefs` client (`juicefs dump`, `juicefs fsck`).
//!
//! Every operation is one `BEGIN IMMEDIATE` transaction on the client's writer connection,
//! retried with bounded backoff while another process holds the database; reads run on a
//! small pool beside it (WAL mode). Statements run in place, on the calling thread
//! ([`rusqlite`]): a statement on a warm page cache costs microseconds, a hop to a worker
//! thread several times more. Inode numbers and slice ids are reserved from the volume's
//! counters in batches, so creating (and opening) a file is a single transaction.
//!
//! Durability: a commit is written to the log at once (it survives a crash of the process)
//! and synced by the durability barrier ([`MetaEngine::sync`](meta_api::MetaEngine::sync),
//! one `fdatasync` of the log, free when nothing was committed since the last): every
//! `fsync` passes it, and so does every call that hands out slices whose objects are then
//! deleted, so a purge can never roll back after its objects are gone.
//!
//! An unlinked file stays readable until its last close in any session, this client's or
//! another's: see the `sustain` module for the rule and how it works across processes.
//!
//! POSIX ACLs (`jfs_acl`, on volumes formatted with `EnableACL`) are read and written as
//! the `system.posix_acl_access`/`system.posix_acl_default` attributes and applied to every
//! access check, `chmod` and new inode (see [`meta_api::acl`]).
//!
//! The trash (`TrashDays`), directory, user and group quotas and directory statistics are
//! kept as JuiceFS keeps them. A truncated file keeps its chunks past the end (covered by
//! hole records, as JuiceFS does) until it is purged.
//!
//! ```
//! use meta_api::{Context, Format, MetaEngine, SessionInfo, ROOT_INO};
//! use meta_sqlite::SqliteMeta;
//!
//! # fn main() -> meta_api::Result<()> {
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! # rt.block_on(async {
//! let meta = SqliteMeta::memory("crate-doc").await?;
//! meta.init(&Format::new("demo", "0d7c1e5a-uuid", "file", "/tmp/demo/"), false).await?;
//! meta.new_session(&SessionInfo::default()).await?;
//!
//! let docs = meta.mkdir(&Context::root(), ROOT_INO, b"docs", 0o755).await?;
//! assert!(docs.attr.is_dir());
//! assert_eq!(meta.lookup(&Context::root(), ROOT_INO, b"docs").await?.ino, docs.ino);
//! meta.close_session().await?;
//! # Ok(())
//! # })
//! # }
//! ```

mod engine;
mod schema;
mod sql;
mod txn;

pub use engine::SqliteMeta;

#[cfg(test)]
mod tests {

    use crate::engine::parse_url;
    use meta_api::MetaError;
    use std::path::PathBuf;

    #[test]
    fn urls_like_juicefs() {
        assert_eq!(
            parse_url("sqlite3:///tmp/a.db").unwrap(),
            PathBuf::from("/tmp/a.db")
        );
        assert_eq!(
            parse_url("sqlite3://rel.db").unwrap(),
            PathBuf::from("rel.db")
        );
        assert_eq!(
            parse_url("sqlite3:///tmp/a.db?cache=shared&_journal=WAL").unwrap(),
            PathBuf::from("/tmp/a.db")
        );
        assert!(matches!(
            parse_url("redis://x"),
            Err(MetaError::InvalidArgument(_))
        ));
        assert!(matches!(
            parse_url("sqlite3://"),
            Err(MetaError::InvalidArgument(_))
        ));
    }
}
