//! meta-redis (being written).
