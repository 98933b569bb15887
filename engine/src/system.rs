//! The `system` schema: built-in, read-only tables computed on demand.
//!
//! Later features (segment history, activations, ...) add their tables
//! here; each is a name and a function producing its rows.
//!
//! - `system.workers`: the workers of a distributed coordinator (url,
//!   state, last_seen, queries, tasks, last_error); empty on a single node.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{MemTable, SchemaProvider, TableProvider};
use datafusion::error::{DataFusionError, Result};

use crate::distributed::{Cluster, workers_batch, workers_schema};

const WORKERS: &str = "workers";

#[derive(Debug, Default)]
pub struct SystemSchema {
    cluster: Option<Cluster>,
}

impl SystemSchema {
    pub fn new(cluster: Option<Cluster>) -> Self {
        Self { cluster }
    }
}

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        vec![WORKERS.to_string()]
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        match name {
            WORKERS => {
                let batch = workers_batch(self.cluster.as_ref())
                    .map_err(|e| DataFusionError::External(Box::new(e)))?;
                Ok(Some(Arc::new(MemTable::try_new(
                    workers_schema(),
                    vec![vec![batch]],
                )?)))
            }
            _ => Ok(None),
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        name == WORKERS
    }
}
