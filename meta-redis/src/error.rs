//! The detail kept in [`MetaError::Backend`] when a request's connection fails.

use meta_api::MetaError;

/// A request whose connection broke or timed out. It is the source of a
/// [`MetaError::Backend`]; [`TransportKind`] says whether the operation may have happened.
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {source}")]
pub struct Transport {
    /// Whether the operation may have been applied.
    pub kind: TransportKind,
    /// What the client library reported.
    #[source]
    pub source: redis::RedisError,
}

/// Whether a failed operation may have changed the volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportKind {
    /// Nothing was changed: the failure happened before the commit was sent, or the
    /// commit was proven not to have run. The error is retryable.
    NotApplied,
    /// The commit was sent, its reply was lost, and whether it ran could not be learnt
    /// before the retry window closed. The operation may or may not have happened; the
    /// error is not retryable because repeating a non-idempotent call blindly could
    /// report a wrong result (`Exists` for a `mkdir` that in fact succeeded).
    OutcomeUnknown,
}

impl std::fmt::Display for TransportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TransportKind::NotApplied => "redis request failed, nothing was changed",
            TransportKind::OutcomeUnknown => {
                "redis commit reply lost: the operation may or may not have been applied"
            }
        })
    }
}

/// Whether `e` says that an operation may or may not have been applied.
pub fn is_outcome_unknown(e: &MetaError) -> bool {
    transport_kind(e) == Some(TransportKind::OutcomeUnknown)
}

/// The [`TransportKind`] of a backend error caused by a broken connection, if it is one.
pub fn transport_kind(e: &MetaError) -> Option<TransportKind> {
    match e {
        MetaError::Backend { source, .. } => source.downcast_ref::<Transport>().map(|t| t.kind),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_found_through_meta_error() {
        let io = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        let e = MetaError::backend(
            false,
            Transport {
                kind: TransportKind::OutcomeUnknown,
                source: io,
            },
        );
        assert!(is_outcome_unknown(&e));
        assert!(e.to_string().contains("may or may not"));
        assert_eq!(transport_kind(&MetaError::NotFound), None);
    }
}
