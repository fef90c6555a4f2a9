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

/// What a directory handle has listed so far.
#[derive(Default)]
pub(super) struct Listing {
    loaded: bool,
    done: bool,
    items: Vec<DirItem>,
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
    /// come first. Offsets stay valid for the handle's life: entries added or removed
    /// meanwhile never make a later call skip or repeat one; offset 0 starts a fresh listing.
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
        if offset == 0 || !l.loaded {
            *l = Listing::default();
            for (name, ino) in [(&b"."[..], d.ino), (&b".."[..], d.parent)] {
                let offset = l.items.len() as u64 + 1;
                l.items.push(DirItem {
                    offset,
                    name: name.to_vec(),
                    ino,
                    typ: FileType::Directory,
                    attr: None,
                });
            }
            l.loaded = true;
        }
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let want = start.saturating_add(limit);
        while l.items.len() < want && !l.done {
            let page_size = (want - l.items.len()).max(READDIR_PAGE);
            let after = if l.items.len() > 2 {
                l.items.last().map(|i| i.name.clone())
            } else {
                None
            };
            let page = self
                .inner
                .meta
                .readdir(ctx, d.ino, after.as_deref(), page_size, plus)
                .await?;
            if page.len() < page_size {
                l.done = true;
            }
            for DirEntry {
                name,
                ino,
                typ,
                attr,
            } in page
            {
                let offset = l.items.len() as u64 + 1;
                l.items.push(DirItem {
                    offset,
                    name,
                    ino,
                    typ,
                    attr,
                });
            }
        }
        let start = start.min(l.items.len());
        let end = want.min(l.items.len());
        let mut out = l.items[start..end].to_vec();
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
