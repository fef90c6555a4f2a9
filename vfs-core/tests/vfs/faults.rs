//! A failing store: errors reach the writer, metadata never points at missing blocks,
//! corrupt blocks are errors, never data.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use chunkstore::MemStore;

use crate::support::*;

engine_tests! {
    async fn failed_uploads_are_eio_and_commit_nothing(engine: Engine) {
        let mem = Arc::new(MemStore::new());
        let faulty = Arc::new(FaultyStore::new(mem.clone()));
        let vol = Volume::with_store(engine, mem, faulty.clone()).await;
        let vfs = vol.client().await;
        let (ino, fh) = create(&vfs, "f").await;
        // Good data first, committed.
        vfs.write(&root(), fh, 0, Bytes::from(pattern(11, 0, 1000))).await.unwrap();
        vfs.fsync(&root(), fh, false).await.unwrap();

        faulty.fail_puts.store(true, Ordering::SeqCst);
        // Several blocks: the full ones start uploading during the write.
        let n = 3 * BLOCK as usize + 10;
        let w = vfs.write(&root(), fh, 1000, Bytes::from(pattern(12, 1000, n))).await;
        let err = match w {
            Err(e) => e,
            Ok(_) => vfs.fsync(&root(), fh, false).await.unwrap_err(),
        };
        assert_eq!(err.errno(), libc::EIO);
        faulty.fail_puts.store(false, Ordering::SeqCst);

        // The failure is reported once; the file keeps what was committed before.
        vfs.fsync(&root(), fh, false).await.unwrap();
        assert_eq!(vfs.getattr(&root(), ino).await.unwrap().length, 1000);
        assert_eq!(read_all(&vfs, fh, 0, 10_000).await, pattern(11, 0, 1000));
        assert_blocks_exist(&vol, ino).await;

        // And it is usable again.
        vfs.write(&root(), fh, 1000, Bytes::from_static(b"after")).await.unwrap();
        vfs.release(&root(), fh).await.unwrap();
        assert_blocks_exist(&vol, ino).await;
        assert_eq!(vol.meta().await.getattr(ino).await.unwrap().length, 1005);
    }

    async fn a_failure_is_reported_by_release_too(engine: Engine) {
        let mem = Arc::new(MemStore::new());
        let faulty = Arc::new(FaultyStore::new(mem.clone()));
        let vol = Volume::with_store(engine, mem, faulty.clone()).await;
        let vfs = vol.client().await;
        let (ino, fh) = create(&vfs, "f").await;
        faulty.fail_puts.store(true, Ordering::SeqCst);
        vfs.write(&root(), fh, 0, Bytes::from_static(b"small")).await.unwrap();
        assert_eq!(vfs.release(&root(), fh).await.unwrap_err().errno(), libc::EIO);
        assert_eq!(vol.meta().await.getattr(ino).await.unwrap().length, 0);
        assert!(vol.meta().await.read_chunk(ino, 0).await.unwrap().is_empty());
        // The handle is gone anyway.
        assert_eq!(vfs.flush(&root(), fh).await.unwrap_err().errno(), libc::EBADF);
    }

    async fn short_blocks_are_eio_never_data(engine: Engine) {
        let mem = Arc::new(MemStore::new());
        let faulty = Arc::new(FaultyStore::new(mem.clone()));
        let vol = Volume::with_store(engine, mem, faulty.clone()).await;
        let vfs = vol.client().await;
        let (ino, fh) = create(&vfs, "f").await;
        vfs.write(&root(), fh, 0, Bytes::from(pattern(13, 0, 2 * BLOCK as usize)))
            .await
            .unwrap();
        vfs.release(&root(), fh).await.unwrap();
        vfs.close().await.unwrap();
        // A client whose cache the writes did not warm.
        let vfs = vol.client().await;
        faulty.short_reads.store(true, Ordering::SeqCst);
        // Whole-block reads (sequential) and ranged reads (random) both check lengths.
        let fh = vfs.open(&root(), ino, libc::O_RDONLY).await.unwrap();
        assert_eq!(vfs.read(&root(), fh, 0, 100).await.unwrap_err().errno(), libc::EIO);
        let fh2 = vfs.open(&root(), ino, libc::O_RDONLY).await.unwrap();
        assert_eq!(
            vfs.read(&root(), fh2, BLOCK + 17, 100).await.unwrap_err().errno(),
            libc::EIO
        );
        faulty.short_reads.store(false, Ordering::SeqCst);
        assert_eq!(
            &vfs.read(&root(), fh2, BLOCK + 17, 100).await.unwrap()[..],
            &pattern(13, BLOCK + 17, 100)[..]
        );
        vfs.release(&root(), fh).await.unwrap();
        vfs.release(&root(), fh2).await.unwrap();
    }

    async fn each_handle_reports_a_failure_once(engine: Engine) {
        let mem = Arc::new(MemStore::new());
        let faulty = Arc::new(FaultyStore::new(mem.clone()));
        let vol = Volume::with_store(engine, mem, faulty.clone()).await;
        let vfs = vol.client().await;
        let (ino, w) = create(&vfs, "f").await;
        let r = vfs.open(&root(), ino, libc::O_RDONLY).await.unwrap();
        faulty.fail_puts.store(true, Ordering::SeqCst);
        vfs.write(&root(), w, 0, Bytes::from_static(b"lost")).await.unwrap();
        // Flushing through the reader writes the file back and sees the failure...
        assert_eq!(vfs.flush(&root(), r).await.unwrap_err().errno(), libc::EIO);
        // ...which the writer still gets to see, once.
        assert_eq!(vfs.fsync(&root(), w, false).await.unwrap_err().errno(), libc::EIO);
        vfs.fsync(&root(), w, false).await.unwrap();
        faulty.fail_puts.store(false, Ordering::SeqCst);
        // A handle opened after the failure has nothing to report.
        let late = vfs.open(&root(), ino, libc::O_RDONLY).await.unwrap();
        vfs.flush(&root(), late).await.unwrap();
        for fh in [w, r, late] {
            vfs.release(&root(), fh).await.unwrap();
        }
    }
}
