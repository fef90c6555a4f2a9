//! Connections to the server: one shared multiplexed connection for reads and idempotent
//! writes, and a small pool of dedicated connections for `WATCH`/`MULTI`/`EXEC`
//! transactions (a `WATCH` belongs to the connection that sent it, so transactions can
//! never share one). Every request carries a timeout; failures are classified here.

use meta_api::backoff::Backoff;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use meta_api::{MetaError, Result};
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, ErrorKind, RedisError};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use crate::error::{Transport, TransportKind};

/// How long requests may take and how long failures are retried.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// Limit of one request (connect, command, pipeline).
    pub(crate) op_timeout: Duration,
    /// How long connection failures and busy replies are retried before giving up.
    pub(crate) retry_window: Duration,
}

/// What kind of failure an error is, which decides whether it may be retried.
pub(crate) enum Failure {
    /// The request may not have reached the server, or its reply was lost: I/O errors,
    /// timeouts, dropped connections. Whether it ran is unknown.
    Transport(RedisError),
    /// The server refused the request for a passing reason (loading, read-only replica,
    /// aborted transaction, too many clients): nothing ran.
    Busy(RedisError),
    /// Any other error reply: repeating the request would fail the same way.
    Fatal(RedisError),
}

/// Sorts an error of the client library into a [`Failure`].
pub(crate) fn classify(e: RedisError) -> Failure {
    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() {
        return Failure::Transport(e);
    }
    match e.kind() {
        ErrorKind::ParseError | ErrorKind::IoError => Failure::Transport(e),
        ErrorKind::BusyLoadingError
        | ErrorKind::TryAgain
        | ErrorKind::ClusterDown
        | ErrorKind::MasterDown
        | ErrorKind::ReadOnly
        | ErrorKind::ExecAbortError => Failure::Busy(e),
        _ => {
            let text = e.to_string();
            if text.contains("max number of clients") || text.contains("LOADING") {
                Failure::Busy(e)
            } else {
                Failure::Fatal(e)
            }
        }
    }
}

/// The error a request that ran out of time becomes.
pub(crate) fn timed_out(after: Duration) -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("no reply from redis within {after:?}"),
    ))
}

/// Converts a failure of a request that changed nothing (or a read) into the engine's error.
pub(crate) fn failure_to_meta(f: Failure) -> MetaError {
    match f {
        Failure::Transport(e) => MetaError::backend(
            true,
            Transport {
                kind: TransportKind::NotApplied,
                source: e,
            },
        ),
        Failure::Busy(e) => MetaError::backend(true, e),
        Failure::Fatal(e) => MetaError::backend(false, e),
    }
}

/// The pauses between retries after connection failures: full jitter under a ceiling of
/// 20 ms doubling up to 1 s.
pub(crate) fn reconnect_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(20), Duration::from_secs(1))
}

/// One dedicated connection: used by one transaction at a time.
pub(crate) struct Dedicated {
    pub(crate) conn: MultiplexedConnection,
    /// The server's id of this connection (`CLIENT ID`), to fence it after a lost reply.
    pub(crate) client_id: Option<i64>,
    /// The server's `run_id` when the connection was made: a different one later means the
    /// server restarted and this connection is certainly gone.
    pub(crate) run_id: Option<String>,
    /// Names this connection's commit marker.
    pub(crate) token: String,
    /// Sequence number of the last commit sent on this connection.
    pub(crate) seq: u64,
}

/// A dedicated connection borrowed from the pool; it goes back on drop unless discarded.
pub(crate) struct Lease<'a> {
    conn: Option<Dedicated>,
    pool: &'a Conns,
    _permit: SemaphorePermit<'a>,
}

impl Lease<'_> {
    pub(crate) fn get(&mut self) -> &mut Dedicated {
        // The connection is only taken out by `discard`, which consumes the lease.
        self.conn
            .as_mut()
            .unwrap_or_else(|| unreachable!("lease used after discard"))
    }

    /// Drops the connection instead of returning it (after any failure on it, since its
    /// state — a pending reply, a `WATCH` — is unknown).
    pub(crate) fn discard(mut self) -> Dedicated {
        self.conn
            .take()
            .unwrap_or_else(|| unreachable!("lease discarded twice"))
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            self.pool.lock_idle().push(c);
        }
    }
}

/// The connections of one client.
pub(crate) struct Conns {
    client: redis::Client,
    shared: ConnectionManager,
    idle: Mutex<Vec<Dedicated>>,
    permits: Semaphore,
    pub(crate) timing: Timing,
    token_base: String,
    next_token: AtomicU64,
}

impl Conns {
    /// Connects the shared connection (failing fast if the server cannot be reached).
    pub(crate) async fn connect(
        client: redis::Client,
        timing: Timing,
        pool_size: usize,
    ) -> Result<Conns> {
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(timing.op_timeout)
            .set_response_timeout(timing.op_timeout)
            .set_number_of_retries(3)
            .set_exponent_base(2)
            .set_factor(20)
            .set_max_delay(1000);
        let shared = tokio::time::timeout(
            timing.op_timeout,
            ConnectionManager::new_with_config(client.clone(), cfg),
        )
        .await
        .map_err(|_| failure_to_meta(Failure::Transport(timed_out(timing.op_timeout))))?
        .map_err(|e| failure_to_meta(classify(e)))?;
        Ok(Conns {
            client,
            shared,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(pool_size.max(1)),
            timing,
            token_base: random_token(),
            next_token: AtomicU64::new(0),
        })
    }

    /// Forgets every idle dedicated connection: after one died on the way (say, the
    /// server restarted) the others most likely are dead too.
    pub(crate) fn drop_idle(&self) {
        self.lock_idle().clear();
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Dedicated>> {
        // The vector stays consistent even if a holder panicked: pushes and pops are atomic.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs a read or an idempotent write on the shared connection, retrying connection
    /// failures and busy replies (with backoff) until the retry window closes.
    pub(crate) async fn shared<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let deadline = Instant::now() + self.timing.retry_window;
        let mut pauses = reconnect_backoff();
        loop {
            let failure =
                match tokio::time::timeout(self.timing.op_timeout, f(self.shared.clone())).await {
                    Ok(Ok(v)) => return Ok(v),
                    Ok(Err(e)) => classify(e),
                    Err(_) => Failure::Transport(timed_out(self.timing.op_timeout)),
                };
            match failure {
                Failure::Fatal(e) => return Err(MetaError::backend(false, e)),
                f @ (Failure::Transport(_) | Failure::Busy(_)) => {
                    if Instant::now() >= deadline {
                        return Err(failure_to_meta(f));
                    }
                    tokio::time::sleep(pauses.next_pause()).await;
                }
            }
        }
    }

    /// Borrows a dedicated connection, making a new one if none is idle, retrying
    /// connection failures until the retry window closes.
    pub(crate) async fn lease(&self) -> Result<Lease<'_>> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| MetaError::backend(false, format!("connection pool closed: {e}")))?;
        if let Some(c) = self.lock_idle().pop() {
            return Ok(Lease {
                conn: Some(c),
                pool: self,
                _permit: permit,
            });
        }
        let deadline = Instant::now() + self.timing.retry_window;
        let mut pauses = reconnect_backoff();
        loop {
            match self.dial().await {
                Ok(c) => {
                    return Ok(Lease {
                        conn: Some(c),
                        pool: self,
                        _permit: permit,
                    })
                }
                Err(Failure::Fatal(e)) => return Err(MetaError::backend(false, e)),
                Err(f) => {
                    if Instant::now() >= deadline {
                        return Err(failure_to_meta(f));
                    }
                    tokio::time::sleep(pauses.next_pause()).await;
                }
            }
        }
    }

    /// Opens one dedicated connection and learns its server-side identity.
    async fn dial(&self) -> std::result::Result<Dedicated, Failure> {
        let t = self.timing.op_timeout;
        let cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(t)
            .set_response_timeout(t);
        let mut conn = tokio::time::timeout(
            t,
            self.client
                .get_multiplexed_async_connection_with_config(&cfg),
        )
        .await
        .map_err(|_| Failure::Transport(timed_out(t)))?
        .map_err(classify)?;
        // CLIENT ID and INFO may be refused by ACLs; the connection still works without
        // them, only a lost reply can then not be fenced.
        let id: Option<i64> =
            tokio::time::timeout(t, redis::cmd("CLIENT").arg("ID").query_async(&mut conn))
                .await
                .map_err(|_| Failure::Transport(timed_out(t)))?
                .ok();
        let info: Option<String> =
            tokio::time::timeout(t, redis::cmd("INFO").arg("server").query_async(&mut conn))
                .await
                .map_err(|_| Failure::Transport(timed_out(t)))?
                .ok();
        let n = self.next_token.fetch_add(1, Ordering::Relaxed);
        Ok(Dedicated {
            conn,
            client_id: id,
            run_id: info.as_deref().and_then(parse_run_id),
            token: format!("{}-{n}", self.token_base),
            seq: 0,
        })
    }

    /// The server's current `run_id`.
    pub(crate) async fn run_id(&self) -> Result<Option<String>> {
        let info: String = self
            .shared(
                |mut c| async move { redis::cmd("INFO").arg("server").query_async(&mut c).await },
            )
            .await?;
        Ok(parse_run_id(&info))
    }
}

/// Reads `run_id:` out of `INFO server`.
fn parse_run_id(info: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix("run_id:"))
        .map(|s| s.trim().to_string())
}

/// A random hex token naming this client's commit markers (it only has to differ
/// between clients, not be secret).
fn random_token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_id_parses() {
        let info = "# Server\r\nredis_version:7.0.15\r\nrun_id:abc123\r\ntcp_port:1\r\n";
        assert_eq!(parse_run_id(info).as_deref(), Some("abc123"));
        assert_eq!(parse_run_id("x:1"), None);
    }

    #[test]
    fn classification() {
        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(matches!(classify(io), Failure::Transport(_)));
        let busy = RedisError::from((ErrorKind::BusyLoadingError, "LOADING"));
        assert!(matches!(classify(busy), Failure::Busy(_)));
        let fatal = RedisError::from((ErrorKind::TypeError, "WRONGTYPE"));
        assert!(matches!(classify(fatal), Failure::Fatal(_)));
        let b = reconnect_backoff();
        assert!(b.ceiling(1) < b.ceiling(3));
        assert_eq!(b.ceiling(30), Duration::from_millis(1000));
    }
}
