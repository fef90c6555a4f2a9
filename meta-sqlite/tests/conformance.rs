//! The shared MetaEngine conformance suite and model-based property test, run against
//! in-memory and file-backed SQLite volumes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use meta_api::testkit::{Conformance, Harness, TestVolume, DEFAULT_MODEL_CASES};
use meta_api::{Format, MetaEngine, Result, SessionInfo};
use meta_sqlite::SqliteMeta;

/// Volumes made by this process, for unique names.
static VOLUMES: AtomicU64 = AtomicU64::new(0);

fn next_volume() -> u64 {
    VOLUMES.fetch_add(1, Ordering::Relaxed)
}

fn format(n: u64) -> Format {
    Format::new(
        &format!("vol{n}"),
        &format!("5e1f0c2a-0000-4000-8000-{n:012x}"),
        "file",
        "/tmp/meta-sqlite-testkit-bucket/",
    )
}

async fn client(
    open: impl std::future::Future<Output = Result<SqliteMeta>>,
) -> Result<Arc<dyn MetaEngine>> {
    let m = open.await?;
    m.new_session(&SessionInfo {
        version: "meta-sqlite-tests".into(),
        host_name: "localhost".into(),
        mount_point: "conformance".into(),
        process_id: std::process::id(),
    })
    .await?;
    Ok(Arc::new(m))
}

/// In-memory volumes (`file:{name}?mode=memory&cache=shared`).
struct MemoryHarness;

struct MemoryVolume {
    name: String,
    /// Keeps the shared in-memory database alive between clients.
    _holder: SqliteMeta,
}

#[async_trait]
impl TestVolume for MemoryVolume {
    async fn connect(&self) -> Result<Arc<dyn MetaEngine>> {
        client(SqliteMeta::memory(&self.name)).await
    }
}

fn memory_name(n: u64) -> String {
    format!("conformance-{}-{n}", std::process::id())
}

#[async_trait]
impl Harness for MemoryHarness {
    async fn new_volume(&self) -> Result<Box<dyn TestVolume>> {
        let n = next_volume();
        let name = memory_name(n);
        let holder = SqliteMeta::memory(&name).await?;
        holder.init(&format(n), false).await?;
        Ok(Box::new(MemoryVolume {
            name,
            _holder: holder,
        }))
    }

    async fn unformatted_client(&self) -> Result<Arc<dyn MetaEngine>> {
        Ok(Arc::new(
            SqliteMeta::memory(&memory_name(next_volume())).await?,
        ))
    }
}

/// Volumes in database files under a temporary directory.
struct FileHarness {
    dir: tempfile::TempDir,
}

impl FileHarness {
    fn new() -> FileHarness {
        FileHarness {
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    fn url(&self, n: u64) -> String {
        format!("sqlite3://{}/vol{n}.db", self.dir.path().display())
    }
}

struct FileVolume {
    url: String,
}

#[async_trait]
impl TestVolume for FileVolume {
    async fn connect(&self) -> Result<Arc<dyn MetaEngine>> {
        client(SqliteMeta::open(&self.url)).await
    }
}

#[async_trait]
impl Harness for FileHarness {
    async fn new_volume(&self) -> Result<Box<dyn TestVolume>> {
        let n = next_volume();
        let url = self.url(n);
        SqliteMeta::open(&url)
            .await?
            .init(&format(n), false)
            .await?;
        Ok(Box::new(FileVolume { url }))
    }

    async fn unformatted_client(&self) -> Result<Arc<dyn MetaEngine>> {
        Ok(Arc::new(SqliteMeta::open(&self.url(next_volume())).await?))
    }
}

/// One test per conformance case on each kind of volume, and the property test on both.
fn main() {
    Conformance::new()
        .cases("memory", || Box::new(MemoryHarness))
        .cases("file", || Box::new(FileHarness::new()))
        .model(
            "memory::model",
            || Box::new(MemoryHarness),
            DEFAULT_MODEL_CASES,
        )
        .model(
            "file::model",
            || Box::new(FileHarness::new()),
            DEFAULT_MODEL_CASES / 4,
        )
        .run()
}
