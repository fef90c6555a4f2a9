//! Rows no writer makes are errors when read, never passed on: entry names no client can
//! create, chunk records past the end of their chunk or of their slice
//! ([`meta_api::testkit::corrupt`], planted here as raw `jfs_` rows).

#![allow(clippy::unwrap_used)] // Tests: a failure is the test's failure.

#[path = "support/volume.rs"]
mod support;

use async_trait::async_trait;
use meta_api::testkit::corrupt::{self, Plant};
use meta_api::{FileType, Ino, Slice};
use support::{test_format, Volume};

struct Rows<'a>(&'a Volume);

#[async_trait]
impl Plant for Rows<'_> {
    async fn entry(&self, dir: Ino, name: &[u8], ino: Ino, typ: FileType) {
        self.0
            .raw()
            .execute(
                "INSERT INTO jfs_edge (parent, name, inode, type) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![dir as i64, name, ino as i64, typ as u8],
            )
            .unwrap();
    }
    async fn chunk(&self, ino: Ino, indx: u32, records: &[Slice]) {
        self.0
            .raw()
            .execute(
                "INSERT OR REPLACE INTO jfs_chunk (inode, indx, slices) VALUES (?1, ?2, ?3)",
                rusqlite::params![ino as i64, indx, Slice::encode_all(records)],
            )
            .unwrap();
    }
}

#[tokio::test]
async fn impossible_names_are_corrupt() {
    let v = Volume::formatted(&test_format()).await;
    let m = v.client().await;
    corrupt::impossible_names_are_corrupt(&m, &Rows(&v), &corrupt::impossible_names()).await;
}

#[tokio::test]
async fn impossible_chunk_records_are_corrupt() {
    let v = Volume::formatted(&test_format()).await;
    let m = v.client().await;
    corrupt::impossible_chunk_records_are_corrupt(&m, &Rows(&v)).await;
}
