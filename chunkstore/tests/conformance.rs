//! Every backend and decorator in this crate runs the shared conformance suite.

use std::sync::Arc;

use chunkstore::{testkit, ChunkStore, Compressed, Compression, FsStore, MemStore, Prefixed};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mem_store() {
    testkit::run_all(&MemStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mem_store_cleans_up_after_itself() {
    let store = MemStore::new();
    testkit::run_all(&store).await;
    assert!(store.is_empty(), "{} objects left", store.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_store() {
    let dir = tempfile::tempdir().unwrap();
    testkit::run_all(&FsStore::new(dir.path().join("bucket"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_store_on_a_current_thread_runtime() {
    // FsStore must never block the runtime it runs on, even a single-threaded one.
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(dir.path()).await.unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    std::thread::spawn(move || rt.block_on(testkit::run_all(&store)))
        .join()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_lz4_over_mem() {
    testkit::run_all(&Compressed::new(MemStore::new(), Compression::Lz4)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_zstd_over_mem() {
    testkit::run_all(&Compressed::new(MemStore::new(), Compression::Zstd)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_none_over_mem() {
    testkit::run_all(&Compressed::new(MemStore::new(), Compression::None)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_lz4_over_fs() {
    let dir = tempfile::tempdir().unwrap();
    testkit::run_all(&Compressed::new(FsStore::new(dir.path()), Compression::Lz4)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixed_over_fs_and_compressed_on_top() {
    let dir = tempfile::tempdir().unwrap();
    let inner: Arc<dyn ChunkStore> = Arc::new(FsStore::new(dir.path()));
    let vol = Prefixed::new(inner.clone(), "myvol").unwrap();
    testkit::run_all(&Compressed::new(vol, Compression::Zstd)).await;
    // The suite cleaned up; nothing leaked outside the prefix either.
    let left = chunkstore::ChunkStoreExt::list_all(&inner, "")
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixed_over_mem_keeps_keys_under_the_prefix() {
    let mem = Arc::new(MemStore::new());
    let vol = Prefixed::new(mem.clone(), "vol/").unwrap();
    assert_eq!(vol.prefix(), "vol/");
    testkit::run_all(&vol).await;
    assert!(mem.is_empty());
    use chunkstore::ChunkStoreExt;
    vol.put("chunks/0/0/1_0_1", bytes::Bytes::from_static(b"x"))
        .await
        .unwrap();
    mem.put("other/x", bytes::Bytes::from_static(b"y"))
        .await
        .unwrap();
    let inner_keys: Vec<_> = mem
        .list_all("")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(inner_keys, vec!["other/x", "vol/chunks/0/0/1_0_1"]);
    let vol_keys: Vec<_> = vol
        .list_all("")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(vol_keys, vec!["chunks/0/0/1_0_1"]);
    assert_eq!(
        vol.head("chunks/0/0/1_0_1").await.unwrap().key,
        "chunks/0/0/1_0_1"
    );
    for bad in ["", "/", "a//b", "../x"] {
        assert!(matches!(
            Prefixed::new(MemStore::new(), bad),
            Err(chunkstore::StoreError::Invalid(_))
        ));
    }
}
