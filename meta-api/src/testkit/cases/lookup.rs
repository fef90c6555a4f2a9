//! Lookup and getattr.

use super::{assert_err, dir, file, look, owned_dir, user, Fixture, ALICE};
use crate::{FileType, MetaError, Result, ROOT_INO};

pub(super) async fn missing_name_is_not_found(fx: &Fixture<'_>) -> Result<()> {
    assert_err!(look(&*fx.a, ROOT_INO, "nope").await, MetaError::NotFound);
    Ok(())
}

pub(super) async fn missing_parent_is_not_found(fx: &Fixture<'_>) -> Result<()> {
    assert_err!(look(&*fx.a, 0x00F0_0000, "x").await, MetaError::NotFound);
    Ok(())
}

pub(super) async fn lookup_in_file_is_not_dir(fx: &Fixture<'_>) -> Result<()> {
    let f = file(&*fx.a, ROOT_INO, "f").await?;
    assert_err!(look(&*fx.a, f, "x").await, MetaError::NotDir);
    Ok(())
}

pub(super) async fn dot_and_dotdot(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let d = dir(e, ROOT_INO, "d").await?;
    let sub = dir(e, d, "sub").await?;
    let found = look(e, d, "sub").await?;
    assert_eq!(found.ino, sub);
    assert_eq!(found.attr.typ, FileType::Directory);
    assert_eq!(look(e, sub, ".").await?.ino, sub);
    assert_eq!(look(e, sub, "..").await?.ino, d);
    assert_eq!(look(e, d, "..").await?.ino, ROOT_INO);
    assert_eq!(look(e, ROOT_INO, "..").await?.ino, ROOT_INO);
    assert_eq!(look(e, ROOT_INO, ".").await?.ino, ROOT_INO);
    Ok(())
}

pub(super) async fn lookup_needs_search_permission(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let d = owned_dir(e, "private", ALICE, 0o600).await?;
    file(e, d, "f").await?;
    assert_err!(
        e.lookup(&user(ALICE), d, b"f").await,
        MetaError::PermissionDenied
    );
    assert!(look(e, d, "f").await.is_ok(), "root searches any directory");
    Ok(())
}

pub(super) async fn getattr_of_root(fx: &Fixture<'_>) -> Result<()> {
    let a = fx.a.getattr(ROOT_INO).await?;
    assert_eq!(a.typ, FileType::Directory);
    assert_eq!(a.mode, 0o777);
    assert_eq!((a.uid, a.gid), (0, 0));
    assert!(a.nlink >= 2, "root nlink {}", a.nlink);
    Ok(())
}

pub(super) async fn getattr_of_missing_is_not_found(fx: &Fixture<'_>) -> Result<()> {
    assert_err!(fx.a.getattr(0x00F0_0000).await, MetaError::NotFound);
    Ok(())
}
