//! Argument checks of the data operations, made before an engine is asked (the first
//! step of the error order in `testkit`'s docs). Each returns the precise error and
//! changes nothing.

use crate::{
    FallocMode, MetaError, RenameFlags, Result, SetAttr, Slice, CHUNK_SIZE, MAX_FILE_SIZE,
};

/// A file length for `truncate` or `setattr`: at most [`MAX_FILE_SIZE`] (`EFBIG`).
pub fn check_length(length: u64) -> Result<()> {
    if length > MAX_FILE_SIZE {
        return Err(MetaError::FileTooBig);
    }
    Ok(())
}

/// The arguments of `setattr`: a size is a valid length.
pub fn check_setattr(set: &SetAttr) -> Result<()> {
    set.size.map_or(Ok(()), check_length)
}

/// The arguments of `fallocate`: known mode bits (`EOPNOTSUPP` otherwise), `PUNCH_HOLE`
/// only with `KEEP_SIZE` and never with `ZERO_RANGE` (`EINVAL`), a length above zero
/// (`EINVAL`) and an end at most [`MAX_FILE_SIZE`] (`EFBIG`). Returns the end.
pub fn check_fallocate(mode: FallocMode, off: u64, len: u64) -> Result<u64> {
    let known = FallocMode::KEEP_SIZE | FallocMode::PUNCH_HOLE | FallocMode::ZERO_RANGE;
    if mode.0 & !known != 0 {
        return Err(MetaError::NotSupported("fallocate mode"));
    }
    let punch = mode.contains(FallocMode::PUNCH_HOLE);
    if punch && !mode.contains(FallocMode::KEEP_SIZE) {
        return Err(MetaError::InvalidArgument(
            "FALLOC_FL_PUNCH_HOLE needs FALLOC_FL_KEEP_SIZE",
        ));
    }
    if punch && mode.contains(FallocMode::ZERO_RANGE) {
        return Err(MetaError::InvalidArgument(
            "FALLOC_FL_PUNCH_HOLE and FALLOC_FL_ZERO_RANGE exclude each other",
        ));
    }
    if len == 0 {
        return Err(MetaError::InvalidArgument("fallocate of zero bytes"));
    }
    let end = off.checked_add(len).ok_or(MetaError::FileTooBig)?;
    check_length(end)?;
    Ok(end)
}

/// The range of `copy_file_range`, checked after both files (Linux's order): the
/// destination's end neither overflows nor passes [`MAX_FILE_SIZE`] (`EFBIG`), and two
/// ranges of one file do not overlap (`EINVAL`). The source range is clipped to the
/// source's length afterwards, so only its overlap counts.
pub fn check_copy_range(same_file: bool, src_off: u64, dst_off: u64, len: u64) -> Result<()> {
    let src_end = src_off.saturating_add(len);
    let dst_end = dst_off.checked_add(len).ok_or(MetaError::FileTooBig)?;
    check_length(dst_end)?;
    if same_file && src_off < dst_end && dst_off < src_end {
        return Err(MetaError::InvalidArgument(
            "overlapping copy within one file",
        ));
    }
    Ok(())
}

/// A slice written into chunk `index`: inside its chunk and, unless it is a hole, inside
/// its object (`EINVAL`); ending at most at [`MAX_FILE_SIZE`] (`EFBIG`). Returns the file
/// offset where it ends.
pub fn check_slice(index: u32, slice: &Slice) -> Result<u64> {
    let end_in_chunk = u64::from(slice.pos) + u64::from(slice.len);
    if end_in_chunk > CHUNK_SIZE {
        return Err(MetaError::InvalidArgument("slice extends past its chunk"));
    }
    if slice.id != 0 && u64::from(slice.off) + u64::from(slice.len) > u64::from(slice.size) {
        return Err(MetaError::InvalidArgument("slice range exceeds its object"));
    }
    let end = u64::from(index) * CHUNK_SIZE + end_in_chunk;
    check_length(end)?;
    Ok(end)
}

/// The flags of `rename`: `RENAME_NOREPLACE` or `RENAME_EXCHANGE`, not both (`EINVAL`;
/// `RENAME_WHITEOUT` and unknown bits too); [`RenameFlags::RESTORE`] only with
/// `RENAME_NOREPLACE`.
pub fn check_rename_flags(flags: RenameFlags) -> Result<()> {
    let known = RenameFlags::NOREPLACE | RenameFlags::EXCHANGE | RenameFlags::RESTORE;
    if flags.0 & !known != 0 {
        return Err(MetaError::InvalidArgument("unsupported rename flags"));
    }
    if flags.restore() && flags.0 != RenameFlags::RESTORE | RenameFlags::NOREPLACE {
        return Err(MetaError::InvalidArgument(
            "RENAME_RESTORE goes with RENAME_NOREPLACE only",
        ));
    }
    if flags.noreplace() && flags.exchange() {
        return Err(MetaError::InvalidArgument(
            "RENAME_NOREPLACE and RENAME_EXCHANGE exclude each other",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallocate_arguments() {
        let m = |bits| FallocMode(bits);
        assert!(matches!(
            check_fallocate(m(0x40), 0, 1),
            Err(MetaError::NotSupported(_))
        ));
        assert!(matches!(
            check_fallocate(m(FallocMode::PUNCH_HOLE), 0, 1),
            Err(MetaError::InvalidArgument(_))
        ));
        assert!(matches!(
            check_fallocate(
                m(FallocMode::PUNCH_HOLE | FallocMode::KEEP_SIZE | FallocMode::ZERO_RANGE),
                0,
                1
            ),
            Err(MetaError::InvalidArgument(_))
        ));
        assert!(matches!(
            check_fallocate(m(0), 0, 0),
            Err(MetaError::InvalidArgument(_))
        ));
        assert!(matches!(
            check_fallocate(m(0), u64::MAX, 2),
            Err(MetaError::FileTooBig)
        ));
        assert!(matches!(
            check_fallocate(m(0), MAX_FILE_SIZE, 1),
            Err(MetaError::FileTooBig)
        ));
        assert_eq!(check_fallocate(m(0), 10, 5).ok(), Some(15));
    }

    #[test]
    fn copy_ranges() {
        assert!(matches!(
            check_copy_range(false, 0, u64::MAX, 2),
            Err(MetaError::FileTooBig)
        ));
        assert!(check_copy_range(false, u64::MAX, 0, 2).is_ok());
        assert!(matches!(
            check_copy_range(false, 0, MAX_FILE_SIZE, 1),
            Err(MetaError::FileTooBig)
        ));
        assert!(matches!(
            check_copy_range(true, 0, 5, 10),
            Err(MetaError::InvalidArgument(_))
        ));
        assert!(check_copy_range(true, 0, 10, 10).is_ok());
        assert!(check_copy_range(false, 0, 5, 10).is_ok());
    }
}
