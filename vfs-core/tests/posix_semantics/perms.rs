//! Setuid/setgid clearing on write, truncate, chown and chmod; sticky directories.

use bytes::Bytes;
use meta_api::{Context, Ino, RenameFlags, SetAttr, ROOT_INO};
use vfs_core::Vfs;

use crate::common::*;
use crate::support::*;

async fn set_mode(vfs: &Vfs, ino: Ino, mode: u16) {
    vfs.setattr(&root(), ino, &SetAttr::new().mode(mode))
        .await
        .unwrap();
}

async fn mode(vfs: &Vfs, ino: Ino) -> u16 {
    attr(vfs, ino).await.mode
}

/// Opens `ino` as `ctx` for writing and writes one byte.
async fn write_once(vfs: &Vfs, ctx: &Context, ino: Ino) -> u64 {
    let fh = vfs.open(ctx, ino, libc::O_WRONLY).await.unwrap();
    vfs.write(ctx, fh, 0, Bytes::from_static(b"x"))
        .await
        .unwrap();
    fh
}

engine_tests! {
    async fn writes_by_non_root_clear_setuid_and_group_exec_setgid(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client().await;
        let (ino, fh) = create(&vfs, "f").await;
        vfs.release(&root(), fh).await.unwrap();
        vfs.setattr(&root(), ino, &SetAttr::new().uid(1000).gid(1000)).await.unwrap();
        let owner = user(1000, 1000);

        // The owner writes: both bits go (group-executable), at once, before any flush.
        set_mode(&vfs, ino, 0o6775).await;
        let fh = write_once(&vfs, &owner, ino).await;
        assert_eq!(mode(&vfs, ino).await, 0o0775);
        vfs.write(&owner, fh, 1, Bytes::from_static(b"y")).await.unwrap();
        vfs.release(&owner, fh).await.unwrap();
        assert_eq!(mode(&vfs, ino).await, 0o0775);

        // Root keeps them.
        set_mode(&vfs, ino, 0o6775).await;
        let fh = write_once(&vfs, &root(), ino).await;
        vfs.release(&root(), fh).await.unwrap();
        assert_eq!(mode(&vfs, ino).await, 0o6775);

        // A group member writes a file whose setgid means mandatory locking (no group
        // exec): only setuid goes.
        set_mode(&vfs, ino, 0o6764).await;
        let member = user(1001, 1000);
        let fh = write_once(&vfs, &member, ino).await;
        assert_eq!(mode(&vfs, ino).await, 0o2764);
        vfs.release(&member, fh).await.unwrap();

        // Every new handle checks again.
        set_mode(&vfs, ino, 0o4766).await;
        let fh = write_once(&vfs, &member, ino).await;
        assert_eq!(mode(&vfs, ino).await, 0o0766);
        vfs.release(&member, fh).await.unwrap();

        // Nothing to clear: nothing changes.
        set_mode(&vfs, ino, 0o666).await;
        let b = attr(&vfs, ino).await;
        let fh = write_once(&vfs, &member, ino).await;
        assert_eq!(mode(&vfs, ino).await, 0o666);
        vfs.release(&member, fh).await.unwrap();
        assert_eq!(attr(&vfs, ino).await.uid, b.uid);
    }

    async fn truncate_by_non_root_clears_setuid(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client().await;
        let (ino, fh) = create(&vfs, "f").await;
        vfs.write(&root(), fh, 0, Bytes::from_static(b"data")).await.unwrap();
        vfs.release(&root(), fh).await.unwrap();
        vfs.setattr(&root(), ino, &SetAttr::new().uid(1000).gid(1000)).await.unwrap();
        let owner = user(1000, 1000);

        set_mode(&vfs, ino, 0o6775).await;
        vfs.setattr(&owner, ino, &SetAttr::new().size(2)).await.unwrap();
        assert_eq!(mode(&vfs, ino).await, 0o0775, "truncate(2)");

        set_mode(&vfs, ino, 0o6775).await;
        let fh = vfs.open(&owner, ino, libc::O_WRONLY).await.unwrap();
        vfs.ftruncate(&owner, fh, 1).await.unwrap();
        assert_eq!(mode(&vfs, ino).await, 0o0775, "ftruncate");
        vfs.release(&owner, fh).await.unwrap();

        set_mode(&vfs, ino, 0o6775).await;
        let fh = vfs.open(&owner, ino, libc::O_WRONLY | libc::O_TRUNC).await.unwrap();
        assert_eq!(mode(&vfs, ino).await, 0o0775, "O_TRUNC");
        vfs.release(&owner, fh).await.unwrap();

        set_mode(&vfs, ino, 0o6775).await;
        vfs.setattr(&root(), ino, &SetAttr::new().size(0)).await.unwrap();
        assert_eq!(mode(&vfs, ino).await, 0o6775, "truncate by root");
    }

    async fn chown_and_chmod_rules(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client().await;
        let (ino, fh) = create(&vfs, "f").await;
        vfs.release(&root(), fh).await.unwrap();
        vfs.setattr(&root(), ino, &SetAttr::new().uid(1000).gid(1000)).await.unwrap();
        let mut owner = user(1000, 1000);
        owner.gids = vec![2000];

        // chgrp by the owner to one of their groups clears setuid and group-exec setgid.
        set_mode(&vfs, ino, 0o6775).await;
        vfs.setattr(&owner, ino, &SetAttr::new().gid(2000)).await.unwrap();
        assert_eq!(mode(&vfs, ino).await, 0o0775);
        // Setgid without group exec stays.
        set_mode(&vfs, ino, 0o6764).await;
        vfs.setattr(&owner, ino, &SetAttr::new().gid(1000)).await.unwrap();
        assert_eq!(mode(&vfs, ino).await, 0o2764);
        // Root's chown clears them as well (Linux since 2.2.13).
        set_mode(&vfs, ino, 0o6755).await;
        vfs.setattr(&root(), ino, &SetAttr::new().uid(1000)).await.unwrap();
        assert_eq!(mode(&vfs, ino).await, 0o0755);
        // Others may not chown; the owner may not give the file away.
        assert_eq!(
            errno(vfs.setattr(&user(1001, 1000), ino, &SetAttr::new().gid(1000)).await),
            libc::EPERM
        );
        assert_eq!(errno(vfs.setattr(&owner, ino, &SetAttr::new().uid(1001)).await), libc::EPERM);
        assert_eq!(errno(vfs.setattr(&owner, ino, &SetAttr::new().gid(3000)).await), libc::EPERM);
        // A directory keeps its setgid bit.
        let d = vfs.mkdir(&root(), ROOT_INO, b"d", 0o2775).await.unwrap().ino;
        vfs.setattr(&root(), d, &SetAttr::new().gid(1000)).await.unwrap();
        assert_eq!(mode(&vfs, d).await, 0o2775);

        // chmod: setgid is dropped for an owner outside the file's group.
        vfs.setattr(&root(), ino, &SetAttr::new().gid(3000)).await.unwrap();
        vfs.setattr(&owner, ino, &SetAttr::new().mode(0o2755)).await.unwrap();
        assert_eq!(mode(&vfs, ino).await, 0o0755);
        vfs.setattr(&owner, ino, &SetAttr::new().mode(0o4755)).await.unwrap();
        assert_eq!(mode(&vfs, ino).await, 0o4755, "the owner may set setuid");
        assert_eq!(
            errno(vfs.setattr(&user(1001, 3000), ino, &SetAttr::new().mode(0o777)).await),
            libc::EPERM
        );
    }

    async fn sticky_directories_protect_other_users_entries(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = vol.client().await;
        let t = vfs.mkdir(&root(), ROOT_INO, b"t", 0o1777).await.unwrap().ino;
        assert_eq!(mode(&vfs, t).await, 0o1777);
        let (a, b) = (user(1000, 1000), user(1001, 1001));
        let (_, fh) = vfs.create(&a, t, b"a", 0o666, libc::O_RDWR).await.unwrap();
        vfs.release(&a, fh).await.unwrap();
        vfs.mkdir(&a, t, b"ad", 0o777).await.unwrap();
        let (_, fh) = vfs.create(&b, t, b"b", 0o666, libc::O_RDWR).await.unwrap();
        vfs.release(&b, fh).await.unwrap();

        assert_eq!(errno(vfs.unlink(&b, t, b"a").await), libc::EPERM);
        assert_eq!(errno(vfs.rmdir(&b, t, b"ad").await), libc::EPERM);
        assert_eq!(errno(vfs.rename(&b, t, b"a", t, b"x", 0).await), libc::EPERM);
        assert_eq!(errno(vfs.rename(&b, t, b"ad", t, b"y", 0).await), libc::EPERM);
        assert_eq!(errno(vfs.rename(&b, t, b"b", t, b"a", 0).await), libc::EPERM, "over another's file");
        assert_eq!(
            errno(vfs.rename(&b, t, b"b", t, b"a", RenameFlags::EXCHANGE).await),
            libc::EPERM
        );
        // Moving another's entry out of a sticky directory is refused too.
        let open = vfs.mkdir(&root(), ROOT_INO, b"open", 0o777).await.unwrap().ino;
        assert_eq!(errno(vfs.rename(&b, t, b"a", open, b"a", 0).await), libc::EPERM);
        // One's own entries are fine.
        vfs.rename(&b, t, b"b", t, b"c", 0).await.unwrap();
        vfs.unlink(&b, t, b"c").await.unwrap();
        vfs.lookup(&b, t, b"a").await.unwrap();
        vfs.rename(&a, t, b"a", t, b"a2", 0).await.unwrap();
        vfs.unlink(&a, t, b"a2").await.unwrap();
        // Root may remove anything.
        vfs.rmdir(&root(), t, b"ad").await.unwrap();

        // The directory's owner may remove others' entries.
        let owner = user(1002, 1002);
        let ct = vfs.mkdir(&owner, ROOT_INO, b"ct", 0o1777).await.unwrap().ino;
        let (_, fh) = vfs.create(&a, ct, b"af", 0o644, libc::O_RDWR).await.unwrap();
        vfs.release(&a, fh).await.unwrap();
        vfs.unlink(&owner, ct, b"af").await.unwrap();

        // Without the sticky bit, write permission on the directory is enough.
        let (_, fh) = vfs.create(&a, open, b"f", 0o644, libc::O_RDWR).await.unwrap();
        vfs.release(&a, fh).await.unwrap();
        vfs.unlink(&b, open, b"f").await.unwrap();
        // And without write permission it is EACCES, not EPERM.
        let closed = vfs.mkdir(&root(), ROOT_INO, b"closed", 0o755).await.unwrap().ino;
        vfs.mknod(&root(), closed, b"f", libc::S_IFREG | 0o666, 0).await.unwrap();
        assert_eq!(errno(vfs.unlink(&b, closed, b"f").await), libc::EACCES);
    }
}
