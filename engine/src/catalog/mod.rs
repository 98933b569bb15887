//! DataFusion's view of the Seglake catalog.
//!
//! A [`SnapshotCatalog`] serves one committed catalog version. The session
//! installs a fresh one before each statement, so a statement plans against
//! one consistent catalog and sees every change committed before it started,
//! by this server or any other sharing the warehouse.

pub(crate) mod segments;
pub(crate) mod system;

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::Schema;
use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::config::TableParquetOptions;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::{DataFusionError, Result};
use seglake_catalog::{SYSTEM_SCHEMA, Snapshot, TableEntry, TableFormat};

use crate::distributed::Cluster;
use crate::sql::TIME_TRAVEL_SCHEMA;
use crate::storage::Storage;
use crate::storage::delta::TimeTravel;
use system::SystemSchema;

/// Which tables listings show a user (`schema`, `table`): those it may read
/// (`pipeline::privileges::may_read`).
pub(crate) type Visible = Arc<dyn Fn(&str, &str) -> bool + Send + Sync>;

/// What a user sees of the catalog: the tables listings show, and the
/// grantees whose grants `system.grants` shows (the user and its roles).
#[derive(Clone)]
pub(crate) struct Viewer {
    pub(crate) visible: Visible,
    pub(crate) grantees: Arc<std::collections::BTreeSet<String>>,
}

pub(crate) struct SnapshotCatalog {
    snapshot: Arc<Snapshot>,
    parquet: TableParquetOptions,
    storage: Arc<Storage>,
    /// The workers of a coordinator, for `system.workers`.
    cluster: Option<Cluster>,
    /// `None`: every table is listed, every grant shown.
    viewer: Option<Viewer>,
}

impl std::fmt::Debug for SnapshotCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotCatalog")
            .field("version", &self.snapshot.version)
            .field("filtered", &self.viewer.is_some())
            .finish()
    }
}

impl SnapshotCatalog {
    pub(crate) fn new(
        snapshot: Arc<Snapshot>,
        parquet: TableParquetOptions,
        storage: Arc<Storage>,
        cluster: Option<Cluster>,
        viewer: Option<Viewer>,
    ) -> Self {
        Self {
            snapshot,
            parquet,
            storage,
            cluster,
            viewer,
        }
    }

    fn unfiltered_schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name == SYSTEM_SCHEMA {
            return Some(Arc::new(SystemSchema::new(
                Arc::clone(&self.storage),
                self.cluster.clone(),
                Arc::clone(&self.snapshot),
                self.viewer.as_ref().map(|v| Arc::clone(&v.grantees)),
            )));
        }
        if name == seglake_catalog::SEGMENTS_SCHEMA {
            return Some(Arc::new(segments::SegmentsSchema::new(
                Arc::clone(&self.storage),
                self.cluster.clone(),
                Arc::clone(&self.snapshot),
            )));
        }
        if name == TIME_TRAVEL_SCHEMA {
            return Some(Arc::new(TimeTravelSchema {
                snapshot: Arc::clone(&self.snapshot),
                storage: Arc::clone(&self.storage),
            }));
        }
        let schema = self.snapshot.state.schemas.get(name)?;
        Some(Arc::new(SnapshotSchema {
            name: name.to_string(),
            tables: schema.tables.clone(),
            parquet: self.parquet.clone(),
            storage: Arc::clone(&self.storage),
        }))
    }
}

impl CatalogProvider for SnapshotCatalog {
    /// With a filter, the schemas holding a table the user may read.
    fn schema_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.snapshot.state.schemas.keys().cloned().collect();
        names.push(SYSTEM_SCHEMA.to_string());
        names.push(seglake_catalog::SEGMENTS_SCHEMA.to_string());
        names.sort();
        if self.viewer.is_some() {
            names.retain(|n| self.schema(n).is_some_and(|s| !s.table_names().is_empty()));
        }
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        let inner = self.unfiltered_schema(name)?;
        match &self.viewer {
            None => Some(inner),
            Some(viewer) => Some(Arc::new(FilteredSchema {
                inner,
                name: name.to_string(),
                visible: Arc::clone(&viewer.visible),
            })),
        }
    }
}

/// A schema listing only the tables a user may read; the others still
/// resolve (the statement check refuses them by name and privilege).
struct FilteredSchema {
    inner: Arc<dyn SchemaProvider>,
    name: String,
    visible: Visible,
}

impl std::fmt::Debug for FilteredSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilteredSchema")
            .field("name", &self.name)
            .finish()
    }
}

#[async_trait]
impl SchemaProvider for FilteredSchema {
    fn table_names(&self) -> Vec<String> {
        self.inner
            .table_names()
            .into_iter()
            .filter(|t| (self.visible)(&self.name, t))
            .collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        self.inner.table(name).await
    }

    async fn table_type(&self, name: &str) -> Result<Option<datafusion::logical_expr::TableType>> {
        self.inner.table_type(name).await
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}

/// The tables of one schema of a catalog snapshot.
#[derive(Debug)]
pub struct SnapshotSchema {
    /// The schema's name, for errors.
    name: String,
    tables: std::collections::BTreeMap<String, TableEntry>,
    parquet: TableParquetOptions,
    storage: Arc<Storage>,
}

#[async_trait]
impl SchemaProvider for SnapshotSchema {
    fn table_names(&self) -> Vec<String> {
        self.tables.keys().cloned().collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        match self.tables.get(name) {
            // A table that cannot be opened (a corrupt Delta log, a
            // missing directory) is named in the error.
            Some(entry) => Ok(Some(
                table_provider(&self.storage, entry, &self.parquet, None)
                    .await
                    .map_err(|e| {
                        e.context(format!(
                            "cannot open table '{}.{name}' ({})",
                            self.name, entry.location
                        ))
                    })?,
            )),
            None => Ok(None),
        }
    }

    /// Every table of the snapshot is a base table: listing
    /// (`information_schema.tables`, Flight SQL `GetTables`) reads no Delta
    /// log.
    async fn table_type(&self, name: &str) -> Result<Option<datafusion::logical_expr::TableType>> {
        Ok(self
            .tables
            .contains_key(name)
            .then_some(datafusion::logical_expr::TableType::Base))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.contains_key(name)
    }
}

/// Past versions of managed tables, named `schema.table@v3` or
/// `schema.table@t<epoch ms>` (what `table_at(...)` is rewritten to).
#[derive(Debug)]
struct TimeTravelSchema {
    snapshot: Arc<Snapshot>,
    storage: Arc<Storage>,
}

#[async_trait]
impl SchemaProvider for TimeTravelSchema {
    fn table_names(&self) -> Vec<String> {
        vec![]
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some((table, at)) = name.rsplit_once('@') else {
            return Ok(None);
        };
        let Some(at) = TimeTravel::decode(at) else {
            return Ok(None);
        };
        let (schema, table) = match table.split_once('.') {
            Some((s, t)) => (s.to_string(), t.to_string()),
            None => (
                seglake_catalog::DEFAULT_SCHEMA.to_string(),
                table.to_string(),
            ),
        };
        let entry = self
            .snapshot
            .state
            .table(&schema, &table)
            .map_err(|e| DataFusionError::Plan(format!("table_at: {e}")))?;
        if entry.format != TableFormat::Delta {
            return Err(DataFusionError::Plan(format!(
                "table_at works on managed tables; '{schema}.{table}' is an external Parquet table without versions"
            )));
        }
        let provider = self
            .storage
            .delta_provider(&entry.location, Some(&at))
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(Some(provider))
    }

    /// A version of a managed table of the snapshot is a base table; no
    /// Delta log is read to say so.
    async fn table_type(&self, name: &str) -> Result<Option<datafusion::logical_expr::TableType>> {
        let Some((table, at)) = name.rsplit_once('@') else {
            return Ok(None);
        };
        if TimeTravel::decode(at).is_none() {
            return Ok(None);
        }
        let (schema, table) = table
            .split_once('.')
            .unwrap_or((seglake_catalog::DEFAULT_SCHEMA, table));
        let managed = self
            .snapshot
            .state
            .table(schema, table)
            .is_ok_and(|entry| entry.format == TableFormat::Delta);
        Ok(managed.then_some(datafusion::logical_expr::TableType::Base))
    }

    fn table_exist(&self, _name: &str) -> bool {
        false
    }
}

/// Builds the DataFusion table for a catalog entry. Parquet tables use the
/// schema the catalog recorded (no file is read until the table is
/// scanned); Delta tables read their log (at `at`, or the newest version).
pub(crate) async fn table_provider(
    storage: &Storage,
    entry: &TableEntry,
    parquet: &TableParquetOptions,
    at: Option<&TimeTravel>,
) -> Result<Arc<dyn TableProvider>> {
    match entry.format {
        TableFormat::Delta => storage
            .delta_provider(&entry.location, at)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e))),
        TableFormat::Parquet => {
            let format = ParquetFormat::default().with_options(parquet.clone());
            let options = ListingOptions::new(Arc::new(format))
                .with_file_extension(".parquet")
                .with_table_partition_cols(
                    entry
                        .partition_columns
                        .iter()
                        .map(|c| (c.name.clone(), c.data_type.clone()))
                        .collect(),
                );
            let url = ListingTableUrl::parse(&entry.location)?;
            let config = ListingTableConfig::new(url)
                .with_listing_options(options)
                .with_schema(Arc::new(entry.file_schema.clone()));
            Ok(Arc::new(ListingTable::try_new(config)?))
        }
    }
}

/// Checks that a declared file schema has no duplicate or empty names.
pub fn validate_schema(schema: &Schema) -> Result<()> {
    let mut seen = HashMap::new();
    for f in schema.fields() {
        if f.name().is_empty() {
            return Err(DataFusionError::Plan("empty column name".into()));
        }
        if seen.insert(f.name().to_lowercase(), ()).is_some() {
            return Err(DataFusionError::Plan(format!(
                "duplicate column name '{}'",
                f.name()
            )));
        }
    }
    Ok(())
}

/// What of `reference` does not exist in the catalog `ctx` plans against
/// (`None`: it resolves, or it names a schema DataFusion or Seglake
/// provides itself: `information_schema`, the time-travel schema).
pub(crate) fn missing(
    ctx: &datafusion::prelude::SessionContext,
    reference: &datafusion::common::TableReference,
) -> Option<String> {
    let state = ctx.state();
    let options = &state.config().options().catalog;
    let catalog_name = reference.catalog().unwrap_or(&options.default_catalog);
    let schema_name = reference.schema().unwrap_or(&options.default_schema);
    if schema_name == "information_schema" || schema_name == TIME_TRAVEL_SCHEMA {
        return None;
    }
    let Some(catalog) = ctx.catalog(catalog_name) else {
        return Some(format!("catalog '{catalog_name}' not found"));
    };
    let Some(schema) = catalog.schema(schema_name) else {
        return Some(format!("schema '{catalog_name}.{schema_name}' not found"));
    };
    (!schema.table_exist(reference.table())).then(|| {
        format!(
            "table '{catalog_name}.{schema_name}.{}' not found",
            reference.table()
        )
    })
}
