//! What an engine implements: its storage, one trait per concern.
//!
//! An engine crate implements these traits — each in the module of the same concern
//! (`engine/volume.rs`, `engine/session.rs`, `engine/namespace.rs`, `engine/attr.rs`,
//! `engine/data.rs`, `engine/purge.rs`, `engine/upkeep.rs`, `engine/xattr.rs`,
//! `engine/locks.rs` in every engine crate) — and gets [`MetaEngine`](crate::MetaEngine) from the blanket
//! implementation in this crate, which adds everything that does not depend on the
//! storage: argument and name checks, the trash's guards
//! ([`crate::trash`]), `statfs`, the blocking lock wait, and `mkdir`/
//! `symlink` as kinds of `mknod`. The documentation of each operation's contract is on
//! [`MetaEngine`](crate::MetaEngine); the methods here are called only with arguments that
//! passed the shared checks (see each method).
//!
//! Callers use [`MetaEngine`](crate::MetaEngine), never these traits: a method here may
//! skip checks the blanket implementation makes.

use async_trait::async_trait;

use crate::space::Usage;
use crate::upkeep::{DirStat, Recount, SliceListing};
use crate::{
    Attr, Context, DeletedFile, DirEntry, Entry, FallocMode, FileType, Format, Ino, LockOwner,
    LockType, PlockRequest, RenameFlags, Result, Session, SessionInfo, SetAttr, Slice, Timestamp,
};

/// The volume's settings and usage counters.
#[async_trait]
pub trait Volume: Send + Sync + 'static {
    /// The engine's scheme name (`sqlite3`, `redis`, `tkv`, …).
    fn name(&self) -> &'static str;

    /// [`MetaEngine::init`](crate::MetaEngine::init).
    async fn init(&self, format: &Format, force: bool) -> Result<()>;

    /// [`MetaEngine::load`](crate::MetaEngine::load): reads the stored settings.
    async fn load(&self) -> Result<Format>;

    /// The settings as this client knows them (loaded once, then cached; `NotFormatted`
    /// when there are none).
    async fn settings(&self) -> Result<Format>;

    /// The usage counters (`usedSpace`, `totalInodes`) as stored now.
    async fn usage(&self) -> Result<Usage>;

    /// [`MetaEngine::sync`](crate::MetaEngine::sync). The default suits engines whose
    /// every commit is durable when acknowledged.
    async fn sync(&self) -> Result<()> {
        Ok(())
    }
}

/// The order every engine's [`Sessions::close_session`] keeps: the client's session id
/// (`sid`, held in `cell`) is cleared first, so that a lock waiting meanwhile ends with
/// `BadHandle` ([`crate::locks::wait_for_lock`]) instead of meeting a session half
/// removed, then `remove` drops the session's records; when that fails the id is put
/// back, so that a later close can try again.
pub async fn end_session<F, Fut>(
    cell: &std::sync::atomic::AtomicU64,
    sid: u64,
    remove: F,
) -> Result<()>
where
    F: FnOnce(u64) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    use std::sync::atomic::Ordering;
    cell.store(0, Ordering::SeqCst);
    let removed = remove(sid).await;
    if removed.is_err() {
        cell.store(sid, Ordering::SeqCst);
    }
    removed
}

/// Sessions and the open files they sustain.
#[async_trait]
pub trait Sessions: Send + Sync + 'static {
    /// [`MetaEngine::new_session`](crate::MetaEngine::new_session).
    async fn new_session(&self, info: &SessionInfo) -> Result<u64>;
    /// [`MetaEngine::heartbeat`](crate::MetaEngine::heartbeat).
    async fn heartbeat(&self) -> Result<crate::Heartbeat>;
    /// [`MetaEngine::close_session`](crate::MetaEngine::close_session).
    async fn close_session(&self) -> Result<()>;
    /// [`MetaEngine::list_sessions`](crate::MetaEngine::list_sessions).
    async fn list_sessions(&self) -> Result<Vec<Session>>;
    /// [`MetaEngine::reap_stale_sessions`](crate::MetaEngine::reap_stale_sessions).
    async fn reap_stale_sessions(&self, now: Timestamp) -> Result<usize>;
    /// [`MetaEngine::open`](crate::MetaEngine::open); check the inode with
    /// [`crate::perm::check_open`].
    async fn open(&self, ctx: &Context, ino: Ino, flags: i32) -> Result<Attr>;
    /// [`MetaEngine::close`](crate::MetaEngine::close).
    async fn close(&self, ino: Ino) -> Result<()>;
}

/// Directory entries.
#[async_trait]
pub trait Namespace: Send + Sync + 'static {
    /// [`MetaEngine::lookup`](crate::MetaEngine::lookup).
    async fn lookup(&self, ctx: &Context, parent: Ino, name: &[u8]) -> Result<Entry>;

    /// Creates an inode of any type named `name` in `parent`: `target` is a symlink's
    /// target (empty otherwise). `name` passed [`crate::name::validate_name`], `target`
    /// [`crate::name::validate_symlink_target`].
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
    ) -> Result<Entry>;

    /// [`MetaEngine::create`](crate::MetaEngine::create); `name` is valid.
    async fn create(&self, ctx: &Context, parent: Ino, name: &[u8], mode: u16) -> Result<Entry>;

    /// [`MetaEngine::readlink`](crate::MetaEngine::readlink).
    async fn readlink(&self, ino: Ino) -> Result<Vec<u8>>;
    /// [`MetaEngine::link`](crate::MetaEngine::link); `name` is valid.
    async fn link(&self, ctx: &Context, ino: Ino, parent: Ino, name: &[u8]) -> Result<Entry>;
    /// [`MetaEngine::unlink`](crate::MetaEngine::unlink).
    async fn unlink(&self, ctx: &Context, parent: Ino, name: &[u8]) -> Result<()>;
    /// [`MetaEngine::rmdir`](crate::MetaEngine::rmdir).
    async fn rmdir(&self, ctx: &Context, parent: Ino, name: &[u8]) -> Result<()>;
    /// Unlinks every name of `names` (valid, not the trash's) from `parent` in one
    /// transaction, each with [`unlink`](Namespace::unlink)'s checks and effect: all or
    /// nothing. Any error (a name missing, refused, a directory) leaves everything as it
    /// was; [`MetaEngine::unlink_many`](crate::MetaEngine::unlink_many) then goes one name
    /// at a time. The default refuses, for engines without batches.
    async fn unlink_batch(&self, _ctx: &Context, _parent: Ino, _names: &[Vec<u8>]) -> Result<()> {
        Err(crate::MetaError::NotSupported("batched unlinks"))
    }
    /// [`MetaEngine::rename`](crate::MetaEngine::rename); the flags are known ones and
    /// `new_name` is valid.
    async fn rename(
        &self,
        ctx: &Context,
        parent: Ino,
        name: &[u8],
        new_parent: Ino,
        new_name: &[u8],
        flags: RenameFlags,
    ) -> Result<()>;
    /// [`MetaEngine::readdir`](crate::MetaEngine::readdir).
    async fn readdir(
        &self,
        ctx: &Context,
        ino: Ino,
        after: Option<&[u8]>,
        limit: usize,
        plus: bool,
    ) -> Result<Vec<DirEntry>>;
}

/// Inode attributes.
#[async_trait]
pub trait Attrs: Send + Sync + 'static {
    /// [`MetaEngine::getattr`](crate::MetaEngine::getattr).
    async fn getattr(&self, ino: Ino) -> Result<Attr>;
    /// [`MetaEngine::setattr`](crate::MetaEngine::setattr); a `size` is at most
    /// [`crate::MAX_FILE_SIZE`].
    async fn setattr(&self, ctx: &Context, ino: Ino, set: &SetAttr) -> Result<Attr>;
    /// [`MetaEngine::truncate`](crate::MetaEngine::truncate); `length` is at most
    /// [`crate::MAX_FILE_SIZE`].
    async fn truncate(&self, ctx: &Context, ino: Ino, length: u64) -> Result<Attr>;
}

/// File data: chunks and their slices.
#[async_trait]
pub trait Data: Send + Sync + 'static {
    /// [`MetaEngine::read_chunk`](crate::MetaEngine::read_chunk).
    async fn read_chunk(&self, ino: Ino, index: u32) -> Result<Vec<Slice>>;
    /// [`MetaEngine::write_slice`](crate::MetaEngine::write_slice).
    async fn write_slice(
        &self,
        ino: Ino,
        index: u32,
        slice: Slice,
        mtime: Timestamp,
    ) -> Result<usize>;
    /// [`MetaEngine::new_slice_id`](crate::MetaEngine::new_slice_id).
    async fn new_slice_id(&self) -> Result<u64>;
    /// [`MetaEngine::compact_chunk`](crate::MetaEngine::compact_chunk); `id` is not 0 and
    /// the plan replaces at least one record.
    async fn compact_chunk(
        &self,
        ino: Ino,
        index: u32,
        plan: &crate::compact::Plan,
        id: u64,
    ) -> Result<Option<Vec<Slice>>>;
    /// [`MetaEngine::fallocate`](crate::MetaEngine::fallocate); `mode`, `off` and `len`
    /// passed [`crate::args::check_fallocate`].
    async fn fallocate(
        &self,
        ctx: &Context,
        ino: Ino,
        mode: FallocMode,
        off: u64,
        len: u64,
    ) -> Result<()>;
    /// [`MetaEngine::copy_file_range`](crate::MetaEngine::copy_file_range). The range is
    /// checked by the engine with [`crate::args::check_copy_range`] after both files
    /// (Linux's order).
    #[allow(clippy::too_many_arguments)]
    async fn copy_file_range(
        &self,
        ctx: &Context,
        src: Ino,
        src_off: u64,
        dst: Ino,
        dst_off: u64,
        len: u64,
    ) -> Result<u64>;
}

/// What [`Purge::purge_file`] answers for a file that is not queued for deletion: the
/// inode is live (`InvalidArgument`) or gone (`NotFound`, another client purged it).
pub fn not_queued(live: bool) -> crate::MetaError {
    if live {
        crate::MetaError::InvalidArgument("the file is not deleted")
    } else {
        crate::MetaError::NotFound
    }
}

/// The deletion queue.
#[async_trait]
pub trait Purge: Send + Sync + 'static {
    /// [`MetaEngine::deleted_files`](crate::MetaEngine::deleted_files).
    async fn deleted_files(&self, limit: usize) -> Result<Vec<DeletedFile>>;
    /// [`MetaEngine::purge_file`](crate::MetaEngine::purge_file).
    async fn purge_file(&self, ino: Ino) -> Result<Vec<Slice>>;
    /// [`MetaEngine::purge_files`](crate::MetaEngine::purge_files). The default purges one
    /// file per transaction; engines override it to purge many in one.
    async fn purge_files(&self, files: &[DeletedFile]) -> Result<crate::Purged> {
        crate::engine::purge_each(files, |ino| self.purge_file(ino)).await
    }
}

/// Upkeep: the inventory for gc, pending slices, job election and recomputed statistics
/// (see [`crate::upkeep`]).
#[async_trait]
pub trait Upkeep: Send + Sync + 'static {
    /// [`MetaEngine::pending_slices`](crate::MetaEngine::pending_slices); `limit` > 0.
    async fn pending_slices(&self, limit: usize) -> Result<Vec<Slice>>;
    /// [`MetaEngine::forget_slice`](crate::MetaEngine::forget_slice); `id` is not 0.
    async fn forget_slice(&self, id: u64, size: u32) -> Result<bool>;
    /// [`MetaEngine::forget_slices`](crate::MetaEngine::forget_slices); no id is 0. The
    /// default forgets one slice per transaction.
    async fn forget_slices(&self, slices: &[(u64, u32)]) -> Result<usize> {
        crate::engine::forget_each(slices, |id, size| self.forget_slice(id, size)).await
    }
    /// [`MetaEngine::list_slices`](crate::MetaEngine::list_slices).
    async fn list_slices(&self) -> Result<SliceListing>;
    /// [`MetaEngine::claim_job`](crate::MetaEngine::claim_job); `counter` is one of
    /// [`crate::upkeep::JOB_COUNTERS`].
    async fn claim_job(&self, counter: &'static str, now: u64, every: u64) -> Result<bool>;
    /// [`MetaEngine::dir_stat`](crate::MetaEngine::dir_stat).
    async fn dir_stat(&self, ino: Ino) -> Result<Option<DirStat>>;
    /// [`MetaEngine::sync_dir_stat`](crate::MetaEngine::sync_dir_stat).
    async fn sync_dir_stat(&self, ino: Ino) -> Result<DirStat>;
    /// [`MetaEngine::recount_usage`](crate::MetaEngine::recount_usage).
    async fn recount_usage(&self) -> Result<Recount>;
    /// [`MetaEngine::free_delayed_slices`](crate::MetaEngine::free_delayed_slices);
    /// `limit` > 0.
    async fn free_delayed_slices(&self, before: i64, limit: usize) -> Result<Vec<Slice>>;
}

/// Quota records (see [`crate::quota`]); their enforcement is part of each change.
#[async_trait]
pub trait Quotas: Send + Sync + 'static {
    /// [`MetaEngine::set_quota`](crate::MetaEngine::set_quota).
    async fn set_quota(
        &self,
        kind: crate::quota::QuotaKind,
        key: u64,
        limits: (i64, i64),
        used: Option<(i64, i64)>,
    ) -> Result<()>;
    /// [`MetaEngine::get_quota`](crate::MetaEngine::get_quota).
    async fn get_quota(
        &self,
        kind: crate::quota::QuotaKind,
        key: u64,
    ) -> Result<Option<crate::quota::Quota>>;
    /// [`MetaEngine::list_quotas`](crate::MetaEngine::list_quotas).
    async fn list_quotas(
        &self,
        kind: crate::quota::QuotaKind,
    ) -> Result<Vec<(u64, crate::quota::Quota)>>;
    /// [`MetaEngine::delete_quota`](crate::MetaEngine::delete_quota).
    async fn delete_quota(&self, kind: crate::quota::QuotaKind, key: u64) -> Result<bool>;
    /// The nearest directory quota over directory `ino` (itself or an ancestor), for
    /// `statfs` inside it.
    async fn quota_over(&self, ino: Ino) -> Result<Option<crate::quota::Quota>>;
}

/// Extended attributes (the `system.posix_acl_*` names included: an engine stores ACLs).
#[async_trait]
pub trait Xattrs: Send + Sync + 'static {
    /// [`MetaEngine::getxattr`](crate::MetaEngine::getxattr); `name` passed
    /// [`crate::xattr::check_name`].
    async fn getxattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>>;
    /// [`MetaEngine::setxattr`](crate::MetaEngine::setxattr); the arguments passed
    /// [`crate::xattr::check_set`].
    async fn setxattr(
        &self,
        ctx: &Context,
        ino: Ino,
        name: &[u8],
        value: &[u8],
        flags: u32,
    ) -> Result<()>;
    /// [`MetaEngine::listxattr`](crate::MetaEngine::listxattr).
    async fn listxattr(&self, ino: Ino) -> Result<Vec<Vec<u8>>>;
    /// [`MetaEngine::removexattr`](crate::MetaEngine::removexattr); `name` passed
    /// [`crate::xattr::check_name`].
    async fn removexattr(&self, ctx: &Context, ino: Ino, name: &[u8]) -> Result<()>;
}

/// File locks: single attempts; the blanket implementation waits and retries.
#[async_trait]
pub trait Locks: Send + Sync + 'static {
    /// This client's session id, 0 without one (locks need a session).
    fn lock_session(&self) -> u64;

    /// One attempt of a `flock` request by `me`: `WouldBlock` when another owner's lock
    /// conflicts. An `Unlock` never fails for a missing inode.
    async fn try_flock(&self, ino: Ino, me: LockOwner, ltype: LockType) -> Result<()>;

    /// `F_GETLK` by `me` (range already checked, `ltype` not `Unlock`): replaces `lock`
    /// with the conflicting lock of another owner, or [`PlockRequest::unlocked`].
    async fn getlk(&self, ino: Ino, me: LockOwner, lock: &mut PlockRequest) -> Result<()>;

    /// One attempt of an `F_SETLK` request by `me` (range already checked): `WouldBlock`
    /// when another owner's lock conflicts. An `Unlock` never fails for a missing inode.
    async fn try_setlk(&self, ino: Ino, me: LockOwner, req: PlockRequest) -> Result<()>;
}

/// Bulk moves of a whole volume: what [`crate::dump`] reads besides the tree, and what
/// [`crate::dump::load`] writes.
#[async_trait]
pub trait Bulk: Send + Sync + 'static {
    /// The counters as stored now, in the dump's convention (see
    /// [`crate::dump::Counters`]).
    async fn counters(&self) -> Result<crate::dump::Counters>;

    /// Up to `limit` files queued for deletion with inode numbers above `after`, in inode
    /// order.
    async fn queued_deletions(
        &self,
        after: Ino,
        limit: usize,
    ) -> Result<Vec<crate::dump::QueuedDeletion>>;

    /// Whether the engine holds no record at all: a load writes only into an empty engine.
    async fn is_empty(&self) -> Result<bool>;

    /// Writes one batch of a load into an empty engine, in one or more transactions. The
    /// records are new: an engine may insert without reading first. The batch has passed
    /// [`Batch::check`](crate::dump::Batch::check) (no inode or slice 0, ids within
    /// `i64`). ACL rules are stored as the engine stores them (identical rules share one
    /// id).
    async fn load_batch(&self, batch: &crate::dump::Batch) -> Result<()>;

    /// Ends a load after its last batch: sets the link counts of `links` (a link whose
    /// inode was not loaded is [`Link::WITHOUT_NODE`](crate::dump::Link::WITHOUT_NODE)),
    /// turns the slice occurrences into reference records as the engine stores them,
    /// stores the counters and the quotas, and writes the setting last (until then the
    /// engine does not open as a volume).
    async fn finish_load(&self, end: &crate::dump::LoadEnd) -> Result<()>;

    /// [`MetaEngine::node_contents`](crate::MetaEngine::node_contents).
    async fn node_contents(
        &self,
        nodes: &[(Ino, Attr)],
    ) -> Result<Vec<Option<crate::dump::NodeContents>>>;

    /// [`MetaEngine::hold_slices`](crate::MetaEngine::hold_slices).
    async fn hold_slices(&self, slices: &[(u64, u32)], delta: i64) -> Result<Vec<Slice>>;

    /// [`MetaEngine::wipe`](crate::MetaEngine::wipe).
    async fn wipe(&self) -> Result<()>;
}

/// Clones in metadata only: the steps [`crate::clone::clone_tree`] walks with (the module
/// docs have the protocol).
#[async_trait]
pub trait Clones: Send + Sync + 'static {
    /// [`MetaEngine::clone_node`](crate::MetaEngine::clone_node); the name passed the
    /// name checks, a top step [`crate::clone::check_top`].
    async fn clone_node(&self, ctx: &Context, step: &crate::clone::CloneNode<'_>) -> Result<Entry>;

    /// [`MetaEngine::attach_dir`](crate::MetaEngine::attach_dir); the name passed
    /// [`crate::clone::check_top`].
    async fn attach_dir(
        &self,
        ctx: &Context,
        to: (Ino, &[u8]),
        ino: Ino,
        usage: Usage,
    ) -> Result<Entry>;

    /// [`MetaEngine::detached_nodes`](crate::MetaEngine::detached_nodes).
    async fn detached_nodes(&self) -> Result<Vec<(Ino, i64)>>;

    /// [`MetaEngine::drop_detached`](crate::MetaEngine::drop_detached).
    async fn drop_detached(&self, ino: Ino) -> Result<bool>;
}
