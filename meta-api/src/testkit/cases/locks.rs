//! File locks: BSD `flock` and POSIX byte-range locks, within one session and across
//! clients, blocking waits, and release with the session.

use std::time::Duration;

use super::{assert_err, dir, file, root, Fixture};
use crate::{
    Context, Heartbeat, Ino, LockType, MetaEngine, MetaError, PlockRequest, Result, Timestamp,
    ROOT_INO,
};

const R: LockType = LockType::Read;
const W: LockType = LockType::Write;
const U: LockType = LockType::Unlock;
/// The last byte of a lock that reaches the end of the file.
const EOF: u64 = u64::MAX;
/// How long a blocked request is given to show that it waits (it must not finish).
const PARKED: Duration = Duration::from_millis(150);
/// How long a waiter may take to notice that the lock is free.
const WAKE: Duration = Duration::from_secs(4);

fn ctx() -> Context {
    root()
}

/// A non-blocking `flock`.
async fn flock(e: &dyn MetaEngine, ino: Ino, owner: u64, t: LockType) -> Result<()> {
    e.flock(&ctx(), ino, owner, t, false).await
}

/// A non-blocking `setlk` with pid 0.
async fn setlk(
    e: &dyn MetaEngine,
    ino: Ino,
    owner: u64,
    t: LockType,
    s: u64,
    end: u64,
) -> Result<()> {
    e.setlk(&ctx(), ino, owner, false, t, s, end, 0).await
}

/// What `F_GETLK` answers `owner` asking about `t` on `s..=end`.
async fn getlk(
    e: &dyn MetaEngine,
    ino: Ino,
    owner: u64,
    t: LockType,
    s: u64,
    end: u64,
) -> Result<PlockRequest> {
    let mut q = PlockRequest::new(t, s, end, 0);
    e.getlk(&ctx(), ino, owner, &mut q).await?;
    Ok(q)
}

/// A conflicting lock as `getlk` reports it for another session's lock (pid 0).
fn held(t: LockType, s: u64, end: u64) -> PlockRequest {
    PlockRequest::new(t, s, end, 0)
}

/// A file in the root for the lock cases.
async fn lock_file(fx: &Fixture<'_>) -> Result<Ino> {
    file(&*fx.a, ROOT_INO, "locked").await
}

/// A day from now, when every live session has expired.
fn tomorrow() -> Timestamp {
    Timestamp::new(Timestamp::now().sec + 86_400, 0)
}

pub(super) async fn flock_shared_locks_coexist(fx: &Fixture<'_>) -> Result<()> {
    let b = fx.client().await?;
    let f = lock_file(fx).await?;
    flock(&*fx.a, f, 1, R).await?;
    flock(&*fx.a, f, 2, R).await?;
    flock(&*b, f, 1, R).await?;
    flock(&*fx.a, f, 1, R).await?;
    Ok(())
}

pub(super) async fn flock_exclusive_conflicts_across_clients(fx: &Fixture<'_>) -> Result<()> {
    let b = fx.client().await?;
    let f = lock_file(fx).await?;
    flock(&*fx.a, f, 1, W).await?;
    assert_err!(flock(&*b, f, 1, R).await, MetaError::WouldBlock);
    assert_err!(flock(&*b, f, 1, W).await, MetaError::WouldBlock);
    flock(&*fx.a, f, 1, U).await?;
    flock(&*b, f, 1, R).await?;
    assert_err!(flock(&*fx.a, f, 1, W).await, MetaError::WouldBlock);
    // The refused request took nothing: A can still share the lock.
    flock(&*fx.a, f, 1, R).await?;
    Ok(())
}

pub(super) async fn flock_owners_of_one_session_conflict(fx: &Fixture<'_>) -> Result<()> {
    let f = lock_file(fx).await?;
    flock(&*fx.a, f, 1, W).await?;
    assert_err!(flock(&*fx.a, f, 2, R).await, MetaError::WouldBlock);
    assert_err!(flock(&*fx.a, f, 2, W).await, MetaError::WouldBlock);
    // The holder itself may ask again.
    flock(&*fx.a, f, 1, W).await?;
    Ok(())
}

pub(super) async fn flock_upgrade_and_downgrade(fx: &Fixture<'_>) -> Result<()> {
    let b = fx.client().await?;
    let f = lock_file(fx).await?;
    flock(&*fx.a, f, 1, R).await?;
    flock(&*fx.a, f, 1, W).await?;
    assert_err!(flock(&*b, f, 1, R).await, MetaError::WouldBlock);
    flock(&*fx.a, f, 1, R).await?;
    flock(&*b, f, 1, R).await?;
    // Another reader now blocks the upgrade, and the failed upgrade keeps the read lock.
    assert_err!(flock(&*fx.a, f, 1, W).await, MetaError::WouldBlock);
    assert_err!(flock(&*b, f, 1, W).await, MetaError::WouldBlock);
    Ok(())
}

pub(super) async fn flock_unlock_releases(fx: &Fixture<'_>) -> Result<()> {
    let b = fx.client().await?;
    let f = lock_file(fx).await?;
    // Unlocking what one does not hold is fine, also on a missing inode.
    flock(&*fx.a, f, 1, U).await?;
    flock(&*fx.a, 0xdead_beef, 1, U).await?;
    flock(&*fx.a, f, 1, W).await?;
    // Another owner's unlock does not release A's lock.
    flock(&*b, f, 1, U).await?;
    flock(&*fx.a, f, 2, U).await?;
    assert_err!(flock(&*b, f, 1, W).await, MetaError::WouldBlock);
    flock(&*fx.a, f, 1, U).await?;
    flock(&*b, f, 1, W).await?;
    Ok(())
}

pub(super) async fn flock_on_directory_and_missing_inode(fx: &Fixture<'_>) -> Result<()> {
    let b = fx.client().await?;
    let d = dir(&*fx.a, ROOT_INO, "d").await?;
    flock(&*fx.a, d, 1, W).await?;
    assert_err!(flock(&*b, d, 1, R).await, MetaError::WouldBlock);
    assert_err!(flock(&*fx.a, 0xdead_beef, 1, R).await, MetaError::NotFound);
    Ok(())
}

/// Spawns a blocking request and checks that it is still waiting after [`PARKED`].
async fn parked<F>(request: F) -> tokio::task::JoinHandle<Result<()>>
where
    F: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let mut task = tokio::spawn(request);
    let early = tokio::time::timeout(PARKED, &mut task).await;
    assert!(
        early.is_err(),
        "a blocking request for a held lock returned: {early:?}"
    );
    task
}

/// Waits (at most [`WAKE`]) for a parked request to finish and returns its result.
async fn woken(task: tokio::task::JoinHandle<Result<()>>) -> Result<()> {
    match tokio::time::timeout(WAKE, task).await {
        Ok(Ok(r)) => r,
        Ok(Err(join)) => panic!("the waiting task failed: {join}"),
        Err(_) => panic!("a blocking request was still waiting {WAKE:?} after what should end it"),
    }
}

pub(super) async fn flock_blocking_waits_for_unlock(fx: &Fixture<'_>) -> Result<()> {
    let b = fx.client().await?;
    let f = lock_file(fx).await?;
    flock(&*fx.a, f, 1, W).await?;
    let task = {
        let b = b.clone();
        parked(async move { b.flock(&ctx(), f, 7, W, true).await }).await
    };
    flock(&*fx.a, f, 1, U).await?;
    woken(task).await?;
    // B holds it now.
    assert_err!(flock(&*fx.a, f, 1, R).await, MetaError::WouldBlock);
    flock(&*b, f, 7, U).await?;
    flock(&*fx.a, f, 1, R).await?;
    Ok(())
}

pub(super) async fn blocking_wait_is_cancelled_by_dropping_it(fx: &Fixture<'_>) -> Result<()> {
    let b = fx.client().await?;
    let f = lock_file(fx).await?;
    flock(&*fx.a, f, 1, W).await?;
    setlk(&*fx.a, f, 1, W, 0, EOF).await?;
    let waiting_flock = {
        let b = b.clone();
        parked(async move { b.flock(&ctx(), f, 7, W, true).await }).await
    };
    let waiting_plock = {
        let b = b.clone();
        parked(async move { b.setlk(&ctx(), f, 7, true, W, 10, 20, 0).await }).await
    };
    waiting_flock.abort();
    waiting_plock.abort();
    assert!(waiting_flock.await.is_err_and(|e| e.is_cancelled()));
    assert!(waiting_plock.await.is_err_and(|e| e.is_cancelled()));
    flock(&*fx.a, f, 1, U).await?;
    setlk(&*fx.a, f, 1, U, 0, EOF).await?;
    // The cancelled waits took nothing.
    flock(&*fx.a, f, 2, W).await?;
    setlk(&*fx.a, f, 2, W, 0, EOF).await?;
    Ok(())
}

pub(super) async fn blocking_wait_ends_with_the_session(fx: &Fixture<'_>) -> Result<()> {
    let b = fx.client().await?;
    let f = lock_file(fx).await?;
    flock(&*fx.a, f, 1, W).await?;
    setlk(&*fx.a, f, 1, W, 0, EOF).await?;
    let waiting_flock = {
        let b = b.clone();
        parked(async move { b.flock(&ctx(), f, 7, W, true).await }).await
    };
    let waiting_plock = {
        let b = b.clone();
        parked(async move { b.setlk(&ctx(), f, 7, true, R, 0, 0, 0).await }).await
    };
    b.close_session().await?;
    // A lock granted now would belong to no session and never be released.
    assert_err!(woken(waiting_flock).await, MetaError::BadHandle);
    assert_err!(woken(waiting_plock).await, MetaError::BadHandle);
    flock(&*fx.a, f, 1, U).await?;
    setlk(&*fx.a, f, 1, U, 0, EOF).await?;
    let c = fx.client().await?;
    flock(&*c, f, 1, W).await?;
    setlk(&*c, f, 1, W, 0, EOF).await?;
    Ok(())
}

pub(super) async fn plock_getlk_without_conflict_is_unlock(fx: &Fixture<'_>) -> Result<()> {
    let b = fx.client().await?;
    let f = lock_file(fx).await?;
    assert_eq!(getlk(&*b, f, 1, W, 0, EOF).await?, PlockRequest::unlocked());
    setlk(&*fx.a, f, 1, R, 0, 99).await?;
    // Readers share; ranges that do not overlap never conflict.
    assert_eq!(getlk(&*b, f, 1, R, 0, EOF).await?, PlockRequest::unlocked());
    assert_eq!(
        getlk(&*b, f, 1, W, 100, EOF).await?,
        PlockRequest::unlocked()
    );
    // The owner's own locks never conflict with it.
    assert_eq!(
        getlk(&*fx.a, f, 1, W, 0, EOF).await?,
        PlockRequest::unlocked()
    );
    assert_eq!(getlk(&*b, f, 1, W, 50, 50).await?, held(R, 0, 99));
    Ok(())
}

pub(super) async fn plock_conflicts_across_clients(fx: &Fixture<'_>) -> Result<()> {
    let b = fx.client().await?;
    let f = lock_file(fx).await?;
    setlk(&*fx.a, f, 1, W, 100, 199).await?;
    assert_err!(setlk(&*b, f, 1, R, 150, 150).await, MetaError::WouldBlock);
    assert_err!(setlk(&*b, f, 1, W, 0, 100).await, MetaError::WouldBlock);
    assert_err!(setlk(&*b, f, 1, R, 199, EOF).await, MetaError::WouldBlock);
    // Right next to the lock is free.
    setlk(&*b, f, 1, W, 0, 99).await?;
    setlk(&*b, f, 1, R, 200, EOF).await?;
    assert_eq!(getlk(&*fx.a, f, 1, R, 0, EOF).await?, held(W, 0, 99));
    assert_eq!(getlk(&*fx.a, f, 1, W, 150, EOF).await?, held(R, 200, EOF));
    assert_eq!(getlk(&*b, f, 1, R, 0, EOF).await?, held(W, 100, 199));
    Ok(())
}

pub(super) async fn plock_unlock_splits_and_relock_merges(fx: &Fixture<'_>) -> Result<()> {
    let b = fx.client().await?;
    let f = lock_file(fx).await?;
    setlk(&*fx.a, f, 1, W, 0, 99).await?;
    setlk(&*fx.a, f, 1, U, 40, 59).await?;
    assert_eq!(getlk(&*b, f, 1, W, 0, EOF).await?, held(W, 0, 39));
    assert_eq!(getlk(&*b, f, 1, W, 40, EOF).await?, held(W, 60, 99));
    assert_eq!(getlk(&*b, f, 1, W, 40, 59).await?, PlockRequest::unlocked());
    setlk(&*b, f, 1, R, 45, 50).await?;
    setlk(&*b, f, 1, U, 45, 50).await?;
    // Locking the hole again joins the pieces into one range.
    setlk(&*fx.a, f, 1, W, 40, 59).await?;
    assert_eq!(getlk(&*b, f, 1, R, 0, EOF).await?, held(W, 0, 99));
    // Touching ranges of one type merge too.
    setlk(&*fx.a, f, 1, W, 100, 149).await?;
    assert_eq!(getlk(&*b, f, 1, R, 0, EOF).await?, held(W, 0, 149));
    setlk(&*fx.a, f, 1, U, 0, EOF).await?;
    assert_eq!(getlk(&*b, f, 1, W, 0, EOF).await?, PlockRequest::unlocked());
    Ok(())
}

pub(super) async fn plock_same_owner_replaces_its_locks(fx: &Fixture<'_>) -> Result<()> {
    let b = fx.client().await?;
    let f = lock_file(fx).await?;
    setlk(&*fx.a, f, 1, R, 0, 99).await?;
    // The same owner converts part of its range without conflicting with itself.
    setlk(&*fx.a, f, 1, W, 20, 29).await?;
    assert_eq!(getlk(&*b, f, 1, R, 0, EOF).await?, held(W, 20, 29));
    assert_eq!(getlk(&*b, f, 1, W, 0, EOF).await?, held(R, 0, 19));
    assert_eq!(getlk(&*b, f, 1, W, 25, EOF).await?, held(W, 20, 29));
    assert_eq!(getlk(&*b, f, 1, W, 30, EOF).await?, held(R, 30, 99));
    // Back to read: the three pieces are one read lock again.
    setlk(&*fx.a, f, 1, R, 20, 29).await?;
    assert_eq!(getlk(&*b, f, 1, W, 0, EOF).await?, held(R, 0, 99));
    setlk(&*b, f, 1, R, 0, 99).await?;
    Ok(())
}

pub(super) async fn plock_owners_of_one_session_conflict(fx: &Fixture<'_>) -> Result<()> {
    let f = lock_file(fx).await?;
    fx.a.setlk(&ctx(), f, 1, false, W, 0, 9, 4242).await?;
    assert_err!(setlk(&*fx.a, f, 2, R, 5, 5).await, MetaError::WouldBlock);
    // Within one session the holder's pid is reported.
    assert_eq!(
        getlk(&*fx.a, f, 2, R, 0, EOF).await?,
        PlockRequest::new(W, 0, 9, 4242)
    );
    // Other sessions see pid 0.
    let b = fx.client().await?;
    assert_eq!(getlk(&*b, f, 2, R, 0, EOF).await?, held(W, 0, 9));
    setlk(&*fx.a, f, 2, W, 10, 19).await?;
    Ok(())
}

pub(super) async fn plock_to_end_of_file(fx: &Fixture<'_>) -> Result<()> {
    let b = fx.client().await?;
    let f = lock_file(fx).await?;
    setlk(&*fx.a, f, 1, W, 1000, EOF).await?;
    assert_err!(
        setlk(&*b, f, 1, R, 1 << 50, 1 << 50).await,
        MetaError::WouldBlock
    );
    assert_err!(
        setlk(&*b, f, 1, R, i64::MAX as u64, EOF).await,
        MetaError::WouldBlock
    );
    setlk(&*b, f, 1, W, 0, 999).await?;
    // Unlocking the tail leaves the start of the range locked.
    setlk(&*fx.a, f, 1, U, 5000, EOF).await?;
    setlk(&*b, f, 1, W, 5000, EOF).await?;
    assert_eq!(getlk(&*b, f, 1, R, 0, EOF).await?, held(W, 1000, 4999));
    // The kernel's end of file (`i64::MAX`, as a FUSE mount sends it) is the same end.
    let g = file(&*fx.a, ROOT_INO, "g").await?;
    setlk(&*fx.a, g, 1, R, 10, i64::MAX as u64).await?;
    assert_eq!(getlk(&*b, g, 1, W, 0, EOF).await?, held(R, 10, EOF));
    setlk(&*fx.a, g, 1, U, 20, EOF).await?;
    assert_eq!(getlk(&*b, g, 1, W, 0, EOF).await?, held(R, 10, 19));
    assert_err!(
        setlk(&*b, g, 1, R, i64::MAX as u64 + 1, EOF).await,
        MetaError::InvalidArgument(_)
    );
    Ok(())
}

pub(super) async fn plock_blocking_waits_for_unlock(fx: &Fixture<'_>) -> Result<()> {
    let b = fx.client().await?;
    let f = lock_file(fx).await?;
    setlk(&*fx.a, f, 1, R, 0, 99).await?;
    setlk(&*fx.a, f, 1, W, 100, 199).await?;
    let task = {
        let b = b.clone();
        parked(async move { b.setlk(&ctx(), f, 7, true, W, 50, 150, 0).await }).await
    };
    // Releasing only part of the conflict keeps the waiter waiting.
    setlk(&*fx.a, f, 1, U, 0, 99).await?;
    assert_eq!(getlk(&*b, f, 7, W, 50, 150).await?, held(W, 100, 199));
    tokio::time::sleep(PARKED).await;
    assert!(
        !task.is_finished(),
        "the waiter still conflicts with 100..=199"
    );
    setlk(&*fx.a, f, 1, U, 100, 199).await?;
    woken(task).await?;
    assert_eq!(getlk(&*fx.a, f, 1, R, 0, EOF).await?, held(W, 50, 150));
    Ok(())
}

pub(super) async fn plock_invalid_requests(fx: &Fixture<'_>) -> Result<()> {
    let f = lock_file(fx).await?;
    assert_err!(
        setlk(&*fx.a, f, 1, W, 10, 9).await,
        MetaError::InvalidArgument(_)
    );
    assert_err!(
        setlk(&*fx.a, f, 1, U, 10, 9).await,
        MetaError::InvalidArgument(_)
    );
    assert_err!(
        getlk(&*fx.a, f, 1, R, 10, 9).await,
        MetaError::InvalidArgument(_)
    );
    assert_err!(
        getlk(&*fx.a, f, 1, U, 0, EOF).await,
        MetaError::InvalidArgument(_)
    );
    assert_err!(
        setlk(&*fx.a, 0xdead_beef, 1, R, 0, 1).await,
        MetaError::NotFound
    );
    assert_err!(
        getlk(&*fx.a, 0xdead_beef, 1, R, 0, 1).await,
        MetaError::NotFound
    );
    // Unlocking a missing inode has nothing to do and succeeds.
    setlk(&*fx.a, 0xdead_beef, 1, U, 0, EOF).await?;
    // Nothing was taken by the refused requests.
    let b = fx.client().await?;
    setlk(&*b, f, 1, W, 0, EOF).await?;
    Ok(())
}

pub(super) async fn plock_on_directory(fx: &Fixture<'_>) -> Result<()> {
    let b = fx.client().await?;
    let d = dir(&*fx.a, ROOT_INO, "d").await?;
    setlk(&*fx.a, d, 1, R, 0, EOF).await?;
    assert_eq!(getlk(&*b, d, 1, W, 0, 0).await?, held(R, 0, EOF));
    assert_err!(setlk(&*b, d, 1, W, 0, 0).await, MetaError::WouldBlock);
    Ok(())
}

pub(super) async fn flock_and_plock_are_independent(fx: &Fixture<'_>) -> Result<()> {
    let b = fx.client().await?;
    let f = lock_file(fx).await?;
    flock(&*fx.a, f, 1, W).await?;
    setlk(&*b, f, 1, W, 0, EOF).await?;
    assert_err!(setlk(&*fx.a, f, 1, R, 0, 0).await, MetaError::WouldBlock);
    assert_err!(flock(&*b, f, 1, R).await, MetaError::WouldBlock);
    Ok(())
}

pub(super) async fn close_session_releases_locks(fx: &Fixture<'_>) -> Result<()> {
    let b = fx.client().await?;
    let f = lock_file(fx).await?;
    let g = file(&*fx.a, ROOT_INO, "g").await?;
    flock(&*fx.a, f, 1, W).await?;
    flock(&*fx.a, g, 2, R).await?;
    setlk(&*fx.a, f, 1, W, 0, 99).await?;
    setlk(&*fx.a, g, 3, W, 0, EOF).await?;
    flock(&*b, g, 9, R).await?;
    setlk(&*b, f, 9, R, 100, 199).await?;
    fx.a.close_session().await?;
    flock(&*b, f, 1, W).await?;
    setlk(&*b, f, 1, W, 0, 99).await?;
    setlk(&*b, g, 1, W, 0, EOF).await?;
    // B's own locks stay: its reader of g keeps another owner of B from writing.
    assert_err!(flock(&*b, g, 1, W).await, MetaError::WouldBlock);
    assert_err!(setlk(&*b, f, 1, W, 150, 150).await, MetaError::WouldBlock);
    Ok(())
}

pub(super) async fn reap_releases_locks(fx: &Fixture<'_>) -> Result<()> {
    let b = fx.client().await?;
    let f = lock_file(fx).await?;
    flock(&*fx.a, f, 1, W).await?;
    setlk(&*fx.a, f, 1, W, 0, EOF).await?;
    assert_err!(flock(&*b, f, 1, R).await, MetaError::WouldBlock);
    b.reap_stale_sessions(tomorrow()).await?;
    // B's own session is gone too; a new one can take the locks A held.
    let c = fx.client().await?;
    flock(&*c, f, 1, W).await?;
    setlk(&*c, f, 1, W, 0, EOF).await?;
    assert_eq!(
        getlk(&*c, f, 2, R, 0, EOF).await?,
        PlockRequest::new(W, 0, EOF, 0)
    );
    Ok(())
}

pub(super) async fn locks_need_a_session(fx: &Fixture<'_>) -> Result<()> {
    let f = lock_file(fx).await?;
    fx.a.close_session().await?;
    assert_err!(flock(&*fx.a, f, 1, W).await, MetaError::BadHandle);
    assert_err!(setlk(&*fx.a, f, 1, W, 0, 1).await, MetaError::BadHandle);
    flock(&*fx.a, f, 1, U).await?;
    setlk(&*fx.a, f, 1, U, 0, EOF).await?;
    assert_eq!(
        getlk(&*fx.a, f, 1, W, 0, EOF).await?,
        PlockRequest::unlocked()
    );
    Ok(())
}

/// A client whose session was reaped takes no lock until its heartbeat brings the session
/// back (a lock of a session that is gone would never be reaped), and the locks it takes
/// then are reaped with it: none is left behind.
pub(super) async fn a_reaped_session_takes_no_lock_until_its_heartbeat(
    fx: &Fixture<'_>,
) -> Result<()> {
    let f = lock_file(fx).await?;
    let b = fx.client().await?;
    // Every expiry has passed by then: b reaps both sessions, its own too.
    assert_eq!(b.reap_stale_sessions(tomorrow()).await?, 2);
    assert_err!(flock(&*fx.a, f, 1, W).await, MetaError::SessionLost);
    assert_err!(flock(&*fx.a, f, 1, R).await, MetaError::SessionLost);
    assert_err!(setlk(&*fx.a, f, 1, W, 0, 9).await, MetaError::SessionLost);
    // Unlocking never fails.
    flock(&*fx.a, f, 1, U).await?;
    setlk(&*fx.a, f, 1, U, 0, EOF).await?;
    assert!(
        fx.a.list_sessions().await?.is_empty(),
        "a refused lock brings no session back"
    );
    assert_eq!(fx.a.heartbeat().await?, Heartbeat::Reregistered);
    assert_eq!(fx.a.heartbeat().await?, Heartbeat::Extended);
    assert_eq!(b.heartbeat().await?, Heartbeat::Reregistered);
    assert_eq!(fx.a.list_sessions().await?.len(), 2);
    flock(&*fx.a, f, 1, W).await?;
    setlk(&*fx.a, f, 1, W, 0, 9).await?;
    assert_err!(flock(&*b, f, 2, W).await, MetaError::WouldBlock);
    assert_err!(setlk(&*b, f, 2, W, 0, 9).await, MetaError::WouldBlock);
    // a goes quiet and is reaped: its locks go with it.
    assert_eq!(b.reap_stale_sessions(tomorrow()).await?, 2);
    assert_eq!(b.heartbeat().await?, Heartbeat::Reregistered);
    flock(&*b, f, 2, W).await?;
    setlk(&*b, f, 2, W, 0, 9).await?;
    Ok(())
}
