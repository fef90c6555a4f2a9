//! POSIX ACLs (`jfs_acl`): rules by id, shared by every inode with the same rule, and the
//! `system.posix_acl_*` extended attributes.
//!
//! JuiceFS's SQL engine keeps one row per distinct rule: `owner`, `group`, `mask`, `other`
//! and the named users and groups as [`meta_api::acl::encode_entries`] blobs, under an
//! `AUTOINCREMENT` id. Rows never change and are never deleted, so a client caches them by
//! id. A new rule is looked up by content inside the write transaction first (SQLite has one
//! writer at a time, so two clients never store the same rule twice).

use std::sync::Arc;

use crate::sql::SqliteConnection;
use meta_api::acl::{self, decode_entries, encode_entries, AclType, Rule};
use meta_api::perm::check_access_with;
use meta_api::{Attr, Context, Ino, MetaError, Result, Timestamp, MAX_XATTR_VALUE_LEN};

use crate::engine::node::{must_node, split_time};
use crate::txn::db_err;
use crate::SqliteMeta;

impl SqliteMeta {
    /// The rule stored under `id`, from the cache or the database.
    pub(crate) async fn acl_rule(&self, c: &mut SqliteConnection, id: u32) -> Result<Arc<Rule>> {
        if let Some(rule) = self.acls.get(id) {
            return Ok(rule);
        }
        let row = crate::sql::query(
            "SELECT owner, `group`, mask, other, named_users, named_groups FROM jfs_acl \
             WHERE id = ?",
        )
        .bind(i64::from(id))
        .fetch_optional(&mut *c)
        .await
        .map_err(db_err)?
        .ok_or_else(|| MetaError::Corrupt(format!("ACL {id} is referenced but not stored")))?;
        let perm = |i: usize| -> Result<u16> {
            Ok(row
                .try_get::<Option<i64>, _>(i)
                .map_err(db_err)?
                .unwrap_or(0) as u16)
        };
        let entries = |i: usize| -> Result<Vec<acl::AclEntry>> {
            let blob: Option<Vec<u8>> = row.try_get(i).map_err(db_err)?;
            let mut e = decode_entries(blob.as_deref().unwrap_or_default())?;
            e.sort_unstable();
            Ok(e)
        };
        let rule = Rule {
            owner: perm(0)?,
            group: perm(1)?,
            mask: perm(2)?,
            other: perm(3)?,
            named_users: entries(4)?,
            named_groups: entries(5)?,
        };
        Ok(self.acls.insert(id, rule))
    }

    /// The access ACL an access check of `attr` by `ctx` consults, `None` when the mode
    /// bits decide (no ACL, a zero mask, or root).
    pub(crate) async fn check_rule(
        &self,
        c: &mut SqliteConnection,
        ctx: &Context,
        attr: Option<&Attr>,
    ) -> Result<Option<Arc<Rule>>> {
        match attr.and_then(acl::rule_for_check) {
            Some(id) if !ctx.is_root() => self.acl_rule(c, id).await.map(Some),
            _ => Ok(None),
        }
    }

    /// [`meta_api::perm::check_access`] with the inode's access ACL.
    pub(crate) async fn access(
        &self,
        c: &mut SqliteConnection,
        ctx: &Context,
        attr: &Attr,
        mask: u8,
    ) -> Result<()> {
        let rule = self.check_rule(c, ctx, Some(attr)).await?;
        check_access_with(ctx, attr, rule.as_deref(), mask)
    }

    /// [`SqliteMeta::access`] on a reader connection, outside any write transaction.
    pub(crate) async fn access_read(&self, ctx: &Context, attr: &Attr, mask: u8) -> Result<()> {
        if acl::rule_for_check(attr).is_none() || ctx.is_root() {
            return check_access_with(ctx, attr, None, mask);
        }
        let mut conn = self.db.pool.acquire().await.map_err(db_err)?;
        self.access(&mut conn, ctx, attr, mask).await
    }

    /// The default ACL of directory `attr`, when it has one (what new inodes inherit).
    pub(crate) async fn default_rule(
        &self,
        c: &mut SqliteConnection,
        attr: &Attr,
    ) -> Result<Option<Arc<Rule>>> {
        match attr.default_acl {
            0 => Ok(None),
            id => self.acl_rule(c, id).await.map(Some),
        }
    }

    /// The id of `rule`: an equal stored rule's, or a new row's. Runs inside the write
    /// transaction that uses the id, so a rolled-back transaction leaves no row behind;
    /// nothing is cached here for the same reason.
    pub(crate) async fn save_rule(&self, c: &mut SqliteConnection, rule: &Rule) -> Result<u32> {
        let users = encode_entries(&rule.named_users);
        let groups = encode_entries(&rule.named_groups);
        let found = crate::sql::query(
            "SELECT id FROM jfs_acl WHERE owner = ? AND `group` = ? AND mask = ? AND other = ? \
             AND IFNULL(named_users, x'') = ? AND IFNULL(named_groups, x'') = ? \
             ORDER BY id LIMIT 1",
        )
        .bind(i64::from(rule.owner))
        .bind(i64::from(rule.group))
        .bind(i64::from(rule.mask))
        .bind(i64::from(rule.other))
        .bind(&users)
        .bind(&groups)
        .fetch_optional(&mut *c)
        .await
        .map_err(db_err)?;
        let id: i64 = match found {
            Some(row) => row.try_get(0).map_err(db_err)?,
            None => crate::sql::query(
                "INSERT INTO jfs_acl (owner, `group`, mask, other, named_users, named_groups) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(i64::from(rule.owner))
            .bind(i64::from(rule.group))
            .bind(i64::from(rule.mask))
            .bind(i64::from(rule.other))
            .bind(&users)
            .bind(&groups)
            .execute(&mut *c)
            .await
            .map_err(db_err)?
            .last_insert_rowid(),
        };
        u32::try_from(id).map_err(|_| MetaError::Corrupt(format!("ACL id {id} out of range")))
    }

    /// `getxattr` of an ACL name.
    pub(crate) async fn get_acl_xattr(&self, ino: Ino, typ: AclType) -> Result<Vec<u8>> {
        if !self.fmt().await?.enable_acl {
            return Err(MetaError::NoAttr);
        }
        let mut conn = self.db.pool.acquire().await.map_err(db_err)?;
        let attr = must_node(&mut conn, ino).await?;
        let rule = match typ.id_of(&attr) {
            0 => None,
            id => Some(self.acl_rule(&mut conn, id).await?),
        };
        acl::get_xattr(&attr, typ, rule.as_deref())
    }

    /// `setxattr` of an ACL name (`value` in the Linux wire format) and, with
    /// `value == None`, `removexattr`.
    pub(crate) async fn set_acl_xattr(
        &self,
        ctx: &Context,
        ino: Ino,
        typ: AclType,
        value: Option<&[u8]>,
    ) -> Result<()> {
        if !self.fmt().await?.enable_acl {
            return Err(MetaError::NotSupported("POSIX ACLs are off on this volume"));
        }
        let rule = match value {
            Some(v) if v.len() > MAX_XATTR_VALUE_LEN => return Err(MetaError::Range),
            Some(v) => Rule::from_xattr(v)?,
            None => Rule::empty(),
        };
        let now = Timestamp::now();
        self.db
            .txn(|c, _| {
                let rule = rule.clone();
                Box::pin(async move {
                    let cur = must_node(c, ino).await?;
                    let plan = acl::plan_set(ctx, &cur, typ, rule)?;
                    let mut attr = plan.attr;
                    if let Some(rule) = &plan.store {
                        typ.set_id(&mut attr, self.save_rule(c, rule).await?);
                    }
                    if attr == cur {
                        return Ok(());
                    }
                    attr.ctime = now;
                    write_acl_columns(c, ino, &attr).await
                })
            })
            .await
    }
}

/// Writes the columns setting an ACL changes: mode, ctime and both ACL ids.
pub(crate) async fn write_acl_columns(c: &mut SqliteConnection, ino: Ino, a: &Attr) -> Result<()> {
    let (ct, ctn) = split_time(a.ctime);
    crate::sql::query(
        "UPDATE jfs_node SET mode = ?, ctime = ?, ctimensec = ?, access_acl_id = ?, \
         default_acl_id = ? WHERE inode = ?",
    )
    .bind(i64::from(a.mode & 0o7777))
    .bind(ct)
    .bind(ctn)
    .bind(i64::from(a.access_acl))
    .bind(i64::from(a.default_acl))
    .bind(ino as i64)
    .execute(&mut *c)
    .await
    .map_err(db_err)?;
    Ok(())
}
