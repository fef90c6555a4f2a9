//! The trash through the VFS: deletions kept with their data, restore, and the cleanup
//! that deletes them for real.

use bytes::Bytes;
use meta_api::{ROOT_INO, TRASH_INO};
use vfs_core::Vfs;

use crate::support::*;

/// The names of the trash's hour directories.
async fn hours(vfs: &Vfs) -> Vec<Vec<u8>> {
    vfs.meta()
        .readdir(&root(), TRASH_INO, None, 100, false)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect()
}

engine_tests! {
    async fn a_deleted_file_keeps_its_data_until_the_trash_is_cleaned(engine: Engine) {
        let vol = Volume::with_trash(engine).await;
        let vfs = vol.client().await;
        let f = file_with(&vfs, ROOT_INO, "f", 3, 3 * BLOCK as usize).await;
        let blocks = vol.block_keys().await;
        vfs.unlink(&root(), ROOT_INO, b"f").await.unwrap();
        assert_eq!(vfs.purge_deleted().await.unwrap(), 0);
        assert_eq!(vol.block_keys().await, blocks, "the trash keeps the blocks");
        // Not due yet: an hour directory lives a day and two hours.
        let done = vfs.clean_trash(false).await.unwrap();
        assert_eq!((done.hours, done.entries), (0, 0));
        assert_eq!(contents(&vfs, f).await, pattern(3, 0, 3 * BLOCK as usize));

        let done = vfs.clean_trash(true).await.unwrap();
        assert_eq!((done.hours, done.entries), (1, 1));
        assert!(hours(&vfs).await.is_empty());
        assert_eq!(vfs.purge_deleted().await.unwrap(), 1);
        assert!(vol.block_keys().await.is_empty(), "deleted for real");
        vfs.close().await.unwrap();
    }

    async fn restore_rebuilds_deleted_trees_then_puts_them_back(engine: Engine) {
        let vol = Volume::with_trash(engine).await;
        let vfs = vol.client().await;
        let d = vfs.mkdir(&root(), ROOT_INO, b"d", 0o755).await.unwrap().ino;
        let sub = vfs.mkdir(&root(), d, b"sub", 0o755).await.unwrap().ino;
        let f = file_with(&vfs, sub, "f", 5, 1000).await;
        let g = file_with(&vfs, ROOT_INO, "g", 6, 10).await;
        // rm -r d, and rm g
        vfs.unlink(&root(), sub, b"f").await.unwrap();
        vfs.rmdir(&root(), d, b"sub").await.unwrap();
        vfs.rmdir(&root(), ROOT_INO, b"d").await.unwrap();
        vfs.unlink(&root(), ROOT_INO, b"g").await.unwrap();
        let hour = hours(&vfs).await.pop().expect("an hour directory");
        assert!(vfs.restore(b"2026-13-01-00", false).await.is_err());
        assert!(vfs.restore(b"1999-01-01-00", false).await.is_err(), "no such hour");

        // Without put-back: f into sub and sub into d (both deleted in that hour).
        let r = vfs.restore(&hour, false).await.unwrap();
        assert_eq!((r.restored, r.need_put_back, r.conflicts, r.failed), (2, 2, 0, 0));
        assert!(vfs.lookup(&root(), ROOT_INO, b"d").await.is_err());
        // With it: d and g back into the root.
        let r = vfs.restore(&hour, true).await.unwrap();
        assert_eq!((r.restored, r.conflicts), (2, 0));
        assert_eq!(vfs.lookup(&root(), ROOT_INO, b"d").await.unwrap().ino, d);
        assert_eq!(vfs.lookup(&root(), d, b"sub").await.unwrap().ino, sub);
        assert_eq!(vfs.lookup(&root(), sub, b"f").await.unwrap().ino, f);
        assert_eq!(vfs.lookup(&root(), ROOT_INO, b"g").await.unwrap().ino, g);
        assert_eq!(contents(&vfs, f).await, pattern(5, 0, 1000));
        // A name taken meanwhile is a conflict, and the entry stays in the trash.
        vfs.unlink(&root(), ROOT_INO, b"g").await.unwrap();
        file_with(&vfs, ROOT_INO, "g", 7, 1).await;
        let r = vfs.restore(&hour, true).await.unwrap();
        assert_eq!((r.restored, r.conflicts), (0, 1));
        vfs.close().await.unwrap();
    }

    async fn compacted_slices_wait_in_the_trash_too(engine: Engine) {
        let vol = Volume::with_trash(engine).await;
        let vfs = vol.client().await;
        let (f, fh) = create(&vfs, "f").await;
        for i in 0..4u64 {
            vfs.write(&root(), fh, i * 100, Bytes::from(pattern(i as u8, 0, 100)))
                .await
                .unwrap();
            vfs.fsync(&root(), fh, false).await.unwrap();
        }
        vfs.release(&root(), fh).await.unwrap();
        let before = vol.block_keys().await.len();
        assert_eq!(vfs.compact(f).await.unwrap().replaced, 4);
        assert_eq!(
            vol.block_keys().await.len(),
            before + 1,
            "the replaced slices are kept for the trash"
        );
        let done = vfs.clean_trash(true).await.unwrap();
        assert_eq!(done.delayed_slices, 4);
        assert_eq!(vol.block_keys().await.len(), 1);
        let mut want = Vec::new();
        for i in 0..4u8 {
            want.extend(pattern(i, 0, 100));
        }
        assert_eq!(contents(&vfs, f).await, want);
        vfs.close().await.unwrap();
    }
}
