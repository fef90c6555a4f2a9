//! Creates N empty files in one directory straight through a metadata engine and reports
//! creates per second — the figure the metadata issues quote next to `juicefs mdtest`.
//!
//! ```text
//! cargo run -p tessera-examples --bin meta_creates -- sqlite3:///tmp/bench/meta.db 10000
//! cargo run -p tessera-examples --bin meta_creates -- redis://127.0.0.1:6390/3 10000
//! ```
//! The volume is formatted first when the engine holds none.

use std::time::Instant;

use meta_api::{Context, FileType, Format, MetaError, SessionInfo, ROOT_INO};

#[tokio::main]
async fn main() {
    tessera_examples::logging::init_or_exit("meta_creates");
    let mut args = std::env::args().skip(1);
    let (Some(url), count) = (args.next(), args.next()) else {
        eprintln!("usage: meta_creates <META-URL> [FILES=10000]");
        std::process::exit(2);
    };
    let count: u32 = match count.as_deref().unwrap_or("10000").parse() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("meta_creates: bad file count: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&url, count).await {
        eprintln!("meta_creates: {e}");
        std::process::exit(1);
    }
}

async fn run(url: &str, count: u32) -> Result<(), Box<dyn std::error::Error>> {
    let meta = vfs_core::connect_meta(url).await?;
    match meta.load().await {
        Ok(_) => {}
        Err(MetaError::NotFormatted) => {
            let uuid = format!("bench-{}", std::process::id());
            let mut f = Format::new("bench", &uuid, "mem", "");
            f.trash_days = 0;
            meta.init(&f, false).await?;
        }
        Err(e) => return Err(e.into()),
    }
    meta.new_session(&SessionInfo::default()).await?;
    let ctx = Context::root();
    let dir_name = format!("creates-{}", std::process::id());
    let dir = meta
        .mkdir(&ctx, ROOT_INO, dir_name.as_bytes(), 0o755)
        .await?;
    let start = Instant::now();
    for i in 0..count {
        let name = format!("f{i:08}");
        meta.mknod(&ctx, dir.ino, name.as_bytes(), FileType::Regular, 0o644, 0)
            .await?;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} creates in one directory via {}: {:.3} s, {:.0} creates/s",
        count,
        meta.name(),
        secs,
        f64::from(count) / secs
    );
    meta.close_session().await?;
    Ok(())
}
