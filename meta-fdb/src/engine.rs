//! `TkvMeta`: the [`MetaEngine`] written once over [`KvStore`], with JuiceFS's TKV layout.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use meta_api::encoding::{decode_attr, decode_entry, encode_attr};
use meta_api::{
    Attr, Context, DeletedFile, DirEntry, Entry, FallocMode, FileType, Format, Ino, LockType,
    MetaEngine, MetaError, OpenFiles, PlockRequest, RenameFlags, Result, Session, SessionInfo,
    SetAttr, Slice, StatFs, Timestamp,
};

use crate::keys::{Keys, NEXT_CHUNK, NEXT_INODE, TOTAL_INODES, USED_SPACE};
use crate::kv::{parse_counter, KvStore, KvTxn};

mod acl;
mod data;
mod locks;
mod namespace;
mod session;
mod volume;
mod xattr;

pub(crate) use data::PURGE_BATCH;

/// JuiceFS's inode flag: the inode cannot be changed.
pub(crate) const FLAG_IMMUTABLE: u8 = 1;
/// JuiceFS's inode flag: the file can only be appended to.
pub(crate) const FLAG_APPEND: u8 = 2;

/// The engine's clock: the time stamps it writes and the session expiry it sets.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// A range of reserved ids, `next..end`.
#[derive(Debug, Default)]
struct IdRange {
    next: u64,
    end: u64,
}

/// A JuiceFS-compatible metadata engine over a transactional key-value store, using
/// JuiceFS's TKV encoding (see [`crate::keys`]). One value is one client of a volume.
///
/// Every [`MetaEngine`] operation is one [`KvStore::txn`] (retried on conflict), except
/// those that must stay under a store's transaction limits — purging a file with many
/// chunks and cleaning up a session with many sustained inodes — which work in batches
/// that each leave the volume consistent.
pub struct TkvMeta<K: KvStore> {
    kv: K,
    keys: Keys,
    clock: Clock,
    sid: AtomicU64,
    open_files: OpenFiles,
    inode_ids: tokio::sync::Mutex<IdRange>,
    slice_ids: tokio::sync::Mutex<IdRange>,
    /// The settings as last loaded or written, for the capacity and inode limits.
    format: RwLock<Option<Format>>,
    /// Stored POSIX ACL rules by id (they never change).
    acls: meta_api::acl::AclCache,
}

impl<K: KvStore> TkvMeta<K> {
    /// A client of the volume whose keys start with `prefix` in `kv`.
    pub fn new(kv: K, prefix: &[u8]) -> TkvMeta<K> {
        TkvMeta {
            kv,
            keys: Keys::new(prefix),
            clock: Arc::new(Timestamp::now),
            sid: AtomicU64::new(0),
            open_files: OpenFiles::new(),
            inode_ids: tokio::sync::Mutex::new(IdRange::default()),
            slice_ids: tokio::sync::Mutex::new(IdRange::default()),
            format: RwLock::new(None),
            acls: meta_api::acl::AclCache::new(),
        }
    }

    /// Replaces the wall clock (tests drive time stamps and session expiry with it).
    pub fn with_clock(mut self, clock: Clock) -> TkvMeta<K> {
        self.clock = clock;
        self
    }

    /// The store this client works on.
    pub fn kv(&self) -> &K {
        &self.kv
    }

    /// The key layout of this client's volume.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// This client's session id, once [`MetaEngine::new_session`] has run.
    pub fn session_id(&self) -> Option<u64> {
        match self.sid.load(Ordering::SeqCst) {
            0 => None,
            sid => Some(sid),
        }
    }

    fn now(&self) -> Timestamp {
        (self.clock)()
    }

    fn cached_format(&self) -> Option<Format> {
        self.format
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn cache_format(&self, f: &Format) {
        *self.format.write().unwrap_or_else(|p| p.into_inner()) = Some(f.clone());
    }

    /// The next free inode number, from this client's reserved batch (JuiceFS reserves
    /// `INODE_BATCH` at a time from the `nextInode` counter and never hands out 0 or 1).
    async fn next_inode(&self) -> Result<Ino> {
        let mut r = self.inode_ids.lock().await;
        loop {
            if r.next >= r.end {
                let top = self.reserve(NEXT_INODE, meta_api::INODE_BATCH).await?;
                r.next = top - meta_api::INODE_BATCH;
                r.end = top;
            }
            let n = r.next;
            r.next += 1;
            if n > 1 {
                return Ok(n);
            }
        }
    }

    /// The next free slice id, from this client's reserved batch of `nextChunk`.
    async fn next_slice_id(&self) -> Result<u64> {
        let mut r = self.slice_ids.lock().await;
        if r.next >= r.end {
            let top = self.reserve(NEXT_CHUNK, meta_api::SLICE_ID_BATCH).await?;
            r.next = top - meta_api::SLICE_ID_BATCH;
            r.end = top;
        }
        let n = r.next;
        r.next += 1;
        Ok(n)
    }

    /// Adds `batch` to counter `name` and returns the new value: the ids
    /// `new - batch .. new` now belong to this client.
    async fn reserve(&self, name: &str, batch: u64) -> Result<u64> {
        let key = self.keys.counter(name);
        let key = &key;
        let top = self
            .kv
            .txn(|tx| async move { incr(&tx, key, batch as i64).await })
            .await?;
        u64::try_from(top)
            .ok()
            .filter(|t| *t >= batch)
            .ok_or_else(|| MetaError::Corrupt(format!("counter {name} is {top}")))
    }

    /// The volume's capacity and inode limits with the usage read just now, when the
    /// volume has a limit (checked like JuiceFS does: against counters read before the
    /// transaction, so that writers do not conflict on the counters).
    async fn usage_limits(&self) -> Result<Option<Limits>> {
        let format = match self.cached_format() {
            Some(f) => f,
            None => match self.load_format().await {
                Ok(f) => f,
                Err(MetaError::NotFormatted) => return Ok(None),
                Err(e) => return Err(e),
            },
        };
        if format.capacity == 0 && format.inodes == 0 {
            return Ok(None);
        }
        let (used, inodes) = self.read_usage().await?;
        Ok(Some(Limits {
            capacity: format.capacity,
            max_inodes: format.inodes,
            used,
            inodes,
        }))
    }

    async fn read_usage(&self) -> Result<(i64, i64)> {
        let keys = &self.keys;
        self.kv
            .txn(|tx| async move {
                let used = parse_counter(tx.get(&keys.counter(USED_SPACE)).await?.as_deref());
                let inodes = parse_counter(tx.get(&keys.counter(TOTAL_INODES)).await?.as_deref());
                Ok((used, inodes))
            })
            .await
    }

    async fn load_format(&self) -> Result<Format> {
        let keys = &self.keys;
        let raw = self
            .kv
            .txn(|tx| async move { tx.get(&keys.setting()).await })
            .await?
            .ok_or(MetaError::NotFormatted)?;
        let text = String::from_utf8(raw)
            .map_err(|_| MetaError::Corrupt("volume settings are not UTF-8".into()))?;
        let f = Format::from_json(&text)?;
        self.cache_format(&f);
        Ok(f)
    }
}

/// Usage and limits of a volume with a capacity or inode limit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    capacity: u64,
    max_inodes: u64,
    used: i64,
    inodes: i64,
}

/// Fails with `NoSpace` if adding `space` bytes and `inodes` inodes passes a limit.
pub(crate) fn check_limits(limits: Option<Limits>, space: i64, inodes: i64) -> Result<()> {
    let Some(l) = limits else { return Ok(()) };
    if l.capacity > 0 && space > 0 && l.used.saturating_add(space) > l.capacity as i64 {
        return Err(MetaError::NoSpace);
    }
    if l.max_inodes > 0 && inodes > 0 && l.inodes.saturating_add(inodes) > l.max_inodes as i64 {
        return Err(MetaError::NoSpace);
    }
    Ok(())
}

/// The space JuiceFS accounts for a file of `len` bytes: rounded up to 4 KiB, at least 4 KiB.
pub(crate) fn align4k(len: u64) -> i64 {
    if len == 0 {
        4096
    } else {
        (((len - 1) >> 12) + 1).saturating_mul(4096) as i64
    }
}

/// Adds to the volume's usage counters without reading them (no conflicts between
/// writers; JuiceFS batches the same deltas into the same counters).
pub(crate) fn add_usage<T: KvTxn>(tx: &T, keys: &Keys, space: i64, inodes: i64) {
    if space != 0 {
        tx.atomic_add(&keys.counter(USED_SPACE), space);
    }
    if inodes != 0 {
        tx.atomic_add(&keys.counter(TOTAL_INODES), inodes);
    }
}

/// JuiceFS's `incrBy`: adds `delta` to a counter and reads the result back.
pub(crate) async fn incr<T: KvTxn>(tx: &T, key: &[u8], delta: i64) -> Result<i64> {
    tx.atomic_add(key, delta);
    Ok(parse_counter(tx.get(key).await?.as_deref()))
}

/// The attributes of `ino`, if it exists.
pub(crate) async fn get_attr<T: KvTxn>(tx: &T, keys: &Keys, ino: Ino) -> Result<Option<Attr>> {
    match tx.get(&keys.inode(ino)).await? {
        Some(buf) => Ok(Some(decode_attr(&buf)?)),
        None => Ok(None),
    }
}

/// The attributes of `ino`; `NotFound` if it does not exist.
pub(crate) async fn must_attr<T: KvTxn>(tx: &T, keys: &Keys, ino: Ino) -> Result<Attr> {
    get_attr(tx, keys, ino).await?.ok_or(MetaError::NotFound)
}

/// The attributes of directory `ino`; `NotFound` or `NotDir` otherwise.
pub(crate) async fn dir_attr<T: KvTxn>(tx: &T, keys: &Keys, ino: Ino) -> Result<Attr> {
    let a = must_attr(tx, keys, ino).await?;
    if a.typ != FileType::Directory {
        return Err(MetaError::NotDir);
    }
    Ok(a)
}

/// Writes the attributes of `ino`.
pub(crate) fn put_attr<T: KvTxn>(tx: &T, keys: &Keys, ino: Ino, attr: &Attr) {
    tx.set(&keys.inode(ino), &encode_attr(attr));
}

/// The entry `name` of directory `parent`: its type and inode.
pub(crate) async fn get_entry<T: KvTxn>(
    tx: &T,
    keys: &Keys,
    parent: Ino,
    name: &[u8],
) -> Result<Option<(FileType, Ino)>> {
    match tx.get(&keys.entry(parent, name)).await? {
        Some(buf) => Ok(Some(decode_entry(&buf)?)),
        None => Ok(None),
    }
}

/// The slices of chunk `indx` of `ino` (empty when the chunk has none).
pub(crate) async fn get_slices<T: KvTxn>(
    tx: &T,
    keys: &Keys,
    ino: Ino,
    indx: u32,
) -> Result<Vec<Slice>> {
    let raw = tx.get(&keys.chunk(ino, indx)).await?.unwrap_or_default();
    decode_slices(ino, indx, &raw)
}

pub(crate) fn decode_slices(ino: Ino, indx: u32, raw: &[u8]) -> Result<Vec<Slice>> {
    Slice::decode_all(raw).ok_or_else(|| {
        MetaError::Corrupt(format!(
            "chunk {indx} of inode {ino} holds {} bytes, not a multiple of 24",
            raw.len()
        ))
    })
}

/// Appends slice records to chunk `indx` of `ino`.
pub(crate) async fn append_slices<T: KvTxn>(
    tx: &T,
    keys: &Keys,
    ino: Ino,
    indx: u32,
    slices: &[Slice],
) -> Result<()> {
    let key = keys.chunk(ino, indx);
    let mut raw = tx.get(&key).await?.unwrap_or_default();
    raw.extend_from_slice(&Slice::encode_all(slices));
    tx.set(&key, &raw);
    Ok(())
}

/// A slice record that reads as zeros (JuiceFS's hole: id, size and offset zero).
pub(crate) fn hole(pos: u32, len: u32) -> Slice {
    Slice {
        pos,
        id: 0,
        size: 0,
        off: 0,
        len,
    }
}

#[async_trait]
impl<K: KvStore> MetaEngine for TkvMeta<K> {
    fn name(&self) -> &'static str {
        K::SCHEME
    }

    async fn init(&self, format: &Format, force: bool) -> Result<()> {
        self.do_init(format, force).await
    }

    async fn load(&self) -> Result<Format> {
        self.load_format().await
    }

    async fn new_session(&self, info: &SessionInfo) -> Result<u64> {
        self.do_new_session(info).await
    }

    async fn heartbeat(&self) -> Result<()> {
        self.do_heartbeat().await
    }

    async fn close_session(&self) -> Result<()> {
        self.do_close_session().await
    }

    async fn list_sessions(&self) -> Result<Vec<Session>> {
        self.do_list_sessions().await
    }

    async fn reap_stale_sessions(&self, now: Timestamp) -> Result<usize> {
        self.do_reap_stale_sessions(now).await
    }

    async fn lookup(&self, ctx: &Context, parent: Ino, name: &[u8]) -> Result<Entry> {
        self.do_lookup(ctx, parent, name).await
    }

    async fn getattr(&self, ino: Ino) -> Result<Attr> {
        let keys = &self.keys;
        self.kv
            .txn(|tx| async move { must_attr(&tx, keys, ino).await })
            .await
    }

    async fn setattr(&self, ctx: &Context, ino: Ino, set: &SetAttr) -> Result<Attr> {
        self.do_setattr(ctx, ino, set, false).await
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
        self.do_mknod(ctx, parent, name, typ, mode, rdev, b"").await
    }

    async fn mkdir(&self, ctx: &Context, parent: Ino, name: &[u8], mode: u16) -> Result<Entry> {
        self.do_mknod(ctx, parent, name, FileType::Directory, mode, 0, b"")
            .await
    }

    async fn symlink(
        &self,
        ctx: &Context,
        parent: Ino,
        name: &[u8],
        target: &[u8],
    ) -> Result<Entry> {
        meta_api::name::validate_symlink_target(target)?;
        self.do_mknod(ctx, parent, name, FileType::Symlink, 0o777, 0, target)
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

    async fn link(&self, ctx: &Context, ino: Ino, parent: Ino, name: &[u8]) -> Result<Entry> {
        self.do_link(ctx, ino, parent, name).await
    }

    async fn unlink(&self, ctx: &Context, parent: Ino, name: &[u8]) -> Result<()> {
        self.do_unlink(ctx, parent, name).await
    }

    async fn rmdir(&self, ctx: &Context, parent: Ino, name: &[u8]) -> Result<()> {
        self.do_rmdir(ctx, parent, name).await
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
        self.do_rename(ctx, parent, name, new_parent, new_name, flags)
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
        self.do_readdir(ctx, ino, after, limit, plus).await
    }

    async fn open(&self, ctx: &Context, ino: Ino, flags: i32) -> Result<Attr> {
        self.do_open(ctx, ino, flags).await
    }

    async fn close(&self, ino: Ino) -> Result<()> {
        self.do_close(ino).await
    }

    async fn read_chunk(&self, ino: Ino, index: u32) -> Result<Vec<Slice>> {
        self.do_read_chunk(ino, index).await
    }

    async fn write_slice(
        &self,
        ino: Ino,
        index: u32,
        slice: Slice,
        mtime: Timestamp,
    ) -> Result<()> {
        self.do_write_slice(ino, index, slice, mtime).await
    }

    async fn new_slice_id(&self) -> Result<u64> {
        self.next_slice_id().await
    }

    async fn truncate(&self, ctx: &Context, ino: Ino, length: u64) -> Result<Attr> {
        self.do_setattr(ctx, ino, &SetAttr::new().size(length), true)
            .await
    }

    async fn fallocate(
        &self,
        ctx: &Context,
        ino: Ino,
        mode: FallocMode,
        off: u64,
        len: u64,
    ) -> Result<()> {
        self.do_fallocate(ctx, ino, mode, off, len).await
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
        self.do_copy_file_range(ctx, src, src_off, dst, dst_off, len)
            .await
    }

    async fn getxattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        self.do_getxattr(ino, name).await
    }

    async fn setxattr(
        &self,
        ctx: &Context,
        ino: Ino,
        name: &[u8],
        value: &[u8],
        flags: u32,
    ) -> Result<()> {
        self.do_setxattr(ctx, ino, name, value, flags).await
    }

    async fn listxattr(&self, ino: Ino) -> Result<Vec<Vec<u8>>> {
        self.do_listxattr(ino).await
    }

    async fn removexattr(&self, ctx: &Context, ino: Ino, name: &[u8]) -> Result<()> {
        self.do_removexattr(ctx, ino, name).await
    }

    async fn flock(
        &self,
        _ctx: &Context,
        ino: Ino,
        owner: u64,
        ltype: LockType,
        block: bool,
    ) -> Result<()> {
        self.do_flock(ino, owner, ltype, block).await
    }

    async fn getlk(
        &self,
        _ctx: &Context,
        ino: Ino,
        owner: u64,
        lock: &mut PlockRequest,
    ) -> Result<()> {
        self.do_getlk(ino, owner, lock).await
    }

    async fn setlk(
        &self,
        _ctx: &Context,
        ino: Ino,
        owner: u64,
        block: bool,
        ltype: LockType,
        start: u64,
        end: u64,
        pid: u32,
    ) -> Result<()> {
        self.do_setlk(ino, owner, block, ltype, start, end, pid)
            .await
    }

    async fn statfs(&self) -> Result<StatFs> {
        self.do_statfs().await
    }

    async fn deleted_files(&self, limit: usize) -> Result<Vec<DeletedFile>> {
        self.do_deleted_files(limit).await
    }

    async fn purge_file(&self, ino: Ino) -> Result<Vec<Slice>> {
        self.do_purge_file(ino).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn align4k_matches_juicefs() {
        assert_eq!(align4k(0), 4096);
        assert_eq!(align4k(1), 4096);
        assert_eq!(align4k(4096), 4096);
        assert_eq!(align4k(4097), 8192);
    }

    #[test]
    fn limits() {
        let l = Some(Limits {
            capacity: 8192,
            max_inodes: 2,
            used: 4096,
            inodes: 1,
        });
        assert!(check_limits(l, 4096, 1).is_ok());
        assert!(matches!(check_limits(l, 4097, 0), Err(MetaError::NoSpace)));
        assert!(matches!(check_limits(l, 0, 2), Err(MetaError::NoSpace)));
        assert!(check_limits(l, -100, -1).is_ok());
        assert!(check_limits(None, i64::MAX, 9).is_ok());
    }
}
