//! `tessera mount` through a real FUSE mount: file trees written in the mount read back
//! through the library on a second client and the other way round, two mounts of one
//! volume, `flock` across mounts, standard tools (`tar`, `cp -a`, `rsync -a`), the
//! less common calls (xattrs, statfs, fallocate, copy_file_range, rename flags), and the
//! mount's life cycle (background start, `tessera umount`, SIGTERM with files open).
//!
//! Needs `/dev/fuse` and root or `fusermount3`. Without them every test says SKIP on
//! stderr and passes, unless `CI` is set: there a missing FUSE is a failure.

// Helpers are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tessera_examples::volume::{self, FormatRequest};
use vfs_core::{FileSystem, MetaCacheOptions, VfsOptions};

const TESSERA: &str = env!("CARGO_BIN_EXE_tessera");

/// Whether FUSE mounts can be made here; says SKIP loudly (past the test harness's
/// output capture) when not, and fails instead when `CI` is set.
fn fuse_usable() -> bool {
    static USABLE: OnceLock<Result<(), String>> = OnceLock::new();
    let r = USABLE.get_or_init(|| {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
            .map_err(|e| format!("/dev/fuse: {e}"))?;
        let root = rustix::process::geteuid().is_root();
        if !root && Command::new("fusermount3").arg("-V").output().is_err() {
            return Err("not root and no fusermount3 (Debian package fuse3)".into());
        }
        Ok(())
    });
    match r {
        Ok(()) => true,
        Err(why) => {
            tessera_testenv::missing::<()>(&format!("fuse_mount: FUSE is unusable here ({why})"));
            false
        }
    }
}

macro_rules! require_fuse {
    () => {
        if !fuse_usable() {
            return;
        }
    };
}

/// A runtime for the library client of the test.
fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    rt().block_on(f)
}

/// A SQLite + local-directory volume formatted through the library, in a temp dir that
/// also holds the mount points and logs.
struct Volume {
    dir: tempfile::TempDir,
    url: String,
}

impl Volume {
    fn new() -> Volume {
        Volume::with_acl(false)
    }

    fn with_acl(enable_acl: bool) -> Volume {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite3://{}/meta.db", dir.path().display());
        let mut req = FormatRequest::new("fusevol", &format!("{}/blocks/", dir.path().display()));
        req.trash_days = 0;
        // Small blocks so that modest files span several of them.
        req.block_size_kib = 1024;
        req.enable_acl = enable_acl;
        block_on(volume::format(&url, &req)).unwrap();
        Volume { dir, url }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A library client of the volume (its own session), caching no directory names, so
    /// that renames in a mount show to it at once.
    fn client(&self) -> FileSystem {
        let exact = MetaCacheOptions::default().dir_entry_ttl(Duration::ZERO);
        let opts = VfsOptions::default().meta_cache(exact);
        block_on(volume::open(&self.url, opts)).unwrap()
    }

    /// Mounts the volume on a new directory `name` with a foreground `tessera mount`.
    fn mount(&self, name: &str, extra: &[&str]) -> Mount {
        let dir = self.path(name);
        fs::create_dir_all(&dir).unwrap();
        let log_path = self.path(&format!("{name}.log"));
        let log = File::create(&log_path).unwrap();
        let child = Command::new(TESSERA)
            .arg("mount")
            .args(extra)
            .arg(&self.url)
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut m = Mount {
            dir,
            child: Some(child),
            log: log_path,
        };
        m.wait_mounted();
        m
    }
}

/// Whether `dir` is a mount point now.
fn is_mounted(dir: &Path) -> bool {
    let dir = dir.to_string_lossy().replace(' ', "\\040");
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(dir.as_str()))
}

/// Polls `cond` every 20 ms for up to `secs` seconds.
fn wait_for(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// A mounted volume; dropping it unmounts (lazily if it must) and reaps the process, so
/// a failing test leaves no mount behind.
struct Mount {
    dir: PathBuf,
    child: Option<Child>,
    log: PathBuf,
}

impl Mount {
    fn wait_mounted(&mut self) {
        let ok = wait_for(30, || {
            if let Some(c) = &mut self.child {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!(
                        "tessera mount exited with {status} before mounting: {}",
                        fs::read_to_string(&self.log).unwrap_or_default()
                    );
                }
            }
            is_mounted(&self.dir)
        });
        assert!(ok, "{} was not mounted in time", self.dir.display());
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Unmounts with `tessera umount` and returns how the mount's process ended.
    fn unmount(mut self) -> ExitStatus {
        let out = Command::new(TESSERA)
            .arg("umount")
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "tessera umount: {out:?}");
        self.wait_exit()
    }

    /// Waits (up to 30 s) for the mount's process to end.
    fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let mut status = None;
        wait_for(30, || {
            status = child.try_wait().unwrap();
            status.is_some()
        });
        match status {
            Some(s) => s,
            None => {
                let _ = child.kill();
                panic!("the mount process did not exit");
            }
        }
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if is_mounted(&self.dir) {
            let ok = Command::new("fusermount3")
                .arg("-u")
                .arg(&self.dir)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                let _ = Command::new("fusermount3")
                    .args(["-u", "-z"])
                    .arg(&self.dir)
                    .status();
            }
        }
        if let Some(mut child) = self.child.take() {
            if !wait_for(10, || child.try_wait().is_ok_and(|s| s.is_some())) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Deterministic pseudo-random bytes (xorshift), different for each `seed`.
fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// FNV-1a: a compact stand-in for file contents in tree comparisons.
fn digest(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// What a tree holds at one path, as both the kernel and the library see it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir { mode: u32 },
    File { mode: u32, len: u64, digest: u64 },
    Symlink { target: PathBuf },
}

/// A tree: relative path → node, plus file mtimes kept apart so that they can be left
/// out of a comparison.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tree {
    nodes: BTreeMap<PathBuf, Node>,
    mtimes: BTreeMap<PathBuf, (i64, u32)>,
}

/// One item of the sample tree.
enum Spec {
    Dir(&'static str, u32),
    File(String, u32, Vec<u8>),
    Symlink(&'static str, &'static str),
}

/// Directories nested three deep, files of awkward sizes (empty, one byte, a page, one
/// byte past a block, several blocks), modes, symlinks (one dangling), and a directory
/// of 300 entries (several readdir batches).
fn sample() -> Vec<Spec> {
    let mut v = vec![
        Spec::Dir("a", 0o755),
        Spec::Dir("a/b", 0o750),
        Spec::Dir("a/b/c", 0o700),
        Spec::Dir("empty", 0o755),
        Spec::Dir("many", 0o755),
        Spec::File("top.txt".into(), 0o644, b"hello, fuse\n".to_vec()),
        Spec::File("a/zero".into(), 0o644, Vec::new()),
        Spec::File("a/b/one".into(), 0o600, vec![7]),
        Spec::File("a/b/c/page".into(), 0o644, data(1, 4096)),
        Spec::File("a/past-block".into(), 0o755, data(2, (1 << 20) + 1)),
        Spec::File("a/b/big".into(), 0o644, data(3, (3 << 20) + 12_345)),
        Spec::Symlink("link-to-top", "top.txt"),
        Spec::Symlink("a/dangling", "../nowhere/at/all"),
    ];
    for i in 0..300u64 {
        v.push(Spec::File(
            format!("many/f{i:03}"),
            0o644,
            data(100 + i, (i * 37) as usize),
        ));
    }
    v
}

/// The sample tree as [`Tree`] nodes (no mtimes).
fn sample_nodes() -> BTreeMap<PathBuf, Node> {
    sample()
        .into_iter()
        .map(|s| match s {
            Spec::Dir(p, mode) => (PathBuf::from(p), Node::Dir { mode }),
            Spec::File(p, mode, d) => (
                PathBuf::from(p),
                Node::File {
                    mode,
                    len: d.len() as u64,
                    digest: digest(&d),
                },
            ),
            Spec::Symlink(p, t) => (PathBuf::from(p), Node::Symlink { target: t.into() }),
        })
        .collect()
}

/// Writes the sample tree under `root` with `std::fs` (through the mount).
fn write_local(root: &Path) {
    fs::create_dir_all(root).unwrap();
    for s in sample() {
        match s {
            Spec::Dir(p, mode) => {
                fs::create_dir(root.join(p)).unwrap();
                fs::set_permissions(root.join(p), fs::Permissions::from_mode(mode)).unwrap();
            }
            Spec::File(p, mode, d) => {
                fs::write(root.join(&p), &d).unwrap();
                fs::set_permissions(root.join(&p), fs::Permissions::from_mode(mode)).unwrap();
            }
            Spec::Symlink(p, t) => std::os::unix::fs::symlink(t, root.join(p)).unwrap(),
        }
    }
}

/// Writes the sample tree under `root` through the library.
async fn write_volume(fs: &FileSystem, root: &Path) {
    fs.create_dir_all(root).await.unwrap();
    for s in sample() {
        match s {
            Spec::Dir(p, mode) => {
                fs.create_dir(root.join(p)).await.unwrap();
                let perm = vfs_core::Permissions::from_mode(mode);
                fs.set_permissions(root.join(p), perm).await.unwrap();
            }
            Spec::File(p, mode, d) => {
                fs.write(root.join(&p), &d).await.unwrap();
                let perm = vfs_core::Permissions::from_mode(mode);
                fs.set_permissions(root.join(&p), perm).await.unwrap();
            }
            Spec::Symlink(p, t) => fs.symlink(t, root.join(p)).await.unwrap(),
        }
    }
}

fn mtime_of(m: &fs::Metadata) -> (i64, u32) {
    (m.mtime(), m.mtime_nsec() as u32)
}

/// The tree under `root` as the kernel shows it.
fn local_tree(root: &Path) -> Tree {
    let mut t = Tree::default();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in fs::read_dir(root.join(&rel)).unwrap() {
            let e = e.unwrap();
            let rel = rel.join(e.file_name());
            let m = fs::symlink_metadata(e.path()).unwrap();
            let mode = m.mode() & 0o7777;
            let node = if m.is_dir() {
                stack.push(rel.clone());
                Node::Dir { mode }
            } else if m.file_type().is_symlink() {
                Node::Symlink {
                    target: fs::read_link(e.path()).unwrap(),
                }
            } else {
                let d = fs::read(e.path()).unwrap();
                assert_eq!(d.len() as u64, m.len(), "{}", rel.display());
                t.mtimes.insert(rel.clone(), mtime_of(&m));
                Node::File {
                    mode,
                    len: m.len(),
                    digest: digest(&d),
                }
            };
            t.nodes.insert(rel, node);
        }
    }
    t
}

/// The tree under `root` as the library shows it.
async fn volume_tree(fs: &FileSystem, root: &Path) -> Tree {
    let mut t = Tree::default();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut rd = fs.read_dir(root.join(&rel)).await.unwrap();
        while let Some(e) = rd.next_entry().await.unwrap() {
            let rel = rel.join(e.file_name());
            let path = root.join(&rel);
            let m = fs.symlink_metadata(&path).await.unwrap();
            let a = m.attr();
            let mode = u32::from(a.mode);
            let node = if m.is_dir() {
                stack.push(rel.clone());
                Node::Dir { mode }
            } else if m.is_symlink() {
                Node::Symlink {
                    target: fs.read_link(&path).await.unwrap(),
                }
            } else {
                let d = fs.read(&path).await.unwrap();
                t.mtimes.insert(rel.clone(), (a.mtime.sec, a.mtime.nsec));
                Node::File {
                    mode,
                    len: a.length,
                    digest: digest(&d),
                }
            };
            t.nodes.insert(rel, node);
        }
    }
    t
}

#[test]
fn trees_cross_between_the_mount_and_the_library() {
    require_fuse!();
    let vol = Volume::new();
    // Directory names are not cached in the kernel here, so that the library's changes
    // show at once (by default they show within a second: see the test after this one).
    let m = vol.mount("mnt", &["--dir-entry-cache", "0"]);
    let client = vol.client();

    // Written in the mount, read through a second client of the library.
    write_local(&m.p("from-mount"));
    let seen_by_kernel = local_tree(&m.p("from-mount"));
    assert_same_nodes(
        &seen_by_kernel.nodes,
        &sample_nodes(),
        "written in the mount",
    );
    let seen_by_lib = block_on(volume_tree(&client, Path::new("/from-mount")));
    assert_eq!(seen_by_lib, seen_by_kernel);

    // Written through the library, read in the mount.
    block_on(write_volume(&client, Path::new("/from-lib")));
    let seen_by_lib = block_on(volume_tree(&client, Path::new("/from-lib")));
    assert_same_nodes(
        &seen_by_lib.nodes,
        &sample_nodes(),
        "written by the library",
    );
    assert_eq!(local_tree(&m.p("from-lib")), seen_by_lib);

    // Changes made by the library show in the mount at once: rename, remove, rewrite.
    block_on(async {
        client
            .rename("/from-lib/a/b/big", "/from-lib/moved")
            .await
            .unwrap();
        client.remove_dir_all("/from-lib/many").await.unwrap();
        client.write("/from-lib/top.txt", b"v2").await.unwrap();
    });
    assert!(!m.p("from-lib/a/b/big").exists());
    assert!(!m.p("from-lib/many").exists());
    assert_eq!(
        digest(&fs::read(m.p("from-lib/moved")).unwrap()),
        digest(&data(3, (3 << 20) + 12_345))
    );
    assert_eq!(fs::read(m.p("from-lib/top.txt")).unwrap(), b"v2");
    assert_eq!(fs::metadata(m.p("from-lib/top.txt")).unwrap().len(), 2);

    // And the other way round.
    fs::rename(m.p("from-mount/a"), m.p("from-mount/a2")).unwrap();
    fs::remove_file(m.p("from-mount/top.txt")).unwrap();
    block_on(async {
        assert!(!client.exists("/from-mount/a").await);
        assert!(!client.exists("/from-mount/top.txt").await);
        let one = client.read("/from-mount/a2/b/one").await.unwrap();
        assert_eq!(one, vec![7]);
        client.close().await.unwrap();
    });
    let status = m.unmount();
    assert!(status.success(), "mount process: {status}");
}

#[test]
fn directory_names_are_cached_for_at_most_the_dir_entry_ttl() {
    require_fuse!();
    let vol = Volume::new();
    let m = vol.mount("mnt", &[]);
    let client = vol.client();
    block_on(async {
        client.create_dir_all("/d/sub").await.unwrap();
        client.write("/d/sub/f", b"x").await.unwrap();
    });
    assert_eq!(fs::read(m.p("d/sub/f")).unwrap(), b"x");
    // Another client renames the directory and replaces the file's name: the file's name
    // is never cached (the rename over it shows at once), the directory's for at most the
    // default second.
    block_on(async {
        client.write("/d/sub/g", b"new").await.unwrap();
        client.rename("/d/sub/g", "/d/sub/f").await.unwrap();
    });
    assert_eq!(fs::read(m.p("d/sub/f")).unwrap(), b"new");
    block_on(async { client.rename("/d/sub", "/d/moved").await.unwrap() });
    let start = Instant::now();
    assert!(
        wait_for(5, || !m.p("d/sub").exists()),
        "the renamed directory still resolves"
    );
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(fs::read(m.p("d/moved/f")).unwrap(), b"new");
    block_on(async { client.close().await.unwrap() });
    assert!(m.unmount().success());
}

#[test]
fn two_mounts_see_each_others_closed_files() {
    require_fuse!();
    let vol = Volume::new();
    let a = vol.mount("a", &[]);
    let b = vol.mount("b", &[]);

    fs::create_dir(a.p("shared")).unwrap();
    let c1 = data(10, 100_000);
    fs::write(a.p("shared/f"), &c1).unwrap();
    assert_eq!(fs::read(b.p("shared/f")).unwrap(), c1);

    // A shorter rewrite in B: A sees the new length and bytes.
    fs::write(b.p("shared/f"), b"ten bytes!").unwrap();
    assert_eq!(fs::metadata(a.p("shared/f")).unwrap().len(), 10);
    assert_eq!(fs::read(a.p("shared/f")).unwrap(), b"ten bytes!");

    // An append in A, several blocks long.
    let tail = data(11, (2 << 20) + 3);
    let mut f = OpenOptions::new()
        .append(true)
        .open(a.p("shared/f"))
        .unwrap();
    f.write_all(&tail).unwrap();
    drop(f);
    let mut want = b"ten bytes!".to_vec();
    want.extend_from_slice(&tail);
    assert_eq!(digest(&fs::read(b.p("shared/f")).unwrap()), digest(&want));

    // A reader that keeps its file open may see old data; reopening sees the new data.
    let mut old = File::open(b.p("shared/f")).unwrap();
    fs::write(a.p("shared/f"), b"third").unwrap();
    let mut head = [0u8; 1];
    old.read_exact(&mut head).unwrap();
    drop(old);
    assert_eq!(fs::read(b.p("shared/f")).unwrap(), b"third");

    // Namespace changes.
    fs::rename(b.p("shared/f"), b.p("shared/g")).unwrap();
    assert!(!a.p("shared/f").exists());
    assert_eq!(fs::read(a.p("shared/g")).unwrap(), b"third");
    fs::create_dir(a.p("shared/d")).unwrap();
    for i in 0..50 {
        fs::write(a.p(&format!("shared/d/{i}")), i.to_string()).unwrap();
    }
    assert_eq!(fs::read_dir(b.p("shared/d")).unwrap().count(), 50);
    fs::remove_file(a.p("shared/g")).unwrap();
    assert!(!b.p("shared/g").exists());

    // Quick alternation: every close is seen by the very next open on the other mount.
    for i in 0..30u64 {
        let (w, r) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let content = data(1000 + i, (i as usize * 7919) % 70_000);
        fs::write(w.p("shared/ping"), &content).unwrap();
        assert_eq!(
            fs::metadata(r.p("shared/ping")).unwrap().len(),
            content.len() as u64
        );
        assert_eq!(fs::read(r.p("shared/ping")).unwrap(), content, "round {i}");
    }
    assert!(a.unmount().success());
    assert!(b.unmount().success());
}

/// Runs `flock(1)` without waiting: true if it got the lock.
fn try_flock(path: &Path, shared: bool) -> bool {
    let mode = if shared { "-s" } else { "-x" };
    let st = Command::new("flock")
        .args(["-n", mode])
        .arg(path)
        .arg("true")
        .status()
        .unwrap();
    match st.code() {
        Some(0) => true,
        Some(1) => false,
        _ => panic!("flock failed: {st}"),
    }
}

/// A `flock(1)` process holding a lock on `path` until [`LockHolder::release`].
struct LockHolder {
    child: Child,
    release: PathBuf,
}

impl LockHolder {
    fn take(path: &Path, shared: bool, scratch: &Path) -> LockHolder {
        let ready = scratch.with_extension("ready");
        let release = scratch.with_extension("release");
        let _ = fs::remove_file(&ready);
        let _ = fs::remove_file(&release);
        let script = format!(
            "touch '{}'; while [ ! -e '{}' ]; do sleep 0.02; done",
            ready.display(),
            release.display()
        );
        let child = Command::new("flock")
            .arg(if shared { "-s" } else { "-x" })
            .arg(path)
            .args(["sh", "-c", &script])
            .spawn()
            .unwrap();
        assert!(wait_for(20, || ready.exists()), "the lock was not taken");
        LockHolder { child, release }
    }

    fn release(mut self) {
        File::create(&self.release).unwrap();
        assert!(self.child.wait().unwrap().success());
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        let _ = File::create(&self.release);
        let _ = self.child.wait();
    }
}

#[test]
fn flock_excludes_across_mounts() {
    require_fuse!();
    let vol = Volume::new();
    let a = vol.mount("a", &[]);
    let b = vol.mount("b", &[]);
    fs::write(a.p("lock"), b"").unwrap();
    let scratch = vol.path("holder");

    let holder = LockHolder::take(&a.p("lock"), false, &scratch);
    assert!(
        !try_flock(&b.p("lock"), false),
        "exclusive lock taken twice"
    );
    assert!(
        !try_flock(&b.p("lock"), true),
        "shared lock beside an exclusive one"
    );
    assert!(!try_flock(&a.p("lock"), false), "same mount, other process");
    holder.release();
    assert!(try_flock(&b.p("lock"), false), "released lock still held");

    let holder = LockHolder::take(&b.p("lock"), true, &scratch);
    assert!(
        try_flock(&a.p("lock"), true),
        "shared locks exclude each other"
    );
    assert!(
        !try_flock(&a.p("lock"), false),
        "exclusive lock beside a shared one"
    );
    holder.release();
    assert!(try_flock(&a.p("lock"), false));
    assert!(a.unmount().success());
    assert!(b.unmount().success());
}

/// Holds an exclusive POSIX lock on bytes 0..=9 of its file until told to stop.
const POSIX_HOLDER: &str = r#"
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX, 10, 0)
open(sys.argv[2], "w").close()
while not os.path.exists(sys.argv[3]):
    time.sleep(0.02)
"#;

/// Tries an exclusive POSIX lock on `len` bytes at `start` without waiting: prints `got`,
/// or `held TYPE START LEN` from `F_GETLK` for the lock in the way.
const POSIX_TRY: &str = r#"
import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDWR)
start, length = int(sys.argv[2]), int(sys.argv[3])
try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, length, start)
    print("got")
except OSError:
    q = struct.pack("hhqqi4x", fcntl.F_WRLCK, 0, start, length, 0)
    t, _, s, n, _ = struct.unpack("hhqqi4x", fcntl.fcntl(fd, fcntl.F_GETLK, q))
    print("held", t, s, n)
"#;

fn posix_try(path: &Path, start: u64, len: u64) -> String {
    let out = Command::new("python3")
        .args(["-c", POSIX_TRY])
        .arg(path)
        .args([start.to_string(), len.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn posix_locks_exclude_across_mounts_when_asked() {
    require_fuse!();
    if !have_tool("python3") {
        return;
    }
    let vol = Volume::new();
    let a = vol.mount("a", &["--posix-locks"]);
    let b = vol.mount("b", &["--posix-locks"]);
    fs::write(a.p("rec"), b"0123456789abcdefghij").unwrap();
    let ready = vol.path("posix.ready");
    let release = vol.path("posix.release");
    let mut holder = Command::new("python3")
        .args(["-c", POSIX_HOLDER])
        .args([a.p("rec"), ready.clone(), release.clone()])
        .spawn()
        .unwrap();
    assert!(wait_for(20, || ready.exists()), "the lock was not taken");
    assert_eq!(posix_try(&b.p("rec"), 0, 10), "held 1 0 10");
    assert_eq!(posix_try(&b.p("rec"), 5, 1), "held 1 0 10");
    assert_eq!(posix_try(&b.p("rec"), 10, 10), "got");
    File::create(&release).unwrap();
    assert!(holder.wait().unwrap().success());
    // The holder's exit closed its descriptor, which dropped its lock.
    assert_eq!(posix_try(&b.p("rec"), 0, 10), "got");
    assert!(a.unmount().success());
    assert!(b.unmount().success());
}

/// Runs a shell command line, failing the test with its output if it fails.
fn sh(cmd: &str) -> String {
    let out = Command::new("sh").args(["-c", cmd]).output().unwrap();
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Whether `tool` runs here; a missing tool is a failure under `CI` and a loud SKIP
/// otherwise.
fn have_tool(tool: &str) -> bool {
    if Command::new(tool).arg("--version").output().is_ok() {
        return true;
    }
    tessera_testenv::missing::<()>(&format!(
        "fuse_mount: no {tool} here (scripts/services.sh installs it)"
    ));
    false
}

/// A local tree with what archivers care about: hard links, symlinks, modes, old
/// mtimes, an empty directory.
fn local_source(root: &Path) {
    write_local(root);
    fs::hard_link(root.join("a/b/c/page"), root.join("hardlink")).unwrap();
    let old = UNIX_EPOCH + Duration::new(1_500_000_000, 123_456_789);
    for p in ["top.txt", "a/zero", "a/b/big"] {
        File::options()
            .write(true)
            .open(root.join(p))
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
}

/// Fails with just the differing paths unless both maps are equal.
fn assert_same_nodes(a: &BTreeMap<PathBuf, Node>, b: &BTreeMap<PathBuf, Node>, what: &str) {
    let keys: std::collections::BTreeSet<&PathBuf> = a.keys().chain(b.keys()).collect();
    let differ: Vec<_> = keys
        .into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| (k, a.get(k), b.get(k)))
        .collect();
    assert!(
        differ.is_empty(),
        "{what}: {} paths differ: {differ:?}",
        differ.len()
    );
}

/// Both trees hold the same nodes and file mtimes (to the second only for `tar`, whose
/// archive format keeps no more).
fn assert_same_tree(a: &Path, b: &Path, whole_seconds: bool) {
    let (ta, tb) = (local_tree(a), local_tree(b));
    let what = format!("{} vs {}", a.display(), b.display());
    assert_same_nodes(&ta.nodes, &tb.nodes, &what);
    let differ: Vec<_> = ta
        .mtimes
        .iter()
        .filter(|(p, &(sa, na))| {
            tb.mtimes
                .get(*p)
                .is_none_or(|&(sb, nb)| sa != sb || (!whole_seconds && na != nb))
        })
        .map(|(p, t)| (p, t, tb.mtimes.get(p)))
        .collect();
    assert!(
        differ.is_empty(),
        "mtimes differ between {} and {}: {differ:?}",
        a.display(),
        b.display()
    );
}

#[test]
fn standard_tools_work_in_the_mount() {
    require_fuse!();
    let vol = Volume::new();
    let m = vol.mount("mnt", &[]);
    let src = vol.path("src");
    local_source(&src);

    // tar: extract into the mount, archive it again: the same archive, byte for byte.
    let tar_flags = "--sort=name --format=gnu --numeric-owner";
    let orig = vol.path("orig.tar");
    let again = vol.path("again.tar");
    sh(&format!(
        "tar {tar_flags} -cf '{}' -C '{}' .",
        orig.display(),
        src.display()
    ));
    fs::create_dir(m.p("untarred")).unwrap();
    sh(&format!(
        "tar -xpf '{}' -C '{}'",
        orig.display(),
        m.p("untarred").display()
    ));
    assert_same_tree(&src, &m.p("untarred"), true);
    let hl = fs::metadata(m.p("untarred/hardlink")).unwrap();
    assert_eq!(hl.nlink(), 2);
    assert_eq!(
        hl.ino(),
        fs::metadata(m.p("untarred/a/b/c/page")).unwrap().ino()
    );
    sh(&format!(
        "tar {tar_flags} -cf '{}' -C '{}' .",
        again.display(),
        m.p("untarred").display()
    ));
    let sums = sh(&format!(
        "sha256sum '{}' '{}'",
        orig.display(),
        again.display()
    ));
    let sums: Vec<&str> = sums.lines().map(|l| &l[..64]).collect();
    assert_eq!(sums[0], sums[1], "archives differ");

    // cp -a into the mount and back out.
    sh(&format!(
        "cp -a '{}' '{}'",
        src.display(),
        m.p("copied").display()
    ));
    assert_same_tree(&src, &m.p("copied"), false);
    sh(&format!(
        "cp -a '{}' '{}'",
        m.p("copied").display(),
        vol.path("copied-back").display()
    ));
    assert_same_tree(&src, &vol.path("copied-back"), false);

    // rsync -a both ways, and an incremental run that finds nothing to do.
    if have_tool("rsync") {
        sh(&format!(
            "rsync -a '{}/' '{}/'",
            src.display(),
            m.p("synced").display()
        ));
        assert_same_tree(&src, &m.p("synced"), false);
        let changes = sh(&format!(
            "rsync -a --itemize-changes '{}/' '{}/'",
            src.display(),
            m.p("synced").display()
        ));
        assert_eq!(changes.trim(), "", "a second rsync found changes");
        sh(&format!(
            "rsync -a '{}/' '{}/'",
            m.p("synced").display(),
            vol.path("synced-back").display()
        ));
        assert_same_tree(&src, &vol.path("synced-back"), false);
    }
    assert!(m.unmount().success());
}

#[test]
fn special_calls_reach_the_volume() {
    require_fuse!();
    let vol = Volume::new();
    let m = vol.mount("mnt", &[]);
    let f = m.p("x");
    fs::write(&f, data(5, 3 << 20)).unwrap();

    // statfs
    let st = rustix::fs::statvfs(&m.dir).unwrap();
    assert!(st.f_blocks > 0 && st.f_bsize > 0);
    assert_eq!(st.f_namemax, 255);

    // Extended attributes, including the size query and ERANGE.
    rustix::fs::setxattr(&f, "user.color", b"blue", rustix::fs::XattrFlags::empty()).unwrap();
    rustix::fs::setxattr(&f, "user.size", b"L", rustix::fs::XattrFlags::CREATE).unwrap();
    assert_eq!(
        rustix::fs::setxattr(&f, "user.size", b"M", rustix::fs::XattrFlags::CREATE),
        Err(rustix::io::Errno::EXIST)
    );
    assert_eq!(rustix::fs::getxattr_query(&f, "user.color").unwrap(), 4);
    let mut buf = [0u8; 64];
    let n = rustix::fs::getxattr(&f, "user.color", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"blue");
    assert_eq!(
        rustix::fs::getxattr(&f, "user.color", &mut buf[..2]),
        Err(rustix::io::Errno::RANGE)
    );
    let n = rustix::fs::listxattr(&f, &mut buf[..]).unwrap();
    let mut names: Vec<&[u8]> = buf[..n]
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .collect();
    names.sort();
    assert_eq!(names, vec![&b"user.color"[..], &b"user.size"[..]]);
    rustix::fs::removexattr(&f, "user.color").unwrap();
    assert_eq!(
        rustix::fs::getxattr(&f, "user.color", &mut buf[..]),
        Err(rustix::io::Errno::NODATA)
    );

    // fallocate: punch a hole (reads as zeros, length kept), then extend.
    let file = OpenOptions::new().read(true).write(true).open(&f).unwrap();
    use rustix::fs::FallocateFlags as Fa;
    rustix::fs::fallocate(&file, Fa::PUNCH_HOLE | Fa::KEEP_SIZE, 1000, 5000).unwrap();
    rustix::fs::fallocate(&file, Fa::empty(), 0, 4 << 20).unwrap();
    drop(file);
    let got = fs::read(&f).unwrap();
    assert_eq!(got.len(), 4 << 20);
    let mut want = data(5, 3 << 20);
    want[1000..6000].fill(0);
    want.resize(4 << 20, 0);
    assert_eq!(digest(&got), digest(&want));

    // copy_file_range shares the source's blocks.
    let src = File::open(&f).unwrap();
    let dst = File::create(m.p("y")).unwrap();
    let mut off_in = 1 << 20;
    let mut copied = 0;
    while copied < 2 << 20 {
        let n =
            rustix::fs::copy_file_range(&src, Some(&mut off_in), &dst, None, (2 << 20) - copied)
                .unwrap();
        assert!(n > 0);
        copied += n;
    }
    drop((src, dst));
    assert_eq!(fs::read(m.p("y")).unwrap(), want[1 << 20..3 << 20]);

    // Truncate through a handle and by path, times, modes, a FIFO, hard links.
    let mut h = OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.p("y"))
        .unwrap();
    h.set_len(10).unwrap();
    h.seek(SeekFrom::End(0)).unwrap();
    h.write_all(b"+tail").unwrap();
    drop(h);
    assert_eq!(
        fs::read(m.p("y")).unwrap(),
        [&want[1 << 20..(1 << 20) + 10], b"+tail"].concat()
    );
    fs::set_permissions(m.p("y"), fs::Permissions::from_mode(0o640)).unwrap();
    let when = SystemTime::UNIX_EPOCH + Duration::new(1_234_567_890, 5);
    File::options()
        .write(true)
        .open(m.p("y"))
        .unwrap()
        .set_modified(when)
        .unwrap();
    let md = fs::metadata(m.p("y")).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o640);
    assert_eq!(md.modified().unwrap(), when);
    sh(&format!("mkfifo '{}'", m.p("fifo").display()));
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(
        &fs::symlink_metadata(m.p("fifo")).unwrap().file_type()
    ));
    fs::hard_link(m.p("y"), m.p("y2")).unwrap();
    assert_eq!(fs::metadata(m.p("y")).unwrap().nlink(), 2);

    // rename(2) flags: RENAME_NOREPLACE refuses, RENAME_EXCHANGE swaps.
    let root = File::open(&m.dir).unwrap();
    use rustix::fs::RenameFlags as Rf;
    fs::write(m.p("p"), b"P").unwrap();
    fs::write(m.p("q"), b"Q").unwrap();
    assert_eq!(
        rustix::fs::renameat_with(&root, "p", &root, "q", Rf::NOREPLACE),
        Err(rustix::io::Errno::EXIST)
    );
    rustix::fs::renameat_with(&root, "p", &root, "q", Rf::EXCHANGE).unwrap();
    assert_eq!(fs::read(m.p("p")).unwrap(), b"Q");
    assert_eq!(fs::read(m.p("q")).unwrap(), b"P");
    drop(root);

    // Errors keep their errno.
    assert_eq!(
        fs::remove_dir(m.dir.join("nonexistent"))
            .unwrap_err()
            .kind(),
        std::io::ErrorKind::NotFound
    );
    fs::create_dir(m.p("full")).unwrap();
    fs::write(m.p("full/x"), b"").unwrap();
    assert_eq!(
        fs::remove_dir(m.p("full")).unwrap_err().raw_os_error(),
        Some(libc::ENOTEMPTY)
    );
    let long = "n".repeat(256);
    assert_eq!(
        fs::write(m.p(&long), b"").unwrap_err().raw_os_error(),
        Some(libc::ENAMETOOLONG)
    );
    // A program on the volume runs (the kernel's exec-only open bits are accepted).
    fs::write(m.p("prog.sh"), b"#!/bin/sh\necho ran\n").unwrap();
    fs::set_permissions(m.p("prog.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(sh(&m.p("prog.sh").display().to_string()), "ran\n");
    assert!(m.unmount().success());
}

/// Runs `cmd` through `sh` as uid/gid 65534 with the given supplementary groups; returns
/// whether it succeeded and its stderr.
fn as_nobody(groups: &str, cmd: &str) -> (bool, String) {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534"]);
    if groups.is_empty() {
        c.arg("--clear-groups");
    } else {
        c.arg(format!("--groups={groups}"));
    }
    let out = c.args(["sh", "-c", cmd]).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn permissions_apply_to_other_users() {
    require_fuse!();
    if !rustix::process::geteuid().is_root() {
        tessera_testenv::missing::<()>("permissions test: needs root");
        return;
    }
    if !have_tool("setpriv") {
        return;
    }
    let vol = Volume::new();
    let m = vol.mount("mnt", &["-o", "allow_other"]);
    let p = |rel: &str| m.p(rel).display().to_string();

    fs::create_dir(m.p("private")).unwrap();
    fs::set_permissions(m.p("private"), fs::Permissions::from_mode(0o700)).unwrap();
    let (ok, err) = as_nobody("", &format!("ls '{}'", p("private")));
    assert!(!ok && err.contains("Permission denied"), "{err}");

    fs::write(m.p("readable"), b"r").unwrap();
    fs::set_permissions(m.p("readable"), fs::Permissions::from_mode(0o644)).unwrap();
    assert!(as_nobody("", &format!("cat '{}'", p("readable"))).0);
    let (ok, err) = as_nobody("", &format!("echo x >> '{}'", p("readable")));
    assert!(!ok && err.contains("Permission denied"), "{err}");

    // A supplementary group grants what the primary one does not.
    fs::write(m.p("grouped"), b"g").unwrap();
    rustix::fs::chown(m.p("grouped"), None, Some(rustix::fs::Gid::from_raw(4321))).unwrap();
    fs::set_permissions(m.p("grouped"), fs::Permissions::from_mode(0o640)).unwrap();
    assert!(!as_nobody("", &format!("cat '{}'", p("grouped"))).0);
    assert!(as_nobody("4321", &format!("cat '{}'", p("grouped"))).0);

    // New files belong to their creator.
    fs::create_dir(m.p("open")).unwrap();
    fs::set_permissions(m.p("open"), fs::Permissions::from_mode(0o777)).unwrap();
    let (ok, err) = as_nobody("", &format!("echo hi > '{}'", p("open/mine")));
    assert!(ok, "{err}");
    let md = fs::metadata(m.p("open/mine")).unwrap();
    assert_eq!((md.uid(), md.gid()), (65534, 65534));
    assert!(m.unmount().success());
}

/// A mount by root is open to other users without `-o allow_other`, as juicefs's is, and
/// the mode bits still keep them out where they should.
#[test]
fn a_root_mount_is_open_to_other_users() {
    require_fuse!();
    if !rustix::process::geteuid().is_root() {
        tessera_testenv::missing::<()>("root mount test: needs root");
        return;
    }
    if !have_tool("setpriv") {
        return;
    }
    let vol = Volume::new();
    let m = vol.mount("mnt", &[]);
    fs::write(m.p("readable"), b"r").unwrap();
    fs::set_permissions(m.p("readable"), fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, err) = as_nobody("", &format!("cat '{}'", m.p("readable").display()));
    assert!(ok, "{err}");
    fs::set_permissions(m.p("readable"), fs::Permissions::from_mode(0o600)).unwrap();
    let (ok, err) = as_nobody("", &format!("cat '{}'", m.p("readable").display()));
    assert!(!ok && err.contains("Permission denied"), "{err}");
    assert!(m.unmount().success());
}

/// Through a root mount of a volume without ACLs: opening a FIFO needs its permission
/// bits, and a sticky directory keeps other users from renaming away what is not theirs.
#[test]
fn fifo_and_sticky_rules_hold_through_a_mount() {
    require_fuse!();
    if !rustix::process::geteuid().is_root() {
        tessera_testenv::missing::<()>("fifo/sticky test: needs root");
        return;
    }
    if !have_tool("setpriv") {
        return;
    }
    let vol = Volume::new();
    let m = vol.mount("mnt", &[]);
    let p = |rel: &str| m.p(rel).display().to_string();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        m.p("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    fs::set_permissions(m.p("fifo"), fs::Permissions::from_mode(0o600)).unwrap();
    // Read-write opens of a FIFO do not wait for a peer.
    let (ok, err) = as_nobody("", &format!("exec 3<> '{}'", p("fifo")));
    assert!(!ok && err.contains("Permission denied"), "{err}");
    fs::set_permissions(m.p("fifo"), fs::Permissions::from_mode(0o666)).unwrap();
    let (ok, err) = as_nobody("", &format!("exec 3<> '{}'", p("fifo")));
    assert!(ok, "{err}");

    fs::create_dir(m.p("tmp")).unwrap();
    fs::set_permissions(m.p("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::create_dir(m.p("out")).unwrap();
    fs::set_permissions(m.p("out"), fs::Permissions::from_mode(0o777)).unwrap();
    fs::write(m.p("tmp/roots"), b"r").unwrap();
    fs::set_permissions(m.p("tmp/roots"), fs::Permissions::from_mode(0o666)).unwrap();
    let (ok, err) = as_nobody(
        "",
        &format!("mv '{}' '{}'", p("tmp/roots"), p("out/stolen")),
    );
    assert!(!ok && err.contains("not permitted"), "{err}");
    assert!(m.p("tmp/roots").exists());
    let (ok, err) = as_nobody(
        "",
        &format!(
            "echo m > '{}' && mv '{}' '{}'",
            p("tmp/mine"),
            p("tmp/mine"),
            p("out/mine")
        ),
    );
    assert!(ok, "{err}");
    assert!(m.unmount().success());
}

/// The Linux `posix_acl_xattr` value granting `uid` read on top of mode 0o600.
fn acl_granting_read(uid: u32) -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (1u16, 6u16, u32::MAX),
        (2, 4, uid),
        (4, 0, u32::MAX),
        (0x10, 4, u32::MAX),
        (0x20, 0, u32::MAX),
    ] {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

#[test]
fn posix_acls_work_through_the_mount() {
    require_fuse!();
    if !rustix::process::geteuid().is_root() || !have_tool("setpriv") {
        let _ = writeln!(std::io::stderr(), "SKIP ACL test: needs root");
        return;
    }
    let vol = Volume::with_acl(true);
    let m = vol.mount("mnt", &["-o", "allow_other"]);
    let path = m.p("secret");
    fs::write(&path, b"for nobody's eyes").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let cat = format!("cat '{}'", path.display());
    assert!(!as_nobody("", &cat).0, "mode 0600 keeps others out");
    let acl = acl_granting_read(65534);
    rustix::fs::setxattr(
        &path,
        "system.posix_acl_access",
        &acl,
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let mut back = vec![0u8; 256];
    let n = rustix::fs::getxattr(&path, "system.posix_acl_access", &mut back).unwrap();
    assert_eq!(&back[..n], &acl[..], "the ACL reads back as set");
    let (ok, err) = as_nobody("", &cat);
    assert!(ok, "the named-user entry grants read: {err}");
    rustix::fs::removexattr(&path, "system.posix_acl_access").unwrap();
    assert!(
        !as_nobody("", &cat).0,
        "without the ACL the mode decides again"
    );
    assert!(m.unmount().success());
}

#[test]
fn cache_and_writeback_options_reach_the_volume() {
    require_fuse!();
    let vol = Volume::new();
    let cache = vol.path("cache");
    let cache_arg = cache.display().to_string();
    let m = vol.mount("mnt", &["--cache-dir", &cache_arg, "--writeback"]);
    let content = data(77, (2 << 20) + 99);
    fs::write(m.p("w"), &content).unwrap();
    assert_eq!(digest(&fs::read(m.p("w")).unwrap()), digest(&content));
    let cached = fs::read_dir(&cache).unwrap().count();
    assert!(cached > 0, "nothing in the cache directory");
    // Unmounting waits for the staged blocks to be uploaded.
    assert!(m.unmount().success());
    let client = vol.client();
    let got = block_on(client.read("/w")).unwrap();
    assert_eq!(digest(&got), digest(&content));
    block_on(client.close()).unwrap();
}

#[test]
fn background_mount_umount_and_sigterm() {
    require_fuse!();
    let vol = Volume::new();
    let dir = vol.path("bg");
    fs::create_dir(&dir).unwrap();
    let log = vol.path("bg.log");

    // -d returns once the volume is mounted.
    let st = Command::new(TESSERA)
        .args(["mount", "-d", "--log"])
        .arg(&log)
        .arg(&vol.url)
        .arg(&dir)
        .status()
        .unwrap();
    assert!(st.success());
    let guard = Mount {
        dir: dir.clone(),
        child: None,
        log: log.clone(),
    };
    assert!(is_mounted(&dir), "not mounted when -d returned");
    fs::write(dir.join("bg.txt"), b"background").unwrap();

    // A second mount on the same directory is refused rather than stacked.
    let out = Command::new(TESSERA)
        .args(["mount", "-d"])
        .arg(&vol.url)
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("mounted there already"));

    // Mounting on a missing directory fails with a clear message and status 1.
    let out = Command::new(TESSERA)
        .args(["mount", "-d"])
        .arg(&vol.url)
        .arg(vol.path("missing-dir"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing-dir"));

    // `tessera umount` unmounts; the process closes the volume and ends its session.
    let out = Command::new(TESSERA)
        .arg("umount")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(!is_mounted(&dir));
    drop(guard);
    let client = vol.client();
    let sessions_gone = wait_for(20, || {
        block_on(volume::info(&vol.url)).unwrap().sessions.len() == 1
    });
    assert!(
        sessions_gone,
        "the background mount's session was not closed"
    );
    assert_eq!(block_on(client.read("/bg.txt")).unwrap(), b"background");

    // SIGTERM with a file open and written but not closed: the data is written back, the
    // busy mount is detached, and the process exits cleanly once the file is closed.
    let mut m = vol.mount("fg", &[]);
    let mut open = File::create(m.p("open.txt")).unwrap();
    open.write_all(b"written before SIGTERM").unwrap();
    let st = Command::new("kill")
        .args(["-TERM", &m.pid().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    assert!(wait_for(20, || !is_mounted(&m.dir)), "not detached");
    assert!(wait_for(20, || {
        block_on(client.read("/open.txt")).is_ok_and(|d| d == b"written before SIGTERM")
    }));
    drop(open);
    let status = m.wait_exit();
    assert!(status.success(), "{status}: {}", m.log_text());
    block_on(client.close()).unwrap();
}
