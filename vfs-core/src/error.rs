//! The one error type of the VFS and its errno table.

use std::sync::Arc;

use chunkstore::StoreError;
use meta_api::MetaError;

/// Result of VFS operations.
pub type Result<T, E = VfsError> = std::result::Result<T, E>;

/// What went wrong in a VFS operation. Coarse on purpose: metadata and block-store errors
/// keep their own kinds inside, and [`VfsError::errno`] is the one table a frontend needs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VfsError {
    /// The metadata engine refused or failed; its errno is the engine's.
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// The block store failed (`EIO`: a reader or writer of file data cannot do better).
    #[error("block store: {0}")]
    Store(#[source] Arc<StoreError>),
    /// Buffered data could not be written back (upload or commit failed); the data of the
    /// writes since the last successful flush is lost. The errno is the cause's.
    #[error("writing back buffered data failed: {0}")]
    WriteBack(#[source] Arc<VfsError>),
    /// `EBADF`: no such handle, or the handle was not opened for this.
    #[error("bad file handle")]
    BadHandle,
    /// `EINVAL`: an argument is invalid; the message says which.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// `EFBIG`: past the largest file size.
    #[error("file too large")]
    FileTooBig,
    /// `E2BIG`: an extended attribute value over 64 KiB.
    #[error("extended attribute value too large")]
    ValueTooLarge,
    /// `EMFILE`: the handle table is full (`max_open_files`).
    #[error("too many open files")]
    TooManyOpenFiles,
    /// `ENOTSUP`: this VFS does not implement the operation or mode.
    #[error("operation not supported: {0}")]
    NotSupported(&'static str),
    /// `EINVAL`: the volume URL is malformed.
    #[error("invalid volume URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given (without credentials being interpreted).
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `EPROTONOSUPPORT`: no metadata engine for this URL scheme is compiled in.
    #[error("unsupported metadata URL scheme {scheme:?}: {hint}")]
    UnsupportedScheme {
        /// The scheme (`redis`, `fdb`, …).
        scheme: String,
        /// How to get it (which cargo feature), or what is supported.
        hint: String,
    },
    /// `EIO`: the volume's storage settings cannot be served (unknown storage kind,
    /// unreadable bucket path).
    #[error("unsupported storage: {0}")]
    UnsupportedStorage(String),
    /// `EIO`: the VFS was closed; no further operations are accepted.
    #[error("the file system is closed")]
    Closed,
    /// `ENOENT`: the bucket holds no metadata backup of the volume (or not the one asked
    /// for).
    #[error("no metadata backup: {0}")]
    NoBackup(String),
    /// `EINVAL`: the backup found does not belong where it was found (another volume's
    /// name or UUID); nothing was restored.
    #[error("the backup does not match its bucket: {0}")]
    BackupMismatch(String),
    /// `ENOENT`: the volume's bucket holds no (complete) checkpoint of that name.
    #[error("no checkpoint {0:?} in the volume's bucket")]
    NoCheckpoint(String),
    /// A local I/O error (creating the storage directory, …); errno from the OS.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl VfsError {
    /// The errno this error maps to: the one table of the VFS.
    pub fn errno(&self) -> i32 {
        match self {
            VfsError::Meta(e) => e.errno(),
            // A full local disk says so; any other failure of the store is an I/O error.
            VfsError::Store(e) => e.space_errno().unwrap_or(libc::EIO),
            VfsError::WriteBack(cause) => cause.errno(),
            VfsError::BadHandle => libc::EBADF,
            VfsError::InvalidArgument(_)
            | VfsError::InvalidUrl { .. }
            | VfsError::BackupMismatch(_) => libc::EINVAL,
            VfsError::NoBackup(_) | VfsError::NoCheckpoint(_) => libc::ENOENT,
            VfsError::FileTooBig => libc::EFBIG,
            VfsError::ValueTooLarge => libc::E2BIG,
            VfsError::TooManyOpenFiles => libc::EMFILE,
            VfsError::NotSupported(_) => libc::ENOTSUP,
            VfsError::UnsupportedScheme { .. } => libc::EPROTONOSUPPORT,
            VfsError::UnsupportedStorage(_) | VfsError::Closed => libc::EIO,
            VfsError::Io(e) => e.raw_os_error().unwrap_or(libc::EIO),
        }
    }

    /// Whether repeating the same call may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            VfsError::Meta(e) => e.is_retryable(),
            VfsError::Store(e) => e.is_retryable(),
            _ => false,
        }
    }

    /// The metadata error inside, if this is one.
    pub fn as_meta(&self) -> Option<&MetaError> {
        match self {
            VfsError::Meta(e) => Some(e),
            VfsError::WriteBack(cause) => cause.as_meta(),
            _ => None,
        }
    }
}

impl From<StoreError> for VfsError {
    fn from(e: StoreError) -> VfsError {
        VfsError::Store(Arc::new(e))
    }
}

impl From<VfsError> for std::io::Error {
    fn from(e: VfsError) -> std::io::Error {
        match e {
            VfsError::Io(io) => io,
            VfsError::Meta(m) => m.into(),
            // The errno says everything about these; keep it readable as `raw_os_error`.
            VfsError::BadHandle
            | VfsError::FileTooBig
            | VfsError::ValueTooLarge
            | VfsError::TooManyOpenFiles => std::io::Error::from_raw_os_error(e.errno()),
            other => {
                let kind = std::io::Error::from_raw_os_error(other.errno()).kind();
                std::io::Error::new(kind, other)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_table() {
        assert_eq!(VfsError::from(MetaError::NotEmpty).errno(), libc::ENOTEMPTY);
        assert_eq!(
            VfsError::from(StoreError::Denied("x".into())).errno(),
            libc::EIO
        );
        assert_eq!(VfsError::BadHandle.errno(), libc::EBADF);
        assert_eq!(VfsError::FileTooBig.errno(), libc::EFBIG);
        assert_eq!(VfsError::ValueTooLarge.errno(), libc::E2BIG);
        let wb = VfsError::WriteBack(Arc::new(MetaError::QuotaExceeded.into()));
        assert_eq!(wb.errno(), libc::EDQUOT);
        assert!(matches!(wb.as_meta(), Some(MetaError::QuotaExceeded)));
    }

    #[test]
    fn converts_to_io_error_with_errno_kind() {
        let io: std::io::Error = VfsError::from(MetaError::NotFound).into();
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
        let io: std::io::Error = VfsError::BadHandle.into();
        assert_eq!(io.raw_os_error(), Some(libc::EBADF));
        let io: std::io::Error = VfsError::from(StoreError::Corrupt("short".into())).into();
        assert!(io.to_string().contains("short"));
        let io: std::io::Error =
            VfsError::Io(std::io::Error::from_raw_os_error(libc::ENOSPC)).into();
        assert_eq!(io.raw_os_error(), Some(libc::ENOSPC));
    }
}
