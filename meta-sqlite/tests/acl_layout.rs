//! POSIX ACLs in `jfs_acl` and `jfs_node.access_acl_id`/`default_acl_id`, row by row as
//! JuiceFS 1.4 stores them. The JuiceFS rows and attribute bytes below were captured from a
//! `juicefs mount` (1.4.2) of a volume formatted with `--enable-acl`, after a process set
//! `user::rw-, user:1000:rw-, user:1001:r--, group::r--, group:50:r-x, mask::rw-, other::r--`
//! on a file through `setxattr("system.posix_acl_access")`.

#![allow(clippy::unwrap_used)] // Helpers of tests: a failure is the test's failure.

#[path = "support/volume.rs"]
mod support;

use meta_api::acl::{AclEntry, Rule, XATTR_ACCESS, XATTR_DEFAULT};
use meta_api::{Context, FileType, MetaEngine, ROOT_INO};
use rusqlite::Connection;
use support::{test_format, Volume};

/// The `jfs_acl` row JuiceFS wrote: owner, group, mask, other, named users, named groups.
const JUICEFS_ROW: (i64, i64, i64, i64, &[u8], &[u8]) = (
    6,
    4,
    6,
    4,
    &[0, 0, 3, 0xe8, 0, 6, 0, 0, 3, 0xe9, 0, 4],
    &[0, 0, 0, 0x32, 0, 5],
);

/// What `getxattr("system.posix_acl_access")` returned on the juicefs mount.
const JUICEFS_XATTR: &str = "0200000001000600ffffffff02000600e803000002000400e903000004000400\
     ffffffff080005003200000010000600ffffffff20000400ffffffff";

fn rule() -> Rule {
    Rule {
        owner: 6,
        group: 4,
        mask: 6,
        other: 4,
        named_users: vec![
            AclEntry { id: 1000, perm: 6 },
            AclEntry { id: 1001, perm: 4 },
        ],
        named_groups: vec![AclEntry { id: 50, perm: 5 }],
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Every `jfs_acl` row, by id.
type AclRow = (i64, i64, i64, i64, i64, Vec<u8>, Vec<u8>);

fn acl_rows(raw: &Connection) -> Vec<AclRow> {
    raw.prepare(
        "SELECT id, owner, `group`, mask, other, named_users, named_groups FROM jfs_acl \
         ORDER BY id",
    )
    .unwrap()
    .query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
        ))
    })
    .unwrap()
    .collect::<rusqlite::Result<_>>()
    .unwrap()
}

fn node_acl(raw: &Connection, ino: u64) -> (i64, i64, i64) {
    raw.query_row(
        "SELECT mode, access_acl_id, default_acl_id FROM jfs_node WHERE inode = ?",
        rusqlite::params![ino as i64],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .unwrap()
}

fn acl_format() -> meta_api::Format {
    let mut f = test_format();
    f.enable_acl = true;
    f
}

#[tokio::test]
async fn acls_are_stored_as_juicefs_stores_them() {
    let v = Volume::formatted(&acl_format()).await;
    let a = v.client().await;
    let ctx = Context::root();
    let f = a
        .mknod(&ctx, ROOT_INO, b"f", FileType::Regular, 0o644, 0)
        .await
        .unwrap()
        .ino;
    a.setxattr(&ctx, f, XATTR_ACCESS, &rule().to_xattr(), 0)
        .await
        .unwrap();
    assert_eq!(
        hex(&a.getxattr(f, XATTR_ACCESS).await.unwrap()),
        JUICEFS_XATTR
    );
    let raw = v.raw();
    let (o, g, m, ot, u, gr) = JUICEFS_ROW;
    assert_eq!(
        acl_rows(&raw),
        vec![(1, o, g, m, ot, u.to_vec(), gr.to_vec())]
    );
    assert_eq!(node_acl(&raw, f), (0o664, 1, 0));

    // A default ACL without named entries stores empty lists, as JuiceFS does.
    let d = a.mkdir(&ctx, ROOT_INO, b"d", 0o755).await.unwrap().ino;
    let plain = Rule {
        owner: 7,
        group: 5,
        mask: 7,
        other: 5,
        named_users: vec![],
        named_groups: vec![],
    };
    a.setxattr(&ctx, d, XATTR_DEFAULT, &plain.to_xattr(), 0)
        .await
        .unwrap();
    let rows = acl_rows(&raw);
    assert_eq!(rows[1], (2, 7, 5, 7, 5, vec![], vec![]));
    assert_eq!(node_acl(&raw, d), (0o755, 0, 2));
    // A new directory inside takes it as both ACLs; the same rule is one row.
    let sub = a.mkdir(&ctx, d, b"sub", 0o777).await.unwrap().ino;
    assert_eq!(node_acl(&raw, sub), (0o775, 2, 2));
    assert_eq!(acl_rows(&raw).len(), 2);
    // chmod stores the changed rule under a new id and leaves the old row alone.
    a.setattr(&ctx, f, &meta_api::SetAttr::new().mode(0o640))
        .await
        .unwrap();
    let rows = acl_rows(&raw);
    assert_eq!(rows.len(), 3);
    assert_eq!(
        (rows[2].1, rows[2].2, rows[2].3, rows[2].4),
        (6, 4, 4, 0),
        "mask and other follow the mode"
    );
    assert_eq!(node_acl(&raw, f), (0o640, 3, 0));
}

#[tokio::test]
async fn acls_juicefs_wrote_are_read_and_shared() {
    let v = Volume::formatted(&acl_format()).await;
    let a = v.client().await;
    let ctx = Context::root();
    let f = a
        .mknod(&ctx, ROOT_INO, b"f", FileType::Regular, 0o600, 0)
        .await
        .unwrap()
        .ino;
    let g = a
        .mknod(&ctx, ROOT_INO, b"g", FileType::Regular, 0o644, 0)
        .await
        .unwrap()
        .ino;
    // The rows a juicefs client writes: the rule, then the inode pointing at it.
    let raw = v.raw();
    let (o, gr, m, ot, u, ng) = JUICEFS_ROW;
    raw.execute(
        "INSERT INTO jfs_acl (owner, `group`, mask, other, named_users, named_groups) \
         VALUES (?, ?, ?, ?, ?, ?)",
        rusqlite::params![o, gr, m, ot, u, ng],
    )
    .unwrap();
    raw.execute(
        "UPDATE jfs_node SET mode = 436, access_acl_id = 1 WHERE inode = ?",
        rusqlite::params![f as i64],
    )
    .unwrap();
    let b = v.client().await;
    assert_eq!(
        hex(&b.getxattr(f, XATTR_ACCESS).await.unwrap()),
        JUICEFS_XATTR
    );
    assert_eq!(b.listxattr(f).await.unwrap(), vec![XATTR_ACCESS.to_vec()]);
    // The named user may read and write; user 1001 only read; anyone else only read.
    let named = Context::new(1000, 1000);
    b.open(&named, f, libc::O_RDWR).await.unwrap();
    b.close(f).await.unwrap();
    assert!(b
        .open(&Context::new(1001, 1001), f, libc::O_WRONLY)
        .await
        .is_err());
    // Setting the same rule elsewhere reuses JuiceFS's row.
    b.setxattr(&ctx, g, XATTR_ACCESS, &rule().to_xattr(), 0)
        .await
        .unwrap();
    assert_eq!(node_acl(&raw, g), (0o664, 1, 0));
    assert_eq!(acl_rows(&raw).len(), 1);
}
