//! What checkpoints need of an engine ([`crate::checkpoint`]): references held on slices
//! beyond their files, and a wipe that keeps only the setting and the counters.

use super::{assert_err, file, ids, look, root, write, Fixture};
use crate::{MetaError, Result, ROOT_INO};

pub(super) async fn held_slices_outlive_their_files(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "f").await?;
    let a = write(e, f, 0, 0, 1000).await?;
    let b = write(e, f, 1, 0, 10).await?;
    let held = [(a.id, a.size), (b.id, b.size)];
    assert_eq!(
        e.hold_slices(&held, 1).await?,
        vec![],
        "a hold frees nothing"
    );
    e.unlink(&root(), ROOT_INO, b"f").await?;
    assert_eq!(
        ids(&e.purge_file(f).await?),
        Vec::<u64>::new(),
        "the held slices outlive their file"
    );
    assert!(e.pending_slices(100).await?.is_empty());
    // Released, they are pending as a purge leaves them.
    let mut freed = e.hold_slices(&held, -1).await?;
    freed.sort_by_key(|s| s.id);
    assert_eq!(ids(&freed), ids(&[a, b]));
    assert_eq!(ids(&e.pending_slices(100).await?), ids(&[a, b]));
    for s in &freed {
        assert!(e.forget_slice(s.id, s.size).await?);
    }
    assert!(e.pending_slices(100).await?.is_empty());
    assert_err!(
        e.hold_slices(&[(0, 10)], 1).await,
        MetaError::InvalidArgument(_)
    );
    Ok(())
}

pub(super) async fn a_hold_never_brings_a_freed_slice_back(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "f").await?;
    let a = write(e, f, 0, 0, 1000).await?;
    let g = file(e, ROOT_INO, "g").await?;
    let kept = write(e, g, 0, 0, 100).await?;
    e.unlink(&root(), ROOT_INO, b"f").await?;
    assert_eq!(ids(&e.purge_file(f).await?), vec![a.id]);
    // Pending (its objects may be gone): a hold leaves it pending.
    e.hold_slices(&[(a.id, a.size), (kept.id, kept.size)], 1)
        .await?;
    assert_eq!(ids(&e.pending_slices(100).await?), vec![a.id]);
    // The live one is held: its file's deletion frees nothing until the release.
    e.unlink(&root(), ROOT_INO, b"g").await?;
    assert_eq!(ids(&e.purge_file(g).await?), Vec::<u64>::new());
    let freed = e.hold_slices(&[(kept.id, kept.size)], -1).await?;
    assert_eq!(ids(&freed), vec![kept.id]);
    Ok(())
}

pub(super) async fn a_wipe_keeps_the_setting_and_the_counters(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let fmt = e.load().await?;
    let d = super::dir(e, ROOT_INO, "d").await?;
    let f = file(e, d, "f").await?;
    let s = write(e, f, 0, 0, 100).await?;
    e.setxattr(&root(), f, b"user.k", b"v", 0).await?;
    e.wipe().await?;
    assert_eq!(e.load().await?, fmt, "the setting stays");
    assert_err!(e.getattr(ROOT_INO).await, MetaError::NotFound);
    assert_err!(e.getattr(f).await, MetaError::NotFound);
    assert_err!(look(e, ROOT_INO, "d").await, MetaError::NotFound);
    assert!(e.deleted_files(100).await?.is_empty());
    assert!(e.pending_slices(100).await?.is_empty());
    assert!(e.read_chunk(f, 0).await.map_or(true, |c| c.is_empty()));
    // The counters stay: no slice id is handed out twice.
    assert!(e.new_slice_id().await? > s.id);
    Ok(())
}

/// The batched reads of a dump page ([`crate::MetaEngine::node_contents`]) answer what the
/// reads of each node do: xattrs (no ACL), chunks up to the length, targets, a hard-linked
/// inode under each of its names, nothing for a node that is gone.
pub(super) async fn node_contents_match_node_by_node_reads(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "f").await?;
    let a = write(e, f, 0, 0, 1000).await?;
    let b = write(e, f, 2, 10, 20).await?;
    e.setxattr(&root(), f, b"user.b", b"2", 0).await?;
    e.setxattr(&root(), f, b"user.a", b"1", 0).await?;
    e.link(&root(), f, ROOT_INO, b"g").await?;
    let l = e.symlink(&root(), ROOT_INO, b"l", b"f").await?.ino;
    let d = super::dir(e, ROOT_INO, "d").await?;
    let fa = e.getattr(f).await?;
    let nodes = vec![
        (f, fa.clone()),
        (l, e.getattr(l).await?),
        (d, e.getattr(d).await?),
        (f, fa.clone()),
        (9_999_999, fa),
    ];
    let got = match e.node_contents(&nodes).await {
        // The model keeps no dumps: the reads node by node are all there is.
        Err(MetaError::NotSupported(_)) => None,
        r => Some(r?),
    };
    let want = crate::dump::node_contents_one_by_one(e, &nodes).await?;
    let first = want[0].as_ref().expect("the file is there");
    assert_eq!(
        first.xattrs,
        vec![
            (b"user.a".to_vec(), b"1".to_vec()),
            (b"user.b".to_vec(), b"2".to_vec())
        ]
    );
    assert_eq!(first.chunks, vec![(0, vec![a]), (2, vec![b])]);
    assert_eq!(
        want[1].as_ref().and_then(|c| c.symlink.clone()),
        Some(b"f".to_vec())
    );
    assert_eq!(want[3], want[0], "a second name of the same inode");
    assert!(want[4].is_none(), "a node that is gone");
    if let Some(got) = got {
        assert_eq!(got, want);
    }
    Ok(())
}
