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
    /// `datafusion.runtime.*` (memory pool, spill files, caches) belongs to
    /// the server's flags: a session's change would make a pool beside the
    /// server's.
    pub(crate) const NO_RUNTIME_SETTINGS: &str = "no-runtime-settings";
}

/// Refuses a statement Seglake must not run; returns its read/write set.
pub(crate) fn check(cx: &StatementContext, plan: &Plan) -> Result<Access> {
    let access = Access::of(cx, plan)?;
    match plan {
        Plan::DataFusion { plan, .. } => {
            refuse_runtime_settings(plan)?;
            check_plan(cx, plan, false)?
        }
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

/// Refuses `SET`/`RESET datafusion.runtime.*` for everybody, administrators
/// included (and so Flight SQL session options, which are `SET`s): the
/// server's flags own the runtime, which every session shares.
fn refuse_runtime_settings(plan: &LogicalPlan) -> Result<()> {
    use datafusion::logical_expr::Statement;
    let mut refused = None;
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::Statement(
            Statement::SetVariable(datafusion::logical_expr::SetVariable { variable, .. })
            | Statement::ResetVariable(datafusion::logical_expr::ResetVariable { variable }),
        ) = node
            && variable
                .to_ascii_lowercase()
                .starts_with("datafusion.runtime.")
        {
            refused = Some(variable.clone());
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    let Some(name) = refused else {
        return Ok(());
    };
    let key = name.to_ascii_lowercase();
    let owner = match key.trim_start_matches("datafusion.runtime.") {
        "memory_limit" => {
            "the server's memory pool is sized at start by --memory-limit-mb \
             (SEGLAKE_MEMORY_LIMIT_MB; default 70 % of the machine's or cgroup's memory)"
        }
        "temp_directory" | "max_temp_directory_size" | "max_spill_merge_fan_in" => {
            "spill files go to the server's temporary directory (TMPDIR of its process), \
             set by the operator at start"
        }
        _ => {
            "the server fixes its caches at start (the list-files cache stays off so that \
             every query sees files other servers commit)"
        }
    };
    Err(EngineError::denied(
        rule::NO_RUNTIME_SETTINGS,
        format!(
            "'{name}' is a runtime setting, shared by every session of the server, and SET \
             cannot change it for anyone: {owner}"
        ),
    ))
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
