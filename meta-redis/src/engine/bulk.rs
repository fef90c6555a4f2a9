//! Bulk moves of a whole volume (see [`meta_api::dump`]): the counters and the deletion
//! queue a dump records, and a load into an empty volume in JuiceFS's keys (its
//! `LoadMeta`).
//!
//! A load writes each batch in one `MULTI`/`EXEC` (cut in several when a batch is very
//! large) of plain `SET`/`HSET`/`RPUSH`, refused once the volume has a setting. Slice
//! occurrences are counted in the server, one `HINCRBY` each on `loadSliceRefs`; the end of
//! the load turns them into JuiceFS's `sliceRef` fields (references − 1, none for a slice
//! with one reference) an `HSCAN` page at a time and removes them, so that memory never
//! follows the number of slices. The setting goes last, in a transaction of its own:
//! until it exists the volume does not open.

use std::collections::BTreeMap;

use async_trait::async_trait;
use meta_api::acl::Rule;
use meta_api::backend::Bulk;
use meta_api::dump::{Batch, Counters, Link, LoadEnd, QueuedDeletion};
use meta_api::encoding::encode_entry;
use meta_api::quota::QuotaTxn;
use meta_api::{trash, Ino, MetaError, Result, Slice, SLICE_BYTES};

use super::quota::RedisQuotas;
use super::upkeep::{number, opt_number};
use super::{RedisMeta, Writes};
use crate::keys::{parse_delfile_member, slice_ref_field, Keys};
use crate::txn::{Step, Tx};

/// Keys or fields asked for per `SCAN`/`ZSCAN`/`HSCAN` step, and hard links updated per
/// transaction.
const PAGE: usize = 1000;

/// Most commands one transaction of a load carries.
const TXN_COMMANDS: usize = 10_000;

/// About the most bytes one transaction of a load carries.
const TXN_BYTES: usize = 16 << 20;

/// Each counter of a dump with its key and how much less Redis stores: JuiceFS's Redis
/// inode and slice counters hold the last id handed out, a dump the next one.
fn named<'a>(k: &Keys, c: &'a mut Counters) -> [(String, &'a mut i64, i64); 6] {
    [
        (k.used_space(), &mut c.used_space, 0),
        (k.total_inodes(), &mut c.used_inodes, 0),
        (k.next_inode(), &mut c.next_inode, 1),
        (k.next_chunk(), &mut c.next_chunk, 1),
        (k.next_session(), &mut c.next_session, 0),
        (k.counter(trash::NEXT_TRASH), &mut c.next_trash, 0),
    ]
}

/// The writes of a load, cut into transactions of bounded size.
struct Txns {
    full: Vec<redis::Pipeline>,
    cur: Writes,
    commands: usize,
    bytes: usize,
}

impl Txns {
    fn new() -> Txns {
        Txns {
            full: Vec::new(),
            cur: Writes::new(),
            commands: 0,
            bytes: 0,
        }
    }

    /// Where to queue one more record of about `bytes` bytes.
    fn next(&mut self, bytes: usize) -> &mut Writes {
        if self.commands >= TXN_COMMANDS || (self.commands > 0 && self.bytes + bytes > TXN_BYTES) {
            self.full
                .push(std::mem::replace(&mut self.cur, Writes::new()).p);
            self.commands = 0;
            self.bytes = 0;
        }
        self.commands += 1;
        self.bytes += bytes;
        &mut self.cur
    }

    fn into_pipelines(mut self) -> Vec<redis::Pipeline> {
        if self.commands > 0 {
            self.full.push(self.cur.p);
        }
        self.full
    }
}

impl RedisMeta {
    /// Fails with `Exists` when the volume has a setting (read under `WATCH`, so that a
    /// format meanwhile makes the transaction run again): a load never writes into one.
    async fn refuse_formatted(&self, tx: &mut Tx) -> Result<()> {
        let setting = self.keys.setting();
        tx.watch(std::slice::from_ref(&setting)).await?;
        let v: Option<Vec<u8>> = tx.cmd(redis::cmd("GET").arg(setting)).await?;
        let json = v.map(|v| String::from_utf8_lossy(&v).into_owned());
        meta_api::checkpoint::load_may_write(json.as_deref())
    }

    /// Commits `writes` in one transaction of a load.
    async fn commit_load(&self, writes: &redis::Pipeline) -> Result<()> {
        self.txn(&[], |mut tx| async move {
            self.refuse_formatted(&mut tx).await?;
            Ok(Step::Commit(writes.clone(), ()))
        })
        .await
    }

    /// The id of `rule`: an equal stored rule's, or a new one stored in a transaction of
    /// its own, before the inodes that refer to it.
    async fn acl_id(&self, rule: &Rule) -> Result<u32> {
        if let Some(id) = self.acls.find(rule) {
            return Ok(id);
        }
        let id = self
            .txn(&[], |mut tx| async move {
                self.refuse_formatted(&mut tx).await?;
                let mut w = Writes::new();
                let id = self.save_rule(&mut tx, &mut w, rule).await?;
                Ok(w.commit(id))
            })
            .await?;
        self.acls.insert(id, rule.clone());
        Ok(id)
    }

    /// Sets the link counts of `links` (parent 0) and writes their `p{ino}` parent counts.
    async fn load_links(&self, links: &[Link]) -> Result<()> {
        let k = &self.keys;
        let inos: Vec<Ino> = links.iter().map(|l| l.ino).collect();
        let watch: Vec<String> = inos.iter().map(|&i| k.inode(i)).collect();
        self.txn(&watch, |mut tx| {
            let inos = &inos;
            async move {
                self.refuse_formatted(&mut tx).await?;
                let attrs = tx.attrs(inos).await?;
                let mut w = Writes::new();
                for (link, attr) in links.iter().zip(attrs) {
                    let mut attr = attr.ok_or(Link::WITHOUT_NODE)?;
                    attr.nlink = link.nlink();
                    attr.parent = 0;
                    w.set_attr(k, link.ino, &attr);
                    for &(parent, n) in &link.parents {
                        w.hset(
                            k.parents(link.ino),
                            parent.to_string().as_bytes(),
                            n.to_string().as_bytes(),
                        );
                    }
                }
                Ok(w.commit(()))
            }
        })
        .await
    }

    /// Turns the occurrences counted in `loadSliceRefs` into `sliceRef` fields, a page at
    /// a time: n occurrences are n references, stored as n − 1, and no field for one.
    /// Each page leaves `loadSliceRefs` in the transaction that writes it (so a page seen
    /// twice by the scan, or a conversion run again after a failure, counts once), and
    /// the hash is gone at the end.
    async fn store_slice_refs(&self) -> Result<()> {
        let k = &self.keys;
        let mut cursor: u64 = 0;
        loop {
            let (next, flat): (u64, Vec<Vec<u8>>) = self
                .read(
                    redis::cmd("HSCAN")
                        .arg(k.load_slice_refs())
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(PAGE),
                )
                .await?;
            if !flat.is_empty() {
                let mut refs = redis::cmd("HSET");
                refs.arg(k.slice_refs());
                let mut shared = false;
                let mut seen = redis::cmd("HDEL");
                seen.arg(k.load_slice_refs());
                for pair in flat.chunks_exact(2) {
                    let n = number("a slice's occurrences in loadSliceRefs", &pair[1])?;
                    if n > 1 {
                        refs.arg(&pair[0]).arg(n - 1);
                        shared = true;
                    }
                    seen.arg(&pair[0]);
                }
                let mut w = Writes::new();
                if shared {
                    w.p.add_command(refs).ignore();
                }
                w.p.add_command(seen).ignore();
                self.commit_load(&w.p).await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

#[async_trait]
impl Bulk for RedisMeta {
    async fn counters(&self) -> Result<Counters> {
        let mut out = Counters::default();
        let named = named(&self.keys, &mut out);
        let keys: Vec<&String> = named.iter().map(|(key, _, _)| key).collect();
        let got: Vec<Option<Vec<u8>>> = self.read(redis::cmd("MGET").arg(&keys)).await?;
        for ((key, value, below), got) in named.into_iter().zip(got) {
            if let Some(v) = opt_number(&key, got)? {
                *value = v.saturating_add(below);
            }
        }
        Ok(out)
    }

    /// `delfiles` is ordered by time, not inode: the whole set is scanned, keeping the
    /// `limit` smallest inodes above `after`, so memory follows `limit`, not the queue.
    async fn queued_deletions(&self, after: Ino, limit: usize) -> Result<Vec<QueuedDeletion>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut found: BTreeMap<Ino, QueuedDeletion> = BTreeMap::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, flat) = self.delfiles_page(cursor, None).await?;
            for pair in flat.chunks_exact(2) {
                // JuiceFS's legacy members name no length: not files a dump can record.
                let Some((ino, length)) = parse_delfile_member(&pair[0]) else {
                    continue;
                };
                let beyond =
                    found.len() >= limit && found.last_key_value().is_some_and(|(&m, _)| ino > m);
                if ino <= after || beyond || found.contains_key(&ino) {
                    continue;
                }
                let queued = std::str::from_utf8(&pair[1])
                    .ok()
                    .and_then(|s| s.parse::<f64>().ok())
                    .ok_or_else(|| MetaError::Corrupt(format!("delfiles score of inode {ino}")))?;
                found.insert(
                    ino,
                    QueuedDeletion {
                        ino,
                        length,
                        queued: queued as i64,
                    },
                );
                if found.len() > limit {
                    found.pop_last();
                }
            }
            if next == 0 {
                return Ok(found.into_values().collect());
            }
            cursor = next;
        }
    }

    /// No key under the volume's prefix but commit markers, which are the connections'
    /// (on a plain server without a prefix: none in the database, as JuiceFS checks).
    async fn is_empty(&self) -> Result<bool> {
        let pattern = self.keys.pattern("*");
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = self.scan_page(&pattern, cursor).await?;
            if keys.iter().any(|key| !self.keys.is_txn_marker(key)) {
                return Ok(false);
            }
            if next == 0 {
                return Ok(true);
            }
            cursor = next;
        }
    }

    async fn load_batch(&self, batch: &Batch) -> Result<()> {
        let k = &self.keys;
        let mut txns = Txns::new();
        for n in &batch.nodes {
            let ino = n.ino;
            let mut attr = n.attr.clone();
            if let Some(rule) = &n.access_acl {
                attr.access_acl = self.acl_id(rule).await?;
            }
            if let Some(rule) = &n.default_acl {
                attr.default_acl = self.acl_id(rule).await?;
            }
            txns.next(64).set_attr(k, ino, &attr);
        }
        for e in &batch.edges {
            txns.next(e.name.len() + 16).hset(
                k.entries(e.parent),
                &e.name,
                &encode_entry(e.typ, e.ino),
            );
        }
        for (ino, indx, slices) in &batch.chunks {
            if slices.is_empty() {
                continue;
            }
            let key = k.chunk(*ino, *indx);
            let p = &mut txns.next(slices.len() * SLICE_BYTES).p;
            p.cmd("RPUSH").arg(key);
            for s in slices {
                p.arg(&s.encode()[..]);
            }
            p.ignore();
        }
        for (ino, target) in &batch.symlinks {
            txns.next(target.len()).set(k.symlink(*ino), target);
        }
        for (ino, name, value) in &batch.xattrs {
            txns.next(name.len() + value.len())
                .hset(k.xattrs(*ino), name, value);
        }
        for (ino, st) in &batch.dir_stats {
            txns.next(64).set_dir_stat(k, *ino, st);
        }
        for &(id, size) in &batch.slice_refs {
            txns.next(32)
                .hincrby(k.load_slice_refs(), slice_ref_field(id, size).as_bytes(), 1);
        }
        for writes in txns.into_pipelines() {
            self.commit_load(&writes).await?;
        }
        Ok(())
    }

    /// The links (a transaction per `PAGE` of them), the slice references (one per
    /// page), the counters and quotas in one transaction, then the setting in its own.
    async fn finish_load(&self, end: &LoadEnd) -> Result<()> {
        end.format.check_supported()?;
        for links in end.links.chunks(PAGE) {
            self.load_links(links).await?;
        }
        self.store_slice_refs().await?;
        let k = &self.keys;
        self.txn(&[], |mut tx| async move {
            self.refuse_formatted(&mut tx).await?;
            let mut w = Writes::new();
            let mut counters = end.counters;
            for (key, value, below) in named(k, &mut counters) {
                // An id counter never goes below 0: id 0 is never handed out.
                let stored = if below > 0 {
                    value.saturating_sub(below).max(0)
                } else {
                    *value
                };
                w.set(key, stored.to_string().as_bytes());
            }
            let mut quotas = RedisQuotas {
                meta: self,
                tx: &mut tx,
                w: &mut w,
            };
            for (kind, key, q) in &end.quotas {
                quotas.put_quota(*kind, *key, q).await?;
            }
            Ok(w.commit(()))
        })
        .await?;
        let json = end.format.to_json();
        let mut w = Writes::new();
        w.set(k.setting(), json.as_bytes());
        self.commit_load(&w.p).await?;
        self.store_format_cache(&end.format);
        Ok(())
    }

    /// A node at a time (batched reads are SQLite's so far).
    async fn node_contents(
        &self,
        nodes: &[(Ino, meta_api::Attr)],
    ) -> Result<Vec<Option<meta_api::dump::NodeContents>>> {
        meta_api::dump::node_contents_one_by_one(self, nodes).await
    }

    async fn hold_slices(&self, slices: &[(u64, u32)], delta: i64) -> Result<Vec<Slice>> {
        self.settings().await?;
        let k = &self.keys;
        self.txn(&[k.slice_refs()], |mut tx| async move {
            let mut w = Writes::new();
            if delta < 0 {
                let uses: Vec<(u64, u32, i64)> = slices
                    .iter()
                    .map(|&(id, size)| (id, size, -delta))
                    .collect();
                let freed = self.drop_refs(&mut tx, &mut w, &uses).await?;
                return Ok(w.commit(freed));
            }
            let fields: Vec<String> = slices
                .iter()
                .map(|&(id, size)| slice_ref_field(id, size))
                .collect();
            if fields.is_empty() {
                return Ok(w.commit(Vec::new()));
            }
            let refs: Vec<Option<i64>> = tx
                .cmd(redis::cmd("HMGET").arg(k.slice_refs()).arg(&fields))
                .await?;
            for (field, cur) in fields.iter().zip(refs) {
                // A missing field is one reference; a pending slice is never counted back.
                let cur = cur.unwrap_or(0);
                if !meta_api::upkeep::is_pending_extra(cur) {
                    w.hset(
                        k.slice_refs(),
                        field.as_bytes(),
                        (cur + delta).to_string().as_bytes(),
                    );
                }
            }
            Ok(w.commit(Vec::new()))
        })
        .await
    }

    /// Every key of the volume but the setting and the id and usage counters, deleted a
    /// page at a time (the restore's marker keeps the volume closed meanwhile).
    async fn wipe(&self) -> Result<()> {
        self.settings().await?;
        let k = &self.keys;
        let keep: std::collections::HashSet<Vec<u8>> = [
            k.setting(),
            k.next_inode(),
            k.next_chunk(),
            k.next_session(),
            k.counter(trash::NEXT_TRASH),
            k.used_space(),
            k.total_inodes(),
            k.acl_max_id(),
        ]
        .into_iter()
        .map(String::into_bytes)
        .collect();
        let pattern = k.pattern("*");
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = self.scan_page(&pattern, cursor).await?;
            let doomed: Vec<&Vec<u8>> = keys.iter().filter(|key| !keep.contains(*key)).collect();
            if !doomed.is_empty() {
                let _: i64 = self.read(redis::cmd("DEL").arg(doomed)).await?;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        self.acls.clear();
        Ok(())
    }
}
