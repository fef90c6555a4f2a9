//! Shared by the integration tests: where the test server is, and a testkit harness
//! that gives every volume its own key prefix in the server's database.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use meta_api::testkit::{Harness, TestVolume};
use meta_api::{Format, MetaEngine, Result, SessionInfo};
use meta_redis::{RedisMeta, RedisOptions};

/// The test server's URL from `REDIS_URL`. Without it the test fails under CI and is
/// skipped loudly elsewhere ([`tessera_testenv`]'s rule).
pub fn redis_url(test: &str) -> Option<String> {
    tessera_testenv::env(
        "REDIS_URL",
        &format!("{test}: CI starts a redis-server, e.g. redis://127.0.0.1:16390/"),
    )
}

/// A prefix no other test (nor an earlier run) uses.
pub fn unique_prefix(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{{{tag}-{}-{nanos}-{}}}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn session_info() -> SessionInfo {
    SessionInfo {
        version: "meta-redis-test".into(),
        host_name: "localhost".into(),
        mount_point: "/test".into(),
        process_id: std::process::id(),
    }
}

/// Volume settings as `juicefs format` makes them by default (directory statistics on).
pub fn format(name: &str) -> Format {
    let mut f = Format::new(
        name,
        &format!("uuid-{name}"),
        "file",
        "/tmp/meta-redis-test/",
    );
    f.dir_stats = true;
    f
}

/// Connects a client of the volume at `url` under `prefix`, with a session.
pub async fn connect(url: &str, prefix: &str) -> Result<Arc<RedisMeta>> {
    let m = RedisMeta::open_with(url, RedisOptions::default().key_prefix(prefix)).await?;
    m.new_session(&session_info()).await?;
    Ok(Arc::new(m))
}

/// The testkit harness: each volume is a fresh key prefix.
pub struct RedisHarness {
    pub url: String,
}

pub struct RedisVolume {
    url: String,
    prefix: String,
}

#[async_trait]
impl Harness for RedisHarness {
    async fn new_volume(&self) -> Result<Box<dyn TestVolume>> {
        let prefix = unique_prefix("tk");
        let m =
            RedisMeta::open_with(&self.url, RedisOptions::default().key_prefix(&prefix)).await?;
        m.init(&format(&prefix), false).await?;
        Ok(Box::new(RedisVolume {
            url: self.url.clone(),
            prefix,
        }))
    }

    async fn unformatted_client(&self) -> Result<Arc<dyn MetaEngine>> {
        let prefix = unique_prefix("tku");
        let m =
            RedisMeta::open_with(&self.url, RedisOptions::default().key_prefix(&prefix)).await?;
        Ok(Arc::new(m))
    }
}

#[async_trait]
impl TestVolume for RedisVolume {
    async fn connect(&self) -> Result<Arc<dyn MetaEngine>> {
        let m: Arc<dyn MetaEngine> = connect(&self.url, &self.prefix).await?;
        Ok(m)
    }
}
