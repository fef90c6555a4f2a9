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
