//! Keeping unlinked-but-open files alive, across every client of the volume.
//!
//! # The rule
//!
//! JuiceFS records in `jfs_sustained (sid, inode)` that session `sid` keeps an inode with no
//! name alive; such an inode keeps its `jfs_node` row (nlink 0) and its chunks. A regular
//! file whose last link goes is handled in the same transaction as the unlink (or the rename
//! that replaces it):
//!
//! 1. The unlinking client adds a row for *its own* session if it has the file open (its
//!    [`OpenFiles`] says so).
//! 2. For every *other* session it adds a row when that session might have the file open:
//!    - a session of a client in this process is asked directly (its open table is in the
//!      process-wide registry below), so the answer is exact;
//!    - a session whose client in this process is gone cannot hold anything open: no row;
//!    - a live session (expiry not passed) of another process, or of the juicefs client,
//!      cannot be asked, so it is assumed to have the file open and gets a row; an expired
//!      one is as good as reaped.
//! 3. No row at all: the node is deleted and the file queued in `jfs_delfile`, as JuiceFS does.
//!
//! A session lets go of its row — and the last row to go queues the file in `jfs_delfile`
//! and deletes the node — when it closes the file for the last time, at every
//! [`heartbeat`](meta_api::MetaEngine::heartbeat) for rows of files it does not have open
//! (the rows step 2 assumed), when the session closes, and when a stale session is reaped.
//! So an unlinked file keeps its data until its last close in *any* session; with clients
//! in other processes it may stay up to one heartbeat longer than strictly needed.
//!
//! Races inside this process are closed by ordering: a client's first `open` of an inode
//! records it in its open table *before* it reads the node inside a write transaction, and
//! the unlinker consults open tables inside its own write transaction. Either the open's
//! transaction comes first (the unlinker sees the open) or the unlink's does (the open finds
//! no node). A consulted client that has the file open also gets a *hint*, so that its last
//! close knows to look for a row without asking the database on every close.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock, Weak};

use crate::sql::SqliteConnection;
use meta_api::{Ino, OpenFiles, Result};

use crate::engine::node::{add_usage, align4k, get_node};
use crate::txn::db_err;

/// What one client knows about its open files.
#[derive(Debug, Default)]
pub(crate) struct ClientState {
    /// How many times this client has each inode open.
    pub(crate) open: OpenFiles,
    /// Inodes that may be sustained for this client's session; their last close looks for a
    /// row to release. Also the lock that makes "is it open? then hint" atomic against close.
    hints: Mutex<HashSet<Ino>>,
}

impl ClientState {
    fn hints(&self) -> std::sync::MutexGuard<'_, HashSet<Ino>> {
        // Each critical section is one set operation, so a poisoned set is still consistent.
        self.hints.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// If `ino` is open here, remembers that a sustained row may follow and returns `true`.
    pub(crate) fn hold_if_open(&self, ino: Ino) -> bool {
        let mut hints = self.hints();
        if self.open.is_open(ino) {
            hints.insert(ino);
            true
        } else {
            false
        }
    }

    /// Records a close; returns `true` when it was the last one and a row may need releasing.
    pub(crate) fn close(&self, ino: Ino) -> bool {
        let mut hints = self.hints();
        self.open.close(ino) && hints.remove(&ino)
    }

    /// Forgets every open file and hint (the session ended).
    pub(crate) fn clear(&self) {
        let mut hints = self.hints();
        self.open.clear();
        hints.clear();
    }
}

type Registry = Mutex<HashMap<(String, u64), Weak<ClientState>>>;

/// Sessions opened by clients of this process, by (database location, session id).
fn registry() -> std::sync::MutexGuard<'static, HashMap<(String, u64), Weak<ClientState>>> {
    static CLIENTS: OnceLock<Registry> = OnceLock::new();
    CLIENTS
        .get_or_init(Registry::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// Makes session `sid` of the database at `location` known to this process's clients.
pub(crate) fn register(location: &str, sid: u64, state: Weak<ClientState>) {
    registry().insert((location.to_string(), sid), state);
}

/// Forgets session `sid` (closed, or reaped).
pub(crate) fn unregister(location: &str, sid: u64) {
    registry().remove(&(location.to_string(), sid));
}

/// Whether session `sid` (live or not, as `live` says) might have `ino` open: step 2 of
/// the rule. A client of this process is asked whatever its expiry says, since it is known
/// to be there; a session of another process counts only while it is live.
fn might_hold(location: &str, sid: u64, live: bool, ino: Ino) -> bool {
    let entry = registry().get(&(location.to_string(), sid)).cloned();
    match entry {
        None => live,
        Some(weak) => match weak.upgrade() {
            Some(state) => state.hold_if_open(ino),
            None => false,
        },
    }
}

/// A session of the volume and whether it is live (its expiry has not passed).
pub(crate) type SessionLiveness = (u64, bool);

/// The SQL expression listing every session as `sid:live` (`?` is now, in seconds), for
/// [`parse_sessions`]; a subquery so that callers can fetch it with other columns.
pub(crate) const SESSIONS_EXPR: &str =
    "(SELECT group_concat(sid || ':' || (expire >= ?3)) FROM jfs_session2)";

/// Every session of the volume with its liveness at `now` (Unix seconds).
pub(crate) async fn sessions(
    conn: &mut SqliteConnection,
    now: i64,
) -> Result<Vec<SessionLiveness>> {
    let rows = crate::sql::query("SELECT sid, expire >= ? FROM jfs_session2")
        .bind(now)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
    rows.iter()
        .map(|r| {
            let sid = r.try_get::<i64, _>(0).map_err(db_err)? as u64;
            Ok((sid, r.try_get::<bool, _>(1).map_err(db_err)?))
        })
        .collect()
}

/// Parses what [`SESSIONS_EXPR`] returned.
pub(crate) fn parse_sessions(list: Option<&str>) -> Vec<SessionLiveness> {
    list.unwrap_or_default()
        .split(',')
        .filter_map(|item| {
            let (sid, live) = item.split_once(':')?;
            Some((sid.trim().parse().ok()?, live.trim() == "1"))
        })
        .collect()
}

/// The sessions that must sustain regular file `ino`, whose last link the client with
/// session `me` (0 = none) and state `mine` is removing; `all` are the volume's sessions.
pub(crate) fn holders(
    location: &str,
    me: u64,
    mine: &ClientState,
    ino: Ino,
    all: &[SessionLiveness],
) -> Vec<u64> {
    let mut out = Vec::new();
    if me != 0 && mine.hold_if_open(ino) {
        out.push(me);
    }
    for &(sid, live) in all {
        if sid != me && might_hold(location, sid, live, ino) {
            out.push(sid);
        }
    }
    out
}

/// Records that the sessions `sids` keep `ino` alive.
pub(crate) async fn sustain(conn: &mut SqliteConnection, sids: &[u64], ino: Ino) -> Result<()> {
    for sid in sids {
        crate::sql::query("INSERT OR IGNORE INTO jfs_sustained (sid, inode) VALUES (?, ?)")
            .bind(*sid as i64)
            .bind(ino as i64)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    Ok(())
}

/// Queues unlinked inode `ino` (node row present, nlink 0) for deletion as JuiceFS does:
/// a `jfs_delfile` row, the node and its xattrs gone, the usage counters given back.
pub(crate) async fn queue_deletion(conn: &mut SqliteConnection, ino: Ino, now: i64) -> Result<()> {
    let Some(attr) = get_node(conn, ino).await? else {
        return Ok(());
    };
    if attr.nlink > 0 {
        return Ok(());
    }
    crate::sql::query("INSERT OR IGNORE INTO jfs_delfile (inode, length, expire) VALUES (?, ?, ?)")
        .bind(ino as i64)
        .bind(attr.length as i64)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    crate::engine::node::delete_node(conn, ino).await?;
    add_usage(conn, -align4k(attr.length), -1).await
}

/// Session `sid` lets go of `ino`; the last session to do so queues it for deletion.
/// Returns whether a row was released.
pub(crate) async fn release(
    conn: &mut SqliteConnection,
    sid: u64,
    ino: Ino,
    now: i64,
) -> Result<bool> {
    let done = crate::sql::query("DELETE FROM jfs_sustained WHERE sid = ? AND inode = ?")
        .bind(sid as i64)
        .bind(ino as i64)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    let others = crate::sql::query("SELECT 1 FROM jfs_sustained WHERE inode = ? LIMIT 1")
        .bind(ino as i64)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
    if others.is_none() {
        queue_deletion(conn, ino, now).await?;
    }
    Ok(true)
}

/// The inodes session `sid` sustains.
pub(crate) async fn sustained_by(conn: &mut SqliteConnection, sid: u64) -> Result<Vec<Ino>> {
    let rows = crate::sql::query("SELECT inode FROM jfs_sustained WHERE sid = ? ORDER BY inode")
        .bind(sid as i64)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
    rows.iter()
        .map(|r| r.try_get::<i64, _>(0).map(|v| v as u64).map_err(db_err))
        .collect()
}

/// Ends session `sid`: releases everything it sustains, drops its locks and its row.
pub(crate) async fn end_session(conn: &mut SqliteConnection, sid: u64, now: i64) -> Result<()> {
    for ino in sustained_by(conn, sid).await? {
        release(conn, sid, ino, now).await?;
    }
    crate::sql::query(
        "DELETE FROM jfs_flock WHERE sid = ?1; DELETE FROM jfs_plock WHERE sid = ?1; \
         DELETE FROM jfs_session2 WHERE sid = ?1",
    )
    .bind(sid as i64)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}
