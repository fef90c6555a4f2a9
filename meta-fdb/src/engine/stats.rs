//! JuiceFS's directory statistics on the TKV engine: `U{ino}` → 24 bytes BE (data length,
//! space, entries), kept exact in the transaction of every change. A directory without the
//! key (made by an old client) is left without: JuiceFS recomputes missing statistics
//! when asked, and [`sync_dir_stat`](meta_api::MetaEngine::sync_dir_stat) stores them.

use std::collections::BTreeMap;

use meta_api::space::{align4k, entry_usage};
use meta_api::upkeep::DirStat;
use meta_api::{Attr, FileType, Ino, MetaError, Result};

use crate::keys::{be_u64, le_u64, Keys};
use crate::kv::KvTxn;

/// The 24-byte value of a directory's statistics.
pub(crate) fn encode(s: &DirStat) -> [u8; 24] {
    let mut b = [0u8; 24];
    b[..8].copy_from_slice(&s.length.to_be_bytes());
    b[8..16].copy_from_slice(&s.space.to_be_bytes());
    b[16..].copy_from_slice(&s.inodes.to_be_bytes());
    b
}

/// Decodes a directory's statistics (`Corrupt` unless 24 bytes).
pub(crate) fn decode(ino: Ino, v: &[u8]) -> Result<DirStat> {
    let n = |at| be_u64(v, at).map(|x| x as i64);
    match (v.len(), n(0), n(8), n(16)) {
        (24, Some(length), Some(space), Some(inodes)) => Ok(DirStat {
            length,
            space,
            inodes,
        }),
        _ => Err(MetaError::Corrupt(format!(
            "statistics of directory {ino} hold {} bytes, not 24",
            v.len()
        ))),
    }
}

/// The changes one transaction makes to directory statistics, merged per directory.
#[derive(Default)]
pub(crate) struct StatDelta(BTreeMap<Ino, (i64, i64, i64)>);

impl StatDelta {
    /// `n` entries like `attr` (negative: removed) in `dir`.
    pub(crate) fn entry(&mut self, dir: Ino, attr: &Attr, n: i64) -> &mut Self {
        self.add(dir, attr.typ, attr.length, n)
    }

    /// `n` entries of type `typ` and `length` bytes (negative: removed) in `dir`.
    pub(crate) fn add(&mut self, dir: Ino, typ: FileType, length: u64, n: i64) -> &mut Self {
        let (len, space) = entry_usage(typ, length);
        let e = self.0.entry(dir).or_default();
        e.0 += len * n;
        e.1 += space * n;
        e.2 += n;
        self
    }

    /// A file in `dir` grown or shrunk from `old` to `new` bytes.
    pub(crate) fn resize(&mut self, dir: Ino, old: u64, new: u64) -> &mut Self {
        let e = self.0.entry(dir).or_default();
        e.0 += new as i64 - old as i64;
        e.1 += align4k(new) - align4k(old);
        self
    }

    /// Writes the changes into `tx` when the volume keeps statistics (`on`).
    pub(crate) async fn apply<T: KvTxn>(&self, tx: &T, keys: &Keys, on: bool) -> Result<()> {
        if !on {
            return Ok(());
        }
        for (&dir, &(l, s, n)) in &self.0 {
            if (l, s, n) == (0, 0, 0) {
                continue;
            }
            let key = keys.dir_stat(dir);
            let Some(v) = tx.get(&key).await? else {
                continue;
            };
            let mut st = decode(dir, &v)?;
            st.length = st.length.saturating_add(l);
            st.space = st.space.saturating_add(s);
            st.inodes = st.inodes.saturating_add(n);
            tx.set(&key, &encode(&st));
        }
        Ok(())
    }
}

/// The directories that name file `ino` (attributes `attr`): its parent, or for a
/// hard-linked file every directory whose link count for it is positive, once per name
/// there (a change of the file counts once for each of its names, as its links did).
pub(crate) async fn file_dirs<T: KvTxn>(
    tx: &T,
    keys: &Keys,
    ino: Ino,
    attr: &Attr,
) -> Result<Vec<Ino>> {
    if attr.parent > 0 {
        return Ok(vec![attr.parent]);
    }
    let prefix = keys.parents(ino);
    let end = Keys::end_of(&prefix);
    let counts = tx
        .scan(&prefix, &end, usize::MAX, false)
        .await?
        .into_iter()
        .filter_map(|(k, v)| Some((le_u64(&k, prefix.len())?, le_u64(&v, 0)? as i64)));
    Ok(meta_api::upkeep::dirs_per_name(counts, attr.nlink))
}

/// Queues in `d` the change of file `ino` growing or shrinking from `old` to `new` bytes,
/// in every directory that names it.
pub(crate) async fn resize<T: KvTxn>(
    tx: &T,
    keys: &Keys,
    d: &mut StatDelta,
    (ino, attr): (Ino, &Attr),
    old: u64,
    new: u64,
) -> Result<()> {
    if old == new {
        return Ok(());
    }
    for dir in file_dirs(tx, keys, ino, attr).await? {
        d.resize(dir, old, new);
    }
    Ok(())
}
