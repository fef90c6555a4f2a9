//! Free space of the filesystem holding a cache directory.
//!
//! `statvfs(3)` through `rustix`, whose wrapper is safe: the workspace denies `unsafe_code`,
//! and `rustix` is already built for `tempfile`, so this costs no new dependency tree.

use std::io;
use std::path::Path;

/// Space on one filesystem, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Space {
    /// Bytes an unprivileged writer may still use.
    pub(crate) available: u64,
    /// Size of the filesystem.
    pub(crate) total: u64,
}

/// Space on the filesystem holding `path`.
pub(crate) fn space(path: &Path) -> io::Result<Space> {
    let s = rustix::fs::statvfs(path)?;
    Ok(Space {
        available: s.f_bavail.saturating_mul(s.f_frsize),
        total: s.f_blocks.saturating_mul(s.f_frsize),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_a_plausible_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let s = space(dir.path()).unwrap();
        assert!(s.total > 0);
        assert!(s.available <= s.total);
        assert!(space(&dir.path().join("missing")).is_err());
    }
}
