//! The slice overlay: turns a chunk's slices (in write order) into the byte ranges a
//! reader sees, newest write winning, gaps as holes.

use std::collections::BTreeMap;

use crate::Slice;

/// Builds the visible layout of a chunk from its slices in write order: a list of
/// non-overlapping pieces sorted by position, each either data (`id != 0`) or a hole
/// (`id == 0`). Gaps between pieces are holes too; a piece's `off` points into its slice.
///
/// The slices are taken newest first: each shows wherever no newer one covers it, and the
/// covered ranges are kept merged, so building a layout of `n` records costs
/// `O(n log n)`, not `O(n²)`.
pub fn build(slices: &[Slice]) -> Vec<Slice> {
    // Covered byte ranges, start -> end, disjoint.
    let mut covered: BTreeMap<u32, u32> = BTreeMap::new();
    let mut out: Vec<Slice> = Vec::new();
    for s in slices.iter().rev() {
        if s.len == 0 {
            continue;
        }
        let (start, end) = (s.pos, s.pos.saturating_add(s.len));
        let from = covered
            .range(..=start)
            .next_back()
            .map_or(start, |(&a, _)| a);
        let overlapping: Vec<(u32, u32)> =
            covered.range(from..end).map(|(&a, &b)| (a, b)).collect();
        let mut show = |lo: u32, hi: u32| {
            out.push(Slice {
                pos: lo,
                off: s.off + (lo - s.pos),
                len: hi - lo,
                ..*s
            })
        };
        let mut at = start;
        for &(a, b) in &overlapping {
            if b <= at {
                continue;
            }
            if a > at {
                show(at, a.min(end));
            }
            at = at.max(b);
            if at >= end {
                break;
            }
        }
        if at < end {
            show(at, end);
        }
        let (mut lo, mut hi) = (start, end);
        for (a, b) in overlapping {
            if b >= start {
                lo = lo.min(a);
                hi = hi.max(b);
                covered.remove(&a);
            }
        }
        covered.insert(lo, hi);
    }
    out.sort_by_key(|p| p.pos);
    out
}

/// The visible pieces of `layout` (from [`build`]) intersecting `pos..pos+len`, clipped
/// to that range, with holes filled in so the result covers the range exactly.
pub fn pieces(layout: &[Slice], pos: u32, len: u32) -> Vec<Slice> {
    let end = pos + len;
    let mut out = Vec::new();
    let mut at = pos;
    for p in layout {
        let pend = p.pos + p.len;
        if pend <= at || p.pos >= end {
            continue;
        }
        if p.pos > at {
            out.push(Slice {
                pos: at,
                id: 0,
                size: 0,
                off: 0,
                len: p.pos - at,
            });
            at = p.pos;
        }
        let cut_end = pend.min(end);
        out.push(Slice {
            pos: at,
            off: p.off + (at - p.pos),
            len: cut_end - at,
            ..*p
        });
        at = cut_end;
    }
    if at < end {
        out.push(Slice {
            pos: at,
            id: 0,
            size: 0,
            off: 0,
            len: end - at,
        });
    }
    out
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

    /// Byte-level reference: which slice id owns each byte.
    fn paint(slices: &[Slice], upto: u32) -> Vec<(u64, u32)> {
        let mut v = vec![(0u64, 0u32); upto as usize];
        for sl in slices {
            for i in 0..sl.len {
                v[(sl.pos + i) as usize] = (sl.id, sl.off + i);
            }
        }
        v
    }

    #[test]
    fn newest_wins_and_holes_fill() {
        let slices = [s(0, 1, 10), s(5, 2, 10), s(2, 3, 2), s(30, 4, 5)];
        let layout = build(&slices);
        let got = pieces(&layout, 0, 40);
        assert_eq!(got.iter().map(|p| p.len).sum::<u32>(), 40);
        let mut painted = vec![(0u64, 0u32); 40];
        for p in &got {
            for i in 0..p.len {
                painted[(p.pos + i) as usize] = if p.id == 0 { (0, 0) } else { (p.id, p.off + i) };
            }
        }
        assert_eq!(painted, paint(&slices, 40));
    }

    #[test]
    fn random_overlays_match_byte_painting() {
        let mut seed = 0x1234_5678_u64;
        let mut rnd = |m: u32| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % u64::from(m)) as u32
        };
        for _ in 0..300 {
            let n = 1 + rnd(8);
            let mut slices = Vec::new();
            for id in 1..=n {
                let pos = rnd(60);
                let len = 1 + rnd(30);
                let off = rnd(5);
                slices.push(Slice {
                    pos,
                    id: u64::from(id),
                    size: off + len,
                    off,
                    len,
                });
            }
            let layout = build(&slices);
            let (a, b) = (rnd(50), rnd(50));
            let (lo, hi) = (a.min(b), a.max(b) + 1);
            let got = pieces(&layout, lo, hi - lo);
            let want = paint(&slices, 100);
            let mut at = lo;
            for p in got {
                assert_eq!(p.pos, at);
                for i in 0..p.len {
                    let w = want[(p.pos + i) as usize];
                    let g = if p.id == 0 { (0, 0) } else { (p.id, p.off + i) };
                    assert_eq!(g, w);
                }
                at += p.len;
            }
            assert_eq!(at, hi);
        }
    }
}
