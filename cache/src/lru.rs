//! A weighted least-recently-used index, shared by the memory and the disk cache.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

struct Slot<V> {
    value: V,
    weight: u64,
    tick: u64,
}

/// Entries by key with a weight each; [`pop_lru`](Lru::pop_lru) yields the entry used least
/// recently. Every operation is O(log n); memory is one key and a few words per entry.
pub(crate) struct Lru<V> {
    map: HashMap<Arc<str>, Slot<V>>,
    order: BTreeMap<u64, Arc<str>>,
    next_tick: u64,
    weight: u64,
}

impl<V> Default for Lru<V> {
    fn default() -> Self {
        Lru {
            map: HashMap::new(),
            order: BTreeMap::new(),
            next_tick: 0,
            weight: 0,
        }
    }
}

impl<V> Lru<V> {
    /// The value of `key`, marking it as just used.
    pub(crate) fn get(&mut self, key: &str) -> Option<&V> {
        let tick = self.next_tick;
        let slot = self.map.get_mut(key)?;
        if let Some(k) = self.order.remove(&slot.tick) {
            self.order.insert(tick, k);
        }
        slot.tick = tick;
        self.next_tick += 1;
        Some(&slot.value)
    }

    /// Whether `key` is present (does not count as a use).
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// Inserts `key` as the most recently used entry, replacing an older value.
    pub(crate) fn insert(&mut self, key: &str, value: V, weight: u64) {
        self.remove(key);
        let key: Arc<str> = Arc::from(key);
        let tick = self.next_tick;
        self.next_tick += 1;
        self.order.insert(tick, Arc::clone(&key));
        self.map.insert(
            key,
            Slot {
                value,
                weight,
                tick,
            },
        );
        self.weight += weight;
    }

    /// Removes `key`, returning its value and weight.
    pub(crate) fn remove(&mut self, key: &str) -> Option<(V, u64)> {
        let slot = self.map.remove(key)?;
        self.order.remove(&slot.tick);
        self.weight -= slot.weight;
        Some((slot.value, slot.weight))
    }

    /// Removes and returns the least recently used entry.
    pub(crate) fn pop_lru(&mut self) -> Option<(Arc<str>, V, u64)> {
        let (_, key) = self.order.pop_first()?;
        let slot = self.map.remove(&key)?;
        self.weight -= slot.weight;
        Some((key, slot.value, slot.weight))
    }

    /// The sum of the weights of all entries.
    pub(crate) fn weight(&self) -> u64 {
        self.weight
    }

    /// How many entries there are.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_least_recently_used_first() {
        let mut l = Lru::default();
        l.insert("a", 1, 10);
        l.insert("b", 2, 20);
        l.insert("c", 3, 30);
        assert_eq!(l.weight(), 60);
        assert_eq!(l.get("a"), Some(&1));
        let (k, v, w) = l.pop_lru().unwrap();
        assert_eq!((&*k, v, w), ("b", 2, 20));
        assert_eq!(l.weight(), 40);
        assert_eq!(l.pop_lru().map(|e| e.1), Some(3));
        assert_eq!(l.pop_lru().map(|e| e.1), Some(1));
        assert!(l.pop_lru().is_none());
        assert_eq!(l.weight(), 0);
    }

    #[test]
    fn insert_replaces_and_remove_keeps_weights_exact() {
        let mut l = Lru::default();
        l.insert("a", 1, 10);
        l.insert("a", 2, 5);
        assert_eq!(l.len(), 1);
        assert_eq!(l.weight(), 5);
        assert_eq!(l.get("a"), Some(&2));
        assert_eq!(l.remove("a"), Some((2, 5)));
        assert_eq!(l.remove("a"), None);
        assert!(!l.contains("a"));
        assert_eq!(l.weight(), 0);
    }
}
