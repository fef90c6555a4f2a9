//! Metadata backups in the bucket and restoring a volume from its bucket alone: backups are
//! taken by one elected client, rotated as juicefs rotates them, and restore into SQLite,
//! Redis and TKV engines as of their time (files read back, our fsck and juicefs's clean);
//! what a restore cannot bring back (objects purged since the backup) is reported; a
//! wrong or missing backup and a non-empty engine are refused and leave no volume.

use std::path::Path;
use std::time::Duration;

use meta_api::{Format, MetaError};
use tessera_tests::tree::pattern;
use tessera_tests::{flush_redis, redis_db_url, sqlite_url, Juicefs};
use vfs_core::backup::{backup_key, restore_volume, RestoreOptions, BACKUP_DIR};
use vfs_core::upkeep::{FsckOptions, Progress};
use vfs_core::{FileSystem, VfsError, VfsOptions, VolumeBuilder};

/// Options for a client that takes no backups on its own.
fn quiet() -> VfsOptions {
    VfsOptions::default().backup_interval(None)
}

async fn open(url: &str, opts: VfsOptions) -> FileSystem {
    FileSystem::new(VolumeBuilder::new(url).options(opts).open().await.unwrap())
}

/// Formats volume `name` on `url` with its bucket at `bucket`, and writes files.
async fn populate(url: &str, bucket: &Path, name: &str, trash_days: u32) -> FileSystem {
    let mut f = Format::new(name, "", "file", &format!("{}/", bucket.display()));
    f.block_size = 64; // KiB: files span several blocks
    f.trash_days = trash_days;
    VolumeBuilder::new(url).format(f).await.unwrap();
    let fs = open(url, quiet()).await;
    fs.create_dir_all("/a/b/c").await.unwrap();
    fs.write("/a/big", pattern(1, 300 * 1024 + 7))
        .await
        .unwrap();
    fs.write("/a/b/small", pattern(2, 10)).await.unwrap();
    fs.write("/gone", pattern(3, 200 * 1024)).await.unwrap();
    fs.symlink("a/big", "/ln").await.unwrap();
    fs.hard_link("/a/big", "/a/b/c/big2").await.unwrap();
    fs
}

/// The volume's tree and file contents, as read through it.
async fn contents(fs: &FileSystem) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut dirs = vec!["/".to_string()];
    while let Some(d) = dirs.pop() {
        let mut rd = fs.read_dir(&d).await.unwrap();
        while let Some(e) = rd.next_entry().await.unwrap() {
            let name = String::from_utf8_lossy(e.name_bytes()).into_owned();
            if d == "/" && name == ".trash" {
                continue;
            }
            let path = format!(
                "{}{name}",
                if d == "/" { d.clone() } else { format!("{d}/") }
            );
            let md = fs.symlink_metadata(&path).await.unwrap();
            if md.is_dir() {
                dirs.push(path.clone());
                out.push((path, Vec::new()));
            } else if md.is_symlink() {
                let t = fs.read_link(&path).await.unwrap();
                out.push((path, t.as_os_str().as_encoded_bytes().to_vec()));
            } else {
                let data = fs.read(&path).await.unwrap();
                out.push((path, data));
            }
        }
    }
    out.sort();
    out
}

async fn fsck_clean(fs: &FileSystem) {
    let opts = FsckOptions {
        recursive: true,
        ..FsckOptions::default()
    };
    let r = fs
        .vfs()
        .fsck(
            &opts,
            (meta_api::ROOT_INO, "/".into()),
            &Progress::default(),
        )
        .await
        .unwrap();
    assert!(r.is_clean(), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_comes_back_from_its_bucket_alone() {
    let Some(redis) = redis_db_url(231) else {
        return;
    };
    flush_redis(&redis);
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    let url = sqlite_url(&dir.path().join("meta.db"));
    let fs = populate(&url, &bucket, "bvol", 1).await;
    let before = contents(&fs).await;
    let report = fs.vfs().backup_meta().await.unwrap();
    assert!(report.backup.key.starts_with("meta/dump-"), "{report:?}");
    assert!(report.entries >= 9, "{report:?}");
    let object = bucket.join("bvol").join(&report.backup.key);
    assert_eq!(
        std::fs::metadata(&object).unwrap().len(),
        report.backup.size
    );
    assert_eq!(
        fs.vfs().list_backups().await.unwrap(),
        vec![report.backup.clone()]
    );
    // The root carries juicefs's election attribute.
    let last = fs
        .vfs()
        .meta()
        .getxattr(meta_api::ROOT_INO, b"lastBackup")
        .await
        .unwrap();
    assert!(String::from_utf8(last).unwrap().ends_with('Z'));

    // Changes after the backup: a new file, and a deleted one (kept by the trash).
    fs.write("/after", pattern(4, 100)).await.unwrap();
    fs.remove_file("/gone").await.unwrap();
    fs.vfs().purge_deleted().await.unwrap();
    fs.close().await.unwrap();

    // Lost: the engine. The bucket URL alone brings the volume back, on any engine.
    std::fs::remove_file(dir.path().join("meta.db")).unwrap();
    let storage = format!("{}/bvol", bucket.display());
    let tkv = format!("tkv-mem://backup-restore-{}", std::process::id());
    for (i, target) in [sqlite_url(&dir.path().join("new.db")), redis.clone(), tkv]
        .iter()
        .enumerate()
    {
        let opts = RestoreOptions::default().vfs(quiet());
        let restored = restore_volume(&storage, target, opts).await.unwrap();
        assert_eq!(restored.backup, report.backup, "{target}");
        let check = restored.check.as_ref().unwrap();
        assert!(check.broken.is_empty() && check.blocks > 0, "{check:?}");
        let format = restored.vfs.format().clone();
        assert_eq!(format.name, "bvol");
        assert_eq!(format.bucket, format!("{}/", bucket.display()));
        let fs = FileSystem::new(restored.vfs);
        assert_eq!(
            contents(&fs).await,
            before,
            "{target}: the tree as backed up"
        );
        fsck_clean(&fs).await;
        // Writable, and ids go on from the backup's.
        fs.write(&format!("/new{i}"), pattern(5, 70_000))
            .await
            .unwrap();
        assert_eq!(
            fs.read(&format!("/new{i}")).await.unwrap(),
            pattern(5, 70_000)
        );
        fs.close().await.unwrap();
    }
    if let Some(jfs) = Juicefs::from_env() {
        jfs.fsck(&sqlite_url(&dir.path().join("new.db")));
    }
    flush_redis(&redis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_is_elected_and_the_job_backs_up_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    let url = sqlite_url(&dir.path().join("meta.db"));
    let a = populate(&url, &bucket, "elect", 0).await;
    let b = open(&url, quiet()).await;
    // Two clients, each asking ten times at once: one backup for the hour.
    let hour = Duration::from_secs(3600);
    let asks = (0..10).flat_map(|_| {
        [
            a.vfs().backup_meta_if_due(hour),
            b.vfs().backup_meta_if_due(hour),
        ]
    });
    let taken: Vec<_> = futures::future::join_all(asks)
        .await
        .into_iter()
        .filter_map(|r| r.unwrap())
        .collect();
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert_eq!(a.vfs().list_backups().await.unwrap().len(), 1);
    b.close().await.unwrap();

    // A client whose interval is a second backs up by itself, once per second at most.
    let c = open(
        &url,
        VfsOptions::default().backup_interval(Some(Duration::from_millis(1000))),
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let n = c.vfs().list_backups().await.unwrap().len();
        if n >= 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {n} backups after 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.close().await.unwrap();
    let all = a.vfs().list_backups().await.unwrap();
    for w in all.windows(2) {
        assert!(w[1].time > w[0].time, "{all:?}");
    }
    a.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_backups_are_rotated_and_other_objects_kept() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    let url = sqlite_url(&dir.path().join("meta.db"));
    let fs = populate(&url, &bucket, "rot", 0).await;
    let meta_dir = bucket.join("rot").join(BACKUP_DIR);
    std::fs::create_dir_all(&meta_dir).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let put = |t: time::OffsetDateTime| {
        let key = backup_key(t);
        std::fs::write(bucket.join("rot").join(&key), b"old").unwrap();
        key
    };
    let day = time::Duration::days(1);
    // Three in the day-long window ten to nine days ago: the oldest stays.
    let base = now - day * 10 + time::Duration::hours(1);
    let keep = put(base);
    let drop1 = put(base + time::Duration::hours(6));
    let drop2 = put(base + time::Duration::hours(12));
    let ancient = put(now - day * 900);
    let recent = put(now - time::Duration::hours(30));
    std::fs::write(meta_dir.join("notes.txt"), b"mine").unwrap();
    let r = fs.vfs().backup_meta().await.unwrap();
    let mut removed = r.removed.clone();
    removed.sort();
    let mut want = vec![drop1, drop2, ancient];
    want.sort();
    assert_eq!(removed, want);
    let left: Vec<String> = fs
        .vfs()
        .list_backups()
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.key)
        .collect();
    assert_eq!(left, vec![keep, recent, r.backup.key]);
    assert!(meta_dir.join("notes.txt").exists());
    fs.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_reports_files_whose_objects_were_purged_since() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    let url = sqlite_url(&dir.path().join("meta.db"));
    // No trash: a deleted file's objects go at once.
    let fs = populate(&url, &bucket, "lossy", 0).await;
    fs.vfs().backup_meta().await.unwrap();
    fs.remove_file("/gone").await.unwrap();
    fs.vfs().purge_deleted().await.unwrap();
    fs.close().await.unwrap();
    let storage = format!("{}/lossy", bucket.display());
    let to = sqlite_url(&dir.path().join("new.db"));
    let restored = restore_volume(&storage, &to, RestoreOptions::default().vfs(quiet()))
        .await
        .unwrap();
    let check = restored.check.clone().unwrap();
    let broken: Vec<&str> = check.broken.iter().map(|b| b.path.as_str()).collect();
    assert_eq!(broken, vec!["/gone"], "{check:?}");
    restored.vfs.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_missing_backups_and_busy_engines_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    let url = sqlite_url(&dir.path().join("meta.db"));
    let fs = populate(&url, &bucket, "src", 0).await;
    let storage = format!("{}/src", bucket.display());
    let fresh = |n: &str| sqlite_url(&dir.path().join(format!("{n}.db")));
    let opts = || RestoreOptions::default().vfs(quiet());

    // No backup yet.
    let e = restore_volume(&storage, &fresh("n1"), opts())
        .await
        .unwrap_err();
    assert!(matches!(e, VfsError::NoBackup(_)), "{e}");
    assert_eq!(e.errno(), libc::ENOENT);
    let key = fs.vfs().backup_meta().await.unwrap().backup.key;
    // A named backup that is not there.
    let e = restore_volume(
        &storage,
        &fresh("n2"),
        opts().backup("dump-2001-01-01-000000.json.gz"),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, VfsError::NoBackup(_)), "{e}");
    // An engine that holds a volume.
    let e = restore_volume(&storage, &url, opts()).await.unwrap_err();
    assert!(matches!(e.as_meta(), Some(MetaError::Exists)), "{e}");
    // Another volume's backup copied under this name.
    let other = bucket.join("other");
    std::fs::create_dir_all(other.join(BACKUP_DIR)).unwrap();
    std::fs::copy(bucket.join("src").join(&key), other.join(&key)).unwrap();
    let target = fresh("n3");
    let e = restore_volume(&format!("{}/other", bucket.display()), &target, opts())
        .await
        .unwrap_err();
    assert!(matches!(e, VfsError::BackupMismatch(_)), "{e}");
    let left = VolumeBuilder::new(&target).open().await.unwrap_err();
    assert!(
        matches!(left.as_meta(), Some(MetaError::NotFormatted)),
        "{left}"
    );
    // A bucket whose juicefs_uuid names another volume.
    std::fs::write(
        bucket.join("src/juicefs_uuid"),
        b"00000000-0000-4000-8000-00000000dead",
    )
    .unwrap();
    let e = restore_volume(&storage, &fresh("n4"), opts())
        .await
        .unwrap_err();
    assert!(matches!(e, VfsError::BackupMismatch(_)), "{e}");
    // A backup that is not gzip.
    std::fs::write(
        bucket.join("src/juicefs_uuid"),
        fs.vfs().format().uuid.as_bytes(),
    )
    .unwrap();
    std::fs::write(bucket.join("src").join(&key), b"not gzip").unwrap();
    let e = restore_volume(&storage, &fresh("n5"), opts())
        .await
        .unwrap_err();
    assert!(matches!(e.as_meta(), Some(MetaError::Corrupt(_))), "{e}");
    // A storage URL without a volume name.
    let e = restore_volume("gopher://x/y", &fresh("n6"), opts())
        .await
        .unwrap_err();
    assert_eq!(e.errno(), libc::EINVAL);
    fs.close().await.unwrap();
}

/// juicefs reads our backups, and we restore from a juicefs dump put where juicefs's
/// backups go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn juicefs_and_tessera_share_backups() {
    let Some(jfs) = Juicefs::from_env() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    let url = sqlite_url(&dir.path().join("meta.db"));
    let fs = populate(&url, &bucket, "shared", 1).await;
    let before = contents(&fs).await;
    let ours = fs.vfs().backup_meta().await.unwrap();
    fs.close().await.unwrap();

    // juicefs loads our backup object as it is (gzip).
    let theirs = sqlite_url(&dir.path().join("theirs.db"));
    let object = bucket.join("shared").join(&ours.backup.key);
    jfs.run(&["load", &theirs, object.to_str().unwrap()], &[]);
    jfs.fsck(&theirs);

    // juicefs's own dump, named as its backups are and newer than ours: we restore it.
    let later = time::OffsetDateTime::now_utc() + time::Duration::minutes(1);
    let key = backup_key(later);
    let path = bucket.join("shared").join(&key);
    jfs.run(&["dump", &theirs, path.to_str().unwrap()], &[]);
    let to = sqlite_url(&dir.path().join("restored.db"));
    let restored = restore_volume(
        &format!("{}/shared", bucket.display()),
        &to,
        RestoreOptions::default().vfs(quiet()),
    )
    .await
    .unwrap();
    assert_eq!(restored.backup.key, key);
    let fs = FileSystem::new(restored.vfs);
    assert_eq!(contents(&fs).await, before);
    fsck_clean(&fs).await;
    fs.close().await.unwrap();
    jfs.fsck(&to);
}
