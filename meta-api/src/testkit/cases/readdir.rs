//! readdir: order, paging, stability under concurrent changes, plus, permissions.

use std::collections::BTreeSet;

use super::{assert_err, dir, file, list_names, owned_dir, root, user, write, Fixture, ALICE};
use crate::{FileType, MetaError, Result, ROOT_INO};

pub(super) async fn lists_all_sorted(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let d = dir(e, ROOT_INO, "d").await?;
    let mut want = Vec::new();
    for name in ["m", "a", "z", "b", "aa", "B"] {
        let ino = if name == "m" {
            dir(e, d, name).await?
        } else {
            file(e, d, name).await?
        };
        want.push((name.as_bytes().to_vec(), ino));
    }
    want.sort();
    let got = e.readdir(&root(), d, None, 1000, false).await?;
    let got_pairs: Vec<(Vec<u8>, u64)> = got.iter().map(|x| (x.name.clone(), x.ino)).collect();
    assert_eq!(got_pairs, want, "byte order, no . or ..");
    for ent in &got {
        let typ = if ent.name == b"m" {
            FileType::Directory
        } else {
            FileType::Regular
        };
        assert_eq!(ent.typ, typ, "{:?}", ent.name);
    }
    Ok(())
}

pub(super) async fn paging_with_small_limits(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let d = dir(e, ROOT_INO, "d").await?;
    let mut want = Vec::new();
    for i in 0..10 {
        let name = format!("e{}", (i * 7) % 10);
        file(e, d, &name).await?;
        want.push(name.into_bytes());
    }
    want.sort();
    for limit in [1, 2, 3, 7, 10, 11] {
        assert_eq!(list_names(e, d, limit).await?, want, "limit {limit}");
    }
    Ok(())
}

pub(super) async fn paging_while_entries_change(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let b = fx.client().await?;
    let d = dir(e, ROOT_INO, "d").await?;
    let mut stable = BTreeSet::new();
    for i in 0..20 {
        let name = format!("s{i:02}");
        file(e, d, &name).await?;
        stable.insert(name.into_bytes());
    }
    let mut churn: Vec<String> = Vec::new();
    let mut seen: Vec<Vec<u8>> = Vec::new();
    let mut round = 0;
    loop {
        let after = seen.last().cloned();
        let page = e.readdir(&root(), d, after.as_deref(), 3, false).await?;
        if page.is_empty() {
            break;
        }
        seen.extend(page.into_iter().map(|x| x.name));
        // Another client adds names before, among and after the stable ones, and removes
        // names it added earlier.
        for name in [
            format!("a{round}"),
            format!("s{:02}x{round}", round % 20),
            format!("t{round}"),
        ] {
            file(&*b, d, &name).await?;
            churn.push(name);
        }
        if round % 2 == 1 {
            let gone = churn.remove(0);
            b.unlink(&root(), d, gone.as_bytes()).await?;
        }
        round += 1;
        assert!(round < 200, "paging does not end");
    }
    let unique: BTreeSet<Vec<u8>> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "a name repeated: {seen:?}");
    for name in &stable {
        assert!(unique.contains(name), "stable entry {name:?} missing");
    }
    for name in &seen {
        assert!(
            stable.contains(name) || name[0] == b'a' || name[0] == b't' || name.contains(&b'x'),
            "unexpected name {name:?}"
        );
    }
    let sorted = {
        let mut s = seen.clone();
        s.sort();
        s
    };
    assert_eq!(seen, sorted, "pages come in byte order");
    Ok(())
}

pub(super) async fn plus_fills_attrs(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let d = dir(e, ROOT_INO, "d").await?;
    let f = file(e, d, "f").await?;
    write(e, f, 0, 0, 1234).await?;
    dir(e, d, "sub").await?;
    e.symlink(&root(), d, b"ln", b"f").await?;
    let got = e.readdir(&root(), d, None, 100, true).await?;
    assert_eq!(got.len(), 3);
    for ent in got {
        let attr = ent.attr.clone();
        let Some(attr) = attr else {
            panic!("plus listing without attributes: {ent:?}");
        };
        assert_eq!(attr, e.getattr(ent.ino).await?, "{:?}", ent.name);
        assert_eq!(attr.typ, ent.typ);
    }
    Ok(())
}

pub(super) async fn needs_read_permission(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let d = owned_dir(e, "d", ALICE, 0o300).await?;
    file(e, d, "f").await?;
    assert_err!(
        e.readdir(&user(ALICE), d, None, 10, false).await,
        MetaError::PermissionDenied
    );
    e.setattr(&user(ALICE), d, &crate::SetAttr::new().mode(0o500))
        .await?;
    assert_eq!(e.readdir(&user(ALICE), d, None, 10, false).await?.len(), 1);
    Ok(())
}

pub(super) async fn readdir_of_file_is_not_dir(fx: &Fixture<'_>) -> Result<()> {
    let f = file(&*fx.a, ROOT_INO, "f").await?;
    assert_err!(
        fx.a.readdir(&root(), f, None, 10, false).await,
        MetaError::NotDir
    );
    assert_err!(
        fx.a.readdir(&root(), 0x00F0_0000, None, 10, false).await,
        MetaError::NotFound
    );
    Ok(())
}

pub(super) async fn empty_dir_and_past_the_end(fx: &Fixture<'_>) -> Result<()> {
    let e = &*fx.a;
    let d = dir(e, ROOT_INO, "d").await?;
    assert!(e.readdir(&root(), d, None, 10, false).await?.is_empty());
    file(e, d, "a").await?;
    file(e, d, "b").await?;
    let names = |v: Vec<crate::DirEntry>| v.into_iter().map(|x| x.name).collect::<Vec<_>>();
    assert!(e
        .readdir(&root(), d, Some(b"b"), 10, false)
        .await?
        .is_empty());
    assert!(e
        .readdir(&root(), d, Some(b"zzz"), 10, false)
        .await?
        .is_empty());
    assert_eq!(
        names(e.readdir(&root(), d, Some(b"a"), 10, false).await?),
        vec![b"b".to_vec()]
    );
    assert_eq!(
        names(e.readdir(&root(), d, Some(b"aa"), 10, false).await?),
        vec![b"b".to_vec()],
        "the cursor need not be an existing name"
    );
    Ok(())
}
