//! `system.erasures`: the receipts of `FORGET PROFILE`, one row per table
//! an erasure touched (one row without a table when it touched none). The
//! erased id is shown as its keyed hash only (`profile_hash`, see
//! `storage/erasure.rs`).

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;

use super::{SystemContext, SystemTable, utc_ms};

#[derive(Debug)]
pub(super) struct Erasures;

#[async_trait]
impl SystemTable for Erasures {
    fn name(&self) -> &'static str {
        "erasures"
    }

    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("profile_hash", DataType::Utf8, false),
            Field::new("erased_at", utc_ms(), false),
            Field::new("completed_at", utc_ms(), true),
            Field::new("state", DataType::Utf8, false),
            Field::new("user", DataType::Utf8, false),
            Field::new("error", DataType::Utf8, true),
            Field::new("table_schema", DataType::Utf8, true),
            Field::new("table_name", DataType::Utf8, true),
            Field::new("rows_removed", DataType::Int64, true),
            Field::new("files_rewritten", DataType::Int64, true),
            Field::new("files_deleted", DataType::Int64, true),
        ]))
    }

    async fn scan(&self, ctx: &SystemContext) -> crate::Result<RecordBatch> {
        let mut rows = vec![];
        for e in &ctx.snapshot.state.erasures {
            if e.tables.is_empty() {
                rows.push((e, None));
            }
            for t in &e.tables {
                rows.push((e, Some(t)));
            }
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.0.profile_hash.as_str()),
            )),
            Arc::new(
                TimestampMillisecondArray::from_iter_values(
                    rows.iter().map(|r| r.0.erased_at.timestamp_millis()),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(
                TimestampMillisecondArray::from(
                    rows.iter()
                        .map(|r| r.0.completed_at.map(|t| t.timestamp_millis()))
                        .collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(StringArray::from_iter_values(
                rows.iter()
                    .map(|r| if r.0.pending { "pending" } else { "done" }),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.0.user.as_str()),
            )),
            Arc::new(StringArray::from(
                rows.iter()
                    .map(|r| r.0.error.as_deref())
                    .collect::<Vec<_>>(),
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
        Ok(RecordBatch::try_new(self.schema(), columns)?)
    }
}
