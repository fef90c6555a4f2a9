//! POSIX ACLs of the model: stored rules by id, one id per distinct rule, and the
//! ACL-aware checks and extended attributes the model's operations call.

use std::collections::BTreeMap;

use super::{now, State};
use crate::acl::{self, AclType, Rule};
use crate::perm::{check_access_with, check_remove_with};
use crate::{Attr, Context, Ino, MetaError, Result, MAX_XATTR_VALUE_LEN};

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

    /// [`crate::perm::check_access`] with the inode's access ACL.
    pub(super) fn access(&self, ctx: &Context, attr: &Attr, mask: u8) -> Result<()> {
        let rule = acl::rule_for_check(attr).and_then(|id| self.acls.get(id));
        check_access_with(ctx, attr, rule, mask)
    }

    /// [`crate::perm::check_remove`] with the directory's access ACL.
    pub(super) fn check_remove(&self, ctx: &Context, dir: &Attr, victim: &Attr) -> Result<()> {
        let rule = acl::rule_for_check(dir).and_then(|id| self.acls.get(id));
        check_remove_with(ctx, dir, rule, victim)
    }

    /// `getxattr` of an ACL name.
    pub(super) fn get_acl_xattr(&self, ino: Ino, typ: AclType) -> Result<Vec<u8>> {
        if !self.acl_enabled() {
            return Err(MetaError::NoAttr);
        }
        let attr = &self.node(ino)?.attr;
        acl::get_xattr(attr, typ, self.acls.get(typ.id_of(attr)))
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
        let plan = acl::plan_set(ctx, &cur, typ, rule)?;
        let mut attr = plan.attr;
        if let Some(rule) = plan.store {
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
