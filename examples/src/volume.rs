//! Opening, formatting and describing volumes by metadata URL, with one-line errors that
//! say what to do.

use std::io;
use std::path::{Path, PathBuf};

use meta_api::{Format, MetaEngine, MetaError, Session, StatFs};
use vfs_core::{FileSystem, VfsError, VfsOptions, VolumeBuilder};

/// The local file a `sqlite3://` URL names (`sqlite3:///abs/meta.db`,
/// `sqlite3://relative.db?cache=…`), or `None` for other engines.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite3://")?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty()).then(|| PathBuf::from(path))
}

/// The metadata URL of the SQLite database at `path` (made absolute).
pub fn sqlite_url(path: &Path) -> io::Result<String> {
    let abs = std::path::absolute(path)?;
    Ok(format!("sqlite3://{}", abs.display()))
}

/// A user-facing error about the volume at `url`.
pub(crate) fn volume_error(url: &str, e: VfsError) -> io::Error {
    let kind = io::Error::from_raw_os_error(e.errno()).kind();
    let msg = match e.as_meta() {
        Some(MetaError::NotFormatted) => {
            format!("{url}: the volume is not formatted (create it with `tessera format`)")
        }
        Some(MetaError::Exists) => format!("{url}: a volume is already formatted there"),
        _ => match e {
            VfsError::InvalidUrl { .. } | VfsError::UnsupportedScheme { .. } => e.to_string(),
            other => format!("{url}: {other}"),
        },
    };
    io::Error::new(kind, msg)
}

/// Fails unless the URL can name an existing volume: a `sqlite3://` database file must
/// exist (opening would create an empty one).
fn check_exists(url: &str) -> io::Result<()> {
    if let Some(path) = sqlite_path(url) {
        if !path.exists() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{url}: no volume here ({} does not exist; create one with `tessera format`)",
                    path.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Opens the volume at `url` for file operations.
pub async fn open(url: &str, opts: VfsOptions) -> io::Result<FileSystem> {
    check_exists(url)?;
    let vfs = VolumeBuilder::new(url)
        .options(opts)
        .open()
        .await
        .map_err(|e| volume_error(url, e))?;
    Ok(FileSystem::new(vfs))
}

/// Connects to the metadata engine at `url` without a session (for `info`).
pub async fn connect(url: &str) -> io::Result<std::sync::Arc<dyn MetaEngine>> {
    check_exists(url)?;
    vfs_core::connect_meta(url)
        .await
        .map_err(|e| volume_error(url, e))
}

/// What `tessera format` asks for.
#[derive(Debug, Clone)]
pub struct FormatRequest {
    /// Volume name (lowercase letters, digits and `-`, 3 to 63 characters).
    pub name: String,
    /// Storage kind (`file`, or `s3` / `minio` when vfs-core is built with `s3`).
    pub storage: String,
    /// Bucket: for `file`, a directory (made absolute, with a trailing `/`); for `s3`
    /// and `minio`, the bucket URL (`http://host:9000/bucket`).
    pub bucket: String,
    /// Access key of the object storage (empty: from the environment).
    pub access_key: String,
    /// Secret key of the object storage.
    pub secret_key: String,
    /// Block size in KiB: a power of two from 64 to 16384.
    pub block_size_kib: u32,
    /// `none`, `lz4` or `zstd`.
    pub compression: String,
    /// Days deleted files stay in the trash (0: no trash).
    pub trash_days: u32,
    /// Capacity in bytes (0: unlimited).
    pub capacity: u64,
    /// Inode limit (0: unlimited).
    pub inodes: u64,
    /// Whether POSIX ACLs are enabled.
    pub enable_acl: bool,
}

impl FormatRequest {
    /// A request with JuiceFS's defaults: `file` storage in `bucket`, 4 MiB blocks, no
    /// compression, one trash day, no limits.
    pub fn new(name: &str, bucket: &str) -> FormatRequest {
        FormatRequest {
            name: name.to_string(),
            storage: "file".to_string(),
            bucket: bucket.to_string(),
            access_key: String::new(),
            secret_key: String::new(),
            block_size_kib: 4096,
            compression: "none".to_string(),
            trash_days: 1,
            capacity: 0,
            inodes: 0,
            enable_acl: false,
        }
    }

    /// The volume settings this request stands for, or an `InvalidInput` error saying
    /// which argument is wrong.
    pub fn to_format(&self) -> io::Result<Format> {
        let bad = |msg: String| io::Error::new(io::ErrorKind::InvalidInput, msg);
        let n = &self.name;
        let name_ok = (3..=63).contains(&n.len())
            && n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !n.starts_with('-')
            && !n.ends_with('-');
        if !name_ok {
            return Err(bad(format!(
                "invalid volume name {n:?}: use 3 to 63 lowercase letters, digits and '-'"
            )));
        }
        let bs = self.block_size_kib;
        if !bs.is_power_of_two() || !(64..=16384).contains(&bs) {
            return Err(bad(format!(
                "invalid block size {bs} KiB: use a power of two from 64 to 16384"
            )));
        }
        if !matches!(self.compression.as_str(), "none" | "lz4" | "zstd") {
            return Err(bad(format!(
                "invalid compression {:?}: use none, lz4 or zstd",
                self.compression
            )));
        }
        let bucket = match self.storage.as_str() {
            "file" => file_bucket(&self.bucket)?,
            "s3" | "minio" if self.bucket.contains("://") => self.bucket.clone(),
            "s3" | "minio" => {
                return Err(bad(format!(
                    "invalid bucket {:?}: {} storage needs a bucket URL (http://host:port/bucket)",
                    self.bucket, self.storage
                )))
            }
            other => {
                return Err(bad(format!(
                    "unsupported storage {other:?}: use file, s3 or minio"
                )))
            }
        };
        let mut f = Format::new(&self.name, "", &self.storage, &bucket);
        f.access_key = self.access_key.clone();
        f.secret_key = self.secret_key.clone();
        f.block_size = bs;
        f.compression = self.compression.clone();
        f.trash_days = self.trash_days;
        f.capacity = self.capacity;
        f.inodes = self.inodes;
        // As `juicefs format`: directory statistics on (directory quotas need them), which
        // juicefs clients older than 1.1 do not keep.
        f.dir_stats = true;
        f.min_client_version = "1.1.0-A".to_string();
        if self.enable_acl {
            f.enable_acl = true;
            // juicefs clients older than 1.2 do not know ACLs and must refuse the volume.
            f.min_client_version = "1.2.0-A".to_string();
        }
        Ok(f)
    }
}

/// A `file` bucket as JuiceFS stores it: an absolute directory ending with `/`.
fn file_bucket(bucket: &str) -> io::Result<String> {
    let dir = bucket.strip_prefix("file://").unwrap_or(bucket);
    if dir.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the bucket directory is empty",
        ));
    }
    let mut abs = std::path::absolute(dir)?.display().to_string();
    if !abs.ends_with('/') {
        abs.push('/');
    }
    Ok(abs)
}

/// The bucket `tessera format` uses when none is given: JuiceFS's `~/.juicefs/local/`.
pub fn default_bucket() -> String {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/var/lib".to_string());
    format!("{}/.juicefs/local/", home.trim_end_matches('/'))
}

/// Formats a new volume at `url` and returns its settings. The directory of a
/// `sqlite3://` database is created if missing.
pub async fn format(url: &str, req: &FormatRequest) -> io::Result<Format> {
    let format = req.to_format()?;
    if let Some(path) = sqlite_path(url) {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| crate::at_path(dir, e))?;
        }
    }
    vfs_core::format_volume(url, format)
        .await
        .map_err(|e| volume_error(url, e))
}

/// What `tessera info` shows.
#[derive(Debug)]
pub struct VolumeInfo {
    /// The settings.
    pub format: Format,
    /// Usage.
    pub usage: StatFs,
    /// Registered clients.
    pub sessions: Vec<Session>,
}

/// Settings, usage and sessions of the volume at `url`, read without registering a
/// session.
pub async fn info(url: &str) -> io::Result<VolumeInfo> {
    let meta = connect(url).await?;
    let err = |e: MetaError| volume_error(url, e.into());
    let format = meta.load().await.map_err(err)?;
    let usage = meta.statfs().await.map_err(err)?;
    let sessions = meta.list_sessions().await.map_err(err)?;
    Ok(VolumeInfo {
        format,
        usage,
        sessions,
    })
}

/// Opens the volume whose database is `dir/meta.db` and blocks are in `dir/blocks/`,
/// formatting it first if the database does not exist yet. Returns the file system and
/// whether it was just created.
pub async fn open_or_create_local(dir: &Path, name: &str) -> io::Result<(FileSystem, bool)> {
    std::fs::create_dir_all(dir).map_err(|e| crate::at_path(dir, e))?;
    let db = dir.join("meta.db");
    let url = sqlite_url(&db)?;
    let mut created = false;
    if !db.exists() {
        let blocks = std::path::absolute(dir.join("blocks"))?;
        let mut req = FormatRequest::new(name, &blocks.display().to_string());
        req.trash_days = 0;
        format(&url, &req).await?;
        created = true;
    }
    Ok((open(&url, VfsOptions::default()).await?, created))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            sqlite_path("sqlite3:///a/b.db?x=1"),
            Some(PathBuf::from("/a/b.db"))
        );
        assert_eq!(
            sqlite_path("sqlite3://rel.db"),
            Some(PathBuf::from("rel.db"))
        );
        assert_eq!(sqlite_path("sqlite3://"), None);
        assert_eq!(sqlite_path("redis://localhost/1"), None);
    }

    #[test]
    fn format_requests_are_checked() {
        let ok = FormatRequest::new("my-vol1", "/tmp/b");
        let f = ok.to_format().unwrap();
        assert_eq!(f.bucket, "/tmp/b/");
        assert_eq!((f.block_size, f.trash_days), (4096, 1));
        for bad in [
            FormatRequest {
                name: "A".into(),
                ..ok.clone()
            },
            FormatRequest {
                name: "-ab".into(),
                ..ok.clone()
            },
            FormatRequest {
                block_size_kib: 100,
                ..ok.clone()
            },
            FormatRequest {
                block_size_kib: 32,
                ..ok.clone()
            },
            FormatRequest {
                compression: "gzip".into(),
                ..ok.clone()
            },
            FormatRequest {
                storage: "s3".into(),
                ..ok.clone()
            },
            FormatRequest {
                storage: "gs".into(),
                ..ok.clone()
            },
        ] {
            assert_eq!(
                bad.to_format().unwrap_err().kind(),
                io::ErrorKind::InvalidInput
            );
        }
    }
}
