//! Loading a dump: the parser runs on a thread of its own and hands events over a bounded
//! channel; this side turns them into records, batches them, and rebuilds what follows
//! from the tree (see the [module docs](super)).

use std::collections::HashMap;

use super::json::DumpedAttr;
use super::reader::{self, Event, Fields, Top};
use super::{Batch, Counters, Edge, Link, LoadEnd, Node};
use crate::quota::{Quota, QuotaKind};
use crate::space::Usage;
use crate::upkeep::DirStat;
use crate::{
    FileType, Format, Ino, MetaEngine, MetaError, Result, Timestamp, CHUNK_SIZE, ROOT_INO,
    TRASH_INO,
};

/// Records written per [`MetaEngine::load_batch`].
const BATCH: usize = 4096;
/// Events in flight between the parser and the loader.
const EVENTS: usize = 1024;
/// The parser's stack: it recurses once per level of the tree.
const PARSER_STACK: usize = 256 << 20;

/// Checkpoints' holds on slices, for [`load_restoring`]: slice id → size and holds.
pub type Holds = HashMap<u64, (u32, u32)>;

/// What [`load`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadSummary {
    /// Inodes written.
    pub inodes: u64,
    /// Directory entries written.
    pub entries: u64,
    /// The counters stored.
    pub counters: Counters,
}

/// Loads the dump read from `input` (ours or juicefs's) into `meta`, which must be empty
/// ([`MetaError::Exists`] otherwise). Memory follows the tree's depth, a batch, and the
/// number of hard-linked inodes and quotas (see the [module docs](super)).
pub async fn load<R>(meta: &dyn MetaEngine, input: R) -> Result<LoadSummary>
where
    R: std::io::Read + Send + 'static,
{
    load_edited(meta, input, |_| Ok(())).await
}

/// [`load`], with the dump's settings passed through `edit` before they are written (last,
/// as always): a restore points the volume at the bucket it was found in, or sets
/// credentials the dump left out. An error from `edit` ends the load like a corrupt dump:
/// the engine is left without settings, so it does not open as a volume.
pub async fn load_edited<R, E>(meta: &dyn MetaEngine, input: R, edit: E) -> Result<LoadSummary>
where
    R: std::io::Read + Send + 'static,
    E: FnOnce(&mut Format) -> Result<()>,
{
    if !meta.is_empty().await? {
        return Err(MetaError::Exists);
    }
    load_into(meta, input, edit, None).await
}

/// A checkpoint restore's load ([`crate::checkpoint`]) into `meta`, which
/// [`MetaEngine::wipe`] emptied but for its setting and counters: the volume keeps
/// `format` (the dump's setting is not used), and no counter goes below `floor`, the
/// counters before the wipe, so no inode number or slice id is handed out twice.
///
/// `holds` are the checkpoints' references (slice id → size and number of holds), written
/// with the dump's own: a slice the dump refers to gets them on top of its references, one
/// only checkpoints hold gets a record with them alone. A held size other than the dump's
/// is refused as corrupt, as two sizes for one slice in a dump are.
pub async fn load_restoring<R>(
    meta: &dyn MetaEngine,
    input: R,
    format: Format,
    floor: Counters,
    holds: Holds,
) -> Result<LoadSummary>
where
    R: std::io::Read + Send + 'static,
{
    load_into(
        meta,
        input,
        move |f| {
            *f = format;
            Ok(())
        },
        Some((floor, holds)),
    )
    .await
}

/// The load itself: into an empty engine (`restoring` `None`) or a wiped one, with the
/// counters before the wipe and the checkpoints' holds.
async fn load_into<R, E>(
    meta: &dyn MetaEngine,
    input: R,
    edit: E,
    restoring: Option<(Counters, Holds)>,
) -> Result<LoadSummary>
where
    R: std::io::Read + Send + 'static,
    E: FnOnce(&mut Format) -> Result<()>,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel(EVENTS);
    let parser = std::thread::Builder::new()
        .name("dump-parser".into())
        .stack_size(PARSER_STACK)
        .spawn(move || reader::parse(input, &tx))
        .map_err(|e| MetaError::backend(false, e))?;
    let mut loader = Loader::new(meta);
    if let Some((floor, holds)) = restoring {
        loader.floor = Some(floor);
        loader.holds = holds;
    }
    let mut result = Ok(());
    while let Some(event) = rx.recv().await {
        if let Err(e) = loader.event(event).await {
            result = Err(e);
            break;
        }
    }
    // Dropping the receiver stops a parser still running.
    drop(rx);
    let parsed = parser
        .join()
        .map_err(|_| MetaError::Corrupt("dump: the parser panicked".into()))?;
    result?;
    parsed?;
    loader.finish(edit).await
}

/// A directory whose children are being read.
struct Open {
    node: Node,
    stat: DirStat,
    /// Space and inodes of everything below it (for directory quotas).
    below: (i64, i64),
    subdirs: u32,
}

struct Loader<'a> {
    meta: &'a dyn MetaEngine,
    batch: Batch,
    format: Option<Format>,
    dumped: Option<Counters>,
    usage: Usage,
    next_inode: i64,
    next_chunk: i64,
    next_trash: i64,
    quotas: HashMap<(QuotaKind, u64), Quota>,
    /// Inodes whose dump says they have several links: the names met so far per parent.
    links: HashMap<Ino, Vec<(Ino, u32)>>,
    stack: Vec<Open>,
    saw_trash: bool,
    summary: LoadSummary,
    /// A restore's counters before the wipe: none of the new ones goes below them.
    floor: Option<Counters>,
    /// A restore's checkpoint holds not yet written.
    holds: Holds,
}

fn corrupt(msg: String) -> MetaError {
    MetaError::Corrupt(format!("dump: {msg}"))
}

impl<'a> Loader<'a> {
    fn new(meta: &'a dyn MetaEngine) -> Self {
        Loader {
            meta,
            batch: Batch::default(),
            format: None,
            dumped: None,
            usage: Usage::default(),
            next_inode: 2,
            next_chunk: 1,
            next_trash: 0,
            quotas: HashMap::new(),
            links: HashMap::new(),
            stack: Vec::new(),
            saw_trash: false,
            summary: LoadSummary::default(),
            floor: None,
            holds: HashMap::new(),
        }
    }

    async fn event(&mut self, event: Event) -> Result<()> {
        match event {
            Event::Setting(f) => self.format = Some(*f),
            Event::Counters(c) => self.dumped = Some(c),
            Event::Quotas(kind, list) => {
                for (key, max_space, max_inodes) in list {
                    let q = Quota {
                        max_space,
                        max_inodes,
                        used_space: 0,
                        used_inodes: 0,
                    };
                    self.quotas.insert((kind, key), q);
                }
            }
            Event::Entry {
                top,
                name,
                fields,
                open,
            } => self.entry(top, name, *fields, open)?,
            Event::End => self.close()?,
        }
        if self.batch.len() >= BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        if !self.batch.is_empty() {
            let batch = std::mem::take(&mut self.batch);
            self.meta.load_batch(&batch).await?;
        }
        Ok(())
    }

    fn entry(
        &mut self,
        top: Option<Top>,
        name: Option<Vec<u8>>,
        f: Fields,
        open: bool,
    ) -> Result<()> {
        let dumped = f
            .attr
            .ok_or_else(|| corrupt("an entry without attributes".into()))?;
        let mut attr = dumped.attr()?;
        let ino = match top {
            // A dump of a subtree loads as the root, as JuiceFS does.
            Some(Top::Root) => ROOT_INO,
            Some(Top::Trash) => TRASH_INO,
            None => dumped.inode,
        };
        let parent = match (top, self.stack.last()) {
            (Some(_), _) => ROOT_INO,
            (None, Some(p)) => p.node.ino,
            (None, None) => return Err(corrupt(format!("inode {ino} outside the tree"))),
        };
        if top.is_some() && (attr.typ != FileType::Directory || !self.stack.is_empty()) {
            return Err(corrupt(format!(
                "the top of a tree is not a directory (inode {ino})"
            )));
        }
        if top == Some(Top::Trash) {
            self.saw_trash = true;
        }
        if let Some(name) = &name {
            crate::name::validate_name(name).map_err(|e| {
                corrupt(format!(
                    "name {:?} in directory {parent}: {e}",
                    String::from_utf8_lossy(name)
                ))
            })?;
            check_child(ino, parent)?;
        }
        if open && attr.typ != FileType::Directory {
            return Err(corrupt(format!(
                "inode {ino} has entries but is a {:?}",
                attr.typ
            )));
        }
        // What a file counts in usage and statistics: only regular files have data.
        let length = if attr.typ == FileType::Regular {
            attr.length
        } else {
            0
        };
        if let Some(name) = name {
            let p = self
                .stack
                .last_mut()
                .ok_or_else(|| corrupt(format!("inode {ino} outside the tree")))?;
            p.stat.add_entry(attr.typ, length);
            let (_, space) = crate::space::entry_usage(attr.typ, length);
            p.below.0 = p.below.0.saturating_add(space);
            p.below.1 += 1;
            if attr.typ == FileType::Directory && !crate::trash::is_trash(parent) {
                p.subdirs += 1;
            }
            self.batch.edges.push(Edge {
                parent,
                name,
                ino,
                typ: attr.typ,
            });
            self.summary.entries += 1;
            if dumped.nlink > 1 && attr.typ != FileType::Directory {
                let names = self.links.entry(ino).or_default();
                let again = !names.is_empty();
                match names.iter_mut().find(|(d, _)| *d == parent) {
                    Some((_, n)) => *n += 1,
                    None => names.push((parent, 1)),
                }
                if again {
                    // Met before: the inode is written already.
                    return Ok(());
                }
            }
        }
        attr.parent = parent;
        self.account(ino, &dumped, length)?;
        let node = Node {
            ino,
            attr,
            access_acl: f.access_acl.as_ref().map(|a| a.rule()),
            default_acl: f.default_acl.as_ref().map(|a| a.rule()),
        };
        for x in f.xattrs {
            let value = super::json::unescape(&x.value);
            self.batch.xattrs.push((ino, x.name.into_bytes(), value));
        }
        match node.attr.typ {
            FileType::Directory => {
                let mut node = node;
                node.attr.length = 4096;
                self.stack.push(Open {
                    node,
                    stat: DirStat::default(),
                    below: (0, 0),
                    subdirs: 0,
                });
                if !open {
                    self.close()?;
                }
            }
            FileType::Symlink => {
                let target = f.symlink.unwrap_or_default();
                crate::name::validate_symlink_target(&target)
                    .map_err(|e| corrupt(format!("symlink {ino}: {e}")))?;
                let mut node = node;
                node.attr.length = target.len() as u64;
                self.batch.symlinks.push((ino, target));
                self.push_node(node);
            }
            FileType::Regular => {
                for c in f.chunks {
                    let mut slices = Vec::with_capacity(c.slices.len());
                    for s in &c.slices {
                        let s = s.slice();
                        if u64::from(s.pos) + u64::from(s.len) > CHUNK_SIZE
                            || (s.id != 0
                                && u64::from(s.off) + u64::from(s.len) > u64::from(s.size))
                        {
                            return Err(corrupt(format!(
                                "inode {ino} chunk {}: slice {s:?}",
                                c.index
                            )));
                        }
                        if s.id != 0 {
                            self.batch.slice_refs.push((s.id, s.size));
                            if let Some((size, n)) = self.holds.remove(&s.id) {
                                self.batch
                                    .slice_refs
                                    .extend(std::iter::repeat_n((s.id, size), n as usize));
                            }
                            self.next_chunk = self.next_chunk.max(to_i64(s.id)?.saturating_add(1));
                        }
                        slices.push(s);
                    }
                    if !slices.is_empty() {
                        self.batch.chunks.push((ino, c.index, slices));
                    }
                }
                self.push_node(node);
            }
            _ => self.push_node(node),
        }
        Ok(())
    }

    fn push_node(&mut self, node: Node) {
        self.batch.nodes.push(node);
        self.summary.inodes += 1;
    }

    /// Counts a newly met inode (of data `length`) in the usage, the user and group quotas and the id counters.
    fn account(&mut self, ino: Ino, dumped: &DumpedAttr, length: u64) -> Result<()> {
        self.usage.add_node(ino, length);
        if ino != ROOT_INO && ino != TRASH_INO {
            let space = crate::space::align4k(length);
            for key in [
                (QuotaKind::User, u64::from(dumped.uid)),
                (QuotaKind::Group, u64::from(dumped.gid)),
            ] {
                if let Some(q) = self.quotas.get_mut(&key) {
                    q.used_space = q.used_space.saturating_add(space);
                    q.used_inodes += 1;
                }
            }
        }
        if crate::trash::is_trash(ino) {
            self.next_trash = self.next_trash.max(to_i64(ino - TRASH_INO)?);
        } else {
            self.next_inode = self.next_inode.max(to_i64(ino)?.saturating_add(1));
        }
        Ok(())
    }

    /// The children of the innermost directory are done: its node and statistics are
    /// final.
    fn close(&mut self) -> Result<()> {
        let mut dir = self
            .stack
            .pop()
            .ok_or_else(|| corrupt("an unbalanced end of entries".into()))?;
        let ino = dir.node.ino;
        dir.node.attr.nlink = 2 + if crate::trash::is_trash(ino) {
            0
        } else {
            dir.subdirs
        };
        if crate::trash::keeps_stats(ino) {
            self.batch.dir_stats.push((ino, dir.stat));
        }
        if let Some(q) = self.quotas.get_mut(&(QuotaKind::Dir, ino)) {
            (q.used_space, q.used_inodes) = dir.below;
        }
        if let Some(p) = self.stack.last_mut() {
            p.below.0 = p.below.0.saturating_add(dir.below.0);
            p.below.1 += dir.below.1;
        }
        self.push_node(dir.node);
        Ok(())
    }

    async fn finish(mut self, edit: impl FnOnce(&mut Format) -> Result<()>) -> Result<LoadSummary> {
        if !self.stack.is_empty() {
            return Err(corrupt("the dump ends inside a directory".into()));
        }
        let mut format = self
            .format
            .take()
            .ok_or_else(|| corrupt("missing \"Setting\"".into()))?;
        let dumped = self
            .dumped
            .ok_or_else(|| corrupt("missing \"Counters\"".into()))?;
        if self.summary.inodes == 0 {
            return Err(corrupt("missing \"FSTree\"".into()));
        }
        if format.trash_days > 0 && !self.saw_trash {
            // The volume keeps a trash: it needs its directory even if the dump had none.
            self.push_node(Node {
                ino: TRASH_INO,
                attr: crate::trash::root_attr(Timestamp::now()),
                access_acl: None,
                default_acl: None,
            });
        }
        edit(&mut format)?;
        // The slices only checkpoints hold.
        let mut held_only: Vec<_> = std::mem::take(&mut self.holds).into_iter().collect();
        held_only.sort_unstable_by_key(|&(id, _)| id);
        for (id, (size, n)) in held_only {
            self.next_chunk = self.next_chunk.max(to_i64(id)?.saturating_add(1));
            self.batch
                .slice_refs
                .extend(std::iter::repeat_n((id, size), n as usize));
            if self.batch.len() >= BATCH {
                self.flush().await?;
            }
        }
        self.flush().await?;
        let floor = self.floor.unwrap_or_default();
        let counters = Counters {
            used_space: self.usage.space,
            used_inodes: self.usage.inodes,
            next_inode: self.next_inode.max(dumped.next_inode).max(floor.next_inode),
            next_chunk: self.next_chunk.max(dumped.next_chunk).max(floor.next_chunk),
            next_session: dumped.next_session.max(floor.next_session),
            next_trash: self.next_trash.max(dumped.next_trash).max(floor.next_trash),
        };
        let links = self
            .links
            .into_iter()
            .filter(|(_, p)| p.iter().map(|(_, n)| n).sum::<u32>() > 1)
            .map(|(ino, parents)| Link { ino, parents })
            .collect();
        let quotas = self
            .quotas
            .into_iter()
            .map(|((kind, key), q)| (kind, key, q))
            .collect();
        self.meta
            .finish_load(&LoadEnd {
                format,
                counters,
                links,
                quotas,
                restoring: self.floor.is_some(),
            })
            .await?;
        // A load that returned survives power loss.
        self.meta.sync().await?;
        self.summary.counters = counters;
        Ok(self.summary)
    }
}

fn to_i64(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| corrupt(format!("id {v} out of range")))
}

/// An entry's inode may not be the root, the trash, or 0, and nothing but hour
/// directories lives in the trash directory itself.
fn check_child(ino: Ino, parent: Ino) -> Result<()> {
    if ino == 0 || ino == ROOT_INO || ino == TRASH_INO {
        return Err(corrupt(format!("inode {ino} as an entry of {parent}")));
    }
    if crate::trash::is_trash(ino) != (parent == TRASH_INO) {
        return Err(corrupt(format!("inode {ino} in directory {parent}")));
    }
    Ok(())
}
