//! Retried optimistic transactions: `WATCH`, read, `MULTI`…`EXEC`, written once and
//! shaped as a closure (like foundationdb-rs's `Database::run`).
//!
//! # Retry rule
//!
//! * A conflict (`EXEC` answers nil because a watched key changed) re-runs the closure,
//!   with a short random backoff, at most [`MAX_CONFLICT_RETRIES`] times.
//! * A failure before the commit is sent (connecting, `WATCH`, reads) changed nothing:
//!   the transaction is re-run on a fresh connection until the retry window closes.
//! * Outcomes that write nothing (a `Done` value or an error such as `NotFound`) are
//!   validated with an empty `MULTI`/`EXEC`, so they are never based on reads that a
//!   concurrent writer made inconsistent.
//! * The commit itself is never blindly repeated. Every commit also sets this
//!   connection's marker key `txmark{token}` to a fresh sequence number inside the same
//!   `MULTI`. When the reply to `EXEC` is lost, the client fences the old connection
//!   (`CLIENT KILL ID`, unless the server's `run_id` shows it restarted, which ended the
//!   connection anyway) so that the commit can no longer run later, then reads the
//!   marker: if it holds the sequence number the commit ran and its result is returned;
//!   otherwise nothing ran and the transaction is re-run. If the server cannot be reached
//!   before the retry window closes, the call fails with
//!   [`TransportKind::OutcomeUnknown`](crate::TransportKind::OutcomeUnknown).
//!
//! # Guessed transactions (one round trip)
//!
//! A transaction may be run first on a [`Guess`]: the parent directory's attributes as
//! this client last wrote them. Its read of the parent and the name
//! ([`Tx::attr_and_entry`]) is then answered from the guess without a round trip, which
//! assumes the attribute bytes, the entry absent, the number of directory quotas and
//! whether the parent's statistics exist; any other read ends the guessed run. Its writes
//! are sent in one `EVAL` of [`CHECK_AND_APPLY`], which applies them (with the commit
//! marker) only if every assumption still holds on the server. That is optimistic
//! concurrency validated on what was read, as `WATCH` validates on what was watched;
//! commit markers and fencing work as for `MULTI`. When the guess does not hold, or the
//! closure needs any other read, or decides anything but a commit, the transaction is
//! run again the ordinary way; nothing guessed is ever returned.

use meta_api::backoff::Backoff;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meta_api::encoding::{decode_attr, decode_entry};
use meta_api::{Attr, FileType, Ino, MetaError, Result};
use redis::aio::MultiplexedConnection;
use redis::{FromRedisValue, Value};
use tokio::time::Instant;

use crate::conn::{classify, failure_to_meta, reconnect_backoff, timed_out, Conns, Failure};
use crate::error::{Transport, TransportKind};
use crate::keys::Keys;

/// Conflicts tolerated before a transaction gives up with [`MetaError::Conflict`].
pub(crate) const MAX_CONFLICT_RETRIES: u32 = 50;

/// How long a commit marker outlives the connection's last commit.
const MARKER_TTL_MS: u64 = 3_600_000;

/// What a transaction's closure decided.
pub(crate) enum Step<T> {
    /// Apply these writes atomically (the pipeline is sent inside `MULTI`/`EXEC`), then
    /// return the value.
    Commit(redis::Pipeline, T),
    /// Nothing to write: return the value (after checking no watched key changed).
    Done(T),
}

/// The read side of a transaction: a dedicated connection with `WATCH` in force.
pub(crate) struct Tx {
    conn: MultiplexedConnection,
    op_timeout: Duration,
    pub(crate) keys: Keys,
    /// Keys to `WATCH` that are not sent yet: they go in front of the next read, in the
    /// same round trip, or before the commit (shared with the runner for that).
    unwatched: Arc<Mutex<Vec<String>>>,
    /// How many directory quotas the volume had at this transaction's first read of an
    /// entry ([`Tx::attr_and_entry`] asks in the same round trip).
    dir_quotas: Option<u64>,
    /// Directories whose statistics were found present or not by a read of this
    /// transaction ([`Tx::attr_and_entry`] asks for the parent's in the same round trip).
    dir_stats: Vec<(Ino, bool)>,
    /// In a guessed run: the guess and what was assumed from it.
    guessed: Option<Arc<Mutex<Guessed>>>,
}

/// What a transaction may assume of directory `parent` before reading it: its attributes
/// as this client last committed them, with the answers that came with them.
#[derive(Clone, Debug)]
pub(crate) struct Guess {
    pub(crate) parent: Ino,
    /// The encoded attributes, byte for byte.
    pub(crate) attr: Vec<u8>,
    /// The number of directory quotas.
    pub(crate) dir_quotas: u64,
    /// Whether the directory's statistics exist.
    pub(crate) dir_stats: bool,
}

/// How guessed transactions fared, for tests and metrics.
#[derive(Default, Debug)]
pub(crate) struct GuessCounts {
    /// Committed in one round trip on the guess.
    pub(crate) held: std::sync::atomic::AtomicU64,
    /// Run again the ordinary way (a failed assumption, or a read the guess could not
    /// answer).
    pub(crate) missed: std::sync::atomic::AtomicU64,
}

/// A guess in use, and the name whose absence was assumed once the guess answered the
/// transaction's read.
struct Guessed {
    guess: Guess,
    name: Option<Vec<u8>>,
}

/// Checks what a guessed create assumed and applies its writes only if all of it holds:
/// `KEYS` the parent's attribute key, its entries, the directory quota hash and the
/// used-space statistics hash; `ARGV` the attribute bytes, the name (assumed absent), the
/// number of quotas, the parent's field and whether it has statistics (0 or 1), then the
/// writes, each as its argument count and arguments. Answers 1 when applied, 0 when an
/// assumption failed (nothing written).
pub(crate) const CHECK_AND_APPLY: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1]
  or redis.call('HEXISTS', KEYS[2], ARGV[2]) ~= 0
  or tostring(redis.call('HLEN', KEYS[3])) ~= ARGV[3]
  or tostring(redis.call('HEXISTS', KEYS[4], ARGV[4])) ~= ARGV[5] then
  return 0
end
local a = 6
while a <= #ARGV do
  local n = tonumber(ARGV[a])
  redis.call(unpack(ARGV, a + 1, a + n))
  a = a + n + 1
end
return 1
"#;

/// The `EVAL` of [`CHECK_AND_APPLY`] for a create of `name` on `guess` with the writes
/// of `pipe`.
fn check_and_apply(keys: &Keys, guess: &Guess, name: &[u8], pipe: &redis::Pipeline) -> redis::Cmd {
    let p = guess.parent;
    let mut c = redis::cmd("EVAL");
    c.arg(CHECK_AND_APPLY)
        .arg(4)
        .arg(keys.inode(p))
        .arg(keys.entries(p))
        .arg(keys.counter("dirQuota"))
        .arg(keys.dir_used_space())
        .arg(guess.attr.as_slice())
        .arg(name)
        .arg(guess.dir_quotas)
        .arg(p)
        .arg(u8::from(guess.dir_stats));
    for cmd in pipe.cmd_iter() {
        let args: Vec<&[u8]> = cmd
            .args_iter()
            .filter_map(|a| match a {
                redis::Arg::Simple(b) => Some(b),
                redis::Arg::Cursor => None,
            })
            .collect();
        c.arg(args.len());
        for b in args {
            c.arg(b);
        }
    }
    c
}

impl Tx {
    /// The number of directory quotas, when a read of this transaction fetched it.
    pub(crate) fn dir_quotas_seen(&self) -> Option<u64> {
        self.dir_quotas
    }

    /// Whether directory `dir` has statistics, when a read of this transaction asked.
    pub(crate) fn dir_stats_seen(&self, dir: Ino) -> Option<bool> {
        self.dir_stats
            .iter()
            .find(|(d, _)| *d == dir)
            .map(|(_, there)| *there)
    }

    async fn run<T, Fut>(&self, fut: Fut) -> Result<T>
    where
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        match tokio::time::timeout(self.op_timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(failure_to_meta(classify(e))),
            Err(_) => Err(failure_to_meta(Failure::Transport(timed_out(
                self.op_timeout,
            )))),
        }
    }

    /// Watches more keys (before any write is decided). The `WATCH` travels with the
    /// next read, which therefore sees the keys' state from the watch on.
    pub(crate) async fn watch(&mut self, keys: &[String]) -> Result<()> {
        lock(&self.unwatched).extend(keys.iter().cloned());
        Ok(())
    }

    /// A read that a guess cannot answer ends a guessed run (it is run again for real).
    fn not_guessed(&self) -> Result<()> {
        match self.guessed {
            Some(_) => Err(MetaError::Conflict),
            None => Ok(()),
        }
    }

    /// The pending `WATCH`, taken out of the shared list.
    fn take_watch(&self) -> Option<redis::Cmd> {
        let keys = std::mem::take(&mut *lock(&self.unwatched));
        (!keys.is_empty()).then(|| redis::cmd("WATCH").arg(keys).clone())
    }

    /// Sends one command (after any pending `WATCH`, in the same round trip).
    pub(crate) async fn cmd<T: FromRedisValue>(&mut self, cmd: &redis::Cmd) -> Result<T> {
        self.not_guessed()?;
        let mut c = self.conn.clone();
        match self.take_watch() {
            None => {
                self.run(async move { cmd.query_async::<T>(&mut c).await })
                    .await
            }
            Some(w) => {
                let mut p = redis::pipe();
                p.add_command(w).ignore().add_command(cmd.clone());
                let (v,): (T,) = self.run(async move { p.query_async(&mut c).await }).await?;
                Ok(v)
            }
        }
    }

    /// Sends a (non-atomic) pipeline of reads in one round trip (after any pending
    /// `WATCH`). The pipeline's commands must not be marked ignored.
    pub(crate) async fn pipe<T: FromRedisValue>(&mut self, p: &redis::Pipeline) -> Result<T> {
        self.not_guessed()?;
        let mut c = self.conn.clone();
        match self.take_watch() {
            None => {
                self.run(async move { p.query_async::<T>(&mut c).await })
                    .await
            }
            Some(w) => {
                let mut q = redis::pipe();
                q.add_command(w).ignore();
                for cmd in p.cmd_iter() {
                    q.add_command(cmd.clone());
                }
                self.run(async move { q.query_async::<T>(&mut c).await })
                    .await
            }
        }
    }

    /// Sends the pending `WATCH` on its own (before a commit that read nothing after it).
    async fn flush_watch(&mut self) -> Result<()> {
        match self.take_watch() {
            None => Ok(()),
            Some(w) => {
                let mut c = self.conn.clone();
                self.run(async move { w.query_async::<()>(&mut c).await })
                    .await
            }
        }
    }

    /// The attributes of `parent` and its entry `name`, in one round trip (which also
    /// counts the directory quotas, see [`Tx::dir_quotas_seen`]).
    pub(crate) async fn attr_and_entry(
        &mut self,
        parent: Ino,
        name: &[u8],
    ) -> Result<(Option<Attr>, Option<(FileType, Ino)>)> {
        if let Some(g) = &self.guessed {
            let mut g = guessed_lock(g);
            if g.guess.parent != parent {
                return Err(MetaError::Conflict);
            }
            g.name = Some(name.to_vec());
            let guess = &g.guess;
            self.dir_quotas = Some(guess.dir_quotas);
            self.dir_stats.push((parent, guess.dir_stats));
            return Ok((Some(decode_attr(&guess.attr)?), None));
        }
        let mut p = redis::pipe();
        p.cmd("GET")
            .arg(self.keys.inode(parent))
            .cmd("HGET")
            .arg(self.keys.entries(parent))
            .arg(name)
            // Whether the change has directory quotas to charge: asked here, it costs no
            // round trip of its own (not watched, see `engine::quota`).
            .cmd("HLEN")
            .arg(self.keys.counter("dirQuota"))
            // Whether the parent's statistics exist (for `write_dir_stats`; not watched
            // there either).
            .cmd("HEXISTS")
            .arg(self.keys.dir_used_space())
            .arg(parent);
        let (a, e, q, st): (Option<Vec<u8>>, Option<Vec<u8>>, u64, bool) = self.pipe(&p).await?;
        self.dir_quotas = Some(q);
        self.dir_stats.push((parent, st));
        Ok((
            a.map(|b| decode_attr(&b)).transpose()?,
            e.map(|b| decode_entry(&b)).transpose()?,
        ))
    }

    /// The attributes of `ino`, `None` if it does not exist.
    pub(crate) async fn attr(&mut self, ino: Ino) -> Result<Option<Attr>> {
        let v: Option<Vec<u8>> = self
            .cmd(redis::cmd("GET").arg(self.keys.inode(ino)))
            .await?;
        v.map(|b| decode_attr(&b)).transpose()
    }

    /// The attributes of several inodes in one round trip.
    pub(crate) async fn attrs(&mut self, inos: &[Ino]) -> Result<Vec<Option<Attr>>> {
        let keys: Vec<String> = inos.iter().map(|i| self.keys.inode(*i)).collect();
        let v: Vec<Option<Vec<u8>>> = self.cmd(redis::cmd("MGET").arg(&keys)).await?;
        v.into_iter()
            .map(|o| o.map(|b| decode_attr(&b)).transpose())
            .collect()
    }

    /// The entry `name` of directory `parent`.
    pub(crate) async fn entry(
        &mut self,
        parent: Ino,
        name: &[u8],
    ) -> Result<Option<(FileType, Ino)>> {
        let v: Option<Vec<u8>> = self
            .cmd(redis::cmd("HGET").arg(self.keys.entries(parent)).arg(name))
            .await?;
        v.map(|b| decode_entry(&b)).transpose()
    }
}

fn lock(m: &Mutex<Vec<String>>) -> std::sync::MutexGuard<'_, Vec<String>> {
    // A plain list of key names cannot be left inconsistent by a panic.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn guessed_lock(m: &Mutex<Guessed>) -> std::sync::MutexGuard<'_, Guessed> {
    // Replaced whole under the lock: a panic cannot leave it half-written.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `f` as one atomic transaction watching `watch` (see the module docs for the
/// retry rule). `f` gets a [`Tx`] to read through and may watch more keys before it
/// decides.
pub(crate) async fn run<T, F, Fut>(
    conns: &Conns,
    keys: &Keys,
    watch: &[String],
    guess: Option<(Guess, &GuessCounts)>,
    mut f: F,
) -> Result<T>
where
    F: FnMut(Tx) -> Fut,
    Fut: Future<Output = Result<Step<T>>>,
{
    let timing = conns.timing;
    let deadline = Instant::now() + timing.retry_window;
    let mut conflicts = 0u32;
    let mut conflict_pauses = conflict_backoff();
    let mut failure_pauses = reconnect_backoff();
    let (mut guess, counts) = guess.unzip();
    loop {
        let mut lease = conns.lease().await?;
        let unwatched = Arc::new(Mutex::new(watch.to_vec()));
        // The first run only may go on a guess.
        let attempt = guess.take();
        let guessed = attempt.as_ref().map(|g| {
            Arc::new(Mutex::new(Guessed {
                guess: g.clone(),
                name: None,
            }))
        });
        let tx = Tx {
            conn: lease.get().conn.clone(),
            op_timeout: timing.op_timeout,
            keys: keys.clone(),
            unwatched: unwatched.clone(),
            dir_quotas: None,
            dir_stats: Vec::new(),
            guessed: guessed.clone(),
        };
        let mut decided = f(tx).await;
        if let (Some(guess), Some(g)) = (attempt, guessed) {
            let name = guessed_lock(&g).name.take();
            // Nothing was sent on the lease's connection: it stays clean for the real run.
            if let (Ok(Step::Commit(pipe, value)), Some(name)) = (decided, name) {
                match commit(
                    conns,
                    keys,
                    lease,
                    Payload::Guessed(guess, name, pipe),
                    deadline,
                )
                .await
                {
                    Ok(Committed::Applied) => {
                        if let Some(c) = counts {
                            c.held.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        return Ok(value);
                    }
                    // The guess did not hold: run for real at once.
                    Ok(Committed::Conflict) => {}
                    Ok(Committed::NotApplied(e)) => {
                        if Instant::now() >= deadline {
                            return Err(e);
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
            if let Some(c) = counts {
                c.missed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            continue;
        }
        if decided.is_ok()
            || matches!(decided, Err(ref e) if !matches!(e, MetaError::Backend { .. }))
        {
            // Keys watched after the last read still have to be watched before deciding.
            let mut rest = Tx {
                conn: lease.get().conn.clone(),
                op_timeout: timing.op_timeout,
                keys: keys.clone(),
                unwatched,
                dir_quotas: None,
                dir_stats: Vec::new(),
                guessed: None,
            };
            if let Err(e) = rest.flush_watch().await {
                decided = Err(e);
            }
        }
        let outcome = match decided {
            Ok(Step::Commit(pipe, value)) => {
                match commit(conns, keys, lease, Payload::Multi(pipe), deadline).await {
                    Ok(Committed::Applied) => return Ok(value),
                    Ok(Committed::Conflict) => Attempt::Conflict,
                    Ok(Committed::NotApplied(e)) => Attempt::Failed(e),
                    Err(e) => return Err(e),
                }
            }
            Ok(Step::Done(value)) => match validate(&mut lease, timing.op_timeout).await {
                Ok(true) => return Ok(value),
                Ok(false) => Attempt::Conflict,
                Err(e) => {
                    lease.discard();
                    Attempt::Failed(e)
                }
            },
            Err(e) if matches!(e, MetaError::Backend { .. }) => {
                // The connection's state after a failed read is unknown: never reuse it.
                lease.discard();
                if !e.is_retryable() {
                    return Err(e);
                }
                Attempt::Failed(e)
            }
            Err(e) => match validate(&mut lease, timing.op_timeout).await {
                Ok(true) => return Err(e),
                Ok(false) => Attempt::Conflict,
                Err(v) => {
                    lease.discard();
                    Attempt::Failed(v)
                }
            },
        };
        match outcome {
            Attempt::Conflict => {
                conflicts += 1;
                if conflicts >= MAX_CONFLICT_RETRIES {
                    return Err(MetaError::Conflict);
                }
                tokio::time::sleep(conflict_pauses.next_pause()).await;
            }
            Attempt::Failed(e) => {
                if crate::error::transport_kind(&e).is_some() {
                    conns.drop_idle();
                }
                if Instant::now() >= deadline {
                    return Err(e);
                }
                tokio::time::sleep(failure_pauses.next_pause()).await;
            }
        }
    }
}

enum Attempt {
    Conflict,
    Failed(MetaError),
}

enum Committed {
    Applied,
    Conflict,
    /// Nothing was applied (a busy reply, or a lost reply proven not to have run).
    NotApplied(MetaError),
}

/// The pauses before re-running a transaction after a conflict: full jitter under a
/// ceiling of 1 ms doubling up to 100 ms (JuiceFS grows its random pause quadratically).
fn conflict_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(1), Duration::from_millis(100))
}

/// Checks with an empty `MULTI`/`EXEC` that no watched key changed; clears the watch.
async fn validate(lease: &mut crate::conn::Lease<'_>, op_timeout: Duration) -> Result<bool> {
    let mut c = lease.get().conn.clone();
    let mut p = redis::pipe();
    p.cmd("MULTI").ignore().cmd("EXEC");
    let r = tokio::time::timeout(op_timeout, p.query_async::<(Value,)>(&mut c)).await;
    match r {
        Ok(Ok((Value::Nil,))) => Ok(false),
        Ok(Ok(_)) => Ok(true),
        Ok(Err(e)) => Err(failure_to_meta(classify(e))),
        Err(_) => Err(failure_to_meta(Failure::Transport(timed_out(op_timeout)))),
    }
}

/// Sends the writes with this connection's commit marker and works out what happened.
/// The writes of a commit: under `MULTI` after `WATCH`, or checked against a guess's
/// assumptions by [`CHECK_AND_APPLY`].
enum Payload {
    Multi(redis::Pipeline),
    /// A create of the name on the guess.
    Guessed(Guess, Vec<u8>, redis::Pipeline),
}

async fn commit(
    conns: &Conns,
    keys: &Keys,
    mut lease: crate::conn::Lease<'_>,
    payload: Payload,
    deadline: Instant,
) -> Result<Committed> {
    let op_timeout = conns.timing.op_timeout;
    let d = lease.get();
    d.seq += 1;
    let seq = d.seq;
    let marker = keys.txn_marker(&d.token);
    let mut c = d.conn.clone();
    let sent = match payload {
        Payload::Multi(mut pipe) => {
            pipe.atomic()
                .cmd("SET")
                .arg(&marker)
                .arg(seq)
                .arg("PX")
                .arg(MARKER_TTL_MS)
                .ignore();
            tokio::time::timeout(op_timeout, pipe.query_async::<Value>(&mut c)).await
        }
        Payload::Guessed(guess, name, mut pipe) => {
            pipe.cmd("SET")
                .arg(&marker)
                .arg(seq)
                .arg("PX")
                .arg(MARKER_TTL_MS)
                .ignore();
            let cmd = check_and_apply(keys, &guess, &name, &pipe);
            let r = tokio::time::timeout(op_timeout, cmd.query_async::<Value>(&mut c)).await;
            // 0: an assumption failed and nothing was written, as a conflict under `WATCH`.
            r.map(|v| v.map(|v| if v == Value::Int(0) { Value::Nil } else { v }))
        }
    };
    let failure = match sent {
        Ok(Ok(Value::Nil)) => return Ok(Committed::Conflict),
        Ok(Ok(_)) => return Ok(Committed::Applied),
        Ok(Err(e)) => classify(e),
        Err(_) => Failure::Transport(timed_out(op_timeout)),
    };
    let lost = lease.discard();
    match failure {
        // EXECABORT, LOADING and the like: the server refused the whole transaction.
        Failure::Busy(e) => Ok(Committed::NotApplied(MetaError::backend(true, e))),
        // An error inside EXEC's reply: part of the writes may have run.
        Failure::Fatal(e) => Err(MetaError::backend(false, e)),
        Failure::Transport(e) => match learn_outcome(conns, &marker, &lost, seq, deadline).await {
            Some(true) => Ok(Committed::Applied),
            Some(false) => Ok(Committed::NotApplied(failure_to_meta(Failure::Transport(
                e,
            )))),
            None => Err(MetaError::backend(
                false,
                Transport {
                    kind: TransportKind::OutcomeUnknown,
                    source: e,
                },
            )),
        },
    }
}

/// What could be learnt about a lost commit.
enum Learned {
    /// The marker's value once the old connection can no longer run anything.
    Marker(Option<Vec<u8>>),
    /// The old connection cannot be fenced (its id is unknown), so no read is conclusive.
    Unfenceable,
}

/// After a lost commit reply: fences the old connection and reads its marker. `None`
/// when the outcome cannot be learnt before the deadline.
async fn learn_outcome(
    conns: &Conns,
    marker: &str,
    lost: &crate::conn::Dedicated,
    seq: u64,
    deadline: Instant,
) -> Option<bool> {
    let mut pauses = reconnect_backoff();
    loop {
        match fence_and_read(conns, marker, lost).await {
            Ok(Learned::Marker(v)) => {
                return Some(v.as_deref() == Some(seq.to_string().as_bytes()))
            }
            Ok(Learned::Unfenceable) => return None,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(pauses.next_pause()).await;
            }
            Err(_) => return None,
        }
    }
}

async fn fence_and_read(
    conns: &Conns,
    marker: &str,
    lost: &crate::conn::Dedicated,
) -> Result<Learned> {
    let now_run_id = conns.run_id().await?;
    let restarted = match (&lost.run_id, &now_run_id) {
        (Some(a), Some(b)) => a != b,
        _ => false,
    };
    if !restarted {
        let Some(id) = lost.client_id else {
            return Ok(Learned::Unfenceable);
        };
        // "No such client" means the server already dropped the connection: fenced too.
        conns
            .shared(|mut c| async move {
                match redis::cmd("CLIENT")
                    .arg("KILL")
                    .arg("ID")
                    .arg(id)
                    .query_async::<i64>(&mut c)
                    .await
                {
                    Err(e) if e.to_string().contains("No such client") => Ok(0),
                    other => other,
                }
            })
            .await?;
    }
    let v = conns
        .shared(|mut c| async move {
            redis::cmd("GET")
                .arg(marker)
                .query_async::<Option<Vec<u8>>>(&mut c)
                .await
        })
        .await?;
    Ok(Learned::Marker(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_backoff_is_bounded() {
        let mut b = conflict_backoff();
        for _ in 0..200 {
            assert!(b.next_pause() <= Duration::from_millis(100));
        }
    }
}
