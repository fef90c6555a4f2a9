//! Name and symlink-target limits at every entry point; special files (FIFOs, sockets,
//! devices) and mknod's type rules.

use meta_api::{FileType, ROOT_INO};

use crate::common::*;
use crate::support::*;

engine_tests! {
    async fn name_limits_at_every_entry_point(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client().await;
        let c = root();
        let r = ROOT_INO;
        let ok = vec![b'n'; 255];
        let long = vec![b'n'; 256];
        let (f, fh) = create(&vfs, "f").await;
        vfs.release(&c, fh).await.unwrap();

        // 255 bytes work everywhere.
        let (e, fh) = vfs.create(&c, r, &ok, 0o644, libc::O_RDWR).await.unwrap();
        vfs.release(&c, fh).await.unwrap();
        assert_eq!(vfs.lookup(&c, r, &ok).await.unwrap().ino, e.ino);
        vfs.unlink(&c, r, &ok).await.unwrap();
        vfs.mkdir(&c, r, &ok, 0o755).await.unwrap();
        vfs.rmdir(&c, r, &ok).await.unwrap();
        vfs.mknod(&c, r, &ok, libc::S_IFIFO | 0o644, 0).await.unwrap();
        vfs.unlink(&c, r, &ok).await.unwrap();
        vfs.symlink(&c, r, &ok, b"f").await.unwrap();
        vfs.unlink(&c, r, &ok).await.unwrap();
        vfs.link(&c, f, r, &ok).await.unwrap();
        vfs.rename(&c, r, &ok, r, b"g", 0).await.unwrap();
        vfs.rename(&c, r, b"g", r, &ok, 0).await.unwrap();
        vfs.unlink(&c, r, &ok).await.unwrap();

        // 256 bytes: ENAMETOOLONG, wherever the name comes in.
        let too_long = libc::ENAMETOOLONG;
        assert_eq!(errno(vfs.lookup(&c, r, &long).await), too_long, "lookup");
        assert_eq!(errno(vfs.create(&c, r, &long, 0o644, libc::O_RDWR).await), too_long, "create");
        assert_eq!(errno(vfs.mkdir(&c, r, &long, 0o755).await), too_long, "mkdir");
        assert_eq!(errno(vfs.mknod(&c, r, &long, libc::S_IFIFO, 0).await), too_long, "mknod");
        assert_eq!(errno(vfs.symlink(&c, r, &long, b"f").await), too_long, "symlink");
        assert_eq!(errno(vfs.link(&c, f, r, &long).await), too_long, "link");
        assert_eq!(errno(vfs.rename(&c, r, b"f", r, &long, 0).await), too_long, "rename target");
        assert_eq!(errno(vfs.rename(&c, r, &long, r, b"g", 0).await), too_long, "rename source");
        assert_eq!(errno(vfs.unlink(&c, r, &long).await), too_long, "unlink");
        assert_eq!(errno(vfs.rmdir(&c, r, &long).await), too_long, "rmdir");

        // '/' and NUL are never part of a name.
        for bad in [&b"a/b"[..], b"a\0b", b"/", b""] {
            let what = String::from_utf8_lossy(bad).into_owned();
            assert_eq!(errno(vfs.lookup(&c, r, bad).await), libc::EINVAL, "lookup {what:?}");
            assert_eq!(errno(vfs.create(&c, r, bad, 0o644, libc::O_RDWR).await), libc::EINVAL, "create {what:?}");
            assert_eq!(errno(vfs.mkdir(&c, r, bad, 0o755).await), libc::EINVAL, "mkdir {what:?}");
            assert_eq!(errno(vfs.mknod(&c, r, bad, libc::S_IFIFO, 0).await), libc::EINVAL, "mknod {what:?}");
            assert_eq!(errno(vfs.symlink(&c, r, bad, b"f").await), libc::EINVAL, "symlink {what:?}");
            assert_eq!(errno(vfs.link(&c, f, r, bad).await), libc::EINVAL, "link {what:?}");
            assert_eq!(errno(vfs.rename(&c, r, b"f", r, bad, 0).await), libc::EINVAL, "rename {what:?}");
            assert_eq!(errno(vfs.unlink(&c, r, bad).await), libc::EINVAL, "unlink {what:?}");
            assert_eq!(errno(vfs.rmdir(&c, r, bad).await), libc::EINVAL, "rmdir {what:?}");
        }
        // Names are bytes, not UTF-8.
        let bytes = [0xff, 0xfe, b'x'];
        vfs.mkdir(&c, r, &bytes, 0o755).await.unwrap();
        assert!(vfs.lookup(&c, r, &bytes).await.is_ok());
        // `.` and `..` look up but cannot be created.
        assert_eq!(vfs.lookup(&c, r, b".").await.unwrap().ino, r);
        assert_eq!(vfs.lookup(&c, r, b"..").await.unwrap().ino, r);
        assert_eq!(errno(vfs.mkdir(&c, r, b".", 0o755).await), libc::EINVAL);

        // Symlink targets: 4096 bytes work, 4097 do not; NUL never; empty is ENOENT.
        let target = vec![b't'; 4096];
        let s = vfs.symlink(&c, r, b"s", &target).await.unwrap();
        assert_eq!(s.attr.length, 4096);
        assert_eq!(vfs.readlink(&c, s.ino).await.unwrap(), target);
        assert_eq!(errno(vfs.symlink(&c, r, b"s2", &[b't'; 4097]).await), too_long);
        assert_eq!(errno(vfs.symlink(&c, r, b"s2", b"a\0b").await), libc::EINVAL);
        assert_eq!(errno(vfs.symlink(&c, r, b"s2", b"").await), libc::ENOENT);

        // Extended attribute names: 255 bytes work; longer ones are ERANGE, as Linux's
        // xattr system calls answer; an empty one too.
        let xname = [b"user.".to_vec(), vec![b'x'; 250]].concat();
        vfs.setxattr(&c, f, &xname, b"v", 0).await.unwrap();
        assert_eq!(vfs.getxattr(&c, f, &xname).await.unwrap(), b"v");
        vfs.removexattr(&c, f, &xname).await.unwrap();
        let xlong = [xname.clone(), b"y".to_vec()].concat();
        assert_eq!(errno(vfs.setxattr(&c, f, &xlong, b"v", 0).await), libc::ERANGE);
        assert_eq!(errno(vfs.getxattr(&c, f, &xlong).await), libc::ERANGE);
        assert_eq!(errno(vfs.removexattr(&c, f, &xlong).await), libc::ERANGE);
        assert_eq!(errno(vfs.setxattr(&c, f, b"", b"v", 0).await), libc::ERANGE);
        assert_eq!(errno(vfs.getxattr(&c, f, b"").await), libc::ERANGE);
        // Values up to 64 KiB; more is E2BIG.
        vfs.setxattr(&c, f, b"user.big", &vec![1u8; 65536], 0).await.unwrap();
        assert_eq!(errno(vfs.setxattr(&c, f, b"user.big", &vec![1u8; 65537], 0).await), libc::E2BIG);
    }

    async fn special_files_show_their_type_and_device_but_hold_no_data(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client().await;
        let c = root();
        let r = ROOT_INO;
        let dev = (8 << 8) | 1;
        let cases = [
            (&b"fifo"[..], libc::S_IFIFO, FileType::Fifo, 0),
            (b"sock", libc::S_IFSOCK, FileType::Socket, 0),
            (b"chr", libc::S_IFCHR, FileType::CharDevice, 0x0103),
            (b"blk", libc::S_IFBLK, FileType::BlockDevice, dev),
        ];
        for (name, fmt, typ, rdev) in cases {
            let e = vfs.mknod(&c, r, name, fmt | 0o640, rdev).await.unwrap();
            let a = attr(&vfs, e.ino).await;
            assert_eq!((a.typ, a.rdev, a.mode), (typ, rdev, 0o640));
            assert_eq!(a.full_mode(), fmt | 0o640);
            assert_eq!(a.length, 0);
            // No data behind them: every open is EOPNOTSUPP, and truncate is EINVAL.
            for flags in [libc::O_RDONLY, libc::O_WRONLY, libc::O_RDWR] {
                assert_eq!(errno(vfs.open(&c, e.ino, flags).await), libc::EOPNOTSUPP);
            }
            let trunc = meta_api::SetAttr::new().size(0);
            assert_eq!(errno(vfs.setattr(&c, e.ino, &trunc).await), libc::EINVAL);
            // Their other attributes work as for any inode.
            vfs.setattr(&c, e.ino, &meta_api::SetAttr::new().mode(0o600)).await.unwrap();
            vfs.link(&c, e.ino, r, &[name, b"-link"].concat()).await.unwrap();
            assert_eq!(attr(&vfs, e.ino).await.nlink, 2);
        }
        // No handles were left behind by the refused opens.
        let dh = vfs.opendir(&c, r).await.unwrap();
        let listed = vfs.readdir(&c, dh, 0, 100, true).await.unwrap();
        assert_eq!(listed.len(), 2 + 8);
        assert_eq!(listed.iter().find(|i| i.name == b"blk").unwrap().attr.as_ref().unwrap().rdev, dev);
        vfs.releasedir(&c, dh).await.unwrap();

        // A mode without type bits is a regular file; directories and symlinks have their own
        // calls; unknown types are refused.
        let e = vfs.mknod(&c, r, b"plain", 0o644, 0).await.unwrap();
        assert_eq!(e.attr.typ, FileType::Regular);
        let fh = vfs.open(&c, e.ino, libc::O_RDWR).await.unwrap();
        vfs.release(&c, fh).await.unwrap();
        assert_eq!(errno(vfs.mknod(&c, r, b"dir", libc::S_IFDIR | 0o755, 0).await), libc::EINVAL);
        assert_eq!(errno(vfs.mknod(&c, r, b"lnk", libc::S_IFLNK | 0o777, 0).await), libc::EINVAL);
        assert_eq!(errno(vfs.mknod(&c, r, b"odd", 0o110000 | 0o644, 0).await), libc::EINVAL);
        assert_eq!(errno(vfs.lookup(&c, r, b"dir").await), libc::ENOENT);
        // Devices need privilege; FIFOs and sockets do not.
        let u = user(1000, 1000);
        assert_eq!(errno(vfs.mknod(&u, r, b"uchr", libc::S_IFCHR | 0o600, 1).await), libc::EPERM);
        assert_eq!(errno(vfs.mknod(&u, r, b"ublk", libc::S_IFBLK | 0o600, 1).await), libc::EPERM);
        vfs.mknod(&u, r, b"ufifo", libc::S_IFIFO | 0o600, 0).await.unwrap();
        vfs.mknod(&u, r, b"usock", libc::S_IFSOCK | 0o600, 0).await.unwrap();
        // The umask applies to them.
        let mut masked = user(1000, 1000);
        masked.umask = 0o077;
        let e = vfs.mknod(&masked, r, b"mfifo", libc::S_IFIFO | 0o666, 0).await.unwrap();
        assert_eq!(e.attr.mode, 0o600);
    }
}
