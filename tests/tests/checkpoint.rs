//! Checkpoints on every engine (SQLite and Redis formatted by juicefs, the TKV engine
//! in-process): a checkpoint keeps every byte it refers to through deletes, overwrites,
//! purges and gc; a restore in place brings the tree back byte for byte, stays writable,
//! never hands out an id twice, and is refused while another client is connected (a client
//! whose session was reaped meanwhile is fenced when it comes back); both
//! fsck are clean after it; deleting the checkpoint frees what only it kept.

use std::path::Path;

use meta_api::{Format, MetaError};
use tessera_tests::interop::{assert_fsck_clean, open_fs};
use tessera_tests::tree::{pattern, walk};
use tessera_tests::{service, sqlite_url, Juicefs};
use vfs_core::checkpoint::restore_checkpoint;
use vfs_core::upkeep::{GcOptions, Progress};
use vfs_core::{FileSystem, VfsError, VolumeBuilder};

fn blocks(bucket: &Path) -> usize {
    walk(bucket)
        .iter()
        .filter(|p| p.to_string_lossy().contains("/chunks/") && bucket.join(p).is_file())
        .count()
}

fn meta_err(e: &VfsError) -> Option<&MetaError> {
    match e {
        VfsError::Meta(m) => Some(m),
        _ => None,
    }
}

async fn gc(fs: &FileSystem, delete: bool) -> vfs_core::upkeep::GcReport {
    let opts = GcOptions {
        delete,
        min_age: std::time::Duration::ZERO,
        ..GcOptions::default()
    };
    fs.vfs().gc(&opts, &Progress::default()).await.unwrap()
}

/// The whole scenario on the volume at `url` whose blocks are under `bucket`.
async fn checkpoints_round_trip(url: &str, bucket: &Path, jfs: Option<&Juicefs>) {
    let fs = open_fs(url).await;
    fs.create_dir_all("/d").await.unwrap();
    fs.write("/a", pattern(1, 300_000)).await.unwrap();
    fs.write("/d/b", pattern(2, 70_000)).await.unwrap();
    fs.symlink("d/b", "/l").await.unwrap();
    fs.vfs()
        .setxattr(
            fs.context(),
            fs.metadata("/a").await.unwrap().ino(),
            b"user.k",
            b"v",
            0,
        )
        .await
        .unwrap();
    let made = fs.vfs().create_checkpoint("c1").await.unwrap();
    assert!(made.complete && made.slices >= 2, "{made:?}");
    let err = fs.vfs().create_checkpoint("c1").await.unwrap_err();
    assert!(matches!(meta_err(&err), Some(MetaError::Exists)), "{err}");
    let err = fs.vfs().create_checkpoint("a/b").await.unwrap_err();
    assert!(
        matches!(meta_err(&err), Some(MetaError::InvalidArgument(_))),
        "{err}"
    );
    let listed = fs.vfs().list_checkpoints().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "c1");
    let kept = blocks(bucket);

    // After it: a file deleted and purged, one overwritten, one made; gc deletes nothing
    // the checkpoint needs.
    fs.remove_file("/a").await.unwrap();
    fs.write("/d/b", pattern(3, 10_000)).await.unwrap();
    fs.write("/new", pattern(4, 5_000)).await.unwrap();
    let new_ino = fs.metadata("/new").await.unwrap().ino();
    fs.vfs().purge_deleted().await.unwrap();
    let r = gc(&fs, true).await;
    assert_eq!(r.leaked.count, 0, "{r:?}");
    assert!(
        r.checkpoint_slices >= 1,
        "the deleted file's slice is kept: {r:?}"
    );
    assert!(blocks(bucket) >= kept, "no block of the checkpoint went");
    assert_fsck_clean(&fs).await;

    // A restore with a client connected is refused and changes nothing.
    let err = restore_checkpoint(url, "c1").await.unwrap_err();
    assert!(matches!(meta_err(&err), Some(MetaError::Busy(_))), "{err}");
    assert!(fs.try_exists("/new").await.unwrap());
    // A second checkpoint, of the changed volume: it holds slices c1 does not.
    fs.vfs().create_checkpoint("c2").await.unwrap();
    // A client that went away with a file open: its session expires and is reaped, so the
    // restore below runs under it. It is fenced when it comes back: its next heartbeat
    // tells it, and its handle fails.
    let away = open_fs(url).await;
    let away_fh = away
        .vfs()
        .open(away.context(), new_ino, libc::O_RDONLY)
        .await
        .unwrap();
    let tomorrow = meta_api::Timestamp::new(meta_api::Timestamp::now().sec + 86_400, 0);
    assert_eq!(
        fs.vfs().meta().reap_stale_sessions(tomorrow).await.unwrap(),
        2
    );
    fs.close().await.unwrap();
    let err = restore_checkpoint(url, "nope").await.unwrap_err();
    assert!(matches!(err, VfsError::NoCheckpoint(_)), "{err}");
    if let Some(j) = jfs {
        j.fsck(url);
    }

    // Restored in place: the tree as it was, byte for byte, and writable.
    let restored = restore_checkpoint(url, "c1").await.unwrap();
    assert_eq!(restored.checkpoint.name, "c1");
    assert_eq!(
        away.vfs().meta().heartbeat().await.unwrap(),
        meta_api::Heartbeat::Reregistered
    );
    let err = away
        .vfs()
        .read(away.context(), away_fh, 0, 10)
        .await
        .unwrap_err();
    assert!(
        matches!(meta_err(&err), Some(MetaError::SessionLost)),
        "{err}"
    );
    assert!(
        !away.try_exists("/new").await.unwrap(),
        "it sees the restored tree"
    );
    away.close().await.unwrap();
    let fs = open_fs(url).await;
    assert!(
        fs.read("/a").await.unwrap() == pattern(1, 300_000),
        "/a differs"
    );
    assert!(
        fs.read("/d/b").await.unwrap() == pattern(2, 70_000),
        "/d/b differs"
    );
    assert_eq!(fs.read_link("/l").await.unwrap(), Path::new("d/b"));
    assert!(!fs.try_exists("/new").await.unwrap());
    let a = fs.metadata("/a").await.unwrap().ino();
    assert_eq!(
        fs.vfs().getxattr(fs.context(), a, b"user.k").await.unwrap(),
        b"v"
    );
    fs.write("/after", pattern(5, 9_000)).await.unwrap();
    assert!(
        fs.metadata("/after").await.unwrap().ino() > new_ino,
        "an inode number was handed out twice"
    );
    assert!(fs.read("/after").await.unwrap() == pattern(5, 9_000));
    assert_fsck_clean(&fs).await;
    // Both checkpoints are still there and still hold, c2's slices too though the
    // restored volume does not refer to them: gc keeps them, and c2 restores.
    assert_eq!(fs.vfs().list_checkpoints().await.unwrap().len(), 2);
    let r = gc(&fs, true).await;
    assert!(r.checkpoint_slices >= 2, "{r:?}");
    fs.close().await.unwrap();
    if let Some(j) = jfs {
        j.fsck(url);
    }
    restore_checkpoint(url, "c2").await.unwrap();
    let fs = open_fs(url).await;
    assert!(
        fs.read("/new").await.unwrap() == pattern(4, 5_000),
        "/new differs"
    );
    assert!(
        fs.read("/d/b").await.unwrap() == pattern(3, 10_000),
        "/d/b differs"
    );
    assert!(!fs.try_exists("/a").await.unwrap());
    assert!(!fs.try_exists("/after").await.unwrap());
    assert_fsck_clean(&fs).await;
    fs.close().await.unwrap();
    if let Some(j) = jfs {
        j.fsck(url);
    }
    // Back to c1; deleting c2 then frees what only c2 referred to.
    restore_checkpoint(url, "c1").await.unwrap();
    let fs = open_fs(url).await;
    assert!(fs.read("/a").await.unwrap() == pattern(1, 300_000));
    fs.vfs().delete_checkpoint("c2").await.unwrap();
    assert_eq!(fs.vfs().list_checkpoints().await.unwrap().len(), 1);
    // Left is the block of /after, which the restore of c2 dropped from the metadata.
    let r = gc(&fs, false).await;
    assert_eq!(r.leaked.count, 1, "{r:?}");
    assert_fsck_clean(&fs).await;
    fs.close().await.unwrap();

    // Deleting it frees only what nothing else refers to; gc removes what the restore
    // dropped from the metadata.
    let fs = open_fs(url).await;
    fs.vfs().delete_checkpoint("c1").await.unwrap();
    let err = fs.vfs().delete_checkpoint("c1").await.unwrap_err();
    assert!(matches!(err, VfsError::NoCheckpoint(_)), "{err}");
    assert!(fs.read("/a").await.unwrap() == pattern(1, 300_000));
    let r = gc(&fs, true).await;
    assert_eq!(r.checkpoint_slices, 0, "{r:?}");
    let r = gc(&fs, false).await;
    assert_eq!(r.leaked.count, 0, "{r:?}");
    assert_eq!(blocks(bucket) as u64, r.valid.count, "{r:?}");
    fs.remove_file("/a").await.unwrap();
    fs.remove_file("/d/b").await.unwrap();
    fs.vfs().purge_deleted().await.unwrap();
    assert_eq!(
        blocks(bucket),
        0,
        "every block freed with its last reference"
    );
    assert_fsck_clean(&fs).await;
    fs.close().await.unwrap();
    if let Some(j) = jfs {
        j.fsck(url);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_on_sqlite() {
    let Some(jfs) = Juicefs::from_env() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("meta.db"));
    let bucket = dir.path().join("bucket");
    jfs.format_file_volume(&url, "ckpt", &bucket, &[]);
    checkpoints_round_trip(&url, &bucket, Some(&jfs)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_on_redis() {
    let (Some(jfs), Some(base)) = (Juicefs::from_env(), service("REDIS_URL")) else {
        return;
    };
    let url = format!("{}/233", base.trim_end_matches('/'));
    tessera_tests::flush_redis(&url);
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    jfs.format_file_volume(&url, "ckpt", &bucket, &[]);
    checkpoints_round_trip(&url, &bucket, Some(&jfs)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_on_tkv() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    let url = format!("tkv-mem://ckpt-{}", std::process::id());
    let f = Format::new("ckpt", "", "file", &format!("{}/", bucket.display()));
    let mut f = f;
    f.trash_days = 0;
    VolumeBuilder::new(&url).format(f).await.unwrap();
    checkpoints_round_trip(&url, &bucket, None).await;
}
