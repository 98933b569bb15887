//! `system.table_history`: every commit of every managed table, newest
//! first per table.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use seglake_catalog::TableFormat;

use super::{SystemContext, SystemTable, utc_ms};
use crate::storage::delta::CommitRecord;

#[derive(Debug)]
pub(super) struct TableHistory;

#[async_trait]
impl SystemTable for TableHistory {
    fn name(&self) -> &'static str {
        "table_history"
    }

    fn schema(&self) -> SchemaRef {
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

    /// Reads the log of every managed table of the snapshot.
    async fn scan(&self, ctx: &SystemContext) -> crate::Result<RecordBatch> {
        let mut rows = vec![];
        for (schema, s) in &ctx.snapshot.state.schemas {
            for (name, entry) in &s.tables {
                if entry.format != TableFormat::Delta {
                    continue;
                }
                let table = ctx.storage.open_delta(&entry.location, None).await?;
                for c in crate::storage::delta::history(&table).await? {
                    rows.push((schema.as_str(), name.as_str(), c));
                }
            }
        }
        let ts = |f: &dyn Fn(&CommitRecord) -> Option<i64>| -> ArrayRef {
            Arc::new(
                TimestampMillisecondArray::from(rows.iter().map(|r| f(&r.2)).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            )
        };
        let int = |f: &dyn Fn(&CommitRecord) -> Option<u64>| -> ArrayRef {
            Arc::new(Int64Array::from(
                rows.iter()
                    .map(|r| f(&r.2).map(|v| v as i64))
                    .collect::<Vec<_>>(),
            ))
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
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
        Ok(RecordBatch::try_new(self.schema(), columns)?)
    }
}
