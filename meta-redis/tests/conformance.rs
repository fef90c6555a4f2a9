//! The meta-api conformance suite and the reference-model property test, on Redis.

#[path = "support/harness.rs"]
mod harness;

use harness::{redis_url, RedisHarness};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let Some(url) = redis_url("conformance") else {
        return;
    };
    meta_api::testkit::run_all(&RedisHarness { url }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model() {
    let Some(url) = redis_url("model") else {
        return;
    };
    meta_api::testkit::run_model_test(
        &RedisHarness { url },
        meta_api::testkit::DEFAULT_MODEL_CASES,
    )
    .await;
}
