//! Upkeep: pending slices, the inventory for gc, job election, recomputed statistics.

use std::collections::BTreeSet;

use super::{assert_err, dir, file, ids, root, write, Fixture};
use crate::space::align4k;
use crate::upkeep::{DirStat, CLEANUP_SLICES, CLEANUP_SLICES_EVERY_SECS};
use crate::{compact, MetaEngine, MetaError, Result, Slice, ROOT_INO};

/// The pending slices of a volume, as `(id, size)`, sorted.
async fn pending(e: &dyn MetaEngine) -> Result<Vec<(u64, u32)>> {
    let mut v: Vec<(u64, u32)> = e
        .pending_slices(1000)
        .await?
        .iter()
        .map(|s| (s.id, s.size))
        .collect();
    v.sort_unstable();
    Ok(v)
}

fn whole(slices: &[Slice]) -> Vec<(u64, u32)> {
    let mut v: Vec<(u64, u32)> = slices.iter().map(|s| (s.id, s.size)).collect();
    v.sort_unstable();
    v
}

pub(super) async fn purge_leaves_freed_slices_pending(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "f").await?;
    let a = write(e, f, 0, 0, 100).await?;
    let b = write(e, f, 1, 0, 300).await?;
    assert_eq!(pending(e).await?, vec![], "live slices are not pending");
    e.unlink(&root(), ROOT_INO, b"f").await?;
    let freed = e.purge_file(f).await?;
    assert_eq!(whole(&freed), whole(&[a, b]));
    // The objects are not deleted yet: the slices stay pending, for every client.
    assert_eq!(pending(e).await?, whole(&[a, b]));
    assert_eq!(pending(&*fx.client().await?).await?, whole(&[a, b]));
    assert_eq!(e.pending_slices(1).await?.len(), 1, "the limit holds");
    assert_eq!(e.pending_slices(0).await?, vec![]);
    for s in e.pending_slices(10).await? {
        assert_eq!((s.pos, s.off, s.len), (0, 0, s.size), "named whole: {s:?}");
    }
    // A wrong size is another slice.
    assert!(!e.forget_slice(a.id, a.size + 1).await?);
    assert!(e.forget_slice(a.id, a.size).await?);
    assert!(!e.forget_slice(a.id, a.size).await?, "already forgotten");
    assert_eq!(pending(e).await?, whole(&[b]));
    assert!(e.forget_slice(b.id, b.size).await?);
    assert_eq!(pending(e).await?, vec![]);
    assert_eq!(e.list_slices().await?.pending, vec![]);
    assert_err!(e.forget_slice(0, 0).await, MetaError::InvalidArgument(_));
    Ok(())
}

pub(super) async fn forgetting_a_referenced_slice_changes_nothing(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "f").await?;
    let g = file(e, ROOT_INO, "g").await?;
    let s = write(e, f, 0, 0, 1000).await?;
    assert!(!e.forget_slice(s.id, s.size).await?, "a live slice");
    assert_eq!(e.copy_file_range(&root(), f, 0, g, 0, 1000).await?, 1000);
    e.unlink(&root(), ROOT_INO, b"f").await?;
    assert_eq!(e.purge_file(f).await?, vec![], "g still uses the slice");
    assert_eq!(pending(e).await?, vec![]);
    assert!(!e.forget_slice(s.id, s.size).await?);
    // g still reads it, and its purge frees it then.
    assert_eq!(ids(&e.read_chunk(g, 0).await?), vec![s.id]);
    e.unlink(&root(), ROOT_INO, b"g").await?;
    assert_eq!(whole(&e.purge_file(g).await?), whole(&[s]));
    assert_eq!(pending(e).await?, whole(&[s]));
    assert!(e.forget_slice(s.id, s.size).await?);
    assert_eq!(pending(e).await?, vec![]);
    Ok(())
}

pub(super) async fn compaction_leaves_freed_slices_pending(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "f").await?;
    write(e, f, 0, 0, 100).await?;
    write(e, f, 0, 50, 100).await?;
    write(e, f, 0, 120, 10).await?;
    let before = e.read_chunk(f, 0).await?;
    let plan = compact::plan(&before).expect("three overlapping slices compact");
    let id = e.new_slice_id().await?;
    let freed = e
        .compact_chunk(f, 0, &plan, id)
        .await?
        .expect("nothing changed meanwhile");
    assert_eq!(whole(&freed), whole(&before));
    assert_eq!(pending(e).await?, whole(&before));
    for s in &freed {
        assert!(e.forget_slice(s.id, s.size).await?);
    }
    assert_eq!(pending(e).await?, vec![]);
    // The new slice is referenced, not pending.
    assert!(!e.forget_slice(id, plan.len).await?);
    assert_eq!(e.read_chunk(f, 0).await?, vec![plan.record(id)]);
    Ok(())
}

pub(super) async fn list_slices_covers_live_deleted_and_pending(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let live = file(e, ROOT_INO, "live").await?;
    let l0 = write(e, live, 0, 0, 100).await?;
    let l1 = write(e, live, 0, 10, 20).await?;
    let l2 = write(e, live, 3, 0, 4096).await?;
    // A hole record (a shrink) has no object and is left out.
    e.truncate(&root(), live, 3 * crate::CHUNK_SIZE + 100)
        .await?;
    let gone = file(e, ROOT_INO, "gone").await?;
    let g0 = write(e, gone, 0, 0, 50).await?;
    e.unlink(&root(), ROOT_INO, b"gone").await?;
    let freed = file(e, ROOT_INO, "freed").await?;
    let p0 = write(e, freed, 0, 0, 70).await?;
    e.unlink(&root(), ROOT_INO, b"freed").await?;
    e.purge_file(freed).await?;
    let d = dir(e, ROOT_INO, "d").await?;
    let nested = file(e, d, "nested").await?;
    let n0 = write(e, nested, 2, 0, 30).await?;

    let got = e.list_slices().await?;
    let key = |&(i, x, s): &(crate::Ino, u32, Slice)| (i, x, s.pos, s.id, s.size, s.off, s.len);
    let records: BTreeSet<_> = got.records.iter().map(key).collect();
    assert_eq!(records.len(), got.records.len(), "no record twice");
    let want: BTreeSet<_> = [
        (live, 0, l0),
        (live, 0, l1),
        (live, 3, l2),
        (gone, 0, g0),
        (nested, 2, n0),
    ]
    .iter()
    .map(key)
    .collect();
    assert_eq!(records, want);
    assert_eq!(got.pending, vec![(p0.id, p0.size)]);
    assert_eq!(got.delayed, vec![]);
    Ok(())
}

pub(super) async fn list_slices_shows_delayed_slices(fx: &Fixture<'_>) -> Result<()> {
    let mut fmt = fx.a.load().await?;
    fmt.trash_days = 1;
    fx.a.init(&fmt, true).await?;
    let e = &*fx.client().await?;
    let f = file(e, ROOT_INO, "f").await?;
    write(e, f, 0, 0, 100).await?;
    write(e, f, 0, 50, 100).await?;
    let before = e.read_chunk(f, 0).await?;
    let plan = compact::plan(&before).expect("worth compacting");
    let id = e.new_slice_id().await?;
    let freed = e.compact_chunk(f, 0, &plan, id).await?.expect("committed");
    assert_eq!(freed, vec![], "the trash keeps them");
    let got = e.list_slices().await?;
    let mut delayed = got.delayed.clone();
    delayed.sort_unstable();
    assert_eq!(delayed, whole(&before));
    assert_eq!(got.pending, vec![]);
    assert_eq!(got.records, vec![(f, 0, plan.record(id))]);
    Ok(())
}

pub(super) async fn claim_job_elects_once_per_interval(fx: &Fixture<'_>) -> Result<()> {
    let (a, b) = (fx.a.clone(), fx.client().await?);
    let every = CLEANUP_SLICES_EVERY_SECS;
    let t = 2_000_000_000;
    // Two clients at the same moment: exactly one wins.
    let (x, y) = tokio::join!(
        a.claim_job(CLEANUP_SLICES, t, every),
        b.claim_job(CLEANUP_SLICES, t, every)
    );
    assert!(x? ^ y?, "exactly one client is elected");
    assert!(!a.claim_job(CLEANUP_SLICES, t + 1, every).await?);
    assert!(!b.claim_job(CLEANUP_SLICES, t + every, every).await?);
    assert!(b.claim_job(CLEANUP_SLICES, t + every + 1, every).await?);
    assert!(!a.claim_job(CLEANUP_SLICES, t + every + 1, every).await?);
    // Another job's counter is independent.
    assert!(a.claim_job("lastCleanupTrash", t, 3600).await?);
    assert!(!b.claim_job("lastCleanupTrash", t + 10, 3600).await?);
    assert_err!(
        a.claim_job("usedSpace", t, every).await,
        MetaError::InvalidArgument(_)
    );
    assert_err!(
        a.claim_job("nextInode", t, every).await,
        MetaError::InvalidArgument(_)
    );
    Ok(())
}

/// A directory with a written file, an empty file, a subdirectory (with a file of its own,
/// not counted) and a symlink: `(dir, the hand count)`.
async fn populated(e: &dyn MetaEngine) -> Result<(crate::Ino, DirStat)> {
    let d = dir(e, ROOT_INO, "d").await?;
    let a = file(e, d, "a").await?;
    write(e, a, 0, 0, 5000).await?;
    file(e, d, "b").await?;
    let s = dir(e, d, "s").await?;
    let deep = file(e, s, "deep").await?;
    write(e, deep, 0, 0, 100_000).await?;
    e.symlink(&root(), d, b"l", b"/somewhere/else").await?;
    let stat = DirStat {
        length: 5000,
        space: align4k(5000) + 3 * align4k(0),
        inodes: 4,
    };
    Ok((d, stat))
}

pub(super) async fn sync_dir_stat_counts_direct_entries(fx: &Fixture<'_>) -> Result<()> {
    let mut fmt = fx.a.load().await?;
    fmt.dir_stats = true;
    fx.a.init(&fmt, true).await?;
    let e = &*fx.client().await?;
    let (d, stat) = populated(e).await?;
    assert_eq!(e.sync_dir_stat(d).await?, stat);
    assert_eq!(e.dir_stat(d).await?, Some(stat));
    let empty = dir(e, ROOT_INO, "empty").await?;
    assert_eq!(e.sync_dir_stat(empty).await?, DirStat::default());
    assert_eq!(e.dir_stat(empty).await?, Some(DirStat::default()));
    let f = file(e, ROOT_INO, "f").await?;
    assert_err!(e.sync_dir_stat(f).await, MetaError::NotDir);
    assert_err!(e.dir_stat(f).await, MetaError::NotDir);
    assert_err!(e.sync_dir_stat(999_999).await, MetaError::NotFound);
    assert_err!(e.dir_stat(999_999).await, MetaError::NotFound);
    Ok(())
}

pub(super) async fn dir_stats_off_computes_but_stores_nothing(fx: &Fixture<'_>) -> Result<()> {
    let mut fmt = fx.a.load().await?;
    fmt.dir_stats = false;
    fx.a.init(&fmt, true).await?;
    let e = &*fx.client().await?;
    let (d, stat) = populated(e).await?;
    assert_eq!(e.sync_dir_stat(d).await?, stat);
    assert_eq!(e.dir_stat(d).await?, None);
    Ok(())
}

pub(super) async fn recount_usage_of_a_consistent_volume_changes_nothing(
    fx: &Fixture<'_>,
) -> Result<()> {
    let e = &*fx.a;
    let (d, _) = populated(e).await?;
    // A file unlinked while open still counts; a deleted one waiting for its purge and a
    // purged one do not.
    let open = file(e, d, "open").await?;
    write(e, open, 0, 0, 10_000).await?;
    e.open(&root(), open, libc::O_RDWR).await?;
    e.unlink(&root(), d, b"open").await?;
    let gone = file(e, ROOT_INO, "gone").await?;
    write(e, gone, 0, 0, 9000).await?;
    e.unlink(&root(), ROOT_INO, b"gone").await?;
    let purged = file(e, ROOT_INO, "purged").await?;
    write(e, purged, 0, 0, 9000).await?;
    e.unlink(&root(), ROOT_INO, b"purged").await?;
    e.purge_file(purged).await?;
    let big = file(e, ROOT_INO, "big").await?;
    e.truncate(&root(), big, 3 * crate::CHUNK_SIZE + 1).await?;

    let r = e.recount_usage().await?;
    assert_eq!(r.before, r.after, "nothing drifted");
    let fs = e.statfs().await?;
    assert_eq!(
        (r.after.space as u64, r.after.inodes as u64),
        (fs.total_space - fs.avail_space, fs.used_inodes)
    );
    // d, a, b, s, deep, l, open, big.
    assert_eq!(r.after.inodes, 8);
    assert_eq!(e.recount_usage().await?, r, "a second recount agrees");
    e.close(open).await?;
    let r = e.recount_usage().await?;
    assert_eq!(r.before, r.after);
    assert_eq!(r.after.inodes, 7);
    Ok(())
}

/// Asserts that the stored statistics of every directory in `dirs` equal a recount of its
/// entries (`what` names the change just made).
async fn stats_exact(e: &dyn MetaEngine, dirs: &[crate::Ino], what: &str) -> Result<()> {
    for &d in dirs {
        let stored = e.dir_stat(d).await?;
        let counted = e.sync_dir_stat(d).await?;
        assert_eq!(stored, Some(counted), "directory {d} after {what}");
    }
    Ok(())
}

pub(super) async fn dir_stats_stay_exact_through_every_change(fx: &Fixture<'_>) -> Result<()> {
    let mut fmt = fx.a.load().await?;
    fmt.dir_stats = true;
    fmt.trash_days = 1;
    fx.a.init(&fmt, true).await?;
    let e = &*fx.client().await?;
    let ctx = root();
    let a = dir(e, ROOT_INO, "a").await?;
    let b = dir(e, ROOT_INO, "b").await?;
    let all = [ROOT_INO, a, b];
    stats_exact(e, &all, "mkdir").await?;
    let f = file(e, a, "f").await?;
    write(e, f, 0, 0, 5000).await?;
    e.symlink(&ctx, a, b"l", b"target").await?;
    stats_exact(e, &all, "create, write, symlink").await?;
    e.link(&ctx, f, b, b"f2").await?;
    write(e, f, 1, 0, 100).await?;
    stats_exact(e, &all, "link and a write to a hard-linked file").await?;
    e.truncate(&ctx, f, 10).await?;
    e.fallocate(&ctx, f, crate::FallocMode(0), 0, 9000).await?;
    stats_exact(e, &all, "truncate, fallocate").await?;
    let g = file(e, b, "g").await?;
    e.copy_file_range(&ctx, f, 0, g, 100, 5000).await?;
    e.setattr(&ctx, g, &crate::SetAttr::new().size(70_000))
        .await?;
    stats_exact(e, &all, "copy_file_range, setattr size").await?;
    e.rename(&ctx, a, b"l", b, b"l", crate::RenameFlags::empty())
        .await?;
    e.rename(
        &ctx,
        b,
        b"g",
        a,
        b"l",
        crate::RenameFlags(crate::RenameFlags::NOREPLACE),
    )
    .await
    .ok();
    e.rename(
        &ctx,
        ROOT_INO,
        b"a",
        b,
        b"l",
        crate::RenameFlags(crate::RenameFlags::EXCHANGE),
    )
    .await?;
    stats_exact(e, &all, "renames and an exchange").await?;
    let h = file(e, b, "h").await?;
    write(e, h, 0, 0, 300).await?;
    e.rename(&ctx, b, b"h", b, b"g", crate::RenameFlags::empty())
        .await?;
    e.unlink(&ctx, b, b"f2").await?;
    let s = dir(e, b, "s").await?;
    e.rmdir(&ctx, b, b"s").await?;
    e.unlink(&root().skipping_trash(), b, b"g").await?;
    let mut touched = all.to_vec();
    touched.extend(
        e.readdir(&ctx, crate::TRASH_INO, None, 10, false)
            .await?
            .iter()
            .map(|h| h.ino),
    );
    assert!(touched.len() > all.len(), "deletions went to the trash");
    stats_exact(e, &touched, "rename over, unlink, rmdir into the trash").await?;
    let _ = s;
    Ok(())
}

pub(super) async fn forget_slices_forgets_only_pending_ones(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "f").await?;
    let mut doomed = Vec::new();
    for i in 0..30 {
        doomed.push(write(e, f, i, 0, 100 + i).await?);
    }
    let g = file(e, ROOT_INO, "g").await?;
    let live = write(e, g, 0, 0, 50).await?;
    e.unlink(&root(), ROOT_INO, b"f").await?;
    e.purge_file(f).await?;
    let mut ask: Vec<(u64, u32)> = doomed.iter().map(|s| (s.id, s.size)).collect();
    ask.push((live.id, live.size));
    ask.push((doomed[0].id, doomed[0].size + 1));
    assert_eq!(
        e.forget_slices(&ask).await?,
        30,
        "the live and the wrong-size one stay"
    );
    assert_eq!(pending(e).await?, vec![]);
    assert_eq!(e.read_chunk(g, 0).await?, vec![live]);
    assert_eq!(e.forget_slices(&ask).await?, 0, "already forgotten");
    assert_eq!(e.forget_slices(&[]).await?, 0);
    assert!(
        e.forget_slices(&[(0, 10)]).await.is_err(),
        "slice 0 is a hole"
    );
    Ok(())
}

/// A file with two names in one directory and a third in another: its writes and
/// truncates count once per name, so each directory's statistics stay what its entries
/// add up to.
pub(super) async fn dir_stats_count_each_name_of_a_hard_linked_file(
    fx: &Fixture<'_>,
) -> Result<()> {
    let mut fmt = fx.a.load().await?;
    fmt.dir_stats = true;
    fx.a.init(&fmt, true).await?;
    let e = &*fx.client().await?;
    let d = dir(e, ROOT_INO, "d").await?;
    let other = dir(e, ROOT_INO, "other").await?;
    let f = file(e, d, "a").await?;
    write(e, f, 0, 0, 5000).await?;
    e.link(&root(), f, d, b"b").await?;
    e.link(&root(), f, other, b"c").await?;
    write(e, f, 0, 5000, 20_000).await?;
    e.truncate(&root(), f, 9000).await?;
    write(e, f, 1, 0, 4096).await?;
    for dir in [d, other] {
        let kept = e.dir_stat(dir).await?;
        let entries = e.sync_dir_stat(dir).await?;
        assert_eq!(kept, Some(entries), "directory {dir}");
    }
    assert_eq!(
        e.dir_stat(d).await?.map(|s| s.inodes),
        Some(2),
        "two names, two entries"
    );
    Ok(())
}
