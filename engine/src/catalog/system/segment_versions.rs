//! `system.segment_versions`: every version of every segment's definition.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;

use super::{SystemContext, SystemTable, strings, times, utc_ms};

#[derive(Debug)]
pub(super) struct SegmentVersions;

#[async_trait]
impl SystemTable for SegmentVersions {
    fn name(&self) -> &'static str {
        "segment_versions"
    }

    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("segment", DataType::Utf8, false),
            Field::new("version", DataType::Int64, false),
            Field::new("created_at", utc_ms(), false),
            Field::new("author", DataType::Utf8, false),
            Field::new("comment", DataType::Utf8, true),
            Field::new("depends_on", DataType::Utf8, true),
            Field::new("sql", DataType::Utf8, false),
        ]))
    }

    async fn scan(&self, ctx: &SystemContext) -> crate::Result<RecordBatch> {
        let rows: Vec<_> = ctx
            .snapshot
            .state
            .segments
            .iter()
            .flat_map(|(n, e)| e.versions.iter().map(move |v| (n, v)))
            .collect();
        let depends: Vec<String> = rows.iter().map(|(_, v)| v.depends_on.join(", ")).collect();
        let columns: Vec<ArrayRef> = vec![
            strings(rows.iter().map(|(n, _)| Some(n.as_str()))),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|(_, v)| v.version as i64),
            )),
            times(
                rows.iter()
                    .map(|(_, v)| Some(v.created_at.timestamp_millis())),
            ),
            strings(rows.iter().map(|(_, v)| Some(v.author.as_str()))),
            strings(rows.iter().map(|(_, v)| v.comment.as_deref())),
            strings(
                depends
                    .iter()
                    .map(|d| Some(d.as_str()).filter(|s| !s.is_empty())),
            ),
            strings(rows.iter().map(|(_, v)| Some(v.sql.as_str()))),
        ];
        Ok(RecordBatch::try_new(self.schema(), columns)?)
    }
}
