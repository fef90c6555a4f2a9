//! Slice compaction through the VFS: triggers, the rewritten bytes, the freed objects, and
//! readers holding layouts of the objects another client frees.

use std::time::Duration;

use bytes::Bytes;
use chunkstore::ChunkStore;
use meta_api::compact::SYNC_SLICES;
use meta_api::Ino;
use vfs_core::{Vfs, VfsOptions};

use crate::support::*;

/// Appends `n` records of `len` bytes to `fh`, one fsync each; returns what the file holds.
async fn append_synced(vfs: &Vfs, fh: u64, n: usize, len: usize) -> Vec<u8> {
    let mut expect = Vec::with_capacity(n * len);
    for i in 0..n {
        let off = (i * len) as u64;
        let data = pattern(i as u8, off, len);
        vfs.write(&root(), fh, off, Bytes::from(data.clone()))
            .await
            .unwrap();
        vfs.fsync(&root(), fh, false).await.unwrap();
        expect.extend_from_slice(&data);
    }
    expect
}

/// Records in chunk 0 of `ino`, as another client sees them.
async fn records(vol: &Volume, ino: Ino) -> usize {
    vol.meta().await.read_chunk(ino, 0).await.unwrap().len()
}

/// Options without background compaction.
fn manual() -> VfsOptions {
    test_options().compact_concurrency(0)
}

engine_tests! {
    async fn compact_rewrites_a_chunk_as_one_slice_and_frees_the_old_blocks(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client_with(manual()).await;
        let (ino, fh) = create(&vfs, "f").await;
        // Overlapping writes over two blocks, then a hole, then a tail.
        let mut expect = vec![0u8; 3 * BLOCK as usize];
        for i in 0..8u64 {
            let off = i * BLOCK / 4;
            let data = pattern(i as u8, off, BLOCK as usize / 2);
            expect[off as usize..off as usize + data.len()].copy_from_slice(&data);
            vfs.write(&root(), fh, off, Bytes::from(data)).await.unwrap();
            vfs.fsync(&root(), fh, false).await.unwrap();
        }
        let tail = pattern(99, 3 * BLOCK - 10, 10);
        expect[3 * BLOCK as usize - 10..].copy_from_slice(&tail);
        vfs.write(&root(), fh, 3 * BLOCK - 10, Bytes::from(tail)).await.unwrap();
        vfs.fsync(&root(), fh, false).await.unwrap();
        assert_eq!(records(&vol, ino).await, 9);

        let stats = vfs.compact(ino).await.unwrap();
        assert_eq!((stats.records_before, stats.replaced), (9, 9));
        assert_eq!(stats.bytes_written, 3 * BLOCK);
        assert!(!stats.lost_race);
        assert_eq!(records(&vol, ino).await, 1);
        // One slice of three blocks is all that is left in the store.
        assert_eq!(vol.block_keys().await.len(), 3);
        assert_blocks_exist(&vol, ino).await;
        assert_eq!(read_all(&vfs, fh, 0, 3 * BLOCK).await, expect);
        // Nothing more to do.
        assert_eq!(vfs.compact(ino).await.unwrap().replaced, 0);
        vfs.close().await.unwrap();
        let other = vol.client().await;
        let fh = other.open(&root(), ino, libc::O_RDONLY).await.unwrap();
        assert_eq!(read_all(&other, fh, 0, 3 * BLOCK).await, expect);
        other.close().await.unwrap();
    }

    async fn appends_with_fsync_are_compacted_in_the_background(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client().await;
        let (ino, fh) = create(&vfs, "log").await;
        let expect = append_synced(&vfs, fh, 120, 100).await;
        // The 99th record asked for a background compaction.
        let mut left = usize::MAX;
        for _ in 0..500 {
            left = records(&vol, ino).await;
            if left < 100 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(left < 100, "still {left} records");
        assert_blocks_exist(&vol, ino).await;
        assert_eq!(read_all(&vfs, fh, 0, expect.len() as u64).await, expect);
        vfs.close().await.unwrap();
    }

    async fn a_write_waits_for_compaction_at_the_limit(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client_with(manual()).await;
        let (ino, fh) = create(&vfs, "full").await;
        let expect = append_synced(&vfs, fh, SYNC_SLICES - 1, 8).await;
        assert_eq!(records(&vol, ino).await, SYNC_SLICES - 1);
        let n = expect.len() as u64;
        vfs.write(&root(), fh, n, Bytes::from_static(b"the end.")).await.unwrap();
        vfs.fsync(&root(), fh, false).await.unwrap();
        // The write that reached the limit compacted before it returned.
        assert!(records(&vol, ino).await < SYNC_SLICES);
        assert_blocks_exist(&vol, ino).await;
        assert_eq!(read_all(&vfs, fh, 0, n).await, expect);
        assert_eq!(read_all(&vfs, fh, n, 8).await, b"the end.");
        vfs.close().await.unwrap();
    }

    async fn reads_compact_chunks_with_many_records(engine: Engine) {
        let vol = Volume::new(engine).await;
        let writer = vol.client_with(manual()).await;
        let (ino, fh) = create(&writer, "f").await;
        let expect = append_synced(&writer, fh, 6, 1000).await;
        writer.close().await.unwrap();
        let reader = vol.client().await;
        let fh = reader.open(&root(), ino, libc::O_RDONLY).await.unwrap();
        assert_eq!(read_all(&reader, fh, 0, 6000).await, expect);
        // The old objects go right after the records change.
        let mut left = (usize::MAX, usize::MAX);
        for _ in 0..500 {
            left = (records(&vol, ino).await, vol.block_keys().await.len());
            if left == (1, 1) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(left, (1, 1), "(records, objects)");
        reader.close().await.unwrap();
    }

    async fn a_reader_holding_a_layout_survives_another_clients_compaction(engine: Engine) {
        let vol = Volume::new(engine).await;
        let a = vol.client_with(manual()).await;
        let (ino, fh) = create(&a, "f").await;
        let expect = append_synced(&a, fh, 6, 3000).await;
        // b caches the layout, and no block (every read goes to the store).
        let b = vol
            .client_with(manual().block_cache_size(0).readahead(0))
            .await;
        let bfh = b.open(&root(), ino, libc::O_RDONLY).await.unwrap();
        assert_eq!(read_all(&b, bfh, 0, 18_000).await, expect);
        let before = vol.block_keys().await;
        assert_eq!(a.compact(ino).await.unwrap().replaced, 6);
        let after = vol.block_keys().await;
        assert!(before.iter().all(|k| !after.contains(k)), "the old blocks are gone");
        // b's layout names only deleted blocks: it reads the layout again, not EIO.
        assert_eq!(read_all(&b, bfh, 0, 18_000).await, expect);
        assert_eq!(read_all(&b, bfh, 5_000, 100).await, expect[5_000..5_100]);
        b.close().await.unwrap();
        a.close().await.unwrap();
    }

    async fn a_block_missing_from_the_current_layout_is_still_eio(engine: Engine) {
        let vol = Volume::new(engine).await;
        let a = vol.client_with(manual().block_cache_size(0).readahead(0)).await;
        let (ino, fh) = create(&a, "f").await;
        append_synced(&a, fh, 2, 100).await;
        for k in vol.block_keys().await {
            vol.mem.delete(&k).await.unwrap();
        }
        let err = a.read(&root(), fh, 0, 200).await.unwrap_err();
        assert_eq!(err.errno(), libc::EIO);
        let _ = ino;
        a.close().await.unwrap();
    }
}
