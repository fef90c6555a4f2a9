//! `MemCache`: whole blocks in memory, bounded in bytes, least recently used evicted first.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;

use crate::lru::Lru;

/// Blocks in memory, bounded by the total length of the cached blocks; inserting beyond the
/// bound evicts the least recently used blocks. A capacity of 0 disables the cache.
///
/// All methods take `&self` and are cheap (one short lock, no I/O); the cache is shared by
/// reference between tasks.
pub struct MemCache {
    capacity: u64,
    blocks: Mutex<Lru<Bytes>>,
    evictions: AtomicU64,
}

impl std::fmt::Debug for MemCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemCache")
            .field("capacity", &self.capacity)
            .field("used", &self.used_bytes())
            .field("len", &self.len())
            .finish()
    }
}

impl MemCache {
    /// A cache holding at most `capacity` bytes of block data.
    pub fn new(capacity: u64) -> MemCache {
        MemCache {
            capacity,
            blocks: Mutex::new(Lru::default()),
            evictions: AtomicU64::new(0),
        }
    }

    // Every update is a single `Lru` call that cannot panic half-way, so a poisoned lock
    // still guards a consistent index.
    fn lock(&self) -> MutexGuard<'_, Lru<Bytes>> {
        self.blocks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The block cached under `key`, marking it as recently used.
    pub fn get(&self, key: &str) -> Option<Bytes> {
        self.lock().get(key).cloned()
    }

    /// Whether `key` is cached (does not count as a use).
    pub fn contains(&self, key: &str) -> bool {
        self.lock().contains(key)
    }

    /// Caches `data` under `key`, evicting least recently used blocks to stay within the
    /// capacity. A block larger than the whole capacity is not cached; returns whether it was.
    pub fn insert(&self, key: &str, data: Bytes) -> bool {
        let len = data.len() as u64;
        if len > self.capacity {
            return false;
        }
        let mut evicted = 0;
        {
            let mut blocks = self.lock();
            blocks.insert(key, data, len);
            while blocks.weight() > self.capacity {
                if blocks.pop_lru().is_none() {
                    break;
                }
                evicted += 1;
            }
        }
        self.evictions.fetch_add(evicted, Ordering::Relaxed);
        true
    }

    /// Drops `key` from the cache.
    pub fn remove(&self, key: &str) {
        self.lock().remove(key);
    }

    /// The configured capacity in bytes.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Bytes of block data currently cached.
    pub fn used_bytes(&self) -> u64 {
        self.lock().weight()
    }

    /// How many blocks are cached.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no block is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many blocks were evicted to make room since the cache was created.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(n: usize, fill: u8) -> Bytes {
        Bytes::from(vec![fill; n])
    }

    #[test]
    fn stays_within_capacity_evicting_least_recently_used() {
        let c = MemCache::new(300);
        assert!(c.insert("a", block(100, 1)));
        assert!(c.insert("b", block(100, 2)));
        assert!(c.insert("c", block(100, 3)));
        assert_eq!(c.used_bytes(), 300);
        // Touch "a" so that "b" is the oldest.
        assert_eq!(c.get("a").unwrap()[0], 1);
        assert!(c.insert("d", block(100, 4)));
        assert_eq!(c.used_bytes(), 300);
        assert!(c.get("b").is_none());
        assert!(c.contains("a") && c.contains("c") && c.contains("d"));
        assert_eq!(c.evictions(), 1);
        // A big block pushes out several small ones.
        assert!(c.insert("e", block(250, 5)));
        assert!(c.used_bytes() <= 300);
        assert_eq!(c.len(), 1);
        assert_eq!(c.evictions(), 4);
    }

    #[test]
    fn oversized_blocks_and_zero_capacity_cache_nothing() {
        let c = MemCache::new(10);
        assert!(!c.insert("a", block(11, 0)));
        assert!(c.is_empty());
        let off = MemCache::new(0);
        assert!(!off.insert("a", block(1, 0)));
        assert!(off.get("a").is_none());
    }

    #[test]
    fn remove_and_reinsert() {
        let c = MemCache::new(100);
        c.insert("a", block(10, 1));
        c.insert("a", block(20, 2));
        assert_eq!(c.used_bytes(), 20);
        c.remove("a");
        assert_eq!(c.used_bytes(), 0);
        assert!(c.get("a").is_none());
    }
}
