//! FoundationDB as a [`KvStore`], through the `foundationdb` crate (feature `fdb`).
//!
//! # The network thread
//!
//! The FoundationDB client library runs one network thread per process. It can be
//! started once, never restarted, and must be stopped before the process exits. This
//! module owns it so that a library can use FoundationDB without its caller doing
//! anything:
//!
//! - [`FdbKv::open`] starts the thread on first use ([`start_network`]);
//! - an `atexit` hook stops it when the process exits normally (`main` returns or
//!   `std::process::exit` is called), so nothing has to be dropped in the right order;
//! - [`stop_network`] stops it earlier, for programs that want to; FoundationDB cannot
//!   start it again in the same process, so every later open fails;
//! - a program that boots FoundationDB itself (`foundationdb::boot`) calls
//!   [`network_started_elsewhere`] first, and then owns stopping it.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use foundationdb::options::{DatabaseOption, MutationType, StreamingMode};
use foundationdb::{
    Database, FdbBindingError, FdbError, KeySelector, RangeOption, RetryableTransaction,
};
use meta_api::{MetaError, Result};

use super::{markers, KeyValue, KvStore, KvTxn, MAX_ATTEMPTS};

/// Milliseconds after which a transaction, with all its retries, gives up.
const TXN_TIMEOUT_MS: i32 = 60_000;

/// FoundationDB's error code for a commit that lost a conflict.
const NOT_COMMITTED: i32 = 1020;

enum Network {
    NotStarted,
    /// Held only to be dropped: dropping it stops the network and joins its thread.
    Running(#[allow(dead_code)] foundationdb::api::NetworkAutoStop),
    External,
    Stopped,
    Failed(String),
}

static NETWORK: Mutex<Network> = Mutex::new(Network::NotStarted);

fn network_state() -> std::sync::MutexGuard<'static, Network> {
    // The state is a plain enum replaced whole; a panic elsewhere cannot leave it torn.
    NETWORK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts the FoundationDB network thread of this process if it is not running yet.
/// Idempotent; fails if it was stopped (FoundationDB cannot restart it), if the client
/// library refuses the API version, or if something else in the process already selected
/// an API version without calling [`network_started_elsewhere`].
pub fn start_network() -> Result<()> {
    let mut st = network_state();
    match &*st {
        Network::Running(_) | Network::External => return Ok(()),
        Network::Stopped => {
            return Err(MetaError::backend(
                false,
                "the FoundationDB network was stopped and cannot restart in this process",
            ))
        }
        Network::Failed(msg) => return Err(MetaError::backend(false, msg.clone())),
        Network::NotStarted => {}
    }
    // `FdbApiBuilder::build` panics when an API version was already selected in this
    // process; turn that into an error instead of taking the caller down.
    let builder = std::panic::catch_unwind(|| foundationdb::api::FdbApiBuilder::default().build());
    let builder = match builder {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            let msg = format!("FoundationDB client library refused the API version: {e}");
            *st = Network::Failed(msg.clone());
            return Err(MetaError::backend(false, msg));
        }
        Err(_) => {
            let msg = "a FoundationDB API version was already selected in this process; \
                       call meta_fdb::network_started_elsewhere() if it boots FoundationDB itself"
                .to_string();
            *st = Network::Failed(msg.clone());
            return Err(MetaError::backend(false, msg));
        }
    };
    // SAFETY: `boot` requires the returned guard to be dropped before the process exits.
    // The guard lives in `NETWORK`, and the `atexit` hook registered right below drops it
    // during normal exit; `stop_network` drops it earlier.
    #[allow(unsafe_code)]
    let booted = unsafe { builder.boot() };
    match booted {
        Ok(net) => {
            *st = Network::Running(net);
            drop(st);
            register_exit_hook();
            Ok(())
        }
        Err(e) => {
            let msg = format!("cannot start the FoundationDB network: {e}");
            *st = Network::Failed(msg.clone());
            Err(MetaError::backend(false, msg))
        }
    }
}

/// Stops the FoundationDB network thread now (it is stopped at exit anyway). Every
/// FoundationDB operation fails afterwards, and no store can be opened again in this
/// process.
pub fn stop_network() {
    let old = std::mem::replace(&mut *network_state(), Network::Stopped);
    // Dropping the guard stops the network and joins its thread, outside the lock.
    drop(old);
}

/// Tells this crate that the program starts and stops the FoundationDB network itself
/// (with `foundationdb::boot`); call it before opening a store.
pub fn network_started_elsewhere() {
    let mut st = network_state();
    if matches!(*st, Network::NotStarted) {
        *st = Network::External;
    }
}

extern "C" fn stop_network_at_exit() {
    // A thread that holds the lock at exit is mid-start; leave it rather than deadlock.
    if let Ok(mut st) = NETWORK.try_lock() {
        let old = std::mem::replace(&mut *st, Network::Stopped);
        drop(st);
        drop(old);
    }
}

fn register_exit_hook() {
    // SAFETY: `atexit` only records the function pointer; the hook is a plain
    // `extern "C"` function that takes no arguments and touches only `NETWORK`.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::atexit(stop_network_at_exit) };
    if rc != 0 {
        // Without the hook the thread still stops at `stop_network`; say so once.
        eprintln!(
            "meta-fdb: cannot register the FoundationDB exit hook; \
             call meta_fdb::stop_network() before the process exits"
        );
    }
}

/// A FoundationDB database used as a [`KvStore`]. Clones share the connection.
#[derive(Clone)]
pub struct FdbKv {
    db: Arc<Database>,
    /// Where commit markers go ([`super::markers`]): the volume prefix.
    marker_prefix: Arc<[u8]>,
    /// When old commit markers were last cleared.
    last_sweep: Arc<std::sync::atomic::AtomicU64>,
}

impl FdbKv {
    /// Connects to the cluster described by `cluster_file` (the client library's default,
    /// usually `/etc/foundationdb/fdb.cluster`, when `None`), starting the network thread
    /// if needed.
    pub fn open(cluster_file: Option<&str>) -> Result<FdbKv> {
        start_network()?;
        let db = Database::new(cluster_file).map_err(fdb_err)?;
        // FoundationDB retries forever by default when the cluster is unreachable; bound
        // every transaction so that an operation fails instead of hanging.
        db.set_option(DatabaseOption::TransactionTimeout(TXN_TIMEOUT_MS))
            .map_err(fdb_err)?;
        db.set_option(DatabaseOption::TransactionRetryLimit(MAX_ATTEMPTS as i32))
            .map_err(fdb_err)?;
        Ok(FdbKv {
            db: Arc::new(db),
            marker_prefix: Arc::from(&[][..]),
            last_sweep: Arc::default(),
        })
    }

    /// Clears every key in `begin..end` in one transaction (used by tests to reset a
    /// volume prefix; keep the range small enough for FoundationDB's 10 MB limit).
    pub async fn clear_range(&self, begin: &[u8], end: &[u8]) -> Result<()> {
        self.txn(|tx| async move {
            tx.clear_range(begin, end);
            Ok(())
        })
        .await
    }
}

/// A FoundationDB error as a [`MetaError`]; the original error stays as the source so that
/// the retry loop can hand it back to FoundationDB.
fn fdb_err(e: FdbError) -> MetaError {
    MetaError::backend(e.is_retryable(), e)
}

/// The closure's error in the shape `Database::run` expects: FoundationDB errors go back
/// as themselves (so that `run` retries the retryable ones), everything else rides along.
fn to_binding(e: MetaError) -> FdbBindingError {
    match e {
        MetaError::Backend { retryable, source } => match source.downcast::<FdbError>() {
            Ok(fdb) => FdbBindingError::NonRetryableFdbError(*fdb),
            Err(source) => FdbBindingError::new_custom_error(Box::new(MetaError::Backend {
                retryable,
                source,
            })),
        },
        other => FdbBindingError::new_custom_error(Box::new(other)),
    }
}

fn from_binding(e: FdbBindingError) -> MetaError {
    match e {
        FdbBindingError::CustomError(b) => match b.downcast::<MetaError>() {
            Ok(me) => *me,
            Err(other) => MetaError::backend(false, other),
        },
        // `not_committed` left over once the retry limit is spent: a lost conflict.
        FdbBindingError::NonRetryableFdbError(fdb) if fdb.code() == NOT_COMMITTED => {
            MetaError::Conflict
        }
        FdbBindingError::NonRetryableFdbError(fdb) => fdb_err(fdb),
        other => MetaError::backend(false, other),
    }
}

/// A FoundationDB transaction as a [`KvTxn`].
#[derive(Clone)]
pub struct FdbTxn {
    trx: RetryableTransaction,
    /// Whether anything was written (a read-only transaction gets no commit marker).
    wrote: Arc<AtomicBool>,
}

impl FdbTxn {
    fn mark_written(&self) {
        self.wrote.store(true, Ordering::Relaxed);
    }
}

impl KvTxn for FdbTxn {
    fn get(&self, key: &[u8]) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send {
        let fut = self.trx.get(key, false);
        async move {
            let v = fut.await.map_err(fdb_err)?;
            Ok(v.map(|s| s.to_vec()))
        }
    }

    fn scan(
        &self,
        begin: &[u8],
        end: &[u8],
        limit: usize,
        reverse: bool,
    ) -> impl Future<Output = Result<Vec<KeyValue>>> + Send {
        let trx = self.trx.clone();
        let mut opt = RangeOption {
            begin: KeySelector::first_greater_or_equal(begin.to_vec()),
            end: KeySelector::first_greater_or_equal(end.to_vec()),
            limit: (limit > 0).then_some(limit),
            mode: StreamingMode::WantAll,
            reverse,
            ..RangeOption::default()
        };
        async move {
            let mut out = Vec::new();
            let mut iteration = 1;
            loop {
                let batch = trx
                    .get_range(&opt, iteration, false)
                    .await
                    .map_err(fdb_err)?;
                for kv in batch.iter() {
                    out.push((kv.key().to_vec(), kv.value().to_vec()));
                }
                match opt.next_range(&batch) {
                    Some(next) => opt = next,
                    None => return Ok(out),
                }
                iteration += 1;
            }
        }
    }

    fn set(&self, key: &[u8], value: &[u8]) {
        self.mark_written();
        self.trx.set(key, value);
    }

    fn clear(&self, key: &[u8]) {
        self.mark_written();
        self.trx.clear(key);
    }

    fn clear_range(&self, begin: &[u8], end: &[u8]) {
        if begin < end {
            self.mark_written();
            self.trx.clear_range(begin, end);
        }
    }

    fn atomic_add(&self, key: &[u8], delta: i64) {
        self.mark_written();
        self.trx
            .atomic_op(key, &delta.to_le_bytes(), MutationType::Add);
    }
}

impl KvStore for FdbKv {
    type Txn = FdbTxn;
    const SCHEME: &'static str = "fdb";

    fn with_marker_prefix(mut self, prefix: &[u8]) -> Self {
        self.marker_prefix = prefix.into();
        self
    }

    fn txn<T, F, Fut>(&self, f: F) -> impl Future<Output = Result<T>> + Send
    where
        T: Send,
        F: Fn(Self::Txn) -> Fut + Send + Sync,
        Fut: Future<Output = Result<T>> + Send,
    {
        let db = self.db.clone();
        let prefix = self.marker_prefix.clone();
        let last_sweep = self.last_sweep.clone();
        async move {
            let f = &f;
            let marker = &markers::new_key(&prefix);
            let (prefix, last_sweep) = (&prefix, &last_sweep);
            // Each attempt's answer, by attempt number, until the one that committed is
            // known (see `markers`).
            let answers: &Mutex<Vec<(u32, T)>> = &Mutex::new(Vec::new());
            let attempts = &AtomicU32::new(0);
            let found = db
                .run(|trx, maybe_committed| {
                    let attempt = attempts.fetch_add(1, Ordering::Relaxed);
                    let tx = FdbTxn {
                        trx,
                        wrote: Arc::default(),
                    };
                    async move {
                        if bool::from(maybe_committed) {
                            if let Some(v) = tx.get(marker).await.map_err(to_binding)? {
                                return Ok(Some(v));
                            }
                        }
                        let v = f(tx.clone()).await.map_err(to_binding)?;
                        // A read-only transaction stays one (nothing to apply twice).
                        if tx.wrote.load(Ordering::Relaxed) {
                            tx.set(marker, &markers::value(attempt));
                            if let Some((b, e)) = markers::due_sweep(prefix, last_sweep) {
                                tx.clear_range(&b, &e);
                            }
                        }
                        answers
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push((attempt, v));
                        Ok(None)
                    }
                })
                .await
                .map_err(from_binding)?;
            let mut answers =
                std::mem::take(&mut *answers.lock().unwrap_or_else(|p| p.into_inner()));
            match found {
                // An earlier attempt committed although its outcome was unknown.
                Some(v) => markers::committed(&v, &mut answers),
                // The last attempt that got as far as committing did commit.
                None => answers
                    .pop()
                    .map(|(_, v)| v)
                    .ok_or_else(|| MetaError::Corrupt("a committed attempt left no answer".into())),
            }
        }
    }
}
