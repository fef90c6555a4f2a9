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
