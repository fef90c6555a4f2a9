//! POSIX permission logic shared by every engine: access checks, sticky directories,
//! ownership of new inodes, and the rules of `chmod`/`chown`/`utimens`.

use crate::acl::{self, Rule};
use crate::{access, Attr, Context, FileType, MetaError, Result, SetAttr, SetTime, Timestamp};

/// The set-user-ID bit.
pub const S_ISUID: u16 = 0o4000;
/// The set-group-ID bit.
pub const S_ISGID: u16 = 0o2000;
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
///
/// This looks at the mode bits only. An inode with an access ACL
/// ([`acl::rule_for_check`] says which) needs [`check_access_with`] and its rule.
pub fn check_access(ctx: &Context, attr: &Attr, mask: u8) -> Result<()> {
    check_access_with(ctx, attr, None, mask)
}

/// Checks that `ctx` may access `attr` with `mask`, consulting `rule`, the inode's access
/// ACL, when [`acl::rule_for_check`] names one (POSIX.1e, see [`Rule::allows`]); without
/// a rule, or when the check needs none, the mode bits decide. Root is treated as in
/// [`check_access`].
pub fn check_access_with(ctx: &Context, attr: &Attr, rule: Option<&Rule>, mask: u8) -> Result<()> {
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
    let allowed = match (acl::rule_for_check(attr), rule) {
        (Some(_), Some(rule)) => rule.allows(ctx, attr.uid, attr.gid, mask),
        _ => triplet(ctx, attr) & mask == mask,
    };
    if allowed {
        Ok(())
    } else {
        Err(MetaError::PermissionDenied)
    }
}

/// Checks that `ctx` may remove or rename the entry for `victim` in directory `dir`:
/// write and search permission on `dir`, and in a sticky directory ownership of either
/// the directory or the victim (`EPERM` otherwise, as Linux).
pub fn check_remove(ctx: &Context, dir: &Attr, victim: &Attr) -> Result<()> {
    check_remove_with(ctx, dir, None, victim)
}

/// [`check_remove`] with `dir_rule`, the directory's access ACL (see
/// [`check_access_with`]).
pub fn check_remove_with(
    ctx: &Context,
    dir: &Attr,
    dir_rule: Option<&Rule>,
    victim: &Attr,
) -> Result<()> {
    check_access_with(ctx, dir, dir_rule, access::W | access::X)?;
    if dir.mode & S_ISVTX != 0 && !ctx.is_root() && ctx.uid != dir.uid && ctx.uid != victim.uid {
        return Err(MetaError::NotPermitted);
    }
    Ok(())
}

/// The mode and group of an inode created by `ctx` in `parent` with requested `mode`:
/// the umask applies (not to symlinks), the group comes from a setgid parent, and new
/// directories inherit the setgid bit.
pub fn new_inode_owner(ctx: &Context, parent: &Attr, typ: FileType, mode: u16) -> (u16, u32) {
    let mode = if typ == FileType::Symlink {
        0o777
    } else {
        mode & 0o7777 & !(ctx.umask & 0o777)
    };
    setgid_rules(ctx, parent, typ, mode)
}

/// The mode, group and ACLs of an inode created by `ctx` in `parent` with requested
/// `mode`, where `parent_default` is the parent's default ACL (the rule of
/// `parent.default_acl`, `None` when it has none).
///
/// With a default ACL (not for symlinks) the umask does not apply: a minimal default ACL
/// limits the mode bits, any other becomes the new inode's access ACL limited by the
/// requested mode ([`Rule::child_access`]), and a new directory also gets the parent's
/// default ACL. The setgid rules of [`new_inode_owner`] apply either way.
pub fn new_inode_with_acl(
    ctx: &Context,
    parent: &Attr,
    parent_default: Option<&Rule>,
    typ: FileType,
    mode: u16,
) -> NewInode {
    let rule = match parent_default {
        Some(rule) if parent.default_acl != 0 && typ != FileType::Symlink => rule,
        _ => {
            let (mode, gid) = new_inode_owner(ctx, parent, typ, mode);
            return NewInode {
                mode,
                gid,
                access_rule: None,
                default_acl: 0,
                flags: parent.flags & crate::trash::SKIP_TRASH,
            };
        }
    };
    let mode = mode & 0o7777;
    let (mode, access_rule) = if rule.is_minimal() {
        (mode & (0o7000 | rule.mode()), None)
    } else {
        let child = rule.child_access(mode);
        ((mode & 0o7000) | child.mode(), Some(child))
    };
    let (mode, gid) = setgid_rules(ctx, parent, typ, mode);
    NewInode {
        mode,
        gid,
        access_rule,
        default_acl: if typ == FileType::Directory {
            parent.default_acl
        } else {
            0
        },
        flags: parent.flags & crate::trash::SKIP_TRASH,
    }
}

/// What [`new_inode_with_acl`] decides for a new inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInode {
    /// Permission bits (`0o7777`).
    pub mode: u16,
    /// Group.
    pub gid: u32,
    /// The access ACL to store for it (its id goes to [`Attr::access_acl`]).
    pub access_rule: Option<Rule>,
    /// Its default ACL id (a new directory inherits its parent's).
    pub default_acl: u32,
    /// Its inode flags: the parent's [`crate::trash::SKIP_TRASH`], as JuiceFS inherits it.
    pub flags: u8,
}

/// The group of a new inode and the setgid bit of its mode, from a setgid `parent`.
fn setgid_rules(ctx: &Context, parent: &Attr, typ: FileType, mut mode: u16) -> (u16, u32) {
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
/// attributes (ctime updated when anything changed, unless [`SetAttr::keep_ctime`]).
/// `now` is the engine's clock.
pub fn apply_setattr(ctx: &Context, cur: &Attr, set: &SetAttr, now: Timestamp) -> Result<Attr> {
    apply_setattr_with(ctx, cur, None, set, now).map(|(a, _)| a)
}

/// [`apply_setattr`] for an inode whose access ACL is `rule` (the rule of
/// `cur.access_acl`, `None` when it has none): access checks consult it, and a mode change
/// rewrites it ([`Rule::with_mode`]). Returns the new attributes and, when the ACL
/// changed, the new rule, which the engine stores and whose id it puts in
/// [`Attr::access_acl`].
pub fn apply_setattr_with(
    ctx: &Context,
    cur: &Attr,
    rule: Option<&Rule>,
    set: &SetAttr,
    now: Timestamp,
) -> Result<(Attr, Option<Rule>)> {
    let mut a = cur.clone();
    let mut new_rule = None;
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
            // Even a chown to the current owner or group is the owner's alone.
            if ctx.uid != cur.uid {
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
        if let (Some(rule), true) = (rule, cur.access_acl != 0) {
            let r = rule.with_mode(mode);
            a.mode = (mode & 0o7000) | r.mode();
            if &r != rule {
                new_rule = Some(r);
            }
        }
        changed = true;
    }

    for (which, target) in [(set.atime, &mut a.atime), (set.mtime, &mut a.mtime)] {
        match which {
            None => {}
            Some(SetTime::Now) => {
                if !owner {
                    check_access_with(ctx, cur, rule, access::W)
                        .map_err(|_| MetaError::PermissionDenied)?;
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

    if changed && !set.keep_ctime {
        a.ctime = now;
    }
    Ok((a, new_rule))
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

/// Everything `open(2)` with `flags` checks on `attr` (whose access ACL is `rule`), in
/// Linux's order: writing a directory (`IsDir`), the access mode ([`open_mask`]), then
/// the inode flags ([`crate::flags::check_open`]).
pub fn check_open(ctx: &Context, attr: &Attr, rule: Option<&Rule>, flags: i32) -> Result<()> {
    let mask = open_mask(flags);
    if attr.is_dir() && mask & access::W != 0 {
        return Err(MetaError::IsDir);
    }
    check_access_with(ctx, attr, rule, mask)?;
    crate::flags::check_open(attr, flags)
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
    fn acl_checks_and_inheritance() {
        use crate::acl::{AclEntry, Rule};
        // user::rw-, user:1000:rw-, group::r--, mask::rw-, other::---
        let rule = Rule {
            owner: 6,
            group: 4,
            mask: 6,
            other: 0,
            named_users: vec![AclEntry { id: 1000, perm: 6 }],
            named_groups: vec![],
        };
        let mut a = file(0o660, 10, 20);
        a.access_acl = 7;
        let named = Context::new(1000, 1000);
        assert!(check_access_with(&named, &a, Some(&rule), access::W).is_ok());
        assert!(
            check_access(&named, &a, access::R).is_err(),
            "mode bits alone"
        );
        let group = Context::new(11, 20);
        assert!(check_access_with(&group, &a, Some(&rule), access::W).is_err());
        // A zero mask turns the ACL off, as in Linux.
        let mut off = a.clone();
        off.mode = 0o604;
        assert!(check_access_with(&named, &off, Some(&rule), access::R).is_ok());

        // chmod rewrites the mask and returns the new rule.
        let now = Timestamp::new(9, 0);
        let (b, r) = apply_setattr_with(
            &Context::new(10, 10),
            &a,
            Some(&rule),
            &SetAttr::new().mode(0o640),
            now,
        )
        .unwrap();
        assert_eq!(b.mode, 0o640);
        let r = r.unwrap();
        assert_eq!((r.owner, r.mask, r.other, r.group), (6, 4, 0, 4));
        assert!(check_access_with(&named, &b, Some(&r), access::W).is_err());
        assert!(check_access_with(&named, &b, Some(&r), access::R).is_ok());

        // Inheritance ignores the umask and limits by the requested mode.
        let mut dir = Attr::new(FileType::Directory, 0o755, 0, 0, now);
        dir.default_acl = 3;
        let mut ctx = Context::new(10, 10);
        ctx.umask = 0o077;
        let def = Rule {
            owner: 7,
            group: 5,
            mask: 7,
            other: 5,
            named_users: vec![AclEntry { id: 1000, perm: 5 }],
            named_groups: vec![],
        };
        let f = new_inode_with_acl(&ctx, &dir, Some(&def), FileType::Regular, 0o666);
        assert_eq!((f.mode, f.default_acl), (0o664, 0));
        assert_eq!(f.access_rule.as_ref().map(|r| r.mode()), Some(0o664));
        let d = new_inode_with_acl(&ctx, &dir, Some(&def), FileType::Directory, 0o777);
        assert_eq!((d.mode, d.default_acl), (0o775, 3));
        assert_eq!(d.access_rule, Some(def.clone()));
        let l = new_inode_with_acl(&ctx, &dir, Some(&def), FileType::Symlink, 0o777);
        assert_eq!((l.mode, l.access_rule, l.default_acl), (0o777, None, 0));
        let minimal = Rule {
            mask: crate::acl::UNSET,
            named_users: vec![],
            ..def.clone()
        };
        let m = new_inode_with_acl(&ctx, &dir, Some(&minimal), FileType::Regular, 0o666);
        assert_eq!((m.mode, m.access_rule), (0o644, None));
        dir.default_acl = 0;
        let plain = new_inode_with_acl(&ctx, &dir, None, FileType::Regular, 0o666);
        assert_eq!(plain.mode, 0o600);
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

    #[test]
    fn chown_to_the_same_ids_and_atime_updates() {
        let a = file(0o644, 10, 10);
        let now = Timestamp::new(5, 0);
        // A non-owner may not chown, even to the ids the file already has (Linux).
        for set in [SetAttr::new().gid(10), SetAttr::new().uid(10)] {
            assert!(matches!(
                apply_setattr(&Context::new(11, 10), &a, &set, now),
                Err(MetaError::NotPermitted)
            ));
        }
        assert!(apply_setattr(&Context::new(10, 10), &a, &SetAttr::new().gid(10), now).is_ok());
        // An access-time update leaves ctime alone; a plain utimens stamps it.
        let set = SetAttr::new().atime(SetTime::At(now)).keep_ctime();
        let b = apply_setattr(&Context::root(), &a, &set, now).unwrap();
        assert_eq!((b.atime, b.ctime), (now, a.ctime));
        let set = SetAttr::new().atime(SetTime::At(now));
        assert_eq!(
            apply_setattr(&Context::root(), &a, &set, now)
                .unwrap()
                .ctime,
            now
        );
    }
}
