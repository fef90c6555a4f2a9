//! The trash on the TKV engine ([`meta_api::trash`] has the layout and the rules): the
//! hour directory, found or made inside the deleting transaction, and the move of a victim
//! into it (a hard-linked file's parent counts in `A{ino}P{parent}`).

use meta_api::encoding::encode_entry;
use meta_api::space::align4k;
use meta_api::trash;
use meta_api::{Attr, Context, FileType, Format, Ino, Result, Timestamp, TRASH_INO};

use super::stats::{self, StatDelta};
use super::{add_usage, get_attr, get_entry, incr, put_attr};
use crate::keys::Keys;
use crate::kv::KvTxn;

/// The hour directory for a deletion at `now`, made in `tx` (with the trash itself when a
/// volume got trash days without it) when it does not exist yet.
async fn hour_dir<T: KvTxn>(tx: &T, keys: &Keys, now: Timestamp) -> Result<Ino> {
    let name = trash::hour_name(now.sec);
    if let Some((_, ino)) = get_entry(tx, keys, TRASH_INO, name.as_bytes()).await? {
        return Ok(ino);
    }
    if get_attr(tx, keys, TRASH_INO).await?.is_none() {
        put_attr(tx, keys, TRASH_INO, &trash::root_attr(now));
    }
    let next = incr(tx, &keys.counter(trash::NEXT_TRASH), 1).await?;
    let ino = trash::hour_ino(u64::try_from(next).unwrap_or(0))?;
    put_attr(tx, keys, ino, &trash::hour_attr(now));
    tx.set(&keys.dir_stat(ino), &stats::encode(&Default::default()));
    tx.set(
        &keys.entry(TRASH_INO, name.as_bytes()),
        &encode_entry(FileType::Directory, ino),
    );
    add_usage(tx, keys, align4k(0), 1);
    Ok(ino)
}

/// Where the victim of a deletion goes: `Some((hour directory, entry name))` for the
/// trash, `None` to delete it for real (not for the trash, or a hard link whose trash entry
/// exists already: it loses a link, as in JuiceFS).
pub(crate) async fn fate<T: KvTxn>(
    tx: &T,
    keys: &Keys,
    (fmt, ctx): (&Format, &Context),
    (parent, name): (Ino, &[u8]),
    ino: Ino,
    victim: &Attr,
    now: Timestamp,
) -> Result<Option<(Ino, Vec<u8>)>> {
    if !trash::takes(fmt, ctx, parent, victim) {
        return Ok(None);
    }
    let hour = hour_dir(tx, keys, now).await?;
    let tname = trash::entry_name(parent, ino, name);
    if !victim.is_dir() && victim.nlink > 1 && get_entry(tx, keys, hour, &tname).await?.is_some() {
        return Ok(None);
    }
    Ok(Some((hour, tname)))
}

/// Puts `ino` (attributes `victim`, its entry in `parent` already gone) into the trash as
/// `tname` in `hour`: link count unchanged, parent the hour directory unless it is a
/// hard-linked file (whose parent counts move instead), ctime `now`; the hour directory's
/// statistics grow (in `d`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn put<T: KvTxn>(
    tx: &T,
    keys: &Keys,
    d: &mut StatDelta,
    (hour, tname): (Ino, &[u8]),
    parent: Ino,
    ino: Ino,
    mut victim: Attr,
    now: Timestamp,
) {
    tx.set(&keys.entry(hour, tname), &encode_entry(victim.typ, ino));
    victim.ctime = now;
    if victim.is_dir() || victim.parent != 0 {
        victim.parent = hour;
    } else {
        tx.atomic_add(&keys.parent(ino, hour), 1);
        tx.atomic_add(&keys.parent(ino, parent), -1);
    }
    d.entry(hour, &victim, 1);
    put_attr(tx, keys, ino, &victim);
}
