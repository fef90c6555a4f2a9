//! Metadata interop with the real juicefs client on SQLite: volumes formatted by juicefs open
//! in meta-sqlite, entries meta-sqlite makes show up in `juicefs dump` exactly, `juicefs fsck`
//! is clean, and entries juicefs makes are seen by meta-sqlite.

use meta_api::{Context, FileType, MetaEngine, SessionInfo, XattrFlags, ROOT_INO};
use meta_sqlite::SqliteMeta;
use serde_json::Value;
use tessera_tests::{sqlite_url, Juicefs};

async fn client(url: &str) -> SqliteMeta {
    let m = SqliteMeta::open(url)
        .await
        .expect("open juicefs-formatted volume");
    m.new_session(&SessionInfo::default())
        .await
        .expect("session");
    m
}

fn child<'a>(dir: &'a Value, name: &str) -> &'a Value {
    dir.get("entries")
        .and_then(|e| e.get(name))
        .unwrap_or_else(|| panic!("dump has no entry {name:?} in {dir}"))
}

fn attr_u64(node: &Value, field: &str) -> u64 {
    node["attr"][field]
        .as_u64()
        .unwrap_or_else(|| panic!("dump attr {field} missing in {node}"))
}

#[tokio::test]
async fn meta_sqlite_entries_match_juicefs_dump_and_fsck() {
    let Some(jfs) = Juicefs::from_env() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("meta.db"));
    jfs.format_file_volume(&url, "interop", &dir.path().join("bucket"), &[]);

    let m = client(&url).await;
    let format = m.load().await.unwrap();
    assert_eq!(format.name, "interop");
    assert_eq!(format.storage, "file");
    assert_eq!(format.block_size, 4096);
    assert!(m
        .readdir(&Context::root(), ROOT_INO, None, 100, false)
        .await
        .unwrap()
        .is_empty());

    let root = Context::root();
    let user = Context::new(1000, 1000);
    let d = m.mkdir(&root, ROOT_INO, b"docs", 0o755).await.unwrap();
    m.setattr(&root, d.ino, &meta_api::SetAttr::new().uid(1000).gid(1000))
        .await
        .unwrap();
    let sub = m.mkdir(&user, d.ino, b"sub", 0o700).await.unwrap();
    let f = m
        .mknod(&user, d.ino, b"empty.txt", FileType::Regular, 0o640, 0)
        .await
        .unwrap();
    m.symlink(&user, d.ino, b"link", b"empty.txt")
        .await
        .unwrap();
    m.link(&user, f.ino, sub.ino, b"hard").await.unwrap();
    m.setxattr(&user, f.ino, b"user.color", b"blue", XattrFlags::CREATE)
        .await
        .unwrap();
    m.mknod(&root, ROOT_INO, b"fifo", FileType::Fifo, 0o600, 0)
        .await
        .unwrap();
    m.close_session().await.unwrap();

    let dump = jfs.dump(&url);
    let tree = &dump["FSTree"];
    assert_eq!(attr_u64(tree, "nlink"), 3, "root: . .. and docs");
    let docs = child(tree, "docs");
    assert_eq!(docs["attr"]["type"], "directory");
    assert_eq!(attr_u64(docs, "mode"), 0o755);
    assert_eq!(attr_u64(docs, "uid"), 1000);
    assert_eq!(attr_u64(docs, "nlink"), 3);
    let empty = child(docs, "empty.txt");
    assert_eq!(empty["attr"]["type"], "regular");
    assert_eq!(attr_u64(empty, "mode"), 0o640);
    assert_eq!(attr_u64(empty, "uid"), 1000);
    assert_eq!(attr_u64(empty, "gid"), 1000);
    assert_eq!(attr_u64(empty, "nlink"), 2);
    assert_eq!(attr_u64(empty, "length"), 0);
    let xattrs = empty["xattrs"].as_array().expect("xattrs in dump");
    assert_eq!(xattrs.len(), 1);
    assert_eq!(xattrs[0]["name"], "user.color");
    assert_eq!(xattrs[0]["value"], "blue");
    let link = child(docs, "link");
    assert_eq!(link["attr"]["type"], "symlink");
    assert_eq!(link["symlink"], "empty.txt");
    let sub_node = child(docs, "sub");
    assert_eq!(attr_u64(sub_node, "mode"), 0o700);
    let hard = child(sub_node, "hard");
    assert_eq!(attr_u64(hard, "inode"), f.ino);
    assert_eq!(child(tree, "fifo")["attr"]["type"], "fifo");
    jfs.fsck(&url);
}

#[tokio::test]
async fn juicefs_sync_tree_is_seen_by_meta_sqlite() {
    let Some(jfs) = Juicefs::from_env() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("meta.db"));
    jfs.format_file_volume(&url, "fromjfs", &dir.path().join("bucket"), &[]);
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("a/b")).unwrap();
    std::fs::write(src.join("a/b/hello.txt"), b"hello juicefs").unwrap();
    std::fs::write(src.join("top.bin"), vec![7u8; 300_000]).unwrap();
    std::os::unix::fs::symlink("a/b/hello.txt", src.join("ln")).unwrap();
    jfs.sync(&url, &format!("{}/", src.display()), "jfs://VOL/", &[]);

    let m = client(&url).await;
    let ctx = Context::root();
    let a = m.lookup(&ctx, ROOT_INO, b"a").await.unwrap();
    assert_eq!(a.attr.typ, FileType::Directory);
    let b = m.lookup(&ctx, a.ino, b"b").await.unwrap();
    let hello = m.lookup(&ctx, b.ino, b"hello.txt").await.unwrap();
    assert_eq!(hello.attr.typ, FileType::Regular);
    assert_eq!(hello.attr.length, 13);
    let top = m.lookup(&ctx, ROOT_INO, b"top.bin").await.unwrap();
    assert_eq!(top.attr.length, 300_000);
    let slices = m.read_chunk(top.ino, 0).await.unwrap();
    let covered: u64 = meta_api::overlay::build(&slices)
        .iter()
        .filter(|s| s.id != 0)
        .map(|s| u64::from(s.len))
        .sum();
    assert_eq!(covered, 300_000);
    let ln = m.lookup(&ctx, ROOT_INO, b"ln").await.unwrap();
    assert_eq!(ln.attr.typ, FileType::Symlink);
    assert_eq!(m.readlink(ln.ino).await.unwrap(), b"a/b/hello.txt");
    let names: Vec<Vec<u8>> = m
        .readdir(&ctx, ROOT_INO, None, 100, true)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(
        names,
        vec![b"a".to_vec(), b"ln".to_vec(), b"top.bin".to_vec()]
    );
    // Our new ids must not collide with what juicefs handed out.
    let n = m
        .mknod(&ctx, ROOT_INO, b"ours", FileType::Regular, 0o644, 0)
        .await
        .unwrap();
    assert!(n.ino > top.ino.max(hello.ino).max(ln.ino));
    let id = m.new_slice_id().await.unwrap();
    assert!(
        slices.iter().all(|s| s.id < id),
        "slice ids must not be reused"
    );
    m.close_session().await.unwrap();
    jfs.fsck(&url);
}
