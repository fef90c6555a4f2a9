//! Lookup, attributes, creation, links, removal, rename and listing.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use meta_api::backend::Namespace;
use meta_api::encoding::{decode_attr, decode_entry, encode_attr, encode_entry};
use meta_api::flags;
use meta_api::perm::{check_access_with, check_remove_with, new_inode_with_acl};
use meta_api::space::align4k;
use meta_api::{
    access, name, Attr, Context, DirEntry, Entry, FileType, Ino, MetaError, RenameFlags, Result,
    ROOT_INO,
};

use super::trash::Fate;
use super::{entry_usage, need_dir, now, DirStats, RedisMeta, Writes};
use crate::txn::{Step, Tx};
use meta_api::quota::Charge;
use meta_api::trash;

/// Deepest directory chain walked when checking that a directory is not moved into
/// its own subtree (a longer chain means a cycle in corrupt metadata).
const MAX_DEPTH: usize = 100_000;

/// Stand-in attributes for a dangling entry whose inode is gone, for permission checks.
fn ghost(typ: FileType) -> Attr {
    Attr::new(typ, 0, u32::MAX, u32::MAX, Default::default())
}

impl RedisMeta {
    /// Queues the writes that remove inode `ino` whose last name is gone (`attr.nlink`
    /// is already 0 for files). A regular file open in any live session is sustained
    /// by each of those sessions instead; otherwise files go to `delfiles` for their
    /// data to be purged.
    pub(crate) async fn drop_inode(
        &self,
        tx: &mut Tx,
        w: &mut Writes,
        ino: Ino,
        attr: &Attr,
    ) -> Result<()> {
        let live = if attr.typ == FileType::Regular {
            tx.watch(&[self.keys.openers(ino)]).await?;
            self.live_openers(tx, ino).await?
        } else {
            Vec::new()
        };
        self.drop_inode_writes(w, ino, attr, &live);
        Ok(())
    }

    /// The writes of [`RedisMeta::drop_inode`], given the live sessions `live` that have
    /// regular file `ino` open.
    pub(crate) fn drop_inode_writes(&self, w: &mut Writes, ino: Ino, attr: &Attr, live: &[u64]) {
        let k = &self.keys;
        match attr.typ {
            FileType::Regular => {
                if live.is_empty() {
                    w.zadd(
                        k.delfiles(),
                        now().sec,
                        &crate::keys::delfile_member(ino, attr.length),
                    )
                    .del(k.inode(ino))
                    .del(k.openers(ino))
                    .incrby(k.used_space(), -align4k(attr.length))
                    .incrby(k.total_inodes(), -1);
                } else {
                    let mut a = attr.clone();
                    a.nlink = 0;
                    w.set_attr(k, ino, &a);
                    for &sid in live {
                        w.sadd(k.sustained(sid), ino);
                    }
                    // Its last close here releases it at once instead of in a batch.
                    if live.contains(&self.sid.load(std::sync::atomic::Ordering::Relaxed)) {
                        self.closes.unlinked_here(ino);
                    }
                }
            }
            FileType::Directory => {
                w.del(k.inode(ino)).del(k.entries(ino));
                self.drop_dir_fields(w, ino);
                w.incrby(k.used_space(), -align4k(0))
                    .incrby(k.total_inodes(), -1);
            }
            typ => {
                if typ == FileType::Symlink {
                    w.del(k.symlink(ino));
                }
                w.del(k.inode(ino))
                    .incrby(k.used_space(), -align4k(0))
                    .incrby(k.total_inodes(), -1);
            }
        }
        w.del(k.xattrs(ino));
        if attr.parent == 0 {
            w.del(k.parents(ino));
        }
    }

    /// Queues the removal of a directory's statistics and quota, as when it is removed or
    /// moved into the trash (JuiceFS drops both then).
    pub(crate) fn drop_dir_fields(&self, w: &mut Writes, ino: Ino) {
        let k = &self.keys;
        let field = ino.to_string();
        for key in [
            k.dir_data_length(),
            k.dir_used_space(),
            k.dir_used_inodes(),
            k.dir_quota(),
            k.dir_quota_used_space(),
            k.dir_quota_used_inodes(),
        ] {
            w.hdel(key, field.as_bytes());
        }
    }

    /// Fails with `InvalidArgument` if directory `moved` is `dest` or one of its
    /// ancestors, watching every ancestor read so that a concurrent move is noticed.
    async fn check_not_inside(
        &self,
        tx: &mut Tx,
        moved: Ino,
        dest: Ino,
        dest_attr: &Attr,
    ) -> Result<()> {
        let mut cur = dest;
        let mut parent = dest_attr.parent;
        for _ in 0..MAX_DEPTH {
            if cur == moved {
                return Err(MetaError::InvalidArgument(
                    "a directory cannot move into itself",
                ));
            }
            if cur == ROOT_INO || parent == 0 {
                return Ok(());
            }
            cur = parent;
            tx.watch(&[self.keys.inode(cur)]).await?;
            parent = match tx.attr(cur).await? {
                Some(a) => a.parent,
                None => return Err(MetaError::NotFound),
            };
        }
        Err(MetaError::Corrupt(format!(
            "directory chain above {dest} is too deep"
        )))
    }
}

/// Moves `ino` (attributes `a`) from directory `from` to `to`: a directory changes its
/// parent and the two link counts, a single-parent file its parent field, a hard-linked
/// file its `p{ino}` counts.
#[allow(clippy::too_many_arguments)]
fn move_parent(
    w: &mut Writes,
    k: &crate::keys::Keys,
    ino: Ino,
    a: &mut Attr,
    from: Ino,
    to: Ino,
    from_links: &mut i64,
    to_links: &mut i64,
) {
    if a.is_dir() {
        a.parent = to;
        if trash::counts_links(from) {
            *from_links -= 1;
        }
        *to_links += 1;
    } else if a.parent > 0 {
        a.parent = to;
    } else {
        w.hincrby(k.parents(ino), to.to_string().as_bytes(), 1);
        w.hincrby(k.parents(ino), from.to_string().as_bytes(), -1);
    }
}

fn add_links(n: u32, delta: i64) -> u32 {
    (i64::from(n) + delta).clamp(0, i64::from(u32::MAX)) as u32
}

#[async_trait]
impl Namespace for RedisMeta {
    async fn lookup(&self, ctx: &Context, parent: Ino, name: &[u8]) -> Result<Entry> {
        if name == b"." || name == b".." {
            let pattr = need_dir(self.get_attr(parent).await?)?;
            self.access(ctx, &pattr, access::X).await?;
            if name == b"." {
                return Ok(Entry {
                    ino: parent,
                    attr: pattr,
                });
            }
            let up = if parent == ROOT_INO || pattr.parent == 0 {
                ROOT_INO
            } else {
                pattr.parent
            };
            let attr = self.get_attr(up).await?.ok_or(MetaError::NotFound)?;
            return Ok(Entry { ino: up, attr });
        }
        name::validate_name(name)?;
        let ki = self.keys.inode(parent);
        let kd = self.keys.entries(parent);
        let prefix = self.keys.prefix();
        let script = &self.lookup_script;
        let parts: Vec<Vec<u8>> = self
            .conns
            .shared(|mut c| {
                let (ki, kd) = (&ki, &kd);
                async move {
                    script
                        .key(ki)
                        .key(kd)
                        .arg(name)
                        .arg(prefix)
                        .invoke_async(&mut c)
                        .await
                }
            })
            .await?;
        let mut it = parts.into_iter();
        let pattr = need_dir(it.next().map(|b| decode_attr(&b)).transpose()?)?;
        self.access(ctx, &pattr, access::X).await?;
        let (_, ino) = decode_entry(&it.next().ok_or(MetaError::NotFound)?)?;
        let attr = decode_attr(&it.next().ok_or(MetaError::NotFound)?)?;
        Ok(Entry { ino, attr })
    }

    async fn create(&self, ctx: &Context, parent: Ino, name: &[u8], mode: u16) -> Result<Entry> {
        self.make(ctx, parent, name, FileType::Regular, mode, 0, b"", true)
            .await
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

    async fn readlink(&self, ino: Ino) -> Result<Vec<u8>> {
        let (a, t): (Option<Vec<u8>>, Option<Vec<u8>>) = self
            .read(
                redis::cmd("MGET")
                    .arg(self.keys.inode(ino))
                    .arg(self.keys.symlink(ino)),
            )
            .await?;
        let attr = decode_attr(&a.ok_or(MetaError::NotFound)?)?;
        if attr.typ != FileType::Symlink {
            return Err(MetaError::InvalidArgument("not a symlink"));
        }
        t.ok_or_else(|| MetaError::Corrupt(format!("symlink {ino} has no target")))
    }

    async fn link(&self, ctx: &Context, ino: Ino, parent: Ino, name: &[u8]) -> Result<Entry> {
        let keys = [
            self.keys.inode(parent),
            self.keys.entries(parent),
            self.keys.inode(ino),
        ];
        self.txn(&keys, |mut tx| async move {
            let got = tx.attrs(&[parent, ino]).await?;
            let mut it = got.into_iter();
            let pattr = it.next().flatten();
            let mut iattr = it.next().flatten().ok_or(MetaError::NotFound)?;
            if iattr.is_dir() {
                return Err(MetaError::NotPermitted);
            }
            if iattr.nlink == 0 {
                return Err(MetaError::NotFound);
            }
            let mut pattr = need_dir(pattr)?;
            trash::check_live_dir(&pattr)?;
            self.access(ctx, &pattr, access::W | access::X).await?;
            if tx.entry(parent, name).await?.is_some() {
                return Err(MetaError::Exists);
            }
            flags::check_link(&pattr, &iattr)?;
            if iattr.nlink == u32::MAX {
                return Err(MetaError::TooManyLinks);
            }
            let t = now();
            let old_parent = iattr.parent;
            let k = &self.keys;
            let mut w = Writes::new();
            let (_, space) = entry_usage(&iattr);
            self.charge(
                &mut tx,
                &mut w,
                Charge::new(space, 1, None, vec![parent]),
                false,
            )
            .await?;
            iattr.parent = 0;
            iattr.nlink += 1;
            iattr.ctime = t;
            pattr.mtime = t;
            pattr.ctime = t;
            w.hset(k.entries(parent), name, &encode_entry(iattr.typ, ino))
                .set_attr(k, parent, &pattr)
                .set_attr(k, ino, &iattr);
            if old_parent > 0 {
                w.hincrby(k.parents(ino), old_parent.to_string().as_bytes(), 1);
            }
            w.hincrby(k.parents(ino), parent.to_string().as_bytes(), 1);
            let mut st = DirStats::default();
            st.entry(parent, entry_usage(&iattr), 1);
            self.write_dir_stats(&mut tx, &mut w, &st).await?;
            Ok(w.commit(Entry { ino, attr: iattr }))
        })
        .await
    }

    async fn unlink(&self, ctx: &Context, parent: Ino, name: &[u8]) -> Result<()> {
        name::validate_name(name)?;
        let fmt = &self.settings().await?;
        let keys = [self.keys.inode(parent), self.keys.entries(parent)];
        self.txn(&keys, |mut tx| async move {
            let (pattr, entry) = tx.attr_and_entry(parent, name).await?;
            let mut pattr = need_dir(pattr)?;
            let prule = self.check_rule(ctx, Some(&pattr)).await?;
            check_access_with(ctx, &pattr, prule.as_deref(), access::W | access::X)?;
            let (typ, ino) = entry.ok_or(MetaError::NotFound)?;
            tx.watch(&[self.keys.inode(ino), self.keys.openers(ino)])
                .await?;
            let iattr = tx.attr(ino).await?;
            check_remove_with(
                ctx,
                &pattr,
                prule.as_deref(),
                iattr.as_ref().unwrap_or(&ghost(typ)),
            )?;
            if typ == FileType::Directory {
                return Err(MetaError::IsDir);
            }
            flags::check_remove(&pattr, iattr.as_ref())?;
            let t = now();
            pattr.mtime = t;
            pattr.ctime = t;
            let k = &self.keys;
            let mut w = Writes::new();
            w.hdel(k.entries(parent), name).set_attr(k, parent, &pattr);
            let mut st = DirStats::default();
            st.entry(
                parent,
                iattr.as_ref().map_or((0, align4k(0)), entry_usage),
                -1,
            );
            self.write_dir_stats(&mut tx, &mut w, &st).await?;
            if let Some(mut a) = iattr {
                let fate = self.fate(&mut tx, &mut w, (fmt, ctx), parent, name, ino, &a, t);
                let fate = fate.await?;
                let last = matches!(fate, Fate::Delete) && a.nlink <= 1;
                let owner = last.then_some((a.uid, a.gid));
                let ch = Charge::new(-entry_usage(&a).1, -1, owner, vec![parent]);
                self.charge(&mut tx, &mut w, ch, false).await?;
                if let Fate::Trash {
                    hour,
                    name: tn,
                    new,
                } = fate
                {
                    let to = (hour, tn.as_slice(), new);
                    self.put_in_trash(&mut tx, &mut w, to, parent, ino, a, t)
                        .await?;
                    return Ok(w.commit(()));
                }
                a.nlink = a.nlink.saturating_sub(1);
                a.ctime = t;
                if a.nlink > 0 {
                    w.set_attr(k, ino, &a);
                    if a.parent == 0 {
                        w.hincrby(k.parents(ino), parent.to_string().as_bytes(), -1);
                    }
                } else {
                    self.drop_inode(&mut tx, &mut w, ino, &a).await?;
                }
            }
            Ok(w.commit(()))
        })
        .await
    }

    /// One `WATCH`/`MULTI` for the whole batch, its reads pipelined: the common case of
    /// `rm -r` — a volume without trash, entries of one owner that are their inode's last
    /// link and open nowhere. Anything else is refused (`NotSupported`) and unlinked one
    /// name at a time by the caller.
    async fn unlink_batch(&self, ctx: &Context, parent: Ino, names: &[Vec<u8>]) -> Result<()> {
        let fmt = &self.settings().await?;
        if fmt.trash_days > 0 {
            return Err(MetaError::NotSupported("batched unlinks with a trash"));
        }
        let k = &self.keys;
        let keys = [k.inode(parent), k.entries(parent)];
        self.txn(&keys, |mut tx| async move {
            let refused = || MetaError::NotSupported("this batch of unlinks");
            let mut p = redis::pipe();
            p.cmd("GET")
                .arg(k.inode(parent))
                .cmd("HMGET")
                .arg(k.entries(parent));
            for n in names {
                p.arg(n.as_slice());
            }
            let (pattr, entries): (Option<Vec<u8>>, Vec<Option<Vec<u8>>>) = tx.pipe(&p).await?;
            let mut pattr = need_dir(pattr.map(|b| decode_attr(&b)).transpose()?)?;
            let prule = self.check_rule(ctx, Some(&pattr)).await?;
            check_access_with(ctx, &pattr, prule.as_deref(), access::W | access::X)?;
            let mut inos = Vec::with_capacity(names.len());
            for e in &entries {
                let (typ, ino) = decode_entry(e.as_deref().ok_or(MetaError::NotFound)?)?;
                if typ == FileType::Directory {
                    return Err(MetaError::IsDir);
                }
                inos.push(ino);
            }
            let mut seen = std::collections::HashSet::with_capacity(inos.len());
            if !inos.iter().all(|i| seen.insert(*i)) {
                return Err(refused());
            }
            let watched: Vec<String> = inos
                .iter()
                .flat_map(|&i| [k.inode(i), k.openers(i)])
                .collect();
            tx.watch(&watched).await?;
            let inode_keys: Vec<String> = inos.iter().map(|&i| k.inode(i)).collect();
            let raw: Vec<Option<Vec<u8>>> = tx.cmd(redis::cmd("MGET").arg(&inode_keys)).await?;
            let mut attrs = Vec::with_capacity(raw.len());
            for r in raw {
                attrs.push(decode_attr(r.as_deref().ok_or_else(refused)?)?);
            }
            let owner = attrs.first().map(|a| (a.uid, a.gid));
            let mut p = redis::pipe();
            for (a, &ino) in attrs.iter().zip(&inos) {
                check_remove_with(ctx, &pattr, prule.as_deref(), a)?;
                flags::check_remove(&pattr, Some(a))?;
                if a.nlink > 1 || Some((a.uid, a.gid)) != owner {
                    return Err(refused());
                }
                p.cmd("SCARD").arg(k.openers(ino));
            }
            let opened: Vec<u64> = tx.pipe(&p).await?;
            if opened.iter().any(|&n| n > 0) {
                return Err(refused());
            }
            let t = now();
            pattr.mtime = t;
            pattr.ctime = t;
            let mut w = Writes::new();
            w.set_attr(k, parent, &pattr);
            let mut st = DirStats::default();
            let mut space = 0;
            for ((n, &ino), a) in names.iter().zip(&inos).zip(&mut attrs) {
                w.hdel(k.entries(parent), n);
                st.entry(parent, entry_usage(a), -1);
                space += entry_usage(a).1;
                a.nlink = 0;
                a.ctime = t;
                self.drop_inode_writes(&mut w, ino, a, &[]);
            }
            self.write_dir_stats(&mut tx, &mut w, &st).await?;
            let count = i64::try_from(names.len()).unwrap_or(i64::MAX);
            let ch = Charge::new(-space, -count, owner, vec![parent]);
            self.charge(&mut tx, &mut w, ch, false).await?;
            Ok(w.commit(()))
        })
        .await
    }

    async fn rmdir(&self, ctx: &Context, parent: Ino, name: &[u8]) -> Result<()> {
        name::validate_name(name)?;
        let fmt = &self.settings().await?;
        let keys = [self.keys.inode(parent), self.keys.entries(parent)];
        self.txn(&keys, |mut tx| async move {
            let (pattr, entry) = tx.attr_and_entry(parent, name).await?;
            let mut pattr = need_dir(pattr)?;
            let prule = self.check_rule(ctx, Some(&pattr)).await?;
            check_access_with(ctx, &pattr, prule.as_deref(), access::W | access::X)?;
            let (typ, ino) = entry.ok_or(MetaError::NotFound)?;
            tx.watch(&[self.keys.inode(ino), self.keys.entries(ino)])
                .await?;
            let iattr = tx.attr(ino).await?;
            check_remove_with(
                ctx,
                &pattr,
                prule.as_deref(),
                iattr.as_ref().unwrap_or(&ghost(typ)),
            )?;
            if typ != FileType::Directory {
                return Err(MetaError::NotDir);
            }
            let n: u64 = tx
                .cmd(redis::cmd("HLEN").arg(self.keys.entries(ino)))
                .await?;
            if n > 0 {
                return Err(MetaError::NotEmpty);
            }
            flags::check_remove(&pattr, iattr.as_ref())?;
            let t = now();
            if trash::counts_links(parent) {
                pattr.nlink = pattr.nlink.saturating_sub(1).max(2);
            }
            pattr.mtime = t;
            pattr.ctime = t;
            let k = &self.keys;
            let mut w = Writes::new();
            w.hdel(k.entries(parent), name).set_attr(k, parent, &pattr);
            if trash::keeps_stats(parent) {
                let mut st = DirStats::default();
                st.entry(parent, (0, align4k(0)), -1);
                self.write_dir_stats(&mut tx, &mut w, &st).await?;
            }
            if let Some(a) = iattr {
                let fate = self.fate(&mut tx, &mut w, (fmt, ctx), parent, name, ino, &a, t);
                let fate = fate.await?;
                let gone = matches!(fate, Fate::Delete) && parent != meta_api::TRASH_INO;
                let owner = gone.then_some((a.uid, a.gid));
                let ch = Charge::new(-align4k(0), -1, owner, vec![parent]);
                self.charge(&mut tx, &mut w, ch, false).await?;
                match fate {
                    Fate::Trash {
                        hour,
                        name: tn,
                        new,
                    } => {
                        self.drop_dir_fields(&mut w, ino);
                        let to = (hour, tn.as_slice(), new);
                        self.put_in_trash(&mut tx, &mut w, to, parent, ino, a, t)
                            .await?;
                    }
                    Fate::Delete => self.drop_inode(&mut tx, &mut w, ino, &a).await?,
                }
            }
            Ok(w.commit(()))
        })
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn rename(
        &self,
        ctx: &Context,
        ps: Ino,
        name: &[u8],
        pd: Ino,
        new_name: &[u8],
        flags: RenameFlags,
    ) -> Result<()> {
        let fmt = &self.settings().await?;
        let mut keys = vec![self.keys.inode(ps), self.keys.entries(ps)];
        if pd != ps {
            keys.push(self.keys.inode(pd));
            keys.push(self.keys.entries(pd));
        }
        self.txn(&keys, |mut tx| async move {
            let got = tx.attrs(&[ps, pd]).await?;
            let mut it = got.into_iter();
            let mut sattr = need_dir(it.next().flatten())?;
            let mut dattr = need_dir(it.next().flatten())?;
            trash::check_destination(&dattr, flags)?;
            let srule = self.check_rule(ctx, Some(&sattr)).await?;
            let drule = self.check_rule(ctx, Some(&dattr)).await?;
            check_access_with(ctx, &sattr, srule.as_deref(), access::W | access::X)?;
            check_access_with(ctx, &dattr, drule.as_deref(), access::W | access::X)?;
            let (typ, ino) = tx.entry(ps, name).await?.ok_or(MetaError::NotFound)?;
            let dentry = tx.entry(pd, new_name).await?;
            if flags.exchange() && dentry.is_none() {
                return Err(MetaError::NotFound);
            }
            if flags.noreplace() && dentry.is_some() {
                return Err(MetaError::Exists);
            }
            let k = &self.keys;
            let mut watch = vec![k.inode(ino)];
            if let Some((dtyp, dino)) = dentry {
                if dino == ino {
                    // Two names of one inode: POSIX says do nothing.
                    return Ok(Step::Done(()));
                }
                watch.push(k.inode(dino));
                watch.push(k.openers(dino));
                if dtyp == FileType::Directory {
                    watch.push(k.entries(dino));
                }
            }
            tx.watch(&watch).await?;
            let mut iattr = tx.attr(ino).await?.ok_or(MetaError::NotFound)?;
            let mut tattr = match dentry {
                Some((dtyp, dino)) => Some(tx.attr(dino).await?.unwrap_or_else(|| ghost(dtyp))),
                None => None,
            };
            if ps != pd {
                if typ == FileType::Directory {
                    self.check_not_inside(&mut tx, ino, pd, &dattr).await?;
                }
                if let (Some((FileType::Directory, dino)), true) = (dentry, flags.exchange()) {
                    self.check_not_inside(&mut tx, dino, ps, &sattr).await?;
                }
            }
            check_remove_with(ctx, &sattr, srule.as_deref(), &iattr)?;
            if let Some(t) = &tattr {
                check_remove_with(ctx, &dattr, drule.as_deref(), t)?;
            }
            if let (Some((dtyp, dino)), false) = (dentry, flags.exchange()) {
                if typ == FileType::Directory && dtyp != FileType::Directory {
                    return Err(MetaError::NotDir);
                }
                if typ != FileType::Directory && dtyp == FileType::Directory {
                    return Err(MetaError::IsDir);
                }
                if dtyp == FileType::Directory {
                    let n: u64 = tx.cmd(redis::cmd("HLEN").arg(k.entries(dino))).await?;
                    if n > 0 {
                        return Err(MetaError::NotEmpty);
                    }
                }
            }
            flags::check_rename(&sattr, &iattr, &dattr, tattr.as_ref())?;

            let mut st = DirStats::default();
            if ps != pd {
                st.entry(ps, entry_usage(&iattr), -1)
                    .entry(pd, entry_usage(&iattr), 1);
                if let (Some(ta), true) = (&tattr, flags.exchange()) {
                    st.entry(pd, entry_usage(ta), -1)
                        .entry(ps, entry_usage(ta), 1);
                }
            }
            if let (Some(ta), false) = (&tattr, flags.exchange()) {
                st.entry(pd, entry_usage(ta), -1);
            }
            let t = now();
            let mut w = Writes::new();
            self.write_dir_stats(&mut tx, &mut w, &st).await?;
            let (mut s_links, mut d_links) = (0i64, 0i64);
            if flags.exchange() {
                let Some((dtyp, dino)) = dentry else {
                    return Err(MetaError::NotFound);
                };
                let Some(mut ta) = tattr.take() else {
                    return Err(MetaError::NotFound);
                };
                self.move_quota(&mut tx, &mut w, (ino, &iattr), ps, pd)
                    .await?;
                self.move_quota(&mut tx, &mut w, (dino, &ta), pd, ps)
                    .await?;
                w.hset(k.entries(ps), name, &encode_entry(dtyp, dino));
                w.hset(k.entries(pd), new_name, &encode_entry(typ, ino));
                if ps != pd {
                    move_parent(
                        &mut w,
                        k,
                        ino,
                        &mut iattr,
                        ps,
                        pd,
                        &mut s_links,
                        &mut d_links,
                    );
                    move_parent(&mut w, k, dino, &mut ta, pd, ps, &mut d_links, &mut s_links);
                }
                ta.ctime = t;
                w.set_attr(k, dino, &ta);
            } else {
                w.hdel(k.entries(ps), name);
                w.hset(k.entries(pd), new_name, &encode_entry(typ, ino));
                if let (Some((dtyp, dino)), Some(mut ta)) = (dentry, tattr.take()) {
                    let fate = self.fate(&mut tx, &mut w, (fmt, ctx), pd, new_name, dino, &ta, t);
                    let fate = fate.await?;
                    // The victim's entry leaves first, then the source arrives.
                    let gone = matches!(fate, Fate::Delete) && (ta.is_dir() || ta.nlink <= 1);
                    let owner = gone.then_some((ta.uid, ta.gid));
                    let ch = Charge::new(-entry_usage(&ta).1, -1, owner, vec![pd]);
                    self.charge(&mut tx, &mut w, ch, false).await?;
                    if let Fate::Trash {
                        hour,
                        name: tn,
                        new,
                    } = fate
                    {
                        if dtyp == FileType::Directory {
                            d_links -= 1;
                            self.drop_dir_fields(&mut w, dino);
                        }
                        let to = (hour, tn.as_slice(), new);
                        self.put_in_trash(&mut tx, &mut w, to, pd, dino, ta, t)
                            .await?;
                    } else if dtyp == FileType::Directory {
                        d_links -= 1;
                        self.drop_inode(&mut tx, &mut w, dino, &ta).await?;
                    } else {
                        ta.nlink = ta.nlink.saturating_sub(1);
                        ta.ctime = t;
                        if ta.nlink > 0 {
                            w.set_attr(k, dino, &ta);
                            if ta.parent == 0 {
                                w.hincrby(k.parents(dino), pd.to_string().as_bytes(), -1);
                            }
                        } else {
                            self.drop_inode(&mut tx, &mut w, dino, &ta).await?;
                        }
                    }
                }
                self.move_quota(&mut tx, &mut w, (ino, &iattr), ps, pd)
                    .await?;
                if ps != pd {
                    move_parent(
                        &mut w,
                        k,
                        ino,
                        &mut iattr,
                        ps,
                        pd,
                        &mut s_links,
                        &mut d_links,
                    );
                }
            }
            iattr.ctime = t;
            w.set_attr(k, ino, &iattr);
            if ps == pd {
                sattr.nlink = add_links(sattr.nlink, s_links + d_links);
                sattr.mtime = t;
                sattr.ctime = t;
                w.set_attr(k, ps, &sattr);
            } else {
                sattr.nlink = add_links(sattr.nlink, s_links);
                dattr.nlink = add_links(dattr.nlink, d_links);
                for a in [&mut sattr, &mut dattr] {
                    a.mtime = t;
                    a.ctime = t;
                }
                w.set_attr(k, ps, &sattr).set_attr(k, pd, &dattr);
            }
            Ok(w.commit(()))
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
        let attr = need_dir(self.get_attr(ino).await?)?;
        self.access(ctx, &attr, access::R).await?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        // The first page reads the whole directory (a Redis hash has no order) and keeps it
        // sorted for the pages after it; a later page continues in that snapshot, so a
        // listing costs one read of the directory, not one per page. Entries added or
        // removed meanwhile may or may not show (as POSIX allows for readdir).
        let snapshot = match after.and_then(|_| self.listings.get(ino)) {
            Some(s) => s,
            None => {
                let flat: Vec<Vec<u8>> = self
                    .read(redis::cmd("HGETALL").arg(self.keys.entries(ino)))
                    .await?;
                let mut all: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(flat.len() / 2);
                let mut it = flat.into_iter();
                while let (Some(name), Some(value)) = (it.next(), it.next()) {
                    if !name.is_empty() {
                        all.push((name, value));
                    }
                }
                all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                Arc::new(all)
            }
        };
        let from = after.map_or(0, |a| snapshot.partition_point(|(n, _)| n.as_slice() <= a));
        let to = from.saturating_add(limit).min(snapshot.len());
        if to < snapshot.len() {
            self.listings.put(ino, snapshot.clone());
        } else {
            self.listings.done(ino);
        }
        let mut out = Vec::with_capacity(to - from);
        for (name, value) in snapshot[from..to].iter().cloned() {
            let (typ, ino) = decode_entry(&value)?;
            out.push(DirEntry {
                name,
                ino,
                typ,
                attr: None,
            });
        }
        if plus && !out.is_empty() {
            let keys: Vec<String> = out.iter().map(|e| self.keys.inode(e.ino)).collect();
            let attrs: Vec<Option<Vec<u8>>> = self.read(redis::cmd("MGET").arg(&keys)).await?;
            let mut kept = Vec::with_capacity(out.len());
            for (mut e, a) in out.into_iter().zip(attrs) {
                // An entry whose inode vanished meanwhile was removed concurrently.
                if let Some(a) = a {
                    e.attr = Some(decode_attr(&a)?);
                    kept.push(e);
                }
            }
            out = kept;
        }
        Ok(out)
    }
}

/// A directory's sorted entries, as read for the first page of a listing.
type Snapshot = Arc<Vec<(Vec<u8>, Vec<u8>)>>;

/// How long a listing's snapshot serves its later pages (a listing left unfinished for
/// longer reads the directory again).
const LISTING_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// Snapshots of the directories this client is listing, at most [`Listings::MAX`].
#[derive(Default)]
pub(crate) struct Listings(std::sync::Mutex<HashMap<Ino, (std::time::Instant, Snapshot)>>);

impl Listings {
    /// Directories listed at once whose snapshots are kept.
    const MAX: usize = 64;

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Ino, (std::time::Instant, Snapshot)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, ino: Ino) -> Option<Snapshot> {
        let map = self.map();
        map.get(&ino)
            .filter(|(at, _)| at.elapsed() < LISTING_TTL)
            .map(|(_, s)| s.clone())
    }

    fn put(&self, ino: Ino, s: Snapshot) {
        let mut map = self.map();
        if map.len() >= Self::MAX && !map.contains_key(&ino) {
            map.retain(|_, (at, _)| at.elapsed() < LISTING_TTL);
            if map.len() >= Self::MAX {
                return;
            }
        }
        map.entry(ino).or_insert((std::time::Instant::now(), s));
    }

    fn done(&self, ino: Ino) {
        self.map().remove(&ino);
    }
}

impl RedisMeta {
    /// Creates an inode of any type; `open`: a regular file this session has open once the
    /// transaction commits. The open is counted here before the commit and registered in
    /// the same transaction, so an unlinker that finds the new name also finds the open.
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
            self.sid.load(std::sync::atomic::Ordering::Relaxed)
        } else {
            0
        };
        let ino = self.new_inode().await?;
        if open {
            self.open_files.open(ino);
        }
        let keys = [self.keys.inode(parent), self.keys.entries(parent)];
        let made = self
            .txn_guessed(&keys, self.guess_of(parent), |mut tx| async move {
                let (pattr, entry) = tx.attr_and_entry(parent, name).await?;
                let mut pattr = need_dir(pattr)?;
                trash::check_live_dir(&pattr)?;
                self.access(ctx, &pattr, access::W | access::X).await?;
                if entry.is_some() {
                    return Err(MetaError::Exists);
                }
                flags::check_create(&pattr)?;
                let t = now();
                let default = self.rule_of(pattr.default_acl).await?;
                let new = new_inode_with_acl(ctx, &pattr, default.as_deref(), typ, mode);
                let mut attr = Attr::new(typ, new.mode, ctx.uid, new.gid, t);
                attr.parent = parent;
                attr.default_acl = new.default_acl;
                attr.flags = new.flags;
                let mut w = Writes::new();
                let ch = Charge::new(align4k(0), 1, Some((ctx.uid, new.gid)), vec![parent]);
                self.charge(&mut tx, &mut w, ch, true).await?;
                if let Some(rule) = &new.access_rule {
                    attr.access_acl = self.save_rule(&mut tx, &mut w, rule).await?;
                }
                match typ {
                    FileType::Directory => {
                        attr.nlink = 2;
                        attr.length = 4096;
                        pattr.nlink += 1;
                    }
                    FileType::Symlink => attr.length = target.len() as u64,
                    FileType::BlockDevice | FileType::CharDevice => attr.rdev = rdev,
                    _ => {}
                }
                pattr.mtime = t;
                pattr.ctime = t;
                let k = &self.keys;
                let pbytes = encode_attr(&pattr);
                w.set_attr(k, ino, &attr).set(k.inode(parent), &pbytes);
                if typ == FileType::Symlink {
                    w.set(k.symlink(ino), target);
                }
                w.hset(k.entries(parent), name, &encode_entry(typ, ino));
                if typ == FileType::Directory {
                    w.set_dir_stat(k, ino, &Default::default());
                }
                if sid > 0 {
                    w.sadd(k.openers(ino), sid).sadd(k.opened(sid), ino);
                }
                w.incrby(k.used_space(), align4k(0))
                    .incrby(k.total_inodes(), 1);
                let mut st = DirStats::default();
                st.entry(parent, entry_usage(&attr), 1);
                self.write_dir_stats(&mut tx, &mut w, &st).await?;
                // What the next create in `parent` may guess.
                let guess = match (tx.dir_quotas_seen(), tx.dir_stats_seen(parent)) {
                    (Some(dir_quotas), Some(dir_stats)) => Some(crate::txn::Guess {
                        parent,
                        attr: pbytes,
                        dir_quotas,
                        dir_stats,
                    }),
                    _ => None,
                };
                Ok(w.commit((Entry { ino, attr }, guess)))
            })
            .await;
        match made {
            Ok((e, guess)) => {
                self.keep_guess(parent, guess);
                Ok(e)
            }
            Err(e) => {
                self.keep_guess(parent, None);
                if open {
                    self.open_files.close(ino);
                }
                Err(e)
            }
        }
    }
}
