//! The execute step: what a checked [`Plan`] does, run over its
//! [`StatementContext`].
//!
//! - queries stream (single node, or distributed through
//!   `crate::distributed::supervise`);
//! - DDL: `ddl.rs`; managed-table DML and maintenance: `crate::commands::managed`;
//!   ingest: `crate::commands::ingest`; segments and activation: `crate::commands::segments`;
//!   users, roles and grants: `security.rs`.

mod ddl;
pub(crate) mod ingest;
pub(crate) mod managed;
mod orphans;
mod queries;
pub(crate) mod security;
pub(crate) mod segments;
mod subqueries;

use std::sync::Arc;

use datafusion::common::TableReference;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{DdlStatement, DmlStatement, LogicalPlan, WriteOp};
use datafusion::prelude::SessionContext;
use seglake_catalog::DEFAULT_CATALOG;

pub(crate) use ddl::delete_prefix;

use crate::pipeline::{Outcome, Plan, StatementContext, StatementKind, classify};
use crate::{EngineError, Result};

/// The schema a query's rows have: that of the analysed plan, whose types
/// are coerced (`SELECT 1.5 UNION ALL SELECT 'a'` is text, where the plan
/// before analysis still says its first input's Float64). What
/// `GetFlightInfo` announces and `DoGet` streams.
pub(crate) fn result_schema(
    state: &datafusion::execution::SessionState,
    plan: &LogicalPlan,
) -> Result<arrow::datatypes::Schema> {
    let analyzed =
        state
            .analyzer()
            .execute_and_check(plan.clone(), state.config_options(), |_, _| {})?;
    Ok(analyzed.schema().as_arrow().clone())
}

impl StatementContext {
    /// Runs a checked plan. `session` is the session's own context: `SET`
    /// and `RESET` change it.
    pub(crate) async fn run(&self, plan: Plan, session: &SessionContext) -> Result<Outcome> {
        match plan {
            Plan::Seglake(statement) => self.run_seglake(statement).await,
            Plan::DataFusion {
                plan, partition_by, ..
            } => match classify(&plan) {
                StatementKind::Query => self.run_query(plan).await,
                StatementKind::Command => self.run_command(plan, &partition_by, session).await,
            },
            Plan::Ingest { .. } => Err(EngineError::InvalidArgument(
                "an ingest needs its rows: use Session::ingest".into(),
            )),
        }
    }

    pub(crate) async fn run_query(&self, plan: LogicalPlan) -> Result<Outcome> {
        let schema = Arc::new(result_schema(&self.context().state(), &plan)?);
        if let Some(cluster) = self.cluster() {
            let stream =
                crate::distributed::supervise(cluster, self.context(), plan, Arc::clone(&schema))
                    .await?;
            return Ok(Outcome::Rows { schema, stream });
        }
        let df = self.context().execute_logical_plan(plan).await?;
        let stream = df.execute_stream().await?;
        Ok(Outcome::Rows { schema, stream })
    }

    async fn run_command(
        &self,
        plan: LogicalPlan,
        partition_by: &[String],
        session: &SessionContext,
    ) -> Result<Outcome> {
        if !partition_by.is_empty()
            && !matches!(&plan, LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(_)))
        {
            return Err(EngineError::InvalidArgument(
                "PARTITIONED BY belongs to CREATE TABLE".into(),
            ));
        }
        match plan {
            LogicalPlan::Ddl(ddl) => self.run_ddl(ddl, partition_by).await,
            // The check let only managed-table targets through.
            LogicalPlan::Dml(DmlStatement {
                table_name,
                op: WriteOp::Insert(op),
                input,
                ..
            }) => {
                let (schema, table) = self.resolve_table_name(&table_name)?;
                let entry = self.managed_entry(&schema, &table, "INSERT").await?;
                let mode = match op {
                    InsertOp::Append => managed::WriteMode::Append,
                    InsertOp::Overwrite | InsertOp::Replace => managed::WriteMode::Overwrite,
                };
                let rows = self
                    .insert_managed(&entry, Arc::unwrap_or_clone(input), mode)
                    .await?;
                Ok(Outcome::Done {
                    rows_affected: Some(rows),
                })
            }
            LogicalPlan::Dml(_) => {
                let batches = self
                    .context()
                    .execute_logical_plan(plan)
                    .await?
                    .collect()
                    .await?;
                let count = batches
                    .first()
                    .filter(|b| b.num_rows() == 1 && b.num_columns() == 1)
                    .and_then(|b| {
                        b.column(0)
                            .as_any()
                            .downcast_ref::<arrow::array::UInt64Array>()
                            .map(|a| a.value(0))
                    });
                Ok(Outcome::Done {
                    rows_affected: count,
                })
            }
            LogicalPlan::Copy(_) => Err(EngineError::Unsupported(
                "COPY is not supported: query the data through Flight SQL instead".into(),
            )),
            other => {
                // SET, RESET and other session statements change the
                // session's settings.
                session.execute_logical_plan(other).await?.collect().await?;
                Ok(Outcome::Done {
                    rows_affected: None,
                })
            }
        }
    }

    /// Resolves a table name against the session's default schema.
    pub(crate) fn resolve_table_name(&self, name: &TableReference) -> Result<(String, String)> {
        resolve_table_name(self.context(), name)
    }

    pub(crate) fn check_catalog_name(&self, catalog: &str) -> Result<()> {
        check_catalog(catalog)
    }

    pub(crate) fn default_schema_name(&self) -> String {
        default_schema(self.context())
    }
}

pub(crate) fn check_catalog(catalog: &str) -> Result<()> {
    if catalog == DEFAULT_CATALOG {
        Ok(())
    } else {
        Err(EngineError::NotFound(format!(
            "catalog '{catalog}' not found (Seglake serves the catalog '{DEFAULT_CATALOG}')"
        )))
    }
}

fn default_schema(ctx: &SessionContext) -> String {
    ctx.state()
        .config()
        .options()
        .catalog
        .default_schema
        .clone()
}

/// Resolves a table name against the default schema of `ctx`.
pub(crate) fn resolve_table_name(
    ctx: &SessionContext,
    name: &TableReference,
) -> Result<(String, String)> {
    match name {
        TableReference::Bare { table } => Ok((default_schema(ctx), table.to_string())),
        TableReference::Partial { schema, table } => Ok((schema.to_string(), table.to_string())),
        TableReference::Full {
            catalog,
            schema,
            table,
        } => {
            check_catalog(catalog)?;
            Ok((schema.to_string(), table.to_string()))
        }
    }
}
