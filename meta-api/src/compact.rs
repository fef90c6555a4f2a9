//! Slice compaction planning, the same for every engine (JuiceFS's rules).
//!
//! Every write appends a slice record to its chunk; compaction rewrites the visible bytes of
//! a run of records as one new slice. This module decides *when* ([`on_write`],
//! [`on_read`]), *what* ([`plan`]: which records, which byte range, which pieces to copy)
//! and *how the chunk changes* ([`apply`]: commit only if the chunk still begins with the
//! records the plan read). Reading the pieces and writing the new slice's blocks is the
//! caller's (vfs-core's block writer); the engine only swaps records in one transaction.
//!
//! ```
//! use meta_api::{compact, Slice};
//!
//! let s = |pos, id, len| Slice { pos, id, size: len, off: 0, len };
//! // Three small overlapping writes: the visible bytes become one slice.
//! let chunk = [s(0, 1, 100), s(50, 2, 100), s(120, 3, 10)];
//! let p = compact::plan(&chunk).expect("worth compacting");
//! assert_eq!((p.pos, p.len, p.skipped), (0, 150, 0));
//! let ids: Vec<u64> = p.pieces.iter().map(|x| x.id).collect();
//! assert_eq!(ids, vec![1, 2, 3, 2]);
//! // Another client appended meanwhile: its record stays after the new one.
//! let mut now = chunk.to_vec();
//! now.push(s(0, 4, 1));
//! let after = compact::apply(&now, &p, 9).expect("the chunk still starts with what was read");
//! assert_eq!(after, vec![s(0, 9, 150), s(0, 4, 1)]);
//! ```

use crate::{overlay, Slice};

/// A chunk is compacted when it is read with at least this many records.
pub const READ_TRIGGER: usize = 5;
/// At most this many leading records are compacted at once (JuiceFS `maxCompactSlices`).
pub const MAX_COMPACT_SLICES: usize = 1000;
/// From this many records on, a write waits for the compaction of its chunk (JuiceFS
/// `maxSlices`): the chunk value must stay under the engines' value limits (FoundationDB
/// 100 kB = 4,166 records).
pub const SYNC_SLICES: usize = 2500;
/// Leading slices at least this long (and a fifth of what follows) are kept as they are.
const BIG_SLICE: u32 = 1 << 20;

/// What a write asks for after appending a record to its chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Nothing to do.
    None,
    /// Compact in the background.
    Background,
    /// Compact before the write returns (the chunk is near the value limits).
    Now,
}

/// The trigger of a write that left `records` records in its chunk: every hundredth record
/// (`% 100 == 99`) or beyond 350 in the background, from [`SYNC_SLICES`] on at once.
pub fn on_write(records: usize) -> Trigger {
    if records >= SYNC_SLICES {
        Trigger::Now
    } else if records % 100 == 99 || records > 350 {
        Trigger::Background
    } else {
        Trigger::None
    }
}

/// Whether a read of a chunk with `records` records should compact it in the background.
pub fn on_read(records: usize) -> bool {
    records >= READ_TRIGGER
}

/// One planned compaction of a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The records the plan read: the chunk must still begin with exactly these to commit.
    pub origin: Vec<Slice>,
    /// How many leading records of `origin` stay as they are (big slices still visible).
    pub skipped: usize,
    /// Where the new slice starts in the chunk.
    pub pos: u32,
    /// Its length (also its size: the new slice is written whole).
    pub len: u32,
    /// The visible pieces of `pos..pos+len`, in order, holes (`id == 0`) included: the new
    /// slice's bytes are these pieces' bytes, holes as zeros.
    pub pieces: Vec<Slice>,
}

impl Plan {
    /// The records the new slice replaces (holes included): their slices each lose one
    /// reference when the compaction commits.
    pub fn replaced(&self) -> &[Slice] {
        &self.origin[self.skipped..]
    }

    /// The record of the new slice `id`.
    pub fn record(&self, id: u64) -> Slice {
        Slice {
            pos: self.pos,
            id,
            size: self.len,
            off: 0,
            len: self.len,
        }
    }
}

/// The visible layout of `slices` with leading and trailing holes trimmed: `(pos, len,
/// pieces)`, `len == 0` when nothing is visible.
fn visible(slices: &[Slice]) -> (u32, u32, Vec<Slice>) {
    let layout = overlay::build(slices);
    let data: Vec<&Slice> = layout.iter().filter(|p| p.id != 0).collect();
    let (Some(first), Some(last)) = (data.first(), data.last()) else {
        return (0, 0, Vec::new());
    };
    let (pos, end) = (first.pos, last.pos + last.len);
    (pos, end - pos, overlay::pieces(&layout, pos, end - pos))
}

/// How many leading slices stay: each is big (at least 1 MiB and a fifth of what the rest
/// would compact to), is still the first visible piece of the rest, and is not written
/// again later in the chunk.
fn skip_some(slices: &[Slice]) -> usize {
    let mut skipped = 0;
    while skipped < slices.len() {
        let rest = &slices[skipped..];
        let first = rest[0];
        let (pos, len, pieces) = visible(rest);
        if first.len < BIG_SLICE || u64::from(first.len) * 5 < u64::from(len) || len == 0 {
            break;
        }
        let still_first = pieces.first().is_some_and(|p| {
            pos == first.pos && p.id == first.id && p.off == first.off && p.len == first.len
        });
        if !still_first || rest[1..].contains(&first) {
            break;
        }
        skipped += 1;
    }
    skipped
}

/// Plans the compaction of a chunk whose records are `slices` (in write order): `None`
/// when it is not worth it (fewer than two records to compact, or nothing visible).
pub fn plan(slices: &[Slice]) -> Option<Plan> {
    let origin = &slices[..slices.len().min(MAX_COMPACT_SLICES)];
    let skipped = skip_some(origin);
    let compacted = &origin[skipped..];
    if compacted.len() < 2 {
        return None;
    }
    let (pos, len, pieces) = visible(compacted);
    if len == 0 {
        return None;
    }
    // The skipped slices must not reach into the rewritten range: the new record goes
    // after them and would otherwise hide bytes they no longer show.
    if origin[..skipped]
        .iter()
        .any(|s| pos + len > s.pos && s.pos + s.len > pos)
    {
        return None;
    }
    Some(Plan {
        origin: origin.to_vec(),
        skipped,
        pos,
        len,
        pieces,
    })
}

/// The chunk's records after committing `plan` with the new slice `id`, given its records
/// `current` as read in the committing transaction: the skipped records, the new record,
/// then whatever was appended after the plan read the chunk. `None` when the chunk no
/// longer begins with the records the plan read (the compaction is wasted: delete the new
/// slice's objects).
pub fn apply(current: &[Slice], plan: &Plan, id: u64) -> Option<Vec<Slice>> {
    if !current.starts_with(&plan.origin) {
        return None;
    }
    let mut out = Vec::with_capacity(current.len() - plan.origin.len() + plan.skipped + 1);
    out.extend_from_slice(&plan.origin[..plan.skipped]);
    out.push(plan.record(id));
    out.extend_from_slice(&current[plan.origin.len()..]);
    Some(out)
}

/// JuiceFS's delayed-slice blob: 12-byte big-endian records `id u64 | size u32`, one per
/// replaced record with data (holes have no object).
pub fn encode_delayed(slices: &[Slice]) -> Vec<u8> {
    let mut out = Vec::with_capacity(slices.len() * 12);
    for s in slices.iter().filter(|s| s.id != 0) {
        out.extend_from_slice(&s.id.to_be_bytes());
        out.extend_from_slice(&s.size.to_be_bytes());
    }
    out
}

/// Reads a delayed-slice blob ([`encode_delayed`]) back as `(id, size)` pairs; `Corrupt`
/// when its length is not a multiple of 12. `what` names the record in the error.
pub fn decode_delayed(what: &str, blob: &[u8]) -> crate::Result<Vec<(u64, u32)>> {
    if !blob.len().is_multiple_of(12) {
        return Err(crate::MetaError::Corrupt(format!(
            "delayed slices {what} hold {} bytes, not a multiple of 12",
            blob.len()
        )));
    }
    Ok(blob
        .chunks_exact(12)
        .map(|r| {
            let (id, size) = r.split_at(8);
            let id = u64::from_be_bytes(id.try_into().unwrap_or([0; 8]));
            let size = u32::from_be_bytes(size.try_into().unwrap_or([0; 4]));
            (id, size)
        })
        .collect())
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

    /// The bytes a chunk shows over `0..n`, slice id per byte (0 = zero).
    fn paint(slices: &[Slice], n: u32) -> Vec<u64> {
        let mut out = vec![0; n as usize];
        for x in slices {
            for b in x.pos..(x.pos + x.len).min(n) {
                out[b as usize] = if x.id == 0 {
                    0
                } else {
                    x.id * 1_000_000 + u64::from(x.off + b - x.pos)
                };
            }
        }
        out
    }

    #[test]
    fn triggers_follow_juicefs() {
        assert_eq!(on_write(1), Trigger::None);
        assert_eq!(on_write(99), Trigger::Background);
        assert_eq!(on_write(100), Trigger::None);
        assert_eq!(on_write(351), Trigger::Background);
        assert_eq!(on_write(2499), Trigger::Background);
        assert_eq!(on_write(2500), Trigger::Now);
        assert!(!on_read(4) && on_read(5));
    }

    #[test]
    fn one_record_or_only_holes_are_not_worth_it() {
        assert_eq!(plan(&[s(0, 1, 10)]), None);
        assert_eq!(plan(&[s(0, 0, 10), s(5, 0, 10)]), None);
        assert_eq!(plan(&[]), None);
    }

    #[test]
    fn leading_and_trailing_holes_are_trimmed() {
        let p = plan(&[s(100, 1, 10), s(200, 2, 10), s(150, 0, 5)]).unwrap();
        assert_eq!((p.pos, p.len), (100, 110));
        assert_eq!(p.pieces.first().map(|x| x.id), Some(1));
        assert_eq!(p.pieces.last().map(|x| x.id), Some(2));
        let len: u32 = p.pieces.iter().map(|x| x.len).sum();
        assert_eq!(len, p.len);
    }

    #[test]
    fn big_leading_slices_are_skipped() {
        let big = s(0, 1, 8 << 20);
        let p = plan(&[big, s(8 << 20, 2, 100), s((8 << 20) + 50, 3, 100)]).unwrap();
        assert_eq!(p.skipped, 1);
        assert_eq!((p.pos, p.len), (8 << 20, 150));
        assert_eq!(p.replaced().len(), 2);
        // A big slice overwritten later is not skipped.
        let p = plan(&[big, s(0, 2, 100), s(50, 3, 100)]).unwrap();
        assert_eq!(p.skipped, 0);
    }

    #[test]
    fn at_most_a_thousand_records_are_taken() {
        let many: Vec<Slice> = (0..1500).map(|i| s(i, u64::from(i) + 1, 1)).collect();
        let p = plan(&many).unwrap();
        assert_eq!(p.origin.len(), MAX_COMPACT_SLICES);
        assert_eq!((p.pos, p.len), (0, 1000));
        let after = apply(&many, &p, 7).unwrap();
        assert_eq!(after.len(), 1 + 500);
        assert_eq!(after[0], s(0, 7, 1000));
    }

    #[test]
    fn a_changed_chunk_refuses_the_commit() {
        let chunk = [s(0, 1, 10), s(5, 2, 10)];
        let p = plan(&chunk).unwrap();
        assert_eq!(apply(&[s(0, 1, 10)], &p, 9), None);
        assert_eq!(apply(&[s(0, 3, 10), s(5, 2, 10)], &p, 9), None);
        assert_eq!(apply(&chunk, &p, 9), Some(vec![s(0, 9, 15)]));
    }

    #[test]
    fn compaction_never_changes_what_a_reader_sees() {
        // Deterministic pseudo-random chunks: the new record over the skipped ones must show
        // the same bytes as the old records, with the new slice's bytes taken from the
        // pieces in order.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        for round in 0..300 {
            let big = round % 50 == 0;
            let n = 2 + next(if big { 4 } else { 12 }) as usize;
            let chunk: Vec<Slice> = (0..n)
                .map(|i| {
                    let pos = next(2000) as u32;
                    let len = 1 + next(if big { 3 << 20 } else { 600 }) as u32;
                    let id = if next(5) == 0 { 0 } else { i as u64 + 1 };
                    Slice {
                        pos,
                        id,
                        size: if id == 0 { 0 } else { len },
                        off: 0,
                        len,
                    }
                })
                .collect();
            let Some(p) = plan(&chunk) else { continue };
            let end = chunk.iter().map(|s| s.pos + s.len).max().unwrap_or(0);
            let before = paint(&chunk, end);
            let after_records = apply(&chunk, &p, 999).unwrap();
            // Resolve the new slice's bytes through its pieces.
            let mut after = paint(&after_records, end);
            let mut at = p.pos;
            for piece in &p.pieces {
                for b in 0..piece.len {
                    after[(at + b) as usize] = if piece.id == 0 {
                        0
                    } else {
                        piece.id * 1_000_000 + u64::from(piece.off + b)
                    };
                }
                at += piece.len;
            }
            assert_eq!(before, after, "round {round}: {chunk:?}");
        }
    }

    #[test]
    fn delayed_blobs_round_trip() {
        let blob = encode_delayed(&[s(0, 7, 100), s(0, 0, 5), s(9, 1 << 40, 4096)]);
        assert_eq!(blob.len(), 24);
        assert_eq!(
            decode_delayed("x", &blob).unwrap(),
            vec![(7, 100), (1 << 40, 4096)]
        );
        assert!(matches!(
            decode_delayed("x", &blob[..13]),
            Err(crate::MetaError::Corrupt(_))
        ));
    }
}
