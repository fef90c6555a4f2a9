//! Shared test fixtures: an in-memory volume, clients on it, and misbehaving stores.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chunkstore::{ChunkStore, ChunkStoreExt, ListPage, MemStore, ObjectMeta, StoreError};
use meta_api::testkit::model::ModelEngine;
use meta_api::{Context, Format, Ino, MetaEngine, CHUNK_SIZE};
use meta_sqlite::SqliteMeta;
use vfs_core::{Vfs, VfsOptions};

/// Block size of test volumes: small so that multi-block and multi-chunk files stay cheap.
pub const BLOCK: u64 = 64 << 10;
/// One chunk.
pub const CHUNK: u64 = CHUNK_SIZE;

/// Settings of a test volume with 64 KiB blocks.
pub fn test_format() -> Format {
    let mut f = Format::new("testvol", "00000000-0000-4000-8000-000000000001", "mem", "");
    f.block_size = (BLOCK / 1024) as u32;
    f
}

/// Options for tests: background write-back and purge are slow enough never to race a test.
pub fn test_options() -> VfsOptions {
    VfsOptions::default()
        .flush_idle(Duration::from_secs(3600))
        .purge_interval(None)
        .block_cache_size(4 << 20)
        .readahead(1 << 20)
}

/// The metadata engines the end-to-end tests run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// The reference model of meta-api's testkit.
    Model,
    /// SQLite, in memory.
    Sqlite,
}

enum Holder {
    Model(ModelEngine),
    /// The in-memory database lives as long as one connection to it does.
    Sqlite {
        name: String,
        _keep_alive: Box<SqliteMeta>,
    },
}

/// A formatted in-memory volume: a metadata engine shared by its clients and one store.
pub struct Volume {
    holder: Holder,
    pub format: Format,
    pub mem: Arc<MemStore>,
    pub store: Arc<dyn ChunkStore>,
}

impl Volume {
    /// A new volume on a plain memory store.
    pub async fn new(engine: Engine) -> Volume {
        let mem = Arc::new(MemStore::new());
        Volume::with_store(engine, mem.clone(), mem).await
    }

    /// A new volume keeping one trash day, as `juicefs format` makes by default.
    pub async fn with_trash(engine: Engine) -> Volume {
        let mem = Arc::new(MemStore::new());
        let mut format = test_format();
        format.trash_days = 1;
        Volume::with_format(engine, format, mem.clone(), mem).await
    }

    /// A new volume whose clients use `store` (which keeps its objects in `mem`).
    pub async fn with_store(
        engine: Engine,
        mem: Arc<MemStore>,
        store: Arc<dyn ChunkStore>,
    ) -> Volume {
        Volume::with_format(engine, test_format(), mem, store).await
    }

    /// A new volume with settings `format` whose clients use `store` (which keeps its
    /// objects in `mem`).
    pub async fn with_format(
        engine: Engine,
        format: Format,
        mem: Arc<MemStore>,
        store: Arc<dyn ChunkStore>,
    ) -> Volume {
        static VOLUMES: AtomicUsize = AtomicUsize::new(0);
        let holder = match engine {
            Engine::Model => {
                let m = ModelEngine::unformatted();
                m.init(&format, false).await.unwrap();
                Holder::Model(m)
            }
            Engine::Sqlite => {
                let n = VOLUMES.fetch_add(1, Ordering::Relaxed);
                let name = format!("vfs-test-{}-{n}", std::process::id());
                let m = SqliteMeta::memory(&name).await.unwrap();
                m.init(&format, false).await.unwrap();
                Holder::Sqlite {
                    name,
                    _keep_alive: Box::new(m),
                }
            }
        };
        Volume {
            holder,
            format,
            mem,
            store,
        }
    }

    /// A new client of this volume.
    pub async fn client(&self) -> Vfs {
        self.client_with(test_options()).await
    }

    /// A new client of this volume with options.
    pub async fn client_with(&self, opts: VfsOptions) -> Vfs {
        let meta = self.meta().await;
        Vfs::new(meta, self.store.clone(), self.format.clone(), opts)
            .await
            .unwrap()
    }

    /// A new session-less client of the engine, to inspect the metadata.
    pub async fn meta(&self) -> Arc<dyn MetaEngine> {
        match &self.holder {
            Holder::Model(m) => Arc::new(m.another_client()),
            Holder::Sqlite { name, .. } => Arc::new(SqliteMeta::memory(name).await.unwrap()),
        }
    }

    /// Keys of every block object in the store.
    pub async fn block_keys(&self) -> Vec<String> {
        self.mem
            .list_all("chunks/")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect()
    }
}

pub fn root() -> Context {
    Context::root()
}

/// Deterministic, position-dependent bytes: `pattern(seed, off, n)` is the same wherever
/// it is cut, so expected contents are easy to rebuild.
pub fn pattern(seed: u8, off: u64, n: usize) -> Vec<u8> {
    (0..n as u64)
        .map(|i| {
            let x = (off + i).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 29;
            (x as u8) ^ seed
        })
        .collect()
}

/// Creates `name` in the root directory with `O_RDWR` and returns (ino, fh).
pub async fn create(vfs: &Vfs, name: &str) -> (Ino, u64) {
    let (e, fh) = vfs
        .create(
            &root(),
            meta_api::ROOT_INO,
            name.as_bytes(),
            0o644,
            libc::O_RDWR,
        )
        .await
        .unwrap();
    (e.ino, fh)
}

/// Reads `n` bytes at `off` in pieces of at most 1 MiB.
pub async fn read_all(vfs: &Vfs, fh: u64, off: u64, n: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(n as usize);
    let mut at = off;
    while at < off + n {
        let want = (off + n - at).min(1 << 20) as usize;
        let got = vfs.read(&root(), fh, at, want).await.unwrap();
        if got.is_empty() {
            break;
        }
        at += got.len() as u64;
        out.extend_from_slice(&got);
    }
    out
}

/// Checks that every slice the engine has for `ino` points at blocks present in the store.
pub async fn assert_blocks_exist(vol: &Volume, ino: Ino) {
    let meta = vol.meta().await;
    let attr = meta.getattr(ino).await.unwrap();
    let chunks = attr.length.div_ceil(CHUNK);
    let bs = std::num::NonZeroU32::new(vol.format.block_bytes() as u32).unwrap();
    for index in 0..chunks as u32 {
        for s in meta.read_chunk(ino, index).await.unwrap() {
            if s.id == 0 {
                continue;
            }
            for b in chunkstore::slice_blocks(s.id, s.size, bs) {
                let key = b.to_key(vol.format.hash_prefix);
                let head = vol.mem.head(&key).await;
                assert!(
                    head.is_ok(),
                    "slice {s:?} of chunk {index} needs missing block {key}"
                );
            }
        }
    }
}

/// A store that can be told to fail puts, or to return blocks one byte short.
pub struct FaultyStore {
    pub inner: Arc<MemStore>,
    pub fail_puts: AtomicBool,
    pub short_reads: AtomicBool,
    pub fail_deletes: AtomicBool,
    pub puts: AtomicUsize,
    pub gets: AtomicUsize,
    /// Delay of every put, to keep uploads in flight.
    pub put_delay: Duration,
}

impl FaultyStore {
    pub fn new(inner: Arc<MemStore>) -> FaultyStore {
        FaultyStore {
            inner,
            fail_puts: AtomicBool::new(false),
            short_reads: AtomicBool::new(false),
            fail_deletes: AtomicBool::new(false),
            puts: AtomicUsize::new(0),
            gets: AtomicUsize::new(0),
            put_delay: Duration::ZERO,
        }
    }
}

#[async_trait]
impl ChunkStore for FaultyStore {
    async fn put(&self, key: &str, data: Bytes) -> chunkstore::Result<()> {
        if !self.put_delay.is_zero() {
            tokio::time::sleep(self.put_delay).await;
        }
        if self.fail_puts.load(Ordering::SeqCst) {
            return Err(StoreError::transient(format!(
                "injected failure of put {key}"
            )));
        }
        self.puts.fetch_add(1, Ordering::SeqCst);
        self.inner.put(key, data).await
    }

    async fn get_range(&self, key: &str, off: u64, len: Option<u64>) -> chunkstore::Result<Bytes> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        let data = self.inner.get_range(key, off, len).await?;
        if self.short_reads.load(Ordering::SeqCst) && !data.is_empty() {
            return Ok(data.slice(..data.len() - 1));
        }
        Ok(data)
    }

    async fn delete(&self, key: &str) -> chunkstore::Result<()> {
        if self.fail_deletes.load(Ordering::SeqCst) {
            return Err(StoreError::transient(format!(
                "injected failure of delete {key}"
            )));
        }
        self.inner.delete(key).await
    }

    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> chunkstore::Result<ListPage> {
        self.inner.list_page(prefix, start_after, limit).await
    }

    async fn head(&self, key: &str) -> chunkstore::Result<ObjectMeta> {
        self.inner.head(key).await
    }
}

/// Writes `n` bytes of `pattern(seed)` to a new file `name` and closes it.
pub async fn file_with(vfs: &Vfs, parent: Ino, name: &str, seed: u8, n: usize) -> Ino {
    let (e, fh) = vfs
        .create(&root(), parent, name.as_bytes(), 0o644, libc::O_RDWR)
        .await
        .unwrap();
    vfs.write(&root(), fh, 0, bytes::Bytes::from(pattern(seed, 0, n)))
        .await
        .unwrap();
    vfs.release(&root(), fh).await.unwrap();
    e.ino
}

/// Everything file `ino` holds, read through a new handle.
pub async fn contents(vfs: &Vfs, ino: Ino) -> Vec<u8> {
    let fh = vfs.open(&root(), ino, libc::O_RDONLY).await.unwrap();
    let n = vfs.getattr(&root(), ino).await.unwrap().length;
    let data = read_all(vfs, fh, 0, n).await;
    vfs.release(&root(), fh).await.unwrap();
    data
}
