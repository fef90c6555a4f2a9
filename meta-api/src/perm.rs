//! POSIX permission logic shared by every engine: access checks, sticky directories,
//! ownership of new inodes, and the rules of `chmod`/`chown`/`utimens`.

use crate::{access, Attr, Context, FileType, MetaError, Result, SetAttr, SetTime, Timestamp};

const S_ISUID: u16 = 0o4000;
const S_ISGID: u16 = 0o2000;
const S_ISVTX: u16 = 0o1000;

/// The permission triplet (`rwx` as 0..=7) that applies to `ctx` for `attr`.
fn triplet(ctx: &Context, attr: &Attr) -> u8 {
    let m = attr.mode;
    if ctx.uid == attr.uid {
        ((m >> 6) & 7) as u8
    } else if ctx.in_group(attr.gid) {
        ((m >> 3) & 7) as u8
    } else {
        (m & 7) as u8
    }
}

/// Checks that `ctx` may access `attr` with `mask` (a combination of [`access`] bits).
/// Root may read and write anything and execute anything with an execute bit (or a directory).
pub fn check_access(ctx: &Context, attr: &Attr, mask: u8) -> Result<()> {
    if mask == 0 {
        return Ok(());
    }
    if ctx.is_root() {
        let needs_x = mask & access::X != 0;
        if needs_x && attr.typ != FileType::Directory && attr.mode & 0o111 == 0 {
            return Err(MetaError::PermissionDenied);
        }
        return Ok(());
    }
    if triplet(ctx, attr) & mask == mask {
        Ok(())
    } else {
        Err(MetaError::PermissionDenied)
    }
}

/// Checks that `ctx` may remove or rename the entry for `victim` in directory `dir`:
/// write and search permission on `dir`, and in a sticky directory ownership of either
/// the directory or the victim (`EPERM` otherwise, as Linux).
pub fn check_remove(ctx: &Context, dir: &Attr, victim: &Attr) -> Result<()> {
    check_access(ctx, dir, access::W | access::X)?;
    if dir.mode & S_ISVTX != 0 && !ctx.is_root() && ctx.uid != dir.uid && ctx.uid != victim.uid {
        return Err(MetaError::NotPermitted);
    }
    Ok(())
}

/// The mode and group of an inode created by `ctx` in `parent` with requested `mode`:
/// the umask applies (not to symlinks), the group comes from a setgid parent, and new
/// directories inherit the setgid bit.
pub fn new_inode_owner(ctx: &Context, parent: &Attr, typ: FileType, mode: u16) -> (u16, u32) {
    let mut mode = if typ == FileType::Symlink {
        0o777
    } else {
        mode & 0o7777 & !(ctx.umask & 0o777)
    };
    let gid = if parent.mode & S_ISGID != 0 {
        if typ == FileType::Directory {
            mode |= S_ISGID;
        } else if !ctx.is_root() && !ctx.in_group(parent.gid) {
            // Linux drops S_ISGID on a file whose creator is not in the inherited group.
            mode &= !S_ISGID;
        }
        parent.gid
    } else {
        ctx.gid
    };
    (mode, gid)
}

/// Applies the non-size fields of `set` to `cur` under POSIX rules, returning the new
/// attributes (ctime updated when anything changed). `now` is the engine's clock.
pub fn apply_setattr(ctx: &Context, cur: &Attr, set: &SetAttr, now: Timestamp) -> Result<Attr> {
    let mut a = cur.clone();
    let owner = ctx.is_root() || ctx.uid == cur.uid;
    let mut changed = false;

    if set.uid.is_some() || set.gid.is_some() {
        let new_uid = set.uid.unwrap_or(cur.uid);
        let new_gid = set.gid.unwrap_or(cur.gid);
        if !ctx.is_root() {
            // Only root gives files away; the owner may pick one of their own groups.
            if new_uid != cur.uid {
                return Err(MetaError::NotPermitted);
            }
            if new_gid != cur.gid && (ctx.uid != cur.uid || !ctx.in_group(new_gid)) {
                return Err(MetaError::NotPermitted);
            }
            if set.uid.is_some() && ctx.uid != cur.uid {
                return Err(MetaError::NotPermitted);
            }
        }
        a.uid = new_uid;
        a.gid = new_gid;
        if cur.typ != FileType::Directory {
            // chown clears setuid, and setgid when it means "group executable".
            a.mode &= !S_ISUID;
            if a.mode & 0o010 != 0 {
                a.mode &= !S_ISGID;
            }
        }
        changed = true;
    }

    if let Some(mode) = set.mode {
        if !owner {
            return Err(MetaError::NotPermitted);
        }
        let mut mode = mode & 0o7777;
        if !ctx.is_root() && !ctx.in_group(a.gid) {
            mode &= !S_ISGID;
        }
        if !ctx.is_root() && cur.typ != FileType::Directory && mode & S_ISVTX != 0 {
            // Unprivileged users cannot set the sticky bit on files (BSD rule Linux keeps for ext4 et al. off; harmless either way).
        }
        a.mode = mode;
        changed = true;
    }

    for (which, target) in [(set.atime, &mut a.atime), (set.mtime, &mut a.mtime)] {
        match which {
            None => {}
            Some(SetTime::Now) => {
                if !owner {
                    check_access(ctx, cur, access::W).map_err(|_| MetaError::PermissionDenied)?;
                }
                *target = now;
                changed = true;
            }
            Some(SetTime::At(t)) => {
                if !owner {
                    return Err(MetaError::NotPermitted);
                }
                *target = t;
                changed = true;
            }
        }
    }

    if let Some(flags) = set.flags {
        if !ctx.is_root() {
            return Err(MetaError::NotPermitted);
        }
        a.flags = flags;
        changed = true;
    }

    if changed {
        a.ctime = now;
    }
    Ok(a)
}

/// Clears setuid, and setgid when group-executable, after a write by a non-root caller,
/// as Linux does. Returns whether anything changed.
pub fn clear_suid_on_write(ctx: &Context, attr: &mut Attr) -> bool {
    if ctx.is_root() || attr.typ != FileType::Regular {
        return false;
    }
    let before = attr.mode;
    attr.mode &= !S_ISUID;
    if attr.mode & 0o010 != 0 {
        attr.mode &= !S_ISGID;
    }
    before != attr.mode
}

/// The access bits an `open(2)` with `flags` needs (`O_TRUNC` needs write).
pub fn open_mask(flags: i32) -> u8 {
    let mut m = match flags & libc::O_ACCMODE {
        libc::O_RDONLY => access::R,
        libc::O_WRONLY => access::W,
        _ => access::R | access::W,
    };
    if flags & libc::O_TRUNC != 0 {
        m |= access::W;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(mode: u16, uid: u32, gid: u32) -> Attr {
        Attr::new(FileType::Regular, mode, uid, gid, Timestamp::new(1, 0))
    }

    #[test]
    fn owner_group_other_and_root() {
        let a = file(0o640, 10, 20);
        assert!(check_access(&Context::new(10, 1), &a, access::R | access::W).is_ok());
        assert!(check_access(&Context::new(11, 20), &a, access::R).is_ok());
        assert!(check_access(&Context::new(11, 20), &a, access::W).is_err());
        let mut sup = Context::new(11, 1);
        sup.gids = vec![20];
        assert!(check_access(&sup, &a, access::R).is_ok());
        assert!(check_access(&Context::new(12, 1), &a, access::R).is_err());
        assert!(check_access(&Context::root(), &a, access::R | access::W).is_ok());
        assert!(check_access(&Context::root(), &a, access::X).is_err());
        // The owner triplet applies even when group bits would allow more.
        let b = file(0o070, 10, 20);
        assert!(check_access(&Context::new(10, 20), &b, access::R).is_err());
    }

    #[test]
    fn sticky_directory() {
        let dir = Attr::new(FileType::Directory, 0o1777, 0, 0, Timestamp::new(1, 0));
        let victim = file(0o644, 10, 10);
        assert!(check_remove(&Context::new(10, 10), &dir, &victim).is_ok());
        assert!(matches!(
            check_remove(&Context::new(11, 10), &dir, &victim),
            Err(MetaError::NotPermitted)
        ));
        assert!(check_remove(&Context::root(), &dir, &victim).is_ok());
    }

    #[test]
    fn setgid_inheritance_and_umask() {
        let parent = Attr::new(FileType::Directory, 0o2775, 0, 50, Timestamp::new(1, 0));
        let mut ctx = Context::new(10, 10);
        ctx.umask = 0o022;
        assert_eq!(
            new_inode_owner(&ctx, &parent, FileType::Directory, 0o777),
            (0o2755, 50)
        );
        assert_eq!(
            new_inode_owner(&ctx, &parent, FileType::Regular, 0o666),
            (0o644, 50)
        );
        assert_eq!(
            new_inode_owner(&ctx, &parent, FileType::Symlink, 0o600),
            (0o777, 50)
        );
    }

    #[test]
    fn chown_rules() {
        let a = file(0o6755, 10, 10);
        let now = Timestamp::new(5, 0);
        let mut ctx = Context::new(10, 10);
        ctx.gids = vec![20];
        let b = apply_setattr(&ctx, &a, &SetAttr::new().gid(20), now).unwrap();
        assert_eq!(b.gid, 20);
        assert_eq!(b.mode, 0o0755, "suid and group-exec sgid cleared on chown");
        assert_eq!(b.ctime, now);
        assert!(matches!(
            apply_setattr(&ctx, &a, &SetAttr::new().gid(30), now),
            Err(MetaError::NotPermitted)
        ));
        assert!(matches!(
            apply_setattr(&ctx, &a, &SetAttr::new().uid(11), now),
            Err(MetaError::NotPermitted)
        ));
        assert!(matches!(
            apply_setattr(&Context::new(11, 10), &a, &SetAttr::new().mode(0o777), now),
            Err(MetaError::NotPermitted)
        ));
        let c = apply_setattr(&Context::root(), &a, &SetAttr::new().uid(11), now).unwrap();
        assert_eq!(c.uid, 11);
    }
}
