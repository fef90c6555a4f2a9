//! The kept regression sequences replay cleanly on the model (every backend replays them
//! too, at the start of `run_model_test`).

use meta_api::testkit::{regressions, replay, ModelHarness};

#[tokio::test]
async fn regressions_replay_on_the_model() {
    let all = regressions::all();
    assert!(!all.is_empty());
    for r in all {
        eprintln!("replaying {:?}", r.name);
        replay(&ModelHarness::new(), &r.ops).await;
    }
}
