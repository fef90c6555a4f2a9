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
