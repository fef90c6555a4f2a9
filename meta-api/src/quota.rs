//! Quotas (JuiceFS 1.x): directory quotas, user and group quotas, checked and charged in
//! the transaction of the change that uses them.
//!
//! **Records** (JuiceFS's, so that juicefs clients see and keep the same numbers): SQL
//! `jfs_dir_quota(inode, max_space, max_inodes, used_space, used_inodes)` and
//! `jfs_user_group_quota(qtype 1 user / 2 group, qkey, …)`; Redis `dirQuota` (inode → 16
//! bytes BE max space, max inodes) with `dirQuotaUsedSpace`/`dirQuotaUsedInodes`, and
//! `userQuota`/`groupQuota` with their `…UsedSpace`/`…UsedInodes`; TKV `QD{ino}`,
//! `QU{uid}`, `QG{gid}` → 32 bytes BE (max space, max inodes, used space, used inodes).
//!
//! **What counts** ([`crate::space::entry_usage`]): 4 KiB and one inode per entry, a regular
//! file's space its length rounded up to 4 KiB. A directory's quota counts its subtree, not
//! the directory itself. User and group usage is tracked for every owner while the volume's
//! `UserGroupQuota` setting is on (a record with no limit, `-1`, holds it).
//!
//! **The check** ([`Charge`]), in JuiceFS's order: the user's and the group's quota
//! (`EDQUOT`), the volume's capacity and inode limit (`ENOSPC`, [`crate::Limits`]), then
//! the quota of every ancestor directory that has one (`EDQUOT`); a limit ≤ 0 is none, and
//! only growth is refused (`used + delta > max`). A refused change changes nothing.
//!
//! **Usage** is added in the same transaction as the change, so it is never lost between
//! heartbeats and never driven below zero (JuiceFS flushes deltas every 3 s, and can lose or
//! drive them negative: its issues #4107 and #7079). A directory in the trash is under no
//! quota: the walk up stops at the trash, and a deletion into the trash frees the
//! directories' usage (not the owner's, which the file still takes until the cleanup).

use async_trait::async_trait;

use crate::{Format, Ino, MetaError, Result, ROOT_INO};

/// Which quota: the numbers are JuiceFS's `qtype`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QuotaKind {
    /// A directory's (the key is its inode).
    Dir = 0,
    /// A user's (the key is the uid).
    User = 1,
    /// A group's (the key is the gid).
    Group = 2,
}

/// One quota: its limits and what is used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    /// Bytes allowed; ≤ 0 is no limit.
    pub max_space: i64,
    /// Inodes allowed; ≤ 0 is no limit.
    pub max_inodes: i64,
    /// Bytes used.
    pub used_space: i64,
    /// Inodes used.
    pub used_inodes: i64,
}

impl Quota {
    /// A quota with no limits (JuiceFS writes `-1`), tracking usage only.
    pub const UNLIMITED: Quota = Quota {
        max_space: -1,
        max_inodes: -1,
        used_space: 0,
        used_inodes: 0,
    };

    /// Whether growing by `space` bytes and `inodes` inodes passes a limit.
    pub fn exceeded_by(&self, space: i64, inodes: i64) -> bool {
        (space > 0 && self.max_space > 0 && self.used_space.saturating_add(space) > self.max_space)
            || (inodes > 0
                && self.max_inodes > 0
                && self.used_inodes.saturating_add(inodes) > self.max_inodes)
    }

    /// Adds `space` and `inodes` to what is used, never below zero.
    pub fn add(&mut self, space: i64, inodes: i64) {
        self.used_space = self.used_space.saturating_add(space).max(0);
        self.used_inodes = self.used_inodes.saturating_add(inodes).max(0);
    }
}

/// What an engine's transaction gives the quota rules: reads of the records a change
/// needs and the write of new usage, inside the change's transaction.
#[async_trait]
pub trait QuotaTxn: Send {
    /// Whether the volume has any directory quota (a cheap read that spares the walk).
    async fn any_dir_quota(&mut self) -> Result<bool>;
    /// The parent of directory `ino`; `None` when it is missing.
    async fn dir_parent(&mut self, ino: Ino) -> Result<Option<Ino>>;
    /// The quota `key` of `kind`, if there is one.
    async fn quota(&mut self, kind: QuotaKind, key: u64) -> Result<Option<Quota>>;
    /// Stores the quota `key` of `kind` (created when missing).
    async fn put_quota(&mut self, kind: QuotaKind, key: u64, q: &Quota) -> Result<()>;
    /// Whether directory `ino` has no entries.
    async fn is_empty_dir(&mut self, ino: Ino) -> Result<bool>;
}

/// Deepest directory chain walked up (a longer one means a cycle in corrupt metadata).
const MAX_DEPTH: usize = 100_000;

/// The directories with a quota over the entries of directory `dir`: `dir` and its
/// ancestors up to the root, with their quotas; none when `dir` is in the trash.
pub async fn dir_quotas(txn: &mut dyn QuotaTxn, dir: Ino) -> Result<Vec<(Ino, Quota)>> {
    let mut out = Vec::new();
    if !txn.any_dir_quota().await? {
        return Ok(out);
    }
    let mut cur = dir;
    for _ in 0..MAX_DEPTH {
        if crate::trash::is_trash(cur) {
            return Ok(Vec::new());
        }
        if let Some(q) = txn.quota(QuotaKind::Dir, cur).await? {
            out.push((cur, q));
        }
        if cur == ROOT_INO {
            return Ok(out);
        }
        match txn.dir_parent(cur).await? {
            Some(p) if p != 0 => cur = p,
            _ => return Ok(out),
        }
    }
    Err(MetaError::Corrupt(format!(
        "directory {dir} is more than {MAX_DEPTH} levels deep or in a loop"
    )))
}

/// One change's charge against the quotas: `space` bytes and `inodes` inodes (negative:
/// freed) for the owner `(uid, gid)` when it counts, and in directories `dirs` (each
/// counts once even if listed twice: the parents of a hard-linked file).
#[derive(Debug, Clone, Default)]
pub struct Charge {
    /// Bytes.
    pub space: i64,
    /// Inodes.
    pub inodes: i64,
    /// The owner charged, `None` when the owner's usage does not change.
    pub owner: Option<(u32, u32)>,
    /// The directories whose entries change.
    pub dirs: Vec<Ino>,
}

/// The quotas one change touches, read in its transaction: checked, then charged.
#[derive(Debug, Default)]
pub struct Charged {
    user_group: Vec<(QuotaKind, u64, Quota)>,
    dirs: Vec<(Ino, Quota)>,
    space: i64,
    inodes: i64,
}

impl Charge {
    /// A charge of `space` and `inodes` for the owner and the directories.
    pub fn new(space: i64, inodes: i64, owner: Option<(u32, u32)>, dirs: Vec<Ino>) -> Charge {
        Charge {
            space,
            inodes,
            owner,
            dirs,
        }
    }

    /// Reads the quotas the charge touches on a volume with settings `fmt`, and refuses it
    /// (`EDQUOT`) if the owner's or group's would be exceeded. Call
    /// [`Charged::check_dirs`] after the volume's own limits, then [`Charged::apply`].
    pub async fn read(&self, txn: &mut dyn QuotaTxn, fmt: &Format) -> Result<Charged> {
        let mut out = Charged {
            space: self.space,
            inodes: self.inodes,
            ..Charged::default()
        };
        if self.space == 0 && self.inodes == 0 {
            return Ok(out);
        }
        if let (Some((uid, gid)), true) = (self.owner, user_group_quota(fmt)) {
            for (kind, key) in [(QuotaKind::User, uid), (QuotaKind::Group, gid)] {
                let q = txn
                    .quota(kind, u64::from(key))
                    .await?
                    .unwrap_or(Quota::UNLIMITED);
                if q.exceeded_by(self.space, self.inodes) {
                    return Err(MetaError::QuotaExceeded);
                }
                out.user_group.push((kind, u64::from(key), q));
            }
        }
        if fmt.dir_stats {
            let mut seen = std::collections::BTreeSet::new();
            for &d in &self.dirs {
                for (ino, q) in dir_quotas(txn, d).await? {
                    if seen.insert(ino) {
                        out.dirs.push((ino, q));
                    }
                }
            }
        }
        Ok(out)
    }
}

impl Charged {
    /// Refuses (`EDQUOT`) a growth past the quota of a directory it touches.
    pub fn check_dirs(&self) -> Result<()> {
        if self
            .dirs
            .iter()
            .any(|(_, q)| q.exceeded_by(self.space, self.inodes))
        {
            return Err(MetaError::QuotaExceeded);
        }
        Ok(())
    }

    /// Writes the new usage of every quota it touches.
    pub async fn apply(self, txn: &mut dyn QuotaTxn) -> Result<()> {
        if self.space == 0 && self.inodes == 0 {
            return Ok(());
        }
        for (kind, key, mut q) in self.user_group {
            q.add(self.space, self.inodes);
            txn.put_quota(kind, key, &q).await?;
        }
        for (ino, mut q) in self.dirs {
            q.add(self.space, self.inodes);
            txn.put_quota(QuotaKind::Dir, ino, &q).await?;
        }
        Ok(())
    }
}

/// Whether the volume tracks user and group usage (JuiceFS's `UserGroupQuota` setting).
pub fn user_group_quota(fmt: &Format) -> bool {
    fmt.extra
        .get("UserGroupQuota")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false)
}

/// Moves usage of `space` bytes and `inodes` inodes from the quotas over directory `from`
/// to those over `to` (a rename): the directories over both keep theirs; a quota only over
/// `to` that the growth would exceed refuses it (`EDQUOT`) before anything is written.
pub async fn move_usage(
    txn: &mut dyn QuotaTxn,
    fmt: &Format,
    from: Ino,
    to: Ino,
    space: i64,
    inodes: i64,
) -> Result<()> {
    if !fmt.dir_stats || from == to || (space == 0 && inodes == 0) {
        return Ok(());
    }
    let src = dir_quotas(txn, from).await?;
    let dst = dir_quotas(txn, to).await?;
    let both: std::collections::BTreeSet<Ino> = src
        .iter()
        .filter(|(i, _)| dst.iter().any(|(j, _)| i == j))
        .map(|(i, _)| *i)
        .collect();
    if dst
        .iter()
        .any(|(i, q)| !both.contains(i) && q.exceeded_by(space, inodes))
    {
        return Err(MetaError::QuotaExceeded);
    }
    for (ino, mut q) in src.into_iter().filter(|(i, _)| !both.contains(i)) {
        q.add(-space, -inodes);
        txn.put_quota(QuotaKind::Dir, ino, &q).await?;
    }
    for (ino, mut q) in dst.into_iter().filter(|(i, _)| !both.contains(i)) {
        q.add(space, inodes);
        txn.put_quota(QuotaKind::Dir, ino, &q).await?;
    }
    Ok(())
}

/// What moving directory `dir` takes from the quotas over its old parent to those over
/// its new one: its subtree's usage and its own entry, known when it has a quota itself or
/// no entries. `None` when neither holds but the quotas over `from` and `to` differ — the
/// move is then refused with `EXDEV`, as Linux does for project quotas (XFS, ext4), so
/// that `mv` copies instead — and `Some((0, 0))` when nothing has to move.
pub async fn dir_move_usage(
    txn: &mut dyn QuotaTxn,
    fmt: &Format,
    dir: Ino,
    from: Ino,
    to: Ino,
) -> Result<Option<(i64, i64)>> {
    if !fmt.dir_stats || from == to || !txn.any_dir_quota().await? {
        return Ok(Some((0, 0)));
    }
    if let Some(q) = txn.quota(QuotaKind::Dir, dir).await? {
        return Ok(Some((
            q.used_space.saturating_add(crate::space::align4k(0)),
            q.used_inodes.saturating_add(1),
        )));
    }
    let src: Vec<Ino> = dir_quotas(txn, from)
        .await?
        .into_iter()
        .map(|x| x.0)
        .collect();
    let dst: Vec<Ino> = dir_quotas(txn, to)
        .await?
        .into_iter()
        .map(|x| x.0)
        .collect();
    if src == dst {
        return Ok(Some((0, 0)));
    }
    if txn.is_empty_dir(dir).await? {
        return Ok(Some((crate::space::align4k(0), 1)));
    }
    Ok(None)
}

/// Moves an inode's usage (`space`, `inodes`) from owner `old` to owner `new` (a chown):
/// the new user's and group's quotas refuse it (`EDQUOT`) if they would be exceeded; an
/// unchanged user or group keeps its usage.
pub async fn move_owner(
    txn: &mut dyn QuotaTxn,
    fmt: &Format,
    (space, inodes): (i64, i64),
    old: (u32, u32),
    new: (u32, u32),
) -> Result<()> {
    if !user_group_quota(fmt) || old == new {
        return Ok(());
    }
    let mut moves = Vec::new();
    for (kind, from, to) in [
        (QuotaKind::User, old.0, new.0),
        (QuotaKind::Group, old.1, new.1),
    ] {
        if from == to {
            continue;
        }
        let (from, to) = (u64::from(from), u64::from(to));
        let src = txn.quota(kind, from).await?.unwrap_or(Quota::UNLIMITED);
        let dst = txn.quota(kind, to).await?.unwrap_or(Quota::UNLIMITED);
        if dst.exceeded_by(space, inodes) {
            return Err(MetaError::QuotaExceeded);
        }
        moves.push((kind, from, src, to, dst));
    }
    for (kind, from, mut src, to, mut dst) in moves {
        src.add(-space, -inodes);
        dst.add(space, inodes);
        txn.put_quota(kind, from, &src).await?;
        txn.put_quota(kind, to, &dst).await?;
    }
    Ok(())
}

/// `statfs` inside a directory quota `q` (JuiceFS's rule): where the quota limits space,
/// its limit is the total and what it leaves the free space; where it limits inodes, the
/// same for inodes; the volume's numbers elsewhere.
pub fn statfs_within(mut fs: crate::StatFs, q: &Quota) -> crate::StatFs {
    let used = |u: i64| u64::try_from(u).unwrap_or(0);
    if q.max_space > 0 {
        fs.total_space = used(q.max_space).max(used(q.used_space));
        fs.avail_space = fs.total_space - used(q.used_space);
    }
    if q.max_inodes > 0 {
        fs.used_inodes = used(q.used_inodes);
        fs.avail_inodes = used(q.max_inodes).saturating_sub(fs.used_inodes);
    }
    fs
}

/// Turns the volume's user and group quotas on (JuiceFS's `UserGroupQuota` setting) in
/// `fmt`, to be stored with a forced `init`.
pub fn set_user_group_quota(fmt: &mut Format, on: bool) {
    fmt.extra
        .insert("UserGroupQuota".into(), serde_json::Value::Bool(on));
}

/// Stores limits `(max space, max inodes)` for quota `key` of `kind` (created when
/// missing, with no usage), and `used` as its usage when given: the body of every engine's
/// `set_quota`, in the engine's transaction.
pub async fn store_limits(
    txn: &mut dyn QuotaTxn,
    kind: QuotaKind,
    key: u64,
    (max_space, max_inodes): (i64, i64),
    used: Option<(i64, i64)>,
) -> Result<()> {
    let mut q = txn.quota(kind, key).await?.unwrap_or(Quota::UNLIMITED);
    q.max_space = max_space;
    q.max_inodes = max_inodes;
    if let Some((space, inodes)) = used {
        q.used_space = space;
        q.used_inodes = inodes;
    }
    txn.put_quota(kind, key, &q).await
}

/// Moves the usage of entry `ino` (attributes `attr`) from the directory quotas over
/// `from` to those over `to` when a rename moves it: a file's own space and inode, a
/// directory's as [`dir_move_usage`] knows it (`EXDEV` when it cannot).
pub async fn move_entry(
    txn: &mut dyn QuotaTxn,
    fmt: &Format,
    (ino, attr): (Ino, &crate::Attr),
    from: Ino,
    to: Ino,
) -> Result<()> {
    if from == to || !fmt.dir_stats {
        return Ok(());
    }
    let (space, inodes) = if attr.is_dir() {
        dir_move_usage(txn, fmt, ino, from, to)
            .await?
            .ok_or(MetaError::CrossDevice)?
    } else {
        (crate::space::entry_usage(attr.typ, attr.length).1, 1)
    };
    move_usage(txn, fmt, from, to, space, inodes).await
}
