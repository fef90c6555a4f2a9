//! Loading a dump into an empty database ([`meta_api::backend::Bulk`]) and reading the
//! volume back through [`MetaEngine`] and the raw `jfs_` rows.

#![allow(clippy::unwrap_used)] // Tests: a failure is the test's failure.

#[path = "support/volume.rs"]
mod support;

use meta_api::acl::{AclEntry, Rule, XATTR_ACCESS, XATTR_DEFAULT};
use meta_api::dump::{Batch, Counters, Edge, Link, LoadEnd, Node};
use meta_api::quota::{Quota, QuotaKind};
use meta_api::upkeep::DirStat;
use meta_api::{
    Attr, Context, FileType, Format, MetaEngine, MetaError, Slice, Timestamp, CHUNK_SIZE, ROOT_INO,
};
use meta_sqlite::SqliteMeta;
use support::{int, test_format, Volume};

const SUB: u64 = 2;
const A: u64 = 3;
const B: u64 = 4;
const SYMLINK: u64 = 5;
const HARD: u64 = 6;

fn format() -> Format {
    let mut f = test_format();
    f.trash_days = 0;
    f.dir_stats = true;
    f.enable_acl = true;
    f
}

fn attr(typ: FileType, mode: u16, length: u64, parent: u64, nlink: u32) -> Attr {
    let mut a = Attr::new(
        typ,
        mode,
        1000,
        100,
        Timestamp::new(1_700_000_000, 123_456_789),
    );
    a.mtime = Timestamp::new(1_700_000_001, 5);
    a.ctime = Timestamp::new(1_700_000_002, 999_999_999);
    a.length = length;
    a.parent = parent;
    a.nlink = nlink;
    a
}

fn node(ino: u64, attr: Attr) -> Node {
    Node {
        ino,
        attr,
        access_acl: None,
        default_acl: None,
    }
}

fn edge(parent: u64, name: &[u8], ino: u64, typ: FileType) -> Edge {
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
        other: 4,
        named_users: vec![AclEntry { id: 1001, perm: 6 }],
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
        named_groups: vec![AclEntry { id: 50, perm: 7 }],
    }
}

/// Slice 10 (1000 bytes) occurs once in `a.txt` and twice in `b.txt`; slice 11 once.
fn slice(pos: u32, id: u64, size: u32, off: u32, len: u32) -> Slice {
    Slice {
        pos,
        id,
        size,
        off,
        len,
    }
}

fn a_chunks() -> Vec<(u64, u32, Vec<Slice>)> {
    vec![
        (A, 0, vec![slice(0, 10, 1000, 0, 1000)]),
        (A, 1, vec![slice(0, 11, 500, 0, 500)]),
    ]
}

fn b_chunk() -> Vec<Slice> {
    vec![slice(0, 10, 1000, 0, 500), slice(500, 10, 1000, 500, 500)]
}

const A_LEN: u64 = CHUNK_SIZE + 500;

fn root_stat() -> DirStat {
    DirStat {
        length: A_LEN as i64,
        space: 4 * 4096 + ((A_LEN as i64 + 4095) / 4096 * 4096),
        inodes: 4,
    }
}

fn sub_stat() -> DirStat {
    DirStat {
        length: 1000,
        space: 2 * 4096,
        inodes: 2,
    }
}

/// The tree, in two batches: root, `sub/`, `a.txt` (two chunks, access ACL, an xattr),
/// `link` → `a.txt`, `hard` (also `sub/hard2`); `sub/b.txt` (same access ACL), `sub`
/// has a default ACL. Edges and chunks come before or after their nodes.
fn batches() -> [Batch; 2] {
    let mut root = attr(FileType::Directory, 0o755, 4096, ROOT_INO, 3);
    root.uid = 0;
    let mut sub = node(SUB, attr(FileType::Directory, 0o775, 4096, ROOT_INO, 2));
    sub.default_acl = Some(default_rule());
    let mut a = node(A, attr(FileType::Regular, 0o664, A_LEN, ROOT_INO, 1));
    a.access_acl = Some(access_rule());
    let first = Batch {
        nodes: vec![node(ROOT_INO, root), sub, a],
        edges: vec![
            edge(ROOT_INO, b"sub", SUB, FileType::Directory),
            edge(ROOT_INO, b"a.txt", A, FileType::Regular),
            edge(ROOT_INO, b"link", SYMLINK, FileType::Symlink),
            edge(ROOT_INO, b"hard", HARD, FileType::Regular),
        ],
        chunks: a_chunks(),
        symlinks: vec![],
        xattrs: vec![(A, b"user.color".to_vec(), b"blue".to_vec())],
        dir_stats: vec![(ROOT_INO, root_stat())],
        slice_refs: vec![(10, 1000), (11, 500)],
    };
    let mut b = node(B, attr(FileType::Regular, 0o664, 1000, SUB, 1));
    b.access_acl = Some(access_rule());
    let second = Batch {
        nodes: vec![
            b,
            node(SYMLINK, attr(FileType::Symlink, 0o777, 5, ROOT_INO, 1)),
            node(HARD, attr(FileType::Regular, 0o644, 0, ROOT_INO, 1)),
        ],
        edges: vec![
            edge(SUB, b"b.txt", B, FileType::Regular),
            edge(SUB, b"hard2", HARD, FileType::Regular),
        ],
        chunks: vec![(B, 0, b_chunk())],
        symlinks: vec![(SYMLINK, b"a.txt".to_vec())],
        xattrs: vec![],
        dir_stats: vec![(SUB, sub_stat())],
        slice_refs: vec![(10, 1000), (10, 1000)],
    };
    [first, second]
}

fn counters() -> Counters {
    Counters {
        used_space: root_stat().space + sub_stat().space,
        used_inodes: 6,
        next_inode: 100,
        next_chunk: 200,
        next_session: 3,
        next_trash: 0,
    }
}

const DIR_QUOTA: Quota = Quota {
    max_space: 1 << 30,
    max_inodes: 100,
    used_space: 8192,
    used_inodes: 2,
};

const USER_QUOTA: Quota = Quota {
    max_space: 1 << 40,
    max_inodes: -1,
    used_space: 12288,
    used_inodes: 3,
};

fn end() -> LoadEnd {
    LoadEnd {
        restoring: false,
        format: format(),
        counters: counters(),
        links: vec![Link {
            ino: HARD,
            parents: vec![(ROOT_INO, 1), (SUB, 1)],
        }],
        quotas: vec![
            (QuotaKind::Dir, SUB, DIR_QUOTA),
            (QuotaKind::User, 1000, USER_QUOTA),
        ],
    }
}

#[tokio::test]
async fn a_load_reads_back_through_the_engine_and_in_juicefs_rows() {
    let v = Volume::new();
    let m = SqliteMeta::open(&v.url).await.unwrap();
    assert!(m.is_empty().await.unwrap());

    for b in &batches() {
        m.load_batch(b).await.unwrap();
    }
    // Records but no setting: not a volume yet, and not empty.
    assert!(matches!(m.load().await, Err(MetaError::NotFormatted)));
    assert!(matches!(
        SqliteMeta::open(&v.url).await.unwrap().load().await,
        Err(MetaError::NotFormatted)
    ));
    assert!(!m.is_empty().await.unwrap());
    m.finish_load(&end()).await.unwrap();
    assert_eq!(m.counters().await.unwrap(), counters());

    // A second client sees the volume as loaded.
    let c = v.client().await;
    let ctx = Context::root();
    assert_eq!(c.load().await.unwrap(), format());

    let [first, second] = batches();
    let want = |ino| {
        first
            .nodes
            .iter()
            .chain(&second.nodes)
            .find(|n| n.ino == ino)
            .unwrap()
            .attr
            .clone()
    };
    let root = c.getattr(ROOT_INO).await.unwrap();
    assert_eq!((root.nlink, root.parent, root.mode), (3, ROOT_INO, 0o755));
    let a = c.lookup(&ctx, ROOT_INO, b"a.txt").await.unwrap();
    assert_eq!(a.ino, A);
    let stored = Attr {
        access_acl: a.attr.access_acl,
        ..want(A)
    };
    assert_eq!(a.attr, stored);
    assert_ne!(a.attr.access_acl, 0);
    let b = c.lookup(&ctx, SUB, b"b.txt").await.unwrap();
    assert_eq!(
        b.attr.access_acl, a.attr.access_acl,
        "equal rules share one id"
    );
    let sub = c.getattr(SUB).await.unwrap();
    assert_ne!(sub.default_acl, 0);

    // The file with two names: nlink 2, parent 0, under both names.
    for (dir, name) in [(ROOT_INO, &b"hard"[..]), (SUB, b"hard2")] {
        let e = c.lookup(&ctx, dir, name).await.unwrap();
        assert_eq!((e.ino, e.attr.nlink, e.attr.parent), (HARD, 2, 0));
    }

    let names = |list: Vec<meta_api::DirEntry>| -> Vec<Vec<u8>> {
        list.into_iter().map(|e| e.name).collect()
    };
    let listed = c.readdir(&ctx, ROOT_INO, None, 100, false).await.unwrap();
    let listed = names(listed);
    for n in [&b"a.txt"[..], b"hard", b"link", b"sub"] {
        assert!(listed.iter().any(|l| l == n), "{listed:?}");
    }
    let listed = c.readdir(&ctx, SUB, None, 100, true).await.unwrap();
    let listed = names(listed);
    for n in [&b"b.txt"[..], b"hard2"] {
        assert!(listed.iter().any(|l| l == n), "{listed:?}");
    }

    for (ino, indx, slices) in a_chunks() {
        assert_eq!(c.read_chunk(ino, indx).await.unwrap(), slices);
    }
    assert_eq!(c.read_chunk(B, 0).await.unwrap(), b_chunk());
    assert_eq!(c.readlink(SYMLINK).await.unwrap(), b"a.txt");
    assert_eq!(c.getxattr(A, b"user.color").await.unwrap(), b"blue");
    assert_eq!(
        c.getxattr(A, XATTR_ACCESS).await.unwrap(),
        access_rule().to_xattr()
    );
    assert_eq!(
        c.getxattr(SUB, XATTR_DEFAULT).await.unwrap(),
        default_rule().to_xattr()
    );

    assert_eq!(
        c.get_quota(QuotaKind::Dir, SUB).await.unwrap(),
        Some(DIR_QUOTA)
    );
    assert_eq!(
        c.get_quota(QuotaKind::User, 1000).await.unwrap(),
        Some(USER_QUOTA)
    );
    assert_eq!(c.dir_stat(ROOT_INO).await.unwrap(), Some(root_stat()));
    assert_eq!(c.dir_stat(SUB).await.unwrap(), Some(sub_stat()));
    // The client's session took the next session id.
    let after = Counters {
        next_session: counters().next_session + 1,
        ..counters()
    };
    assert_eq!(c.counters().await.unwrap(), after);

    // Slice 10 is in three records and has three references; slice 11 one.
    let listing = c.list_slices().await.unwrap();
    assert_eq!(listing.records.iter().filter(|r| r.2.id == 10).count(), 3);
    assert!(listing.pending.is_empty());
    let raw = v.raw();
    let refs = |id: u64| {
        int(
            &raw,
            &format!("SELECT refs FROM jfs_chunk_ref WHERE chunkid = {id}"),
        )
    };
    assert_eq!((refs(10), refs(11)), (3, 1));
    assert_eq!(int(&raw, "SELECT COUNT(*) FROM jfs_chunk_ref"), 2);
    assert_eq!(int(&raw, "SELECT COUNT(*) FROM jfs_acl"), 2);
    assert!(!c.is_empty().await.unwrap());

    // The volume works: a file created and removed (no trash) is queued for deletion.
    assert!(c.queued_deletions(0, 10).await.unwrap().is_empty());
    let f = c.create(&ctx, ROOT_INO, b"gone", 0o644).await.unwrap();
    assert!(f.ino >= 100, "new inodes come after the loaded counter");
    c.close(f.ino).await.unwrap();
    c.unlink(&ctx, ROOT_INO, b"gone").await.unwrap();
    let queued = c.queued_deletions(0, 10).await.unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!((queued[0].ino, queued[0].length), (f.ino, 0));
    assert!(c.queued_deletions(f.ino, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_formatted_volume_is_not_empty_and_refuses_a_load() {
    let v = Volume::new();
    let m = SqliteMeta::open(&v.url).await.unwrap();
    assert!(m.is_empty().await.unwrap());
    m.init(&format(), false).await.unwrap();
    assert!(!m.is_empty().await.unwrap());
    let [first, _] = batches();
    assert!(matches!(m.load_batch(&first).await, Err(MetaError::Exists)));
    assert!(matches!(
        m.finish_load(&end()).await,
        Err(MetaError::Exists)
    ));
}

#[tokio::test]
async fn garbage_in_a_batch_is_refused_and_leaves_nothing() {
    let v = Volume::new();
    let m = SqliteMeta::open(&v.url).await.unwrap();
    let two_sizes = Batch {
        slice_refs: vec![(10, 1000), (10, 999)],
        ..Batch::default()
    };
    assert!(matches!(
        m.load_batch(&two_sizes).await,
        Err(MetaError::InvalidArgument(_))
    ));
    meta_api::testkit::corrupt::a_batch_with_slice_0_is_refused(&m).await;
    let [first, _] = batches();
    let mut zero = first.clone();
    zero.edges
        .push(edge(ROOT_INO, b"zero", 0, FileType::Regular));
    assert!(matches!(
        m.load_batch(&zero).await,
        Err(MetaError::InvalidArgument(_))
    ));
    let mut twice = first.clone();
    twice.edges.push(twice.edges[0].clone());
    assert!(matches!(m.load_batch(&twice).await, Err(MetaError::Exists)));
    // Each failed batch rolled back whole.
    assert!(m.is_empty().await.unwrap());

    m.load_batch(&first).await.unwrap();
    meta_api::testkit::corrupt::a_link_without_its_node_is_refused(&m, end()).await;
}
