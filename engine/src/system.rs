//! The `system` schema: built-in, read-only tables computed when a statement
//! reads them, from the catalog snapshot the statement plans against.
//!
//! - `system.table_history`: every commit of every managed table;
//! - `system.erasures`: receipts of `FORGET PROFILE`;
//! - `system.workers`: the workers of a distributed coordinator (url,
//!   state, last_seen, queries, tasks, last_error); empty on a single node.
//!
//! Segments and activation add theirs (`crate::segments::system`). Later
//! features add their tables here: a name, a schema and an async function
//! producing the rows.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::error::{DataFusionError, Result};
use seglake_catalog::{Snapshot, TableFormat};

use crate::Engine;

const TABLES: &[&str] = &["erasures", "table_history", "workers"];

#[derive(Debug)]
pub struct SystemSchema {
    engine: Arc<Engine>,
    snapshot: Arc<Snapshot>,
}

impl SystemSchema {
    pub fn new(engine: Arc<Engine>, snapshot: Arc<Snapshot>) -> Self {
        Self { engine, snapshot }
    }

    async fn table_history(&self) -> crate::Result<RecordBatch> {
        let mut rows = vec![];
        for (schema, s) in &self.snapshot.state.schemas {
            for (name, entry) in &s.tables {
                if entry.format != TableFormat::Delta {
                    continue;
                }
                let table = self.engine.open_delta(&entry.location, None).await?;
                for c in crate::delta::history(&table).await? {
                    rows.push((schema.clone(), name.clone(), c));
                }
            }
        }
        let ts = |f: &dyn Fn(&crate::delta::CommitRecord) -> Option<i64>| -> ArrayRef {
            Arc::new(
                TimestampMillisecondArray::from(rows.iter().map(|r| f(&r.2)).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            )
        };
        let int = |f: &dyn Fn(&crate::delta::CommitRecord) -> Option<u64>| -> ArrayRef {
            Arc::new(Int64Array::from(
                rows.iter()
                    .map(|r| f(&r.2).map(|v| v as i64))
                    .collect::<Vec<_>>(),
            ))
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.0.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.1.as_str()),
            )),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.2.version),
            )),
            ts(&|c| c.timestamp.map(|t| t.timestamp_millis())),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.2.operation.as_str()),
            )),
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.2.user.clone()).collect::<Vec<_>>(),
            )),
            int(&|c| c.rows_added),
            int(&|c| c.rows_removed),
            int(&|c| c.files_added),
            int(&|c| c.files_removed),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.2.parameters.as_str()),
            )),
        ];
        Ok(RecordBatch::try_new(table_history_schema(), columns)?)
    }

    fn erasures(&self) -> crate::Result<RecordBatch> {
        let mut rows = vec![];
        for e in &self.snapshot.state.erasures {
            if e.tables.is_empty() {
                rows.push((e, None));
            }
            for t in &e.tables {
                rows.push((e, Some(t)));
            }
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.0.profile_id.as_str()),
            )),
            Arc::new(
                TimestampMillisecondArray::from_iter_values(
                    rows.iter().map(|r| r.0.erased_at.timestamp_millis()),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.0.user.as_str()),
            )),
            Arc::new(StringArray::from(
                rows.iter()
                    .map(|r| r.1.map(|t| t.schema.as_str()))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                rows.iter()
                    .map(|r| r.1.map(|t| t.table.as_str()))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter()
                    .map(|r| r.1.map(|t| t.rows_removed as i64))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter()
                    .map(|r| r.1.map(|t| t.files_rewritten as i64))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter()
                    .map(|r| r.1.map(|t| t.files_deleted as i64))
                    .collect::<Vec<_>>(),
            )),
        ];
        Ok(RecordBatch::try_new(erasures_schema(), columns)?)
    }
}

fn utc_ms() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

fn table_history_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("table_schema", DataType::Utf8, false),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("version", DataType::Int64, false),
        Field::new("committed_at", utc_ms(), true),
        Field::new("operation", DataType::Utf8, false),
        Field::new("user", DataType::Utf8, true),
        Field::new("rows_added", DataType::Int64, true),
        Field::new("rows_removed", DataType::Int64, true),
        Field::new("files_added", DataType::Int64, true),
        Field::new("files_removed", DataType::Int64, true),
        Field::new("parameters", DataType::Utf8, false),
    ]))
}

fn erasures_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("profile_id", DataType::Utf8, false),
        Field::new("erased_at", utc_ms(), false),
        Field::new("user", DataType::Utf8, false),
        Field::new("table_schema", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, true),
        Field::new("rows_removed", DataType::Int64, true),
        Field::new("files_rewritten", DataType::Int64, true),
        Field::new("files_deleted", DataType::Int64, true),
    ]))
}

fn external(e: crate::EngineError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = TABLES
            .iter()
            .chain(crate::segments::system::TABLES)
            .map(|s| s.to_string())
            .collect();
        names.sort();
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let batch = match name {
            "table_history" => self.table_history().await.map_err(external)?,
            "erasures" => self.erasures().map_err(external)?,
            "workers" => {
                crate::distributed::workers_batch(self.engine.cluster()).map_err(external)?
            }
            _ => return crate::segments::system::table(&self.engine, &self.snapshot, name).await,
        };
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
        Ok(Some(Arc::new(table)))
    }

    fn table_exist(&self, name: &str) -> bool {
        TABLES.contains(&name) || crate::segments::system::TABLES.contains(&name)
    }
}
