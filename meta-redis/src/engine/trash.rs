//! The trash on Redis ([`meta_api::trash`] has the layout and the rules): the hour
//! directory, found or made inside the deleting transaction, and the move of a victim into
//! it (JuiceFS's keys: the hour directory's entries in `d{hour}`, a hard-linked file's
//! parent counts in `p{ino}`).

use meta_api::encoding::encode_entry;
use meta_api::space::align4k;
use meta_api::trash;
use meta_api::{Attr, Context, FileType, Format, Ino, Result, Timestamp, TRASH_INO};

use super::{entry_usage, DirStats, RedisMeta, Writes};
use crate::txn::Tx;

/// Where the victim of a deletion goes.
pub(crate) enum Fate {
    /// Into the hour directory (made by this transaction when `new`), under this name.
    Trash { hour: Ino, name: Vec<u8>, new: bool },
    /// Deleted for real: not for the trash, or a hard link whose trash entry exists
    /// already (it loses a link, as in JuiceFS).
    Delete,
}

impl RedisMeta {
    /// The hour directory for a deletion at `now`: watched and read, or queued for
    /// creation in `w` (with the trash itself when a volume got trash days without it).
    /// The `nextTrash` counter is bumped at once, outside the transaction, so a retried
    /// transaction skips a number (JuiceFS does the same).
    async fn hour_dir(&self, tx: &mut Tx, w: &mut Writes, now: Timestamp) -> Result<(Ino, bool)> {
        let k = &self.keys;
        let name = trash::hour_name(now.sec);
        tx.watch(&[k.entries(TRASH_INO), k.inode(TRASH_INO)])
            .await?;
        if let Some((_, ino)) = tx.entry(TRASH_INO, name.as_bytes()).await? {
            return Ok((ino, false));
        }
        if tx.attr(TRASH_INO).await?.is_none() {
            w.set_attr(k, TRASH_INO, &trash::root_attr(now));
        }
        let next: i64 = tx
            .cmd(redis::cmd("INCR").arg(k.counter(trash::NEXT_TRASH)))
            .await?;
        let ino = trash::hour_ino(u64::try_from(next).unwrap_or(0))?;
        w.set_attr(k, ino, &trash::hour_attr(now)).hset(
            k.entries(TRASH_INO),
            name.as_bytes(),
            &encode_entry(FileType::Directory, ino),
        );
        w.incrby(k.used_space(), align4k(0))
            .incrby(k.total_inodes(), 1);
        Ok((ino, true))
    }

    /// Decides the fate of `victim` (`ino`, named `name` in `parent`), queueing the hour
    /// directory's creation if it goes to a new one.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn fate(
        &self,
        tx: &mut Tx,
        w: &mut Writes,
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
        let (hour, new) = self.hour_dir(tx, w, now).await?;
        let tname = trash::entry_name(parent, ino, name);
        if !new && !victim.is_dir() && victim.nlink > 1 {
            tx.watch(&[self.keys.entries(hour)]).await?;
            if tx.entry(hour, &tname).await?.is_some() {
                return Ok(Fate::Delete);
            }
        }
        Ok(Fate::Trash {
            hour,
            name: tname,
            new,
        })
    }

    /// Queues the move of `ino` (attributes `victim`, named `name` in `parent` until this
    /// transaction) into the trash: link count unchanged, parent the hour directory unless
    /// it is a hard-linked file (whose `p{ino}` counts move instead), ctime `now`; the hour
    /// directory's statistics grow. The caller removes the old entry and updates `parent`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn put_in_trash(
        &self,
        tx: &mut Tx,
        w: &mut Writes,
        (hour, tname, new): (Ino, &[u8], bool),
        parent: Ino,
        ino: Ino,
        mut victim: Attr,
        now: Timestamp,
    ) -> Result<()> {
        let k = &self.keys;
        w.hset(k.entries(hour), tname, &encode_entry(victim.typ, ino));
        victim.ctime = now;
        if victim.is_dir() || victim.parent != 0 {
            victim.parent = hour;
        } else {
            w.hincrby(k.parents(ino), hour.to_string().as_bytes(), 1);
            w.hincrby(k.parents(ino), parent.to_string().as_bytes(), -1);
        }
        w.set_attr(k, ino, &victim);
        let usage = entry_usage(&victim);
        if new {
            if self.settings().await?.dir_stats {
                let st = meta_api::upkeep::DirStat {
                    length: usage.0,
                    space: usage.1,
                    inodes: 1,
                };
                w.set_dir_stat(k, hour, &st);
            }
            return Ok(());
        }
        let mut st = DirStats::default();
        st.entry(hour, usage, 1);
        self.write_dir_stats(tx, w, &st).await
    }
}
