//! Upkeep (see [`meta_api::upkeep`]): the inventory for gc, pending slices, job election
//! and recomputed statistics.

use async_trait::async_trait;
use meta_api::backend::Upkeep;

use crate::SqliteMeta;

#[async_trait]
impl Upkeep for SqliteMeta {}
