//! File locks in `jfs_flock` and `jfs_plock`, row by row as JuiceFS 1.4 stores them. The
//! JuiceFS rows below were captured from a `juicefs mount` (1.4.2) of a SQLite volume
//! after a process took `flock(LOCK_SH)`, `lockf(LOCK_EX, 10 bytes at 10)` and
//! `lockf(LOCK_SH, to EOF from 100)` on one file.

#![allow(clippy::unwrap_used)] // Helpers of tests: a failure is the test's failure.

#[path = "support/volume.rs"]
mod support;

use meta_api::{Context, LockType, MetaEngine, MetaError, PlockRequest, ROOT_INO};
use rusqlite::Connection;
use support::{test_format, Volume};

/// The `records` of the juicefs mount's POSIX locks: `W` 10..=19 and `R` 100..=EOF of
/// pid 12193 (`ltype u32 | pid u32 | start u64 | end u64`, big-endian).
const JUICEFS_RECORDS: [u8; 48] = [
    0, 0, 0, 1, 0, 0, 0x2f, 0xa1, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 19, //
    0, 0, 0, 0, 0, 0, 0x2f, 0xa1, 0, 0, 0, 0, 0, 0, 0, 100, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff,
];

/// `(sid, owner, ltype)` of every `jfs_flock` row of `ino`.
fn flock_rows(raw: &Connection, ino: u64) -> Vec<(i64, i64, i64)> {
    raw.prepare("SELECT sid, owner, ltype FROM jfs_flock WHERE inode = ? ORDER BY sid, owner")
        .unwrap()
        .query_map(rusqlite::params![ino as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// `(sid, owner, records)` of every `jfs_plock` row of `ino`.
fn plock_rows(raw: &Connection, ino: u64) -> Vec<(i64, i64, Vec<u8>)> {
    raw.prepare("SELECT sid, owner, records FROM jfs_plock WHERE inode = ? ORDER BY sid, owner")
        .unwrap()
        .query_map(rusqlite::params![ino as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

#[tokio::test]
async fn locks_are_stored_as_juicefs_stores_them() {
    let v = Volume::formatted(&test_format()).await;
    let a = v.client().await;
    let ctx = Context::root();
    let f = a
        .mknod(&ctx, ROOT_INO, b"f", meta_api::FileType::Regular, 0o644, 0)
        .await
        .unwrap()
        .ino;
    let sid = a.session_id() as i64;
    a.flock(&ctx, f, u64::MAX, LockType::Write, false)
        .await
        .unwrap();
    assert!(matches!(
        a.flock(&ctx, f, 5, LockType::Read, false).await,
        Err(MetaError::WouldBlock)
    ));
    a.setlk(&ctx, f, 7, false, LockType::Write, 10, 19, 12193)
        .await
        .unwrap();
    a.setlk(&ctx, f, 7, false, LockType::Read, 100, u64::MAX, 12193)
        .await
        .unwrap();

    let raw = v.raw();
    // The owner is the i64 with the same bits; the type the byte 'W'.
    assert_eq!(flock_rows(&raw, f), vec![(sid, -1, i64::from(b'W'))]);
    assert_eq!(
        plock_rows(&raw, f),
        vec![(sid, 7, JUICEFS_RECORDS.to_vec())]
    );

    // Unlocking everything removes the rows.
    a.flock(&ctx, f, u64::MAX, LockType::Unlock, false)
        .await
        .unwrap();
    a.setlk(&ctx, f, 7, false, LockType::Unlock, 0, u64::MAX, 0)
        .await
        .unwrap();
    assert!(flock_rows(&raw, f).is_empty());
    assert!(plock_rows(&raw, f).is_empty());
}

#[tokio::test]
async fn locks_written_by_juicefs_are_honoured() {
    let v = Volume::formatted(&test_format()).await;
    let a = v.client().await;
    let ctx = Context::root();
    let f = a
        .mknod(&ctx, ROOT_INO, b"f", meta_api::FileType::Regular, 0o644, 0)
        .await
        .unwrap()
        .ino;
    let raw = v.raw();
    // A juicefs client of session 999 holds a shared BSD lock and two POSIX ranges.
    raw.execute(
        "INSERT INTO jfs_flock (inode, sid, owner, ltype) VALUES (?, 999, 5209190571182447507, 82)",
        rusqlite::params![f as i64],
    )
    .unwrap();
    raw.execute(
        "INSERT INTO jfs_plock (inode, sid, owner, records) VALUES (?, 999, 7720569820150361443, ?)",
        rusqlite::params![f as i64, JUICEFS_RECORDS.as_slice()],
    )
    .unwrap();

    assert!(matches!(
        a.flock(&ctx, f, 1, LockType::Write, false).await,
        Err(MetaError::WouldBlock)
    ));
    a.flock(&ctx, f, 1, LockType::Read, false).await.unwrap();
    let mut q = PlockRequest::new(LockType::Read, 0, u64::MAX, 0);
    a.getlk(&ctx, f, 1, &mut q).await.unwrap();
    assert_eq!(q, PlockRequest::new(LockType::Write, 10, 19, 0));
    let mut q = PlockRequest::new(LockType::Write, 20, u64::MAX, 0);
    a.getlk(&ctx, f, 1, &mut q).await.unwrap();
    assert_eq!(q, PlockRequest::new(LockType::Read, 100, u64::MAX, 0));
    assert!(matches!(
        a.setlk(&ctx, f, 1, false, LockType::Write, 1 << 40, 1 << 40, 0)
            .await,
        Err(MetaError::WouldBlock)
    ));
    a.setlk(&ctx, f, 1, false, LockType::Write, 20, 99, 0)
        .await
        .unwrap();

    // Closing A's session takes A's rows and leaves the juicefs client's.
    a.close_session().await.unwrap();
    assert_eq!(flock_rows(&raw, f), vec![(999, 5209190571182447507, 82)]);
    assert_eq!(plock_rows(&raw, f).len(), 1);
}
