//! statfs and the deletion queue.

use super::{file, ids, is_deleted, root, write, Fixture};
use crate::{Result, ROOT_INO};

pub(super) async fn statfs_counts_inodes(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let before = e.statfs().await?;
    for i in 0..5 {
        file(e, ROOT_INO, &format!("f{i}")).await?;
    }
    let after = e.statfs().await?;
    assert_eq!(
        after.used_inodes,
        before.used_inodes + 5,
        "{before:?} -> {after:?}"
    );
    assert!(after.avail_inodes > 0);
    Ok(())
}

pub(super) async fn statfs_counts_space(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "f").await?;
    let before = e.statfs().await?;
    write(e, f, 0, 0, 1 << 20).await?;
    let after = e.statfs().await?;
    let used = |s: crate::StatFs| s.total_space - s.avail_space;
    // The empty file may already count as one 4 KiB block.
    assert!(
        used(after) >= used(before) + (1 << 20) - 4096,
        "{before:?} -> {after:?}"
    );
    assert!(after.total_space >= used(after));
    Ok(())
}

pub(super) async fn unlinked_file_is_queued_for_purge(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "f").await?;
    let s1 = write(e, f, 0, 0, 1000).await?;
    let s2 = write(e, f, 3, 0, 1000).await?;
    e.unlink(&root(), ROOT_INO, b"f").await?;
    let queued = e.deleted_files(100).await?;
    let mine: Vec<_> = queued.iter().filter(|d| d.ino == f).collect();
    assert_eq!(mine.len(), 1, "{queued:?}");
    assert_eq!(mine[0].length, 3 * crate::CHUNK_SIZE + 1000);
    let mut want = vec![s1.id, s2.id];
    want.sort_unstable();
    assert_eq!(ids(&e.purge_file(f).await?), want);
    assert!(!is_deleted(e, f).await?);
    assert!(
        e.purge_file(f).await.is_err(),
        "a purged file cannot be purged again"
    );
    Ok(())
}

pub(super) async fn purge_refuses_live_file(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "f").await?;
    let s = write(e, f, 0, 0, 1000).await?;
    assert!(
        e.purge_file(f).await.is_err(),
        "a linked file is not purged"
    );
    assert_eq!(e.read_chunk(f, 0).await?, vec![s]);
    assert_eq!(e.getattr(f).await?.length, 1000);
    Ok(())
}

pub(super) async fn deleted_files_respects_limit(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    for i in 0..3 {
        let name = format!("f{i}");
        let f = file(e, ROOT_INO, &name).await?;
        write(e, f, 0, 0, 100).await?;
        e.unlink(&root(), ROOT_INO, name.as_bytes()).await?;
    }
    assert_eq!(e.deleted_files(2).await?.len(), 2);
    assert_eq!(e.deleted_files(10).await?.len(), 3);
    Ok(())
}

/// `statfs` follows JuiceFS's formula exactly, so that every engine reports the same numbers
/// after the same operations: an unlimited volume shows 1 PiB and 10 Mi free inodes plus
/// what is used; used space is the sum of the 4 KiB-rounded lengths (every inode at least
/// 4 KiB), the root not counted.
pub(super) async fn statfs_is_juicefs_formula(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let ctx = super::root();
    let s0 = e.statfs().await?;
    assert_eq!(s0.total_space, 1 << 50, "{s0:?}");
    assert_eq!(s0.used_inodes, 0, "a fresh volume uses no inodes: {s0:?}");
    assert_eq!(s0.avail_inodes, 10 << 20, "{s0:?}");
    assert_eq!(s0.total_space - s0.avail_space, 0, "{s0:?}");
    let d = super::dir(e, ROOT_INO, "d").await?;
    let f = file(e, d, "f").await?;
    write(e, f, 0, 0, 10_000).await?;
    e.symlink(&ctx, ROOT_INO, b"ln", b"d/f").await?;
    let s = e.statfs().await?;
    // d: 4 KiB, f: 10,000 bytes rounded to 12 KiB, ln: 4 KiB.
    assert_eq!(s.total_space - s.avail_space, 4096 + 12288 + 4096, "{s:?}");
    assert_eq!(s.used_inodes, 3, "{s:?}");
    assert_eq!(s.avail_inodes, 10 << 20, "{s:?}");
    assert_eq!(s.total_space, 1 << 50);
    e.truncate(&ctx, f, 1).await?;
    e.unlink(&ctx, ROOT_INO, b"ln").await?;
    let s = e.statfs().await?;
    assert_eq!(s.total_space - s.avail_space, 4096 + 4096, "{s:?}");
    assert_eq!(s.used_inodes, 2, "{s:?}");
    Ok(())
}

/// A volume with a capacity and an inode limit reports them, and the usage when over.
pub(super) async fn statfs_reports_limits(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let mut f = e.load().await?;
    f.capacity = 1 << 30;
    f.inodes = 100;
    e.init(&f, true).await?;
    let c = fx.client().await?;
    file(&*c, ROOT_INO, "x").await?;
    let s = c.statfs().await?;
    assert_eq!(s.total_space, 1 << 30, "{s:?}");
    assert_eq!(s.total_space - s.avail_space, 4096, "{s:?}");
    assert_eq!((s.used_inodes, s.avail_inodes), (1, 99), "{s:?}");
    Ok(())
}

/// A batch purge has each file's effect: empty files, files with data, a slice shared by
/// two files of the batch (freed once, after both), a file already purged (skipped), and a
/// big one (more chunks than a batch transaction takes on some engines).
pub(super) async fn purge_files_purges_many_at_once(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let mut want = Vec::new();
    for i in 0..40 {
        let f = file(e, ROOT_INO, &format!("empty{i}")).await?;
        e.unlink(&root(), ROOT_INO, format!("empty{i}").as_bytes())
            .await?;
        want.push(f);
    }
    let data = file(e, ROOT_INO, "data").await?;
    let own = write(e, data, 0, 0, 1000).await?;
    let shared = write(e, data, 1, 0, 1000).await?;
    let copy = file(e, ROOT_INO, "copy").await?;
    e.copy_file_range(&root(), data, crate::CHUNK_SIZE, copy, 0, 1000)
        .await?;
    let big = file(e, ROOT_INO, "big").await?;
    let mut big_slices = Vec::new();
    for c in 0..300 {
        big_slices.push(write(e, big, c, 0, 10).await?.id);
    }
    let gone = file(e, ROOT_INO, "gone").await?;
    let gone_slice = write(e, gone, 0, 0, 10).await?;
    for n in ["data", "copy", "big", "gone"] {
        e.unlink(&root(), ROOT_INO, n.as_bytes()).await?;
    }
    assert_eq!(ids(&e.purge_file(gone).await?), vec![gone_slice.id]);
    want.extend([data, copy, big]);
    let mut queued: Vec<crate::DeletedFile> = e.deleted_files(usize::MAX).await?;
    queued.push(crate::DeletedFile {
        ino: gone,
        length: 10,
    });
    let done = e.purge_files(&queued).await?;
    let mut purged = done.files.clone();
    purged.sort_unstable();
    want.sort_unstable();
    assert_eq!(purged, want, "every queued file, the purged one skipped");
    let mut freed = vec![own.id, shared.id];
    freed.extend(big_slices);
    freed.sort_unstable();
    assert_eq!(ids(&done.freed), freed);
    assert_eq!(done.freed.len(), freed.len(), "each slice freed once");
    assert_eq!(e.deleted_files(usize::MAX).await?, vec![]);
    for f in want {
        assert!(e.getattr(f).await.is_err(), "inode {f} is gone");
        match e.read_chunk(f, 0).await {
            Ok(v) => assert_eq!(v, vec![], "chunks of {f} are gone"),
            Err(crate::MetaError::NotFound) => {}
            Err(x) => return Err(x),
        }
    }
    assert_eq!(e.purge_files(&queued).await?, crate::Purged::default());
    Ok(())
}

/// Two clients purging the same queue at once: every file is purged by exactly one of
/// them, every slice freed exactly once.
pub(super) async fn purge_files_by_two_clients_free_each_slice_once(
    fx: &Fixture<'_>,
) -> Result<()> {
    let e = &*fx.a;
    let b = fx.client().await?;
    let mut slices = Vec::new();
    for i in 0..60 {
        let name = format!("f{i}");
        let f = file(e, ROOT_INO, &name).await?;
        if i % 2 == 0 {
            slices.push(write(e, f, 0, 0, 100).await?.id);
        }
        e.unlink(&root(), ROOT_INO, name.as_bytes()).await?;
    }
    let queued = e.deleted_files(usize::MAX).await?;
    assert_eq!(queued.len(), 60);
    let mut reversed = queued.clone();
    reversed.reverse();
    let (x, y) = tokio::join!(e.purge_files(&queued), b.purge_files(&reversed));
    let (x, y) = (x?, y?);
    let mut files = x.files.clone();
    files.extend(&y.files);
    files.sort_unstable();
    let mut want: Vec<crate::Ino> = queued.iter().map(|d| d.ino).collect();
    want.sort_unstable();
    assert_eq!(files, want, "each file purged by exactly one client");
    let mut freed = x.freed.clone();
    freed.extend(&y.freed);
    let mut freed: Vec<u64> = freed.iter().map(|s| s.id).collect();
    freed.sort_unstable();
    slices.sort_unstable();
    assert_eq!(freed, slices, "each slice freed exactly once");
    assert_eq!(e.deleted_files(usize::MAX).await?, vec![]);
    Ok(())
}
