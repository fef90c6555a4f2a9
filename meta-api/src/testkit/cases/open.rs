//! open/close: access checks and keeping unlinked open files alive, across clients too.

use super::{
    assert_err, dir, file, ids, is_deleted, look, owned_file, root, user, write, Fixture, ALICE,
    BOB,
};
use crate::{MetaError, Result, SetAttr, ROOT_INO};

pub(super) async fn open_checks_access_mode(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = owned_file(e, ROOT_INO, "f", ALICE, 0o644).await?;
    let a = e.open(&user(BOB), f, libc::O_RDONLY).await?;
    assert_eq!(a, e.getattr(f).await?);
    e.close(f).await?;
    assert_err!(
        e.open(&user(BOB), f, libc::O_WRONLY).await,
        MetaError::PermissionDenied
    );
    assert_err!(
        e.open(&user(BOB), f, libc::O_RDWR).await,
        MetaError::PermissionDenied
    );
    e.setattr(&user(ALICE), f, &SetAttr::new().mode(0o200))
        .await?;
    assert_err!(
        e.open(&user(ALICE), f, libc::O_RDONLY).await,
        MetaError::PermissionDenied
    );
    e.open(&user(ALICE), f, libc::O_WRONLY).await?;
    e.close(f).await?;
    e.open(&root(), f, libc::O_RDWR).await?;
    e.close(f).await?;
    Ok(())
}

pub(super) async fn open_trunc_needs_write(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = owned_file(e, ROOT_INO, "f", ALICE, 0o444).await?;
    assert_err!(
        e.open(&user(ALICE), f, libc::O_RDONLY | libc::O_TRUNC)
            .await,
        MetaError::PermissionDenied
    );
    e.open(&user(ALICE), f, libc::O_RDONLY).await?;
    e.close(f).await?;
    Ok(())
}

pub(super) async fn open_dir_for_write_is_isdir(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let d = dir(e, ROOT_INO, "d").await?;
    assert_err!(e.open(&root(), d, libc::O_RDWR).await, MetaError::IsDir);
    assert_err!(e.open(&root(), d, libc::O_WRONLY).await, MetaError::IsDir);
    e.open(&root(), d, libc::O_RDONLY).await?;
    e.close(d).await?;
    Ok(())
}

pub(super) async fn open_missing_is_not_found(fx: &Fixture<'_>) -> Result<()> {
    assert_err!(
        fx.a.open(&root(), 0x00F0_0000, libc::O_RDONLY).await,
        MetaError::NotFound
    );
    Ok(())
}

pub(super) async fn unlinked_open_file_stays_readable(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "f").await?;
    let s = write(e, f, 0, 0, 4096).await?;
    e.open(&root(), f, libc::O_RDWR).await?;
    e.unlink(&root(), ROOT_INO, b"f").await?;
    assert_err!(look(e, ROOT_INO, "f").await, MetaError::NotFound);
    let a = e.getattr(f).await?;
    assert_eq!((a.nlink, a.length), (0, 4096));
    assert_eq!(e.read_chunk(f, 0).await?, vec![s]);
    assert!(
        !is_deleted(e, f).await?,
        "an open file is not queued for purge"
    );
    e.close(f).await?;
    assert!(is_deleted(e, f).await?, "the last close queues it");
    assert_eq!(ids(&e.purge_file(f).await?), vec![s.id]);
    assert!(!is_deleted(e, f).await?);
    assert_err!(e.getattr(f).await, MetaError::NotFound);
    Ok(())
}

pub(super) async fn unlinked_open_file_across_clients(fx: &Fixture<'_>) -> Result<()> {
    let a = &*fx.a;
    let b = fx.client().await?;
    let f = file(a, ROOT_INO, "f").await?;
    let s = write(a, f, 0, 0, 8192).await?;
    a.open(&root(), f, libc::O_RDONLY).await?;
    b.unlink(&root(), ROOT_INO, b"f").await?;
    assert_err!(look(a, ROOT_INO, "f").await, MetaError::NotFound);
    assert_eq!(a.getattr(f).await?.nlink, 0);
    assert_eq!(
        a.read_chunk(f, 0).await?,
        vec![s],
        "A still reads what B unlinked"
    );
    let sessions = b.list_sessions().await?;
    assert!(
        sessions.iter().any(|x| x.sustained == vec![f]),
        "A's session sustains the file: {sessions:?}"
    );
    assert!(!is_deleted(&*b, f).await?);
    a.close(f).await?;
    // B unlinked it: A's close may wait for a batch, sent by sync at the latest.
    a.sync().await?;
    assert!(is_deleted(&*b, f).await?, "A's last close queues the file");
    assert_eq!(ids(&b.purge_file(f).await?), vec![s.id]);
    assert_err!(a.getattr(f).await, MetaError::NotFound);
    Ok(())
}

/// A close followed by a new open of the same file (an engine may still be sending the
/// close) leaves the file protected: another client's unlink sustains it until the new
/// handle closes.
pub(super) async fn reopened_file_stays_protected_after_a_close(fx: &Fixture<'_>) -> Result<()> {
    let a = &*fx.a;
    let b = fx.client().await?;
    let f = file(a, ROOT_INO, "f").await?;
    let s = write(a, f, 0, 0, 4096).await?;
    for _ in 0..3 {
        a.open(&root(), f, libc::O_RDONLY).await?;
        a.close(f).await?;
    }
    a.open(&root(), f, libc::O_RDONLY).await?;
    b.unlink(&root(), ROOT_INO, b"f").await?;
    a.sync().await?;
    assert!(!is_deleted(&*b, f).await?, "the open handle protects it");
    assert_eq!(a.read_chunk(f, 0).await?, vec![s]);
    a.close(f).await?;
    a.sync().await?;
    assert!(is_deleted(&*b, f).await?, "its last close queues it");
    Ok(())
}

pub(super) async fn two_opens_need_two_closes(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "f").await?;
    write(e, f, 0, 0, 10).await?;
    e.open(&root(), f, libc::O_RDONLY).await?;
    e.open(&root(), f, libc::O_WRONLY).await?;
    e.unlink(&root(), ROOT_INO, b"f").await?;
    e.close(f).await?;
    assert!(!is_deleted(e, f).await?, "one handle is still open");
    assert_eq!(e.getattr(f).await?.length, 10);
    e.close(f).await?;
    assert!(is_deleted(e, f).await?);
    Ok(())
}
