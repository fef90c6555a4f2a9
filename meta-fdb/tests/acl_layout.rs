//! POSIX ACLs in JuiceFS's TKV keys: `R{id}` (id big-endian `u32`, value
//! `acl.Rule.Encode()`), the counter `CaclMaxId`, and the two ACL ids at the end of an
//! inode's attributes. The rule value is what a juicefs 1.4.2 mount of an `--enable-acl`
//! volume stored for `user::rw-, user:1000:rw-, user:1001:r--, group::r--, group:50:r-x,
//! mask::rw-, other::r--` (the same bytes in its Redis and TKV engines).

#![allow(clippy::unwrap_used)]

#[path = "support/harness.rs"]
mod harness;

use harness::{format, session_info, PREFIX};
use meta_api::acl::{AclEntry, Rule, XATTR_ACCESS, XATTR_DEFAULT};
use meta_api::encoding::{decode_attr, encode_attr};
use meta_api::{Context, FileType, MetaEngine, ROOT_INO};
use meta_fdb::{KvTxn, MemKv, TkvMeta};

const JUICEFS_RULE: [u8; 34] = [
    0, 6, 0, 4, 0, 6, 0, 4, 0, 0, 0, 2, 0, 0, 3, 0xe8, 0, 6, 0, 0, 3, 0xe9, 0, 4, 0, 0, 0, 1, 0, 0,
    0, 0x32, 0, 5,
];

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

fn acl_key(id: u32) -> Vec<u8> {
    [PREFIX, b"R", &id.to_be_bytes()].concat()
}

fn counter_key() -> Vec<u8> {
    [PREFIX, b"CaclMaxId"].concat()
}

fn inode_key(ino: u64) -> Vec<u8> {
    [PREFIX, b"A", &ino.to_le_bytes(), b"I"].concat()
}

fn get(kv: &MemKv, key: &[u8]) -> Option<Vec<u8>> {
    kv.entries()
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// A client of a new ACL-enabled volume in `kv`.
async fn client(kv: &MemKv) -> TkvMeta<MemKv> {
    let mut f = format("acl");
    f.enable_acl = true;
    TkvMeta::new(kv.clone(), PREFIX)
        .init(&f, false)
        .await
        .unwrap();
    let a = TkvMeta::new(kv.clone(), PREFIX);
    a.new_session(&session_info()).await.unwrap();
    a
}

#[tokio::test]
async fn acls_are_stored_as_juicefs_stores_them() {
    let kv = MemKv::new();
    let a = client(&kv).await;
    let ctx = Context::root();
    let f = a
        .mknod(&ctx, ROOT_INO, b"f", FileType::Regular, 0o644, 0)
        .await
        .unwrap()
        .ino;
    a.setxattr(&ctx, f, XATTR_ACCESS, &rule().to_xattr(), 0)
        .await
        .unwrap();
    assert_eq!(get(&kv, &acl_key(1)).unwrap(), JUICEFS_RULE);
    assert_eq!(get(&kv, &counter_key()).unwrap(), 1i64.to_le_bytes());
    let attr = get(&kv, &inode_key(f)).unwrap();
    assert_eq!(attr.len(), meta_api::encoding::ATTR_BYTES_ACL);
    let attr = decode_attr(&attr).unwrap();
    assert_eq!(
        (attr.mode, attr.access_acl, attr.default_acl),
        (0o664, 1, 0)
    );

    let d = a.mkdir(&ctx, ROOT_INO, b"d", 0o755).await.unwrap().ino;
    a.setxattr(&ctx, d, XATTR_DEFAULT, &rule().to_xattr(), 0)
        .await
        .unwrap();
    let sub = a.mkdir(&ctx, d, b"sub", 0o777).await.unwrap();
    assert_eq!(
        (sub.attr.access_acl, sub.attr.default_acl),
        (1, 1),
        "one rule, one id"
    );
    // A file created with 0600 gets a narrower rule under the next id.
    let g = a
        .mknod(&ctx, d, b"g", FileType::Regular, 0o600, 0)
        .await
        .unwrap();
    assert_eq!(g.attr.access_acl, 2);
    assert_eq!(
        Rule::decode(&get(&kv, &acl_key(2)).unwrap()).unwrap(),
        rule().child_access(0o600)
    );
    assert_eq!(get(&kv, &counter_key()).unwrap(), 2i64.to_le_bytes());
}

#[tokio::test]
async fn acls_juicefs_wrote_are_read_and_shared() {
    let kv = MemKv::new();
    let a = client(&kv).await;
    let ctx = Context::root();
    let f = a
        .mknod(&ctx, ROOT_INO, b"f", FileType::Regular, 0o600, 0)
        .await
        .unwrap()
        .ino;
    let g = a
        .mknod(&ctx, ROOT_INO, b"g", FileType::Regular, 0o600, 0)
        .await
        .unwrap()
        .ino;
    // What a juicefs client writes: the counter, the rule, the inode with its id.
    let mut attr = a.getattr(f).await.unwrap();
    attr.mode = 0o664;
    attr.access_acl = 1;
    let tx = kv.begin();
    tx.set(&counter_key(), &1i64.to_le_bytes());
    tx.set(&acl_key(1), &JUICEFS_RULE);
    tx.set(&inode_key(f), &encode_attr(&attr));
    tx.commit().unwrap();

    let b = TkvMeta::new(kv.clone(), PREFIX);
    b.new_session(&session_info()).await.unwrap();
    assert_eq!(
        b.getxattr(f, XATTR_ACCESS).await.unwrap(),
        rule().to_xattr()
    );
    b.open(&Context::new(1000, 1000), f, libc::O_RDWR)
        .await
        .unwrap();
    b.close(f).await.unwrap();
    assert!(b
        .open(&Context::new(1001, 1001), f, libc::O_WRONLY)
        .await
        .is_err());
    b.setxattr(&ctx, g, XATTR_ACCESS, &rule().to_xattr(), 0)
        .await
        .unwrap();
    assert_eq!(b.getattr(g).await.unwrap().access_acl, 1);
    assert_eq!(get(&kv, &counter_key()).unwrap(), 1i64.to_le_bytes());
}
