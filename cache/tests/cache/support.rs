//! Test helpers: an instrumented store (counts fetches, gates or fails operations) and
//! block builders.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use cache::{CacheOptions, CacheOptionsBuilder, Cached};
use chunkstore::{BlockKey, ChunkStore, ListPage, ObjectMeta, Result, StoreError};
use tokio::sync::watch;

/// A gate operations wait at while it is closed.
#[derive(Clone)]
pub struct Gate(Arc<watch::Sender<bool>>);

impl Gate {
    pub fn closed() -> Gate {
        Gate(Arc::new(watch::channel(false).0))
    }
    pub fn open(&self) {
        self.0.send_replace(true);
    }
    async fn pass(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|open| *open).await;
    }
}

/// What `put` does.
#[derive(Clone)]
pub enum PutMode {
    /// Store the object.
    Pass,
    /// Fail with a transient error.
    Fail,
    /// Never return.
    Hang,
    /// Wait for the gate, then store.
    Gated(Gate),
}

/// A store over shared objects that counts block reads and can gate or break writes.
pub struct TestStore {
    objects: Arc<dyn ChunkStore>,
    gets: Mutex<HashMap<String, usize>>,
    gets_started: AtomicUsize,
    puts_started: AtomicUsize,
    get_gate: Mutex<Option<Gate>>,
    put_mode: Mutex<PutMode>,
}

impl TestStore {
    pub fn new(objects: Arc<dyn ChunkStore>) -> TestStore {
        TestStore {
            objects,
            gets: Mutex::new(HashMap::new()),
            gets_started: AtomicUsize::new(0),
            puts_started: AtomicUsize::new(0),
            get_gate: Mutex::new(None),
            put_mode: Mutex::new(PutMode::Pass),
        }
    }

    pub fn with_puts(self, mode: PutMode) -> TestStore {
        *self.put_mode.lock().unwrap() = mode;
        self
    }

    pub fn gate_gets(&self, gate: Gate) {
        *self.get_gate.lock().unwrap() = Some(gate);
    }

    /// Completed-or-started `get_range` calls for `key`.
    pub fn gets_of(&self, key: &str) -> usize {
        self.gets.lock().unwrap().get(key).copied().unwrap_or(0)
    }

    pub fn gets(&self) -> usize {
        self.gets_started.load(Ordering::SeqCst)
    }

    pub fn puts_started(&self) -> usize {
        self.puts_started.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl ChunkStore for TestStore {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        self.puts_started.fetch_add(1, Ordering::SeqCst);
        let mode = self.put_mode.lock().unwrap().clone();
        match mode {
            PutMode::Pass => {}
            PutMode::Fail => return Err(StoreError::transient("test store refuses puts")),
            PutMode::Hang => std::future::pending::<()>().await,
            PutMode::Gated(g) => g.pass().await,
        }
        self.objects.put(key, data).await
    }

    async fn get_range(&self, key: &str, off: u64, len: Option<u64>) -> Result<Bytes> {
        *self
            .gets
            .lock()
            .unwrap()
            .entry(key.to_string())
            .or_default() += 1;
        self.gets_started.fetch_add(1, Ordering::SeqCst);
        let gate = self.get_gate.lock().unwrap().clone();
        if let Some(g) = gate {
            g.pass().await;
        }
        self.objects.get_range(key, off, len).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.objects.delete(key).await
    }

    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        self.objects.list_page(prefix, start_after, limit).await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        self.objects.head(key).await
    }
}

/// The key of block `index` of slice `id`, `len` bytes long.
pub fn key(id: u64, len: usize) -> String {
    BlockKey::new(id, 0, len as u32).to_key(false)
}

/// Recognisable bytes for block `id`.
pub fn block(id: u64, len: usize) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| (i as u64).wrapping_mul(131).wrapping_add(id * 7) as u8)
            .collect::<Vec<_>>(),
    )
}

/// Options with a memory cache of `mem` bytes and the given cache directories.
pub fn opts(mem: u64, dirs: &[&Path]) -> CacheOptionsBuilder {
    CacheOptions::builder()
        .memory_bytes(mem)
        .dirs(dirs.iter().map(|d| d.to_path_buf()))
        .free_space_ratio(0.0)
}

/// A fresh shared object map, a test store over it, and `Cached` over that.
pub async fn cached(o: CacheOptionsBuilder) -> (Arc<dyn ChunkStore>, Cached<Arc<TestStore>>) {
    let objects: Arc<dyn ChunkStore> = Arc::new(chunkstore::MemStore::new());
    let store = Arc::new(TestStore::new(Arc::clone(&objects)));
    let c = Cached::open(store, o.build().unwrap()).await.unwrap();
    (objects, c)
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}
