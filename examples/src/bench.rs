//! The workloads of `juicefs bench` (`tessera bench`): write then read one big file per
//! thread in `block_size` pieces, write then read `small_file_count` small files per
//! thread, then stat the small files; results in JuiceFS's table.
//!
//! The target is either a volume, driven through the inode-level [`Vfs`] API (the files'
//! directory inode known, as the kernel's entry cache spares a mounted client lookups), or
//! a local directory (a mount point included), driven through `std::fs`.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use meta_api::{Context, Ino};
use vfs_core::{FileSystem, Vfs};

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct BenchOptions {
    /// Bytes per I/O call.
    pub block_size: usize,
    /// Bytes of each big file (0: no big-file rows).
    pub big_file_size: u64,
    /// Bytes of each small file (0: no small-file rows).
    pub small_file_size: u64,
    /// Small files per thread.
    pub small_file_count: usize,
    /// Concurrent workers.
    pub threads: usize,
}

/// One row of the result table.
#[derive(Debug, Clone)]
pub struct BenchRow {
    /// What was measured (`Write big file`, …).
    pub item: &'static str,
    /// Throughput.
    pub value: f64,
    /// Unit of [`BenchRow::value`] (`MiB/s`, `files/s`).
    pub unit: &'static str,
    /// Time per file.
    pub cost: f64,
    /// Unit of [`BenchRow::cost`] (`s/file`, `ms/file`).
    pub cost_unit: &'static str,
}

impl BenchRow {
    /// The value column as JuiceFS prints it.
    pub fn value_text(&self) -> String {
        let prec = if self.unit == "MiB/s" { 2 } else { 1 };
        format!("{:.prec$} {}", self.value, self.unit)
    }

    /// The cost column as JuiceFS prints it.
    pub fn cost_text(&self) -> String {
        format!("{:.2} {}", self.cost, self.cost_unit)
    }
}

/// One kind of file the benchmark writes: `fcount` files per thread of `bcount` blocks of
/// `bsize` bytes.
#[derive(Debug, Clone, Copy)]
struct Case {
    name: &'static str,
    fsize: u64,
    fcount: usize,
    bsize: usize,
    bcount: usize,
}

impl Case {
    /// JuiceFS's rounding: a file smaller than a block is one block of its size, a larger
    /// one a whole number of blocks.
    fn new(name: &'static str, fsize: u64, fcount: usize, block: usize) -> Case {
        let block = block.max(1);
        if fsize <= block as u64 {
            Case {
                name,
                fsize,
                fcount,
                bsize: fsize as usize,
                bcount: 1,
            }
        } else {
            let bcount = ((fsize - 1) / block as u64 + 1) as usize;
            Case {
                name,
                fsize: (bcount * block) as u64,
                fcount,
                bsize: block,
                bcount,
            }
        }
    }

    fn file_name(&self, thread: usize, i: usize) -> String {
        format!("{}.{thread}.{i}", self.name)
    }
}

/// Fills `buf` with pseudo-random bytes (splitmix64), so that no layer can shortcut zeros.
fn fill_random(buf: &mut [u8], seed: u64) {
    let mut s = seed ^ 0x2545_F491_4F6C_DD1D;
    for chunk in buf.chunks_mut(8) {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
    }
}

fn seed_of(thread: usize, i: usize) -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ ((thread as u64) << 32) ^ i as u64
}

/// Asks the kernel to drop its page cache, as `juicefs bench` does between phases (skipped
/// when `SKIP_DROP_CACHES=true`; a refusal is only reported).
pub fn drop_caches() {
    if std::env::var("SKIP_DROP_CACHES").as_deref() == Ok("true") {
        return;
    }
    if let Err(e) = std::fs::write("/proc/sys/vm/drop_caches", b"3\n") {
        eprintln!(
            "bench: could not drop the kernel's caches: {}",
            crate::plain(&e)
        );
    }
}

/// The phases in JuiceFS's order, each timed over all threads; `run` returns seconds.
async fn run_phases<R, Fut>(opts: &BenchOptions, mut run: R) -> io::Result<Vec<BenchRow>>
where
    R: FnMut(Case, Op) -> Fut,
    Fut: std::future::Future<Output = io::Result<f64>>,
{
    let threads = opts.threads.max(1) as f64;
    let mut rows = Vec::new();
    if opts.big_file_size > 0 {
        let big = Case::new("bigfile", opts.big_file_size, 1, opts.block_size);
        let mib = big.fsize as f64 / 1048576.0 * big.fcount as f64 * threads;
        for (op, item) in [(Op::Write, "Write big file"), (Op::Read, "Read big file")] {
            let cost = run(big, op).await?;
            rows.push(BenchRow {
                item,
                value: mib / cost.max(1e-9),
                unit: "MiB/s",
                cost: cost / big.fcount as f64,
                cost_unit: "s/file",
            });
            if op == Op::Write {
                drop_caches();
            }
        }
    }
    if opts.small_file_size > 0 && opts.small_file_count > 0 {
        let small = Case::new(
            "smallfile",
            opts.small_file_size,
            opts.small_file_count,
            opts.block_size,
        );
        let files = small.fcount as f64 * threads;
        for (op, item) in [
            (Op::Write, "Write small file"),
            (Op::Read, "Read small file"),
            (Op::Stat, "Stat file"),
        ] {
            let cost = run(small, op).await?;
            rows.push(BenchRow {
                item,
                value: files / cost.max(1e-9),
                unit: "files/s",
                cost: cost * 1000.0 / small.fcount as f64,
                cost_unit: "ms/file",
            });
            if op != Op::Stat {
                drop_caches();
            }
        }
    }
    Ok(rows)
}

/// A phase of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Write,
    Read,
    Stat,
}

/// The name of the scratch directory a run works in, JuiceFS-style.
fn scratch_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("__tessera_benchmark_{nanos}__")
}

// ----- on a volume -----

fn vol_err(what: &str, name: &str, e: vfs_core::VfsError) -> io::Error {
    let e: io::Error = e.into();
    io::Error::new(e.kind(), format!("{what} {name}: {}", crate::plain(&e)))
}

/// One worker's share of a phase on a volume.
async fn vol_worker(
    vfs: Vfs,
    ctx: Arc<Context>,
    dir: Ino,
    case: Case,
    op: Op,
    thread: usize,
) -> io::Result<()> {
    for i in 0..case.fcount {
        let name = case.file_name(thread, i);
        let err = |what: &str| {
            let name = name.clone();
            let what = what.to_string();
            move |e| vol_err(&what, &name, e)
        };
        match op {
            Op::Write => {
                let mut buf = vec![0u8; case.bsize];
                fill_random(&mut buf, seed_of(thread, i));
                let buf = Bytes::from(buf);
                let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
                let (_, fh) = vfs
                    .create(&ctx, dir, name.as_bytes(), 0o644, flags)
                    .await
                    .map_err(err("create"))?;
                let mut written = Ok(());
                for j in 0..case.bcount {
                    let off = (j * case.bsize) as u64;
                    if let Err(e) = vfs.write(&ctx, fh, off, buf.clone()).await {
                        written = Err(e);
                        break;
                    }
                }
                let closed = vfs.release(&ctx, fh).await;
                written.map_err(err("write"))?;
                closed.map_err(err("close"))?;
            }
            Op::Read => {
                let e = vfs
                    .lookup(&ctx, dir, name.as_bytes())
                    .await
                    .map_err(err("lookup"))?;
                let fh = vfs
                    .open(&ctx, e.ino, libc::O_RDONLY)
                    .await
                    .map_err(err("open"))?;
                let mut read = Ok(());
                for j in 0..case.bcount {
                    let off = (j * case.bsize) as u64;
                    match vfs.read(&ctx, fh, off, case.bsize).await {
                        Ok(b) if b.len() == case.bsize => {}
                        Ok(b) => {
                            read = Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                format!("read {name}: {} bytes at {off}", b.len()),
                            ));
                            break;
                        }
                        Err(e) => {
                            read = Err(vol_err("read", &name, e));
                            break;
                        }
                    }
                }
                let closed = vfs.release(&ctx, fh).await;
                read?;
                closed.map_err(err("close"))?;
            }
            Op::Stat => {
                vfs.lookup(&ctx, dir, name.as_bytes())
                    .await
                    .map_err(err("stat"))?;
            }
        }
    }
    Ok(())
}

/// Runs the benchmark in a fresh directory under `path` of the volume and removes it.
pub async fn run_on_volume(
    fs: &FileSystem,
    path: &Path,
    opts: BenchOptions,
) -> io::Result<Vec<BenchRow>> {
    let dir_path = path.join(scratch_name());
    fs.create_dir_all(&dir_path)
        .await
        .map_err(|e| crate::at_path(&dir_path, e))?;
    let dir = fs
        .metadata(&dir_path)
        .await
        .map_err(|e| crate::at_path(&dir_path, e))?
        .ino();
    let ctx = Arc::new(fs.context().clone());
    let vfs = fs.vfs().clone();
    let rows = run_phases(&opts, |case, op| {
        let (vfs, ctx) = (vfs.clone(), ctx.clone());
        async move {
            let start = Instant::now();
            let tasks: Vec<_> = (0..opts.threads.max(1))
                .map(|t| tokio::spawn(vol_worker(vfs.clone(), ctx.clone(), dir, case, op, t)))
                .collect();
            let mut first_err = None;
            for t in tasks {
                if let Err(e) = t.await.map_err(io::Error::other).and_then(|r| r) {
                    first_err.get_or_insert(e);
                }
            }
            match first_err {
                Some(e) => Err(e),
                None => Ok(start.elapsed().as_secs_f64()),
            }
        }
    })
    .await;
    let cleaned = fs.remove_dir_all(&dir_path).await;
    let rows = rows?;
    cleaned.map_err(|e| crate::at_path(&dir_path, e))?;
    Ok(rows)
}

// ----- on a local directory -----

/// One worker's share of a phase on a local directory.
fn local_worker(dir: &Path, case: Case, op: Op, thread: usize) -> io::Result<()> {
    for i in 0..case.fcount {
        let path = dir.join(case.file_name(thread, i));
        let at = |e| crate::at_path(&path, e);
        match op {
            Op::Write => {
                let mut buf = vec![0u8; case.bsize];
                fill_random(&mut buf, seed_of(thread, i));
                let mut f = std::fs::File::create(&path).map_err(at)?;
                for _ in 0..case.bcount {
                    f.write_all(&buf).map_err(at)?;
                }
                drop(f);
            }
            Op::Read => {
                let mut f = std::fs::File::open(&path).map_err(at)?;
                let mut buf = vec![0u8; case.bsize];
                for _ in 0..case.bcount {
                    f.read_exact(&mut buf).map_err(at)?;
                }
            }
            Op::Stat => {
                std::fs::metadata(&path).map_err(at)?;
            }
        }
    }
    Ok(())
}

/// Runs the benchmark in a fresh directory under local `path` with `std::fs` and removes it.
pub async fn run_on_local(path: &Path, opts: BenchOptions) -> io::Result<Vec<BenchRow>> {
    let dir: PathBuf = std::path::absolute(path)?.join(scratch_name());
    std::fs::create_dir_all(&dir).map_err(|e| crate::at_path(&dir, e))?;
    let rows = run_phases(&opts, |case, op| {
        let dir = dir.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let start = Instant::now();
                std::thread::scope(|s| {
                    let workers: Vec<_> = (0..opts.threads.max(1))
                        .map(|t| {
                            let dir = &dir;
                            s.spawn(move || local_worker(dir, case, op, t))
                        })
                        .collect();
                    let mut first_err = None;
                    for w in workers {
                        let r = w
                            .join()
                            .unwrap_or_else(|_| Err(io::Error::other("a worker panicked")));
                        if let Err(e) = r {
                            first_err.get_or_insert(e);
                        }
                    }
                    first_err.map_or(Ok(()), Err)
                })?;
                Ok(start.elapsed().as_secs_f64())
            })
            .await
            .map_err(io::Error::other)?
        }
    })
    .await;
    let cleaned = std::fs::remove_dir_all(&dir);
    let rows = rows?;
    cleaned.map_err(|e| crate::at_path(&dir, e))?;
    Ok(rows)
}

// ----- reporting -----

/// Parses a size such as `1M`, `128K`, `1G` or a bare number in `default_unit`
/// (`K`, `M`, `G`, …), as JuiceFS's flags read them.
pub fn parse_size(s: &str, default_unit: char) -> Result<u64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, unit) = match t.chars().last() {
        Some(c) if c.is_ascii_alphabetic() => (&t[..t.len() - 1], c),
        _ => (t, default_unit),
    };
    let shift = match unit.to_ascii_uppercase() {
        'K' => 10,
        'M' => 20,
        'G' => 30,
        'T' => 40,
        'P' => 50,
        _ => return Err(format!("invalid size {s:?}: unknown unit {unit:?}")),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}: not a number"))?;
    if !(n >= 0.0 && n.is_finite()) {
        return Err(format!("invalid size {s:?}"));
    }
    Ok((n * (1u64 << shift) as f64) as u64)
}

/// `n` bytes the way JuiceFS's summary line shows them (`1.0 MiB`, `128 KiB`).
pub fn ibytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if v < 10.0 {
        format!("{v:.1} {}", UNITS[unit])
    } else {
        format!("{v:.0} {}", UNITS[unit])
    }
}

/// The result table in JuiceFS's layout (`+---+` borders, values right-aligned).
pub fn table(rows: &[BenchRow]) -> String {
    let mut cells = vec![["ITEM".to_string(), "VALUE".to_string(), "COST".to_string()]];
    for r in rows {
        cells.push([r.item.to_string(), r.value_text(), r.cost_text()]);
    }
    let mut width = [0usize; 3];
    for row in &cells {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let divider: String = width
        .iter()
        .map(|w| format!("+{}", "-".repeat(w + 2)))
        .collect::<String>()
        + "+";
    let mut out = String::new();
    out.push_str(&divider);
    out.push('\n');
    for (i, row) in cells.iter().enumerate() {
        for (c, w) in row.iter().zip(width) {
            if i == 0 {
                out.push_str(&format!("| {c:^w$} "));
            } else {
                out.push_str(&format!("| {c:>w$} "));
            }
        }
        out.push_str("|\n");
        if i == 0 {
            out.push_str(&divider);
            out.push('\n');
        }
    }
    out.push_str(&divider);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_juicefs() {
        assert_eq!(parse_size("1M", 'M'), Ok(1 << 20));
        assert_eq!(parse_size("128K", 'K'), Ok(128 << 10));
        assert_eq!(parse_size("128", 'K'), Ok(128 << 10));
        assert_eq!(parse_size("1G", 'M'), Ok(1 << 30));
        assert_eq!(parse_size("0", 'M'), Ok(0));
        assert_eq!(parse_size("4MiB", 'K'), Ok(4 << 20));
        assert!(parse_size("x", 'M').is_err());
        assert!(parse_size("1Q", 'M').is_err());
    }

    #[test]
    fn cases_round_to_blocks() {
        let big = Case::new("bigfile", (1 << 20) + 1, 1, 1 << 20);
        assert_eq!((big.bcount, big.bsize, big.fsize), (2, 1 << 20, 2 << 20));
        let small = Case::new("smallfile", 128 << 10, 100, 1 << 20);
        assert_eq!((small.bcount, small.bsize), (1, 128 << 10));
    }

    #[test]
    fn table_has_juicefs_shape() {
        let t = table(&[BenchRow {
            item: "Stat file",
            value: 1234.5,
            unit: "files/s",
            cost: 0.81,
            cost_unit: "ms/file",
        }]);
        let lines: Vec<_> = t.lines().collect();
        assert_eq!(lines.len(), 5);
        assert!(lines[0].starts_with("+-") && lines[0].ends_with("-+"));
        assert!(lines[1].contains("ITEM") && lines[1].contains("COST"));
        assert!(lines[3].contains("1234.5 files/s") && lines[3].contains("0.81 ms/file"));
        assert_eq!(ibytes(1 << 20), "1.0 MiB");
        assert_eq!(ibytes(128 << 10), "128 KiB");
    }

    #[test]
    fn random_fill_is_not_zero() {
        let mut b = vec![0u8; 13];
        fill_random(&mut b, 1);
        assert!(b.iter().any(|&x| x != 0));
    }
}
