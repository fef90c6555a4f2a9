//! Extended attributes: the `x{ino}` hash.

use async_trait::async_trait;
use meta_api::acl::{merge_xattr_names, AclType};
use meta_api::backend::Xattrs;
use meta_api::encoding::decode_attr;
use meta_api::flags;
use meta_api::{access, Context, Ino, MetaError, Result, XattrFlags};

use super::{now, RedisMeta, Writes};

#[async_trait]
impl Xattrs for RedisMeta {
    async fn getxattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
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
        let create = flags & XattrFlags::CREATE != 0;
        let replace = flags & XattrFlags::REPLACE != 0;
        let keys = [self.keys.inode(ino), self.keys.xattrs(ino)];
        self.txn(&keys, |mut tx| async move {
            let mut attr = tx.attr(ino).await?.ok_or(MetaError::NotFound)?;
            self.access(ctx, &attr, access::W).await?;
            flags::check_xattr_change(&attr)?;
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

    async fn listxattr(&self, ino: Ino) -> Result<Vec<Vec<u8>>> {
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

    async fn removexattr(&self, ctx: &Context, ino: Ino, name: &[u8]) -> Result<()> {
        if let Some(typ) = AclType::from_xattr_name(name) {
            return self.set_acl_xattr(ctx, ino, typ, None).await;
        }
        let keys = [self.keys.inode(ino), self.keys.xattrs(ino)];
        self.txn(&keys, |mut tx| async move {
            let mut attr = tx.attr(ino).await?.ok_or(MetaError::NotFound)?;
            self.access(ctx, &attr, access::W).await?;
            flags::check_xattr_change(&attr)?;
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
