//! Prepared statements: created and closed by actions, bound by DoPut, run
//! by GetFlightInfo/DoGet (queries) or DoPut (updates).
//!
//! A prepared statement handle is sealed (see [`crate::handle`]) and carries
//! the SQL and its bound parameters: binding returns a new handle.

use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use arrow_flight::sql::server::PeekableFlightDataStream;
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, CommandPreparedStatementQuery,
    CommandPreparedStatementUpdate, DoPutPreparedStatementResult,
};
use arrow_flight::{FlightDescriptor, FlightInfo};
use seglake_engine::StatementKind;

use super::SeglakeFlightSql;
use super::encoding::{FlightDataStream, collect_put, flight_info, ipc_schema, wire_schema};
use super::statement::{decode_bound, run_command, sql_schema};
use crate::auth::ClientSession;
use crate::error::{Result, ServerError};
use crate::handle::{Payload, encode_params, row_values};

impl SeglakeFlightSql {
    /// CreatePreparedStatement: plans the statement for its schemas.
    pub(super) async fn create_prepared(
        &self,
        client: &ClientSession,
        query: ActionCreatePreparedStatementRequest,
    ) -> Result<ActionCreatePreparedStatementResult> {
        let prepared = client.session.prepare(&query.query, &[]).await?;
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

    /// ClosePreparedStatement: handles are self-contained, nothing to free,
    /// but the handle must be the caller's.
    pub(super) fn close_prepared(
        &self,
        client: &ClientSession,
        query: ActionClosePreparedStatementRequest,
    ) -> Result<()> {
        self.sealer
            .open(client.user(), &query.prepared_statement_handle)?;
        Ok(())
    }

    /// GetFlightInfo of a prepared statement, as for a statement.
    pub(super) async fn prepared_info(
        &self,
        client: &ClientSession,
        cmd: CommandPreparedStatementQuery,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo> {
        match self
            .sealer
            .open(client.user(), &cmd.prepared_statement_handle)?
        {
            Payload::Statement { sql, params } => {
                self.statement_info(client, sql, params, descriptor).await
            }
            Payload::Empty => flight_info(
                &Schema::empty(),
                self.ticket(client, Payload::Empty),
                descriptor,
            ),
        }
    }

    /// DoGet of a prepared statement.
    pub(super) async fn run_prepared(
        &self,
        client: &ClientSession,
        cmd: CommandPreparedStatementQuery,
    ) -> Result<FlightDataStream> {
        self.run_handle(client, &cmd.prepared_statement_handle)
            .await
    }

    /// GetSchema of a prepared statement.
    pub(super) async fn prepared_schema(
        &self,
        client: &ClientSession,
        cmd: CommandPreparedStatementQuery,
    ) -> Result<SchemaRef> {
        match self
            .sealer
            .open(client.user(), &cmd.prepared_statement_handle)?
        {
            Payload::Statement { sql, .. } => sql_schema(client, &sql).await,
            Payload::Empty => Ok(Arc::new(Schema::empty())),
        }
    }

    /// DoPut of a prepared query: binds one row of parameters, returns the
    /// handle that carries them.
    pub(super) async fn bind_prepared(
        &self,
        client: &ClientSession,
        query: CommandPreparedStatementQuery,
        stream: PeekableFlightDataStream,
    ) -> Result<DoPutPreparedStatementResult> {
        let Payload::Statement { sql, .. } = self
            .sealer
            .open(client.user(), &query.prepared_statement_handle)?
        else {
            return Err(ServerError::InvalidArgument(
                "this statement takes no parameters".into(),
            ));
        };
        let batches = collect_put(stream).await?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        if rows > 1 {
            return Err(ServerError::InvalidArgument(format!(
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

    /// DoPut of a prepared update: runs it with the bound parameters, or
    /// once per parameter row sent (executemany); the rows affected in all.
    pub(super) async fn prepared_update(
        &self,
        client: &ClientSession,
        query: CommandPreparedStatementUpdate,
        stream: PeekableFlightDataStream,
    ) -> Result<i64> {
        let (sql, bound) = match self
            .sealer
            .open(client.user(), &query.prepared_statement_handle)?
        {
            Payload::Statement { sql, params } => (sql, params),
            Payload::Empty => return Ok(0),
        };
        let batches = collect_put(stream).await?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        if rows == 0 {
            let values = decode_bound(bound.as_deref())?;
            return run_command(client, &sql, values).await;
        }
        let mut total = 0;
        for batch in &batches {
            for row in 0..batch.num_rows() {
                total += run_command(client, &sql, row_values(batch, row)?).await?;
            }
        }
        Ok(total)
    }
}
