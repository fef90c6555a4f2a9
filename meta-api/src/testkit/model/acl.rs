//! POSIX ACLs of the model: stored rules by id, one id per distinct rule, and the
//! ACL-aware checks and extended attributes the model's operations call. The rules of
//! who may do what are the model's own ([`super::perm`]); only the data type
//! [`Rule`] and its wire format come from [`crate::acl`].

use std::collections::BTreeMap;

use super::{now, perm, State};
use crate::acl::{AclType, Rule, UNSET, XATTR_ACCESS, XATTR_DEFAULT};
use crate::{Attr, Context, FileType, Ino, MetaError, Result, MAX_XATTR_VALUE_LEN};

/// Set-group-id bit.
const SGID: u16 = 0o2000;

/// The volume's stored rules (ids from 1, never reused, never changed).
#[derive(Debug, Default)]
pub(super) struct AclTable {
    rules: BTreeMap<u32, Rule>,
}

impl AclTable {
    fn get(&self, id: u32) -> Option<&Rule> {
        self.rules.get(&id)
    }

    /// The id of `rule`, storing it under a new id when no equal rule is stored.
    fn save(&mut self, rule: Rule) -> u32 {
        if let Some((&id, _)) = self.rules.iter().find(|(_, r)| **r == rule) {
            return id;
        }
        let id = self.rules.keys().next_back().map_or(1, |last| last + 1);
        self.rules.insert(id, rule);
        id
    }
}

impl State {
    fn acl_enabled(&self) -> bool {
        self.format.as_ref().is_some_and(|f| f.enable_acl)
    }

    /// The access ACL of `attr`, when it has one.
    pub(super) fn access_rule(&self, attr: &Attr) -> Option<&Rule> {
        self.acls.get(attr.access_acl)
    }

    /// The default ACL of directory `attr`, when it has one.
    pub(super) fn default_rule(&self, attr: &Attr) -> Option<&Rule> {
        self.acls.get(attr.default_acl)
    }

    /// Stores `rule` (or finds it) and returns its id.
    pub(super) fn save_rule(&mut self, rule: Rule) -> u32 {
        self.acls.save(rule)
    }

    /// Checks that `ctx` may access `attr` with `mask`, by its access ACL or mode bits.
    pub(super) fn access(&self, ctx: &Context, attr: &Attr, mask: u8) -> Result<()> {
        perm::may_access(ctx, attr, self.access_rule(attr), mask)
    }

    /// `access(2)` ([`crate::MetaEngine::check_access`]): [`State::access`], except that
    /// an ACL counts only while the volume has ACLs on, as reading it through `getxattr`
    /// (what the trait's provided method does) finds it.
    pub(super) fn access_call(&self, ctx: &Context, attr: &Attr, mask: u8) -> Result<()> {
        let rule = if self.acl_enabled() {
            self.access_rule(attr)
        } else {
            None
        };
        perm::may_access(ctx, attr, rule, mask)
    }

    /// Checks that `ctx` may remove the entry of `victim` from directory `dir`.
    pub(super) fn check_remove(&self, ctx: &Context, dir: &Attr, victim: &Attr) -> Result<()> {
        perm::may_remove(ctx, dir, self.access_rule(dir), victim)
    }

    /// `getxattr` of an ACL name.
    pub(super) fn get_acl_xattr(&self, ino: Ino, typ: AclType) -> Result<Vec<u8>> {
        if !self.acl_enabled() {
            return Err(MetaError::NoAttr);
        }
        let attr = &self.node(ino)?.attr;
        match typ.id_of(attr) {
            0 => Err(MetaError::NoAttr),
            id => self
                .acls
                .get(id)
                .map(Rule::to_xattr)
                .ok_or(MetaError::NoAttr),
        }
    }

    /// `setxattr` of an ACL name (`value` in the Linux wire format) and, with
    /// `value == None`, `removexattr`.
    pub(super) fn set_acl_xattr(
        &mut self,
        ctx: &Context,
        ino: Ino,
        typ: AclType,
        value: Option<&[u8]>,
    ) -> Result<()> {
        if !self.acl_enabled() {
            return Err(MetaError::NotSupported("POSIX ACLs are off on this volume"));
        }
        let rule = match value {
            Some(v) if v.len() > MAX_XATTR_VALUE_LEN => return Err(MetaError::Range),
            Some(v) => Rule::from_xattr(v)?,
            None => Rule::empty(),
        };
        let cur = self.attr(ino)?;
        let (mut attr, store) = plan_set(ctx, &cur, typ, rule)?;
        if let Some(rule) = store {
            let id = self.save_rule(rule);
            typ.set_id(&mut attr, id);
        }
        if attr != cur {
            attr.ctime = now();
            self.node_mut(ino)?.attr = attr;
        }
        Ok(())
    }
}

/// What setting ACL `typ` of `cur` to `rule` does (removal sets [`Rule::empty`]): the
/// new attributes (ctime untouched; an ACL id kept as it was when a rule is to be
/// stored) and the rule to store, if the inode keeps an ACL of this type.
///
/// * Only the owner or root, and not on an immutable inode or a symlink
///   ([`perm::may_set_acl`]).
/// * Only directories have default ACLs: removing one elsewhere does nothing, setting
///   one is `PermissionDenied`, as in Linux.
/// * A caller who is neither root nor in the inode's group drops its setgid bit.
/// * An empty rule removes the ACL. An access ACL that is no more than mode bits is not
///   stored: it sets the mode bits. Any other rule is stored, entries it leaves unset
///   taken from the mode, and an access ACL sets the mode bits (owner, mask, other).
pub(super) fn plan_set(
    ctx: &Context,
    cur: &Attr,
    typ: AclType,
    mut rule: Rule,
) -> Result<(Attr, Option<Rule>)> {
    perm::may_set_acl(ctx, cur)?;
    let mut attr = cur.clone();
    if typ == AclType::Default && cur.typ != FileType::Directory {
        return if perm::is_empty(&rule) {
            Ok((attr, None))
        } else {
            Err(MetaError::PermissionDenied)
        };
    }
    if ctx.uid != 0 && !ctx.in_group(cur.gid) {
        attr.mode &= !SGID;
    }
    if perm::is_empty(&rule) {
        typ.set_id(&mut attr, 0);
        return Ok((attr, None));
    }
    if typ == AclType::Access && perm::is_minimal(&rule) {
        typ.set_id(&mut attr, 0);
        attr.mode = (attr.mode & 0o7000) | perm::acl_mode(&rule);
        return Ok((attr, None));
    }
    let mode = attr.mode;
    for (entry, shift) in [
        (&mut rule.owner, 6),
        (&mut rule.group, 3),
        (&mut rule.other, 0),
    ] {
        if *entry == UNSET {
            *entry = (mode >> shift) & 7;
        }
    }
    if typ == AclType::Access {
        attr.mode = (attr.mode & 0o7000) | perm::acl_mode(&rule);
    }
    Ok((attr, Some(rule)))
}

/// Adds the ACL names of `attr` to `names`, a sorted list of its stored extended
/// attribute names, keeping it sorted.
pub(super) fn add_acl_names(attr: &Attr, names: &mut Vec<Vec<u8>>) {
    if attr.access_acl != 0 {
        names.push(XATTR_ACCESS.to_vec());
    }
    if attr.default_acl != 0 {
        names.push(XATTR_DEFAULT.to_vec());
    }
    names.sort();
    names.dedup();
}
