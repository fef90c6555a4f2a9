//! Validation of directory-entry names and symlink targets.

use crate::{MetaError, Result, MAX_NAME_LEN, MAX_SYMLINK_LEN};

/// The name JuiceFS reserves in the root directory for the trash.
pub const TRASH_NAME: &[u8] = b".trash";

/// Checks a name for a new or looked-up directory entry: not empty, not `.`/`..`, no `/`
/// or NUL (`EINVAL`), at most 255 bytes (`ENAMETOOLONG`).
pub fn validate_name(name: &[u8]) -> Result<()> {
    if name.is_empty() {
        return Err(MetaError::InvalidArgument("empty name"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(MetaError::NameTooLong);
    }
    if name == b"." || name == b".." {
        return Err(MetaError::InvalidArgument("name is . or .."));
    }
    if name.iter().any(|&b| b == b'/' || b == 0) {
        return Err(MetaError::InvalidArgument("name contains '/' or NUL"));
    }
    Ok(())
}

/// Checks a name read from an engine as an entry of directory `dir`: a name no client
/// can create ([`validate_name`] refuses it: empty, `.`, `..`, a `/` or NUL, over 255
/// bytes) is `Corrupt`, so that no caller joins it to a path — `x/../../etc` read from a
/// hostile volume never reaches a local file system.
pub fn check_stored_name(dir: crate::Ino, name: &[u8]) -> Result<()> {
    validate_name(name).map_err(|_| {
        MetaError::Corrupt(format!(
            "directory {dir} holds an entry named {:?}, which no client can create",
            String::from_utf8_lossy(&name[..name.len().min(300)])
        ))
    })
}

/// Checks a symlink target: not empty (`ENOENT` as Linux does), no NUL (`EINVAL`),
/// at most 4096 bytes (`ENAMETOOLONG`).
pub fn validate_symlink_target(target: &[u8]) -> Result<()> {
    if target.is_empty() {
        return Err(MetaError::NotFound);
    }
    if target.len() > MAX_SYMLINK_LEN {
        return Err(MetaError::NameTooLong);
    }
    if target.contains(&0) {
        return Err(MetaError::InvalidArgument("symlink target contains NUL"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name(b"a").is_ok());
        assert!(
            validate_name(&[0xff, 0xfe]).is_ok(),
            "names are bytes, not UTF-8"
        );
        assert!(validate_name(&[b'x'; 255]).is_ok());
        assert!(matches!(
            validate_name(&[b'x'; 256]),
            Err(MetaError::NameTooLong)
        ));
        assert!(matches!(
            validate_name(b"a/b"),
            Err(MetaError::InvalidArgument(_))
        ));
        assert!(matches!(
            validate_name(b"a\0b"),
            Err(MetaError::InvalidArgument(_))
        ));
        assert!(matches!(
            validate_name(b".."),
            Err(MetaError::InvalidArgument(_))
        ));
        assert!(matches!(
            validate_name(b""),
            Err(MetaError::InvalidArgument(_))
        ));
        assert!(validate_symlink_target(&[b'a'; 4096]).is_ok());
        assert!(matches!(
            validate_symlink_target(&[b'a'; 4097]),
            Err(MetaError::NameTooLong)
        ));
    }
}
