//! Queues N empty deleted files on a volume, then times how fast a client purges them —
//! the purge-throughput figure of the deletion issue.
//!
//! ```text
//! tessera format sqlite3:///tmp/p/meta.db purgevol --bucket /tmp/p/blocks/
//! cargo run --release -p tessera-examples --bin purge_rate -- sqlite3:///tmp/p/meta.db 100000
//! ```
//! The files are made and unlinked straight through the engine (16 directories, 16 at a
//! time), with no background purge; then `Vfs::purge_deleted` empties the queue.

use std::time::{Duration, Instant};

use futures::StreamExt;
use meta_api::{Context, FileType, ROOT_INO};
use vfs_core::{VfsOptions, VolumeBuilder};

const DIRS: u64 = 16;

#[tokio::main]
async fn main() {
    tessera_examples::logging::init_or_exit("purge_rate");
    let mut args = std::env::args().skip(1);
    let (Some(url), count) = (args.next(), args.next()) else {
        eprintln!("usage: purge_rate <META-URL> [FILES=100000]");
        std::process::exit(2);
    };
    let count: u64 = match count.as_deref().unwrap_or("100000").parse() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("purge_rate: bad file count: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&url, count).await {
        eprintln!("purge_rate: {e}");
        std::process::exit(1);
    }
}

async fn run(url: &str, count: u64) -> Result<(), Box<dyn std::error::Error>> {
    let opts = VfsOptions::default().purge_interval(None);
    let vfs = VolumeBuilder::new(url).options(opts).open().await?;
    let meta = vfs_core::connect_meta(url).await?;
    let ctx = Context::root();
    let top = format!("purge-{}", std::process::id());
    let top = meta.mkdir(&ctx, ROOT_INO, top.as_bytes(), 0o755).await?.ino;
    let mut dirs = Vec::new();
    for d in 0..DIRS {
        dirs.push(
            meta.mkdir(&ctx, top, format!("d{d}").as_bytes(), 0o755)
                .await?
                .ino,
        );
    }
    let started = Instant::now();
    let made = futures::stream::iter(0..count)
        .map(|i| {
            let (meta, ctx) = (&meta, &ctx);
            let dir = dirs[(i % DIRS) as usize];
            async move {
                let name = format!("f{i}");
                meta.mknod(ctx, dir, name.as_bytes(), FileType::Regular, 0o644, 0)
                    .await?;
                meta.unlink(ctx, dir, name.as_bytes()).await
            }
        })
        .buffer_unordered(DIRS as usize)
        .fold(Ok(0u64), |acc, r| async move {
            acc.and_then(|n| r.map(|()| n + 1))
        })
        .await?;
    eprintln!(
        "queued {made} deleted files in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let mut purged = 0;
    loop {
        let n = vfs.purge_deleted().await?;
        purged += n;
        if n == 0 {
            break;
        }
    }
    let secs = started
        .elapsed()
        .as_secs_f64()
        .max(Duration::from_micros(1).as_secs_f64());
    println!(
        "{} purged {purged} empty deleted files in {secs:.3} s: {:.0} files/s",
        meta.name(),
        purged as f64 / secs
    );
    for d in 0..DIRS {
        meta.rmdir(&ctx, top, format!("d{d}").as_bytes()).await?;
    }
    vfs.close().await?;
    Ok(())
}
