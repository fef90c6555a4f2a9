//! Fault test: redis-server (AOF, fsync always) is killed and restarted several times in
//! the middle of a create/rename/write workload from two clients. The clients must
//! recover by themselves, no call may report a wrong outcome, and afterwards the tree
//! must hold exactly what the clients were told happened.
//!
//! The test starts its own server: `REDIS_SERVER_BIN`, or `redis-server` on `PATH`.
//! Without one it fails under CI (`CI` set) and is skipped loudly elsewhere.

#![allow(clippy::unwrap_used)]

#[path = "support/harness.rs"]
mod harness;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use meta_api::{Context, FileType, MetaEngine, MetaError, RenameFlags, Slice, Timestamp, ROOT_INO};
use meta_redis::{is_outcome_unknown, transport_kind, RedisMeta, RedisOptions, TransportKind};

const PER_CLIENT: usize = 120;
const RESTARTS: usize = 3;

/// A redis-server child process with AOF in a private directory.
struct Server {
    bin: String,
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Server {
    fn start(bin: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut s = Server {
            bin: bin.to_string(),
            dir,
            port,
            child: None,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let child = Command::new(&self.bin)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--dir", self.dir.path().to_str().unwrap()])
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        // Wait until it answers (the AOF is loaded before it accepts commands).
        for _ in 0..200 {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                use std::io::{Read, Write};
                let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
                if s.write_all(b"PING\r\n").is_ok() {
                    let mut buf = [0u8; 16];
                    if let Ok(n) = s.read(&mut buf) {
                        if buf[..n].starts_with(b"+PONG") {
                            return;
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {} did not come up", self.port);
    }

    /// SIGKILL: no chance to flush anything beyond what fsync already made durable.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn server_bin() -> Option<String> {
    let bin = std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into());
    let ok = Command::new(&bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(bin);
    }
    tessera_testenv::missing(
        "restart test: no redis-server (set REDIS_SERVER_BIN or put redis-server on PATH)",
    )
}

/// What a client was told about one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Told {
    Done,
    NotDone,
    Maybe,
}

/// Classifies a result: success, a failure that says nothing happened, or one that says
/// it may have. Any other error is a wrong answer for this workload.
fn told<T: std::fmt::Debug>(what: &str, r: &Result<T, MetaError>) -> Told {
    match r {
        Ok(_) => Told::Done,
        Err(e) if is_outcome_unknown(e) => Told::Maybe,
        Err(e) if transport_kind(e) == Some(TransportKind::NotApplied) => Told::NotDone,
        Err(
            e @ MetaError::Backend {
                retryable: true, ..
            },
        ) => {
            // Busy replies (LOADING…) also change nothing.
            eprintln!("{what}: retryable backend error: {e}");
            Told::NotDone
        }
        Err(e) => panic!("{what}: wrong outcome reported: {e:?}"),
    }
}

#[derive(Debug, Default)]
struct Record {
    created: BTreeMap<usize, (Told, u64)>,
    renamed: BTreeMap<usize, Told>,
    /// Slices written into file `i`: (told, slice).
    writes: BTreeMap<usize, Vec<(Told, Slice)>>,
}

async fn workload(m: Arc<RedisMeta>, tag: char, progress: Arc<AtomicUsize>) -> Record {
    let ctx = Context::root();
    let mut rec = Record::default();
    for i in 0..PER_CLIENT {
        let name = format!("{tag}-{i}");
        let r = m
            .mknod(&ctx, ROOT_INO, name.as_bytes(), FileType::Regular, 0o644, 0)
            .await;
        let t = told(&format!("create {name}"), &r);
        let ino = r.as_ref().map(|e| e.ino).unwrap_or(0);
        rec.created.insert(i, (t, ino));
        progress.fetch_add(1, Ordering::Relaxed);
        if t != Told::Done {
            continue;
        }
        for k in 0..2u32 {
            let id = match m.new_slice_id().await {
                Ok(id) => id,
                Err(e) => {
                    assert!(e.is_retryable(), "slice id: {e:?}");
                    continue;
                }
            };
            let s = Slice {
                pos: k * 4096,
                id,
                size: 4096,
                off: 0,
                len: 4096,
            };
            let r = m.write_slice(ino, 0, s, Timestamp::now()).await;
            let t = told(&format!("write {name}/{k}"), &r);
            rec.writes.entry(i).or_default().push((t, s));
            progress.fetch_add(1, Ordering::Relaxed);
        }
        if i % 2 == 0 {
            let to = format!("{tag}-r{i}");
            let r = m
                .rename(
                    &ctx,
                    ROOT_INO,
                    name.as_bytes(),
                    ROOT_INO,
                    to.as_bytes(),
                    RenameFlags::empty(),
                )
                .await;
            rec.renamed.insert(i, told(&format!("rename {name}"), &r));
            progress.fetch_add(1, Ordering::Relaxed);
        }
    }
    rec
}

/// Checks the tree against what client `tag` was told.
async fn verify(m: &RedisMeta, tag: char, rec: &Record) -> usize {
    let ctx = Context::root();
    let mut maybes = 0;
    for (&i, &(created, ino)) in &rec.created {
        let a = m
            .lookup(&ctx, ROOT_INO, format!("{tag}-{i}").as_bytes())
            .await;
        let r = m
            .lookup(&ctx, ROOT_INO, format!("{tag}-r{i}").as_bytes())
            .await;
        let (a, r) = (a.ok().map(|e| e.ino), r.ok().map(|e| e.ino));
        match created {
            Told::NotDone => assert_eq!((a, r), (None, None), "{tag}-{i} was not created"),
            Told::Maybe => {
                maybes += 1;
                continue;
            }
            Told::Done => {}
        }
        let renamed = rec.renamed.get(&i).copied().unwrap_or(Told::NotDone);
        match renamed {
            Told::Done => assert_eq!((a, r), (None, Some(ino)), "{tag}-{i} was renamed"),
            Told::NotDone => assert_eq!((a, r), (Some(ino), None), "{tag}-{i} was not renamed"),
            Told::Maybe => {
                maybes += 1;
                assert!(
                    (a, r) == (Some(ino), None) || (a, r) == (None, Some(ino)),
                    "{tag}-{i}: half a rename: {a:?} {r:?}"
                );
            }
        }
        let slices = m.read_chunk(ino, 0).await.unwrap();
        let mut end = 0u64;
        for (t, s) in rec.writes.get(&i).into_iter().flatten() {
            let present = slices.contains(s);
            match t {
                Told::Done => {
                    assert!(present, "{tag}-{i}: acknowledged slice {s:?} missing");
                    end = end.max(u64::from(s.pos + s.len));
                }
                Told::NotDone => assert!(!present, "{tag}-{i}: failed slice {s:?} is there"),
                Told::Maybe => maybes += 1,
            }
            if present {
                end = end.max(u64::from(s.pos + s.len));
            }
        }
        let attr = m.getattr(ino).await.unwrap();
        assert_eq!(attr.length, end, "{tag}-{i}: length");
        assert_eq!(
            slices.len(),
            rec.writes
                .get(&i)
                .map_or(0, |w| w.iter().filter(|(_, s)| slices.contains(s)).count()),
            "{tag}-{i}: no slice recorded twice"
        );
    }
    maybes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_recover_from_server_restarts() {
    let Some(bin) = server_bin() else {
        return;
    };
    let mut server = Server::start(&bin);
    let opts = RedisOptions::default()
        .op_timeout(Duration::from_secs(2))
        .retry_window(Duration::from_secs(20));
    let url = server.url();
    let setup = RedisMeta::open_with(&url, opts.clone()).await.unwrap();
    setup
        .init(&harness::format("restart"), false)
        .await
        .unwrap();
    let mut clients = Vec::new();
    for _ in 0..2 {
        let m = RedisMeta::open_with(&url, opts.clone()).await.unwrap();
        m.new_session(&harness::session_info()).await.unwrap();
        clients.push(Arc::new(m));
    }

    let progress = Arc::new(AtomicUsize::new(0));
    let total = 2 * PER_CLIENT * 4;
    let tasks: Vec<_> = clients
        .iter()
        .zip(['a', 'b'])
        .map(|(m, tag)| tokio::spawn(workload(m.clone(), tag, progress.clone())))
        .collect();

    // Kill and restart the server at evenly spread points of the workload.
    for n in 1..=RESTARTS {
        let at = total * n / (RESTARTS + 1);
        while progress.load(Ordering::Relaxed) < at && !tasks.iter().all(|t| t.is_finished()) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        server.kill();
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.spawn();
    }

    let mut records = Vec::new();
    for t in tasks {
        records.push(t.await.unwrap());
    }
    let checker = RedisMeta::open_with(&url, opts).await.unwrap();
    let mut maybes = 0;
    for (rec, tag) in records.iter().zip(['a', 'b']) {
        maybes += verify(&checker, tag, rec).await;
    }
    // The listing holds nothing the clients did not create.
    let names: Vec<String> = checker
        .readdir(&Context::root(), ROOT_INO, None, usize::MAX, false)
        .await
        .unwrap()
        .into_iter()
        .map(|e| String::from_utf8(e.name).unwrap())
        .collect();
    for n in &names {
        assert!(
            n.starts_with("a-") || n.starts_with("b-"),
            "unexpected entry {n}"
        );
    }
    // The usage counters were changed in the same transactions: exactly once each.
    let mut used = 0i64;
    for e in checker
        .readdir(&Context::root(), ROOT_INO, None, usize::MAX, true)
        .await
        .unwrap()
    {
        let len = e.attr.unwrap().length;
        used += if len == 0 {
            4096
        } else {
            (len.div_ceil(4096) * 4096) as i64
        };
    }
    let mut raw = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let (space, inodes): (i64, i64) = redis::cmd("MGET")
        .arg("usedSpace")
        .arg("totalInodes")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(
        (space, inodes as usize),
        (used, names.len()),
        "usage counters"
    );
    let done: usize = records
        .iter()
        .map(|r| r.created.values().filter(|(t, _)| *t == Told::Done).count())
        .sum();
    eprintln!(
        "restart test: {} entries, {done} creates acknowledged, {maybes} outcomes unknown, {RESTARTS} restarts",
        names.len()
    );
    assert!(done > 0);
}
