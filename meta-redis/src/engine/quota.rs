//! Quotas on Redis ([`meta_api::quota`] has the rules): JuiceFS's hashes `dirQuota`,
//! `userQuota` and `groupQuota` (id → 16 bytes BE: max space, max inodes) with their
//! `…UsedSpace` / `…UsedInodes` hashes (decimal), read under `WATCH` in the change's
//! transaction so that a concurrent change to the same quota makes it retry: the checks
//! are exact, at the price of serializing the changes one quota covers.

use async_trait::async_trait;
use meta_api::quota::{store_limits, Charge, Quota, QuotaKind, QuotaTxn};
use meta_api::{Attr, Ino, MetaError, Result};

use super::{RedisMeta, Writes};
use crate::txn::Tx;

/// The three hashes of one kind of quota.
fn hashes(meta: &RedisMeta, kind: QuotaKind) -> [String; 3] {
    let k = &meta.keys;
    let name = match kind {
        QuotaKind::Dir => "dirQuota",
        QuotaKind::User => "userQuota",
        QuotaKind::Group => "groupQuota",
    };
    [
        k.counter(name),
        k.counter(&format!("{name}UsedSpace")),
        k.counter(&format!("{name}UsedInodes")),
    ]
}

/// The 16-byte limits JuiceFS packs.
fn pack(q: &Quota) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&q.max_space.to_be_bytes());
    b[8..].copy_from_slice(&q.max_inodes.to_be_bytes());
    b
}

fn number(what: &str, v: Option<Vec<u8>>) -> Result<i64> {
    match v {
        None => Ok(0),
        Some(b) => std::str::from_utf8(&b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| MetaError::Corrupt(format!("{what} is not a number"))),
    }
}

/// Decodes the three fields of one quota (`None` without limits).
fn decode(
    key: u64,
    limits: Option<Vec<u8>>,
    space: Option<Vec<u8>>,
    inodes: Option<Vec<u8>>,
) -> Result<Option<Quota>> {
    let Some(l) = limits else { return Ok(None) };
    let word = |at: usize| {
        l.get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(i64::from_be_bytes)
    };
    let (Some(max_space), Some(max_inodes), 16) = (word(0), word(8), l.len()) else {
        return Err(MetaError::Corrupt(format!(
            "quota limits of {key} hold {} bytes, not 16",
            l.len()
        )));
    };
    Ok(Some(Quota {
        max_space,
        max_inodes,
        used_space: number("quota usage", space)?,
        used_inodes: number("quota usage", inodes)?,
    }))
}

/// The quota records seen through one transaction.
pub(crate) struct RedisQuotas<'a> {
    pub(crate) meta: &'a RedisMeta,
    pub(crate) tx: &'a mut Tx,
    pub(crate) w: &'a mut Writes,
}

#[async_trait]
impl QuotaTxn for RedisQuotas<'_> {
    async fn any_dir_quota(&mut self) -> Result<bool> {
        // Not watched: a quota set meanwhile starts from a count of its tree anyway, and
        // its own record is watched once read. Usually fetched with the transaction's first
        // read already; otherwise one round trip.
        if let Some(n) = self.tx.dir_quotas_seen() {
            return Ok(n > 0);
        }
        let key = hashes(self.meta, QuotaKind::Dir)[0].clone();
        let n: u64 = self.tx.cmd(redis::cmd("HLEN").arg(key)).await?;
        Ok(n > 0)
    }

    async fn dir_parent(&mut self, ino: Ino) -> Result<Option<Ino>> {
        self.tx.watch(&[self.meta.keys.inode(ino)]).await?;
        Ok(self.tx.attr(ino).await?.map(|a| a.parent))
    }

    async fn quota(&mut self, kind: QuotaKind, key: u64) -> Result<Option<Quota>> {
        let h = hashes(self.meta, kind);
        self.tx.watch(&h).await?;
        let mut p = redis::pipe();
        for k in &h {
            p.cmd("HGET").arg(k).arg(key);
        }
        let (limits, space, inodes): (Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>) =
            self.tx.pipe(&p).await?;
        decode(key, limits, space, inodes)
    }

    async fn is_empty_dir(&mut self, ino: Ino) -> Result<bool> {
        let key = self.meta.keys.entries(ino);
        self.tx.watch(std::slice::from_ref(&key)).await?;
        let n: u64 = self.tx.cmd(redis::cmd("HLEN").arg(key)).await?;
        Ok(n == 0)
    }

    async fn put_quota(&mut self, kind: QuotaKind, key: u64, q: &Quota) -> Result<()> {
        let [limits, space, inodes] = hashes(self.meta, kind);
        let field = key.to_string();
        self.w
            .hset(limits, field.as_bytes(), &pack(q))
            .hset(space, field.as_bytes(), q.used_space.to_string().as_bytes())
            .hset(
                inodes,
                field.as_bytes(),
                q.used_inodes.to_string().as_bytes(),
            );
        Ok(())
    }
}

impl RedisMeta {
    /// Checks and charges `ch` in the caller's transaction, in JuiceFS's order: the
    /// owner's quotas, the volume's capacity and inode limit when `volume`, then the
    /// directories' quotas.
    pub(crate) async fn charge(
        &self,
        tx: &mut Tx,
        w: &mut Writes,
        ch: Charge,
        volume: bool,
    ) -> Result<()> {
        let fmt = self.settings().await?;
        let charged = ch
            .read(
                &mut RedisQuotas {
                    meta: self,
                    tx: &mut *tx,
                    w: &mut *w,
                },
                &fmt,
            )
            .await?;
        if volume {
            self.check_capacity(tx, ch.space, ch.inodes).await?;
        }
        charged.check_dirs()?;
        charged.apply(&mut RedisQuotas { meta: self, tx, w }).await
    }

    /// Charges file `ino` (attributes `a`) growing or shrinking by `space` bytes of space.
    pub(crate) async fn charge_resize(
        &self,
        tx: &mut Tx,
        w: &mut Writes,
        ino: Ino,
        a: &Attr,
        space: i64,
    ) -> Result<()> {
        if space == 0 {
            return Ok(());
        }
        let dirs = self.file_dirs(tx, ino, a).await?;
        self.charge(
            tx,
            w,
            Charge::new(space, 0, Some((a.uid, a.gid)), dirs),
            true,
        )
        .await
    }

    /// Moves the usage of `ino` (attributes `a`) from the directory quotas over `from` to
    /// those over `to` (a rename; `EXDEV` for a directory without a quota of its own
    /// crossing quotas).
    pub(crate) async fn move_quota(
        &self,
        tx: &mut Tx,
        w: &mut Writes,
        (ino, a): (Ino, &Attr),
        from: Ino,
        to: Ino,
    ) -> Result<()> {
        let fmt = self.settings().await?;
        let mut qt = RedisQuotas { meta: self, tx, w };
        meta_api::quota::move_entry(&mut qt, &fmt, (ino, a), from, to).await
    }
}

#[async_trait]
impl meta_api::backend::Quotas for RedisMeta {
    async fn set_quota(
        &self,
        kind: QuotaKind,
        key: u64,
        (max_space, max_inodes): (i64, i64),
        used: Option<(i64, i64)>,
    ) -> Result<()> {
        let watch = hashes(self, kind).to_vec();
        self.txn(&watch, |mut tx| async move {
            let mut w = Writes::new();
            let mut qt = RedisQuotas {
                meta: self,
                tx: &mut tx,
                w: &mut w,
            };
            store_limits(&mut qt, kind, key, (max_space, max_inodes), used).await?;
            Ok(w.commit(()))
        })
        .await
    }

    async fn get_quota(&self, kind: QuotaKind, key: u64) -> Result<Option<Quota>> {
        let mut p = redis::pipe();
        for k in hashes(self, kind) {
            p.cmd("HGET").arg(k).arg(key);
        }
        let (limits, space, inodes): (Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>) =
            self.read_pipe(&p).await?;
        decode(key, limits, space, inodes)
    }

    async fn list_quotas(&self, kind: QuotaKind) -> Result<Vec<(u64, Quota)>> {
        let [limits, space, inodes] = hashes(self, kind);
        let all = |key: String| async move {
            let flat: Vec<Vec<u8>> = self.read(redis::cmd("HGETALL").arg(key)).await?;
            let mut m = std::collections::BTreeMap::new();
            let mut it = flat.into_iter();
            while let (Some(f), Some(v)) = (it.next(), it.next()) {
                if let Some(id) = std::str::from_utf8(&f)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                {
                    m.insert(id, v);
                }
            }
            Ok::<_, MetaError>(m)
        };
        let (l, mut s, mut i) = (all(limits).await?, all(space).await?, all(inodes).await?);
        let mut out = Vec::with_capacity(l.len());
        for (id, lim) in l {
            if let Some(q) = decode(id, Some(lim), s.remove(&id), i.remove(&id))? {
                out.push((id, q));
            }
        }
        Ok(out)
    }

    async fn delete_quota(&self, kind: QuotaKind, key: u64) -> Result<bool> {
        let watch = hashes(self, kind).to_vec();
        self.txn(&watch, |mut tx| async move {
            let mut w = Writes::new();
            let mut qt = RedisQuotas {
                meta: self,
                tx: &mut tx,
                w: &mut w,
            };
            let Some(mut q) = qt.quota(kind, key).await? else {
                return Ok(crate::txn::Step::Done(false));
            };
            if kind == QuotaKind::Dir {
                let field = key.to_string();
                for h in hashes(self, kind) {
                    w.hdel(h, field.as_bytes());
                }
            } else {
                // The usage stays, with no limit (JuiceFS).
                q.max_space = -1;
                q.max_inodes = -1;
                qt.put_quota(kind, key, &q).await?;
            }
            Ok(w.commit(true))
        })
        .await
    }

    async fn quota_over(&self, ino: Ino) -> Result<Option<Quota>> {
        self.txn(&[], |mut tx| async move {
            let mut w = Writes::new();
            let mut qt = RedisQuotas {
                meta: self,
                tx: &mut tx,
                w: &mut w,
            };
            let first = meta_api::quota::dir_quotas(&mut qt, ino)
                .await?
                .into_iter()
                .next();
            Ok(crate::txn::Step::Done(first.map(|(_, q)| q)))
        })
        .await
    }
}
