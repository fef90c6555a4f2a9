//! The in-process metadata cache: attributes and names this client saw, kept in front of
//! the engine for a few seconds at most, so that repeated lookups and `getattr`s cost no
//! engine round trip.
//!
//! [`CachedMeta`] wraps the engine a [`Vfs`](crate::Vfs) is built on and is the engine
//! every part of the VFS (handles, writers, background jobs) talks to, so that each of this
//! client's changes passes through it: the one place that keeps the cache right.
//!
//! # What it answers from memory
//!
//! - `getattr`: attributes fetched less than [`MetaCacheOptions::attr_ttl`] ago.
//! - `lookup` of a name seen less than [`MetaCacheOptions::entry_ttl`] ago (a file, the
//!   default 0 never) or [`MetaCacheOptions::dir_entry_ttl`] ago (a directory), whose
//!   inode's and parent's attributes are fresh too, when the parent's mode bits alone
//!   decide the search permission (a parent with an ACL asks the engine).
//! - `check_access` when the attributes are fresh and the mode bits decide.
//!
//! Everything else goes to the engine, and `open` always does: an open revalidates the
//! file's attributes, which keeps close-to-open consistency exact between clients (with
//! the default file entry TTL of 0, the name an open resolves is never cached either).
//!
//! # Keeping it right
//!
//! Other clients' changes show once an entry expires. This client's changes update or
//! drop what they touch after they commit: the parent's attributes of every namespace
//! change, the attributes of every inode whose attributes, data, xattrs or link count
//! change, the names removed or renamed. Where a change's victim is not known by name (an
//! unlink of a name never looked up here), every cached attribute is dropped.
//!
//! A result read from the engine is kept only when nothing it covers was invalidated since
//! the read began: every invalidation stamps its stripe (by inode) with a new sequence
//! number, and a read that began before the stamp does not store. So a lookup racing a
//! local unlink can never leave the removed name cached.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use meta_api::{
    access, acl, name as names, perm, Attr, Context, DeletedFile, DirEntry, Entry, FallocMode,
    FileType, Format, Heartbeat, Ino, LockType, MetaEngine, MetaError, PlockRequest, Purged,
    RenameFlags, Result, Session, SessionInfo, SetAttr, Slice, StatFs, Timestamp,
};

/// How long cached metadata is used, and how much is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetaCacheOptions {
    /// How long attributes are answered from memory (default 1 s; 0 never).
    pub attr_ttl: Duration,
    /// How long a name of a file (any inode but a directory) is answered from memory
    /// (default 0: every lookup of a file asks the engine, so a file another client
    /// replaced by a rename is seen at once).
    pub entry_ttl: Duration,
    /// How long a name of a directory is answered from memory (default 1 s).
    pub dir_entry_ttl: Duration,
    /// Attributes and names kept, each (default 16,384).
    pub capacity: usize,
}

impl Default for MetaCacheOptions {
    fn default() -> MetaCacheOptions {
        MetaCacheOptions {
            attr_ttl: Duration::from_secs(1),
            entry_ttl: Duration::ZERO,
            dir_entry_ttl: Duration::from_secs(1),
            capacity: 16_384,
        }
    }
}

impl MetaCacheOptions {
    /// Nothing is cached: every call asks the engine.
    pub fn off() -> MetaCacheOptions {
        MetaCacheOptions {
            attr_ttl: Duration::ZERO,
            entry_ttl: Duration::ZERO,
            dir_entry_ttl: Duration::ZERO,
            capacity: 0,
        }
    }

    /// Sets [`MetaCacheOptions::attr_ttl`].
    pub fn attr_ttl(mut self, ttl: Duration) -> Self {
        self.attr_ttl = ttl;
        self
    }

    /// Sets [`MetaCacheOptions::entry_ttl`].
    pub fn entry_ttl(mut self, ttl: Duration) -> Self {
        self.entry_ttl = ttl;
        self
    }

    /// Sets [`MetaCacheOptions::dir_entry_ttl`].
    pub fn dir_entry_ttl(mut self, ttl: Duration) -> Self {
        self.dir_entry_ttl = ttl;
        self
    }

    /// Sets [`MetaCacheOptions::capacity`].
    pub fn capacity(mut self, n: usize) -> Self {
        self.capacity = n;
        self
    }

    fn enabled(&self) -> bool {
        self.capacity > 0 && !self.attr_ttl.is_zero()
    }
}

/// Invalidation stripes (by inode number).
const STRIPES: usize = 64;

fn stripe(ino: Ino) -> usize {
    (ino % STRIPES as u64) as usize
}

/// A cached name: the inode it led to, whether that is a directory, when it was seen.
#[derive(Debug, Clone, Copy)]
struct Name {
    ino: Ino,
    dir: bool,
    seen: Instant,
}

/// Cached attributes: what was read, when, and whether they are whole. A directory whose
/// entries this client changed keeps its attributes for permission checks only (the
/// mode, owner and ACL do not change with its entries; its times, link count and size do).
#[derive(Debug, Clone)]
struct Cached {
    attr: Attr,
    seen: Instant,
    whole: bool,
}

#[derive(Default)]
struct State {
    attrs: HashMap<Ino, Cached>,
    names: Names,
}

/// Whether `len` entries left after dropping the expired ones are still too many for a
/// cache of `cap` (it then restarts empty rather than evict one by one).
fn still_full(len: usize, cap: usize) -> bool {
    len >= cap - cap / 4
}

/// Names per directory, so that a lookup by `(parent, &[u8])` allocates nothing.
#[derive(Default)]
struct Names {
    dirs: HashMap<Ino, HashMap<Box<[u8]>, Name>>,
    len: usize,
}

impl Names {
    fn get(&self, parent: Ino, name: &[u8]) -> Option<&Name> {
        self.dirs.get(&parent)?.get(name)
    }

    fn insert(&mut self, parent: Ino, name: &[u8], n: Name) {
        if self
            .dirs
            .entry(parent)
            .or_default()
            .insert(Box::from(name), n)
            .is_none()
        {
            self.len += 1;
        }
    }

    fn remove(&mut self, parent: Ino, name: &[u8]) -> Option<Name> {
        let names = self.dirs.get_mut(&parent)?;
        let n = names.remove(name)?;
        self.len -= 1;
        if names.is_empty() {
            self.dirs.remove(&parent);
        }
        Some(n)
    }

    fn clear(&mut self) {
        self.dirs.clear();
        self.len = 0;
    }

    /// As [`MetaCache::room`], for names.
    fn room(&mut self, cap: usize, expired: impl Fn(&Name) -> bool) {
        if self.len < cap {
            return;
        }
        self.dirs.retain(|_, names| {
            names.retain(|_, n| !expired(n));
            !names.is_empty()
        });
        self.len = self.dirs.values().map(HashMap::len).sum();
        if still_full(self.len, cap) {
            self.clear();
        }
    }
}

/// Counts of what the cache answered, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetaCacheStats {
    /// Calls answered from memory.
    pub hits: u64,
    /// Calls that asked the engine although the cache is on.
    pub misses: u64,
}

/// The cache itself (see the module docs).
struct MetaCache {
    opts: MetaCacheOptions,
    state: Mutex<State>,
    /// The sequence number of the last invalidation.
    seq: AtomicU64,
    /// Per stripe, the sequence number of its last invalidation.
    stamps: [AtomicU64; STRIPES],
    hits: AtomicU64,
    misses: AtomicU64,
}

impl MetaCache {
    fn new(opts: MetaCacheOptions) -> MetaCache {
        MetaCache {
            opts,
            state: Mutex::default(),
            seq: AtomicU64::new(0),
            stamps: std::array::from_fn(|_| AtomicU64::new(0)),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Plain maps: a panic cannot leave them inconsistent, at worst stale until expiry.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The sequence number a read beginning now compares stamps with.
    fn begin(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    /// Whether nothing in `ino`'s stripe was invalidated since `start`.
    fn clean(&self, ino: Ino, start: u64) -> bool {
        self.stamps[stripe(ino)].load(Ordering::Acquire) <= start
    }

    fn stamp(&self, ino: Ino) {
        let s = self.seq.fetch_add(1, Ordering::AcqRel) + 1;
        self.stamps[stripe(ino)].store(s, Ordering::Release);
    }

    fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }

    /// Fresh attributes of `ino`; `whole`: not only good for permission checks.
    fn fresh_attr(&self, st: &State, ino: Ino, whole: bool) -> Option<Attr> {
        st.attrs
            .get(&ino)
            .filter(|c| (c.whole || !whole) && c.seen.elapsed() < self.opts.attr_ttl)
            .map(|c| c.attr.clone())
    }

    fn attr(&self, ino: Ino) -> Option<Attr> {
        self.fresh_attr(&self.state(), ino, true)
    }

    /// The entry `name` of `parent`, fresh, and the parent's attributes if they are.
    fn entry(&self, parent: Ino, name: &[u8]) -> Option<(Entry, Option<Attr>)> {
        let st = self.state();
        let n = st.names.get(parent, name)?;
        let ttl = if n.dir {
            self.opts.dir_entry_ttl
        } else {
            self.opts.entry_ttl
        };
        if n.seen.elapsed() >= ttl {
            return None;
        }
        let attr = self.fresh_attr(&st, n.ino, true)?;
        let dir = self.fresh_attr(&st, parent, false);
        Some((Entry { ino: n.ino, attr }, dir))
    }

    /// Makes room for one more in `map` when it is full: drops what expired, and all of it
    /// if that was not enough (a full cache of fresh entries restarts empty).
    fn room<K, V>(map: &mut HashMap<K, V>, cap: usize, expired: impl Fn(&V) -> bool) {
        if map.len() < cap {
            return;
        }
        map.retain(|_, v| !expired(v));
        if still_full(map.len(), cap) {
            map.clear();
        }
    }

    fn put_attr_locked(&self, st: &mut State, ino: Ino, attr: Attr) {
        let ttl = self.opts.attr_ttl;
        Self::room(&mut st.attrs, self.opts.capacity, |c| {
            c.seen.elapsed() >= ttl
        });
        st.attrs.insert(
            ino,
            Cached {
                attr,
                seen: Instant::now(),
                whole: true,
            },
        );
    }

    /// Keeps attributes read from the engine by a call that began at `start`.
    fn put_attr(&self, ino: Ino, attr: &Attr, start: u64) {
        let mut st = self.state();
        if self.clean(ino, start) {
            self.put_attr_locked(&mut st, ino, attr.clone());
        }
    }

    /// Keeps an entry (name and attributes) read from the engine by a call that began at
    /// `start`. Names are kept even when their TTL is 0: they tell which inode a later
    /// unlink or rename of this client removes.
    fn put_entry(&self, parent: Ino, name: &[u8], e: &Entry, start: u64) {
        let mut st = self.state();
        if self.clean(parent, start) {
            self.put_entry_locked(&mut st, parent, name, e, start);
        }
    }

    fn put_entry_locked(&self, st: &mut State, parent: Ino, name: &[u8], e: &Entry, start: u64) {
        if names::validate_name(name).is_err() {
            return;
        }
        let longest = self
            .opts
            .entry_ttl
            .max(self.opts.dir_entry_ttl)
            .max(self.opts.attr_ttl);
        st.names
            .room(self.opts.capacity, |n| n.seen.elapsed() >= longest);
        st.names.insert(
            parent,
            name,
            Name {
                ino: e.ino,
                dir: e.attr.is_dir(),
                seen: Instant::now(),
            },
        );
        if self.clean(e.ino, start) {
            self.put_attr_locked(st, e.ino, e.attr.clone());
        } else {
            st.attrs.remove(&e.ino);
        }
    }

    /// Marks the attributes of directory `parent`, whose entries changed, good for
    /// permission checks only.
    fn entries_changed(&self, st: &mut State, parent: Ino) {
        self.stamp(parent);
        if let Some(c) = st.attrs.get_mut(&parent) {
            c.whole = false;
        }
    }

    /// After this client made entry `name` in `parent` (a create or link that began at
    /// `start` and returned `e`).
    fn added(&self, parent: Ino, name: &[u8], e: &Entry, start: u64) {
        let mut st = self.state();
        let clean = self.clean(parent, start);
        self.entries_changed(&mut st, parent);
        if clean {
            self.put_entry_locked(&mut st, parent, name, e, start);
        } else {
            st.names.remove(parent, name);
            st.attrs.remove(&e.ino);
        }
    }

    /// After a change of `ino`'s attributes: drops them, or keeps `now` (what the change
    /// committed) when no other change of the stripe came since the change began at
    /// `start`.
    fn settle(&self, ino: Ino, now: Option<&Attr>, start: u64) {
        let mut st = self.state();
        let clean = self.clean(ino, start);
        self.stamp(ino);
        st.attrs.remove(&ino);
        if let (true, Some(a)) = (clean, now) {
            self.put_attr_locked(&mut st, ino, a.clone());
        }
    }

    /// Drops the attributes of `inos`.
    fn drop_attrs(&self, inos: &[Ino]) {
        let mut st = self.state();
        for &ino in inos {
            self.stamp(ino);
            st.attrs.remove(&ino);
        }
    }

    /// Drops name `name` of `parent` and returns the inode it led to, if known.
    fn drop_name(&self, st: &mut State, parent: Ino, name: &[u8]) -> Option<Ino> {
        self.stamp(parent);
        st.names.remove(parent, name).map(|n| n.ino)
    }

    /// After entries `names` of `parent` were removed or moved away: drops the names and
    /// the attributes of the inodes they led to (all attributes, when one of them is not
    /// known); the parent's stay good for permission checks only.
    fn removed(&self, parent: Ino, names: &[&[u8]]) {
        let mut st = self.state();
        let mut unknown = false;
        let mut victims = Vec::with_capacity(names.len());
        for n in names {
            match self.drop_name(&mut st, parent, n) {
                Some(ino) => victims.push(ino),
                None => unknown = true,
            }
        }
        if unknown {
            self.clear_attrs(&mut st);
            return;
        }
        self.entries_changed(&mut st, parent);
        for ino in victims.into_iter().chain([meta_api::TRASH_INO]) {
            self.stamp(ino);
            st.attrs.remove(&ino);
        }
    }

    fn clear_attrs(&self, st: &mut State) {
        let s = self.seq.fetch_add(1, Ordering::AcqRel) + 1;
        for stamp in &self.stamps {
            stamp.store(s, Ordering::Release);
        }
        st.attrs.clear();
    }

    /// Drops everything.
    fn clear(&self) {
        let mut st = self.state();
        self.clear_attrs(&mut st);
        st.names.clear();
    }
}

/// A [`MetaEngine`] with this client's metadata cache in front (see the module docs).
pub(crate) struct CachedMeta {
    inner: Arc<dyn MetaEngine>,
    cache: Option<MetaCache>,
    /// How many times a heartbeat found this client's session reaped (see
    /// [`CachedMeta::sessions_lost`]).
    sessions_lost: AtomicU64,
}

impl CachedMeta {
    /// `inner` with a cache as `opts` ask (none when they turn it off).
    pub(crate) fn new(inner: Arc<dyn MetaEngine>, opts: MetaCacheOptions) -> CachedMeta {
        CachedMeta {
            inner,
            cache: opts.enabled().then(|| MetaCache::new(opts)),
            sessions_lost: AtomicU64::new(0),
        }
    }

    /// How many times this client's session was found reaped by another client and
    /// registered again: a handle opened when the count was lower is no longer protected
    /// (what its session kept alive and the locks it held were released).
    pub(crate) fn sessions_lost(&self) -> u64 {
        self.sessions_lost.load(Ordering::Acquire)
    }

    /// A lock refused because the session was reaped: the heartbeat that registers it
    /// again runs at once, so that the loss shows everywhere, and the refusal stands.
    async fn after_lock(&self, done: Result<()>) -> Result<()> {
        if matches!(done, Err(MetaError::SessionLost)) {
            if let Err(e) = self.heartbeat().await {
                tracing::warn!(error = %e, "session heartbeat after a refused lock failed");
            }
        }
        done
    }

    /// What the cache answered so far.
    pub(crate) fn stats(&self) -> MetaCacheStats {
        self.cache
            .as_ref()
            .map(|c| MetaCacheStats {
                hits: c.hits.load(Ordering::Relaxed),
                misses: c.misses.load(Ordering::Relaxed),
            })
            .unwrap_or_default()
    }

    /// Forgets everything cached (the next calls ask the engine).
    pub(crate) fn invalidate_all(&self) {
        if let Some(c) = &self.cache {
            c.clear();
        }
    }

    fn begin(&self) -> u64 {
        self.cache.as_ref().map_or(0, MetaCache::begin)
    }

    /// After a change of the attributes of `ino` that returned `now`.
    fn settle(&self, ino: Ino, now: Option<&Attr>, start: u64) {
        if let Some(c) = &self.cache {
            c.settle(ino, now, start);
        }
    }

    fn drop_attrs(&self, inos: &[Ino]) {
        if let Some(c) = &self.cache {
            c.drop_attrs(inos);
        }
    }

    /// After a new entry `name` in `parent` (made, linked): the parent's attributes go,
    /// the entry is kept.
    fn added(&self, parent: Ino, name: &[u8], e: &Entry, start: u64) {
        if let Some(c) = &self.cache {
            c.added(parent, name, e, start);
        }
    }

    fn removed(&self, parent: Ino, names: &[&[u8]]) {
        if let Some(c) = &self.cache {
            c.removed(parent, names);
        }
    }
}

#[async_trait]
impl MetaEngine for CachedMeta {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn init(&self, format: &Format, force: bool) -> Result<()> {
        let r = self.inner.init(format, force).await;
        self.invalidate_all();
        r
    }

    async fn load(&self) -> Result<Format> {
        self.inner.load().await
    }

    async fn new_session(&self, info: &SessionInfo) -> Result<u64> {
        self.inner.new_session(info).await
    }

    async fn heartbeat(&self) -> Result<Heartbeat> {
        let beat = self.inner.heartbeat().await?;
        if beat == Heartbeat::Reregistered {
            tracing::error!(
                "this client's session was reaped as stale by another client (it was away \
                 longer than the session expiry, or the clocks disagree): registered again; \
                 files open before fail with EIO and their locks are gone"
            );
            self.invalidate_all();
            self.sessions_lost.fetch_add(1, Ordering::AcqRel);
        }
        Ok(beat)
    }

    async fn close_session(&self) -> Result<()> {
        let r = self.inner.close_session().await;
        self.invalidate_all();
        r
    }

    async fn list_sessions(&self) -> Result<Vec<Session>> {
        self.inner.list_sessions().await
    }

    async fn reap_stale_sessions(&self, now: Timestamp) -> Result<usize> {
        let r = self.inner.reap_stale_sessions(now).await;
        if matches!(r, Ok(n) if n > 0) {
            self.invalidate_all();
        }
        r
    }

    async fn lookup(&self, ctx: &Context, parent: Ino, name: &[u8]) -> Result<Entry> {
        let Some(c) = &self.cache else {
            return self.inner.lookup(ctx, parent, name).await;
        };
        if names::validate_name(name).is_ok() {
            if let Some((e, dir)) = c.entry(parent, name) {
                // The parent's attributes decide the search permission: fetched (and kept)
                // when they are not cached, one engine call per directory and TTL instead
                // of one per lookup.
                let searchable = |d: &Attr| {
                    acl::rule_for_check(d).is_none()
                        && perm::check_access(ctx, d, access::X).is_ok()
                };
                let found = match dir {
                    Some(d) => searchable(&d).then_some(e),
                    None => {
                        let start = c.begin();
                        let d = self.inner.getattr(parent).await.ok();
                        if let Some(d) = &d {
                            c.put_attr(parent, d, start);
                        }
                        // Read again: the entry may have gone while the parent was fetched.
                        d.filter(|d| searchable(d))
                            .and_then(|_| c.entry(parent, name))
                            .map(|(e, _)| e)
                    }
                };
                if let Some(e) = found {
                    c.hit();
                    return Ok(e);
                }
            }
        }
        c.miss();
        let start = c.begin();
        let e = self.inner.lookup(ctx, parent, name).await?;
        c.put_entry(parent, name, &e, start);
        Ok(e)
    }

    async fn getattr(&self, ino: Ino) -> Result<Attr> {
        let Some(c) = &self.cache else {
            return self.inner.getattr(ino).await;
        };
        if let Some(a) = c.attr(ino) {
            c.hit();
            return Ok(a);
        }
        c.miss();
        let start = c.begin();
        let a = self.inner.getattr(ino).await?;
        c.put_attr(ino, &a, start);
        Ok(a)
    }

    async fn check_access(&self, ctx: &Context, ino: Ino, mask: u8) -> Result<Attr> {
        let Some(c) = &self.cache else {
            return self.inner.check_access(ctx, ino, mask).await;
        };
        if let Some(a) = c.attr(ino) {
            if acl::rule_for_check(&a).is_none() {
                c.hit();
                perm::check_access(ctx, &a, mask)?;
                return Ok(a);
            }
        }
        c.miss();
        let start = c.begin();
        let a = self.inner.check_access(ctx, ino, mask).await?;
        c.put_attr(ino, &a, start);
        Ok(a)
    }

    async fn setattr(&self, ctx: &Context, ino: Ino, set: &SetAttr) -> Result<Attr> {
        let start = self.begin();
        let r = self.inner.setattr(ctx, ino, set).await;
        self.settle(ino, r.as_ref().ok(), start);
        r
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
        let start = self.begin();
        let e = self.inner.mknod(ctx, parent, name, typ, mode, rdev).await?;
        self.added(parent, name, &e, start);
        Ok(e)
    }

    async fn create(&self, ctx: &Context, parent: Ino, name: &[u8], mode: u16) -> Result<Entry> {
        let start = self.begin();
        let e = self.inner.create(ctx, parent, name, mode).await?;
        self.added(parent, name, &e, start);
        Ok(e)
    }

    async fn mkdir(&self, ctx: &Context, parent: Ino, name: &[u8], mode: u16) -> Result<Entry> {
        let start = self.begin();
        let e = self.inner.mkdir(ctx, parent, name, mode).await?;
        self.added(parent, name, &e, start);
        Ok(e)
    }

    async fn symlink(
        &self,
        ctx: &Context,
        parent: Ino,
        name: &[u8],
        target: &[u8],
    ) -> Result<Entry> {
        let start = self.begin();
        let e = self.inner.symlink(ctx, parent, name, target).await?;
        self.added(parent, name, &e, start);
        Ok(e)
    }

    async fn readlink(&self, ino: Ino) -> Result<Vec<u8>> {
        self.inner.readlink(ino).await
    }

    async fn link(&self, ctx: &Context, ino: Ino, parent: Ino, name: &[u8]) -> Result<Entry> {
        let start = self.begin();
        let e = self.inner.link(ctx, ino, parent, name).await?;
        self.added(parent, name, &e, start);
        Ok(e)
    }

    async fn unlink(&self, ctx: &Context, parent: Ino, name: &[u8]) -> Result<()> {
        let r = self.inner.unlink(ctx, parent, name).await;
        self.removed(parent, &[name]);
        r
    }

    async fn rmdir(&self, ctx: &Context, parent: Ino, name: &[u8]) -> Result<()> {
        let r = self.inner.rmdir(ctx, parent, name).await;
        self.removed(parent, &[name]);
        r
    }

    async fn unlink_many(&self, ctx: &Context, parent: Ino, names: &[Vec<u8>]) -> Result<usize> {
        let r = self.inner.unlink_many(ctx, parent, names).await;
        let names: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
        self.removed(parent, &names);
        r
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
        let r = self
            .inner
            .rename(ctx, parent, name, new_parent, new_name, flags)
            .await;
        // The moved inode (its parent and ctime) and the one it replaced or swapped with.
        self.removed(new_parent, &[new_name]);
        self.removed(parent, &[name]);
        r
    }

    async fn readdir(
        &self,
        ctx: &Context,
        ino: Ino,
        after: Option<&[u8]>,
        limit: usize,
        plus: bool,
    ) -> Result<Vec<DirEntry>> {
        let start = self.begin();
        let listed = self.inner.readdir(ctx, ino, after, limit, plus).await?;
        if let (Some(c), true) = (&self.cache, plus) {
            for d in &listed {
                if let Some(attr) = &d.attr {
                    let e = Entry {
                        ino: d.ino,
                        attr: attr.clone(),
                    };
                    c.put_entry(ino, &d.name, &e, start);
                }
            }
        }
        Ok(listed)
    }

    async fn open(&self, ctx: &Context, ino: Ino, flags: i32) -> Result<Attr> {
        let start = self.begin();
        let r = self.inner.open(ctx, ino, flags).await;
        // An open revalidates: what it read replaces what was cached.
        self.settle(ino, r.as_ref().ok(), start);
        r
    }

    async fn close(&self, ino: Ino) -> Result<()> {
        let r = self.inner.close(ino).await;
        // A close changes no attribute, but the last close of an unlinked file deletes it.
        if let Some(c) = &self.cache {
            if c.attr(ino).is_none_or(|a| a.nlink == 0) {
                c.drop_attrs(&[ino]);
            }
        }
        r
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
        let r = self.inner.write_slice(ino, index, slice, mtime).await;
        self.drop_attrs(&[ino]);
        r
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
        // A compaction changes no attribute.
        self.inner.compact_chunk(ino, index, plan, id).await
    }

    async fn truncate(&self, ctx: &Context, ino: Ino, length: u64) -> Result<Attr> {
        let start = self.begin();
        let r = self.inner.truncate(ctx, ino, length).await;
        self.settle(ino, r.as_ref().ok(), start);
        r
    }

    async fn fallocate(
        &self,
        ctx: &Context,
        ino: Ino,
        mode: FallocMode,
        off: u64,
        len: u64,
    ) -> Result<()> {
        let r = self.inner.fallocate(ctx, ino, mode, off, len).await;
        self.drop_attrs(&[ino]);
        r
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
        let r = self
            .inner
            .copy_file_range(ctx, src, src_off, dst, dst_off, len)
            .await;
        self.drop_attrs(&[src, dst]);
        r
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
        let r = self.inner.setxattr(ctx, ino, name, value, flags).await;
        // An ACL changes the mode bits; any xattr the change time.
        self.drop_attrs(&[ino]);
        r
    }

    async fn listxattr(&self, ino: Ino) -> Result<Vec<Vec<u8>>> {
        self.inner.listxattr(ino).await
    }

    async fn removexattr(&self, ctx: &Context, ino: Ino, name: &[u8]) -> Result<()> {
        let r = self.inner.removexattr(ctx, ino, name).await;
        self.drop_attrs(&[ino]);
        r
    }

    async fn flock(
        &self,
        ctx: &Context,
        ino: Ino,
        owner: u64,
        ltype: LockType,
        block: bool,
    ) -> Result<()> {
        let done = self.inner.flock(ctx, ino, owner, ltype, block).await;
        self.after_lock(done).await
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

    #[allow(clippy::too_many_arguments)]
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
        let done = self
            .inner
            .setlk(ctx, ino, owner, block, ltype, start, end, pid)
            .await;
        self.after_lock(done).await
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
        let r = self.inner.purge_file(ino).await;
        self.drop_attrs(&[ino]);
        r
    }

    async fn purge_files(&self, files: &[DeletedFile]) -> Result<Purged> {
        let r = self.inner.purge_files(files).await;
        let inos: Vec<Ino> = files.iter().map(|f| f.ino).collect();
        self.drop_attrs(&inos);
        r
    }

    async fn pending_slices(&self, limit: usize) -> Result<Vec<Slice>> {
        self.inner.pending_slices(limit).await
    }

    async fn forget_slice(&self, id: u64, size: u32) -> Result<bool> {
        self.inner.forget_slice(id, size).await
    }

    async fn forget_slices(&self, slices: &[(u64, u32)]) -> Result<usize> {
        self.inner.forget_slices(slices).await
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
        kind: meta_api::quota::QuotaKind,
        key: u64,
        limits: (i64, i64),
        used: Option<(i64, i64)>,
    ) -> Result<()> {
        self.inner.set_quota(kind, key, limits, used).await
    }

    async fn get_quota(
        &self,
        kind: meta_api::quota::QuotaKind,
        key: u64,
    ) -> Result<Option<meta_api::quota::Quota>> {
        self.inner.get_quota(kind, key).await
    }

    async fn list_quotas(
        &self,
        kind: meta_api::quota::QuotaKind,
    ) -> Result<Vec<(u64, meta_api::quota::Quota)>> {
        self.inner.list_quotas(kind).await
    }

    async fn delete_quota(&self, kind: meta_api::quota::QuotaKind, key: u64) -> Result<bool> {
        self.inner.delete_quota(kind, key).await
    }

    async fn statfs_at(&self, ino: Ino) -> Result<StatFs> {
        self.inner.statfs_at(ino).await
    }

    async fn counters(&self) -> Result<meta_api::dump::Counters> {
        self.inner.counters().await
    }

    async fn queued_deletions(
        &self,
        after: Ino,
        limit: usize,
    ) -> Result<Vec<meta_api::dump::QueuedDeletion>> {
        self.inner.queued_deletions(after, limit).await
    }

    async fn is_empty(&self) -> Result<bool> {
        self.inner.is_empty().await
    }

    async fn load_batch(&self, batch: &meta_api::dump::Batch) -> Result<()> {
        let r = self.inner.load_batch(batch).await;
        self.invalidate_all();
        r
    }

    async fn finish_load(&self, end: &meta_api::dump::LoadEnd) -> Result<()> {
        let r = self.inner.finish_load(end).await;
        self.invalidate_all();
        r
    }

    async fn node_contents(
        &self,
        nodes: &[(Ino, Attr)],
    ) -> Result<Vec<Option<meta_api::dump::NodeContents>>> {
        self.inner.node_contents(nodes).await
    }

    async fn hold_slices(&self, slices: &[(u64, u32)], delta: i64) -> Result<Vec<Slice>> {
        self.inner.hold_slices(slices, delta).await
    }

    async fn wipe(&self) -> Result<()> {
        let r = self.inner.wipe().await;
        self.invalidate_all();
        r
    }

    async fn clone_node(
        &self,
        ctx: &Context,
        step: &meta_api::clone::CloneNode<'_>,
    ) -> Result<Entry> {
        let start = self.begin();
        let e = self.inner.clone_node(ctx, step).await?;
        // A detached directory has no entry yet: its attach adds it.
        if e.attr.parent != 0 {
            self.added(step.parent, step.name, &e, start);
        }
        Ok(e)
    }

    async fn attach_dir(
        &self,
        ctx: &Context,
        (parent, name): (Ino, &[u8]),
        ino: Ino,
        usage: meta_api::space::Usage,
    ) -> Result<Entry> {
        let start = self.begin();
        let e = self
            .inner
            .attach_dir(ctx, (parent, name), ino, usage)
            .await?;
        self.added(parent, name, &e, start);
        Ok(e)
    }

    async fn detached_nodes(&self) -> Result<Vec<(Ino, i64)>> {
        self.inner.detached_nodes().await
    }

    async fn drop_detached(&self, ino: Ino) -> Result<bool> {
        let r = self.inner.drop_detached(ino).await;
        self.drop_attrs(&[ino]);
        r
    }
}
