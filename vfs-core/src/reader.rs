//! The read path: chunk layouts from the engine (cached per open file), the slice overlay,
//! then ranged or whole-block reads through the block cache or from the store, every block
//! checked against the length in its key. Holes read as zeros; readahead asks the block
//! cache to prefetch the blocks ahead of a sequential reader.

use bytes::{Bytes, BytesMut};
use chunkstore::{BlockKey, ChunkStore, ChunkStoreExt, StoreError};
use futures::{StreamExt, TryStreamExt};
use meta_api::{overlay, Slice, CHUNK_BITS, CHUNK_SIZE};

use crate::file::OpenFile;
use crate::vfs::Inner;
use crate::{cache, Result, VfsError};

/// Block fetches one read runs at the same time.
const READ_PARALLELISM: usize = 16;

/// The part of one block a read needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BlockPart {
    key: String,
    block_len: u64,
    off: u64,
    len: u64,
}

enum Part {
    Zeros(usize),
    Block(BlockPart),
}

/// A part's bytes once fetched.
enum Got {
    Zeros(usize),
    Data(Bytes),
}

/// The blocks behind a visible piece of a slice, in order.
fn blocks_of(piece: &Slice, block_size: u32, hash_prefix: bool) -> Result<Vec<BlockPart>> {
    let bs = u64::from(block_size);
    let size = u64::from(piece.size);
    let start = u64::from(piece.off);
    let end = start + u64::from(piece.len);
    if end > size {
        return Err(VfsError::from(StoreError::Corrupt(format!(
            "slice {} is {size} bytes but a chunk uses {start}..{end} of it",
            piece.id
        ))));
    }
    let mut out = Vec::new();
    let mut at = start;
    while at < end {
        let index = at / bs;
        let block_start = index * bs;
        let block_len = bs.min(size - block_start);
        let take_end = end.min(block_start + block_len);
        // Block indexes and lengths fit in u32 because a slice is at most 4 GiB.
        let key = BlockKey::new(piece.id, index as u32, block_len as u32).to_key(hash_prefix);
        out.push(BlockPart {
            key,
            block_len,
            off: at - block_start,
            len: take_end - at,
        });
        at = take_end;
    }
    Ok(out)
}

/// Reads up to `size` bytes at `off`, clipped to the length this client sees. With
/// `whole_blocks` (a sequential reader), blocks are read through the block cache, which
/// fetches and keeps them whole; see [`fetch`] for random readers.
pub(crate) async fn read(
    inner: &Inner,
    of: &OpenFile,
    off: u64,
    size: usize,
    whole_blocks: bool,
) -> Result<Bytes> {
    let length = of.length();
    if off >= length || size == 0 {
        return Ok(Bytes::new());
    }
    let end = off.saturating_add(size as u64).min(length);
    let mut parts = Vec::new();
    let mut at = off;
    while at < end {
        let chunk = u32::try_from(at >> CHUNK_BITS).map_err(|_| VfsError::FileTooBig)?;
        // The offset within a chunk and the length read from it are below 2^26 + 1.
        let pos = (at & (CHUNK_SIZE - 1)) as u32;
        let n = (CHUNK_SIZE - u64::from(pos)).min(end - at) as u32;
        let layout = of.layout(inner, chunk).await?;
        for p in overlay::pieces(&layout, pos, n) {
            if p.id == 0 {
                parts.push(Part::Zeros(p.len as usize));
            } else {
                for b in blocks_of(&p, inner.block_size, inner.hash_prefix)? {
                    parts.push(Part::Block(b));
                }
            }
        }
        at += u64::from(n);
    }
    let total = (end - off) as usize;
    // Parts are moved into their futures: borrowing them would tie the read future to a
    // higher-ranked lifetime that keeps it from being `Send` in boxed contexts.
    let fetched: Vec<Got> = futures::stream::iter(parts)
        .map(|part| async move {
            match part {
                Part::Zeros(n) => Ok(Got::Zeros(n)),
                Part::Block(b) => fetch(inner, &b, whole_blocks).await.map(Got::Data),
            }
        })
        .buffered(READ_PARALLELISM)
        .try_collect()
        .await?;
    if let [Got::Data(only)] = fetched.as_slice() {
        return Ok(only.clone());
    }
    let mut out = BytesMut::with_capacity(total);
    for got in fetched {
        match got {
            Got::Data(d) => out.extend_from_slice(&d),
            Got::Zeros(n) => out.resize(out.len() + n, 0),
        }
    }
    Ok(out.freeze())
}

/// The bytes of one block part.
///
/// With a block cache, a part is read through it (the cache fetches the whole block once
/// and serves every later range of it) unless it is a small piece from the middle of a
/// block the cache does not hold and the reader is not sequential: then, as JuiceFS does
/// for reads of at most a quarter block at a non-zero offset, only that range is fetched,
/// so random small reads do not pull whole blocks. In writeback mode everything goes
/// through the cache, which also holds the blocks not uploaded yet. Without a cache, whole
/// blocks are fetched with their length checked and anything else as a ranged read.
async fn fetch(inner: &Inner, b: &BlockPart, whole_blocks: bool) -> Result<Bytes> {
    let whole = b.off == 0 && b.len == b.block_len;
    let data = match &inner.cached {
        Some(c) => {
            let small_random = !whole_blocks
                && b.off > 0
                && b.len <= u64::from(inner.block_size) / 4
                && !c.options().writeback
                && !cache::holds(c, &b.key);
            if small_random {
                inner.backing.get_range(&b.key, b.off, Some(b.len)).await?
            } else {
                c.get_range(&b.key, b.off, Some(b.len)).await?
            }
        }
        None if whole => inner.backing.get_block(&b.key, b.block_len).await?,
        None => inner.backing.get_range(&b.key, b.off, Some(b.len)).await?,
    };
    if data.len() as u64 != b.len {
        return Err(VfsError::from(StoreError::Corrupt(format!(
            "{}: {} bytes at {}, expected {} (block of {} bytes)",
            b.key,
            data.len(),
            b.off,
            b.len,
            b.block_len
        ))));
    }
    Ok(data)
}

/// Asks the block cache to prefetch the blocks behind file bytes `start..end` (best
/// effort: the cache drops requests when its queue is full).
pub(crate) async fn prefetch(inner: &Inner, of: &OpenFile, start: u64, end: u64) {
    let Some(c) = &inner.cached else {
        return;
    };
    let end = end.min(of.length());
    let mut last: Option<String> = None;
    let mut at = start;
    while at < end {
        let Ok(chunk) = u32::try_from(at >> CHUNK_BITS) else {
            return;
        };
        let pos = (at & (CHUNK_SIZE - 1)) as u32;
        let n = (CHUNK_SIZE - u64::from(pos)).min(end - at) as u32;
        let Ok(layout) = of.layout(inner, chunk).await else {
            return;
        };
        for p in overlay::pieces(&layout, pos, n) {
            if p.id == 0 {
                continue;
            }
            let Ok(blocks) = blocks_of(&p, inner.block_size, inner.hash_prefix) else {
                return;
            };
            for b in blocks {
                if last.as_ref() != Some(&b.key) {
                    c.prefetch(&b.key);
                    last = Some(b.key);
                }
            }
        }
        at += u64::from(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_map_to_block_ranges() {
        let piece = Slice {
            pos: 0,
            id: 7,
            size: 10,
            off: 3,
            len: 6,
        };
        let got = blocks_of(&piece, 4, false).unwrap();
        let want = vec![
            BlockPart {
                key: "chunks/0/0/7_0_4".into(),
                block_len: 4,
                off: 3,
                len: 1,
            },
            BlockPart {
                key: "chunks/0/0/7_1_4".into(),
                block_len: 4,
                off: 0,
                len: 4,
            },
            BlockPart {
                key: "chunks/0/0/7_2_2".into(),
                block_len: 2,
                off: 0,
                len: 1,
            },
        ];
        assert_eq!(got, want);
        let bad = Slice { len: 8, ..piece };
        assert_eq!(blocks_of(&bad, 4, false).unwrap_err().errno(), libc::EIO);
    }
}
