//! Building local trees of known bytes and comparing them with a volume.

use std::path::Path;

/// Deterministic pseudo-random bytes (xorshift), so a test can regenerate what it wrote.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Every regular file, directory and symlink under `root`, as paths relative to it, sorted.
pub fn walk(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let rd = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read_dir {dir:?}: {e}"));
        for entry in rd {
            let entry = entry.unwrap_or_else(|e| panic!("read_dir entry: {e}"));
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .unwrap_or_else(|e| panic!("strip_prefix: {e}"))
                .to_path_buf();
            let ft = entry
                .file_type()
                .unwrap_or_else(|e| panic!("file_type: {e}"));
            if ft.is_dir() {
                stack.push(path);
            }
            out.push(rel);
        }
    }
    out.sort();
    out
}
