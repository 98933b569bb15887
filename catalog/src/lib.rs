//! Seglake's catalog.
//!
//! The catalog lives **in the warehouse** so that every server and worker that
//! points at the same warehouse sees the same schemas and tables:
//!
//! ```text
//! <warehouse>/_seglake/catalog/00000000000000000001.json
//! <warehouse>/_seglake/catalog/00000000000000000002.json
//! ...
//! ```
//!
//! Each file is a complete [`CatalogState`]. An update reads the newest
//! version `v`, applies a change and writes version `v + 1` with
//! [`object_store::PutMode::Create`] (a conditional put: `If-None-Match: *` on
//! S3, a no-replace hard link on the local filesystem). When two writers race
//! for the same version exactly one wins; the other re-reads and re-applies its
//! change, so no update is ever lost. See [`CatalogStore::update`].
//!
//! This crate knows nothing of DataFusion, the UDFs or the server: it is the
//! warehouse (object store configuration) and the persisted catalog model.

mod error;
pub mod keys;
mod model;
pub mod security;
mod store;
mod warehouse;

pub use error::{CatalogError, Result};
pub use model::{
    Activation, CatalogState, DEFAULT_CATALOG, DEFAULT_SCHEMA, Destination, DestinationKind,
    ErasedTable, ErasureReceipt, FileFormat, LastRefresh, PartitionColumn, RefreshSchedule,
    SEGMENT_DATA_SCHEMA, SEGMENTS_SCHEMA, SYSTEM_SCHEMA, SchemaEntry, SegmentEntry, SegmentVersion,
    TableEntry, TableFormat, TableKind,
};
pub use store::{CatalogStore, Snapshot};
pub use warehouse::{S3Options, Warehouse};
