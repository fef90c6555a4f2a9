//! Property test: random writes, truncates, reads, reopens and hand-overs between two
//! clients of one volume, checked against a `Vec<u8>` model of the file's bytes.
//!
//! Writes land in two windows, one at the start of the file and one around the first
//! chunk boundary, so that a handful of operations exercises block and chunk edges; the
//! bytes between the windows are checked to stay zero.

use bytes::Bytes;
use proptest::prelude::*;

use crate::support::*;

/// Size of the window at the start of the file.
const LOW: u64 = 4 * BLOCK;
/// The second window spans the first chunk boundary.
const HIGH_START: u64 = CHUNK - 3 * BLOCK;
const HIGH_LEN: u64 = 6 * BLOCK;

/// The file's bytes: only the windows can hold non-zero bytes.
struct Model {
    len: u64,
    low: Vec<u8>,
    high: Vec<u8>,
}

impl Model {
    fn new() -> Model {
        Model {
            len: 0,
            low: vec![0; LOW as usize],
            high: vec![0; HIGH_LEN as usize],
        }
    }

    fn slot(&mut self, off: u64) -> Option<&mut u8> {
        if off < LOW {
            self.low.get_mut(off as usize)
        } else if (HIGH_START..HIGH_START + HIGH_LEN).contains(&off) {
            self.high.get_mut((off - HIGH_START) as usize)
        } else {
            None
        }
    }

    fn byte(&self, off: u64) -> u8 {
        if off >= self.len {
            0
        } else if off < LOW {
            self.low[off as usize]
        } else if (HIGH_START..HIGH_START + HIGH_LEN).contains(&off) {
            self.high[(off - HIGH_START) as usize]
        } else {
            0
        }
    }

    fn write(&mut self, off: u64, data: &[u8]) {
        for (i, &b) in data.iter().enumerate() {
            if let Some(s) = self.slot(off + i as u64) {
                *s = b;
            }
        }
        self.len = self.len.max(off + data.len() as u64);
    }

    fn truncate(&mut self, len: u64) {
        for (i, b) in self.low.iter_mut().enumerate() {
            if i as u64 >= len {
                *b = 0;
            }
        }
        for (i, b) in self.high.iter_mut().enumerate() {
            if HIGH_START + i as u64 >= len {
                *b = 0;
            }
        }
        self.len = len;
    }

    fn punch(&mut self, off: u64, n: u64) {
        for o in off..(off + n).min(self.len) {
            if let Some(s) = self.slot(o) {
                *s = 0;
            }
        }
    }

    /// How many bytes an append of `n` may write without leaving the windows.
    fn append_room(&self, n: u64) -> u64 {
        if self.len < LOW {
            n.min(LOW - self.len)
        } else if (HIGH_START..HIGH_START + HIGH_LEN).contains(&self.len) {
            n.min(HIGH_START + HIGH_LEN - self.len)
        } else {
            0
        }
    }

    fn expected(&self, off: u64, n: u64) -> Vec<u8> {
        let end = (off + n).min(self.len);
        (off..end.max(off)).map(|o| self.byte(o)).collect()
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// Write `len` bytes (pattern `seed`) at `off` within a window.
    Write {
        high: bool,
        off: u64,
        len: u64,
        seed: u8,
    },
    /// Truncate to a length within a window.
    Truncate { high: bool, at: u64 },
    /// Read through the current handle.
    Read { high: bool, off: u64, len: u64 },
    /// Punch a hole (`FALLOC_FL_PUNCH_HOLE`) within a window.
    Punch { high: bool, off: u64, len: u64 },
    /// Append through a second, `O_APPEND` handle of the current client, then close it.
    Append { len: u64, seed: u8 },
    /// Flush the current handle.
    Flush,
    /// Release and reopen on the same client.
    Reopen,
    /// Release on this client; the other client opens and checks the whole file.
    Switch,
}

fn window(high: bool) -> (u64, u64) {
    if high {
        (HIGH_START, HIGH_LEN)
    } else {
        (0, LOW)
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<bool>(), 0..HIGH_LEN, 1..(2 * BLOCK + 100), any::<u8>())
            .prop_map(|(high, off, len, seed)| Op::Write { high, off, len, seed }),
        1 => (any::<bool>(), 0..=HIGH_LEN).prop_map(|(high, at)| Op::Truncate { high, at }),
        2 => (any::<bool>(), 0..HIGH_LEN, 1..(2 * BLOCK)).prop_map(|(high, off, len)| Op::Read { high, off, len }),
        1 => (any::<bool>(), 0..HIGH_LEN, 1..(2 * BLOCK)).prop_map(|(high, off, len)| Op::Punch { high, off, len }),
        1 => (1..(BLOCK + 100), any::<u8>()).prop_map(|(len, seed)| Op::Append { len, seed }),
        1 => Just(Op::Flush),
        1 => Just(Op::Reopen),
        1 => Just(Op::Switch),
    ]
}

async fn check_all(vfs: &vfs_core::Vfs, fh: u64, ino: u64, model: &Model) {
    assert_eq!(vfs.getattr(&root(), ino).await.unwrap().length, model.len);
    for (start, n) in [(0, LOW + BLOCK), (HIGH_START - BLOCK, HIGH_LEN + 2 * BLOCK)] {
        let got = read_all(vfs, fh, start, n).await;
        assert!(
            got == model.expected(start, n),
            "contents differ in {start}..{}",
            start + n
        );
    }
}

async fn run(engine: Engine, ops: Vec<Op>) {
    let vol = Volume::new(engine).await;
    let clients = [vol.client().await, vol.client().await];
    let mut cur = 0;
    let (ino, mut fh) = create(&clients[0], "model").await;
    let mut model = Model::new();
    for op in ops {
        let vfs = &clients[cur];
        match op {
            Op::Write {
                high,
                off,
                len,
                seed,
            } => {
                let (base, size) = window(high);
                let off = off % size;
                let len = len.min(size - off);
                let data = pattern(seed, base + off, len as usize);
                let n = vfs
                    .write(&root(), fh, base + off, Bytes::from(data.clone()))
                    .await
                    .unwrap();
                assert_eq!(n, data.len());
                model.write(base + off, &data);
            }
            Op::Truncate { high, at } => {
                let (base, size) = window(high);
                let len = base + at.min(size);
                let attr = vfs.ftruncate(&root(), fh, len).await.unwrap();
                assert_eq!(attr.length, len);
                model.truncate(len);
            }
            Op::Read { high, off, len } => {
                let (base, size) = window(high);
                let off = base + off % size;
                let got = vfs.read(&root(), fh, off, len as usize).await.unwrap();
                assert!(
                    got[..] == model.expected(off, len)[..],
                    "read {off}+{len} differs"
                );
            }
            Op::Punch { high, off, len } => {
                let (base, size) = window(high);
                let off = off % size;
                let len = len.min(size - off);
                let mode = (libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE) as u32;
                vfs.fallocate(&root(), fh, mode, base + off, len)
                    .await
                    .unwrap();
                model.punch(base + off, len);
            }
            Op::Append { len, seed } => {
                let len = model.append_room(len);
                if len > 0 {
                    let at = model.len;
                    let data = pattern(seed, at, len as usize);
                    let ah = vfs
                        .open(&root(), ino, libc::O_WRONLY | libc::O_APPEND)
                        .await
                        .unwrap();
                    vfs.write(&root(), ah, 0, Bytes::from(data.clone()))
                        .await
                        .unwrap();
                    vfs.release(&root(), ah).await.unwrap();
                    model.write(at, &data);
                }
            }
            Op::Flush => vfs.flush(&root(), fh).await.unwrap(),
            Op::Reopen => {
                vfs.release(&root(), fh).await.unwrap();
                fh = vfs.open(&root(), ino, libc::O_RDWR).await.unwrap();
                check_all(vfs, fh, ino, &model).await;
            }
            Op::Switch => {
                vfs.release(&root(), fh).await.unwrap();
                cur = 1 - cur;
                let other = &clients[cur];
                fh = other.open(&root(), ino, libc::O_RDWR).await.unwrap();
                check_all(other, fh, ino, &model).await;
            }
        }
    }
    let vfs = &clients[cur];
    check_all(vfs, fh, ino, &model).await;
    vfs.release(&root(), fh).await.unwrap();
    for c in &clients {
        c.close().await.unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        // PROPTEST_CASES raises it for a longer run.
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(32),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn file_bytes_match_the_model(
        sqlite in any::<bool>(),
        ops in proptest::collection::vec(op(), 1..24),
    ) {
        let engine = if sqlite { Engine::Sqlite } else { Engine::Model };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(engine, ops));
    }
}

#[tokio::test]
async fn regression_overwrite_then_truncate_across_the_chunk_boundary() {
    for engine in [Engine::Model, Engine::Sqlite] {
        run(
            engine,
            vec![
                Op::Write {
                    high: true,
                    off: 2 * BLOCK,
                    len: 2 * BLOCK,
                    seed: 1,
                },
                Op::Flush,
                Op::Write {
                    high: true,
                    off: 3 * BLOCK - 10,
                    len: 100,
                    seed: 2,
                },
                Op::Truncate {
                    high: true,
                    at: 3 * BLOCK + 5,
                },
                Op::Switch,
                Op::Write {
                    high: false,
                    off: 5,
                    len: 10,
                    seed: 3,
                },
                Op::Truncate {
                    high: true,
                    at: 4 * BLOCK,
                },
                Op::Switch,
            ],
        )
        .await;
    }
}
