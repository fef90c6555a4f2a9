//! Volumes on disk: SQLite metadata in a file and blocks in a local directory, formatted
//! and opened by URL.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use meta_api::{Context, Format, ROOT_INO};
use vfs_core::{format_volume, VfsError, VfsOptions, VolumeBuilder};

#[tokio::test]
async fn format_open_write_close_reopen_read() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite3://{}", dir.path().join("meta.db").display());
    let bucket = format!("{}/", dir.path().join("blocks").display());
    let mut format = Format::new("disk-vol", "", "file", &bucket);
    format.block_size = 64; // KiB
    let stored = VolumeBuilder::new(&url)
        .format(format.clone())
        .await
        .unwrap();
    assert!(!stored.uuid.is_empty());
    // The bucket carries JuiceFS's volume marker.
    let marker = std::fs::read(dir.path().join("blocks/disk-vol/juicefs_uuid")).unwrap();
    assert_eq!(marker, stored.uuid.as_bytes());
    // Formatting twice is refused.
    let again = format_volume(&url, format.clone()).await.unwrap_err();
    assert_eq!(again.errno(), libc::EEXIST);

    let ctx = Context::root();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let ino = {
        let vfs = VolumeBuilder::new(&url)
            .options(VfsOptions::default().purge_interval(None))
            .open()
            .await
            .unwrap();
        let dirent = vfs.mkdir(&ctx, ROOT_INO, b"docs", 0o755).await.unwrap();
        let (e, fh) = vfs
            .create(&ctx, dirent.ino, b"data.bin", 0o644, libc::O_WRONLY)
            .await
            .unwrap();
        vfs.write(&ctx, fh, 0, Bytes::from(data.clone()))
            .await
            .unwrap();
        vfs.release(&ctx, fh).await.unwrap();
        vfs.close().await.unwrap();
        e.ino
    };
    // Blocks are files under {bucket}/{name}/chunks/.
    let chunks = dir.path().join("blocks/disk-vol/chunks");
    assert!(chunks.is_dir());

    let vfs = VolumeBuilder::new(&url).open().await.unwrap();
    let docs = vfs.lookup(&ctx, ROOT_INO, b"docs").await.unwrap();
    let e = vfs.lookup(&ctx, docs.ino, b"data.bin").await.unwrap();
    assert_eq!(e.ino, ino);
    assert_eq!(e.attr.length, data.len() as u64);
    let fh = vfs.open(&ctx, ino, libc::O_RDONLY).await.unwrap();
    let mut got = Vec::new();
    loop {
        let b = vfs
            .read(&ctx, fh, got.len() as u64, 128 << 10)
            .await
            .unwrap();
        if b.is_empty() {
            break;
        }
        got.extend_from_slice(&b);
    }
    assert!(got == data);
    vfs.release(&ctx, fh).await.unwrap();

    // Deleting and purging removes the block files.
    vfs.unlink(&ctx, docs.ino, b"data.bin").await.unwrap();
    assert_eq!(vfs.purge_deleted().await.unwrap(), 1);
    let mut left = Vec::new();
    let mut stack = vec![chunks];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                left.push(p);
            }
        }
    }
    assert!(left.is_empty(), "{left:?}");
    vfs.close().await.unwrap();
}

#[tokio::test]
async fn opening_an_unformatted_or_unsupported_volume_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite3://{}", dir.path().join("empty.db").display());
    let err = VolumeBuilder::new(&url).open().await.unwrap_err();
    assert!(
        matches!(err, VfsError::Meta(meta_api::MetaError::NotFormatted)),
        "{err}"
    );

    let url2 = format!("sqlite3://{}", dir.path().join("enc.db").display());
    let mut f = Format::new("enc", "", "file", &format!("{}/", dir.path().display()));
    f.encrypt_key = "secret".into();
    let err = format_volume(&url2, f).await.unwrap_err();
    assert!(err.to_string().contains("encrypt"), "{err}");

    let err = VolumeBuilder::new("gopher://127.0.0.1:1/1")
        .open()
        .await
        .unwrap_err();
    assert!(matches!(err, VfsError::UnsupportedScheme { .. }));
}

#[tokio::test]
async fn compressed_and_hash_prefixed_volumes_round_trip() {
    for (compression, hash_prefix) in [("lz4", false), ("zstd", true)] {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite3://{}", dir.path().join("meta.db").display());
        let bucket = format!("{}/", dir.path().join("blocks").display());
        let mut format = Format::new("cvol", "", "file", &bucket);
        format.block_size = 64;
        format.compression = compression.into();
        format.hash_prefix = hash_prefix;
        format_volume(&url, format).await.unwrap();
        let ctx = Context::root();
        let vfs = VolumeBuilder::new(&url).open().await.unwrap();
        // Compressible and incompressible data, several blocks.
        let mut data = vec![b'z'; 100_000];
        data.extend((0..150_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
        let (e, fh) = vfs
            .create(&ctx, ROOT_INO, b"c.bin", 0o644, libc::O_RDWR)
            .await
            .unwrap();
        vfs.write(&ctx, fh, 0, Bytes::from(data.clone()))
            .await
            .unwrap();
        vfs.release(&ctx, fh).await.unwrap();
        vfs.close().await.unwrap();

        let vfs = VolumeBuilder::new(&url).open().await.unwrap();
        let fh = vfs.open(&ctx, e.ino, libc::O_RDONLY).await.unwrap();
        // A random (ranged) read inside a block, then the whole file.
        let mid = vfs.read(&ctx, fh, 140_000, 1000).await.unwrap();
        assert_eq!(&mid[..], &data[140_000..141_000], "{compression}");
        let all = vfs.read(&ctx, fh, 0, data.len() + 10).await.unwrap();
        assert!(all[..] == data[..], "{compression}");
        vfs.release(&ctx, fh).await.unwrap();
        let keys: Vec<String> = vfs
            .store()
            .list_page("chunks/", None, 100)
            .await
            .unwrap()
            .objects
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(keys.len(), 4, "{keys:?}");
        for k in &keys {
            let (_, hp) = chunkstore::BlockKey::parse_with_layout(k).unwrap();
            assert_eq!(hp, hash_prefix, "{k}");
        }
        vfs.close().await.unwrap();
    }
}
