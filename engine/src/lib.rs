//! Seglake's engine: the warehouse and its catalog seen through DataFusion,
//! and sessions that take every statement through one pipeline.
//!
//! Layers, each using only the ones before it (docs/architecture.md,
//! checked by `scripts/check-layers`):
//! `storage` (warehouse, object stores, Delta tables) → `sql` (the
//! front-end: parse once) → `catalog` (DataFusion providers over a catalog
//! snapshot, system tables) → `distributed` (workers, codec) → `pipeline`
//! (statement context, plan, the one check) → `commands` (what each
//! statement does) → `session` (the dispatcher) → `engine` (the
//! composition root).

mod admission;
mod arrow_cast;
mod catalog;
mod commands;
mod config;
pub mod distributed;
mod egress;
mod engine;
#[cfg(test)]
mod erasure_tests;
mod error;
mod memory;
#[cfg(test)]
mod memory_tests;
mod optimizer;
pub mod pipeline;
mod scheduler;
mod session;
mod sql;
mod storage;
#[cfg(test)]
mod test_text;
mod workload;
#[cfg(test)]
mod workload_tests;

pub use arrow_cast::cast_batch;
pub use config::SeglakeOptions;
pub use engine::{Engine, EngineConfig};
pub use error::{EngineError, ErrorKind, Result};
pub use pipeline::{IngestMode, Outcome, StatementKind};
pub use seglake_catalog::{DEFAULT_CATALOG, DEFAULT_SCHEMA, S3Options, SYSTEM_SCHEMA};
pub use seglake_demo as demo;
pub use session::{IngestKeyInfo, PlannedQuery, Prepared, Session, TableInfo};
pub use storage::audit::AuditRecord;

/// Re-exported so that callers use the exact versions the engine uses.
pub use datafusion;
pub use datafusion_distributed;

/// The user scheduled refreshes run as (recorded in the commit history).
pub use scheduler::SCHEDULER_USER;
