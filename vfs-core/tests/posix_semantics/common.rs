//! Helpers shared by the POSIX scenarios.

use meta_api::{Attr, Context, Ino, Timestamp};
use vfs_core::{Vfs, VfsError};

use crate::support::root;

/// The attributes of `ino` as root sees them.
pub async fn attr(vfs: &Vfs, ino: Ino) -> Attr {
    vfs.getattr(&root(), ino).await.unwrap()
}

/// A non-root caller with a zero umask.
pub fn user(uid: u32, gid: u32) -> Context {
    Context::new(uid, gid)
}

/// The errno of a failed call; panics on success.
pub fn errno<T: std::fmt::Debug>(r: Result<T, VfsError>) -> i32 {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.errno(),
    }
}

/// Which of (atime, mtime, ctime) moved forward from `before` to `after`; a time that went
/// backwards is a failure of its own.
pub fn moved(before: &Attr, after: &Attr) -> (bool, bool, bool) {
    let step = |b: Timestamp, a: Timestamp, what: &str| {
        assert!(a >= b, "{what} went backwards: {b:?} -> {a:?}");
        a > b
    };
    (
        step(before.atime, after.atime, "atime"),
        step(before.mtime, after.mtime, "mtime"),
        step(before.ctime, after.ctime, "ctime"),
    )
}

/// Only the status changed.
pub const C: (bool, bool, bool) = (false, false, true);
/// Contents (or entries) and status changed.
pub const MC: (bool, bool, bool) = (false, true, true);
/// Nothing changed.
pub const NONE: (bool, bool, bool) = (false, false, false);
/// Only the access time changed.
pub const A: (bool, bool, bool) = (true, false, false);
