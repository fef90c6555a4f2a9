//! `Prefixed<S>`: a store seen through a key prefix (a volume's objects live under `{name}/`).

use async_trait::async_trait;
use bytes::Bytes;

use crate::{ChunkStore, ListPage, ObjectMeta, Result, StoreError};

/// A decorator that stores every key under a fixed prefix of the inner store and hides that
/// prefix from its callers, as JuiceFS does for the volume name (`{bucket}/{name}/chunks/…`).
#[derive(Debug, Clone)]
pub struct Prefixed<S> {
    inner: S,
    prefix: String,
}

impl<S: ChunkStore> Prefixed<S> {
    /// Keys of the returned store live under `"{name}/"` in `inner`. A trailing `/` in `name`
    /// is not doubled. `Invalid` if `name` is empty or would make keys malformed.
    pub fn new(inner: S, name: &str) -> Result<Prefixed<S>> {
        let trimmed = name.strip_suffix('/').unwrap_or(name);
        crate::key::validate_key(trimmed)
            .map_err(|e| StoreError::Invalid(format!("bad prefix {name:?}: {e}")))?;
        Ok(Prefixed {
            inner,
            prefix: format!("{trimmed}/"),
        })
    }

    /// The prefix, ending in `/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn strip(&self, mut meta: ObjectMeta) -> Result<ObjectMeta> {
        match meta.key.strip_prefix(&self.prefix) {
            Some(k) => {
                meta.key = k.to_string();
                Ok(meta)
            }
            None => Err(StoreError::other(format!(
                "inner store returned key {:?} outside prefix {:?}",
                meta.key, self.prefix
            ))),
        }
    }
}

#[async_trait]
impl<S: ChunkStore> ChunkStore for Prefixed<S> {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        crate::key::validate_key(key)?;
        self.inner.put(&self.full(key), data).await
    }

    async fn get_range(&self, key: &str, off: u64, len: Option<u64>) -> Result<Bytes> {
        crate::key::validate_key(key)?;
        self.inner.get_range(&self.full(key), off, len).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        crate::key::validate_key(key)?;
        self.inner.delete(&self.full(key)).await
    }

    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        let after = start_after.map(|s| self.full(s));
        let page = self
            .inner
            .list_page(&self.full(prefix), after.as_deref(), limit)
            .await?;
        Ok(ListPage {
            objects: page
                .objects
                .into_iter()
                .map(|m| self.strip(m))
                .collect::<Result<_>>()?,
            truncated: page.truncated,
        })
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        crate::key::validate_key(key)?;
        let m = self.inner.head(&self.full(key)).await?;
        self.strip(m)
    }
}
