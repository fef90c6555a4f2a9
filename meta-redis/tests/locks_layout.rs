//! File locks in JuiceFS's Redis keys (`lockf{ino}`, `lockp{ino}`, `locked{sid}`), as
//! juicefs 1.4.2 writes them: the values below were captured from a `juicefs mount` of a
//! Redis volume after a process took `flock(LOCK_SH)`, `lockf(LOCK_EX, 10 bytes at 10)`
//! and `lockf(LOCK_SH, to EOF from 100)` on one file.

#![allow(clippy::unwrap_used)]

#[path = "support/harness.rs"]
mod harness;

use std::collections::{BTreeMap, BTreeSet};

use meta_api::{Context, FileType, LockType, MetaEngine, MetaError, PlockRequest, ROOT_INO};
use meta_redis::{RedisMeta, RedisOptions};
use redis::AsyncCommands;

/// The POSIX lock value of the juicefs mount: `W` 10..=19 and `R` 100..=EOF of pid 19716.
const JUICEFS_RECORDS: [u8; 48] = [
    0, 0, 0, 1, 0, 0, 0x4d, 0x04, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 19, //
    0, 0, 0, 0, 0, 0, 0x4d, 0x04, 0, 0, 0, 0, 0, 0, 0, 100, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff,
];

async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn client(url: &str, prefix: &str) -> RedisMeta {
    let m = RedisMeta::open_with(url, RedisOptions::default().key_prefix(prefix))
        .await
        .unwrap();
    m.new_session(&harness::session_info()).await.unwrap();
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_are_stored_as_juicefs_stores_them() {
    let Some(url) = harness::redis_url("locks_are_stored_as_juicefs_stores_them") else {
        return;
    };
    let p = harness::unique_prefix("locks");
    let m = RedisMeta::open_with(&url, RedisOptions::default().key_prefix(&p))
        .await
        .unwrap();
    m.init(&harness::format("locks"), false).await.unwrap();
    let a = client(&url, &p).await;
    let mut r = raw(&url).await;
    let ctx = Context::root();
    let f = a
        .mknod(&ctx, ROOT_INO, b"f", FileType::Regular, 0o644, 0)
        .await
        .unwrap()
        .ino;
    let sid = a.session_id();
    let (fkey, pkey) = (format!("{p}lockf{f}"), format!("{p}lockp{f}"));
    let locked = format!("{p}locked{sid}");

    a.flock(&ctx, f, u64::MAX, LockType::Write, false)
        .await
        .unwrap();
    a.setlk(&ctx, f, 7, false, LockType::Write, 10, 19, 19716)
        .await
        .unwrap();
    a.setlk(&ctx, f, 7, false, LockType::Read, 100, u64::MAX, 19716)
        .await
        .unwrap();
    let flocks: BTreeMap<String, String> = r.hgetall(&fkey).await.unwrap();
    assert_eq!(
        flocks,
        BTreeMap::from([(format!("{sid}_FFFFFFFFFFFFFFFF"), "W".to_string())])
    );
    let plocks: BTreeMap<String, Vec<u8>> = r.hgetall(&pkey).await.unwrap();
    assert_eq!(
        plocks,
        BTreeMap::from([(format!("{sid}_0000000000000007"), JUICEFS_RECORDS.to_vec())])
    );
    let keys: BTreeSet<String> = r.smembers(&locked).await.unwrap();
    assert_eq!(keys, BTreeSet::from([fkey.clone(), pkey.clone()]));

    // The last field of the session in a key takes the key out of `locked{sid}`.
    a.flock(&ctx, f, u64::MAX, LockType::Unlock, false)
        .await
        .unwrap();
    assert!(!r.exists::<_, bool>(&fkey).await.unwrap());
    let keys: BTreeSet<String> = r.smembers(&locked).await.unwrap();
    assert_eq!(keys, BTreeSet::from([pkey.clone()]));

    // A juicefs client of session 999 holds locks too: they are honoured (asked by owner
    // 7, whose own equal range does not count)...
    let _: () = r.hset(&fkey, "999_262B720A20C4F71E", "R").await.unwrap();
    let _: () = r
        .hset(&pkey, "999_48EB99C2E1885C49", JUICEFS_RECORDS.as_slice())
        .await
        .unwrap();
    assert!(matches!(
        a.flock(&ctx, f, 1, LockType::Write, false).await,
        Err(MetaError::WouldBlock)
    ));
    let mut q = PlockRequest::new(LockType::Write, 0, u64::MAX, 0);
    a.getlk(&ctx, f, 7, &mut q).await.unwrap();
    assert_eq!(q, PlockRequest::new(LockType::Write, 10, 19, 0));
    a.flock(&ctx, f, 1, LockType::Read, false).await.unwrap();

    // ...and survive the end of A's session, which takes A's fields and its set.
    a.close_session().await.unwrap();
    let flocks: BTreeMap<String, String> = r.hgetall(&fkey).await.unwrap();
    assert_eq!(
        flocks,
        BTreeMap::from([("999_262B720A20C4F71E".to_string(), "R".to_string())])
    );
    let plocks: BTreeMap<String, Vec<u8>> = r.hgetall(&pkey).await.unwrap();
    assert_eq!(
        plocks.keys().collect::<Vec<_>>(),
        vec!["999_48EB99C2E1885C49"]
    );
    assert!(!r.exists::<_, bool>(&locked).await.unwrap());
}
