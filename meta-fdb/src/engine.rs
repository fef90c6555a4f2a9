//! `TkvMeta`: the [`MetaEngine`](meta_api::MetaEngine) written once over [`KvStore`], with JuiceFS's TKV layout.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use meta_api::encoding::{decode_attr, decode_entry, encode_attr};
use meta_api::ids::IdPool;
use meta_api::{
    Attr, FileType, Format, Ino, Limits, MetaError, OpenFiles, Result, Slice, Timestamp, Usage,
};

use crate::keys::{Keys, TOTAL_INODES, USED_SPACE};
use crate::kv::{parse_counter, KvStore, KvTxn};

mod acl;
mod attr;
mod bulk;
mod clone;
mod data;
mod locks;
mod namespace;
mod purge;
mod quota;
mod session;
mod stats;
mod trash;
mod upkeep;
mod volume;
mod xattr;

pub(crate) use purge::PURGE_BATCH;

/// The engine's clock: the time stamps it writes and the session expiry it sets.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// A JuiceFS-compatible metadata engine over a transactional key-value store, using
/// JuiceFS's TKV encoding (see [`crate::keys`]). One value is one client of a volume.
///
/// Every [`MetaEngine`](meta_api::MetaEngine) operation is one [`KvStore::txn`] (retried on conflict), except
/// those that must stay under a store's transaction limits — purging a file with many
/// chunks and cleaning up a session with many sustained inodes — which work in batches
/// that each leave the volume consistent.
pub struct TkvMeta<K: KvStore> {
    kv: K,
    keys: Keys,
    clock: Clock,
    sid: AtomicU64,
    open_files: OpenFiles,
    inode_ids: IdPool,
    slice_ids: IdPool,
    /// The settings as last loaded or written, for the capacity and inode limits.
    format: RwLock<Option<Format>>,
    /// Stored POSIX ACL rules by id (they never change).
    acls: meta_api::acl::AclCache,
}

impl<K: KvStore> TkvMeta<K> {
    /// A client of the volume whose keys start with `prefix` in `kv`.
    pub fn new(kv: K, prefix: &[u8]) -> TkvMeta<K> {
        TkvMeta {
            kv: kv.with_marker_prefix(prefix),
            keys: Keys::new(prefix),
            clock: Arc::new(Timestamp::now),
            sid: AtomicU64::new(0),
            open_files: OpenFiles::new(),
            inode_ids: IdPool::inodes(),
            slice_ids: IdPool::slices(),
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

    /// This client's session id, once [`MetaEngine::new_session`](meta_api::MetaEngine::new_session) has run.
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

    /// The next free inode number, from this client's reserved batch of `nextInode`.
    async fn next_inode(&self) -> Result<Ino> {
        self.inode_ids.next(|name, n| self.reserve(name, n)).await
    }

    /// The next free slice id, from this client's reserved batch of `nextChunk`.
    async fn next_slice_id(&self) -> Result<u64> {
        self.slice_ids.next(|name, n| self.reserve(name, n)).await
    }

    /// Adds `batch` to counter `name` in its own transaction and returns the new value.
    async fn reserve(&self, name: &'static str, batch: u64) -> Result<i64> {
        let key = self.keys.counter(name);
        let key = &key;
        self.kv
            .txn(|tx| async move { incr(&tx, key, batch as i64).await })
            .await
    }

    /// The volume's capacity and inode limits with the usage read just now, when the
    /// volume has a limit (see [`Limits`]).
    async fn usage_limits(&self) -> Result<Option<Limits>> {
        let format = match self.cached_format() {
            Some(f) => f,
            None => match self.load_format().await {
                Ok(f) => f,
                Err(MetaError::NotFormatted) => return Ok(None),
                Err(e) => return Err(e),
            },
        };
        if !Limits::needed(&format) {
            return Ok(None);
        }
        let (space, inodes) = self.read_usage().await?;
        Ok(Limits::of(&format, Usage { space, inodes }))
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

/// Takes `n` references from each slice of `uses` (`(id, size, n)`, as
/// [`Slice::references`] counts them) and returns the slices left with none, whose objects
/// may now be deleted (their keys stay, pending). The key of a slice holds its references
/// beyond the first.
pub(crate) async fn drop_refs<T: KvTxn>(
    tx: &T,
    keys: &Keys,
    uses: &[(u64, u32, i64)],
) -> Result<Vec<Slice>> {
    let mut freed = Vec::new();
    for &(id, size, n) in uses {
        let rkey = keys.slice_ref(id, size);
        let refs = incr(tx, &rkey, -n).await?;
        if refs == 0 {
            // One reference left: the same as no key.
            tx.clear(&rkey);
        }
        if meta_api::upkeep::is_pending_extra(refs) {
            // No reference left: the key stays at `<= -1` (pending, JuiceFS's convention)
            // until forget_slice, after the objects are deleted.
            freed.push(Slice::whole(id, size));
        }
    }
    Ok(freed)
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
    Slice::decode_chunk(ino, indx, &raw)
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
