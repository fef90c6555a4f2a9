//! Two clients of one volume see each other's committed changes.

use super::{file, look, root, visible, write, Fixture};
use crate::{RenameFlags, Result, SetAttr, ROOT_INO};

pub(super) async fn create_in_a_visible_in_b(fx: &Fixture<'_>) -> Result<()> {
    let b = fx.client().await?;
    let f = file(&*fx.a, ROOT_INO, "f").await?;
    let d = fx.a.mkdir(&root(), ROOT_INO, b"d", 0o755).await?.ino;
    assert_eq!(look(&*b, ROOT_INO, "f").await?.ino, f);
    assert_eq!(look(&*b, ROOT_INO, "d").await?.ino, d);
    assert_eq!(
        b.readdir(&root(), ROOT_INO, None, 10, false).await?.len(),
        2
    );
    Ok(())
}

pub(super) async fn write_in_a_readable_in_b(fx: &Fixture<'_>) -> Result<()> {
    let b = fx.client().await?;
    let f = file(&*fx.a, ROOT_INO, "f").await?;
    let s = write(&*fx.a, f, 0, 0, 500).await?;
    assert_eq!(b.getattr(f).await?.length, 500);
    assert_eq!(visible(&*b, f, 0, 500).await?, vec![s]);
    Ok(())
}

pub(super) async fn rename_in_b_visible_in_a(fx: &Fixture<'_>) -> Result<()> {
    let b = fx.client().await?;
    let f = file(&*fx.a, ROOT_INO, "f").await?;
    b.rename(
        &root(),
        ROOT_INO,
        b"f",
        ROOT_INO,
        b"g",
        RenameFlags::empty(),
    )
    .await?;
    assert_eq!(look(&*fx.a, ROOT_INO, "g").await?.ino, f);
    assert!(look(&*fx.a, ROOT_INO, "f").await.is_err());
    Ok(())
}

pub(super) async fn attrs_and_xattrs_shared(fx: &Fixture<'_>) -> Result<()> {
    let b = fx.client().await?;
    let f = file(&*fx.a, ROOT_INO, "f").await?;
    fx.a.setattr(&root(), f, &SetAttr::new().mode(0o600).uid(42))
        .await?;
    fx.a.setxattr(&root(), f, b"user.k", b"v", 0).await?;
    let a = b.getattr(f).await?;
    assert_eq!((a.mode, a.uid), (0o600, 42));
    assert_eq!(b.getxattr(f, b"user.k").await?, b"v".to_vec());
    Ok(())
}

pub(super) async fn open_sees_other_clients_length(fx: &Fixture<'_>) -> Result<()> {
    let b = fx.client().await?;
    let f = file(&*fx.a, ROOT_INO, "f").await?;
    b.open(&root(), f, libc::O_RDONLY).await?;
    b.close(f).await?;
    write(&*fx.a, f, 0, 0, 777).await?;
    assert_eq!(
        b.open(&root(), f, libc::O_RDONLY).await?.length,
        777,
        "close-to-open"
    );
    b.close(f).await?;
    Ok(())
}
