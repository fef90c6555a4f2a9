//! The trash (JuiceFS's layout, [`crate::trash`]): what deletions move there, the guards,
//! deleting inside it, restoring from it and delayed slices.

use std::sync::Arc;

use super::{
    assert_err, dir, file, list_names, look, owned_dir, root, user, write, Fixture, ALICE,
};
use crate::trash::{entry_name, hour_start, SKIP_TRASH};
use crate::{
    compact, Ino, MetaEngine, MetaError, RenameFlags, Result, SetAttr, Slice, Timestamp, ROOT_INO,
    TRASH_INO,
};

/// A client of the fixture's volume after turning one trash day on.
async fn with_trash(fx: &Fixture<'_>) -> Result<Arc<dyn MetaEngine>> {
    let mut fmt = fx.a.load().await?;
    fmt.trash_days = 1;
    fx.a.init(&fmt, true).await?;
    fx.client().await
}

/// The hour directory holding `name`, and the entry's inode.
async fn in_trash(e: &dyn MetaEngine, name: &[u8]) -> Result<Option<(Ino, Ino)>> {
    for hour in e.readdir(&root(), TRASH_INO, None, 100, false).await? {
        let start = hour_start(&hour.name).expect("hour directories are named by the hour");
        let now = Timestamp::now().sec;
        assert!(
            start <= now && now - start < 2 * 3600,
            "an hour directory of this hour"
        );
        if let Ok(entry) = e.lookup(&root(), hour.ino, name).await {
            return Ok(Some((hour.ino, entry.ino)));
        }
    }
    Ok(None)
}

/// The restore flags.
fn restore() -> RenameFlags {
    RenameFlags(RenameFlags::RESTORE | RenameFlags::NOREPLACE)
}

pub(super) async fn trash_is_found_only_with_trash_days(fx: &Fixture<'_>) -> Result<()> {
    assert_err!(look(&*fx.a, ROOT_INO, ".trash").await, MetaError::NotFound);
    let e = &*with_trash(fx).await?;
    let t = look(e, ROOT_INO, ".trash").await?;
    assert_eq!(t.ino, TRASH_INO);
    assert!(t.attr.is_dir());
    assert_eq!(t.attr.mode & 0o7777, 0o555);
    assert!(
        !list_names(e, ROOT_INO, 10)
            .await?
            .contains(&b".trash".to_vec()),
        "the root never lists the trash"
    );
    Ok(())
}

pub(super) async fn unlink_moves_the_file_into_the_hour_directory(fx: &Fixture<'_>) -> Result<()> {
    let e = &*with_trash(fx).await?;
    let d = dir(e, ROOT_INO, "d").await?;
    let f = file(e, d, "f").await?;
    let s = write(e, f, 0, 0, 5000).await?;
    let before = e.statfs().await?;
    e.unlink(&root(), d, b"f").await?;
    assert_err!(look(e, d, "f").await, MetaError::NotFound);
    let (hour, ino) = in_trash(e, &entry_name(d, f, b"f"))
        .await?
        .expect("the file is in the trash");
    assert_eq!(ino, f);
    let a = e.getattr(f).await?;
    assert_eq!((a.nlink, a.parent, a.length), (1, hour, 5000));
    assert_eq!(e.read_chunk(f, 0).await?, vec![s], "the data stays");
    assert_eq!(e.deleted_files(10).await?, vec![], "nothing to purge");
    let after = e.statfs().await?;
    assert_eq!(
        after.used_inodes,
        before.used_inodes + 1,
        "the file still counts, and the new hour directory too"
    );
    let h = e.getattr(hour).await?;
    assert_eq!((h.mode & 0o7777, h.uid, h.parent), (0o555, 0, TRASH_INO));
    assert_eq!(e.sync_dir_stat(hour).await?.inodes, 1);
    if let Some(st) = e.dir_stat(hour).await? {
        assert_eq!(
            st,
            e.sync_dir_stat(hour).await?,
            "the hour's stats are exact"
        );
    }
    // A second deletion in the same hour lands in the same directory.
    let g = file(e, d, "g").await?;
    e.unlink(&root(), d, b"g").await?;
    assert_eq!(in_trash(e, &entry_name(d, g, b"g")).await?, Some((hour, g)));
    Ok(())
}

pub(super) async fn rmdir_and_rename_over_move_into_the_trash(fx: &Fixture<'_>) -> Result<()> {
    let e = &*with_trash(fx).await?;
    let d = dir(e, ROOT_INO, "d").await?;
    let sub = dir(e, d, "sub").await?;
    let links = e.getattr(d).await?.nlink;
    e.rmdir(&root(), d, b"sub").await?;
    assert_eq!(e.getattr(d).await?.nlink, links - 1);
    let (hour, ino) = in_trash(e, &entry_name(d, sub, b"sub"))
        .await?
        .expect("the directory is in the trash");
    assert_eq!(ino, sub);
    assert_eq!(e.getattr(sub).await?.parent, hour);
    assert_eq!(
        e.getattr(hour).await?.nlink,
        2,
        "directories in the trash do not count as links (JuiceFS)"
    );
    // Nothing new goes into a deleted directory.
    assert_err!(
        e.mknod(&root(), sub, b"x", crate::FileType::Regular, 0o644, 0)
            .await,
        MetaError::NotFound
    );
    // Rename over a file and over an empty directory.
    let old = file(e, d, "old").await?;
    file(e, d, "new").await?;
    e.rename(&root(), d, b"new", d, b"old", RenameFlags::empty())
        .await?;
    assert_eq!(
        in_trash(e, &entry_name(d, old, b"old")).await?.map(|x| x.1),
        Some(old)
    );
    assert_eq!(e.getattr(old).await?.nlink, 1);
    let victim = dir(e, d, "victim").await?;
    dir(e, d, "mover").await?;
    e.rename(&root(), d, b"mover", d, b"victim", RenameFlags::empty())
        .await?;
    assert_eq!(
        in_trash(e, &entry_name(d, victim, b"victim"))
            .await?
            .map(|x| x.1),
        Some(victim)
    );
    assert_eq!(e.deleted_files(10).await?, vec![]);
    Ok(())
}

pub(super) async fn a_hard_link_keeps_parent_zero_in_the_trash(fx: &Fixture<'_>) -> Result<()> {
    let e = &*with_trash(fx).await?;
    let f = file(e, ROOT_INO, "f").await?;
    e.link(&root(), f, ROOT_INO, b"g").await?;
    e.unlink(&root(), ROOT_INO, b"f").await?;
    assert!(in_trash(e, &entry_name(ROOT_INO, f, b"f")).await?.is_some());
    let a = e.getattr(f).await?;
    assert_eq!(
        (a.nlink, a.parent),
        (2, 0),
        "one name left, one in the trash"
    );
    assert_eq!(look(e, ROOT_INO, "g").await?.ino, f);
    e.unlink(&root(), ROOT_INO, b"g").await?;
    assert!(in_trash(e, &entry_name(ROOT_INO, f, b"g")).await?.is_some());
    assert_eq!(e.getattr(f).await?.nlink, 2);
    Ok(())
}

pub(super) async fn the_trash_is_guarded(fx: &Fixture<'_>) -> Result<()> {
    let e = &*with_trash(fx).await?;
    let pub_dir = owned_dir(e, "pub", ALICE, 0o777).await?;
    let f = file(e, pub_dir, "f").await?;
    e.unlink(&root(), pub_dir, b"f").await?;
    let (hour, _) = in_trash(e, &entry_name(pub_dir, f, b"f"))
        .await?
        .expect("in the trash");
    let tname = entry_name(pub_dir, f, b"f");
    let reg = crate::FileType::Regular;
    let eperm = |r: Result<()>| assert_err!(r, MetaError::NotPermitted);
    eperm(
        e.mknod(&root(), TRASH_INO, b"x", reg, 0o644, 0)
            .await
            .map(drop),
    );
    eperm(e.mknod(&root(), hour, b"x", reg, 0o644, 0).await.map(drop));
    eperm(e.mkdir(&root(), ROOT_INO, b".trash", 0o755).await.map(drop));
    eperm(e.symlink(&root(), hour, b"l", b"t").await.map(drop));
    eperm(e.link(&root(), f, hour, b"l").await.map(drop));
    eperm(e.unlink(&root(), ROOT_INO, b".trash").await);
    eperm(e.rmdir(&root(), ROOT_INO, b".trash").await);
    eperm(e.unlink(&user(ALICE), hour, &tname).await);
    let none = RenameFlags::empty();
    eperm(
        e.rename(&root(), ROOT_INO, b".trash", ROOT_INO, b"t", none)
            .await,
    );
    file(e, pub_dir, "g").await?;
    eperm(e.rename(&root(), pub_dir, b"g", hour, b"g", none).await);
    eperm(
        e.rename(&root(), pub_dir, b"g", ROOT_INO, b".trash", none)
            .await,
    );
    eperm(
        e.rename(&user(ALICE), hour, &tname, pub_dir, b"f", restore())
            .await,
    );
    assert_err!(
        e.rename(&root(), pub_dir, b"g", pub_dir, b"h", restore())
            .await,
        MetaError::InvalidArgument(_)
    );
    assert_err!(
        e.rename(
            &root(),
            hour,
            &tname,
            pub_dir,
            b"f",
            RenameFlags(RenameFlags::RESTORE)
        )
        .await,
        MetaError::InvalidArgument(_)
    );
    // Nothing changed.
    assert_eq!(e.getattr(f).await?.parent, hour);
    assert_eq!(look(e, pub_dir, "g").await?.attr.nlink, 1);
    Ok(())
}

pub(super) async fn root_deletes_inside_the_trash_for_real(fx: &Fixture<'_>) -> Result<()> {
    let e = &*with_trash(fx).await?;
    let d = dir(e, ROOT_INO, "d").await?;
    let f = file(e, d, "f").await?;
    write(e, f, 0, 0, 100).await?;
    e.unlink(&root(), d, b"f").await?;
    e.rmdir(&root(), ROOT_INO, b"d").await?;
    let tf = entry_name(d, f, b"f");
    let td = entry_name(ROOT_INO, d, b"d");
    let (hour, _) = in_trash(e, &tf).await?.expect("in the trash");
    let inodes = e.statfs().await?.used_inodes;
    e.unlink(&root(), hour, &tf).await?;
    assert_eq!(
        e.deleted_files(10)
            .await?
            .iter()
            .map(|d| d.ino)
            .collect::<Vec<_>>(),
        vec![f],
        "queued for purge"
    );
    e.rmdir(&root(), hour, &td).await?;
    assert_err!(e.getattr(d).await, MetaError::NotFound);
    assert_eq!(list_names(e, hour, 10).await?, Vec::<Vec<u8>>::new());
    e.rmdir(&root(), TRASH_INO, &list_names(e, TRASH_INO, 10).await?[0])
        .await?;
    assert_err!(e.getattr(hour).await, MetaError::NotFound);
    assert_eq!(e.statfs().await?.used_inodes, inodes - 3);
    assert_eq!(e.getattr(TRASH_INO).await?.nlink, 2);
    Ok(())
}

pub(super) async fn restore_puts_entries_back(fx: &Fixture<'_>) -> Result<()> {
    let e = &*with_trash(fx).await?;
    let d = dir(e, ROOT_INO, "d").await?;
    let f = file(e, d, "f").await?;
    e.unlink(&root(), d, b"f").await?;
    e.rmdir(&root(), ROOT_INO, b"d").await?;
    let (hour, _) = in_trash(e, &entry_name(d, f, b"f"))
        .await?
        .expect("in the trash");
    let root_links = e.getattr(ROOT_INO).await?.nlink;
    // The file back into its directory, which is itself in the trash: only RESTORE may.
    let tf = entry_name(d, f, b"f");
    assert_err!(
        e.rename(
            &root(),
            hour,
            &tf,
            d,
            b"f",
            RenameFlags(RenameFlags::NOREPLACE)
        )
        .await,
        MetaError::NotFound
    );
    e.rename(&root(), hour, &tf, d, b"f", restore()).await?;
    assert_eq!(e.getattr(f).await?.parent, d);
    // Then the directory, with its file inside, back to the root.
    e.rename(
        &root(),
        hour,
        &entry_name(ROOT_INO, d, b"d"),
        ROOT_INO,
        b"d",
        restore(),
    )
    .await?;
    assert_eq!(look(e, ROOT_INO, "d").await?.ino, d);
    assert_eq!(look(e, d, "f").await?.ino, f);
    assert_eq!(e.getattr(d).await?.parent, ROOT_INO);
    assert_eq!(e.getattr(ROOT_INO).await?.nlink, root_links + 1);
    assert_eq!(e.getattr(hour).await?.nlink, 2);
    // A name taken meanwhile is not replaced.
    e.unlink(&root(), d, b"f").await?;
    file(e, d, "f").await?;
    assert_err!(
        e.rename(&root(), hour, &tf, d, b"f", restore()).await,
        MetaError::Exists
    );
    Ok(())
}

pub(super) async fn skip_trash_flag_deletes_for_real(fx: &Fixture<'_>) -> Result<()> {
    let e = &*with_trash(fx).await?;
    let f = file(e, ROOT_INO, "f").await?;
    e.setattr(&root(), f, &SetAttr::new().flags(SKIP_TRASH))
        .await?;
    e.unlink(&root(), ROOT_INO, b"f").await?;
    assert_err!(e.getattr(f).await, MetaError::NotFound);
    assert_eq!(e.deleted_files(10).await?.len(), 1);
    // New inodes inherit the flag from their directory (chattr +s on a directory).
    let keep = dir(e, ROOT_INO, "nokeep").await?;
    e.setattr(&root(), keep, &SetAttr::new().flags(SKIP_TRASH))
        .await?;
    let inner = file(e, keep, "x").await?;
    assert_eq!(e.getattr(inner).await?.flags & SKIP_TRASH, SKIP_TRASH);
    e.unlink(&root(), keep, b"x").await?;
    assert_err!(e.getattr(inner).await, MetaError::NotFound);
    // Root may ask for it per call; anyone else's request is ignored.
    let g = file(e, ROOT_INO, "g").await?;
    e.unlink(&root().skipping_trash(), ROOT_INO, b"g").await?;
    assert_err!(e.getattr(g).await, MetaError::NotFound);
    let d = owned_dir(e, "d", ALICE, 0o755).await?;
    let sub = e.mkdir(&user(ALICE), d, b"sub", 0o755).await?.ino;
    e.rmdir(&user(ALICE).skipping_trash(), d, b"sub").await?;
    assert_eq!(
        in_trash(e, &entry_name(d, sub, b"sub")).await?.map(|x| x.1),
        Some(sub)
    );
    Ok(())
}

pub(super) async fn delayed_slices_are_freed_after_their_days(fx: &Fixture<'_>) -> Result<()> {
    let e = &*with_trash(fx).await?;
    let f = file(e, ROOT_INO, "f").await?;
    write(e, f, 0, 0, 100).await?;
    write(e, f, 0, 50, 100).await?;
    let before = e.read_chunk(f, 0).await?;
    let plan = compact::plan(&before).expect("worth compacting");
    let id = e.new_slice_id().await?;
    e.compact_chunk(f, 0, &plan, id).await?.expect("committed");
    let now = Timestamp::now().sec;
    assert_eq!(e.free_delayed_slices(now - 60, 10).await?, vec![]);
    assert_eq!(e.free_delayed_slices(now + 60, 0).await?, vec![]);
    assert_eq!(e.list_slices().await?.delayed.len(), 2, "still kept");
    let mut freed = e.free_delayed_slices(now + 60, 10).await?;
    freed.sort_unstable_by_key(|s| s.id);
    let mut want: Vec<Slice> = before.iter().map(|s| Slice::whole(s.id, s.size)).collect();
    want.sort_unstable_by_key(|s| s.id);
    assert_eq!(freed, want, "their last reference went");
    let got = e.list_slices().await?;
    assert_eq!(got.delayed, vec![]);
    let mut pending = got.pending.clone();
    pending.sort_unstable();
    assert_eq!(
        pending,
        want.iter().map(|s| (s.id, s.size)).collect::<Vec<_>>()
    );
    assert_eq!(e.free_delayed_slices(now + 60, 10).await?, vec![]);
    Ok(())
}
