//! Full disks: a bucket (a local directory store) whose file system fills up, and a
//! metadata database whose file system fills up. Writes then fail with `ENOSPC`, every
//! byte acknowledged before reads back, the volume stays consistent (our fsck and `juicefs
//! fsck` clean), and once space is freed the volume works again. Each disk is a small
//! tmpfs the test mounts (root is needed; under CI a missing mount is a failure).

use std::path::{Path, PathBuf};
use std::process::Command;

use tessera_tests::interop::{assert_fsck_clean, open_fs};
use tessera_tests::tree::pattern;
use tessera_tests::{sqlite_url, Juicefs};
use vfs_core::FileSystem;

/// A tmpfs of a few MiB mounted for one test, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(mib: u64) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let done = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .status();
        match done {
            Ok(s) if s.success() => Some(Tmpfs { dir }),
            _ => tessera_testenv::missing("a tmpfs mount (run the tests as root)"),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Writes files of `size` bytes with an fsync each until one fails; returns the paths
/// acknowledged and the error that ended it.
async fn fill(
    fs: &FileSystem,
    top: &str,
    size: usize,
    most: usize,
) -> (Vec<String>, std::io::Error) {
    let mut acked = Vec::new();
    for i in 0..most {
        let path = format!("{top}/f{i}");
        let done = async {
            let f = fs.create(&path).await?;
            f.write_at(&pattern(i as u64 + 1, size), 0).await?;
            f.sync_all().await?;
            f.close().await
        }
        .await;
        match done {
            Ok(()) => acked.push(path),
            Err(e) => return (acked, e),
        }
    }
    panic!("{most} files of {size} bytes fit: the disk never filled");
}

/// Every acknowledged file reads back whole.
async fn check_acked(fs: &FileSystem, acked: &[String], size: usize) {
    for (i, p) in acked.iter().enumerate() {
        let want = pattern(
            p.rsplit('f').next().unwrap().parse::<u64>().unwrap() + 1,
            size,
        );
        assert!(fs.read(p).await.unwrap() == want, "{p} ({i}) differs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_bucket_fails_writes_with_enospc_and_keeps_what_was_acknowledged() {
    let Some(jfs) = Juicefs::from_env() else {
        return;
    };
    let Some(disk) = Tmpfs::mount(8) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("meta.db"));
    jfs.format_file_volume(&url, "full", &disk.path(), &["--trash-days", "0"]);
    let fs = open_fs(&url).await;
    fs.create_dir("/a").await.unwrap();
    let size = 1 << 20;
    let (acked, err) = fill(&fs, "/a", size, 64).await;
    assert!(
        !acked.is_empty() && acked.len() <= 8,
        "{} files fit",
        acked.len()
    );
    assert_eq!(err.kind(), std::io::ErrorKind::StorageFull, "{err}");
    check_acked(&fs, &acked, size).await;
    assert_fsck_clean(&fs).await;
    fs.close().await.unwrap();
    jfs.fsck(&url);

    // Space freed (files deleted and purged), writes work again.
    let fs = open_fs(&url).await;
    for p in &acked[..acked.len() / 2 + 1] {
        fs.remove_file(p).await.unwrap();
    }
    fs.vfs().purge_deleted().await.unwrap();
    fs.write("/after", pattern(99, size)).await.unwrap();
    assert!(fs.read("/after").await.unwrap() == pattern(99, size));
    check_acked(&fs, &acked[acked.len() / 2 + 1..], size).await;
    assert_fsck_clean(&fs).await;
    fs.close().await.unwrap();
    jfs.fsck(&url);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_metadata_disk_fails_changes_with_enospc_and_keeps_what_was_acknowledged() {
    let Some(jfs) = Juicefs::from_env() else {
        return;
    };
    let Some(disk) = Tmpfs::mount(4) else {
        return;
    };
    // Room to give back once the disk is full, so that the client can close.
    std::fs::write(disk.path().join("ballast"), vec![0u8; 2 << 20]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&disk.path().join("meta.db"));
    jfs.format_file_volume(
        &url,
        "fullmeta",
        &dir.path().join("bucket"),
        &["--trash-days", "0"],
    );
    let fs = open_fs(&url).await;
    fs.create_dir("/a").await.unwrap();
    // Small files: the database grows with every one, the bucket has room.
    let size = 100;
    let (acked, err) = fill(&fs, "/a", size, 200_000).await;
    assert!(acked.len() > 10, "only {} files fit", acked.len());
    assert_eq!(err.kind(), std::io::ErrorKind::StorageFull, "{err}");
    free_some(disk.dir.path());
    check_acked(&fs, &acked, size).await;
    fs.close().await.unwrap();
    jfs.fsck(&url);
    let fs = open_fs(&url).await;
    check_acked(&fs, &acked, size).await;
    assert_fsck_clean(&fs).await;
    fs.close().await.unwrap();
}

/// Makes room on the metadata disk by dropping the ballast file the test put there.
fn free_some(disk: &Path) {
    let _ = std::fs::remove_file(disk.join("ballast"));
}
