//! Formatting the volume and its usage.

use async_trait::async_trait;
use meta_api::backend::Volume;
use meta_api::{Attr, FileType, Format, MetaError, Result, Usage, ROOT_INO, TRASH_INO};

use super::{get_attr, put_attr, TkvMeta};
use crate::keys::{NEXT_CHUNK, NEXT_INODE};
use crate::kv::{KvStore, KvTxn};

/// The settings JSON as JuiceFS writes it (`json.MarshalIndent(format, "", "")`: one
/// field per line, no indentation).
pub(super) fn settings_json(format: &Format) -> Vec<u8> {
    use serde::Serialize;
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut out,
        serde_json::ser::PrettyFormatter::with_indent(b""),
    );
    match format.serialize(&mut ser) {
        Ok(()) => out,
        // Serialising strings, numbers and a JSON map cannot fail; keep the compact form
        // as a fallback all the same.
        Err(_) => format.to_json().into_bytes(),
    }
}

/// The attributes of a directory made by `init` (root, trash): owned by root, two links.
fn volume_dir(mode: u16, now: meta_api::Timestamp) -> Attr {
    let mut a = Attr::new(FileType::Directory, mode, 0, 0, now);
    a.nlink = 2;
    a.length = 4096;
    a.parent = ROOT_INO;
    a
}

#[async_trait]
impl<K: KvStore> Volume for TkvMeta<K> {
    fn name(&self) -> &'static str {
        K::SCHEME
    }

    async fn load(&self) -> Result<Format> {
        self.load_format().await
    }

    async fn settings(&self) -> Result<Format> {
        match self.cached_format() {
            Some(f) => Ok(f),
            None => self.load_format().await,
        }
    }

    async fn usage(&self) -> Result<Usage> {
        let (space, inodes) = self.read_usage().await?;
        Ok(Usage { space, inodes })
    }

    async fn init(&self, format: &Format, force: bool) -> Result<()> {
        let json = settings_json(format);
        let now = self.now();
        let keys = &self.keys;
        let json = &json;
        self.kv
            .txn(|tx| async move {
                match tx.get(&keys.setting()).await? {
                    Some(raw) => {
                        let text = String::from_utf8(raw).map_err(|_| {
                            MetaError::Corrupt("volume settings are not UTF-8".into())
                        })?;
                        let old = Format::from_json(&text)?;
                        if !force {
                            return Err(MetaError::Exists);
                        }
                        if old.name != format.name || old.uuid != format.uuid {
                            return Err(MetaError::InvalidArgument(
                                "a forced format must keep the volume's name and UUID",
                            ));
                        }
                    }
                    None => {
                        format.check_supported()?;
                        put_attr(&tx, keys, ROOT_INO, &volume_dir(0o777, now));
                        // JuiceFS creates empty directory statistics with every directory.
                        tx.set(&keys.dir_stat(ROOT_INO), &[0u8; 24]);
                        // JuiceFS starts the counters so that the first batch hands out
                        // inode 2 and slice id 1.
                        tx.atomic_add(&keys.counter(NEXT_INODE), 2);
                        tx.atomic_add(&keys.counter(NEXT_CHUNK), 1);
                    }
                }
                tx.set(&keys.setting(), json);
                if format.trash_days > 0 && get_attr(&tx, keys, TRASH_INO).await?.is_none() {
                    put_attr(&tx, keys, TRASH_INO, &meta_api::trash::root_attr(now));
                }
                Ok(())
            })
            .await?;
        self.cache_format(format);
        Ok(())
    }
}
