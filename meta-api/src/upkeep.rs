//! What keeps a volume healthy over years: the inventory gc compares with the store, the
//! pending slices whose objects are still to be deleted, the election of volume-wide jobs,
//! and recomputed statistics (fsck).
//!
//! **Pending slices.** A slice whose last reference goes (a purge, a compaction, a
//! truncate's cleanup) keeps its reference record, at zero references, until its objects
//! are deleted: the caller deletes the objects, then calls
//! [`MetaEngine::forget_slice`](crate::MetaEngine::forget_slice). A client that crashes or
//! whose DELETE fails in between leaves the slice pending, and the hourly job elected by
//! [`CLEANUP_SLICES`] deletes it again — an object is never leaked by one failed request.
//! This is JuiceFS's convention (`refs <= 0` rows in `jfs_chunk_ref`, `sliceRef` values
//! `<= -1` on Redis, `K` values `<= -1` on TKV), so juicefs clients see the same pending
//! slices.

use crate::space::Usage;
use crate::{Ino, Slice};

/// The counter that elects the pending-slice cleanup across clients (JuiceFS
/// `nextCleanupSlices`): it holds the Unix time of the last run.
pub const CLEANUP_SLICES: &str = "nextCleanupSlices";
/// How often the pending-slice cleanup runs on a volume (JuiceFS: hourly).
pub const CLEANUP_SLICES_EVERY_SECS: u64 = 3600;

/// The counter that elects the metadata backup among this library's clients (JuiceFS
/// elects it with the root's `lastBackup` attribute only, which is checked too).
pub const BACKUP_META: &str = "lastBackupMeta";

/// The counters [`MetaEngine::claim_job`](crate::MetaEngine::claim_job) may elect with.
pub const JOB_COUNTERS: &[&str] = &[
    CLEANUP_SLICES,
    "lastCleanupFiles",
    "lastCleanupSessions",
    "lastCleanupTrash",
    BACKUP_META,
];

/// Every slice the metadata still references or still has to delete: what gc compares the
/// store's objects with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SliceListing {
    /// Every chunk record with data (holes are left out): the file, the chunk index and
    /// the record.
    pub records: Vec<(Ino, u32, Slice)>,
    /// Slices kept by compaction for the trash (delayed slices), as `(id, size)`.
    pub delayed: Vec<(u64, u32)>,
    /// Pending slices (no reference left, objects maybe not deleted yet), as `(id, size)`.
    pub pending: Vec<(u64, u32)>,
}

/// One directory's statistics (JuiceFS's dir stats): its direct entries only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirStat {
    /// The sum of the lengths of its regular files.
    pub length: i64,
    /// The sum of its entries' space ([`crate::space::align4k`] of a file's length, 4 KiB
    /// for anything else).
    pub space: i64,
    /// How many entries it has.
    pub inodes: i64,
}

impl DirStat {
    /// Counts one entry of type `typ` and `length` bytes (see [`crate::space::entry_usage`]).
    pub fn add_entry(&mut self, typ: crate::FileType, length: u64) {
        let (len, space) = crate::space::entry_usage(typ, length);
        self.length = self.length.saturating_add(len);
        self.space = self.space.saturating_add(space);
        self.inodes += 1;
    }
}

/// Whether a slice reference record holding `extra` references beyond the first (Redis's
/// `sliceRef` and TKV's `K` values: refs − 1, a missing record meaning one reference) makes
/// the slice pending: no reference left.
pub fn is_pending_extra(extra: i64) -> bool {
    extra <= -1
}

/// The directories a change of a hard-linked file counts in — its statistics and quota
/// usage — once per name, from the per-directory name counts an engine keeps (JuiceFS's
/// parent counts: Redis's `p{ino}`, TKV's `P` keys). A count read from storage is
/// bounded by the file's `nlink`, so it never drives more work than the file has links.
pub fn dirs_per_name(parents: impl IntoIterator<Item = (Ino, i64)>, nlink: u32) -> Vec<Ino> {
    let mut out = Vec::new();
    for (dir, names) in parents {
        let names = names.clamp(0, i64::from(nlink)) as usize;
        out.extend(std::iter::repeat_n(dir, names));
    }
    out
}

/// The usage counters before and after [`MetaEngine::recount_usage`](crate::MetaEngine::recount_usage).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recount {
    /// What the counters said.
    pub before: Usage,
    /// What the nodes add up to (now stored).
    pub after: Usage,
}
