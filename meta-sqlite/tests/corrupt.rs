//! Rows no writer makes are errors when read, never arithmetic that wraps: chunk records
//! past the end of their chunk or of their slice.

#![allow(clippy::unwrap_used)] // Tests: a failure is the test's failure.

#[path = "support/volume.rs"]
mod support;

use meta_api::{Context, FileType, MetaEngine, MetaError, Slice, CHUNK_SIZE, ROOT_INO};
use support::{test_format, Volume};

#[tokio::test]
async fn impossible_chunk_records_are_corrupt() {
    let v = Volume::formatted(&test_format()).await;
    let m = v.client().await;
    let f = m
        .mknod(
            &Context::root(),
            ROOT_INO,
            b"f",
            FileType::Regular,
            0o644,
            0,
        )
        .await
        .unwrap()
        .ino;
    let past_chunk = Slice {
        pos: (CHUNK_SIZE - 10) as u32,
        id: 7,
        size: 20,
        off: 0,
        len: 20,
    };
    let past_slice = Slice {
        pos: 0,
        id: 8,
        size: 20,
        off: 15,
        len: 10,
    };
    for (indx, bad) in [(0u32, past_chunk), (1, past_slice)] {
        v.raw()
            .execute(
                "INSERT INTO jfs_chunk (inode, indx, slices) VALUES (?1, ?2, ?3)",
                rusqlite::params![f as i64, indx, Slice::encode_all(&[bad])],
            )
            .unwrap();
        let e = m.read_chunk(f, indx).await.unwrap_err();
        assert!(
            matches!(&e, MetaError::Corrupt(m) if m.contains(&format!("chunk {indx} of inode {f}"))),
            "{e}"
        );
    }
}
