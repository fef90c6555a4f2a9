//! Chunks and slices: reading, writing, truncating, fallocate, copy_file_range, statfs.

use meta_api::encoding::decode_attr;
use meta_api::perm::check_access_with;
use meta_api::{
    access, Attr, Context, FallocMode, FileType, Ino, MetaError, Result, Slice, Timestamp,
    CHUNK_SIZE, MAX_FILE_SIZE,
};

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use meta_api::backend::Data;
use meta_api::compact;
use meta_api::copy;
use meta_api::flags;
use meta_api::space::align4k;

use super::{now, RedisMeta, Writes};
use crate::keys::slice_ref_field;
use crate::txn::{Step, Tx};

/// Ranges longer than this many chunks find their existing chunk keys with `SCAN`
/// instead of one `RPUSHX` per chunk (JuiceFS's threshold).
const SCAN_CHUNKS_ABOVE: u64 = 10_000;

/// `IsDir` for directories and `InvalidArgument` for other non-regular inodes.
pub(crate) fn need_regular(a: &Attr) -> Result<()> {
    match a.typ {
        FileType::Regular => Ok(()),
        FileType::Directory => Err(MetaError::IsDir),
        _ => Err(MetaError::InvalidArgument("not a regular file")),
    }
}

impl RedisMeta {
    /// Queues the hole slices that make `old..new` (either direction) read as zeros, as
    /// JuiceFS does: the first chunk gets a hole from the cut, chunks in between that
    /// exist get a whole-chunk hole, the last chunk a hole up to the end.
    pub(crate) async fn truncate_writes(
        &self,
        tx: &mut Tx,
        w: &mut Writes,
        ino: Ino,
        old: u64,
        new: u64,
    ) -> Result<()> {
        let (left, right) = if old < new { (old, new) } else { (new, old) };
        let first = left / CHUNK_SIZE;
        let last = right / CHUNK_SIZE;
        let first_len = if right > (first + 1) * CHUNK_SIZE {
            CHUNK_SIZE - left % CHUNK_SIZE
        } else {
            right - left
        };
        w.rpush(
            self.keys.chunk(ino, first as u32),
            &Slice::hole((left % CHUNK_SIZE) as u32, first_len as u32).encode(),
        );
        let whole = Slice::hole(0, CHUNK_SIZE as u32).encode();
        if last.saturating_sub(first) > SCAN_CHUNKS_ABOVE {
            for indx in self.existing_chunks(ino).await? {
                if u64::from(indx) > first && u64::from(indx) < last {
                    w.rpushx(self.keys.chunk(ino, indx), &whole);
                }
            }
        } else {
            for indx in first + 1..last {
                w.rpushx(self.keys.chunk(ino, indx as u32), &whole);
            }
        }
        if right > (first + 1) * CHUNK_SIZE && right % CHUNK_SIZE > 0 {
            w.rpush(
                self.keys.chunk(ino, last as u32),
                &Slice::hole(0, (right % CHUNK_SIZE) as u32).encode(),
            );
        }
        if new < old {
            // Chunks past the new end keep their slices (now behind holes) until the file
            // is purged, which walks chunks by length: remember how far they reach.
            let tail = (old - 1) / CHUNK_SIZE;
            let field = ino.to_string();
            let known: Option<u64> = tx
                .cmd(redis::cmd("HGET").arg(self.keys.chunk_tail()).arg(&field))
                .await?;
            if tail > chunks_of(new).saturating_sub(1) && known.is_none_or(|k| k < tail) {
                w.hset(
                    self.keys.chunk_tail(),
                    field.as_bytes(),
                    tail.to_string().as_bytes(),
                );
            }
        }
        Ok(())
    }

    /// The indexes of the chunks of `ino` that exist, read outside any transaction: work
    /// and memory follow the chunks there are, not the file's length (a sparse 128 PiB
    /// file has 2^31 possible chunks).
    pub(crate) async fn existing_chunks(&self, ino: Ino) -> Result<Vec<u32>> {
        let (prefix, pattern) = self.chunk_pattern(ino);
        let mut cursor: u64 = 0;
        let mut out = Vec::new();
        loop {
            let (next, keys): (u64, Vec<String>) =
                self.read(&scan_chunks(cursor, &pattern)).await?;
            out.extend(parse_chunk_keys(&prefix, &keys));
            if next == 0 {
                out.sort_unstable();
                out.dedup();
                return Ok(out);
            }
            cursor = next;
        }
    }

    /// The chunk indexes of `ino` in `first..=last` worth reading: all of them for a short
    /// span, the ones that exist (found by `SCAN`) for a long one.
    pub(crate) async fn chunks_in(&self, ino: Ino, (first, last): (u32, u32)) -> Result<Vec<u32>> {
        if u64::from(last - first) < DIRECT_CHUNKS {
            return Ok((first..=last).collect());
        }
        let mut found = self.existing_chunks(ino).await?;
        found.retain(|i| (first..=last).contains(i));
        Ok(found)
    }

    /// The key prefix of the chunks of `ino` (`c{ino}_`) and the `SCAN` pattern matching them.
    fn chunk_pattern(&self, ino: Ino) -> (String, String) {
        let key = self.keys.chunk(ino, 0);
        let prefix = key.trim_end_matches('0').to_string();
        let pattern = format!("{prefix}*");
        (prefix, pattern)
    }
}

/// How many chunks a file of `length` bytes spans (at least one: chunk 0 may hold
/// slices of a file cut to length 0).
/// Ranges of up to this many chunks are walked chunk by chunk; longer ones by the chunks
/// that exist.
pub(crate) const DIRECT_CHUNKS: u64 = 4096;

/// One `SCAN` step over the keys matching `pattern`.
fn scan_chunks(cursor: u64, pattern: &str) -> redis::Cmd {
    let mut c = redis::cmd("SCAN");
    c.arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(10_000);
    c
}

/// The chunk indexes of the chunk keys `keys` of one inode (`prefix` + index).
fn parse_chunk_keys<'a>(prefix: &'a str, keys: &'a [String]) -> impl Iterator<Item = u32> + 'a {
    keys.iter()
        .filter_map(move |k| k.strip_prefix(prefix)?.parse::<u32>().ok())
}

pub(crate) fn chunks_of(length: u64) -> u64 {
    length.div_ceil(CHUNK_SIZE).max(1)
}

/// Decodes the 24-byte records of chunk `indx` of `ino`.
pub(crate) fn decode_records(ino: Ino, indx: u32, records: &[Vec<u8>]) -> Result<Vec<Slice>> {
    records
        .iter()
        .map(|r| {
            let b: &[u8; 24] = r.as_slice().try_into().map_err(|_| {
                MetaError::Corrupt(format!(
                    "chunk {indx} of inode {ino} has a record of {} bytes",
                    r.len()
                ))
            })?;
            Slice::decode(b).checked(ino, indx)
        })
        .collect()
}

#[async_trait]
impl Data for RedisMeta {
    async fn read_chunk(&self, ino: Ino, index: u32) -> Result<Vec<Slice>> {
        let mut p = redis::pipe();
        p.cmd("LRANGE")
            .arg(self.keys.chunk(ino, index))
            .arg(0)
            .arg(-1)
            .cmd("GET")
            .arg(self.keys.inode(ino));
        let (records, attr): (Vec<Vec<u8>>, Option<Vec<u8>>) = self.read_pipe(&p).await?;
        let attr = decode_attr(&attr.ok_or(MetaError::NotFound)?)?;
        if attr.is_dir() {
            return Err(MetaError::IsDir);
        }
        decode_records(ino, index, &records)
    }

    async fn write_slice(
        &self,
        ino: Ino,
        index: u32,
        slice: Slice,
        mtime: Timestamp,
    ) -> Result<usize> {
        let new_len = u64::from(index) * CHUNK_SIZE + u64::from(slice.pos) + u64::from(slice.len);
        let keys = [self.keys.inode(ino)];
        self.txn(&keys, |mut tx| async move {
            // The chunk's length rides along with the inode (one round trip); the chunk is
            // not watched, so a concurrent append may make the count one off.
            let mut p = redis::pipe();
            p.cmd("GET")
                .arg(self.keys.inode(ino))
                .cmd("LLEN")
                .arg(self.keys.chunk(ino, index));
            let (attr, records): (Option<Vec<u8>>, usize) = tx.pipe(&p).await?;
            let mut attr = decode_attr(&attr.ok_or(MetaError::NotFound)?)?;
            need_regular(&attr)?;
            if attr.is_immutable() {
                return Err(MetaError::NotPermitted);
            }
            let mut delta = 0;
            let mut w = Writes::new();
            if new_len > attr.length {
                delta = align4k(new_len) - align4k(attr.length);
                self.charge_resize(&mut tx, &mut w, ino, &attr, delta)
                    .await?;
                self.resize_stats(&mut tx, &mut w, ino, &attr, attr.length, new_len)
                    .await?;
                attr.length = new_len;
            }
            attr.mtime = mtime;
            attr.ctime = mtime;
            let k = &self.keys;
            w.rpush(k.chunk(ino, index), &slice.encode())
                .set_attr(k, ino, &attr);
            if delta > 0 {
                w.incrby(k.used_space(), delta);
            }
            Ok(w.commit(records + 1))
        })
        .await
    }

    async fn new_slice_id(&self) -> Result<u64> {
        self.new_slice().await
    }

    async fn compact_chunk(
        &self,
        ino: Ino,
        index: u32,
        plan: &compact::Plan,
        id: u64,
    ) -> Result<Option<Vec<Slice>>> {
        let trash = self.settings().await?.trash_days > 0;
        let deleted = now().sec;
        let k = &self.keys;
        let keys = [k.inode(ino), k.chunk(ino, index), k.slice_refs()];
        self.txn(&keys, |mut tx| async move {
            let attr = tx.attr(ino).await?.ok_or(MetaError::NotFound)?;
            need_regular(&attr)?;
            let records: Vec<Vec<u8>> = tx
                .cmd(redis::cmd("LRANGE").arg(k.chunk(ino, index)).arg(0).arg(-1))
                .await?;
            let cur = decode_records(ino, index, &records)?;
            let Some(next) = compact::apply(&cur, plan, id) else {
                return Ok(Step::Done(None));
            };
            let mut w = Writes::new();
            w.del(k.chunk(ino, index));
            for s in &next {
                w.rpush(k.chunk(ino, index), &s.encode());
            }
            // The field holds references minus one: the new slice has one.
            w.hset(
                k.slice_refs(),
                slice_ref_field(id, plan.len).as_bytes(),
                b"0",
            );
            if trash {
                let delayed = compact::encode_delayed(plan.replaced());
                if !delayed.is_empty() {
                    let field = format!("{id}_{deleted}");
                    w.hset(k.delayed_slices(), field.as_bytes(), &delayed);
                }
                return Ok(w.commit(Some(Vec::new())));
            }
            let uses = Slice::references(plan.replaced());
            let freed = self.drop_refs(&mut tx, &mut w, &uses).await?;
            Ok(w.commit(Some(freed)))
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
        let known = FallocMode::KEEP_SIZE | FallocMode::PUNCH_HOLE | FallocMode::ZERO_RANGE;
        if mode.0 & !known != 0 {
            return Err(MetaError::NotSupported("fallocate mode"));
        }
        if mode.contains(FallocMode::PUNCH_HOLE) && mode.contains(FallocMode::ZERO_RANGE) {
            return Err(MetaError::InvalidArgument("PUNCH_HOLE with ZERO_RANGE"));
        }
        if mode.contains(FallocMode::PUNCH_HOLE) && !mode.contains(FallocMode::KEEP_SIZE) {
            return Err(MetaError::InvalidArgument("PUNCH_HOLE needs KEEP_SIZE"));
        }
        if len == 0 {
            return Err(MetaError::InvalidArgument("fallocate of zero bytes"));
        }
        let end = off.checked_add(len).ok_or(MetaError::FileTooBig)?;
        if end > MAX_FILE_SIZE {
            return Err(MetaError::FileTooBig);
        }
        let keys = [self.keys.inode(ino)];
        self.txn(&keys, |mut tx| async move {
            let mut attr = tx.attr(ino).await?.ok_or(MetaError::NotFound)?;
            need_regular(&attr)?;
            self.access(ctx, &attr, access::W).await?;
            flags::check_fallocate(&attr, mode)?;
            let old = attr.length;
            let mut length = old;
            if end > old && !mode.contains(FallocMode::KEEP_SIZE) {
                length = end;
            }
            let delta = align4k(length) - align4k(old);
            let mut w = Writes::new();
            self.charge_resize(&mut tx, &mut w, ino, &attr, delta)
                .await?;
            self.resize_stats(&mut tx, &mut w, ino, &attr, old, length)
                .await?;
            let t = now();
            attr.length = length;
            attr.mtime = t;
            attr.ctime = t;
            let k = &self.keys;
            w.set_attr(k, ino, &attr);
            if mode.0 & (FallocMode::ZERO_RANGE | FallocMode::PUNCH_HOLE) != 0 && off < old {
                // Only existing bytes of existing chunks need a hole (a missing chunk reads
                // as zeros): RPUSHX leaves missing chunks missing, and a long range is
                // walked by the chunks there are, not by its length.
                let stop = end.min(old);
                let (first, last) = (off / CHUNK_SIZE, (stop - 1) / CHUNK_SIZE);
                let span = (
                    u32::try_from(first).unwrap_or(u32::MAX),
                    u32::try_from(last).unwrap_or(u32::MAX),
                );
                let indexes: Vec<u64> = self
                    .chunks_in(ino, span)
                    .await?
                    .into_iter()
                    .map(u64::from)
                    .collect();
                for indx in indexes {
                    let base = indx * CHUNK_SIZE;
                    let (lo, hi) = (off.max(base), stop.min(base + CHUNK_SIZE));
                    w.rpushx(
                        k.chunk(ino, indx as u32),
                        &Slice::hole((lo - base) as u32, (hi - lo) as u32).encode(),
                    );
                }
            }
            if delta != 0 {
                w.incrby(k.used_space(), delta);
            }
            Ok(w.commit(()))
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
        if src_off.checked_add(len).is_none() || dst_off.checked_add(len).is_none() {
            return Err(MetaError::FileTooBig);
        }
        let keys = [self.keys.inode(dst), self.keys.inode(src)];
        self.txn(&keys, |mut tx| async move {
            let got = tx.attrs(&[src, dst]).await?;
            let mut it = got.into_iter();
            let sattr = it.next().flatten().ok_or(MetaError::NotFound)?;
            let mut dattr = it.next().flatten().ok_or(MetaError::NotFound)?;
            need_regular(&sattr)?;
            need_regular(&dattr)?;
            let srule = self.check_rule(ctx, Some(&sattr)).await?;
            check_access_with(ctx, &sattr, srule.as_deref(), access::R)?;
            self.access(ctx, &dattr, access::W).await?;
            flags::check_copy_into(&dattr)?;
            if dst_off + len > MAX_FILE_SIZE {
                return Err(MetaError::FileTooBig);
            }
            if src == dst && src_off < dst_off + len && dst_off < src_off + len {
                return Err(MetaError::InvalidArgument("overlapping ranges of one file"));
            }
            if len == 0 || src_off >= sattr.length {
                return Ok(Step::Done(0));
            }
            let size = len.min(sattr.length - src_off);
            let new_end = dst_off + size;
            if new_end > MAX_FILE_SIZE {
                return Err(MetaError::FileTooBig);
            }
            let mut delta = 0;
            let mut w = Writes::new();
            if new_end > dattr.length {
                delta = align4k(new_end) - align4k(dattr.length);
                self.charge_resize(&mut tx, &mut w, dst, &dattr, delta)
                    .await?;
                self.resize_stats(&mut tx, &mut w, dst, &dattr, dattr.length, new_end)
                    .await?;
                dattr.length = new_end;
            }
            // Only chunks that exist on either side cost anything: a long range is walked
            // by the chunks there are, not by its length.
            let src_idx = self.chunks_in(src, copy::chunk_span(src_off, size)).await?;
            let dst_idx = self.chunks_in(dst, copy::chunk_span(dst_off, size)).await?;
            // One round trip: the source's records and whether the destination's chunks exist.
            let mut p = redis::pipe();
            for &indx in &src_idx {
                p.cmd("LRANGE")
                    .arg(self.keys.chunk(src, indx))
                    .arg(0)
                    .arg(-1);
            }
            for &indx in &dst_idx {
                p.cmd("LLEN").arg(self.keys.chunk(dst, indx));
            }
            let replies: Vec<redis::Value> = tx.pipe(&p).await?;
            let (lists, lens) = replies.split_at(src_idx.len().min(replies.len()));
            let mut src_chunks: BTreeMap<u32, Vec<Slice>> = BTreeMap::new();
            for (&indx, reply) in src_idx.iter().zip(lists) {
                let records: Vec<Vec<u8>> =
                    redis::from_redis_value(reply).map_err(|e| MetaError::backend(false, e))?;
                if !records.is_empty() {
                    src_chunks.insert(indx, decode_records(src, indx, &records)?);
                }
            }
            let mut dst_chunks = BTreeSet::new();
            for (&indx, reply) in dst_idx.iter().zip(lens) {
                let n: u64 =
                    redis::from_redis_value(reply).map_err(|e| MetaError::backend(false, e))?;
                if n > 0 {
                    dst_chunks.insert(indx);
                }
            }
            let k = &self.keys;
            for (indx, rec) in copy::records(&src_chunks, &dst_chunks, src_off, dst_off, size) {
                w.rpush(k.chunk(dst, indx), &rec.encode());
                if rec.id > 0 {
                    w.hincrby(
                        k.slice_refs(),
                        slice_ref_field(rec.id, rec.size).as_bytes(),
                        1,
                    );
                }
            }
            let t = now();
            dattr.mtime = t;
            dattr.ctime = t;
            w.set_attr(k, dst, &dattr);
            if delta > 0 {
                w.incrby(k.used_space(), delta);
            }
            Ok(w.commit(size))
        })
        .await
    }
}
