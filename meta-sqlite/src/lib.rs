//! A JuiceFS-compatible [`MetaEngine`] on SQLite.
//!
//! [`SqliteMeta`] keeps a volume's metadata in the exact SQL schema JuiceFS 1.x uses
//! (`jfs_node`, `jfs_edge`, `jfs_chunk`, `jfs_chunk_ref`, `jfs_session2`, `jfs_sustained`,
//! `jfs_delfile`, …), so a volume formatted by `juicefs format sqlite3://…` opens here and a
//! volume formatted here opens in the `juicefs` client (`juicefs dump`, `juicefs fsck`).
//!
//! Every operation is one `BEGIN IMMEDIATE` transaction on the client's writer connection,
//! retried with bounded backoff while another process holds the database; reads run on a
//! small pool beside it (WAL mode). Inode numbers and slice ids are reserved from the
//! volume's counters in batches, so creating a file is a single transaction.
//!
//! An unlinked file stays readable until its last close in any session, this client's or
//! another's: see the `sustain` module for the rule and how it works across processes.
//!
//! POSIX ACLs (`jfs_acl`, on volumes formatted with `EnableACL`) are read and written as
//! the `system.posix_acl_access`/`system.posix_acl_default` attributes and applied to every
//! access check, `chmod` and new inode (see [`meta_api::acl`]).
//!
//! What JuiceFS does and this engine does not (yet): with `TrashDays > 0`, unlinked files
//! are deleted rather than moved to the trash; directory quotas (`jfs_dir_quota`) are
//! neither enforced nor counted; a truncated file keeps its chunks past the end (covered by
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

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use meta_api::{
    Attr, Context, DeletedFile, DirEntry, Entry, FallocMode, FileType, Format, Ino, LockType,
    MetaEngine, MetaError, PlockRequest, RenameFlags, Result, Session, SessionInfo, SetAttr, Slice,
    StatFs, Timestamp,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::ConnectOptions;

mod acl;
mod data;
mod ids;
mod locks;
mod namespace;
mod node;
mod schema;
mod session;
mod sustain;
mod txn;
mod xattr;

use ids::IdPools;
use sustain::ClientState;
use txn::{db_err, Db};

/// How long a connection waits for another process's write lock before SQLite reports busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Reader connections per client.
const READERS: u32 = 4;
/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 256;

/// One client of a JuiceFS volume whose metadata lives in SQLite.
///
/// Open it with [`SqliteMeta::open`] on a `sqlite3://` URL, or [`SqliteMeta::memory`] for an
/// in-memory volume shared by every client opened with the same name in this process.
/// Each value is one client: after [`MetaEngine::new_session`] it owns one session.
pub struct SqliteMeta {
    db: Db,
    /// Identifies the database for the in-process registry of sessions.
    location: String,
    client: Arc<ClientState>,
    sid: AtomicU64,
    ids: IdPools,
    format: RwLock<Option<Arc<Format>>>,
    info: std::sync::Mutex<SessionInfo>,
    /// Stored POSIX ACL rules by id (they never change).
    acls: meta_api::acl::AclCache,
}

impl std::fmt::Debug for SqliteMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteMeta")
            .field("location", &self.location)
            .field("sid", &self.sid.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Parses JuiceFS's SQLite URL: `sqlite3:///abs/path.db` or `sqlite3://relative.db`, with
/// any `?query` (JuiceFS's driver options) ignored.
fn parse_url(url: &str) -> Result<PathBuf> {
    let rest = url
        .strip_prefix("sqlite3://")
        .ok_or(MetaError::InvalidArgument("expected a sqlite3:// URL"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() {
        return Err(MetaError::InvalidArgument(
            "the sqlite3:// URL names no file",
        ));
    }
    Ok(PathBuf::from(path))
}

impl SqliteMeta {
    /// Opens (creating the file if missing) the volume database at a `sqlite3://` URL, in WAL
    /// mode with `synchronous=NORMAL`. The volume may still be unformatted.
    pub async fn open(url: &str) -> Result<SqliteMeta> {
        let path = parse_url(url)?;
        if path.is_dir() {
            return Err(MetaError::InvalidArgument(
                "the sqlite3:// URL names a directory",
            ));
        }
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal);
        let db = Self::connect(options).await?;
        let location = std::fs::canonicalize(&path)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned();
        Ok(Self::with_db(db, location))
    }

    /// Opens the in-memory volume `name` (`file:{name}?mode=memory&cache=shared`): every
    /// client opened with the same name in this process sees the same volume, which lives
    /// as long as one of them does. Names are letters, digits, `-`, `_` and `.`.
    pub async fn memory(name: &str) -> Result<SqliteMeta> {
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if name.is_empty() || !name.chars().all(valid) {
            return Err(MetaError::InvalidArgument(
                "in-memory volume names are letters, digits, '-', '_' and '.'",
            ));
        }
        let options = SqliteConnectOptions::new()
            .filename(format!("file:{name}?mode=memory&cache=shared"))
            .in_memory(true)
            .shared_cache(true);
        let db = Self::connect(options).await?;
        Ok(Self::with_db(db, format!("memory:{name}")))
    }

    async fn connect(options: SqliteConnectOptions) -> Result<Db> {
        let options = options
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(false)
            .statement_cache_capacity(STATEMENT_CACHE);
        let writer = options.connect().await.map_err(db_err)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(READERS)
            .min_connections(0)
            // A local database needs no round trip to prove a connection is alive.
            .test_before_acquire(false)
            .connect_lazy_with(options.clone());
        Ok(Db {
            writer: tokio::sync::Mutex::new(writer),
            pool,
            options,
        })
    }

    fn with_db(db: Db, location: String) -> SqliteMeta {
        SqliteMeta {
            db,
            location,
            client: Arc::new(ClientState::default()),
            sid: AtomicU64::new(0),
            ids: IdPools::default(),
            format: RwLock::new(None),
            info: std::sync::Mutex::new(SessionInfo::default()),
            acls: meta_api::acl::AclCache::new(),
        }
    }

    /// This client's session id (0 before [`MetaEngine::new_session`]).
    pub fn session_id(&self) -> u64 {
        self.sid.load(Ordering::Acquire)
    }

    /// The volume settings, read once and then kept (they change only by a reformat).
    pub(crate) async fn fmt(&self) -> Result<Arc<Format>> {
        if let Some(f) = self
            .format
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            return Ok(f.clone());
        }
        self.reload_format().await
    }

    async fn reload_format(&self) -> Result<Arc<Format>> {
        let mut conn = self.db.pool.acquire().await.map_err(db_err)?;
        let format = schema::read_format(&mut conn)
            .await?
            .ok_or(MetaError::NotFormatted)?;
        let format = Arc::new(format);
        *self.format.write().unwrap_or_else(|p| p.into_inner()) = Some(format.clone());
        Ok(format)
    }
}

impl Drop for SqliteMeta {
    fn drop(&mut self) {
        // The registry entry stays: its dead weak pointer tells other clients in this process
        // that this session holds nothing open any more.
        self.client.clear();
    }
}

/// The current wall-clock time in whole seconds (the unit of JuiceFS's expiry columns).
pub(crate) fn now_secs() -> i64 {
    Timestamp::now().sec
}

#[async_trait]
impl MetaEngine for SqliteMeta {
    fn name(&self) -> &'static str {
        "sqlite3"
    }

    async fn init(&self, format: &Format, force: bool) -> Result<()> {
        self.db
            .txn(|conn, _| {
                Box::pin(async move {
                    schema::create_tables(conn).await?;
                    schema::format_volume(conn, format, force).await
                })
            })
            .await?;
        *self.format.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(format.clone()));
        Ok(())
    }

    async fn load(&self) -> Result<Format> {
        Ok((*self.reload_format().await?).clone())
    }

    async fn new_session(&self, info: &SessionInfo) -> Result<u64> {
        self.fmt().await?;
        self.start_session(info).await
    }

    async fn heartbeat(&self) -> Result<()> {
        self.fmt().await?;
        self.refresh_session().await
    }

    async fn close_session(&self) -> Result<()> {
        self.fmt().await?;
        self.end_session().await
    }

    async fn list_sessions(&self) -> Result<Vec<Session>> {
        self.fmt().await?;
        self.sessions().await
    }

    async fn reap_stale_sessions(&self, now: Timestamp) -> Result<usize> {
        self.fmt().await?;
        self.reap(now).await
    }

    async fn lookup(&self, ctx: &Context, parent: Ino, name: &[u8]) -> Result<Entry> {
        self.fmt().await?;
        self.do_lookup(ctx, parent, name).await
    }

    async fn getattr(&self, ino: Ino) -> Result<Attr> {
        self.fmt().await?;
        self.read_node(ino).await?.ok_or(MetaError::NotFound)
    }

    async fn setattr(&self, ctx: &Context, ino: Ino, set: &SetAttr) -> Result<Attr> {
        let fmt = self.fmt().await?;
        self.do_setattr(&fmt, ctx, ino, set).await
    }

    async fn mknod(
        &self,
        ctx: &Context,
        parent: Ino,
        name: &[u8],
        typ: FileType,
        mode: u16,
        rdev: u32,
    ) -> Result<Entry> {
        let fmt = self.fmt().await?;
        self.create(&fmt, ctx, parent, name, typ, mode, rdev, b"")
            .await
    }

    async fn mkdir(&self, ctx: &Context, parent: Ino, name: &[u8], mode: u16) -> Result<Entry> {
        let fmt = self.fmt().await?;
        self.create(&fmt, ctx, parent, name, FileType::Directory, mode, 0, b"")
            .await
    }

    async fn symlink(
        &self,
        ctx: &Context,
        parent: Ino,
        name: &[u8],
        target: &[u8],
    ) -> Result<Entry> {
        let fmt = self.fmt().await?;
        meta_api::name::validate_name(name)?;
        meta_api::name::validate_symlink_target(target)?;
        self.create(&fmt, ctx, parent, name, FileType::Symlink, 0o777, 0, target)
            .await
    }

    async fn readlink(&self, ino: Ino) -> Result<Vec<u8>> {
        self.fmt().await?;
        self.do_readlink(ino).await
    }

    async fn link(&self, ctx: &Context, ino: Ino, parent: Ino, name: &[u8]) -> Result<Entry> {
        let fmt = self.fmt().await?;
        self.do_link(&fmt, ctx, ino, parent, name).await
    }

    async fn unlink(&self, ctx: &Context, parent: Ino, name: &[u8]) -> Result<()> {
        let fmt = self.fmt().await?;
        self.do_unlink(&fmt, ctx, parent, name).await
    }

    async fn rmdir(&self, ctx: &Context, parent: Ino, name: &[u8]) -> Result<()> {
        let fmt = self.fmt().await?;
        self.do_rmdir(&fmt, ctx, parent, name).await
    }

    async fn rename(
        &self,
        ctx: &Context,
        parent: Ino,
        name: &[u8],
        new_parent: Ino,
        new_name: &[u8],
        flags: RenameFlags,
    ) -> Result<()> {
        let fmt = self.fmt().await?;
        self.do_rename(&fmt, ctx, parent, name, new_parent, new_name, flags)
            .await
    }

    async fn readdir(
        &self,
        ctx: &Context,
        ino: Ino,
        after: Option<&[u8]>,
        limit: usize,
        plus: bool,
    ) -> Result<Vec<DirEntry>> {
        self.fmt().await?;
        self.do_readdir(ctx, ino, after, limit, plus).await
    }

    async fn open(&self, ctx: &Context, ino: Ino, flags: i32) -> Result<Attr> {
        self.fmt().await?;
        self.do_open(ctx, ino, flags).await
    }

    async fn close(&self, ino: Ino) -> Result<()> {
        self.fmt().await?;
        self.do_close(ino).await
    }

    async fn read_chunk(&self, ino: Ino, index: u32) -> Result<Vec<Slice>> {
        self.fmt().await?;
        self.do_read_chunk(ino, index).await
    }

    async fn write_slice(
        &self,
        ino: Ino,
        index: u32,
        slice: Slice,
        mtime: Timestamp,
    ) -> Result<()> {
        let fmt = self.fmt().await?;
        self.do_write_slice(&fmt, ino, index, slice, mtime).await
    }

    async fn new_slice_id(&self) -> Result<u64> {
        self.fmt().await?;
        self.ids.next_slice(&self.db).await
    }

    async fn truncate(&self, ctx: &Context, ino: Ino, length: u64) -> Result<Attr> {
        let fmt = self.fmt().await?;
        self.do_truncate(&fmt, ctx, ino, length).await
    }

    async fn fallocate(
        &self,
        ctx: &Context,
        ino: Ino,
        mode: FallocMode,
        off: u64,
        len: u64,
    ) -> Result<()> {
        let fmt = self.fmt().await?;
        self.do_fallocate(&fmt, ctx, ino, mode, off, len).await
    }

    async fn copy_file_range(
        &self,
        ctx: &Context,
        src: Ino,
        src_off: u64,
        dst: Ino,
        dst_off: u64,
        len: u64,
    ) -> Result<u64> {
        let fmt = self.fmt().await?;
        self.do_copy_file_range(&fmt, ctx, src, src_off, dst, dst_off, len)
            .await
    }

    async fn getxattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        self.fmt().await?;
        self.do_getxattr(ino, name).await
    }

    async fn setxattr(
        &self,
        ctx: &Context,
        ino: Ino,
        name: &[u8],
        value: &[u8],
        flags: u32,
    ) -> Result<()> {
        self.fmt().await?;
        self.do_setxattr(ctx, ino, name, value, flags).await
    }

    async fn listxattr(&self, ino: Ino) -> Result<Vec<Vec<u8>>> {
        self.fmt().await?;
        self.do_listxattr(ino).await
    }

    async fn removexattr(&self, ctx: &Context, ino: Ino, name: &[u8]) -> Result<()> {
        self.fmt().await?;
        self.do_removexattr(ctx, ino, name).await
    }

    async fn flock(
        &self,
        _ctx: &Context,
        ino: Ino,
        owner: u64,
        ltype: LockType,
        block: bool,
    ) -> Result<()> {
        self.fmt().await?;
        self.do_flock(ino, owner, ltype, block).await
    }

    async fn getlk(
        &self,
        _ctx: &Context,
        ino: Ino,
        owner: u64,
        lock: &mut PlockRequest,
    ) -> Result<()> {
        self.fmt().await?;
        self.do_getlk(ino, owner, lock).await
    }

    async fn setlk(
        &self,
        _ctx: &Context,
        ino: Ino,
        owner: u64,
        block: bool,
        ltype: LockType,
        start: u64,
        end: u64,
        pid: u32,
    ) -> Result<()> {
        self.fmt().await?;
        self.do_setlk(ino, owner, block, ltype, start, end, pid)
            .await
    }

    async fn statfs(&self) -> Result<StatFs> {
        let fmt = self.fmt().await?;
        self.do_statfs(&fmt).await
    }

    async fn deleted_files(&self, limit: usize) -> Result<Vec<DeletedFile>> {
        self.fmt().await?;
        self.do_deleted_files(limit).await
    }

    async fn purge_file(&self, ino: Ino) -> Result<Vec<Slice>> {
        self.fmt().await?;
        self.do_purge_file(ino).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
