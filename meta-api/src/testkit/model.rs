//! The reference model: a plain in-memory [`MetaEngine`] that is obviously correct rather
//! than fast. One mutex guards the whole volume (`BTreeMap`s of inodes, sessions, the
//! deletion queue and slice reference counts); clients of one volume share it through an
//! `Arc`, each with its own session id and [`OpenFiles`].
//!
//! It passes the conformance suite and is the oracle of the property test. Where the
//! contract leaves a choice, the model's behaviour is the contract (see the error order in
//! [`crate::testkit`]).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use super::{Harness, TestVolume};
use crate::acl::AclType;
use crate::locks::LockWait;
use crate::name::{validate_name, validate_symlink_target};
use crate::quota::{self, Quota, QuotaKind};
use crate::space::Usage;
use crate::trash;
use crate::upkeep::{DirStat, Recount, SliceListing};
use crate::{
    access, Attr, Context, DeletedFile, DirEntry, Entry, FallocMode, FileType, Format, Heartbeat,
    Ino, LockOwner, LockType, MetaEngine, MetaError, OpenFiles, PlockRequest, RenameFlags, Result,
    Session, SessionInfo, SetAttr, SetTime, Slice, StatFs, Timestamp, XattrFlags, CHUNK_SIZE,
    MAX_FILE_SIZE, MAX_XATTR_NAME_LEN, MAX_XATTR_VALUE_LEN, ROOT_INO, SESSION_TTL_SECS, TRASH_INO,
};

mod acl;
mod layout;
mod locks;
mod perm;

/// Capacity reported when the volume sets none (1 PiB).
const UNLIMITED_SPACE: u64 = 1 << 50;
/// Inode count reported as available when the volume sets no limit (10 Mi).
const UNLIMITED_INODES: u64 = 10 << 20;

/// One inode of the model.
#[derive(Debug, Clone)]
struct Node {
    attr: Attr,
    /// Directory entries (directories only), in byte order.
    entries: BTreeMap<Vec<u8>, Ino>,
    /// Symlink target (symlinks only).
    target: Vec<u8>,
    /// Slices of each chunk in write order (regular files only).
    chunks: BTreeMap<u32, Vec<Slice>>,
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Node {
    fn new(attr: Attr) -> Node {
        Node {
            attr,
            entries: BTreeMap::new(),
            target: Vec::new(),
            chunks: BTreeMap::new(),
            xattrs: BTreeMap::new(),
        }
    }
}

/// A registered session.
#[derive(Debug, Clone)]
struct SessionRec {
    info: SessionInfo,
    expire: i64,
    /// Inodes this session has open; those with no links left are the sustained ones.
    open: BTreeSet<Ino>,
}

/// A file waiting for [`MetaEngine::purge_file`]: its inode is gone, its chunks are not.
#[derive(Debug, Clone)]
struct Deleted {
    length: u64,
    chunks: BTreeMap<u32, Vec<Slice>>,
}

/// Reference count of one slice object.
#[derive(Debug, Clone, Copy)]
struct SliceRef {
    size: u32,
    refs: u32,
}

/// The whole volume.
#[derive(Debug, Default)]
struct State {
    format: Option<Format>,
    next_ino: Ino,
    next_slice: u64,
    next_sid: u64,
    nodes: BTreeMap<Ino, Node>,
    sessions: BTreeMap<u64, SessionRec>,
    deleted: BTreeMap<Ino, Deleted>,
    /// Every slice's references; a slice at 0 is pending until it is forgotten.
    refs: BTreeMap<u64, SliceRef>,
    /// Slices a compaction replaced on a volume with trash days: when, and `(id, size)`.
    delayed: Vec<(i64, Vec<(u64, u32)>)>,
    /// The trash's counter: the last hour directory is `TRASH_INO + next_trash`.
    next_trash: u64,
    /// Quotas by kind and key.
    quotas: BTreeMap<(QuotaKind, u64), Quota>,
    /// The job-election counters (Unix seconds of the last run).
    counters: BTreeMap<&'static str, u64>,
    /// BSD locks of each inode.
    flocks: BTreeMap<Ino, locks::Flocks>,
    /// POSIX locks of each inode: every owner's ranges.
    plocks: BTreeMap<Ino, locks::Plocks>,
    /// Stored POSIX ACL rules.
    acls: acl::AclTable,
    /// Detached clones and when each was started.
    detached: BTreeMap<Ino, i64>,
}

fn now() -> Timestamp {
    Timestamp::now()
}

fn not_found<T>() -> Result<T> {
    Err(MetaError::NotFound)
}

impl State {
    fn formatted(&self) -> Result<()> {
        match self.format {
            Some(_) => Ok(()),
            None => Err(MetaError::NotFormatted),
        }
    }

    fn node(&self, ino: Ino) -> Result<&Node> {
        self.nodes.get(&ino).ok_or(MetaError::NotFound)
    }

    fn node_mut(&mut self, ino: Ino) -> Result<&mut Node> {
        self.nodes.get_mut(&ino).ok_or(MetaError::NotFound)
    }

    fn attr(&self, ino: Ino) -> Result<Attr> {
        Ok(self.node(ino)?.attr.clone())
    }

    /// The directory `ino` (`NotFound`, `NotDir`).
    fn dir(&self, ino: Ino) -> Result<&Node> {
        let n = self.node(ino)?;
        if n.attr.typ != FileType::Directory {
            return Err(MetaError::NotDir);
        }
        Ok(n)
    }

    /// The regular file `ino` (`NotFound`, `IsDir`, `InvalidArgument`).
    fn regular(&self, ino: Ino) -> Result<&Node> {
        let n = self.node(ino)?;
        match n.attr.typ {
            FileType::Regular => Ok(n),
            FileType::Directory => Err(MetaError::IsDir),
            _ => Err(MetaError::InvalidArgument("not a regular file")),
        }
    }

    fn child(&self, parent: Ino, name: &[u8]) -> Option<Ino> {
        self.nodes.get(&parent)?.entries.get(name).copied()
    }

    fn entry(&self, ino: Ino) -> Result<Entry> {
        Ok(Entry {
            ino,
            attr: self.attr(ino)?,
        })
    }

    fn is_open(&self, ino: Ino) -> bool {
        self.sessions.values().any(|s| s.open.contains(&ino))
    }

    /// Sets mtime and ctime of a directory whose entries changed.
    fn touch(&mut self, ino: Ino, t: Timestamp) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.attr.mtime = t;
            n.attr.ctime = t;
        }
    }

    fn add_nlink(&mut self, ino: Ino, delta: i32) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.attr.nlink = n.attr.nlink.saturating_add_signed(delta);
        }
    }

    /// Whether `anc` is `ino` or one of its ancestors.
    fn is_ancestor(&self, anc: Ino, ino: Ino) -> bool {
        let mut cur = ino;
        for _ in 0..=self.nodes.len() {
            if cur == anc {
                return true;
            }
            if cur == ROOT_INO {
                return false;
            }
            match self.nodes.get(&cur) {
                Some(n) => cur = n.attr.parent,
                None => return false,
            }
        }
        false
    }

    /// Drops one link of a non-directory; the last one releases the inode.
    fn drop_link(&mut self, ino: Ino, t: Timestamp) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.attr.nlink = n.attr.nlink.saturating_sub(1);
            n.attr.ctime = t;
        }
        self.release(ino);
    }

    /// Deletes an inode that has no links and is open nowhere; a regular file's chunks go
    /// to the deletion queue.
    fn release(&mut self, ino: Ino) {
        let gone = match self.nodes.get(&ino) {
            Some(n) => n.attr.nlink == 0 && n.attr.typ != FileType::Directory,
            None => false,
        };
        if !gone || self.is_open(ino) {
            return;
        }
        if let Some(n) = self.nodes.remove(&ino) {
            if n.attr.typ == FileType::Regular {
                self.deleted.insert(
                    ino,
                    Deleted {
                        length: n.attr.length,
                        chunks: n.chunks,
                    },
                );
            }
        }
    }

    /// Whether deleting `victim` from `parent` moves it into the trash.
    fn to_trash(&self, ctx: &Context, parent: Ino, victim: &Attr) -> bool {
        let days = self.format.as_ref().map_or(0, |f| f.trash_days);
        let skips = ctx.skip_trash && ctx.uid == 0;
        days > 0 && parent < TRASH_INO && victim.flags & trash::SKIP_TRASH == 0 && !skips
    }

    /// The hour directory of the trash for a deletion at `t`, made when missing.
    fn trash_hour(&mut self, t: Timestamp) -> Result<Ino> {
        let name = trash::hour_name(t.sec).into_bytes();
        self.nodes
            .entry(TRASH_INO)
            .or_insert_with(|| Node::new(trash_root(t)));
        if let Some(ino) = self.child(TRASH_INO, &name) {
            return Ok(ino);
        }
        self.next_trash += 1;
        let ino = TRASH_INO + self.next_trash;
        let mut a = Attr::new(FileType::Directory, 0o555, 0, 0, t);
        a.nlink = 2;
        a.length = 4096;
        a.parent = TRASH_INO;
        self.nodes.insert(ino, Node::new(a));
        self.node_mut(TRASH_INO)?.entries.insert(name, ino);
        Ok(ino)
    }

    /// Moves `ino`, whose entry `name` in `parent` is already gone, into the trash's hour
    /// directory; a hard-linked file whose trash entry exists loses a link instead.
    fn move_to_trash(&mut self, parent: Ino, name: &[u8], ino: Ino, t: Timestamp) -> Result<()> {
        let hour = self.trash_hour(t)?;
        let tname = trash::entry_name(parent, ino, name);
        let a = self.attr(ino)?;
        if a.typ != FileType::Directory && a.nlink > 1 && self.child(hour, &tname).is_some() {
            self.drop_link(ino, t);
            return Ok(());
        }
        self.node_mut(hour)?.entries.insert(tname, ino);
        let n = self.node_mut(ino)?;
        n.attr.ctime = t;
        if n.attr.parent != 0 {
            n.attr.parent = hour;
        }
        Ok(())
    }

    /// The directories with a quota over the entries of `dir` (none inside the trash).
    fn quota_dirs(&self, dir: Ino) -> Vec<Ino> {
        let mut out = Vec::new();
        let mut cur = dir;
        for _ in 0..=self.nodes.len() {
            if cur >= TRASH_INO {
                return Vec::new();
            }
            if self.quotas.contains_key(&(QuotaKind::Dir, cur)) {
                out.push(cur);
            }
            match self.nodes.get(&cur) {
                Some(n) if cur != ROOT_INO && n.attr.parent != 0 => cur = n.attr.parent,
                _ => break,
            }
        }
        out
    }

    /// The directories naming file `ino`, once per name.
    fn file_dirs(&self, ino: Ino) -> Vec<Ino> {
        self.nodes
            .iter()
            .flat_map(|(&d, n)| {
                let names = n.entries.values().filter(|&&i| i == ino).count();
                std::iter::repeat_n(d, names)
            })
            .collect()
    }

    /// Checks (`EDQUOT`: owner first, then directories) and charges `space` and `inodes`
    /// for `owner` and the quotas over `dirs`.
    fn charge(
        &mut self,
        (space, inodes): (i64, i64),
        owner: Option<(u32, u32)>,
        dirs: &[Ino],
    ) -> Result<()> {
        let Some(fmt) = self.format.clone() else {
            return Ok(());
        };
        let mut keys = Vec::new();
        if let (Some((uid, gid)), true) = (owner, quota::user_group_quota(&fmt)) {
            keys.push((QuotaKind::User, u64::from(uid)));
            keys.push((QuotaKind::Group, u64::from(gid)));
        }
        if fmt.dir_stats {
            let mut seen = BTreeSet::new();
            for &d in dirs {
                for q in self.quota_dirs(d) {
                    if seen.insert(q) {
                        keys.push((QuotaKind::Dir, q));
                    }
                }
            }
        }
        for k in &keys {
            let q = self.quotas.get(k).copied().unwrap_or(Quota::UNLIMITED);
            if q.exceeded_by(space, inodes) {
                return Err(MetaError::QuotaExceeded);
            }
        }
        for k in keys {
            self.quotas
                .entry(k)
                .or_insert(Quota::UNLIMITED)
                .add(space, inodes);
        }
        Ok(())
    }

    /// Moves the usage of inode `a` to owner `new` (`EDQUOT` if the new user's or group's
    /// quota would be exceeded).
    fn move_owner(&mut self, a: &Attr, new: (u32, u32)) -> Result<()> {
        let Some(fmt) = self.format.clone() else {
            return Ok(());
        };
        if !quota::user_group_quota(&fmt) {
            return Ok(());
        }
        let space = space_of(a);
        let mut moves = Vec::new();
        for (kind, from, to) in [
            (QuotaKind::User, a.uid, new.0),
            (QuotaKind::Group, a.gid, new.1),
        ] {
            if from == to {
                continue;
            }
            let (from, to) = (u64::from(from), u64::from(to));
            let q = self
                .quotas
                .get(&(kind, to))
                .copied()
                .unwrap_or(Quota::UNLIMITED);
            if q.exceeded_by(space, 1) {
                return Err(MetaError::QuotaExceeded);
            }
            moves.push((kind, from, to));
        }
        for (kind, from, to) in moves {
            self.quotas
                .entry((kind, from))
                .or_insert(Quota::UNLIMITED)
                .add(-space, -1);
            self.quotas
                .entry((kind, to))
                .or_insert(Quota::UNLIMITED)
                .add(space, 1);
        }
        Ok(())
    }

    /// Moves the usage `(space, inodes)` of an entry from the quotas over directory `from`
    /// to those over `to`, the ones over both keeping theirs (`EDQUOT` if a quota only
    /// over `to` would be exceeded).
    fn move_quota(&mut self, from: Ino, to: Ino, (space, inodes): (i64, i64)) -> Result<()> {
        if from == to || !self.format.as_ref().is_some_and(|f| f.dir_stats) {
            return Ok(());
        }
        let src = self.quota_dirs(from);
        let dst = self.quota_dirs(to);
        for d in dst.iter().filter(|d| !src.contains(d)) {
            if self.quotas[&(QuotaKind::Dir, *d)].exceeded_by(space, inodes) {
                return Err(MetaError::QuotaExceeded);
            }
        }
        for d in src.iter().filter(|d| !dst.contains(d)) {
            if let Some(q) = self.quotas.get_mut(&(QuotaKind::Dir, *d)) {
                q.add(-space, -inodes);
            }
        }
        for d in dst.iter().filter(|d| !src.contains(d)) {
            if let Some(q) = self.quotas.get_mut(&(QuotaKind::Dir, *d)) {
                q.add(space, inodes);
            }
        }
        Ok(())
    }

    /// What an entry `ino` moved by a rename takes from one set of directory quotas to
    /// another: a directory's usage is known only from its own quota (`EXDEV` otherwise,
    /// when the two sets differ).
    fn moved_usage(&self, ino: Ino, a: &Attr, from: Ino, to: Ino) -> Result<(i64, i64)> {
        if !a.is_dir() {
            return Ok((space_of(a), 1));
        }
        if let Some(q) = self.quotas.get(&(QuotaKind::Dir, ino)) {
            return Ok((q.used_space + 4096, q.used_inodes + 1));
        }
        if self.quota_dirs(from) == self.quota_dirs(to) {
            Ok((0, 0))
        } else if self.node(ino)?.entries.is_empty() {
            Ok((4096, 1))
        } else {
            Err(MetaError::CrossDevice)
        }
    }

    /// Charges file `ino` growing or shrinking to `new` bytes.
    fn charge_length(&mut self, ino: Ino, new: u64) -> Result<()> {
        let a = self.attr(ino)?;
        let space = align4k(new) as i64 - align4k(a.length) as i64;
        if space == 0 {
            return Ok(());
        }
        let dirs = self.file_dirs(ino);
        self.charge((space, 0), Some((a.uid, a.gid)), &dirs)
    }

    fn new_ino(&mut self) -> Ino {
        let ino = self.next_ino;
        self.next_ino += 1;
        ino
    }

    /// Creates an inode named `name` in `parent` (the checks of step 2–4 of the error order).
    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        ctx: &Context,
        parent: Ino,
        name: &[u8],
        typ: FileType,
        mode: u16,
        rdev: u32,
        target: &[u8],
    ) -> Result<Entry> {
        refuse_if(parent >= TRASH_INO || (parent == ROOT_INO && name == b".trash"))?;
        let pattr = self.dir(parent)?.attr.clone();
        if pattr.parent > TRASH_INO {
            return not_found();
        }
        self.access(ctx, &pattr, access::W | access::X)?;
        if self.child(parent, name).is_some() {
            return Err(MetaError::Exists);
        }
        refuse_if(immutable(&pattr))?;
        let t = now();
        let new = perm::new_inode(ctx, &pattr, self.default_rule(&pattr), typ, mode);
        self.charge((4096, 1), Some((ctx.uid, new.gid)), &[parent])?;
        let mut attr = Attr::new(typ, new.mode, ctx.uid, new.gid, t);
        attr.parent = parent;
        attr.default_acl = new.default_acl;
        attr.flags = pattr.flags & trash::SKIP_TRASH;
        if let Some(rule) = new.access_rule {
            attr.access_acl = self.save_rule(rule);
        }
        attr.rdev = rdev;
        match typ {
            FileType::Directory => {
                attr.nlink = 2;
                attr.length = 4096;
            }
            FileType::Symlink => attr.length = target.len() as u64,
            _ => {}
        }
        let ino = self.new_ino();
        let mut node = Node::new(attr);
        node.target = target.to_vec();
        self.nodes.insert(ino, node);
        let p = self.node_mut(parent)?;
        p.entries.insert(name.to_vec(), ino);
        if typ == FileType::Directory {
            self.add_nlink(parent, 1);
        }
        self.touch(parent, t);
        self.entry(ino)
    }

    /// Appends hole slices over `from..to` of every existing chunk of `ino` it touches.
    fn punch(&mut self, ino: Ino, from: u64, to: u64) -> Result<()> {
        if from >= to {
            return Ok(());
        }
        let first = (from / CHUNK_SIZE) as u32;
        let last = ((to - 1) / CHUNK_SIZE) as u32;
        let node = self.node_mut(ino)?;
        for (&idx, slices) in node.chunks.range_mut(first..=last) {
            let start = u64::from(idx) * CHUNK_SIZE;
            let lo = from.max(start) - start;
            let hi = to.min(start + CHUNK_SIZE) - start;
            slices.push(Slice {
                pos: lo as u32,
                id: 0,
                size: 0,
                off: 0,
                len: (hi - lo) as u32,
            });
        }
        Ok(())
    }

    /// Sets a regular file's length; a shrink turns the cut-off range into holes.
    fn set_length(&mut self, ino: Ino, length: u64, t: Timestamp) -> Result<()> {
        self.charge_length(ino, length)?;
        let old = self.node(ino)?.attr.length;
        if length < old {
            self.punch(ino, length, old)?;
        }
        let n = self.node_mut(ino)?;
        n.attr.length = length;
        n.attr.mtime = t;
        n.attr.ctime = t;
        Ok(())
    }

    /// Takes one reference from the slice of each record; returns the slices left with
    /// none (they stay pending until forgotten).
    fn drop_refs(&mut self, records: &[Slice]) -> Vec<Slice> {
        let mut freed = BTreeMap::new();
        for s in records.iter().filter(|s| s.id != 0) {
            if let Some(r) = self.refs.get_mut(&s.id) {
                r.refs = r.refs.saturating_sub(1);
                if r.refs == 0 {
                    freed.insert(s.id, r.size);
                }
            }
        }
        freed
            .into_iter()
            .map(|(id, size)| Slice::whole(id, size))
            .collect()
    }

    /// The statistics of directory `ino` computed from its entries.
    fn dir_stat(&self, ino: Ino) -> Result<DirStat> {
        let mut stat = DirStat::default();
        for &child in self.dir(ino)?.entries.values() {
            let n = self.node(child)?;
            stat.add_entry(n.attr.typ, n.attr.length);
        }
        Ok(stat)
    }

    /// Appends a slice record to a chunk, counting a reference to its object.
    fn add_slice(&mut self, ino: Ino, index: u32, s: Slice) -> Result<()> {
        self.node_mut(ino)?.chunks.entry(index).or_default().push(s);
        if s.id != 0 {
            self.add_ref(&s);
        }
        Ok(())
    }

    /// Counts one more reference to the object of slice `s`.
    fn add_ref(&mut self, s: &Slice) {
        self.refs
            .entry(s.id)
            .or_insert(SliceRef {
                size: s.size,
                refs: 0,
            })
            .refs += 1;
    }

    /// The truncate checks shared by `truncate` and `setattr` with a size.
    fn check_truncate(&self, ctx: &Context, ino: Ino, length: u64) -> Result<()> {
        if length > MAX_FILE_SIZE {
            return Err(MetaError::FileTooBig);
        }
        let n = self.regular(ino)?;
        self.access(ctx, &n.attr, access::W)?;
        refuse_if(frozen(&n.attr))
    }

    /// Closes every open inode of session `sid`, drops its locks and forgets the session.
    fn end_session(&mut self, sid: u64) {
        if let Some(s) = self.sessions.remove(&sid) {
            for ino in s.open {
                self.release(ino);
            }
        }
        for owners in self.flocks.values_mut() {
            owners.drop_session(sid);
        }
        self.flocks.retain(|_, owners| !owners.is_empty());
        for owners in self.plocks.values_mut() {
            owners.drop_session(sid);
        }
        self.plocks.retain(|_, owners| !owners.is_empty());
    }

    fn statfs(&self) -> StatFs {
        // JuiceFS counts neither the root nor the trash directory.
        let counted = || {
            self.nodes
                .iter()
                .filter(|(&i, _)| i != ROOT_INO && i != TRASH_INO)
        };
        let used: u64 = counted().map(|(_, n)| align4k(n.attr.length)).sum();
        let inodes = counted().count() as u64;
        let (capacity, max_inodes) = match &self.format {
            Some(f) => (f.capacity, f.inodes),
            None => (0, 0),
        };
        // Unlimited volumes show 1 PiB / 10 Mi inodes, doubled while over 80% used.
        let total = if capacity > 0 {
            capacity.max(used)
        } else {
            let mut t = UNLIMITED_SPACE;
            while (t as u128) * 8 < (used as u128) * 10 {
                t = t.saturating_mul(2);
            }
            t
        };
        let avail_inodes = if max_inodes > 0 {
            max_inodes.saturating_sub(inodes)
        } else {
            let mut a = UNLIMITED_INODES;
            while (inodes as u128) * 10 > (inodes as u128 + a as u128) * 8 {
                a = a.saturating_mul(2);
            }
            a
        };
        StatFs {
            total_space: total,
            avail_space: total.saturating_sub(used),
            used_inodes: inodes,
            avail_inodes,
        }
    }
}

/// The space an entry takes in quotas and statistics.
fn space_of(a: &Attr) -> i64 {
    if a.typ == FileType::Regular {
        align4k(a.length) as i64
    } else {
        4096
    }
}

/// The trash directory of a volume with trash days.
fn trash_root(t: Timestamp) -> Attr {
    let mut trash = Attr::new(FileType::Directory, 0o555, 0, 0, t);
    trash.nlink = 2;
    trash.length = 4096;
    trash.parent = ROOT_INO;
    trash
}

/// `chattr +i`: the inode cannot change.
fn immutable(a: &Attr) -> bool {
    a.flags & 1 != 0
}

/// `chattr +i` or `chattr +a`: the inode cannot be removed, renamed, linked or rewritten.
fn frozen(a: &Attr) -> bool {
    a.flags & 3 != 0
}

/// `EPERM` when `refused`.
fn refuse_if(refused: bool) -> Result<()> {
    if refused {
        Err(MetaError::NotPermitted)
    } else {
        Ok(())
    }
}

/// Space an inode of `length` bytes takes, as JuiceFS counts it (at least one 4 KiB block).
fn align4k(length: u64) -> u64 {
    if length == 0 {
        4096
    } else {
        length.div_ceil(4096) * 4096
    }
}

fn check_xattr_name(name: &[u8]) -> Result<()> {
    if name.is_empty() {
        return Err(MetaError::InvalidArgument("empty xattr name"));
    }
    if name.len() > MAX_XATTR_NAME_LEN {
        return Err(MetaError::NameTooLong);
    }
    Ok(())
}

/// A client of a model volume.
pub struct ModelEngine {
    state: Arc<Mutex<State>>,
    sid: Mutex<Option<u64>>,
    open: OpenFiles,
}

impl std::fmt::Debug for ModelEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelEngine")
            .field("sid", &*self.sid_lock())
            .finish()
    }
}

impl ModelEngine {
    /// A client, without a session, of a new volume that is not formatted yet.
    pub fn unformatted() -> ModelEngine {
        ModelEngine::sharing(Arc::new(Mutex::new(State::default())))
    }

    /// Another client, without a session, of the same volume as `self`.
    pub fn another_client(&self) -> ModelEngine {
        ModelEngine::sharing(self.state.clone())
    }

    fn sharing(state: Arc<Mutex<State>>) -> ModelEngine {
        ModelEngine {
            state,
            sid: Mutex::new(None),
            open: OpenFiles::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a way the
        // suite relies on, so a poisoned lock is used as is.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sid_lock(&self) -> MutexGuard<'_, Option<u64>> {
        self.sid.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The formatted state, locked.
    fn ready(&self) -> Result<MutexGuard<'_, State>> {
        let st = self.lock();
        st.formatted()?;
        Ok(st)
    }

    /// One attempt of a `flock` request.
    fn try_flock(&self, ino: Ino, owner: u64, ltype: LockType) -> Result<()> {
        let mut st = self.ready()?;
        let sid = *self.sid_lock();
        if ltype == LockType::Unlock {
            if let (Some(sid), Some(owners)) = (sid, st.flocks.get_mut(&ino)) {
                owners.lock(LockOwner::new(sid, owner), ltype)?;
                if owners.is_empty() {
                    st.flocks.remove(&ino);
                }
            }
            return Ok(());
        }
        let me = LockOwner::new(sid.ok_or(MetaError::BadHandle)?, owner);
        if !st.sessions.contains_key(&me.sid) {
            return Err(MetaError::SessionLost);
        }
        st.node(ino)?;
        st.flocks.entry(ino).or_default().lock(me, ltype)
    }

    /// One attempt of a `setlk` request (the range is checked).
    fn try_setlk(&self, ino: Ino, owner: u64, req: &PlockRequest) -> Result<()> {
        let mut st = self.ready()?;
        let sid = *self.sid_lock();
        let me = match sid {
            Some(sid) => LockOwner::new(sid, owner),
            None if req.ltype == LockType::Unlock => return Ok(()),
            None => return Err(MetaError::BadHandle),
        };
        if req.ltype != LockType::Unlock {
            if !st.sessions.contains_key(&me.sid) {
                return Err(MetaError::SessionLost);
            }
            st.node(ino)?;
        }
        let owners = st.plocks.entry(ino).or_default();
        let done = owners.setlk(me, req);
        if owners.is_empty() {
            st.plocks.remove(&ino);
        }
        done
    }
}

#[async_trait]
impl MetaEngine for ModelEngine {
    fn name(&self) -> &'static str {
        "model"
    }

    async fn init(&self, format: &Format, force: bool) -> Result<()> {
        let mut st = self.lock();
        if let Some(cur) = &st.format {
            if !force {
                return Err(MetaError::Exists);
            }
            if cur.name != format.name || cur.uuid != format.uuid {
                return Err(MetaError::InvalidArgument(
                    "a forced format must keep the volume's name and UUID",
                ));
            }
            if format.trash_days > 0 {
                st.nodes
                    .entry(TRASH_INO)
                    .or_insert_with(|| Node::new(trash_root(now())));
            }
            st.format = Some(format.clone());
            return Ok(());
        }
        format.check_supported()?;
        let t = now();
        let mut root = Attr::new(FileType::Directory, 0o777, 0, 0, t);
        root.nlink = 2;
        root.length = 4096;
        root.parent = ROOT_INO;
        st.nodes.insert(ROOT_INO, Node::new(root));
        if format.trash_days > 0 {
            st.nodes.insert(TRASH_INO, Node::new(trash_root(t)));
        }
        st.next_ino = ROOT_INO + 1;
        st.next_slice = 1;
        st.next_sid = 1;
        st.format = Some(format.clone());
        Ok(())
    }

    async fn load(&self) -> Result<Format> {
        self.lock().format.clone().ok_or(MetaError::NotFormatted)
    }

    async fn new_session(&self, info: &SessionInfo) -> Result<u64> {
        let mut st = self.ready()?;
        let mut mine = self.sid_lock();
        if mine.is_some() {
            return Err(MetaError::InvalidArgument(
                "this client already has a session",
            ));
        }
        let sid = st.next_sid;
        st.next_sid += 1;
        st.sessions.insert(
            sid,
            SessionRec {
                info: info.clone(),
                expire: now().sec + SESSION_TTL_SECS,
                open: BTreeSet::new(),
            },
        );
        *mine = Some(sid);
        Ok(sid)
    }

    async fn heartbeat(&self) -> Result<Heartbeat> {
        let mut st = self.ready()?;
        let sid = (*self.sid_lock()).ok_or(MetaError::BadHandle)?;
        let expire = now().sec + SESSION_TTL_SECS;
        if let Some(s) = st.sessions.get_mut(&sid) {
            s.expire = expire;
            return Ok(Heartbeat::Extended);
        }
        // Reaped: back under the same id, holding nothing (its opens were released).
        st.sessions.insert(
            sid,
            SessionRec {
                info: SessionInfo::default(),
                expire,
                open: BTreeSet::new(),
            },
        );
        Ok(Heartbeat::Reregistered)
    }

    async fn close_session(&self) -> Result<()> {
        let mut st = self.ready()?;
        if let Some(sid) = self.sid_lock().take() {
            st.end_session(sid);
        }
        self.open.clear();
        Ok(())
    }

    async fn list_sessions(&self) -> Result<Vec<Session>> {
        let st = self.ready()?;
        Ok(st
            .sessions
            .iter()
            .map(|(&sid, s)| Session {
                sid,
                expire: s.expire,
                info: s.info.clone(),
                sustained: s
                    .open
                    .iter()
                    .copied()
                    .filter(|i| st.nodes.get(i).is_some_and(|n| n.attr.nlink == 0))
                    .collect(),
            })
            .collect())
    }

    async fn reap_stale_sessions(&self, at: Timestamp) -> Result<usize> {
        let mut st = self.ready()?;
        let stale: Vec<u64> = st
            .sessions
            .iter()
            .filter(|(_, s)| s.expire < at.sec)
            .map(|(&sid, _)| sid)
            .collect();
        for &sid in &stale {
            st.end_session(sid);
        }
        Ok(stale.len())
    }

    async fn lookup(&self, ctx: &Context, parent: Ino, name: &[u8]) -> Result<Entry> {
        let st = self.ready()?;
        let dots = name == b"." || name == b"..";
        if !dots {
            validate_name(name)?;
        }
        if parent == ROOT_INO && name == b".trash" {
            return st.entry(TRASH_INO);
        }
        let p = st.dir(parent)?;
        st.access(ctx, &p.attr, access::X)?;
        match name {
            b"." => st.entry(parent),
            b".." => st.entry(p.attr.parent),
            _ => match p.entries.get(name) {
                Some(&ino) => st.entry(ino),
                None => not_found(),
            },
        }
    }

    async fn getattr(&self, ino: Ino) -> Result<Attr> {
        self.ready()?.attr(ino)
    }

    async fn check_access(&self, ctx: &Context, ino: Ino, mask: u8) -> Result<Attr> {
        let st = self.ready()?;
        let a = st.attr(ino)?;
        st.access_call(ctx, &a, mask)?;
        Ok(a)
    }

    async fn setattr(&self, ctx: &Context, ino: Ino, set: &SetAttr) -> Result<Attr> {
        let mut st = self.ready()?;
        let cur = st.attr(ino)?;
        let only_flags = set.flags.is_some()
            && [set.mode.is_some(), set.uid.is_some(), set.gid.is_some()]
                .iter()
                .all(|x| !x)
            && set.atime.is_none()
            && set.mtime.is_none()
            && set.size.is_none();
        refuse_if(immutable(&cur) && !only_flags)?;
        let t = now();
        let (mut a, rule) = perm::setattr(ctx, &cur, st.access_rule(&cur), set, t)?;
        if let Some(rule) = rule {
            a.access_acl = st.save_rule(rule);
        }
        if let Some(size) = set.size {
            st.check_truncate(ctx, ino, size)?;
        }
        if (a.uid, a.gid) != (cur.uid, cur.gid) {
            st.move_owner(&cur, (a.uid, a.gid))?;
            let n = st.node_mut(ino)?;
            n.attr.uid = a.uid;
            n.attr.gid = a.gid;
        }
        if let Some(size) = set.size {
            st.set_length(ino, size, t)?;
            a.length = size;
            a.ctime = t;
            if !matches!(set.mtime, Some(SetTime::At(_))) {
                a.mtime = t;
            }
        }
        st.node_mut(ino)?.attr = a.clone();
        Ok(a)
    }

    async fn mknod(
        &self,
        ctx: &Context,
        parent: Ino,
        name: &[u8],
        typ: FileType,
        mode: u16,
        rdev: u32,
    ) -> Result<Entry> {
        let mut st = self.ready()?;
        validate_name(name)?;
        st.create(ctx, parent, name, typ, mode, rdev, b"")
    }

    async fn mkdir(&self, ctx: &Context, parent: Ino, name: &[u8], mode: u16) -> Result<Entry> {
        let mut st = self.ready()?;
        validate_name(name)?;
        st.create(ctx, parent, name, FileType::Directory, mode, 0, b"")
    }

    async fn symlink(
        &self,
        ctx: &Context,
        parent: Ino,
        name: &[u8],
        target: &[u8],
    ) -> Result<Entry> {
        let mut st = self.ready()?;
        validate_name(name)?;
        validate_symlink_target(target)?;
        st.create(ctx, parent, name, FileType::Symlink, 0o777, 0, target)
    }

    async fn readlink(&self, ino: Ino) -> Result<Vec<u8>> {
        let st = self.ready()?;
        let n = st.node(ino)?;
        if n.attr.typ != FileType::Symlink {
            return Err(MetaError::InvalidArgument("not a symbolic link"));
        }
        Ok(n.target.clone())
    }

    async fn link(&self, ctx: &Context, ino: Ino, parent: Ino, name: &[u8]) -> Result<Entry> {
        let mut st = self.ready()?;
        validate_name(name)?;
        let a = st.attr(ino)?;
        if a.typ == FileType::Directory {
            return Err(MetaError::NotPermitted);
        }
        if a.nlink == 0 {
            return not_found();
        }
        refuse_if(parent >= TRASH_INO || (parent == ROOT_INO && name == b".trash"))?;
        let pattr = st.dir(parent)?.attr.clone();
        if pattr.parent > TRASH_INO {
            return not_found();
        }
        st.access(ctx, &pattr, access::W | access::X)?;
        if st.child(parent, name).is_some() {
            return Err(MetaError::Exists);
        }
        refuse_if(immutable(&pattr) || frozen(&a))?;
        st.charge((space_of(&a), 1), None, &[parent])?;
        let t = now();
        st.node_mut(parent)?.entries.insert(name.to_vec(), ino);
        st.touch(parent, t);
        let n = st.node_mut(ino)?;
        n.attr.nlink += 1;
        n.attr.parent = 0;
        n.attr.ctime = t;
        st.entry(ino)
    }

    async fn unlink(&self, ctx: &Context, parent: Ino, name: &[u8]) -> Result<()> {
        let mut st = self.ready()?;
        validate_name(name)?;
        refuse_if(
            (parent == ROOT_INO && name == b".trash") || (parent >= TRASH_INO && !ctx.is_root()),
        )?;
        let pattr = st.dir(parent)?.attr.clone();
        st.access(ctx, &pattr, access::W | access::X)?;
        let ino = st.child(parent, name).ok_or(MetaError::NotFound)?;
        let victim = st.attr(ino)?;
        st.check_remove(ctx, &pattr, &victim)?;
        if victim.typ == FileType::Directory {
            return Err(MetaError::IsDir);
        }
        refuse_if(frozen(&pattr) || frozen(&victim))?;
        let t = now();
        let to_trash = st.to_trash(ctx, parent, &victim);
        let owner = (!to_trash && victim.nlink <= 1).then_some((victim.uid, victim.gid));
        st.charge((-space_of(&victim), -1), owner, &[parent])?;
        st.node_mut(parent)?.entries.remove(name);
        st.touch(parent, t);
        if to_trash {
            st.move_to_trash(parent, name, ino, t)?;
        } else {
            st.drop_link(ino, t);
        }
        Ok(())
    }

    async fn rmdir(&self, ctx: &Context, parent: Ino, name: &[u8]) -> Result<()> {
        let mut st = self.ready()?;
        validate_name(name)?;
        refuse_if(
            (parent == ROOT_INO && name == b".trash") || (parent >= TRASH_INO && !ctx.is_root()),
        )?;
        let pattr = st.dir(parent)?.attr.clone();
        st.access(ctx, &pattr, access::W | access::X)?;
        let ino = st.child(parent, name).ok_or(MetaError::NotFound)?;
        let victim = st.node(ino)?;
        st.check_remove(ctx, &pattr, &victim.attr)?;
        if victim.attr.typ != FileType::Directory {
            return Err(MetaError::NotDir);
        }
        if !victim.entries.is_empty() {
            return Err(MetaError::NotEmpty);
        }
        refuse_if(frozen(&pattr) || frozen(&victim.attr))?;
        let t = now();
        let to_trash = st.to_trash(ctx, parent, &victim.attr);
        let owner =
            (!to_trash && parent != TRASH_INO).then_some((victim.attr.uid, victim.attr.gid));
        st.charge((-4096, -1), owner, &[parent])?;
        st.node_mut(parent)?.entries.remove(name);
        if parent < TRASH_INO {
            st.add_nlink(parent, -1);
        }
        st.touch(parent, t);
        if to_trash {
            st.move_to_trash(parent, name, ino, t)?;
        } else {
            st.nodes.remove(&ino);
        }
        Ok(())
    }

    async fn rename(
        &self,
        ctx: &Context,
        parent: Ino,
        name: &[u8],
        new_parent: Ino,
        new_name: &[u8],
        flags: RenameFlags,
    ) -> Result<()> {
        let mut st = self.ready()?;
        let known = RenameFlags::NOREPLACE | RenameFlags::EXCHANGE | RenameFlags::RESTORE;
        if flags.0 & !known != 0 {
            return Err(MetaError::InvalidArgument("unsupported rename flags"));
        }
        if flags.noreplace() && flags.exchange() {
            return Err(MetaError::InvalidArgument("NOREPLACE with EXCHANGE"));
        }
        if flags.restore() && flags.0 != RenameFlags::RESTORE | RenameFlags::NOREPLACE {
            return Err(MetaError::InvalidArgument("RESTORE without NOREPLACE"));
        }
        validate_name(name)?;
        validate_name(new_name)?;
        let trash_name = |p: Ino, n: &[u8]| p == ROOT_INO && n == b".trash";
        refuse_if(trash_name(parent, name) || trash_name(new_parent, new_name))?;
        refuse_if(new_parent >= TRASH_INO || (parent >= TRASH_INO && !ctx.is_root()))?;
        if flags.restore() && parent < TRASH_INO {
            return Err(MetaError::InvalidArgument("RESTORE outside the trash"));
        }
        let pattr = st.dir(parent)?.attr.clone();
        let npattr = st.dir(new_parent)?.attr.clone();
        if npattr.parent > TRASH_INO && !flags.restore() {
            return not_found();
        }
        st.access(ctx, &pattr, access::W | access::X)?;
        st.access(ctx, &npattr, access::W | access::X)?;
        let src = st.child(parent, name).ok_or(MetaError::NotFound)?;
        let dst = st.child(new_parent, new_name);
        if flags.exchange() && dst.is_none() {
            return not_found();
        }
        if flags.noreplace() && dst.is_some() {
            return Err(MetaError::Exists);
        }
        if dst == Some(src) {
            return Ok(());
        }
        let sa = st.attr(src)?;
        let da = match dst {
            Some(d) => Some(st.attr(d)?),
            None => None,
        };
        refuse_if(
            frozen(&pattr) || frozen(&sa) || immutable(&npattr) || da.as_ref().is_some_and(frozen),
        )?;
        if sa.is_dir() && st.is_ancestor(src, new_parent) {
            return Err(MetaError::InvalidArgument(
                "directory moved into its own subtree",
            ));
        }
        if let (true, Some(d), Some(da)) = (flags.exchange(), dst, &da) {
            if da.is_dir() && st.is_ancestor(d, parent) {
                return Err(MetaError::InvalidArgument(
                    "directory moved into its own subtree",
                ));
            }
        }
        st.check_remove(ctx, &pattr, &sa)?;
        if let Some(da) = &da {
            st.check_remove(ctx, &npattr, da)?;
        }
        let t = now();
        if flags.exchange() {
            let (Some(d), Some(da)) = (dst, da) else {
                return not_found();
            };
            if parent != new_parent {
                let su = st.moved_usage(src, &sa, parent, new_parent)?;
                let du = st.moved_usage(d, &da, new_parent, parent)?;
                st.move_quota(parent, new_parent, su)?;
                st.move_quota(new_parent, parent, du)?;
            }
            st.node_mut(parent)?.entries.insert(name.to_vec(), d);
            st.node_mut(new_parent)?
                .entries
                .insert(new_name.to_vec(), src);
            if parent != new_parent {
                if sa.is_dir() {
                    st.add_nlink(parent, -1);
                    st.add_nlink(new_parent, 1);
                }
                if da.is_dir() {
                    st.add_nlink(new_parent, -1);
                    st.add_nlink(parent, 1);
                }
            }
            for (ino, to) in [(src, new_parent), (d, parent)] {
                let n = st.node_mut(ino)?;
                if n.attr.parent != 0 {
                    n.attr.parent = to;
                }
                n.attr.ctime = t;
            }
        } else {
            if let (Some(d), Some(da)) = (dst, &da) {
                if sa.is_dir() && !da.is_dir() {
                    return Err(MetaError::NotDir);
                }
                if !sa.is_dir() && da.is_dir() {
                    return Err(MetaError::IsDir);
                }
                if da.is_dir() && !st.node(d)?.entries.is_empty() {
                    return Err(MetaError::NotEmpty);
                }
            }
            let su = st.moved_usage(src, &sa, parent, new_parent)?;
            if let (Some(_), Some(da)) = (dst, &da) {
                // The victim's entry leaves first, then the source arrives.
                let to_trash = st.to_trash(ctx, new_parent, da);
                let last = da.is_dir() || da.nlink <= 1;
                let owner = (!to_trash && last).then_some((da.uid, da.gid));
                st.charge((-space_of(da), -1), owner, &[new_parent])?;
            }
            st.move_quota(parent, new_parent, su)?;
            st.node_mut(parent)?.entries.remove(name);
            st.node_mut(new_parent)?
                .entries
                .insert(new_name.to_vec(), src);
            if let (Some(d), Some(da)) = (dst, &da) {
                if st.to_trash(ctx, new_parent, da) {
                    st.move_to_trash(new_parent, new_name, d, t)?;
                    if da.is_dir() {
                        st.add_nlink(new_parent, -1);
                    }
                } else if da.is_dir() {
                    st.nodes.remove(&d);
                    st.add_nlink(new_parent, -1);
                } else {
                    st.drop_link(d, t);
                }
            }
            if sa.is_dir() && parent != new_parent {
                if parent < TRASH_INO {
                    st.add_nlink(parent, -1);
                }
                st.add_nlink(new_parent, 1);
            }
            let n = st.node_mut(src)?;
            if n.attr.parent != 0 {
                n.attr.parent = new_parent;
            }
            n.attr.ctime = t;
        }
        st.touch(parent, t);
        st.touch(new_parent, t);
        Ok(())
    }

    async fn readdir(
        &self,
        ctx: &Context,
        ino: Ino,
        after: Option<&[u8]>,
        limit: usize,
        plus: bool,
    ) -> Result<Vec<DirEntry>> {
        let st = self.ready()?;
        let d = st.dir(ino)?;
        st.access(ctx, &d.attr, access::R)?;
        let lower = match after {
            Some(a) => Bound::Excluded(a.to_vec()),
            None => Bound::Unbounded,
        };
        let mut out = Vec::new();
        for (name, &child) in d.entries.range((lower, Bound::Unbounded)).take(limit) {
            let attr = st.attr(child)?;
            out.push(DirEntry {
                name: name.clone(),
                ino: child,
                typ: attr.typ,
                attr: plus.then_some(attr),
            });
        }
        Ok(out)
    }

    async fn open(&self, ctx: &Context, ino: Ino, flags: i32) -> Result<Attr> {
        let mut st = self.ready()?;
        let a = st.attr(ino)?;
        let mask = perm::open_mask(flags);
        if a.typ == FileType::Directory && mask & access::W != 0 {
            return Err(MetaError::IsDir);
        }
        st.access(ctx, &a, mask)?;
        let writes = mask & access::W != 0;
        refuse_if(writes && immutable(&a))?;
        let appends = flags & libc::O_APPEND != 0 && flags & libc::O_TRUNC == 0;
        refuse_if(a.flags & 2 != 0 && writes && !appends)?;
        self.open.open(ino);
        if let Some(sid) = *self.sid_lock() {
            if let Some(s) = st.sessions.get_mut(&sid) {
                s.open.insert(ino);
            }
        }
        Ok(a)
    }

    async fn close(&self, ino: Ino) -> Result<()> {
        let mut st = self.ready()?;
        if self.open.close(ino) {
            if let Some(sid) = *self.sid_lock() {
                if let Some(s) = st.sessions.get_mut(&sid) {
                    s.open.remove(&ino);
                }
            }
            st.release(ino);
        }
        Ok(())
    }

    async fn read_chunk(&self, ino: Ino, index: u32) -> Result<Vec<Slice>> {
        let st = self.ready()?;
        let n = st.node(ino)?;
        if n.attr.typ == FileType::Directory {
            return Err(MetaError::IsDir);
        }
        Ok(n.chunks.get(&index).cloned().unwrap_or_default())
    }

    async fn write_slice(
        &self,
        ino: Ino,
        index: u32,
        slice: Slice,
        mtime: Timestamp,
    ) -> Result<usize> {
        let mut st = self.ready()?;
        let end_in_chunk = u64::from(slice.pos) + u64::from(slice.len);
        if end_in_chunk > CHUNK_SIZE {
            return Err(MetaError::InvalidArgument("slice crosses the chunk's end"));
        }
        if u64::from(slice.off) + u64::from(slice.len) > u64::from(slice.size) && slice.id != 0 {
            return Err(MetaError::InvalidArgument("slice range outside its object"));
        }
        let end = u64::from(index) * CHUNK_SIZE + end_in_chunk;
        if end > MAX_FILE_SIZE {
            return Err(MetaError::FileTooBig);
        }
        let old = st.regular(ino)?.attr.length;
        st.charge_length(ino, old.max(end))?;
        st.add_slice(ino, index, slice)?;
        let n = st.node_mut(ino)?;
        n.attr.length = n.attr.length.max(end);
        n.attr.mtime = mtime;
        n.attr.ctime = mtime;
        Ok(n.chunks.get(&index).map_or(0, Vec::len))
    }

    async fn new_slice_id(&self) -> Result<u64> {
        let mut st = self.ready()?;
        let id = st.next_slice;
        st.next_slice += 1;
        Ok(id)
    }

    async fn compact_chunk(
        &self,
        ino: Ino,
        index: u32,
        plan: &crate::compact::Plan,
        id: u64,
    ) -> Result<Option<Vec<Slice>>> {
        let mut st = self.ready()?;
        if id == 0 || plan.len == 0 || plan.skipped >= plan.origin.len() {
            return Err(MetaError::InvalidArgument("not a compaction plan"));
        }
        let cur = st
            .regular(ino)?
            .chunks
            .get(&index)
            .cloned()
            .unwrap_or_default();
        let read = plan.origin.len();
        if cur.len() < read || cur[..read] != plan.origin[..] {
            return Ok(None);
        }
        let mut records = plan.origin[..plan.skipped].to_vec();
        records.push(Slice {
            pos: plan.pos,
            id,
            size: plan.len,
            off: 0,
            len: plan.len,
        });
        records.extend_from_slice(&cur[read..]);
        st.node_mut(ino)?.chunks.insert(index, records);
        st.refs.insert(
            id,
            SliceRef {
                size: plan.len,
                refs: 1,
            },
        );
        // With trash days the replaced slices stay referenced (delayed for the trash).
        if st.format.as_ref().is_some_and(|f| f.trash_days > 0) {
            let kept: Vec<(u64, u32)> = plan
                .replaced()
                .iter()
                .filter(|s| s.id != 0)
                .map(|s| (s.id, s.size))
                .collect();
            if !kept.is_empty() {
                st.delayed.push((now().sec, kept));
            }
            return Ok(Some(Vec::new()));
        }
        Ok(Some(st.drop_refs(&plan.origin[plan.skipped..])))
    }

    async fn truncate(&self, ctx: &Context, ino: Ino, length: u64) -> Result<Attr> {
        let mut st = self.ready()?;
        st.check_truncate(ctx, ino, length)?;
        st.set_length(ino, length, now())?;
        st.attr(ino)
    }

    async fn fallocate(
        &self,
        ctx: &Context,
        ino: Ino,
        mode: FallocMode,
        off: u64,
        len: u64,
    ) -> Result<()> {
        let mut st = self.ready()?;
        let known = FallocMode::KEEP_SIZE | FallocMode::PUNCH_HOLE | FallocMode::ZERO_RANGE;
        if mode.0 & !known != 0 {
            return Err(MetaError::NotSupported("fallocate mode"));
        }
        let punch = mode.contains(FallocMode::PUNCH_HOLE);
        let zero = mode.contains(FallocMode::ZERO_RANGE);
        let keep = mode.contains(FallocMode::KEEP_SIZE);
        if punch && !keep {
            return Err(MetaError::InvalidArgument("PUNCH_HOLE needs KEEP_SIZE"));
        }
        if punch && zero {
            return Err(MetaError::InvalidArgument("PUNCH_HOLE with ZERO_RANGE"));
        }
        if len == 0 {
            return Err(MetaError::InvalidArgument("zero length"));
        }
        let end = off.checked_add(len).ok_or(MetaError::FileTooBig)?;
        if end > MAX_FILE_SIZE {
            return Err(MetaError::FileTooBig);
        }
        let a = st.regular(ino)?.attr.clone();
        st.access(ctx, &a, access::W)?;
        refuse_if(immutable(&a) || (a.flags & 2 != 0 && (punch || zero)))?;
        if !keep && end > a.length {
            st.charge_length(ino, end)?;
        }
        if punch || zero {
            st.punch(ino, off, end)?;
        }
        let t = now();
        let n = st.node_mut(ino)?;
        if !keep && end > n.attr.length {
            n.attr.length = end;
        }
        n.attr.mtime = t;
        n.attr.ctime = t;
        Ok(())
    }

    async fn copy_file_range(
        &self,
        ctx: &Context,
        src: Ino,
        src_off: u64,
        dst: Ino,
        dst_off: u64,
        len: u64,
    ) -> Result<u64> {
        let mut st = self.ready()?;
        // Like Linux, which checks the file descriptors first, the files and their access
        // come before the offsets.
        let sa = st.regular(src)?.attr.clone();
        let da = st.regular(dst)?.attr.clone();
        st.access(ctx, &sa, access::R)?;
        st.access(ctx, &da, access::W)?;
        let dst_end = dst_off.checked_add(len).ok_or(MetaError::FileTooBig)?;
        if dst_end > MAX_FILE_SIZE {
            return Err(MetaError::FileTooBig);
        }
        if src == dst && src_off < dst_end && dst_off < src_off.saturating_add(len) {
            return Err(MetaError::InvalidArgument("overlapping ranges in one file"));
        }
        refuse_if(frozen(&da))?;
        if src_off >= sa.length {
            return Ok(0);
        }
        let n = len.min(sa.length - src_off);
        let dlen = st.attr(dst)?.length;
        st.charge_length(dst, dlen.max(dst_off + n))?;
        // The data pieces of the source range, placed at their destination offsets.
        let mut placed: Vec<(u64, Slice)> = Vec::new();
        let first = (src_off / CHUNK_SIZE) as u32;
        let last = ((src_off + n - 1) / CHUNK_SIZE) as u32;
        for (&idx, slices) in st.node(src)?.chunks.range(first..=last) {
            let start = u64::from(idx) * CHUNK_SIZE;
            let lo = src_off.max(start);
            let hi = (src_off + n).min(start + CHUNK_SIZE);
            for p in layout::read(slices, (lo - start) as u32, (hi - lo) as u32) {
                if p.id != 0 {
                    placed.push((start + u64::from(p.pos) - src_off + dst_off, p));
                }
            }
        }
        st.punch(dst, dst_off, dst_off + n)?;
        for (mut at, p) in placed {
            let mut done = 0u32;
            while done < p.len {
                let idx = (at / CHUNK_SIZE) as u32;
                let pos = (at % CHUNK_SIZE) as u32;
                let take = (p.len - done).min((CHUNK_SIZE - u64::from(pos)) as u32);
                let s = Slice {
                    pos,
                    id: p.id,
                    size: p.size,
                    off: p.off + done,
                    len: take,
                };
                st.add_slice(dst, idx, s)?;
                done += take;
                at += u64::from(take);
            }
        }
        let t = now();
        let node = st.node_mut(dst)?;
        node.attr.length = node.attr.length.max(dst_off + n);
        node.attr.mtime = t;
        node.attr.ctime = t;
        Ok(n)
    }

    async fn getxattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        let st = self.ready()?;
        check_xattr_name(name)?;
        if let Some(typ) = AclType::from_xattr_name(name) {
            return st.get_acl_xattr(ino, typ);
        }
        st.node(ino)?
            .xattrs
            .get(name)
            .cloned()
            .ok_or(MetaError::NoAttr)
    }

    async fn setxattr(
        &self,
        ctx: &Context,
        ino: Ino,
        name: &[u8],
        value: &[u8],
        flags: u32,
    ) -> Result<()> {
        let mut st = self.ready()?;
        check_xattr_name(name)?;
        if let Some(typ) = AclType::from_xattr_name(name) {
            return st.set_acl_xattr(ctx, ino, typ, Some(value));
        }
        if value.len() > MAX_XATTR_VALUE_LEN {
            return Err(MetaError::Range);
        }
        let both = XattrFlags::CREATE | XattrFlags::REPLACE;
        if flags & !both != 0 || flags == both {
            return Err(MetaError::InvalidArgument("xattr flags"));
        }
        let n = st.node(ino)?;
        st.access(ctx, &n.attr, access::W)?;
        refuse_if(frozen(&n.attr))?;
        let exists = n.xattrs.contains_key(name);
        if flags == XattrFlags::CREATE && exists {
            return Err(MetaError::Exists);
        }
        if flags == XattrFlags::REPLACE && !exists {
            return Err(MetaError::NoAttr);
        }
        let n = st.node_mut(ino)?;
        n.xattrs.insert(name.to_vec(), value.to_vec());
        n.attr.ctime = now();
        Ok(())
    }

    async fn listxattr(&self, ino: Ino) -> Result<Vec<Vec<u8>>> {
        let st = self.ready()?;
        let n = st.node(ino)?;
        let mut names: Vec<Vec<u8>> = n.xattrs.keys().cloned().collect();
        acl::add_acl_names(&n.attr, &mut names);
        Ok(names)
    }

    async fn removexattr(&self, ctx: &Context, ino: Ino, name: &[u8]) -> Result<()> {
        let mut st = self.ready()?;
        check_xattr_name(name)?;
        if let Some(typ) = AclType::from_xattr_name(name) {
            return st.set_acl_xattr(ctx, ino, typ, None);
        }
        let n = st.node(ino)?;
        st.access(ctx, &n.attr, access::W)?;
        refuse_if(frozen(&n.attr))?;
        let n = st.node_mut(ino)?;
        if n.xattrs.remove(name).is_none() {
            return Err(MetaError::NoAttr);
        }
        n.attr.ctime = now();
        Ok(())
    }

    async fn flock(
        &self,
        _ctx: &Context,
        ino: Ino,
        owner: u64,
        ltype: LockType,
        block: bool,
    ) -> Result<()> {
        let mut wait = LockWait::new();
        loop {
            match self.try_flock(ino, owner, ltype) {
                Err(MetaError::WouldBlock) if block => {
                    tokio::time::sleep(wait.next_pause()).await;
                }
                other => return other,
            }
        }
    }

    async fn getlk(
        &self,
        _ctx: &Context,
        ino: Ino,
        owner: u64,
        lock: &mut PlockRequest,
    ) -> Result<()> {
        locks::check_range(lock.start, lock.end)?;
        if lock.ltype == LockType::Unlock {
            return Err(MetaError::InvalidArgument("F_GETLK of F_UNLCK"));
        }
        let st = self.ready()?;
        st.node(ino)?;
        // Without a session nothing is ours: session 0 is never handed out.
        let me = LockOwner::new((*self.sid_lock()).unwrap_or(0), owner);
        *lock = locks::getlk(st.plocks.get(&ino), me, lock);
        Ok(())
    }

    async fn setlk(
        &self,
        _ctx: &Context,
        ino: Ino,
        owner: u64,
        block: bool,
        ltype: LockType,
        start: u64,
        end: u64,
        pid: u32,
    ) -> Result<()> {
        locks::check_range(start, end)?;
        let req = PlockRequest::new(ltype, start, end, pid);
        let mut wait = LockWait::new();
        loop {
            match self.try_setlk(ino, owner, &req) {
                Err(MetaError::WouldBlock) if block => {
                    tokio::time::sleep(wait.next_pause()).await;
                }
                other => return other,
            }
        }
    }

    async fn statfs(&self) -> Result<StatFs> {
        Ok(self.ready()?.statfs())
    }

    async fn sync(&self) -> Result<()> {
        self.ready().map(drop)
    }

    async fn deleted_files(&self, limit: usize) -> Result<Vec<DeletedFile>> {
        let st = self.ready()?;
        Ok(st
            .deleted
            .iter()
            .take(limit)
            .map(|(&ino, d)| DeletedFile {
                ino,
                length: d.length,
            })
            .collect())
    }

    async fn purge_file(&self, ino: Ino) -> Result<Vec<Slice>> {
        let mut st = self.ready()?;
        let Some(d) = st.deleted.remove(&ino) else {
            return if st.nodes.contains_key(&ino) {
                Err(MetaError::InvalidArgument("the file is not deleted"))
            } else {
                not_found()
            };
        };
        let records: Vec<Slice> = d.chunks.values().flatten().copied().collect();
        Ok(st.drop_refs(&records))
    }

    async fn pending_slices(&self, limit: usize) -> Result<Vec<Slice>> {
        let st = self.ready()?;
        Ok(st
            .refs
            .iter()
            .filter(|(_, r)| r.refs == 0)
            .take(limit)
            .map(|(&id, r)| Slice::whole(id, r.size))
            .collect())
    }

    async fn forget_slice(&self, id: u64, size: u32) -> Result<bool> {
        if id == 0 {
            return Err(MetaError::InvalidArgument("slice 0 is a hole"));
        }
        let mut st = self.ready()?;
        match st.refs.get(&id) {
            Some(r) if r.refs == 0 && r.size == size => {
                st.refs.remove(&id);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn list_slices(&self) -> Result<SliceListing> {
        let st = self.ready()?;
        let live = st.nodes.iter().map(|(&ino, n)| (ino, &n.chunks));
        let deleted = st.deleted.iter().map(|(&ino, d)| (ino, &d.chunks));
        let mut records = Vec::new();
        for (ino, chunks) in live.chain(deleted) {
            for (&index, slices) in chunks {
                records.extend(
                    slices
                        .iter()
                        .filter(|s| s.id != 0)
                        .map(|&s| (ino, index, s)),
                );
            }
        }
        Ok(SliceListing {
            records,
            delayed: st.delayed.iter().flat_map(|(_, d)| d.clone()).collect(),
            pending: st
                .refs
                .iter()
                .filter(|(_, r)| r.refs == 0)
                .map(|(&id, r)| (id, r.size))
                .collect(),
        })
    }

    async fn claim_job(&self, counter: &'static str, now: u64, every: u64) -> Result<bool> {
        if !crate::upkeep::JOB_COUNTERS.contains(&counter) {
            return Err(MetaError::InvalidArgument("not a job counter"));
        }
        let mut st = self.ready()?;
        let last = st.counters.get(counter).copied().unwrap_or(0);
        if last.saturating_add(every) < now {
            st.counters.insert(counter, now);
            Ok(true)
        } else {
            Ok(false)
        }
    }

    async fn dir_stat(&self, ino: Ino) -> Result<Option<DirStat>> {
        let st = self.ready()?;
        st.dir(ino)?;
        // The model's statistics are always exact: computed on demand.
        Ok(st
            .format
            .as_ref()
            .is_some_and(|f| f.dir_stats)
            .then(|| st.dir_stat(ino))
            .transpose()?)
    }

    async fn sync_dir_stat(&self, ino: Ino) -> Result<DirStat> {
        let st = self.ready()?;
        st.dir_stat(ino)
    }

    async fn free_delayed_slices(&self, before: i64, limit: usize) -> Result<Vec<Slice>> {
        let mut st = self.ready()?;
        let mut freed = Vec::new();
        let mut kept = Vec::new();
        let mut taken = 0;
        st.delayed.sort_by_key(|(t, _)| *t);
        for (t, slices) in std::mem::take(&mut st.delayed) {
            if t < before && taken < limit {
                taken += 1;
                let records: Vec<Slice> = slices
                    .iter()
                    .map(|&(id, size)| Slice::whole(id, size))
                    .collect();
                freed.extend(st.drop_refs(&records));
            } else {
                kept.push((t, slices));
            }
        }
        st.delayed = kept;
        Ok(freed)
    }

    async fn set_quota(
        &self,
        kind: QuotaKind,
        key: u64,
        (max_space, max_inodes): (i64, i64),
        used: Option<(i64, i64)>,
    ) -> Result<()> {
        let mut st = self.ready()?;
        if kind == QuotaKind::Dir {
            if !st.format.as_ref().is_some_and(|f| f.dir_stats) {
                return Err(MetaError::NotSupported("directory quotas need DirStats"));
            }
            st.dir(key)?;
            refuse_if(key >= TRASH_INO)?;
        }
        if used.is_some_and(|(s, i)| s < 0 || i < 0) {
            return Err(MetaError::InvalidArgument("negative quota usage"));
        }
        let q = st.quotas.entry((kind, key)).or_insert(Quota::UNLIMITED);
        q.max_space = max_space;
        q.max_inodes = max_inodes;
        if let Some((space, inodes)) = used {
            q.used_space = space;
            q.used_inodes = inodes;
        }
        Ok(())
    }

    async fn get_quota(&self, kind: QuotaKind, key: u64) -> Result<Option<Quota>> {
        Ok(self.ready()?.quotas.get(&(kind, key)).copied())
    }

    async fn list_quotas(&self, kind: QuotaKind) -> Result<Vec<(u64, Quota)>> {
        Ok(self
            .ready()?
            .quotas
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|(&(_, key), &q)| (key, q))
            .collect())
    }

    async fn delete_quota(&self, kind: QuotaKind, key: u64) -> Result<bool> {
        let mut st = self.ready()?;
        if kind == QuotaKind::Dir {
            return Ok(st.quotas.remove(&(kind, key)).is_some());
        }
        Ok(match st.quotas.get_mut(&(kind, key)) {
            Some(q) => {
                q.max_space = -1;
                q.max_inodes = -1;
                true
            }
            None => false,
        })
    }

    async fn clone_node(&self, ctx: &Context, step: &crate::clone::CloneNode<'_>) -> Result<Entry> {
        let mut st = self.ready()?;
        if step.top {
            crate::clone::check_top(step.src, step.parent, step.name)?;
        } else {
            validate_name(step.name)?;
        }
        let src = st.node(step.src)?.clone();
        st.access(ctx, &src.attr, crate::clone::source_mask(src.attr.typ))?;
        let mut pattr = st.dir(step.parent)?.attr.clone();
        if step.top {
            if pattr.parent > TRASH_INO {
                return not_found();
            }
            st.access(ctx, &pattr, access::W | access::X)?;
            if st.child(step.parent, step.name).is_some() {
                return Err(MetaError::Exists);
            }
            refuse_if(immutable(&pattr))?;
        }
        let detached = step.top && src.attr.typ == FileType::Directory;
        let t = now();
        let parent = if detached { 0 } else { step.parent };
        let attr = crate::clone::cloned_attr(&src.attr, ctx, step.opts, parent, t);
        let dirs: &[Ino] = if detached { &[] } else { &[step.parent] };
        st.charge((space_of(&attr), 1), Some((attr.uid, attr.gid)), dirs)?;
        let ino = st.new_ino();
        let mut node = Node::new(attr.clone());
        node.xattrs = src.xattrs;
        node.target = src.target;
        if attr.typ == FileType::Regular {
            for (idx, slices) in &src.chunks {
                for s in slices {
                    if s.id != 0 {
                        st.add_ref(s);
                    }
                }
                node.chunks.insert(*idx, slices.clone());
            }
        }
        st.nodes.insert(ino, node);
        if detached {
            st.detached.insert(ino, t.sec);
        } else {
            st.node_mut(step.parent)?
                .entries
                .insert(step.name.to_vec(), ino);
            if attr.typ == FileType::Directory {
                pattr.nlink += 1;
            }
            if step.top {
                pattr.mtime = t;
                pattr.ctime = t;
            }
            st.node_mut(step.parent)?.attr = pattr;
        }
        Ok(Entry { ino, attr })
    }

    async fn attach_dir(
        &self,
        ctx: &Context,
        (parent, name): (Ino, &[u8]),
        ino: Ino,
        usage: Usage,
    ) -> Result<Entry> {
        let mut st = self.ready()?;
        crate::clone::check_top(ino, parent, name)?;
        let pattr = st.dir(parent)?.attr.clone();
        if pattr.parent > TRASH_INO {
            return not_found();
        }
        st.access(ctx, &pattr, access::W | access::X)?;
        if st.child(parent, name).is_some() {
            return Err(MetaError::Exists);
        }
        refuse_if(immutable(&pattr))?;
        if !st.detached.contains_key(&ino) || !st.nodes.contains_key(&ino) {
            return not_found();
        }
        st.charge((usage.space, usage.inodes), None, &[parent])?;
        st.detached.remove(&ino);
        let t = now();
        st.node_mut(ino)?.attr.parent = parent;
        st.node_mut(parent)?.entries.insert(name.to_vec(), ino);
        st.add_nlink(parent, 1);
        st.touch(parent, t);
        st.entry(ino)
    }

    async fn detached_nodes(&self) -> Result<Vec<(Ino, i64)>> {
        let st = self.ready()?;
        Ok(st.detached.iter().map(|(&i, &t)| (i, t)).collect())
    }

    async fn drop_detached(&self, ino: Ino) -> Result<bool> {
        let mut st = self.ready()?;
        if !st.detached.contains_key(&ino) {
            return Ok(false);
        }
        if st.nodes.get(&ino).is_some_and(|n| !n.entries.is_empty()) {
            return Err(MetaError::NotEmpty);
        }
        st.detached.remove(&ino);
        let Some(a) = st.nodes.get(&ino).map(|n| n.attr.clone()) else {
            return Ok(true);
        };
        st.charge((-space_of(&a), -1), Some((a.uid, a.gid)), &[])?;
        st.nodes.remove(&ino);
        Ok(true)
    }

    async fn hold_slices(&self, slices: &[(u64, u32)], delta: i64) -> Result<Vec<Slice>> {
        let mut st = self.ready()?;
        if slices.iter().any(|&(id, _)| id == 0) {
            return Err(MetaError::InvalidArgument("slice 0 is a hole"));
        }
        let mut freed = Vec::new();
        for &(id, size) in slices {
            let Some(r) = st.refs.get_mut(&id) else {
                continue;
            };
            if delta >= 0 {
                // A pending slice is never counted back.
                if r.refs > 0 {
                    r.refs = r
                        .refs
                        .saturating_add(u32::try_from(delta).unwrap_or(u32::MAX));
                }
            } else {
                let n = u32::try_from(delta.unsigned_abs()).unwrap_or(u32::MAX);
                r.refs = r.refs.saturating_sub(n);
                if r.refs == 0 {
                    freed.push(Slice::whole(id, size));
                }
            }
        }
        Ok(freed)
    }

    async fn wipe(&self) -> Result<()> {
        let mut st = self.ready()?;
        let kept = State {
            format: st.format.take(),
            next_ino: st.next_ino,
            next_slice: st.next_slice,
            next_sid: st.next_sid,
            next_trash: st.next_trash,
            ..State::default()
        };
        *st = kept;
        Ok(())
    }

    async fn statfs_at(&self, ino: Ino) -> Result<StatFs> {
        let st = self.ready()?;
        let fs = st.statfs();
        if !st.format.as_ref().is_some_and(|f| f.dir_stats) {
            return Ok(fs);
        }
        Ok(match st.quota_dirs(ino).first() {
            Some(d) => quota::statfs_within(fs, &st.quotas[&(QuotaKind::Dir, *d)]),
            None => fs,
        })
    }

    async fn recount_usage(&self) -> Result<Recount> {
        let st = self.ready()?;
        // The model's usage is computed from its nodes: nothing can drift.
        let fs = st.statfs();
        let usage = Usage {
            space: i64::try_from(fs.total_space - fs.avail_space).unwrap_or(i64::MAX),
            inodes: i64::try_from(fs.used_inodes).unwrap_or(i64::MAX),
        };
        Ok(Recount {
            before: usage,
            after: usage,
        })
    }
}

/// A [`Harness`] of model volumes.
#[derive(Debug, Default)]
pub struct ModelHarness {
    volumes: std::sync::atomic::AtomicU64,
}

impl ModelHarness {
    /// A harness; every volume it makes is independent.
    pub fn new() -> ModelHarness {
        ModelHarness::default()
    }
}

/// A formatted model volume.
#[derive(Debug)]
pub struct ModelVolume {
    /// A session-less client that holds the volume's state.
    holder: ModelEngine,
}

#[async_trait]
impl Harness for ModelHarness {
    async fn new_volume(&self) -> Result<Box<dyn TestVolume>> {
        let n = self
            .volumes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let holder = ModelEngine::unformatted();
        let uuid = format!("00000000-0000-4000-8000-{n:012x}");
        holder
            .init(&Format::new("model", &uuid, "mem", "model/"), false)
            .await?;
        Ok(Box::new(ModelVolume { holder }))
    }

    async fn unformatted_client(&self) -> Result<Arc<dyn MetaEngine>> {
        Ok(Arc::new(ModelEngine::unformatted()))
    }
}

#[async_trait]
impl TestVolume for ModelVolume {
    async fn connect(&self) -> Result<Arc<dyn MetaEngine>> {
        let e = self.holder.another_client();
        let info = SessionInfo {
            version: "model".into(),
            host_name: "localhost".into(),
            mount_point: "model".into(),
            process_id: std::process::id(),
        };
        e.new_session(&info).await?;
        Ok(Arc::new(e))
    }
}
