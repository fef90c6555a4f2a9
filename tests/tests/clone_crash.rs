//! A client killed with SIGKILL in the middle of cloning a tree: nothing of the clone is
//! visible afterwards, our fsck and `juicefs fsck` are clean, and the detached tree it
//! left is removed by gc — ours and juicefs's alike — once it is a day old, with every
//! block of the source kept.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tessera_tests::interop::{assert_fsck_clean, open_fs};
use tessera_tests::tree::pattern;
use tessera_tests::{sqlite_url, Juicefs};
use vfs_core::upkeep::{GcOptions, Progress};

const DIRS: usize = 20;
const PER_DIR: usize = 150;
const WITH_DATA: usize = 10;
const CHILD_ENV: &str = "TESSERA_CLONE_CHILD_URL";

/// The child: clones `/src` as `/dst`, printing how many entries it cloned every few
/// milliseconds, until it is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_child() {
    let Ok(url) = std::env::var(CHILD_ENV) else {
        return; // Only meaningful when started by the test below.
    };
    let fs = open_fs(&url).await;
    let progress = Arc::new(Progress::default());
    let p = progress.clone();
    tokio::spawn(async move {
        let mut stdout = std::io::stdout();
        loop {
            let n = p.items.load(std::sync::atomic::Ordering::Relaxed);
            writeln!(stdout, "CLONED {n}").unwrap();
            stdout.flush().unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let opts = meta_api::clone::CloneOptions::default();
    fs.clone_tree_with("/src", "/dst", opts, &progress)
        .await
        .unwrap();
    writeln!(std::io::stdout(), "DONE").unwrap();
    // The parent kills us long before.
    std::process::exit(0);
}

/// Starts a child cloning `/src` and kills it once it cloned `at` entries.
fn kill_a_clone_half_way(url: &str, at: u64) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "clone_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_ENV, url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let reader = BufReader::new(child.stdout.take().unwrap());
    let mut killed = false;
    for line in reader.lines() {
        let line = line.unwrap();
        assert!(!line.contains("DONE"), "the clone finished before the kill");
        let Some(at_word) = line.find("CLONED ") else {
            continue;
        };
        let n: u64 = line[at_word + 7..].trim().parse().unwrap();
        if n >= at {
            child.kill().unwrap(); // SIGKILL mid-clone
            killed = true;
            break;
        }
    }
    child.wait().unwrap();
    assert!(killed, "the child stopped before it was killed");
}

/// Moves the start of every detached clone and the expiry of every session `secs` into
/// the past, as that time passing would (the killed client's session is then stale, so it
/// no longer keeps what it may have had open); returns the detached clones.
fn age_detached(db: &std::path::Path, secs: i64) -> usize {
    let c = rusqlite::Connection::open(db).unwrap();
    c.execute(
        "UPDATE jfs_session2 SET expire = expire - ?1",
        rusqlite::params![secs],
    )
    .unwrap();
    c.execute(
        "UPDATE jfs_detached_node SET added = added - ?1",
        rusqlite::params![secs],
    )
    .unwrap()
}

/// Our fsck of the whole volume, which must be clean.
async fn our_fsck(url: &str) {
    let fs = open_fs(url).await;
    assert_fsck_clean(&fs).await;
    fs.close().await.unwrap();
}

/// Our gc, deleting when `delete`.
async fn gc(url: &str, delete: bool) -> vfs_core::upkeep::GcReport {
    let fs = open_fs(url).await;
    let opts = GcOptions {
        delete,
        ..GcOptions::default()
    };
    let r = fs.vfs().gc(&opts, &Progress::default()).await.unwrap();
    fs.close().await.unwrap();
    r
}

/// What a crash must not change: the root's entries and the used inodes.
async fn visible_state(url: &str) -> (Vec<String>, u64) {
    let fs = open_fs(url).await;
    let mut names = Vec::new();
    let mut rd = fs.read_dir("/").await.unwrap();
    while let Some(e) = rd.next_entry().await.unwrap() {
        names.push(e.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    let used = fs.statfs().await.unwrap().used_inodes;
    fs.close().await.unwrap();
    (names, used)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_clone_leaves_nothing_visible_and_gc_removes_it_after_a_day() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let Some(jfs) = Juicefs::from_env() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("meta.db");
    let url = sqlite_url(&db);
    jfs.format_file_volume(&url, "clonecrash", &dir.path().join("bucket"), &[]);
    let fs = open_fs(&url).await;
    for d in 0..DIRS {
        fs.create_dir_all(format!("/src/d{d}")).await.unwrap();
        for f in 0..PER_DIR {
            let path = format!("/src/d{d}/f{f}");
            if d == 0 && f < WITH_DATA {
                fs.write(&path, pattern(f as u64, 10_000)).await.unwrap();
            } else {
                fs.create(&path).await.unwrap().close().await.unwrap();
            }
        }
    }
    fs.close().await.unwrap();
    let before = visible_state(&url).await;
    // Killed a third of the way: nothing visible, both fsck clean.
    let total = (DIRS * (PER_DIR + 1)) as u64;
    kill_a_clone_half_way(&url, total / 3);
    let after = visible_state(&url).await;
    assert_eq!(after.0, before.0, "no half-attached clone");
    assert!(after.1 > before.1, "the detached tree is counted meanwhile");
    our_fsck(&url).await;
    jfs.fsck(&url);
    // Young, it stays: its client may still be cloning.
    let r = gc(&url, true).await;
    assert_eq!((r.detached_trees, r.old_detached_trees), (1, 0), "{r:?}");
    assert_eq!(r.removed_detached_trees, 0);
    // A day later our gc removes it, and the source keeps every block.
    assert_eq!(age_detached(&db, 86_400 + 60), 1);
    let r = gc(&url, true).await;
    assert_eq!(
        (r.old_detached_trees, r.removed_detached_trees),
        (1, 1),
        "{r:?}"
    );
    assert_eq!(r.leaked.count, 0, "{r:?}");
    assert_eq!(visible_state(&url).await, before, "{r:?}");
    our_fsck(&url).await;
    jfs.fsck(&url);

    // juicefs's gc removes what we left the same way.
    kill_a_clone_half_way(&url, total / 2);
    assert_eq!(age_detached(&db, 86_400 + 60), 1);
    let out = jfs.run(&["gc", "--delete", &url], &[]);
    assert!(out.status.success(), "juicefs gc failed: {out:?}");
    assert_eq!(visible_state(&url).await, before);
    let r = gc(&url, false).await;
    assert_eq!(r.detached_trees, 0, "{r:?}");
    our_fsck(&url).await;
    jfs.fsck(&url);
    let fs = open_fs(&url).await;
    for f in 0..WITH_DATA {
        let got = fs.read(format!("/src/d0/f{f}")).await.unwrap();
        assert!(got == pattern(f as u64, 10_000), "f{f} differs");
    }
    // And a clone run to the end is whole.
    let made = fs.clone_tree("/src", "/dst").await.unwrap();
    assert_eq!(made.files + made.dirs, total + 1);
    fs.close().await.unwrap();
    our_fsck(&url).await;
    jfs.fsck(&url);
}
