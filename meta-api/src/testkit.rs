//! The conformance suite every [`MetaEngine`](crate::MetaEngine) runs, and the reference
//! model used by the property tests.
//!
//! A backend provides a [`Harness`] that makes fresh volumes and connects clients to
//! them, then calls [`run_all`] from one `#[tokio::test]`:
//!
//! ```ignore
//! #[tokio::test]
//! async fn conformance() {
//!     meta_api::testkit::run_all(&MyHarness::new()).await;
//! }
//! ```

use std::sync::Arc;

use async_trait::async_trait;

use crate::{MetaEngine, Result};

/// Makes fresh volumes for the suite.
#[async_trait]
pub trait Harness: Send + Sync {
    /// A new, empty, formatted volume (no other test sees it).
    async fn new_volume(&self) -> Result<Box<dyn TestVolume>>;
}

/// One formatted volume of a test.
#[async_trait]
pub trait TestVolume: Send + Sync {
    /// A new client of this volume with its own session already started.
    async fn connect(&self) -> Result<Arc<dyn MetaEngine>>;
}
