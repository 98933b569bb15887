//! `system.segments`: every segment with its current definition, schedule,
//! last refresh and activations.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;

use super::{SystemContext, SystemTable, strings, times, utc_ms};

#[derive(Debug)]
pub(super) struct Segments;

#[async_trait]
impl SystemTable for Segments {
    fn name(&self) -> &'static str {
        "segments"
    }

    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("comment", DataType::Utf8, true),
            Field::new("version", DataType::Int64, false),
            Field::new("refresh_every", DataType::Utf8, true),
            Field::new("size", DataType::Int64, true),
            Field::new("last_refreshed_at", utc_ms(), true),
            Field::new("activations", DataType::Utf8, true),
            Field::new("depends_on", DataType::Utf8, true),
            Field::new("author", DataType::Utf8, false),
            Field::new("updated_at", utc_ms(), false),
        ]))
    }

    async fn scan(&self, ctx: &SystemContext) -> crate::Result<RecordBatch> {
        let entries: Vec<_> = ctx.snapshot.state.segments.iter().collect();
        let activations: Vec<String> = entries
            .iter()
            .map(|(_, e)| {
                e.activations
                    .iter()
                    .map(|a| a.destination.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .collect();
        let depends: Vec<String> = entries
            .iter()
            .map(|(_, e)| e.current().depends_on.join(", "))
            .collect();
        let columns: Vec<ArrayRef> = vec![
            strings(entries.iter().map(|(n, _)| Some(n.as_str()))),
            strings(entries.iter().map(|(_, e)| e.current().comment.as_deref())),
            Arc::new(Int64Array::from_iter_values(
                entries.iter().map(|(_, e)| e.current().version as i64),
            )),
            strings(
                entries
                    .iter()
                    .map(|(_, e)| e.refresh_every.as_ref().map(|r| r.text.as_str())),
            ),
            Arc::new(Int64Array::from_iter(
                entries
                    .iter()
                    .map(|(_, e)| e.last_refresh.as_ref().map(|r| r.size as i64)),
            )),
            times(
                entries
                    .iter()
                    .map(|(_, e)| e.last_refresh.as_ref().map(|r| r.at.timestamp_millis())),
            ),
            strings(
                activations
                    .iter()
                    .map(|a| Some(a.as_str()).filter(|s| !s.is_empty())),
            ),
            strings(
                depends
                    .iter()
                    .map(|d| Some(d.as_str()).filter(|s| !s.is_empty())),
            ),
            strings(
                entries
                    .iter()
                    .map(|(_, e)| Some(e.current().author.as_str())),
            ),
            times(
                entries
                    .iter()
                    .map(|(_, e)| Some(e.current().created_at.timestamp_millis())),
            ),
        ];
        Ok(RecordBatch::try_new(self.schema(), columns)?)
    }
}
