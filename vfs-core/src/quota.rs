//! Quotas through the VFS ([`meta_api::quota`] has the rules, which every engine keeps
//! in the transaction of each change): setting one computes what its directory's subtree
//! (or its owner) already uses, and checking recounts what the records say.
//!
//! * [`Vfs::set_quota`](crate::Vfs::set_quota) on a directory counts its subtree (every
//!   entry below it, not the directory itself) when the quota is new; on a user or group it
//!   first turns on the volume's user and group quotas (JuiceFS's `UserGroupQuota`) and
//!   counts every owner's usage, once.
//! * [`Vfs::check_quotas`](crate::Vfs::check_quotas) recounts each quota's usage and
//!   reports those whose record disagrees; with `repair` it stores the count.
//!
//! A count walks the tree a page at a time while other clients may change it; what they
//! change during the walk can be off by their change (JuiceFS has the same window), and
//! `check_quotas` with `repair` on a quiet volume makes it exact.

use std::collections::{BTreeMap, HashSet};

use meta_api::quota::{Quota, QuotaKind};
use meta_api::space::entry_usage;
use meta_api::{FileType, Ino, MetaEngine, MetaError, ROOT_INO, TRASH_INO};

use crate::upkeep::DirPages;
use crate::Result;

/// One quota whose record and recount were compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaCheck {
    /// Which quota.
    pub kind: QuotaKind,
    /// Its directory, uid or gid.
    pub key: u64,
    /// What the record said.
    pub stored: Quota,
    /// `(space, inodes)` counted.
    pub counted: (i64, i64),
}

impl QuotaCheck {
    /// Whether the record matches the count.
    pub fn is_consistent(&self) -> bool {
        (self.stored.used_space, self.stored.used_inodes) == self.counted
    }
}

/// `(space, inodes)` of every entry below directory `top` (not `top` itself).
pub(crate) async fn subtree_usage(meta: &dyn MetaEngine, top: Ino) -> Result<(i64, i64)> {
    let (mut space, mut inodes) = (0i64, 0i64);
    let mut stack = vec![top];
    while let Some(dir) = stack.pop() {
        let mut pages = DirPages::new(dir);
        while let Some(page) = pages.next(meta).await? {
            for e in page {
                let length = match (&e.attr, e.typ) {
                    (Some(a), FileType::Regular) => a.length,
                    _ => 0,
                };
                space = space.saturating_add(entry_usage(e.typ, length).1);
                inodes += 1;
                if e.typ == FileType::Directory {
                    stack.push(e.ino);
                }
            }
        }
    }
    Ok((space, inodes))
}

/// `(space, inodes)` of every owner (users and groups) of the volume, the trash included:
/// each inode counted once, hard links too.
pub(crate) async fn owner_usage(
    meta: &dyn MetaEngine,
) -> Result<BTreeMap<(QuotaKind, u64), (i64, i64)>> {
    let mut out: BTreeMap<(QuotaKind, u64), (i64, i64)> = BTreeMap::new();
    let mut add = |uid: u32, gid: u32, space: i64| {
        for k in [
            (QuotaKind::User, u64::from(uid)),
            (QuotaKind::Group, u64::from(gid)),
        ] {
            let e = out.entry(k).or_default();
            e.0 = e.0.saturating_add(space);
            e.1 += 1;
        }
    };
    let mut linked: HashSet<Ino> = HashSet::new();
    let mut stack = vec![ROOT_INO];
    if meta.getattr(TRASH_INO).await.is_ok() {
        stack.push(TRASH_INO);
    }
    while let Some(dir) = stack.pop() {
        let mut pages = DirPages::new(dir);
        while let Some(page) = pages.next(meta).await? {
            for e in page {
                let Some(a) = &e.attr else { continue };
                if a.nlink > 1 && e.typ != FileType::Directory && !linked.insert(e.ino) {
                    continue;
                }
                // Hour directories of the trash are no one's usage.
                if dir != TRASH_INO {
                    add(a.uid, a.gid, entry_usage(a.typ, a.length).1);
                }
                if e.typ == FileType::Directory {
                    stack.push(e.ino);
                }
            }
        }
    }
    Ok(out)
}

/// Sets quota `key` of `kind` (see the module docs).
pub(crate) async fn set(
    meta: &dyn MetaEngine,
    kind: QuotaKind,
    key: u64,
    limits: (i64, i64),
) -> Result<()> {
    match kind {
        QuotaKind::Dir => {
            let used = match meta.get_quota(kind, key).await? {
                Some(_) => None,
                None => {
                    if !meta.getattr(key).await?.is_dir() {
                        return Err(MetaError::NotDir.into());
                    }
                    Some(subtree_usage(meta, key).await?)
                }
            };
            meta.set_quota(kind, key, limits, used).await?;
        }
        QuotaKind::User | QuotaKind::Group => {
            let mut fmt = meta.load().await?;
            if !meta_api::quota::user_group_quota(&fmt) {
                meta_api::quota::set_user_group_quota(&mut fmt, true);
                meta.init(&fmt, true).await?;
                for ((k, id), used) in owner_usage(meta).await? {
                    let q = meta.get_quota(k, id).await?.unwrap_or(Quota::UNLIMITED);
                    meta.set_quota(k, id, (q.max_space, q.max_inodes), Some(used))
                        .await?;
                }
            }
            meta.set_quota(kind, key, limits, None).await?;
        }
    }
    Ok(())
}

/// Recounts the quotas of `kind` (all of them, or only `key`) and reports each; with
/// `repair` stores the counts of those that disagree.
pub(crate) async fn check(
    meta: &dyn MetaEngine,
    kind: QuotaKind,
    key: Option<u64>,
    repair: bool,
) -> Result<Vec<QuotaCheck>> {
    let quotas: Vec<(u64, Quota)> = match key {
        Some(k) => meta
            .get_quota(kind, k)
            .await?
            .map(|q| (k, q))
            .into_iter()
            .collect(),
        None => meta.list_quotas(kind).await?,
    };
    let owners = match kind {
        QuotaKind::Dir => BTreeMap::new(),
        _ => owner_usage(meta).await?,
    };
    let mut out = Vec::with_capacity(quotas.len());
    for (k, stored) in quotas {
        let counted = match kind {
            QuotaKind::Dir => subtree_usage(meta, k).await?,
            _ => owners.get(&(kind, k)).copied().unwrap_or((0, 0)),
        };
        let c = QuotaCheck {
            kind,
            key: k,
            stored,
            counted,
        };
        if repair && !c.is_consistent() {
            let limits = (stored.max_space, stored.max_inodes);
            meta.set_quota(kind, k, limits, Some(counted)).await?;
        }
        out.push(c);
    }
    Ok(out)
}
