//! POSIX ACLs at the Vfs level: `access` and `opendir` honour a named-user entry that the
//! mode bits alone would deny.

use meta_api::{Context, Format, XattrFlags, ROOT_INO};
use vfs_core::VolumeBuilder;

/// The Linux `posix_acl_xattr` wire format (version 2, little-endian entries).
fn wire(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for &(tag, perm, id) in entries {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

#[tokio::test]
async fn named_user_acl_opens_a_private_directory() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite3://{}/meta.db", dir.path().display());
    let bucket = format!("{}/blocks/", dir.path().display());
    let mut format = Format::new("aclvol", "acl-uuid", "file", &bucket);
    format.enable_acl = true;
    VolumeBuilder::new(&url).format(format).await.unwrap();
    let vfs = VolumeBuilder::new(&url).open().await.unwrap();

    let root = Context::root();
    let private = vfs.mkdir(&root, ROOT_INO, b"private", 0o700).await.unwrap();
    const ANY: u32 = u32::MAX;
    let acl = wire(&[
        (0x01, 7, ANY),  // owner rwx
        (0x02, 5, 1000), // user 1000 r-x
        (0x04, 0, ANY),  // owning group ---
        (0x10, 5, ANY),  // mask r-x
        (0x20, 0, ANY),  // other ---
    ]);
    vfs.setxattr(
        &root,
        private.ino,
        b"system.posix_acl_access",
        &acl,
        XattrFlags::CREATE,
    )
    .await
    .unwrap();

    let alice = Context::new(1000, 1000);
    let bob = Context::new(1001, 1001);
    vfs.access(&alice, private.ino, libc::R_OK | libc::X_OK)
        .await
        .unwrap();
    let e = vfs
        .access(&alice, private.ino, libc::W_OK)
        .await
        .unwrap_err();
    assert_eq!(e.errno(), libc::EACCES);
    let dh = vfs.opendir(&alice, private.ino).await.unwrap();
    vfs.releasedir(&alice, dh).await.unwrap();
    let e = vfs.opendir(&bob, private.ino).await.unwrap_err();
    assert_eq!(e.errno(), libc::EACCES);
    vfs.close().await.unwrap();
}

/// Reading extended attributes checks what Linux checks (the kernel does not for FUSE):
/// `user.*` needs read permission, and an ACL grant counts; `trusted.*` exists only for
/// root, in reads and listings; ACLs themselves are readable by anyone.
#[tokio::test]
async fn xattr_reads_check_permissions_as_linux_does() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite3://{}/meta.db", dir.path().display());
    let bucket = format!("{}/blocks/", dir.path().display());
    let mut format = Format::new("xattrvol", "xattr-uuid", "file", &bucket);
    format.enable_acl = true;
    VolumeBuilder::new(&url).format(format).await.unwrap();
    let vfs = VolumeBuilder::new(&url).open().await.unwrap();
    let root = Context::root();
    let f = vfs
        .mknod(&root, ROOT_INO, b"secret", libc::S_IFREG | 0o600, 0)
        .await
        .unwrap()
        .ino;
    for (name, value) in [(&b"user.note"[..], &b"u"[..]), (b"trusted.t", b"t")] {
        vfs.setxattr(&root, f, name, value, 0).await.unwrap();
    }
    let alice = Context::new(1000, 1000);
    let bob = Context::new(1001, 1001);
    let e = vfs.getxattr(&bob, f, b"user.note").await.unwrap_err();
    assert_eq!(e.errno(), libc::EACCES);
    let e = vfs.getxattr(&bob, f, b"trusted.t").await.unwrap_err();
    assert_eq!(e.errno(), libc::ENODATA);
    assert_eq!(vfs.getxattr(&root, f, b"trusted.t").await.unwrap(), b"t");
    let listed = vfs.listxattr(&bob, f).await.unwrap();
    assert_eq!(listed, vec![b"user.note".to_vec()]);
    assert_eq!(vfs.listxattr(&root, f).await.unwrap().len(), 2);
    // An ACL granting alice read lets her read user.*; anyone reads the ACL itself.
    let acl = wire(&[
        (0x01, 6, u32::MAX),
        (0x02, 4, 1000),
        (0x04, 0, u32::MAX),
        (0x10, 4, u32::MAX),
        (0x20, 0, u32::MAX),
    ]);
    vfs.setxattr(&root, f, b"system.posix_acl_access", &acl, 0)
        .await
        .unwrap();
    assert_eq!(vfs.getxattr(&alice, f, b"user.note").await.unwrap(), b"u");
    assert!(vfs
        .getxattr(&bob, f, b"system.posix_acl_access")
        .await
        .is_ok());
    assert_eq!(
        vfs.getxattr(&bob, f, b"user.note")
            .await
            .unwrap_err()
            .errno(),
        libc::EACCES
    );
    vfs.close().await.unwrap();
}
