//! Path resolution: turning a volume path into inodes, component by component, following
//! symbolic links the way Linux does.

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use meta_api::{Context, Entry, FileType as Kind, Ino, MetaError, MAX_NAME_LEN, ROOT_INO};

use crate::{Vfs, VfsError};

/// Longest path accepted, in bytes (Linux's `PATH_MAX`).
pub(crate) const MAX_PATH_LEN: usize = 4096;

/// Symbolic links followed in one resolution before giving up with `ELOOP` (Linux's
/// `MAXSYMLINKS`).
pub(crate) const MAX_SYMLINKS: u32 = 40;

/// What to do with the last component of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Last {
    /// Look it up and follow it if it is a symbolic link (`stat`, `open`).
    Follow,
    /// Look it up but keep a symbolic link as it is (`lstat`, `readlink`, `unlink`).
    NoFollow,
    /// Do not look it up: the caller creates, removes or renames that name.
    Parent,
    /// Look every component up, creating the missing ones as directories (`mkdir -p`).
    CreateDirs,
}

/// The outcome of a resolution.
#[derive(Debug)]
pub(crate) struct Walked {
    /// The directory holding the last component (for a path ending on the root, `.` or
    /// `..`: the directory the path names).
    pub(crate) parent: Ino,
    /// The last component, or `None` when the path ends on the root, `.` or `..`.
    pub(crate) name: Option<Vec<u8>>,
    /// The inode the path names, if it exists ([`Last::Parent`] never looks it up, except
    /// when the path names a directory without a last name).
    pub(crate) entry: Option<Entry>,
    /// The path ended with `/` (or a followed link's target did): it must name a directory.
    pub(crate) must_be_dir: bool,
    /// The names of the directories from the root to `parent`.
    pub(crate) dir_names: Vec<Vec<u8>>,
}

impl Walked {
    /// The entry, or `ENOENT`.
    pub(crate) fn existing(self) -> io::Result<Entry> {
        self.entry.ok_or_else(|| meta_err(MetaError::NotFound))
    }

    /// The directory and name to create, remove or rename; `EEXIST`-like callers pass
    /// `when_none` for paths such as `/`, `a/.` or `a/..` that name no entry of a parent.
    pub(crate) fn parent_and_name(&self, when_none: MetaError) -> io::Result<(Ino, &[u8])> {
        match &self.name {
            Some(n) => Ok((self.parent, n)),
            None => Err(meta_err(when_none)),
        }
    }

    /// The absolute volume path of what was resolved (symlinks resolved, no `.`/`..`).
    pub(crate) fn physical_path(&self) -> PathBuf {
        let mut out = Vec::new();
        for n in self.dir_names.iter().chain(self.name.iter()) {
            out.push(b'/');
            out.extend_from_slice(n);
        }
        if out.is_empty() {
            out.push(b'/');
        }
        PathBuf::from(OsString::from_vec(out))
    }
}

/// An `io::Error` from a metadata error, through the VFS's one errno table.
pub(crate) fn meta_err(e: MetaError) -> io::Error {
    VfsError::from(e).into()
}

/// The bytes of a path; checks its total length.
pub(crate) fn path_bytes(path: &Path) -> io::Result<&[u8]> {
    let bytes = path.as_os_str().as_bytes();
    if bytes.is_empty() {
        return Err(meta_err(MetaError::NotFound));
    }
    if bytes.len() > MAX_PATH_LEN {
        return Err(meta_err(MetaError::NameTooLong));
    }
    Ok(bytes)
}

/// Pushes the components of `path` onto `pending` so that popping yields them in order;
/// empty components (`a//b`) are skipped, over-long ones are `ENAMETOOLONG`.
fn push_components(pending: &mut Vec<Vec<u8>>, path: &[u8]) -> io::Result<()> {
    let start = pending.len();
    for comp in path.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        if comp.len() > MAX_NAME_LEN {
            return Err(meta_err(MetaError::NameTooLong));
        }
        pending.push(comp.to_vec());
    }
    pending[start..].reverse();
    Ok(())
}

/// Resolves `path` (absolute, or relative to the volume root) as `ctx`.
///
/// Every intermediate component must be a directory (`ENOTDIR`) or a symbolic link to one;
/// links are followed (absolute targets from the volume root, relative ones from the
/// link's directory), at most [`MAX_SYMLINKS`] of them (`ELOOP`). `..` goes to the parent
/// of the directory actually reached (it stays at the root).
pub(crate) async fn walk(vfs: &Vfs, ctx: &Context, path: &Path, last: Last) -> io::Result<Walked> {
    let bytes = path_bytes(path)?;
    let mut must_be_dir = bytes.ends_with(b"/");
    let mut pending = Vec::new();
    push_components(&mut pending, bytes)?;
    // The directories from the root to the current one, with the names that lead there.
    let mut stack: Vec<(Ino, Vec<u8>)> = vec![(ROOT_INO, Vec::new())];
    let mut links = 0u32;
    let current = |stack: &[(Ino, Vec<u8>)]| stack.last().map_or(ROOT_INO, |d| d.0);
    let names = |stack: &[(Ino, Vec<u8>)]| stack.iter().skip(1).map(|d| d.1.clone()).collect();

    while let Some(comp) = pending.pop() {
        let is_last = pending.is_empty();
        if comp == b"." {
            continue;
        }
        if comp == b".." {
            if stack.len() > 1 {
                stack.pop();
            }
            continue;
        }
        let dir = current(&stack);
        if is_last && last == Last::Parent {
            return Ok(Walked {
                parent: dir,
                name: Some(comp),
                entry: None,
                must_be_dir,
                dir_names: names(&stack),
            });
        }
        let entry = match vfs.lookup(ctx, dir, &comp).await {
            Ok(e) => e,
            Err(e)
                if e.as_meta()
                    .is_some_and(|m| matches!(m, MetaError::NotFound)) =>
            {
                if last == Last::CreateDirs {
                    match vfs.mkdir(ctx, dir, &comp, 0o777).await {
                        Ok(e) => e,
                        // Someone else created it meanwhile: use theirs.
                        Err(e) if e.as_meta().is_some_and(|m| matches!(m, MetaError::Exists)) => {
                            vfs.lookup(ctx, dir, &comp).await?
                        }
                        Err(e) => return Err(e.into()),
                    }
                } else if is_last {
                    return Ok(Walked {
                        parent: dir,
                        name: Some(comp),
                        entry: None,
                        must_be_dir,
                        dir_names: names(&stack),
                    });
                } else {
                    return Err(e.into());
                }
            }
            Err(e) => return Err(e.into()),
        };
        let follow = !is_last || must_be_dir || matches!(last, Last::Follow | Last::CreateDirs);
        if entry.attr.typ == Kind::Symlink && follow {
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(meta_err(MetaError::Loop));
            }
            let target = vfs.readlink(ctx, entry.ino).await?;
            if target.is_empty() {
                return Err(meta_err(MetaError::NotFound));
            }
            if target.starts_with(b"/") {
                stack.truncate(1);
            }
            if is_last && target.ends_with(b"/") {
                must_be_dir = true;
            }
            push_components(&mut pending, &target)?;
            continue;
        }
        if is_last {
            if must_be_dir && entry.attr.typ != Kind::Directory {
                return Err(meta_err(MetaError::NotDir));
            }
            return Ok(Walked {
                parent: dir,
                name: Some(comp),
                entry: Some(entry),
                must_be_dir,
                dir_names: names(&stack),
            });
        }
        if entry.attr.typ != Kind::Directory {
            return Err(meta_err(MetaError::NotDir));
        }
        stack.push((entry.ino, comp));
    }

    // The path ends on the root, `.` or `..`: it names the current directory itself.
    let dir = current(&stack);
    let attr = vfs.getattr(ctx, dir).await?;
    Ok(Walked {
        parent: dir,
        name: None,
        entry: Some(Entry { ino: dir, attr }),
        must_be_dir: true,
        dir_names: names(&stack),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comps(p: &[u8]) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        push_components(&mut v, p).unwrap();
        v.reverse();
        v
    }

    #[test]
    fn splits_components() {
        assert_eq!(
            comps(b"/a//b/./c/"),
            vec![b"a".to_vec(), b"b".to_vec(), b".".to_vec(), b"c".to_vec()]
        );
        assert!(comps(b"/").is_empty());
        let long = vec![b'x'; 256];
        let e = push_components(&mut Vec::new(), &long).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENAMETOOLONG));
    }

    #[test]
    fn path_limits() {
        assert_eq!(
            path_bytes(Path::new("")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        let long = "a/".repeat(2049);
        let e = path_bytes(Path::new(&long)).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENAMETOOLONG));
    }
}
