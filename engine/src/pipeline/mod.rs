//! The statement pipeline: every statement, from every entry point (Flight
//! SQL statements and prepared statements, DoPut updates, ingest, the HTTP
//! collector's commits, scheduled segment refreshes), goes the same way:
//!
//! ```text
//! begin (StatementContext) → parse (crate::sql) → plan (Plan) → check → execute
//! ```
//!
//! - [`StatementContext`]: the statement's id, user, source, start time,
//!   cancellation token, and its own DataFusion context carrying the catalog
//!   snapshot it plans against (never installed on the session's shared
//!   context, so concurrent statements of one session cannot see each
//!   other's snapshot).
//! - [`Plan`]: a DataFusion `LogicalPlan`, a Seglake command, or an ingest.
//! - [`check`]: the one function that sees every statement with its whole
//!   read and write set ([`Access`], found by walking the whole plan,
//!   subqueries and `EXPLAIN` inputs included) before anything runs.

mod access;
mod check;
mod context;
pub(crate) mod privileges;

pub(crate) use access::{Access, Object};
pub(crate) use check::check;
pub(crate) use context::Handles;
pub use context::{Source, StatementContext, StatementId};

use arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::LogicalPlan;

use crate::sql::SeglakeStatement;

/// Whether a statement produces rows or changes something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    /// SELECT, EXPLAIN, SHOW, DESCRIBE...: rows, produced lazily.
    Query,
    /// DDL, DML and SET: runs once, eagerly, and reports a count.
    Command,
}

/// What running a statement gave.
pub enum Outcome {
    /// Rows, streamed: dropping the stream cancels the query.
    Rows {
        schema: SchemaRef,
        stream: SendableRecordBatchStream,
    },
    /// A command ran; rows affected where that means something.
    Done { rows_affected: Option<u64> },
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rows { schema, .. } => f.debug_struct("Rows").field("schema", schema).finish(),
            Self::Done { rows_affected } => f
                .debug_struct("Done")
                .field("rows_affected", rows_affected)
                .finish(),
        }
    }
}

/// Whether a DataFusion plan is a query or a command.
pub(crate) fn classify(plan: &LogicalPlan) -> StatementKind {
    match plan {
        LogicalPlan::Ddl(_)
        | LogicalPlan::Dml(_)
        | LogicalPlan::Copy(_)
        | LogicalPlan::Statement(_) => StatementKind::Command,
        _ => StatementKind::Query,
    }
}

/// What to do when the table exists or not (ADBC ingest modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestMode {
    /// Create the table; fail if it exists.
    Create,
    /// Append to the table; fail if it does not exist.
    Append,
    /// Replace the table's data (create it if missing).
    Replace,
    /// Create the table if missing, then append.
    CreateAppend,
}

/// A statement after planning, before the check.
#[derive(Debug)]
pub(crate) enum Plan {
    /// A statement Seglake runs itself (managed-table DML, maintenance,
    /// segments, activation).
    Seglake(SeglakeStatement),
    /// A statement DataFusion planned: queries, DDL, INSERT, SET.
    DataFusion {
        plan: LogicalPlan,
        /// `PARTITIONED BY` of a CREATE TABLE.
        partition_by: Vec<String>,
        /// The table a `DESCRIBE` shows (DataFusion's plan of it holds the
        /// schema, not the name): read, for the check.
        described: Vec<datafusion::common::TableReference>,
    },
    /// A bulk ingest into `schema.table` (the rows come as a stream; its
    /// `IngestMode` goes to the command). `replace`: the ingest replaces
    /// the table's rows.
    Ingest {
        schema: String,
        table: String,
        replace: bool,
    },
}

/// What kind of statement a plan is, as later issues record it
/// (`system.queries.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Query,
    Dml,
    Ddl,
    Maintenance,
    Segment,
    Ingest,
    Session,
    /// Users, roles and grants.
    Security,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::Dml => "dml",
            Self::Ddl => "ddl",
            Self::Maintenance => "maintenance",
            Self::Segment => "segment",
            Self::Ingest => "ingest",
            Self::Session => "session",
            Self::Security => "security",
        }
    }
}

impl Plan {
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Self::Seglake(s) => match s {
                SeglakeStatement::Update(_)
                | SeglakeStatement::Delete(_)
                | SeglakeStatement::Merge(_) => Kind::Dml,
                SeglakeStatement::Optimize { .. }
                | SeglakeStatement::Vacuum { .. }
                | SeglakeStatement::ForgetProfile { .. } => Kind::Maintenance,
                SeglakeStatement::KillQuery { .. } => Kind::Session,
                SeglakeStatement::Segment(_) => Kind::Segment,
                SeglakeStatement::Security(_) => Kind::Security,
            },
            Self::DataFusion { plan, .. } => match plan {
                LogicalPlan::Ddl(_) => Kind::Ddl,
                LogicalPlan::Dml(_) | LogicalPlan::Copy(_) => Kind::Dml,
                LogicalPlan::Statement(_) => Kind::Session,
                _ => Kind::Query,
            },
            Self::Ingest { .. } => Kind::Ingest,
        }
    }
}

#[cfg(test)]
mod tests;
