//! Checkpoints of a whole volume, kept in its own bucket: create, list, delete, and restore
//! in place. The rules every engine shares are [`meta_api::checkpoint`]'s (read its design
//! first); this module keeps the objects and runs the steps.
//!
//! # In the bucket
//!
//! Checkpoint `NAME` is three objects under the volume's prefix, written in this order:
//!
//! | key | what |
//! |---|---|
//! | `checkpoints/NAME/slices` | every slice the checkpoint refers to, once: 12 bytes each, id (`u64`) and size (`u32`), little-endian |
//! | `checkpoints/NAME/meta.json.gz` | the metadata: a dump in JuiceFS's format ([`meta_api::dump`]), gzip-compressed |
//! | `checkpoints/NAME/info.json` | written last, so a checkpoint without it is incomplete: name, time, entries, slices, sizes |
//!
//! # Steps
//!
//! - **Create** ([`Vfs::create_checkpoint`]): writes back this client's open files, dumps
//!   the metadata collecting its slices, writes the slice list, holds each slice
//!   ([`MetaEngine::hold_slices`], one page per transaction), checks that every slice is
//!   still referenced by the volume (else a delete or a compaction ran under the dump: the
//!   holds are given back and the dump is taken again, three times at most), then writes
//!   the dump and the info. A crash before the info leaves an incomplete checkpoint whose
//!   holds may or may not have been taken: they are never given back (their objects are
//!   kept, which costs space, never data); [`Vfs::delete_checkpoint`] removes its objects.
//! - **Delete**: removes the info first (the checkpoint is gone from then on), gives the
//!   holds back and deletes the objects of the slices left with no reference, then the
//!   slice list and the dump. A crash after the info went keeps the holds (space, never
//!   data).
//! - **Restore** ([`restore_checkpoint`], with no client connected): refuses while another
//!   client has a live session (`EBUSY`), marks the setting, wipes the engine, loads the
//!   dump keeping the volume's setting and never lowering a counter, with the holds of
//!   every complete checkpoint written beside the dump's references (a slice only other
//!   checkpoints refer to gets a record of its holds alone), and clears the mark. Killed
//!   at any step, the volume refuses to open (`EBUSY`, naming the checkpoint) until the
//!   restore is run again.
//!   What the volume held that the checkpoint does not is dropped from the metadata; its
//!   objects are left to `gc --delete`, which removes them as leaked.
//! - **gc** ([`Vfs::gc`]) counts the objects of every checkpoint's slices as valid.
//!
//! JuiceFS clients know nothing of checkpoints: `juicefs gc --delete` on a volume with
//! checkpoints deletes the objects only a checkpoint refers to. Use this library's gc.

use std::collections::HashMap;
use std::io::Write as _;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chunkstore::{ChunkStore, ChunkStoreExt, StoreError};
use meta_api::checkpoint::{self as rules, HOLD_PAGE};
use meta_api::dump::{DumpOptions, LoadSummary};
use meta_api::{MetaEngine, MetaError, Slice, Timestamp};
use serde::{Deserialize, Serialize};

use crate::{Result, Vfs, VfsError};

/// Where checkpoints live under the volume's prefix.
pub const CHECKPOINT_DIR: &str = "checkpoints/";
/// Attempts at a consistent checkpoint of a volume other clients are changing.
const ATTEMPTS: usize = 3;

/// One checkpoint in the bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointInfo {
    /// Its name.
    pub name: String,
    /// When it was made, Unix seconds.
    pub created: i64,
    /// Entries of the dump (the root, the trash and every name below them).
    pub entries: u64,
    /// Slices it holds.
    pub slices: u64,
    /// Bytes of the compressed dump.
    pub size: u64,
    /// Whether it is complete (its info was written); an incomplete one is what a crash
    /// during a create or a delete left, and can only be deleted.
    #[serde(skip)]
    pub complete: bool,
}

/// What a restore did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RestoredCheckpoint {
    /// The checkpoint restored.
    pub checkpoint: CheckpointInfo,
    /// What the load wrote.
    pub loaded: LoadSummary,
    /// How long the whole restore took.
    pub took: Duration,
}

fn key(name: &str, what: &str) -> String {
    format!("{CHECKPOINT_DIR}{name}/{what}")
}

/// The slice list's encoding: 12 bytes per slice.
fn encode_slices(slices: &[(u64, u32)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(slices.len() * 12);
    for &(id, size) in slices {
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
    }
    out
}

fn decode_slices(name: &str, b: &[u8]) -> Result<Vec<(u64, u32)>> {
    if !b.len().is_multiple_of(12) {
        return Err(MetaError::Corrupt(format!(
            "checkpoint {name}: a slice list of {} bytes is not 12-byte records",
            b.len()
        ))
        .into());
    }
    Ok(b.chunks_exact(12)
        .map(|r| {
            let mut id = [0u8; 8];
            id.copy_from_slice(&r[..8]);
            let mut size = [0u8; 4];
            size.copy_from_slice(&r[8..]);
            (u64::from_le_bytes(id), u32::from_le_bytes(size))
        })
        .collect())
}

/// An object, or `None` when it does not exist.
async fn get_opt(store: &dyn ChunkStore, key: &str) -> Result<Option<Bytes>> {
    match store.get(key).await {
        Ok(b) => Ok(Some(b)),
        Err(StoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The slice list of checkpoint `name`, or `None` when it has none (a create cut short
/// before it, or a delete after it).
async fn slices_of(store: &dyn ChunkStore, name: &str) -> Result<Option<Vec<(u64, u32)>>> {
    match get_opt(store, &key(name, "slices")).await? {
        Some(b) => decode_slices(name, &b).map(Some),
        None => Ok(None),
    }
}

/// Deletes an object that may be gone already.
async fn delete_opt(store: &dyn ChunkStore, key: &str) -> Result<()> {
    match store.delete(key).await {
        Ok(()) | Err(StoreError::NotFound(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The checkpoints under `store` (a volume's prefixed store), complete or not, by name.
pub async fn list(store: &dyn ChunkStore) -> Result<Vec<CheckpointInfo>> {
    let mut by_name: std::collections::BTreeMap<String, CheckpointInfo> = Default::default();
    for o in store.list_all(CHECKPOINT_DIR).await? {
        let Some(rest) = o.key.strip_prefix(CHECKPOINT_DIR) else {
            continue;
        };
        let Some((name, what)) = rest.split_once('/') else {
            continue;
        };
        if rules::validate_name(name).is_err() {
            continue;
        }
        let e = by_name
            .entry(name.to_string())
            .or_insert_with(|| CheckpointInfo {
                name: name.to_string(),
                created: 0,
                entries: 0,
                slices: 0,
                size: 0,
                complete: false,
            });
        if what == "info.json" {
            let body = store.get(&o.key).await?;
            let mut info: CheckpointInfo = serde_json::from_slice(&body)
                .map_err(|e| MetaError::Corrupt(format!("checkpoint {name}: info.json: {e}")))?;
            info.complete = true;
            *e = info;
        }
    }
    Ok(by_name.into_values().collect())
}

/// The slices every checkpoint under `store` holds (complete or not), for gc.
pub(crate) async fn held_slices(store: &dyn ChunkStore) -> Result<HashMap<u64, u32>> {
    let mut held = HashMap::new();
    for c in list(store).await? {
        if let Some(slices) = slices_of(store, &c.name).await? {
            held.extend(slices);
        }
    }
    Ok(held)
}

/// Gives back one hold on each of `slices`, a page per transaction; returns the slices
/// left with no reference (pending: their objects are for the caller to delete).
async fn release(meta: &dyn MetaEngine, slices: &[(u64, u32)]) -> Result<Vec<Slice>> {
    let mut freed = Vec::new();
    for page in slices.chunks(HOLD_PAGE) {
        freed.extend(meta.hold_slices(page, -1).await?);
    }
    Ok(freed)
}

/// Takes one hold on each of `slices`, a page per transaction.
async fn hold(meta: &dyn MetaEngine, slices: &[(u64, u32)]) -> Result<()> {
    for page in slices.chunks(HOLD_PAGE) {
        meta.hold_slices(page, 1).await?;
    }
    Ok(())
}

/// Whether every slice of `slices` is still referenced by a chunk of the volume (or kept
/// for its trash): then none can have lost its objects while it was unheld.
async fn all_referenced(meta: &dyn MetaEngine, slices: &[(u64, u32)]) -> Result<bool> {
    let listing = meta.list_slices().await?;
    let mut live: std::collections::HashSet<(u64, u32)> = listing
        .records
        .iter()
        .map(|(_, _, s)| (s.id, s.size))
        .collect();
    live.extend(listing.delayed.iter().copied());
    Ok(slices.iter().all(|s| live.contains(s)))
}

impl Vfs {
    /// Makes checkpoint `name` of the whole volume in its bucket (what `tessera checkpoint
    /// create` runs): see the [module docs](crate::checkpoint). What this client wrote to
    /// open files is written back first. `Exists` when the name is taken, `EBUSY` when the
    /// volume kept changing under three attempts.
    pub async fn create_checkpoint(&self, name: &str) -> Result<CheckpointInfo> {
        self.check_open()?;
        rules::validate_name(name)?;
        let store = &**self.volume_store();
        if list(store).await?.iter().any(|c| c.name == name) {
            return Err(MetaError::Exists.into());
        }
        self.flush_everything().await?;
        let meta = &**self.meta();
        for _ in 0..ATTEMPTS {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            let (summary, slices) =
                meta_api::dump::dump_with_slices(meta, &mut gz, &DumpOptions::default()).await?;
            gz.flush()?;
            let body = gz.finish()?;
            store
                .put(&key(name, "slices"), Bytes::from(encode_slices(&slices)))
                .await?;
            hold(meta, &slices).await?;
            if !all_referenced(meta, &slices).await? {
                tracing::info!(
                    checkpoint = name,
                    "the volume changed under the dump; again"
                );
                let freed = release(meta, &slices).await?;
                self.delete_freed(&freed).await?;
                delete_opt(store, &key(name, "slices")).await?;
                continue;
            }
            let info = CheckpointInfo {
                name: name.to_string(),
                created: Timestamp::now().sec,
                entries: summary.entries,
                slices: slices.len() as u64,
                size: body.len() as u64,
                complete: true,
            };
            store
                .put(&key(name, "meta.json.gz"), Bytes::from(body))
                .await?;
            let json = serde_json::to_vec(&info).map_err(|e| VfsError::Io(e.into()))?;
            store
                .put(&key(name, "info.json"), Bytes::from(json))
                .await?;
            tracing::info!(
                checkpoint = name,
                entries = info.entries,
                slices = info.slices,
                bytes = info.size,
                "made a checkpoint"
            );
            return Ok(info);
        }
        Err(MetaError::Busy(format!(
            "the volume kept changing while checkpoint {name:?} was taken; try again"
        ))
        .into())
    }

    /// The checkpoints in the volume's bucket, by name (incomplete ones included, marked).
    pub async fn list_checkpoints(&self) -> Result<Vec<CheckpointInfo>> {
        self.check_open()?;
        list(&**self.volume_store()).await
    }

    /// Deletes checkpoint `name` (what `tessera checkpoint delete` runs): its holds are
    /// given back, and the objects of the slices nothing else refers to are deleted.
    /// [`VfsError::NoCheckpoint`] when there is no such checkpoint.
    pub async fn delete_checkpoint(&self, name: &str) -> Result<CheckpointInfo> {
        self.check_open()?;
        rules::validate_name(name)?;
        let store = &**self.volume_store();
        let Some(found) = list(store).await?.into_iter().find(|c| c.name == name) else {
            return Err(VfsError::NoCheckpoint(name.to_string()));
        };
        if found.complete {
            // Gone from here on: a crash below keeps the holds (space, never data).
            delete_opt(store, &key(name, "info.json")).await?;
            if let Some(slices) = slices_of(store, name).await? {
                let freed = release(&**self.meta(), &slices).await?;
                self.delete_freed(&freed).await?;
            }
        }
        delete_opt(store, &key(name, "meta.json.gz")).await?;
        delete_opt(store, &key(name, "slices")).await?;
        tracing::info!(checkpoint = name, "deleted a checkpoint");
        Ok(found)
    }

    /// Deletes the objects of slices left with no reference and forgets them (the
    /// pending-slice step of the purge).
    async fn delete_freed(&self, freed: &[Slice]) -> Result<()> {
        if !freed.is_empty() {
            self.upkeep().finish_pending(4).await?;
        }
        Ok(())
    }
}

/// Restores checkpoint `name` of the volume at `meta_url` in place (what `tessera
/// checkpoint restore` runs), with no client connected (`EBUSY` otherwise): see the
/// [module docs](crate::checkpoint). A restore killed half-way is finished by running it
/// again; until then the volume does not open. Open the volume afterwards.
pub async fn restore_checkpoint(meta_url: &str, name: &str) -> Result<RestoredCheckpoint> {
    let started = Instant::now();
    rules::validate_name(name)?;
    let meta = crate::connect_meta(meta_url).await?;
    let marked = meta.load().await?;
    let format = rules::without_marker(&marked);
    format.check_supported()?;
    let store = crate::open_store(&format).await?;
    let all = list(&*store).await?;
    let Some(checkpoint) = all.iter().find(|c| c.name == name && c.complete).cloned() else {
        return Err(VfsError::NoCheckpoint(name.to_string()));
    };
    let body = store.get(&key(name, "meta.json.gz")).await?;
    // Every complete checkpoint's holds, read before anything is changed.
    let mut holds = meta_api::dump::Holds::new();
    for c in all.iter().filter(|c| c.complete) {
        if let Some(slices) = slices_of(&*store, &c.name).await? {
            for (id, size) in slices {
                holds.entry(id).or_insert((size, 0)).1 += 1;
            }
        }
    }
    refuse_live_sessions(&*meta).await?;
    let with_marker = rules::with_marker(&format, name);
    meta.init(&with_marker, true).await?;
    if let Err(e) = refuse_live_sessions(&*meta).await {
        // Someone connected before the mark was in: leave the volume as it was.
        if rules::restoring(&marked).is_none() {
            meta.init(&format, true).await?;
        }
        return Err(e);
    }
    let floor = meta.counters().await?;
    meta.wipe().await?;
    let input = flate2::read::MultiGzDecoder::new(std::io::Cursor::new(body));
    let loaded = meta_api::dump::load_restoring(&*meta, input, with_marker, floor, holds).await?;
    meta.init(&format, true).await?;
    meta.sync().await?;
    tracing::info!(
        checkpoint = name,
        inodes = loaded.inodes,
        took_ms = started.elapsed().as_millis() as u64,
        "restored a checkpoint"
    );
    Ok(RestoredCheckpoint {
        checkpoint,
        loaded,
        took: started.elapsed(),
    })
}

/// `EBUSY` while another client has a live session (a restore rewrites the volume under
/// every client).
async fn refuse_live_sessions(meta: &dyn MetaEngine) -> Result<()> {
    let now = Timestamp::now().sec;
    let live = meta
        .list_sessions()
        .await?
        .into_iter()
        .filter(|s| s.expire >= now)
        .count();
    if live > 0 {
        return Err(MetaError::Busy(format!(
            "{live} client(s) have the volume open; close them (or wait for their sessions \
             to expire) before restoring a checkpoint"
        ))
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_lists_round_trip_and_refuse_torn_records() {
        let s = vec![(1u64, 4096u32), (u64::MAX, u32::MAX)];
        assert_eq!(decode_slices("c", &encode_slices(&s)).ok(), Some(s));
        assert!(decode_slices("c", &[0u8; 13]).is_err());
    }
}
