//! Upkeep through the VFS: gc, pending slices, fsck, file info and summaries.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chunkstore::{ChunkStore, MemStore};
use meta_api::{Ino, ROOT_INO};
use vfs_core::upkeep::{FsckOptions, GcOptions, Progress};
use vfs_core::Vfs;

use crate::support::*;

/// gc that treats every unreferenced object as leaked, however young.
fn gc_now(delete: bool) -> GcOptions {
    GcOptions {
        delete,
        min_age: Duration::ZERO,
        ..GcOptions::default()
    }
}

/// A stray block object of slice `id` nobody references.
async fn stray(mem: &MemStore, id: u64) -> String {
    let key = chunkstore::BlockKey::new(id, 0, 10).to_key(false);
    mem.put(&key, Bytes::from_static(b"0123456789"))
        .await
        .unwrap();
    key
}

/// One client's share of the load: its own files, changed by writes, overwrites, copies
/// between them, truncates and compactions, every change synced; returns the files and
/// what each must hold.
async fn churn(vfs: Vfs, tag: u8, rounds: u64) -> Vec<(Ino, Vec<u8>)> {
    let mut files = Vec::new();
    for i in 0..3 {
        let name = format!("c{tag}-{i}");
        let (e, fh) = vfs
            .create(&root(), ROOT_INO, name.as_bytes(), 0o644, libc::O_RDWR)
            .await
            .unwrap();
        files.push((e.ino, fh, Vec::<u8>::new()));
    }
    let mut x = u64::from(tag).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    for round in 0..rounds {
        let f = next(3) as usize;
        match next(5) {
            0 | 1 => {
                let off = next(3 * BLOCK);
                let len = 1 + next(BLOCK) as usize;
                let data = pattern(tag ^ round as u8, off, len);
                let (_, fh, want) = &mut files[f];
                vfs.write(&root(), *fh, off, Bytes::from(data.clone()))
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
                let src_len = files[f].2.len() as u64;
                if src_len > 0 {
                    let off_in = next(src_len);
                    let len = 1 + next(src_len - off_in);
                    let off_out = next(2 * BLOCK);
                    let copied = vfs
                        .copy_file_range(&root(), files[f].1, off_in, files[g].1, off_out, len, 0)
                        .await
                        .unwrap();
                    assert_eq!(copied, len);
                    let piece = files[f].2[off_in as usize..(off_in + len) as usize].to_vec();
                    let want = &mut files[g].2;
                    let end = (off_out + len) as usize;
                    if want.len() < end {
                        want.resize(end, 0);
                    }
                    want[off_out as usize..end].copy_from_slice(&piece);
                }
            }
            3 => {
                let (_, fh, want) = &mut files[f];
                let len = next(2 * BLOCK) as usize;
                vfs.ftruncate(&root(), *fh, len as u64).await.unwrap();
                want.resize(len, 0);
            }
            _ => {
                vfs.compact(files[f].0).await.unwrap();
            }
        }
        vfs.fsync(&root(), files[f].1, false).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut out = Vec::new();
    for (ino, fh, want) in files {
        vfs.release(&root(), fh).await.unwrap();
        out.push((ino, want));
    }
    vfs.close().await.unwrap();
    out
}

engine_tests! {
    async fn gc_reports_leaked_objects_and_deletes_them_only_when_asked(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client().await;
        let a = file_with(&vfs, ROOT_INO, "a", 1, 2 * BLOCK as usize + 7).await;
        let b = file_with(&vfs, ROOT_INO, "b", 2, 100).await;
        let key = stray(&vol.mem, 9_999_999).await;
        let valid = vol.block_keys().await.len() as u64 - 1;

        let report = vfs.gc(&gc_now(false), &Progress::default()).await.unwrap();
        assert_eq!(report.listed.count, valid + 1);
        assert_eq!(report.valid.count, valid);
        assert_eq!((report.leaked.count, report.leaked.bytes), (1, 10));
        assert_eq!(report.deleted_leaked.count, 0);
        assert!(vol.mem.head(&key).await.is_ok(), "report only: nothing deleted");

        // Young objects are uploads in flight, never leaks.
        let young = vfs.gc(&GcOptions::default(), &Progress::default()).await.unwrap();
        assert_eq!((young.leaked.count, young.young.count), (0, 1));

        let report = vfs.gc(&gc_now(true), &Progress::default()).await.unwrap();
        assert_eq!(report.deleted_leaked.count, 1);
        assert!(vol.mem.head(&key).await.is_err());
        assert_eq!(vol.block_keys().await.len() as u64, valid);
        assert_eq!(contents(&vfs, a).await, pattern(1, 0, 2 * BLOCK as usize + 7));
        assert_eq!(contents(&vfs, b).await, pattern(2, 0, 100));
        let again = vfs.gc(&gc_now(false), &Progress::default()).await.unwrap();
        assert_eq!(again.leaked.count, 0);
        vfs.close().await.unwrap();
    }

    async fn a_failed_delete_leaves_the_slice_pending_until_gc_finishes_it(engine: Engine) {
        let mem = Arc::new(MemStore::new());
        let faulty = Arc::new(FaultyStore::new(mem.clone()));
        let vol = Volume::with_store(engine, mem, faulty.clone()).await;
        let vfs = vol.client().await;
        file_with(&vfs, ROOT_INO, "doomed", 3, 3 * BLOCK as usize).await;
        vfs.unlink(&root(), ROOT_INO, b"doomed").await.unwrap();
        faulty.fail_deletes.store(true, Ordering::SeqCst);
        assert_eq!(vfs.purge_deleted().await.unwrap(), 1);
        // The objects are still there, and the engine still knows the slice.
        assert_eq!(vol.block_keys().await.len(), 3);
        let meta = vol.meta().await;
        assert_eq!(meta.pending_slices(10).await.unwrap().len(), 1);
        let report = vfs.gc(&gc_now(false), &Progress::default()).await.unwrap();
        assert_eq!(report.pending_slices.count, 1);
        assert_eq!(report.pending_objects.count, 3);
        assert_eq!(report.leaked.count, 0, "pending objects are not leaks");

        faulty.fail_deletes.store(false, Ordering::SeqCst);
        let report = vfs.gc(&gc_now(true), &Progress::default()).await.unwrap();
        assert_eq!(report.finished_slices, 1);
        assert!(vol.block_keys().await.is_empty());
        assert!(meta.pending_slices(10).await.unwrap().is_empty());
        vfs.close().await.unwrap();
    }

    async fn gc_compact_compacts_every_file(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client_with(test_options().compact_concurrency(0)).await;
        let (ino, fh) = create(&vfs, "log").await;
        for i in 0..10u64 {
            vfs.write(&root(), fh, i * 10, Bytes::from(pattern(4, i * 10, 10))).await.unwrap();
            vfs.fsync(&root(), fh, false).await.unwrap();
        }
        vfs.release(&root(), fh).await.unwrap();
        let opts = GcOptions { compact: true, ..gc_now(true) };
        let report = vfs.gc(&opts, &Progress::default()).await.unwrap();
        assert_eq!(report.compacted_records, 10);
        assert_eq!(report.records, 1);
        assert_eq!(vol.block_keys().await.len(), 1);
        assert_eq!(contents(&vfs, ino).await, pattern(4, 0, 100));
        vfs.close().await.unwrap();
    }

    async fn fsck_names_the_files_whose_blocks_are_missing(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client().await;
        let d = vfs.mkdir(&root(), ROOT_INO, b"d", 0o755).await.unwrap().ino;
        let f = file_with(&vfs, d, "f", 5, BLOCK as usize + 1).await;
        file_with(&vfs, ROOT_INO, "ok", 6, 10).await;
        let whole = FsckOptions::default();
        let start = || (ROOT_INO, "/".to_string());
        let clean = vfs.fsck(&whole, start(), &Progress::default()).await.unwrap();
        assert!(clean.is_clean(), "{clean:?}");
        assert_eq!((clean.files, clean.dirs, clean.blocks), (2, 2, 3));

        let info = vfs.file_info(f).await.unwrap();
        let lost = info.chunks[0].1[0].objects[1].clone();
        vol.mem.delete(&lost).await.unwrap();
        let report = vfs.fsck(&whole, start(), &Progress::default()).await.unwrap();
        assert_eq!(report.broken.len(), 1);
        assert_eq!(report.broken[0].path, "/d/f");
        assert_eq!(report.broken[0].bad_blocks, vec![lost]);
        // A subtree check without -r sees the directory's own entries only.
        let sub = FsckOptions { path: Some("/d".into()), ..FsckOptions::default() };
        let report = vfs.fsck(&sub, (d, "/d".into()), &Progress::default()).await.unwrap();
        assert_eq!((report.files, report.broken.len()), (1, 1));
        vfs.close().await.unwrap();
    }

    async fn fsck_repair_keeps_a_consistent_volume_as_it_is(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client().await;
        let d = vfs.mkdir(&root(), ROOT_INO, b"d", 0o755).await.unwrap().ino;
        file_with(&vfs, d, "f", 7, 5000).await;
        let opts = FsckOptions { repair: true, sync_dir_stat: true, ..FsckOptions::default() };
        let report = vfs
            .fsck(&opts, (ROOT_INO, "/".into()), &Progress::default())
            .await
            .unwrap();
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(report.synced_dirs, 2);
        let usage = report.usage.expect("the whole volume was repaired");
        assert_eq!(usage.before, usage.after);
        vfs.close().await.unwrap();
    }

    async fn info_and_summary_describe_files_and_trees(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client().await;
        let d = vfs.mkdir(&root(), ROOT_INO, b"d", 0o755).await.unwrap().ino;
        let e = vfs.mkdir(&root(), d, b"e", 0o755).await.unwrap().ino;
        let f = file_with(&vfs, d, "f", 8, 2 * BLOCK as usize).await;
        file_with(&vfs, e, "g", 9, 10).await;
        vfs.symlink(&root(), d, b"l", b"f").await.unwrap();
        let info = vfs.file_info(f).await.unwrap();
        assert_eq!(info.length, 2 * BLOCK);
        assert_eq!(info.chunks.len(), 1);
        assert_eq!(info.chunks[0].1.len(), 1);
        assert_eq!(info.chunks[0].1[0].objects.len(), 2);
        let s = vfs.summary(d, &Progress::default()).await.unwrap();
        assert_eq!((s.files, s.dirs, s.others), (2, 2, 1));
        assert_eq!(s.length, 2 * BLOCK + 10);
        assert_eq!(s.space, 2 * BLOCK + 4096 * 4);
        vfs.close().await.unwrap();
    }

    async fn gc_with_delete_never_deletes_a_live_object_under_load(engine: Engine) {
        let vol = Volume::new(engine).await;
        let gc_client = vol.client().await;
        let a = tokio::spawn(churn(vol.client().await, 1, 300));
        let b = tokio::spawn(churn(vol.client().await, 2, 300));
        // Every change is synced within milliseconds: one second is ample for "in flight".
        let opts = GcOptions { min_age: Duration::from_secs(1), ..gc_now(true) };
        let mut rounds = 0;
        while !(a.is_finished() && b.is_finished()) {
            gc_client.gc(&opts, &Progress::default()).await.unwrap();
            rounds += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut files = a.await.unwrap();
        files.extend(b.await.unwrap());
        assert!(rounds > 3, "gc ran {rounds} times");
        gc_client.gc(&gc_now(true), &Progress::default()).await.unwrap();
        for (ino, want) in &files {
            assert_eq!(&contents(&gc_client, *ino).await, want, "inode {ino}");
        }
        let fsck = gc_client
            .fsck(&FsckOptions::default(), (ROOT_INO, "/".into()), &Progress::default())
            .await
            .unwrap();
        assert!(fsck.is_clean(), "{fsck:?}");
        let last = gc_client.gc(&gc_now(false), &Progress::default()).await.unwrap();
        assert_eq!((last.leaked.count, last.pending_slices.count), (0, 0), "{last:?}");
        gc_client.close().await.unwrap();
    }
}
