//! `tessera`: the admin CLI of tessera volumes. Volumes are named by their metadata URL,
//! as `juicefs` names them (`sqlite3:///var/lib/vol/meta.db`).
//!
//! ```sh
//! tessera format sqlite3:///tmp/vol/meta.db myvol --bucket /tmp/vol/blocks/
//! tessera put sqlite3:///tmp/vol/meta.db ./photos /
//! tessera ls -l sqlite3:///tmp/vol/meta.db /photos
//! tessera get sqlite3:///tmp/vol/meta.db /photos ./restored
//! ```
//!
//! Errors print one line on stderr and exit with status 1.

use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use tessera_examples::bench::{self, BenchOptions};
use tessera_examples::mdtest::{self, MdtestOptions};
use tessera_examples::transfer::{self, TransferOptions};
use tessera_examples::upkeep;
use tessera_examples::volume::{self, FormatRequest};
use tessera_examples::{at_path, human_bytes, plain};
use tokio::io::AsyncWriteExt;
use vfs_core::upkeep::{FsckOptions, GcOptions};
use vfs_core::{FileSystem, Metadata, VfsOptions};

#[derive(Parser, Debug)]
#[command(
    name = "tessera",
    version,
    about = "Administer tessera (JuiceFS-compatible) volumes"
)]
struct Cli {
    /// Disk cache directory for blocks (repeat, or separate with ':', one per disk; default:
    /// no disk cache, memory only)
    #[arg(long, global = true, value_name = "DIR")]
    cache_dir: Vec<String>,
    /// Disk cache size in MiB, over all cache directories
    #[arg(long, global = true, value_name = "MIB", default_value_t = 100 << 10)]
    cache_size: u64,
    /// Writeback: written blocks are durable in the cache directory first and uploaded in
    /// the background (needs --cache-dir); commands wait a while for the uploads at exit
    #[arg(long, global = true)]
    writeback: bool,
    /// Memory for written data not yet uploaded, in MiB (JuiceFS's --buffer-size; writers
    /// wait when it is used up) [default: 16 for put, get, cat and the benchmarks, whose
    /// pace the uploads set; 300 otherwise]
    #[arg(long, global = true, value_name = "MIB")]
    buffer_size: Option<usize>,
    /// Blocks uploaded at the same time (JuiceFS's --max-uploads) [default: 20]
    #[arg(long, global = true, value_name = "N")]
    max_uploads: Option<usize>,
    /// Memory for blocks read and read ahead, in MiB [default: 16 for put, get, cat and
    /// the benchmarks, which read each block once; 64 otherwise]
    #[arg(long, global = true, value_name = "MIB")]
    read_cache: Option<usize>,
    /// What the library logs: a level (error, warn, info, debug, trace) or target=level
    /// pairs such as info,meta_sqlite=debug [default: RUST_LOG, else warn]
    #[arg(long, global = true, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Append log lines to FILE instead of standard error
    #[arg(long, global = true, value_name = "FILE")]
    log: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// An example for every command, shown at the end of its `--help` (the path of the
/// command, then the example lines, each a whole command line the parser accepts).
const EXAMPLES: &[(&str, &str)] = &[
    ("format", "tessera format sqlite3:///var/lib/vol/meta.db myvol --bucket /srv/blocks/ --trash-days 1"),
    ("info", "tessera info sqlite3:///var/lib/vol/meta.db\n  tessera info sqlite3:///var/lib/vol/meta.db /docs/report.pdf --json"),
    ("compact", "tessera compact sqlite3:///var/lib/vol/meta.db /logs"),
    ("gc", "tessera gc sqlite3:///var/lib/vol/meta.db            # report only\n  tessera gc sqlite3:///var/lib/vol/meta.db --delete --compact"),
    ("checkpoint create", "tessera checkpoint create sqlite3:///var/lib/vol/meta.db before-upgrade"),
    ("checkpoint list", "tessera checkpoint list sqlite3:///var/lib/vol/meta.db --json"),
    ("checkpoint restore", "tessera checkpoint restore sqlite3:///var/lib/vol/meta.db before-upgrade   # no client connected"),
    ("checkpoint delete", "tessera checkpoint delete sqlite3:///var/lib/vol/meta.db before-upgrade"),
    ("quota set", "tessera quota set sqlite3:///var/lib/vol/meta.db --path /projects/a --capacity 100 --inodes 100000\n  tessera quota set sqlite3:///var/lib/vol/meta.db --uid 1000 --capacity 20"),
    ("quota get", "tessera quota get sqlite3:///var/lib/vol/meta.db --path /projects/a"),
    ("quota delete", "tessera quota delete sqlite3:///var/lib/vol/meta.db --uid 1000"),
    ("quota list", "tessera quota list sqlite3:///var/lib/vol/meta.db --users"),
    ("quota check", "tessera quota check sqlite3:///var/lib/vol/meta.db --path /projects/a --repair"),
    ("restore", "tessera restore sqlite3:///var/lib/vol/meta.db 2026-12-04-09 --put-back"),
    ("fsck", "tessera fsck sqlite3:///var/lib/vol/meta.db\n  tessera fsck sqlite3:///var/lib/vol/meta.db /projects --repair"),
    ("dump", "tessera dump sqlite3:///var/lib/vol/meta.db /backup/vol.json.gz"),
    ("load", "tessera load redis://127.0.0.1:6379/1 /backup/vol.json.gz"),
    ("backup", "tessera backup sqlite3:///var/lib/vol/meta.db\n  tessera backup sqlite3:///var/lib/vol/meta.db --list"),
    ("restore-volume", "tessera restore-volume /srv/blocks/myvol --to sqlite3:///var/lib/vol/restored.db\n  tessera restore-volume s3://bucket.s3.amazonaws.com/myvol --to redis://127.0.0.1:6379/2"),
    ("summary", "tessera summary sqlite3:///var/lib/vol/meta.db /projects"),
    ("ls", "tessera ls sqlite3:///var/lib/vol/meta.db /docs -l"),
    ("cat", "tessera cat sqlite3:///var/lib/vol/meta.db /docs/notes.txt"),
    ("put", "tessera put sqlite3:///var/lib/vol/meta.db ./site /www"),
    ("get", "tessera get sqlite3:///var/lib/vol/meta.db /www ./site-copy"),
    ("mkdir", "tessera mkdir sqlite3:///var/lib/vol/meta.db -p /a/b/c"),
    ("rm", "tessera rm sqlite3:///var/lib/vol/meta.db /tmp/old.log\n  tessera rm sqlite3:///var/lib/vol/meta.db -r /tmp/build"),
    ("rmr", "tessera rmr sqlite3:///var/lib/vol/meta.db /scratch"),
    ("clone", "tessera clone sqlite3:///var/lib/vol/meta.db /templates/app /projects/app2"),
    ("mv", "tessera mv sqlite3:///var/lib/vol/meta.db /drafts/a.txt /final/a.txt"),
    ("mount", "tessera mount sqlite3:///var/lib/vol/meta.db /mnt/vol -d\n  tessera --cache-dir /var/cache/tessera mount redis://127.0.0.1:6379/1 /mnt/vol -o allow_other"),
    ("umount", "tessera umount /mnt/vol"),
    ("mdtest", "tessera mdtest sqlite3:///var/lib/vol/meta.db /mdtest --threads 4 --dirs 10 --depth 2 --files 100"),
    ("bench", "tessera bench /mnt/vol                                  # a mounted directory\n  tessera bench sqlite3:///var/lib/vol/meta.db /bench --big-file-size 1024"),
];

/// The command line, with [`EXAMPLES`] at the end of each command's help.
fn command_with_examples() -> clap::Command {
    let mut cmd = Cli::command();
    for (path, example) in EXAMPLES {
        let help = format!("Example:\n  {example}");
        let mut names = path.split(' ');
        let first = names.next().unwrap_or_default();
        cmd = match names.next() {
            None => cmd.mut_subcommand(first, |c| c.after_help(help)),
            Some(second) => {
                cmd.mut_subcommand(first, |c| c.mut_subcommand(second, |c| c.after_help(help)))
            }
        };
    }
    cmd
}

/// The volume options the global flags ask for, set once in `main`.
static VFS_OPTIONS: OnceLock<VfsOptions> = OnceLock::new();

impl Cli {
    /// The options the global cache flags describe.
    fn vfs_options(&self) -> VfsOptions {
        // One-shot commands take no metadata backups; `tessera mount` asks for them.
        let mut opts = VfsOptions::default()
            .backup_interval(None)
            .cache_size(self.cache_size.saturating_mul(1 << 20))
            .writeback(self.writeback);
        // One-pass commands stream: big buffers and caches would only raise their peak memory.
        let streaming = matches!(
            self.command,
            Command::Put { .. }
                | Command::Get { .. }
                | Command::Cat { .. }
                | Command::Bench { .. }
                | Command::Mdtest { .. }
        );
        let (buffer, read_cache) = if streaming { (16, 16) } else { (300, 64) };
        opts = opts
            .buffer_size(self.buffer_size.unwrap_or(buffer).saturating_mul(1 << 20))
            .block_cache_size(
                self.read_cache
                    .unwrap_or(read_cache)
                    .saturating_mul(1 << 20),
            );
        if let Some(n) = self.max_uploads {
            opts = opts.upload_concurrency(n);
        }
        for dir in self.cache_dir.iter().flat_map(|d| d.split(':')) {
            if !dir.is_empty() {
                opts = opts.cache_dir(dir);
            }
        }
        opts
    }
}

/// Which quota a `tessera quota` command is about.
#[derive(clap::Args, Debug)]
struct QuotaTarget {
    /// Metadata URL
    meta_url: String,
    /// A directory's quota (volume path)
    #[arg(long, conflicts_with_all = ["uid", "gid"])]
    path: Option<String>,
    /// A user's quota
    #[arg(long, conflicts_with = "gid")]
    uid: Option<u32>,
    /// A group's quota
    #[arg(long)]
    gid: Option<u32>,
    /// One JSON object on stdout
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum CheckpointOp {
    /// Make a checkpoint named NAME
    Create {
        /// Metadata URL
        meta_url: String,
        /// 1 to 64 letters, digits, '.', '_' or '-'
        name: String,
    },
    /// List the checkpoints
    List {
        /// Metadata URL
        meta_url: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Restore the volume to checkpoint NAME in place (no other client may be connected;
    /// run again if it was interrupted)
    Restore {
        /// Metadata URL
        meta_url: String,
        /// The checkpoint
        name: String,
    },
    /// Delete checkpoint NAME and the objects only it kept
    Delete {
        /// Metadata URL
        meta_url: String,
        /// The checkpoint
        name: String,
    },
}

#[derive(Subcommand, Debug)]
enum QuotaOp {
    /// Set a quota's limits (a new directory quota starts with its tree's usage)
    Set {
        #[command(flatten)]
        target: QuotaTarget,
        /// Space limit in GiB (0: none)
        #[arg(long)]
        capacity: Option<u64>,
        /// Inode limit (0: none)
        #[arg(long)]
        inodes: Option<u64>,
    },
    /// Show a quota
    Get {
        #[command(flatten)]
        target: QuotaTarget,
    },
    /// Remove a quota (a user's or group's usage stays tracked)
    Delete {
        #[command(flatten)]
        target: QuotaTarget,
    },
    /// List the quotas (directories by default, or --uid/--gid for users/groups)
    List {
        /// Metadata URL
        meta_url: String,
        /// User quotas instead of directory ones
        #[arg(long)]
        users: bool,
        /// Group quotas instead of directory ones
        #[arg(long, conflicts_with = "users")]
        groups: bool,
        /// One JSON object on stdout
        #[arg(long)]
        json: bool,
    },
    /// Recount quotas' usage (all directory quotas without --path/--uid/--gid); exit
    /// status 1 when one disagrees (unless --repair stored the count)
    Check {
        #[command(flatten)]
        target: QuotaTarget,
        /// Store the counted usage where it disagrees
        #[arg(long)]
        repair: bool,
        /// Check user (or with --groups group) quotas, all of them
        #[arg(long)]
        users: bool,
        /// Check group quotas, all of them
        #[arg(long, conflicts_with = "users")]
        groups: bool,
    },
}

impl QuotaTarget {
    fn who(&self) -> io::Result<upkeep::QuotaWho> {
        match (&self.path, self.uid, self.gid) {
            (Some(p), None, None) => Ok(upkeep::QuotaWho::Path(p.clone())),
            (None, Some(u), None) => Ok(upkeep::QuotaWho::Uid(u)),
            (None, None, Some(g)) => Ok(upkeep::QuotaWho::Gid(g)),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "give one of --path, --uid or --gid",
            )),
        }
    }
}

impl QuotaOp {
    /// The library request and whether the output is JSON.
    fn request(&self) -> io::Result<(upkeep::QuotaRequest, bool)> {
        use meta_api::quota::QuotaKind;
        use upkeep::QuotaRequest as R;
        Ok(match self {
            QuotaOp::Set {
                target,
                capacity,
                inodes,
            } => (
                R::Set {
                    who: target.who()?,
                    capacity_gib: *capacity,
                    inodes: *inodes,
                },
                target.json,
            ),
            QuotaOp::Get { target } => (R::Get(target.who()?), target.json),
            QuotaOp::Delete { target } => (R::Delete(target.who()?), target.json),
            QuotaOp::List {
                users,
                groups,
                json,
                ..
            } => {
                let kind = match (users, groups) {
                    (true, _) => QuotaKind::User,
                    (_, true) => QuotaKind::Group,
                    _ => QuotaKind::Dir,
                };
                (R::List(kind), *json)
            }
            QuotaOp::Check {
                target,
                repair,
                users,
                groups,
            } => {
                let any = target.path.is_some() || target.uid.is_some() || target.gid.is_some();
                let kind = match (users, groups) {
                    (true, _) => QuotaKind::User,
                    (_, true) => QuotaKind::Group,
                    _ => QuotaKind::Dir,
                };
                let who = if any { Some(target.who()?) } else { None };
                (
                    R::Check {
                        who,
                        kind,
                        repair: *repair,
                    },
                    target.json,
                )
            }
        })
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Format a new volume
    Format {
        /// Metadata URL (sqlite3:///path/meta.db)
        meta_url: String,
        /// Volume name (lowercase letters, digits, '-')
        name: String,
        /// Object storage kind
        #[arg(long, default_value = "file")]
        storage: String,
        /// Directory of the blocks (default: ~/.juicefs/local/)
        #[arg(long)]
        bucket: Option<String>,
        /// Block size in KiB
        #[arg(long, default_value_t = 4096)]
        block_size: u32,
        /// Compression of blocks: none, lz4 or zstd
        #[arg(long, default_value = "none")]
        compress: String,
        /// Days deleted files stay in the trash before they are deleted for real (0
        /// deletes at once); juicefs's default
        #[arg(long, default_value_t = 1)]
        trash_days: u32,
        /// Enable POSIX ACLs (stored and enforced as juicefs --enable-acl does)
        #[arg(long)]
        enable_acl: bool,
        /// Capacity in GiB (0: unlimited)
        #[arg(long, default_value_t = 0)]
        capacity: u64,
        /// Inode limit (0: unlimited)
        #[arg(long, default_value_t = 0)]
        inodes: u64,
        /// Access key of the object storage (s3, minio)
        #[arg(long, default_value = "")]
        access_key: String,
        /// Secret key of the object storage (s3, minio)
        #[arg(long, default_value = "")]
        secret_key: String,
    },
    /// Show a volume's settings, usage and sessions; with a PATH, that file's inode,
    /// chunks, slices and objects
    Info {
        /// Metadata URL
        meta_url: String,
        /// Volume path of a file to describe
        path: Option<PathBuf>,
        /// One JSON object on stdout (with PATH)
        #[arg(long)]
        json: bool,
    },
    /// Compact the slices of a file, or of every file of a tree
    Compact {
        /// Metadata URL
        meta_url: String,
        /// Volume path
        path: PathBuf,
        /// One JSON object on stdout
        #[arg(long)]
        json: bool,
    },
    /// Find objects no file references (leaked; older than an hour) and what is pending
    /// deletion; report only unless --delete
    Gc {
        /// Metadata URL
        meta_url: String,
        /// Compact every file first
        #[arg(long)]
        compact: bool,
        /// Delete leaked objects, purge deleted files and finish pending slices
        #[arg(long)]
        delete: bool,
        /// Deletions and compactions at once
        #[arg(long, default_value_t = 10)]
        threads: usize,
        /// One JSON object on stdout
        #[arg(long)]
        json: bool,
    },
    /// Checkpoints of the whole volume, kept in its bucket: create and restore move
    /// metadata only, and no object a checkpoint refers to is deleted while it exists
    Checkpoint {
        #[command(subcommand)]
        op: CheckpointOp,
    },
    /// Manage directory, user and group quotas (as juicefs quota)
    Quota {
        #[command(subcommand)]
        op: QuotaOp,
    },
    /// Put files deleted into the trash back: each HOUR is a directory of /.trash
    /// (YYYY-MM-DD-HH, UTC). Without --put-back only the deleted trees are rebuilt inside
    /// the trash; with it everything goes back where it was deleted from
    Restore {
        /// Metadata URL
        meta_url: String,
        /// Hour directories of the trash
        #[arg(required = true)]
        hours: Vec<String>,
        /// Move the entries back into their original directories
        #[arg(long)]
        put_back: bool,
        /// One JSON object per hour on stdout
        #[arg(long)]
        json: bool,
    },
    /// Check that every block the files reference exists with its length, and the
    /// directories' links and statistics; exit status 1 when something is wrong
    Fsck {
        /// Metadata URL
        meta_url: String,
        /// Volume path of the tree to check (default: the whole volume)
        path: Option<String>,
        /// Check the whole tree under PATH, not just PATH and its entries
        #[arg(short = 'r', long)]
        recursive: bool,
        /// Recompute wrong directory statistics and (whole volume) the usage counters
        #[arg(long)]
        repair: bool,
        /// Recompute the statistics of every directory checked
        #[arg(long)]
        sync_dir_stat: bool,
        /// One JSON object on stdout
        #[arg(long)]
        json: bool,
    },
    /// Write a volume's metadata in JuiceFS's JSON dump format (what `juicefs load` and
    /// `tessera load` read), streamed: memory does not grow with the volume
    Dump {
        /// Metadata URL
        meta_url: String,
        /// Output file (gzip-compressed when it ends with .gz), or - for stdout
        #[arg(default_value = "-")]
        file: String,
        /// Keep the object storage's secret key and session token (written as "removed"
        /// otherwise)
        #[arg(long)]
        keep_secret_key: bool,
        /// Leave the trash out
        #[arg(long)]
        skip_trash: bool,
    },
    /// Load a dump (ours or `juicefs dump`'s) into an empty metadata engine; link counts,
    /// directory statistics, usage, quota usage and slice references are rebuilt from the
    /// tree
    Load {
        /// Metadata URL of an empty engine
        meta_url: String,
        /// Dump file (gzip-compressed when it ends with .gz), or - for stdin
        #[arg(default_value = "-")]
        file: String,
    },
    /// Back the volume's metadata up into its bucket now, as meta/dump-YYYY-MM-DD-HHMMSS.json.gz
    /// (mounts do it every --backup-meta seconds), or list the backups there
    ///
    /// Example: tessera backup sqlite3:///var/lib/vol/meta.db
    Backup {
        /// Metadata URL
        meta_url: String,
        /// List the backups in the bucket instead (key, size, Unix time)
        #[arg(long)]
        list: bool,
        /// Leave the trash out of the backup
        #[arg(long)]
        skip_trash: bool,
    },
    /// Restore a volume from the newest metadata backup in its bucket into an empty
    /// metadata engine: all it needs is the bucket. Changes after that backup are lost
    ///
    /// Example: tessera restore-volume /var/lib/vol/blocks/myvol --to sqlite3:///tmp/new.db
    RestoreVolume {
        /// The volume's place in its bucket: the bucket URL, then /NAME
        /// (/var/jfs/myvol, file:///var/jfs/myvol, s3://bucket/myvol,
        /// http://127.0.0.1:9000/bucket/myvol)
        storage_url: String,
        /// Metadata URL of the empty engine to restore into
        #[arg(long, value_name = "META-URL")]
        to: String,
        /// The backup to restore (dump-YYYY-MM-DD-HHMMSS.json.gz; default: the newest)
        #[arg(long)]
        backup: Option<String>,
        /// Object store access key for the restored volume (default: the backup's)
        #[arg(long)]
        access_key: Option<String>,
        /// Object store secret key (backups hold none; without it, credentials come from
        /// the environment)
        #[arg(long)]
        secret_key: Option<String>,
        /// Do not check that every block of the restored files is in the bucket
        #[arg(long)]
        no_check: bool,
    },
    /// Size, files and directories of a tree
    Summary {
        /// Metadata URL
        meta_url: String,
        /// Volume path
        #[arg(default_value = "/")]
        path: PathBuf,
        /// One JSON object on stdout
        #[arg(long)]
        json: bool,
    },
    /// List a directory
    Ls {
        /// Long format: mode, links, owner, size, time
        #[arg(short = 'l')]
        long: bool,
        /// Metadata URL
        meta_url: String,
        /// Volume path
        #[arg(default_value = "/")]
        path: PathBuf,
    },
    /// Print a file to stdout
    Cat {
        /// Metadata URL
        meta_url: String,
        /// Volume path
        path: PathBuf,
    },
    /// Copy local files and directories into the volume (recursive)
    Put {
        /// Metadata URL
        meta_url: String,
        /// Local files or directories
        #[arg(required = true, value_name = "LOCAL")]
        sources: Vec<PathBuf>,
        /// Volume destination (copied into it if it is a directory)
        #[arg(value_name = "VOLPATH")]
        dest: PathBuf,
        /// No progress bar or summary
        #[arg(short, long)]
        quiet: bool,
    },
    /// Copy a volume file or directory to the local file system (recursive)
    Get {
        /// Metadata URL
        meta_url: String,
        /// Volume file or directory
        #[arg(value_name = "VOLPATH")]
        path: PathBuf,
        /// Local destination (copied into it if it is a directory)
        local: PathBuf,
        /// No progress bar or summary
        #[arg(short, long)]
        quiet: bool,
    },
    /// Create directories
    Mkdir {
        /// Create parents as needed; no error if it exists
        #[arg(short)]
        p: bool,
        /// Metadata URL
        meta_url: String,
        /// Volume paths
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Remove files (and directories with -r)
    Rm {
        /// Remove directories and their contents
        #[arg(short)]
        r: bool,
        /// Metadata URL
        meta_url: String,
        /// Volume paths
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Remove trees inside the engine, a page of entries per transaction (as `juicefs
    /// rmr`), with the checks `rm -r` meets and the trash's rules
    Rmr {
        /// Metadata URL
        meta_url: String,
        /// Volume paths
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Clone a file or a directory tree in metadata only (as `juicefs clone`): the clone
    /// shares the source's blocks, and a directory appears whole or not at all
    Clone {
        /// Metadata URL
        meta_url: String,
        /// Volume source
        src: PathBuf,
        /// Volume destination (must not exist)
        dst: PathBuf,
        /// Keep the source's mode, times and (as root) owner
        #[arg(long)]
        preserve: bool,
    },
    /// Rename or move a file or directory
    Mv {
        /// Metadata URL
        meta_url: String,
        /// Volume source
        src: PathBuf,
        /// Volume destination (moved into it if it is a directory)
        dst: PathBuf,
    },
    /// Mount a volume with FUSE (foreground; -d for background)
    Mount(tessera_examples::fuse::daemon::MountArgs),
    /// Unmount a volume mounted with `tessera mount`
    Umount(tessera_examples::fuse::daemon::UmountArgs),
    /// Metadata benchmark with the workload of `juicefs mdtest`, plus stat, readdir and
    /// remove phases
    Mdtest {
        /// Metadata URL
        meta_url: String,
        /// Volume directory to work in (made if missing)
        path: String,
        /// Concurrent workers
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Subdirectories per directory
        #[arg(long, default_value_t = 3)]
        dirs: usize,
        /// Levels of the tree
        #[arg(long, default_value_t = 2)]
        depth: usize,
        /// Files per worker in each directory
        #[arg(long, default_value_t = 10)]
        files: usize,
        /// Bytes recorded per file (metadata only)
        #[arg(long, default_value_t = 0)]
        write: u64,
    },
    /// Throughput benchmark with the workloads of `juicefs bench`, on a volume or (given
    /// a local directory instead of a URL) through std::fs
    Bench {
        /// Metadata URL, or a local directory (a mount point, say)
        target: String,
        /// Volume directory to work in (with a metadata URL)
        #[arg(default_value = "/")]
        path: PathBuf,
        /// Bytes per I/O call (default unit MiB)
        #[arg(long, default_value = "1M")]
        block_size: String,
        /// Size of each big file (default unit MiB; 0 skips big files)
        #[arg(long, default_value = "1G")]
        big_file_size: String,
        /// Size of each small file (default unit KiB; 0 skips small files)
        #[arg(long, default_value = "128K")]
        small_file_size: String,
        /// Small files per thread
        #[arg(long, default_value_t = 100)]
        small_file_count: usize,
        /// Concurrent workers
        #[arg(short = 'p', long, default_value_t = 1)]
        threads: usize,
    },
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    let cli = match Cli::from_arg_matches(&command_with_examples().get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if let Err(e) = tessera_examples::logging::init(cli.log_level.as_deref(), cli.log.as_deref()) {
        eprintln!("tessera: {}", plain(&e));
        return ExitCode::from(2);
    }
    let _ = VFS_OPTIONS.set(cli.vfs_options());
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tessera: {}", plain(&e));
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> io::Result<()> {
    match command {
        Command::Format {
            meta_url,
            name,
            storage,
            bucket,
            block_size,
            compress,
            trash_days,
            enable_acl,
            capacity,
            inodes,
            access_key,
            secret_key,
        } => {
            let mut req = FormatRequest::new(&name, &bucket.unwrap_or_else(volume::default_bucket));
            req.storage = storage;
            req.access_key = access_key;
            req.secret_key = secret_key;
            req.block_size_kib = block_size;
            req.compression = compress;
            req.trash_days = trash_days;
            req.enable_acl = enable_acl;
            req.capacity = capacity.saturating_mul(1 << 30);
            req.inodes = inodes;
            let f = volume::format(&meta_url, &req).await?;
            println!(
                "formatted volume {:?} (uuid {}) at {meta_url}: storage {} {}, {} KiB blocks, compression {}, trash {} days",
                f.name, f.uuid, f.storage, f.bucket, f.block_size, f.compression, f.trash_days
            );
            Ok(())
        }
        Command::Info {
            meta_url,
            path: None,
            ..
        } => info(&meta_url).await,
        Command::Info {
            meta_url,
            path: Some(path),
            json,
        } => {
            with_volume(&meta_url, |fs| async move {
                upkeep::file_info(&fs, &path, json).await
            })
            .await
        }
        Command::Compact {
            meta_url,
            path,
            json,
        } => {
            with_volume(&meta_url, |fs| async move {
                upkeep::compact(&fs, &path, json).await
            })
            .await
        }
        Command::Gc {
            meta_url,
            compact,
            delete,
            threads,
            json,
        } => {
            if threads == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "--threads must be at least 1",
                ));
            }
            let opts = GcOptions {
                compact,
                delete,
                threads,
                ..GcOptions::default()
            };
            with_volume(
                &meta_url,
                |fs| async move { upkeep::gc(&fs, &opts, json).await },
            )
            .await
        }
        Command::Fsck {
            meta_url,
            path,
            recursive,
            repair,
            sync_dir_stat,
            json,
        } => {
            let opts = FsckOptions {
                path,
                recursive,
                repair,
                sync_dir_stat,
            };
            let clean = with_volume(&meta_url, |fs| async move {
                upkeep::fsck(&fs, &opts, json).await
            })
            .await?;
            if clean {
                Ok(())
            } else {
                Err(io::Error::other("the volume has problems (see above)"))
            }
        }
        Command::Checkpoint { op } => match op {
            CheckpointOp::Create { meta_url, name } => {
                with_volume(&meta_url, |fs| async move {
                    upkeep::checkpoint_create(&fs, &name).await
                })
                .await
            }
            CheckpointOp::List { meta_url, json } => {
                with_volume(&meta_url, |fs| async move {
                    upkeep::checkpoint_list(&fs, json).await
                })
                .await
            }
            CheckpointOp::Delete { meta_url, name } => {
                with_volume(&meta_url, |fs| async move {
                    upkeep::checkpoint_delete(&fs, &name).await
                })
                .await
            }
            CheckpointOp::Restore { meta_url, name } => {
                upkeep::checkpoint_restore(&meta_url, &name).await
            }
        },
        Command::Quota { op } => {
            let url = match &op {
                QuotaOp::Set { target, .. }
                | QuotaOp::Get { target }
                | QuotaOp::Delete { target }
                | QuotaOp::Check { target, .. } => target.meta_url.clone(),
                QuotaOp::List { meta_url, .. } => meta_url.clone(),
            };
            let (req, json) = op.request()?;
            let ok = with_volume(
                &url,
                |fs| async move { upkeep::quota(&fs, req, json).await },
            )
            .await?;
            if !ok {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Restore {
            meta_url,
            hours,
            put_back,
            json,
        } => {
            with_volume(&meta_url, |fs| async move {
                upkeep::restore(&fs, &hours, put_back, json).await
            })
            .await
        }
        Command::Dump {
            meta_url,
            file,
            keep_secret_key,
            skip_trash,
        } => {
            let opts = meta_api::dump::DumpOptions::default()
                .keep_secret_key(keep_secret_key)
                .skip_trash(skip_trash);
            let s = tessera_examples::dump::dump(&meta_url, &file, &opts).await?;
            eprintln!("dumped {} entries ({})", s.entries, human_bytes(s.bytes));
            Ok(())
        }
        Command::Load { meta_url, file } => {
            let s = tessera_examples::dump::load(&meta_url, &file).await?;
            eprintln!(
                "loaded {} inodes, {} entries; next inode {}, next slice {}",
                s.inodes, s.entries, s.counters.next_inode, s.counters.next_chunk
            );
            Ok(())
        }
        Command::Backup {
            meta_url,
            list,
            skip_trash,
        } => tessera_examples::dump::backup(&meta_url, list, skip_trash).await,
        Command::RestoreVolume {
            storage_url,
            to,
            backup,
            access_key,
            secret_key,
            no_check,
        } => {
            let mut opts = vfs_core::backup::RestoreOptions::default().check_objects(!no_check);
            opts.backup = backup;
            opts.access_key = access_key;
            opts.secret_key = secret_key;
            tessera_examples::dump::restore_volume(&storage_url, &to, opts).await
        }
        Command::Summary {
            meta_url,
            path,
            json,
        } => {
            with_volume(&meta_url, |fs| async move {
                upkeep::summary(&fs, &path, json).await
            })
            .await
        }
        Command::Ls {
            long,
            meta_url,
            path,
        } => with_volume(&meta_url, |fs| async move { ls(&fs, &path, long).await }).await,
        Command::Cat { meta_url, path } => {
            with_volume(&meta_url, |fs| async move { cat(&fs, &path).await }).await
        }
        Command::Put {
            meta_url,
            sources,
            dest,
            quiet,
        } => {
            let paths = sources;
            with_volume(&meta_url, |fs| async move {
                let opts = transfer_options(quiet);
                let summary = transfer::put(&fs, &paths, &dest, opts).await?;
                if !quiet {
                    eprintln!("put {summary}");
                }
                Ok(())
            })
            .await
        }
        Command::Get {
            meta_url,
            path,
            local,
            quiet,
        } => {
            with_volume(&meta_url, |fs| async move {
                let summary = transfer::get(&fs, &path, &local, transfer_options(quiet)).await?;
                if !quiet {
                    eprintln!("got {summary}");
                }
                Ok(())
            })
            .await
        }
        Command::Mkdir { p, meta_url, paths } => {
            with_volume(&meta_url, |fs| async move {
                for path in &paths {
                    let made = if p {
                        fs.create_dir_all(path).await
                    } else {
                        fs.create_dir(path).await
                    };
                    made.map_err(|e| at_path(path, e))?;
                }
                Ok(())
            })
            .await
        }
        Command::Rm { r, meta_url, paths } => {
            with_volume(&meta_url, |fs| async move {
                for path in &paths {
                    remove(&fs, path, r).await.map_err(|e| at_path(path, e))?;
                }
                Ok(())
            })
            .await
        }
        Command::Rmr { meta_url, paths } => {
            with_volume(&meta_url, |fs| async move {
                for path in &paths {
                    upkeep::rmr(&fs, path).await.map_err(|e| at_path(path, e))?;
                }
                Ok(())
            })
            .await
        }
        Command::Clone {
            meta_url,
            src,
            dst,
            preserve,
        } => {
            with_volume(&meta_url, |fs| async move {
                upkeep::clone(&fs, &src, &dst, preserve)
                    .await
                    .map_err(|e| at_path(&src, e))
            })
            .await
        }
        Command::Mount(args) => {
            let base = VFS_OPTIONS.get().cloned().unwrap_or_default();
            tessera_examples::fuse::daemon::mount(args, base).await
        }
        Command::Umount(args) => tessera_examples::fuse::daemon::umount(&args),
        Command::Mv { meta_url, src, dst } => {
            with_volume(&meta_url, |fs| async move {
                let target = match fs.metadata(&dst).await {
                    Ok(m) if m.is_dir() => match src.file_name() {
                        Some(name) => dst.join(name),
                        None => dst.clone(),
                    },
                    _ => dst.clone(),
                };
                fs.rename(&src, &target).await.map_err(|e| at_path(&src, e))
            })
            .await
        }
        Command::Mdtest {
            meta_url,
            path,
            threads,
            dirs,
            depth,
            files,
            write,
        } => {
            let opts = MdtestOptions {
                threads,
                dirs,
                depth,
                files,
                write,
            };
            with_volume(&meta_url, |fs| async move {
                mdtest::run(fs.vfs(), &path, opts, |line| println!("<INFO>: {line}"))
                    .await
                    .map(|_| ())
            })
            .await
        }
        Command::Bench {
            target,
            path,
            block_size,
            big_file_size,
            small_file_size,
            small_file_count,
            threads,
        } => {
            let size = |s: &str, unit| {
                bench::parse_size(s, unit)
                    .map_err(|m| io::Error::new(io::ErrorKind::InvalidInput, m))
            };
            let opts = BenchOptions {
                block_size: usize::try_from(size(&block_size, 'M')?).unwrap_or(usize::MAX),
                big_file_size: size(&big_file_size, 'M')?,
                small_file_size: size(&small_file_size, 'K')?,
                small_file_count,
                threads,
            };
            if opts.block_size == 0 || threads == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the block size and the thread count must not be 0",
                ));
            }
            let rows = if target.contains("://") {
                with_volume(&target, |fs| async move {
                    bench::run_on_volume(&fs, &path, opts).await
                })
                .await?
            } else {
                bench::run_on_local(Path::new(&target), opts).await?
            };
            println!("Benchmark finished!");
            println!(
                "BlockSize: {}, BigFileSize: {}, SmallFileSize: {}, SmallFileCount: {}, NumThreads: {}",
                bench::ibytes(opts.block_size as u64),
                bench::ibytes(opts.big_file_size),
                bench::ibytes(opts.small_file_size),
                opts.small_file_count,
                opts.threads
            );
            print!("{}", bench::table(&rows));
            Ok(())
        }
    }
}

/// Progress and summary only for people watching.
fn transfer_options(quiet: bool) -> TransferOptions {
    TransferOptions {
        progress: !quiet && io::stderr().is_terminal(),
    }
}

/// Opens the volume, runs `f`, and closes the volume whatever happened.
async fn with_volume<T, F, Fut>(meta_url: &str, f: F) -> io::Result<T>
where
    F: FnOnce(FileSystem) -> Fut,
    Fut: std::future::Future<Output = io::Result<T>>,
{
    let opts = VFS_OPTIONS.get().cloned().unwrap_or_default();
    let fs = volume::open(meta_url, opts).await?;
    let result = f(fs.clone()).await;
    let closed = fs.close().await;
    let value = result?;
    closed?;
    Ok(value)
}

async fn info(meta_url: &str) -> io::Result<()> {
    let i = volume::info(meta_url).await?;
    let f = &i.format;
    println!("volume:       {}", f.name);
    println!("uuid:         {}", f.uuid);
    println!("storage:      {} {}", f.storage, f.bucket);
    println!("block size:   {} KiB", f.block_size);
    println!(
        "compression:  {}",
        if f.compression.is_empty() {
            "none"
        } else {
            &f.compression
        }
    );
    println!("trash days:   {}", f.trash_days);
    let limit = |n: u64, show: &dyn Fn(u64) -> String| {
        if n == 0 {
            "unlimited".to_string()
        } else {
            show(n)
        }
    };
    println!("capacity:     {}", limit(f.capacity, &|n| human_bytes(n)));
    println!("inode limit:  {}", limit(f.inodes, &|n| n.to_string()));
    let used = i.usage.total_space.saturating_sub(i.usage.avail_space);
    println!("used space:   {}", human_bytes(used));
    println!("used inodes:  {}", i.usage.used_inodes);
    println!("sessions:     {}", i.sessions.len());
    for s in &i.sessions {
        println!(
            "  {:>4}  {} pid {} {} (expires {})",
            s.sid,
            s.info.host_name,
            s.info.process_id,
            s.info.version,
            format_time(
                UNIX_EPOCH + std::time::Duration::from_secs(s.expire.max(0).unsigned_abs())
            )
        );
    }
    Ok(())
}

async fn ls(fs: &FileSystem, path: &Path, long: bool) -> io::Result<()> {
    let meta = fs.metadata(path).await.map_err(|e| at_path(path, e))?;
    let mut out = io::stdout().lock();
    if !meta.is_dir() {
        let name = path.as_os_str().as_encoded_bytes().to_vec();
        return print_entry(&mut out, fs, path, &name, &meta, long).await;
    }
    let mut rd = fs.read_dir_plus(path).await.map_err(|e| at_path(path, e))?;
    let mut entries = Vec::new();
    while let Some(e) = rd.next_entry().await.map_err(|e| at_path(path, e))? {
        let m = e.metadata().await.map_err(|err| at_path(e.path(), err))?;
        entries.push((e.name_bytes().to_vec(), e.path(), m));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, p, m) in &entries {
        print_entry(&mut out, fs, p, name, m, long).await?;
    }
    Ok(())
}

/// One line of `ls` (names are written as the raw bytes they are).
async fn print_entry(
    out: &mut impl io::Write,
    fs: &FileSystem,
    path: &Path,
    name: &[u8],
    m: &Metadata,
    long: bool,
) -> io::Result<()> {
    if long {
        write!(
            out,
            "{} {:>3} {:>5} {:>5} {:>12} {} ",
            mode_string(m),
            m.nlink(),
            m.uid(),
            m.gid(),
            m.len(),
            format_time(m.modified().unwrap_or(UNIX_EPOCH)),
        )?;
    }
    out.write_all(name)?;
    if long && m.is_symlink() {
        let target = fs.read_link(path).await.map_err(|e| at_path(path, e))?;
        out.write_all(b" -> ")?;
        out.write_all(target.as_os_str().as_encoded_bytes())?;
    }
    out.write_all(b"\n")
}

/// `drwxr-xr-x`-style type and permission bits.
fn mode_string(m: &Metadata) -> String {
    let ft = m.file_type();
    let kind = if ft.is_dir() {
        'd'
    } else if ft.is_symlink() {
        'l'
    } else if ft.is_fifo() {
        'p'
    } else if ft.is_socket() {
        's'
    } else if ft.is_block_device() {
        'b'
    } else if ft.is_char_device() {
        'c'
    } else {
        '-'
    };
    let mode = m.permissions().mode();
    let mut s = String::from(kind);
    for (shift, special, special_char) in [(6, 0o4000, 's'), (3, 0o2000, 's'), (0, 0o1000, 't')] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        let x = bits & 1 != 0;
        s.push(match (mode & special != 0, x) {
            (true, true) => special_char,
            (true, false) => special_char.to_ascii_uppercase(),
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    s
}

/// `YYYY-MM-DD HH:MM` in UTC.
fn format_time(t: SystemTime) -> String {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

async fn cat(fs: &FileSystem, path: &Path) -> io::Result<()> {
    let file = fs.open(path).await.map_err(|e| at_path(path, e))?;
    let mut stdout = tokio::io::stdout();
    let copied = async {
        let mut off = 0u64;
        loop {
            let piece = file
                .read_bytes_at(off, transfer::PIECE)
                .await
                .map_err(|e| at_path(path, e))?;
            if piece.is_empty() {
                return stdout.flush().await;
            }
            off += piece.len() as u64;
            stdout.write_all(&piece).await?;
        }
    }
    .await;
    let closed = file.close().await;
    match copied {
        // A reader that went away (`| head`) is not an error.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
        other => other?,
    }
    closed.map_err(|e| at_path(path, e))
}

async fn remove(fs: &FileSystem, path: &Path, recursive: bool) -> io::Result<()> {
    let m = fs.symlink_metadata(path).await?;
    if m.is_dir() {
        if !recursive {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                "is a directory (use rm -r)",
            ));
        }
        fs.remove_dir_all(path).await
    } else {
        fs.remove_file(path).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_an_example_that_parses() {
        let cmd = command_with_examples();
        let mut leaves = Vec::new();
        for c in cmd.get_subcommands().filter(|c| c.get_name() != "help") {
            let subs: Vec<_> = c
                .get_subcommands()
                .filter(|s| s.get_name() != "help")
                .collect();
            if subs.is_empty() {
                leaves.push((c.get_name().to_string(), c.clone()));
            }
            for s in subs {
                leaves.push((format!("{} {}", c.get_name(), s.get_name()), s.clone()));
            }
        }
        assert!(leaves.len() > 30, "{} commands", leaves.len());
        for (path, c) in &leaves {
            let help = c
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            assert!(
                help.starts_with("Example:"),
                "tessera {path} has no example"
            );
        }
        for (path, example) in EXAMPLES {
            assert!(
                leaves.iter().any(|(p, _)| p == path),
                "an example for no command: {path}"
            );
            for line in example.split('\n') {
                let words: Vec<&str> = line
                    .split('#')
                    .next()
                    .unwrap_or_default()
                    .split_whitespace()
                    .collect();
                let parsed = command_with_examples().try_get_matches_from(&words);
                assert!(
                    parsed.is_ok(),
                    "the example {line:?} does not parse: {parsed:?}"
                );
            }
        }
    }

    #[test]
    fn times_format_in_utc() {
        assert_eq!(format_time(UNIX_EPOCH), "1970-01-01 00:00");
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_709_210_096);
        assert_eq!(format_time(t), "2024-02-29 12:34");
    }

    #[test]
    fn arguments_parse() {
        let cli = Cli::try_parse_from(["tessera", "ls", "-l", "sqlite3:///x.db", "/a"]).unwrap();
        assert!(matches!(cli.command, Command::Ls { long: true, .. }));
        let cli = Cli::try_parse_from(["tessera", "put", "u", "a", "b", "/d"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Put { ref sources, ref dest, .. } if sources.len() == 2 && dest == Path::new("/d")
        ));
        assert!(Cli::try_parse_from(["tessera", "put", "u", "a"]).is_err());
        let cli = Cli::try_parse_from([
            "tessera",
            "put",
            "--cache-dir",
            "/c1:/c2",
            "u",
            "a",
            "/d",
            "--cache-size",
            "10",
            "--writeback",
        ])
        .unwrap();
        let o = cli.vfs_options();
        assert_eq!(o.cache_dirs, [PathBuf::from("/c1"), PathBuf::from("/c2")]);
        assert_eq!((o.cache_size, o.writeback), (10 << 20, true));
        let o = Cli::try_parse_from(["tessera", "ls", "u"])
            .unwrap()
            .vfs_options();
        assert!(o.cache_dirs.is_empty() && !o.writeback);
        assert_eq!((o.buffer_size, o.block_cache_size), (300 << 20, 64 << 20));
        let o = Cli::try_parse_from(["tessera", "get", "u", "/a", "b"])
            .unwrap()
            .vfs_options();
        assert_eq!((o.buffer_size, o.block_cache_size), (16 << 20, 16 << 20));
        let o = Cli::try_parse_from([
            "tessera",
            "get",
            "--buffer-size",
            "8",
            "--max-uploads",
            "4",
            "u",
            "/a",
            "b",
        ])
        .unwrap()
        .vfs_options();
        assert_eq!((o.buffer_size, o.upload_concurrency), (8 << 20, 4));
        assert!(Cli::try_parse_from(["tessera", "rm", "u"]).is_err());
    }
}
