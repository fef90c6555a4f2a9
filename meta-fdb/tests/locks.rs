//! File locks in JuiceFS's TKV keys: `F{ino}` (BSD locks, 17-byte records `sid owner
//! type`) and `P{ino}` (POSIX locks, `sid owner length ranges`), as `pkg/meta/tkv_lock.go`
//! marshals them, with the ranges packed as a juicefs 1.4.2 mount packs them.

#[path = "support/harness.rs"]
mod harness;

use harness::{format, session_info, PREFIX};
use meta_api::{Context, FileType, LockType, MetaEngine, MetaError, PlockRequest, ROOT_INO};
use meta_fdb::{KvTxn, MemKv, TkvMeta};

/// POSIX ranges `W` 10..=19 and `R` 100..=EOF of pid 19716, as a juicefs mount stores
/// them (`ltype u32 | pid u32 | start u64 | end u64`, big-endian; EOF is `i64::MAX`).
const JUICEFS_RECORDS: [u8; 48] = [
    0, 0, 0, 1, 0, 0, 0x4d, 0x04, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 19, //
    0, 0, 0, 0, 0, 0, 0x4d, 0x04, 0, 0, 0, 0, 0, 0, 0, 100, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff,
];

fn lock_key(tag: u8, ino: u64) -> Vec<u8> {
    let mut k = PREFIX.to_vec();
    k.push(tag);
    k.extend_from_slice(&ino.to_le_bytes());
    k
}

fn get(kv: &MemKv, key: &[u8]) -> Option<Vec<u8>> {
    kv.entries()
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

fn flock_record(sid: u64, owner: u64, t: u8) -> Vec<u8> {
    [&sid.to_be_bytes()[..], &owner.to_be_bytes(), &[t]].concat()
}

fn plock_record(sid: u64, owner: u64, ranges: &[u8]) -> Vec<u8> {
    [
        &sid.to_be_bytes()[..],
        &owner.to_be_bytes(),
        &(ranges.len() as u32).to_be_bytes(),
        ranges,
    ]
    .concat()
}

#[tokio::test]
async fn locks_are_stored_as_juicefs_stores_them() {
    let kv = MemKv::new();
    TkvMeta::new(kv.clone(), PREFIX)
        .init(&format("locks"), false)
        .await
        .unwrap();
    let a = TkvMeta::new(kv.clone(), PREFIX);
    let sid = a.new_session(&session_info()).await.unwrap();
    let ctx = Context::root();
    let f = a
        .mknod(&ctx, ROOT_INO, b"f", FileType::Regular, 0o644, 0)
        .await
        .unwrap()
        .ino;
    let (fkey, pkey) = (lock_key(b'F', f), lock_key(b'P', f));

    a.flock(&ctx, f, u64::MAX, LockType::Write, false)
        .await
        .unwrap();
    a.setlk(&ctx, f, 7, false, LockType::Write, 10, 19, 19716)
        .await
        .unwrap();
    a.setlk(&ctx, f, 7, false, LockType::Read, 100, u64::MAX, 19716)
        .await
        .unwrap();
    assert_eq!(get(&kv, &fkey), Some(flock_record(sid, u64::MAX, b'W')));
    assert_eq!(
        get(&kv, &pkey),
        Some(plock_record(sid, 7, &JUICEFS_RECORDS))
    );

    // Records of a juicefs client (session 999) are honoured and kept.
    let theirs_f = flock_record(999, 5, b'R');
    let theirs_p = plock_record(999, 6, &JUICEFS_RECORDS);
    let tx = kv.begin();
    tx.set(
        &fkey,
        &[flock_record(sid, u64::MAX, b'W'), theirs_f.clone()].concat(),
    );
    tx.set(
        &pkey,
        &[plock_record(sid, 7, &JUICEFS_RECORDS), theirs_p.clone()].concat(),
    );
    tx.commit().unwrap();
    a.flock(&ctx, f, u64::MAX, LockType::Unlock, false)
        .await
        .unwrap();
    assert_eq!(get(&kv, &fkey), Some(theirs_f.clone()));
    assert!(matches!(
        a.flock(&ctx, f, 1, LockType::Write, false).await,
        Err(MetaError::WouldBlock)
    ));
    let mut q = PlockRequest::new(LockType::Write, 0, u64::MAX, 0);
    a.getlk(&ctx, f, 7, &mut q).await.unwrap();
    assert_eq!(q, PlockRequest::new(LockType::Write, 10, 19, 0));

    // The end of A's session leaves only the juicefs client's records; the last unlock
    // of a key removes it.
    a.close_session().await.unwrap();
    assert_eq!(get(&kv, &fkey), Some(theirs_f));
    assert_eq!(get(&kv, &pkey), Some(theirs_p));
    let b = TkvMeta::new(kv.clone(), PREFIX);
    b.new_session(&session_info()).await.unwrap();
    b.setlk(&ctx, f, 1, false, LockType::Read, 0, 5, 0)
        .await
        .unwrap();
    b.setlk(&ctx, f, 1, false, LockType::Unlock, 0, u64::MAX, 0)
        .await
        .unwrap();
    let tx = kv.begin();
    tx.clear(&pkey);
    tx.commit().unwrap();
    b.setlk(&ctx, f, 1, false, LockType::Write, 0, 5, 0)
        .await
        .unwrap();
    b.setlk(&ctx, f, 1, false, LockType::Unlock, 0, 5, 0)
        .await
        .unwrap();
    assert_eq!(get(&kv, &pkey), None);
}
