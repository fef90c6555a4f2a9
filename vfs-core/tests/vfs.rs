//! End-to-end tests of the VFS on an in-memory engine and block store.

// Test code unwraps: a failure is a panic with the error printed.
#![allow(clippy::unwrap_used)]

/// Expands each `async fn name(engine: Engine) { … }` into one `#[tokio::test]` per metadata
/// engine (`on_model::name`, `on_sqlite::name`), so every scenario runs on the reference
/// model and on SQLite.
macro_rules! engine_tests {
    ($(async fn $name:ident($engine:ident: Engine) $body:block)*) => {
        mod on_model {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let $engine = Engine::Model;
                    $body
                }
            )*
        }
        mod on_sqlite {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let $engine = Engine::Sqlite;
                    $body
                }
            )*
        }
    };
}

#[path = "vfs/support.rs"]
mod support;

#[path = "vfs/compaction.rs"]
mod compaction;
#[path = "vfs/data.rs"]
mod data;
#[path = "vfs/delete.rs"]
mod delete;
#[path = "vfs/faults.rs"]
mod faults;
#[path = "vfs/meta_cache.rs"]
mod meta_cache;
#[path = "vfs/model.rs"]
mod model;
#[path = "vfs/namespace.rs"]
mod namespace;
#[path = "vfs/quota.rs"]
mod quota;
#[path = "vfs/sessions.rs"]
mod sessions;
#[path = "vfs/trash.rs"]
mod trash;
#[path = "vfs/upkeep.rs"]
mod upkeep;
