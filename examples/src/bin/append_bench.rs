//! `append_bench META_URL BUCKET_DIR [N]`: N times (default 10,000) append 100 bytes to one
//! file and fsync it — a log synced after every line — on a fresh volume formatted at
//! `META_URL` (any engine: `sqlite3://`, `redis://`, `tkv-mem://`) with its blocks in
//! `BUCKET_DIR`; then reopen the volume and read the file back.
//!
//! Prints one line of `key=value` figures: appends done, appends per second, the chunk's
//! slice records at the end (after background work settles), the time to read the file back
//! cold, and whether the bytes are right. An append that fails ends the run early and is
//! reported (`failed_at`, `error`).

use std::io;
use std::time::{Duration, Instant};

use tessera_examples::volume::{self, FormatRequest};
use vfs_core::VfsOptions;

/// Bytes of one append.
const LINE: usize = 100;

fn line(i: usize) -> Vec<u8> {
    let mut l = format!("{i:09} ").into_bytes();
    l.resize(LINE - 1, b'a' + (i % 26) as u8);
    l.push(b'\n');
    l
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> io::Result<()> {
    tessera_examples::logging::init_or_exit("append_bench");
    let args: Vec<String> = std::env::args().collect();
    let (Some(url), Some(bucket)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: append_bench META_URL BUCKET_DIR [N]");
        std::process::exit(2);
    };
    let n: usize = match args.get(3) {
        Some(s) => s
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "N must be a number"))?,
        None => 10_000,
    };
    volume::format(url, &FormatRequest::new("appendbench", bucket)).await?;
    // Background write-back never fires on its own during the run: every append is synced.
    let opts = VfsOptions::default().flush_idle(Duration::from_secs(3600));
    let fs = volume::open(url, opts.clone()).await?;
    let f = fs.create("/log").await?;
    let start = Instant::now();
    let mut done = 0;
    let mut failure = None;
    for i in 0..n {
        let r = async {
            f.write_at(&line(i), (i * LINE) as u64).await?;
            f.sync_all().await
        }
        .await;
        match r {
            Ok(()) => done += 1,
            Err(e) => {
                failure = Some((i, e));
                break;
            }
        }
    }
    let elapsed = start.elapsed();
    let _ = f.close().await;
    let ino = fs.metadata("/log").await?.ino();
    fs.close().await?;

    let meta = vfs_core::connect_meta(url).await.map_err(io::Error::from)?;
    let records = meta
        .read_chunk(ino, 0)
        .await
        .map_err(|e| io::Error::from(vfs_core::VfsError::from(e)))?
        .len();
    let fs = volume::open(url, opts).await?;
    let read_start = Instant::now();
    let data = fs.read("/log").await?;
    let read = read_start.elapsed();
    fs.close().await?;
    let want: Vec<u8> = (0..done).flat_map(line).collect();
    let mut out = format!(
        "url={url} appends={done} appends_per_s={:.0} records={records} read_ms={:.1} bytes_ok={}",
        done as f64 / elapsed.as_secs_f64(),
        read.as_secs_f64() * 1000.0,
        data == want
    );
    if let Some((i, e)) = failure {
        out.push_str(&format!(" failed_at={i} error={e:?}"));
    }
    println!("{out}");
    Ok(())
}
