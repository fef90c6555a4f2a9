//! JuiceFS's inode flags (`chattr +i` / `chattr +a`) and the rules they impose.
//!
//! Every engine calls these checks at the point of its transaction where it holds the
//! attributes they need; the rules are JuiceFS's (and Linux's): an **immutable** inode
//! cannot be changed, renamed, linked or written, and nothing can be added to or removed
//! from an immutable directory; an **append-only** inode can only be opened for writing
//! with `O_APPEND`, cannot be truncated, punched, renamed, linked or removed, and entries
//! cannot be removed from an append-only directory (they can be added). A violation is
//! `NotPermitted` (`EPERM`).

use crate::{Attr, FallocMode, MetaError, Result, SetAttr};

/// The inode cannot be changed (JuiceFS `FlagImmutable`).
pub const IMMUTABLE: u8 = 1;
/// The file can only be appended to (JuiceFS `FlagAppend`).
pub const APPEND: u8 = 2;

impl Attr {
    /// Whether the inode is immutable.
    pub fn is_immutable(&self) -> bool {
        self.flags & IMMUTABLE != 0
    }

    /// Whether the inode is append-only.
    pub fn is_append_only(&self) -> bool {
        self.flags & APPEND != 0
    }

    /// Whether the inode is immutable or append-only: it cannot be removed, renamed or
    /// linked, and its existing bytes and extended attributes cannot change.
    pub fn is_locked(&self) -> bool {
        self.flags & (IMMUTABLE | APPEND) != 0
    }
}

fn deny(denied: bool) -> Result<()> {
    if denied {
        Err(MetaError::NotPermitted)
    } else {
        Ok(())
    }
}

/// Creating an entry (mknod, mkdir, symlink) in `dir`.
pub fn check_create(dir: &Attr) -> Result<()> {
    deny(dir.is_immutable())
}

/// Removing the entry of `victim` (when known) from `dir` (unlink, rmdir).
pub fn check_remove(dir: &Attr, victim: Option<&Attr>) -> Result<()> {
    deny(dir.is_locked() || victim.is_some_and(Attr::is_locked))
}

/// A new hard link to `inode` in `dir`.
pub fn check_link(dir: &Attr, inode: &Attr) -> Result<()> {
    deny(dir.is_immutable() || inode.is_locked())
}

/// Moving `inode` out of `src_dir` into `dst_dir`, replacing `target` when there is one.
pub fn check_rename(
    src_dir: &Attr,
    inode: &Attr,
    dst_dir: &Attr,
    target: Option<&Attr>,
) -> Result<()> {
    deny(
        src_dir.is_locked()
            || inode.is_locked()
            || dst_dir.is_immutable()
            || target.is_some_and(Attr::is_locked),
    )
}

/// Opening `attr` with `open(2)` `flags` (`O_TRUNC` counts as a write).
pub fn check_open(attr: &Attr, flags: i32) -> Result<()> {
    let truncates = flags & libc::O_TRUNC != 0;
    let writes = flags & (libc::O_WRONLY | libc::O_RDWR) != 0 || truncates;
    if writes && attr.is_immutable() {
        return Err(MetaError::NotPermitted);
    }
    deny(attr.is_append_only() && (truncates || (writes && flags & libc::O_APPEND == 0)))
}

/// Changing the attributes of `cur` with `set`: only root's change of the flags
/// themselves touches an immutable inode; an append-only file cannot be resized.
pub fn check_setattr(cur: &Attr, set: &SetAttr) -> Result<()> {
    let only_flags = set.flags.is_some()
        && set.mode.is_none()
        && set.uid.is_none()
        && set.gid.is_none()
        && set.atime.is_none()
        && set.mtime.is_none()
        && set.size.is_none();
    if cur.is_immutable() && !only_flags {
        return Err(MetaError::NotPermitted);
    }
    deny(cur.is_append_only() && set.size.is_some())
}

/// Setting the length of `attr` (truncate, `O_TRUNC`).
pub fn check_truncate(attr: &Attr) -> Result<()> {
    deny(attr.is_locked())
}

/// `fallocate` with `mode` on `attr`: an append-only file may only be extended.
pub fn check_fallocate(attr: &Attr, mode: FallocMode) -> Result<()> {
    deny(attr.is_immutable() || (attr.is_append_only() && mode.0 & !FallocMode::KEEP_SIZE != 0))
}

/// Writing into `dst` by `copy_file_range`.
pub fn check_copy_into(dst: &Attr) -> Result<()> {
    deny(dst.is_locked())
}

/// Setting or removing an extended attribute of `attr`.
pub fn check_xattr_change(attr: &Attr) -> Result<()> {
    deny(attr.is_locked())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FileType;

    fn with(flags: u8) -> Attr {
        let mut a = Attr::new(FileType::Regular, 0o644, 0, 0, crate::Timestamp::new(0, 0));
        a.flags = flags;
        a
    }

    #[test]
    fn open_rules() {
        let ro = libc::O_RDONLY;
        let app = libc::O_WRONLY | libc::O_APPEND;
        assert!(check_open(&with(IMMUTABLE), ro).is_ok());
        assert!(check_open(&with(IMMUTABLE), app).is_err());
        assert!(check_open(&with(APPEND), ro).is_ok());
        assert!(check_open(&with(APPEND), app).is_ok());
        assert!(check_open(&with(APPEND), libc::O_WRONLY).is_err());
        assert!(check_open(&with(APPEND), app | libc::O_TRUNC).is_err());
        assert!(check_open(&with(0), libc::O_RDWR | libc::O_TRUNC).is_ok());
    }

    #[test]
    fn setattr_rules() {
        let flags_only = SetAttr::new().flags(0);
        assert!(check_setattr(&with(IMMUTABLE), &flags_only).is_ok());
        assert!(check_setattr(&with(IMMUTABLE), &SetAttr::new().mode(0o600)).is_err());
        assert!(check_setattr(&with(APPEND), &SetAttr::new().mode(0o600)).is_ok());
        assert!(check_setattr(&with(APPEND), &SetAttr::new().size(0)).is_err());
    }

    #[test]
    fn directory_rules() {
        let (plain, imm, app) = (with(0), with(IMMUTABLE), with(APPEND));
        assert!(check_create(&app).is_ok());
        assert!(check_create(&imm).is_err());
        assert!(check_remove(&app, Some(&plain)).is_err());
        assert!(check_remove(&plain, Some(&app)).is_err());
        assert!(check_remove(&plain, None).is_ok());
        assert!(check_link(&app, &plain).is_ok());
        assert!(check_link(&plain, &imm).is_err());
        assert!(check_rename(&plain, &plain, &app, None).is_ok());
        assert!(check_rename(&app, &plain, &plain, None).is_err());
        assert!(check_rename(&plain, &plain, &plain, Some(&imm)).is_err());
    }
}
