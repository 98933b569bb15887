//! The one check every statement passes before it runs.
//!
//! It sees the whole plan (subqueries, `EXPLAIN [ANALYZE]` inputs), the
//! statement's context (user, source) and its read/write set, and refuses
//! with PERMISSION_DENIED naming the rule ([`rule`]) wherever in the plan
//! the offending node sits: writes outside managed tables, `COPY`, writes
//! under `EXPLAIN ANALYZE`, SQL `PREPARE`/`EXECUTE`, and locations outside
//! the warehouse and the operator's `--allow-location` prefixes
//! (`storage/locations.rs`); then the user's privileges (`privileges.rs`:
//! grants, roles, the built-in `admin` and `reader`). A refused statement
//! has run nothing.

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::LogicalPlan;
use seglake_catalog::{SEGMENT_DATA_SCHEMA, SYSTEM_SCHEMA, TableFormat};

use super::{Access, Object, Plan, StatementContext};
use crate::sql::SeglakeStatement;
use crate::{EngineError, Result};

/// The rules a refusal names (PERMISSION_DENIED, `docs/server.md`,
/// "Security").
pub(crate) mod rule {
    /// Writes go to managed tables, through Seglake's own write paths.
    pub(crate) const MANAGED_WRITES: &str = "managed-writes-only";
    /// `COPY ... TO` writes files wherever it names: refused everywhere.
    pub(crate) const NO_COPY: &str = "no-copy";
    /// `EXPLAIN ANALYZE` runs its statement: queries only.
    pub(crate) const ANALYZE_QUERIES: &str = "explain-analyze-queries-only";
    /// SQL `PREPARE`/`EXECUTE` would run a statement planned long before.
    pub(crate) const NO_SQL_PREPARE: &str = "no-sql-prepare";
}

/// Refuses a statement Seglake must not run; returns its read/write set.
pub(crate) fn check(cx: &StatementContext, plan: &Plan) -> Result<Access> {
    let access = Access::of(cx, plan)?;
    match plan {
        Plan::DataFusion { plan, .. } => check_plan(cx, plan, false)?,
        // Ingest creates managed tables, or appends to one.
        Plan::Ingest { schema, table, .. } if cx.snapshot().state.table(schema, table).is_ok() => {
            managed_target(cx, schema, table)?;
        }
        Plan::Seglake(
            SeglakeStatement::Delete(_) | SeglakeStatement::Update(_) | SeglakeStatement::Merge(_),
        ) => {
            for object in &access.writes {
                if let Object::Table { schema, table } = object {
                    managed_target(cx, schema, table)?;
                }
            }
        }
        _ => {}
    }
    for object in access.reads.iter().chain(&access.writes) {
        if let Object::Location(location) = object {
            // Confined to the warehouse (outside its own folders) and the
            // operator's --allow-location prefixes.
            cx.storage().user_location(location, false)?;
        }
    }
    // The user's grants (`privileges.rs`).
    super::privileges::authorize(cx, plan, &access, cx.principal().as_ref())?;
    super::privileges::authorize_refresh(cx, plan)?;
    tracing::debug!(
        statement = %cx.id(),
        user = %cx.user(),
        kind = plan.kind().label(),
        reads = ?access.reads,
        writes = ?access.writes,
        "statement checked"
    );
    Ok(access)
}

/// `analyzed`: `plan` runs inside `EXPLAIN ANALYZE`.
fn check_plan(cx: &StatementContext, plan: &LogicalPlan, analyzed: bool) -> Result<()> {
    let mut refusal = None;
    plan.apply_with_subqueries(|node| {
        let verdict = match node {
            LogicalPlan::Copy(_) => Err(EngineError::denied(
                rule::NO_COPY,
                "COPY writes files outside Seglake's tables and is refused: query the data \
                 through Flight SQL, or CREATE TABLE ... AS SELECT into a managed table",
            )),
            LogicalPlan::Dml(_) | LogicalPlan::Ddl(_) if analyzed => Err(EngineError::denied(
                rule::ANALYZE_QUERIES,
                "EXPLAIN ANALYZE runs its statement and is allowed for queries only: \
                 EXPLAIN (without ANALYZE) shows the plan of a write",
            )),
            LogicalPlan::Dml(dml) => write_target(cx, &dml.table_name),
            LogicalPlan::Statement(
                datafusion::logical_expr::Statement::Prepare(_)
                | datafusion::logical_expr::Statement::Execute(_)
                | datafusion::logical_expr::Statement::Deallocate(_),
            ) => Err(EngineError::denied(
                rule::NO_SQL_PREPARE,
                "SQL PREPARE/EXECUTE/DEALLOCATE are refused: use the client's prepared \
                 statements (Flight SQL, ADBC, JDBC), which Seglake plans and checks like any \
                 statement",
            )),
            LogicalPlan::Analyze(a) if !analyzed => {
                // Check the analysed plan with the stricter rule, then stop
                // here (the walk below would visit it again).
                check_plan(cx, &a.input, true).map(|_| TreeNodeRecursion::Jump)
            }
            _ => Ok(TreeNodeRecursion::Continue),
        };
        match verdict {
            Ok(next) => Ok(next),
            Err(e) => {
                refusal = Some(e);
                Ok(TreeNodeRecursion::Stop)
            }
        }
    })?;
    match refusal {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// INSERT, UPDATE and DELETE write managed (Delta) tables only: their
/// write paths apply the erasure filter and commit through the Delta log.
fn write_target(
    cx: &StatementContext,
    name: &datafusion::common::TableReference,
) -> Result<TreeNodeRecursion> {
    let Object::Table { schema, table } = super::access::table(cx, name) else {
        return Ok(TreeNodeRecursion::Continue);
    };
    managed_target(cx, &schema, &table).map(|_| TreeNodeRecursion::Continue)
}

fn managed_target(cx: &StatementContext, schema: &str, table: &str) -> Result<()> {
    if schema == SEGMENT_DATA_SCHEMA {
        return Err(EngineError::denied(
            rule::MANAGED_WRITES,
            format!("the {SEGMENT_DATA_SCHEMA} schema is written by REFRESH SEGMENT only"),
        ));
    }
    if schema == SYSTEM_SCHEMA {
        return Err(EngineError::denied(
            rule::MANAGED_WRITES,
            "the system schema is read-only",
        ));
    }
    // A table that does not exist is NOT_FOUND, as before the check.
    let managed = cx.snapshot().state.table(schema, table)?.format == TableFormat::Delta;
    if managed {
        Ok(())
    } else {
        Err(EngineError::denied(
            rule::MANAGED_WRITES,
            format!(
                "'{schema}.{table}' is not a managed table: only managed tables are written \
                 (external Parquet tables are read-only; CREATE TABLE ... AS SELECT copies one)"
            ),
        ))
    }
}
