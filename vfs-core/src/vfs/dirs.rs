//! The namespace: lookups, creating, linking, renaming and removing entries, and listing
//! directories through their handles.

use meta_api::{Attr, Context, DirEntry, Entry, FileType, Ino, MetaError, RenameFlags, Timestamp};

use super::handles::check_open_flags;
use super::Vfs;
use crate::{Result, VfsError};

/// Directory entries asked from the engine per page at least.
const READDIR_PAGE: usize = 512;

/// One entry of a directory listing with its position: pass `offset` to
/// [`Vfs::readdir`] to continue after this entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DirItem {
    /// The offset of the next entry.
    pub offset: u64,
    /// The entry's name (bytes; `.` and `..` come first).
    pub name: Vec<u8>,
    /// The inode it points to.
    pub ino: Ino,
    /// The inode's type.
    pub typ: FileType,
    /// The attributes, when asked for (`plus`).
    pub attr: Option<Attr>,
}

/// Entries a directory handle keeps behind the caller's position, for a caller going back
/// (`seekdir`): ~1 MiB of names; beyond it a listing takes memory for a window, not for
/// the whole directory.
const KEEP_BEHIND: usize = 8192;

/// What a directory handle has listed: a window that slides forward as the caller reads,
/// keeping [`KEEP_BEHIND`] items behind its position.
#[derive(Default)]
pub(super) struct Listing {
    loaded: bool,
    done: bool,
    /// Items before this index (0-based, `.` is 0) were read past and dropped.
    base: usize,
    items: Vec<DirItem>,
    /// The name of the last entry fetched from the engine: the next page starts after it.
    last: Option<Vec<u8>>,
}

impl Listing {
    /// A fresh listing of a directory `ino` whose parent is `parent`: `.` and `..`.
    fn fresh(ino: Ino, parent: Ino) -> Listing {
        let mut l = Listing {
            loaded: true,
            ..Listing::default()
        };
        for (name, ino) in [(&b"."[..], ino), (&b".."[..], parent)] {
            l.push(name.to_vec(), ino, FileType::Directory, None);
        }
        l
    }

    /// Items listed so far, dropped ones included.
    fn end(&self) -> usize {
        self.base + self.items.len()
    }

    /// Drops the items more than [`KEEP_BEHIND`] before index `start`, which the caller
    /// has read past.
    fn forget_before(&mut self, start: usize) {
        let past = start
            .min(self.end())
            .saturating_sub(KEEP_BEHIND)
            .saturating_sub(self.base);
        if past > 0 {
            self.items.drain(..past);
            self.base += past;
        }
    }

    fn push(&mut self, name: Vec<u8>, ino: Ino, typ: FileType, attr: Option<Attr>) {
        let offset = self.end() as u64 + 1;
        self.items.push(DirItem {
            offset,
            name,
            ino,
            typ,
            attr,
        });
    }
}

impl Vfs {
    /// Looks `name` up in directory `parent`.
    pub async fn lookup(&self, ctx: &Context, parent: Ino, name: &[u8]) -> Result<Entry> {
        self.check_open()?;
        let mut e = self.inner.meta.lookup(ctx, parent, name).await?;
        self.patch_attr(e.ino, &mut e.attr);
        Ok(e)
    }

    /// Creates a node named `name` in `parent`: `mode` carries the type bits (`S_IFREG`,
    /// `S_IFIFO`, `S_IFSOCK`, `S_IFCHR`, `S_IFBLK`; none means a regular file) and the
    /// permission bits; `rdev` is a device's number. As in Linux, directories and symlinks
    /// have their own calls (`EINVAL` here), and only root creates devices (`EPERM`).
    /// Special files hold no data here: see [`Vfs::open`].
    pub async fn mknod(
        &self,
        ctx: &Context,
        parent: Ino,
        name: &[u8],
        mode: u32,
        rdev: u32,
    ) -> Result<Entry> {
        self.check_open()?;
        let typ = match mode & libc::S_IFMT {
            0 => FileType::Regular,
            libc::S_IFDIR | libc::S_IFLNK => {
                return Err(VfsError::InvalidArgument(
                    "mknod makes no directories or symlinks",
                ))
            }
            _ => FileType::from_mode(mode).ok_or(VfsError::InvalidArgument("unknown file type"))?,
        };
        if matches!(typ, FileType::CharDevice | FileType::BlockDevice) && !ctx.is_root() {
            return Err(MetaError::NotPermitted.into());
        }
        Ok(self
            .inner
            .meta
            .mknod(ctx, parent, name, typ, perm_bits(mode), rdev)
            .await?)
    }

    /// Creates a directory.
    pub async fn mkdir(&self, ctx: &Context, parent: Ino, name: &[u8], mode: u32) -> Result<Entry> {
        self.check_open()?;
        Ok(self
            .inner
            .meta
            .mkdir(ctx, parent, name, perm_bits(mode))
            .await?)
    }

    /// Removes a non-directory entry. An open file keeps its data until its last handle
    /// (in any client) is released.
    pub async fn unlink(&self, ctx: &Context, parent: Ino, name: &[u8]) -> Result<()> {
        self.check_open()?;
        self.inner.meta.unlink(ctx, parent, name).await?;
        Ok(())
    }

    /// Removes entry `name` of `parent` and, if it is a directory, everything below it
    /// (what `tessera rmr` runs), with the checks `rm -r` meets and the trash's rules, in
    /// the engine's batches ([`meta_api::tree::remove_tree`]); `progress` counts the
    /// entries removed. The purge job is woken to delete the objects of what was removed.
    pub async fn remove_tree(
        &self,
        ctx: &Context,
        parent: Ino,
        name: &[u8],
        progress: &crate::upkeep::Progress,
    ) -> Result<meta_api::tree::RemovedTree> {
        self.check_open()?;
        let done =
            meta_api::tree::remove_tree(&*self.inner.meta, ctx, parent, name, &progress.items)
                .await;
        if done.as_ref().map_or(true, |d| d.files > 0) {
            self.request_purge();
        }
        Ok(done?)
    }

    /// Clones `src` (a file or a whole tree) as entry `name` of `parent` in metadata only
    /// (what `tessera clone` runs): new inodes that share the source's slices, each slice
    /// one reference more, no object copied; a directory is built detached and attached
    /// at the end, so nothing of a clone that fails or whose client crashes is ever
    /// visible ([`meta_api::clone`] has the protocol and the rules). What this client
    /// wrote to open files is written back first, so the clone holds it. `progress`
    /// counts the entries cloned.
    pub async fn clone_tree(
        &self,
        ctx: &Context,
        src: Ino,
        (parent, name): (Ino, &[u8]),
        opts: meta_api::clone::CloneOptions,
        progress: &crate::upkeep::Progress,
    ) -> Result<meta_api::clone::Cloned> {
        self.check_open()?;
        self.flush_everything().await?;
        Ok(meta_api::clone::clone_tree(
            &*self.inner.meta,
            ctx,
            src,
            (parent, name),
            opts,
            &progress.items,
        )
        .await?)
    }

    /// Removes an empty directory.
    pub async fn rmdir(&self, ctx: &Context, parent: Ino, name: &[u8]) -> Result<()> {
        self.check_open()?;
        self.inner.meta.rmdir(ctx, parent, name).await?;
        Ok(())
    }

    /// Creates a symbolic link `name` in `parent` pointing to `target`.
    pub async fn symlink(
        &self,
        ctx: &Context,
        parent: Ino,
        name: &[u8],
        target: &[u8],
    ) -> Result<Entry> {
        self.check_open()?;
        Ok(self.inner.meta.symlink(ctx, parent, name, target).await?)
    }

    /// The target of a symbolic link.
    pub async fn readlink(&self, _ctx: &Context, ino: Ino) -> Result<Vec<u8>> {
        self.check_open()?;
        Ok(self.inner.meta.readlink(ino).await?)
    }

    /// Renames `parent/name` to `new_parent/new_name`; `flags` are Linux's
    /// `RENAME_NOREPLACE` / `RENAME_EXCHANGE` bits ([`RenameFlags`]).
    pub async fn rename(
        &self,
        ctx: &Context,
        parent: Ino,
        name: &[u8],
        new_parent: Ino,
        new_name: &[u8],
        flags: u32,
    ) -> Result<()> {
        self.check_open()?;
        self.inner
            .meta
            .rename(ctx, parent, name, new_parent, new_name, RenameFlags(flags))
            .await?;
        Ok(())
    }

    /// Adds a hard link to `ino` named `new_name` in `new_parent`.
    pub async fn link(
        &self,
        ctx: &Context,
        ino: Ino,
        new_parent: Ino,
        new_name: &[u8],
    ) -> Result<Entry> {
        self.check_open()?;
        let mut e = self.inner.meta.link(ctx, ino, new_parent, new_name).await?;
        self.patch_attr(e.ino, &mut e.attr);
        Ok(e)
    }

    /// Creates regular file `name` in `parent` and opens it. Without `O_EXCL` an existing
    /// file of that name is opened instead (honouring `O_TRUNC`), as `open(2)` with
    /// `O_CREAT` does; with it, an existing name is `EEXIST`. A new file is opened even if
    /// `mode` denies the requested access, as POSIX wants. An existing symlink is not
    /// followed at this level (`ELOOP`; the path-level [`FileSystem`](crate::FileSystem)
    /// resolves links first), and `O_DIRECTORY` is `EINVAL`, as in Linux.
    pub async fn create(
        &self,
        ctx: &Context,
        parent: Ino,
        name: &[u8],
        mode: u32,
        flags: i32,
    ) -> Result<(Entry, u64)> {
        self.check_open()?;
        let access = check_open_flags(flags)?;
        if flags & libc::O_DIRECTORY != 0 {
            return Err(VfsError::InvalidArgument("O_CREAT with O_DIRECTORY"));
        }
        self.check_handle_room()?;
        // Made and opened in one step (one transaction where the engine can).
        let created = self
            .inner
            .meta
            .create(ctx, parent, name, perm_bits(mode))
            .await;
        let entry = match created {
            Ok(e) => e,
            Err(MetaError::Exists) if flags & libc::O_EXCL == 0 => {
                let existing = self.inner.meta.lookup(ctx, parent, name).await?;
                let fh = self.open(ctx, existing.ino, flags).await?;
                let mut attr = self.inner.meta.getattr(existing.ino).await?;
                self.patch_attr(existing.ino, &mut attr);
                return Ok((
                    Entry {
                        ino: existing.ino,
                        attr,
                    },
                    fh,
                ));
            }
            Err(e) => return Err(e.into()),
        };
        let open_flags = flags & !(libc::O_CREAT | libc::O_EXCL | libc::O_TRUNC);
        let fh = self
            .finish_open(ctx, entry.ino, entry.attr.clone(), access, open_flags)
            .await?;
        Ok((entry, fh))
    }

    /// Lists up to `limit` entries of the directory open as `dh`, starting at `offset`
    /// (0 for the beginning, then the `offset` of the last item returned). `.` and `..`
    /// come first. Reading on from the last offset returned (or again from any offset of
    /// the last call) never skips or repeats an entry, whatever is added or removed
    /// meanwhile, and going back to an earlier offset repeats the same entries; offset 0
    /// starts a fresh listing. The handle keeps the last 8,192 entries behind the caller's
    /// position, so listing a directory of any size takes bounded memory; an offset further
    /// back is found again by listing from the beginning (offsets of that new listing).
    /// `plus` fills in attributes. Listing is an access of the directory (see
    /// [`VfsOptions::atime_mode`](crate::VfsOptions::atime_mode)).
    pub async fn readdir(
        &self,
        ctx: &Context,
        dh: u64,
        offset: u64,
        limit: usize,
        plus: bool,
    ) -> Result<Vec<DirItem>> {
        let d = self.dir_handle(dh)?;
        let mut l = d.listing.lock().await;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        // Offset 0 starts afresh; so does going back before the window (a rewind to an
        // offset already read past: it is found again by listing from the beginning).
        if offset == 0 || !l.loaded || start < l.base {
            *l = Listing::fresh(d.ino, d.parent);
        }
        let want = start.saturating_add(limit);
        while l.end() < want && !l.done {
            let page_size = (want - l.end()).max(READDIR_PAGE);
            let after = l.last.clone();
            let page = self
                .inner
                .meta
                .readdir(ctx, d.ino, after.as_deref(), page_size, plus)
                .await?;
            if page.len() < page_size {
                l.done = true;
            }
            if let Some(e) = page.last() {
                l.last = Some(e.name.clone());
            }
            for DirEntry {
                name,
                ino,
                typ,
                attr,
            } in page
            {
                l.push(name, ino, typ, attr);
            }
            l.forget_before(start);
        }
        l.forget_before(start);
        let end = want.min(l.end()) - l.base;
        let from = start.min(l.end()) - l.base;
        let mut out = l.items[from..end].to_vec();
        drop(l);
        if plus {
            for item in &mut out {
                if item.attr.is_none() {
                    match self.inner.meta.getattr(item.ino).await {
                        Ok(a) => item.attr = Some(a),
                        // Removed since it was listed: the entry stays, without attributes.
                        Err(MetaError::NotFound) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                if let Some(a) = &mut item.attr {
                    self.patch_attr(item.ino, a);
                }
            }
        }
        if let Some(seen) = &d.atime {
            self.touch_atime(d.ino, seen, Timestamp::default()).await;
        }
        Ok(out)
    }

    /// Makes a directory's changes durable: every metadata operation is already a committed
    /// transaction; this passes the engine's durability barrier so that they survive power
    /// loss too ([`MetaEngine::sync`](meta_api::MetaEngine::sync)).
    pub async fn fsyncdir(&self, _ctx: &Context, dh: u64, _datasync: bool) -> Result<()> {
        self.dir_handle(dh)?;
        Ok(self.inner.meta.sync().await?)
    }
}

/// The permission bits of a mode (type bits dropped).
fn perm_bits(mode: u32) -> u16 {
    // Masked to 12 bits, so it fits.
    (mode & 0o7777) as u16
}
