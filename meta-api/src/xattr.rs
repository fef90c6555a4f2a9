//! Extended attribute rules: names, values and `setxattr` flags, checked before an engine
//! is asked (the `system.posix_acl_*` names are the ACL code's: [`crate::acl`]).

use crate::acl::AclType;
use crate::{MetaError, Result, XattrFlags, MAX_XATTR_NAME_LEN, MAX_XATTR_VALUE_LEN};

/// An attribute name: not empty (`EINVAL`, as JuiceFS) and at most 255 bytes
/// (`ENAMETOOLONG`).
pub fn check_name(name: &[u8]) -> Result<()> {
    if name.is_empty() {
        return Err(MetaError::InvalidArgument("empty extended attribute name"));
    }
    if name.len() > MAX_XATTR_NAME_LEN {
        return Err(MetaError::NameTooLong);
    }
    Ok(())
}

/// The arguments of `setxattr`: the name, then — for anything but a POSIX ACL, whose value
/// the ACL code parses — a value of at most 64 KiB (`ERANGE`, as Linux says `E2BIG` only
/// at the syscall) and flags that are `XATTR_CREATE`, `XATTR_REPLACE` or neither.
pub fn check_set(name: &[u8], value: &[u8], flags: u32) -> Result<()> {
    check_name(name)?;
    if AclType::from_xattr_name(name).is_some() {
        return Ok(());
    }
    if value.len() > MAX_XATTR_VALUE_LEN {
        return Err(MetaError::Range);
    }
    let known = XattrFlags::CREATE | XattrFlags::REPLACE;
    if flags & !known != 0 || flags == known {
        return Err(MetaError::InvalidArgument("bad setxattr flags"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert!(matches!(
            check_name(b""),
            Err(MetaError::InvalidArgument(_))
        ));
        assert!(matches!(
            check_name(&[b'a'; 256]),
            Err(MetaError::NameTooLong)
        ));
        assert!(check_name(&[b'a'; 255]).is_ok());
        let big = vec![0u8; MAX_XATTR_VALUE_LEN + 1];
        assert!(matches!(
            check_set(b"user.a", &big, 0),
            Err(MetaError::Range)
        ));
        assert!(matches!(
            check_set(b"user.a", b"", 3),
            Err(MetaError::InvalidArgument(_))
        ));
        assert!(matches!(
            check_set(b"user.a", b"", 4),
            Err(MetaError::InvalidArgument(_))
        ));
        assert!(check_set(b"user.a", b"", XattrFlags::CREATE).is_ok());
        assert!(check_set(b"system.posix_acl_access", &big, 0).is_ok());
    }
}
