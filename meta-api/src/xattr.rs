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

/// What reading an extended attribute asks of the caller, as Linux's `xattr_permission`
/// decides it (the kernel does not check for a FUSE file system, so the library must).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadRule {
    /// Anyone may read it (`security.*`, `system.*` such as POSIX ACLs, and names
    /// outside Linux's namespaces, which only this library's own callers can ask for).
    Anyone,
    /// Read permission on the inode (`user.*` of a regular file or directory).
    NeedsRead,
    /// It does not exist for this caller (`ENODATA`): `trusted.*` for anyone but root,
    /// `user.*` of anything but a regular file or directory.
    Hidden,
}

/// The rule for reading xattr `name` of an inode of type `typ` (see [`ReadRule`]); `root`
/// is whether the caller is root (CAP_SYS_ADMIN, which `trusted.*` needs).
pub fn read_rule(name: &[u8], typ: crate::FileType, root: bool) -> ReadRule {
    if name.starts_with(b"trusted.") {
        return if root {
            ReadRule::Anyone
        } else {
            ReadRule::Hidden
        };
    }
    if name.starts_with(b"user.") {
        return match typ {
            crate::FileType::Regular | crate::FileType::Directory => ReadRule::NeedsRead,
            _ => ReadRule::Hidden,
        };
    }
    ReadRule::Anyone
}

/// Whether a listing of xattr names shows `name` to the caller: `trusted.*` only to root
/// (Linux lists the rest without checking permissions).
pub fn listed(name: &[u8], root: bool) -> bool {
    root || !name.starts_with(b"trusted.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_rules_are_linux_rules() {
        use crate::FileType::{Directory, Fifo, Regular, Symlink};
        assert_eq!(read_rule(b"user.a", Regular, false), ReadRule::NeedsRead);
        assert_eq!(read_rule(b"user.a", Directory, true), ReadRule::NeedsRead);
        assert_eq!(read_rule(b"user.a", Symlink, true), ReadRule::Hidden);
        assert_eq!(read_rule(b"user.a", Fifo, false), ReadRule::Hidden);
        assert_eq!(read_rule(b"trusted.a", Regular, false), ReadRule::Hidden);
        assert_eq!(read_rule(b"trusted.a", Regular, true), ReadRule::Anyone);
        assert_eq!(
            read_rule(b"system.posix_acl_access", Regular, false),
            ReadRule::Anyone
        );
        assert_eq!(
            read_rule(b"security.selinux", Fifo, false),
            ReadRule::Anyone
        );
        assert!(listed(b"user.a", false) && listed(b"trusted.a", true));
        assert!(!listed(b"trusted.a", false));
    }

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
