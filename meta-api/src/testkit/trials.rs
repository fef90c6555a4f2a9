//! One test per conformance case: a [libtest-mimic] harness that an engine's test binary
//! (`harness = false`) hands its [`Harness`]es to, so that `cargo test` and `cargo nextest`
//! list, run, filter and report every case of every backend on its own.
//!
//! ```ignore
//! // tests/conformance.rs, with `[[test]] name = "conformance" harness = false`
//! fn main() {
//!     meta_api::testkit::Conformance::new()
//!         .cases("memory", || Box::new(MyHarness::new()))
//!         .model("memory::model", || Box::new(MyHarness::new()), DEFAULT_MODEL_CASES)
//!         .run()
//! }
//! ```
//!
//! Tests are named `{prefix}::{topic}::{case}` (`memory::rename::noreplace`), so
//! `cargo nextest run -E 'test(rename::)'` runs just the rename cases. A backend whose
//! service is missing outside CI adds its trials with [`Conformance::ignored_because`]:
//! they are listed as ignored, never passed silently. `TESTKIT_ONLY=<substring>` keeps only
//! the cases whose names contain it and fails when none does.
//!
//! [libtest-mimic]: https://docs.rs/libtest-mimic

use std::sync::Arc;
use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};

use super::{cases, run_case, run_model_test, Harness};

/// Makes a fresh harness for one trial (each trial runs on a runtime of its own).
pub type MakeHarness = Arc<dyn Fn() -> Box<dyn Harness> + Send + Sync>;

/// The trials of one test binary: conformance cases, model tests and extra tests.
pub struct Conformance {
    trials: Vec<Trial>,
    ignored: Option<String>,
    only: Option<String>,
}

impl Default for Conformance {
    fn default() -> Self {
        Conformance::new()
    }
}

impl Conformance {
    /// No trials yet.
    pub fn new() -> Conformance {
        Conformance {
            trials: Vec::new(),
            ignored: None,
            only: std::env::var("TESTKIT_ONLY").ok().filter(|s| !s.is_empty()),
        }
    }

    /// Trials added from now on are listed as ignored, with `why` printed once (a service
    /// the backend needs is missing and `CI` is not set).
    pub fn ignored_because(mut self, why: impl Into<String>) -> Conformance {
        let why = why.into();
        eprintln!("conformance trials ignored: {why}");
        self.ignored = Some(why);
        self
    }

    /// Every conformance case as a trial `{prefix}::{case}` on volumes of `make()`.
    pub fn cases<F>(mut self, prefix: &str, make: F) -> Conformance
    where
        F: Fn() -> Box<dyn Harness> + Send + Sync + 'static,
    {
        let make: MakeHarness = Arc::new(make);
        for case in cases::all() {
            if let Some(only) = &self.only {
                if !case.name.contains(only.as_str()) {
                    continue;
                }
            }
            let make = make.clone();
            let trial = Trial::test(format!("{prefix}::{}", case.name), move || {
                let h = make();
                runtime()?
                    .block_on(run_case(h.as_ref(), &case))
                    .map_err(Failed::from)
            });
            self.push(trial);
        }
        self
    }

    /// The model-based property test as one trial `name`, with `sequences` random
    /// operation sequences (after the kept regressions).
    pub fn model<F>(mut self, name: &str, make: F, sequences: u32) -> Conformance
    where
        F: Fn() -> Box<dyn Harness> + Send + Sync + 'static,
    {
        if self.only.is_some() {
            return self;
        }
        let trial = Trial::test(name.to_string(), move || {
            let h = make();
            runtime()?.block_on(run_model_test(h.as_ref(), sequences));
            Ok(())
        });
        self.push(trial);
        self
    }

    /// Any other test of the binary, run on a runtime of its own.
    pub fn test<F, Fut>(self, name: &str, f: F) -> Conformance
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()>,
    {
        self.async_trial(name, f, false)
    }

    /// A trial listed as ignored unless `--ignored` or `--include-ignored` is given (soak
    /// runs).
    pub fn soak<F, Fut>(self, name: &str, f: F) -> Conformance
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()>,
    {
        self.async_trial(name, f, true)
    }

    fn async_trial<F, Fut>(mut self, name: &str, f: F, soak: bool) -> Conformance
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()>,
    {
        if self.only.is_some() {
            return self;
        }
        let trial = Trial::test(name.to_string(), move || {
            runtime()?.block_on(f());
            Ok(())
        });
        if soak {
            self.trials.push(trial.with_ignored_flag(true));
        } else {
            self.push(trial);
        }
        self
    }

    fn push(&mut self, trial: Trial) {
        let ignored = self.ignored.is_some();
        self.trials.push(trial.with_ignored_flag(ignored));
    }

    /// The names of the trials so far.
    pub fn names(&self) -> Vec<String> {
        self.trials.iter().map(|t| t.name().to_string()).collect()
    }

    /// Runs the trials as libtest would (arguments from the command line) and exits.
    pub fn run(self) -> ! {
        if let Some(only) = &self.only {
            if self.trials.is_empty() {
                eprintln!("TESTKIT_ONLY={only:?} matches no conformance case");
                std::process::exit(101);
            }
            eprintln!(
                "TESTKIT_ONLY={only:?}: {} of the conformance cases; this is not a full run",
                self.trials.len()
            );
        }
        let args = Arguments::from_args();
        libtest_mimic::run(&args, self.trials).exit()
    }
}

/// The runtime of one trial: two workers, as the engines' own tests use, with timers.
fn runtime() -> Result<tokio::runtime::Runtime, Failed> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_keep_alive(Duration::from_secs(1))
        .build()
        .map_err(|e| Failed::from(format!("cannot start a runtime: {e}")))
}
