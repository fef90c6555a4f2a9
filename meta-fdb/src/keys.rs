//! JuiceFS's TKV key layout, byte for byte.
//!
//! Every key starts with the volume prefix (for FoundationDB: the `?prefix=` of the URL
//! followed by `0xFD`), then one of:
//!
//! | key | what |
//! |---|---|
//! | `setting` | the volume settings (JSON) |
//! | `C{name}` | counter `name` (`nextInode`, `nextChunk`, `nextSession`, `usedSpace`, `totalInodes`, …), little-endian `i64` |
//! | `A{ino}I` | attributes of `ino` |
//! | `A{ino}D{name}` | directory entry `name` in `ino`: type and inode |
//! | `A{ino}P{parent}` | how many links of hard-linked `ino` live in `parent` (counter) |
//! | `A{ino}C{indx}` | slices of chunk `indx` of `ino`, 24-byte records appended |
//! | `A{ino}S` | symlink target |
//! | `A{ino}X{name}` | extended attribute `name` |
//! | `D{ino}{length}` | deleted file waiting to be purged; value: deletion time (big-endian `i64`) |
//! | `N{ino}` | detached clone (a directory clone being built); value: when it was started (big-endian `i64` seconds) |
//! | `F{ino}` | BSD locks of `ino`: 17-byte records `sid owner type` |
//! | `P{ino}` | POSIX locks of `ino`: records `sid owner length data` |
//! | `K{id}{size}` | extra references of slice `id` (counter; absent = one reference) |
//! | `SE{sid}` | session expiry (big-endian `i64` seconds) |
//! | `SH{sid}` | heartbeat of a pre-1.0 session (big-endian `i64` seconds) |
//! | `SI{sid}` | session info (JSON) |
//! | `SS{sid}{ino}` | inode sustained by a session (open after its last unlink) |
//! | `U{ino}` | directory statistics |
//! | `QD{ino}` | directory quota |
//! | `R{id}` | POSIX ACL rule `id` (big-endian `u32`), [`meta_api::acl::Rule::encode`]; ids counted by `CaclMaxId` |
//! | `OI{ino}{sid}` | *this client's addition:* session `sid` has `ino` open |
//! | `OS{sid}{ino}` | *this client's addition:* the same, indexed by session |
//! | `OL{id}{size}` | *this client's addition:* occurrences of a slice counted by a load in progress (counter), turned into `K` keys when it ends |
//!
//! JuiceFS only knows a client's own open files, so an unlink by one client deletes a
//! file another client still has open. The `O` keys record opens in the volume so that an
//! unlink by any client sustains the file for every session that has it open; JuiceFS
//! clients ignore them (no JuiceFS key starts with `O`).
//!
//! Inode numbers in keys are **little-endian** 8 bytes (JuiceFS's `encodeInode`); every
//! other number (chunk index, slice id and size, length, session id) is big-endian.

use meta_api::Ino;

use crate::kv::prefix_end;

/// Counter of the next inode number (reserved in batches).
pub const NEXT_INODE: &str = "nextInode";
/// Counter of the next slice id (JuiceFS calls slices "chunks" here).
pub const NEXT_CHUNK: &str = "nextChunk";
/// Counter of the next session id.
pub const NEXT_SESSION: &str = "nextSession";
/// Counter of the next trash inode.
pub const NEXT_TRASH: &str = "nextTrash";
/// Counter of the bytes in use (each inode counts its length rounded up to 4 KiB).
pub const USED_SPACE: &str = "usedSpace";
/// Counter of the inodes in use.
pub const TOTAL_INODES: &str = "totalInodes";
/// Counter of the last POSIX ACL id handed out.
pub const ACL_MAX_ID: &str = "aclMaxId";

/// Builds the keys of one volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: Vec<u8>,
}

impl Keys {
    /// Keys under `prefix` (the raw bytes put before every key).
    pub fn new(prefix: &[u8]) -> Keys {
        Keys {
            prefix: prefix.to_vec(),
        }
    }

    /// The raw prefix of every key.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// Strips the volume prefix off a key read back from the store.
    pub fn strip<'a>(&self, key: &'a [u8]) -> &'a [u8] {
        key.get(self.prefix.len()..).unwrap_or_default()
    }

    fn key(&self, len: usize) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + len);
        k.extend_from_slice(&self.prefix);
        k
    }

    fn ino_key(&self, ino: Ino, tag: u8, extra: usize) -> Vec<u8> {
        let mut k = self.key(10 + extra);
        k.push(b'A');
        k.extend_from_slice(&ino.to_le_bytes());
        k.push(tag);
        k
    }

    /// `setting`: the volume settings.
    pub fn setting(&self) -> Vec<u8> {
        let mut k = self.key(7);
        k.extend_from_slice(b"setting");
        k
    }

    /// `C{name}`: a counter.
    pub fn counter(&self, name: &str) -> Vec<u8> {
        let mut k = self.key(1 + name.len());
        k.push(b'C');
        k.extend_from_slice(name.as_bytes());
        k
    }

    /// `A{ino}I`: attributes.
    pub fn inode(&self, ino: Ino) -> Vec<u8> {
        self.ino_key(ino, b'I', 0)
    }

    /// `A{parent}D{name}`: a directory entry.
    pub fn entry(&self, parent: Ino, name: &[u8]) -> Vec<u8> {
        let mut k = self.ino_key(parent, b'D', name.len());
        k.extend_from_slice(name);
        k
    }

    /// `A{parent}D`: the prefix of all entries of a directory.
    pub fn entries(&self, parent: Ino) -> Vec<u8> {
        self.ino_key(parent, b'D', 0)
    }

    /// `A{ino}P{parent}`: the link count of hard-linked `ino` in `parent`.
    pub fn parent(&self, ino: Ino, parent: Ino) -> Vec<u8> {
        let mut k = self.ino_key(ino, b'P', 8);
        k.extend_from_slice(&parent.to_le_bytes());
        k
    }

    /// `A{ino}P`: the prefix of all parent counters of `ino`.
    pub fn parents(&self, ino: Ino) -> Vec<u8> {
        self.ino_key(ino, b'P', 0)
    }

    /// `A{ino}C{indx}`: the slices of one chunk.
    pub fn chunk(&self, ino: Ino, indx: u32) -> Vec<u8> {
        let mut k = self.ino_key(ino, b'C', 4);
        k.extend_from_slice(&indx.to_be_bytes());
        k
    }

    /// `A{ino}C`: the prefix of all chunks of `ino`.
    pub fn chunks(&self, ino: Ino) -> Vec<u8> {
        self.ino_key(ino, b'C', 0)
    }

    /// `A{ino}S`: a symlink target.
    pub fn symlink(&self, ino: Ino) -> Vec<u8> {
        self.ino_key(ino, b'S', 0)
    }

    /// `A{ino}X{name}`: an extended attribute.
    pub fn xattr(&self, ino: Ino, name: &[u8]) -> Vec<u8> {
        let mut k = self.ino_key(ino, b'X', name.len());
        k.extend_from_slice(name);
        k
    }

    /// `A{ino}X`: the prefix of all extended attributes of `ino`.
    pub fn xattrs(&self, ino: Ino) -> Vec<u8> {
        self.ino_key(ino, b'X', 0)
    }

    /// `D{ino}{length}`: a deleted file waiting for its data to be purged.
    pub fn delfile(&self, ino: Ino, length: u64) -> Vec<u8> {
        let mut k = self.delfiles_of(ino);
        k.extend_from_slice(&length.to_be_bytes());
        k
    }

    /// `D{ino}`: the prefix of the deleted-file key of `ino`.
    pub fn delfiles_of(&self, ino: Ino) -> Vec<u8> {
        let mut k = self.key(17);
        k.push(b'D');
        k.extend_from_slice(&ino.to_le_bytes());
        k
    }

    /// `D`: the prefix of all deleted files.
    pub fn delfiles(&self) -> Vec<u8> {
        self.tag(b"D")
    }

    /// `N{ino}`: a detached clone; value: when it was started (`packInt64` seconds).
    pub fn detached(&self, ino: Ino) -> Vec<u8> {
        let mut k = self.key(9);
        k.push(b'N');
        k.extend_from_slice(&ino.to_le_bytes());
        k
    }

    /// `N`: the prefix of all detached clones.
    pub fn detached_all(&self) -> Vec<u8> {
        self.tag(b"N")
    }

    /// `F{ino}`: the BSD (flock) locks of `ino`.
    pub fn flock(&self, ino: Ino) -> Vec<u8> {
        let mut k = self.tag(b"F");
        k.extend_from_slice(&ino.to_le_bytes());
        k
    }

    /// `P{ino}`: the POSIX (fcntl) locks of `ino`.
    pub fn plock(&self, ino: Ino) -> Vec<u8> {
        let mut k = self.tag(b"P");
        k.extend_from_slice(&ino.to_le_bytes());
        k
    }

    /// `L{deleted secs}{id}`: the slices a compaction replaced on a volume with trash days
    /// (JuiceFS's delayed slices, freed by the trash cleanup).
    pub fn delayed_slices(&self, deleted: u64, id: u64) -> Vec<u8> {
        let mut k = self.key(17);
        k.push(b'L');
        k.extend_from_slice(&deleted.to_be_bytes());
        k.extend_from_slice(&id.to_be_bytes());
        k
    }

    /// `K{id}{size}`: the extra references of a slice.
    pub fn slice_ref(&self, id: u64, size: u32) -> Vec<u8> {
        let mut k = self.key(13);
        k.push(b'K');
        k.extend_from_slice(&id.to_be_bytes());
        k.extend_from_slice(&size.to_be_bytes());
        k
    }

    fn sid_key(&self, tag: &[u8; 2], sid: u64) -> Vec<u8> {
        let mut k = self.key(18);
        k.extend_from_slice(tag);
        k.extend_from_slice(&sid.to_be_bytes());
        k
    }

    /// `SE{sid}`: when a session expires.
    pub fn session(&self, sid: u64) -> Vec<u8> {
        self.sid_key(b"SE", sid)
    }

    /// `SH{sid}`: the heartbeat of a session of a pre-1.0 client.
    pub fn legacy_session(&self, sid: u64) -> Vec<u8> {
        self.sid_key(b"SH", sid)
    }

    /// `SI{sid}`: what a session said about itself.
    pub fn session_info(&self, sid: u64) -> Vec<u8> {
        self.sid_key(b"SI", sid)
    }

    /// `SS{sid}{ino}`: an inode sustained by a session.
    pub fn sustained(&self, sid: u64, ino: Ino) -> Vec<u8> {
        let mut k = self.sid_key(b"SS", sid);
        k.extend_from_slice(&ino.to_le_bytes());
        k
    }

    /// `SS{sid}`: the prefix of the inodes sustained by a session.
    pub fn sustained_of(&self, sid: u64) -> Vec<u8> {
        self.sid_key(b"SS", sid)
    }

    /// `OI{ino}{sid}`: session `sid` has `ino` open.
    pub fn opener(&self, ino: Ino, sid: u64) -> Vec<u8> {
        let mut k = self.openers(ino);
        k.extend_from_slice(&sid.to_be_bytes());
        k
    }

    /// `OI{ino}`: the prefix of the sessions that have `ino` open.
    pub fn openers(&self, ino: Ino) -> Vec<u8> {
        let mut k = self.key(18);
        k.extend_from_slice(b"OI");
        k.extend_from_slice(&ino.to_le_bytes());
        k
    }

    /// `OS{sid}{ino}`: `ino` is open in session `sid` (the reverse of [`Keys::opener`]).
    pub fn opened(&self, sid: u64, ino: Ino) -> Vec<u8> {
        let mut k = self.sid_key(b"OS", sid);
        k.extend_from_slice(&ino.to_le_bytes());
        k
    }

    /// `OS{sid}`: the prefix of the inodes open in session `sid`.
    pub fn opened_by(&self, sid: u64) -> Vec<u8> {
        self.sid_key(b"OS", sid)
    }

    /// `OL{id}{size}`: how often a load in progress met slice `id` (see
    /// [`meta_api::backend::Bulk::finish_load`]).
    pub fn load_occurrences(&self, id: u64, size: u32) -> Vec<u8> {
        let mut k = self.key(14);
        k.extend_from_slice(b"OL");
        k.extend_from_slice(&id.to_be_bytes());
        k.extend_from_slice(&size.to_be_bytes());
        k
    }

    /// `U{ino}`: directory statistics.
    pub fn dir_stat(&self, ino: Ino) -> Vec<u8> {
        let mut k = self.key(9);
        k.push(b'U');
        k.extend_from_slice(&ino.to_le_bytes());
        k
    }

    /// `QD{ino}`: a directory quota.
    pub fn dir_quota(&self, ino: Ino) -> Vec<u8> {
        let mut k = self.key(10);
        k.extend_from_slice(b"QD");
        k.extend_from_slice(&ino.to_le_bytes());
        k
    }

    /// `QU{uid}` (8 B BE, as JuiceFS's `fmtKey` of a `uint64`): a user's quota.
    pub fn user_quota(&self, uid: u64) -> Vec<u8> {
        let mut k = self.key(10);
        k.extend_from_slice(b"QU");
        k.extend_from_slice(&uid.to_be_bytes());
        k
    }

    /// `QG{gid}` (8 B BE): a group's quota.
    pub fn group_quota(&self, gid: u64) -> Vec<u8> {
        let mut k = self.key(10);
        k.extend_from_slice(b"QG");
        k.extend_from_slice(&gid.to_be_bytes());
        k
    }

    /// `R{id}`: a POSIX ACL rule.
    pub fn acl(&self, id: u32) -> Vec<u8> {
        let mut k = self.key(5);
        k.push(b'R');
        k.extend_from_slice(&id.to_be_bytes());
        k
    }

    /// The prefix `tag` (e.g. `SE`, `D`) under the volume prefix.
    pub fn tag(&self, tag: &[u8]) -> Vec<u8> {
        let mut k = self.key(tag.len());
        k.extend_from_slice(tag);
        k
    }

    /// The exclusive end of a scan over every key starting with `prefix`.
    pub fn end_of(prefix: &[u8]) -> Vec<u8> {
        prefix_end(prefix)
    }

    /// The first key of the volume and the exclusive end of all of its keys.
    pub fn volume_range(&self) -> (Vec<u8>, Vec<u8>) {
        (self.prefix.clone(), prefix_end(&self.prefix))
    }
}

/// Reads a little-endian inode number out of `b` at `at`.
pub(crate) fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    let s: [u8; 8] = b.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(s))
}

/// Reads a big-endian `u64` out of `b` at `at`.
pub(crate) fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    let s: [u8; 8] = b.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_be_bytes(s))
}

/// Reads a big-endian `u32` out of `b` at `at`.
pub(crate) fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    let s: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(s))
}

/// Encodes a timestamp value as JuiceFS's `packInt64` does (big-endian).
pub fn pack_int64(v: i64) -> [u8; 8] {
    v.to_be_bytes()
}

/// Decodes a `packInt64` value; `None` unless it is exactly 8 bytes.
pub fn parse_int64(v: &[u8]) -> Option<i64> {
    let b: [u8; 8] = v.try_into().ok()?;
    Some(i64::from_be_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes JuiceFS's `fmtKey` builds: `Ino` arguments little-endian, `uint32`/`uint64`
    /// big-endian, strings verbatim, after the prefix `vol` + 0xFD of an FDB URL.
    #[test]
    fn keys_match_juicefs_fmt_key() {
        let k = Keys::new(b"vol\xfd");
        let p = |rest: &[u8]| {
            let mut v = b"vol\xfd".to_vec();
            v.extend_from_slice(rest);
            v
        };
        let ino: Ino = 0x0102_0304_0506_0708;
        let ino_le = [8, 7, 6, 5, 4, 3, 2, 1];
        assert_eq!(k.setting(), p(b"setting"));
        assert_eq!(k.counter("nextInode"), p(b"CnextInode"));
        assert_eq!(k.counter(USED_SPACE), p(b"CusedSpace"));
        assert_eq!(k.counter(TOTAL_INODES), p(b"CtotalInodes"));
        assert_eq!(k.inode(1), p(b"A\x01\0\0\0\0\0\0\0I"));
        assert_eq!(k.inode(ino), p(&[&b"A"[..], &ino_le, b"I"].concat()));
        assert_eq!(k.entry(1, b"f\xff"), p(b"A\x01\0\0\0\0\0\0\0Df\xff"));
        assert_eq!(k.entries(1), p(b"A\x01\0\0\0\0\0\0\0D"));
        assert_eq!(
            k.parent(ino, 2),
            p(&[&b"A"[..], &ino_le, b"P", &[2, 0, 0, 0, 0, 0, 0, 0]].concat())
        );
        assert_eq!(
            k.chunk(2, 0x0a0b0c0d),
            p(b"A\x02\0\0\0\0\0\0\0C\x0a\x0b\x0c\x0d")
        );
        assert_eq!(k.symlink(3), p(b"A\x03\0\0\0\0\0\0\0S"));
        assert_eq!(k.xattr(3, b"user.a"), p(b"A\x03\0\0\0\0\0\0\0Xuser.a"));
        assert_eq!(
            k.delfile(ino, 0x10),
            p(&[&b"D"[..], &ino_le, &[0, 0, 0, 0, 0, 0, 0, 0x10]].concat())
        );
        assert_eq!(
            k.slice_ref(0x1122, 0x3344),
            p(&[
                &b"K"[..],
                &[0, 0, 0, 0, 0, 0, 0x11, 0x22],
                &[0, 0, 0x33, 0x44]
            ]
            .concat())
        );
        assert_eq!(k.session(5), p(b"SE\0\0\0\0\0\0\0\x05"));
        assert_eq!(k.legacy_session(5), p(b"SH\0\0\0\0\0\0\0\x05"));
        assert_eq!(k.session_info(5), p(b"SI\0\0\0\0\0\0\0\x05"));
        assert_eq!(
            k.sustained(5, ino),
            p(&[&b"SS\0\0\0\0\0\0\0\x05"[..], &ino_le].concat())
        );
        assert_eq!(k.dir_stat(1), p(b"U\x01\0\0\0\0\0\0\0"));
        assert_eq!(k.flock(1), p(b"F\x01\0\0\0\0\0\0\0"));
        assert_eq!(k.plock(1), p(b"P\x01\0\0\0\0\0\0\0"));
        assert_eq!(k.dir_quota(1), p(b"QD\x01\0\0\0\0\0\0\0"));
        assert_eq!(k.strip(&k.inode(1)), b"A\x01\0\0\0\0\0\0\0I");
        // This client's additions keep the same conventions.
        assert_eq!(
            k.opener(ino, 5),
            p(&[&b"OI"[..], &ino_le, b"\0\0\0\0\0\0\0\x05"].concat())
        );
        assert_eq!(
            k.load_occurrences(0x1122, 0x3344),
            p(&[
                &b"OL"[..],
                &[0, 0, 0, 0, 0, 0, 0x11, 0x22],
                &[0, 0, 0x33, 0x44]
            ]
            .concat())
        );
        assert_eq!(
            k.opened(5, ino),
            p(&[&b"OS\0\0\0\0\0\0\0\x05"[..], &ino_le].concat())
        );
    }

    #[test]
    fn number_helpers() {
        assert_eq!(pack_int64(1), [0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(parse_int64(&pack_int64(-5)), Some(-5));
        assert_eq!(parse_int64(&[1, 2]), None);
        assert_eq!(le_u64(&[9, 1, 0, 0, 0, 0, 0, 0, 0], 1), Some(1));
        assert_eq!(be_u64(&[0, 0, 0, 0, 0, 0, 0, 2], 0), Some(2));
        assert_eq!(be_u32(&[0, 0, 1, 0], 0), Some(256));
        assert_eq!(be_u32(&[0, 0, 1], 0), None);
    }
}
