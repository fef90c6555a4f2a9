//! File data: chunks of slice records, slice reference counts, length changes, copies,
//! space accounting and the deletion queue.

use std::collections::{BTreeMap, BTreeSet};

use crate::sql::SqliteConnection;
use meta_api::perm::check_access_with;
use meta_api::{
    access, Attr, Context, FallocMode, FileType, Format, Ino, MetaError, Result, Slice, Timestamp,
    CHUNK_SIZE, MAX_FILE_SIZE,
};

use crate::engine::node::{
    add_usage, align4k, drop_refs, file_dir_stat, must_node, split_time, update_node,
};
use crate::engine::quota;
use crate::txn::db_err;
use crate::SqliteMeta;
use async_trait::async_trait;
use meta_api::args::check_copy_range;
use meta_api::backend::Data;
use meta_api::compact;
use meta_api::copy;
use meta_api::flags;
use meta_api::quota::Charge;
use meta_api::SLICE_BYTES;

/// One round trip of a write, with anonymous parameters bound in textual order (inode,
/// index, record, record; slice id, size, id; length, t, t, tn, tn, inode; space, space):
/// append the record to the chunk (creating it), count a reference to the slice (not for
/// holes), set the length and times, add to the used space. Its one row is the chunk's
/// length in bytes after the append (`||` makes TEXT: the cast counts bytes).
const WRITE_SLICE: &str = "INSERT INTO jfs_chunk (inode, indx, slices) VALUES (?, ?, ?) \
     ON CONFLICT (inode, indx) DO UPDATE SET slices = slices || ? \
     RETURNING length(CAST(slices AS BLOB)); \
     INSERT INTO jfs_chunk_ref (chunkid, size, refs) SELECT ?, ?, 1 WHERE ? != 0 \
     ON CONFLICT (chunkid) DO UPDATE SET refs = refs + 1; \
     UPDATE jfs_node SET length = ?, mtime = ?, ctime = ?, mtimensec = ?, ctimensec = ? \
     WHERE inode = ?; \
     UPDATE jfs_counter SET value = value + ? WHERE name = 'usedSpace' AND ? != 0";

/// Appends encoded records to chunk `indx` of `ino`; a missing chunk is created only when
/// `create` (a chunk that does not exist already reads as a hole).
async fn append_records(
    c: &mut SqliteConnection,
    ino: Ino,
    indx: u64,
    buf: &[u8],
    create: bool,
) -> Result<()> {
    let sql = if create {
        "INSERT INTO jfs_chunk (inode, indx, slices) VALUES (?1, ?2, ?3) \
         ON CONFLICT (inode, indx) DO UPDATE SET slices = slices || ?3"
    } else {
        "UPDATE jfs_chunk SET slices = slices || ?3 WHERE inode = ?1 AND indx = ?2"
    };
    crate::sql::query(sql)
        .bind(ino as i64)
        .bind(indx as i64)
        .bind(buf)
        .execute(&mut *c)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// Turns `off..end` of `ino` into a hole by appending hole records to the chunks that exist.
async fn punch(c: &mut SqliteConnection, ino: Ino, off: u64, end: u64) -> Result<()> {
    if off >= end {
        return Ok(());
    }
    let (first, last) = (off / CHUNK_SIZE, (end - 1) / CHUNK_SIZE);
    let head = off % CHUNK_SIZE;
    if first == last {
        let rec = Slice::hole(head as u32, (end - off) as u32).encode();
        return append_records(c, ino, first, &rec, false).await;
    }
    let (mut full_from, mut full_to) = (first, last);
    if head != 0 {
        let rec = Slice::hole(head as u32, (CHUNK_SIZE - head) as u32).encode();
        append_records(c, ino, first, &rec, false).await?;
        full_from += 1;
    }
    let tail = end - last * CHUNK_SIZE;
    if tail != CHUNK_SIZE {
        append_records(c, ino, last, &Slice::hole(0, tail as u32).encode(), false).await?;
        full_to -= 1;
    }
    if full_from <= full_to {
        crate::sql::query(
            "UPDATE jfs_chunk SET slices = slices || ? WHERE inode = ? AND indx BETWEEN ? AND ?",
        )
        .bind(&Slice::hole(0, CHUNK_SIZE as u32).encode()[..])
        .bind(ino as i64)
        .bind(full_from as i64)
        .bind(full_to as i64)
        .execute(&mut *c)
        .await
        .map_err(db_err)?;
    }
    Ok(())
}

/// Sets the length of regular file `ino` (whose node is `attr`) to `length`: a shrink turns
/// the cut-off range into a hole (chunks stay, as JuiceFS keeps them, until the file is
/// purged); the usage counters follow. The caller writes `attr` back, then applies the
/// returned change to the directory statistics.
pub(crate) async fn resize(
    c: &mut SqliteConnection,
    fmt: &Format,
    ino: Ino,
    attr: &mut Attr,
    length: u64,
) -> Result<Resized> {
    if length > MAX_FILE_SIZE {
        return Err(MetaError::FileTooBig);
    }
    let old = attr.length;
    let space = align4k(length) - align4k(old);
    if space != 0 {
        let dirs = quota::file_dirs(c, ino, attr.parent).await?;
        let owner = Some((attr.uid, attr.gid));
        quota::charge(c, fmt, Charge::new(space, 0, owner, dirs), true).await?;
    }
    if length < old {
        punch(c, ino, length, old).await?;
    }
    attr.length = length;
    add_usage(c, space, 0).await?;
    Ok(Resized {
        length: length as i64 - old as i64,
        space,
    })
}

/// How a length change moved the data length and the space charged, for the directory
/// statistics the caller updates once the node is written.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Resized {
    length: i64,
    space: i64,
}

impl Resized {
    /// Updates the JuiceFS directory statistics of the file's parent(s).
    pub(crate) async fn apply(
        self,
        c: &mut SqliteConnection,
        fmt: &Format,
        ino: Ino,
        parent: Ino,
    ) -> Result<()> {
        file_dir_stat(c, fmt, ino, parent, self.length, self.space).await
    }
}

/// Data operations apply to regular files only.
fn check_regular(attr: &Attr) -> Result<()> {
    match attr.typ {
        FileType::Regular => Ok(()),
        FileType::Directory => Err(MetaError::IsDir),
        _ => Err(MetaError::InvalidArgument("not a regular file")),
    }
}

#[async_trait]
impl Data for SqliteMeta {
    async fn read_chunk(&self, ino: Ino, index: u32) -> Result<Vec<Slice>> {
        self.fmt().await?;
        let row = crate::sql::query(
            "SELECT n.type, c.slices FROM jfs_node n LEFT JOIN jfs_chunk c \
             ON c.inode = n.inode AND c.indx = ?1 WHERE n.inode = ?2",
        )
        .bind(i64::from(index))
        .bind(ino as i64)
        .fetch_optional(&self.db.pool)
        .await
        .map_err(db_err)?
        .ok_or(MetaError::NotFound)?;
        if row.try_get::<i64, _>(0).map_err(db_err)? == FileType::Directory as u8 as i64 {
            return Err(MetaError::IsDir);
        }
        match row.try_get::<Option<Vec<u8>>, _>(1).map_err(db_err)? {
            None => Ok(Vec::new()),
            Some(buf) => Slice::decode_chunk(ino, index, &buf),
        }
    }

    async fn write_slice(
        &self,
        ino: Ino,
        index: u32,
        slice: Slice,
        mtime: Timestamp,
    ) -> Result<usize> {
        let fmt = self.fmt().await?;
        let fmt = &*fmt;
        let end = u64::from(index) * CHUNK_SIZE + u64::from(slice.pos) + u64::from(slice.len);
        let rec = slice.encode();
        self.db
            .txn(|c, _| {
                Box::pin(async move {
                    let mut attr = must_node(c, ino).await?;
                    check_regular(&attr)?;
                    let old = attr.length;
                    let space = if end > old {
                        align4k(end) - align4k(old)
                    } else {
                        0
                    };
                    if space != 0 {
                        let dirs = quota::file_dirs(c, ino, attr.parent).await?;
                        let owner = Some((attr.uid, attr.gid));
                        quota::charge(c, fmt, Charge::new(space, 0, owner, dirs), true).await?;
                    }
                    attr.length = old.max(end);
                    let (t, tn) = split_time(mtime);
                    let appended = crate::sql::query(WRITE_SLICE)
                        .bind(ino as i64)
                        .bind(i64::from(index))
                        .bind(&rec[..])
                        .bind(&rec[..])
                        .bind(slice.id as i64)
                        .bind(i64::from(slice.size))
                        .bind(slice.id as i64)
                        .bind(attr.length as i64)
                        .bind(t)
                        .bind(t)
                        .bind(tn)
                        .bind(tn)
                        .bind(ino as i64)
                        .bind(space)
                        .bind(space)
                        .fetch_all(&mut *c)
                        .await
                        .map_err(db_err)?;
                    let bytes: i64 = match appended.first() {
                        Some(row) => row.try_get(0).map_err(db_err)?,
                        None => {
                            return Err(MetaError::Corrupt(format!(
                                "chunk {index} of inode {ino}: the append returned no length"
                            )))
                        }
                    };
                    let grown = attr.length as i64 - old as i64;
                    file_dir_stat(c, fmt, ino, attr.parent, grown, space).await?;
                    Ok(usize::try_from(bytes).unwrap_or(0) / SLICE_BYTES)
                })
            })
            .await
    }

    async fn new_slice_id(&self) -> Result<u64> {
        self.fmt().await?;
        self.next_slice().await
    }

    async fn compact_chunk(
        &self,
        ino: Ino,
        index: u32,
        plan: &compact::Plan,
        id: u64,
    ) -> Result<Option<Vec<Slice>>> {
        let fmt = self.fmt().await?;
        let trash = fmt.trash_days > 0;
        let deleted = Timestamp::now().sec;
        self.db
            .txn(|c, _| {
                Box::pin(async move {
                    let attr = must_node(c, ino).await?;
                    check_regular(&attr)?;
                    let buf: Option<Vec<u8>> =
                        crate::sql::query("SELECT slices FROM jfs_chunk WHERE inode = ? AND indx = ?")
                            .bind(ino as i64)
                            .bind(i64::from(index))
                            .fetch_optional(&mut *c)
                            .await
                            .map_err(db_err)?
                            .map(|r| r.try_get(0))
                            .transpose()
                            .map_err(db_err)?;
                    let cur = Slice::decode_chunk(ino, index, buf.as_deref().unwrap_or_default())?;
                    let Some(records) = compact::apply(&cur, plan, id) else {
                        return Ok(None);
                    };
                    crate::sql::query("UPDATE jfs_chunk SET slices = ? WHERE inode = ? AND indx = ?")
                        .bind(Slice::encode_all(&records))
                        .bind(ino as i64)
                        .bind(i64::from(index))
                        .execute(&mut *c)
                        .await
                        .map_err(db_err)?;
                    crate::sql::query("INSERT INTO jfs_chunk_ref (chunkid, size, refs) VALUES (?, ?, 1)")
                        .bind(id as i64)
                        .bind(i64::from(plan.len))
                        .execute(&mut *c)
                        .await
                        .map_err(db_err)?;
                    if trash {
                        let delayed = compact::encode_delayed(plan.replaced());
                        if !delayed.is_empty() {
                            crate::sql::query(
                                "INSERT INTO jfs_delslices (chunkid, deleted, slices) VALUES (?, ?, ?)",
                            )
                            .bind(id as i64)
                            .bind(deleted)
                            .bind(delayed)
                            .execute(&mut *c)
                            .await
                            .map_err(db_err)?;
                        }
                        return Ok(Some(Vec::new()));
                    }
                    let freed = drop_refs(c, &Slice::references(plan.replaced())).await?;
                    Ok(Some(freed))
                })
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
        let fmt = self.fmt().await?;
        let fmt = &*fmt;
        let punch_hole = mode.contains(FallocMode::PUNCH_HOLE);
        let zero = mode.contains(FallocMode::ZERO_RANGE);
        let keep = mode.contains(FallocMode::KEEP_SIZE);
        let end = off + len;
        let now = Timestamp::now();
        self.db
            .txn(|c, _| {
                Box::pin(async move {
                    let mut attr = must_node(c, ino).await?;
                    check_regular(&attr)?;
                    flags::check_fallocate(&attr, mode)?;
                    self.access(c, ctx, &attr, access::W).await?;
                    let old = attr.length;
                    if punch_hole || zero {
                        punch(c, ino, off, end.min(old)).await?;
                    }
                    let mut resized = Resized::default();
                    if !keep && end > old {
                        resized = resize(c, fmt, ino, &mut attr, end).await?;
                    }
                    attr.mtime = now;
                    attr.ctime = now;
                    update_node(c, ino, &attr).await?;
                    resized.apply(c, fmt, ino, attr.parent).await
                })
            })
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn copy_file_range(
        &self,
        ctx: &Context,
        src: Ino,
        src_off: u64,
        dst: Ino,
        dst_off: u64,
        len: u64,
    ) -> Result<u64> {
        let fmt = self.fmt().await?;
        let fmt = &*fmt;
        let now = Timestamp::now();
        self.db
            .txn(|c, _| {
                Box::pin(async move {
                    let sattr = must_node(c, src).await?;
                    let mut dattr = if src == dst {
                        sattr.clone()
                    } else {
                        must_node(c, dst).await?
                    };
                    check_regular(&sattr)?;
                    check_regular(&dattr)?;
                    let srule = self.check_rule(c, ctx, Some(&sattr)).await?;
                    check_access_with(ctx, &sattr, srule.as_deref(), access::R)?;
                    let drule = self.check_rule(c, ctx, Some(&dattr)).await?;
                    check_access_with(ctx, &dattr, drule.as_deref(), access::W)?;
                    check_copy_range(src == dst, src_off, dst_off, len)?;
                    flags::check_copy_into(&dattr)?;
                    if src_off >= sattr.length || len == 0 {
                        return Ok(0);
                    }
                    let size = len.min(sattr.length - src_off);
                    let dend = dst_off + size;
                    let mut chunks = BTreeMap::new();
                    let rows = crate::sql::query(
                        "SELECT indx, slices FROM jfs_chunk WHERE inode = ? AND indx BETWEEN ? AND ?",
                    )
                    .bind(src as i64)
                    .bind((src_off / CHUNK_SIZE) as i64)
                    .bind(((src_off + size - 1) / CHUNK_SIZE) as i64)
                    .fetch_all(&mut *c)
                    .await
                    .map_err(db_err)?;
                    for r in rows {
                        let indx: i64 = r.try_get(0).map_err(db_err)?;
                        let buf: Vec<u8> = r.try_get(1).map_err(db_err)?;
                        let indx = u32::try_from(indx).unwrap_or(u32::MAX);
                        chunks.insert(indx, Slice::decode_chunk(src, indx, &buf)?);
                    }
                    let (dfirst, dlast) = copy::chunk_span(dst_off, size);
                    let dst_chunks: BTreeSet<u32> = crate::sql::query(
                        "SELECT indx FROM jfs_chunk WHERE inode = ? AND indx BETWEEN ? AND ?",
                    )
                    .bind(dst as i64)
                    .bind(i64::from(dfirst))
                    .bind(i64::from(dlast))
                    .fetch_all(&mut *c)
                    .await
                    .map_err(db_err)?
                    .iter()
                    .filter_map(|r| r.try_get::<i64, _>(0).ok())
                    .filter_map(|i| u32::try_from(i).ok())
                    .collect();
                    // Records per destination chunk (in order), and references per slice.
                    let mut per_chunk: BTreeMap<u32, (Vec<u8>, bool)> = BTreeMap::new();
                    let mut refs: BTreeMap<u64, (u32, i64)> = BTreeMap::new();
                    for (indx, rec) in copy::records(&chunks, &dst_chunks, src_off, dst_off, size) {
                        let entry = per_chunk.entry(indx).or_default();
                        entry.0.extend_from_slice(&rec.encode());
                        if rec.id != 0 {
                            entry.1 = true;
                            refs.entry(rec.id).or_insert((rec.size, 0)).1 += 1;
                        }
                    }
                    let old = dattr.length;
                    let space = if dend > old {
                        align4k(dend) - align4k(old)
                    } else {
                        0
                    };
                    if space != 0 {
                        let dirs = quota::file_dirs(c, dst, dattr.parent).await?;
                        let owner = Some((dattr.uid, dattr.gid));
                        quota::charge(c, fmt, Charge::new(space, 0, owner, dirs), true).await?;
                    }
                    for (indx, (buf, has_data)) in per_chunk {
                        append_records(c, dst, u64::from(indx), &buf, has_data).await?;
                    }
                    crate::engine::node::add_refs(c, refs).await?;
                    dattr.length = old.max(dend);
                    dattr.mtime = now;
                    dattr.ctime = now;
                    update_node(c, dst, &dattr).await?;
                    add_usage(c, space, 0).await?;
                    let grown = dattr.length as i64 - old as i64;
                    file_dir_stat(c, fmt, dst, dattr.parent, grown, space).await?;
                    Ok(size)
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(pos: u32, id: u64, len: u32) -> Slice {
        Slice {
            pos,
            id,
            size: len,
            off: 0,
            len,
        }
    }

    #[test]
    fn copy_records_cover_the_range_exactly() {
        let mut chunks = BTreeMap::new();
        chunks.insert(1, vec![s(10, 3, 20), s(15, 4, 5)]);
        let src = CHUNK_SIZE + 5;
        let recs = copy::records(&chunks, &BTreeSet::new(), src, 0, 40);
        assert_eq!(recs.iter().map(|(_, r)| u64::from(r.len)).sum::<u64>(), 40);
        let ids: Vec<u64> = recs.iter().map(|(_, r)| r.id).collect();
        assert_eq!(ids, vec![0, 3, 4, 3, 0]);
        assert!(recs.iter().all(|(i, _)| *i == 0));
    }
}
