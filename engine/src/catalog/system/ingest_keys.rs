//! `system.ingest_keys`: the collector's ingest keys, their table and
//! allowed origins, when each was last used (never the key, nor its
//! hash). Administrators only.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;

use super::{SystemContext, SystemTable, strings, times, utc_ms};

#[derive(Debug)]
pub(super) struct IngestKeys;

#[async_trait]
impl SystemTable for IngestKeys {
    fn name(&self) -> &'static str {
        "ingest_keys"
    }

    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("table_name", DataType::Utf8, false),
            Field::new("origins", DataType::Utf8, false),
            Field::new("created_at", utc_ms(), false),
            Field::new("created_by", DataType::Utf8, false),
            Field::new("last_used_at", utc_ms(), true),
        ]))
    }

    async fn scan(&self, ctx: &SystemContext) -> crate::Result<RecordBatch> {
        let keys: Vec<_> = ctx.snapshot.state.security.ingest_keys.iter().collect();
        let tables: Vec<String> = keys
            .iter()
            .map(|(_, k)| format!("{}.{}", k.schema, k.table))
            .collect();
        let origins: Vec<String> = keys.iter().map(|(_, k)| k.origins.join(", ")).collect();
        let columns: Vec<ArrayRef> = vec![
            strings(keys.iter().map(|(n, _)| Some(n.as_str()))),
            strings(tables.iter().map(|t| Some(t.as_str()))),
            strings(origins.iter().map(|o| Some(o.as_str()))),
            times(
                keys.iter()
                    .map(|(_, k)| Some(k.created_at.timestamp_millis())),
            ),
            strings(keys.iter().map(|(_, k)| Some(k.created_by.as_str()))),
            times(keys.iter().map(|(_, k)| {
                let pending = ctx.storage.key_uses.pending(&k.key_sha256);
                k.last_used_at.max(pending).map(|t| t.timestamp_millis())
            })),
        ];
        Ok(RecordBatch::try_new(self.schema(), columns)?)
    }
}
