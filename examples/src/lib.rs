//! Shared code of the example programs: opening and formatting volumes by metadata URL
//! with clear errors ([`volume`]), and fast, bounded-memory copies between a local
//! directory tree and a volume ([`transfer`]).
//!
//! The programs themselves are `src/bin/quickstart.rs` (a tour of
//! [`vfs_core::FileSystem`] on the embedded default: SQLite + a local directory) and
//! `src/bin/tessera.rs` (the admin CLI: `format`, `info`, `ls`, `cat`, `put`, `get`,
//! `mkdir`, `rm`, `mv`, and the benchmarks `mdtest` ([`mdtest`]) and `bench` ([`bench`](mod@bench))
//! that run the workloads of JuiceFS's tools of those names). `tessera mount` serves a
//! volume through FUSE with the adapter in [`fuse`].

pub mod bench;
pub mod dump;
pub mod fuse;
pub mod logging;
pub mod mdtest;
pub mod transfer;
pub mod upkeep;
pub mod volume;

use std::io;
use std::path::Path;

/// An error that names the path it happened on, keeping its kind.
pub fn at_path(path: impl AsRef<Path>, e: io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("{}: {}", path.as_ref().display(), plain(&e)),
    )
}

/// The message of an I/O error without the "(os error N)" suffix a user does not need.
pub fn plain(e: &io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) if s.ends_with(')') => s[..i].to_string(),
        _ => s,
    }
}

/// `n` bytes in a human unit (`1.5 MiB`).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_plain() {
        let e = at_path("/x/y", io::Error::from_raw_os_error(libc_enoent()));
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert_eq!(e.to_string(), "/x/y: No such file or directory");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
    }

    fn libc_enoent() -> i32 {
        2
    }
}
