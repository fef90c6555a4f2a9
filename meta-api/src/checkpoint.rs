//! Checkpoints of a whole volume: the rules every engine shares. The checkpoint itself
//! (where it is kept, how it is made and restored) is `vfs_core::checkpoint`'s.
//!
//! # Design
//!
//! A checkpoint is the volume's metadata at one moment — a dump in JuiceFS's format
//! ([`crate::dump`]) — kept in the volume's own bucket with the list of the slices it
//! refers to. Making one and restoring one move metadata only: blocks are immutable and
//! named by slice id, so the blocks a checkpoint needs are the blocks the volume had.
//!
//! - **No byte lost**: while a checkpoint exists, each slice it lists holds one reference
//!   more ([`MetaEngine::hold_slices`](crate::MetaEngine::hold_slices)), in the same records purge, compaction and
//!   `copy_file_range` count in. A file deleted or rewritten after the checkpoint frees its
//!   slices' references, never the checkpoint's, so no engine and no client (JuiceFS's
//!   included) deletes those objects. Deleting the checkpoint gives its references back;
//!   the slices left with none become pending and their objects are deleted as any freed
//!   slice's. A slice the checkpoint lists must still be referenced by the volume once its
//!   hold is taken — else the volume changed under the dump and the checkpoint is refused.
//! - **Ids never reused**: a restore keeps the engine's counters ([`MetaEngine::wipe`](crate::MetaEngine::wipe)
//!   leaves them) and never lowers one ([`crate::dump::load_restoring`]), so an inode number
//!   or slice id handed out before a restore is never handed out again; the block cache,
//!   keyed by slice id, stays valid across restores.
//! - **A restore is redone, never half-seen**: it first writes [`RESTORE_MARKER`] into the
//!   volume's setting, then wipes the engine, loads the checkpoint with the holds of every
//!   checkpoint written beside its references, and clears the marker last. A client refuses to open a volume with
//!   the marker ([`check_not_restoring`]); a restore killed half-way is run again from the
//!   start. Engines accept a load into a wiped engine whose setting has the marker.
//! - **Other clients are fenced**: a restore refuses to start while another client has a
//!   live session (`EBUSY`); the marker keeps new clients out while it runs. A client
//!   whose session had expired (it was stopped, or cut off) finds it gone at its next
//!   heartbeat or lock ([`Heartbeat::Reregistered`](crate::Heartbeat::Reregistered),
//!   [`MetaError::SessionLost`]): a VFS then fails every handle it had with `EIO` and drops
//!   its metadata cache. Until then — at most one heartbeat interval after it runs again —
//!   it may still read through its handles, and the block cache it reads from stays
//!   valid because ids are never reused.

use crate::{Format, MetaError, Result};

/// The setting's extra field a checkpoint restore in progress writes: the checkpoint's
/// name. JuiceFS keeps unknown fields of the setting as they are.
pub const RESTORE_MARKER: &str = "RestoringCheckpoint";

/// The longest checkpoint name.
pub const MAX_NAME: usize = 64;

/// Slices held or released per engine call.
pub const HOLD_PAGE: usize = 1000;

/// The checkpoint a restore in progress is restoring, if `format` carries the marker.
pub fn restoring(format: &Format) -> Option<&str> {
    format.extra.get(RESTORE_MARKER).and_then(|v| v.as_str())
}

/// Refuses to open a volume a checkpoint restore is rewriting (or was rewriting when it
/// was killed): a precise error naming the checkpoint and how to finish.
pub fn check_not_restoring(format: &Format) -> Result<()> {
    match restoring(format) {
        None => Ok(()),
        Some(name) => Err(MetaError::Busy(format!(
            "the restore of checkpoint {name:?} did not finish: run the restore again \
             (tessera checkpoint restore META {name})"
        ))),
    }
}

/// `format` with the marker of a restore of checkpoint `name`.
pub fn with_marker(format: &Format, name: &str) -> Format {
    let mut f = format.clone();
    f.extra.insert(
        RESTORE_MARKER.into(),
        serde_json::Value::String(name.into()),
    );
    f
}

/// `format` without a restore's marker.
pub fn without_marker(format: &Format) -> Format {
    let mut f = format.clone();
    f.extra.remove(RESTORE_MARKER);
    f
}

/// Whether a load may write into an engine whose stored setting is `stored` (JSON): only
/// into one with none, or into a wiped one a restore marked.
pub fn load_may_write(stored: Option<&str>) -> Result<()> {
    match stored {
        None => Ok(()),
        Some(json) => match Format::from_json(json) {
            Ok(f) if restoring(&f).is_some() => Ok(()),
            _ => Err(MetaError::Exists),
        },
    }
}

/// Checks a checkpoint name: 1 to [`MAX_NAME`] bytes of letters, digits, `.`, `_` and `-`,
/// not starting with `.` (it names objects in the bucket).
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(MetaError::InvalidArgument(
            "a checkpoint name is 1 to 64 letters, digits, '.', '_' or '-', not starting with '.'",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["a", "before-upgrade", "v1.2_3", &"x".repeat(64)] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in ["", ".hidden", "a/b", "a b", "é", &"x".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_marker_closes_the_volume_and_lets_a_load_in() {
        let f = Format::new("v", "u", "file", "/b/");
        assert!(check_not_restoring(&f).is_ok());
        assert!(load_may_write(None).is_ok());
        assert!(load_may_write(Some(&f.to_json())).is_err());
        let m = with_marker(&f, "c1");
        assert_eq!(restoring(&m), Some("c1"));
        assert!(matches!(check_not_restoring(&m), Err(MetaError::Busy(_))));
        assert!(load_may_write(Some(&m.to_json())).is_ok());
        assert_eq!(without_marker(&m), f);
    }
}
