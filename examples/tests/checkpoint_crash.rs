//! `tessera checkpoint` on the CLI, and a restore killed with SIGKILL half-way: the volume
//! refuses to open (naming the checkpoint) until the restore is run again, which then
//! brings the whole checkpoint back; our fsck and `juicefs fsck` are clean.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};

mod support;

use support::{generated_dump, ok, pattern, tessera, url, wait_for, PER_DIR};

/// Runs the binary, which must fail with one line naming `what`.
fn refused(args: &[&str], what: &str) {
    let out = tessera(args);
    assert!(!out.status.success(), "tessera {args:?} succeeded");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(what), "tessera {args:?}: {err}");
}

/// The volume's setting as stored, read beside the running restore.
fn setting(db: &std::path::Path) -> String {
    let Ok(c) = rusqlite::Connection::open(db) else {
        return String::new();
    };
    c.query_row(
        "SELECT value FROM jfs_setting WHERE name = 'format'",
        [],
        |r| r.get::<_, String>(0),
    )
    .unwrap_or_default()
}

#[test]
fn checkpoints_on_the_cli_and_a_killed_restore_is_run_again() {
    let jfs = tessera_testenv::env("JUICEFS_BIN", "the juicefs client, for its fsck");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let dump_file = dir.join("gen.json");
    std::fs::write(&dump_file, generated_dump(dir, false)).unwrap();
    let db = dir.join("vol.db");
    let vol = url(dir, "vol.db");
    ok(&["load", &vol, dump_file.to_str().unwrap()]);
    let local = dir.join("real.bin");
    std::fs::write(&local, pattern(7, 200_000)).unwrap();
    ok(&["put", "-q", &vol, local.to_str().unwrap(), "/real"]);

    let out = tessera(&["checkpoint", "create", &vol, "c1"]);
    assert!(out.status.success(), "{out:?}");
    let listed = ok(&["checkpoint", "list", &vol]);
    assert!(listed.starts_with("c1\t"), "{listed}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["checkpoint", "list", &vol, "--json"])).unwrap();
    assert_eq!(json[0]["name"], "c1");
    assert_eq!(json[0]["complete"], true);
    refused(&["checkpoint", "create", &vol, "c1"], "exists");
    refused(
        &["checkpoint", "create", &vol, "no/slash"],
        "checkpoint name",
    );
    refused(
        &["checkpoint", "restore", &vol, "missing"],
        "no checkpoint \"missing\"",
    );

    // Changes after it, then a restore killed half-way.
    ok(&["rmr", &vol, "/d0"]);
    ok(&["rmr", &vol, "/real"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["checkpoint", "restore", &vol, "c1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the restore's mark", || {
        setting(&db).contains("RestoringCheckpoint")
    });
    child.kill().unwrap();
    assert!(
        !child.wait().unwrap().success(),
        "the restore finished first"
    );
    refused(&["ls", &vol, "/"], "did not finish");
    refused(&["ls", &vol, "/"], "c1");

    // Run again, it finishes: the checkpoint whole, the volume writable and clean.
    ok(&["checkpoint", "restore", &vol, "c1"]);
    assert_eq!(ok(&["ls", &vol, "/d0"]).lines().count(), PER_DIR);
    let cat = tessera(&["cat", &vol, "/real"]);
    assert!(
        cat.stdout == pattern(7, 200_000),
        "/real differs after the restore"
    );
    ok(&["put", "-q", &vol, local.to_str().unwrap(), "/again"]);
    ok(&["fsck", &vol]);
    if let Some(jfs) = jfs {
        let out = Command::new(jfs).args(["fsck", &vol]).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "juicefs fsck: {text}");
        for bad in ["lost", "broken", "corrupt", "<ERROR>", "<FATAL>"] {
            assert!(!text.contains(bad), "juicefs fsck reported {bad:?}: {text}");
        }
    }
    ok(&["checkpoint", "delete", &vol, "c1"]);
    assert_eq!(ok(&["checkpoint", "list", &vol]), "");
}
