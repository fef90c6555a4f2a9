//! Clones ([`crate::clone`]): new inodes over the source's slices, the detached-node
//! protocol, and refusals and failures that leave nothing behind.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use super::{
    assert_err, dir, file, ids, is_deleted, list_names, look, own, root, user, visible, write,
    Fixture, ALICE,
};
use crate::clone::{self, CloneNode, CloneOptions, Cloned};
use crate::quota::QuotaKind;
use crate::{Context, FileType, Ino, MetaEngine, MetaError, Result, SetAttr, Timestamp, ROOT_INO};

/// Clones `src` as `name` in `parent`, as `ctx`.
async fn clone_as(
    e: &dyn MetaEngine,
    ctx: &Context,
    src: Ino,
    parent: Ino,
    name: &str,
    opts: CloneOptions,
) -> Result<Cloned> {
    clone::clone_tree(
        e,
        ctx,
        src,
        (parent, name.as_bytes()),
        opts,
        &AtomicU64::new(0),
    )
    .await
}

/// A client with directory statistics and user and group quotas on.
async fn with_quotas(fx: &Fixture<'_>) -> Result<Arc<dyn MetaEngine>> {
    let mut fmt = fx.a.load().await?;
    fmt.dir_stats = true;
    fmt.extra
        .insert("UserGroupQuota".into(), serde_json::Value::Bool(true));
    fx.a.init(&fmt, true).await?;
    fx.client().await
}

/// Everything a failed clone must leave as it was: usage, the root's entries and
/// attributes, and no detached tree.
async fn snapshot(e: &dyn MetaEngine) -> Result<(crate::StatFs, Vec<Vec<u8>>, u32, usize)> {
    Ok((
        e.statfs().await?,
        list_names(e, ROOT_INO, 100).await?,
        e.getattr(ROOT_INO).await?.nlink,
        e.detached_nodes().await?.len(),
    ))
}

/// `src/{f (two chunks, an xattr, a second name h), l -> f, sub/{g}}`; returns the
/// directory, f, g and the slices written.
async fn source_tree(e: &dyn MetaEngine) -> Result<(Ino, Ino, Ino, Vec<crate::Slice>)> {
    let src = dir(e, ROOT_INO, "src").await?;
    let f = file(e, src, "f").await?;
    let a = write(e, f, 0, 0, 5000).await?;
    let b = write(e, f, 0, 1000, 100).await?;
    let c = write(e, f, 1, 0, 10).await?;
    e.setxattr(&root(), f, b"user.k", b"v", 0).await?;
    e.link(&root(), f, src, b"h").await?;
    e.symlink(&root(), src, b"l", b"f").await?;
    let sub = dir(e, src, "sub").await?;
    let g = file(e, sub, "g").await?;
    let d = write(e, g, 0, 0, 7).await?;
    Ok((src, f, g, vec![a, b, c, d]))
}

/// Unlinks every file of `names` in `parent` and purges them; returns the slice ids freed.
async fn delete_files(e: &dyn MetaEngine, parent: Ino, names: &[&str]) -> Result<Vec<u64>> {
    let mut inos = Vec::new();
    for n in names {
        inos.push(look(e, parent, n).await?.ino);
        e.unlink(&root(), parent, n.as_bytes()).await?;
    }
    inos.sort_unstable();
    inos.dedup();
    let mut freed = Vec::new();
    for ino in inos {
        if is_deleted(e, ino).await? {
            freed.extend(e.purge_file(ino).await?);
        }
    }
    Ok(ids(&freed))
}

pub(super) async fn a_tree_clone_shares_every_slice(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let (src, f, g, slices) = source_tree(e).await?;
    let before = e.statfs().await?;
    let root_links = e.getattr(ROOT_INO).await?.nlink;
    let made = clone_as(e, &root(), src, ROOT_INO, "dst", CloneOptions::default()).await?;
    assert_eq!((made.files, made.dirs), (4, 2), "f, h, l, g; dst, sub");
    assert_eq!(made.usage.inodes, 6);
    let dst = look(e, ROOT_INO, "dst").await?;
    assert_eq!(dst.ino, made.ino);
    assert_ne!(dst.ino, src);
    assert_eq!(dst.attr.parent, ROOT_INO);
    assert_eq!(dst.attr.nlink, 3, "two and one for sub");
    assert_eq!(e.getattr(ROOT_INO).await?.nlink, root_links + 1);
    assert_eq!(
        list_names(e, dst.ino, 2).await?,
        list_names(e, src, 100).await?
    );
    assert!(e.detached_nodes().await?.is_empty(), "the record went");
    let after = e.statfs().await?;
    assert_eq!(after.used_inodes, before.used_inodes + 6);
    // Files: new inodes with the source's content, xattrs and targets.
    let f2 = look(e, dst.ino, "f").await?;
    let h2 = look(e, dst.ino, "h").await?;
    assert!(
        f2.ino != f && h2.ino != f && f2.ino != h2.ino,
        "links are not kept"
    );
    assert_eq!((f2.attr.nlink, h2.attr.nlink), (1, 1));
    assert_eq!(f2.attr.length, e.getattr(f).await?.length);
    for i in [0, 1] {
        assert_eq!(
            visible(e, f2.ino, i, 6000).await?,
            visible(e, f, i, 6000).await?
        );
        assert_eq!(
            visible(e, h2.ino, i, 6000).await?,
            visible(e, f, i, 6000).await?
        );
    }
    assert_eq!(e.getxattr(f2.ino, b"user.k").await?, b"v");
    let l2 = look(e, dst.ino, "l").await?;
    assert_eq!(e.readlink(l2.ino).await?, b"f");
    let sub2 = look(e, dst.ino, "sub").await?;
    assert_eq!(sub2.attr.parent, dst.ino);
    let g2 = look(e, sub2.ino, "g").await?;
    assert_ne!(g2.ino, g);
    assert_eq!(visible(e, g2.ino, 0, 7).await?, visible(e, g, 0, 7).await?);
    // Deleting the source frees nothing: every slice has more references.
    let sub = look(e, src, "sub").await?.ino;
    assert_eq!(
        delete_files(e, src, &["f", "h", "l"]).await?,
        Vec::<u64>::new()
    );
    assert_eq!(delete_files(e, sub, &["g"]).await?, Vec::<u64>::new());
    assert_eq!(visible(e, g2.ino, 0, 7).await?, vec![slices[3]]);
    // Deleting the clones frees them all.
    let mut freed = delete_files(e, dst.ino, &["f", "h", "l"]).await?;
    freed.extend(delete_files(e, sub2.ino, &["g"]).await?);
    freed.sort_unstable();
    assert_eq!(freed, ids(&slices));
    Ok(())
}

pub(super) async fn a_file_clone_is_one_entry_with_the_callers_owner(
    fx: &Fixture<'_>,
) -> Result<()> {
    let e = &*fx.a;
    let pub_dir = dir(e, ROOT_INO, "pub").await?;
    own(e, pub_dir, ALICE, 0o777).await?;
    let f = file(e, ROOT_INO, "f").await?;
    let s = write(e, f, 0, 0, 100).await?;
    e.setattr(&root(), f, &SetAttr::new().mode(0o4755)).await?;
    e.setattr(
        &root(),
        f,
        &SetAttr::new().mtime(crate::SetTime::At(super::OLD)),
    )
    .await?;
    let lo = Timestamp::now();
    let mut alice = user(ALICE);
    alice.umask = 0o022;
    let made = clone_as(e, &alice, f, pub_dir, "c", CloneOptions::default()).await?;
    assert_eq!((made.files, made.dirs), (1, 0));
    let c = look(e, pub_dir, "c").await?.attr;
    assert_eq!(
        (c.uid, c.gid, c.mode & 0o7777),
        (ALICE, ALICE, 0o4755 & !0o022)
    );
    assert!(c.mtime.sec >= lo.sec - 1, "a clone's times are now");
    assert!(e.getattr(pub_dir).await?.mtime.sec >= lo.sec - 1);
    assert_eq!(visible(e, made.ino, 0, 100).await?, vec![s]);
    // Preserved: root keeps owner, mode and times; anyone else owns what they clone and
    // loses the set-user-ID bit.
    let p = clone_as(
        e,
        &root(),
        f,
        ROOT_INO,
        "p",
        CloneOptions::default().preserve(true),
    )
    .await?;
    let pa = e.getattr(p.ino).await?;
    assert_eq!(
        (pa.uid, pa.mode & 0o7777, pa.mtime),
        (0, 0o4755, super::OLD)
    );
    let q = clone_as(
        e,
        &alice,
        f,
        pub_dir,
        "q",
        CloneOptions::default().preserve(true),
    )
    .await?;
    let qa = e.getattr(q.ino).await?;
    assert_eq!(
        (qa.uid, qa.mode & 0o7777, qa.mtime),
        (ALICE, 0o755, super::OLD)
    );
    Ok(())
}

pub(super) async fn clone_refusals_are_precise_and_change_nothing(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let (src, f, _, _) = source_tree(e).await?;
    let taken = file(e, ROOT_INO, "taken").await?;
    let private = dir(e, ROOT_INO, "private").await?;
    own(e, private, 0, 0o700).await?;
    let shut = dir(e, ROOT_INO, "shut").await?;
    let before = snapshot(e).await?;
    let o = CloneOptions::default();
    let r = &root();
    assert_err!(
        clone_as(e, r, src, ROOT_INO, "taken", o).await,
        MetaError::Exists
    );
    assert_err!(
        clone_as(e, r, f, ROOT_INO, "src", o).await,
        MetaError::Exists
    );
    assert_err!(
        clone_as(e, r, 9_999_999, ROOT_INO, "x", o).await,
        MetaError::NotFound
    );
    assert_err!(
        clone_as(e, r, src, 9_999_999, "x", o).await,
        MetaError::NotFound
    );
    assert_err!(clone_as(e, r, src, taken, "x", o).await, MetaError::NotDir);
    assert_err!(
        clone_as(e, r, src, ROOT_INO, "a/b", o).await,
        MetaError::InvalidArgument(_)
    );
    let long = "n".repeat(256);
    assert_err!(
        clone_as(e, r, src, ROOT_INO, &long, o).await,
        MetaError::NameTooLong
    );
    assert_err!(
        clone_as(e, r, src, ROOT_INO, ".trash", o).await,
        MetaError::NotPermitted
    );
    assert_err!(
        clone_as(e, r, crate::TRASH_INO, ROOT_INO, "t", o).await,
        MetaError::NotPermitted
    );
    assert_err!(
        clone_as(e, r, src, crate::TRASH_INO, "t", o).await,
        MetaError::NotPermitted
    );
    // Alice may neither read the private directory nor write into a directory of root's.
    let alice = user(ALICE);
    assert_err!(
        clone_as(e, &alice, private, private, "x", o).await,
        MetaError::PermissionDenied
    );
    assert_err!(
        clone_as(e, &alice, src, shut, "x", o).await,
        MetaError::PermissionDenied
    );
    assert_eq!(snapshot(e).await?, before);
    Ok(())
}

pub(super) async fn a_clone_past_a_quota_leaves_nothing(fx: &Fixture<'_>) -> Result<()> {
    let e = &*with_quotas(fx).await?;
    let (src, _, _, slices) = source_tree(e).await?;
    let pub_dir = dir(e, ROOT_INO, "pub").await?;
    own(e, pub_dir, ALICE, 0o777).await?;
    e.setattr(&root(), src, &SetAttr::new().mode(0o755)).await?;
    // Alice owns the public directory; three more inodes are not enough for six.
    e.set_quota(QuotaKind::User, ALICE.into(), (0, 4), None)
        .await?;
    let before = snapshot(e).await?;
    let pub_before = list_names(e, pub_dir, 100).await?;
    let alice = user(ALICE);
    let o = CloneOptions::default();
    assert_err!(
        clone_as(e, &alice, src, pub_dir, "c", o).await,
        MetaError::QuotaExceeded
    );
    assert_eq!(snapshot(e).await?, before);
    assert_eq!(list_names(e, pub_dir, 100).await?, pub_before);
    let q = e
        .get_quota(QuotaKind::User, ALICE.into())
        .await?
        .unwrap_or_default();
    assert_eq!(q.used_inodes, 1, "only the public directory");
    // A directory quota is checked with the whole tree when it is attached.
    let qd = dir(e, ROOT_INO, "q").await?;
    e.set_quota(QuotaKind::Dir, qd, (0, 3), Some((0, 0)))
        .await?;
    let before = snapshot(e).await?;
    assert_err!(
        clone_as(e, &root(), src, qd, "c", o).await,
        MetaError::QuotaExceeded
    );
    assert_eq!(snapshot(e).await?, before);
    assert_eq!(list_names(e, qd, 100).await?, Vec::<Vec<u8>>::new());
    // A file fits; its usage is charged to the quota.
    let f = look(e, src, "f").await?.ino;
    clone_as(e, &root(), f, qd, "f", o).await?;
    let dq = e.get_quota(QuotaKind::Dir, qd).await?.unwrap_or_default();
    assert_eq!(dq.used_inodes, 1);
    // Purging what the failed clones left frees no slice of the source.
    for d in e.deleted_files(usize::MAX).await? {
        assert_eq!(ids(&e.purge_file(d.ino).await?), Vec::<u64>::new());
    }
    assert_eq!(
        visible(e, f, 1, 10).await?,
        vec![slices[2]],
        "the source is whole"
    );
    Ok(())
}

pub(super) async fn a_crashed_clone_stays_detached_until_it_is_old(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let (src, f, _, slices) = source_tree(e).await?;
    let before = snapshot(e).await?;
    // A client that crashed after two steps: the detached top and one file below it.
    let o = CloneOptions::default();
    let top = e
        .clone_node(
            &root(),
            &CloneNode {
                src,
                parent: ROOT_INO,
                name: b"dst",
                opts: o,
                top: true,
            },
        )
        .await?;
    assert_eq!(top.attr.parent, 0);
    assert_eq!(top.attr.typ, FileType::Directory);
    e.clone_node(
        &root(),
        &CloneNode {
            src: f,
            parent: top.ino,
            name: b"f",
            opts: o,
            top: false,
        },
    )
    .await?;
    // And a subdirectory with its file.
    let sub = look(e, src, "sub").await?;
    let sub2 = e
        .clone_node(
            &root(),
            &CloneNode {
                src: sub.ino,
                parent: top.ino,
                name: b"sub",
                opts: o,
                top: false,
            },
        )
        .await?;
    let g = look(e, sub.ino, "g").await?.ino;
    e.clone_node(
        &root(),
        &CloneNode {
            src: g,
            parent: sub2.ino,
            name: b"g",
            opts: o,
            top: false,
        },
    )
    .await?;
    assert_eq!(e.getattr(top.ino).await?.nlink, 3);
    assert_err!(look(e, ROOT_INO, "dst").await, MetaError::NotFound);
    assert_eq!(
        list_names(e, ROOT_INO, 100).await?,
        before.1,
        "nothing visible"
    );
    let detached = e.detached_nodes().await?;
    assert_eq!(detached.len(), 1);
    assert_eq!(detached[0].0, top.ino);
    let now = Timestamp::now().sec;
    assert!((detached[0].1 - now).abs() <= 2, "recorded when it started");
    assert_eq!(
        e.statfs().await?.used_inodes,
        before.0.used_inodes + 4,
        "counted meanwhile"
    );
    // Young: kept (its client may still be cloning).
    let old = now - clone::DETACHED_MAX_AGE_SECS;
    assert_eq!(clone::remove_old_detached(e, old).await?, 0);
    assert_eq!(e.detached_nodes().await?.len(), 1);
    // Old: removed, with the references it took.
    assert_eq!(clone::remove_old_detached(e, now + 10).await?, 1);
    for d in e.deleted_files(usize::MAX).await? {
        assert_eq!(ids(&e.purge_file(d.ino).await?), Vec::<u64>::new());
    }
    assert_eq!(snapshot(e).await?, before);
    assert_err!(e.getattr(top.ino).await, MetaError::NotFound);
    assert!(!e.drop_detached(top.ino).await?, "gone");
    // Attaching what is not detached is refused.
    assert_err!(
        e.attach_dir(&root(), (ROOT_INO, b"x"), src, Default::default())
            .await,
        MetaError::NotFound
    );
    let sub = look(e, src, "sub").await?.ino;
    assert_eq!(
        delete_files(e, src, &["f", "h", "l"]).await?,
        ids(&slices[..3])
    );
    assert_eq!(delete_files(e, sub, &["g"]).await?, vec![slices[3].id]);
    Ok(())
}
