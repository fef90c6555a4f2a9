//! Space accounting: what a file counts for, the volume's capacity and inode limits, and
//! the one `statfs` formula every engine reports (JuiceFS's `statRootFs`).

use crate::{Format, MetaError, Result, StatFs};

/// Capacity reported for a volume without a capacity limit: 1 PiB, doubled while more than
/// 80% of it is used.
pub const UNLIMITED_SPACE: u64 = 1 << 50;
/// Inodes reported as available without an inode limit: 10 Mi, doubled while more than 80%
/// of used + available are used.
pub const UNLIMITED_INODES: u64 = 10 << 20;

/// The space JuiceFS accounts for a file of `len` bytes (and for every other inode, with
/// `len` 0): rounded up to 4 KiB, at least 4 KiB.
pub fn align4k(len: u64) -> i64 {
    if len == 0 {
        4096
    } else {
        i64::try_from((((len - 1) >> 12) + 1).saturating_mul(4096)).unwrap_or(i64::MAX)
    }
}

/// What an entry adds to its directory's statistics, as `(data length, space)`: a regular
/// file its length and [`align4k`] of it, anything else 4 KiB (JuiceFS's dir stats).
pub fn entry_usage(typ: crate::FileType, length: u64) -> (i64, i64) {
    if typ == crate::FileType::Regular {
        (i64::try_from(length).unwrap_or(i64::MAX), align4k(length))
    } else {
        (0, align4k(0))
    }
}

/// The volume's usage counters (`usedSpace`, `totalInodes`) as an engine stores them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes in use (the sum of [`align4k`] over all inodes but the root and the trash).
    pub space: i64,
    /// Inodes in use (the root and the trash directory do not count).
    pub inodes: i64,
}

impl Usage {
    /// Counts node `ino` of `length` bytes, as the counters do: [`align4k`] of its length
    /// and one inode, except the root and the trash directory, which never count.
    pub fn add_node(&mut self, ino: crate::Ino, length: u64) {
        if ino != crate::ROOT_INO && ino != crate::TRASH_INO {
            self.space = self.space.saturating_add(align4k(length));
            self.inodes += 1;
        }
    }
}

impl StatFs {
    /// What `statfs` reports for a volume with settings `format` and counters `usage`,
    /// exactly as JuiceFS computes it: a capacity limit is the total (or the usage, when
    /// the volume is over it); an unlimited volume reports [`UNLIMITED_SPACE`] doubled
    /// until at most 80% is used; likewise the inodes.
    pub fn of(format: &Format, usage: Usage) -> StatFs {
        let used = usage.space.max(0) as u64;
        let total_space = if format.capacity > 0 {
            format.capacity.max(used)
        } else {
            let mut t = UNLIMITED_SPACE;
            while t.saturating_mul(8) < used.saturating_mul(10) {
                if t >= u64::MAX >> 1 {
                    t = u64::MAX;
                    break;
                }
                t <<= 1;
            }
            t
        };
        let used_inodes = usage.inodes.max(0) as u64;
        let avail_inodes = if format.inodes > 0 {
            format.inodes.saturating_sub(used_inodes)
        } else {
            let mut a = UNLIMITED_INODES;
            while used_inodes > a.saturating_mul(4) && a < u64::MAX >> 1 {
                a <<= 1;
            }
            a
        };
        StatFs {
            total_space,
            avail_space: total_space - used,
            used_inodes,
            avail_inodes,
        }
    }
}

/// A volume's capacity and inode limits with its usage as read before a transaction.
///
/// Engines check limits like JuiceFS does: against counters read before the transaction,
/// so that concurrent writers do not conflict on the counters (the limit may be passed by
/// what other clients commit meanwhile, never by one client's own writes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Capacity in bytes (0: none).
    pub capacity: u64,
    /// Inode limit (0: none).
    pub max_inodes: u64,
    /// Usage read before the transaction.
    pub usage: Usage,
}

impl Limits {
    /// The limits of `format` with `usage`; `None` when the volume has no limit (so that
    /// engines need not read the counters at all).
    pub fn of(format: &Format, usage: Usage) -> Option<Limits> {
        Limits::needed(format).then_some(Limits {
            capacity: format.capacity,
            max_inodes: format.inodes,
            usage,
        })
    }

    /// Whether `format` sets a limit (the counters need reading before a change).
    pub fn needed(format: &Format) -> bool {
        format.capacity > 0 || format.inodes > 0
    }

    /// Fails with `NoSpace` if adding `space` bytes and `inodes` inodes passes a limit.
    /// Releasing space or inodes (negative deltas) never fails.
    pub fn check(limits: Option<&Limits>, space: i64, inodes: i64) -> Result<()> {
        let Some(l) = limits else { return Ok(()) };
        let cap = i64::try_from(l.capacity).unwrap_or(i64::MAX);
        if l.capacity > 0 && space > 0 && l.usage.space.saturating_add(space) > cap {
            return Err(MetaError::NoSpace);
        }
        let max = i64::try_from(l.max_inodes).unwrap_or(i64::MAX);
        if l.max_inodes > 0 && inodes > 0 && l.usage.inodes.saturating_add(inodes) > max {
            return Err(MetaError::NoSpace);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(capacity: u64, inodes: u64) -> Format {
        let mut f = Format::new("v", "u", "mem", "");
        f.capacity = capacity;
        f.inodes = inodes;
        f
    }

    #[test]
    fn align4k_matches_juicefs() {
        assert_eq!(align4k(0), 4096);
        assert_eq!(align4k(1), 4096);
        assert_eq!(align4k(4096), 4096);
        assert_eq!(align4k(4097), 8192);
        assert_eq!(align4k(u64::MAX), i64::MAX);
    }

    #[test]
    fn statfs_formula() {
        let u = |space, inodes| Usage { space, inodes };
        let s = StatFs::of(&fmt(0, 0), u(4096, 3));
        assert_eq!(s.total_space, 1 << 50);
        assert_eq!(s.avail_space, (1 << 50) - 4096);
        assert_eq!((s.used_inodes, s.avail_inodes), (3, 10 << 20));
        // Over 80% of 1 PiB: doubled.
        let s = StatFs::of(&fmt(0, 0), u(9 << 47, 0));
        assert_eq!(s.total_space, 1 << 51);
        // Over 4 x 10 Mi inodes: doubled.
        let s = StatFs::of(&fmt(0, 0), u(0, (40 << 20) + 1));
        assert_eq!(s.avail_inodes, 20 << 20);
        // A capacity is the total, or the usage when over it.
        assert_eq!(StatFs::of(&fmt(8192, 5), u(4096, 2)).total_space, 8192);
        let over = StatFs::of(&fmt(8192, 5), u(12288, 7));
        assert_eq!((over.total_space, over.avail_space), (12288, 0));
        assert_eq!(over.avail_inodes, 0);
        // Negative counters (a crash between decrements) read as zero.
        assert_eq!(StatFs::of(&fmt(0, 0), u(-5, -1)).used_inodes, 0);
    }

    #[test]
    fn limits() {
        let l = Limits::of(
            &fmt(8192, 2),
            Usage {
                space: 4096,
                inodes: 1,
            },
        );
        assert!(Limits::check(l.as_ref(), 4096, 1).is_ok());
        assert!(matches!(
            Limits::check(l.as_ref(), 4097, 0),
            Err(MetaError::NoSpace)
        ));
        assert!(matches!(
            Limits::check(l.as_ref(), 0, 2),
            Err(MetaError::NoSpace)
        ));
        assert!(Limits::check(l.as_ref(), -100, -1).is_ok());
        assert!(Limits::of(&fmt(0, 0), Usage::default()).is_none());
        assert!(Limits::check(None, i64::MAX, 9).is_ok());
    }
}
