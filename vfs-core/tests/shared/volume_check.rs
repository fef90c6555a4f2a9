//! Helpers shared by the volume-level tests (`s3.rs`, `cache.rs`): the services they need,
//! walking a volume's files, reading them whole, and the check `juicefs fsck` makes of the
//! data: every block of every slice the metadata holds is in the store.
#![allow(dead_code)]

use std::num::NonZeroU32;

use chunkstore::{slice_blocks, ChunkStore, StoreError};
use meta_api::{Context, FileType, Format, Ino, MetaEngine, CHUNK_SIZE, ROOT_INO};
use vfs_core::Vfs;

/// The S3 test server (`source /tmp/svc.env` or `scripts/services.sh`).
#[derive(Debug, Clone)]
pub struct S3Env {
    pub endpoint: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
}

impl S3Env {
    /// The server from `S3_ENDPOINT`, `S3_BUCKET`, `S3_ACCESS_KEY`, `S3_SECRET_KEY`; when
    /// unset, `None` after a loud SKIP, or a panic under CI (CI never skips silently).
    pub fn from_env(test: &str) -> Option<S3Env> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        match (
            var("S3_ENDPOINT"),
            var("S3_BUCKET"),
            var("S3_ACCESS_KEY"),
            var("S3_SECRET_KEY"),
        ) {
            (Some(endpoint), Some(bucket), Some(access_key), Some(secret_key)) => Some(S3Env {
                endpoint: endpoint.trim_end_matches('/').to_string(),
                bucket,
                access_key,
                secret_key,
            }),
            _ => tessera_testenv::missing(&format!(
                "{test}: S3_ENDPOINT, S3_BUCKET, S3_ACCESS_KEY and S3_SECRET_KEY are needed \
                 (source /tmp/svc.env or run scripts/test-all.sh)"
            )),
        }
    }

    /// The JuiceFS `--bucket` URL of the test bucket.
    pub fn bucket_url(&self) -> String {
        format!("{}/{}", self.endpoint, self.bucket)
    }

    /// Settings of an S3 volume `name` in the test bucket (objects under `name/`).
    pub fn format(&self, name: &str) -> Format {
        let mut f = Format::new(name, "", "s3", &self.bucket_url());
        f.access_key = self.access_key.clone();
        f.secret_key = self.secret_key.clone();
        f.trash_days = 0;
        f
    }

    /// A raw store on the test bucket (no retries, no prefix).
    #[cfg(feature = "s3")]
    pub fn store(&self) -> chunkstore::S3Store {
        chunkstore::S3Store::from_bucket_url(&self.bucket_url(), &self.access_key, &self.secret_key)
            .unwrap()
    }
}

/// A volume name no other test run uses (names are the objects' prefix in the bucket).
pub fn unique_name(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("t-{test}-{}-{nanos}", std::process::id())
}

/// Every regular file under the root: (path, inode, length), in no particular order.
pub async fn files(meta: &dyn MetaEngine) -> Vec<(String, Ino, u64)> {
    let ctx = Context::root();
    let mut out = Vec::new();
    let mut dirs = vec![(String::new(), ROOT_INO)];
    while let Some((path, dir)) = dirs.pop() {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = meta
                .readdir(&ctx, dir, after.as_deref(), 1000, true)
                .await
                .unwrap();
            let done = page.len() < 1000;
            for e in &page {
                let p = format!("{path}/{}", String::from_utf8_lossy(&e.name));
                match e.typ {
                    FileType::Directory => dirs.push((p, e.ino)),
                    FileType::Regular => {
                        let len = match &e.attr {
                            Some(a) => a.length,
                            None => meta.getattr(e.ino).await.unwrap().length,
                        };
                        out.push((p, e.ino, len));
                    }
                    _ => {}
                }
            }
            after = page.last().map(|e| e.name.clone());
            if done {
                break;
            }
        }
    }
    out
}

/// Checks that every block of every slice of every file is in `store` (with the length
/// its key states, on uncompressed volumes); returns how many blocks were checked.
pub async fn assert_every_block_stored(
    meta: &dyn MetaEngine,
    store: &dyn ChunkStore,
    format: &Format,
) -> usize {
    let bs = NonZeroU32::new(u32::try_from(format.block_bytes()).unwrap()).unwrap();
    let plain = matches!(format.compression.as_str(), "" | "none");
    let mut checked = 0;
    for (path, ino, len) in files(meta).await {
        for chunk in 0..len.div_ceil(CHUNK_SIZE) {
            for s in meta.read_chunk(ino, chunk as u32).await.unwrap() {
                if s.id == 0 {
                    continue;
                }
                for b in slice_blocks(s.id, s.size, bs) {
                    let key = b.to_key(format.hash_prefix);
                    match store.head(&key).await {
                        Ok(o) => {
                            if plain {
                                assert_eq!(o.size, u64::from(b.len), "{path}: block {key}");
                            }
                        }
                        Err(StoreError::NotFound(_)) => {
                            panic!("{path}: slice {} points at missing block {key}", s.id)
                        }
                        Err(e) => panic!("{path}: head {key}: {e}"),
                    }
                    checked += 1;
                }
            }
        }
    }
    checked
}

/// The blocks of committed slices that `store` does not have.
pub async fn missing_blocks(
    meta: &dyn MetaEngine,
    store: &dyn ChunkStore,
    format: &Format,
) -> Vec<String> {
    let bs = NonZeroU32::new(u32::try_from(format.block_bytes()).unwrap()).unwrap();
    let mut missing = Vec::new();
    for (_, ino, len) in files(meta).await {
        for chunk in 0..len.div_ceil(CHUNK_SIZE) {
            for s in meta.read_chunk(ino, chunk as u32).await.unwrap() {
                for b in slice_blocks(s.id, s.size, bs).filter(|_| s.id != 0) {
                    let key = b.to_key(format.hash_prefix);
                    if matches!(store.head(&key).await, Err(StoreError::NotFound(_))) {
                        missing.push(key);
                    }
                }
            }
        }
    }
    missing
}

/// The whole content of file `ino`, read through `vfs` in 1 MiB pieces.
pub async fn read_all(vfs: &Vfs, ino: Ino) -> Vec<u8> {
    let ctx = Context::root();
    let fh = vfs.open(&ctx, ino, libc::O_RDONLY).await.unwrap();
    let mut out = Vec::new();
    loop {
        let b = vfs.read(&ctx, fh, out.len() as u64, 1 << 20).await.unwrap();
        if b.is_empty() {
            break;
        }
        out.extend_from_slice(&b);
    }
    vfs.release(&ctx, fh).await.unwrap();
    out
}

/// Writes `data` as file `name` in the root directory through `vfs` (in 1 MiB writes,
/// fsync'd) and returns its inode.
pub async fn write_file(vfs: &Vfs, name: &str, data: &[u8]) -> Ino {
    let ctx = Context::root();
    let (e, fh) = vfs
        .create(&ctx, ROOT_INO, name.as_bytes(), 0o644, libc::O_RDWR)
        .await
        .unwrap();
    for (i, piece) in data.chunks(1 << 20).enumerate() {
        vfs.write(
            &ctx,
            fh,
            (i << 20) as u64,
            bytes::Bytes::copy_from_slice(piece),
        )
        .await
        .unwrap();
    }
    vfs.fsync(&ctx, fh, false).await.unwrap();
    vfs.release(&ctx, fh).await.unwrap();
    e.ino
}

/// Deterministic, position-dependent bytes.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
