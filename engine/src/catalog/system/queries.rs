//! `system.queries`: this server's statements in progress (queued and
//! running) and the last 1,000 that ended (`crate::workload`).
//! Administrators see every statement, other users their own.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;

use super::{SystemContext, SystemTable, strings, times, utc_ms};

#[derive(Debug)]
pub(super) struct Queries;

#[async_trait]
impl SystemTable for Queries {
    fn name(&self) -> &'static str {
        "queries"
    }

    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("query_id", DataType::Utf8, false),
            Field::new("user_name", DataType::Utf8, false),
            Field::new("client_address", DataType::Utf8, true),
            Field::new("kind", DataType::Utf8, false),
            Field::new("sql", DataType::Utf8, false),
            Field::new("state", DataType::Utf8, false),
            Field::new("queued_at", utc_ms(), false),
            Field::new("started_at", utc_ms(), true),
            Field::new("finished_at", utc_ms(), true),
            Field::new("elapsed_ms", DataType::Int64, false),
            Field::new("rows", DataType::Int64, false),
            Field::new("bytes", DataType::Int64, false),
            Field::new("peak_memory_bytes", DataType::Int64, true),
            Field::new("error", DataType::Utf8, true),
        ]))
    }

    async fn scan(&self, ctx: &SystemContext) -> crate::Result<RecordBatch> {
        let mut rows = ctx.storage.queries.rows();
        if let Some(grantees) = &ctx.grantees {
            rows.retain(|r| grantees.contains(&r.info.user));
        }
        let ms = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.timestamp_millis());
        let columns: Vec<ArrayRef> = vec![
            strings(rows.iter().map(|r| Some(r.info.id.as_str()))),
            strings(rows.iter().map(|r| Some(r.info.user.as_str()))),
            strings(rows.iter().map(|r| r.info.client.as_deref())),
            strings(rows.iter().map(|r| Some(r.info.kind.as_str()))),
            strings(rows.iter().map(|r| Some(r.info.sql.as_str()))),
            strings(rows.iter().map(|r| Some(r.state.label()))),
            times(rows.iter().map(|r| ms(Some(r.queued_at)))),
            times(rows.iter().map(|r| ms(r.started_at))),
            times(rows.iter().map(|r| ms(r.finished_at))),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.elapsed_ms()),
            )),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.rows as i64),
            )),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.bytes as i64),
            )),
            // The statement's peak in this server's pool (a distributed
            // query's: the coordinator's share).
            Arc::new(Int64Array::from_iter(
                rows.iter().map(|r| r.peak_memory.map(|b| b as i64)),
            )),
            strings(rows.iter().map(|r| r.error.as_deref())),
        ];
        Ok(RecordBatch::try_new(self.schema(), columns)?)
    }
}
