//! Opening volumes, several clients of one volume, sessions of other processes, and the
//! retry of transactions while another connection holds the database.

#![allow(clippy::unwrap_used)] // Helpers of tests: a failure is the test's failure.

#[path = "support/volume.rs"]
mod support;

use std::time::{Duration, Instant};

use meta_api::{Context, FileType, MetaEngine, MetaError, Slice, Timestamp, ROOT_INO};
use meta_sqlite::SqliteMeta;
use support::{int, test_format, Volume};

async fn file_with_data(m: &SqliteMeta, name: &[u8]) -> u64 {
    let f = m
        .mknod(
            &Context::root(),
            ROOT_INO,
            name,
            FileType::Regular,
            0o644,
            0,
        )
        .await
        .unwrap();
    let id = m.new_slice_id().await.unwrap();
    let s = Slice {
        pos: 0,
        id,
        size: 100,
        off: 0,
        len: 100,
    };
    m.write_slice(f.ino, 0, s, Timestamp::now()).await.unwrap();
    f.ino
}

async fn queued(m: &SqliteMeta, ino: u64) -> bool {
    m.deleted_files(usize::MAX)
        .await
        .unwrap()
        .iter()
        .any(|d| d.ino == ino)
}

#[tokio::test]
async fn bad_urls_and_unreachable_files_are_errors() {
    assert!(matches!(
        SqliteMeta::open("redis://localhost/1").await,
        Err(MetaError::InvalidArgument(_))
    ));
    assert!(matches!(
        SqliteMeta::open("sqlite3://").await,
        Err(MetaError::InvalidArgument(_))
    ));
    let dir = tempfile::tempdir().unwrap();
    let as_dir = format!("sqlite3://{}", dir.path().display());
    assert!(matches!(
        SqliteMeta::open(&as_dir).await,
        Err(MetaError::InvalidArgument(_))
    ));
    let missing = format!("sqlite3://{}/no/such/dir/meta.db", dir.path().display());
    assert!(matches!(
        SqliteMeta::open(&missing).await,
        Err(MetaError::Backend {
            retryable: false,
            ..
        })
    ));
    assert!(matches!(
        SqliteMeta::memory("a/b").await,
        Err(MetaError::InvalidArgument(_))
    ));
}

#[tokio::test]
async fn relative_urls_and_unformatted_volumes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rel.db");
    // A relative URL names a file relative to the working directory, as juicefs reads it.
    let cwd = std::env::current_dir().unwrap();
    let rel = pathdiff(&file, &cwd);
    let m = SqliteMeta::open(&format!("sqlite3://{rel}")).await.unwrap();
    assert!(file.exists(), "the database file is created");
    assert!(matches!(m.load().await, Err(MetaError::NotFormatted)));
    assert!(matches!(
        m.getattr(ROOT_INO).await,
        Err(MetaError::NotFormatted)
    ));
    m.init(&test_format(), false).await.unwrap();
    assert_eq!(m.getattr(ROOT_INO).await.unwrap().nlink, 2);
    assert!(matches!(
        m.init(&test_format(), false).await,
        Err(MetaError::Exists)
    ));
}

/// `path` relative to `base` (both absolute), with `..` as needed.
fn pathdiff(path: &std::path::Path, base: &std::path::Path) -> String {
    let p: Vec<_> = path.components().collect();
    let b: Vec<_> = base.components().collect();
    let common = p.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out: Vec<String> = vec!["..".into(); b.len() - common];
    out.extend(
        p[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    out.join("/")
}

#[tokio::test]
async fn in_memory_volumes_are_shared_by_name_only() {
    let a = SqliteMeta::memory("clients-shared").await.unwrap();
    a.init(&test_format(), false).await.unwrap();
    let b = SqliteMeta::memory("clients-shared").await.unwrap();
    a.mkdir(&Context::root(), ROOT_INO, b"x", 0o755)
        .await
        .unwrap();
    assert!(b.lookup(&Context::root(), ROOT_INO, b"x").await.is_ok());
    let other = SqliteMeta::memory("clients-other").await.unwrap();
    assert!(matches!(other.load().await, Err(MetaError::NotFormatted)));
}

#[tokio::test]
async fn a_session_of_another_process_keeps_an_unlinked_file_until_it_is_reaped() {
    let v = Volume::formatted(&test_format()).await;
    let m = v.client().await;
    let f = file_with_data(&m, b"f").await;
    // A session this process knows nothing about, as another process would register it.
    let raw = v.raw();
    let far = Timestamp::now().sec + 30;
    raw.execute(
        "INSERT INTO jfs_session2 (sid, expire, info) VALUES (999, ?, '{}')",
        rusqlite::params![far],
    )
    .unwrap();
    m.unlink(&Context::root(), ROOT_INO, b"f").await.unwrap();
    assert!(!queued(&m, f).await, "the other process may have it open");
    assert_eq!(m.getattr(f).await.unwrap().nlink, 0);
    let sessions = m.list_sessions().await.unwrap();
    let other = sessions.iter().find(|s| s.sid == 999).unwrap();
    assert_eq!(other.sustained, vec![f]);
    let later = Timestamp::new(far + 3600, 0);
    assert_eq!(
        m.reap_stale_sessions(later).await.unwrap(),
        2,
        "both sessions expired"
    );
    assert!(queued(&m, f).await, "reaping the session released the file");
    assert!(matches!(m.getattr(f).await, Err(MetaError::NotFound)));
}

#[tokio::test]
async fn a_heartbeat_lets_go_of_files_this_client_does_not_have_open() {
    let v = Volume::formatted(&test_format()).await;
    let m = v.client().await;
    let root = Context::root();
    let open = file_with_data(&m, b"open").await;
    let closed = file_with_data(&m, b"closed").await;
    m.open(&root, open, libc::O_RDONLY).await.unwrap();
    // Another process unlinked both and assumed this session might hold them.
    let raw = v.raw();
    for (ino, name) in [(open, "open"), (closed, "closed")] {
        raw.execute(
            "DELETE FROM jfs_edge WHERE parent = 1 AND name = CAST(? AS BLOB)",
            rusqlite::params![name],
        )
        .unwrap();
        raw.execute(
            "UPDATE jfs_node SET nlink = 0 WHERE inode = ?",
            rusqlite::params![ino as i64],
        )
        .unwrap();
        raw.execute(
            "INSERT INTO jfs_sustained (sid, inode) VALUES (?, ?)",
            rusqlite::params![m.session_id() as i64, ino as i64],
        )
        .unwrap();
    }
    assert_eq!(m.heartbeat().await.unwrap(), meta_api::Heartbeat::Extended);
    assert!(
        queued(&m, closed).await,
        "not open here: released at the heartbeat"
    );
    assert!(!queued(&m, open).await, "open here: kept");
    m.close(open).await.unwrap();
    assert!(queued(&m, open).await, "the last close releases it");
}

#[tokio::test]
async fn unlinked_file_open_in_two_clients_lives_until_both_close() {
    let v = Volume::formatted(&test_format()).await;
    let a = v.client().await;
    let b = v.client().await;
    let c = v.client().await;
    let root = Context::root();
    let f = file_with_data(&a, b"f").await;
    a.open(&root, f, libc::O_RDONLY).await.unwrap();
    b.open(&root, f, libc::O_RDWR).await.unwrap();
    c.unlink(&root, ROOT_INO, b"f").await.unwrap();
    let mut sustained: Vec<(u64, Vec<u64>)> = c
        .list_sessions()
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.sid, s.sustained))
        .collect();
    sustained.sort();
    assert_eq!(
        sustained,
        vec![
            (a.session_id(), vec![f]),
            (b.session_id(), vec![f]),
            (c.session_id(), vec![])
        ]
    );
    a.close(f).await.unwrap();
    assert!(!queued(&c, f).await);
    assert_eq!(b.read_chunk(f, 0).await.unwrap().len(), 1);
    b.close(f).await.unwrap();
    assert!(queued(&c, f).await);
    assert_eq!(c.purge_file(f).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_dropped_client_holds_nothing_open() {
    let v = Volume::formatted(&test_format()).await;
    let a = v.client().await;
    let f = file_with_data(&a, b"f").await;
    a.open(&Context::root(), f, libc::O_RDONLY).await.unwrap();
    drop(a);
    // The dropped client's session is still registered (nobody closed it) but cannot read.
    let b = v.client().await;
    b.unlink(&Context::root(), ROOT_INO, b"f").await.unwrap();
    assert!(queued(&b, f).await);
    assert_eq!(b.list_sessions().await.unwrap().len(), 2);
}

#[tokio::test]
async fn writes_wait_for_another_connection_holding_the_database() {
    let v = Volume::formatted(&test_format()).await;
    let m = v.client().await;
    let raw = v.raw();
    raw.execute_batch("BEGIN IMMEDIATE").unwrap();
    raw.execute(
        "UPDATE jfs_counter SET value = value WHERE name = 'usedSpace'",
        [],
    )
    .unwrap();
    let hold = Duration::from_millis(300);
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        m.mkdir(&Context::root(), ROOT_INO, b"late", 0o755)
            .await
            .unwrap();
        (m, Instant::now())
    });
    tokio::time::sleep(hold).await;
    raw.execute_batch("COMMIT").unwrap();
    let (m, done) = writer.await.unwrap();
    assert!(done - start >= hold, "the mkdir waited for the lock");
    assert!(m.lookup(&Context::root(), ROOT_INO, b"late").await.is_ok());
    assert_eq!(int(&raw, "SELECT count(*) FROM jfs_edge"), 1);
}

#[tokio::test]
async fn inode_and_slice_ranges_of_clients_never_overlap() {
    let v = Volume::formatted(&test_format()).await;
    let a = v.client().await;
    let b = v.client().await;
    let root = Context::root();
    let mut inos = Vec::new();
    let mut ids = Vec::new();
    for i in 0..3 {
        for (n, m) in [(0, &a), (1, &b)] {
            let name = format!("f{n}-{i}");
            inos.push(
                m.mknod(
                    &root,
                    ROOT_INO,
                    name.as_bytes(),
                    FileType::Regular,
                    0o644,
                    0,
                )
                .await
                .unwrap()
                .ino,
            );
            ids.push(m.new_slice_id().await.unwrap());
        }
    }
    for v in [&mut inos, &mut ids] {
        let n = v.len();
        v.sort_unstable();
        v.dedup();
        assert_eq!(v.len(), n, "{v:?}");
    }
    assert!(inos.iter().all(|&i| i > ROOT_INO));
    assert!(ids.iter().all(|&i| i > 0));
}

/// Creates `n` files named `{tag}{i}` in `dir` as root.
async fn create_many(m: std::sync::Arc<SqliteMeta>, dir: u64, tag: &'static str, n: usize) {
    for i in 0..n {
        let name = format!("{tag}{i}");
        m.mknod(
            &Context::root(),
            dir,
            name.as_bytes(),
            FileType::Regular,
            0o644,
            0,
        )
        .await
        .unwrap();
    }
}

async fn concurrent_creates(a: SqliteMeta, b: SqliteMeta) {
    let d = a
        .mkdir(&Context::root(), ROOT_INO, b"d", 0o755)
        .await
        .unwrap();
    let (a, b) = (std::sync::Arc::new(a), std::sync::Arc::new(b));
    let tasks = [
        tokio::spawn(create_many(a.clone(), d.ino, "a", 150)),
        tokio::spawn(create_many(a.clone(), d.ino, "x", 150)),
        tokio::spawn(create_many(b.clone(), d.ino, "b", 150)),
    ];
    for t in tasks {
        t.await.unwrap();
    }
    let entries = b
        .readdir(&Context::root(), d.ino, None, 1000, true)
        .await
        .unwrap();
    assert_eq!(entries.len(), 450);
    assert_eq!(a.statfs().await.unwrap().used_inodes, 451);
    let mut inos: Vec<u64> = entries.iter().map(|e| e.ino).collect();
    inos.sort_unstable();
    inos.dedup();
    assert_eq!(inos.len(), 450);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_of_a_file_volume() {
    let v = Volume::formatted(&test_format()).await;
    concurrent_creates(v.client().await, v.client().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_of_an_in_memory_volume() {
    let a = SqliteMeta::memory("clients-concurrent").await.unwrap();
    a.init(&test_format(), false).await.unwrap();
    let b = SqliteMeta::memory("clients-concurrent").await.unwrap();
    concurrent_creates(a, b).await;
}
