//! Loading a volume in bulk (`Bulk` through `MetaEngine`) into the in-process store: the
//! records land in JuiceFS's TKV layout, slice references included, and the volume opens
//! only once the load has ended.

#![allow(clippy::unwrap_used)]

#[path = "support/harness.rs"]
mod harness;

use harness::{format, session_info, PREFIX};
use meta_api::acl::{AclEntry, Rule, XATTR_ACCESS, XATTR_DEFAULT};
use meta_api::dump::{Batch, Counters, Edge, Link, LoadEnd, Node, QueuedDeletion};
use meta_api::quota::{Quota, QuotaKind};
use meta_api::upkeep::DirStat;
use meta_api::{
    Attr, Context, FileType, Format, Ino, MetaEngine, MetaError, Slice, Timestamp, CHUNK_SIZE,
    ROOT_INO,
};
use meta_fdb::{MemKv, TkvMeta};

const T0: i64 = 1_700_000_000;

fn attr(typ: FileType, mode: u16, nlink: u32, length: u64, parent: Ino) -> Attr {
    let mut a = Attr::new(typ, mode, 1000, 100, Timestamp::new(T0, 123));
    a.mtime = Timestamp::new(T0 + 1, 456);
    a.ctime = Timestamp::new(T0 + 2, 789);
    a.nlink = nlink;
    a.length = length;
    a.parent = parent;
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

fn slice(pos: u32, id: u64, size: u32) -> Slice {
    Slice {
        pos,
        id,
        size,
        off: 0,
        len: size,
    }
}

fn access_rule() -> Rule {
    Rule {
        owner: 6,
        group: 4,
        mask: 6,
        other: 4,
        named_users: vec![AclEntry { id: 1001, perm: 6 }],
        named_groups: vec![],
    }
}

fn default_rule() -> Rule {
    Rule {
        owner: 7,
        group: 5,
        mask: 5,
        other: 5,
        named_users: vec![],
        named_groups: vec![AclEntry { id: 50, perm: 5 }],
    }
}

fn volume_format() -> Format {
    let mut f = format("bulk");
    f.enable_acl = true;
    f.dir_stats = true;
    f.trash_days = 0;
    f
}

/// The committed value of `key` (after the volume prefix).
fn raw(kv: &MemKv, key: &[u8]) -> Option<Vec<u8>> {
    let key = [PREFIX, key].concat();
    kv.entries()
        .into_iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// The committed keys starting with `tag` (after the volume prefix).
fn keys_with(kv: &MemKv, tag: &[u8]) -> Vec<Vec<u8>> {
    let p = [PREFIX, tag].concat();
    kv.entries()
        .into_iter()
        .filter(|(k, _)| k.starts_with(&p))
        .map(|(k, _)| k[PREFIX.len()..].to_vec())
        .collect()
}

fn slice_ref_key(id: u64, size: u32) -> Vec<u8> {
    [&b"K"[..], &id.to_be_bytes(), &size.to_be_bytes()].concat()
}

const SHARED: (u64, u32) = (10, 4096);

/// Root (1) with `sub` (2), `a` (3: two chunks, an access ACL, an xattr), `l` (5, a
/// symlink to `a`) and `h` (6, also named `sub/h2`); `sub/b` (4) shares a slice with `a`,
/// and `h` holds it a third time; `sub` has a default ACL.
fn batches() -> (Batch, Batch) {
    let big = CHUNK_SIZE + 100;
    let mut a = node(3, attr(FileType::Regular, 0o664, 1, big, ROOT_INO));
    a.access_acl = Some(access_rule());
    let mut sub = node(2, attr(FileType::Directory, 0o755, 2, 4096, ROOT_INO));
    sub.default_acl = Some(default_rule());
    let first = Batch {
        nodes: vec![
            node(
                ROOT_INO,
                attr(FileType::Directory, 0o777, 3, 4096, ROOT_INO),
            ),
            sub,
            a,
        ],
        edges: vec![
            edge(ROOT_INO, b"sub", 2, FileType::Directory),
            edge(ROOT_INO, b"a", 3, FileType::Regular),
        ],
        chunks: vec![
            (
                3,
                0,
                vec![slice(0, SHARED.0, SHARED.1), slice(4096, 11, 8192)],
            ),
            (3, 1, vec![slice(0, 12, 100)]),
        ],
        xattrs: vec![(3, b"user.k".to_vec(), b"v".to_vec())],
        dir_stats: vec![(
            ROOT_INO,
            DirStat {
                length: big as i64,
                space: 0,
                inodes: 4,
            },
        )],
        slice_refs: vec![SHARED, (11, 8192), (12, 100)],
        ..Batch::default()
    };
    let mut b = node(4, attr(FileType::Regular, 0o664, 1, 4096, 2));
    b.access_acl = Some(access_rule());
    let second = Batch {
        nodes: vec![
            b,
            node(5, attr(FileType::Symlink, 0o777, 1, 1, ROOT_INO)),
            node(6, attr(FileType::Regular, 0o644, 1, 4096, ROOT_INO)),
        ],
        edges: vec![
            edge(2, b"b", 4, FileType::Regular),
            edge(ROOT_INO, b"l", 5, FileType::Symlink),
            edge(ROOT_INO, b"h", 6, FileType::Regular),
            edge(2, b"h2", 6, FileType::Regular),
        ],
        chunks: vec![
            (4, 0, vec![slice(0, SHARED.0, SHARED.1)]),
            (6, 0, vec![slice(0, SHARED.0, SHARED.1)]),
        ],
        symlinks: vec![(5, b"a".to_vec())],
        dir_stats: vec![(
            2,
            DirStat {
                length: 8192,
                space: 8192,
                inodes: 2,
            },
        )],
        slice_refs: vec![SHARED, SHARED],
        ..Batch::default()
    };
    (first, second)
}

fn quotas() -> Vec<(QuotaKind, u64, Quota)> {
    vec![
        (
            QuotaKind::Dir,
            2,
            Quota {
                max_space: 1 << 30,
                max_inodes: 100,
                used_space: 8192,
                used_inodes: 2,
            },
        ),
        (
            QuotaKind::User,
            1000,
            Quota {
                max_space: 1 << 40,
                max_inodes: -1,
                used_space: 1 << 20,
                used_inodes: 5,
            },
        ),
    ]
}

fn load_end() -> LoadEnd {
    LoadEnd {
        restoring: false,
        format: volume_format(),
        counters: Counters {
            used_space: 1 << 20,
            used_inodes: 5,
            next_inode: 7,
            next_chunk: 13,
            next_session: 3,
            next_trash: 0,
        },
        links: vec![Link {
            ino: 6,
            parents: vec![(ROOT_INO, 1), (2, 1)],
        }],
        quotas: quotas(),
    }
}

#[tokio::test]
async fn a_loaded_volume_reads_back_in_juicefs_layout() {
    let kv = MemKv::new();
    let m = TkvMeta::new(kv.clone(), PREFIX);
    assert!(m.is_empty().await.unwrap(), "a fresh store is empty");

    let (first, second) = batches();
    m.load_batch(&first).await.unwrap();
    m.load_batch(&second).await.unwrap();
    assert!(!m.is_empty().await.unwrap());
    assert!(
        matches!(m.load().await, Err(MetaError::NotFormatted)),
        "no volume before the load ends"
    );
    assert_eq!(
        raw(&kv, &slice_ref_key(SHARED.0, SHARED.1)),
        None,
        "references are counted aside until the end"
    );
    let end = load_end();
    m.finish_load(&end).await.unwrap();

    // A new client opens the volume.
    let c = TkvMeta::new(kv.clone(), PREFIX);
    assert_eq!(c.load().await.unwrap(), end.format);
    assert!(!c.is_empty().await.unwrap());
    assert_eq!(c.counters().await.unwrap(), end.counters);
    let ctx = Context::root();

    let a = c.lookup(&ctx, ROOT_INO, b"a").await.unwrap();
    assert_eq!(a.ino, 3);
    let want = &first.nodes[2].attr;
    assert_eq!(
        (a.attr.typ, a.attr.mode, a.attr.uid, a.attr.gid),
        (want.typ, want.mode, want.uid, want.gid)
    );
    assert_eq!(
        (a.attr.atime, a.attr.mtime, a.attr.ctime),
        (want.atime, want.mtime, want.ctime)
    );
    assert_eq!(
        (a.attr.nlink, a.attr.length, a.attr.parent),
        (1, want.length, ROOT_INO)
    );
    assert_ne!(a.attr.access_acl, 0);
    let b = c.getattr(4).await.unwrap();
    assert_eq!(b.access_acl, a.attr.access_acl, "one rule, one id");
    assert_eq!(raw(&kv, b"CaclMaxId"), Some(2i64.to_le_bytes().to_vec()));
    assert_eq!(
        c.getxattr(3, XATTR_ACCESS).await.unwrap(),
        access_rule().to_xattr()
    );
    assert_eq!(
        c.getxattr(2, XATTR_DEFAULT).await.unwrap(),
        default_rule().to_xattr()
    );
    assert_eq!(c.getxattr(3, b"user.k").await.unwrap(), b"v");

    // The file with two names.
    let h = c.getattr(6).await.unwrap();
    assert_eq!((h.nlink, h.parent), (2, 0));
    assert_eq!(c.lookup(&ctx, 2, b"h2").await.unwrap().ino, 6);
    for parent in [ROOT_INO, 2] {
        let key = [&b"A"[..], &6u64.to_le_bytes(), b"P", &parent.to_le_bytes()].concat();
        assert_eq!(raw(&kv, &key), Some(1i64.to_le_bytes().to_vec()));
    }

    let mut names: Vec<Vec<u8>> = c
        .readdir(&ctx, ROOT_INO, None, 100, false)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    names.sort();
    assert_eq!(names, [&b"a"[..], b"h", b"l", b"sub"]);
    assert_eq!(c.read_chunk(3, 0).await.unwrap(), first.chunks[0].2);
    assert_eq!(c.read_chunk(3, 1).await.unwrap(), first.chunks[1].2);
    assert_eq!(c.read_chunk(4, 0).await.unwrap(), second.chunks[0].2);
    assert_eq!(c.readlink(5).await.unwrap(), b"a");
    assert_eq!(
        c.dir_stat(ROOT_INO).await.unwrap(),
        Some(first.dir_stats[0].1)
    );
    assert_eq!(c.dir_stat(2).await.unwrap(), Some(second.dir_stats[0].1));
    for (kind, key, q) in quotas() {
        assert_eq!(c.get_quota(kind, key).await.unwrap(), Some(q));
    }

    // The shared slice has three references: two beyond the first; the others one (no key).
    let listing = c.list_slices().await.unwrap();
    let uses = listing
        .records
        .iter()
        .filter(|(_, _, s)| (s.id, s.size) == SHARED)
        .count();
    assert_eq!(uses, 3);
    assert!(listing.pending.is_empty());
    assert_eq!(
        raw(&kv, &slice_ref_key(SHARED.0, SHARED.1)),
        Some(2i64.to_le_bytes().to_vec())
    );
    assert_eq!(keys_with(&kv, b"K"), [slice_ref_key(SHARED.0, SHARED.1)]);
    assert!(keys_with(&kv, b"OL").is_empty(), "no occurrence count left");

    // A file deleted after the load is queued for its purge.
    c.new_session(&session_info()).await.unwrap();
    assert!(c.queued_deletions(0, 10).await.unwrap().is_empty());
    let gone = c.create(&ctx, ROOT_INO, b"gone", 0o644).await.unwrap();
    c.close(gone.ino).await.unwrap();
    c.unlink(&ctx, ROOT_INO, b"gone").await.unwrap();
    let queued = c.queued_deletions(0, 10).await.unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(
        (queued[0].ino, queued[0].length),
        (gone.ino, 0),
        "{queued:?}"
    );
    assert!(queued[0].queued > 0);
    assert!(c.queued_deletions(gone.ino, 10).await.unwrap().is_empty());
}

/// Many slices over a batch split into several transactions: each ends with exactly its
/// occurrences as references, converted a page at a time.
#[tokio::test]
async fn slice_references_count_every_occurrence() {
    let kv = MemKv::new();
    let m = TkvMeta::new(kv.clone(), PREFIX);
    let occurrences = |id: u64| id % 3 + 1;
    let mut batch = Batch::default();
    for id in 1..=2500u64 {
        for _ in 0..occurrences(id) {
            batch.slice_refs.push((id, 4096));
        }
    }
    m.load_batch(&batch).await.unwrap();
    let end = LoadEnd {
        restoring: false,
        format: volume_format(),
        counters: Counters::default(),
        links: vec![],
        quotas: vec![],
    };
    m.finish_load(&end).await.unwrap();
    let refs = keys_with(&kv, b"K");
    assert_eq!(
        refs.len(),
        (1..=2500).filter(|&id| occurrences(id) > 1).count()
    );
    for id in 1..=2500u64 {
        let want =
            (occurrences(id) > 1).then(|| (occurrences(id) as i64 - 1).to_le_bytes().to_vec());
        assert_eq!(raw(&kv, &slice_ref_key(id, 4096)), want, "slice {id}");
    }
    assert!(keys_with(&kv, b"OL").is_empty());
}

/// The deletion queue is listed in inode order, whatever the key order.
#[tokio::test]
async fn queued_deletions_page_in_inode_order() {
    let kv = MemKv::new();
    let m = TkvMeta::new(kv.clone(), PREFIX);
    m.init(&volume_format(), false).await.unwrap();
    m.new_session(&session_info()).await.unwrap();
    let ctx = Context::root();
    let mut inos = Vec::new();
    for i in 0..300u32 {
        let name = format!("f{i}");
        let e = m
            .mknod(&ctx, ROOT_INO, name.as_bytes(), FileType::Regular, 0o644, 0)
            .await
            .unwrap();
        m.unlink(&ctx, ROOT_INO, name.as_bytes()).await.unwrap();
        inos.push(e.ino);
    }
    inos.sort_unstable();
    let mut seen: Vec<QueuedDeletion> = Vec::new();
    loop {
        let after = seen.last().map_or(0, |q| q.ino);
        let page = m.queued_deletions(after, 64).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 64);
        seen.extend(page);
    }
    assert_eq!(seen.iter().map(|q| q.ino).collect::<Vec<_>>(), inos);
}

#[tokio::test]
async fn a_batch_naming_inode_zero_is_refused() {
    let m = TkvMeta::new(MemKv::new(), PREFIX);
    let batch = Batch {
        edges: vec![edge(ROOT_INO, b"x", 0, FileType::Regular)],
        ..Batch::default()
    };
    assert!(matches!(
        m.load_batch(&batch).await,
        Err(MetaError::InvalidArgument(_))
    ));
    assert!(m.is_empty().await.unwrap(), "nothing of a refused batch");
    meta_api::testkit::corrupt::a_batch_with_slice_0_is_refused(&m).await;

    // A link to an inode the load never wrote: refused, and no setting written.
    meta_api::testkit::corrupt::a_link_without_its_node_is_refused(&m, load_end()).await;
}
