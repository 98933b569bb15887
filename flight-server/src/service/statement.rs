//! Statements: queries are planned at GetFlightInfo and streamed at DoGet,
//! commands (DDL, DML, SET) run at GetFlightInfo or DoPut.

use arrow::datatypes::{Schema, SchemaRef};
use arrow_flight::sql::{ProstMessageExt, TicketStatementQuery};
use arrow_flight::{FlightDescriptor, FlightInfo};
use bytes::Bytes;
use datafusion::common::ScalarValue;
use futures::TryStreamExt;
use prost::Message;
use seglake_engine::{Outcome, StatementKind};

use super::SeglakeFlightSql;
use super::encoding::{FlightDataStream, empty_stream, encode_stream, flight_info, wire_schema};
use crate::auth::ClientSession;
use crate::error::{Result, ServerError};
use crate::handle::{Payload, decode_params};

impl SeglakeFlightSql {
    /// GetFlightInfo for a statement: plans a query (ticket to run it at
    /// DoGet) or runs a command now (empty ticket).
    pub(super) async fn statement_info(
        &self,
        client: &ClientSession,
        sql: String,
        params: Option<String>,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo> {
        let session = &client.session;
        let bound = decode_bound(params.as_deref())?;
        let prepared = session.prepare(&sql, &bound).await?;
        if bound.len() != prepared.parameters.fields().len() {
            return Err(ServerError::InvalidArgument(format!(
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

    /// A statement ticket for `payload`, sealed for the caller.
    pub(super) fn ticket(&self, client: &ClientSession, payload: Payload) -> Bytes {
        statement_ticket(self.sealer.seal(client.user(), payload))
    }

    /// DoGet of a statement ticket or prepared statement handle.
    pub(super) async fn run_handle(
        &self,
        client: &ClientSession,
        handle: &[u8],
    ) -> Result<FlightDataStream> {
        let payload = self.sealer.open(client.user(), handle)?;
        let fetch = self.cancels.begin(handle)?;
        let stream = tokio::select! {
            biased;
            _ = fetch.cancelled() => return Err(super::cancel::cancelled()),
            stream = self.run_payload(client, handle, payload) => stream?,
        };
        Ok(fetch.watch(stream))
    }

    /// Runs the statement of a ticket: the plan kept for `handle` at
    /// GetFlightInfo if the session still has it, else the SQL planned again.
    async fn run_payload(
        &self,
        client: &ClientSession,
        handle: &[u8],
        payload: Payload,
    ) -> Result<FlightDataStream> {
        let outcome = match payload {
            Payload::Empty => return Ok(empty_stream()),
            Payload::Statement { sql, params } => match client.planned.take(handle) {
                Some(query) => client.session.run_planned(query).await,
                None => {
                    let values = decode_bound(params.as_deref())?;
                    client.session.execute(&sql, values).await
                }
            },
        };
        match outcome? {
            Outcome::Rows { schema, stream } => {
                Ok(encode_stream(schema, stream.map_err(ServerError::from)))
            }
            Outcome::Done { .. } => Ok(empty_stream()),
        }
    }
}

/// The parameter values a handle carries (none if it carries none).
pub(super) fn decode_bound(params: Option<&str>) -> Result<Vec<ScalarValue>> {
    Ok(params.map(decode_params).transpose()?.unwrap_or_default())
}

fn statement_ticket(handle: Bytes) -> Bytes {
    TicketStatementQuery {
        statement_handle: handle,
    }
    .as_any()
    .encode_to_vec()
    .into()
}

/// Runs a statement that returns no rows; its count of affected rows.
pub(super) async fn run_command(
    client: &ClientSession,
    sql: &str,
    values: Vec<ScalarValue>,
) -> Result<i64> {
    // Plans made before the command may read what it changes or removes.
    client.planned.clear();
    match client.session.execute(sql, values).await? {
        Outcome::Done { rows_affected } => Ok(rows_affected.map(|n| n as i64).unwrap_or(0)),
        Outcome::Rows { .. } => Err(ServerError::InvalidArgument(
            "this statement returns rows: run it as a query, not as an update".into(),
        )),
    }
}

/// The result schema of a SQL statement (GetSchema), as clients receive it.
pub(super) async fn sql_schema(client: &ClientSession, sql: &str) -> Result<SchemaRef> {
    let prepared = client.session.prepare(sql, &[]).await?;
    Ok(wire_schema(&prepared.schema))
}
