//! meta-sqlite (being written).
