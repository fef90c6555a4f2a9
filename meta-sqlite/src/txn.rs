//! The database handle, the one retried write-transaction helper, the durability barrier,
//! and the mapping of SQLite errors onto [`MetaError`].

use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
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

/// [`db_err`], but a row that breaks a unique key is `Exists` (a taken name, a setting
/// already written).
pub(crate) fn exists_or_db_err(e: rusqlite::Error) -> MetaError {
    if is_unique_violation(&e) {
        MetaError::Exists
    } else {
        db_err(e)
    }
}

/// One volume's database: the writer connection (SQLite has one writer at a time, so
/// writers of this client queue here instead of spinning on `SQLITE_BUSY`) and a pool of
/// readers (WAL lets them run beside the writer). Statements run on the calling thread
/// (see [`crate::sql`]).
pub(crate) struct Db {
    writer: tokio::sync::Mutex<Writer>,
    /// Operations of this client waiting for the writer (they join an open group).
    queued: AtomicUsize,
    /// The outcome of each group commit, for the members waiting on it.
    outcomes: tokio::sync::watch::Sender<Outcomes>,
    pub(crate) pool: Pool,
    /// The database file (`None` in memory); syncing its write-ahead log (`{file}-wal`)
    /// makes every commit so far durable.
    file: Option<PathBuf>,
    /// Durability barriers passed, for tests and figures.
    syncs: AtomicU64,
    /// Serialises barriers, so that concurrent callers share the work of one.
    barrier: tokio::sync::Mutex<u64>,
    /// Commits so far (the barrier syncs when any happened since the last one; the
    /// checkpointer runs when any happened since its last run).
    commits: Arc<AtomicU64>,
    /// Copies the log into the database file off the writer's path (file databases).
    _checkpointer: Option<Checkpointer>,
}

impl Db {
    /// `checkpoints`: a connection for the background checkpointer of a file database.
    pub(crate) fn new(
        writer: SqliteConnection,
        pool: Pool,
        file: Option<PathBuf>,
        checkpoints: Option<rusqlite::Connection>,
    ) -> Db {
        let commits = Arc::new(AtomicU64::new(0));
        Db {
            writer: tokio::sync::Mutex::new(Writer {
                conn: writer,
                group: None,
                next_epoch: 0,
            }),
            queued: AtomicUsize::new(0),
            outcomes: tokio::sync::watch::Sender::new(Outcomes::default()),
            pool,
            file,
            syncs: AtomicU64::new(0),
            barrier: tokio::sync::Mutex::new(0),
            _checkpointer: checkpoints.map(|c| Checkpointer::start(c, commits.clone())),
            commits,
        }
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` … `COMMIT` transaction on the writer connection,
    /// retrying the whole closure with bounded exponential backoff while the database is
    /// busy or locked (then `Conflict`). Any other error rolls back `f`'s changes and is
    /// returned as is.
    ///
    /// **Group commit**: when other operations of this client wait for the writer, the
    /// transaction is left open for them; each runs inside it under a savepoint of its own
    /// (its error undoes only its changes) and the last one commits for all. Every member
    /// returns only after that commit: the operation is atomic and survives a crash of this
    /// process once it returns, and survives power loss once [`Db::sync`] returns after it
    /// (the log is written, not synced, at each commit: `synchronous=NORMAL`).
    ///
    /// `f`'s future must finish without waiting (every statement of this engine does): it
    /// is polled once, so nothing else runs on the writer while it runs, and a caller
    /// dropping the operation can only do so outside it.
    pub(crate) async fn txn<'a, T, F>(&'a self, mut f: F) -> Result<T>
    where
        F: for<'c> FnMut(&'c mut SqliteConnection, Scope<'c, 'a>) -> BoxFuture<'c, Result<T>>,
    {
        let mut backoff = Backoff::new(FIRST_BACKOFF, MAX_BACKOFF);
        let started = Instant::now();
        loop {
            match self.attempt(&mut f).await {
                Err(e) if e.is_retryable() && started.elapsed() < BUSY_DEADLINE => {
                    tokio::time::sleep(backoff.next_pause()).await;
                }
                Err(e) if e.is_retryable() => return Err(MetaError::Conflict),
                other => return other,
            }
        }
    }

    /// One attempt of [`Db::txn`]: `f` inside the open group's transaction (or a new one),
    /// then the commit, or the wait for the member that commits.
    async fn attempt<'a, T, F>(&'a self, f: &mut F) -> Result<T>
    where
        F: for<'c> FnMut(&'c mut SqliteConnection, Scope<'c, 'a>) -> BoxFuture<'c, Result<T>>,
    {
        let mut w = {
            let _queued = Queued::enter(&self.queued);
            self.writer.lock().await
        };
        let (epoch, first) = match w.group {
            Some(g) => (g.epoch, false),
            None => {
                if !w.conn.conn.is_autocommit() {
                    // A transaction left open by a panic inside an earlier closure.
                    w.conn.conn.execute_batch("ROLLBACK").map_err(db_err)?;
                }
                control(&w.conn, "BEGIN IMMEDIATE").map_err(db_err)?;
                w.next_epoch += 1;
                let epoch = w.next_epoch;
                w.group = Some(Group { epoch, members: 0 });
                (epoch, true)
            }
        };
        // The first member needs no savepoint: on its error the transaction, which holds
        // nothing else, is rolled back whole.
        let outcome = run_member(&mut w.conn, f, !first);
        if first && outcome.is_err() && w.conn.conn.is_autocommit() {
            // The first member failed and its transaction is rolled back: nobody else
            // was in it.
            w.group = None;
            return outcome;
        }
        if w.conn.conn.is_autocommit() {
            // SQLite ended the whole transaction (a full disk, an I/O error): nobody's
            // changes in it were kept; the members waiting for it retry.
            w.group = None;
            self.publish(epoch, Err(GroupError::Lost));
            return outcome.and(Err(MetaError::backend(
                true,
                std::io::Error::other("the grouped transaction was rolled back"),
            )));
        }
        let Some(group) = w.group.as_mut() else {
            return Err(MetaError::backend(
                false,
                std::io::Error::other("no open group"),
            ));
        };
        let others_wait = self.queued.load(Ordering::Acquire) > 0;
        if others_wait && group.members < MAX_GROUP {
            if outcome.is_ok() {
                group.members += 1;
            }
            // Someone waits for the writer: it joins this transaction, or commits it.
            drop(w);
            return match outcome {
                Ok(v) => self.await_commit(epoch).await.map(|()| v),
                Err(e) => Err(e),
            };
        }
        let committed = self.commit_group(&mut w, epoch);
        drop(w);
        match outcome {
            Ok(v) => committed.map(|()| v),
            Err(e) => Err(e),
        }
    }

    /// Commits the open group `epoch` on `w` and tells its members.
    fn commit_group(&self, w: &mut Writer, epoch: u64) -> Result<()> {
        let done = control(&w.conn, "COMMIT").map_err(db_err);
        if done.is_err() && !w.conn.conn.is_autocommit() {
            // Best effort: a failed ROLLBACK leaves SQLite's own automatic one.
            let _ = w.conn.conn.execute_batch("ROLLBACK");
        }
        w.group = None;
        match &done {
            Ok(()) => {
                self.commits.fetch_add(1, Ordering::Release);
                self.publish(epoch, Ok(()));
            }
            Err(MetaError::NoSpace) => self.publish(epoch, Err(GroupError::NoSpace)),
            Err(_) => self.publish(epoch, Err(GroupError::Lost)),
        }
        done
    }

    fn publish(&self, epoch: u64, outcome: std::result::Result<(), GroupError>) {
        self.outcomes.send_modify(|o| {
            o.last = o.last.max(epoch);
            if let Err(e) = outcome {
                o.failed.push((epoch, e));
                // Members read their outcome within moments; keep a short history.
                if o.failed.len() > 64 {
                    o.failed.remove(0);
                }
            }
        });
    }

    /// Waits until group `epoch` is committed (or lost), committing it itself if it is
    /// still open when this member gets the writer.
    async fn await_commit(&self, epoch: u64) -> Result<()> {
        let mut guard = StuckGuard {
            db: self,
            epoch,
            armed: true,
        };
        let mut rx = self.outcomes.subscribe();
        let out = tokio::select! {
            seen = rx.wait_for(|o| o.last >= epoch) => match seen {
                Ok(o) => o.outcome(epoch),
                Err(_) => Err(MetaError::backend(false, std::io::Error::other("database closed"))),
            },
            mut w = self.writer.lock() => {
                if w.group.is_some_and(|g| g.epoch == epoch) {
                    self.commit_group(&mut w, epoch)
                } else {
                    self.outcomes.borrow().outcome(epoch)
                }
            }
        };
        guard.armed = false;
        out
    }
    /// The durability barrier: once it returns, every transaction committed before the
    /// call survives power loss. Syncs the write-ahead log (frames already checkpointed
    /// into the database file were synced by the checkpoint, `synchronous=NORMAL`), off
    /// the calling thread; free when nothing was committed since the last barrier.
    pub(crate) async fn sync(&self) -> Result<()> {
        let Some(db_file) = self.file.clone() else {
            return Ok(());
        };
        let target = self.commits.load(Ordering::Acquire);
        let mut synced = self.barrier.lock().await;
        if *synced >= target {
            return Ok(());
        }
        let upto = self.commits.load(Ordering::Acquire);
        let mut wal = db_file.clone().into_os_string();
        wal.push("-wal");
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

    /// How many transactions committed.
    #[cfg(test)]
    pub(crate) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Acquire)
    }

    /// How many durability barriers synced the log.
    #[cfg(test)]
    pub(crate) fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }
}

/// Most operations one group commit takes (then it commits, and the next group begins).
const MAX_GROUP: usize = 64;

/// The writer connection and the group transaction open on it.
struct Writer {
    conn: SqliteConnection,
    group: Option<Group>,
    next_epoch: u64,
}

/// A transaction left open for the operations queued behind it.
#[derive(Debug, Clone, Copy)]
struct Group {
    epoch: u64,
    /// Members whose changes wait for its commit.
    members: usize,
}

/// Why a group's commit did not happen.
#[derive(Debug, Clone, Copy)]
enum GroupError {
    /// The disk is full.
    NoSpace,
    /// The transaction was rolled back (an I/O error): its members may retry.
    Lost,
}

/// Outcomes of the group commits so far.
#[derive(Debug, Default)]
struct Outcomes {
    /// The last group that ended.
    last: u64,
    /// Recent groups that did not commit.
    failed: Vec<(u64, GroupError)>,
}

impl Outcomes {
    fn outcome(&self, epoch: u64) -> Result<()> {
        match self.failed.iter().find(|(e, _)| *e == epoch) {
            None => Ok(()),
            Some((_, GroupError::NoSpace)) => Err(MetaError::NoSpace),
            Some((_, GroupError::Lost)) => Err(MetaError::backend(
                true,
                std::io::Error::other("the grouped transaction was rolled back"),
            )),
        }
    }
}

/// Counts an operation as waiting for the writer until it gets it (or is dropped).
struct Queued<'q>(&'q AtomicUsize);

impl<'q> Queued<'q> {
    fn enter(n: &'q AtomicUsize) -> Queued<'q> {
        n.fetch_add(1, Ordering::AcqRel);
        Queued(n)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A member dropped while waiting for its group's commit commits the group if it can,
/// so that no transaction stays open (holding SQLite's write lock) for want of a member.
/// When the writer is busy, its holder joins or commits the group.
struct StuckGuard<'d> {
    db: &'d Db,
    epoch: u64,
    armed: bool,
}

impl Drop for StuckGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(mut w) = self.db.writer.try_lock() {
            if w.group.is_some_and(|g| g.epoch == self.epoch) {
                let _ = self.db.commit_group(&mut w, self.epoch);
            }
        }
    }
}

/// Runs a transaction-control statement (prepared once per connection).
fn control(conn: &SqliteConnection, sql: &str) -> rusqlite::Result<()> {
    conn.conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// Runs one member's closure, under its own savepoint when others' changes precede it: its
/// error undoes only its changes (without one, the whole transaction).
fn run_member<'a, T, F>(conn: &mut SqliteConnection, f: &mut F, savepoint: bool) -> Result<T>
where
    F: for<'c> FnMut(&'c mut SqliteConnection, Scope<'c, 'a>) -> BoxFuture<'c, Result<T>>,
{
    if savepoint {
        control(conn, "SAVEPOINT op").map_err(db_err)?;
    }
    let outcome = match f(conn, PhantomData).now_or_never() {
        Some(r) => r,
        None => Err(MetaError::backend(
            false,
            std::io::Error::other("a SQLite transaction waited on something else"),
        )),
    };
    if conn.conn.is_autocommit() {
        return outcome;
    }
    let ended = match (&outcome, savepoint) {
        (Ok(_), false) => Ok(()),
        (Ok(_), true) => control(conn, "RELEASE op"),
        (Err(_), true) => conn.conn.execute_batch("ROLLBACK TO op; RELEASE op"),
        (Err(_), false) => control(conn, "ROLLBACK"),
    };
    match ended {
        Ok(()) => outcome,
        Err(e) => outcome.and(Err(db_err(e))),
    }
}

/// How often the checkpointer looks for new commits.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(25);

/// A thread that copies the write-ahead log into the database file (`PRAGMA
/// wal_checkpoint(PASSIVE)`, which never blocks a writer or a reader) whenever this client
/// committed since its last run. A checkpoint syncs the log and the file; done here, that
/// work leaves the writer's path, which then only appends to the log. SQLite's own
/// checkpoint at a commit stays as a backstop for a log that grows past
/// [`crate::engine::AUTOCHECKPOINT_PAGES`]. Stops when the [`Db`] drops.
struct Checkpointer {
    _stop: std::sync::mpsc::Sender<()>,
}

impl Checkpointer {
    fn start(conn: rusqlite::Connection, commits: Arc<AtomicU64>) -> Checkpointer {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                let mut seen = 0;
                // Returns (disconnects) when the Db drops its sender.
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(CHECKPOINT_EVERY)
                {
                    let now = commits.load(Ordering::Acquire);
                    if now == seen {
                        continue;
                    }
                    seen = now;
                    let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    if let Err(e) = done {
                        if !crate::sql::is_busy(&e) {
                            tracing::debug!(error = %e, "background checkpoint failed");
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no background checkpointer: commits checkpoint the log");
        }
        Checkpointer { _stop: stop }
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
