//! Singleflight: concurrent misses of one block share one fetch from the store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use chunkstore::StoreError;
use tokio::sync::watch;

/// What a fetch produced, shareable among its waiters.
pub(crate) type Outcome = Result<Bytes, Arc<StoreError>>;

type Slot = watch::Receiver<Option<Outcome>>;

/// The fetches in progress, by key.
#[derive(Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<String, (u64, Slot)>>,
    next_id: AtomicU64,
}

/// The caller's part in a fetch.
pub(crate) enum Join {
    /// Nobody is fetching: the caller fetches, publishes through the guard, and the flight
    /// ends when the guard is dropped.
    Leader(FlightGuard),
    /// Someone is fetching: wait for their outcome with [`wait`].
    Follower(Slot),
}

/// Held by the one caller fetching a key; dropping it ends the flight (if nothing was
/// published by then, the waiters start over and one of them fetches).
pub(crate) struct FlightGuard {
    flights: Arc<Flights>,
    key: String,
    id: u64,
    tx: watch::Sender<Option<Outcome>>,
}

impl Flights {
    // Each update is one map call, so a poisoned lock still guards a consistent map.
    fn lock(&self) -> MutexGuard<'_, HashMap<String, (u64, Slot)>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins the fetch of `key`, leading it if none is in progress.
    pub(crate) fn join(self: &Arc<Self>, key: &str) -> Join {
        let mut map = self.lock();
        if let Some((_, rx)) = map.get(key) {
            return Join::Follower(rx.clone());
        }
        let (tx, rx) = watch::channel(None);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        map.insert(key.to_string(), (id, rx));
        Join::Leader(FlightGuard {
            flights: Arc::clone(self),
            key: key.to_string(),
            id,
            tx,
        })
    }

    /// How many fetches are in progress.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

impl FlightGuard {
    /// Hands the outcome to every waiter, present and future, until the guard is dropped.
    pub(crate) fn publish(&self, outcome: Outcome) {
        self.tx.send_replace(Some(outcome));
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        let mut map = self.flights.lock();
        if map.get(&self.key).is_some_and(|(id, _)| *id == self.id) {
            map.remove(&self.key);
        }
    }
}

/// Waits for the leader's outcome; `None` if the leader gave up without one.
pub(crate) async fn wait(mut slot: Slot) -> Option<Outcome> {
    match slot.wait_for(Option::is_some).await {
        Ok(v) => v.clone(),
        Err(_) => None,
    }
}

/// A copy of a shared error for one waiter, keeping its kind (the source becomes text).
pub(crate) fn copy_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::NotFound(s) => StoreError::NotFound(s.clone()),
        StoreError::Corrupt(s) => StoreError::Corrupt(s.clone()),
        StoreError::Invalid(s) => StoreError::Invalid(s.clone()),
        StoreError::Denied(s) => StoreError::Denied(s.clone()),
        StoreError::Transient { source } => StoreError::transient(source.to_string()),
        other => StoreError::other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn followers_get_the_leaders_outcome() {
        let f = Arc::new(Flights::default());
        let Join::Leader(g) = f.join("k") else {
            panic!("first caller leads")
        };
        let Join::Follower(s1) = f.join("k") else {
            panic!("second caller follows")
        };
        let waiter = tokio::spawn(wait(s1));
        g.publish(Ok(Bytes::from_static(b"x")));
        // Late joiners still see the outcome while the guard lives.
        let Join::Follower(s2) = f.join("k") else {
            panic!("third caller follows")
        };
        assert_eq!(wait(s2).await.unwrap().unwrap(), &b"x"[..]);
        assert_eq!(waiter.await.unwrap().unwrap().unwrap(), &b"x"[..]);
        drop(g);
        assert_eq!(f.len(), 0);
        assert!(matches!(f.join("k"), Join::Leader(_)));
    }

    #[tokio::test]
    async fn an_abandoned_flight_releases_its_followers() {
        let f = Arc::new(Flights::default());
        let Join::Leader(g) = f.join("k") else {
            panic!("leader")
        };
        let Join::Follower(s) = f.join("k") else {
            panic!("follower")
        };
        drop(g);
        assert!(wait(s).await.is_none());
        assert_eq!(f.len(), 0);
    }

    #[test]
    fn copied_errors_keep_their_kind() {
        let e = copy_error(&StoreError::transient("slow down"));
        assert!(e.is_retryable());
        assert!(matches!(
            copy_error(&StoreError::NotFound("k".into())),
            StoreError::NotFound(_)
        ));
        assert!(matches!(
            copy_error(&StoreError::other("x")),
            StoreError::Other { .. }
        ));
    }
}
