//! Reading a dump as a stream of events: the header's parts, then each entry of the tree
//! in document order, a directory's `End` after its children. The parser holds one entry
//! (without its children) per level of the tree, never a whole directory.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use tokio::sync::mpsc::Sender;

use super::json::{unescape, DumpedAcl, DumpedAttr, DumpedChunk, DumpedXattr};
use super::Counters;
use crate::quota::QuotaKind;
use crate::{Format, MetaError, Result};

/// Which tree an entry at the top belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Top {
    /// `FSTree`: the root.
    Root,
    /// `Trash`: the trash directory.
    Trash,
}

/// An entry's fields but its children.
#[derive(Debug, Default)]
pub(super) struct Fields {
    pub attr: Option<DumpedAttr>,
    pub symlink: Option<Vec<u8>>,
    pub xattrs: Vec<DumpedXattr>,
    pub access_acl: Option<DumpedAcl>,
    pub default_acl: Option<DumpedAcl>,
    pub chunks: Vec<DumpedChunk>,
}

/// What the parser reports, in document order.
#[derive(Debug)]
pub(super) enum Event {
    Setting(Box<Format>),
    Counters(Counters),
    Quotas(QuotaKind, Vec<(u64, i64, i64)>),
    /// An entry: `name` is `None` at the top. With `open`, its children follow, then
    /// [`Event::End`].
    Entry {
        top: Option<Top>,
        name: Option<Vec<u8>>,
        fields: Box<Fields>,
        open: bool,
    },
    /// The children of the innermost open entry are done.
    End,
}

/// Parses `input` and sends its events to `tx`; stops early when the receiver is gone.
pub(super) fn parse(input: impl std::io::Read, tx: &Sender<Event>) -> Result<()> {
    let mut de =
        serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(256 << 10, input));
    // A tree may be deeper than serde_json's default limit; the parser thread has the
    // stack for it (see `loader`).
    de.disable_recursion_limit();
    Document { tx }.deserialize(&mut de).map_err(corrupt)?;
    de.end().map_err(corrupt)
}

fn corrupt(e: serde_json::Error) -> MetaError {
    MetaError::Corrupt(format!("dump: {e}"))
}

fn send<E: de::Error>(tx: &Sender<Event>, e: Event) -> std::result::Result<(), E> {
    tx.blocking_send(e)
        .map_err(|_| E::custom("the load stopped"))
}

struct Document<'a> {
    tx: &'a Sender<Event>,
}

#[derive(Deserialize)]
struct DumpedCounters {
    #[serde(default, rename = "usedSpace")]
    used_space: i64,
    #[serde(default, rename = "usedInodes")]
    used_inodes: i64,
    #[serde(default, rename = "nextInodes")]
    next_inode: i64,
    #[serde(default, rename = "nextChunk")]
    next_chunk: i64,
    #[serde(default, rename = "nextSession")]
    next_session: i64,
    #[serde(default, rename = "nextTrash")]
    next_trash: i64,
}

#[derive(Deserialize)]
struct DumpedQuota {
    #[serde(default, rename = "maxSpace")]
    max_space: i64,
    #[serde(default, rename = "maxInodes")]
    max_inodes: i64,
}

impl<'de> DeserializeSeed<'de> for Document<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Document<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JuiceFS metadata dump (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        let mut counters = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "Setting" => {
                    let f: Format = map.next_value()?;
                    send(self.tx, Event::Setting(Box::new(f)))?;
                }
                "Counters" => {
                    let c: DumpedCounters = map.next_value()?;
                    counters = true;
                    send(
                        self.tx,
                        Event::Counters(Counters {
                            used_space: c.used_space,
                            used_inodes: c.used_inodes,
                            next_inode: c.next_inode,
                            next_chunk: c.next_chunk,
                            next_session: c.next_session,
                            next_trash: c.next_trash,
                        }),
                    )?;
                }
                "Quotas" | "UserQuotas" | "GroupQuotas" => {
                    let kind = match key.as_str() {
                        "Quotas" => QuotaKind::Dir,
                        "UserQuotas" => QuotaKind::User,
                        _ => QuotaKind::Group,
                    };
                    let q: Option<BTreeMap<String, DumpedQuota>> = map.next_value()?;
                    let mut list = Vec::new();
                    for (k, q) in q.unwrap_or_default() {
                        let k: u64 = k.parse().map_err(|_| {
                            de::Error::custom(format!("{key}: key {k:?} is not a number"))
                        })?;
                        list.push((k, q.max_space, q.max_inodes));
                    }
                    send(self.tx, Event::Quotas(kind, list))?;
                }
                "FSTree" | "Trash" => {
                    if !counters {
                        return Err(de::Error::custom("the tree comes before \"Counters\""));
                    }
                    let top = if key == "FSTree" {
                        Top::Root
                    } else {
                        Top::Trash
                    };
                    map.next_value_seed(EntrySeed {
                        tx: self.tx,
                        top: Some(top),
                        name: None,
                    })?;
                }
                // Sessions and queued deletions are not loaded (see the module docs);
                // the change log is not kept.
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !counters {
            return Err(de::Error::custom("missing \"Counters\""));
        }
        Ok(())
    }
}

/// One entry: sends it when its `entries` start (or when it ends, without them), then
/// its children, then `End`.
struct EntrySeed<'a> {
    tx: &'a Sender<Event>,
    top: Option<Top>,
    name: Option<Vec<u8>>,
}

impl<'de> DeserializeSeed<'de> for EntrySeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EntrySeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an entry (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        let mut fields = Fields::default();
        let mut opened = false;
        while let Some(key) = map.next_key::<String>()? {
            if opened {
                return Err(de::Error::custom(format!(
                    "field {key:?} after \"entries\""
                )));
            }
            match key.as_str() {
                "attr" => fields.attr = Some(map.next_value()?),
                "symlink" => fields.symlink = Some(unescape(&map.next_value::<String>()?)),
                "xattrs" => fields.xattrs = map.next_value::<Option<Vec<_>>>()?.unwrap_or_default(),
                "posix_acl_access" => fields.access_acl = map.next_value()?,
                "posix_acl_default" => fields.default_acl = map.next_value()?,
                "chunks" => fields.chunks = map.next_value::<Option<Vec<_>>>()?.unwrap_or_default(),
                "entries" => {
                    if fields.attr.is_none() {
                        return Err(de::Error::custom("\"entries\" before \"attr\""));
                    }
                    opened = true;
                    let entry = Event::Entry {
                        top: self.top,
                        name: self.name.clone(),
                        fields: Box::new(std::mem::take(&mut fields)),
                        open: true,
                    };
                    send(self.tx, entry)?;
                    map.next_value_seed(Children { tx: self.tx })?;
                    send(self.tx, Event::End)?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !opened {
            if fields.attr.is_none() {
                return Err(de::Error::custom("an entry without \"attr\""));
            }
            let entry = Event::Entry {
                top: self.top,
                name: self.name,
                fields: Box::new(fields),
                open: false,
            };
            send(self.tx, entry)?;
        }
        Ok(())
    }
}

/// A directory's `entries` object: each name, then that entry.
struct Children<'a> {
    tx: &'a Sender<Event>,
}

impl<'de> DeserializeSeed<'de> for Children<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Children<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a directory's entries (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        while let Some(name) = map.next_key::<String>()? {
            map.next_value_seed(EntrySeed {
                tx: self.tx,
                top: None,
                name: Some(unescape(&name)),
            })?;
        }
        Ok(())
    }
}
