//! Immutable block storage for JuiceFS-compatible volumes.

mod error;
mod store;

pub use error::{BoxError, Result, StoreError};
pub use store::{ChunkStore, ChunkStoreExt, ListPage, ObjectMeta};
