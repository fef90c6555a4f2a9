//! Opening and formatting volumes by URL: the metadata URL picks the engine, the volume's
//! settings pick the block store ([`open_store`]).

use std::sync::Arc;

use chunkstore::ChunkStore;
use futures::future::BoxFuture;
use meta_api::{Format, MetaEngine};

use crate::{open_store, Result, Vfs, VfsError, VfsOptions};

/// Connects to a metadata engine; given the full URL.
type Connect = fn(&str) -> BoxFuture<'_, Result<Arc<dyn MetaEngine>>>;

/// A metadata URL scheme and how to connect to it, or `None` with the cargo feature that
/// builds it in. Adding an engine is one line here and one connect function.
struct EngineScheme {
    schemes: &'static [&'static str],
    connect: Option<Connect>,
    feature: &'static str,
}

const ENGINES: &[EngineScheme] = &[
    EngineScheme {
        schemes: &["sqlite3"],
        #[cfg(feature = "sqlite")]
        connect: Some(connect_sqlite),
        #[cfg(not(feature = "sqlite"))]
        connect: None,
        feature: "sqlite",
    },
    EngineScheme {
        schemes: &["redis", "rediss", "unix"],
        #[cfg(feature = "redis")]
        connect: Some(connect_redis),
        #[cfg(not(feature = "redis"))]
        connect: None,
        feature: "redis",
    },
    EngineScheme {
        schemes: &["tkv-mem"],
        #[cfg(feature = "tkv")]
        connect: Some(connect_tkv),
        #[cfg(not(feature = "tkv"))]
        connect: None,
        feature: "tkv",
    },
    EngineScheme {
        schemes: &["fdb"],
        #[cfg(feature = "fdb")]
        connect: Some(connect_tkv),
        #[cfg(not(feature = "fdb"))]
        connect: None,
        feature: "fdb",
    },
];

#[cfg(feature = "tkv")]
fn connect_tkv(url: &str) -> BoxFuture<'_, Result<Arc<dyn MetaEngine>>> {
    Box::pin(async move { Ok(meta_fdb::open(url)?) })
}

#[cfg(feature = "sqlite")]
fn connect_sqlite(url: &str) -> BoxFuture<'_, Result<Arc<dyn MetaEngine>>> {
    Box::pin(async move {
        let engine = meta_sqlite::SqliteMeta::open(url).await?;
        Ok(Arc::new(engine) as Arc<dyn MetaEngine>)
    })
}

#[cfg(feature = "redis")]
fn connect_redis(url: &str) -> BoxFuture<'_, Result<Arc<dyn MetaEngine>>> {
    Box::pin(async move {
        let engine = meta_redis::RedisMeta::open(url).await?;
        Ok(Arc::new(engine) as Arc<dyn MetaEngine>)
    })
}

/// The scheme of a URL (`sqlite3` in `sqlite3:///path`).
fn scheme_of(url: &str) -> Result<&str> {
    match url.split_once("://") {
        Some((scheme, _))
            if !scheme.is_empty()
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.') =>
        {
            Ok(scheme)
        }
        _ => Err(VfsError::InvalidUrl {
            url: url.to_string(),
            reason: "expected scheme://…, e.g. sqlite3:///var/jfs/meta.db",
        }),
    }
}

/// Connects to the metadata engine a URL names (`sqlite3:///path/meta.db`, …). The client
/// has no session yet.
pub async fn connect_meta(url: &str) -> Result<Arc<dyn MetaEngine>> {
    let scheme = scheme_of(url)?;
    let lower = scheme.to_ascii_lowercase();
    let Some(engine) = ENGINES.iter().find(|e| e.schemes.contains(&lower.as_str())) else {
        let known: Vec<&str> = ENGINES
            .iter()
            .filter(|e| e.connect.is_some())
            .flat_map(|e| e.schemes.iter().copied())
            .collect();
        return Err(VfsError::UnsupportedScheme {
            scheme: scheme.to_string(),
            hint: format!("supported schemes: {}", known.join(", ")),
        });
    };
    match engine.connect {
        Some(connect) => connect(url).await,
        None => Err(VfsError::UnsupportedScheme {
            scheme: scheme.to_string(),
            hint: format!(
                "this build of vfs-core has no such engine (cargo feature `{}`)",
                engine.feature
            ),
        }),
    }
}

/// Formats a new volume: writes `format` (a fresh UUID if its `uuid` is empty; an object
/// store's secret key encrypted as JuiceFS encrypts it) into the engine at `meta_url` and
/// prepares the block store (for `file`: creates the bucket
/// directory and the `juicefs_uuid` marker object JuiceFS writes). An already formatted
/// volume is `EEXIST`. Returns the settings as stored.
///
/// ```no_run
/// # async fn demo() -> vfs_core::Result<()> {
/// let format = meta_api::Format::new("myvol", "", "file", "/var/lib/myvol/blocks/");
/// vfs_core::format_volume("sqlite3:///var/lib/myvol/meta.db", format).await?;
/// let vfs = vfs_core::VolumeBuilder::new("sqlite3:///var/lib/myvol/meta.db").open().await?;
/// vfs.close().await?;
/// # Ok(())
/// # }
/// ```
pub async fn format_volume(meta_url: &str, mut format: Format) -> Result<Format> {
    if format.uuid.is_empty() {
        format.uuid = uuid::Uuid::new_v4().to_string();
    }
    format.check_supported()?;
    // Stored the way `juicefs format` stores them: encrypted under the volume's UUID.
    #[cfg(feature = "s3")]
    crate::secret::seal_secrets(&mut format)?;
    let meta = connect_meta(meta_url).await?;
    let store = open_store(&format).await?;
    meta.init(&format, false).await?;
    if format.storage != "mem" {
        store
            .put("juicefs_uuid", bytes::Bytes::from(format.uuid.clone()))
            .await?;
    }
    Ok(format)
}

/// Opens a volume by its metadata URL: connects to the engine, loads and checks the
/// volume's settings, opens the block store they name, and starts a [`Vfs`].
///
/// ```no_run
/// # async fn demo() -> vfs_core::Result<()> {
/// use vfs_core::{VfsOptions, VolumeBuilder};
/// let vfs = VolumeBuilder::new("sqlite3:///var/lib/myvol/meta.db")
///     .options(VfsOptions::default().buffer_size(128 << 20))
///     .open()
///     .await?;
/// vfs.close().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct VolumeBuilder {
    meta_url: String,
    opts: VfsOptions,
}

impl VolumeBuilder {
    /// A builder for the volume whose metadata lives at `meta_url`.
    pub fn new(meta_url: impl Into<String>) -> VolumeBuilder {
        VolumeBuilder {
            meta_url: meta_url.into(),
            opts: VfsOptions::default(),
        }
    }

    /// Replaces all options.
    pub fn options(mut self, opts: VfsOptions) -> VolumeBuilder {
        self.opts = opts;
        self
    }

    /// Sets the write buffer budget in bytes ([`VfsOptions::buffer_size`]).
    pub fn buffer_size(mut self, bytes: usize) -> VolumeBuilder {
        self.opts.buffer_size = bytes;
        self
    }

    /// Sets the number of concurrent block uploads ([`VfsOptions::upload_concurrency`]).
    pub fn upload_concurrency(mut self, n: usize) -> VolumeBuilder {
        self.opts.upload_concurrency = n;
        self
    }

    /// Sets the readahead window in bytes ([`VfsOptions::readahead`]).
    pub fn readahead(mut self, bytes: u64) -> VolumeBuilder {
        self.opts.readahead = bytes;
        self
    }

    /// Sets the handle limit ([`VfsOptions::max_open_files`]).
    pub fn max_open_files(mut self, n: usize) -> VolumeBuilder {
        self.opts.max_open_files = n;
        self
    }

    /// Sets the memory block cache in bytes ([`VfsOptions::block_cache_size`]; 0 turns
    /// it off).
    pub fn block_cache_size(mut self, bytes: usize) -> VolumeBuilder {
        self.opts.block_cache_size = bytes;
        self
    }

    /// Adds a disk cache directory ([`VfsOptions::cache_dirs`]).
    pub fn cache_dir(mut self, dir: impl Into<std::path::PathBuf>) -> VolumeBuilder {
        self.opts.cache_dirs.push(dir.into());
        self
    }

    /// Sets the disk cache size in bytes ([`VfsOptions::cache_size`]).
    pub fn cache_size(mut self, bytes: u64) -> VolumeBuilder {
        self.opts.cache_size = bytes;
        self
    }

    /// Turns writeback on or off ([`VfsOptions::writeback`]; needs a cache directory).
    pub fn writeback(mut self, on: bool) -> VolumeBuilder {
        self.opts.writeback = on;
        self
    }

    /// Sets the bytes of blocks staged for upload in writeback mode
    /// ([`VfsOptions::staging_size`]).
    pub fn staging_size(mut self, bytes: u64) -> VolumeBuilder {
        self.opts.staging_size = bytes;
        self
    }

    /// Formats a new volume at this builder's URL (see [`format_volume`]).
    pub async fn format(&self, format: Format) -> Result<Format> {
        format_volume(&self.meta_url, format).await
    }

    /// Opens the volume.
    pub async fn open(self) -> Result<Vfs> {
        let meta = connect_meta(&self.meta_url).await?;
        let format = meta.load().await?;
        format.check_supported()?;
        let store = open_store(&format).await?;
        Vfs::new(meta, store, format, self.opts).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn url_dispatch_errors_are_clear() {
        if !cfg!(feature = "redis") {
            let e = connect_meta("redis://localhost:6379/1")
                .await
                .err()
                .unwrap();
            assert!(matches!(&e, VfsError::UnsupportedScheme { scheme, .. } if scheme == "redis"));
            assert!(e.to_string().contains("feature `redis`"), "{e}");
        }
        let e = connect_meta("fdb:///etc/foundationdb/fdb.cluster")
            .await
            .err()
            .unwrap();
        assert!(matches!(e, VfsError::UnsupportedScheme { .. }));
        let e = connect_meta("gopher://x").await.err().unwrap();
        assert!(e.to_string().contains("supported schemes"), "{e}");
        let e = connect_meta("/just/a/path.db").await.err().unwrap();
        assert_eq!(e.errno(), libc::EINVAL);
    }
}
