//! Writing a dump: the header, then the tree entry by entry, one directory page at a time.

use std::collections::BTreeSet;
use std::io::Write;

use serde::Serialize;

use super::json::{escape, DumpedAcl, DumpedAttr, DumpedChunk, DumpedSlice, DumpedXattr};
use super::NodeContents;
use crate::acl::{AclType, Rule};
use crate::quota::QuotaKind;
use crate::{
    Attr, Context, DirEntry, FileType, Ino, MetaEngine, MetaError, Result, ROOT_INO, TRASH_INO,
};

/// Entries asked of the engine per directory page.
const PAGE: usize = 1000;
/// Queued deletions asked per round trip.
const DELETIONS_PAGE: usize = 1000;

/// How [`dump`] writes.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct DumpOptions {
    /// Keep the object store's secret key and session token; by default they are written
    /// as `removed`, as JuiceFS does.
    pub keep_secret_key: bool,
    /// Leave the trash out.
    pub skip_trash: bool,
}

impl DumpOptions {
    /// Keeps the secret key (see [`DumpOptions::keep_secret_key`]).
    pub fn keep_secret_key(mut self, keep: bool) -> Self {
        self.keep_secret_key = keep;
        self
    }

    /// Leaves the trash out (see [`DumpOptions::skip_trash`]).
    pub fn skip_trash(mut self, skip: bool) -> Self {
        self.skip_trash = skip;
        self
    }
}

/// What [`dump`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DumpSummary {
    /// Entries written (the root, the trash and every name below them; a hard-linked
    /// inode counts once per name).
    pub entries: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// Writes the metadata of the volume `meta` holds to `out` in JuiceFS's JSON dump format
/// (see the [module docs](super)). The walk asks the engine one directory page at a time
/// and writes each entry as it goes: memory follows the tree's depth, not its size. An
/// entry removed while the walk runs is left out.
pub async fn dump<W: Write>(
    meta: &dyn MetaEngine,
    out: W,
    opts: &DumpOptions,
) -> Result<DumpSummary> {
    dump_into(meta, out, opts, &mut None).await
}

/// [`dump`], also returning every slice `(id, size)` the dump refers to, once each, in id
/// order (what a checkpoint holds, [`crate::checkpoint`]). Memory follows the number of
/// slices.
pub async fn dump_with_slices<W: Write>(
    meta: &dyn MetaEngine,
    out: W,
    opts: &DumpOptions,
) -> Result<(DumpSummary, Vec<(u64, u32)>)> {
    let mut seen = Some(BTreeSet::new());
    let summary = dump_into(meta, out, opts, &mut seen).await?;
    Ok((summary, seen.unwrap_or_default().into_iter().collect()))
}

/// Slices met so far, when asked for.
type Seen = Option<BTreeSet<(u64, u32)>>;

async fn dump_into<W: Write>(
    meta: &dyn MetaEngine,
    out: W,
    opts: &DumpOptions,
    seen: &mut Seen,
) -> Result<DumpSummary> {
    let mut w = Out {
        w: std::io::BufWriter::with_capacity(64 << 10, out),
        bytes: 0,
    };
    let mut summary = DumpSummary::default();
    header(meta, &mut w, opts).await?;
    let root = meta.getattr(ROOT_INO).await?;
    w.put(",\n  \"FSTree\": {")?;
    tree(meta, &mut w, ROOT_INO, &root, &mut summary, seen).await?;
    if !opts.skip_trash {
        match meta.getattr(TRASH_INO).await {
            Ok(trash) => {
                w.put(",\n  \"Trash\": {")?;
                tree(meta, &mut w, TRASH_INO, &trash, &mut summary, seen).await?;
            }
            Err(MetaError::NotFound) => {}
            Err(e) => return Err(e),
        }
    }
    w.put("\n}\n")?;
    w.w.flush().map_err(io)?;
    summary.bytes = w.bytes;
    Ok(summary)
}

fn io(e: std::io::Error) -> MetaError {
    MetaError::backend(false, e)
}

struct Out<W: Write> {
    w: std::io::BufWriter<W>,
    bytes: u64,
}

impl<W: Write> Out<W> {
    fn put(&mut self, s: &str) -> Result<()> {
        self.bytes += s.len() as u64;
        self.w.write_all(s.as_bytes()).map_err(io)
    }

    fn json<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<()> {
        self.put(&to_json(v)?)
    }
}

#[derive(Serialize)]
struct DumpedCounters {
    #[serde(rename = "usedSpace")]
    used_space: i64,
    #[serde(rename = "usedInodes")]
    used_inodes: i64,
    #[serde(rename = "nextInodes")]
    next_inode: i64,
    #[serde(rename = "nextChunk")]
    next_chunk: i64,
    #[serde(rename = "nextSession")]
    next_session: i64,
    #[serde(rename = "nextTrash")]
    next_trash: i64,
}

#[derive(Serialize)]
struct DumpedQuota {
    #[serde(rename = "maxSpace")]
    max_space: i64,
    #[serde(rename = "maxInodes")]
    max_inodes: i64,
}

async fn header<W: Write>(meta: &dyn MetaEngine, w: &mut Out<W>, opts: &DumpOptions) -> Result<()> {
    let mut format = meta.load().await?;
    if !opts.keep_secret_key {
        for secret in [&mut format.secret_key, &mut format.session_token] {
            if !secret.is_empty() {
                crate::format::REMOVED_SECRET.clone_into(secret);
            }
        }
    }
    let setting =
        serde_json::to_string_pretty(&format).map_err(|e| MetaError::backend(false, e))?;
    w.put("{\n  \"Setting\": ")?;
    w.put(&setting.replace('\n', "\n  "))?;

    let c = meta.counters().await?;
    w.put(",\n  \"Counters\": ")?;
    w.json(&DumpedCounters {
        used_space: c.used_space,
        used_inodes: c.used_inodes,
        next_inode: c.next_inode,
        next_chunk: c.next_chunk,
        next_session: c.next_session,
        next_trash: c.next_trash,
    })?;

    w.put(",\n  \"Sustained\": [")?;
    let mut first = true;
    for s in meta.list_sessions().await? {
        if s.sustained.is_empty() {
            continue;
        }
        w.put(if first { "\n    " } else { ",\n    " })?;
        first = false;
        w.json(&serde_json::json!({ "sid": s.sid, "inodes": s.sustained }))?;
    }
    w.put(if first { "]" } else { "\n  ]" })?;

    w.put(",\n  \"DelFiles\": [")?;
    let (mut after, mut first) = (0, true);
    loop {
        let page = meta.queued_deletions(after, DELETIONS_PAGE).await?;
        for d in &page {
            w.put(if first { "\n    " } else { ",\n    " })?;
            first = false;
            w.json(&serde_json::json!({ "inode": d.ino, "length": d.length, "expire": d.queued }))?;
        }
        match page.last() {
            Some(last) if page.len() == DELETIONS_PAGE => after = last.ino,
            _ => break,
        }
    }
    w.put(if first { "]" } else { "\n  ]" })?;

    for (key, kind) in [
        ("Quotas", QuotaKind::Dir),
        ("UserQuotas", QuotaKind::User),
        ("GroupQuotas", QuotaKind::Group),
    ] {
        let quotas: std::collections::BTreeMap<u64, DumpedQuota> = meta
            .list_quotas(kind)
            .await?
            .into_iter()
            // JuiceFS leaves out user and group records that only track usage.
            .filter(|(_, q)| kind == QuotaKind::Dir || q.max_space != -1 || q.max_inodes != -1)
            .map(|(k, q)| {
                (
                    k,
                    DumpedQuota {
                        max_space: q.max_space,
                        max_inodes: q.max_inodes,
                    },
                )
            })
            .collect();
        if !quotas.is_empty() {
            w.put(&format!(",\n  \"{key}\": "))?;
            w.json(&quotas)?;
        }
    }
    Ok(())
}

/// A directory being written: where its listing stands.
struct Frame {
    ino: Ino,
    depth: usize,
    after: Option<Vec<u8>>,
    page: std::vec::IntoIter<Listed>,
    done: bool,
    written: bool,
}

/// An entry of a directory page with what the dump writes of it.
struct Listed {
    entry: DirEntry,
    attr: Attr,
    contents: NodeContents,
}

/// The attributes and contents of a page's entries, in a few engine reads
/// ([`MetaEngine::node_contents`]); entries gone meanwhile are left out.
async fn read_page(meta: &dyn MetaEngine, page: Vec<DirEntry>) -> Result<Vec<Listed>> {
    let mut nodes = Vec::with_capacity(page.len());
    let mut entries = Vec::with_capacity(page.len());
    for mut e in page {
        let attr = match e.attr.take() {
            Some(a) => a,
            None => match meta.getattr(e.ino).await {
                Ok(a) => a,
                Err(MetaError::NotFound) => continue,
                Err(err) => return Err(err),
            },
        };
        nodes.push((e.ino, attr));
        entries.push(e);
    }
    let contents = contents_of(meta, &nodes).await?;
    Ok(entries
        .into_iter()
        .zip(nodes)
        .zip(contents)
        .filter_map(|((entry, (_, attr)), c)| {
            c.map(|contents| Listed {
                entry,
                attr,
                contents,
            })
        })
        .collect())
}

/// [`MetaEngine::node_contents`], a node at a time where the engine has no batched reads.
async fn contents_of(
    meta: &dyn MetaEngine,
    nodes: &[(Ino, Attr)],
) -> Result<Vec<Option<NodeContents>>> {
    match meta.node_contents(nodes).await {
        Err(MetaError::NotSupported(_)) => crate::dump::node_contents_one_by_one(meta, nodes).await,
        r => r,
    }
}

fn indent(depth: usize) -> String {
    "  ".repeat(depth)
}

/// Writes directory `ino` (whose `"name": {` is written) and everything below it.
async fn tree<W: Write>(
    meta: &dyn MetaEngine,
    w: &mut Out<W>,
    ino: Ino,
    attr: &Attr,
    summary: &mut DumpSummary,
    seen: &mut Seen,
) -> Result<()> {
    let ctx = Context::root();
    let Some(Some(contents)) = contents_of(meta, &[(ino, attr.clone())]).await?.pop() else {
        return Err(MetaError::NotFound);
    };
    let Some(head) = entry_fields(meta, ino, attr, &contents, 2, seen).await? else {
        return Err(MetaError::NotFound);
    };
    w.put(&head)?;
    w.put(",\n    \"entries\": {")?;
    summary.entries += 1;
    let mut stack = vec![Frame::new(ino, 1)];
    while let Some(top) = stack.last_mut() {
        let next = match top.page.next() {
            Some(e) => Some(e),
            None if top.done => None,
            None => {
                let page = match meta
                    .readdir(&ctx, top.ino, top.after.as_deref(), PAGE, true)
                    .await
                {
                    Ok(p) => p,
                    // Removed while we walked it: it ends here.
                    Err(MetaError::NotFound) => Vec::new(),
                    Err(e) => return Err(e),
                };
                top.done = page.len() < PAGE;
                top.after = page.last().map(|e| e.name.clone());
                top.page = read_page(meta, page).await?.into_iter();
                top.page.next()
            }
        };
        let Some(Listed {
            entry: e,
            attr,
            contents,
        }) = next
        else {
            let d = top.depth;
            w.put(&format!("\n{}}}\n{}}}", indent(d + 1), indent(d)))?;
            stack.pop();
            continue;
        };
        let depth = top.depth + 2;
        let Some(fields) = entry_fields(meta, e.ino, &attr, &contents, depth + 1, seen).await?
        else {
            continue;
        };
        let comma = if top.written { "," } else { "" };
        top.written = true;
        w.put(&format!(
            "{comma}\n{}\"{}\": {{",
            indent(depth),
            escape(&e.name)
        ))?;
        w.put(&fields)?;
        summary.entries += 1;
        if attr.typ == FileType::Directory {
            w.put(&format!(",\n{}\"entries\": {{", indent(depth + 1)))?;
            stack.push(Frame::new(e.ino, depth));
        } else {
            w.put(&format!("\n{}}}", indent(depth)))?;
        }
    }
    Ok(())
}

impl Frame {
    fn new(ino: Ino, depth: usize) -> Frame {
        Frame {
            ino,
            depth,
            after: None,
            page: Vec::new().into_iter(),
            done: false,
            written: false,
        }
    }
}

/// The fields of an entry but `entries`, each on a line at `depth`, starting with a line
/// break: `attr`, `symlink`, `xattrs`, the ACLs, `chunks`. `None` when the inode went
/// away meanwhile.
async fn entry_fields(
    meta: &dyn MetaEngine,
    ino: Ino,
    attr: &Attr,
    contents: &NodeContents,
    depth: usize,
    seen: &mut Seen,
) -> Result<Option<String>> {
    match fields(meta, ino, attr, contents, depth, seen).await {
        Err(MetaError::NotFound) => Ok(None),
        r => r.map(Some),
    }
}

async fn fields(
    meta: &dyn MetaEngine,
    ino: Ino,
    attr: &Attr,
    contents: &NodeContents,
    depth: usize,
    seen: &mut Seen,
) -> Result<String> {
    let p = indent(depth);
    let mut s = format!("\n{p}\"attr\": {}", to_json(&DumpedAttr::of(ino, attr))?);
    if attr.typ == FileType::Symlink {
        let target = contents
            .symlink
            .as_ref()
            .ok_or_else(|| MetaError::Corrupt(format!("symlink {ino} has no target")))?;
        s.push_str(&format!(",\n{p}\"symlink\": \"{}\"", escape(target)));
    }
    let mut xattrs = Vec::new();
    for (name, value) in &contents.xattrs {
        // Names are written as JSON strings, as JuiceFS does; one that is not UTF-8 is
        // escaped (a load keeps it escaped).
        let name = match String::from_utf8(name.clone()) {
            Ok(n) => n,
            Err(e) => escape(e.as_bytes()),
        };
        xattrs.push(DumpedXattr {
            name,
            value: escape(value),
        });
    }
    if !xattrs.is_empty() {
        xattrs.sort_by(|a, b| a.name.cmp(&b.name));
        s.push_str(&format!(",\n{p}\"xattrs\": {}", to_json(&xattrs)?));
    }
    for (key, typ, id) in [
        ("posix_acl_access", AclType::Access, attr.access_acl),
        ("posix_acl_default", AclType::Default, attr.default_acl),
    ] {
        if id == 0 {
            continue;
        }
        match meta.getxattr(ino, typ.xattr_name()).await {
            Ok(v) => {
                let rule = Rule::from_xattr(&v)?;
                s.push_str(&format!(
                    ",\n{p}\"{key}\": {}",
                    to_json(&DumpedAcl::of(&rule))?
                ));
            }
            Err(MetaError::NoAttr) => {}
            Err(e) => return Err(e),
        }
    }
    if attr.typ == FileType::Regular {
        let mut chunks = Vec::new();
        for (index, slices) in &contents.chunks {
            if let Some(seen) = seen.as_mut() {
                seen.extend(slices.iter().filter(|s| s.id != 0).map(|s| (s.id, s.size)));
            }
            chunks.push(DumpedChunk {
                index: *index,
                slices: slices.iter().map(DumpedSlice::of).collect(),
            });
        }
        match chunks.len() {
            0 => {}
            1 => s.push_str(&format!(",\n{p}\"chunks\": {}", to_json(&chunks)?)),
            _ => {
                s.push_str(&format!(",\n{p}\"chunks\": ["));
                for (i, c) in chunks.iter().enumerate() {
                    let comma = if i + 1 < chunks.len() { "," } else { "" };
                    s.push_str(&format!("\n{p}  {}{comma}", to_json(c)?));
                }
                s.push_str(&format!("\n{p}]"));
            }
        }
    }
    Ok(s)
}

fn to_json<T: Serialize + ?Sized>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| MetaError::backend(false, e))
}
