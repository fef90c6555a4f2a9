//! The store stack of a volume: every layer between the VFS and the backend holding the
//! blocks, assembled here and nowhere else (the order is documented on [`open_store`]).

use std::sync::Arc;

use cache::Cached;
use chunkstore::{
    ChunkStore, Compressed, Compression, FsStore, MemStore, Prefixed, Retry, RetryOptions,
};
use meta_api::Format;

use crate::{Result, VfsError, VfsOptions};

/// The block cache over the volume's store (prefix, compression and retries applied).
pub(crate) type BlockCache = Cached<Arc<dyn ChunkStore>>;

/// The block store a volume's settings describe, with the volume's key prefix
/// (`{name}/`), retries of transient failures and compression applied: `file` is a local
/// directory (the bucket), `mem` an in-process store (empty at every open), `s3` / `minio`
/// an S3-compatible bucket (cargo feature `s3`, on by default).
///
/// # The store stack
///
/// A volume's blocks go through these layers, outermost first; [`Vfs::new`](crate::Vfs::new)
/// adds the first, this function builds the rest:
///
/// ```text
/// Cached         block cache: memory, disk, writeback staging    (VfsOptions, in Vfs::new)
///  Compressed    LZ4 / zstd per block                            (if the volume says so)
///   Prefixed     "{volume name}/" before every key
///    Retry       transient failures retried with backoff         (file and s3)
///     S3Store | FsStore | MemStore
/// ```
///
/// - The cache sits **above** compression: it keeps plain block bytes, checks them against
///   the length in the block key (which is the uncompressed length) and serves hits without
///   decompressing again.
/// - Compression sits above the prefix and retries, so a retried request resends the same
///   compressed bytes instead of compressing again; the prefix only rewrites keys, so its
///   place relative to compression does not matter, and the cache and compression both see
///   the plain `chunks/…` keys they parse.
/// - Retry is innermost, right on the backend, so that it sees the backend's own
///   transient errors and each attempt is one request; above the cache it would repeat
///   cache work, and in writeback mode the cache retries its background uploads itself.
///   `mem` needs no retries.
pub async fn open_store(format: &Format) -> Result<Arc<dyn ChunkStore>> {
    // Checked before the backend is touched, so that a bad setting creates nothing.
    let compression = Compression::from_setting(&format.compression)
        .map_err(|e| VfsError::UnsupportedStorage(e.to_string()))?;
    let backend = retried_backend(format).await?;
    let prefixed: Arc<dyn ChunkStore> = Arc::new(Prefixed::new(backend, &format.name)?);
    Ok(match compression {
        Compression::None => prefixed,
        algo => Arc::new(Compressed::new(prefixed, algo)),
    })
}

/// The stores a VFS reads and writes blocks through: the volume's store (everything of
/// [`open_store`]'s stack below the cache) and, on top, the block cache the options ask
/// for.
pub(crate) struct StoreStack {
    /// The top of the stack, where blocks are written, deleted and read: the block cache
    /// when there is one, else `volume`.
    pub(crate) top: Arc<dyn ChunkStore>,
    /// The volume's store under the cache, for ranged reads the cache would widen.
    pub(crate) volume: Arc<dyn ChunkStore>,
    /// The block cache (memory, disk, writeback staging), when the options ask for one.
    pub(crate) cache: Option<Arc<BlockCache>>,
}

impl StoreStack {
    /// Puts the block cache `opts` ask for on top of `volume` (a store with the volume's
    /// prefix and compression applied, see [`open_store`]). The cache of a volume lives in
    /// a subdirectory of each cache directory named by the volume's UUID (its name when it
    /// has none).
    pub(crate) async fn with_cache(
        volume: Arc<dyn ChunkStore>,
        format: &Format,
        opts: &VfsOptions,
    ) -> Result<StoreStack> {
        let volume_id = if format.uuid.is_empty() {
            &format.name
        } else {
            &format.uuid
        };
        let cache = match opts.cache_options(volume_id)? {
            Some(co) => Some(Arc::new(
                Cached::open(volume.clone(), co)
                    .await
                    .map_err(|e| VfsError::Store(Arc::new(e)))?,
            )),
            None => None,
        };
        let top: Arc<dyn ChunkStore> = match &cache {
            Some(c) => c.clone(),
            None => volume.clone(),
        };
        Ok(StoreStack { top, volume, cache })
    }
}

/// The backend a volume's settings name, wrapped in retries where requests can fail
/// transiently (the two innermost layers of [`open_store`]'s stack).
async fn retried_backend(format: &Format) -> Result<Arc<dyn ChunkStore>> {
    let retry = RetryOptions::default();
    Ok(match format.storage.as_str() {
        "file" => {
            let root = bucket_dir(&format.bucket)?;
            Arc::new(Retry::new(FsStore::open(root).await?, retry))
        }
        "mem" => Arc::new(MemStore::new()),
        #[cfg(feature = "s3")]
        "s3" | "minio" => Arc::new(Retry::new(s3_store(format)?, retry)),
        other => {
            return Err(VfsError::UnsupportedStorage(format!(
                "storage {other:?} is not available in this build (supported: {})",
                SUPPORTED_STORAGE
            )))
        }
    })
}

#[cfg(feature = "s3")]
const SUPPORTED_STORAGE: &str = "file, mem, s3, minio";
#[cfg(not(feature = "s3"))]
const SUPPORTED_STORAGE: &str = "file, mem; s3 and minio need cargo feature `s3`";

/// An S3 store for the volume's bucket URL and keys (empty keys: from the environment;
/// keys `juicefs format` encrypted are decrypted first).
#[cfg(feature = "s3")]
fn s3_store(format: &Format) -> Result<chunkstore::S3Store> {
    let mut opts = chunkstore::S3Options::from_bucket_url(&format.bucket)?;
    let (secret_key, session_token) = crate::secret::plain_secrets(format)?;
    if !format.access_key.is_empty() || !secret_key.is_empty() {
        opts = opts.credentials(&format.access_key, &secret_key);
    }
    if !session_token.is_empty() {
        opts = opts.session_token(&session_token);
    }
    opts = opts.storage_class(&format.storage_class);
    Ok(chunkstore::S3Store::new(opts)?)
}

/// The directory of a `file` bucket (`/var/jfs/` or `file:///var/jfs/`).
fn bucket_dir(bucket: &str) -> Result<&str> {
    let dir = bucket.strip_prefix("file://").unwrap_or(bucket);
    if dir.is_empty() {
        return Err(VfsError::UnsupportedStorage(
            "the volume's bucket directory is empty".into(),
        ));
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stores_follow_the_settings() {
        let dir = tempfile::tempdir().unwrap();
        let bucket = format!("{}/", dir.path().join("bucket").display());
        let mut f = Format::new("vol", "u", "file", &bucket);
        let store = open_store(&f).await.unwrap();
        store
            .put("chunks/0/0/1_0_3", bytes::Bytes::from_static(b"abc"))
            .await
            .unwrap();
        assert!(dir.path().join("bucket/vol/chunks/0/0/1_0_3").exists());
        f.storage = "gs".into();
        assert!(matches!(
            open_store(&f).await,
            Err(VfsError::UnsupportedStorage(_))
        ));
        f.storage = "s3".into();
        let err = open_store(&f).await.err().unwrap();
        if cfg!(feature = "s3") {
            // A directory is no bucket URL.
            assert_eq!(err.errno(), libc::EIO, "{err}");
        } else {
            assert!(err.to_string().contains("feature `s3`"), "{err}");
        }
        f.storage = "mem".into();
        f.compression = "lz4".into();
        let store = open_store(&f).await.unwrap();
        store
            .put("k", bytes::Bytes::from_static(b"hello"))
            .await
            .unwrap();
        assert_eq!(&store.get_range("k", 1, Some(3)).await.unwrap()[..], b"ell");
    }

    #[tokio::test]
    async fn the_cache_goes_on_top_only_when_asked_for() {
        let f = Format::new("vol", "00000000-0000-4000-8000-000000000000", "mem", "");
        let volume: Arc<dyn ChunkStore> = Arc::new(MemStore::new());
        let plain = VfsOptions::default().block_cache_size(0);
        let s = StoreStack::with_cache(volume.clone(), &f, &plain)
            .await
            .unwrap();
        assert!(s.cache.is_none());
        assert!(Arc::ptr_eq(&s.top, &volume) && Arc::ptr_eq(&s.volume, &volume));

        let s = StoreStack::with_cache(volume.clone(), &f, &VfsOptions::default())
            .await
            .unwrap();
        let cache = s.cache.as_ref().expect("a memory cache by default");
        assert!(Arc::ptr_eq(&s.volume, &volume));
        // Writes through the top land in the volume's store and in the cache.
        s.top
            .put("chunks/0/0/1_0_3", bytes::Bytes::from_static(b"abc"))
            .await
            .unwrap();
        assert_eq!(volume.head("chunks/0/0/1_0_3").await.unwrap().size, 3);
        cache.idle().await;
        assert!(cache.mem_cache().contains("chunks/0/0/1_0_3"));

        let bad = VfsOptions::default().writeback(true);
        assert!(matches!(
            StoreStack::with_cache(volume, &f, &bad).await,
            Err(VfsError::InvalidArgument(_))
        ));
    }
}
