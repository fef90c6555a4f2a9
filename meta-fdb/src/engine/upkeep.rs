//! Upkeep (see [`meta_api::upkeep`]): the inventory for gc, pending slices, job election
//! and recomputed statistics.
//!
//! Pending slices are `K{id}{size}` keys holding `<= -1` (JuiceFS's convention); jobs are
//! elected on `C{name}` counters; dir stats are `U{ino}` values (24 bytes, big-endian
//! length, space, inodes).
//!
//! The walks over many keys ([`list_slices`](Upkeep::list_slices), the pending scan,
//! [`sync_dir_stat`](Upkeep::sync_dir_stat)'s entries and
//! [`recount_usage`](Upkeep::recount_usage)) read [`PAGE`] keys per transaction so that
//! each stays under FoundationDB's 5 s / 10 MB limits: like JuiceFS's gc and fsck they are
//! exact on a quiet volume, and a change made meanwhile may or may not be seen.

use async_trait::async_trait;
use meta_api::backend::Upkeep;
use meta_api::encoding::{decode_attr, decode_entry};
use meta_api::upkeep::{self, DirStat, Recount, SliceListing};
use meta_api::{compact, FileType, Format, Ino, MetaError, Result, Slice, Usage};

use super::{dir_attr, TkvMeta};
use crate::keys::{be_u32, be_u64, le_u64, Keys, TOTAL_INODES, USED_SPACE};
use crate::kv::{key_after, pack_counter, parse_counter, KeyValue, KvStore, KvTxn};

/// Keys read per transaction by the walks: a chunk value is at most 100 kB, so a page
/// reads at most ~25 MB, in well under 5 s.
pub(super) const PAGE: usize = 256;

/// The slice of a `K{id}{size}` key (prefix stripped).
fn slice_of_ref_key(k: &[u8]) -> Result<(u64, u32)> {
    match (k.len(), be_u64(k, 1), be_u32(k, 9)) {
        (13, Some(id), Some(size)) => Ok((id, size)),
        _ => Err(MetaError::Corrupt(format!(
            "slice reference key of {} bytes",
            k.len()
        ))),
    }
}

impl<K: KvStore> TkvMeta<K> {
    /// The settings as this client knows them (cached after the first read).
    pub(super) async fn settings(&self) -> Result<Format> {
        match self.cached_format() {
            Some(f) => Ok(f),
            None => self.load_format().await,
        }
    }

    /// One page of the keys in `[begin, end)`, in its own transaction.
    async fn page(&self, begin: &[u8], end: &[u8]) -> Result<Vec<KeyValue>> {
        self.kv
            .txn(|tx| async move { tx.scan(begin, end, PAGE, false).await })
            .await
    }

    /// Walks every key with `prefix`, a page per transaction, passing each page to `each`.
    pub(super) async fn walk(
        &self,
        prefix: &[u8],
        mut each: impl FnMut(&[KeyValue]) -> Result<bool>,
    ) -> Result<()> {
        let end = Keys::end_of(prefix);
        let mut begin = prefix.to_vec();
        loop {
            let page = self.page(&begin, &end).await?;
            if !each(&page)? {
                return Ok(());
            }
            match page.last() {
                Some((k, _)) if page.len() >= PAGE => begin = key_after(k),
                _ => return Ok(()),
            }
        }
    }

    /// The pending slices (`K` keys at `<= -1`), at most `limit`.
    async fn scan_pending(&self, limit: usize) -> Result<Vec<(u64, u32)>> {
        let keys = &self.keys;
        let mut out = Vec::new();
        self.walk(&keys.tag(b"K"), |page| {
            for (k, v) in page {
                if upkeep::is_pending_extra(parse_counter(Some(v))) {
                    out.push(slice_of_ref_key(keys.strip(k))?);
                    if out.len() >= limit {
                        return Ok(false);
                    }
                }
            }
            Ok(true)
        })
        .await?;
        Ok(out)
    }
}

#[async_trait]
impl<K: KvStore> Upkeep for TkvMeta<K> {
    async fn pending_slices(&self, limit: usize) -> Result<Vec<Slice>> {
        Ok(self
            .scan_pending(limit)
            .await?
            .into_iter()
            .map(|(id, size)| Slice::whole(id, size))
            .collect())
    }

    async fn forget_slice(&self, id: u64, size: u32) -> Result<bool> {
        let key = &self.keys.slice_ref(id, size);
        self.kv
            .txn(|tx| async move {
                match tx.get(key).await? {
                    Some(v) if upkeep::is_pending_extra(parse_counter(Some(&v))) => {
                        tx.clear(key);
                        Ok(true)
                    }
                    _ => Ok(false),
                }
            })
            .await
    }

    async fn list_slices(&self) -> Result<SliceListing> {
        let keys = &self.keys;
        let mut out = SliceListing::default();
        // `A{ino}C{indx}`: the chunks of every inode, live or deleted and not purged yet.
        self.walk(&keys.tag(b"A"), |page| {
            for (k, v) in page {
                let k = keys.strip(k);
                if k.len() != 14 || k.get(9) != Some(&b'C') {
                    continue;
                }
                let (Some(ino), Some(indx)) = (le_u64(k, 1), be_u32(k, 10)) else {
                    continue;
                };
                out.records.extend(
                    Slice::decode_chunk(ino, indx, v)?
                        .into_iter()
                        .filter(|s| s.id != 0)
                        .map(|s| (ino, indx, s)),
                );
            }
            Ok(true)
        })
        .await?;
        // `L{secs}{id}`: delayed slices.
        self.walk(&keys.tag(b"L"), |page| {
            for (k, v) in page {
                let what = format!("key {:?}", keys.strip(k));
                out.delayed.extend(compact::decode_delayed(&what, v)?);
            }
            Ok(true)
        })
        .await?;
        out.pending = self.scan_pending(usize::MAX).await?;
        Ok(out)
    }

    async fn free_delayed_slices(&self, before: i64, limit: usize) -> Result<Vec<Slice>> {
        let keys = &self.keys;
        let Ok(before) = u64::try_from(before) else {
            return Ok(Vec::new());
        };
        // `L{secs}{id}` keys sort by time: the due ones are a prefix.
        let (begin, end) = (keys.tag(b"L"), keys.delayed_slices(before, 0));
        let (begin, end) = (&begin, &end);
        let due: Vec<Vec<u8>> = self
            .kv
            .txn(|tx| async move { tx.scan(begin, end, limit, false).await })
            .await?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let mut freed = Vec::new();
        for key in &due {
            let got = self
                .kv
                .txn(|tx| async move {
                    // Freed meanwhile by another client.
                    let Some(blob) = tx.get(key).await? else {
                        return Ok(Vec::new());
                    };
                    let what = format!("key {:?}", keys.strip(key));
                    let uses: Vec<(u64, u32, i64)> = compact::decode_delayed(&what, &blob)?
                        .into_iter()
                        .map(|(id, size)| (id, size, 1))
                        .collect();
                    tx.clear(key);
                    super::drop_refs(&tx, keys, &uses).await
                })
                .await?;
            freed.extend(got);
        }
        Ok(freed)
    }

    async fn claim_job(&self, counter: &'static str, now: u64, every: u64) -> Result<bool> {
        let key = &self.keys.counter(counter);
        self.kv
            .txn(|tx| async move {
                let old = parse_counter(tx.get(key).await?.as_deref());
                if i128::from(old) + i128::from(every) >= i128::from(now) {
                    return Ok(false);
                }
                tx.set(key, &pack_counter(i64::try_from(now).unwrap_or(i64::MAX)));
                Ok(true)
            })
            .await
    }

    async fn dir_stat(&self, ino: Ino) -> Result<Option<DirStat>> {
        let on = self.settings().await?.dir_stats;
        let keys = &self.keys;
        self.kv
            .txn(|tx| async move {
                dir_attr(&tx, keys, ino).await?;
                if !on {
                    return Ok(None);
                }
                tx.get(&keys.dir_stat(ino))
                    .await?
                    .map(|v| super::stats::decode(ino, &v))
                    .transpose()
            })
            .await
    }

    async fn sync_dir_stat(&self, ino: Ino) -> Result<DirStat> {
        let keep = self.settings().await?.dir_stats;
        let keys = &self.keys;
        self.kv
            .txn(|tx| async move { dir_attr(&tx, keys, ino).await.map(|_| ()) })
            .await?;
        // The entries a page at a time, each page with its files' attributes.
        let prefix = keys.entries(ino);
        let end = Keys::end_of(&prefix);
        let mut begin = prefix.clone();
        let mut stat = DirStat::default();
        loop {
            let (part, next) = self
                .kv
                .txn(|tx| {
                    let (begin, end) = (&begin, &end);
                    async move {
                        let page = tx.scan(begin, end, PAGE, false).await?;
                        let mut part = DirStat::default();
                        for (_, v) in &page {
                            let (typ, child) = decode_entry(v)?;
                            // Only a regular file's length matters (a missing node: 0).
                            let length = match typ {
                                FileType::Regular => match tx.get(&keys.inode(child)).await? {
                                    Some(a) => decode_attr(&a)?.length,
                                    None => 0,
                                },
                                _ => 0,
                            };
                            part.add_entry(typ, length);
                        }
                        let next = match page.last() {
                            Some((k, _)) if page.len() >= PAGE => Some(key_after(k)),
                            _ => None,
                        };
                        Ok((part, next))
                    }
                })
                .await?;
            stat.length += part.length;
            stat.space += part.space;
            stat.inodes += part.inodes;
            match next {
                Some(n) => begin = n,
                None => break,
            }
        }
        if keep {
            let v = super::stats::encode(&stat);
            let v = &v;
            self.kv
                .txn(|tx| async move {
                    dir_attr(&tx, keys, ino).await?;
                    tx.set(&keys.dir_stat(ino), v);
                    Ok(())
                })
                .await?;
        }
        Ok(stat)
    }

    async fn recount_usage(&self) -> Result<Recount> {
        self.settings().await?;
        let keys = &self.keys;
        // Every `A{ino}I` but the root's and the trash's: deleted files waiting for their
        // purge have lost theirs (their usage was given back when they were queued),
        // unlinked files still open keep theirs and still count.
        let mut after = Usage::default();
        self.walk(&keys.tag(b"A"), |page| {
            for (k, v) in page {
                let k = keys.strip(k);
                if k.len() != 10 || k.get(9) != Some(&b'I') {
                    continue;
                }
                let Some(ino) = le_u64(k, 1) else { continue };
                after.add_node(ino, decode_attr(v)?.length);
            }
            Ok(true)
        })
        .await?;
        let (space_key, inodes_key) = (&keys.counter(USED_SPACE), &keys.counter(TOTAL_INODES));
        let after = &after;
        self.kv
            .txn(|tx| async move {
                let before = Usage {
                    space: parse_counter(tx.get(space_key).await?.as_deref()),
                    inodes: parse_counter(tx.get(inodes_key).await?.as_deref()),
                };
                tx.set(space_key, &pack_counter(after.space));
                tx.set(inodes_key, &pack_counter(after.inodes));
                Ok(Recount {
                    before,
                    after: *after,
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use meta_api::{Context, MetaEngine, ROOT_INO};

    use super::*;
    use crate::kv::mem::MemKv;

    /// A `usedSpace`/`totalInodes` pair broken behind the engine's back is put right.
    #[tokio::test]
    async fn recount_usage_repairs_corrupted_counters() {
        let m = TkvMeta::new(MemKv::new(), b"vol\xfd");
        MetaEngine::init(&m, &Format::new("vol", "uuid-1", "mem", "/tmp/x/"), false)
            .await
            .unwrap();
        let ctx = Context::root();
        let f = m
            .mknod(&ctx, ROOT_INO, b"f", FileType::Regular, 0o644, 0)
            .await
            .unwrap();
        m.truncate(&ctx, f.ino, 5000).await.unwrap();
        m.mkdir(&ctx, ROOT_INO, b"d", 0o755).await.unwrap();
        let good = Usage {
            space: 8192 + 4096,
            inodes: 2,
        };
        assert_eq!(m.read_usage().await.unwrap(), (good.space, good.inodes));
        let keys = m.keys().clone();
        m.kv()
            .txn(|tx| {
                let keys = keys.clone();
                async move {
                    tx.set(&keys.counter(USED_SPACE), &pack_counter(-77));
                    tx.set(&keys.counter(TOTAL_INODES), &pack_counter(12345));
                    Ok(())
                }
            })
            .await
            .unwrap();
        let r = MetaEngine::recount_usage(&m).await.unwrap();
        assert_eq!(
            r.before,
            Usage {
                space: -77,
                inodes: 12345
            }
        );
        assert_eq!(r.after, good);
        assert_eq!(m.read_usage().await.unwrap(), (good.space, good.inodes));
    }
}
