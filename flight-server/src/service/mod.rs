//! The Flight SQL service.
//!
//! Every call except `Handshake` is authenticated by [`crate::auth_layer`],
//! which puts the caller's [`ClientSession`] in the request extensions.
//! Statements are planned at `GetFlightInfo` (queries) or run there
//! (commands: DDL, DML, SET), and streamed lazily at `DoGet`, which runs the
//! plan the session kept from `GetFlightInfo` ([`crate::planned`]) or plans
//! the SQL of the ticket again.
//!
//! By concern: `statement.rs` (queries, updates, DoGet of statement
//! tickets), `prepared.rs` (prepared statements), `metadata.rs` (catalogs,
//! schemas, tables, SQL info, keys), `ingest.rs` (bulk ingest),
//! `handshake.rs` (login), `encoding.rs` (results as Flight data, DoPut
//! streams as batches). They return [`ServerError`]s; the trait
//! implementation below only delegates, and its `?` is the one place where
//! those become gRPC statuses (through [`crate::error`]).

mod cancel;
mod encoding;
mod handshake;
mod ingest;
mod metadata;
mod prepared;
mod statement;

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::server::{DoPutError, FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionCancelQueryRequest, ActionCancelQueryResult, ActionClosePreparedStatementRequest,
    ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult, Any, Command,
    CommandGetCatalogs, CommandGetCrossReference, CommandGetDbSchemas, CommandGetExportedKeys,
    CommandGetImportedKeys, CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTableTypes,
    CommandGetTables, CommandPreparedStatementQuery, CommandPreparedStatementUpdate,
    CommandStatementIngest, CommandStatementQuery, CommandStatementUpdate,
    DoPutPreparedStatementResult, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{Action, FlightDescriptor, FlightInfo, HandshakeRequest, Ticket};
use futures::{TryStreamExt, stream};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};
use tracing::debug;

use self::encoding::FlightDataStream;
use self::handshake::HandshakeStream;
use self::metadata::Metadata;
use crate::auth::{ClientSession, Sessions};
use crate::error::{Result, ServerError};
use crate::handle::Sealer;
use crate::session_options;

/// Seglake's implementation of the Flight SQL protocol.
#[derive(Debug, Clone)]
pub struct SeglakeFlightSql {
    pub(crate) sessions: Arc<Sessions>,
    sealer: Sealer,
    /// Tickets being fetched and cancelled ones (`CancelFlightInfo`).
    cancels: Arc<cancel::Cancels>,
}

impl SeglakeFlightSql {
    pub fn new(sessions: Arc<Sessions>) -> Self {
        Self {
            sessions,
            sealer: Sealer::random(),
            cancels: Arc::default(),
        }
    }
}

/// The caller's session, put there by the auth layer.
pub(crate) fn client<T>(req: &Request<T>) -> Result<Arc<ClientSession>> {
    req.extensions()
        .get::<Arc<ClientSession>>()
        .cloned()
        .ok_or_else(|| ServerError::Unauthenticated("not logged in".into()))
}

/// The schema a descriptor's command produces, for `GetSchema`.
pub(crate) async fn schema_for(
    service: &SeglakeFlightSql,
    client: &ClientSession,
    cmd: &[u8],
) -> Result<SchemaRef> {
    let any = Any::decode(cmd).map_err(|e| ServerError::InvalidArgument(e.to_string()))?;
    let command =
        Command::try_from(any).map_err(|e| ServerError::InvalidArgument(e.to_string()))?;
    match command {
        Command::CommandStatementQuery(q) => statement::sql_schema(client, &q.query).await,
        Command::CommandPreparedStatementQuery(h) => service.prepared_schema(client, h).await,
        Command::CommandGetCatalogs(c) => Ok(c.schema()),
        Command::CommandGetDbSchemas(c) => Ok(c.schema()),
        Command::CommandGetTables(c) => Ok(c.schema()),
        Command::CommandGetTableTypes(c) => Ok(c.schema()),
        Command::CommandGetSqlInfo(c) => Ok(c.schema()),
        Command::CommandGetPrimaryKeys(c) => Ok(c.schema()),
        Command::CommandGetExportedKeys(c) => Ok(c.schema()),
        Command::CommandGetImportedKeys(c) => Ok(c.schema()),
        Command::CommandGetCrossReference(c) => Ok(c.schema()),
        other => Err(ServerError::Unimplemented(format!(
            "GetSchema is not supported for {}",
            other.type_url()
        ))),
    }
}

type DoGetStream = <SeglakeFlightSql as FlightService>::DoGetStream;
type DoActionStream = <SeglakeFlightSql as FlightService>::DoActionStream;

/// A result stream, its errors turned into statuses.
fn data(stream: FlightDataStream) -> Response<DoGetStream> {
    Response::new(Box::pin(stream.map_err(Status::from)))
}

/// GetFlightInfo of a metadata command.
fn metadata_info<C: Metadata>(
    cmd: C,
    request: Request<FlightDescriptor>,
) -> Result<Response<FlightInfo>, Status> {
    Ok(Response::new(metadata::flight_info(
        &cmd,
        request.into_inner(),
    )?))
}

/// DoGet of a metadata command.
async fn metadata_rows<C: Metadata>(
    cmd: C,
    request: Request<Ticket>,
) -> Result<Response<DoGetStream>, Status> {
    let client = client(&request)?;
    Ok(data(metadata::rows(cmd, &client).await?))
}

#[tonic::async_trait]
impl FlightSqlService for SeglakeFlightSql {
    type FlightService = SeglakeFlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<HandshakeStream>, Status> {
        Ok(self.handshake(request).await?)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let client = client(&request)?;
        // Never the text: it may hold a destination's secret or personal
        // data; the pipeline logs the statement's id, kind and read/write set.
        debug!(user = %client.user(), bytes = query.query.len(), "statement");
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
        let info = self
            .prepared_info(&client, cmd, request.into_inner())
            .await?;
        Ok(Response::new(info))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(query, request)
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(query, request)
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(query, request)
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(query, request)
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(query, request)
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(query, request)
    }

    async fn get_flight_info_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(query, request)
    }

    async fn get_flight_info_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(query, request)
    }

    async fn get_flight_info_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(query, request)
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let client = client(&request)?;
        Ok(data(
            self.run_handle(&client, &ticket.statement_handle).await?,
        ))
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let client = client(&request)?;
        Ok(data(self.run_prepared(&client, query).await?))
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        metadata_rows(query, request).await
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        metadata_rows(query, request).await
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        metadata_rows(query, request).await
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        metadata_rows(query, request).await
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        metadata_rows(query, request).await
    }

    async fn do_get_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        metadata_rows(query, request).await
    }

    async fn do_get_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        metadata_rows(query, request).await
    }

    async fn do_get_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        metadata_rows(query, request).await
    }

    async fn do_get_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        metadata_rows(query, request).await
    }

    async fn do_put_statement_update(
        &self,
        cmd: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let client = client(&request)?;
        Ok(statement::run_command(&client, &cmd.query, vec![]).await?)
    }

    async fn do_put_statement_ingest(
        &self,
        cmd: CommandStatementIngest,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let client = client(&request)?;
        Ok(ingest::ingest(&client, cmd, request.into_inner()).await?)
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let client = client(&request)?;
        Ok(self
            .bind_prepared(&client, query, request.into_inner())
            .await?)
    }

    async fn do_put_prepared_statement_update(
        &self,
        query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let client = client(&request)?;
        Ok(self
            .prepared_update(&client, query, request.into_inner())
            .await?)
    }

    /// A DoPut without a command or descriptor is the client's mistake
    /// (arrow-flight's default answers UNIMPLEMENTED).
    async fn do_put_error_callback(
        &self,
        _request: Request<PeekableFlightDataStream>,
        error: DoPutError,
    ) -> Result<Response<<Self as FlightService>::DoPutStream>, Status> {
        Err(ServerError::InvalidArgument(format!("invalid DoPut: {error}")).into())
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let client = client(&request)?;
        Ok(self.create_prepared(&client, query).await?)
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        let client = client(&request)?;
        Ok(self.close_prepared(&client, query)?)
    }

    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> Result<Response<DoActionStream>, Status> {
        let client = client(&request)?;
        let action = request.into_inner();
        let body = match action.r#type.as_str() {
            "CancelFlightInfo" => self.cancel_flight_info(&client, &action.body)?,
            _ => session_options::handle_action(&self.sessions, &client, action).await?,
        };
        Ok(Response::new(Box::pin(stream::iter([Ok(
            arrow_flight::Result { body },
        )]))))
    }

    async fn do_action_cancel_query(
        &self,
        query: ActionCancelQueryRequest,
        request: Request<Action>,
    ) -> Result<ActionCancelQueryResult, Status> {
        let client = client(&request)?;
        Ok(self.cancel_query(&client, query)?)
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
