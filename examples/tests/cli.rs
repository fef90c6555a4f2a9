//! The `tessera` CLI end to end: the built binary on a SQLite + local-directory volume.

// Helpers are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

mod support;

use support::{ok, pattern, tessera};

/// Runs a command that must fail with status 1 and a one-line message; returns it.
fn fails(args: &[&str]) -> String {
    let out = tessera(args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "tessera {args:?} should fail: {out:?}"
    );
    let err = String::from_utf8(out.stderr).expect("utf-8 stderr");
    assert_eq!(err.lines().count(), 1, "one line expected: {err:?}");
    assert!(err.starts_with("tessera: "), "{err:?}");
    err
}

/// A formatted volume in a temporary directory.
struct Vol {
    dir: tempfile::TempDir,
    url: String,
}

impl Vol {
    fn new() -> Vol {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite3://{}/meta.db", dir.path().display());
        let bucket = format!("{}/blocks/", dir.path().display());
        let out = ok(&[
            "format",
            &url,
            "testvol",
            "--bucket",
            &bucket,
            "--trash-days",
            "0",
            "--block-size",
            "1024",
        ]);
        assert!(out.contains("testvol"), "{out}");
        Vol { dir, url }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
}

/// A local tree with nested directories, small files, a multi-piece file, a symlink,
/// unusual modes and old modification times.
fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("docs/deep/er")).unwrap();
    fs::create_dir_all(root.join("empty")).unwrap();
    for i in 0..40 {
        fs::write(
            root.join(format!("docs/f{i}.txt")),
            pattern(i, 1000 + i as usize * 37),
        )
        .unwrap();
    }
    fs::write(root.join("docs/deep/er/leaf"), b"leaf").unwrap();
    fs::write(root.join("zero"), b"").unwrap();
    // Larger than one 8 MiB transfer piece, not a multiple of anything.
    fs::write(root.join("big.bin"), pattern(99, (17 << 20) + 12345)).unwrap();
    std::os::unix::fs::symlink("docs/f1.txt", root.join("link")).unwrap();
    fs::set_permissions(root.join("docs/f2.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(root.join("docs/deep"), fs::Permissions::from_mode(0o750)).unwrap();
    let old = UNIX_EPOCH + Duration::from_secs(1_500_000_000);
    let f = fs::File::options()
        .write(true)
        .open(root.join("docs/f3.txt"))
        .unwrap();
    f.set_modified(old).unwrap();
    let d = fs::File::open(root.join("docs/deep/er")).unwrap();
    d.set_modified(old).unwrap();
}

/// Asserts two local trees have the same names, types, bytes, modes, mtimes and links.
fn assert_same_tree(a: &Path, b: &Path) {
    let mut stack = vec![(a.to_path_buf(), b.to_path_buf())];
    let mut seen = 0;
    while let Some((x, y)) = stack.pop() {
        seen += 1;
        let (mx, my) = (
            fs::symlink_metadata(&x).unwrap(),
            fs::symlink_metadata(&y).unwrap(),
        );
        assert_eq!(mx.file_type(), my.file_type(), "{}", y.display());
        if mx.file_type().is_symlink() {
            assert_eq!(fs::read_link(&x).unwrap(), fs::read_link(&y).unwrap());
            continue;
        }
        assert_eq!(
            mx.mode() & 0o7777,
            my.mode() & 0o7777,
            "mode of {}",
            y.display()
        );
        assert_eq!(mx.mtime(), my.mtime(), "mtime of {}", y.display());
        if mx.is_file() {
            assert!(
                fs::read(&x).unwrap() == fs::read(&y).unwrap(),
                "bytes of {}",
                y.display()
            );
        } else {
            let mut names_x: Vec<_> = fs::read_dir(&x)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            let mut names_y: Vec<_> = fs::read_dir(&y)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names_x.sort();
            names_y.sort();
            assert_eq!(names_x, names_y, "entries of {}", y.display());
            for n in names_x {
                stack.push((x.join(&n), y.join(&n)));
            }
        }
    }
    assert!(seen > 40);
}

#[test]
fn put_ls_cat_get_round_trip() {
    let vol = Vol::new();
    let src = vol.path("src");
    make_tree(&src);
    ok(&["put", "-q", &vol.url, src.to_str().unwrap(), "/"]);

    let root = ok(&["ls", &vol.url]);
    assert_eq!(root, "src\n");
    let listing = ok(&["ls", &vol.url, "/src"]);
    assert_eq!(listing, "big.bin\ndocs\nempty\nlink\nzero\n");
    let long = ok(&["ls", "-l", &vol.url, "/src"]);
    assert!(long.contains("lrwxrwxrwx"), "{long}");
    assert!(long.contains("link -> docs/f1.txt"), "{long}");
    assert!(long.contains(&format!("{}", (17 << 20) + 12345)), "{long}");
    let f2 = ok(&["ls", "-l", &vol.url, "/src/docs/f2.txt"]);
    assert!(f2.starts_with("-rw-------"), "{f2}");
    assert_eq!(ok(&["cat", &vol.url, "/src/docs/deep/er/leaf"]), "leaf");
    let out = tessera(&["cat", &vol.url, "/src/big.bin"]);
    assert!(out.status.success());
    assert!(out.stdout == fs::read(src.join("big.bin")).unwrap());

    // Out again, into an existing directory: lands as out/src.
    let out_dir = vol.path("out");
    fs::create_dir(&out_dir).unwrap();
    ok(&["get", "-q", &vol.url, "/src", out_dir.to_str().unwrap()]);
    assert_same_tree(&src, &out_dir.join("src"));

    // A second put over the same tree replaces files in place.
    fs::write(src.join("docs/f0.txt"), b"changed").unwrap();
    ok(&["put", "-q", &vol.url, src.to_str().unwrap(), "/"]);
    assert_eq!(ok(&["cat", &vol.url, "/src/docs/f0.txt"]), "changed");
    // Several sources into a new directory; a single file to a new name.
    let a = vol.path("a.txt");
    fs::write(&a, b"A").unwrap();
    ok(&[
        "put",
        "-q",
        &vol.url,
        a.to_str().unwrap(),
        src.join("zero").to_str().unwrap(),
        "/multi",
    ]);
    assert_eq!(ok(&["ls", &vol.url, "/multi"]), "a.txt\nzero\n");
    ok(&["put", "-q", &vol.url, a.to_str().unwrap(), "/renamed.txt"]);
    assert_eq!(ok(&["cat", &vol.url, "/renamed.txt"]), "A");
    let single = vol.path("single.txt");
    ok(&[
        "get",
        "-q",
        &vol.url,
        "/renamed.txt",
        single.to_str().unwrap(),
    ]);
    assert_eq!(fs::read(&single).unwrap(), b"A");
}

#[test]
fn mkdir_mv_rm_and_info() {
    let vol = Vol::new();
    ok(&["mkdir", "-p", &vol.url, "/a/b/c", "/x"]);
    fails(&["mkdir", &vol.url, "/a"]);
    fails(&["mkdir", &vol.url, "/missing/child"]);
    ok(&["mv", &vol.url, "/a/b", "/x"]);
    assert_eq!(ok(&["ls", &vol.url, "/x"]), "b\n");
    ok(&["mv", &vol.url, "/x/b", "/renamed"]);
    assert_eq!(ok(&["ls", &vol.url, "/renamed"]), "c\n");
    let err = fails(&["rm", &vol.url, "/renamed"]);
    assert!(err.contains("rm -r"), "{err}");
    ok(&["rm", "-r", &vol.url, "/renamed", "/a"]);
    assert_eq!(ok(&["ls", &vol.url]), "x\n");
    let info = ok(&["info", &vol.url]);
    assert!(info.contains("volume:       testvol"), "{info}");
    assert!(info.contains("block size:   1024 KiB"), "{info}");
    assert!(info.contains("trash days:   0"), "{info}");
}

#[test]
fn errors_are_one_line_with_status_1() {
    let vol = Vol::new();
    // Formatting twice.
    let bucket = vol.path("b2").display().to_string();
    let err = fails(&["format", &vol.url, "testvol", "--bucket", &bucket]);
    assert!(err.contains("already formatted"), "{err}");
    // A URL that is not one, an engine not built in.
    let err = fails(&["ls", "not-a-url"]);
    assert!(err.contains("URL"), "{err}");
    let err = fails(&["ls", "gopher://host/1"]);
    assert!(err.contains("scheme"), "{err}");
    // No volume there: nothing is created as a side effect.
    let missing = vol.path("nothing/meta.db");
    let url = format!("sqlite3://{}", missing.display());
    let err = fails(&["ls", &url]);
    assert!(err.contains("no volume"), "{err}");
    assert!(!missing.exists());
    // A database that was never formatted.
    let empty = vol.path("empty.db");
    fs::write(&empty, b"").unwrap();
    let err = fails(&["info", &format!("sqlite3://{}", empty.display())]);
    assert!(err.contains("not formatted"), "{err}");
    // Bad paths.
    let err = fails(&["cat", &vol.url, "/nope"]);
    assert!(
        err.contains("/nope") && err.contains("No such file"),
        "{err}"
    );
    let err = fails(&["get", &vol.url, "/nope", vol.path("x").to_str().unwrap()]);
    assert!(err.contains("/nope"), "{err}");
    let err = fails(&["put", &vol.url, vol.path("no-local").to_str().unwrap(), "/"]);
    assert!(err.contains("no-local"), "{err}");
    // Bad format arguments.
    let other = format!("sqlite3://{}", vol.path("other.db").display());
    let err = fails(&["format", &other, "Bad_Name", "--bucket", &bucket]);
    assert!(err.contains("volume name"), "{err}");
    let err = fails(&[
        "format",
        &other,
        "good",
        "--bucket",
        &bucket,
        "--compress",
        "gzip",
    ]);
    assert!(err.contains("compression"), "{err}");
}

#[test]
fn rm_keeps_files_in_the_trash_and_restore_puts_them_back() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite3://{}/meta.db", dir.path().display());
    let bucket = format!("{}/blocks/", dir.path().display());
    // The default is juicefs's: one trash day.
    let out = ok(&["format", &url, "trashvol", "--bucket", &bucket]);
    assert!(out.contains("trash 1 days"), "{out}");
    let src = dir.path().join("src");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("d/f"), b"kept in the trash").unwrap();
    ok(&["put", "-q", &url, src.to_str().unwrap(), "/"]);
    ok(&["rm", "-r", &url, "/src/d"]);
    assert_eq!(ok(&["ls", &url, "/src"]), "");
    let hours = ok(&["ls", &url, "/.trash"]);
    let hour = hours.trim();
    assert_eq!(hour.len(), 13, "one hour directory: {hours:?}");
    assert_eq!(
        ok(&["ls", &url, &format!("/.trash/{hour}")])
            .lines()
            .count(),
        2
    );
    // Without --put-back the tree is rebuilt inside the trash; then it goes back.
    let out = ok(&["restore", &url, hour]);
    assert!(
        out.contains("1 restored") && out.contains("1 need --put-back"),
        "{out}"
    );
    let out = ok(&["restore", &url, hour, "--put-back"]);
    assert!(out.contains("1 restored, 0 conflicts, 0 failed"), "{out}");
    assert_eq!(ok(&["cat", &url, "/src/d/f"]), "kept in the trash");
    let err = fails(&["restore", &url, "not-an-hour"]);
    assert!(err.contains("hour"), "{err}");
    fails(&["mkdir", &url, "/.trash/x"]);
}

#[test]
fn quota_set_get_check_and_edquot() {
    let vol = Vol::new();
    ok(&["mkdir", &vol.url, "/q"]);
    let out = ok(&["quota", "set", &vol.url, "--path", "/q", "--inodes", "2"]);
    assert!(
        out.contains("/q: space 0 B of unlimited, inodes 0 of 2"),
        "{out}"
    );
    ok(&["mkdir", &vol.url, "/q/a", "/q/b"]);
    let err = fails(&["mkdir", &vol.url, "/q/c"]);
    assert!(err.contains("quota"), "{err}");
    let out = ok(&["quota", "get", &vol.url, "--path", "/q", "--json"]);
    assert!(out.contains("\"used_inodes\": 2"), "{out}");
    assert!(ok(&["quota", "check", &vol.url]).contains("consistent"));
    assert_eq!(ok(&["quota", "list", &vol.url]).lines().count(), 1);
    ok(&["quota", "delete", &vol.url, "--path", "/q"]);
    ok(&["mkdir", &vol.url, "/q/c"]);
    fails(&["quota", "get", &vol.url, "--path", "/q"]);
    fails(&["quota", "set", &vol.url, "--path", "/q"]);
    let out = ok(&["quota", "set", &vol.url, "--uid", "0", "--capacity", "1"]);
    assert!(out.contains("uid 0: space"), "{out}");
    assert!(ok(&["quota", "check", &vol.url, "--users"]).contains("consistent"));
}

#[test]
fn rmr_removes_a_tree_and_its_objects() {
    let vol = Vol::new();
    let src = vol.path("src");
    for d in ["t/a", "t/b/c"] {
        fs::create_dir_all(src.join(d)).unwrap();
    }
    for (i, f) in ["t/one", "t/a/two", "t/b/c/three"].iter().enumerate() {
        fs::write(src.join(f), pattern(i as u64, 3000)).unwrap();
    }
    ok(&["put", "-q", &vol.url, src.join("t").to_str().unwrap(), "/t"]);
    ok(&[
        "put",
        "-q",
        &vol.url,
        src.join("t/one").to_str().unwrap(),
        "/keep",
    ]);
    let blocks = |vol: &Vol| {
        walk_files(&vol.path("blocks"))
            .into_iter()
            .filter(|p| p.to_string_lossy().contains("/chunks/"))
            .count()
    };
    let before = blocks(&vol);
    assert!(before >= 4, "{before} blocks");
    let out = tessera(&["rmr", &vol.url, "/t"]);
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("removed 3 files and 4 directories"), "{err}");
    assert_eq!(ok(&["ls", &vol.url]), "keep\n");
    assert_eq!(blocks(&vol), 1, "only the kept file's block is left");
    let err = fails(&["rmr", &vol.url, "/t"]);
    assert!(err.contains("/t"), "{err}");
    // A file is removed too.
    ok(&["rmr", &vol.url, "/keep"]);
    assert_eq!(ok(&["ls", &vol.url]), "");
    assert_eq!(blocks(&vol), 0);
}

#[test]
fn clone_shares_blocks_and_refuses_precisely() {
    let vol = Vol::new();
    let src = vol.path("src");
    fs::create_dir_all(src.join("t/a")).unwrap();
    for (i, f) in ["t/one", "t/a/two"].iter().enumerate() {
        fs::write(src.join(f), pattern(i as u64, 3000)).unwrap();
    }
    ok(&["put", "-q", &vol.url, src.join("t").to_str().unwrap(), "/t"]);
    let blocks = |vol: &Vol| {
        walk_files(&vol.path("blocks"))
            .into_iter()
            .filter(|p| p.to_string_lossy().contains("/chunks/"))
            .count()
    };
    let before = blocks(&vol);
    let out = tessera(&["clone", &vol.url, "/t", "/c"]);
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cloned 2 files and 2 directories"), "{err}");
    assert_eq!(blocks(&vol), before, "no object copied");
    let cat = tessera(&["cat", &vol.url, "/c/a/two"]);
    assert!(cat.status.success(), "{cat:?}");
    assert!(
        cat.stdout == pattern(1, 3000),
        "the clone reads as its source"
    );
    ok(&["clone", &vol.url, "/t/one", "/one", "--preserve"]);
    // Refusals: one line, nothing made.
    let err = fails(&["clone", &vol.url, "/t", "/c"]);
    assert!(err.contains("exists"), "{err}");
    let err = fails(&["clone", &vol.url, "/missing", "/m"]);
    assert!(err.contains("/missing"), "{err}");
    fails(&["clone", &vol.url, "/t", "/.trash"]);
    assert_eq!(ok(&["ls", &vol.url]), "c\none\nt\n");
    // Deleting the source frees nothing; deleting every copy frees everything.
    ok(&["rmr", &vol.url, "/t"]);
    assert_eq!(blocks(&vol), before);
    ok(&["rmr", &vol.url, "/c"]);
    ok(&["rmr", &vol.url, "/one"]);
    assert_eq!(blocks(&vol), 0);
}

/// Every file below `dir`.
fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn backup_then_restore_volume_from_the_bucket_alone() {
    let vol = Vol::new();
    let src = vol.path("src");
    make_tree(&src);
    ok(&["put", "-q", &vol.url, src.to_str().unwrap(), "/"]);
    let key = ok(&["backup", &vol.url]);
    let key = key.trim();
    assert!(
        key.starts_with("meta/dump-") && key.ends_with(".json.gz"),
        "{key}"
    );
    assert!(vol.path("blocks/testvol").join(key).exists());
    let list = ok(&["backup", "--list", &vol.url]);
    assert!(list.starts_with(key), "{list}");

    // The engine is lost; the bucket brings the volume back.
    fs::remove_file(vol.path("meta.db")).unwrap();
    let storage = vol.path("blocks/testvol");
    let storage = storage.to_str().unwrap();
    let new = format!("sqlite3://{}", vol.path("new.db").display());
    let out = tessera(&["restore-volume", storage, "--to", &new]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("restored volume testvol") && err.contains("all present"),
        "{err}"
    );
    let out_dir = vol.path("out");
    fs::create_dir(&out_dir).unwrap();
    ok(&["get", "-q", &new, "/src", out_dir.to_str().unwrap()]);
    assert_same_tree(&src, &out_dir.join("src"));

    // Into an engine that holds a volume, or from a place with no backups: refused.
    let e = fails(&["restore-volume", storage, "--to", &new]);
    assert!(e.contains("not empty"), "{e}");
    let nowhere = vol.path("blocks/nothing");
    let e = fails(&[
        "restore-volume",
        nowhere.to_str().unwrap(),
        "--to",
        &format!("sqlite3://{}", vol.path("other.db").display()),
    ]);
    assert!(e.contains("no metadata backup"), "{e}");
}

/// A volume written by something hostile (rows put straight into its database): an entry
/// whose name climbs out of the destination, and a directory entry looping back to an
/// ancestor. `tessera get` refuses both with one line and writes nothing outside its
/// destination.
#[test]
fn get_refuses_hostile_names_and_directory_cycles() {
    let vol = Vol::new();
    ok(&["mkdir", "-p", &vol.url, "/a/b"]);
    ok(&["mkdir", "-p", &vol.url, "/c"]);
    let db = rusqlite::Connection::open(vol.path("meta.db")).unwrap();
    let ino = |parent: i64, name: &str| -> i64 {
        db.query_row(
            "SELECT inode FROM jfs_edge WHERE parent = ?1 AND name = ?2",
            rusqlite::params![parent, name.as_bytes()],
            |r| r.get(0),
        )
        .unwrap()
    };
    let a = ino(1, "a");
    let b = ino(a, "b");
    let c = ino(1, "c");
    // /a/b/up -> /a: a cycle.
    db.execute(
        "INSERT INTO jfs_edge (parent, name, inode, type) VALUES (?1, ?2, ?3, 2)",
        rusqlite::params![b, &b"up"[..], a],
    )
    .unwrap();
    // /c/../../escaped: a name no client can create.
    db.execute(
        "INSERT INTO jfs_edge (parent, name, inode, type) VALUES (?1, ?2, ?3, 2)",
        rusqlite::params![c, &b"../../escaped"[..], b],
    )
    .unwrap();
    drop(db);
    let out = vol.path("out");
    fs::create_dir(&out).unwrap();
    let e = fails(&["get", "-q", &vol.url, "/a", out.to_str().unwrap()]);
    assert!(e.contains("met twice"), "{e}");
    let e = fails(&["get", "-q", &vol.url, "/c", out.to_str().unwrap()]);
    assert!(e.contains("no client can create"), "{e}");
    assert!(
        !vol.path("escaped").exists() && !vol.dir.path().parent().unwrap().join("escaped").exists()
    );
}

#[test]
fn logs_go_where_the_flags_say() {
    let vol = Vol::new();
    // A level it cannot read: status 2 and a line naming it.
    let out = tessera(&["--log-level", "loud", "ls", &vol.url]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("tessera: ") && err.contains("loud"),
        "{err}"
    );
    // The library's info lines, appended to a file; none on standard error.
    let log = vol.dir.path().join("tessera.log");
    let log_arg = log.to_string_lossy().into_owned();
    for name in ["c1", "c2"] {
        let out = tessera(&[
            "--log-level",
            "info",
            "--log",
            &log_arg,
            "checkpoint",
            "create",
            &vol.url,
            name,
        ]);
        assert!(out.status.success(), "{out:?}");
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("made a checkpoint"),
            "{out:?}"
        );
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.matches("made a checkpoint").count(), 2, "{text}");
    // RUST_LOG when there is no flag; warn by default, which hides info lines.
    let run = |rust_log: Option<&str>, name: &str| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"));
        c.args(["checkpoint", "create", &vol.url, name]);
        match rust_log {
            Some(v) => c.env("RUST_LOG", v),
            None => c.env_remove("RUST_LOG"),
        };
        let out = c.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(run(Some("info"), "c3").contains("made a checkpoint"));
    assert!(!run(None, "c4").contains("made a checkpoint"));
}
