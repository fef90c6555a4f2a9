//! Bulk moves of a whole volume (see [`meta_api::dump`]): the counters and the deletion
//! queue a dump records, and a load into an empty database, JuiceFS's `LoadMeta` rows.
//!
//! A load writes each batch in one transaction with plain `INSERT`s. Slice references are
//! counted in `jfs_chunk_ref` itself as the occurrences arrive (one row per slice, `refs` =
//! its occurrences, which is JuiceFS's layout as it is), so nothing is left to convert at
//! the end. The setting goes last, in a transaction of its own: until it exists the
//! database does not open as a volume.

use std::sync::Arc;

use async_trait::async_trait;
use meta_api::backend::Bulk;
use meta_api::dump::{Batch, Counters, Link, LoadEnd, QueuedDeletion};
use meta_api::quota::QuotaTxn;
use meta_api::{Ino, MetaError, Result, Slice};

use crate::engine::namespace::insert_edge;
use crate::engine::node::insert_node;
use crate::engine::quota::SqlQuotas;
use crate::schema;
use crate::sql::SqliteConnection;
use crate::txn::{db_err, exists_or_db_err};
use crate::SqliteMeta;

/// The dump's counters by their `jfs_counter` names. The SQL engine stores the next id to
/// hand out, as the dump does: no conversion either way.
fn named(c: &mut Counters) -> [(&'static str, &mut i64); 6] {
    [
        ("usedSpace", &mut c.used_space),
        ("totalInodes", &mut c.used_inodes),
        ("nextInode", &mut c.next_inode),
        ("nextChunk", &mut c.next_chunk),
        ("nextSession", &mut c.next_session),
        ("nextTrash", &mut c.next_trash),
    ]
}

/// Makes the tables (a load may start on a database with none) and refuses a database
/// that already holds a volume: a load never writes into one (but into one a checkpoint
/// restore wiped, whose setting has the restore's marker).
async fn prepare(c: &mut SqliteConnection) -> Result<()> {
    schema::create_tables(c).await?;
    let stored = crate::sql::query("SELECT value FROM jfs_setting WHERE name = 'format'")
        .fetch_optional(&mut *c)
        .await
        .map_err(db_err)?;
    let json: Option<String> = stored.map(|r| r.try_get(0)).transpose().map_err(db_err)?;
    meta_api::checkpoint::load_may_write(json.as_deref())
}

/// Writes every record of `b`, in the caller's transaction.
async fn write_batch(m: &SqliteMeta, c: &mut SqliteConnection, b: &Batch) -> Result<()> {
    for n in &b.nodes {
        let mut attr = n.attr.clone();
        if let Some(rule) = &n.access_acl {
            attr.access_acl = m.save_rule(c, rule).await?;
        }
        if let Some(rule) = &n.default_acl {
            attr.default_acl = m.save_rule(c, rule).await?;
        }
        insert_node(c, n.ino, &attr).await?;
    }
    for e in &b.edges {
        insert_edge(c, e.parent, &e.name, e.ino, e.typ).await?;
    }
    for (ino, indx, slices) in &b.chunks {
        crate::sql::query("INSERT INTO jfs_chunk (inode, indx, slices) VALUES (?, ?, ?)")
            .bind(*ino as i64)
            .bind(i64::from(*indx))
            .bind(meta_api::Slice::encode_all(slices))
            .execute(&mut *c)
            .await
            .map_err(db_err)?;
    }
    for (ino, target) in &b.symlinks {
        crate::sql::query("INSERT INTO jfs_symlink (inode, target) VALUES (?, ?)")
            .bind(*ino as i64)
            .bind(&target[..])
            .execute(&mut *c)
            .await
            .map_err(db_err)?;
    }
    for (ino, name, value) in &b.xattrs {
        crate::sql::query(
            "INSERT INTO jfs_xattr (inode, name, value) VALUES (?, CAST(? AS TEXT), ?)",
        )
        .bind(*ino as i64)
        .bind(&name[..])
        .bind(&value[..])
        .execute(&mut *c)
        .await
        .map_err(db_err)?;
    }
    for (ino, st) in &b.dir_stats {
        crate::sql::query(
            "INSERT INTO jfs_dir_stats (inode, data_length, used_space, used_inodes) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(*ino as i64)
        .bind(st.length)
        .bind(st.space)
        .bind(st.inodes)
        .execute(&mut *c)
        .await
        .map_err(db_err)?;
    }
    for &(id, size) in &b.slice_refs {
        // The first occurrence makes the row with one reference, each further one adds one;
        // an occurrence with another size changes nothing and is refused.
        let done = crate::sql::query(
            "INSERT INTO jfs_chunk_ref (chunkid, size, refs) VALUES (?1, ?2, 1) \
             ON CONFLICT (chunkid) DO UPDATE SET refs = refs + 1 WHERE size = ?2",
        )
        .bind(id as i64)
        .bind(i64::from(size))
        .execute(&mut *c)
        .await
        .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(MetaError::InvalidArgument(
                "a slice id occurs with two different sizes",
            ));
        }
    }
    Ok(())
}

/// Everything of a load's end but the setting, in the caller's transaction.
async fn write_end(c: &mut SqliteConnection, end: &LoadEnd) -> Result<()> {
    for link in &end.links {
        let done = crate::sql::query("UPDATE jfs_node SET nlink = ?, parent = 0 WHERE inode = ?")
            .bind(i64::from(link.nlink()))
            .bind(link.ino as i64)
            .execute(&mut *c)
            .await
            .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(Link::WITHOUT_NODE);
        }
    }
    let mut counters = end.counters;
    for (name, value) in named(&mut counters) {
        crate::sql::query(
            "INSERT INTO jfs_counter (name, value) VALUES (?1, ?2) \
             ON CONFLICT (name) DO UPDATE SET value = ?2",
        )
        .bind(name)
        .bind(*value)
        .execute(&mut *c)
        .await
        .map_err(db_err)?;
    }
    for &(kind, key, q) in &end.quotas {
        SqlQuotas(&mut *c).put_quota(kind, key, &q).await?;
    }
    Ok(())
}

#[async_trait]
impl Bulk for SqliteMeta {
    async fn counters(&self) -> Result<Counters> {
        self.fmt().await?;
        let rows = crate::sql::query("SELECT name, value FROM jfs_counter")
            .fetch_all(&self.db.pool)
            .await
            .map_err(db_err)?;
        let mut out = Counters::default();
        for r in rows {
            let name: String = r.try_get(0).map_err(db_err)?;
            if let Some((_, v)) = named(&mut out).into_iter().find(|(n, _)| *n == name) {
                *v = r.try_get(1).map_err(db_err)?;
            }
        }
        Ok(out)
    }

    async fn queued_deletions(&self, after: Ino, limit: usize) -> Result<Vec<QueuedDeletion>> {
        self.fmt().await?;
        let rows = crate::sql::query(
            "SELECT inode, length, expire FROM jfs_delfile WHERE inode > ? ORDER BY inode \
             LIMIT ?",
        )
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.db.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let get = |i: usize| r.try_get::<i64, _>(i).map_err(db_err);
                Ok(QueuedDeletion {
                    ino: get(0)? as u64,
                    length: get(1)? as u64,
                    queued: get(2)?,
                })
            })
            .collect()
    }

    /// Looks for a row in every `jfs_` table there is, in one snapshot (a database that
    /// was only opened has no tables; one that `init` made has empty tables and rows).
    async fn is_empty(&self) -> Result<bool> {
        let mut tx = self.db.pool.begin().await.map_err(db_err)?;
        let tables = crate::sql::query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'jfs\\_%' \
             ESCAPE '\\'",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        for t in tables {
            let name: String = t.try_get(0).map_err(db_err)?;
            let sql = format!("SELECT 1 FROM `{}` LIMIT 1", name.replace('`', "``"));
            let row = crate::sql::query(&sql)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
            if row.is_some() {
                return Ok(false);
            }
        }
        tx.rollback().await.map_err(db_err)?;
        Ok(true)
    }

    /// One transaction.
    async fn load_batch(&self, batch: &Batch) -> Result<()> {
        self.db
            .txn(|c, _| {
                Box::pin(async move {
                    prepare(c).await?;
                    write_batch(self, c, batch).await
                })
            })
            .await
    }

    /// The links, counters and quotas in one transaction, then the setting in its own.
    async fn finish_load(&self, end: &LoadEnd) -> Result<()> {
        end.format.check_supported()?;
        self.db
            .txn(|c, _| {
                Box::pin(async move {
                    prepare(c).await?;
                    write_end(c, end).await
                })
            })
            .await?;
        let json = end.format.to_json();
        let restoring = end.restoring;
        self.db
            .txn(|c, _| {
                let json = &json;
                Box::pin(async move {
                    // A restore overwrites the setting its marker is in; a load into an
                    // empty engine never finds one (two loads racing: one fails here).
                    let sql = if restoring {
                        "INSERT INTO jfs_setting (name, value) VALUES ('format', ?) \
                         ON CONFLICT (name) DO UPDATE SET value = excluded.value"
                    } else {
                        "INSERT INTO jfs_setting (name, value) VALUES ('format', ?)"
                    };
                    crate::sql::query(sql)
                        .bind(json)
                        .execute(&mut *c)
                        .await
                        .map_err(exists_or_db_err)?;
                    Ok(())
                })
            })
            .await?;
        *self.format.write().unwrap_or_else(|p| p.into_inner()) =
            Some(Arc::new(end.format.clone()));
        Ok(())
    }

    /// Three statements in one read transaction for the whole page (xattrs, chunks,
    /// symlink targets; the inodes go in as a JSON array), so that every node of the page
    /// is read at one instant; nodes gone by then get `None`.
    async fn node_contents(
        &self,
        nodes: &[(Ino, meta_api::Attr)],
    ) -> Result<Vec<Option<meta_api::dump::NodeContents>>> {
        use meta_api::dump::NodeContents;
        use meta_api::{FileType, CHUNK_SIZE};
        self.fmt().await?;
        let inos: Vec<Ino> = nodes.iter().map(|(i, _)| *i).collect();
        let ids = serde_json::to_string(&inos).map_err(|e| MetaError::backend(false, e))?;
        let mut tx = self.db.pool.begin().await.map_err(db_err)?;
        let present = crate::sql::query(
            "SELECT inode FROM jfs_node WHERE inode IN (SELECT value FROM json_each(?1))",
        )
        .bind(ids.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        let mut out: std::collections::HashMap<Ino, NodeContents> = Default::default();
        for r in present {
            out.insert(
                r.try_get::<i64, _>(0).map_err(db_err)? as Ino,
                NodeContents::default(),
            );
        }
        let xattrs = crate::sql::query(
            "SELECT inode, name, value FROM jfs_xattr \
             WHERE inode IN (SELECT value FROM json_each(?1)) ORDER BY inode, name",
        )
        .bind(ids.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        for r in xattrs {
            let ino = r.try_get::<i64, _>(0).map_err(db_err)? as Ino;
            let name: Vec<u8> = r.try_get(1).map_err(db_err)?;
            let value: Vec<u8> = r.try_get(2).map_err(db_err)?;
            // The ACLs are the attributes' (by id), never xattr rows JuiceFS would write.
            if meta_api::acl::AclType::from_xattr_name(&name).is_some() {
                continue;
            }
            if let Some(c) = out.get_mut(&ino) {
                c.xattrs.push((name, value));
            }
        }
        let chunks = crate::sql::query(
            "SELECT inode, indx, slices FROM jfs_chunk \
             WHERE inode IN (SELECT value FROM json_each(?1)) ORDER BY inode, indx",
        )
        .bind(ids.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        let lengths: std::collections::HashMap<Ino, (FileType, u64)> =
            nodes.iter().map(|(i, a)| (*i, (a.typ, a.length))).collect();
        for r in chunks {
            let ino = r.try_get::<i64, _>(0).map_err(db_err)? as Ino;
            let indx = r.try_get::<i64, _>(1).map_err(db_err)?;
            let buf: Vec<u8> = r.try_get(2).map_err(db_err)?;
            let Some((FileType::Regular, length)) = lengths.get(&ino).copied() else {
                continue;
            };
            let indx = u32::try_from(indx)
                .map_err(|_| MetaError::Corrupt(format!("chunk {indx} of inode {ino}")))?;
            // Only the chunks below the length, as a read sees them.
            if u64::from(indx) >= length.div_ceil(CHUNK_SIZE) {
                continue;
            }
            let slices = meta_api::Slice::decode_chunk(ino, indx, &buf)?;
            if let (Some(c), false) = (out.get_mut(&ino), slices.is_empty()) {
                c.chunks.push((indx, slices));
            }
        }
        let links = crate::sql::query(
            "SELECT inode, target FROM jfs_symlink \
             WHERE inode IN (SELECT value FROM json_each(?1))",
        )
        .bind(ids.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        for r in links {
            let ino = r.try_get::<i64, _>(0).map_err(db_err)? as Ino;
            let target: Vec<u8> = r.try_get(1).map_err(db_err)?;
            if let Some(c) = out.get_mut(&ino) {
                c.symlink = Some(target);
            }
        }
        tx.rollback().await.map_err(db_err)?;
        // A hard-linked inode may be in the page under several names.
        Ok(nodes.iter().map(|(ino, _)| out.get(ino).cloned()).collect())
    }

    /// One statement per call: the slice ids go in as a JSON array (`json_each`).
    async fn hold_slices(&self, slices: &[(u64, u32)], delta: i64) -> Result<Vec<Slice>> {
        self.fmt().await?;
        let sizes: std::collections::HashMap<u64, u32> = slices.iter().copied().collect();
        let ids = serde_json::to_string(&sizes.keys().collect::<Vec<_>>())
            .map_err(|e| MetaError::backend(false, e))?;
        let (ids, sizes) = (&ids, &sizes);
        self.db
            .txn(|c, _| {
                Box::pin(async move {
                    if delta >= 0 {
                        // A pending slice (no reference left) is never counted back.
                        crate::sql::query(
                            "UPDATE jfs_chunk_ref SET refs = refs + ?1 \
                             WHERE refs > 0 AND chunkid IN (SELECT value FROM json_each(?2))",
                        )
                        .bind(delta)
                        .bind(ids.as_str())
                        .execute(&mut *c)
                        .await
                        .map_err(db_err)?;
                        return Ok(Vec::new());
                    }
                    let rows = crate::sql::query(
                        "UPDATE jfs_chunk_ref SET refs = refs - ?1 \
                         WHERE chunkid IN (SELECT value FROM json_each(?2)) \
                         RETURNING chunkid, size, refs",
                    )
                    .bind(-delta)
                    .bind(ids.as_str())
                    .fetch_all(&mut *c)
                    .await
                    .map_err(db_err)?;
                    let mut freed = Vec::new();
                    for r in rows {
                        let id = r.try_get::<i64, _>(0).map_err(db_err)? as u64;
                        let size = r.try_get::<i64, _>(1).map_err(db_err)?;
                        let refs = r.try_get::<i64, _>(2).map_err(db_err)?;
                        let size = u32::try_from(size).map_err(|_| {
                            MetaError::Corrupt(format!("jfs_chunk_ref {id}: size {size}"))
                        })?;
                        if refs <= 0 && sizes.get(&id) == Some(&size) {
                            // The row stays at zero references (pending) until forget_slice.
                            freed.push(Slice::whole(id, size));
                        }
                    }
                    freed.sort_by_key(|s| s.id);
                    Ok(freed)
                })
            })
            .await
    }

    /// Every `jfs_` table but `jfs_setting` and `jfs_counter` emptied, in one transaction.
    async fn wipe(&self) -> Result<()> {
        self.fmt().await?;
        self.db
            .txn(|c, _| {
                Box::pin(async move {
                    let tables = crate::sql::query(
                        "SELECT name FROM sqlite_master WHERE type = 'table' \
                         AND name LIKE 'jfs\\_%' ESCAPE '\\' \
                         AND name NOT IN ('jfs_setting', 'jfs_counter')",
                    )
                    .fetch_all(&mut *c)
                    .await
                    .map_err(db_err)?;
                    for t in tables {
                        let name: String = t.try_get(0).map_err(db_err)?;
                        let sql = format!("DELETE FROM `{}`", name.replace('`', "``"));
                        crate::sql::query(&sql)
                            .execute(&mut *c)
                            .await
                            .map_err(db_err)?;
                    }
                    Ok(())
                })
            })
            .await?;
        self.acls.clear();
        Ok(())
    }
}
