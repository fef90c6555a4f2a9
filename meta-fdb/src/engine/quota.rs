//! Quotas on the TKV engine ([`meta_api::quota`] has the rules): JuiceFS's `QD{ino}`,
//! `QU{uid}` and `QG{gid}` → 32 bytes BE (max space, max inodes, used space, used
//! inodes), read and written in the change's transaction (a concurrent change of the same
//! quota conflicts and retries: the checks are exact).

use async_trait::async_trait;
use meta_api::quota::{store_limits, Charge, Quota, QuotaKind, QuotaTxn};
use meta_api::{Attr, Format, Ino, Limits, MetaError, Result};

use super::get_attr;
use crate::keys::{be_u64, Keys};
use crate::kv::KvTxn;

/// The key of quota `key` of `kind`.
pub(crate) fn key_of(keys: &Keys, kind: QuotaKind, key: u64) -> Vec<u8> {
    match kind {
        QuotaKind::Dir => keys.dir_quota(key),
        QuotaKind::User => keys.user_quota(key),
        QuotaKind::Group => keys.group_quota(key),
    }
}

/// The 32-byte value of a quota.
pub(crate) fn encode(q: &Quota) -> [u8; 32] {
    let mut b = [0u8; 32];
    for (i, v) in [q.max_space, q.max_inodes, q.used_space, q.used_inodes]
        .into_iter()
        .enumerate()
    {
        b[i * 8..i * 8 + 8].copy_from_slice(&v.to_be_bytes());
    }
    b
}

/// Decodes a quota's value (`Corrupt` unless 32 bytes).
pub(crate) fn decode(key: u64, v: &[u8]) -> Result<Quota> {
    let n = |at| be_u64(v, at).map(|x| x as i64);
    match (v.len(), n(0), n(8), n(16), n(24)) {
        (32, Some(max_space), Some(max_inodes), Some(used_space), Some(used_inodes)) => Ok(Quota {
            max_space,
            max_inodes,
            used_space,
            used_inodes,
        }),
        _ => Err(MetaError::Corrupt(format!(
            "quota of {key} holds {} bytes, not 32",
            v.len()
        ))),
    }
}

/// The quota records seen through one transaction.
pub(crate) struct KvQuotas<'a, T: KvTxn> {
    pub(crate) tx: &'a T,
    pub(crate) keys: &'a Keys,
}

#[async_trait]
impl<T: KvTxn> QuotaTxn for KvQuotas<'_, T> {
    async fn any_dir_quota(&mut self) -> Result<bool> {
        let p = self.keys.tag(b"QD");
        Ok(!self
            .tx
            .scan(&p, &Keys::end_of(&p), 1, false)
            .await?
            .is_empty())
    }

    async fn dir_parent(&mut self, ino: Ino) -> Result<Option<Ino>> {
        Ok(get_attr(self.tx, self.keys, ino).await?.map(|a| a.parent))
    }

    async fn quota(&mut self, kind: QuotaKind, key: u64) -> Result<Option<Quota>> {
        self.tx
            .get(&key_of(self.keys, kind, key))
            .await?
            .map(|v| decode(key, &v))
            .transpose()
    }

    async fn put_quota(&mut self, kind: QuotaKind, key: u64, q: &Quota) -> Result<()> {
        self.tx.set(&key_of(self.keys, kind, key), &encode(q));
        Ok(())
    }

    async fn is_empty_dir(&mut self, ino: Ino) -> Result<bool> {
        let p = self.keys.entries(ino);
        Ok(self
            .tx
            .scan(&p, &Keys::end_of(&p), 1, false)
            .await?
            .is_empty())
    }
}

/// Checks and charges `ch` in `tx`, in JuiceFS's order: the owner's quotas, the volume's
/// `limits` when the change takes its space or inodes, then the directories' quotas.
pub(crate) async fn charge<T: KvTxn>(
    tx: &T,
    keys: &Keys,
    fmt: &Format,
    ch: Charge,
    limits: Option<&Limits>,
) -> Result<()> {
    let mut qt = KvQuotas { tx, keys };
    let charged = ch.read(&mut qt, fmt).await?;
    Limits::check(limits, ch.space, ch.inodes)?;
    charged.check_dirs()?;
    charged.apply(&mut qt).await
}

/// Charges file `ino` (attributes `a`) growing or shrinking by `space` bytes of space.
pub(crate) async fn charge_resize<T: KvTxn>(
    tx: &T,
    keys: &Keys,
    fmt: &Format,
    (ino, a): (Ino, &Attr),
    space: i64,
    limits: Option<&Limits>,
) -> Result<()> {
    if space == 0 {
        return Ok(());
    }
    let dirs = super::stats::file_dirs(tx, keys, ino, a).await?;
    let ch = Charge::new(space, 0, Some((a.uid, a.gid)), dirs);
    charge(tx, keys, fmt, ch, limits).await
}

/// Moves the usage of `ino` (attributes `a`) from the directory quotas over `from` to
/// those over `to` (a rename; `EXDEV` for a directory without a quota of its own crossing
/// quotas).
pub(crate) async fn move_quota<T: KvTxn>(
    tx: &T,
    keys: &Keys,
    fmt: &Format,
    (ino, a): (Ino, &Attr),
    from: Ino,
    to: Ino,
) -> Result<()> {
    let mut qt = KvQuotas { tx, keys };
    meta_api::quota::move_entry(&mut qt, fmt, (ino, a), from, to).await
}

#[async_trait]
impl<K: crate::kv::KvStore> meta_api::backend::Quotas for super::TkvMeta<K> {
    async fn set_quota(
        &self,
        kind: QuotaKind,
        key: u64,
        (max_space, max_inodes): (i64, i64),
        used: Option<(i64, i64)>,
    ) -> Result<()> {
        let keys = &self.keys;
        self.kv
            .txn(|tx| async move {
                let mut qt = KvQuotas { tx: &tx, keys };
                store_limits(&mut qt, kind, key, (max_space, max_inodes), used).await
            })
            .await
    }

    async fn get_quota(&self, kind: QuotaKind, key: u64) -> Result<Option<Quota>> {
        let keys = &self.keys;
        self.kv
            .txn(|tx| async move { KvQuotas { tx: &tx, keys }.quota(kind, key).await })
            .await
    }

    async fn list_quotas(&self, kind: QuotaKind) -> Result<Vec<(u64, Quota)>> {
        let keys = &self.keys;
        let tag: &[u8] = match kind {
            QuotaKind::Dir => b"QD",
            QuotaKind::User => b"QU",
            QuotaKind::Group => b"QG",
        };
        let prefix = keys.tag(tag);
        let (begin, end) = (&prefix, &Keys::end_of(&prefix));
        let pairs = self
            .kv
            .txn(|tx| async move { tx.scan(begin, end, usize::MAX, false).await })
            .await?;
        let mut out = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            let Some(id) = k
                .get(prefix.len()..)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
            else {
                continue;
            };
            let id = match kind {
                QuotaKind::Dir => u64::from_le_bytes(id),
                _ => u64::from_be_bytes(id),
            };
            out.push((id, decode(id, &v)?));
        }
        out.sort_unstable_by_key(|(id, _)| *id);
        Ok(out)
    }

    async fn delete_quota(&self, kind: QuotaKind, key: u64) -> Result<bool> {
        let keys = &self.keys;
        self.kv
            .txn(|tx| async move {
                let mut qt = KvQuotas { tx: &tx, keys };
                let Some(mut q) = qt.quota(kind, key).await? else {
                    return Ok(false);
                };
                if kind == QuotaKind::Dir {
                    tx.clear(&key_of(keys, kind, key));
                } else {
                    // The usage stays, with no limit (JuiceFS).
                    q.max_space = -1;
                    q.max_inodes = -1;
                    qt.put_quota(kind, key, &q).await?;
                }
                Ok(true)
            })
            .await
    }

    async fn quota_over(&self, ino: Ino) -> Result<Option<Quota>> {
        let keys = &self.keys;
        self.kv
            .txn(|tx| async move {
                let mut qt = KvQuotas { tx: &tx, keys };
                let first = meta_api::quota::dir_quotas(&mut qt, ino)
                    .await?
                    .into_iter()
                    .next();
                Ok(first.map(|(_, q)| q))
            })
            .await
    }
}
