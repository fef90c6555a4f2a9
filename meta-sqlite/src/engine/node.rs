//! Rows of `jfs_node` and friends: how JuiceFS's SQL schema stores attributes, and the small
//! statements every operation shares (read/insert/update a node, counters, directory stats).

use crate::sql::Row as SqliteRow;
use crate::sql::SqliteConnection;
use meta_api::{Attr, FileType, Format, Ino, MetaError, Result, Timestamp};
use meta_api::{Limits, Slice, Usage};

use crate::txn::db_err;

/// The node columns every query selects, in the order [`attr_from_row`] reads them.
pub(crate) const NODE_COLS: &str = "inode, type, flags, mode, uid, gid, atime, mtime, ctime, \
     atimensec, mtimensec, ctimensec, nlink, length, rdev, parent, access_acl_id, default_acl_id";

/// [`NODE_COLS`] qualified with the alias `n`, for joins.
pub(crate) const NODE_COLS_N: &str = "n.inode, n.type, n.flags, n.mode, n.uid, n.gid, n.atime, \
     n.mtime, n.ctime, n.atimensec, n.mtimensec, n.ctimensec, n.nlink, n.length, n.rdev, n.parent, \
     n.access_acl_id, n.default_acl_id";

/// Number of columns in [`NODE_COLS`].
pub(crate) const NODE_NCOLS: usize = 18;

pub(crate) use meta_api::space::align4k;

/// Splits a timestamp the way JuiceFS's SQL schema stores it: whole microseconds in
/// `atime`/`mtime`/`ctime` and the remaining nanoseconds (0..1000) in `*timensec`.
pub(crate) fn split_time(t: Timestamp) -> (i64, i64) {
    let ns = i128::from(t.sec) * 1_000_000_000 + i128::from(t.nsec);
    let us = ns.div_euclid(1000);
    let rem = ns.rem_euclid(1000) as i64;
    (
        us.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64,
        rem,
    )
}

/// Joins what [`split_time`] stored; accepts JuiceFS's truncating split of negative times too.
pub(crate) fn join_time(us: i64, nsec: i64) -> Timestamp {
    let ns = i128::from(us) * 1000 + i128::from(nsec);
    Timestamp {
        sec: ns
            .div_euclid(1_000_000_000)
            .clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64,
        nsec: ns.rem_euclid(1_000_000_000) as u32,
    }
}

fn get_i64(row: &SqliteRow, i: usize) -> Result<i64> {
    row.try_get::<i64, _>(i).map_err(db_err)
}

fn get_opt(row: &SqliteRow, i: usize) -> Result<i64> {
    Ok(row
        .try_get::<Option<i64>, _>(i)
        .map_err(db_err)?
        .unwrap_or(0))
}

/// Reads a node from `row`, whose columns from `at` on are [`NODE_COLS`].
pub(crate) fn attr_from_row(row: &SqliteRow, at: usize) -> Result<(Ino, Attr)> {
    let ino = get_i64(row, at)? as u64;
    let typ = get_i64(row, at + 1)?;
    let typ = u8::try_from(typ)
        .ok()
        .and_then(FileType::from_u8)
        .ok_or_else(|| MetaError::Corrupt(format!("inode {ino} has unknown type {typ}")))?;
    let attr = Attr {
        flags: get_i64(row, at + 2)? as u8,
        typ,
        mode: (get_i64(row, at + 3)? as u16) & 0o7777,
        uid: get_i64(row, at + 4)? as u32,
        gid: get_i64(row, at + 5)? as u32,
        atime: join_time(get_i64(row, at + 6)?, get_i64(row, at + 9)?),
        mtime: join_time(get_i64(row, at + 7)?, get_i64(row, at + 10)?),
        ctime: join_time(get_i64(row, at + 8)?, get_i64(row, at + 11)?),
        nlink: get_i64(row, at + 12)? as u32,
        length: get_i64(row, at + 13)? as u64,
        rdev: get_opt(row, at + 14)? as u32,
        parent: get_opt(row, at + 15)? as u64,
        access_acl: get_opt(row, at + 16)? as u32,
        default_acl: get_opt(row, at + 17)? as u32,
    };
    Ok((ino, attr))
}

/// Whether the node columns starting at `at` are present (a LEFT JOIN may leave them NULL).
pub(crate) fn has_node(row: &SqliteRow, at: usize) -> Result<bool> {
    Ok(row.try_get::<Option<i64>, _>(at).map_err(db_err)?.is_some())
}

/// Reads node `ino` inside a transaction.
pub(crate) async fn get_node(conn: &mut SqliteConnection, ino: Ino) -> Result<Option<Attr>> {
    let row = crate::sql::query(SELECT_NODE)
        .bind(ino as i64)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
    row.map(|r| attr_from_row(&r, 0).map(|(_, a)| a))
        .transpose()
}

/// Reads node `ino` inside a transaction; `NotFound` when it does not exist.
pub(crate) async fn must_node(conn: &mut SqliteConnection, ino: Ino) -> Result<Attr> {
    get_node(conn, ino).await?.ok_or(MetaError::NotFound)
}

/// `SELECT <node cols> FROM jfs_node WHERE inode = ?`.
pub(crate) const SELECT_NODE: &str = "SELECT inode, type, flags, mode, uid, gid, atime, mtime, \
     ctime, atimensec, mtimensec, ctimensec, nlink, length, rdev, parent, access_acl_id, \
     default_acl_id FROM jfs_node WHERE inode = ?";

/// Inserts a new node row (with `tier_id` 0, as JuiceFS writes it).
pub(crate) async fn insert_node(conn: &mut SqliteConnection, ino: Ino, a: &Attr) -> Result<()> {
    let (at, atn) = split_time(a.atime);
    let (mt, mtn) = split_time(a.mtime);
    let (ct, ctn) = split_time(a.ctime);
    crate::sql::query(
        "INSERT INTO jfs_node (inode, type, flags, mode, uid, gid, atime, mtime, ctime, \
         atimensec, mtimensec, ctimensec, nlink, length, rdev, parent, access_acl_id, \
         default_acl_id, tier_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,0)",
    )
    .bind(ino as i64)
    .bind(a.typ as u8 as i64)
    .bind(i64::from(a.flags))
    .bind(i64::from(a.mode & 0o7777))
    .bind(i64::from(a.uid))
    .bind(i64::from(a.gid))
    .bind(at)
    .bind(mt)
    .bind(ct)
    .bind(atn)
    .bind(mtn)
    .bind(ctn)
    .bind(i64::from(a.nlink))
    .bind(a.length as i64)
    .bind(i64::from(a.rdev))
    .bind(a.parent as i64)
    .bind(i64::from(a.access_acl))
    .bind(i64::from(a.default_acl))
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Writes back every mutable column of node `ino` (ACL ids are left alone).
pub(crate) async fn update_node(conn: &mut SqliteConnection, ino: Ino, a: &Attr) -> Result<()> {
    let (at, atn) = split_time(a.atime);
    let (mt, mtn) = split_time(a.mtime);
    let (ct, ctn) = split_time(a.ctime);
    let done = crate::sql::query(
        "UPDATE jfs_node SET flags = ?, mode = ?, uid = ?, gid = ?, atime = ?, mtime = ?, \
         ctime = ?, atimensec = ?, mtimensec = ?, ctimensec = ?, nlink = ?, length = ?, \
         rdev = ?, parent = ? WHERE inode = ?",
    )
    .bind(i64::from(a.flags))
    .bind(i64::from(a.mode & 0o7777))
    .bind(i64::from(a.uid))
    .bind(i64::from(a.gid))
    .bind(at)
    .bind(mt)
    .bind(ct)
    .bind(atn)
    .bind(mtn)
    .bind(ctn)
    .bind(i64::from(a.nlink))
    .bind(a.length as i64)
    .bind(i64::from(a.rdev))
    .bind(a.parent as i64)
    .bind(ino as i64)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    if done.rows_affected() == 0 {
        return Err(MetaError::NotFound);
    }
    Ok(())
}

/// Deletes node `ino` and what hangs off it besides chunks (symlink target, xattrs).
pub(crate) async fn delete_node(conn: &mut SqliteConnection, ino: Ino) -> Result<()> {
    crate::sql::query(
        "DELETE FROM jfs_node WHERE inode = ?1; DELETE FROM jfs_symlink WHERE inode = ?1; \
         DELETE FROM jfs_xattr WHERE inode = ?1",
    )
    .bind(ino as i64)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Adds to the volume's `usedSpace` and `totalInodes` counters.
pub(crate) async fn add_usage(conn: &mut SqliteConnection, space: i64, inodes: i64) -> Result<()> {
    if space == 0 && inodes == 0 {
        return Ok(());
    }
    crate::sql::query(
        "UPDATE jfs_counter SET value = value + CASE name WHEN 'usedSpace' THEN ?1 ELSE ?2 END \
         WHERE name IN ('usedSpace', 'totalInodes')",
    )
    .bind(space)
    .bind(inodes)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Refuses growth past the volume's capacity or inode limit (`NoSpace`), as JuiceFS does
/// ([`Limits`], read in the operation's transaction: SQLite writers are serialized anyway).
pub(crate) async fn check_capacity(
    conn: &mut SqliteConnection,
    fmt: &Format,
    space: i64,
    inodes: i64,
) -> Result<()> {
    if !Limits::needed(fmt) || (space <= 0 && inodes <= 0) {
        return Ok(());
    }
    let (used, count) = usage(conn).await?;
    let limits = Limits::of(
        fmt,
        Usage {
            space: used,
            inodes: count,
        },
    );
    Limits::check(limits.as_ref(), space, inodes)
}

/// Takes `n` references from each slice of `uses` (`(id, size, n)`, as
/// [`Slice::references`] counts them) and returns the slices left with none, whose objects
/// may now be deleted: their rows stay, at `refs <= 0` (pending, JuiceFS's convention),
/// until [`forget_slice`](meta_api::MetaEngine::forget_slice) after the objects are gone. A slice without a row is left alone
/// (leaked, never deleted twice): JuiceFS tracks every slice it writes.
pub(crate) async fn drop_refs(
    conn: &mut SqliteConnection,
    uses: &[(u64, u32, i64)],
) -> Result<Vec<Slice>> {
    let mut freed = Vec::new();
    for &(id, size, n) in uses {
        let left = crate::sql::query(
            "UPDATE jfs_chunk_ref SET refs = refs - ? WHERE chunkid = ? RETURNING refs",
        )
        .bind(n)
        .bind(id as i64)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
        let Some(left) = left else { continue };
        if left.try_get::<i64, _>(0).map_err(db_err)? <= 0 {
            // The row stays at zero references (pending) until forget_slice.
            freed.push(Slice::whole(id, size));
        }
    }
    Ok(freed)
}

/// Adds `n` references to each slice of `refs` (`id → (size, n)`), for a copy of records
/// that refer to it (`copy_file_range`, clone). A slice nobody tracked yet (no row) had
/// one user already: the source.
pub(crate) async fn add_refs(
    conn: &mut SqliteConnection,
    refs: impl IntoIterator<Item = (u64, (u32, i64))>,
) -> Result<()> {
    for (id, (size, n)) in refs {
        crate::sql::query(
            "INSERT INTO jfs_chunk_ref (chunkid, size, refs) VALUES (?1, ?2, ?3 + 1) \
             ON CONFLICT (chunkid) DO UPDATE SET refs = refs + ?3",
        )
        .bind(id as i64)
        .bind(i64::from(size))
        .bind(n)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    }
    Ok(())
}

/// The `usedSpace` and `totalInodes` counters.
pub(crate) async fn usage(conn: &mut SqliteConnection) -> Result<(i64, i64)> {
    let rows = crate::sql::query(
        "SELECT name, value FROM jfs_counter WHERE name IN ('usedSpace', 'totalInodes')",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    let (mut used, mut count) = (0, 0);
    for r in rows {
        let name: String = r.try_get(0).map_err(db_err)?;
        let v: i64 = r.try_get(1).map_err(db_err)?;
        if name == "usedSpace" {
            used = v;
        } else {
            count = v;
        }
    }
    Ok((used, count))
}

/// Computes the statistics row of a directory that has none, as JuiceFS's `calcDirStat`
/// does: every entry counts one inode and its space (4 KiB blocks, at least one), regular
/// files their length. Anonymous parameters, all the directory's inode (five of them); a
/// no-op (one index lookup) when the row exists.
macro_rules! sync_dir_stats_sql {
    () => {
        "INSERT INTO jfs_dir_stats (inode, data_length, used_space, used_inodes) SELECT ?, \
         (SELECT COALESCE(SUM(n.length), 0) FROM jfs_edge e JOIN jfs_node n \
         ON n.inode = e.inode WHERE e.parent = ? AND n.type = 1), \
         (SELECT COALESCE(SUM(CASE WHEN n.type = 1 AND n.length > 0 \
         THEN (n.length + 4095) / 4096 * 4096 ELSE 4096 END), 0) FROM jfs_edge e \
         LEFT JOIN jfs_node n ON n.inode = e.inode WHERE e.parent = ?), \
         (SELECT COUNT(*) FROM jfs_edge WHERE parent = ?) \
         WHERE NOT EXISTS (SELECT 1 FROM jfs_dir_stats WHERE inode = ?)"
    };
}
pub(crate) use sync_dir_stats_sql;

/// Keeps JuiceFS's per-directory statistics (`jfs_dir_stats`) current when the volume has
/// them enabled. Call it right after the change it describes: a directory without a row
/// gets one computed from its entries as they now are, instead of the delta.
pub(crate) async fn dir_stat(
    conn: &mut SqliteConnection,
    fmt: &Format,
    dir: Ino,
    length: i64,
    space: i64,
    inodes: i64,
) -> Result<()> {
    if !fmt.dir_stats || (length == 0 && space == 0 && inodes == 0) {
        return Ok(());
    }
    let done = crate::sql::query(
        "UPDATE jfs_dir_stats SET data_length = data_length + ?, used_space = used_space + ?, \
         used_inodes = used_inodes + ? WHERE inode = ?",
    )
    .bind(length)
    .bind(space)
    .bind(inodes)
    .bind(dir as i64)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    if done.rows_affected() == 0 {
        let mut q = crate::sql::query(sync_dir_stats_sql!());
        for _ in 0..5 {
            q = q.bind(dir as i64);
        }
        q.execute(&mut *conn).await.map_err(db_err)?;
    }
    Ok(())
}

/// [`dir_stat`] for a file whose parents may be several (hard links keep `parent` at 0).
pub(crate) async fn file_dir_stat(
    conn: &mut SqliteConnection,
    fmt: &Format,
    ino: Ino,
    parent: Ino,
    length: i64,
    space: i64,
) -> Result<()> {
    if !fmt.dir_stats || (length == 0 && space == 0) {
        return Ok(());
    }
    if parent != 0 {
        return dir_stat(conn, fmt, parent, length, space, 0).await;
    }
    // Once per name: a directory holding two names of the file counts it twice, as its
    // entries add up.
    crate::sql::query(
        "UPDATE jfs_dir_stats SET data_length = data_length + ?1 * n.names, \
         used_space = used_space + ?2 * n.names \
         FROM (SELECT parent, COUNT(*) AS names FROM jfs_edge WHERE inode = ?3 GROUP BY parent) \
         AS n WHERE jfs_dir_stats.inode = n.parent",
    )
    .bind(length)
    .bind(space)
    .bind(ino as i64)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_split_like_juicefs() {
        // JuiceFS's root node: 1795247991096047 µs and 596 ns.
        let t = join_time(1_795_247_991_096_047, 596);
        assert_eq!(t, Timestamp::new(1_795_247_991, 96_047_596));
        assert_eq!(split_time(t), (1_795_247_991_096_047, 596));
        for t in [
            Timestamp::new(0, 0),
            Timestamp::new(-1, 999_999_999),
            Timestamp::new(-1_500_000_000, 1),
            Timestamp::new(4_000_000_000, 123_456_789),
        ] {
            let (us, ns) = split_time(t);
            assert!((0..1000).contains(&ns));
            assert_eq!(join_time(us, ns), t);
        }
        // JuiceFS truncates towards zero for times before 1970; both splits read back the same.
        assert_eq!(join_time(-1_500_000, -1), Timestamp::new(-2, 499_999_999));
    }

    #[test]
    fn space_is_charged_in_4k_units() {
        assert_eq!(align4k(0), 4096);
        assert_eq!(align4k(1), 4096);
        assert_eq!(align4k(4096), 4096);
        assert_eq!(align4k(4097), 8192);
    }
}
