//! Removing a whole tree (`rm -r`, `juicefs rmr`) on any engine: the walk is written once
//! here, the removals are the engine's batches ([`MetaEngine::unlink_many`]).
//!
//! Every entry is removed with the checks `rm -r` would meet — listing a directory needs
//! read permission, removing from it write and search permission and the sticky bit's
//! rule — and with the trash's rules ([`crate::trash`]): a volume with a trash moves what
//! it removes there. Memory follows the depth of the tree, not its size: each directory
//! being emptied holds one page of names and a cursor.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Context, FileType, Ino, MetaEngine, MetaError, Result};

/// Entries listed, and handed to [`MetaEngine::unlink_many`], at a time.
pub const REMOVE_PAGE: usize = 1000;

/// What [`remove_tree`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemovedTree {
    /// Entries that were not directories (files, links, special files).
    pub files: u64,
    /// Directories, the top one included.
    pub dirs: u64,
}

/// A directory being emptied.
struct Frame {
    parent: Ino,
    name: Vec<u8>,
    ino: Ino,
    /// The last name listed: the next page starts after it.
    after: Option<Vec<u8>>,
    /// Whether the listing went round once more from the start (entries added behind the
    /// cursor meanwhile).
    again: bool,
}

/// Removes entry `name` of `parent` and, if it is a directory, everything below it, as
/// `ctx`. `progress` counts the entries removed as they go. The first failure stops the
/// walk and is returned (what was removed before stays removed); an entry another client
/// removed meanwhile is no failure.
pub async fn remove_tree(
    e: &dyn MetaEngine,
    ctx: &Context,
    parent: Ino,
    name: &[u8],
    progress: &AtomicU64,
) -> Result<RemovedTree> {
    let top = e.lookup(ctx, parent, name).await?;
    if top.attr.typ != FileType::Directory {
        e.unlink(ctx, parent, name).await?;
        progress.fetch_add(1, Ordering::Relaxed);
        return Ok(RemovedTree { files: 1, dirs: 0 });
    }
    empty_frames(
        e,
        ctx,
        Frame {
            parent,
            name: name.to_vec(),
            ino: top.ino,
            after: None,
            again: false,
        },
        true,
        progress,
    )
    .await
}

/// Removes everything below directory `ino`, which stays (empty), as `ctx`; as
/// [`remove_tree`] otherwise. A directory with no entry (a detached clone) can be emptied.
pub async fn empty_dir(
    e: &dyn MetaEngine,
    ctx: &Context,
    ino: Ino,
    progress: &AtomicU64,
) -> Result<RemovedTree> {
    let top = Frame {
        parent: ino,
        name: Vec::new(),
        ino,
        after: None,
        again: false,
    };
    empty_frames(e, ctx, top, false, progress).await
}

/// The walk of [`remove_tree`] and [`empty_dir`] from directory `top`, removed at the end
/// when `remove_top`.
async fn empty_frames(
    e: &dyn MetaEngine,
    ctx: &Context,
    top: Frame,
    remove_top: bool,
    progress: &AtomicU64,
) -> Result<RemovedTree> {
    let mut done = RemovedTree::default();
    let top_ino = top.ino;
    let mut stack = vec![top];
    while let Some(mut f) = stack.pop() {
        let page = e
            .readdir(ctx, f.ino, f.after.as_deref(), REMOVE_PAGE, false)
            .await?;
        let Some(last) = page.last() else {
            if f.after.is_some() && !f.again {
                f.after = None;
                f.again = true;
                stack.push(f);
                continue;
            }
            if f.ino == top_ino && !remove_top {
                continue;
            }
            match e.rmdir(ctx, f.parent, &f.name).await {
                Ok(()) | Err(MetaError::NotFound) => {}
                Err(err) => return Err(err),
            }
            done.dirs += 1;
            progress.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        f.after = Some(last.name.clone());
        let dir = f.ino;
        // Back under its subdirectories: they are emptied first, then its next page.
        stack.push(f);
        let mut files = Vec::new();
        for item in page {
            if item.typ == FileType::Directory {
                stack.push(Frame {
                    parent: dir,
                    name: item.name,
                    ino: item.ino,
                    after: None,
                    again: false,
                });
            } else {
                files.push(item.name);
            }
        }
        if !files.is_empty() {
            let n = e.unlink_many(ctx, dir, &files).await? as u64;
            done.files += n;
            progress.fetch_add(n, Ordering::Relaxed);
        }
    }
    Ok(done)
}
