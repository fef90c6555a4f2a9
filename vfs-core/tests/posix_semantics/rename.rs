//! Edge cases of rename(2) and renameat2(2).

use meta_api::{FileType, RenameFlags, ROOT_INO};

use crate::common::*;
use crate::support::*;

engine_tests! {
    async fn rename_edge_cases(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client().await;
        let c = root();
        let r = ROOT_INO;
        let (f, fh) = create(&vfs, "a").await;
        vfs.release(&c, fh).await.unwrap();
        vfs.link(&c, f, r, b"b").await.unwrap();

        // Two names of one inode: a no-op that succeeds, both names stay.
        vfs.rename(&c, r, b"a", r, b"b", 0).await.unwrap();
        assert_eq!(vfs.lookup(&c, r, b"a").await.unwrap().ino, f);
        assert_eq!(vfs.lookup(&c, r, b"b").await.unwrap().ino, f);
        assert_eq!(attr(&vfs, f).await.nlink, 2);
        // With RENAME_NOREPLACE the other name exists: EEXIST; RENAME_EXCHANGE swaps an
        // inode with itself, which changes nothing.
        assert_eq!(
            errno(vfs.rename(&c, r, b"a", r, b"b", RenameFlags::NOREPLACE).await),
            libc::EEXIST
        );
        vfs.rename(&c, r, b"a", r, b"b", RenameFlags::EXCHANGE).await.unwrap();
        assert_eq!(vfs.lookup(&c, r, b"a").await.unwrap().ino, f);
        assert_eq!(vfs.lookup(&c, r, b"b").await.unwrap().ino, f);
        // A name onto itself too.
        vfs.rename(&c, r, b"a", r, b"a", 0).await.unwrap();
        assert_eq!(vfs.lookup(&c, r, b"a").await.unwrap().ino, f);
        vfs.unlink(&c, r, b"b").await.unwrap();

        // Directory over an empty directory: replaced.
        let d = vfs.mkdir(&c, r, b"d", 0o755).await.unwrap().ino;
        let e = vfs.mkdir(&c, r, b"e", 0o755).await.unwrap().ino;
        vfs.mkdir(&c, d, b"sub", 0o755).await.unwrap();
        vfs.rename(&c, r, b"d", r, b"e", 0).await.unwrap();
        assert_eq!(vfs.lookup(&c, r, b"e").await.unwrap().ino, d);
        assert_eq!(errno(vfs.lookup(&c, r, b"d").await), libc::ENOENT);
        assert_eq!(errno(vfs.getattr(&c, e).await), libc::ENOENT, "the replaced directory is gone");
        assert_eq!(attr(&vfs, r).await.nlink, 3);
        // Directory over a non-empty directory.
        let g = vfs.mkdir(&c, r, b"g", 0o755).await.unwrap().ino;
        assert_eq!(errno(vfs.rename(&c, r, b"g", r, b"e", 0).await), libc::ENOTEMPTY);
        // Into its own subtree, or onto a name inside itself.
        let sub = vfs.lookup(&c, d, b"sub").await.unwrap().ino;
        assert_eq!(errno(vfs.rename(&c, r, b"e", sub, b"x", 0).await), libc::EINVAL);
        assert_eq!(errno(vfs.rename(&c, r, b"e", d, b"x", 0).await), libc::EINVAL);
        // File over directory, directory over file.
        assert_eq!(errno(vfs.rename(&c, r, b"a", r, b"g", 0).await), libc::EISDIR);
        assert_eq!(errno(vfs.rename(&c, r, b"g", r, b"a", 0).await), libc::ENOTDIR);
        // Missing source, missing or non-directory target parent.
        assert_eq!(errno(vfs.rename(&c, r, b"nope", r, b"x", 0).await), libc::ENOENT);
        assert_eq!(errno(vfs.rename(&c, r, b"a", f, b"x", 0).await), libc::ENOTDIR);
        assert_eq!(errno(vfs.rename(&c, r, b"a", 999_999, b"x", 0).await), libc::ENOENT);
        // Nothing moved by the failures.
        assert_eq!(vfs.lookup(&c, r, b"a").await.unwrap().ino, f);
        assert_eq!(vfs.lookup(&c, r, b"g").await.unwrap().ino, g);

        // RENAME_NOREPLACE.
        assert_eq!(
            errno(vfs.rename(&c, r, b"a", r, b"g", RenameFlags::NOREPLACE).await),
            libc::EEXIST
        );
        vfs.rename(&c, r, b"a", r, b"a2", RenameFlags::NOREPLACE).await.unwrap();
        // RENAME_EXCHANGE: a file and a directory in different parents.
        vfs.rename(&c, r, b"a2", d, b"sub", RenameFlags::EXCHANGE).await.unwrap();
        assert_eq!(vfs.lookup(&c, r, b"a2").await.unwrap().ino, sub);
        assert_eq!(vfs.lookup(&c, d, b"sub").await.unwrap().ino, f);
        assert_eq!(vfs.lookup(&c, sub, b"..").await.unwrap().ino, r);
        assert_eq!(vfs.lookup(&c, r, b"a2").await.unwrap().attr.typ, FileType::Directory);
        assert_eq!(
            errno(vfs.rename(&c, r, b"a2", r, b"missing", RenameFlags::EXCHANGE).await),
            libc::ENOENT
        );
        // Exchanging a directory with an entry inside it.
        vfs.mkdir(&c, sub, b"inner", 0o755).await.unwrap();
        assert_eq!(
            errno(vfs.rename(&c, r, b"a2", sub, b"inner", RenameFlags::EXCHANGE).await),
            libc::EINVAL
        );
        assert_eq!(
            errno(vfs.rename(&c, sub, b"inner", r, b"a2", RenameFlags::EXCHANGE).await),
            libc::EINVAL
        );
        // Bad flags.
        let both = RenameFlags::NOREPLACE | RenameFlags::EXCHANGE;
        assert_eq!(errno(vfs.rename(&c, r, b"g", r, b"h", both).await), libc::EINVAL);
        assert_eq!(
            errno(vfs.rename(&c, r, b"g", r, b"h", RenameFlags::WHITEOUT).await),
            libc::EINVAL
        );
        assert_eq!(errno(vfs.rename(&c, r, b"g", r, b"h", 1 << 10).await), libc::EINVAL);
        // `.` and `..` are not names to rename.
        assert_eq!(errno(vfs.rename(&c, d, b".", r, b"h", 0).await), libc::EINVAL);
        assert_eq!(errno(vfs.rename(&c, r, b"g", d, b"..", 0).await), libc::EINVAL);
        // A file over a file replaces it.
        let (x, fh) = create(&vfs, "x").await;
        vfs.release(&c, fh).await.unwrap();
        let (y, fh) = create(&vfs, "y").await;
        vfs.release(&c, fh).await.unwrap();
        vfs.rename(&c, r, b"x", r, b"y", 0).await.unwrap();
        assert_eq!(vfs.lookup(&c, r, b"y").await.unwrap().ino, x);
        assert_eq!(errno(vfs.getattr(&c, y).await), libc::ENOENT);
        // A symlink moves as a link, not as its target.
        let s = vfs.symlink(&c, r, b"s", b"g").await.unwrap().ino;
        vfs.rename(&c, r, b"s", d, b"s", 0).await.unwrap();
        assert_eq!(vfs.lookup(&c, d, b"s").await.unwrap().ino, s);
        assert_eq!(vfs.readlink(&c, s).await.unwrap(), b"g");
    }
}
