//! Volume settings: JuiceFS's `setting` JSON ("Format").

use serde::{Deserialize, Serialize};

use crate::{MetaError, Result};

/// The newest metadata layout version (`MetaVersion`) this library reads and writes:
/// JuiceFS 1.x's.
pub const MAX_META_VERSION: u32 = 1;

/// What a dump writes in place of the object store's secret key and session token when it
/// leaves them out (JuiceFS's word): such settings hold no credentials to decrypt.
pub const REMOVED_SECRET: &str = "removed";

/// The JuiceFS release whose volumes this library is compatible with: a volume whose
/// `MinClientVersion` is newer uses something this library does not know.
pub const JUICEFS_COMPAT: (u32, u32, u32) = (1, 4, 2);

/// `major.minor.patch` of a JuiceFS version string (`1.1.0-A`, `1.2.0`, `1.3`): the
/// suffix after `-` or `+` is ignored; `None` when it is not a version.
pub fn parse_version(v: &str) -> Option<(u32, u32, u32)> {
    let core = v.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u32>().ok());
    let major = parts.next()??;
    let minor = parts.next().unwrap_or(Some(0))?;
    let patch = parts.next().unwrap_or(Some(0))?;
    if parts.next().is_some() {
        return None;
    }
    Some((major, minor, patch))
}

/// The settings of a volume, stored by every engine under the name `format`/`setting`
/// as the same JSON JuiceFS writes. Unknown fields are kept so that a round trip through
/// this client never drops what a newer client wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct Format {
    /// Volume name.
    pub name: String,
    /// Volume UUID; object keys live under `name/`, the UUID identifies the volume.
    #[serde(rename = "UUID")]
    pub uuid: String,
    /// Storage kind: `file`, `s3`, `mem`, …
    pub storage: String,
    /// Storage class for object stores that have them.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub storage_class: String,
    /// Bucket URL or directory (for `file`, ends with `/`).
    pub bucket: String,
    /// Access key of the object store.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub access_key: String,
    /// Secret key of the object store.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret_key: String,
    /// Session token of the object store.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub session_token: String,
    /// Block size in KiB (default 4096).
    pub block_size: u32,
    /// Compression: `none`, `lz4` or `zstd`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub compression: String,
    /// Number of buckets for sharded object keys.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub shards: u32,
    /// Whether object keys carry a hash prefix.
    #[serde(default, skip_serializing_if = "is_false")]
    pub hash_prefix: bool,
    /// Capacity in bytes (0 = unlimited).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub capacity: u64,
    /// Inode limit (0 = unlimited).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub inodes: u64,
    /// Encryption key (encrypted volumes are refused).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub encrypt_key: String,
    /// Encryption algorithm.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub encrypt_algo: String,
    /// Days deleted files stay in the trash (0 = no trash).
    #[serde(default)]
    pub trash_days: u32,
    /// Metadata version.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub meta_version: u32,
    /// Oldest client allowed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub min_client_version: String,
    /// Whether directory statistics are kept.
    #[serde(default, skip_serializing_if = "is_false")]
    pub dir_stats: bool,
    /// Whether POSIX ACLs are enabled.
    #[serde(default, rename = "EnableACL")]
    pub enable_acl: bool,
    /// Fields this client does not know, kept verbatim.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}
fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}
fn is_false(v: &bool) -> bool {
    !*v
}

impl Format {
    /// Settings for a new volume named `name` storing blocks in `storage`/`bucket`,
    /// with JuiceFS's defaults (4 MiB blocks, no compression, trash off) and a fresh UUID.
    pub fn new(name: &str, uuid: &str, storage: &str, bucket: &str) -> Format {
        Format {
            name: name.to_string(),
            uuid: uuid.to_string(),
            storage: storage.to_string(),
            storage_class: String::new(),
            bucket: bucket.to_string(),
            access_key: String::new(),
            secret_key: String::new(),
            session_token: String::new(),
            block_size: 4096,
            compression: "none".to_string(),
            shards: 0,
            hash_prefix: false,
            capacity: 0,
            inodes: 0,
            encrypt_key: String::new(),
            encrypt_algo: String::new(),
            trash_days: 0,
            meta_version: 1,
            min_client_version: "1.1.0-A".to_string(),
            dir_stats: false,
            enable_acl: false,
            extra: serde_json::Map::new(),
        }
    }

    /// Parses the stored JSON.
    pub fn from_json(s: &str) -> Result<Format> {
        serde_json::from_str(s).map_err(|e| MetaError::Corrupt(format!("volume settings: {e}")))
    }

    /// Serialises to JuiceFS's JSON.
    pub fn to_json(&self) -> String {
        // Serialising a struct of strings, numbers and a JSON map cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Block size in bytes.
    pub fn block_bytes(&self) -> u64 {
        u64::from(self.block_size) * 1024
    }

    /// Refuses settings this client cannot serve correctly.
    pub fn check_supported(&self) -> Result<()> {
        // JuiceFS 1.4 writes `EncryptAlgo` on every volume; only a key means encryption.
        if !self.encrypt_key.is_empty() {
            return Err(MetaError::UnsupportedVolume(
                "the volume is encrypted (EncryptKey); encryption is not implemented".into(),
            ));
        }
        if self.shards > 1 {
            return Err(MetaError::UnsupportedVolume(format!(
                "the volume's objects are spread over {} buckets (Shards); sharded storage \
                 is not implemented",
                self.shards
            )));
        }
        if self.meta_version > MAX_META_VERSION {
            return Err(MetaError::UnsupportedVolume(format!(
                "metadata version {} (MetaVersion) is newer than the {MAX_META_VERSION} this \
                 library knows",
                self.meta_version
            )));
        }
        if !self.min_client_version.is_empty() {
            let Some(min) = parse_version(&self.min_client_version) else {
                return Err(MetaError::UnsupportedVolume(format!(
                    "MinClientVersion {:?} is not a version",
                    self.min_client_version
                )));
            };
            if min > JUICEFS_COMPAT {
                let (a, b, c) = JUICEFS_COMPAT;
                return Err(MetaError::UnsupportedVolume(format!(
                    "the volume needs clients of JuiceFS {} or newer (MinClientVersion); this \
                     library is compatible with JuiceFS {a}.{b}.{c}",
                    self.min_client_version
                )));
            }
        }
        if self.block_size == 0 || self.block_size > 64 * 1024 {
            return Err(MetaError::UnsupportedVolume(format!(
                "block size {} KiB is out of range",
                self.block_size
            )));
        }
        match self.compression.as_str() {
            "" | "none" | "lz4" | "zstd" => Ok(()),
            other => Err(MetaError::UnsupportedVolume(format!(
                "compression {other:?} is not supported"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_settings_are_refused_by_name() {
        let ok = Format::new("v", "u", "file", "/tmp/b/");
        ok.check_supported().unwrap();
        let refused = |f: Format, what: &str| match f.check_supported() {
            Err(MetaError::UnsupportedVolume(m)) => assert!(m.contains(what), "{m}"),
            other => panic!("{what}: {other:?}"),
        };
        let mut f = ok.clone();
        f.shards = 4;
        refused(f, "Shards");
        let mut f = ok.clone();
        f.meta_version = 2;
        refused(f, "MetaVersion");
        let mut f = ok.clone();
        f.min_client_version = "1.5.0-A".into();
        refused(f, "MinClientVersion");
        let mut f = ok.clone();
        f.min_client_version = "one".into();
        refused(f, "MinClientVersion");
        let mut f = ok.clone();
        f.encrypt_key = "k".into();
        refused(f, "EncryptKey");
        for v in ["1.1.0-A", "1.2.0", "1.4.2", "1.3"] {
            let mut f = ok.clone();
            f.min_client_version = v.into();
            f.shards = 1;
            f.meta_version = 1;
            f.check_supported().unwrap();
        }
        assert_eq!(parse_version("1.1.0-A"), Some((1, 1, 0)));
        assert_eq!(parse_version("2"), Some((2, 0, 0)));
        assert_eq!(parse_version("1.x"), None);
        assert_eq!(parse_version(""), None);
    }

    #[test]
    fn parses_juicefs_json_and_keeps_unknown_fields() {
        let s = r#"{"Name":"v","UUID":"u-1","Storage":"file","Bucket":"/tmp/b/","BlockSize":4096,"Compression":"lz4","TrashDays":1,"MetaVersion":1,"MinClientVersion":"1.1.0-A","DirStats":true,"EnableACL":false,"UploadLimit":0,"Future":{"x":1}}"#;
        let f = Format::from_json(s).unwrap();
        assert_eq!(f.name, "v");
        assert_eq!(f.compression, "lz4");
        assert_eq!(f.trash_days, 1);
        assert!(f.dir_stats);
        assert!(f.extra.contains_key("Future"));
        let back: serde_json::Value = serde_json::from_str(&f.to_json()).unwrap();
        assert_eq!(back["Future"]["x"], 1);
        assert_eq!(back["UUID"], "u-1");
        f.check_supported().unwrap();
    }

    #[test]
    fn refuses_encrypted_volumes() {
        let mut f = Format::new("v", "u", "file", "/x/");
        f.encrypt_algo = "aes256gcm-rsa".into();
        assert!(
            f.check_supported().is_ok(),
            "juicefs 1.4 sets the algorithm on every volume"
        );
        f.encrypt_key = "k".into();
        assert!(matches!(
            f.check_supported(),
            Err(MetaError::UnsupportedVolume(_))
        ));
    }
}
