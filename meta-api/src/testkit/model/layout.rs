//! Which bytes a read of a chunk returns, found the obvious way instead of by
//! [`crate::overlay`] (which every engine shares): each slice, in write order, paints the
//! bytes it covers within the range read; the last paint of a byte wins and a byte
//! nobody painted is a hole. Runs of bytes painted by one slice become one piece.
//!
//! Slow (every byte of the range is visited once per slice covering it) but simple. The
//! range is painted a window at a time, so memory stays bounded by the window whatever
//! the range or the chunk size.

use crate::Slice;

/// Bytes painted at once.
const WINDOW: u64 = 64 * 1024;

/// What painted one byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Paint {
    /// Nothing, or a hole record (`id == 0`): the byte reads as zero.
    Hole,
    /// The slice with this index in write order.
    Data(usize),
}

/// The pieces a reader of `pos..pos+len` of a chunk sees, given the chunk's slices in
/// write order: in order, covering the range exactly. A data piece is a part of one
/// slice (`off` moved to where the piece starts in that slice's object); a hole has
/// `id`, `size` and `off` 0.
pub(super) fn read(slices: &[Slice], pos: u32, len: u32) -> Vec<Slice> {
    let start = u64::from(pos);
    let end = start + u64::from(len);
    let mut out: Vec<Slice> = Vec::new();
    let mut last: Option<Paint> = None;
    let mut window = start;
    while window < end {
        let window_end = (window + WINDOW).min(end);
        let mut painted = vec![Paint::Hole; (window_end - window) as usize];
        for (i, s) in slices.iter().enumerate() {
            let paint = if s.id == 0 {
                Paint::Hole
            } else {
                Paint::Data(i)
            };
            let from = u64::from(s.pos).max(window);
            let to = (u64::from(s.pos) + u64::from(s.len)).min(window_end);
            for byte in from..to {
                painted[(byte - window) as usize] = paint;
            }
        }
        for (k, &paint) in painted.iter().enumerate() {
            let at = window + k as u64;
            match out.last_mut() {
                Some(piece) if last == Some(paint) => piece.len += 1,
                _ => out.push(piece_at(slices, paint, at)),
            }
            last = Some(paint);
        }
        window = window_end;
    }
    out
}

/// A one-byte piece at chunk position `at` of what `paint` says.
fn piece_at(slices: &[Slice], paint: Paint, at: u64) -> Slice {
    let at = at as u32;
    match paint {
        Paint::Data(i) => {
            let s = slices[i];
            Slice {
                pos: at,
                id: s.id,
                size: s.size,
                off: s.off + (at - s.pos),
                len: 1,
            }
        }
        Paint::Hole => Slice {
            pos: at,
            id: 0,
            size: 0,
            off: 0,
            len: 1,
        },
    }
}

#[cfg(test)]
mod tests {
    //! Differential tests: [`read`] against [`crate::overlay`] on random slices.

    use proptest::prelude::*;

    use super::*;
    use crate::{overlay, CHUNK_SIZE};

    /// What each byte of a piece list reads as: `(id, size, offset in the object)`,
    /// zeros for a hole; `None` when the pieces do not cover `pos..pos+len` in order.
    fn bytes(pieces: &[Slice], pos: u32, len: u32) -> Option<Vec<(u64, u32, u32)>> {
        let mut at = pos;
        let mut out = Vec::new();
        for p in pieces {
            if p.pos != at || p.len == 0 {
                return None;
            }
            for i in 0..p.len {
                out.push(if p.id == 0 {
                    (0, 0, 0)
                } else {
                    (p.id, p.size, p.off + i)
                });
            }
            at += p.len;
        }
        (at == pos + len).then_some(out)
    }

    /// Slices near `base` (the start or the end of a chunk), some of them holes.
    fn slices(base: u32) -> impl Strategy<Value = Vec<Slice>> {
        let one = (0u32..300, 0u32..120, 0u64..6, 0u32..50, 0u32..20).prop_map(
            move |(pos, len, id, off, extra)| {
                let pos = (base + pos).min(CHUNK_SIZE as u32);
                let len = len.min(CHUNK_SIZE as u32 - pos);
                if id == 0 {
                    Slice {
                        pos,
                        id: 0,
                        size: 0,
                        off: 0,
                        len,
                    }
                } else {
                    Slice {
                        pos,
                        id,
                        size: off + len + extra,
                        off,
                        len,
                    }
                }
            },
        );
        proptest::collection::vec(one, 0..12)
    }

    fn case() -> impl Strategy<Value = (Vec<Slice>, u32, u32)> {
        prop_oneof![Just(0u32), Just(CHUNK_SIZE as u32 - 400)].prop_flat_map(|base| {
            (slices(base), 0u32..420, 0u32..420).prop_map(move |(s, a, len)| {
                let pos = (base + a).min(CHUNK_SIZE as u32);
                let len = len.min(CHUNK_SIZE as u32 - pos);
                (s, pos, len)
            })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn reads_agree_with_the_overlay((slices, pos, len) in case()) {
            let model = read(&slices, pos, len);
            let mut shared = overlay::pieces(&overlay::build(&slices), pos, len);
            // For an empty range that falls inside a piece of the layout, the overlay
            // returns that piece clipped to length 0 (no caller asks for an empty
            // range): a piece covering nothing, so it is dropped here.
            shared.retain(|p| p.len != 0);
            let mb = bytes(&model, pos, len);
            prop_assert!(mb.is_some(), "model pieces {:?} do not cover {}+{}", model, pos, len);
            let sb = bytes(&shared, pos, len);
            prop_assert!(sb.is_some(), "overlay pieces {:?} do not cover {}+{}", shared, pos, len);
            prop_assert_eq!(mb, sb, "slices {:?}", slices);
            prop_assert_eq!(
                crate::testkit::cases::normalize(model),
                crate::testkit::cases::normalize(shared)
            );
        }
    }

    #[test]
    fn newest_wins_and_holes_are_zeros() {
        let s = |pos, id, len| Slice {
            pos,
            id,
            size: len,
            off: 0,
            len,
        };
        let slices = [s(0, 1, 10), s(5, 2, 10), s(2, 0, 2)];
        let got = read(&slices, 0, 20);
        let want = vec![
            Slice {
                len: 2,
                ..s(0, 1, 10)
            },
            Slice {
                pos: 2,
                id: 0,
                size: 0,
                off: 0,
                len: 2,
            },
            Slice {
                pos: 4,
                off: 4,
                len: 1,
                ..s(0, 1, 10)
            },
            s(5, 2, 10),
            Slice {
                pos: 15,
                id: 0,
                size: 0,
                off: 0,
                len: 5,
            },
        ];
        assert_eq!(got, want);
        // A range wider than one window is painted in pieces but read as one.
        let big = [s(10, 3, 3 * WINDOW as u32)];
        let got = read(&big, 0, 4 * WINDOW as u32);
        assert_eq!(got.len(), 3);
        assert_eq!(got[1], big[0]);
        assert_eq!(got[2].pos, 10 + 3 * WINDOW as u32);
    }
}
