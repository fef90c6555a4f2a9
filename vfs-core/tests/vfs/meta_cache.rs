//! The in-process metadata cache: what it answers from memory, what this client's changes
//! do to it, what other clients' changes do, and that races leave nothing stale.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use meta_api::{Context, MetaError, SetAttr, ROOT_INO};
use vfs_core::{MetaCacheOptions, Vfs, VfsError};

use crate::support::*;

/// A client caching attributes and every name for `ttl`.
async fn caching(vol: &Volume, ttl: Duration) -> Vfs {
    let cache = MetaCacheOptions::default()
        .attr_ttl(ttl)
        .entry_ttl(ttl)
        .dir_entry_ttl(ttl);
    vol.client_with(test_options().meta_cache(cache)).await
}

/// A client that caches nothing: what the engine holds.
async fn exact(vol: &Volume) -> Vfs {
    vol.client_with(test_options().meta_cache(MetaCacheOptions::off()))
        .await
}

fn not_found(r: vfs_core::Result<meta_api::Entry>) -> bool {
    matches!(r, Err(VfsError::Meta(MetaError::NotFound)))
}

engine_tests! {
    async fn repeated_lookups_and_getattrs_are_answered_from_memory(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = caching(&vol, Duration::from_secs(60)).await;
        let d = vfs.mkdir(&root(), ROOT_INO, b"d", 0o755).await.unwrap();
        let (f, fh) = vfs.create(&root(), d.ino, b"f", 0o644, libc::O_RDWR).await.unwrap();
        vfs.release(&root(), fh).await.unwrap();
        let before = vfs.meta_cache_stats();
        for _ in 0..10 {
            assert_eq!(vfs.lookup(&root(), d.ino, b"f").await.unwrap().ino, f.ino);
            assert_eq!(vfs.getattr(&root(), f.ino).await.unwrap().mode, f.attr.mode);
        }
        let after = vfs.meta_cache_stats();
        assert!(after.hits >= before.hits + 20, "{before:?} -> {after:?}");
        // Off: nothing is counted, every call asks the engine.
        let plain = exact(&vol).await;
        plain.lookup(&root(), d.ino, b"f").await.unwrap();
        assert_eq!(plain.meta_cache_stats(), Default::default());
        vfs.close().await.unwrap();
        plain.close().await.unwrap();
    }

    async fn this_clients_changes_show_at_once_whatever_the_ttl(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = caching(&vol, Duration::from_secs(3600)).await;
        let d = vfs.mkdir(&root(), ROOT_INO, b"d", 0o755).await.unwrap();
        let (f, fh) = vfs.create(&root(), d.ino, b"f", 0o644, libc::O_RDWR).await.unwrap();
        // Everything in the cache first.
        vfs.lookup(&root(), d.ino, b"f").await.unwrap();
        vfs.getattr(&root(), d.ino).await.unwrap();
        // Data: length and times.
        vfs.write(&root(), fh, 0, Bytes::from_static(b"hello")).await.unwrap();
        vfs.fsync(&root(), fh, false).await.unwrap();
        assert_eq!(vfs.getattr(&root(), f.ino).await.unwrap().length, 5);
        vfs.release(&root(), fh).await.unwrap();
        assert_eq!(vfs.lookup(&root(), d.ino, b"f").await.unwrap().attr.length, 5);
        // Attributes.
        vfs.setattr(&root(), f.ino, &SetAttr::new().mode(0o600)).await.unwrap();
        assert_eq!(vfs.getattr(&root(), f.ino).await.unwrap().mode & 0o777, 0o600);
        // Links: the link count of the file, the new name, the parent's times.
        let mtime = vfs.getattr(&root(), d.ino).await.unwrap().mtime;
        tokio::time::sleep(Duration::from_millis(5)).await;
        vfs.link(&root(), f.ino, d.ino, b"g").await.unwrap();
        assert_eq!(vfs.getattr(&root(), f.ino).await.unwrap().nlink, 2);
        assert!(vfs.getattr(&root(), d.ino).await.unwrap().mtime > mtime);
        assert_eq!(vfs.lookup(&root(), d.ino, b"g").await.unwrap().ino, f.ino);
        // An unlink of a name never looked up here still shows on the other name.
        vfs.unlink(&root(), d.ino, b"g").await.unwrap();
        assert!(not_found(vfs.lookup(&root(), d.ino, b"g").await));
        assert_eq!(vfs.getattr(&root(), f.ino).await.unwrap().nlink, 1);
        // Renames: the old name goes, the new leads to the file, a replaced file's name
        // leads to the file moved over it.
        let (h, hfh) = vfs.create(&root(), d.ino, b"h", 0o644, libc::O_RDWR).await.unwrap();
        vfs.release(&root(), hfh).await.unwrap();
        vfs.lookup(&root(), d.ino, b"h").await.unwrap();
        vfs.rename(&root(), d.ino, b"f", d.ino, b"h", 0).await.unwrap();
        assert!(not_found(vfs.lookup(&root(), d.ino, b"f").await));
        assert_eq!(vfs.lookup(&root(), d.ino, b"h").await.unwrap().ino, f.ino);
        assert!(vfs.getattr(&root(), h.ino).await.is_err(), "the replaced file is gone");
        // A directory renamed, then removed.
        let sub = vfs.mkdir(&root(), d.ino, b"sub", 0o755).await.unwrap();
        vfs.lookup(&root(), d.ino, b"sub").await.unwrap();
        vfs.rename(&root(), d.ino, b"sub", ROOT_INO, b"top", 0).await.unwrap();
        assert!(not_found(vfs.lookup(&root(), d.ino, b"sub").await));
        let top = vfs.lookup(&root(), ROOT_INO, b"top").await.unwrap();
        assert_eq!((top.ino, top.attr.parent), (sub.ino, ROOT_INO));
        vfs.rmdir(&root(), ROOT_INO, b"top").await.unwrap();
        assert!(not_found(vfs.lookup(&root(), ROOT_INO, b"top").await));
        // What the cache answers is what the engine holds.
        let truth = exact(&vol).await;
        for (parent, name) in [(ROOT_INO, &b"d"[..]), (d.ino, b"h")] {
            let cached = vfs.lookup(&root(), parent, name).await.unwrap();
            let real = truth.lookup(&root(), parent, name).await.unwrap();
            assert_eq!(cached.ino, real.ino);
            assert_eq!(cached.attr, real.attr, "{}", String::from_utf8_lossy(name));
        }
        vfs.close().await.unwrap();
        truth.close().await.unwrap();
    }

    async fn other_clients_changes_show_on_open_or_when_the_ttl_ends(engine: Engine) {
        let vol = Volume::new(engine).await;
        let a = exact(&vol).await;
        let b = caching(&vol, Duration::from_millis(300)).await;
        let (f, fh) = a.create(&root(), ROOT_INO, b"f", 0o644, libc::O_RDWR).await.unwrap();
        a.release(&root(), fh).await.unwrap();
        assert_eq!(b.getattr(&root(), f.ino).await.unwrap().mode & 0o777, 0o644);
        a.setattr(&root(), f.ino, &SetAttr::new().mode(0o600)).await.unwrap();
        // Still the cached mode, until b opens the file: an open revalidates.
        assert_eq!(b.getattr(&root(), f.ino).await.unwrap().mode & 0o777, 0o644);
        let bfh = b.open(&root(), f.ino, libc::O_RDONLY).await.unwrap();
        assert_eq!(b.getattr(&root(), f.ino).await.unwrap().mode & 0o777, 0o600);
        b.release(&root(), bfh).await.unwrap();
        // Without an open, the change shows once the TTL is over.
        a.setattr(&root(), f.ino, &SetAttr::new().mode(0o640)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(b.getattr(&root(), f.ino).await.unwrap().mode & 0o777, 0o640);
        a.close().await.unwrap();
        b.close().await.unwrap();
    }

    async fn by_default_file_names_are_never_cached_and_directory_names_briefly(engine: Engine) {
        let vol = Volume::new(engine).await;
        let a = exact(&vol).await;
        let b = vol.client().await; // the default cache
        let d = a.mkdir(&root(), ROOT_INO, b"d", 0o755).await.unwrap();
        let (f, fh) = a.create(&root(), d.ino, b"f", 0o644, libc::O_RDWR).await.unwrap();
        a.release(&root(), fh).await.unwrap();
        assert_eq!(b.lookup(&root(), d.ino, b"f").await.unwrap().ino, f.ino);
        assert_eq!(b.lookup(&root(), ROOT_INO, b"d").await.unwrap().ino, d.ino);
        // a replaces f by a rename: b sees the new file at once.
        let (g, gfh) = a.create(&root(), d.ino, b"g", 0o644, libc::O_RDWR).await.unwrap();
        a.release(&root(), gfh).await.unwrap();
        a.rename(&root(), d.ino, b"g", d.ino, b"f", 0).await.unwrap();
        assert_eq!(b.lookup(&root(), d.ino, b"f").await.unwrap().ino, g.ino);
        // a renames the directory: b finds the old name for at most a second.
        a.rename(&root(), ROOT_INO, b"d", ROOT_INO, b"e", 0).await.unwrap();
        let start = std::time::Instant::now();
        while b.lookup(&root(), ROOT_INO, b"d").await.is_ok() {
            assert!(start.elapsed() < Duration::from_secs(3), "still cached");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(start.elapsed() <= Duration::from_millis(1200), "{:?}", start.elapsed());
        a.close().await.unwrap();
        b.close().await.unwrap();
    }

    async fn cached_lookups_check_search_permission_as_the_engine_does(engine: Engine) {
        let vol = Volume::new(engine).await;
        let vfs = caching(&vol, Duration::from_secs(60)).await;
        let d = vfs.mkdir(&root(), ROOT_INO, b"private", 0o700).await.unwrap();
        let (_, fh) = vfs.create(&root(), d.ino, b"f", 0o644, libc::O_RDWR).await.unwrap();
        vfs.release(&root(), fh).await.unwrap();
        vfs.lookup(&root(), d.ino, b"f").await.unwrap();
        let user = Context::new(1000, 1000);
        let hits = vfs.meta_cache_stats().hits;
        assert!(matches!(
            vfs.lookup(&user, d.ino, b"f").await,
            Err(VfsError::Meta(MetaError::PermissionDenied))
        ));
        assert_eq!(vfs.meta_cache_stats().hits, hits, "a refusal is the engine's");
        // Once the directory is searchable, the cached entry serves the user too.
        vfs.setattr(&root(), d.ino, &SetAttr::new().mode(0o711)).await.unwrap();
        vfs.lookup(&root(), d.ino, b"f").await.unwrap();
        vfs.lookup(&user, d.ino, b"f").await.unwrap();
        assert!(vfs.meta_cache_stats().hits > hits);
        vfs.close().await.unwrap();
    }
}

/// On two threads, so that the lookups and the unlink really overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_racing_an_unlink_never_leaves_the_name_cached() {
    let vol = Volume::new(Engine::Sqlite).await;
    let vfs = caching(&vol, Duration::from_secs(3600)).await;
    for round in 0..1000u32 {
        let name = format!("f{round}");
        let (_, fh) = vfs
            .create(&root(), ROOT_INO, name.as_bytes(), 0o644, libc::O_RDWR)
            .await
            .unwrap();
        vfs.release(&root(), fh).await.unwrap();
        vfs.invalidate_meta_cache();
        let done = Arc::new(AtomicBool::new(false));
        let looker = {
            let (vfs, name, done) = (vfs.clone(), name.clone(), done.clone());
            tokio::spawn(async move {
                // Uncached lookups until the unlink returned: the last may read the name
                // before the unlink commits and store it after.
                while !done.load(Ordering::Acquire) {
                    vfs.invalidate_meta_cache();
                    let _ = vfs.lookup(&root(), ROOT_INO, name.as_bytes()).await;
                }
            })
        };
        tokio::task::yield_now().await;
        vfs.unlink(&root(), ROOT_INO, name.as_bytes())
            .await
            .unwrap();
        done.store(true, Ordering::Release);
        looker.await.unwrap();
        assert!(
            not_found(vfs.lookup(&root(), ROOT_INO, name.as_bytes()).await),
            "round {round}: the unlinked name is still cached"
        );
    }
    vfs.close().await.unwrap();
}
