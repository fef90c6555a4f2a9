//! Quotas through the VFS: a new directory quota starts with its tree's usage, the first
//! user quota counts every owner, and a check recounts and repairs.

use meta_api::quota::QuotaKind;
use meta_api::ROOT_INO;

use crate::support::*;

engine_tests! {
    async fn a_new_quota_counts_the_tree_and_a_check_repairs_it(engine: Engine) {
        let mut format = test_format();
        format.dir_stats = true;
        let mem = std::sync::Arc::new(chunkstore::MemStore::new());
        let vol = Volume::with_format(engine, format, mem.clone(), mem).await;
        let vfs = vol.client().await;
        let d = vfs.mkdir(&root(), ROOT_INO, b"d", 0o755).await.unwrap().ino;
        let sub = vfs.mkdir(&root(), d, b"sub", 0o755).await.unwrap().ino;
        file_with(&vfs, sub, "f", 1, 10_000).await;
        file_with(&vfs, d, "g", 2, 1).await;
        vfs.set_quota(QuotaKind::Dir, d, (0, 100)).await.unwrap();
        let q = vfs.get_quota(QuotaKind::Dir, d).await.unwrap().unwrap();
        assert_eq!((q.used_space, q.used_inodes), (4096 + 12_288 + 4096, 3));
        // Raising the limit keeps the usage.
        vfs.set_quota(QuotaKind::Dir, d, (0, 200)).await.unwrap();
        let checks = vfs.check_quotas(QuotaKind::Dir, None, false).await.unwrap();
        assert!(checks.iter().all(|c| c.is_consistent()), "{checks:?}");
        // A record made wrong by hand is found and repaired.
        vol.meta()
            .await
            .set_quota(QuotaKind::Dir, d, (0, 200), Some((1, 1)))
            .await
            .unwrap();
        let checks = vfs.check_quotas(QuotaKind::Dir, Some(d), true).await.unwrap();
        assert!(!checks[0].is_consistent());
        let checks = vfs.check_quotas(QuotaKind::Dir, Some(d), false).await.unwrap();
        assert!(checks[0].is_consistent());
        // statfs inside the quota shows its inode limit.
        let fs = vfs.statfs(&root(), sub).await.unwrap();
        assert_eq!((fs.used_inodes, fs.avail_inodes), (3, 197));
        // The first user quota counts every owner.
        vfs.set_quota(QuotaKind::User, 0, (0, 1000)).await.unwrap();
        let checks = vfs.check_quotas(QuotaKind::User, None, false).await.unwrap();
        assert!(checks.iter().all(|c| c.is_consistent()), "{checks:?}");
        let q = vfs.get_quota(QuotaKind::User, 0).await.unwrap().unwrap();
        assert_eq!(q.used_inodes, 4);
        vfs.close().await.unwrap();
    }
    async fn a_tree_deleted_under_a_quota_is_restored_under_it(engine: Engine) {
        let mut format = test_format();
        format.dir_stats = true;
        format.trash_days = 1;
        let mem = std::sync::Arc::new(chunkstore::MemStore::new());
        let vol = Volume::with_format(engine, format, mem.clone(), mem).await;
        let vfs = vol.client().await;
        let q = vfs.mkdir(&root(), ROOT_INO, b"q", 0o755).await.unwrap().ino;
        vfs.set_quota(QuotaKind::Dir, q, (0, 100)).await.unwrap();
        let d = vfs.mkdir(&root(), q, b"d", 0o755).await.unwrap().ino;
        let e = vfs.mkdir(&root(), d, b"e", 0o755).await.unwrap().ino;
        file_with(&vfs, e, "f", 1, 5000).await;
        file_with(&vfs, d, "g", 2, 10).await;
        let full = vfs.get_quota(QuotaKind::Dir, q).await.unwrap().unwrap();
        // rm -r q/d: every entry into the trash, the quota freed.
        vfs.unlink(&root(), e, b"f").await.unwrap();
        vfs.rmdir(&root(), d, b"e").await.unwrap();
        vfs.unlink(&root(), d, b"g").await.unwrap();
        vfs.rmdir(&root(), q, b"d").await.unwrap();
        let empty = vfs.get_quota(QuotaKind::Dir, q).await.unwrap().unwrap();
        assert_eq!((empty.used_space, empty.used_inodes), (0, 0));
        let hour = vfs
            .meta()
            .readdir(&root(), meta_api::TRASH_INO, None, 10, false)
            .await
            .unwrap()
            .pop()
            .unwrap()
            .name;
        let r = vfs.restore(&hour, true).await.unwrap();
        assert_eq!((r.restored, r.failed, r.conflicts), (4, 0, 0), "{r:?}");
        let back = vfs.get_quota(QuotaKind::Dir, q).await.unwrap().unwrap();
        assert_eq!((back.used_space, back.used_inodes), (full.used_space, full.used_inodes));
        let checks = vfs.check_quotas(QuotaKind::Dir, Some(q), false).await.unwrap();
        assert!(checks[0].is_consistent(), "{checks:?}");
        vfs.close().await.unwrap();
    }
}
