//! The model's own file locks, written from the POSIX and BSD semantics instead of taken
//! from [`crate::locks`] (which every engine shares): BSD `flock` locks and POSIX
//! byte-range locks of one inode, each kept as a plain list.
//!
//! The contract these follow is the one [`crate::locks`] documents: owners are
//! [`LockOwner`]s (two owners conflict even within one session), a range ends at
//! `u64::MAX` for "to the end of the file" and is kept ending at `i64::MAX` (the
//! kernel's `OFFSET_MAX`), a request replaces what its owner held in its range,
//! neighbouring ranges of one owner, type and pid merge, and `F_GETLK` reports the
//! conflicting lock with the lowest start (then end, then owner), with its pid only
//! within the asker's session.

use crate::{LockOwner, LockType, MetaError, PlockRequest, Result};

/// The largest file offset: where a lock "to the end of the file" is kept ending.
const END_OF_FILE: u64 = i64::MAX as u64;

/// `InvalidArgument` for a range that ends before it starts or starts past the largest
/// file offset.
pub(super) fn check_range(start: u64, end: u64) -> Result<()> {
    if end < start {
        return Err(MetaError::InvalidArgument(
            "lock range ends before it starts",
        ));
    }
    if start > END_OF_FILE {
        return Err(MetaError::InvalidArgument(
            "lock range starts past the largest file offset",
        ));
    }
    Ok(())
}

/// Whether two locks of different owners, of types `a` and `b`, exclude each other:
/// readers share, a writer excludes everybody.
fn exclusive(a: LockType, b: LockType) -> bool {
    a == LockType::Write || b == LockType::Write
}

/// The BSD locks of one inode: who holds which (`Read` or `Write`).
#[derive(Debug, Clone, Default)]
pub(super) struct Flocks {
    held: Vec<(LockOwner, LockType)>,
}

impl Flocks {
    /// Whether nobody holds a lock.
    pub(super) fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// What `owner` holds, if anything.
    #[cfg(test)]
    fn of(&self, owner: LockOwner) -> Option<LockType> {
        self.held.iter().find(|(o, _)| *o == owner).map(|(_, t)| *t)
    }

    /// Forgets every lock of session `sid`.
    pub(super) fn drop_session(&mut self, sid: u64) {
        self.held.retain(|(o, _)| o.sid != sid);
    }

    /// `flock(2)` by `me`: `Unlock` drops its lock; `Read` or `Write` replaces it (an
    /// upgrade or downgrade), unless another owner holds a lock that excludes it
    /// (`WouldBlock`, nothing changed).
    pub(super) fn lock(&mut self, me: LockOwner, ltype: LockType) -> Result<()> {
        if ltype != LockType::Unlock {
            let blocked = self
                .held
                .iter()
                .any(|&(o, t)| o != me && exclusive(t, ltype));
            if blocked {
                return Err(MetaError::WouldBlock);
            }
        }
        self.held.retain(|(o, _)| *o != me);
        if ltype != LockType::Unlock {
            self.held.push((me, ltype));
        }
        Ok(())
    }
}

/// One POSIX lock: an owner's lock of one type on the bytes `start..=end`, taken by
/// process `pid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    owner: LockOwner,
    ltype: LockType,
    pid: u32,
    start: u64,
    end: u64,
}

/// The POSIX locks of one inode: every owner's locks, in no particular order. One
/// owner's locks never overlap, and never touch when they have one type and pid.
#[derive(Debug, Clone, Default)]
pub(super) struct Plocks {
    held: Vec<Held>,
}

impl Plocks {
    /// Whether nobody holds a lock.
    pub(super) fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Forgets every lock of session `sid`.
    pub(super) fn drop_session(&mut self, sid: u64) {
        self.held.retain(|h| h.owner.sid != sid);
    }

    /// The locks of another owner than `me` that exclude a lock of `ltype` on
    /// `start..=end`.
    fn conflicts(
        &self,
        me: LockOwner,
        ltype: LockType,
        start: u64,
        end: u64,
    ) -> impl Iterator<Item = &Held> {
        self.held.iter().filter(move |h| {
            h.owner != me
                && ltype != LockType::Unlock
                && exclusive(h.ltype, ltype)
                && h.start <= end
                && start <= h.end
        })
    }

    /// `F_GETLK` by `me`: the conflicting lock with the lowest (start, end, owner), or
    /// [`PlockRequest::unlocked`]. The pid shows only to the holder's own session, and
    /// a lock to the end of the file shows ending at `u64::MAX`.
    pub(super) fn getlk(&self, me: LockOwner, query: &PlockRequest) -> PlockRequest {
        let first = self
            .conflicts(me, query.ltype, query.start, query.end)
            .min_by_key(|h| (h.start, h.end, h.owner));
        match first {
            Some(h) => PlockRequest {
                ltype: h.ltype,
                start: h.start,
                end: if h.end >= END_OF_FILE {
                    u64::MAX
                } else {
                    h.end
                },
                pid: if h.owner.sid == me.sid { h.pid } else { 0 },
            },
            None => PlockRequest::unlocked(),
        }
    }

    /// `F_SETLK` by `me` (the range checked by [`check_range`]): `WouldBlock`, changing
    /// nothing, when another owner's lock conflicts (an unlock never does); otherwise
    /// every byte of the range becomes `req`'s (type and pid, or unlocked), the rest of
    /// what `me` held stays as it was.
    ///
    /// `me`'s new locks are found by cutting the offsets into elementary runs at every
    /// start and end of its old locks and of the request: within a run every byte has
    /// the same state, the request's inside its range, the old lock's (or none) outside.
    /// Neighbouring runs of one state are joined into one lock.
    pub(super) fn setlk(&mut self, me: LockOwner, req: &PlockRequest) -> Result<()> {
        let (start, end) = (req.start, req.end.min(END_OF_FILE));
        if self.conflicts(me, req.ltype, start, end).next().is_some() {
            return Err(MetaError::WouldBlock);
        }
        let (old, others): (Vec<Held>, Vec<Held>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|h| h.owner == me);
        // Run boundaries: the first byte of every run. Ends are at most END_OF_FILE, so
        // `end + 1` does not overflow.
        let mut cuts: Vec<u64> = vec![start, end + 1];
        for h in &old {
            cuts.push(h.start);
            cuts.push(h.end + 1);
        }
        cuts.sort_unstable();
        cuts.dedup();
        let mut mine: Vec<Held> = Vec::new();
        for run in cuts.windows(2) {
            let (first, last) = (run[0], run[1] - 1);
            let state = if start <= first && first <= end {
                (req.ltype != LockType::Unlock).then_some((req.ltype, req.pid))
            } else {
                old.iter()
                    .find(|h| h.start <= first && first <= h.end)
                    .map(|h| (h.ltype, h.pid))
            };
            let Some((ltype, pid)) = state else {
                continue;
            };
            match mine.last_mut() {
                Some(prev) if prev.end + 1 == first && (prev.ltype, prev.pid) == (ltype, pid) => {
                    prev.end = last;
                }
                _ => mine.push(Held {
                    owner: me,
                    ltype,
                    pid,
                    start: first,
                    end: last,
                }),
            }
        }
        self.held = others;
        self.held.extend(mine);
        Ok(())
    }

    /// `owner`'s locks as records, sorted by start.
    #[cfg(test)]
    fn records_of(&self, owner: LockOwner) -> Vec<crate::locks::PlockRecord> {
        let mut v: Vec<crate::locks::PlockRecord> = self
            .held
            .iter()
            .filter(|h| h.owner == owner)
            .map(|h| crate::locks::PlockRecord {
                ltype: h.ltype,
                pid: h.pid,
                start: h.start,
                end: h.end,
            })
            .collect();
        v.sort_by_key(|r| r.start);
        v
    }

    /// Every owner holding a lock.
    #[cfg(test)]
    fn owners(&self) -> std::collections::BTreeSet<LockOwner> {
        self.held.iter().map(|h| h.owner).collect()
    }
}

/// `F_GETLK` on an inode whose locks are `locks` (`None`: it has none).
pub(super) fn getlk(locks: Option<&Plocks>, me: LockOwner, query: &PlockRequest) -> PlockRequest {
    locks.map_or(PlockRequest::unlocked(), |l| l.getlk(me, query))
}

#[cfg(test)]
mod tests {
    //! Differential tests: the model's locks against [`crate::locks`] on random sequences
    //! of requests.

    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::locks::{self as shared, PlockRecord, OFFSET_MAX};

    /// Owners: two of session 1, one each of sessions 2 and 3.
    static OWNERS: [LockOwner; 4] = [
        LockOwner::new(1, 1),
        LockOwner::new(1, 2),
        LockOwner::new(2, 1),
        LockOwner::new(3, 7),
    ];
    static PIDS: [u32; 3] = [0, 7, 42];
    /// Offsets where interesting things happen, besides small ones.
    static EDGES: [u64; 7] = [
        0,
        1,
        OFFSET_MAX - 1,
        OFFSET_MAX,
        OFFSET_MAX + 1,
        u64::MAX - 1,
        u64::MAX,
    ];

    fn offset() -> impl Strategy<Value = u64> {
        prop_oneof![4 => 0u64..40, 1 => proptest::sample::select(&EDGES[..])]
    }

    fn ltype() -> impl Strategy<Value = LockType> {
        prop_oneof![
            Just(LockType::Read),
            Just(LockType::Write),
            Just(LockType::Unlock)
        ]
    }

    #[derive(Debug, Clone)]
    enum Op {
        Set(usize, LockType, u64, u64, u32),
        Get(usize, LockType, u64, u64),
        EndSession(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0..OWNERS.len(), ltype(), offset(), offset(), proptest::sample::select(&PIDS[..]))
                .prop_map(|(o, t, a, b, pid)| Op::Set(o, t, a.min(b), a.max(b), pid)),
            3 => (0..OWNERS.len(), ltype(), offset(), offset())
                .prop_map(|(o, t, a, b)| Op::Get(o, t, a.min(b), a.max(b))),
            1 => (1u64..4).prop_map(Op::EndSession),
        ]
    }

    type Shared = BTreeMap<LockOwner, Vec<PlockRecord>>;

    fn held(s: &Shared) -> impl Iterator<Item = (LockOwner, &[PlockRecord])> {
        s.iter().map(|(o, r)| (*o, r.as_slice()))
    }

    fn same_state(model: &Plocks, s: &Shared) -> std::result::Result<(), TestCaseError> {
        let owners: std::collections::BTreeSet<LockOwner> = s.keys().copied().collect();
        prop_assert_eq!(model.owners(), owners);
        for (o, records) in s {
            prop_assert_eq!(&model.records_of(*o), records, "locks of {:?}", o);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1500))]

        #[test]
        fn posix_locks_agree(ops in proptest::collection::vec(op(), 1..40)) {
            let mut model = Plocks::default();
            let mut s: Shared = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Set(o, ltype, start, end, pid) => {
                        let me = OWNERS[o];
                        let checked = check_range(start, end);
                        prop_assert_eq!(checked.is_ok(), shared::check_range(start, end).is_ok());
                        if checked.is_err() {
                            continue;
                        }
                        let req = PlockRequest::new(ltype, start, end, pid);
                        let m = model.setlk(me, &req);
                        let e = shared::setlk_outcome(held(&s), me, &req);
                        match e {
                            Ok(mine) => {
                                prop_assert!(m.is_ok(), "model {:?} for {:?} by {:?}", m, req, me);
                                if mine.is_empty() {
                                    s.remove(&me);
                                } else {
                                    s.insert(me, mine);
                                }
                            }
                            Err(err) => prop_assert!(
                                matches!((&m, &err), (Err(MetaError::WouldBlock), MetaError::WouldBlock)),
                                "model {:?}, shared {:?} for {:?} by {:?}", m, err, req, me
                            ),
                        }
                        same_state(&model, &s)?;
                    }
                    Op::Get(o, ltype, start, end) => {
                        let me = OWNERS[o];
                        if check_range(start, end).is_err() {
                            continue;
                        }
                        let q = PlockRequest::new(ltype, start, end, 99);
                        prop_assert_eq!(model.getlk(me, &q), shared::find_conflict(held(&s), me, &q));
                    }
                    Op::EndSession(sid) => {
                        model.drop_session(sid);
                        s.retain(|o, _| o.sid != sid);
                    }
                }
            }
        }

        #[test]
        fn flocks_agree(ops in proptest::collection::vec((0..OWNERS.len(), ltype()), 1..30)) {
            let mut model = Flocks::default();
            let mut s: BTreeMap<LockOwner, LockType> = BTreeMap::new();
            for (o, ltype) in ops {
                let me = OWNERS[o];
                let m = model.lock(me, ltype);
                match shared::flock_outcome(s.iter().map(|(o, t)| (*o, *t)), me, ltype) {
                    Ok(Some(t)) => {
                        prop_assert!(m.is_ok());
                        s.insert(me, t);
                    }
                    Ok(None) => {
                        prop_assert!(m.is_ok());
                        s.remove(&me);
                    }
                    Err(_) => prop_assert!(matches!(m, Err(MetaError::WouldBlock))),
                }
                for who in OWNERS {
                    prop_assert_eq!(model.of(who), s.get(&who).copied());
                }
            }
        }

        #[test]
        fn range_checks_agree(start in offset(), end in offset()) {
            prop_assert_eq!(check_range(start, end).is_ok(), shared::check_range(start, end).is_ok());
        }
    }

    #[test]
    fn split_merge_and_end_of_file() {
        let me = OWNERS[0];
        let other = OWNERS[2];
        let rec = |ltype, pid, start, end| PlockRecord {
            ltype,
            pid,
            start,
            end,
        };
        let mut l = Plocks::default();
        let set = |l: &mut Plocks, t, s, e| l.setlk(me, &PlockRequest::new(t, s, e, 5));
        set(&mut l, LockType::Write, 0, 99).unwrap();
        set(&mut l, LockType::Unlock, 40, 59).unwrap();
        assert_eq!(
            l.records_of(me),
            vec![
                rec(LockType::Write, 5, 0, 39),
                rec(LockType::Write, 5, 60, 99)
            ]
        );
        set(&mut l, LockType::Write, 40, 59).unwrap();
        assert_eq!(l.records_of(me), vec![rec(LockType::Write, 5, 0, 99)]);
        set(&mut l, LockType::Read, 50, u64::MAX).unwrap();
        assert_eq!(
            l.records_of(me),
            vec![
                rec(LockType::Write, 5, 0, 49),
                rec(LockType::Read, 5, 50, OFFSET_MAX)
            ]
        );
        let q = PlockRequest::new(LockType::Write, 60, 60, 0);
        assert_eq!(
            l.getlk(other, &q),
            PlockRequest::new(LockType::Read, 50, u64::MAX, 0)
        );
        assert_eq!(
            l.getlk(OWNERS[1], &q),
            PlockRequest::new(LockType::Read, 50, u64::MAX, 5),
            "the pid shows within the session"
        );
        assert!(matches!(
            l.setlk(other, &PlockRequest::new(LockType::Read, 10, 10, 0)),
            Err(MetaError::WouldBlock)
        ));
        l.setlk(other, &PlockRequest::new(LockType::Read, 60, OFFSET_MAX, 0))
            .unwrap();
        set(&mut l, LockType::Unlock, 0, u64::MAX).unwrap();
        assert!(l.records_of(me).is_empty());
        l.drop_session(2);
        assert!(l.is_empty());
    }
}
