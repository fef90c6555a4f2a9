//! The conformance suite every [`ChunkStore`] runs (feature `testkit`).
//!
//! ```no_run
//! # async fn demo() {
//! let store = chunkstore::MemStore::new();
//! chunkstore::testkit::run_all(&store).await;
//! # }
//! ```
//!
//! The suite works under a fresh prefix of its own (`testkit-{unique}/`), so it can run
//! against a shared bucket, and removes what it wrote when every check passed. A failed check
//! panics with a message naming the check, like an assertion in a test.

use std::collections::BTreeSet;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::future::join_all;

use crate::key::{slice_blocks, BlockKey};
use crate::{ChunkStore, ChunkStoreExt, ListPage, Result, StoreError};

/// How much work the suite does.
#[derive(Debug, Clone)]
pub struct Options {
    /// Objects written for the `list_all` check; above 1000 so that `list_all` needs more
    /// than one page of the default size.
    pub many_objects: usize,
    /// How many puts run at once in the concurrency checks and when writing many objects.
    pub concurrency: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            many_objects: 1005,
            concurrency: 32,
        }
    }
}

/// Runs every check with the default [`Options`].
pub async fn run_all(store: &dyn ChunkStore) {
    run_all_with(store, &Options::default()).await
}

/// Runs every check, each under its own sub-prefix of a fresh root prefix, then deletes
/// everything it wrote.
pub async fn run_all_with(store: &dyn ChunkStore, opts: &Options) {
    let root = unique_root();
    put_get_round_trip(store, &format!("{root}roundtrip/")).await;
    ranged_gets(store, &format!("{root}range/")).await;
    missing_objects(store, &format!("{root}missing/")).await;
    delete_is_idempotent(store, &format!("{root}delete/")).await;
    invalid_keys(store).await;
    empty_objects(store, &format!("{root}empty/")).await;
    large_objects(store, &format!("{root}large/")).await;
    head_sizes(store, &format!("{root}head/")).await;
    list_order_and_prefixes(store, &format!("{root}list/")).await;
    list_pagination(store, &format!("{root}pages/")).await;
    list_all_many(store, &format!("{root}many/"), opts).await;
    concurrent_distinct_puts(store, &format!("{root}conc/"), opts).await;
    same_key_twice(store, &format!("{root}twice/")).await;
    juicefs_layout(store, &format!("{root}vol/")).await;
    cleanup(store, &root).await;
}

fn unique_root() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "testkit-{nanos}-{}-{}/",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Unwraps a result the check needs, panicking with the check's context otherwise.
fn ok<T>(r: Result<T>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: unexpected error: {e} ({e:?})"),
    }
}

/// Deterministic bytes that neither repeat quickly nor compress to nothing: half noise,
/// half runs, so compressing decorators see realistic input.
pub fn pattern(seed: u64, len: usize) -> Bytes {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (out.len() / 512) % 2 == 0 {
            out.extend_from_slice(&x.to_le_bytes());
        } else {
            out.extend_from_slice(&[(x % 7) as u8; 8]);
        }
    }
    out.truncate(len);
    Bytes::from(out)
}

async fn keys_under(store: &dyn ChunkStore, prefix: &str) -> Vec<String> {
    ok(store.list_all(prefix).await, "list_all")
        .into_iter()
        .map(|o| o.key)
        .collect()
}

/// Put then get returns the same bytes; a second put of another key does not disturb it.
pub async fn put_get_round_trip(store: &dyn ChunkStore, p: &str) {
    let a = format!("{p}a");
    let b = format!("{p}sub/dir/b");
    let da = pattern(1, 1000);
    let db = pattern(2, 333);
    ok(store.put(&a, da.clone()).await, "put a");
    ok(store.put(&b, db.clone()).await, "put nested b");
    assert_eq!(ok(store.get(&a).await, "get a"), da, "round trip of {a}");
    assert_eq!(ok(store.get(&b).await, "get b"), db, "round trip of {b}");
    assert_eq!(ok(store.get_block(&a, 1000).await, "get_block"), da);
    assert!(
        matches!(store.get_block(&a, 999).await, Err(StoreError::Corrupt(_))),
        "get_block with the wrong expected length must be Corrupt"
    );
}

/// Ranges: middle, to the end, past the end, zero length, starting at the end.
pub async fn ranged_gets(store: &dyn ChunkStore, p: &str) {
    let k = format!("{p}obj");
    let d = pattern(3, 10_000);
    ok(store.put(&k, d.clone()).await, "put");
    let cases: [(u64, Option<u64>, std::ops::Range<usize>); 9] = [
        (0, None, 0..10_000),
        (0, Some(10_000), 0..10_000),
        (100, Some(50), 100..150),
        (9_990, None, 9_990..10_000),
        (9_990, Some(100), 9_990..10_000),
        (10_000, None, 10_000..10_000),
        (10_000, Some(5), 10_000..10_000),
        (20_000, Some(5), 10_000..10_000),
        (5, Some(0), 5..5),
    ];
    for (off, len, want) in cases {
        let got = ok(store.get_range(&k, off, len).await, "get_range");
        assert_eq!(got, d.slice(want.clone()), "get_range({off}, {len:?})");
    }
    let huge = ok(store.get_range(&k, 9_999, Some(u64::MAX)).await, "huge len");
    assert_eq!(huge, d.slice(9_999..), "a length reaching past u64 range");
}

/// Get, ranged get and head of a missing object are `NotFound`, also under a missing
/// directory and under an existing object's name.
pub async fn missing_objects(store: &dyn ChunkStore, p: &str) {
    let present = format!("{p}present");
    ok(store.put(&present, pattern(4, 10)).await, "put");
    for k in [
        format!("{p}absent"),
        format!("{p}no/such/dir/x"),
        format!("{p}presen"),
        format!("{p}present2"),
    ] {
        assert!(
            matches!(store.get(&k).await, Err(StoreError::NotFound(_))),
            "get {k}"
        );
        assert!(
            matches!(
                store.get_range(&k, 1, Some(2)).await,
                Err(StoreError::NotFound(_))
            ),
            "get_range {k}"
        );
        assert!(
            matches!(store.head(&k).await, Err(StoreError::NotFound(_))),
            "head {k}"
        );
    }
    // The "directory" of an object is not an object.
    let dir_key = p.trim_end_matches('/');
    assert!(
        matches!(store.head(dir_key).await, Err(StoreError::NotFound(_))),
        "head {dir_key}"
    );
}

/// Deleting works, twice, and on objects that never existed.
pub async fn delete_is_idempotent(store: &dyn ChunkStore, p: &str) {
    let k = format!("{p}x");
    let keep = format!("{p}xy");
    ok(store.put(&k, pattern(5, 100)).await, "put");
    ok(store.put(&keep, pattern(6, 100)).await, "put neighbour");
    ok(store.delete(&k).await, "delete");
    assert!(
        matches!(store.get(&k).await, Err(StoreError::NotFound(_))),
        "deleted object"
    );
    assert!(
        matches!(store.head(&k).await, Err(StoreError::NotFound(_))),
        "deleted head"
    );
    ok(store.delete(&k).await, "delete again");
    ok(
        store.delete(&format!("{p}never")).await,
        "delete never-existing",
    );
    ok(
        store.delete(&format!("{p}no/such/dir")).await,
        "delete under missing dir",
    );
    assert_eq!(keys_under(store, p).await, vec![keep.clone()]);
    assert_eq!(ok(store.get(&keep).await, "neighbour"), pattern(6, 100));
    // Put after delete brings the key back.
    ok(store.put(&k, pattern(7, 3)).await, "put after delete");
    assert_eq!(ok(store.get(&k).await, "get after re-put"), pattern(7, 3));
}

/// Malformed keys are `Invalid` for every operation, whatever the backend.
pub async fn invalid_keys(store: &dyn ChunkStore) {
    for k in ["", "/abs", "a//b", "a/../b", "a/./b", "trailing/", ".."] {
        let what = format!("key {k:?}");
        assert!(
            matches!(
                store.put(k, Bytes::from_static(b"x")).await,
                Err(StoreError::Invalid(_))
            ),
            "put {what}"
        );
        assert!(
            matches!(store.get(k).await, Err(StoreError::Invalid(_))),
            "get {what}"
        );
        assert!(
            matches!(store.head(k).await, Err(StoreError::Invalid(_))),
            "head {what}"
        );
        assert!(
            matches!(store.delete(k).await, Err(StoreError::Invalid(_))),
            "delete {what}"
        );
    }
}

/// Zero-byte objects exist, list and read back as empty.
pub async fn empty_objects(store: &dyn ChunkStore, p: &str) {
    let k = format!("{p}zero");
    ok(store.put(&k, Bytes::new()).await, "put empty");
    assert!(ok(store.get(&k).await, "get empty").is_empty());
    assert!(ok(store.get_range(&k, 0, Some(10)).await, "range of empty").is_empty());
    assert_eq!(ok(store.head(&k).await, "head empty").size, 0);
    let listed = ok(store.list_all(p).await, "list");
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].key.as_str(), listed[0].size), (k.as_str(), 0));
}

/// A full 4 MiB block (the default block size), read whole and in ranges.
pub async fn large_objects(store: &dyn ChunkStore, p: &str) {
    const SIZE: usize = 4 << 20;
    let k = format!("{p}{}", BlockKey::new(7, 0, SIZE as u32).to_key(false));
    let d = pattern(8, SIZE);
    ok(store.put(&k, d.clone()).await, "put 4 MiB");
    let got = ok(store.get(&k).await, "get 4 MiB");
    assert!(got == d, "4 MiB round trip differs");
    assert_eq!(ok(store.head(&k).await, "head 4 MiB").size, SIZE as u64);
    let mid = ok(store.get_range(&k, 3 << 20, Some(4096)).await, "range");
    assert!(
        mid == d.slice(3 << 20..(3 << 20) + 4096),
        "range of 4 MiB object differs"
    );
    let tail = ok(store.get_range(&k, SIZE as u64 - 10, None).await, "tail");
    assert_eq!(tail, d.slice(SIZE - 10..));
}

/// `head` reports the size `put` was given, and a plausible modification time.
pub async fn head_sizes(store: &dyn ChunkStore, p: &str) {
    for (i, n) in [1usize, 17, 4096, 65_537].into_iter().enumerate() {
        let k = format!("{p}h{i}");
        ok(store.put(&k, pattern(9 + i as u64, n)).await, "put");
        let m = ok(store.head(&k).await, "head");
        assert_eq!(m.key, k, "head key");
        assert_eq!(m.size, n as u64, "head size of {k}");
        assert!(m.mtime >= 0, "mtime is seconds since the epoch or 0");
    }
}

/// Keys whose byte order differs from a naive directory walk: `a-b` < `a.x` < `a/…` < `a0`.
fn tricky_keys(p: &str) -> Vec<String> {
    [
        "a-b", "a.x", "a/b", "a/b-/z", "a/b.", "a/b0", "a/b_/z", "a/bb/c", "a/c", "a0", "ab/x", "b",
    ]
    .iter()
    .map(|s| format!("{p}{s}"))
    .collect()
}

async fn put_all(store: &dyn ChunkStore, keys: &[String], concurrency: usize) {
    for chunk in keys.chunks(concurrency.max(1)) {
        let results = join_all(
            chunk
                .iter()
                .map(|k| store.put(k, Bytes::copy_from_slice(k.as_bytes()))),
        )
        .await;
        for r in results {
            ok(r, "put");
        }
    }
}

/// Listing returns keys in byte order, filtered by prefix (a directory or part of a name)
/// and by `start_after` (an existing key or not, inside or outside the prefix).
pub async fn list_order_and_prefixes(store: &dyn ChunkStore, p: &str) {
    let keys = tricky_keys(p);
    let mut shuffled = keys.clone();
    shuffled.reverse();
    put_all(store, &shuffled, 4).await;
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(sorted, keys, "the suite's own expectation is in byte order");

    let all = ok(store.list_all(p).await, "list_all");
    let listed: Vec<String> = all.iter().map(|o| o.key.clone()).collect();
    assert_eq!(listed, keys, "list in byte order");
    for o in &all {
        assert_eq!(o.size, o.key.len() as u64, "listed size of {}", o.key);
    }

    let expect = |f: &dyn Fn(&str) -> bool| -> Vec<String> {
        keys.iter().filter(|k| f(&k[p.len()..])).cloned().collect()
    };
    let cases: Vec<(String, Option<String>, Vec<String>)> = vec![
        (format!("{p}a"), None, expect(&|k| k.starts_with('a'))),
        (format!("{p}a/"), None, expect(&|k| k.starts_with("a/"))),
        (format!("{p}a/b"), None, expect(&|k| k.starts_with("a/b"))),
        (format!("{p}a/b_"), None, expect(&|k| k.starts_with("a/b_"))),
        (format!("{p}a/b/"), None, vec![]),
        (format!("{p}zzz"), None, vec![]),
        (format!("{p}a/bb/c"), None, expect(&|k| k == "a/bb/c")),
        (
            p.to_string(),
            Some(format!("{p}a.x")),
            expect(&|k| k > "a.x"),
        ),
        (
            p.to_string(),
            Some(format!("{p}a/b")),
            expect(&|k| k > "a/b"),
        ),
        (
            p.to_string(),
            Some(format!("{p}a/b1")),
            expect(&|k| k > "a/b1"),
        ),
        (p.to_string(), Some(format!("{p}a/")), expect(&|k| k > "a/")),
        (
            p.to_string(),
            Some(format!("{p}a/zz")),
            expect(&|k| k > "a/zz"),
        ),
        (
            format!("{p}a/"),
            Some(p.to_string()),
            expect(&|k| k.starts_with("a/")),
        ),
        (format!("{p}a/"), Some(format!("{p}b")), vec![]),
        (p.to_string(), Some(format!("{p}b")), vec![]),
    ];
    for (prefix, after, want) in cases {
        let page = ok(
            store.list_page(&prefix, after.as_deref(), 1000).await,
            "list_page",
        );
        let got: Vec<String> = page.objects.into_iter().map(|o| o.key).collect();
        assert_eq!(got, want, "list_page({prefix:?}, {after:?})");
        assert!(
            !page.truncated,
            "list_page({prefix:?}, {after:?}) truncated"
        );
    }
}

/// Paging with small limits visits every key once, in order, and ends.
pub async fn list_pagination(store: &dyn ChunkStore, p: &str) {
    let keys = tricky_keys(p);
    put_all(store, &keys, 8).await;
    for limit in [1usize, 2, 3, 5, 11, 12, 13] {
        let mut got: Vec<String> = Vec::new();
        let mut after: Option<String> = None;
        for round in 0.. {
            assert!(
                round <= keys.len() + 1,
                "pagination with limit {limit} does not end"
            );
            let page: ListPage = ok(
                store.list_page(p, after.as_deref(), limit).await,
                "list_page",
            );
            assert!(
                page.objects.len() <= limit,
                "page larger than limit {limit}"
            );
            if page.truncated {
                assert!(!page.objects.is_empty(), "truncated page with no objects");
            }
            got.extend(page.objects.iter().map(|o| o.key.clone()));
            after = got.last().cloned();
            if !page.truncated {
                break;
            }
        }
        assert_eq!(got, keys, "pages with limit {limit}");
    }
}

/// `list_all` gathers more than one default-sized page.
pub async fn list_all_many(store: &dyn ChunkStore, p: &str, opts: &Options) {
    let keys: Vec<String> = (0..opts.many_objects)
        .map(|i| format!("{p}{}/{i:05}", i % 3))
        .collect();
    put_all(store, &keys, opts.concurrency).await;
    let mut want = keys.clone();
    want.sort();
    assert_eq!(
        keys_under(store, p).await,
        want,
        "list_all of {} objects",
        keys.len()
    );
    let unique: BTreeSet<&String> = want.iter().collect();
    assert_eq!(unique.len(), want.len());
}

/// Many puts of distinct keys at once all land whole.
pub async fn concurrent_distinct_puts(store: &dyn ChunkStore, p: &str, opts: &Options) {
    let n = opts.concurrency.max(2) * 2;
    let keys: Vec<String> = (0..n).map(|i| format!("{p}d{}/k{i}", i % 4)).collect();
    let results = join_all(
        keys.iter()
            .enumerate()
            .map(|(i, k)| store.put(k, pattern(100 + i as u64, 20_000 + i))),
    )
    .await;
    for r in results {
        ok(r, "concurrent put");
    }
    for (i, k) in keys.iter().enumerate() {
        let got = ok(store.get(k).await, "get");
        assert!(
            got == pattern(100 + i as u64, 20_000 + i),
            "concurrent put {k} differs"
        );
    }
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys_under(store, p).await, sorted);
}

/// Two puts of the same key (racing, then in sequence) leave one value whole, never a mix.
pub async fn same_key_twice(store: &dyn ChunkStore, p: &str) {
    let k = format!("{p}k");
    let (a, b) = (pattern(200, 1 << 20), pattern(201, 1 << 20));
    let (ra, rb) = futures::join!(store.put(&k, a.clone()), store.put(&k, b.clone()));
    ok(ra, "racing put a");
    ok(rb, "racing put b");
    let got = ok(store.get(&k).await, "get");
    assert!(
        got == a || got == b,
        "racing puts left a mix of both values"
    );
    ok(store.put(&k, a.clone()).await, "put again");
    assert!(ok(store.get(&k).await, "get") == a, "the last put wins");
    assert_eq!(keys_under(store, p).await, vec![k]);
}

/// Blocks under JuiceFS's key layout (plain and hash-prefixed), as a volume writes them:
/// they round-trip, list in order and parse back to the blocks that made them.
pub async fn juicefs_layout(store: &dyn ChunkStore, vol: &str) {
    let bs = NonZeroU32::MIN.saturating_add(999); // 1000-byte blocks keep the check cheap
    let mut written = Vec::new();
    for (slice_id, len, hp) in [
        (1u64, 2_500u32, false),
        (4_999, 1_000, false),
        (1_000_001, 10, false),
        (42, 1_999, true),
        (298, 1, true),
    ] {
        for b in slice_blocks(slice_id, len, bs) {
            let key = format!("{vol}{}", b.to_key(hp));
            let data = pattern(slice_id * 100 + u64::from(b.index), b.len as usize);
            ok(store.put(&key, data.clone()).await, "put block");
            written.push((key, b, hp, data));
        }
    }
    for (key, b, _, data) in &written {
        let got = ok(store.get_block(key, u64::from(b.len)).await, "get_block");
        assert_eq!(&got, data, "block {key}");
        let part = ok(store.get_range(key, 1, Some(3)).await, "range of block");
        assert_eq!(
            part,
            data.slice(1.min(data.len())..4.min(data.len())),
            "range of {key}"
        );
    }
    let listed = ok(
        store.list_all(&format!("{vol}chunks/")).await,
        "list blocks",
    );
    let mut want: Vec<&String> = written.iter().map(|w| &w.0).collect();
    want.sort();
    let got: Vec<&String> = listed.iter().map(|o| &o.key).collect();
    assert_eq!(got, want, "blocks listed in key order");
    for o in &listed {
        let rel = &o.key[vol.len()..];
        let (b, hp) = BlockKey::parse_with_layout(rel)
            .unwrap_or_else(|| panic!("listed key {rel} does not parse"));
        assert_eq!(b.to_key(hp), rel);
        assert_eq!(o.size, u64::from(b.len), "listed size of {rel}");
        let w = written.iter().find(|w| w.0 == o.key);
        assert_eq!(w.map(|w| (w.1, w.2)), Some((b, hp)));
    }
}

/// Deletes everything under `root`.
pub async fn cleanup(store: &dyn ChunkStore, root: &str) {
    let keys = keys_under(store, root).await;
    for chunk in keys.chunks(64) {
        for r in join_all(chunk.iter().map(|k| store.delete(k))).await {
            ok(r, "cleanup delete");
        }
    }
    assert!(
        keys_under(store, root).await.is_empty(),
        "cleanup left objects"
    );
}
