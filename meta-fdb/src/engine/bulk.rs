//! Bulk moves of a whole volume ([`meta_api::dump`]): what a dump reads besides the tree,
//! and the writes of a load into an empty volume.
//!
//! A load writes each batch blindly, in transactions of at most [`TXN_KEYS`] keys and
//! [`TXN_BYTES`] bytes (well under FoundationDB's 10 MB and 5 s). It counts the
//! occurrences of each slice in an `OL{id}{size}` counter (atomic adds: no reads, no
//! conflicts, no memory in the client); the end of the load turns each count `n` into
//! JuiceFS's `K{id}{size}` = `n - 1` (no key for one reference), a page per transaction
//! that also clears the counts it converted, so a page run twice converts nothing twice.
//! The setting comes last, in a transaction of its own: until then the volume does not
//! open.

use std::borrow::Cow;
use std::collections::BTreeMap;

use async_trait::async_trait;
use meta_api::acl::Rule;
use meta_api::backend::Bulk;
use meta_api::dump::{Batch, Counters, Link, LoadEnd, QueuedDeletion};
use meta_api::encoding::{encode_attr, encode_entry};
use meta_api::quota::QuotaTxn;
use meta_api::{Ino, MetaError, Result, Slice};

use super::acl::save_rule;
use super::purge::delfile_of_key;
use super::quota::KvQuotas;
use super::upkeep::PAGE;
use super::volume::settings_json;
use super::{get_attr, put_attr, stats, TkvMeta};
use crate::keys::{
    be_u32, be_u64, parse_int64, Keys, NEXT_CHUNK, NEXT_INODE, NEXT_SESSION, NEXT_TRASH,
    TOTAL_INODES, USED_SPACE,
};
use crate::kv::{pack_counter, parse_counter, KvStore, KvTxn};

/// The most keys one transaction of a load writes.
const TXN_KEYS: usize = 2000;

/// The most bytes (keys and values) one transaction of a load writes.
const TXN_BYTES: usize = 2 << 20;

/// The counters a dump records, in the order of [`to_values`] and [`from_values`]. The TKV
/// engine stores the next inode and slice id, as the dump does.
const COUNTERS: [&str; 6] = [
    USED_SPACE,
    TOTAL_INODES,
    NEXT_INODE,
    NEXT_CHUNK,
    NEXT_SESSION,
    NEXT_TRASH,
];

fn to_values(c: &Counters) -> [i64; 6] {
    [
        c.used_space,
        c.used_inodes,
        c.next_inode,
        c.next_chunk,
        c.next_session,
        c.next_trash,
    ]
}

fn from_values(
    [used_space, used_inodes, next_inode, next_chunk, next_session, next_trash]: [i64; 6],
) -> Counters {
    Counters {
        used_space,
        used_inodes,
        next_inode,
        next_chunk,
        next_session,
        next_trash,
    }
}

/// One write of a load.
enum Put<'a> {
    /// Sets a key.
    Set(Vec<u8>, Cow<'a, [u8]>),
    /// Counts one more occurrence of a slice.
    Count(Vec<u8>),
}

impl Put<'_> {
    fn bytes(&self) -> usize {
        match self {
            Put::Set(k, v) => k.len() + v.len(),
            Put::Count(k) => k.len() + 8,
        }
    }

    fn apply<T: KvTxn>(&self, tx: &T) {
        match self {
            Put::Set(k, v) => tx.set(k, v),
            Put::Count(k) => tx.atomic_add(k, 1),
        }
    }
}

/// How many of `puts` (not empty) the next transaction writes: at least one, at most
/// [`TXN_KEYS`] and, past the first, [`TXN_BYTES`].
fn txn_len(puts: &[Put<'_>]) -> usize {
    let mut bytes = 0;
    for (i, p) in puts.iter().enumerate() {
        bytes += p.bytes();
        if i == TXN_KEYS || (i > 0 && bytes > TXN_BYTES) {
            return i;
        }
    }
    puts.len()
}

/// The slice of an `OL{id}{size}` key (prefix stripped).
fn slice_of_count_key(k: &[u8]) -> Result<(u64, u32)> {
    match (k.len(), be_u64(k, 2), be_u32(k, 10)) {
        (14, Some(id), Some(size)) => Ok((id, size)),
        _ => Err(MetaError::Corrupt(format!(
            "slice occurrence key of {} bytes",
            k.len()
        ))),
    }
}

impl<K: KvStore> TkvMeta<K> {
    /// The id of ACL `rule` (0 for none): an equal stored rule's, or a new one stored in a
    /// transaction of its own (and cached once committed).
    async fn rule_id(&self, rule: Option<&Rule>) -> Result<u32> {
        let Some(rule) = rule.filter(|r| !r.is_empty()) else {
            return Ok(0);
        };
        if let Some(id) = self.acls.find(rule) {
            return Ok(id);
        }
        let (keys, cache) = (&self.keys, &self.acls);
        let id = self
            .kv
            .txn(|tx| async move { save_rule(&tx, keys, cache, rule).await })
            .await?;
        cache.insert(id, rule.clone());
        Ok(id)
    }

    /// Writes `puts` in transactions of bounded size.
    async fn write_all(&self, puts: &[Put<'_>]) -> Result<()> {
        let mut rest = puts;
        while !rest.is_empty() {
            let (now, later) = rest.split_at(txn_len(rest));
            self.kv
                .txn(|tx| async move {
                    now.iter().for_each(|p| p.apply(&tx));
                    Ok(())
                })
                .await?;
            rest = later;
        }
        Ok(())
    }

    /// Turns the slice occurrences a load counted into JuiceFS's reference keys, a page
    /// per transaction.
    async fn store_slice_refs(&self) -> Result<()> {
        let keys = &self.keys;
        let prefix = keys.tag(b"OL");
        let (begin, end) = (&prefix, &Keys::end_of(&prefix));
        loop {
            let converted = self
                .kv
                .txn(|tx| async move {
                    let page = tx.scan(begin, end, TXN_KEYS, false).await?;
                    for (k, v) in &page {
                        let (id, size) = slice_of_count_key(keys.strip(k))?;
                        let extra = parse_counter(Some(v)) - 1;
                        if extra > 0 {
                            tx.set(&keys.slice_ref(id, size), &pack_counter(extra));
                        }
                        tx.clear(k);
                    }
                    Ok(page.len())
                })
                .await?;
            if converted < TXN_KEYS {
                return Ok(());
            }
        }
    }
}

#[async_trait]
impl<K: KvStore> Bulk for TkvMeta<K> {
    async fn counters(&self) -> Result<Counters> {
        let keys = &self.keys;
        self.kv
            .txn(|tx| async move {
                let mut values = [0; 6];
                for (v, name) in values.iter_mut().zip(COUNTERS) {
                    *v = parse_counter(tx.get(&keys.counter(name)).await?.as_deref());
                }
                Ok(from_values(values))
            })
            .await
    }

    /// `D` keys sort by the inode's little-endian bytes, not by number: this walks them
    /// all, keeping the `limit` lowest inodes above `after`.
    async fn queued_deletions(&self, after: Ino, limit: usize) -> Result<Vec<QueuedDeletion>> {
        let keys = &self.keys;
        let mut lowest = BTreeMap::new();
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.walk(&keys.delfiles(), |page| {
            for (k, v) in page {
                let Some((ino, length)) = delfile_of_key(keys.strip(k)) else {
                    continue;
                };
                if ino <= after {
                    continue;
                }
                let queued = parse_int64(v).ok_or_else(|| {
                    MetaError::Corrupt(format!(
                        "deleted file {ino} is queued with a time of {} bytes",
                        v.len()
                    ))
                })?;
                lowest.insert((ino, length), queued);
                if lowest.len() > limit {
                    lowest.pop_last();
                }
            }
            Ok(true)
        })
        .await?;
        Ok(lowest
            .into_iter()
            .map(|((ino, length), queued)| QueuedDeletion {
                ino,
                length,
                queued,
            })
            .collect())
    }

    async fn is_empty(&self) -> Result<bool> {
        let (begin, end) = &self.keys.volume_range();
        let first = self
            .kv
            .txn(|tx| async move { tx.scan(begin, end, 1, false).await })
            .await?;
        Ok(first.is_empty())
    }

    async fn load_batch(&self, batch: &Batch) -> Result<()> {
        let keys = &self.keys;
        let mut puts = Vec::with_capacity(batch.len());
        for n in &batch.nodes {
            let mut attr = n.attr.clone();
            attr.access_acl = self.rule_id(n.access_acl.as_ref()).await?;
            attr.default_acl = self.rule_id(n.default_acl.as_ref()).await?;
            puts.push(Put::Set(keys.inode(n.ino), encode_attr(&attr).into()));
        }
        for e in &batch.edges {
            let value = encode_entry(e.typ, e.ino).to_vec();
            puts.push(Put::Set(keys.entry(e.parent, &e.name), value.into()));
        }
        for (ino, indx, slices) in &batch.chunks {
            // JuiceFS writes no record for a chunk without slices.
            if !slices.is_empty() {
                let value = Slice::encode_all(slices);
                puts.push(Put::Set(keys.chunk(*ino, *indx), value.into()));
            }
        }
        for (ino, target) in &batch.symlinks {
            puts.push(Put::Set(keys.symlink(*ino), target.as_slice().into()));
        }
        for (ino, name, value) in &batch.xattrs {
            puts.push(Put::Set(keys.xattr(*ino, name), value.as_slice().into()));
        }
        for (ino, st) in &batch.dir_stats {
            let value = stats::encode(st).to_vec();
            puts.push(Put::Set(keys.dir_stat(*ino), value.into()));
        }
        for &(id, size) in &batch.slice_refs {
            puts.push(Put::Count(keys.load_occurrences(id, size)));
        }
        self.write_all(&puts).await
    }

    async fn finish_load(&self, end: &LoadEnd) -> Result<()> {
        let keys = &self.keys;
        for links in end.links.chunks(PAGE) {
            self.kv
                .txn(|tx| async move {
                    for link in links {
                        let (ino, nlink) = (link.ino, link.nlink());
                        let mut attr = get_attr(&tx, keys, ino).await?.ok_or(Link::WITHOUT_NODE)?;
                        if attr.is_dir() {
                            return Err(MetaError::Corrupt(format!(
                                "directory {ino} has {nlink} names"
                            )));
                        }
                        attr.nlink = nlink;
                        attr.parent = 0;
                        put_attr(&tx, keys, ino, &attr);
                        for &(parent, n) in &link.parents {
                            tx.set(&keys.parent(ino, parent), &pack_counter(i64::from(n)));
                        }
                    }
                    Ok(())
                })
                .await?;
        }
        self.store_slice_refs().await?;
        let values = to_values(&end.counters);
        let counters: Vec<Put<'_>> = COUNTERS
            .iter()
            .zip(values)
            .map(|(name, v)| Put::Set(keys.counter(name), pack_counter(v).to_vec().into()))
            .collect();
        self.write_all(&counters).await?;
        for quotas in end.quotas.chunks(TXN_KEYS) {
            self.kv
                .txn(|tx| async move {
                    let mut qt = KvQuotas { tx: &tx, keys };
                    for (kind, key, q) in quotas {
                        qt.put_quota(*kind, *key, q).await?;
                    }
                    Ok(())
                })
                .await?;
        }
        let json = &settings_json(&end.format);
        self.kv
            .txn(|tx| async move {
                // The same setting is this transaction's own, committed by an attempt
                // whose outcome was unknown.
                match tx.get(&keys.setting()).await? {
                    // A restore overwrites the setting its marker is in.
                    Some(v) if v != *json && !end.restoring => Err(MetaError::Exists),
                    _ => {
                        tx.set(&keys.setting(), json);
                        Ok(())
                    }
                }
            })
            .await?;
        self.cache_format(&end.format);
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
        let keys = &self.keys;
        self.kv
            .txn(|tx| async move {
                if delta < 0 {
                    let uses: Vec<(u64, u32, i64)> = slices
                        .iter()
                        .map(|&(id, size)| (id, size, -delta))
                        .collect();
                    return super::drop_refs(&tx, keys, &uses).await;
                }
                for &(id, size) in slices {
                    let rkey = keys.slice_ref(id, size);
                    let cur = parse_counter(tx.get(&rkey).await?.as_deref());
                    // An absent key is one reference; a pending slice is never counted back.
                    if !meta_api::upkeep::is_pending_extra(cur) {
                        tx.set(&rkey, &pack_counter(cur + delta));
                    }
                }
                Ok(Vec::new())
            })
            .await
    }

    /// Every key of the volume but the setting and the counters (`C…`), in three range
    /// clears of one transaction.
    async fn wipe(&self) -> Result<()> {
        self.settings().await?;
        let keys = &self.keys;
        let (begin, end) = keys.volume_range();
        let counters = keys.counter("");
        let counters_end = crate::kv::prefix_end(&counters);
        let setting = keys.setting();
        let after_setting = crate::kv::key_after(&setting);
        let (begin, end, counters, counters_end, setting, after_setting) = (
            &begin,
            &end,
            &counters,
            &counters_end,
            &setting,
            &after_setting,
        );
        self.kv
            .txn(|tx| async move {
                tx.clear_range(begin, counters);
                tx.clear_range(counters_end, setting);
                tx.clear_range(after_setting, end);
                Ok(())
            })
            .await?;
        self.acls.clear();
        Ok(())
    }
}
