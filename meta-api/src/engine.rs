//! The `MetaEngine` trait: POSIX metadata operations at inode level.

use async_trait::async_trait;

use crate::{
    Attr, DirEntry, Entry, FallocMode, FileType, Format, Ino, LockType, PlockRequest, RenameFlags,
    Result, Session, SessionInfo, SetAttr, Slice, StatFs, Timestamp,
};

/// A file whose last name and last open handle are gone: its chunks and slices wait to be
/// released by [`MetaEngine::purge_file`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletedFile {
    /// The inode.
    pub ino: Ino,
    /// Its length when it was deleted.
    pub length: u64,
}

/// What [`MetaEngine::purge_files`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Purged {
    /// The files purged by this call (files another client purged first are not in it).
    pub files: Vec<Ino>,
    /// The slices nobody references any more: the caller deletes their objects, then
    /// forgets them ([`MetaEngine::forget_slices`]).
    pub freed: Vec<Slice>,
}

/// [`MetaEngine::unlink_many`] one name per transaction.
async fn unlink_each<E: MetaEngine + ?Sized>(
    e: &E,
    ctx: &crate::Context,
    parent: Ino,
    names: &[Vec<u8>],
) -> Result<usize> {
    let mut done = 0;
    for n in names {
        match e.unlink(ctx, parent, n).await {
            Ok(()) => done += 1,
            Err(crate::MetaError::NotFound) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(done)
}

/// The default [`MetaEngine::forget_slices`] of engines that forget one slice per
/// transaction: `forget` (their `forget_slice`) on each slice.
pub(crate) async fn forget_each<F, Fut>(slices: &[(u64, u32)], mut forget: F) -> Result<usize>
where
    F: FnMut(u64, u32) -> Fut + Send,
    Fut: std::future::Future<Output = Result<bool>> + Send,
{
    let mut n = 0;
    for &(id, size) in slices {
        n += usize::from(forget(id, size).await?);
    }
    Ok(n)
}

/// The default [`MetaEngine::purge_files`] of engines that purge one file per transaction:
/// `purge` (their `purge_file`) on each file; a file already gone is skipped.
pub(crate) async fn purge_each<F, Fut>(files: &[DeletedFile], mut purge: F) -> Result<Purged>
where
    F: FnMut(Ino) -> Fut + Send,
    Fut: std::future::Future<Output = Result<Vec<Slice>>> + Send,
{
    let mut done = Purged::default();
    for f in files {
        match purge(f.ino).await {
            Ok(freed) => {
                done.files.push(f.ino);
                done.freed.extend(freed);
            }
            Err(crate::MetaError::NotFound) => {}
            // What this call already purged stays purged: its slices are pending, found by
            // the cleanup of pending slices.
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// A transactional metadata engine: one client of one JuiceFS-compatible volume.
///
/// Each value is one *client*: after [`MetaEngine::new_session`] it owns one session, and
/// its open/close calls sustain inodes for that session. Two clients of one volume are two
/// values opened on the same URL. Every operation is one atomic transaction in the
/// backend, retried on conflict with bounded backoff; an error leaves nothing changed.
///
/// Permission checks use the caller's [`crate::Context`] and the shared rules in
/// [`crate::perm`]; names are validated with [`crate::name`].
#[async_trait]
pub trait MetaEngine: Send + Sync + 'static {
    /// The engine's scheme name (`sqlite3`, `redis`, `tkv`, …).
    fn name(&self) -> &'static str;

    // ----- settings -----

    /// Formats the volume: creates the schema, the root directory (`0o777` owned by root, as
    /// JuiceFS does), the trash directory, the counters and the settings. On an already
    /// formatted volume, `force` rewrites the settings (name and UUID must match) and
    /// anything else fails with `Exists`.
    async fn init(&self, format: &Format, force: bool) -> Result<()>;

    /// Reads the volume's settings; `NotFormatted` when there are none.
    async fn load(&self) -> Result<Format>;

    // ----- sessions -----

    /// Registers this client's session (heartbeat expiry set from the engine's clock).
    /// Returns the session id.
    async fn new_session(&self, info: &SessionInfo) -> Result<u64>;

    /// Extends this client's session. When another client reaped it as stale meanwhile,
    /// the session is registered again under the same id and
    /// [`Heartbeat::Reregistered`](crate::Heartbeat::Reregistered) says so: what the reap released (open files kept
    /// alive, locks) is not taken back, so the caller stops trusting handles and locks
    /// from before (a VFS fails them with [`MetaError::SessionLost`](crate::MetaError::SessionLost)).
    async fn heartbeat(&self) -> Result<crate::Heartbeat>;

    /// Ends this client's session: its sustained inodes are released (deleted if unlinked).
    async fn close_session(&self) -> Result<()>;

    /// Lists the volume's sessions.
    async fn list_sessions(&self) -> Result<Vec<Session>>;

    /// Removes sessions whose expiry is before `now`, releasing their sustained inodes.
    /// Returns how many were removed. `now` is a parameter so tests control the clock.
    async fn reap_stale_sessions(&self, now: Timestamp) -> Result<usize>;

    // ----- namespace -----

    /// Looks `name` up in directory `parent` (needs search permission on `parent`).
    /// `.` and `..` resolve to the directory and its parent.
    async fn lookup(&self, ctx: &crate::Context, parent: Ino, name: &[u8]) -> Result<Entry>;

    /// The attributes of `ino`.
    async fn getattr(&self, ino: Ino) -> Result<Attr>;

    /// Checks that `ctx` may access `ino` with `mask` (a combination of [`crate::access`]
    /// bits, as `access(2)`), consulting the inode's POSIX ACL when it has one, and
    /// returns its attributes. The provided implementation reads the ACL through
    /// [`MetaEngine::getxattr`] only when the check needs it.
    async fn check_access(&self, ctx: &crate::Context, ino: Ino, mask: u8) -> Result<Attr> {
        let attr = self.getattr(ino).await?;
        let rule = match crate::acl::rule_for_check(&attr) {
            Some(_) if !ctx.is_root() => {
                match self.getxattr(ino, crate::acl::XATTR_ACCESS).await {
                    Ok(v) => Some(crate::acl::Rule::from_xattr(&v).map_err(|_| {
                        crate::MetaError::Corrupt(format!("the access ACL of {ino} is malformed"))
                    })?),
                    // A volume whose ACLs were turned off shows none: the mode bits decide.
                    Err(crate::MetaError::NoAttr) => None,
                    Err(e) => return Err(e),
                }
            }
            _ => None,
        };
        crate::perm::check_access_with(ctx, &attr, rule.as_ref(), mask)?;
        Ok(attr)
    }

    /// Changes attributes (see [`crate::perm::apply_setattr`] for the rules). A `size`
    /// behaves as [`MetaEngine::truncate`] and needs write permission.
    async fn setattr(&self, ctx: &crate::Context, ino: Ino, set: &SetAttr) -> Result<Attr>;

    /// Creates a non-directory inode of any type (regular, fifo, socket, devices, also
    /// directories and symlinks for convenience), applying the umask and setgid rules.
    async fn mknod(
        &self,
        ctx: &crate::Context,
        parent: Ino,
        name: &[u8],
        typ: FileType,
        mode: u16,
        rdev: u32,
    ) -> Result<Entry>;

    /// Creates a regular file and opens it for this client (as [`open`](MetaEngine::open)
    /// would, without an access check: the creator may open what it creates whatever the
    /// mode says), so a later [`close`](MetaEngine::close) releases it. Engines record the
    /// open in the creating transaction where they can.
    async fn create(
        &self,
        ctx: &crate::Context,
        parent: Ino,
        name: &[u8],
        mode: u16,
    ) -> Result<Entry> {
        let e = self
            .mknod(ctx, parent, name, FileType::Regular, mode, 0)
            .await?;
        self.open(&ctx.as_opener(), e.ino, libc::O_RDWR).await?;
        Ok(e)
    }

    /// Creates a directory.
    async fn mkdir(
        &self,
        ctx: &crate::Context,
        parent: Ino,
        name: &[u8],
        mode: u16,
    ) -> Result<Entry>;

    /// Creates a symbolic link to `target`.
    async fn symlink(
        &self,
        ctx: &crate::Context,
        parent: Ino,
        name: &[u8],
        target: &[u8],
    ) -> Result<Entry>;

    /// The target of a symbolic link (`InvalidArgument` if `ino` is not one).
    async fn readlink(&self, ino: Ino) -> Result<Vec<u8>>;

    /// Adds a hard link to `ino` named `name` in `parent` (`NotPermitted` for directories).
    async fn link(&self, ctx: &crate::Context, ino: Ino, parent: Ino, name: &[u8])
        -> Result<Entry>;

    /// Removes a non-directory entry. When the inode's last link goes and it is open in
    /// any session it is sustained; otherwise it is queued for deletion.
    async fn unlink(&self, ctx: &crate::Context, parent: Ino, name: &[u8]) -> Result<()>;

    /// Removes an empty directory.
    async fn rmdir(&self, ctx: &crate::Context, parent: Ino, name: &[u8]) -> Result<()>;

    /// Unlinks the non-directory entries `names` of `parent`, each with
    /// [`unlink`](MetaEngine::unlink)'s checks and effect, in as few transactions as the
    /// engine allows. A name already gone is skipped. Returns how many were unlinked; on
    /// the first other failure, the names before it are unlinked and the others are not.
    async fn unlink_many(
        &self,
        ctx: &crate::Context,
        parent: Ino,
        names: &[Vec<u8>],
    ) -> Result<usize> {
        unlink_each(self, ctx, parent, names).await
    }

    /// Renames `parent/name` to `new_parent/new_name`, replacing a compatible target
    /// (file over file, directory over empty directory), honouring `RENAME_NOREPLACE`
    /// and `RENAME_EXCHANGE`. A directory moved into its own subtree is `InvalidArgument`.
    async fn rename(
        &self,
        ctx: &crate::Context,
        parent: Ino,
        name: &[u8],
        new_parent: Ino,
        new_name: &[u8],
        flags: RenameFlags,
    ) -> Result<()>;

    /// Lists up to `limit` entries of directory `ino` whose names sort after `after`
    /// (byte order), in byte order, without `.` and `..`. Pass the last name returned to
    /// get the next page: entries added or removed meanwhile never make a page skip or
    /// repeat another entry. `plus` fills in attributes. Needs read permission.
    async fn readdir(
        &self,
        ctx: &crate::Context,
        ino: Ino,
        after: Option<&[u8]>,
        limit: usize,
        plus: bool,
    ) -> Result<Vec<DirEntry>>;

    // ----- open files -----

    /// Checks access for `flags` (`O_RDONLY`/`O_WRONLY`/`O_RDWR`, `O_TRUNC`) and records
    /// the open so that an unlink keeps the inode alive until [`MetaEngine::close`].
    /// Returns the current attributes (close-to-open: what other clients committed).
    async fn open(&self, ctx: &crate::Context, ino: Ino, flags: i32) -> Result<Attr>;

    /// Records a close; the last close of an unlinked inode queues it for deletion: at once
    /// when this client removed its last name, otherwise by the time
    /// [`sync`](MetaEngine::sync) returns at the latest (an engine may send closes in
    /// batches; Redis does).
    async fn close(&self, ino: Ino) -> Result<()>;

    // ----- data -----

    /// The slices of chunk `index` of `ino`, in write order (overlay with
    /// [`crate::overlay::build`]).
    async fn read_chunk(&self, ino: Ino, index: u32) -> Result<Vec<Slice>>;

    /// Appends `slice` to chunk `index` of `ino` and, in the same transaction, extends the
    /// length to cover it and sets mtime/ctime to `mtime`. The slice's blocks must already
    /// be stored (data before metadata). Returns how many records the chunk holds after the
    /// append, for [`crate::compact::on_write`] (a concurrent writer of the same chunk may
    /// make it one off: it is a trigger, not an invariant).
    async fn write_slice(
        &self,
        ino: Ino,
        index: u32,
        slice: Slice,
        mtime: Timestamp,
    ) -> Result<usize>;

    /// Reserves a new slice id (ids come from the engine in batches; never reused).
    async fn new_slice_id(&self) -> Result<u64>;

    /// Commits a compaction of chunk `index` of `ino` planned by
    /// [`crate::compact::plan`], whose new slice `id` (length `plan.len`) is already stored:
    /// in one transaction and only if the chunk still begins with `plan.origin`, replaces
    /// those records as [`crate::compact::apply`] says, records one reference for the new
    /// slice, and takes one reference from the slice of each replaced record — or, on a
    /// volume with trash days, keeps those references in a delayed-slice record (JuiceFS's
    /// `delslices`) for the trash cleanup. Returns the replaced slices nobody references
    /// any more (their objects may be deleted once no reader can still use a cached
    /// layout), or `None` when the chunk changed meanwhile: the compaction is wasted and
    /// the caller deletes the new slice's objects. The file's length and times do not
    /// change.
    async fn compact_chunk(
        &self,
        ino: Ino,
        index: u32,
        plan: &crate::compact::Plan,
        id: u64,
    ) -> Result<Option<Vec<Slice>>>;

    /// Sets the length of a regular file. Shrinking turns the cut-off range into a hole;
    /// growing reads as zeros. Needs write permission unless `ctx` is root.
    async fn truncate(&self, ctx: &crate::Context, ino: Ino, length: u64) -> Result<Attr>;

    /// Allocates, punches or zeroes `off..off+len` of a regular file (Linux semantics).
    async fn fallocate(
        &self,
        ctx: &crate::Context,
        ino: Ino,
        mode: FallocMode,
        off: u64,
        len: u64,
    ) -> Result<()>;

    /// Copies `len` bytes from `src@src_off` to `dst@dst_off` by referencing the source's
    /// slices (no data copied). Returns the bytes copied (short at the source's end).
    #[allow(clippy::too_many_arguments)]
    async fn copy_file_range(
        &self,
        ctx: &crate::Context,
        src: Ino,
        src_off: u64,
        dst: Ino,
        dst_off: u64,
        len: u64,
    ) -> Result<u64>;

    // ----- extended attributes -----

    /// The value of xattr `name` (`NoAttr` if missing).
    async fn getxattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>>;

    /// Sets xattr `name` with `XATTR_CREATE`/`XATTR_REPLACE` semantics
    /// ([`crate::XattrFlags`]). Names up to 255 bytes, values up to 64 KiB (`Range`).
    async fn setxattr(
        &self,
        ctx: &crate::Context,
        ino: Ino,
        name: &[u8],
        value: &[u8],
        flags: u32,
    ) -> Result<()>;

    /// The names of all xattrs of `ino`, sorted.
    async fn listxattr(&self, ino: Ino) -> Result<Vec<Vec<u8>>>;

    /// Removes xattr `name` (`NoAttr` if missing).
    async fn removexattr(&self, ctx: &crate::Context, ino: Ino, name: &[u8]) -> Result<()>;

    // ----- file locks -----
    //
    // Locks belong to this client's session and an `owner` number chosen by the frontend;
    // they are visible to every client of the volume (including `juicefs` clients) and are
    // dropped when the session is closed or reaped. Rules and encodings: [`crate::locks`].
    //
    // The engine keeps no handles, so releasing locks when files close is the frontend's
    // job: on every close (FUSE `flush`) of a file by a process, POSIX drops that
    // process's `fcntl` locks on it — call `setlk(.., Unlock, 0, u64::MAX, ..)` with its
    // owner; when the last descriptor of an open file description goes (FUSE `release`
    // with `FUSE_RELEASE_FLOCK_UNLOCK`), call `flock(.., Unlock, ..)` with its owner. The
    // engine checks no access mode either: `F_RDLCK` needs a handle open for reading and
    // `F_WRLCK` one open for writing (`EBADF` otherwise), which only the frontend knows.
    //
    // A lock (not an unlock) is refused with `SessionLost`, in the same transaction that
    // would take it, when this client's session was reaped as stale: a lock of a session
    // that no longer exists would never be reaped. The next heartbeat registers the
    // session again ([`Heartbeat::Reregistered`](crate::Heartbeat::Reregistered)).

    /// BSD `flock` on `ino` for `owner` of this session: `Read` (shared), `Write`
    /// (exclusive) or `Unlock`. An owner may convert its own lock either way. A request
    /// that conflicts with another owner's lock — in any session, this one included —
    /// fails with `WouldBlock` unless `block`, in which case it is retried (without
    /// holding a transaction) until it succeeds; drop the future to stop waiting (closing
    /// the client's session ends the wait with `BadHandle`). Locks are allowed on every
    /// inode type, directories included. `NotFound` for a missing inode, `BadHandle`
    /// without a session; unlocking never fails for either.
    async fn flock(
        &self,
        ctx: &crate::Context,
        ino: Ino,
        owner: u64,
        ltype: LockType,
        block: bool,
    ) -> Result<()>;

    /// POSIX `F_GETLK`: replaces `lock` with the lock of another owner (any session) that
    /// conflicts with it, or with [`PlockRequest::unlocked`] when none does. The pid is
    /// reported for locks of this session only (0 for other sessions'). `InvalidArgument`
    /// for a range `setlk` refuses and for an `Unlock` query; `NotFound` for a missing
    /// inode.
    async fn getlk(
        &self,
        ctx: &crate::Context,
        ino: Ino,
        owner: u64,
        lock: &mut PlockRequest,
    ) -> Result<()>;

    /// POSIX `F_SETLK` (`F_SETLKW` when `block`): sets `ltype` on the inclusive range
    /// `start..=end` for `owner` of this session. An end of `u64::MAX` — or of anything
    /// from the kernel's `OFFSET_MAX` ([`crate::locks::OFFSET_MAX`]) up — reaches the end
    /// of the file, and `getlk` reports it as `u64::MAX`. Only other owners conflict
    /// (`WouldBlock`, or a retried wait when `block`, ended like `flock`'s);
    /// the owner's own locks in the range are replaced, split where the range cuts them
    /// and merged with touching ranges of the same type and pid. `Unlock` releases the
    /// range. Allowed on every inode type. `InvalidArgument` when `start > end` or
    /// `start > OFFSET_MAX`; `NotFound` for a missing inode and `BadHandle` without a
    /// session, except that unlocking never fails for either.
    #[allow(clippy::too_many_arguments)]
    async fn setlk(
        &self,
        ctx: &crate::Context,
        ino: Ino,
        owner: u64,
        block: bool,
        ltype: LockType,
        start: u64,
        end: u64,
        pid: u32,
    ) -> Result<()>;

    // ----- space and deletion -----

    /// Volume usage.
    async fn statfs(&self) -> Result<StatFs>;

    /// The durability barrier: once it returns, every operation this client completed
    /// before the call survives power loss (an operation always survives a crash of the
    /// process once it returns). `fsync` of a file or directory ends with it, and so does
    /// everything that hands out slices whose objects the caller may delete
    /// ([`purge_file`](MetaEngine::purge_file), [`pending_slices`](MetaEngine::pending_slices),
    /// [`free_delayed_slices`](MetaEngine::free_delayed_slices),
    /// [`compact_chunk`](MetaEngine::compact_chunk)): metadata is durable before deletion.
    /// Free when nothing changed since the last barrier, and on engines whose every commit
    /// is durable. Whatever the engine deferred (closes sent in batches) is sent first.
    async fn sync(&self) -> Result<()>;

    /// Files waiting to be purged (unlinked, not open anywhere), at most `limit`.
    async fn deleted_files(&self, limit: usize) -> Result<Vec<DeletedFile>>;

    /// Removes a deleted file's chunks and inode in one transaction, dropping one
    /// reference from each of its slices; returns the slices nobody references any more,
    /// whose objects the caller must now delete (metadata before deletion), then
    /// [`forget_slice`](MetaEngine::forget_slice) each: until then they stay pending.
    async fn purge_file(&self, ino: Ino) -> Result<Vec<Slice>>;

    /// Purges several deleted files (as [`deleted_files`](MetaEngine::deleted_files) listed
    /// them) in as few transactions as the engine allows, each with the effect of
    /// [`purge_file`](MetaEngine::purge_file); a file no longer queued (another client
    /// purged it) is skipped. On an error the files of the failed transaction stay queued;
    /// those of earlier transactions are purged and their slices pending.
    async fn purge_files(&self, files: &[DeletedFile]) -> Result<Purged> {
        purge_each(files, |ino| self.purge_file(ino)).await
    }

    // ----- upkeep (see crate::upkeep) -----

    /// Pending slices: no reference left, objects maybe not deleted yet (a failed or
    /// interrupted delete), at most `limit`, as [`Slice::whole`] records.
    async fn pending_slices(&self, limit: usize) -> Result<Vec<Slice>>;

    /// Forgets pending slice `id` of `size` bytes once its objects are deleted: drops its
    /// reference record if it still has no reference. Returns whether it did (false: the
    /// slice is referenced again, or was already forgotten).
    async fn forget_slice(&self, id: u64, size: u32) -> Result<bool>;

    /// [`forget_slice`](MetaEngine::forget_slice) of each slice of `slices` (`(id, size)`,
    /// none 0) in as few transactions as the engine allows; returns how many were
    /// forgotten.
    async fn forget_slices(&self, slices: &[(u64, u32)]) -> Result<usize> {
        forget_each(slices, |id, size| self.forget_slice(id, size)).await
    }

    /// Every slice the metadata references or still has to delete, for gc.
    async fn list_slices(&self) -> Result<crate::upkeep::SliceListing>;

    /// Elects this client to run a volume-wide job: in one transaction, if `counter` (one
    /// of [`crate::upkeep::JOB_COUNTERS`]) holds a time more than `every` seconds before
    /// `now` (Unix seconds), sets it to `now` and returns true; otherwise false. Any client,
    /// this library's or juicefs's, elected with the same counter runs the job.
    async fn claim_job(&self, counter: &'static str, now: u64, every: u64) -> Result<bool>;

    /// The statistics stored for directory `ino`, `None` when it has none (dir stats off,
    /// or not computed yet).
    async fn dir_stat(&self, ino: Ino) -> Result<Option<crate::upkeep::DirStat>>;

    /// Recomputes the statistics of directory `ino` from its entries, stores them (when the
    /// volume keeps dir stats) and returns them.
    async fn sync_dir_stat(&self, ino: Ino) -> Result<crate::upkeep::DirStat>;

    /// Recomputes the volume's `usedSpace` and `totalInodes` from its nodes and stores
    /// them; returns the counters before and after.
    async fn recount_usage(&self) -> Result<crate::upkeep::Recount>;

    /// Frees up to `limit` delayed-slice records (the slices compaction replaced on a
    /// volume with trash days) made before `before` (Unix seconds), oldest first, one
    /// record per transaction: each slice loses the reference the record held. Returns
    /// the slices that have no reference left: they are pending, and the caller deletes
    /// their objects, then [`MetaEngine::forget_slice`]s them.
    async fn free_delayed_slices(&self, before: i64, limit: usize) -> Result<Vec<Slice>>;

    // ----- quotas (see [`crate::quota`]) -----

    /// Sets the limits `(max space, max inodes)` of quota `key` of `kind` (≤ 0: none),
    /// creating it when missing; `used` also overwrites its usage (a new directory
    /// quota's is its subtree's, computed by the caller; `quota check --repair`).
    /// A directory quota needs the volume's `DirStats` (`NotSupported` otherwise) and an
    /// existing directory.
    async fn set_quota(
        &self,
        kind: crate::quota::QuotaKind,
        key: u64,
        limits: (i64, i64),
        used: Option<(i64, i64)>,
    ) -> Result<()>;

    /// Quota `key` of `kind`, if there is one.
    async fn get_quota(
        &self,
        kind: crate::quota::QuotaKind,
        key: u64,
    ) -> Result<Option<crate::quota::Quota>>;

    /// Every quota of `kind`, by key.
    async fn list_quotas(
        &self,
        kind: crate::quota::QuotaKind,
    ) -> Result<Vec<(u64, crate::quota::Quota)>>;

    /// Removes quota `key` of `kind` (a user's or group's keeps its usage, with no limit,
    /// as JuiceFS); returns whether there was one.
    async fn delete_quota(&self, kind: crate::quota::QuotaKind, key: u64) -> Result<bool>;

    /// `statfs` seen from directory `ino`: inside a directory quota (its own or an
    /// ancestor's), the quota's limits and usage where it sets them, as JuiceFS reports.
    async fn statfs_at(&self, ino: Ino) -> Result<StatFs>;

    /// The counters as stored now, for a dump ([`crate::dump`]).
    async fn counters(&self) -> Result<crate::dump::Counters> {
        Err(crate::MetaError::NotSupported("dump"))
    }

    /// Up to `limit` files queued for deletion with inode numbers above `after`, in inode
    /// order, for a dump.
    async fn queued_deletions(
        &self,
        _after: Ino,
        _limit: usize,
    ) -> Result<Vec<crate::dump::QueuedDeletion>> {
        Err(crate::MetaError::NotSupported("dump"))
    }

    /// Whether the engine holds no record at all (a load writes only into an empty one).
    async fn is_empty(&self) -> Result<bool> {
        Err(crate::MetaError::NotSupported("load"))
    }

    /// Writes one batch of a load ([`crate::backend::Bulk::load_batch`]); callers use
    /// [`crate::dump::load`].
    async fn load_batch(&self, _batch: &crate::dump::Batch) -> Result<()> {
        Err(crate::MetaError::NotSupported("load"))
    }

    /// Ends a load ([`crate::backend::Bulk::finish_load`]); callers use
    /// [`crate::dump::load`].
    async fn finish_load(&self, _end: &crate::dump::LoadEnd) -> Result<()> {
        Err(crate::MetaError::NotSupported("load"))
    }

    /// What a dump writes of each of `nodes` (a directory page, with their attributes)
    /// besides the attributes, in order; `None` for a node gone meanwhile
    /// ([`crate::dump::NodeContents`]). Engines answer a page in a few reads; this default
    /// reads a node at a time ([`crate::dump::node_contents_one_by_one`]).
    async fn node_contents(
        &self,
        nodes: &[(Ino, crate::Attr)],
    ) -> Result<Vec<Option<crate::dump::NodeContents>>> {
        let _ = nodes;
        Err(crate::MetaError::NotSupported("node_contents"))
    }

    /// Adds `delta` references (a checkpoint's hold, `+1`, or its release, `-1`) to each
    /// slice `(id, size)` of `slices`, in one transaction (callers pass a page at a time).
    /// A slice the engine has no reference record for is skipped (leaked or forgotten: it
    /// is never counted back to life). Returns the slices a negative `delta` left with no
    /// reference: pending, as a purge leaves them, their objects for the caller to delete
    /// before [`MetaEngine::forget_slice`]. See [`crate::checkpoint`].
    async fn hold_slices(&self, _slices: &[(u64, u32)], _delta: i64) -> Result<Vec<Slice>> {
        Err(crate::MetaError::NotSupported("checkpoints"))
    }

    /// Deletes every record but the volume's setting and its counters (`nextInode`,
    /// `nextChunk`, … keep their values, so no id is ever handed out twice): what a
    /// checkpoint restore does before it loads the checkpoint (see [`crate::checkpoint`]).
    /// Sessions go too. In as few transactions as the engine allows; a crash half-way
    /// leaves a volume the restore's marker keeps closed until the restore is run again.
    async fn wipe(&self) -> Result<()> {
        Err(crate::MetaError::NotSupported("checkpoints"))
    }

    /// One step of a clone, in one transaction (callers use [`crate::clone::clone_tree`]):
    /// reads node `step.src` (`NotFound` when it is gone; read permission, and search on a
    /// directory, else `PermissionDenied`) and writes its clone as a new inode — attributes
    /// by [`crate::clone::cloned_attr`], its xattrs, symlink target or chunks, each slice
    /// one reference more — charged to its owner and the volume (`EDQUOT`, `ENOSPC`).
    ///
    /// A top step checks `step.parent` as a create does (`NotFound`, `NotDir`, write and
    /// search permission, a deleted directory, `Exists`); a top directory is created
    /// detached (parent 0, a detached-node record, no entry), anything else with its entry,
    /// the parent's times and statistics and the directory quotas above it. A step below
    /// adds the entry to `step.parent`, a directory of the clone, with its link count (for
    /// a directory) and statistics. Returns the new inode and its attributes.
    async fn clone_node(
        &self,
        _ctx: &crate::Context,
        _step: &crate::clone::CloneNode<'_>,
    ) -> Result<Entry> {
        Err(crate::MetaError::NotSupported("clone"))
    }

    /// Attaches detached clone `ino` as entry `name` of `parent`, in one transaction: the
    /// checks of a create on `parent` (`NotFound`, `NotDir`, permission, `Exists`), the
    /// entry, the parent's link count, times and statistics, the clone's parent, and the
    /// directory quotas above `parent` charged with `usage`, the whole tree's (`EDQUOT`);
    /// the detached-node record goes. `NotFound` when `ino` is not detached.
    async fn attach_dir(
        &self,
        _ctx: &crate::Context,
        _to: (Ino, &[u8]),
        _ino: Ino,
        _usage: crate::space::Usage,
    ) -> Result<Entry> {
        Err(crate::MetaError::NotSupported("clone"))
    }

    /// The detached clones and when each was started (Unix seconds), in inode order.
    async fn detached_nodes(&self) -> Result<Vec<(Ino, i64)>> {
        Err(crate::MetaError::NotSupported("clone"))
    }

    /// Deletes detached clone `ino`, which must have no entries left (`NotEmpty`; callers
    /// use [`crate::clone::remove_detached`]): its node, xattrs, statistics and record,
    /// given back to the volume's and its owner's usage. Returns `false` when `ino` is not
    /// a detached clone.
    async fn drop_detached(&self, _ino: Ino) -> Result<bool> {
        Err(crate::MetaError::NotSupported("clone"))
    }
}

/// Hands out `freed` slices, whose objects the caller will delete, only once the commits
/// that freed them are durable (metadata before deletion, on every engine).
async fn durable_before_deletion<T: crate::backend::Volume + ?Sized>(
    engine: &T,
    freed: Vec<Slice>,
) -> Result<Vec<Slice>> {
    if !freed.is_empty() {
        engine.sync().await?;
    }
    Ok(freed)
}

/// Every engine's [`MetaEngine`]: the engine's storage ([`crate::backend`]) plus the rules
/// that do not depend on it, written once here — argument and name checks (the first step
/// of the error order), `statfs` from the counters, the blocking lock wait, and `mkdir` /
/// `symlink` as kinds of `mknod`.
#[async_trait]
impl<T> MetaEngine for T
where
    T: crate::backend::Volume
        + crate::backend::Sessions
        + crate::backend::Namespace
        + crate::backend::Attrs
        + crate::backend::Data
        + crate::backend::Purge
        + crate::backend::Upkeep
        + crate::backend::Quotas
        + crate::backend::Xattrs
        + crate::backend::Locks
        + crate::backend::Bulk
        + crate::backend::Clones,
{
    fn name(&self) -> &'static str {
        crate::backend::Volume::name(self)
    }

    async fn init(&self, format: &Format, force: bool) -> Result<()> {
        crate::backend::Volume::init(self, format, force).await
    }

    async fn load(&self) -> Result<Format> {
        crate::backend::Volume::load(self).await
    }

    async fn new_session(&self, info: &SessionInfo) -> Result<u64> {
        crate::backend::Sessions::new_session(self, info).await
    }

    async fn heartbeat(&self) -> Result<crate::Heartbeat> {
        crate::backend::Sessions::heartbeat(self).await
    }

    async fn close_session(&self) -> Result<()> {
        crate::backend::Sessions::close_session(self).await
    }

    async fn list_sessions(&self) -> Result<Vec<Session>> {
        crate::backend::Sessions::list_sessions(self).await
    }

    async fn reap_stale_sessions(&self, now: Timestamp) -> Result<usize> {
        crate::backend::Sessions::reap_stale_sessions(self, now).await
    }

    async fn lookup(&self, ctx: &crate::Context, parent: Ino, name: &[u8]) -> Result<Entry> {
        if parent == crate::ROOT_INO && name == crate::trash::TRASH_NAME {
            // Found before any entry of that name, as JuiceFS does.
            let attr = crate::backend::Attrs::getattr(self, crate::TRASH_INO).await?;
            return Ok(Entry {
                ino: crate::TRASH_INO,
                attr,
            });
        }
        crate::backend::Namespace::lookup(self, ctx, parent, name).await
    }

    async fn getattr(&self, ino: Ino) -> Result<Attr> {
        crate::backend::Attrs::getattr(self, ino).await
    }

    async fn setattr(&self, ctx: &crate::Context, ino: Ino, set: &SetAttr) -> Result<Attr> {
        crate::args::check_setattr(set)?;
        crate::backend::Attrs::setattr(self, ctx, ino, set).await
    }

    async fn mknod(
        &self,
        ctx: &crate::Context,
        parent: Ino,
        name: &[u8],
        typ: FileType,
        mode: u16,
        rdev: u32,
    ) -> Result<Entry> {
        crate::name::validate_name(name)?;
        crate::trash::check_create(parent, name)?;
        crate::backend::Namespace::mknod(self, ctx, parent, name, typ, mode, rdev, b"").await
    }

    async fn create(
        &self,
        ctx: &crate::Context,
        parent: Ino,
        name: &[u8],
        mode: u16,
    ) -> Result<Entry> {
        crate::name::validate_name(name)?;
        crate::trash::check_create(parent, name)?;
        crate::backend::Namespace::create(self, ctx, parent, name, mode).await
    }

    async fn mkdir(
        &self,
        ctx: &crate::Context,
        parent: Ino,
        name: &[u8],
        mode: u16,
    ) -> Result<Entry> {
        crate::name::validate_name(name)?;
        crate::trash::check_create(parent, name)?;
        let typ = FileType::Directory;
        crate::backend::Namespace::mknod(self, ctx, parent, name, typ, mode, 0, b"").await
    }

    async fn symlink(
        &self,
        ctx: &crate::Context,
        parent: Ino,
        name: &[u8],
        target: &[u8],
    ) -> Result<Entry> {
        crate::name::validate_name(name)?;
        crate::name::validate_symlink_target(target)?;
        crate::trash::check_create(parent, name)?;
        let typ = FileType::Symlink;
        crate::backend::Namespace::mknod(self, ctx, parent, name, typ, 0o777, 0, target).await
    }

    async fn readlink(&self, ino: Ino) -> Result<Vec<u8>> {
        crate::backend::Namespace::readlink(self, ino).await
    }

    async fn link(
        &self,
        ctx: &crate::Context,
        ino: Ino,
        parent: Ino,
        name: &[u8],
    ) -> Result<Entry> {
        crate::name::validate_name(name)?;
        crate::trash::check_create(parent, name)?;
        crate::backend::Namespace::link(self, ctx, ino, parent, name).await
    }

    async fn unlink(&self, ctx: &crate::Context, parent: Ino, name: &[u8]) -> Result<()> {
        crate::name::validate_name(name)?;
        crate::trash::check_unlink(parent, name, ctx.is_root())?;
        crate::backend::Namespace::unlink(self, ctx, parent, name).await
    }

    async fn rmdir(&self, ctx: &crate::Context, parent: Ino, name: &[u8]) -> Result<()> {
        crate::name::validate_name(name)?;
        crate::trash::check_unlink(parent, name, ctx.is_root())?;
        crate::backend::Namespace::rmdir(self, ctx, parent, name).await
    }

    async fn unlink_many(
        &self,
        ctx: &crate::Context,
        parent: Ino,
        names: &[Vec<u8>],
    ) -> Result<usize> {
        let checked = names.iter().try_for_each(|n| {
            crate::name::validate_name(n)?;
            crate::trash::check_unlink(parent, n, ctx.is_root())
        });
        if names.len() > 1 && checked.is_ok() {
            // All or nothing: any failure (a name gone, one refused) is sorted out below,
            // one name at a time.
            if crate::backend::Namespace::unlink_batch(self, ctx, parent, names)
                .await
                .is_ok()
            {
                return Ok(names.len());
            }
        }
        unlink_each(self, ctx, parent, names).await
    }

    async fn rename(
        &self,
        ctx: &crate::Context,
        parent: Ino,
        name: &[u8],
        new_parent: Ino,
        new_name: &[u8],
        flags: RenameFlags,
    ) -> Result<()> {
        crate::args::check_rename_flags(flags)?;
        crate::name::validate_name(name)?;
        crate::name::validate_name(new_name)?;
        crate::trash::check_rename(parent, name, new_parent, new_name, flags, ctx.is_root())?;
        crate::backend::Namespace::rename(self, ctx, parent, name, new_parent, new_name, flags)
            .await
    }

    async fn readdir(
        &self,
        ctx: &crate::Context,
        ino: Ino,
        after: Option<&[u8]>,
        limit: usize,
        plus: bool,
    ) -> Result<Vec<DirEntry>> {
        let entries =
            crate::backend::Namespace::readdir(self, ctx, ino, after, limit, plus).await?;
        for e in &entries {
            crate::name::check_stored_name(ino, &e.name)?;
        }
        Ok(entries)
    }

    async fn open(&self, ctx: &crate::Context, ino: Ino, flags: i32) -> Result<Attr> {
        crate::backend::Sessions::open(self, ctx, ino, flags).await
    }

    async fn close(&self, ino: Ino) -> Result<()> {
        crate::backend::Sessions::close(self, ino).await
    }

    async fn read_chunk(&self, ino: Ino, index: u32) -> Result<Vec<Slice>> {
        crate::backend::Data::read_chunk(self, ino, index).await
    }

    async fn write_slice(
        &self,
        ino: Ino,
        index: u32,
        slice: Slice,
        mtime: Timestamp,
    ) -> Result<usize> {
        crate::args::check_slice(index, &slice)?;
        crate::backend::Data::write_slice(self, ino, index, slice, mtime).await
    }

    async fn new_slice_id(&self) -> Result<u64> {
        crate::backend::Data::new_slice_id(self).await
    }

    async fn compact_chunk(
        &self,
        ino: Ino,
        index: u32,
        plan: &crate::compact::Plan,
        id: u64,
    ) -> Result<Option<Vec<Slice>>> {
        if id == 0 || plan.len == 0 || plan.skipped >= plan.origin.len() {
            return Err(crate::MetaError::InvalidArgument("not a compaction plan"));
        }
        match crate::backend::Data::compact_chunk(self, ino, index, plan, id).await? {
            Some(freed) => durable_before_deletion(self, freed).await.map(Some),
            None => Ok(None),
        }
    }

    async fn truncate(&self, ctx: &crate::Context, ino: Ino, length: u64) -> Result<Attr> {
        crate::args::check_length(length)?;
        crate::backend::Attrs::truncate(self, ctx, ino, length).await
    }

    async fn fallocate(
        &self,
        ctx: &crate::Context,
        ino: Ino,
        mode: FallocMode,
        off: u64,
        len: u64,
    ) -> Result<()> {
        crate::args::check_fallocate(mode, off, len)?;
        crate::backend::Data::fallocate(self, ctx, ino, mode, off, len).await
    }

    async fn copy_file_range(
        &self,
        ctx: &crate::Context,
        src: Ino,
        src_off: u64,
        dst: Ino,
        dst_off: u64,
        len: u64,
    ) -> Result<u64> {
        crate::backend::Data::copy_file_range(self, ctx, src, src_off, dst, dst_off, len).await
    }

    async fn getxattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        crate::xattr::check_name(name)?;
        crate::backend::Xattrs::getxattr(self, ino, name).await
    }

    async fn setxattr(
        &self,
        ctx: &crate::Context,
        ino: Ino,
        name: &[u8],
        value: &[u8],
        flags: u32,
    ) -> Result<()> {
        crate::xattr::check_set(name, value, flags)?;
        crate::backend::Xattrs::setxattr(self, ctx, ino, name, value, flags).await
    }

    async fn listxattr(&self, ino: Ino) -> Result<Vec<Vec<u8>>> {
        crate::backend::Xattrs::listxattr(self, ino).await
    }

    async fn removexattr(&self, ctx: &crate::Context, ino: Ino, name: &[u8]) -> Result<()> {
        crate::xattr::check_name(name)?;
        crate::backend::Xattrs::removexattr(self, ctx, ino, name).await
    }

    async fn flock(
        &self,
        _ctx: &crate::Context,
        ino: Ino,
        owner: u64,
        ltype: LockType,
        block: bool,
    ) -> Result<()> {
        let Some(me) = lock_owner(self, owner, ltype)? else {
            return Ok(());
        };
        let sid = me.sid;
        let session = || crate::backend::Locks::lock_session(self);
        crate::locks::wait_for_lock(block, sid, session, || {
            crate::backend::Locks::try_flock(self, ino, me, ltype)
        })
        .await
    }

    async fn getlk(
        &self,
        _ctx: &crate::Context,
        ino: Ino,
        owner: u64,
        lock: &mut PlockRequest,
    ) -> Result<()> {
        crate::locks::check_range(lock.start, lock.end)?;
        if lock.ltype == LockType::Unlock {
            return Err(crate::MetaError::InvalidArgument("F_GETLK of F_UNLCK"));
        }
        let me = crate::LockOwner::new(crate::backend::Locks::lock_session(self), owner);
        crate::backend::Locks::getlk(self, ino, me, lock).await
    }

    async fn setlk(
        &self,
        _ctx: &crate::Context,
        ino: Ino,
        owner: u64,
        block: bool,
        ltype: LockType,
        start: u64,
        end: u64,
        pid: u32,
    ) -> Result<()> {
        crate::locks::check_range(start, end)?;
        let Some(me) = lock_owner(self, owner, ltype)? else {
            return Ok(());
        };
        let sid = me.sid;
        let req = PlockRequest::new(ltype, start, end, pid);
        let session = || crate::backend::Locks::lock_session(self);
        crate::locks::wait_for_lock(block, sid, session, || {
            crate::backend::Locks::try_setlk(self, ino, me, req)
        })
        .await
    }

    async fn sync(&self) -> Result<()> {
        crate::backend::Volume::sync(self).await
    }

    async fn statfs(&self) -> Result<StatFs> {
        let format = crate::backend::Volume::settings(self).await?;
        let usage = crate::backend::Volume::usage(self).await?;
        Ok(StatFs::of(&format, usage))
    }

    async fn deleted_files(&self, limit: usize) -> Result<Vec<DeletedFile>> {
        crate::backend::Purge::deleted_files(self, limit).await
    }

    async fn purge_file(&self, ino: Ino) -> Result<Vec<Slice>> {
        let freed = crate::backend::Purge::purge_file(self, ino).await?;
        durable_before_deletion(self, freed).await
    }

    async fn purge_files(&self, files: &[DeletedFile]) -> Result<Purged> {
        let mut done = crate::backend::Purge::purge_files(self, files).await?;
        done.freed = durable_before_deletion(self, done.freed).await?;
        Ok(done)
    }

    async fn pending_slices(&self, limit: usize) -> Result<Vec<Slice>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let pending = crate::backend::Upkeep::pending_slices(self, limit).await?;
        durable_before_deletion(self, pending).await
    }

    async fn forget_slice(&self, id: u64, size: u32) -> Result<bool> {
        if id == 0 {
            return Err(crate::MetaError::InvalidArgument("slice 0 is a hole"));
        }
        crate::backend::Upkeep::forget_slice(self, id, size).await
    }

    async fn forget_slices(&self, slices: &[(u64, u32)]) -> Result<usize> {
        if slices.iter().any(|&(id, _)| id == 0) {
            return Err(crate::MetaError::InvalidArgument("slice 0 is a hole"));
        }
        crate::backend::Upkeep::forget_slices(self, slices).await
    }

    async fn list_slices(&self) -> Result<crate::upkeep::SliceListing> {
        crate::backend::Upkeep::list_slices(self).await
    }

    async fn claim_job(&self, counter: &'static str, now: u64, every: u64) -> Result<bool> {
        if !crate::upkeep::JOB_COUNTERS.contains(&counter) {
            return Err(crate::MetaError::InvalidArgument("not a job counter"));
        }
        crate::backend::Upkeep::claim_job(self, counter, now, every).await
    }

    async fn dir_stat(&self, ino: Ino) -> Result<Option<crate::upkeep::DirStat>> {
        crate::backend::Upkeep::dir_stat(self, ino).await
    }

    async fn sync_dir_stat(&self, ino: Ino) -> Result<crate::upkeep::DirStat> {
        crate::backend::Upkeep::sync_dir_stat(self, ino).await
    }

    async fn recount_usage(&self) -> Result<crate::upkeep::Recount> {
        crate::backend::Upkeep::recount_usage(self).await
    }

    async fn free_delayed_slices(&self, before: i64, limit: usize) -> Result<Vec<Slice>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let freed = crate::backend::Upkeep::free_delayed_slices(self, before, limit).await?;
        durable_before_deletion(self, freed).await
    }

    async fn set_quota(
        &self,
        kind: crate::quota::QuotaKind,
        key: u64,
        limits: (i64, i64),
        used: Option<(i64, i64)>,
    ) -> Result<()> {
        if kind == crate::quota::QuotaKind::Dir {
            let format = crate::backend::Volume::settings(self).await?;
            if !format.dir_stats {
                return Err(crate::MetaError::NotSupported(
                    "directory quotas need the volume's directory statistics (DirStats)",
                ));
            }
            if !crate::backend::Attrs::getattr(self, key).await?.is_dir() {
                return Err(crate::MetaError::NotDir);
            }
            if crate::trash::is_trash(key) {
                return Err(crate::MetaError::NotPermitted);
            }
        }
        if used.is_some_and(|(s, i)| s < 0 || i < 0) {
            return Err(crate::MetaError::InvalidArgument("negative quota usage"));
        }
        crate::backend::Quotas::set_quota(self, kind, key, limits, used).await
    }

    async fn get_quota(
        &self,
        kind: crate::quota::QuotaKind,
        key: u64,
    ) -> Result<Option<crate::quota::Quota>> {
        crate::backend::Quotas::get_quota(self, kind, key).await
    }

    async fn list_quotas(
        &self,
        kind: crate::quota::QuotaKind,
    ) -> Result<Vec<(u64, crate::quota::Quota)>> {
        crate::backend::Quotas::list_quotas(self, kind).await
    }

    async fn delete_quota(&self, kind: crate::quota::QuotaKind, key: u64) -> Result<bool> {
        crate::backend::Quotas::delete_quota(self, kind, key).await
    }

    async fn statfs_at(&self, ino: Ino) -> Result<StatFs> {
        let fs = MetaEngine::statfs(self).await?;
        let format = crate::backend::Volume::settings(self).await?;
        if !format.dir_stats {
            return Ok(fs);
        }
        Ok(match crate::backend::Quotas::quota_over(self, ino).await? {
            Some(q) => crate::quota::statfs_within(fs, &q),
            None => fs,
        })
    }

    async fn counters(&self) -> Result<crate::dump::Counters> {
        crate::backend::Bulk::counters(self).await
    }

    async fn queued_deletions(
        &self,
        after: Ino,
        limit: usize,
    ) -> Result<Vec<crate::dump::QueuedDeletion>> {
        crate::backend::Bulk::queued_deletions(self, after, limit).await
    }

    async fn is_empty(&self) -> Result<bool> {
        crate::backend::Bulk::is_empty(self).await
    }

    async fn load_batch(&self, batch: &crate::dump::Batch) -> Result<()> {
        batch.check()?;
        crate::backend::Bulk::load_batch(self, batch).await
    }

    async fn finish_load(&self, end: &crate::dump::LoadEnd) -> Result<()> {
        crate::backend::Bulk::finish_load(self, end).await
    }

    async fn node_contents(
        &self,
        nodes: &[(Ino, crate::Attr)],
    ) -> Result<Vec<Option<crate::dump::NodeContents>>> {
        crate::backend::Bulk::node_contents(self, nodes).await
    }

    async fn hold_slices(&self, slices: &[(u64, u32)], delta: i64) -> Result<Vec<Slice>> {
        if slices.iter().any(|&(id, _)| id == 0) {
            return Err(crate::MetaError::InvalidArgument("slice 0 is a hole"));
        }
        crate::backend::Bulk::hold_slices(self, slices, delta).await
    }

    async fn wipe(&self) -> Result<()> {
        crate::backend::Bulk::wipe(self).await
    }

    async fn clone_node(
        &self,
        ctx: &crate::Context,
        step: &crate::clone::CloneNode<'_>,
    ) -> Result<Entry> {
        if step.top {
            crate::clone::check_top(step.src, step.parent, step.name)?;
        } else {
            crate::name::validate_name(step.name)?;
        }
        crate::backend::Clones::clone_node(self, ctx, step).await
    }

    async fn attach_dir(
        &self,
        ctx: &crate::Context,
        (parent, name): (Ino, &[u8]),
        ino: Ino,
        usage: crate::space::Usage,
    ) -> Result<Entry> {
        crate::clone::check_top(ino, parent, name)?;
        crate::backend::Clones::attach_dir(self, ctx, (parent, name), ino, usage).await
    }

    async fn detached_nodes(&self) -> Result<Vec<(Ino, i64)>> {
        crate::backend::Clones::detached_nodes(self).await
    }

    async fn drop_detached(&self, ino: Ino) -> Result<bool> {
        crate::backend::Clones::drop_detached(self, ino).await
    }
}

/// The owner of a lock request of this client's session, `None` when an unlock without a
/// session has nothing to release; locking without a session is `BadHandle`.
fn lock_owner<T: crate::backend::Locks + ?Sized>(
    engine: &T,
    owner: u64,
    ltype: LockType,
) -> Result<Option<crate::LockOwner>> {
    match engine.lock_session() {
        0 if ltype == LockType::Unlock => Ok(None),
        0 => Err(crate::MetaError::BadHandle),
        sid => Ok(Some(crate::LockOwner::new(sid, owner))),
    }
}
