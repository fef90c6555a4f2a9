//! The meta-api conformance suite (one test per case) and the reference-model property
//! test, on Redis. Without `REDIS_URL` the trials are listed as ignored; under `CI` a
//! missing server fails the run.

#[path = "support/harness.rs"]
mod harness;

use harness::{redis_url, RedisHarness};
use meta_api::testkit::{Conformance, DEFAULT_MODEL_CASES};

fn main() {
    let mut suite = Conformance::new();
    let url = match redis_url("conformance") {
        Some(url) => url,
        None => {
            suite = suite.ignored_because("REDIS_URL is not set");
            String::new()
        }
    };
    let (a, b) = (url.clone(), url);
    suite
        .cases("redis", move || Box::new(RedisHarness { url: a.clone() }))
        .model(
            "redis::model",
            move || Box::new(RedisHarness { url: b.clone() }),
            DEFAULT_MODEL_CASES,
        )
        .run()
}
