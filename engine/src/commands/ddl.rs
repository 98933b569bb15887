//! DDL: CREATE/DROP SCHEMA, CREATE EXTERNAL TABLE, CREATE TABLE [AS]
//! (managed), DROP TABLE.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::SchemaReference;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTableUrl};
use datafusion::logical_expr::{CreateExternalTable, DdlStatement, LogicalPlan};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use seglake_catalog::{PartitionColumn, TableEntry, TableFormat, TableKind};
use tracing::{debug, info, warn};

use super::check_catalog;
use crate::catalog::validate_schema;
use crate::pipeline::StatementContext;
use crate::{EngineError, Outcome, Result};

impl StatementContext {
    pub(super) async fn run_ddl(
        &self,
        ddl: DdlStatement,
        partition_by: &[String],
    ) -> Result<Outcome> {
        let catalog = self.storage().catalog_store();
        match ddl {
            DdlStatement::CreateExternalTable(cmd) => self.create_external_table(*cmd).await?,
            DdlStatement::CreateCatalogSchema(cmd) => {
                let name = self.schema_name(&cmd.schema_name)?;
                let now = chrono::Utc::now();
                catalog
                    .update(|st| st.create_schema(&name, cmd.if_not_exists, now))
                    .await?;
            }
            DdlStatement::DropCatalogSchema(cmd) => {
                let name = match &cmd.name {
                    SchemaReference::Bare { schema } => schema.to_string(),
                    SchemaReference::Full { schema, catalog } => {
                        check_catalog(catalog)?;
                        schema.to_string()
                    }
                };
                let (_, dropped) = catalog
                    .update(|st| st.drop_schema(&name, cmd.if_exists, cmd.cascade))
                    .await?;
                for t in dropped {
                    self.delete_managed_data(&t).await;
                }
            }
            DdlStatement::DropTable(cmd) => {
                let (schema, table) = self.resolve_table_name(&cmd.name)?;
                let (_, dropped) = catalog
                    .update(|st| st.drop_table(&schema, &table, cmd.if_exists))
                    .await?;
                if let Some(t) = dropped {
                    self.delete_managed_data(&t).await;
                }
            }
            DdlStatement::CreateMemoryTable(cmd) => {
                if cmd.temporary {
                    return Err(EngineError::Unsupported(
                        "TEMPORARY tables are not supported".into(),
                    ));
                }
                if !cmd.column_defaults.is_empty() {
                    return Err(EngineError::Unsupported(
                        "column DEFAULT values are not supported".into(),
                    ));
                }
                let (schema_name, table) = self.resolve_table_name(&cmd.name)?;
                let schema = Arc::new(cmd.input.schema().as_arrow().clone());
                let input = match cmd.input.as_ref() {
                    LogicalPlan::EmptyRelation(e) if !e.produce_one_row => None,
                    _ => Some(Arc::unwrap_or_clone(cmd.input)),
                };
                let result = self
                    .create_managed(
                        &schema_name,
                        &table,
                        input,
                        schema,
                        partition_by,
                        cmd.if_not_exists,
                        cmd.or_replace,
                    )
                    .await?;
                let rows = match result {
                    crate::commands::managed::CreateResult::Created { rows } => Some(rows),
                    crate::commands::managed::CreateResult::Existed => Some(0),
                    crate::commands::managed::CreateResult::Raced => {
                        return Err(EngineError::AlreadyExists(format!(
                            "table '{schema_name}.{table}' was created concurrently"
                        )));
                    }
                };
                return Ok(Outcome::Done {
                    rows_affected: rows,
                });
            }
            other => {
                return Err(EngineError::Unsupported(format!(
                    "{} is not supported",
                    other.name()
                )));
            }
        }
        Ok(Outcome::Done {
            rows_affected: None,
        })
    }

    async fn create_external_table(&self, cmd: CreateExternalTable) -> Result<()> {
        if !cmd.file_type.eq_ignore_ascii_case("parquet") {
            return Err(EngineError::Unsupported(format!(
                "STORED AS {} is not supported: Seglake reads PARQUET",
                cmd.file_type
            )));
        }
        if cmd.temporary || cmd.unbounded {
            return Err(EngineError::Unsupported(
                "TEMPORARY and UNBOUNDED external tables are not supported".into(),
            ));
        }
        if !cmd.options.is_empty() {
            let keys: Vec<_> = cmd.options.keys().cloned().collect();
            return Err(EngineError::Unsupported(format!(
                "table OPTIONS are not supported ({})",
                keys.join(", ")
            )));
        }
        let [location] = cmd.locations.as_slice() else {
            return Err(EngineError::Unsupported(
                "exactly one LOCATION is supported".into(),
            ));
        };
        let (schema_name, table) = self.resolve_table_name(&cmd.name)?;
        let location = self.external_location(location).await?;

        let declared = cmd.schema.as_arrow();
        let partition_columns: Vec<PartitionColumn> = cmd
            .table_partition_cols
            .iter()
            .map(|name| PartitionColumn {
                name: name.clone(),
                data_type: declared
                    .field_with_name(name)
                    .map(|f| f.data_type().clone())
                    .unwrap_or(DataType::Utf8),
            })
            .collect();
        let declared_file_fields: Vec<Field> = declared
            .fields()
            .iter()
            .filter(|f| !cmd.table_partition_cols.contains(f.name()))
            .map(|f| f.as_ref().clone())
            .collect();
        let file_schema = if declared_file_fields.is_empty() {
            let state = self.context().state();
            // Record the files' own Arrow types (Utf8, Binary), not the view
            // types DataFusion reads them as by default: the catalog schema
            // is what clients see.
            let mut parquet = state.table_options().parquet.clone();
            parquet.global.schema_force_view_types = false;
            let format = ParquetFormat::default().with_options(parquet);
            let options = ListingOptions::new(Arc::new(format)).with_file_extension(".parquet");
            let url = ListingTableUrl::parse(&location)?;
            let inferred = options.infer_schema(&state, &url).await.map_err(|e| {
                EngineError::InvalidArgument(format!(
                    "cannot read a Parquet schema at {location} (declare the columns, or point LOCATION at a .parquet file or a folder of them): {e}"
                ))
            })?;
            Schema::new(inferred.fields().clone())
        } else {
            Schema::new(declared_file_fields)
        };
        validate_schema(&file_schema)?;
        for p in &partition_columns {
            if file_schema.field_with_name(&p.name).is_ok() {
                return Err(EngineError::InvalidArgument(format!(
                    "partition column '{}' is also a column of the Parquet files",
                    p.name
                )));
            }
        }
        let entry = TableEntry {
            location: location.clone(),
            format: TableFormat::Parquet,
            kind: TableKind::External,
            file_schema,
            partition_columns,
            created_at: chrono::Utc::now(),
            comment: None,
        };
        self.storage()
            .catalog_store()
            .update(|st| {
                st.put_table(
                    &schema_name,
                    &table,
                    entry.clone(),
                    cmd.if_not_exists,
                    cmd.or_replace,
                )
            })
            .await?;
        info!(user = %self.user(), table = %format!("{schema_name}.{table}"), %location, "external table registered");
        Ok(())
    }

    /// The URL of an external table's LOCATION, confined
    /// (`Storage::user_location`): a folder of Parquet files (the URL ends
    /// with `/`), or a single Parquet file when the location names an
    /// existing file, as DataFusion and DuckDB allow (a data scientist's
    /// `profiles.parquet`). A location ending with `/` is always a folder.
    async fn external_location(&self, given: &str) -> Result<String> {
        let storage = self.storage();
        let folder = storage.user_location(given, false)?;
        storage.ensure_object_store(&folder)?;
        if given.trim().ends_with('/') {
            return Ok(folder);
        }
        let file = storage.user_location(given, true)?;
        let (store, path) = storage.store_for(&file)?;
        match store.head(&path).await {
            Ok(_) if file.to_ascii_lowercase().ends_with(".parquet") => Ok(file),
            Ok(_) => Err(EngineError::InvalidArgument(format!(
                "LOCATION '{given}' is a file without the .parquet extension: \
                 name a .parquet file or a folder of them"
            ))),
            // A folder (a local directory is not an object) or nothing yet.
            Err(object_store::Error::NotFound { .. }) => Ok(folder),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes the files of a managed table (after its catalog entry is gone).
    pub(crate) async fn delete_managed_data(&self, entry: &TableEntry) {
        if entry.kind != TableKind::Managed {
            return;
        }
        // Its location is never reused: no reason to keep its state.
        self.storage().forget_delta_tables(&entry.location);
        match self.storage().store_for(&entry.location) {
            Ok((store, prefix)) => {
                if let Err(e) = delete_prefix(store.as_ref(), &prefix).await {
                    warn!(location = %entry.location, error = %e, "could not delete dropped table data");
                }
            }
            Err(e) => {
                warn!(location = %entry.location, error = %e, "could not delete dropped table data")
            }
        }
    }

    /// `schema` or `catalog.schema` as written in CREATE SCHEMA.
    fn schema_name(&self, name: &str) -> Result<String> {
        match name.split_once('.') {
            Some((catalog, schema)) => {
                check_catalog(catalog)?;
                Ok(schema.to_string())
            }
            None => Ok(name.to_string()),
        }
    }
}

/// Deletes every object under `prefix`.
pub(crate) async fn delete_prefix(store: &dyn ObjectStore, prefix: &Path) -> Result<()> {
    use futures::TryStreamExt;
    let objects: Vec<_> = store.list(Some(prefix)).try_collect().await?;
    for o in objects {
        store.delete(&o.location).await?;
    }
    debug!(%prefix, "deleted");
    Ok(())
}
