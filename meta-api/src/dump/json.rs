//! The pieces of JuiceFS's dump format shared by the writer and the reader: name escaping,
//! type names, and the JSON shapes of attributes, slices, chunks, xattrs and ACLs.

use serde::{Deserialize, Serialize};

use crate::acl::{AclEntry, Rule};
use crate::{Attr, FileType, Ino, MetaError, Result, Slice, Timestamp};

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Escapes a name, a symlink target or an xattr value as JuiceFS does: bytes that are not
/// valid UTF-8, characters up to the space, `%`, `"` and `\` become `%XX` (upper-case
/// hex); everything else stays. The result needs no further escaping inside a JSON
/// string.
pub(super) fn escape(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    let byte = |out: &mut String, b: u8| {
        out.push('%');
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xF)]));
    };
    for chunk in raw.utf8_chunks() {
        for c in chunk.valid().chars() {
            // JuiceFS's decoder reads U+FFFD as an invalid byte: escape its bytes too.
            if c <= ' ' || c == '%' || c == '"' || c == '\\' || c == char::REPLACEMENT_CHARACTER {
                let mut buf = [0; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    byte(&mut out, b);
                }
            } else {
                out.push(c);
            }
        }
        for &b in chunk.invalid() {
            byte(&mut out, b);
        }
    }
    out
}

/// The reverse of [`escape`]: `%XX` with two upper-case hex digits is the byte; any other
/// `%` is itself (JuiceFS's rule, so names written by old clients without escaping load).
pub(super) fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let hex = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// JuiceFS's name of a file type.
pub(super) fn type_name(t: FileType) -> &'static str {
    match t {
        FileType::Regular => "regular",
        FileType::Directory => "directory",
        FileType::Symlink => "symlink",
        FileType::Fifo => "fifo",
        FileType::BlockDevice => "blockdev",
        FileType::CharDevice => "chardev",
        FileType::Socket => "socket",
    }
}

/// The file type JuiceFS names `s`.
pub(super) fn type_of(s: &str) -> Result<FileType> {
    Ok(match s {
        "regular" => FileType::Regular,
        "directory" => FileType::Directory,
        "symlink" => FileType::Symlink,
        "fifo" => FileType::Fifo,
        "blockdev" => FileType::BlockDevice,
        "chardev" => FileType::CharDevice,
        "socket" => FileType::Socket,
        _ => {
            return Err(MetaError::Corrupt(format!(
                "unknown file type {s:?} in the dump"
            )))
        }
    })
}

fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// An inode's attributes as a dump writes them (JuiceFS `DumpedAttr`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct DumpedAttr {
    pub inode: Ino,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub flags: u8,
    #[serde(rename = "type")]
    pub typ: String,
    #[serde(default)]
    pub mode: u16,
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
    #[serde(default)]
    pub atime: i64,
    #[serde(default)]
    pub mtime: i64,
    #[serde(default)]
    pub ctime: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub atimensec: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mtimensec: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ctimensec: u32,
    #[serde(default)]
    pub nlink: u32,
    #[serde(default)]
    pub length: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rdev: u32,
}

impl DumpedAttr {
    /// The dumped form of inode `ino`'s attributes (a length only for regular files, as
    /// JuiceFS writes).
    pub fn of(ino: Ino, a: &Attr) -> DumpedAttr {
        DumpedAttr {
            inode: ino,
            flags: a.flags,
            typ: type_name(a.typ).to_owned(),
            mode: a.mode,
            uid: a.uid,
            gid: a.gid,
            atime: a.atime.sec,
            mtime: a.mtime.sec,
            ctime: a.ctime.sec,
            atimensec: a.atime.nsec,
            mtimensec: a.mtime.nsec,
            ctimensec: a.ctime.nsec,
            nlink: a.nlink,
            length: if a.typ == FileType::Regular {
                a.length
            } else {
                0
            },
            rdev: a.rdev,
        }
    }

    /// The attributes it describes; `nlink`, `length` and `parent` are for the loader to
    /// set.
    pub fn attr(&self) -> Result<Attr> {
        let time = |sec: i64, nsec: u32| -> Result<Timestamp> {
            if nsec >= 1_000_000_000 {
                return Err(MetaError::Corrupt(format!(
                    "inode {}: {nsec} nanoseconds in the dump",
                    self.inode
                )));
            }
            Ok(Timestamp { sec, nsec })
        };
        let typ = type_of(&self.typ)?;
        let mut attr = Attr::new(typ, self.mode, self.uid, self.gid, Timestamp::default());
        attr.mode = self.mode & 0o7777;
        attr.flags = self.flags;
        attr.atime = time(self.atime, self.atimensec)?;
        attr.mtime = time(self.mtime, self.mtimensec)?;
        attr.ctime = time(self.ctime, self.ctimensec)?;
        attr.rdev = self.rdev;
        attr.length = if typ == FileType::Regular {
            self.length
        } else {
            0
        };
        attr.nlink = 1;
        attr.parent = 0;
        Ok(attr)
    }
}

/// A slice record as a dump writes it; old dumps name the id `chunkid`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct DumpedSlice {
    #[serde(default, skip_serializing)]
    pub chunkid: u64,
    #[serde(default)]
    pub id: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pos: u32,
    pub size: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub off: u32,
    pub len: u32,
}

impl DumpedSlice {
    pub fn of(s: &Slice) -> DumpedSlice {
        DumpedSlice {
            chunkid: 0,
            id: s.id,
            pos: s.pos,
            size: s.size,
            off: s.off,
            len: s.len,
        }
    }

    pub fn slice(&self) -> Slice {
        let id = if self.id == 0 { self.chunkid } else { self.id };
        Slice {
            pos: self.pos,
            id,
            size: self.size,
            off: self.off,
            len: self.len,
        }
    }
}

/// One chunk's slices.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct DumpedChunk {
    pub index: u32,
    #[serde(default)]
    pub slices: Vec<DumpedSlice>,
}

/// An extended attribute; the value is [`escape`]d.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct DumpedXattr {
    pub name: String,
    #[serde(default)]
    pub value: String,
}

/// A named user's or group's ACL entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct DumpedAclEntry {
    pub id: u32,
    pub perm: u16,
}

/// A POSIX ACL (JuiceFS `DumpedACL`); the lists are `null` when empty, as Go writes them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct DumpedAcl {
    pub owner: u16,
    pub group: u16,
    pub other: u16,
    pub mask: u16,
    #[serde(
        default,
        deserialize_with = "null_is_empty",
        serialize_with = "empty_is_null"
    )]
    pub users: Vec<DumpedAclEntry>,
    #[serde(
        default,
        deserialize_with = "null_is_empty",
        serialize_with = "empty_is_null"
    )]
    pub groups: Vec<DumpedAclEntry>,
}

fn empty_is_null<S, T>(v: &[T], s: S) -> std::result::Result<S::Ok, S::Error>
where
    S: serde::Serializer,
    T: Serialize,
{
    if v.is_empty() {
        s.serialize_none()
    } else {
        s.collect_seq(v)
    }
}

fn null_is_empty<'de, D, T>(d: D) -> std::result::Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

impl DumpedAcl {
    pub fn of(r: &Rule) -> DumpedAcl {
        let entries = |v: &[AclEntry]| {
            v.iter()
                .map(|e| DumpedAclEntry {
                    id: e.id,
                    perm: e.perm,
                })
                .collect()
        };
        DumpedAcl {
            owner: r.owner,
            group: r.group,
            other: r.other,
            mask: r.mask,
            users: entries(&r.named_users),
            groups: entries(&r.named_groups),
        }
    }

    pub fn rule(&self) -> Rule {
        let entries = |v: &[DumpedAclEntry]| {
            let mut e: Vec<AclEntry> = v
                .iter()
                .map(|e| AclEntry {
                    id: e.id,
                    perm: e.perm,
                })
                .collect();
            e.sort_by_key(|e| e.id);
            e
        };
        Rule {
            owner: self.owner,
            group: self.group,
            mask: self.mask,
            other: self.other,
            named_users: entries(&self.users),
            named_groups: entries(&self.groups),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_is_juicefs_rule_and_round_trips() {
        assert_eq!(escape(b"plain-name.txt"), "plain-name.txt");
        assert_eq!(escape(b"a b%c\"d\\e\n"), "a%20b%25c%22d%5Ce%0A");
        assert_eq!(escape("é✓".as_bytes()), "é✓");
        assert_eq!(escape(b"\xff\xfeok"), "%FF%FEok");
        assert_eq!(escape("\u{fffd}".as_bytes()), "%EF%BF%BD");
        for raw in [
            &b"a b%c\"d\\e\n"[..],
            b"\xff\xfeok",
            "\u{fffd}x".as_bytes(),
            b"%",
            b"%4",
        ] {
            assert_eq!(unescape(&escape(raw)), raw);
        }
        // A `%` not followed by two upper-case hex digits is itself.
        assert_eq!(unescape("100%"), b"100%");
        assert_eq!(unescape("%4a%4"), b"%4a%4");
        assert_eq!(unescape("%41%42"), b"AB");
    }

    #[test]
    fn type_names_round_trip_and_unknown_is_corrupt() {
        for t in [
            FileType::Regular,
            FileType::Directory,
            FileType::Symlink,
            FileType::Fifo,
            FileType::BlockDevice,
            FileType::CharDevice,
            FileType::Socket,
        ] {
            assert_eq!(type_of(type_name(t)).ok(), Some(t));
        }
        assert!(matches!(type_of("door"), Err(MetaError::Corrupt(_))));
    }

    #[test]
    fn attrs_keep_their_fields_and_reject_bad_nanoseconds() {
        let mut a = Attr::new(
            FileType::Regular,
            0o4755,
            7,
            8,
            Timestamp { sec: 5, nsec: 9 },
        );
        a.length = 12345;
        a.flags = 1;
        a.rdev = 3;
        let d = DumpedAttr::of(42, &a);
        let json = serde_json::to_string(&d).map_err(|e| e.to_string());
        assert_eq!(
            json.as_deref(),
            Ok(
                r#"{"inode":42,"flags":1,"type":"regular","mode":2541,"uid":7,"gid":8,"atime":5,"mtime":5,"ctime":5,"atimensec":9,"mtimensec":9,"ctimensec":9,"nlink":1,"length":12345,"rdev":3}"#
            )
        );
        let back = d.attr();
        assert!(
            matches!(&back, Ok(b) if b.mode == 0o4755 && b.length == 12345 && b.mtime.nsec == 9)
        );
        let bad = DumpedAttr {
            atimensec: 1_000_000_000,
            ..d
        };
        assert!(matches!(bad.attr(), Err(MetaError::Corrupt(_))));
    }
}
