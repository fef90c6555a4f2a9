//! `MemStore`: objects in a sorted map in memory, for tests and ephemeral volumes.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;

use crate::key::validate_key;
use crate::{ChunkStore, ListPage, ObjectMeta, Result, StoreError};

#[derive(Debug, Clone)]
struct Entry {
    data: Bytes,
    mtime: i64,
}

/// An in-memory [`ChunkStore`]. Nothing survives the process; `put` is "durable" as soon as
/// it returns because there is nothing more durable to reach.
#[derive(Debug, Default)]
pub struct MemStore {
    objects: RwLock<BTreeMap<String, Entry>>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> MemStore {
        MemStore::default()
    }

    /// How many objects the store holds.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether the store holds no object.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Total bytes of all objects.
    pub fn total_bytes(&self) -> u64 {
        self.read().values().map(|e| e.data.len() as u64).sum()
    }

    // A panic while holding the lock cannot leave the map half-updated (every update is one
    // map call), so a poisoned lock is still safe to use.
    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        self.objects.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<String, Entry>> {
        self.objects.write().unwrap_or_else(|e| e.into_inner())
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Slices `data` to the range a `get_range` asks for; a range past the end is cut short.
pub(crate) fn slice_range(data: &Bytes, off: u64, len: Option<u64>) -> Bytes {
    let size = data.len() as u64;
    let start = off.min(size);
    let end = match len {
        Some(l) => start.saturating_add(l).min(size),
        None => size,
    };
    data.slice(start as usize..end as usize)
}

#[async_trait]
impl ChunkStore for MemStore {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        validate_key(key)?;
        let entry = Entry {
            data,
            mtime: now_secs(),
        };
        self.write().insert(key.to_string(), entry);
        Ok(())
    }

    async fn get_range(&self, key: &str, off: u64, len: Option<u64>) -> Result<Bytes> {
        validate_key(key)?;
        match self.read().get(key) {
            Some(e) => Ok(slice_range(&e.data, off, len)),
            None => Err(StoreError::NotFound(key.to_string())),
        }
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        self.write().remove(key);
        Ok(())
    }

    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        if limit == 0 {
            return Err(StoreError::Invalid("list limit must be positive".into()));
        }
        let lower = match start_after {
            Some(a) if a >= prefix => Bound::Excluded(a),
            _ => Bound::Included(prefix),
        };
        let map = self.read();
        let mut iter = map
            .range::<str, _>((lower, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix));
        let objects: Vec<ObjectMeta> = iter
            .by_ref()
            .take(limit)
            .map(|(k, e)| ObjectMeta {
                key: k.clone(),
                size: e.data.len() as u64,
                mtime: e.mtime,
            })
            .collect();
        let truncated = iter.next().is_some();
        Ok(ListPage { objects, truncated })
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        validate_key(key)?;
        match self.read().get(key) {
            Some(e) => Ok(ObjectMeta {
                key: key.to_string(),
                size: e.data.len() as u64,
                mtime: e.mtime,
            }),
            None => Err(StoreError::NotFound(key.to_string())),
        }
    }
}
