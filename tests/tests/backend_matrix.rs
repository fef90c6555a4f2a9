//! The same end-to-end workload through vfs-core on every metadata engine: SQLite, Redis
//! and the TKV engine (in-process store), each with local-directory blocks — a tree
//! written by one client is seen by a second client of the same volume (close-to-open),
//! renamed and removed.

use meta_api::Format;
use std::process::Command;
use tessera_tests::interop::MIB;
use tessera_tests::service;
use tessera_tests::tree::pattern;
use vfs_core::{FileSystem, MetaCacheOptions, VfsOptions, VolumeBuilder};

/// Runs the workload and returns what `statfs` reported after writing and after removing.
async fn workload(url: &str) -> [meta_api::StatFs; 2] {
    let dir = tempfile::tempdir().unwrap();
    let bucket = format!("{}/blocks/", dir.path().display());
    let mut f = Format::new(
        "matrix",
        &format!("uuid-{}", std::process::id()),
        "file",
        &bucket,
    );
    f.block_size = 256; // KiB: files below span several blocks
    VolumeBuilder::new(url).format(f).await.unwrap();
    let a = FileSystem::new(VolumeBuilder::new(url).open().await.unwrap());
    // b caches no directory names, so that a's rename of a directory shows to it at once
    // (by default within a second).
    let exact = MetaCacheOptions::default().dir_entry_ttl(std::time::Duration::ZERO);
    let b = FileSystem::new(
        VolumeBuilder::new(url)
            .options(VfsOptions::default().meta_cache(exact))
            .open()
            .await
            .unwrap(),
    );

    a.create_dir_all("/x/y").await.unwrap();
    for i in 0..20u64 {
        a.write(format!("/x/y/f{i}"), pattern(i, 1000 + 5000 * i as usize))
            .await
            .unwrap();
    }
    a.write("/x/big", pattern(99, 3 * MIB + 7)).await.unwrap();
    for i in 0..20u64 {
        assert_eq!(
            b.read(format!("/x/y/f{i}")).await.unwrap(),
            pattern(i, 1000 + 5000 * i as usize)
        );
    }
    assert!(b.read("/x/big").await.unwrap() == pattern(99, 3 * MIB + 7));

    // b overwrites the middle; a reopens and sees it.
    let file = b.open_options().write(true).open("/x/big").await.unwrap();
    file.write_at(b"MIDDLE", MIB as u64).await.unwrap();
    file.close().await.unwrap();
    let got = a.read("/x/big").await.unwrap();
    assert_eq!(&got[MIB..MIB + 6], b"MIDDLE");

    let written = a.statfs().await.unwrap();
    a.rename("/x/y", "/x/z").await.unwrap();
    assert!(!b.exists("/x/y").await);
    assert_eq!(b.read_dir_names("/x/z").await.len(), 20);
    b.remove_dir_all("/x").await.unwrap();
    assert!(!a.exists("/x").await);
    // Both had /x/big open: a close may still wait in its client's batch, which keeps the
    // file until it is sent (Redis); the barrier of each client sends its own.
    a.vfs().sync().await.unwrap();
    b.vfs().sync().await.unwrap();
    let removed = a.statfs().await.unwrap();
    a.close().await.unwrap();
    b.close().await.unwrap();
    [written, removed]
}

trait ReadDirNames {
    async fn read_dir_names(&self, p: &str) -> Vec<String>;
}

impl ReadDirNames for FileSystem {
    async fn read_dir_names(&self, p: &str) -> Vec<String> {
        let mut rd = self.read_dir(p).await.unwrap();
        let mut names = Vec::new();
        while let Some(e) = rd.next_entry().await.unwrap() {
            names.push(e.file_name().to_string_lossy().into_owned());
        }
        names
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    workload(&format!("sqlite3://{}/meta.db", dir.path().display())).await;
}

/// Every engine reports the same `statfs` after the same operations (JuiceFS's formula
/// over the same counters).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statfs_is_the_same_on_every_engine() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = workload(&format!("sqlite3://{}/statfs.db", dir.path().display())).await;
    let tkv = workload(&format!("tkv-mem://statfs-{}", std::process::id())).await;
    assert_eq!(sqlite, tkv, "SQLite vs the TKV engine");
    assert!(sqlite[0].used_inodes > 20, "{sqlite:?}");
    assert_eq!(sqlite[1].used_inodes, 0, "{sqlite:?}");
    if let Some(base) = service("REDIS_URL") {
        let url = format!("{}/204", base.trim_end_matches('/'));
        let out = Command::new("redis-cli")
            .args(["-u", &url, "FLUSHDB"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(workload(&url).await, sqlite, "Redis vs SQLite");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis() {
    let Some(base) = service("REDIS_URL") else {
        return;
    };
    let url = format!("{}/203", base.trim_end_matches('/'));
    let out = Command::new("redis-cli")
        .args(["-u", &url, "FLUSHDB"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    workload(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tkv_in_process() {
    workload(&format!("tkv-mem://matrix-{}", std::process::id())).await;
}
