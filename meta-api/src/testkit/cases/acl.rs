//! POSIX ACLs: the two `system.posix_acl_*` attributes in the Linux wire format, access
//! checks with named entries and the mask, `chmod`, inheritance of default ACLs, and
//! volumes without `EnableACL`.

use std::sync::Arc;

use super::{
    assert_err, dir, file, look, owned_dir, owned_file, root, user, Fixture, ALICE, BOB, CAROL,
};
use crate::acl::{AclEntry, Rule, UNSET, XATTR_ACCESS, XATTR_DEFAULT};
use crate::{access, Context, FileType, MetaEngine, MetaError, Result, SetAttr, ROOT_INO};

/// Turns `EnableACL` on for the fixture's volume (`juicefs config --enable-acl` does the
/// same: a forced format with the flag set) and returns a new client that sees it.
async fn acl_client(fx: &Fixture<'_>) -> Result<Arc<dyn MetaEngine>> {
    let mut f = fx.a.load().await?;
    f.enable_acl = true;
    fx.a.init(&f, true).await?;
    let c = fx.client().await?;
    assert!(c.load().await?.enable_acl, "EnableACL did not stick");
    Ok(c)
}

fn entry(id: u32, perm: u16) -> AclEntry {
    AclEntry { id, perm }
}

/// `user::OWNER, user:ID:PERM…, group::GROUP, mask::MASK, other::OTHER`.
fn rule(owner: u16, users: &[(u32, u16)], group: u16, mask: u16, other: u16) -> Rule {
    Rule {
        owner,
        group,
        mask,
        other,
        named_users: users.iter().map(|&(i, p)| entry(i, p)).collect(),
        named_groups: Vec::new(),
    }
}

/// Sets the access ACL of `ino` as root.
async fn set_access(e: &dyn MetaEngine, ino: u64, r: &Rule) -> Result<()> {
    e.setxattr(&root(), ino, XATTR_ACCESS, &r.to_xattr(), 0)
        .await
}

/// The access ACL of `ino`, parsed.
async fn get_access(e: &dyn MetaEngine, ino: u64) -> Result<Rule> {
    Rule::from_xattr(&e.getxattr(ino, XATTR_ACCESS).await?)
}

/// Whether `ctx` may open `ino` with `flags` (closing it again).
async fn can_open(e: &dyn MetaEngine, ctx: &Context, ino: u64, flags: i32) -> Result<bool> {
    match e.open(ctx, ino, flags).await {
        Ok(_) => {
            e.close(ino).await?;
            Ok(true)
        }
        Err(MetaError::PermissionDenied) => Ok(false),
        Err(other) => Err(other),
    }
}

pub(super) async fn off_by_default_is_not_supported(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    assert!(!e.load().await?.enable_acl);
    let f = file(e, ROOT_INO, "f").await?;
    let wire = rule(6, &[(BOB, 6)], 4, 6, 4).to_xattr();
    for name in [XATTR_ACCESS, XATTR_DEFAULT] {
        assert_err!(
            e.setxattr(&root(), f, name, &wire, 0).await,
            MetaError::NotSupported(_)
        );
        assert_err!(
            e.removexattr(&root(), f, name).await,
            MetaError::NotSupported(_)
        );
        assert_err!(e.getxattr(f, name).await, MetaError::NoAttr);
    }
    assert!(e.listxattr(f).await?.is_empty());
    assert_eq!(e.getattr(f).await?.mode, 0o644, "nothing changed");
    Ok(())
}

pub(super) async fn access_acl_round_trip(fx: &Fixture<'_>) -> Result<()> {
    let e = acl_client(fx).await?;
    let e = &*e;
    let f = owned_file(e, ROOT_INO, "f", ALICE, 0o644).await?;
    let before = e.getattr(f).await?;
    let mut r = rule(6, &[(BOB, 6), (CAROL, 4)], 4, 6, 4);
    r.named_groups = vec![entry(50, 5)];
    e.setxattr(&user(ALICE), f, XATTR_ACCESS, &r.to_xattr(), 0)
        .await?;
    assert_eq!(e.getxattr(f, XATTR_ACCESS).await?, r.to_xattr());
    let a = e.getattr(f).await?;
    assert_eq!(a.mode, 0o664, "owner, mask and other show as the mode");
    assert_ne!(a.access_acl, 0);
    assert_eq!(a.default_acl, 0);
    assert!(a.ctime >= before.ctime);
    assert_eq!(e.listxattr(f).await?, vec![XATTR_ACCESS.to_vec()]);
    assert_err!(e.getxattr(f, XATTR_DEFAULT).await, MetaError::NoAttr);
    // Another client reads the same ACL, and ordinary attributes live beside it.
    let other = fx.client().await?;
    assert_eq!(get_access(&*other, f).await?, r);
    e.setxattr(&root(), f, b"user.x", b"1", 0).await?;
    assert_eq!(
        other.listxattr(f).await?,
        vec![XATTR_ACCESS.to_vec(), b"user.x".to_vec()]
    );
    // Entries in any order are the same ACL.
    let wire = r.to_xattr();
    let mut reversed = wire[..4].to_vec();
    for en in wire[4..].chunks_exact(8).rev() {
        reversed.extend_from_slice(en);
    }
    e.setxattr(&root(), f, XATTR_ACCESS, &reversed, 0).await?;
    assert_eq!(get_access(e, f).await?, r);
    assert_eq!(e.getattr(f).await?.access_acl, a.access_acl);
    Ok(())
}

pub(super) async fn named_user_gets_what_mode_bits_deny(fx: &Fixture<'_>) -> Result<()> {
    let e = acl_client(fx).await?;
    let e = &*e;
    let f = owned_file(e, ROOT_INO, "f", ALICE, 0o600).await?;
    let (bob, carol) = (user(BOB), user(CAROL));
    assert!(!can_open(e, &bob, f, libc::O_RDONLY).await?);
    set_access(e, f, &rule(6, &[(BOB, 4)], 0, 4, 0)).await?;
    assert_eq!(e.getattr(f).await?.mode, 0o640);
    assert!(can_open(e, &bob, f, libc::O_RDONLY).await?);
    assert!(!can_open(e, &bob, f, libc::O_WRONLY).await?);
    assert!(!can_open(e, &carol, f, libc::O_RDONLY).await?);
    assert!(can_open(e, &user(ALICE), f, libc::O_RDWR).await?);
    // access(2) answers the same.
    assert_eq!(
        e.check_access(&bob, f, access::R).await?.access_acl,
        e.getattr(f).await?.access_acl
    );
    assert_err!(
        e.check_access(&bob, f, access::W).await,
        MetaError::PermissionDenied
    );
    assert_err!(
        e.check_access(&carol, f, access::R).await,
        MetaError::PermissionDenied
    );
    // A named user entry also opens a directory nobody else may search.
    let d = owned_dir(e, "d", ALICE, 0o700).await?;
    file(e, d, "inner").await?;
    assert_err!(
        e.lookup(&bob, d, b"inner").await,
        MetaError::PermissionDenied
    );
    set_access(e, d, &rule(7, &[(BOB, 5)], 0, 5, 0)).await?;
    e.lookup(&bob, d, b"inner").await?;
    assert_eq!(e.readdir(&bob, d, None, 10, false).await?.len(), 1);
    assert_err!(
        e.mknod(&bob, d, b"x", FileType::Regular, 0o644, 0).await,
        MetaError::PermissionDenied
    );
    assert_err!(
        e.lookup(&carol, d, b"inner").await,
        MetaError::PermissionDenied
    );
    // Write through the ACL lets a named user create and remove entries.
    set_access(e, d, &rule(7, &[(BOB, 7)], 0, 7, 0)).await?;
    e.mknod(&bob, d, b"x", FileType::Regular, 0o644, 0).await?;
    e.unlink(&bob, d, b"x").await?;
    Ok(())
}

pub(super) async fn group_entries_and_the_mask(fx: &Fixture<'_>) -> Result<()> {
    let e = acl_client(fx).await?;
    let e = &*e;
    let f = owned_file(e, ROOT_INO, "f", ALICE, 0o600).await?;
    // The mask r-- limits user:BOB:rw- and group:77:rw- to reading.
    let mut r = rule(6, &[(BOB, 6)], 6, 4, 6);
    r.named_groups = vec![entry(77, 6)];
    set_access(e, f, &r).await?;
    assert_eq!(e.getattr(f).await?.mode, 0o646);
    let bob = user(BOB);
    assert!(can_open(e, &bob, f, libc::O_RDONLY).await?);
    assert!(!can_open(e, &bob, f, libc::O_WRONLY).await?);
    let mut member = user(CAROL);
    member.gids = vec![77];
    assert!(can_open(e, &member, f, libc::O_RDONLY).await?);
    assert!(
        !can_open(e, &member, f, libc::O_WRONLY).await?,
        "a matching group entry decides, even though other allows writing"
    );
    let owning = Context::new(CAROL, ALICE);
    assert!(!can_open(e, &owning, f, libc::O_WRONLY).await?);
    assert!(
        can_open(e, &Context::new(1234, 1234), f, libc::O_WRONLY).await?,
        "other is not limited by the mask"
    );
    Ok(())
}

pub(super) async fn chmod_updates_the_mask(fx: &Fixture<'_>) -> Result<()> {
    let e = acl_client(fx).await?;
    let e = &*e;
    let f = owned_file(e, ROOT_INO, "f", ALICE, 0o600).await?;
    set_access(e, f, &rule(6, &[(BOB, 6)], 4, 6, 0)).await?;
    let bob = user(BOB);
    assert!(can_open(e, &bob, f, libc::O_RDWR).await?);
    let alice = user(ALICE);
    let a = e.setattr(&alice, f, &SetAttr::new().mode(0o640)).await?;
    assert_eq!(a.mode, 0o640);
    assert_eq!(e.getattr(f).await?, a);
    let r = get_access(e, f).await?;
    assert_eq!((r.owner, r.mask, r.other), (6, 4, 0));
    assert_eq!(r.named_users, vec![entry(BOB, 6)], "named entries stay");
    assert_eq!(r.group, 4);
    assert!(can_open(e, &bob, f, libc::O_RDONLY).await?);
    assert!(!can_open(e, &bob, f, libc::O_WRONLY).await?);
    e.setattr(&alice, f, &SetAttr::new().mode(0o670)).await?;
    let r = get_access(e, f).await?;
    assert_eq!((r.owner, r.mask, r.other), (6, 7, 0));
    assert!(can_open(e, &bob, f, libc::O_RDWR).await?);
    // A mask of zero leaves the named entries nothing, as Linux does.
    e.setattr(&alice, f, &SetAttr::new().mode(0o604)).await?;
    assert!(!can_open(e, &bob, f, libc::O_WRONLY).await?);
    Ok(())
}

pub(super) async fn minimal_acl_is_just_mode_bits(fx: &Fixture<'_>) -> Result<()> {
    let e = acl_client(fx).await?;
    let e = &*e;
    let f = owned_file(e, ROOT_INO, "f", ALICE, 0o644).await?;
    set_access(e, f, &rule(7, &[], 5, UNSET, 1)).await?;
    let a = e.getattr(f).await?;
    assert_eq!((a.mode, a.access_acl), (0o751, 0));
    assert_err!(e.getxattr(f, XATTR_ACCESS).await, MetaError::NoAttr);
    assert!(e.listxattr(f).await?.is_empty());
    // Over an extended ACL it removes the ACL.
    set_access(e, f, &rule(6, &[(BOB, 6)], 4, 6, 0)).await?;
    assert_ne!(e.getattr(f).await?.access_acl, 0);
    set_access(e, f, &rule(6, &[], 4, UNSET, 0)).await?;
    let a = e.getattr(f).await?;
    assert_eq!((a.mode, a.access_acl), (0o640, 0));
    assert!(!can_open(e, &user(BOB), f, libc::O_RDONLY).await?);
    Ok(())
}

pub(super) async fn default_acl_inherited_by_files(fx: &Fixture<'_>) -> Result<()> {
    let e = acl_client(fx).await?;
    let e = &*e;
    let d = owned_dir(e, "d", ALICE, 0o755).await?;
    let def = rule(7, &[(BOB, 7)], 5, 7, 5);
    e.setxattr(&user(ALICE), d, XATTR_DEFAULT, &def.to_xattr(), 0)
        .await?;
    let da = e.getattr(d).await?;
    assert_eq!((da.mode, da.access_acl), (0o755, 0), "the mode stays");
    assert_ne!(da.default_acl, 0);
    assert_eq!(Rule::from_xattr(&e.getxattr(d, XATTR_DEFAULT).await?)?, def);
    assert_eq!(e.listxattr(d).await?, vec![XATTR_DEFAULT.to_vec()]);

    let mut alice = user(ALICE);
    alice.umask = 0o077;
    let f = e
        .mknod(&alice, d, b"f", FileType::Regular, 0o666, 0)
        .await?;
    assert_eq!(
        f.attr.mode, 0o664,
        "the umask does not apply; the mode limits owner, mask and other"
    );
    assert_eq!(f.attr.default_acl, 0, "files get no default ACL");
    assert_eq!(get_access(e, f.ino).await?, def.child_access(0o666));
    assert_eq!(e.getattr(f.ino).await?, f.attr);
    assert!(can_open(e, &user(BOB), f.ino, libc::O_RDWR).await?);
    assert!(!can_open(e, &user(CAROL), f.ino, libc::O_WRONLY).await?);
    // A symlink inherits nothing.
    let l = e.symlink(&alice, d, b"l", b"f").await?;
    assert_eq!(
        (l.attr.mode, l.attr.access_acl, l.attr.default_acl),
        (0o777, 0, 0)
    );
    // A minimal default ACL only limits the mode bits.
    let d2 = owned_dir(e, "d2", ALICE, 0o777).await?;
    let plain = rule(7, &[], 5, UNSET, 0);
    e.setxattr(&root(), d2, XATTR_DEFAULT, &plain.to_xattr(), 0)
        .await?;
    let g = e
        .mknod(&alice, d2, b"g", FileType::Regular, 0o666, 0)
        .await?;
    assert_eq!((g.attr.mode, g.attr.access_acl), (0o640, 0));
    Ok(())
}

pub(super) async fn default_acl_inherited_by_directories(fx: &Fixture<'_>) -> Result<()> {
    let e = acl_client(fx).await?;
    let e = &*e;
    let d = owned_dir(e, "d", ALICE, 0o755).await?;
    let def = rule(7, &[(BOB, 5)], 5, 7, 5);
    e.setxattr(&root(), d, XATTR_DEFAULT, &def.to_xattr(), 0)
        .await?;
    let mut alice = user(ALICE);
    alice.umask = 0o077;
    let sub = e.mkdir(&alice, d, b"sub", 0o777).await?;
    assert_eq!(sub.attr.mode, 0o775);
    assert_eq!(sub.attr.default_acl, e.getattr(d).await?.default_acl);
    assert_eq!(get_access(e, sub.ino).await?, def);
    assert_eq!(
        Rule::from_xattr(&e.getxattr(sub.ino, XATTR_DEFAULT).await?)?,
        def
    );
    assert_eq!(
        e.listxattr(sub.ino).await?,
        vec![XATTR_ACCESS.to_vec(), XATTR_DEFAULT.to_vec()]
    );
    // It passes on further down, limited by each requested mode.
    let deeper = e.mkdir(&alice, sub.ino, b"deeper", 0o750).await?;
    assert_eq!(deeper.attr.mode, 0o750);
    assert_eq!(get_access(e, deeper.ino).await?, def.child_access(0o750));
    let f = e
        .mknod(&alice, deeper.ino, b"f", FileType::Regular, 0o600, 0)
        .await?;
    assert_eq!(f.attr.mode, 0o600);
    let fr = get_access(e, f.ino).await?;
    assert_eq!((fr.owner, fr.mask, fr.other), (6, 0, 0));
    // The named user can search down to the file (but not read it: its mask is 0).
    let bob = user(BOB);
    assert_eq!(look(e, d, "sub").await?.ino, sub.ino);
    e.lookup(&bob, sub.ino, b"deeper").await?;
    e.lookup(&bob, deeper.ino, b"f").await?;
    assert!(!can_open(e, &bob, f.ino, libc::O_RDONLY).await?);
    Ok(())
}

pub(super) async fn remove_acl_xattrs(fx: &Fixture<'_>) -> Result<()> {
    let e = acl_client(fx).await?;
    let e = &*e;
    let d = owned_dir(e, "d", ALICE, 0o750).await?;
    let r = rule(7, &[(BOB, 5)], 5, 5, 0);
    set_access(e, d, &r).await?;
    e.setxattr(&root(), d, XATTR_DEFAULT, &r.to_xattr(), 0)
        .await?;
    e.lookup(&user(BOB), d, b"nothing")
        .await
        .map(|_| ())
        .or_else(|e| match e {
            MetaError::NotFound => Ok(()),
            other => Err(other),
        })?;
    e.removexattr(&user(ALICE), d, XATTR_ACCESS).await?;
    let a = e.getattr(d).await?;
    assert_eq!((a.mode, a.access_acl), (0o750, 0), "the mode bits stay");
    assert_ne!(a.default_acl, 0);
    assert_err!(e.getxattr(d, XATTR_ACCESS).await, MetaError::NoAttr);
    assert_eq!(e.listxattr(d).await?, vec![XATTR_DEFAULT.to_vec()]);
    assert_err!(
        e.lookup(&user(BOB), d, b"nothing").await,
        MetaError::PermissionDenied
    );
    e.removexattr(&root(), d, XATTR_DEFAULT).await?;
    assert_eq!(e.getattr(d).await?.default_acl, 0);
    assert!(e.listxattr(d).await?.is_empty());
    let f = e
        .mknod(&root(), d, b"f", FileType::Regular, 0o644, 0)
        .await?;
    assert_eq!(f.attr.access_acl, 0, "nothing is inherited any more");
    // Removing what is not there succeeds, as Linux's removal of an ACL does.
    e.removexattr(&root(), d, XATTR_ACCESS).await?;
    e.removexattr(&root(), f.ino, XATTR_DEFAULT).await?;
    // An ACL with no entries removes it too.
    set_access(e, d, &r).await?;
    e.setxattr(&root(), d, XATTR_ACCESS, &2u32.to_le_bytes(), 0)
        .await?;
    assert_eq!(e.getattr(d).await?.access_acl, 0);
    Ok(())
}

pub(super) async fn invalid_wire_data_is_invalid_argument(fx: &Fixture<'_>) -> Result<()> {
    let e = acl_client(fx).await?;
    let e = &*e;
    let f = owned_file(e, ROOT_INO, "f", ALICE, 0o644).await?;
    let good = rule(6, &[(BOB, 6)], 4, 6, 4).to_xattr();
    let mut wrong_version = good.clone();
    wrong_version[0] = 1;
    let no_mask = rule(6, &[(BOB, 6)], 4, UNSET, 4).to_xattr();
    let mut bad_perm = good.clone();
    bad_perm[6] = 8; // the owner entry's permissions
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("truncated", good[..good.len() - 3].to_vec()),
        ("wrong version", wrong_version),
        ("named entry without mask", no_mask),
        ("permissions beyond rwx", bad_perm),
        ("no other entry", good[..good.len() - 8].to_vec()),
    ];
    for (what, value) in cases {
        for name in [XATTR_ACCESS, XATTR_DEFAULT] {
            let res = e.setxattr(&root(), f, name, &value, 0).await;
            assert!(
                matches!(res, Err(MetaError::InvalidArgument(_))),
                "{what}: expected InvalidArgument, got {res:?}"
            );
        }
    }
    let a = e.getattr(f).await?;
    assert_eq!((a.mode, a.access_acl, a.default_acl), (0o644, 0, 0));
    assert!(e.listxattr(f).await?.is_empty());
    Ok(())
}

pub(super) async fn only_the_owner_sets_acls(fx: &Fixture<'_>) -> Result<()> {
    let e = acl_client(fx).await?;
    let e = &*e;
    let f = owned_file(e, ROOT_INO, "f", ALICE, 0o666).await?;
    let wire = rule(6, &[(BOB, 6)], 4, 6, 4).to_xattr();
    assert_err!(
        e.setxattr(&user(BOB), f, XATTR_ACCESS, &wire, 0).await,
        MetaError::NotPermitted
    );
    assert_err!(
        e.removexattr(&user(BOB), f, XATTR_ACCESS).await,
        MetaError::NotPermitted
    );
    assert_err!(
        e.setxattr(&root(), f, XATTR_DEFAULT, &wire, 0).await,
        MetaError::PermissionDenied
    );
    assert_err!(
        e.setxattr(&root(), 999_999, XATTR_ACCESS, &wire, 0).await,
        MetaError::NotFound
    );
    assert_err!(e.getxattr(999_999, XATTR_ACCESS).await, MetaError::NotFound);
    let a = e.getattr(f).await?;
    assert_eq!((a.mode, a.access_acl), (0o666, 0));
    // The owner may, even without write permission.
    e.setattr(&user(ALICE), f, &SetAttr::new().mode(0o444))
        .await?;
    e.setxattr(&user(ALICE), f, XATTR_ACCESS, &wire, 0).await?;
    assert_ne!(e.getattr(f).await?.access_acl, 0);
    Ok(())
}

pub(super) async fn equal_acls_share_one_id(fx: &Fixture<'_>) -> Result<()> {
    let e = acl_client(fx).await?;
    let other = fx.client().await?;
    let r = rule(6, &[(BOB, 6)], 4, 6, 4);
    let f = file(&*e, ROOT_INO, "f").await?;
    let g = file(&*e, ROOT_INO, "g").await?;
    let h = file(&*e, ROOT_INO, "h").await?;
    set_access(&*e, f, &r).await?;
    set_access(&*e, g, &r).await?;
    set_access(&*other, h, &r).await?;
    let id = e.getattr(f).await?.access_acl;
    assert_ne!(id, 0);
    assert_eq!(e.getattr(g).await?.access_acl, id);
    assert_eq!(other.getattr(h).await?.access_acl, id);
    let s = rule(6, &[(CAROL, 6)], 4, 6, 4);
    set_access(&*other, g, &s).await?;
    let id2 = e.getattr(g).await?.access_acl;
    assert_ne!(id2, id);
    // The first client finds the rule the second one stored.
    set_access(&*e, h, &s).await?;
    assert_eq!(e.getattr(h).await?.access_acl, id2);
    // A default ACL equal to an access ACL shares its id too.
    let d = dir(&*e, ROOT_INO, "d").await?;
    e.setxattr(&root(), d, XATTR_DEFAULT, &r.to_xattr(), 0)
        .await?;
    assert_eq!(e.getattr(d).await?.default_acl, id);
    Ok(())
}
