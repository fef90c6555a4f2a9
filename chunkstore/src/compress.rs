//! Per-block compression, byte-compatible with JuiceFS's `--compress none|lz4|zstd`.
//!
//! JuiceFS compresses each block object on its own: LZ4 as a raw block (no frame, no size
//! header), zstd as one frame at level 1. Neither format is told the uncompressed length by
//! the object itself in a way JuiceFS relies on; the length is in the block's key
//! (`…/{id}_{index}_{len}`), and that is where [`Compressed`] takes it from.

use async_trait::async_trait;
use bytes::Bytes;

use crate::key::BlockKey;
use crate::mem::slice_range;
use crate::{ChunkStore, ChunkStoreExt, ListPage, ObjectMeta, Result, StoreError};

/// The zstd level JuiceFS uses (its fastest).
pub const ZSTD_LEVEL: i32 = 1;

/// Blocks smaller than this are (de)compressed inline; larger ones on the blocking pool so
/// that a 4 MiB block does not stall the async runtime.
const INLINE_MAX: usize = 64 * 1024;

/// A volume's compression setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Compression {
    /// Blocks are stored as they are.
    #[default]
    None,
    /// LZ4 block format, no header.
    Lz4,
    /// One zstd frame, level [`ZSTD_LEVEL`].
    Zstd,
}

impl Compression {
    /// Parses the volume setting as JuiceFS does (case-insensitive; `""` means none).
    /// Anything else is `Invalid`: reading a volume with the wrong codec would return garbage.
    pub fn from_setting(s: &str) -> Result<Compression> {
        match s.to_ascii_lowercase().as_str() {
            "" | "none" => Ok(Compression::None),
            "lz4" => Ok(Compression::Lz4),
            "zstd" => Ok(Compression::Zstd),
            _ => Err(StoreError::Invalid(format!(
                "unknown compression {s:?} (expected none, lz4 or zstd)"
            ))),
        }
    }

    /// The setting's name as JuiceFS writes it in the volume format.
    pub fn name(&self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// Compresses one block.
    pub fn compress(&self, data: &[u8]) -> Result<Vec<u8>> {
        match self {
            Compression::None => Ok(data.to_vec()),
            Compression::Lz4 => Ok(lz4_flex::block::compress(data)),
            Compression::Zstd => zstd::bulk::compress(data, ZSTD_LEVEL)
                .map_err(|e| StoreError::other(format!("zstd compression failed: {e}"))),
        }
    }

    /// Decompresses one block whose uncompressed length is `len`. Input that does not decode
    /// to exactly `len` bytes is `Corrupt`.
    pub fn decompress(&self, data: &[u8], len: usize) -> Result<Vec<u8>> {
        let out = match self {
            Compression::None => data.to_vec(),
            Compression::Lz4 => lz4_flex::block::decompress(data, len)
                .map_err(|e| StoreError::Corrupt(format!("lz4: {e}")))?,
            // `decompress` refuses to produce more than `len` bytes.
            Compression::Zstd => zstd::bulk::decompress(data, len)
                .map_err(|e| StoreError::Corrupt(format!("zstd: {e}")))?,
        };
        if out.len() != len {
            return Err(StoreError::Corrupt(format!(
                "{} block decodes to {} bytes, expected {len}",
                self.name(),
                out.len()
            )));
        }
        Ok(out)
    }
}

async fn off_runtime<T, F>(size: usize, f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    if size <= INLINE_MAX {
        return f();
    }
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::other(format!("compression task failed: {e}")))?
}

/// A decorator that compresses block objects, as JuiceFS does for a volume formatted with
/// `--compress`. Only keys in the block layout (`[prefix/]chunks/…/{id}_{index}_{len}`,
/// see [`BlockKey::parse_prefixed`]) are compressed; other objects (`juicefs_uuid`, metadata
/// backups) pass through unchanged, as in JuiceFS.
///
/// For block keys:
/// - `put` requires the data to be exactly the key's length (`Invalid` otherwise);
/// - a ranged `get` reads the whole object, decompresses it, then slices, because a
///   compressed block cannot be read in parts; data that does not decode to the key's
///   length is `Corrupt`;
/// - `head` and `list_page` report the uncompressed length (the length in the key), which is
///   what `put` was given. Ask the inner store for the stored size.
#[derive(Debug, Clone)]
pub struct Compressed<S> {
    inner: S,
    algo: Compression,
}

impl<S: ChunkStore> Compressed<S> {
    /// Compresses blocks stored in `inner` with `algo`.
    pub fn new(inner: S, algo: Compression) -> Compressed<S> {
        Compressed { inner, algo }
    }

    /// The codec.
    pub fn compression(&self) -> Compression {
        self.algo
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The block behind `key` when this layer transforms it.
    fn block_of(&self, key: &str) -> Option<BlockKey> {
        if self.algo == Compression::None {
            return None;
        }
        BlockKey::parse_prefixed(key).map(|(_, b)| b)
    }

    fn logical(&self, mut meta: ObjectMeta) -> ObjectMeta {
        if let Some(b) = self.block_of(&meta.key) {
            meta.size = u64::from(b.len);
        }
        meta
    }
}

#[async_trait]
impl<S: ChunkStore> ChunkStore for Compressed<S> {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        let Some(block) = self.block_of(key) else {
            return self.inner.put(key, data).await;
        };
        if data.len() as u64 != u64::from(block.len) {
            return Err(StoreError::Invalid(format!(
                "{key}: {} bytes given, the key says {}",
                data.len(),
                block.len
            )));
        }
        let algo = self.algo;
        let packed = off_runtime(data.len(), move || algo.compress(&data)).await?;
        self.inner.put(key, Bytes::from(packed)).await
    }

    async fn get_range(&self, key: &str, off: u64, len: Option<u64>) -> Result<Bytes> {
        let Some(block) = self.block_of(key) else {
            return self.inner.get_range(key, off, len).await;
        };
        let packed = self.inner.get(key).await?;
        let algo = self.algo;
        let want = block.len as usize;
        let plain = off_runtime(want, move || algo.decompress(&packed, want))
            .await
            .map_err(|e| match e {
                StoreError::Corrupt(m) => StoreError::Corrupt(format!("{key}: {m}")),
                e => e,
            })?;
        Ok(slice_range(&Bytes::from(plain), off, len))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key).await
    }

    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        let mut page = self.inner.list_page(prefix, start_after, limit).await?;
        page.objects = page.objects.into_iter().map(|m| self.logical(m)).collect();
        Ok(page)
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let m = self.inner.head(key).await?;
        Ok(self.logical(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemStore;

    fn sample(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8 ^ (i / 4096) as u8).collect()
    }

    #[test]
    fn settings() {
        assert_eq!(Compression::from_setting("").unwrap(), Compression::None);
        assert_eq!(
            Compression::from_setting("none").unwrap(),
            Compression::None
        );
        assert_eq!(Compression::from_setting("LZ4").unwrap(), Compression::Lz4);
        assert_eq!(
            Compression::from_setting("zstd").unwrap(),
            Compression::Zstd
        );
        assert!(matches!(
            Compression::from_setting("gzip"),
            Err(StoreError::Invalid(_))
        ));
        for c in [Compression::None, Compression::Lz4, Compression::Zstd] {
            assert_eq!(Compression::from_setting(c.name()).unwrap(), c);
        }
    }

    #[test]
    fn codecs_round_trip_and_compress() {
        let data = sample(300_000);
        for c in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let packed = c.compress(&data).unwrap();
            if c != Compression::None {
                assert!(packed.len() < data.len() / 4, "{c:?} {}", packed.len());
            }
            assert_eq!(c.decompress(&packed, data.len()).unwrap(), data);
            for n in [0, 1, 5, 64] {
                let small = sample(n);
                assert_eq!(
                    c.decompress(&c.compress(&small).unwrap(), n).unwrap(),
                    small
                );
            }
        }
    }

    #[test]
    fn zstd_is_one_frame_with_its_content_size() {
        let packed = Compression::Zstd.compress(b"hello hello hello").unwrap();
        assert_eq!(&packed[..4], &[0x28, 0xB5, 0x2F, 0xFD]);
    }

    #[test]
    fn lz4_has_no_header() {
        // A short input is one literal run: token (len << 4), then the bytes.
        assert_eq!(Compression::Lz4.compress(b"abc").unwrap(), b"\x30abc");
    }

    #[test]
    fn corrupt_input_is_corrupt_never_a_panic() {
        let data = sample(100_000);
        for c in [Compression::Lz4, Compression::Zstd] {
            let packed = c.compress(&data).unwrap();
            // Wrong expected length either way.
            for len in [data.len() - 1, data.len() + 1, 0] {
                assert!(
                    matches!(c.decompress(&packed, len), Err(StoreError::Corrupt(_))),
                    "{c:?} len {len}"
                );
            }
            // Truncations and bit flips at many places.
            for cut in [0, 1, 2, 7, packed.len() / 2, packed.len() - 1] {
                assert!(matches!(
                    c.decompress(&packed[..cut], data.len()),
                    Err(StoreError::Corrupt(_))
                ));
            }
            for i in (0..packed.len()).step_by(97) {
                let mut bad = packed.clone();
                bad[i] ^= 0x5A;
                if let Ok(out) = c.decompress(&bad, data.len()) {
                    assert_eq!(out.len(), data.len());
                }
            }
            for junk in [
                &b""[..],
                b"\xff",
                b"\xf0\xff\xff\xff\xff",
                b"\x28\xb5\x2f\xfd\x00",
            ] {
                assert!(matches!(
                    c.decompress(junk, 10),
                    Err(StoreError::Corrupt(_))
                ));
            }
        }
    }

    #[tokio::test]
    async fn blocks_are_compressed_other_keys_pass_through() {
        let mem = std::sync::Arc::new(MemStore::new());
        let store = Compressed::new(mem.clone(), Compression::Zstd);
        let data = Bytes::from(sample(200_000));
        let key = format!("vol/{}", BlockKey::new(9, 0, 200_000).to_key(false));
        store.put(&key, data.clone()).await.unwrap();
        let stored = mem.get(&key).await.unwrap();
        assert!(stored.len() < data.len() / 4);
        assert_eq!(store.get(&key).await.unwrap(), data);
        assert_eq!(
            store.get_range(&key, 1000, Some(10)).await.unwrap(),
            data.slice(1000..1010)
        );
        assert_eq!(store.head(&key).await.unwrap().size, 200_000);
        assert_eq!(store.list_all("vol/").await.unwrap()[0].size, 200_000);
        assert_eq!(mem.head(&key).await.unwrap().size, stored.len() as u64);

        store
            .put("vol/juicefs_uuid", Bytes::from_static(b"u"))
            .await
            .unwrap();
        assert_eq!(mem.get("vol/juicefs_uuid").await.unwrap(), &b"u"[..]);

        let wrong = BlockKey::new(9, 1, 5).to_key(false);
        assert!(matches!(
            store.put(&wrong, Bytes::from_static(b"four")).await,
            Err(StoreError::Invalid(_))
        ));

        mem.put(&key, Bytes::from_static(b"garbage")).await.unwrap();
        assert!(matches!(store.get(&key).await, Err(StoreError::Corrupt(_))));
    }
}
