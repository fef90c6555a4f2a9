//! Cloning files and directory trees in metadata only (`juicefs clone`): every entry gets
//! a new inode whose chunks list the source's slices, each slice one reference more; no
//! object is copied. The walk is written once here; each step is one transaction of the
//! engine ([`MetaEngine::clone_node`], [`MetaEngine::attach_dir`]).
//!
//! # The detached-node protocol (JuiceFS's, same records)
//!
//! A directory is cloned *detached*: its top node is created with a detached-node record
//! (`jfs_detached_node`, Redis `detachedNodes`, TKV `N{inode}`) and no entry, so nothing
//! of it is visible while its entries are cloned below it, one transaction each (each
//! reads the source entry and writes its clone, its references and its new parent's link
//! count and statistics together). The last transaction attaches it: the entry in the
//! destination, the parent's link count, and the record gone. A failure removes the
//! detached tree at once; a crash leaves it for the garbage collector, which removes
//! detached trees older than [`DETACHED_MAX_AGE_SECS`] ([`remove_old_detached`]), the
//! references they took included. Until then it is counted in the volume's usage, as in
//! JuiceFS. A file, symlink or special file is cloned in one transaction with its entry.
//!
//! # What a clone is
//!
//! - Attributes: by default the caller owns the clone, its mode loses the caller's umask
//!   and its times are now; with [`CloneOptions::preserve`] the owner, mode and times are
//!   the source's — the owner only for root (anyone else owns what they clone, and a
//!   set-user-ID or set-group-ID bit that would then name someone else is dropped).
//! - Extended attributes, POSIX ACLs (by id), symlink targets and the chunks come along;
//!   hard links do not (each name becomes its own file, as in JuiceFS).
//! - Permissions: reading the source needs read permission (and search on directories);
//!   the destination needs write and search permission on its parent, and the name must
//!   be free (`EEXIST`). Nothing is cloned into or out of the trash (`EPERM`).
//! - Quotas and limits: every node is charged to its owner and to the volume as it is
//!   created (`EDQUOT`, `ENOSPC` stop the clone, which is then removed); the directory
//!   quotas above the destination are charged with the whole tree when it is attached.
//! - Entries removed from the source while it is cloned are left out; entries added to
//!   it meanwhile may or may not be in the clone. Each entry's clone is its source at one
//!   instant.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::space::Usage;
use crate::{Attr, Context, FileType, Ino, MetaEngine, MetaError, Result, Timestamp};

/// Age after which the garbage collector removes a detached tree (JuiceFS: 24 hours).
pub const DETACHED_MAX_AGE_SECS: i64 = 24 * 3600;

/// Entries of a source directory listed at a time.
pub const CLONE_PAGE: usize = 1000;

/// How to clone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CloneOptions {
    /// Keep the source's owner (root only), mode and times (`juicefs clone --preserve`).
    pub preserve: bool,
}

impl CloneOptions {
    /// Sets [`CloneOptions::preserve`].
    pub fn preserve(mut self, preserve: bool) -> Self {
        self.preserve = preserve;
        self
    }
}

/// One step of a clone, for [`MetaEngine::clone_node`].
#[derive(Debug, Clone, Copy)]
pub struct CloneNode<'a> {
    /// The source inode.
    pub src: Ino,
    /// The directory the clone goes into: the destination's parent for the top of a
    /// clone, else a directory of the clone being built.
    pub parent: Ino,
    /// The clone's name in `parent`.
    pub name: &'a [u8],
    /// How to clone.
    pub opts: CloneOptions,
    /// Whether this is the top of the clone: a directory is then created detached (no
    /// entry, a detached-node record, parent 0 until it is attached); anything else gets
    /// its entry in `parent` with the checks of a create.
    pub top: bool,
}

/// What a whole clone made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cloned {
    /// The top of the clone.
    pub ino: Ino,
    /// Entries that are not directories.
    pub files: u64,
    /// Directories, the top one included.
    pub dirs: u64,
    /// Space and inodes the clone added to the volume.
    pub usage: Usage,
}

/// The permission bits a caller needs on a source of type `typ`: read, and search on a
/// directory (its entries are listed).
pub fn source_mask(typ: FileType) -> u8 {
    if typ == FileType::Directory {
        crate::access::R | crate::access::X
    } else {
        crate::access::R
    }
}

/// The attributes of the clone of a node with attributes `src`, made by `ctx` at `now` in
/// `parent` (0 for a detached top directory): see the module docs. A directory starts
/// with two links (its subdirectories add theirs as they are cloned); a file that had
/// hard links has one.
pub fn cloned_attr(
    src: &Attr,
    ctx: &Context,
    opts: CloneOptions,
    parent: Ino,
    now: Timestamp,
) -> Attr {
    let mut a = src.clone();
    a.parent = parent;
    if opts.preserve {
        if !ctx.is_root() && (a.uid != ctx.uid || !ctx.in_group(a.gid)) {
            a.uid = ctx.uid;
            a.gid = ctx.gid;
            a.mode &= !(crate::perm::S_ISUID | crate::perm::S_ISGID);
        }
    } else {
        a.uid = ctx.uid;
        a.gid = ctx.gid;
        a.mode &= !ctx.umask;
        a.atime = now;
        a.mtime = now;
        a.ctime = now;
    }
    a.nlink = if a.typ == FileType::Directory { 2 } else { 1 };
    a
}

/// The checks of a clone's top before any transaction: the name (`EINVAL`,
/// `ENAMETOOLONG`), and nothing into or out of the trash (`EPERM`).
pub fn check_top(src: Ino, parent: Ino, name: &[u8]) -> Result<()> {
    crate::name::validate_name(name)?;
    if crate::trash::is_trash(src) {
        return Err(MetaError::NotPermitted);
    }
    crate::trash::check_create(parent, name)
}

/// A source directory being cloned into `dst`.
struct Frame {
    src: Ino,
    dst: Ino,
    /// The last name listed: the next page starts after it.
    after: Option<Vec<u8>>,
}

/// Clones `src` as entry `name` of directory `parent`, as `ctx` (see the module docs).
/// `progress` counts the entries cloned as they go. On failure nothing of the clone is
/// left visible: a detached tree is removed before the error returns (or, if that fails
/// too, left to the garbage collector).
pub async fn clone_tree(
    e: &dyn MetaEngine,
    ctx: &Context,
    src: Ino,
    (parent, name): (Ino, &[u8]),
    opts: CloneOptions,
    progress: &AtomicU64,
) -> Result<Cloned> {
    check_top(src, parent, name)?;
    let top = e
        .clone_node(
            ctx,
            &CloneNode {
                src,
                parent,
                name,
                opts,
                top: true,
            },
        )
        .await?;
    progress.fetch_add(1, Ordering::Relaxed);
    let mut done = Cloned {
        ino: top.ino,
        ..Cloned::default()
    };
    done.usage.add_node(top.ino, length_of(&top.attr));
    if top.attr.typ != FileType::Directory {
        done.files = 1;
        return Ok(done);
    }
    done.dirs = 1;
    let built = async {
        clone_below(e, ctx, src, top.ino, opts, progress, &mut done).await?;
        e.attach_dir(ctx, (parent, name), top.ino, done.usage).await
    }
    .await;
    match built {
        Ok(_) => Ok(done),
        Err(err) => {
            if let Err(e2) = remove_detached(e, top.ino).await {
                tracing::warn!(ino = top.ino, error = %e2,
                    "removing a failed clone failed; the garbage collector removes it later");
            }
            Err(err)
        }
    }
}

/// The length a node counts with in the usage: a regular file's, 0 for anything else.
fn length_of(a: &Attr) -> u64 {
    if a.typ == FileType::Regular {
        a.length
    } else {
        0
    }
}

/// Clones everything below source directory `src` into the (detached) clone `dst`.
async fn clone_below(
    e: &dyn MetaEngine,
    ctx: &Context,
    src: Ino,
    dst: Ino,
    opts: CloneOptions,
    progress: &AtomicU64,
    done: &mut Cloned,
) -> Result<()> {
    let mut stack = vec![Frame {
        src,
        dst,
        after: None,
    }];
    while let Some(mut f) = stack.pop() {
        let page = match e
            .readdir(ctx, f.src, f.after.as_deref(), CLONE_PAGE, false)
            .await
        {
            Ok(p) => p,
            // Removed (or replaced) since it was cloned: its clone stays empty.
            Err(MetaError::NotFound | MetaError::NotDir) if f.src != src => continue,
            Err(err) => return Err(err),
        };
        let Some(last) = page.last() else { continue };
        f.after = Some(last.name.clone());
        let fdst = f.dst;
        stack.push(f);
        for item in page {
            let step = CloneNode {
                src: item.ino,
                parent: fdst,
                name: &item.name,
                opts,
                top: false,
            };
            let made = match e.clone_node(ctx, &step).await {
                Ok(m) => m,
                // Removed from the source meanwhile: left out.
                Err(MetaError::NotFound) => continue,
                Err(err) => return Err(err),
            };
            progress.fetch_add(1, Ordering::Relaxed);
            done.usage.add_node(made.ino, length_of(&made.attr));
            if made.attr.typ == FileType::Directory {
                done.dirs += 1;
                stack.push(Frame {
                    src: item.ino,
                    dst: made.ino,
                    after: None,
                });
            } else {
                done.files += 1;
            }
        }
    }
    Ok(())
}

/// Removes detached tree `ino` (a clone that failed or whose client crashed): its entries
/// for real (never into the trash), then its top node and record. Returns whether there
/// was such a tree.
pub async fn remove_detached(e: &dyn MetaEngine, ino: Ino) -> Result<bool> {
    let mut ctx = Context::root();
    ctx.skip_trash = true;
    match crate::tree::empty_dir(e, &ctx, ino, &AtomicU64::new(0)).await {
        Ok(_) | Err(MetaError::NotFound) => {}
        Err(err) => return Err(err),
    }
    e.drop_detached(ino).await
}

/// Removes the detached trees recorded before `before` (Unix seconds; the garbage
/// collector passes now − [`DETACHED_MAX_AGE_SECS`]); returns how many it removed. A
/// clone still being built by a live client is younger than that.
pub async fn remove_old_detached(e: &dyn MetaEngine, before: i64) -> Result<usize> {
    let mut n = 0;
    for (ino, added) in e.detached_nodes().await? {
        if added < before && remove_detached(e, ino).await? {
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preserve_keeps_the_owner_for_root_only() {
        let mut src = Attr::new(FileType::Regular, 0o6755, 0, 0, Timestamp::default());
        src.nlink = 3;
        let t = Timestamp { sec: 5, nsec: 0 };
        let root = Context::root();
        let a = cloned_attr(&src, &root, CloneOptions::default().preserve(true), 9, t);
        assert_eq!((a.uid, a.mode, a.nlink, a.parent), (0, 0o6755, 1, 9));
        assert_eq!(a.mtime, src.mtime);
        let alice = Context::new(1000, 1000);
        let a = cloned_attr(&src, &alice, CloneOptions::default().preserve(true), 9, t);
        assert_eq!((a.uid, a.gid, a.mode), (1000, 1000, 0o755));
        let mut ctx = Context::new(1000, 1000);
        ctx.umask = 0o022;
        src.mode = 0o777;
        let a = cloned_attr(&src, &ctx, CloneOptions::default(), 9, t);
        assert_eq!((a.uid, a.mode, a.mtime), (1000, 0o755, t));
    }

    #[test]
    fn the_top_is_checked() {
        assert!(matches!(
            check_top(5, crate::ROOT_INO, b".trash"),
            Err(MetaError::NotPermitted)
        ));
        assert!(matches!(
            check_top(crate::TRASH_INO, crate::ROOT_INO, b"x"),
            Err(MetaError::NotPermitted)
        ));
        assert!(check_top(5, crate::ROOT_INO, b"a/b").is_err());
        assert!(check_top(5, crate::ROOT_INO, b"x").is_ok());
    }
}
