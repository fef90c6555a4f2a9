//! [`Metadata`], [`FileType`] and [`Permissions`]: what `stat(2)` tells, shaped like
//! `std::fs`.

use std::io;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use meta_api::{Attr, Ino, Timestamp};

/// The type of a file, as [`std::fs::FileType`] tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileType(meta_api::FileType);

impl FileType {
    /// Wraps the engine's file type.
    pub fn new(kind: meta_api::FileType) -> FileType {
        FileType(kind)
    }

    /// The engine's file type.
    pub fn kind(self) -> meta_api::FileType {
        self.0
    }

    /// Whether this is a directory.
    pub fn is_dir(self) -> bool {
        self.0 == meta_api::FileType::Directory
    }

    /// Whether this is a regular file.
    pub fn is_file(self) -> bool {
        self.0 == meta_api::FileType::Regular
    }

    /// Whether this is a symbolic link.
    pub fn is_symlink(self) -> bool {
        self.0 == meta_api::FileType::Symlink
    }

    /// Whether this is a named pipe.
    pub fn is_fifo(self) -> bool {
        self.0 == meta_api::FileType::Fifo
    }

    /// Whether this is a block device.
    pub fn is_block_device(self) -> bool {
        self.0 == meta_api::FileType::BlockDevice
    }

    /// Whether this is a character device.
    pub fn is_char_device(self) -> bool {
        self.0 == meta_api::FileType::CharDevice
    }

    /// Whether this is a Unix socket.
    pub fn is_socket(self) -> bool {
        self.0 == meta_api::FileType::Socket
    }
}

/// The permission bits of a file (`0o7777`: rwx for owner, group and others, plus setuid,
/// setgid and sticky), as [`std::fs::Permissions`] with `PermissionsExt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Permissions {
    mode: u32,
}

impl Permissions {
    /// Permissions with these bits (type bits, if any, are dropped).
    pub fn from_mode(mode: u32) -> Permissions {
        Permissions {
            mode: mode & 0o7777,
        }
    }

    /// The permission bits.
    pub fn mode(&self) -> u32 {
        self.mode
    }

    /// Replaces the permission bits.
    pub fn set_mode(&mut self, mode: u32) {
        self.mode = mode & 0o7777;
    }

    /// Whether no one may write (no `w` bit at all).
    pub fn readonly(&self) -> bool {
        self.mode & 0o222 == 0
    }

    /// Clears every `w` bit, or sets the owner's `w` bit, as `std` does.
    pub fn set_readonly(&mut self, readonly: bool) {
        if readonly {
            self.mode &= !0o222;
        } else {
            self.mode |= 0o200;
        }
    }
}

/// The attributes of a file: what `stat(2)` returns, as [`std::fs::Metadata`] with
/// `MetadataExt` tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    ino: Ino,
    attr: Attr,
}

/// A volume timestamp as a [`SystemTime`] (times before 1970 included).
fn system_time(t: Timestamp) -> SystemTime {
    let nanos = Duration::from_nanos(u64::from(t.nsec));
    if t.sec >= 0 {
        UNIX_EPOCH + Duration::from_secs(t.sec.unsigned_abs()) + nanos
    } else {
        UNIX_EPOCH - Duration::from_secs(t.sec.unsigned_abs()) + nanos
    }
}

/// A [`SystemTime`] as a volume timestamp (`EINVAL` if it does not fit).
pub(crate) fn timestamp(t: SystemTime) -> io::Result<Timestamp> {
    let out_of_range = || io::Error::new(io::ErrorKind::InvalidInput, "time out of range");
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Ok(Timestamp::new(
            i64::try_from(d.as_secs()).map_err(|_| out_of_range())?,
            d.subsec_nanos(),
        )),
        Err(before) => {
            let d = before.duration();
            let secs = i64::try_from(d.as_secs()).map_err(|_| out_of_range())?;
            // Nanoseconds count forward from the second below.
            if d.subsec_nanos() == 0 {
                Ok(Timestamp::new(-secs, 0))
            } else {
                Ok(Timestamp::new(-secs - 1, 1_000_000_000 - d.subsec_nanos()))
            }
        }
    }
}

impl Metadata {
    /// Metadata of inode `ino` with attributes `attr`.
    pub fn new(ino: Ino, attr: Attr) -> Metadata {
        Metadata { ino, attr }
    }

    /// The engine's attributes, all fields.
    pub fn attr(&self) -> &Attr {
        &self.attr
    }

    /// The inode number.
    pub fn ino(&self) -> Ino {
        self.ino
    }

    /// The file's type.
    pub fn file_type(&self) -> FileType {
        FileType(self.attr.typ)
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.file_type().is_dir()
    }

    /// Whether this is a regular file.
    pub fn is_file(&self) -> bool {
        self.file_type().is_file()
    }

    /// Whether this is a symbolic link (only [`symlink_metadata`] reports links).
    ///
    /// [`symlink_metadata`]: crate::FileSystem::symlink_metadata
    pub fn is_symlink(&self) -> bool {
        self.file_type().is_symlink()
    }

    /// The length in bytes (a symbolic link's: its target's length; a directory's: 4096).
    pub fn len(&self) -> u64 {
        self.attr.length
    }

    /// Whether the length is zero.
    pub fn is_empty(&self) -> bool {
        self.attr.length == 0
    }

    /// The permission bits.
    pub fn permissions(&self) -> Permissions {
        Permissions::from_mode(u32::from(self.attr.mode))
    }

    /// The full `st_mode`: type bits and permission bits.
    pub fn mode(&self) -> u32 {
        self.attr.full_mode()
    }

    /// The owner's user id.
    pub fn uid(&self) -> u32 {
        self.attr.uid
    }

    /// The group id.
    pub fn gid(&self) -> u32 {
        self.attr.gid
    }

    /// The number of hard links.
    pub fn nlink(&self) -> u64 {
        u64::from(self.attr.nlink)
    }

    /// The device number of a device node.
    pub fn rdev(&self) -> u64 {
        u64::from(self.attr.rdev)
    }

    /// The last data modification.
    pub fn modified(&self) -> io::Result<SystemTime> {
        Ok(system_time(self.attr.mtime))
    }

    /// The last access (as recorded; the volume may not update it on every read).
    pub fn accessed(&self) -> io::Result<SystemTime> {
        Ok(system_time(self.attr.atime))
    }

    /// The last status change (`ctime`).
    pub fn changed(&self) -> io::Result<SystemTime> {
        Ok(system_time(self.attr.ctime))
    }

    /// The creation time: volumes do not record it, so this is always `Unsupported`, as
    /// `std` reports on file systems without a birth time.
    pub fn created(&self) -> io::Result<SystemTime> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "creation time is not recorded by the volume",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        for t in [
            Timestamp::new(0, 0),
            Timestamp::new(1_700_000_000, 123_456_789),
            Timestamp::new(-1, 500),
            Timestamp::new(-86_400, 0),
        ] {
            assert_eq!(timestamp(system_time(t)).unwrap(), t);
        }
    }

    #[test]
    fn permissions_like_std() {
        let mut p = Permissions::from_mode(0o100644);
        assert_eq!(p.mode(), 0o644);
        assert!(!p.readonly());
        p.set_readonly(true);
        assert_eq!(p.mode(), 0o444);
        p.set_readonly(false);
        assert_eq!(p.mode(), 0o644);
    }

    #[test]
    fn metadata_accessors() {
        let mut a = Attr::new(
            meta_api::FileType::Regular,
            0o640,
            7,
            8,
            Timestamp::new(5, 6),
        );
        a.length = 42;
        let m = Metadata::new(99, a);
        assert!(m.is_file() && !m.is_dir() && !m.is_symlink());
        assert_eq!(
            (m.len(), m.ino(), m.uid(), m.gid(), m.nlink()),
            (42, 99, 7, 8, 1)
        );
        assert_eq!(m.mode(), libc::S_IFREG | 0o640);
        assert_eq!(
            m.modified().unwrap(),
            UNIX_EPOCH + Duration::from_secs(5) + Duration::from_nanos(6)
        );
        assert_eq!(m.created().unwrap_err().kind(), io::ErrorKind::Unsupported);
    }
}
