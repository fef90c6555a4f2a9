//! unlink and rmdir.

use super::{
    age, assert_err, assert_touched, dir, file, list_names, look, owned_dir, root, user, Fixture,
    ALICE,
};
use crate::{MetaError, Result, ROOT_INO};

pub(super) async fn unlink_missing_is_not_found(fx: &Fixture<'_>) -> Result<()> {
    assert_err!(
        fx.a.unlink(&root(), ROOT_INO, b"nope").await,
        MetaError::NotFound
    );
    assert_err!(
        fx.a.unlink(&root(), 0x00F0_0000, b"x").await,
        MetaError::NotFound
    );
    Ok(())
}

pub(super) async fn unlink_directory_is_isdir(fx: &Fixture<'_>) -> Result<()> {
    let d = dir(&*fx.a, ROOT_INO, "d").await?;
    assert_err!(fx.a.unlink(&root(), ROOT_INO, b"d").await, MetaError::IsDir);
    assert_eq!(look(&*fx.a, ROOT_INO, "d").await?.ino, d);
    Ok(())
}

pub(super) async fn unlink_decrements_nlink(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "f").await?;
    e.link(&root(), f, ROOT_INO, b"g").await?;
    let before = e.getattr(f).await?;
    e.unlink(&root(), ROOT_INO, b"g").await?;
    let after = e.getattr(f).await?;
    assert_eq!(after.nlink, 1);
    assert!(after.ctime >= before.ctime);
    assert_eq!(look(e, ROOT_INO, "f").await?.ino, f);
    Ok(())
}

pub(super) async fn unlink_updates_parent_times(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let d = dir(e, ROOT_INO, "d").await?;
    file(e, d, "f").await?;
    let before = age(e, d).await?;
    e.unlink(&root(), d, b"f").await?;
    assert_touched(&before, &e.getattr(d).await?, "unlink");
    dir(e, d, "sub").await?;
    let before = age(e, d).await?;
    e.rmdir(&root(), d, b"sub").await?;
    assert_touched(&before, &e.getattr(d).await?, "rmdir");
    Ok(())
}

pub(super) async fn unlink_removes_the_name(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    file(e, ROOT_INO, "a").await?;
    file(e, ROOT_INO, "b").await?;
    e.unlink(&root(), ROOT_INO, b"a").await?;
    assert_err!(look(e, ROOT_INO, "a").await, MetaError::NotFound);
    assert_eq!(list_names(e, ROOT_INO, 10).await?, vec![b"b".to_vec()]);
    assert_err!(e.unlink(&root(), ROOT_INO, b"a").await, MetaError::NotFound);
    Ok(())
}

pub(super) async fn unlink_needs_write_permission(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let d = owned_dir(e, "d", ALICE, 0o555).await?;
    file(e, d, "f").await?;
    assert_err!(
        e.unlink(&user(ALICE), d, b"f").await,
        MetaError::PermissionDenied
    );
    dir(e, d, "sub").await?;
    assert_err!(
        e.rmdir(&user(ALICE), d, b"sub").await,
        MetaError::PermissionDenied
    );
    assert_eq!(list_names(e, d, 10).await?.len(), 2);
    Ok(())
}

pub(super) async fn rmdir_not_empty(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let d = dir(e, ROOT_INO, "d").await?;
    file(e, d, "f").await?;
    assert_err!(e.rmdir(&root(), ROOT_INO, b"d").await, MetaError::NotEmpty);
    let d2 = dir(e, ROOT_INO, "d2").await?;
    dir(e, d2, "sub").await?;
    assert_err!(e.rmdir(&root(), ROOT_INO, b"d2").await, MetaError::NotEmpty);
    assert_eq!(look(e, ROOT_INO, "d").await?.ino, d);
    Ok(())
}

pub(super) async fn rmdir_of_file_is_not_dir(fx: &Fixture<'_>) -> Result<()> {
    file(&*fx.a, ROOT_INO, "f").await?;
    assert_err!(fx.a.rmdir(&root(), ROOT_INO, b"f").await, MetaError::NotDir);
    Ok(())
}

pub(super) async fn rmdir_decrements_parent_nlink(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let d = dir(e, ROOT_INO, "d").await?;
    let sub = dir(e, d, "sub").await?;
    assert_eq!(e.getattr(d).await?.nlink, 3);
    e.rmdir(&root(), d, b"sub").await?;
    assert_eq!(e.getattr(d).await?.nlink, 2);
    assert_err!(look(e, d, "sub").await, MetaError::NotFound);
    assert_err!(e.getattr(sub).await, MetaError::NotFound);
    Ok(())
}

pub(super) async fn rmdir_missing_is_not_found(fx: &Fixture<'_>) -> Result<()> {
    assert_err!(
        fx.a.rmdir(&root(), ROOT_INO, b"nope").await,
        MetaError::NotFound
    );
    Ok(())
}
