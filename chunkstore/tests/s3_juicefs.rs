//! `S3Store` and the real `juicefs` client on the same S3 bucket: we read (and verify the
//! CRC32C of) the blocks `juicefs` wrote, and `juicefs` reads (and verifies) the blocks we
//! wrote.
//!
//! Needs the S3 server of `tests/s3.rs` (`S3_ENDPOINT`, …) and `JUICEFS_BIN`. Without them
//! the test prints SKIP and passes, except under `CI`, where it fails.
#![cfg(feature = "s3")]
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use bytes::Bytes;
use chunkstore::testkit::pattern;
use chunkstore::{BlockKey, ChunkStore, ChunkStoreExt, ListOrder, S3Options, S3Store, StoreError};

const META_VAR: &str = "CHUNKSTORE_S3_INTEROP_META";

struct Env {
    juicefs: PathBuf,
    endpoint: String,
    bucket: String,
    access: String,
    secret: String,
}

fn env() -> Option<Env> {
    let vars = (
        std::env::var_os("JUICEFS_BIN").filter(|v| !v.is_empty()),
        std::env::var("S3_ENDPOINT").ok(),
    );
    let (Some(juicefs), Some(endpoint)) = vars else {
        return tessera_testenv::missing(
            "S3 juicefs interop needs JUICEFS_BIN and S3_ENDPOINT (scripts/services.sh)",
        );
    };
    let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    Some(Env {
        juicefs: PathBuf::from(juicefs),
        endpoint,
        bucket: var("S3_BUCKET", "tessera"),
        access: var("S3_ACCESS_KEY", ""),
        secret: var("S3_SECRET_KEY", ""),
    })
}

fn juicefs(env: &Env, args: &[&str], meta: &str) {
    let out = Command::new(&env.juicefs)
        .args(args)
        .env(META_VAR, meta)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "juicefs {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn juicefs_and_s3store_read_each_others_blocks() {
    let Some(env) = env() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let meta = format!("sqlite3://{}", tmp.path().join("meta.db").display());
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let volume = format!("cs3-{}-{}", std::process::id(), nanos % 1_000_000_000);
    let bucket_url = format!("{}/{}", env.endpoint, env.bucket);
    juicefs(
        &env,
        &[
            "format",
            "--no-agent",
            "--trash-days",
            "0",
            "--storage",
            "s3",
            "--bucket",
            &bucket_url,
            "--access-key",
            &env.access,
            "--secret-key",
            &env.secret,
            &meta,
            &volume,
        ],
        &meta,
    );
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let file = pattern(77, (5 << 20) + 4321); // two blocks: 4 MiB and the rest
    std::fs::write(src.join("f.bin"), &file).unwrap();
    let jfs = format!("jfs://{META_VAR}/");
    juicefs(
        &env,
        &["sync", "--no-agent", &format!("{}/", src.display()), &jfs],
        &meta,
    );

    // The store as vfs-core would open it: from the volume's bucket URL, keys under the name.
    let store = S3Store::new(
        S3Options::from_bucket_url(&bucket_url)
            .unwrap()
            .credentials(&env.access, &env.secret)
            .prefix(&volume),
    )
    .unwrap();

    // 1. juicefs's blocks read back through S3Store, checksum-verified, and make the file.
    let mut blocks: Vec<(BlockKey, String)> = store
        .list_all("chunks/")
        .await
        .unwrap()
        .into_iter()
        .map(|o| (BlockKey::parse(&o.key).unwrap(), o.key))
        .collect();
    blocks.sort();
    assert_eq!(blocks.len(), 2, "{blocks:?}");
    let raw = raw_client(&env);
    let mut joined = Vec::new();
    for (b, key) in &blocks {
        let meta = raw
            .head_object()
            .bucket(&env.bucket)
            .key(format!("{volume}/{key}"))
            .send()
            .await
            .unwrap();
        let crc = meta
            .metadata()
            .and_then(|m| m.iter().find(|(k, _)| k.eq_ignore_ascii_case("crc32c")))
            .map(|(_, v)| v.clone());
        let data = store.get_block(key, u64::from(b.len)).await.unwrap();
        // The same decimal CRC32C that S3Store writes and checks.
        assert_eq!(
            crc,
            Some(crc32c::crc32c(&data).to_string()),
            "{key}: {meta:?}"
        );
        joined.extend_from_slice(&data);
    }
    assert!(joined == file, "juicefs's blocks do not make up the file");

    // A block whose bytes no longer match juicefs's checksum is Corrupt, never data.
    let (b0, k0) = &blocks[0];
    let genuine = store.get_block(k0, u64::from(b0.len)).await.unwrap();
    let mut forged = genuine.to_vec();
    forged[12345] ^= 0x40;
    raw.put_object()
        .bucket(&env.bucket)
        .key(format!("{volume}/{k0}"))
        .metadata("crc32c", crc32c::crc32c(&genuine).to_string())
        .body(forged.into())
        .send()
        .await
        .unwrap();
    assert!(matches!(store.get(k0).await, Err(StoreError::Corrupt(_))));

    // 2. Blocks we write (our checksum metadata) read back through juicefs, which verifies
    // them: rewrite both blocks with changed bytes of the same lengths.
    let mut expect = Vec::new();
    for (b, key) in &blocks {
        let plain = if key == k0 {
            genuine.clone()
        } else {
            store.get_block(key, u64::from(b.len)).await.unwrap()
        };
        let changed: Vec<u8> = plain.iter().map(|c| c.wrapping_add(1)).collect();
        assert_eq!(changed.len(), b.len as usize);
        store.put(key, Bytes::from(changed.clone())).await.unwrap();
        expect.extend_from_slice(&changed);
    }
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    juicefs(
        &env,
        &["sync", "--no-agent", &jfs, &format!("{}/", out.display())],
        &meta,
    );
    assert!(
        std::fs::read(out.join("f.bin")).unwrap() == expect,
        "juicefs did not read back the blocks S3Store wrote"
    );

    // Leave the bucket as we found it.
    let lister = S3Store::new(
        S3Options::from_bucket_url(&bucket_url)
            .unwrap()
            .credentials(&env.access, &env.secret)
            .prefix(&volume)
            .list_order(ListOrder::ByDirectory),
    )
    .unwrap();
    for o in lister.list_all("").await.unwrap() {
        lister.delete(&o.key).await.unwrap();
    }
}

fn raw_client(env: &Env) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&env.endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(&env.access, &env.secret, None, None, "t"))
        .http_client(
            aws_smithy_http_client::Builder::new()
                .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                    aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                ))
                .build_https(),
        )
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}
