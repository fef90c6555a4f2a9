//! rename: replacing targets, NOREPLACE, EXCHANGE, subtrees, hard links, sticky directories.

use super::{
    age, assert_err, assert_touched, dir, file, is_deleted, look, owned_dir, owned_file, root,
    user, write, Fixture, ALICE, BOB, CAROL,
};
use crate::{Context, Ino, MetaEngine, MetaError, RenameFlags, Result, ROOT_INO};

const NONE: RenameFlags = RenameFlags(0);
const NOREPLACE: RenameFlags = RenameFlags(RenameFlags::NOREPLACE);
const EXCHANGE: RenameFlags = RenameFlags(RenameFlags::EXCHANGE);

/// Renames `p/n` to `np/nn` as `ctx`.
async fn mv_as(
    e: &dyn MetaEngine,
    ctx: &Context,
    (p, n): (Ino, &str),
    (np, nn): (Ino, &str),
    flags: RenameFlags,
) -> Result<()> {
    e.rename(ctx, p, n.as_bytes(), np, nn.as_bytes(), flags)
        .await
}

/// Renames `p/n` to `np/nn` as root.
async fn mv(
    e: &dyn MetaEngine,
    from: (Ino, &str),
    to: (Ino, &str),
    flags: RenameFlags,
) -> Result<()> {
    mv_as(e, &root(), from, to, flags).await
}

pub(super) async fn rename_moves_entry(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "f").await?;
    mv(e, (ROOT_INO, "f"), (ROOT_INO, "g"), NONE).await?;
    assert_eq!(look(e, ROOT_INO, "g").await?.ino, f);
    assert_err!(look(e, ROOT_INO, "f").await, MetaError::NotFound);
    let d = dir(e, ROOT_INO, "d").await?;
    mv(e, (ROOT_INO, "g"), (d, "h"), NONE).await?;
    assert_eq!(look(e, d, "h").await?.ino, f);
    assert_eq!(e.getattr(f).await?.parent, d);
    Ok(())
}

pub(super) async fn rename_over_file_replaces_it(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "f").await?;
    let t = file(e, ROOT_INO, "t").await?;
    e.link(&root(), t, ROOT_INO, b"t2").await?;
    mv(e, (ROOT_INO, "f"), (ROOT_INO, "t"), NONE).await?;
    assert_eq!(look(e, ROOT_INO, "t").await?.ino, f);
    assert_err!(look(e, ROOT_INO, "f").await, MetaError::NotFound);
    assert_eq!(
        e.getattr(t).await?.nlink,
        1,
        "the replaced inode lost one link"
    );
    let g = file(e, ROOT_INO, "g").await?;
    let v = file(e, ROOT_INO, "v").await?;
    write(e, v, 0, 0, 100).await?;
    mv(e, (ROOT_INO, "g"), (ROOT_INO, "v"), NONE).await?;
    assert_eq!(look(e, ROOT_INO, "v").await?.ino, g);
    assert!(
        is_deleted(e, v).await?,
        "a replaced file's last link is gone"
    );
    Ok(())
}

pub(super) async fn rename_dir_over_empty_dir(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let d1 = dir(e, ROOT_INO, "d1").await?;
    let d2 = dir(e, ROOT_INO, "d2").await?;
    file(e, d1, "inside").await?;
    let links = e.getattr(ROOT_INO).await?.nlink;
    mv(e, (ROOT_INO, "d1"), (ROOT_INO, "d2"), NONE).await?;
    assert_eq!(look(e, ROOT_INO, "d2").await?.ino, d1);
    assert_eq!(look(e, d1, "inside").await?.attr.parent, d1);
    assert_err!(look(e, ROOT_INO, "d1").await, MetaError::NotFound);
    assert_eq!(e.getattr(ROOT_INO).await?.nlink, links - 1);
    assert_err!(e.getattr(d2).await, MetaError::NotFound);
    Ok(())
}

pub(super) async fn rename_dir_over_non_empty_dir_is_not_empty(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    dir(e, ROOT_INO, "d1").await?;
    let d2 = dir(e, ROOT_INO, "d2").await?;
    file(e, d2, "x").await?;
    assert_err!(
        mv(e, (ROOT_INO, "d1"), (ROOT_INO, "d2"), NONE).await,
        MetaError::NotEmpty
    );
    assert_eq!(look(e, ROOT_INO, "d2").await?.ino, d2);
    Ok(())
}

pub(super) async fn rename_file_over_dir_is_isdir(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    file(e, ROOT_INO, "f").await?;
    dir(e, ROOT_INO, "d").await?;
    assert_err!(
        mv(e, (ROOT_INO, "f"), (ROOT_INO, "d"), NONE).await,
        MetaError::IsDir
    );
    Ok(())
}

pub(super) async fn rename_dir_over_file_is_not_dir(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    file(e, ROOT_INO, "f").await?;
    dir(e, ROOT_INO, "d").await?;
    assert_err!(
        mv(e, (ROOT_INO, "d"), (ROOT_INO, "f"), NONE).await,
        MetaError::NotDir
    );
    Ok(())
}

pub(super) async fn rename_noreplace(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let a = file(e, ROOT_INO, "a").await?;
    let b = file(e, ROOT_INO, "b").await?;
    assert_err!(
        mv(e, (ROOT_INO, "a"), (ROOT_INO, "b"), NOREPLACE).await,
        MetaError::Exists
    );
    assert_eq!(look(e, ROOT_INO, "b").await?.ino, b);
    mv(e, (ROOT_INO, "a"), (ROOT_INO, "c"), NOREPLACE).await?;
    assert_eq!(look(e, ROOT_INO, "c").await?.ino, a);
    Ok(())
}

pub(super) async fn rename_exchange_files(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let a = file(e, ROOT_INO, "a").await?;
    let b = file(e, ROOT_INO, "b").await?;
    mv(e, (ROOT_INO, "a"), (ROOT_INO, "b"), EXCHANGE).await?;
    assert_eq!(look(e, ROOT_INO, "a").await?.ino, b);
    assert_eq!(look(e, ROOT_INO, "b").await?.ino, a);
    assert_eq!(e.getattr(a).await?.nlink, 1);
    Ok(())
}

pub(super) async fn rename_exchange_file_and_dir_across_dirs(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let p1 = dir(e, ROOT_INO, "p1").await?;
    let p2 = dir(e, ROOT_INO, "p2").await?;
    let f = file(e, p1, "f").await?;
    let d = dir(e, p2, "d").await?;
    file(e, d, "child").await?;
    assert_eq!(
        (e.getattr(p1).await?.nlink, e.getattr(p2).await?.nlink),
        (2, 3)
    );
    mv(e, (p1, "f"), (p2, "d"), EXCHANGE).await?;
    assert_eq!(look(e, p1, "f").await?.ino, d);
    assert_eq!(look(e, p2, "d").await?.ino, f);
    assert_eq!(e.getattr(p1).await?.nlink, 3, "p1 gained a subdirectory");
    assert_eq!(e.getattr(p2).await?.nlink, 2, "p2 lost its subdirectory");
    assert_eq!(look(e, d, "..").await?.ino, p1);
    assert_eq!(e.getattr(d).await?.parent, p1);
    assert_eq!(e.getattr(f).await?.parent, p2);
    assert!(look(e, d, "child").await.is_ok());
    Ok(())
}

pub(super) async fn rename_exchange_missing_target_is_not_found(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let a = file(e, ROOT_INO, "a").await?;
    assert_err!(
        mv(e, (ROOT_INO, "a"), (ROOT_INO, "nope"), EXCHANGE).await,
        MetaError::NotFound
    );
    assert_eq!(look(e, ROOT_INO, "a").await?.ino, a);
    Ok(())
}

pub(super) async fn rename_into_own_subtree_is_invalid(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let a = dir(e, ROOT_INO, "a").await?;
    let b = dir(e, a, "b").await?;
    let c = dir(e, b, "c").await?;
    assert_err!(
        mv(e, (ROOT_INO, "a"), (c, "x"), NONE).await,
        MetaError::InvalidArgument(_)
    );
    assert_err!(
        mv(e, (ROOT_INO, "a"), (a, "x"), NONE).await,
        MetaError::InvalidArgument(_)
    );
    assert_err!(
        mv(e, (ROOT_INO, "a"), (b, "c"), EXCHANGE).await,
        MetaError::InvalidArgument(_)
    );
    assert_eq!(look(e, ROOT_INO, "a").await?.ino, a);
    assert_eq!(look(e, b, "c").await?.ino, c);
    Ok(())
}

pub(super) async fn rename_between_hard_links_is_noop(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "f").await?;
    e.link(&root(), f, ROOT_INO, b"g").await?;
    mv(e, (ROOT_INO, "f"), (ROOT_INO, "g"), NONE).await?;
    assert_eq!(look(e, ROOT_INO, "f").await?.ino, f);
    assert_eq!(look(e, ROOT_INO, "g").await?.ino, f);
    assert_eq!(e.getattr(f).await?.nlink, 2);
    Ok(())
}

pub(super) async fn rename_updates_parent_times(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let p1 = dir(e, ROOT_INO, "p1").await?;
    let p2 = dir(e, ROOT_INO, "p2").await?;
    let f = file(e, p1, "f").await?;
    let b1 = age(e, p1).await?;
    let b2 = age(e, p2).await?;
    let bf = e.getattr(f).await?;
    mv(e, (p1, "f"), (p2, "g"), NONE).await?;
    assert_touched(&b1, &e.getattr(p1).await?, "rename: old parent");
    assert_touched(&b2, &e.getattr(p2).await?, "rename: new parent");
    assert!(
        e.getattr(f).await?.ctime >= bf.ctime,
        "rename: ctime of the moved inode"
    );
    Ok(())
}

pub(super) async fn rename_dir_across_parents_fixes_nlink_and_dotdot(
    fx: &Fixture<'_>,
) -> Result<()> {
    let e = &*fx.a;
    let p1 = dir(e, ROOT_INO, "p1").await?;
    let p2 = dir(e, ROOT_INO, "p2").await?;
    let d = dir(e, p1, "d").await?;
    mv(e, (p1, "d"), (p2, "d"), NONE).await?;
    assert_eq!(e.getattr(p1).await?.nlink, 2);
    assert_eq!(e.getattr(p2).await?.nlink, 3);
    assert_eq!(look(e, d, "..").await?.ino, p2);
    assert_eq!(e.getattr(d).await?.parent, p2);
    Ok(())
}

pub(super) async fn rename_in_sticky_dir_needs_ownership(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let s = owned_dir(e, "tmp", CAROL, 0o1777).await?;
    owned_file(e, s, "f", ALICE, 0o666).await?;
    owned_file(e, s, "b", BOB, 0o666).await?;
    assert_err!(
        mv_as(e, &user(BOB), (s, "f"), (s, "g"), NONE).await,
        MetaError::NotPermitted
    );
    assert_err!(
        mv_as(e, &user(BOB), (s, "b"), (s, "f"), NONE).await,
        MetaError::NotPermitted
    );
    mv_as(e, &user(ALICE), (s, "f"), (s, "g"), NONE).await?;
    mv_as(e, &user(CAROL), (s, "g"), (s, "h"), NONE).await?;
    assert!(look(e, s, "h").await.is_ok());
    Ok(())
}

pub(super) async fn rename_missing_source_is_not_found(fx: &Fixture<'_>) -> Result<()> {
    assert_err!(
        mv(&*fx.a, (ROOT_INO, "nope"), (ROOT_INO, "x"), NONE).await,
        MetaError::NotFound
    );
    assert_err!(
        mv(&*fx.a, (0x00F0_0000, "a"), (ROOT_INO, "x"), NONE).await,
        MetaError::NotFound
    );
    Ok(())
}

pub(super) async fn rename_invalid_flags(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    file(e, ROOT_INO, "a").await?;
    file(e, ROOT_INO, "b").await?;
    let both = RenameFlags(RenameFlags::NOREPLACE | RenameFlags::EXCHANGE);
    for flags in [both, RenameFlags(RenameFlags::WHITEOUT), RenameFlags(0x80)] {
        assert_err!(
            mv(e, (ROOT_INO, "a"), (ROOT_INO, "b"), flags).await,
            MetaError::InvalidArgument(_)
        );
    }
    assert!(look(e, ROOT_INO, "a").await.is_ok());
    Ok(())
}

pub(super) async fn rename_needs_write_on_both_dirs(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let mine = owned_dir(e, "mine", ALICE, 0o755).await?;
    let theirs = dir(e, ROOT_INO, "theirs").await?;
    owned_file(e, mine, "f", ALICE, 0o644).await?;
    owned_file(e, theirs, "g", ALICE, 0o644).await?;
    assert_err!(
        mv_as(e, &user(ALICE), (mine, "f"), (theirs, "f"), NONE).await,
        MetaError::PermissionDenied
    );
    assert_err!(
        mv_as(e, &user(ALICE), (theirs, "g"), (mine, "g"), NONE).await,
        MetaError::PermissionDenied
    );
    mv_as(e, &user(ALICE), (mine, "f"), (mine, "f2"), NONE).await?;
    Ok(())
}

pub(super) async fn rename_over_open_file_keeps_it_readable(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    file(e, ROOT_INO, "f").await?;
    let t = file(e, ROOT_INO, "t").await?;
    let s = write(e, t, 0, 0, 100).await?;
    e.open(&root(), t, libc::O_RDONLY).await?;
    mv(e, (ROOT_INO, "f"), (ROOT_INO, "t"), NONE).await?;
    let a = e.getattr(t).await?;
    assert_eq!((a.nlink, a.length), (0, 100));
    assert_eq!(e.read_chunk(t, 0).await?, vec![s]);
    assert!(!is_deleted(e, t).await?);
    e.close(t).await?;
    assert!(is_deleted(e, t).await?);
    Ok(())
}
