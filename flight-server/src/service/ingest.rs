//! Bulk ingest: DoPut `CommandStatementIngest` (ADBC `adbc_ingest`).

use std::pin::Pin;

use arrow_flight::sql::server::PeekableFlightDataStream;
use arrow_flight::sql::{CommandStatementIngest, TableExistsOption, TableNotExistOption};
use datafusion::common::TableReference;
use futures::StreamExt;
use seglake_engine::{DEFAULT_CATALOG, EngineError, IngestMode};
use tracing::info;

use super::encoding::{decode_put, put_error};
use crate::auth::ClientSession;
use crate::error::{Result, ServerError};

/// Writes the batches of a DoPut stream to the command's table; the number
/// of rows written.
pub(super) async fn ingest(
    client: &ClientSession,
    cmd: CommandStatementIngest,
    stream: PeekableFlightDataStream,
) -> Result<i64> {
    if cmd.temporary {
        return Err(ServerError::Unimplemented(
            "temporary tables are not supported".into(),
        ));
    }
    if cmd.transaction_id.is_some() {
        return Err(ServerError::Unimplemented(
            "transactions are not supported".into(),
        ));
    }
    let mode = ingest_mode(&cmd)?;
    if let Some(catalog) = cmd.catalog.as_deref().filter(|c| *c != DEFAULT_CATALOG) {
        return Err(ServerError::NotFound(format!(
            "catalog '{catalog}' not found"
        )));
    }
    let table = match cmd.schema.as_deref() {
        Some(schema) => TableReference::partial(schema, cmd.table.as_str()),
        None => TableReference::bare(cmd.table.as_str()),
    };
    let mut batches = decode_put(stream).peekable();
    // The schema arrives with the first message, before any batch.
    let first = Pin::new(&mut batches).peek().await;
    if let Some(Err(_)) = first
        && let Some(Err(e)) = batches.next().await
    {
        return Err(put_error(e));
    }
    let schema = batches
        .get_ref()
        .schema()
        .cloned()
        .ok_or_else(|| ServerError::InvalidArgument("ingest stream has no schema".into()))?;
    let input = batches.map(|b| {
        b.map_err(|e| EngineError::InvalidArgument(format!("invalid ingest stream: {e}")))
    });
    client.planned.clear();
    let rows = client.session.ingest(&table, mode, schema, input).await?;
    info!(user = %client.user(), table = %table, ?mode, rows, "ingest");
    Ok(rows as i64)
}

/// The ingest mode the command's table definition options ask for.
fn ingest_mode(cmd: &CommandStatementIngest) -> Result<IngestMode> {
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
        (N::Fail, E::Fail | E::Unspecified) => Err(ServerError::InvalidArgument(
            "ingest options allow neither creating nor changing the table".into(),
        )),
    }
}
