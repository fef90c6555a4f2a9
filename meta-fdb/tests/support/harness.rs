//! Shared by the integration tests: testkit harnesses over the engine's stores.

#![allow(dead_code)]

use std::sync::Arc;

use async_trait::async_trait;
use meta_api::testkit::{Harness, TestVolume};
use meta_api::{Format, MetaEngine, Result, SessionInfo};
use meta_fdb::{MemKv, TkvMeta};

/// Every test volume lives under this prefix, as an `fdb://…?prefix=tk` volume would.
pub const PREFIX: &[u8] = b"tk\xfd";

pub fn session_info() -> SessionInfo {
    SessionInfo {
        version: "meta-fdb-test".into(),
        host_name: "localhost".into(),
        mount_point: "/test".into(),
        process_id: std::process::id(),
    }
}

pub fn format(name: &str) -> Format {
    Format::new(name, &format!("uuid-{name}"), "file", "/tmp/meta-fdb-test/")
}

/// The testkit harness over [`MemKv`]: each volume is a store of its own.
pub struct MemHarness;

pub struct MemVolume {
    kv: MemKv,
}

impl MemVolume {
    /// A client of this volume with a session.
    pub async fn client(&self) -> Result<Arc<TkvMeta<MemKv>>> {
        let m = TkvMeta::new(self.kv.clone(), PREFIX);
        m.new_session(&session_info()).await?;
        Ok(Arc::new(m))
    }
}

/// A new formatted in-process volume.
pub async fn mem_volume() -> Result<MemVolume> {
    let kv = MemKv::new();
    TkvMeta::new(kv.clone(), PREFIX)
        .init(&format("tk"), false)
        .await?;
    Ok(MemVolume { kv })
}

#[async_trait]
impl Harness for MemHarness {
    async fn new_volume(&self) -> Result<Box<dyn TestVolume>> {
        Ok(Box::new(mem_volume().await?))
    }

    async fn unformatted_client(&self) -> Result<Arc<dyn MetaEngine>> {
        Ok(Arc::new(TkvMeta::new(MemKv::new(), PREFIX)))
    }
}

/// [`MemHarness`] with every third commit ending with an unknown outcome (alternately
/// applied and not), as FoundationDB's `commit_unknown_result`.
pub struct UnknownCommitsHarness;

/// Commits per injected unknown outcome.
pub const UNKNOWN_EVERY: u64 = 3;

#[async_trait]
impl Harness for UnknownCommitsHarness {
    async fn new_volume(&self) -> Result<Box<dyn TestVolume>> {
        let v = mem_volume().await?;
        v.kv.inject_unknown_commits(UNKNOWN_EVERY);
        Ok(Box::new(v))
    }

    async fn unformatted_client(&self) -> Result<Arc<dyn MetaEngine>> {
        let kv = MemKv::new();
        kv.inject_unknown_commits(UNKNOWN_EVERY);
        Ok(Arc::new(TkvMeta::new(kv, PREFIX)))
    }
}

#[async_trait]
impl TestVolume for MemVolume {
    async fn connect(&self) -> Result<Arc<dyn MetaEngine>> {
        let m: Arc<dyn MetaEngine> = self.client().await?;
        Ok(m)
    }
}
