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
