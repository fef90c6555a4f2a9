//! Writeback: staging, background upload, bounds, and recovery after a crash.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use cache::Cached;
use chunkstore::{ChunkStore, ChunkStoreExt, MemStore, StoreError};

use crate::support::{block, files_under, key, opts, Gate, PutMode, TestStore};

async fn open_wb(
    objects: &Arc<dyn ChunkStore>,
    dir: &Path,
    mem: u64,
    puts: PutMode,
    staging_bytes: u64,
) -> Cached<Arc<TestStore>> {
    let store = Arc::new(TestStore::new(Arc::clone(objects)).with_puts(puts));
    let o = opts(mem, &[dir])
        .writeback(true)
        .staging_bytes(staging_bytes)
        .upload_concurrency(2)
        .build()
        .unwrap();
    Cached::open(store, o).await.unwrap()
}

fn new_objects() -> Arc<dyn ChunkStore> {
    Arc::new(MemStore::new())
}

#[tokio::test]
async fn put_returns_before_upload_and_flush_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let objects = new_objects();
    let gate = Gate::closed();
    let c = Arc::new(
        open_wb(
            &objects,
            dir.path(),
            0,
            PutMode::Gated(gate.clone()),
            1 << 30,
        )
        .await,
    );
    let k = key(1, 50_000);

    c.put(&k, block(1, 50_000)).await.unwrap();
    assert!(matches!(
        objects.head(&k).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(files_under(&dir.path().join("staging")).len(), 1);
    let m = c.metrics();
    assert_eq!((m.staged_blocks, m.staged_bytes), (1, 50_000));

    // Readers see the staged block; so do head and list.
    assert_eq!(
        c.get_range(&k, 100, Some(50)).await.unwrap(),
        block(1, 50_000).slice(100..150)
    );
    assert_eq!(c.metrics().staging_hits, 1);
    assert_eq!(c.inner().gets(), 0);
    assert_eq!(c.head(&k).await.unwrap().size, 50_000);
    let listed = c.list_all("chunks/").await.unwrap();
    assert_eq!(
        listed.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
        [k.as_str()]
    );

    let c2 = Arc::clone(&c);
    let flush = tokio::spawn(async move { c2.flush().await });
    while c.inner().puts_started() == 0 {
        tokio::task::yield_now().await;
    }
    assert!(!flush.is_finished());
    gate.open();
    flush.await.unwrap();
    assert_eq!(objects.get(&k).await.unwrap(), block(1, 50_000));
    let m = c.metrics();
    assert_eq!((m.staged_blocks, m.staged_bytes, m.uploads), (0, 0, 1));
    // The staged file became the cache entry.
    assert!(files_under(&dir.path().join("staging")).is_empty());
    assert!(c.disk_cache().unwrap().path_of(&k).unwrap().exists());
    assert_eq!(c.get(&k).await.unwrap(), block(1, 50_000));
    assert_eq!(c.inner().gets(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staging_is_bounded_and_writers_wait() {
    let dir = tempfile::tempdir().unwrap();
    let objects = new_objects();
    let gate = Gate::closed();
    let c = Arc::new(
        open_wb(
            &objects,
            dir.path(),
            1 << 20,
            PutMode::Gated(gate.clone()),
            15_000,
        )
        .await,
    );

    c.put(&key(1, 10_000), block(1, 10_000)).await.unwrap();
    let c2 = Arc::clone(&c);
    let second = tokio::spawn(async move { c2.put(&key(2, 10_000), block(2, 10_000)).await });
    while c.metrics().writers_waiting == 0 {
        tokio::task::yield_now().await;
    }
    assert!(!second.is_finished());
    assert_eq!(c.metrics().staged_blocks, 1);
    gate.open();
    second.await.unwrap().unwrap();
    c.flush().await;
    for i in [1, 2] {
        assert_eq!(
            objects.get(&key(i, 10_000)).await.unwrap(),
            block(i, 10_000)
        );
    }
    assert_eq!(c.metrics().writers_waiting, 0);
}

/// Writes blocks in writeback mode over a store that never takes them, "crashes" (drops the
/// cache without flushing), and reopens over a working store.
async fn crash_and_recover(broken: PutMode) {
    let dir = tempfile::tempdir().unwrap();
    let objects = new_objects();
    let n = 6u64;
    {
        let c = open_wb(&objects, dir.path(), 1 << 20, broken, 1 << 30).await;
        for i in 0..n {
            c.put(&key(i, 20_000 + i as usize), block(i, 20_000 + i as usize))
                .await
                .unwrap();
        }
        assert_eq!(c.metrics().staged_blocks, n);
    }
    assert!(objects.list_all("").await.unwrap().is_empty());
    assert_eq!(files_under(&dir.path().join("staging")).len(), n as usize);

    // Restart with uploads held back: staged blocks are readable, and not evictable.
    let gate = Gate::closed();
    let c = open_wb(
        &objects,
        dir.path(),
        0,
        PutMode::Gated(gate.clone()),
        1 << 30,
    )
    .await;
    assert_eq!(c.metrics().staged_blocks, n);
    assert_eq!(c.get(&key(0, 20_000)).await.unwrap(), block(0, 20_000));
    assert_eq!(c.metrics().staging_hits, 1);
    gate.open();
    c.flush().await;
    assert_eq!(c.metrics().uploads, n);
    drop(c);

    // A fresh view of the store has every block.
    let fresh = Cached::open(Arc::clone(&objects), opts(0, &[]).build().unwrap())
        .await
        .unwrap();
    for i in 0..n {
        let len = 20_000 + i as usize;
        assert_eq!(fresh.get(&key(i, len)).await.unwrap(), block(i, len));
    }
    assert!(files_under(&dir.path().join("staging")).is_empty());
}

#[tokio::test]
async fn staged_blocks_are_uploaded_after_a_crash_while_uploads_failed() {
    crash_and_recover(PutMode::Fail).await;
}

#[tokio::test]
async fn staged_blocks_are_uploaded_after_a_crash_while_uploads_hung() {
    crash_and_recover(PutMode::Hang).await;
}

#[tokio::test]
async fn a_block_deleted_during_its_upload_does_not_stay_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let objects = new_objects();
    let gate = Gate::closed();
    let c = open_wb(
        &objects,
        dir.path(),
        1 << 20,
        PutMode::Gated(gate.clone()),
        1 << 30,
    )
    .await;
    let k = key(3, 1000);
    c.put(&k, block(3, 1000)).await.unwrap();
    while c.inner().puts_started() == 0 {
        tokio::task::yield_now().await;
    }
    c.delete(&k).await.unwrap();
    assert!(matches!(c.head(&k).await, Err(StoreError::NotFound(_))));
    gate.open();
    c.flush().await;
    assert!(matches!(
        objects.head(&k).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(files_under(&dir.path().join("staging")).is_empty());
    assert!(matches!(c.get(&k).await, Err(StoreError::NotFound(_))));
}

#[tokio::test]
async fn a_block_deleted_before_its_upload_is_never_uploaded() {
    let dir = tempfile::tempdir().unwrap();
    let objects = new_objects();
    {
        let c = open_wb(&objects, dir.path(), 0, PutMode::Hang, 1 << 30).await;
        c.put(&key(1, 100), block(1, 100)).await.unwrap();
        c.put(&key(2, 100), block(2, 100)).await.unwrap();
    }
    // After the restart, delete one of the two before uploads may proceed.
    let gate = Gate::closed();
    let c = open_wb(
        &objects,
        dir.path(),
        0,
        PutMode::Gated(gate.clone()),
        1 << 30,
    )
    .await;
    c.delete(&key(2, 100)).await.unwrap();
    gate.open();
    c.flush().await;
    assert_eq!(objects.get(&key(1, 100)).await.unwrap(), block(1, 100));
    assert!(matches!(
        objects.head(&key(2, 100)).await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn non_block_keys_are_written_through() {
    let dir = tempfile::tempdir().unwrap();
    let objects = new_objects();
    let c = open_wb(&objects, dir.path(), 0, PutMode::Pass, 1 << 30).await;
    c.put("vol/juicefs_uuid", Bytes::from_static(b"u"))
        .await
        .unwrap();
    assert_eq!(objects.get("vol/juicefs_uuid").await.unwrap(), &b"u"[..]);
    assert_eq!(c.metrics().staged_blocks, 0);
}

#[tokio::test]
async fn list_merges_staged_blocks_in_key_order_across_pages() {
    let dir = tempfile::tempdir().unwrap();
    let objects = new_objects();
    for i in [1u64, 3, 5] {
        objects.put(&key(i, 10), block(i, 10)).await.unwrap();
    }
    let c = open_wb(&objects, dir.path(), 0, PutMode::Hang, 1 << 30).await;
    for i in [2u64, 4, 6] {
        c.put(&key(i, 10), block(i, 10)).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = c.list_page("chunks/", after.as_deref(), 2).await.unwrap();
        assert!(page.objects.len() <= 2);
        seen.extend(page.objects.iter().map(|o| o.key.clone()));
        after = page.objects.last().map(|o| o.key.clone());
        if !page.truncated {
            break;
        }
    }
    let want: Vec<_> = (1..=6).map(|i| key(i, 10)).collect();
    assert_eq!(seen, want);
}

/// The child half of the SIGKILL test: stage blocks over a store that never takes them,
/// say so, and wait to be killed.
async fn killed_child(dir: &Path, objects_dir: &Path) {
    let objects: Arc<dyn ChunkStore> = Arc::new(chunkstore::FsStore::new(objects_dir));
    let c = open_wb(&objects, dir, 1 << 20, PutMode::Hang, 1 << 30).await;
    for i in 0..4 {
        c.put(&key(i, 70_000), block(i, 70_000)).await.unwrap();
    }
    println!("STAGED");
    std::future::pending::<()>().await;
}

#[tokio::test]
async fn staged_blocks_survive_sigkill_of_the_writer() {
    use std::io::BufRead;

    const CHILD_ENV: &str = "CACHE_TEST_SIGKILL_CHILD";
    if let Ok(paths) = std::env::var(CHILD_ENV) {
        let (cache_dir, objects_dir) = paths.split_once('\n').unwrap();
        killed_child(Path::new(cache_dir), Path::new(objects_dir)).await;
        return;
    }

    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    let objects_dir = dir.path().join("objects");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "writeback::staged_blocks_survive_sigkill_of_the_writer",
            "--nocapture",
        ])
        .env(
            CHILD_ENV,
            format!("{}\n{}", cache_dir.display(), objects_dir.display()),
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let staged = tokio::task::spawn_blocking(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .any(|l| l.map(|l| l.contains("STAGED")).unwrap_or(false))
    })
    .await
    .unwrap();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(staged, "child did not stage its blocks");

    let objects: Arc<dyn ChunkStore> =
        Arc::new(chunkstore::FsStore::open(&objects_dir).await.unwrap());
    assert!(objects.list_all("chunks/").await.unwrap().is_empty());
    let c = open_wb(&objects, &cache_dir, 0, PutMode::Pass, 1 << 30).await;
    c.flush().await;
    drop(c);
    for i in 0..4 {
        assert_eq!(
            objects.get(&key(i, 70_000)).await.unwrap(),
            block(i, 70_000)
        );
    }
}

#[tokio::test]
async fn writes_go_straight_through_when_staging_is_impossible() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cache");
    let objects = new_objects();
    let c = open_wb(&objects, &root, 0, PutMode::Pass, 1 << 30).await;
    // The staging disk fails: the write is uploaded before `put` returns.
    std::fs::remove_dir_all(&root).unwrap();
    std::fs::write(&root, b"not a directory").unwrap();
    c.put(&key(1, 500), block(1, 500)).await.unwrap();
    assert_eq!(objects.get(&key(1, 500)).await.unwrap(), block(1, 500));
    let m = c.metrics();
    assert_eq!((m.staging_bypassed, m.staged_blocks), (1, 0));
    assert_eq!(c.get(&key(1, 500)).await.unwrap(), block(1, 500));

    // So does a write to a disk below its free-space floor.
    let dir2 = tempfile::tempdir().unwrap();
    let store = Arc::new(TestStore::new(Arc::clone(&objects)));
    let o = opts(0, &[dir2.path()])
        .writeback(true)
        .free_space_ratio(0.9999999)
        .build()
        .unwrap();
    let c = Cached::open(store, o).await.unwrap();
    c.put(&key(2, 500), block(2, 500)).await.unwrap();
    assert_eq!(objects.get(&key(2, 500)).await.unwrap(), block(2, 500));
    assert_eq!(c.metrics().staging_bypassed, 1);
    assert!(files_under(&dir2.path().join("staging")).is_empty());
}

/// With the store down and staging full, a write does not wait without end: after
/// `staging_wait` it tries the store itself and fails, saying why.
#[tokio::test]
async fn a_full_staging_with_the_store_down_fails_writes_after_a_bound() {
    let dir = tempfile::tempdir().unwrap();
    let objects = new_objects();
    let store = Arc::new(TestStore::new(Arc::clone(&objects)).with_puts(PutMode::Fail));
    let o = opts(0, &[dir.path()])
        .writeback(true)
        .staging_bytes(60_000)
        .staging_wait(std::time::Duration::from_millis(200))
        .upload_concurrency(1)
        .build()
        .unwrap();
    let c = Cached::open(store, o).await.unwrap();
    // The first block is staged (acknowledged); its upload keeps failing.
    c.put(&key(1, 50_000), block(1, 50_000)).await.unwrap();
    let started = std::time::Instant::now();
    let e = c.put(&key(2, 50_000), block(2, 50_000)).await.unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(e.to_string().contains("staging is full"), "{e}");
    // The acknowledged block is still staged, and still readable.
    assert_eq!(c.get(&key(1, 50_000)).await.unwrap(), block(1, 50_000));
    assert_eq!(c.metrics().staged_blocks, 1);
}
