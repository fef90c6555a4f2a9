//! The engine on the in-process store: the exact bytes it writes (JuiceFS's TKV layout),
//! batching, concurrency between clients, limits and URLs.

#[path = "support/harness.rs"]
mod harness;

use std::collections::BTreeMap;
use std::sync::Arc;

use harness::{format, mem_volume, session_info, PREFIX};
use meta_api::encoding::{decode_attr, encode_entry};
use meta_api::{Context, FileType, MetaEngine, MetaError, Slice, Timestamp, CHUNK_SIZE, ROOT_INO};
use meta_fdb::{KvTxn, MemKv, TkvMeta};

const T0: i64 = 1_700_000_000;

fn fixed_clock() -> meta_fdb::Clock {
    Arc::new(|| Timestamp::new(T0, 0))
}

/// The store's pairs with the volume prefix stripped.
fn dump(kv: &MemKv) -> BTreeMap<Vec<u8>, Vec<u8>> {
    kv.entries()
        .into_iter()
        .map(|(k, v)| {
            assert!(k.starts_with(PREFIX), "key outside the volume: {k:?}");
            (k[PREFIX.len()..].to_vec(), v)
        })
        .collect()
}

/// A key as JuiceFS's `fmtKey` builds it: `Ino` little-endian, other numbers big-endian.
fn ino_key(ino: u64, tag: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = vec![b'A'];
    k.extend_from_slice(&ino.to_le_bytes());
    k.push(tag);
    k.extend_from_slice(rest);
    k
}

fn counter(v: i64) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

#[tokio::test]
async fn writes_juicefs_tkv_bytes() {
    let kv = MemKv::new();
    let m = TkvMeta::new(kv.clone(), PREFIX).with_clock(fixed_clock());
    m.init(&format("enc"), false).await.unwrap();
    let d = dump(&kv);
    assert_eq!(d[&b"CnextInode"[..]], counter(2));
    assert_eq!(d[&b"CnextChunk"[..]], counter(1));
    let root = &d[&ino_key(1, b'I', b"")];
    assert_eq!(root.len(), 71);
    assert_eq!(
        &root[1..3],
        &[0x21, 0xff],
        "directory type in the top bits of 0o777"
    );
    assert_eq!(
        &root[47..51],
        &[0, 0, 0, 2],
        "nlink where JuiceFS's LoadMeta patches it"
    );
    assert_eq!(
        &root[63..71],
        &1u64.to_be_bytes(),
        "root's parent is itself"
    );
    let setting: serde_json::Value = serde_json::from_slice(&d[&b"setting"[..]]).unwrap();
    assert_eq!(setting["Name"], "enc");

    let sid = m.new_session(&session_info()).await.unwrap();
    assert_eq!(sid, 1);
    let d = dump(&kv);
    assert_eq!(d[&b"CnextSession"[..]], counter(1));
    let mut se = b"SE".to_vec();
    se.extend_from_slice(&1u64.to_be_bytes());
    assert_eq!(
        d[&se],
        (T0 + meta_api::SESSION_TTL_SECS).to_be_bytes().to_vec()
    );
    let mut si = b"SI".to_vec();
    si.extend_from_slice(&1u64.to_be_bytes());
    let info: serde_json::Value = serde_json::from_slice(&d[&si]).unwrap();
    assert_eq!(info["MountPoint"], "/test");

    let ctx = Context::root();
    let dir = m.mkdir(&ctx, ROOT_INO, b"d", 0o755).await.unwrap();
    assert_eq!(dir.ino, 2, "the first inode of the first batch");
    let d = dump(&kv);
    assert_eq!(d[&b"CnextInode"[..]], counter(2 + 1024));
    assert_eq!(
        d[&ino_key(1, b'D', b"d")],
        encode_entry(FileType::Directory, 2).to_vec()
    );
    assert_eq!(decode_attr(&d[&ino_key(1, b'I', b"")]).unwrap().nlink, 3);
    let mut u = b"U".to_vec();
    u.extend_from_slice(&2u64.to_le_bytes());
    assert_eq!(d[&u], vec![0u8; 24]);
    assert_eq!(d[&b"CusedSpace"[..]], counter(4096));
    assert_eq!(d[&b"CtotalInodes"[..]], counter(1));

    let f = m
        .mknod(&ctx, 2, b"f", FileType::Regular, 0o644, 0)
        .await
        .unwrap()
        .ino;
    let id = m.new_slice_id().await.unwrap();
    assert_eq!(id, 1, "the first slice id of the first batch");
    let s = Slice {
        pos: 0,
        id,
        size: 5000,
        off: 0,
        len: 5000,
    };
    m.write_slice(f, 0, s, Timestamp::new(T0, 0)).await.unwrap();
    let d = dump(&kv);
    assert_eq!(d[&b"CnextChunk"[..]], counter(1 + 4096));
    assert_eq!(
        d[&ino_key(f, b'C', &0u32.to_be_bytes())],
        s.encode().to_vec()
    );
    assert_eq!(d[&b"CusedSpace"[..]], counter(4096 + 8192));

    m.setxattr(&ctx, f, b"user.k", b"v", 0).await.unwrap();
    m.symlink(&ctx, 2, b"l", b"f").await.unwrap();
    let d = dump(&kv);
    assert_eq!(d[&ino_key(f, b'X', b"user.k")], b"v".to_vec());
    let l = m.lookup(&ctx, 2, b"l").await.unwrap().ino;
    assert_eq!(d[&ino_key(l, b'S', b"")], b"f".to_vec());

    // A hard link turns the parent into per-directory counters.
    m.link(&ctx, f, ROOT_INO, b"g").await.unwrap();
    let d = dump(&kv);
    assert_eq!(d[&ino_key(f, b'P', &2u64.to_le_bytes())], counter(1));
    assert_eq!(d[&ino_key(f, b'P', &1u64.to_le_bytes())], counter(1));
    assert_eq!(decode_attr(&d[&ino_key(f, b'I', b"")]).unwrap().parent, 0);

    // The last unlink queues the file: D{ino}{length} holding the deletion time.
    m.unlink(&ctx, ROOT_INO, b"g").await.unwrap();
    m.unlink(&ctx, 2, b"f").await.unwrap();
    let d = dump(&kv);
    let mut del = b"D".to_vec();
    del.extend_from_slice(&f.to_le_bytes());
    del.extend_from_slice(&5000u64.to_be_bytes());
    assert_eq!(d[&del], T0.to_be_bytes().to_vec());
    assert!(!d.contains_key(&ino_key(f, b'I', b"")));
    assert!(!d.contains_key(&ino_key(f, b'X', b"user.k")));
    assert!(!d.keys().any(|k| k.starts_with(&ino_key(f, b'P', b""))));

    let freed = m.purge_file(f).await.unwrap();
    assert_eq!(freed, vec![s]);
    let d = dump(&kv);
    assert!(!d.contains_key(&del));
    assert!(!d.keys().any(|k| k.starts_with(&ino_key(f, b'C', b""))));
}

#[tokio::test]
async fn sustained_and_open_records_use_session_keys() {
    let vol = mem_volume().await.unwrap();
    let a = vol.client().await.unwrap();
    let b = vol.client().await.unwrap();
    let ctx = Context::root();
    let f = a
        .mknod(&ctx, ROOT_INO, b"f", FileType::Regular, 0o644, 0)
        .await
        .unwrap()
        .ino;
    a.setxattr(&ctx, f, b"user.k", b"v", 0).await.unwrap();
    a.open(&ctx, f, libc::O_RDWR).await.unwrap();
    let sid = a.session_id().unwrap();
    let kv = a.kv().clone();
    let mut opener = b"OI".to_vec();
    opener.extend_from_slice(&f.to_le_bytes());
    opener.extend_from_slice(&sid.to_be_bytes());
    assert!(dump(&kv).contains_key(&opener));

    b.unlink(&ctx, ROOT_INO, b"f").await.unwrap();
    let mut ss = b"SS".to_vec();
    ss.extend_from_slice(&sid.to_be_bytes());
    ss.extend_from_slice(&f.to_le_bytes());
    assert_eq!(dump(&kv)[&ss], vec![1]);
    assert_eq!(a.getattr(f).await.unwrap().nlink, 0);
    assert_eq!(a.getxattr(f, b"user.k").await.unwrap(), b"v".to_vec());

    a.close(f).await.unwrap();
    let d = dump(&kv);
    assert!(!d.contains_key(&ss));
    assert!(!d.contains_key(&opener));
    assert!(!d.contains_key(&ino_key(f, b'I', b"")));
    assert!(!d.contains_key(&ino_key(f, b'X', b"user.k")));
    assert_eq!(b.deleted_files(10).await.unwrap()[0].ino, f);
}

#[tokio::test]
async fn copied_slices_are_counted_and_freed_once() {
    let vol = mem_volume().await.unwrap();
    let m = vol.client().await.unwrap();
    let ctx = Context::root();
    let src = m
        .mknod(&ctx, ROOT_INO, b"src", FileType::Regular, 0o644, 0)
        .await
        .unwrap()
        .ino;
    let dst = m
        .mknod(&ctx, ROOT_INO, b"dst", FileType::Regular, 0o644, 0)
        .await
        .unwrap()
        .ino;
    let id = m.new_slice_id().await.unwrap();
    let s = Slice {
        pos: 0,
        id,
        size: 1000,
        off: 0,
        len: 1000,
    };
    m.write_slice(src, 0, s, Timestamp::now()).await.unwrap();
    // Lands across the chunk boundary of the destination: two references.
    let at = CHUNK_SIZE - 400;
    assert_eq!(
        m.copy_file_range(&ctx, src, 0, dst, at, 1000)
            .await
            .unwrap(),
        1000
    );
    let mut kref = b"K".to_vec();
    kref.extend_from_slice(&id.to_be_bytes());
    kref.extend_from_slice(&1000u32.to_be_bytes());
    assert_eq!(dump(m.kv())[&kref], counter(2));
    assert_eq!(m.getattr(dst).await.unwrap().length, at + 1000);
    let tail = m.read_chunk(dst, 1).await.unwrap();
    assert_eq!(
        tail,
        vec![Slice {
            pos: 0,
            id,
            size: 1000,
            off: 400,
            len: 600
        }]
    );

    m.unlink(&ctx, ROOT_INO, b"src").await.unwrap();
    assert!(
        m.purge_file(src).await.unwrap().is_empty(),
        "still referenced"
    );
    assert_eq!(dump(m.kv())[&kref], counter(1));
    m.unlink(&ctx, ROOT_INO, b"dst").await.unwrap();
    let freed = m.purge_file(dst).await.unwrap();
    assert_eq!(freed.iter().map(|s| s.id).collect::<Vec<_>>(), vec![id]);
    assert_eq!(
        dump(m.kv())[&kref],
        counter(-1),
        "JuiceFS keeps the freed slice's key at -1 (pending) until its objects go"
    );
    assert!(m.forget_slice(id, 1000).await.unwrap());
    assert!(!dump(m.kv()).contains_key(&kref));
}

#[tokio::test]
async fn purge_of_a_file_with_many_chunks_works_in_batches() {
    let vol = mem_volume().await.unwrap();
    let m = vol.client().await.unwrap();
    let ctx = Context::root();
    let f = m
        .mknod(&ctx, ROOT_INO, b"big", FileType::Regular, 0o644, 0)
        .await
        .unwrap()
        .ino;
    let chunks = meta_fdb::PURGE_BATCH as u32 * 2 + 3;
    let mut ids = Vec::new();
    for indx in 0..chunks {
        let id = m.new_slice_id().await.unwrap();
        ids.push(id);
        let s = Slice {
            pos: 0,
            id,
            size: 10,
            off: 0,
            len: 10,
        };
        m.write_slice(f, indx, s, Timestamp::now()).await.unwrap();
    }
    m.unlink(&ctx, ROOT_INO, b"big").await.unwrap();
    let mut freed: Vec<u64> = m
        .purge_file(f)
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    freed.sort_unstable();
    assert_eq!(freed, ids);
    assert!(m.deleted_files(10).await.unwrap().is_empty());
    assert!(matches!(m.purge_file(f).await, Err(MetaError::NotFound)));
    let d = dump(m.kv());
    assert!(!d.keys().any(|k| k.starts_with(&ino_key(f, b'C', b""))));
}

#[tokio::test]
async fn reaping_a_session_with_many_sustained_inodes() {
    let vol = mem_volume().await.unwrap();
    let a = vol.client().await.unwrap();
    let b = vol.client().await.unwrap();
    let ctx = Context::root();
    let mut files = Vec::new();
    for i in 0..300 {
        let name = format!("f{i}");
        let f = a
            .mknod(&ctx, ROOT_INO, name.as_bytes(), FileType::Regular, 0o644, 0)
            .await
            .unwrap()
            .ino;
        a.open(&ctx, f, libc::O_RDONLY).await.unwrap();
        b.unlink(&ctx, ROOT_INO, name.as_bytes()).await.unwrap();
        files.push(f);
    }
    let sessions = b.list_sessions().await.unwrap();
    let mine = sessions
        .iter()
        .find(|s| Some(s.sid) == a.session_id())
        .unwrap();
    assert_eq!(mine.sustained.len(), 300);
    assert!(b.deleted_files(1000).await.unwrap().is_empty());
    let tomorrow = Timestamp::new(Timestamp::now().sec + 86_400, 0);
    assert_eq!(b.reap_stale_sessions(tomorrow).await.unwrap(), 2);
    assert_eq!(b.deleted_files(1000).await.unwrap().len(), 300);
    let d = dump(b.kv());
    assert!(
        !d.keys()
            .any(|k| k.starts_with(b"SS") || k.starts_with(b"OI") || k.starts_with(b"OS")),
        "nothing of the reaped sessions is left"
    );
    assert_eq!(d[&b"CtotalInodes"[..]], counter(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_creating_in_one_directory() {
    let vol = mem_volume().await.unwrap();
    let ctx = Context::root();
    let dir = vol
        .client()
        .await
        .unwrap()
        .mkdir(&ctx, ROOT_INO, b"shared", 0o777)
        .await
        .unwrap()
        .ino;
    let mut tasks = Vec::new();
    for c in 0..4 {
        let m = vol.client().await.unwrap();
        tasks.push(tokio::spawn(async move {
            let ctx = Context::root();
            for i in 0..25 {
                let name = format!("c{c}-{i}");
                m.mkdir(&ctx, dir, name.as_bytes(), 0o755).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let m = vol.client().await.unwrap();
    let names = m.readdir(&ctx, dir, None, 1000, false).await.unwrap();
    assert_eq!(names.len(), 100);
    assert_eq!(m.getattr(dir).await.unwrap().nlink, 102);
    let mut inos: Vec<u64> = names.iter().map(|e| e.ino).collect();
    inos.sort_unstable();
    inos.dedup();
    assert_eq!(inos.len(), 100, "every client got its own inode numbers");
    assert_eq!(m.statfs().await.unwrap().used_inodes, 101);
}

#[tokio::test]
async fn capacity_and_inode_limits() {
    let kv = MemKv::new();
    let m = TkvMeta::new(kv.clone(), PREFIX);
    let mut f = format("limits");
    f.capacity = 3 * 4096;
    f.inodes = 2;
    m.init(&f, false).await.unwrap();
    m.new_session(&session_info()).await.unwrap();
    let ctx = Context::root();
    let a = m
        .mknod(&ctx, ROOT_INO, b"a", FileType::Regular, 0o644, 0)
        .await
        .unwrap()
        .ino;
    m.mknod(&ctx, ROOT_INO, b"b", FileType::Regular, 0o644, 0)
        .await
        .unwrap();
    assert!(matches!(
        m.mknod(&ctx, ROOT_INO, b"c", FileType::Regular, 0o644, 0)
            .await,
        Err(MetaError::NoSpace)
    ));
    assert!(matches!(
        m.truncate(&ctx, a, 4 * 4096).await,
        Err(MetaError::NoSpace)
    ));
    m.truncate(&ctx, a, 2 * 4096).await.unwrap();
    let st = m.statfs().await.unwrap();
    assert_eq!(st.total_space, 3 * 4096);
    assert_eq!(st.avail_space, 0);
    assert_eq!((st.used_inodes, st.avail_inodes), (2, 0));
}

#[tokio::test]
async fn urls_open_shared_volumes() {
    let a = meta_fdb::open("tkv-mem://engine-test-urls?prefix=v1").unwrap();
    a.init(&format("v1"), false).await.unwrap();
    a.new_session(&session_info()).await.unwrap();
    let ctx = Context::root();
    a.mkdir(&ctx, ROOT_INO, b"x", 0o755).await.unwrap();
    let b = meta_fdb::open("tkv-mem://engine-test-urls?prefix=v1").unwrap();
    assert_eq!(b.load().await.unwrap().name, "v1");
    assert!(b.lookup(&ctx, ROOT_INO, b"x").await.is_ok());
    // Another prefix in the same store is another volume.
    let c = meta_fdb::open("tkv-mem://engine-test-urls?prefix=v2").unwrap();
    assert!(matches!(c.load().await, Err(MetaError::NotFormatted)));
    let keys = MemKv::named("engine-test-urls").entries();
    assert!(keys.iter().all(|(k, _)| k.starts_with(b"v1\xfd")));
    assert_eq!(a.name(), "tkv-mem");
    assert!(matches!(
        meta_fdb::open("sqlite3:///x.db"),
        Err(MetaError::InvalidArgument(_))
    ));
    #[cfg(not(feature = "fdb"))]
    assert!(matches!(
        meta_fdb::open("fdb:///etc/foundationdb/fdb.cluster?prefix=v"),
        Err(MetaError::NotSupported(_))
    ));
    MemKv::forget("engine-test-urls");
}

#[tokio::test]
async fn reformat_rules() {
    let kv = MemKv::new();
    let m = TkvMeta::new(kv.clone(), PREFIX);
    let f = format("re");
    m.init(&f, false).await.unwrap();
    assert!(matches!(m.init(&f, false).await, Err(MetaError::Exists)));
    let mut g = f.clone();
    g.trash_days = 2;
    m.init(&g, true).await.unwrap();
    assert_eq!(m.load().await.unwrap().trash_days, 2);
    assert!(
        m.getattr(meta_api::TRASH_INO).await.is_ok(),
        "a volume with trash days has the trash directory"
    );
    let mut other = f.clone();
    other.uuid = "another".into();
    assert!(matches!(
        m.init(&other, true).await,
        Err(MetaError::InvalidArgument(_))
    ));
}

#[tokio::test]
async fn reaping_drops_the_locks_juicefs_clients_recorded() {
    let vol = mem_volume().await.unwrap();
    let a = vol.client().await.unwrap();
    let b = vol.client().await.unwrap();
    let (sa, sb) = (a.session_id().unwrap(), b.session_id().unwrap());
    let flock =
        |sid: u64, owner: u64| [&sid.to_be_bytes()[..], &owner.to_be_bytes(), b"R"].concat();
    let plock = |sid: u64| {
        [
            &sid.to_be_bytes()[..],
            &7u64.to_be_bytes(),
            &0u32.to_be_bytes(),
        ]
        .concat()
    };
    let kv = a.kv().clone();
    let keys = a.keys().clone();
    let t = kv.begin();
    t.set(&keys.flock(5), &[flock(sa, 1), flock(sb, 2)].concat());
    t.set(&keys.flock(6), &flock(sa, 3));
    t.set(&keys.plock(5), &[plock(sa), plock(sb)].concat());
    t.commit().unwrap();
    // Only A is stale: its heartbeat lies in the past, B's was just renewed.
    let until = Timestamp::new(Timestamp::now().sec + 3600, 0);
    let b = TkvMeta::new(kv.clone(), PREFIX).with_clock(Arc::new(move || until));
    b.new_session(&session_info()).await.unwrap();
    let t = kv.begin();
    t.set(&keys.session(sb), &(until.sec + 60).to_be_bytes());
    t.commit().unwrap();
    assert_eq!(b.reap_stale_sessions(until).await.unwrap(), 1);
    let d = dump(&kv);
    let f5 = keys.strip(&keys.flock(5)).to_vec();
    let f6 = keys.strip(&keys.flock(6)).to_vec();
    let p5 = keys.strip(&keys.plock(5)).to_vec();
    assert_eq!(d[&f5], flock(sb, 2));
    assert!(!d.contains_key(&f6));
    assert_eq!(d[&p5], plock(sb));
}

/// A chunk value holds at most 4,166 records on FoundationDB (100,000 bytes): the in-process
/// store refuses the 4,167th as a cluster would, and a compaction makes room again.
#[tokio::test]
async fn chunk_records_stop_at_foundationdbs_value_limit_until_compacted() {
    let vol = mem_volume().await.unwrap();
    let m = vol.client().await.unwrap();
    let ctx = Context::root();
    let f = m
        .mknod(&ctx, ROOT_INO, b"log", FileType::Regular, 0o644, 0)
        .await
        .unwrap()
        .ino;
    let append = |pos: u32| {
        let m = m.clone();
        async move {
            let id = m.new_slice_id().await?;
            let s = Slice {
                pos,
                id,
                size: 1,
                off: 0,
                len: 1,
            };
            m.write_slice(f, 0, s, Timestamp::now()).await
        }
    };
    let fits = meta_fdb::kv::mem::limits::VALUE_BYTES / meta_api::SLICE_BYTES;
    for pos in 0..fits as u32 {
        append(pos).await.unwrap();
    }
    let err = append(fits as u32).await.unwrap_err();
    assert!(
        matches!(
            err,
            MetaError::Backend {
                retryable: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(m.read_chunk(f, 0).await.unwrap().len(), fits);
    let records = m.read_chunk(f, 0).await.unwrap();
    let plan = meta_api::compact::plan(&records).unwrap();
    let id = m.new_slice_id().await.unwrap();
    let freed = m.compact_chunk(f, 0, &plan, id).await.unwrap().unwrap();
    assert_eq!(freed.len(), meta_api::compact::MAX_COMPACT_SLICES);
    append(fits as u32).await.unwrap();
    assert_eq!(
        m.read_chunk(f, 0).await.unwrap().len(),
        fits - meta_api::compact::MAX_COMPACT_SLICES + 2
    );
}

/// Writes a volume's keys directly ([`meta_api::testkit::corrupt`]).
struct Keys<'a>(&'a TkvMeta<MemKv>);

#[async_trait::async_trait]
impl meta_api::testkit::corrupt::Plant for Keys<'_> {
    async fn entry(&self, dir: u64, name: &[u8], ino: u64, typ: FileType) {
        let t = self.0.kv().begin();
        t.set(&self.0.keys().entry(dir, name), &encode_entry(typ, ino));
        t.commit().expect("commit");
    }
    async fn chunk(&self, ino: u64, indx: u32, records: &[Slice]) {
        let t = self.0.kv().begin();
        t.set(&self.0.keys().chunk(ino, indx), &Slice::encode_all(records));
        t.commit().expect("commit");
    }
}

/// Entry names no client can create and chunk records past their chunk or slice are
/// `Corrupt` when read, never passed on.
#[tokio::test]
async fn impossible_records_are_corrupt() {
    use meta_api::testkit::corrupt;
    let vol = mem_volume().await.unwrap();
    let m = vol.client().await.unwrap();
    corrupt::impossible_names_are_corrupt(&*m, &Keys(&m), &corrupt::impossible_names()).await;
    corrupt::impossible_chunk_records_are_corrupt(&*m, &Keys(&m)).await;
}
