//! Metadata commands: catalogs, schemas, tables, table types, SQL info, and
//! keys (Seglake has no primary or foreign keys: their results are empty).
//!
//! Each command is a [`Metadata`]: the schema of its result and a function
//! producing its rows. [`flight_info`] and [`rows`] turn any of them into
//! the `FlightInfo` (whose ticket is the command itself) and the DoGet
//! stream; GetSchema reads the same schema.

use std::future::Future;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow_flight::sql::{
    CommandGetCatalogs, CommandGetCrossReference, CommandGetDbSchemas, CommandGetExportedKeys,
    CommandGetImportedKeys, CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTableTypes,
    CommandGetTables, ProstMessageExt,
};
use arrow_flight::{FlightDescriptor, FlightInfo};
use prost::Message;
use seglake_engine::DEFAULT_CATALOG;

use super::encoding::{self, FlightDataStream, one_batch, wire_schema};
use crate::auth::ClientSession;
use crate::error::{Result, ServerError};
use crate::sql_info::sql_info_data;

/// A metadata command: the schema of its result, and its rows.
pub(super) trait Metadata: ProstMessageExt + Send {
    /// The result schema (GetFlightInfo, GetSchema).
    fn schema(&self) -> SchemaRef;

    /// The result rows (DoGet), as the caller may see them.
    fn rows(self, client: &ClientSession) -> impl Future<Output = Result<RecordBatch>> + Send;
}

/// GetFlightInfo of a metadata command: its ticket is the command itself.
pub(super) fn flight_info<C: Metadata>(
    cmd: &C,
    descriptor: FlightDescriptor,
) -> Result<FlightInfo> {
    let ticket = cmd.as_any().encode_to_vec().into();
    encoding::flight_info(&cmd.schema(), ticket, descriptor)
}

/// DoGet of a metadata command: its rows, in one batch.
pub(super) async fn rows<C: Metadata>(cmd: C, client: &ClientSession) -> Result<FlightDataStream> {
    Ok(one_batch(cmd.rows(client).await?))
}

impl Metadata for CommandGetCatalogs {
    fn schema(&self) -> SchemaRef {
        self.into_builder().schema()
    }

    async fn rows(self, _: &ClientSession) -> Result<RecordBatch> {
        let mut builder = self.into_builder();
        builder.append(DEFAULT_CATALOG);
        builder.build().map_err(ServerError::internal)
    }
}

impl Metadata for CommandGetDbSchemas {
    fn schema(&self) -> SchemaRef {
        self.clone().into_builder().schema()
    }

    async fn rows(self, client: &ClientSession) -> Result<RecordBatch> {
        let schemas = client.session.schemas().await?;
        let mut builder = self.into_builder();
        for s in schemas {
            builder.append(DEFAULT_CATALOG, s);
        }
        builder.build().map_err(ServerError::internal)
    }
}

impl Metadata for CommandGetTables {
    fn schema(&self) -> SchemaRef {
        self.clone().into_builder().schema()
    }

    async fn rows(self, client: &ClientSession) -> Result<RecordBatch> {
        let tables = client.session.tables(self.include_schema).await?;
        let mut builder = self.into_builder();
        for t in tables {
            builder
                .append(
                    &t.catalog,
                    &t.schema,
                    &t.name,
                    t.table_type,
                    &wire_schema(&t.arrow_schema),
                )
                .map_err(ServerError::internal)?;
        }
        builder.build().map_err(ServerError::internal)
    }
}

impl Metadata for CommandGetTableTypes {
    fn schema(&self) -> SchemaRef {
        self.into_builder().schema()
    }

    async fn rows(self, _: &ClientSession) -> Result<RecordBatch> {
        let mut builder = self.into_builder();
        builder.append("TABLE");
        builder.append("VIEW");
        builder.build().map_err(ServerError::internal)
    }
}

impl Metadata for CommandGetSqlInfo {
    fn schema(&self) -> SchemaRef {
        self.clone().into_builder(sql_info_data()).schema()
    }

    async fn rows(self, _: &ClientSession) -> Result<RecordBatch> {
        self.into_builder(sql_info_data())
            .build()
            .map_err(ServerError::internal)
    }
}

impl Metadata for CommandGetPrimaryKeys {
    fn schema(&self) -> SchemaRef {
        primary_keys_schema()
    }

    async fn rows(self, _: &ClientSession) -> Result<RecordBatch> {
        Ok(RecordBatch::new_empty(primary_keys_schema()))
    }
}

/// GetExportedKeys, GetImportedKeys and GetCrossReference: no rows.
macro_rules! no_foreign_keys {
    ($($command:ty),*) => {$(
        impl Metadata for $command {
            fn schema(&self) -> SchemaRef {
                foreign_keys_schema()
            }

            async fn rows(self, _: &ClientSession) -> Result<RecordBatch> {
                Ok(RecordBatch::new_empty(foreign_keys_schema()))
            }
        }
    )*};
}

no_foreign_keys!(
    CommandGetExportedKeys,
    CommandGetImportedKeys,
    CommandGetCrossReference
);

/// The result schema of GetPrimaryKeys (Flight SQL spec).
fn primary_keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_name", DataType::Utf8, true),
        Field::new("key_sequence", DataType::Int32, false),
    ]))
}

/// The result schema of GetExportedKeys, GetImportedKeys and
/// GetCrossReference (Flight SQL spec).
fn foreign_keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("pk_catalog_name", DataType::Utf8, true),
        Field::new("pk_db_schema_name", DataType::Utf8, true),
        Field::new("pk_table_name", DataType::Utf8, false),
        Field::new("pk_column_name", DataType::Utf8, false),
        Field::new("fk_catalog_name", DataType::Utf8, true),
        Field::new("fk_db_schema_name", DataType::Utf8, true),
        Field::new("fk_table_name", DataType::Utf8, false),
        Field::new("fk_column_name", DataType::Utf8, false),
        Field::new("key_sequence", DataType::Int32, false),
        Field::new("fk_key_name", DataType::Utf8, true),
        Field::new("pk_key_name", DataType::Utf8, true),
        Field::new("update_rule", DataType::UInt8, false),
        Field::new("delete_rule", DataType::UInt8, false),
    ]))
}
