//! `tessera dump` and `tessera load`: a volume's metadata to and from JuiceFS's JSON dump
//! format (see [`meta_api::dump`]), in a file (gzip-compressed when its name ends with
//! `.gz`, as juicefs does) or on stdout/stdin (`-`).

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use meta_api::dump::{DumpOptions, DumpSummary, LoadSummary};

use crate::{at_path, volume};

fn is_gz(path: &str) -> bool {
    path.ends_with(".gz")
}

fn meta_err(url: &str, e: meta_api::MetaError) -> io::Error {
    let kind = io::Error::from_raw_os_error(e.errno()).kind();
    let msg = match e {
        meta_api::MetaError::Exists => {
            format!("{url}: the metadata engine is not empty (load only into an empty one)")
        }
        other => format!("{url}: {other}"),
    };
    io::Error::new(kind, msg)
}

/// Dumps the volume at `url` to `out` (a path, or `-` for stdout).
pub async fn dump(url: &str, out: &str, opts: &DumpOptions) -> io::Result<DumpSummary> {
    let meta = volume::connect(url).await?;
    let sink: Box<dyn Write + Send> = if out == "-" {
        Box::new(io::stdout())
    } else {
        // A partial file never replaces a good one: write beside it, then rename.
        let tmp = format!("{out}.tmp");
        let file = File::create(&tmp).map_err(|e| at_path(&tmp, e))?;
        Box::new(file)
    };
    let summary = if is_gz(out) {
        let mut gz = flate2::write::GzEncoder::new(sink, flate2::Compression::default());
        let s = meta_api::dump::dump(&*meta, &mut gz, opts)
            .await
            .map_err(|e| meta_err(url, e))?;
        let mut inner = gz.finish().map_err(|e| at_path(out, e))?;
        inner.flush().map_err(|e| at_path(out, e))?;
        s
    } else {
        let mut sink = sink;
        let s = meta_api::dump::dump(&*meta, &mut sink, opts)
            .await
            .map_err(|e| meta_err(url, e))?;
        sink.flush().map_err(|e| at_path(out, e))?;
        s
    };
    if out != "-" {
        let tmp = format!("{out}.tmp");
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .and_then(|()| std::fs::rename(&tmp, out))
            .map_err(|e| at_path(out, e))?;
        // The rename is durable once the directory holding it is synced.
        let parent = Path::new(out)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(|e| at_path(parent, e))?;
    }
    Ok(summary)
}

/// Loads the dump in `input` (a path, or `-` for stdin) into the empty engine at `url`.
pub async fn load(url: &str, input: &str) -> io::Result<LoadSummary> {
    let reader: Box<dyn Read + Send> = if input == "-" {
        Box::new(io::stdin())
    } else {
        let file = File::open(input).map_err(|e| at_path(input, e))?;
        Box::new(BufReader::new(file))
    };
    let reader: Box<dyn Read + Send> = if is_gz(input) {
        Box::new(flate2::read::MultiGzDecoder::new(reader))
    } else {
        reader
    };
    if let Some(path) = volume::sqlite_path(url) {
        if let Some(dir) = Path::new(&path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            if !dir.exists() {
                return Err(at_path(dir, io::Error::from(io::ErrorKind::NotFound)));
            }
        }
    }
    let meta = vfs_core::connect_meta(url)
        .await
        .map_err(|e| io::Error::other(format!("{url}: {e}")))?;
    meta_api::dump::load(&*meta, reader)
        .await
        .map_err(|e| meta_err(url, e))
}

/// `tessera backup META`: backs the volume's metadata up into its bucket now (what mounts
/// do every `--backup-meta`), printing the backup's key; with `list`, lists the backups.
pub async fn backup(url: &str, list: bool, skip_trash: bool) -> io::Result<()> {
    let opts = vfs_core::VfsOptions::default()
        .backup_interval(None)
        .backup_skip_trash(skip_trash);
    let fs = volume::open(url, opts).await?;
    let vfs = fs.vfs();
    let result = if list {
        vfs.list_backups().await.map(|all| {
            for b in all {
                println!("{}\t{}\t{}", b.key, b.size, b.time);
            }
        })
    } else {
        vfs.backup_meta().await.map(|r| {
            println!("{}", r.backup.key);
            eprintln!(
                "backed up {} entries: {} ({} of JSON) in {:.2?}{}",
                r.entries,
                crate::human_bytes(r.backup.size),
                crate::human_bytes(r.json_bytes),
                r.took,
                if r.removed.is_empty() {
                    String::new()
                } else {
                    format!("; {} old backups removed", r.removed.len())
                }
            );
        })
    };
    let closed = fs.close().await;
    result.map_err(|e| volume::volume_error(url, e))?;
    closed
}

/// `tessera restore-volume STORAGE-URL --to META`: restores the volume from the newest (or
/// the named) metadata backup in its bucket into the empty engine at `to` and opens it.
/// Files whose objects are gone (deleted after the backup) are listed, and make the
/// command fail after restoring.
pub async fn restore_volume(
    storage_url: &str,
    to: &str,
    opts: vfs_core::backup::RestoreOptions,
) -> io::Result<()> {
    let opts = opts.vfs(vfs_core::VfsOptions::default().backup_interval(None));
    let restored = vfs_core::backup::restore_volume(storage_url, to, opts)
        .await
        .map_err(|e| match e.as_meta() {
            Some(meta_api::MetaError::Exists) => io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{to}: the metadata engine is not empty (restore only into an empty one)"),
            ),
            _ => volume::volume_error(storage_url, e),
        })?;
    let format = restored.vfs.format().clone();
    let closed = restored.vfs.close().await;
    eprintln!(
        "restored volume {} ({}) from {} ({} inodes, {} entries) into {to}",
        format.name,
        format.uuid,
        restored.backup.key,
        restored.loaded.inodes,
        restored.loaded.entries
    );
    closed.map_err(|e| volume::volume_error(to, e))?;
    if let Some(check) = restored.check {
        if !check.broken.is_empty() {
            for b in &check.broken {
                eprintln!(
                    "missing blocks: {} (inode {}, {} blocks)",
                    b.path,
                    b.ino,
                    b.bad_blocks.len()
                );
            }
            return Err(io::Error::other(format!(
                "{} files reference objects deleted after the backup was taken",
                check.broken.len()
            )));
        }
        eprintln!(
            "checked {} blocks of {} files: all present",
            check.blocks, check.files
        );
    }
    Ok(())
}
