//! `S3Store`: blocks as objects in an S3-compatible bucket (feature `s3`).

mod bucket_url;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration, EncodingType};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use bytes::Bytes;
use tokio::sync::Semaphore;

use crate::key::validate_key;
use crate::{BoxError, ChunkStore, ListPage, ObjectMeta, Result, StoreError};

pub(crate) use bucket_url::{parse_bucket_url, BucketUrl};

/// How to reach a bucket. Start from [`S3Options::new`] or [`S3Options::from_bucket_url`]
/// and adjust with the builder methods.
#[derive(Clone)]
#[non_exhaustive]
pub struct S3Options {
    /// The bucket name.
    pub bucket: String,
    /// `http(s)://host[:port]` of an S3-compatible service; `None` means AWS's endpoint for
    /// [`region`](Self::region).
    pub endpoint: Option<String>,
    /// The signing region (default `us-east-1`, which S3-compatible servers accept).
    pub region: String,
    /// Path-style addressing (`endpoint/bucket/key`) instead of virtual-host
    /// (`bucket.endpoint/key`). Needed for IP endpoints and most self-hosted servers.
    pub path_style: bool,
    /// Access key id; with [`secret_key`](Self::secret_key) unset too, the environment's
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (/ `AWS_SESSION_TOKEN`) are used.
    pub access_key: Option<String>,
    /// Secret access key.
    pub secret_key: Option<String>,
    /// Session token of temporary credentials.
    pub session_token: Option<String>,
    /// Longest time one request may take, from sending it to the last byte of the reply
    /// (waiting for a free request slot is not counted). Running out is a transient error.
    /// Zero means no limit.
    pub request_timeout: Duration,
    /// Longest time to establish a connection.
    pub connect_timeout: Duration,
    /// Requests in flight at once; further calls wait for a slot.
    pub max_in_flight: usize,
    /// Prefix of every key in the bucket (a "directory": a `/` is added if missing); empty
    /// for the bucket's root.
    pub prefix: String,
    /// Send and verify CRC32C checksums (see the module docs).
    pub checksums: bool,
    /// How the server orders listings, and so how the store lists.
    pub list_order: ListOrder,
    /// The storage class of every object written (`x-amz-storage-class`, JuiceFS's
    /// `--storage-class`); empty for the bucket's default.
    pub storage_class: String,
}

/// How a server orders `ListObjectsV2` results.
///
/// S3 specifies byte order of keys, and [`ChunkStore::list_page`] promises it. Servers that
/// keep objects in a directory tree (SeaweedFS's filer, filesystem gateways) list a
/// directory's subtree where its name sorts, so `a/x` comes before `a-b` although `-` sorts
/// before `/`. The two orders differ only for keys that branch at a character below `/`
/// (space and `!"#$%&'()*+,-.`): JuiceFS's block keys never do, so [`ListOrder::Server`]
/// serves a JuiceFS volume correctly even on such servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ListOrder {
    /// Trust the server's byte order: one flat request per page. A page found out of order
    /// is an error, never silently passed on.
    #[default]
    Server,
    /// List level by level (delimiter `/`), sorting each level here: byte order on any
    /// server, at the cost of reading every directory level on the way to the page whole.
    ByDirectory,
}

impl fmt::Debug for S3Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Secrets never reach logs.
        f.debug_struct("S3Options")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("access_key", &self.access_key)
            .field(
                "secret_key",
                &self.secret_key.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_in_flight", &self.max_in_flight)
            .field("prefix", &self.prefix)
            .field("checksums", &self.checksums)
            .field("list_order", &self.list_order)
            .finish()
    }
}

impl S3Options {
    /// Options for `bucket` on AWS in `us-east-1`, credentials from the environment, 60 s
    /// requests, 64 in flight, checksums on.
    pub fn new(bucket: impl Into<String>) -> S3Options {
        S3Options {
            bucket: bucket.into(),
            endpoint: None,
            region: "us-east-1".to_string(),
            path_style: false,
            access_key: None,
            secret_key: None,
            session_token: None,
            request_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            max_in_flight: 64,
            prefix: String::new(),
            checksums: true,
            storage_class: String::new(),
            list_order: ListOrder::Server,
        }
    }

    /// Options from a JuiceFS `--bucket` URL, read as JuiceFS reads it (pkg/object/s3.go):
    ///
    /// | URL | bucket | endpoint | addressing |
    /// |---|---|---|---|
    /// | `http://127.0.0.1:9000/mybucket` | `mybucket` | `http://127.0.0.1:9000` | path style |
    /// | `https://minio.example.com/mybucket` | `mybucket` | `https://minio.example.com` | path style¹ |
    /// | `https://mybucket.minio.example.com` | `mybucket` | `https://minio.example.com` | path style¹ |
    /// | `https://mybucket.s3.us-west-2.amazonaws.com` | `mybucket` | AWS, `us-west-2` | virtual host |
    /// | `https://s3.us-west-2.amazonaws.com/mybucket` | `mybucket` | AWS, `us-west-2` | virtual host |
    /// | `mybucket` or `s3://mybucket` | `mybucket` | AWS, region from the environment² | virtual host |
    ///
    /// ¹ Path style is JuiceFS's default for every non-AWS endpoint; `JFS_S3_VHOST_STYLE=1`
    /// switches to virtual-host addressing, except for IP and `localhost` hosts, which only
    /// path style can address. ² JuiceFS asks AWS for the bucket's region; this sends no
    /// request, so the region comes from `AWS_REGION`, `AWS_DEFAULT_REGION`, else `us-east-1`
    /// (also for compatible endpoints, whose region JuiceFS reads from Oracle and OVH host
    /// names only, as here).
    ///
    /// Without a scheme, a host with a dot that is not AWS gets `http://`, anything else
    /// `https://`; `s3://` means `https://`. Path segments after the bucket are ignored, as
    /// JuiceFS ignores them (the objects live at the bucket's root, under the volume name).
    /// `?disable-checksum=true` turns the CRC32C checksums off. An IP or `localhost` URL
    /// without the bucket in its path, credentials in the URL, a scheme other than
    /// `http`/`https`/`s3` and a malformed bucket name are `Invalid`.
    pub fn from_bucket_url(url: &str) -> Result<S3Options> {
        let parsed: BucketUrl = parse_bucket_url(url, bucket_url::vhost_style_from_env())?;
        let mut opts = S3Options::new(parsed.bucket);
        opts.endpoint = parsed.endpoint;
        opts.region = parsed.region.unwrap_or_else(bucket_url::region_from_env);
        opts.path_style = parsed.path_style;
        opts.checksums = !parsed.disable_checksum;
        Ok(opts)
    }

    /// Sets the endpoint (`http://host:port` or `https://host`).
    pub fn endpoint(mut self, url: impl Into<String>) -> S3Options {
        self.endpoint = Some(url.into());
        self
    }

    /// Sets the region.
    pub fn region(mut self, region: impl Into<String>) -> S3Options {
        self.region = region.into();
        self
    }

    /// Chooses path-style (`true`) or virtual-host (`false`) addressing.
    pub fn path_style(mut self, path_style: bool) -> S3Options {
        self.path_style = path_style;
        self
    }

    /// Sets static credentials.
    pub fn credentials(
        mut self,
        access_key: impl Into<String>,
        secret_key: impl Into<String>,
    ) -> S3Options {
        self.access_key = Some(access_key.into());
        self.secret_key = Some(secret_key.into());
        self
    }

    /// Sets the session token of temporary credentials.
    pub fn session_token(mut self, token: impl Into<String>) -> S3Options {
        self.session_token = Some(token.into());
        self
    }

    /// Sets the per-request timeout.
    pub fn request_timeout(mut self, timeout: Duration) -> S3Options {
        self.request_timeout = timeout;
        self
    }

    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> S3Options {
        self.connect_timeout = timeout;
        self
    }

    /// Sets how many requests may be in flight at once (0 counts as 1).
    pub fn max_in_flight(mut self, n: usize) -> S3Options {
        self.max_in_flight = n.max(1);
        self
    }

    /// Sets the key prefix.
    pub fn prefix(mut self, prefix: impl Into<String>) -> S3Options {
        self.prefix = prefix.into();
        self
    }

    /// Sets [`S3Options::storage_class`].
    pub fn storage_class(mut self, class: impl Into<String>) -> S3Options {
        self.storage_class = class.into();
        self
    }

    /// Turns CRC32C checksums on or off.
    pub fn checksums(mut self, on: bool) -> S3Options {
        self.checksums = on;
        self
    }

    /// Sets how the server orders listings.
    pub fn list_order(mut self, order: ListOrder) -> S3Options {
        self.list_order = order;
        self
    }

    fn resolve_credentials(&self) -> Result<Credentials> {
        let given = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(str::to_owned);
        let (ak, sk, token) = match (given(&self.access_key), given(&self.secret_key)) {
            (Some(ak), Some(sk)) => (ak, sk, given(&self.session_token)),
            (None, None) => {
                let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
                match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
                    (Some(ak), Some(sk)) => (ak, sk, env("AWS_SESSION_TOKEN")),
                    _ => {
                        return Err(StoreError::Invalid(
                            "S3: no credentials given and AWS_ACCESS_KEY_ID / \
                             AWS_SECRET_ACCESS_KEY are not set"
                                .into(),
                        ))
                    }
                }
            }
            _ => {
                return Err(StoreError::Invalid(
                    "S3: an access key needs its secret key and the other way round".into(),
                ))
            }
        };
        Ok(Credentials::new(ak, sk, token, None, "chunkstore-static"))
    }
}

/// A [`ChunkStore`] on an S3-compatible bucket (feature `s3`).
///
/// Built on `aws-sdk-s3` without `aws-config`: the client is configured directly with static
/// credentials, a region and an endpoint, so it never consults the default credential chain
/// and never probes the EC2 instance-metadata service (`AWS_EC2_METADATA_DISABLED` does not
/// matter to it). The HTTP client is hyper 1 with rustls on `ring`: plain `http://` and
/// `https://` endpoints both work.
///
/// One block is one `PUT` (blocks are at most a few MiB, no multipart). Reads are ranged
/// `GET`s. The SDK's own retries are off: stack [`Retry`](crate::Retry) on top, so that retry
/// policy lives in one place.
///
/// # Integrity
///
/// With checksums on (the default), every `PUT` carries the block's CRC32C twice:
///
/// - as `x-amz-checksum-crc32c` (base64, big-endian), which S3 and servers implementing
///   "flexible checksums" verify on arrival and return on a `GET` sent with
///   `x-amz-checksum-mode: ENABLED`;
/// - as user metadata `x-amz-meta-crc32c` (decimal), exactly as JuiceFS writes it, which every
///   S3-compatible server stores and returns, so blocks written by `juicefs` are verified too.
///
/// A read that covers the whole object is checked against whichever of the two the server
/// returns; a mismatch is [`StoreError::Corrupt`], never data. A server that ignores the
/// checksum header (older MinIO, Ceph, …) still gets the metadata; a server that returns
/// neither simply goes unverified (the block length in the key is still checked by
/// [`ChunkStoreExt::get_block`](crate::ChunkStoreExt::get_block)). SeaweedFS 4.x keeps
/// both, returns both, and refuses a body that does not match its `x-amz-checksum-crc32c`
/// with `400 BadDigest`, which this store reports as transient (the bytes were damaged on
/// the way; `tests/s3.rs` checks all of it against the test server). Partial reads carry no
/// whole-object checksum and are not verified here; a ranged read that covers the whole
/// object (per `Content-Range`) is.
///
/// Keys ending in `/` ("folder" markers, and the emptied directories SeaweedFS lists so)
/// are not blocks and are left out of listings; see [`ListOrder`] for servers that list
/// keys as a directory tree.
///
/// Payloads are sent unsigned (`UNSIGNED-PAYLOAD`, as JuiceFS does): signing would hash every
/// block with SHA-256, and the CRC32C already covers the bytes.
///
/// ```no_run
/// # async fn demo() -> chunkstore::Result<()> {
/// use chunkstore::{ChunkStore, Retry, RetryOptions, S3Store};
/// let s3 = S3Store::from_bucket_url("http://127.0.0.1:9000/mybucket", "access", "secret")?;
/// s3.create_bucket().await?;
/// let store = Retry::new(s3, RetryOptions::default());
/// store.put("vol/chunks/0/0/1_0_5", bytes::Bytes::from_static(b"hello")).await?;
/// # Ok(())
/// # }
/// ```
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    region: String,
    endpoint: Option<String>,
    checksums: bool,
    list_order: ListOrder,
    storage_class: Option<aws_sdk_s3::types::StorageClass>,
    timeout: Duration,
    slots: Arc<Semaphore>,
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Store")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("checksums", &self.checksums)
            .field("list_order", &self.list_order)
            .finish_non_exhaustive()
    }
}

impl S3Store {
    /// A store with the given options. Builds the client only: no request is sent, so a
    /// wrong endpoint or key shows at the first call.
    pub fn new(opts: S3Options) -> Result<S3Store> {
        if opts.bucket.is_empty() {
            return Err(StoreError::Invalid("S3: empty bucket name".into()));
        }
        if let Some(ep) = &opts.endpoint {
            let lc = ep.to_ascii_lowercase();
            if !(lc.starts_with("http://") || lc.starts_with("https://")) {
                return Err(StoreError::Invalid(format!(
                    "S3 endpoint {ep:?} must start with http:// or https://"
                )));
            }
        }
        let prefix = normalize_prefix(&opts.prefix)?;
        let credentials = opts.resolve_credentials()?;
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(opts.region.clone()))
            .credentials_provider(credentials)
            .http_client(http)
            .force_path_style(opts.path_style)
            // Retries belong to the `Retry` decorator; two layers would multiply attempts.
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(opts.connect_timeout)
                    .build(),
            )
            // We add and check checksums ourselves (see the module docs).
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(ep) = &opts.endpoint {
            config = config.endpoint_url(ep.trim_end_matches('/'));
        }
        Ok(S3Store {
            client: aws_sdk_s3::Client::from_conf(config.build()),
            bucket: opts.bucket,
            prefix,
            region: opts.region,
            endpoint: opts.endpoint,
            checksums: opts.checksums,
            list_order: opts.list_order,
            storage_class: (!opts.storage_class.is_empty())
                .then(|| aws_sdk_s3::types::StorageClass::from(opts.storage_class.as_str())),
            timeout: opts.request_timeout,
            slots: Arc::new(Semaphore::new(
                opts.max_in_flight.clamp(1, Semaphore::MAX_PERMITS),
            )),
        })
    }

    /// A store from a JuiceFS `--bucket` URL (see [`S3Options::from_bucket_url`]) and keys;
    /// empty keys mean "from the environment".
    pub fn from_bucket_url(url: &str, access_key: &str, secret_key: &str) -> Result<S3Store> {
        let mut opts = S3Options::from_bucket_url(url)?;
        if !access_key.is_empty() || !secret_key.is_empty() {
            opts = opts.credentials(access_key, secret_key);
        }
        S3Store::new(opts)
    }

    /// The bucket name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key prefix in the bucket (empty or ending in `/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Creates the bucket; succeeds if it already exists and is ours.
    pub async fn create_bucket(&self) -> Result<()> {
        self.call("create-bucket", &self.bucket, async {
            let mut req = self.client.create_bucket().bucket(&self.bucket);
            // us-east-1 is the one region that must not be named as a location constraint.
            if self.region != "us-east-1" {
                req = req.create_bucket_configuration(
                    CreateBucketConfiguration::builder()
                        .location_constraint(BucketLocationConstraint::from(self.region.as_str()))
                        .build(),
                );
            }
            match req.send().await {
                Ok(_) => Ok(()),
                Err(e) => match e.code() {
                    // JuiceFS accepts both: some servers say "exists" for the owner's bucket.
                    Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists") => Ok(()),
                    _ => Err(map_sdk_error("create-bucket", &self.bucket, e)),
                },
            }
        })
        .await
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Runs one request in a slot, under the request timeout.
    async fn call<T>(
        &self,
        op: &'static str,
        key: &str,
        fut: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| StoreError::other(S3Error::new(op, key, "request limiter closed")))?;
        if self.timeout.is_zero() {
            return fut.await;
        }
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::transient(S3Error::new(
                op,
                key,
                format!("timed out after {:?}", self.timeout),
            ))),
        }
    }

    async fn get_inner(&self, key: &str, off: u64, len: Option<u64>) -> Result<Bytes> {
        let full = self.full_key(key);
        let range = range_header(off, len);
        let mut req = self.client.get_object().bucket(&self.bucket).key(&full);
        if let Some(r) = &range {
            req = req.range(r);
        }
        let sent = if self.checksums && range.is_none() {
            // Added by hand rather than with `checksum_mode`, which would make the SDK verify
            // the body too and report a mismatch as an opaque stream error.
            req.customize()
                .mutate_request(|r| {
                    r.headers_mut().insert("x-amz-checksum-mode", "ENABLED");
                })
                .send()
                .await
        } else {
            req.send().await
        };
        let out = match sent {
            Ok(out) => out,
            // 416: the object exists but the range starts at or after its end.
            Err(e) if http_status(&e) == Some(416) => return Ok(Bytes::new()),
            Err(e) => return Err(map_sdk_error("get", key, e)),
        };
        let content_range = out.content_range().map(str::to_owned);
        let amz_crc = out.checksum_crc32_c().map(str::to_owned);
        let meta_crc = out.metadata().and_then(|m| {
            m.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(JUICEFS_CRC_META))
                .map(|(_, v)| v.clone())
        });
        // What the body may hold: the range asked for, else the length the server
        // declares. A body longer than that is cut off as it streams in, so memory follows
        // the request, never what a server sends.
        let cap = match (&range, len) {
            (Some(_), Some(l)) => Some(l),
            _ => out.content_length().and_then(|n| u64::try_from(n).ok()),
        };
        let mut stream = out.body;
        let mut buf = bytes::BytesMut::new();
        while let Some(piece) = stream.try_next().await.map_err(|e| {
            StoreError::transient(S3Error::with_source(
                "get",
                key,
                "reading the body failed",
                Box::new(e),
            ))
        })? {
            let room = cap.map_or(usize::MAX, |c| {
                usize::try_from(c.saturating_sub(buf.len() as u64)).unwrap_or(usize::MAX)
            });
            buf.extend_from_slice(&piece[..piece.len().min(room)]);
            if piece.len() > room {
                break;
            }
        }
        let body = buf.freeze();

        let (data, whole) = match (&range, content_range) {
            (None, _) => (body, true),
            (Some(_), Some(cr)) => {
                let (first, last, total) = parse_content_range(&cr).ok_or_else(|| {
                    StoreError::other(S3Error::new(
                        "get",
                        key,
                        format!("bad Content-Range {cr:?}"),
                    ))
                })?;
                if first != off
                    || last.checked_sub(first).and_then(|n| n.checked_add(1))
                        != Some(body.len() as u64)
                {
                    return Err(StoreError::Corrupt(format!(
                        "{key}: asked for bytes from {off}, got Content-Range {cr:?} with {} bytes",
                        body.len()
                    )));
                }
                let whole = first == 0 && total.is_some_and(|t| last.checked_add(1) == Some(t));
                (body, whole)
            }
            // The server ignored the Range header and sent the whole object: cut it here.
            (Some(_), None) => {
                if self.checksums {
                    verify_crc(&body, amz_crc.as_deref(), meta_crc.as_deref())
                        .map_err(|why| StoreError::Corrupt(format!("{key}: {why}")))?;
                }
                return Ok(crate::mem::slice_range(&body, off, len));
            }
        };
        if whole && self.checksums {
            verify_crc(&data, amz_crc.as_deref(), meta_crc.as_deref())
                .map_err(|why| StoreError::Corrupt(format!("{key}: {why}")))?;
        }
        Ok(data)
    }

    /// One flat `ListObjectsV2` page, trusting the server's order (checked, not repaired).
    async fn list_flat(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        let full_prefix = self.full_key(prefix);
        // A marker below the prefix changes nothing; some servers (SeaweedFS before 4.48)
        // answer such a listing with nothing at all, so it is not sent.
        let after = start_after
            .map(|a| self.full_key(a))
            .filter(|a| a.as_str() >= full_prefix.as_str());
        let max_keys = i32::try_from(limit.min(1000)).unwrap_or(1000);
        let mut token: Option<String> = None;
        // A server may return an empty page that is still truncated; follow it a few times
        // rather than hand the caller a page that says "more" but holds nothing.
        for _ in 0..16 {
            let mut req = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&full_prefix)
                .max_keys(max_keys)
                .encoding_type(EncodingType::Url);
            if let Some(a) = &after {
                req = req.start_after(a);
            }
            if let Some(t) = &token {
                req = req.continuation_token(t);
            }
            let out = req
                .send()
                .await
                .map_err(|e| map_sdk_error("list", prefix, e))?;
            let encoded = matches!(out.encoding_type(), Some(EncodingType::Url));
            let mut objects: Vec<ObjectMeta> = Vec::with_capacity(out.contents().len());
            for o in out.contents() {
                let meta = self.listed(prefix, o.key(), encoded, o.size(), o.last_modified())?;
                if is_directory_marker(&meta.key) {
                    continue;
                }
                let in_order = objects.last().is_none_or(|prev| prev.key < meta.key)
                    && start_after.is_none_or(|a| meta.key.as_str() > a)
                    && meta.key.starts_with(prefix);
                if !in_order {
                    return Err(StoreError::other(S3Error::new(
                        "list",
                        prefix,
                        format!(
                            "server listed {:?} out of key order (a server that lists keys as \
                             a directory tree needs ListOrder::ByDirectory)",
                            meta.key
                        ),
                    )));
                }
                objects.push(meta);
            }
            let truncated = out.is_truncated().unwrap_or(false);
            token = out.next_continuation_token().map(str::to_owned);
            if objects.is_empty() && truncated && token.is_some() {
                continue;
            }
            objects.truncate(limit);
            return Ok(ListPage { objects, truncated });
        }
        Err(StoreError::transient(S3Error::new(
            "list",
            prefix,
            "server returned only empty truncated pages",
        )))
    }

    /// A page in byte order from a server that walks keys as a directory tree: each level
    /// is listed whole with delimiter `/`, sorted here, and walked depth first.
    async fn list_by_directory(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        let after = start_after.map(|a| self.full_key(a));
        let after = after.as_deref();
        let mut objects = Vec::new();
        let mut stack: Vec<std::vec::IntoIter<LevelEntry>> = vec![self
            .list_level(prefix, &self.full_key(prefix))
            .await?
            .into_iter()];
        while let Some(level) = stack.last_mut() {
            let Some(entry) = level.next() else {
                stack.pop();
                continue;
            };
            match entry {
                LevelEntry::Object(meta) => {
                    if after.is_some_and(|a| self.full_key(&meta.key).as_str() <= a) {
                        continue;
                    }
                    if objects.len() == limit {
                        return Ok(ListPage {
                            objects,
                            truncated: true,
                        });
                    }
                    objects.push(meta);
                }
                LevelEntry::Dir(dir) => {
                    // Every key below `dir` sorts before the marker: skip the whole subtree.
                    if after.is_some_and(|a| a >= dir.as_str() && !a.starts_with(dir.as_str())) {
                        continue;
                    }
                    // A listed directory holds objects, all after the keys already taken (were
                    // it empty after all, the next page would merely come back empty).
                    if objects.len() == limit {
                        return Ok(ListPage {
                            objects,
                            truncated: true,
                        });
                    }
                    let sub = self.list_level(prefix, &dir).await?;
                    stack.push(sub.into_iter());
                }
            }
        }
        Ok(ListPage {
            objects,
            truncated: false,
        })
    }

    /// Every object and sub-directory directly under `full_prefix`, in byte order.
    async fn list_level(&self, prefix: &str, full_prefix: &str) -> Result<Vec<LevelEntry>> {
        let mut entries = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut req = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(full_prefix)
                .delimiter("/")
                .max_keys(1000)
                .encoding_type(EncodingType::Url);
            if let Some(t) = &token {
                req = req.continuation_token(t);
            }
            let out = req
                .send()
                .await
                .map_err(|e| map_sdk_error("list", prefix, e))?;
            let encoded = matches!(out.encoding_type(), Some(EncodingType::Url));
            for o in out.contents() {
                let meta = self.listed(prefix, o.key(), encoded, o.size(), o.last_modified())?;
                if !is_directory_marker(&meta.key) {
                    entries.push(LevelEntry::Object(meta));
                }
            }
            for cp in out.common_prefixes() {
                let raw = cp.prefix().unwrap_or_default();
                let dir = if encoded {
                    url_decode(raw).ok_or_else(|| {
                        StoreError::other(S3Error::new(
                            "list",
                            prefix,
                            format!("undecodable prefix {raw:?}"),
                        ))
                    })?
                } else {
                    raw.to_string()
                };
                if !dir.starts_with(full_prefix)
                    || !dir.ends_with('/')
                    || dir.len() <= full_prefix.len()
                {
                    return Err(StoreError::other(S3Error::new(
                        "list",
                        prefix,
                        format!("server listed directory {dir:?} outside {full_prefix:?}"),
                    )));
                }
                entries.push(LevelEntry::Dir(dir));
            }
            token = out.next_continuation_token().map(str::to_owned);
            if !out.is_truncated().unwrap_or(false) || token.is_none() {
                break;
            }
        }
        // Objects carry keys without the store prefix, directories with it: compare alike.
        let sort_key = |e: &LevelEntry| match e {
            LevelEntry::Object(m) => self.full_key(&m.key),
            LevelEntry::Dir(d) => d.clone(),
        };
        entries.sort_by_cached_key(sort_key);
        Ok(entries)
    }

    /// A listed object as the caller sees it: key decoded, store prefix removed.
    fn listed(
        &self,
        prefix: &str,
        raw: Option<&str>,
        encoded: bool,
        size: Option<i64>,
        mtime: Option<&aws_sdk_s3::primitives::DateTime>,
    ) -> Result<ObjectMeta> {
        let raw = raw.unwrap_or_default();
        let full = if encoded {
            url_decode(raw).ok_or_else(|| {
                StoreError::other(S3Error::new(
                    "list",
                    prefix,
                    format!("undecodable key {raw:?}"),
                ))
            })?
        } else {
            raw.to_string()
        };
        let Some(key) = full.strip_prefix(&self.prefix) else {
            return Err(StoreError::other(S3Error::new(
                "list",
                prefix,
                format!("listed key {full:?} outside the store prefix"),
            )));
        };
        Ok(ObjectMeta {
            key: key.to_string(),
            size: u64::try_from(size.unwrap_or(0)).unwrap_or(0),
            mtime: mtime.map(|t| t.secs()).unwrap_or(0),
        })
    }
}

/// Whether a listed key is a "folder" marker (`dir/`) rather than a block: servers that keep
/// a directory tree (SeaweedFS) list emptied directories so, and no valid key ends in `/`.
fn is_directory_marker(key: &str) -> bool {
    key.ends_with('/')
}

/// One entry of a directory level: an object (key without the store prefix) or a
/// sub-directory (full prefix, ending in `/`).
enum LevelEntry {
    Object(ObjectMeta),
    Dir(String),
}

#[async_trait]
impl ChunkStore for S3Store {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        validate_key(key)?;
        let full = self.full_key(key);
        let len = i64::try_from(data.len())
            .map_err(|_| StoreError::Invalid(format!("{key}: object too large")))?;
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(full)
            .content_length(len)
            .set_storage_class(self.storage_class.clone());
        if self.checksums {
            let crc = crc32c::crc32c(&data);
            req = req
                .checksum_crc32_c(base64_encode(&crc.to_be_bytes()))
                .metadata(JUICEFS_CRC_META, crc.to_string());
        }
        let req = req.body(ByteStream::from(data));
        self.call("put", key, async {
            req.customize()
                .disable_payload_signing()
                .send()
                .await
                .map(|_| ())
                .map_err(|e| map_sdk_error("put", key, e))
        })
        .await
    }

    async fn get_range(&self, key: &str, off: u64, len: Option<u64>) -> Result<Bytes> {
        validate_key(key)?;
        // Nothing to fetch, but a missing object must still be reported; likewise for an
        // offset no server parses.
        if len == Some(0) || off > i64::MAX as u64 {
            self.head(key).await?;
            return Ok(Bytes::new());
        }
        self.call("get", key, self.get_inner(key, off, len)).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        let full = self.full_key(key);
        self.call("delete", key, async {
            match self
                .client
                .delete_object()
                .bucket(&self.bucket)
                .key(full)
                .send()
                .await
            {
                Ok(_) => Ok(()),
                Err(e) => match map_sdk_error("delete", key, e) {
                    StoreError::NotFound(_) => Ok(()),
                    other => Err(other),
                },
            }
        })
        .await
    }

    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        if limit == 0 {
            return Err(StoreError::Invalid("list limit must be positive".into()));
        }
        if prefix.contains('\0') || start_after.is_some_and(|a| a.contains('\0')) {
            return Err(StoreError::Invalid("list prefix contains NUL".into()));
        }
        match self.list_order {
            ListOrder::Server => {
                self.call("list", prefix, self.list_flat(prefix, start_after, limit))
                    .await
            }
            ListOrder::ByDirectory => {
                self.call(
                    "list",
                    prefix,
                    self.list_by_directory(prefix, start_after, limit),
                )
                .await
            }
        }
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        validate_key(key)?;
        let full = self.full_key(key);
        self.call("head", key, async {
            let out = self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(full)
                .send()
                .await
                .map_err(|e| map_sdk_error("head", key, e))?;
            let size = out
                .content_length()
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| {
                    StoreError::other(S3Error::new("head", key, "reply without Content-Length"))
                })?;
            Ok(ObjectMeta {
                key: key.to_string(),
                size,
                mtime: out.last_modified().map(|t| t.secs()).unwrap_or(0),
            })
        })
        .await
    }
}

/// The user-metadata name JuiceFS stores a block's CRC32C under (`x-amz-meta-crc32c`).
const JUICEFS_CRC_META: &str = "crc32c";

fn normalize_prefix(prefix: &str) -> Result<String> {
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    validate_key(trimmed)
        .map_err(|e| StoreError::Invalid(format!("S3 key prefix {prefix:?}: {e}")))?;
    Ok(format!("{trimmed}/"))
}

/// The `Range` header for a read of `len` bytes at `off` (`len` > 0), or `None` for the
/// whole object. An end beyond what a signed 64-bit integer holds becomes an open range,
/// since servers parse ranges as such.
fn range_header(off: u64, len: Option<u64>) -> Option<String> {
    match len {
        None if off == 0 => None,
        None => Some(format!("bytes={off}-")),
        Some(n) => match off.checked_add(n.saturating_sub(1)) {
            Some(end) if end <= i64::MAX as u64 => Some(format!("bytes={off}-{end}")),
            _ => Some(format!("bytes={off}-")),
        },
    }
}

/// `bytes FIRST-LAST/TOTAL` (TOTAL may be `*`) → (first, last, total).
fn parse_content_range(v: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (span, total) = rest.split_once('/')?;
    let (first, last) = span.split_once('-')?;
    let first = first.trim().parse().ok()?;
    let last = last.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    (first <= last).then_some((first, last, total))
}

/// Checks `data` against the checksums a server returned: `x-amz-checksum-crc32c` (base64 of
/// the big-endian CRC) and JuiceFS's `x-amz-meta-crc32c` (decimal). Values that are not
/// plain checksums (multipart composites `…-N`, garbage from another writer) are skipped:
/// they cannot be checked, and refusing the block would make good data unreadable.
fn verify_crc(
    data: &[u8],
    amz: Option<&str>,
    meta: Option<&str>,
) -> std::result::Result<(), String> {
    let want_amz = amz
        .filter(|v| !v.contains('-'))
        .and_then(base64_decode)
        .and_then(|b| <[u8; 4]>::try_from(b.as_slice()).ok())
        .map(u32::from_be_bytes);
    // Go's int(uint32) is negative on 32-bit builds; accept both readings.
    let want_meta = meta
        .and_then(|v| v.trim().parse::<i64>().ok())
        .map(|n| n as u32);
    if want_amz.is_none() && want_meta.is_none() {
        return Ok(());
    }
    let got = crc32c::crc32c(data);
    for (name, want) in [
        ("x-amz-checksum-crc32c", want_amz),
        ("x-amz-meta-crc32c", want_meta),
    ] {
        if let Some(w) = want {
            if w != got {
                return Err(format!(
                    "CRC32C mismatch: {} bytes hash to {got:#010x}, {name} says {w:#010x}",
                    data.len()
                ));
            }
        }
    }
    Ok(())
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim().trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = B64.iter().position(|&b| b == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Undoes S3's `encoding-type=url` on a listed key: `%XX` escapes, and `+` for a space (the
/// form S3 uses, as in a query string).
fn url_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The detail behind an S3 error: which operation on which key, and what the SDK said.
#[derive(Debug)]
struct S3Error {
    op: &'static str,
    key: String,
    detail: String,
    source: Option<BoxError>,
}

impl S3Error {
    fn new(op: &'static str, key: &str, detail: impl Into<String>) -> S3Error {
        S3Error {
            op,
            key: key.to_string(),
            detail: detail.into(),
            source: None,
        }
    }

    fn with_source(
        op: &'static str,
        key: &str,
        detail: impl Into<String>,
        source: BoxError,
    ) -> S3Error {
        S3Error {
            source: Some(source),
            ..S3Error::new(op, key, detail)
        }
    }
}

impl fmt::Display for S3Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "S3 {} {:?}: {}", self.op, self.key, self.detail)
    }
}

impl std::error::Error for S3Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The kind of [`StoreError`] a failed request becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorClass {
    NotFound,
    Denied,
    Invalid,
    Transient,
    Other,
}

/// Error codes that mean "try again": throttling, server trouble, a body damaged or cut in
/// transit (the bytes we send are checksummed, so a digest mismatch is the network's fault).
const TRANSIENT_CODES: &[&str] = &[
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "ServiceUnavailable",
    "BadDigest",
    "XAmzContentSHA256Mismatch",
    "IncompleteBody",
];

/// Classifies a service reply by HTTP status and S3 error code.
fn classify(status: u16, code: Option<&str>) -> ErrorClass {
    match code {
        Some("NoSuchKey" | "NotFound") => return ErrorClass::NotFound,
        // A missing bucket is a configuration problem, not a missing block.
        Some("NoSuchBucket") => return ErrorClass::Other,
        Some(c) if TRANSIENT_CODES.contains(&c) => return ErrorClass::Transient,
        _ => {}
    }
    match status {
        404 => ErrorClass::NotFound,
        401 | 403 => ErrorClass::Denied,
        408 | 429 | 500..=599 => ErrorClass::Transient,
        400 => ErrorClass::Invalid,
        _ => ErrorClass::Other,
    }
}

fn http_status<E>(e: &SdkError<E, HttpResponse>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

fn map_sdk_error<E>(op: &'static str, key: &str, e: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let class = match &e {
        SdkError::ServiceError(se) => classify(se.raw().status().as_u16(), se.err().code()),
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => ErrorClass::Transient,
        SdkError::DispatchFailure(d) if d.is_user() => ErrorClass::Other,
        SdkError::DispatchFailure(_) => ErrorClass::Transient,
        _ => ErrorClass::Other,
    };
    let detail = DisplayErrorContext(&e).to_string();
    match class {
        ErrorClass::NotFound => StoreError::NotFound(key.to_string()),
        ErrorClass::Denied => StoreError::Denied(format!("S3 {op} {key:?}: {detail}")),
        ErrorClass::Invalid => StoreError::Invalid(format!("S3 {op} {key:?}: {detail}")),
        ErrorClass::Transient => {
            StoreError::transient(S3Error::with_source(op, key, detail, Box::new(e)))
        }
        ErrorClass::Other => StoreError::other(S3Error::with_source(op, key, detail, Box::new(e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        use ErrorClass::*;
        let cases: &[(u16, Option<&str>, ErrorClass)] = &[
            (404, Some("NoSuchKey"), NotFound),
            (404, None, NotFound),
            (404, Some("NotFound"), NotFound),
            (404, Some("NoSuchBucket"), Other),
            (403, Some("AccessDenied"), Denied),
            (403, Some("SignatureDoesNotMatch"), Denied),
            (403, None, Denied),
            (400, Some("InvalidArgument"), Invalid),
            (400, Some("RequestTimeout"), Transient),
            (400, Some("BadDigest"), Transient),
            (503, Some("SlowDown"), Transient),
            (503, None, Transient),
            (500, Some("InternalError"), Transient),
            (502, None, Transient),
            (429, None, Transient),
            (408, None, Transient),
            (200, Some("SlowDown"), Transient),
            (409, Some("OperationAborted"), Other),
            (405, None, Other),
            (301, Some("PermanentRedirect"), Other),
        ];
        for (status, code, want) in cases {
            assert_eq!(classify(*status, *code), *want, "{status} {code:?}");
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(range_header(0, None), None);
        assert_eq!(range_header(5, None).as_deref(), Some("bytes=5-"));
        assert_eq!(range_header(0, Some(10)).as_deref(), Some("bytes=0-9"));
        assert_eq!(range_header(100, Some(1)).as_deref(), Some("bytes=100-100"));
        assert_eq!(range_header(9, Some(u64::MAX)).as_deref(), Some("bytes=9-"));
        assert_eq!(
            range_header(0, Some(1 << 63)).as_deref(),
            Some("bytes=0-9223372036854775807")
        );
        assert_eq!(range_header(1, Some(1 << 63)).as_deref(), Some("bytes=1-"));
    }

    #[test]
    fn content_ranges() {
        assert_eq!(parse_content_range("bytes 0-9/10"), Some((0, 9, Some(10))));
        assert_eq!(parse_content_range("bytes 5-5/*"), Some((5, 5, None)));
        assert_eq!(parse_content_range("bytes 9-5/10"), None);
        assert_eq!(parse_content_range("bytes */10"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
    }

    #[test]
    fn base64_round_trips() {
        for data in [&b""[..], b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar"] {
            let enc = base64_encode(data);
            assert_eq!(base64_decode(&enc).as_deref(), Some(data), "{enc}");
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_decode("Zm9v!"), None);
    }

    #[test]
    fn crc_checks() {
        let data = b"hello, world";
        let crc = crc32c::crc32c(data);
        let amz = base64_encode(&crc.to_be_bytes());
        let meta = crc.to_string();
        assert_eq!(verify_crc(data, Some(&amz), Some(&meta)), Ok(()));
        assert_eq!(verify_crc(data, None, None), Ok(()));
        assert!(verify_crc(b"hello, World", Some(&amz), None).is_err());
        assert!(verify_crc(b"hello, World", None, Some(&meta)).is_err());
        // Go on 32 bits writes int(uint32) negative for values above 2^31.
        let neg = (crc as i32).to_string();
        assert_eq!(verify_crc(data, None, Some(&neg)), Ok(()));
        // Composite (multipart) and malformed values are skipped, not failed.
        assert_eq!(
            verify_crc(data, Some("AAAAAA==-3"), Some("not a number")),
            Ok(())
        );
        // Known vector: CRC32C("123456789") = 0xE3069283.
        let v = base64_encode(&0xE306_9283u32.to_be_bytes());
        assert_eq!(
            verify_crc(b"123456789", Some(&v), Some("3808858755")),
            Ok(())
        );
    }

    #[test]
    fn url_decoding() {
        assert_eq!(url_decode("a%2Fb+c%25").as_deref(), Some("a/b c%"));
        assert_eq!(url_decode("plain/key_1").as_deref(), Some("plain/key_1"));
        assert_eq!(url_decode("%E2%82%AC").as_deref(), Some("€"));
        assert_eq!(url_decode("bad%2"), None);
        assert_eq!(url_decode("bad%zz"), None);
        assert_eq!(url_decode("%FF"), None);
    }

    #[test]
    fn prefixes() {
        assert_eq!(normalize_prefix("").unwrap(), "");
        assert_eq!(normalize_prefix("vol").unwrap(), "vol/");
        assert_eq!(normalize_prefix("a/b/").unwrap(), "a/b/");
        assert!(matches!(
            normalize_prefix("a//b"),
            Err(StoreError::Invalid(_))
        ));
    }

    #[test]
    fn options_hide_secrets_and_need_both_keys() {
        let o = S3Options::new("b")
            .credentials("AKID", "topsecret")
            .session_token("tok");
        let dbg = format!("{o:?}");
        assert!(dbg.contains("AKID") && !dbg.contains("topsecret") && !dbg.contains("tok\""));
        let half = S3Options {
            secret_key: None,
            ..o.clone()
        };
        assert!(matches!(
            half.resolve_credentials(),
            Err(StoreError::Invalid(_))
        ));
        assert!(o.resolve_credentials().is_ok());
    }

    #[test]
    fn store_from_bucket_url_needs_no_network() {
        let s = S3Store::from_bucket_url("http://127.0.0.1:1/bkt", "ak", "sk").unwrap();
        assert_eq!(s.bucket(), "bkt");
        assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:1"));
        assert!(s.checksums);
        let o = S3Options::from_bucket_url("http://127.0.0.1:1/bkt?disable-checksum=true").unwrap();
        assert!(!o.checksums && o.path_style);
        assert!(matches!(
            S3Store::new(
                S3Options::new("b")
                    .credentials("a", "s")
                    .endpoint("ftp://x")
            ),
            Err(StoreError::Invalid(_))
        ));
    }
}
