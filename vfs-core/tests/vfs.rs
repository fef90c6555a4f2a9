//! End-to-end tests of the VFS on an in-memory engine and block store.

// Test code unwraps: a failure is a panic with the error printed.
#![allow(clippy::unwrap_used)]

#[path = "vfs/support.rs"]
mod support;

#[path = "vfs/data.rs"]
mod data;
#[path = "vfs/delete.rs"]
mod delete;
#[path = "vfs/faults.rs"]
mod faults;
#[path = "vfs/model.rs"]
mod model;
#[path = "vfs/namespace.rs"]
mod namespace;
