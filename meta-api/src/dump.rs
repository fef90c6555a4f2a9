//! Moving a whole volume's metadata out and in: JuiceFS's JSON dump format.
//!
//! [`dump`] walks a volume through [`MetaEngine`] and writes juicefs's layout (`Setting`,
//! `Counters`, `Sustained`, `DelFiles`, the quotas, then `FSTree` and `Trash`, entry by
//! entry), so `juicefs load` reads it; [`load`] reads a dump — ours or juicefs's — into an
//! empty engine through [`backend::Bulk`](crate::backend::Bulk). Both stream: the memory
//! they use is bounded by the tree's depth, a batch, and the number of hard-linked inodes
//! and quotas, never by the number of inodes or of entries in a directory.
//!
//! **What a load rebuilds.** Like juicefs, a load takes the tree as the truth and
//! recomputes what follows from it: link counts (a directory has 2 + its subdirectories;
//! an inode met under several names has that many links and parent 0), directory
//! statistics, the usage counters and quota usage, and slice reference counts (one per
//! occurrence of a slice in a file's chunks). The id counters are the larger of the dumped
//! and the recomputed ones, so no inode or slice id is ever handed out twice.
//!
//! **What a load leaves out.** The sessions and the files they kept open after an unlink
//! (`Sustained`), and the files queued for deletion (`DelFiles`), are not part of the tree:
//! their inodes are not in the dump, so their objects are left for gc to find as leaked.
//!
//! **Crashes.** A load writes the volume's setting last: a load cut short leaves an engine
//! with records but no setting, which does not open as a volume and which a second load
//! refuses ([`MetaError::Exists`]): empty it and load again. A
//! dump of a volume in use is not a point-in-time snapshot: a file changed during the walk
//! appears as it was when the walk reached it.

mod json;
mod loader;
mod reader;
mod writer;

use crate::acl::Rule;
use crate::quota::{Quota, QuotaKind};
use crate::upkeep::DirStat;
use crate::{Attr, FileType, Format, Ino, MetaEngine, MetaError, Result, Slice};

pub use loader::{load, load_edited, load_restoring, Holds, LoadSummary};
pub use writer::{dump, dump_with_slices, DumpOptions, DumpSummary};

/// What a dump writes of a node besides its attributes ([`MetaEngine::node_contents`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeContents {
    /// Extended attributes but the ACLs (which the attributes name by id), by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// The slice records of each chunk of a regular file with any, by index, up to its
    /// length.
    pub chunks: Vec<(u32, Vec<crate::Slice>)>,
    /// A symbolic link's target.
    pub symlink: Option<Vec<u8>>,
}

/// [`MetaEngine::node_contents`] a node at a time, through the engine's own reads: what an
/// engine without batched reads answers.
pub async fn node_contents_one_by_one(
    meta: &dyn MetaEngine,
    nodes: &[(Ino, Attr)],
) -> Result<Vec<Option<NodeContents>>> {
    let mut out = Vec::with_capacity(nodes.len());
    for (ino, attr) in nodes {
        match one_node(meta, *ino, attr).await {
            Ok(c) => out.push(Some(c)),
            Err(MetaError::NotFound) => out.push(None),
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

async fn one_node(meta: &dyn MetaEngine, ino: Ino, attr: &Attr) -> Result<NodeContents> {
    let mut c = NodeContents::default();
    if attr.typ == FileType::Symlink {
        c.symlink = Some(meta.readlink(ino).await?);
    }
    for name in meta.listxattr(ino).await? {
        if crate::acl::AclType::from_xattr_name(&name).is_some() {
            continue;
        }
        match meta.getxattr(ino, &name).await {
            Ok(v) => c.xattrs.push((name, v)),
            // Removed between the listing and the read.
            Err(MetaError::NoAttr) => {}
            Err(e) => return Err(e),
        }
    }
    if attr.typ == FileType::Regular {
        for index in 0..attr.length.div_ceil(crate::CHUNK_SIZE) {
            let index = u32::try_from(index)
                .map_err(|_| MetaError::Corrupt(format!("inode {ino}: length {}", attr.length)))?;
            let slices = meta.read_chunk(ino, index).await?;
            if !slices.is_empty() {
                c.chunks.push((index, slices));
            }
        }
    }
    Ok(c)
}

/// The counters a dump records (JuiceFS's `Counters` object). The id counters hold the
/// next id to hand out, as JuiceFS's SQL engine stores them (Redis stores one less).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Bytes used (`usedSpace`).
    pub used_space: i64,
    /// Inodes used (`totalInodes`, dumped as `usedInodes`).
    pub used_inodes: i64,
    /// The next inode number (`nextInode`).
    pub next_inode: i64,
    /// The next slice id (`nextChunk`).
    pub next_chunk: i64,
    /// The next session id (`nextSession`).
    pub next_session: i64,
    /// The number of trash directories made so far (`nextTrash`).
    pub next_trash: i64,
}

/// A file queued for deletion, as a dump records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuedDeletion {
    /// The inode.
    pub ino: Ino,
    /// Its length when it was deleted.
    pub length: u64,
    /// When it was queued (Unix seconds; JuiceFS calls it `expire`).
    pub queued: i64,
}

/// An inode as a load writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The inode number.
    pub ino: Ino,
    /// Its attributes: `nlink`, `parent` and `length` are final (a directory's length is
    /// 4096, a symlink's its target's length); `access_acl` and `default_acl` are 0 — the
    /// engine stores the rules below and sets the ids.
    pub attr: Attr,
    /// Its access ACL.
    pub access_acl: Option<Rule>,
    /// Its default ACL (directories).
    pub default_acl: Option<Rule>,
}

/// A directory entry as a load writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// The directory.
    pub parent: Ino,
    /// The name (checked with [`crate::name::validate_name`]).
    pub name: Vec<u8>,
    /// The inode it names.
    pub ino: Ino,
    /// That inode's type.
    pub typ: FileType,
}

/// One batch of records a load writes (see [`backend::Bulk::load_batch`](crate::backend::Bulk::load_batch)).
/// A record's inode may come in a later batch than its edge or its chunks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// Inodes.
    pub nodes: Vec<Node>,
    /// Directory entries.
    pub edges: Vec<Edge>,
    /// Chunk records: the file, the chunk index, its slices in write order.
    pub chunks: Vec<(Ino, u32, Vec<Slice>)>,
    /// Symlink targets.
    pub symlinks: Vec<(Ino, Vec<u8>)>,
    /// Extended attributes other than ACLs: inode, name, value.
    pub xattrs: Vec<(Ino, Vec<u8>, Vec<u8>)>,
    /// Directory statistics.
    pub dir_stats: Vec<(Ino, DirStat)>,
    /// One `(id, size)` per occurrence of a slice in a chunk record: each adds one
    /// reference, and the first occurrence of a slice over the whole load makes it one.
    pub slice_refs: Vec<(u64, u32)>,
}

impl Batch {
    /// How many records it holds.
    pub fn len(&self) -> usize {
        self.nodes.len()
            + self.edges.len()
            + self.chunks.len()
            + self.symlinks.len()
            + self.xattrs.len()
            + self.dir_stats.len()
            + self.slice_refs.len()
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Refuses a batch no engine may write, before any engine sees it: a record of inode
    /// 0, a reference to slice 0 (a hole, which has no object), or an inode or slice id
    /// past `i64::MAX` (JuiceFS keeps ids in signed 64-bit counters and SQL columns).
    /// [`MetaEngine::load_batch`] checks every batch.
    pub fn check(&self) -> crate::Result<()> {
        let ino = |i: Ino| i > 0 && i64::try_from(i).is_ok();
        let inos = self
            .nodes
            .iter()
            .map(|n| n.ino)
            .chain(self.edges.iter().flat_map(|e| [e.parent, e.ino]))
            .chain(self.chunks.iter().map(|c| c.0))
            .chain(self.symlinks.iter().map(|s| s.0))
            .chain(self.xattrs.iter().map(|x| x.0))
            .chain(self.dir_stats.iter().map(|d| d.0));
        for i in inos {
            if !ino(i) {
                return Err(crate::MetaError::InvalidArgument(
                    "a load record names inode 0 or one past 2^63",
                ));
            }
        }
        if self.slice_refs.iter().any(|&(id, _)| !ino(id)) {
            return Err(crate::MetaError::InvalidArgument(
                "a slice reference names id 0 (a hole) or one past 2^63",
            ));
        }
        Ok(())
    }
}

/// An inode with several names, as a load found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The inode.
    pub ino: Ino,
    /// Each directory holding names of it, with how many (the counts add up to `nlink`).
    pub parents: Vec<(Ino, u32)>,
}

impl Link {
    /// Its number of names: the sum of the counts.
    pub fn nlink(&self) -> u32 {
        self.parents.iter().map(|(_, n)| n).sum()
    }

    /// What every engine's [`finish_load`](crate::backend::Bulk::finish_load) answers for
    /// a link whose inode no batch of the load wrote.
    pub const WITHOUT_NODE: crate::MetaError = crate::MetaError::InvalidArgument(
        "a hard link of the load names an inode the load did not write",
    );
}

/// What ends a load (see [`backend::Bulk::finish_load`](crate::backend::Bulk::finish_load)).
#[derive(Debug, Clone, PartialEq)]
pub struct LoadEnd {
    /// The volume's settings, written last.
    pub format: Format,
    /// The counters to store.
    pub counters: Counters,
    /// Inodes met under more than one name: their `nlink` becomes their number of names
    /// and their `parent` 0, and engines that keep parent records for hard-linked inodes
    /// (Redis `p{ino}`, TKV `A{ino}P{parent}`) write them from [`Link::parents`].
    pub links: Vec<Link>,
    /// Quotas, with their usage recomputed from the tree.
    pub quotas: Vec<(QuotaKind, u64, Quota)>,
    /// A checkpoint restore ([`crate::checkpoint`]): the engine was wiped, not empty, and
    /// its setting (which holds the restore's marker) is overwritten instead of refused.
    pub restoring: bool,
}
