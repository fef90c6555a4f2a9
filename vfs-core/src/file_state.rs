//! What one VFS knows about a file open in it, shared by the file's handles, its reader
//! and its writer: the length this client sees, whether writes are pending, when it last
//! wrote, and the chunk layouts read from the engine.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use meta_api::{overlay, Ino, MetaEngine, Slice, Timestamp};

use crate::Result;

/// Layouts kept per file before the cache starts over (a 64 MiB chunk each).
const MAX_CACHED_LAYOUTS: usize = 4096;

#[derive(Default)]
struct Layouts {
    /// Bumped by every invalidation so that a layout read before it is not cached after it.
    generation: u64,
    map: HashMap<u32, Arc<Vec<Slice>>>,
}

/// The state of a file open in this VFS that is not its buffered data.
pub(crate) struct FileState {
    ino: Ino,
    pending: AtomicBool,
    length: AtomicU64,
    /// When this client last wrote the file (shown until the write is committed).
    written: Mutex<Timestamp>,
    layouts: Mutex<Layouts>,
}

impl FileState {
    /// The state of `ino`, whose length the engine says is `length`.
    pub(crate) fn new(ino: Ino, length: u64) -> FileState {
        FileState {
            ino,
            pending: AtomicBool::new(false),
            length: AtomicU64::new(length),
            written: Mutex::new(Timestamp::default()),
            layouts: Mutex::new(Layouts::default()),
        }
    }

    /// The file's inode.
    pub(crate) fn ino(&self) -> Ino {
        self.ino
    }

    /// The length this client sees: the engine's plus its own uncommitted writes.
    pub(crate) fn length(&self) -> u64 {
        self.length.load(Ordering::Acquire)
    }

    pub(crate) fn set_length(&self, len: u64) {
        self.length.store(len, Ordering::Release);
    }

    /// Extends the length to cover a write ending at `end`.
    pub(crate) fn extend_length(&self, end: u64) {
        self.length.fetch_max(end, Ordering::AcqRel);
    }

    /// Records that the file was written now.
    pub(crate) fn touch(&self) {
        *self.written.lock().unwrap_or_else(|p| p.into_inner()) = Timestamp::now();
    }

    /// When this client last wrote the file.
    pub(crate) fn written(&self) -> Timestamp {
        *self.written.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether some writes are buffered or uploading (cheap check before taking the writer).
    pub(crate) fn has_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    pub(crate) fn set_pending(&self, pending: bool) {
        self.pending.store(pending, Ordering::Release);
    }

    fn layouts(&self) -> MutexGuard<'_, Layouts> {
        // Each critical section is a single map operation, consistent even after a panic.
        self.layouts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The visible layout of chunk `index` (see [`overlay::build`]), from `meta` unless
    /// cached.
    pub(crate) async fn layout(
        &self,
        meta: &dyn MetaEngine,
        index: u32,
    ) -> Result<Arc<Vec<Slice>>> {
        Ok(self.layout_fetched(meta, index).await?.0)
    }

    /// [`FileState::layout`], and the number of records the chunk had when it was read
    /// from the engine just now (`None` when the layout was cached).
    pub(crate) async fn layout_fetched(
        &self,
        meta: &dyn MetaEngine,
        index: u32,
    ) -> Result<(Arc<Vec<Slice>>, Option<usize>)> {
        let generation = {
            let l = self.layouts();
            if let Some(found) = l.map.get(&index) {
                return Ok((found.clone(), None));
            }
            l.generation
        };
        let slices = meta.read_chunk(self.ino, index).await?;
        let layout = Arc::new(overlay::build(&slices));
        let mut l = self.layouts();
        if l.generation == generation {
            if l.map.len() >= MAX_CACHED_LAYOUTS {
                l.map.clear();
            }
            l.map.insert(index, layout.clone());
        }
        Ok((layout, Some(slices.len())))
    }

    /// Forgets the cached layout of one chunk (this client changed it).
    pub(crate) fn invalidate_chunk(&self, index: u32) {
        let mut l = self.layouts();
        l.generation += 1;
        l.map.remove(&index);
    }

    /// Forgets every cached layout (on open, for close-to-open consistency, and after
    /// operations that change many chunks).
    pub(crate) fn invalidate_all(&self) {
        let mut l = self.layouts();
        l.generation += 1;
        l.map.clear();
    }
}

#[cfg(test)]
mod tests {
    use meta_api::testkit::model::ModelEngine;
    use meta_api::{Context, FileType, Format, ROOT_INO};

    use super::*;

    async fn engine_with_file() -> (ModelEngine, Ino) {
        let meta = ModelEngine::unformatted();
        let format = Format::new("t", "00000000-0000-4000-8000-000000000000", "mem", "");
        meta.init(&format, false).await.unwrap();
        let e = meta
            .mknod(
                &Context::root(),
                ROOT_INO,
                b"f",
                FileType::Regular,
                0o644,
                0,
            )
            .await
            .unwrap();
        (meta, e.ino)
    }

    fn slice(id: u64, pos: u32, len: u32) -> Slice {
        Slice {
            pos,
            id,
            size: len,
            off: 0,
            len,
        }
    }

    #[tokio::test]
    async fn layouts_are_cached_until_invalidated() {
        let (meta, ino) = engine_with_file().await;
        let now = Timestamp::now();
        meta.write_slice(ino, 0, slice(10, 0, 4), now)
            .await
            .unwrap();
        let f = FileState::new(ino, 4);
        let first = f.layout(&meta, 0).await.unwrap();
        assert_eq!(first.iter().map(|s| s.id).collect::<Vec<_>>(), [10]);

        // A change behind the cache's back is not seen until the chunk is invalidated…
        meta.write_slice(ino, 0, slice(11, 4, 4), now)
            .await
            .unwrap();
        meta.write_slice(ino, 1, slice(12, 0, 4), now)
            .await
            .unwrap();
        assert!(Arc::ptr_eq(&f.layout(&meta, 0).await.unwrap(), &first));
        let other = f.layout(&meta, 1).await.unwrap();
        f.invalidate_chunk(0);
        let ids: Vec<u64> = f
            .layout(&meta, 0)
            .await
            .unwrap()
            .iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(ids, [10, 11]);
        // … and invalidating one chunk keeps the others.
        assert!(Arc::ptr_eq(&f.layout(&meta, 1).await.unwrap(), &other));
        f.invalidate_all();
        assert!(!Arc::ptr_eq(&f.layout(&meta, 1).await.unwrap(), &other));
    }

    #[test]
    fn length_only_grows_by_writes() {
        let f = FileState::new(1, 10);
        f.extend_length(5);
        assert_eq!(f.length(), 10);
        f.extend_length(20);
        assert_eq!(f.length(), 20);
        f.set_length(3);
        assert_eq!(f.length(), 3);
        assert_eq!(f.written(), Timestamp::default());
        f.touch();
        assert!(f.written() > Timestamp::default());
    }
}
