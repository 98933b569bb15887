//! `system.destinations`: every activation destination, its options (the
//! secret of a webhook never shown) and the segments activated to it.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use seglake_catalog::DestinationKind;

use super::{SystemContext, SystemTable, strings, times, utc_ms};

#[derive(Debug)]
pub(super) struct Destinations;

#[async_trait]
impl SystemTable for Destinations {
    fn name(&self) -> &'static str {
        "destinations"
    }

    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("type", DataType::Utf8, false),
            Field::new("target", DataType::Utf8, false),
            Field::new("options", DataType::Utf8, true),
            Field::new("activations", DataType::Utf8, true),
            Field::new("author", DataType::Utf8, false),
            Field::new("created_at", utc_ms(), false),
        ]))
    }

    async fn scan(&self, ctx: &SystemContext) -> crate::Result<RecordBatch> {
        let snapshot = &ctx.snapshot;
        let rows: Vec<_> = snapshot.state.destinations.iter().collect();
        let described: Vec<(&str, String, String)> = rows
            .iter()
            .map(|(_, d)| match &d.kind {
                DestinationKind::File { path, format } => (
                    "file",
                    path.clone(),
                    format!("format {format:?}").to_lowercase(),
                ),
                DestinationKind::Webhook {
                    url,
                    batch_size,
                    secret,
                } => (
                    "webhook",
                    // Credentials stored before they were refused stay hidden.
                    crate::egress::redacted(url),
                    // The secret itself is never shown.
                    format!(
                        "batch_size {batch_size}, secret {}",
                        if secret.is_some() { "set" } else { "not set" }
                    ),
                ),
            })
            .collect();
        let used: Vec<String> = rows
            .iter()
            .map(|(name, _)| {
                snapshot
                    .state
                    .segments
                    .iter()
                    .filter(|(_, e)| e.activations.iter().any(|a| &a.destination == *name))
                    .map(|(s, _)| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .collect();
        let columns: Vec<ArrayRef> = vec![
            strings(rows.iter().map(|(n, _)| Some(n.as_str()))),
            strings(described.iter().map(|d| Some(d.0))),
            strings(described.iter().map(|d| Some(d.1.as_str()))),
            strings(described.iter().map(|d| Some(d.2.as_str()))),
            strings(
                used.iter()
                    .map(|u| Some(u.as_str()).filter(|s| !s.is_empty())),
            ),
            strings(rows.iter().map(|(_, d)| Some(d.author.as_str()))),
            times(
                rows.iter()
                    .map(|(_, d)| Some(d.created_at.timestamp_millis())),
            ),
        ];
        Ok(RecordBatch::try_new(self.schema(), columns)?)
    }
}
