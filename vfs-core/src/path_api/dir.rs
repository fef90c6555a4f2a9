//! Directory listings: [`ReadDir`], a stream of [`DirEntry`].

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context as TaskContext, Poll};

use futures::future::BoxFuture;
use futures::Stream;
use meta_api::{Attr, Context, Ino};

use super::{release_in_background, FileType, Metadata};
use crate::{DirItem, Vfs};

/// Entries asked from the VFS per page.
const PAGE: usize = 1024;

/// An open directory handle, closed when the listing ends or, failing that, when the last
/// owner drops it.
struct OwnedDirHandle {
    vfs: Vfs,
    ctx: Arc<Context>,
    dh: u64,
    released: AtomicBool,
}

impl OwnedDirHandle {
    async fn release(&self) -> io::Result<()> {
        if self.released.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        Ok(self.vfs.releasedir(&self.ctx, self.dh).await?)
    }
}

impl Drop for OwnedDirHandle {
    fn drop(&mut self) {
        if !self.released.swap(true, Ordering::AcqRel) {
            let (vfs, ctx, dh) = (self.vfs.clone(), self.ctx.clone(), self.dh);
            release_in_background(async move { Ok(vfs.releasedir(&ctx, dh).await?) });
        }
    }
}

/// The entries of a directory, without `.` and `..`, as a [`Stream`] or through
/// [`ReadDir::next_entry`] (as `tokio::fs::ReadDir`).
///
/// Entries are fetched a page at a time. The listing is a consistent walk of the
/// directory: entries added or removed meanwhile may or may not show up, but none is
/// skipped or listed twice. The directory handle is closed at the end of the listing, or
/// in the background when the `ReadDir` is dropped early.
pub struct ReadDir {
    handle: Arc<OwnedDirHandle>,
    dir: PathBuf,
    plus: bool,
    offset: u64,
    done: bool,
    buffered: VecDeque<DirItem>,
    fetching: Option<BoxFuture<'static, io::Result<Vec<DirItem>>>>,
}

impl std::fmt::Debug for ReadDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadDir")
            .field("dir", &self.dir)
            .field("offset", &self.offset)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl ReadDir {
    /// Opens directory `ino` (found at `dir`) for listing.
    pub(crate) async fn open(
        vfs: &Vfs,
        ctx: &Arc<Context>,
        ino: Ino,
        dir: PathBuf,
        plus: bool,
    ) -> io::Result<ReadDir> {
        let dh = vfs.opendir(ctx, ino).await?;
        Ok(ReadDir {
            handle: Arc::new(OwnedDirHandle {
                vfs: vfs.clone(),
                ctx: ctx.clone(),
                dh,
                released: AtomicBool::new(false),
            }),
            dir,
            plus,
            offset: 0,
            done: false,
            buffered: VecDeque::new(),
            fetching: None,
        })
    }

    /// The next entry, or `None` at the end of the directory.
    pub async fn next_entry(&mut self) -> io::Result<Option<DirEntry>> {
        futures::future::poll_fn(|cx| self.poll_next_entry(cx)).await
    }

    /// Polls for the next entry; `None` at the end of the directory.
    pub fn poll_next_entry(
        &mut self,
        cx: &mut TaskContext<'_>,
    ) -> Poll<io::Result<Option<DirEntry>>> {
        loop {
            while let Some(item) = self.buffered.pop_front() {
                self.offset = item.offset;
                if item.name == b"." || item.name == b".." {
                    continue;
                }
                return Poll::Ready(Ok(Some(self.entry(item))));
            }
            if self.done {
                return Poll::Ready(Ok(None));
            }
            let fut = self.fetching.get_or_insert_with(|| {
                let handle = self.handle.clone();
                let (offset, plus) = (self.offset, self.plus);
                Box::pin(async move {
                    let page = handle
                        .vfs
                        .readdir(&handle.ctx, handle.dh, offset, PAGE, plus)
                        .await?;
                    if page.len() < PAGE {
                        handle.release().await?;
                    }
                    Ok(page)
                })
            });
            let page = ready!(fut.as_mut().poll(cx));
            self.fetching = None;
            match page {
                Ok(page) => {
                    self.done = page.len() < PAGE;
                    self.buffered.extend(page);
                }
                Err(e) => {
                    // A failed page ends the listing; the handle is closed on drop.
                    self.done = true;
                    return Poll::Ready(Err(e));
                }
            }
        }
    }

    fn entry(&self, item: DirItem) -> DirEntry {
        DirEntry {
            vfs: self.handle.vfs.clone(),
            ctx: self.handle.ctx.clone(),
            path: self.dir.join(OsString::from_vec(item.name.clone())),
            name: item.name,
            ino: item.ino,
            typ: item.typ,
            attr: item.attr,
        }
    }
}

impl Stream for ReadDir {
    type Item = io::Result<DirEntry>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_next_entry(cx).map(Result::transpose)
    }
}

/// One entry of a directory listing.
#[derive(Clone)]
pub struct DirEntry {
    vfs: Vfs,
    ctx: Arc<Context>,
    path: PathBuf,
    name: Vec<u8>,
    ino: Ino,
    typ: meta_api::FileType,
    attr: Option<Attr>,
}

impl std::fmt::Debug for DirEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirEntry")
            .field("path", &self.path)
            .field("ino", &self.ino)
            .field("typ", &self.typ)
            .finish_non_exhaustive()
    }
}

impl DirEntry {
    /// The entry's path: the listed directory's path joined with the name.
    pub fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// The entry's name (bytes, not necessarily UTF-8).
    pub fn file_name(&self) -> OsString {
        OsString::from_vec(self.name.clone())
    }

    /// The entry's name as bytes.
    pub fn name_bytes(&self) -> &[u8] {
        &self.name
    }

    /// The inode number.
    pub fn ino(&self) -> Ino {
        self.ino
    }

    /// The entry's type (as listed: a symbolic link is a link).
    pub fn file_type(&self) -> FileType {
        FileType::new(self.typ)
    }

    /// The entry's attributes, without following a symbolic link: the ones the listing
    /// brought ([`FileSystem::read_dir_plus`](crate::FileSystem::read_dir_plus)), otherwise
    /// fetched now.
    pub async fn metadata(&self) -> io::Result<Metadata> {
        let attr = match &self.attr {
            Some(a) => a.clone(),
            None => self.vfs.getattr(&self.ctx, self.ino).await?,
        };
        Ok(Metadata::new(self.ino, attr))
    }

    /// The attributes the listing brought, if it was asked to.
    pub fn cached_metadata(&self) -> Option<Metadata> {
        self.attr.clone().map(|a| Metadata::new(self.ino, a))
    }
}
