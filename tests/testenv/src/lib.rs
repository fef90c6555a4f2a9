//! The one rule every test of the workspace uses when something it needs is missing — a
//! service (`REDIS_URL`, `S3_ENDPOINT`), a tool (`juicefs`, `redis-server`), FUSE: under
//! CI the test **fails**; elsewhere it is skipped with a loud `SKIP` line on stderr.
//!
//! "Under CI" means the variable `CI` is set to anything but the empty string, `0` or
//! `false` (so `CI=0 cargo test` runs as a developer's machine does). `.ci/run` and
//! `scripts/test-all.sh` set `CI=1`.

/// Whether the tests run under CI, where anything missing is a failure.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| means_ci(&v))
}

/// Whether `CI` set to `value` means CI.
fn means_ci(value: &std::ffi::OsStr) -> bool {
    !value.is_empty() && value != "0" && !value.eq_ignore_ascii_case("false")
}

/// Reports that `what` is missing (a sentence naming it and how to provide it): panics
/// under CI, prints `SKIP: {what}` otherwise. Returns `None`, for
/// `let Some(x) = … else { return missing(…) }` chains.
#[track_caller]
pub fn missing<T>(what: &str) -> Option<T> {
    assert!(!in_ci(), "{what}, and CI is set: this test must run in CI");
    // Straight to the process's stderr, past the test harness's capture, so that a
    // skipped test shows in a normal run.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "\n*** SKIP: {what} ***\n");
    None
}

/// The value of environment variable `var` when it is set and not empty; otherwise
/// [`missing`] with `hint` (how to set it).
#[track_caller]
pub fn env(var: &str, hint: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => missing(&format!("{var} is not set ({hint})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_counts_as_ci() {
        // On values: the environment is shared by every test thread.
        for yes in ["1", "true", "yes", "github"] {
            assert!(means_ci(yes.as_ref()), "{yes}");
        }
        for no in ["", "0", "false", "FALSE"] {
            assert!(!means_ci(no.as_ref()), "{no}");
        }
    }
}
