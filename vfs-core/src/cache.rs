//! A small, bounded, in-memory cache of whole blocks for readers, which also makes
//! concurrent fetches of one block share a single request (readahead and the reader
//! that catches up with it).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use chunkstore::{ChunkStore, ChunkStoreExt, StoreError};
use futures::future::{BoxFuture, FutureExt, Shared};

use crate::{Result, VfsError};

type Fetch = Shared<BoxFuture<'static, std::result::Result<Bytes, Arc<StoreError>>>>;

enum Slot {
    Ready { data: Bytes, tick: u64 },
    Loading(Fetch),
}

#[derive(Default)]
struct State {
    map: HashMap<String, Slot>,
    /// Ready entries by last use, oldest first.
    lru: BTreeMap<u64, String>,
    used: usize,
    tick: u64,
}

/// Whole blocks by object key, least recently used evicted first, at most `capacity` bytes.
/// Blocks are immutable, so an entry never goes stale.
pub(crate) struct BlockCache {
    capacity: usize,
    state: Mutex<State>,
}

impl BlockCache {
    /// A cache of at most `capacity` bytes (0: nothing is kept, fetches are still shared).
    pub(crate) fn new(capacity: usize) -> BlockCache {
        BlockCache {
            capacity,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the maps consistent, so a panic elsewhere cannot
        // have left them half-updated.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The block if it is cached or being fetched (waiting for the fetch), else `None`.
    pub(crate) async fn get_if_present(&self, key: &str) -> Option<Result<Bytes>> {
        let fetch = {
            let mut st = self.lock();
            match st.map.get(key) {
                None => return None,
                Some(Slot::Ready { data, tick }) => {
                    let (data, old) = (data.clone(), *tick);
                    touch(&mut st, key, old);
                    return Some(Ok(data));
                }
                Some(Slot::Loading(f)) => f.clone(),
            }
        };
        Some(self.finish(key, fetch.await))
    }

    /// The whole block `key` of `len` bytes: from the cache, from a fetch already running,
    /// or fetched now (its length checked against `len`) and cached.
    pub(crate) async fn get_or_fetch(
        &self,
        store: &Arc<dyn ChunkStore>,
        key: &str,
        len: u64,
    ) -> Result<Bytes> {
        let fetch = {
            let mut st = self.lock();
            match st.map.get(key) {
                Some(Slot::Ready { data, tick }) => {
                    let (data, old) = (data.clone(), *tick);
                    touch(&mut st, key, old);
                    return Ok(data);
                }
                Some(Slot::Loading(f)) => f.clone(),
                None => {
                    let store = store.clone();
                    let k = key.to_string();
                    let f: Fetch = async move { store.get_block(&k, len).await.map_err(Arc::new) }
                        .boxed()
                        .shared();
                    st.map.insert(key.to_string(), Slot::Loading(f.clone()));
                    f
                }
            }
        };
        self.finish(key, fetch.await)
    }

    /// Records the outcome of a fetch (every waiter does; only the first changes anything).
    fn finish(&self, key: &str, r: std::result::Result<Bytes, Arc<StoreError>>) -> Result<Bytes> {
        let mut st = self.lock();
        if matches!(st.map.get(key), Some(Slot::Loading(_))) {
            match &r {
                Ok(data) if data.len() <= self.capacity => {
                    st.tick += 1;
                    let tick = st.tick;
                    st.used += data.len();
                    st.lru.insert(tick, key.to_string());
                    st.map.insert(
                        key.to_string(),
                        Slot::Ready {
                            data: data.clone(),
                            tick,
                        },
                    );
                    self.evict(&mut st);
                }
                // Failures are not cached: the next reader asks the store again.
                _ => {
                    st.map.remove(key);
                }
            }
        }
        r.map_err(VfsError::Store)
    }

    fn evict(&self, st: &mut State) {
        while st.used > self.capacity {
            let Some((_, key)) = st.lru.pop_first() else {
                break;
            };
            if let Some(Slot::Ready { data, .. }) = st.map.remove(&key) {
                st.used -= data.len();
            }
        }
    }

    /// Bytes held now.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.lock().used
    }
}

fn touch(st: &mut State, key: &str, old: u64) {
    st.tick += 1;
    let tick = st.tick;
    st.lru.remove(&old);
    st.lru.insert(tick, key.to_string());
    if let Some(Slot::Ready { tick: t, .. }) = st.map.get_mut(key) {
        *t = tick;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chunkstore::MemStore;

    #[tokio::test]
    async fn caches_checks_length_and_evicts_oldest() {
        let mem = MemStore::new();
        mem.put("a", Bytes::from_static(b"aaaa")).await.unwrap();
        mem.put("b", Bytes::from_static(b"bbbb")).await.unwrap();
        mem.put("c", Bytes::from_static(b"cccc")).await.unwrap();
        let store: Arc<dyn ChunkStore> = Arc::new(mem);
        let cache = BlockCache::new(8);
        assert!(cache.get_if_present("a").await.is_none());
        assert_eq!(
            &cache.get_or_fetch(&store, "a", 4).await.unwrap()[..],
            b"aaaa"
        );
        assert_eq!(
            &cache.get_or_fetch(&store, "b", 4).await.unwrap()[..],
            b"bbbb"
        );
        // Touch "a" so that "b" is the oldest when "c" comes in.
        assert!(cache.get_if_present("a").await.is_some());
        cache.get_or_fetch(&store, "c", 4).await.unwrap();
        assert_eq!(cache.used(), 8);
        assert!(cache.get_if_present("b").await.is_none());
        assert!(cache.get_if_present("a").await.is_some());
        // A length that disagrees with the key is an error, never data, and is not cached.
        let err = cache.get_or_fetch(&store, "b", 5).await.unwrap_err();
        assert_eq!(err.errno(), libc::EIO);
        assert!(cache.get_if_present("b").await.is_none());
    }
}
