//! A client whose session another client reaped as stale: it learns at its next lock or
//! heartbeat, fails the handles it had, takes no lock that could outlive it, and what it
//! opens afterwards is protected again.

use bytes::Bytes;
use meta_api::{Heartbeat, LockType, MetaError, Timestamp, ROOT_INO};

use crate::support::*;

/// A non-blocking exclusive `flock` of `ino` by `owner` of `vfs`'s session.
async fn lock(vfs: &vfs_core::Vfs, ino: meta_api::Ino, owner: u64) -> meta_api::Result<()> {
    vfs.meta()
        .flock(&root(), ino, owner, LockType::Write, false)
        .await
}

/// A day from now, when every session has expired.
fn tomorrow() -> Timestamp {
    Timestamp::new(Timestamp::now().sec + 86_400, 0)
}

engine_tests! {
    async fn a_reaped_client_fails_old_handles_and_leaves_no_lock_behind(engine: Engine) {
        let vol = Volume::new(engine).await;
        let a = vol.client().await;
        let b = vol.client().await;
        let n = 2 * BLOCK as usize + 7;
        let f = file_with(&a, ROOT_INO, "f", 3, n).await;
        let g = file_with(&a, ROOT_INO, "g", 4, 10).await;
        let before = a.open(&root(), f, libc::O_RDWR).await.unwrap();

        // b finds every session stale (a day ahead) and reaps them, its own too.
        assert_eq!(b.meta().reap_stale_sessions(tomorrow()).await.unwrap(), 2);
        // a does not know yet: what it opens now is as unprotected as what it had...
        let unaware = a.open(&root(), f, libc::O_RDWR).await.unwrap();
        // ...and its first lock is refused, which tells it: both handles fail from then on.
        let err = lock(&a, g, 1).await.unwrap_err();
        assert!(matches!(err, MetaError::SessionLost), "{err}");
        for fh in [before, unaware] {
            let err = a.read(&root(), fh, 0, 10).await.unwrap_err();
            assert_eq!(err.errno(), libc::EIO, "{err}");
            let err = a
                .write(&root(), fh, 0, Bytes::from_static(b"x"))
                .await
                .unwrap_err();
            assert_eq!(err.errno(), libc::EIO, "{err}");
            let err = a.release(&root(), fh).await.unwrap_err();
            assert_eq!(err.errno(), libc::EIO, "{err}");
        }
        assert_eq!(contents(&a, f).await, pattern(3, 0, n), "the refused write wrote nothing");

        // What a opens now is protected: b's unlink and purge leave it readable.
        let fresh = a.open(&root(), f, libc::O_RDWR).await.unwrap();
        assert_eq!(b.meta().heartbeat().await.unwrap(), Heartbeat::Reregistered);
        b.unlink(&root(), ROOT_INO, b"f").await.unwrap();
        assert_eq!(b.purge_deleted().await.unwrap(), 0);
        assert_eq!(read_all(&a, fresh, 0, n as u64).await, pattern(3, 0, n));

        // a's lock now is held against b...
        lock(&a, g, 1).await.unwrap();
        let err = lock(&b, g, 2).await.unwrap_err();
        assert!(matches!(err, MetaError::WouldBlock), "{err}");
        // ...and goes with a's session when a is reaped again: none is left behind, and
        // the unlinked file a kept is purged.
        assert_eq!(b.meta().reap_stale_sessions(tomorrow()).await.unwrap(), 2);
        assert_eq!(b.meta().heartbeat().await.unwrap(), Heartbeat::Reregistered);
        lock(&b, g, 2).await.unwrap();
        assert_eq!(b.purge_deleted().await.unwrap(), 1);
        // a's next heartbeat tells it; its handle on the purged file fails.
        assert_eq!(a.meta().heartbeat().await.unwrap(), Heartbeat::Reregistered);
        let err = a.read(&root(), fresh, 0, 10).await.unwrap_err();
        assert_eq!(err.errno(), libc::EIO, "{err}");
        b.close().await.unwrap();
        a.close().await.unwrap();
    }
}
