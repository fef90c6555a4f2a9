//! The deletion queue: files waiting to be purged, and the purge itself.

use async_trait::async_trait;
use meta_api::backend::{not_queued, Purge};
use meta_api::{DeletedFile, Ino, MetaError, Purged, Result, Slice};

use super::{drop_refs, get_attr, TkvMeta};
use crate::keys::{be_u64, le_u64, Keys};
use crate::kv::{KvStore, KvTxn};

/// The inode and length of a `D{ino}{length}` key (prefix stripped: `D`, the inode
/// little-endian, the length big-endian); `None` for any other key.
pub(crate) fn delfile_of_key(k: &[u8]) -> Option<(Ino, u64)> {
    if k.len() != 17 {
        return None;
    }
    Some((le_u64(k, 1)?, be_u64(k, 9)?))
}

/// Chunks purged per transaction: keeps a purge of a huge file under FoundationDB's
/// 5 s / 10 MB transaction limits.
pub(crate) const PURGE_BATCH: usize = 256;

#[async_trait]
impl<K: KvStore> Purge for TkvMeta<K> {
    async fn deleted_files(&self, limit: usize) -> Result<Vec<DeletedFile>> {
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
                    if let Some((ino, length)) = delfile_of_key(keys.strip(&k)) {
                        out.push(DeletedFile { ino, length });
                    }
                }
                Ok(out)
            })
            .await
    }

    /// Purges a deleted file in batches of `PURGE_BATCH` chunks ([`Purge::purge_files`]):
    /// each drops its chunks and their slice references in one transaction; the last also
    /// drops the deleted-file record, so an interrupted purge is simply finished by the
    /// next one.
    async fn purge_file(&self, ino: Ino) -> Result<Vec<Slice>> {
        let done = self.purge_files(&[DeletedFile { ino, length: 0 }]).await?;
        if done.files.is_empty() {
            let keys = &self.keys;
            let live = self
                .kv
                .txn(|tx| async move { get_attr(&tx, keys, ino).await });
            return Err(not_queued(live.await?.is_some()));
        }
        Ok(done.freed)
    }

    /// Purges files in transactions of up to `PURGE_BATCH` chunks in all: many small files
    /// share one; a big file is finished in transactions of its own.
    async fn purge_files(&self, files: &[DeletedFile]) -> Result<Purged> {
        let keys = &self.keys;
        let mut done = Purged::default();
        let mut rest = files;
        while !rest.is_empty() {
            let (purged, freed, next) = self
                .kv
                .txn(|tx| async move {
                    let (mut purged, mut freed) = (Vec::new(), Vec::new());
                    let mut budget = PURGE_BATCH;
                    let mut next = 0;
                    for f in rest {
                        let Some(step) = purge_batch(&tx, keys, f.ino, budget).await? else {
                            next += 1;
                            continue;
                        };
                        freed.extend(step.freed);
                        budget = budget.saturating_sub(step.chunks.max(1));
                        if !step.done {
                            break;
                        }
                        purged.push(f.ino);
                        next += 1;
                        if budget == 0 {
                            break;
                        }
                    }
                    Ok((purged, freed, next))
                })
                .await?;
            done.files.extend(purged);
            done.freed.extend(freed);
            rest = rest.get(next..).unwrap_or_default();
        }
        Ok(done)
    }
}

/// What one [`purge_batch`] did.
struct Step {
    /// The slices nobody references any more.
    freed: Vec<Slice>,
    /// Whether the file is now gone.
    done: bool,
    /// The chunks it dropped.
    chunks: usize,
}

/// One batch of a purge of at most `budget` chunks (at least one); `None` when the file is
/// not queued.
async fn purge_batch<T: KvTxn>(
    tx: &T,
    keys: &Keys,
    ino: Ino,
    budget: usize,
) -> Result<Option<Step>> {
    let budget = budget.max(1);
    let dprefix = keys.delfiles_of(ino);
    let marker = tx.scan(&dprefix, &Keys::end_of(&dprefix), 1, false).await?;
    let Some((dkey, _)) = marker.into_iter().next() else {
        return Ok(None);
    };
    if get_attr(tx, keys, ino).await?.is_some() {
        return Err(MetaError::Corrupt(format!(
            "inode {ino} is queued for deletion but still exists"
        )));
    }
    let cprefix = keys.chunks(ino);
    let chunks = tx
        .scan(&cprefix, &Keys::end_of(&cprefix), budget, false)
        .await?;
    let mut records = Vec::new();
    for (k, v) in &chunks {
        let indx = crate::keys::be_u32(keys.strip(k), 10).unwrap_or(u32::MAX);
        records.extend(Slice::decode_chunk(ino, indx, v)?);
        tx.clear(k);
    }
    let freed = drop_refs(tx, keys, &Slice::references(&records)).await?;
    let done = chunks.len() < budget;
    if done {
        tx.clear(&dkey);
    }
    Ok(Some(Step {
        freed,
        done,
        chunks: chunks.len(),
    }))
}
