//! The soak: four client processes race creates, writes, truncates, renames, links and
//! unlinks in shared directories for a bounded time, each over an object store that fails
//! a fraction of its calls (errors before the call and replies lost after it), and one of
//! them is killed with SIGKILL half-way. Afterwards our fsck and `juicefs fsck` are clean,
//! every byte a surviving process had acknowledged by `fsync` reads back, the names each
//! survivor owns are exactly those its acknowledged operations left, and every file the
//! killed one left reads without error. On SQLite and on Redis.
//!
//! Each process owns the names it makes (`p{ID}-{N}`) but puts them in four directories
//! all share, so that the engine sees concurrent changes to the same directories (their
//! entries, attributes and statistics) from every process at once.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chunkstore::{ChunkStore, FaultConfig, Faulty, FsStore, Prefixed, Retry, RetryOptions};
use meta_api::backoff::SplitMix64;
use tessera_tests::interop::{assert_fsck_clean, open_fs};
use tessera_tests::tree::pattern;
use tessera_tests::{service, sqlite_url, Juicefs};
use vfs_core::{FileSystem, Vfs, VfsOptions};

const CHILD_URL: &str = "TESSERA_SOAK_URL";
const CHILD_ID: &str = "TESSERA_SOAK_ID";
const CHILD_BUCKET: &str = "TESSERA_SOAK_BUCKET";
/// Processes racing.
const PROCS: usize = 4;
/// How long each survivor runs.
const RUN: Duration = Duration::from_secs(8);
/// When the victim (process 0) is killed.
const KILL_AFTER: Duration = Duration::from_secs(3);
/// Shared directories.
const DIRS: u64 = 4;
/// Faults of every process's object store.
const ERROR_RATE: f64 = 0.05;
const LOST_REPLY_RATE: f64 = 0.02;

/// One process's file as it was acknowledged: its names and its bytes, the first
/// `written` of `pattern(seed, ..)` then zeros up to `size`.
#[derive(Debug, Clone)]
struct Known {
    paths: BTreeSet<String>,
    seed: u64,
    written: u64,
    size: u64,
}

impl Known {
    fn bytes(&self) -> Vec<u8> {
        let mut b = pattern(self.seed, self.written as usize);
        b.resize(self.size as usize, 0);
        b
    }
}

/// Writes one journal line: what the process was told succeeded.
fn journal(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout();
    writeln!(out, "J {line}").unwrap();
    out.flush().unwrap();
}

/// A client of the volume at `url` (blocks in the directory `bucket`) whose object store
/// fails as the soak says: the faults sit right on the backend, under the retries, where a
/// real store's transient failures are (vfs_core::open_store's stack, with `Faulty` added
/// at the bottom).
async fn faulty_client(url: &str, bucket: &str, seed: u64) -> (FileSystem, Arc<Faulty<FsStore>>) {
    let meta = vfs_core::connect_meta(url).await.unwrap();
    let format = meta.load().await.unwrap();
    let faulty = Arc::new(Faulty::with_config(
        FsStore::open(bucket).await.unwrap(),
        seed,
        FaultConfig::new()
            .error_rate(ERROR_RATE)
            .lost_reply_rate(LOST_REPLY_RATE),
    ));
    let retried = Retry::new(faulty.clone(), RetryOptions::default());
    let store: Arc<dyn ChunkStore> = Arc::new(Prefixed::new(retried, &format.name).unwrap());
    let vfs = Vfs::new(meta, store, format, VfsOptions::default())
        .await
        .unwrap();
    (FileSystem::new(vfs), faulty)
}

/// The child: random operations on its own names in the shared directories until `RUN`
/// is over (or it is killed), each acknowledged one journaled on stdout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_child() {
    let (Ok(url), Ok(id), Ok(bucket)) = (
        std::env::var(CHILD_URL),
        std::env::var(CHILD_ID),
        std::env::var(CHILD_BUCKET),
    ) else {
        return; // Only meaningful when started by the soak below.
    };
    let id: u64 = id.parse().unwrap();
    let (fs, faulty) = faulty_client(&url, &bucket, 1000 + id).await;
    let mut rng = SplitMix64::new(id.wrapping_mul(7919) + 1);
    let mut files: Vec<Known> = Vec::new();
    let mut next = 0u64;
    let mut ops = 0u64;
    let mut errors = 0u64;
    let mut name = |rng: &mut SplitMix64| {
        next += 1;
        format!("/d{}/p{id}-{next}", rng.next_u64() % DIRS)
    };
    let started = Instant::now();
    while started.elapsed() < RUN {
        let pick = rng.next_u64() % 100;
        let which = (!files.is_empty()).then(|| (rng.next_u64() % files.len() as u64) as usize);
        ops += 1;
        match (pick, which) {
            // Create and write a new file, fsync it.
            (0..=34, _) | (_, None) => {
                let path = name(&mut rng);
                let seed = rng.next_u64();
                let len = rng.next_u64() % (300 << 10);
                let done = async {
                    let f = fs.create(&path).await?;
                    f.write_at(&pattern(seed, len as usize), 0).await?;
                    f.sync_all().await?;
                    f.close().await
                }
                .await;
                match done {
                    Ok(()) => {
                        journal(format_args!("W {path} {seed} {len}"));
                        files.push(Known {
                            paths: [path].into(),
                            seed,
                            written: len,
                            size: len,
                        });
                    }
                    Err(e) => {
                        errors += 1;
                        journal(format_args!("X {path} {e}"));
                    }
                }
            }
            // Truncate (shorter or longer), fsync.
            (35..=49, Some(i)) => {
                let path = files[i].paths.iter().next().unwrap().clone();
                let size = rng.next_u64() % (400 << 10);
                let done = async {
                    let f = fs.open_options().write(true).open(&path).await?;
                    f.set_len(size).await?;
                    f.sync_all().await?;
                    f.close().await
                }
                .await;
                match done {
                    Ok(()) => {
                        journal(format_args!("T {path} {size}"));
                        let k = &mut files[i];
                        k.written = k.written.min(size);
                        k.size = size;
                    }
                    Err(e) => {
                        errors += 1;
                        let k = files.swap_remove(i);
                        for p in &k.paths {
                            journal(format_args!("X {p} {e}"));
                        }
                    }
                }
            }
            // Rename one of its names into any shared directory.
            (50..=69, Some(i)) => {
                let from = files[i].paths.iter().next().unwrap().clone();
                let to = name(&mut rng);
                match fs.rename(&from, &to).await {
                    Ok(()) => {
                        journal(format_args!("R {from} {to}"));
                        files[i].paths.remove(&from);
                        files[i].paths.insert(to);
                    }
                    Err(e) => panic!("rename {from} {to}: {e}"),
                }
            }
            // A second name.
            (70..=79, Some(i)) => {
                let from = files[i].paths.iter().next().unwrap().clone();
                let to = name(&mut rng);
                match fs.hard_link(&from, &to).await {
                    Ok(()) => {
                        journal(format_args!("L {from} {to}"));
                        files[i].paths.insert(to);
                    }
                    Err(e) => panic!("link {from} {to}: {e}"),
                }
            }
            // Remove a name (the file goes with its last).
            (_, Some(i)) => {
                let path = files[i].paths.iter().next().unwrap().clone();
                match fs.remove_file(&path).await {
                    Ok(()) => {
                        journal(format_args!("U {path}"));
                        files[i].paths.remove(&path);
                        if files[i].paths.is_empty() {
                            files.swap_remove(i);
                        }
                    }
                    Err(e) => panic!("unlink {path}: {e}"),
                }
            }
        }
    }
    let s = faulty.stats();
    fs.close().await.unwrap();
    journal(format_args!(
        "DONE {ops} {errors} {} {} {}",
        s.calls, s.injected_errors, s.lost_replies
    ));
    std::process::exit(0);
}

/// What one process's journal says.
#[derive(Default)]
struct Told {
    /// Live files, by the id of their first name.
    files: BTreeMap<u64, Known>,
    /// Names whose file an operation that failed left in an unknown state.
    unsure: BTreeSet<String>,
    /// `DONE`: operations, failed operations, store calls, injected errors, lost replies.
    done: Option<[u64; 5]>,
}

impl Told {
    fn file_of(&self, path: &str) -> u64 {
        *self
            .files
            .iter()
            .find(|(_, k)| k.paths.contains(path))
            .unwrap_or_else(|| panic!("journal names {path}, which it never made"))
            .0
    }

    fn apply(&mut self, line: &str, serial: &mut u64) {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w[0] {
            "W" => {
                *serial += 1;
                let len = w[3].parse().unwrap();
                self.files.insert(
                    *serial,
                    Known {
                        paths: [w[1].to_string()].into(),
                        seed: w[2].parse().unwrap(),
                        written: len,
                        size: len,
                    },
                );
            }
            "T" => {
                let f = self.file_of(w[1]);
                let size = w[2].parse().unwrap();
                let k = self.files.get_mut(&f).unwrap();
                k.written = k.written.min(size);
                k.size = size;
            }
            "R" => {
                let f = self.file_of(w[1]);
                let k = self.files.get_mut(&f).unwrap();
                k.paths.remove(w[1]);
                k.paths.insert(w[2].to_string());
            }
            "L" => {
                let f = self.file_of(w[1]);
                self.files
                    .get_mut(&f)
                    .unwrap()
                    .paths
                    .insert(w[2].to_string());
            }
            "U" => {
                let f = self.file_of(w[1]);
                let k = self.files.get_mut(&f).unwrap();
                k.paths.remove(w[1]);
                if k.paths.is_empty() {
                    self.files.remove(&f);
                }
            }
            "X" => {
                if let Some(f) = self
                    .files
                    .iter()
                    .find(|(_, k)| k.paths.contains(w[1]))
                    .map(|(f, _)| *f)
                {
                    let k = self.files.remove(&f).unwrap();
                    self.unsure.extend(k.paths);
                }
                self.unsure.insert(w[1].to_string());
            }
            "DONE" => {
                let n: Vec<u64> = w[1..6].iter().map(|v| v.parse().unwrap()).collect();
                self.done = Some([n[0], n[1], n[2], n[3], n[4]]);
            }
            other => panic!("journal line {other:?}"),
        }
    }
}

fn spawn_child(url: &str, bucket: &Path, id: usize) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "soak_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_URL, url)
        .env(CHILD_ID, id.to_string())
        .env(CHILD_BUCKET, bucket)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// The whole soak on the juicefs-formatted volume at `url`; prints its counts.
async fn soak(jfs: &Juicefs, url: &str, bucket: &Path, engine: &str) {
    let fs = open_fs(url).await;
    for d in 0..DIRS {
        fs.create_dir(format!("/d{d}")).await.unwrap();
    }
    fs.close().await.unwrap();

    let mut children: Vec<Child> = (0..PROCS).map(|id| spawn_child(url, bucket, id)).collect();
    let readers: Vec<_> = children
        .iter_mut()
        .map(|c| {
            let out = c.stdout.take().unwrap();
            std::thread::spawn(move || {
                BufReader::new(out)
                    .lines()
                    .map_while(|l| l.ok())
                    .filter_map(|l| l.find("J ").map(|at| l[at + 2..].to_string()))
                    .collect::<Vec<String>>()
            })
        })
        .collect();
    std::thread::sleep(KILL_AFTER);
    children[0].kill().unwrap(); // SIGKILL, mid-operation
    for c in &mut children {
        c.wait().unwrap();
    }
    let journals: Vec<Vec<String>> = readers.into_iter().map(|r| r.join().unwrap()).collect();

    let mut told: Vec<Told> = Vec::new();
    for (id, lines) in journals.iter().enumerate() {
        let mut t = Told::default();
        let mut serial = 0;
        for l in lines {
            t.apply(l, &mut serial);
        }
        if id == 0 {
            assert!(t.done.is_none(), "the victim finished before it was killed");
        } else {
            assert!(
                t.done.is_some(),
                "process {id} did not finish: {:?}",
                lines.last()
            );
        }
        told.push(t);
    }

    // Both checkers find the volume consistent.
    jfs.fsck(url);
    let fs = open_fs(url).await;
    assert_fsck_clean(&fs).await;

    // The final tree, by owner.
    let mut present: Vec<BTreeSet<String>> = vec![BTreeSet::new(); PROCS];
    for d in 0..DIRS {
        let mut rd = fs.read_dir(format!("/d{d}")).await.unwrap();
        while let Some(e) = rd.next_entry().await.unwrap() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name == "." || name == ".." {
                continue;
            }
            let owner: usize = name
                .strip_prefix('p')
                .and_then(|r| r.split('-').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("a name no process makes: {name}"));
            present[owner].insert(format!("/d{d}/{name}"));
        }
    }
    let mut checked = 0u64;
    for (id, t) in told.iter().enumerate().skip(1) {
        let mut want = BTreeSet::new();
        for k in t.files.values() {
            let bytes = k.bytes();
            for p in &k.paths {
                want.insert(p.clone());
                let got = fs.read(p).await.unwrap();
                assert!(
                    got == bytes,
                    "process {id}: {p} differs from what was acknowledged"
                );
                checked += got.len() as u64;
            }
        }
        let got: BTreeSet<String> = present[id]
            .iter()
            .filter(|p| !t.unsure.contains(*p))
            .cloned()
            .collect();
        assert_eq!(
            got, want,
            "process {id}: the names left differ from what it was told"
        );
    }
    // What the victim left reads back, whole.
    for p in &present[0] {
        fs.read(p).await.unwrap();
    }
    fs.close().await.unwrap();

    let (mut ops, mut failed, mut calls, mut injected, mut lost) = (0, 0, 0, 0, 0);
    for t in &told[1..] {
        let [o, f, c, i, l] = t.done.unwrap();
        ops += o;
        failed += f;
        calls += c;
        injected += i;
        lost += l;
    }
    let victim_ops = journals[0].len();
    eprintln!(
        "soak on {engine}: {PROCS} processes, {ops} operations by the 3 survivors ({failed} \
         failed with an error) and {victim_ops} acknowledged by the victim before its \
         SIGKILL; survivors' stores: {calls} calls, {injected} injected errors, {lost} lost \
         replies; 1 kill; {checked} acknowledged bytes read back; our fsck and juicefs fsck \
         clean"
    );
    assert!(injected > 0 && lost > 0, "faults were injected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_on_sqlite() {
    if std::env::var_os(CHILD_URL).is_some() {
        return;
    }
    let Some(jfs) = Juicefs::from_env() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("meta.db"));
    let bucket = dir.path().join("bucket");
    jfs.format_file_volume(&url, "soak", &bucket, &["--trash-days", "0"]);
    soak(&jfs, &url, &bucket, "SQLite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_on_redis() {
    if std::env::var_os(CHILD_URL).is_some() {
        return;
    }
    let (Some(jfs), Some(base)) = (Juicefs::from_env(), service("REDIS_URL")) else {
        return;
    };
    let url = format!("{}/234", base.trim_end_matches('/'));
    tessera_tests::flush_redis(&url);
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    jfs.format_file_volume(&url, "soak", &bucket, &["--trash-days", "0"]);
    soak(&jfs, &url, &bucket, "Redis").await;
}
