//! The path-level API (`FileSystem`, `File`, `OpenOptions`) on an in-memory volume.

// Scenarios are plain async fns run by generated tests: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
#[path = "vfs/support.rs"]
mod support;

use std::ffi::OsStr;
use std::io::{ErrorKind, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use chunkstore::MemStore;
use futures::TryStreamExt;
use meta_api::Context;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use vfs_core::{FileSystem, Permissions};

use support::{pattern, Engine, FaultyStore, Volume};

/// Runs a scenario on every engine of the test volumes.
macro_rules! on_every_engine {
    ($($name:ident),* $(,)?) => {
        $(mod $name {
            use super::*;
            #[tokio::test]
            async fn model() {
                super::$name(Engine::Model).await
            }
            #[tokio::test]
            async fn sqlite() {
                super::$name(Engine::Sqlite).await
            }
        })*
    };
}

on_every_engine!(
    slow_uploads_write_behind_and_drop,
    partial_writes_and_stalling_readers,
    tree_create_read_write_rename_remove,
    remove_dir_all_handles_deep_and_wide_trees,
    symlinks_resolve_like_linux,
    name_and_path_limits,
    async_read_write_seek_through_tokio_io,
    large_sequential_write_reads_back,
    append_mode_writes_at_the_end,
    open_options_errors_match_std,
    copy_link_and_permissions,
    context_controls_permissions,
    dropping_a_file_releases_it_in_the_background,
);

async fn fs_on(vol: &Volume) -> FileSystem {
    FileSystem::new(vol.client().await)
}

fn errno(e: &std::io::Error) -> i32 {
    e.raw_os_error()
        .unwrap_or_else(|| panic!("no errno in {e:?}"))
}

/// Names in a directory, sorted.
async fn names(fs: &FileSystem, dir: &str) -> Vec<String> {
    let mut rd = fs.read_dir(dir).await.unwrap();
    let mut out = Vec::new();
    while let Some(e) = rd.next_entry().await.unwrap() {
        out.push(e.file_name().to_string_lossy().into_owned());
    }
    out.sort();
    out
}

async fn tree_create_read_write_rename_remove(engine: Engine) {
    let vol = Volume::new(engine).await;
    let fs = fs_on(&vol).await;
    fs.create_dir_all("/a/b/c").await.unwrap();
    fs.create_dir_all("a/b/c/").await.unwrap();
    fs.create_dir("/a/d").await.unwrap();
    assert_eq!(
        fs.create_dir("/a/d").await.unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        fs.create_dir("/x/y").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    fs.write("/a/b/c/f.txt", "hello").await.unwrap();
    fs.write("a/top", vec![7u8; 100_000]).await.unwrap();
    assert_eq!(fs.read_to_string("/a/b/c/f.txt").await.unwrap(), "hello");
    assert_eq!(fs.read("/a/top").await.unwrap(), vec![7u8; 100_000]);
    // Writing again replaces the contents.
    fs.write("/a/b/c/f.txt", "hi").await.unwrap();
    assert_eq!(fs.read("/a/b/c/f.txt").await.unwrap(), b"hi");
    assert_eq!(
        fs.create_dir_all("/a/top/x")
            .await
            .unwrap_err()
            .raw_os_error(),
        Some(libc::ENOTDIR)
    );
    assert_eq!(
        fs.create_dir_all("/a/top").await.unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );

    assert_eq!(names(&fs, "/a").await, ["b", "d", "top"]);
    let meta = fs.metadata("/a/top").await.unwrap();
    assert!(meta.is_file() && !meta.is_dir());
    assert_eq!(meta.len(), 100_000);
    assert_eq!(meta.nlink(), 1);
    assert!(fs.metadata("/a").await.unwrap().is_dir());
    assert!(meta.modified().unwrap() > UNIX_EPOCH);

    // Eager and lazy metadata in listings agree.
    let mut rd = fs.read_dir_plus("/a").await.unwrap();
    while let Some(e) = rd.next_entry().await.unwrap() {
        let cached = e
            .cached_metadata()
            .expect("read_dir_plus brings attributes");
        assert_eq!(cached.ino(), e.ino());
        assert_eq!(cached.file_type(), e.file_type());
        assert_eq!(e.path(), Path::new("/a").join(e.file_name()));
    }
    let entries: Vec<_> = fs
        .read_dir("/a")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(entries.len(), 3);
    for e in &entries {
        assert!(e.cached_metadata().is_none());
        let m = e.metadata().await.unwrap();
        assert_eq!(m.file_type(), e.file_type());
        if e.file_name() == "top" {
            assert_eq!(m.len(), 100_000);
        }
    }

    fs.rename("/a/b", "/a/moved").await.unwrap();
    assert_eq!(fs.read("/a/moved/c/f.txt").await.unwrap(), b"hi");
    assert!(!fs.try_exists("/a/b").await.unwrap());
    assert_eq!(
        fs.remove_dir("/a/moved").await.unwrap_err().kind(),
        ErrorKind::DirectoryNotEmpty
    );
    assert_eq!(
        fs.remove_file("/a/moved").await.unwrap_err().raw_os_error(),
        Some(libc::EISDIR)
    );
    assert_eq!(
        fs.remove_dir_all("/a/top")
            .await
            .unwrap_err()
            .raw_os_error(),
        Some(libc::ENOTDIR)
    );
    fs.remove_file("/a/top").await.unwrap();
    fs.remove_dir("/a/d").await.unwrap();
    fs.remove_dir_all("/a").await.unwrap();
    assert!(!fs.exists("/a").await);
    assert!(names(&fs, "/").await.is_empty());
    fs.close().await.unwrap();
}

async fn remove_dir_all_handles_deep_and_wide_trees(engine: Engine) {
    let vol = Volume::new(engine).await;
    let fs = fs_on(&vol).await;
    // Deep enough that a recursive async walk would be a liability.
    let deep = "/d".repeat(1000);
    fs.create_dir_all(format!("/root{deep}")).await.unwrap();
    fs.write(format!("/root{deep}/leaf"), "x").await.unwrap();
    // Wider than one listing page.
    fs.create_dir("/root/wide").await.unwrap();
    for i in 0..1100 {
        fs.write(format!("/root/wide/f{i}"), [i as u8])
            .await
            .unwrap();
    }
    fs.symlink("/root", "/root/wide/loop").await.unwrap();
    fs.write("/keep", "x").await.unwrap();
    fs.symlink("/keep", "/link-to-keep").await.unwrap();
    fs.remove_dir_all("/root").await.unwrap();
    assert_eq!(names(&fs, "/").await, ["keep", "link-to-keep"]);
    // A symbolic link is removed itself, not followed.
    fs.remove_dir_all("/link-to-keep").await.unwrap();
    assert_eq!(fs.read("/keep").await.unwrap(), b"x");
    fs.close().await.unwrap();
}

async fn symlinks_resolve_like_linux(engine: Engine) {
    let vol = Volume::new(engine).await;
    let fs = fs_on(&vol).await;
    fs.create_dir_all("/data/sub").await.unwrap();
    fs.write("/data/sub/file", "content").await.unwrap();
    fs.symlink("/data/sub", "/abs").await.unwrap();
    fs.symlink("sub/file", "/data/rel").await.unwrap();
    fs.symlink("..", "/data/sub/up").await.unwrap();
    fs.symlink("/abs/file", "/chain1").await.unwrap();
    fs.symlink("chain1", "/chain2").await.unwrap();
    fs.symlink("/nowhere", "/dangling").await.unwrap();

    assert_eq!(fs.read("/abs/file").await.unwrap(), b"content");
    assert_eq!(fs.read("/data/rel").await.unwrap(), b"content");
    assert_eq!(fs.read("/data/sub/up/sub/file").await.unwrap(), b"content");
    assert_eq!(fs.read("/chain2").await.unwrap(), b"content");
    // `..` after a link goes to the parent of the link's target.
    assert_eq!(fs.read("/abs/../rel").await.unwrap(), b"content");
    // `..` at the root stays there.
    assert_eq!(fs.read("/../../data/rel").await.unwrap(), b"content");
    assert_eq!(fs.read("../data/./sub//file").await.unwrap(), b"content");

    assert!(fs.symlink_metadata("/chain2").await.unwrap().is_symlink());
    assert!(fs.metadata("/chain2").await.unwrap().is_file());
    assert_eq!(
        fs.read_link("/data/rel").await.unwrap(),
        Path::new("sub/file")
    );
    assert_eq!(
        fs.read_link("/data").await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        fs.canonicalize("/chain2").await.unwrap(),
        Path::new("/data/sub/file")
    );
    assert_eq!(
        fs.canonicalize("/abs/up/sub/..").await.unwrap(),
        Path::new("/data")
    );
    assert_eq!(fs.canonicalize("/..").await.unwrap(), Path::new("/"));
    assert_eq!(
        fs.metadata("/dangling").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(fs.symlink_metadata("/dangling").await.is_ok());
    assert!(!fs.try_exists("/dangling").await.unwrap());
    // Creating through a dangling link creates its target.
    fs.symlink("/data/made", "/maker").await.unwrap();
    fs.write("/maker", "new").await.unwrap();
    assert_eq!(fs.read("/data/made").await.unwrap(), b"new");

    // A file used as a directory.
    let e = fs.metadata("/data/sub/file/x").await.unwrap_err();
    assert_eq!(errno(&e), libc::ENOTDIR);
    let e = fs.metadata("/data/rel/").await.unwrap_err();
    assert_eq!(errno(&e), libc::ENOTDIR);

    // Loops, and the 40-link limit.
    fs.symlink("/self", "/self").await.unwrap();
    assert_eq!(errno(&fs.metadata("/self").await.unwrap_err()), libc::ELOOP);
    assert_eq!(errno(&fs.read("/self/x").await.unwrap_err()), libc::ELOOP);
    fs.write("/target", "t").await.unwrap();
    fs.symlink("/target", "/l0").await.unwrap();
    for i in 1..=40 {
        fs.symlink(format!("/l{}", i - 1), format!("/l{i}"))
            .await
            .unwrap();
    }
    // l39 is 40 links from the target; l40 is 41.
    assert_eq!(fs.read("/l39").await.unwrap(), b"t");
    assert_eq!(errno(&fs.read("/l40").await.unwrap_err()), libc::ELOOP);
    assert!(fs.symlink_metadata("/l40").await.unwrap().is_symlink());
    fs.close().await.unwrap();
}

async fn name_and_path_limits(engine: Engine) {
    let vol = Volume::new(engine).await;
    let fs = fs_on(&vol).await;
    let long = "n".repeat(256);
    let e = fs.create_dir(format!("/{long}")).await.unwrap_err();
    assert_eq!(errno(&e), libc::ENAMETOOLONG);
    let e = fs.metadata(format!("/{long}/x")).await.unwrap_err();
    assert_eq!(errno(&e), libc::ENAMETOOLONG);
    fs.create_dir(format!("/{}", "n".repeat(255)))
        .await
        .unwrap();
    let e = fs.metadata("/a".repeat(2049)).await.unwrap_err();
    assert_eq!(errno(&e), libc::ENAMETOOLONG);
    assert_eq!(
        fs.metadata("").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    // Names are bytes, not UTF-8.
    let raw = OsStr::from_bytes(b"/caf\xe9");
    fs.write(raw, "latin1").await.unwrap();
    let mut rd = fs.read_dir("/").await.unwrap();
    let mut found = false;
    while let Some(e) = rd.next_entry().await.unwrap() {
        found |= e.name_bytes() == b"caf\xe9";
    }
    assert!(found);
    assert_eq!(fs.read(raw).await.unwrap(), b"latin1");
    fs.close().await.unwrap();
}

async fn async_read_write_seek_through_tokio_io(engine: Engine) {
    let vol = Volume::new(engine).await;
    let fs = fs_on(&vol).await;
    let data = pattern(1, 0, 300_000);
    let mut f = fs.create("/f").await.unwrap();
    let copied = tokio::io::copy(&mut &data[..], &mut f).await.unwrap();
    assert_eq!(copied, data.len() as u64);
    f.shutdown().await.unwrap();
    // Closed: further writes are refused.
    assert_eq!(errno(&f.write(b"x").await.unwrap_err()), libc::EBADF);

    let mut f = fs.open("/f").await.unwrap();
    let mut back = Vec::new();
    f.read_to_end(&mut back).await.unwrap();
    assert!(back == data);
    // Partial reads with a small buffer walk the file exactly.
    let mut f = fs.open("/f").await.unwrap();
    let mut small = [0u8; 7];
    let mut got = Vec::new();
    loop {
        let n = f.read(&mut small).await.unwrap();
        if n == 0 {
            break;
        }
        assert!(n <= 7);
        got.extend_from_slice(&small[..n]);
    }
    assert!(got == data);

    // Seeks from the end, the current position and the start.
    let end = f.seek(SeekFrom::End(-10)).await.unwrap();
    assert_eq!(end, data.len() as u64 - 10);
    let mut tail = Vec::new();
    f.read_to_end(&mut tail).await.unwrap();
    assert_eq!(tail, data[data.len() - 10..]);
    assert_eq!(
        f.seek(SeekFrom::Current(-20)).await.unwrap(),
        data.len() as u64 - 20
    );
    let mut five = [0u8; 5];
    f.read_exact(&mut five).await.unwrap();
    assert_eq!(five, data[data.len() - 20..data.len() - 15]);
    assert_eq!(f.stream_position().await.unwrap(), data.len() as u64 - 15);
    f.seek(SeekFrom::Start(1000)).await.unwrap();
    f.read_exact(&mut five).await.unwrap();
    assert_eq!(five, data[1000..1005]);
    let e = f.seek(SeekFrom::Current(-2000)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    // Past the end reads nothing.
    f.seek(SeekFrom::End(100)).await.unwrap();
    assert_eq!(f.read(&mut five).await.unwrap(), 0);
    // A read-only file refuses writes.
    assert_eq!(errno(&f.write(b"no").await.unwrap_err()), libc::EBADF);
    f.close().await.unwrap();

    // Read and write on one handle: overwrite in the middle, read it back.
    let mut f = fs
        .open_options()
        .read(true)
        .write(true)
        .open("/f")
        .await
        .unwrap();
    f.seek(SeekFrom::Start(10)).await.unwrap();
    f.write_all(b"MIDDLE").await.unwrap();
    assert_eq!(f.stream_position().await.unwrap(), 16);
    f.seek(SeekFrom::Start(8)).await.unwrap();
    let mut ten = [0u8; 10];
    f.read_exact(&mut ten).await.unwrap();
    assert_eq!(&ten[2..8], b"MIDDLE");
    assert_eq!(ten[..2], data[8..10]);
    f.flush().await.unwrap();
    // Positional I/O leaves the cursor alone.
    let mut buf = [0u8; 6];
    assert_eq!(f.read_at(&mut buf, 10).await.unwrap(), 6);
    assert_eq!(&buf, b"MIDDLE");
    f.write_at(b"END", data.len() as u64).await.unwrap();
    assert_eq!(f.stream_position().await.unwrap(), 18);
    assert_eq!(f.metadata().await.unwrap().len(), data.len() as u64 + 3);
    f.set_len(100).await.unwrap();
    assert_eq!(f.seek(SeekFrom::End(0)).await.unwrap(), 100);
    f.close().await.unwrap();
    assert_eq!(fs.metadata("/f").await.unwrap().len(), 100);
    fs.close().await.unwrap();
}

async fn large_sequential_write_reads_back(engine: Engine) {
    let vol = Volume::new(engine).await;
    let fs = fs_on(&vol).await;
    let total = 24 << 20;
    let data = pattern(9, 0, total);
    let mut f = fs.create("/big").await.unwrap();
    // Uneven pieces, so writes straddle the 64 KiB blocks.
    for piece in data.chunks(100_003) {
        f.write_all(piece).await.unwrap();
    }
    f.sync_all().await.unwrap();
    f.close().await.unwrap();

    // Another client sees it all after close.
    let other = fs_on(&vol).await;
    assert_eq!(other.metadata("/big").await.unwrap().len(), total as u64);
    let mut back = Vec::with_capacity(total);
    other
        .open("/big")
        .await
        .unwrap()
        .read_to_end(&mut back)
        .await
        .unwrap();
    assert!(back == data);
    fs.close().await.unwrap();
    other.close().await.unwrap();
}

async fn append_mode_writes_at_the_end(engine: Engine) {
    let vol = Volume::new(engine).await;
    let fs = fs_on(&vol).await;
    fs.write("/log", "abc").await.unwrap();
    let mut f = fs
        .open_options()
        .read(true)
        .append(true)
        .open("/log")
        .await
        .unwrap();
    // The cursor starts at 0, but writes go to the end.
    f.write_all(b"def").await.unwrap();
    assert_eq!(f.stream_position().await.unwrap(), 6);
    f.write_all(b"gh").await.unwrap();
    f.write_at(b"!", 0).await.unwrap();
    f.seek(SeekFrom::Start(0)).await.unwrap();
    let mut all = String::new();
    f.read_to_string(&mut all).await.unwrap();
    assert_eq!(all, "abcdefgh!");
    f.close().await.unwrap();
    // `create(true)` with append makes the file.
    let mut f = fs
        .open_options()
        .append(true)
        .create(true)
        .open("/new-log")
        .await
        .unwrap();
    f.write_all(b"1").await.unwrap();
    f.write_all(b"2").await.unwrap();
    f.close().await.unwrap();
    assert_eq!(fs.read("/new-log").await.unwrap(), b"12");
    fs.close().await.unwrap();
}

async fn open_options_errors_match_std(engine: Engine) {
    let vol = Volume::new(engine).await;
    let fs = fs_on(&vol).await;
    fs.write("/exists", "x").await.unwrap();
    fs.create_dir("/dir").await.unwrap();
    let o = || fs.open_options();
    let e = o()
        .write(true)
        .create_new(true)
        .open("/exists")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    let e = o()
        .read(true)
        .truncate(true)
        .open("/exists")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let e = o().read(true).create(true).open("/new").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let e = o().open("/exists").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let e = o()
        .append(true)
        .truncate(true)
        .open("/exists")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let e = o().read(true).open("/missing").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let e = o()
        .write(true)
        .create(true)
        .open("/no/such/dir/f")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let e = o().write(true).open("/dir").await.unwrap_err();
    assert_eq!(errno(&e), libc::EISDIR);
    let e = o()
        .write(true)
        .create(true)
        .open("/newdir/")
        .await
        .unwrap_err();
    assert_eq!(errno(&e), libc::EISDIR);
    // create_new refuses even a dangling link.
    fs.symlink("/gone", "/dangling").await.unwrap();
    let e = o()
        .write(true)
        .create_new(true)
        .open("/dangling")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    // create_new makes a fresh file with the given mode.
    let f = o()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open("/fresh")
        .await
        .unwrap();
    f.close().await.unwrap();
    assert_eq!(
        fs.metadata("/fresh").await.unwrap().permissions().mode(),
        0o600
    );
    // truncate empties an existing file.
    o().write(true)
        .truncate(true)
        .open("/exists")
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    assert_eq!(fs.metadata("/exists").await.unwrap().len(), 0);
    fs.close().await.unwrap();
}

async fn copy_link_and_permissions(engine: Engine) {
    let vol = Volume::new(engine).await;
    let fs = fs_on(&vol).await;
    let data = pattern(3, 0, 200_000);
    fs.write("/src", &data).await.unwrap();
    fs.set_permissions("/src", Permissions::from_mode(0o640))
        .await
        .unwrap();
    assert_eq!(fs.copy("/src", "/dst").await.unwrap(), data.len() as u64);
    assert!(fs.read("/dst").await.unwrap() == data);
    assert_eq!(
        fs.metadata("/dst").await.unwrap().permissions().mode(),
        0o640
    );
    assert_ne!(
        fs.metadata("/dst").await.unwrap().ino(),
        fs.metadata("/src").await.unwrap().ino()
    );
    // Copying over an existing, longer file replaces it.
    fs.write("/longer", vec![1u8; 500_000]).await.unwrap();
    fs.copy("/src", "/longer").await.unwrap();
    assert!(fs.read("/longer").await.unwrap() == data);
    let e = fs.copy("/src", "/src").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    fs.create_dir("/d").await.unwrap();
    assert_eq!(
        fs.copy("/d", "/x").await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );

    fs.hard_link("/src", "/second").await.unwrap();
    assert_eq!(fs.metadata("/src").await.unwrap().nlink(), 2);
    assert_eq!(
        fs.metadata("/second").await.unwrap().ino(),
        fs.metadata("/src").await.unwrap().ino()
    );
    fs.remove_file("/src").await.unwrap();
    assert!(fs.read("/second").await.unwrap() == data);

    let when = UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    fs.set_times("/second", None, Some(when)).await.unwrap();
    assert_eq!(
        fs.metadata("/second").await.unwrap().modified().unwrap(),
        when
    );
    fs.set_owner("/second", Some(1000), Some(1001))
        .await
        .unwrap();
    let m = fs.metadata("/second").await.unwrap();
    assert_eq!((m.uid(), m.gid()), (1000, 1001));
    fs.close().await.unwrap();
}

async fn context_controls_permissions(engine: Engine) {
    let vol = Volume::new(engine).await;
    let fs = fs_on(&vol).await;
    fs.create_dir("/private").await.unwrap();
    fs.set_permissions("/private", Permissions::from_mode(0o700))
        .await
        .unwrap();
    fs.create_dir("/shared").await.unwrap();
    fs.set_permissions("/shared", Permissions::from_mode(0o777))
        .await
        .unwrap();
    let user = fs.with_context(Context::new(1000, 1000));
    assert_eq!(user.context().uid, 1000);
    let e = user.write("/private/x", "no").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    let e = user.read_dir("/private").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    user.write("/shared/mine", "yes").await.unwrap();
    let m = fs.metadata("/shared/mine").await.unwrap();
    assert_eq!((m.uid(), m.gid()), (1000, 1000));
    fs.close().await.unwrap();
}

async fn dropping_a_file_releases_it_in_the_background(engine: Engine) {
    let vol = Volume::new(engine).await;
    let fs = fs_on(&vol).await;
    let mut f = fs.create("/dropped").await.unwrap();
    f.write_all(b"written before drop").await.unwrap();
    drop(f);
    // Another client sees the data once the background release has committed it.
    let other = fs_on(&vol).await;
    let mut seen = Vec::new();
    for _ in 0..500 {
        seen = other.read("/dropped").await.unwrap();
        if !seen.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen, b"written before drop");
    // A listing dropped early also gives its handle back (no EMFILE later).
    for i in 0..10 {
        fs.write(format!("/n{i}"), "x").await.unwrap();
    }
    let mut rd = fs.read_dir("/").await.unwrap();
    assert!(rd.next_entry().await.unwrap().is_some());
    drop(rd);
    fs.close().await.unwrap();
    other.close().await.unwrap();
}

/// Reads `path` through another client until it has `want` bytes (a background release
/// commits them), for at most a few seconds.
async fn eventually_read(fs: &FileSystem, path: &str, want: usize) -> Vec<u8> {
    let mut seen = Vec::new();
    for _ in 0..500 {
        seen = fs.read(path).await.unwrap();
        if seen.len() >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    seen
}

async fn slow_uploads_write_behind_and_drop(engine: Engine) {
    let mem = Arc::new(MemStore::new());
    let mut slow = FaultyStore::new(mem.clone());
    slow.put_delay = Duration::from_millis(3);
    let vol = Volume::with_store(engine, mem, Arc::new(slow)).await;
    // A buffer of two blocks: writers keep waiting for uploads.
    let tight = support::test_options().buffer_size(0);
    let fs = FileSystem::new(vol.client_with(tight.clone()).await);
    let data = pattern(7, 0, 3 << 20);

    let mut f = fs.create("/slow").await.unwrap();
    for piece in data.chunks(100_000) {
        f.write_all(piece).await.unwrap();
    }
    // A write-only handle refuses reads (after finishing the write in flight).
    let mut head = vec![0u8; 1000];
    assert_eq!(
        errno(&f.read_at(&mut head, 0).await.unwrap_err()),
        libc::EBADF
    );
    f.close().await.unwrap();
    assert!(fs.read("/slow").await.unwrap() == data);

    // Read and write interleaved on one handle while uploads lag; positional reads wait
    // for a write still in flight.
    let mut f = fs
        .open_options()
        .read(true)
        .write(true)
        .open("/slow")
        .await
        .unwrap();
    f.seek(SeekFrom::Start(500_000)).await.unwrap();
    f.write_all(&[9u8; 300_000]).await.unwrap();
    let mut buf = vec![0u8; 10];
    assert_eq!(f.read_at(&mut buf, 799_995).await.unwrap(), 10);
    assert_eq!(buf[..5], [9u8; 5]);
    assert_eq!(buf[5..], data[800_000..800_005]);
    let mut rest = Vec::new();
    f.read_to_end(&mut rest).await.unwrap();
    assert!(rest == data[800_000..]);
    f.close().await.unwrap();

    // Dropped with writes in flight: they finish and the handle is released.
    let mut f = fs.create("/dropped-busy").await.unwrap();
    for piece in data.chunks(256 << 10) {
        f.write_all(piece).await.unwrap();
    }
    drop(f);
    let other = FileSystem::new(vol.client_with(tight).await);
    assert!(eventually_read(&other, "/dropped-busy", data.len()).await == data);
    fs.close().await.unwrap();
    other.close().await.unwrap();
}

async fn partial_writes_and_stalling_readers(engine: Engine) {
    let vol = Volume::new(engine).await;
    let fs = fs_on(&vol).await;
    // One call takes at most 8 MiB; write_all loops over the rest.
    let big = pattern(4, 0, 10 << 20);
    let mut f = fs.create("/partial").await.unwrap();
    let n = f.write(&big).await.unwrap();
    assert_eq!(n, 8 << 20);
    f.write_all(&big[n..]).await.unwrap();
    // A read into a tiny buffer, then a larger one: nothing is skipped or repeated.
    f.close().await.unwrap();
    let mut f = fs.open("/partial").await.unwrap();
    let mut one = [0u8; 1];
    f.read_exact(&mut one).await.unwrap();
    let mut more = vec![0u8; 200_000];
    f.read_exact(&mut more).await.unwrap();
    assert_eq!(one[0], big[0]);
    assert!(more == big[1..200_001]);
    f.close().await.unwrap();

    // A source that stalls: tokio::io::copy flushes the file while it waits.
    let data = pattern(6, 0, 600_000);
    let (mut tx, mut rx) = tokio::io::duplex(8192);
    let feed = data.clone();
    let feeder = tokio::spawn(async move {
        for piece in feed.chunks(50_000) {
            tx.write_all(piece).await.unwrap();
            tokio::task::yield_now().await;
        }
    });
    let mut f = fs.create("/piped").await.unwrap();
    let copied = tokio::io::copy(&mut rx, &mut f).await.unwrap();
    feeder.await.unwrap();
    assert_eq!(copied, data.len() as u64);
    f.close().await.unwrap();
    let other = fs_on(&vol).await;
    assert!(other.read("/piped").await.unwrap() == data);
    fs.close().await.unwrap();
    other.close().await.unwrap();
}

#[test]
fn handles_move_between_tasks() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<FileSystem>();
    send_sync::<vfs_core::File>();
    send_sync::<vfs_core::DirEntry>();
    send::<vfs_core::ReadDir>();
}
