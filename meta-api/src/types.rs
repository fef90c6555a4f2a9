//! Plain data types shared by every metadata engine.

use serde::{Deserialize, Serialize};

/// An inode number. JuiceFS inode numbers are plain `u64`s.
pub type Ino = u64;

/// The root directory's inode.
pub const ROOT_INO: Ino = 1;
/// The trash directory's inode (JuiceFS `TrashInode`).
pub const TRASH_INO: Ino = 0x7FFF_FFFF_1000_0000;

/// Size of a chunk: files are cut into 64 MiB chunks by offset (JuiceFS `ChunkBits = 26`).
pub const CHUNK_BITS: u32 = 26;
/// Size of a chunk in bytes.
pub const CHUNK_SIZE: u64 = 1 << CHUNK_BITS;
/// Largest file length accepted (JuiceFS limits chunk indexes to 31 bits: 2^31 chunks of 64 MiB).
pub const MAX_FILE_SIZE: u64 = CHUNK_SIZE << 31;
/// Longest name of a directory entry, in bytes.
pub const MAX_NAME_LEN: usize = 255;
/// Longest symlink target, in bytes.
pub const MAX_SYMLINK_LEN: usize = 4096;
/// Longest extended attribute name, in bytes.
pub const MAX_XATTR_NAME_LEN: usize = 255;
/// Largest extended attribute value, in bytes.
pub const MAX_XATTR_VALUE_LEN: usize = 65536;

/// The type of an inode, numbered as JuiceFS stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum FileType {
    /// A regular file.
    Regular = 1,
    /// A directory.
    Directory = 2,
    /// A symbolic link.
    Symlink = 3,
    /// A named pipe.
    Fifo = 4,
    /// A block device.
    BlockDevice = 5,
    /// A character device.
    CharDevice = 6,
    /// A Unix socket.
    Socket = 7,
}

impl FileType {
    /// Decodes JuiceFS's numeric type; `None` for an unknown number.
    pub fn from_u8(v: u8) -> Option<FileType> {
        Some(match v {
            1 => FileType::Regular,
            2 => FileType::Directory,
            3 => FileType::Symlink,
            4 => FileType::Fifo,
            5 => FileType::BlockDevice,
            6 => FileType::CharDevice,
            7 => FileType::Socket,
            _ => return None,
        })
    }

    /// The `S_IFMT` bits of this type.
    pub fn mode_bits(self) -> u32 {
        match self {
            FileType::Regular => libc::S_IFREG,
            FileType::Directory => libc::S_IFDIR,
            FileType::Symlink => libc::S_IFLNK,
            FileType::Fifo => libc::S_IFIFO,
            FileType::BlockDevice => libc::S_IFBLK,
            FileType::CharDevice => libc::S_IFCHR,
            FileType::Socket => libc::S_IFSOCK,
        }
    }

    /// Decodes the `S_IFMT` bits of a full mode.
    pub fn from_mode(mode: u32) -> Option<FileType> {
        Some(match mode & libc::S_IFMT {
            libc::S_IFREG => FileType::Regular,
            libc::S_IFDIR => FileType::Directory,
            libc::S_IFLNK => FileType::Symlink,
            libc::S_IFIFO => FileType::Fifo,
            libc::S_IFBLK => FileType::BlockDevice,
            libc::S_IFCHR => FileType::CharDevice,
            libc::S_IFSOCK => FileType::Socket,
            _ => return None,
        })
    }
}

/// A point in time: seconds since the Unix epoch and nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    /// Seconds since the Unix epoch (may be negative).
    pub sec: i64,
    /// Nanoseconds, `0..1_000_000_000`.
    pub nsec: u32,
}

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Timestamp {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp {
            sec: d.as_secs() as i64,
            nsec: d.subsec_nanos(),
        }
    }

    /// Builds a timestamp from seconds and nanoseconds.
    pub fn new(sec: i64, nsec: u32) -> Timestamp {
        Timestamp { sec, nsec }
    }
}

/// The attributes of an inode: every POSIX field plus JuiceFS's extras.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// JuiceFS inode flags (immutable, append-only).
    pub flags: u8,
    /// The inode's type.
    pub typ: FileType,
    /// Permission bits including suid/sgid/sticky (`0o7777`), without the type bits.
    pub mode: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Last access.
    pub atime: Timestamp,
    /// Last data modification.
    pub mtime: Timestamp,
    /// Last status change.
    pub ctime: Timestamp,
    /// Number of hard links (for a directory: 2 + number of subdirectories).
    pub nlink: u32,
    /// Length in bytes (for a directory: 4096; for a symlink: target length).
    pub length: u64,
    /// Device number for device nodes.
    pub rdev: u32,
    /// Parent directory (0 for a file with several hard links, as JuiceFS does).
    pub parent: Ino,
    /// Access ACL id (0 = none).
    pub access_acl: u32,
    /// Default ACL id (0 = none).
    pub default_acl: u32,
}

impl Attr {
    /// A fresh attribute set of the given type with all times set to `now`.
    pub fn new(typ: FileType, mode: u16, uid: u32, gid: u32, now: Timestamp) -> Attr {
        Attr {
            flags: 0,
            typ,
            mode: mode & 0o7777,
            uid,
            gid,
            atime: now,
            mtime: now,
            ctime: now,
            nlink: 1,
            length: 0,
            rdev: 0,
            parent: 0,
            access_acl: 0,
            default_acl: 0,
        }
    }

    /// The full `st_mode`: type bits and permission bits.
    pub fn full_mode(&self) -> u32 {
        self.typ.mode_bits() | u32::from(self.mode)
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.typ == FileType::Directory
    }
}

/// An inode with its attributes, as returned by lookup and create operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The inode number.
    pub ino: Ino,
    /// Its attributes.
    pub attr: Attr,
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The entry's name (bytes, not necessarily UTF-8).
    pub name: Vec<u8>,
    /// The inode it points to.
    pub ino: Ino,
    /// The inode's type.
    pub typ: FileType,
    /// The inode's attributes, when asked for (`plus`).
    pub attr: Option<Attr>,
}

/// A slice record: a piece of one write, placed in a chunk (the 24-byte JuiceFS record).
///
/// The slice's object `id` holds `size` bytes; the bytes `off..off+len` of it appear at
/// `pos..pos+len` in the chunk. `id == 0` is a hole (reads as zeros).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Slice {
    /// Position within the chunk.
    pub pos: u32,
    /// Slice id (0 = hole).
    pub id: u64,
    /// Total size of the slice object.
    pub size: u32,
    /// Offset within the slice object.
    pub off: u32,
    /// Length used.
    pub len: u32,
}

/// Size of an encoded [`Slice`].
pub const SLICE_BYTES: usize = 24;

impl Slice {
    /// Encodes the slice as JuiceFS does: big-endian `pos u32 | id u64 | size u32 | off u32 | len u32`.
    pub fn encode(&self) -> [u8; SLICE_BYTES] {
        let mut b = [0u8; SLICE_BYTES];
        b[0..4].copy_from_slice(&self.pos.to_be_bytes());
        b[4..12].copy_from_slice(&self.id.to_be_bytes());
        b[12..16].copy_from_slice(&self.size.to_be_bytes());
        b[16..20].copy_from_slice(&self.off.to_be_bytes());
        b[20..24].copy_from_slice(&self.len.to_be_bytes());
        b
    }

    /// Decodes one 24-byte record.
    pub fn decode(b: &[u8; SLICE_BYTES]) -> Slice {
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut id = [0u8; 8];
        id.copy_from_slice(&b[4..12]);
        Slice {
            pos: u32_at(0),
            id: u64::from_be_bytes(id),
            size: u32_at(12),
            off: u32_at(16),
            len: u32_at(20),
        }
    }

    /// Decodes a concatenation of records (a chunk value); `None` if the length is not a
    /// multiple of 24.
    pub fn decode_all(buf: &[u8]) -> Option<Vec<Slice>> {
        if !buf.len().is_multiple_of(SLICE_BYTES) {
            return None;
        }
        Some(
            buf.chunks_exact(SLICE_BYTES)
                .map(|c| {
                    let mut a = [0u8; SLICE_BYTES];
                    a.copy_from_slice(c);
                    Slice::decode(&a)
                })
                .collect(),
        )
    }

    /// Decodes the value of chunk `index` of `ino`; `Corrupt` (naming both) when its
    /// length is not a multiple of 24 or a record is impossible ([`Slice::checked`]).
    pub fn decode_chunk(ino: Ino, index: u32, raw: &[u8]) -> crate::Result<Vec<Slice>> {
        let records = Slice::decode_all(raw).ok_or_else(|| {
            crate::MetaError::Corrupt(format!(
                "chunk {index} of inode {ino} holds {} bytes, not a multiple of 24",
                raw.len()
            ))
        })?;
        records.into_iter().map(|s| s.checked(ino, index)).collect()
    }

    /// This record of chunk `index` of `ino` as read from an engine, or `Corrupt` when no
    /// writer makes it: a range past the end of the chunk (`pos + len` over 64 MiB), or
    /// (for data) past the end of its slice (`off + len` over `size`). Every engine's read
    /// of chunk records goes through this, so a corrupt record is an error rather than
    /// arithmetic that wraps.
    pub fn checked(self, ino: Ino, index: u32) -> crate::Result<Slice> {
        let end = u64::from(self.pos) + u64::from(self.len);
        let bad = if end > CHUNK_SIZE {
            Some(format!("ends at {end}, past the chunk"))
        } else if self.id != 0 && u64::from(self.off) + u64::from(self.len) > u64::from(self.size) {
            Some(format!(
                "reads {}+{} of slice {} of {} bytes",
                self.off, self.len, self.id, self.size
            ))
        } else {
            None
        };
        match bad {
            Some(why) => Err(crate::MetaError::Corrupt(format!(
                "chunk {index} of inode {ino}: a record {why}"
            ))),
            None => Ok(self),
        }
    }

    /// The references a run of records holds, by slice: `(id, size, records)` for every
    /// slice with data, in id order. Purging and compacting take `records` references from
    /// each.
    pub fn references(records: &[Slice]) -> Vec<(u64, u32, i64)> {
        let mut by_id: std::collections::BTreeMap<u64, (u32, i64)> = Default::default();
        for s in records.iter().filter(|s| s.id != 0) {
            by_id.entry(s.id).or_insert((s.size, 0)).1 += 1;
        }
        by_id
            .into_iter()
            .map(|(id, (size, n))| (id, size, n))
            .collect()
    }

    /// The whole of slice `id` of `size` bytes at position 0 (how freed slices are named).
    pub fn whole(id: u64, size: u32) -> Slice {
        Slice {
            pos: 0,
            id,
            size,
            off: 0,
            len: size,
        }
    }

    /// A record that reads as zeros over `pos..pos+len` (JuiceFS's hole: id, size and
    /// offset zero).
    pub fn hole(pos: u32, len: u32) -> Slice {
        Slice {
            pos,
            id: 0,
            size: 0,
            off: 0,
            len,
        }
    }

    /// Encodes a list of records into one buffer.
    pub fn encode_all(slices: &[Slice]) -> Vec<u8> {
        let mut out = Vec::with_capacity(slices.len() * SLICE_BYTES);
        for s in slices {
            out.extend_from_slice(&s.encode());
        }
        out
    }
}

/// Filesystem usage, as `statfs` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatFs {
    /// Capacity in bytes.
    pub total_space: u64,
    /// Free bytes.
    pub avail_space: u64,
    /// Inodes in use.
    pub used_inodes: u64,
    /// Inodes still available.
    pub avail_inodes: u64,
}

/// Who is calling: the credentials permission checks use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
    /// Supplementary group ids.
    pub gids: Vec<u32>,
    /// Process id (for locks and logging).
    pub pid: u32,
    /// The file mode creation mask applied to new inodes.
    pub umask: u16,
    /// Whether what this caller deletes bypasses the trash (JuiceFS's `skipCheckTrash`:
    /// the trash cleanup, a remove with `--skip-trash`); honoured for root only.
    pub skip_trash: bool,
}

impl Context {
    /// The superuser, with a zero umask.
    pub fn root() -> Context {
        Context::new(0, 0)
    }

    /// A user with the given uid and primary gid, no supplementary groups, umask 0.
    pub fn new(uid: u32, gid: u32) -> Context {
        Context {
            uid,
            gid,
            gids: Vec::new(),
            pid: 0,
            umask: 0,
            skip_trash: false,
        }
    }

    /// The same caller, deleting past the trash (see [`Context::skip_trash`]).
    pub fn skipping_trash(mut self) -> Context {
        self.skip_trash = true;
        self
    }

    /// The caller as the opener of a file it already holds open (or has just created):
    /// access was decided at open time, so operations on the handle (`ftruncate(2)`,
    /// `fallocate(2)`, …) and the creator's own open are checked as root's.
    pub fn as_opener(&self) -> Context {
        Context {
            uid: 0,
            gid: 0,
            ..self.clone()
        }
    }

    /// Whether the caller is root.
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    /// Whether the caller belongs to `gid` (primary or supplementary).
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.gids.contains(&gid)
    }
}

/// A time to set in `setattr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetTime {
    /// The current time of the engine.
    Now,
    /// A given time.
    At(Timestamp),
}

/// Which attributes `setattr` changes: each `Some` field is set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SetAttr {
    /// New permission bits (`0o7777`).
    pub mode: Option<u16>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// New access time.
    pub atime: Option<SetTime>,
    /// New modification time.
    pub mtime: Option<SetTime>,
    /// New length (truncate or extend).
    pub size: Option<u64>,
    /// New JuiceFS flags.
    pub flags: Option<u8>,
    /// Leave ctime as it is: for the access-time update of a read, which POSIX does not
    /// count as a status change (any other change still stamps it).
    pub keep_ctime: bool,
}

impl SetAttr {
    /// Nothing set.
    pub fn new() -> SetAttr {
        SetAttr::default()
    }
    /// Sets the permission bits.
    pub fn mode(mut self, mode: u16) -> Self {
        self.mode = Some(mode);
        self
    }
    /// Sets the owner.
    pub fn uid(mut self, uid: u32) -> Self {
        self.uid = Some(uid);
        self
    }
    /// Sets the group.
    pub fn gid(mut self, gid: u32) -> Self {
        self.gid = Some(gid);
        self
    }
    /// Sets the access time.
    pub fn atime(mut self, t: SetTime) -> Self {
        self.atime = Some(t);
        self
    }
    /// Sets the modification time.
    pub fn mtime(mut self, t: SetTime) -> Self {
        self.mtime = Some(t);
        self
    }
    /// Sets the JuiceFS inode flags ([`crate::flags`]; root only).
    pub fn flags(mut self, flags: u8) -> Self {
        self.flags = Some(flags);
        self
    }

    /// Sets the length.
    pub fn size(mut self, size: u64) -> Self {
        self.size = Some(size);
        self
    }
    /// Sets [`SetAttr::keep_ctime`].
    pub fn keep_ctime(mut self) -> Self {
        self.keep_ctime = true;
        self
    }
    /// The mask of fields set, as [`SetAttrMask`] bits.
    pub fn mask(&self) -> SetAttrMask {
        let mut m = 0;
        let bit = |cond: bool, b: u32| if cond { b } else { 0 };
        m |= bit(self.mode.is_some(), SetAttrMask::MODE);
        m |= bit(self.uid.is_some(), SetAttrMask::UID);
        m |= bit(self.gid.is_some(), SetAttrMask::GID);
        m |= bit(self.size.is_some(), SetAttrMask::SIZE);
        m |= bit(self.atime.is_some(), SetAttrMask::ATIME);
        m |= bit(self.mtime.is_some(), SetAttrMask::MTIME);
        m |= bit(
            matches!(self.atime, Some(SetTime::Now)),
            SetAttrMask::ATIME_NOW,
        );
        m |= bit(
            matches!(self.mtime, Some(SetTime::Now)),
            SetAttrMask::MTIME_NOW,
        );
        m |= bit(self.flags.is_some(), SetAttrMask::FLAG);
        SetAttrMask(m)
    }
}

/// The set-attributes mask, with JuiceFS's bit numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SetAttrMask(pub u32);

impl SetAttrMask {
    /// Mode changes.
    pub const MODE: u32 = 1 << 0;
    /// Owner changes.
    pub const UID: u32 = 1 << 1;
    /// Group changes.
    pub const GID: u32 = 1 << 2;
    /// Length changes.
    pub const SIZE: u32 = 1 << 3;
    /// Access time changes.
    pub const ATIME: u32 = 1 << 4;
    /// Modification time changes.
    pub const MTIME: u32 = 1 << 5;
    /// Change time changes.
    pub const CTIME: u32 = 1 << 6;
    /// Access time set to now.
    pub const ATIME_NOW: u32 = 1 << 7;
    /// Modification time set to now.
    pub const MTIME_NOW: u32 = 1 << 8;
    /// Flags change.
    pub const FLAG: u32 = 1 << 15;

    /// Whether all bits of `bits` are set.
    pub fn contains(self, bits: u32) -> bool {
        self.0 & bits == bits
    }
}

/// Flags of `rename`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RenameFlags(pub u32);

impl RenameFlags {
    /// Fail with `EEXIST` if the target exists (Linux `RENAME_NOREPLACE`).
    pub const NOREPLACE: u32 = 1;
    /// Atomically swap source and target (Linux `RENAME_EXCHANGE`).
    pub const EXCHANGE: u32 = 2;
    /// Create a whiteout (unsupported: `EINVAL`).
    pub const WHITEOUT: u32 = 4;
    /// Restore an entry from the trash (JuiceFS's internal `RenameRestore`, with
    /// `NOREPLACE`): the destination may be a directory that is itself in the trash (see
    /// [`crate::trash`]). Linux rejects this bit, so it never comes from a mount.
    pub const RESTORE: u32 = 1 << 5;

    /// No flags.
    pub const fn empty() -> RenameFlags {
        RenameFlags(0)
    }
    /// Whether `RENAME_NOREPLACE` is set.
    pub fn noreplace(self) -> bool {
        self.0 & Self::NOREPLACE != 0
    }
    /// Whether `RENAME_EXCHANGE` is set.
    pub fn exchange(self) -> bool {
        self.0 & Self::EXCHANGE != 0
    }
    /// Whether [`RenameFlags::RESTORE`] is set.
    pub fn restore(self) -> bool {
        self.0 & Self::RESTORE != 0
    }
}

/// Flags of `setxattr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct XattrFlags(pub u32);

impl XattrFlags {
    /// Fail with `EEXIST` if the attribute exists (`XATTR_CREATE`).
    pub const CREATE: u32 = 1;
    /// Fail with `ENODATA` if it does not (`XATTR_REPLACE`).
    pub const REPLACE: u32 = 2;
}

/// Mode of `fallocate`, with Linux's bit values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FallocMode(pub u32);

impl FallocMode {
    /// Do not change the file length (`FALLOC_FL_KEEP_SIZE`).
    pub const KEEP_SIZE: u32 = 0x01;
    /// Deallocate the range, which then reads as zeros (`FALLOC_FL_PUNCH_HOLE`, needs `KEEP_SIZE`).
    pub const PUNCH_HOLE: u32 = 0x02;
    /// Zero the range (`FALLOC_FL_ZERO_RANGE`).
    pub const ZERO_RANGE: u32 = 0x10;
    /// Whether all bits of `bits` are set.
    pub fn contains(self, bits: u32) -> bool {
        self.0 & bits == bits
    }
}

/// Access bits of an access check (`R_OK`, `W_OK`, `X_OK`).
pub mod access {
    /// Read.
    pub const R: u8 = 4;
    /// Write.
    pub const W: u8 = 2;
    /// Execute / search.
    pub const X: u8 = 1;
}

/// What a [`heartbeat`](crate::MetaEngine::heartbeat) found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a reregistered session means earlier handles and locks are no longer protected"]
pub enum Heartbeat {
    /// The session was there and is extended.
    Extended,
    /// The session had been reaped as stale by another client; it is registered again
    /// under the same id, holding nothing.
    Reregistered,
}

/// A client session as stored in the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SessionInfo {
    /// Client version string.
    #[serde(rename = "Version")]
    pub version: String,
    /// Host name.
    #[serde(rename = "HostName")]
    pub host_name: String,
    /// Mount point or program name.
    #[serde(rename = "MountPoint")]
    pub mount_point: String,
    /// Process id.
    #[serde(rename = "ProcessID")]
    pub process_id: u32,
}

impl SessionInfo {
    /// The record JuiceFS stores for a session (`{"Version":…,"HostName":…,…}`).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec())
    }

    /// Reads a session record leniently: JuiceFS writes more fields than this type has,
    /// and an absent or damaged record reads as empty (as JuiceFS does).
    pub fn from_json_lenient(raw: Option<&[u8]>) -> SessionInfo {
        let v: serde_json::Value = raw
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or_default();
        let text = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_str())
                .unwrap_or_default()
                .to_string()
        };
        SessionInfo {
            version: text("Version"),
            host_name: text("HostName"),
            mount_point: text("MountPoint"),
            process_id: v
                .get("ProcessID")
                .and_then(|x| x.as_u64())
                .and_then(|x| u32::try_from(x).ok())
                .unwrap_or_default(),
        }
    }
}

/// A session listed by the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Session id.
    pub sid: u64,
    /// Unix time (seconds) after which the session counts as stale.
    pub expire: i64,
    /// What the client said about itself.
    pub info: SessionInfo,
    /// Inodes this session keeps alive (open but unlinked).
    pub sustained: Vec<Ino>,
}

#[cfg(test)]
mod slice_record_tests {
    use super::*;

    #[test]
    fn records_past_their_chunk_or_slice_are_corrupt() {
        let ok = Slice {
            pos: (CHUNK_SIZE - 20) as u32,
            id: 3,
            size: 30,
            off: 10,
            len: 20,
        };
        assert_eq!(
            Slice::decode_chunk(9, 2, &Slice::encode_all(&[ok])).unwrap(),
            vec![ok]
        );
        let hole = Slice {
            id: 0,
            size: 0,
            off: 0,
            ..ok
        };
        assert!(hole.checked(9, 2).is_ok());
        for bad in [
            Slice {
                pos: (CHUNK_SIZE - 19) as u32,
                ..ok
            },
            Slice {
                pos: u32::MAX,
                len: 2,
                ..ok
            },
            Slice { off: 11, ..ok },
            Slice {
                off: u32::MAX,
                ..ok
            },
            Slice {
                id: 0,
                pos: u32::MAX,
                ..ok
            },
        ] {
            let e = Slice::decode_chunk(9, 2, &Slice::encode_all(&[ok, bad])).unwrap_err();
            assert!(
                matches!(&e, crate::MetaError::Corrupt(m) if m.starts_with("chunk 2 of inode 9")),
                "{bad:?}: {e}"
            );
        }
    }
}
