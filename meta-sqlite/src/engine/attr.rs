//! Inode attributes: `getattr`, `setattr` and `truncate`.

use async_trait::async_trait;
use meta_api::backend::Attrs;

use meta_api::perm::apply_setattr_with;
use meta_api::{Attr, Context, Ino, MetaError, Result, SetAttr, Timestamp};

use crate::engine::data::resize;
use crate::engine::namespace::check_truncatable;
use crate::engine::node::{must_node, update_node};
use crate::SqliteMeta;

#[async_trait]
impl Attrs for SqliteMeta {
    async fn getattr(&self, ino: Ino) -> Result<Attr> {
        self.fmt().await?;
        self.read_node(ino).await?.ok_or(MetaError::NotFound)
    }

    async fn setattr(&self, ctx: &Context, ino: Ino, set: &SetAttr) -> Result<Attr> {
        let fmt = self.fmt().await?;
        let fmt = &*fmt;
        let now = Timestamp::now();
        self.db
            .txn(|c, _| {
                Box::pin(async move {
                    let cur = must_node(c, ino).await?;
                    meta_api::flags::check_setattr(&cur, set)?;
                    let rule = match cur.access_acl {
                        0 => None,
                        id => Some(self.acl_rule(c, id).await?),
                    };
                    let (mut attr, new_rule) =
                        apply_setattr_with(ctx, &cur, rule.as_deref(), set, now)?;
                    if let Some(r) = &new_rule {
                        attr.access_acl = self.save_rule(c, r).await?;
                    }
                    if (attr.uid, attr.gid) != (cur.uid, cur.gid) {
                        let usage = (meta_api::space::entry_usage(cur.typ, cur.length).1, 1);
                        let mut qt = crate::engine::quota::SqlQuotas(&mut *c);
                        let (old, new) = ((cur.uid, cur.gid), (attr.uid, attr.gid));
                        meta_api::quota::move_owner(&mut qt, fmt, usage, old, new).await?;
                    }
                    let mut resized = crate::engine::data::Resized::default();
                    if let Some(size) = set.size {
                        let check = self.check_rule(c, ctx, Some(&cur)).await?;
                        check_truncatable(ctx, &cur, check.as_deref())?;
                        resized = crate::engine::data::resize(c, fmt, ino, &mut attr, size).await?;
                        if !matches!(set.mtime, Some(meta_api::SetTime::At(_))) {
                            attr.mtime = now;
                        }
                        attr.ctime = now;
                    }
                    if attr != cur {
                        update_node(c, ino, &attr).await?;
                    }
                    if attr.access_acl != cur.access_acl {
                        crate::engine::acl::write_acl_columns(c, ino, &attr).await?;
                    }
                    resized.apply(c, fmt, ino, attr.parent).await?;
                    Ok(attr)
                })
            })
            .await
    }

    async fn truncate(&self, ctx: &Context, ino: Ino, length: u64) -> Result<Attr> {
        let fmt = self.fmt().await?;
        let fmt = &*fmt;
        let now = Timestamp::now();
        self.db
            .txn(|c, _| {
                Box::pin(async move {
                    let mut attr = must_node(c, ino).await?;
                    let rule = self.check_rule(c, ctx, Some(&attr)).await?;
                    check_truncatable(ctx, &attr, rule.as_deref())?;
                    let resized = resize(c, fmt, ino, &mut attr, length).await?;
                    attr.mtime = now;
                    attr.ctime = now;
                    update_node(c, ino, &attr).await?;
                    resized.apply(c, fmt, ino, attr.parent).await?;
                    Ok(attr)
                })
            })
            .await
    }
}
