//! The one error type of the metadata tier and its errno table.

/// A boxed error from a backend, kept as the source of a [`MetaError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result of metadata operations.
pub type Result<T, E = MetaError> = std::result::Result<T, E>;

/// What went wrong in a metadata operation. Coarse on purpose: callers match on the kind,
/// backends keep their detail in the boxed source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetaError {
    /// `ENOENT`: no such file or directory.
    #[error("no such file or directory")]
    NotFound,
    /// `EEXIST`: the name is taken.
    #[error("file exists")]
    Exists,
    /// `ENOTEMPTY`: the directory has entries.
    #[error("directory not empty")]
    NotEmpty,
    /// `ENOTDIR`: a directory was expected.
    #[error("not a directory")]
    NotDir,
    /// `EISDIR`: the operation does not apply to a directory.
    #[error("is a directory")]
    IsDir,
    /// `EACCES`: the permission bits deny the access.
    #[error("permission denied")]
    PermissionDenied,
    /// `EPERM`: only the owner or root may do this.
    #[error("operation not permitted")]
    NotPermitted,
    /// `ENAMETOOLONG`: a name over 255 bytes or a symlink target over 4096 bytes.
    #[error("name too long")]
    NameTooLong,
    /// `EINVAL`: an argument is invalid; the message says which.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// `ELOOP`: too many symbolic links.
    #[error("too many levels of symbolic links")]
    Loop,
    /// `EXDEV`: crosses a boundary the operation cannot cross.
    #[error("invalid cross-device link")]
    CrossDevice,
    /// `EFBIG`: past the maximum file size.
    #[error("file too large")]
    FileTooBig,
    /// `EDQUOT`: a quota is exhausted.
    #[error("disk quota exceeded")]
    QuotaExceeded,
    /// `ENOSPC`: the volume's capacity or inode limit is reached.
    #[error("no space left on device")]
    NoSpace,
    /// `ENODATA`: no such extended attribute.
    #[error("no such attribute")]
    NoAttr,
    /// `ERANGE`: a value does not fit (xattr too large).
    #[error("result out of range")]
    Range,
    /// `EMLINK`: too many links.
    #[error("too many links")]
    TooManyLinks,
    /// `ENOTSUP`: the operation is not supported on this volume.
    #[error("operation not supported: {0}")]
    NotSupported(&'static str),
    /// `EAGAIN`: a lock is held by someone else (non-blocking request).
    #[error("resource temporarily unavailable")]
    WouldBlock,
    /// `EBADF`: a handle or open state that does not exist.
    #[error("bad file descriptor")]
    BadHandle,
    /// `EROFS`: the volume or session is read-only.
    #[error("read-only file system")]
    ReadOnly,
    /// The volume has not been formatted.
    #[error("volume is not formatted")]
    NotFormatted,
    /// This client's session was reaped as stale by another client (it was away longer
    /// than the session's expiry, or the clocks disagree): what the session held — open
    /// files kept alive, locks — was released. A lock request fails with it, and handles
    /// opened before the client learned of it fail with it (`EIO`).
    #[error(
        "this client's session was reaped as stale by another client; its locks and \
         open files were released (reopen the file)"
    )]
    SessionLost,
    /// The volume (or what the call needs) is in use: another client is connected, or a
    /// checkpoint restore is under way.
    #[error("device or resource busy: {0}")]
    Busy(String),
    /// The volume uses a feature this client refuses (encryption, a newer version).
    #[error("unsupported volume: {0}")]
    UnsupportedVolume(String),
    /// Stored metadata cannot be decoded.
    #[error("corrupt metadata: {0}")]
    Corrupt(String),
    /// A transaction conflicted with another and ran out of retries.
    #[error("transaction conflict, retries exhausted")]
    Conflict,
    /// The backend failed (connection, I/O, server error).
    #[error("metadata backend error: {source}")]
    Backend {
        /// Whether repeating the same call may succeed.
        retryable: bool,
        /// The backend's own error.
        #[source]
        source: BoxError,
    },
}

impl MetaError {
    /// Wraps a backend error.
    pub fn backend(retryable: bool, source: impl Into<BoxError>) -> MetaError {
        MetaError::Backend {
            retryable,
            source: source.into(),
        }
    }

    /// The errno this error maps to: the one table of the metadata tier.
    pub fn errno(&self) -> i32 {
        use MetaError::*;
        match self {
            NotFound => libc::ENOENT,
            Exists => libc::EEXIST,
            NotEmpty => libc::ENOTEMPTY,
            NotDir => libc::ENOTDIR,
            IsDir => libc::EISDIR,
            PermissionDenied => libc::EACCES,
            NotPermitted => libc::EPERM,
            NameTooLong => libc::ENAMETOOLONG,
            InvalidArgument(_) => libc::EINVAL,
            Loop => libc::ELOOP,
            CrossDevice => libc::EXDEV,
            FileTooBig => libc::EFBIG,
            QuotaExceeded => libc::EDQUOT,
            NoSpace => libc::ENOSPC,
            NoAttr => libc::ENODATA,
            Range => libc::ERANGE,
            TooManyLinks => libc::EMLINK,
            NotSupported(_) => libc::ENOTSUP,
            WouldBlock => libc::EAGAIN,
            BadHandle => libc::EBADF,
            ReadOnly => libc::EROFS,
            Busy(_) => libc::EBUSY,
            NotFormatted
            | UnsupportedVolume(_)
            | Corrupt(_)
            | Conflict
            | SessionLost
            | Backend { .. } => libc::EIO,
        }
    }

    /// Whether repeating the same call may succeed (conflicts, dropped connections).
    pub fn is_retryable(&self) -> bool {
        match self {
            MetaError::Conflict => true,
            MetaError::Backend { retryable, .. } => *retryable,
            _ => false,
        }
    }
}

impl From<MetaError> for std::io::Error {
    fn from(e: MetaError) -> std::io::Error {
        let errno = e.errno();
        match e {
            // Keep the detail of errors whose errno alone says little.
            MetaError::Backend { .. }
            | MetaError::Corrupt(_)
            | MetaError::NotFormatted
            | MetaError::UnsupportedVolume(_)
            | MetaError::Conflict
            | MetaError::InvalidArgument(_)
            | MetaError::NotSupported(_) => {
                let kind = std::io::Error::from_raw_os_error(errno).kind();
                std::io::Error::new(kind, e)
            }
            _ => std::io::Error::from_raw_os_error(errno),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_round_trips_through_io_error() {
        let io: std::io::Error = MetaError::NotEmpty.into();
        assert_eq!(io.raw_os_error(), Some(libc::ENOTEMPTY));
        let io: std::io::Error = MetaError::backend(true, "boom").into();
        assert!(io.to_string().contains("boom"));
        assert!(MetaError::Conflict.is_retryable());
        assert!(!MetaError::NotFound.is_retryable());
    }
}
