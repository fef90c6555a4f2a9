//! How this engine talks to SQLite: statements run on the calling thread, in place.
//!
//! SQLite is a library, not a server: a statement on a warm page cache takes a few
//! microseconds, while handing it to a worker thread and waiting for the answer (what an
//! asynchronous driver does) costs two thread switches, several times more. So every
//! statement here runs synchronously, on the thread that asks, on a connection this client
//! owns ([`rusqlite`]).
//!
//! The engine's code is still written as `async fn`s over an [`Executor`]: the futures
//! these statements return are ready on their first poll, so an operation made of them
//! never yields between its `BEGIN` and its `COMMIT` ([`crate::txn::Db::txn`] checks it),
//! and the same code reads naturally next to engines whose statements do travel.
//!
//! A string may hold several statements separated by `;` (never inside a literal). Plain
//! `?` parameters are handed out in order across them; a statement numbering its
//! parameters (`?1`, `?2`) gets the arguments from the first on, as if alone.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::types::{FromSql, ToSql, Value, ValueRef};
use rusqlite::{Connection, ErrorCode};

/// The error every statement reports.
pub(crate) type Error = rusqlite::Error;

/// How long a reader retries a table locked by another connection of an in-memory volume
/// (shared-cache mode has table locks that `busy_timeout` does not wait for).
const LOCKED_RETRY: Duration = Duration::from_secs(5);

/// One connection this client owns.
pub(crate) struct SqliteConnection {
    pub(crate) conn: Connection,
}

impl std::fmt::Debug for SqliteConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteConnection")
    }
}

/// How to open one more connection to the volume's database.
pub(crate) type Opener = Box<dyn Fn() -> Result<Connection, Error> + Send + Sync>;

/// The reader connections of one client: taken on demand, given back after use, opened
/// when none is free (at most [`Pool::KEEP`] are kept).
pub(crate) struct Pool {
    idle: Mutex<Vec<Connection>>,
    open: Opener,
}

impl Pool {
    /// Idle connections kept for later reads.
    const KEEP: usize = 8;

    pub(crate) fn new(open: Opener) -> Pool {
        Pool {
            idle: Mutex::new(Vec::new()),
            open,
        }
    }

    fn take(&self) -> Result<Connection, Error> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match idle {
            Some(c) => Ok(c),
            None => (self.open)(),
        }
    }

    fn give_back(&self, conn: Connection) {
        // A read transaction left open ends here; a connection that cannot end it goes.
        if !conn.is_autocommit() && conn.execute_batch("ROLLBACK").is_err() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < Self::KEEP {
            idle.push(conn);
        }
    }

    /// A reader connection of this pool, given back when the guard drops.
    pub(crate) async fn acquire(&self) -> Result<PoolConnection<'_>, Error> {
        Ok(PoolConnection {
            pool: self,
            conn: Some(SqliteConnection { conn: self.take()? }),
        })
    }
}

impl Pool {
    /// A reader connection inside a read transaction: every statement sees the same
    /// snapshot of the database. Ended when the guard drops (or by
    /// [`PoolConnection::rollback`]).
    pub(crate) async fn begin(&self) -> Result<PoolConnection<'_>, Error> {
        let conn = self.acquire().await?;
        (*conn).conn.execute_batch("BEGIN")?;
        Ok(conn)
    }
}

impl PoolConnection<'_> {
    /// Ends the read transaction [`Pool::begin`] opened.
    pub(crate) async fn rollback(self) -> Result<(), Error> {
        (*self).conn.execute_batch("ROLLBACK")
    }
}

/// A reader connection taken from a [`Pool`].
pub(crate) struct PoolConnection<'p> {
    pool: &'p Pool,
    conn: Option<SqliteConnection>,
}

impl std::ops::Deref for PoolConnection<'_> {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        self.conn.as_ref().expect("present until dropped")
    }
}

impl std::ops::DerefMut for PoolConnection<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.conn.as_mut().expect("present until dropped")
    }
}

impl Drop for PoolConnection<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            self.pool.give_back(c.conn);
        }
    }
}

/// Where a statement runs: a connection of this client, or any reader of its pool.
pub(crate) trait Executor {
    /// Runs `f` on the connection.
    fn run<T>(self, f: impl FnMut(&Connection) -> Result<T, Error>) -> Result<T, Error>;
}

impl Executor for &mut SqliteConnection {
    fn run<T>(self, mut f: impl FnMut(&Connection) -> Result<T, Error>) -> Result<T, Error> {
        f(&self.conn)
    }
}

impl Executor for &Pool {
    fn run<T>(self, mut f: impl FnMut(&Connection) -> Result<T, Error>) -> Result<T, Error> {
        let conn = self.take()?;
        let started = Instant::now();
        let mut pause = Duration::from_micros(50);
        // Only reads run on the pool: a read retried after a locked table repeats nothing.
        let out = loop {
            match f(&conn) {
                Err(e) if is_busy(&e) && started.elapsed() < LOCKED_RETRY => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(5));
                }
                other => break other,
            }
        };
        self.give_back(conn);
        out
    }
}

/// Whether `e` says another connection holds a lock this statement needs.
pub(crate) fn is_busy(e: &Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// Whether `e` is a violated UNIQUE or PRIMARY KEY constraint (a name or row already taken).
pub(crate) fn is_unique_violation(e: &Error) -> bool {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => {
            f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
        }
        _ => false,
    }
}

/// A statement (or several) with its arguments, run by [`Query::execute`] or fetched.
#[must_use = "a query does nothing until it is executed or fetched"]
pub(crate) struct Query<'q> {
    sql: &'q str,
    args: Vec<Value>,
    /// The first argument that could not be converted (reported when the query runs).
    bad: Option<Error>,
}

/// Starts a query.
pub(crate) fn query(sql: &str) -> Query<'_> {
    Query {
        sql,
        args: Vec::new(),
        bad: None,
    }
}

/// What an executed statement changed.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Done {
    changes: u64,
    last_rowid: i64,
}

impl Done {
    /// Rows inserted, updated or deleted, over every statement of the query.
    pub(crate) fn rows_affected(&self) -> u64 {
        self.changes
    }

    /// The rowid of the last row inserted.
    pub(crate) fn last_insert_rowid(&self) -> i64 {
        self.last_rowid
    }
}

/// A row read, with its values owned.
#[derive(Debug, Clone)]
pub(crate) struct Row(Vec<Val>);

/// One value of a row, owned. Text is kept as bytes: SQLite hands out text that is not
/// UTF-8 (the `||` of two blobs is text), which only the reader's type decides about.
#[derive(Debug, Clone)]
enum Val {
    Null,
    Integer(i64),
    Real(f64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

impl Val {
    fn of(v: ValueRef<'_>) -> Val {
        match v {
            ValueRef::Null => Val::Null,
            ValueRef::Integer(i) => Val::Integer(i),
            ValueRef::Real(f) => Val::Real(f),
            ValueRef::Text(t) => Val::Text(t.to_vec()),
            ValueRef::Blob(b) => Val::Blob(b.to_vec()),
        }
    }

    fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Val::Null => ValueRef::Null,
            Val::Integer(i) => ValueRef::Integer(*i),
            Val::Real(f) => ValueRef::Real(*f),
            Val::Text(t) => ValueRef::Text(t),
            Val::Blob(b) => ValueRef::Blob(b),
        }
    }
}

/// A column position (columns are read by position only).
pub(crate) trait ColumnIndex {
    fn index(self) -> usize;
}

impl ColumnIndex for usize {
    fn index(self) -> usize {
        self
    }
}

impl Row {
    /// Column `i` as a `T`; a NULL or a value of another type is an error unless `T` allows
    /// it. Text and blobs convert into each other (as SQLite itself does), so a name
    /// written as TEXT by another client still reads as bytes.
    pub(crate) fn try_get<T: FromSql, I: ColumnIndex>(&self, i: I) -> Result<T, Error> {
        let i = i.index();
        let v = self
            .0
            .get(i)
            .ok_or(rusqlite::Error::InvalidColumnIndex(i))?;
        let first = T::column_result(v.as_ref());
        let again = match (&first, v) {
            (Err(rusqlite::types::FromSqlError::InvalidType), Val::Text(t)) => {
                Some(T::column_result(ValueRef::Blob(t)))
            }
            (Err(rusqlite::types::FromSqlError::InvalidType), Val::Blob(b)) => {
                Some(T::column_result(ValueRef::Text(b)))
            }
            _ => None,
        };
        let typ = v.as_ref().data_type();
        again.unwrap_or(first).map_err(|e| match e {
            rusqlite::types::FromSqlError::InvalidType => {
                rusqlite::Error::InvalidColumnType(i, format!("column {i}"), typ)
            }
            other => rusqlite::Error::FromSqlConversionFailure(i, typ, Box::new(other)),
        })
    }
}

/// Splits `sql` into its statements, dropping empty ones. The engine's statements hold no
/// `;` inside a literal, so a plain split is exact (and fast: this runs for every query).
fn statements(sql: &str) -> impl Iterator<Item = &str> {
    sql.split(';').filter(|s| !s.trim_start().is_empty())
}

/// Whether a statement numbers its parameters (`?1`) rather than taking them in order.
fn numbered(stmt: &str) -> bool {
    stmt.match_indices('?').any(|(i, _)| {
        stmt.as_bytes()
            .get(i + 1)
            .is_some_and(|b| b.is_ascii_digit())
    })
}

impl<'q> Query<'q> {
    /// Adds the next argument.
    pub(crate) fn bind<T: ToSql>(mut self, v: T) -> Query<'q> {
        match v.to_sql() {
            Ok(rusqlite::types::ToSqlOutput::Borrowed(r)) => self.args.push(r.into()),
            Ok(rusqlite::types::ToSqlOutput::Owned(v)) => self.args.push(v),
            Ok(_) => self.args.push(Value::Null),
            Err(e) => {
                self.bad.get_or_insert(e);
                self.args.push(Value::Null);
            }
        }
        self
    }

    /// Runs every statement, calling `row` for each row any of them returns.
    fn run_on(
        &self,
        conn: &Connection,
        mut row: impl FnMut(&rusqlite::Row<'_>) -> Result<(), Error>,
    ) -> Result<Done, Error> {
        let mut done = Done::default();
        let (mut next, mut any_numbered) = (0usize, false);
        for stmt in statements(self.sql) {
            let mut st = conn.prepare_cached(stmt)?;
            let count = st.parameter_count();
            let args = if numbered(stmt) {
                any_numbered = true;
                self.args.get(..count)
            } else {
                let a = self.args.get(next..next + count);
                next += count;
                a
            }
            .ok_or(rusqlite::Error::InvalidParameterCount(
                self.args.len(),
                count,
            ))?;
            let columns = st.column_count();
            let mut rows = st.query(rusqlite::params_from_iter(args.iter()))?;
            if columns == 0 {
                rows.next()?;
            } else {
                while let Some(r) = rows.next()? {
                    row(r)?;
                }
            }
            drop(rows);
            done.changes += conn.changes();
            done.last_rowid = conn.last_insert_rowid();
        }
        if !any_numbered && next != self.args.len() {
            return Err(rusqlite::Error::InvalidParameterCount(
                self.args.len(),
                next,
            ));
        }
        Ok(done)
    }

    fn check(&mut self) -> Result<(), Error> {
        match self.bad.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn owned(r: &rusqlite::Row<'_>, n: usize) -> Result<Row, Error> {
        (0..n)
            .map(|i| r.get_ref(i).map(Val::of))
            .collect::<Result<Vec<_>, _>>()
            .map(Row)
    }

    /// Runs the query; what it changed.
    pub(crate) async fn execute(mut self, e: impl Executor) -> Result<Done, Error> {
        self.check()?;
        e.run(|c| self.run_on(c, |_| Ok(())))
    }

    /// Every row the query returns.
    pub(crate) async fn fetch_all(mut self, e: impl Executor) -> Result<Vec<Row>, Error> {
        self.check()?;
        e.run(|c| {
            let mut out = Vec::new();
            self.run_on(c, |r| {
                out.push(Self::owned(r, r.as_ref().column_count())?);
                Ok(())
            })?;
            Ok(out)
        })
    }

    /// The first row the query returns, if any (the statements run to their end).
    pub(crate) async fn fetch_optional(mut self, e: impl Executor) -> Result<Option<Row>, Error> {
        self.check()?;
        e.run(|c| {
            let mut first = None;
            self.run_on(c, |r| {
                if first.is_none() {
                    first = Some(Self::owned(r, r.as_ref().column_count())?);
                }
                Ok(())
            })?;
            Ok(first)
        })
    }

    /// Calls `f` with each row the query returns, in order, without keeping them; stops at
    /// the first error of `f`, which is the inner result.
    pub(crate) async fn for_each<X>(
        mut self,
        e: impl Executor,
        mut f: impl FnMut(Row) -> Result<(), X>,
    ) -> Result<Result<(), X>, Error> {
        self.check()?;
        let mut failed = None;
        let outcome = e.run(|c| {
            self.run_on(c, |r| {
                let row = Self::owned(r, r.as_ref().column_count())?;
                f(row).map_err(|x| {
                    failed = Some(x);
                    // Only a signal to stop stepping; replaced by `f`'s error below.
                    rusqlite::Error::ExecuteReturnedResults
                })
            })
        });
        match (outcome, failed) {
            (_, Some(x)) => Ok(Err(x)),
            (Ok(_), None) => Ok(Ok(())),
            (Err(e), None) => Err(e),
        }
    }

    /// The first row the query returns; `QueryReturnedNoRows` when there is none.
    pub(crate) async fn fetch_one(self, e: impl Executor) -> Result<Row, Error> {
        self.fetch_optional(e)
            .await?
            .ok_or(rusqlite::Error::QueryReturnedNoRows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> SqliteConnection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (a INTEGER, b BLOB)")
            .unwrap();
        SqliteConnection { conn }
    }

    fn now<T>(f: impl std::future::Future<Output = T>) -> T {
        futures::FutureExt::now_or_never(f).expect("statements never wait")
    }

    #[test]
    fn several_statements_take_their_arguments_in_order() {
        let mut c = conn();
        let done = now(
            query("INSERT INTO t VALUES (?, ?); INSERT INTO t VALUES (?, 'x y')")
                .bind(1i64)
                .bind(&b"one"[..])
                .bind(2i64)
                .execute(&mut c),
        )
        .unwrap();
        assert_eq!(done.rows_affected(), 2);
        let rows = now(query("SELECT a, b FROM t ORDER BY a").fetch_all(&mut c)).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].try_get::<Vec<u8>, _>(1).unwrap(), b"one");
        assert_eq!(rows[1].try_get::<String, _>(1).unwrap(), "x y");
        // Numbered parameters restart for each statement.
        now(
            query("UPDATE t SET a = a + ?1 WHERE a = 1; UPDATE t SET a = a + ?1 WHERE a = 2")
                .bind(10i64)
                .execute(&mut c),
        )
        .unwrap();
        let sum = now(query("SELECT sum(a) FROM t").fetch_one(&mut c)).unwrap();
        assert_eq!(sum.try_get::<i64, _>(0).unwrap(), 23);
    }

    #[test]
    fn wrong_argument_counts_and_types_are_errors() {
        let mut c = conn();
        assert!(now(query("INSERT INTO t VALUES (?, ?)")
            .bind(1i64)
            .execute(&mut c))
        .is_err());
        assert!(now(query("SELECT 1").bind(1i64).execute(&mut c)).is_err());
        let row = now(query("SELECT 'text', NULL").fetch_one(&mut c)).unwrap();
        assert!(row.try_get::<i64, _>(0).is_err());
        assert!(row.try_get::<i64, _>(1).is_err());
        assert_eq!(row.try_get::<Option<i64>, _>(1).unwrap(), None);
        assert!(row.try_get::<i64, _>(2).is_err());
        assert!(matches!(
            now(query("SELECT a FROM t").fetch_one(&mut c)),
            Err(rusqlite::Error::QueryReturnedNoRows)
        ));
    }
}
