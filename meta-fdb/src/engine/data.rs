//! File data: chunks and slices, fallocate and copy_file_range.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use meta_api::args::check_copy_range;
use meta_api::backend::Data;
use meta_api::compact;
use meta_api::copy;
use meta_api::flags;
use meta_api::space::align4k;
use meta_api::{
    access, Context, FallocMode, FileType, Ino, MetaError, Result, Slice, Timestamp, CHUNK_SIZE,
};

use super::acl::access as acl_access;
use super::quota;
use super::stats::{self, StatDelta};
use super::{add_usage, append_slices, drop_refs, get_slices, must_attr, put_attr, TkvMeta};
use crate::keys::be_u32;
use crate::kv::{key_after, KvStore, KvTxn};

/// The error for data operations on something that is not a regular file.
pub(super) fn not_regular(typ: FileType) -> MetaError {
    match typ {
        FileType::Directory => MetaError::IsDir,
        _ => MetaError::InvalidArgument("not a regular file"),
    }
}

#[async_trait]
impl<K: KvStore> Data for TkvMeta<K> {
    async fn read_chunk(&self, ino: Ino, indx: u32) -> Result<Vec<Slice>> {
        let keys = &self.keys;
        self.kv
            .txn(|tx| async move {
                let slices = get_slices(&tx, keys, ino, indx).await?;
                if slices.is_empty() {
                    let attr = must_attr(&tx, keys, ino).await?;
                    if attr.typ == FileType::Directory {
                        return Err(MetaError::IsDir);
                    }
                }
                Ok(slices)
            })
            .await
    }

    async fn write_slice(
        &self,
        ino: Ino,
        indx: u32,
        slice: Slice,
        mtime: Timestamp,
    ) -> Result<usize> {
        let end = u64::from(indx) * CHUNK_SIZE + u64::from(slice.pos) + u64::from(slice.len);
        let limits = self.usage_limits().await?;
        let fmt = &self.settings().await?;
        let on = fmt.dir_stats;
        let keys = &self.keys;
        self.kv
            .txn(|tx| async move {
                let mut attr = must_attr(&tx, keys, ino).await?;
                if attr.typ != FileType::Regular {
                    return Err(not_regular(attr.typ));
                }
                let key = keys.chunk(ino, indx);
                let mut raw = tx.get(&key).await?.unwrap_or_default();
                Slice::decode_chunk(ino, indx, &raw)?;
                let record = slice.encode();
                // A retried commit whose first attempt landed must not append twice.
                if raw.chunks_exact(record.len()).any(|r| r == record) {
                    return Ok(raw.len() / record.len());
                }
                let mut delta = 0;
                if end > attr.length {
                    delta = align4k(end) - align4k(attr.length);
                    let lim = limits.as_ref();
                    quota::charge_resize(&tx, keys, fmt, (ino, &attr), delta, lim).await?;
                    let mut d = StatDelta::default();
                    stats::resize(&tx, keys, &mut d, (ino, &attr), attr.length, end).await?;
                    d.apply(&tx, keys, on).await?;
                    attr.length = end;
                }
                attr.mtime = mtime;
                attr.ctime = mtime;
                raw.extend_from_slice(&record);
                tx.set(&key, &raw);
                put_attr(&tx, keys, ino, &attr);
                add_usage(&tx, keys, delta, 0);
                Ok(raw.len() / record.len())
            })
            .await
    }

    async fn fallocate(
        &self,
        ctx: &Context,
        ino: Ino,
        mode: FallocMode,
        off: u64,
        len: u64,
    ) -> Result<()> {
        let punch = mode.contains(FallocMode::PUNCH_HOLE);
        let zero = mode.contains(FallocMode::ZERO_RANGE);
        let keep = mode.contains(FallocMode::KEEP_SIZE);
        let end = off + len;
        let limits = self.usage_limits().await?;
        let fmt = &self.settings().await?;
        let on = fmt.dir_stats;
        let now = self.now();
        let (keys, cache) = (&self.keys, &self.acls);
        self.kv
            .txn(|tx| async move {
                let mut attr = must_attr(&tx, keys, ino).await?;
                if attr.typ != FileType::Regular {
                    return Err(not_regular(attr.typ));
                }
                acl_access(&tx, keys, cache, ctx, &attr, access::W).await?;
                flags::check_fallocate(&attr, mode)?;
                let old = attr.length;
                let mut delta = 0;
                if end > old && !keep {
                    delta = align4k(end) - align4k(old);
                    let lim = limits.as_ref();
                    quota::charge_resize(&tx, keys, fmt, (ino, &attr), delta, lim).await?;
                    let mut d = StatDelta::default();
                    stats::resize(&tx, keys, &mut d, (ino, &attr), old, end).await?;
                    d.apply(&tx, keys, on).await?;
                    attr.length = end;
                }
                attr.mtime = now;
                attr.ctime = now;
                put_attr(&tx, keys, ino, &attr);
                add_usage(&tx, keys, delta, 0);
                if (punch || zero) && off < old {
                    // Only the existing bytes need zeroing (past the old end is a hole
                    // anyway), and only in chunks that exist (a missing chunk reads as
                    // zeros): the work follows the chunks there are, not the range.
                    let stop = end.min(old);
                    let (first, last) =
                        ((off / CHUNK_SIZE) as u32, ((stop - 1) / CHUNK_SIZE) as u32);
                    let (from, to) = (keys.chunk(ino, first), key_after(&keys.chunk(ino, last)));
                    for (k, v) in tx.scan(&from, &to, usize::MAX, false).await? {
                        let Some(indx) = be_u32(keys.strip(&k), 10) else {
                            continue;
                        };
                        let base = u64::from(indx) * CHUNK_SIZE;
                        let (lo, hi) = (off.max(base), stop.min(base + CHUNK_SIZE));
                        if lo >= hi {
                            continue;
                        }
                        let mut raw = v;
                        raw.extend_from_slice(
                            &Slice::hole((lo - base) as u32, (hi - lo) as u32).encode(),
                        );
                        tx.set(&k, &raw);
                    }
                }
                Ok(())
            })
            .await
    }

    async fn copy_file_range(
        &self,
        ctx: &Context,
        src: Ino,
        src_off: u64,
        dst: Ino,
        dst_off: u64,
        len: u64,
    ) -> Result<u64> {
        let limits = self.usage_limits().await?;
        let fmt = &self.settings().await?;
        let on = fmt.dir_stats;
        let now = self.now();
        let (keys, cache) = (&self.keys, &self.acls);
        self.kv
            .txn(|tx| async move {
                let sattr = must_attr(&tx, keys, src).await?;
                let mut dattr = if src == dst {
                    sattr.clone()
                } else {
                    must_attr(&tx, keys, dst).await?
                };
                for a in [&sattr, &dattr] {
                    if a.typ != FileType::Regular {
                        return Err(not_regular(a.typ));
                    }
                }
                acl_access(&tx, keys, cache, ctx, &sattr, access::R).await?;
                acl_access(&tx, keys, cache, ctx, &dattr, access::W).await?;
                // Like Linux, which checks the file descriptors first, the files and their
                // access come before the offsets.
                check_copy_range(src == dst, src_off, dst_off, len)?;
                flags::check_copy_into(&dattr)?;
                if len == 0 || src_off >= sattr.length {
                    return Ok(0);
                }
                let size = len.min(sattr.length - src_off);
                let new_end = dst_off + size;
                let mut delta = 0;
                if new_end > dattr.length {
                    delta = align4k(new_end) - align4k(dattr.length);
                    let lim = limits.as_ref();
                    quota::charge_resize(&tx, keys, fmt, (dst, &dattr), delta, lim).await?;
                    let mut d = StatDelta::default();
                    stats::resize(&tx, keys, &mut d, (dst, &dattr), dattr.length, new_end).await?;
                    d.apply(&tx, keys, on).await?;
                    dattr.length = new_end;
                }

                // Reference the source's visible pieces at the destination offsets; only
                // chunks that exist on either side cost anything.
                let chunks_in = |ino: Ino, (first, last): (u32, u32)| {
                    let (from, to) = (keys.chunk(ino, first), key_after(&keys.chunk(ino, last)));
                    let tx = &tx;
                    async move { tx.scan(&from, &to, usize::MAX, false).await }
                };
                let mut src_chunks: BTreeMap<u32, Vec<Slice>> = BTreeMap::new();
                for (k, v) in chunks_in(src, copy::chunk_span(src_off, size)).await? {
                    if let Some(indx) = be_u32(keys.strip(&k), 10) {
                        src_chunks.insert(indx, Slice::decode_chunk(src, indx, &v)?);
                    }
                }
                let dst_chunks: BTreeSet<u32> = chunks_in(dst, copy::chunk_span(dst_off, size))
                    .await?
                    .iter()
                    .filter_map(|(k, _)| be_u32(keys.strip(k), 10))
                    .collect();
                let mut out: BTreeMap<u32, Vec<Slice>> = BTreeMap::new();
                let mut refs: Vec<(u64, u32)> = Vec::new();
                for (indx, rec) in copy::records(&src_chunks, &dst_chunks, src_off, dst_off, size) {
                    if rec.id != 0 {
                        refs.push((rec.id, rec.size));
                    }
                    out.entry(indx).or_default().push(rec);
                }
                for (indx, slices) in &out {
                    append_slices(&tx, keys, dst, *indx, slices).await?;
                }
                for (id, size) in refs {
                    tx.atomic_add(&keys.slice_ref(id, size), 1);
                }
                dattr.mtime = now;
                dattr.ctime = now;
                put_attr(&tx, keys, dst, &dattr);
                add_usage(&tx, keys, delta, 0);
                Ok(size)
            })
            .await
    }

    async fn new_slice_id(&self) -> Result<u64> {
        self.next_slice_id().await
    }

    async fn compact_chunk(
        &self,
        ino: Ino,
        indx: u32,
        plan: &compact::Plan,
        id: u64,
    ) -> Result<Option<Vec<Slice>>> {
        let trash = self.settings().await?.trash_days > 0;
        let now = u64::try_from(self.now().sec).unwrap_or(0);
        let keys = &self.keys;
        self.kv
            .txn(|tx| async move {
                let attr = must_attr(&tx, keys, ino).await?;
                if attr.typ != FileType::Regular {
                    return Err(not_regular(attr.typ));
                }
                let cur = get_slices(&tx, keys, ino, indx).await?;
                let Some(records) = compact::apply(&cur, plan, id) else {
                    return Ok(None);
                };
                tx.set(&keys.chunk(ino, indx), &Slice::encode_all(&records));
                // One reference for the new slice: its key holds the extra ones (none).
                tx.set(&keys.slice_ref(id, plan.len), &[0u8; 8]);
                if trash {
                    let delayed = compact::encode_delayed(plan.replaced());
                    if !delayed.is_empty() {
                        tx.set(&keys.delayed_slices(now, id), &delayed);
                    }
                    return Ok(Some(Vec::new()));
                }
                let uses = Slice::references(plan.replaced());
                Ok(Some(drop_refs(&tx, keys, &uses).await?))
            })
            .await
    }
}
