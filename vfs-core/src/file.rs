//! The state one VFS keeps for a file while any handle has it open: buffered writes,
//! the length this client sees, and the chunk layouts read from the engine.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use meta_api::{overlay, Ino, Slice, Timestamp};

use crate::vfs::Inner;
use crate::writer::FileWriter;
use crate::Result;

/// Layouts kept per file before the cache starts over (a 64 MiB chunk each).
const MAX_CACHED_LAYOUTS: usize = 4096;

#[derive(Default)]
struct Layouts {
    /// Bumped by every invalidation so that a layout read before it is not cached after it.
    generation: u64,
    map: HashMap<u32, Arc<Vec<Slice>>>,
}

/// A file open in this VFS, shared by all of its handles.
pub(crate) struct OpenFile {
    pub(crate) ino: Ino,
    pub(crate) writer: tokio::sync::Mutex<FileWriter>,
    pending: AtomicBool,
    length: AtomicU64,
    /// When this client last wrote the file (shown until the write is committed).
    written: Mutex<Timestamp>,
    layouts: Mutex<Layouts>,
}

impl OpenFile {
    pub(crate) fn new(ino: Ino, length: u64) -> OpenFile {
        OpenFile {
            ino,
            writer: tokio::sync::Mutex::new(FileWriter::new(ino)),
            pending: AtomicBool::new(false),
            length: AtomicU64::new(length),
            written: Mutex::new(Timestamp::default()),
            layouts: Mutex::new(Layouts::default()),
        }
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

    /// The visible layout of chunk `index` (see [`overlay::build`]), from the engine unless cached.
    pub(crate) async fn layout(&self, inner: &Inner, index: u32) -> Result<Arc<Vec<Slice>>> {
        let generation = {
            let l = self.layouts();
            if let Some(found) = l.map.get(&index) {
                return Ok(found.clone());
            }
            l.generation
        };
        let slices = inner.meta.read_chunk(self.ino, index).await?;
        let layout = Arc::new(overlay::build(&slices));
        let mut l = self.layouts();
        if l.generation == generation {
            if l.map.len() >= MAX_CACHED_LAYOUTS {
                l.map.clear();
            }
            l.map.insert(index, layout.clone());
        }
        Ok(layout)
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
