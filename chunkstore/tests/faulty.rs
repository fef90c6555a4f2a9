//! `Faulty<S>`: each fault does what it says, deterministically, and can be changed while
//! calls run.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chunkstore::testkit::{self, pattern};
use chunkstore::{ChunkStore, ChunkStoreExt, FaultConfig, Faulty, MemStore, StoreError};
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_faults_it_is_the_inner_store() {
    let store = Faulty::new(MemStore::new(), 1);
    testkit::run_all(&store).await;
    let s = store.stats();
    assert!(s.calls > 1000);
    assert_eq!(
        (
            s.injected_errors,
            s.lost_replies,
            s.truncated,
            s.corrupted,
            s.refused_down
        ),
        (0, 0, 0, 0, 0)
    );
}

#[tokio::test]
async fn error_rate_fails_that_fraction_before_the_store() {
    let store = Faulty::with_config(MemStore::new(), 7, FaultConfig::new().error_rate(0.3));
    let mut failed = 0;
    for i in 0..1000 {
        match store.put(&format!("k{i}"), Bytes::from_static(b"v")).await {
            Ok(()) => {}
            Err(e) => {
                assert!(matches!(e, StoreError::Transient { .. }), "{e:?}");
                failed += 1;
            }
        }
    }
    assert!((230..370).contains(&failed), "{failed} of 1000 at 30%");
    assert_eq!(store.stats().injected_errors, failed);
    assert_eq!(
        store.inner().len() as u64,
        1000 - failed,
        "failed puts never landed"
    );
}

#[tokio::test]
async fn lost_replies_land_but_report_failure() {
    let store = Faulty::with_config(MemStore::new(), 7, FaultConfig::new().lost_reply_rate(1.0));
    let err = store.put("k", Bytes::from_static(b"v")).await.unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(
        store.inner().get("k").await.unwrap(),
        &b"v"[..],
        "the put landed"
    );
    assert!(store.delete("k").await.is_err());
    assert!(store.inner().is_empty(), "the delete happened");
    // Failures of the inner store are passed on as they are, not counted as lost replies.
    assert!(matches!(store.get("k").await, Err(StoreError::NotFound(_))));
    assert_eq!(store.stats().lost_replies, 2);
}

#[tokio::test]
async fn same_seed_same_faults() {
    let run = |seed: u64| async move {
        let store = Faulty::with_config(MemStore::new(), seed, FaultConfig::new().error_rate(0.5));
        let mut outcome = Vec::new();
        for i in 0..64 {
            outcome.push(store.put(&format!("k{i}"), Bytes::new()).await.is_ok());
        }
        outcome
    };
    assert_eq!(run(42).await, run(42).await);
    assert_ne!(run(42).await, run(43).await);
}

#[tokio::test(start_paused = true)]
async fn latency_delays_every_call() {
    let store = Faulty::with_config(
        MemStore::new(),
        1,
        FaultConfig::new().latency(Duration::from_millis(250)),
    );
    let start = Instant::now();
    store.put("k", Bytes::from_static(b"v")).await.unwrap();
    store.get("k").await.unwrap();
    store.head("k").await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(750));
    // Being down answers at once: a refused connection does not wait.
    store.set_down(true);
    let start = Instant::now();
    assert!(store.get("k").await.is_err());
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test]
async fn truncated_reads_are_caught_by_the_key_length() {
    let store = Faulty::with_config(MemStore::new(), 3, FaultConfig::new().truncate_rate(1.0));
    let data = pattern(1, 4096);
    store.put("blk", data.clone()).await.unwrap();
    for _ in 0..20 {
        let got = store.get("blk").await.unwrap();
        assert!(got.len() < data.len());
        assert_eq!(got, data.slice(..got.len()), "a torn read is a prefix");
        assert!(matches!(
            store.get_block("blk", 4096).await,
            Err(StoreError::Corrupt(_))
        ));
    }
    assert_eq!(store.stats().truncated, 40);
    // Empty objects have nothing to tear.
    store.put("empty", Bytes::new()).await.unwrap();
    assert!(store.get("empty").await.unwrap().is_empty());
}

#[tokio::test]
async fn corrupted_reads_change_exactly_one_byte() {
    let store = Faulty::with_config(MemStore::new(), 3, FaultConfig::new().corrupt_rate(1.0));
    let data = pattern(2, 1000);
    store.put("blk", data.clone()).await.unwrap();
    for _ in 0..50 {
        let got = store.get("blk").await.unwrap();
        assert_eq!(got.len(), data.len());
        let diffs = got.iter().zip(data.iter()).filter(|(a, b)| a != b).count();
        assert_eq!(diffs, 1);
    }
    assert_eq!(
        store.inner().get("blk").await.unwrap(),
        data,
        "the stored bytes are intact"
    );
    assert_eq!(store.stats().corrupted, 50);
}

#[tokio::test]
async fn down_switch_fails_everything_until_up() {
    let store = Faulty::new(MemStore::new(), 1);
    store.put("k", Bytes::from_static(b"v")).await.unwrap();
    store.set_down(true);
    assert!(store
        .put("k2", Bytes::from_static(b"v"))
        .await
        .unwrap_err()
        .is_retryable());
    assert!(store.get("k").await.unwrap_err().is_retryable());
    assert!(store.head("k").await.unwrap_err().is_retryable());
    assert!(store.delete("k").await.unwrap_err().is_retryable());
    assert!(store
        .list_page("", None, 5)
        .await
        .unwrap_err()
        .is_retryable());
    assert_eq!(store.stats().refused_down, 5);
    assert_eq!(store.inner().len(), 1);
    store.set_down(false);
    store.put("k2", Bytes::from_static(b"w")).await.unwrap();
    assert_eq!(store.get("k2").await.unwrap(), &b"w"[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_change_while_calls_run() {
    let store = Arc::new(Faulty::new(MemStore::new(), 9));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0u32, 0u32);
                for i in 0..500 {
                    match store
                        .put(&format!("w{w}/k{i}"), Bytes::from_static(b"v"))
                        .await
                    {
                        Ok(()) => ok += 1,
                        Err(e) => {
                            assert!(e.is_retryable());
                            failed += 1;
                        }
                    }
                    tokio::task::yield_now().await;
                }
                (ok, failed)
            })
        })
        .collect();
    for round in 0..50 {
        store.set_config(FaultConfig::new().error_rate(if round % 2 == 0 { 0.5 } else { 0.0 }));
        store.set_down(round % 7 == 3);
        tokio::task::yield_now().await;
    }
    store.set_down(false);
    let mut ok_total = 0;
    for w in workers {
        let (ok, failed) = w.await.unwrap();
        assert_eq!(ok + failed, 500);
        ok_total += ok;
    }
    assert_eq!(store.inner().len(), ok_total as usize);
    let s = store.stats();
    assert_eq!(s.calls, 2000);
    assert_eq!(
        u64::from(ok_total) + s.injected_errors + s.refused_down,
        2000
    );
}
