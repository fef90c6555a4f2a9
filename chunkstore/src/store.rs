//! The `ChunkStore` trait: put/get/delete/list/head of immutable blocks.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::{Result, StoreError};

/// What a store knows about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The object's key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// Last modification, seconds since the Unix epoch (0 if unknown).
    pub mtime: i64,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListPage {
    /// Objects in key order.
    pub objects: Vec<ObjectMeta>,
    /// Whether more objects follow (ask again with the last key as `start_after`).
    pub truncated: bool,
}

/// Storage of immutable blocks by key. Blocks are written once and never overwritten in
/// place; a `put` returns only when the object is durable.
///
/// The required methods are few; conveniences live in [`ChunkStoreExt`]. Decorators
/// (compression, retry, cache, fault injection) implement this same trait and stack.
#[async_trait]
pub trait ChunkStore: Send + Sync + 'static {
    /// Stores `data` under `key`, durably, atomically (readers see all or nothing).
    async fn put(&self, key: &str, data: Bytes) -> Result<()>;

    /// Reads `len` bytes at `off` of `key` (`len = None`: to the end). A range past the end
    /// returns what exists (possibly empty). `NotFound` if the object does not exist.
    async fn get_range(&self, key: &str, off: u64, len: Option<u64>) -> Result<Bytes>;

    /// Deletes `key`. Deleting a missing object succeeds (idempotent).
    async fn delete(&self, key: &str) -> Result<()>;

    /// Lists up to `limit` objects whose keys start with `prefix` and sort after
    /// `start_after`, in key order.
    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage>;

    /// Size and time of `key`; `NotFound` if missing.
    async fn head(&self, key: &str) -> Result<ObjectMeta>;
}

#[async_trait]
impl<T: ChunkStore + ?Sized> ChunkStore for Arc<T> {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        (**self).put(key, data).await
    }
    async fn get_range(&self, key: &str, off: u64, len: Option<u64>) -> Result<Bytes> {
        (**self).get_range(key, off, len).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        (**self).delete(key).await
    }
    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        (**self).list_page(prefix, start_after, limit).await
    }
    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        (**self).head(key).await
    }
}

#[async_trait]
impl<T: ChunkStore + ?Sized> ChunkStore for Box<T> {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        (**self).put(key, data).await
    }
    async fn get_range(&self, key: &str, off: u64, len: Option<u64>) -> Result<Bytes> {
        (**self).get_range(key, off, len).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        (**self).delete(key).await
    }
    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        (**self).list_page(prefix, start_after, limit).await
    }
    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        (**self).head(key).await
    }
}

/// Conveniences over [`ChunkStore`], implemented for every store.
#[async_trait]
pub trait ChunkStoreExt: ChunkStore {
    /// Reads a whole object.
    async fn get(&self, key: &str) -> Result<Bytes> {
        self.get_range(key, 0, None).await
    }

    /// Reads a whole block and checks its length against `expect` (the length in its key):
    /// a short or long object is `Corrupt`, never returned as data.
    async fn get_block(&self, key: &str, expect: u64) -> Result<Bytes> {
        let b = self.get_range(key, 0, None).await?;
        if b.len() as u64 != expect {
            return Err(StoreError::Corrupt(format!(
                "{key}: {} bytes, key says {expect}",
                b.len()
            )));
        }
        Ok(b)
    }

    /// Lists every object under `prefix`, page by page.
    async fn list_all(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let mut out: Vec<ObjectMeta> = Vec::new();
        loop {
            let after = out.last().map(|o| o.key.clone());
            let page = self.list_page(prefix, after.as_deref(), 1000).await?;
            let done = !page.truncated || page.objects.is_empty();
            out.extend(page.objects);
            if done {
                return Ok(out);
            }
        }
    }
}

impl<T: ChunkStore + ?Sized> ChunkStoreExt for T {}
