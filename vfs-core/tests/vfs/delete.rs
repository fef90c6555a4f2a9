//! Deletion: data of open files survives unlink; purged files lose their objects.

use bytes::Bytes;
use futures::StreamExt;
use meta_api::ROOT_INO;

use crate::support::*;

engine_tests! {
    async fn unlink_while_open_keeps_data_until_release_then_purge_deletes_objects(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client().await;
        let (ino, fh) = create(&vfs, "doomed").await;
        let n = 3 * BLOCK as usize + 5;
        vfs.write(&root(), fh, 0, Bytes::from(pattern(8, 0, n))).await.unwrap();
        vfs.fsync(&root(), fh, false).await.unwrap();
        assert_eq!(vol.block_keys().await.len(), 4);

        vfs.unlink(&root(), ROOT_INO, b"doomed").await.unwrap();
        assert_eq!(
            vfs.lookup(&root(), ROOT_INO, b"doomed").await.unwrap_err().errno(),
            libc::ENOENT
        );
        // Still open: nothing to purge, data readable and writable.
        assert_eq!(vfs.purge_deleted().await.unwrap(), 0);
        assert_eq!(read_all(&vfs, fh, 0, n as u64).await, pattern(8, 0, n));
        vfs.write(&root(), fh, n as u64, Bytes::from_static(b"more")).await.unwrap();
        vfs.flush(&root(), fh).await.unwrap();
        assert_eq!(vol.block_keys().await.len(), 5);
        assert_eq!(vfs.getattr(&root(), ino).await.unwrap().length, n as u64 + 4);

        vfs.release(&root(), fh).await.unwrap();
        assert_eq!(vfs.purge_deleted().await.unwrap(), 1);
        assert!(vol.block_keys().await.is_empty());
        assert_eq!(vfs.getattr(&root(), ino).await.unwrap_err().errno(), libc::ENOENT);
        vfs.close().await.unwrap();
    }

    async fn truncate_and_overwrite_never_delete_objects_directly(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client().await;
        let (_, fh) = create(&vfs, "f").await;
        vfs.write(&root(), fh, 0, Bytes::from(pattern(9, 0, 2 * BLOCK as usize)))
            .await
            .unwrap();
        vfs.flush(&root(), fh).await.unwrap();
        vfs.write(&root(), fh, 0, Bytes::from(pattern(10, 0, 2 * BLOCK as usize)))
            .await
            .unwrap();
        vfs.ftruncate(&root(), fh, 10).await.unwrap();
        vfs.release(&root(), fh).await.unwrap();
        // Both generations of blocks are still there until the file itself is purged.
        assert_eq!(vol.block_keys().await.len(), 4);
        vfs.unlink(&root(), ROOT_INO, b"f").await.unwrap();
        assert_eq!(vfs.purge_deleted().await.unwrap(), 1);
        assert!(vol.block_keys().await.is_empty());
    }

    async fn a_file_open_in_another_client_survives_unlink_until_that_client_closes(engine: Engine) {
        let vol = Volume::new(engine).await;
        let a = vol.client().await;
        let b = vol.client().await;
        let (ino, fh) = create(&a, "shared").await;
        a.write(&root(), fh, 0, Bytes::from_static(b"keep me")).await.unwrap();
        a.release(&root(), fh).await.unwrap();
        let bfh = b.open(&root(), ino, libc::O_RDONLY).await.unwrap();
        a.unlink(&root(), ROOT_INO, b"shared").await.unwrap();
        assert_eq!(a.purge_deleted().await.unwrap(), 0);
        assert_eq!(&b.read(&root(), bfh, 0, 100).await.unwrap()[..], b"keep me");
        // Closing the client releases its handles and its session.
        b.close().await.unwrap();
        assert_eq!(a.purge_deleted().await.unwrap(), 1);
        assert!(vol.block_keys().await.is_empty());
        a.close().await.unwrap();
    }

    async fn background_purge_runs_on_request(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol
            .client_with(test_options().purge_interval(Some(std::time::Duration::from_secs(3600))))
            .await;
        let (_, fh) = create(&vfs, "gone").await;
        vfs.write(&root(), fh, 0, Bytes::from_static(b"x")).await.unwrap();
        vfs.release(&root(), fh).await.unwrap();
        vfs.unlink(&root(), ROOT_INO, b"gone").await.unwrap();
        vfs.request_purge();
        let mut left = 1;
        for _ in 0..200 {
            left = vol.block_keys().await.len();
            if left == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(left, 0);
        vfs.close().await.unwrap();
    }

    async fn closing_never_waits_for_the_deletion_queue_and_the_next_open_continues_it(engine: Engine) {
        const FILES: usize = 10_000;
        let vol = Volume::new(engine).await;
        let meta = vol.meta().await;
        let dirs = 10;
        for d in 0..dirs {
            let dir = meta
                .mkdir(&root(), ROOT_INO, format!("d{d}").as_bytes(), 0o755)
                .await
                .unwrap()
                .ino;
            futures::stream::iter(0..FILES / dirs)
                .for_each_concurrent(8, |i| {
                    let meta = &meta;
                    async move {
                        let name = format!("f{i}");
                        meta.mknod(&root(), dir, name.as_bytes(), meta_api::FileType::Regular, 0o644, 0)
                            .await
                            .unwrap();
                        meta.unlink(&root(), dir, name.as_bytes()).await.unwrap();
                    }
                })
                .await;
        }
        assert_eq!(meta.deleted_files(usize::MAX).await.unwrap().len(), FILES);

        // A client whose background purge starts at once is closed at once.
        let hourly = test_options().purge_interval(Some(std::time::Duration::from_secs(3600)));
        let vfs = vol.client_with(hourly.clone()).await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let started = std::time::Instant::now();
        vfs.close().await.unwrap();
        let took = started.elapsed();
        assert!(
            took < vfs_core::JOBS_WAIT_ON_CLOSE + std::time::Duration::from_secs(1),
            "close took {took:?}"
        );

        // The next client's first round continues the queue and empties it.
        let next = vol.client_with(hourly).await;
        let mut left = usize::MAX;
        for _ in 0..600 {
            left = meta.deleted_files(usize::MAX).await.unwrap().len();
            if left == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(left, 0, "the next open finishes the queue");
        next.close().await.unwrap();
    }

    async fn purging_while_the_background_round_runs_still_empties_the_queue(engine: Engine) {
        let vol = Volume::new(engine).await;
        let meta = vol.meta().await;
        for i in 0..3000 {
            let name = format!("f{i}");
            meta.mknod(&root(), ROOT_INO, name.as_bytes(), meta_api::FileType::Regular, 0o644, 0)
                .await
                .unwrap();
            meta.unlink(&root(), ROOT_INO, name.as_bytes()).await.unwrap();
        }
        let hourly = test_options().purge_interval(Some(std::time::Duration::from_secs(3600)));
        let vfs = vol.client_with(hourly).await;
        vfs.purge_deleted().await.unwrap();
        assert_eq!(meta.deleted_files(10).await.unwrap(), vec![]);
        vfs.close().await.unwrap();
    }
}
