//! File data: attributes with truncation, chunks and slices, fallocate, copy_file_range,
//! and the deletion queue.

use std::collections::BTreeMap;

use meta_api::perm::apply_setattr_with;
use meta_api::{
    access, overlay, Attr, Context, DeletedFile, FallocMode, FileType, Ino, MetaError, Result,
    SetAttr, SetTime, Slice, Timestamp, CHUNK_SIZE, MAX_FILE_SIZE,
};

use super::acl::{access as acl_access, rule_of, save_rule};
use super::{
    add_usage, align4k, append_slices, check_limits, decode_slices, get_attr, get_slices, hole,
    incr, must_attr, put_attr, TkvMeta, FLAG_APPEND, FLAG_IMMUTABLE,
};
use crate::keys::{be_u64, le_u64, Keys};
use crate::kv::{KvStore, KvTxn};

/// Chunks purged per transaction: keeps a purge of a huge file under FoundationDB's
/// 5 s / 10 MB transaction limits.
pub(crate) const PURGE_BATCH: usize = 256;

/// The error for data operations on something that is not a regular file.
fn not_regular(typ: FileType) -> MetaError {
    match typ {
        FileType::Directory => MetaError::IsDir,
        _ => MetaError::InvalidArgument("not a regular file"),
    }
}

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
        let full = hole(0, cs as u32).encode();
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
        &[hole((left % cs) as u32, len as u32)],
    )
    .await?;
    if spans_chunks && right % cs > 0 {
        append_slices(
            tx,
            keys,
            ino,
            (right / cs) as u32,
            &[hole(0, (right % cs) as u32)],
        )
        .await?;
    }
    Ok(align4k(new) - align4k(old))
}

impl<K: KvStore> TkvMeta<K> {
    /// `setattr`, and `truncate` as a `setattr` of the size alone. The checks follow the
    /// suite's order: the inode, the non-size changes, then the size (a truncate checks the
    /// size limit first, as an invalid argument).
    pub(super) async fn do_setattr(
        &self,
        ctx: &Context,
        ino: Ino,
        set: &SetAttr,
        truncate: bool,
    ) -> Result<Attr> {
        if truncate && set.size.is_some_and(|s| s > MAX_FILE_SIZE) {
            return Err(MetaError::FileTooBig);
        }
        let limits = match set.size {
            Some(_) => self.usage_limits().await?,
            None => None,
        };
        let now = self.now();
        let (keys, cache) = (&self.keys, &self.acls);
        self.kv
            .txn(|tx| async move {
                let cur = must_attr(&tx, keys, ino).await?;
                let rule = rule_of(&tx, keys, cache, cur.access_acl).await?;
                let (mut attr, new_rule) =
                    apply_setattr_with(ctx, &cur, rule.as_deref(), set, now)?;
                if let Some(r) = &new_rule {
                    attr.access_acl = save_rule(&tx, keys, cache, r).await?;
                }
                if let Some(size) = set.size {
                    if size > MAX_FILE_SIZE {
                        return Err(MetaError::FileTooBig);
                    }
                    if cur.typ != FileType::Regular {
                        return Err(not_regular(cur.typ));
                    }
                    acl_access(&tx, keys, cache, ctx, &cur, access::W).await?;
                    if cur.flags & (FLAG_IMMUTABLE | FLAG_APPEND) != 0 {
                        return Err(MetaError::NotPermitted);
                    }
                    let delta = truncate_chunks(&tx, keys, ino, cur.length, size).await?;
                    check_limits(limits, delta, 0)?;
                    add_usage(&tx, keys, delta, 0);
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

    pub(super) async fn do_read_chunk(&self, ino: Ino, indx: u32) -> Result<Vec<Slice>> {
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

    pub(super) async fn do_write_slice(
        &self,
        ino: Ino,
        indx: u32,
        slice: Slice,
        mtime: Timestamp,
    ) -> Result<()> {
        if u64::from(slice.pos) + u64::from(slice.len) > CHUNK_SIZE {
            return Err(MetaError::InvalidArgument("slice extends past its chunk"));
        }
        if slice
            .off
            .checked_add(slice.len)
            .is_none_or(|end| end > slice.size)
            && slice.id != 0
        {
            return Err(MetaError::InvalidArgument("slice range exceeds its object"));
        }
        let end = u64::from(indx) * CHUNK_SIZE + u64::from(slice.pos) + u64::from(slice.len);
        if end > MAX_FILE_SIZE {
            return Err(MetaError::FileTooBig);
        }
        let limits = self.usage_limits().await?;
        let keys = &self.keys;
        self.kv
            .txn(|tx| async move {
                let mut attr = must_attr(&tx, keys, ino).await?;
                if attr.typ != FileType::Regular {
                    return Err(not_regular(attr.typ));
                }
                let key = keys.chunk(ino, indx);
                let mut raw = tx.get(&key).await?.unwrap_or_default();
                decode_slices(ino, indx, &raw)?;
                let record = slice.encode();
                // A retried commit whose first attempt landed must not append twice.
                if raw.chunks_exact(record.len()).any(|r| r == record) {
                    return Ok(());
                }
                let mut delta = 0;
                if end > attr.length {
                    delta = align4k(end) - align4k(attr.length);
                    check_limits(limits, delta, 0)?;
                    attr.length = end;
                }
                attr.mtime = mtime;
                attr.ctime = mtime;
                raw.extend_from_slice(&record);
                tx.set(&key, &raw);
                put_attr(&tx, keys, ino, &attr);
                add_usage(&tx, keys, delta, 0);
                Ok(())
            })
            .await
    }

    pub(super) async fn do_fallocate(
        &self,
        ctx: &Context,
        ino: Ino,
        mode: FallocMode,
        off: u64,
        len: u64,
    ) -> Result<()> {
        let known = FallocMode::KEEP_SIZE | FallocMode::PUNCH_HOLE | FallocMode::ZERO_RANGE;
        if mode.0 & !known != 0 {
            return Err(MetaError::NotSupported("fallocate mode"));
        }
        let punch = mode.contains(FallocMode::PUNCH_HOLE);
        let zero = mode.contains(FallocMode::ZERO_RANGE);
        let keep = mode.contains(FallocMode::KEEP_SIZE);
        if punch && (zero || !keep) {
            return Err(MetaError::InvalidArgument(
                "PUNCH_HOLE needs KEEP_SIZE and excludes ZERO_RANGE",
            ));
        }
        if len == 0 {
            return Err(MetaError::InvalidArgument("fallocate of zero bytes"));
        }
        let end = off.checked_add(len).ok_or(MetaError::FileTooBig)?;
        if end > MAX_FILE_SIZE {
            return Err(MetaError::FileTooBig);
        }
        let limits = self.usage_limits().await?;
        let now = self.now();
        let (keys, cache) = (&self.keys, &self.acls);
        self.kv
            .txn(|tx| async move {
                let mut attr = must_attr(&tx, keys, ino).await?;
                if attr.typ != FileType::Regular {
                    return Err(not_regular(attr.typ));
                }
                if attr.flags & FLAG_IMMUTABLE != 0 {
                    return Err(MetaError::NotPermitted);
                }
                acl_access(&tx, keys, cache, ctx, &attr, access::W).await?;
                if attr.flags & FLAG_APPEND != 0 && (punch || zero) {
                    return Err(MetaError::NotPermitted);
                }
                let old = attr.length;
                let mut delta = 0;
                if end > old && !keep {
                    delta = align4k(end) - align4k(old);
                    check_limits(limits, delta, 0)?;
                    attr.length = end;
                }
                attr.mtime = now;
                attr.ctime = now;
                put_attr(&tx, keys, ino, &attr);
                add_usage(&tx, keys, delta, 0);
                if (punch || zero) && off < old {
                    // Only the existing bytes need zeroing; past the old end is a hole anyway.
                    let mut at = off;
                    let stop = end.min(old);
                    while at < stop {
                        let indx = (at / CHUNK_SIZE) as u32;
                        let pos = at % CHUNK_SIZE;
                        let n = (stop - at).min(CHUNK_SIZE - pos);
                        append_slices(&tx, keys, ino, indx, &[hole(pos as u32, n as u32)]).await?;
                        at += n;
                    }
                }
                Ok(())
            })
            .await
    }

    pub(super) async fn do_copy_file_range(
        &self,
        ctx: &Context,
        src: Ino,
        src_off: u64,
        dst: Ino,
        dst_off: u64,
        len: u64,
    ) -> Result<u64> {
        let limits = self.usage_limits().await?;
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
                let dst_end = dst_off.checked_add(len).ok_or(MetaError::FileTooBig)?;
                if dst_end > MAX_FILE_SIZE {
                    return Err(MetaError::FileTooBig);
                }
                if src == dst && src_off < dst_end && dst_off < src_off.saturating_add(len) {
                    return Err(MetaError::InvalidArgument(
                        "overlapping copy within one file",
                    ));
                }
                if dattr.flags & (FLAG_IMMUTABLE | FLAG_APPEND) != 0 {
                    return Err(MetaError::NotPermitted);
                }
                if len == 0 || src_off >= sattr.length {
                    return Ok(0);
                }
                let size = len.min(sattr.length - src_off);
                let new_end = dst_off + size;
                let mut delta = 0;
                if new_end > dattr.length {
                    delta = align4k(new_end) - align4k(dattr.length);
                    check_limits(limits, delta, 0)?;
                    dattr.length = new_end;
                }

                // Reference the source's visible pieces (holes included, so that they
                // overwrite the destination with zeros) at the destination offsets.
                let mut out: BTreeMap<u32, Vec<Slice>> = BTreeMap::new();
                let mut refs: Vec<(u64, u32)> = Vec::new();
                let (first, last) = (src_off / CHUNK_SIZE, (src_off + size - 1) / CHUNK_SIZE);
                for indx in first..=last {
                    let base = indx * CHUNK_SIZE;
                    let lo = src_off.max(base) - base;
                    let hi = (src_off + size).min(base + CHUNK_SIZE) - base;
                    let layout = overlay::build(&get_slices(&tx, keys, src, indx as u32).await?);
                    for p in overlay::pieces(&layout, lo as u32, (hi - lo) as u32) {
                        let at = base + u64::from(p.pos) - src_off + dst_off;
                        let dindx = (at / CHUNK_SIZE) as u32;
                        let dpos = (at % CHUNK_SIZE) as u32;
                        let room = (CHUNK_SIZE - u64::from(dpos)) as u32;
                        let head = p.len.min(room);
                        out.entry(dindx).or_default().push(Slice {
                            pos: dpos,
                            len: head,
                            ..p
                        });
                        if p.id != 0 {
                            refs.push((p.id, p.size));
                        }
                        if head < p.len {
                            out.entry(dindx + 1).or_default().push(Slice {
                                pos: 0,
                                off: p.off + head,
                                len: p.len - head,
                                ..p
                            });
                            if p.id != 0 {
                                refs.push((p.id, p.size));
                            }
                        }
                    }
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

    pub(super) async fn do_deleted_files(&self, limit: usize) -> Result<Vec<DeletedFile>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let keys = &self.keys;
        let prefix = keys.delfiles();
        let (begin, end) = (&prefix, &Keys::end_of(&prefix));
        self.kv
            .txn(|tx| async move {
                let mut out = Vec::new();
                for (k, _) in tx.scan(begin, end, limit, false).await? {
                    let k = keys.strip(&k);
                    // `D` + inode (little-endian) + length (big-endian); skip anything else.
                    if k.len() != 17 {
                        continue;
                    }
                    if let (Some(ino), Some(length)) = (le_u64(k, 1), be_u64(k, 9)) {
                        out.push(DeletedFile { ino, length });
                    }
                }
                Ok(out)
            })
            .await
    }

    /// Purges a deleted file in batches of [`PURGE_BATCH`] chunks. Each batch drops its
    /// chunks and their slice references in one transaction; the last also drops the
    /// deleted-file record, so an interrupted purge is simply finished by the next one.
    pub(super) async fn do_purge_file(&self, ino: Ino) -> Result<Vec<Slice>> {
        let keys = &self.keys;
        let mut freed_all = Vec::new();
        loop {
            let (freed, done) = self
                .kv
                .txn(|tx| async move { purge_batch(&tx, keys, ino).await })
                .await?;
            freed_all.extend(freed);
            if done {
                return Ok(freed_all);
            }
        }
    }
}

/// One batch of a purge; returns the slices nobody references any more and whether the
/// file is now gone.
async fn purge_batch<T: KvTxn>(tx: &T, keys: &Keys, ino: Ino) -> Result<(Vec<Slice>, bool)> {
    let dprefix = keys.delfiles_of(ino);
    let marker = tx.scan(&dprefix, &Keys::end_of(&dprefix), 1, false).await?;
    let Some((dkey, _)) = marker.into_iter().next() else {
        return match get_attr(tx, keys, ino).await? {
            Some(_) => Err(MetaError::InvalidArgument("the file is not deleted")),
            None => Err(MetaError::NotFound),
        };
    };
    if get_attr(tx, keys, ino).await?.is_some() {
        return Err(MetaError::Corrupt(format!(
            "inode {ino} is queued for deletion but still exists"
        )));
    }
    let cprefix = keys.chunks(ino);
    let chunks = tx
        .scan(&cprefix, &Keys::end_of(&cprefix), PURGE_BATCH, false)
        .await?;
    let mut freed = Vec::new();
    for (k, v) in &chunks {
        let indx = crate::keys::be_u32(keys.strip(k), 10).unwrap_or(u32::MAX);
        let slices = decode_slices(ino, indx, v)?;
        tx.clear(k);
        for s in slices.into_iter().filter(|s| s.id != 0) {
            let rkey = keys.slice_ref(s.id, s.size);
            // The counter holds the references beyond the first: below zero, none is left.
            let refs = incr(tx, &rkey, -1).await?;
            if refs <= 0 {
                tx.clear(&rkey);
            }
            if refs < 0 {
                freed.push(s);
            }
        }
    }
    let done = chunks.len() < PURGE_BATCH;
    if done {
        tx.clear(&dkey);
    }
    Ok((freed, done))
}
