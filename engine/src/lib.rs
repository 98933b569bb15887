//! Seglake's engine: the warehouse and its catalog seen through DataFusion,
//! sessions that run SQL (with Seglake's custom statements), ingest, and the
//! demo data generator.

mod catalog_provider;
pub mod delta;
pub mod delta_dist;
pub mod demo;
pub mod distributed;
mod engine;
mod error;
mod ingest;
mod managed;
mod optimizer;
mod segments;
pub mod sql;
mod statements;
mod system;

pub use engine::{
    Engine, EngineConfig, Outcome, PlannedQuery, Prepared, Session, StatementKind, TableInfo,
};
pub use error::{EngineError, ErrorKind, Result};
pub use ingest::{IngestMode, cast_batch};
pub use seglake_catalog::{DEFAULT_CATALOG, DEFAULT_SCHEMA, S3Options, SYSTEM_SCHEMA};
pub use segments::schedule::SCHEDULER_USER;

/// Re-exported so that callers use the exact versions the engine uses.
pub use datafusion;
pub use datafusion_distributed;
