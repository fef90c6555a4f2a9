//! File sizes at the limit (EFBIG, no overflow near `u64::MAX`), open flags, and the
//! path-level rules of `O_CREAT`, `O_EXCL` and `O_NOFOLLOW` on symbolic links.

use std::io::{ErrorKind, SeekFrom};

use bytes::Bytes;
use meta_api::{FallocMode, SetAttr, MAX_FILE_SIZE, ROOT_INO};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use vfs_core::FileSystem;

use crate::common::*;
use crate::support::*;

async fn fs_on(vol: &Volume) -> FileSystem {
    FileSystem::new(vol.client().await)
}

fn io_errno(e: std::io::Error) -> i32 {
    e.raw_os_error()
        .unwrap_or_else(|| panic!("no errno in {e:?}"))
}

engine_tests! {
    async fn sizes_stop_at_the_largest_file_without_overflow(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client().await;
        let c = root();
        let (ino, fh) = create(&vfs, "f").await;
        let big = libc::EFBIG;
        let x = || Bytes::from_static(b"x");

        // Writes: the last byte is writable, nothing past it, whatever the offset.
        assert_eq!(errno(vfs.write(&c, fh, MAX_FILE_SIZE, x()).await), big);
        assert_eq!(errno(vfs.write(&c, fh, u64::MAX, x()).await), big);
        assert_eq!(errno(vfs.write(&c, fh, u64::MAX - 1, Bytes::from_static(b"xyz")).await), big);
        assert_eq!(vfs.write(&c, fh, MAX_FILE_SIZE - 1, x()).await.unwrap(), 1);
        vfs.flush(&c, fh).await.unwrap();
        assert_eq!(attr(&vfs, ino).await.length, MAX_FILE_SIZE);
        // Reads at and past the end, near u64::MAX: empty, no overflow.
        assert_eq!(&vfs.read(&c, fh, MAX_FILE_SIZE - 1, 100).await.unwrap()[..], b"x");
        assert_eq!(vfs.read(&c, fh, MAX_FILE_SIZE - 3, 2).await.unwrap().len(), 2);
        assert!(vfs.read(&c, fh, MAX_FILE_SIZE, 10).await.unwrap().is_empty());
        assert!(vfs.read(&c, fh, u64::MAX, usize::MAX).await.unwrap().is_empty());
        assert!(vfs.read(&c, fh, u64::MAX - 1, 10).await.unwrap().is_empty());
        // Appending to a file at the limit.
        let ah = vfs.open(&c, ino, libc::O_WRONLY | libc::O_APPEND).await.unwrap();
        assert_eq!(errno(vfs.write(&c, ah, 0, x()).await), big);
        vfs.release(&c, ah).await.unwrap();

        // Truncate: up to the limit, not past it, through every door.
        assert_eq!(errno(vfs.ftruncate(&c, fh, MAX_FILE_SIZE + 1).await), big);
        assert_eq!(errno(vfs.ftruncate(&c, fh, u64::MAX).await), big);
        assert_eq!(errno(vfs.setattr(&c, ino, &SetAttr::new().size(MAX_FILE_SIZE + 1)).await), big);
        assert_eq!(errno(vfs.setattr(&c, ino, &SetAttr::new().size(u64::MAX)).await), big);
        assert_eq!(attr(&vfs, ino).await.length, MAX_FILE_SIZE, "failed truncates change nothing");
        vfs.ftruncate(&c, fh, 10).await.unwrap();
        vfs.setattr(&c, ino, &SetAttr::new().size(MAX_FILE_SIZE)).await.unwrap();
        vfs.ftruncate(&c, fh, 10).await.unwrap();

        // fallocate: off + len past the limit or overflowing.
        assert_eq!(errno(vfs.fallocate(&c, fh, 0, MAX_FILE_SIZE, 1).await), big);
        assert_eq!(errno(vfs.fallocate(&c, fh, 0, MAX_FILE_SIZE - 1, 2).await), big);
        assert_eq!(errno(vfs.fallocate(&c, fh, 0, u64::MAX, 1).await), big);
        assert_eq!(errno(vfs.fallocate(&c, fh, 0, 1, u64::MAX).await), big);
        let keep = FallocMode::KEEP_SIZE;
        assert_eq!(errno(vfs.fallocate(&c, fh, keep, u64::MAX - 1, 2).await), big);
        vfs.fallocate(&c, fh, keep, MAX_FILE_SIZE - 1, 1).await.unwrap();
        assert_eq!(attr(&vfs, ino).await.length, 10);
        assert_eq!(errno(vfs.fallocate(&c, fh, 0, 0, 0).await), libc::EINVAL);

        // copy_file_range: the destination range must fit; a source offset past the end
        // copies nothing.
        let (_, dfh) = create(&vfs, "dst").await;
        assert_eq!(errno(vfs.copy_file_range(&c, fh, 0, dfh, u64::MAX - 1, 5, 0).await), big);
        assert_eq!(errno(vfs.copy_file_range(&c, fh, 0, dfh, MAX_FILE_SIZE, 1, 0).await), big);
        assert_eq!(vfs.copy_file_range(&c, fh, u64::MAX - 2, dfh, 0, 2, 0).await.unwrap(), 0);
        assert_eq!(vfs.copy_file_range(&c, fh, 0, dfh, 0, u64::MAX / 2, 0).await.unwrap(), 10);
        vfs.release(&c, dfh).await.unwrap();
        vfs.release(&c, fh).await.unwrap();

        // The path-level File: a cursor near u64::MAX writes nothing and does not wrap.
        let fs = FileSystem::new(vfs.clone());
        let mut f = fs.open_options().read(true).write(true).open("/f").await.unwrap();
        f.seek(SeekFrom::Start(u64::MAX - 1)).await.unwrap();
        assert_eq!(io_errno(f.write_all(b"xyz").await.unwrap_err()), big);
        f.seek(SeekFrom::Start(MAX_FILE_SIZE)).await.unwrap();
        assert_eq!(io_errno(f.write_all(b"x").await.unwrap_err()), big);
        f.seek(SeekFrom::Start(u64::MAX)).await.unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(f.read(&mut buf).await.unwrap(), 0);
        assert_eq!(f.read_at(&mut buf, u64::MAX - 1).await.unwrap(), 0);
        assert_eq!(io_errno(f.write_at(b"ab", u64::MAX - 1).await.unwrap_err()), big);
        drop(f);
    }

    async fn open_flags_and_handle_modes(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client().await;
        let c = root();
        let (ino, fh) = create(&vfs, "f").await;
        vfs.write(&c, fh, 0, Bytes::from_static(b"data")).await.unwrap();
        vfs.release(&c, fh).await.unwrap();
        let d = vfs.mkdir(&c, ROOT_INO, b"d", 0o755).await.unwrap().ino;

        // Invalid flags.
        for flags in [libc::O_ACCMODE, libc::O_PATH, libc::O_RDONLY | (1 << 30), libc::O_TMPFILE | libc::O_RDWR] {
            assert_eq!(errno(vfs.open(&c, ino, flags).await), libc::EINVAL, "flags {flags:#o}");
            assert_eq!(
                errno(vfs.create(&c, ROOT_INO, b"new", 0o644, flags | libc::O_CREAT).await),
                libc::EINVAL,
                "create flags {flags:#o}"
            );
        }
        assert_eq!(
            errno(vfs.create(&c, ROOT_INO, b"new", 0o644, libc::O_RDWR | libc::O_CREAT | libc::O_DIRECTORY).await),
            libc::EINVAL,
            "O_CREAT | O_DIRECTORY"
        );
        assert_eq!(errno(vfs.lookup(&c, ROOT_INO, b"new").await), libc::ENOENT, "nothing created");

        // The handle's access mode.
        let ro = vfs.open(&c, ino, libc::O_RDONLY).await.unwrap();
        let wo = vfs.open(&c, ino, libc::O_WRONLY).await.unwrap();
        assert_eq!(errno(vfs.write(&c, ro, 0, Bytes::from_static(b"x")).await), libc::EBADF);
        assert_eq!(errno(vfs.read(&c, wo, 0, 1).await), libc::EBADF);
        assert_eq!(errno(vfs.ftruncate(&c, ro, 0).await), libc::EBADF);
        assert_eq!(errno(vfs.fallocate(&c, ro, 0, 0, 1).await), libc::EBADF);
        assert_eq!(errno(vfs.copy_file_range(&c, wo, 0, wo, 10, 1, 0).await), libc::EBADF);
        assert_eq!(errno(vfs.copy_file_range(&c, ro, 0, ro, 10, 1, 0).await), libc::EBADF);
        assert_eq!(&vfs.read(&c, ro, 0, 10).await.unwrap()[..], b"data");
        vfs.release(&c, ro).await.unwrap();
        vfs.release(&c, wo).await.unwrap();
        assert_eq!(errno(vfs.read(&c, ro, 0, 1).await), libc::EBADF, "a released handle");
        assert_eq!(errno(vfs.read(&c, 0, 0, 1).await), libc::EBADF, "handle 0");

        // Permissions: O_TRUNC needs write permission even with O_RDONLY, and truncates
        // nothing when refused.
        vfs.setattr(&c, ino, &SetAttr::new().mode(0o644)).await.unwrap();
        let u = user(1000, 1000);
        assert_eq!(errno(vfs.open(&u, ino, libc::O_RDONLY | libc::O_TRUNC).await), libc::EACCES);
        assert_eq!(errno(vfs.open(&u, ino, libc::O_WRONLY).await), libc::EACCES);
        assert_eq!(errno(vfs.open(&u, ino, libc::O_RDWR).await), libc::EACCES);
        assert_eq!(attr(&vfs, ino).await.length, 4);
        let fh = vfs.open(&u, ino, libc::O_RDONLY).await.unwrap();
        vfs.release(&u, fh).await.unwrap();
        // O_RDONLY | O_TRUNC with write permission truncates, as Linux does.
        let fh = vfs.open(&c, ino, libc::O_RDONLY | libc::O_TRUNC).await.unwrap();
        assert_eq!(attr(&vfs, ino).await.length, 0);
        vfs.release(&c, fh).await.unwrap();

        // Types: O_DIRECTORY on a file, directories for writing or at all (opendir is the
        // call for them).
        assert_eq!(errno(vfs.open(&c, ino, libc::O_RDONLY | libc::O_DIRECTORY).await), libc::ENOTDIR);
        for flags in [libc::O_WRONLY, libc::O_RDWR, libc::O_RDONLY | libc::O_TRUNC] {
            assert_eq!(errno(vfs.open(&c, d, flags).await), libc::EISDIR, "directory {flags:#o}");
        }
        assert_eq!(errno(vfs.open(&c, d, libc::O_RDONLY).await), libc::EISDIR);
        assert_eq!(errno(vfs.opendir(&c, ino).await), libc::ENOTDIR);
        // create() of an existing directory without O_EXCL: EISDIR; with: EEXIST.
        assert_eq!(errno(vfs.create(&c, ROOT_INO, b"d", 0o644, libc::O_RDWR | libc::O_CREAT).await), libc::EISDIR);
        assert_eq!(
            errno(vfs.create(&c, ROOT_INO, b"d", 0o644, libc::O_RDONLY | libc::O_CREAT | libc::O_EXCL).await),
            libc::EEXIST
        );
        // Missing inodes.
        assert_eq!(errno(vfs.open(&c, 999_999, libc::O_RDONLY).await), libc::ENOENT);
    }

    async fn create_through_symlinks_like_linux(engine: Engine) {
        let vol = Volume::new(engine).await;
        let fs = fs_on(&vol).await;
        fs.create_dir("/dir").await.unwrap();
        fs.write("/dir/file", "content").await.unwrap();
        fs.symlink("/dir/target", "/dangling").await.unwrap();
        fs.symlink("dir/file", "/live").await.unwrap();
        fs.symlink("/nodir/x", "/dangling-deep").await.unwrap();
        fs.symlink("/dir/newdir/", "/dangling-slash").await.unwrap();
        fs.symlink("/dir", "/dirlink").await.unwrap();

        // O_CREAT | O_EXCL on any symlink, even a dangling one: EEXIST, nothing created.
        for link in ["/dangling", "/live", "/dirlink"] {
            let e = fs.open_options().write(true).create_new(true).open(link).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{link}");
        }
        assert!(!fs.exists("/dir/target").await);

        // O_CREAT without O_EXCL follows a dangling link and creates its target.
        let mut f = fs.open_options().write(true).create(true).open("/dangling").await.unwrap();
        f.write_all(b"via link").await.unwrap();
        f.shutdown().await.unwrap();
        assert_eq!(fs.read("/dir/target").await.unwrap(), b"via link");
        assert!(fs.symlink_metadata("/dangling").await.unwrap().file_type().is_symlink());
        // ... and opens the target of a live one.
        let f = fs.open_options().write(true).create(true).open("/live").await.unwrap();
        assert_eq!(f.metadata().await.unwrap().len(), 7);
        drop(f);
        // A dangling link into a missing directory: ENOENT; to a name ending in '/': EISDIR.
        let e = fs.open_options().write(true).create(true).open("/dangling-deep").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let e = fs.open_options().write(true).create(true).open("/dangling-slash").await.unwrap_err();
        assert_eq!(io_errno(e), libc::EISDIR);
        // O_CREAT on a link to a directory: EISDIR.
        let e = fs.open_options().write(true).create(true).open("/dirlink").await.unwrap_err();
        assert_eq!(io_errno(e), libc::EISDIR);

        // O_NOFOLLOW: a symlink as the last component is ELOOP, with or without O_CREAT;
        // links earlier in the path are still followed.
        for link in ["/live", "/dangling"] {
            let e = fs
                .open_options()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(link)
                .await
                .unwrap_err();
            assert_eq!(io_errno(e), libc::ELOOP, "{link}");
            let e = fs
                .open_options()
                .write(true)
                .create(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(link)
                .await
                .unwrap_err();
            assert_eq!(io_errno(e), libc::ELOOP, "{link} with O_CREAT");
        }
        let f = fs
            .open_options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open("/dirlink/file")
            .await
            .unwrap();
        assert_eq!(f.metadata().await.unwrap().len(), 7);
        drop(f);
        let f = fs
            .open_options()
            .write(true)
            .create(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open("/dir/new")
            .await
            .unwrap();
        drop(f);
        assert!(fs.exists("/dir/new").await);
        fs.close().await.unwrap();
    }
}
