//! JuiceFS's trash: where unlink, rmdir and rename-over put what they delete on a volume
//! whose `TrashDays` is above zero, and the rules every engine keeps for it.
//!
//! **Layout** (JuiceFS 1.x, so that juicefs clients see and restore what this library
//! deletes, and the reverse). The trash is the directory [`TRASH_INO`], named
//! [`TRASH_NAME`] in the root but never listed there. Below it one directory per hour of
//! deletion, named in UTC as `2006-01-02-15` ([`hour_name`]), with inode `TRASH_INO +
//! nextTrash` (the `nextTrash` counter is bumped in the same transaction), mode `0555`,
//! owned by root. A deleted entry moves into the hour directory of the moment it is
//! deleted, in the deleting transaction, named `{parent}-{inode}-{name}` cut to 255 bytes
//! ([`entry_name`]): its link count does not change, a directory's or a single-link
//! file's parent becomes the hour directory (a hard-linked file keeps parent 0 and gains a
//! parent record for the hour directory), its ctime is the deletion time. The volume's
//! usage does not change; the hour directory's statistics grow. Directories below the
//! trash do not count in the link counts of the trash or of the hour directories, as in
//! JuiceFS.
//!
//! **What goes there** ([`takes`]): anything deleted outside the trash on a volume with
//! trash days, unless the victim has the [`SKIP_TRASH`] flag or root deletes it with
//! [`Context::skip_trash`]. Deleting an hour directory's entries (only root may) deletes
//! them for real; the trash cleanup empties deleted directories with `skip_trash`.
//!
//! **Guards** (the blanket [`MetaEngine`](crate::MetaEngine) makes them before an engine is
//! asked; see [`check_create`], [`check_unlink`], [`check_rename`]): nothing is created or
//! linked in the trash; `/.trash` itself is never removed, renamed or replaced; only root
//! removes or renames entries inside the trash; nothing is renamed into it; a directory
//! that was deleted into the trash takes no new entries (`ENOENT`), except by a
//! [`RenameFlags::RESTORE`] rename.
//!
//! **Cleanup.** Hourly, elected across clients with the `lastCleanupTrash` counter, the
//! hour directories older than `24·TrashDays + 2` hours ([`expired`]) are emptied — the
//! files deleted for real — and removed, and delayed slices (kept by compaction) older
//! than `TrashDays` days are freed.
//!
//! **Restore** renames an entry back to the directory and name its trash name records
//! ([`parse_entry_name`]) with [`RenameFlags::RESTORE`] and `RENAME_NOREPLACE`.

use crate::{Attr, Context, FileType, Format, Ino, MetaError, RenameFlags, Result, Timestamp};
use crate::{MAX_NAME_LEN, ROOT_INO, TRASH_INO};

pub use crate::name::TRASH_NAME;

/// The inode flag that keeps a file out of the trash (JuiceFS `FlagSkipTrash`, `chattr
/// +s` through a mount); new inodes inherit it from their directory.
pub const SKIP_TRASH: u8 = 1 << 5;

/// The counter whose value names the next hour directory (`TRASH_INO + nextTrash`).
pub const NEXT_TRASH: &str = "nextTrash";
/// The counter that elects the hourly trash cleanup across clients.
pub const CLEANUP_TRASH: &str = "lastCleanupTrash";
/// How often the trash cleanup runs on a volume (JuiceFS: hourly).
pub const CLEANUP_TRASH_EVERY_SECS: u64 = 3600;

/// Whether `ino` is the trash or anything JuiceFS numbers inside it (hour directories).
pub fn is_trash(ino: Ino) -> bool {
    ino >= TRASH_INO
}

/// Whether a directory with attributes `dir` was deleted into the trash: it takes no new
/// entries (its parent is an hour directory).
pub fn is_deleted_dir(dir: &Attr) -> bool {
    dir.parent > TRASH_INO
}

/// Whether deleting `victim` from `parent` by `ctx` on a volume with settings `format`
/// moves it into the trash instead of deleting it.
pub fn takes(format: &Format, ctx: &Context, parent: Ino, victim: &Attr) -> bool {
    format.trash_days > 0
        && !is_trash(parent)
        && victim.flags & SKIP_TRASH == 0
        && !(ctx.skip_trash && ctx.is_root())
}

/// The name of the hour directory for a deletion at `sec` (Unix seconds): UTC
/// `YYYY-MM-DD-HH`, as Go's layout `2006-01-02-15`.
pub fn hour_name(sec: i64) -> String {
    let days = sec.div_euclid(86_400);
    let hour = sec.rem_euclid(86_400) / 3600;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}-{hour:02}")
}

/// The Unix time at which hour directory `name` begins, `None` when the name is not one
/// (JuiceFS skips such entries with a warning).
pub fn hour_start(name: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(name).ok()?;
    let b = s.as_bytes();
    if b.len() != 13 || b[4] != b'-' || b[7] != b'-' || b[10] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (y, m, d, h) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?);
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) || h > 23 {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86_400 + h * 3600)
}

/// Whether hour directory `name` is due for cleanup at `now` (Unix seconds) on a volume
/// keeping `days` trash days: it began more than `24·days + 2` hours ago. `force` (a
/// manual cleanup of everything) makes every hour due that began before `now`.
pub fn expired(name: &[u8], now: i64, days: u32, force: bool) -> bool {
    let Some(start) = hour_start(name) else {
        return false;
    };
    let edge = if force {
        now
    } else {
        now - (24 * i64::from(days) + 2) * 3600
    };
    start < edge
}

/// The name a deleted entry gets in the hour directory: `{parent}-{inode}-{name}`, cut to
/// 255 bytes (as JuiceFS, which cuts bytes).
pub fn entry_name(parent: Ino, ino: Ino, name: &[u8]) -> Vec<u8> {
    let mut out = format!("{parent}-{ino}-").into_bytes();
    out.extend_from_slice(name);
    out.truncate(MAX_NAME_LEN);
    out
}

/// Splits a trash entry's name into the directory and the name it was deleted from;
/// `None` when the name is not one this library or JuiceFS made.
pub fn parse_entry_name(name: &[u8]) -> Option<(Ino, &[u8])> {
    let mut parts = name.splitn(3, |&b| b == b'-');
    let parent = parts.next()?;
    let ino = parts.next()?;
    let rest = parts.next()?;
    let number = |p: &[u8]| -> Option<u64> {
        if p.is_empty() || !p.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(p).ok()?.parse().ok()
    };
    let parent = number(parent)?;
    number(ino)?;
    if parent == 0 || rest.is_empty() {
        return None;
    }
    Some((parent, rest))
}

/// The inode of the hour directory numbered `next` (the `nextTrash` counter after the
/// increment that made it).
pub fn hour_ino(next: u64) -> Result<Ino> {
    match TRASH_INO.checked_add(next) {
        Some(ino) if next > 0 => Ok(ino),
        _ => Err(MetaError::Corrupt(format!(
            "trash counter {next} gives no hour directory"
        ))),
    }
}

/// The attributes of the trash directory made at `now` (formatting a volume with trash
/// days, or turning them on): `0555`, owned by root, parent the root.
pub fn root_attr(now: Timestamp) -> Attr {
    let mut a = Attr::new(FileType::Directory, 0o555, 0, 0, now);
    a.nlink = 2;
    a.length = 4096;
    a.parent = ROOT_INO;
    a
}

/// The attributes of a new hour directory made at `now`.
pub fn hour_attr(now: Timestamp) -> Attr {
    let mut a = Attr::new(FileType::Directory, 0o555, 0, 0, now);
    a.nlink = 2;
    a.length = 4096;
    a.parent = TRASH_INO;
    a
}

/// Whether removing a directory from `parent` takes one from `parent`'s link count:
/// directories below the trash never counted (JuiceFS).
pub fn counts_links(parent: Ino) -> bool {
    !is_trash(parent)
}

/// Whether `parent` keeps directory statistics: everything but the trash itself (JuiceFS
/// makes and removes hour directories without touching the trash's statistics).
pub fn keeps_stats(parent: Ino) -> bool {
    parent != TRASH_INO
}

fn is_trash_name(parent: Ino, name: &[u8]) -> bool {
    parent == ROOT_INO && name == TRASH_NAME
}

/// A new entry (mknod, mkdir, symlink, link) named `name` in `parent`: never the trash's
/// name in the root nor anything in the trash (`EPERM`).
pub fn check_create(parent: Ino, name: &[u8]) -> Result<()> {
    if is_trash(parent) || is_trash_name(parent, name) {
        return Err(MetaError::NotPermitted);
    }
    Ok(())
}

/// Removing `name` from `parent` (unlink, rmdir) by a caller who is root or not: never
/// `/.trash` itself, inside the trash only by root (`EPERM`).
pub fn check_unlink(parent: Ino, name: &[u8], root: bool) -> Result<()> {
    if is_trash_name(parent, name) || (is_trash(parent) && !root) {
        return Err(MetaError::NotPermitted);
    }
    Ok(())
}

/// A rename of `parent/name` to `new_parent/new_name`: neither is `/.trash`, nothing moves
/// into the trash, only root moves things out of it (`EPERM`); `RENAME_RESTORE` only moves
/// out of the trash (`EINVAL`).
pub fn check_rename(
    parent: Ino,
    name: &[u8],
    new_parent: Ino,
    new_name: &[u8],
    flags: RenameFlags,
    root: bool,
) -> Result<()> {
    if is_trash_name(parent, name) || is_trash_name(new_parent, new_name) {
        return Err(MetaError::NotPermitted);
    }
    if is_trash(new_parent) || (is_trash(parent) && !root) {
        return Err(MetaError::NotPermitted);
    }
    if flags.restore() && !is_trash(parent) {
        return Err(MetaError::InvalidArgument(
            "RENAME_RESTORE moves entries out of the trash only",
        ));
    }
    Ok(())
}

/// The destination directory `dir` of a rename with `flags`: a directory deleted into the
/// trash takes no entries (`ENOENT`) unless the rename restores.
pub fn check_destination(dir: &Attr, flags: RenameFlags) -> Result<()> {
    if is_deleted_dir(dir) && !flags.restore() {
        return Err(MetaError::NotFound);
    }
    Ok(())
}

/// A directory `dir` that a new entry goes into (mknod, link): not one deleted into the
/// trash (`ENOENT`, as Linux answers for a removed working directory).
pub fn check_live_dir(dir: &Attr) -> Result<()> {
    if is_deleted_dir(dir) {
        return Err(MetaError::NotFound);
    }
    Ok(())
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hour_names_are_utc_go_layout() {
        assert_eq!(hour_name(0), "1970-01-01-00");
        // 2026-12-01 14:50:20 UTC
        assert_eq!(hour_name(1_796_136_620), "2026-12-01-14");
        assert_eq!(hour_name(951_782_400), "2000-02-29-00");
        for sec in [0, 3599, 3600, 951_782_400, 1_796_136_620, 4_102_444_799] {
            let start = hour_start(hour_name(sec).as_bytes()).unwrap();
            assert_eq!(start, sec - sec.rem_euclid(3600));
        }
        for bad in [
            &b"2026-13-01-00"[..],
            b"2026-02-30-00",
            b"2026-12-01-24",
            b"2026-12-01",
            b"2026-12-01-1x",
            b"+026-12-01-10",
            b"not-an-hour!!",
        ] {
            assert_eq!(hour_start(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn expiry_keeps_days_plus_two_hours() {
        let start = hour_start(b"2026-12-01-10").unwrap();
        let keep = (24 + 2) * 3600;
        assert!(!expired(b"2026-12-01-10", start + keep, 1, false));
        assert!(expired(b"2026-12-01-10", start + keep + 1, 1, false));
        assert!(expired(b"2026-12-01-10", start + 1, 1, true));
        assert!(!expired(b"2026-12-01-10", start, 1, true));
        assert!(!expired(b"junk", i64::MAX / 2, 1, true));
    }

    #[test]
    fn entry_names_round_trip_and_cut_at_255_bytes() {
        let n = entry_name(1, 77, b"a-b-c");
        assert_eq!(n, b"1-77-a-b-c");
        assert_eq!(parse_entry_name(&n), Some((1, &b"a-b-c"[..])));
        let long = entry_name(123, 456, &[b'x'; 255]);
        assert_eq!(long.len(), 255);
        assert_eq!(parse_entry_name(&long).unwrap().0, 123);
        for bad in [&b"x-1-a"[..], b"1-x-a", b"1-2-", b"1-2", b"0-2-a", b"-1-a"] {
            assert_eq!(parse_entry_name(bad), None);
        }
    }

    #[test]
    fn guards() {
        let e = |r: Result<()>| r.map_err(|e| e.errno());
        assert_eq!(e(check_create(ROOT_INO, b".trash")), Err(libc::EPERM));
        assert_eq!(e(check_create(TRASH_INO + 3, b"x")), Err(libc::EPERM));
        assert_eq!(e(check_create(ROOT_INO, b"x")), Ok(()));
        assert_eq!(
            e(check_unlink(TRASH_INO + 3, b"x", false)),
            Err(libc::EPERM)
        );
        assert_eq!(e(check_unlink(TRASH_INO + 3, b"x", true)), Ok(()));
        assert_eq!(e(check_unlink(ROOT_INO, b".trash", true)), Err(libc::EPERM));
        let none = RenameFlags::empty();
        let restore = RenameFlags(RenameFlags::RESTORE | RenameFlags::NOREPLACE);
        assert_eq!(
            e(check_rename(
                ROOT_INO,
                b"a",
                TRASH_INO + 1,
                b"b",
                none,
                true
            )),
            Err(libc::EPERM)
        );
        assert_eq!(
            e(check_rename(
                TRASH_INO + 1,
                b"a",
                ROOT_INO,
                b"b",
                none,
                false
            )),
            Err(libc::EPERM)
        );
        assert_eq!(
            e(check_rename(
                TRASH_INO + 1,
                b"a",
                ROOT_INO,
                b"b",
                restore,
                true
            )),
            Ok(())
        );
        assert_eq!(
            e(check_rename(ROOT_INO, b"a", ROOT_INO, b"b", restore, true)),
            Err(libc::EINVAL)
        );
        assert_eq!(
            e(check_rename(
                ROOT_INO, b"a", ROOT_INO, b".trash", none, true
            )),
            Err(libc::EPERM)
        );
    }
}
