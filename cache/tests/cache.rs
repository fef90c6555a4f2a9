//! Integration tests of `Cached`: read-through, integrity, failures, eviction, writeback.

// Test helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

#[path = "cache/support.rs"]
mod support;

#[path = "cache/readthrough.rs"]
mod readthrough;

#[path = "cache/writeback.rs"]
mod writeback;
