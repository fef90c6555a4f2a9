//! vfs-core (being written).
