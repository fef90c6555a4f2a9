//! Extended attributes.

use super::{assert_err, dir, file, owned_file, root, user, Fixture, ALICE, BOB};
use crate::{MetaError, Result, XattrFlags, ROOT_INO};

const CREATE: u32 = XattrFlags::CREATE;
const REPLACE: u32 = XattrFlags::REPLACE;

pub(super) async fn set_get_list_remove(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "f").await?;
    e.setxattr(&root(), f, b"user.a", b"1", 0).await?;
    assert_eq!(e.getxattr(f, b"user.a").await?, b"1".to_vec());
    e.setxattr(&root(), f, b"user.a", b"22", 0).await?;
    assert_eq!(
        e.getxattr(f, b"user.a").await?,
        b"22".to_vec(),
        "flags 0 replaces"
    );
    assert_eq!(e.listxattr(f).await?, vec![b"user.a".to_vec()]);
    e.removexattr(&root(), f, b"user.a").await?;
    assert!(e.listxattr(f).await?.is_empty());
    let d = dir(e, ROOT_INO, "d").await?;
    e.setxattr(&root(), d, b"user.dir", b"x", 0).await?;
    assert_eq!(e.getxattr(d, b"user.dir").await?, b"x".to_vec());
    Ok(())
}

pub(super) async fn create_existing_is_exists(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "f").await?;
    e.setxattr(&root(), f, b"user.a", b"1", CREATE).await?;
    assert_err!(
        e.setxattr(&root(), f, b"user.a", b"2", CREATE).await,
        MetaError::Exists
    );
    assert_eq!(e.getxattr(f, b"user.a").await?, b"1".to_vec());
    Ok(())
}

pub(super) async fn replace_missing_is_noattr(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "f").await?;
    assert_err!(
        e.setxattr(&root(), f, b"user.a", b"1", REPLACE).await,
        MetaError::NoAttr
    );
    e.setxattr(&root(), f, b"user.a", b"1", 0).await?;
    e.setxattr(&root(), f, b"user.a", b"2", REPLACE).await?;
    assert_eq!(e.getxattr(f, b"user.a").await?, b"2".to_vec());
    Ok(())
}

pub(super) async fn missing_attr_is_noattr(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "f").await?;
    assert_err!(e.getxattr(f, b"user.nope").await, MetaError::NoAttr);
    assert_err!(
        e.removexattr(&root(), f, b"user.nope").await,
        MetaError::NoAttr
    );
    e.setxattr(&root(), f, b"user.a", b"1", 0).await?;
    e.removexattr(&root(), f, b"user.a").await?;
    assert_err!(e.getxattr(f, b"user.a").await, MetaError::NoAttr);
    assert_err!(
        e.removexattr(&root(), f, b"user.a").await,
        MetaError::NoAttr
    );
    Ok(())
}

pub(super) async fn list_is_sorted(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "f").await?;
    for name in ["user.z", "user.a", "trusted.m", "user.b"] {
        e.setxattr(&root(), f, name.as_bytes(), b"v", 0).await?;
    }
    let want: Vec<Vec<u8>> = ["trusted.m", "user.a", "user.b", "user.z"]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
    assert_eq!(e.listxattr(f).await?, want);
    Ok(())
}

pub(super) async fn value_size_limit(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "f").await?;
    let max = vec![7u8; 65536];
    e.setxattr(&root(), f, b"user.big", &max, 0).await?;
    assert_eq!(e.getxattr(f, b"user.big").await?, max);
    assert_err!(
        e.setxattr(&root(), f, b"user.bigger", &[7u8; 65537], 0)
            .await,
        MetaError::Range
    );
    assert_err!(e.getxattr(f, b"user.bigger").await, MetaError::NoAttr);
    Ok(())
}

pub(super) async fn name_length_limit(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "f").await?;
    let mut ok = b"user.".to_vec();
    ok.resize(255, b'n');
    e.setxattr(&root(), f, &ok, b"v", 0).await?;
    assert_eq!(e.getxattr(f, &ok).await?, b"v".to_vec());
    let mut long = ok.clone();
    long.push(b'n');
    assert_err!(
        e.setxattr(&root(), f, &long, b"v", 0).await,
        MetaError::NameTooLong
    );
    assert_err!(e.getxattr(f, &long).await, MetaError::NameTooLong);
    assert_err!(
        e.removexattr(&root(), f, &long).await,
        MetaError::NameTooLong
    );
    Ok(())
}

pub(super) async fn needs_write_permission(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = owned_file(e, ROOT_INO, "f", ALICE, 0o644).await?;
    e.setxattr(&user(ALICE), f, b"user.a", b"1", 0).await?;
    assert_err!(
        e.setxattr(&user(BOB), f, b"user.b", b"1", 0).await,
        MetaError::PermissionDenied
    );
    assert_err!(
        e.removexattr(&user(BOB), f, b"user.a").await,
        MetaError::PermissionDenied
    );
    assert_eq!(e.getxattr(f, b"user.a").await?, b"1".to_vec());
    Ok(())
}

pub(super) async fn missing_inode_is_not_found(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let m = 0x00F0_0000;
    assert_err!(e.getxattr(m, b"user.a").await, MetaError::NotFound);
    assert_err!(
        e.setxattr(&root(), m, b"user.a", b"1", 0).await,
        MetaError::NotFound
    );
    assert_err!(e.listxattr(m).await, MetaError::NotFound);
    assert_err!(
        e.removexattr(&root(), m, b"user.a").await,
        MetaError::NotFound
    );
    Ok(())
}

pub(super) async fn binary_and_empty_values(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "f").await?;
    let bin = vec![0u8, 0xff, 0, 1, 2];
    e.setxattr(&root(), f, b"user.bin", &bin, 0).await?;
    e.setxattr(&root(), f, b"user.empty", b"", 0).await?;
    assert_eq!(e.getxattr(f, b"user.bin").await?, bin);
    assert_eq!(e.getxattr(f, b"user.empty").await?, Vec::<u8>::new());
    assert_eq!(e.listxattr(f).await?.len(), 2);
    Ok(())
}
