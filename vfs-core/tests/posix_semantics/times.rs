//! Timestamps of every operation (as Linux keeps them), the atime policy, and the link
//! counts of directories.

use bytes::Bytes;
use meta_api::{FallocMode, RenameFlags, SetAttr, SetTime, Timestamp, ROOT_INO};
use vfs_core::{AtimeMode, VfsOptions};

use crate::common::*;
use crate::support::*;

engine_tests! {
    async fn namespace_operations_stamp_parents_and_inodes(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client().await;
        let c = root();
        let d = vfs.mkdir(&c, ROOT_INO, b"d", 0o755).await.unwrap().ino;
        let d2 = vfs.mkdir(&c, ROOT_INO, b"d2", 0o755).await.unwrap().ino;

        // Creating anything stamps the parent's mtime and ctime; the new inode has one time.
        let mut before = attr(&vfs, d).await;
        let (f, fh) = vfs.create(&c, d, b"f", 0o644, libc::O_RDWR).await.unwrap();
        vfs.release(&c, fh).await.unwrap();
        assert_eq!(f.attr.atime, f.attr.mtime);
        assert_eq!(f.attr.mtime, f.attr.ctime);
        let f = f.ino;
        let mut after = attr(&vfs, d).await;
        assert_eq!(moved(&before, &after), MC, "create: parent");
        for (what, op) in [("mkdir", 0), ("symlink", 1), ("mknod", 2)] {
            before = after;
            let e = match op {
                0 => vfs.mkdir(&c, d, b"sub", 0o755).await.unwrap(),
                1 => vfs.symlink(&c, d, b"sl", b"f").await.unwrap(),
                _ => vfs.mknod(&c, d, b"fifo", libc::S_IFIFO | 0o644, 0).await.unwrap(),
            };
            assert_eq!(e.attr.atime, e.attr.ctime, "{what}: new inode");
            assert_eq!(e.attr.mtime, e.attr.ctime, "{what}: new inode");
            after = attr(&vfs, d).await;
            assert_eq!(moved(&before, &after), MC, "{what}: parent");
        }

        // link: the inode's ctime, the new parent's mtime and ctime; the old parent untouched.
        let (fb, db, d2b) = (attr(&vfs, f).await, attr(&vfs, d).await, attr(&vfs, d2).await);
        vfs.link(&c, f, d2, b"hard").await.unwrap();
        assert_eq!(moved(&fb, &attr(&vfs, f).await), C, "link: inode");
        assert_eq!(moved(&d2b, &attr(&vfs, d2).await), MC, "link: new parent");
        assert_eq!(moved(&db, &attr(&vfs, d).await), NONE, "link: other directory");

        // unlink of one of two links: the surviving inode's ctime and the parent.
        let (fb, d2b) = (attr(&vfs, f).await, attr(&vfs, d2).await);
        vfs.unlink(&c, d2, b"hard").await.unwrap();
        assert_eq!(moved(&fb, &attr(&vfs, f).await), C, "unlink: inode");
        assert_eq!(moved(&d2b, &attr(&vfs, d2).await), MC, "unlink: parent");

        // rename between directories: both parents, and the moved inode's ctime.
        let (fb, db, d2b) = (attr(&vfs, f).await, attr(&vfs, d).await, attr(&vfs, d2).await);
        vfs.rename(&c, d, b"f", d2, b"g", 0).await.unwrap();
        assert_eq!(moved(&fb, &attr(&vfs, f).await), C, "rename: moved inode");
        assert_eq!(moved(&db, &attr(&vfs, d).await), MC, "rename: source parent");
        assert_eq!(moved(&d2b, &attr(&vfs, d2).await), MC, "rename: target parent");
        // Within one directory.
        let (fb, d2b) = (attr(&vfs, f).await, attr(&vfs, d2).await);
        vfs.rename(&c, d2, b"g", d2, b"h", 0).await.unwrap();
        assert_eq!(moved(&fb, &attr(&vfs, f).await), C, "rename in place: inode");
        assert_eq!(moved(&d2b, &attr(&vfs, d2).await), MC, "rename in place: parent");
        // Over a file that has another link: the replaced inode's ctime.
        let (v, fh) = vfs.create(&c, d2, b"victim", 0o644, libc::O_RDWR).await.unwrap();
        vfs.release(&c, fh).await.unwrap();
        vfs.link(&c, v.ino, d, b"victim-link").await.unwrap();
        let vb = attr(&vfs, v.ino).await;
        vfs.rename(&c, d2, b"h", d2, b"victim", 0).await.unwrap();
        let va = attr(&vfs, v.ino).await;
        assert_eq!(moved(&vb, &va), C, "rename over: replaced inode");
        assert_eq!(va.nlink, 1);
        // A directory moved to another parent: its ctime.
        let sub = vfs.lookup(&c, d, b"sub").await.unwrap().ino;
        let sb = attr(&vfs, sub).await;
        vfs.rename(&c, d, b"sub", d2, b"sub", 0).await.unwrap();
        assert!(moved(&sb, &attr(&vfs, sub).await).2, "rename: moved directory");
        // RENAME_EXCHANGE: both inodes' ctime.
        let (sb, fb) = (attr(&vfs, sub).await, attr(&vfs, f).await);
        vfs.rename(&c, d2, b"sub", d2, b"victim", RenameFlags::EXCHANGE).await.unwrap();
        assert!(moved(&sb, &attr(&vfs, sub).await).2, "exchange: first inode");
        assert_eq!(moved(&fb, &attr(&vfs, f).await), C, "exchange: second inode");

        // rmdir: the parent's mtime and ctime.
        let d2b = attr(&vfs, d2).await;
        vfs.rmdir(&c, d2, b"victim").await.unwrap();
        assert_eq!(moved(&d2b, &attr(&vfs, d2).await), MC, "rmdir: parent");
        // A failed operation changes nothing.
        let d2b = attr(&vfs, d2).await;
        assert_eq!(errno(vfs.rmdir(&c, d2, b"nothing").await), libc::ENOENT);
        assert_eq!(errno(vfs.mkdir(&c, d2, b"sub", 0o755).await), libc::EEXIST);
        assert_eq!(moved(&d2b, &attr(&vfs, d2).await), NONE, "failed operations");
    }

    async fn attribute_and_data_operations_stamp_the_inode(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client().await;
        let c = root();
        let (ino, fh) = create(&vfs, "f").await;
        let p = ROOT_INO;

        // chmod, chown, utimens: ctime (utimens also sets what it was asked to).
        let b = attr(&vfs, ino).await;
        vfs.setattr(&c, ino, &SetAttr::new().mode(0o600)).await.unwrap();
        let a = attr(&vfs, ino).await;
        assert_eq!(moved(&b, &a), C, "chmod");
        vfs.setattr(&c, ino, &SetAttr::new().uid(7).gid(7)).await.unwrap();
        let b2 = attr(&vfs, ino).await;
        assert_eq!(moved(&a, &b2), C, "chown");
        let t = Timestamp::new(1_000_000, 5);
        vfs.setattr(&c, ino, &SetAttr::new().atime(SetTime::At(t)).mtime(SetTime::At(t)))
            .await
            .unwrap();
        let a = attr(&vfs, ino).await;
        assert_eq!((a.atime, a.mtime), (t, t), "utimens sets the times asked for");
        assert!(a.ctime > b2.ctime, "utimens stamps ctime");
        let b = a;
        vfs.setattr(&c, ino, &SetAttr::new().mtime(SetTime::Now)).await.unwrap();
        let a = attr(&vfs, ino).await;
        assert_eq!(moved(&b, &a), MC, "utimens(UTIME_NOW)");

        // write: mtime and ctime, both before and after the write-back; the parent stays.
        let (b, pb) = (attr(&vfs, ino).await, attr(&vfs, p).await);
        vfs.write(&c, fh, 0, Bytes::from_static(b"hello")).await.unwrap();
        let a = attr(&vfs, ino).await;
        assert_eq!(moved(&b, &a), MC, "write (buffered)");
        vfs.flush(&c, fh).await.unwrap();
        let a = attr(&vfs, ino).await;
        assert_eq!(moved(&b, &a), MC, "write (committed)");
        assert_eq!(moved(&pb, &attr(&vfs, p).await), NONE, "write: parent");

        // truncate (ftruncate and setattr size), even to the same length.
        for (what, same) in [("ftruncate", false), ("ftruncate same size", true)] {
            let b = attr(&vfs, ino).await;
            let len = if same { b.length } else { 2 };
            vfs.ftruncate(&c, fh, len).await.unwrap();
            assert_eq!(moved(&b, &attr(&vfs, ino).await), MC, "{what}");
        }
        let b = attr(&vfs, ino).await;
        vfs.setattr(&c, ino, &SetAttr::new().size(10)).await.unwrap();
        assert_eq!(moved(&b, &attr(&vfs, ino).await), MC, "truncate(2)");

        // fallocate and copy_file_range: the file written to.
        let b = attr(&vfs, ino).await;
        vfs.fallocate(&c, fh, 0, 0, 100).await.unwrap();
        assert_eq!(moved(&b, &attr(&vfs, ino).await), MC, "fallocate");
        let b = attr(&vfs, ino).await;
        vfs.fallocate(&c, fh, FallocMode::PUNCH_HOLE | FallocMode::KEEP_SIZE, 0, 10)
            .await
            .unwrap();
        assert_eq!(moved(&b, &attr(&vfs, ino).await), MC, "punch hole");
        let (dst, dfh) = create(&vfs, "dst").await;
        let (sb, db) = (attr(&vfs, ino).await, attr(&vfs, dst).await);
        assert_eq!(vfs.copy_file_range(&c, fh, 0, dfh, 0, 5, 0).await.unwrap(), 5);
        assert_eq!(moved(&db, &attr(&vfs, dst).await), MC, "copy_file_range: target");
        let (_, m, c2) = moved(&sb, &attr(&vfs, ino).await);
        assert!(!m && !c2, "copy_file_range: source");
        vfs.release(&c, dfh).await.unwrap();

        // xattrs: ctime only.
        let b = attr(&vfs, ino).await;
        vfs.setxattr(&c, ino, b"user.k", b"v", 0).await.unwrap();
        let a = attr(&vfs, ino).await;
        assert_eq!(moved(&b, &a), C, "setxattr");
        vfs.removexattr(&c, ino, b"user.k").await.unwrap();
        assert_eq!(moved(&a, &attr(&vfs, ino).await), C, "removexattr");
        let b = attr(&vfs, ino).await;
        vfs.getxattr(&c, ino, b"user.none").await.unwrap_err();
        vfs.listxattr(&c, ino).await.unwrap();
        assert_eq!(moved(&b, &attr(&vfs, ino).await), NONE, "reading xattrs");
        vfs.release(&c, fh).await.unwrap();

        // O_TRUNC: mtime and ctime, also of a file that is already empty (POSIX).
        for (what, len) in [("O_TRUNC", 10), ("O_TRUNC of an empty file", 0)] {
            vfs.setattr(&c, ino, &SetAttr::new().size(len)).await.unwrap();
            let b = attr(&vfs, ino).await;
            let fh = vfs.open(&c, ino, libc::O_WRONLY | libc::O_TRUNC).await.unwrap();
            let a = attr(&vfs, ino).await;
            assert_eq!(moved(&b, &a), MC, "{what}");
            assert_eq!(a.length, 0);
            vfs.release(&c, fh).await.unwrap();
        }
        // A plain open and close changes nothing.
        let b = attr(&vfs, ino).await;
        let fh = vfs.open(&c, ino, libc::O_RDWR).await.unwrap();
        vfs.release(&c, fh).await.unwrap();
        assert_eq!(moved(&b, &attr(&vfs, ino).await), NONE, "open and close");
    }

    async fn relatime_updates_atime_once_after_each_change(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client().await;
        assert_eq!(vfs.options().atime_mode, AtimeMode::RelAtime, "the default");
        let c = root();
        let (ino, fh) = create(&vfs, "f").await;
        vfs.write(&c, fh, 0, Bytes::from_static(b"data")).await.unwrap();
        vfs.release(&c, fh).await.unwrap();

        let fh = vfs.open(&c, ino, libc::O_RDONLY).await.unwrap();
        let b = attr(&vfs, ino).await;
        assert_eq!(&vfs.read(&c, fh, 0, 4).await.unwrap()[..], b"data");
        let a = attr(&vfs, ino).await;
        assert_eq!(moved(&b, &a), A, "first read after a write");
        assert!(a.atime > a.mtime && a.atime > a.ctime);
        vfs.read(&c, fh, 0, 4).await.unwrap();
        vfs.read(&c, fh, 100, 4).await.unwrap();
        assert_eq!(moved(&a, &attr(&vfs, ino).await), NONE, "later reads");
        vfs.release(&c, fh).await.unwrap();
        let fh = vfs.open(&c, ino, libc::O_RDONLY).await.unwrap();
        vfs.read(&c, fh, 0, 4).await.unwrap();
        assert_eq!(moved(&a, &attr(&vfs, ino).await), NONE, "a read through a new handle");

        // A write through another handle makes the next read count again, even through a
        // handle opened before it.
        let wh = vfs.open(&c, ino, libc::O_WRONLY).await.unwrap();
        vfs.write(&c, wh, 0, Bytes::from_static(b"DATA")).await.unwrap();
        vfs.release(&c, wh).await.unwrap();
        let b = attr(&vfs, ino).await;
        assert_eq!(&vfs.read(&c, fh, 0, 4).await.unwrap()[..], b"DATA");
        assert_eq!(moved(&b, &attr(&vfs, ino).await), A, "read after a write");
        // A status change counts too.
        vfs.setattr(&c, ino, &SetAttr::new().mode(0o640)).await.unwrap();
        let b = attr(&vfs, ino).await;
        vfs.release(&c, fh).await.unwrap();
        let fh = vfs.open(&c, ino, libc::O_RDONLY).await.unwrap();
        vfs.read(&c, fh, 0, 1).await.unwrap();
        assert_eq!(moved(&b, &attr(&vfs, ino).await), A, "read after chmod");
        // A read of nothing is no access.
        let b = attr(&vfs, ino).await;
        vfs.read(&c, fh, 0, 0).await.unwrap();
        assert_eq!(moved(&b, &attr(&vfs, ino).await), NONE, "empty read");
        vfs.release(&c, fh).await.unwrap();

        // O_NOATIME: never, and only the owner (or root) may ask for it.
        vfs.setattr(&c, ino, &SetAttr::new().mode(0o644)).await.unwrap();
        let fh = vfs.open(&c, ino, libc::O_RDONLY | libc::O_NOATIME).await.unwrap();
        let b = attr(&vfs, ino).await;
        vfs.read(&c, fh, 0, 4).await.unwrap();
        assert_eq!(moved(&b, &attr(&vfs, ino).await), NONE, "O_NOATIME");
        vfs.release(&c, fh).await.unwrap();
        let other = user(1000, 1000);
        assert_eq!(errno(vfs.open(&other, ino, libc::O_RDONLY | libc::O_NOATIME).await), libc::EPERM);

        // A directory listing is an access of the directory.
        let d = vfs.mkdir(&c, ROOT_INO, b"d", 0o755).await.unwrap().ino;
        vfs.mknod(&c, d, b"x", libc::S_IFREG | 0o644, 0).await.unwrap();
        let b = attr(&vfs, d).await;
        let dh = vfs.opendir(&c, d).await.unwrap();
        assert_eq!(moved(&b, &attr(&vfs, d).await), NONE, "opendir");
        assert_eq!(vfs.readdir(&c, dh, 0, 10, false).await.unwrap().len(), 3);
        let a = attr(&vfs, d).await;
        assert_eq!(moved(&b, &a), A, "readdir");
        vfs.readdir(&c, dh, 0, 10, true).await.unwrap();
        assert_eq!(moved(&a, &attr(&vfs, d).await), NONE, "readdir again");
        vfs.releasedir(&c, dh).await.unwrap();
    }

    async fn noatime_and_strictatime(engine: Engine) {
        let vol = Volume::new(engine).await;
        let c = root();
        let noatime = vol
            .client_with(test_options().atime_mode(AtimeMode::NoAtime))
            .await;
        let (ino, fh) = create(&noatime, "f").await;
        noatime.write(&c, fh, 0, Bytes::from_static(b"data")).await.unwrap();
        noatime.flush(&c, fh).await.unwrap();
        let b = attr(&noatime, ino).await;
        noatime.read(&c, fh, 0, 4).await.unwrap();
        assert_eq!(moved(&b, &attr(&noatime, ino).await), NONE, "noatime: read");
        let dh = noatime.opendir(&c, ROOT_INO).await.unwrap();
        let rb = attr(&noatime, ROOT_INO).await;
        noatime.readdir(&c, dh, 0, 10, false).await.unwrap();
        assert_eq!(moved(&rb, &attr(&noatime, ROOT_INO).await), NONE, "noatime: readdir");
        noatime.releasedir(&c, dh).await.unwrap();
        noatime.release(&c, fh).await.unwrap();

        let strict = vol
            .client_with(test_options().atime_mode(AtimeMode::StrictAtime))
            .await;
        let fh = strict.open(&c, ino, libc::O_RDONLY).await.unwrap();
        let mut b = attr(&strict, ino).await;
        for _ in 0..3 {
            strict.read(&c, fh, 0, 4).await.unwrap();
            let a = attr(&strict, ino).await;
            assert_eq!(moved(&b, &a), A, "strictatime: every read");
            b = a;
        }
        strict.release(&c, fh).await.unwrap();
        let opts = VfsOptions::default();
        assert_eq!(opts.atime_mode, AtimeMode::RelAtime);
    }

    async fn directory_link_counts(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client().await;
        let c = root();
        let nlink = |ino| {
            let vfs = vfs.clone();
            async move { attr(&vfs, ino).await.nlink }
        };
        assert_eq!(nlink(ROOT_INO).await, 2);
        let a = vfs.mkdir(&c, ROOT_INO, b"a", 0o755).await.unwrap();
        assert_eq!(a.attr.nlink, 2, "a new directory");
        let a = a.ino;
        let b = vfs.mkdir(&c, ROOT_INO, b"b", 0o755).await.unwrap().ino;
        create(&vfs, "file").await;
        vfs.mknod(&c, a, b"f", libc::S_IFREG | 0o644, 0).await.unwrap();
        vfs.symlink(&c, a, b"l", b"f").await.unwrap();
        assert_eq!(nlink(ROOT_INO).await, 4, "files do not count");
        let x = vfs.mkdir(&c, a, b"x", 0o755).await.unwrap().ino;
        vfs.mkdir(&c, a, b"y", 0o755).await.unwrap();
        assert_eq!(nlink(a).await, 4);
        // Moving a directory to another parent moves its `..` link.
        vfs.rename(&c, a, b"x", b, b"x", 0).await.unwrap();
        assert_eq!((nlink(a).await, nlink(b).await, nlink(x).await), (3, 3, 2));
        assert_eq!(vfs.lookup(&c, x, b"..").await.unwrap().ino, b, "`..` follows");
        vfs.rename(&c, b, b"x", b, b"z", 0).await.unwrap();
        assert_eq!(nlink(b).await, 3, "a rename within one directory");
        // A directory over an empty directory in another parent.
        vfs.rename(&c, a, b"y", b, b"z", 0).await.unwrap();
        assert_eq!((nlink(a).await, nlink(b).await), (2, 3));
        // Exchanging a directory with a file across parents.
        vfs.rename(&c, a, b"f", b, b"z", RenameFlags::EXCHANGE).await.unwrap();
        assert_eq!((nlink(a).await, nlink(b).await), (3, 2));
        vfs.rename(&c, a, b"f", b, b"z", RenameFlags::EXCHANGE).await.unwrap();
        assert_eq!((nlink(a).await, nlink(b).await), (2, 3));
        // rmdir gives the link back.
        vfs.rmdir(&c, b, b"z").await.unwrap();
        assert_eq!(nlink(b).await, 2);
        vfs.rmdir(&c, ROOT_INO, b"b").await.unwrap();
        assert_eq!(nlink(ROOT_INO).await, 3);
        // Hard links of a file count.
        let f = vfs.lookup(&c, a, b"f").await.unwrap().ino;
        vfs.link(&c, f, ROOT_INO, b"f2").await.unwrap();
        assert_eq!((nlink(f).await, nlink(ROOT_INO).await), (2, 3));
    }
}
