//! Data interop scenarios with the real juicefs client, shared by the per-engine tests.

use std::path::Path;

use crate::tree::{pattern, walk};
use crate::Juicefs;
use vfs_core::{FileSystem, VolumeBuilder};

/// One mebibyte.
pub const MIB: usize = 1 << 20;

/// Opens the volume at `url` through vfs-core's path-level API.
pub async fn open_fs(url: &str) -> FileSystem {
    let vfs = VolumeBuilder::new(url)
        .open()
        .await
        .expect("open juicefs volume in vfs-core");
    FileSystem::new(vfs)
}

/// Our fsck of the whole volume, which must be clean.
pub async fn assert_fsck_clean(fs: &FileSystem) {
    use vfs_core::upkeep::{FsckOptions, Progress};
    let report = fs
        .vfs()
        .fsck(
            &FsckOptions::default(),
            (meta_api::ROOT_INO, "/".into()),
            &Progress::default(),
        )
        .await
        .unwrap();
    assert!(report.is_clean(), "{report:?}");
}

/// Compares every entry under local `root` with the same path in the volume.
pub async fn assert_same_tree(fs: &FileSystem, root: &Path) {
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
pub fn juicefs_side_tree(root: &Path, big: usize, small: usize) {
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

/// juicefs formats `url` and writes a tree with `juicefs sync`; vfs-core reads every byte.
pub async fn juicefs_writes_vfs_reads(
    jfs: &Juicefs,
    url: &str,
    compress: &str,
    big: usize,
    small: usize,
) {
    let dir = tempfile::tempdir().unwrap();
    jfs.format_file_volume(
        url,
        "jfs-writes",
        &dir.path().join("bucket"),
        &["--compress", compress],
    );
    let src = dir.path().join("src");
    juicefs_side_tree(&src, big, small);
    jfs.sync(url, &format!("{}/", src.display()), "jfs://VOL/", &[]);
    let fs = open_fs(url).await;
    assert_same_tree(&fs, &src).await;
    fs.close().await.unwrap();
}

/// juicefs formats `url`; vfs-core writes a tree (sparse, overwritten, multi-chunk files);
/// `juicefs sync` reads every byte back and `juicefs fsck` is clean.
pub async fn vfs_writes_juicefs_reads(jfs: &Juicefs, url: &str, compress: &str) {
    let dir = tempfile::tempdir().unwrap();
    jfs.format_file_volume(
        url,
        "vfs-writes",
        &dir.path().join("bucket"),
        &["--compress", compress],
    );
    let fs = open_fs(url).await;
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
    jfs.sync(url, "jfs://VOL/", &format!("{}/", out.display()), &[]);
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
    jfs.fsck(url);
}

/// Parses juicefs gc's summary line (`scanned N objects, V valid, P pending delete (B
/// bytes), C compacted (B bytes), L leaked (B bytes), …, S skipped (B bytes)`) into
/// `(scanned, valid, leaked, skipped)`.
pub fn juicefs_gc_counts(output: &str) -> (u64, u64, u64, u64) {
    let line = output
        .lines()
        .find(|l| l.contains("scanned ") && l.contains(" leaked"))
        .unwrap_or_else(|| panic!("no summary line in juicefs gc output:\n{output}"));
    let after = line.split("scanned ").nth(1).unwrap_or("");
    let number_before = |word: &str| -> u64 {
        let at = after
            .find(word)
            .unwrap_or_else(|| panic!("no {word:?} in {line:?}"));
        after[..at]
            .trim_end()
            .rsplit([' ', ','])
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no count before {word:?} in {line:?}"))
    };
    (
        number_before(" objects"),
        number_before(" valid"),
        number_before(" leaked"),
        number_before(" skipped"),
    )
}

/// Sets the modification time of every file under `dir` to two hours ago, so that gc
/// (ours and juicefs's) no longer treats the objects as uploads in flight.
fn age_objects(dir: &Path) {
    let out = std::process::Command::new("find")
        .arg(dir)
        .args([
            "-type",
            "f",
            "-exec",
            "touch",
            "-d",
            "2 hours ago",
            "{}",
            "+",
        ])
        .output()
        .unwrap_or_else(|e| panic!("find: {e}"));
    assert!(out.status.success(), "aging objects failed: {out:?}");
}

/// Compaction and gc across both clients on `url` (formatted here by juicefs, with a
/// local-directory bucket): files this library wrote slice by slice and compacted read back
/// byte-identical through juicefs; files it wrote and juicefs compacted (`gc --compact`)
/// read back here; after our compaction and deletes `juicefs gc` finds no leaked object,
/// and both gc report the same counts on the same volume (one stray object planted).
pub async fn compaction_and_gc_interoperate(jfs: &Juicefs, url: &str) {
    use vfs_core::upkeep::{GcOptions, Progress};

    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    jfs.format_file_volume(url, "compaction", &bucket, &[]);
    let fs = open_fs(url).await;
    // Two logs of many small synced appends: one we compact, one juicefs compacts.
    let mut want = Vec::new();
    for name in ["/ours.log", "/theirs.log"] {
        let f = fs.create(name).await.unwrap();
        let mut data = Vec::new();
        for i in 0..40u64 {
            let piece = pattern(300 + i, 1000 + i as usize * 37);
            f.write_at(&piece, data.len() as u64).await.unwrap();
            f.sync_all().await.unwrap();
            data.extend_from_slice(&piece);
        }
        f.close().await.unwrap();
        want.push(data);
    }
    // A file written and removed: its objects are deleted by the purge.
    fs.write("/gone", pattern(9, 3 * MIB)).await.unwrap();
    fs.remove_file("/gone").await.unwrap();
    fs.vfs().purge_deleted().await.unwrap();
    let ours = fs.symlink_metadata("/ours.log").await.unwrap().ino();
    let stats = fs.vfs().compact(ours).await.unwrap();
    assert_eq!((stats.records_before, stats.replaced), (40, 40));
    fs.close().await.unwrap();

    // juicefs compacts the other log (and finds nothing of ours to delete). First: a juicefs
    // client reading a chunk of 40 records compacts it in the background, and `juicefs sync`
    // exiting mid-way would leak that compaction's new objects.
    jfs.run(&["gc", "--compact", "--delete", url], &[]);
    // juicefs reads what we compacted, and what it compacted.
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    jfs.sync(url, "jfs://VOL/", &format!("{}/", out.display()), &[]);
    assert!(
        std::fs::read(out.join("ours.log")).unwrap() == want[0],
        "ours.log differs"
    );
    assert!(
        std::fs::read(out.join("theirs.log")).unwrap() == want[1],
        "theirs.log differs through juicefs"
    );
    let fs = open_fs(url).await;
    let theirs = fs.symlink_metadata("/theirs.log").await.unwrap().ino();
    let info = fs.vfs().file_info(theirs).await.unwrap();
    assert_eq!(info.chunks[0].1.len(), 1, "juicefs compacted theirs.log");
    assert!(
        fs.read("/theirs.log").await.unwrap() == want[1],
        "theirs.log differs"
    );
    assert!(
        fs.read("/ours.log").await.unwrap() == want[0],
        "ours.log differs"
    );
    assert_fsck_clean(&fs).await;

    // Both gc, on the same volume with one stray object, agree.
    let volume_dir = bucket.join("compaction");
    let stray = volume_dir.join("chunks/0/0/999999_0_10");
    std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
    std::fs::write(&stray, b"0123456789").unwrap();
    age_objects(&volume_dir);
    let report = fs
        .vfs()
        .gc(&GcOptions::default(), &Progress::default())
        .await
        .unwrap();
    fs.close().await.unwrap();
    let text = {
        let o = jfs.run(&["gc", url], &[]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let (scanned, valid, leaked, skipped) = juicefs_gc_counts(&text);
    assert_eq!(
        (
            report.listed.count,
            report.valid.count,
            report.leaked.count,
            report.young.count
        ),
        (scanned, valid, leaked, skipped),
        "our gc {report:?} vs juicefs gc: {text}"
    );
    assert_eq!(leaked, 1, "only the planted object is leaked");
    std::fs::remove_file(&stray).unwrap();
    jfs.fsck(url);
}

/// One client's share of [`gc_under_load_keeps_every_byte`]: its own three files, changed by
/// writes, overwrites, copies between them, truncates and compactions, each change synced;
/// returns the files' paths and what each must hold.
async fn churn(fs: FileSystem, tag: u64, rounds: u64) -> Vec<(String, Vec<u8>)> {
    let vfs = fs.vfs().clone();
    let ctx = meta_api::Context::root();
    let mut files = Vec::new();
    for i in 0..3 {
        let name = format!("c{tag}-{i}");
        let (e, fh) = vfs
            .create(
                &ctx,
                meta_api::ROOT_INO,
                name.as_bytes(),
                0o644,
                libc::O_RDWR,
            )
            .await
            .unwrap();
        files.push((format!("/{name}"), e.ino, fh, Vec::<u8>::new()));
    }
    let mut x = tag.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    const BLOCK: u64 = 4 << 20;
    for round in 0..rounds {
        let f = next(3) as usize;
        match next(5) {
            0 | 1 => {
                let off = next(2 * BLOCK);
                let len = 1 + next(256 << 10) as usize;
                let data = pattern(tag * 1000 + round, len);
                let (_, _, fh, want) = &mut files[f];
                vfs.write(&ctx, *fh, off, data.clone().into())
                    .await
                    .unwrap();
                let end = off as usize + len;
                if want.len() < end {
                    want.resize(end, 0);
                }
                want[off as usize..end].copy_from_slice(&data);
            }
            2 => {
                let g = (f + 1) % 3;
                let src_len = files[f].3.len() as u64;
                if src_len > 0 {
                    let off_in = next(src_len);
                    let len = 1 + next(src_len - off_in);
                    let off_out = next(BLOCK);
                    let (fin, fout) = (files[f].2, files[g].2);
                    let n = vfs
                        .copy_file_range(&ctx, fin, off_in, fout, off_out, len, 0)
                        .await
                        .unwrap();
                    assert_eq!(n, len);
                    let piece = files[f].3[off_in as usize..(off_in + len) as usize].to_vec();
                    let want = &mut files[g].3;
                    let end = (off_out + len) as usize;
                    if want.len() < end {
                        want.resize(end, 0);
                    }
                    want[off_out as usize..end].copy_from_slice(&piece);
                }
            }
            3 => {
                let (_, _, fh, want) = &mut files[f];
                let len = next(BLOCK) as usize;
                vfs.ftruncate(&ctx, *fh, len as u64).await.unwrap();
                want.resize(len, 0);
            }
            _ => {
                vfs.compact(files[f].1).await.unwrap();
            }
        }
        vfs.fsync(&ctx, files[f].2, false).await.unwrap();
    }
    let mut out = Vec::new();
    for (path, _, fh, want) in files {
        vfs.release(&ctx, fh).await.unwrap();
        out.push((path, want));
    }
    fs.close().await.unwrap();
    out
}

/// `gc --delete` runs over and over while two clients write, overwrite, copy_file_range,
/// truncate and compact on `url` (formatted here by juicefs); afterwards every file reads
/// back byte-identical, through this library and through juicefs, and `juicefs fsck` is
/// clean.
pub async fn gc_under_load_keeps_every_byte(jfs: &Juicefs, url: &str) {
    use vfs_core::upkeep::{GcOptions, Progress};

    let dir = tempfile::tempdir().unwrap();
    jfs.format_file_volume(url, "gc-load", &dir.path().join("bucket"), &[]);
    let gc_fs = open_fs(url).await;
    let a = tokio::spawn(churn(open_fs(url).await, 1, 150));
    let b = tokio::spawn(churn(open_fs(url).await, 2, 150));
    // Every change is synced at once: one second is ample for "upload in flight".
    let opts = GcOptions {
        delete: true,
        min_age: std::time::Duration::from_secs(1),
        ..GcOptions::default()
    };
    let mut rounds = 0;
    while !(a.is_finished() && b.is_finished()) {
        gc_fs.vfs().gc(&opts, &Progress::default()).await.unwrap();
        rounds += 1;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut files = a.await.unwrap();
    files.extend(b.await.unwrap());
    assert!(rounds > 3, "gc ran only {rounds} times");
    for (path, want) in &files {
        assert!(&gc_fs.read(path).await.unwrap() == want, "{path} differs");
    }
    gc_fs.close().await.unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    jfs.sync(url, "jfs://VOL/", &format!("{}/", out.display()), &[]);
    for (path, want) in &files {
        let got = std::fs::read(out.join(path.trim_start_matches('/'))).unwrap();
        assert!(&got == want, "{path} differs through juicefs");
    }
    jfs.fsck(url);
}

/// Every regular file below local `root` (any depth) and its bytes, sorted by the bytes.
fn file_contents(root: &Path) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = walk(root)
        .into_iter()
        .map(|rel| root.join(rel))
        .filter(|p| p.is_file())
        .map(|p| std::fs::read(&p).unwrap_or_else(|e| panic!("{p:?}: {e}")))
        .collect();
    out.sort();
    out
}

/// The names of the trash's hour directories, as this library lists them.
async fn trash_hours(fs: &FileSystem) -> Vec<String> {
    fs.vfs()
        .meta()
        .readdir(
            &meta_api::Context::root(),
            meta_api::TRASH_INO,
            None,
            100,
            false,
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| String::from_utf8(e.name).unwrap())
        .collect()
}

/// The trash both ways on a volume juicefs formats with one trash day: what this library
/// deletes (unlink, `remove_dir_all`, rename over a file) juicefs shows under `.trash` and
/// `juicefs restore --put-back` brings back byte-identical; what juicefs deletes (`juicefs
/// sync --delete-dst`) `Vfs::restore` brings back; `juicefs fsck` is clean after each.
pub async fn trash_interoperates(jfs: &Juicefs, url: &str) {
    let dir = tempfile::tempdir().unwrap();
    jfs.format_file_volume(
        url,
        "trash-interop",
        &dir.path().join("bucket"),
        &["--trash-days", "1"],
    );
    let (a, b, old, new, keep) = (
        pattern(11, 300_000),
        pattern(12, 5 * MIB + 3),
        pattern(13, 1000),
        pattern(14, 2000),
        pattern(15, 10),
    );
    let fs = open_fs(url).await;
    fs.create_dir_all("/d/e").await.unwrap();
    fs.write("/d/a", &a).await.unwrap();
    fs.write("/d/e/b", &b).await.unwrap();
    fs.write("/over", &old).await.unwrap();
    fs.write("/new", &new).await.unwrap();
    fs.write("/keep", &keep).await.unwrap();
    fs.rename("/new", "/over").await.unwrap();
    fs.remove_dir_all("/d").await.unwrap();
    let hours = trash_hours(&fs).await;
    fs.close().await.unwrap();
    assert_eq!(hours.len(), 1, "one hour directory: {hours:?}");
    let hour = &hours[0];

    // juicefs's view of the trash: the three files with their bytes, flat in the hour.
    let seen = dir.path().join("trash");
    std::fs::create_dir_all(&seen).unwrap();
    jfs.sync(
        url,
        "jfs://VOL/.trash/",
        &format!("{}/", seen.display()),
        &[],
    );
    let mut want = vec![a.clone(), b.clone(), old.clone()];
    want.sort();
    assert!(
        file_contents(&seen) == want,
        "juicefs sees the deleted files in .trash"
    );
    let dump = jfs.dump(url);
    let entries = &dump["Trash"]["entries"][hour.as_str()]["entries"];
    assert_eq!(
        entries.as_object().map(|o| o.len()),
        Some(5),
        "three files and two directories in {hour}: {entries}"
    );
    jfs.fsck(url);

    // juicefs puts it back; /over is taken by the new file, so the old one stays.
    jfs.run(&["restore", url, hour, "--put-back"], &[]);
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    jfs.sync(url, "jfs://VOL/", &format!("{}/", out.display()), &[]);
    let read = |p: &str| std::fs::read(out.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    assert!(read("d/a") == a, "d/a restored by juicefs");
    assert!(read("d/e/b") == b, "d/e/b restored by juicefs");
    assert!(read("over") == new && read("keep") == keep);
    jfs.fsck(url);

    // juicefs deletes d/a (into the trash); this library restores it.
    std::fs::remove_file(out.join("d/a")).unwrap();
    jfs.sync(
        url,
        &format!("{}/", out.display()),
        "jfs://VOL/",
        &["--delete-dst"],
    );
    let fs = open_fs(url).await;
    assert!(!fs.exists("/d/a").await, "juicefs deleted it");
    let hour = trash_hours(&fs).await.pop().expect("an hour directory");
    let through_path = fs.metadata(format!("/.trash/{hour}")).await.unwrap();
    assert!(
        through_path.is_dir(),
        "/.trash resolves through the path API"
    );
    let r = fs.vfs().restore(hour.as_bytes(), true).await.unwrap();
    assert_eq!((r.restored, r.conflicts, r.failed), (1, 1, 0), "{r:?}");
    assert!(fs.read("/d/a").await.unwrap() == a, "d/a restored by us");
    assert!(fs.read("/over").await.unwrap() == new);
    fs.close().await.unwrap();
    jfs.fsck(url);
}

/// Directory quotas on a volume juicefs formats: juicefs sets one over a tree this
/// library filled (and counts it as we do), both clients then create, write, truncate,
/// rename and delete under it (ours into the trash), and `juicefs quota check` agrees with
/// the usage this library kept in its transactions; our own recount agrees; a create past
/// a limit juicefs set is refused here; `juicefs fsck` is clean.
pub async fn quotas_interoperate(jfs: &Juicefs, url: &str) {
    let dir = tempfile::tempdir().unwrap();
    jfs.format_file_volume(
        url,
        "quota-interop",
        &dir.path().join("bucket"),
        &["--trash-days", "1"],
    );
    let fs = open_fs(url).await;
    fs.create_dir_all("/q/a").await.unwrap();
    fs.write("/q/a/f1", pattern(21, 100_000)).await.unwrap();
    fs.write("/q/f2", pattern(22, 5000)).await.unwrap();
    fs.close().await.unwrap();
    jfs.run(
        &[
            "quota",
            "set",
            url,
            "--path",
            "/q",
            "--capacity",
            "1",
            "--inodes",
            "1000",
        ],
        &[],
    );
    jfs.run(&["quota", "check", url, "--path", "/q"], &[]);

    let fs = open_fs(url).await;
    fs.write("/q/a/f3", pattern(23, 3 * MIB)).await.unwrap();
    fs.remove_file("/q/f2").await.unwrap();
    fs.rename("/q/a/f1", "/q/f1").await.unwrap();
    let f = fs.open_options().write(true).open("/q/f1").await.unwrap();
    f.set_len(10).await.unwrap();
    f.close().await.unwrap();
    fs.symlink("f1", "/q/link").await.unwrap();
    fs.close().await.unwrap();

    // juicefs writes a tree under the quota, then deletes part of it.
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("j/k")).unwrap();
    for i in 0..5 {
        std::fs::write(src.join(format!("j/k/x{i}")), pattern(30 + i, 20_000)).unwrap();
    }
    jfs.sync(
        url,
        &format!("{}/", src.display()),
        "jfs://VOL/q/",
        &["--dirs"],
    );
    std::fs::remove_file(src.join("j/k/x0")).unwrap();
    jfs.sync(
        url,
        &format!("{}/j/", src.display()),
        "jfs://VOL/q/j/",
        &["--dirs", "--delete-dst"],
    );

    let fs = open_fs(url).await;
    let vfs = fs.vfs();
    let q = fs.metadata("/q").await.unwrap().ino();
    let checks = vfs
        .check_quotas(meta_api::quota::QuotaKind::Dir, Some(q), false)
        .await
        .unwrap();
    assert!(
        checks.len() == 1 && checks[0].is_consistent(),
        "our recount: {checks:?}"
    );
    // A limit juicefs sets is enforced here, precisely.
    let used = checks[0].stored.used_inodes;
    jfs.run(
        &[
            "quota",
            "set",
            url,
            "--path",
            "/q",
            "--inodes",
            &used.to_string(),
        ],
        &[],
    );
    let fs2 = open_fs(url).await;
    let err = fs2.write("/q/over", b"x").await.unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EDQUOT), "{err}");
    assert!(!fs2.exists("/q/over").await);
    fs2.close().await.unwrap();
    fs.close().await.unwrap();
    jfs.run(&["quota", "check", url, "--path", "/q"], &[]);
    jfs.fsck(url);
}

/// The block objects in a local-directory bucket.
fn block_count(bucket: &Path) -> usize {
    walk(bucket)
        .iter()
        .filter(|p| p.to_string_lossy().contains("/chunks/") && bucket.join(p).is_file())
        .count()
}

/// The "N delfiles" count of `juicefs gc --delete`'s summary line (plain `juicefs gc` does
/// not look at the deletion queue).
fn juicefs_gc_delfiles(output: &str) -> u64 {
    let line = output
        .lines()
        .find(|l| l.contains("scanned ") && l.contains(" delfiles"))
        .unwrap_or_else(|| panic!("no summary line in juicefs gc output:\n{output}"));
    let at = line.find(" delfiles").unwrap_or(0);
    line[..at]
        .rsplit([' ', ','])
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no delfiles count in {line:?}"))
}

/// The output of `juicefs args…`, stdout and stderr.
fn juicefs_text(jfs: &Juicefs, args: &[&str]) -> String {
    let out = jfs.run(args, &[]);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The leaked objects `juicefs gc META` (no deletion) reports.
fn juicefs_leaked(jfs: &Juicefs, url: &str) -> u64 {
    juicefs_gc_counts(&juicefs_text(jfs, &["gc", url])).2
}

/// The files waiting in the volume's deletion queue, as this library reads it.
async fn queued(url: &str) -> usize {
    let meta = vfs_core::connect_meta(url).await.unwrap();
    meta.deleted_files(usize::MAX).await.unwrap().len()
}

/// A tree of `files` small files (one block each) in `dirs` directories under `top`.
async fn small_tree(fs: &FileSystem, top: &str, dirs: usize, files: usize) {
    for d in 0..dirs {
        fs.create_dir_all(format!("{top}/d{d}")).await.unwrap();
    }
    for i in 0..files {
        let data = pattern(i as u64, 1000 + i);
        fs.write(format!("{top}/d{}/f{i}", i % dirs), &data)
            .await
            .unwrap();
    }
}

/// Deleting at scale across both clients on `url` (formatted here by juicefs, trash off):
/// a tree this library removes (engine-side, then purged) leaves nothing `juicefs gc` or
/// `juicefs fsck` complains about; a deletion queue this library leaves is purged by
/// `juicefs gc --delete`; the queue `juicefs rmr` leaves on a juicefs mount (it deletes the
/// data of some files at once and queues the rest) is purged by this library.
pub async fn deletion_interoperates(jfs: &Juicefs, url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    jfs.format_file_volume(url, "delete-interop", &bucket, &[]);

    // Our rmr: nothing left for juicefs to find.
    let fs = open_fs(url).await;
    small_tree(&fs, "/ours", 4, 120).await;
    fs.write("/keep", b"kept").await.unwrap();
    assert_eq!(block_count(&bucket), 121);
    let done = fs
        .remove_dir_all_with("/ours", &Default::default())
        .await
        .unwrap();
    assert_eq!((done.files, done.dirs), (120, 5));
    fs.vfs().purge_deleted().await.unwrap();
    fs.close().await.unwrap();
    assert_eq!(block_count(&bucket), 1, "only /keep's block is left");
    assert_eq!(queued(url).await, 0);
    assert_eq!(
        juicefs_leaked(jfs, url),
        0,
        "juicefs gc finds nothing leaked"
    );
    jfs.fsck(url);

    // A queue we leave (removed through the engine, nothing purged) is purged by juicefs
    // gc --delete.
    let fs = open_fs(url).await;
    small_tree(&fs, "/left", 2, 40).await;
    fs.close().await.unwrap();
    let meta = vfs_core::connect_meta(url).await.unwrap();
    let progress = std::sync::atomic::AtomicU64::new(0);
    let root = meta_api::Context::root();
    meta_api::tree::remove_tree(&*meta, &root, meta_api::ROOT_INO, b"left", &progress)
        .await
        .unwrap();
    drop(meta);
    assert_eq!(block_count(&bucket), 41);
    assert_eq!(queued(url).await, 40);
    let text = juicefs_text(jfs, &["gc", "--delete", url]);
    assert_eq!(
        juicefs_gc_delfiles(&text),
        40,
        "juicefs sees our queue:\n{text}"
    );
    // juicefs deletes a purged file's objects in the background and may exit before the
    // last are gone (seen on a loaded machine): those are counted with the leftovers below.
    assert_eq!(queued(url).await, 0, "juicefs purged our queue");
    jfs.fsck(url);

    // The queue juicefs rmr leaves is purged by us.
    let fs = open_fs(url).await;
    small_tree(&fs, "/theirs", 3, 300).await;
    fs.close().await.unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let m = mnt.to_string_lossy().into_owned();
    let cache = dir.path().join("cache").to_string_lossy().into_owned();
    jfs.run(
        &[
            "mount",
            url,
            &m,
            "-d",
            "--no-usage-report",
            "--cache-dir",
            &cache,
        ],
        &[],
    );
    let removed = jfs.try_run(&["rmr", &format!("{m}/theirs")], &[]);
    jfs.run(&["umount", &m], &[]);
    assert!(removed.status.success(), "juicefs rmr failed: {removed:?}");
    let left = queued(url).await;
    assert!(left > 0, "juicefs rmr leaves files queued");
    // The mount deletes the objects of the files it purged itself in the background, and
    // its umount can cut that short: those objects are left over (young, so its gc does
    // not count them yet), with any the gc above left. The rest is ours to purge.
    let cut_short = block_count(&bucket)
        .checked_sub(1 + left)
        .expect("every queued file still has its block");
    assert_eq!(juicefs_leaked(jfs, url), 0);
    let vfs = VolumeBuilder::new(url)
        .options(vfs_core::VfsOptions::default().purge_interval(None))
        .open()
        .await
        .unwrap();
    assert_eq!(vfs.purge_deleted().await.unwrap(), left);
    vfs.close().await.unwrap();
    assert_eq!(
        block_count(&bucket),
        1 + cut_short,
        "we purged juicefs's queue"
    );
    assert_eq!(queued(url).await, 0);
    assert_eq!(juicefs_leaked(jfs, url), 0);
    jfs.fsck(url);
}

/// Every regular file under `top` in the volume and its bytes, by path below `top`.
async fn volume_files(fs: &FileSystem, top: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut dirs = vec![top.to_string()];
    while let Some(d) = dirs.pop() {
        let mut rd = fs.read_dir(&d).await.unwrap();
        while let Some(e) = rd.next_entry().await.unwrap() {
            let path = format!("{d}/{}", e.file_name().to_string_lossy());
            match e.file_type().kind() {
                meta_api::FileType::Directory => dirs.push(path),
                meta_api::FileType::Regular => {
                    let data = fs.read(&path).await.unwrap();
                    out.push((path[top.len()..].to_string(), data));
                }
                _ => {}
            }
        }
    }
    out.sort();
    out
}

/// Clones across both clients on `url` (formatted here by juicefs, trash off): our clone
/// shares every block (deleting the source deletes no object, `juicefs fsck` is clean,
/// `juicefs gc` finds nothing leaked), `juicefs clone` on a mount of our clone reads back
/// here byte for byte, and deleting every copy frees every block.
pub async fn clone_interoperates(jfs: &Juicefs, url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    jfs.format_file_volume(url, "clone-interop", &bucket, &[]);
    let fs = open_fs(url).await;
    small_tree(&fs, "/src", 3, 60).await;
    fs.symlink("d0/f0", "/src/link").await.unwrap();
    let want = volume_files(&fs, "/src").await;
    let made = fs.clone_tree("/src", "/ours").await.unwrap();
    assert_eq!((made.files, made.dirs), (61, 4));
    assert_eq!(
        fs.read_link("/ours/link").await.unwrap(),
        Path::new("d0/f0")
    );
    assert_eq!(volume_files(&fs, "/ours").await, want);
    fs.remove_dir_all("/src").await.unwrap();
    fs.vfs().purge_deleted().await.unwrap();
    fs.close().await.unwrap();
    assert_eq!(block_count(&bucket), 60, "the clone keeps every block");
    assert_eq!(juicefs_leaked(jfs, url), 0);
    jfs.fsck(url);

    // juicefs clones our clone; we read theirs.
    let mnt = dir.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let m = mnt.to_string_lossy().into_owned();
    let cache = dir.path().join("cache").to_string_lossy().into_owned();
    let mount = [
        "mount",
        url,
        &m,
        "-d",
        "--no-usage-report",
        "--cache-dir",
        &cache,
    ];
    jfs.run(&mount, &[]);
    let cloned = jfs.try_run(
        &["clone", &format!("{m}/ours"), &format!("{m}/theirs")],
        &[],
    );
    jfs.run(&["umount", &m], &[]);
    assert!(cloned.status.success(), "juicefs clone failed: {cloned:?}");
    let fs = open_fs(url).await;
    assert_eq!(volume_files(&fs, "/theirs").await, want);
    fs.remove_dir_all("/ours").await.unwrap();
    fs.vfs().purge_deleted().await.unwrap();
    assert_eq!(
        block_count(&bucket),
        60,
        "juicefs's clone keeps every block"
    );
    fs.remove_dir_all("/theirs").await.unwrap();
    fs.vfs().purge_deleted().await.unwrap();
    fs.close().await.unwrap();
    assert_eq!(block_count(&bucket), 0, "the last copy freed every block");
    assert_eq!(queued(url).await, 0);
    jfs.fsck(url);
}
