//! The trash in SQLite ([`meta_api::trash`] has the layout and the rules): the hour
//! directory, found or made inside the deleting transaction, and the move of a victim into
//! it.

use crate::sql::SqliteConnection;
use meta_api::trash;
use meta_api::{Attr, Context, FileType, Format, Ino, Result, Timestamp, TRASH_INO};

use crate::engine::namespace::{get_edge, insert_edge};
use crate::engine::node::{add_usage, dir_stat, get_node, insert_node, update_node};
use crate::txn::db_err;

/// The hour directory for a deletion at `now`, made (with the trash itself when a volume
/// got trash days without it) in the caller's transaction when it does not exist yet.
pub(crate) async fn hour_dir(c: &mut SqliteConnection, now: Timestamp) -> Result<Ino> {
    let name = trash::hour_name(now.sec);
    if let Some((ino, _)) = get_edge(c, TRASH_INO, name.as_bytes()).await? {
        return Ok(ino);
    }
    if get_node(c, TRASH_INO).await?.is_none() {
        insert_node(c, TRASH_INO, &trash::root_attr(now)).await?;
    }
    let next = crate::sql::query(
        "INSERT INTO jfs_counter (name, value) VALUES (?1, 1) \
         ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value",
    )
    .bind(trash::NEXT_TRASH)
    .fetch_one(&mut *c)
    .await
    .map_err(db_err)?
    .try_get::<i64, _>(0)
    .map_err(db_err)?;
    let ino = trash::hour_ino(u64::try_from(next).unwrap_or(0))?;
    insert_node(c, ino, &trash::hour_attr(now)).await?;
    insert_edge(c, TRASH_INO, name.as_bytes(), ino, FileType::Directory).await?;
    add_usage(c, meta_api::space::align4k(0), 1).await?;
    Ok(ino)
}

/// Where the victim of a deletion goes when [`trash::takes`] it.
pub(crate) enum Fate {
    /// Into this hour directory, under this name.
    Trash(Ino, Vec<u8>),
    /// Deleted for real: not for the trash, or a hard link whose trash entry exists
    /// already (it loses a link, as in JuiceFS).
    Delete,
}

/// Decides the fate of `victim` (`ino`, named `name` in `parent`), making the hour
/// directory if it goes to the trash.
pub(crate) async fn fate(
    c: &mut SqliteConnection,
    (fmt, ctx): (&Format, &Context),
    parent: Ino,
    name: &[u8],
    ino: Ino,
    victim: &Attr,
    now: Timestamp,
) -> Result<Fate> {
    if !trash::takes(fmt, ctx, parent, victim) {
        return Ok(Fate::Delete);
    }
    let hour = hour_dir(c, now).await?;
    let tname = trash::entry_name(parent, ino, name);
    if !victim.is_dir() && victim.nlink > 1 && get_edge(c, hour, &tname).await?.is_some() {
        return Ok(Fate::Delete);
    }
    Ok(Fate::Trash(hour, tname))
}

/// Puts `ino` (attributes `victim`, its old entry already gone) into hour directory `hour`
/// as `tname`: link count unchanged, parent the hour directory unless it is a hard-linked
/// file, ctime `now`; the hour directory's statistics grow.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn put(
    c: &mut SqliteConnection,
    fmt: &Format,
    hour: Ino,
    tname: &[u8],
    ino: Ino,
    mut victim: Attr,
    now: Timestamp,
) -> Result<()> {
    insert_edge(c, hour, tname, ino, victim.typ).await?;
    victim.ctime = now;
    if victim.is_dir() || victim.parent != 0 {
        victim.parent = hour;
    }
    update_node(c, ino, &victim).await?;
    let (len, space) = meta_api::space::entry_usage(victim.typ, victim.length);
    dir_stat(c, fmt, hour, len, space, 1).await
}
