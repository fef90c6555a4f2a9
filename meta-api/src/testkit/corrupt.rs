//! Cases for volumes no client could have written — rows put straight into an engine by
//! something hostile or broken. An engine's own test plants the rows (only it knows its
//! layout) through [`Plant`]; the case checks that every read path answers `Corrupt`,
//! naming what is wrong, instead of passing the record on.

use async_trait::async_trait;

use crate::{Context, FileType, Ino, MetaEngine, MetaError, Slice, CHUNK_SIZE, ROOT_INO};

/// Writes records into an engine's storage directly, past every check.
#[async_trait]
pub trait Plant: Send + Sync {
    /// Adds entry `name` → `ino` (of type `typ`) to directory `dir`.
    async fn entry(&self, dir: Ino, name: &[u8], ino: Ino, typ: FileType);
    /// Replaces the records of chunk `indx` of `ino` with `records`.
    async fn chunk(&self, ino: Ino, indx: u32, records: &[Slice]);
}

/// Names no client can create: `..`, one with a `/`, one with a NUL, the empty name and
/// one of 256 bytes.
pub fn impossible_names() -> Vec<Vec<u8>> {
    vec![
        b"..".to_vec(),
        b"x/evil".to_vec(),
        b"nul\0".to_vec(),
        Vec::new(),
        vec![b'n'; 256],
    ]
}

/// Each of `names` planted in a directory of its own makes that directory's listing
/// `Corrupt`, naming the directory (an empty name may instead be invisible to the
/// engine's listing: Redis and TKV key layouts cannot list it).
pub async fn impossible_names_are_corrupt(
    m: &dyn MetaEngine,
    plant: &dyn Plant,
    names: &[Vec<u8>],
) {
    let ctx = Context::root();
    for (i, bad) in names.iter().enumerate() {
        let d = m
            .mkdir(&ctx, ROOT_INO, format!("hostile{i}").as_bytes(), 0o755)
            .await
            .expect("mkdir")
            .ino;
        let f = m
            .mknod(&ctx, d, b"ok", FileType::Regular, 0o644, 0)
            .await
            .expect("mknod")
            .ino;
        plant.entry(d, bad, f, FileType::Regular).await;
        let listed = m.readdir(&ctx, d, None, 100, false).await;
        let e = match listed {
            Err(e) => e,
            // An engine whose listing cannot see an empty name passes nothing on either.
            Ok(l) if bad.is_empty() && l.iter().all(|e| !e.name.is_empty()) => continue,
            Ok(l) => panic!("{bad:?} planted in {d}, listed as {l:?}"),
        };
        assert!(
            matches!(&e, MetaError::Corrupt(msg) if msg.contains(&format!("directory {d}"))),
            "{bad:?}: {e}"
        );
    }
}

/// A chunk record past the end of its chunk, and one past the end of its slice, are
/// `Corrupt` when read, naming the chunk and the inode.
pub async fn impossible_chunk_records_are_corrupt(m: &dyn MetaEngine, plant: &dyn Plant) {
    let f = m
        .mknod(
            &Context::root(),
            ROOT_INO,
            b"hostile-chunks",
            FileType::Regular,
            0o644,
            0,
        )
        .await
        .expect("mknod")
        .ino;
    let past_chunk = Slice {
        pos: (CHUNK_SIZE - 10) as u32,
        id: 7,
        size: 20,
        off: 0,
        len: 20,
    };
    let past_slice = Slice {
        pos: 0,
        id: 8,
        size: 20,
        off: 15,
        len: 10,
    };
    for (indx, bad) in [(0u32, past_chunk), (1, past_slice)] {
        plant.chunk(f, indx, &[bad]).await;
        let e = m
            .read_chunk(f, indx)
            .await
            .expect_err("an impossible record");
        assert!(
            matches!(&e, MetaError::Corrupt(msg) if msg.contains(&format!("chunk {indx} of inode {f}"))),
            "{bad:?}: {e}"
        );
    }
}

/// A load whose end names a hard link to an inode the load never wrote (inode 77, twice
/// in the root) is refused with [`crate::dump::Link::WITHOUT_NODE`], and no setting is
/// written: the engine still does not open as a volume. `end` is a valid end otherwise
/// (its links are replaced).
pub async fn a_link_without_its_node_is_refused(m: &dyn MetaEngine, mut end: crate::dump::LoadEnd) {
    use crate::dump::Link;
    end.links = vec![Link {
        ino: 77,
        parents: vec![(ROOT_INO, 2)],
    }];
    let e = m
        .finish_load(&end)
        .await
        .expect_err("a link to an inode the load never wrote");
    assert_eq!(e.to_string(), Link::WITHOUT_NODE.to_string());
    assert!(matches!(m.load().await, Err(MetaError::NotFormatted)));
}

/// A load batch referencing slice 0 (a hole, never an object) is refused with
/// `InvalidArgument`, and the engine, empty before, stays empty: nothing of it is written.
pub async fn a_batch_with_slice_0_is_refused(m: &dyn MetaEngine) {
    let hole = crate::dump::Batch {
        slice_refs: vec![(0, 4096)],
        ..crate::dump::Batch::default()
    };
    let e = m.load_batch(&hole).await.expect_err("slice 0 in a batch");
    assert!(matches!(e, MetaError::InvalidArgument(_)), "{e}");
    assert!(
        m.is_empty().await.expect("is_empty"),
        "nothing of a refused batch"
    );
}
