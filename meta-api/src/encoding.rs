//! JuiceFS's binary attribute encoding, used by the key-value engines (Redis, TKV).

use crate::{Attr, FileType, MetaError, Result, Timestamp};

/// Length of an encoded attribute without ACL ids.
pub const ATTR_BYTES: usize = 71;
/// Length of an encoded attribute with ACL ids.
pub const ATTR_BYTES_ACL: usize = ATTR_BYTES + 8;

/// Encodes attributes as JuiceFS does (big-endian): flags u8, mode u16 (type in the top
/// four bits), uid, gid, atime i64 + nsec u32, mtime, ctime, nlink u32, length u64,
/// rdev u32, parent u64, and the two ACL ids only when either is set.
pub fn encode_attr(a: &Attr) -> Vec<u8> {
    let mut w = Vec::with_capacity(ATTR_BYTES_ACL);
    w.push(a.flags);
    w.extend_from_slice(&(((a.typ as u16) << 12) | (a.mode & 0o7777)).to_be_bytes());
    w.extend_from_slice(&a.uid.to_be_bytes());
    w.extend_from_slice(&a.gid.to_be_bytes());
    for t in [a.atime, a.mtime, a.ctime] {
        w.extend_from_slice(&t.sec.to_be_bytes());
        w.extend_from_slice(&t.nsec.to_be_bytes());
    }
    w.extend_from_slice(&a.nlink.to_be_bytes());
    w.extend_from_slice(&a.length.to_be_bytes());
    w.extend_from_slice(&a.rdev.to_be_bytes());
    w.extend_from_slice(&a.parent.to_be_bytes());
    if a.access_acl != 0 || a.default_acl != 0 {
        w.extend_from_slice(&a.access_acl.to_be_bytes());
        w.extend_from_slice(&a.default_acl.to_be_bytes());
    }
    w
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        let end = self.pos + N;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| MetaError::Corrupt("attribute record too short".into()))?;
        self.pos = end;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.take()?))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.take()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.take()?))
    }
    fn time(&mut self) -> Result<Timestamp> {
        let sec = self.u64()? as i64;
        let nsec = self.u32()?;
        Ok(Timestamp { sec, nsec })
    }
}

/// Decodes what [`encode_attr`] wrote.
pub fn decode_attr(buf: &[u8]) -> Result<Attr> {
    let mut r = Reader { buf, pos: 0 };
    let flags = r.u8()?;
    let mode = r.u16()?;
    let typ = FileType::from_u8((mode >> 12) as u8)
        .ok_or_else(|| MetaError::Corrupt(format!("unknown file type in mode {mode:#o}")))?;
    let uid = r.u32()?;
    let gid = r.u32()?;
    let atime = r.time()?;
    let mtime = r.time()?;
    let ctime = r.time()?;
    let nlink = r.u32()?;
    let length = r.u64()?;
    let rdev = r.u32()?;
    let parent = r.u64()?;
    let (access_acl, default_acl) = if buf.len() >= ATTR_BYTES_ACL {
        (r.u32()?, r.u32()?)
    } else {
        (0, 0)
    };
    Ok(Attr {
        flags,
        typ,
        mode: mode & 0o7777,
        uid,
        gid,
        atime,
        mtime,
        ctime,
        nlink,
        length,
        rdev,
        parent,
        access_acl,
        default_acl,
    })
}

/// Encodes a directory entry value as JuiceFS does: type u8 then inode u64 (big-endian).
pub fn encode_entry(typ: FileType, ino: crate::Ino) -> [u8; 9] {
    let mut b = [0u8; 9];
    b[0] = typ as u8;
    b[1..].copy_from_slice(&ino.to_be_bytes());
    b
}

/// Decodes a directory entry value.
pub fn decode_entry(buf: &[u8]) -> Result<(FileType, crate::Ino)> {
    if buf.len() != 9 {
        return Err(MetaError::Corrupt(format!(
            "entry record of {} bytes",
            buf.len()
        )));
    }
    let typ = FileType::from_u8(buf[0])
        .ok_or_else(|| MetaError::Corrupt(format!("unknown entry type {}", buf[0])))?;
    let mut ino = [0u8; 8];
    ino.copy_from_slice(&buf[1..]);
    Ok((typ, u64::from_be_bytes(ino)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_round_trip_with_and_without_acl() {
        let mut a = Attr::new(
            FileType::Symlink,
            0o4755,
            7,
            8,
            Timestamp::new(1_700_000_000, 5),
        );
        a.length = 12;
        a.parent = 99;
        a.nlink = 3;
        let enc = encode_attr(&a);
        assert_eq!(enc.len(), ATTR_BYTES);
        assert_eq!(enc[1] >> 4, 3, "type sits in the top four bits of mode");
        assert_eq!(decode_attr(&enc).unwrap(), a);
        a.access_acl = 2;
        let enc = encode_attr(&a);
        assert_eq!(enc.len(), ATTR_BYTES_ACL);
        assert_eq!(decode_attr(&enc).unwrap(), a);
        assert!(decode_attr(&enc[..10]).is_err());
    }

    #[test]
    fn entry_round_trip() {
        let b = encode_entry(FileType::Directory, 0x0102);
        assert_eq!(b, [2, 0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(decode_entry(&b).unwrap(), (FileType::Directory, 0x0102));
        assert!(decode_entry(&b[..3]).is_err());
    }
}
