//! The reference model runs the conformance suite (one test per case) and the property
//! test against itself.

use meta_api::testkit::{Conformance, ModelHarness, DEFAULT_MODEL_CASES};

fn main() {
    Conformance::new()
        .cases("model", || Box::new(ModelHarness::new()))
        // A smoke test of the property-test machinery: generation, id mapping, comparison.
        .model(
            "model::agrees_with_itself",
            || Box::new(ModelHarness::new()),
            DEFAULT_MODEL_CASES,
        )
        .test("the_suite_is_large_and_names_are_unique", || async {
            let names = meta_api::testkit::case_names();
            assert!(names.len() >= 185, "only {} cases", names.len());
            let mut sorted = names.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), names.len(), "duplicate case names");
        })
        .run()
}
