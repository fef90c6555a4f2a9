//! A tour of the path-level API on the embedded default: a SQLite database and a local
//! directory of blocks, nothing to install.
//!
//! ```sh
//! cargo run -p tessera-examples --bin quickstart            # in ./tessera-quickstart/
//! cargo run -p tessera-examples --bin quickstart -- /tmp/qs  # somewhere else
//! ```
//!
//! The first run formats a volume (`meta.db` + `blocks/` in the folder); later runs reopen
//! it and find what the earlier ones left. The volume is a JuiceFS volume: `juicefs info
//! sqlite3://…/meta.db` or `juicefs fsck` work on it too.

use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tessera_examples::{human_bytes, volume};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vfs_core::{DirEntry, FileSystem, Metadata};

/// The folder used when none is given.
const DEFAULT_DIR: &str = "tessera-quickstart";

/// Size of the file streamed through `AsyncWrite`/`AsyncRead`.
const STREAM_BYTES: usize = 16 << 20;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    tessera_examples::logging::init_or_exit("quickstart");
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quickstart: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> io::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR));
    let (fs, created) = volume::open_or_create_local(&dir, "quickstart").await?;
    let shown = std::path::absolute(&dir)?;
    if created {
        println!(
            "formatted a new volume in {}/ (meta.db + blocks/)",
            shown.display()
        );
    } else {
        println!("reopened the volume in {}/", shown.display());
    }
    let result = tour(&fs).await;
    // Close even after a failure: it writes back buffered data and ends the session.
    let closed = fs.close().await;
    result?;
    closed?;
    println!("closed the volume; run again to see it persist");
    Ok(())
}

async fn tour(fs: &FileSystem) -> io::Result<()> {
    // A counter that survives restarts.
    let runs = match fs.read_to_string("/runs").await {
        Ok(s) => s.trim().parse::<u64>().unwrap_or(0),
        Err(e) if e.kind() == ErrorKind::NotFound => 0,
        Err(e) => return Err(e),
    };
    fs.write("/runs", format!("{}\n", runs + 1)).await?;
    println!("this is run #{} on this volume", runs + 1);

    // A small tree.
    fs.create_dir_all("/demo/docs/notes").await?;
    fs.write("/demo/docs/hello.txt", "Hello from tessera!\n")
        .await?;
    fs.write("/demo/docs/notes/todo.md", "- keep the data safe\n")
        .await?;
    if fs.symlink_metadata("/demo/hello-link").await.is_ok() {
        fs.remove_file("/demo/hello-link").await?;
    }
    fs.symlink("docs/hello.txt", "/demo/hello-link").await?;
    print!(
        "read through a symlink: {}",
        fs.read_to_string("/demo/hello-link").await?
    );

    // Stream a larger file through tokio's AsyncWrite, read it back through AsyncRead.
    let data = pattern(STREAM_BYTES);
    let mut file = fs.create("/demo/data.bin").await?;
    for piece in data.chunks(1 << 20) {
        file.write_all(piece).await?;
    }
    file.shutdown().await?; // closes: uploads the blocks, commits the file
    let mut back = Vec::with_capacity(STREAM_BYTES);
    fs.open("/demo/data.bin")
        .await?
        .read_to_end(&mut back)
        .await?;
    if back != data {
        return Err(io::Error::new(
            ErrorKind::InvalidData,
            "data.bin read back differs",
        ));
    }
    println!(
        "wrote and read back {} through AsyncWrite/AsyncRead",
        human_bytes(STREAM_BYTES as u64)
    );

    // Copy (shares the blocks), rename, and a scratch tree removed again.
    fs.copy("/demo/docs/hello.txt", "/demo/hello-copy.txt")
        .await?;
    fs.rename("/demo/hello-copy.txt", "/demo/docs/hello-copy.txt")
        .await?;
    fs.create_dir_all("/demo/scratch/a/b/c").await?;
    for i in 0..10 {
        fs.write(format!("/demo/scratch/a/b/c/{i}.txt"), format!("{i}\n"))
            .await?;
    }
    fs.remove_dir_all("/demo/scratch").await?;

    println!("the tree now:");
    print_tree(fs, Path::new("/")).await?;
    let usage = fs.statfs().await?;
    println!(
        "volume usage: {} in {} inodes",
        human_bytes(usage.total_space.saturating_sub(usage.avail_space)),
        usage.used_inodes
    );
    Ok(())
}

/// Prints every entry under `root` with its size, depth first, using an explicit stack.
async fn print_tree(fs: &FileSystem, root: &Path) -> io::Result<()> {
    let mut stack = children(fs, root, 1).await?;
    while let Some((entry, meta, depth)) = stack.pop() {
        let indent = "  ".repeat(depth);
        let name = entry.file_name().to_string_lossy().into_owned();
        if meta.is_dir() {
            println!("{indent}{name}/");
            stack.extend(children(fs, &entry.path(), depth + 1).await?);
        } else if meta.is_symlink() {
            let target = fs.read_link(entry.path()).await?;
            println!("{indent}{name} -> {}", target.display());
        } else {
            println!("{indent}{name} ({})", human_bytes(meta.len()));
        }
    }
    Ok(())
}

/// The entries of `dir` with their attributes, in reverse name order (for popping).
async fn children(
    fs: &FileSystem,
    dir: &Path,
    depth: usize,
) -> io::Result<Vec<(DirEntry, Metadata, usize)>> {
    let mut out = Vec::new();
    let mut rd = fs.read_dir_plus(dir).await?;
    while let Some(e) = rd.next_entry().await? {
        let meta = e.metadata().await?;
        out.push((e, meta, depth));
    }
    out.sort_by_key(|e| std::cmp::Reverse(e.0.file_name()));
    Ok(out)
}

/// Deterministic bytes that differ from block to block.
fn pattern(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
