//! `tessera dump` and `tessera load` killed with SIGKILL half-way: a dump never replaces the
//! file it writes with a partial one, and a load cut short leaves an engine that does not
//! open as a volume and that a second load refuses (nothing half-loaded is ever visible).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

mod support;

use support::{generated_dump, ok, tessera, url, wait_for, PER_DIR};

const DIRS: usize = support::DIRS;

#[test]
fn a_killed_load_leaves_no_volume_and_a_killed_dump_no_partial_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let text = generated_dump(dir, true);
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
