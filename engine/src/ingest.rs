//! Bulk ingest (Flight SQL `CommandStatementIngest`, ADBC `adbc_ingest`).
//!
//! Tables that Seglake creates are *managed*: their files live in the
//! warehouse under `tables/<schema>/<table>/<generation>/`. Visibility is
//! all or nothing:
//! - create and replace write a complete new generation directory first and
//!   only then commit the catalog entry that points at it, so a failed ingest
//!   leaves nothing visible (its files are deleted);
//! - append writes one new Parquet object into the table directory; an object
//!   store makes an object visible only once it is completely written, and a
//!   failed upload is aborted.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{Schema, SchemaRef};
use datafusion::common::TableReference;
use futures::{Stream, StreamExt};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use seglake_catalog::{TableEntry, TableFormat, TableKind};
use tracing::{info, warn};

use crate::engine::delete_prefix;
use crate::{EngineError, Result, Session};

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

/// Writer settings for files Seglake writes.
pub(crate) fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(1024 * 1024))
        .build()
}

impl Session {
    /// Ingests a stream of batches into `table` and returns the number of
    /// rows written. `schema` is the stream's schema.
    pub async fn ingest<S>(
        &self,
        table: &TableReference,
        mode: IngestMode,
        schema: SchemaRef,
        batches: S,
    ) -> Result<u64>
    where
        S: Stream<Item = Result<RecordBatch>> + Send + Unpin,
    {
        let (schema_name, table_name) = self.resolve_table_name(table)?;
        if schema_name == seglake_catalog::SYSTEM_SCHEMA {
            return Err(EngineError::InvalidArgument(
                "the system schema is read-only".into(),
            ));
        }
        let snapshot = self.engine().catalog().await?;
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
                self.append(&qualified, &entry, schema, batches).await
            }
            (IngestMode::Create | IngestMode::CreateAppend | IngestMode::Replace, None)
            | (IngestMode::Replace, Some(_)) => {
                self.create_generation(&schema_name, &table_name, mode, schema, batches)
                    .await
            }
        }
    }

    async fn create_generation<S>(
        &self,
        schema_name: &str,
        table_name: &str,
        mode: IngestMode,
        schema: SchemaRef,
        batches: S,
    ) -> Result<u64>
    where
        S: Stream<Item = Result<RecordBatch>> + Send + Unpin,
    {
        let engine = self.engine();
        if engine.catalog().await?.state.schema(schema_name).is_err() {
            return Err(EngineError::NotFound(format!(
                "schema '{schema_name}' not found"
            )));
        }
        let file_schema = Arc::new(Schema::new(schema.fields().clone()));
        crate::catalog_provider::validate_schema(&file_schema)?;
        let generation = uuid::Uuid::now_v7().to_string();
        let dir = engine
            .warehouse()
            .path(&["tables", schema_name, table_name, &generation]);
        let store = engine.warehouse().store();
        let file = dir
            .clone()
            .join(format!("part-{generation}.parquet").as_str());
        let rows = match write_parquet(Arc::clone(&store), &file, &file_schema, batches).await {
            Ok(rows) => rows,
            Err(e) => {
                let _ = delete_prefix(store.as_ref(), &dir).await;
                return Err(e);
            }
        };
        let entry = TableEntry {
            location: engine.warehouse().dir_url(&dir),
            format: TableFormat::Parquet,
            kind: TableKind::Managed,
            file_schema: file_schema.as_ref().clone(),
            partition_columns: vec![],
            created_at: chrono::Utc::now(),
            comment: None,
        };
        let replace = mode == IngestMode::Replace;
        let committed = engine
            .catalog_store()
            .update(|st| st.put_table(schema_name, table_name, entry.clone(), false, replace))
            .await;
        match committed {
            // create_append that lost the race against another creator:
            // the written file joins the table that now exists.
            Err(seglake_catalog::CatalogError::TableExists { .. })
                if mode == IngestMode::CreateAppend =>
            {
                let result = self
                    .adopt_file(schema_name, table_name, &store, &file, &file_schema)
                    .await;
                let _ = delete_prefix(store.as_ref(), &dir).await;
                result.map(|()| rows)
            }
            Ok((_, replaced)) => {
                if let Some(old) = replaced {
                    self.delete_managed_data(&old).await;
                }
                info!(user = %self.user(), table = %format!("{schema_name}.{table_name}"), rows, "ingest committed");
                Ok(rows)
            }
            Err(e) => {
                let _ = delete_prefix(store.as_ref(), &dir).await;
                Err(e.into())
            }
        }
    }

    /// Moves a written Parquet file into an existing table (append without
    /// rewriting the data).
    async fn adopt_file(
        &self,
        schema_name: &str,
        table_name: &str,
        store: &Arc<dyn ObjectStore>,
        file: &Path,
        file_schema: &Schema,
    ) -> Result<()> {
        let qualified = format!("{schema_name}.{table_name}");
        let snapshot = self.engine().catalog().await?;
        let entry = snapshot.state.table(schema_name, table_name)?;
        if !entry.partition_columns.is_empty() || &entry.file_schema != file_schema {
            return Err(EngineError::AlreadyExists(format!(
                "table '{qualified}' was created concurrently with another schema: ingest again with mode append"
            )));
        }
        let (target_store, dir) = self.engine().store_for(&entry.location)?;
        let target = dir.clone().join(file.filename().unwrap_or("part.parquet"));
        if Arc::ptr_eq(store, &target_store) {
            store.copy(file, &target).await?;
        } else {
            let bytes = store.get(file).await?.bytes().await?;
            target_store.put(&target, bytes.into()).await?;
        }
        info!(user = %self.user(), table = %qualified, "create_append raced a creator: appended");
        Ok(())
    }

    async fn append<S>(
        &self,
        qualified: &str,
        entry: &TableEntry,
        schema: SchemaRef,
        batches: S,
    ) -> Result<u64>
    where
        S: Stream<Item = Result<RecordBatch>> + Send + Unpin,
    {
        if !entry.partition_columns.is_empty() {
            return Err(EngineError::Unsupported(format!(
                "ingest into the partitioned table '{qualified}' is not supported: use INSERT INTO"
            )));
        }
        let target = Arc::new(entry.file_schema.clone());
        check_append_schema(qualified, &schema, &target)?;
        let (store, dir) = self.engine().store_for(&entry.location)?;
        let file = dir
            .clone()
            .join(format!("part-{}.parquet", uuid::Uuid::now_v7()).as_str());
        let casted = batches.map(|b| Ok(cast_batch(&b?, &target)?));
        let rows = write_parquet(store, &file, &target, Box::pin(casted)).await?;
        info!(user = %self.user(), table = %qualified, rows, "ingest appended");
        Ok(rows)
    }
}

/// `batch` with exactly the schema `target` (same columns in the same
/// order): columns of another type are cast, names, nullability and metadata
/// are taken from `target`.
pub fn cast_batch(
    batch: &RecordBatch,
    target: &SchemaRef,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    if batch.schema_ref() == target {
        return Ok(batch.clone());
    }
    let columns = batch
        .columns()
        .iter()
        .zip(target.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(Arc::clone(c))
            } else {
                // A value that does not fit is an error, never a NULL.
                cast_with_options(
                    c,
                    f.data_type(),
                    &CastOptions {
                        safe: false,
                        ..Default::default()
                    },
                )
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(Arc::clone(target), columns, &options)
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

/// Streams batches into one Parquet object. On any error the upload is
/// aborted: nothing becomes visible.
pub(crate) async fn write_parquet<S>(
    store: Arc<dyn ObjectStore>,
    path: &Path,
    schema: &SchemaRef,
    mut batches: S,
) -> Result<u64>
where
    S: Stream<Item = Result<RecordBatch>> + Send + Unpin,
{
    let mut writer = AsyncArrowWriter::try_new(
        BufWriter::new(store, path.clone()),
        Arc::clone(schema),
        Some(writer_properties()),
    )?;
    let mut rows = 0u64;
    let result: Result<()> = async {
        while let Some(batch) = batches.next().await {
            let batch = batch?;
            rows += batch.num_rows() as u64;
            writer.write(&batch).await?;
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            writer.close().await?;
            Ok(rows)
        }
        Err(e) => {
            let mut inner = writer.into_inner();
            if let Err(abort) = inner.abort().await {
                warn!(%path, error = %abort, "could not abort a failed upload");
            }
            Err(e)
        }
    }
}
