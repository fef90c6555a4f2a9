//! File locks: BSD `flock` locks and POSIX (`fcntl`) byte-range locks, with JuiceFS's
//! rules and encodings, written once for every engine.
//!
//! # What the engines store
//!
//! Locks belong to a [`LockOwner`]: the client's session and an `owner` number the
//! frontend picks (FUSE's `lock_owner`: one per open file description for `flock` and OFD
//! locks, one per process for classic `fcntl` locks). Two owners conflict even when they
//! are in the same session; one owner never conflicts with itself. Closing or reaping a
//! session drops all its locks.
//!
//! * A **BSD lock** is one [`LockType`] per owner and inode: any number of `Read` holders,
//!   or one `Write` holder. Stored as `'R'`/`'W'` ([`LockType::flock_byte`]).
//! * **POSIX locks** are a list of [`PlockRecord`]s per owner and inode: disjoint
//!   inclusive byte ranges `start..=end` sorted by `start`, each with its type and the
//!   locking process id. Stored as the concatenation of 24-byte records, big-endian
//!   `ltype u32 | pid u32 | start u64 | end u64`, with Linux's `F_RDLCK = 0`,
//!   `F_WRLCK = 1` ([`LockType::record_code`]) — exactly what JuiceFS writes, so that
//!   locks taken here are seen by `juicefs` clients of the same volume and the other way
//!   round.
//!
//! # The end of the file
//!
//! At this API a range that reaches the end of the file, however long it gets, ends at
//! `u64::MAX`. File offsets are signed in POSIX, so the kernel (and therefore a `juicefs`
//! mount) says the same with [`OFFSET_MAX`] (`i64::MAX`), and the FUSE kernel module
//! rejects any lock range past it with `EIO`. So every end at or past [`OFFSET_MAX`] is
//! stored as [`OFFSET_MAX`] — what `juicefs` clients write and can hand to their kernel —
//! and reported back as `u64::MAX`; a range that starts past it is `InvalidArgument`.
//! A FUSE frontend passes the kernel's `OFFSET_MAX` in as is and must clamp a reported
//! `u64::MAX` back to it.
//!
//! # The algebra
//!
//! [`update_records`] applies one `setlk` of an owner to what it holds: the new range
//! replaces every overlapped part of its older locks (splitting them where the range
//! starts or ends inside one), an `Unlock` range just cuts, and neighbouring ranges of one
//! type and pid merge. [`setlk_outcome`] adds the conflict check against the other
//! owners, [`find_conflict`] answers `F_GETLK`, [`flock_outcome`] decides a `flock`.
//!
//! ```
//! use meta_api::locks::{update_records, PlockRecord};
//! use meta_api::{LockType, PlockRequest};
//!
//! let held = update_records(&[], &PlockRequest::new(LockType::Write, 0, 99, 7));
//! // Unlocking the middle splits the range in two.
//! let held = update_records(&held, &PlockRequest::new(LockType::Unlock, 40, 59, 7));
//! assert_eq!(held, vec![
//!     PlockRecord { ltype: LockType::Write, pid: 7, start: 0, end: 39 },
//!     PlockRecord { ltype: LockType::Write, pid: 7, start: 60, end: 99 },
//! ]);
//! // Locking it again merges them back.
//! let held = update_records(&held, &PlockRequest::new(LockType::Write, 40, 59, 7));
//! assert_eq!(held, vec![PlockRecord { ltype: LockType::Write, pid: 7, start: 0, end: 99 }]);
//! ```
//!
//! # Blocking requests
//!
//! A blocking request never holds a transaction open while it waits: the engine tries the
//! request in one transaction and, on `WouldBlock`, sleeps for [`LockWait::next_pause`]
//! and tries again, until it succeeds, fails otherwise, or the caller drops the future
//! (which is how a frontend cancels a wait, e.g. on `EINTR`).

use std::time::Duration;

use crate::backoff::Backoff;
use crate::{MetaError, Result};

/// The largest file offset (`i64::MAX`): how lock records store "to the end of the file".
pub const OFFSET_MAX: u64 = i64::MAX as u64;

/// The stored end of a range ending at `end` (the API's `u64::MAX` becomes [`OFFSET_MAX`]).
pub const fn stored_end(end: u64) -> u64 {
    if end > OFFSET_MAX {
        OFFSET_MAX
    } else {
        end
    }
}

/// The end of a stored range as the API reports it (`OFFSET_MAX` becomes `u64::MAX`).
pub const fn reported_end(end: u64) -> u64 {
    if end >= OFFSET_MAX {
        u64::MAX
    } else {
        end
    }
}

/// The kind of a lock request: shared, exclusive, or release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LockType {
    /// A shared lock (`LOCK_SH`, `F_RDLCK`).
    Read,
    /// An exclusive lock (`LOCK_EX`, `F_WRLCK`).
    Write,
    /// Releases the lock (`LOCK_UN`, `F_UNLCK`).
    Unlock,
}

impl LockType {
    /// The number JuiceFS stores in POSIX lock records: Linux's `F_RDLCK = 0`,
    /// `F_WRLCK = 1`, `F_UNLCK = 2` (fixed, whatever the host's `libc` says).
    pub const fn record_code(self) -> u32 {
        match self {
            LockType::Read => 0,
            LockType::Write => 1,
            LockType::Unlock => 2,
        }
    }

    /// Decodes [`LockType::record_code`]; `None` for an unknown number.
    pub const fn from_record_code(code: u32) -> Option<LockType> {
        match code {
            0 => Some(LockType::Read),
            1 => Some(LockType::Write),
            2 => Some(LockType::Unlock),
            _ => None,
        }
    }

    /// The byte JuiceFS stores for a BSD lock: `b'R'` or `b'W'` (`None` for `Unlock`,
    /// which is never stored).
    pub const fn flock_byte(self) -> Option<u8> {
        match self {
            LockType::Read => Some(b'R'),
            LockType::Write => Some(b'W'),
            LockType::Unlock => None,
        }
    }

    /// Decodes [`LockType::flock_byte`]; `None` for any other byte.
    pub const fn from_flock_byte(b: u8) -> Option<LockType> {
        match b {
            b'R' => Some(LockType::Read),
            b'W' => Some(LockType::Write),
            _ => None,
        }
    }

    /// The host's `l_type` value (`libc::F_RDLCK`, …), for frontends that pass
    /// `struct flock` fields through.
    pub fn to_libc(self) -> i32 {
        match self {
            LockType::Read => libc::F_RDLCK,
            LockType::Write => libc::F_WRLCK,
            LockType::Unlock => libc::F_UNLCK,
        }
    }

    /// Decodes a host `l_type` value; `None` for an unknown one.
    pub fn from_libc(v: i32) -> Option<LockType> {
        [LockType::Read, LockType::Write, LockType::Unlock]
            .into_iter()
            .find(|t| t.to_libc() == v)
    }
}

/// A POSIX lock as `F_GETLK`/`F_SETLK` see it: a type, an inclusive byte range
/// `start..=end` (`end == u64::MAX`: to the end of the file) and the process id of the
/// locker. [`crate::MetaEngine::getlk`] takes the lock asked about and overwrites it
/// with the conflicting lock, or with `Unlock` (and zeros) when there is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlockRequest {
    /// The lock type.
    pub ltype: LockType,
    /// First byte of the range.
    pub start: u64,
    /// Last byte of the range, inclusive (`u64::MAX`: to the end of the file).
    pub end: u64,
    /// Process id of the locking process (informational: it does not identify owners).
    pub pid: u32,
}

impl PlockRequest {
    /// A request for `ltype` on `start..=end` by process `pid`.
    pub const fn new(ltype: LockType, start: u64, end: u64, pid: u32) -> PlockRequest {
        PlockRequest {
            ltype,
            start,
            end,
            pid,
        }
    }

    /// What `F_GETLK` answers when nothing conflicts: `Unlock` with a zero range and pid.
    pub const fn unlocked() -> PlockRequest {
        PlockRequest::new(LockType::Unlock, 0, 0, 0)
    }
}

/// Who holds a lock: a session and the owner number chosen by that session's frontend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LockOwner {
    /// The session id.
    pub sid: u64,
    /// The owner within the session.
    pub owner: u64,
}

impl LockOwner {
    /// Owner `owner` of session `sid`.
    pub const fn new(sid: u64, owner: u64) -> LockOwner {
        LockOwner { sid, owner }
    }
}

/// One stored POSIX lock range of one owner (never of type `Unlock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlockRecord {
    /// `Read` or `Write`.
    pub ltype: LockType,
    /// Process id of the locker.
    pub pid: u32,
    /// First byte.
    pub start: u64,
    /// Last byte, inclusive.
    pub end: u64,
}

/// Size of an encoded [`PlockRecord`].
pub const PLOCK_RECORD_BYTES: usize = 24;

impl PlockRecord {
    /// JuiceFS's encoding: big-endian `ltype u32 | pid u32 | start u64 | end u64`.
    pub fn encode(&self) -> [u8; PLOCK_RECORD_BYTES] {
        let mut b = [0u8; PLOCK_RECORD_BYTES];
        b[0..4].copy_from_slice(&self.ltype.record_code().to_be_bytes());
        b[4..8].copy_from_slice(&self.pid.to_be_bytes());
        b[8..16].copy_from_slice(&self.start.to_be_bytes());
        b[16..24].copy_from_slice(&self.end.to_be_bytes());
        b
    }

    /// Decodes one record; `None` for an unknown lock type.
    pub fn decode(b: &[u8; PLOCK_RECORD_BYTES]) -> Option<PlockRecord> {
        let mut u32s = [0u8; 4];
        let mut u64s = [0u8; 8];
        u32s.copy_from_slice(&b[0..4]);
        let ltype = LockType::from_record_code(u32::from_be_bytes(u32s))?;
        u32s.copy_from_slice(&b[4..8]);
        let pid = u32::from_be_bytes(u32s);
        u64s.copy_from_slice(&b[8..16]);
        let start = u64::from_be_bytes(u64s);
        u64s.copy_from_slice(&b[16..24]);
        let end = u64::from_be_bytes(u64s);
        Some(PlockRecord {
            ltype,
            pid,
            start,
            end,
        })
    }

    /// Whether this lock conflicts with a request of another owner for `ltype` on
    /// `start..=end`: the ranges overlap and at least one of the two is a write lock.
    pub fn conflicts(&self, ltype: LockType, start: u64, end: u64) -> bool {
        let exclusive = ltype == LockType::Write || self.ltype == LockType::Write;
        let shared_request = ltype != LockType::Unlock;
        shared_request && exclusive && start <= self.end && self.start <= end
    }
}

/// Decodes an owner's POSIX lock value (a concatenation of records). Records of type
/// `Unlock` or with `start > end` hold nothing and are dropped, as JuiceFS drops them,
/// and ends past [`OFFSET_MAX`] are read as [`OFFSET_MAX`]; a length that is not a multiple of 24 or an unknown lock type is `Corrupt`.
pub fn decode_records(buf: &[u8]) -> Result<Vec<PlockRecord>> {
    if !buf.len().is_multiple_of(PLOCK_RECORD_BYTES) {
        return Err(MetaError::Corrupt(format!(
            "POSIX lock value of {} bytes is not a list of 24-byte records",
            buf.len()
        )));
    }
    let mut out = Vec::with_capacity(buf.len() / PLOCK_RECORD_BYTES);
    for c in buf.chunks_exact(PLOCK_RECORD_BYTES) {
        let mut a = [0u8; PLOCK_RECORD_BYTES];
        a.copy_from_slice(c);
        let mut r = PlockRecord::decode(&a)
            .ok_or_else(|| MetaError::Corrupt("POSIX lock record of unknown type".into()))?;
        r.end = stored_end(r.end);
        if r.ltype != LockType::Unlock && r.start <= r.end {
            out.push(r);
        }
    }
    out.sort_by_key(|r| r.start);
    Ok(out)
}

/// Encodes an owner's records (as [`update_records`] returns them) into one value.
pub fn encode_records(records: &[PlockRecord]) -> Vec<u8> {
    let mut out = Vec::with_capacity(records.len() * PLOCK_RECORD_BYTES);
    for r in records {
        out.extend_from_slice(&r.encode());
    }
    out
}

/// `InvalidArgument` for a range whose start is past its end or past [`OFFSET_MAX`].
pub fn check_range(start: u64, end: u64) -> Result<()> {
    if start > end {
        return Err(MetaError::InvalidArgument(
            "lock range starts after it ends",
        ));
    }
    if start > OFFSET_MAX {
        return Err(MetaError::InvalidArgument(
            "lock range starts past the largest file offset",
        ));
    }
    Ok(())
}

/// What an owner holds after applying `req` to `held` (its records, disjoint and sorted):
/// the parts of `held` outside `req`'s range stay, the range itself gets `req`'s type
/// and pid (nothing for `Unlock`), and touching ranges of one type and pid merge.
/// The result is disjoint and sorted by `start`, ends stored as [`stored_end`] says.
/// `req` must satisfy [`check_range`].
pub fn update_records(held: &[PlockRecord], req: &PlockRequest) -> Vec<PlockRecord> {
    let req = &PlockRequest {
        end: stored_end(req.end),
        ..*req
    };
    let mut out: Vec<PlockRecord> = Vec::with_capacity(held.len() + 2);
    for r in held {
        if r.end < req.start || r.start > req.end {
            out.push(*r);
            continue;
        }
        // The checks make the arithmetic safe: `r.start < req.start` means
        // `req.start > 0`, and `r.end > req.end` means `req.end < u64::MAX`.
        if r.start < req.start {
            out.push(PlockRecord {
                end: req.start - 1,
                ..*r
            });
        }
        if r.end > req.end {
            out.push(PlockRecord {
                start: req.end + 1,
                ..*r
            });
        }
    }
    if req.ltype != LockType::Unlock {
        out.push(PlockRecord {
            ltype: req.ltype,
            pid: req.pid,
            start: req.start,
            end: req.end,
        });
    }
    out.sort_by_key(|r| r.start);
    let mut merged: Vec<PlockRecord> = Vec::with_capacity(out.len());
    for r in out {
        if let Some(last) = merged.last_mut() {
            let touching = last.end.checked_add(1) == Some(r.start);
            if touching && last.ltype == r.ltype && last.pid == r.pid {
                last.end = r.end;
                continue;
            }
        }
        merged.push(r);
    }
    merged
}

/// `F_GETLK`: the lock of another owner that conflicts with `query`, or
/// [`PlockRequest::unlocked`]. When several do, the one with the lowest `start` (then
/// `end`, session, owner) answers, so that every engine gives the same answer. Its pid is
/// reported only when it belongs to `me`'s session (another machine's pid means nothing
/// here), as JuiceFS does; otherwise 0. An end at [`OFFSET_MAX`] is reported as `u64::MAX`.
pub fn find_conflict<'a, I>(held: I, me: LockOwner, query: &PlockRequest) -> PlockRequest
where
    I: IntoIterator<Item = (LockOwner, &'a [PlockRecord])>,
{
    let mut best: Option<(LockOwner, PlockRecord)> = None;
    for (who, records) in held {
        if who == me {
            continue;
        }
        for r in records {
            if !r.conflicts(query.ltype, query.start, query.end) {
                continue;
            }
            let better = match &best {
                None => true,
                Some((bw, br)) => (r.start, r.end, who) < (br.start, br.end, *bw),
            };
            if better {
                best = Some((who, *r));
            }
        }
    }
    match best {
        Some((who, r)) => PlockRequest {
            ltype: r.ltype,
            start: r.start,
            end: reported_end(r.end),
            pid: if who.sid == me.sid { r.pid } else { 0 },
        },
        None => PlockRequest::unlocked(),
    }
}

/// `F_SETLK`: the records `me` holds after `req`, given every owner's records on the
/// inode (`me`'s own among them or not); `WouldBlock` when a lock of another owner
/// conflicts. Unlocking never conflicts. `req` must satisfy [`check_range`].
pub fn setlk_outcome<'a, I>(held: I, me: LockOwner, req: &PlockRequest) -> Result<Vec<PlockRecord>>
where
    I: IntoIterator<Item = (LockOwner, &'a [PlockRecord])>,
{
    let mut mine: &[PlockRecord] = &[];
    for (who, records) in held {
        if who == me {
            mine = records;
        } else if records
            .iter()
            .any(|r| r.conflicts(req.ltype, req.start, req.end))
        {
            return Err(MetaError::WouldBlock);
        }
    }
    Ok(update_records(mine, req))
}

/// `flock`: what `me` holds after asking for `req`, given every owner's BSD lock on the
/// inode; `WouldBlock` when another owner's lock conflicts (a write lock for a read
/// request, any lock for a write request). Returns `None` when `me` holds nothing
/// afterwards (`Unlock`). Upgrading and downgrading one's own lock is allowed.
pub fn flock_outcome<I>(held: I, me: LockOwner, req: LockType) -> Result<Option<LockType>>
where
    I: IntoIterator<Item = (LockOwner, LockType)>,
{
    if req == LockType::Unlock {
        return Ok(None);
    }
    for (who, t) in held {
        if who == me || t == LockType::Unlock {
            continue;
        }
        if req == LockType::Write || t == LockType::Write {
            return Err(MetaError::WouldBlock);
        }
    }
    Ok(Some(req))
}

/// The pauses of a blocking lock request between two attempts: a [`Backoff`] whose
/// ceiling starts at 1 ms and doubles up to 20 ms, so that a lock released soon is taken
/// soon, a long wait costs little, and waiters do not retry in lock step.
#[derive(Debug, Clone)]
pub struct LockWait {
    backoff: Backoff,
}

impl Default for LockWait {
    fn default() -> Self {
        LockWait::new()
    }
}

impl LockWait {
    /// The ceiling of the first pause.
    pub const FIRST: Duration = Duration::from_millis(1);
    /// The longest pause.
    pub const MAX: Duration = Duration::from_millis(20);

    /// A fresh sequence of pauses.
    pub fn new() -> LockWait {
        LockWait {
            backoff: Backoff::new(Self::FIRST, Self::MAX),
        }
    }

    /// How long to sleep before the next attempt.
    pub fn next_pause(&mut self) -> Duration {
        self.backoff.next_pause()
    }
}

/// The blocking wait of `flock` and `F_SETLKW`, the same for every engine: runs the
/// engine's single `attempt` until it answers anything but `WouldBlock` (at once when not
/// `block`), pausing with [`LockWait`] in between and holding no transaction. When
/// `session()` stops returning `sid` (the client's session was closed while it waited)
/// the wait ends with `BadHandle`: a lock taken now would outlive its session (an attempt
/// the engine refused with `SessionLost` because the close removed the session under it
/// ends the same way; engines clear their session id before they remove its records,
/// [`crate::backend::end_session`]).
pub async fn wait_for_lock<S, F, Fut>(
    block: bool,
    sid: u64,
    session: S,
    mut attempt: F,
) -> Result<()>
where
    S: Fn() -> u64,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut wait = LockWait::new();
    loop {
        match attempt().await {
            Err(MetaError::WouldBlock) if block => {
                tokio::time::sleep(wait.next_pause()).await;
                if session() != sid {
                    return Err(MetaError::BadHandle);
                }
            }
            Err(MetaError::SessionLost) if session() != sid => return Err(MetaError::BadHandle),
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: LockType = LockType::Read;
    const W: LockType = LockType::Write;
    const U: LockType = LockType::Unlock;

    fn rec(ltype: LockType, start: u64, end: u64) -> PlockRecord {
        PlockRecord {
            ltype,
            pid: 1,
            start,
            end,
        }
    }

    fn apply(held: &[PlockRecord], ltype: LockType, start: u64, end: u64) -> Vec<PlockRecord> {
        update_records(held, &PlockRequest::new(ltype, start, end, 1))
    }

    #[test]
    fn records_encode_like_juicefs() {
        let r = PlockRecord {
            ltype: W,
            pid: 0x0102_0304,
            start: 5,
            end: OFFSET_MAX,
        };
        let b = r.encode();
        assert_eq!(&b[0..4], &[0, 0, 0, 1]);
        assert_eq!(&b[4..8], &[1, 2, 3, 4]);
        assert_eq!(&b[8..16], &[0, 0, 0, 0, 0, 0, 0, 5]);
        assert_eq!(
            &b[16..24],
            &[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
        // An end past the largest offset reads as the largest offset.
        let past = encode_records(&[rec(W, 7, u64::MAX)]);
        assert_eq!(decode_records(&past).unwrap(), vec![rec(W, 7, OFFSET_MAX)]);
        let all = encode_records(&[rec(R, 0, 9), r]);
        assert_eq!(decode_records(&all).unwrap(), vec![rec(R, 0, 9), r]);
        assert!(matches!(
            decode_records(&all[..30]),
            Err(MetaError::Corrupt(_))
        ));
        let mut bad = all.clone();
        bad[3] = 9;
        assert!(matches!(decode_records(&bad), Err(MetaError::Corrupt(_))));
        // Empty and unlock records hold nothing.
        let junk = encode_records(&[rec(U, 0, 9), rec(R, 9, 3), rec(W, 20, 30)]);
        assert_eq!(decode_records(&junk).unwrap(), vec![rec(W, 20, 30)]);
    }

    #[test]
    fn lock_type_codes() {
        for t in [R, W, U] {
            assert_eq!(LockType::from_record_code(t.record_code()), Some(t));
            assert_eq!(LockType::from_libc(t.to_libc()), Some(t));
        }
        assert_eq!(LockType::from_record_code(3), None);
        assert_eq!(W.flock_byte(), Some(b'W'));
        assert_eq!(LockType::from_flock_byte(b'R'), Some(R));
        assert_eq!(U.flock_byte(), None);
        assert_eq!(LockType::from_flock_byte(b'X'), None);
    }

    #[test]
    fn unlock_in_the_middle_splits() {
        let held = apply(&[], W, 0, 99);
        assert_eq!(apply(&held, U, 40, 59), vec![rec(W, 0, 39), rec(W, 60, 99)]);
        assert_eq!(apply(&held, U, 0, 99), vec![]);
        assert_eq!(apply(&held, U, 0, u64::MAX), vec![]);
        assert_eq!(apply(&held, U, 50, u64::MAX), vec![rec(W, 0, 49)]);
        assert_eq!(apply(&held, U, 200, 300), vec![rec(W, 0, 99)]);
    }

    #[test]
    fn touching_and_overlapping_ranges_merge() {
        let held = apply(&apply(&[], R, 0, 9), R, 10, 19);
        assert_eq!(held, vec![rec(R, 0, 19)]);
        let held = apply(&held, R, 5, 30);
        assert_eq!(held, vec![rec(R, 0, 30)]);
        // Three pieces joined by one request.
        let held = apply(&apply(&apply(&[], R, 0, 9), R, 20, 29), R, 40, 49);
        assert_eq!(apply(&held, R, 10, 39), vec![rec(R, 0, 49)]);
        // Different types stay apart.
        let held = apply(&apply(&[], R, 0, 9), W, 10, 19);
        assert_eq!(held, vec![rec(R, 0, 9), rec(W, 10, 19)]);
        // Different pids stay apart, as JuiceFS keeps them.
        let held = update_records(&[rec(R, 0, 9)], &PlockRequest::new(R, 10, 19, 2));
        assert_eq!(held.len(), 2);
    }

    #[test]
    fn new_type_replaces_the_overlapped_part() {
        let held = apply(&[], R, 0, 99);
        assert_eq!(
            apply(&held, W, 10, 19),
            vec![rec(R, 0, 9), rec(W, 10, 19), rec(R, 20, 99)]
        );
        assert_eq!(
            apply(&held, W, 50, u64::MAX),
            vec![rec(R, 0, 49), rec(W, 50, OFFSET_MAX)]
        );
        let whole = apply(&[], W, 0, u64::MAX);
        assert_eq!(
            apply(&whole, R, 0, 0),
            vec![rec(R, 0, 0), rec(W, 1, OFFSET_MAX)]
        );
        assert_eq!(
            apply(&whole, U, OFFSET_MAX, u64::MAX),
            vec![rec(W, 0, OFFSET_MAX - 1)]
        );
        // The kernel's end of file and the API's are the same range.
        assert_eq!(apply(&[], W, 0, OFFSET_MAX), whole);
        assert_eq!(apply(&whole, U, 9, OFFSET_MAX), vec![rec(W, 0, 8)]);
    }

    #[test]
    fn results_stay_disjoint_and_sorted() {
        // A small exhaustive walk over requests in 0..8 checks the invariants and that
        // each byte ends up with the type of the last request covering it.
        let mut held: Vec<PlockRecord> = Vec::new();
        let mut bytes = [U; 8];
        let mut n = 0u64;
        for start in 0..8u64 {
            for end in start..8 {
                let t = [R, W, U][(n % 3) as usize];
                n += 1;
                held = apply(&held, t, start, end);
                for b in &mut bytes[start as usize..=end as usize] {
                    *b = t;
                }
                for w in held.windows(2) {
                    assert!(w[0].end < w[1].start, "{held:?}");
                    let touching = w[0].end + 1 == w[1].start;
                    assert!(!(touching && w[0].ltype == w[1].ltype), "{held:?}");
                }
                for (i, want) in bytes.iter().enumerate() {
                    let got = held
                        .iter()
                        .find(|r| r.start <= i as u64 && i as u64 <= r.end)
                        .map_or(U, |r| r.ltype);
                    assert_eq!(got, *want, "byte {i} of {held:?}");
                }
            }
        }
    }

    #[test]
    fn conflicts_need_overlap_and_a_writer() {
        let r = rec(R, 10, 19);
        let w = rec(W, 10, 19);
        assert!(!r.conflicts(R, 0, 100));
        assert!(r.conflicts(W, 19, 19));
        assert!(w.conflicts(R, 0, 10));
        assert!(!w.conflicts(W, 20, 30));
        assert!(!w.conflicts(W, 0, 9));
        assert!(!w.conflicts(U, 0, 100));
    }

    #[test]
    fn getlk_and_setlk_outcomes() {
        let me = LockOwner::new(1, 1);
        let same_session = LockOwner::new(1, 2);
        let other = LockOwner::new(2, 1);
        let a = [PlockRecord {
            ltype: R,
            pid: 42,
            start: 50,
            end: 59,
        }];
        let b = [rec(W, 100, OFFSET_MAX), rec(R, 10, 19)];
        let mine = [rec(W, 0, 5)];
        let held = || [(same_session, &a[..]), (other, &b[..]), (me, &mine[..])];
        let q = PlockRequest::new(W, 0, u64::MAX, 9);
        assert_eq!(
            find_conflict(held(), me, &q),
            PlockRequest::new(R, 10, 19, 0)
        );
        let q = PlockRequest::new(W, 20, 60, 9);
        assert_eq!(
            find_conflict(held(), me, &q),
            PlockRequest::new(R, 50, 59, 42)
        );
        let q = PlockRequest::new(R, 0, 99, 9);
        assert_eq!(find_conflict(held(), me, &q), PlockRequest::unlocked());
        assert_eq!(
            find_conflict(held(), me, &PlockRequest::new(R, 1 << 40, u64::MAX, 0)),
            PlockRequest::new(W, 100, u64::MAX, 0)
        );

        assert!(matches!(
            setlk_outcome(held(), me, &PlockRequest::new(W, 55, 55, 9)),
            Err(MetaError::WouldBlock)
        ));
        assert_eq!(
            setlk_outcome(held(), me, &PlockRequest::new(R, 0, 99, 9)).unwrap(),
            vec![PlockRecord {
                ltype: R,
                pid: 9,
                start: 0,
                end: 99
            }]
        );
        assert_eq!(
            setlk_outcome(held(), me, &PlockRequest::new(U, 0, u64::MAX, 9)).unwrap(),
            vec![]
        );
    }

    #[test]
    fn flock_rules() {
        let me = LockOwner::new(1, 1);
        let other = LockOwner::new(1, 2);
        assert_eq!(flock_outcome([], me, W).unwrap(), Some(W));
        assert_eq!(flock_outcome([(other, R)], me, R).unwrap(), Some(R));
        assert!(matches!(
            flock_outcome([(other, R)], me, W),
            Err(MetaError::WouldBlock)
        ));
        assert!(matches!(
            flock_outcome([(other, W)], me, R),
            Err(MetaError::WouldBlock)
        ));
        assert_eq!(flock_outcome([(me, R)], me, W).unwrap(), Some(W));
        assert_eq!(flock_outcome([(me, W)], me, R).unwrap(), Some(R));
        assert_eq!(flock_outcome([(other, W)], me, U).unwrap(), None);
    }

    #[test]
    fn ranges_and_waits() {
        assert!(check_range(5, 5).is_ok());
        assert!(matches!(
            check_range(6, 5),
            Err(MetaError::InvalidArgument(_))
        ));
        assert!(check_range(OFFSET_MAX, u64::MAX).is_ok());
        assert!(matches!(
            check_range(OFFSET_MAX + 1, u64::MAX),
            Err(MetaError::InvalidArgument(_))
        ));
        assert_eq!(stored_end(u64::MAX), OFFSET_MAX);
        assert_eq!(stored_end(5), 5);
        assert_eq!(reported_end(OFFSET_MAX), u64::MAX);
        assert_eq!(reported_end(5), 5);
        let mut w = LockWait::new();
        let ceilings = [1u64, 2, 4, 8, 16, 20, 20];
        for c in ceilings {
            assert!(w.next_pause() <= Duration::from_millis(c));
        }
    }
}
