//! Storage: the tables' files and logs. Delta Lake tables (`delta.rs`):
//! opening them through the warehouse's object store, the cache of loaded
//! table states, log stores for `s3://`, history, erasure filters.
//! Distributed Delta scans (`delta_scan.rs`): the leaf a coordinator ships to
//! workers. No SQL and no session here.

pub(crate) mod delta;
pub(crate) mod delta_scan;
