//! The model-based property test: random sequences of operations, from two clients of one
//! volume, applied to the engine under test and to a fresh [`ModelEngine`] volume; every
//! result and the final trees must agree.
//!
//! Operations name their targets by index newtypes ([`DirIdx`], [`EntryIdx`], …) taken
//! modulo the number of live objects when the operation runs, so that a shrunk sequence
//! stays meaningful. Inode numbers and slice ids may differ between the engines: the test
//! keeps a bijection between them and checks every result against it.
//!
//! [`run_model_test`] is an `async fn`: call it from a `#[tokio::test]`. It drives proptest's
//! generation and shrinking itself (a `TestRunner` for the random source and the
//! `ValueTree` for shrinking), so no second runtime is needed. On a failure it panics with
//! the shrunk sequence, printed so that it can be pasted into a regression test that calls
//! [`replay`] (see `meta-api/tests/model_regressions.rs`).
//!
//! [`ModelEngine`]: super::ModelEngine

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use super::cases::normalize;
use super::{Harness, ModelHarness, TestVolume};
use crate::{
    overlay, Attr, Context, Entry, FallocMode, FileType, Ino, MetaEngine, MetaError, RenameFlags,
    SessionInfo, SetAttr, SetTime, Slice, StatFs, Timestamp, XattrFlags, CHUNK_SIZE, ROOT_INO,
};

/// The number of random sequences backends run by default.
pub const DEFAULT_MODEL_CASES: u32 = 64;
/// The longest generated sequence.
const MAX_OPS: usize = 48;
/// Shrinking stops after this many attempts.
const MAX_SHRINK_ITERS: u32 = 1024;

const CHUNK: u32 = CHUNK_SIZE as u32;
/// Names of entries: few, so that operations collide often; one is not UTF-8.
const NAMES: [&[u8]; 6] = [b"a", b"b", b"c", b"dd", b"\xffA", b"e"];
/// Names looked up: the entry names and the two dot names.
const LOOKUP_NAMES: [&[u8]; 8] = [b"a", b"b", b"c", b"dd", b"\xffA", b"e", b".", b".."];
/// Permission bits for mkdir, mknod and chmod.
const MODES: [u16; 10] = [
    0o755, 0o700, 0o644, 0o600, 0o777, 0o1777, 0o2775, 0o555, 0o000, 0o640,
];
/// Positions of writes within a chunk.
const POSITIONS: [u32; 5] = [0, 100, 4096, 65_536, CHUNK - 4096];
/// Lengths of writes.
const LENGTHS: [u32; 4] = [1, 100, 4096, 5000];
/// File lengths for truncate.
const SIZES: [u64; 8] = [
    0,
    1,
    100,
    4096,
    70_000,
    CHUNK_SIZE - 1,
    CHUNK_SIZE + 100,
    2 * CHUNK_SIZE + 5,
];
/// File offsets for copy_file_range.
const OFFSETS: [u64; 5] = [0, 100, 4096, CHUNK_SIZE - 100, CHUNK_SIZE + 50];
/// Lengths for copy_file_range.
const COPY_LENGTHS: [u64; 4] = [1, 100, 5000, 200_000];
/// Modes of fallocate: allocate, keep size, punch, zero, zero keeping size, and the
/// invalid punch without keep-size.
const FALLOC_MODES: [u32; 6] = [
    0,
    FallocMode::KEEP_SIZE,
    FallocMode::PUNCH_HOLE | FallocMode::KEEP_SIZE,
    FallocMode::ZERO_RANGE,
    FallocMode::ZERO_RANGE | FallocMode::KEEP_SIZE,
    FallocMode::PUNCH_HOLE,
];
/// Extended attribute names.
const XATTRS: [&[u8]; 3] = [b"user.a", b"user.b", b"trusted.c"];
/// Explicit times are small, so that they never look like "now".
const EXPLICIT_TIME_LIMIT: i64 = 1_000_000_000;

/// Which client of the volume acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// The first client.
    A,
    /// The second client.
    B,
}

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// The superuser.
    Root,
    /// uid/gid 1000, umask 022.
    Alice,
    /// uid/gid 1001, also in group 1000.
    Bob,
}

impl Who {
    fn ctx(self) -> Context {
        match self {
            Who::Root => Context::root(),
            Who::Alice => {
                let mut c = Context::new(1000, 1000);
                c.umask = 0o022;
                c
            }
            Who::Bob => {
                let mut c = Context::new(1001, 1001);
                c.gids = vec![1000];
                c
            }
        }
    }

    fn id(self) -> u32 {
        match self {
            Who::Root => 0,
            Who::Alice => 1000,
            Who::Bob => 1001,
        }
    }
}

/// A live directory, by index modulo the number of directories (root included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirIdx(pub u8);
/// A live directory entry (any type, root excluded), by index modulo their number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryIdx(pub u8);
/// A live regular file (one per inode), by index modulo their number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdx(pub u8);
/// An open handle, by index modulo the number of open handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandleIdx(pub u8);
/// An index into a fixed table (names, modes, positions, …), modulo its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick(pub u8);

/// The type of a node made by [`Op::Mknod`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Regular file.
    Reg,
    /// Named pipe.
    Fifo,
    /// Socket.
    Sock,
    /// Character device (rdev 1:3).
    Chr,
}

/// The flags of [`Op::Rename`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenameKind {
    /// No flags.
    Plain,
    /// `RENAME_NOREPLACE`.
    NoReplace,
    /// `RENAME_EXCHANGE`.
    Exchange,
}

/// The flags of [`Op::Open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenKind {
    /// `O_RDONLY`.
    Rd,
    /// `O_WRONLY`.
    Wr,
    /// `O_RDWR`.
    RdWr,
    /// `O_RDONLY | O_TRUNC`.
    RdTrunc,
}

/// The flags of [`Op::Setxattr`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XFlag {
    /// Create or replace.
    Any,
    /// `XATTR_CREATE`.
    Create,
    /// `XATTR_REPLACE`.
    Replace,
}

/// The times of [`Op::Utimens`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Times {
    /// Both set to the engine's now.
    Now,
    /// Both set to an explicit old time.
    At(u8),
}

/// One operation of a sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)] // The fields are named after the MetaEngine arguments they feed.
pub enum Op {
    /// `mkdir(parent, name, mode)`.
    Mkdir {
        c: Client,
        who: Who,
        parent: DirIdx,
        name: Pick,
        mode: Pick,
    },
    /// `mknod(parent, name, kind, mode)`.
    Mknod {
        c: Client,
        who: Who,
        parent: DirIdx,
        name: Pick,
        kind: Kind,
        mode: Pick,
    },
    /// `symlink(parent, name, target)`.
    Symlink {
        c: Client,
        who: Who,
        parent: DirIdx,
        name: Pick,
        target: Pick,
    },
    /// `link(entry's inode, parent, name)`.
    Link {
        c: Client,
        who: Who,
        entry: EntryIdx,
        parent: DirIdx,
        name: Pick,
    },
    /// `unlink(entry)`.
    Unlink {
        c: Client,
        who: Who,
        entry: EntryIdx,
    },
    /// `rmdir(entry)`.
    Rmdir {
        c: Client,
        who: Who,
        entry: EntryIdx,
    },
    /// `rename(entry, parent/name, flags)`.
    Rename {
        c: Client,
        who: Who,
        entry: EntryIdx,
        parent: DirIdx,
        name: Pick,
        kind: RenameKind,
    },
    /// `lookup(parent, name)`.
    Lookup {
        c: Client,
        who: Who,
        parent: DirIdx,
        name: Pick,
    },
    /// `setattr(mode)`.
    Chmod {
        c: Client,
        who: Who,
        entry: EntryIdx,
        mode: Pick,
    },
    /// `setattr(uid, gid)`.
    Chown {
        c: Client,
        who: Who,
        entry: EntryIdx,
        owner: Who,
        group: Who,
    },
    /// `setattr(atime, mtime)`.
    Utimens {
        c: Client,
        who: Who,
        entry: EntryIdx,
        times: Times,
    },
    /// `new_slice_id` + `write_slice`.
    Write {
        c: Client,
        file: FileIdx,
        chunk: u8,
        pos: Pick,
        len: Pick,
    },
    /// `truncate`, or `setattr` with a size when `via_setattr`.
    Truncate {
        c: Client,
        who: Who,
        file: FileIdx,
        size: Pick,
        via_setattr: bool,
    },
    /// `fallocate` with mode 0, keep-size, punch, zero, zero keeping size, or the invalid
    /// punch without keep-size.
    Fallocate {
        c: Client,
        who: Who,
        file: FileIdx,
        mode: Pick,
        off: Pick,
        len: Pick,
    },
    /// `copy_file_range`.
    Copy {
        c: Client,
        who: Who,
        src: FileIdx,
        src_off: Pick,
        dst: FileIdx,
        dst_off: Pick,
        len: Pick,
    },
    /// `setxattr`.
    Setxattr {
        c: Client,
        who: Who,
        entry: EntryIdx,
        name: Pick,
        value: u8,
        flag: XFlag,
    },
    /// `removexattr`.
    Removexattr {
        c: Client,
        who: Who,
        entry: EntryIdx,
        name: Pick,
    },
    /// A whole paged `readdir` with pages of `limit % 4 + 1` entries.
    Readdir {
        c: Client,
        who: Who,
        dir: DirIdx,
        limit: u8,
        plus: bool,
    },
    /// `open`; on success the handle is remembered.
    Open {
        c: Client,
        who: Who,
        file: FileIdx,
        kind: OpenKind,
    },
    /// `close` of a remembered handle (by the client that opened it).
    Close { handle: HandleIdx },
    /// `getattr` through a handle (works after unlink).
    HandleGetattr { handle: HandleIdx },
    /// `read_chunk` through a handle (works after unlink).
    HandleRead { handle: HandleIdx, chunk: u8 },
    /// `close_session` then `new_session` on one client: its open files are released.
    Reconnect { c: Client },
}

fn pick<T: Copy>(table: &[T], p: Pick) -> T {
    table[usize::from(p.0) % table.len()]
}

/// The strategy of one operation.
fn op_strategy() -> BoxedStrategy<Op> {
    let c = || prop_oneof![3 => Just(Client::A), 2 => Just(Client::B)];
    let who = || prop_oneof![4 => Just(Who::Root), 1 => Just(Who::Alice), 1 => Just(Who::Bob)];
    let idx = any::<u8>;
    let p = || any::<u8>().prop_map(Pick);
    let kind = prop_oneof![
        3 => Just(Kind::Reg),
        1 => Just(Kind::Fifo),
        1 => Just(Kind::Sock),
        1 => Just(Kind::Chr)
    ];
    let rename_kind = prop_oneof![
        3 => Just(RenameKind::Plain),
        1 => Just(RenameKind::NoReplace),
        1 => Just(RenameKind::Exchange)
    ];
    let open_kind = prop_oneof![
        Just(OpenKind::Rd),
        Just(OpenKind::Wr),
        Just(OpenKind::RdWr),
        Just(OpenKind::RdTrunc)
    ];
    let xflag =
        prop_oneof![2 => Just(XFlag::Any), 1 => Just(XFlag::Create), 1 => Just(XFlag::Replace)];
    let times = prop_oneof![Just(Times::Now), any::<u8>().prop_map(Times::At)];
    let options: Vec<(u32, BoxedStrategy<Op>)> = vec![
        (
            5,
            (c(), who(), idx(), p(), p())
                .prop_map(|(c, who, d, name, mode)| Op::Mkdir {
                    c,
                    who,
                    parent: DirIdx(d),
                    name,
                    mode,
                })
                .boxed(),
        ),
        (
            6,
            (c(), who(), idx(), p(), kind, p())
                .prop_map(|(c, who, d, name, kind, mode)| Op::Mknod {
                    c,
                    who,
                    parent: DirIdx(d),
                    name,
                    kind,
                    mode,
                })
                .boxed(),
        ),
        (
            2,
            (c(), who(), idx(), p(), p())
                .prop_map(|(c, who, d, name, target)| Op::Symlink {
                    c,
                    who,
                    parent: DirIdx(d),
                    name,
                    target,
                })
                .boxed(),
        ),
        (
            2,
            (c(), who(), idx(), idx(), p())
                .prop_map(|(c, who, e, d, name)| Op::Link {
                    c,
                    who,
                    entry: EntryIdx(e),
                    parent: DirIdx(d),
                    name,
                })
                .boxed(),
        ),
        (
            3,
            (c(), who(), idx())
                .prop_map(|(c, who, e)| Op::Unlink {
                    c,
                    who,
                    entry: EntryIdx(e),
                })
                .boxed(),
        ),
        (
            2,
            (c(), who(), idx())
                .prop_map(|(c, who, e)| Op::Rmdir {
                    c,
                    who,
                    entry: EntryIdx(e),
                })
                .boxed(),
        ),
        (
            5,
            (c(), who(), idx(), idx(), p(), rename_kind)
                .prop_map(|(c, who, e, d, name, kind)| Op::Rename {
                    c,
                    who,
                    entry: EntryIdx(e),
                    parent: DirIdx(d),
                    name,
                    kind,
                })
                .boxed(),
        ),
        (
            2,
            (c(), who(), idx(), p())
                .prop_map(|(c, who, d, name)| Op::Lookup {
                    c,
                    who,
                    parent: DirIdx(d),
                    name,
                })
                .boxed(),
        ),
        (
            2,
            (c(), who(), idx(), p())
                .prop_map(|(c, who, e, mode)| Op::Chmod {
                    c,
                    who,
                    entry: EntryIdx(e),
                    mode,
                })
                .boxed(),
        ),
        (
            1,
            (c(), who(), idx(), who(), who())
                .prop_map(|(c, who, e, owner, group)| Op::Chown {
                    c,
                    who,
                    entry: EntryIdx(e),
                    owner,
                    group,
                })
                .boxed(),
        ),
        (
            1,
            (c(), who(), idx(), times)
                .prop_map(|(c, who, e, times)| Op::Utimens {
                    c,
                    who,
                    entry: EntryIdx(e),
                    times,
                })
                .boxed(),
        ),
        (
            5,
            (c(), idx(), any::<u8>(), p(), p())
                .prop_map(|(c, f, chunk, pos, len)| Op::Write {
                    c,
                    file: FileIdx(f),
                    chunk,
                    pos,
                    len,
                })
                .boxed(),
        ),
        (
            2,
            (c(), who(), idx(), p(), any::<bool>())
                .prop_map(|(c, who, f, size, via_setattr)| Op::Truncate {
                    c,
                    who,
                    file: FileIdx(f),
                    size,
                    via_setattr,
                })
                .boxed(),
        ),
        (
            2,
            (c(), who(), idx(), p(), p(), p())
                .prop_map(|(c, who, f, mode, off, len)| Op::Fallocate {
                    c,
                    who,
                    file: FileIdx(f),
                    mode,
                    off,
                    len,
                })
                .boxed(),
        ),
        (
            2,
            (c(), who(), idx(), p(), idx(), p(), p())
                .prop_map(|(c, who, s, so, d, doff, len)| Op::Copy {
                    c,
                    who,
                    src: FileIdx(s),
                    src_off: so,
                    dst: FileIdx(d),
                    dst_off: doff,
                    len,
                })
                .boxed(),
        ),
        (
            2,
            (c(), who(), idx(), p(), any::<u8>(), xflag)
                .prop_map(|(c, who, e, name, value, flag)| Op::Setxattr {
                    c,
                    who,
                    entry: EntryIdx(e),
                    name,
                    value,
                    flag,
                })
                .boxed(),
        ),
        (
            1,
            (c(), who(), idx(), p())
                .prop_map(|(c, who, e, name)| Op::Removexattr {
                    c,
                    who,
                    entry: EntryIdx(e),
                    name,
                })
                .boxed(),
        ),
        (
            2,
            (c(), who(), idx(), any::<u8>(), any::<bool>())
                .prop_map(|(c, who, d, limit, plus)| Op::Readdir {
                    c,
                    who,
                    dir: DirIdx(d),
                    limit,
                    plus,
                })
                .boxed(),
        ),
        (
            3,
            (c(), who(), idx(), open_kind)
                .prop_map(|(c, who, f, kind)| Op::Open {
                    c,
                    who,
                    file: FileIdx(f),
                    kind,
                })
                .boxed(),
        ),
        (
            2,
            idx()
                .prop_map(|h| Op::Close {
                    handle: HandleIdx(h),
                })
                .boxed(),
        ),
        (
            1,
            idx()
                .prop_map(|h| Op::HandleGetattr {
                    handle: HandleIdx(h),
                })
                .boxed(),
        ),
        (
            1,
            (idx(), any::<u8>())
                .prop_map(|(h, chunk)| Op::HandleRead {
                    handle: HandleIdx(h),
                    chunk,
                })
                .boxed(),
        ),
        (1, c().prop_map(|c| Op::Reconnect { c }).boxed()),
    ];
    proptest::strategy::Union::new_weighted(options).boxed()
}

/// Runs `cases` random operation sequences against volumes of `h` and the model, shrinking
/// and reporting the first failure. Call from a `#[tokio::test]`; set `TESTKIT_SEED` to
/// replay a run (the seed is printed on failure).
pub async fn run_model_test(h: &dyn Harness, cases: u32) {
    let seed = match std::env::var("TESTKIT_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        Some(s) => s,
        None => {
            let t = Timestamp::now();
            (t.sec as u64).wrapping_mul(1_000_000_007) ^ u64::from(t.nsec)
        }
    };
    run_model_test_seeded(h, cases, seed).await;
}

/// [`run_model_test`] with a fixed seed: the same sequences on every run.
pub async fn run_model_test_seeded(h: &dyn Harness, cases: u32, seed: u64) {
    for r in super::regressions::all() {
        match check(h, &r.ops).await {
            Ok(_) => {}
            Err(Failure::Setup(why)) => panic!("could not set up volumes: {why}"),
            Err(Failure::Mismatch(why)) => {
                panic!("model test: regression {:?} failed: {why}", r.name)
            }
        }
    }
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases,
        max_shrink_iters: MAX_SHRINK_ITERS,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let strategy = proptest::collection::vec(op_strategy(), 1..MAX_OPS);
    let mut total = Tally::default();
    for case in 0..cases {
        let mut tree = match strategy.new_tree(&mut runner) {
            Ok(t) => t,
            Err(reason) => panic!("generating operations failed: {reason}"),
        };
        let failure = match check(h, &tree.current()).await {
            Ok(t) => {
                total.ok += t.ok;
                total.failed += t.failed;
                continue;
            }
            Err(Failure::Setup(why)) => panic!("could not set up volumes: {why}"),
            Err(Failure::Mismatch(why)) => why,
        };
        let (ops, why) = shrink(h, &mut tree, failure).await;
        panic!(
            "model test: case {case} of {cases} failed (TESTKIT_SEED={seed}):\n{why}\n\n\
             shrunk sequence ({} ops); keep it in meta-api/src/testkit/regressions.rs:\n{}",
            ops.len(),
            pastable(&ops)
        );
    }
    eprintln!(
        "model test: {cases} sequences agreed (seed {seed}); {} calls succeeded and {} failed alike",
        total.ok, total.failed
    );
}

/// Prints a sequence as Rust source for `regressions.rs` (one operation per line).
fn pastable(ops: &[Op]) -> String {
    let mut out = String::from("vec![\n");
    for op in ops {
        out.push_str(&format!("    {op:?},\n"));
    }
    out.push(']');
    out
}

/// Shrinks a failing sequence with proptest's value tree; returns the smallest failing
/// sequence found and its failure.
async fn shrink(
    h: &dyn Harness,
    tree: &mut impl ValueTree<Value = Vec<Op>>,
    first: String,
) -> (Vec<Op>, String) {
    let mut best = (tree.current(), first);
    let mut last_passed = false;
    for _ in 0..MAX_SHRINK_ITERS {
        let moved = if last_passed {
            tree.complicate()
        } else {
            tree.simplify()
        };
        if !moved {
            break;
        }
        let ops = tree.current();
        match check(h, &ops).await {
            Ok(_) | Err(Failure::Setup(_)) => last_passed = true,
            Err(Failure::Mismatch(why)) => {
                last_passed = false;
                best = (ops, why);
            }
        }
    }
    best
}

/// Replays one sequence against volumes of `h` and the model; panics on a mismatch. This
/// is what regression tests call with a shrunk sequence.
pub async fn replay(h: &dyn Harness, ops: &[Op]) {
    match check(h, ops).await {
        Ok(_) => {}
        Err(Failure::Setup(why)) => panic!("could not set up volumes: {why}"),
        Err(Failure::Mismatch(why)) => panic!("{why}"),
    }
}

/// Why a sequence failed.
enum Failure {
    /// The harness could not make volumes or clients: not the sequence's fault.
    Setup(String),
    /// The engine and the model disagreed.
    Mismatch(String),
}

async fn check(h: &dyn Harness, ops: &[Op]) -> Result<Tally, Failure> {
    let mut w = World::new(h).await.map_err(Failure::Setup)?;
    for (i, op) in ops.iter().enumerate() {
        w.step(op)
            .await
            .map_err(|why| Failure::Mismatch(format!("op #{i} {op:?}: {why}")))?;
    }
    w.finish()
        .await
        .map_err(|why| Failure::Mismatch(format!("after the last op: {why}")))?;
    Ok(w.tally.get())
}

/// Two clients of one volume.
struct Side {
    _vol: Box<dyn TestVolume>,
    a: Arc<dyn MetaEngine>,
    b: Arc<dyn MetaEngine>,
}

impl Side {
    async fn new(h: &dyn Harness) -> crate::Result<Side> {
        let vol = h.new_volume().await?;
        let a = vol.connect().await?;
        let b = vol.connect().await?;
        Ok(Side { _vol: vol, a, b })
    }

    fn client(&self, c: Client) -> &dyn MetaEngine {
        match c {
            Client::A => &*self.a,
            Client::B => &*self.b,
        }
    }
}

/// A one-to-one map between the model's numbers and the engine's (inodes, slice ids).
#[derive(Default)]
struct Bijection {
    to_engine: BTreeMap<u64, u64>,
    to_model: BTreeMap<u64, u64>,
}

impl Bijection {
    fn bind(&mut self, model: u64, engine: u64, what: &str) -> Result<(), String> {
        match (self.to_engine.get(&model), self.to_model.get(&engine)) {
            (None, None) => {
                self.to_engine.insert(model, engine);
                self.to_model.insert(engine, model);
                Ok(())
            }
            (Some(&e), _) if e == engine => Ok(()),
            (e, m) => Err(format!(
                "{what}: model {model} ↔ engine {engine}, but model {model} was engine {e:?} and engine {engine} was model {m:?}"
            )),
        }
    }

    fn engine(&self, model: u64, what: &str) -> Result<u64, String> {
        self.to_engine
            .get(&model)
            .copied()
            .ok_or_else(|| format!("{what} {model} of the model has no engine counterpart"))
    }
}

/// An open handle in both engines.
#[derive(Debug, Clone, Copy)]
struct Handle {
    c: Client,
    model: Ino,
    engine: Ino,
}

/// What is live in the model right now, in a stable order.
struct Live {
    dirs: Vec<Ino>,
    /// `(parent, name, inode, type)` of every entry below the root.
    entries: Vec<(Ino, Vec<u8>, Ino, FileType)>,
    /// Regular files, one per inode.
    files: Vec<Ino>,
}

/// The engine under test and the model, side by side.
struct World {
    model: Side,
    engine: Side,
    inos: Bijection,
    slices: Bijection,
    handles: Vec<Handle>,
    /// Engines may count the trash directory in the root's nlink; compare relative to start.
    root_nlink_offset: i64,
    /// How many compared calls succeeded and failed (alike) in both.
    tally: std::cell::Cell<Tally>,
    /// `statfs` of the model and the engine before the first operation.
    statfs_at_start: (StatFs, StatFs),
}

/// Counts of compared calls, to show that the sequences do real work.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    ok: u64,
    failed: u64,
}

fn kind_eq(m: &MetaError, e: &MetaError) -> bool {
    std::mem::discriminant(m) == std::mem::discriminant(e)
}

/// Compares two results by success and, for errors, by kind.
fn same_outcome<T, U>(m: &crate::Result<T>, e: &crate::Result<U>) -> Result<(), String> {
    match (m, e) {
        (Ok(_), Ok(_)) => Ok(()),
        (Err(me), Err(ee)) if kind_eq(me, ee) => Ok(()),
        (Err(me), Err(ee)) => Err(format!("model error {me:?}, engine error {ee:?}")),
        (Ok(_), Err(ee)) => Err(format!("model succeeded, engine error {ee:?}")),
        (Err(me), Ok(_)) => Err(format!("model error {me:?}, engine succeeded")),
    }
}

/// Whether a time was set explicitly by a test (old) rather than taken from a clock.
fn time_class(t: Timestamp) -> Option<Timestamp> {
    (t.sec < EXPLICIT_TIME_LIMIT).then_some(t)
}

impl World {
    async fn new(h: &dyn Harness) -> Result<World, String> {
        let engine = Side::new(h).await.map_err(|e| format!("engine: {e:?}"))?;
        let model = Side::new(&ModelHarness::new())
            .await
            .map_err(|e| format!("model: {e:?}"))?;
        let mut inos = Bijection::default();
        inos.bind(ROOT_INO, ROOT_INO, "root")?;
        let statfs_at_start = (
            model
                .a
                .statfs()
                .await
                .map_err(|e| format!("model statfs: {e:?}"))?,
            engine
                .a
                .statfs()
                .await
                .map_err(|e| format!("engine statfs: {e:?}"))?,
        );
        let mr = model
            .a
            .getattr(ROOT_INO)
            .await
            .map_err(|e| format!("model root: {e:?}"))?;
        let er = engine
            .a
            .getattr(ROOT_INO)
            .await
            .map_err(|e| format!("engine root: {e:?}"))?;
        Ok(World {
            model,
            engine,
            inos,
            slices: Bijection::default(),
            handles: Vec::new(),
            root_nlink_offset: i64::from(er.nlink) - i64::from(mr.nlink),
            tally: std::cell::Cell::new(Tally::default()),
            statfs_at_start,
        })
    }

    /// [`same_outcome`], counted.
    fn tally<T, U>(&self, m: &crate::Result<T>, e: &crate::Result<U>) -> Result<(), String> {
        let mut t = self.tally.get();
        if m.is_ok() {
            t.ok += 1;
        } else {
            t.failed += 1;
        }
        self.tally.set(t);
        same_outcome(m, e)
    }

    fn e(&self, model_ino: Ino) -> Result<Ino, String> {
        self.inos.engine(model_ino, "inode")
    }

    /// Checks the engine's attributes against the model's.
    fn cmp_attr(&self, ino: Ino, m: &Attr, e: &Attr) -> Result<(), String> {
        let diff = |what: &str, mv: String, ev: String| {
            Err(format!("inode {ino}: {what} differs: model {mv}, engine {ev}\n  model  {m:?}\n  engine {e:?}"))
        };
        macro_rules! same {
            ($f:ident) => {
                if m.$f != e.$f {
                    return diff(stringify!($f), format!("{:?}", m.$f), format!("{:?}", e.$f));
                }
            };
        }
        same!(typ);
        same!(mode);
        same!(uid);
        same!(gid);
        same!(length);
        same!(rdev);
        same!(flags);
        let want_nlink = if ino == ROOT_INO {
            i64::from(m.nlink) + self.root_nlink_offset
        } else {
            i64::from(m.nlink)
        };
        if want_nlink != i64::from(e.nlink) {
            return diff("nlink", want_nlink.to_string(), e.nlink.to_string());
        }
        for (what, mt, et) in [
            ("atime", m.atime, e.atime),
            ("mtime", m.mtime, e.mtime),
            ("ctime", m.ctime, e.ctime),
        ] {
            if time_class(mt) != time_class(et) {
                return diff(what, format!("{mt:?}"), format!("{et:?}"));
            }
        }
        // A non-directory's parent is 0 once it has several links; which it has after
        // links come and go again is the engine's choice.
        if m.parent != 0 {
            let want = self.e(m.parent)?;
            if e.parent != want {
                return diff(
                    "parent",
                    format!("{want} (model {})", m.parent),
                    e.parent.to_string(),
                );
            }
        } else if m.nlink > 1 && e.parent != 0 {
            return diff("parent", "0".into(), e.parent.to_string());
        }
        Ok(())
    }

    /// Compares two entry results, binding the inode numbers of a success.
    fn cmp_entry(
        &mut self,
        m: &crate::Result<Entry>,
        e: &crate::Result<Entry>,
    ) -> Result<(), String> {
        self.tally(m, e)?;
        if let (Ok(m), Ok(e)) = (m, e) {
            self.inos.bind(m.ino, e.ino, "inode")?;
            self.cmp_attr(m.ino, &m.attr, &e.attr)?;
        }
        Ok(())
    }

    fn cmp_attr_result(
        &self,
        ino: Ino,
        m: &crate::Result<Attr>,
        e: &crate::Result<Attr>,
    ) -> Result<(), String> {
        self.tally(m, e)?;
        if let (Ok(m), Ok(e)) = (m, e) {
            self.cmp_attr(ino, m, e)?;
        }
        Ok(())
    }

    /// Lists what is live in the model.
    async fn live(&self) -> Result<Live, String> {
        let m = &*self.model.a;
        let mut live = Live {
            dirs: vec![ROOT_INO],
            entries: Vec::new(),
            files: Vec::new(),
        };
        let mut i = 0;
        while i < live.dirs.len() {
            let d = live.dirs[i];
            i += 1;
            let list = m
                .readdir(&Context::root(), d, None, usize::MAX, false)
                .await
                .map_err(|e| format!("model readdir {d}: {e:?}"))?;
            for ent in list {
                match ent.typ {
                    FileType::Directory => live.dirs.push(ent.ino),
                    FileType::Regular if !live.files.contains(&ent.ino) => live.files.push(ent.ino),
                    _ => {}
                }
                live.entries.push((d, ent.name, ent.ino, ent.typ));
            }
        }
        Ok(live)
    }

    /// What a reader sees of chunk `index` of the model's file and the engine's, with the
    /// model's slice ids translated; `None` when both reads fail alike.
    async fn cmp_chunk(&self, c: Client, ino: Ino, index: u32) -> Result<(), String> {
        let eino = self.e(ino)?;
        let mr = self.model.client(c).read_chunk(ino, index).await;
        let er = self.engine.client(c).read_chunk(eino, index).await;
        self.tally(&mr, &er)?;
        let (Ok(ms), Ok(es)) = (mr, er) else {
            return Ok(());
        };
        let length = match self.model.client(c).getattr(ino).await {
            Ok(a) => a.length,
            Err(_) => return Ok(()),
        };
        let start = u64::from(index) * CHUNK_SIZE;
        if length <= start {
            return Ok(());
        }
        let len = (length - start).min(CHUNK_SIZE) as u32;
        let mut want = normalize(overlay::pieces(&overlay::build(&ms), 0, len));
        for p in &mut want {
            if p.id != 0 {
                p.id = self.slices.engine(p.id, "slice")?;
            }
        }
        let got = normalize(overlay::pieces(&overlay::build(&es), 0, len));
        if want != got {
            return Err(format!(
                "inode {ino} chunk {index} reads differently:\n  model  {want:?}\n  engine {got:?}"
            ));
        }
        Ok(())
    }

    async fn step(&mut self, op: &Op) -> Result<(), String> {
        let live = self.live().await?;
        let dir = |d: DirIdx| live.dirs[usize::from(d.0) % live.dirs.len()];
        let entry = |e: EntryIdx| {
            (!live.entries.is_empty())
                .then(|| live.entries[usize::from(e.0) % live.entries.len()].clone())
        };
        let file = |f: FileIdx| {
            (!live.files.is_empty()).then(|| live.files[usize::from(f.0) % live.files.len()])
        };
        match *op {
            Op::Mkdir {
                c,
                who,
                parent,
                name,
                mode,
            } => {
                let (p, n, m) = (dir(parent), pick(&NAMES, name), pick(&MODES, mode));
                let mr = self.model.client(c).mkdir(&who.ctx(), p, n, m).await;
                let er = self
                    .engine
                    .client(c)
                    .mkdir(&who.ctx(), self.e(p)?, n, m)
                    .await;
                self.cmp_entry(&mr, &er)
            }
            Op::Mknod {
                c,
                who,
                parent,
                name,
                kind,
                mode,
            } => {
                let (p, n, m) = (dir(parent), pick(&NAMES, name), pick(&MODES, mode));
                let (typ, rdev) = match kind {
                    Kind::Reg => (FileType::Regular, 0),
                    Kind::Fifo => (FileType::Fifo, 0),
                    Kind::Sock => (FileType::Socket, 0),
                    Kind::Chr => (FileType::CharDevice, (1 << 8) | 3),
                };
                let mr = self
                    .model
                    .client(c)
                    .mknod(&who.ctx(), p, n, typ, m, rdev)
                    .await;
                let er = self
                    .engine
                    .client(c)
                    .mknod(&who.ctx(), self.e(p)?, n, typ, m, rdev)
                    .await;
                self.cmp_entry(&mr, &er)
            }
            Op::Symlink {
                c,
                who,
                parent,
                name,
                target,
            } => {
                let (p, n, t) = (dir(parent), pick(&NAMES, name), pick(&NAMES, target));
                let mr = self.model.client(c).symlink(&who.ctx(), p, n, t).await;
                let er = self
                    .engine
                    .client(c)
                    .symlink(&who.ctx(), self.e(p)?, n, t)
                    .await;
                self.cmp_entry(&mr, &er)
            }
            Op::Link {
                c,
                who,
                entry: ei,
                parent,
                name,
            } => {
                let Some((_, _, ino, _)) = entry(ei) else {
                    return Ok(());
                };
                let (p, n) = (dir(parent), pick(&NAMES, name));
                let mr = self.model.client(c).link(&who.ctx(), ino, p, n).await;
                let er = self
                    .engine
                    .client(c)
                    .link(&who.ctx(), self.e(ino)?, self.e(p)?, n)
                    .await;
                self.cmp_entry(&mr, &er)
            }
            Op::Unlink { c, who, entry: ei } => {
                let Some((p, n, _, _)) = entry(ei) else {
                    return Ok(());
                };
                let mr = self.model.client(c).unlink(&who.ctx(), p, &n).await;
                let er = self
                    .engine
                    .client(c)
                    .unlink(&who.ctx(), self.e(p)?, &n)
                    .await;
                self.tally(&mr, &er)
            }
            Op::Rmdir { c, who, entry: ei } => {
                let Some((p, n, _, _)) = entry(ei) else {
                    return Ok(());
                };
                let mr = self.model.client(c).rmdir(&who.ctx(), p, &n).await;
                let er = self
                    .engine
                    .client(c)
                    .rmdir(&who.ctx(), self.e(p)?, &n)
                    .await;
                self.tally(&mr, &er)
            }
            Op::Rename {
                c,
                who,
                entry: ei,
                parent,
                name,
                kind,
            } => {
                let Some((p, n, _, _)) = entry(ei) else {
                    return Ok(());
                };
                let (np, nn) = (dir(parent), pick(&NAMES, name));
                let flags = RenameFlags(match kind {
                    RenameKind::Plain => 0,
                    RenameKind::NoReplace => RenameFlags::NOREPLACE,
                    RenameKind::Exchange => RenameFlags::EXCHANGE,
                });
                let mr = self
                    .model
                    .client(c)
                    .rename(&who.ctx(), p, &n, np, nn, flags)
                    .await;
                let er = self
                    .engine
                    .client(c)
                    .rename(&who.ctx(), self.e(p)?, &n, self.e(np)?, nn, flags)
                    .await;
                self.tally(&mr, &er)
            }
            Op::Lookup {
                c,
                who,
                parent,
                name,
            } => {
                let (p, n) = (dir(parent), pick(&LOOKUP_NAMES, name));
                let mr = self.model.client(c).lookup(&who.ctx(), p, n).await;
                let er = self
                    .engine
                    .client(c)
                    .lookup(&who.ctx(), self.e(p)?, n)
                    .await;
                self.cmp_entry(&mr, &er)
            }
            Op::Chmod {
                c,
                who,
                entry: ei,
                mode,
            } => {
                let Some((_, _, ino, _)) = entry(ei) else {
                    return Ok(());
                };
                self.setattr(c, who, ino, SetAttr::new().mode(pick(&MODES, mode)))
                    .await
            }
            Op::Chown {
                c,
                who,
                entry: ei,
                owner,
                group,
            } => {
                let Some((_, _, ino, _)) = entry(ei) else {
                    return Ok(());
                };
                self.setattr(c, who, ino, SetAttr::new().uid(owner.id()).gid(group.id()))
                    .await
            }
            Op::Utimens {
                c,
                who,
                entry: ei,
                times,
            } => {
                let Some((_, _, ino, _)) = entry(ei) else {
                    return Ok(());
                };
                let t = match times {
                    Times::Now => SetTime::Now,
                    Times::At(x) => SetTime::At(Timestamp::new(1_000 + i64::from(x), u32::from(x))),
                };
                self.setattr(c, who, ino, SetAttr::new().atime(t).mtime(t))
                    .await
            }
            Op::Write {
                c,
                file: fi,
                chunk,
                pos,
                len,
            } => {
                let Some(ino) = file(fi) else { return Ok(()) };
                let index = u32::from(chunk % 2);
                let pos = pick(&POSITIONS, pos);
                let len = pick(&LENGTHS, len).min(CHUNK - pos);
                let mid = self
                    .model
                    .client(c)
                    .new_slice_id()
                    .await
                    .map_err(|e| format!("model slice id: {e:?}"))?;
                let eid = self
                    .engine
                    .client(c)
                    .new_slice_id()
                    .await
                    .map_err(|e| format!("engine slice id: {e:?}"))?;
                self.slices.bind(mid, eid, "slice id")?;
                let s = |id| Slice {
                    pos,
                    id,
                    size: len,
                    off: 0,
                    len,
                };
                let t = Timestamp::now();
                let mr = self
                    .model
                    .client(c)
                    .write_slice(ino, index, s(mid), t)
                    .await;
                let er = self
                    .engine
                    .client(c)
                    .write_slice(self.e(ino)?, index, s(eid), t)
                    .await;
                self.tally(&mr, &er)?;
                self.cmp_chunk(c, ino, index).await
            }
            Op::Truncate {
                c,
                who,
                file: fi,
                size,
                via_setattr,
            } => {
                let Some(ino) = file(fi) else { return Ok(()) };
                let size = pick(&SIZES, size);
                if via_setattr {
                    return self.setattr(c, who, ino, SetAttr::new().size(size)).await;
                }
                let mr = self.model.client(c).truncate(&who.ctx(), ino, size).await;
                let er = self
                    .engine
                    .client(c)
                    .truncate(&who.ctx(), self.e(ino)?, size)
                    .await;
                self.cmp_attr_result(ino, &mr, &er)?;
                self.cmp_chunk(c, ino, 0).await
            }
            Op::Fallocate {
                c,
                who,
                file: fi,
                mode,
                off,
                len,
            } => {
                let Some(ino) = file(fi) else { return Ok(()) };
                let mode = FallocMode(pick(&FALLOC_MODES, mode));
                let (off, len) = (pick(&OFFSETS, off), pick(&COPY_LENGTHS, len));
                let mr = self
                    .model
                    .client(c)
                    .fallocate(&who.ctx(), ino, mode, off, len)
                    .await;
                let er = self
                    .engine
                    .client(c)
                    .fallocate(&who.ctx(), self.e(ino)?, mode, off, len)
                    .await;
                self.tally(&mr, &er)?;
                let ma = self.model.client(c).getattr(ino).await;
                let ea = self.engine.client(c).getattr(self.e(ino)?).await;
                self.cmp_attr_result(ino, &ma, &ea)?;
                for index in 0..2 {
                    self.cmp_chunk(c, ino, index).await?;
                }
                Ok(())
            }
            Op::Copy {
                c,
                who,
                src,
                src_off,
                dst,
                dst_off,
                len,
            } => {
                let (Some(s), Some(d)) = (file(src), file(dst)) else {
                    return Ok(());
                };
                let (so, doff, n) = (
                    pick(&OFFSETS, src_off),
                    pick(&OFFSETS, dst_off),
                    pick(&COPY_LENGTHS, len),
                );
                let mr = self
                    .model
                    .client(c)
                    .copy_file_range(&who.ctx(), s, so, d, doff, n)
                    .await;
                let er = self
                    .engine
                    .client(c)
                    .copy_file_range(&who.ctx(), self.e(s)?, so, self.e(d)?, doff, n)
                    .await;
                self.tally(&mr, &er)?;
                if let (Ok(m), Ok(e)) = (&mr, &er) {
                    if m != e {
                        return Err(format!("copied {m} bytes in the model, {e} in the engine"));
                    }
                }
                for index in 0..3 {
                    self.cmp_chunk(c, d, index).await?;
                }
                Ok(())
            }
            Op::Setxattr {
                c,
                who,
                entry: ei,
                name,
                value,
                flag,
            } => {
                let Some((_, _, ino, _)) = entry(ei) else {
                    return Ok(());
                };
                let n = pick(&XATTRS, name);
                let v = vec![value; usize::from(value % 5)];
                let flags = match flag {
                    XFlag::Any => 0,
                    XFlag::Create => XattrFlags::CREATE,
                    XFlag::Replace => XattrFlags::REPLACE,
                };
                let mr = self
                    .model
                    .client(c)
                    .setxattr(&who.ctx(), ino, n, &v, flags)
                    .await;
                let er = self
                    .engine
                    .client(c)
                    .setxattr(&who.ctx(), self.e(ino)?, n, &v, flags)
                    .await;
                self.tally(&mr, &er)
            }
            Op::Removexattr {
                c,
                who,
                entry: ei,
                name,
            } => {
                let Some((_, _, ino, _)) = entry(ei) else {
                    return Ok(());
                };
                let n = pick(&XATTRS, name);
                let mr = self.model.client(c).removexattr(&who.ctx(), ino, n).await;
                let er = self
                    .engine
                    .client(c)
                    .removexattr(&who.ctx(), self.e(ino)?, n)
                    .await;
                self.tally(&mr, &er)
            }
            Op::Readdir {
                c,
                who,
                dir: di,
                limit,
                plus,
            } => {
                let d = dir(di);
                let limit = usize::from(limit % 4) + 1;
                let mr = list_all(self.model.client(c), &who.ctx(), d, limit, plus).await;
                let er = list_all(self.engine.client(c), &who.ctx(), self.e(d)?, limit, plus).await;
                self.tally(&mr, &er)?;
                if let (Ok(m), Ok(e)) = (mr, er) {
                    self.cmp_listing(d, &m, &e)?;
                }
                Ok(())
            }
            Op::Open {
                c,
                who,
                file: fi,
                kind,
            } => {
                let Some(ino) = file(fi) else { return Ok(()) };
                let flags = match kind {
                    OpenKind::Rd => libc::O_RDONLY,
                    OpenKind::Wr => libc::O_WRONLY,
                    OpenKind::RdWr => libc::O_RDWR,
                    OpenKind::RdTrunc => libc::O_RDONLY | libc::O_TRUNC,
                };
                let eino = self.e(ino)?;
                let mr = self.model.client(c).open(&who.ctx(), ino, flags).await;
                let er = self.engine.client(c).open(&who.ctx(), eino, flags).await;
                self.cmp_attr_result(ino, &mr, &er)?;
                if mr.is_ok() {
                    self.handles.push(Handle {
                        c,
                        model: ino,
                        engine: eino,
                    });
                }
                Ok(())
            }
            Op::Close { handle } => {
                if self.handles.is_empty() {
                    return Ok(());
                }
                let h = self
                    .handles
                    .remove(usize::from(handle.0) % self.handles.len());
                let mr = self.model.client(h.c).close(h.model).await;
                let er = self.engine.client(h.c).close(h.engine).await;
                self.tally(&mr, &er)
            }
            Op::HandleGetattr { handle } => {
                let Some(h) = self.handle(handle) else {
                    return Ok(());
                };
                let mr = self.model.client(h.c).getattr(h.model).await;
                let er = self.engine.client(h.c).getattr(h.engine).await;
                self.cmp_attr_result(h.model, &mr, &er)
            }
            Op::HandleRead { handle, chunk } => {
                let Some(h) = self.handle(handle) else {
                    return Ok(());
                };
                self.cmp_chunk(h.c, h.model, u32::from(chunk % 3)).await
            }
            Op::Reconnect { c } => {
                let mr = self.model.client(c).close_session().await;
                let er = self.engine.client(c).close_session().await;
                self.tally(&mr, &er)?;
                // Closing the session closed this client's handles.
                self.handles.retain(|h| h.c != c);
                let info = SessionInfo {
                    version: "testkit".into(),
                    host_name: "model-test".into(),
                    mount_point: format!("{c:?}"),
                    process_id: 1,
                };
                let mr = self.model.client(c).new_session(&info).await;
                let er = self.engine.client(c).new_session(&info).await;
                self.tally(&mr, &er)?;
                self.cmp_sustained().await
            }
        }
    }

    fn handle(&self, i: HandleIdx) -> Option<Handle> {
        (!self.handles.is_empty()).then(|| self.handles[usize::from(i.0) % self.handles.len()])
    }

    async fn setattr(&mut self, c: Client, who: Who, ino: Ino, set: SetAttr) -> Result<(), String> {
        let mr = self.model.client(c).setattr(&who.ctx(), ino, &set).await;
        let er = self
            .engine
            .client(c)
            .setattr(&who.ctx(), self.e(ino)?, &set)
            .await;
        self.cmp_attr_result(ino, &mr, &er)
    }

    /// Compares two listings of model directory `d`, binding inode numbers.
    fn cmp_listing(
        &mut self,
        d: Ino,
        m: &[crate::DirEntry],
        e: &[crate::DirEntry],
    ) -> Result<(), String> {
        let names = |v: &[crate::DirEntry]| v.iter().map(|x| x.name.clone()).collect::<Vec<_>>();
        if names(m) != names(e) {
            return Err(format!(
                "directory {d} lists differently:\n  model  {:?}\n  engine {:?}",
                names(m),
                names(e)
            ));
        }
        for (me, ee) in m.iter().zip(e) {
            self.inos.bind(me.ino, ee.ino, "inode")?;
            if me.typ != ee.typ {
                return Err(format!(
                    "{:?} in {d}: type {:?} vs {:?}",
                    me.name, me.typ, ee.typ
                ));
            }
            match (&me.attr, &ee.attr) {
                (Some(ma), Some(ea)) => self.cmp_attr(me.ino, ma, ea)?,
                (Some(_), None) => {
                    return Err(format!(
                        "{:?} in {d}: plus listing without attributes",
                        me.name
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The final comparison: whole trees, sustained inodes, and after closing every
    /// handle, the deletion queues and what purging them frees.
    async fn finish(&mut self) -> Result<(), String> {
        let live = self.live().await?;
        let root = Context::root();
        for &d in &live.dirs {
            let m = list_all(&*self.model.a, &root, d, 1000, true).await;
            let e = list_all(&*self.engine.a, &root, self.e(d)?, 1000, true).await;
            self.tally(&m, &e)?;
            if let (Ok(m), Ok(e)) = (m, e) {
                self.cmp_listing(d, &m, &e)?;
            }
        }
        let mut seen = Vec::new();
        for (_, _, ino, typ) in &live.entries {
            if seen.contains(ino) {
                continue;
            }
            seen.push(*ino);
            self.cmp_inode(*ino, *typ).await?;
        }
        self.cmp_sustained().await?;
        for h in std::mem::take(&mut self.handles) {
            let mr = self.model.client(h.c).close(h.model).await;
            let er = self.engine.client(h.c).close(h.engine).await;
            self.tally(&mr, &er)?;
        }
        self.cmp_purges().await
    }

    /// Compares one inode's attributes, symlink target, xattrs and data.
    async fn cmp_inode(&self, ino: Ino, typ: FileType) -> Result<(), String> {
        let (m, e) = (&*self.model.a, &*self.engine.a);
        let eino = self.e(ino)?;
        let ma = m.getattr(ino).await;
        let ea = e.getattr(eino).await;
        self.cmp_attr_result(ino, &ma, &ea)?;
        if typ == FileType::Symlink {
            let mt = m.readlink(ino).await;
            let et = e.readlink(eino).await;
            self.tally(&mt, &et)?;
            if let (Ok(mt), Ok(et)) = (mt, et) {
                if mt != et {
                    return Err(format!("symlink {ino}: target {mt:?} vs {et:?}"));
                }
            }
        }
        let mx = xattrs(m, ino).await;
        let ex = xattrs(e, eino).await;
        self.tally(&mx, &ex)?;
        if let (Ok(mx), Ok(ex)) = (mx, ex) {
            if mx != ex {
                return Err(format!("inode {ino}: xattrs {mx:?} vs {ex:?}"));
            }
        }
        if typ == FileType::Regular {
            if let Ok(a) = ma {
                let chunks = a.length.div_ceil(CHUNK_SIZE) as u32;
                for index in 0..chunks {
                    self.cmp_chunk(Client::A, ino, index).await?;
                }
            }
        }
        Ok(())
    }

    /// Passes both engine clients' barriers: closes an engine sends in batches are sent
    /// by it ([`MetaEngine::close`]), and their effects can be compared.
    async fn settle(&self) -> Result<(), String> {
        for e in [&self.engine.a, &self.engine.b] {
            e.sync().await.map_err(|e| format!("engine sync: {e:?}"))?;
        }
        Ok(())
    }

    async fn cmp_sustained(&self) -> Result<(), String> {
        self.settle().await?;
        let collect = |v: Vec<crate::Session>| {
            let mut s: Vec<Vec<u64>> = v
                .into_iter()
                .map(|s| {
                    let mut x = s.sustained;
                    x.sort_unstable();
                    x
                })
                .collect();
            s.sort();
            s
        };
        let ms = self
            .model
            .a
            .list_sessions()
            .await
            .map_err(|e| format!("model sessions: {e:?}"))?;
        let es = self
            .engine
            .a
            .list_sessions()
            .await
            .map_err(|e| format!("engine sessions: {e:?}"))?;
        let mut want = Vec::new();
        for set in collect(ms) {
            let mut mapped = set
                .iter()
                .map(|&i| self.e(i))
                .collect::<Result<Vec<_>, _>>()?;
            mapped.sort_unstable();
            want.push(mapped);
        }
        want.sort();
        let got = collect(es);
        if want != got {
            return Err(format!(
                "sustained inodes per session differ: model {want:?}, engine {got:?}"
            ));
        }
        Ok(())
    }

    async fn cmp_purges(&self) -> Result<(), String> {
        self.settle().await?;
        let md = self
            .model
            .a
            .deleted_files(usize::MAX)
            .await
            .map_err(|e| format!("model deleted_files: {e:?}"))?;
        let ed = self
            .engine
            .a
            .deleted_files(usize::MAX)
            .await
            .map_err(|e| format!("engine deleted_files: {e:?}"))?;
        let mut want = md
            .iter()
            .map(|d| Ok((self.e(d.ino)?, d.length)))
            .collect::<Result<Vec<_>, String>>()?;
        want.sort_unstable();
        let mut got: Vec<(u64, u64)> = ed.iter().map(|d| (d.ino, d.length)).collect();
        got.sort_unstable();
        if want != got {
            return Err(format!(
                "files waiting for purge differ: model {want:?}, engine {got:?}"
            ));
        }
        for d in &md {
            let mf = self
                .model
                .a
                .purge_file(d.ino)
                .await
                .map_err(|e| format!("model purge: {e:?}"))?;
            let ef = self
                .engine
                .a
                .purge_file(self.e(d.ino)?)
                .await
                .map_err(|e| format!("engine purge: {e:?}"))?;
            let mut want = mf
                .iter()
                .map(|s| self.slices.engine(s.id, "slice"))
                .collect::<Result<Vec<_>, _>>()?;
            want.sort_unstable();
            let mut got: Vec<u64> = ef.iter().map(|s| s.id).collect();
            got.sort_unstable();
            got.dedup();
            if want != got {
                return Err(format!(
                    "purging inode {} frees different slices: model {want:?}, engine {got:?}",
                    d.ino
                ));
            }
        }
        self.cmp_usage().await
    }

    /// With everything closed and purged, both volumes count the same growth in inodes
    /// and in space (JuiceFS's rule: each inode its length rounded up to 4 KiB, at least
    /// 4 KiB).
    async fn cmp_usage(&self) -> Result<(), String> {
        let m = self
            .model
            .a
            .statfs()
            .await
            .map_err(|e| format!("model statfs: {e:?}"))?;
        let e = self
            .engine
            .a
            .statfs()
            .await
            .map_err(|e| format!("engine statfs: {e:?}"))?;
        let (m0, e0) = self.statfs_at_start;
        let inodes =
            |now: StatFs, then: StatFs| i128::from(now.used_inodes) - i128::from(then.used_inodes);
        let used = |s: StatFs| i128::from(s.total_space) - i128::from(s.avail_space);
        let space = |now: StatFs, then: StatFs| used(now) - used(then);
        if inodes(m, m0) != inodes(e, e0) {
            return Err(format!(
                "used inodes grew by {} in the model, {} in the engine",
                inodes(m, m0),
                inodes(e, e0)
            ));
        }
        if space(m, m0) != space(e, e0) {
            return Err(format!(
                "used space grew by {} in the model, {} in the engine \
                 (model {m0:?} -> {m:?}, engine {e0:?} -> {e:?})",
                space(m, m0),
                space(e, e0)
            ));
        }
        Ok(())
    }
}

/// A whole directory listing, read in pages of `limit`.
async fn list_all(
    e: &dyn MetaEngine,
    ctx: &Context,
    d: Ino,
    limit: usize,
    plus: bool,
) -> crate::Result<Vec<crate::DirEntry>> {
    let mut out: Vec<crate::DirEntry> = Vec::new();
    loop {
        let after = out.last().map(|x| x.name.clone());
        let page = e.readdir(ctx, d, after.as_deref(), limit, plus).await?;
        if page.is_empty() {
            return Ok(out);
        }
        out.extend(page);
    }
}

/// Every xattr of an inode with its value.
async fn xattrs(e: &dyn MetaEngine, ino: Ino) -> crate::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    for name in e.listxattr(ino).await? {
        let v = e.getxattr(ino, &name).await?;
        out.push((name, v));
    }
    Ok(out)
}
