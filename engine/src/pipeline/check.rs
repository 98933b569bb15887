//! The one check every statement passes before it runs.
//!
//! It sees the whole plan (subqueries, `EXPLAIN [ANALYZE]` inputs), the
//! statement's context (user, source) and its read/write set. Today it
//! enforces what Seglake enforced before the pipeline existed, wherever in
//! the plan the write sits; the security issues put their rules (grants,
//! confined locations) here.

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::{LogicalPlan, WriteOp};
use seglake_catalog::TableFormat;

use super::{Access, Object, Plan, StatementContext};
use crate::{EngineError, Result};

/// Refuses a statement Seglake must not run; returns its read/write set.
pub(crate) fn check(cx: &StatementContext, plan: &Plan) -> Result<Access> {
    let access = Access::of(cx, plan)?;
    if let Plan::DataFusion { plan, .. } = plan {
        check_plan(cx, plan, false)?;
    }
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
            LogicalPlan::Copy(_) => Err(EngineError::Unsupported(
                "COPY is not supported: query the data through Flight SQL instead".into(),
            )),
            LogicalPlan::Dml(_) | LogicalPlan::Ddl(_) if analyzed => Err(EngineError::Unsupported(
                "EXPLAIN ANALYZE runs its statement and is supported for queries only: \
                     EXPLAIN (without ANALYZE) shows the plan of a write"
                    .into(),
            )),
            LogicalPlan::Dml(dml) if matches!(dml.op, WriteOp::Insert(_)) => {
                insert_target(cx, &dml.table_name)
            }
            LogicalPlan::Statement(
                datafusion::logical_expr::Statement::Prepare(_)
                | datafusion::logical_expr::Statement::Execute(_)
                | datafusion::logical_expr::Statement::Deallocate(_),
            ) => Err(EngineError::Unsupported(
                "SQL PREPARE/EXECUTE/DEALLOCATE are not supported: use the client's prepared \
                 statements (Flight SQL, ADBC, JDBC), which Seglake plans and checks like any \
                 statement"
                    .into(),
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

/// INSERT writes managed (Delta) tables only.
fn insert_target(
    cx: &StatementContext,
    name: &datafusion::common::TableReference,
) -> Result<TreeNodeRecursion> {
    let Object::Table { schema, table } = super::access::table(cx, name) else {
        return Ok(TreeNodeRecursion::Continue);
    };
    let managed = cx
        .snapshot()
        .state
        .table(&schema, &table)
        .is_ok_and(|e| e.format == TableFormat::Delta);
    if managed {
        Ok(TreeNodeRecursion::Continue)
    } else {
        Err(EngineError::Unsupported(format!(
            "'{schema}.{table}' is an external Parquet table (read-only): \
             INSERT into a managed table (CREATE TABLE ... AS SELECT copies it)"
        )))
    }
}
