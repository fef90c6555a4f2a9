//! Inode numbers and slice ids, reserved from the volume's counters in batches.
//!
//! JuiceFS's counters hold the next value nobody has been given: adding a batch `n` to
//! `nextInode` and reading back `v` hands this client `v - n .. v`. Every client of the
//! volume (this one, other processes, the real juicefs client) reserves the same way, so
//! ranges never overlap and ids are never reused.

use meta_api::{Result, INODE_BATCH, SLICE_ID_BATCH};
use sqlx::Row;

use crate::txn::{db_err, Db};

/// A reserved range `next..end` of ids, handed out one at a time.
#[derive(Debug, Default)]
pub(crate) struct IdRange {
    next: u64,
    end: u64,
}

/// The two id pools of a client.
#[derive(Debug, Default)]
pub(crate) struct IdPools {
    inodes: tokio::sync::Mutex<IdRange>,
    slices: tokio::sync::Mutex<IdRange>,
}

impl IdPools {
    /// The next free inode number (never 0 or 1, the root).
    pub(crate) async fn next_inode(&self, db: &Db) -> Result<u64> {
        let mut range = self.inodes.lock().await;
        loop {
            if range.next < range.end {
                let n = range.next;
                range.next += 1;
                if n > 1 {
                    return Ok(n);
                }
                continue;
            }
            *range = reserve(db, "nextInode", INODE_BATCH).await?;
        }
    }

    /// The next free slice id (never 0, which means a hole).
    pub(crate) async fn next_slice(&self, db: &Db) -> Result<u64> {
        let mut range = self.slices.lock().await;
        loop {
            if range.next < range.end {
                let n = range.next;
                range.next += 1;
                if n > 0 {
                    return Ok(n);
                }
                continue;
            }
            *range = reserve(db, "nextChunk", SLICE_ID_BATCH).await?;
        }
    }
}

/// Adds `batch` to counter `name` in its own transaction and returns the range reserved.
async fn reserve(db: &Db, name: &'static str, batch: u64) -> Result<IdRange> {
    let end = db
        .txn(|conn, _| {
            Box::pin(async move {
                let row = sqlx::query(
                    "INSERT INTO jfs_counter (name, value) VALUES (?1, ?2) ON CONFLICT (name) \
                     DO UPDATE SET value = value + ?2 RETURNING value",
                )
                .bind(name)
                .bind(batch as i64)
                .fetch_one(&mut *conn)
                .await
                .map_err(db_err)?;
                row.try_get::<i64, _>(0).map_err(db_err)
            })
        })
        .await? as u64;
    Ok(IdRange {
        next: end.saturating_sub(batch),
        end,
    })
}
