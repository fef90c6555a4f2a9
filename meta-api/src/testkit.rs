//! The conformance suite every [`MetaEngine`] runs, and the reference
//! model used by the property tests.
//!
//! A backend provides a [`Harness`] that makes fresh volumes and connects clients to
//! them, then calls [`run_all`] and [`run_model_test`] from `#[tokio::test]`s:
//!
//! ```ignore
//! #[tokio::test]
//! async fn conformance() {
//!     meta_api::testkit::run_all(&MyHarness::new()).await;
//! }
//!
//! #[tokio::test]
//! async fn model() {
//!     meta_api::testkit::run_model_test(&MyHarness::new(), meta_api::testkit::DEFAULT_MODEL_CASES).await;
//! }
//! ```
//!
//! [`run_all`] runs every case of the suite, each against a fresh volume, and panics at the
//! end with the names of all failed cases. A backend cannot skip a case: an engine that
//! answers `NotSupported` (or any unexpected error) fails it. Set `TESTKIT_ONLY=<substring>`
//! to run only the cases whose names contain it while debugging (the run says so loudly).
//!
//! [`run_model_test`] is an `async fn` so that it runs inside the backend's
//! `#[tokio::test]` runtime (current-thread or multi-thread); it starts no runtime of its
//! own, so from a plain `#[test]` build one and `block_on` it. It runs
//! [`DEFAULT_MODEL_CASES`] (64) sequences of up to 48 operations by default, after replaying
//! the kept [`regressions`]; `TESTKIT_SEED=<u64>` fixes the random sequences.
//!
//! The [`model`] module is the reference implementation ([`ModelEngine`], [`ModelHarness`]):
//! one mutex around `BTreeMap`s, obviously correct rather than fast. It passes the suite
//! itself and is the oracle of the property test in [`proptest_model`].
//!
//! # The order errors are checked in
//!
//! When several errors apply to one call, engines report the first of this list that
//! applies, so that the property test can compare them (it is what the model does):
//!
//! 1. invalid arguments: flags, names (`InvalidArgument`/`NameTooLong`), symlink targets,
//!    sizes and offsets (`FileTooBig`), xattr names and values;
//! 2. the inode or parent directory exists (`NotFound`) and is of the right type
//!    (`NotDir`; `NotPermitted` when `link` is given a directory);
//! 3. the caller's permission on the parent directory: search (`X`) for `lookup`, read
//!    for `readdir`, write and search (`W|X`) for everything that changes it — on both
//!    directories for `rename` — or the access mode on the inode itself;
//! 4. the named entry exists (`NotFound`) or, when creating, does not (`Exists`);
//!    for `rename`, `EXCHANGE` needs the target (`NotFound`), `NOREPLACE` refuses it
//!    (`Exists`), and two names of one inode make the rename a successful no-op;
//! 5. a directory moved into its own subtree (`InvalidArgument`);
//! 6. the sticky bit of the directory (`NotPermitted`);
//! 7. the type of the victim: `IsDir`, `NotDir`, `NotEmpty`.
//!
//! One exception, as in Linux (which checks the file descriptors first):
//! `copy_file_range` checks both files (`NotFound`, `IsDir`, access) before its range
//! (`FileTooBig`, then `InvalidArgument` for overlapping ranges of one file).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use async_trait::async_trait;

use crate::{MetaEngine, MetaError, Result};

mod cases;
pub mod corrupt;
pub mod model;
pub mod proptest_model;
pub mod regressions;
pub mod trials;

pub use model::{ModelEngine, ModelHarness};
pub use proptest_model::{replay, run_model_test, run_model_test_seeded, Op, DEFAULT_MODEL_CASES};
pub use trials::Conformance;

/// Makes fresh volumes for the suite.
#[async_trait]
pub trait Harness: Send + Sync {
    /// A new, empty, formatted volume (no other test sees it).
    async fn new_volume(&self) -> Result<Box<dyn TestVolume>>;

    /// A client, without a session, of a new volume that has never been formatted: the
    /// settings cases call `load`, `init` and `new_session` on it. A harness that does not
    /// provide one fails those cases (the default answers `NotSupported`).
    async fn unformatted_client(&self) -> Result<Arc<dyn MetaEngine>> {
        Err(MetaError::NotSupported("Harness::unformatted_client"))
    }
}

/// One formatted volume of a test.
#[async_trait]
pub trait TestVolume: Send + Sync {
    /// A new client of this volume with its own session already started.
    async fn connect(&self) -> Result<Arc<dyn MetaEngine>>;
}

/// How long one case may run before it counts as hung.
const CASE_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs every conformance case against fresh volumes from `h` and panics listing every
/// failed case. Call it from a `#[tokio::test]` (any runtime with timers enabled).
pub async fn run_all(h: &dyn Harness) {
    let only = std::env::var("TESTKIT_ONLY").ok().filter(|s| !s.is_empty());
    let all = cases::all();
    let mut failed: Vec<String> = Vec::new();
    let mut ran = 0usize;
    for case in &all {
        if let Some(filter) = &only {
            if !case.name.contains(filter.as_str()) {
                continue;
            }
        }
        ran += 1;
        if let Err(why) = run_case(h, case).await {
            eprintln!("conformance case {} FAILED: {why}", case.name);
            failed.push(format!("{}: {why}", case.name));
        }
    }
    if let Some(filter) = &only {
        eprintln!(
            "TESTKIT_ONLY={filter:?}: ran {ran} of {} conformance cases; this is not a full run",
            all.len()
        );
    }
    assert!(
        failed.is_empty(),
        "{} of {ran} conformance cases failed:\n  {}",
        failed.len(),
        failed.join("\n  ")
    );
}

/// The names of all conformance cases, in the order [`run_all`] runs them.
pub fn case_names() -> Vec<&'static str> {
    cases::all().iter().map(|c| c.name).collect()
}

/// Runs one case on a fresh volume; `Err` carries why it failed (an assertion's message,
/// an unexpected engine error, or a timeout).
async fn run_case(h: &dyn Harness, case: &cases::Case) -> std::result::Result<(), String> {
    let fx = match cases::Fixture::new(h).await {
        Ok(fx) => fx,
        Err(e) => return Err(format!("could not set up a volume: {e:?}")),
    };
    let fut = async {
        match tokio::time::timeout(CASE_TIMEOUT, (case.run)(&fx)).await {
            Ok(r) => r.map_err(|e| format!("unexpected engine error: {e:?}")),
            Err(_) => Err(format!("timed out after {CASE_TIMEOUT:?}")),
        }
    };
    match (CatchPanic {
        inner: Box::pin(fut),
    })
    .await
    {
        Ok(r) => r,
        Err(msg) => Err(format!("panicked: {msg}")),
    }
}

/// A future that turns a panic while polling `inner` into an `Err` with the panic's
/// message, so that one failing case does not stop the others.
struct CatchPanic<'a, T> {
    inner: Pin<Box<dyn Future<Output = T> + Send + 'a>>,
}

impl<T> Future for CatchPanic<'_, T> {
    type Output = std::result::Result<T, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let inner = self.inner.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(panic_message(payload.as_ref()))),
        }
    }
}

/// The text of a panic payload (`panic!` with a literal or a formatted message).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}
