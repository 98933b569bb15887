//! `segments.<name>`: live evaluation of a segment's query, and SQL views
//! over a catalog snapshot (used by the system tables).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider, view::ViewTable};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::TableType;
use datafusion::prelude::SessionContext;
use seglake_catalog::{DEFAULT_CATALOG, Snapshot};

use crate::Engine;
use crate::catalog_provider::SnapshotCatalog;

/// Plans `sql` against `snapshot` and wraps it as a view. Unqualified
/// names resolve in the `public` schema.
pub(crate) async fn plan_view(
    engine: &Arc<Engine>,
    snapshot: &Arc<Snapshot>,
    sql: &str,
) -> Result<Arc<dyn TableProvider>> {
    let state = engine
        .session_state()
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    let parquet = state.table_options().parquet.clone();
    let ctx = SessionContext::new_with_state(state);
    ctx.register_catalog(
        DEFAULT_CATALOG,
        Arc::new(SnapshotCatalog::new(
            Arc::clone(snapshot),
            parquet,
            Arc::clone(engine),
        )),
    );
    let rewritten = crate::statements::rewrite_time_travel(sql)
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    let plan = ctx.state().create_logical_plan(&rewritten).await?;
    Ok(Arc::new(ViewTable::new(plan, Some(sql.to_string()))))
}

/// The `segments` schema: one view per segment, its current definition.
#[derive(Debug)]
pub(crate) struct SegmentsSchema {
    engine: Arc<Engine>,
    snapshot: Arc<Snapshot>,
}

impl SegmentsSchema {
    pub(crate) fn new(engine: Arc<Engine>, snapshot: Arc<Snapshot>) -> Self {
        Self { engine, snapshot }
    }
}

#[async_trait]
impl SchemaProvider for SegmentsSchema {
    fn table_names(&self) -> Vec<String> {
        self.snapshot.state.segments.keys().cloned().collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some(entry) = self.snapshot.state.segments.get(name) else {
            return Ok(None);
        };
        let view = plan_view(&self.engine, &self.snapshot, &entry.current().sql)
            .await
            .map_err(|e| DataFusionError::Plan(format!("segment '{name}': {e}")))?;
        Ok(Some(view))
    }

    /// Listing (`information_schema.tables`, Flight SQL `GetTables`) does
    /// not plan the segments: a segment whose query no longer plans (a
    /// table was dropped) still shows, and fails only when it is read.
    async fn table_type(&self, name: &str) -> Result<Option<TableType>> {
        Ok(self
            .snapshot
            .state
            .segments
            .contains_key(name)
            .then_some(TableType::View))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.snapshot.state.segments.contains_key(name)
    }
}
