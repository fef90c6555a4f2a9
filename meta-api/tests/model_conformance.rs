//! The reference model runs the conformance suite and the property test against itself.

use meta_api::testkit::{run_all, run_model_test, ModelHarness, DEFAULT_MODEL_CASES};

#[tokio::test]
async fn model_passes_the_conformance_suite() {
    run_all(&ModelHarness::new()).await;
}

#[tokio::test]
async fn model_agrees_with_itself() {
    // A smoke test of the property-test machinery: generation, id mapping, comparison.
    run_model_test(&ModelHarness::new(), DEFAULT_MODEL_CASES).await;
}

#[test]
fn the_suite_is_large_and_names_are_unique() {
    let names = meta_api::testkit::case_names();
    assert!(names.len() >= 90, "only {} cases", names.len());
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len(), "duplicate case names");
}
