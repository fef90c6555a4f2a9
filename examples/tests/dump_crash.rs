//! `tessera dump` and `tessera load` killed with SIGKILL half-way: a dump never replaces the
//! file it writes with a partial one, and a load cut short leaves an engine that does not
//! open as a volume and that a second load refuses (nothing half-loaded is ever visible).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const DIRS: usize = 40;
const PER_DIR: usize = 500;

fn tessera(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .output()
        .expect("run the tessera binary")
}

fn ok(args: &[&str]) -> String {
    let out = tessera(args);
    assert!(
        out.status.success(),
        "tessera {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn url(dir: &Path, name: &str) -> String {
    format!("sqlite3://{}", dir.join(name).display())
}

/// A dump of `DIRS` directories of `PER_DIR` one-slice files, made from an empty volume's
/// dump (for its setting), so that loading it takes many batches.
fn generated_dump(dir: &Path) -> String {
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
            write!(
                s,
                r#"{sep}
"f{f}": {{"attr": {}, "chunks": [{{"index":0,"slices":[{{"id":{chunk},"size":4096,"len":4096}}]}}]}}"#,
                attr(ino, "regular", 420, 4096, 1)
            )
            .unwrap();
            ino += 1;
            chunk += 1;
        }
        s.push_str("\n}}");
    }
    s.push_str("\n}}\n}\n");
    s
}

/// Waits until `cond` holds, for at most a minute.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "waited a minute for {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_killed_load_leaves_no_volume_and_a_killed_dump_no_partial_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let text = generated_dump(dir);
    let dump_file = dir.join("gen.json");
    std::fs::write(&dump_file, &text).unwrap();

    // A load fed two thirds of the dump through a pipe commits batches, then waits for the
    // rest: killed there, it has written records but never the setting.
    let cut = url(dir, "cut.db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["load", &cut, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(&text.as_bytes()[..text.len() * 2 / 3])
        .unwrap();
    stdin.flush().unwrap();
    let db = dir.join("cut.db");
    wait_for("the load's first batches", || {
        std::fs::metadata(&db).is_ok_and(|m| m.len() > 1 << 20)
    });
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap();
    assert!(!child.wait().unwrap().success());
    drop(stdin);

    let refused = tessera(&["ls", &cut, "/"]);
    assert!(
        !refused.status.success(),
        "a half-loaded engine opened: {refused:?}"
    );
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("not formatted"), "{err}");
    let again = tessera(&["load", &cut, dump_file.to_str().unwrap()]);
    assert!(!again.status.success(), "a load over a half-loaded engine");
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("exists") || err.contains("not empty"), "{err}");

    // A complete load into a fresh engine is the volume.
    let vol = url(dir, "vol.db");
    ok(&["load", &vol, dump_file.to_str().unwrap()]);
    let listing = ok(&["ls", &vol, "/d7"]);
    assert_eq!(listing.lines().count(), PER_DIR, "{listing}");

    // A dump killed half-way leaves the previous dump in place and only its .tmp behind.
    let out = dir.join("out.json");
    std::fs::write(&out, b"the previous dump").unwrap();
    let tmp_file = dir.join("out.json.tmp");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["dump", &vol, out.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the dump's first bytes", || {
        std::fs::metadata(&tmp_file).is_ok_and(|m| m.len() > 0) || out_changed(&out)
    });
    child.kill().unwrap();
    let status = child.wait().unwrap();
    if tmp_file.exists() {
        // Killed before the rename: the previous dump is untouched.
        assert!(!status.success());
        assert_eq!(std::fs::read(&out).unwrap(), b"the previous dump");
        eprintln!("the dump was killed half-way");
    } else {
        // Finished before the kill: the file is a whole dump.
        let whole: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        assert!(whole["FSTree"].is_object());
    }
    // Whatever the kill caught, a dump run to the end replaces the file with a whole dump.
    ok(&["dump", &vol, out.to_str().unwrap()]);
    assert!(!tmp_file.exists(), "the .tmp outlived a finished dump");
    let whole: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(whole["FSTree"]["entries"].as_object().unwrap().len(), DIRS);
}

fn out_changed(out: &Path) -> bool {
    std::fs::read(out).is_ok_and(|b| b != b"the previous dump")
}
