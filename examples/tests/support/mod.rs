//! What the CLI crash tests share: running the binary, and a generated dump of a volume
//! big enough that loading it takes many batches.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, dead_code)]

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Directories of the generated volume.
pub const DIRS: usize = 40;
/// Files in each.
pub const PER_DIR: usize = 500;

/// Runs the binary.
pub fn tessera(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .output()
        .expect("run the tessera binary")
}

/// Runs the binary, which must succeed; returns its stdout.
pub fn ok(args: &[&str]) -> String {
    let out = tessera(args);
    assert!(
        out.status.success(),
        "tessera {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The SQLite URL of database `name` in `dir`.
pub fn url(dir: &Path, name: &str) -> String {
    format!("sqlite3://{}", dir.join(name).display())
}

/// A dump of `DIRS` directories of `PER_DIR` files — one slice each when `slices` (their
/// objects do not exist), else empty — made from an empty volume's dump (for its setting,
/// the volume `crashvol` formatted in `dir` with blocks in `dir/blocks/`), so that loading
/// it takes many batches.
pub fn generated_dump(dir: &Path, slices: bool) -> String {
    let empty = url(dir, "empty.db");
    let bucket = format!("{}/blocks/", dir.display());
    ok(&[
        "format",
        &empty,
        "crashvol",
        "--bucket",
        &bucket,
        "--trash-days",
        "0",
    ]);
    let head_file = dir.join("empty.json");
    ok(&["dump", &empty, head_file.to_str().unwrap()]);
    let head: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&head_file).unwrap()).unwrap();
    let t = 1_764_633_600u64;
    let attr = |ino: usize, typ: &str, mode: u32, length: u64, nlink: usize| {
        format!(
            r#"{{"inode":{ino},"type":"{typ}","mode":{mode},"uid":0,"gid":0,"atime":{t},"mtime":{t},"ctime":{t},"nlink":{nlink},"length":{length}}}"#
        )
    };
    let total = 1 + DIRS + DIRS * PER_DIR;
    let mut s = String::new();
    write!(s, "{{\n\"Setting\": {},\n", head["Setting"]).unwrap();
    write!(
        s,
        r#""Counters": {{"usedSpace":0,"usedInodes":{},"nextInodes":{},"nextChunk":{},"nextSession":1,"nextTrash":0}},"#,
        total - 1,
        total + 1,
        DIRS * PER_DIR + 1
    )
    .unwrap();
    write!(
        s,
        "\n\"Sustained\": [],\n\"DelFiles\": [],\n\"FSTree\": {{\"attr\": {},\n\"entries\": {{",
        attr(1, "directory", 511, 0, 2 + DIRS)
    )
    .unwrap();
    let (mut ino, mut chunk) = (2, 1);
    for d in 0..DIRS {
        let sep = if d > 0 { "," } else { "" };
        write!(
            s,
            "{sep}\n\"d{d}\": {{\"attr\": {},\n\"entries\": {{",
            attr(ino, "directory", 493, 0, 2)
        )
        .unwrap();
        ino += 1;
        for f in 0..PER_DIR {
            let sep = if f > 0 { "," } else { "" };
            if slices {
                write!(
                    s,
                    r#"{sep}
"f{f}": {{"attr": {}, "chunks": [{{"index":0,"slices":[{{"id":{chunk},"size":4096,"len":4096}}]}}]}}"#,
                    attr(ino, "regular", 420, 4096, 1)
                )
                .unwrap();
            } else {
                write!(
                    s,
                    "{sep}\n\"f{f}\": {{\"attr\": {}}}",
                    attr(ino, "regular", 420, 0, 1)
                )
                .unwrap();
            }
            ino += 1;
            chunk += 1;
        }
        s.push_str("\n}}");
    }
    s.push_str("\n}}\n}\n");
    s
}

/// Waits until `cond` holds, for at most a minute.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "waited a minute for {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Deterministic bytes.
pub fn pattern(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
