//! Helpers shared by the cross-crate integration tests: locating the services the project's
//! test script starts (`scripts/services.sh`) and driving the real `juicefs` client.
//!
//! A test that needs a service asks for it here. When the service is missing, the test
//! fails if `CI` is set (CI must never silently skip) and otherwise prints a loud SKIP.

pub mod interop;
pub mod tree;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The value of environment variable `var` naming a service, or `None` (with a loud
/// message) when it is unset outside CI. Panics under CI when it is unset.
pub fn service(var: &str) -> Option<String> {
    tessera_testenv::env(var, "run scripts/test-all.sh to start the services")
}

/// Database `db` of the Redis server `REDIS_URL` names (see [`service`]).
pub fn redis_db_url(db: u32) -> Option<String> {
    let base = service("REDIS_URL")?;
    Some(format!("{}/{db}", base.trim_end_matches('/')))
}

/// Empties the Redis database at `url` (`redis-cli FLUSHDB`); panics if that fails.
pub fn flush_redis(url: &str) {
    let out = std::process::Command::new("redis-cli")
        .args(["-u", url, "FLUSHDB"])
        .output();
    assert!(
        out.is_ok_and(|o| o.status.success()),
        "redis-cli FLUSHDB on {url}"
    );
}

/// The real juicefs client, used as the interop oracle.
#[derive(Debug, Clone)]
pub struct Juicefs {
    bin: PathBuf,
}

impl Juicefs {
    /// The client named by `JUICEFS_BIN` (see [`service`] for the missing case).
    pub fn from_env() -> Option<Juicefs> {
        service("JUICEFS_BIN").map(|b| Juicefs { bin: b.into() })
    }

    /// Runs `juicefs args…` with `envs`, panicking with its output when it fails.
    pub fn run(&self, args: &[&str], envs: &[(&str, &str)]) -> Output {
        let out = self.try_run(args, envs);
        assert!(
            out.status.success(),
            "juicefs {args:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs `juicefs args…` and returns its output whatever the status.
    pub fn try_run(&self, args: &[&str], envs: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args).env("JFS_NO_CHECK_OBJECT_STORAGE", "1");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        match cmd.output() {
            Ok(o) => o,
            Err(e) => panic!("cannot run {}: {e}", self.bin.display()),
        }
    }

    /// `juicefs format` of a volume on any metadata URL with local-directory storage (trash
    /// off) and extra args.
    pub fn format_file_volume(&self, meta_url: &str, name: &str, bucket: &Path, extra: &[&str]) {
        let bucket = format!("{}/", bucket.display());
        let mut args = vec![
            "format",
            "--no-update",
            "--trash-days",
            "0",
            "--storage",
            "file",
            "--bucket",
            &bucket,
        ];
        args.extend_from_slice(extra);
        args.push(meta_url);
        args.push(name);
        self.run(&args, &[]);
    }

    /// `juicefs format` of a volume on any metadata URL with S3 storage (trash off) and extra
    /// args: `bucket_url` is JuiceFS's `--bucket` (`http://127.0.0.1:PORT/bucket`); the
    /// volume's objects live under `name/` in that bucket.
    pub fn format_s3_volume(&self, meta_url: &str, name: &str, s3: &S3Service, extra: &[&str]) {
        let bucket = s3.bucket_url();
        let mut args = vec![
            "format",
            "--no-update",
            "--trash-days",
            "0",
            "--storage",
            "s3",
            "--bucket",
            &bucket,
            "--access-key",
            &s3.access_key,
            "--secret-key",
            &s3.secret_key,
        ];
        args.extend_from_slice(extra);
        args.push(meta_url);
        args.push(name);
        self.run(&args, &[]);
    }

    /// `juicefs sync SRC DST` where either side may be `jfs://VOL/…`; the metadata URL is
    /// passed through the environment variable `VOL` as juicefs expects.
    pub fn sync(&self, meta_url: &str, src: &str, dst: &str, extra: &[&str]) {
        let mut args = vec!["sync", "--links", "--threads", "4"];
        args.extend_from_slice(extra);
        args.push(src);
        args.push(dst);
        self.run(&args, &[("VOL", meta_url)]);
    }

    /// `juicefs dump META` parsed as JSON.
    pub fn dump(&self, meta_url: &str) -> serde_json::Value {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let path = dir.path().join("dump.json");
        let p = path.to_string_lossy().into_owned();
        self.run(&["dump", meta_url, &p], &[]);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read dump: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse dump: {e}"))
    }

    /// `juicefs fsck META`; panics (with the report) unless it finds nothing wrong.
    pub fn fsck(&self, meta_url: &str) {
        let out = self.try_run(&["fsck", meta_url], &[]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "juicefs fsck failed:\n{text}");
        for bad in ["lost", "broken", "corrupt", "<ERROR>", "<FATAL>"] {
            assert!(
                !text.contains(bad),
                "juicefs fsck reported {bad:?}:\n{text}"
            );
        }
    }
}

/// A `sqlite3://` URL for a database file.
pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite3://{}", path.display())
}

/// The S3 test server `scripts/services.sh` starts (SeaweedFS on loopback), with one
/// bucket that tests share by using their own volume names (object prefixes).
#[derive(Debug, Clone)]
pub struct S3Service {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The bucket's name.
    pub bucket: String,
    /// Access key.
    pub access_key: String,
    /// Secret key.
    pub secret_key: String,
}

impl S3Service {
    /// The server from `S3_ENDPOINT`, `S3_BUCKET`, `S3_ACCESS_KEY` and `S3_SECRET_KEY` (see
    /// [`service`] for the missing case).
    pub fn from_env() -> Option<S3Service> {
        Some(S3Service {
            endpoint: service("S3_ENDPOINT")?.trim_end_matches('/').to_string(),
            bucket: service("S3_BUCKET")?,
            access_key: service("S3_ACCESS_KEY")?,
            secret_key: service("S3_SECRET_KEY")?,
        })
    }

    /// JuiceFS's `--bucket` URL of the bucket (`http://127.0.0.1:PORT/bucket`).
    pub fn bucket_url(&self) -> String {
        format!("{}/{}", self.endpoint, self.bucket)
    }
}

/// A volume name (object prefix in a shared bucket) no other test or run uses.
pub fn unique_volume_name(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{test}-{}-{nanos}", std::process::id())
}
