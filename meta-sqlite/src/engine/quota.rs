//! Quotas in SQLite ([`meta_api::quota`] has the rules): JuiceFS's `jfs_dir_quota` and
//! `jfs_user_group_quota` rows, read and written in the caller's transaction.

use crate::sql::SqliteConnection;
use async_trait::async_trait;
use meta_api::quota::{store_limits, Charge, Quota, QuotaKind, QuotaTxn};
use meta_api::{Ino, Result};

use crate::txn::db_err;

/// The quota records seen through one transaction's connection.
pub(crate) struct SqlQuotas<'a>(pub(crate) &'a mut SqliteConnection);

fn quota_of(r: &crate::sql::Row) -> Result<Quota> {
    let get = |i: usize| r.try_get::<i64, _>(i).map_err(db_err);
    Ok(Quota {
        max_space: get(0)?,
        max_inodes: get(1)?,
        used_space: get(2)?,
        used_inodes: get(3)?,
    })
}

#[async_trait]
impl QuotaTxn for SqlQuotas<'_> {
    async fn any_dir_quota(&mut self) -> Result<bool> {
        let row = crate::sql::query("SELECT 1 FROM jfs_dir_quota LIMIT 1")
            .fetch_optional(&mut *self.0)
            .await
            .map_err(db_err)?;
        Ok(row.is_some())
    }

    async fn dir_parent(&mut self, ino: Ino) -> Result<Option<Ino>> {
        let row = crate::sql::query("SELECT parent FROM jfs_node WHERE inode = ?")
            .bind(ino as i64)
            .fetch_optional(&mut *self.0)
            .await
            .map_err(db_err)?;
        row.map(|r| r.try_get::<i64, _>(0).map(|p| p as u64).map_err(db_err))
            .transpose()
    }

    async fn quota(&mut self, kind: QuotaKind, key: u64) -> Result<Option<Quota>> {
        let q = match kind {
            QuotaKind::Dir => crate::sql::query(
                "SELECT max_space, max_inodes, used_space, used_inodes FROM jfs_dir_quota \
                 WHERE inode = ?",
            )
            .bind(key as i64),
            _ => crate::sql::query(
                "SELECT max_space, max_inodes, used_space, used_inodes \
                 FROM jfs_user_group_quota WHERE qtype = ? AND qkey = ?",
            )
            .bind(kind as i64)
            .bind(key as i64),
        };
        let row = q.fetch_optional(&mut *self.0).await.map_err(db_err)?;
        row.as_ref().map(quota_of).transpose()
    }

    async fn is_empty_dir(&mut self, ino: Ino) -> Result<bool> {
        let row = crate::sql::query("SELECT 1 FROM jfs_edge WHERE parent = ? LIMIT 1")
            .bind(ino as i64)
            .fetch_optional(&mut *self.0)
            .await
            .map_err(db_err)?;
        Ok(row.is_none())
    }

    async fn put_quota(&mut self, kind: QuotaKind, key: u64, q: &Quota) -> Result<()> {
        let query = match kind {
            QuotaKind::Dir => crate::sql::query(
                "INSERT INTO jfs_dir_quota (inode, max_space, max_inodes, used_space, \
                 used_inodes) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (inode) DO UPDATE SET \
                 max_space = ?2, max_inodes = ?3, used_space = ?4, used_inodes = ?5",
            )
            .bind(key as i64),
            _ => crate::sql::query(
                "INSERT INTO jfs_user_group_quota (qtype, qkey, max_space, max_inodes, \
                 used_space, used_inodes) VALUES (?6, ?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (qtype, qkey) DO UPDATE SET max_space = ?2, max_inodes = ?3, \
                 used_space = ?4, used_inodes = ?5",
            )
            .bind(key as i64),
        };
        let query = query
            .bind(q.max_space)
            .bind(q.max_inodes)
            .bind(q.used_space)
            .bind(q.used_inodes);
        let query = match kind {
            QuotaKind::Dir => query,
            _ => query.bind(kind as i64),
        };
        query.execute(&mut *self.0).await.map_err(db_err)?;
        Ok(())
    }
}

/// The directories naming file `ino` whose parent field is `parent` (its parent, or for a
/// hard-linked file every directory with an entry for it, once per entry: a change of the
/// file counts once for each of its names, as its link counted it).
pub(crate) async fn file_dirs(c: &mut SqliteConnection, ino: Ino, parent: Ino) -> Result<Vec<Ino>> {
    if parent != 0 {
        return Ok(vec![parent]);
    }
    let rows = crate::sql::query("SELECT parent FROM jfs_edge WHERE inode = ?")
        .bind(ino as i64)
        .fetch_all(&mut *c)
        .await
        .map_err(db_err)?;
    rows.iter()
        .map(|r| r.try_get::<i64, _>(0).map(|p| p as u64).map_err(db_err))
        .collect()
}

/// Checks and charges `ch` in the caller's transaction, in JuiceFS's order: the owner's
/// quotas, the volume's capacity and inode limit when `volume` (the change takes space or
/// inodes of the volume), then the directories' quotas.
pub(crate) async fn charge(
    c: &mut SqliteConnection,
    fmt: &meta_api::Format,
    ch: Charge,
    volume: bool,
) -> Result<()> {
    let charged = ch.read(&mut SqlQuotas(&mut *c), fmt).await?;
    if volume {
        crate::engine::node::check_capacity(c, fmt, ch.space, ch.inodes).await?;
    }
    charged.check_dirs()?;
    charged.apply(&mut SqlQuotas(c)).await
}

#[async_trait]
impl meta_api::backend::Quotas for crate::SqliteMeta {
    async fn set_quota(
        &self,
        kind: QuotaKind,
        key: u64,
        (max_space, max_inodes): (i64, i64),
        used: Option<(i64, i64)>,
    ) -> Result<()> {
        self.fmt().await?;
        self.db
            .txn(|c, _| {
                Box::pin(async move {
                    let limits = (max_space, max_inodes);
                    store_limits(&mut SqlQuotas(c), kind, key, limits, used).await
                })
            })
            .await
    }

    async fn get_quota(&self, kind: QuotaKind, key: u64) -> Result<Option<Quota>> {
        self.fmt().await?;
        let mut conn = self.db.pool.acquire().await.map_err(db_err)?;
        SqlQuotas(&mut conn).quota(kind, key).await
    }

    async fn list_quotas(&self, kind: QuotaKind) -> Result<Vec<(u64, Quota)>> {
        self.fmt().await?;
        let q = match kind {
            QuotaKind::Dir => crate::sql::query(
                "SELECT max_space, max_inodes, used_space, used_inodes, inode FROM \
                 jfs_dir_quota ORDER BY inode",
            ),
            _ => crate::sql::query(
                "SELECT max_space, max_inodes, used_space, used_inodes, qkey FROM \
                 jfs_user_group_quota WHERE qtype = ? ORDER BY qkey",
            )
            .bind(kind as i64),
        };
        let rows = q.fetch_all(&self.db.pool).await.map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let key = r.try_get::<i64, _>(4).map_err(db_err)? as u64;
                Ok((key, quota_of(r)?))
            })
            .collect()
    }

    async fn delete_quota(&self, kind: QuotaKind, key: u64) -> Result<bool> {
        self.fmt().await?;
        self.db
            .txn(|c, _| {
                Box::pin(async move {
                    let done = match kind {
                        QuotaKind::Dir => {
                            crate::sql::query("DELETE FROM jfs_dir_quota WHERE inode = ?")
                                .bind(key as i64)
                        }
                        // The usage stays, with no limit (JuiceFS).
                        _ => crate::sql::query(
                            "UPDATE jfs_user_group_quota SET max_space = -1, max_inodes = -1 \
                             WHERE qtype = ? AND qkey = ?",
                        )
                        .bind(kind as i64)
                        .bind(key as i64),
                    }
                    .execute(&mut *c)
                    .await
                    .map_err(db_err)?;
                    Ok(done.rows_affected() > 0)
                })
            })
            .await
    }

    async fn quota_over(&self, ino: Ino) -> Result<Option<Quota>> {
        self.fmt().await?;
        let mut conn = self.db.pool.acquire().await.map_err(db_err)?;
        let mut qt = SqlQuotas(&mut conn);
        Ok(meta_api::quota::dir_quotas(&mut qt, ino)
            .await?
            .into_iter()
            .next()
            .map(|(_, q)| q))
    }
}
