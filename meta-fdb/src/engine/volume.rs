//! Formatting the volume and its usage.

use meta_api::{Attr, FileType, Format, MetaError, Result, StatFs, ROOT_INO, TRASH_INO};

use super::{get_attr, put_attr, TkvMeta};
use crate::keys::{NEXT_CHUNK, NEXT_INODE};
use crate::kv::{KvStore, KvTxn};

/// The settings JSON as JuiceFS writes it (`json.MarshalIndent(format, "", "")`: one
/// field per line, no indentation).
fn settings_json(format: &Format) -> Vec<u8> {
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

impl<K: KvStore> TkvMeta<K> {
    pub(super) async fn do_init(&self, format: &Format, force: bool) -> Result<()> {
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
                        // JuiceFS starts the counters so that the first batch hands out
                        // inode 2 and slice id 1.
                        tx.atomic_add(&keys.counter(NEXT_INODE), 2);
                        tx.atomic_add(&keys.counter(NEXT_CHUNK), 1);
                    }
                }
                tx.set(&keys.setting(), json);
                if format.trash_days > 0 && get_attr(&tx, keys, TRASH_INO).await?.is_none() {
                    put_attr(&tx, keys, TRASH_INO, &volume_dir(0o555, now));
                }
                Ok(())
            })
            .await?;
        self.cache_format(format);
        Ok(())
    }

    pub(super) async fn do_statfs(&self) -> Result<StatFs> {
        let format = match self.cached_format() {
            Some(f) => f,
            None => self.load_format().await?,
        };
        let (used, inodes) = self.read_usage().await?;
        let used = used.max(0) as u64;
        let total_space = if format.capacity > 0 {
            format.capacity.max(used)
        } else {
            // Unlimited: report 1 PiB, doubled while more than 80% is used (as JuiceFS).
            let mut t: u64 = 1 << 50;
            while t.saturating_mul(8) < used.saturating_mul(10) {
                t = t.saturating_mul(2);
            }
            t
        };
        let used_inodes = inodes.max(0) as u64;
        let avail_inodes = if format.inodes > 0 {
            format.inodes.saturating_sub(used_inodes)
        } else {
            let mut a: u64 = 10 << 20;
            while used_inodes.saturating_mul(10) > (used_inodes.saturating_add(a)).saturating_mul(8)
            {
                a = a.saturating_mul(2);
            }
            a
        };
        Ok(StatFs {
            total_space,
            avail_space: total_space - used,
            used_inodes,
            avail_inodes,
        })
    }
}
