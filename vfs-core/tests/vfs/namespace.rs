//! Namespace operations through the VFS: directories, listings, links, xattrs, limits.

use bytes::Bytes;
use meta_api::{FileType, ROOT_INO};

use crate::support::*;

engine_tests! {
    async fn a_long_listing_reads_through_and_can_go_back_to_its_start(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client().await;
        let dir = vfs.mkdir(&root(), ROOT_INO, b"d", 0o755).await.unwrap();
        let n = 20_000;
        for i in 0..n {
            let name = format!("f{i:05}");
            vfs.mknod(&root(), dir.ino, name.as_bytes(), libc::S_IFREG | 0o644, 0)
                .await
                .unwrap();
        }
        let dh = vfs.opendir(&root(), dir.ino).await.unwrap();
        let (mut off, mut seen) = (0, 0usize);
        loop {
            let page = vfs.readdir(&root(), dh, off, 1000, false).await.unwrap();
            let Some(last) = page.last() else { break };
            for item in &page {
                let want = match seen {
                    0 => b".".to_vec(),
                    1 => b"..".to_vec(),
                    i => format!("f{:05}", i - 2).into_bytes(),
                };
                assert_eq!(item.name, want, "entry {seen}");
                assert_eq!(item.offset, seen as u64 + 1);
                seen += 1;
            }
            off = last.offset;
        }
        assert_eq!(seen, n + 2);
        // Within the last entries kept, going back repeats them; further back (the
        // window slid past it) the listing starts again and finds the same entries.
        let near = vfs.readdir(&root(), dh, (n - 100) as u64, 1, false).await.unwrap();
        assert_eq!(near[0].name, format!("f{:05}", n - 102).into_bytes());
        let start = vfs.readdir(&root(), dh, 2, 2, false).await.unwrap();
        assert_eq!(start[0].name, b"f00000");
        assert_eq!(start[1].offset, 4);
        vfs.releasedir(&root(), dh).await.unwrap();
    }

    async fn readdir_offsets_are_stable_and_include_dot_entries(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client().await;
        let dir = vfs.mkdir(&root(), ROOT_INO, b"d", 0o755).await.unwrap();
        for i in 0..30 {
            let name = format!("f{i:02}");
            vfs.mknod(&root(), dir.ino, name.as_bytes(), libc::S_IFREG | 0o644, 0)
                .await
                .unwrap();
        }
        let dh = vfs.opendir(&root(), dir.ino).await.unwrap();
        let first = vfs.readdir(&root(), dh, 0, 7, false).await.unwrap();
        assert_eq!(first.len(), 7);
        assert_eq!(first[0].name, b".");
        assert_eq!(first[0].ino, dir.ino);
        assert_eq!(first[1].name, b"..");
        assert_eq!(first[1].ino, ROOT_INO);
        // Changes in the middle of a listing do not shift it.
        vfs.unlink(&root(), dir.ino, b"f03").await.unwrap();
        vfs.mknod(&root(), dir.ino, b"a-new", libc::S_IFREG | 0o644, 0)
            .await
            .unwrap();
        let mut names: Vec<Vec<u8>> = first.iter().map(|i| i.name.clone()).collect();
        let mut off = first.last().unwrap().offset;
        loop {
            let page = vfs.readdir(&root(), dh, off, 5, true).await.unwrap();
            if page.is_empty() {
                break;
            }
            for item in &page {
                assert!(item.attr.is_some());
                names.push(item.name.clone());
            }
            off = page.last().unwrap().offset;
        }
        let want: Vec<Vec<u8>> = [b".".to_vec(), b"..".to_vec()]
            .into_iter()
            .chain((0..30).map(|i| format!("f{i:02}").into_bytes()))
            .collect();
        assert_eq!(names, want);
        // Going back to an earlier offset repeats the same entries.
        let again = vfs.readdir(&root(), dh, 3, 2, false).await.unwrap();
        assert_eq!(again[0].name, want[3]);
        // Offset 0 starts over and sees the changes.
        let fresh = vfs.readdir(&root(), dh, 0, 100, false).await.unwrap();
        assert_eq!(fresh.len(), 32);
        assert_eq!(fresh[2].name, b"a-new");
        vfs.releasedir(&root(), dh).await.unwrap();
        assert_eq!(vfs.releasedir(&root(), dh).await.unwrap_err().errno(), libc::EBADF);
        assert_eq!(vfs.opendir(&root(), fresh[3].ino).await.unwrap_err().errno(), libc::ENOTDIR);
    }

    async fn links_symlinks_rename_xattrs_and_statfs(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client().await;
        let (ino, fh) = create(&vfs, "a").await;
        vfs.write(&root(), fh, 0, Bytes::from_static(b"abc")).await.unwrap();
        // Uncommitted writes show in lookups and hard links of this client.
        assert_eq!(vfs.lookup(&root(), ROOT_INO, b"a").await.unwrap().attr.length, 3);
        let l = vfs.link(&root(), ino, ROOT_INO, b"b").await.unwrap();
        assert_eq!(l.ino, ino);
        assert_eq!(l.attr.nlink, 2);
        vfs.release(&root(), fh).await.unwrap();
        let s = vfs.symlink(&root(), ROOT_INO, b"s", b"a").await.unwrap();
        assert_eq!(s.attr.typ, FileType::Symlink);
        assert_eq!(vfs.readlink(&root(), s.ino).await.unwrap(), b"a");
        assert_eq!(vfs.open(&root(), s.ino, libc::O_RDONLY).await.unwrap_err().errno(), libc::ELOOP);
        vfs.rename(&root(), ROOT_INO, b"b", ROOT_INO, b"c", 0).await.unwrap();
        let err = vfs
            .rename(&root(), ROOT_INO, b"c", ROOT_INO, b"a", meta_api::RenameFlags::NOREPLACE)
            .await
            .unwrap_err();
        assert_eq!(err.errno(), libc::EEXIST);
        vfs.setxattr(&root(), ino, b"user.k", b"v", 0).await.unwrap();
        assert_eq!(vfs.getxattr(&root(), ino, b"user.k").await.unwrap(), b"v");
        assert_eq!(vfs.listxattr(&root(), ino).await.unwrap(), vec![b"user.k".to_vec()]);
        vfs.removexattr(&root(), ino, b"user.k").await.unwrap();
        assert_eq!(
            vfs.getxattr(&root(), ino, b"user.k").await.unwrap_err().errno(),
            libc::ENODATA
        );
        let fifo = vfs
            .mknod(&root(), ROOT_INO, b"p", libc::S_IFIFO | 0o600, 0)
            .await
            .unwrap();
        assert_eq!(fifo.attr.typ, FileType::Fifo);
        assert_eq!(
            vfs.open(&root(), fifo.ino, libc::O_RDONLY).await.unwrap_err().errno(),
            libc::ENOTSUP
        );
        let st = vfs.statfs(&root(), ROOT_INO).await.unwrap();
        assert_eq!(st.used_inodes, 3, "a (linked as c), s and p");
        vfs.rmdir(&root(), ROOT_INO, b"nope").await.unwrap_err();
        let d = vfs.mkdir(&root(), ROOT_INO, b"dir", 0o700).await.unwrap();
        assert!(d.attr.is_dir());
        vfs.rmdir(&root(), ROOT_INO, b"dir").await.unwrap();
    }

    async fn handle_limit_and_closed_vfs(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client_with(test_options().max_open_files(2)).await;
        let (ino, fh) = create(&vfs, "f").await;
        let dh = vfs.opendir(&root(), ROOT_INO).await.unwrap();
        assert_eq!(
            vfs.open(&root(), ino, libc::O_RDONLY).await.unwrap_err().errno(),
            libc::EMFILE
        );
        vfs.releasedir(&root(), dh).await.unwrap();
        let fh2 = vfs.open(&root(), ino, libc::O_RDONLY).await.unwrap();
        vfs.write(&root(), fh, 0, Bytes::from_static(b"unflushed")).await.unwrap();
        // Closing writes back buffered data and releases every handle.
        vfs.close().await.unwrap();
        assert!(matches!(
            vfs.read(&root(), fh2, 0, 1).await.unwrap_err(),
            vfs_core::VfsError::Closed
        ));
        assert_eq!(vol.meta().await.getattr(ino).await.unwrap().length, 9);
        let other = vol.client().await;
        let fh = other.open(&root(), ino, libc::O_RDONLY).await.unwrap();
        assert_eq!(&other.read(&root(), fh, 0, 100).await.unwrap()[..], b"unflushed");
        other.close().await.unwrap();
    }
}
