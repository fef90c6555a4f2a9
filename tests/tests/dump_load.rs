//! Dump and load: a volume moves between engines (SQLite → Redis → TKV → SQLite) with its
//! tree, chunk records, xattrs, ACLs, quotas and counters identical, its files read back
//! and fsck clean; juicefs loads our dump and we load juicefs's; bad dumps are refused
//! with a precise error and leave no volume behind.

use std::os::unix::ffi::OsStrExt;

use meta_api::acl::{AclEntry, Rule, UNSET};
use meta_api::dump::{dump, load, DumpOptions};
use meta_api::quota::QuotaKind;
use meta_api::{Context, FileType, Format, MetaError, ROOT_INO};
use tessera_tests::interop::MIB;
use tessera_tests::tree::pattern;
use tessera_tests::{flush_redis, redis_db_url, sqlite_url, Juicefs};
use vfs_core::upkeep::{FsckOptions, Progress};
use vfs_core::{FileSystem, VolumeBuilder};

/// Names that need escaping in a dump, and one that is not UTF-8.
const ODD_NAMES: &[&[u8]] = &[
    b"sp ace",
    b"per%cent",
    b"quo\"te",
    b"back\\slash",
    b"tab\tnl\n",
    b"\xff\xfe-bytes",
    "é✓".as_bytes(),
];

/// Makes a volume on `url` with every kind of record a dump carries; returns its format.
async fn populate(url: &str, bucket: &str) -> Format {
    let mut f = Format::new("dumpvol", "uuid-dump-load", "file", bucket);
    f.block_size = 64; // KiB: files span several blocks
    f.trash_days = 1;
    f.enable_acl = true;
    f.dir_stats = true;
    let format = VolumeBuilder::new(url).format(f).await.unwrap();
    let fs = FileSystem::new(VolumeBuilder::new(url).open().await.unwrap());
    let meta = fs.vfs().meta().clone();
    let root = Context::root();

    fs.create_dir_all("/docs/sub").await.unwrap();
    fs.create_dir_all("/other").await.unwrap();
    fs.create_dir("/empty").await.unwrap();
    fs.write("/docs/a.txt", pattern(1, 300 * 1024 + 5))
        .await
        .unwrap();
    // A copy shares a's slices: their references must survive the moves.
    fs.copy("/docs/a.txt", "/docs/copy.txt").await.unwrap();
    // A file with two chunks, the first a hole.
    let sparse = fs.create("/docs/sparse").await.unwrap();
    sparse
        .write_at(b"tail", 64 * MIB as u64 + 10)
        .await
        .unwrap();
    sparse.sync_all().await.unwrap();
    drop(sparse);
    fs.hard_link("/docs/a.txt", "/docs/a.link").await.unwrap();
    fs.hard_link("/docs/a.txt", "/other/a2").await.unwrap();
    fs.symlink("a.txt", "/docs/ln").await.unwrap();
    fs.symlink("../odd target%", "/other/ln2").await.unwrap();
    let docs = meta.lookup(&root, ROOT_INO, b"docs").await.unwrap().ino;
    for (i, name) in ODD_NAMES.iter().enumerate() {
        let p = std::path::Path::new(std::ffi::OsStr::from_bytes(b"/other"))
            .join(std::ffi::OsStr::from_bytes(name));
        fs.write(&p, pattern(10 + i as u64, 100 + i)).await.unwrap();
    }
    meta.mknod(&root, docs, b"fifo", FileType::Fifo, 0o600, 0)
        .await
        .unwrap();
    let a = meta.lookup(&root, docs, b"a.txt").await.unwrap().ino;
    meta.setxattr(&root, a, b"user.bin", b"\x00\x01%\"\xff", 0)
        .await
        .unwrap();
    meta.setxattr(&root, docs, b"user.note", b"hello", 0)
        .await
        .unwrap();
    let rule = Rule {
        owner: 6,
        group: 4,
        mask: 4,
        other: 0,
        named_users: vec![AclEntry { id: 1000, perm: 4 }],
        named_groups: vec![],
    };
    meta.setxattr(&root, a, b"system.posix_acl_access", &rule.to_xattr(), 0)
        .await
        .unwrap();
    let default = Rule {
        owner: 7,
        group: 5,
        mask: UNSET,
        other: 5,
        named_users: vec![],
        named_groups: vec![],
    };
    meta.setxattr(
        &root,
        docs,
        b"system.posix_acl_default",
        &default.to_xattr(),
        0,
    )
    .await
    .unwrap();
    meta.set_quota(QuotaKind::Dir, docs, (1 << 30, 1000), None)
        .await
        .unwrap();
    meta.set_quota(QuotaKind::User, 0, (1 << 40, 100_000), None)
        .await
        .unwrap();
    // A deep chain of directories.
    let mut deep = String::from("/deep");
    for _ in 0..120 {
        deep.push_str("/d");
    }
    fs.create_dir_all(&deep).await.unwrap();
    fs.write(format!("{deep}/leaf"), b"leaf".to_vec())
        .await
        .unwrap();
    // Something in the trash.
    fs.write("/gone.txt", pattern(3, 70_000)).await.unwrap();
    fs.remove_file("/gone.txt").await.unwrap();
    fs.close().await.unwrap();
    format
}

async fn dump_text(url: &str) -> String {
    let meta = vfs_core::connect_meta(url).await.unwrap();
    let mut out = Vec::new();
    dump(&*meta, &mut out, &DumpOptions::default())
        .await
        .unwrap();
    String::from_utf8(out).unwrap()
}

async fn load_text(url: &str, text: &str) -> meta_api::dump::LoadSummary {
    let meta = vfs_core::connect_meta(url).await.unwrap();
    load(&*meta, std::io::Cursor::new(text.as_bytes().to_vec()))
        .await
        .unwrap()
}

/// Reads the files back and runs fsck over the whole volume.
async fn check_volume(url: &str) {
    let fs = FileSystem::new(VolumeBuilder::new(url).open().await.unwrap());
    assert_eq!(
        fs.read("/docs/a.txt").await.unwrap(),
        pattern(1, 300 * 1024 + 5)
    );
    assert_eq!(
        fs.read("/docs/copy.txt").await.unwrap(),
        pattern(1, 300 * 1024 + 5)
    );
    assert_eq!(
        fs.read("/other/a2").await.unwrap(),
        pattern(1, 300 * 1024 + 5)
    );
    let sparse = fs.read("/docs/sparse").await.unwrap();
    assert_eq!(sparse.len(), 64 * MIB + 14);
    assert_eq!(&sparse[64 * MIB + 10..], b"tail");
    assert!(sparse[..64 * MIB + 10].iter().all(|&b| b == 0));
    for (i, name) in ODD_NAMES.iter().enumerate() {
        let p = std::path::Path::new("/other").join(std::ffi::OsStr::from_bytes(name));
        assert_eq!(
            fs.read(&p).await.unwrap(),
            pattern(10 + i as u64, 100 + i),
            "{p:?}"
        );
    }
    assert_eq!(
        fs.read_link("/docs/ln").await.unwrap(),
        std::path::Path::new("a.txt")
    );
    let meta = fs.vfs().meta().clone();
    let a = fs.metadata("/docs/a.txt").await.unwrap();
    assert_eq!(a.nlink(), 3);
    let xattr = meta.getxattr(a.ino(), b"user.bin").await.unwrap();
    assert_eq!(xattr, b"\x00\x01%\"\xff");
    let report = fs
        .vfs()
        .fsck(
            &FsckOptions {
                path: None,
                recursive: true,
                repair: false,
                sync_dir_stat: false,
            },
            (ROOT_INO, "/".into()),
            &Progress::default(),
        )
        .await
        .unwrap();
    assert!(report.is_clean(), "fsck after load: {report:?}");
    fs.close().await.unwrap();
}

/// Fails at the first line where two dumps differ, showing only that line.
fn assert_same_dump(got: &str, want: &str, what: &str) {
    for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
        assert_eq!(g, w, "{what}: line {} differs", i + 1);
    }
    assert_eq!(
        got.lines().count(),
        want.lines().count(),
        "{what}: lengths differ"
    );
}

/// Fails at the first place where two JSON values differ, naming its path.
fn assert_same_json(got: &serde_json::Value, want: &serde_json::Value, what: &str) {
    fn diff(a: &serde_json::Value, b: &serde_json::Value, path: &str) -> Option<String> {
        use serde_json::Value::Object;
        match (a, b) {
            (Object(x), Object(y)) => {
                // Each key once: a key of both sides is compared once, not once per side
                // (that would be 2^depth on a deep tree).
                for k in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                    let p = format!("{path}/{k}");
                    match (x.get(k), y.get(k)) {
                        (Some(u), Some(v)) => {
                            if let Some(d) = diff(u, v, &p) {
                                return Some(d);
                            }
                        }
                        (u, v) => return Some(format!("{p}: {u:?} vs {v:?}")),
                    }
                }
                None
            }
            _ if a == b => None,
            _ => Some(format!("{path}: {a} vs {b}")),
        }
    }
    if let Some(d) = diff(got, want, "") {
        panic!("{what}: {d}");
    }
}

/// Parses a dump as one JSON value (deeper than serde_json's default limit).
fn parse(text: &str) -> serde_json::Value {
    use serde::Deserialize;
    let mut de = serde_json::Deserializer::from_str(text);
    de.disable_recursion_limit();
    serde_json::Value::deserialize(&mut de).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_moves_between_engines_identical() {
    let Some(redis) = redis_db_url(230) else {
        return;
    };
    flush_redis(&redis);
    let dir = tempfile::tempdir().unwrap();
    let bucket = format!("{}/bucket/", dir.path().display());
    let first = sqlite_url(&dir.path().join("first.db"));
    populate(&first, &bucket).await;
    let original = dump_text(&first).await;
    assert!(original.contains("\"Trash\""), "the dump has the trash");
    assert!(original.contains("per%25cent") && original.contains("%FF%FE-bytes"));

    let tkv = format!("tkv-mem://dump-load-{}", std::process::id());
    let last = sqlite_url(&dir.path().join("last.db"));
    let chain = [first.as_str(), redis.as_str(), tkv.as_str(), last.as_str()];
    for hop in chain.windows(2) {
        let summary = load_text(hop[1], &dump_text(hop[0]).await).await;
        assert!(summary.inodes > 130, "{summary:?}");
        let what = format!("the dump after {} → {}", hop[0], hop[1]);
        assert_same_dump(&dump_text(hop[1]).await, &original, &what);
    }
    // Opening a volume makes a session (nextSession moves): check them after the moves.
    for url in &chain[1..] {
        check_volume(url).await;
    }
    flush_redis(&redis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn juicefs_loads_our_dump_and_we_load_juicefs_dump() {
    let Some(jfs) = Juicefs::from_env() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let bucket = format!("{}/bucket/", dir.path().display());
    let ours = sqlite_url(&dir.path().join("ours.db"));
    populate(&ours, &bucket).await;
    let our_dump = dump_text(&ours).await;
    let file = dir.path().join("ours.json");
    std::fs::write(&file, &our_dump).unwrap();

    // juicefs loads it, checks it, and dumps it again.
    let theirs = sqlite_url(&dir.path().join("theirs.db"));
    jfs.run(&["load", &theirs, file.to_str().unwrap()], &[]);
    jfs.fsck(&theirs);
    let jfs_file = dir.path().join("theirs.json");
    jfs.run(&["dump", &theirs, jfs_file.to_str().unwrap()], &[]);
    let jfs_dump = std::fs::read_to_string(&jfs_file).unwrap();
    let ours_v: serde_json::Value = parse(&our_dump);
    let mut theirs_v: serde_json::Value = parse(&jfs_dump);
    // A newer juicefs adds settings of its own (Tiers): compare the ones we write.
    if let (Some(t), Some(o)) = (
        theirs_v["Setting"].as_object_mut(),
        ours_v["Setting"].as_object(),
    ) {
        t.retain(|k, _| o.contains_key(k));
    }
    for key in ["FSTree", "Trash", "Quotas", "UserQuotas", "Setting"] {
        assert_same_json(
            &theirs_v[key],
            &ours_v[key],
            &format!("juicefs's dump of our dump: {key}"),
        );
    }

    // We load juicefs's dump: the same tree, the files read back, and juicefs's fsck agrees.
    let again = sqlite_url(&dir.path().join("again.db"));
    load_text(&again, &jfs_dump).await;
    let mut again_v: serde_json::Value = parse(&dump_text(&again).await);
    // juicefs's own settings came along (we keep settings we do not know).
    if let (Some(t), Some(o)) = (
        again_v["Setting"].as_object_mut(),
        ours_v["Setting"].as_object(),
    ) {
        t.retain(|k, _| o.contains_key(k));
    }
    for key in ["FSTree", "Trash", "Quotas", "UserQuotas", "Setting"] {
        assert_same_json(
            &again_v[key],
            &ours_v[key],
            &format!("our load of juicefs's dump: {key}"),
        );
    }
    check_volume(&again).await;
    jfs.fsck(&again);
}

#[tokio::test]
async fn bad_dumps_are_refused_and_leave_no_volume() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = format!("{}/bucket/", dir.path().display());
    let src = sqlite_url(&dir.path().join("src.db"));
    VolumeBuilder::new(&src)
        .format(Format::new("badvol", "uuid-bad", "file", &bucket))
        .await
        .unwrap();
    let fs = FileSystem::new(VolumeBuilder::new(&src).open().await.unwrap());
    fs.create_dir_all("/a/b").await.unwrap();
    fs.write("/a/b/f", b"data".to_vec()).await.unwrap();
    fs.close().await.unwrap();
    let good = dump_text(&src).await;

    // Into an engine that holds a volume: refused, nothing written.
    let meta = vfs_core::connect_meta(&src).await.unwrap();
    let err = load(&*meta, std::io::Cursor::new(good.clone().into_bytes()))
        .await
        .unwrap_err();
    assert!(matches!(err, MetaError::Exists), "{err}");

    let cases: Vec<(&str, String)> = vec![
        ("cut short", good[..good.len() * 2 / 3].to_string()),
        (
            "a name with a slash",
            good.replace("\"f\": {", "\"x/y\": {"),
        ),
        (
            "an unknown type",
            good.replacen("\"type\":\"regular\"", "\"type\":\"door\"", 1),
        ),
        (
            "no counters",
            good.replacen("\"Counters\"", "\"Kounters\"", 1),
        ),
        ("not JSON", "hello".to_string()),
    ];
    for (i, (what, text)) in cases.into_iter().enumerate() {
        let url = sqlite_url(&dir.path().join(format!("bad{i}.db")));
        let meta = vfs_core::connect_meta(&url).await.unwrap();
        let err = load(&*meta, std::io::Cursor::new(text.into_bytes()))
            .await
            .unwrap_err();
        assert!(matches!(err, MetaError::Corrupt(_)), "{what}: {err}");
        // No setting was written: there is no volume to open.
        assert!(
            matches!(meta.load().await, Err(MetaError::NotFormatted)),
            "{what}"
        );
    }
}
