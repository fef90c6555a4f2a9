//! `Cached<S>`: memory and disk caching, singleflight, prefetch and writeback in front of a
//! [`ChunkStore`].

use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use chunkstore::{BlockKey, ChunkStore, ListPage, ObjectMeta, Result, StoreError};
use tokio::sync::{mpsc, Mutex as AsyncMutex, Notify};
use tokio::task::JoinHandle;

use crate::disk::{DiskCache, Fault};
use crate::flight::{self, Flights, Join};
use crate::metrics::{add, CacheMetrics, Counters};
use crate::staging::{Deleted, Staging};
use crate::{CacheOptions, MemCache};

/// Blocks larger than this (by the length in their key) are not cached: they pass through.
pub const MAX_CACHED_BLOCK: u64 = 32 << 20;

/// Bytes of fetched blocks allowed to wait for their disk-cache write; beyond it the disk
/// write is skipped, so a slow cache disk never holds up reads or memory.
const MAX_PENDING_FILL_BYTES: u64 = 256 << 20;

/// Queued prefetches per prefetch worker; more are dropped (readahead is advisory).
const PREFETCH_QUEUE_PER_WORKER: usize = 16;

const UPLOAD_BACKOFF_MIN: Duration = Duration::from_millis(100);
const UPLOAD_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The length a block key states, if `key` is a block this cache handles.
fn block_len(key: &str) -> Option<u64> {
    BlockKey::parse_prefixed(key)
        .map(|(_, b)| u64::from(b.len))
        .filter(|&n| n <= MAX_CACHED_BLOCK)
}

/// Cuts `data` to the range a `get_range` asks for; a range past the end is cut short.
fn slice_range(data: &Bytes, off: u64, len: Option<u64>) -> Bytes {
    let size = data.len() as u64;
    let start = off.min(size);
    let end = len.map_or(size, |l| start.saturating_add(l).min(size));
    data.slice(start as usize..end as usize)
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Runs blocking file I/O off the async threads; `None` if it panicked.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

/// Background work readers do not wait for (disk fills, prefetches), tracked so that
/// [`Cached::idle`] can wait for it.
#[derive(Default)]
struct Background {
    tasks: AtomicUsize,
    bytes: AtomicU64,
    idle: Notify,
}

/// One unit of background work; dropping it marks the work done.
struct BgToken {
    bg: Arc<Background>,
    bytes: u64,
}

impl Background {
    /// Starts tracking a piece of work holding `bytes`; `None` if the byte budget is spent.
    fn enter(self: &Arc<Self>, bytes: u64) -> Option<BgToken> {
        let before = self.bytes.fetch_add(bytes, Ordering::AcqRel);
        if bytes > 0 && before > 0 && before + bytes > MAX_PENDING_FILL_BYTES {
            self.bytes.fetch_sub(bytes, Ordering::AcqRel);
            return None;
        }
        self.tasks.fetch_add(1, Ordering::AcqRel);
        Some(BgToken {
            bg: Arc::clone(self),
            bytes,
        })
    }

    async fn wait_idle(&self) {
        loop {
            let mut notified = std::pin::pin!(self.idle.notified());
            notified.as_mut().enable();
            if self.tasks.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for BgToken {
    fn drop(&mut self) {
        self.bg.bytes.fetch_sub(self.bytes, Ordering::AcqRel);
        if self.bg.tasks.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.bg.idle.notify_waiters();
        }
    }
}

type PrefetchJob = (String, BgToken);

struct Core<S> {
    inner: S,
    opts: CacheOptions,
    mem: MemCache,
    disk: Option<Arc<DiskCache>>,
    staging: Option<Staging>,
    flights: Arc<Flights>,
    counters: Counters,
    bg: Arc<Background>,
    uploads: Option<mpsc::UnboundedSender<String>>,
    prefetches: Option<mpsc::Sender<PrefetchJob>>,
}

/// A [`ChunkStore`] decorator caching blocks in memory ([`MemCache`]) and in local cache
/// directories ([`DiskCache`]), with optional writeback staging. See the
/// [crate documentation](crate) for the read path, the failure rules and what writeback
/// means for durability.
///
/// Background work (uploads, prefetches) runs on the Tokio runtime `open` was called in and
/// stops when the `Cached` is dropped; staged blocks not yet uploaded stay on disk and are
/// uploaded by the next `open` of the same directories.
pub struct Cached<S: ChunkStore> {
    core: Arc<Core<S>>,
    workers: Vec<JoinHandle<()>>,
}

impl<S: ChunkStore> std::fmt::Debug for Cached<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cached")
            .field("mem", &self.core.mem)
            .field("disk", &self.core.disk)
            .field("writeback", &self.core.staging.is_some())
            .finish()
    }
}

impl<S: ChunkStore> Drop for Cached<S> {
    fn drop(&mut self) {
        for w in &self.workers {
            w.abort();
        }
    }
}

impl<S: ChunkStore> Cached<S> {
    /// Opens the cache over `inner`: creates or rebuilds the cache directories' indexes
    /// (listing them, not reading blocks) and, in writeback mode, queues every block found
    /// in staging for upload. Must be called inside a Tokio runtime.
    pub async fn open(inner: S, opts: CacheOptions) -> Result<Cached<S>> {
        opts.validate()?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(StoreError::Invalid(
                "Cached must be opened inside a Tokio runtime".into(),
            ));
        }
        let disk = if opts.dirs.is_empty() {
            None
        } else {
            let (dirs, bytes, ratio) = (opts.dirs.clone(), opts.disk_bytes, opts.free_space_ratio);
            let d = blocking(move || DiskCache::open(&dirs, bytes, ratio))
                .await
                .ok_or_else(|| StoreError::other("opening the disk cache panicked"))?
                .map_err(|e| StoreError::Invalid(e.to_string()))?;
            Some(Arc::new(d))
        };
        let writeback = opts.writeback && disk.is_some();
        let recovered = match (&disk, writeback) {
            (Some(d), true) => {
                let d = Arc::clone(d);
                blocking(move || d.scan_staging()).await.unwrap_or_default()
            }
            _ => Vec::new(),
        };

        let (up_tx, up_rx) = if writeback {
            let (tx, rx) = mpsc::unbounded_channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let (pf_tx, pf_rx) = if opts.prefetch_concurrency > 0 {
            let (tx, rx) = mpsc::channel(opts.prefetch_concurrency * PREFETCH_QUEUE_PER_WORKER);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };

        let core = Arc::new(Core {
            inner,
            mem: MemCache::new(opts.memory_bytes),
            staging: writeback.then(|| Staging::new(opts.staging_bytes)),
            disk,
            flights: Arc::new(Flights::default()),
            counters: Counters::default(),
            bg: Arc::new(Background::default()),
            uploads: up_tx,
            prefetches: pf_tx,
            opts,
        });

        if let (Some(st), Some(tx)) = (&core.staging, &core.uploads) {
            let (mut n, mut bytes) = (0u64, 0u64);
            for f in recovered {
                if st.recover(&f.key, f.dir, f.data_len, f.mtime) {
                    n += 1;
                    bytes += f.data_len;
                    // The receiver lives in `up_rx` until the workers start.
                    let _ = tx.send(f.key);
                }
            }
            if n > 0 {
                tracing::info!(
                    blocks = n,
                    bytes,
                    "uploading blocks staged before a restart"
                );
            }
        }

        let mut workers = Vec::new();
        if let Some(rx) = up_rx {
            let rx = Arc::new(AsyncMutex::new(rx));
            for _ in 0..core.opts.upload_concurrency {
                workers.push(tokio::spawn(upload_worker(
                    Arc::clone(&core),
                    Arc::clone(&rx),
                )));
            }
        }
        if let Some(rx) = pf_rx {
            let rx = Arc::new(AsyncMutex::new(rx));
            for _ in 0..core.opts.prefetch_concurrency {
                workers.push(tokio::spawn(prefetch_worker(
                    Arc::clone(&core),
                    Arc::clone(&rx),
                )));
            }
        }
        Ok(Cached { core, workers })
    }

    /// The store behind the cache.
    pub fn inner(&self) -> &S {
        &self.core.inner
    }

    /// The options the cache was opened with.
    pub fn options(&self) -> &CacheOptions {
        &self.core.opts
    }

    /// The memory cache.
    pub fn mem_cache(&self) -> &MemCache {
        &self.core.mem
    }

    /// The disk cache, if cache directories were given.
    pub fn disk_cache(&self) -> Option<&DiskCache> {
        self.core.disk.as_deref()
    }

    /// A snapshot of the counters and gauges.
    pub fn metrics(&self) -> CacheMetrics {
        let c = &self.core;
        let mut m = c.counters.snapshot();
        m.mem_evictions = c.mem.evictions();
        m.mem_bytes = c.mem.used_bytes();
        if let Some(d) = &c.disk {
            m.disk_evictions = d.evictions();
            m.corrupt_dropped = d.corrupt_dropped();
            m.disk_errors = d.io_errors();
            m.disk_bytes = d.used_bytes();
        }
        if let Some(st) = &c.staging {
            (m.staged_blocks, m.staged_bytes, m.writers_waiting) = st.gauges();
        }
        m
    }

    /// Asks for block `key` to be fetched into the cache in the background (readahead).
    /// Returns at once; does nothing for non-block keys, cached blocks, or when prefetching
    /// is off. At most `prefetch_concurrency` fetches run at once and a short queue waits;
    /// beyond that, requests are dropped (counted in `prefetches_dropped`).
    pub fn prefetch(&self, key: &str) {
        let c = &self.core;
        let Some(tx) = &c.prefetches else {
            return;
        };
        if block_len(key).is_none() || c.is_cached(key) {
            return;
        }
        let Some(token) = c.bg.enter(0) else {
            return;
        };
        match tx.try_send((key.to_string(), token)) {
            Ok(()) => add(&c.counters.prefetches, 1),
            Err(_) => add(&c.counters.prefetches_dropped, 1),
        }
    }

    /// Waits until every block staged before the call is uploaded to the inner store (a
    /// no-op without writeback). Uploads are retried until they succeed, so this waits as
    /// long as the store refuses them.
    pub async fn flush(&self) {
        if let Some(st) = &self.core.staging {
            st.flush().await;
        }
    }

    /// Waits until background cache fills and queued prefetches have finished (uploads are
    /// waited for by [`flush`](Self::flush)).
    pub async fn idle(&self) {
        self.core.bg.wait_idle().await;
    }
}

impl<S: ChunkStore> Core<S> {
    fn is_cached(&self, key: &str) -> bool {
        self.mem.contains(key)
            || self.staging.as_ref().is_some_and(|s| s.get(key).is_some())
            || self.disk.as_ref().is_some_and(|d| d.contains(key))
    }

    fn hit(&self, counter: &AtomicU64, n: usize, quiet: bool) {
        if !quiet {
            add(counter, 1);
            add(&self.counters.bytes_from_cache, n as u64);
        }
    }

    async fn read_staged(&self, key: &str, off: u64, len: Option<u64>) -> Option<Bytes> {
        let (st, disk) = (self.staging.as_ref()?, self.disk.as_ref()?);
        let e = st.get(key)?;
        let (disk, k) = (Arc::clone(disk), key.to_string());
        match blocking(move || disk.read_staged(e.dir, &k, off, len)).await? {
            Ok(b) => Some(b),
            // Uploaded and moved into the cache meanwhile.
            Err(Fault::Missing) => None,
            Err(fault) => {
                tracing::error!(key, ?fault, "staged block unreadable");
                None
            }
        }
    }

    async fn read_disk(
        &self,
        key: &str,
        block_len: u64,
        off: u64,
        len: Option<u64>,
    ) -> Option<Bytes> {
        let disk = self.disk.as_ref()?;
        if !disk.contains(key) {
            return None;
        }
        let (d, k) = (Arc::clone(disk), key.to_string());
        let b = blocking(move || d.get_range(&k, off, len)).await??;
        if off == 0 && len.is_none_or(|l| l >= block_len) {
            self.mem.insert(key, b.clone());
        }
        Some(b)
    }

    async fn fetch(&self, key: &str, block_len: u64) -> Result<Bytes> {
        add(&self.counters.fetches, 1);
        let b = self.inner.get_range(key, 0, None).await?;
        add(&self.counters.bytes_from_store, b.len() as u64);
        if b.len() as u64 != block_len {
            return Err(StoreError::Corrupt(format!(
                "{key}: store returned {} bytes, key says {block_len}",
                b.len()
            )));
        }
        Ok(b)
    }

    /// Writes a block into the disk cache in the background; `guard` (the fetch's flight)
    /// lives until then, so readers arriving meanwhile share the fetched bytes.
    fn fill_disk(&self, key: &str, data: Bytes, guard: Option<flight::FlightGuard>) {
        let Some(disk) = &self.disk else {
            return;
        };
        let Some(token) = self.bg.enter(data.len() as u64) else {
            tracing::debug!(
                key,
                "disk cache writes backed up; not caching block on disk"
            );
            return;
        };
        let (disk, key) = (Arc::clone(disk), key.to_string());
        tokio::task::spawn_blocking(move || {
            disk.insert(&key, &data);
            drop(guard);
            drop(token);
        });
    }

    /// Reads `[off, off+len)` of block `key`, whose key says it is `block_len` long:
    /// memory, staging, disk, then one shared fetch of the whole block from the store.
    /// `quiet` (prefetch) leaves the hit and miss counters alone.
    async fn read_block(
        &self,
        key: &str,
        block_len: u64,
        off: u64,
        len: Option<u64>,
        quiet: bool,
    ) -> Result<Bytes> {
        loop {
            if let Some(b) = self.mem.get(key) {
                let out = slice_range(&b, off, len);
                self.hit(&self.counters.mem_hits, out.len(), quiet);
                return Ok(out);
            }
            if let Some(out) = self.read_staged(key, off, len).await {
                self.hit(&self.counters.staging_hits, out.len(), quiet);
                return Ok(out);
            }
            if let Some(out) = self.read_disk(key, block_len, off, len).await {
                self.hit(&self.counters.disk_hits, out.len(), quiet);
                return Ok(out);
            }
            match self.flights.join(key) {
                Join::Leader(guard) => {
                    // A flight that ended between our lookups and `join` left the block here.
                    if let Some(b) = self.mem.get(key) {
                        let out = slice_range(&b, off, len);
                        self.hit(&self.counters.mem_hits, out.len(), quiet);
                        return Ok(out);
                    }
                    if !quiet {
                        add(&self.counters.misses, 1);
                    }
                    return match self.fetch(key, block_len).await {
                        Ok(b) => {
                            self.mem.insert(key, b.clone());
                            guard.publish(Ok(b.clone()));
                            let out = slice_range(&b, off, len);
                            self.fill_disk(key, b, Some(guard));
                            Ok(out)
                        }
                        Err(e) => {
                            guard.publish(Err(Arc::new(flight::copy_error(&e))));
                            Err(e)
                        }
                    };
                }
                Join::Follower(slot) => match flight::wait(slot).await {
                    Some(outcome) => {
                        if !quiet {
                            add(&self.counters.misses, 1);
                        }
                        return match outcome {
                            Ok(b) => Ok(slice_range(&b, off, len)),
                            Err(e) => Err(flight::copy_error(&e)),
                        };
                    }
                    // The leader was cancelled: look again, and maybe lead.
                    None => continue,
                },
            }
        }
    }

    /// Writeback: stages `data` durably and queues its upload. `Err((data, full))` hands the
    /// block back when it cannot be staged (the caller uploads it synchronously); `full` says
    /// it waited [`CacheOptions::staging_wait`] for room in vain.
    async fn stage(&self, key: &str, data: Bytes) -> std::result::Result<(), (Bytes, bool)> {
        let (Some(st), Some(disk), Some(tx)) = (&self.staging, &self.disk, &self.uploads) else {
            return Err((data, false));
        };
        if st.get(key).is_some() {
            // Blocks are immutable: the same key holds the same bytes.
            return Ok(());
        }
        let Some(dir) = disk.dir_for(key).filter(|_| disk.can_stage(key)) else {
            return Err((data, false));
        };
        let Ok(room) =
            tokio::time::timeout(self.opts.staging_wait, st.reserve(data.len() as u64)).await
        else {
            return Err((data, true));
        };
        let (d, k, b) = (Arc::clone(disk), key.to_string(), data.clone());
        match blocking(move || d.stage(dir, &k, &b)).await {
            Some(Ok(())) => {
                if room.commit(key, dir, now_secs()) {
                    self.mem.insert(key, data);
                    // The workers hold the receiver for as long as `self` exists.
                    let _ = tx.send(key.to_string());
                }
                Ok(())
            }
            Some(Err(e)) => {
                tracing::debug!(key, error = %e, "cannot stage block; uploading it now");
                Err((data, false))
            }
            None => Err((data, false)),
        }
    }

    /// Uploads one staged block, retrying until it succeeds or the block is deleted, then
    /// moves its file into the cache.
    async fn upload(&self, key: &str) {
        let (Some(st), Some(disk)) = (&self.staging, &self.disk) else {
            return;
        };
        let mut backoff = meta_api::backoff::Backoff::new(UPLOAD_BACKOFF_MIN, UPLOAD_BACKOFF_MAX);
        let entry = loop {
            let Some(entry) = st.begin_upload(key) else {
                return;
            };
            let data = match self.mem.get(key) {
                Some(b) if b.len() as u64 == entry.data_len => Ok(b),
                _ => {
                    let (d, k) = (Arc::clone(disk), key.to_string());
                    blocking(move || d.read_staged(entry.dir, &k, 0, None))
                        .await
                        .unwrap_or_else(|| Err(Fault::Io(io::Error::other("read panicked"))))
                }
            };
            let data = match data {
                Ok(b) if b.len() as u64 == entry.data_len => b,
                other => {
                    tracing::error!(
                        key, fault = ?other.err(),
                        "staged block cannot be read back for upload; its data is lost"
                    );
                    add(&self.counters.staged_lost, 1);
                    st.finish(key);
                    let (d, k) = (Arc::clone(disk), key.to_string());
                    blocking(move || d.remove_staged(entry.dir, &k, true)).await;
                    return;
                }
            };
            match self.inner.put(key, data).await {
                Ok(()) => break entry,
                Err(e) => {
                    add(&self.counters.upload_errors, 1);
                    let pause = backoff.next_pause();
                    tracing::warn!(key, error = %e, retry_in = ?pause, "upload of staged block failed");
                    if st.upload_failed(key) {
                        st.finish(key);
                        let (d, k) = (Arc::clone(disk), key.to_string());
                        blocking(move || d.remove_staged(entry.dir, &k, true)).await;
                        return;
                    }
                    tokio::time::sleep(pause).await;
                }
            }
        };
        let (d, k) = (Arc::clone(disk), key.to_string());
        if st.was_deleted(key) {
            // The block was deleted while it was on its way: delete it again behind it.
            if let Err(e) = self.inner.delete(key).await {
                tracing::warn!(key, error = %e, "could not delete a block deleted during upload; gc will");
            }
            blocking(move || d.remove_staged(entry.dir, &k, true)).await;
        } else {
            blocking(move || d.adopt_staged(entry.dir, &k, entry.data_len)).await;
        }
        st.finish(key);
        add(&self.counters.uploads, 1);
        add(&self.counters.bytes_uploaded, entry.data_len);
    }
}

async fn upload_worker<S: ChunkStore>(
    core: Arc<Core<S>>,
    rx: Arc<AsyncMutex<mpsc::UnboundedReceiver<String>>>,
) {
    loop {
        let next = rx.lock().await.recv().await;
        let Some(key) = next else {
            return;
        };
        core.upload(&key).await;
    }
}

async fn prefetch_worker<S: ChunkStore>(
    core: Arc<Core<S>>,
    rx: Arc<AsyncMutex<mpsc::Receiver<PrefetchJob>>>,
) {
    loop {
        let next = rx.lock().await.recv().await;
        let Some((key, token)) = next else {
            return;
        };
        if let Some(n) = block_len(&key) {
            if !core.is_cached(&key) {
                if let Err(e) = core.read_block(&key, n, 0, Some(0), true).await {
                    tracing::debug!(key, error = %e, "prefetch failed");
                }
            }
        }
        drop(token);
    }
}

#[async_trait]
impl<S: ChunkStore> ChunkStore for Cached<S> {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        let c = &self.core;
        if block_len(key) != Some(data.len() as u64) {
            // Not a block, or a block whose length contradicts its key: not ours to cache.
            return c.inner.put(key, data).await;
        }
        let (data, staging_full) = if c.staging.is_some() {
            match c.stage(key, data).await {
                Ok(()) => return Ok(()),
                Err((data, full)) => {
                    add(&c.counters.staging_bypassed, 1);
                    (data, full)
                }
            }
        } else {
            (data, false)
        };
        if let Err(e) = c.inner.put(key, data.clone()).await {
            if !staging_full {
                return Err(e);
            }
            let (_, used, _) = c.staging.as_ref().map_or((0, 0, 0), |s| s.gauges());
            return Err(StoreError::other(format!(
                "writeback staging is full ({used} bytes waiting for upload, limit {}) \
                 and the store refused the block: {e}",
                c.opts.staging_bytes
            )));
        }
        c.mem.insert(key, data.clone());
        c.fill_disk(key, data, None);
        Ok(())
    }

    async fn get_range(&self, key: &str, off: u64, len: Option<u64>) -> Result<Bytes> {
        match block_len(key) {
            Some(n) => self.core.read_block(key, n, off, len, false).await,
            None => self.core.inner.get_range(key, off, len).await,
        }
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let c = &self.core;
        if block_len(key).is_some() {
            c.mem.remove(key);
            if let (Some(st), Some(disk)) = (&c.staging, &c.disk) {
                if let Deleted::RemoveFile { dir } = st.delete(key) {
                    let (d, k) = (Arc::clone(disk), key.to_string());
                    blocking(move || d.remove_staged(dir, &k, true)).await;
                }
            }
            if let Some(disk) = &c.disk {
                if disk.contains(key) {
                    let (d, k) = (Arc::clone(disk), key.to_string());
                    blocking(move || d.remove(&k)).await;
                }
            }
        }
        c.inner.delete(key).await
    }

    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        let c = &self.core;
        let mut page = c.inner.list_page(prefix, start_after, limit).await?;
        let Some(st) = &c.staging else {
            return Ok(page);
        };
        // Staged blocks are objects to the caller: merge those within this page's key span.
        let upto = if page.truncated {
            match page.objects.last() {
                Some(o) => Some(o.key.clone()),
                None => return Ok(page),
            }
        } else {
            None
        };
        let staged = st.list(prefix, start_after, upto.as_deref());
        if staged.is_empty() {
            return Ok(page);
        }
        for (key, e) in staged {
            if let Err(i) = page.objects.binary_search_by(|o| o.key.as_str().cmp(&key)) {
                page.objects.insert(
                    i,
                    ObjectMeta {
                        key,
                        size: e.data_len,
                        mtime: e.mtime,
                    },
                );
            }
        }
        if page.objects.len() > limit {
            page.objects.truncate(limit);
            page.truncated = true;
        }
        Ok(page)
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let c = &self.core;
        if let Some(e) = c.staging.as_ref().and_then(|st| st.get(key)) {
            return Ok(ObjectMeta {
                key: key.to_string(),
                size: e.data_len,
                mtime: e.mtime,
            });
        }
        c.inner.head(key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_block_keys_of_cacheable_size_are_blocks() {
        assert_eq!(block_len("chunks/0/0/1_0_5"), Some(5));
        assert_eq!(block_len("vol/chunks/0/0/1_2_4194304"), Some(4194304));
        assert_eq!(block_len("vol/juicefs_uuid"), None);
        assert_eq!(block_len("chunks/0/0/1_0_99999999"), None);
    }

    #[test]
    fn slice_range_cuts_short() {
        let b = Bytes::from_static(b"0123456789");
        assert_eq!(slice_range(&b, 2, Some(3)), &b"234"[..]);
        assert_eq!(slice_range(&b, 8, Some(5)), &b"89"[..]);
        assert_eq!(slice_range(&b, 20, None), &b""[..]);
        assert_eq!(slice_range(&b, 0, Some(u64::MAX)), &b[..]);
    }

    #[tokio::test]
    async fn background_budget_and_idle() {
        let bg = Arc::new(Background::default());
        let a = bg.enter(MAX_PENDING_FILL_BYTES).unwrap();
        assert!(bg.enter(1).is_none());
        let z = bg.enter(0).unwrap();
        drop(a);
        let b = bg.enter(1).unwrap();
        drop((z, b));
        bg.wait_idle().await;
        assert_eq!(bg.bytes.load(Ordering::Relaxed), 0);
    }
}
