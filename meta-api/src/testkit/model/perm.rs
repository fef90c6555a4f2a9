//! The model's own permission rules, written from POSIX, POSIX.1e ACLs and Linux rather
//! than taken from [`crate::perm`] (which every engine shares), so that the property test
//! can catch a mistake there: access checks by mode bits or access ACL, the sticky-bit
//! rule of removals, the rules of `chmod`/`chown`/`utimensat`/flags, the mode, group and
//! ACLs of new inodes, and the access an `open(2)` needs.
//!
//! Where the contract of this crate makes a choice Linux leaves open (the order of the
//! checks within one `setattr`, the immutable flag, JuiceFS's chown rules for non-regular
//! files), the choice is documented in [`crate::perm`] and the conformance cases, and is
//! followed here.

use crate::acl::{Rule, UNSET};
use crate::{access, Attr, Context, FileType, MetaError, Result, SetAttr, SetTime, Timestamp};

/// Set-user-id bit.
const SUID: u16 = 0o4000;
/// Set-group-id bit.
const SGID: u16 = 0o2000;
/// Sticky bit.
const STICKY: u16 = 0o1000;
/// The three special bits.
const SPECIAL: u16 = SUID | SGID | STICKY;
/// The group's execute bit.
const GROUP_EXEC: u16 = 0o010;
/// JuiceFS's immutable inode flag.
const IMMUTABLE: u8 = 1;

/// Whether the permission bits `perm` (`rwx`, 0..=7, higher bits ignored) grant every
/// access in `want` (a combination of [`access`] bits).
fn covers(perm: u16, want: u8) -> bool {
    let have = perm & 7;
    let want = u16::from(want);
    have & want == want
}

/// The `rwx` bits of the owner (`shift` 6), group (3) or other (0) class of `mode`.
fn class_bits(mode: u16, shift: u16) -> u16 {
    (mode >> shift) & 7
}

/// What the mode bits alone grant: exactly one class applies, the first that matches of
/// owner, group (primary or supplementary) and other.
fn mode_bits_allow(ctx: &Context, attr: &Attr, want: u8) -> bool {
    let shift = if ctx.uid == attr.uid {
        6
    } else if ctx.gid == attr.gid || ctx.gids.contains(&attr.gid) {
        3
    } else {
        0
    };
    covers(class_bits(attr.mode, shift), want)
}

/// Limits a group-class entry by the mask (an ACL without a mask limits nothing).
fn masked(rule: &Rule, perm: u16) -> u16 {
    if rule.mask == UNSET {
        perm & 7
    } else {
        perm & rule.mask & 7
    }
}

/// The POSIX.1e access check of `rule`, the access ACL of an inode owned by `uid:gid`
/// (see acl(5), "ACCESS CHECK ALGORITHM"):
///
/// 1. the owner gets the `user::` entry;
/// 2. a named user gets its `user:uid:` entry, limited by the mask;
/// 3. a caller in the owning group or in a named group gets access when one of those
///    matching entries, limited by the mask, grants it all, and is denied otherwise;
/// 4. anybody else gets the `other::` entry.
pub(super) fn acl_allows(rule: &Rule, ctx: &Context, uid: u32, gid: u32, want: u8) -> bool {
    if ctx.uid == uid {
        return covers(rule.owner, want);
    }
    for e in &rule.named_users {
        if e.id == ctx.uid {
            return covers(masked(rule, e.perm), want);
        }
    }
    let member = |g: u32| ctx.gid == g || ctx.gids.contains(&g);
    let mut matching: Vec<u16> = Vec::new();
    if member(gid) {
        matching.push(rule.group);
    }
    for e in &rule.named_groups {
        if member(e.id) {
            matching.push(e.perm);
        }
    }
    if !matching.is_empty() {
        return matching.iter().any(|&p| covers(masked(rule, p), want));
    }
    covers(rule.other, want)
}

/// The access ACL that decides access to `attr`, given `acl`, the rule its
/// [`Attr::access_acl`] names (if any). As in Linux, an ACL whose mask (shown as the
/// group bits of the mode) is all zeros is not consulted: the mode bits decide.
fn acl_in_force<'a>(attr: &Attr, acl: Option<&'a Rule>) -> Option<&'a Rule> {
    if attr.access_acl == 0 || attr.mode & 0o070 == 0 {
        return None;
    }
    acl
}

/// Checks that `ctx` may access `attr` with `want` (a combination of [`access`] bits),
/// where `acl` is the inode's access ACL when it has one.
///
/// Root may read and write anything; it may execute a directory (search it) and any
/// other inode with at least one execute bit. Everybody else goes by the ACL when one is
/// in force, by the mode bits otherwise. A refusal is `PermissionDenied`.
pub(super) fn may_access(ctx: &Context, attr: &Attr, acl: Option<&Rule>, want: u8) -> Result<()> {
    let allowed = if want == 0 {
        true
    } else if ctx.uid == 0 {
        let wants_exec = want & access::X != 0;
        !wants_exec || attr.typ == FileType::Directory || attr.mode & 0o111 != 0
    } else {
        match acl_in_force(attr, acl) {
            Some(rule) => acl_allows(rule, ctx, attr.uid, attr.gid, want),
            None => mode_bits_allow(ctx, attr, want),
        }
    };
    if allowed {
        Ok(())
    } else {
        Err(MetaError::PermissionDenied)
    }
}

/// Checks that `ctx` may remove (or rename away) the entry of `victim` in directory
/// `dir`, whose access ACL is `dir_acl`: write and search permission on the directory
/// (`PermissionDenied`), and, in a sticky directory, being root, the directory's owner
/// or the victim's owner (`NotPermitted`).
pub(super) fn may_remove(
    ctx: &Context,
    dir: &Attr,
    dir_acl: Option<&Rule>,
    victim: &Attr,
) -> Result<()> {
    may_access(ctx, dir, dir_acl, access::W | access::X)?;
    let sticky = dir.mode & STICKY != 0;
    let privileged = ctx.uid == 0 || ctx.uid == dir.uid || ctx.uid == victim.uid;
    if sticky && !privileged {
        return Err(MetaError::NotPermitted);
    }
    Ok(())
}

/// The access an `open(2)` with `flags` needs: the access mode's read and/or write, and
/// write for `O_TRUNC`.
pub(super) fn open_mask(flags: i32) -> u8 {
    let mut want = match flags & libc::O_ACCMODE {
        libc::O_RDONLY => access::R,
        libc::O_WRONLY => access::W,
        // O_RDWR, and the odd access mode 3, which Linux also checks as both.
        _ => access::R | access::W,
    };
    if flags & libc::O_TRUNC != 0 {
        want |= access::W;
    }
    want
}

/// A new inode's mode, group and ACLs, as [`new_inode`] decides them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NewInode {
    /// Permission bits (`0o7777`).
    pub(super) mode: u16,
    /// Owning group.
    pub(super) gid: u32,
    /// The access ACL to store for it, if any.
    pub(super) access_rule: Option<Rule>,
    /// Its default ACL id: a new directory inherits its parent's (0 = none).
    pub(super) default_acl: u32,
}

/// The mode, group and ACLs of an inode of type `typ` that `ctx` creates in `parent`
/// asking for permission bits `requested`; `parent_default` is the parent's default ACL
/// (the rule of [`Attr::default_acl`], if any).
///
/// * A symlink is always `0o777` and inherits no ACL.
/// * Without a default ACL the umask takes its bits away.
/// * With one, the umask is ignored: the requested bits limit the default ACL's owner,
///   mask and other entries. A default ACL that is no more than mode bits (no mask, no
///   named entries) just limits the bits; any other becomes the new inode's access ACL,
///   whose owner, mask and other entries are its mode bits. A new directory also gets
///   the parent's default ACL.
/// * In a setgid directory the new inode takes the directory's group; a new directory
///   keeps the setgid bit, and a new file loses it when its creator is neither root nor
///   in that group. Elsewhere the group is the creator's.
pub(super) fn new_inode(
    ctx: &Context,
    parent: &Attr,
    parent_default: Option<&Rule>,
    typ: FileType,
    requested: u16,
) -> NewInode {
    let requested = requested & 0o7777;
    let inherited = match parent_default {
        Some(rule) if parent.default_acl != 0 && typ != FileType::Symlink => Some(rule),
        _ => None,
    };
    let (mut mode, access_rule, default_acl) = if typ == FileType::Symlink {
        (0o777, None, 0)
    } else if let Some(def) = inherited {
        let special = requested & SPECIAL;
        let default_acl = if typ == FileType::Directory {
            parent.default_acl
        } else {
            0
        };
        let u = class_bits(requested, 6);
        let g = class_bits(requested, 3);
        let o = class_bits(requested, 0);
        if is_minimal(def) {
            let bits = ((u & def.owner) << 6) | ((g & def.group) << 3) | (o & def.other);
            (special | bits, None, default_acl)
        } else {
            let mut child = def.clone();
            child.owner = u & def.owner;
            child.mask = g & def.mask;
            child.other = o & def.other;
            let bits = (child.owner << 6) | (child.mask << 3) | child.other;
            (special | bits, Some(child), default_acl)
        }
    } else {
        (requested & !(ctx.umask & 0o777), None, 0)
    };
    let gid = if parent.mode & SGID != 0 {
        if typ == FileType::Directory {
            mode |= SGID;
        } else if ctx.uid != 0 && !ctx.in_group(parent.gid) {
            mode &= !SGID;
        }
        parent.gid
    } else {
        ctx.gid
    };
    NewInode {
        mode,
        gid,
        access_rule,
        default_acl,
    }
}

/// Whether an ACL says nothing the mode bits cannot: no mask and no named entries.
pub(super) fn is_minimal(rule: &Rule) -> bool {
    rule.mask == UNSET && rule.named_users.is_empty() && rule.named_groups.is_empty()
}

/// Whether an ACL has no entries at all (what removing an ACL sets).
pub(super) fn is_empty(rule: &Rule) -> bool {
    [rule.owner, rule.group, rule.mask, rule.other]
        .iter()
        .all(|&p| p == UNSET)
        && rule.named_users.is_empty()
        && rule.named_groups.is_empty()
}

/// The permission bits (`0o777`) an access ACL shows as the mode: owner, mask (the
/// owning group when there is no mask) and other.
pub(super) fn acl_mode(rule: &Rule) -> u16 {
    let group = if is_minimal(rule) {
        rule.group
    } else {
        rule.mask
    };
    ((rule.owner & 7) << 6) | ((group & 7) << 3) | (rule.other & 7)
}

/// An access ACL after a `chmod` to `mode` (Linux's `posix_acl_chmod`): the owner, the
/// mask (the owning group when there is no mask) and the other entry take the new bits;
/// the named entries stay.
pub(super) fn acl_chmod(rule: &Rule, mode: u16) -> Rule {
    let mut r = rule.clone();
    r.owner = class_bits(mode, 6);
    if is_minimal(rule) {
        r.group = class_bits(mode, 3);
    } else {
        r.mask = class_bits(mode, 3);
    }
    r.other = class_bits(mode, 0);
    r
}

/// The non-size part of `setattr`: `cur` after `ctx` applies `set`, where `acl` is its
/// access ACL (if any), and the new access ACL when a `chmod` changed it. `now` is the
/// engine's clock. The checks run in this order and the first failure is the result:
///
/// 1. owner and group (`chown`): root may set any; the owner may only set the group, to
///    one it belongs to; nobody else may, even to the current ids (`NotPermitted`). A
///    non-directory loses setuid, and setgid when it is group-executable.
/// 2. mode (`chmod`): root or the owner (`NotPermitted`); setgid is dropped when the
///    caller is neither root nor in the (new) group. An access ACL follows the new bits.
/// 3. atime, then mtime: "now" needs ownership or write access (`PermissionDenied`), an
///    explicit time ownership (`NotPermitted`); root counts as owner.
/// 4. flags: root only (`NotPermitted`).
///
/// Any field set stamps ctime, unless [`SetAttr::keep_ctime`].
pub(super) fn setattr(
    ctx: &Context,
    cur: &Attr,
    acl: Option<&Rule>,
    set: &SetAttr,
    now: Timestamp,
) -> Result<(Attr, Option<Rule>)> {
    let root = ctx.uid == 0;
    let owner = root || ctx.uid == cur.uid;
    let mut next = cur.clone();
    let mut new_acl = None;

    if set.uid.is_some() || set.gid.is_some() {
        let uid = set.uid.unwrap_or(cur.uid);
        let gid = set.gid.unwrap_or(cur.gid);
        if !root {
            let keeps_owner = ctx.uid == cur.uid && uid == cur.uid;
            let group_ok = gid == cur.gid || ctx.in_group(gid);
            if !keeps_owner || !group_ok {
                return Err(MetaError::NotPermitted);
            }
        }
        next.uid = uid;
        next.gid = gid;
        if cur.typ != FileType::Directory {
            let group_exec = next.mode & GROUP_EXEC != 0;
            next.mode &= !SUID;
            if group_exec {
                next.mode &= !SGID;
            }
        }
    }

    if let Some(mode) = set.mode {
        if !owner {
            return Err(MetaError::NotPermitted);
        }
        let mut mode = mode & 0o7777;
        if !root && !ctx.in_group(next.gid) {
            mode &= !SGID;
        }
        next.mode = mode;
        if cur.access_acl != 0 {
            if let Some(rule) = acl {
                let changed = acl_chmod(rule, mode);
                if &changed != rule {
                    new_acl = Some(changed);
                }
            }
        }
    }

    for (time, field) in [(set.atime, &mut next.atime), (set.mtime, &mut next.mtime)] {
        match time {
            None => {}
            Some(SetTime::Now) => {
                if !owner && may_access(ctx, cur, acl, access::W).is_err() {
                    return Err(MetaError::PermissionDenied);
                }
                *field = now;
            }
            Some(SetTime::At(t)) => {
                if !owner {
                    return Err(MetaError::NotPermitted);
                }
                *field = t;
            }
        }
    }

    if let Some(flags) = set.flags {
        if !root {
            return Err(MetaError::NotPermitted);
        }
        next.flags = flags;
    }

    let anything = set.uid.is_some()
        || set.gid.is_some()
        || set.mode.is_some()
        || set.atime.is_some()
        || set.mtime.is_some()
        || set.flags.is_some();
    if anything && !set.keep_ctime {
        next.ctime = now;
    }
    Ok((next, new_acl))
}

/// Checks that `ctx` may set or remove an ACL of `attr`: only its owner or root, and not
/// while the inode is immutable (`NotPermitted`); a symlink has no ACLs (`NotSupported`).
pub(super) fn may_set_acl(ctx: &Context, attr: &Attr) -> Result<()> {
    if ctx.uid != 0 && ctx.uid != attr.uid {
        return Err(MetaError::NotPermitted);
    }
    if attr.flags & IMMUTABLE != 0 {
        return Err(MetaError::NotPermitted);
    }
    if attr.typ == FileType::Symlink {
        return Err(MetaError::NotSupported("POSIX ACLs on a symbolic link"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Differential tests: the model's rules against the engines' shared ones in
    //! [`crate::perm`] and [`crate::acl`], on random inputs.

    use proptest::prelude::*;

    use super::*;
    use crate::acl::{self, AclEntry, AclType};
    use crate::perm;

    /// Users and groups of the generated inputs: few, so that they collide often.
    static UIDS: [u32; 5] = [0, 10, 11, 12, 13];
    static GIDS: [u32; 4] = [20, 21, 22, 23];
    static TYPES: [FileType; 7] = [
        FileType::Regular,
        FileType::Directory,
        FileType::Symlink,
        FileType::Fifo,
        FileType::BlockDevice,
        FileType::CharDevice,
        FileType::Socket,
    ];

    fn kind(r: &Result<()>) -> Option<std::mem::Discriminant<MetaError>> {
        r.as_ref().err().map(std::mem::discriminant)
    }

    fn perm_bits() -> impl Strategy<Value = u16> {
        0u16..8
    }

    fn entries(ids: &'static [u32]) -> impl Strategy<Value = Vec<AclEntry>> {
        proptest::collection::btree_map(proptest::sample::select(ids), perm_bits(), 0..3).prop_map(
            |m| {
                m.into_iter()
                    .map(|(id, perm)| AclEntry { id, perm })
                    .collect()
            },
        )
    }

    /// A rule as `setxattr` can store it: owner, group and other set, a mask whenever
    /// there are named entries, named entries sorted by id without repeats.
    fn rule() -> impl Strategy<Value = Rule> {
        (
            perm_bits(),
            perm_bits(),
            prop_oneof![Just(UNSET), perm_bits()],
            perm_bits(),
            entries(&UIDS),
            entries(&GIDS),
        )
            .prop_map(|(owner, group, mask, other, users, groups)| {
                let mask = if mask == UNSET && !(users.is_empty() && groups.is_empty()) {
                    group
                } else {
                    mask
                };
                Rule {
                    owner,
                    group,
                    mask,
                    other,
                    named_users: users,
                    named_groups: groups,
                }
            })
    }

    fn ctx() -> impl Strategy<Value = Context> {
        (
            proptest::sample::select(&UIDS[..]),
            proptest::sample::select(&GIDS[..]),
            proptest::sample::subsequence(&GIDS[..], 0..3),
            prop_oneof![Just(0u16), Just(0o022), Just(0o077), 0u16..0o1000],
        )
            .prop_map(|(uid, gid, gids, umask)| {
                let mut c = Context::new(uid, gid);
                c.gids = gids;
                c.umask = umask;
                c
            })
    }

    /// An inode of any type, any mode, with or without an access ACL (id 7) and, for
    /// directories, a default ACL (id 9).
    fn attr() -> impl Strategy<Value = Attr> {
        (
            proptest::sample::select(&TYPES[..]),
            0u16..0o10000,
            proptest::sample::select(&UIDS[..]),
            proptest::sample::select(&GIDS[..]),
            any::<bool>(),
            any::<bool>(),
            prop_oneof![3 => Just(0u8), 1 => Just(IMMUTABLE), 1 => Just(2u8)],
        )
            .prop_map(|(typ, mode, uid, gid, has_acl, has_default, flags)| {
                let mut a = Attr::new(typ, mode, uid, gid, Timestamp::new(100, 0));
                a.access_acl = if has_acl { 7 } else { 0 };
                a.default_acl = if has_default && typ == FileType::Directory {
                    9
                } else {
                    0
                };
                a.flags = flags;
                a
            })
    }

    fn set_time() -> impl Strategy<Value = Option<SetTime>> {
        prop_oneof![
            Just(None),
            Just(Some(SetTime::Now)),
            Just(Some(SetTime::At(Timestamp::new(5, 7)))),
        ]
    }

    fn set_attr() -> impl Strategy<Value = SetAttr> {
        (
            proptest::option::weighted(0.4, 0u16..0o10000),
            proptest::option::weighted(0.3, proptest::sample::select(&UIDS[..])),
            proptest::option::weighted(0.3, proptest::sample::select(&GIDS[..])),
            set_time(),
            set_time(),
            proptest::option::weighted(0.1, 0u8..4),
            any::<bool>(),
        )
            .prop_map(|(mode, uid, gid, atime, mtime, flags, keep_ctime)| {
                let mut s = SetAttr::new();
                s.mode = mode;
                s.uid = uid;
                s.gid = gid;
                s.atime = atime;
                s.mtime = mtime;
                s.flags = flags;
                s.keep_ctime = keep_ctime;
                s
            })
    }

    const WANTS: std::ops::Range<u8> = 0..8;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn access_checks_agree(
            c in ctx(),
            a in attr(),
            r in rule(),
            with_rule in any::<bool>(),
            want in WANTS,
        ) {
            let acl = with_rule.then_some(&r);
            let model = may_access(&c, &a, acl, want);
            let shared = perm::check_access_with(&c, &a, acl, want);
            prop_assert_eq!(kind(&model), kind(&shared), "ctx {:?} attr {:?} acl {:?} want {}", c, a, acl, want);
        }

        #[test]
        fn acl_algorithm_agrees(
            c in ctx(),
            r in rule(),
            uid in proptest::sample::select(&UIDS[..]),
            gid in proptest::sample::select(&GIDS[..]),
            want in WANTS,
        ) {
            prop_assert_eq!(acl_allows(&r, &c, uid, gid, want), r.allows(&c, uid, gid, want));
        }

        #[test]
        fn remove_checks_agree(
            c in ctx(),
            mut dir in attr(),
            victim in attr(),
            r in rule(),
            with_rule in any::<bool>(),
            sticky in any::<bool>(),
        ) {
            dir.typ = FileType::Directory;
            if sticky {
                dir.mode |= STICKY;
            }
            let acl = with_rule.then_some(&r);
            let model = may_remove(&c, &dir, acl, &victim);
            let shared = perm::check_remove_with(&c, &dir, acl, &victim);
            prop_assert_eq!(kind(&model), kind(&shared));
        }

        #[test]
        fn new_inodes_agree(
            c in ctx(),
            mut parent in attr(),
            def in rule(),
            has_default in any::<bool>(),
            typ in proptest::sample::select(&TYPES[..]),
            requested in prop_oneof![0u16..0o10000, Just(0o777), Just(0o666), Just(0o2775)],
        ) {
            parent.typ = FileType::Directory;
            parent.default_acl = if has_default { 9 } else { 0 };
            let default = has_default.then_some(&def);
            let model = new_inode(&c, &parent, default, typ, requested);
            let shared = perm::new_inode_with_acl(&c, &parent, default, typ, requested);
            prop_assert_eq!(model.mode, shared.mode);
            prop_assert_eq!(model.gid, shared.gid);
            prop_assert_eq!(model.access_rule, shared.access_rule);
            prop_assert_eq!(model.default_acl, shared.default_acl);
        }

        #[test]
        fn setattr_agrees(
            c in ctx(),
            a in attr(),
            r in rule(),
            set in set_attr(),
        ) {
            let now = Timestamp::new(1000, 1);
            let acl = (a.access_acl != 0).then_some(&r);
            let model = setattr(&c, &a, acl, &set, now);
            let shared = perm::apply_setattr_with(&c, &a, acl, &set, now);
            match (&model, &shared) {
                (Ok(m), Ok(s)) => prop_assert_eq!(m, s),
                (Err(m), Err(s)) => prop_assert_eq!(
                    std::mem::discriminant(m),
                    std::mem::discriminant(s),
                    "model {:?}, shared {:?}", m, s
                ),
                _ => prop_assert!(false, "model {:?}, shared {:?}", model, shared),
            }
        }

        #[test]
        fn acl_rule_helpers_agree(r in rule(), mode in 0u16..0o10000) {
            prop_assert_eq!(is_minimal(&r), r.is_minimal());
            prop_assert_eq!(is_empty(&r), r.is_empty());
            prop_assert_eq!(acl_mode(&r), r.mode());
            prop_assert_eq!(acl_chmod(&r, mode), r.with_mode(mode));
        }

        #[test]
        fn set_acl_plans_agree(
            c in ctx(),
            a in attr(),
            r in prop_oneof![4 => rule(), 1 => Just(Rule::empty())],
            default in any::<bool>(),
        ) {
            let typ = if default { AclType::Default } else { AclType::Access };
            let model = super::super::acl::plan_set(&c, &a, typ, r.clone());
            let shared = acl::plan_set(&c, &a, typ, r);
            match (&model, &shared) {
                (Ok((attr, store)), Ok(plan)) => {
                    prop_assert_eq!(attr, &plan.attr);
                    prop_assert_eq!(store, &plan.store);
                }
                (Err(m), Err(s)) => prop_assert_eq!(
                    std::mem::discriminant(m),
                    std::mem::discriminant(s)
                ),
                _ => prop_assert!(false, "model {:?}, shared {:?}", model, shared),
            }
        }

        #[test]
        fn set_acl_permission_agrees(c in ctx(), a in attr(), r in rule()) {
            // The shared plan refuses in the same cases, with the same errors, before it
            // looks at the rule's type.
            let model = may_set_acl(&c, &a);
            let shared = acl::plan_set(&c, &a, AclType::Access, r).map(|_| ());
            prop_assert_eq!(kind(&model), kind(&shared));
        }
    }

    #[test]
    fn open_masks_agree() {
        let modes = [
            libc::O_RDONLY,
            libc::O_WRONLY,
            libc::O_RDWR,
            libc::O_ACCMODE,
        ];
        let extras = [
            0,
            libc::O_TRUNC,
            libc::O_CREAT,
            libc::O_APPEND,
            libc::O_EXCL,
        ];
        for m in modes {
            for x in extras {
                for y in extras {
                    let flags = m | x | y;
                    assert_eq!(open_mask(flags), perm::open_mask(flags), "flags {flags:#o}");
                }
            }
        }
    }

    #[test]
    fn examples_from_the_semantics() {
        let t = Timestamp::new(1, 0);
        let f = Attr::new(FileType::Regular, 0o640, 10, 20, t);
        let ok = |c: &Context, want| may_access(c, &f, None, want).is_ok();
        assert!(ok(&Context::new(10, 1), access::R | access::W));
        assert!(!ok(&Context::new(10, 1), access::X));
        assert!(ok(&Context::new(11, 20), access::R));
        assert!(!ok(&Context::new(11, 20), access::W));
        assert!(!ok(&Context::new(12, 21), access::R));
        assert!(ok(&Context::root(), access::R | access::W));
        assert!(!ok(&Context::root(), access::X), "root needs an x bit");
        // The owner class applies even when it grants less than the group class.
        let g = Attr::new(FileType::Regular, 0o070, 10, 20, t);
        assert!(may_access(&Context::new(10, 20), &g, None, access::R).is_err());
        // Sticky directories.
        let tmp = Attr::new(FileType::Directory, 0o1777, 0, 0, t);
        let mine = Attr::new(FileType::Regular, 0o644, 10, 10, t);
        assert!(may_remove(&Context::new(10, 10), &tmp, None, &mine).is_ok());
        assert!(matches!(
            may_remove(&Context::new(11, 10), &tmp, None, &mine),
            Err(MetaError::NotPermitted)
        ));
        // A group entry that matches but does not grant denies, even if other would.
        let rule = Rule {
            owner: 6,
            group: 0,
            mask: 7,
            other: 7,
            named_users: vec![],
            named_groups: vec![],
        };
        assert!(!acl_allows(&rule, &Context::new(11, 20), 10, 20, access::R));
        assert!(acl_allows(&rule, &Context::new(11, 21), 10, 20, access::R));
    }
}
