//! JuiceFS's object-key layout for blocks, and the rules every key must follow.
//!
//! A slice's bytes are stored as blocks of at most `block_size` bytes. Block `index` of slice
//! `slice_id` whose length is `len` lives under
//! `chunks/{id/1_000_000}/{id/1000}/{id}_{index}_{len}`, or, when the volume was formatted with
//! `--hash-prefix`, under `chunks/{id%256 as two upper-case hex digits}/{id/1_000_000}/{id}_{index}_{len}`.
//! Keys are relative to the volume: the bucket holds them under `{volume name}/`
//! (see [`Prefixed`](crate::Prefixed)).

use std::fmt;
use std::num::NonZeroU32;

use crate::{Result, StoreError};

/// The longest key a store accepts, in bytes (S3's limit).
pub const MAX_KEY_LEN: usize = 1024;

/// The first path segment of every block key.
pub const CHUNKS_DIR: &str = "chunks";

/// Checks that `key` is a well-formed object key: non-empty, at most [`MAX_KEY_LEN`] bytes,
/// relative, made of non-empty `/`-separated segments none of which is `.` or `..`, no NUL.
///
/// Every backend calls this first so that a key means the same object on every store (a
/// local directory cannot tell `a//b` from `a/b`, nor `a/../b` from `b`).
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(StoreError::Invalid("empty key".into()));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(StoreError::Invalid(format!(
            "key is {} bytes, more than {MAX_KEY_LEN}",
            key.len()
        )));
    }
    if key.contains('\0') {
        return Err(StoreError::Invalid(format!("key contains NUL: {key:?}")));
    }
    for seg in key.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." {
            return Err(StoreError::Invalid(format!(
                "key {key:?} has an empty, '.' or '..' segment"
            )));
        }
    }
    Ok(())
}

/// The identity of one block: which slice, which block of it, how many bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockKey {
    /// The slice id (from the metadata engine's `nextChunk` counter).
    pub slice_id: u64,
    /// The block's index within the slice, from 0.
    pub index: u32,
    /// The block's length in bytes (the last block of a slice is usually shorter).
    pub len: u32,
}

impl BlockKey {
    /// A block key.
    pub fn new(slice_id: u64, index: u32, len: u32) -> BlockKey {
        BlockKey {
            slice_id,
            index,
            len,
        }
    }

    /// The object key, relative to the volume, in the plain or the hash-prefixed layout.
    pub fn to_key(&self, hash_prefix: bool) -> String {
        let id = self.slice_id;
        if hash_prefix {
            format!(
                "{CHUNKS_DIR}/{:02X}/{}/{}_{}_{}",
                id % 256,
                id / 1_000_000,
                id,
                self.index,
                self.len
            )
        } else {
            format!(
                "{CHUNKS_DIR}/{}/{}/{}_{}_{}",
                id / 1_000_000,
                id / 1000,
                id,
                self.index,
                self.len
            )
        }
    }

    /// Parses a key relative to the volume (`chunks/…`) in either layout. Only keys exactly
    /// as [`to_key`](Self::to_key) writes them are accepted (no leading zeros, directories
    /// consistent with the id), so that `parse(k).to_key(..) == k`.
    pub fn parse(key: &str) -> Option<BlockKey> {
        Self::parse_with_layout(key).map(|(b, _)| b)
    }

    /// Like [`parse`](Self::parse), also telling whether the key uses the hash-prefixed layout.
    pub fn parse_with_layout(key: &str) -> Option<(BlockKey, bool)> {
        let rest = key.strip_prefix(CHUNKS_DIR)?.strip_prefix('/')?;
        let mut segs = rest.split('/');
        let (_dir1, _dir2, name) = (segs.next()?, segs.next()?, segs.next()?);
        if segs.next().is_some() {
            return None;
        }
        let mut parts = name.split('_');
        let slice_id = parse_decimal::<u64>(parts.next()?)?;
        let index = parse_decimal::<u32>(parts.next()?)?;
        let len = parse_decimal::<u32>(parts.next()?)?;
        if parts.next().is_some() {
            return None;
        }
        let block = BlockKey::new(slice_id, index, len);
        // The directories are derived from the id; re-rendering checks them without ambiguity
        // (the plain layout's first directory is never two hex digits with the same second one).
        [false, true]
            .into_iter()
            .find(|&hp| block.to_key(hp) == key)
            .map(|hp| (block, hp))
    }

    /// Parses a key that may carry a prefix before its `chunks/` segment (such as the
    /// volume name, `myvol/chunks/…`). Returns the prefix (empty or ending in `/`) and the block.
    pub fn parse_prefixed(key: &str) -> Option<(&str, BlockKey)> {
        let mut start = 0;
        loop {
            let rest = &key[start..];
            if let Some(b) = Self::parse(rest) {
                return Some((&key[..start], b));
            }
            // Move to the next segment boundary.
            let slash = rest.find('/')?;
            start += slash + 1;
        }
    }
}

impl fmt::Display for BlockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}_{}", self.slice_id, self.index, self.len)
    }
}

/// Parses a canonical decimal number: digits only, no sign, no leading zero unless it is `0`.
fn parse_decimal<T: std::str::FromStr>(s: &str) -> Option<T> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if canonical {
        s.parse().ok()
    } else {
        None
    }
}

/// The blocks of a slice of `slice_len` bytes cut into blocks of `block_size` bytes, in order;
/// every block is `block_size` long except the last, which holds the remainder. A slice of
/// length 0 has no blocks.
pub fn slice_blocks(slice_id: u64, slice_len: u32, block_size: NonZeroU32) -> SliceBlocks {
    SliceBlocks {
        slice_id,
        slice_len,
        block_size: block_size.get(),
        next: 0,
    }
}

/// Iterator over the blocks of a slice; see [`slice_blocks`].
#[derive(Debug, Clone)]
pub struct SliceBlocks {
    slice_id: u64,
    slice_len: u32,
    block_size: u32,
    next: u32,
}

impl SliceBlocks {
    fn total(&self) -> u32 {
        self.slice_len.div_ceil(self.block_size)
    }
}

impl Iterator for SliceBlocks {
    type Item = BlockKey;

    fn next(&mut self) -> Option<BlockKey> {
        if self.next >= self.total() {
            return None;
        }
        let start = u64::from(self.next) * u64::from(self.block_size);
        let remain = u64::from(self.slice_len) - start;
        // `remain` is at most `slice_len`, so it fits in u32.
        let len = remain.min(u64::from(self.block_size)) as u32;
        let b = BlockKey::new(self.slice_id, self.next, len);
        self.next += 1;
        Some(b)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.total().saturating_sub(self.next) as usize;
        (n, Some(n))
    }
}

impl ExactSizeIterator for SliceBlocks {}

#[cfg(test)]
mod tests {
    use super::*;

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    #[test]
    fn plain_layout_matches_juicefs() {
        assert_eq!(
            BlockKey::new(5000, 9, 4194304).to_key(false),
            "chunks/0/5/5000_9_4194304"
        );
        assert_eq!(
            BlockKey::new(1_234_567_890, 0, 17).to_key(false),
            "chunks/1234/1234567/1234567890_0_17"
        );
        assert_eq!(BlockKey::new(1, 0, 5).to_key(false), "chunks/0/0/1_0_5");
    }

    #[test]
    fn hash_layout_matches_juicefs() {
        assert_eq!(
            BlockKey::new(5000, 9, 4194304).to_key(true),
            "chunks/88/0/5000_9_4194304"
        );
        assert_eq!(BlockKey::new(255, 0, 1).to_key(true), "chunks/FF/0/255_0_1");
        assert_eq!(
            BlockKey::new(10_000_010, 2, 3).to_key(true),
            "chunks/8A/10/10000010_2_3"
        );
    }

    #[test]
    fn parse_round_trips_both_layouts() {
        for id in [
            0u64,
            1,
            999,
            1000,
            5000,
            999_999,
            1_000_000,
            10_000_010,
            u64::MAX,
        ] {
            for hp in [false, true] {
                let b = BlockKey::new(id, 3, 4096);
                let k = b.to_key(hp);
                assert_eq!(BlockKey::parse_with_layout(&k), Some((b, hp)), "{k}");
            }
        }
    }

    #[test]
    fn parse_rejects_non_canonical_keys() {
        for k in [
            "chunks/0/0/01_0_5",
            "chunks/0/0/1_00_5",
            "chunks/0/0/1_0_+5",
            "chunks/0/1/1_0_5",
            "chunks/1/0/1_0_5",
            "chunks/0/0/1_0",
            "chunks/0/0/1_0_5_6",
            "chunks/0/0/1_0_5/x",
            "chunks/0/1_0_5",
            "chunks/02/0/1_0_5",
            "chunks/ff/0/255_0_1",
            "chunks/0/0/1_0_99999999999",
            "chunk/0/0/1_0_5",
            "/chunks/0/0/1_0_5",
            "",
        ] {
            assert_eq!(BlockKey::parse(k), None, "{k}");
        }
    }

    #[test]
    fn parse_prefixed_finds_the_chunks_segment() {
        let b = BlockKey::new(1, 0, 5);
        assert_eq!(BlockKey::parse_prefixed("chunks/0/0/1_0_5"), Some(("", b)));
        assert_eq!(BlockKey::parse_prefixed("chunks/01/0/1_0_5"), Some(("", b)));
        assert_eq!(
            BlockKey::parse_prefixed("vol/chunks/0/0/1_0_5"),
            Some(("vol/", b))
        );
        assert_eq!(
            BlockKey::parse_prefixed("chunks/chunks/0/0/1_0_5"),
            Some(("chunks/", b))
        );
        assert_eq!(BlockKey::parse_prefixed("a/b/chunks/02/0/1_0_5"), None);
        assert_eq!(
            BlockKey::parse_prefixed("a/b/chunks/0/0/1_0_5"),
            Some(("a/b/", b))
        );
        assert_eq!(BlockKey::parse_prefixed("vol/juicefs_uuid"), None);
        assert_eq!(BlockKey::parse_prefixed("xchunks/0/0/1_0_5"), None);
    }

    #[test]
    fn slice_blocks_cuts_the_last_block_short() {
        let v: Vec<_> = slice_blocks(7, 10, nz(4)).collect();
        assert_eq!(
            v,
            vec![
                BlockKey::new(7, 0, 4),
                BlockKey::new(7, 1, 4),
                BlockKey::new(7, 2, 2)
            ]
        );
        assert_eq!(slice_blocks(7, 8, nz(4)).len(), 2);
        assert_eq!(slice_blocks(7, 0, nz(4)).count(), 0);
        let big: Vec<_> = slice_blocks(1, u32::MAX, nz(1 << 22)).collect();
        assert_eq!(big.len(), 1024);
        assert_eq!(big[1023].len, (1 << 22) - 1);
        assert_eq!(
            big.iter().map(|b| u64::from(b.len)).sum::<u64>(),
            u64::from(u32::MAX)
        );
    }

    #[test]
    fn validate_key_rules() {
        for ok in ["a", "vol/chunks/0/0/1_0_5", ".hidden", "a/.b/c", "a b/ü"] {
            assert!(validate_key(ok).is_ok(), "{ok}");
        }
        let long = "x".repeat(MAX_KEY_LEN + 1);
        for bad in [
            "",
            "/a",
            "a/",
            "a//b",
            "./a",
            "a/../b",
            "..",
            "a\0b",
            long.as_str(),
        ] {
            assert!(
                matches!(validate_key(bad), Err(StoreError::Invalid(_))),
                "{bad:?}"
            );
        }
    }
}
