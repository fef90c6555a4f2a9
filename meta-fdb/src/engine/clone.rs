//! Clones on a TKV store ([`meta_api::clone`] has the walk and the protocol): one
//! transaction per node copies its attributes, xattrs, symlink target and chunk keys, adds
//! one `K` reference per slice occurrence, and writes the entry (or, for a top directory,
//! the `N{inode}` key).

use std::collections::BTreeMap;

use async_trait::async_trait;
use meta_api::backend::Clones;
use meta_api::clone::{cloned_attr, source_mask, CloneNode};
use meta_api::encoding::encode_entry;
use meta_api::quota::Charge;
use meta_api::space::{entry_usage, Usage};
use meta_api::{access, flags, trash, Attr, Context, Entry, FileType, Ino, MetaError, Result};
use meta_api::{Format, Slice};

use super::acl::access as acl_access;
use super::quota;
use super::stats::StatDelta;
use super::{add_usage, dir_attr, get_attr, get_entry, put_attr, TkvMeta};
use crate::keys::{be_u32, pack_int64, parse_int64, Keys};
use crate::kv::{prefix_end, KvStore, KvTxn};

/// The checks of a new entry `name` in `parent` by `ctx` (as a create makes them).
async fn new_entry_dir<T: KvTxn>(
    tx: &T,
    (keys, cache): (&Keys, &meta_api::acl::AclCache),
    ctx: &Context,
    parent: Ino,
    name: &[u8],
) -> Result<Attr> {
    let pattr = dir_attr(tx, keys, parent).await?;
    trash::check_live_dir(&pattr)?;
    acl_access(tx, keys, cache, ctx, &pattr, access::W | access::X).await?;
    flags::check_create(&pattr)?;
    if get_entry(tx, keys, parent, name).await?.is_some() {
        return Err(MetaError::Exists);
    }
    Ok(pattr)
}

/// Copies what hangs off `src` (xattrs; symlink target; chunks and their slice
/// references) to `ino`.
async fn copy_keys<T: KvTxn>(
    tx: &T,
    keys: &Keys,
    (src, ino): (Ino, Ino),
    typ: FileType,
) -> Result<()> {
    let from = keys.xattrs(src);
    for (k, v) in tx.scan(&from, &prefix_end(&from), 0, false).await? {
        let name = k.get(from.len()..).unwrap_or_default();
        tx.set(&keys.xattr(ino, name), &v);
    }
    match typ {
        FileType::Symlink => {
            let target = tx
                .get(&keys.symlink(src))
                .await?
                .ok_or_else(|| MetaError::Corrupt(format!("symlink {src} has no target")))?;
            tx.set(&keys.symlink(ino), &target);
        }
        FileType::Directory => tx.set(&keys.dir_stat(ino), &[0u8; 24]),
        FileType::Regular => {
            let from = keys.chunks(src);
            let mut refs: BTreeMap<(u64, u32), i64> = BTreeMap::new();
            for (k, v) in tx.scan(&from, &prefix_end(&from), 0, false).await? {
                let Some(indx) = be_u32(keys.strip(&k), 10) else {
                    continue;
                };
                for s in Slice::decode_chunk(src, indx, &v)? {
                    if s.id != 0 {
                        *refs.entry((s.id, s.size)).or_default() += 1;
                    }
                }
                tx.set(&keys.chunk(ino, indx), &v);
            }
            for ((id, size), n) in refs {
                tx.atomic_add(&keys.slice_ref(id, size), n);
            }
        }
        _ => {}
    }
    Ok(())
}

#[async_trait]
impl<K: KvStore> Clones for TkvMeta<K> {
    async fn clone_node(&self, ctx: &Context, step: &CloneNode<'_>) -> Result<Entry> {
        let ino = self.next_inode().await?;
        let limits = self.usage_limits().await?;
        let fmt: &Format = &self.settings().await?;
        let now = self.now();
        let (keys, cache) = (&self.keys, &self.acls);
        self.kv
            .txn(|tx| async move {
                let src = get_attr(&tx, keys, step.src)
                    .await?
                    .ok_or(MetaError::NotFound)?;
                acl_access(&tx, keys, cache, ctx, &src, source_mask(src.typ)).await?;
                let mut pattr = if step.top {
                    new_entry_dir(&tx, (keys, cache), ctx, step.parent, step.name).await?
                } else {
                    dir_attr(&tx, keys, step.parent).await?
                };
                let detached = step.top && src.typ == FileType::Directory;
                let parent = if detached { 0 } else { step.parent };
                let attr = cloned_attr(&src, ctx, step.opts, parent, now);
                let space = entry_usage(attr.typ, attr.length).1;
                let dirs = if detached { vec![] } else { vec![step.parent] };
                let owner = Some((attr.uid, attr.gid));
                let ch = Charge::new(space, 1, owner, dirs);
                quota::charge(&tx, keys, fmt, ch, limits.as_ref()).await?;
                put_attr(&tx, keys, ino, &attr);
                copy_keys(&tx, keys, (step.src, ino), attr.typ).await?;
                add_usage(&tx, keys, space, 1);
                if detached {
                    tx.set(&keys.detached(ino), &pack_int64(now.sec));
                } else {
                    tx.set(
                        &keys.entry(step.parent, step.name),
                        &encode_entry(attr.typ, ino),
                    );
                    if attr.typ == FileType::Directory {
                        pattr.nlink = pattr.nlink.saturating_add(1);
                    }
                    if step.top {
                        pattr.mtime = now;
                        pattr.ctime = now;
                    }
                    put_attr(&tx, keys, step.parent, &pattr);
                    StatDelta::default()
                        .entry(step.parent, &attr, 1)
                        .apply(&tx, keys, fmt.dir_stats)
                        .await?;
                }
                Ok(Entry { ino, attr })
            })
            .await
    }

    async fn attach_dir(
        &self,
        ctx: &Context,
        (parent, name): (Ino, &[u8]),
        ino: Ino,
        usage: Usage,
    ) -> Result<Entry> {
        let fmt: &Format = &self.settings().await?;
        let now = self.now();
        let (keys, cache) = (&self.keys, &self.acls);
        self.kv
            .txn(|tx| async move {
                let mut pattr = new_entry_dir(&tx, (keys, cache), ctx, parent, name).await?;
                if tx.get(&keys.detached(ino)).await?.is_none() {
                    return Err(MetaError::NotFound);
                }
                let mut attr = get_attr(&tx, keys, ino).await?.ok_or(MetaError::NotFound)?;
                // Owners and the volume were charged node by node.
                let ch = Charge::new(usage.space, usage.inodes, None, vec![parent]);
                quota::charge(&tx, keys, fmt, ch, None).await?;
                pattr.nlink = pattr.nlink.saturating_add(1);
                pattr.mtime = now;
                pattr.ctime = now;
                attr.parent = parent;
                tx.set(
                    &keys.entry(parent, name),
                    &encode_entry(FileType::Directory, ino),
                );
                put_attr(&tx, keys, parent, &pattr);
                put_attr(&tx, keys, ino, &attr);
                tx.clear(&keys.detached(ino));
                StatDelta::default()
                    .entry(parent, &attr, 1)
                    .apply(&tx, keys, fmt.dir_stats)
                    .await?;
                Ok(Entry { ino, attr })
            })
            .await
    }

    async fn detached_nodes(&self) -> Result<Vec<(Ino, i64)>> {
        self.settings().await?;
        let keys = &self.keys;
        let from = keys.detached_all();
        let pairs = self
            .kv
            .txn(|tx| {
                let from = from.clone();
                async move { tx.scan(&from, &prefix_end(&from), 0, false).await }
            })
            .await?;
        let mut out = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            let raw = k.get(from.len()..).unwrap_or_default();
            let ino = <[u8; 8]>::try_from(raw)
                .map(Ino::from_le_bytes)
                .map_err(|_| MetaError::Corrupt("a detached-node key of the wrong size".into()))?;
            let added = parse_int64(&v)
                .ok_or_else(|| MetaError::Corrupt(format!("detached node {ino}: bad time")))?;
            out.push((ino, added));
        }
        out.sort_unstable();
        Ok(out)
    }

    async fn drop_detached(&self, ino: Ino) -> Result<bool> {
        let fmt: &Format = &self.settings().await?;
        let keys = &self.keys;
        self.kv
            .txn(|tx| async move {
                if tx.get(&keys.detached(ino)).await?.is_none() {
                    return Ok(false);
                }
                tx.clear(&keys.detached(ino));
                let Some(attr) = get_attr(&tx, keys, ino).await? else {
                    return Ok(true);
                };
                let from = keys.entries(ino);
                if !tx
                    .scan(&from, &prefix_end(&from), 1, false)
                    .await?
                    .is_empty()
                {
                    return Err(MetaError::NotEmpty);
                }
                let space = entry_usage(attr.typ, attr.length).1;
                let owner = Some((attr.uid, attr.gid));
                quota::charge(&tx, keys, fmt, Charge::new(-space, -1, owner, vec![]), None).await?;
                tx.clear(&keys.inode(ino));
                let xs = keys.xattrs(ino);
                tx.clear_range(&xs, &prefix_end(&xs));
                tx.clear(&keys.dir_stat(ino));
                add_usage(&tx, keys, -space, -1);
                Ok(true)
            })
            .await
    }
}
