//! The suite and the property test must catch engines that are subtly wrong: the model
//! with one bug planted behind a delegating wrapper fails both.

use std::sync::Arc;

use async_trait::async_trait;
use meta_api::quota::{Quota, QuotaKind};
use meta_api::testkit::{run_all, run_model_test_seeded, Harness, ModelHarness, TestVolume};
use meta_api::{
    Attr, Context, DeletedFile, DirEntry, Entry, FallocMode, FileType, Format, Heartbeat, Ino,
    LockType, MetaEngine, PlockRequest, RenameFlags, Result, Session, SessionInfo, SetAttr, Slice,
    StatFs, Timestamp,
};

/// The planted bug.
#[derive(Clone, Copy, Debug)]
enum Bug {
    /// `rename` drops `RENAME_NOREPLACE` and replaces the target.
    NoReplaceIgnored,
    /// `readdir` skips the entry right after the cursor on every page but the first.
    PagingSkipsEntry,
    /// The last `close` of an unlinked file forgets to queue it for purge.
    LastCloseLeaks,
    /// Unlocking any POSIX range releases the owner's whole file.
    UnlockReleasesEverything,
    /// Blocking lock requests do not wait: they fail like non-blocking ones.
    BlockingDoesNotWait,
}

struct Buggy {
    inner: Arc<dyn MetaEngine>,
    bug: Bug,
}

#[async_trait]
impl MetaEngine for Buggy {
    fn name(&self) -> &'static str {
        "buggy"
    }
    async fn init(&self, format: &Format, force: bool) -> Result<()> {
        self.inner.init(format, force).await
    }
    async fn load(&self) -> Result<Format> {
        self.inner.load().await
    }
    async fn new_session(&self, info: &SessionInfo) -> Result<u64> {
        self.inner.new_session(info).await
    }
    async fn heartbeat(&self) -> Result<Heartbeat> {
        self.inner.heartbeat().await
    }
    async fn close_session(&self) -> Result<()> {
        self.inner.close_session().await
    }
    async fn list_sessions(&self) -> Result<Vec<Session>> {
        self.inner.list_sessions().await
    }
    async fn reap_stale_sessions(&self, now: Timestamp) -> Result<usize> {
        self.inner.reap_stale_sessions(now).await
    }
    async fn lookup(&self, ctx: &Context, parent: Ino, name: &[u8]) -> Result<Entry> {
        self.inner.lookup(ctx, parent, name).await
    }
    async fn getattr(&self, ino: Ino) -> Result<Attr> {
        self.inner.getattr(ino).await
    }
    async fn setattr(&self, ctx: &Context, ino: Ino, set: &SetAttr) -> Result<Attr> {
        self.inner.setattr(ctx, ino, set).await
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
        self.inner.mknod(ctx, parent, name, typ, mode, rdev).await
    }
    async fn mkdir(&self, ctx: &Context, parent: Ino, name: &[u8], mode: u16) -> Result<Entry> {
        self.inner.mkdir(ctx, parent, name, mode).await
    }
    async fn symlink(
        &self,
        ctx: &Context,
        parent: Ino,
        name: &[u8],
        target: &[u8],
    ) -> Result<Entry> {
        self.inner.symlink(ctx, parent, name, target).await
    }
    async fn readlink(&self, ino: Ino) -> Result<Vec<u8>> {
        self.inner.readlink(ino).await
    }
    async fn link(&self, ctx: &Context, ino: Ino, parent: Ino, name: &[u8]) -> Result<Entry> {
        self.inner.link(ctx, ino, parent, name).await
    }
    async fn unlink(&self, ctx: &Context, parent: Ino, name: &[u8]) -> Result<()> {
        self.inner.unlink(ctx, parent, name).await
    }
    async fn rmdir(&self, ctx: &Context, parent: Ino, name: &[u8]) -> Result<()> {
        self.inner.rmdir(ctx, parent, name).await
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
        let flags = match self.bug {
            Bug::NoReplaceIgnored => RenameFlags(flags.0 & !RenameFlags::NOREPLACE),
            _ => flags,
        };
        self.inner
            .rename(ctx, parent, name, new_parent, new_name, flags)
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
        let mut page = self.inner.readdir(ctx, ino, after, limit, plus).await?;
        if let (Bug::PagingSkipsEntry, Some(_)) = (self.bug, after) {
            if !page.is_empty() {
                page.remove(0);
            }
        }
        Ok(page)
    }
    async fn open(&self, ctx: &Context, ino: Ino, flags: i32) -> Result<Attr> {
        self.inner.open(ctx, ino, flags).await
    }
    async fn close(&self, ino: Ino) -> Result<()> {
        if let Bug::LastCloseLeaks = self.bug {
            if self.inner.getattr(ino).await?.nlink == 0 {
                return Ok(());
            }
        }
        self.inner.close(ino).await
    }
    async fn read_chunk(&self, ino: Ino, index: u32) -> Result<Vec<Slice>> {
        self.inner.read_chunk(ino, index).await
    }
    async fn write_slice(
        &self,
        ino: Ino,
        index: u32,
        slice: Slice,
        mtime: Timestamp,
    ) -> Result<usize> {
        self.inner.write_slice(ino, index, slice, mtime).await
    }
    async fn new_slice_id(&self) -> Result<u64> {
        self.inner.new_slice_id().await
    }
    async fn compact_chunk(
        &self,
        ino: Ino,
        index: u32,
        plan: &meta_api::compact::Plan,
        id: u64,
    ) -> Result<Option<Vec<Slice>>> {
        self.inner.compact_chunk(ino, index, plan, id).await
    }
    async fn truncate(&self, ctx: &Context, ino: Ino, length: u64) -> Result<Attr> {
        self.inner.truncate(ctx, ino, length).await
    }
    async fn fallocate(
        &self,
        ctx: &Context,
        ino: Ino,
        mode: FallocMode,
        off: u64,
        len: u64,
    ) -> Result<()> {
        self.inner.fallocate(ctx, ino, mode, off, len).await
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
        self.inner
            .copy_file_range(ctx, src, src_off, dst, dst_off, len)
            .await
    }
    async fn getxattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        self.inner.getxattr(ino, name).await
    }
    async fn setxattr(
        &self,
        ctx: &Context,
        ino: Ino,
        name: &[u8],
        value: &[u8],
        flags: u32,
    ) -> Result<()> {
        self.inner.setxattr(ctx, ino, name, value, flags).await
    }
    async fn listxattr(&self, ino: Ino) -> Result<Vec<Vec<u8>>> {
        self.inner.listxattr(ino).await
    }
    async fn removexattr(&self, ctx: &Context, ino: Ino, name: &[u8]) -> Result<()> {
        self.inner.removexattr(ctx, ino, name).await
    }
    async fn flock(
        &self,
        ctx: &Context,
        ino: Ino,
        owner: u64,
        ltype: LockType,
        block: bool,
    ) -> Result<()> {
        let block = block && !matches!(self.bug, Bug::BlockingDoesNotWait);
        self.inner.flock(ctx, ino, owner, ltype, block).await
    }
    async fn getlk(
        &self,
        ctx: &Context,
        ino: Ino,
        owner: u64,
        lock: &mut PlockRequest,
    ) -> Result<()> {
        self.inner.getlk(ctx, ino, owner, lock).await
    }
    async fn setlk(
        &self,
        ctx: &Context,
        ino: Ino,
        owner: u64,
        block: bool,
        ltype: LockType,
        start: u64,
        end: u64,
        pid: u32,
    ) -> Result<()> {
        let block = block && !matches!(self.bug, Bug::BlockingDoesNotWait);
        let (start, end) = match (self.bug, ltype) {
            (Bug::UnlockReleasesEverything, LockType::Unlock) if start <= end => (0, u64::MAX),
            _ => (start, end),
        };
        self.inner
            .setlk(ctx, ino, owner, block, ltype, start, end, pid)
            .await
    }
    async fn statfs(&self) -> Result<StatFs> {
        self.inner.statfs().await
    }
    async fn sync(&self) -> Result<()> {
        self.inner.sync().await
    }
    async fn deleted_files(&self, limit: usize) -> Result<Vec<DeletedFile>> {
        self.inner.deleted_files(limit).await
    }
    async fn purge_file(&self, ino: Ino) -> Result<Vec<Slice>> {
        self.inner.purge_file(ino).await
    }
    async fn pending_slices(&self, limit: usize) -> Result<Vec<Slice>> {
        self.inner.pending_slices(limit).await
    }
    async fn forget_slice(&self, id: u64, size: u32) -> Result<bool> {
        self.inner.forget_slice(id, size).await
    }
    async fn list_slices(&self) -> Result<meta_api::upkeep::SliceListing> {
        self.inner.list_slices().await
    }
    async fn claim_job(&self, counter: &'static str, now: u64, every: u64) -> Result<bool> {
        self.inner.claim_job(counter, now, every).await
    }
    async fn dir_stat(&self, ino: Ino) -> Result<Option<meta_api::upkeep::DirStat>> {
        self.inner.dir_stat(ino).await
    }
    async fn sync_dir_stat(&self, ino: Ino) -> Result<meta_api::upkeep::DirStat> {
        self.inner.sync_dir_stat(ino).await
    }
    async fn recount_usage(&self) -> Result<meta_api::upkeep::Recount> {
        self.inner.recount_usage().await
    }
    async fn free_delayed_slices(&self, before: i64, limit: usize) -> Result<Vec<Slice>> {
        self.inner.free_delayed_slices(before, limit).await
    }
    async fn set_quota(
        &self,
        kind: QuotaKind,
        key: u64,
        limits: (i64, i64),
        used: Option<(i64, i64)>,
    ) -> Result<()> {
        self.inner.set_quota(kind, key, limits, used).await
    }
    async fn get_quota(&self, kind: QuotaKind, key: u64) -> Result<Option<Quota>> {
        self.inner.get_quota(kind, key).await
    }
    async fn list_quotas(&self, kind: QuotaKind) -> Result<Vec<(u64, Quota)>> {
        self.inner.list_quotas(kind).await
    }
    async fn delete_quota(&self, kind: QuotaKind, key: u64) -> Result<bool> {
        self.inner.delete_quota(kind, key).await
    }
    async fn statfs_at(&self, ino: Ino) -> Result<StatFs> {
        self.inner.statfs_at(ino).await
    }
    async fn clone_node(
        &self,
        ctx: &Context,
        step: &meta_api::clone::CloneNode<'_>,
    ) -> Result<Entry> {
        self.inner.clone_node(ctx, step).await
    }
    async fn attach_dir(
        &self,
        ctx: &Context,
        to: (Ino, &[u8]),
        ino: Ino,
        usage: meta_api::space::Usage,
    ) -> Result<Entry> {
        self.inner.attach_dir(ctx, to, ino, usage).await
    }
    async fn detached_nodes(&self) -> Result<Vec<(Ino, i64)>> {
        self.inner.detached_nodes().await
    }
    async fn drop_detached(&self, ino: Ino) -> Result<bool> {
        self.inner.drop_detached(ino).await
    }
    async fn hold_slices(&self, slices: &[(u64, u32)], delta: i64) -> Result<Vec<Slice>> {
        self.inner.hold_slices(slices, delta).await
    }
    async fn wipe(&self) -> Result<()> {
        self.inner.wipe().await
    }
}

struct BuggyHarness {
    model: ModelHarness,
    bug: Bug,
}

struct BuggyVolume {
    inner: Box<dyn TestVolume>,
    bug: Bug,
}

#[async_trait]
impl Harness for BuggyHarness {
    async fn new_volume(&self) -> Result<Box<dyn TestVolume>> {
        Ok(Box::new(BuggyVolume {
            inner: self.model.new_volume().await?,
            bug: self.bug,
        }))
    }
    async fn unformatted_client(&self) -> Result<Arc<dyn MetaEngine>> {
        Ok(Arc::new(Buggy {
            inner: self.model.unformatted_client().await?,
            bug: self.bug,
        }))
    }
}

#[async_trait]
impl TestVolume for BuggyVolume {
    async fn connect(&self) -> Result<Arc<dyn MetaEngine>> {
        Ok(Arc::new(Buggy {
            inner: self.inner.connect().await?,
            bug: self.bug,
        }))
    }
}

fn harness(bug: Bug) -> BuggyHarness {
    BuggyHarness {
        model: ModelHarness::new(),
        bug,
    }
}

#[tokio::test]
#[should_panic(expected = "rename::rename_noreplace")]
async fn suite_catches_ignored_noreplace() {
    run_all(&harness(Bug::NoReplaceIgnored)).await;
}

#[tokio::test]
#[should_panic(expected = "readdir::paging_with_small_limits")]
async fn suite_catches_paging_that_skips() {
    run_all(&harness(Bug::PagingSkipsEntry)).await;
}

#[tokio::test]
#[should_panic(expected = "open::unlinked_open_file_stays_readable")]
async fn suite_catches_leaking_last_close() {
    run_all(&harness(Bug::LastCloseLeaks)).await;
}

#[tokio::test]
#[should_panic(expected = "locks::plock_unlock_splits_and_relock_merges")]
async fn suite_catches_unlock_of_the_whole_file() {
    run_all(&harness(Bug::UnlockReleasesEverything)).await;
}

#[tokio::test]
#[should_panic(expected = "locks::flock_blocking_waits_for_unlock")]
async fn suite_catches_blocking_locks_that_do_not_wait() {
    run_all(&harness(Bug::BlockingDoesNotWait)).await;
}

#[tokio::test]
#[should_panic(expected = "model test:")]
async fn model_test_catches_ignored_noreplace() {
    run_model_test_seeded(&harness(Bug::NoReplaceIgnored), 256, 1).await;
}

#[tokio::test]
#[should_panic(expected = "model test:")]
async fn model_test_catches_paging_that_skips() {
    run_model_test_seeded(&harness(Bug::PagingSkipsEntry), 256, 2).await;
}

#[tokio::test]
#[should_panic(expected = "model test:")]
async fn model_test_catches_leaking_last_close() {
    run_model_test_seeded(&harness(Bug::LastCloseLeaks), 256, 3).await;
}
