//! [`SqliteMeta`]: opening a client, its connections and its cached settings; one module
//! per concern implements the engine's storage ([`meta_api::backend`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use meta_api::{Format, Ino, MetaError, Result, SessionInfo, Timestamp};
use rusqlite::{Connection, OpenFlags};

mod acl;
mod attr;
mod bulk;
mod clone;
pub(crate) mod data;
mod locks;
pub(crate) mod namespace;
pub(crate) mod node;
mod purge;
pub(crate) mod quota;
pub(crate) mod session;
pub(crate) mod sustain;
mod trash;
mod upkeep;
mod volume;
mod xattr;

use meta_api::ids::IdPool;

use crate::schema;
use crate::sql::{Pool, SqliteConnection};
use crate::txn::{db_err, Db};
use sustain::ClientState;

/// How long a reader waits for a lock held by another process (only WAL recovery and
/// checkpoint bookkeeping take one) before SQLite reports busy. The writer never waits in
/// SQLite: `BEGIN IMMEDIATE` reports busy at once and [`Db::txn`] retries it without
/// blocking the thread.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Pages of write-ahead log after which a commit checkpoints it into the database file
/// itself (SQLite's default is 1,000): normally the background checkpointer
/// (`crate::txn`) has long done it, off the writer's path.
pub(crate) const AUTOCHECKPOINT_PAGES: u32 = 16384;
/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 256;
/// The page size of a database this engine creates (SQLite's default is 4 KiB; a database
/// that exists keeps its own, juicefs's among them). A create dirties about eight pages
/// (the edge row, two edge indexes, the new node, the parent, the counters, the directory's
/// statistics, `sqlite_sequence`), each written whole to the log at commit, so the page
/// size sets the cost of a metadata change. Measured 2026-12-02 with `tessera mdtest
/// --threads 1 --dirs 10 --depth 2` (one thread, creates per second): 4 KiB 20,300, 1 KiB
/// 30,500, 512 B 35,500; with 1,000 files per directory, 512 B against 1 KiB: creates +9%,
/// lookups and removes the same, listings -10% (1.3 million entries/s). Rows longer than a
/// page (a chunk with many slices) continue in overflow pages, written whole either way.
const PAGE_SIZE: u32 = 512;

/// One client of a JuiceFS volume whose metadata lives in SQLite.
///
/// Open it with [`SqliteMeta::open`] on a `sqlite3://` URL, or [`SqliteMeta::memory`] for an
/// in-memory volume shared by every client opened with the same name in this process.
/// Each value is one client: after [`MetaEngine::new_session`](meta_api::MetaEngine::new_session) it owns one session.
pub struct SqliteMeta {
    db: Db,
    /// Identifies the database for the in-process registry of sessions.
    location: String,
    client: Arc<ClientState>,
    sid: AtomicU64,
    inode_ids: IdPool,
    slice_ids: IdPool,
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
pub(crate) fn parse_url(url: &str) -> Result<PathBuf> {
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
    /// mode with `synchronous=NORMAL`: commits are written at once and synced by the
    /// durability barrier ([`MetaEngine::sync`](meta_api::MetaEngine::sync)). The volume may
    /// still be unformatted.
    pub async fn open(url: &str) -> Result<SqliteMeta> {
        let path = parse_url(url)?;
        if path.is_dir() {
            return Err(MetaError::InvalidArgument(
                "the sqlite3:// URL names a directory",
            ));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let writer = open_conn(&path, flags, true, true)?;
        let location = std::fs::canonicalize(&path)
            .unwrap_or(path.clone())
            .to_string_lossy()
            .into_owned();
        let reader_path = path.clone();
        let pool = Pool::new(Box::new(move || {
            open_raw(&reader_path, flags, false, false)
        }));
        let checkpoints = open_raw(&path, flags, false, false).map_err(db_err)?;
        let db = Db::new(writer, pool, Some(path), Some(checkpoints));
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
        let uri = PathBuf::from(format!("file:{name}?mode=memory&cache=shared"));
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_SHARED_CACHE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let writer = open_conn(&uri, flags, true, false)?;
        let pool = Pool::new(Box::new(move || open_raw(&uri, flags, false, false)));
        let db = Db::new(writer, pool, None, None);
        Ok(Self::with_db(db, format!("memory:{name}")))
    }

    fn with_db(db: Db, location: String) -> SqliteMeta {
        SqliteMeta {
            db,
            location,
            client: Arc::new(ClientState::default()),
            sid: AtomicU64::new(0),
            inode_ids: IdPool::inodes(),
            slice_ids: IdPool::slices(),
            format: RwLock::new(None),
            info: std::sync::Mutex::new(SessionInfo::default()),
            acls: meta_api::acl::AclCache::new(),
        }
    }

    /// This client's session id (0 before [`MetaEngine::new_session`](meta_api::MetaEngine::new_session)).
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

    /// The next free inode number (never 0 or 1, the root), from this client's batch.
    pub(crate) async fn next_inode(&self) -> Result<Ino> {
        self.inode_ids
            .next(|name, n| reserve(&self.db, name, n))
            .await
    }

    /// The next free slice id (never 0, a hole), from this client's batch.
    pub(crate) async fn next_slice(&self) -> Result<u64> {
        self.slice_ids
            .next(|name, n| reserve(&self.db, name, n))
            .await
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

/// Opens one connection: `synchronous=NORMAL`, foreign keys off, a statement cache; the
/// writer of a file database puts it in WAL mode and then never waits for locks in SQLite.
fn open_conn(
    path: &std::path::Path,
    flags: OpenFlags,
    writer: bool,
    wal: bool,
) -> Result<SqliteConnection> {
    open_raw(path, flags, writer, wal)
        .map(|conn| SqliteConnection { conn })
        .map_err(db_err)
}

/// [`open_conn`] without the wrapping.
fn open_raw(
    path: &std::path::Path,
    flags: OpenFlags,
    writer: bool,
    wal: bool,
) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(path, flags)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.busy_timeout(BUSY_TIMEOUT)?;
    if wal {
        // Takes effect only on a database not yet written: set before the switch to WAL,
        // which writes the header.
        conn.execute_batch(&format!("PRAGMA page_size = {PAGE_SIZE}"))?;
        // Answers with the mode now in force; a database already in WAL mode stays in it.
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    }
    conn.execute_batch(&format!(
        "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF; \
         PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT_PAGES}"
    ))?;
    if writer {
        conn.busy_timeout(Duration::ZERO)?;
    }
    Ok(conn)
}

/// Adds `batch` to counter `name` in its own transaction and returns the counter's new value.
async fn reserve(db: &Db, name: &'static str, batch: u64) -> Result<i64> {
    db.txn(|conn, _| {
        Box::pin(async move {
            let row = crate::sql::query(
                "INSERT INTO jfs_counter (name, value) VALUES (?1, ?2) ON CONFLICT (name) \
                 DO UPDATE SET value = value + ?2 RETURNING value",
            )
            .bind(name)
            .bind(batch as i64)
            .fetch_one(&mut *conn)
            .await
            .map_err(db_err)?;
            row.try_get::<i64, _>(0).map_err(db_err)
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use meta_api::{Context, MetaEngine, ROOT_INO};

    use super::*;

    /// A database the engine creates has its page size; one that exists (juicefs's, say)
    /// keeps its own.
    #[tokio::test]
    async fn new_databases_get_small_pages_existing_ones_keep_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let page_size = |p: &std::path::Path| -> u32 {
            let c = rusqlite::Connection::open(p).unwrap();
            c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap()
        };
        let fresh = dir.path().join("fresh.db");
        let a = SqliteMeta::open(&format!("sqlite3://{}", fresh.display()))
            .await
            .unwrap();
        a.init(&Format::new("vol", "uuid-1", "file", "/tmp/x/"), false)
            .await
            .unwrap();
        assert_eq!(page_size(&fresh), PAGE_SIZE);

        let old = dir.path().join("old.db");
        rusqlite::Connection::open(&old)
            .unwrap()
            .execute_batch("PRAGMA page_size = 4096; CREATE TABLE t (x); DROP TABLE t")
            .unwrap();
        let b = SqliteMeta::open(&format!("sqlite3://{}", old.display()))
            .await
            .unwrap();
        b.init(&Format::new("vol", "uuid-2", "file", "/tmp/y/"), false)
            .await
            .unwrap();
        b.mkdir(&Context::root(), ROOT_INO, b"d", 0o755)
            .await
            .unwrap();
        assert_eq!(page_size(&old), 4096);
    }

    /// A caller that drops an operation's future while it waits to begin its transaction
    /// (a FUSE interrupt, a timeout) must not leave an orphan transaction holding SQLite's
    /// write lock: the writer's `BEGIN IMMEDIATE` still completes after the future is gone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_begin_does_not_keep_the_write_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        let url = format!("sqlite3://{}", path.display());
        let a = SqliteMeta::open(&url).await.unwrap();
        a.init(&Format::new("vol", "uuid-1", "file", "/tmp/x/"), false)
            .await
            .unwrap();
        let b = Arc::new(SqliteMeta::open(&url).await.unwrap());
        // A third connection holds the write lock, so that b's BEGIN waits in SQLite.
        let holder = rusqlite::Connection::open(&path).unwrap();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let waiting = {
            let b = b.clone();
            tokio::spawn(async move { b.mkdir(&Context::root(), ROOT_INO, b"b", 0o755).await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        waiting.abort();
        assert!(waiting.await.is_err_and(|e| e.is_cancelled()));
        // Were b's BEGIN still pending somewhere, it would now succeed with nobody left
        // to end it.
        holder.execute_batch("ROLLBACK").unwrap();
        tokio::time::timeout(
            Duration::from_secs(4),
            a.mkdir(&Context::root(), ROOT_INO, b"a", 0o755),
        )
        .await
        .expect("no orphan transaction of b holds the write lock")
        .unwrap();
        b.mkdir(&Context::root(), ROOT_INO, b"b", 0o755)
            .await
            .unwrap();
    }

    /// Dropping a write at whatever point it has reached (before, inside or after its
    /// `BEGIN IMMEDIATE`, mid-statement, mid-`COMMIT`) never leaves the writer connection
    /// inside a transaction (an asynchronous driver that awaits after `BEGIN` once kept
    /// SQLite's write lock for good when a future was dropped there).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_cancelled_anywhere_does_not_keep_the_write_lock() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite3://{}", dir.path().join("meta.db").display());
        let a = SqliteMeta::open(&url).await.unwrap();
        a.init(&Format::new("vol", "uuid-1", "file", "/tmp/x/"), false)
            .await
            .unwrap();
        let b = Arc::new(SqliteMeta::open(&url).await.unwrap());
        for round in 0..300u64 {
            let task = {
                let b = b.clone();
                let name = format!("b{round}");
                tokio::spawn(async move {
                    b.mkdir(&Context::root(), ROOT_INO, name.as_bytes(), 0o755)
                        .await
                })
            };
            // Spread the cancellations over every await point of the write.
            tokio::time::sleep(Duration::from_micros(round * 7 % 1500)).await;
            task.abort();
            let _ = task.await;
            let name = format!("a{round}");
            tokio::time::timeout(
                Duration::from_secs(3),
                a.mkdir(&Context::root(), ROOT_INO, name.as_bytes(), 0o755),
            )
            .await
            .unwrap_or_else(|_| panic!("round {round}: an orphan transaction holds the lock"))
            .unwrap();
        }
    }

    /// The durability contract on SQLite: commits are written at once but synced only by
    /// the barrier, which an fsync passes, which everything handing out slices to delete
    /// passes first, and which costs nothing when nothing was committed since.
    #[tokio::test]
    async fn only_fsync_and_deletion_sync_the_log() {
        use meta_api::{FileType, Slice};

        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite3://{}", dir.path().join("meta.db").display());
        let m = SqliteMeta::open(&url).await.unwrap();
        m.init(&Format::new("vol", "uuid-1", "file", "/tmp/x/"), false)
            .await
            .unwrap();
        m.new_session(&SessionInfo::default()).await.unwrap();
        let root = Context::root();
        for i in 0..50 {
            m.mkdir(&root, ROOT_INO, format!("d{i}").as_bytes(), 0o755)
                .await
                .unwrap();
        }
        let f = m
            .mknod(&root, ROOT_INO, b"f", FileType::Regular, 0o644, 0)
            .await
            .unwrap();
        let id = m.new_slice_id().await.unwrap();
        let slice = Slice {
            pos: 0,
            id,
            size: 4096,
            off: 0,
            len: 4096,
        };
        m.write_slice(f.ino, 0, slice, Timestamp::now())
            .await
            .unwrap();
        assert_eq!(m.db.syncs(), 0, "no commit so far was synced");
        m.sync().await.unwrap();
        assert_eq!(m.db.syncs(), 1);
        m.sync().await.unwrap();
        assert_eq!(m.db.syncs(), 1, "nothing committed since the last barrier");
        m.unlink(&root, ROOT_INO, b"f").await.unwrap();
        assert_eq!(m.db.syncs(), 1, "an unlink is not synced by itself");
        let freed = m.purge_file(f.ino).await.unwrap();
        assert_eq!(freed.len(), 1);
        assert_eq!(
            m.db.syncs(),
            2,
            "the purge is durable before its objects go"
        );
        let pending = m.pending_slices(10).await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(m.db.syncs(), 2, "already durable");
        assert!(m.forget_slice(id, 4096).await.unwrap());
        m.close_session().await.unwrap();
    }

    /// Concurrent operations of one client share commits (group commit), and one member's
    /// failure undoes only its own changes: every create that succeeded is there, every
    /// duplicate failed with `Exists`, and fewer commits than operations were made.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_operations_share_commits_and_fail_alone() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite3://{}", dir.path().join("meta.db").display());
        let m = Arc::new(SqliteMeta::open(&url).await.unwrap());
        m.init(&Format::new("vol", "uuid-1", "file", "/tmp/x/"), false)
            .await
            .unwrap();
        m.new_session(&SessionInfo::default()).await.unwrap();
        let before = m.db.commits();
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let m = m.clone();
                tokio::spawn(async move {
                    let mut made = 0;
                    for i in 0..100 {
                        // Tasks 0-3 and 4-7 make the same names: one of each pair fails.
                        let name = format!("d{}-{i}", t % 4);
                        match m
                            .mkdir(&Context::root(), ROOT_INO, name.as_bytes(), 0o755)
                            .await
                        {
                            Ok(_) => made += 1,
                            Err(MetaError::Exists) => {}
                            Err(e) => panic!("{e}"),
                        }
                    }
                    made
                })
            })
            .collect();
        let mut made = 0;
        for t in tasks {
            made += t.await.unwrap();
        }
        assert_eq!(made, 400, "each name made exactly once");
        let commits = m.db.commits() - before;
        let page = m
            .readdir(&Context::root(), ROOT_INO, None, 1000, false)
            .await
            .unwrap();
        assert_eq!(
            page.iter().filter(|e| e.name.starts_with(b"d")).count(),
            400
        );
        let root = m.getattr(ROOT_INO).await.unwrap();
        assert_eq!(root.nlink, 402);
        // Inode batches add a few commits of their own.
        assert!(commits < 800, "{commits} commits for 800 operations");
        m.close_session().await.unwrap();
    }
}
