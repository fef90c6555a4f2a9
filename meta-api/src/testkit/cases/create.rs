//! mknod, mkdir, symlink/readlink and link.

use super::{age, assert_err, assert_touched, dir, file, look, root, user, Fixture, ALICE};
use crate::{FileType, MetaError, Result, ROOT_INO};

pub(super) async fn mknod_every_type(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let kinds = [
        ("reg", FileType::Regular, 0),
        ("fifo", FileType::Fifo, 0),
        ("sock", FileType::Socket, 0),
        ("chr", FileType::CharDevice, (1 << 8) | 3),
        ("blk", FileType::BlockDevice, (8 << 8) | 1),
        ("dir", FileType::Directory, 0),
    ];
    for (name, typ, rdev) in kinds {
        let ent = e
            .mknod(&root(), ROOT_INO, name.as_bytes(), typ, 0o640, rdev)
            .await?;
        let a = &ent.attr;
        assert_eq!(a.typ, typ, "{name}");
        assert_eq!(a.mode, 0o640, "{name}");
        assert_eq!((a.uid, a.gid), (0, 0), "{name}");
        assert_eq!(a.parent, ROOT_INO, "{name}");
        if typ == FileType::Directory {
            assert_eq!((a.nlink, a.length), (2, 4096), "{name}");
        } else {
            assert_eq!((a.nlink, a.length), (1, 0), "{name}");
        }
        if rdev != 0 {
            assert_eq!(a.rdev, rdev, "{name}: device number");
        }
        let found = look(e, ROOT_INO, name).await?;
        assert_eq!(found.ino, ent.ino, "{name}");
        assert_eq!(found.attr.typ, typ, "{name}");
        assert_eq!(
            e.getattr(ent.ino).await?,
            ent.attr,
            "{name}: getattr agrees"
        );
    }
    Ok(())
}

pub(super) async fn mknod_existing_is_exists(fx: &Fixture<'_>) -> Result<()> {
    let f = file(&*fx.a, ROOT_INO, "f").await?;
    assert_err!(file(&*fx.a, ROOT_INO, "f").await, MetaError::Exists);
    assert_err!(
        fx.a.mknod(&root(), ROOT_INO, b"f", FileType::Fifo, 0o600, 0)
            .await,
        MetaError::Exists
    );
    assert_eq!(look(&*fx.a, ROOT_INO, "f").await?.ino, f);
    Ok(())
}

pub(super) async fn mknod_in_file_is_not_dir(fx: &Fixture<'_>) -> Result<()> {
    let f = file(&*fx.a, ROOT_INO, "f").await?;
    assert_err!(file(&*fx.a, f, "x").await, MetaError::NotDir);
    Ok(())
}

pub(super) async fn mknod_in_missing_parent_is_not_found(fx: &Fixture<'_>) -> Result<()> {
    assert_err!(file(&*fx.a, 0x00F0_0000, "x").await, MetaError::NotFound);
    assert_err!(dir(&*fx.a, 0x00F0_0000, "x").await, MetaError::NotFound);
    Ok(())
}

pub(super) async fn create_updates_parent_times(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let d = dir(e, ROOT_INO, "d").await?;
    let before = age(e, d).await?;
    file(e, d, "f").await?;
    assert_touched(&before, &e.getattr(d).await?, "mknod");
    let before = age(e, d).await?;
    dir(e, d, "sub").await?;
    assert_touched(&before, &e.getattr(d).await?, "mkdir");
    let before = age(e, d).await?;
    e.symlink(&root(), d, b"ln", b"f").await?;
    assert_touched(&before, &e.getattr(d).await?, "symlink");
    Ok(())
}

pub(super) async fn mkdir_increments_parent_nlink(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let root_links = e.getattr(ROOT_INO).await?.nlink;
    let d = dir(e, ROOT_INO, "d").await?;
    assert_eq!(e.getattr(ROOT_INO).await?.nlink, root_links + 1);
    assert_eq!(e.getattr(d).await?.nlink, 2);
    dir(e, d, "x").await?;
    dir(e, d, "y").await?;
    file(e, d, "f").await?;
    assert_eq!(e.getattr(d).await?.nlink, 4, "files do not count");
    Ok(())
}

pub(super) async fn mkdir_existing_is_exists(fx: &Fixture<'_>) -> Result<()> {
    dir(&*fx.a, ROOT_INO, "d").await?;
    file(&*fx.a, ROOT_INO, "f").await?;
    assert_err!(dir(&*fx.a, ROOT_INO, "d").await, MetaError::Exists);
    assert_err!(dir(&*fx.a, ROOT_INO, "f").await, MetaError::Exists);
    Ok(())
}

pub(super) async fn mkdir_in_file_is_not_dir(fx: &Fixture<'_>) -> Result<()> {
    let f = file(&*fx.a, ROOT_INO, "f").await?;
    assert_err!(dir(&*fx.a, f, "x").await, MetaError::NotDir);
    Ok(())
}

pub(super) async fn symlink_round_trip(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let mut alice = user(ALICE);
    alice.umask = 0o022;
    let target = b"../some/where \xff";
    let ent = e.symlink(&alice, ROOT_INO, b"ln", target).await?;
    assert_eq!(ent.attr.typ, FileType::Symlink);
    assert_eq!(ent.attr.length, target.len() as u64);
    assert_eq!(ent.attr.mode, 0o777, "the umask does not apply to symlinks");
    assert_eq!((ent.attr.uid, ent.attr.gid), (ALICE, ALICE));
    assert_eq!(e.readlink(ent.ino).await?, target.to_vec());
    assert_eq!(look(e, ROOT_INO, "ln").await?.ino, ent.ino);
    Ok(())
}

pub(super) async fn symlink_target_limits(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let longest = vec![b'a'; 4096];
    let ent = e.symlink(&root(), ROOT_INO, b"max", &longest).await?;
    assert_eq!(e.readlink(ent.ino).await?, longest);
    assert_err!(
        e.symlink(&root(), ROOT_INO, b"over", &[b'a'; 4097]).await,
        MetaError::NameTooLong
    );
    assert_err!(
        e.symlink(&root(), ROOT_INO, b"empty", b"").await,
        MetaError::NotFound
    );
    assert_err!(
        e.symlink(&root(), ROOT_INO, b"nul", b"a\0b").await,
        MetaError::InvalidArgument(_)
    );
    assert_err!(look(e, ROOT_INO, "over").await, MetaError::NotFound);
    Ok(())
}

pub(super) async fn readlink_of_non_symlink_is_invalid(fx: &Fixture<'_>) -> Result<()> {
    let f = file(&*fx.a, ROOT_INO, "f").await?;
    let d = dir(&*fx.a, ROOT_INO, "d").await?;
    assert_err!(fx.a.readlink(f).await, MetaError::InvalidArgument(_));
    assert_err!(fx.a.readlink(d).await, MetaError::InvalidArgument(_));
    Ok(())
}

pub(super) async fn readlink_of_missing_is_not_found(fx: &Fixture<'_>) -> Result<()> {
    assert_err!(fx.a.readlink(0x00F0_0000).await, MetaError::NotFound);
    Ok(())
}

pub(super) async fn link_counts_names(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "f").await?;
    let d = dir(e, ROOT_INO, "d").await?;
    let ent = e.link(&root(), f, ROOT_INO, b"g").await?;
    assert_eq!(ent.ino, f);
    assert_eq!(ent.attr.nlink, 2);
    assert_eq!(look(e, ROOT_INO, "g").await?.ino, f);
    e.link(&root(), f, d, b"h").await?;
    let a = e.getattr(f).await?;
    assert_eq!(a.nlink, 3);
    assert_eq!(
        a.parent, 0,
        "a file with several links has no single parent"
    );
    assert_eq!(look(e, d, "h").await?.attr.nlink, 3);
    Ok(())
}

pub(super) async fn link_directory_is_not_permitted(fx: &Fixture<'_>) -> Result<()> {
    let d = dir(&*fx.a, ROOT_INO, "d").await?;
    assert_err!(
        fx.a.link(&root(), d, ROOT_INO, b"d2").await,
        MetaError::NotPermitted
    );
    assert_eq!(fx.a.getattr(d).await?.nlink, 2);
    Ok(())
}

pub(super) async fn link_existing_name_is_exists(fx: &Fixture<'_>) -> Result<()> {
    let f = file(&*fx.a, ROOT_INO, "f").await?;
    file(&*fx.a, ROOT_INO, "g").await?;
    assert_err!(
        fx.a.link(&root(), f, ROOT_INO, b"g").await,
        MetaError::Exists
    );
    assert_err!(
        fx.a.link(&root(), f, ROOT_INO, b"f").await,
        MetaError::Exists
    );
    assert_eq!(fx.a.getattr(f).await?.nlink, 1);
    Ok(())
}

pub(super) async fn link_missing_inode_is_not_found(fx: &Fixture<'_>) -> Result<()> {
    let f = file(&*fx.a, ROOT_INO, "f").await?;
    assert_err!(
        fx.a.link(&root(), 0x00F0_0000, ROOT_INO, b"g").await,
        MetaError::NotFound
    );
    assert_err!(fx.a.link(&root(), f, f, b"g").await, MetaError::NotDir);
    assert_err!(
        fx.a.link(&root(), f, 0x00F0_0000, b"g").await,
        MetaError::NotFound
    );
    Ok(())
}

pub(super) async fn link_updates_times(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let d = dir(e, ROOT_INO, "d").await?;
    let f = file(e, ROOT_INO, "f").await?;
    let before_dir = age(e, d).await?;
    let before_file = age(e, f).await?;
    e.link(&root(), f, d, b"g").await?;
    assert_touched(&before_dir, &e.getattr(d).await?, "link: new parent");
    let after_file = e.getattr(f).await?;
    assert!(after_file.ctime >= before_file.ctime, "link: inode ctime");
    assert_eq!(
        after_file.mtime, before_file.mtime,
        "link does not touch the data"
    );
    Ok(())
}
