//! A load of a dump into an empty volume through `Bulk`, read back through `MetaEngine`
//! and in JuiceFS's raw Redis keys.

#![allow(clippy::unwrap_used)]

#[path = "support/harness.rs"]
mod harness;

use std::collections::HashMap;

use meta_api::acl::{AclEntry, Rule, XATTR_ACCESS, XATTR_DEFAULT};
use meta_api::dump::{Batch, Counters, Edge, Link, LoadEnd, Node, QueuedDeletion};
use meta_api::quota::{Quota, QuotaKind};
use meta_api::upkeep::DirStat;
use meta_api::{
    Attr, Context, FileType, Format, Ino, MetaEngine, MetaError, Slice, Timestamp, CHUNK_SIZE,
    ROOT_INO,
};
use meta_redis::{RedisMeta, RedisOptions};
use redis::AsyncCommands;

const SUB: Ino = 2;
const FILE: Ino = 3;
const SHARER: Ino = 4;
const LINKED: Ino = 5;
const SYMLINK: Ino = 6;

/// The slice occurring three times: once in `FILE`, twice in `SHARER`.
const SHARED: (u64, u32) = (10, 4 << 20);

fn t() -> Timestamp {
    Timestamp {
        sec: 1_700_000_000,
        nsec: 123_456_789,
    }
}

fn attr(typ: FileType, mode: u16, parent: Ino, nlink: u32, length: u64) -> Attr {
    let mut a = Attr::new(typ, mode, 1000, 100, t());
    a.mtime.sec += 1;
    a.ctime.nsec = 7;
    a.parent = parent;
    a.nlink = nlink;
    a.length = length;
    a
}

fn node(ino: Ino, attr: Attr) -> Node {
    Node {
        ino,
        attr,
        access_acl: None,
        default_acl: None,
    }
}

fn edge(parent: Ino, name: &[u8], ino: Ino, typ: FileType) -> Edge {
    Edge {
        parent,
        name: name.to_vec(),
        ino,
        typ,
    }
}

fn access_rule() -> Rule {
    Rule {
        owner: 6,
        group: 4,
        mask: 6,
        other: 0,
        named_users: vec![AclEntry { id: 2000, perm: 6 }],
        named_groups: vec![],
    }
}

fn default_rule() -> Rule {
    Rule {
        owner: 7,
        group: 5,
        mask: 7,
        other: 5,
        named_users: vec![],
        named_groups: vec![AclEntry { id: 300, perm: 7 }],
    }
}

fn slice(pos: u32, (id, size): (u64, u32), off: u32, len: u32) -> Slice {
    Slice {
        pos,
        id,
        size,
        off,
        len,
    }
}

fn file_chunks() -> Vec<(Ino, u32, Vec<Slice>)> {
    vec![
        (FILE, 0, vec![slice(0, SHARED, 0, 4 << 20)]),
        (FILE, 1, vec![slice(0, (11, 100), 0, 100)]),
    ]
}

fn sharer_chunk() -> Vec<Slice> {
    vec![
        slice(0, SHARED, 0, 1 << 20),
        slice(1 << 20, SHARED, 2 << 20, 1 << 20),
    ]
}

fn stats() -> Vec<(Ino, DirStat)> {
    vec![
        (
            ROOT_INO,
            DirStat {
                length: CHUNK_SIZE as i64 + 100 + 10,
                space: CHUNK_SIZE as i64 + 3 * 4096,
                inodes: 4,
            },
        ),
        (
            SUB,
            DirStat {
                length: (2 << 20) + 10,
                space: (2 << 20) + 4096,
                inodes: 2,
            },
        ),
    ]
}

/// The first batch: the root, the subdirectory, the file with two chunks (with its
/// access ACL and an xattr), the symlink and the first name of the linked file.
fn first_batch() -> Batch {
    let mut root = node(
        ROOT_INO,
        attr(FileType::Directory, 0o755, ROOT_INO, 3, 4096),
    );
    root.attr.uid = 0;
    let mut sub = node(SUB, attr(FileType::Directory, 0o750, ROOT_INO, 2, 4096));
    sub.default_acl = Some(default_rule());
    let mut file = node(
        FILE,
        attr(FileType::Regular, 0o660, ROOT_INO, 1, CHUNK_SIZE + 100),
    );
    file.access_acl = Some(access_rule());
    Batch {
        nodes: vec![
            root,
            sub,
            file,
            node(SYMLINK, attr(FileType::Symlink, 0o777, ROOT_INO, 1, 1)),
        ],
        edges: vec![
            edge(ROOT_INO, b"sub", SUB, FileType::Directory),
            edge(ROOT_INO, b"f", FILE, FileType::Regular),
            edge(ROOT_INO, b"l", SYMLINK, FileType::Symlink),
            edge(ROOT_INO, b"h", LINKED, FileType::Regular),
        ],
        chunks: file_chunks(),
        symlinks: vec![(SYMLINK, b"f".to_vec())],
        xattrs: vec![(FILE, b"user.k".to_vec(), b"v\0binary".to_vec())],
        dir_stats: vec![stats()[0]],
        slice_refs: vec![SHARED, (11, 100)],
    }
}

/// The second batch: the file sharing the slice twice, the linked file (its inode, its
/// second name, its chunk) and the subdirectory's stats.
fn second_batch() -> Batch {
    Batch {
        nodes: vec![
            node(SHARER, attr(FileType::Regular, 0o644, SUB, 1, 2 << 20)),
            node(LINKED, attr(FileType::Regular, 0o644, ROOT_INO, 1, 10)),
        ],
        edges: vec![
            edge(SUB, b"g", SHARER, FileType::Regular),
            edge(SUB, b"h2", LINKED, FileType::Regular),
        ],
        chunks: vec![
            (SHARER, 0, sharer_chunk()),
            (LINKED, 0, vec![slice(0, (12, 10), 0, 10)]),
        ],
        dir_stats: vec![stats()[1]],
        slice_refs: vec![SHARED, SHARED, (12, 10)],
        ..Batch::default()
    }
}

fn counters() -> Counters {
    Counters {
        used_space: CHUNK_SIZE as i64 + (2 << 20) + 5 * 4096,
        used_inodes: 6,
        next_inode: 100,
        next_chunk: 200,
        next_session: 4,
        next_trash: 0,
    }
}

fn quotas() -> Vec<(QuotaKind, u64, Quota)> {
    vec![
        (
            QuotaKind::Dir,
            SUB,
            Quota {
                max_space: 1 << 30,
                max_inodes: 1000,
                used_space: (2 << 20) + 4096,
                used_inodes: 2,
            },
        ),
        (
            QuotaKind::User,
            1000,
            Quota {
                max_space: 10 << 30,
                max_inodes: -1,
                used_space: CHUNK_SIZE as i64 + (2 << 20) + 3 * 4096,
                used_inodes: 5,
            },
        ),
    ]
}

fn format(prefix: &str) -> Format {
    let mut f = harness::format(prefix);
    f.enable_acl = true;
    f.trash_days = 0;
    f
}

/// The entries of `dir`, as name, inode and type.
async fn names(c: &RedisMeta, dir: Ino) -> Vec<(Vec<u8>, Ino, FileType)> {
    c.readdir(&Context::root(), dir, None, 100, false)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.ino, e.typ))
        .collect()
}

async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_writes_juicefs_keys() {
    let Some(url) = harness::redis_url("a_load_writes_juicefs_keys") else {
        return;
    };
    let p = harness::unique_prefix("bulk");
    let m = RedisMeta::open_with(&url, RedisOptions::default().key_prefix(&p))
        .await
        .unwrap();
    let mut r = raw(&url).await;
    assert!(m.is_empty().await.unwrap());

    m.load_batch(&first_batch()).await.unwrap();
    assert!(!m.is_empty().await.unwrap());
    assert!(matches!(m.load().await, Err(MetaError::NotFormatted)));
    m.load_batch(&second_batch()).await.unwrap();
    assert!(matches!(m.load().await, Err(MetaError::NotFormatted)));

    let f = format(&p);
    let end = LoadEnd {
        restoring: false,
        format: f.clone(),
        counters: counters(),
        links: vec![Link {
            ino: LINKED,
            parents: vec![(ROOT_INO, 1), (SUB, 1)],
        }],
        quotas: quotas(),
    };
    m.finish_load(&end).await.unwrap();
    // The counters as the dump gave them; Redis keeps one less in its id counters.
    assert_eq!(m.counters().await.unwrap(), counters());
    let ids: (i64, i64, i64) = redis::cmd("MGET")
        .arg(format!("{p}nextinode"))
        .arg(format!("{p}nextchunk"))
        .arg(format!("{p}nextsession"))
        .query_async(&mut r)
        .await
        .unwrap();
    assert_eq!(ids, (99, 199, 4));

    // A second client opens the volume as loaded.
    let c = harness::connect(&url, &p).await.unwrap();
    assert_eq!(c.load().await.unwrap(), f);
    assert_eq!(m.load().await.unwrap(), f);
    let ctx = Context::root();

    // Attributes, with the ACL ids set and the hard link's count and parent fixed.
    let got = c.lookup(&ctx, ROOT_INO, b"f").await.unwrap();
    assert_eq!(got.ino, FILE);
    let mut want = first_batch().nodes[2].attr.clone();
    assert_ne!(got.attr.access_acl, 0);
    want.access_acl = got.attr.access_acl;
    assert_eq!(got.attr, want);
    let sub = c.getattr(SUB).await.unwrap();
    assert_ne!(sub.default_acl, 0);
    assert_eq!(sub.nlink, 2);
    assert_eq!(sub.parent, ROOT_INO);
    let linked = c.getattr(LINKED).await.unwrap();
    assert_eq!((linked.nlink, linked.parent), (2, 0));
    assert_eq!(c.lookup(&ctx, SUB, b"h2").await.unwrap().ino, LINKED);
    let parents: HashMap<String, i64> = r.hgetall(format!("{p}p{LINKED}")).await.unwrap();
    assert_eq!(
        parents,
        HashMap::from([("1".to_string(), 1), ("2".to_string(), 1)])
    );
    assert_eq!(c.getattr(ROOT_INO).await.unwrap().parent, ROOT_INO);

    // Entries, chunks, the symlink, xattrs and ACLs.
    assert_eq!(
        names(&c, ROOT_INO).await,
        vec![
            (b"f".to_vec(), FILE, FileType::Regular),
            (b"h".to_vec(), LINKED, FileType::Regular),
            (b"l".to_vec(), SYMLINK, FileType::Symlink),
            (b"sub".to_vec(), SUB, FileType::Directory),
        ]
    );
    assert_eq!(
        names(&c, SUB).await,
        vec![
            (b"g".to_vec(), SHARER, FileType::Regular),
            (b"h2".to_vec(), LINKED, FileType::Regular),
        ]
    );
    for (ino, indx, slices) in file_chunks() {
        assert_eq!(c.read_chunk(ino, indx).await.unwrap(), slices);
    }
    assert_eq!(c.read_chunk(SHARER, 0).await.unwrap(), sharer_chunk());
    assert_eq!(c.readlink(SYMLINK).await.unwrap(), b"f");
    assert_eq!(c.getxattr(FILE, b"user.k").await.unwrap(), b"v\0binary");
    assert_eq!(
        c.getxattr(FILE, XATTR_ACCESS).await.unwrap(),
        access_rule().to_xattr()
    );
    assert_eq!(
        c.getxattr(SUB, XATTR_DEFAULT).await.unwrap(),
        default_rule().to_xattr()
    );

    // Quotas, dir stats, counters.
    for (kind, key, q) in quotas() {
        assert_eq!(c.get_quota(kind, key).await.unwrap(), Some(q));
    }
    for (ino, st) in stats() {
        assert_eq!(c.dir_stat(ino).await.unwrap(), Some(st));
    }
    // A new session took the next session id.
    let mut now = counters();
    now.next_session += 1;
    assert_eq!(c.counters().await.unwrap(), now);

    // References: three for the shared slice, the others one each (no field), and no
    // counting hash left.
    let refs: HashMap<String, i64> = r.hgetall(format!("{p}sliceRef")).await.unwrap();
    assert_eq!(
        refs,
        HashMap::from([(format!("k{}_{}", SHARED.0, SHARED.1), 2)])
    );
    let listing = c.list_slices().await.unwrap();
    let shared = listing
        .records
        .iter()
        .filter(|(_, _, s)| (s.id, s.size) == SHARED)
        .count();
    assert_eq!(shared, 3);
    assert_eq!(listing.records.len(), 5);
    assert!(listing.pending.is_empty());
    let left: bool = r.exists(format!("{p}loadSliceRefs")).await.unwrap();
    assert!(!left);

    // A loaded volume is no empty one and takes no second load.
    assert!(!c.is_empty().await.unwrap());
    assert!(matches!(
        m.load_batch(&second_batch()).await,
        Err(MetaError::Exists)
    ));
    assert!(matches!(m.finish_load(&end).await, Err(MetaError::Exists)));

    // The normal API works on it: a file unlinked without trash waits in the queue.
    assert!(c.queued_deletions(0, 10).await.unwrap().is_empty());
    let dead = c
        .mknod(&ctx, ROOT_INO, b"dead", FileType::Regular, 0o644, 0)
        .await
        .unwrap();
    assert!(dead.ino >= 100);
    c.unlink(&ctx, ROOT_INO, b"dead").await.unwrap();
    let queued = c.queued_deletions(0, 10).await.unwrap();
    assert_eq!(queued.len(), 1);
    let QueuedDeletion {
        ino,
        length,
        queued,
    } = queued[0];
    assert_eq!((ino, length), (dead.ino, 0));
    assert!(queued >= t().sec);
    assert!(c.queued_deletions(dead.ino, 10).await.unwrap().is_empty());
    assert!(c.queued_deletions(0, 0).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_refuses_garbage() {
    let Some(url) = harness::redis_url("a_load_refuses_garbage") else {
        return;
    };
    let p = harness::unique_prefix("bulkbad");
    let m = RedisMeta::open_with(&url, RedisOptions::default().key_prefix(&p))
        .await
        .unwrap();
    meta_api::testkit::corrupt::a_batch_with_slice_0_is_refused(&m).await;
    let end = LoadEnd {
        restoring: false,
        format: format(&p),
        counters: counters(),
        links: vec![],
        quotas: vec![],
    };
    meta_api::testkit::corrupt::a_link_without_its_node_is_refused(&m, end).await;

    // A formatted volume takes no load.
    let q = harness::unique_prefix("bulkfmt");
    let f = RedisMeta::open_with(&url, RedisOptions::default().key_prefix(&q))
        .await
        .unwrap();
    f.init(&format(&q), false).await.unwrap();
    assert!(!f.is_empty().await.unwrap());
    assert!(matches!(
        f.load_batch(&first_batch()).await,
        Err(MetaError::Exists)
    ));
    // Not even the batch's ACL rules.
    let mut r = raw(&url).await;
    let rules: bool = r.exists(format!("{q}acl")).await.unwrap();
    assert!(!rules);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_slice_references_are_counted_in_pages() {
    let Some(url) = harness::redis_url("many_slice_references_are_counted_in_pages") else {
        return;
    };
    let p = harness::unique_prefix("bulkrefs");
    let m = RedisMeta::open_with(&url, RedisOptions::default().key_prefix(&p))
        .await
        .unwrap();
    // 12 000 occurrences, more than one transaction of a load carries: slices 1..=2000
    // three times, 2001..=3000 twice, 3001..=7000 once.
    let mut occurrences: Vec<(u64, u32)> = (1..=7000).map(|id| (id, 4096)).collect();
    occurrences.extend((1..=3000).map(|id| (id, 4096)));
    occurrences.extend((1..=2000).map(|id| (id, 4096)));
    let mut root = node(
        ROOT_INO,
        attr(FileType::Directory, 0o755, ROOT_INO, 2, 4096),
    );
    root.attr.uid = 0;
    let batch = Batch {
        nodes: vec![root],
        slice_refs: occurrences,
        ..Batch::default()
    };
    m.load_batch(&batch).await.unwrap();
    let end = LoadEnd {
        restoring: false,
        format: format(&p),
        counters: counters(),
        links: vec![],
        quotas: vec![],
    };
    m.finish_load(&end).await.unwrap();
    let mut r = raw(&url).await;
    let refs: HashMap<String, i64> = r.hgetall(format!("{p}sliceRef")).await.unwrap();
    assert_eq!(refs.len(), 3000);
    for id in 1..=3000 {
        let want = if id <= 2000 { 2 } else { 1 };
        assert_eq!(refs.get(&format!("k{id}_4096")), Some(&want), "slice {id}");
    }
    let left: bool = r.exists(format!("{p}loadSliceRefs")).await.unwrap();
    assert!(!left);
}
