//! The upkeep commands of `tessera` (`compact`, `gc`, `fsck`, `info PATH`, `summary`,
//! `restore`):
//! progress on stderr, a readable report or (`--json`) one JSON object on stdout. The work
//! is [`vfs_core::upkeep`]'s; this only resolves paths and prints.

use std::io::{self, IsTerminal};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use meta_api::quota::{Quota, QuotaKind};
use meta_api::ROOT_INO;
use serde_json::{json, Value};
use vfs_core::upkeep::{
    FileInfo, FsckOptions, FsckReport, GcOptions, GcReport, Progress, Tally, TreeSummary,
};
use vfs_core::FileSystem;

use crate::{at_path, human_bytes};

/// A spinner on stderr showing `progress` (items and bytes) while it lives, when stderr is
/// a terminal and the output is not JSON.
struct Spinner {
    bar: ProgressBar,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Spinner {
    fn start(what: &'static str, progress: &Arc<Progress>, json: bool) -> Spinner {
        if json || !io::stderr().is_terminal() {
            return Spinner {
                bar: ProgressBar::hidden(),
                ticker: None,
            };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}") {
            bar.set_style(style);
        }
        let (b, p) = (bar.clone(), progress.clone());
        let ticker = tokio::spawn(async move {
            loop {
                let items = p.items.load(std::sync::atomic::Ordering::Relaxed);
                let bytes = p.bytes.load(std::sync::atomic::Ordering::Relaxed);
                b.set_message(format!("{items} {what}, {}", human_bytes(bytes)));
                b.tick();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Spinner {
            bar,
            ticker: Some(ticker),
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(t) = self.ticker.take() {
            t.abort();
        }
        self.bar.finish_and_clear();
    }
}

/// The inode of volume path `path` (not following a final symlink).
async fn ino_of(fs: &FileSystem, path: &Path) -> io::Result<u64> {
    let m = fs
        .symlink_metadata(path)
        .await
        .map_err(|e| at_path(path, e))?;
    Ok(m.ino())
}

fn tally(t: Tally) -> Value {
    json!({"count": t.count, "bytes": t.bytes})
}

fn show(label: &str, t: Tally) {
    println!("{label:<26} {:>10}  {}", t.count, human_bytes(t.bytes));
}

fn print_json(v: &Value) -> io::Result<()> {
    let s = serde_json::to_string_pretty(v).map_err(io::Error::other)?;
    println!("{s}");
    Ok(())
}

/// `tessera compact PATH`: compacts a file, or every file of a tree.
pub async fn compact(fs: &FileSystem, path: &Path, json: bool) -> io::Result<()> {
    let ino = ino_of(fs, path).await?;
    let progress = Arc::new(Progress::default());
    let spinner = Spinner::start("files compacted", &progress, json);
    let (files, s) = fs.vfs().compact_tree(ino, &progress).await?;
    drop(spinner);
    if json {
        return print_json(&json!({
            "files": files,
            "records_before": s.records_before,
            "records_replaced": s.replaced,
            "bytes_written": s.bytes_written,
        }));
    }
    println!(
        "compacted {files} files: {} of {} slice records rewritten as new slices ({})",
        s.replaced,
        s.records_before,
        human_bytes(s.bytes_written)
    );
    Ok(())
}

/// `tessera gc`.
pub async fn gc(fs: &FileSystem, opts: &GcOptions, json: bool) -> io::Result<()> {
    let progress = Arc::new(Progress::default());
    let spinner = Spinner::start("objects listed", &progress, json);
    let r = fs.vfs().gc(opts, &progress).await?;
    drop(spinner);
    if json {
        return print_json(&gc_json(&r));
    }
    show("objects listed", r.listed);
    show("valid objects", r.valid);
    show("leaked objects", r.leaked);
    show("young objects (skipped)", r.young);
    show("pending-slice objects", r.pending_objects);
    show("pending slices", r.pending_slices);
    show("delayed (trash) slices", r.delayed_slices);
    show("pending deleted files", r.pending_files);
    println!("{:<26} {:>10}", "slice records", r.records);
    println!(
        "{:<26} {:>10}",
        "checkpoint-only slices", r.checkpoint_slices
    );
    println!(
        "{:<26} {:>10}",
        "detached trees (old)",
        format!("{} ({})", r.detached_trees, r.old_detached_trees)
    );
    if opts.compact {
        println!("{:<26} {:>10}", "records compacted", r.compacted_records);
    }
    if opts.delete {
        println!("{:<26} {:>10}", "trash hours cleaned", r.trash.hours);
        println!("{:<26} {:>10}", "trash entries deleted", r.trash.entries);
        println!(
            "{:<26} {:>10}",
            "delayed slices freed", r.trash.delayed_slices
        );
        show("leaked objects deleted", r.deleted_leaked);
        println!(
            "{:<26} {:>10}",
            "pending slices finished", r.finished_slices
        );
        println!(
            "{:<26} {:>10}",
            "detached trees removed", r.removed_detached_trees
        );
        println!("{:<26} {:>10}", "deleted files purged", r.purged_files);
    } else if r.leaked.count > 0
        || r.pending_slices.count > 0
        || r.pending_files.count > 0
        || r.old_detached_trees > 0
    {
        println!("run with --delete to delete the leaked objects and finish what is pending");
    }
    Ok(())
}

fn gc_json(r: &GcReport) -> Value {
    json!({
        "listed": tally(r.listed),
        "valid": tally(r.valid),
        "leaked": tally(r.leaked),
        "young": tally(r.young),
        "pending_objects": tally(r.pending_objects),
        "pending_slices": tally(r.pending_slices),
        "delayed_slices": tally(r.delayed_slices),
        "pending_files": tally(r.pending_files),
        "records": r.records,
        "compacted_records": r.compacted_records,
        "deleted_leaked": tally(r.deleted_leaked),
        "finished_slices": r.finished_slices,
        "purged_files": r.purged_files,
        "checkpoint_slices": r.checkpoint_slices,
        "detached_trees": r.detached_trees,
        "old_detached_trees": r.old_detached_trees,
        "removed_detached_trees": r.removed_detached_trees,
        "trash": {
            "hours": r.trash.hours,
            "entries": r.trash.entries,
            "delayed_slices": r.trash.delayed_slices,
        },
    })
}

/// `tessera restore`: restores each hour directory of the trash in turn; fails (one line
/// naming each) if any hour cannot be read, after restoring the others.
pub async fn restore(
    fs: &FileSystem,
    hours: &[String],
    put_back: bool,
    json: bool,
) -> io::Result<()> {
    let mut failures: Vec<(io::ErrorKind, String)> = Vec::new();
    for hour in hours {
        match fs.vfs().restore(hour.as_bytes(), put_back).await {
            Ok(r) if json => print_json(&json!({
                "hour": hour,
                "restored": r.restored,
                "conflicts": r.conflicts,
                "need_put_back": r.need_put_back,
                "failed": r.failed,
            }))?,
            Ok(r) => {
                println!(
                    "{hour}: {} restored, {} conflicts, {} failed{}",
                    r.restored,
                    r.conflicts,
                    r.failed,
                    if r.need_put_back > 0 {
                        format!(", {} need --put-back", r.need_put_back)
                    } else {
                        String::new()
                    }
                );
            }
            Err(e) => {
                let e = io::Error::from(e);
                failures.push((e.kind(), format!("restore {hour}: {e}")));
            }
        }
    }
    match failures.first() {
        None => Ok(()),
        Some(&(kind, _)) => {
            let all: Vec<String> = failures.into_iter().map(|(_, m)| m).collect();
            Err(io::Error::new(kind, all.join("; ")))
        }
    }
}

/// `tessera fsck`: returns whether the volume (or tree) is clean.
pub async fn fsck(fs: &FileSystem, opts: &FsckOptions, json: bool) -> io::Result<bool> {
    let start = match &opts.path {
        None => (ROOT_INO, "/".to_string()),
        Some(p) => (ino_of(fs, Path::new(p)).await?, p.clone()),
    };
    let progress = Arc::new(Progress::default());
    let spinner = Spinner::start("files checked", &progress, json);
    let r = fs.vfs().fsck(opts, start, &progress).await?;
    drop(spinner);
    if json {
        print_json(&fsck_json(&r))?;
        return Ok(r.is_clean());
    }
    for b in &r.broken {
        println!(
            "broken file {} (inode {}): {} missing or mis-sized blocks, e.g. {}",
            b.path,
            b.ino,
            b.bad_blocks.len(),
            b.bad_blocks.first().map_or("", String::as_str)
        );
    }
    for d in &r.dir_problems {
        let fixed = if d.repaired { " (repaired)" } else { "" };
        println!("directory {}: {}{fixed}", d.path, d.problem);
    }
    if let Some(u) = r.usage {
        println!(
            "usage counters: {} bytes / {} inodes before, {} bytes / {} inodes now",
            u.before.space, u.before.inodes, u.after.space, u.after.inodes
        );
    }
    println!(
        "checked {} files, {} directories, {} blocks: {}",
        r.files,
        r.dirs,
        r.blocks,
        if r.is_clean() {
            "clean"
        } else {
            "problems found"
        }
    );
    Ok(r.is_clean())
}

fn fsck_json(r: &FsckReport) -> Value {
    json!({
        "files": r.files,
        "dirs": r.dirs,
        "blocks": r.blocks,
        "clean": r.is_clean(),
        "broken": r.broken.iter().map(|b| json!({
            "path": b.path, "ino": b.ino, "bad_blocks": b.bad_blocks,
        })).collect::<Vec<_>>(),
        "dir_problems": r.dir_problems.iter().map(|d| json!({
            "path": d.path, "problem": d.problem, "repaired": d.repaired,
        })).collect::<Vec<_>>(),
        "synced_dirs": r.synced_dirs,
        "usage": r.usage.map(|u| json!({
            "before": {"space": u.before.space, "inodes": u.before.inodes},
            "after": {"space": u.after.space, "inodes": u.after.inodes},
        })),
    })
}

/// `tessera info META PATH`: a file's chunks, slices and objects.
pub async fn file_info(fs: &FileSystem, path: &Path, json: bool) -> io::Result<()> {
    let ino = ino_of(fs, path).await?;
    let i: FileInfo = fs.vfs().file_info(ino).await?;
    if json {
        return print_json(&json!({
            "path": path.display().to_string(),
            "ino": i.ino,
            "type": format!("{:?}", i.typ),
            "length": i.length,
            "chunks": i.chunks.iter().map(|(index, slices)| json!({
                "index": index,
                "slices": slices.iter().map(|s| json!({
                    "id": s.slice.id, "pos": s.slice.pos, "size": s.slice.size,
                    "off": s.slice.off, "len": s.slice.len, "objects": s.objects,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }));
    }
    println!("{}:", path.display());
    println!("  inode:  {}", i.ino);
    println!("  type:   {:?}", i.typ);
    println!("  length: {} ({})", i.length, human_bytes(i.length));
    let records: usize = i.chunks.iter().map(|(_, s)| s.len()).sum();
    let objects: usize = i
        .chunks
        .iter()
        .flat_map(|(_, s)| s.iter().map(|x| x.objects.len()))
        .sum();
    println!(
        "  chunks: {}, slice records: {records}, objects: {objects}",
        i.chunks.len()
    );
    for (index, slices) in &i.chunks {
        println!("  chunk {index}:");
        for s in slices {
            let x = s.slice;
            if x.id == 0 {
                println!("    hole at {} +{}", x.pos, x.len);
            } else {
                println!(
                    "    slice {} at {} +{} (bytes {}..{} of {}): {}",
                    x.id,
                    x.pos,
                    x.len,
                    x.off,
                    u64::from(x.off) + u64::from(x.len),
                    x.size,
                    s.objects.join(" ")
                );
            }
        }
    }
    Ok(())
}

/// `tessera summary META PATH`.
pub async fn summary(fs: &FileSystem, path: &Path, json: bool) -> io::Result<()> {
    let ino = ino_of(fs, path).await?;
    let progress = Arc::new(Progress::default());
    let spinner = Spinner::start("entries", &progress, json);
    let s: TreeSummary = fs.vfs().summary(ino, &progress).await?;
    drop(spinner);
    if json {
        return print_json(&json!({
            "path": path.display().to_string(),
            "length": s.length, "space": s.space, "files": s.files,
            "dirs": s.dirs, "others": s.others,
        }));
    }
    println!(
        "{}: {} in {} files, {} directories, {} other inodes; {} of space",
        path.display(),
        human_bytes(s.length),
        s.files,
        s.dirs,
        s.others,
        human_bytes(s.space)
    );
    Ok(())
}

/// `tessera rmr PATH`: removes the tree at `path` (or the file) inside the engine, with a
/// spinner of the entries removed, then purges the deletion queue so that the objects are
/// gone when it returns; prints what went.
pub async fn rmr(fs: &FileSystem, path: &Path) -> io::Result<()> {
    let progress = Arc::new(Progress::default());
    let spinner = Spinner::start("entries removed", &progress, false);
    let m = fs.symlink_metadata(path).await?;
    let done = if m.is_dir() {
        fs.remove_dir_all_with(path, &progress).await?
    } else {
        fs.remove_file(path).await?;
        meta_api::tree::RemovedTree { files: 1, dirs: 0 }
    };
    drop(spinner);
    // The objects go before the command returns: the deletion queue is purged (what other
    // clients left in it too).
    let purged = fs.vfs().purge_deleted().await?;
    eprintln!(
        "{}: removed {} files and {} directories; purged {} deleted files",
        path.display(),
        done.files,
        done.dirs,
        purged
    );
    Ok(())
}

/// `tessera clone SRC DST`: clones in metadata only and says what it made.
pub async fn clone(fs: &FileSystem, src: &Path, dst: &Path, preserve: bool) -> io::Result<()> {
    let progress = Arc::new(Progress::default());
    let spinner = Spinner::start("entries cloned", &progress, false);
    let opts = meta_api::clone::CloneOptions::default().preserve(preserve);
    let done = fs.clone_tree_with(src, dst, opts, &progress).await;
    drop(spinner);
    let done = done?;
    eprintln!(
        "{} -> {}: cloned {} files and {} directories ({}), no data copied",
        src.display(),
        dst.display(),
        done.files,
        done.dirs,
        human_bytes(done.usage.space.max(0).unsigned_abs())
    );
    Ok(())
}

/// `tessera checkpoint create`.
pub async fn checkpoint_create(fs: &FileSystem, name: &str) -> io::Result<()> {
    let started = std::time::Instant::now();
    let c = fs.vfs().create_checkpoint(name).await?;
    eprintln!(
        "checkpoint {}: {} entries, {} slices held, {} in the bucket, in {:.2} s",
        c.name,
        c.entries,
        c.slices,
        human_bytes(c.size),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `tessera checkpoint list`.
pub async fn checkpoint_list(fs: &FileSystem, json: bool) -> io::Result<()> {
    let all = fs.vfs().list_checkpoints().await?;
    if json {
        let v: Vec<Value> = all
            .iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "created": c.created,
                    "entries": c.entries,
                    "slices": c.slices,
                    "size": c.size,
                    "complete": c.complete,
                })
            })
            .collect();
        return print_json(&Value::Array(v));
    }
    for c in &all {
        if c.complete {
            let when = c.created;
            println!(
                "{}\t{when}\t{} entries\t{} slices\t{}",
                c.name,
                c.entries,
                c.slices,
                human_bytes(c.size)
            );
        } else {
            println!(
                "{}\tincomplete (a create or delete was cut short; delete it)",
                c.name
            );
        }
    }
    Ok(())
}

/// `tessera checkpoint delete`.
pub async fn checkpoint_delete(fs: &FileSystem, name: &str) -> io::Result<()> {
    let c = fs.vfs().delete_checkpoint(name).await?;
    eprintln!("deleted checkpoint {}", c.name);
    Ok(())
}

/// `tessera checkpoint restore`.
pub async fn checkpoint_restore(meta_url: &str, name: &str) -> io::Result<()> {
    let r = vfs_core::checkpoint::restore_checkpoint(meta_url, name).await?;
    eprintln!(
        "restored checkpoint {}: {} inodes in {:.2} s",
        r.checkpoint.name,
        r.loaded.inodes,
        r.took.as_secs_f64()
    );
    Ok(())
}

/// Whose quota a `tessera quota` command names.
#[derive(Debug, Clone)]
pub enum QuotaWho {
    /// A directory, by volume path.
    Path(String),
    /// A user.
    Uid(u32),
    /// A group.
    Gid(u32),
}

/// One `tessera quota` command.
#[derive(Debug, Clone)]
pub enum QuotaRequest {
    /// `set`: limits in GiB and inodes; an omitted one keeps its value (0: none).
    Set {
        /// Whose.
        who: QuotaWho,
        /// Space limit in GiB.
        capacity_gib: Option<u64>,
        /// Inode limit.
        inodes: Option<u64>,
    },
    /// `get`.
    Get(QuotaWho),
    /// `delete`.
    Delete(QuotaWho),
    /// `list` of one kind.
    List(QuotaKind),
    /// `check`: one quota, or every one of a kind; `repair` stores the counts.
    Check {
        /// One quota, or `None` for all of `kind`.
        who: Option<QuotaWho>,
        /// The kind checked when `who` is `None`.
        kind: QuotaKind,
        /// Store the counted usage where it disagrees.
        repair: bool,
    },
}

impl std::fmt::Display for QuotaWho {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuotaWho::Path(p) => write!(f, "{p}"),
            QuotaWho::Uid(u) => write!(f, "uid {u}"),
            QuotaWho::Gid(g) => write!(f, "gid {g}"),
        }
    }
}

async fn quota_key(fs: &FileSystem, who: &QuotaWho) -> io::Result<(QuotaKind, u64)> {
    Ok(match who {
        QuotaWho::Path(p) => (QuotaKind::Dir, ino_of(fs, Path::new(p)).await?),
        QuotaWho::Uid(u) => (QuotaKind::User, u64::from(*u)),
        QuotaWho::Gid(g) => (QuotaKind::Group, u64::from(*g)),
    })
}

fn quota_json(kind: QuotaKind, key: u64, q: &Quota) -> Value {
    json!({
        "kind": match kind { QuotaKind::Dir => "dir", QuotaKind::User => "user", QuotaKind::Group => "group" },
        "key": key,
        "max_space": q.max_space,
        "max_inodes": q.max_inodes,
        "used_space": q.used_space,
        "used_inodes": q.used_inodes,
    })
}

fn show_quota(name: &str, q: &Quota) {
    let limit = |v: i64, f: &dyn Fn(u64) -> String| {
        if v > 0 {
            f(v as u64)
        } else {
            "unlimited".to_string()
        }
    };
    println!(
        "{name}: space {} of {}, inodes {} of {}",
        human_bytes(q.used_space.max(0) as u64),
        limit(q.max_space, &|v| human_bytes(v)),
        q.used_inodes,
        limit(q.max_inodes, &|v| v.to_string()),
    );
}

/// `tessera quota …`; returns false when a check found a disagreement left unrepaired.
pub async fn quota(fs: &FileSystem, req: QuotaRequest, json: bool) -> io::Result<bool> {
    let vfs = fs.vfs();
    match req {
        QuotaRequest::Set {
            who,
            capacity_gib,
            inodes,
        } => {
            if capacity_gib.is_none() && inodes.is_none() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "give --capacity or --inodes",
                ));
            }
            let (kind, key) = quota_key(fs, &who).await?;
            let cur = vfs.get_quota(kind, key).await?.unwrap_or(Quota::UNLIMITED);
            let space = match capacity_gib {
                Some(g) => i64::try_from(g.saturating_mul(1 << 30)).unwrap_or(i64::MAX),
                None => cur.max_space,
            };
            let inodes = match inodes {
                Some(n) => i64::try_from(n).unwrap_or(i64::MAX),
                None => cur.max_inodes,
            };
            vfs.set_quota(kind, key, (space, inodes)).await?;
            let q = vfs.get_quota(kind, key).await?.unwrap_or_default();
            if json {
                print_json(&quota_json(kind, key, &q))?;
            } else {
                show_quota(&who.to_string(), &q);
            }
        }
        QuotaRequest::Get(who) => {
            let (kind, key) = quota_key(fs, &who).await?;
            let Some(q) = vfs.get_quota(kind, key).await? else {
                return Err(io::Error::new(io::ErrorKind::NotFound, "no such quota"));
            };
            if json {
                print_json(&quota_json(kind, key, &q))?;
            } else {
                show_quota(&who.to_string(), &q);
            }
        }
        QuotaRequest::Delete(who) => {
            let (kind, key) = quota_key(fs, &who).await?;
            if !vfs.delete_quota(kind, key).await? {
                return Err(io::Error::new(io::ErrorKind::NotFound, "no such quota"));
            }
        }
        QuotaRequest::List(kind) => {
            let all = vfs.list_quotas(kind).await?;
            if json {
                let v: Vec<Value> = all.iter().map(|(k, q)| quota_json(kind, *k, q)).collect();
                print_json(&Value::Array(v))?;
            } else {
                for (k, q) in &all {
                    show_quota(&format!("{kind:?} {k}"), q);
                }
            }
        }
        QuotaRequest::Check { who, kind, repair } => {
            let (kind, key) = match &who {
                Some(w) => {
                    let (k, key) = quota_key(fs, w).await?;
                    (k, Some(key))
                }
                None => (kind, None),
            };
            let checks = vfs.check_quotas(kind, key, repair).await?;
            let mut clean = true;
            let mut rows = Vec::new();
            for c in &checks {
                let ok = c.is_consistent();
                clean &= ok || repair;
                if json {
                    let mut v = quota_json(c.kind, c.key, &c.stored);
                    v["counted_space"] = json!(c.counted.0);
                    v["counted_inodes"] = json!(c.counted.1);
                    v["consistent"] = json!(ok);
                    rows.push(v);
                } else if ok {
                    println!("{:?} {}: consistent", c.kind, c.key);
                } else {
                    println!(
                        "{:?} {}: usage {} bytes / {} inodes recorded, {} / {} counted{}",
                        c.kind,
                        c.key,
                        c.stored.used_space,
                        c.stored.used_inodes,
                        c.counted.0,
                        c.counted.1,
                        if repair { " (repaired)" } else { "" }
                    );
                }
            }
            if json {
                print_json(&Value::Array(rows))?;
            }
            return Ok(clean);
        }
    }
    Ok(true)
}
