//! `segments.<name>`: live evaluation of a segment's query, and SQL views
//! over a catalog snapshot (used by the system tables).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider, view::ViewTable};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::TableType;
use datafusion::prelude::SessionContext;
use seglake_catalog::{DEFAULT_CATALOG, Snapshot};

use crate::catalog::SnapshotCatalog;
use crate::distributed::Cluster;
use crate::storage::Storage;

/// Plans `sql` against `snapshot` and wraps it as a view. Unqualified
/// names resolve in the `public` schema.
pub(crate) async fn plan_view(
    storage: &Arc<Storage>,
    cluster: Option<&Cluster>,
    snapshot: &Arc<Snapshot>,
    sql: &str,
) -> Result<Arc<dyn TableProvider>> {
    let base = storage
        .scan_session()
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    // The engine's settings and functions, with a catalog list of its own.
    let state =
        datafusion::execution::SessionStateBuilder::new_from_existing(base.as_ref().clone())
            .with_catalog_list(Arc::new(
                datafusion::catalog::MemoryCatalogProviderList::new(),
            ))
            .build();
    let parquet = state.table_options().parquet.clone();
    let ctx = SessionContext::new_with_state(state);
    ctx.register_catalog(
        DEFAULT_CATALOG,
        Arc::new(SnapshotCatalog::new(
            Arc::clone(snapshot),
            parquet,
            Arc::clone(storage),
            cluster.cloned(),
            // A view plans with every table: who may read it was checked.
            None,
        )),
    );
    let state = ctx.state();
    let statement = crate::sql::parse_query(sql, &state.config().options().sql_parser)
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    let plan = state.statement_to_plan(statement).await?;
    Ok(Arc::new(ViewTable::new(plan, Some(sql.to_string()))))
}

/// The `segments` schema: one view per segment, its current definition.
#[derive(Debug)]
pub(crate) struct SegmentsSchema {
    storage: Arc<Storage>,
    cluster: Option<Cluster>,
    snapshot: Arc<Snapshot>,
}

impl SegmentsSchema {
    pub(crate) fn new(
        storage: Arc<Storage>,
        cluster: Option<Cluster>,
        snapshot: Arc<Snapshot>,
    ) -> Self {
        Self {
            storage,
            cluster,
            snapshot,
        }
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
        let view = plan_view(
            &self.storage,
            self.cluster.as_ref(),
            &self.snapshot,
            &entry.current().sql,
        )
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

// The tables of the `segment_data` schema that REFRESH SEGMENT and
// activation write (crate::commands::segments) and the system views read
// (crate::catalog::system).

pub(crate) const CHANGES_TABLE: &str = "_changes";
pub(crate) const HISTORY_TABLE: &str = "_history";
pub(crate) const ACTIVATIONS_TABLE: &str = "_activations";

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

pub(crate) fn changes_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("segment", DataType::Utf8, true),
        Field::new("refresh_id", DataType::Utf8, true),
        Field::new("profile_id", DataType::Utf8, true),
        Field::new("change", DataType::Utf8, true),
        Field::new("at", ts_type(), true),
    ]))
}

pub(crate) fn history_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("segment", DataType::Utf8, true),
        Field::new("version", DataType::Int64, true),
        Field::new("refresh_id", DataType::Utf8, true),
        Field::new("refreshed_at", ts_type(), true),
        Field::new("size", DataType::Int64, true),
        Field::new("entered", DataType::Int64, true),
        Field::new("exited", DataType::Int64, true),
        Field::new("duration_ms", DataType::Int64, true),
        Field::new("snapshot_version", DataType::Int64, true),
    ]))
}

pub(crate) fn activations_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("destination", DataType::Utf8, true),
        Field::new("segment", DataType::Utf8, true),
        Field::new("refresh_id", DataType::Utf8, true),
        Field::new("change", DataType::Utf8, true),
        Field::new("rows_sent", DataType::Int64, true),
        Field::new("status", DataType::Utf8, true),
        Field::new("error", DataType::Utf8, true),
        Field::new("attempts", DataType::Int64, true),
        Field::new("target", DataType::Utf8, true),
        Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ]))
}
