//! POSIX ACLs: `R{id}` keys (id big-endian `u32`, value [`Rule::encode`]) counted by
//! `CaclMaxId`, as JuiceFS's TKV engines keep them, and the `system.posix_acl_*` extended
//! attributes.
//!
//! Rules never change and are never deleted, so a client caches them by id. A new rule is
//! stored by the transaction that refers to it: it reads `aclMaxId` (so a concurrent store
//! conflicts with it), reads the rules up to it that the cache does not know, and reuses an
//! equal rule's id or writes `aclMaxId + 1`. One rule therefore has one id.

use std::sync::Arc;

use meta_api::acl::{self, AclCache, AclType, Rule};
use meta_api::perm::check_access_with;
use meta_api::{Attr, Context, Ino, MetaError, Result, MAX_XATTR_VALUE_LEN};

use super::{must_attr, put_attr, TkvMeta};
use crate::keys::{Keys, ACL_MAX_ID};
use crate::kv::{pack_counter, parse_counter, KvStore, KvTxn};

/// The rule stored under `id`: from `cache`, or read in `tx` (a stored rule never changes,
/// so what a transaction reads is safe to keep).
pub(crate) async fn acl_rule<T: KvTxn>(
    tx: &T,
    keys: &Keys,
    cache: &AclCache,
    id: u32,
) -> Result<Arc<Rule>> {
    if let Some(rule) = cache.get(id) {
        return Ok(rule);
    }
    let v = tx
        .get(&keys.acl(id))
        .await?
        .ok_or_else(|| MetaError::Corrupt(format!("ACL {id} is referenced but not stored")))?;
    Ok(cache.insert(id, Rule::decode(&v)?))
}

/// The rule of ACL id `id` (0 = none).
pub(crate) async fn rule_of<T: KvTxn>(
    tx: &T,
    keys: &Keys,
    cache: &AclCache,
    id: u32,
) -> Result<Option<Arc<Rule>>> {
    match id {
        0 => Ok(None),
        id => acl_rule(tx, keys, cache, id).await.map(Some),
    }
}

/// The access ACL an access check of `attr` by `ctx` consults, `None` when the mode bits
/// decide (no ACL, a zero mask, or root).
pub(crate) async fn check_rule<T: KvTxn>(
    tx: &T,
    keys: &Keys,
    cache: &AclCache,
    ctx: &Context,
    attr: &Attr,
) -> Result<Option<Arc<Rule>>> {
    match acl::rule_for_check(attr) {
        Some(id) if !ctx.is_root() => acl_rule(tx, keys, cache, id).await.map(Some),
        _ => Ok(None),
    }
}

/// [`meta_api::perm::check_access`] with the inode's access ACL.
pub(crate) async fn access<T: KvTxn>(
    tx: &T,
    keys: &Keys,
    cache: &AclCache,
    ctx: &Context,
    attr: &Attr,
    mask: u8,
) -> Result<()> {
    let rule = check_rule(tx, keys, cache, ctx, attr).await?;
    check_access_with(ctx, attr, rule.as_deref(), mask)
}

/// The id of `rule` in transaction `tx`: an equal stored rule's, or the next id, whose
/// rule and counter are written in `tx`. At most once per transaction; the new rule is not
/// cached, since the transaction may still abort.
pub(crate) async fn save_rule<T: KvTxn>(
    tx: &T,
    keys: &Keys,
    cache: &AclCache,
    rule: &Rule,
) -> Result<u32> {
    let counter = keys.counter(ACL_MAX_ID);
    let max = parse_counter(tx.get(&counter).await?.as_deref());
    let max = u32::try_from(max)
        .map_err(|_| MetaError::Corrupt(format!("counter {ACL_MAX_ID} is {max}")))?;
    for id in cache.missing(max) {
        match tx.get(&keys.acl(id)).await? {
            Some(v) => {
                cache.insert(id, Rule::decode(&v)?);
            }
            None => cache.insert_absent(id),
        }
    }
    if let Some(id) = cache.find(rule) {
        return Ok(id);
    }
    let id = max
        .checked_add(1)
        .ok_or_else(|| MetaError::Corrupt(format!("counter {ACL_MAX_ID} is exhausted")))?;
    tx.set(&counter, &pack_counter(i64::from(id)));
    tx.set(&keys.acl(id), &rule.encode());
    Ok(id)
}

impl<K: KvStore> TkvMeta<K> {
    /// Whether the volume has `EnableACL` (from the cached settings, loading them once).
    async fn acl_enabled(&self) -> Result<bool> {
        Ok(match self.cached_format() {
            Some(f) => f.enable_acl,
            None => self.load_format().await?.enable_acl,
        })
    }

    /// `getxattr` of an ACL name.
    pub(super) async fn get_acl_xattr(&self, ino: Ino, typ: AclType) -> Result<Vec<u8>> {
        if !self.acl_enabled().await? {
            return Err(MetaError::NoAttr);
        }
        let (keys, cache) = (&self.keys, &self.acls);
        self.kv
            .txn(|tx| async move {
                let attr = must_attr(&tx, keys, ino).await?;
                let rule = rule_of(&tx, keys, cache, typ.id_of(&attr)).await?;
                acl::get_xattr(&attr, typ, rule.as_deref())
            })
            .await
    }

    /// `setxattr` of an ACL name (`value` in the Linux wire format) and, with
    /// `value == None`, `removexattr`.
    pub(super) async fn set_acl_xattr(
        &self,
        ctx: &Context,
        ino: Ino,
        typ: AclType,
        value: Option<&[u8]>,
    ) -> Result<()> {
        if !self.acl_enabled().await? {
            return Err(MetaError::NotSupported("POSIX ACLs are off on this volume"));
        }
        let rule = match value {
            Some(v) if v.len() > MAX_XATTR_VALUE_LEN => return Err(MetaError::Range),
            Some(v) => Rule::from_xattr(v)?,
            None => Rule::empty(),
        };
        let now = self.now();
        let (keys, cache, rule) = (&self.keys, &self.acls, &rule);
        self.kv
            .txn(|tx| async move {
                let cur = must_attr(&tx, keys, ino).await?;
                let plan = acl::plan_set(ctx, &cur, typ, rule.clone())?;
                let mut attr = plan.attr;
                if let Some(rule) = &plan.store {
                    typ.set_id(&mut attr, save_rule(&tx, keys, cache, rule).await?);
                }
                if attr != cur {
                    attr.ctime = now;
                    put_attr(&tx, keys, ino, &attr);
                }
                Ok(())
            })
            .await
    }
}
