//! Extended attributes (`A{ino}X{name}` keys).

use async_trait::async_trait;
use meta_api::acl::{merge_xattr_names, AclType};
use meta_api::backend::Xattrs;
use meta_api::flags;
use meta_api::{access, Attr, Context, Ino, MetaError, Result, Timestamp, XattrFlags};

use super::acl::access as acl_access;
use super::{must_attr, put_attr, TkvMeta};
use crate::keys::Keys;
use crate::kv::{KvStore, KvTxn};

/// Changing extended attributes changes the inode (Linux updates ctime; JuiceFS does not,
/// which no reader depends on).
fn touch_ctime<T: KvTxn>(tx: &T, keys: &Keys, ino: Ino, mut attr: Attr, now: Timestamp) {
    attr.ctime = now;
    put_attr(tx, keys, ino, &attr);
}

#[async_trait]
impl<K: KvStore> Xattrs for TkvMeta<K> {
    async fn getxattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
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

    async fn setxattr(
        &self,
        ctx: &Context,
        ino: Ino,
        name: &[u8],
        value: &[u8],
        flags: u32,
    ) -> Result<()> {
        if let Some(typ) = AclType::from_xattr_name(name) {
            return self.set_acl_xattr(ctx, ino, typ, Some(value)).await;
        }
        let now = self.now();
        let (keys, cache) = (&self.keys, &self.acls);
        self.kv
            .txn(|tx| async move {
                let attr = must_attr(&tx, keys, ino).await?;
                acl_access(&tx, keys, cache, ctx, &attr, access::W).await?;
                flags::check_xattr_change(&attr)?;
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

    async fn listxattr(&self, ino: Ino) -> Result<Vec<Vec<u8>>> {
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

    async fn removexattr(&self, ctx: &Context, ino: Ino, name: &[u8]) -> Result<()> {
        if let Some(typ) = AclType::from_xattr_name(name) {
            return self.set_acl_xattr(ctx, ino, typ, None).await;
        }
        let now = self.now();
        let (keys, cache) = (&self.keys, &self.acls);
        self.kv
            .txn(|tx| async move {
                let attr = must_attr(&tx, keys, ino).await?;
                acl_access(&tx, keys, cache, ctx, &attr, access::W).await?;
                flags::check_xattr_change(&attr)?;
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
