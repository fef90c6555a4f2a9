//! meta-fdb (being written).
