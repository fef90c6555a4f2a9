//! POSIX ACLs: the `acl` hash (decimal id → [`Rule::encode`]) with ids counted by
//! `aclMaxId`, as JuiceFS keeps them, and the `system.posix_acl_*` extended attributes.
//!
//! Rules never change and are never deleted, so a client caches them by id. A new rule is
//! looked up by content first: the transaction that stores one watches `aclMaxId`, reads
//! every rule up to it that the cache does not know, and either reuses an equal rule's id
//! or writes `aclMaxId + 1` together with the inode that refers to it. A concurrent store
//! (ours or a `juicefs` client's `INCR`) changes `aclMaxId` and makes the transaction run
//! again, so one rule is stored once.

use std::sync::Arc;

use meta_api::acl::{self, AclType, Rule};
use meta_api::perm::check_access_with;
use meta_api::{Attr, Context, Ino, MetaError, Result, MAX_XATTR_VALUE_LEN};

use super::{now, RedisMeta, Writes};
use crate::txn::{Step, Tx};

impl RedisMeta {
    /// The rule stored under `id`, from the cache or the server (outside any transaction:
    /// a stored rule never changes).
    pub(crate) async fn acl_rule(&self, id: u32) -> Result<Arc<Rule>> {
        if let Some(rule) = self.acls.get(id) {
            return Ok(rule);
        }
        let v: Option<Vec<u8>> = self
            .read(redis::cmd("HGET").arg(self.keys.acl()).arg(id))
            .await?;
        let v =
            v.ok_or_else(|| MetaError::Corrupt(format!("ACL {id} is referenced but not stored")))?;
        Ok(self.acls.insert(id, Rule::decode(&v)?))
    }

    /// The access ACL an access check of `attr` by `ctx` consults, `None` when the mode
    /// bits decide (no ACL, a zero mask, or root).
    pub(crate) async fn check_rule(
        &self,
        ctx: &Context,
        attr: Option<&Attr>,
    ) -> Result<Option<Arc<Rule>>> {
        match attr.and_then(acl::rule_for_check) {
            Some(id) if !ctx.is_root() => self.acl_rule(id).await.map(Some),
            _ => Ok(None),
        }
    }

    /// [`meta_api::perm::check_access`] with the inode's access ACL.
    pub(crate) async fn access(&self, ctx: &Context, attr: &Attr, mask: u8) -> Result<()> {
        let rule = self.check_rule(ctx, Some(attr)).await?;
        check_access_with(ctx, attr, rule.as_deref(), mask)
    }

    /// The rule of ACL id `id` (0 = none).
    pub(crate) async fn rule_of(&self, id: u32) -> Result<Option<Arc<Rule>>> {
        match id {
            0 => Ok(None),
            id => self.acl_rule(id).await.map(Some),
        }
    }

    /// The id of `rule` inside transaction `tx`: an equal stored rule's, or the next id,
    /// whose rule and counter `w` then writes. At most once per transaction.
    pub(crate) async fn save_rule(&self, tx: &mut Tx, w: &mut Writes, rule: &Rule) -> Result<u32> {
        let counter = self.keys.acl_max_id();
        tx.watch(std::slice::from_ref(&counter)).await?;
        let max: Option<i64> = tx.cmd(redis::cmd("GET").arg(&counter)).await?;
        let max = u32::try_from(max.unwrap_or(0))
            .map_err(|_| MetaError::Corrupt(format!("{counter} is out of range")))?;
        let missing = self.acls.missing(max);
        if !missing.is_empty() {
            let found: Vec<Option<Vec<u8>>> = tx
                .cmd(redis::cmd("HMGET").arg(self.keys.acl()).arg(&missing))
                .await?;
            for (id, v) in missing.into_iter().zip(found) {
                match v {
                    Some(v) => {
                        self.acls.insert(id, Rule::decode(&v)?);
                    }
                    None => self.acls.insert_absent(id),
                }
            }
        }
        if let Some(id) = self.acls.find(rule) {
            return Ok(id);
        }
        let id = max
            .checked_add(1)
            .ok_or_else(|| MetaError::Corrupt(format!("{counter} is exhausted")))?;
        w.set(counter, id.to_string().as_bytes()).hset(
            self.keys.acl(),
            id.to_string().as_bytes(),
            &rule.encode(),
        );
        Ok(id)
    }

    /// `getxattr` of an ACL name.
    pub(crate) async fn get_acl_xattr(&self, ino: Ino, typ: AclType) -> Result<Vec<u8>> {
        if !self.settings().await?.enable_acl {
            return Err(MetaError::NoAttr);
        }
        let attr = self.get_attr(ino).await?.ok_or(MetaError::NotFound)?;
        let rule = self.rule_of(typ.id_of(&attr)).await?;
        acl::get_xattr(&attr, typ, rule.as_deref())
    }

    /// `setxattr` of an ACL name (`value` in the Linux wire format) and, with
    /// `value == None`, `removexattr`.
    pub(crate) async fn set_acl_xattr(
        &self,
        ctx: &Context,
        ino: Ino,
        typ: AclType,
        value: Option<&[u8]>,
    ) -> Result<()> {
        if !self.settings().await?.enable_acl {
            return Err(MetaError::NotSupported("POSIX ACLs are off on this volume"));
        }
        let rule = match value {
            Some(v) if v.len() > MAX_XATTR_VALUE_LEN => return Err(MetaError::Range),
            Some(v) => Rule::from_xattr(v)?,
            None => Rule::empty(),
        };
        let rule = &rule;
        let keys = [self.keys.inode(ino)];
        self.txn(&keys, |mut tx| async move {
            let cur = tx.attr(ino).await?.ok_or(MetaError::NotFound)?;
            let plan = acl::plan_set(ctx, &cur, typ, rule.clone())?;
            let mut attr = plan.attr;
            let mut w = Writes::new();
            if let Some(rule) = &plan.store {
                let id = self.save_rule(&mut tx, &mut w, rule).await?;
                typ.set_id(&mut attr, id);
            }
            if attr == cur {
                return Ok(Step::Done(()));
            }
            attr.ctime = now();
            w.set_attr(&self.keys, ino, &attr);
            Ok(w.commit(()))
        })
        .await
    }
}
