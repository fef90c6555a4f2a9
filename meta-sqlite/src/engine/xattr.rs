//! Extended attributes (`jfs_xattr`).
//!
//! JuiceFS keeps xattr names in a TEXT column; names are bytes here, so they are bound as
//! blobs and turned into TEXT with the same bytes by `CAST(? AS TEXT)`, which makes them
//! compare equal to the names the juicefs client wrote.

use crate::sql::SqliteConnection;
use async_trait::async_trait;
use meta_api::acl::{add_xattr_names, AclType};
use meta_api::backend::Xattrs;
use meta_api::{access, Context, Ino, MetaError, Result, Timestamp, XattrFlags};

use crate::engine::node::{must_node, update_node};
use crate::txn::db_err;
use crate::SqliteMeta;

/// Checks that `ctx` may change the xattrs of `ino` and stamps its ctime.
async fn touch_for_change(
    meta: &SqliteMeta,
    c: &mut SqliteConnection,
    ctx: &Context,
    ino: Ino,
    now: Timestamp,
) -> Result<()> {
    let mut attr = must_node(c, ino).await?;
    meta_api::flags::check_xattr_change(&attr)?;
    meta.access(c, ctx, &attr, access::W).await?;
    attr.ctime = now;
    update_node(c, ino, &attr).await
}

#[async_trait]
impl Xattrs for SqliteMeta {
    async fn getxattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        self.fmt().await?;
        if let Some(typ) = AclType::from_xattr_name(name) {
            return self.get_acl_xattr(ino, typ).await;
        }
        let row = crate::sql::query(
            "SELECT x.value FROM jfs_node n LEFT JOIN jfs_xattr x \
             ON x.inode = n.inode AND x.name = CAST(?1 AS TEXT) WHERE n.inode = ?2",
        )
        .bind(name)
        .bind(ino as i64)
        .fetch_optional(&self.db.pool)
        .await
        .map_err(db_err)?
        .ok_or(MetaError::NotFound)?;
        row.try_get::<Option<Vec<u8>>, _>(0)
            .map_err(db_err)?
            .ok_or(MetaError::NoAttr)
    }

    async fn setxattr(
        &self,
        ctx: &Context,
        ino: Ino,
        name: &[u8],
        value: &[u8],
        flags: u32,
    ) -> Result<()> {
        self.fmt().await?;
        if let Some(typ) = AclType::from_xattr_name(name) {
            return self.set_acl_xattr(ctx, ino, typ, Some(value)).await;
        }
        let now = Timestamp::now();
        self.db
            .txn(|c, _| {
                Box::pin(async move {
                    touch_for_change(self, c, ctx, ino, now).await?;
                    let exists = crate::sql::query(
                        "SELECT 1 FROM jfs_xattr WHERE inode = ? AND name = CAST(? AS TEXT)",
                    )
                    .bind(ino as i64)
                    .bind(name)
                    .fetch_optional(&mut *c)
                    .await
                    .map_err(db_err)?
                    .is_some();
                    if flags == XattrFlags::CREATE && exists {
                        return Err(MetaError::Exists);
                    }
                    if flags == XattrFlags::REPLACE && !exists {
                        return Err(MetaError::NoAttr);
                    }
                    crate::sql::query(
                        "INSERT INTO jfs_xattr (inode, name, value) VALUES (?, CAST(? AS TEXT), ?) \
                         ON CONFLICT (inode, name) DO UPDATE SET value = excluded.value",
                    )
                    .bind(ino as i64)
                    .bind(name)
                    .bind(value)
                    .execute(&mut *c)
                    .await
                    .map_err(db_err)?;
                    Ok(())
                })
            })
            .await
    }

    async fn listxattr(&self, ino: Ino) -> Result<Vec<Vec<u8>>> {
        self.fmt().await?;
        let rows = crate::sql::query(
            "SELECT x.name, n.access_acl_id, n.default_acl_id FROM jfs_node n \
             LEFT JOIN jfs_xattr x ON x.inode = n.inode WHERE n.inode = ? ORDER BY x.name",
        )
        .bind(ino as i64)
        .fetch_all(&self.db.pool)
        .await
        .map_err(db_err)?;
        if rows.is_empty() {
            return Err(MetaError::NotFound);
        }
        let mut names = Vec::with_capacity(rows.len());
        for r in &rows {
            if let Some(name) = r.try_get::<Option<Vec<u8>>, _>(0).map_err(db_err)? {
                names.push(name);
            }
        }
        // The ACLs show as attributes too, as JuiceFS lists them.
        let id = |i: usize| -> Result<u32> {
            Ok(rows[0]
                .try_get::<Option<i64>, _>(i)
                .map_err(db_err)?
                .unwrap_or(0) as u32)
        };
        add_xattr_names(id(1)?, id(2)?, &mut names);
        Ok(names)
    }

    async fn removexattr(&self, ctx: &Context, ino: Ino, name: &[u8]) -> Result<()> {
        self.fmt().await?;
        if let Some(typ) = AclType::from_xattr_name(name) {
            return self.set_acl_xattr(ctx, ino, typ, None).await;
        }
        let now = Timestamp::now();
        self.db
            .txn(|c, _| {
                Box::pin(async move {
                    touch_for_change(self, c, ctx, ino, now).await?;
                    let done = crate::sql::query(
                        "DELETE FROM jfs_xattr WHERE inode = ? AND name = CAST(? AS TEXT)",
                    )
                    .bind(ino as i64)
                    .bind(name)
                    .execute(&mut *c)
                    .await
                    .map_err(db_err)?;
                    if done.rows_affected() == 0 {
                        return Err(MetaError::NoAttr);
                    }
                    Ok(())
                })
            })
            .await
    }
}
