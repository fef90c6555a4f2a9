//! Reading and writing through file handles: read (with readahead), write (within the
//! buffer budget), flush, fsync, truncate, fallocate and copy_file_range.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use meta_api::{Attr, Context, FallocMode, MAX_FILE_SIZE};

use super::attrs::has_exec_privs;
use super::handles::FileHandle;
use super::Vfs;
use crate::open_files::OpenFile;
use crate::{Result, VfsError};

impl Vfs {
    /// Sets the length of the file open as `fh` (which must be open for writing; the
    /// permission was checked when it was opened).
    pub async fn ftruncate(&self, ctx: &Context, fh: u64, length: u64) -> Result<Attr> {
        let h = self.file_handle(fh)?;
        if !h.access.write {
            return Err(VfsError::BadHandle);
        }
        if length > MAX_FILE_SIZE {
            return Err(VfsError::FileTooBig);
        }
        self.truncate_open(&ctx.as_opener(), ctx, &h.file, length)
            .await
    }

    /// Truncates an open file with the engine's permission check done as `engine_ctx`;
    /// `caller` decides whether setuid/setgid are dropped.
    pub(super) async fn truncate_open(
        &self,
        engine_ctx: &Context,
        caller: &Context,
        of: &OpenFile,
        length: u64,
    ) -> Result<Attr> {
        let attr = {
            let mut w = of.writer.lock().await;
            w.flush().await?;
            let attr = self
                .inner
                .meta
                .truncate(engine_ctx, of.ino(), length)
                .await?;
            of.state.set_length(attr.length);
            of.state.invalidate_all();
            attr
        };
        self.drop_privs(caller, of.ino(), attr).await
    }

    /// Reads up to `size` bytes at `off` through `fh` (which must be open for reading).
    /// The result is shorter at the end of the file and empty past it; holes read as zeros.
    /// The access time is updated as
    /// [`VfsOptions::atime_mode`](crate::VfsOptions::atime_mode) says, judged on the times
    /// the handle saw when it was opened and this client's own writes since (a change by
    /// another client counts from the next open).
    pub async fn read(&self, _ctx: &Context, fh: u64, off: u64, size: usize) -> Result<Bytes> {
        let h = self.file_handle(fh)?;
        if !h.access.read {
            return Err(VfsError::BadHandle);
        }
        if size == 0 {
            return Ok(Bytes::new());
        }
        let of = &h.file;
        if of.state.has_pending() {
            let mut w = of.writer.lock().await;
            if w.overlaps_pending(off, size as u64) {
                w.flush().await?;
            }
        }
        let reader = &self.inner.reader;
        // Readahead fills the block cache, so without one there is none.
        let window = if reader.has_cache() {
            self.inner.opts.readahead
        } else {
            0
        };
        let plan = h
            .readahead
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .advance(off, size, window);
        let data = reader.read(&of.state, off, size, plan.sequential).await?;
        if let Some((start, end)) = plan.prefetch {
            reader.read_ahead(&of.state, start, end);
        }
        // After the readahead has started, which the caller's next read may need.
        if let Some(seen) = &h.atime {
            self.touch_atime(h.ino, seen, of.state.written()).await;
        }
        Ok(data)
    }

    /// Writes `data` at `off` through `fh` (which must be open for writing; with
    /// `O_APPEND` the data goes to the current end instead). Returns the bytes written.
    /// The data is buffered: a failed upload shows up here or in the next
    /// [`flush`](Vfs::flush) / [`fsync`](Vfs::fsync) / [`release`](Vfs::release) of each
    /// handle of the file, once per handle. A write larger than half the buffer budget is
    /// buffered in pieces, between which other writers of this VFS may get a turn.
    pub async fn write(&self, ctx: &Context, fh: u64, off: u64, data: Bytes) -> Result<usize> {
        let h = self.file_handle(fh)?;
        if !h.access.write {
            return Err(VfsError::BadHandle);
        }
        let total = data.len();
        if total == 0 {
            return Ok(0);
        }
        if !h.access.append && exceeds_max(off, total) {
            return Err(VfsError::FileTooBig);
        }
        self.drop_privs_for_write(ctx, &h).await?;
        let of = &h.file;
        let budget = &self.inner.budget;
        // Large writes go in pieces so that one call never needs more than half the budget.
        let max_piece = (budget.total() / 2)
            .min(meta_api::CHUNK_SIZE as usize)
            .max(1);
        let mut rest = data;
        let mut pos = off;
        let mut first = true;
        while !rest.is_empty() {
            let piece = rest.split_to(rest.len().min(max_piece));
            let n = piece.len();
            // Reserved before taking the file's writer so that the flusher can still write
            // this very file back while we wait for memory.
            let res = budget.reserve(n).await?;
            let mut w = of.writer.lock().await;
            if first && h.access.append {
                pos = of.state.length();
                if exceeds_max(pos, total) {
                    return Err(VfsError::FileTooBig);
                }
            }
            first = false;
            let mut r = w.write(pos, piece, res).await;
            if r.is_ok() {
                r = w.commit_ready().await;
            }
            if let Err(e) = r {
                // Reported by this call, so this handle's next flush does not repeat it.
                h.seen_errors.store(w.error_seq(), Ordering::Release);
                return Err(e);
            }
            pos += n as u64;
        }
        if h.access.sync {
            self.flush_handle(&h).await?;
        }
        Ok(total)
    }

    /// Writes back the file of `h` and reports the write-back failures `h` has not reported.
    pub(super) async fn flush_handle(&self, h: &FileHandle) -> Result<()> {
        let of = &h.file;
        let mut w = of.writer.lock().await;
        // A failure here is counted by the writer and reported just below.
        let _ = w.flush().await;
        let seq = w.error_seq();
        let seen = h.seen_errors.swap(seq, Ordering::AcqRel);
        w.error_since(seen)
    }

    /// Writes back everything buffered for the file of `fh` and reports any write-back
    /// failure since the last flush (called on every `close(2)` of a descriptor).
    pub async fn flush(&self, _ctx: &Context, fh: u64) -> Result<()> {
        let h = self.file_handle(fh)?;
        self.flush_handle(&h).await
    }

    /// Makes everything written to the file of `fh` durable: all blocks stored, all slices
    /// committed, and then the engine's durability barrier passed
    /// ([`MetaEngine::sync`](meta_api::MetaEngine::sync)), so that the file survives power
    /// loss — with every other change this client made before (`datasync` is the same).
    pub async fn fsync(&self, _ctx: &Context, fh: u64, _datasync: bool) -> Result<()> {
        let h = self.file_handle(fh)?;
        self.flush_handle(&h).await?;
        Ok(self.inner.meta.sync().await?)
    }

    /// Allocates (`mode` 0 or `FALLOC_FL_KEEP_SIZE`), punches (`FALLOC_FL_PUNCH_HOLE |
    /// FALLOC_FL_KEEP_SIZE`) or zeroes (`FALLOC_FL_ZERO_RANGE`) `off..off+len` of the file
    /// of `fh`, which must be open for writing.
    pub async fn fallocate(
        &self,
        ctx: &Context,
        fh: u64,
        mode: u32,
        off: u64,
        len: u64,
    ) -> Result<()> {
        let h = self.file_handle(fh)?;
        if !h.access.write {
            return Err(VfsError::BadHandle);
        }
        if len == 0 {
            return Err(VfsError::InvalidArgument("fallocate of zero bytes"));
        }
        if off.checked_add(len).is_none_or(|end| end > MAX_FILE_SIZE) {
            return Err(VfsError::FileTooBig);
        }
        let of = &h.file;
        let mut w = of.writer.lock().await;
        w.flush().await?;
        self.inner
            .meta
            .fallocate(&ctx.as_opener(), h.ino, FallocMode(mode), off, len)
            .await?;
        of.state.invalidate_all();
        let attr = self.inner.meta.getattr(h.ino).await?;
        of.state.set_length(attr.length);
        Ok(())
    }

    /// Copies `len` bytes from `fh_in@off_in` to `fh_out@off_out` by sharing the source's
    /// blocks (no data is copied). Returns the bytes copied, short at the source's end.
    /// `flags` must be 0; overlapping ranges of one file are `EINVAL`.
    #[allow(clippy::too_many_arguments)]
    pub async fn copy_file_range(
        &self,
        ctx: &Context,
        fh_in: u64,
        off_in: u64,
        fh_out: u64,
        off_out: u64,
        len: u64,
        flags: u32,
    ) -> Result<u64> {
        let hin = self.file_handle(fh_in)?;
        let hout = self.file_handle(fh_out)?;
        if flags != 0 {
            return Err(VfsError::InvalidArgument("copy_file_range flags must be 0"));
        }
        if !hin.access.read || !hout.access.write || hout.access.append {
            return Err(VfsError::BadHandle);
        }
        // Shortened to the source's end first, as Linux does, so that a generous `len`
        // is neither an overlap nor past the largest file.
        let len = len.min(hin.file.state.length().saturating_sub(off_in));
        if hin.ino == hout.ino
            && off_in < off_out.saturating_add(len)
            && off_out < off_in.saturating_add(len)
        {
            return Err(VfsError::InvalidArgument(
                "copy_file_range within one file with overlapping ranges",
            ));
        }
        if off_out
            .checked_add(len)
            .is_none_or(|end| end > MAX_FILE_SIZE)
        {
            return Err(VfsError::FileTooBig);
        }
        if len == 0 {
            return Ok(0);
        }
        self.drop_privs_for_write(ctx, &hout).await?;
        if hin.ino != hout.ino {
            let mut w = hin.file.writer.lock().await;
            w.flush().await?;
        }
        let of = &hout.file;
        let mut w = of.writer.lock().await;
        w.flush().await?;
        let n = self
            .inner
            .meta
            .copy_file_range(&ctx.as_opener(), hin.ino, off_in, hout.ino, off_out, len)
            .await?;
        of.state.invalidate_all();
        if n > 0 {
            of.state.extend_length(off_out + n);
        }
        Ok(n)
    }

    /// [`Vfs::drop_privs`] before a write by `ctx` through `h`: once per handle, and only
    /// for a file that had the bits when it was opened, so that ordinary writes cost no
    /// metadata round trip.
    async fn drop_privs_for_write(&self, ctx: &Context, h: &FileHandle) -> Result<()> {
        if ctx.is_root() || !has_exec_privs(h.mode) || h.privs_dropped.load(Ordering::Acquire) {
            return Ok(());
        }
        let attr = self.inner.meta.getattr(h.ino).await?;
        self.drop_privs(ctx, h.ino, attr).await?;
        h.privs_dropped.store(true, Ordering::Release);
        Ok(())
    }
}

/// Whether `len` bytes at `off` would pass the largest file size.
fn exceeds_max(off: u64, len: usize) -> bool {
    off.checked_add(len as u64)
        .is_none_or(|end| end > MAX_FILE_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_limits() {
        assert!(!exceeds_max(MAX_FILE_SIZE - 1, 1));
        assert!(exceeds_max(MAX_FILE_SIZE, 1));
        assert!(exceeds_max(u64::MAX, 1));
    }
}
