//! setattr: chmod, chown, utimens and size, with POSIX's ownership rules.

use super::{
    assert_err, assert_now, hole, owned_dir, owned_file, piece, root, user, visible, write,
    Fixture, ALICE, BOB,
};
use crate::{Context, MetaError, Result, SetAttr, SetTime, Timestamp, ROOT_INO};

fn alice_in(groups: &[u32]) -> Context {
    let mut c = user(ALICE);
    c.gids = groups.to_vec();
    c
}

pub(super) async fn chmod_by_owner(fx: &Fixture<'_>) -> Result<()> {
    let f = owned_file(&*fx.a, ROOT_INO, "f", ALICE, 0o644).await?;
    let lo = Timestamp::now();
    let a =
        fx.a.setattr(&user(ALICE), f, &SetAttr::new().mode(0o600))
            .await?;
    let hi = Timestamp::now();
    assert_eq!(a.mode, 0o600);
    assert_now(a.ctime, lo, hi, "chmod sets ctime");
    assert_eq!(fx.a.getattr(f).await?.mode, 0o600);
    Ok(())
}

pub(super) async fn chmod_by_other_is_not_permitted(fx: &Fixture<'_>) -> Result<()> {
    let f = owned_file(&*fx.a, ROOT_INO, "f", ALICE, 0o666).await?;
    assert_err!(
        fx.a.setattr(&user(BOB), f, &SetAttr::new().mode(0o777))
            .await,
        MetaError::NotPermitted
    );
    assert_eq!(
        fx.a.getattr(f).await?.mode,
        0o666,
        "a refused chmod changes nothing"
    );
    Ok(())
}

pub(super) async fn chmod_drops_sgid_outside_group(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = owned_file(e, ROOT_INO, "f", ALICE, 0o644).await?;
    e.setattr(&root(), f, &SetAttr::new().gid(2000)).await?;
    let a = e
        .setattr(&user(ALICE), f, &SetAttr::new().mode(0o2755))
        .await?;
    assert_eq!(a.mode, 0o755, "setgid dropped: ALICE is not in group 2000");
    let a = e
        .setattr(&alice_in(&[2000]), f, &SetAttr::new().mode(0o2755))
        .await?;
    assert_eq!(a.mode, 0o2755, "setgid kept for a member of the group");
    Ok(())
}

pub(super) async fn chown_needs_root(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = owned_file(e, ROOT_INO, "f", ALICE, 0o644).await?;
    assert_err!(
        e.setattr(&user(ALICE), f, &SetAttr::new().uid(BOB)).await,
        MetaError::NotPermitted
    );
    assert_err!(
        e.setattr(&user(BOB), f, &SetAttr::new().uid(BOB)).await,
        MetaError::NotPermitted
    );
    let a = e.setattr(&root(), f, &SetAttr::new().uid(BOB)).await?;
    assert_eq!(a.uid, BOB);
    assert_eq!(e.getattr(f).await?.uid, BOB);
    Ok(())
}

pub(super) async fn chgrp_to_own_group_only(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = owned_file(e, ROOT_INO, "f", ALICE, 0o644).await?;
    let a = e
        .setattr(&alice_in(&[2000]), f, &SetAttr::new().gid(2000))
        .await?;
    assert_eq!(a.gid, 2000);
    assert_err!(
        e.setattr(&alice_in(&[2000]), f, &SetAttr::new().gid(3000))
            .await,
        MetaError::NotPermitted
    );
    let mut bob = user(BOB);
    bob.gids = vec![2000, 3000];
    assert_err!(
        e.setattr(&bob, f, &SetAttr::new().gid(3000)).await,
        MetaError::NotPermitted
    );
    assert_eq!(e.getattr(f).await?.gid, 2000);
    Ok(())
}

pub(super) async fn chown_clears_suid_and_sgid(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = owned_file(e, ROOT_INO, "f", ALICE, 0o6755).await?;
    let a = e.setattr(&root(), f, &SetAttr::new().uid(BOB)).await?;
    assert_eq!(a.mode, 0o755, "suid and group-executable sgid cleared");
    let g = owned_file(e, ROOT_INO, "g", ALICE, 0o6745).await?;
    let a = e.setattr(&root(), g, &SetAttr::new().gid(BOB)).await?;
    assert_eq!(a.mode, 0o2745, "sgid without group execute (locking) kept");
    let d = owned_dir(e, "d", ALICE, 0o2755).await?;
    let a = e.setattr(&root(), d, &SetAttr::new().uid(BOB)).await?;
    assert_eq!(a.mode, 0o2755, "directories keep setgid on chown");
    Ok(())
}

pub(super) async fn utimens_explicit_needs_owner(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = owned_file(e, ROOT_INO, "f", ALICE, 0o666).await?;
    let t1 = Timestamp::new(1_234_567, 890);
    let t2 = Timestamp::new(2_345_678, 901_000_000);
    let set = SetAttr::new().atime(SetTime::At(t1)).mtime(SetTime::At(t2));
    let a = e.setattr(&user(ALICE), f, &set).await?;
    assert_eq!((a.atime, a.mtime), (t1, t2));
    let a = e.getattr(f).await?;
    assert_eq!(
        (a.atime, a.mtime),
        (t1, t2),
        "explicit times are stored exactly"
    );
    assert_err!(
        e.setattr(&user(BOB), f, &set).await,
        MetaError::NotPermitted
    );
    Ok(())
}

pub(super) async fn utimens_now_needs_write(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = owned_file(e, ROOT_INO, "f", ALICE, 0o666).await?;
    let now = SetAttr::new().atime(SetTime::Now).mtime(SetTime::Now);
    let lo = Timestamp::now();
    let a = e.setattr(&user(BOB), f, &now).await?;
    let hi = Timestamp::now();
    assert_now(a.atime, lo, hi, "atime Now");
    assert_now(a.mtime, lo, hi, "mtime Now");
    e.setattr(&user(ALICE), f, &SetAttr::new().mode(0o644))
        .await?;
    assert_err!(
        e.setattr(&user(BOB), f, &now).await,
        MetaError::PermissionDenied
    );
    e.setattr(&user(ALICE), f, &now).await?;
    Ok(())
}

pub(super) async fn setattr_size_truncates(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = owned_file(e, ROOT_INO, "f", ALICE, 0o644).await?;
    let s = write(e, f, 0, 0, 1000).await?;
    let a = e.setattr(&user(ALICE), f, &SetAttr::new().size(10)).await?;
    assert_eq!(a.length, 10);
    let a = e
        .setattr(&user(ALICE), f, &SetAttr::new().size(1000))
        .await?;
    assert_eq!(a.length, 1000);
    assert_eq!(
        visible(e, f, 0, 1000).await?,
        vec![piece(s, 0, 10), hole(10, 990)]
    );
    Ok(())
}

pub(super) async fn setattr_size_needs_write(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = owned_file(e, ROOT_INO, "f", ALICE, 0o644).await?;
    assert_err!(
        e.setattr(&user(BOB), f, &SetAttr::new().size(100)).await,
        MetaError::PermissionDenied
    );
    assert_eq!(e.getattr(f).await?.length, 0);
    Ok(())
}

pub(super) async fn setattr_of_missing_is_not_found(fx: &Fixture<'_>) -> Result<()> {
    assert_err!(
        fx.a.setattr(&root(), 0x00F0_0000, &SetAttr::new().mode(0o600))
            .await,
        MetaError::NotFound
    );
    Ok(())
}

pub(super) async fn setattr_returns_what_getattr_sees(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = owned_file(e, ROOT_INO, "f", ALICE, 0o640).await?;
    let set = SetAttr::new()
        .mode(0o604)
        .atime(SetTime::Now)
        .mtime(SetTime::At(Timestamp::new(5_000_000, 5)));
    let a = e.setattr(&user(ALICE), f, &set).await?;
    assert_eq!(a, e.getattr(f).await?);
    assert_eq!(a.mode, 0o604);
    Ok(())
}

pub(super) async fn flags_need_root(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = owned_file(e, ROOT_INO, "f", ALICE, 0o644).await?;
    let mut set = SetAttr::new();
    set.flags = Some(0);
    assert_err!(
        e.setattr(&user(ALICE), f, &set).await,
        MetaError::NotPermitted
    );
    let a = e.setattr(&root(), f, &set).await?;
    assert_eq!(a.flags, 0);
    Ok(())
}
