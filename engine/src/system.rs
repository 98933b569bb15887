//! The `system` schema: built-in, read-only tables computed on demand.
//!
//! Later features (segment history, activations, workers, ...) add their
//! tables here; each is a name and an async function producing its rows.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::error::Result;

#[derive(Debug, Default)]
pub struct SystemSchema {}

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        vec![]
    }

    async fn table(&self, _name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        Ok(None)
    }

    fn table_exist(&self, _name: &str) -> bool {
        false
    }
}
