//! Extended attributes: the `x{ino}` hash.

use meta_api::acl::{merge_xattr_names, AclType};
use meta_api::encoding::decode_attr;
use meta_api::{
    access, Context, Ino, MetaError, Result, XattrFlags, MAX_XATTR_NAME_LEN, MAX_XATTR_VALUE_LEN,
};

use super::{now, RedisMeta, Writes, FLAG_APPEND, FLAG_IMMUTABLE};

/// Checks an attribute name: not empty (`EINVAL`), at most 255 bytes (`ENAMETOOLONG`).
fn check_name(name: &[u8]) -> Result<()> {
    if name.is_empty() {
        return Err(MetaError::InvalidArgument("empty xattr name"));
    }
    if name.len() > MAX_XATTR_NAME_LEN {
        return Err(MetaError::NameTooLong);
    }
    Ok(())
}

impl RedisMeta {
    pub(crate) async fn do_getxattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        check_name(name)?;
        if let Some(typ) = AclType::from_xattr_name(name) {
            return self.get_acl_xattr(ino, typ).await;
        }
        let mut p = redis::pipe();
        p.cmd("EXISTS")
            .arg(self.keys.inode(ino))
            .cmd("HGET")
            .arg(self.keys.xattrs(ino))
            .arg(name);
        let (exists, value): (bool, Option<Vec<u8>>) = self.read_pipe(&p).await?;
        if !exists {
            return Err(MetaError::NotFound);
        }
        value.ok_or(MetaError::NoAttr)
    }

    pub(crate) async fn do_listxattr(&self, ino: Ino) -> Result<Vec<Vec<u8>>> {
        let mut p = redis::pipe();
        p.cmd("GET")
            .arg(self.keys.inode(ino))
            .cmd("HKEYS")
            .arg(self.keys.xattrs(ino));
        let (attr, mut names): (Option<Vec<u8>>, Vec<Vec<u8>>) = self.read_pipe(&p).await?;
        let attr = decode_attr(&attr.ok_or(MetaError::NotFound)?)?;
        names.sort_unstable();
        merge_xattr_names(&attr, &mut names);
        Ok(names)
    }

    pub(crate) async fn do_setxattr(
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
        let create = flags & XattrFlags::CREATE != 0;
        let replace = flags & XattrFlags::REPLACE != 0;
        if flags & !(XattrFlags::CREATE | XattrFlags::REPLACE) != 0 || (create && replace) {
            return Err(MetaError::InvalidArgument("xattr flags"));
        }
        let keys = [self.keys.inode(ino), self.keys.xattrs(ino)];
        self.txn(&keys, |mut tx| async move {
            let mut attr = tx.attr(ino).await?.ok_or(MetaError::NotFound)?;
            self.access(ctx, &attr, access::W).await?;
            if attr.flags & (FLAG_IMMUTABLE | FLAG_APPEND) != 0 {
                return Err(MetaError::NotPermitted);
            }
            let exists: bool = tx
                .cmd(redis::cmd("HEXISTS").arg(self.keys.xattrs(ino)).arg(name))
                .await?;
            if create && exists {
                return Err(MetaError::Exists);
            }
            if replace && !exists {
                return Err(MetaError::NoAttr);
            }
            attr.ctime = now();
            let mut w = Writes::new();
            w.hset(self.keys.xattrs(ino), name, value)
                .set_attr(&self.keys, ino, &attr);
            Ok(w.commit(()))
        })
        .await
    }

    pub(crate) async fn do_removexattr(&self, ctx: &Context, ino: Ino, name: &[u8]) -> Result<()> {
        check_name(name)?;
        if let Some(typ) = AclType::from_xattr_name(name) {
            return self.set_acl_xattr(ctx, ino, typ, None).await;
        }
        let keys = [self.keys.inode(ino), self.keys.xattrs(ino)];
        self.txn(&keys, |mut tx| async move {
            let mut attr = tx.attr(ino).await?.ok_or(MetaError::NotFound)?;
            self.access(ctx, &attr, access::W).await?;
            if attr.flags & (FLAG_IMMUTABLE | FLAG_APPEND) != 0 {
                return Err(MetaError::NotPermitted);
            }
            let exists: bool = tx
                .cmd(redis::cmd("HEXISTS").arg(self.keys.xattrs(ino)).arg(name))
                .await?;
            if !exists {
                return Err(MetaError::NoAttr);
            }
            attr.ctime = now();
            let mut w = Writes::new();
            w.hdel(self.keys.xattrs(ino), name)
                .set_attr(&self.keys, ino, &attr);
            Ok(w.commit(()))
        })
        .await
    }
}
