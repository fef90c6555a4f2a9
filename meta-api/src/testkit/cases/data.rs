//! File data: slices, truncate, fallocate, copy_file_range and slice reference counts.

use super::{
    age, assert_err, assert_touched, dir, file, hole, ids, owned_file, piece, root, user, visible,
    write, Fixture, ALICE, BOB,
};
use crate::{FallocMode, MetaError, Result, Slice, Timestamp, CHUNK_SIZE, MAX_FILE_SIZE, ROOT_INO};

const CHUNK: u32 = CHUNK_SIZE as u32;
const MISSING: u64 = 0x00F0_0000;

fn mode(bits: u32) -> FallocMode {
    FallocMode(bits)
}

/// The piece of `s` that a copy placed at `pos`, starting `off` bytes into `s`.
fn moved(s: Slice, pos: u32, off: u32, len: u32) -> Slice {
    Slice {
        pos,
        off: s.off + off,
        len,
        ..s
    }
}

pub(super) async fn write_slice_extends_length_and_sets_mtime(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "f").await?;
    let id = e.new_slice_id().await?;
    let s = Slice {
        pos: 100,
        id,
        size: 50,
        off: 0,
        len: 50,
    };
    let t = Timestamp::new(1_700_000_000, 123_456_789);
    e.write_slice(f, 1, s, t).await?;
    let a = e.getattr(f).await?;
    assert_eq!(a.length, CHUNK_SIZE + 150);
    assert_eq!((a.mtime, a.ctime), (t, t));
    assert_eq!(e.read_chunk(f, 1).await?, vec![s]);
    assert!(e.read_chunk(f, 0).await?.is_empty());
    Ok(())
}

pub(super) async fn write_slice_never_shrinks(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "f").await?;
    write(e, f, 0, 1000, 1000).await?;
    assert_eq!(e.getattr(f).await?.length, 2000);
    write(e, f, 0, 0, 10).await?;
    assert_eq!(e.getattr(f).await?.length, 2000);
    Ok(())
}

pub(super) async fn write_slice_counts_the_chunk_records(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "f").await?;
    for n in 1..=3 {
        let id = e.new_slice_id().await?;
        let s = Slice {
            pos: 10 * n,
            id,
            size: 10,
            off: 0,
            len: 10,
        };
        assert_eq!(e.write_slice(f, 2, s, Timestamp::now()).await?, n as usize);
    }
    // Another chunk counts its own records.
    let id = e.new_slice_id().await?;
    let s = Slice {
        pos: 0,
        id,
        size: 10,
        off: 0,
        len: 10,
    };
    assert_eq!(e.write_slice(f, 0, s, Timestamp::now()).await?, 1);
    Ok(())
}

pub(super) async fn read_chunk_returns_slices_in_write_order(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "f").await?;
    let s1 = write(e, f, 0, 0, 100).await?;
    let s2 = write(e, f, 0, 50, 10).await?;
    let s3 = write(e, f, 0, 20, 10).await?;
    assert_eq!(e.read_chunk(f, 0).await?, vec![s1, s2, s3]);
    assert_eq!(
        visible(e, f, 0, 100).await?,
        vec![
            piece(s1, 0, 20),
            s3,
            piece(s1, 30, 20),
            s2,
            piece(s1, 60, 40)
        ]
    );
    Ok(())
}

pub(super) async fn read_chunk_of_empty_file(fx: &Fixture<'_>) -> Result<()> {
    let f = file(&*fx.a, ROOT_INO, "f").await?;
    assert!(fx.a.read_chunk(f, 0).await?.is_empty());
    assert!(fx.a.read_chunk(f, 5).await?.is_empty());
    Ok(())
}

pub(super) async fn data_on_missing_inode_is_not_found(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "f").await?;
    let s = Slice {
        pos: 0,
        id: e.new_slice_id().await?,
        size: 1,
        off: 0,
        len: 1,
    };
    assert_err!(e.read_chunk(MISSING, 0).await, MetaError::NotFound);
    assert_err!(
        e.write_slice(MISSING, 0, s, Timestamp::now()).await,
        MetaError::NotFound
    );
    assert_err!(e.truncate(&root(), MISSING, 10).await, MetaError::NotFound);
    assert_err!(
        e.fallocate(&root(), MISSING, mode(0), 0, 10).await,
        MetaError::NotFound
    );
    assert_err!(
        e.copy_file_range(&root(), MISSING, 0, f, 0, 10).await,
        MetaError::NotFound
    );
    assert_err!(
        e.copy_file_range(&root(), f, 0, MISSING, 0, 10).await,
        MetaError::NotFound
    );
    Ok(())
}

pub(super) async fn slice_ids_unique_across_clients(fx: &Fixture<'_>) -> Result<()> {
    let a = &*fx.a;
    let b = fx.client().await?;
    let mut from_a = Vec::new();
    let mut from_b = Vec::new();
    for _ in 0..3 {
        from_a.push(a.new_slice_id().await?);
        from_b.push(b.new_slice_id().await?);
    }
    for _ in 0..3 {
        from_a.push(a.new_slice_id().await?);
    }
    for ids in [&from_a, &from_b] {
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "increasing per client: {ids:?}"
        );
    }
    let mut all: Vec<u64> = from_a.iter().chain(&from_b).copied().collect();
    assert!(all.iter().all(|&id| id != 0), "0 is the hole id: {all:?}");
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 9, "unique across clients: {from_a:?} {from_b:?}");
    Ok(())
}

pub(super) async fn truncate_shrink_then_grow_reads_zeros(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "f").await?;
    let s = write(e, f, 0, 0, 1000).await?;
    assert_eq!(e.truncate(&root(), f, 10).await?.length, 10);
    assert_eq!(e.getattr(f).await?.length, 10);
    assert_eq!(e.truncate(&root(), f, 1000).await?.length, 1000);
    assert_eq!(
        visible(e, f, 0, 1000).await?,
        vec![piece(s, 0, 10), hole(10, 990)]
    );
    Ok(())
}

pub(super) async fn truncate_drops_whole_chunks(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "f").await?;
    let s0 = write(e, f, 0, 0, 1000).await?;
    write(e, f, 2, 0, 1000).await?;
    assert_eq!(e.getattr(f).await?.length, 2 * CHUNK_SIZE + 1000);
    e.truncate(&root(), f, 500).await?;
    e.truncate(&root(), f, 3 * CHUNK_SIZE).await?;
    assert_eq!(
        visible(e, f, 0, 1000).await?,
        vec![piece(s0, 0, 500), hole(500, 500)]
    );
    assert_eq!(visible(e, f, 1, CHUNK).await?, vec![hole(0, CHUNK)]);
    assert_eq!(visible(e, f, 2, CHUNK).await?, vec![hole(0, CHUNK)]);
    Ok(())
}

pub(super) async fn truncate_directory_is_isdir(fx: &Fixture<'_>) -> Result<()> {
    let d = dir(&*fx.a, ROOT_INO, "d").await?;
    assert_err!(fx.a.truncate(&root(), d, 0).await, MetaError::IsDir);
    Ok(())
}

pub(super) async fn truncate_needs_write(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = owned_file(e, ROOT_INO, "f", ALICE, 0o644).await?;
    assert_err!(
        e.truncate(&user(BOB), f, 100).await,
        MetaError::PermissionDenied
    );
    assert_eq!(e.truncate(&user(ALICE), f, 100).await?.length, 100);
    e.setattr(&user(ALICE), f, &crate::SetAttr::new().mode(0o444))
        .await?;
    assert_err!(
        e.truncate(&user(ALICE), f, 10).await,
        MetaError::PermissionDenied
    );
    assert_eq!(
        e.truncate(&root(), f, 10).await?.length,
        10,
        "root may always truncate"
    );
    Ok(())
}

pub(super) async fn truncate_past_max_is_file_too_big(fx: &Fixture<'_>) -> Result<()> {
    let f = file(&*fx.a, ROOT_INO, "f").await?;
    assert_err!(
        fx.a.truncate(&root(), f, MAX_FILE_SIZE + 1).await,
        MetaError::FileTooBig
    );
    assert_eq!(fx.a.getattr(f).await?.length, 0);
    Ok(())
}

pub(super) async fn truncate_updates_mtime(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "f").await?;
    let before = age(e, f).await?;
    e.truncate(&root(), f, 100).await?;
    assert_touched(&before, &e.getattr(f).await?, "truncate");
    Ok(())
}

pub(super) async fn fallocate_extends_length(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "f").await?;
    e.fallocate(&root(), f, mode(0), 100, 1000).await?;
    assert_eq!(e.getattr(f).await?.length, 1100);
    assert_eq!(visible(e, f, 0, 1100).await?, vec![hole(0, 1100)]);
    e.fallocate(&root(), f, mode(0), 0, 10).await?;
    assert_eq!(e.getattr(f).await?.length, 1100, "never shrinks");
    Ok(())
}

pub(super) async fn fallocate_keep_size(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "f").await?;
    let s = write(e, f, 0, 0, 100).await?;
    e.fallocate(&root(), f, mode(FallocMode::KEEP_SIZE), 0, 10_000)
        .await?;
    assert_eq!(e.getattr(f).await?.length, 100);
    assert_eq!(
        visible(e, f, 0, 100).await?,
        vec![s],
        "preallocation keeps the data"
    );
    Ok(())
}

pub(super) async fn fallocate_punch_hole_needs_keep_size(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "f").await?;
    write(e, f, 0, 0, 100).await?;
    assert_err!(
        e.fallocate(&root(), f, mode(FallocMode::PUNCH_HOLE), 0, 10)
            .await,
        MetaError::InvalidArgument(_)
    );
    Ok(())
}

pub(super) async fn fallocate_punch_hole_zeroes_range(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "f").await?;
    let s = write(e, f, 0, 0, 1000).await?;
    let punch = mode(FallocMode::PUNCH_HOLE | FallocMode::KEEP_SIZE);
    e.fallocate(&root(), f, punch, 100, 100).await?;
    assert_eq!(e.getattr(f).await?.length, 1000);
    assert_eq!(
        visible(e, f, 0, 1000).await?,
        vec![piece(s, 0, 100), hole(100, 100), piece(s, 200, 800)]
    );
    Ok(())
}

pub(super) async fn fallocate_zero_range(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "f").await?;
    let s = write(e, f, 0, 0, 1000).await?;
    e.fallocate(&root(), f, mode(FallocMode::ZERO_RANGE), 500, 1000)
        .await?;
    assert_eq!(e.getattr(f).await?.length, 1500);
    assert_eq!(
        visible(e, f, 0, 1500).await?,
        vec![piece(s, 0, 500), hole(500, 1000)]
    );
    let g = file(e, ROOT_INO, "g").await?;
    let t = write(e, g, 0, 0, 1000).await?;
    let keep = mode(FallocMode::ZERO_RANGE | FallocMode::KEEP_SIZE);
    e.fallocate(&root(), g, keep, 900, 1000).await?;
    assert_eq!(e.getattr(g).await?.length, 1000);
    assert_eq!(
        visible(e, g, 0, 1000).await?,
        vec![piece(t, 0, 900), hole(900, 100)]
    );
    Ok(())
}

pub(super) async fn fallocate_past_max_is_file_too_big(fx: &Fixture<'_>) -> Result<()> {
    let f = file(&*fx.a, ROOT_INO, "f").await?;
    assert_err!(
        fx.a.fallocate(&root(), f, mode(0), MAX_FILE_SIZE - 10, 100)
            .await,
        MetaError::FileTooBig
    );
    assert_eq!(fx.a.getattr(f).await?.length, 0);
    Ok(())
}

pub(super) async fn fallocate_zero_length_is_invalid(fx: &Fixture<'_>) -> Result<()> {
    let f = file(&*fx.a, ROOT_INO, "f").await?;
    assert_err!(
        fx.a.fallocate(&root(), f, mode(0), 0, 0).await,
        MetaError::InvalidArgument(_)
    );
    Ok(())
}

pub(super) async fn copy_file_range_shares_slices(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let src = file(e, ROOT_INO, "src").await?;
    let dst = file(e, ROOT_INO, "dst").await?;
    let s = write(e, src, 0, 0, 1000).await?;
    assert_eq!(
        e.copy_file_range(&root(), src, 0, dst, 0, 1000).await?,
        1000
    );
    assert_eq!(e.getattr(dst).await?.length, 1000);
    assert_eq!(
        visible(e, dst, 0, 1000).await?,
        vec![s],
        "dst references src's slice"
    );
    assert_eq!(visible(e, src, 0, 1000).await?, vec![s], "src is unchanged");
    Ok(())
}

pub(super) async fn copy_file_range_short_at_eof(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let src = file(e, ROOT_INO, "src").await?;
    let dst = file(e, ROOT_INO, "dst").await?;
    let s = write(e, src, 0, 0, 1000).await?;
    assert_eq!(
        e.copy_file_range(&root(), src, 600, dst, 0, 1000).await?,
        400
    );
    assert_eq!(e.getattr(dst).await?.length, 400);
    assert_eq!(visible(e, dst, 0, 400).await?, vec![moved(s, 0, 600, 400)]);
    assert_eq!(e.copy_file_range(&root(), src, 1000, dst, 0, 10).await?, 0);
    assert_eq!(e.copy_file_range(&root(), src, 5000, dst, 0, 10).await?, 0);
    assert_eq!(e.getattr(dst).await?.length, 400);
    Ok(())
}

pub(super) async fn copy_file_range_at_offset_grows_dst(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let src = file(e, ROOT_INO, "src").await?;
    let dst = file(e, ROOT_INO, "dst").await?;
    let s = write(e, src, 0, 0, 100).await?;
    let d = write(e, dst, 0, 0, 10).await?;
    assert_eq!(
        e.copy_file_range(&root(), src, 0, dst, 5000, 100).await?,
        100
    );
    assert_eq!(e.getattr(dst).await?.length, 5100);
    assert_eq!(
        visible(e, dst, 0, 5100).await?,
        vec![d, hole(10, 4990), moved(s, 5000, 0, 100)]
    );
    Ok(())
}

pub(super) async fn copy_file_range_copies_holes(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let src = file(e, ROOT_INO, "src").await?;
    let dst = file(e, ROOT_INO, "dst").await?;
    let s = write(e, src, 0, 0, 100).await?;
    e.truncate(&root(), src, 1000).await?;
    write(e, dst, 0, 0, 1000).await?;
    assert_eq!(
        e.copy_file_range(&root(), src, 0, dst, 0, 1000).await?,
        1000
    );
    assert_eq!(
        visible(e, dst, 0, 1000).await?,
        vec![s, hole(100, 900)],
        "the hole of src overwrites dst's data"
    );
    Ok(())
}

pub(super) async fn copy_file_range_across_chunks(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let src = file(e, ROOT_INO, "src").await?;
    let s1 = write(e, src, 0, CHUNK - 100, 100).await?;
    let s2 = write(e, src, 1, 0, 100).await?;
    let from = CHUNK_SIZE - 100;
    let dst = file(e, ROOT_INO, "dst").await?;
    assert_eq!(
        e.copy_file_range(&root(), src, from, dst, 0, 200).await?,
        200
    );
    assert_eq!(
        visible(e, dst, 0, 200).await?,
        vec![moved(s1, 0, 0, 100), moved(s2, 100, 0, 100)]
    );
    let dst2 = file(e, ROOT_INO, "dst2").await?;
    assert_eq!(
        e.copy_file_range(&root(), src, from, dst2, CHUNK_SIZE - 50, 200)
            .await?,
        200
    );
    assert_eq!(e.getattr(dst2).await?.length, CHUNK_SIZE + 150);
    assert_eq!(
        visible(e, dst2, 0, CHUNK).await?,
        vec![hole(0, CHUNK - 50), moved(s1, CHUNK - 50, 0, 50)]
    );
    assert_eq!(
        visible(e, dst2, 1, 150).await?,
        vec![moved(s1, 0, 50, 50), moved(s2, 50, 0, 100)]
    );
    Ok(())
}

pub(super) async fn copy_file_range_of_directory_is_isdir(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let d = dir(e, ROOT_INO, "d").await?;
    let f = file(e, ROOT_INO, "f").await?;
    assert_err!(
        e.copy_file_range(&root(), d, 0, f, 0, 10).await,
        MetaError::IsDir
    );
    assert_err!(
        e.copy_file_range(&root(), f, 0, d, 0, 10).await,
        MetaError::IsDir
    );
    Ok(())
}

pub(super) async fn purge_keeps_slices_shared_by_copy(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let src = file(e, ROOT_INO, "src").await?;
    let dst = file(e, ROOT_INO, "dst").await?;
    let shared = write(e, src, 0, 0, 1000).await?;
    let own = write(e, src, 0, 2000, 1000).await?;
    assert_eq!(
        e.copy_file_range(&root(), src, 0, dst, 0, 1000).await?,
        1000
    );
    e.unlink(&root(), ROOT_INO, b"src").await?;
    assert_eq!(
        ids(&e.purge_file(src).await?),
        vec![own.id],
        "the copied slice is still referenced by dst"
    );
    assert_eq!(visible(e, dst, 0, 1000).await?, vec![shared]);
    e.unlink(&root(), ROOT_INO, b"dst").await?;
    assert_eq!(ids(&e.purge_file(dst).await?), vec![shared.id]);
    Ok(())
}

/// A sparse file of the largest length holds two slices: truncating it there, deleting it
/// and purging it cost what it holds, not 2^31 chunks.
pub(super) async fn huge_sparse_file_is_cheap_to_delete(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "sparse").await?;
    let last = u32::try_from(crate::MAX_FILE_SIZE / crate::CHUNK_SIZE - 1).unwrap_or(u32::MAX);
    let a = write(e, f, 0, 0, 10).await?;
    let b = write(e, f, last, 100, 10).await?;
    e.truncate(&root(), f, crate::MAX_FILE_SIZE).await?;
    assert_eq!(e.getattr(f).await?.length, crate::MAX_FILE_SIZE);
    e.unlink(&root(), ROOT_INO, b"sparse").await?;
    let mut freed: Vec<u64> = e.purge_file(f).await?.iter().map(|s| s.id).collect();
    freed.sort_unstable();
    let mut want = vec![a.id, b.id];
    want.sort_unstable();
    assert_eq!(freed, want);
    assert!(e.deleted_files(10).await?.iter().all(|d| d.ino != f));
    Ok(())
}

/// Punching (or zeroing) the whole of a huge sparse file touches the chunks it holds: the
/// data reads as zeros and no chunk appears where there was none.
pub(super) async fn punching_a_huge_sparse_range_touches_only_existing_chunks(
    fx: &Fixture<'_>,
) -> Result<()> {
    let e = &*fx.a;
    let f = file(e, ROOT_INO, "sparse").await?;
    let last = u32::try_from(MAX_FILE_SIZE / CHUNK_SIZE - 1).unwrap_or(u32::MAX);
    write(e, f, 0, 0, 10).await?;
    write(e, f, last, 100, 10).await?;
    let punch = FallocMode(FallocMode::PUNCH_HOLE | FallocMode::KEEP_SIZE);
    e.fallocate(&root(), f, punch, 5, MAX_FILE_SIZE - 5).await?;
    assert_eq!(
        visible(e, f, 0, 10).await?,
        vec![piece_of(e, f, 0).await?, hole(5, 5)]
    );
    assert_eq!(visible(e, f, last, 200).await?, vec![hole(0, 200)]);
    assert!(
        e.read_chunk(f, 1).await?.is_empty(),
        "no chunk where there was none"
    );
    assert!(
        e.read_chunk(f, last / 2).await?.is_empty(),
        "no chunk where there was none"
    );
    let zero = FallocMode(FallocMode::ZERO_RANGE | FallocMode::KEEP_SIZE);
    e.fallocate(&root(), f, zero, 0, MAX_FILE_SIZE).await?;
    assert_eq!(visible(e, f, 0, 10).await?, vec![hole(0, 10)]);
    assert!(e.read_chunk(f, 2).await?.is_empty());
    assert_eq!(
        e.getattr(f).await?.length,
        u64::from(last) * CHUNK_SIZE + 110
    );
    Ok(())
}

/// The visible first 5 bytes of chunk `index` (the piece of the slice written at 0).
async fn piece_of(e: &dyn crate::MetaEngine, f: crate::Ino, index: u32) -> Result<Slice> {
    let s = e.read_chunk(f, index).await?[0];
    Ok(piece(s, 0, 5))
}

/// Copying a huge sparse file costs the chunks on either side: its data arrives where it
/// was, a destination chunk the source has no chunk for is zeroed, and no other chunk
/// appears.
pub(super) async fn copying_a_huge_sparse_file_touches_only_existing_chunks(
    fx: &Fixture<'_>,
) -> Result<()> {
    let e = &*fx.a;
    let src = file(e, ROOT_INO, "sparse").await?;
    let last = u32::try_from(MAX_FILE_SIZE / CHUNK_SIZE - 1).unwrap_or(u32::MAX);
    let a = write(e, src, 0, 0, 10).await?;
    let b = write(e, src, last, 100, 10).await?;
    let dst = file(e, ROOT_INO, "copy").await?;
    let old = write(e, dst, 7, 0, 50).await?;
    let n = e.getattr(src).await?.length;
    assert_eq!(e.copy_file_range(&root(), src, 0, dst, 0, n).await?, n);
    assert_eq!(visible(e, dst, 0, 10).await?, vec![a]);
    assert_eq!(
        visible(e, dst, last, 110).await?,
        vec![hole(0, 100), piece(b, 100, 10)]
    );
    assert_eq!(
        visible(e, dst, 7, 50).await?,
        vec![hole(0, 50)],
        "{old:?} is overwritten by zeros"
    );
    assert!(
        e.read_chunk(dst, 1).await?.is_empty(),
        "no chunk where there was none"
    );
    assert!(
        e.read_chunk(dst, last / 2).await?.is_empty(),
        "no chunk where there was none"
    );
    assert_eq!(e.getattr(dst).await?.length, n);
    Ok(())
}
