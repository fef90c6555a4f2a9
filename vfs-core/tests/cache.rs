//! The block cache seen through a VFS, on volumes with SQLite metadata and blocks in a local
//! directory:
//!
//! - a second read is served from memory, a new client finds the blocks on disk, and the
//!   metrics say so;
//! - a corrupted cache file is dropped and the block fetched again: reads stay right;
//! - a sequential reader's readahead prefetches the next blocks into the cache;
//! - writeback: a client killed with SIGKILL after `fsync` (its store down, so nothing was
//!   uploaded) loses nothing acknowledged: the next client opened with the same cache
//!   directory uploads the staged blocks, a second client without any cache reads every
//!   acknowledged byte, and every slice's blocks are in the store.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used)]

#[path = "shared/volume_check.rs"]
mod volume_check;

// Every disk cache here sets `cache_free_ratio(0.0)`: the test machine's disk may be nearly
// full, and the free-space floor would (rightly) make the cache step aside.
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chunkstore::{ChunkStore, Faulty};
use meta_api::{Context, Format, ROOT_INO};
use vfs_core::{connect_meta, format_volume, open_store, Vfs, VfsOptions, VolumeBuilder};
use volume_check::{assert_every_block_stored, missing_blocks, pattern, read_all, write_file};

const KIB: usize = 1 << 10;

/// A file-storage volume with 256 KiB blocks in a temporary directory.
struct LocalVolume {
    dir: tempfile::TempDir,
    url: String,
    format: Format,
}

impl LocalVolume {
    async fn new(name: &str) -> LocalVolume {
        let dir = tempfile::tempdir().unwrap();
        LocalVolume::in_dir(dir, name).await
    }

    async fn in_dir(dir: tempfile::TempDir, name: &str) -> LocalVolume {
        let url = format!("sqlite3://{}", dir.path().join("meta.db").display());
        let bucket = format!("{}/", dir.path().join("bucket").display());
        let mut f = Format::new(name, "", "file", &bucket);
        f.block_size = 256;
        f.trash_days = 0;
        let format = format_volume(&url, f).await.unwrap();
        LocalVolume { dir, url, format }
    }

    fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    async fn open(&self, opts: VfsOptions) -> Vfs {
        VolumeBuilder::new(&self.url)
            .options(opts.purge_interval(None))
            .open()
            .await
            .unwrap()
    }
}

/// Every regular file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_served_from_memory_then_from_disk() {
    let vol = LocalVolume::new("cache-hits").await;
    let data = pattern(1, 3 * 1024 * KIB + 5); // 13 blocks
    let writer = vol.open(VfsOptions::default().block_cache_size(0)).await;
    assert!(writer.cache_metrics().is_none());
    let ino = write_file(&writer, "f", &data).await;
    writer.close().await.unwrap();

    let reader = vol
        .open(
            VfsOptions::default()
                .cache_dir(vol.cache_dir())
                .cache_free_ratio(0.0),
        )
        .await;
    assert!(read_all(&reader, ino).await == data);
    reader.cache_idle().await;
    let first = reader.cache_metrics().unwrap();
    assert_eq!(first.fetches, 13, "{first:?}");
    assert!(first.misses >= 1, "{first:?}");
    assert!(first.disk_bytes >= data.len() as u64, "{first:?}");
    assert!(read_all(&reader, ino).await == data);
    let second = reader.cache_metrics().unwrap();
    assert_eq!(second.fetches, 13, "nothing fetched again: {second:?}");
    assert_eq!(second.misses, first.misses, "{second:?}");
    assert!(second.mem_hits > first.mem_hits, "{second:?}");
    reader.close().await.unwrap();
    drop(reader);

    // A new client with the same cache directory (and no memory cache) reads from disk.
    let disk_only = vol
        .open(
            VfsOptions::default()
                .block_cache_size(0)
                .cache_dir(vol.cache_dir())
                .cache_free_ratio(0.0),
        )
        .await;
    assert!(read_all(&disk_only, ino).await == data);
    let m = disk_only.cache_metrics().unwrap();
    assert_eq!(m.fetches, 0, "{m:?}");
    assert!(m.disk_hits > 0 && m.misses == 0, "{m:?}");
    disk_only.close().await.unwrap();
    // The cache lives in a subdirectory named by the volume's UUID, as JuiceFS's does.
    assert!(vol.cache_dir().join(&vol.format.uuid).join("raw").is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_cache_file_still_reads_right() {
    let vol = LocalVolume::new("cache-corrupt").await;
    let data = pattern(2, 1024 * KIB + 77); // 5 blocks
    let writer = vol.open(VfsOptions::default().block_cache_size(0)).await;
    let ino = write_file(&writer, "f", &data).await;
    writer.close().await.unwrap();
    // No readahead: its prefetches could race the reads and make the fetch count vary.
    let opts = || {
        VfsOptions::default()
            .block_cache_size(0)
            .readahead(0)
            .cache_dir(vol.cache_dir())
            .cache_free_ratio(0.0)
    };
    let warm = vol.open(opts()).await;
    assert!(read_all(&warm, ino).await == data);
    warm.cache_idle().await;
    warm.close().await.unwrap();
    drop(warm);

    // Flip a byte in the data of every cached block.
    let raw = vol.cache_dir().join(&vol.format.uuid).join("raw");
    let cached = files_under(&raw);
    assert_eq!(cached.len(), 5, "{cached:?}");
    for p in &cached {
        let mut bytes = std::fs::read(p).unwrap();
        let at = bytes.len() / 3;
        bytes[at] ^= 0x5a;
        std::fs::write(p, bytes).unwrap();
    }
    let reader = vol.open(opts()).await;
    assert!(
        read_all(&reader, ino).await == data,
        "corrupt cache data returned"
    );
    let m = reader.cache_metrics().unwrap();
    assert_eq!(m.corrupt_dropped, 5, "{m:?}");
    assert_eq!(m.fetches, 5, "{m:?}");
    // And the refetched blocks are cached again, intact.
    reader.cache_idle().await;
    assert!(read_all(&reader, ino).await == data);
    assert_eq!(reader.cache_metrics().unwrap().fetches, 5);
    reader.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readahead_prefetches_the_next_blocks() {
    let vol = LocalVolume::new("cache-readahead").await;
    let data = pattern(3, 2048 * KIB); // 8 blocks
    let writer = vol.open(VfsOptions::default().block_cache_size(0)).await;
    let ino = write_file(&writer, "f", &data).await;
    writer.close().await.unwrap();

    let ctx = Context::root();
    let reader = vol.open(VfsOptions::default().readahead(8 << 20)).await;
    let fh = reader.open(&ctx, ino, libc::O_RDONLY).await.unwrap();
    let first = reader.read(&ctx, fh, 0, 4 * KIB).await.unwrap();
    assert_eq!(&first[..], &data[..4 * KIB]);
    reader.cache_idle().await;
    let m = reader.cache_metrics().unwrap();
    // The reader fetched block 0, readahead the other seven.
    assert_eq!((m.misses, m.prefetches, m.fetches), (1, 7, 8), "{m:?}");
    let mut off = 4 * KIB;
    while off < data.len() {
        let n = (64 * KIB).min(data.len() - off);
        let got = reader.read(&ctx, fh, off as u64, n).await.unwrap();
        assert_eq!(&got[..], &data[off..off + n]);
        off += n;
    }
    let m = reader.cache_metrics().unwrap();
    assert_eq!((m.misses, m.fetches), (1, 8), "every later read hit: {m:?}");
    assert!(m.mem_hits >= 31, "{m:?}");
    reader.release(&ctx, fh).await.unwrap();
    // A random reader (another handle, jumping around) gets no readahead.
    let fh = reader.open(&ctx, ino, libc::O_RDONLY).await.unwrap();
    for off in [1500 * KIB, 100 * KIB, 700 * KIB] {
        reader.read(&ctx, fh, off as u64, KIB).await.unwrap();
    }
    reader.cache_idle().await;
    assert_eq!(reader.cache_metrics().unwrap().prefetches, 7);
    reader.release(&ctx, fh).await.unwrap();
    reader.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writeback_needs_a_cache_dir() {
    let vol = LocalVolume::new("cache-wb-nodir").await;
    let err = VolumeBuilder::new(&vol.url)
        .writeback(true)
        .open()
        .await
        .unwrap_err();
    assert_eq!(err.errno(), libc::EINVAL, "{err}");
}

/// A cache directory serves one VFS at a time: a second (as another process would be) is
/// refused with the owner's pid, and gets it once the first has closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_directory_serves_one_vfs_at_a_time() {
    let vol = LocalVolume::new("cache-lock").await;
    let cache = tempfile::tempdir().unwrap();
    let open = || {
        VolumeBuilder::new(&vol.url)
            .cache_dir(cache.path())
            .writeback(true)
            .open()
    };
    let first = open().await.unwrap();
    let err = open().await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("in use") && msg.contains(&std::process::id().to_string()),
        "{msg}"
    );
    first.close().await.unwrap();
    drop(first);
    open().await.unwrap().close().await.unwrap();
}

const CHILD_ENV: &str = "TESSERA_WRITEBACK_CRASH_CHILD";
const ACKS_BEFORE_KILL: usize = 6;

/// The child of `writeback_crash_loses_nothing_acknowledged`: writes files through a
/// writeback VFS whose store is down (so every block stays staged), fsyncs each, prints
/// `ACK name len`, and goes on until it is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writeback_crash_child() {
    let Ok(arg) = std::env::var(CHILD_ENV) else {
        return; // Only meaningful when started by the parent test.
    };
    let (url, cache_dir) = arg.split_once('|').unwrap();
    let meta = connect_meta(url).await.unwrap();
    let format = meta.load().await.unwrap();
    let down = Arc::new(Faulty::new(open_store(&format).await.unwrap(), 1));
    down.set_down(true);
    let opts = VfsOptions::default()
        .purge_interval(None)
        .cache_dir(cache_dir)
        .cache_free_ratio(0.0)
        .writeback(true);
    let vfs = Vfs::new(meta, down, format, opts).await.unwrap();
    let mut stdout = std::io::stdout();
    for i in 0u64.. {
        let len = 300 * KIB + (i as usize % 5) * 170 * KIB;
        write_file(&vfs, &format!("f{i}"), &pattern(100 + i, len)).await;
        writeln!(stdout, "ACK f{i} {len}").unwrap();
        stdout.flush().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writeback_crash_loses_nothing_acknowledged() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let vol = LocalVolume::new("cache-wb-crash").await;
    let cache_dir = vol.cache_dir();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "writeback_crash_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_ENV, format!("{}|{}", vol.url, cache_dir.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acked: Vec<(String, usize)> = Vec::new();
    let reader = BufReader::new(child.stdout.take().unwrap());
    for line in reader.lines() {
        let line = line.unwrap();
        // libtest prints "test writeback_crash_child ... " without a newline before the
        // first line of ours.
        let Some(at) = line.find("ACK ") else {
            continue;
        };
        let mut it = line[at + 4..].split_whitespace();
        let name = it.next().unwrap().to_string();
        let len: usize = it.next().unwrap().parse().unwrap();
        acked.push((name, len));
        if acked.len() == ACKS_BEFORE_KILL {
            child.kill().unwrap(); // SIGKILL right after an fsync was acknowledged
            break;
        }
    }
    child.wait().unwrap();
    assert_eq!(acked.len(), ACKS_BEFORE_KILL, "the child stopped early");

    // The metadata points at blocks that exist only in the dead client's staging directory.
    let meta = connect_meta(&vol.url).await.unwrap();
    let store: Arc<dyn ChunkStore> = open_store(&vol.format).await.unwrap();
    let missing = missing_blocks(meta.as_ref(), store.as_ref(), &vol.format).await;
    assert!(
        !missing.is_empty(),
        "the child's store was down: nothing could be uploaded"
    );
    let staged = files_under(&cache_dir.join(&vol.format.uuid).join("staging"));
    assert!(staged.len() >= missing.len(), "{staged:?} vs {missing:?}");

    // A client opened with the same cache directory uploads what is staged.
    let recovering = vol
        .open(VfsOptions::default().cache_dir(&cache_dir).writeback(true))
        .await;
    tokio::time::timeout(Duration::from_secs(120), recovering.flush_uploads())
        .await
        .expect("staged blocks uploaded");
    let m = recovering.cache_metrics().unwrap();
    assert_eq!((m.staged_blocks, m.staged_lost), (0, 0), "{m:?}");
    let still = missing_blocks(meta.as_ref(), store.as_ref(), &vol.format).await;
    assert!(still.is_empty(), "not uploaded: {still:?}");
    recovering.close().await.unwrap();

    // A second client without any cache reads every acknowledged byte from the store.
    let plain = vol.open(VfsOptions::default().block_cache_size(0)).await;
    assert!(plain.cache_metrics().is_none());
    let ctx = Context::root();
    for (i, (name, len)) in acked.iter().enumerate() {
        assert_eq!(name, &format!("f{i}"));
        let e = plain.lookup(&ctx, ROOT_INO, name.as_bytes()).await.unwrap();
        assert_eq!(e.attr.length, *len as u64, "{name}");
        let got = read_all(&plain, e.ino).await;
        let want = pattern(100 + i as u64, *len);
        let first_diff = got.iter().zip(&want).position(|(a, b)| a != b);
        assert!(got == want, "{name} differs from byte {first_diff:?}");
    }
    plain.close().await.unwrap();
    // What `juicefs fsck` checks of the data: every slice's blocks are in the store.
    assert_every_block_stored(meta.as_ref(), store.as_ref(), &vol.format).await;
}
