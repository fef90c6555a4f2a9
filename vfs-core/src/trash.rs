//! The trash's upkeep (JuiceFS's layout and rules are in [`meta_api::trash`]): the hourly
//! cleanup of expired hour directories, and restoring what an hour directory holds.
//!
//! * [`Vfs::clean_trash`](crate::Vfs::clean_trash) empties the hour directories older than
//!   `24·TrashDays + 2` hours — deleting their files for real, which queues them for the
//!   purge — removes them, and frees the delayed slices (kept by compaction) older than
//!   `TrashDays` days, deleting the objects of those left without references. The
//!   background purge job runs it hourly on one client of the volume, elected with the
//!   `lastCleanupTrash` counter that juicefs clients share.
//! * [`Vfs::restore`](crate::Vfs::restore) renames the entries of one hour directory back
//!   to where they were deleted from (`tessera restore`, as `juicefs restore`): without
//!   `put_back` only the entries whose directory was deleted in the same hour (so the
//!   deleted trees are rebuilt inside the trash); with it every entry, back into the live
//!   tree. A name taken meanwhile is left alone and counted as a conflict.
//!
//! Directories are read a page at a time and trees are emptied depth first, so memory
//! follows the depth of a tree, not its size.

use std::collections::HashSet;

use meta_api::trash::{self, TRASH_NAME};
use meta_api::{Context, FileType, Ino, MetaEngine, MetaError, RenameFlags, TRASH_INO};

use crate::upkeep::DirPages;
use crate::Result;

/// Entries removed per directory read while emptying a tree.
const EMPTY_PAGE: usize = 1000;
/// Delayed-slice records freed per engine call.
const DELAYED_BATCH: usize = 1000;

/// What a trash cleanup did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrashCleanup {
    /// Hour directories emptied and removed.
    pub hours: u64,
    /// Entries deleted for real from them (files, links and directories).
    pub entries: u64,
    /// Slices freed from delayed-slice records (their objects deleted).
    pub delayed_slices: u64,
}

/// What a restore did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Entries renamed back.
    pub restored: u64,
    /// Entries whose original name is taken (left in the trash).
    pub conflicts: u64,
    /// Entries that need `put_back` (their directory was not deleted in that hour).
    pub need_put_back: u64,
    /// Entries whose name is not a trash entry's, or whose rename failed otherwise.
    pub failed: u64,
}

/// The caller every cleanup step runs as: root, deleting past the trash.
fn cleaner() -> Context {
    Context::root().skipping_trash()
}

/// Empties and removes the hour directories of `meta`'s trash due at `now` (Unix seconds)
/// on a volume keeping `days` trash days (every hour before `now` when `force`).
pub(crate) async fn clean_hours(
    meta: &dyn MetaEngine,
    now: i64,
    days: u32,
    force: bool,
) -> Result<TrashCleanup> {
    let mut done = TrashCleanup::default();
    let ctx = cleaner();
    match meta.lookup(&ctx, meta_api::ROOT_INO, TRASH_NAME).await {
        Ok(_) => {}
        // A volume that never had trash days.
        Err(MetaError::NotFound) => return Ok(done),
        Err(e) => return Err(e.into()),
    }
    let mut due = Vec::new();
    let mut pages = DirPages::new(TRASH_INO);
    while let Some(page) = pages.next(meta).await? {
        for e in page {
            if e.typ == FileType::Directory && trash::expired(&e.name, now, days, force) {
                due.push((e.name, e.ino));
            } else if trash::hour_start(&e.name).is_none() {
                tracing::warn!(name = %String::from_utf8_lossy(&e.name), "an entry of the trash that is not an hour directory");
            }
        }
    }
    for (name, ino) in due {
        done.entries += empty_tree(meta, ino).await?;
        match meta.rmdir(&ctx, TRASH_INO, &name).await {
            Ok(()) => done.hours += 1,
            // Another client cleaned it first.
            Err(MetaError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(done)
}

/// Deletes everything below directory `top` for real, depth first; returns how many
/// entries were removed. Entries another client removes meanwhile are skipped.
async fn empty_tree(meta: &dyn MetaEngine, top: Ino) -> Result<u64> {
    let ctx = cleaner();
    let mut removed = 0;
    // The directories entered below `top`: (parent, name, inode).
    let mut path: Vec<(Ino, Vec<u8>, Ino)> = Vec::new();
    let mut cur = top;
    loop {
        let page = meta.readdir(&ctx, cur, None, EMPTY_PAGE, false).await?;
        if let Some(sub) = page.iter().find(|e| e.typ == FileType::Directory) {
            path.push((cur, sub.name.clone(), sub.ino));
            cur = sub.ino;
            continue;
        }
        if page.is_empty() {
            let Some((parent, name, _)) = path.pop() else {
                return Ok(removed);
            };
            match meta.rmdir(&ctx, parent, &name).await {
                Ok(()) => removed += 1,
                Err(MetaError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
            cur = parent;
            continue;
        }
        let mut progress = false;
        for e in page {
            match meta.unlink(&ctx, cur, &e.name).await {
                Ok(()) => {
                    removed += 1;
                    progress = true;
                }
                // Removed meanwhile: the next read shows it gone.
                Err(MetaError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if !progress {
            // Listed but never removable: stop rather than read the same page forever.
            return Err(MetaError::Corrupt(format!(
                "directory {cur} in the trash lists entries that cannot be removed"
            ))
            .into());
        }
    }
}

/// Frees the delayed slices of `meta` made before `before` (Unix seconds): returns the
/// slices left without references, for their objects to be deleted.
pub(crate) async fn free_delayed(
    meta: &dyn MetaEngine,
    before: i64,
) -> Result<Vec<meta_api::Slice>> {
    let mut freed = Vec::new();
    loop {
        let batch = meta.free_delayed_slices(before, DELAYED_BATCH).await?;
        let n = batch.len();
        freed.extend(batch);
        // A batch frees up to DELAYED_BATCH records, each of any number of slices: stop
        // when one frees nothing.
        if n == 0 {
            return Ok(freed);
        }
    }
}

/// Restores the entries of hour directory `hour` of `meta`'s trash (see the module docs).
pub(crate) async fn restore(
    meta: &dyn MetaEngine,
    hour: &[u8],
    put_back: bool,
) -> Result<RestoreReport> {
    let ctx = Context::root();
    if trash::hour_start(hour).is_none() {
        return Err(crate::VfsError::InvalidArgument(
            "not the name of an hour directory of the trash (YYYY-MM-DD-HH)",
        ));
    }
    let dir = meta.lookup(&ctx, TRASH_INO, hour).await?.ino;
    // The directories deleted in that hour: entries put back into them rebuild their trees.
    let mut parents = HashSet::new();
    if !put_back {
        let mut pages = DirPages::new(dir);
        while let Some(page) = pages.next(meta).await? {
            parents.extend(
                page.iter()
                    .filter(|e| e.typ == FileType::Directory)
                    .map(|e| e.ino),
            );
        }
    }
    let flags = RenameFlags(RenameFlags::RESTORE | RenameFlags::NOREPLACE);
    let mut report = RestoreReport::default();
    // The names tried already (restored ones are gone; conflicts and failures stay).
    let mut tried: HashSet<Vec<u8>> = HashSet::new();
    if put_back {
        // Directories first, top down — each into a live directory while it is still
        // empty, so that a directory quota over its destination knows its usage; then
        // what they held goes into them.
        loop {
            let mut moved = 0;
            let mut pages = DirPages::new(dir);
            while let Some(page) = pages.next(meta).await? {
                for e in page.iter().filter(|e| e.typ == FileType::Directory) {
                    let Some((to, name)) = trash::parse_entry_name(&e.name) else {
                        continue;
                    };
                    let live = meta
                        .getattr(to)
                        .await
                        .is_ok_and(|a| !trash::is_deleted_dir(&a));
                    if !live || tried.contains(&e.name) {
                        continue;
                    }
                    tried.insert(e.name.clone());
                    match meta.rename(&ctx, dir, &e.name, to, name, flags).await {
                        Ok(()) => {
                            report.restored += 1;
                            moved += 1;
                        }
                        Err(MetaError::Exists) => report.conflicts += 1,
                        Err(err) => {
                            tracing::warn!(name = %String::from_utf8_lossy(&e.name), error = %err, "restoring a trash entry failed");
                            report.failed += 1;
                        }
                    }
                }
            }
            if moved == 0 {
                break;
            }
        }
    }
    let mut pages = DirPages::new(dir);
    while let Some(page) = pages.next(meta).await? {
        for e in page {
            if tried.contains(&e.name) {
                continue;
            }
            let Some((to, name)) = trash::parse_entry_name(&e.name) else {
                tracing::warn!(name = %String::from_utf8_lossy(&e.name), "not a trash entry");
                report.failed += 1;
                continue;
            };
            if !put_back && !parents.contains(&to) {
                report.need_put_back += 1;
                continue;
            }
            match meta.rename(&ctx, dir, &e.name, to, name, flags).await {
                Ok(()) => report.restored += 1,
                Err(MetaError::Exists) => report.conflicts += 1,
                Err(err) => {
                    tracing::warn!(name = %String::from_utf8_lossy(&e.name), error = %err, "restoring a trash entry failed");
                    report.failed += 1;
                }
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use meta_api::testkit::model::ModelEngine;
    use meta_api::{Format, Timestamp, ROOT_INO};

    use super::*;

    #[tokio::test]
    async fn an_hour_directory_is_due_a_day_and_two_hours_after_its_hour() {
        let meta = ModelEngine::unformatted();
        let mut format = Format::new("t", "00000000-0000-4000-8000-000000000000", "mem", "");
        format.trash_days = 1;
        meta.init(&format, false).await.unwrap();
        let ctx = Context::root();
        meta.mknod(&ctx, ROOT_INO, b"f", FileType::Regular, 0o644, 0)
            .await
            .unwrap();
        meta.unlink(&ctx, ROOT_INO, b"f").await.unwrap();
        let now = Timestamp::now().sec;
        let hour_end = now - now.rem_euclid(3600) + 3600;
        let at = |h: i64| hour_end + h * 3600;
        // Up to the end of the hour, plus 25 hours: kept.
        assert_eq!(clean_hours(&meta, at(25), 1, false).await.unwrap().hours, 0);
        assert_eq!(clean_hours(&meta, now, 0, false).await.unwrap().hours, 0);
        assert!(meta.deleted_files(10).await.unwrap().is_empty());
        let done = clean_hours(&meta, at(25) + 1, 1, false).await.unwrap();
        assert_eq!((done.hours, done.entries), (1, 1));
        assert_eq!(meta.deleted_files(10).await.unwrap().len(), 1);
        assert!(meta
            .readdir(&ctx, TRASH_INO, None, 10, false)
            .await
            .unwrap()
            .is_empty());
    }
}
