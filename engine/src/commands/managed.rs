//! Statements on managed (Delta) tables: CREATE TABLE [AS], INSERT, UPDATE,
//! DELETE, MERGE INTO, OPTIMIZE, VACUUM and FORGET PROFILE.

use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast::{
    AssignmentTarget, FromTable, MergeAction, MergeClauseKind, MergeInsertKind, ObjectName,
    TableFactor, TableWithJoins,
};
use deltalake_core::DeltaTable;
use deltalake_core::operations::vacuum::VacuumMode;
use deltalake_core::operations::write::SchemaMode;
use deltalake_core::protocol::SaveMode;
use seglake_catalog::{
    ErasedTable, ErasureReceipt, SEGMENT_DATA_SCHEMA, SYSTEM_SCHEMA, TableEntry, TableFormat,
    TableKind,
};
use seglake_udfs::erased_profiles::{ERASED, ErasedProfiles, REFUSE_ERASED, REFUSED_MESSAGE};
use tracing::{info, warn};

use crate::commands::ingest::writer_properties;
use crate::pipeline::StatementContext;
use crate::sql::seglake::object_name_parts;
use crate::sql::{ProfileId, SeglakeStatement};
use crate::storage::delta::{commit_properties, drop_erased, session_for_delta};
use crate::storage::erasure::{hash_legacy_receipts, receipt_mut, to_hex};
use crate::{EngineError, Outcome, Result};

/// The shortest `VACUUM` retention that also deletes data files no commit
/// references: a write uploads its files before its commit, so a shorter
/// retention could delete the files of a write still in progress.
pub(crate) const ORPHAN_MIN_RETAIN_HOURS: f64 = 24.0;

/// How a write treats the existing rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteMode {
    Append,
    Overwrite,
}

impl StatementContext {
    /// Runs a Seglake statement (`crate::sql::seglake`).
    pub(crate) async fn run_seglake(&self, statement: SeglakeStatement) -> Result<Outcome> {
        let rows = match statement {
            SeglakeStatement::Segment(s) => return self.run_segment(s).await,
            SeglakeStatement::Security(s) => return self.run_security(s).await,
            SeglakeStatement::Delete(d) => self.delete(*d).await?,
            SeglakeStatement::Update(u) => self.update(*u).await?,
            SeglakeStatement::Merge(m) => self.merge(*m).await?,
            SeglakeStatement::Optimize { table } => self.optimize(&table).await?,
            SeglakeStatement::Vacuum {
                table: Some(table),
                retain_hours,
                dry_run,
            } => self.vacuum(&table, retain_hours, dry_run).await?,
            SeglakeStatement::Vacuum {
                table: None,
                retain_hours,
                dry_run,
            } => self.vacuum_warehouse(retain_hours, dry_run).await?,
            SeglakeStatement::ForgetProfile {
                profile_id: ProfileId::Literal(profile_id),
            } => self.forget_profile(&profile_id).await?,
            SeglakeStatement::KillQuery { id } => self.kill_query(&id)?,
            SeglakeStatement::ForgetProfile {
                profile_id: ProfileId::Parameter(i),
            } => {
                return Err(EngineError::InvalidArgument(format!(
                    "no value bound for parameter ${i}"
                )));
            }
        };
        Ok(Outcome::Done {
            rows_affected: Some(rows),
        })
    }

    /// The managed table a statement names; external tables are refused
    /// with `what` in the message.
    pub(crate) async fn managed_table(
        &self,
        name: &ObjectName,
        what: &str,
    ) -> Result<(String, String, TableEntry)> {
        let parts = object_name_parts(name);
        let (schema, table) = match parts.as_slice() {
            [t] => (self.default_schema_name(), t.clone()),
            [s, t] => (s.clone(), t.clone()),
            [c, s, t] => {
                self.check_catalog_name(c)?;
                (s.clone(), t.clone())
            }
            _ => {
                return Err(EngineError::InvalidArgument(format!(
                    "bad table name '{name}'"
                )));
            }
        };
        let entry = self.managed_entry(&schema, &table, what).await?;
        Ok((schema, table, entry))
    }

    pub(crate) async fn managed_entry(
        &self,
        schema: &str,
        table: &str,
        what: &str,
    ) -> Result<TableEntry> {
        if schema == SYSTEM_SCHEMA {
            return Err(EngineError::InvalidArgument(
                "the system schema is read-only".into(),
            ));
        }
        if schema == SEGMENT_DATA_SCHEMA {
            return Err(EngineError::InvalidArgument(format!(
                "{what}: the {SEGMENT_DATA_SCHEMA} schema is written by REFRESH SEGMENT only"
            )));
        }
        let snapshot = self.storage().catalog().await?;
        let entry = snapshot.state.table(schema, table)?.clone();
        if entry.format != TableFormat::Delta {
            return Err(EngineError::Unsupported(format!(
                "{what} works on managed tables; '{schema}.{table}' is an external Parquet table \
                 (read-only): copy it into a managed table with CREATE TABLE ... AS SELECT"
            )));
        }
        Ok(entry)
    }

    /// The tombstones of the newest catalog: what writes drop.
    pub(crate) async fn erasures(&self) -> Result<ErasedProfiles> {
        self.storage().current_erasures().await
    }

    /// Erases, after a write to `table` (whose schema is `schema`), the
    /// rows of profiles whose tombstone appeared while the statement
    /// wrote: `before` is what the write filtered. `FORGET PROFILE` may
    /// have scanned the table before this commit, so the writer erases them
    /// itself, and no erased row survives a race with an erasure.
    pub(crate) async fn erase_late_rows(
        &self,
        table: DeltaTable,
        schema: &Schema,
        before: &ErasedProfiles,
    ) -> Result<DeltaTable> {
        if schema.field_with_name("profile_id").is_err() {
            return Ok(table);
        }
        let late = self.erasures().await?.since(before);
        if late.is_empty() {
            return Ok(table);
        }
        let (table, erased) = self
            .erase_rows(table, &late, "FORGET PROFILE (write during the erasure)")
            .await?;
        info!(user = %self.user(), rows = erased.rows_removed, "rows of a profile erased during the write removed");
        Ok(table)
    }

    /// Deletes the rows of the `erased` profiles from `table`, physically:
    /// the rewrite, a vacuum of the rewritten files with no retention, and
    /// a checkpoint that drops the log history describing them. The Delta
    /// log records the predicate as `seglake_erased(profile_id)`: never an
    /// id.
    pub(crate) async fn erase_rows(
        &self,
        table: DeltaTable,
        erased: &ErasedProfiles,
        operation: &str,
    ) -> Result<(DeltaTable, ErasedTable)> {
        let (table, metrics) = table
            .delete()
            .with_predicate(format!("{ERASED}(profile_id)"))
            .with_session_state(session_for_delta(self.context(), Some(erased)))
            .with_writer_properties(writer_properties(self.context().state().config().options()))
            .with_commit_properties(commit_properties(
                self.user(),
                &[("operation", operation.into())],
            ))
            .await?;
        let mut table = table;
        let mut files_deleted = 0;
        if metrics.num_removed_files > 0 {
            let deleted_at = table.version().unwrap_or(0);
            deltalake_core::checkpoints::create_checkpoint(&table, None).await?;
            // Lite: only the rewritten files. Untracked files may belong
            // to a write in progress.
            let (vacuumed, n) = self
                .vacuum_table(table, Some(0.0), false, VacuumMode::Lite)
                .await?;
            files_deleted = n;
            drop_log_before(&vacuumed, deleted_at).await?;
            table = vacuumed;
        }
        Ok((
            table,
            ErasedTable {
                schema: String::new(),
                table: String::new(),
                rows_removed: metrics.num_deleted_rows.unwrap_or(0) as u64,
                files_rewritten: metrics.num_removed_files as u64,
                files_deleted,
            },
        ))
    }

    /// Creates a managed table from `input`'s schema and rows (`CREATE TABLE
    /// [AS]`, ingest create). Nothing is visible until the catalog commit
    /// that registers the complete table. Returns the rows written.
    #[allow(clippy::too_many_arguments)] // mirrors CREATE TABLE's clauses
    pub(crate) async fn create_managed(
        &self,
        schema_name: &str,
        table_name: &str,
        input: Option<LogicalPlan>,
        schema: SchemaRef,
        partition_by: &[String],
        if_not_exists: bool,
        or_replace: bool,
    ) -> Result<CreateResult> {
        let engine = self.storage();
        let snapshot = engine.catalog().await?;
        if schema_name == SYSTEM_SCHEMA {
            return Err(EngineError::InvalidArgument(
                "the system schema is read-only".into(),
            ));
        }
        snapshot.state.schema(schema_name)?;
        if snapshot.state.table(schema_name, table_name).is_ok() {
            if if_not_exists {
                return Ok(CreateResult::Existed);
            }
            if !or_replace {
                return Err(EngineError::AlreadyExists(format!(
                    "table '{schema_name}.{table_name}' already exists"
                )));
            }
        }
        let file_schema = Arc::new(plain_schema(&schema));
        crate::catalog::validate_schema(&file_schema)?;
        for p in partition_by {
            if file_schema.field_with_name(p).is_err() {
                return Err(EngineError::InvalidArgument(format!(
                    "partition column '{p}' is not a column of the table"
                )));
            }
        }
        if !partition_by.is_empty() && partition_by.len() == file_schema.fields().len() {
            return Err(EngineError::InvalidArgument(
                "a table needs at least one column that is not a partition column".into(),
            ));
        }
        let generation = uuid::Uuid::now_v7().to_string();
        let dir = engine
            .warehouse()
            .path(&["tables", schema_name, table_name, &generation]);
        let location = engine.warehouse().dir_url(&dir);
        let result = async {
            let columns = delta_columns(&file_schema)?;
            let table = engine
                .delta_handle(&location)?
                .create()
                .with_table_name(table_name)
                .with_columns(columns)
                .with_partition_columns(partition_by.to_vec())
                .with_save_mode(SaveMode::ErrorIfExists)
                .with_commit_properties(commit_properties(self.user(), &[]))
                .await?;
            let rows = match input {
                Some(plan) => {
                    self.write_plan(table, plan, &file_schema, WriteMode::Append)
                        .await?
                        .1
                }
                None => 0,
            };
            Ok::<_, EngineError>(rows)
        }
        .await;
        let rows = match result {
            Ok(rows) => rows,
            Err(e) => {
                let _ =
                    crate::commands::delete_prefix(engine.warehouse().store().as_ref(), &dir).await;
                return Err(e);
            }
        };
        let entry = TableEntry {
            location,
            format: TableFormat::Delta,
            kind: TableKind::Managed,
            file_schema: file_schema.as_ref().clone(),
            partition_columns: vec![],
            created_at: chrono::Utc::now(),
            comment: None,
        };
        let committed = engine
            .catalog_store()
            .update(|st| st.put_table(schema_name, table_name, entry.clone(), false, or_replace))
            .await;
        match committed {
            Ok((_, replaced)) => {
                if let Some(old) = replaced {
                    self.delete_managed_data(&old).await;
                }
                info!(user = %self.user(), table = %format!("{schema_name}.{table_name}"), rows, "managed table created");
                Ok(CreateResult::Created { rows })
            }
            Err(e) => {
                let _ =
                    crate::commands::delete_prefix(engine.warehouse().store().as_ref(), &dir).await;
                match e {
                    seglake_catalog::CatalogError::TableExists { .. } => Ok(CreateResult::Raced),
                    e => Err(e.into()),
                }
            }
        }
    }

    /// Writes the rows of `plan` into a managed table as one commit; returns
    /// the table after the commit and the rows written. Rows of erased
    /// profiles are dropped.
    pub(crate) async fn write_plan(
        &self,
        table: DeltaTable,
        plan: LogicalPlan,
        target: &SchemaRef,
        mode: WriteMode,
    ) -> Result<(DeltaTable, u64)> {
        let before = self.erasures().await?;
        let plan = drop_erased(plan, target, &before)?;
        let mut write = table
            .write(vec![])
            .with_input_plan(plan)
            .with_session_state(session_for_delta(self.context(), None))
            .with_writer_properties(writer_properties(self.context().state().config().options()))
            .with_commit_properties(commit_properties(self.user(), &[]))
            .with_cast_safety(false);
        write = match mode {
            WriteMode::Append => write.with_save_mode(SaveMode::Append),
            WriteMode::Overwrite => write
                .with_save_mode(SaveMode::Overwrite)
                .with_schema_mode(SchemaMode::Overwrite),
        };
        let table = write.await.map_err(compacted_during_write)?;
        let rows = crate::storage::delta::last_commit_rows_added(&table).await?;
        let table = self.erase_late_rows(table, target, &before).await?;
        Ok((table, rows))
    }

    /// `INSERT INTO` / `INSERT OVERWRITE` a managed table.
    pub(crate) async fn insert_managed(
        &self,
        entry: &TableEntry,
        input: LogicalPlan,
        mode: WriteMode,
    ) -> Result<u64> {
        let table = self.storage().open_delta(&entry.location, None).await?;
        let target = Arc::new(entry.file_schema.clone());
        Ok(self.write_plan(table, input, &target, mode).await?.1)
    }

    async fn delete(&self, d: datafusion::sql::sqlparser::ast::Delete) -> Result<u64> {
        if d.using.is_some() || !d.order_by.is_empty() || d.limit.is_some() || d.returning.is_some()
        {
            return Err(EngineError::Unsupported(
                "DELETE supports FROM <table> [WHERE <predicate>] (use MERGE INTO for deletes driven by another table)".into(),
            ));
        }
        let from = match &d.from {
            FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
        };
        let [TableWithJoins { relation, joins }] = from.as_slice() else {
            return Err(EngineError::Unsupported(
                "DELETE from one table only".into(),
            ));
        };
        if !joins.is_empty() {
            return Err(EngineError::Unsupported(
                "DELETE does not take joins".into(),
            ));
        }
        let TableFactor::Table { name, alias, .. } = relation else {
            return Err(EngineError::Unsupported("DELETE from a table only".into()));
        };
        if alias.is_some() {
            return Err(EngineError::Unsupported(
                "DELETE does not take a table alias: name columns directly".into(),
            ));
        }
        let (schema, table_name, entry) = self.managed_table(name, "DELETE").await?;
        let table = self.storage().open_delta(&entry.location, None).await?;
        let mut op = table
            .delete()
            .with_session_state(session_for_delta(self.context(), None))
            .with_writer_properties(writer_properties(self.context().state().config().options()))
            .with_commit_properties(commit_properties(self.user(), &[]));
        if let Some(predicate) = &d.selection {
            let mut predicate = predicate.clone();
            self.inline_subqueries(&mut predicate, "DELETE").await?;
            op = op.with_predicate(predicate.to_string());
        }
        let (_, metrics) = op.await?;
        let rows = metrics.num_deleted_rows.unwrap_or(0) as u64;
        info!(user = %self.user(), table = %format!("{schema}.{table_name}"), rows, "delete committed");
        Ok(rows)
    }

    async fn update(&self, u: datafusion::sql::sqlparser::ast::Update) -> Result<u64> {
        if u.from.is_some() || u.returning.is_some() || u.limit.is_some() || !u.order_by.is_empty()
        {
            return Err(EngineError::Unsupported(
                "UPDATE supports <table> SET ... [WHERE ...]; for updates from another table use MERGE INTO".into(),
            ));
        }
        if !u.table.joins.is_empty() {
            return Err(EngineError::Unsupported(
                "UPDATE does not take joins".into(),
            ));
        }
        let TableFactor::Table { name, alias, .. } = &u.table.relation else {
            return Err(EngineError::Unsupported("UPDATE a table only".into()));
        };
        if alias.is_some() {
            return Err(EngineError::Unsupported(
                "UPDATE does not take a table alias: name columns directly".into(),
            ));
        }
        let (schema, table_name, entry) = self.managed_table(name, "UPDATE").await?;
        let table = self.storage().open_delta(&entry.location, None).await?;
        // An assignment to profile_id fails, and commits nothing, when it
        // would write an erased id.
        let erased = self.erasures().await?;
        let mut op = table
            .update()
            .with_session_state(session_for_delta(self.context(), Some(&erased)))
            .with_writer_properties(writer_properties(self.context().state().config().options()))
            .with_commit_properties(commit_properties(self.user(), &[]))
            .with_safe_cast(false);
        for a in &u.assignments {
            let column = assignment_column(&a.target)?;
            if entry.file_schema.field_with_name(&column).is_err() {
                return Err(EngineError::InvalidArgument(format!(
                    "column '{column}' not found in '{schema}.{table_name}'"
                )));
            }
            let mut value = a.value.clone();
            self.inline_subqueries(&mut value, "UPDATE").await?;
            let value = guard_profile_id(&column, value.to_string(), &erased);
            op = op.with_update(column, value);
        }
        if let Some(predicate) = &u.selection {
            let mut predicate = predicate.clone();
            self.inline_subqueries(&mut predicate, "UPDATE").await?;
            op = op.with_predicate(predicate.to_string());
        }
        let (table, metrics) = op.await.map_err(refused_erased)?;
        self.erase_late_rows(table, &entry.file_schema, &erased)
            .await?;
        let rows = metrics.num_updated_rows as u64;
        info!(user = %self.user(), table = %format!("{schema}.{table_name}"), rows, "update committed");
        Ok(rows)
    }

    async fn merge(&self, m: datafusion::sql::sqlparser::ast::Merge) -> Result<u64> {
        let TableFactor::Table {
            name: target_name,
            alias: target_alias,
            ..
        } = &m.table
        else {
            return Err(EngineError::Unsupported("MERGE INTO a table only".into()));
        };
        let (schema, table_name, entry) = self.managed_table(target_name, "MERGE").await?;
        let (source_df, source_alias) = match &m.source {
            TableFactor::Table { name, alias, .. } => {
                let df = self.context().sql(&format!("SELECT * FROM {name}")).await?;
                let alias = alias
                    .as_ref()
                    .map(|a| a.name.value.clone())
                    .unwrap_or_else(|| object_name_parts(name).pop().unwrap_or_default());
                (df, alias)
            }
            TableFactor::Derived {
                subquery, alias, ..
            } => {
                let df = self.context().sql(&subquery.to_string()).await?;
                let alias = alias
                    .as_ref()
                    .map(|a| a.name.value.clone())
                    .ok_or_else(|| {
                        EngineError::InvalidArgument(
                            "MERGE ... USING (subquery) needs an alias: USING (...) AS s".into(),
                        )
                    })?;
                (df, alias)
            }
            other => {
                return Err(EngineError::Unsupported(format!(
                    "MERGE ... USING {other} is not supported: use a table or (subquery) AS alias"
                )));
            }
        };
        let source_name = source_alias.clone();
        let target_alias = target_alias
            .as_ref()
            .map(|a| a.name.value.clone())
            .unwrap_or_else(|| table_name.clone());
        if target_alias == source_alias {
            return Err(EngineError::InvalidArgument(
                "MERGE target and source need different names: give one an alias".into(),
            ));
        }
        // Drop erased profiles from the source, as every write does, and
        // refuse a clause that would write an erased id into profile_id
        // from another column.
        let erased = self.erasures().await?;
        let source_schema = Arc::new(source_df.schema().as_arrow().clone());
        let source_plan = if entry.file_schema.field_with_name("profile_id").is_ok() {
            drop_erased(source_df.logical_plan().clone(), &source_schema, &erased)?
        } else {
            source_df.logical_plan().clone()
        };
        let source_df = datafusion::prelude::DataFrame::new(self.context().state(), source_plan);

        let table = self.storage().open_delta(&entry.location, None).await?;
        let mut op = table
            .merge(source_df, m.on.to_string())
            .with_source_alias(source_alias)
            .with_target_alias(target_alias)
            .with_session_state(session_for_delta(self.context(), Some(&erased)))
            .with_writer_properties(writer_properties(self.context().state().config().options()))
            .with_commit_properties(commit_properties(self.user(), &[]))
            .with_safe_cast(false);
        let columns: Vec<String> = entry
            .file_schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        for clause in &m.clauses {
            let predicate = clause.predicate.as_ref().map(|p| p.to_string());
            match (&clause.clause_kind, &clause.action) {
                (MergeClauseKind::Matched, MergeAction::Update(u)) => {
                    let sets = u
                        .assignments
                        .iter()
                        .map(|a| {
                            let column = assignment_column(&a.target)?;
                            let value = guard_profile_id(&column, a.value.to_string(), &erased);
                            Ok((column, value))
                        })
                        .collect::<Result<Vec<_>>>()?;
                    op = op.when_matched_update(|mut b| {
                        if let Some(p) = &predicate {
                            b = b.predicate(p.clone());
                        }
                        for (c, v) in sets {
                            b = b.update(c, v);
                        }
                        b
                    })?;
                }
                (MergeClauseKind::Matched, MergeAction::Delete { .. }) => {
                    op = op.when_matched_delete(|mut b| {
                        if let Some(p) = &predicate {
                            b = b.predicate(p.clone());
                        }
                        b
                    })?;
                }
                (
                    MergeClauseKind::NotMatched | MergeClauseKind::NotMatchedByTarget,
                    MergeAction::Insert(insert),
                ) => {
                    let targets: Vec<String> = if insert.columns.is_empty() {
                        columns.clone()
                    } else {
                        insert
                            .columns
                            .iter()
                            .map(|c| object_name_parts(c).pop().unwrap_or_default())
                            .collect()
                    };
                    let values: Vec<String> = match &insert.kind {
                        MergeInsertKind::Values(v) => {
                            let [row] = v.rows.as_slice() else {
                                return Err(EngineError::InvalidArgument(
                                    "MERGE ... INSERT takes one VALUES row".into(),
                                ));
                            };
                            row.iter().map(|e| e.to_string()).collect()
                        }
                        MergeInsertKind::Row => targets
                            .iter()
                            .map(|c| format!("\"{source_name}\".\"{c}\""))
                            .collect(),
                    };
                    if values.len() != targets.len() {
                        return Err(EngineError::InvalidArgument(format!(
                            "MERGE ... INSERT has {} column(s) but {} value(s)",
                            targets.len(),
                            values.len()
                        )));
                    }
                    let pairs: Vec<(String, String)> = targets
                        .into_iter()
                        .zip(values)
                        .map(|(c, v)| {
                            let v = guard_profile_id(&c, v, &erased);
                            (c, v)
                        })
                        .collect();
                    op = op.when_not_matched_insert(|mut b| {
                        if let Some(p) = &predicate {
                            b = b.predicate(p.clone());
                        }
                        for (c, v) in pairs {
                            b = b.set(c, v);
                        }
                        b
                    })?;
                }
                (MergeClauseKind::NotMatchedBySource, MergeAction::Update(u)) => {
                    let sets = u
                        .assignments
                        .iter()
                        .map(|a| {
                            let column = assignment_column(&a.target)?;
                            let value = guard_profile_id(&column, a.value.to_string(), &erased);
                            Ok((column, value))
                        })
                        .collect::<Result<Vec<_>>>()?;
                    op = op.when_not_matched_by_source_update(|mut b| {
                        if let Some(p) = &predicate {
                            b = b.predicate(p.clone());
                        }
                        for (c, v) in sets {
                            b = b.update(c, v);
                        }
                        b
                    })?;
                }
                (MergeClauseKind::NotMatchedBySource, MergeAction::Delete { .. }) => {
                    op = op.when_not_matched_by_source_delete(|mut b| {
                        if let Some(p) = &predicate {
                            b = b.predicate(p.clone());
                        }
                        b
                    })?;
                }
                (kind, action) => {
                    return Err(EngineError::InvalidArgument(format!(
                        "MERGE clause WHEN {kind} THEN {action} is not valid"
                    )));
                }
            }
        }
        let (table, metrics) = op.await.map_err(refused_erased)?;
        self.erase_late_rows(table, &entry.file_schema, &erased)
            .await?;
        let rows = (metrics.num_target_rows_inserted
            + metrics.num_target_rows_updated
            + metrics.num_target_rows_deleted) as u64;
        info!(user = %self.user(), table = %format!("{schema}.{table_name}"),
            inserted = metrics.num_target_rows_inserted,
            updated = metrics.num_target_rows_updated,
            deleted = metrics.num_target_rows_deleted, "merge committed");
        Ok(rows)
    }

    async fn optimize(&self, name: &ObjectName) -> Result<u64> {
        let (schema, table_name, entry) = self.managed_table(name, "OPTIMIZE").await?;
        let table = self.storage().open_delta(&entry.location, None).await?;
        let (_, metrics) = table
            .optimize()
            .with_session_state(session_for_delta(self.context(), None))
            .with_writer_properties(writer_properties(self.context().state().config().options()))
            .with_commit_properties(commit_properties(self.user(), &[]))
            .await?;
        info!(user = %self.user(), table = %format!("{schema}.{table_name}"),
            added = metrics.num_files_added, removed = metrics.num_files_removed, "optimize committed");
        Ok(metrics.num_files_removed)
    }

    /// Deletes files no version newer than the retention needs, and, with a
    /// retention of at least [`ORPHAN_MIN_RETAIN_HOURS`] (the default is 7
    /// days), data files no commit references (left by failed writes) older
    /// than the retention. Returns how many were (or, with `dry_run`, would
    /// be) deleted.
    async fn vacuum(
        &self,
        name: &ObjectName,
        retain_hours: Option<f64>,
        dry_run: bool,
    ) -> Result<u64> {
        let (schema, table_name, entry) = self.managed_table(name, "VACUUM").await?;
        self.vacuum_entry(&schema, &table_name, &entry.location, retain_hours, dry_run)
            .await
    }

    /// `VACUUM` of the managed table `schema.name` at `location`.
    pub(crate) async fn vacuum_entry(
        &self,
        schema: &str,
        name: &str,
        location: &str,
        retain_hours: Option<f64>,
        dry_run: bool,
    ) -> Result<u64> {
        let mode = match retain_hours {
            Some(h) if h < ORPHAN_MIN_RETAIN_HOURS => VacuumMode::Lite,
            _ => VacuumMode::Full,
        };
        let deleted = self
            .vacuum_location(location, retain_hours, dry_run, mode)
            .await?;
        info!(user = %self.user(), table = %format!("{schema}.{name}"), deleted, dry_run, "vacuum done");
        Ok(deleted)
    }

    /// `VacuumMode::Lite` deletes the files of `remove` actions older than
    /// the retention; `Full` also lists the table's directory and deletes
    /// the files no version references that are older than the retention.
    async fn vacuum_location(
        &self,
        location: &str,
        retain_hours: Option<f64>,
        dry_run: bool,
        mode: VacuumMode,
    ) -> Result<u64> {
        let table = self.storage().open_delta(location, None).await?;
        Ok(self
            .vacuum_table(table, retain_hours, dry_run, mode)
            .await?
            .1)
    }

    async fn vacuum_table(
        &self,
        table: DeltaTable,
        retain_hours: Option<f64>,
        dry_run: bool,
        mode: VacuumMode,
    ) -> Result<(DeltaTable, u64)> {
        let mut op = table
            .vacuum()
            .with_mode(mode)
            .with_dry_run(dry_run)
            .with_commit_properties(commit_properties(self.user(), &[]));
        if let Some(h) = retain_hours {
            op = op
                .with_retention_period(chrono::Duration::milliseconds((h * 3_600_000.0) as i64))
                .with_enforce_retention_duration(false);
        }
        let (table, metrics) = op.await?;
        Ok((table, metrics.files_deleted.len() as u64))
    }

    /// Erases every row of `profile_id` from every managed table with a
    /// `profile_id` column, physically ([`Self::erase_rows`]).
    ///
    /// The tombstone comes first: from that commit on, every write drops
    /// the profile's rows (and a write that read the tombstones before
    /// erases them after its commit, [`Self::erase_late_rows`]). The
    /// tables are erased next, one by one; a table that fails does not
    /// stop the others, the receipt stays `pending` with the error, and
    /// running `FORGET PROFILE` again finishes the job (erasing what is
    /// left is idempotent). The catalog keeps only the keyed hash of the
    /// id.
    async fn forget_profile(&self, profile_id: &str) -> Result<u64> {
        let key = self
            .storage()
            .erasure_key(true)
            .await?
            .ok_or_else(|| EngineError::Internal("no erasure key was created".into()))?;
        let hash = key.hash(profile_id);
        let hex = to_hex(&hash);
        let user = self.user().to_string();
        let (snapshot, _) = self
            .storage()
            .catalog_store()
            .update(|st| {
                hash_legacy_receipts(st, &key);
                match receipt_mut(st, &hex) {
                    Some(r) => r.pending = true,
                    None => st.erasures.push(ErasureReceipt {
                        profile_hash: hex.clone(),
                        profile_id: None,
                        erased_at: chrono::Utc::now(),
                        completed_at: None,
                        pending: true,
                        error: None,
                        user: user.clone(),
                        tables: vec![],
                    }),
                }
                Ok(())
            })
            .await?;
        let erased = ErasedProfiles::new(key, [hash]);
        let mut done: Vec<ErasedTable> = vec![];
        let mut failed: Vec<String> = vec![];
        for (schema, s) in &snapshot.state.schemas {
            for (name, entry) in &s.tables {
                if entry.format != TableFormat::Delta
                    || entry.file_schema.field_with_name("profile_id").is_err()
                {
                    continue;
                }
                let erased_here = async {
                    let table = self.storage().open_delta(&entry.location, None).await?;
                    self.erase_rows(table, &erased, "FORGET PROFILE").await
                };
                match erased_here.await {
                    Ok((_, t)) => done.push(ErasedTable {
                        schema: schema.clone(),
                        table: name.clone(),
                        ..t
                    }),
                    Err(e) => {
                        warn!(table = %format!("{schema}.{name}"), error = %e, "FORGET PROFILE: a table could not be erased");
                        failed.push(format!("{schema}.{name}: {e}"));
                    }
                }
            }
        }
        let total: u64 = done.iter().map(|t| t.rows_removed).sum();
        let error = (!failed.is_empty()).then(|| failed.join("; "));
        self.storage()
            .catalog_store()
            .update(|st| {
                let Some(r) = receipt_mut(st, &hex) else {
                    return Ok(());
                };
                for t in &done {
                    match r
                        .tables
                        .iter_mut()
                        .find(|x| x.schema == t.schema && x.table == t.table)
                    {
                        Some(x) => {
                            x.rows_removed += t.rows_removed;
                            x.files_rewritten += t.files_rewritten;
                            x.files_deleted += t.files_deleted;
                        }
                        None => r.tables.push(t.clone()),
                    }
                }
                r.pending = error.is_some();
                r.error = error.clone();
                if error.is_none() {
                    r.completed_at = Some(chrono::Utc::now());
                }
                Ok(())
            })
            .await?;
        if let Some(error) = error {
            return Err(EngineError::Incomplete(format!(
                "FORGET PROFILE is incomplete: the tombstone stands (writes drop the profile) \
                 but {} table(s) could not be erased; run it again to finish: {error}",
                failed.len()
            )));
        }
        info!(user = %self.user(), rows = total, "profile forgotten");
        Ok(total)
    }
}

/// Deletes the log entries of `table` before version `version` (which has
/// a checkpoint): their `add` actions carry column statistics (min/max
/// values) of files that held erased rows. The entries from `version` on
/// stay, so a write that read the version just before the erasure still
/// finds the commits it must check for conflicts; a write that read an
/// older version fails and commits nothing.
async fn drop_log_before(table: &DeltaTable, version: u64) -> Result<()> {
    let cutoff = chrono::Utc::now().timestamp_millis() + 1;
    deltalake_core::checkpoints::cleanup_expired_logs_for(
        version,
        table.log_store().as_ref(),
        cutoff,
        None,
    )
    .await?;
    Ok(())
}

/// `value`, wrapped in `seglake_refuse_erased` when it is assigned to
/// `profile_id` and tombstones exist.
fn guard_profile_id(column: &str, value: String, erased: &ErasedProfiles) -> String {
    if column == "profile_id" && !erased.is_empty() {
        format!("{REFUSE_ERASED}({value})")
    } else {
        value
    }
}

/// A write whose table version was dropped from the log while it ran (by
/// `FORGET PROFILE`, [`drop_log_before`]) commits nothing: say so, and
/// that running it again is safe.
fn compacted_during_write(e: deltalake_core::DeltaTableError) -> EngineError {
    match e {
        deltalake_core::DeltaTableError::InvalidVersion(v) => EngineError::Incomplete(format!(
            "the table's log before version {} was dropped while this write ran (FORGET PROFILE \
             erased rows of it): nothing was written; run the write again",
            v + 1
        )),
        e => e.into(),
    }
}

/// The guard's refusal as a clear InvalidArgument (delta-rs wraps it).
fn refused_erased(e: deltalake_core::DeltaTableError) -> EngineError {
    if e.to_string().contains(REFUSED_MESSAGE) {
        EngineError::InvalidArgument(REFUSED_MESSAGE.into())
    } else {
        e.into()
    }
}

/// What `create_managed` did.
#[derive(Debug)]
pub(crate) enum CreateResult {
    Created {
        rows: u64,
    },
    /// IF NOT EXISTS and the table existed.
    Existed,
    /// Another writer created the table first.
    Raced,
}

fn assignment_column(target: &AssignmentTarget) -> Result<String> {
    match target {
        AssignmentTarget::ColumnName(name) => Ok(object_name_parts(name).pop().unwrap_or_default()),
        AssignmentTarget::Tuple(_) => Err(EngineError::Unsupported(
            "tuple assignments are not supported: SET a = ..., b = ...".into(),
        )),
    }
}

/// The schema without field metadata and with plain (non-view) types, as
/// stored in the catalog and the Delta log.
pub(crate) fn plain_schema(schema: &Schema) -> Schema {
    use arrow::datatypes::{DataType, Field};
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let t = match f.data_type() {
                DataType::Utf8View => DataType::Utf8,
                DataType::BinaryView => DataType::Binary,
                other => other.clone(),
            };
            Field::new(f.name(), t, f.is_nullable())
        })
        .collect();
    Schema::new(fields)
}

fn delta_columns(schema: &Schema) -> Result<Vec<deltalake_core::kernel::StructField>> {
    use deltalake_core::kernel::engine::arrow_conversion::TryIntoKernel;
    let st: deltalake_core::kernel::StructType = schema.try_into_kernel().map_err(|e| {
        EngineError::InvalidArgument(format!("unsupported column type for a managed table: {e}"))
    })?;
    Ok(st.fields().cloned().collect())
}
