//! The deletion queue: files waiting to be purged, and the purge itself.

use std::collections::BTreeSet;

use async_trait::async_trait;
use meta_api::backend::{not_queued, Purge};
use meta_api::{DeletedFile, Ino, MetaError, Purged, Result, Slice};

use super::data::{chunks_of, decode_records, DIRECT_CHUNKS};
use super::{RedisMeta, Writes};
use crate::keys::{delfile_member, parse_delfile_member, slice_ref_field};
use crate::txn::Tx;

#[async_trait]
impl Purge for RedisMeta {
    async fn deleted_files(&self, limit: usize) -> Result<Vec<DeletedFile>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let members: Vec<Vec<u8>> = self
            .read(
                redis::cmd("ZRANGE")
                    .arg(self.keys.delfiles())
                    .arg(0)
                    .arg(i64::try_from(limit - 1).unwrap_or(-1)),
            )
            .await?;
        let mut seen = BTreeSet::new();
        Ok(members
            .iter()
            .filter_map(|m| parse_delfile_member(m))
            .filter(|(ino, _)| seen.insert(*ino))
            .map(|(ino, length)| DeletedFile { ino, length })
            .collect())
    }

    async fn purge_file(&self, ino: Ino) -> Result<Vec<Slice>> {
        let Some((member, length)) = self.delfile_of(ino).await? else {
            return Err(not_queued(self.get_attr(ino).await?.is_some()));
        };
        let tail: Option<u64> = self
            .read(redis::cmd("HGET").arg(self.keys.chunk_tail()).arg(ino))
            .await?;
        let plan = self.plan_purge(ino, member, length, tail).await?;
        let mut done = Purged::default();
        self.purge_planned(std::slice::from_ref(&plan), &mut done)
            .await?;
        if done.files.is_empty() {
            return Err(MetaError::NotFound);
        }
        Ok(done.freed)
    }

    /// Purges files in transactions of many: one `WATCH` of their keys, then a round trip
    /// each for their queue entries, their inodes, their chunks and their slices'
    /// references, and one `MULTI`. A file with more than `DIRECT_CHUNKS` (4096) chunks is
    /// purged alone, its chunks found by a scan.
    async fn purge_files(&self, files: &[DeletedFile]) -> Result<Purged> {
        let mut done = Purged::default();
        if files.is_empty() {
            return Ok(done);
        }
        let mut p = redis::pipe();
        for f in files {
            p.cmd("HGET").arg(self.keys.chunk_tail()).arg(f.ino);
        }
        let tails: Vec<Option<u64>> = self.read_pipe(&p).await?;
        let mut batch: Vec<Planned> = Vec::new();
        let mut chunk_keys = 0;
        for (f, tail) in files.iter().zip(tails) {
            let chunks = chunk_count(f.length, tail);
            if chunks > DIRECT_CHUNKS {
                let member = delfile_member(f.ino, f.length).into_bytes();
                let plan = self.plan_purge(f.ino, member, f.length, tail).await?;
                self.purge_planned(std::slice::from_ref(&plan), &mut done)
                    .await?;
                continue;
            }
            if chunk_keys + chunks > BATCH_CHUNK_KEYS && !batch.is_empty() {
                self.purge_planned(&batch, &mut done).await?;
                batch.clear();
                chunk_keys = 0;
            }
            chunk_keys += chunks;
            batch.push(Planned {
                ino: f.ino,
                member: delfile_member(f.ino, f.length).into_bytes(),
                indexes: (0..chunks as u32).collect(),
            });
        }
        if !batch.is_empty() {
            self.purge_planned(&batch, &mut done).await?;
        }
        Ok(done)
    }
}

/// A file of a purge: its queue member and the chunks it may have.
struct Planned {
    ino: Ino,
    member: Vec<u8>,
    indexes: Vec<u32>,
}

/// The chunks a deleted file of `length` may have, given its `chunkTail` field.
fn chunk_count(length: u64, tail: Option<u64>) -> u64 {
    chunks_of(length).max(tail.map_or(0, |t| t + 1))
}

/// Chunk keys watched by one batched purge transaction at most.
const BATCH_CHUNK_KEYS: u64 = 4096;

impl RedisMeta {
    /// What a purge of file `ino` (queued as `member`, `length` bytes, `chunkTail` field
    /// `tail`) covers: a small file's chunks are named directly; a long one's are found, so
    /// that a huge sparse file costs what it holds, not its length.
    async fn plan_purge(
        &self,
        ino: Ino,
        member: Vec<u8>,
        length: u64,
        tail: Option<u64>,
    ) -> Result<Planned> {
        let chunks = chunk_count(length, tail);
        let indexes = if chunks <= DIRECT_CHUNKS {
            (0..chunks as u32).collect()
        } else {
            self.existing_chunks(ino).await?
        };
        Ok(Planned {
            ino,
            member,
            indexes,
        })
    }

    /// One transaction of a purge: purges the files of `batch` still queued.
    async fn purge_planned(&self, batch: &[Planned], done: &mut Purged) -> Result<()> {
        let k = &self.keys;
        let mut keys = vec![k.delfiles(), k.slice_refs()];
        for f in batch {
            keys.push(k.inode(f.ino));
            keys.extend(f.indexes.iter().map(|&i| k.chunk(f.ino, i)));
        }
        let (files, freed) = self
            .txn(&keys, |mut tx| async move {
                let mut p = redis::pipe();
                for f in batch {
                    p.cmd("ZSCORE").arg(k.delfiles()).arg(&f.member);
                }
                let scores: Vec<Option<f64>> = tx.pipe(&p).await?;
                let queued: Vec<&Planned> = batch
                    .iter()
                    .zip(scores)
                    .filter_map(|(f, s)| s.map(|_| f))
                    .collect();
                if queued.is_empty() {
                    return Ok(crate::txn::Step::Done((Vec::new(), Vec::new())));
                }
                let inodes: Vec<String> = queued.iter().map(|f| k.inode(f.ino)).collect();
                let attrs: Vec<Option<Vec<u8>>> = tx.cmd(redis::cmd("MGET").arg(&inodes)).await?;
                for (f, a) in queued.iter().zip(&attrs) {
                    let Some(a) = a else { continue };
                    let a = meta_api::encoding::decode_attr(a)?;
                    if a.nlink > 0 {
                        return Err(MetaError::Corrupt(format!(
                            "inode {} is queued for deletion but still has {} links",
                            f.ino, a.nlink
                        )));
                    }
                }
                let mut p = redis::pipe();
                for f in &queued {
                    for &i in &f.indexes {
                        p.cmd("LRANGE").arg(k.chunk(f.ino, i)).arg(0).arg(-1);
                    }
                }
                let lists: Vec<Vec<Vec<u8>>> = tx.pipe(&p).await?;
                let mut lists = lists.iter();
                let mut records = Vec::new();
                for f in &queued {
                    for &i in &f.indexes {
                        if let Some(list) = lists.next() {
                            records.extend(decode_records(f.ino, i, list)?);
                        }
                    }
                }
                let mut w = Writes::new();
                let freed = self
                    .drop_refs(&mut tx, &mut w, &Slice::references(&records))
                    .await?;
                for f in &queued {
                    for &i in &f.indexes {
                        w.del(k.chunk(f.ino, i));
                    }
                    w.hdel(k.chunk_tail(), f.ino.to_string().as_bytes())
                        .zrem(k.delfiles(), &f.member)
                        .del(k.inode(f.ino))
                        .del(k.xattrs(f.ino))
                        .del(k.openers(f.ino));
                }
                let files: Vec<Ino> = queued.iter().map(|f| f.ino).collect();
                Ok(w.commit((files, freed)))
            })
            .await?;
        done.files.extend(files);
        done.freed.extend(freed);
        Ok(())
    }
}

impl RedisMeta {
    /// One `ZSCAN` page of `delfiles` (members matching `pattern`, if given): the next
    /// cursor (0 at the end) and the members and scores, flat.
    pub(super) async fn delfiles_page(
        &self,
        cursor: u64,
        pattern: Option<&str>,
    ) -> Result<(u64, Vec<Vec<u8>>)> {
        let mut cmd = redis::cmd("ZSCAN");
        cmd.arg(self.keys.delfiles()).arg(cursor);
        if let Some(p) = pattern {
            cmd.arg("MATCH").arg(p);
        }
        self.read(cmd.arg("COUNT").arg(1000)).await
    }

    /// The `delfiles` member of `ino`, found with `ZSCAN`.
    async fn delfile_of(&self, ino: Ino) -> Result<Option<(Vec<u8>, u64)>> {
        let pattern = format!("{ino}:*");
        let mut cursor: u64 = 0;
        loop {
            let (next, flat) = self.delfiles_page(cursor, Some(&pattern)).await?;
            for m in flat.iter().step_by(2) {
                if let Some((i, len)) = parse_delfile_member(m) {
                    if i == ino {
                        return Ok(Some((m.clone(), len)));
                    }
                }
            }
            if next == 0 {
                return Ok(None);
            }
            cursor = next;
        }
    }
}

impl RedisMeta {
    /// Queues on `w` taking `n` references from each slice of `uses` (`(id, size, n)`, as
    /// [`Slice::references`] counts them) and returns the slices left with none, whose
    /// objects may be deleted once `w` commits (their fields stay, pending, at `<= -1`).
    /// The `sliceRef` field holds references minus one; a missing field is one reference.
    pub(crate) async fn drop_refs(
        &self,
        tx: &mut Tx,
        w: &mut Writes,
        uses: &[(u64, u32, i64)],
    ) -> Result<Vec<Slice>> {
        if uses.is_empty() {
            return Ok(Vec::new());
        }
        let k = &self.keys;
        let fields: Vec<String> = uses
            .iter()
            .map(|&(id, size, _)| slice_ref_field(id, size))
            .collect();
        let refs: Vec<Option<i64>> = tx
            .cmd(redis::cmd("HMGET").arg(k.slice_refs()).arg(&fields))
            .await?;
        let mut freed = Vec::new();
        for (&(id, size, n), (field, cur)) in uses.iter().zip(fields.iter().zip(refs)) {
            let left = cur.unwrap_or(0) - n;
            // A slice left with no reference keeps its field at `<= -1` (pending, JuiceFS's
            // convention) until forget_slice, after its objects are deleted.
            w.hset(
                k.slice_refs(),
                field.as_bytes(),
                left.to_string().as_bytes(),
            );
            if meta_api::upkeep::is_pending_extra(left) {
                freed.push(Slice::whole(id, size));
            }
        }
        Ok(freed)
    }
}
