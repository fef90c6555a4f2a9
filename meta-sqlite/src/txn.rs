//! The database handle, the one retried write-transaction helper, and the mapping of sqlx
//! errors onto [`MetaError`].

use meta_api::backoff::Backoff;
use std::marker::PhantomData;
use std::time::Duration;

use futures::future::BoxFuture;
use meta_api::{MetaError, Result};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqliteTransactionManager};
use sqlx::{ConnectOptions, SqliteConnection, TransactionManager};

/// Attempts of one transaction before it gives up with `Conflict`.
const MAX_ATTEMPTS: u32 = 10;
/// Ceiling of the first pause after a busy/locked database (full jitter, doubling).
const FIRST_BACKOFF: Duration = Duration::from_millis(2);
/// Longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_millis(200);

/// SQLite's primary result codes that mean "someone else holds the lock, try again".
const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;
/// SQLite's primary result code for a full disk.
const SQLITE_FULL: i32 = 13;

/// Ties a transaction closure's borrow of the connection (`'c`) to the data it captures
/// (`'a`): the type's implied bound `'a: 'c` lets the closure's future hold both.
pub(crate) type Scope<'c, 'a> = PhantomData<&'c &'a ()>;

/// The SQLite result code (primary, low byte) of a database error.
fn sqlite_code(e: &sqlx::Error) -> Option<i32> {
    match e {
        sqlx::Error::Database(d) => d
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .map(|c| c & 0xff),
        _ => None,
    }
}

/// Maps a sqlx error: busy/locked databases and pool timeouts are retryable backend errors,
/// a full disk is `NoSpace`, everything else a permanent backend error.
pub(crate) fn db_err(e: sqlx::Error) -> MetaError {
    match sqlite_code(&e) {
        Some(SQLITE_BUSY | SQLITE_LOCKED) => MetaError::backend(true, e),
        Some(SQLITE_FULL) => MetaError::NoSpace,
        _ => {
            let retryable = matches!(e, sqlx::Error::PoolTimedOut);
            MetaError::backend(retryable, e)
        }
    }
}

/// Whether `e` is a violated UNIQUE or PRIMARY KEY constraint (a name or row already taken).
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => d.is_unique_violation(),
        _ => false,
    }
}

/// One volume's database: a dedicated writer connection (SQLite has one writer at a time,
/// so writers of this client queue here instead of spinning on `SQLITE_BUSY`) and a small
/// pool of readers (WAL lets them run beside the writer).
pub(crate) struct Db {
    pub(crate) writer: tokio::sync::Mutex<SqliteConnection>,
    pub(crate) pool: SqlitePool,
    /// How to open the writer connection again if it dies.
    pub(crate) options: SqliteConnectOptions,
}

impl Db {
    /// Runs `f` in one `BEGIN IMMEDIATE` … `COMMIT` transaction on the writer connection,
    /// retrying the whole closure with bounded exponential backoff while the database is
    /// busy or locked (then `Conflict`). Any other error rolls back and is returned as is.
    ///
    /// Cancel-safe: a caller may drop the future at any await point (a FUSE interrupt, a
    /// timeout, an aborted lock wait) and the writer connection is left outside any
    /// transaction, so the write lock is never held by a transaction nobody will end.
    pub(crate) async fn txn<'a, T, F>(&'a self, mut f: F) -> Result<T>
    where
        F: for<'c> FnMut(&'c mut SqliteConnection, Scope<'c, 'a>) -> BoxFuture<'c, Result<T>>,
    {
        let mut conn = self.writer.lock().await;
        let mut backoff = Backoff::new(FIRST_BACKOFF, MAX_BACKOFF);
        for attempt in 1..=MAX_ATTEMPTS {
            let (outcome, lost) = Self::attempt(&mut conn, &mut f).await;
            if lost {
                // The writer connection is gone: open a new one and try again.
                *conn = self.options.connect().await.map_err(db_err)?;
            }
            match outcome {
                Err(e) if e.is_retryable() && attempt < MAX_ATTEMPTS => {
                    tokio::time::sleep(backoff.next_pause()).await;
                }
                Err(e) if e.is_retryable() => return Err(MetaError::Conflict),
                other => return other,
            }
        }
        Err(MetaError::Conflict)
    }

    /// One attempt of [`Db::txn`]: the outcome, and whether the connection was lost.
    async fn attempt<'a, T, F>(conn: &mut SqliteConnection, f: &mut F) -> (Result<T>, bool)
    where
        F: for<'c> FnMut(&'c mut SqliteConnection, Scope<'c, 'a>) -> BoxFuture<'c, Result<T>>,
    {
        // Armed from before BEGIN until COMMIT is acknowledged: whatever ends this future
        // early (an error, a drop) queues a ROLLBACK on the connection's worker, which runs
        // before any later command. (sqlx's own `Transaction` cannot be used: its custom
        // BEGIN awaits again after SQLite has begun, and a future dropped there leaves a
        // transaction no guard knows about.)
        let open = OpenTxn { conn, armed: true };
        let began = SqliteTransactionManager::begin(open.conn, Some("BEGIN IMMEDIATE".into()));
        match began.await {
            Ok(()) => {}
            Err(e @ (sqlx::Error::WorkerCrashed | sqlx::Error::Io(_))) => {
                return (Err(MetaError::backend(true, e)), true)
            }
            Err(e) => return (Err(db_err(e)), false),
        }
        let mut open = open;
        let outcome = async {
            let value = f(open.conn, PhantomData).await?;
            SqliteTransactionManager::commit(open.conn)
                .await
                .map_err(db_err)?;
            Ok(value)
        }
        .await;
        // Committed: nothing to roll back. Failed: the guard rolls back as it drops.
        open.armed = outcome.is_err();
        (outcome, false)
    }
}

/// The writer connection while one of [`Db::txn`]'s transactions may be open on it.
struct OpenTxn<'c> {
    conn: &'c mut SqliteConnection,
    /// Whether a transaction may still be open (and must be rolled back on drop).
    armed: bool,
}

impl Drop for OpenTxn<'_> {
    fn drop(&mut self) {
        if self.armed {
            // Only queues the command (no await). A ROLLBACK with no transaction open, or
            // one whose COMMIT went through unacknowledged, is a no-op in sqlx's worker.
            SqliteTransactionManager::start_rollback(self.conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_is_retryable_and_other_errors_are_not() {
        assert!(db_err(sqlx::Error::PoolTimedOut).is_retryable());
        assert!(!db_err(sqlx::Error::RowNotFound).is_retryable());
        assert!(!db_err(sqlx::Error::Protocol("x".into())).is_retryable());
    }
}
