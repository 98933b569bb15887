//! Conforming Arrow batches to a target schema, shared by ingest (batches
//! written to a table) and the Flight SQL read path (result batches sent
//! with the schema announced in the `FlightInfo`).

use std::sync::Arc;

use arrow::array::{RecordBatch, RecordBatchOptions};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;

/// `batch` with exactly the schema `target` (same columns in the same
/// order): columns of another type are cast, names, nullability and metadata
/// are taken from `target`.
pub fn cast_batch(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    if batch.schema_ref() == target {
        return Ok(batch.clone());
    }
    let columns = batch
        .columns()
        .iter()
        .zip(target.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(Arc::clone(c))
            } else {
                // A value that does not fit is an error, never a NULL.
                cast_with_options(
                    c,
                    f.data_type(),
                    &CastOptions {
                        safe: false,
                        ..Default::default()
                    },
                )
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(Arc::clone(target), columns, &options)
}
