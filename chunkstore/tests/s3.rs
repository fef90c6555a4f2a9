//! `S3Store` against a real S3-compatible server on loopback (SeaweedFS in CI).
//!
//! The server comes from the environment: `S3_ENDPOINT`, `S3_BUCKET`, `S3_ACCESS_KEY`,
//! `S3_SECRET_KEY` (`source /tmp/svc.env` after `scripts/services.sh`). Without
//! `S3_ENDPOINT` the tests print SKIP and pass, except under `CI`, where they fail. Every
//! test works under its own key prefix in the one bucket. Error-path tests that need no
//! server use closed or silent ports on 127.0.0.1; nothing leaves the machine.
#![cfg(feature = "s3")]
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumMode;
use bytes::Bytes;
use chunkstore::testkit::{self, pattern};
use chunkstore::{
    ChunkStore, ChunkStoreExt, FaultConfig, Faulty, ListOrder, Retry, RetryOptions, S3Options,
    S3Store, StoreError,
};

struct Server {
    endpoint: String,
    bucket: String,
    access: String,
    secret: String,
}

/// The test server, or `None` (after a loud SKIP) when none is configured outside CI.
fn server(test: &str) -> Option<Server> {
    let Ok(endpoint) = std::env::var("S3_ENDPOINT") else {
        return tessera_testenv::missing(&format!(
            "{test}: S3_ENDPOINT is not set (start scripts/services.sh and export \
             S3_ENDPOINT, S3_BUCKET, S3_ACCESS_KEY, S3_SECRET_KEY)"
        ));
    };
    let var = |k: &str, default: &str| std::env::var(k).unwrap_or_else(|_| default.to_string());
    Some(Server {
        endpoint,
        bucket: var("S3_BUCKET", "tessera"),
        access: var("S3_ACCESS_KEY", ""),
        secret: var("S3_SECRET_KEY", ""),
    })
}

fn unique(test: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "chunkstore-tests/{test}-{nanos}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl Server {
    fn options(&self, prefix: &str) -> S3Options {
        S3Options::new(&self.bucket)
            .endpoint(&self.endpoint)
            .path_style(true)
            .credentials(&self.access, &self.secret)
            .request_timeout(Duration::from_secs(30))
            .prefix(prefix)
    }

    /// A store under a fresh prefix, the bucket created if needed.
    async fn store(&self, test: &str) -> S3Store {
        let s = S3Store::new(self.options(&unique(test))).unwrap();
        s.create_bucket().await.unwrap();
        s
    }

    /// A bare SDK client, to look at and forge what the store cannot.
    fn raw_client(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .credentials_provider(Credentials::new(
                &self.access,
                &self.secret,
                None,
                None,
                "t",
            ))
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
}

/// Deletes everything under the store's prefix, listing in byte order on any server.
async fn cleanup(store: &S3Store) {
    let srv = server("cleanup").expect("a store exists only with a server");
    let lister = S3Store::new(
        srv.options(store.prefix())
            .list_order(ListOrder::ByDirectory),
    )
    .unwrap();
    for o in lister.list_all("").await.unwrap() {
        store.delete(&o.key).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_listing_by_directory() {
    let Some(srv) = server("conformance_suite_listing_by_directory") else {
        return;
    };
    // Byte order on any server, SeaweedFS's directory-tree listings included.
    let store = S3Store::new(
        srv.options(&unique("conf-bydir"))
            .list_order(ListOrder::ByDirectory),
    )
    .unwrap();
    store.create_bucket().await.unwrap();
    testkit::run_all(&store).await;
    assert!(
        store.list_all("").await.unwrap().is_empty(),
        "the suite cleans up"
    );
}

/// Whether the server lists in S3's byte order (`a-b` before `a/x`) or as a directory tree.
async fn server_lists_in_byte_order(srv: &Server) -> bool {
    let store = srv.store("order-probe").await;
    for k in ["a/x", "a-b"] {
        store.put(k, Bytes::from_static(b"o")).await.unwrap();
    }
    let flat = store.list_page("", None, 10).await;
    cleanup(&store).await;
    match flat {
        Ok(page) => {
            let keys: Vec<String> = page.objects.into_iter().map(|o| o.key).collect();
            assert_eq!(
                keys,
                ["a-b", "a/x"],
                "a page that succeeds is in byte order"
            );
            true
        }
        Err(e) => {
            // Out of order is reported, never passed on as a listing.
            assert!(format!("{e}").contains("out of key order"), "{e}");
            false
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_flat_listing_via_bucket_url() {
    let Some(srv) = server("conformance_suite_flat_listing_via_bucket_url") else {
        return;
    };
    // JuiceFS's own form of the volume's storage, at the bucket's root (the suite makes its
    // own prefix).
    let url = format!("{}/{}", srv.endpoint, srv.bucket);
    let store = S3Store::from_bucket_url(&url, &srv.access, &srv.secret).unwrap();
    assert_eq!((store.bucket(), store.prefix()), (srv.bucket.as_str(), ""));
    store.create_bucket().await.unwrap();
    if server_lists_in_byte_order(&srv).await {
        testkit::run_all(&store).await;
        return;
    }
    // A directory-tree server (SeaweedFS): every check but the two built on keys that branch
    // below '/', which `conformance_suite_listing_by_directory` covers, and which
    // `server_lists_in_byte_order` showed are refused rather than misordered.
    eprintln!("NOTE: server lists as a directory tree; flat mode skips the two tricky-key checks");
    let opts = testkit::Options::default();
    let root = unique("conf-flat");
    let p = |s: &str| format!("{root}/{s}/");
    testkit::put_get_round_trip(&store, &p("roundtrip")).await;
    testkit::ranged_gets(&store, &p("range")).await;
    testkit::missing_objects(&store, &p("missing")).await;
    testkit::delete_is_idempotent(&store, &p("delete")).await;
    testkit::invalid_keys(&store).await;
    testkit::empty_objects(&store, &p("empty")).await;
    testkit::large_objects(&store, &p("large")).await;
    testkit::head_sizes(&store, &p("head")).await;
    testkit::list_all_many(&store, &p("many"), &opts).await;
    testkit::concurrent_distinct_puts(&store, &p("conc"), &opts).await;
    testkit::same_key_twice(&store, &p("twice")).await;
    testkit::juicefs_layout(&store, &p("vol")).await;
    testkit::cleanup(&store, &format!("{root}/")).await;
}

#[tokio::test]
async fn creating_the_bucket_twice_is_fine() {
    let Some(srv) = server("creating_the_bucket_twice_is_fine") else {
        return;
    };
    let store = srv.store("twice").await;
    store.create_bucket().await.unwrap();
    store.create_bucket().await.unwrap();
}

#[tokio::test]
async fn checksums_are_stored_as_juicefs_and_s3_store_them() {
    let Some(srv) = server("checksums_are_stored_as_juicefs_and_s3_store_them") else {
        return;
    };
    let store = srv.store("crc").await;
    let data = pattern(1, 100_000);
    store.put("blk", data.clone()).await.unwrap();
    let crc = crc32c::crc32c(&data);

    let raw = srv.raw_client();
    let out = raw
        .get_object()
        .bucket(&srv.bucket)
        .key(format!("{}blk", store.prefix()))
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    let meta = out.metadata().cloned().unwrap_or_default();
    let meta_crc = meta
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("crc32c"))
        .map(|(_, v)| v.clone());
    assert_eq!(
        meta_crc,
        Some(crc.to_string()),
        "JuiceFS's x-amz-meta-crc32c, metadata {meta:?}"
    );
    // SeaweedFS 4.x keeps the flexible checksum and returns it in checksum mode; a server
    // that does not is still served (by the metadata), so this is informative.
    match out.checksum_crc32_c() {
        Some(v) => {
            let be = crc.to_be_bytes();
            let want = aws_smithy_types_base64(&be);
            assert_eq!(v, want, "x-amz-checksum-crc32c as stored by the server");
            eprintln!("server returns x-amz-checksum-crc32c");
        }
        None => eprintln!("NOTE: server does not return x-amz-checksum-crc32c"),
    }
    cleanup(&store).await;
}

/// Base64 of a few bytes, the way S3 headers carry checksums.
fn aws_smithy_types_base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            out.push(if i <= c.len() {
                A[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

#[tokio::test]
async fn a_wrong_stored_checksum_is_corrupt_on_whole_reads_only() {
    let Some(srv) = server("a_wrong_stored_checksum_is_corrupt_on_whole_reads_only") else {
        return;
    };
    let store = srv.store("badcrc").await;
    let data = pattern(2, 5000);
    let wrong = crc32c::crc32c(&data) ^ 1;
    // Forge a block the way a damaged JuiceFS object would look: metadata that disagrees.
    srv.raw_client()
        .put_object()
        .bucket(&srv.bucket)
        .key(format!("{}forged", store.prefix()))
        .metadata("crc32c", wrong.to_string())
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    let err = store.get("forged").await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert!(matches!(
        store.get_block("forged", 5000).await,
        Err(StoreError::Corrupt(_))
    ));
    // A partial read has no whole-object checksum to check.
    assert_eq!(
        store.get_range("forged", 10, Some(20)).await.unwrap(),
        data.slice(10..30)
    );
    // A range that happens to cover the whole object is checked.
    assert!(matches!(
        store.get_range("forged", 0, Some(5000)).await,
        Err(StoreError::Corrupt(_))
    ));
    // Without checksums the store reads it as it is.
    let lax = S3Store::new(srv.options(store.prefix()).checksums(false)).unwrap();
    assert_eq!(lax.get("forged").await.unwrap(), data);
    cleanup(&store).await;
}

#[tokio::test]
async fn a_body_that_does_not_match_its_checksum_header_is_refused() {
    let Some(srv) = server("a_body_that_does_not_match_its_checksum_header_is_refused") else {
        return;
    };
    let store = srv.store("baddigest").await;
    let data = pattern(3, 1000);
    let wrong = aws_smithy_types_base64(&(crc32c::crc32c(&data) ^ 0xff).to_be_bytes());
    let r = srv
        .raw_client()
        .put_object()
        .bucket(&srv.bucket)
        .key(format!("{}x", store.prefix()))
        .checksum_crc32_c(wrong)
        .body(ByteStream::from(data))
        .send()
        .await;
    match r {
        Err(e) => {
            let status = e.raw_response().map(|r| r.status().as_u16());
            let code = aws_sdk_s3::error::ProvideErrorMetadata::code(&e).map(str::to_owned);
            eprintln!("server refused a bad x-amz-checksum-crc32c: {status:?} {code:?}");
            assert_eq!(status, Some(400));
            assert!(matches!(
                store.head("x").await,
                Err(StoreError::NotFound(_))
            ));
        }
        Ok(_) => {
            eprintln!("NOTE: server accepted a body that does not match x-amz-checksum-crc32c")
        }
    }
    cleanup(&store).await;
}

#[tokio::test]
async fn odd_keys_list_back_exactly() {
    let Some(srv) = server("odd_keys_list_back_exactly") else {
        return;
    };
    let store = srv.store("oddkeys").await;
    let keys = [
        "a b",
        "a+b",
        "a%20b",
        "caf\u{e9}",
        "x&y=z",
        "q?r",
        "semi;colon",
        "tab\tkey",
        "~tilde",
        "\u{20ac}/euro",
        "sp ace/in dir",
    ];
    let mut sorted: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    sorted.sort();
    for k in keys {
        store
            .put(k, Bytes::from(k.as_bytes().to_vec()))
            .await
            .unwrap();
    }
    let listed: Vec<String> = store
        .list_all("")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(listed, sorted);
    for k in keys {
        assert_eq!(store.get(k).await.unwrap(), k.as_bytes(), "{k:?}");
        assert_eq!(store.head(k).await.unwrap().size, k.len() as u64);
    }
    cleanup(&store).await;
}

#[tokio::test]
async fn wrong_secret_is_denied() {
    let Some(srv) = server("wrong_secret_is_denied") else {
        return;
    };
    let prefix = unique("denied");
    let bad = S3Store::new(
        srv.options(&prefix)
            .credentials(&srv.access, "not-the-secret"),
    )
    .unwrap();
    let err = bad.put("k", Bytes::from_static(b"v")).await.unwrap_err();
    assert!(matches!(err, StoreError::Denied(_)), "{err:?}");
    assert!(matches!(bad.get("k").await, Err(StoreError::Denied(_))));
    assert!(matches!(
        bad.list_page("", None, 10).await,
        Err(StoreError::Denied(_))
    ));
}

#[tokio::test]
async fn missing_bucket_is_not_a_missing_block() {
    let Some(srv) = server("missing_bucket_is_not_a_missing_block") else {
        return;
    };
    let mut opts = srv.options("x");
    opts.bucket = "no-such-bucket-chunkstore-tests".into();
    let store = S3Store::new(opts).unwrap();
    let err = store.get("k").await.unwrap_err();
    assert!(matches!(err, StoreError::Other { .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert!(matches!(
        store.list_page("", None, 10).await,
        Err(StoreError::Other { .. })
    ));
}

#[tokio::test]
async fn refused_connection_is_transient() {
    // Bind then drop: the port is closed, on loopback, so the connection is refused at once.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let store = S3Store::new(
        S3Options::new("b")
            .endpoint(format!("http://127.0.0.1:{port}"))
            .path_style(true)
            .credentials("ak", "sk"),
    )
    .unwrap();
    for r in [
        store.put("k", Bytes::from_static(b"v")).await.map(|_| ()),
        store.get("k").await.map(|_| ()),
        store.head("k").await.map(|_| ()),
        store.delete("k").await,
        store.list_page("", None, 5).await.map(|_| ()),
    ] {
        let err = r.unwrap_err();
        assert!(err.is_retryable(), "{err:?}");
    }
}

#[tokio::test]
async fn a_silent_server_times_out_as_transient() {
    // A listener that accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = listener.accept().await {
            conns.push(c);
        }
    });
    let store = S3Store::new(
        S3Options::new("b")
            .endpoint(format!("http://127.0.0.1:{port}"))
            .path_style(true)
            .credentials("ak", "sk")
            .request_timeout(Duration::from_millis(300)),
    )
    .unwrap();
    let start = std::time::Instant::now();
    let err = store.get("k").await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(
        err.to_string().contains("timed out") || format!("{err:?}").contains("timed out"),
        "{err:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    held.abort();
}

#[tokio::test]
async fn max_in_flight_bounds_concurrent_requests() {
    // A listener that counts connections and never answers: with two slots, at most two
    // requests can be waiting on it at once.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(AtomicU64::new(0));
    let seen2 = seen.clone();
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = listener.accept().await {
            seen2.fetch_add(1, Ordering::SeqCst);
            conns.push(c);
        }
    });
    let store = S3Store::new(
        S3Options::new("b")
            .endpoint(format!("http://127.0.0.1:{port}"))
            .path_style(true)
            .credentials("ak", "sk")
            .request_timeout(Duration::from_millis(400))
            .max_in_flight(2),
    )
    .unwrap();
    let calls = (0..6).map(|i| {
        let store = &store;
        async move { store.head(&format!("k{i}")).await }
    });
    let all = futures::future::join_all(calls);
    // Look while the first two requests hang.
    let probe = async {
        tokio::time::sleep(Duration::from_millis(250)).await;
        seen.load(Ordering::SeqCst)
    };
    let (results, during) = tokio::join!(all, probe);
    assert!(results
        .iter()
        .all(|r| matches!(r, Err(e) if e.is_retryable())));
    assert!(
        during <= 2,
        "{during} connections while only 2 requests may be in flight"
    );
    held.abort();
}

#[tokio::test]
async fn retry_over_faulty_s3_reads_back_everything() {
    let Some(srv) = server("retry_over_faulty_s3_reads_back_everything") else {
        return;
    };
    let s3 = srv.store("faulty").await;
    let faulty = Faulty::with_config(
        s3,
        11,
        FaultConfig::new().error_rate(0.1).lost_reply_rate(0.05),
    );
    let store = Retry::new(
        faulty,
        RetryOptions::new()
            .initial_backoff(Duration::from_millis(1))
            .max_backoff(Duration::from_millis(20))
            .max_attempts(12)
            .seed(5),
    );
    let mut written = Vec::new();
    for i in 0..40u64 {
        let data = pattern(1000 + i, 1 + (i as usize * 7919) % 70_000);
        let key = format!("blk{i}");
        store.put(&key, data.clone()).await.unwrap();
        written.push((key, data));
    }
    for (key, data) in &written {
        assert_eq!(
            &store.get_block(key, data.len() as u64).await.unwrap(),
            data
        );
    }
    let stats = store.inner().stats();
    assert!(stats.injected_errors + stats.lost_replies > 0, "{stats:?}");
    let inner = store.into_inner();
    cleanup(inner.inner()).await;
}

#[tokio::test]
async fn store_without_credentials_or_env_is_invalid() {
    // Only meaningful when the environment holds no AWS keys.
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        eprintln!("SKIP store_without_credentials_or_env_is_invalid: AWS_ACCESS_KEY_ID is set");
        return;
    }
    let r = S3Store::new(S3Options::new("b").endpoint("http://127.0.0.1:1"));
    assert!(matches!(r, Err(StoreError::Invalid(_))));
}

#[tokio::test]
async fn a_body_longer_than_asked_is_cut_off_as_it_streams() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A server that answers every GET with the range asked for, then never stops sending:
    // a client buffering whole bodies before checking them would wait (and grow) forever.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        while let Ok((mut c, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut req = vec![0u8; 8192];
                let _ = c.read(&mut req).await;
                let head = "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-9/100\r\n\
                            Transfer-Encoding: chunked\r\n\r\n";
                if c.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let piece = format!("{:x}\r\n{}\r\n", 4096, "x".repeat(4096));
                while c.write_all(piece.as_bytes()).await.is_ok() {}
            });
        }
    });
    let store = S3Store::new(
        S3Options::new("b")
            .endpoint(format!("http://127.0.0.1:{port}"))
            .path_style(true)
            .credentials("ak", "sk")
            .request_timeout(Duration::from_secs(5)),
    )
    .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), store.get_range("k", 0, Some(10)))
        .await
        .expect("the read ends once it has what it asked for")
        .unwrap();
    assert_eq!(&got[..], b"xxxxxxxxxx");
    server.abort();
}
