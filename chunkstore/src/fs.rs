//! `FsStore`: JuiceFS's `file` storage — objects are files under a root directory.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;

use crate::key::validate_key;
use crate::{ChunkStore, ListPage, ObjectMeta, Result, StoreError};

/// Temporary files start with this and contain [`TMP_MARK`], as JuiceFS names them
/// (`.jfs.{name}.tmp.{random}`), so that either program recognises the other's leftovers.
const TMP_START: &str = ".jfs.";
const TMP_MARK: &str = ".tmp.";
/// JuiceFS cuts the object name to this many bytes inside a temporary file name.
const TMP_NAME_MAX: usize = 200;

/// A [`ChunkStore`] over a local directory, laid out like JuiceFS's `file` storage: key
/// `a/b/c` is the file `{root}/a/b/c`. This is what a volume formatted with
/// `--storage file --bucket /var/jfs/` uses (the root is the bucket; the volume's objects
/// are under `{root}/{volume name}/`, see [`Prefixed`](crate::Prefixed)).
///
/// A `put` writes a temporary file in the object's directory, syncs it, renames it over the
/// key and syncs the directory (and any directory it had to create), so an object is either
/// absent or complete and is durable when `put` returns. Temporary files are never listed.
/// All file-system calls run on tokio's blocking pool.
///
/// A key segment that looks like a temporary file name (`.jfs.*.tmp.*`) is `Invalid` here.
/// A key that would need a directory where an object is (or the reverse: `a` and `a/b`) is
/// `Invalid` on `put`, a limitation every directory-backed store shares.
#[derive(Debug, Clone)]
pub struct FsStore {
    root: PathBuf,
    /// Directories whose whole chain up to the root this store has synced since it opened.
    durable_dirs: Arc<Mutex<HashSet<PathBuf>>>,
}

/// Past this many remembered directories the set is cleared (each is then synced once more).
const DURABLE_DIRS_MAX: usize = 65_536;

impl FsStore {
    /// A store rooted at `root` (made absolute against the current directory). Nothing is
    /// touched until the first operation; `put` creates the directories it needs, including
    /// the root.
    pub fn new(root: impl Into<PathBuf>) -> FsStore {
        let root = root.into();
        FsStore {
            root: std::path::absolute(&root).unwrap_or(root),
            durable_dirs: Arc::default(),
        }
    }

    fn dirs(&self) -> MutexGuard<'_, HashSet<PathBuf>> {
        // The set is only a cache of work already done; a poisoned one is still correct.
        self.durable_dirs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A store rooted at `root`, creating the root directory if it is missing.
    pub async fn open(root: impl Into<PathBuf>) -> Result<FsStore> {
        let store = FsStore::new(root);
        let root = store.root.clone();
        blocking(move || fs::create_dir_all(&root))
            .await?
            .map_err(|e| map_io(e, &store.root.display().to_string(), Op::Write))?;
        Ok(store)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file that holds `key` (after checking the key).
    pub fn path_of(&self, key: &str) -> Result<PathBuf> {
        validate_key(key)?;
        if key.split('/').any(is_tmp_name) {
            return Err(StoreError::Invalid(format!(
                "key {key:?} has a segment named like a temporary file"
            )));
        }
        Ok(self.root.join(key))
    }
}

/// Whether a directory entry is one of the temporary files a `put` writes before its rename.
fn is_tmp_name(name: &str) -> bool {
    name.starts_with(TMP_START) && name[TMP_START.len()..].contains(TMP_MARK)
}

fn tmp_name(object_name: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut cut = object_name.len().min(TMP_NAME_MAX);
    while !object_name.is_char_boundary(cut) {
        cut -= 1;
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // Unique within the process by the counter, across processes by pid and time; `put`
    // still creates it exclusively and retries on a collision.
    let unique = nanos.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (u64::from(std::process::id()) << 40)
        ^ n.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    format!(
        "{TMP_START}{}{TMP_MARK}{}",
        &object_name[..cut],
        unique >> 1
    )
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Read,
    Write,
}

/// Maps an I/O error to the store's kinds: missing → `NotFound`, `EACCES`/`EPERM` →
/// `Denied`, a key/directory clash on write or a segment longer than the file system allows
/// → `Invalid`, anything else → `Other`.
fn map_io(e: io::Error, key: &str, op: Op) -> StoreError {
    if e.raw_os_error() == Some(libc::ENAMETOOLONG) {
        return StoreError::Invalid(format!("{key}: a segment is too long for a file name"));
    }
    match e.kind() {
        ErrorKind::NotFound => StoreError::NotFound(key.to_string()),
        // A path through a regular file: the object cannot exist.
        ErrorKind::NotADirectory if op == Op::Read => StoreError::NotFound(key.to_string()),
        ErrorKind::PermissionDenied => StoreError::Denied(format!("{key}: {e}")),
        ErrorKind::NotADirectory | ErrorKind::IsADirectory | ErrorKind::AlreadyExists
            if op == Op::Write =>
        {
            StoreError::Invalid(format!(
                "{key}: clashes with an existing object or directory ({e})"
            ))
        }
        _ => StoreError::other(io::Error::new(e.kind(), format!("{key}: {e}"))),
    }
}

async fn blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::other(format!("blocking file-system task failed: {e}")))
}

fn mtime_secs(m: &fs::Metadata) -> i64 {
    m.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `data` to `path` atomically and durably. Unless `dir_known_durable`, the
/// directory's ancestors up to the root's parent are synced too: this put, or a concurrent
/// one whose own sync has not finished yet, may have just created them.
fn put_file(root: &Path, path: &Path, data: &[u8], dir_known_durable: bool) -> io::Result<()> {
    let (dir, name) = match (path.parent(), path.file_name().and_then(|n| n.to_str())) {
        (Some(d), Some(n)) => (d, n),
        _ => {
            return Err(io::Error::new(
                ErrorKind::InvalidInput,
                "key has no file name",
            ))
        }
    };
    let mut sync_ancestors = !dir_known_durable;
    let mut attempt = 0;
    let (tmp, mut file) = loop {
        attempt += 1;
        let tmp = dir.join(tmp_name(name));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == ErrorKind::AlreadyExists && attempt < 8 => continue,
            Err(e) if e.kind() == ErrorKind::NotFound && attempt < 8 => {
                fs::create_dir_all(dir)?;
                sync_ancestors = true;
            }
            Err(e) => return Err(e),
        }
    };
    let written = file
        .write_all(data)
        .and_then(|()| file.sync_data())
        .and_then(|()| {
            drop(file);
            fs::rename(&tmp, path)
        });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)?;
    if sync_ancestors {
        for p in dir.ancestors().skip(1) {
            if !p.starts_with(root) {
                break;
            }
            sync_dir(p)?;
        }
        if let Some(p) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(p)?;
        }
    }
    Ok(())
}

fn read_file(path: &Path, off: u64, len: Option<u64>) -> io::Result<Vec<u8>> {
    let mut file = File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(ErrorKind::NotFound, "not a regular file"));
    }
    let size = meta.len();
    if off >= size || len == Some(0) {
        return Ok(Vec::new());
    }
    let want = len.map_or(size - off, |l| l.min(size - off));
    file.seek(SeekFrom::Start(off))?;
    let mut buf = Vec::with_capacity(want as usize);
    file.take(want).read_to_end(&mut buf)?;
    Ok(buf)
}

fn head_file(path: &Path, key: &str) -> io::Result<ObjectMeta> {
    let meta = fs::metadata(path)?;
    if !meta.is_file() {
        return Err(io::Error::new(ErrorKind::NotFound, "not a regular file"));
    }
    Ok(ObjectMeta {
        key: key.to_string(),
        size: meta.len(),
        mtime: mtime_secs(&meta),
    })
}

fn delete_file(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::NotFound | ErrorKind::NotADirectory | ErrorKind::IsADirectory
            ) =>
        {
            Ok(())
        }
        r => r,
    }
}

/// The state of one listing: what to look for and what was found so far.
struct Lister<'a> {
    prefix: &'a str,
    start_after: Option<&'a str>,
    want: usize,
    out: Vec<ObjectMeta>,
    /// The directories (device, inode) the walk is inside: a symlink back to one of them
    /// is a loop, and is not followed.
    inside: Vec<(u64, u64)>,
}

impl Lister<'_> {
    /// Visits `dir`, whose objects' keys all start with `key_prefix`, in key order.
    ///
    /// Every key under a subdirectory `d` starts with `d/`, so sorting entries by name with
    /// `/` appended to directory names yields the byte order of the full keys (`a-b` < `a/x`
    /// < `a0`), which a plain sort of names would not.
    fn walk(&mut self, dir: &Path, key_prefix: &str) -> io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let id = match fs::metadata(dir) {
            Ok(m) => (m.dev(), m.ino()),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                return Ok(())
            }
            Err(e) => return Err(e),
        };
        if self.inside.contains(&id) {
            return Ok(());
        }
        self.inside.push(id);
        let walked = self.walk_inside(dir, key_prefix);
        self.inside.pop();
        walked
    }

    /// [`Lister::walk`] of a directory that is not one of the walk's own ancestors.
    fn walk_inside(&mut self, dir: &Path, key_prefix: &str) -> io::Result<()> {
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                return Ok(())
            }
            Err(e) => return Err(e),
        };
        let mut entries: Vec<(String, bool, OsString)> = Vec::new();
        for e in rd {
            let e = e?;
            let os_name = e.file_name();
            // Keys are UTF-8; a file that no key can name is not an object.
            let Some(name) = os_name.to_str() else {
                continue;
            };
            if is_tmp_name(name) {
                continue;
            }
            let ft = e.file_type()?;
            let is_dir = if ft.is_symlink() {
                match fs::metadata(e.path()) {
                    Ok(m) if m.is_dir() => true,
                    Ok(m) if m.is_file() => false,
                    _ => continue,
                }
            } else if ft.is_dir() {
                true
            } else if ft.is_file() {
                false
            } else {
                continue;
            };
            let sort_name = if is_dir {
                format!("{name}/")
            } else {
                name.to_string()
            };
            entries.push((sort_name, is_dir, os_name.clone()));
        }
        entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));

        for (sort_name, is_dir, os_name) in entries {
            let full = format!("{key_prefix}{sort_name}");
            if is_dir {
                if !(full.starts_with(self.prefix) || self.prefix.starts_with(&full)) {
                    continue;
                }
                // Every key under `full` sorts before `start_after` unless it extends `full`.
                if let Some(after) = self.start_after {
                    if after > full.as_str() && !after.starts_with(&full) {
                        continue;
                    }
                }
                self.walk(&dir.join(&os_name), &full)?;
            } else {
                if !full.starts_with(self.prefix) {
                    continue;
                }
                if self.start_after.is_some_and(|a| full.as_str() <= a) {
                    continue;
                }
                let meta = match fs::metadata(dir.join(&os_name)) {
                    Ok(m) if m.is_file() => m,
                    // Deleted or replaced while we listed: not part of this listing.
                    Ok(_) => continue,
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                self.out.push(ObjectMeta {
                    key: full,
                    size: meta.len(),
                    mtime: mtime_secs(&meta),
                });
            }
            if self.out.len() >= self.want {
                return Ok(());
            }
        }
        Ok(())
    }
}

fn list_dir(
    root: &Path,
    prefix: &str,
    start_after: Option<&str>,
    limit: usize,
) -> io::Result<ListPage> {
    // Start at the deepest directory the prefix names in full.
    let base = prefix.rfind('/').map_or("", |i| &prefix[..=i]);
    if !base.is_empty() && validate_key(&base[..base.len() - 1]).is_err() {
        // No valid key lives under a malformed directory prefix.
        return Ok(ListPage::default());
    }
    let mut lister = Lister {
        prefix,
        start_after,
        want: limit.saturating_add(1),
        out: Vec::new(),
        inside: Vec::new(),
    };
    if !base.is_empty() {
        // The store's root is an ancestor of any listing: a link back to it is a loop too.
        use std::os::unix::fs::MetadataExt;
        if let Ok(m) = fs::metadata(root) {
            lister.inside.push((m.dev(), m.ino()));
        }
    }
    lister.walk(&root.join(base), base)?;
    let mut objects = lister.out;
    let truncated = objects.len() > limit;
    objects.truncate(limit);
    Ok(ListPage { objects, truncated })
}

#[async_trait]
impl ChunkStore for FsStore {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        let path = self.path_of(key)?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let known = self.dirs().contains(&dir);
        let root = self.root.clone();
        blocking(move || put_file(&root, &path, &data, known))
            .await?
            .map_err(|e| map_io(e, key, Op::Write))?;
        if !known {
            let mut dirs = self.dirs();
            if dirs.len() >= DURABLE_DIRS_MAX {
                dirs.clear();
            }
            dirs.insert(dir);
        }
        Ok(())
    }

    async fn get_range(&self, key: &str, off: u64, len: Option<u64>) -> Result<Bytes> {
        let path = self.path_of(key)?;
        blocking(move || read_file(&path, off, len))
            .await?
            .map(Bytes::from)
            .map_err(|e| map_io(e, key, Op::Read))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path_of(key)?;
        blocking(move || delete_file(&path))
            .await?
            .map_err(|e| map_io(e, key, Op::Write))
    }

    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        if limit == 0 {
            return Err(StoreError::Invalid("list limit must be positive".into()));
        }
        let root = self.root.clone();
        let (p, a) = (prefix.to_string(), start_after.map(str::to_string));
        blocking(move || list_dir(&root, &p, a.as_deref(), limit))
            .await?
            .map_err(|e| map_io(e, prefix, Op::Read))
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let path = self.path_of(key)?;
        let k = key.to_string();
        blocking(move || head_file(&path, &k))
            .await?
            .map_err(|e| map_io(e, key, Op::Read))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChunkStoreExt;

    #[test]
    fn tmp_names_are_recognised() {
        let t = tmp_name("1_0_4194304");
        assert!(t.starts_with(".jfs.1_0_4194304.tmp."), "{t}");
        assert!(is_tmp_name(&t));
        assert!(is_tmp_name(".jfs.x.tmp.123"));
        assert!(!is_tmp_name(".jfs.x"));
        assert!(!is_tmp_name("1_0_5"));
        assert!(!is_tmp_name(".tmp.jfs."));
        let long = "é".repeat(150);
        let t = tmp_name(&long);
        assert!(is_tmp_name(&t) && t.len() < 240);
    }

    #[tokio::test]
    async fn temp_files_are_not_listed_and_tmp_keys_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStore::new(dir.path());
        s.put("v/a", Bytes::from_static(b"x")).await.unwrap();
        fs::write(dir.path().join("v/.jfs.b.tmp.42"), b"partial").unwrap();
        fs::write(dir.path().join("v/.jfs.a.tmp.7"), b"partial").unwrap();
        let keys = keys_under(&s, "").await;
        assert_eq!(keys, vec!["v/a"]);
        assert!(matches!(
            s.put("v/.jfs.c.tmp.1", Bytes::new()).await,
            Err(StoreError::Invalid(_))
        ));
        // A failed put leaves no temporary file behind.
        assert!(matches!(
            s.put("v/a/under-a-file", Bytes::from_static(b"y")).await,
            Err(StoreError::Invalid(_))
        ));
        let names: Vec<_> = fs::read_dir(dir.path().join("v"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
    }

    #[tokio::test]
    async fn objects_are_plain_files_at_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStore::open(dir.path().join("bucket")).await.unwrap();
        s.put("vol/chunks/0/0/1_0_3", Bytes::from_static(b"abc"))
            .await
            .unwrap();
        let on_disk = fs::read(dir.path().join("bucket/vol/chunks/0/0/1_0_3")).unwrap();
        assert_eq!(on_disk, b"abc");
        // A directory is not an object.
        assert!(matches!(
            s.head("vol/chunks").await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            s.get("vol/chunks/0").await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            s.get("vol/chunks/0/0/1_0_3/x").await,
            Err(StoreError::NotFound(_))
        ));
        s.delete("vol/chunks").await.unwrap();
        assert!(dir.path().join("bucket/vol/chunks").is_dir());
    }

    #[tokio::test]
    async fn overlong_segments_are_invalid() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStore::new(dir.path());
        let k = format!("d/{}", "n".repeat(300));
        assert!(matches!(
            s.put(&k, Bytes::new()).await,
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(s.get(&k).await, Err(StoreError::Invalid(_))));
    }

    #[tokio::test]
    async fn unreadable_objects_are_denied() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let s = FsStore::new(dir.path());
        s.put("d/k", Bytes::from_static(b"x")).await.unwrap();
        let p = dir.path().join("d/k");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o000)).unwrap();
        // root bypasses permission bits; the check only means something for other users.
        if File::open(&p).is_err() {
            assert!(matches!(s.get("d/k").await, Err(StoreError::Denied(_))));
        }
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    }

    #[tokio::test]
    async fn list_skips_non_utf8_and_special_files() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let s = FsStore::new(dir.path());
        s.put("k/a", Bytes::from_static(b"1")).await.unwrap();
        fs::write(
            dir.path()
                .join("k")
                .join(std::ffi::OsStr::from_bytes(b"\xff")),
            b"",
        )
        .unwrap();
        std::os::unix::fs::symlink(dir.path().join("k/a"), dir.path().join("k/b")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("nowhere"), dir.path().join("k/c")).unwrap();
        let keys = keys_under(&s, "k/").await;
        assert_eq!(keys, vec!["k/a", "k/b"]);
    }

    async fn keys_under(s: &FsStore, prefix: &str) -> Vec<String> {
        let all = s.list_all(prefix).await.unwrap();
        all.into_iter().map(|o| o.key).collect()
    }

    #[tokio::test]
    async fn a_symlink_loop_is_listed_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStore::new(dir.path());
        s.put("k/a", Bytes::from_static(b"1")).await.unwrap();
        s.put("j/b", Bytes::from_static(b"2")).await.unwrap();
        // k/up points back at k (a loop); k/j at a directory beside it (followed).
        std::os::unix::fs::symlink(dir.path().join("k"), dir.path().join("k/up")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("j"), dir.path().join("k/j")).unwrap();
        std::os::unix::fs::symlink(dir.path(), dir.path().join("j/root")).unwrap();
        let keys = keys_under(&s, "").await;
        assert_eq!(keys, vec!["j/b", "k/a", "k/j/b"]);
        // From inside the loop as well.
        let keys = keys_under(&s, "k/").await;
        assert_eq!(keys, vec!["k/a", "k/j/b"]);
    }
}
