//! JuiceFS 1.4's SQL schema for SQLite, statement for statement, and the rows `format` writes.

use crate::sql::SqliteConnection;
use meta_api::{Attr, FileType, Format, MetaError, Result, Timestamp, ROOT_INO, TRASH_INO};

use crate::engine::node::{get_node, insert_node};
use crate::txn::db_err;

/// The tables and indexes `juicefs format` creates on SQLite (xorm's DDL, verbatim apart from
/// `IF NOT EXISTS`, which SQLite drops from the text it keeps in `sqlite_master`).
pub(crate) const DDL: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS `jfs_setting` (`name` TEXT PRIMARY KEY NOT NULL, `value` TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS `jfs_counter` (`name` TEXT PRIMARY KEY NOT NULL, `value` INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS `jfs_edge` (`id` INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, `parent` INTEGER NOT NULL, `name` BLOB NOT NULL, `inode` INTEGER NOT NULL, `type` INTEGER NOT NULL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS `UQE_jfs_edge_edge` ON `jfs_edge` (`parent`,`name`)",
    "CREATE INDEX IF NOT EXISTS `IDX_jfs_edge_inode` ON `jfs_edge` (`inode`)",
    "CREATE TABLE IF NOT EXISTS `jfs_node` (`inode` INTEGER PRIMARY KEY NOT NULL, `type` INTEGER NOT NULL, `flags` INTEGER NOT NULL, `mode` INTEGER NOT NULL, `uid` INTEGER NOT NULL, `gid` INTEGER NOT NULL, `atime` INTEGER NOT NULL, `mtime` INTEGER NOT NULL, `ctime` INTEGER NOT NULL, `atimensec` INTEGER DEFAULT 0 NOT NULL, `mtimensec` INTEGER DEFAULT 0 NOT NULL, `ctimensec` INTEGER DEFAULT 0 NOT NULL, `nlink` INTEGER NOT NULL, `length` INTEGER NOT NULL, `rdev` INTEGER NULL, `parent` INTEGER NULL, `access_acl_id` INTEGER NULL, `default_acl_id` INTEGER NULL, `tier_id` INTEGER NULL)",
    "CREATE TABLE IF NOT EXISTS `jfs_symlink` (`inode` INTEGER PRIMARY KEY NOT NULL, `target` BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS `jfs_xattr` (`id` INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, `inode` INTEGER NOT NULL, `name` TEXT NOT NULL, `value` BLOB NOT NULL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS `UQE_jfs_xattr_name` ON `jfs_xattr` (`inode`,`name`)",
    "CREATE TABLE IF NOT EXISTS `jfs_chunk` (`id` INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, `inode` INTEGER NOT NULL, `indx` INTEGER NOT NULL, `slices` BLOB NOT NULL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS `UQE_jfs_chunk_chunk` ON `jfs_chunk` (`inode`,`indx`)",
    "CREATE TABLE IF NOT EXISTS `jfs_chunk_ref` (`chunkid` INTEGER PRIMARY KEY NOT NULL, `size` INTEGER NOT NULL, `refs` INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS `IDX_jfs_chunk_ref_refs` ON `jfs_chunk_ref` (`refs`)",
    "CREATE TABLE IF NOT EXISTS `jfs_delslices` (`chunkid` INTEGER PRIMARY KEY NOT NULL, `deleted` INTEGER NOT NULL, `slices` BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS `jfs_session2` (`sid` INTEGER PRIMARY KEY NOT NULL, `expire` INTEGER NOT NULL, `info` BLOB NULL)",
    "CREATE TABLE IF NOT EXISTS `jfs_sustained` (`id` INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, `sid` INTEGER NOT NULL, `inode` INTEGER NOT NULL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS `UQE_jfs_sustained_sustained` ON `jfs_sustained` (`sid`,`inode`)",
    "CREATE TABLE IF NOT EXISTS `jfs_delfile` (`inode` INTEGER PRIMARY KEY NOT NULL, `length` INTEGER NOT NULL, `expire` INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS `jfs_flock` (`id` INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, `inode` INTEGER NOT NULL, `sid` INTEGER NOT NULL, `owner` INTEGER NOT NULL, `ltype` INTEGER NOT NULL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS `UQE_jfs_flock_flock` ON `jfs_flock` (`inode`,`sid`,`owner`)",
    "CREATE TABLE IF NOT EXISTS `jfs_plock` (`id` INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, `inode` INTEGER NOT NULL, `sid` INTEGER NOT NULL, `owner` INTEGER NOT NULL, `records` BLOB NOT NULL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS `UQE_jfs_plock_plock` ON `jfs_plock` (`inode`,`sid`,`owner`)",
    "CREATE TABLE IF NOT EXISTS `jfs_dir_quota` (`inode` INTEGER PRIMARY KEY NOT NULL, `max_space` INTEGER NOT NULL, `max_inodes` INTEGER NOT NULL, `used_space` INTEGER NOT NULL, `used_inodes` INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS `jfs_user_group_quota` (`qtype` INTEGER NOT NULL, `qkey` INTEGER NOT NULL, `max_space` INTEGER NOT NULL, `max_inodes` INTEGER NOT NULL, `used_space` INTEGER NOT NULL, `used_inodes` INTEGER NOT NULL, PRIMARY KEY ( `qtype`,`qkey` ))",
    "CREATE TABLE IF NOT EXISTS `jfs_dir_stats` (`inode` INTEGER PRIMARY KEY NOT NULL, `data_length` INTEGER NOT NULL, `used_space` INTEGER NOT NULL, `used_inodes` INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS `jfs_detached_node` (`inode` INTEGER PRIMARY KEY NOT NULL, `added` INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS `jfs_acl` (`id` INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, `owner` INTEGER NULL, `group` INTEGER NULL, `mask` INTEGER NULL, `other` INTEGER NULL, `named_users` BLOB NULL, `named_groups` BLOB NULL)",
    "CREATE TABLE IF NOT EXISTS `jfs_delegation_token` (`id` INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, `token` BLOB NULL)",
    "CREATE TABLE IF NOT EXISTS `jfs_change_log` (`id` INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, `entry` TEXT NOT NULL)",
];

/// The counters a new volume starts with: `nextInode` is the next inode to hand out (1 is
/// the root), `nextChunk` the next slice id, `nextSession` the last session id given out.
const COUNTERS: &[(&str, i64)] = &[
    ("nextInode", 2),
    ("nextChunk", 1),
    ("nextSession", 0),
    ("usedSpace", 0),
    ("totalInodes", 0),
    ("nextCleanupSlices", 0),
];

/// Creates every table and index that does not exist yet.
pub(crate) async fn create_tables(conn: &mut SqliteConnection) -> Result<()> {
    for stmt in DDL {
        crate::sql::query(stmt)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    Ok(())
}

/// Whether the settings table exists (a fresh database has no tables at all).
pub(crate) async fn has_settings_table(conn: &mut SqliteConnection) -> Result<bool> {
    let row = crate::sql::query(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'jfs_setting'",
    )
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(row.is_some())
}

/// The stored volume settings, `None` when the volume is not formatted.
pub(crate) async fn read_format(conn: &mut SqliteConnection) -> Result<Option<Format>> {
    if !has_settings_table(conn).await? {
        return Ok(None);
    }
    let row = crate::sql::query("SELECT value FROM jfs_setting WHERE name = 'format'")
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
    match row {
        None => Ok(None),
        Some(r) => {
            let json: String = r.try_get(0).map_err(db_err)?;
            Format::from_json(&json).map(Some)
        }
    }
}

/// Writes the settings and, on a new volume, the root directory, the trash directory (when
/// the trash is on) and the counters — the rows `juicefs format` writes. Expects the tables.
pub(crate) async fn format_volume(
    conn: &mut SqliteConnection,
    format: &Format,
    force: bool,
) -> Result<()> {
    let json = format.to_json();
    match read_format(conn).await? {
        Some(old) => {
            if !force {
                return Err(MetaError::Exists);
            }
            if old.name != format.name || old.uuid != format.uuid {
                return Err(MetaError::InvalidArgument(
                    "a formatted volume keeps its name and UUID",
                ));
            }
            crate::sql::query("UPDATE jfs_setting SET value = ? WHERE name = 'format'")
                .bind(&json)
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
        }
        None => {
            format.check_supported()?;
            crate::sql::query("INSERT INTO jfs_setting (name, value) VALUES ('format', ?)")
                .bind(&json)
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
            let mut root = Attr::new(FileType::Directory, 0o777, 0, 0, Timestamp::now());
            root.nlink = 2;
            root.length = 4096;
            root.parent = ROOT_INO;
            if get_node(conn, ROOT_INO).await?.is_none() {
                insert_node(conn, ROOT_INO, &root).await?;
            }
            for (name, value) in COUNTERS {
                crate::sql::query("INSERT OR IGNORE INTO jfs_counter (name, value) VALUES (?, ?)")
                    .bind(*name)
                    .bind(*value)
                    .execute(&mut *conn)
                    .await
                    .map_err(db_err)?;
            }
        }
    }
    if format.trash_days > 0 && get_node(conn, TRASH_INO).await?.is_none() {
        let trash = meta_api::trash::root_attr(Timestamp::now());
        insert_node(conn, TRASH_INO, &trash).await?;
    }
    Ok(())
}
