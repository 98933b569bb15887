//! The Flight SQL service.
//!
//! Every call except `Handshake` is authenticated by [`crate::auth_layer`],
//! which puts the caller's [`ClientSession`] in the request extensions.
//! Statements are planned at `GetFlightInfo` (queries) or run there
//! (commands: DDL, DML, SET), and streamed lazily at `DoGet`, which runs the
//! plan the session kept from `GetFlightInfo` ([`crate::planned`]) or plans
//! the SQL of the ticket again.

use std::pin::Pin;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::GetCatalogsBuilder;
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Any, CommandGetCatalogs, CommandGetCrossReference,
    CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys, CommandGetPrimaryKeys,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandPreparedStatementUpdate, CommandStatementIngest, CommandStatementQuery,
    CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::sql::{TableExistsOption, TableNotExistOption};
use arrow_flight::{
    Action, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse,
    IpcMessage, SchemaAsIpc, Ticket,
};
use datafusion::common::ScalarValue;
use datafusion::common::TableReference;
use futures::{Stream, StreamExt, TryStreamExt, stream};
use prost::Message;
use seglake_engine::{DEFAULT_CATALOG, IngestMode, Outcome, StatementKind, cast_batch};
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info};

use crate::auth::{ClientSession, Sessions, decode_basic, strip_scheme};
use crate::error::ServerError;
use crate::handle::{Payload, Sealer, decode_params, encode_params, row_values};
use crate::session_options;
use crate::sql_info::sql_info_data;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Seglake's implementation of the Flight SQL protocol.
#[derive(Debug, Clone)]
pub struct SeglakeFlightSql {
    pub(crate) sessions: Arc<Sessions>,
    sealer: Sealer,
}

/// The caller's session, put there by the auth layer.
pub(crate) fn client<T>(req: &Request<T>) -> Result<Arc<ClientSession>, Status> {
    req.extensions()
        .get::<Arc<ClientSession>>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("not logged in"))
}

fn ipc_schema(schema: &Schema) -> Result<bytes::Bytes, Status> {
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e: arrow::error::ArrowError| Status::internal(e.to_string()))?;
    Ok(bytes)
}

/// The schema as clients receive it: dictionaries are sent hydrated.
fn wire_schema(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new_with_metadata(
        schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Dictionary(_, value) => {
                    Arc::new(f.as_ref().clone().with_data_type(value.as_ref().clone()))
                }
                _ => Arc::clone(f),
            })
            .collect::<Vec<_>>(),
        schema.metadata().clone(),
    ))
}

fn flight_info(
    schema: &Schema,
    ticket: bytes::Bytes,
    descriptor: FlightDescriptor,
) -> Result<FlightInfo, Status> {
    let info = FlightInfo::new()
        .try_with_schema(&wire_schema(schema))
        .map_err(|e| Status::internal(e.to_string()))?
        .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
        .with_descriptor(descriptor)
        .with_total_records(-1)
        .with_total_bytes(-1);
    Ok(info)
}

/// Streams batches as Flight data with exactly `schema` (the FlightInfo
/// schema): batches are re-labelled or cast where DataFusion's physical
/// schema differs in nullability, metadata or dictionary encoding.
fn encode_stream<S>(schema: SchemaRef, batches: S) -> BoxStream<arrow_flight::FlightData>
where
    S: Stream<Item = Result<RecordBatch, ServerError>> + Send + 'static,
{
    let wire = wire_schema(&schema);
    let target = Arc::clone(&wire);
    let batches = batches.map(move |b| {
        let b = b.map_err(|e| FlightError::Tonic(Box::new(Status::from(e))))?;
        Ok(cast_batch(&b, &target)?)
    });
    let encoded = FlightDataEncoderBuilder::new()
        .with_schema(wire)
        .build(batches)
        .map_err(Status::from);
    Box::pin(encoded)
}

fn one_batch(batch: RecordBatch) -> BoxStream<arrow_flight::FlightData> {
    let schema = batch.schema();
    encode_stream(schema, stream::iter([Ok(batch)]))
}

fn ingest_mode(cmd: &CommandStatementIngest) -> Result<IngestMode, Status> {
    let opts = cmd.table_definition_options.unwrap_or_default();
    let if_not_exist = TableNotExistOption::try_from(opts.if_not_exist)
        .unwrap_or(TableNotExistOption::Unspecified);
    let if_exists =
        TableExistsOption::try_from(opts.if_exists).unwrap_or(TableExistsOption::Unspecified);
    use TableExistsOption as E;
    use TableNotExistOption as N;
    match (if_not_exist, if_exists) {
        (N::Create | N::Unspecified, E::Fail | E::Unspecified) => Ok(IngestMode::Create),
        (N::Fail, E::Append) => Ok(IngestMode::Append),
        (N::Create | N::Unspecified, E::Append) => Ok(IngestMode::CreateAppend),
        (N::Create | N::Unspecified, E::Replace) => Ok(IngestMode::Replace),
        (N::Fail, E::Replace) => Ok(IngestMode::Replace),
        (N::Fail, E::Fail | E::Unspecified) => Err(Status::invalid_argument(
            "ingest options allow neither creating nor changing the table",
        )),
    }
}

/// Decodes a DoPut stream (the command message first) into batches.
/// A message carrying only the descriptor (what clients send when there is
/// no data, e.g. an update without parameters) is skipped.
fn decode_put(stream: PeekableFlightDataStream) -> FlightRecordBatchStream {
    let data = stream.map_err(FlightError::from).try_filter(|d| {
        futures::future::ready(!(d.data_header.is_empty() && d.data_body.is_empty()))
    });
    FlightRecordBatchStream::new_from_flight_data(data)
}

/// All rows of all batches of a DoPut stream (parameter sets are small).
async fn collect_put(stream: PeekableFlightDataStream) -> Result<Vec<RecordBatch>, Status> {
    decode_put(stream).try_collect().await.map_err(Status::from)
}

impl SeglakeFlightSql {
    pub fn new(sessions: Arc<Sessions>) -> Self {
        Self {
            sessions,
            sealer: Sealer::random(),
        }
    }

    /// GetFlightInfo for a statement: plans a query (ticket to run it at
    /// DoGet) or runs a command now (empty ticket).
    async fn statement_info(
        &self,
        client: &ClientSession,
        sql: String,
        params: Option<String>,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo, Status> {
        let session = &client.session;
        let bound = params
            .as_deref()
            .map(decode_params)
            .transpose()?
            .unwrap_or_default();
        let prepared = session
            .prepare(&sql, &bound)
            .await
            .map_err(ServerError::from)?;
        if bound.len() != prepared.parameters.fields().len() {
            return Err(Status::invalid_argument(format!(
                "the statement has {} parameter(s) but {} value(s) were bound",
                prepared.parameters.fields().len(),
                bound.len()
            )));
        }
        match prepared.kind {
            StatementKind::Query => {
                let handle = self
                    .sealer
                    .seal(client.user(), Payload::Statement { sql, params });
                if let Some(query) = prepared.planned {
                    client.planned.keep(handle.clone(), query);
                }
                flight_info(&prepared.schema, statement_ticket(handle), descriptor)
            }
            StatementKind::Command => {
                run_command(client, &sql, bound).await?;
                let ticket = self.ticket(client, Payload::Empty);
                flight_info(&Schema::empty(), ticket, descriptor)
            }
        }
    }

    fn ticket(&self, client: &ClientSession, payload: Payload) -> bytes::Bytes {
        statement_ticket(self.sealer.seal(client.user(), payload))
    }

    /// Runs the statement of a ticket: the plan kept for `handle` at
    /// GetFlightInfo if the session still has it, else the SQL planned again.
    async fn run_payload(
        &self,
        client: &ClientSession,
        handle: &[u8],
        payload: Payload,
    ) -> Result<BoxStream<arrow_flight::FlightData>, Status> {
        let outcome = match payload {
            Payload::Empty => {
                return Ok(encode_stream(Arc::new(Schema::empty()), stream::empty()));
            }
            Payload::Statement { sql, params } => match client.planned.take(handle) {
                Some(query) => client.session.run_planned(query).await,
                None => {
                    let values = params
                        .as_deref()
                        .map(decode_params)
                        .transpose()?
                        .unwrap_or_default();
                    client.session.execute(&sql, values).await
                }
            },
        };
        match outcome.map_err(ServerError::from)? {
            Outcome::Rows { schema, stream } => {
                Ok(encode_stream(schema, stream.map_err(ServerError::from)))
            }
            Outcome::Done { .. } => Ok(encode_stream(Arc::new(Schema::empty()), stream::empty())),
        }
    }

    /// Lists tables for GetTables.
    async fn tables_batch(
        &self,
        client: &ClientSession,
        cmd: CommandGetTables,
    ) -> Result<RecordBatch, Status> {
        let include_schema = cmd.include_schema;
        let tables = client
            .session
            .tables(include_schema)
            .await
            .map_err(ServerError::from)?;
        let mut builder = cmd.into_builder();
        for t in tables {
            builder
                .append(
                    &t.catalog,
                    &t.schema,
                    &t.name,
                    t.table_type,
                    &wire_schema(&t.arrow_schema),
                )
                .map_err(|e| Status::internal(e.to_string()))?;
        }
        builder.build().map_err(|e| Status::internal(e.to_string()))
    }

    async fn schemas_batch(
        &self,
        client: &ClientSession,
        cmd: CommandGetDbSchemas,
    ) -> Result<RecordBatch, Status> {
        let schemas = client.session.schemas().await.map_err(ServerError::from)?;
        let mut builder = cmd.into_builder();
        for s in schemas {
            builder.append(DEFAULT_CATALOG, s);
        }
        builder.build().map_err(|e| Status::internal(e.to_string()))
    }
}

fn statement_ticket(handle: bytes::Bytes) -> bytes::Bytes {
    TicketStatementQuery {
        statement_handle: handle,
    }
    .as_any()
    .encode_to_vec()
    .into()
}

async fn run_command(
    client: &ClientSession,
    sql: &str,
    values: Vec<ScalarValue>,
) -> Result<i64, Status> {
    // Plans made before the command may read what it changes or removes.
    client.planned.clear();
    match client
        .session
        .execute(sql, values)
        .await
        .map_err(ServerError::from)?
    {
        Outcome::Done { rows_affected } => Ok(rows_affected.map(|n| n as i64).unwrap_or(0)),
        Outcome::Rows { .. } => Err(Status::invalid_argument(
            "this statement returns rows: run it as a query, not as an update",
        )),
    }
}

fn catalogs_batch(cmd: CommandGetCatalogs) -> Result<RecordBatch, Status> {
    let mut b: GetCatalogsBuilder = cmd.into_builder();
    b.append(DEFAULT_CATALOG);
    b.build().map_err(|e| Status::internal(e.to_string()))
}

fn table_types_batch(cmd: CommandGetTableTypes) -> Result<RecordBatch, Status> {
    let mut b = cmd.into_builder();
    b.append("TABLE");
    b.append("VIEW");
    b.build().map_err(|e| Status::internal(e.to_string()))
}

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

fn command_ticket(cmd: &impl ProstMessageExt) -> bytes::Bytes {
    cmd.as_any().encode_to_vec().into()
}

/// The schema a descriptor's command produces, for `GetSchema`.
pub(crate) async fn schema_for(
    service: &SeglakeFlightSql,
    client: &ClientSession,
    cmd: &[u8],
) -> Result<SchemaRef, Status> {
    let any = Any::decode(cmd).map_err(|e| Status::invalid_argument(e.to_string()))?;
    use arrow_flight::sql::Command;
    let command = Command::try_from(any).map_err(|e| Status::invalid_argument(e.to_string()))?;
    let sql_schema = |sql: String| async move {
        let p = client
            .session
            .prepare(&sql, &[])
            .await
            .map_err(ServerError::from)?;
        Ok::<_, Status>(wire_schema(&p.schema))
    };
    match command {
        Command::CommandStatementQuery(q) => sql_schema(q.query).await,
        Command::CommandPreparedStatementQuery(h) => {
            match service
                .sealer
                .open(client.user(), &h.prepared_statement_handle)?
            {
                Payload::Statement { sql, .. } => sql_schema(sql).await,
                Payload::Empty => Ok(Arc::new(Schema::empty())),
            }
        }
        Command::CommandGetCatalogs(c) => Ok(c.into_builder().schema()),
        Command::CommandGetDbSchemas(c) => Ok(c.into_builder().schema()),
        Command::CommandGetTables(c) => Ok(c.into_builder().schema()),
        Command::CommandGetTableTypes(c) => Ok(c.into_builder().schema()),
        Command::CommandGetSqlInfo(c) => Ok(c.into_builder(sql_info_data()).schema()),
        Command::CommandGetPrimaryKeys(_) => Ok(primary_keys_schema()),
        Command::CommandGetExportedKeys(_)
        | Command::CommandGetImportedKeys(_)
        | Command::CommandGetCrossReference(_) => Ok(foreign_keys_schema()),
        other => Err(Status::unimplemented(format!(
            "GetSchema is not supported for {}",
            other.type_url()
        ))),
    }
}

#[tonic::async_trait]
impl FlightSqlService for SeglakeFlightSql {
    type FlightService = SeglakeFlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let client = match header.as_deref() {
            Some(h) if strip_scheme(h, "basic").is_some() => {
                let (user, password) = decode_basic(strip_scheme(h, "basic").expect("checked"))?;
                self.sessions.login(&user, &password)?
            }
            Some(h) if strip_scheme(h, "bearer").is_some() => self
                .sessions
                .get(strip_scheme(h, "bearer").expect("checked").trim())?,
            _ => {
                // Older clients send arrow.flight.protocol.BasicAuth as the
                // handshake payload.
                let mut inbound = request.into_inner();
                let first = inbound
                    .message()
                    .await?
                    .ok_or_else(|| Status::unauthenticated("missing credentials"))?;
                let auth = arrow_flight::BasicAuth::decode(first.payload.as_ref())
                    .map_err(|_| Status::unauthenticated("missing credentials"))?;
                self.sessions.login(&auth.username, &auth.password)?
            }
        };
        let token = client.token.clone();
        let response = HandshakeResponse {
            protocol_version: 0,
            payload: token.clone().into(),
        };
        let mut resp: Response<
            Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>,
        > = Response::new(Box::pin(stream::iter([Ok(response)])));
        let value = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| Status::internal("token is not a valid header value"))?;
        resp.metadata_mut().insert("authorization", value);
        Ok(resp)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let client = client(&request)?;
        debug!(user = %client.user(), sql = %query.query, "statement");
        let info = self
            .statement_info(&client, query.query, None, request.into_inner())
            .await?;
        Ok(Response::new(info))
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let client = client(&request)?;
        let info = match self
            .sealer
            .open(client.user(), &cmd.prepared_statement_handle)?
        {
            Payload::Statement { sql, params } => {
                self.statement_info(&client, sql, params, request.into_inner())
                    .await?
            }
            Payload::Empty => flight_info(
                &Schema::empty(),
                self.ticket(&client, Payload::Empty),
                request.into_inner(),
            )?,
        };
        Ok(Response::new(info))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        Ok(Response::new(flight_info(
            &schema,
            command_ticket(&query),
            request.into_inner(),
        )?))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        Ok(Response::new(flight_info(
            &schema,
            command_ticket(&query),
            request.into_inner(),
        )?))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        Ok(Response::new(flight_info(
            &schema,
            command_ticket(&query),
            request.into_inner(),
        )?))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        Ok(Response::new(flight_info(
            &schema,
            command_ticket(&query),
            request.into_inner(),
        )?))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(sql_info_data()).schema();
        Ok(Response::new(flight_info(
            &schema,
            command_ticket(&query),
            request.into_inner(),
        )?))
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Ok(Response::new(flight_info(
            &primary_keys_schema(),
            command_ticket(&query),
            request.into_inner(),
        )?))
    }

    async fn get_flight_info_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Ok(Response::new(flight_info(
            &foreign_keys_schema(),
            command_ticket(&query),
            request.into_inner(),
        )?))
    }

    async fn get_flight_info_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Ok(Response::new(flight_info(
            &foreign_keys_schema(),
            command_ticket(&query),
            request.into_inner(),
        )?))
    }

    async fn get_flight_info_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Ok(Response::new(flight_info(
            &foreign_keys_schema(),
            command_ticket(&query),
            request.into_inner(),
        )?))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let client = client(&request)?;
        let handle = ticket.statement_handle;
        let payload = self.sealer.open(client.user(), &handle)?;
        Ok(Response::new(
            self.run_payload(&client, &handle, payload).await?,
        ))
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let client = client(&request)?;
        let handle = query.prepared_statement_handle;
        let payload = self.sealer.open(client.user(), &handle)?;
        Ok(Response::new(
            self.run_payload(&client, &handle, payload).await?,
        ))
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        Ok(Response::new(one_batch(catalogs_batch(query)?)))
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let client = client(&request)?;
        Ok(Response::new(one_batch(
            self.schemas_batch(&client, query).await?,
        )))
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let client = client(&request)?;
        Ok(Response::new(one_batch(
            self.tables_batch(&client, query).await?,
        )))
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        Ok(Response::new(one_batch(table_types_batch(query)?)))
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let batch = query
            .into_builder(sql_info_data())
            .build()
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(one_batch(batch)))
    }

    async fn do_get_primary_keys(
        &self,
        _query: CommandGetPrimaryKeys,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        Ok(Response::new(one_batch(RecordBatch::new_empty(
            primary_keys_schema(),
        ))))
    }

    async fn do_get_exported_keys(
        &self,
        _query: CommandGetExportedKeys,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        Ok(Response::new(one_batch(RecordBatch::new_empty(
            foreign_keys_schema(),
        ))))
    }

    async fn do_get_imported_keys(
        &self,
        _query: CommandGetImportedKeys,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        Ok(Response::new(one_batch(RecordBatch::new_empty(
            foreign_keys_schema(),
        ))))
    }

    async fn do_get_cross_reference(
        &self,
        _query: CommandGetCrossReference,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        Ok(Response::new(one_batch(RecordBatch::new_empty(
            foreign_keys_schema(),
        ))))
    }

    async fn do_put_statement_update(
        &self,
        cmd: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let client = client(&request)?;
        run_command(&client, &cmd.query, vec![]).await
    }

    async fn do_put_statement_ingest(
        &self,
        cmd: CommandStatementIngest,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let client = client(&request)?;
        if cmd.temporary {
            return Err(Status::unimplemented("temporary tables are not supported"));
        }
        if cmd.transaction_id.is_some() {
            return Err(Status::unimplemented("transactions are not supported"));
        }
        let mode = ingest_mode(&cmd)?;
        if let Some(catalog) = cmd.catalog.as_deref().filter(|c| *c != DEFAULT_CATALOG) {
            return Err(Status::not_found(format!("catalog '{catalog}' not found")));
        }
        let table = match cmd.schema.as_deref() {
            Some(schema) => TableReference::partial(schema, cmd.table.as_str()),
            None => TableReference::bare(cmd.table.as_str()),
        };
        let mut batches = decode_put(request.into_inner()).peekable();
        // The schema arrives with the first message, before any batch.
        let first = Pin::new(&mut batches).peek().await;
        if let Some(Err(e)) = first {
            return Err(Status::invalid_argument(format!(
                "invalid ingest stream: {e}"
            )));
        }
        let schema = batches
            .get_ref()
            .schema()
            .cloned()
            .ok_or_else(|| Status::invalid_argument("ingest stream has no schema"))?;
        let input = batches.map(|b| {
            b.map_err(|e| {
                seglake_engine::EngineError::InvalidArgument(format!("invalid ingest stream: {e}"))
            })
        });
        client.planned.clear();
        let rows = client
            .session
            .ingest(&table, mode, schema, input)
            .await
            .map_err(ServerError::from)?;
        info!(user = %client.user(), table = %table, ?mode, rows, "ingest");
        Ok(rows as i64)
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let client = client(&request)?;
        let Payload::Statement { sql, .. } = self
            .sealer
            .open(client.user(), &query.prepared_statement_handle)?
        else {
            return Err(Status::invalid_argument(
                "this statement takes no parameters",
            ));
        };
        let batches = collect_put(request.into_inner()).await?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        if rows > 1 {
            return Err(Status::invalid_argument(format!(
                "a query takes one row of parameters, got {rows}"
            )));
        }
        let params = match batches.iter().find(|b| b.num_rows() == 1) {
            Some(b) => Some(encode_params(b)?),
            None => None,
        };
        let handle = self
            .sealer
            .seal(client.user(), Payload::Statement { sql, params });
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(handle),
        })
    }

    async fn do_put_prepared_statement_update(
        &self,
        query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let client = client(&request)?;
        let (sql, bound) = match self
            .sealer
            .open(client.user(), &query.prepared_statement_handle)?
        {
            Payload::Statement { sql, params } => (sql, params),
            Payload::Empty => return Ok(0),
        };
        let batches = collect_put(request.into_inner()).await?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        if rows == 0 {
            let values = bound
                .as_deref()
                .map(decode_params)
                .transpose()?
                .unwrap_or_default();
            return run_command(&client, &sql, values).await;
        }
        // executemany: once per parameter row.
        let mut total = 0;
        for batch in &batches {
            for row in 0..batch.num_rows() {
                total += run_command(&client, &sql, row_values(batch, row)?).await?;
            }
        }
        Ok(total)
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let client = client(&request)?;
        let prepared = client
            .session
            .prepare(&query.query, &[])
            .await
            .map_err(ServerError::from)?;
        let handle = self.sealer.seal(
            client.user(),
            Payload::Statement {
                sql: query.query,
                params: None,
            },
        );
        let dataset = match prepared.kind {
            StatementKind::Query => wire_schema(&prepared.schema),
            StatementKind::Command => Arc::new(Schema::empty()),
        };
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle,
            dataset_schema: ipc_schema(&dataset)?,
            parameter_schema: ipc_schema(&prepared.parameters)?,
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        // Handles are self-contained: nothing to free, but the handle must
        // be the caller's.
        let client = client(&request)?;
        self.sealer
            .open(client.user(), &query.prepared_statement_handle)?;
        Ok(())
    }

    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        let client = client(&request)?;
        let body =
            session_options::handle_action(&self.sessions, &client, request.into_inner()).await?;
        Ok(Response::new(Box::pin(stream::iter([Ok(
            arrow_flight::Result { body },
        )]))))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
