//! The files open in a VFS, by inode: each one's state and buffered writes, shared by all
//! of its handles, counted so that the last release forgets it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use meta_api::Ino;

use crate::file_state::FileState;
use crate::writer::{FileWriter, SliceWriter};

/// A file open in this VFS, shared by all of its handles.
pub(crate) struct OpenFile {
    /// What the reader, the writer and the handles share.
    pub(crate) state: Arc<FileState>,
    /// The buffered writes; held while writing, flushing, or changing the file in ways
    /// buffered writes must not overtake.
    pub(crate) writer: tokio::sync::Mutex<FileWriter>,
}

impl OpenFile {
    /// The file's inode.
    pub(crate) fn ino(&self) -> Ino {
        self.state.ino()
    }
}

/// The table of open files, with how many handles each has.
pub(crate) struct OpenFiles {
    slices: Arc<SliceWriter>,
    files: Mutex<HashMap<Ino, (Arc<OpenFile>, usize)>>,
}

impl OpenFiles {
    /// An empty table whose files write through `slices`.
    pub(crate) fn new(slices: Arc<SliceWriter>) -> OpenFiles {
        OpenFiles {
            slices,
            files: Mutex::new(HashMap::new()),
        }
    }

    fn files(&self) -> MutexGuard<'_, HashMap<Ino, (Arc<OpenFile>, usize)>> {
        // Every critical section is a few map operations; consistent even after a panic.
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The open file of `ino`, if a handle has it open.
    pub(crate) fn get(&self, ino: Ino) -> Option<Arc<OpenFile>> {
        self.files().get(&ino).map(|(of, _)| of.clone())
    }

    /// Counts one more handle of `ino`, whose length the engine says is `length`, and
    /// refreshes what other clients may have changed (close-to-open): cached layouts are
    /// dropped, and the length is the engine's unless this client has writes pending.
    pub(crate) async fn acquire(&self, ino: Ino, length: u64) -> Arc<OpenFile> {
        let of = {
            let mut files = self.files();
            let entry = files.entry(ino).or_insert_with(|| {
                let state = Arc::new(FileState::new(ino, length));
                let writer = FileWriter::new(self.slices.clone(), state.clone());
                let of = OpenFile {
                    state,
                    writer: tokio::sync::Mutex::new(writer),
                };
                (Arc::new(of), 0)
            });
            entry.1 += 1;
            entry.0.clone()
        };
        let w = of.writer.lock().await;
        of.state.invalidate_all();
        if w.has_pending() {
            of.state.extend_length(length);
        } else {
            of.state.set_length(length);
        }
        drop(w);
        of
    }

    /// Counts one handle of `ino` less; the last one forgets the file.
    pub(crate) fn release(&self, ino: Ino) {
        let mut files = self.files();
        if let Some(entry) = files.get_mut(&ino) {
            entry.1 = entry.1.saturating_sub(1);
            if entry.1 == 0 {
                files.remove(&ino);
            }
        }
    }

    /// Every open file.
    pub(crate) fn all(&self) -> Vec<Arc<OpenFile>> {
        self.files().values().map(|(of, _)| of.clone()).collect()
    }

    /// The open files that have buffered or uploading writes.
    pub(crate) fn with_pending(&self) -> Vec<Arc<OpenFile>> {
        self.files()
            .values()
            .filter(|(of, _)| of.state.has_pending())
            .map(|(of, _)| of.clone())
            .collect()
    }

    /// Forgets every open file (the VFS is closing).
    pub(crate) fn clear(&self) {
        self.files().clear();
    }
}

#[cfg(test)]
mod tests {
    use chunkstore::MemStore;
    use meta_api::testkit::model::ModelEngine;

    use super::*;
    use crate::budget::BufferBudget;

    fn table() -> OpenFiles {
        let slices = SliceWriter::new(
            Arc::new(ModelEngine::unformatted()),
            Arc::new(MemStore::new()),
            4,
            false,
            Arc::new(BufferBudget::new(1 << 20)),
            1,
        );
        OpenFiles::new(Arc::new(slices))
    }

    #[tokio::test]
    async fn handles_of_one_inode_share_one_file_until_the_last_release() {
        let t = table();
        let a = t.acquire(7, 10).await;
        a.state.extend_length(50);
        // Another handle opens it: the engine's length, as nothing is pending.
        let b = t.acquire(7, 20).await;
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(b.state.length(), 20);
        assert_eq!(t.all().len(), 1);
        assert!(t.with_pending().is_empty());
        a.state.set_pending(true);
        assert_eq!(t.with_pending().len(), 1);

        t.release(7);
        assert!(t.get(7).is_some());
        t.release(7);
        assert!(t.get(7).is_none());
        // Released once too often: nothing to forget, nothing breaks.
        t.release(7);
        let c = t.acquire(7, 5).await;
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(c.ino(), 7);
        t.clear();
        assert!(t.all().is_empty());
    }
}
