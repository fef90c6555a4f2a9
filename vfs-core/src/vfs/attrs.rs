//! Attributes: getattr/setattr with this client's uncommitted writes shown, access checks,
//! volume usage, access-time updates, dropping setuid/setgid after writes, and extended
//! attributes.

use std::sync::Mutex;

use meta_api::{
    perm, Attr, Context, FileType, Ino, MetaError, SetAttr, SetTime, StatFs, Timestamp,
    MAX_FILE_SIZE, MAX_XATTR_NAME_LEN, MAX_XATTR_VALUE_LEN,
};

use super::Vfs;
use crate::{AtimeMode, Result, VfsError};

/// An inode's times as a handle last saw them: enough to decide whether a read updates
/// the access time without asking the engine.
#[derive(Debug, Clone, Copy)]
pub(super) struct SeenTimes {
    atime: Timestamp,
    mtime: Timestamp,
    ctime: Timestamp,
}

impl SeenTimes {
    fn of(attr: &Attr) -> SeenTimes {
        SeenTimes {
            atime: attr.atime,
            mtime: attr.mtime,
            ctime: attr.ctime,
        }
    }
}

impl Vfs {
    /// Makes attributes of a file open here reflect its uncommitted writes (length, times).
    pub(super) fn patch_attr(&self, ino: Ino, attr: &mut Attr) {
        if attr.typ != FileType::Regular {
            return;
        }
        if let Some(of) = self.inner.files.get(ino) {
            if of.state.has_pending() {
                attr.length = attr.length.max(of.state.length());
                let written = of.state.written();
                attr.mtime = attr.mtime.max(written);
                attr.ctime = attr.ctime.max(written);
            }
        }
    }

    /// What a handle of an inode with `attr` decides access-time updates on (`None`:
    /// never, for [`AtimeMode::NoAtime`] or `O_NOATIME`).
    pub(super) fn atime_tracker(&self, attr: &Attr, noatime: bool) -> Option<Mutex<SeenTimes>> {
        (self.inner.opts.atime_mode != AtimeMode::NoAtime && !noatime)
            .then(|| Mutex::new(SeenTimes::of(attr)))
    }

    /// Updates the access time of `ino` after a read or listing when the policy asks for it.
    /// The decision uses the times `seen` by the handle (and `written`, this client's last
    /// write), so a read that changes nothing costs no metadata transaction. Best effort:
    /// a failure is logged, and not retried before the next change.
    pub(super) async fn touch_atime(&self, ino: Ino, seen: &Mutex<SeenTimes>, written: Timestamp) {
        let now = Timestamp::now();
        let due = {
            let mut s = seen.lock().unwrap_or_else(|p| p.into_inner());
            s.mtime = s.mtime.max(written);
            atime_due(self.inner.opts.atime_mode, &s, now)
        };
        if !due {
            return;
        }
        let set = SetAttr::new().atime(SetTime::At(now)).keep_ctime();
        let r = self.inner.meta.setattr(&Context::root(), ino, &set).await;
        let mut s = seen.lock().unwrap_or_else(|p| p.into_inner());
        match r {
            Ok(a) => *s = SeenTimes::of(&a),
            Err(e) => {
                tracing::debug!(ino, error = %e, "access time not updated");
                s.atime = now;
            }
        }
    }

    /// Drops setuid, and setgid when group-executable, after `ctx` (not root) wrote or
    /// truncated file `ino` whose current attributes are `attr`, as Linux does; returns
    /// the attributes after it.
    pub(super) async fn drop_privs(&self, ctx: &Context, ino: Ino, mut attr: Attr) -> Result<Attr> {
        if !perm::clear_suid_on_write(ctx, &mut attr) {
            return Ok(attr);
        }
        // The writer need not own the file: the kernel drops the bits with its own rights.
        let set = SetAttr::new().mode(attr.mode);
        Ok(self.inner.meta.setattr(&Context::root(), ino, &set).await?)
    }

    /// The attributes of `ino` (including this client's uncommitted writes in the length).
    pub async fn getattr(&self, _ctx: &Context, ino: Ino) -> Result<Attr> {
        self.check_open()?;
        let mut a = self.inner.meta.getattr(ino).await?;
        self.patch_attr(ino, &mut a);
        Ok(a)
    }

    /// Changes attributes. A new `size` truncates or extends the file (and, by a caller
    /// other than root, drops setuid and group-executable setgid, as Linux does). Buffered
    /// writes of a file open here are written back first, so that they can neither land
    /// past a new end nor overwrite a modification time set explicitly.
    pub async fn setattr(&self, ctx: &Context, ino: Ino, set: &SetAttr) -> Result<Attr> {
        self.check_open()?;
        if set.size.is_some_and(|size| size > MAX_FILE_SIZE) {
            return Err(VfsError::FileTooBig);
        }
        let attr = match self.inner.files.get(ino) {
            Some(of) => {
                let mut w = of.writer.lock().await;
                w.flush().await?;
                let attr = self.inner.meta.setattr(ctx, ino, set).await?;
                if set.size.is_some() {
                    of.state.set_length(attr.length);
                    of.state.invalidate_all();
                }
                attr
            }
            None => self.inner.meta.setattr(ctx, ino, set).await?,
        };
        if set.size.is_some() && set.mode.is_none() {
            return self.drop_privs(ctx, ino, attr).await;
        }
        Ok(attr)
    }

    /// Checks that `ctx` may access `ino` with `mask` (`R_OK | W_OK | X_OK`, or `F_OK`
    /// for existence only).
    pub async fn access(&self, ctx: &Context, ino: Ino, mask: i32) -> Result<()> {
        self.check_open()?;
        if mask & !(libc::R_OK | libc::W_OK | libc::X_OK) != 0 {
            return Err(VfsError::InvalidArgument("unknown access mode bits"));
        }
        // The mask bits are the same as `access::{R, W, X}`; the engine consults POSIX ACLs.
        self.inner
            .meta
            .check_access(ctx, ino, (mask & 7) as u8)
            .await?;
        Ok(())
    }

    /// Volume usage as seen from `ino`: inside a directory quota (its own or an
    /// ancestor's), that quota's limits and usage where it sets them, as JuiceFS reports.
    pub async fn statfs(&self, _ctx: &Context, ino: Ino) -> Result<StatFs> {
        self.check_open()?;
        Ok(self.inner.meta.statfs_at(ino).await?)
    }

    /// The value of extended attribute `name` of `ino` (`ENODATA` if missing). Names are
    /// 1 to 255 bytes; others are `ERANGE`, as Linux's xattr calls answer. Reading checks
    /// what Linux checks ([`meta_api::xattr::read_rule`]): `user.*` needs read permission
    /// (and exists only on regular files and directories), `trusted.*` only for root.
    pub async fn getxattr(&self, ctx: &Context, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        use meta_api::xattr::{read_rule, ReadRule};
        self.check_open()?;
        check_xattr_name(name)?;
        let meta = &self.inner.meta;
        let hidden = |typ| read_rule(name, typ, ctx.is_root()) == ReadRule::Hidden;
        // The rule by name first (as for a regular file): the inode's type only matters
        // when the name needs read permission (user.*).
        match read_rule(name, FileType::Regular, ctx.is_root()) {
            ReadRule::Hidden => return Err(MetaError::NoAttr.into()),
            ReadRule::Anyone => {}
            ReadRule::NeedsRead => {
                // The check returns the attributes it read: one engine call gives the
                // type too, which hides user.* on other inodes before any permission.
                let typ = match meta.check_access(ctx, ino, meta_api::access::R).await {
                    Ok(attr) => attr.typ,
                    Err(MetaError::PermissionDenied) => {
                        let typ = meta.getattr(ino).await?.typ;
                        if !hidden(typ) {
                            return Err(MetaError::PermissionDenied.into());
                        }
                        typ
                    }
                    Err(e) => return Err(e.into()),
                };
                if hidden(typ) {
                    return Err(MetaError::NoAttr.into());
                }
            }
        }
        Ok(meta.getxattr(ino, name).await?)
    }

    /// Sets extended attribute `name`; `flags` are `XATTR_CREATE` / `XATTR_REPLACE`.
    /// Names are 1 to 255 bytes (`ERANGE` otherwise), values at most 64 KiB (`E2BIG`).
    pub async fn setxattr(
        &self,
        ctx: &Context,
        ino: Ino,
        name: &[u8],
        value: &[u8],
        flags: u32,
    ) -> Result<()> {
        self.check_open()?;
        check_xattr_name(name)?;
        if value.len() > MAX_XATTR_VALUE_LEN {
            return Err(VfsError::ValueTooLarge);
        }
        Ok(self
            .inner
            .meta
            .setxattr(ctx, ino, name, value, flags)
            .await?)
    }

    /// The names of the extended attributes of `ino` the caller may see (`trusted.*` only
    /// for root, as Linux lists them).
    pub async fn listxattr(&self, ctx: &Context, ino: Ino) -> Result<Vec<Vec<u8>>> {
        self.check_open()?;
        let mut names = self.inner.meta.listxattr(ino).await?;
        names.retain(|n| meta_api::xattr::listed(n, ctx.is_root()));
        Ok(names)
    }

    /// Removes extended attribute `name` (`ENODATA` if missing, `ERANGE` for a name that
    /// cannot be one).
    pub async fn removexattr(&self, ctx: &Context, ino: Ino, name: &[u8]) -> Result<()> {
        self.check_open()?;
        check_xattr_name(name)?;
        Ok(self.inner.meta.removexattr(ctx, ino, name).await?)
    }
}

/// Checks an extended attribute's name the way Linux's xattr system calls do: an empty
/// or over-long name is `ERANGE`.
fn check_xattr_name(name: &[u8]) -> Result<()> {
    if name.is_empty() || name.len() > MAX_XATTR_NAME_LEN {
        return Err(MetaError::Range.into());
    }
    Ok(())
}

/// Whether a read now should update the access time, under `mode`, of an inode whose
/// times are `seen` (Linux's `relatime` rule: when the access time is not after the
/// modification or change time, or is a day old).
fn atime_due(mode: AtimeMode, seen: &SeenTimes, now: Timestamp) -> bool {
    const DAY_SECS: i64 = 24 * 60 * 60;
    if now <= seen.atime {
        return false;
    }
    match mode {
        AtimeMode::NoAtime => false,
        AtimeMode::StrictAtime => true,
        _ => {
            seen.atime <= seen.mtime
                || seen.atime <= seen.ctime
                || now.sec.saturating_sub(seen.atime.sec) >= DAY_SECS
        }
    }
}

/// Whether permission bits `mode` hold what a write by a non-root caller drops: setuid,
/// or setgid with group execute.
pub(super) fn has_exec_privs(mode: u16) -> bool {
    mode & 0o4000 != 0 || mode & 0o2010 == 0o2010
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relatime_rule() {
        let t = |sec| Timestamp::new(sec, 0);
        let seen = |a, m, c| SeenTimes {
            atime: t(a),
            mtime: t(m),
            ctime: t(c),
        };
        let day = 24 * 60 * 60;
        let rel = AtimeMode::RelAtime;
        assert!(
            atime_due(rel, &seen(10, 10, 5), t(20)),
            "atime not after mtime"
        );
        assert!(
            atime_due(rel, &seen(10, 5, 12), t(20)),
            "atime before ctime"
        );
        assert!(
            !atime_due(rel, &seen(10, 5, 5), t(20)),
            "recent and after both"
        );
        assert!(!atime_due(rel, &seen(10, 5, 5), t(10 + day - 1)));
        assert!(atime_due(rel, &seen(10, 5, 5), t(10 + day)), "a day old");
        assert!(
            !atime_due(rel, &seen(30, 40, 40), t(30)),
            "never to the same time"
        );
        assert!(!atime_due(rel, &seen(30, 40, 40), t(20)), "never backwards");
        assert!(atime_due(AtimeMode::StrictAtime, &seen(10, 5, 5), t(11)));
        assert!(!atime_due(AtimeMode::NoAtime, &seen(10, 50, 50), t(100)));
        assert!(has_exec_privs(0o4644) && has_exec_privs(0o2070) && has_exec_privs(0o6755));
        assert!(!has_exec_privs(0o2644) && !has_exec_privs(0o1777) && !has_exec_privs(0o755));
    }
}
