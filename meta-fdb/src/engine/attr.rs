//! Inode attributes: `getattr`, `setattr` and `truncate`.

use async_trait::async_trait;
use meta_api::backend::Attrs;
use meta_api::perm::apply_setattr_with;
use meta_api::space::align4k;
use meta_api::{access, Attr, Context, FileType, Ino, Result, SetAttr, SetTime, Slice, CHUNK_SIZE};

use super::acl::{access as acl_access, rule_of, save_rule};
use super::data::not_regular;
use super::stats::{self, StatDelta};
use super::{add_usage, append_slices, must_attr, put_attr, TkvMeta};
use crate::keys::Keys;
use crate::kv::{KvStore, KvTxn};

/// Overlays holes so that the bytes between `old` and `new` (whichever is larger) read as
/// zeros, exactly as JuiceFS's truncate does: a hole at the tail of the first chunk, a
/// full-chunk hole on every existing chunk strictly between, and a hole at the head of
/// the last chunk. Returns the change of accounted space.
async fn truncate_chunks<T: KvTxn>(
    tx: &T,
    keys: &Keys,
    ino: Ino,
    old: u64,
    new: u64,
) -> Result<i64> {
    if old == new {
        return Ok(0);
    }
    let (left, right) = (old.min(new), old.max(new));
    let cs = CHUNK_SIZE;
    if right / cs - left / cs > 1 {
        let begin = keys.chunk(ino, (left / cs + 1) as u32);
        let end = keys.chunk(ino, (right / cs) as u32);
        let full = Slice::hole(0, cs as u32).encode();
        for (k, mut v) in tx.scan(&begin, &end, 0, false).await? {
            v.extend_from_slice(&full);
            tx.set(&k, &v);
        }
    }
    let first = (left / cs) as u32;
    let spans_chunks = right > (left / cs + 1) * cs;
    let len = if spans_chunks {
        cs - left % cs
    } else {
        right - left
    };
    append_slices(
        tx,
        keys,
        ino,
        first,
        &[Slice::hole((left % cs) as u32, len as u32)],
    )
    .await?;
    if spans_chunks && right % cs > 0 {
        append_slices(
            tx,
            keys,
            ino,
            (right / cs) as u32,
            &[Slice::hole(0, (right % cs) as u32)],
        )
        .await?;
    }
    Ok(align4k(new) - align4k(old))
}

#[async_trait]
impl<K: KvStore> Attrs for TkvMeta<K> {
    async fn getattr(&self, ino: Ino) -> Result<Attr> {
        let keys = &self.keys;
        self.kv
            .txn(|tx| async move { must_attr(&tx, keys, ino).await })
            .await
    }

    async fn setattr(&self, ctx: &Context, ino: Ino, set: &SetAttr) -> Result<Attr> {
        self.change_attr(ctx, ino, set).await
    }

    async fn truncate(&self, ctx: &Context, ino: Ino, length: u64) -> Result<Attr> {
        self.change_attr(ctx, ino, &SetAttr::new().size(length))
            .await
    }
}

impl<K: KvStore> TkvMeta<K> {
    /// `setattr`, and `truncate` as a `setattr` of the size alone. The checks follow the
    /// suite's order: the inode, the non-size changes, then the size.
    async fn change_attr(&self, ctx: &Context, ino: Ino, set: &SetAttr) -> Result<Attr> {
        let limits = match set.size {
            Some(_) => self.usage_limits().await?,
            None => None,
        };
        let fmt = &self.settings().await?;
        let on = set.size.is_some() && fmt.dir_stats;
        let now = self.now();
        let (keys, cache) = (&self.keys, &self.acls);
        self.kv
            .txn(|tx| async move {
                let cur = must_attr(&tx, keys, ino).await?;
                meta_api::flags::check_setattr(&cur, set)?;
                let rule = rule_of(&tx, keys, cache, cur.access_acl).await?;
                let (mut attr, new_rule) =
                    apply_setattr_with(ctx, &cur, rule.as_deref(), set, now)?;
                if let Some(r) = &new_rule {
                    attr.access_acl = save_rule(&tx, keys, cache, r).await?;
                }
                if (attr.uid, attr.gid) != (cur.uid, cur.gid) {
                    let usage = (meta_api::space::entry_usage(cur.typ, cur.length).1, 1);
                    let mut qt = super::quota::KvQuotas { tx: &tx, keys };
                    let (old, new) = ((cur.uid, cur.gid), (attr.uid, attr.gid));
                    meta_api::quota::move_owner(&mut qt, fmt, usage, old, new).await?;
                }
                if let Some(size) = set.size {
                    if cur.typ != FileType::Regular {
                        return Err(not_regular(cur.typ));
                    }
                    acl_access(&tx, keys, cache, ctx, &cur, access::W).await?;
                    meta_api::flags::check_truncate(&cur)?;
                    let delta = truncate_chunks(&tx, keys, ino, cur.length, size).await?;
                    let lim = limits.as_ref();
                    super::quota::charge_resize(&tx, keys, fmt, (ino, &attr), delta, lim).await?;
                    add_usage(&tx, keys, delta, 0);
                    let mut d = StatDelta::default();
                    stats::resize(&tx, keys, &mut d, (ino, &cur), cur.length, size).await?;
                    d.apply(&tx, keys, on).await?;
                    attr.length = size;
                    // Like ftruncate(2), even to the same length; an explicit mtime wins.
                    attr.ctime = now;
                    if !matches!(set.mtime, Some(SetTime::At(_))) {
                        attr.mtime = now;
                    }
                }
                if attr != cur {
                    put_attr(&tx, keys, ino, &attr);
                }
                Ok(attr)
            })
            .await
    }
}
