//! The log output of every program here: the library's `tracing` events, filtered by
//! level and target, to standard error or to a file.
//!
//! What is shown: `--log-level` when given, else `RUST_LOG`, else `warn`. Both take a level
//! (`error`, `warn`, `info`, `debug`, `trace`) or a list of `target=level` pairs with an
//! optional default level (`info,meta_sqlite=debug`), as `tracing`'s `Targets` filter reads
//! them. With `--log FILE` the lines are appended to `FILE` instead of standard error.

use std::io;
use std::path::Path;
use std::str::FromStr;
use std::sync::Mutex;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The level shown when neither `--log-level` nor `RUST_LOG` says.
pub const DEFAULT_LEVEL: &str = "warn";

/// The filter `level` (or `RUST_LOG`, or [`DEFAULT_LEVEL`]) names; `InvalidInput` with the
/// text when it is not one.
pub fn filter(level: Option<&str>) -> io::Result<Targets> {
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let text = level
        .map(str::to_string)
        .or(from_env)
        .unwrap_or_else(|| DEFAULT_LEVEL.to_string());
    let refused = |why: String| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("log level {text:?}: {why} (a level such as warn, or target=level pairs)"),
        )
    };
    // `Targets` reads a bare word that is no level as a target shown at every level; a
    // misspelt level is refused here instead.
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        if !item.contains('=')
            && item
                .parse::<tracing_subscriber::filter::LevelFilter>()
                .is_err()
        {
            return Err(refused(format!("{item:?} is not a level")));
        }
    }
    Targets::from_str(&text).map_err(|e| refused(e.to_string()))
}

/// Installs the process's subscriber: events passing `level` (see the module docs) to
/// standard error, or appended to `file`. Call once, first thing in `main`.
pub fn init(level: Option<&str>, file: Option<&Path>) -> io::Result<()> {
    let targets = filter(level)?;
    let registry = tracing_subscriber::registry().with(targets);
    let done = match file {
        Some(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| crate::at_path(path, e))?;
            registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_ansi(false)
                        .with_writer(Mutex::new(f)),
                )
                .try_init()
        }
        None => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(io::stderr),
            )
            .try_init(),
    };
    done.map_err(|e| io::Error::other(format!("installing the log subscriber: {e}")))
}

/// [`init`] from `RUST_LOG` alone, for the programs without log flags: on a level it
/// cannot read, says so as `program: …` and exits with status 2.
pub fn init_or_exit(program: &str) {
    if let Err(e) = init(None, None) {
        eprintln!("{program}: {}", crate::plain(&e));
        std::process::exit(2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_target_lists_are_read_and_nonsense_is_refused() {
        assert!(filter(Some("info")).is_ok());
        assert!(filter(Some("warn,meta_sqlite=debug")).is_ok());
        let e = filter(Some("loud")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("loud"), "{e}");
    }
}
