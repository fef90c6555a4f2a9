//! Sessions: registration, heartbeats, closing and reaping stale ones.

use super::{file, is_deleted, root, write, Fixture};
use crate::{Result, SessionInfo, Timestamp, ROOT_INO};

/// A time a day from now, when every live session has expired.
fn tomorrow() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::new(now.sec + 86_400, 0)
}

pub(super) async fn each_client_has_a_session(fx: &Fixture<'_>) -> Result<()> {
    let _b = fx.client().await?;
    let before = Timestamp::now();
    let sessions = fx.a.list_sessions().await?;
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    assert_ne!(sessions[0].sid, sessions[1].sid);
    for s in &sessions {
        assert!(s.sustained.is_empty(), "{s:?}");
        assert!(
            s.expire >= before.sec,
            "a live session expires in the future: {s:?}"
        );
    }
    Ok(())
}

pub(super) async fn heartbeat_extends_expiry(fx: &Fixture<'_>) -> Result<()> {
    let before = fx.a.list_sessions().await?;
    assert_eq!(fx.a.heartbeat().await?, crate::Heartbeat::Extended);
    let after = fx.a.list_sessions().await?;
    assert_eq!(before.len(), 1);
    assert_eq!(after.len(), 1);
    assert_eq!(before[0].sid, after[0].sid);
    assert!(after[0].expire >= before[0].expire);
    assert!(after[0].expire > Timestamp::now().sec);
    Ok(())
}

pub(super) async fn close_session_removes_it(fx: &Fixture<'_>) -> Result<()> {
    let b = fx.client().await?;
    assert_eq!(fx.a.list_sessions().await?.len(), 2);
    b.close_session().await?;
    let left = fx.a.list_sessions().await?;
    assert_eq!(left.len(), 1, "{left:?}");
    Ok(())
}

pub(super) async fn new_session_after_close_is_listed(fx: &Fixture<'_>) -> Result<()> {
    let old = fx.a.list_sessions().await?;
    fx.a.close_session().await?;
    let info = SessionInfo {
        version: "1.2.3".into(),
        host_name: "h".into(),
        mount_point: "/m".into(),
        process_id: 7,
    };
    let sid = fx.a.new_session(&info).await?;
    assert_ne!(Some(sid), old.first().map(|s| s.sid));
    let now = fx.a.list_sessions().await?;
    let mine = now.iter().find(|s| s.sid == sid);
    assert_eq!(mine.map(|s| &s.info), Some(&info), "{now:?}");
    assert_eq!(now.len(), 1, "the closed session is gone: {now:?}");
    Ok(())
}

pub(super) async fn reap_with_current_time_keeps_live_sessions(fx: &Fixture<'_>) -> Result<()> {
    let _b = fx.client().await?;
    assert_eq!(fx.a.reap_stale_sessions(Timestamp::now()).await?, 0);
    assert_eq!(fx.a.list_sessions().await?.len(), 2);
    Ok(())
}

pub(super) async fn reap_in_the_future_removes_sessions(fx: &Fixture<'_>) -> Result<()> {
    let b = fx.client().await?;
    assert_eq!(b.reap_stale_sessions(tomorrow()).await?, 2);
    assert!(b.list_sessions().await?.is_empty());
    Ok(())
}

pub(super) async fn reap_releases_sustained_inodes(fx: &Fixture<'_>) -> Result<()> {
    let b = fx.client().await?;
    let f = file(&*fx.a, ROOT_INO, "f").await?;
    write(&*fx.a, f, 0, 0, 4096).await?;
    fx.a.open(&root(), f, libc::O_RDONLY).await?;
    b.unlink(&root(), ROOT_INO, b"f").await?;
    let sessions = b.list_sessions().await?;
    assert!(
        sessions.iter().any(|s| s.sustained == vec![f]),
        "A's session sustains the unlinked open file: {sessions:?}"
    );
    assert!(!is_deleted(&*b, f).await?, "an open file is not purged");
    b.reap_stale_sessions(tomorrow()).await?;
    assert!(is_deleted(&*b, f).await?, "reaping A released the file");
    Ok(())
}

pub(super) async fn close_session_releases_sustained_inodes(fx: &Fixture<'_>) -> Result<()> {
    let b = fx.client().await?;
    let f = file(&*fx.a, ROOT_INO, "f").await?;
    write(&*fx.a, f, 0, 0, 4096).await?;
    fx.a.open(&root(), f, libc::O_RDWR).await?;
    fx.a.unlink(&root(), ROOT_INO, b"f").await?;
    assert!(!is_deleted(&*b, f).await?);
    fx.a.close_session().await?;
    assert!(
        is_deleted(&*b, f).await?,
        "closing the session released the file"
    );
    Ok(())
}
