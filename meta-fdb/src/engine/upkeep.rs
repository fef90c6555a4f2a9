//! Upkeep (see [`meta_api::upkeep`]): the inventory for gc, pending slices, job election
//! and recomputed statistics.

use async_trait::async_trait;
use meta_api::backend::Upkeep;

use crate::kv::KvStore;
use crate::TkvMeta;

#[async_trait]
impl<K: KvStore> Upkeep for TkvMeta<K> {}
