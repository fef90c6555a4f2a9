//! Helpers shared by the integration tests: fresh file-backed volumes and raw access to
//! their database for checking what is stored.

#![allow(dead_code)] // Each test crate uses a different subset.
#![allow(clippy::unwrap_used)] // Test helpers: a failure here is a test failure.

use meta_api::{Format, MetaEngine, SessionInfo};
use meta_sqlite::SqliteMeta;
use rusqlite::Connection;

/// A volume in a temporary directory.
pub struct Volume {
    pub dir: tempfile::TempDir,
    pub url: String,
}

impl Volume {
    /// A new database file, not formatted.
    pub fn new() -> Volume {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite3://{}/meta.db", dir.path().display());
        Volume { dir, url }
    }

    /// A new volume formatted with `format` (trash off unless the format says otherwise).
    pub async fn formatted(format: &Format) -> Volume {
        let v = Volume::new();
        SqliteMeta::open(&v.url)
            .await
            .unwrap()
            .init(format, false)
            .await
            .unwrap();
        v
    }

    /// A client with a session.
    pub async fn client(&self) -> SqliteMeta {
        let m = SqliteMeta::open(&self.url).await.unwrap();
        m.new_session(&SessionInfo {
            version: "1.0-test".into(),
            host_name: "testhost".into(),
            mount_point: "/mnt/test".into(),
            process_id: 4242,
        })
        .await
        .unwrap();
        m
    }

    /// A raw connection to the database file.
    pub fn raw(&self) -> Connection {
        let conn = Connection::open(self.dir.path().join("meta.db")).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        conn
    }
}

/// The settings the tests format volumes with.
pub fn test_format() -> Format {
    Format::new(
        "testvol",
        "3a6f1f0e-9d57-4a8e-9c4e-2b8f3c0d1e2f",
        "file",
        "/tmp/meta-sqlite-test-bucket/",
    )
}

/// One integer column of the first row of `sql`.
pub fn int(c: &Connection, sql: &str) -> i64 {
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}
