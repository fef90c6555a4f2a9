//! Quotas ([`crate::quota`]): directory, user and group quotas checked and charged in the
//! transaction of each change.

use std::sync::Arc;

use super::{assert_err, dir, file, look, own, root, user, write, Fixture, ALICE, BOB};
use crate::quota::{Quota, QuotaKind};
use crate::{FileType, MetaEngine, MetaError, RenameFlags, Result, SetAttr, ROOT_INO};

/// A client of the fixture's volume with directory statistics on, and user and group
/// quotas when `user_group`.
async fn with_quotas(fx: &Fixture<'_>, user_group: bool) -> Result<Arc<dyn MetaEngine>> {
    let mut fmt = fx.a.load().await?;
    fmt.dir_stats = true;
    if user_group {
        fmt.extra
            .insert("UserGroupQuota".into(), serde_json::Value::Bool(true));
    }
    fx.a.init(&fmt, true).await?;
    fx.client().await
}

/// `(used space, used inodes)` of a quota.
async fn used(e: &dyn MetaEngine, kind: QuotaKind, key: u64) -> Result<(i64, i64)> {
    let q = e.get_quota(kind, key).await?.unwrap_or_default();
    Ok((q.used_space, q.used_inodes))
}

pub(super) async fn a_directory_quota_refuses_the_entry_past_its_limit(
    fx: &Fixture<'_>,
) -> Result<()> {
    let e = &*with_quotas(fx, false).await?;
    let q = dir(e, ROOT_INO, "q").await?;
    e.set_quota(QuotaKind::Dir, q, (0, 3), Some((0, 0))).await?;
    file(e, q, "a").await?;
    dir(e, q, "d").await?;
    e.symlink(&root(), q, b"l", b"a").await?;
    assert_eq!(used(e, QuotaKind::Dir, q).await?, (3 * 4096, 3));
    assert_err!(
        e.mknod(&root(), q, b"x", FileType::Regular, 0o644, 0).await,
        MetaError::QuotaExceeded
    );
    assert_err!(look(e, q, "x").await, MetaError::NotFound);
    // Below it, the ancestor's limit holds too.
    let d = look(e, q, "d").await?.ino;
    assert_err!(
        e.mkdir(&root(), d, b"deep", 0o755).await,
        MetaError::QuotaExceeded
    );
    assert_eq!(used(e, QuotaKind::Dir, q).await?, (3 * 4096, 3));
    e.unlink(&root(), q, b"l").await?;
    assert_eq!(used(e, QuotaKind::Dir, q).await?, (2 * 4096, 2));
    file(e, d, "ok").await?;
    assert_eq!(used(e, QuotaKind::Dir, q).await?, (3 * 4096, 3));
    // Outside it nothing is limited.
    file(e, ROOT_INO, "free").await?;
    Ok(())
}

pub(super) async fn a_space_quota_counts_4k_blocks_of_every_length_change(
    fx: &Fixture<'_>,
) -> Result<()> {
    let e = &*with_quotas(fx, false).await?;
    let q = dir(e, ROOT_INO, "q").await?;
    e.set_quota(QuotaKind::Dir, q, (4 * 4096, 0), Some((0, 0)))
        .await?;
    let f = file(e, q, "f").await?;
    write(e, f, 0, 0, 3 * 4096).await?;
    assert_eq!(used(e, QuotaKind::Dir, q).await?, (3 * 4096, 1));
    assert_err!(
        write(e, f, 0, 0, 4 * 4096 + 1).await,
        MetaError::QuotaExceeded
    );
    assert_eq!(e.getattr(f).await?.length, 3 * 4096, "nothing changed");
    assert_err!(
        e.truncate(&root(), f, 5 * 4096).await,
        MetaError::QuotaExceeded
    );
    assert_err!(
        e.fallocate(&root(), f, crate::FallocMode(0), 0, 5 * 4096)
            .await,
        MetaError::QuotaExceeded
    );
    e.truncate(&root(), f, 4096).await?;
    assert_eq!(used(e, QuotaKind::Dir, q).await?, (4096, 1));
    let g = file(e, q, "g").await?;
    e.copy_file_range(&root(), f, 0, g, 0, 4096).await?;
    assert_eq!(used(e, QuotaKind::Dir, q).await?, (2 * 4096, 2));
    e.link(&root(), g, q, b"g2").await?;
    assert_eq!(used(e, QuotaKind::Dir, q).await?, (3 * 4096, 3));
    Ok(())
}

pub(super) async fn renames_move_usage_between_quotas(fx: &Fixture<'_>) -> Result<()> {
    let e = &*with_quotas(fx, false).await?;
    let a = dir(e, ROOT_INO, "a").await?;
    let b = dir(e, ROOT_INO, "b").await?;
    e.set_quota(QuotaKind::Dir, a, (0, 0), Some((0, 0))).await?;
    e.set_quota(QuotaKind::Dir, b, (0, 2), Some((0, 0))).await?;
    let f = file(e, a, "f").await?;
    write(e, f, 0, 0, 10_000).await?;
    e.rename(&root(), a, b"f", b, b"f", RenameFlags::empty())
        .await?;
    assert_eq!(used(e, QuotaKind::Dir, a).await?, (0, 0));
    assert_eq!(used(e, QuotaKind::Dir, b).await?, (12_288, 1));
    // A directory with entries and no quota of its own cannot cross quotas (its usage is
    // unknown): mv copies instead.
    let sub = dir(e, a, "sub").await?;
    file(e, sub, "x").await?;
    assert_err!(
        e.rename(&root(), a, b"sub", b, b"sub", RenameFlags::empty())
            .await,
        MetaError::CrossDevice
    );
    // An empty one moves with its one entry.
    dir(e, a, "empty").await?;
    e.rename(&root(), a, b"empty", b, b"empty", RenameFlags::empty())
        .await?;
    assert_eq!(used(e, QuotaKind::Dir, b).await?, (12_288 + 4096, 2));
    // With its own quota, its usage moves with it; and b's limit counts it.
    e.set_quota(QuotaKind::Dir, sub, (0, 0), Some((4096, 1)))
        .await?;
    assert_err!(
        e.rename(&root(), a, b"sub", b, b"sub", RenameFlags::empty())
            .await,
        MetaError::QuotaExceeded
    );
    e.rename(&root(), a, b"sub", ROOT_INO, b"sub", RenameFlags::empty())
        .await?;
    assert_eq!(used(e, QuotaKind::Dir, a).await?, (0, 0));
    // Renames inside one quota change nothing.
    e.rename(&root(), b, b"f", b, b"g", RenameFlags::empty())
        .await?;
    assert_eq!(used(e, QuotaKind::Dir, b).await?, (12_288 + 4096, 2));
    Ok(())
}

pub(super) async fn user_and_group_quotas_follow_owners(fx: &Fixture<'_>) -> Result<()> {
    let e = &*with_quotas(fx, true).await?;
    let pub_dir = dir(e, ROOT_INO, "pub").await?;
    own(e, pub_dir, ALICE, 0o777).await?;
    // Alice already owns one inode: the directory.
    e.set_quota(QuotaKind::User, ALICE.into(), (0, 3), None)
        .await?;
    let alice = user(ALICE);
    e.mknod(&alice, pub_dir, b"a1", FileType::Regular, 0o644, 0)
        .await?;
    e.mknod(&alice, pub_dir, b"a2", FileType::Regular, 0o644, 0)
        .await?;
    assert_err!(
        e.mknod(&alice, pub_dir, b"a3", FileType::Regular, 0o644, 0)
            .await,
        MetaError::QuotaExceeded
    );
    assert_eq!(used(e, QuotaKind::User, ALICE.into()).await?, (3 * 4096, 3));
    assert_eq!(
        used(e, QuotaKind::Group, ALICE.into()).await?,
        (3 * 4096, 3)
    );
    // Others are tracked without a limit.
    let b = e
        .mknod(&user(BOB), pub_dir, b"b1", FileType::Regular, 0o644, 0)
        .await?
        .ino;
    assert_eq!(used(e, QuotaKind::User, BOB.into()).await?, (4096, 1));
    // A chown moves the usage, and is refused past the new owner's limit.
    assert_err!(
        e.setattr(&root(), b, &SetAttr::new().uid(ALICE)).await,
        MetaError::QuotaExceeded
    );
    e.unlink(&alice, pub_dir, b"a2").await?;
    e.setattr(&root(), b, &SetAttr::new().uid(ALICE)).await?;
    assert_eq!(used(e, QuotaKind::User, BOB.into()).await?, (0, 0));
    assert_eq!(used(e, QuotaKind::User, ALICE.into()).await?, (3 * 4096, 3));
    // Deleting frees the owner's usage; removing the quota keeps it, unlimited.
    assert!(e.delete_quota(QuotaKind::User, ALICE.into()).await?);
    let q = e
        .get_quota(QuotaKind::User, ALICE.into())
        .await?
        .expect("kept");
    assert_eq!((q.max_space, q.max_inodes, q.used_inodes), (-1, -1, 3));
    Ok(())
}

pub(super) async fn the_trash_frees_directory_usage_and_keeps_the_owners(
    fx: &Fixture<'_>,
) -> Result<()> {
    let mut fmt = fx.a.load().await?;
    fmt.trash_days = 1;
    fx.a.init(&fmt, true).await?;
    let e = &*with_quotas(fx, true).await?;
    let q = dir(e, ROOT_INO, "q").await?;
    e.set_quota(QuotaKind::Dir, q, (0, 10), Some((0, 0)))
        .await?;
    let f = file(e, q, "f").await?;
    write(e, f, 0, 0, 100).await?;
    let before = used(e, QuotaKind::User, 0).await?;
    e.unlink(&root(), q, b"f").await?;
    assert_eq!(used(e, QuotaKind::Dir, q).await?, (0, 0));
    assert_eq!(
        used(e, QuotaKind::User, 0).await?,
        before,
        "the trash still holds it"
    );
    Ok(())
}

pub(super) async fn quotas_are_set_listed_and_refused_precisely(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let d = dir(e, ROOT_INO, "d").await?;
    let mut fmt = e.load().await?;
    if !fmt.dir_stats {
        assert_err!(
            e.set_quota(QuotaKind::Dir, d, (1, 1), None).await,
            MetaError::NotSupported(_)
        );
    }
    fmt.dir_stats = true;
    e.init(&fmt, true).await?;
    let e = &*fx.client().await?;
    let f = file(e, ROOT_INO, "f").await?;
    assert_err!(
        e.set_quota(QuotaKind::Dir, f, (1, 1), None).await,
        MetaError::NotDir
    );
    assert_err!(
        e.set_quota(QuotaKind::Dir, 0x00F0_0000, (1, 1), None).await,
        MetaError::NotFound
    );
    assert_err!(
        e.set_quota(QuotaKind::Dir, d, (1, 1), Some((-1, 0))).await,
        MetaError::InvalidArgument(_)
    );
    assert_eq!(e.get_quota(QuotaKind::Dir, d).await?, None);
    e.set_quota(QuotaKind::Dir, d, (1 << 30, 100), Some((0, 0)))
        .await?;
    let want = Quota {
        max_space: 1 << 30,
        max_inodes: 100,
        used_space: 0,
        used_inodes: 0,
    };
    assert_eq!(e.list_quotas(QuotaKind::Dir).await?, vec![(d, want)]);
    // statfs inside the quota shows it.
    let fs = e.statfs_at(d).await?;
    assert_eq!((fs.total_space, fs.avail_space), (1 << 30, 1 << 30));
    assert_eq!((fs.used_inodes, fs.avail_inodes), (0, 100));
    assert_ne!(e.statfs_at(ROOT_INO).await?.total_space, 1 << 30);
    assert!(e.delete_quota(QuotaKind::Dir, d).await?);
    assert!(!e.delete_quota(QuotaKind::Dir, d).await?);
    assert_eq!(e.list_quotas(QuotaKind::Dir).await?, vec![]);
    Ok(())
}
