//! The records `copy_file_range` appends to its destination, the same for every engine.
//!
//! The copy references the source's visible pieces at the destination offsets; where the
//! source range has no chunk at all it reads as zeros, so the destination only needs hole
//! records in the chunks it already has there. The work follows the chunks that exist on
//! either side, never the length of the range (a 128 PiB sparse file copies in a moment).

use std::collections::{BTreeMap, BTreeSet};

use crate::{overlay, Slice, CHUNK_SIZE};

/// The first and last chunk index of the byte range `off..off+len` (`len > 0`).
pub fn chunk_span(off: u64, len: u64) -> (u32, u32) {
    let first = off / CHUNK_SIZE;
    let last = (off + len - 1) / CHUNK_SIZE;
    (
        u32::try_from(first).unwrap_or(u32::MAX),
        u32::try_from(last).unwrap_or(u32::MAX),
    )
}

/// The records to append to the destination, as `(chunk index, record)` in order, for a
/// copy of `size` bytes (`size > 0`) from `src_off` to `dst_off`. `src_chunks` holds the
/// records of the source's chunks in the range that exist; `dst_chunks` the indexes of the
/// destination's chunks in its range that exist.
pub fn records(
    src_chunks: &BTreeMap<u32, Vec<Slice>>,
    dst_chunks: &BTreeSet<u32>,
    src_off: u64,
    dst_off: u64,
    size: u64,
) -> Vec<(u32, Slice)> {
    let end = src_off + size;
    let mut out = Vec::new();
    // Destination ranges filled from existing source chunks, in order.
    let mut covered: Vec<(u64, u64)> = Vec::new();
    let (first, last) = chunk_span(src_off, size);
    for (&indx, recs) in src_chunks.range(first..=last) {
        let base = u64::from(indx) * CHUNK_SIZE;
        let (lo, hi) = (src_off.max(base), end.min(base + CHUNK_SIZE));
        if lo >= hi {
            continue;
        }
        let layout = overlay::build(recs);
        for piece in overlay::pieces(&layout, (lo - base) as u32, (hi - lo) as u32) {
            let at = base + u64::from(piece.pos) - src_off + dst_off;
            place(&mut out, at, piece);
        }
        covered.push((lo - src_off + dst_off, hi - src_off + dst_off));
    }
    let (dlo, dhi) = (dst_off, dst_off + size);
    let (dfirst, dlast) = chunk_span(dst_off, size);
    for &d in dst_chunks.range(dfirst..=dlast) {
        let base = u64::from(d) * CHUNK_SIZE;
        let (a, b) = (dlo.max(base), dhi.min(base + CHUNK_SIZE));
        let mut at = a;
        for &(c0, c1) in &covered {
            if c1 <= at {
                continue;
            }
            if c0 >= b {
                break;
            }
            if c0 > at {
                out.push((d, Slice::hole((at - base) as u32, (c0 - at) as u32)));
            }
            at = at.max(c1);
        }
        if at < b {
            out.push((d, Slice::hole((at - base) as u32, (b - at) as u32)));
        }
    }
    out
}

/// Places `piece` at destination offset `at`, split where it crosses a chunk boundary.
fn place(out: &mut Vec<(u32, Slice)>, mut at: u64, piece: Slice) {
    let mut done = 0u32;
    while done < piece.len {
        let dpos = (at % CHUNK_SIZE) as u32;
        let n = (piece.len - done).min((CHUNK_SIZE - u64::from(dpos)) as u32);
        let rec = if piece.id == 0 {
            Slice::hole(dpos, n)
        } else {
            Slice {
                pos: dpos,
                id: piece.id,
                size: piece.size,
                off: piece.off + done,
                len: n,
            }
        };
        out.push((u32::try_from(at / CHUNK_SIZE).unwrap_or(u32::MAX), rec));
        at += u64::from(n);
        done += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(pos: u32, id: u64, len: u32) -> Slice {
        Slice {
            pos,
            id,
            size: len,
            off: 0,
            len,
        }
    }

    #[test]
    fn pieces_split_at_destination_chunks() {
        let src: BTreeMap<u32, Vec<Slice>> = [(0, vec![s(0, 7, 100)])].into();
        // 100 bytes, of which 50 are past the slice (a hole), straddling chunks 0 and 1.
        let got = records(&src, &BTreeSet::new(), 50, CHUNK_SIZE - 30, 100);
        let c = CHUNK_SIZE as u32;
        assert_eq!(
            got,
            vec![
                (
                    0,
                    Slice {
                        pos: c - 30,
                        id: 7,
                        size: 100,
                        off: 50,
                        len: 30
                    }
                ),
                (
                    1,
                    Slice {
                        pos: 0,
                        id: 7,
                        size: 100,
                        off: 80,
                        len: 20
                    }
                ),
                (1, Slice::hole(20, 50)),
            ]
        );
    }

    #[test]
    fn missing_source_chunks_only_hole_existing_destination_chunks() {
        let last = u32::MAX >> 1;
        let src: BTreeMap<u32, Vec<Slice>> = [(last, vec![s(0, 9, 10)])].into();
        let dst: BTreeSet<u32> = [0, 5].into();
        let size = u64::from(last) * CHUNK_SIZE + 10;
        let got = records(&src, &dst, 0, 0, size);
        assert_eq!(
            got,
            vec![
                (last, s(0, 9, 10)),
                (0, Slice::hole(0, CHUNK_SIZE as u32)),
                (5, Slice::hole(0, CHUNK_SIZE as u32)),
            ]
        );
    }

    #[test]
    fn covered_parts_of_a_destination_chunk_get_no_hole() {
        // Source chunk 1 exists; copied 1:1 with a shift of half a chunk, destination chunk
        // 1 exists: its first half is copied data, the second half is a hole from source
        // chunk 2 (missing).
        let half = (CHUNK_SIZE / 2) as u32;
        let src: BTreeMap<u32, Vec<Slice>> = [(1, vec![s(0, 3, CHUNK_SIZE as u32)])].into();
        let dst: BTreeSet<u32> = [1].into();
        let got = records(
            &src,
            &dst,
            CHUNK_SIZE + u64::from(half),
            CHUNK_SIZE,
            CHUNK_SIZE,
        );
        assert_eq!(
            got,
            vec![
                (
                    1,
                    Slice {
                        pos: 0,
                        id: 3,
                        size: CHUNK_SIZE as u32,
                        off: half,
                        len: half
                    }
                ),
                (1, Slice::hole(half, half)),
            ]
        );
    }
}
