//! Redis-specific behaviour: the exact JuiceFS key layout and encodings, counter
//! semantics shared with `juicefs` clients, slice reference counts, and the commit
//! marker that resolves a lost `EXEC` reply.

#![allow(clippy::unwrap_used)]

#[path = "support/harness.rs"]
mod harness;

use std::time::Duration;

use meta_api::encoding::{decode_attr, decode_entry};
use meta_api::{Context, FileType, MetaEngine, RenameFlags, Slice, Timestamp, ROOT_INO};
use meta_redis::{RedisMeta, RedisOptions};
use redis::AsyncCommands;

async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn volume(url: &str, tag: &str) -> (String, RedisMeta) {
    let prefix = harness::unique_prefix(tag);
    let m = RedisMeta::open_with(url, RedisOptions::default().key_prefix(&prefix))
        .await
        .unwrap();
    m.init(&harness::format(tag), false).await.unwrap();
    m.new_session(&harness::session_info()).await.unwrap();
    (prefix, m)
}

fn slice(id: u64, pos: u32, len: u32) -> Slice {
    Slice {
        pos,
        id,
        size: len,
        off: 0,
        len,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_encodings_follow_juicefs() {
    let Some(url) = harness::redis_url("keys_and_encodings_follow_juicefs") else {
        return;
    };
    let (p, m) = volume(&url, "schema").await;
    let mut r = raw(&url).await;
    let ctx = Context::root();

    let setting: String = r.get(format!("{p}setting")).await.unwrap();
    let json: serde_json::Value = serde_json::from_str(&setting).unwrap();
    assert_eq!(json["Name"], "schema");
    let root = decode_attr(&r.get::<_, Vec<u8>>(format!("{p}i1")).await.unwrap()).unwrap();
    assert_eq!(
        (root.typ, root.mode, root.nlink, root.parent),
        (FileType::Directory, 0o777, 2, 1)
    );

    let d = m.mkdir(&ctx, ROOT_INO, b"dir", 0o755).await.unwrap();
    assert_eq!(d.ino, 2, "the first inode after the root");
    let next: u64 = r.get(format!("{p}nextinode")).await.unwrap();
    assert_eq!(
        next,
        meta_api::INODE_BATCH,
        "nextinode holds the last id reserved"
    );
    let e: Vec<u8> = r.hget(format!("{p}d1"), "dir").await.unwrap();
    assert_eq!(decode_entry(&e).unwrap(), (FileType::Directory, 2));
    for h in ["dirUsedInodes", "dirDataLength", "dirUsedSpace"] {
        let v: String = r.hget(format!("{p}{h}"), "2").await.unwrap();
        assert_eq!(v, "0", "{h} starts at 0 for a new directory");
    }

    let f = m
        .mknod(&ctx, d.ino, b"f", FileType::Regular, 0o644, 0)
        .await
        .unwrap();
    let id = m.new_slice_id().await.unwrap();
    assert_eq!(id, 1, "slice ids start at 1");
    let next: u64 = r.get(format!("{p}nextchunk")).await.unwrap();
    assert_eq!(next, meta_api::SLICE_ID_BATCH);
    m.write_slice(f.ino, 0, slice(id, 0, 5000), Timestamp::now())
        .await
        .unwrap();
    let recs: Vec<Vec<u8>> = r.lrange(format!("{p}c{}_0", f.ino), 0, -1).await.unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0], slice(id, 0, 5000).encode().to_vec());
    let used: i64 = r.get(format!("{p}usedSpace")).await.unwrap();
    assert_eq!(used, 4096 + 8192, "a directory and a 5000-byte file");
    let inodes: i64 = r.get(format!("{p}totalInodes")).await.unwrap();
    assert_eq!(inodes, 2);

    let s = m.symlink(&ctx, d.ino, b"s", b"target").await.unwrap();
    let t: Vec<u8> = r.get(format!("{p}s{}", s.ino)).await.unwrap();
    assert_eq!(t, b"target");
    m.setxattr(&ctx, f.ino, b"user.k", b"v", 0).await.unwrap();
    let x: Vec<u8> = r.hget(format!("{p}x{}", f.ino), "user.k").await.unwrap();
    assert_eq!(x, b"v");

    // A second name makes the file multi-parent: parent 0 in the attributes, `p{ino}` counts.
    m.link(&ctx, f.ino, ROOT_INO, b"hard").await.unwrap();
    let a = decode_attr(&r.get::<_, Vec<u8>>(format!("{p}i{}", f.ino)).await.unwrap()).unwrap();
    assert_eq!((a.parent, a.nlink), (0, 2));
    let parents: Vec<(String, i64)> = r.hgetall(format!("{p}p{}", f.ino)).await.unwrap();
    let mut parents = parents;
    parents.sort();
    assert_eq!(parents, vec![("1".to_string(), 1), ("2".to_string(), 1)]);

    // Sessions: the zset of expiries, the info JSON.
    let sid = m.session_id();
    let score: Option<f64> = r.zscore(format!("{p}allSessions"), sid).await.unwrap();
    assert!(score.is_some());
    let info: String = r.hget(format!("{p}sessionInfos"), sid).await.unwrap();
    assert!(info.contains("\"HostName\""));

    // The last name of a closed file: deleted at once, queued in delfiles as ino:length.
    m.unlink(&ctx, d.ino, b"f").await.unwrap();
    m.unlink(&ctx, ROOT_INO, b"hard").await.unwrap();
    let del: Vec<String> = r.zrange(format!("{p}delfiles"), 0, -1).await.unwrap();
    assert_eq!(del, vec![format!("{}:5000", f.ino)]);
    let gone: bool = r.exists(format!("{p}i{}", f.ino)).await.unwrap();
    assert!(!gone);
    let freed = m.purge_file(f.ino).await.unwrap();
    assert_eq!(freed.iter().map(|s| s.id).collect::<Vec<_>>(), vec![id]);
    let left: bool = r.exists(format!("{p}c{}_0", f.ino)).await.unwrap();
    assert!(!left);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_never_hand_out_an_id_twice() {
    let Some(url) = harness::redis_url("counters_never_hand_out_an_id_twice") else {
        return;
    };
    let (p, m) = volume(&url, "ctr").await;
    let mut r = raw(&url).await;
    // As if a juicefs client had used inodes up to 5000 and slices up to 70.
    let _: () = r.set(format!("{p}nextinode"), 5000).await.unwrap();
    let _: () = r.set(format!("{p}nextchunk"), 70).await.unwrap();
    let ctx = Context::root();
    let a = m
        .mknod(&ctx, ROOT_INO, b"a", FileType::Regular, 0o644, 0)
        .await
        .unwrap();
    assert_eq!(a.ino, 5001);
    assert_eq!(m.new_slice_id().await.unwrap(), 71);
    let other = harness::connect(&url, &p).await.unwrap();
    let b = other
        .mknod(&ctx, ROOT_INO, b"b", FileType::Regular, 0o644, 0)
        .await
        .unwrap();
    assert_eq!(
        b.ino,
        5001 + meta_api::INODE_BATCH,
        "the second client's batch follows"
    );
    assert_eq!(
        other.new_slice_id().await.unwrap(),
        71 + meta_api::SLICE_ID_BATCH
    );
    let next: u64 = r.get(format!("{p}nextinode")).await.unwrap();
    assert_eq!(next, 5000 + 2 * meta_api::INODE_BATCH);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slice_refs_count_copies() {
    let Some(url) = harness::redis_url("slice_refs_count_copies") else {
        return;
    };
    let (p, m) = volume(&url, "refs").await;
    let mut r = raw(&url).await;
    let ctx = Context::root();
    let a = m
        .mknod(&ctx, ROOT_INO, b"a", FileType::Regular, 0o644, 0)
        .await
        .unwrap();
    let b = m
        .mknod(&ctx, ROOT_INO, b"b", FileType::Regular, 0o644, 0)
        .await
        .unwrap();
    let id = m.new_slice_id().await.unwrap();
    m.write_slice(a.ino, 0, slice(id, 0, 1000), Timestamp::now())
        .await
        .unwrap();
    assert_eq!(
        m.copy_file_range(&ctx, a.ino, 0, b.ino, 0, 1000)
            .await
            .unwrap(),
        1000
    );
    let field = format!("k{id}_1000");
    let refs: i64 = r.hget(format!("{p}sliceRef"), &field).await.unwrap();
    assert_eq!(refs, 1, "the field holds references minus one");
    m.unlink(&ctx, ROOT_INO, b"a").await.unwrap();
    assert!(
        m.purge_file(a.ino).await.unwrap().is_empty(),
        "b still uses the slice"
    );
    let refs: i64 = r.hget(format!("{p}sliceRef"), &field).await.unwrap();
    assert_eq!(refs, 0);
    m.unlink(&ctx, ROOT_INO, b"b").await.unwrap();
    let freed = m.purge_file(b.ino).await.unwrap();
    assert_eq!(freed.len(), 1);
    assert_eq!((freed[0].id, freed[0].size), (id, 1000));
    let left: Option<i64> = r.hget(format!("{p}sliceRef"), &field).await.unwrap();
    assert_eq!(
        left,
        Some(-1),
        "JuiceFS keeps the freed slice's field at -1 (pending) until its objects go"
    );
    assert!(m.forget_slice(id, 1000).await.unwrap());
    let left: Option<i64> = r.hget(format!("{p}sliceRef"), &field).await.unwrap();
    assert_eq!(left, None);
}

/// A commit whose reply does not come in time (the server holds writes with
/// `CLIENT PAUSE`) is fenced and resolved through its marker: the operation happens
/// exactly once and the call reports what happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_commit_reply_is_resolved_exactly_once() {
    let Some(url) = harness::redis_url("lost_commit_reply_is_resolved_exactly_once") else {
        return;
    };
    let prefix = harness::unique_prefix("fence");
    let opts = RedisOptions::default()
        .key_prefix(&prefix)
        .op_timeout(Duration::from_millis(150))
        .retry_window(Duration::from_secs(10));
    let m = RedisMeta::open_with(&url, opts).await.unwrap();
    m.init(&harness::format("fence"), false).await.unwrap();
    m.new_session(&harness::session_info()).await.unwrap();
    let ctx = Context::root();
    let a = m
        .mknod(&ctx, ROOT_INO, b"a", FileType::Regular, 0o644, 0)
        .await
        .unwrap();
    let mut r = raw(&url).await;
    for round in 0..3 {
        let _: () = redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(400)
            .arg("WRITE")
            .query_async(&mut r)
            .await
            .unwrap();
        let to = format!("b{round}");
        let from = if round == 0 {
            "a".to_string()
        } else {
            format!("b{}", round - 1)
        };
        m.rename(
            &ctx,
            ROOT_INO,
            from.as_bytes(),
            ROOT_INO,
            to.as_bytes(),
            RenameFlags::empty(),
        )
        .await
        .unwrap();
        let e = m.lookup(&ctx, ROOT_INO, to.as_bytes()).await.unwrap();
        assert_eq!(e.ino, a.ino);
        assert!(m.lookup(&ctx, ROOT_INO, from.as_bytes()).await.is_err());
    }
    let list = m.readdir(&ctx, ROOT_INO, None, 100, false).await.unwrap();
    assert_eq!(list.len(), 1, "exactly one name after three fenced renames");
}

/// `rediss://` works when built with the `tls` feature (`REDIS_TLS_URL`, e.g.
/// `rediss://127.0.0.1:16391/#insecure` for a server with a self-signed certificate).
#[cfg(feature = "tls")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_connects() {
    let url = match std::env::var("REDIS_TLS_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => {
            tessera_testenv::missing::<()>("tls_connects: REDIS_TLS_URL is not set");
            return;
        }
    };
    let (_, m) = volume(&url, "tls").await;
    let d = m
        .mkdir(&Context::root(), ROOT_INO, b"over-tls", 0o755)
        .await
        .unwrap();
    assert_eq!(
        m.lookup(&Context::root(), ROOT_INO, b"over-tls")
            .await
            .unwrap()
            .ino,
        d.ino
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_statistics_follow_entries() {
    let Some(url) = harness::redis_url("directory_statistics_follow_entries") else {
        return;
    };
    let (p, m) = volume(&url, "dirstats").await;
    let mut r = raw(&url).await;
    let ctx = Context::root();
    let stats = |r: &mut redis::aio::MultiplexedConnection, dir: u64| {
        let mut r = r.clone();
        let p = p.clone();
        async move {
            let mut out = Vec::new();
            for h in ["dirDataLength", "dirUsedSpace", "dirUsedInodes"] {
                let v: Option<i64> = r.hget(format!("{p}{h}"), dir).await.unwrap();
                out.push(v);
            }
            out
        }
    };
    let d = m.mkdir(&ctx, ROOT_INO, b"d", 0o755).await.unwrap();
    let e = m.mkdir(&ctx, ROOT_INO, b"e", 0o755).await.unwrap();
    assert_eq!(stats(&mut r, d.ino).await, vec![Some(0), Some(0), Some(0)]);
    let f = m
        .mknod(&ctx, d.ino, b"f", FileType::Regular, 0o644, 0)
        .await
        .unwrap();
    let id = m.new_slice_id().await.unwrap();
    m.write_slice(f.ino, 0, slice(id, 0, 5000), Timestamp::now())
        .await
        .unwrap();
    assert_eq!(
        stats(&mut r, d.ino).await,
        vec![Some(5000), Some(8192), Some(1)]
    );
    m.link(&ctx, f.ino, e.ino, b"g").await.unwrap();
    m.truncate(&ctx, f.ino, 100).await.unwrap();
    assert_eq!(
        stats(&mut r, d.ino).await,
        vec![Some(100), Some(4096), Some(1)]
    );
    assert_eq!(
        stats(&mut r, e.ino).await,
        vec![Some(100), Some(4096), Some(1)],
        "both names count"
    );
    m.rename(&ctx, d.ino, b"f", e.ino, b"h", RenameFlags::empty())
        .await
        .unwrap();
    assert_eq!(stats(&mut r, d.ino).await, vec![Some(0), Some(0), Some(0)]);
    assert_eq!(
        stats(&mut r, e.ino).await,
        vec![Some(200), Some(8192), Some(2)]
    );
    m.symlink(&ctx, e.ino, b"s", b"x").await.unwrap();
    assert_eq!(
        stats(&mut r, e.ino).await,
        vec![Some(200), Some(12288), Some(3)]
    );
    for n in [&b"g"[..], b"h", b"s"] {
        m.unlink(&ctx, e.ino, n).await.unwrap();
    }
    assert_eq!(stats(&mut r, e.ino).await, vec![Some(0), Some(0), Some(0)]);
    // The root's statistics are made empty with the volume and kept like any other's.
    assert_eq!(
        stats(&mut r, ROOT_INO).await,
        vec![Some(0), Some(8192), Some(2)]
    );
    m.rmdir(&ctx, ROOT_INO, b"d").await.unwrap();
    assert_eq!(stats(&mut r, d.ino).await, vec![None, None, None]);
}

/// `usedSpace`/`totalInodes` broken behind the engine's back are put right by
/// `recount_usage`, from the `i{ino}` keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recount_usage_repairs_corrupted_counters() {
    let Some(url) = harness::redis_url("recount_usage_repairs_corrupted_counters") else {
        return;
    };
    let (p, m) = volume(&url, "recount").await;
    let mut r = raw(&url).await;
    let ctx = Context::root();
    let f = m
        .mknod(&ctx, ROOT_INO, b"f", FileType::Regular, 0o644, 0)
        .await
        .unwrap();
    m.truncate(&ctx, f.ino, 5000).await.unwrap();
    m.mkdir(&ctx, ROOT_INO, b"d", 0o755).await.unwrap();
    let good = meta_api::Usage {
        space: 8192 + 4096,
        inodes: 2,
    };
    let _: () = r.set(format!("{p}usedSpace"), -77).await.unwrap();
    let _: () = r.set(format!("{p}totalInodes"), 12345).await.unwrap();
    let rc = m.recount_usage().await.unwrap();
    assert_eq!(
        rc.before,
        meta_api::Usage {
            space: -77,
            inodes: 12345
        }
    );
    assert_eq!(rc.after, good);
    let space: i64 = r.get(format!("{p}usedSpace")).await.unwrap();
    let inodes: i64 = r.get(format!("{p}totalInodes")).await.unwrap();
    assert_eq!((space, inodes), (good.space, good.inodes));
}

/// A create in a directory this client just created in is one round trip on what it
/// knows of the directory; whenever that is out of date (another client's create, a
/// name written behind its back, a quota set meanwhile) the create runs the ordinary way
/// and its answer and accounting are exactly those of an ordinary create.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_guess_their_parent_and_fall_back_when_it_changed() {
    let Some(url) = harness::redis_url("creates_guess_their_parent_and_fall_back_when_it_changed")
    else {
        return;
    };
    let (prefix, a) = volume(&url, "guess").await;
    let b = RedisMeta::open_with(&url, RedisOptions::default().key_prefix(&prefix))
        .await
        .unwrap();
    b.new_session(&harness::session_info()).await.unwrap();
    let ctx = Context::root();
    let d = a.mkdir(&ctx, ROOT_INO, b"d", 0o755).await.unwrap().ino;
    for i in 0..10 {
        let name = format!("f{i}");
        a.create(&ctx, d, name.as_bytes(), 0o644).await.unwrap();
    }
    assert_eq!(
        a.guessed_creates(),
        (9, 0),
        "all but the first on the guess"
    );

    // Another client's create changes the directory: the next guess fails.
    b.create(&ctx, d, b"g", 0o644).await.unwrap();
    a.create(&ctx, d, b"f10", 0o644).await.unwrap();
    assert_eq!(a.guessed_creates(), (9, 1));
    a.create(&ctx, d, b"f11", 0o644).await.unwrap();
    assert_eq!(a.guessed_creates(), (10, 1));

    // A name written without touching the directory's attributes: the guess that it is
    // absent fails on the server, and the create answers EEXIST, writing nothing.
    let mut r = raw(&url).await;
    let entries = format!("{prefix}d{d}");
    let planted = meta_api::encoding::encode_entry(FileType::Regular, 999_999);
    let _: () = r.hset(&entries, "x", planted.as_slice()).await.unwrap();
    let inodes_before: i64 = r.get(format!("{prefix}totalInodes")).await.unwrap();
    let e = a.create(&ctx, d, b"x", 0o644).await;
    assert!(matches!(e, Err(meta_api::MetaError::Exists)), "{e:?}");
    assert_eq!(a.guessed_creates(), (10, 2));
    let kept: Vec<u8> = r.hget(&entries, "x").await.unwrap();
    assert_eq!(kept, planted, "the planted entry is untouched");
    let inodes_after: i64 = r.get(format!("{prefix}totalInodes")).await.unwrap();
    assert_eq!(
        inodes_after, inodes_before,
        "a refused create counts nothing"
    );
    let _: () = r.hdel(&entries, "x").await.unwrap();

    // A quota set by another client meanwhile: the create is charged to it.
    a.create(&ctx, d, b"f12", 0o644).await.unwrap();
    let (held, missed) = a.guessed_creates();
    b.set_quota(meta_api::quota::QuotaKind::Dir, d, (-1, -1), Some((0, 0)))
        .await
        .unwrap();
    a.create(&ctx, d, b"f13", 0o644).await.unwrap();
    assert_eq!(a.guessed_creates(), (held, missed + 1));
    let q = b
        .get_quota(meta_api::quota::QuotaKind::Dir, d)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(q.used_inodes, 1, "{q:?}");

    // The directory as both clients see it: every name, the attributes of the last write.
    let list = b.readdir(&ctx, d, None, 100, false).await.unwrap();
    assert_eq!(list.len(), 15, "f0..f13 and g");
    let via_a = a.getattr(d).await.unwrap();
    let via_b = b.getattr(d).await.unwrap();
    assert_eq!(via_a, via_b);
    let st = b.dir_stat(d).await.unwrap().unwrap();
    assert_eq!(st.inodes, 15, "{st:?}");
}

/// A client names the server's missing append-only file when it connects (the test server
/// runs without one, scripts/services.sh), and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_aof_is_warned_about() {
    let Some(url) = harness::redis_url("a_server_without_aof_is_warned_about") else {
        return;
    };
    let mut c = raw(&url).await;
    let aof: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("appendonly")
        .query_async(&mut c)
        .await
        .unwrap();
    let m = RedisMeta::open(&url).await.unwrap();
    let w = m.server_warnings();
    let off = aof.get(1).map(String::as_str) == Some("no");
    assert_eq!(w.iter().any(|w| w.contains("append-only")), off, "{w:?}");
    assert!(!w.iter().any(|w| w.contains("maxmemory")), "{w:?}");
}

/// Writes a volume's keys directly ([`meta_api::testkit::corrupt`]).
struct Keys {
    prefix: String,
    conn: redis::aio::MultiplexedConnection,
}

#[async_trait::async_trait]
impl meta_api::testkit::corrupt::Plant for Keys {
    async fn entry(&self, dir: u64, name: &[u8], ino: u64, typ: FileType) {
        let value = meta_api::encoding::encode_entry(typ, ino);
        let _: () = self
            .conn
            .clone()
            .hset(format!("{}d{dir}", self.prefix), name, &value[..])
            .await
            .unwrap();
    }
    async fn chunk(&self, ino: u64, indx: u32, records: &[Slice]) {
        let key = format!("{}c{ino}_{indx}", self.prefix);
        let mut c = self.conn.clone();
        let _: () = c.del(&key).await.unwrap();
        for r in records {
            let _: () = c.rpush(&key, r.encode().to_vec()).await.unwrap();
        }
    }
}

/// Entry names no client can create and chunk records past their chunk or slice are
/// `Corrupt` when read, never passed on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impossible_records_are_corrupt() {
    use meta_api::testkit::corrupt;
    let Some(url) = harness::redis_url("impossible_records_are_corrupt") else {
        return;
    };
    let (prefix, m) = volume(&url, "hostile").await;
    let keys = Keys {
        prefix,
        conn: raw(&url).await,
    };
    corrupt::impossible_names_are_corrupt(&m, &keys, &corrupt::impossible_names()).await;
    corrupt::impossible_chunk_records_are_corrupt(&m, &keys).await;
}
