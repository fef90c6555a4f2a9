//! Extended attributes (`A{ino}X{name}` keys).

use meta_api::acl::{merge_xattr_names, AclType};
use meta_api::{
    access, Attr, Context, Ino, MetaError, Result, Timestamp, XattrFlags, MAX_XATTR_NAME_LEN,
    MAX_XATTR_VALUE_LEN,
};

use super::acl::access as acl_access;
use super::{must_attr, put_attr, TkvMeta, FLAG_APPEND, FLAG_IMMUTABLE};
use crate::keys::Keys;
use crate::kv::{KvStore, KvTxn};

/// Checks an attribute name: not empty (`EINVAL`, as JuiceFS) and at most 255 bytes
/// (`ENAMETOOLONG`).
fn check_name(name: &[u8]) -> Result<()> {
    if name.is_empty() {
        return Err(MetaError::InvalidArgument("empty extended attribute name"));
    }
    if name.len() > MAX_XATTR_NAME_LEN {
        return Err(MetaError::NameTooLong);
    }
    Ok(())
}

/// Changing extended attributes changes the inode (Linux updates ctime; JuiceFS does not,
/// which no reader depends on).
fn touch_ctime<T: KvTxn>(tx: &T, keys: &Keys, ino: Ino, mut attr: Attr, now: Timestamp) {
    attr.ctime = now;
    put_attr(tx, keys, ino, &attr);
}

impl<K: KvStore> TkvMeta<K> {
    pub(super) async fn do_getxattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        check_name(name)?;
        if let Some(typ) = AclType::from_xattr_name(name) {
            return self.get_acl_xattr(ino, typ).await;
        }
        let keys = &self.keys;
        self.kv
            .txn(|tx| async move {
                if let Some(v) = tx.get(&keys.xattr(ino, name)).await? {
                    return Ok(v);
                }
                must_attr(&tx, keys, ino).await?;
                Err(MetaError::NoAttr)
            })
            .await
    }

    pub(super) async fn do_setxattr(
        &self,
        ctx: &Context,
        ino: Ino,
        name: &[u8],
        value: &[u8],
        flags: u32,
    ) -> Result<()> {
        check_name(name)?;
        if let Some(typ) = AclType::from_xattr_name(name) {
            return self.set_acl_xattr(ctx, ino, typ, Some(value)).await;
        }
        if value.len() > MAX_XATTR_VALUE_LEN {
            return Err(MetaError::Range);
        }
        let now = self.now();
        let known = XattrFlags::CREATE | XattrFlags::REPLACE;
        if flags & !known != 0 || flags == known {
            return Err(MetaError::InvalidArgument("bad setxattr flags"));
        }
        let (keys, cache) = (&self.keys, &self.acls);
        self.kv
            .txn(|tx| async move {
                let attr = must_attr(&tx, keys, ino).await?;
                acl_access(&tx, keys, cache, ctx, &attr, access::W).await?;
                if attr.flags & (FLAG_IMMUTABLE | FLAG_APPEND) != 0 {
                    return Err(MetaError::NotPermitted);
                }
                let key = keys.xattr(ino, name);
                let old = tx.get(&key).await?;
                if flags == XattrFlags::CREATE && old.is_some() {
                    return Err(MetaError::Exists);
                }
                if flags == XattrFlags::REPLACE && old.is_none() {
                    return Err(MetaError::NoAttr);
                }
                if old.as_deref() != Some(value) {
                    tx.set(&key, value);
                }
                touch_ctime(&tx, keys, ino, attr, now);
                Ok(())
            })
            .await
    }

    pub(super) async fn do_listxattr(&self, ino: Ino) -> Result<Vec<Vec<u8>>> {
        let keys = &self.keys;
        self.kv
            .txn(|tx| async move {
                let attr = must_attr(&tx, keys, ino).await?;
                let prefix = keys.xattrs(ino);
                let mut names = tx
                    .scan(&prefix, &Keys::end_of(&prefix), 0, false)
                    .await?
                    .into_iter()
                    .map(|(k, _)| k[prefix.len()..].to_vec())
                    .collect();
                merge_xattr_names(&attr, &mut names);
                Ok(names)
            })
            .await
    }

    pub(super) async fn do_removexattr(&self, ctx: &Context, ino: Ino, name: &[u8]) -> Result<()> {
        check_name(name)?;
        if let Some(typ) = AclType::from_xattr_name(name) {
            return self.set_acl_xattr(ctx, ino, typ, None).await;
        }
        let now = self.now();
        let (keys, cache) = (&self.keys, &self.acls);
        self.kv
            .txn(|tx| async move {
                let attr = must_attr(&tx, keys, ino).await?;
                acl_access(&tx, keys, cache, ctx, &attr, access::W).await?;
                if attr.flags & (FLAG_IMMUTABLE | FLAG_APPEND) != 0 {
                    return Err(MetaError::NotPermitted);
                }
                let key = keys.xattr(ino, name);
                if tx.get(&key).await?.is_none() {
                    return Err(MetaError::NoAttr);
                }
                tx.clear(&key);
                touch_ctime(&tx, keys, ino, attr, now);
                Ok(())
            })
            .await
    }
}
