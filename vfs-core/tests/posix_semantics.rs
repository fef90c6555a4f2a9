//! POSIX and Linux semantics of the VFS, checked on the reference model and on SQLite:
//! timestamps and the atime policy, directory link counts, setuid/setgid clearing, sticky
//! directories, rename edge cases, size and name limits, special files, open flags, and the
//! path-level rules of `O_CREAT`/`O_EXCL`/`O_NOFOLLOW` on symbolic links.

// Test code unwraps: a failure is a panic with the error printed.
#![allow(clippy::unwrap_used)]

/// Expands each `async fn name(engine: Engine) { … }` into one `#[tokio::test]` per metadata
/// engine (`on_model::name`, `on_sqlite::name`).
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

#[allow(dead_code)]
#[path = "vfs/support.rs"]
mod support;

#[path = "posix_semantics/common.rs"]
mod common;
#[path = "posix_semantics/files.rs"]
mod files;
#[path = "posix_semantics/names.rs"]
mod names;
#[path = "posix_semantics/perms.rs"]
mod perms;
#[path = "posix_semantics/rename.rs"]
mod rename;
#[path = "posix_semantics/times.rs"]
mod times;
