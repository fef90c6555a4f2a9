//! The deletion queue: files waiting to be purged, and the purge itself.

use async_trait::async_trait;
use meta_api::backend::Purge;
use meta_api::{DeletedFile, Ino, MetaError, Result, Slice};

use super::{drop_refs, get_attr, TkvMeta};
use crate::keys::{be_u64, le_u64, Keys};
use crate::kv::{KvStore, KvTxn};

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

    /// Purges a deleted file in batches of `PURGE_BATCH` chunks. Each batch drops its
    /// chunks and their slice references in one transaction; the last also drops the
    /// deleted-file record, so an interrupted purge is simply finished by the next one.
    async fn purge_file(&self, ino: Ino) -> Result<Vec<Slice>> {
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
    let mut records = Vec::new();
    for (k, v) in &chunks {
        let indx = crate::keys::be_u32(keys.strip(k), 10).unwrap_or(u32::MAX);
        records.extend(Slice::decode_chunk(ino, indx, v)?);
        tx.clear(k);
    }
    let freed = drop_refs(tx, keys, &Slice::references(&records)).await?;
    let done = chunks.len() < PURGE_BATCH;
    if done {
        tx.clear(&dkey);
    }
    Ok((freed, done))
}
