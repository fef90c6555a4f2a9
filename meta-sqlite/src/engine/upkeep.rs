//! Upkeep (see [`meta_api::upkeep`]): the inventory for gc, pending slices, job election
//! and recomputed statistics.
//!
//! Pending slices are `jfs_chunk_ref` rows at `refs <= 0` (JuiceFS's convention, indexed by
//! `IDX_jfs_chunk_ref_refs`); jobs are elected on `jfs_counter` rows; dir stats are
//! `jfs_dir_stats` rows.

use crate::sql::SqliteConnection;
use async_trait::async_trait;
use meta_api::backend::Upkeep;
use meta_api::upkeep::{DirStat, Recount, SliceListing};
use meta_api::{compact, Ino, MetaError, Result, Slice, Usage, TRASH_INO};

use crate::engine::node::{drop_refs, must_node, usage};
use crate::txn::db_err;
use crate::SqliteMeta;

/// A directory's statistics from its direct entries (bound: the directory, three times):
/// regular files count their length and `align4k(length)`, everything else 4 KiB.
const DIR_STAT: &str = "SELECT \
     (SELECT COALESCE(SUM(n.length), 0) FROM jfs_edge e JOIN jfs_node n \
     ON n.inode = e.inode WHERE e.parent = ?1 AND n.type = 1), \
     (SELECT COALESCE(SUM(CASE WHEN n.type = 1 AND n.length > 0 \
     THEN (n.length + 4095) / 4096 * 4096 ELSE 4096 END), 0) FROM jfs_edge e \
     LEFT JOIN jfs_node n ON n.inode = e.inode WHERE e.parent = ?1), \
     (SELECT COUNT(*) FROM jfs_edge WHERE parent = ?1)";

/// The volume's usage from its nodes: `align4k(length)` and one inode for every node but
/// the root and the trash. Deleted files waiting for their purge have no node row any more
/// (their usage was given back when they were queued); unlinked files still open keep
/// theirs and still count, as the incremental accounting does.
const USAGE: &str = "SELECT COALESCE(SUM(CASE WHEN length > 0 \
     THEN (length + 4095) / 4096 * 4096 ELSE 4096 END), 0), COUNT(*) \
     FROM jfs_node WHERE inode NOT IN (1, ?)";

fn get(row: &crate::sql::Row, i: usize) -> Result<i64> {
    row.try_get::<i64, _>(i).map_err(db_err)
}

/// A slice id or size read from a column, `Corrupt` when out of range.
fn slice_key(id: i64, size: i64) -> Result<(u64, u32)> {
    match (u64::try_from(id), u32::try_from(size)) {
        (Ok(id), Ok(size)) if id != 0 => Ok((id, size)),
        _ => Err(MetaError::Corrupt(format!(
            "jfs_chunk_ref row ({id}, {size}) is not a slice"
        ))),
    }
}

/// Fails unless `ino` is a directory.
async fn must_dir(conn: &mut SqliteConnection, ino: Ino) -> Result<()> {
    if must_node(conn, ino).await?.is_dir() {
        Ok(())
    } else {
        Err(MetaError::NotDir)
    }
}

#[async_trait]
impl Upkeep for SqliteMeta {
    async fn pending_slices(&self, limit: usize) -> Result<Vec<Slice>> {
        self.fmt().await?;
        let rows = crate::sql::query(
            "SELECT chunkid, size FROM jfs_chunk_ref WHERE refs <= 0 ORDER BY chunkid LIMIT ?",
        )
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.db.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| slice_key(get(r, 0)?, get(r, 1)?).map(|(id, size)| Slice::whole(id, size)))
            .collect()
    }

    async fn forget_slice(&self, id: u64, size: u32) -> Result<bool> {
        Ok(self.forget_slices(&[(id, size)]).await? > 0)
    }

    /// All in one transaction.
    async fn forget_slices(&self, slices: &[(u64, u32)]) -> Result<usize> {
        self.fmt().await?;
        self.db
            .txn(|c, _| {
                Box::pin(async move {
                    let mut n = 0;
                    for &(id, size) in slices {
                        let done = crate::sql::query(
                            "DELETE FROM jfs_chunk_ref WHERE chunkid = ? AND size = ? AND refs <= 0",
                        )
                        .bind(id as i64)
                        .bind(i64::from(size))
                        .execute(&mut *c)
                        .await
                        .map_err(db_err)?;
                        n += usize::from(done.rows_affected() > 0);
                    }
                    Ok(n)
                })
            })
            .await
    }

    async fn list_slices(&self) -> Result<SliceListing> {
        self.fmt().await?;
        // One read transaction (a WAL snapshot), rows streamed: memory follows the records.
        let mut tx = self.db.pool.begin().await.map_err(db_err)?;
        let mut out = SliceListing::default();
        crate::sql::query("SELECT inode, indx, slices FROM jfs_chunk")
            .for_each(&mut *tx, |r| {
                let ino = get(&r, 0)? as u64;
                let indx = u32::try_from(get(&r, 1)?).map_err(|_| {
                    MetaError::Corrupt(format!("inode {ino} has a chunk index out of range"))
                })?;
                let buf: Vec<u8> = r.try_get(2).map_err(db_err)?;
                let records = Slice::decode_chunk(ino, indx, &buf)?;
                out.records.extend(
                    records
                        .into_iter()
                        .filter(|s| s.id != 0)
                        .map(|s| (ino, indx, s)),
                );
                Ok::<(), MetaError>(())
            })
            .await
            .map_err(db_err)??;
        crate::sql::query("SELECT chunkid, slices FROM jfs_delslices")
            .for_each(&mut *tx, |r| {
                let id = get(&r, 0)?;
                let blob: Vec<u8> = r.try_get(1).map_err(db_err)?;
                let what = format!("of jfs_delslices row {id}");
                out.delayed.extend(compact::decode_delayed(&what, &blob)?);
                Ok::<(), MetaError>(())
            })
            .await
            .map_err(db_err)??;
        crate::sql::query(
            "SELECT chunkid, size FROM jfs_chunk_ref WHERE refs <= 0 ORDER BY chunkid",
        )
        .for_each(&mut *tx, |r| {
            out.pending.push(slice_key(get(&r, 0)?, get(&r, 1)?)?);
            Ok::<(), MetaError>(())
        })
        .await
        .map_err(db_err)??;
        tx.rollback().await.map_err(db_err)?;
        Ok(out)
    }

    async fn free_delayed_slices(&self, before: i64, limit: usize) -> Result<Vec<Slice>> {
        self.fmt().await?;
        let rows = crate::sql::query(
            "SELECT chunkid FROM jfs_delslices WHERE deleted < ? ORDER BY deleted, chunkid LIMIT ?",
        )
        .bind(before)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.db.pool)
        .await
        .map_err(db_err)?;
        let mut freed = Vec::new();
        for r in rows {
            let id = get(&r, 0)?;
            let got = self
                .db
                .txn(|c, _| {
                    Box::pin(async move {
                        let row = crate::sql::query(
                            "DELETE FROM jfs_delslices WHERE chunkid = ? RETURNING slices",
                        )
                        .bind(id)
                        .fetch_optional(&mut *c)
                        .await
                        .map_err(db_err)?;
                        // Freed meanwhile by another client.
                        let Some(row) = row else {
                            return Ok(Vec::new());
                        };
                        let blob: Vec<u8> = row.try_get(0).map_err(db_err)?;
                        let what = format!("of jfs_delslices row {id}");
                        let uses: Vec<(u64, u32, i64)> = compact::decode_delayed(&what, &blob)?
                            .into_iter()
                            .map(|(id, size)| (id, size, 1))
                            .collect();
                        drop_refs(c, &uses).await
                    })
                })
                .await?;
            freed.extend(got);
        }
        Ok(freed)
    }

    async fn claim_job(&self, counter: &'static str, now: u64, every: u64) -> Result<bool> {
        self.fmt().await?;
        self.db
            .txn(|c, _| {
                Box::pin(async move {
                    let row = crate::sql::query("SELECT value FROM jfs_counter WHERE name = ?")
                        .bind(counter)
                        .fetch_optional(&mut *c)
                        .await
                        .map_err(db_err)?;
                    let old = row.map(|r| get(&r, 0)).transpose()?.unwrap_or(0);
                    if i128::from(old) + i128::from(every) >= i128::from(now) {
                        return Ok(false);
                    }
                    crate::sql::query(
                        "INSERT INTO jfs_counter (name, value) VALUES (?1, ?2) \
                         ON CONFLICT (name) DO UPDATE SET value = ?2",
                    )
                    .bind(counter)
                    .bind(i64::try_from(now).unwrap_or(i64::MAX))
                    .execute(&mut *c)
                    .await
                    .map_err(db_err)?;
                    Ok(true)
                })
            })
            .await
    }

    async fn dir_stat(&self, ino: Ino) -> Result<Option<DirStat>> {
        let fmt = self.fmt().await?;
        let mut conn = self.db.pool.begin().await.map_err(db_err)?;
        must_dir(&mut conn, ino).await?;
        if !fmt.dir_stats {
            return Ok(None);
        }
        let row = crate::sql::query(
            "SELECT data_length, used_space, used_inodes FROM jfs_dir_stats WHERE inode = ?",
        )
        .bind(ino as i64)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
        row.map(|r| {
            Ok(DirStat {
                length: get(&r, 0)?,
                space: get(&r, 1)?,
                inodes: get(&r, 2)?,
            })
        })
        .transpose()
    }

    async fn sync_dir_stat(&self, ino: Ino) -> Result<DirStat> {
        let fmt = self.fmt().await?;
        let keep = fmt.dir_stats;
        self.db
            .txn(|c, _| {
                Box::pin(async move {
                    must_dir(c, ino).await?;
                    let r = crate::sql::query(DIR_STAT)
                        .bind(ino as i64)
                        .fetch_one(&mut *c)
                        .await
                        .map_err(db_err)?;
                    let stat = DirStat {
                        length: get(&r, 0)?,
                        space: get(&r, 1)?,
                        inodes: get(&r, 2)?,
                    };
                    if keep {
                        crate::sql::query(
                            "INSERT INTO jfs_dir_stats (inode, data_length, used_space, \
                             used_inodes) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (inode) DO UPDATE \
                             SET data_length = ?2, used_space = ?3, used_inodes = ?4",
                        )
                        .bind(ino as i64)
                        .bind(stat.length)
                        .bind(stat.space)
                        .bind(stat.inodes)
                        .execute(&mut *c)
                        .await
                        .map_err(db_err)?;
                    }
                    Ok(stat)
                })
            })
            .await
    }

    async fn recount_usage(&self) -> Result<Recount> {
        self.fmt().await?;
        self.db
            .txn(|c, _| {
                Box::pin(async move {
                    let (space, inodes) = usage(c).await?;
                    let before = Usage { space, inodes };
                    let r = crate::sql::query(USAGE)
                        .bind(TRASH_INO as i64)
                        .fetch_one(&mut *c)
                        .await
                        .map_err(db_err)?;
                    let after = Usage {
                        space: get(&r, 0)?,
                        inodes: get(&r, 1)?,
                    };
                    for (name, value) in [("usedSpace", after.space), ("totalInodes", after.inodes)]
                    {
                        crate::sql::query(
                            "INSERT INTO jfs_counter (name, value) VALUES (?1, ?2) \
                             ON CONFLICT (name) DO UPDATE SET value = ?2",
                        )
                        .bind(name)
                        .bind(value)
                        .execute(&mut *c)
                        .await
                        .map_err(db_err)?;
                    }
                    Ok(Recount { before, after })
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use meta_api::{Context, FileType, Format, MetaEngine, ROOT_INO};

    use super::*;

    /// A `usedSpace`/`totalInodes` pair broken behind the engine's back is put right.
    #[tokio::test]
    async fn recount_usage_repairs_corrupted_counters() {
        let m = SqliteMeta::memory("upkeep-recount").await.unwrap();
        MetaEngine::init(&m, &Format::new("vol", "uuid-1", "file", "/tmp/x/"), false)
            .await
            .unwrap();
        let f = m
            .mknod(
                &Context::root(),
                ROOT_INO,
                b"f",
                FileType::Regular,
                0o644,
                0,
            )
            .await
            .unwrap();
        m.truncate(&Context::root(), f.ino, 5000).await.unwrap();
        m.mkdir(&Context::root(), ROOT_INO, b"d", 0o755)
            .await
            .unwrap();
        let good = meta_api::backend::Volume::usage(&m).await.unwrap();
        assert_eq!(
            good,
            Usage {
                space: 8192 + 4096,
                inodes: 2
            }
        );
        {
            let mut conn = m.db.pool.acquire().await.unwrap();
            crate::sql::query(
                "UPDATE jfs_counter SET value = -77 WHERE name IN ('usedSpace', 'totalInodes')",
            )
            .execute(&mut *conn)
            .await
            .unwrap();
        }
        let r = MetaEngine::recount_usage(&m).await.unwrap();
        assert_eq!(
            r.before,
            Usage {
                space: -77,
                inodes: -77
            }
        );
        assert_eq!(r.after, good);
        assert_eq!(meta_api::backend::Volume::usage(&m).await.unwrap(), good);
    }
}
