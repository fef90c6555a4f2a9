//! The meta-api conformance suite and the reference-model property test against a real
//! FoundationDB cluster (feature `fdb`).
//!
//! Run with `FDB_CLUSTER_FILE=/etc/foundationdb/fdb.cluster cargo test -p meta-fdb
//! --features fdb --test fdb_conformance`. Every volume lives under a fresh key prefix that
//! is cleared when the test ends. Under the feature, a missing `FDB_CLUSTER_FILE` fails the
//! tests with a message saying so: a build that asks for FoundationDB must test it.

#![cfg(feature = "fdb")]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use meta_api::testkit::{Harness, TestVolume};
use meta_api::{Context, FileType, Format, MetaEngine, Result, SessionInfo, Slice, Timestamp};
use meta_fdb::{FdbKv, KvStore, KvTxn, TkvMeta, PREFIX_SEPARATOR};

/// The cluster file from `FDB_CLUSTER_FILE`; panics with instructions without it.
fn cluster_file() -> String {
    match std::env::var("FDB_CLUSTER_FILE") {
        Ok(f) if !f.is_empty() => f,
        _ => panic!(
            "FDB_CLUSTER_FILE is not set: meta-fdb's `fdb` feature tests need a FoundationDB \
             cluster. Point FDB_CLUSTER_FILE at its cluster file (for example \
             /etc/foundationdb/fdb.cluster), or build without `--features fdb` to test the \
             engine on the in-process store only."
        ),
    }
}

/// A key prefix no other test, run or process uses.
fn unique_prefix(tag: &str) -> Vec<u8> {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut p = format!(
        "tessera-test-{tag}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
    .into_bytes();
    p.push(PREFIX_SEPARATOR);
    p
}

fn session_info() -> SessionInfo {
    SessionInfo {
        version: "meta-fdb-test".into(),
        host_name: "localhost".into(),
        mount_point: "/test".into(),
        process_id: std::process::id(),
    }
}

/// The testkit harness over FoundationDB: each volume is a fresh prefix, all of them
/// cleared by [`FdbHarness::clean_up`].
struct FdbHarness {
    kv: FdbKv,
    prefixes: Mutex<Vec<Vec<u8>>>,
}

impl FdbHarness {
    fn new() -> FdbHarness {
        let kv = match FdbKv::open(Some(&cluster_file())) {
            Ok(kv) => kv,
            Err(e) => panic!("cannot open the FoundationDB cluster: {e}"),
        };
        FdbHarness {
            kv,
            prefixes: Mutex::new(Vec::new()),
        }
    }

    fn prefix(&self, tag: &str) -> Vec<u8> {
        let p = unique_prefix(tag);
        self.prefixes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(p.clone());
        p
    }

    /// Clears every key of every volume this harness made.
    async fn clean_up(&self) {
        let prefixes =
            std::mem::take(&mut *self.prefixes.lock().unwrap_or_else(|e| e.into_inner()));
        for p in prefixes {
            let end = meta_fdb::kv::prefix_end(&p);
            if let Err(e) = self.kv.clear_range(&p, &end).await {
                panic!("cannot clear test volume {p:?}: {e}");
            }
        }
    }
}

struct FdbVolume {
    kv: FdbKv,
    prefix: Vec<u8>,
}

#[async_trait]
impl Harness for FdbHarness {
    async fn new_volume(&self) -> Result<Box<dyn TestVolume>> {
        let prefix = self.prefix("tk");
        let m = TkvMeta::new(self.kv.clone(), &prefix);
        m.init(
            &Format::new("tk", "uuid-tk", "file", "/tmp/meta-fdb-test/"),
            false,
        )
        .await?;
        Ok(Box::new(FdbVolume {
            kv: self.kv.clone(),
            prefix,
        }))
    }

    async fn unformatted_client(&self) -> Result<Arc<dyn MetaEngine>> {
        Ok(Arc::new(TkvMeta::new(self.kv.clone(), &self.prefix("tku"))))
    }
}

#[async_trait]
impl TestVolume for FdbVolume {
    async fn connect(&self) -> Result<Arc<dyn MetaEngine>> {
        let m = TkvMeta::new(self.kv.clone(), &self.prefix);
        m.new_session(&session_info()).await?;
        Ok(Arc::new(m))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let h = FdbHarness::new();
    meta_api::testkit::run_all(&h).await;
    h.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model() {
    let h = FdbHarness::new();
    meta_api::testkit::run_model_test(&h, meta_api::testkit::DEFAULT_MODEL_CASES).await;
    h.clean_up().await;
}

/// The bytes on the cluster are JuiceFS's: the prefix, `0xFD`, then the TKV key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_on_the_cluster_are_juicefs_keys() {
    let h = FdbHarness::new();
    let vol = h.new_volume().await.unwrap();
    let m = vol.connect().await.unwrap();
    let ctx = Context::root();
    let f = m
        .mknod(&ctx, meta_api::ROOT_INO, b"f", FileType::Regular, 0o644, 0)
        .await
        .unwrap()
        .ino;
    let id = m.new_slice_id().await.unwrap();
    let s = Slice {
        pos: 0,
        id,
        size: 10,
        off: 0,
        len: 10,
    };
    m.write_slice(f, 0, s, Timestamp::now()).await.unwrap();
    let prefix = h.prefixes.lock().unwrap()[0].clone();
    let mut chunk = prefix.clone();
    chunk.push(b'A');
    chunk.extend_from_slice(&f.to_le_bytes());
    chunk.push(b'C');
    chunk.extend_from_slice(&0u32.to_be_bytes());
    let mut counter = prefix.clone();
    counter.extend_from_slice(b"CnextInode");
    let (chunk_value, next_inode) =
        h.kv.txn(|tx| {
            let (chunk, counter) = (&chunk, &counter);
            async move { Ok((tx.get(chunk).await?, tx.get(counter).await?)) }
        })
        .await
        .unwrap();
    assert_eq!(chunk_value, Some(s.encode().to_vec()));
    assert_eq!(
        next_inode,
        Some((2 + meta_api::INODE_BATCH as i64).to_le_bytes().to_vec())
    );
    h.clean_up().await;
}
