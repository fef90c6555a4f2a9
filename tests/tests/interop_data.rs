//! File data interop with the real juicefs client on SQLite + local-directory volumes:
//! what `juicefs sync` writes reads back byte-identical through vfs-core, what vfs-core
//! writes reads back byte-identical through `juicefs sync`, and `juicefs fsck` is clean —
//! uncompressed and with lz4 and zstd.

use std::path::Path;

use tessera_tests::tree::{pattern, walk};
use tessera_tests::{sqlite_url, Juicefs};
use vfs_core::{FileSystem, VolumeBuilder};

const MIB: usize = 1 << 20;

async fn open_fs(url: &str) -> FileSystem {
    let vfs = VolumeBuilder::new(url)
        .open()
        .await
        .expect("open juicefs volume in vfs-core");
    FileSystem::new(vfs)
}

/// Compares every entry under local `root` with the same path in the volume.
async fn assert_same_tree(fs: &FileSystem, root: &Path) {
    let entries = walk(root);
    assert!(!entries.is_empty());
    for rel in entries {
        let local = root.join(&rel);
        let vol = Path::new("/").join(&rel);
        let lmeta = std::fs::symlink_metadata(&local).unwrap();
        let vmeta = fs
            .symlink_metadata(&vol)
            .await
            .unwrap_or_else(|e| panic!("{vol:?} missing in volume: {e}"));
        if lmeta.file_type().is_symlink() {
            assert!(
                vmeta.file_type().is_symlink(),
                "{vol:?} should be a symlink"
            );
            assert_eq!(
                fs.read_link(&vol).await.unwrap(),
                std::fs::read_link(&local).unwrap()
            );
        } else if lmeta.is_dir() {
            assert!(vmeta.is_dir(), "{vol:?} should be a directory");
        } else {
            assert_eq!(vmeta.len(), lmeta.len(), "length of {vol:?}");
            let want = std::fs::read(&local).unwrap();
            let got = fs.read(&vol).await.unwrap();
            assert!(got == want, "bytes of {vol:?} differ");
        }
    }
}

/// A local tree like the issue asks: one big file, many small files, nesting, an empty file.
fn juicefs_side_tree(root: &Path, big: usize, small: usize) {
    std::fs::create_dir_all(root.join("nested/deeper/deepest")).unwrap();
    std::fs::create_dir_all(root.join("small")).unwrap();
    std::fs::write(root.join("big.bin"), pattern(1, big)).unwrap();
    for i in 0..small {
        let len = 1 + (i * 7919) % 20_000;
        std::fs::write(
            root.join(format!("small/f{i:04}")),
            pattern(100 + i as u64, len),
        )
        .unwrap();
    }
    std::fs::write(root.join("nested/deeper/deepest/leaf.txt"), b"leaf\n").unwrap();
    std::fs::write(root.join("empty"), b"").unwrap();
    std::os::unix::fs::symlink("nested/deeper", root.join("link")).unwrap();
}

async fn juicefs_writes_vfs_reads(jfs: &Juicefs, compress: &str, big: usize, small: usize) {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("meta.db"));
    jfs.format_sqlite_file(
        &url,
        "jfs-writes",
        &dir.path().join("bucket"),
        &["--compress", compress],
    );
    let src = dir.path().join("src");
    juicefs_side_tree(&src, big, small);
    jfs.sync(&url, &format!("{}/", src.display()), "jfs://VOL/", &[]);
    let fs = open_fs(&url).await;
    assert_same_tree(&fs, &src).await;
    fs.close().await.unwrap();
}

async fn vfs_writes_juicefs_reads(jfs: &Juicefs, compress: &str) {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("meta.db"));
    jfs.format_sqlite_file(
        &url,
        "vfs-writes",
        &dir.path().join("bucket"),
        &["--compress", compress],
    );
    let fs = open_fs(&url).await;
    fs.create_dir_all("/a/b/c").await.unwrap();
    fs.write("/a/b/c/hello.txt", b"hello from vfs-core\n")
        .await
        .unwrap();
    fs.write("/a/empty", b"").await.unwrap();
    // Crosses block (4 MiB) and chunk (64 MiB) boundaries.
    fs.write("/a/big.bin", pattern(7, 70 * MIB + 12_345))
        .await
        .unwrap();
    // A sparse file: data, a hole across the chunk boundary, data at the end.
    let sparse = fs.create("/a/sparse").await.unwrap();
    sparse.write_at(b"head", 0).await.unwrap();
    sparse.write_at(b"tail", 65 * MIB as u64).await.unwrap();
    sparse.close().await.unwrap();
    // A file overwritten in the middle after it was closed once.
    fs.write("/a/over.bin", pattern(8, 9 * MIB)).await.unwrap();
    let f = fs
        .open_options()
        .write(true)
        .open("/a/over.bin")
        .await
        .unwrap();
    f.write_at(&pattern(9, 3 * MIB), 4 * MIB as u64 + 17)
        .await
        .unwrap();
    f.close().await.unwrap();
    fs.create_dir_all("/many").await.unwrap();
    for i in 0..50u64 {
        fs.write(
            format!("/many/f{i}"),
            pattern(200 + i, 1000 + i as usize * 3000),
        )
        .await
        .unwrap();
    }
    fs.symlink("b/c/hello.txt", "/a/link").await.unwrap();
    fs.close().await.unwrap();

    // What each file must contain.
    let mut over = pattern(8, 9 * MIB);
    over[4 * MIB + 17..7 * MIB + 17].copy_from_slice(&pattern(9, 3 * MIB));
    let mut sparse_want = vec![0u8; 65 * MIB + 4];
    sparse_want[..4].copy_from_slice(b"head");
    sparse_want[65 * MIB..].copy_from_slice(b"tail");

    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    jfs.sync(&url, "jfs://VOL/", &format!("{}/", out.display()), &[]);
    let read = |p: &str| std::fs::read(out.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    assert_eq!(read("a/b/c/hello.txt"), b"hello from vfs-core\n");
    assert!(read("a/empty").is_empty());
    assert!(
        read("a/big.bin") == pattern(7, 70 * MIB + 12_345),
        "big.bin differs"
    );
    assert!(read("a/sparse") == sparse_want, "sparse differs");
    assert!(read("a/over.bin") == over, "over.bin differs");
    for i in 0..50u64 {
        assert_eq!(
            read(&format!("many/f{i}")),
            pattern(200 + i, 1000 + i as usize * 3000)
        );
    }
    assert_eq!(
        std::fs::read_link(out.join("a/link")).unwrap(),
        Path::new("b/c/hello.txt")
    );
    jfs.fsck(&url);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn juicefs_writes_tree_vfs_reads_every_byte() {
    let Some(jfs) = Juicefs::from_env() else {
        return;
    };
    juicefs_writes_vfs_reads(&jfs, "none", 200 * MIB, 500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vfs_writes_tree_juicefs_reads_every_byte_and_fsck_is_clean() {
    let Some(jfs) = Juicefs::from_env() else {
        return;
    };
    vfs_writes_juicefs_reads(&jfs, "none").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lz4_volumes_interoperate_both_ways() {
    let Some(jfs) = Juicefs::from_env() else {
        return;
    };
    juicefs_writes_vfs_reads(&jfs, "lz4", 9 * MIB + 3, 40).await;
    vfs_writes_juicefs_reads(&jfs, "lz4").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zstd_volumes_interoperate_both_ways() {
    let Some(jfs) = Juicefs::from_env() else {
        return;
    };
    juicefs_writes_vfs_reads(&jfs, "zstd", 9 * MIB + 3, 40).await;
    vfs_writes_juicefs_reads(&jfs, "zstd").await;
}
