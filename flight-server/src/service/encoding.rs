//! Arrow data on the wire: schemas as clients receive them, result batches
//! encoded as Flight data with exactly the schema their `FlightInfo`
//! announced, and DoPut streams decoded into batches.

use std::pin::Pin;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::sql::server::PeekableFlightDataStream;
use arrow_flight::{
    FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, IpcMessage, SchemaAsIpc, Ticket,
};
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt, stream};
use seglake_engine::cast_batch;

use crate::error::{Result, ServerError};

/// A result as Flight data (errors become statuses at the trait boundary).
pub(super) type FlightDataStream = Pin<Box<dyn Stream<Item = Result<FlightData>> + Send + 'static>>;

/// A schema as an IPC message (prepared statement results).
pub(super) fn ipc_schema(schema: &Schema) -> Result<Bytes> {
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(ServerError::internal)?;
    Ok(bytes)
}

/// The schema as clients receive it: dictionaries are sent hydrated.
pub(super) fn wire_schema(schema: &Schema) -> SchemaRef {
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

/// The `FlightInfo` of a result with `schema`, fetched with `ticket`.
pub(super) fn flight_info(
    schema: &Schema,
    ticket: Bytes,
    descriptor: FlightDescriptor,
) -> Result<FlightInfo> {
    let info = FlightInfo::new()
        .try_with_schema(&wire_schema(schema))
        .map_err(ServerError::internal)?
        .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
        .with_descriptor(descriptor)
        .with_total_records(-1)
        .with_total_bytes(-1);
    Ok(info)
}

/// `batch` with exactly the wire schema `target`: DataFusion's physical
/// schema may differ in nullability, metadata or dictionary encoding.
fn conform(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch> {
    cast_batch(batch, target).map_err(ServerError::internal)
}

/// Streams batches as Flight data with exactly `schema` (the FlightInfo
/// schema, sent as [`wire_schema`]): batches are re-labelled or cast where
/// they differ from it.
pub(super) fn encode_stream<S>(schema: SchemaRef, batches: S) -> FlightDataStream
where
    S: Stream<Item = Result<RecordBatch>> + Send + 'static,
{
    let wire = wire_schema(&schema);
    let target = Arc::clone(&wire);
    // Our errors cross the encoder as external errors and come out as they
    // went in (see `from_encoder`).
    let batches = batches.map(move |b| {
        b.and_then(|b| conform(&b, &target))
            .map_err(|e| FlightError::ExternalError(Box::new(e)))
    });
    let encoded = FlightDataEncoderBuilder::new()
        .with_schema(wire)
        .build(batches)
        .map_err(from_encoder);
    Box::pin(encoded)
}

/// An error out of the encoder: ours as it was, or the encoder's own.
fn from_encoder(e: FlightError) -> ServerError {
    match e {
        FlightError::ExternalError(e) => match e.downcast::<ServerError>() {
            Ok(e) => *e,
            Err(e) => ServerError::Flight(FlightError::ExternalError(e)),
        },
        e => ServerError::Flight(e),
    }
}

/// A result without rows or columns (commands, empty statements).
pub(super) fn empty_stream() -> FlightDataStream {
    encode_stream(Arc::new(Schema::empty()), stream::empty())
}

/// A result of one batch (metadata).
pub(super) fn one_batch(batch: RecordBatch) -> FlightDataStream {
    let schema = batch.schema();
    encode_stream(schema, stream::iter([Ok(batch)]))
}

/// Decodes a DoPut stream (the command message first) into batches.
/// A message carrying only the descriptor (what clients send when there is
/// no data, e.g. an update without parameters) is skipped.
pub(super) fn decode_put(stream: PeekableFlightDataStream) -> FlightRecordBatchStream {
    let data = stream
        .map_err(FlightError::from)
        .try_filter(|d| {
            futures::future::ready(!(d.data_header.is_empty() && d.data_body.is_empty()))
        })
        .and_then(|d| futures::future::ready(check_body(&d).map(|()| d)));
    FlightRecordBatchStream::new_from_flight_data(data)
}

/// Refuses a batch message whose buffers lie outside the body sent with
/// it: arrow-ipc 59 trusts the header's offsets and panics slicing past
/// the end of a short body (a truncated or hostile DoPut).
fn check_body(d: &FlightData) -> Result<(), FlightError> {
    use arrow::ipc::MessageHeader;
    let Ok(message) = arrow::ipc::root_as_message(&d.data_header) else {
        // The decoder reports a header that does not parse.
        return Ok(());
    };
    let batch = match message.header_type() {
        MessageHeader::RecordBatch => message.header_as_record_batch(),
        MessageHeader::DictionaryBatch => {
            message.header_as_dictionary_batch().and_then(|b| b.data())
        }
        _ => None,
    };
    let Some(batch) = batch else {
        return Ok(());
    };
    let body = d.data_body.len() as i64;
    let short = |what: String| {
        FlightError::DecodeError(format!("{what}, but the message body has {body} bytes"))
    };
    if message.bodyLength() > body {
        return Err(short(format!(
            "the message declares a body of {} bytes",
            message.bodyLength()
        )));
    }
    for b in batch.buffers().into_iter().flatten() {
        let end = b.offset().checked_add(b.length());
        if b.offset() < 0 || b.length() < 0 || end.is_none_or(|end| end > body) {
            return Err(short(format!(
                "a buffer at offset {} of {} bytes",
                b.offset(),
                b.length()
            )));
        }
    }
    Ok(())
}

/// A DoPut stream that does not decode: the client's data (INVALID_ARGUMENT),
/// unless it is a status of the transport (a message over the size limit,
/// the client going away), which keeps its code.
pub(super) fn put_error(e: FlightError) -> ServerError {
    match e {
        FlightError::Tonic(s) => ServerError::Flight(FlightError::Tonic(s)),
        e => ServerError::InvalidArgument(format!("invalid Arrow IPC data in DoPut: {e}")),
    }
}

/// Parameter rows one DoPut may bind at most (each runs the statement once).
const MAX_PARAMETER_ROWS: usize = 100_000;
/// Decoded parameter batches one DoPut may hold at most, in bytes.
const MAX_PARAMETER_BYTES: usize = 64 * 1024 * 1024;

/// All rows of all batches of a DoPut stream of parameters: held in memory
/// together, so bounded (RESOURCE_EXHAUSTED past [`MAX_PARAMETER_ROWS`] or
/// [`MAX_PARAMETER_BYTES`], before the rest of the stream is read).
pub(super) async fn collect_put(stream: PeekableFlightDataStream) -> Result<Vec<RecordBatch>> {
    let mut decoded = decode_put(stream);
    let (mut batches, mut rows, mut bytes) = (vec![], 0usize, 0usize);
    while let Some(batch) = decoded.try_next().await.map_err(put_error)? {
        rows += batch.num_rows();
        bytes += batch.get_array_memory_size();
        if rows > MAX_PARAMETER_ROWS || bytes > MAX_PARAMETER_BYTES {
            return Err(datafusion::error::DataFusionError::ResourcesExhausted(format!(
                "the parameters of one call are limited to {MAX_PARAMETER_ROWS} rows and {} MiB",
                MAX_PARAMETER_BYTES >> 20
            ))
            .into());
        }
        batches.push(batch);
    }
    Ok(batches)
}
