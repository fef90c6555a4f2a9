//! Metadata backups in the volume's own bucket, and restoring a volume from its bucket
//! alone: the durable state of a volume is its bucket URL.
//!
//! # Backups
//!
//! A backup is a [dump](meta_api::dump) of the whole volume, gzip-compressed, stored as
//! `meta/dump-YYYY-MM-DD-HHMMSS.json.gz` (UTC) under the volume's prefix in its bucket —
//! JuiceFS's name and layout, so `juicefs load` reads our backups and we restore from
//! theirs. The secret key and session token are written as `removed`.
//!
//! - **When**: every [`VfsOptions::backup_interval`](crate::VfsOptions::backup_interval)
//!   (default one hour), on one client of the volume. Each client checks about ten times
//!   per interval (with jitter); the backup is due when the root's `lastBackup` extended
//!   attribute (an RFC 3339 time, JuiceFS's election) is at least an interval old. Among
//!   this library's clients the election is also a transaction on the `lastBackupMeta`
//!   counter ([`BACKUP_COUNTER`]), so two of them never back up the same interval; a
//!   juicefs client mounted with `--backup-meta` reads and sets the same attribute.
//! - **No size cut-off**: JuiceFS skips backups above one million inodes; the dump here
//!   streams, so a backup's memory is the compressed dump (a few dozen bytes per inode),
//!   which is uploaded as one object.
//! - **Rotation** after each successful backup (JuiceFS's policy, so both clients keep the
//!   same set): every backup of the last two days; then the oldest of each day up to two
//!   weeks, of each week up to about two months, of each 30 days up to two years; nothing
//!   older. Objects in `meta/` whose name is not a backup's are left alone.
//! - **Reported** by a log line per backup (key, entries, bytes, time taken; a warning
//!   when it fails) and the gauges `tessera_last_successful_backup` (Unix time) and
//!   `tessera_last_backup_duration_seconds`, and the counter
//!   `tessera_backup_failures_total`, through the [`metrics`] facade (any recorder the
//!   embedding program installs collects them).
//!
//! # Restore from the bucket
//!
//! [`restore_volume`] (`tessera restore-volume STORAGE-URL --to META-URL`) lists the
//! backups under the volume's prefix, loads the newest (or a named one) into an empty
//! metadata engine, points the restored settings at the bucket it was found in, and opens
//! the volume. The storage URL is the volume's place in its bucket: the bucket URL
//! followed by the volume's name (`/var/jfs/myvol`, `file:///var/jfs/myvol`,
//! `s3://bucket/myvol`, `http://127.0.0.1:9000/bucket/myvol`).
//!
//! **What a restore loses**: every metadata change after the backup it loads — files
//! created, written, renamed or deleted since then are as they were at the backup. Data
//! blocks are immutable and never rewritten, so the restored files' bytes are exactly
//! those of the backup's time *unless their objects were deleted since*: a file deleted
//! and purged after the backup, a slice compacted away, a truncated tail. With the trash
//! on (JuiceFS's default is one day) deleted files and compacted slices keep their objects
//! for the trash days, so a backup younger than that restores whole; with it off, such
//! files come back with missing blocks. [`RestoreOptions::check_objects`] (on by default)
//! checks every block of the restored volume and reports the files that lost some, and
//! `tessera gc --delete` later removes the objects written after the backup that nothing
//! references. Restore into a fresh engine and keep the old one until the new is checked.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chunkstore::{ChunkStore, ChunkStoreExt, StoreError};
use meta_api::dump::{DumpOptions, LoadSummary};
use meta_api::{Context, Format, MetaEngine, MetaError, ROOT_INO};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

use crate::upkeep::{FsckOptions, FsckReport, Progress};
use crate::{Result, Vfs, VfsError, VfsOptions};

/// The root's extended attribute that elects the backup client: the time of the last
/// backup, RFC 3339 (JuiceFS's `lastBackup`).
pub const LAST_BACKUP_XATTR: &[u8] = b"lastBackup";
/// The counter that elects the backup client among this library's clients (see the
/// [module docs](self)).
pub const BACKUP_COUNTER: &str = meta_api::upkeep::BACKUP_META;
/// Where backups live under the volume's prefix.
pub const BACKUP_DIR: &str = "meta/";
/// The default interval between backups (JuiceFS's `--backup-meta` default).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(3600);

/// `dump-2006-01-02-150405.json.gz`: the length of every backup's name.
const NAME_LEN: usize = 30;
const NAME_PREFIX: &str = "dump-";
const NAME_SUFFIX: &str = ".json.gz";
/// The time in a backup's name (UTC).
const NAME_TIME: &[time::format_description::BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]-[hour][minute][second]");
/// The fewest checks per interval a client makes, and the shortest pause between two.
const CHECKS_PER_INTERVAL: u32 = 10;
const MIN_CHECK: Duration = Duration::from_millis(50);
/// Rotation horizons, in days.
const KEEP_ALL_DAYS: i64 = 2;
const DAILY_UNTIL: i64 = 14;
const WEEKLY_UNTIL: i64 = 60;

/// One backup in the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    /// Its key under the volume's prefix (`meta/dump-….json.gz`).
    pub key: String,
    /// When it was taken, Unix seconds (from its name).
    pub time: i64,
    /// Its size in bytes (compressed).
    pub size: u64,
}

/// What one backup did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupReport {
    /// The backup written.
    pub backup: BackupInfo,
    /// Entries dumped.
    pub entries: u64,
    /// Bytes of JSON before compression.
    pub json_bytes: u64,
    /// How long the dump and the upload took.
    pub took: Duration,
    /// Older backups removed by the rotation.
    pub removed: Vec<String>,
}

/// The name of the backup taken at `at`, under [`BACKUP_DIR`].
pub fn backup_key(at: OffsetDateTime) -> String {
    let utc = at.to_offset(time::UtcOffset::UTC);
    // Formatting a valid time with this description cannot fail; the fallback never shows.
    let stamp = utc.format(NAME_TIME).unwrap_or_default();
    format!("{BACKUP_DIR}{NAME_PREFIX}{stamp}{NAME_SUFFIX}")
}

/// The time in a backup's file name (`dump-YYYY-MM-DD-HHMMSS.json.gz`, without the
/// directory), `None` for any other name.
pub fn backup_time(name: &str) -> Option<OffsetDateTime> {
    if name.len() != NAME_LEN {
        return None;
    }
    let stamp = name.strip_prefix(NAME_PREFIX)?.strip_suffix(NAME_SUFFIX)?;
    PrimitiveDateTime::parse(stamp, NAME_TIME)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

/// The backups (file names, as [`backup_time`] reads them) the rotation removes at `now`;
/// names that are not backups' are never removed. See the [module docs](self).
pub fn expired_backups(names: &[String], now: OffsetDateTime) -> Vec<String> {
    let days = time::Duration::days;
    let now = now.to_offset(time::UtcOffset::UTC);
    let cutoff = now.replace_year(now.year() - 2).unwrap_or(now - days(730));
    let mut dated: Vec<(OffsetDateTime, &String)> = names
        .iter()
        .filter_map(|n| backup_time(n).map(|t| (t, n)))
        .collect();
    // Newest first.
    dated.sort_by(|a, b| b.cmp(a));
    let mut expired = Vec::new();
    // The window being filled: backups older than `edge` and newer than the one before.
    let mut age = KEEP_ALL_DAYS;
    let mut edge = now - days(KEEP_ALL_DAYS);
    let mut window: Vec<&String> = Vec::new();
    let drop_all_but_oldest = |window: &mut Vec<&String>, expired: &mut Vec<String>| {
        if let Some((_oldest, newer)) = window.split_last() {
            expired.extend(newer.iter().map(|n| (*n).clone()));
        }
        window.clear();
    };
    for (i, &(t, name)) in dated.iter().enumerate() {
        if t < cutoff {
            expired.extend(dated[i..].iter().map(|(_, n)| (*n).clone()));
            break;
        }
        if t >= now - days(KEEP_ALL_DAYS) {
            continue;
        }
        if t < edge {
            drop_all_but_oldest(&mut window, &mut expired);
            while t < edge {
                let step = if age < DAILY_UNTIL {
                    1
                } else if age < WEEKLY_UNTIL {
                    7
                } else {
                    30
                };
                age += step;
                edge -= days(step);
            }
        }
        window.push(name);
    }
    drop_all_but_oldest(&mut window, &mut expired);
    expired
}

/// What backs a volume's metadata up into its bucket: the engine, the volume's store
/// (below the block cache: a backup is no block), and how to dump.
pub(crate) struct Backups {
    meta: Arc<dyn MetaEngine>,
    store: Arc<dyn ChunkStore>,
    skip_trash: bool,
    /// One backup at a time in a client.
    running: tokio::sync::Mutex<()>,
}

impl Backups {
    pub(crate) fn new(
        meta: Arc<dyn MetaEngine>,
        store: Arc<dyn ChunkStore>,
        skip_trash: bool,
    ) -> Backups {
        Backups {
            meta,
            store,
            skip_trash,
            running: tokio::sync::Mutex::new(()),
        }
    }

    /// The backups in the bucket, oldest first.
    pub(crate) async fn list(&self) -> Result<Vec<BackupInfo>> {
        list_backups(&*self.store).await
    }

    /// Backs up now if this client wins the election of a backup due at `interval` (see
    /// the [module docs](self)); `None` when no backup was due or another client took it.
    pub(crate) async fn run_if_due(&self, interval: Duration) -> Result<Option<BackupReport>> {
        let now = OffsetDateTime::now_utc();
        match self.elected(now, interval).await {
            Ok(true) => self.run(now).await.map(Some),
            Ok(false) => Ok(None),
            Err(e) => {
                tracing::warn!(error = %e, "electing the metadata backup client failed");
                Err(e)
            }
        }
    }

    /// Whether a backup is due at `now` and this client is the one to take it.
    async fn elected(&self, now: OffsetDateTime, interval: Duration) -> Result<bool> {
        if let Some(last) = self.last_backup().await? {
            let since = now - last;
            if since >= time::Duration::ZERO && since < interval {
                return Ok(false);
            }
        }
        let every = interval.as_secs().saturating_sub(1);
        let secs = now.unix_timestamp().max(0).unsigned_abs();
        Ok(self.meta.claim_job(BACKUP_COUNTER, secs, every).await?)
    }

    /// Backs up now, whatever the interval (telling this library's other clients through
    /// the election counter; juicefs's read the attribute [`Backups::run`] sets).
    pub(crate) async fn run_now(&self) -> Result<BackupReport> {
        let now = OffsetDateTime::now_utc();
        let secs = now.unix_timestamp().max(0).unsigned_abs();
        self.meta.claim_job(BACKUP_COUNTER, secs, 0).await?;
        self.run(now).await
    }

    /// The time the root's `lastBackup` attribute holds (`None` when it has none; an
    /// unreadable value counts as none, so that it is overwritten rather than blocking
    /// backups forever).
    async fn last_backup(&self) -> Result<Option<OffsetDateTime>> {
        match self.meta.getxattr(ROOT_INO, LAST_BACKUP_XATTR).await {
            Ok(v) => {
                let parsed = std::str::from_utf8(&v)
                    .ok()
                    .and_then(|s| OffsetDateTime::parse(s.trim(), &Rfc3339).ok());
                if parsed.is_none() {
                    tracing::warn!(value = %String::from_utf8_lossy(&v), "the root's lastBackup attribute is not an RFC 3339 time; backing up");
                }
                Ok(parsed)
            }
            Err(MetaError::NoAttr) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Backs up now (taken at `now`): marks the root's `lastBackup`, dumps, uploads, then
    /// rotates. Logs and reports the outcome either way.
    pub(crate) async fn run(&self, now: OffsetDateTime) -> Result<BackupReport> {
        let _one = self.running.lock().await;
        let started = Instant::now();
        let result = self.dump_and_upload(now, started).await;
        metrics::gauge!("tessera_last_backup_duration_seconds")
            .set(started.elapsed().as_secs_f64());
        match &result {
            Ok(r) => {
                metrics::gauge!("tessera_last_successful_backup").set(now.unix_timestamp() as f64);
                tracing::info!(
                    key = %r.backup.key,
                    entries = r.entries,
                    bytes = r.backup.size,
                    json_bytes = r.json_bytes,
                    took_ms = r.took.as_millis() as u64,
                    removed = r.removed.len(),
                    "backed up the metadata"
                );
            }
            Err(e) => {
                metrics::counter!("tessera_backup_failures_total").increment(1);
                tracing::warn!(error = %e, "backing up the metadata failed");
            }
        }
        result
    }

    async fn dump_and_upload(&self, now: OffsetDateTime, started: Instant) -> Result<BackupReport> {
        let stamp = now
            .to_offset(time::UtcOffset::UTC)
            .replace_nanosecond(0)
            .unwrap_or(now)
            .format(&Rfc3339)
            .map_err(|_| VfsError::InvalidArgument("the clock is outside RFC 3339's years"))?;
        self.meta
            .setxattr(
                &Context::root(),
                ROOT_INO,
                LAST_BACKUP_XATTR,
                stamp.as_bytes(),
                0,
            )
            .await?;
        let opts = DumpOptions::default().skip_trash(self.skip_trash);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let summary = meta_api::dump::dump(&*self.meta, &mut gz, &opts).await?;
        gz.flush()?;
        let body = gz.finish()?;
        let key = backup_key(now);
        let size = body.len() as u64;
        self.store.put(&key, Bytes::from(body)).await?;
        let took = started.elapsed();
        let removed = self.rotate(now).await;
        Ok(BackupReport {
            backup: BackupInfo {
                key,
                time: now.unix_timestamp(),
                size,
            },
            entries: summary.entries,
            json_bytes: summary.bytes,
            took,
            removed,
        })
    }

    /// Removes the backups the rotation expires at `now`; failures are logged (the next
    /// backup's rotation tries again).
    async fn rotate(&self, now: OffsetDateTime) -> Vec<String> {
        let listed = match self.store.list_all(BACKUP_DIR).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "listing the metadata backups failed; none removed");
                return Vec::new();
            }
        };
        let names: Vec<String> = listed
            .iter()
            .filter_map(|o| o.key.strip_prefix(BACKUP_DIR))
            .map(str::to_owned)
            .collect();
        let mut removed = Vec::new();
        for name in expired_backups(&names, now) {
            let key = format!("{BACKUP_DIR}{name}");
            match self.store.delete(&key).await {
                Ok(()) => removed.push(key),
                Err(e) => {
                    tracing::warn!(%key, error = %e, "removing an old metadata backup failed")
                }
            }
        }
        removed
    }
}

/// The backups under `store` (a volume's prefixed store), oldest first.
async fn list_backups(store: &dyn ChunkStore) -> Result<Vec<BackupInfo>> {
    let mut out: Vec<BackupInfo> = store
        .list_all(BACKUP_DIR)
        .await?
        .into_iter()
        .filter_map(|o| {
            let t = backup_time(o.key.strip_prefix(BACKUP_DIR)?)?;
            Some(BackupInfo {
                key: o.key,
                time: t.unix_timestamp(),
                size: o.size,
            })
        })
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// How often a client checks whether a backup is due: a tenth of the interval, give or
/// take a tenth of that, so that clients started together do not ask together.
pub(crate) fn check_every(interval: Duration) -> Duration {
    let base = (interval / CHECKS_PER_INTERVAL).max(MIN_CHECK);
    // 0.9 .. 1.1 of the base.
    let f = 0.9 + (crate::jobs::random_u64() % 2001) as f64 / 10_000.0;
    base.mul_f64(f)
}

/// Where a volume lives in its bucket, as [`restore_volume`] reads it from a storage URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeLocation {
    /// The storage kind (`file`, `s3`).
    pub storage: String,
    /// The bucket URL as a volume's settings hold it (`/var/jfs/`, `s3://bucket`).
    pub bucket: String,
    /// The volume's name: its prefix in the bucket.
    pub name: String,
}

impl VolumeLocation {
    /// Reads a storage URL: the bucket URL followed by `/` and the volume's name
    /// (`/var/jfs/myvol`, `file:///var/jfs/myvol`, `s3://bucket/myvol`,
    /// `http://host:9000/bucket/myvol`).
    pub fn parse(url: &str) -> Result<VolumeLocation> {
        let bad = |reason: &'static str| VfsError::InvalidUrl {
            url: url.to_string(),
            reason,
        };
        let trimmed = url.trim_end_matches('/');
        let (scheme, rest) = match trimmed.split_once("://") {
            None => (None, trimmed),
            Some((s, r)) => (Some(s.to_ascii_lowercase()), r),
        };
        let storage = match scheme.as_deref() {
            None | Some("file") => "file",
            Some("s3" | "http" | "https") => "s3",
            Some(_) => {
                return Err(bad(
                    "expected a directory, file://, s3://, http:// or https://",
                ))
            }
        };
        let Some((bucket, name)) = rest.rsplit_once('/') else {
            return Err(bad("expected the bucket followed by /VOLUME-NAME"));
        };
        if name.is_empty() || name == "." || name == ".." {
            return Err(bad("the last part of the URL must be the volume's name"));
        }
        let bucket = match (storage, scheme) {
            // A file bucket is a directory; volumes store it with a trailing slash.
            ("file", _) if bucket.is_empty() => "/".to_string(),
            ("file", _) => format!("{bucket}/"),
            (_, Some(scheme)) if !bucket.is_empty() => format!("{scheme}://{bucket}"),
            _ => return Err(bad("expected the bucket before the volume's name")),
        };
        Ok(VolumeLocation {
            storage: storage.to_string(),
            bucket,
            name: name.to_string(),
        })
    }
}

/// How [`restore_volume`] restores.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RestoreOptions {
    /// The backup to load: its file name or key (`dump-….json.gz`); `None`: the newest.
    pub backup: Option<String>,
    /// The object store's access key for the restored volume (`None`: the backup's; both
    /// keys empty mean credentials from the environment).
    pub access_key: Option<String>,
    /// The object store's secret key. Backups hold none (it is written as `removed`):
    /// without one, the restored volume takes its credentials from the environment.
    pub secret_key: Option<String>,
    /// Check every block of the restored volume and report the files whose objects are
    /// gone (default true; costs a HEAD request per block).
    pub check_objects: bool,
    /// The options the restored volume is opened with.
    pub vfs: VfsOptions,
}

impl Default for RestoreOptions {
    fn default() -> RestoreOptions {
        RestoreOptions {
            backup: None,
            access_key: None,
            secret_key: None,
            check_objects: true,
            vfs: VfsOptions::default(),
        }
    }
}

impl RestoreOptions {
    /// Sets [`RestoreOptions::backup`].
    pub fn backup(mut self, name: impl Into<String>) -> Self {
        self.backup = Some(name.into());
        self
    }
    /// Sets the object store's keys ([`RestoreOptions::access_key`],
    /// [`RestoreOptions::secret_key`]).
    pub fn credentials(
        mut self,
        access_key: impl Into<String>,
        secret_key: impl Into<String>,
    ) -> Self {
        self.access_key = Some(access_key.into());
        self.secret_key = Some(secret_key.into());
        self
    }
    /// Sets [`RestoreOptions::check_objects`].
    pub fn check_objects(mut self, on: bool) -> Self {
        self.check_objects = on;
        self
    }
    /// Sets [`RestoreOptions::vfs`].
    pub fn vfs(mut self, opts: VfsOptions) -> Self {
        self.vfs = opts;
        self
    }
}

/// A volume restored from its bucket, open.
#[non_exhaustive]
pub struct RestoredVolume {
    /// The volume, open on the new metadata engine.
    pub vfs: Vfs,
    /// The backup loaded.
    pub backup: BackupInfo,
    /// What the load wrote.
    pub loaded: LoadSummary,
    /// With [`RestoreOptions::check_objects`]: the block check of the whole volume (files
    /// whose objects were deleted after the backup are its `broken` files).
    pub check: Option<FsckReport>,
}

impl std::fmt::Debug for RestoredVolume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestoredVolume")
            .field("backup", &self.backup)
            .field("loaded", &self.loaded)
            .field("check", &self.check)
            .finish_non_exhaustive()
    }
}

/// Restores the volume at `storage_url` (see [`VolumeLocation::parse`]) from the newest
/// metadata backup in its bucket (or [`RestoreOptions::backup`]) into the empty metadata
/// engine at `meta_url`, and opens it. See the [module docs](self) for what a restore can
/// lose.
///
/// Errors: [`VfsError::NoBackup`] when the bucket holds no (such) backup;
/// [`VfsError::BackupMismatch`] when the backup names another volume, or the bucket's
/// `juicefs_uuid` object another UUID; `EEXIST` when the engine is not empty; a corrupt
/// backup is `Corrupt`. In each case the engine holds no volume afterwards (a load stopped
/// half-way leaves rows but no settings, so it does not open, and a second restore into
/// it is refused: start again with a fresh engine).
///
/// ```no_run
/// # async fn demo() -> vfs_core::Result<()> {
/// use vfs_core::backup::{restore_volume, RestoreOptions};
/// let restored = restore_volume(
///     "/var/lib/myvol/blocks/myvol",
///     "sqlite3:///var/lib/myvol/restored.db",
///     RestoreOptions::default(),
/// )
/// .await?;
/// println!("restored {} from {}", restored.loaded.inodes, restored.backup.key);
/// restored.vfs.close().await?;
/// # Ok(())
/// # }
/// ```
pub async fn restore_volume(
    storage_url: &str,
    meta_url: &str,
    opts: RestoreOptions,
) -> Result<RestoredVolume> {
    let at = VolumeLocation::parse(storage_url)?;
    let mut probe = Format::new(&at.name, "", &at.storage, &at.bucket);
    if let Some(ak) = &opts.access_key {
        probe.access_key.clone_from(ak);
    }
    if let Some(sk) = &opts.secret_key {
        probe.secret_key.clone_from(sk);
    }
    let store = crate::open_store(&probe).await?;
    let backups = list_backups(&*store).await?;
    let chosen = match &opts.backup {
        None => backups.last().cloned(),
        Some(want) => {
            let key = if want.starts_with(BACKUP_DIR) {
                want.clone()
            } else {
                format!("{BACKUP_DIR}{want}")
            };
            backups.iter().find(|b| b.key == key).cloned()
        }
    };
    let Some(backup) = chosen else {
        return Err(VfsError::NoBackup(match &opts.backup {
            None => format!("nothing under {storage_url}/{BACKUP_DIR}"),
            Some(want) => format!("{want} is not under {storage_url}/{BACKUP_DIR}"),
        }));
    };
    let uuid = match store.get("juicefs_uuid").await {
        Ok(b) => Some(String::from_utf8_lossy(&b).trim().to_string()),
        Err(StoreError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let body = store.get(&backup.key).await?;
    let meta = crate::connect_meta(meta_url).await?;
    let input = flate2::read::MultiGzDecoder::new(std::io::Cursor::new(body));
    let mut refused: Option<VfsError> = None;
    let edit = |f: &mut Format| -> meta_api::Result<()> {
        point_at(f, &at, uuid.as_deref(), &opts).map_err(|e| {
            refused = Some(e);
            MetaError::InvalidArgument("the backup was refused")
        })
    };
    let loaded = meta_api::dump::load_edited(&*meta, input, edit).await;
    let loaded = match (loaded, refused) {
        (Ok(l), _) => l,
        (Err(_), Some(why)) => return Err(why),
        (Err(e), None) => return Err(e.into()),
    };
    drop(meta);
    let vfs = crate::VolumeBuilder::new(meta_url)
        .options(opts.vfs.clone())
        .open()
        .await?;
    let check = if opts.check_objects {
        let fsck = FsckOptions {
            recursive: true,
            ..FsckOptions::default()
        };
        Some(
            vfs.fsck(&fsck, (ROOT_INO, "/".into()), &Progress::default())
                .await?,
        )
    } else {
        None
    };
    Ok(RestoredVolume {
        vfs,
        backup,
        loaded,
        check,
    })
}

/// Points restored settings `f` at the bucket they were found in (`at`), after checking
/// they belong there; sets the credentials `opts` give.
fn point_at(
    f: &mut Format,
    at: &VolumeLocation,
    uuid: Option<&str>,
    opts: &RestoreOptions,
) -> Result<()> {
    if f.name != at.name {
        return Err(VfsError::BackupMismatch(format!(
            "the backup is of volume {:?}, found under {:?}",
            f.name, at.name
        )));
    }
    if let Some(uuid) = uuid.filter(|u| !u.is_empty()) {
        if f.uuid != uuid {
            return Err(VfsError::BackupMismatch(format!(
                "the backup is of UUID {}, the bucket's juicefs_uuid says {uuid}",
                f.uuid
            )));
        }
    }
    let s3_like = |s: &str| s == "s3" || s == "minio";
    if at.storage != f.storage && !(s3_like(&at.storage) && s3_like(&f.storage)) {
        f.storage.clone_from(&at.storage);
    }
    f.bucket.clone_from(&at.bucket);
    if at.storage == "file" {
        return Ok(());
    }
    let removed = |v: &str| v == meta_api::REMOVED_SECRET;
    if let Some(sk) = &opts.secret_key {
        if let Some(ak) = &opts.access_key {
            f.access_key.clone_from(ak);
        }
        f.secret_key.clone_from(sk);
        f.session_token.clear();
        f.extra.remove("KeyEncrypted");
        #[cfg(feature = "s3")]
        crate::secret::seal_secrets(f)?;
    } else if removed(&f.secret_key) || removed(&f.session_token) {
        // No secret to give: credentials come from the environment.
        f.access_key = opts.access_key.clone().unwrap_or_default();
        f.secret_key.clear();
        f.session_token.clear();
        f.extra.remove("KeyEncrypted");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> OffsetDateTime {
        OffsetDateTime::parse(s, &Rfc3339).unwrap()
    }

    fn name(t: OffsetDateTime) -> String {
        backup_key(t).strip_prefix(BACKUP_DIR).unwrap().to_string()
    }

    #[test]
    fn names_are_juicefs_names() {
        let t = at("2026-12-03T09:05:07+02:00");
        assert_eq!(backup_key(t), "meta/dump-2026-12-03-070507.json.gz");
        assert_eq!(name(t).len(), NAME_LEN);
        assert_eq!(backup_time(&name(t)), Some(t));
        for bad in [
            "dump-2026-12-03-070507.json",
            "dump-2026-13-03-070507.json.gz",
            "dumb-2026-12-03-070507.json.gz",
            "dump-2026-12-03-07050.json.gz",
            "x",
        ] {
            assert_eq!(backup_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn rotation_keeps_two_days_then_thins_out() {
        let now = at("2026-12-03T12:00:00Z");
        // Hourly backups for three years.
        let hour = time::Duration::hours(1);
        let names: Vec<String> = (0..3 * 365 * 24).map(|h| name(now - hour * h)).collect();
        let expired: std::collections::HashSet<String> =
            expired_backups(&names, now).into_iter().collect();
        let kept: Vec<OffsetDateTime> = names
            .iter()
            .filter(|n| !expired.contains(*n))
            .map(|n| backup_time(n).unwrap())
            .collect();
        let days = |t: OffsetDateTime| (now - t).whole_hours() as f64 / 24.0;
        // Every backup of the last two days.
        assert_eq!(kept.iter().filter(|t| days(**t) < 2.0).count(), 48);
        // Then about one a day to two weeks, one a week to two months, one a month after.
        let between = |a: f64, b: f64| {
            kept.iter()
                .filter(|t| days(**t) >= a && days(**t) < b)
                .count()
        };
        assert_eq!(between(2.0, 14.0), 12);
        assert!(
            (6..=8).contains(&between(14.0, 63.0)),
            "{}",
            between(14.0, 63.0)
        );
        assert!(
            (20..=24).contains(&between(63.0, 731.0)),
            "{}",
            between(63.0, 731.0)
        );
        // Nothing beyond two years.
        assert_eq!(kept.iter().filter(|t| days(**t) > 731.0).count(), 0);
        // Each window keeps its oldest backup.
        assert!(kept.contains(&(now - time::Duration::days(3))));
        // Rotating again removes nothing more.
        let left: Vec<String> = names
            .iter()
            .filter(|n| !expired.contains(*n))
            .cloned()
            .collect();
        assert!(expired_backups(&left, now).is_empty());
    }

    #[test]
    fn rotation_leaves_other_names_and_recent_backups_alone() {
        let now = at("2026-12-03T12:00:00Z");
        let names = vec![
            "notes.txt".to_string(),
            "dump-bad.json.gz".to_string(),
            name(now),
            name(now - time::Duration::hours(47)),
        ];
        assert!(expired_backups(&names, now).is_empty());
        // Two in one old day: the older stays.
        let a = now - time::Duration::days(4) - time::Duration::hours(20);
        let b = now - time::Duration::days(4) - time::Duration::hours(2);
        assert_eq!(expired_backups(&[name(a), name(b)], now), vec![name(b)]);
        // Older than two years: gone, whatever else there is.
        let old = now - time::Duration::days(800);
        assert_eq!(expired_backups(&[name(old)], now), vec![name(old)]);
    }

    #[test]
    fn storage_urls() {
        let p = |u: &str| VolumeLocation::parse(u).unwrap();
        assert_eq!(
            p("/var/jfs/myvol"),
            VolumeLocation {
                storage: "file".into(),
                bucket: "/var/jfs/".into(),
                name: "myvol".into()
            }
        );
        assert_eq!(p("file:///var/jfs/myvol/"), p("/var/jfs/myvol"));
        let s3 = p("http://127.0.0.1:9000/bucket/vol");
        assert_eq!(
            (s3.storage.as_str(), s3.bucket.as_str(), s3.name.as_str()),
            ("s3", "http://127.0.0.1:9000/bucket", "vol")
        );
        assert_eq!(p("s3://bucket/vol").bucket, "s3://bucket");
        for bad in ["gopher://x/y", "vol", "s3://vol", "/var/jfs/..", ""] {
            assert!(VolumeLocation::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn checks_are_spread_around_a_tenth_of_the_interval() {
        for _ in 0..100 {
            let d = check_every(Duration::from_secs(3600));
            assert!(
                d >= Duration::from_secs(324) && d <= Duration::from_secs(396),
                "{d:?}"
            );
        }
        assert!(check_every(Duration::ZERO) >= MIN_CHECK.mul_f64(0.9));
    }

    /// Records the gauges and counters set on this thread.
    #[derive(Default)]
    struct Recorded(std::sync::Mutex<std::collections::HashMap<String, f64>>);

    struct Cell(Arc<Recorded>, String);

    impl metrics::GaugeFn for Cell {
        fn increment(&self, v: f64) {
            *self.0 .0.lock().unwrap().entry(self.1.clone()).or_default() += v;
        }
        fn decrement(&self, v: f64) {
            self.increment(-v);
        }
        fn set(&self, v: f64) {
            self.0 .0.lock().unwrap().insert(self.1.clone(), v);
        }
    }

    impl metrics::CounterFn for Cell {
        fn increment(&self, v: u64) {
            metrics::GaugeFn::increment(self, v as f64);
        }
        fn absolute(&self, v: u64) {
            metrics::GaugeFn::set(self, v as f64);
        }
    }

    struct Recorder(Arc<Recorded>);

    impl metrics::Recorder for Recorder {
        fn describe_counter(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn describe_gauge(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn describe_histogram(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn register_counter(
            &self,
            key: &metrics::Key,
            _: &metrics::Metadata<'_>,
        ) -> metrics::Counter {
            metrics::Counter::from_arc(Arc::new(Cell(self.0.clone(), key.name().to_string())))
        }
        fn register_gauge(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
            metrics::Gauge::from_arc(Arc::new(Cell(self.0.clone(), key.name().to_string())))
        }
        fn register_histogram(
            &self,
            _: &metrics::Key,
            _: &metrics::Metadata<'_>,
        ) -> metrics::Histogram {
            metrics::Histogram::noop()
        }
    }

    /// Every backup sets the gauges; a failed one counts as a failure (on this
    /// single-threaded runtime the backup runs on the thread whose recorder is set).
    #[tokio::test(flavor = "current_thread")]
    async fn each_backup_sets_the_gauges_and_failures_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite3://{}/m.db", dir.path().display());
        let meta = crate::connect_meta(&url).await.unwrap();
        let f = Format::new("m", "00000000-0000-4000-8000-000000000000", "mem", "");
        meta.init(&f, false).await.unwrap();
        let store = Arc::new(chunkstore::Faulty::new(chunkstore::MemStore::new(), 1));
        let backups = Backups::new(meta, store.clone(), false);
        let seen = Arc::new(Recorded::default());
        let rec = Recorder(seen.clone());
        let _guard = metrics::set_default_local_recorder(&rec);
        let now = OffsetDateTime::now_utc();
        let r = backups.run(now).await.unwrap();
        assert_eq!(backups.list().await.unwrap(), vec![r.backup.clone()]);
        let get = |k: &str| seen.0.lock().unwrap().get(k).copied();
        assert_eq!(
            get("tessera_last_successful_backup"),
            Some(now.unix_timestamp() as f64)
        );
        assert!(get("tessera_last_backup_duration_seconds").is_some());
        assert_eq!(get("tessera_backup_failures_total"), None);
        store.set_down(true);
        assert!(backups.run(now + time::Duration::seconds(5)).await.is_err());
        assert_eq!(get("tessera_backup_failures_total"), Some(1.0));
        assert_eq!(
            get("tessera_last_successful_backup"),
            Some(now.unix_timestamp() as f64)
        );
    }
}
