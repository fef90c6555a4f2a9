//! Directory operations: lookup, create, link, unlink, rmdir, rename, readdir.

use async_trait::async_trait;
use meta_api::acl::AclCache;
use meta_api::backend::Namespace;
use meta_api::encoding::encode_entry;
use meta_api::flags;
use meta_api::name::validate_name;
use meta_api::perm::{check_access_with, check_remove_with, new_inode_with_acl};
use meta_api::space::align4k;
use meta_api::{
    access, Attr, Context, DirEntry, Entry, FileType, Ino, MetaError, RenameFlags, Result,
    Timestamp, ROOT_INO,
};

use super::acl::{access as acl_access, check_rule, rule_of, save_rule};
use super::quota;
use super::session::live_openers;
use super::stats::StatDelta;
use super::trash as bin;
use super::{add_usage, dir_attr, get_attr, get_entry, must_attr, put_attr, TkvMeta};
use crate::keys::{pack_int64, Keys};
use crate::kv::{key_after, KvStore, KvTxn};
use meta_api::quota::Charge;
use meta_api::trash;
use meta_api::Format;

/// How far up the tree the rename loop check walks before calling the tree corrupt.
const MAX_DEPTH: usize = 100_000;

/// Drops one link of the non-directory `ino` (attributes `attr`, entry already removed
/// from `parent`): updates its link count and hard-link parents, and when the last link
/// goes either keeps a regular file for every live session that has it open (they
/// sustain it) or deletes the inode, queueing a regular file's data for purging.
async fn drop_link<T: KvTxn>(
    tx: &T,
    keys: &Keys,
    ino: Ino,
    mut attr: Attr,
    parent: Ino,
    now: Timestamp,
) -> Result<()> {
    attr.ctime = now;
    attr.nlink = attr.nlink.saturating_sub(1);
    if attr.nlink > 0 {
        put_attr(tx, keys, ino, &attr);
        if attr.parent == 0 {
            tx.atomic_add(&keys.parent(ino, parent), -1);
        }
        return Ok(());
    }
    let openers = match attr.typ {
        FileType::Regular => live_openers(tx, keys, ino, 0).await?,
        _ => Vec::new(),
    };
    if !openers.is_empty() {
        // Still readable through the open handles, extended attributes included; the
        // last session to let go deletes it (`session::release`).
        put_attr(tx, keys, ino, &attr);
        for sid in openers {
            tx.set(&keys.sustained(sid, ino), &[1]);
        }
        if attr.parent == 0 {
            let parents = keys.parents(ino);
            tx.clear_range(&parents, &Keys::end_of(&parents));
        }
        return Ok(());
    }
    match attr.typ {
        FileType::Regular => {
            tx.set(&keys.delfile(ino, attr.length), &pack_int64(now.sec));
            add_usage(tx, keys, -align4k(attr.length), -1);
        }
        FileType::Symlink => {
            tx.clear(&keys.symlink(ino));
            add_usage(tx, keys, -align4k(0), -1);
        }
        _ => add_usage(tx, keys, -align4k(0), -1),
    }
    tx.clear(&keys.inode(ino));
    let xattrs = keys.xattrs(ino);
    tx.clear_range(&xattrs, &Keys::end_of(&xattrs));
    if attr.parent == 0 {
        let parents = keys.parents(ino);
        tx.clear_range(&parents, &Keys::end_of(&parents));
    }
    Ok(())
}

/// Removes the empty directory `ino` (its entry is already gone).
fn drop_dir<T: KvTxn>(tx: &T, keys: &Keys, ino: Ino) {
    tx.clear(&keys.inode(ino));
    drop_dir_keys(tx, keys, ino);
    let xattrs = keys.xattrs(ino);
    tx.clear_range(&xattrs, &Keys::end_of(&xattrs));
    add_usage(tx, keys, -align4k(0), -1);
}

/// Clears the statistics and the quota of a directory that is removed or moved into the
/// trash (JuiceFS drops both then).
fn drop_dir_keys<T: KvTxn>(tx: &T, keys: &Keys, ino: Ino) {
    tx.clear(&keys.dir_stat(ino));
    tx.clear(&keys.dir_quota(ino));
}

async fn is_empty_dir<T: KvTxn>(tx: &T, keys: &Keys, ino: Ino) -> Result<bool> {
    let p = keys.entries(ino);
    Ok(tx.scan(&p, &Keys::end_of(&p), 1, false).await?.is_empty())
}

/// Whether `dir` is `ino` or below it, walking up the parents of directories.
async fn is_within<T: KvTxn>(tx: &T, keys: &Keys, mut dir: Ino, ino: Ino) -> Result<bool> {
    for _ in 0..MAX_DEPTH {
        if dir == ino {
            return Ok(true);
        }
        if dir == ROOT_INO || dir == 0 {
            return Ok(false);
        }
        dir = must_attr(tx, keys, dir).await?.parent;
    }
    Err(MetaError::Corrupt(format!(
        "directory {dir} is more than {MAX_DEPTH} levels deep or in a loop"
    )))
}

#[async_trait]
impl<K: KvStore> Namespace for TkvMeta<K> {
    async fn lookup(&self, ctx: &Context, parent: Ino, name: &[u8]) -> Result<Entry> {
        let dots = name == b"." || name == b"..";
        if !dots {
            validate_name(name)?;
        }
        let (keys, cache) = (&self.keys, &self.acls);
        self.kv
            .txn(|tx| async move {
                let pattr = dir_attr(&tx, keys, parent).await?;
                acl_access(&tx, keys, cache, ctx, &pattr, access::X).await?;
                if name == b"." {
                    return Ok(Entry {
                        ino: parent,
                        attr: pattr,
                    });
                }
                if name == b".." {
                    let up = if parent == ROOT_INO || pattr.parent == 0 {
                        ROOT_INO
                    } else {
                        pattr.parent
                    };
                    let attr = must_attr(&tx, keys, up).await?;
                    return Ok(Entry { ino: up, attr });
                }
                let (_, ino) = get_entry(&tx, keys, parent, name)
                    .await?
                    .ok_or(MetaError::NotFound)?;
                let attr = get_attr(&tx, keys, ino).await?.ok_or_else(|| {
                    MetaError::Corrupt(format!("entry in {parent} points to missing inode {ino}"))
                })?;
                Ok(Entry { ino, attr })
            })
            .await
    }

    async fn create(&self, ctx: &Context, parent: Ino, name: &[u8], mode: u16) -> Result<Entry> {
        let e = self
            .make(ctx, parent, name, FileType::Regular, mode, 0, b"", true)
            .await?;
        self.open_files.open(e.ino);
        Ok(e)
    }

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

    async fn link(&self, ctx: &Context, ino: Ino, parent: Ino, name: &[u8]) -> Result<Entry> {
        let fmt = &self.settings().await?;
        let on = fmt.dir_stats;
        let now = self.now();
        let (keys, cache) = (&self.keys, &self.acls);
        self.kv
            .txn(|tx| async move {
                let mut attr = must_attr(&tx, keys, ino).await?;
                if attr.typ == FileType::Directory {
                    return Err(MetaError::NotPermitted);
                }
                if attr.nlink == 0 {
                    // Unlinked but kept open: Linux refuses to give it a name again.
                    return Err(MetaError::NotFound);
                }
                let mut pattr = dir_attr(&tx, keys, parent).await?;
                trash::check_live_dir(&pattr)?;
                acl_access(&tx, keys, cache, ctx, &pattr, access::W | access::X).await?;
                if get_entry(&tx, keys, parent, name).await?.is_some() {
                    return Err(MetaError::Exists);
                }
                flags::check_link(&pattr, &attr)?;
                let space = meta_api::space::entry_usage(attr.typ, attr.length).1;
                quota::charge(
                    &tx,
                    keys,
                    fmt,
                    Charge::new(space, 1, None, vec![parent]),
                    None,
                )
                .await?;
                pattr.mtime = now;
                pattr.ctime = now;
                // A hard-linked inode has no single parent: JuiceFS sets it to 0 and counts
                // the links per parent directory instead.
                let old_parent = attr.parent;
                attr.parent = 0;
                attr.ctime = now;
                attr.nlink += 1;
                tx.set(&keys.entry(parent, name), &encode_entry(attr.typ, ino));
                put_attr(&tx, keys, parent, &pattr);
                put_attr(&tx, keys, ino, &attr);
                if old_parent > 0 {
                    tx.atomic_add(&keys.parent(ino, old_parent), 1);
                }
                tx.atomic_add(&keys.parent(ino, parent), 1);
                StatDelta::default()
                    .entry(parent, &attr, 1)
                    .apply(&tx, keys, on)
                    .await?;
                Ok(Entry { ino, attr })
            })
            .await
    }

    async fn unlink(&self, ctx: &Context, parent: Ino, name: &[u8]) -> Result<()> {
        validate_name(name)?;
        let fmt = &self.settings().await?;
        let now = self.now();
        let (keys, cache) = (&self.keys, &self.acls);
        self.kv
            .txn(|tx| async move { unlink_in(&tx, (keys, cache), (fmt, ctx), parent, name, now).await })
            .await
    }

    /// Every name in one transaction (reads see the transaction's own writes, as in
    /// FoundationDB).
    async fn unlink_batch(&self, ctx: &Context, parent: Ino, names: &[Vec<u8>]) -> Result<()> {
        let fmt = &self.settings().await?;
        let now = self.now();
        let (keys, cache) = (&self.keys, &self.acls);
        self.kv
            .txn(|tx| async move {
                for name in names {
                    unlink_in(&tx, (keys, cache), (fmt, ctx), parent, name, now).await?;
                }
                Ok(())
            })
            .await
    }

    async fn rmdir(&self, ctx: &Context, parent: Ino, name: &[u8]) -> Result<()> {
        validate_name(name)?;
        let fmt = &self.settings().await?;
        let now = self.now();
        let (keys, cache) = (&self.keys, &self.acls);
        self.kv
            .txn(|tx| async move {
                let mut pattr = dir_attr(&tx, keys, parent).await?;
                let prule = check_rule(&tx, keys, cache, ctx, &pattr).await?;
                check_access_with(ctx, &pattr, prule.as_deref(), access::W | access::X)?;
                let (typ, ino) = get_entry(&tx, keys, parent, name)
                    .await?
                    .ok_or(MetaError::NotFound)?;
                let attr = get_attr(&tx, keys, ino).await?;
                if let Some(attr) = &attr {
                    check_remove_with(ctx, &pattr, prule.as_deref(), attr)?;
                }
                if typ != FileType::Directory {
                    return Err(MetaError::NotDir);
                }
                if !is_empty_dir(&tx, keys, ino).await? {
                    return Err(MetaError::NotEmpty);
                }
                flags::check_remove(&pattr, attr.as_ref())?;
                if trash::counts_links(parent) {
                    pattr.nlink = pattr.nlink.saturating_sub(1);
                }
                pattr.mtime = now;
                pattr.ctime = now;
                tx.clear(&keys.entry(parent, name));
                put_attr(&tx, keys, parent, &pattr);
                let fate = match &attr {
                    Some(a) => {
                        bin::fate(&tx, keys, (fmt, ctx), (parent, name), ino, a, now).await?
                    }
                    None => None,
                };
                let gone = fate.is_none() && parent != meta_api::TRASH_INO;
                let owner = attr.as_ref().filter(|_| gone).map(|a| (a.uid, a.gid));
                let ch = Charge::new(-align4k(0), -1, owner, vec![parent]);
                quota::charge(&tx, keys, fmt, ch, None).await?;
                let mut d = StatDelta::default();
                if trash::keeps_stats(parent) {
                    d.add(parent, FileType::Directory, 0, -1);
                }
                match (fate, attr) {
                    (Some((hour, tname)), Some(a)) => {
                        drop_dir_keys(&tx, keys, ino);
                        bin::put(&tx, keys, &mut d, (hour, &tname), parent, ino, a, now);
                    }
                    _ => drop_dir(&tx, keys, ino),
                }
                d.apply(&tx, keys, fmt.dir_stats).await
            })
            .await
    }

    async fn rename(
        &self,
        ctx: &Context,
        psrc: Ino,
        nsrc: &[u8],
        pdst: Ino,
        ndst: &[u8],
        flags: RenameFlags,
    ) -> Result<()> {
        let fmt = &self.settings().await?;
        let now = self.now();
        let (keys, cache) = (&self.keys, &self.acls);
        let names = (psrc, nsrc, pdst, ndst);
        self.kv
            .txn(
                |tx| async move { rename_txn(&tx, keys, cache, fmt, ctx, names, flags, now).await },
            )
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
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (keys, cache) = (&self.keys, &self.acls);
        let prefix = keys.entries(ino);
        let begin = match after {
            Some(name) => key_after(&keys.entry(ino, name)),
            None => prefix.clone(),
        };
        let end = Keys::end_of(&prefix);
        let (begin, end, prefix_len) = (&begin, &end, prefix.len());
        self.kv
            .txn(|tx| async move {
                let attr = dir_attr(&tx, keys, ino).await?;
                acl_access(&tx, keys, cache, ctx, &attr, access::R).await?;
                let pairs = tx.scan(begin, end, limit, false).await?;
                let mut out = Vec::with_capacity(pairs.len());
                for (k, v) in pairs {
                    let name = k.get(prefix_len..).unwrap_or_default().to_vec();
                    if name.is_empty() {
                        continue; // JuiceFS skips corrupt entries without a name
                    }
                    let (typ, child) = meta_api::encoding::decode_entry(&v)?;
                    let attr = if plus {
                        get_attr(&tx, keys, child).await?
                    } else {
                        None
                    };
                    out.push(DirEntry {
                        name,
                        ino: child,
                        typ,
                        attr,
                    });
                }
                Ok(out)
            })
            .await
    }

    async fn readlink(&self, ino: Ino) -> Result<Vec<u8>> {
        let keys = &self.keys;
        self.kv
            .txn(|tx| async move {
                let attr = must_attr(&tx, keys, ino).await?;
                if attr.typ != FileType::Symlink {
                    return Err(MetaError::InvalidArgument("not a symbolic link"));
                }
                tx.get(&keys.symlink(ino))
                    .await?
                    .ok_or_else(|| MetaError::Corrupt(format!("symlink {ino} has no target")))
            })
            .await
    }
}

/// The body of a rename, in one transaction.
#[allow(clippy::too_many_arguments)]
async fn rename_txn<T: KvTxn>(
    tx: &T,
    keys: &Keys,
    cache: &AclCache,
    fmt: &Format,
    ctx: &Context,
    (psrc, nsrc, pdst, ndst): (Ino, &[u8], Ino, &[u8]),
    flags: RenameFlags,
    now: Timestamp,
) -> Result<()> {
    let exchange = flags.exchange();
    let mut sattr = dir_attr(tx, keys, psrc).await?;
    let mut dattr = if pdst == psrc {
        sattr.clone()
    } else {
        dir_attr(tx, keys, pdst).await?
    };
    trash::check_destination(&dattr, flags)?;
    let srule = check_rule(tx, keys, cache, ctx, &sattr).await?;
    let drule = check_rule(tx, keys, cache, ctx, &dattr).await?;
    check_access_with(ctx, &sattr, srule.as_deref(), access::W | access::X)?;
    check_access_with(ctx, &dattr, drule.as_deref(), access::W | access::X)?;
    let (typ, ino) = get_entry(tx, keys, psrc, nsrc)
        .await?
        .ok_or(MetaError::NotFound)?;
    let target = get_entry(tx, keys, pdst, ndst).await?;
    if exchange && target.is_none() {
        return Err(MetaError::NotFound);
    }
    if flags.noreplace() && target.is_some() {
        return Err(MetaError::Exists);
    }
    if target.is_some_and(|(_, dino)| dino == ino) {
        // Two names of one inode (or the same name): POSIX makes this a no-op.
        return Ok(());
    }
    let mut iattr = must_attr(tx, keys, ino).await?;
    let target = match target {
        Some((dtyp, dino)) => Some((dtyp, dino, must_attr(tx, keys, dino).await?)),
        None => None,
    };
    // A directory must not move below itself.
    if typ == FileType::Directory && psrc != pdst && is_within(tx, keys, pdst, ino).await? {
        return Err(MetaError::InvalidArgument(
            "cannot move a directory into its own subtree",
        ));
    }
    if let (true, Some((FileType::Directory, dino, _))) = (exchange, &target) {
        if psrc != pdst && is_within(tx, keys, psrc, *dino).await? {
            return Err(MetaError::InvalidArgument(
                "cannot move a directory into its own subtree",
            ));
        }
    }
    check_remove_with(ctx, &sattr, srule.as_deref(), &iattr)?;
    if let Some((_, _, ta)) = &target {
        check_remove_with(ctx, &dattr, drule.as_deref(), ta)?;
    }
    if let (false, Some((dtyp, dino, _))) = (exchange, &target) {
        if typ == FileType::Directory && *dtyp != FileType::Directory {
            return Err(MetaError::NotDir);
        }
        if typ != FileType::Directory && *dtyp == FileType::Directory {
            return Err(MetaError::IsDir);
        }
        if *dtyp == FileType::Directory && !is_empty_dir(tx, keys, *dino).await? {
            return Err(MetaError::NotEmpty);
        }
    }
    flags::check_rename(&sattr, &iattr, &dattr, target.as_ref().map(|(_, _, ta)| ta))?;

    let mut d = StatDelta::default();
    if psrc != pdst {
        d.entry(psrc, &iattr, -1).entry(pdst, &iattr, 1);
    }
    let mut tattr: Option<(FileType, Ino, Attr)> = None;
    if let Some((dtyp, dino, mut ta)) = target {
        ta.ctime = now;
        if exchange && psrc != pdst {
            d.entry(pdst, &ta, -1).entry(psrc, &ta, 1);
            if dtyp == FileType::Directory {
                ta.parent = psrc;
                dattr.nlink = dattr.nlink.saturating_sub(1);
                sattr.nlink += 1;
            } else if ta.parent > 0 {
                ta.parent = psrc;
            }
        }
        tattr = Some((dtyp, dino, ta));
    }

    // Move the source.
    if psrc != pdst {
        if typ == FileType::Directory {
            iattr.parent = pdst;
            if trash::counts_links(psrc) {
                sattr.nlink = sattr.nlink.saturating_sub(1);
            }
            dattr.nlink += 1;
        } else if iattr.parent > 0 {
            iattr.parent = pdst;
        } else {
            tx.atomic_add(&keys.parent(ino, pdst), 1);
            tx.atomic_add(&keys.parent(ino, psrc), -1);
        }
    }
    iattr.ctime = now;
    let src_entry = encode_entry(typ, ino);

    match &tattr {
        Some((_, dino, ta)) if exchange => {
            quota::move_quota(tx, keys, fmt, (ino, &iattr), psrc, pdst).await?;
            quota::move_quota(tx, keys, fmt, (*dino, ta), pdst, psrc).await?;
        }
        Some((_, dino, ta)) => {
            // The victim's entry leaves first, then the source arrives.
            let fate = bin::fate(tx, keys, (fmt, ctx), (pdst, ndst), *dino, ta, now).await?;
            let gone = fate.is_none() && (ta.is_dir() || ta.nlink <= 1);
            let owner = gone.then_some((ta.uid, ta.gid));
            let space = meta_api::space::entry_usage(ta.typ, ta.length).1;
            let ch = Charge::new(-space, -1, owner, vec![pdst]);
            quota::charge(tx, keys, fmt, ch, None).await?;
            quota::move_quota(tx, keys, fmt, (ino, &iattr), psrc, pdst).await?;
        }
        None => quota::move_quota(tx, keys, fmt, (ino, &iattr), psrc, pdst).await?,
    }
    match tattr {
        Some((dtyp, dino, ta)) if exchange => {
            tx.set(&keys.entry(psrc, nsrc), &encode_entry(dtyp, dino));
            put_attr(tx, keys, dino, &ta);
            if psrc != pdst && ta.parent == 0 {
                tx.atomic_add(&keys.parent(dino, psrc), 1);
                tx.atomic_add(&keys.parent(dino, pdst), -1);
            }
        }
        Some((dtyp, dino, ta)) => {
            tx.clear(&keys.entry(psrc, nsrc));
            if dtyp == FileType::Directory {
                dattr.nlink = dattr.nlink.saturating_sub(1);
            }
            d.entry(pdst, &ta, -1);
            match bin::fate(tx, keys, (fmt, ctx), (pdst, ndst), dino, &ta, now).await? {
                Some((hour, tname)) => {
                    if dtyp == FileType::Directory {
                        drop_dir_keys(tx, keys, dino);
                    }
                    bin::put(tx, keys, &mut d, (hour, &tname), pdst, dino, ta, now);
                }
                None if dtyp == FileType::Directory => drop_dir(tx, keys, dino),
                None => drop_link(tx, keys, dino, ta, pdst, now).await?,
            }
        }
        None => tx.clear(&keys.entry(psrc, nsrc)),
    }

    sattr.mtime = now;
    sattr.ctime = now;
    dattr.mtime = now;
    dattr.ctime = now;
    put_attr(tx, keys, ino, &iattr);
    tx.set(&keys.entry(pdst, ndst), &src_entry);
    if psrc == pdst {
        put_attr(tx, keys, pdst, &dattr);
    } else {
        put_attr(tx, keys, psrc, &sattr);
        put_attr(tx, keys, pdst, &dattr);
    }
    d.apply(tx, keys, fmt.dir_stats).await
}

impl<K: KvStore> TkvMeta<K> {
    /// Creates an inode of any type; `open`: a regular file whose open by this session is
    /// recorded in the same transaction (the caller then counts it in its open table).
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
        let sid = if open {
            self.session_id().unwrap_or(0)
        } else {
            0
        };
        let ino = self.next_inode().await?;
        let limits = self.usage_limits().await?;
        let fmt = &self.settings().await?;
        let on = fmt.dir_stats;
        let now = self.now();
        let (keys, cache) = (&self.keys, &self.acls);
        self.kv
            .txn(|tx| async move {
                let mut pattr = dir_attr(&tx, keys, parent).await?;
                trash::check_live_dir(&pattr)?;
                acl_access(&tx, keys, cache, ctx, &pattr, access::W | access::X).await?;
                flags::check_create(&pattr)?;
                if get_entry(&tx, keys, parent, name).await?.is_some() {
                    return Err(MetaError::Exists);
                }
                let default = rule_of(&tx, keys, cache, pattr.default_acl).await?;
                let new = new_inode_with_acl(ctx, &pattr, default.as_deref(), typ, mode);
                let ch = Charge::new(align4k(0), 1, Some((ctx.uid, new.gid)), vec![parent]);
                quota::charge(&tx, keys, fmt, ch, limits.as_ref()).await?;
                let mut attr = Attr::new(typ, new.mode, ctx.uid, new.gid, now);
                attr.parent = parent;
                attr.default_acl = new.default_acl;
                attr.flags = new.flags;
                if let Some(rule) = &new.access_rule {
                    attr.access_acl = save_rule(&tx, keys, cache, rule).await?;
                }
                match typ {
                    FileType::Directory => {
                        attr.nlink = 2;
                        attr.length = 4096;
                        pattr.nlink += 1;
                    }
                    FileType::Symlink => attr.length = target.len() as u64,
                    _ => {}
                }
                attr.rdev = rdev;
                pattr.mtime = now;
                pattr.ctime = now;
                tx.set(&keys.entry(parent, name), &encode_entry(typ, ino));
                put_attr(&tx, keys, parent, &pattr);
                put_attr(&tx, keys, ino, &attr);
                match typ {
                    FileType::Symlink => tx.set(&keys.symlink(ino), target),
                    // JuiceFS creates empty directory statistics with every directory.
                    FileType::Directory => tx.set(&keys.dir_stat(ino), &[0u8; 24]),
                    _ => {}
                }
                if sid != 0 {
                    tx.set(&keys.opener(ino, sid), &[1]);
                    tx.set(&keys.opened(sid, ino), &[1]);
                }
                add_usage(&tx, keys, align4k(0), 1);
                StatDelta::default()
                    .entry(parent, &attr, 1)
                    .apply(&tx, keys, on)
                    .await?;
                Ok(Entry { ino, attr })
            })
            .await
    }
}

/// [`Namespace::unlink`] inside the caller's transaction.
async fn unlink_in<T: KvTxn>(
    tx: &T,
    (keys, cache): (&Keys, &meta_api::acl::AclCache),
    (fmt, ctx): (&Format, &Context),
    parent: Ino,
    name: &[u8],
    now: Timestamp,
) -> Result<()> {
    let mut pattr = dir_attr(tx, keys, parent).await?;
    let prule = check_rule(tx, keys, cache, ctx, &pattr).await?;
    check_access_with(ctx, &pattr, prule.as_deref(), access::W | access::X)?;
    let (typ, ino) = get_entry(tx, keys, parent, name)
        .await?
        .ok_or(MetaError::NotFound)?;
    let attr = get_attr(tx, keys, ino).await?;
    if let Some(attr) = &attr {
        check_remove_with(ctx, &pattr, prule.as_deref(), attr)?;
    }
    if typ == FileType::Directory {
        return Err(MetaError::IsDir);
    }
    flags::check_remove(&pattr, attr.as_ref())?;
    pattr.mtime = now;
    pattr.ctime = now;
    tx.clear(&keys.entry(parent, name));
    put_attr(tx, keys, parent, &pattr);
    // An entry whose inode is gone (a corrupt volume) just loses its name.
    let Some(attr) = attr else { return Ok(()) };
    let mut d = StatDelta::default();
    d.entry(parent, &attr, -1);
    let fate = bin::fate(tx, keys, (fmt, ctx), (parent, name), ino, &attr, now).await?;
    let owner = (fate.is_none() && attr.nlink <= 1).then_some((attr.uid, attr.gid));
    let space = meta_api::space::entry_usage(attr.typ, attr.length).1;
    let ch = Charge::new(-space, -1, owner, vec![parent]);
    quota::charge(tx, keys, fmt, ch, None).await?;
    match fate {
        Some((hour, tname)) => {
            bin::put(tx, keys, &mut d, (hour, &tname), parent, ino, attr, now);
        }
        None => drop_link(tx, keys, ino, attr, parent, now).await?,
    }
    d.apply(tx, keys, fmt.dir_stats).await
}
