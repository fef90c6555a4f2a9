//! Directory-entry names: length limits, forbidden bytes, bytes that are not UTF-8.

use super::{assert_err, file, list_names, root, Fixture};
use crate::{FileType, MetaError, RenameFlags, Result, ROOT_INO};

pub(super) async fn name_of_255_bytes_ok_256_too_long(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let ok = vec![b'n'; 255];
    let long = vec![b'n'; 256];
    let ent = e
        .mknod(&root(), ROOT_INO, &ok, FileType::Regular, 0o644, 0)
        .await?;
    assert_eq!(e.lookup(&root(), ROOT_INO, &ok).await?.ino, ent.ino);
    let c = root();
    assert_err!(
        e.mknod(&c, ROOT_INO, &long, FileType::Regular, 0o644, 0)
            .await,
        MetaError::NameTooLong
    );
    assert_err!(
        e.mkdir(&c, ROOT_INO, &long, 0o755).await,
        MetaError::NameTooLong
    );
    assert_err!(
        e.symlink(&c, ROOT_INO, &long, b"t").await,
        MetaError::NameTooLong
    );
    assert_err!(
        e.link(&c, ent.ino, ROOT_INO, &long).await,
        MetaError::NameTooLong
    );
    assert_err!(
        e.rename(&c, ROOT_INO, &ok, ROOT_INO, &long, RenameFlags::empty())
            .await,
        MetaError::NameTooLong
    );
    assert_err!(e.lookup(&c, ROOT_INO, &long).await, MetaError::NameTooLong);
    Ok(())
}

pub(super) async fn slash_and_nul_are_invalid(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let c = root();
    file(e, ROOT_INO, "f").await?;
    for bad in [&b"a/b"[..], b"a\0b", b"/"] {
        assert_err!(
            e.mknod(&c, ROOT_INO, bad, FileType::Regular, 0o644, 0)
                .await,
            MetaError::InvalidArgument(_)
        );
        assert_err!(
            e.mkdir(&c, ROOT_INO, bad, 0o755).await,
            MetaError::InvalidArgument(_)
        );
        assert_err!(
            e.rename(&c, ROOT_INO, b"f", ROOT_INO, bad, RenameFlags::empty())
                .await,
            MetaError::InvalidArgument(_)
        );
    }
    assert_eq!(list_names(e, ROOT_INO, 100).await?, vec![b"f".to_vec()]);
    Ok(())
}

pub(super) async fn dot_and_empty_names_are_invalid(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let c = root();
    for bad in [&b"."[..], b"..", b""] {
        assert_err!(
            e.mknod(&c, ROOT_INO, bad, FileType::Regular, 0o644, 0)
                .await,
            MetaError::InvalidArgument(_)
        );
        assert_err!(
            e.mkdir(&c, ROOT_INO, bad, 0o755).await,
            MetaError::InvalidArgument(_)
        );
    }
    assert_err!(
        e.rmdir(&c, ROOT_INO, b".").await,
        MetaError::InvalidArgument(_)
    );
    assert_err!(
        e.unlink(&c, ROOT_INO, b".").await,
        MetaError::InvalidArgument(_)
    );
    Ok(())
}

pub(super) async fn non_utf8_names_round_trip(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let name = vec![0xff, 0xfe, b'x', 0x80];
    let ent = e
        .mknod(&root(), ROOT_INO, &name, FileType::Regular, 0o644, 0)
        .await?;
    assert_eq!(e.lookup(&root(), ROOT_INO, &name).await?.ino, ent.ino);
    let listed = e.readdir(&root(), ROOT_INO, None, 100, false).await?;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, name);
    assert_eq!(listed[0].ino, ent.ino);
    Ok(())
}
