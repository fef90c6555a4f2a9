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

fn names(prefix: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{prefix}{i}").into_bytes())
        .collect()
}

pub(super) async fn unlink_many_has_the_effect_of_each_unlink(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let d = dir(e, ROOT_INO, "d").await?;
    let before = e.statfs().await?;
    let mut inos = Vec::new();
    for n in names("f", 30) {
        inos.push(file(e, d, std::str::from_utf8(&n).unwrap_or("?")).await?);
    }
    let linked = file(e, d, "linked").await?;
    e.link(&root(), linked, ROOT_INO, b"other").await?;
    e.symlink(&root(), d, b"sym", b"target").await?;
    let mut all = names("f", 30);
    all.extend([b"linked".to_vec(), b"sym".to_vec(), b"missing".to_vec()]);
    assert_eq!(
        e.unlink_many(&root(), d, &all).await?,
        32,
        "the missing name is skipped"
    );
    assert_eq!(list_names(e, d, 100).await?, Vec::<Vec<u8>>::new());
    let after = e.statfs().await?;
    assert_eq!(
        after.used_inodes,
        before.used_inodes + 1,
        "only the file linked elsewhere is left"
    );
    assert_eq!(look(e, ROOT_INO, "other").await?.attr.nlink, 1);
    let queued = e.deleted_files(usize::MAX).await?;
    for f in inos {
        assert!(queued.iter().any(|q| q.ino == f), "{f} is queued for purge");
        assert_err!(e.getattr(f).await, MetaError::NotFound);
    }
    assert_eq!(e.getattr(d).await?.nlink, 2);
    Ok(())
}

pub(super) async fn unlink_many_stops_at_the_first_failure(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let d = dir(e, ROOT_INO, "d").await?;
    for n in ["a", "b", "c"] {
        file(e, d, n).await?;
    }
    dir(e, d, "sub").await?;
    let order = [b"a".to_vec(), b"b".to_vec(), b"sub".to_vec(), b"c".to_vec()];
    assert_err!(e.unlink_many(&root(), d, &order).await, MetaError::IsDir);
    assert_eq!(
        list_names(e, d, 100).await?,
        vec![b"c".to_vec(), b"sub".to_vec()],
        "the names before the failure are unlinked, the others are not"
    );
    assert_err!(
        e.unlink_many(&root(), d, &[b"c".to_vec(), b"x/y".to_vec()])
            .await,
        MetaError::InvalidArgument(_)
    );
    assert_eq!(e.unlink_many(&root(), d, &[]).await?, 0);
    Ok(())
}

pub(super) async fn unlink_many_checks_each_entry(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    // A sticky shared directory: Alice may remove her files only.
    let d = owned_dir(e, "shared", 0, 0o1777).await?;
    super::owned_file(e, d, "mine", ALICE, 0o644).await?;
    super::owned_file(e, d, "theirs", super::BOB, 0o644).await?;
    super::owned_file(e, d, "mine2", ALICE, 0o644).await?;
    let order = [b"mine".to_vec(), b"theirs".to_vec(), b"mine2".to_vec()];
    assert_err!(
        e.unlink_many(&user(ALICE), d, &order).await,
        MetaError::NotPermitted
    );
    assert_eq!(
        list_names(e, d, 100).await?,
        vec![b"mine2".to_vec(), b"theirs".to_vec()]
    );
    // Without write permission on the directory nothing is removed.
    let closed = owned_dir(e, "closed", 0, 0o755).await?;
    file(e, closed, "f").await?;
    file(e, closed, "g").await?;
    assert_err!(
        e.unlink_many(&user(ALICE), closed, &[b"f".to_vec(), b"g".to_vec()])
            .await,
        MetaError::PermissionDenied
    );
    assert_eq!(list_names(e, closed, 100).await?.len(), 2);
    Ok(())
}

/// A tree of three levels with a directory of more entries than a page.
async fn build_tree(e: &dyn crate::MetaEngine, top: crate::Ino) -> Result<u64> {
    let mut entries = 0;
    for i in 0..3 {
        let a = dir(e, top, &format!("a{i}")).await?;
        entries += 1;
        for j in 0..3 {
            let b = dir(e, a, &format!("b{j}")).await?;
            entries += 1;
            for k in 0..4 {
                file(e, b, &format!("f{k}")).await?;
                entries += 1;
            }
            e.symlink(&root(), b, b"link", b"../b0").await?;
            entries += 1;
        }
    }
    let wide = dir(e, top, "wide").await?;
    entries += 1;
    for i in 0..(crate::tree::REMOVE_PAGE + 200) {
        file(e, wide, &format!("w{i:05}")).await?;
        entries += 1;
    }
    Ok(entries)
}

pub(super) async fn remove_tree_removes_a_deep_and_wide_tree(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let before = e.statfs().await?;
    let top = dir(e, ROOT_INO, "top").await?;
    let entries = build_tree(e, top).await? + 1;
    let progress = std::sync::atomic::AtomicU64::new(0);
    let done = crate::tree::remove_tree(e, &root(), ROOT_INO, b"top", &progress).await?;
    assert_eq!(done.files + done.dirs, entries);
    assert_eq!(done.dirs, 1 + 3 + 9 + 1);
    assert_eq!(progress.load(std::sync::atomic::Ordering::Relaxed), entries);
    assert_err!(look(e, ROOT_INO, "top").await, MetaError::NotFound);
    assert_eq!(e.statfs().await?.used_inodes, before.used_inodes);
    assert_eq!(e.getattr(ROOT_INO).await?.nlink, 2);
    // A file is removed itself; a missing name is NotFound.
    file(e, ROOT_INO, "lone").await?;
    let done = crate::tree::remove_tree(e, &root(), ROOT_INO, b"lone", &progress).await?;
    assert_eq!(done.files, 1);
    assert_err!(
        crate::tree::remove_tree(e, &root(), ROOT_INO, b"lone", &progress).await,
        MetaError::NotFound
    );
    Ok(())
}

pub(super) async fn remove_tree_stops_where_rm_r_would(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let top = owned_dir(e, "top", ALICE, 0o755).await?;
    let mine = dir(e, top, "mine").await?;
    super::own(e, mine, ALICE, 0o755).await?;
    file(e, mine, "f").await?;
    let locked = dir(e, top, "locked").await?;
    file(e, locked, "g").await?;
    let progress = std::sync::atomic::AtomicU64::new(0);
    assert_err!(
        crate::tree::remove_tree(e, &user(ALICE), ROOT_INO, b"top", &progress).await,
        MetaError::PermissionDenied
    );
    assert_eq!(
        look(e, locked, "g").await?.attr.typ,
        crate::FileType::Regular
    );
    assert_eq!(look(e, top, "locked").await?.ino, locked);
    Ok(())
}

pub(super) async fn remove_tree_with_a_trash_moves_everything_there(
    fx: &Fixture<'_>,
) -> Result<()> {
    let mut fmt = fx.a.load().await?;
    fmt.trash_days = 1;
    fx.a.init(&fmt, true).await?;
    let e = &*fx.client().await?;
    let top = dir(e, ROOT_INO, "top").await?;
    for i in 0..5 {
        file(e, top, &format!("f{i}")).await?;
    }
    let sub = dir(e, top, "sub").await?;
    file(e, sub, "g").await?;
    let before = e.statfs().await?;
    let progress = std::sync::atomic::AtomicU64::new(0);
    let done = crate::tree::remove_tree(e, &root(), ROOT_INO, b"top", &progress).await?;
    assert_eq!((done.files, done.dirs), (6, 2));
    assert_err!(look(e, ROOT_INO, "top").await, MetaError::NotFound);
    assert_eq!(
        e.deleted_files(usize::MAX).await?,
        vec![],
        "the trash keeps the files"
    );
    assert!(
        e.statfs().await?.used_inodes >= before.used_inodes,
        "what the trash holds still counts"
    );
    Ok(())
}
