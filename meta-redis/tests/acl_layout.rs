//! POSIX ACLs in JuiceFS's Redis keys (`acl` hash, `aclMaxId` counter, the ACL ids at the
//! end of `i{ino}`), as juicefs 1.4.2 writes them: the rule value below was captured from a
//! `juicefs mount` of a Redis volume formatted with `--enable-acl`, after a process set
//! `user::rw-, user:1000:rw-, user:1001:r--, group::r--, group:50:r-x, mask::rw-, other::r--`
//! on a file through `setxattr("system.posix_acl_access")`.

#![allow(clippy::unwrap_used)]

#[path = "support/harness.rs"]
mod harness;

use meta_api::acl::{AclEntry, Rule, XATTR_ACCESS, XATTR_DEFAULT};
use meta_api::encoding::{decode_attr, encode_attr};
use meta_api::{Context, FileType, MetaEngine, ROOT_INO};
use meta_redis::{RedisMeta, RedisOptions};
use redis::AsyncCommands;

/// The `acl` hash value the juicefs mount stored under id 1.
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

async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// A new client of a new ACL-enabled volume under `prefix`.
async fn volume(url: &str, prefix: &str) -> RedisMeta {
    let m = RedisMeta::open_with(url, RedisOptions::default().key_prefix(prefix))
        .await
        .unwrap();
    let mut f = harness::format(prefix);
    f.enable_acl = true;
    m.init(&f, false).await.unwrap();
    m.new_session(&harness::session_info()).await.unwrap();
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_are_stored_as_juicefs_stores_them() {
    let Some(url) = harness::redis_url("acls_are_stored_as_juicefs_stores_them") else {
        return;
    };
    let p = harness::unique_prefix("acl");
    let a = volume(&url, &p).await;
    let mut r = raw(&url).await;
    let ctx = Context::root();
    let f = a
        .mknod(&ctx, ROOT_INO, b"f", FileType::Regular, 0o644, 0)
        .await
        .unwrap()
        .ino;
    a.setxattr(&ctx, f, XATTR_ACCESS, &rule().to_xattr(), 0)
        .await
        .unwrap();
    let stored: Vec<u8> = r.hget(format!("{p}acl"), "1").await.unwrap();
    assert_eq!(stored, JUICEFS_RULE);
    let max: i64 = r.get(format!("{p}aclMaxId")).await.unwrap();
    assert_eq!(max, 1);
    let attr: Vec<u8> = r.get(format!("{p}i{f}")).await.unwrap();
    assert_eq!(attr.len(), meta_api::encoding::ATTR_BYTES_ACL);
    let attr = decode_attr(&attr).unwrap();
    assert_eq!(
        (attr.mode, attr.access_acl, attr.default_acl),
        (0o664, 1, 0)
    );

    // A directory's default ACL and a new directory inside share the id of one rule.
    let d = a.mkdir(&ctx, ROOT_INO, b"d", 0o755).await.unwrap().ino;
    let def = Rule {
        named_users: vec![AclEntry { id: 1000, perm: 7 }],
        named_groups: vec![],
        owner: 7,
        group: 5,
        mask: 7,
        other: 5,
    };
    a.setxattr(&ctx, d, XATTR_DEFAULT, &def.to_xattr(), 0)
        .await
        .unwrap();
    let sub = a.mkdir(&ctx, d, b"sub", 0o777).await.unwrap();
    assert_eq!((sub.attr.access_acl, sub.attr.default_acl), (2, 2));
    let max: i64 = r.get(format!("{p}aclMaxId")).await.unwrap();
    assert_eq!(max, 2);
    let n: i64 = r.hlen(format!("{p}acl")).await.unwrap();
    assert_eq!(n, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_juicefs_wrote_are_read_and_shared() {
    let Some(url) = harness::redis_url("acls_juicefs_wrote_are_read_and_shared") else {
        return;
    };
    let p = harness::unique_prefix("aclj");
    let a = volume(&url, &p).await;
    let ctx = Context::root();
    let mk = |name: &'static [u8]| {
        let a = &a;
        let ctx = &ctx;
        async move {
            a.mknod(ctx, ROOT_INO, name, FileType::Regular, 0o600, 0)
                .await
                .unwrap()
                .ino
        }
    };
    let (f, g) = (mk(b"f").await, mk(b"g").await);
    // What a juicefs client writes: INCR aclMaxId, the rule, the inode with its id.
    let mut r = raw(&url).await;
    let id: i64 = r.incr(format!("{p}aclMaxId"), 1).await.unwrap();
    assert_eq!(id, 1);
    let _: () = r
        .hset(format!("{p}acl"), "1", JUICEFS_RULE.as_slice())
        .await
        .unwrap();
    let mut attr = a.getattr(f).await.unwrap();
    attr.mode = 0o664;
    attr.access_acl = 1;
    let _: () = r.set(format!("{p}i{f}"), encode_attr(&attr)).await.unwrap();
    let b = RedisMeta::open_with(&url, RedisOptions::default().key_prefix(&p))
        .await
        .unwrap();
    b.new_session(&harness::session_info()).await.unwrap();
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
    // The same rule set elsewhere reuses JuiceFS's id; nothing new is stored.
    b.setxattr(&ctx, g, XATTR_ACCESS, &rule().to_xattr(), 0)
        .await
        .unwrap();
    assert_eq!(b.getattr(g).await.unwrap().access_acl, 1);
    let max: i64 = r.get(format!("{p}aclMaxId")).await.unwrap();
    assert_eq!(max, 1);
    // A rule stored while the counter is ahead of the hash (a juicefs client that died
    // between INCR and HSET) takes the next id after the counter.
    let _: i64 = r.incr(format!("{p}aclMaxId"), 1).await.unwrap();
    let other = Rule {
        named_users: vec![AclEntry { id: 1002, perm: 4 }],
        ..rule()
    };
    b.setxattr(&ctx, g, XATTR_ACCESS, &other.to_xattr(), 0)
        .await
        .unwrap();
    assert_eq!(b.getattr(g).await.unwrap().access_acl, 3);
}
