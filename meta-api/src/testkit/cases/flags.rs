//! JuiceFS's inode flags: immutable (`chattr +i`) and append-only (`chattr +a`).

use super::{assert_err, dir, file, root, user, write, Fixture};
use crate::{
    Context, FallocMode, Ino, MetaEngine, MetaError, RenameFlags, Result, SetAttr, ROOT_INO,
};

const IMMUTABLE: u8 = 1;
const APPEND: u8 = 2;

async fn chattr(e: &dyn MetaEngine, ino: Ino, flags: u8) -> Result<()> {
    e.setattr(&root(), ino, &SetAttr::new().flags(flags))
        .await?;
    Ok(())
}

/// Opens and closes `ino` with `flags`.
async fn open_close(e: &dyn MetaEngine, ctx: &Context, ino: Ino, flags: i32) -> Result<()> {
    e.open(ctx, ino, flags).await?;
    e.close(ino).await
}

pub(super) async fn immutable_file_cannot_change(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let ctx = root();
    let f = file(e, ROOT_INO, "f").await?;
    write(e, f, 0, 0, 100).await?;
    e.setxattr(&ctx, f, b"user.k", b"v", 0).await?;
    let other = file(e, ROOT_INO, "other").await?;
    write(e, other, 0, 0, 10).await?;
    chattr(e, f, IMMUTABLE).await?;
    assert_eq!(e.getattr(f).await?.flags, IMMUTABLE);

    open_close(e, &ctx, f, libc::O_RDONLY).await?;
    assert_err!(
        e.open(&ctx, f, libc::O_WRONLY).await,
        MetaError::NotPermitted
    );
    assert_err!(
        e.open(&ctx, f, libc::O_RDWR | libc::O_APPEND).await,
        MetaError::NotPermitted
    );
    assert_err!(
        e.setattr(&ctx, f, &SetAttr::new().mode(0o600)).await,
        MetaError::NotPermitted
    );
    assert_err!(
        e.setattr(&ctx, f, &SetAttr::new().uid(7)).await,
        MetaError::NotPermitted
    );
    assert_err!(e.truncate(&ctx, f, 0).await, MetaError::NotPermitted);
    assert_err!(
        e.fallocate(&ctx, f, FallocMode(0), 0, 4096).await,
        MetaError::NotPermitted
    );
    let punch = FallocMode(FallocMode::PUNCH_HOLE | FallocMode::KEEP_SIZE);
    assert_err!(
        e.fallocate(&ctx, f, punch, 0, 10).await,
        MetaError::NotPermitted
    );
    assert_err!(
        e.copy_file_range(&ctx, other, 0, f, 0, 10).await,
        MetaError::NotPermitted
    );
    assert_err!(
        e.setxattr(&ctx, f, b"user.k", b"w", 0).await,
        MetaError::NotPermitted
    );
    assert_err!(
        e.removexattr(&ctx, f, b"user.k").await,
        MetaError::NotPermitted
    );
    assert_err!(
        e.unlink(&ctx, ROOT_INO, b"f").await,
        MetaError::NotPermitted
    );
    assert_err!(
        e.rename(&ctx, ROOT_INO, b"f", ROOT_INO, b"g", RenameFlags::default())
            .await,
        MetaError::NotPermitted
    );
    assert_err!(
        e.rename(
            &ctx,
            ROOT_INO,
            b"other",
            ROOT_INO,
            b"f",
            RenameFlags::default()
        )
        .await,
        MetaError::NotPermitted
    );
    assert_err!(
        e.link(&ctx, f, ROOT_INO, b"g").await,
        MetaError::NotPermitted
    );

    // Nothing changed, and reading still works.
    let a = e.getattr(f).await?;
    assert_eq!(
        (a.length, a.mode & 0o777, a.nlink, a.uid),
        (100, 0o644, 1, 0)
    );
    assert_eq!(e.getxattr(f, b"user.k").await?, b"v");
    assert!(e.lookup(&ctx, ROOT_INO, b"g").await.is_err());
    // Only root changes the flags; clearing them makes the file ordinary again.
    assert_err!(
        e.setattr(&user(1000), f, &SetAttr::new().flags(0)).await,
        MetaError::NotPermitted
    );
    chattr(e, f, 0).await?;
    e.truncate(&ctx, f, 0).await?;
    e.unlink(&ctx, ROOT_INO, b"f").await?;
    Ok(())
}

pub(super) async fn append_only_file_only_grows(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let ctx = root();
    let f = file(e, ROOT_INO, "log").await?;
    write(e, f, 0, 0, 100).await?;
    let other = file(e, ROOT_INO, "other").await?;
    write(e, other, 0, 0, 10).await?;
    chattr(e, f, APPEND).await?;

    open_close(e, &ctx, f, libc::O_RDONLY).await?;
    open_close(e, &ctx, f, libc::O_WRONLY | libc::O_APPEND).await?;
    assert_err!(
        e.open(&ctx, f, libc::O_WRONLY).await,
        MetaError::NotPermitted
    );
    assert_err!(e.open(&ctx, f, libc::O_RDWR).await, MetaError::NotPermitted);
    assert_err!(
        e.open(&ctx, f, libc::O_WRONLY | libc::O_APPEND | libc::O_TRUNC)
            .await,
        MetaError::NotPermitted
    );
    // Appending data is what the file is for.
    write(e, f, 0, 100, 50).await?;
    assert_eq!(e.getattr(f).await?.length, 150);
    assert_err!(e.truncate(&ctx, f, 10).await, MetaError::NotPermitted);
    assert_err!(
        e.setattr(&ctx, f, &SetAttr::new().size(0)).await,
        MetaError::NotPermitted
    );
    let punch = FallocMode(FallocMode::PUNCH_HOLE | FallocMode::KEEP_SIZE);
    assert_err!(
        e.fallocate(&ctx, f, punch, 0, 10).await,
        MetaError::NotPermitted
    );
    let zero = FallocMode(FallocMode::ZERO_RANGE);
    assert_err!(
        e.fallocate(&ctx, f, zero, 0, 10).await,
        MetaError::NotPermitted
    );
    // Preallocating past the end leaves the existing bytes alone: allowed.
    e.fallocate(&ctx, f, FallocMode(FallocMode::KEEP_SIZE), 0, 4096)
        .await?;
    assert_err!(
        e.copy_file_range(&ctx, other, 0, f, 0, 10).await,
        MetaError::NotPermitted
    );
    assert_err!(
        e.setxattr(&ctx, f, b"user.k", b"v", 0).await,
        MetaError::NotPermitted
    );
    assert_err!(
        e.unlink(&ctx, ROOT_INO, b"log").await,
        MetaError::NotPermitted
    );
    assert_err!(
        e.rename(
            &ctx,
            ROOT_INO,
            b"log",
            ROOT_INO,
            b"old",
            RenameFlags::default()
        )
        .await,
        MetaError::NotPermitted
    );
    assert_err!(
        e.link(&ctx, f, ROOT_INO, b"log2").await,
        MetaError::NotPermitted
    );
    assert_eq!(e.getattr(f).await?.length, 150);
    chattr(e, f, 0).await?;
    e.unlink(&ctx, ROOT_INO, b"log").await?;
    Ok(())
}

pub(super) async fn immutable_directory_keeps_its_entries(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let ctx = root();
    let d = dir(e, ROOT_INO, "d").await?;
    file(e, d, "inside").await?;
    let outside = file(e, ROOT_INO, "outside").await?;
    chattr(e, d, IMMUTABLE).await?;

    assert_err!(
        e.mknod(&ctx, d, b"new", crate::FileType::Regular, 0o644, 0)
            .await,
        MetaError::NotPermitted
    );
    assert_err!(
        e.mkdir(&ctx, d, b"sub", 0o755).await,
        MetaError::NotPermitted
    );
    assert_err!(
        e.symlink(&ctx, d, b"ln", b"/x").await,
        MetaError::NotPermitted
    );
    assert_err!(
        e.link(&ctx, outside, d, b"hard").await,
        MetaError::NotPermitted
    );
    assert_err!(e.unlink(&ctx, d, b"inside").await, MetaError::NotPermitted);
    assert_err!(
        e.rename(
            &ctx,
            d,
            b"inside",
            ROOT_INO,
            b"moved",
            RenameFlags::default()
        )
        .await,
        MetaError::NotPermitted
    );
    assert_err!(
        e.rename(
            &ctx,
            ROOT_INO,
            b"outside",
            d,
            b"moved",
            RenameFlags::default()
        )
        .await,
        MetaError::NotPermitted
    );
    assert_eq!(
        super::list_names(e, d, 100).await?,
        vec![b"inside".to_vec()]
    );
    chattr(e, d, 0).await?;
    e.unlink(&ctx, d, b"inside").await?;
    Ok(())
}

pub(super) async fn append_only_directory_only_gains_entries(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let ctx = root();
    let d = dir(e, ROOT_INO, "d").await?;
    file(e, d, "a").await?;
    file(e, ROOT_INO, "outside").await?;
    chattr(e, d, APPEND).await?;

    // New entries may come in…
    file(e, d, "b").await?;
    e.mkdir(&ctx, d, b"sub", 0o755).await?;
    e.rename(&ctx, ROOT_INO, b"outside", d, b"c", RenameFlags::default())
        .await?;
    // …but none may go.
    assert_err!(e.unlink(&ctx, d, b"a").await, MetaError::NotPermitted);
    assert_err!(e.rmdir(&ctx, d, b"sub").await, MetaError::NotPermitted);
    assert_err!(
        e.rename(&ctx, d, b"a", ROOT_INO, b"a", RenameFlags::default())
            .await,
        MetaError::NotPermitted
    );
    assert_err!(
        e.rename(&ctx, d, b"a", d, b"renamed", RenameFlags::default())
            .await,
        MetaError::NotPermitted
    );
    let names = super::list_names(e, d, 100).await?;
    assert_eq!(
        names,
        vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec(), b"sub".to_vec()]
    );
    Ok(())
}
