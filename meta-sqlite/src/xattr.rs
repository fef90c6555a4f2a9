//! Extended attributes (`jfs_xattr`).
//!
//! JuiceFS keeps xattr names in a TEXT column; names are bytes here, so they are bound as
//! blobs and turned into TEXT with the same bytes by `CAST(? AS TEXT)`, which makes them
//! compare equal to the names the juicefs client wrote.

use meta_api::acl::{add_xattr_names, AclType};
use meta_api::{
    access, Context, Ino, MetaError, Result, Timestamp, XattrFlags, MAX_XATTR_NAME_LEN,
    MAX_XATTR_VALUE_LEN,
};
use sqlx::{Row, SqliteConnection};

use crate::namespace::{FLAG_APPEND, FLAG_IMMUTABLE};
use crate::node::{must_node, update_node};
use crate::txn::db_err;
use crate::SqliteMeta;

fn check_name(name: &[u8]) -> Result<()> {
    if name.is_empty() {
        return Err(MetaError::InvalidArgument("empty xattr name"));
    }
    if name.len() > MAX_XATTR_NAME_LEN {
        return Err(MetaError::NameTooLong);
    }
    Ok(())
}

/// Checks that `ctx` may change the xattrs of `ino` and stamps its ctime.
async fn touch_for_change(
    meta: &SqliteMeta,
    c: &mut SqliteConnection,
    ctx: &Context,
    ino: Ino,
    now: Timestamp,
) -> Result<()> {
    let mut attr = must_node(c, ino).await?;
    if attr.flags & (FLAG_IMMUTABLE | FLAG_APPEND) != 0 {
        return Err(MetaError::NotPermitted);
    }
    meta.access(c, ctx, &attr, access::W).await?;
    attr.ctime = now;
    update_node(c, ino, &attr).await
}

impl SqliteMeta {
    pub(crate) async fn do_getxattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        check_name(name)?;
        if let Some(typ) = AclType::from_xattr_name(name) {
            return self.get_acl_xattr(ino, typ).await;
        }
        let row = sqlx::query(
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

    pub(crate) async fn do_setxattr(
        &self,
        ctx: &Context,
        ino: Ino,
        name: &[u8],
        value: &[u8],
        flags: u32,
    ) -> Result<()> {
        check_name(name)?;
        if let Some(typ) = AclType::from_xattr_name(name) {
            return self.set_acl_xattr(ctx, ino, typ, Some(value)).await;
        }
        if value.len() > MAX_XATTR_VALUE_LEN {
            return Err(MetaError::Range);
        }
        let known = XattrFlags::CREATE | XattrFlags::REPLACE;
        if flags & !known != 0 || flags == known {
            return Err(MetaError::InvalidArgument("bad setxattr flags"));
        }
        let now = Timestamp::now();
        self.db
            .txn(|c, _| {
                Box::pin(async move {
                    touch_for_change(self, c, ctx, ino, now).await?;
                    let exists = sqlx::query(
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
                    sqlx::query(
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

    pub(crate) async fn do_listxattr(&self, ino: Ino) -> Result<Vec<Vec<u8>>> {
        let rows = sqlx::query(
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

    pub(crate) async fn do_removexattr(&self, ctx: &Context, ino: Ino, name: &[u8]) -> Result<()> {
        check_name(name)?;
        if let Some(typ) = AclType::from_xattr_name(name) {
            return self.set_acl_xattr(ctx, ino, typ, None).await;
        }
        let now = Timestamp::now();
        self.db
            .txn(|c, _| {
                Box::pin(async move {
                    touch_for_change(self, c, ctx, ino, now).await?;
                    let done = sqlx::query(
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
