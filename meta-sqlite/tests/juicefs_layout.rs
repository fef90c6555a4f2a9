//! What SqliteMeta stores, row by row, against what JuiceFS 1.4 stores: the schema, the
//! rows `format` writes, and the encodings of nodes, entries, chunks, counters and sessions.
//! The expectations were captured from `juicefs format sqlite3://…` of juicefs 1.4.2.

#![allow(clippy::unwrap_used)] // Helpers of tests: a failure is the test's failure.

#[path = "support/volume.rs"]
mod support;

use meta_api::{
    Context, FileType, MetaEngine, Slice, Timestamp, XattrFlags, INODE_BATCH, ROOT_INO,
    SLICE_ID_BATCH, TRASH_INO,
};
use meta_sqlite::SqliteMeta;
use rusqlite::Connection;
use support::{int, test_format, Volume};

/// `sqlite_master` of a volume formatted by juicefs 1.4.2 (type, name, sql).
const JUICEFS_SCHEMA: &[(&str, &str, Option<&str>)] = &[
    ("index", "IDX_jfs_chunk_ref_refs", Some("CREATE INDEX `IDX_jfs_chunk_ref_refs` ON `jfs_chunk_ref` (`refs`)")),
    ("index", "IDX_jfs_edge_inode", Some("CREATE INDEX `IDX_jfs_edge_inode` ON `jfs_edge` (`inode`)")),
    ("index", "UQE_jfs_chunk_chunk", Some("CREATE UNIQUE INDEX `UQE_jfs_chunk_chunk` ON `jfs_chunk` (`inode`,`indx`)")),
    ("index", "UQE_jfs_edge_edge", Some("CREATE UNIQUE INDEX `UQE_jfs_edge_edge` ON `jfs_edge` (`parent`,`name`)")),
    ("index", "UQE_jfs_flock_flock", Some("CREATE UNIQUE INDEX `UQE_jfs_flock_flock` ON `jfs_flock` (`inode`,`sid`,`owner`)")),
    ("index", "UQE_jfs_plock_plock", Some("CREATE UNIQUE INDEX `UQE_jfs_plock_plock` ON `jfs_plock` (`inode`,`sid`,`owner`)")),
    ("index", "UQE_jfs_sustained_sustained", Some("CREATE UNIQUE INDEX `UQE_jfs_sustained_sustained` ON `jfs_sustained` (`sid`,`inode`)")),
    ("index", "UQE_jfs_xattr_name", Some("CREATE UNIQUE INDEX `UQE_jfs_xattr_name` ON `jfs_xattr` (`inode`,`name`)")),
    ("index", "sqlite_autoindex_jfs_counter_1", None),
    ("index", "sqlite_autoindex_jfs_setting_1", None),
    ("index", "sqlite_autoindex_jfs_user_group_quota_1", None),
    ("table", "jfs_acl", Some("CREATE TABLE `jfs_acl` (`id` INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, `owner` INTEGER NULL, `group` INTEGER NULL, `mask` INTEGER NULL, `other` INTEGER NULL, `named_users` BLOB NULL, `named_groups` BLOB NULL)")),
    ("table", "jfs_change_log", Some("CREATE TABLE `jfs_change_log` (`id` INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, `entry` TEXT NOT NULL)")),
    ("table", "jfs_chunk", Some("CREATE TABLE `jfs_chunk` (`id` INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, `inode` INTEGER NOT NULL, `indx` INTEGER NOT NULL, `slices` BLOB NOT NULL)")),
    ("table", "jfs_chunk_ref", Some("CREATE TABLE `jfs_chunk_ref` (`chunkid` INTEGER PRIMARY KEY NOT NULL, `size` INTEGER NOT NULL, `refs` INTEGER NOT NULL)")),
    ("table", "jfs_counter", Some("CREATE TABLE `jfs_counter` (`name` TEXT PRIMARY KEY NOT NULL, `value` INTEGER NOT NULL)")),
    ("table", "jfs_delegation_token", Some("CREATE TABLE `jfs_delegation_token` (`id` INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, `token` BLOB NULL)")),
    ("table", "jfs_delfile", Some("CREATE TABLE `jfs_delfile` (`inode` INTEGER PRIMARY KEY NOT NULL, `length` INTEGER NOT NULL, `expire` INTEGER NOT NULL)")),
    ("table", "jfs_delslices", Some("CREATE TABLE `jfs_delslices` (`chunkid` INTEGER PRIMARY KEY NOT NULL, `deleted` INTEGER NOT NULL, `slices` BLOB NOT NULL)")),
    ("table", "jfs_detached_node", Some("CREATE TABLE `jfs_detached_node` (`inode` INTEGER PRIMARY KEY NOT NULL, `added` INTEGER NOT NULL)")),
    ("table", "jfs_dir_quota", Some("CREATE TABLE `jfs_dir_quota` (`inode` INTEGER PRIMARY KEY NOT NULL, `max_space` INTEGER NOT NULL, `max_inodes` INTEGER NOT NULL, `used_space` INTEGER NOT NULL, `used_inodes` INTEGER NOT NULL)")),
    ("table", "jfs_dir_stats", Some("CREATE TABLE `jfs_dir_stats` (`inode` INTEGER PRIMARY KEY NOT NULL, `data_length` INTEGER NOT NULL, `used_space` INTEGER NOT NULL, `used_inodes` INTEGER NOT NULL)")),
    ("table", "jfs_edge", Some("CREATE TABLE `jfs_edge` (`id` INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, `parent` INTEGER NOT NULL, `name` BLOB NOT NULL, `inode` INTEGER NOT NULL, `type` INTEGER NOT NULL)")),
    ("table", "jfs_flock", Some("CREATE TABLE `jfs_flock` (`id` INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, `inode` INTEGER NOT NULL, `sid` INTEGER NOT NULL, `owner` INTEGER NOT NULL, `ltype` INTEGER NOT NULL)")),
    ("table", "jfs_node", Some("CREATE TABLE `jfs_node` (`inode` INTEGER PRIMARY KEY NOT NULL, `type` INTEGER NOT NULL, `flags` INTEGER NOT NULL, `mode` INTEGER NOT NULL, `uid` INTEGER NOT NULL, `gid` INTEGER NOT NULL, `atime` INTEGER NOT NULL, `mtime` INTEGER NOT NULL, `ctime` INTEGER NOT NULL, `atimensec` INTEGER DEFAULT 0 NOT NULL, `mtimensec` INTEGER DEFAULT 0 NOT NULL, `ctimensec` INTEGER DEFAULT 0 NOT NULL, `nlink` INTEGER NOT NULL, `length` INTEGER NOT NULL, `rdev` INTEGER NULL, `parent` INTEGER NULL, `access_acl_id` INTEGER NULL, `default_acl_id` INTEGER NULL, `tier_id` INTEGER NULL)")),
    ("table", "jfs_plock", Some("CREATE TABLE `jfs_plock` (`id` INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, `inode` INTEGER NOT NULL, `sid` INTEGER NOT NULL, `owner` INTEGER NOT NULL, `records` BLOB NOT NULL)")),
    ("table", "jfs_session2", Some("CREATE TABLE `jfs_session2` (`sid` INTEGER PRIMARY KEY NOT NULL, `expire` INTEGER NOT NULL, `info` BLOB NULL)")),
    ("table", "jfs_setting", Some("CREATE TABLE `jfs_setting` (`name` TEXT PRIMARY KEY NOT NULL, `value` TEXT NOT NULL)")),
    ("table", "jfs_sustained", Some("CREATE TABLE `jfs_sustained` (`id` INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, `sid` INTEGER NOT NULL, `inode` INTEGER NOT NULL)")),
    ("table", "jfs_symlink", Some("CREATE TABLE `jfs_symlink` (`inode` INTEGER PRIMARY KEY NOT NULL, `target` BLOB NOT NULL)")),
    ("table", "jfs_user_group_quota", Some("CREATE TABLE `jfs_user_group_quota` (`qtype` INTEGER NOT NULL, `qkey` INTEGER NOT NULL, `max_space` INTEGER NOT NULL, `max_inodes` INTEGER NOT NULL, `used_space` INTEGER NOT NULL, `used_inodes` INTEGER NOT NULL, PRIMARY KEY ( `qtype`,`qkey` ))")),
    ("table", "jfs_xattr", Some("CREATE TABLE `jfs_xattr` (`id` INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, `inode` INTEGER NOT NULL, `name` TEXT NOT NULL, `value` BLOB NOT NULL)")),
    ("table", "sqlite_sequence", Some("CREATE TABLE sqlite_sequence(name,seq)")),
];

/// The settings row as juicefs 1.4.2 writes it (Go's `json.MarshalIndent` with no indent).
const JUICEFS_SETTING: &str = "{\n\"Name\": \"jvol\",\n\"UUID\": \"65ff0312-76e9-4bb8-96de-350f2ae54605\",\n\"Storage\": \"file\",\n\"Tiers\": {\n\"0\": {\n\"ID\": 0,\n\"StorageClass\": \"\",\n\"Tag\": \"\"\n}\n},\n\"Bucket\": \"/tmp/jb/\",\n\"BlockSize\": 4096,\n\"Compression\": \"none\",\n\"EncryptAlgo\": \"aes256gcm-rsa\",\n\"TrashDays\": 0,\n\"MetaVersion\": 1,\n\"MinClientVersion\": \"1.1.0-A\",\n\"DirStats\": true,\n\"EnableACL\": false\n}";

#[tokio::test]
async fn init_creates_the_juicefs_schema() {
    let v = Volume::formatted(&test_format()).await;
    let raw = v.raw();
    let got: Vec<(String, String, Option<String>)> = raw
        .prepare("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let want: Vec<(String, String, Option<String>)> = JUICEFS_SCHEMA
        .iter()
        .map(|(t, n, s)| (t.to_string(), n.to_string(), s.map(str::to_string)))
        .collect();
    assert_eq!(got, want);
    // Formatting again with force keeps the schema as it is.
    let m = SqliteMeta::open(&v.url).await.unwrap();
    m.init(&test_format(), true).await.unwrap();
    assert_eq!(int(&raw, "SELECT count(*) FROM sqlite_master"), 33);
}

#[tokio::test]
async fn init_writes_the_rows_juicefs_format_writes() {
    let before = Timestamp::now();
    let v = Volume::formatted(&test_format()).await;
    let raw = v.raw();
    let counters: Vec<(String, i64)> = raw
        .prepare("SELECT name, value FROM jfs_counter ORDER BY name")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let mut want = vec![
        ("nextChunk".to_string(), 1),
        ("nextCleanupSlices".to_string(), 0),
        ("nextInode".to_string(), 2),
        ("nextSession".to_string(), 0),
        ("totalInodes".to_string(), 0),
        ("usedSpace".to_string(), 0),
    ];
    want.sort();
    assert_eq!(counters, want);
    let root: Vec<(Vec<i64>, i64, i64)> = raw
        .prepare(
            "SELECT inode, type, flags, mode, uid, gid, nlink, length, rdev, parent, \
             access_acl_id, default_acl_id, tier_id, atime, atimensec FROM jfs_node",
        )
        .unwrap()
        .query_map([], |r| {
            let cols = (0..13).map(|i| r.get(i)).collect::<rusqlite::Result<_>>()?;
            Ok((cols, r.get(13)?, r.get(14)?))
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(root.len(), 1, "only the root; no trash with trash days 0");
    let (cols, atime_us, atime_ns) = &root[0];
    let (atime_us, atime_ns) = (*atime_us, *atime_ns);
    assert_eq!(*cols, vec![1, 2, 0, 0o777, 0, 0, 2, 4096, 0, 1, 0, 0, 0]);
    assert!(
        atime_us / 1_000_000 >= before.sec - 1,
        "atime is in microseconds"
    );
    assert!(
        (0..1000).contains(&atime_ns),
        "atimensec keeps the nanoseconds left over"
    );
    let json: String = raw
        .query_row(
            "SELECT value FROM jfs_setting WHERE name = 'format'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(meta_api::Format::from_json(&json).unwrap(), test_format());
    assert_eq!(int(&raw, "SELECT count(*) FROM jfs_edge"), 0);
}

#[tokio::test]
async fn trash_directory_exists_when_the_trash_is_on() {
    let mut f = test_format();
    f.trash_days = 1;
    let v = Volume::formatted(&f).await;
    let raw = v.raw();
    let (mode, parent, nlink): (i64, i64, i64) = raw
        .query_row(
            "SELECT mode, parent, nlink FROM jfs_node WHERE inode = ?",
            rusqlite::params![TRASH_INO as i64],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((mode, parent, nlink), (0o555, 1, 2));
    let m = v.client().await;
    let root = m.getattr(ROOT_INO).await.unwrap();
    assert_eq!(root.nlink, 2, "the trash is not an entry of the root");
    let trash = m
        .lookup(&Context::root(), ROOT_INO, b".trash")
        .await
        .unwrap();
    assert_eq!(trash.ino, TRASH_INO);
    assert!(matches!(
        m.mkdir(&Context::root(), ROOT_INO, b".trash", 0o755).await,
        Err(meta_api::MetaError::NotPermitted)
    ));
}

#[tokio::test]
async fn entries_nodes_and_ids_are_stored_as_juicefs_does() {
    let v = Volume::formatted(&test_format()).await;
    let m = v.client().await;
    let root = Context::root();
    let d = m.mkdir(&root, ROOT_INO, b"dir", 0o755).await.unwrap();
    assert_eq!(d.ino, 2, "the first inode handed out is nextInode");
    let f = m
        .mknod(&root, d.ino, b"\xfffile", FileType::Regular, 0o640, 0)
        .await
        .unwrap();
    m.symlink(&root, d.ino, b"ln", b"target/path")
        .await
        .unwrap();
    let raw = v.raw();
    assert_eq!(
        int(
            &raw,
            "SELECT value FROM jfs_counter WHERE name = 'nextInode'"
        ),
        2 + INODE_BATCH as i64,
        "a batch of inodes is reserved; the counter holds the next unreserved one"
    );
    let (typ, name_type, name): (i64, String, Vec<u8>) = raw
        .query_row(
            "SELECT type, typeof(name), name FROM jfs_edge WHERE inode = ?",
            rusqlite::params![f.ino as i64],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (typ, name_type.as_str(), name.as_slice()),
        (1, "blob", &b"\xfffile"[..])
    );
    let (mode, parent, nlink, length, mtime, mtimensec): (i64, i64, i64, i64, i64, i64) = raw
        .query_row(
            "SELECT mode, parent, nlink, length, mtime, mtimensec FROM jfs_node WHERE inode = ?",
            rusqlite::params![f.ino as i64],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            },
        )
        .unwrap();
    assert_eq!((mode, parent, nlink, length), (0o640, d.ino as i64, 1, 0));
    let t = f.attr.mtime;
    assert_eq!(mtime, t.sec * 1_000_000 + i64::from(t.nsec) / 1000);
    assert_eq!(mtimensec, i64::from(t.nsec % 1000));
    let dir_nlink = int(&raw, "SELECT nlink FROM jfs_node WHERE inode = 2");
    assert_eq!(dir_nlink, 2);
    assert_eq!(int(&raw, "SELECT nlink FROM jfs_node WHERE inode = 1"), 3);
    let target: Vec<u8> = raw
        .query_row("SELECT target FROM jfs_symlink", [], |r| r.get(0))
        .unwrap();
    assert_eq!(target, b"target/path");
    assert_eq!(
        int(&raw, "SELECT count(*) FROM jfs_dir_stats WHERE inode = 2"),
        1,
        "JuiceFS gives every new directory a statistics row"
    );
    assert_eq!(
        int(
            &raw,
            "SELECT value FROM jfs_counter WHERE name = 'totalInodes'"
        ),
        3
    );
    assert_eq!(
        int(
            &raw,
            "SELECT value FROM jfs_counter WHERE name = 'usedSpace'"
        ),
        3 * 4096
    );
    // xattr names are TEXT, as the juicefs client writes them.
    m.setxattr(&root, f.ino, b"user.k", b"\x00v", XattrFlags::CREATE)
        .await
        .unwrap();
    let (ty, value): (String, Vec<u8>) = raw
        .query_row(
            "SELECT typeof(name), value FROM jfs_xattr WHERE name = 'user.k'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((ty.as_str(), value.as_slice()), ("text", &b"\x00v"[..]));
}

#[tokio::test]
async fn chunks_hold_concatenated_slice_records_and_slices_are_counted() {
    let v = Volume::formatted(&test_format()).await;
    let m = v.client().await;
    let f = m
        .mknod(
            &Context::root(),
            ROOT_INO,
            b"f",
            FileType::Regular,
            0o644,
            0,
        )
        .await
        .unwrap();
    let id = m.new_slice_id().await.unwrap();
    assert_eq!(id, 1, "the first slice id is nextChunk");
    let a = Slice {
        pos: 0,
        id,
        size: 5000,
        off: 0,
        len: 5000,
    };
    let b = Slice {
        pos: 100,
        id: m.new_slice_id().await.unwrap(),
        size: 10,
        off: 2,
        len: 8,
    };
    m.write_slice(f.ino, 3, a, Timestamp::now()).await.unwrap();
    m.write_slice(f.ino, 3, b, Timestamp::new(1_000, 5))
        .await
        .unwrap();
    let raw = v.raw();
    // Appending with `||` leaves TEXT, as in JuiceFS: read the bytes whatever the type.
    let slices: Vec<u8> = raw
        .query_row(
            "SELECT slices FROM jfs_chunk WHERE inode = ? AND indx = 3",
            rusqlite::params![f.ino as i64],
            |r| Ok(r.get_ref(0)?.as_bytes().unwrap().to_vec()),
        )
        .unwrap();
    let mut want = a.encode().to_vec();
    want.extend_from_slice(&b.encode());
    assert_eq!(
        slices, want,
        "24-byte big-endian records, appended in write order"
    );
    let refs: Vec<(i64, i64, i64)> = raw
        .prepare("SELECT chunkid, size, refs FROM jfs_chunk_ref ORDER BY chunkid")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(refs, vec![(1, 5000, 1), (2, 10, 1)]);
    assert_eq!(
        int(
            &raw,
            "SELECT value FROM jfs_counter WHERE name = 'nextChunk'"
        ),
        1 + SLICE_ID_BATCH as i64
    );
    let length = 3 * meta_api::CHUNK_SIZE + 5000;
    assert_eq!(m.getattr(f.ino).await.unwrap().length, length);
    assert_eq!(
        m.getattr(f.ino).await.unwrap().mtime,
        Timestamp::new(1_000, 5)
    );
    let used = int(
        &raw,
        "SELECT value FROM jfs_counter WHERE name = 'usedSpace'",
    );
    assert_eq!(used as u64, length.div_ceil(4096) * 4096);

    // A copy shares the slice: one more reference, no new id.
    let g = m
        .mknod(
            &Context::root(),
            ROOT_INO,
            b"g",
            FileType::Regular,
            0o644,
            0,
        )
        .await
        .unwrap();
    let off = 3 * meta_api::CHUNK_SIZE;
    m.copy_file_range(&Context::root(), f.ino, off, g.ino, 0, 50)
        .await
        .unwrap();
    assert_eq!(
        int(&raw, "SELECT refs FROM jfs_chunk_ref WHERE chunkid = 1"),
        2
    );
}

#[tokio::test]
async fn sessions_and_the_deletion_queue_use_juicefs_rows() {
    let v = Volume::formatted(&test_format()).await;
    let m = v.client().await;
    let raw = v.raw();
    let (sid, expire, info): (i64, i64, Vec<u8>) = raw
        .query_row("SELECT sid, expire, info FROM jfs_session2", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(sid as u64, m.session_id());
    assert_eq!(
        int(
            &raw,
            "SELECT value FROM jfs_counter WHERE name = 'nextSession'"
        ),
        sid
    );
    assert!(
        expire > Timestamp::now().sec,
        "expire is a Unix time in seconds"
    );
    let info: serde_json::Value = serde_json::from_slice(&info).unwrap();
    assert_eq!(info["HostName"], "testhost");
    assert_eq!(info["ProcessID"], 4242);

    let root = Context::root();
    let gone = m
        .mknod(&root, ROOT_INO, b"gone", FileType::Regular, 0o644, 0)
        .await
        .unwrap();
    let s = Slice {
        pos: 0,
        id: m.new_slice_id().await.unwrap(),
        size: 10,
        off: 0,
        len: 10,
    };
    m.write_slice(gone.ino, 0, s, Timestamp::now())
        .await
        .unwrap();
    m.unlink(&root, ROOT_INO, b"gone").await.unwrap();
    let (length, when): (i64, i64) = raw
        .query_row(
            "SELECT length, expire FROM jfs_delfile WHERE inode = ?",
            rusqlite::params![gone.ino as i64],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(length, 10);
    assert!(
        (when - Timestamp::now().sec).abs() <= 2,
        "the time of deletion"
    );
    assert_eq!(
        int(
            &raw,
            &format!("SELECT count(*) FROM jfs_node WHERE inode = {}", gone.ino)
        ),
        0,
        "JuiceFS deletes the node at once; the chunks wait for the purge"
    );
    assert_eq!(
        m.purge_file(gone.ino).await.unwrap(),
        vec![Slice { len: 10, ..s }]
    );
    assert_eq!(int(&raw, "SELECT count(*) FROM jfs_chunk"), 0);
    assert_eq!(
        int(&raw, "SELECT count(*) FROM jfs_chunk_ref WHERE refs > 0"),
        0
    );
    assert_eq!(
        int(
            &raw,
            &format!("SELECT refs FROM jfs_chunk_ref WHERE chunkid = {}", s.id)
        ),
        0,
        "JuiceFS keeps the freed slice's row at 0 references (pending) until its objects go"
    );
    assert!(m.forget_slice(s.id, s.size).await.unwrap());
    assert_eq!(int(&raw, "SELECT count(*) FROM jfs_chunk_ref"), 0);
    assert_eq!(int(&raw, "SELECT count(*) FROM jfs_delfile"), 0);

    let held = m
        .mknod(&root, ROOT_INO, b"held", FileType::Regular, 0o644, 0)
        .await
        .unwrap();
    m.open(&root, held.ino, libc::O_RDONLY).await.unwrap();
    m.unlink(&root, ROOT_INO, b"held").await.unwrap();
    let rows: Vec<(i64, i64)> = raw
        .prepare("SELECT sid, inode FROM jfs_sustained")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(rows, vec![(sid, held.ino as i64)]);
    assert_eq!(
        int(
            &raw,
            &format!("SELECT nlink FROM jfs_node WHERE inode = {}", held.ino)
        ),
        0
    );
    m.close(held.ino).await.unwrap();
    assert_eq!(int(&raw, "SELECT count(*) FROM jfs_sustained"), 0);
    assert_eq!(int(&raw, "SELECT count(*) FROM jfs_delfile"), 1);
    m.close_session().await.unwrap();
    assert_eq!(int(&raw, "SELECT count(*) FROM jfs_session2"), 0);
}

#[tokio::test]
async fn opens_a_volume_written_the_way_juicefs_writes_it() {
    let v = Volume::new();
    let raw = v.raw();
    for kind in ["table", "index"] {
        for (_, _, sql) in JUICEFS_SCHEMA.iter().filter(|(t, _, _)| *t == kind) {
            match sql {
                Some(sql) if !sql.contains("sqlite_sequence") => {
                    raw.execute(sql, []).unwrap();
                }
                _ => {}
            }
        }
    }
    let stmts = [
        "INSERT INTO jfs_setting VALUES ('format', ?)",
        "INSERT INTO jfs_counter VALUES ('nextInode', 102), ('nextChunk', 1001), \
         ('nextSession', 3), ('usedSpace', 8192), ('totalInodes', 2), ('nextCleanupSlices', 0)",
        // Times split by Go's truncating division, one of them before 1970.
        "INSERT INTO jfs_node VALUES (1, 2, 0, 511, 0, 0, 1795247991096047, 1795247991096047, \
         1795247991096047, 596, 596, 596, 3, 4096, 0, 1, 0, 0, 0)",
        "INSERT INTO jfs_node VALUES (2, 1, 0, 420, 1000, 1000, -1500000, 1700000000000001, \
         1700000000000001, -1, 2, 2, 1, 11, 0, 1, 0, 0, 0)",
        "INSERT INTO jfs_node VALUES (3, 2, 0, 493, 0, 0, 1, 1, 1, 0, 0, 0, 2, 4096, NULL, 1, \
         NULL, NULL, NULL)",
        "INSERT INTO jfs_edge (parent, name, inode, type) VALUES (1, X'68656c6c6f', 2, 1), \
         (1, X'64', 3, 2)",
        "INSERT INTO jfs_chunk (inode, indx, slices) VALUES (2, 0, ?)",
        "INSERT INTO jfs_chunk_ref VALUES (1000, 11, 1)",
        "INSERT INTO jfs_xattr (inode, name, value) VALUES (2, 'user.x', X'7879')",
    ];
    let rec = Slice {
        pos: 0,
        id: 1000,
        size: 11,
        off: 0,
        len: 11,
    };
    for s in stmts {
        if s.contains("jfs_setting") {
            raw.execute(s, rusqlite::params![JUICEFS_SETTING])
        } else if s.contains("jfs_chunk (") {
            raw.execute(s, rusqlite::params![rec.encode().to_vec()])
        } else {
            raw.execute(s, [])
        }
        .unwrap();
    }
    let m = v.client().await;
    let f = m.load().await.unwrap();
    assert_eq!(
        (f.name.as_str(), f.block_size, f.dir_stats),
        ("jvol", 4096, true)
    );
    assert!(
        f.extra.contains_key("Tiers"),
        "fields this client does not know survive"
    );
    let root = Context::root();
    let hello = m.lookup(&root, ROOT_INO, b"hello").await.unwrap();
    assert_eq!(hello.ino, 2);
    assert_eq!(hello.attr.atime, Timestamp::new(-2, 499_999_999));
    assert_eq!(hello.attr.mtime, Timestamp::new(1_700_000_000, 1_002));
    assert_eq!(m.read_chunk(2, 0).await.unwrap(), vec![rec]);
    assert_eq!(m.getxattr(2, b"user.x").await.unwrap(), b"xy");
    let d = m.lookup(&root, ROOT_INO, b"d").await.unwrap();
    assert_eq!(
        (d.attr.rdev, d.attr.access_acl),
        (0, 0),
        "NULL columns read as 0"
    );
    let new = m
        .mknod(&root, d.ino, b"n", FileType::Regular, 0o644, 0)
        .await
        .unwrap();
    assert_eq!(
        new.ino, 102,
        "new inodes continue after what juicefs handed out"
    );
    assert_eq!(m.new_slice_id().await.unwrap(), 1001);
    assert!(m.session_id() > 3, "session ids continue too");
    // DirStats is on: the directory statistics JuiceFS keeps follow our changes.
    raw.execute("INSERT INTO jfs_dir_stats VALUES (1, 11, 8192, 2)", [])
        .unwrap();
    let g = m
        .mknod(&root, ROOT_INO, b"g", FileType::Regular, 0o644, 0)
        .await
        .unwrap();
    assert_eq!(root_stats(&raw), (11, 12288, 3));
    let s = Slice {
        pos: 0,
        id: m.new_slice_id().await.unwrap(),
        size: 100,
        off: 0,
        len: 100,
    };
    m.write_slice(g.ino, 0, s, Timestamp::now()).await.unwrap();
    assert_eq!(
        root_stats(&raw),
        (111, 12288, 3),
        "100 bytes fit the block charged already"
    );
    m.unlink(&root, ROOT_INO, b"hello").await.unwrap();
    assert_eq!(root_stats(&raw), (100, 8192, 2));
}

/// The JuiceFS directory statistics of the root: (data length, space, inodes).
fn root_stats(raw: &Connection) -> (i64, i64, i64) {
    raw.query_row(
        "SELECT data_length, used_space, used_inodes FROM jfs_dir_stats WHERE inode = 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .unwrap()
}

/// Every `jfs_dir_stats` row against a recount of its directory's entries, as JuiceFS's
/// `calcDirStat` counts them; returns how many rows there are.
fn check_dir_stats(raw: &Connection) -> usize {
    let rows: Vec<(i64, i64, i64, i64, i64, i64, i64)> = raw
        .prepare(
            "SELECT s.inode, s.data_length, s.used_space, s.used_inodes, \
         (SELECT COALESCE(SUM(CASE WHEN n.type = 1 THEN n.length ELSE 0 END), 0) \
          FROM jfs_edge e JOIN jfs_node n ON n.inode = e.inode WHERE e.parent = s.inode), \
         (SELECT COALESCE(SUM(CASE WHEN n.type = 1 AND n.length > 0 \
          THEN (n.length + 4095) / 4096 * 4096 ELSE 4096 END), 0) \
          FROM jfs_edge e JOIN jfs_node n ON n.inode = e.inode WHERE e.parent = s.inode), \
         (SELECT COUNT(*) FROM jfs_edge e WHERE e.parent = s.inode) FROM jfs_dir_stats s",
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
        .unwrap();
    for (ino, len, space, inodes, want_len, want_space, want_inodes) in &rows {
        assert_eq!(
            (len, space, inodes),
            (want_len, want_space, want_inodes),
            "statistics of directory {ino}"
        );
    }
    rows.len()
}

#[tokio::test]
async fn directory_statistics_stay_exact_when_the_volume_keeps_them() {
    let mut f = test_format();
    f.dir_stats = true;
    let v = Volume::formatted(&f).await;
    let m = v.client().await;
    let raw = v.raw();
    let root = Context::root();
    let d = m.mkdir(&root, ROOT_INO, b"d", 0o755).await.unwrap();
    assert_eq!(check_dir_stats(&raw), 2, "the root's row was computed");
    let file = m
        .mknod(&root, d.ino, b"f", FileType::Regular, 0o644, 0)
        .await
        .unwrap();
    let s = Slice {
        pos: 0,
        id: m.new_slice_id().await.unwrap(),
        size: 5000,
        off: 0,
        len: 5000,
    };
    m.write_slice(file.ino, 0, s, Timestamp::now())
        .await
        .unwrap();
    check_dir_stats(&raw);
    m.truncate(&root, file.ino, 70_000).await.unwrap();
    check_dir_stats(&raw);
    m.fallocate(&root, file.ino, meta_api::FallocMode(0), 0, 100_000)
        .await
        .unwrap();
    check_dir_stats(&raw);
    let g = m
        .mknod(&root, ROOT_INO, b"g", FileType::Regular, 0o644, 0)
        .await
        .unwrap();
    m.copy_file_range(&root, file.ino, 0, g.ino, 0, 9000)
        .await
        .unwrap();
    check_dir_stats(&raw);
    m.link(&root, g.ino, d.ino, b"g2").await.unwrap();
    m.symlink(&root, d.ino, b"ln", b"f").await.unwrap();
    check_dir_stats(&raw);
    // Lost rows are computed again at the next change.
    raw.execute("DELETE FROM jfs_dir_stats", []).unwrap();
    m.rename(
        &root,
        d.ino,
        b"f",
        ROOT_INO,
        b"f",
        meta_api::RenameFlags::empty(),
    )
    .await
    .unwrap();
    assert_eq!(check_dir_stats(&raw), 2);
    m.rename(
        &root,
        ROOT_INO,
        b"g",
        d.ino,
        b"ln",
        meta_api::RenameFlags::empty(),
    )
    .await
    .unwrap();
    check_dir_stats(&raw);
    m.rename(
        &root,
        ROOT_INO,
        b"f",
        d.ino,
        b"g2",
        meta_api::RenameFlags(meta_api::RenameFlags::EXCHANGE),
    )
    .await
    .unwrap();
    check_dir_stats(&raw);
    let sub = m.mkdir(&root, d.ino, b"sub", 0o755).await.unwrap();
    m.setattr(&root, g.ino, &meta_api::SetAttr::new().size(1))
        .await
        .unwrap();
    m.unlink(&root, d.ino, b"ln").await.unwrap();
    m.rmdir(&root, d.ino, b"sub").await.unwrap();
    assert!(m.getattr(sub.ino).await.is_err());
    assert_eq!(check_dir_stats(&raw), 2);
}
