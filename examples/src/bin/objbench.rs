//! `objbench`: PUT and GET throughput of whole blocks through chunkstore's `S3Store`, the
//! workload of `juicefs objbench`'s "upload objects" / "download objects" rows, to compare
//! the two clients on the same endpoint.
//!
//! ```sh
//! objbench --access-key AK --secret-key SK http://127.0.0.1:9000/bucket -p 1
//! juicefs objbench --storage s3 --access-key AK --secret-key SK http://127.0.0.1:9000/bucket -p 1
//! ```
//!
//! A 1 GiB "big object" is written as blocks of `--block-size` (4 MiB: 256 PUTs) with
//! `-p` requests in flight, read back whole (256 GETs, each checked), then deleted. The
//! objects live under a prefix of their own in the bucket. Build with `--release` to measure.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chunkstore::{ChunkStore, ChunkStoreExt, S3Options, S3Store};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};

#[derive(Parser, Debug)]
#[command(
    name = "objbench",
    about = "PUT/GET throughput of blocks through S3Store (compare with `juicefs objbench`)"
)]
struct Args {
    /// JuiceFS-style bucket URL (http://127.0.0.1:9000/bucket)
    bucket: String,
    /// Access key (default: $S3_ACCESS_KEY, then the AWS environment)
    #[arg(long, default_value = "")]
    access_key: String,
    /// Secret key (default: $S3_SECRET_KEY, then the AWS environment)
    #[arg(long, default_value = "")]
    secret_key: String,
    /// Size of each block in KiB
    #[arg(long, default_value_t = 4096)]
    block_size: usize,
    /// Total bytes written and read, in MiB
    #[arg(long, default_value_t = 1024)]
    big_object_size: usize,
    /// Requests in flight
    #[arg(short = 'p', long, default_value_t = 4)]
    threads: usize,
    /// Send and check no CRC32C checksums (to see what they cost)
    #[arg(long)]
    no_checksums: bool,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    tessera_examples::logging::init_or_exit("objbench");
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("objbench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One phase's outcome.
struct Phase {
    name: &'static str,
    ops: usize,
    bytes: u64,
    took: Duration,
    /// The time of every operation, added up.
    op_time: Duration,
}

impl Phase {
    /// Throughput over the phase and the mean time of one operation (what `juicefs
    /// objbench` prints as the cost per object).
    fn print(&self) {
        let secs = self.took.as_secs_f64().max(1e-9);
        let mib = self.bytes as f64 / f64::from(1 << 20);
        let ms_per_op = self.op_time.as_secs_f64() * 1000.0 / self.ops.max(1) as f64;
        println!(
            "| {:<16} | {:>10.2} MiB/s | {:>8.2} ms/object | {:>5} objects | {:>7.2} s |",
            self.name,
            mib / secs,
            ms_per_op,
            self.ops,
            secs
        );
    }
}

/// Runs `op` for `0..count` with `threads` in flight; returns the wall time and the sum of
/// the operations' times.
async fn timed<F, Fut>(
    count: usize,
    threads: usize,
    op: F,
) -> Result<(Duration, Duration), chunkstore::StoreError>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), chunkstore::StoreError>>,
{
    let started = Instant::now();
    let times: Vec<Duration> = futures::stream::iter(0..count)
        .map(|i| {
            let fut = op(i);
            async move {
                let t = Instant::now();
                fut.await.map(|()| t.elapsed())
            }
        })
        .buffer_unordered(threads)
        .try_collect()
        .await?;
    Ok((started.elapsed(), times.iter().sum()))
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    if args.threads == 0 || args.block_size == 0 || args.big_object_size == 0 {
        return Err("threads, block size and object size must not be 0".into());
    }
    let from_env = |given: &str, var: &str| {
        if given.is_empty() {
            std::env::var(var).unwrap_or_default()
        } else {
            given.to_string()
        }
    };
    let ak = from_env(&args.access_key, "S3_ACCESS_KEY");
    let sk = from_env(&args.secret_key, "S3_SECRET_KEY");
    let mut opts = S3Options::from_bucket_url(&args.bucket)?.checksums(!args.no_checksums);
    if !ak.is_empty() || !sk.is_empty() {
        opts = opts.credentials(ak, sk);
    }
    let store = Arc::new(S3Store::new(opts)?);
    let block = args.block_size << 10;
    let count = (args.big_object_size << 20).div_ceil(block);
    let prefix = format!(
        "__objbench__/{}-{}/",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    );
    let key = |i: usize| format!("{prefix}chunks/0/0/{}_{i}_{block}", i + 1);
    let data = Bytes::from(noise(block));
    println!(
        "objbench: {} objects of {} KiB, {} in flight, {}",
        count, args.block_size, args.threads, args.bucket
    );

    let (took, op_time) = timed(count, args.threads, |i| {
        let (store, data, k) = (store.clone(), data.clone(), key(i));
        async move { store.put(&k, data).await }
    })
    .await?;
    let put = Phase {
        name: "upload objects",
        ops: count,
        bytes: (count * block) as u64,
        took,
        op_time,
    };
    let (took, op_time) = timed(count, args.threads, |i| {
        let (store, data, k) = (store.clone(), data.clone(), key(i));
        async move {
            let got = store.get_block(&k, block as u64).await?;
            if got != data {
                return Err(chunkstore::StoreError::Corrupt(format!(
                    "{k}: bytes differ"
                )));
            }
            Ok(())
        }
    })
    .await?;
    let get = Phase {
        name: "download objects",
        ops: count,
        bytes: (count * block) as u64,
        took,
        op_time,
    };
    let (took, op_time) = timed(count, args.threads, |i| {
        let (store, k) = (store.clone(), key(i));
        async move { store.delete(&k).await }
    })
    .await?;
    let del = Phase {
        name: "delete objects",
        ops: count,
        bytes: 0,
        took,
        op_time,
    };
    put.print();
    get.print();
    del.print();
    Ok(())
}

/// Incompressible bytes (xorshift), so that no layer can shortcut the transfer.
fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}
