//! A metadata benchmark with the workload and tree of `juicefs mdtest` (`tessera mdtest`).
//!
//! Under `PATH/test-dir.0-0/mdtest_tree.0` a tree is made with `dirs` subdirectories per
//! level, `depth` levels deep (`1 + dirs + dirs² + …` directories). Then every thread
//! creates `files` files in every directory of that one tree, walking it depth first with
//! the subdirectories of each level in a random order, as JuiceFS's tool does; `write`
//! bytes per file are recorded as metadata only (slices of objects that are never
//! stored). JuiceFS stops there. This tool then times three more phases on the same tree:
//! looking every file up by name (stat), listing every directory, and removing it all.
//!
//! Every call goes straight to the inode-level [`Vfs`] API with the parent's inode known,
//! as JuiceFS's tool calls its client library (whose entry cache spares it path lookups).

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use meta_api::{Context, Ino, Slice, Timestamp, CHUNK_SIZE};
use vfs_core::Vfs;

/// The shape of one run.
#[derive(Debug, Clone, Copy)]
pub struct MdtestOptions {
    /// Concurrent workers, each creating its own files in every directory.
    pub threads: usize,
    /// Subdirectories per directory.
    pub dirs: usize,
    /// Levels of subdirectories below the top of the tree.
    pub depth: usize,
    /// Files each worker creates in each directory.
    pub files: usize,
    /// Bytes recorded per file (metadata only).
    pub write: u64,
}

/// How long one phase took over how many items.
#[derive(Debug, Clone, Copy, Default)]
pub struct Phase {
    /// Items handled (directories, files or listed entries).
    pub count: u64,
    /// Wall-clock time.
    pub elapsed: Duration,
}

impl Phase {
    /// Items per second.
    pub fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// What a run measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct MdtestReport {
    /// Directories of the tree created (plus the two above it).
    pub mkdir: Phase,
    /// Files created (and closed).
    pub create: Phase,
    /// Files looked up by name.
    pub stat: Phase,
    /// Directory entries listed, over every directory of the tree.
    pub readdir: Phase,
    /// Files removed.
    pub unlink: Phase,
    /// Directories removed.
    pub rmdir: Phase,
    /// Directories in the tree.
    pub tree_dirs: u64,
}

/// One directory of the tree.
#[derive(Debug)]
struct TreeDir {
    ino: Ino,
    parent: Ino,
    name: Vec<u8>,
    /// Indexes of the subdirectories in [`Tree::dirs`].
    children: Vec<usize>,
}

/// The test tree; `dirs[0]` is its top, `mdtest_tree.0`.
#[derive(Debug)]
struct Tree {
    dirs: Vec<TreeDir>,
}

/// Directories in a tree of `width` subdirectories per level, `depth` levels deep.
pub fn tree_size(width: usize, depth: usize) -> u64 {
    let (mut total, mut level) = (1u64, 1u64);
    for _ in 0..depth {
        level = level.saturating_mul(width as u64);
        total = total.saturating_add(level);
    }
    total
}

/// A tiny random generator (splitmix64): enough to shuffle the walk order.
struct Shuffler(u64);

impl Shuffler {
    fn new(seed: u64) -> Shuffler {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Shuffler(t ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

fn err_at(what: &str, name: &[u8], e: vfs_core::VfsError) -> io::Error {
    let e: io::Error = e.into();
    io::Error::new(
        e.kind(),
        format!(
            "{what} {}: {}",
            String::from_utf8_lossy(name),
            crate::plain(&e)
        ),
    )
}

/// Makes (or finds) the directories of `path` below the root, as `juicefs mdtest` makes
/// its PATH, and returns the inode of the last one.
async fn make_path(vfs: &Vfs, ctx: &Context, path: &str) -> io::Result<Ino> {
    let mut ino = meta_api::ROOT_INO;
    for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
        let name = part.as_bytes();
        ino = match vfs.mkdir(ctx, ino, name, 0o755).await {
            Ok(e) => e.ino,
            Err(e) if e.errno() == libc::EEXIST => {
                vfs.lookup(ctx, ino, name)
                    .await
                    .map_err(|e| err_at("lookup", name, e))?
                    .ino
            }
            Err(e) => return Err(err_at("mkdir", name, e)),
        };
    }
    Ok(ino)
}

/// Creates the tree below `parent` depth first (JuiceFS's order) and returns it.
async fn make_tree(
    vfs: &Vfs,
    ctx: &Context,
    parent: Ino,
    width: usize,
    depth: usize,
) -> io::Result<Tree> {
    let top_name = b"mdtest_tree.0".to_vec();
    let top = vfs
        .mkdir(ctx, parent, &top_name, 0o755)
        .await
        .map_err(|e| err_at("mkdir", &top_name, e))?;
    let mut tree = Tree {
        dirs: vec![TreeDir {
            ino: top.ino,
            parent,
            name: top_name,
            children: Vec::new(),
        }],
    };
    // (directory index, levels left below it); children pushed in reverse so that
    // mdtest_tree.0 is made (and descended into) first.
    let mut stack = vec![(0usize, depth)];
    while let Some((idx, left)) = stack.pop() {
        if left == 0 {
            continue;
        }
        let dir_ino = tree.dirs[idx].ino;
        let mut made = Vec::with_capacity(width);
        for i in 0..width {
            let name = format!("mdtest_tree.{i}").into_bytes();
            let e = vfs
                .mkdir(ctx, dir_ino, &name, 0o755)
                .await
                .map_err(|e| err_at("mkdir", &name, e))?;
            tree.dirs.push(TreeDir {
                ino: e.ino,
                parent: dir_ino,
                name,
                children: Vec::new(),
            });
            made.push(tree.dirs.len() - 1);
        }
        tree.dirs[idx].children = made.clone();
        for child in made.into_iter().rev() {
            stack.push((child, left - 1));
        }
    }
    Ok(tree)
}

/// The name worker `np` gives its `i`th file in each directory.
fn file_name(np: usize, i: usize) -> Vec<u8> {
    format!("file.mdtest.{np}.{i}").into_bytes()
}

/// Worker `np`'s create phase: its files in every directory, depth first, subdirectories
/// in a random order.
async fn create_files(
    vfs: Vfs,
    ctx: Arc<Context>,
    tree: Arc<Tree>,
    np: usize,
    opts: MdtestOptions,
) -> io::Result<u64> {
    let mut rng = Shuffler::new(np as u64 + 1);
    let mut stack = vec![0usize];
    let mut created = 0;
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL;
    while let Some(idx) = stack.pop() {
        let dir = &tree.dirs[idx];
        for i in 0..opts.files {
            let name = file_name(np, i);
            let (entry, fh) = vfs
                .create(&ctx, dir.ino, &name, 0o644, flags)
                .await
                .map_err(|e| err_at("create", &name, e))?;
            if opts.write > 0 {
                record_fake_data(&vfs, entry.ino, opts.write)
                    .await
                    .map_err(|e| err_at("write", &name, e))?;
            }
            vfs.release(&ctx, fh)
                .await
                .map_err(|e| err_at("close", &name, e))?;
            created += 1;
        }
        let mut order = dir.children.clone();
        rng.shuffle(&mut order);
        stack.extend(order);
    }
    Ok(created)
}

/// Records `bytes` of data in a file's chunks without storing any object, as
/// `juicefs mdtest --write` does: one new slice per chunk.
async fn record_fake_data(vfs: &Vfs, ino: Ino, bytes: u64) -> vfs_core::Result<()> {
    let meta = vfs.meta();
    let mut index = 0u32;
    while u64::from(index) * CHUNK_SIZE < bytes {
        let size = (bytes - u64::from(index) * CHUNK_SIZE).min(CHUNK_SIZE) as u32;
        let id = meta.new_slice_id().await?;
        let slice = Slice {
            pos: 0,
            id,
            size,
            off: 0,
            len: size,
        };
        meta.write_slice(ino, index, slice, Timestamp::now())
            .await?;
        index += 1;
    }
    Ok(())
}

/// Worker `np`'s stat phase: looks each of its files up by name.
async fn stat_files(
    vfs: Vfs,
    ctx: Arc<Context>,
    tree: Arc<Tree>,
    np: usize,
    files: usize,
) -> io::Result<u64> {
    let mut n = 0;
    for dir in &tree.dirs {
        for i in 0..files {
            let name = file_name(np, i);
            vfs.lookup(&ctx, dir.ino, &name)
                .await
                .map_err(|e| err_at("stat", &name, e))?;
            n += 1;
        }
    }
    Ok(n)
}

/// Worker `np`'s share of the listing phase: every `threads`th directory, listed whole.
async fn list_dirs(
    vfs: Vfs,
    ctx: Arc<Context>,
    tree: Arc<Tree>,
    np: usize,
    threads: usize,
) -> io::Result<u64> {
    const PAGE: usize = 1024;
    let mut n = 0;
    for dir in tree.dirs.iter().skip(np).step_by(threads.max(1)) {
        let dh = vfs
            .opendir(&ctx, dir.ino)
            .await
            .map_err(|e| err_at("opendir", &dir.name, e))?;
        let mut offset = 0;
        let listed = async {
            loop {
                let page = vfs.readdir(&ctx, dh, offset, PAGE, false).await?;
                n += page.len() as u64;
                match page.last() {
                    Some(last) if page.len() == PAGE => offset = last.offset,
                    _ => return Ok(()),
                }
            }
        }
        .await;
        let closed = vfs.releasedir(&ctx, dh).await;
        listed.map_err(|e| err_at("readdir", &dir.name, e))?;
        closed.map_err(|e| err_at("closedir", &dir.name, e))?;
    }
    Ok(n)
}

/// Worker `np`'s removal phase: unlinks each of its files.
async fn remove_files(
    vfs: Vfs,
    ctx: Arc<Context>,
    tree: Arc<Tree>,
    np: usize,
    files: usize,
) -> io::Result<u64> {
    let mut n = 0;
    for dir in &tree.dirs {
        for i in 0..files {
            let name = file_name(np, i);
            vfs.unlink(&ctx, dir.ino, &name)
                .await
                .map_err(|e| err_at("unlink", &name, e))?;
            n += 1;
        }
    }
    Ok(n)
}

/// Runs `job(np)` on `threads` tasks at once and adds up what they counted.
async fn on_workers<F, Fut>(threads: usize, job: F) -> io::Result<Phase>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = io::Result<u64>> + Send + 'static,
{
    let start = Instant::now();
    let tasks: Vec<_> = (0..threads.max(1))
        .map(|np| tokio::spawn(job(np)))
        .collect();
    let mut count = 0;
    let mut first_err = None;
    for t in tasks {
        match t.await.map_err(io::Error::other).and_then(|r| r) {
            Ok(n) => count += n,
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(Phase {
            count,
            elapsed: start.elapsed(),
        }),
    }
}

/// Runs the benchmark under `path` (made if missing; `test-dir.0-0` must not exist in it)
/// and calls `log` with a line as each phase ends.
pub async fn run(
    vfs: &Vfs,
    path: &str,
    opts: MdtestOptions,
    mut log: impl FnMut(&str),
) -> io::Result<MdtestReport> {
    let ctx = Arc::new(Context::root());
    let threads = opts.threads.max(1);
    let tree_dirs = tree_size(opts.dirs, opts.depth);
    let total_files = tree_dirs * threads as u64 * opts.files as u64;
    log(&format!("Create {total_files} files in {tree_dirs} dirs"));

    let start = Instant::now();
    let base = make_path(vfs, &ctx, path).await?;
    let test_name = b"test-dir.0-0".to_vec();
    let test_dir = vfs
        .mkdir(&ctx, base, &test_name, 0o755)
        .await
        .map_err(|e| err_at("mkdir", &test_name, e))?;
    let tree = Arc::new(make_tree(vfs, &ctx, test_dir.ino, opts.dirs, opts.depth).await?);
    let mkdir = Phase {
        count: tree_dirs,
        elapsed: start.elapsed(),
    };
    log(&format!(
        "Created {tree_dirs} dirs in {} ({:.0} dirs/s)",
        go_duration(mkdir.elapsed),
        mkdir.rate()
    ));

    let create = on_workers(threads, |np| {
        create_files(vfs.clone(), ctx.clone(), tree.clone(), np, opts)
    })
    .await?;
    log(&format!(
        "Created {} files in {} ({:.0} files/s)",
        create.count,
        go_duration(create.elapsed),
        create.rate()
    ));

    let files = opts.files;
    let stat = on_workers(threads, |np| {
        stat_files(vfs.clone(), ctx.clone(), tree.clone(), np, files)
    })
    .await?;
    log(&format!(
        "Stat {} files in {} ({:.0} files/s)",
        stat.count,
        go_duration(stat.elapsed),
        stat.rate()
    ));

    let readdir = on_workers(threads, |np| {
        list_dirs(vfs.clone(), ctx.clone(), tree.clone(), np, threads)
    })
    .await?;
    log(&format!(
        "Listed {tree_dirs} dirs ({} entries) in {} ({:.0} entries/s)",
        readdir.count,
        go_duration(readdir.elapsed),
        readdir.rate()
    ));

    let unlink = on_workers(threads, |np| {
        remove_files(vfs.clone(), ctx.clone(), tree.clone(), np, files)
    })
    .await?;
    log(&format!(
        "Removed {} files in {} ({:.0} files/s)",
        unlink.count,
        go_duration(unlink.elapsed),
        unlink.rate()
    ));

    // Children before parents: the tree was made parents first.
    let start = Instant::now();
    for dir in tree.dirs.iter().rev() {
        vfs.rmdir(&ctx, dir.parent, &dir.name)
            .await
            .map_err(|e| err_at("rmdir", &dir.name, e))?;
    }
    vfs.rmdir(&ctx, base, &test_name)
        .await
        .map_err(|e| err_at("rmdir", &test_name, e))?;
    let rmdir = Phase {
        count: tree_dirs,
        elapsed: start.elapsed(),
    };
    log(&format!(
        "Removed {tree_dirs} dirs in {} ({:.0} dirs/s)",
        go_duration(rmdir.elapsed),
        rmdir.rate()
    ));
    Ok(MdtestReport {
        mkdir,
        create,
        stat,
        readdir,
        unlink,
        rmdir,
        tree_dirs,
    })
}

/// A duration the way Go prints one (`1.234567s`, `12.3456ms`), as JuiceFS's log lines do.
pub fn go_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.6}s")
    } else if s >= 1e-3 {
        format!("{:.4}ms", s * 1e3)
    } else {
        format!("{:.3}µs", s * 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_sizes_match_juicefs() {
        assert_eq!(tree_size(10, 2), 111);
        assert_eq!(tree_size(3, 2), 13);
        assert_eq!(tree_size(5, 0), 1);
    }

    #[test]
    fn shuffles_are_permutations() {
        let mut v: Vec<usize> = (0..50).collect();
        Shuffler::new(7).shuffle(&mut v);
        let mut sorted = v.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.500000s");
        assert_eq!(go_duration(Duration::from_micros(12_345)), "12.3450ms");
    }
}
