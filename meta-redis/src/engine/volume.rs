//! Formatting the volume, its settings and its usage counters.

use async_trait::async_trait;
use meta_api::backend::Volume;
use meta_api::{Attr, FileType, Format, MetaError, Result, Usage, ROOT_INO, TRASH_INO};

use super::{now, RedisMeta, Writes};

#[async_trait]
impl Volume for RedisMeta {
    fn name(&self) -> &'static str {
        "redis"
    }

    /// Commits are as durable as the server makes them (see the crate docs); what this
    /// client deferred, its queued closes, is sent, and a batch that another task of this
    /// client (a close, the heartbeat) took before is waited for: its releases may still
    /// be under way.
    async fn sync(&self) -> Result<()> {
        self.closes.settled().await;
        let sent = self.flush_closes().await;
        self.closes.settled().await;
        sent
    }

    async fn init(&self, format: &Format, force: bool) -> Result<()> {
        format.check_supported()?;
        let json = format.to_json();
        let keys = [self.keys.setting()];
        self.txn(&keys, |mut tx| {
            let json = json.clone();
            async move {
                let k = &self.keys;
                let old: Option<Vec<u8>> = tx.cmd(redis::cmd("GET").arg(k.setting())).await?;
                let mut w = Writes::new();
                if let Some(old) = &old {
                    let old = Format::from_json(&String::from_utf8_lossy(old))?;
                    if !force {
                        return Err(MetaError::Exists);
                    }
                    if old.name != format.name || old.uuid != format.uuid {
                        return Err(MetaError::InvalidArgument(
                            "a forced format must keep the volume's name and UUID",
                        ));
                    }
                    w.set(k.setting(), json.as_bytes());
                }
                let t = now();
                if format.trash_days > 0 {
                    // Also when a forced format turns trash days on (JuiceFS does).
                    let trash = meta_api::trash::root_attr(t);
                    w.p.cmd("SET")
                        .arg(k.inode(TRASH_INO))
                        .arg(meta_api::encoding::encode_attr(&trash))
                        .arg("NX")
                        .ignore();
                }
                if old.is_some() {
                    return Ok(w.commit(()));
                }
                let mut root = Attr::new(FileType::Directory, 0o777, 0, 0, t);
                root.nlink = 2;
                root.length = 4096;
                root.parent = ROOT_INO;
                w.set(k.setting(), json.as_bytes());
                w.set_attr(k, ROOT_INO, &root);
                // Empty statistics, as every new directory gets them.
                w.set_dir_stat(k, ROOT_INO, &Default::default());
                Ok(w.commit(()))
            }
        })
        .await?;
        self.store_format_cache(format);
        Ok(())
    }

    async fn load(&self) -> Result<Format> {
        self.load_format().await
    }

    async fn settings(&self) -> Result<Format> {
        RedisMeta::settings(self).await
    }

    async fn usage(&self) -> Result<Usage> {
        let (space, inodes): (Option<i64>, Option<i64>) = self
            .read(
                redis::cmd("MGET")
                    .arg(self.keys.used_space())
                    .arg(self.keys.total_inodes()),
            )
            .await?;
        Ok(Usage {
            space: space.unwrap_or(0),
            inodes: inodes.unwrap_or(0),
        })
    }
}
