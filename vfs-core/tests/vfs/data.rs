//! Reading and writing file data.

use bytes::Bytes;
use meta_api::{SetAttr, MAX_FILE_SIZE, ROOT_INO};

use crate::support::*;

engine_tests! {
    async fn reads_see_own_unflushed_writes_and_other_clients_see_them_after_close(engine: Engine) {
        let vol = Volume::new(engine).await;
        let a = vol.client().await;
        let (ino, fh) = create(&a, "f").await;
        a.write(&root(), fh, 0, Bytes::from_static(b"hello world")).await.unwrap();
        // A second handle of the same client sees the buffered bytes too.
        let fh2 = a.open(&root(), ino, libc::O_RDONLY).await.unwrap();
        assert_eq!(&a.read(&root(), fh2, 6, 100).await.unwrap()[..], b"world");
        assert_eq!(a.getattr(&root(), ino).await.unwrap().length, 11);
        a.write(&root(), fh, 11, Bytes::from_static(b"!")).await.unwrap();
        assert_eq!(&a.read(&root(), fh, 0, 100).await.unwrap()[..], b"hello world!");
        a.release(&root(), fh).await.unwrap();
        a.release(&root(), fh2).await.unwrap();

        let b = vol.client().await;
        let fh = b.open(&root(), ino, libc::O_RDONLY).await.unwrap();
        assert_eq!(&b.read(&root(), fh, 0, 100).await.unwrap()[..], b"hello world!");
        assert!(b.read(&root(), fh, 12, 100).await.unwrap().is_empty());
        b.release(&root(), fh).await.unwrap();
        a.close().await.unwrap();
        b.close().await.unwrap();
    }

    async fn a_file_larger_than_a_chunk_round_trips(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client().await;
        let (ino, fh) = create(&vfs, "big").await;
        let total = CHUNK + 300 * 1024 + 17;
        let piece = 1 << 20;
        let mut off = 0;
        while off < total {
            let n = (total - off).min(piece) as usize;
            let w = vfs
                .write(&root(), fh, off, Bytes::from(pattern(1, off, n)))
                .await
                .unwrap();
            assert_eq!(w, n);
            off += n as u64;
        }
        vfs.release(&root(), fh).await.unwrap();
        // Two slices (one per chunk), cut into 64 KiB blocks, the last one short.
        let keys = vol.block_keys().await;
        let expect_blocks = CHUNK.div_ceil(BLOCK) + (total - CHUNK).div_ceil(BLOCK);
        assert_eq!(keys.len() as u64, expect_blocks);
        assert_eq!(vol.meta().await.read_chunk(ino, 0).await.unwrap().len(), 1);
        assert_eq!(vol.meta().await.read_chunk(ino, 1).await.unwrap().len(), 1);

        let other = vol.client().await;
        let fh = other.open(&root(), ino, libc::O_RDONLY).await.unwrap();
        assert_eq!(other.getattr(&root(), ino).await.unwrap().length, total);
        let mut off = 0;
        while off < total {
            let n = (total - off).min(3 << 20);
            let got = read_all(&other, fh, off, n).await;
            assert!(got == pattern(1, off, n as usize), "mismatch in {off}..{}", off + n);
            off += n;
        }
        other.release(&root(), fh).await.unwrap();
        vfs.close().await.unwrap();
        other.close().await.unwrap();
    }

    async fn writes_spanning_chunk_and_block_boundaries(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client().await;
        let (ino, fh) = create(&vfs, "span").await;
        // One write across the chunk boundary, unaligned to blocks on both sides.
        let start = CHUNK - BLOCK - 1000;
        let len = (3 * BLOCK) as usize;
        vfs.write(&root(), fh, start, Bytes::from(pattern(2, start, len)))
            .await
            .unwrap();
        // A small write across a block boundary inside chunk 0.
        vfs.write(&root(), fh, BLOCK - 5, Bytes::from(pattern(3, BLOCK - 5, 10)))
            .await
            .unwrap();
        vfs.fsync(&root(), fh, false).await.unwrap();
        assert_blocks_exist(&vol, ino).await;
        let other = vol.client().await;
        let rfh = other.open(&root(), ino, libc::O_RDONLY).await.unwrap();
        assert_eq!(read_all(&other, rfh, start, len as u64).await, pattern(2, start, len));
        assert_eq!(read_all(&other, rfh, BLOCK - 5, 10).await, pattern(3, BLOCK - 5, 10));
        let holes = read_all(&other, rfh, 0, BLOCK - 5).await;
        assert!(holes.iter().all(|&b| b == 0));
        // A read across the chunk boundary.
        assert_eq!(
            read_all(&other, rfh, CHUNK - 10, 20).await,
            pattern(2, CHUNK - 10, 20)
        );
        other.release(&root(), rfh).await.unwrap();
        vfs.release(&root(), fh).await.unwrap();
    }

    async fn truncate_shrinks_and_grows_across_chunks(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client().await;
        let (ino, fh) = create(&vfs, "t").await;
        let w = |off: u64, n: usize| Bytes::from(pattern(4, off, n));
        vfs.write(&root(), fh, 100, w(100, 5000)).await.unwrap();
        vfs.write(&root(), fh, CHUNK + 10, w(CHUNK + 10, 5000)).await.unwrap();
        vfs.write(&root(), fh, 2 * CHUNK + 10, w(2 * CHUNK + 10, 5000))
            .await
            .unwrap();
        // Shrink into chunk 1 while the writes are still buffered.
        let attr = vfs.ftruncate(&root(), fh, CHUNK + 1000).await.unwrap();
        assert_eq!(attr.length, CHUNK + 1000);
        // Grow again: what was cut off reads as zeros.
        let attr = vfs
            .setattr(&root(), ino, &SetAttr::new().size(2 * CHUNK + 9000))
            .await
            .unwrap();
        assert_eq!(attr.length, 2 * CHUNK + 9000);
        assert_eq!(read_all(&vfs, fh, 100, 5000).await, pattern(4, 100, 5000));
        assert_eq!(
            read_all(&vfs, fh, CHUNK + 10, 990).await,
            pattern(4, CHUNK + 10, 990)
        );
        let tail = read_all(&vfs, fh, CHUNK + 1000, 4010).await;
        assert!(tail.iter().all(|&b| b == 0));
        let tail = read_all(&vfs, fh, 2 * CHUNK, 9000).await;
        assert_eq!(tail.len(), 9000);
        assert!(tail.iter().all(|&b| b == 0));
        vfs.release(&root(), fh).await.unwrap();

        // Another client agrees after open.
        let other = vol.client().await;
        let rfh = other.open(&root(), ino, libc::O_RDONLY).await.unwrap();
        assert_eq!(other.getattr(&root(), ino).await.unwrap().length, 2 * CHUNK + 9000);
        assert_eq!(read_all(&other, rfh, 100, 5000).await, pattern(4, 100, 5000));
        assert!(read_all(&other, rfh, 2 * CHUNK, 9000).await.iter().all(|&b| b == 0));
        other.release(&root(), rfh).await.unwrap();
        // Truncating to zero with O_TRUNC.
        let fh = vfs
            .open(&root(), ino, libc::O_WRONLY | libc::O_TRUNC)
            .await
            .unwrap();
        assert_eq!(vfs.getattr(&root(), ino).await.unwrap().length, 0);
        vfs.release(&root(), fh).await.unwrap();
    }

    async fn overwrite_in_the_middle(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client().await;
        let (ino, fh) = create(&vfs, "o").await;
        let n = (3 * BLOCK) as usize;
        vfs.write(&root(), fh, 0, Bytes::from(vec![b'a'; n])).await.unwrap();
        vfs.flush(&root(), fh).await.unwrap();
        let mid = BLOCK + 7;
        vfs.write(&root(), fh, mid, Bytes::from(vec![b'b'; 100])).await.unwrap();
        let mut want = vec![b'a'; n];
        want[mid as usize..mid as usize + 100].fill(b'b');
        assert_eq!(read_all(&vfs, fh, 0, n as u64).await, want);
        vfs.release(&root(), fh).await.unwrap();
        let other = vol.client().await;
        let rfh = other.open(&root(), ino, libc::O_RDONLY).await.unwrap();
        assert_eq!(read_all(&other, rfh, 0, n as u64).await, want);
        other.release(&root(), rfh).await.unwrap();
    }

    async fn o_append_from_two_handles_interleaves_without_loss(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client().await;
        let (ino, fh) = create(&vfs, "log").await;
        vfs.write(&root(), fh, 0, Bytes::from_static(b"start\n")).await.unwrap();
        vfs.release(&root(), fh).await.unwrap();
        let h1 = vfs
            .open(&root(), ino, libc::O_WRONLY | libc::O_APPEND)
            .await
            .unwrap();
        let h2 = vfs
            .open(&root(), ino, libc::O_WRONLY | libc::O_APPEND)
            .await
            .unwrap();
        let mut want = b"start\n".to_vec();
        for i in 0..20 {
            let (h, line) = if i % 2 == 0 {
                (h1, format!("one {i}\n"))
            } else {
                (h2, format!("two {i}\n"))
            };
            // The offset is ignored with O_APPEND.
            vfs.write(&root(), h, 0, Bytes::from(line.clone())).await.unwrap();
            want.extend_from_slice(line.as_bytes());
            if i == 9 {
                vfs.flush(&root(), h1).await.unwrap();
            }
        }
        vfs.release(&root(), h1).await.unwrap();
        vfs.release(&root(), h2).await.unwrap();
        let other = vol.client().await;
        let fh = other.open(&root(), ino, libc::O_RDONLY).await.unwrap();
        assert_eq!(read_all(&other, fh, 0, 10_000).await, want);
        other.release(&root(), fh).await.unwrap();
    }

    async fn sparse_files_read_zeros_in_holes(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client().await;
        let (ino, fh) = create(&vfs, "sparse").await;
        let far = 3 * CHUNK + 12345;
        vfs.write(&root(), fh, 10, Bytes::from_static(b"head")).await.unwrap();
        vfs.write(&root(), fh, far, Bytes::from_static(b"tail")).await.unwrap();
        vfs.release(&root(), fh).await.unwrap();
        // Only two tiny blocks were stored.
        assert_eq!(vol.block_keys().await.len(), 2);
        let fh = vfs.open(&root(), ino, libc::O_RDONLY).await.unwrap();
        assert_eq!(vfs.getattr(&root(), ino).await.unwrap().length, far + 4);
        let got = read_all(&vfs, fh, 0, 100).await;
        assert_eq!(&got[10..14], b"head");
        assert!(got[..10].iter().chain(&got[14..]).all(|&b| b == 0));
        let got = read_all(&vfs, fh, 2 * CHUNK - 50, 100).await;
        assert!(got.iter().all(|&b| b == 0));
        let got = read_all(&vfs, fh, far - 6, 100).await;
        assert_eq!(got, b"\0\0\0\0\0\0tail");
        vfs.release(&root(), fh).await.unwrap();
    }

    async fn open_flags_and_handle_modes_are_enforced(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client().await;
        let (ino, fh) = create(&vfs, "f").await;
        vfs.release(&root(), fh).await.unwrap();
        let excl = vfs
            .create(&root(), ROOT_INO, b"f", 0o644, libc::O_RDWR | libc::O_CREAT | libc::O_EXCL)
            .await
            .unwrap_err();
        assert_eq!(excl.errno(), libc::EEXIST);
        // Without O_EXCL an existing file is opened.
        let (e, fh) = vfs
            .create(&root(), ROOT_INO, b"f", 0o644, libc::O_RDWR | libc::O_CREAT)
            .await
            .unwrap();
        assert_eq!(e.ino, ino);
        vfs.release(&root(), fh).await.unwrap();
        assert_eq!(vfs.open(&root(), ino, 3).await.unwrap_err().errno(), libc::EINVAL);
        assert_eq!(
            vfs.open(&root(), ino, libc::O_RDONLY | libc::O_PATH).await.unwrap_err().errno(),
            libc::EINVAL
        );
        assert_eq!(vfs.open(&root(), ROOT_INO, libc::O_RDONLY).await.unwrap_err().errno(), libc::EISDIR);

        let ro = vfs.open(&root(), ino, libc::O_RDONLY).await.unwrap();
        let err = vfs.write(&root(), ro, 0, Bytes::from_static(b"x")).await.unwrap_err();
        assert_eq!(err.errno(), libc::EBADF);
        let wo = vfs.open(&root(), ino, libc::O_WRONLY).await.unwrap();
        assert_eq!(vfs.read(&root(), wo, 0, 1).await.unwrap_err().errno(), libc::EBADF);
        let err = vfs
            .write(&root(), wo, MAX_FILE_SIZE - 1, Bytes::from_static(b"xy"))
            .await
            .unwrap_err();
        assert_eq!(err.errno(), libc::EFBIG);
        vfs.write(&root(), wo, MAX_FILE_SIZE - 1, Bytes::from_static(b"x"))
            .await
            .unwrap();
        vfs.release(&root(), ro).await.unwrap();
        vfs.release(&root(), wo).await.unwrap();
        assert_eq!(vfs.getattr(&root(), ino).await.unwrap().length, MAX_FILE_SIZE);
        assert_eq!(vfs.release(&root(), wo).await.unwrap_err().errno(), libc::EBADF);

        // Permission bits are checked against the caller.
        let user = meta_api::Context::new(1000, 1000);
        vfs.setattr(&root(), ino, &SetAttr::new().mode(0o600)).await.unwrap();
        assert_eq!(
            vfs.open(&user, ino, libc::O_RDONLY).await.unwrap_err().errno(),
            libc::EACCES
        );
        assert_eq!(vfs.access(&user, ino, libc::R_OK).await.unwrap_err().errno(), libc::EACCES);
        vfs.access(&user, ino, libc::F_OK).await.unwrap();
    }

    async fn a_new_file_opens_even_if_its_mode_denies_the_access(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client().await;
        let user = meta_api::Context::new(1000, 1000);
        let (_, fh) = vfs
            .create(&user, ROOT_INO, b"ro", 0o444, libc::O_WRONLY)
            .await
            .unwrap();
        vfs.write(&user, fh, 0, Bytes::from_static(b"data")).await.unwrap();
        vfs.release(&user, fh).await.unwrap();
    }

    async fn sequential_reads_use_readahead_and_random_reads_use_ranges(engine: Engine) {
        use std::sync::atomic::Ordering;
        let mem = std::sync::Arc::new(chunkstore::MemStore::new());
        let counting = std::sync::Arc::new(FaultyStore::new(mem.clone()));
        let vol = Volume::with_store(engine, mem, counting.clone()).await;
        let vfs = vol.client().await;
        let (ino, fh) = create(&vfs, "seq").await;
        let blocks = 40;
        let n = blocks * BLOCK as usize;
        vfs.write(&root(), fh, 0, Bytes::from(pattern(5, 0, n)))
            .await
            .unwrap();
        vfs.release(&root(), fh).await.unwrap();
        vfs.close().await.unwrap();
        // Written blocks stay in the writer's cache: read from a client that has none.
        let vfs = vol.client().await;
        let fh = vfs.open(&root(), ino, libc::O_RDONLY).await.unwrap();
        let mut off = 0;
        while off < n as u64 {
            let got = vfs.read(&root(), fh, off, 4096).await.unwrap();
            assert_eq!(&got[..], &pattern(5, off, 4096)[..]);
            off += 4096;
        }
        vfs.cache_idle().await;
        // Whole blocks, each fetched once (by the reader or by readahead), not 16 ranges each.
        assert_eq!(counting.gets.load(Ordering::SeqCst), blocks);
        assert_eq!(vfs.cache_metrics().unwrap().fetches, blocks as u64);
        // Random reads from another handle fetch only what they need.
        let fh2 = vfs.open(&root(), ino, libc::O_RDONLY).await.unwrap();
        let before = counting.gets.load(Ordering::SeqCst);
        for off in [7 * BLOCK + 3, 100, 33 * BLOCK - 2, 12] {
            let got = vfs.read(&root(), fh2, off, 9).await.unwrap();
            assert_eq!(&got[..], &pattern(5, off, 9)[..]);
        }
        // Small blocks of a 64 KiB test volume all fit the block cache: served from it.
        assert_eq!(counting.gets.load(Ordering::SeqCst), before);
        vfs.release(&root(), fh).await.unwrap();
        vfs.release(&root(), fh2).await.unwrap();
        // A client with a cold cache makes one ranged read per random read.
        let cold = vol.client().await;
        let fh = cold.open(&root(), ino, libc::O_RDONLY).await.unwrap();
        let before = counting.gets.load(Ordering::SeqCst);
        for off in [7 * BLOCK + 3, 100, 33 * BLOCK - 2] {
            let got = cold.read(&root(), fh, off, 9).await.unwrap();
            assert_eq!(&got[..], &pattern(5, off, 9)[..]);
        }
        // The last read spans two blocks.
        assert_eq!(counting.gets.load(Ordering::SeqCst), before + 4);
        cold.release(&root(), fh).await.unwrap();
    }

    async fn copy_file_range_and_fallocate(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client().await;
        let (_, src) = create(&vfs, "src").await;
        let (dst_ino, dst) = create(&vfs, "dst").await;
        let n = 2 * BLOCK as usize + 10;
        vfs.write(&root(), src, 0, Bytes::from(pattern(6, 0, n))).await.unwrap();
        // The source's buffered data is written back before the copy.
        let copied = vfs
            .copy_file_range(&root(), src, 5, dst, 100, n as u64, 0)
            .await
            .unwrap();
        assert_eq!(copied, n as u64 - 5);
        assert_eq!(vfs.getattr(&root(), dst_ino).await.unwrap().length, 100 + n as u64 - 5);
        let got = read_all(&vfs, dst, 100, n as u64).await;
        assert_eq!(got, pattern(6, 5, n - 5));
        assert_eq!(
            vfs.copy_file_range(&root(), src, 0, dst, 0, 1, 1).await.unwrap_err().errno(),
            libc::EINVAL
        );
        assert_eq!(
            vfs.copy_file_range(&root(), src, 0, src, 10, 20, 0).await.unwrap_err().errno(),
            libc::EINVAL
        );
        // Punch a hole: the range reads as zeros, the length stays.
        let mode = libc::FALLOC_FL_PUNCH_HOLE as u32 | libc::FALLOC_FL_KEEP_SIZE as u32;
        vfs.fallocate(&root(), dst, mode, 200, 50).await.unwrap();
        let got = read_all(&vfs, dst, 200, 50).await;
        assert!(got.iter().all(|&b| b == 0));
        assert_eq!(vfs.getattr(&root(), dst_ino).await.unwrap().length, 100 + n as u64 - 5);
        // Plain allocation extends the file.
        vfs.fallocate(&root(), dst, 0, 0, 10 * BLOCK).await.unwrap();
        assert_eq!(vfs.getattr(&root(), dst_ino).await.unwrap().length, 10 * BLOCK);
        vfs.release(&root(), src).await.unwrap();
        vfs.release(&root(), dst).await.unwrap();
    }

    async fn a_tiny_buffer_budget_still_completes_large_writes(engine: Engine) {
        let mem = std::sync::Arc::new(chunkstore::MemStore::new());
        let mut slow = FaultyStore::new(mem.clone());
        slow.put_delay = std::time::Duration::from_millis(2);
        let vol = Volume::with_store(engine, mem, std::sync::Arc::new(slow)).await;
        // Two blocks of buffer: writers must wait for uploads all the time.
        let vfs = vol
            .client_with(test_options().buffer_size(1).upload_concurrency(2))
            .await;
        let (ino, fh) = create(&vfs, "budget").await;
        let n = 30 * BLOCK as usize + 123;
        // Many small writes, then one big write.
        let mut off = 0;
        while off < n / 2 {
            let k = 10_000.min(n / 2 - off);
            vfs.write(&root(), fh, off as u64, Bytes::from(pattern(7, off as u64, k)))
                .await
                .unwrap();
            off += k;
        }
        vfs.write(&root(), fh, off as u64, Bytes::from(pattern(7, off as u64, n - off)))
            .await
            .unwrap();
        vfs.release(&root(), fh).await.unwrap();
        let fh = vfs.open(&root(), ino, libc::O_RDONLY).await.unwrap();
        assert_eq!(read_all(&vfs, fh, 0, n as u64).await, pattern(7, 0, n));
        vfs.release(&root(), fh).await.unwrap();
        // Partial blocks under pressure may be written back in several slices, never lost.
        assert_blocks_exist(&vol, ino).await;
    }

    async fn idle_files_are_written_back_in_the_background(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol
            .client_with(test_options().flush_idle(std::time::Duration::from_millis(20)))
            .await;
        let (ino, fh) = create(&vfs, "idle").await;
        vfs.write(&root(), fh, 0, Bytes::from_static(b"later")).await.unwrap();
        // Another client sees the length once the flusher has committed the slice.
        let meta = vol.meta().await;
        let mut seen = 0;
        for _ in 0..200 {
            seen = meta.getattr(ino).await.unwrap().length;
            if seen == 5 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(seen, 5);
        vfs.release(&root(), fh).await.unwrap();
    }

    async fn slices_keep_write_order_within_a_chunk(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client().await;
        let (ino, fh) = create(&vfs, "order").await;
        let put = |off: u64, len: usize, b: u8| {
            let vfs = vfs.clone();
            async move {
                vfs.write(&root(), fh, off, Bytes::from(vec![b; len]))
                    .await
                    .unwrap();
            }
        };
        put(0, 100, b'a').await;
        put(50, 100, b'b').await;
        // Ends where the first slice ends, but the second (newer) one covers it: new slice.
        put(100, 20, b'c').await;
        // Appends to the second slice: nothing newer covers 150..200.
        put(150, 50, b'd').await;
        vfs.flush(&root(), fh).await.unwrap();
        assert_eq!(vol.meta().await.read_chunk(ino, 0).await.unwrap().len(), 3);
        let mut want = vec![b'a'; 50];
        want.extend(vec![b'b'; 50]);
        want.extend(vec![b'c'; 20]);
        want.extend(vec![b'b'; 30]);
        want.extend(vec![b'd'; 50]);
        assert_eq!(read_all(&vfs, fh, 0, 1000).await, want);
        vfs.release(&root(), fh).await.unwrap();
    }

    async fn many_scattered_writes_in_one_chunk(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client().await;
        let (ino, fh) = create(&vfs, "scatter").await;
        let mut want = vec![0u8; 10 * BLOCK as usize];
        // Overlapping, out-of-order writes: more open slices than a chunk keeps at once.
        for i in 0..40u64 {
            let off = (i * 7919 * 13) % (9 * BLOCK);
            let len = 1000 + (i * 4099) % (BLOCK + 500);
            let data = pattern(i as u8, off, len as usize);
            vfs.write(&root(), fh, off, Bytes::from(data.clone()))
                .await
                .unwrap();
            want[off as usize..(off + len) as usize].copy_from_slice(&data);
        }
        let len = vfs.getattr(&root(), ino).await.unwrap().length;
        want.truncate(len as usize);
        vfs.release(&root(), fh).await.unwrap();
        let other = vol.client().await;
        let fh = other.open(&root(), ino, libc::O_RDONLY).await.unwrap();
        assert!(read_all(&other, fh, 0, len).await == want);
        other.release(&root(), fh).await.unwrap();
        assert_blocks_exist(&vol, ino).await;
    }

    async fn a_cancelled_fsync_loses_nothing(engine: Engine) {
        let mem = std::sync::Arc::new(chunkstore::MemStore::new());
        let mut slow = FaultyStore::new(mem.clone());
        slow.put_delay = std::time::Duration::from_millis(30);
        let vol = Volume::with_store(engine, mem, std::sync::Arc::new(slow)).await;
        let vfs = vol.client().await;
        let (ino, fh) = create(&vfs, "cancel").await;
        let n = 3 * BLOCK as usize + 5;
        vfs.write(&root(), fh, 0, Bytes::from(pattern(14, 0, n)))
            .await
            .unwrap();
        let quick = std::time::Duration::from_millis(1);
        assert!(tokio::time::timeout(quick, vfs.fsync(&root(), fh, false))
            .await
            .is_err());
        vfs.fsync(&root(), fh, false).await.unwrap();
        assert_eq!(vol.meta().await.getattr(ino).await.unwrap().length, n as u64);
        let other = vol.client().await;
        let rfh = other.open(&root(), ino, libc::O_RDONLY).await.unwrap();
        assert_eq!(read_all(&other, rfh, 0, n as u64).await, pattern(14, 0, n));
        other.release(&root(), rfh).await.unwrap();
        vfs.release(&root(), fh).await.unwrap();
    }

    async fn utimens_after_a_buffered_write_sticks(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client().await;
        let (ino, fh) = create(&vfs, "times").await;
        vfs.write(&root(), fh, 0, Bytes::from_static(b"data"))
            .await
            .unwrap();
        // Buffered writes show in the times this client reports.
        let before = vfs.getattr(&root(), ino).await.unwrap();
        assert_eq!(before.length, 4);
        let when = meta_api::Timestamp::new(1_000_000, 5);
        let set = SetAttr::new().mtime(meta_api::SetTime::At(when));
        vfs.setattr(&root(), ino, &set).await.unwrap();
        vfs.release(&root(), fh).await.unwrap();
        let after = vol.meta().await.getattr(ino).await.unwrap();
        assert_eq!(after.mtime, when);
        assert_eq!(after.length, 4);
    }
}
