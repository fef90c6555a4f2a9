//! Interop with the real juicefs client on Redis metadata + local-directory storage: a volume
//! formatted by `juicefs format redis://…` opens in vfs-core, data crosses both ways
//! byte-identical, and `juicefs fsck` is clean.

use std::process::Command;

use tessera_tests::interop::{
    clone_interoperates, compaction_and_gc_interoperate, deletion_interoperates,
    juicefs_writes_vfs_reads, quotas_interoperate, trash_interoperates, vfs_writes_juicefs_reads,
    MIB,
};
use tessera_tests::{service, Juicefs};

/// A private, emptied Redis database for one test (the test server has 256 of them).
fn fresh_db(base: &str, db: u32) -> String {
    let url = format!("{}/{db}", base.trim_end_matches('/'));
    let out = Command::new("redis-cli")
        .args(["-u", &url, "FLUSHDB"])
        .output()
        .unwrap_or_else(|e| panic!("redis-cli: {e}"));
    assert!(out.status.success(), "FLUSHDB on {url} failed: {out:?}");
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn juicefs_writes_vfs_reads_on_redis() {
    let (Some(jfs), Some(base)) = (Juicefs::from_env(), service("REDIS_URL")) else {
        return;
    };
    let url = fresh_db(&base, 201);
    juicefs_writes_vfs_reads(&jfs, &url, "none", 64 * MIB + 5, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vfs_writes_juicefs_reads_on_redis_and_fsck_is_clean() {
    let (Some(jfs), Some(base)) = (Juicefs::from_env(), service("REDIS_URL")) else {
        return;
    };
    let url = fresh_db(&base, 202);
    vfs_writes_juicefs_reads(&jfs, &url, "lz4").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_and_gc_interoperate_on_redis() {
    let (Some(jfs), Some(base)) = (Juicefs::from_env(), service("REDIS_URL")) else {
        return;
    };
    let url = fresh_db(&base, 203);
    compaction_and_gc_interoperate(&jfs, &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trash_interoperates_on_redis() {
    let (Some(jfs), Some(base)) = (Juicefs::from_env(), service("REDIS_URL")) else {
        return;
    };
    let url = fresh_db(&base, 204);
    trash_interoperates(&jfs, &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_interoperate_on_redis() {
    let (Some(jfs), Some(base)) = (Juicefs::from_env(), service("REDIS_URL")) else {
        return;
    };
    let url = fresh_db(&base, 205);
    quotas_interoperate(&jfs, &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_interoperates_on_redis() {
    let (Some(jfs), Some(base)) = (Juicefs::from_env(), service("REDIS_URL")) else {
        return;
    };
    let url = fresh_db(&base, 206);
    deletion_interoperates(&jfs, &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_interoperates_on_redis() {
    let (Some(jfs), Some(base)) = (Juicefs::from_env(), service("REDIS_URL")) else {
        return;
    };
    let url = fresh_db(&base, 232);
    clone_interoperates(&jfs, &url).await;
}
