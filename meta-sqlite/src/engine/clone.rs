//! Clones in SQLite ([`meta_api::clone`] has the walk and the protocol): one transaction
//! per node copies its row, xattrs, symlink target and chunk rows, adds one reference per
//! slice occurrence, and writes the entry (or, for a top directory, the
//! `jfs_detached_node` row).

use std::collections::BTreeMap;

use async_trait::async_trait;
use meta_api::backend::Clones;
use meta_api::clone::{cloned_attr, source_mask, CloneNode};
use meta_api::perm::check_access_with;
use meta_api::quota::Charge;
use meta_api::space::{entry_usage, Usage};
use meta_api::{Context, Entry, FileType, Ino, MetaError, Result, Slice, Timestamp};

use crate::engine::namespace::{insert_edge, Change};
use crate::engine::node::{add_usage, dir_stat, get_node, insert_node, must_node, update_node};
use crate::engine::quota;
use crate::sql::SqliteConnection;
use crate::txn::db_err;
use crate::SqliteMeta;

/// Copies the rows hanging off `src` (xattrs; symlink target; chunks with their slice
/// references) to `ino`.
async fn copy_rows(c: &mut SqliteConnection, src: Ino, ino: Ino, typ: FileType) -> Result<()> {
    crate::sql::query(
        "INSERT INTO jfs_xattr (inode, name, value) SELECT ?1, name, value FROM jfs_xattr \
         WHERE inode = ?2",
    )
    .bind(ino as i64)
    .bind(src as i64)
    .execute(&mut *c)
    .await
    .map_err(db_err)?;
    match typ {
        FileType::Symlink => {
            let done = crate::sql::query(
                "INSERT INTO jfs_symlink (inode, target) SELECT ?1, target FROM jfs_symlink \
                 WHERE inode = ?2",
            )
            .bind(ino as i64)
            .bind(src as i64)
            .execute(&mut *c)
            .await
            .map_err(db_err)?;
            if done.rows_affected() == 0 {
                return Err(MetaError::Corrupt(format!("symlink {src} has no target")));
            }
        }
        FileType::Regular => {
            let rows = crate::sql::query("SELECT indx, slices FROM jfs_chunk WHERE inode = ?")
                .bind(src as i64)
                .fetch_all(&mut *c)
                .await
                .map_err(db_err)?;
            let mut refs: BTreeMap<u64, (u32, i64)> = BTreeMap::new();
            for r in &rows {
                let indx: i64 = r.try_get(0).map_err(db_err)?;
                let buf: Vec<u8> = r.try_get(1).map_err(db_err)?;
                let indx = u32::try_from(indx)
                    .map_err(|_| MetaError::Corrupt(format!("chunk {indx} of inode {src}")))?;
                for s in Slice::decode_chunk(src, indx, &buf)? {
                    if s.id != 0 {
                        refs.entry(s.id).or_insert((s.size, 0)).1 += 1;
                    }
                }
            }
            crate::sql::query(
                "INSERT INTO jfs_chunk (inode, indx, slices) SELECT ?1, indx, slices \
                 FROM jfs_chunk WHERE inode = ?2",
            )
            .bind(ino as i64)
            .bind(src as i64)
            .execute(&mut *c)
            .await
            .map_err(db_err)?;
            crate::engine::node::add_refs(c, refs).await?;
        }
        FileType::Directory => {
            crate::sql::query(
                "INSERT OR IGNORE INTO jfs_dir_stats (inode, data_length, used_space, \
                 used_inodes) VALUES (?, 0, 0, 0)",
            )
            .bind(ino as i64)
            .execute(&mut *c)
            .await
            .map_err(db_err)?;
        }
        _ => {}
    }
    Ok(())
}

#[async_trait]
impl Clones for SqliteMeta {
    async fn clone_node(&self, ctx: &Context, step: &CloneNode<'_>) -> Result<Entry> {
        let fmt = self.fmt().await?;
        let fmt = &*fmt;
        let ino = self.next_inode().await?;
        let now = Timestamp::now();
        self.db
            .txn(|c, _| {
                Box::pin(async move {
                    let src = must_node(c, step.src).await?;
                    let rule = self.check_rule(c, ctx, Some(&src)).await?;
                    check_access_with(ctx, &src, rule.as_deref(), source_mask(src.typ))?;
                    let mut dir = get_node(c, step.parent).await?;
                    if step.top {
                        dir = Some(self.writable_dir(c, ctx, dir, Change::Add).await?.0);
                    }
                    let mut dir = dir.ok_or(MetaError::NotFound)?;
                    if !dir.is_dir() {
                        return Err(MetaError::NotDir);
                    }
                    let detached = step.top && src.typ == FileType::Directory;
                    let parent = if detached { 0 } else { step.parent };
                    let attr = cloned_attr(&src, ctx, step.opts, parent, now);
                    let (len, space) = entry_usage(attr.typ, attr.length);
                    // The directory quotas above a detached tree are charged when it is
                    // attached (its parent is 0 until then).
                    let dirs = if detached { vec![] } else { vec![step.parent] };
                    let owner = Some((attr.uid, attr.gid));
                    quota::charge(c, fmt, Charge::new(space, 1, owner, dirs), true).await?;
                    insert_node(c, ino, &attr).await?;
                    copy_rows(c, step.src, ino, attr.typ).await?;
                    add_usage(c, space, 1).await?;
                    if detached {
                        crate::sql::query(
                            "INSERT INTO jfs_detached_node (inode, added) VALUES (?, ?)",
                        )
                        .bind(ino as i64)
                        .bind(now.sec)
                        .execute(&mut *c)
                        .await
                        .map_err(db_err)?;
                    } else {
                        insert_edge(c, step.parent, step.name, ino, attr.typ).await?;
                        if attr.typ == FileType::Directory {
                            dir.nlink = dir.nlink.saturating_add(1);
                        }
                        if step.top {
                            dir.mtime = now;
                            dir.ctime = now;
                        }
                        update_node(c, step.parent, &dir).await?;
                        dir_stat(c, fmt, step.parent, len, space, 1).await?;
                    }
                    Ok(Entry { ino, attr })
                })
            })
            .await
    }

    async fn attach_dir(
        &self,
        ctx: &Context,
        (parent, name): (Ino, &[u8]),
        ino: Ino,
        usage: Usage,
    ) -> Result<Entry> {
        let fmt = self.fmt().await?;
        let fmt = &*fmt;
        let now = Timestamp::now();
        self.db
            .txn(|c, _| {
                Box::pin(async move {
                    let dir = get_node(c, parent).await?;
                    let (mut dir, _) = self.writable_dir(c, ctx, dir, Change::Add).await?;
                    let gone = crate::sql::query("DELETE FROM jfs_detached_node WHERE inode = ?")
                        .bind(ino as i64)
                        .execute(&mut *c)
                        .await
                        .map_err(db_err)?;
                    if gone.rows_affected() == 0 {
                        return Err(MetaError::NotFound);
                    }
                    let mut attr = must_node(c, ino).await?;
                    // Owners and the volume were charged node by node.
                    let ch = Charge::new(usage.space, usage.inodes, None, vec![parent]);
                    quota::charge(c, fmt, ch, false).await?;
                    insert_edge(c, parent, name, ino, FileType::Directory).await?;
                    dir.nlink = dir.nlink.saturating_add(1);
                    dir.mtime = now;
                    dir.ctime = now;
                    update_node(c, parent, &dir).await?;
                    attr.parent = parent;
                    update_node(c, ino, &attr).await?;
                    let (len, space) = entry_usage(FileType::Directory, 0);
                    dir_stat(c, fmt, parent, len, space, 1).await?;
                    Ok(Entry { ino, attr })
                })
            })
            .await
    }

    async fn detached_nodes(&self) -> Result<Vec<(Ino, i64)>> {
        self.fmt().await?;
        let rows = crate::sql::query("SELECT inode, added FROM jfs_detached_node ORDER BY inode")
            .fetch_all(&self.db.pool)
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let ino: i64 = r.try_get(0).map_err(db_err)?;
                let added: i64 = r.try_get(1).map_err(db_err)?;
                Ok((ino as u64, added))
            })
            .collect()
    }

    async fn drop_detached(&self, ino: Ino) -> Result<bool> {
        let fmt = self.fmt().await?;
        let fmt = &*fmt;
        self.db
            .txn(|c, _| {
                Box::pin(async move {
                    let gone = crate::sql::query("DELETE FROM jfs_detached_node WHERE inode = ?")
                        .bind(ino as i64)
                        .execute(&mut *c)
                        .await
                        .map_err(db_err)?;
                    if gone.rows_affected() == 0 {
                        return Ok(false);
                    }
                    let Some(attr) = get_node(c, ino).await? else {
                        return Ok(true);
                    };
                    let child =
                        crate::sql::query("SELECT 1 FROM jfs_edge WHERE parent = ? LIMIT 1")
                            .bind(ino as i64)
                            .fetch_optional(&mut *c)
                            .await
                            .map_err(db_err)?;
                    if child.is_some() {
                        return Err(MetaError::NotEmpty);
                    }
                    let (_, space) = entry_usage(attr.typ, attr.length);
                    let owner = Some((attr.uid, attr.gid));
                    quota::charge(c, fmt, Charge::new(-space, -1, owner, vec![]), false).await?;
                    crate::sql::query(
                        "DELETE FROM jfs_node WHERE inode = ?1; \
                         DELETE FROM jfs_xattr WHERE inode = ?1; \
                         DELETE FROM jfs_dir_stats WHERE inode = ?1",
                    )
                    .bind(ino as i64)
                    .execute(&mut *c)
                    .await
                    .map_err(db_err)?;
                    add_usage(c, -space, -1).await?;
                    Ok(true)
                })
            })
            .await
    }
}
