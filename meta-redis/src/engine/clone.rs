//! Clones in Redis ([`meta_api::clone`] has the walk and the protocol): one `WATCH`/`MULTI`
//! per node, watching the source's inode and chunk keys, copies its attributes, xattrs,
//! symlink target and chunk lists, adds one `sliceRef` per slice occurrence, and writes
//! the entry (or, for a top directory, the `detachedNodes` member).

use std::collections::BTreeMap;

use async_trait::async_trait;
use meta_api::backend::Clones;
use meta_api::clone::{cloned_attr, source_mask, CloneNode};
use meta_api::encoding::encode_entry;
use meta_api::quota::Charge;
use meta_api::space::Usage;
use meta_api::{flags, trash, Attr, Context, Entry, FileType, Ino, MetaError, Result};

use super::data::{chunks_of, decode_records};
use super::{entry_usage, need_dir, now, DirStats, RedisMeta, Writes};
use crate::keys::slice_ref_field;
use crate::txn::Tx;

impl RedisMeta {
    /// The checks of a new entry `name` in `parent` by `ctx` (as a create makes them).
    async fn new_entry_dir(
        &self,
        tx: &mut Tx,
        ctx: &Context,
        parent: Ino,
        name: &[u8],
    ) -> Result<Attr> {
        let (pattr, entry) = tx.attr_and_entry(parent, name).await?;
        let pattr = need_dir(pattr)?;
        trash::check_live_dir(&pattr)?;
        self.access(ctx, &pattr, meta_api::access::W | meta_api::access::X)
            .await?;
        if entry.is_some() {
            return Err(MetaError::Exists);
        }
        flags::check_create(&pattr)?;
        Ok(pattr)
    }

    /// Queues the copies of what hangs off `src` (xattrs; symlink target; chunk lists and
    /// their slice references) for `ino`, reading them in `tx` (the chunk keys watched).
    async fn copy_records(
        &self,
        tx: &mut Tx,
        w: &mut Writes,
        (src, ino): (Ino, Ino),
        attr: &Attr,
    ) -> Result<()> {
        let k = &self.keys;
        let xattrs: Vec<(Vec<u8>, Vec<u8>)> =
            tx.cmd(redis::cmd("HGETALL").arg(k.xattrs(src))).await?;
        for (name, value) in &xattrs {
            w.hset(k.xattrs(ino), name, value);
        }
        match attr.typ {
            FileType::Symlink => {
                let target: Option<Vec<u8>> = tx.cmd(redis::cmd("GET").arg(k.symlink(src))).await?;
                let target = target
                    .ok_or_else(|| MetaError::Corrupt(format!("symlink {src} has no target")))?;
                w.set(k.symlink(ino), &target);
            }
            FileType::Directory => {
                w.set_dir_stat(k, ino, &Default::default());
            }
            FileType::Regular if attr.length > 0 => {
                let last = u32::try_from(chunks_of(attr.length) - 1).unwrap_or(u32::MAX);
                let idx = self.chunks_in(src, (0, last)).await?;
                let keys: Vec<String> = idx.iter().map(|&i| k.chunk(src, i)).collect();
                tx.watch(&keys).await?;
                let mut p = redis::pipe();
                for key in &keys {
                    p.cmd("LRANGE").arg(key).arg(0).arg(-1);
                }
                let lists: Vec<Vec<Vec<u8>>> = tx.pipe(&p).await?;
                let mut refs: BTreeMap<(u64, u32), i64> = BTreeMap::new();
                for (&indx, records) in idx.iter().zip(&lists) {
                    for s in decode_records(src, indx, records)? {
                        if s.id != 0 {
                            *refs.entry((s.id, s.size)).or_default() += 1;
                        }
                    }
                    for r in records {
                        w.rpush(k.chunk(ino, indx), r);
                    }
                }
                for ((id, size), n) in refs {
                    w.hincrby(k.slice_refs(), slice_ref_field(id, size).as_bytes(), n);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[async_trait]
impl Clones for RedisMeta {
    async fn clone_node(&self, ctx: &Context, step: &CloneNode<'_>) -> Result<Entry> {
        let ino = self.new_inode().await?;
        let keys = [
            self.keys.inode(step.src),
            self.keys.inode(step.parent),
            self.keys.entries(step.parent),
        ];
        self.txn(&keys, |mut tx| async move {
            let src = tx.attr(step.src).await?.ok_or(MetaError::NotFound)?;
            self.access(ctx, &src, source_mask(src.typ)).await?;
            let mut pattr = if step.top {
                self.new_entry_dir(&mut tx, ctx, step.parent, step.name)
                    .await?
            } else {
                need_dir(tx.attr(step.parent).await?)?
            };
            let detached = step.top && src.typ == FileType::Directory;
            let t = now();
            let parent = if detached { 0 } else { step.parent };
            let attr = cloned_attr(&src, ctx, step.opts, parent, t);
            let k = &self.keys;
            let mut w = Writes::new();
            let (_, space) = entry_usage(&attr);
            let dirs = if detached { vec![] } else { vec![step.parent] };
            let owner = Some((attr.uid, attr.gid));
            self.charge(&mut tx, &mut w, Charge::new(space, 1, owner, dirs), true)
                .await?;
            self.copy_records(&mut tx, &mut w, (step.src, ino), &attr)
                .await?;
            w.set_attr(k, ino, &attr)
                .incrby(k.used_space(), space)
                .incrby(k.total_inodes(), 1);
            if detached {
                w.zadd(k.detached_nodes(), t.sec, &ino.to_string());
            } else {
                w.hset(
                    k.entries(step.parent),
                    step.name,
                    &encode_entry(attr.typ, ino),
                );
                if attr.typ == FileType::Directory {
                    pattr.nlink = pattr.nlink.saturating_add(1);
                }
                if step.top {
                    pattr.mtime = t;
                    pattr.ctime = t;
                }
                w.set_attr(k, step.parent, &pattr);
                let mut st = DirStats::default();
                st.entry(step.parent, entry_usage(&attr), 1);
                self.write_dir_stats(&mut tx, &mut w, &st).await?;
            }
            Ok(w.commit(Entry { ino, attr }))
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
        let keys = [
            self.keys.inode(parent),
            self.keys.entries(parent),
            self.keys.inode(ino),
            self.keys.detached_nodes(),
        ];
        self.txn(&keys, |mut tx| async move {
            let mut pattr = self.new_entry_dir(&mut tx, ctx, parent, name).await?;
            let k = &self.keys;
            let score: Option<f64> = tx
                .cmd(redis::cmd("ZSCORE").arg(k.detached_nodes()).arg(ino))
                .await?;
            let mut attr = match (score, tx.attr(ino).await?) {
                (Some(_), Some(a)) => a,
                _ => return Err(MetaError::NotFound),
            };
            let mut w = Writes::new();
            // Owners and the volume were charged node by node.
            let ch = Charge::new(usage.space, usage.inodes, None, vec![parent]);
            self.charge(&mut tx, &mut w, ch, false).await?;
            let t = now();
            pattr.nlink = pattr.nlink.saturating_add(1);
            pattr.mtime = t;
            pattr.ctime = t;
            attr.parent = parent;
            w.hset(
                k.entries(parent),
                name,
                &encode_entry(FileType::Directory, ino),
            )
            .set_attr(k, parent, &pattr)
            .set_attr(k, ino, &attr)
            .zrem(k.detached_nodes(), ino.to_string().as_bytes());
            let mut st = DirStats::default();
            st.entry(parent, entry_usage(&attr), 1);
            self.write_dir_stats(&mut tx, &mut w, &st).await?;
            Ok(w.commit(Entry { ino, attr }))
        })
        .await
    }

    async fn detached_nodes(&self) -> Result<Vec<(Ino, i64)>> {
        let raw: Vec<(String, f64)> = self
            .read(
                redis::cmd("ZRANGE")
                    .arg(self.keys.detached_nodes())
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES"),
            )
            .await?;
        let mut out = Vec::with_capacity(raw.len());
        for (m, score) in raw {
            let ino = m
                .parse::<Ino>()
                .map_err(|_| MetaError::Corrupt(format!("detached node {m:?}")))?;
            out.push((ino, score as i64));
        }
        out.sort_unstable();
        Ok(out)
    }

    async fn drop_detached(&self, ino: Ino) -> Result<bool> {
        let keys = [
            self.keys.inode(ino),
            self.keys.entries(ino),
            self.keys.detached_nodes(),
        ];
        self.txn(&keys, |mut tx| async move {
            let k = &self.keys;
            let score: Option<f64> = tx
                .cmd(redis::cmd("ZSCORE").arg(k.detached_nodes()).arg(ino))
                .await?;
            if score.is_none() {
                return Ok(crate::txn::Step::Done(false));
            }
            let mut w = Writes::new();
            w.zrem(k.detached_nodes(), ino.to_string().as_bytes());
            if let Some(attr) = tx.attr(ino).await? {
                let n: u64 = tx.cmd(redis::cmd("HLEN").arg(k.entries(ino))).await?;
                if n > 0 {
                    return Err(MetaError::NotEmpty);
                }
                let (_, space) = entry_usage(&attr);
                let owner = Some((attr.uid, attr.gid));
                self.charge(
                    &mut tx,
                    &mut w,
                    Charge::new(-space, -1, owner, vec![]),
                    false,
                )
                .await?;
                w.del(k.inode(ino))
                    .del(k.xattrs(ino))
                    .incrby(k.used_space(), -space)
                    .incrby(k.total_inodes(), -1);
                self.drop_dir_fields(&mut w, ino);
            }
            Ok(w.commit(true))
        })
        .await
    }
}
