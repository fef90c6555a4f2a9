//! Inode attributes: `getattr`, `setattr` and `truncate`.

use async_trait::async_trait;
use meta_api::backend::Attrs;
use meta_api::flags;
use meta_api::perm::apply_setattr_with;
use meta_api::space::align4k;
use meta_api::{access, Attr, Context, FileType, Ino, MetaError, Result, SetAttr};

use super::data::need_regular;
use super::{now, RedisMeta, Writes};
use crate::txn::Step;

#[async_trait]
impl Attrs for RedisMeta {
    async fn getattr(&self, ino: Ino) -> Result<Attr> {
        self.get_attr(ino).await?.ok_or(MetaError::NotFound)
    }

    async fn setattr(&self, ctx: &Context, ino: Ino, set: &SetAttr) -> Result<Attr> {
        let keys = [self.keys.inode(ino)];
        self.txn(&keys, |mut tx| async move {
            let cur = tx.attr(ino).await?.ok_or(MetaError::NotFound)?;
            flags::check_setattr(&cur, set)?;
            let t = now();
            let rule = self.rule_of(cur.access_acl).await?;
            let (mut new, new_rule) = apply_setattr_with(ctx, &cur, rule.as_deref(), set, t)?;
            let mut w = Writes::new();
            if let Some(r) = &new_rule {
                new.access_acl = self.save_rule(&mut tx, &mut w, r).await?;
            }
            if (new.uid, new.gid) != (cur.uid, cur.gid) {
                let fmt = self.settings().await?;
                let usage = (meta_api::space::entry_usage(cur.typ, cur.length).1, 1);
                let mut qt = super::quota::RedisQuotas {
                    meta: self,
                    tx: &mut tx,
                    w: &mut w,
                };
                let (old, to) = ((cur.uid, cur.gid), (new.uid, new.gid));
                meta_api::quota::move_owner(&mut qt, &fmt, usage, old, to).await?;
            }
            if let Some(size) = set.size {
                match cur.typ {
                    FileType::Regular => {}
                    FileType::Directory => return Err(MetaError::IsDir),
                    _ => return Err(MetaError::InvalidArgument("size of a non-regular file")),
                }
                self.access(ctx, &cur, access::W).await?;
                flags::check_truncate(&cur)?;
                if size != cur.length {
                    let delta = align4k(size) - align4k(cur.length);
                    self.charge_resize(&mut tx, &mut w, ino, &new, delta)
                        .await?;
                    self.truncate_writes(&mut tx, &mut w, ino, cur.length, size)
                        .await?;
                    self.resize_stats(&mut tx, &mut w, ino, &cur, cur.length, size)
                        .await?;
                    w.incrby(self.keys.used_space(), delta);
                    new.length = size;
                }
                // A size change stamps the times even when the size stays (as truncate(2)).
                if !matches!(set.mtime, Some(meta_api::SetTime::At(_))) {
                    new.mtime = t;
                }
                new.ctime = t;
            }
            if new == cur {
                return Ok(Step::Done(cur));
            }
            w.set_attr(&self.keys, ino, &new);
            Ok(w.commit(new))
        })
        .await
    }

    async fn truncate(&self, ctx: &Context, ino: Ino, length: u64) -> Result<Attr> {
        let keys = [self.keys.inode(ino)];
        self.txn(&keys, |mut tx| async move {
            let mut attr = tx.attr(ino).await?.ok_or(MetaError::NotFound)?;
            need_regular(&attr)?;
            self.access(ctx, &attr, access::W).await?;
            flags::check_truncate(&attr)?;
            let delta = align4k(length) - align4k(attr.length);
            let mut w = Writes::new();
            if length != attr.length {
                self.charge_resize(&mut tx, &mut w, ino, &attr, delta)
                    .await?;
                self.truncate_writes(&mut tx, &mut w, ino, attr.length, length)
                    .await?;
                self.resize_stats(&mut tx, &mut w, ino, &attr, attr.length, length)
                    .await?;
            }
            let t = now();
            attr.length = length;
            attr.mtime = t;
            attr.ctime = t;
            w.set_attr(&self.keys, ino, &attr)
                .incrby(self.keys.used_space(), delta);
            Ok(w.commit(attr))
        })
        .await
    }
}
