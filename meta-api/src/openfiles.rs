//! Per-client bookkeeping of open files, used by engines to decide when an unlinked
//! inode's data may go.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::Ino;

/// How many times this client has each inode open. Every engine keeps one per client:
/// unlinking an inode this client has open makes the session sustain it; the last
/// close lets it go.
#[derive(Debug, Default)]
pub struct OpenFiles {
    counts: Mutex<HashMap<Ino, u32>>,
}

impl OpenFiles {
    /// An empty table.
    pub fn new() -> OpenFiles {
        OpenFiles::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Ino, u32>> {
        // A poisoned lock only means another thread panicked while counting; the map is
        // still consistent because every critical section is a single insert/remove.
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records one more open of `ino`.
    pub fn open(&self, ino: Ino) {
        *self.lock().entry(ino).or_insert(0) += 1;
    }

    /// Records one close of `ino`; returns `true` when it was the last open handle.
    /// Closing an inode that is not open returns `true` (nothing keeps it).
    pub fn close(&self, ino: Ino) -> bool {
        let mut m = self.lock();
        match m.get_mut(&ino) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                m.remove(&ino);
                true
            }
            None => true,
        }
    }

    /// Whether this client has `ino` open.
    pub fn is_open(&self, ino: Ino) -> bool {
        self.lock().contains_key(&ino)
    }

    /// Forgets everything (session closed).
    pub fn clear(&self) {
        self.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        let o = OpenFiles::new();
        o.open(5);
        o.open(5);
        assert!(!o.close(5));
        assert!(o.is_open(5));
        assert!(o.close(5));
        assert!(!o.is_open(5));
        assert!(o.close(5));
    }
}
