//! The one error type of the block tier.

/// A boxed backend error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result of block-store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What went wrong with a block store. `is_retryable()` drives the retry decorator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The object does not exist.
    #[error("object not found: {0}")]
    NotFound(String),
    /// The object's bytes are not what they should be (length, checksum, decoding).
    #[error("corrupt object: {0}")]
    Corrupt(String),
    /// The key or an argument is not acceptable.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The store refused the credentials or the operation.
    #[error("access denied: {0}")]
    Denied(String),
    /// A transient failure: timeout, connection reset, 5xx, throttling, store down.
    #[error("store temporarily unavailable: {source}")]
    Transient {
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// A permanent failure not covered above (local I/O error, 4xx, …).
    #[error("store error: {source}")]
    Other {
        /// The underlying error.
        #[source]
        source: BoxError,
    },
}

impl StoreError {
    /// A transient error.
    pub fn transient(e: impl Into<BoxError>) -> StoreError {
        StoreError::Transient { source: e.into() }
    }
    /// A permanent error.
    pub fn other(e: impl Into<BoxError>) -> StoreError {
        StoreError::Other { source: e.into() }
    }

    /// Whether the same call may succeed when repeated.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Transient { .. })
    }

    /// The errno a filesystem reports for this error: everything is `EIO` to a reader of
    /// file data, except access problems and a local store's full disk (`ENOSPC`, or
    /// `EDQUOT` for a disk quota).
    pub fn errno(&self) -> i32 {
        match self {
            StoreError::Denied(_) => libc::EACCES,
            StoreError::Invalid(_) => libc::EINVAL,
            _ => self.space_errno().unwrap_or(libc::EIO),
        }
    }

    /// `ENOSPC` or `EDQUOT` when an I/O error behind this one says the disk or the disk
    /// quota is full.
    pub fn space_errno(&self) -> Option<i32> {
        let (StoreError::Transient { source } | StoreError::Other { source }) = self else {
            return None;
        };
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
        while let Some(c) = cause {
            if let Some(io) = c.downcast_ref::<std::io::Error>() {
                match (io.raw_os_error(), io.kind()) {
                    (Some(libc::ENOSPC), _) | (_, std::io::ErrorKind::StorageFull) => {
                        return Some(libc::ENOSPC)
                    }
                    (Some(libc::EDQUOT), _) | (_, std::io::ErrorKind::QuotaExceeded) => {
                        return Some(libc::EDQUOT)
                    }
                    _ => {}
                }
            }
            cause = c.source();
        }
        None
    }
}

impl From<StoreError> for std::io::Error {
    fn from(e: StoreError) -> std::io::Error {
        let kind = match &e {
            StoreError::NotFound(_) => std::io::ErrorKind::NotFound,
            StoreError::Denied(_) => std::io::ErrorKind::PermissionDenied,
            StoreError::Invalid(_) => std::io::ErrorKind::InvalidInput,
            StoreError::Corrupt(_) => std::io::ErrorKind::InvalidData,
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, e)
    }
}
