//! Upkeep (see [`meta_api::upkeep`]): the inventory for gc, pending slices, job election
//! and recomputed statistics.
//!
//! Pending slices are `sliceRef` fields at `<= -1` (JuiceFS's convention); jobs are
//! elected on plain counter keys (`nextCleanupSlices`, `lastCleanup*`); dir stats live in
//! the hashes `dirDataLength`, `dirUsedSpace` and `dirUsedInodes`.
//!
//! The volume-wide walks ([`list_slices`](Upkeep::list_slices),
//! [`recount_usage`](Upkeep::recount_usage)) page with `SCAN`/`HSCAN` instead of one
//! transaction: a `MULTI` over every key of a large volume would block the server. Like
//! JuiceFS's gc and fsck they are exact on a quiet volume; a change made meanwhile may or
//! may not be seen.

use std::collections::{BTreeSet, HashSet};

use async_trait::async_trait;
use meta_api::backend::Upkeep;
use meta_api::encoding::{decode_attr, decode_entry};
use meta_api::upkeep::{self, DirStat, Recount, SliceListing};
use meta_api::{compact, FileType, Ino, MetaError, Result, Slice, Usage};

use super::data::decode_records;
use super::{align4k, entry_usage, need_dir, RedisMeta, Writes};
use crate::keys::{parse_slice_ref_field, slice_ref_field};
use crate::txn::Step;

/// Keys or fields asked for per `SCAN`/`HSCAN` step, and attributes per `MGET`.
const PAGE: usize = 1000;

/// A decimal number stored by Redis, `Corrupt` otherwise.
pub(crate) fn number(what: &str, v: &[u8]) -> Result<i64> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| MetaError::Corrupt(format!("{what} is not a number")))
}

pub(crate) fn opt_number(what: &str, v: Option<Vec<u8>>) -> Result<Option<i64>> {
    v.map(|b| number(what, &b)).transpose()
}

impl RedisMeta {
    /// Calls `f` with every field and value of hash `key`, read a page at a time with
    /// `HSCAN` (each field once, though a scan may return one twice).
    async fn each_field(
        &self,
        key: String,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<()> + Send,
    ) -> Result<()> {
        let mut seen = HashSet::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, flat): (u64, Vec<Vec<u8>>) = self
                .read(
                    redis::cmd("HSCAN")
                        .arg(&key)
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(PAGE),
                )
                .await?;
            for pair in flat.chunks_exact(2) {
                if seen.insert(pair[0].clone()) {
                    f(&pair[0], &pair[1])?;
                }
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    /// Every `sliceRef` field at `<= -1`, in pages, stopping once `limit` are found.
    async fn scan_pending(&self, limit: usize) -> Result<Vec<(u64, u32)>> {
        let mut out = Vec::new();
        // A scan may return an element twice.
        let mut seen = HashSet::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, flat): (u64, Vec<Vec<u8>>) = self
                .read(
                    redis::cmd("HSCAN")
                        .arg(self.keys.slice_refs())
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(PAGE),
                )
                .await?;
            let mut it = flat.chunks_exact(2);
            for pair in &mut it {
                let (field, value) = (&pair[0], &pair[1]);
                let what = || String::from_utf8_lossy(field).into_owned();
                let slice = parse_slice_ref_field(field)
                    .ok_or_else(|| MetaError::Corrupt(format!("sliceRef field {}", what())))?;
                let extra = number(&format!("sliceRef field {}", what()), value)?;
                if upkeep::is_pending_extra(extra) && seen.insert(slice) {
                    out.push(slice);
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
            if next == 0 {
                return Ok(out);
            }
            cursor = next;
        }
    }

    /// One `SCAN` page of the keys matching `pattern`: the next cursor (0 at the end)
    /// and the keys (as `String`s, or as bytes where keys of other programs may show).
    pub(super) async fn scan_page<K: redis::FromRedisValue>(
        &self,
        pattern: &str,
        cursor: u64,
    ) -> Result<(u64, Vec<K>)> {
        self.read(
            redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(PAGE),
        )
        .await
    }
}

#[async_trait]
impl Upkeep for RedisMeta {
    async fn pending_slices(&self, limit: usize) -> Result<Vec<Slice>> {
        Ok(self
            .scan_pending(limit)
            .await?
            .into_iter()
            .map(|(id, size)| Slice::whole(id, size))
            .collect())
    }

    async fn forget_slice(&self, id: u64, size: u32) -> Result<bool> {
        Ok(self.forget_slices(&[(id, size)]).await? > 0)
    }

    /// One `WATCH`/`MULTI`: the fields read with one `HMGET`, the pending ones deleted.
    async fn forget_slices(&self, slices: &[(u64, u32)]) -> Result<usize> {
        if slices.is_empty() {
            return Ok(0);
        }
        let key = self.keys.slice_refs();
        // Each field once: a slice named twice is forgotten once.
        let fields: Vec<String> = slices
            .iter()
            .map(|&(id, size)| slice_ref_field(id, size))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        self.txn(std::slice::from_ref(&key), |mut tx| {
            let (key, fields) = (key.clone(), &fields);
            async move {
                let vs: Vec<Option<Vec<u8>>> =
                    tx.cmd(redis::cmd("HMGET").arg(&key).arg(fields)).await?;
                let mut w = Writes::new();
                let mut n = 0;
                for (field, v) in fields.iter().zip(vs) {
                    if let Some(v) = opt_number(&format!("sliceRef field {field}"), v)? {
                        if upkeep::is_pending_extra(v) {
                            w.hdel(key.clone(), field.as_bytes());
                            n += 1;
                        }
                    }
                }
                if n == 0 {
                    return Ok(Step::Done(0));
                }
                Ok(w.commit(n))
            }
        })
        .await
    }

    async fn list_slices(&self) -> Result<SliceListing> {
        let mut out = SliceListing::default();
        // Chunks: `c{ino}_{indx}` keys, their lists read a page at a time.
        let pattern = self.keys.pattern("c*_*");
        // A scan may return a key twice: each chunk is read once.
        let mut seen = HashSet::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = self.scan_page(&pattern, cursor).await?;
            let chunks: Vec<(Ino, u32, String)> = keys
                .into_iter()
                .filter_map(|k| self.keys.parse_chunk(&k).map(|(i, x)| (i, x, k)))
                .filter(|&(i, x, _)| seen.insert((i, x)))
                .collect();
            if !chunks.is_empty() {
                let mut p = redis::pipe();
                for (_, _, key) in &chunks {
                    p.cmd("LRANGE").arg(key).arg(0).arg(-1);
                }
                let lists: Vec<Vec<Vec<u8>>> = self.read_pipe(&p).await?;
                for ((ino, indx, _), list) in chunks.iter().zip(lists) {
                    out.records.extend(
                        decode_records(*ino, *indx, &list)?
                            .into_iter()
                            .filter(|s| s.id != 0)
                            .map(|s| (*ino, *indx, s)),
                    );
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        // Delayed slices: `delSlices` fields `{id}_{secs}` → 12-byte records.
        self.each_field(self.keys.delayed_slices(), |field, blob| {
            let what = format!("of delSlices field {}", String::from_utf8_lossy(field));
            out.delayed.extend(compact::decode_delayed(&what, blob)?);
            Ok(())
        })
        .await?;
        out.pending = self.scan_pending(usize::MAX).await?;
        Ok(out)
    }

    async fn free_delayed_slices(&self, before: i64, limit: usize) -> Result<Vec<Slice>> {
        // `delSlices` fields `{id}_{secs}` made before `before`, oldest first.
        let mut due: Vec<(i64, Vec<u8>)> = Vec::new();
        self.each_field(self.keys.delayed_slices(), |field, _| {
            let secs = std::str::from_utf8(field)
                .ok()
                .and_then(|f| f.rsplit_once('_'))
                .and_then(|(_, t)| t.parse::<i64>().ok());
            // A field of another form is not one JuiceFS or this library wrote.
            if let Some(secs) = secs.filter(|&t| t < before) {
                due.push((secs, field.to_vec()));
            }
            Ok(())
        })
        .await?;
        due.sort_unstable();
        due.truncate(limit);
        let k = &self.keys;
        let mut freed = Vec::new();
        for (_, field) in due {
            let keys = [k.delayed_slices(), k.slice_refs()];
            let field = &field;
            let got = self
                .txn(&keys, |mut tx| async move {
                    let blob: Option<Vec<u8>> = tx
                        .cmd(redis::cmd("HGET").arg(k.delayed_slices()).arg(field))
                        .await?;
                    // Freed meanwhile by another client.
                    let Some(blob) = blob else {
                        return Ok(Step::Done(Vec::new()));
                    };
                    let what = format!("of delSlices field {}", String::from_utf8_lossy(field));
                    let uses: Vec<(u64, u32, i64)> = compact::decode_delayed(&what, &blob)?
                        .into_iter()
                        .map(|(id, size)| (id, size, 1))
                        .collect();
                    let mut w = Writes::new();
                    w.hdel(k.delayed_slices(), field);
                    let freed = self.drop_refs(&mut tx, &mut w, &uses).await?;
                    Ok(w.commit(freed))
                })
                .await?;
            freed.extend(got);
        }
        Ok(freed)
    }

    async fn claim_job(&self, counter: &'static str, now: u64, every: u64) -> Result<bool> {
        let key = self.keys.counter(counter);
        self.txn(std::slice::from_ref(&key), |mut tx| {
            let key = key.clone();
            async move {
                let v: Option<Vec<u8>> = tx.cmd(redis::cmd("GET").arg(&key)).await?;
                let old = opt_number(counter, v)?.unwrap_or(0);
                if i128::from(old) + i128::from(every) >= i128::from(now) {
                    return Ok(Step::Done(false));
                }
                let mut w = Writes::new();
                w.set(key, now.to_string().as_bytes());
                Ok(w.commit(true))
            }
        })
        .await
    }

    async fn dir_stat(&self, ino: Ino) -> Result<Option<DirStat>> {
        need_dir(self.get_attr(ino).await?)?;
        if !self.settings().await?.dir_stats {
            return Ok(None);
        }
        let k = &self.keys;
        let mut p = redis::pipe();
        for key in [k.dir_data_length(), k.dir_used_space(), k.dir_used_inodes()] {
            p.cmd("HGET").arg(key).arg(ino);
        }
        let (length, space, inodes): (Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>) =
            self.read_pipe(&p).await?;
        // The engine tells a directory with statistics by its `dirUsedSpace` field.
        let Some(space) = opt_number("dirUsedSpace", space)? else {
            return Ok(None);
        };
        Ok(Some(DirStat {
            length: opt_number("dirDataLength", length)?.unwrap_or(0),
            space,
            inodes: opt_number("dirUsedInodes", inodes)?.unwrap_or(0),
        }))
    }

    async fn sync_dir_stat(&self, ino: Ino) -> Result<DirStat> {
        let keep = self.settings().await?.dir_stats;
        let k = &self.keys;
        let watch = [k.inode(ino), k.entries(ino)];
        self.txn(&watch, |mut tx| async move {
            need_dir(tx.attr(ino).await?)?;
            let flat: Vec<Vec<u8>> = tx.cmd(redis::cmd("HGETALL").arg(k.entries(ino))).await?;
            let mut children = Vec::with_capacity(flat.len() / 2);
            for pair in flat.chunks_exact(2) {
                children.push(decode_entry(&pair[1])?);
            }
            let mut stat = DirStat::default();
            for page in children.chunks(PAGE) {
                let files: Vec<Ino> = page
                    .iter()
                    .filter(|(t, _)| *t == FileType::Regular)
                    .map(|&(_, i)| i)
                    .collect();
                // Watched so that a file growing meanwhile conflicts with the commit.
                let keys: Vec<String> = files.iter().map(|&i| k.inode(i)).collect();
                tx.watch(&keys).await?;
                let attrs = if files.is_empty() {
                    Vec::new()
                } else {
                    tx.attrs(&files).await?
                };
                stat.inodes += page.len() as i64;
                stat.space += (page.len() - files.len()) as i64 * align4k(0);
                for a in attrs {
                    let (length, space) = a.as_ref().map_or((0, align4k(0)), entry_usage);
                    stat.length += length;
                    stat.space += space;
                }
            }
            if !keep {
                return Ok(Step::Done(stat));
            }
            let mut w = Writes::new();
            w.set_dir_stat(k, ino, &stat);
            Ok(w.commit(stat))
        })
        .await
    }

    async fn recount_usage(&self) -> Result<Recount> {
        self.settings().await?;
        // Every `i{ino}` key but the root's and the trash's: deleted files waiting for
        // their purge have lost theirs (their usage was given back when they were queued),
        // unlinked files still open keep theirs and still count.
        let pattern = self.keys.pattern("i*");
        let mut after = Usage::default();
        // A scan may return a key twice: each inode is counted once.
        let mut seen = HashSet::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = self.scan_page(&pattern, cursor).await?;
            let keys: Vec<String> = keys
                .into_iter()
                .filter(|key| self.keys.parse_inode(key).is_some_and(|i| seen.insert(i)))
                .collect();
            if !keys.is_empty() {
                let attrs: Vec<Option<Vec<u8>>> = self.read(redis::cmd("MGET").arg(&keys)).await?;
                for (key, a) in keys.iter().zip(attrs) {
                    if let (Some(ino), Some(a)) = (self.keys.parse_inode(key), a) {
                        after.add_node(ino, decode_attr(&a)?.length);
                    }
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let k = &self.keys;
        let watch = [k.used_space(), k.total_inodes()];
        self.txn(&watch, |mut tx| async move {
            let (space, inodes): (Option<Vec<u8>>, Option<Vec<u8>>) = tx
                .cmd(redis::cmd("MGET").arg(k.used_space()).arg(k.total_inodes()))
                .await?;
            let before = Usage {
                space: opt_number("usedSpace", space)?.unwrap_or(0),
                inodes: opt_number("totalInodes", inodes)?.unwrap_or(0),
            };
            let mut w = Writes::new();
            w.set(k.used_space(), after.space.to_string().as_bytes())
                .set(k.total_inodes(), after.inodes.to_string().as_bytes());
            Ok(w.commit(Recount { before, after }))
        })
        .await
    }
}
