//! The meta-api conformance suite (one test per case) and the reference-model property
//! test, on the in-process store: as it is, and with every third commit's outcome unknown.

#[path = "support/harness.rs"]
mod harness;

use harness::{MemHarness, UnknownCommitsHarness};
use meta_api::testkit::{run_model_test, Conformance, DEFAULT_MODEL_CASES};

fn main() {
    Conformance::new()
        .cases("mem", || Box::new(MemHarness))
        .model("mem::model", || Box::new(MemHarness), DEFAULT_MODEL_CASES)
        // Every case again with every third commit's outcome unknown: no operation may
        // apply twice or answer for a change it made itself (commit markers).
        .cases("unknown", || Box::new(UnknownCommitsHarness))
        .model(
            "unknown::model",
            || Box::new(UnknownCommitsHarness),
            DEFAULT_MODEL_CASES,
        )
        // A longer run of the property test:
        // `cargo test -p meta-fdb --test conformance -- --ignored`.
        .soak("mem::model_many_cases", || async {
            run_model_test(&MemHarness, 3000).await;
        })
        .run()
}
