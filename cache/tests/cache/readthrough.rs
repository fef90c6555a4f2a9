//! Read-through caching, singleflight, integrity and failure rules.

use std::sync::Arc;

use bytes::Bytes;
use cache::Cached;
use chunkstore::{ChunkStore, ChunkStoreExt, StoreError};

use crate::support::{block, cached, files_under, key, opts, Gate, TestStore};

const LEN: usize = 100_000;

#[tokio::test]
async fn miss_fetches_once_then_memory_serves() {
    let (objects, c) = cached(opts(1 << 20, &[])).await;
    let k = key(1, LEN);
    objects.put(&k, block(1, LEN)).await.unwrap();

    assert_eq!(c.get(&k).await.unwrap(), block(1, LEN));
    assert_eq!(c.get(&k).await.unwrap(), block(1, LEN));
    assert_eq!(
        c.get_range(&k, 10, Some(5)).await.unwrap(),
        block(1, LEN).slice(10..15)
    );
    assert_eq!(c.inner().gets_of(&k), 1);
    let m = c.metrics();
    assert_eq!((m.misses, m.mem_hits, m.fetches), (1, 2, 1));
    assert_eq!(m.bytes_from_store, LEN as u64);
    assert_eq!(m.bytes_from_cache, LEN as u64 + 5);
    assert_eq!(m.mem_bytes, LEN as u64);
}

#[tokio::test]
async fn ranged_read_caches_the_whole_block() {
    let dir = tempfile::tempdir().unwrap();
    let (objects, c) = cached(opts(0, &[dir.path()])).await;
    let k = key(2, LEN);
    let data = block(2, LEN);
    objects.put(&k, data.clone()).await.unwrap();

    assert_eq!(
        c.get_range(&k, 40_000, Some(100)).await.unwrap(),
        data.slice(40_000..40_100)
    );
    c.idle().await;
    // Other ranges, including one running past the end, come from the disk cache.
    assert_eq!(
        c.get_range(&k, 0, Some(10)).await.unwrap(),
        data.slice(0..10)
    );
    assert_eq!(
        c.get_range(&k, 99_990, Some(100)).await.unwrap(),
        data.slice(99_990..)
    );
    assert!(c.get_range(&k, 200_000, None).await.unwrap().is_empty());
    assert_eq!(c.inner().gets_of(&k), 1);
    assert_eq!(c.metrics().disk_hits, 3);
}

#[tokio::test]
async fn non_block_keys_pass_through_uncached() {
    let dir = tempfile::tempdir().unwrap();
    let (_, c) = cached(opts(1 << 20, &[dir.path()])).await;
    c.put("vol/juicefs_uuid", Bytes::from_static(b"uuid"))
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(c.get("vol/juicefs_uuid").await.unwrap(), &b"uuid"[..]);
    }
    assert_eq!(
        c.get_range("vol/juicefs_uuid", 1, Some(2)).await.unwrap(),
        &b"ui"[..]
    );
    assert_eq!(c.inner().gets_of("vol/juicefs_uuid"), 4);
    c.idle().await;
    assert!(c.mem_cache().is_empty());
    assert!(c.disk_cache().unwrap().is_empty());
    assert_eq!(c.metrics().hits() + c.metrics().misses, 0);
}

#[tokio::test(flavor = "current_thread")]
async fn concurrent_readers_of_a_cold_block_share_one_fetch() {
    let dir = tempfile::tempdir().unwrap();
    let (objects, c) = cached(opts(1 << 20, &[dir.path()])).await;
    let k = key(3, LEN);
    objects.put(&k, block(3, LEN)).await.unwrap();
    let gate = Gate::closed();
    c.inner().gate_gets(gate.clone());

    let c = Arc::new(c);
    let readers: Vec<_> = (0..16u64)
        .map(|i| {
            let (c, k) = (Arc::clone(&c), k.clone());
            tokio::spawn(async move { c.get_range(&k, i * 100, Some(100)).await })
        })
        .collect();
    // On this single-threaded runtime every reader runs until it blocks: one in the store,
    // the rest waiting for its fetch.
    while c.inner().gets() == 0 {
        tokio::task::yield_now().await;
    }
    tokio::task::yield_now().await;
    gate.open();
    for (i, r) in readers.into_iter().enumerate() {
        let off = i * 100;
        assert_eq!(
            r.await.unwrap().unwrap(),
            block(3, LEN).slice(off..off + 100)
        );
    }
    assert_eq!(c.inner().gets_of(&k), 1);
    let m = c.metrics();
    assert_eq!((m.fetches, m.misses, m.hits()), (1, 16, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_readers_share_one_fetch_on_many_threads() {
    let (objects, c) = cached(opts(1 << 20, &[])).await;
    let c = Arc::new(c);
    for round in 0..20u64 {
        let k = key(100 + round, 5000);
        objects.put(&k, block(round, 5000)).await.unwrap();
        let gate = Gate::closed();
        c.inner().gate_gets(gate.clone());
        let readers: Vec<_> = (0..8)
            .map(|_| {
                let (c, k) = (Arc::clone(&c), k.clone());
                tokio::spawn(async move { c.get(&k).await })
            })
            .collect();
        while c.inner().gets_of(&k) == 0 {
            tokio::task::yield_now().await;
        }
        gate.open();
        for r in readers {
            assert_eq!(r.await.unwrap().unwrap(), block(round, 5000));
        }
        assert_eq!(c.inner().gets_of(&k), 1, "round {round}");
    }
}

#[tokio::test]
async fn store_errors_reach_every_reader_and_are_not_cached() {
    let (objects, c) = cached(opts(1 << 20, &[])).await;
    let k = key(4, 10);
    assert!(matches!(c.get(&k).await, Err(StoreError::NotFound(_))));
    objects.put(&k, block(4, 10)).await.unwrap();
    assert_eq!(c.get(&k).await.unwrap(), block(4, 10));

    // An object whose length contradicts its key is never returned nor cached.
    let bad = key(5, 10);
    objects.put(&bad, block(5, 9)).await.unwrap();
    assert!(matches!(c.get(&bad).await, Err(StoreError::Corrupt(_))));
    assert!(!c.mem_cache().contains(&bad));
    assert_eq!(c.metrics().hits(), 0);
}

/// Reads block `k` through a cache without memory, so the disk copy is what is tested.
async fn disk_only(dir: &std::path::Path) -> (Arc<dyn ChunkStore>, Cached<Arc<TestStore>>) {
    cached(opts(0, &[dir])).await
}

#[tokio::test]
async fn corrupted_cache_file_is_dropped_refetched_and_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let (objects, c) = disk_only(dir.path()).await;
    let k = key(6, LEN);
    objects.put(&k, block(6, LEN)).await.unwrap();
    c.get(&k).await.unwrap();
    c.idle().await;
    let path = c.disk_cache().unwrap().path_of(&k).unwrap();
    let good = std::fs::read(&path).unwrap();

    for pos in [0, LEN / 2, LEN - 1, good.len() - 3] {
        let mut bad = good.clone();
        bad[pos] ^= 0x10;
        std::fs::write(&path, &bad).unwrap();
        let fetched = c.inner().gets_of(&k);
        assert_eq!(c.get(&k).await.unwrap(), block(6, LEN), "flip at {pos}");
        assert_eq!(c.inner().gets_of(&k), fetched + 1);
        c.idle().await;
        assert_eq!(
            std::fs::read(&path).unwrap(),
            good,
            "file replaced after flip at {pos}"
        );
    }
    assert_eq!(c.metrics().corrupt_dropped, 4);
    // The replacement serves hits again.
    let fetched = c.inner().gets_of(&k);
    assert_eq!(
        c.get_range(&k, 5, Some(5)).await.unwrap(),
        block(6, LEN).slice(5..10)
    );
    assert_eq!(c.inner().gets_of(&k), fetched);
}

#[tokio::test]
async fn truncated_and_deleted_cache_files_are_refetched() {
    let dir = tempfile::tempdir().unwrap();
    let (objects, c) = disk_only(dir.path()).await;
    let k = key(7, LEN);
    objects.put(&k, block(7, LEN)).await.unwrap();
    c.get(&k).await.unwrap();
    c.idle().await;
    let path = c.disk_cache().unwrap().path_of(&k).unwrap();
    let good = std::fs::read(&path).unwrap();

    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    assert_eq!(
        c.get_range(&k, 1, Some(3)).await.unwrap(),
        block(7, LEN).slice(1..4)
    );
    assert_eq!(c.inner().gets_of(&k), 2);
    c.idle().await;
    assert_eq!(std::fs::read(&path).unwrap(), good);

    std::fs::remove_file(&path).unwrap();
    assert_eq!(c.get(&k).await.unwrap(), block(7, LEN));
    assert_eq!(c.inner().gets_of(&k), 3);
    c.idle().await;
    assert_eq!(std::fs::read(&path).unwrap(), good);
}

#[tokio::test]
async fn memory_stays_within_its_byte_limit() {
    let (objects, c) = cached(opts(3 * 1000, &[])).await;
    for i in 0..10 {
        objects.put(&key(i, 1000), block(i, 1000)).await.unwrap();
        assert_eq!(c.get(&key(i, 1000)).await.unwrap(), block(i, 1000));
        assert!(c.metrics().mem_bytes <= 3000);
    }
    let m = c.metrics();
    assert_eq!((m.mem_bytes, m.mem_evictions), (3000, 7));
    // The most recent blocks are the ones kept.
    c.get(&key(9, 1000)).await.unwrap();
    assert_eq!(c.inner().gets_of(&key(9, 1000)), 1);
    c.get(&key(0, 1000)).await.unwrap();
    assert_eq!(c.inner().gets_of(&key(0, 1000)), 2);
}

#[tokio::test]
async fn disk_stays_within_its_byte_limit() {
    let dir = tempfile::tempdir().unwrap();
    // Room for three 10 000-byte blocks with their checksums, not four.
    let (objects, c) = cached(opts(0, &[dir.path()]).disk_bytes(3 * 10_100)).await;
    for i in 0..10 {
        objects
            .put(&key(i, 10_000), block(i, 10_000))
            .await
            .unwrap();
        c.get(&key(i, 10_000)).await.unwrap();
        c.idle().await;
        assert!(c.metrics().disk_bytes <= 3 * 10_100);
    }
    assert_eq!(files_under(&dir.path().join("raw")).len(), 3);
    let m = c.metrics();
    assert_eq!(m.disk_evictions, 7);
    c.get(&key(9, 10_000)).await.unwrap();
    assert_eq!(c.inner().gets_of(&key(9, 10_000)), 1);
    assert_eq!(c.metrics().disk_hits, 1);
}

#[tokio::test]
async fn reopened_cache_hits_without_fetching() {
    let dir = tempfile::tempdir().unwrap();
    let objects: Arc<dyn ChunkStore> = Arc::new(chunkstore::MemStore::new());
    {
        let c = Cached::open(
            Arc::new(TestStore::new(Arc::clone(&objects))),
            opts(1 << 20, &[dir.path()]).build().unwrap(),
        )
        .await
        .unwrap();
        for i in 0..5 {
            objects.put(&key(i, 3000), block(i, 3000)).await.unwrap();
            c.get(&key(i, 3000)).await.unwrap();
        }
        c.idle().await;
    }
    let c = Cached::open(
        Arc::new(TestStore::new(Arc::clone(&objects))),
        opts(1 << 20, &[dir.path()]).build().unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(c.disk_cache().unwrap().len(), 5);
    for i in 0..5 {
        assert_eq!(c.get(&key(i, 3000)).await.unwrap(), block(i, 3000));
    }
    assert_eq!(c.inner().gets(), 0);
    assert_eq!(c.metrics().disk_hits, 5);
}

#[tokio::test]
async fn several_directories_share_the_blocks() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let (objects, c) = cached(opts(0, &[a.path(), b.path()])).await;
    for i in 0..30 {
        objects.put(&key(i, 100), block(i, 100)).await.unwrap();
        c.get(&key(i, 100)).await.unwrap();
    }
    c.idle().await;
    let (na, nb) = (
        files_under(&a.path().join("raw")).len(),
        files_under(&b.path().join("raw")).len(),
    );
    assert_eq!(na + nb, 30);
    assert!(na > 0 && nb > 0, "{na} {nb}");
    for i in 0..30 {
        assert_eq!(c.get(&key(i, 100)).await.unwrap(), block(i, 100));
    }
    assert_eq!(c.inner().gets(), 30);
}

#[tokio::test]
async fn a_full_cache_disk_steps_aside() {
    let dir = tempfile::tempdir().unwrap();
    // Demanding that 99.99999% of the disk stay free makes it "full".
    let (objects, c) = cached(opts(0, &[dir.path()]).free_space_ratio(0.9999999)).await;
    let k = key(8, 1000);
    objects.put(&k, block(8, 1000)).await.unwrap();
    for n in 1..=3 {
        assert_eq!(c.get(&k).await.unwrap(), block(8, 1000));
        c.idle().await;
        assert_eq!(c.inner().gets_of(&k), n);
    }
    assert!(files_under(&dir.path().join("raw")).is_empty());
    c.put(&key(9, 10), block(9, 10)).await.unwrap();
    assert_eq!(objects.get(&key(9, 10)).await.unwrap(), block(9, 10));
}

#[tokio::test]
async fn a_failing_cache_disk_steps_aside() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cache");
    let (objects, c) = cached(opts(0, &[&root])).await;
    let k = key(10, 1000);
    objects.put(&k, block(10, 1000)).await.unwrap();
    c.get(&k).await.unwrap();
    c.idle().await;
    // The directory becomes a file: every cache operation under it fails.
    std::fs::remove_dir_all(&root).unwrap();
    std::fs::write(&root, b"not a directory").unwrap();
    for _ in 0..3 {
        assert_eq!(c.get(&k).await.unwrap(), block(10, 1000));
        c.idle().await;
    }
    let k2 = key(11, 1000);
    c.put(&k2, block(11, 1000)).await.unwrap();
    c.idle().await;
    assert_eq!(c.get(&k2).await.unwrap(), block(11, 1000));
    assert!(c.metrics().disk_errors >= 1);
}

#[tokio::test]
async fn a_cache_directory_deleted_while_running_is_recreated() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cache");
    let (objects, c) = cached(opts(0, &[&root])).await;
    let (k1, k2) = (key(12, 1000), key(13, 1000));
    objects.put(&k1, block(12, 1000)).await.unwrap();
    objects.put(&k2, block(13, 1000)).await.unwrap();
    c.get(&k1).await.unwrap();
    c.idle().await;
    std::fs::remove_dir_all(&root).unwrap();

    assert_eq!(c.get(&k1).await.unwrap(), block(12, 1000));
    assert_eq!(c.get(&k2).await.unwrap(), block(13, 1000));
    c.idle().await;
    assert_eq!(files_under(&root.join("raw")).len(), 2);
    let fetched = c.inner().gets();
    assert_eq!(c.get(&k2).await.unwrap(), block(13, 1000));
    assert_eq!(c.inner().gets(), fetched);
}

#[tokio::test]
async fn prefetch_fills_the_cache_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let (objects, c) = cached(opts(1 << 20, &[dir.path()]).prefetch_concurrency(2)).await;
    let keys: Vec<_> = (0..4).map(|i| key(20 + i, 5000)).collect();
    for (i, k) in keys.iter().enumerate() {
        objects.put(k, block(i as u64, 5000)).await.unwrap();
        c.prefetch(k);
    }
    c.prefetch("vol/not-a-block");
    c.idle().await;
    assert_eq!(c.metrics().prefetches, 4);
    assert_eq!(c.metrics().misses, 0);
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(c.get(k).await.unwrap(), block(i as u64, 5000));
        assert_eq!(c.inner().gets_of(k), 1);
        // A second prefetch of a cached block does nothing.
        c.prefetch(k);
    }
    c.idle().await;
    let m = c.metrics();
    assert_eq!((m.mem_hits, m.fetches, m.prefetches), (4, 4, 4));
    assert_eq!(c.disk_cache().unwrap().len(), 4);
}

#[tokio::test]
async fn prefetch_off_does_nothing() {
    let (objects, c) = cached(opts(1 << 20, &[]).prefetch_concurrency(0)).await;
    let k = key(30, 10);
    objects.put(&k, block(30, 10)).await.unwrap();
    c.prefetch(&k);
    c.idle().await;
    assert_eq!(c.inner().gets(), 0);
}

#[tokio::test]
async fn written_blocks_are_cached_and_deleted_blocks_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (objects, c) = cached(opts(1 << 20, &[dir.path()])).await;
    let k = key(40, 2000);
    c.put(&k, block(40, 2000)).await.unwrap();
    assert_eq!(objects.get(&k).await.unwrap(), block(40, 2000));
    c.idle().await;
    assert_eq!(c.get(&k).await.unwrap(), block(40, 2000));
    assert_eq!(c.inner().gets(), 0);
    let path = c.disk_cache().unwrap().path_of(&k).unwrap();
    assert!(path.exists());

    c.delete(&k).await.unwrap();
    assert!(!path.exists());
    assert!(!c.mem_cache().contains(&k));
    assert!(matches!(c.get(&k).await, Err(StoreError::NotFound(_))));
    // A put whose length contradicts its key is passed on, not cached.
    let odd = key(41, 10);
    c.put(&odd, block(41, 3)).await.unwrap();
    assert!(!c.mem_cache().contains(&odd));
}
