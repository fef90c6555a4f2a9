//! Slice compaction: the record swap an engine commits for [`crate::compact`]'s plans.

use super::{file, root, write, Fixture};
use crate::{compact, MetaEngine, Result, Slice, ROOT_INO};

/// Three overlapping writes into chunk 0 of a new file `name`; returns the file and its
/// records.
async fn layered(e: &dyn MetaEngine, name: &str) -> Result<(crate::Ino, Vec<Slice>)> {
    let f = file(e, ROOT_INO, name).await?;
    write(e, f, 0, 0, 100).await?;
    write(e, f, 0, 50, 100).await?;
    write(e, f, 0, 120, 10).await?;
    Ok((f, e.read_chunk(f, 0).await?))
}

fn ids(slices: &[Slice]) -> Vec<u64> {
    let mut v: Vec<u64> = slices.iter().map(|s| s.id).collect();
    v.sort_unstable();
    v
}

pub(super) async fn commit_swaps_the_records(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let (f, before) = layered(e, "f").await?;
    let attr = e.getattr(f).await?;
    let plan = compact::plan(&before).expect("three overlapping slices compact");
    let id = e.new_slice_id().await?;
    let freed = e
        .compact_chunk(f, 0, &plan, id)
        .await?
        .expect("nothing changed meanwhile");
    assert_eq!(e.read_chunk(f, 0).await?, vec![plan.record(id)]);
    // Each old slice had one reference, now gone: all three objects may be deleted.
    assert_eq!(ids(&freed), ids(&before));
    for s in &freed {
        assert_eq!(
            (s.off, s.len),
            (0, s.size),
            "a freed slice is named whole: {s:?}"
        );
    }
    let after = e.getattr(f).await?;
    assert_eq!(
        (after.length, after.mtime),
        (attr.length, attr.mtime),
        "compaction changes no attribute"
    );
    // The new slice is referenced like any other: a purge frees it.
    e.unlink(&root(), ROOT_INO, b"f").await?;
    let purged = e.purge_file(f).await?;
    assert_eq!(ids(&purged), vec![id]);
    Ok(())
}

pub(super) async fn records_appended_meanwhile_stay(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let (f, before) = layered(e, "f").await?;
    let plan = compact::plan(&before).expect("worth compacting");
    // Another writer appends after the plan read the chunk.
    let late = write(e, f, 0, 10, 5).await?;
    let id = e.new_slice_id().await?;
    assert!(e.compact_chunk(f, 0, &plan, id).await?.is_some());
    assert_eq!(e.read_chunk(f, 0).await?, vec![plan.record(id), late]);
    Ok(())
}

pub(super) async fn a_chunk_compacted_by_another_client_refuses(fx: &Fixture<'_>) -> Result<()> {
    let (a, b) = (&*fx.a, fx.client().await?);
    let (f, before) = layered(a, "f").await?;
    let plan = compact::plan(&before).expect("worth compacting");
    let first = b.new_slice_id().await?;
    assert!(b.compact_chunk(f, 0, &plan, first).await?.is_some());
    // The chunk no longer begins with the records `a` read: its compaction is wasted.
    let second = a.new_slice_id().await?;
    assert_eq!(a.compact_chunk(f, 0, &plan, second).await?, None);
    assert_eq!(a.read_chunk(f, 0).await?, vec![plan.record(first)]);
    Ok(())
}

pub(super) async fn shared_slices_are_not_freed(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let (f, before) = layered(e, "f").await?;
    let g = file(e, ROOT_INO, "g").await?;
    // `g` shares the slices of `f`'s first 40 bytes (only the first write's slice).
    assert_eq!(e.copy_file_range(&root(), f, 0, g, 0, 40).await?, 40);
    let plan = compact::plan(&before).expect("worth compacting");
    let id = e.new_slice_id().await?;
    let freed = e.compact_chunk(f, 0, &plan, id).await?.expect("committed");
    let shared = before[0].id;
    assert!(
        !freed.iter().any(|s| s.id == shared),
        "{freed:?} frees a slice g still uses"
    );
    assert_eq!(freed.len(), 2, "{freed:?}");
    // g still reads what it copied.
    let seen = super::visible(e, g, 0, 40).await?;
    assert_eq!(seen.iter().map(|s| s.id).collect::<Vec<_>>(), vec![shared]);
    Ok(())
}

pub(super) async fn trash_volumes_keep_the_old_slices(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let mut fmt = e.load().await?;
    fmt.trash_days = 1;
    e.init(&fmt, true).await?;
    let c = fx.client().await?;
    let (f, before) = layered(&*c, "f").await?;
    let plan = compact::plan(&before).expect("worth compacting");
    let id = c.new_slice_id().await?;
    let freed = c.compact_chunk(f, 0, &plan, id).await?.expect("committed");
    assert!(
        freed.is_empty(),
        "the trash keeps replaced slices: {freed:?}"
    );
    assert_eq!(c.read_chunk(f, 0).await?, vec![plan.record(id)]);
    Ok(())
}

pub(super) async fn bad_plans_and_files_are_refused(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let (f, before) = layered(e, "f").await?;
    let plan = compact::plan(&before).expect("worth compacting");
    super::assert_err!(
        e.compact_chunk(f, 0, &plan, 0).await,
        crate::MetaError::InvalidArgument(_)
    );
    let d = super::dir(e, ROOT_INO, "d").await?;
    let id = e.new_slice_id().await?;
    super::assert_err!(
        e.compact_chunk(d, 0, &plan, id).await,
        crate::MetaError::IsDir
    );
    super::assert_err!(
        e.compact_chunk(0x7FFF_0000, 0, &plan, id).await,
        crate::MetaError::NotFound
    );
    // Another chunk of the file does not begin with these records.
    assert_eq!(e.compact_chunk(f, 1, &plan, id).await?, None);
    Ok(())
}
