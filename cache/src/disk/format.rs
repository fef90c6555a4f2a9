//! The on-disk form of a cached or staged block, checked on every read.
//!
//! A file is `data | crc(page 0) … crc(page n-1) | footer`: one CRC32C (little-endian `u32`)
//! per 32 KiB page of data, then a 16-byte footer `"TSC1" | data_len: u64 LE |
//! crc32c(page crcs ‖ data_len LE)`. The file length alone determines the data length
//! ([`data_len_of`]), so an index can be rebuilt from a directory listing and a truncated
//! file is recognised without reading it; a range read checks only the pages it touches.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use bytes::Bytes;

/// Bytes covered by one checksum.
pub(crate) const PAGE: u64 = 32 * 1024;
const MAGIC: [u8; 4] = *b"TSC1";
const FOOTER: u64 = 16;

/// Why a cache file could not be used.
#[derive(Debug)]
pub(crate) enum Fault {
    /// The file does not exist (evicted, deleted, or its directory vanished).
    Missing,
    /// The file exists but its bytes are wrong: short, bad footer, checksum mismatch.
    Corrupt(String),
    /// The disk failed to read it.
    Io(io::Error),
}

impl From<io::Error> for Fault {
    fn from(e: io::Error) -> Fault {
        match e.kind() {
            io::ErrorKind::NotFound => Fault::Missing,
            // The file shrank between the length check and the read.
            io::ErrorKind::UnexpectedEof => Fault::Corrupt("file shorter than expected".into()),
            _ => Fault::Io(e),
        }
    }
}

fn pages(data_len: u64) -> u64 {
    data_len.div_ceil(PAGE)
}

/// The length of the file holding `data_len` bytes of block data.
pub(crate) fn file_len(data_len: u64) -> u64 {
    data_len + 4 * pages(data_len) + FOOTER
}

/// The data length of a well-formed file of `file_len` bytes; `None` if no data length
/// gives that file length (the file was truncated or is not ours).
pub(crate) fn data_len_of(file_len: u64) -> Option<u64> {
    let body = file_len.checked_sub(FOOTER)?;
    // A body of n pages is at most n full pages plus their checksums.
    let n = body.div_ceil(PAGE + 4);
    let data_len = body.checked_sub(4 * n)?;
    (self::file_len(data_len) == file_len).then_some(data_len)
}

/// The checksums and footer that follow `data` in its file.
pub(crate) fn trailer(data: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity((4 * pages(data.len() as u64) + FOOTER) as usize);
    for page in data.chunks(PAGE as usize) {
        t.extend_from_slice(&crc32c::crc32c(page).to_le_bytes());
    }
    let len = (data.len() as u64).to_le_bytes();
    let tcrc = crc32c::crc32c_append(crc32c::crc32c(&t), &len);
    t.extend_from_slice(&MAGIC);
    t.extend_from_slice(&len);
    t.extend_from_slice(&tcrc.to_le_bytes());
    t
}

/// Writes `data` and its trailer to a new file at `path` (which must not exist); with
/// `durable`, the file's contents are on stable storage when this returns.
pub(crate) fn write_new(path: &Path, data: &[u8], durable: bool) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).create_new(true).open(path)?;
    f.write_all(data)?;
    f.write_all(&trailer(data))?;
    if durable {
        f.sync_all()?;
    }
    Ok(())
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

/// Reads bytes `[off, off + len)` of the block in `path` (`len = None`: to the end; a range
/// past the end is cut short), verifying the footer and every page the range touches.
pub(crate) fn read_range(path: &Path, off: u64, len: Option<u64>) -> Result<Bytes, Fault> {
    let f = File::open(path)?;
    let size = f.metadata()?.len();
    let Some(data_len) = data_len_of(size) else {
        return Err(Fault::Corrupt(format!(
            "file of {size} bytes is not a block file"
        )));
    };
    let mut footer = [0u8; FOOTER as usize];
    f.read_exact_at(&mut footer, size - FOOTER)?;
    if footer[..4] != MAGIC {
        return Err(Fault::Corrupt("bad magic".into()));
    }
    let len_bytes = &footer[4..12];
    if u64::from_le_bytes(len_bytes.try_into().unwrap_or_default()) != data_len {
        return Err(Fault::Corrupt(
            "footer length disagrees with file length".into(),
        ));
    }
    let mut table = vec![0u8; (4 * pages(data_len)) as usize];
    f.read_exact_at(&mut table, data_len)?;
    let tcrc = crc32c::crc32c_append(crc32c::crc32c(&table), len_bytes);
    if tcrc != le_u32(&footer[12..]) {
        return Err(Fault::Corrupt("checksum table damaged".into()));
    }

    let start = off.min(data_len);
    let end = match len {
        Some(l) => start.saturating_add(l).min(data_len),
        None => data_len,
    };
    if start == end {
        return Ok(Bytes::new());
    }
    let first = start / PAGE;
    let last = end.div_ceil(PAGE);
    let base = first * PAGE;
    let mut buf = vec![0u8; ((last * PAGE).min(data_len) - base) as usize];
    f.read_exact_at(&mut buf, base)?;
    for (i, page) in buf.chunks(PAGE as usize).enumerate() {
        let p = first as usize + i;
        if crc32c::crc32c(page) != le_u32(&table[4 * p..]) {
            return Err(Fault::Corrupt(format!("checksum mismatch in page {p}")));
        }
    }
    Ok(Bytes::from(buf).slice((start - base) as usize..(end - base) as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn length_inverse_is_exact() {
        let p = PAGE as usize;
        for n in [
            0,
            1,
            2,
            p - 1,
            p,
            p + 1,
            2 * p,
            3 * p + 7,
            4 << 20,
            (4 << 20) + 1,
        ] {
            let f = file_len(n as u64);
            assert_eq!(data_len_of(f), Some(n as u64), "{n}");
        }
        // Every file length maps back to at most one data length, and impossible ones to none.
        let bound = 3 * (PAGE + 4) + FOOTER + 10;
        let mut seen = 0;
        for f in 0..bound {
            if let Some(d) = data_len_of(f) {
                assert_eq!(file_len(d), f);
                seen += 1;
            }
        }
        assert_eq!(seen, (0..bound).filter(|&d| file_len(d) < bound).count());
        assert_eq!(data_len_of(FOOTER + 4), None);
        assert_eq!(data_len_of(3), None);
    }

    #[test]
    fn round_trip_whole_and_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let p = PAGE as usize;
        for n in [0usize, 1, p, p + 1, 3 * p + 5] {
            let path = dir.path().join(format!("b{n}"));
            let data = pattern(n);
            write_new(&path, &data, n % 2 == 0).unwrap();
            assert_eq!(std::fs::metadata(&path).unwrap().len(), file_len(n as u64));
            assert_eq!(read_range(&path, 0, None).unwrap(), &data[..]);
            for (off, len) in [
                (0, Some(1)),
                (p as u64 - 1, Some(2)),
                (5, None),
                (n as u64, None),
            ] {
                let s = (off as usize).min(n);
                let e = len.map_or(n, |l| (s + l as usize).min(n));
                assert_eq!(
                    read_range(&path, off, len).unwrap(),
                    &data[s..e],
                    "{n} {off}"
                );
            }
            assert!(read_range(&path, n as u64 + 10, Some(4))
                .unwrap()
                .is_empty());
        }
        assert!(write_new(&dir.path().join("b1"), b"x", false).is_err());
    }

    #[test]
    fn every_damaged_byte_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b");
        let data = pattern(2 * PAGE as usize + 100);
        write_new(&path, &data, false).unwrap();
        let good = std::fs::read(&path).unwrap();
        // One byte in each region: first page, last page, checksum table, footer.
        let n = data.len();
        for pos in [
            0,
            n - 1,
            n + 2,
            good.len() - 10,
            good.len() - 1,
            good.len() - 16,
        ] {
            let mut bad = good.clone();
            bad[pos] ^= 0x40;
            std::fs::write(&path, &bad).unwrap();
            assert!(
                matches!(read_range(&path, 0, None), Err(Fault::Corrupt(_))),
                "flip at {pos}"
            );
        }
        // A range that avoids the damaged page still reads, checked.
        let mut bad = good.clone();
        bad[n - 1] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        assert_eq!(read_range(&path, 0, Some(10)).unwrap(), &data[..10]);
        assert!(matches!(
            read_range(&path, n as u64 - 2, None),
            Err(Fault::Corrupt(_))
        ));
    }

    #[test]
    fn truncated_and_missing_files_are_faults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b");
        write_new(&path, &pattern(1000), false).unwrap();
        let good = std::fs::read(&path).unwrap();
        for cut in [0, 1, 500, good.len() - 1] {
            std::fs::write(&path, &good[..cut]).unwrap();
            assert!(
                matches!(read_range(&path, 0, None), Err(Fault::Corrupt(_))),
                "{cut}"
            );
        }
        assert!(matches!(
            read_range(&dir.path().join("nope"), 0, None),
            Err(Fault::Missing)
        ));
    }
}
