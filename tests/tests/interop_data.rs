//! File data interop with the real juicefs client on SQLite + local-directory volumes:
//! what `juicefs sync` writes reads back byte-identical through vfs-core, what vfs-core
//! writes reads back byte-identical through `juicefs sync`, and `juicefs fsck` is clean —
//! uncompressed and with lz4 and zstd.

use tessera_tests::interop::{
    clone_interoperates, compaction_and_gc_interoperate, deletion_interoperates,
    gc_under_load_keeps_every_byte, juicefs_writes_vfs_reads, quotas_interoperate,
    trash_interoperates, vfs_writes_juicefs_reads, MIB,
};
use tessera_tests::{sqlite_url, Juicefs};

fn url(dir: &tempfile::TempDir) -> String {
    sqlite_url(&dir.path().join("meta.db"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn juicefs_writes_tree_vfs_reads_every_byte() {
    let Some(jfs) = Juicefs::from_env() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    juicefs_writes_vfs_reads(&jfs, &url(&dir), "none", 200 * MIB, 500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vfs_writes_tree_juicefs_reads_every_byte_and_fsck_is_clean() {
    let Some(jfs) = Juicefs::from_env() else {
        return;
    };
    let dir2 = tempfile::tempdir().unwrap();
    vfs_writes_juicefs_reads(&jfs, &url(&dir2), "none").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lz4_volumes_interoperate_both_ways() {
    let Some(jfs) = Juicefs::from_env() else {
        return;
    };
    let (dir, dir2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    juicefs_writes_vfs_reads(&jfs, &url(&dir), "lz4", 9 * MIB + 3, 40).await;
    vfs_writes_juicefs_reads(&jfs, &url(&dir2), "lz4").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zstd_volumes_interoperate_both_ways() {
    let Some(jfs) = Juicefs::from_env() else {
        return;
    };
    let (dir, dir2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    juicefs_writes_vfs_reads(&jfs, &url(&dir), "zstd", 9 * MIB + 3, 40).await;
    vfs_writes_juicefs_reads(&jfs, &url(&dir2), "zstd").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_and_gc_interoperate_on_sqlite() {
    let Some(jfs) = Juicefs::from_env() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    compaction_and_gc_interoperate(&jfs, &url(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_under_load_keeps_every_byte_on_sqlite() {
    let Some(jfs) = Juicefs::from_env() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    gc_under_load_keeps_every_byte(&jfs, &url(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trash_interoperates_on_sqlite() {
    let Some(jfs) = Juicefs::from_env() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    trash_interoperates(&jfs, &url(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_interoperate_on_sqlite() {
    let Some(jfs) = Juicefs::from_env() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    quotas_interoperate(&jfs, &url(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_interoperates_on_sqlite() {
    let Some(jfs) = Juicefs::from_env() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    deletion_interoperates(&jfs, &url(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_interoperates_on_sqlite() {
    let Some(jfs) = Juicefs::from_env() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    clone_interoperates(&jfs, &url(&dir)).await;
}
