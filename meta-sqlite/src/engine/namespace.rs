//! The namespace: lookup, create, link, unlink, rmdir, rename, readdir, setattr, readlink.

use async_trait::async_trait;
use meta_api::backend::Namespace;
use meta_api::flags;
use std::sync::LazyLock;

use std::sync::Arc;

use crate::sql::SqliteConnection;
use meta_api::acl::Rule;
use meta_api::name::validate_name;
use meta_api::perm::{check_access_with, check_remove_with, new_inode_with_acl};
use meta_api::trash;
use meta_api::{
    access, Attr, Context, DirEntry, Entry, FileType, Format, Ino, MetaError, RenameFlags, Result,
    Timestamp, ROOT_INO,
};

use crate::engine::node::{
    add_usage, align4k, attr_from_row, delete_node, dir_stat, get_node, has_node, must_node,
    split_time, sync_dir_stats_sql, update_node, NODE_COLS, NODE_COLS_N, NODE_NCOLS, SELECT_NODE,
};
use crate::engine::quota;
use crate::engine::sustain;
use crate::engine::trash::{self as bin, Fate};
use crate::txn::{db_err, exists_or_db_err};
use crate::SqliteMeta;
use meta_api::quota::Charge;

/// Longest chain of parents followed when checking that a directory is not moved below itself.
const MAX_DEPTH: usize = 100_000;

/// Parent node, the entry `name` (inode, type) and the child node, in one statement.
static ENTRY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {p}, e.inode, e.type, {NODE_COLS_N} FROM jfs_node p \
         LEFT JOIN jfs_edge e ON e.parent = p.inode AND e.name = ?1 \
         LEFT JOIN jfs_node n ON n.inode = e.inode WHERE p.inode = ?2",
        p = NODE_COLS
            .split(", ")
            .map(|c| format!("p.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
});

/// Column of [`ENTRY`] where the child's node columns start.
const CHILD_AT: usize = NODE_NCOLS + 2;

// Statements run as one query use anonymous `?` parameters bound in textual order across
// the statements (see `crate::sql`).

/// One round trip of a create: the entry, the node, the parent's times and link count and
/// the usage counters; a symlink or directory adds one statement.
macro_rules! create_sql {
    ($($extra:expr),*) => {
        concat!(
            "INSERT INTO jfs_edge (parent, name, inode, type) VALUES (?, ?, ?, ?); ",
            "INSERT INTO jfs_node (inode, type, flags, mode, uid, gid, atime, mtime, ctime, ",
            "atimensec, mtimensec, ctimensec, nlink, length, rdev, parent, access_acl_id, ",
            "default_acl_id, tier_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ",
            "?, ?, 0); ",
            "UPDATE jfs_node SET mtime = ?, ctime = ?, mtimensec = ?, ctimensec = ?, ",
            "nlink = nlink + ? WHERE inode = ?; ",
            "UPDATE jfs_counter SET value = value + CASE name WHEN 'usedSpace' THEN 4096 ",
            "ELSE 1 END WHERE name IN ('usedSpace', 'totalInodes')"
            $(, $extra)*
        )
    };
}
/// Adds a new entry to the parent's JuiceFS directory statistics, or computes them when the
/// parent has no row yet (parent, then parent five times).
macro_rules! create_stats_sql {
    () => {
        concat!(
            "; UPDATE jfs_dir_stats SET used_space = used_space + 4096, ",
            "used_inodes = used_inodes + 1 WHERE inode = ?; ",
            sync_dir_stats_sql!()
        )
    };
}
/// The create statements: by whether the volume keeps directory statistics, then for a
/// regular file (or device, fifo, socket), a symlink (target) and a directory.
const CREATE: [[&str; 3]; 2] = [
    [
        create_sql!(""),
        create_sql!("; INSERT INTO jfs_symlink (inode, target) VALUES (?, ?)"),
        create_sql!(
            "; INSERT OR IGNORE INTO jfs_dir_stats (inode, data_length, used_space, \
             used_inodes) VALUES (?, 0, 0, 0)"
        ),
    ],
    [
        create_sql!(create_stats_sql!()),
        create_sql!(concat!(
            "; INSERT INTO jfs_symlink (inode, target) VALUES (?, ?)",
            create_stats_sql!()
        )),
        create_sql!(concat!(
            "; INSERT OR IGNORE INTO jfs_dir_stats (inode, data_length, used_space, \
             used_inodes) VALUES (?, 0, 0, 0)",
            create_stats_sql!()
        )),
    ],
];

/// Removes an entry (parent, name) and stamps the parent's times (t, t, tn, tn, parent).
macro_rules! remove_entry_sql {
    () => {
        "DELETE FROM jfs_edge WHERE parent = ? AND name = ?; \
         UPDATE jfs_node SET mtime = ?, ctime = ?, mtimensec = ?, ctimensec = ? WHERE inode = ?"
    };
}

/// Sets the link count and ctime of an inode (nlink, t, tn, inode).
macro_rules! set_nlink_sql {
    () => {
        "UPDATE jfs_node SET nlink = ?, ctime = ?, ctimensec = ? WHERE inode = ?"
    };
}

/// Keeps a file with no links alive for open handles: as [`set_nlink_sql`], and its xattrs
/// go now as JuiceFS does (nlink, t, tn, inode, inode).
macro_rules! keep_unlinked_sql {
    () => {
        concat!(set_nlink_sql!(), "; DELETE FROM jfs_xattr WHERE inode = ?")
    };
}

/// Deletes an inode with no links left (inode, length, time, is regular, inode, inode,
/// inode, space): a regular file is queued in `jfs_delfile`; the usage counters give back
/// the space and one inode.
macro_rules! drop_inode_sql {
    () => {
        "INSERT OR IGNORE INTO jfs_delfile (inode, length, expire) SELECT ?, ?, ? WHERE ?; \
         DELETE FROM jfs_node WHERE inode = ?; DELETE FROM jfs_symlink WHERE inode = ?; \
         DELETE FROM jfs_xattr WHERE inode = ?; \
         UPDATE jfs_counter SET value = value + CASE name WHEN 'usedSpace' THEN ? ELSE -1 END \
         WHERE name IN ('usedSpace', 'totalInodes')"
    };
}

const REMOVE_ENTRY: &str = remove_entry_sql!();
/// What happens to an inode losing a link: without and with its entry's removal first.
const SET_NLINK: [&str; 2] = [
    set_nlink_sql!(),
    concat!(remove_entry_sql!(), "; ", set_nlink_sql!()),
];
const KEEP_UNLINKED: [&str; 2] = [
    keep_unlinked_sql!(),
    concat!(remove_entry_sql!(), "; ", keep_unlinked_sql!()),
];
const DROP_INODE: [&str; 2] = [
    drop_inode_sql!(),
    concat!(remove_entry_sql!(), "; ", drop_inode_sql!()),
];

/// [`ENTRY`] plus the sessions of the volume (`?3`: now), for an unlink.
static UNLINK_ENTRY: LazyLock<String> = LazyLock::new(|| {
    ENTRY.replacen(
        " FROM jfs_node p",
        &format!(", {} FROM jfs_node p", sustain::SESSIONS_EXPR),
        1,
    )
});

/// The four readdir statements (with or without attributes, from the start or after a
/// name): the directory's type and permission columns on every row, then its entries in
/// byte order (one row of NULLs for an empty page), so that one statement checks and lists.
static READDIR: LazyLock<[String; 4]> = LazyLock::new(|| {
    let q = |plus: bool, after: bool| {
        let (cols, join) = if plus {
            (
                format!(", {NODE_COLS_N}"),
                " LEFT JOIN jfs_node n ON n.inode = e.inode",
            )
        } else {
            (String::new(), "")
        };
        let cond = if after { " AND e.name > ?2" } else { "" };
        format!(
            "SELECT p.type, p.mode, p.uid, p.gid, e.name, e.inode, e.type{cols}, \
             p.access_acl_id FROM jfs_node p \
             LEFT JOIN jfs_edge e ON e.parent = p.inode{cond}{join} WHERE p.inode = ?1 \
             ORDER BY e.name LIMIT ?3"
        )
    };
    [
        q(false, false),
        q(false, true),
        q(true, false),
        q(true, true),
    ]
});

/// A directory and its parent, for `.` and `..`.
static DOTS: LazyLock<String> = LazyLock::new(|| {
    let cols = |a: &str| {
        NODE_COLS
            .split(", ")
            .map(|c| format!("{a}.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "SELECT {}, {} FROM jfs_node p LEFT JOIN jfs_node u ON u.inode = p.parent \
         WHERE p.inode = ?",
        cols("p"),
        cols("u")
    )
});

fn file_type(v: i64) -> Result<FileType> {
    u8::try_from(v)
        .ok()
        .and_then(FileType::from_u8)
        .ok_or_else(|| MetaError::Corrupt(format!("directory entry of unknown type {v}")))
}

/// The directory entry `name` in `parent`: its inode and type.
pub(crate) async fn get_edge(
    conn: &mut SqliteConnection,
    parent: Ino,
    name: &[u8],
) -> Result<Option<(Ino, FileType)>> {
    let row = crate::sql::query("SELECT inode, type FROM jfs_edge WHERE parent = ? AND name = ?")
        .bind(parent as i64)
        .bind(name)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
    match row {
        None => Ok(None),
        Some(r) => {
            let ino = r.try_get::<i64, _>(0).map_err(db_err)? as u64;
            Ok(Some((ino, file_type(r.try_get(1).map_err(db_err)?)?)))
        }
    }
}

/// Adds entry `name` → `ino` to `parent`; `Exists` if the name is taken.
pub(crate) async fn insert_edge(
    conn: &mut SqliteConnection,
    parent: Ino,
    name: &[u8],
    ino: Ino,
    typ: FileType,
) -> Result<()> {
    crate::sql::query("INSERT INTO jfs_edge (parent, name, inode, type) VALUES (?, ?, ?, ?)")
        .bind(parent as i64)
        .bind(name)
        .bind(ino as i64)
        .bind(typ as u8 as i64)
        .execute(&mut *conn)
        .await
        .map_err(exists_or_db_err)?;
    Ok(())
}

async fn delete_edge(conn: &mut SqliteConnection, parent: Ino, name: &[u8]) -> Result<()> {
    crate::sql::query("DELETE FROM jfs_edge WHERE parent = ? AND name = ?")
        .bind(parent as i64)
        .bind(name)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// Removes entry `name` from `dir` and stamps the directory's mtime and ctime.
async fn remove_entry(
    c: &mut SqliteConnection,
    dir: Ino,
    name: &[u8],
    now: Timestamp,
) -> Result<()> {
    let (t, tn) = split_time(now);
    crate::sql::query(REMOVE_ENTRY)
        .bind(dir as i64)
        .bind(name)
        .bind(t)
        .bind(t)
        .bind(tn)
        .bind(tn)
        .bind(dir as i64)
        .execute(&mut *c)
        .await
        .map_err(db_err)?;
    Ok(())
}

async fn dir_is_empty(conn: &mut SqliteConnection, dir: Ino) -> Result<bool> {
    let row = crate::sql::query("SELECT 1 FROM jfs_edge WHERE parent = ? LIMIT 1")
        .bind(dir as i64)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(row.is_none())
}

/// Whether `dir` is `start` or one of its ancestors (a directory may not move below itself).
async fn is_ancestor(conn: &mut SqliteConnection, dir: Ino, start: Ino) -> Result<bool> {
    let mut at = start;
    for _ in 0..MAX_DEPTH {
        if at == dir {
            return Ok(true);
        }
        if at == ROOT_INO || at == 0 {
            return Ok(false);
        }
        at = match get_node(conn, at).await? {
            Some(a) => a.parent,
            None => return Ok(false),
        };
    }
    Err(MetaError::Corrupt(format!(
        "directory {start} has a cycle of parents"
    )))
}

/// What an entry adds to its directory's statistics: (data length, space).
fn entry_usage(attr: &Attr) -> (i64, i64) {
    meta_api::space::entry_usage(attr.typ, attr.length)
}

/// Refuses writes to a directory that is immutable or (for removals) append-only.
fn check_dir_flags(dir: &Attr, removing: bool) -> Result<()> {
    if removing {
        flags::check_remove(dir, None)
    } else {
        flags::check_create(dir)
    }
}

/// Refuses to remove, rename or link an inode that is immutable or append-only.
fn check_victim_flags(attr: &Attr) -> Result<()> {
    if attr.is_locked() {
        return Err(MetaError::NotPermitted);
    }
    Ok(())
}

/// What a change does to a directory's entries.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// Adds one.
    Add,
    /// Adds one by restoring from the trash (the directory may be in the trash itself).
    Restore,
    /// Removes one.
    Remove,
}

/// A directory that entries may be added to or removed from by `ctx`; `rule` is its access
/// ACL when the check needs one ([`SqliteMeta::check_rule`]).
fn writable_dir(
    ctx: &Context,
    dir: Option<Attr>,
    rule: Option<&Rule>,
    change: Change,
) -> Result<Attr> {
    let dir = dir.ok_or(MetaError::NotFound)?;
    if !dir.is_dir() {
        return Err(MetaError::NotDir);
    }
    let removing = change == Change::Remove;
    if change == Change::Add {
        trash::check_live_dir(&dir)?;
    }
    check_access_with(ctx, &dir, rule, access::W | access::X)?;
    check_dir_flags(&dir, removing)?;
    Ok(dir)
}

impl SqliteMeta {
    /// [`Namespace::unlink`] inside the caller's transaction.
    async fn unlink_in(
        &self,
        c: &mut SqliteConnection,
        (fmt, ctx): (&Format, &Context),
        parent: Ino,
        name: &[u8],
        now: Timestamp,
    ) -> Result<()> {
        let row = crate::sql::query(&UNLINK_ENTRY)
            .bind(name)
            .bind(parent as i64)
            .bind(now.sec)
            .fetch_optional(&mut *c)
            .await
            .map_err(db_err)?
            .ok_or(MetaError::NotFound)?;
        let dir = Some(attr_from_row(&row, 0)?.1);
        let (dir, rule) = self.writable_dir(c, ctx, dir, Change::Remove).await?;
        let ino = row
            .try_get::<Option<i64>, _>(NODE_NCOLS)
            .map_err(db_err)?
            .ok_or(MetaError::NotFound)? as u64;
        let typ = file_type(row.try_get(NODE_NCOLS + 1).map_err(db_err)?)?;
        let victim = if has_node(&row, CHILD_AT)? {
            Some(attr_from_row(&row, CHILD_AT)?.1)
        } else {
            None
        };
        if let Some(v) = &victim {
            check_remove_with(ctx, &dir, rule.as_deref(), v)?;
        }
        if typ == FileType::Directory {
            return Err(MetaError::IsDir);
        }
        if let Some(v) = &victim {
            check_victim_flags(v)?;
        }
        let Some(v) = victim else {
            return remove_entry(c, parent, name, now).await;
        };
        let (len, space) = entry_usage(&v);
        // The directories lose the entry; the owner loses the inode with its
        // last link, unless the trash keeps it.
        let fate = bin::fate(c, (fmt, ctx), parent, name, ino, &v, now).await?;
        let owner = (matches!(fate, Fate::Delete) && v.nlink <= 1).then_some((v.uid, v.gid));
        let ch = Charge::new(-space, -1, owner, vec![parent]);
        quota::charge(c, fmt, ch, false).await?;
        if let Fate::Trash(hour, tname) = fate {
            remove_entry(c, parent, name, now).await?;
            dir_stat(c, fmt, parent, -len, -space, -1).await?;
            return bin::put(c, fmt, hour, &tname, ino, v, now).await;
        }
        let live: Option<String> = row.try_get(CHILD_AT + NODE_NCOLS).map_err(db_err)?;
        let live = sustain::parse_sessions(live.as_deref());
        self.drop_link(c, ino, v, now, Some((parent, name)), Some(live))
            .await?;
        dir_stat(c, fmt, parent, -len, -space, -1).await
    }
}

impl SqliteMeta {
    /// [`writable_dir`] with the directory's access ACL, which is returned too (removals
    /// check it again with the sticky bit).
    pub(crate) async fn writable_dir(
        &self,
        c: &mut SqliteConnection,
        ctx: &Context,
        dir: Option<Attr>,
        change: Change,
    ) -> Result<(Attr, Option<Arc<Rule>>)> {
        let rule = self.check_rule(c, ctx, dir.as_ref()).await?;
        let dir = writable_dir(ctx, dir, rule.as_deref(), change)?;
        Ok((dir, rule))
    }

    /// Node `ino` read outside any write transaction.
    pub(crate) async fn read_node(&self, ino: Ino) -> Result<Option<Attr>> {
        let row = crate::sql::query(SELECT_NODE)
            .bind(ino as i64)
            .fetch_optional(&self.db.pool)
            .await
            .map_err(db_err)?;
        row.map(|r| attr_from_row(&r, 0).map(|(_, a)| a))
            .transpose()
    }

    /// Takes one link away from non-directory `ino`; the last link sustains the inode for
    /// the sessions that may have it open or deletes it (see [`crate::engine::sustain`]). With
    /// `entry`, the entry (parent, name) is removed in the same round trip; `live` are the
    /// volume's sessions when the caller fetched them already.
    async fn drop_link(
        &self,
        c: &mut SqliteConnection,
        ino: Ino,
        attr: Attr,
        now: Timestamp,
        entry: Option<(Ino, &[u8])>,
        live: Option<Vec<sustain::SessionLiveness>>,
    ) -> Result<()> {
        let nlink = attr.nlink.saturating_sub(1);
        let regular = attr.typ == FileType::Regular;
        let holders = if nlink == 0 && regular {
            let live = match live {
                Some(l) => l,
                None => sustain::sessions(c, now.sec).await?,
            };
            let me = self.session_id();
            sustain::holders(&self.location, me, &self.client, ino, &live)
        } else {
            Vec::new()
        };
        let (t, tn) = split_time(now);
        let with_entry = usize::from(entry.is_some());
        let sql = if nlink > 0 {
            SET_NLINK[with_entry]
        } else if !holders.is_empty() {
            KEEP_UNLINKED[with_entry]
        } else {
            DROP_INODE[with_entry]
        };
        let mut q = crate::sql::query(sql);
        if let Some((parent, name)) = entry {
            q = q
                .bind(parent as i64)
                .bind(name)
                .bind(t)
                .bind(t)
                .bind(tn)
                .bind(tn)
                .bind(parent as i64);
        }
        if nlink > 0 || !holders.is_empty() {
            q = q.bind(i64::from(nlink)).bind(t).bind(tn).bind(ino as i64);
            if nlink == 0 {
                q = q.bind(ino as i64);
            }
        } else {
            let space = if regular {
                align4k(attr.length)
            } else {
                align4k(0)
            };
            q = q
                .bind(ino as i64)
                .bind(attr.length as i64)
                .bind(now.sec)
                .bind(regular)
                .bind(ino as i64)
                .bind(ino as i64)
                .bind(ino as i64)
                .bind(-space);
        }
        q.execute(&mut *c).await.map_err(db_err)?;
        sustain::sustain(c, &holders, ino).await
    }
}

/// Checks that `ctx` may change the length of `attr`, whose access ACL is `rule` when the
/// check needs one.
pub(crate) fn check_truncatable(ctx: &Context, attr: &Attr, rule: Option<&Rule>) -> Result<()> {
    match attr.typ {
        FileType::Regular => {}
        FileType::Directory => return Err(MetaError::IsDir),
        _ => return Err(MetaError::InvalidArgument("not a regular file")),
    }
    flags::check_truncate(attr)?;
    check_access_with(ctx, attr, rule, access::W)
}

/// Deletes an empty directory's node and what JuiceFS keeps beside it.
async fn remove_dir_node(c: &mut SqliteConnection, ino: Ino) -> Result<()> {
    delete_node(c, ino).await?;
    drop_dir_rows(c, ino).await
}

/// Deletes the statistics and the quota of a directory that is removed or moved into the
/// trash (JuiceFS drops both then).
async fn drop_dir_rows(c: &mut SqliteConnection, ino: Ino) -> Result<()> {
    crate::sql::query(
        "DELETE FROM jfs_dir_stats WHERE inode = ?1; DELETE FROM jfs_dir_quota WHERE inode = ?1",
    )
    .bind(ino as i64)
    .execute(&mut *c)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Moves the usage of `ino` (attributes `attr`) from the directory quotas over `from` to
/// those over `to` when a rename moves it: a directory without a quota of its own cannot
/// move between different quotas (`EXDEV`, see [`meta_api::quota::dir_move_usage`]).
async fn move_quota(
    c: &mut SqliteConnection,
    fmt: &Format,
    (ino, attr): (Ino, &Attr),
    from: Ino,
    to: Ino,
) -> Result<()> {
    let mut qt = quota::SqlQuotas(&mut *c);
    meta_api::quota::move_entry(&mut qt, fmt, (ino, attr), from, to).await
}

/// The two directories of a rename, each with its access ACL when the checks need one.
type RenameParents = (Attr, Option<Arc<Rule>>, Attr, Option<Arc<Rule>>);

/// Both parents of a rename, checked in the contract's order: existence and type of both,
/// then write and search permission on both.
async fn rename_parents(
    meta: &SqliteMeta,
    c: &mut SqliteConnection,
    ctx: &Context,
    sp: Ino,
    dp: Ino,
    flags: RenameFlags,
) -> Result<RenameParents> {
    let dir = |a: Option<Attr>| match a {
        None => Err(MetaError::NotFound),
        Some(a) if !a.is_dir() => Err(MetaError::NotDir),
        Some(a) => Ok(a),
    };
    let spa = dir(get_node(c, sp).await?)?;
    let dpa = if dp == sp {
        spa.clone()
    } else {
        dir(get_node(c, dp).await?)?
    };
    let add = if flags.restore() {
        Change::Restore
    } else {
        Change::Add
    };
    let (spa, srule) = meta.writable_dir(c, ctx, Some(spa), Change::Remove).await?;
    let (dpa, drule) = meta.writable_dir(c, ctx, Some(dpa), add).await?;
    Ok((spa, srule, dpa, drule))
}

/// A rename in progress: both parents, the source, and what changes to the parents' links.
struct Rename<'a> {
    sp: Ino,
    sname: &'a [u8],
    dp: Ino,
    dname: &'a [u8],
    spa: Attr,
    dpa: Attr,
    sino: Ino,
    sattr: Attr,
    src_nlink: i64,
    dst_nlink: i64,
    now: Timestamp,
}

impl Rename<'_> {
    /// Re-parents a moved inode: directories always, files only while they have one link.
    fn reparent(attr: &mut Attr, to: Ino) {
        if attr.is_dir() || attr.parent != 0 {
            attr.parent = to;
        }
    }

    /// Moves the source entry to the destination name (whose old entry is already gone).
    async fn move_source(&mut self, c: &mut SqliteConnection, fmt: &Format) -> Result<()> {
        crate::sql::query("UPDATE jfs_edge SET parent = ?, name = ? WHERE parent = ? AND name = ?")
            .bind(self.dp as i64)
            .bind(self.dname)
            .bind(self.sp as i64)
            .bind(self.sname)
            .execute(&mut *c)
            .await
            .map_err(db_err)?;
        if self.sp != self.dp {
            Self::reparent(&mut self.sattr, self.dp);
            if self.sattr.is_dir() {
                if trash::counts_links(self.sp) {
                    self.src_nlink -= 1;
                }
                self.dst_nlink += 1;
            }
            let (len, space) = entry_usage(&self.sattr);
            dir_stat(c, fmt, self.sp, -len, -space, -1).await?;
            dir_stat(c, fmt, self.dp, len, space, 1).await?;
        }
        self.sattr.ctime = self.now;
        update_node(c, self.sino, &self.sattr).await
    }

    /// Swaps the source entry with the existing destination entry `dino`.
    async fn exchange(
        &mut self,
        c: &mut SqliteConnection,
        fmt: &Format,
        dino: Ino,
        mut dattr: Attr,
    ) -> Result<()> {
        let set = "UPDATE jfs_edge SET inode = ?, type = ? WHERE parent = ? AND name = ?";
        for (ino, typ, parent, name) in [
            (dino, dattr.typ, self.sp, self.sname),
            (self.sino, self.sattr.typ, self.dp, self.dname),
        ] {
            crate::sql::query(set)
                .bind(ino as i64)
                .bind(typ as u8 as i64)
                .bind(parent as i64)
                .bind(name)
                .execute(&mut *c)
                .await
                .map_err(db_err)?;
        }
        if self.sp != self.dp {
            Self::reparent(&mut self.sattr, self.dp);
            Self::reparent(&mut dattr, self.sp);
            let moved = i64::from(self.sattr.is_dir()) - i64::from(dattr.is_dir());
            self.src_nlink -= moved;
            self.dst_nlink += moved;
            let (slen, sspace) = entry_usage(&self.sattr);
            let (dlen, dspace) = entry_usage(&dattr);
            dir_stat(c, fmt, self.sp, dlen - slen, dspace - sspace, 0).await?;
            dir_stat(c, fmt, self.dp, slen - dlen, sspace - dspace, 0).await?;
        }
        self.sattr.ctime = self.now;
        dattr.ctime = self.now;
        update_node(c, self.sino, &self.sattr).await?;
        update_node(c, dino, &dattr).await
    }

    /// Writes both parents: times, and the link counts that moved directories changed.
    async fn finish(self, c: &mut SqliteConnection) -> Result<()> {
        let apply = |attr: &mut Attr, delta: i64, now: Timestamp| {
            attr.nlink = (i64::from(attr.nlink) + delta).clamp(0, i64::from(u32::MAX)) as u32;
            attr.mtime = now;
            attr.ctime = now;
        };
        let mut spa = self.spa;
        if self.sp == self.dp {
            apply(&mut spa, self.src_nlink + self.dst_nlink, self.now);
            return update_node(c, self.sp, &spa).await;
        }
        let mut dpa = self.dpa;
        apply(&mut spa, self.src_nlink, self.now);
        apply(&mut dpa, self.dst_nlink, self.now);
        update_node(c, self.sp, &spa).await?;
        update_node(c, self.dp, &dpa).await
    }
}

#[async_trait]
impl Namespace for SqliteMeta {
    async fn lookup(&self, ctx: &Context, parent: Ino, name: &[u8]) -> Result<Entry> {
        self.fmt().await?;
        if name == b"." || name == b".." {
            let row = crate::sql::query(&DOTS)
                .bind(parent as i64)
                .fetch_optional(&self.db.pool)
                .await
                .map_err(db_err)?
                .ok_or(MetaError::NotFound)?;
            let (_, dir) = attr_from_row(&row, 0)?;
            if !dir.is_dir() {
                return Err(MetaError::NotDir);
            }
            self.access_read(ctx, &dir, access::X).await?;
            if name == b"." || parent == ROOT_INO {
                return Ok(Entry {
                    ino: parent,
                    attr: dir,
                });
            }
            if !has_node(&row, NODE_NCOLS)? {
                return Err(MetaError::NotFound);
            }
            let (ino, attr) = attr_from_row(&row, NODE_NCOLS)?;
            return Ok(Entry { ino, attr });
        }
        validate_name(name)?;
        let row = crate::sql::query(&ENTRY)
            .bind(name)
            .bind(parent as i64)
            .fetch_optional(&self.db.pool)
            .await
            .map_err(db_err)?
            .ok_or(MetaError::NotFound)?;
        let (_, dir) = attr_from_row(&row, 0)?;
        if !dir.is_dir() {
            return Err(MetaError::NotDir);
        }
        self.access_read(ctx, &dir, access::X).await?;
        if !has_node(&row, CHILD_AT)? {
            return Err(MetaError::NotFound);
        }
        let (ino, attr) = attr_from_row(&row, CHILD_AT)?;
        Ok(Entry { ino, attr })
    }

    /// Creates an inode of any type named `name` in `parent` (a symlink gets `target`).
    #[allow(clippy::too_many_arguments)]
    async fn mknod(
        &self,
        ctx: &Context,
        parent: Ino,
        name: &[u8],
        typ: FileType,
        mode: u16,
        rdev: u32,
        target: &[u8],
    ) -> Result<Entry> {
        self.make(ctx, parent, name, typ, mode, rdev, target, false)
            .await
    }

    async fn create(&self, ctx: &Context, parent: Ino, name: &[u8], mode: u16) -> Result<Entry> {
        self.make(ctx, parent, name, FileType::Regular, mode, 0, b"", true)
            .await
    }

    async fn readlink(&self, ino: Ino) -> Result<Vec<u8>> {
        self.fmt().await?;
        let row = crate::sql::query(
            "SELECT n.type, s.target FROM jfs_node n LEFT JOIN jfs_symlink s \
             ON s.inode = n.inode WHERE n.inode = ?",
        )
        .bind(ino as i64)
        .fetch_optional(&self.db.pool)
        .await
        .map_err(db_err)?
        .ok_or(MetaError::NotFound)?;
        if file_type(row.try_get(0).map_err(db_err)?)? != FileType::Symlink {
            return Err(MetaError::InvalidArgument("not a symbolic link"));
        }
        row.try_get::<Option<Vec<u8>>, _>(1)
            .map_err(db_err)?
            .ok_or_else(|| MetaError::Corrupt(format!("symlink {ino} has no target")))
    }

    async fn link(&self, ctx: &Context, ino: Ino, parent: Ino, name: &[u8]) -> Result<Entry> {
        let fmt = self.fmt().await?;
        let fmt = &*fmt;
        let now = Timestamp::now();
        self.db
            .txn(|c, _| {
                Box::pin(async move {
                    let mut attr = must_node(c, ino).await?;
                    if attr.is_dir() {
                        return Err(MetaError::NotPermitted);
                    }
                    if attr.nlink == 0 {
                        // An unlinked (sustained) inode cannot get a name back.
                        return Err(MetaError::NotFound);
                    }
                    let dir = get_node(c, parent).await?;
                    let (mut dir, _) = self.writable_dir(c, ctx, dir, Change::Add).await?;
                    check_victim_flags(&attr)?;
                    if attr.nlink == u32::MAX {
                        return Err(MetaError::TooManyLinks);
                    }
                    let (_, space) = entry_usage(&attr);
                    quota::charge(c, fmt, Charge::new(space, 1, None, vec![parent]), false).await?;
                    insert_edge(c, parent, name, ino, attr.typ).await?;
                    attr.nlink += 1;
                    attr.parent = 0;
                    attr.ctime = now;
                    update_node(c, ino, &attr).await?;
                    dir.mtime = now;
                    dir.ctime = now;
                    update_node(c, parent, &dir).await?;
                    let (len, space) = entry_usage(&attr);
                    dir_stat(c, fmt, parent, len, space, 1).await?;
                    Ok(Entry { ino, attr })
                })
            })
            .await
    }

    async fn unlink(&self, ctx: &Context, parent: Ino, name: &[u8]) -> Result<()> {
        let fmt = self.fmt().await?;
        let fmt = &*fmt;
        let now = Timestamp::now();
        self.db
            .txn(|c, _| Box::pin(self.unlink_in(c, (fmt, ctx), parent, name, now)))
            .await
    }

    /// Every name in one transaction: each unlink is a few statements run in place, the
    /// commit is shared.
    async fn unlink_batch(&self, ctx: &Context, parent: Ino, names: &[Vec<u8>]) -> Result<()> {
        let fmt = self.fmt().await?;
        let fmt = &*fmt;
        let now = Timestamp::now();
        self.db
            .txn(|c, _| {
                Box::pin(async move {
                    for name in names {
                        self.unlink_in(c, (fmt, ctx), parent, name, now).await?;
                    }
                    Ok(())
                })
            })
            .await
    }

    async fn rmdir(&self, ctx: &Context, parent: Ino, name: &[u8]) -> Result<()> {
        let fmt = self.fmt().await?;
        let fmt = &*fmt;
        let now = Timestamp::now();
        self.db
            .txn(|c, _| {
                Box::pin(async move {
                    let dir = get_node(c, parent).await?;
                    let (mut dir, rule) = self.writable_dir(c, ctx, dir, Change::Remove).await?;
                    let (ino, typ) = get_edge(c, parent, name)
                        .await?
                        .ok_or(MetaError::NotFound)?;
                    let victim = get_node(c, ino).await?;
                    if let Some(v) = &victim {
                        check_remove_with(ctx, &dir, rule.as_deref(), v)?;
                    }
                    if typ != FileType::Directory {
                        return Err(MetaError::NotDir);
                    }
                    if let Some(v) = &victim {
                        check_victim_flags(v)?;
                    }
                    if !dir_is_empty(c, ino).await? {
                        return Err(MetaError::NotEmpty);
                    }
                    let fate = match &victim {
                        Some(v) => bin::fate(c, (fmt, ctx), parent, name, ino, v, now).await?,
                        None => Fate::Delete,
                    };
                    let owner = match (&fate, &victim) {
                        // Hour directories are no one's usage.
                        (Fate::Delete, Some(v)) if parent != meta_api::TRASH_INO => {
                            Some((v.uid, v.gid))
                        }
                        _ => None,
                    };
                    let ch = Charge::new(-align4k(0), -1, owner, vec![parent]);
                    quota::charge(c, fmt, ch, false).await?;
                    delete_edge(c, parent, name).await?;
                    if trash::counts_links(parent) {
                        dir.nlink = dir.nlink.saturating_sub(1);
                    }
                    dir.mtime = now;
                    dir.ctime = now;
                    update_node(c, parent, &dir).await?;
                    if trash::keeps_stats(parent) {
                        dir_stat(c, fmt, parent, 0, -align4k(0), -1).await?;
                    }
                    match (fate, victim) {
                        (Fate::Trash(hour, tname), Some(v)) => {
                            drop_dir_rows(c, ino).await?;
                            bin::put(c, fmt, hour, &tname, ino, v, now).await
                        }
                        _ => {
                            remove_dir_node(c, ino).await?;
                            add_usage(c, -align4k(0), -1).await
                        }
                    }
                })
            })
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn rename(
        &self,
        ctx: &Context,
        sp: Ino,
        sname: &[u8],
        dp: Ino,
        dname: &[u8],
        flags: RenameFlags,
    ) -> Result<()> {
        let fmt = self.fmt().await?;
        let fmt = &*fmt;
        let now = Timestamp::now();
        self.db
            .txn(|c, _| {
                Box::pin(async move {
                    let (spa, srule, dpa, drule) =
                        rename_parents(self, c, ctx, sp, dp, flags).await?;
                    let (sino, _) = get_edge(c, sp, sname).await?.ok_or(MetaError::NotFound)?;
                    let dst = get_edge(c, dp, dname).await?;
                    match dst {
                        None if flags.exchange() => return Err(MetaError::NotFound),
                        Some(_) if flags.noreplace() => return Err(MetaError::Exists),
                        // The same inode under both names (or one name): POSIX does nothing.
                        Some((dino, _)) if dino == sino => return Ok(()),
                        _ => {}
                    }
                    let sattr = must_node(c, sino).await?;
                    let dattr = match dst {
                        Some((dino, _)) => get_node(c, dino).await?,
                        None => None,
                    };
                    if sattr.is_dir() && is_ancestor(c, sino, dp).await? {
                        return Err(MetaError::InvalidArgument(
                            "cannot move a directory into itself or its subtree",
                        ));
                    }
                    if let (true, Some((dino, _)), Some(d)) = (flags.exchange(), dst, &dattr) {
                        if d.is_dir() && is_ancestor(c, dino, sp).await? {
                            return Err(MetaError::InvalidArgument(
                                "cannot move a directory into itself or its subtree",
                            ));
                        }
                    }
                    check_remove_with(ctx, &spa, srule.as_deref(), &sattr)?;
                    if let Some(d) = &dattr {
                        check_remove_with(ctx, &dpa, drule.as_deref(), d)?;
                    }
                    check_victim_flags(&sattr)?;
                    if let Some(d) = &dattr {
                        check_victim_flags(d)?;
                    }
                    let mut rename = Rename {
                        sp,
                        sname,
                        dp,
                        dname,
                        spa,
                        dpa,
                        sino,
                        sattr,
                        src_nlink: 0,
                        dst_nlink: 0,
                        now,
                    };
                    match dst {
                        Some((dino, dtyp)) if flags.exchange() => {
                            let dattr = dattr.ok_or(MetaError::NotFound)?;
                            debug_assert_eq!(dattr.typ, dtyp);
                            move_quota(c, fmt, (sino, &rename.sattr), sp, dp).await?;
                            move_quota(c, fmt, (dino, &dattr), dp, sp).await?;
                            rename.exchange(c, fmt, dino, dattr).await?;
                        }
                        Some((dino, dtyp)) => {
                            let sdir = rename.sattr.is_dir();
                            if sdir && dtyp != FileType::Directory {
                                return Err(MetaError::NotDir);
                            }
                            if !sdir && dtyp == FileType::Directory {
                                return Err(MetaError::IsDir);
                            }
                            if dtyp == FileType::Directory && !dir_is_empty(c, dino).await? {
                                return Err(MetaError::NotEmpty);
                            }
                            let fate = match &dattr {
                                Some(d) => {
                                    bin::fate(c, (fmt, ctx), dp, dname, dino, d, now).await?
                                }
                                None => Fate::Delete,
                            };
                            if let Some(d) = &dattr {
                                // The victim's entry leaves first, then the source arrives.
                                let gone =
                                    matches!(fate, Fate::Delete) && (d.is_dir() || d.nlink <= 1);
                                let owner = gone.then_some((d.uid, d.gid));
                                let (_, space) = entry_usage(d);
                                let ch = Charge::new(-space, -1, owner, vec![dp]);
                                quota::charge(c, fmt, ch, false).await?;
                            }
                            move_quota(c, fmt, (sino, &rename.sattr), sp, dp).await?;
                            delete_edge(c, dp, dname).await?;
                            if dtyp == FileType::Directory {
                                rename.dst_nlink -= 1;
                                dir_stat(c, fmt, dp, 0, -align4k(0), -1).await?;
                                match (fate, dattr) {
                                    (Fate::Trash(hour, tname), Some(d)) => {
                                        drop_dir_rows(c, dino).await?;
                                        bin::put(c, fmt, hour, &tname, dino, d, now).await?;
                                    }
                                    _ => {
                                        remove_dir_node(c, dino).await?;
                                        add_usage(c, -align4k(0), -1).await?;
                                    }
                                }
                            } else if let Some(d) = dattr {
                                let (len, space) = entry_usage(&d);
                                dir_stat(c, fmt, dp, -len, -space, -1).await?;
                                match fate {
                                    Fate::Trash(hour, tname) => {
                                        bin::put(c, fmt, hour, &tname, dino, d, now).await?;
                                    }
                                    Fate::Delete => {
                                        self.drop_link(c, dino, d, now, None, None).await?;
                                    }
                                }
                            }
                            rename.move_source(c, fmt).await?;
                        }
                        None => {
                            move_quota(c, fmt, (sino, &rename.sattr), sp, dp).await?;
                            rename.move_source(c, fmt).await?
                        }
                    }
                    rename.finish(c).await
                })
            })
            .await
    }

    async fn readdir(
        &self,
        ctx: &Context,
        ino: Ino,
        after: Option<&[u8]>,
        limit: usize,
        plus: bool,
    ) -> Result<Vec<DirEntry>> {
        self.fmt().await?;
        let sql = &READDIR[usize::from(plus) * 2 + usize::from(after.is_some())];
        // At least one row comes back, so that a missing directory shows even for limit 0.
        let rows = crate::sql::query(sql)
            .bind(ino as i64)
            .bind(after.unwrap_or_default())
            .bind(i64::try_from(limit.max(1)).unwrap_or(i64::MAX))
            .fetch_all(&self.db.pool)
            .await
            .map_err(db_err)?;
        let first = rows.first().ok_or(MetaError::NotFound)?;
        let typ = file_type(first.try_get(0).map_err(db_err)?)?;
        if typ != FileType::Directory {
            return Err(MetaError::NotDir);
        }
        let get = |i: usize| first.try_get::<i64, _>(i).map_err(db_err);
        let mut dir = Attr::new(
            typ,
            get(1)? as u16,
            get(2)? as u32,
            get(3)? as u32,
            Timestamp::default(),
        );
        let acl_at = 7 + if plus { NODE_NCOLS } else { 0 };
        dir.access_acl = first
            .try_get::<Option<i64>, _>(acl_at)
            .map_err(db_err)?
            .unwrap_or(0) as u32;
        self.access_read(ctx, &dir, access::R).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows.iter().take(limit) {
            let Some(name) = r.try_get::<Option<Vec<u8>>, _>(4).map_err(db_err)? else {
                break;
            };
            let ino = r.try_get::<i64, _>(5).map_err(db_err)? as u64;
            let typ = file_type(r.try_get(6).map_err(db_err)?)?;
            let attr = if plus && has_node(r, 7)? {
                Some(attr_from_row(r, 7)?.1)
            } else {
                None
            };
            out.push(DirEntry {
                name,
                ino,
                typ,
                attr,
            });
        }
        Ok(out)
    }
}

impl SqliteMeta {
    /// Creates an inode of any type; `open`: a regular file this client has open once the
    /// transaction commits. The open is recorded before the commit, so that an unlinker in
    /// this process that finds the new name also finds it open (see `sustain`); nothing
    /// else needs checking for a file nobody could know before.
    #[allow(clippy::too_many_arguments)]
    async fn make(
        &self,
        ctx: &Context,
        parent: Ino,
        name: &[u8],
        typ: FileType,
        mode: u16,
        rdev: u32,
        target: &[u8],
        open: bool,
    ) -> Result<Entry> {
        let fmt = self.fmt().await?;
        let fmt = &*fmt;
        let ino = self.next_inode().await?;
        let now = Timestamp::now();
        if open {
            self.client.open.open(ino);
        }
        let made = self
            .db
            .txn(|c, _| {
                Box::pin(async move {
                    let dir = get_node(c, parent).await?;
                    let (dir, _) = self.writable_dir(c, ctx, dir, Change::Add).await?;
                    let default = self.default_rule(c, &dir).await?;
                    let new = new_inode_with_acl(ctx, &dir, default.as_deref(), typ, mode);
                    let mut attr = Attr::new(typ, new.mode, ctx.uid, new.gid, now);
                    attr.parent = parent;
                    attr.default_acl = new.default_acl;
                    attr.flags = new.flags;
                    if let Some(rule) = &new.access_rule {
                        attr.access_acl = self.save_rule(c, rule).await?;
                    }
                    match typ {
                        FileType::Directory => {
                            attr.nlink = 2;
                            attr.length = 4096;
                        }
                        FileType::Symlink => attr.length = target.len() as u64,
                        _ => {}
                    }
                    attr.rdev = rdev;
                    let owner = Some((ctx.uid, attr.gid));
                    let ch = Charge::new(align4k(0), 1, owner, vec![parent]);
                    quota::charge(c, fmt, ch, true).await?;
                    let sql = CREATE[usize::from(fmt.dir_stats)][match typ {
                        FileType::Symlink => 1,
                        FileType::Directory => 2,
                        _ => 0,
                    }];
                    let (t, tn) = split_time(now);
                    let q = crate::sql::query(sql)
                        .bind(parent as i64)
                        .bind(name)
                        .bind(ino as i64)
                        .bind(typ as u8 as i64)
                        .bind(ino as i64)
                        .bind(typ as u8 as i64)
                        .bind(i64::from(attr.flags))
                        .bind(i64::from(attr.mode))
                        .bind(i64::from(attr.uid))
                        .bind(i64::from(attr.gid))
                        .bind(t)
                        .bind(t)
                        .bind(t)
                        .bind(tn)
                        .bind(tn)
                        .bind(tn)
                        .bind(i64::from(attr.nlink))
                        .bind(attr.length as i64)
                        .bind(i64::from(attr.rdev))
                        .bind(parent as i64)
                        .bind(i64::from(attr.access_acl))
                        .bind(i64::from(attr.default_acl))
                        .bind(t)
                        .bind(t)
                        .bind(tn)
                        .bind(tn)
                        .bind(i64::from(typ == FileType::Directory))
                        .bind(parent as i64);
                    let q = match typ {
                        FileType::Symlink => q.bind(ino as i64).bind(target),
                        FileType::Directory => q.bind(ino as i64),
                        _ => q,
                    };
                    let q = if fmt.dir_stats {
                        (0..6).fold(q, |q, _| q.bind(parent as i64))
                    } else {
                        q
                    };
                    q.execute(&mut *c).await.map_err(exists_or_db_err)?;
                    Ok(Entry { ino, attr })
                })
            })
            .await;
        if made.is_err() && open {
            self.client.close(ino);
        }
        made
    }
}
