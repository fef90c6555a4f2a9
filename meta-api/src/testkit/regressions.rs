//! Operation sequences every backend's [`run_model_test`](super::run_model_test) replays
//! before its random cases: shrunk sequences that once made an engine disagree with the
//! model (paste new ones from the failure message, with a name saying what broke), and
//! hand-written scenarios of the paths that matter most.
//!
//! Indexes resolve against what is live when the operation runs: directories in
//! breadth-first order from the root (root is `DirIdx(0)`), entries in the same walk with
//! names in byte order, regular files in the order of their first entry.

use super::proptest_model::Client::*;
use super::proptest_model::Kind::*;
use super::proptest_model::Op::*;
use super::proptest_model::OpenKind::*;
use super::proptest_model::RenameKind::*;
use super::proptest_model::Who::*;
use super::proptest_model::{DirIdx, EntryIdx, FileIdx, HandleIdx, Op, Pick};

/// A named sequence.
#[derive(Debug, Clone)]
pub struct Regression {
    /// What the sequence exercises or what once broke.
    pub name: &'static str,
    /// The operations.
    pub ops: Vec<Op>,
}

/// Every kept sequence.
pub fn all() -> Vec<Regression> {
    vec![
        Regression {
            name: "client B unlinks a file client A has open; A reads it, then closes",
            ops: vec![
                Mknod {
                    c: A,
                    who: Root,
                    parent: DirIdx(0),
                    name: Pick(0),
                    kind: Reg,
                    mode: Pick(2),
                },
                Write {
                    c: A,
                    file: FileIdx(0),
                    chunk: 0,
                    pos: Pick(0),
                    len: Pick(2),
                },
                Open {
                    c: A,
                    who: Root,
                    file: FileIdx(0),
                    kind: Rd,
                },
                Unlink {
                    c: B,
                    who: Root,
                    entry: EntryIdx(0),
                },
                HandleRead {
                    handle: HandleIdx(0),
                    chunk: 0,
                },
                HandleGetattr {
                    handle: HandleIdx(0),
                },
                Close {
                    handle: HandleIdx(0),
                },
            ],
        },
        Regression {
            name: "exchange a file and a directory across directories",
            ops: vec![
                Mkdir {
                    c: A,
                    who: Root,
                    parent: DirIdx(0),
                    name: Pick(0),
                    mode: Pick(0),
                },
                Mkdir {
                    c: A,
                    who: Root,
                    parent: DirIdx(0),
                    name: Pick(1),
                    mode: Pick(0),
                },
                Mknod {
                    c: A,
                    who: Root,
                    parent: DirIdx(1),
                    name: Pick(2),
                    kind: Reg,
                    mode: Pick(2),
                },
                Mkdir {
                    c: B,
                    who: Root,
                    parent: DirIdx(2),
                    name: Pick(3),
                    mode: Pick(0),
                },
                Rename {
                    c: A,
                    who: Root,
                    entry: EntryIdx(2),
                    parent: DirIdx(2),
                    name: Pick(3),
                    kind: Exchange,
                },
                Readdir {
                    c: B,
                    who: Root,
                    dir: DirIdx(0),
                    limit: 0,
                    plus: true,
                },
            ],
        },
        Regression {
            name: "copy across a chunk boundary, then delete the source",
            ops: vec![
                Mknod {
                    c: A,
                    who: Root,
                    parent: DirIdx(0),
                    name: Pick(0),
                    kind: Reg,
                    mode: Pick(2),
                },
                Mknod {
                    c: A,
                    who: Root,
                    parent: DirIdx(0),
                    name: Pick(1),
                    kind: Reg,
                    mode: Pick(2),
                },
                Write {
                    c: A,
                    file: FileIdx(0),
                    chunk: 0,
                    pos: Pick(0),
                    len: Pick(3),
                },
                Copy {
                    c: B,
                    who: Root,
                    src: FileIdx(0),
                    src_off: Pick(0),
                    dst: FileIdx(1),
                    dst_off: Pick(3),
                    len: Pick(2),
                },
                Unlink {
                    c: A,
                    who: Root,
                    entry: EntryIdx(0),
                },
            ],
        },
        Regression {
            name: "sticky directory: only the owner removes or renames",
            ops: vec![
                Mkdir {
                    c: A,
                    who: Root,
                    parent: DirIdx(0),
                    name: Pick(0),
                    mode: Pick(5),
                },
                Mknod {
                    c: A,
                    who: Alice,
                    parent: DirIdx(1),
                    name: Pick(1),
                    kind: Reg,
                    mode: Pick(2),
                },
                Unlink {
                    c: B,
                    who: Bob,
                    entry: EntryIdx(1),
                },
                Rename {
                    c: A,
                    who: Bob,
                    entry: EntryIdx(1),
                    parent: DirIdx(1),
                    name: Pick(2),
                    kind: Plain,
                },
                Unlink {
                    c: A,
                    who: Alice,
                    entry: EntryIdx(1),
                },
            ],
        },
    ]
}
