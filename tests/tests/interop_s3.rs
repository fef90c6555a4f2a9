//! Interop with the real juicefs client on SQLite metadata + S3 storage (the SeaweedFS test
//! server): a volume formatted by `juicefs format --storage s3 --bucket $S3_ENDPOINT/$S3_BUCKET`
//! opens in vfs-core unchanged, data crosses both ways byte-identical, and `juicefs fsck` is
//! clean. Every test uses its own volume name, so its objects have their own prefix in the
//! one test bucket; the objects are purged at the end.

use std::path::Path;

use tessera_tests::interop::{assert_same_tree, juicefs_side_tree, open_fs, MIB};
use tessera_tests::tree::pattern;
use tessera_tests::{sqlite_url, unique_volume_name, Juicefs, S3Service};
use vfs_core::FileSystem;

/// Deletes every file of the volume and purges the objects, so that test runs do not fill
/// the shared bucket.
async fn purge_everything(fs: &FileSystem) {
    let mut rd = fs.read_dir("/").await.unwrap();
    while let Some(e) = rd.next_entry().await.unwrap() {
        let p = e.path();
        if fs.symlink_metadata(&p).await.unwrap().is_dir() {
            fs.remove_dir_all(&p).await.unwrap();
        } else {
            fs.remove_file(&p).await.unwrap();
        }
    }
    fs.vfs().purge_deleted().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn juicefs_writes_vfs_reads_on_s3() {
    let (Some(jfs), Some(s3)) = (Juicefs::from_env(), S3Service::from_env()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("meta.db"));
    let name = unique_volume_name("jfs-writes-s3");
    jfs.format_s3_volume(&url, &name, &s3, &[]);
    let src = dir.path().join("src");
    // The big file crosses the 64 MiB chunk boundary.
    juicefs_side_tree(&src, 64 * MIB + 5, 200);
    jfs.sync(&url, &format!("{}/", src.display()), "jfs://VOL/", &[]);

    let fs = open_fs(&url).await;
    let f = fs.vfs().format();
    assert_eq!((f.storage.as_str(), f.name.as_str()), ("s3", name.as_str()));
    assert_eq!(f.bucket, s3.bucket_url());
    assert_same_tree(&fs, &src).await;
    purge_everything(&fs).await;
    fs.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vfs_writes_juicefs_reads_on_s3_and_fsck_is_clean() {
    let (Some(jfs), Some(s3)) = (Juicefs::from_env(), S3Service::from_env()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("meta.db"));
    let name = unique_volume_name("vfs-writes-s3");
    // LZ4 too: compression sits between the cache and S3 in vfs-core's store stack.
    jfs.format_s3_volume(&url, &name, &s3, &["--compress", "lz4"]);

    let fs = open_fs(&url).await;
    fs.create_dir_all("/a/b").await.unwrap();
    fs.write("/a/b/hello.txt", b"hello from vfs-core on s3\n")
        .await
        .unwrap();
    fs.write("/a/empty", b"").await.unwrap();
    let big = pattern(7, 66 * MIB + 12_345);
    fs.write("/a/big.bin", &big).await.unwrap();
    // Overwritten in the middle after it was closed once.
    let mut over = pattern(8, 9 * MIB);
    fs.write("/a/over.bin", &over).await.unwrap();
    let f = fs
        .open_options()
        .write(true)
        .open("/a/over.bin")
        .await
        .unwrap();
    let patch = pattern(9, 3 * MIB);
    f.write_at(&patch, 4 * MIB as u64 + 17).await.unwrap();
    f.close().await.unwrap();
    over[4 * MIB + 17..7 * MIB + 17].copy_from_slice(&patch);
    // Sparse: data, a hole across the chunk boundary, data.
    let sparse = fs.create("/a/sparse").await.unwrap();
    sparse.write_at(b"head", 0).await.unwrap();
    sparse.write_at(b"tail", 65 * MIB as u64).await.unwrap();
    sparse.close().await.unwrap();
    let mut sparse_want = vec![0u8; 65 * MIB + 4];
    sparse_want[..4].copy_from_slice(b"head");
    sparse_want[65 * MIB..].copy_from_slice(b"tail");
    fs.create_dir_all("/many").await.unwrap();
    for i in 0..40u64 {
        fs.write(
            format!("/many/f{i}"),
            pattern(200 + i, 1000 + i as usize * 3000),
        )
        .await
        .unwrap();
    }
    fs.close().await.unwrap();

    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    jfs.sync(&url, "jfs://VOL/", &format!("{}/", out.display()), &[]);
    let read = |p: &str| std::fs::read(out.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    assert_eq!(read("a/b/hello.txt"), b"hello from vfs-core on s3\n");
    assert!(read("a/empty").is_empty());
    assert!(read("a/big.bin") == big, "big.bin differs");
    assert!(read("a/over.bin") == over, "over.bin differs");
    assert!(read("a/sparse") == sparse_want, "sparse differs");
    for i in 0..40u64 {
        assert_eq!(
            read(&format!("many/f{i}")),
            pattern(200 + i, 1000 + i as usize * 3000)
        );
    }
    assert!(Path::new(&out.join("a/b")).is_dir());
    jfs.fsck(&url);

    let fs = open_fs(&url).await;
    purge_everything(&fs).await;
    fs.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_volume_vfs_formats_is_read_by_juicefs() {
    let (Some(jfs), Some(s3)) = (Juicefs::from_env(), S3Service::from_env()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("meta.db"));
    let mut f = meta_api::Format::new(
        &unique_volume_name("vfs-formats-s3"),
        "",
        "s3",
        &s3.bucket_url(),
    );
    f.access_key = s3.access_key.clone();
    f.secret_key = s3.secret_key.clone();
    let stored = vfs_core::format_volume(&url, f).await.unwrap();
    // The secret key is stored encrypted, as `juicefs format` stores it.
    assert_ne!(stored.secret_key, s3.secret_key);

    let fs = open_fs(&url).await;
    let data = pattern(11, 5 * MIB + 3);
    fs.write("/data.bin", &data).await.unwrap();
    fs.write("/hello.txt", b"hello\n").await.unwrap();
    fs.close().await.unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    jfs.sync(&url, "jfs://VOL/", &format!("{}/", out.display()), &[]);
    assert!(std::fs::read(out.join("data.bin")).unwrap() == data);
    assert_eq!(std::fs::read(out.join("hello.txt")).unwrap(), b"hello\n");
    jfs.fsck(&url);

    let fs = open_fs(&url).await;
    purge_everything(&fs).await;
    fs.close().await.unwrap();
}
