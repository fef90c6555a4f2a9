//! The deletion queue: files waiting to be purged, and the purge itself.

use async_trait::async_trait;
use meta_api::backend::{not_queued, Purge};

use meta_api::{DeletedFile, Ino, Purged, Result, Slice};

use crate::engine::node::{delete_node, drop_refs, get_node};
use crate::sql::SqliteConnection;
use crate::txn::db_err;
use crate::SqliteMeta;

#[async_trait]
impl Purge for SqliteMeta {
    async fn deleted_files(&self, limit: usize) -> Result<Vec<DeletedFile>> {
        self.fmt().await?;
        let rows =
            crate::sql::query("SELECT inode, length FROM jfs_delfile ORDER BY inode LIMIT ?")
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&self.db.pool)
                .await
                .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                Ok(DeletedFile {
                    ino: r.try_get::<i64, _>(0).map_err(db_err)? as u64,
                    length: r.try_get::<i64, _>(1).map_err(db_err)? as u64,
                })
            })
            .collect()
    }

    async fn purge_file(&self, ino: Ino) -> Result<Vec<Slice>> {
        let done = self.purge_files(&[DeletedFile { ino, length: 0 }]).await?;
        if done.files.is_empty() {
            return Err(not_queued(self.read_node(ino).await?.is_some()));
        }
        Ok(done.freed)
    }

    /// Every file in one transaction (SQLite runs the statements in place: a file without
    /// chunks costs a few statements, the commit is shared).
    async fn purge_files(&self, files: &[DeletedFile]) -> Result<Purged> {
        self.fmt().await?;
        self.db
            .txn(|c, _| {
                Box::pin(async move {
                    let mut done = Purged::default();
                    for f in files {
                        if let Some(freed) = purge_one(c, f.ino).await? {
                            done.files.push(f.ino);
                            done.freed.extend(freed);
                        }
                    }
                    Ok(done)
                })
            })
            .await
    }
}

/// Purges deleted file `ino` inside the caller's transaction: drops its chunks (one
/// reference from each of their slices), its queue entry and its node; returns the slices
/// left with no reference. `None` when it is not queued; a queue entry of a live inode is
/// dropped (a live inode is never purged) and is `None` too.
async fn purge_one(c: &mut SqliteConnection, ino: Ino) -> Result<Option<Vec<Slice>>> {
    let queued = crate::sql::query("SELECT 1 FROM jfs_delfile WHERE inode = ?")
        .bind(ino as i64)
        .fetch_optional(&mut *c)
        .await
        .map_err(db_err)?;
    if queued.is_none() {
        return Ok(None);
    }
    if get_node(c, ino).await?.is_some_and(|a| a.nlink > 0) {
        crate::sql::query("DELETE FROM jfs_delfile WHERE inode = ?")
            .bind(ino as i64)
            .execute(&mut *c)
            .await
            .map_err(db_err)?;
        return Ok(None);
    }
    let rows = crate::sql::query("SELECT indx, slices FROM jfs_chunk WHERE inode = ?")
        .bind(ino as i64)
        .fetch_all(&mut *c)
        .await
        .map_err(db_err)?;
    let mut records = Vec::new();
    for r in rows {
        let indx: i64 = r.try_get(0).map_err(db_err)?;
        let buf: Vec<u8> = r.try_get(1).map_err(db_err)?;
        let indx = u32::try_from(indx).unwrap_or(u32::MAX);
        records.extend(Slice::decode_chunk(ino, indx, &buf)?);
    }
    let free = drop_refs(c, &Slice::references(&records)).await?;
    crate::sql::query(
        "DELETE FROM jfs_chunk WHERE inode = ?1; DELETE FROM jfs_delfile WHERE inode = ?1",
    )
    .bind(ino as i64)
    .execute(&mut *c)
    .await
    .map_err(db_err)?;
    delete_node(c, ino).await?;
    Ok(Some(free))
}
