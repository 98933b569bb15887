//! `system.audit`: the audit trail of the warehouse (`storage/audit.rs`):
//! failed logins, refused statements, and every statement that changed
//! something, from every server of the warehouse. Administrators only.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;

use super::{SystemContext, SystemTable, strings, times, utc_ms};

#[derive(Debug)]
pub(super) struct Audit;

#[async_trait]
impl SystemTable for Audit {
    fn name(&self) -> &'static str {
        "audit"
    }

    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("at", utc_ms(), false),
            Field::new("user", DataType::Utf8, false),
            Field::new("client", DataType::Utf8, true),
            Field::new("kind", DataType::Utf8, false),
            Field::new("objects", DataType::Utf8, false),
            Field::new("outcome", DataType::Utf8, false),
            Field::new("message", DataType::Utf8, true),
            Field::new("statement_id", DataType::Utf8, true),
        ]))
    }

    async fn scan(&self, ctx: &SystemContext) -> crate::Result<RecordBatch> {
        let records = ctx.storage.audit().read().await?;
        let objects: Vec<String> = records.iter().map(|r| r.objects.join(", ")).collect();
        let columns: Vec<ArrayRef> = vec![
            times(records.iter().map(|r| Some(r.at.timestamp_millis()))),
            strings(records.iter().map(|r| Some(r.user.as_str()))),
            strings(records.iter().map(|r| r.client.as_deref())),
            strings(records.iter().map(|r| Some(r.kind.as_str()))),
            strings(objects.iter().map(|o| Some(o.as_str()))),
            strings(records.iter().map(|r| Some(r.outcome.as_str()))),
            strings(records.iter().map(|r| r.message.as_deref())),
            strings(records.iter().map(|r| r.statement.as_deref())),
        ];
        Ok(RecordBatch::try_new(self.schema(), columns)?)
    }
}
