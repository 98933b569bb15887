//! `system.workers`: the workers of a distributed coordinator (url, state,
//! last_seen, queries, tasks, last_error); empty on a single node.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;

use super::{SystemContext, SystemTable};
use crate::distributed::{workers_batch, workers_schema};

#[derive(Debug)]
pub(super) struct Workers;

#[async_trait]
impl SystemTable for Workers {
    fn name(&self) -> &'static str {
        "workers"
    }

    fn schema(&self) -> SchemaRef {
        workers_schema()
    }

    async fn scan(&self, ctx: &SystemContext) -> crate::Result<RecordBatch> {
        workers_batch(ctx.cluster.as_ref())
    }
}
