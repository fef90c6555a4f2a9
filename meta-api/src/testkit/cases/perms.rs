//! Permission rules: write permission to create, groups, setgid directories, umask,
//! sticky directories.

use super::{
    assert_err, dir, file, look, owned_dir, owned_file, root, user, Fixture, ALICE, BOB, CAROL,
};
use crate::{Context, FileType, MetaError, Result, SetAttr, ROOT_INO};

pub(super) async fn create_needs_write_permission(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let d = dir(e, ROOT_INO, "d").await?;
    let f = owned_file(e, ROOT_INO, "f", ALICE, 0o644).await?;
    let alice = user(ALICE);
    assert_err!(
        e.mknod(&alice, d, b"x", FileType::Regular, 0o644, 0).await,
        MetaError::PermissionDenied
    );
    assert_err!(
        e.mkdir(&alice, d, b"x", 0o755).await,
        MetaError::PermissionDenied
    );
    assert_err!(
        e.symlink(&alice, d, b"x", b"t").await,
        MetaError::PermissionDenied
    );
    assert_err!(
        e.link(&alice, f, d, b"x").await,
        MetaError::PermissionDenied
    );
    assert_err!(look(e, d, "x").await, MetaError::NotFound);
    Ok(())
}

pub(super) async fn supplementary_group_grants_access(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let d = dir(e, ROOT_INO, "shared").await?;
    e.setattr(&root(), d, &SetAttr::new().gid(2000).mode(0o770))
        .await?;
    let mut member = user(ALICE);
    member.gids = vec![1500, 2000];
    let ent = e
        .mknod(&member, d, b"mine", FileType::Regular, 0o644, 0)
        .await?;
    assert_eq!((ent.attr.uid, ent.attr.gid), (ALICE, ALICE));
    assert_err!(
        e.mknod(&user(BOB), d, b"theirs", FileType::Regular, 0o644, 0)
            .await,
        MetaError::PermissionDenied
    );
    assert_err!(
        e.lookup(&user(BOB), d, b"mine").await,
        MetaError::PermissionDenied
    );
    Ok(())
}

pub(super) async fn setgid_dir_is_inherited(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let d = dir(e, ROOT_INO, "project").await?;
    e.setattr(&root(), d, &SetAttr::new().gid(3000).mode(0o2777))
        .await?;
    let alice = user(ALICE);
    let f = e
        .mknod(&alice, d, b"f", FileType::Regular, 0o644, 0)
        .await?;
    assert_eq!((f.attr.uid, f.attr.gid, f.attr.mode), (ALICE, 3000, 0o644));
    let g = e
        .mknod(&alice, d, b"g", FileType::Regular, 0o2755, 0)
        .await?;
    assert_eq!(
        g.attr.mode, 0o755,
        "setgid dropped: the creator is not in group 3000"
    );
    let sub = e.mkdir(&alice, d, b"sub", 0o755).await?;
    assert_eq!(
        (sub.attr.gid, sub.attr.mode),
        (3000, 0o2755),
        "directories inherit setgid"
    );
    let deeper = e.mkdir(&alice, sub.ino, b"deeper", 0o700).await?;
    assert_eq!((deeper.attr.gid, deeper.attr.mode), (3000, 0o2700));
    Ok(())
}

pub(super) async fn umask_applies(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let mut alice = user(ALICE);
    alice.umask = 0o027;
    let d = e.mkdir(&alice, ROOT_INO, b"d", 0o777).await?;
    assert_eq!(d.attr.mode, 0o750);
    let f = e
        .mknod(&alice, ROOT_INO, b"f", FileType::Regular, 0o666, 0)
        .await?;
    assert_eq!(f.attr.mode, 0o640);
    let l = e.symlink(&alice, ROOT_INO, b"l", b"f").await?;
    assert_eq!(l.attr.mode, 0o777);
    assert_eq!(e.getattr(f.ino).await?.mode, 0o640);
    Ok(())
}

pub(super) async fn new_inode_belongs_to_caller(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let ctx = Context::new(ALICE, 1500);
    let f = e
        .mknod(&ctx, ROOT_INO, b"f", FileType::Regular, 0o600, 0)
        .await?;
    assert_eq!((f.attr.uid, f.attr.gid), (ALICE, 1500));
    let d = e.mkdir(&ctx, ROOT_INO, b"d", 0o700).await?;
    assert_eq!((d.attr.uid, d.attr.gid), (ALICE, 1500));
    Ok(())
}

pub(super) async fn sticky_dir_unlink_needs_ownership(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let s = owned_dir(e, "tmp", CAROL, 0o1777).await?;
    owned_file(e, s, "a1", ALICE, 0o666).await?;
    owned_file(e, s, "a2", ALICE, 0o666).await?;
    let sub = e.mkdir(&user(ALICE), s, b"adir", 0o777).await?;
    assert_err!(
        e.unlink(&user(BOB), s, b"a1").await,
        MetaError::NotPermitted
    );
    assert_err!(
        e.rmdir(&user(BOB), s, b"adir").await,
        MetaError::NotPermitted
    );
    e.unlink(&user(ALICE), s, b"a1").await?;
    e.unlink(&user(CAROL), s, b"a2").await?;
    e.rmdir(&user(ALICE), s, b"adir").await?;
    assert_err!(e.getattr(sub.ino).await, MetaError::NotFound);
    Ok(())
}

pub(super) async fn owner_triplet_wins_over_group(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = owned_file(e, ROOT_INO, "f", ALICE, 0o070).await?;
    assert_err!(
        e.open(&user(ALICE), f, libc::O_RDONLY).await,
        MetaError::PermissionDenied
    );
    let mut bob = user(BOB);
    bob.gids = vec![ALICE];
    e.open(&bob, f, libc::O_RDWR).await?;
    e.close(f).await?;
    assert!(file(e, ROOT_INO, "g").await.is_ok());
    Ok(())
}
