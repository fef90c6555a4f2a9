//! The database handle, the one retried write-transaction helper, the durability barrier,
//! and the mapping of SQLite errors onto [`MetaError`].

use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt;
use meta_api::backoff::Backoff;
use meta_api::{MetaError, Result};
use rusqlite::ErrorCode;

pub(crate) use crate::sql::{is_unique_violation, Pool, SqliteConnection};

/// How long one transaction keeps retrying while another process holds the write lock
/// (then `Conflict`).
const BUSY_DEADLINE: Duration = Duration::from_secs(10);
/// Ceiling of the first pause after a busy/locked database (full jitter, doubling).
const FIRST_BACKOFF: Duration = Duration::from_millis(1);
/// Longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_millis(50);

/// Ties a transaction closure's borrow of the connection (`'c`) to the data it captures
/// (`'a`): the type's implied bound `'a: 'c` lets the closure's future hold both.
pub(crate) type Scope<'c, 'a> = PhantomData<&'c &'a ()>;

/// Maps a SQLite error: busy/locked databases are retryable backend errors, a full disk is
/// `NoSpace`, everything else a permanent backend error.
pub(crate) fn db_err(e: rusqlite::Error) -> MetaError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => MetaError::backend(true, e),
        Some(ErrorCode::DiskFull) => MetaError::NoSpace,
        _ => MetaError::backend(false, e),
    }
}

/// One volume's database: the writer connection (SQLite has one writer at a time, so
/// writers of this client queue here instead of spinning on `SQLITE_BUSY`) and a pool of
/// readers (WAL lets them run beside the writer). Statements run on the calling thread
/// (see [`crate::sql`]).
pub(crate) struct Db {
    pub(crate) writer: tokio::sync::Mutex<SqliteConnection>,
    pub(crate) pool: Pool,
    /// The write-ahead log whose sync makes every commit so far durable (`None` in memory).
    wal: Option<PathBuf>,
    /// Durability barriers passed, for tests and figures.
    syncs: AtomicU64,
    /// Serialises barriers, so that concurrent callers share the work of one.
    barrier: tokio::sync::Mutex<u64>,
    /// Commits so far (the barrier syncs when any happened since the last one).
    commits: AtomicU64,
}

impl Db {
    pub(crate) fn new(writer: SqliteConnection, pool: Pool, wal: Option<PathBuf>) -> Db {
        Db {
            writer: tokio::sync::Mutex::new(writer),
            pool,
            wal,
            syncs: AtomicU64::new(0),
            barrier: tokio::sync::Mutex::new(0),
            commits: AtomicU64::new(0),
        }
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` … `COMMIT` transaction on the writer connection,
    /// retrying the whole closure with bounded exponential backoff while the database is
    /// busy or locked (then `Conflict`). Any other error rolls back and is returned as is.
    ///
    /// The commit is atomic and survives a crash of this process once it returns; it
    /// survives power loss once [`Db::sync`] returns after it (the log is written, not
    /// synced, at each commit: `synchronous=NORMAL`).
    ///
    /// `f`'s future must finish without waiting (every statement of this engine does): it
    /// is polled once, so nothing else runs on the writer between `BEGIN` and `COMMIT` and
    /// a caller dropping the operation can only do so outside a transaction.
    pub(crate) async fn txn<'a, T, F>(&'a self, mut f: F) -> Result<T>
    where
        F: for<'c> FnMut(&'c mut SqliteConnection, Scope<'c, 'a>) -> BoxFuture<'c, Result<T>>,
    {
        let mut conn = self.writer.lock().await;
        let mut backoff = Backoff::new(FIRST_BACKOFF, MAX_BACKOFF);
        let started = Instant::now();
        loop {
            match self.attempt(&mut conn, &mut f) {
                Err(e) if e.is_retryable() && started.elapsed() < BUSY_DEADLINE => {
                    tokio::time::sleep(backoff.next_pause()).await;
                }
                Err(e) if e.is_retryable() => return Err(MetaError::Conflict),
                other => return other,
            }
        }
    }

    /// One attempt of [`Db::txn`], start to end, without waiting.
    fn attempt<'a, T, F>(&self, conn: &mut SqliteConnection, f: &mut F) -> Result<T>
    where
        F: for<'c> FnMut(&'c mut SqliteConnection, Scope<'c, 'a>) -> BoxFuture<'c, Result<T>>,
    {
        if !conn.conn.is_autocommit() {
            // A transaction left open by a panic inside an earlier closure.
            conn.conn.execute_batch("ROLLBACK").map_err(db_err)?;
        }
        conn.conn.execute_batch("BEGIN IMMEDIATE").map_err(db_err)?;
        let outcome = match f(conn, PhantomData).now_or_never() {
            Some(r) => r,
            None => Err(MetaError::backend(
                false,
                std::io::Error::other("a SQLite transaction waited on something else"),
            )),
        };
        let outcome = outcome.and_then(|v| {
            conn.conn.execute_batch("COMMIT").map_err(db_err)?;
            Ok(v)
        });
        match outcome {
            Ok(v) => {
                self.commits.fetch_add(1, Ordering::Release);
                Ok(v)
            }
            Err(e) => {
                if !conn.conn.is_autocommit() {
                    // Best effort: a failed ROLLBACK leaves SQLite's own automatic one.
                    let _ = conn.conn.execute_batch("ROLLBACK");
                }
                Err(e)
            }
        }
    }

    /// The durability barrier: once it returns, every transaction committed before the
    /// call survives power loss. Syncs the write-ahead log (frames already checkpointed
    /// into the database file were synced by the checkpoint, `synchronous=NORMAL`), off
    /// the calling thread; free when nothing was committed since the last barrier.
    pub(crate) async fn sync(&self) -> Result<()> {
        let Some(wal) = self.wal.clone() else {
            return Ok(());
        };
        let target = self.commits.load(Ordering::Acquire);
        let mut synced = self.barrier.lock().await;
        if *synced >= target {
            return Ok(());
        }
        let upto = self.commits.load(Ordering::Acquire);
        let db_file = wal.with_file_name(
            wal.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix("-wal"))
                .unwrap_or_default(),
        );
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            // No log (never written, or removed by the last connection's close): the
            // database file holds every commit.
            let file = match std::fs::File::open(&wal) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    std::fs::File::open(&db_file)?
                }
                Err(e) => return Err(e),
            };
            file.sync_data()
        })
        .await
        .map_err(|e| MetaError::backend(false, e))?
        .map_err(|e| MetaError::backend(true, e))?;
        *synced = upto;
        self.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// How many durability barriers synced the log.
    #[cfg(test)]
    pub(crate) fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn busy_is_retryable_and_other_errors_are_not() {
        assert!(db_err(failure(rusqlite::ffi::SQLITE_BUSY)).is_retryable());
        assert!(db_err(failure(rusqlite::ffi::SQLITE_LOCKED)).is_retryable());
        assert!(matches!(
            db_err(failure(rusqlite::ffi::SQLITE_FULL)),
            MetaError::NoSpace
        ));
        assert!(!db_err(rusqlite::Error::QueryReturnedNoRows).is_retryable());
        assert!(!db_err(failure(rusqlite::ffi::SQLITE_CORRUPT)).is_retryable());
    }
}
