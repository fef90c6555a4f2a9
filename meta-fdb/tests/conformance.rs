//! The meta-api conformance suite and the reference-model property test, on the
//! in-process store.

#[path = "support/harness.rs"]
mod harness;

use harness::MemHarness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    meta_api::testkit::run_all(&MemHarness).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model() {
    meta_api::testkit::run_model_test(&MemHarness, meta_api::testkit::DEFAULT_MODEL_CASES).await;
}

/// A longer run of the property test (`cargo test -p meta-fdb --test conformance -- --ignored`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak run: thousands of random sequences"]
async fn model_many_cases() {
    meta_api::testkit::run_model_test(&MemHarness, 3000).await;
}
