//! Bulk ingest (Flight SQL `CommandStatementIngest`, ADBC `adbc_ingest`).
//!
//! Tables that Seglake creates are *managed* Delta tables (see
//! [`crate::delta`]): create writes a complete table in a new directory and
//! only then registers it in the catalog; append and replace are one Delta
//! commit each. A failed ingest leaves nothing visible.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::datasource::provider_as_source;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use futures::{Stream, StreamExt};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use seglake_catalog::{TableEntry, TableFormat, TableKind};
use tracing::info;

use crate::arrow_cast::cast_batch;
use crate::commands::managed::{CreateResult, WriteMode};
use crate::pipeline::{IngestMode, StatementContext};
use crate::{EngineError, Result};

/// Writer settings for files Seglake writes (row groups of
/// `seglake.write_row_group_rows` rows, in the statement's settings).
pub(crate) fn writer_properties(options: &datafusion::config::ConfigOptions) -> WriterProperties {
    let rows = crate::config::SeglakeOptions::of(options).write_row_group_rows;
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(rows.max(1)))
        .build()
}

impl StatementContext {
    /// Ingests a stream of batches into `schema_name.table_name` and
    /// returns the number of rows written (`Session::ingest`).
    pub(crate) async fn ingest<S>(
        &self,
        schema_name: &str,
        table_name: &str,
        mode: IngestMode,
        schema: SchemaRef,
        batches: S,
    ) -> Result<u64>
    where
        S: Stream<Item = Result<RecordBatch>> + Send + Unpin + 'static,
    {
        let (schema_name, table_name) = (schema_name.to_string(), table_name.to_string());
        if schema_name == seglake_catalog::SYSTEM_SCHEMA {
            return Err(EngineError::InvalidArgument(
                "the system schema is read-only".into(),
            ));
        }
        let snapshot = self.storage().catalog().await?;
        let existing = snapshot
            .state
            .table(&schema_name, &table_name)
            .ok()
            .cloned();
        let qualified = format!("{schema_name}.{table_name}");
        match (mode, existing) {
            (IngestMode::Create, Some(_)) => Err(EngineError::AlreadyExists(format!(
                "table '{qualified}' already exists (use mode append or replace)"
            ))),
            (IngestMode::Append, None) => Err(EngineError::NotFound(format!(
                "table '{qualified}' not found (use mode create or create_append)"
            ))),
            (IngestMode::Append | IngestMode::CreateAppend, Some(entry)) => {
                self.append(&qualified, &entry, schema, batches, WriteMode::Append)
                    .await
            }
            (IngestMode::Replace, Some(entry)) if entry.format == TableFormat::Delta => {
                // A new version with the new rows (and schema): time travel
                // still reaches the old data until it is vacuumed.
                let plan = stream_plan(Arc::clone(&schema), batches)?;
                let table = self.storage().open_delta(&entry.location, None).await?;
                let target = Arc::new(crate::commands::managed::plain_schema(&schema));
                let (_, rows) = self
                    .write_plan(table, plan, &target, WriteMode::Overwrite)
                    .await?;
                if entry.file_schema != *target {
                    let mut entry = entry.clone();
                    entry.file_schema = target.as_ref().clone();
                    self.storage()
                        .catalog_store()
                        .update(|st| {
                            st.put_table(&schema_name, &table_name, entry.clone(), false, true)
                                .map(|_| ())
                        })
                        .await?;
                }
                info!(user = %self.user(), table = %qualified, rows, "ingest replaced");
                Ok(rows)
            }
            (IngestMode::CreateAppend, None) => {
                // Concurrent create_append clients must all succeed: create
                // the (empty) table if still missing, whoever wins, then
                // append to it. If the append fails the empty table stays.
                self.create_managed(
                    &schema_name,
                    &table_name,
                    None,
                    Arc::clone(&schema),
                    &[],
                    true,
                    false,
                )
                .await?;
                let entry = self
                    .storage()
                    .catalog()
                    .await?
                    .state
                    .table(&schema_name, &table_name)?
                    .clone();
                self.append(&qualified, &entry, schema, batches, WriteMode::Append)
                    .await
            }
            (IngestMode::Create | IngestMode::Replace, existing) => {
                let plan = stream_plan(Arc::clone(&schema), batches)?;
                let result = self
                    .create_managed(
                        &schema_name,
                        &table_name,
                        Some(plan),
                        schema,
                        &[],
                        false,
                        existing.is_some(),
                    )
                    .await?;
                match result {
                    CreateResult::Created { rows } => Ok(rows),
                    CreateResult::Existed => unreachable!("not IF NOT EXISTS"),
                    // create_append that lost the race against another
                    // creator: the stream was consumed by the failed create;
                    // the client retries with append.
                    CreateResult::Raced => Err(EngineError::AlreadyExists(format!(
                        "table '{qualified}' was created concurrently by another client: ingest again with mode append"
                    ))),
                }
            }
        }
    }

    async fn append<S>(
        &self,
        qualified: &str,
        entry: &TableEntry,
        schema: SchemaRef,
        batches: S,
        mode: WriteMode,
    ) -> Result<u64>
    where
        S: Stream<Item = Result<RecordBatch>> + Send + Unpin + 'static,
    {
        let target = Arc::new(entry.file_schema.clone());
        check_append_schema(qualified, &schema, &target)?;
        if entry.format != TableFormat::Delta || entry.kind != TableKind::Managed {
            return Err(EngineError::Unsupported(format!(
                "'{qualified}' is an external Parquet table (read-only): ingest into a managed table"
            )));
        }
        let casted = {
            let target = Arc::clone(&target);
            batches.map(move |b| Ok(cast_batch(&b?, &target)?))
        };
        let plan = stream_plan(Arc::clone(&target), Box::pin(casted))?;
        let table = self.storage().open_delta(&entry.location, None).await?;
        let (_, rows) = self.write_plan(table, plan, &target, mode).await?;
        info!(user = %self.user(), table = %qualified, rows, "ingest appended");
        Ok(rows)
    }
}

/// A logical plan that reads `batches` once (the input of a Delta write).
pub(crate) fn stream_plan<S>(schema: SchemaRef, batches: S) -> Result<LogicalPlan>
where
    S: Stream<Item = Result<RecordBatch>> + Send + Unpin + 'static,
{
    let partition = OnceStream {
        schema: Arc::clone(&schema),
        stream: parking_lot::Mutex::new(Some(Box::pin(batches))),
    };
    let table = StreamingTable::try_new(schema, vec![Arc::new(partition)])?;
    Ok(LogicalPlanBuilder::scan("ingest", provider_as_source(Arc::new(table)), None)?.build()?)
}

type BoxedBatches = std::pin::Pin<Box<dyn Stream<Item = Result<RecordBatch>> + Send>>;

struct OnceStream {
    schema: SchemaRef,
    stream: parking_lot::Mutex<Option<BoxedBatches>>,
}

impl std::fmt::Debug for OnceStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnceStream").finish()
    }
}

impl PartitionStream for OnceStream {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let schema = Arc::clone(&self.schema);
        match self.stream.lock().take() {
            Some(stream) => Box::pin(RecordBatchStreamAdapter::new(
                schema,
                stream.map(|b| {
                    b.map_err(|e| match e {
                        EngineError::DataFusion(e) => e,
                        e => datafusion::error::DataFusionError::External(Box::new(e)),
                    })
                }),
            )),
            None => Box::pin(RecordBatchStreamAdapter::new(
                schema,
                futures::stream::once(async {
                    Err(datafusion::error::DataFusionError::Execution(
                        "the ingest stream was already consumed".into(),
                    ))
                }),
            )),
        }
    }
}

fn check_append_schema(qualified: &str, incoming: &Schema, target: &Schema) -> Result<()> {
    let names = |s: &Schema| {
        s.fields()
            .iter()
            .map(|f| f.name().clone())
            .collect::<Vec<_>>()
    };
    if names(incoming) != names(target) {
        return Err(EngineError::InvalidArgument(format!(
            "cannot append to '{qualified}': columns {:?} do not match the table's {:?}",
            names(incoming),
            names(target)
        )));
    }
    for (i, t) in incoming.fields().iter().zip(target.fields()) {
        if i.data_type() != t.data_type()
            && !arrow::compute::can_cast_types(i.data_type(), t.data_type())
        {
            return Err(EngineError::InvalidArgument(format!(
                "cannot append to '{qualified}': column '{}' is {} but the table has {}",
                i.name(),
                i.data_type(),
                t.data_type()
            )));
        }
    }
    Ok(())
}
