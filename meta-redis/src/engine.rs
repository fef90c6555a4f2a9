//! [`RedisMeta`]: opening a client, shared helpers, and the [`MetaEngine`](meta_api::MetaEngine) implementation
//! (the operations themselves live in the child modules).

mod acl;
mod attr;
mod bulk;
mod clone;
mod closes;
mod data;
mod locks;
mod namespace;
mod purge;
mod quota;
mod session;
mod trash;
mod upkeep;
mod volume;
mod xattr;

pub(crate) use meta_api::space::align4k;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::Duration;

use meta_api::encoding::{decode_attr, encode_attr};
use meta_api::{Attr, Format, Ino, MetaError, OpenFiles, Result, SessionInfo, Timestamp};

use crate::conn::{Conns, Timing};
use crate::keys::Keys;
use crate::txn::{self, Step, Tx};

/// Local locks striping transactions by their first watched key, so that one client's
/// concurrent operations on the same directory wait for each other instead of
/// conflicting in the server (JuiceFS does the same).
const STRIPES: usize = 64;

/// How a [`RedisMeta`] connects and retries.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RedisOptions {
    /// Prefix of every key of the volume. `None` uses JuiceFS's choice for a single
    /// server: no prefix. Give a distinct prefix (e.g. `{vol1}`, a hash tag) to keep
    /// several volumes in one database; the real `juicefs` client only opens volumes
    /// without a prefix (or `{N}` on Redis Cluster).
    pub key_prefix: Option<String>,
    /// Limit of one request to the server.
    pub op_timeout: Duration,
    /// How long connection failures and busy replies are retried before a call fails.
    pub retry_window: Duration,
    /// Most dedicated connections used for transactions at once.
    pub pool_size: usize,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            key_prefix: None,
            op_timeout: Duration::from_secs(10),
            retry_window: Duration::from_secs(30),
            pool_size: 16,
        }
    }
}

impl RedisOptions {
    /// Sets the key prefix.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = Some(prefix.into());
        self
    }
    /// Sets the per-request timeout.
    pub fn op_timeout(mut self, t: Duration) -> Self {
        self.op_timeout = t;
        self
    }
    /// Sets how long failures are retried.
    pub fn retry_window(mut self, t: Duration) -> Self {
        self.retry_window = t;
        self
    }
    /// Sets the size of the transaction connection pool.
    pub fn pool_size(mut self, n: usize) -> Self {
        self.pool_size = n;
        self
    }
}

/// One client of a JuiceFS volume whose metadata lives in Redis.
///
/// Open it with [`RedisMeta::open`]; see the [crate docs](crate) for the schema and the
/// rules it follows.
pub struct RedisMeta {
    /// What the server's configuration risks (see [`server_warnings`]).
    server_warnings: Vec<String>,
    conns: Conns,
    keys: Keys,
    lookup_script: redis::Script,
    sid: AtomicU64,
    session_info: RwLock<Option<SessionInfo>>,
    open_files: OpenFiles,
    /// Last closes not yet sent (see `closes`).
    closes: closes::Closes,
    /// Directories' attributes as this client last committed them (see
    /// [`crate::txn`]'s guessed transactions), at most [`GUESSES`].
    guesses: std::sync::Mutex<std::collections::HashMap<Ino, txn::Guess>>,
    guess_counts: txn::GuessCounts,
    inodes: meta_api::ids::IdPool,
    slice_ids: meta_api::ids::IdPool,
    format: RwLock<Option<Format>>,
    stripes: Vec<tokio::sync::Mutex<()>>,
    /// Stored POSIX ACL rules by id (they never change).
    acls: meta_api::acl::AclCache,
    /// Directories being listed page by page: the sorted entries read at the first page.
    pub(crate) listings: crate::engine::namespace::Listings,
}

impl std::fmt::Debug for RedisMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisMeta")
            .field("prefix", &self.keys.prefix())
            .field("sid", &self.sid.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The Lua script of `lookup`: one round trip reading the parent's attributes, the
/// entry and the child's attributes. The child's key is built in Lua from the entry's
/// big-endian inode by long division, because Lua numbers are doubles and cannot hold
/// every 64-bit inode exactly.
const LOOKUP_LUA: &str = r#"
local pattr = redis.call('GET', KEYS[1])
if not pattr then return {} end
local entry = redis.call('HGET', KEYS[2], ARGV[1])
if not entry then return {pattr} end
if string.len(entry) ~= 9 then return {pattr, entry} end
local b = {string.byte(entry, 2, 9)}
local digits = {}
repeat
  local rem, more = 0, false
  for i = 1, 8 do
    local cur = rem * 256 + b[i]
    b[i] = math.floor(cur / 10)
    rem = cur % 10
    if b[i] ~= 0 then more = true end
  end
  digits[#digits + 1] = tostring(rem)
until not more
local s = {}
for i = #digits, 1, -1 do s[#s + 1] = digits[i] end
local cattr = redis.call('GET', ARGV[2] .. 'i' .. table.concat(s))
if not cattr then return {pattr, entry} end
return {pattr, entry, cattr}
"#;

impl RedisMeta {
    /// Connects to the volume at `url` with default options.
    ///
    /// `redis://[user:password@]host:port/db` (and `rediss://` for TLS, when built with
    /// the `tls` feature). A password missing from the URL is taken from
    /// `META_PASSWORD` or `REDIS_PASSWORD`, as JuiceFS does.
    pub async fn open(url: &str) -> Result<RedisMeta> {
        RedisMeta::open_with(url, RedisOptions::default()).await
    }

    /// Connects to the volume at `url` with `opts`.
    pub async fn open_with(url: &str, opts: RedisOptions) -> Result<RedisMeta> {
        let info = crate::url::parse(url)?;
        #[cfg(feature = "tls")]
        {
            // rustls needs one process-wide crypto provider; another library may have
            // installed one already, which is as good.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let client = redis::Client::open(info).map_err(|e| {
            MetaError::backend(
                false,
                format!("invalid redis URL {}: {e}", crate::url::redact(url)),
            )
        })?;
        let timing = Timing {
            op_timeout: opts.op_timeout,
            retry_window: opts.retry_window,
        };
        let conns = Conns::connect(client, timing, opts.pool_size).await?;
        let cluster: Option<String> = conns
            .shared(|mut c| async move {
                match redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async::<String>(&mut c)
                    .await
                {
                    Ok(s) => Ok(Some(s)),
                    Err(e) if e.kind() == redis::ErrorKind::ResponseError => Ok(None),
                    Err(e) if e.to_string().contains("cluster") => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .await?;
        if cluster.is_some_and(|s| s.contains("cluster_state:")) {
            return Err(MetaError::NotSupported(
                "Redis Cluster (use a single server or Sentinel-managed primary)",
            ));
        }
        let info: Option<String> = conns
            .shared(|mut c| async move {
                match redis::cmd("INFO").query_async::<String>(&mut c).await {
                    Ok(s) => Ok(Some(s)),
                    // A server that refuses INFO (ACLs) is not checked.
                    Err(e) if e.kind() == redis::ErrorKind::ResponseError => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .await?;
        let server_warnings = info.as_deref().map(server_warnings).unwrap_or_default();
        for w in &server_warnings {
            tracing::warn!(url = %crate::url::redact(url), "{w}");
        }
        let keys = Keys::new(opts.key_prefix.as_deref().unwrap_or(""));
        Ok(RedisMeta {
            server_warnings,
            conns,
            keys,
            lookup_script: redis::Script::new(LOOKUP_LUA),
            sid: AtomicU64::new(0),
            session_info: RwLock::new(None),
            open_files: OpenFiles::new(),
            closes: closes::Closes::default(),
            guesses: Default::default(),
            guess_counts: Default::default(),
            inodes: meta_api::ids::IdPool::inodes(),
            slice_ids: meta_api::ids::IdPool::slices(),
            format: RwLock::new(None),
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            acls: meta_api::acl::AclCache::new(),
            listings: Default::default(),
        })
    }

    /// What the server's configuration risks for a volume, as found (and logged as
    /// warnings) when this client connected: eviction of keys, no append-only file.
    pub fn server_warnings(&self) -> &[String] {
        &self.server_warnings
    }

    /// The prefix of every key of this volume.
    pub fn key_prefix(&self) -> &str {
        self.keys.prefix()
    }

    /// This client's session id (0 before [`MetaEngine::new_session`](meta_api::MetaEngine::new_session)).
    pub fn session_id(&self) -> u64 {
        self.sid.load(Ordering::Relaxed)
    }

    /// Runs one retried transaction watching `watch` (see [`crate::txn`]).
    pub(crate) async fn txn<T, F, Fut>(&self, watch: &[String], f: F) -> Result<T>
    where
        F: FnMut(Tx) -> Fut,
        Fut: std::future::Future<Output = Result<Step<T>>>,
    {
        self.txn_guessed(watch, None, f).await
    }

    /// [`RedisMeta::txn`], run first on `guess` when there is one (see
    /// [`crate::txn`]: one round trip when the guess holds).
    pub(crate) async fn txn_guessed<T, F, Fut>(
        &self,
        watch: &[String],
        guess: Option<txn::Guess>,
        f: F,
    ) -> Result<T>
    where
        F: FnMut(Tx) -> Fut,
        Fut: std::future::Future<Output = Result<Step<T>>>,
    {
        let stripe = watch.first().map(|k| stripe_of(k)).unwrap_or(0);
        let _local = self.stripes[stripe].lock().await;
        let guess = guess.map(|g| (g, &self.guess_counts));
        txn::run(&self.conns, &self.keys, watch, guess, f).await
    }

    /// Creates committed in one round trip on what this client knew of the parent (its
    /// attributes as this client last wrote them, checked by a script on the server), and
    /// those run again the ordinary way (`WATCH`, reads, `MULTI`) because it had changed.
    pub fn guessed_creates(&self) -> (u64, u64) {
        let c = &self.guess_counts;
        (
            c.held.load(Ordering::Relaxed),
            c.missed.load(Ordering::Relaxed),
        )
    }

    /// What this client last committed of directory `parent`, to guess from.
    pub(crate) fn guess_of(&self, parent: Ino) -> Option<txn::Guess> {
        lock_guesses(&self.guesses).get(&parent).cloned()
    }

    /// Keeps `g` to guess from (`None`: forgets what was kept of `parent`).
    pub(crate) fn keep_guess(&self, parent: Ino, g: Option<txn::Guess>) {
        let mut m = lock_guesses(&self.guesses);
        match g {
            Some(g) => {
                if m.len() >= GUESSES && !m.contains_key(&parent) {
                    m.clear();
                }
                m.insert(parent, g);
            }
            None => {
                m.remove(&parent);
            }
        }
    }

    /// Reads through the shared connection (retried on connection failures).
    pub(crate) async fn read<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T> {
        self.conns
            .shared(|mut c| async move { cmd.query_async::<T>(&mut c).await })
            .await
    }

    /// Runs a non-atomic pipeline of reads or idempotent writes on the shared connection.
    pub(crate) async fn read_pipe<T: redis::FromRedisValue>(
        &self,
        p: &redis::Pipeline,
    ) -> Result<T> {
        self.conns
            .shared(|mut c| async move { p.query_async::<T>(&mut c).await })
            .await
    }

    /// The cached settings, loading them on first use.
    pub(crate) async fn settings(&self) -> Result<Format> {
        if let Some(f) = self.read_format_cache() {
            return Ok(f);
        }
        self.load_format().await
    }

    fn read_format_cache(&self) -> Option<Format> {
        self.format
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn store_format_cache(&self, f: &Format) {
        *self.format.write().unwrap_or_else(|p| p.into_inner()) = Some(f.clone());
    }

    async fn load_format(&self) -> Result<Format> {
        let body: Option<Vec<u8>> = self
            .read(redis::cmd("GET").arg(self.keys.setting()))
            .await?;
        let body = body.ok_or(MetaError::NotFormatted)?;
        let text = String::from_utf8(body)
            .map_err(|_| MetaError::Corrupt("volume settings are not UTF-8".into()))?;
        let f = Format::from_json(&text)?;
        self.store_format_cache(&f);
        Ok(f)
    }

    /// Adds `batch` to the id counter at `key` and returns the next free id after the
    /// batch. The Redis counters hold the last id handed out (JuiceFS's Redis
    /// convention, one less than its SQL/TKV counters), hence the `+ 1`. A lost reply
    /// only wastes a batch: ids are never handed out twice.
    async fn reserve_ids(&self, key: String, batch: u64) -> Result<i64> {
        let v: i64 = self.read(redis::cmd("INCRBY").arg(&key).arg(batch)).await?;
        Ok(v.saturating_add(1))
    }

    pub(crate) async fn new_inode(&self) -> Result<Ino> {
        let key = self.keys.next_inode();
        self.inodes
            .next(|_, batch| self.reserve_ids(key.clone(), batch))
            .await
    }

    pub(crate) async fn new_slice(&self) -> Result<u64> {
        let key = self.keys.next_chunk();
        self.slice_ids
            .next(|_, batch| self.reserve_ids(key.clone(), batch))
            .await
    }

    /// The attributes of `ino` through the shared connection.
    pub(crate) async fn get_attr(&self, ino: Ino) -> Result<Option<Attr>> {
        let v: Option<Vec<u8>> = self
            .read(redis::cmd("GET").arg(self.keys.inode(ino)))
            .await?;
        v.map(|b| decode_attr(&b)).transpose()
    }

    /// Fails with `NoSpace` when the volume's capacity or inode limit would be passed.
    pub(crate) async fn check_capacity(&self, tx: &mut Tx, space: i64, inodes: i64) -> Result<()> {
        let f = self.settings().await?;
        if !meta_api::Limits::needed(&f) || (space <= 0 && inodes <= 0) {
            return Ok(());
        }
        let (used, count): (Option<i64>, Option<i64>) = tx
            .cmd(
                redis::cmd("MGET")
                    .arg(self.keys.used_space())
                    .arg(self.keys.total_inodes()),
            )
            .await?;
        let usage = meta_api::Usage {
            space: used.unwrap_or(0),
            inodes: count.unwrap_or(0),
        };
        meta_api::Limits::check(meta_api::Limits::of(&f, usage).as_ref(), space, inodes)
    }
}

/// Changes to JuiceFS's per-directory statistics (`dirDataLength`, `dirUsedSpace`,
/// `dirUsedInodes`: the length, space and number of a directory's direct entries),
/// collected by an operation and written in its transaction.
#[derive(Debug, Default)]
pub(crate) struct DirStats(Vec<(Ino, i64, i64, i64)>);

impl DirStats {
    /// Adds `n` entries (negative: removes) of usage `(length, space)` to `dir`.
    pub(crate) fn entry(&mut self, dir: Ino, usage: (i64, i64), n: i64) -> &mut Self {
        self.0.push((dir, usage.0 * n, usage.1 * n, n));
        self
    }

    /// Adds a change of one entry's length and space to `dir`.
    pub(crate) fn resize(&mut self, dir: Ino, length: i64, space: i64) -> &mut Self {
        self.0.push((dir, length, space, 0));
        self
    }
}

/// What one entry of inode `a` adds to its directory's statistics: a regular file its
/// length and space, anything else 4 KiB of space (as JuiceFS counts).
pub(crate) fn entry_usage(a: &Attr) -> (i64, i64) {
    meta_api::space::entry_usage(a.typ, a.length)
}

impl RedisMeta {
    /// Queues `stats` when the volume keeps directory statistics. Only directories whose
    /// statistics exist are updated: a missing one is recomputed by JuiceFS when needed,
    /// and an increment would make it look complete.
    pub(crate) async fn write_dir_stats(
        &self,
        tx: &mut Tx,
        w: &mut Writes,
        stats: &DirStats,
    ) -> Result<()> {
        if !self.settings().await?.dir_stats {
            return Ok(());
        }
        let mut merged: std::collections::BTreeMap<Ino, (i64, i64, i64)> = Default::default();
        for &(dir, l, s, n) in &stats.0 {
            let e = merged.entry(dir).or_default();
            e.0 += l;
            e.1 += s;
            e.2 += n;
        }
        merged.retain(|_, v| *v != (0, 0, 0));
        if merged.is_empty() {
            return Ok(());
        }
        let k = &self.keys;
        // Presence a read of this transaction saw already costs no round trip; the rest is
        // asked in one pipeline.
        let mut present: std::collections::BTreeMap<Ino, bool> = Default::default();
        let mut unknown = Vec::new();
        for &dir in merged.keys() {
            match tx.dir_stats_seen(dir) {
                Some(there) => {
                    present.insert(dir, there);
                }
                None => unknown.push(dir),
            }
        }
        if !unknown.is_empty() {
            let mut p = redis::pipe();
            for dir in &unknown {
                p.cmd("HEXISTS").arg(k.dir_used_space()).arg(*dir);
            }
            let asked: Vec<bool> = tx.pipe(&p).await?;
            present.extend(unknown.into_iter().zip(asked));
        }
        for (dir, (l, s, n)) in merged {
            if !present.get(&dir).copied().unwrap_or(false) {
                continue;
            }
            let field = dir.to_string();
            for (key, v) in [
                (k.dir_data_length(), l),
                (k.dir_used_space(), s),
                (k.dir_used_inodes(), n),
            ] {
                if v != 0 {
                    w.hincrby(key, field.as_bytes(), v);
                }
            }
        }
        Ok(())
    }

    /// The directories holding names of file `ino`: its parent, or for a hard-linked
    /// file (parent 0) the parents counted in `p{ino}`, once per name. Read only when stats
    /// are kept.
    pub(crate) async fn file_dirs(&self, tx: &mut Tx, ino: Ino, a: &Attr) -> Result<Vec<Ino>> {
        if a.parent > 0 {
            return Ok(vec![a.parent]);
        }
        if !self.settings().await?.dir_stats {
            return Ok(Vec::new());
        }
        let flat: Vec<Vec<u8>> = tx
            .cmd(redis::cmd("HGETALL").arg(self.keys.parents(ino)))
            .await?;
        let mut counts = Vec::new();
        let mut it = flat.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            let parent = std::str::from_utf8(&k)
                .ok()
                .and_then(|s| s.parse::<Ino>().ok());
            let count = std::str::from_utf8(&v)
                .ok()
                .and_then(|s| s.parse::<i64>().ok());
            if let (Some(p), Some(c)) = (parent, count) {
                counts.push((p, c));
            }
        }
        Ok(meta_api::upkeep::dirs_per_name(counts, a.nlink))
    }

    /// Queues the statistics change of file `ino` growing or shrinking from `old` to
    /// `new` bytes, in every directory that names it.
    pub(crate) async fn resize_stats(
        &self,
        tx: &mut Tx,
        w: &mut Writes,
        ino: Ino,
        a: &Attr,
        old: u64,
        new: u64,
    ) -> Result<()> {
        if old == new {
            return Ok(());
        }
        let mut st = DirStats::default();
        for dir in self.file_dirs(tx, ino, a).await? {
            st.resize(dir, new as i64 - old as i64, align4k(new) - align4k(old));
        }
        self.write_dir_stats(tx, w, &st).await
    }
}

/// Which local stripe a key belongs to (FNV-1a).
fn stripe_of(key: &str) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    for b in key.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h as usize) % STRIPES
}

/// Directories whose attributes a client keeps to guess from.
const GUESSES: usize = 4096;

fn lock_guesses(
    m: &std::sync::Mutex<std::collections::HashMap<Ino, txn::Guess>>,
) -> std::sync::MutexGuard<'_, std::collections::HashMap<Ino, txn::Guess>> {
    // Each entry is inserted or removed whole: a panic cannot leave one half-written.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The writes of one transaction, queued for `MULTI`/`EXEC`.
pub(crate) struct Writes {
    pub(crate) p: redis::Pipeline,
}

impl Writes {
    pub(crate) fn new() -> Writes {
        Writes { p: redis::pipe() }
    }
    pub(crate) fn set(&mut self, key: String, value: &[u8]) -> &mut Self {
        self.p.cmd("SET").arg(key).arg(value).ignore();
        self
    }
    pub(crate) fn set_attr(&mut self, keys: &Keys, ino: Ino, attr: &Attr) -> &mut Self {
        self.set(keys.inode(ino), &encode_attr(attr))
    }
    /// Sets the statistics of directory `ino` in the three `dir…` hashes.
    pub(crate) fn set_dir_stat(
        &mut self,
        keys: &Keys,
        ino: Ino,
        st: &meta_api::upkeep::DirStat,
    ) -> &mut Self {
        let field = ino.to_string();
        for (key, v) in [
            (keys.dir_data_length(), st.length),
            (keys.dir_used_space(), st.space),
            (keys.dir_used_inodes(), st.inodes),
        ] {
            self.hset(key, field.as_bytes(), v.to_string().as_bytes());
        }
        self
    }
    pub(crate) fn del(&mut self, key: String) -> &mut Self {
        self.p.cmd("DEL").arg(key).ignore();
        self
    }
    pub(crate) fn hset(&mut self, key: String, field: &[u8], value: &[u8]) -> &mut Self {
        self.p.cmd("HSET").arg(key).arg(field).arg(value).ignore();
        self
    }
    pub(crate) fn hdel(&mut self, key: String, field: &[u8]) -> &mut Self {
        self.p.cmd("HDEL").arg(key).arg(field).ignore();
        self
    }
    pub(crate) fn hincrby(&mut self, key: String, field: &[u8], by: i64) -> &mut Self {
        self.p.cmd("HINCRBY").arg(key).arg(field).arg(by).ignore();
        self
    }
    pub(crate) fn incrby(&mut self, key: String, by: i64) -> &mut Self {
        self.p.cmd("INCRBY").arg(key).arg(by).ignore();
        self
    }
    pub(crate) fn zadd(&mut self, key: String, score: i64, member: &str) -> &mut Self {
        self.p.cmd("ZADD").arg(key).arg(score).arg(member).ignore();
        self
    }
    pub(crate) fn zrem(&mut self, key: String, member: &[u8]) -> &mut Self {
        self.p.cmd("ZREM").arg(key).arg(member).ignore();
        self
    }
    pub(crate) fn sadd(&mut self, key: String, member: u64) -> &mut Self {
        self.p.cmd("SADD").arg(key).arg(member).ignore();
        self
    }
    pub(crate) fn srem(&mut self, key: String, member: u64) -> &mut Self {
        self.p.cmd("SREM").arg(key).arg(member).ignore();
        self
    }
    pub(crate) fn rpush(&mut self, key: String, value: &[u8]) -> &mut Self {
        self.p.cmd("RPUSH").arg(key).arg(value).ignore();
        self
    }
    pub(crate) fn rpushx(&mut self, key: String, value: &[u8]) -> &mut Self {
        self.p.cmd("RPUSHX").arg(key).arg(value).ignore();
        self
    }
    pub(crate) fn commit<T>(self, value: T) -> Step<T> {
        Step::Commit(self.p, value)
    }
}

/// `NotFound` for a missing inode, `NotDir` for one that is not a directory.
pub(crate) fn need_dir(attr: Option<Attr>) -> Result<Attr> {
    let a = attr.ok_or(MetaError::NotFound)?;
    if !a.is_dir() {
        return Err(MetaError::NotDir);
    }
    Ok(a)
}

/// The current time of this engine's clock.
pub(crate) fn now() -> Timestamp {
    Timestamp::now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripes_spread() {
        let a = stripe_of("d1");
        assert!(a < STRIPES);
        assert_eq!(a, stripe_of("d1"));
    }
}

/// The risks a server's `INFO` shows for a volume (juicefs warns of the same): a
/// `maxmemory-policy` other than `noeviction` lets Redis drop the volume's keys when memory
/// runs short, which corrupts the volume; without the append-only file, operations
/// acknowledged since the last snapshot are lost when Redis stops uncleanly. Servers on
/// flash storage (`storage_provider:flash`) manage eviction themselves.
pub fn server_warnings(info: &str) -> Vec<String> {
    let field = |name: &str| {
        info.lines()
            .filter_map(|l| l.trim().split_once(':'))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.trim())
    };
    let mut out = Vec::new();
    if let Some(policy) = field("maxmemory_policy") {
        if policy != "noeviction" && field("storage_provider") != Some("flash") {
            out.push(format!(
                "maxmemory-policy is {policy:?}: Redis may evict this volume's keys when its \
                 memory is full, which corrupts the volume; set maxmemory-policy noeviction"
            ));
        }
    }
    if field("aof_enabled") == Some("0") {
        out.push(
            "the append-only file is off: operations acknowledged since Redis's last snapshot \
             are lost if it stops uncleanly; set appendonly yes (appendfsync everysec or always)"
                .to_string(),
        );
    }
    out
}

#[cfg(test)]
mod server_config_tests {
    use super::server_warnings;

    #[test]
    fn risky_settings_are_named() {
        let ok = "# Memory\r\nmaxmemory_policy:noeviction\r\n# Persistence\r\naof_enabled:1\r\n";
        assert!(server_warnings(ok).is_empty());
        let lru = "maxmemory_policy:allkeys-lru\r\naof_enabled:1\r\n";
        let w = server_warnings(lru);
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains("\"allkeys-lru\"") && w[0].contains("noeviction"),
            "{w:?}"
        );
        let flash = "maxmemory_policy:allkeys-lru\r\nstorage_provider:flash\r\naof_enabled:1\r\n";
        assert!(server_warnings(flash).is_empty());
        let no_aof = "maxmemory_policy:noeviction\r\naof_enabled:0\r\n";
        let w = server_warnings(no_aof);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("append-only"), "{w:?}");
        // Fields a server does not report are not guessed at.
        assert!(server_warnings("").is_empty());
    }
}
