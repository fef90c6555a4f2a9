//! Key names of JuiceFS 1.x's Redis schema.
//!
//! Every key starts with the volume's prefix: empty on a plain server (what `juicefs`
//! uses there), `{N}` with the database number on Redis Cluster (JuiceFS's hash tag that
//! puts all keys of a volume into one slot), or any prefix the caller chose.

use meta_api::Ino;

/// Builds the names of a volume's keys.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_string(),
        }
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    fn with(&self, name: &str) -> String {
        let mut s = String::with_capacity(self.prefix.len() + name.len());
        s.push_str(&self.prefix);
        s.push_str(name);
        s
    }

    /// `i{ino}`: the binary attributes.
    pub(crate) fn inode(&self, ino: Ino) -> String {
        format!("{}i{ino}", self.prefix)
    }

    /// `d{ino}`: the directory's entries, name → type + inode.
    pub(crate) fn entries(&self, ino: Ino) -> String {
        format!("{}d{ino}", self.prefix)
    }

    /// `p{ino}`: parent → link count, for inodes with several hard links.
    pub(crate) fn parents(&self, ino: Ino) -> String {
        format!("{}p{ino}", self.prefix)
    }

    /// `c{ino}_{indx}`: the slice records of one chunk.
    pub(crate) fn chunk(&self, ino: Ino, indx: u32) -> String {
        format!("{}c{ino}_{indx}", self.prefix)
    }

    /// `s{ino}`: a symlink's target.
    pub(crate) fn symlink(&self, ino: Ino) -> String {
        format!("{}s{ino}", self.prefix)
    }

    /// `x{ino}`: extended attributes.
    pub(crate) fn xattrs(&self, ino: Ino) -> String {
        format!("{}x{ino}", self.prefix)
    }

    /// `session{sid}`: the inodes a session sustains (unlinked while open).
    pub(crate) fn sustained(&self, sid: u64) -> String {
        format!("{}session{sid}", self.prefix)
    }

    /// `locked{sid}`: the lock keys a session holds locks in.
    pub(crate) fn locked(&self, sid: u64) -> String {
        format!("{}locked{sid}", self.prefix)
    }

    /// `o{ino}`: the sessions that have an inode open (this client's addition to the
    /// schema, so that an unlink by any client sustains a file open in another one).
    pub(crate) fn openers(&self, ino: Ino) -> String {
        format!("{}o{ino}", self.prefix)
    }

    /// `opened{sid}`: the inodes a session has open (reverse index of `o{ino}`, used when
    /// the session ends or is reaped).
    pub(crate) fn opened(&self, sid: u64) -> String {
        format!("{}opened{sid}", self.prefix)
    }

    /// `detachedNodes`: ZSET of detached clones (inode → Unix seconds it was started).
    pub(crate) fn detached_nodes(&self) -> String {
        self.with("detachedNodes")
    }

    /// `chunkTail`: inode → highest chunk index that may hold slices past the file's
    /// length after a shrink (this client's addition, so purging finds every chunk).
    pub(crate) fn chunk_tail(&self) -> String {
        self.with("chunkTail")
    }

    /// `txmark{token}`: the commit marker of one dedicated connection (see `txn`).
    pub(crate) fn txn_marker(&self, token: &str) -> String {
        format!("{}txmark{token}", self.prefix)
    }

    /// Whether `key` is a commit marker ([`Keys::txn_marker`]): a short-lived key of the
    /// connection, not a record of the volume.
    pub(crate) fn is_txn_marker(&self, key: &[u8]) -> bool {
        key.strip_prefix(self.prefix.as_bytes())
            .is_some_and(|k| k.starts_with(b"txmark"))
    }

    /// `loadSliceRefs`: `k{id}_{size}` → occurrences of the slice so far, while a load is
    /// under way (this client's addition; turned into `sliceRef` fields and removed when
    /// the load ends).
    pub(crate) fn load_slice_refs(&self) -> String {
        self.with("loadSliceRefs")
    }

    /// `setting`: the volume's settings JSON.
    pub(crate) fn setting(&self) -> String {
        self.with("setting")
    }

    /// `nextinode`: the last inode number handed out.
    pub(crate) fn next_inode(&self) -> String {
        self.with("nextinode")
    }

    /// `nextchunk`: the last slice id handed out.
    pub(crate) fn next_chunk(&self) -> String {
        self.with("nextchunk")
    }

    /// `nextsession`: the last session id handed out.
    pub(crate) fn next_session(&self) -> String {
        self.with("nextsession")
    }

    /// `usedSpace`: bytes in use (each inode rounded up to 4 KiB).
    pub(crate) fn used_space(&self) -> String {
        self.with("usedSpace")
    }

    /// `totalInodes`: inodes in use.
    pub(crate) fn total_inodes(&self) -> String {
        self.with("totalInodes")
    }

    /// `delfiles`: deleted files waiting for their data to go, `ino:length` → time.
    pub(crate) fn delfiles(&self) -> String {
        self.with("delfiles")
    }

    /// `sliceRef`: `k{id}_{size}` → references minus one (a missing field is one reference).
    pub(crate) fn slice_refs(&self) -> String {
        self.with("sliceRef")
    }

    /// `delSlices`: `{id}_{deleted secs}` → the slices a compaction replaced on a volume with
    /// trash days (JuiceFS's delayed slices, freed by the trash cleanup).
    pub(crate) fn delayed_slices(&self) -> String {
        self.with("delSlices")
    }

    /// `allSessions`: session id → expiry (Unix seconds).
    pub(crate) fn all_sessions(&self) -> String {
        self.with("allSessions")
    }

    /// `sessionInfos`: session id → JSON about the client.
    pub(crate) fn session_infos(&self) -> String {
        self.with("sessionInfos")
    }

    /// `dirDataLength`: directory → total length of its files.
    pub(crate) fn dir_data_length(&self) -> String {
        self.with("dirDataLength")
    }

    /// `dirUsedSpace`: directory → space used by its entries.
    pub(crate) fn dir_used_space(&self) -> String {
        self.with("dirUsedSpace")
    }

    /// `dirUsedInodes`: directory → number of entries.
    pub(crate) fn dir_used_inodes(&self) -> String {
        self.with("dirUsedInodes")
    }

    /// `dirQuota`: directory → packed quota limits.
    pub(crate) fn dir_quota(&self) -> String {
        self.with("dirQuota")
    }

    /// `dirQuotaUsedSpace`: directory → space counted against its quota.
    pub(crate) fn dir_quota_used_space(&self) -> String {
        self.with("dirQuotaUsedSpace")
    }

    /// `dirQuotaUsedInodes`: directory → inodes counted against its quota.
    pub(crate) fn dir_quota_used_inodes(&self) -> String {
        self.with("dirQuotaUsedInodes")
    }

    /// `acl`: POSIX ACL id (decimal) → the encoded rule.
    pub(crate) fn acl(&self) -> String {
        self.with("acl")
    }

    /// A counter named as JuiceFS names it on Redis (`nextCleanupSlices`, `lastCleanup*`).
    pub(crate) fn counter(&self, name: &str) -> String {
        self.with(name)
    }

    /// A `SCAN … MATCH` pattern for this volume's keys that continue with `tail` (itself a
    /// pattern): the prefix with the glob characters escaped.
    pub(crate) fn pattern(&self, tail: &str) -> String {
        let mut s = String::with_capacity(self.prefix.len() + tail.len() + 2);
        for c in self.prefix.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                s.push('\\');
            }
            s.push(c);
        }
        s.push_str(tail);
        s
    }

    /// The inode of an `i{ino}` key, `None` for other keys.
    pub(crate) fn parse_inode(&self, key: &str) -> Option<Ino> {
        digits(key.strip_prefix(&self.prefix)?.strip_prefix('i')?)?
            .parse()
            .ok()
    }

    /// The inode and index of a `c{ino}_{indx}` key, `None` for other keys.
    pub(crate) fn parse_chunk(&self, key: &str) -> Option<(Ino, u32)> {
        let (ino, indx) = key
            .strip_prefix(&self.prefix)?
            .strip_prefix('c')?
            .split_once('_')?;
        Some((digits(ino)?.parse().ok()?, digits(indx)?.parse().ok()?))
    }

    /// `aclMaxId`: the last POSIX ACL id handed out.
    pub(crate) fn acl_max_id(&self) -> String {
        self.with("aclMaxId")
    }
}

/// The `sliceRef` field of a slice: `k{id}_{size}`.
pub(crate) fn slice_ref_field(id: u64, size: u32) -> String {
    format!("k{id}_{size}")
}

/// `s` when it is a non-empty run of ASCII digits.
fn digits(s: &str) -> Option<&str> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then_some(s)
}

/// The slice of a `sliceRef` field `k{id}_{size}`, `None` for anything else.
pub(crate) fn parse_slice_ref_field(f: &[u8]) -> Option<(u64, u32)> {
    let (id, size) = std::str::from_utf8(f)
        .ok()?
        .strip_prefix('k')?
        .split_once('_')?;
    Some((digits(id)?.parse().ok()?, digits(size)?.parse().ok()?))
}

/// The `delfiles` member of a deleted file: `{ino}:{length}`.
pub(crate) fn delfile_member(ino: Ino, length: u64) -> String {
    format!("{ino}:{length}")
}

/// Parses a `delfiles` member; `None` for JuiceFS's legacy forms.
pub(crate) fn parse_delfile_member(m: &[u8]) -> Option<(Ino, u64)> {
    let s = std::str::from_utf8(m).ok()?;
    let (ino, len) = s.split_once(':')?;
    if len.contains(':') {
        return None;
    }
    Some((ino.parse().ok()?, len.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_juicefs() {
        let k = Keys::new("");
        assert_eq!(k.inode(1), "i1");
        assert_eq!(k.chunk(42, 3), "c42_3");
        assert_eq!(k.sustained(7), "session7");
        assert_eq!(k.next_inode(), "nextinode");
        assert_eq!(k.used_space(), "usedSpace");
        assert_eq!((k.acl(), k.acl_max_id()), ("acl".into(), "aclMaxId".into()));
        let k = Keys::new("{2}");
        assert_eq!(k.entries(5), "{2}d5");
        assert_eq!(k.setting(), "{2}setting");
        assert_eq!(slice_ref_field(9, 4096), "k9_4096");
        assert_eq!(delfile_member(3, 100), "3:100");
        assert_eq!(parse_delfile_member(b"3:100"), Some((3, 100)));
        assert_eq!(parse_delfile_member(b"3:100:5"), None);
        assert_eq!(parse_delfile_member(b"x:1"), None);
        assert_eq!(parse_slice_ref_field(b"k9_4096"), Some((9, 4096)));
        assert_eq!(parse_slice_ref_field(b"k9_"), None);
        assert_eq!(k.parse_chunk("{2}c42_3"), Some((42, 3)));
        assert_eq!(k.parse_chunk("c42_3"), None);
        assert_eq!(k.parse_inode("{2}i77"), Some(77));
        assert_eq!(k.parse_inode("{2}i7x"), None);
        assert_eq!(k.counter("nextCleanupSlices"), "{2}nextCleanupSlices");
        assert_eq!(Keys::new("a*[b]").pattern("c*"), "a\\*\\[b\\]c*");
        assert!(k.is_txn_marker(b"{2}txmark7"));
        assert!(!k.is_txn_marker(b"txmark7") && !k.is_txn_marker(b"{2}i1"));
        assert_eq!(k.load_slice_refs(), "{2}loadSliceRefs");
    }
}
