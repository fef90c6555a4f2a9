//! Conversions between the volume's types and the kernel's (`fuser`'s) types.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{FileAttr, INodeNo, TimeOrNow};
use meta_api::{Attr, FileType, Ino, SetTime, Timestamp};

/// The I/O size `stat` reports: tools such as `cp` read and write in pieces this large,
/// and it matches the largest FUSE write the adapter asks the kernel for.
pub const IO_BLOCK_SIZE: u32 = 1 << 20;

/// The kernel's file type for an inode type.
pub fn file_type(t: FileType) -> fuser::FileType {
    match t {
        FileType::Regular => fuser::FileType::RegularFile,
        FileType::Directory => fuser::FileType::Directory,
        FileType::Symlink => fuser::FileType::Symlink,
        FileType::Fifo => fuser::FileType::NamedPipe,
        FileType::BlockDevice => fuser::FileType::BlockDevice,
        FileType::CharDevice => fuser::FileType::CharDevice,
        FileType::Socket => fuser::FileType::Socket,
    }
}

/// A volume timestamp as a `SystemTime` (times before 1970 included).
pub fn system_time(t: Timestamp) -> SystemTime {
    let nanos = Duration::from_nanos(u64::from(t.nsec.min(999_999_999)));
    if t.sec >= 0 {
        UNIX_EPOCH + Duration::from_secs(t.sec.unsigned_abs()) + nanos
    } else {
        UNIX_EPOCH - Duration::from_secs(t.sec.unsigned_abs()) + nanos
    }
}

/// A `SystemTime` as a volume timestamp (times before 1970 included).
pub fn timestamp(t: SystemTime) -> Timestamp {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Timestamp::new(clamp_secs(d.as_secs()), d.subsec_nanos()),
        Err(e) => {
            // `e.duration()` is how far before the epoch: whole seconds down, nanos up.
            let d = e.duration();
            let secs = -clamp_secs(d.as_secs());
            match d.subsec_nanos() {
                0 => Timestamp::new(secs, 0),
                n => Timestamp::new(secs - 1, 1_000_000_000 - n),
            }
        }
    }
}

fn clamp_secs(s: u64) -> i64 {
    i64::try_from(s).unwrap_or(i64::MAX)
}

/// What the kernel asked a time to be set to.
pub fn set_time(t: TimeOrNow) -> SetTime {
    match t {
        TimeOrNow::Now => SetTime::Now,
        TimeOrNow::SpecificTime(t) => SetTime::At(timestamp(t)),
    }
}

/// The kernel's view of an inode's attributes.
pub fn file_attr(ino: Ino, a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: a.length,
        // Blocks of 512 bytes, as `stat` counts them; what the length would occupy.
        blocks: a.length.div_ceil(512),
        atime: system_time(a.atime),
        mtime: system_time(a.mtime),
        ctime: system_time(a.ctime),
        crtime: system_time(a.ctime),
        kind: file_type(a.typ),
        perm: a.mode & 0o7777,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: IO_BLOCK_SIZE,
        flags: 0,
    }
}

/// The `open(2)` flags the VFS is given: the access mode and the flags that change what
/// a handle does. The kernel also passes its own bits (`__FMODE_EXEC` when a program is
/// executed, `FMODE_NONOTIFY`, …) that no caller set, and the VFS rightly refuses
/// unknown bits.
pub fn open_flags(kernel: i32) -> i32 {
    kernel
        & (libc::O_ACCMODE
            | libc::O_APPEND
            | libc::O_TRUNC
            | libc::O_SYNC
            | libc::O_DSYNC
            | libc::O_DIRECT
            | libc::O_NONBLOCK
            | libc::O_NOATIME
            | libc::O_DIRECTORY
            | libc::O_NOFOLLOW
            | libc::O_CREAT
            | libc::O_EXCL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_around_the_epoch() {
        for t in [
            Timestamp::new(0, 0),
            Timestamp::new(1_700_000_000, 123_456_789),
            Timestamp::new(-1, 500_000_000),
            Timestamp::new(-86_400, 0),
        ] {
            assert_eq!(timestamp(system_time(t)), t, "{t:?}");
        }
        assert_eq!(
            set_time(TimeOrNow::SpecificTime(UNIX_EPOCH + Duration::from_secs(5))),
            SetTime::At(Timestamp::new(5, 0))
        );
        assert_eq!(set_time(TimeOrNow::Now), SetTime::Now);
    }

    #[test]
    fn attributes_map_field_by_field() {
        let mut a = Attr::new(FileType::Regular, 0o4755, 10, 20, Timestamp::new(7, 8));
        a.length = 1025;
        a.nlink = 3;
        let fa = file_attr(42, &a);
        assert_eq!(fa.ino, INodeNo(42));
        assert_eq!(fa.size, 1025);
        assert_eq!(fa.blocks, 3);
        assert_eq!(fa.perm, 0o4755);
        assert_eq!((fa.uid, fa.gid, fa.nlink), (10, 20, 3));
        assert_eq!(fa.kind, fuser::FileType::RegularFile);
        assert_eq!(fa.mtime, UNIX_EPOCH + Duration::new(7, 8));
        assert_eq!(file_type(FileType::Fifo), fuser::FileType::NamedPipe);
    }

    #[test]
    fn kernel_only_open_bits_are_dropped() {
        const FMODE_EXEC: i32 = 0o40;
        assert_eq!(open_flags(libc::O_RDONLY | FMODE_EXEC), libc::O_RDONLY);
        let f = libc::O_WRONLY | libc::O_APPEND | libc::O_SYNC;
        assert_eq!(open_flags(f), f);
    }
}
