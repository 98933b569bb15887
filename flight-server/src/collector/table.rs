//! The table the collector writes: found or created at startup, checked
//! against the event schema, and the batches written to it.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Float64Array, RecordBatch, RecordBatchOptions,
    StringArray, TimestampMicrosecondArray, new_null_array,
};
use arrow::compute::can_cast_types;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::common::{ScalarValue, TableReference};
use futures::TryStreamExt;
use seglake_catalog::{TableFormat, TableKind};
use seglake_engine::{Outcome, Session, cast_batch};
use tracing::info;

use super::event::Event;
use crate::error::{Result, ServerError};

/// Schema and name of the table the collector writes.
#[derive(Debug, Clone)]
pub struct Target {
    pub reference: TableReference,
    /// The table's columns, in its order (what an append must send).
    pub schema: SchemaRef,
    /// Whether the table has `received_at` (filled by the collector); the
    /// deduplication window is rebuilt from it after a restart.
    pub has_received_at: bool,
    pub has_event_date: bool,
}

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The type each known column is built with (cast to the table's type).
fn source_type(column: &str) -> Option<DataType> {
    Some(match column {
        "event_id" | "profile_id" | "device_id" | "event_type" | "channel" | "source"
        | "category" | "product_id" => DataType::Utf8,
        "event_time" | "received_at" => utc_micros(),
        "amount" => DataType::Float64,
        "event_date" => DataType::Date32,
        _ => return None,
    })
}

/// The statement that creates the collector's table when the warehouse has
/// none: the demo `events` columns, `received_at`, and `event_date` as the
/// partition column.
fn create_sql(reference: &TableReference) -> String {
    let ts = r#"'Timestamp(Microsecond, Some("UTC"))'"#;
    format!(
        "CREATE TABLE IF NOT EXISTS {reference} PARTITIONED BY (event_date) AS SELECT \
         arrow_cast(NULL, 'Utf8') AS event_id, \
         arrow_cast(NULL, 'Utf8') AS profile_id, \
         arrow_cast(NULL, 'Utf8') AS device_id, \
         arrow_cast(NULL, {ts}) AS event_time, \
         arrow_cast(NULL, 'Utf8') AS event_type, \
         arrow_cast(NULL, 'Utf8') AS channel, \
         arrow_cast(NULL, 'Utf8') AS source, \
         arrow_cast(NULL, 'Utf8') AS category, \
         arrow_cast(NULL, 'Utf8') AS product_id, \
         arrow_cast(NULL, 'Float64') AS amount, \
         arrow_cast(NULL, {ts}) AS received_at, \
         arrow_cast(NULL, 'Date32') AS event_date \
         WHERE false"
    )
}

/// Finds `schema.table` (creating it if missing) and checks that the
/// collector can append events to it.
pub async fn prepare(session: &Session, schema: &str, table: &str) -> Result<Target> {
    let reference = TableReference::partial(schema, table);
    let snapshot = session.engine().catalog().await?;
    if snapshot.state.table(schema, table).is_err() {
        info!(table = %reference, "creating the collector's table");
        session.execute(&create_sql(&reference), vec![]).await?;
    }
    let snapshot = session.engine().catalog().await?;
    let entry = snapshot
        .state
        .table(schema, table)
        .map_err(|e| ServerError::Config(format!("collector table {reference}: {e}")))?;
    if entry.format != TableFormat::Delta || entry.kind != TableKind::Managed {
        return Err(ServerError::Config(format!(
            "collector table {reference} is an external table (read-only): the collector writes a managed table"
        )));
    }
    let table_schema = Arc::new(entry.file_schema.clone());
    check_schema(&reference, &table_schema)?;
    let has = |name: &str| table_schema.field_with_name(name).is_ok();
    Ok(Target {
        has_received_at: has("received_at"),
        has_event_date: has("event_date"),
        reference,
        schema: table_schema,
    })
}

/// Every event column must be there with a type the value can be cast to;
/// other columns must be nullable (they are left NULL).
fn check_schema(reference: &TableReference, schema: &Schema) -> Result<()> {
    let bad = |why: String| ServerError::Config(format!("collector table {reference}: {why}"));
    for name in super::event::CLIENT_FIELDS {
        if schema.field_with_name(name).is_err() {
            return Err(bad(format!("has no column '{name}'")));
        }
    }
    for field in schema.fields() {
        match source_type(field.name()) {
            Some(t) if t == *field.data_type() || can_cast_types(&t, field.data_type()) => {}
            Some(t) => {
                return Err(bad(format!(
                    "column '{}' is {} where the collector writes {t}",
                    field.name(),
                    field.data_type()
                )));
            }
            None if field.is_nullable() => {}
            None => {
                return Err(bad(format!(
                    "column '{}' is not an event column and is NOT NULL",
                    field.name()
                )));
            }
        }
    }
    Ok(())
}

/// One row to write: the event and when its request arrived (UTC micros).
pub type Row<'a> = (&'a Event, i64);

/// The record batch of `rows` with exactly the table's schema.
pub fn build_batch(target: &Target, rows: &[Row<'_>]) -> Result<RecordBatch> {
    fn strings<'a>(rows: &'a [Row<'a>], f: impl Fn(&'a Event) -> Option<&'a str> + 'a) -> ArrayRef {
        Arc::new(rows.iter().map(|(e, _)| f(e)).collect::<StringArray>())
    }
    let mut columns = Vec::with_capacity(target.schema.fields().len());
    let mut fields = Vec::with_capacity(target.schema.fields().len());
    for field in target.schema.fields() {
        let column: ArrayRef = match field.name().as_str() {
            "event_id" => strings(rows, |e| Some(&e.event_id)),
            "profile_id" => strings(rows, |e| e.profile_id.as_deref()),
            "device_id" => strings(rows, |e| e.device_id.as_deref()),
            "event_type" => strings(rows, |e| Some(&e.event_type)),
            "channel" => strings(rows, |e| Some(&e.channel)),
            "source" => strings(rows, |e| Some(&e.source)),
            "category" => strings(rows, |e| e.category.as_deref()),
            "product_id" => strings(rows, |e| e.product_id.as_deref()),
            "event_time" => Arc::new(
                TimestampMicrosecondArray::from_iter_values(rows.iter().map(|(e, _)| e.event_time))
                    .with_timezone("UTC"),
            ),
            "received_at" => Arc::new(
                TimestampMicrosecondArray::from_iter_values(rows.iter().map(|(_, r)| *r))
                    .with_timezone("UTC"),
            ),
            "amount" => Arc::new(rows.iter().map(|(e, _)| e.amount).collect::<Float64Array>()),
            "event_date" => Arc::new(Date32Array::from_iter_values(
                rows.iter().map(|(e, _)| e.event_date()),
            )),
            _ => new_null_array(field.data_type(), rows.len()),
        };
        fields.push(Field::new(
            field.name(),
            column.data_type().clone(),
            field.is_nullable(),
        ));
        columns.push(column);
    }
    let options = RecordBatchOptions::new().with_row_count(Some(rows.len()));
    let batch =
        RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), columns, &options)?;
    Ok(cast_batch(&batch, &target.schema)?)
}

/// Appends one batch: one Delta commit.
pub async fn append(session: &Session, target: &Target, batch: RecordBatch) -> Result<u64> {
    let schema = batch.schema();
    let rows = session
        .ingest(
            &target.reference,
            seglake_engine::IngestMode::Append,
            schema,
            futures::stream::iter(vec![Ok(batch)]),
        )
        .await?;
    Ok(rows)
}

/// The ids of the events the table received since `since` (UTC micros),
/// with their arrival time: by `received_at` when the table has it, by
/// `event_time` otherwise (see docs/collector.md). Ids are hashed as they
/// are read (the deduplication set's keys), not copied.
pub async fn recent_ids(
    session: &Session,
    target: &Target,
    since: i64,
) -> Result<HashMap<super::DedupKey, i64>> {
    let ts = ScalarValue::TimestampMicrosecond(Some(since), Some("UTC".into()));
    let (time_column, params, extra) = if target.has_received_at {
        ("received_at", vec![ts], String::new())
    } else if target.has_event_date {
        let day = since.div_euclid(86_400_000_000) as i32;
        (
            "event_time",
            vec![ts, ScalarValue::Date32(Some(day))],
            " AND event_date >= ?".to_string(),
        )
    } else {
        ("event_time", vec![ts], String::new())
    };
    let sql = format!(
        "SELECT event_id, CAST({time_column} AS TIMESTAMP) FROM {} WHERE {time_column} >= ?{extra}",
        target.reference
    );
    let Outcome::Rows { stream, .. } = session.execute(&sql, params).await? else {
        return Err(ServerError::InvalidArgument(format!(
            "'{sql}' returned no rows"
        )));
    };
    let batches: Vec<RecordBatch> = stream.try_collect().await?;
    let mut out = HashMap::new();
    for batch in batches {
        let ids = arrow::compute::cast(batch.column(0), &DataType::Utf8)?;
        let times = arrow::compute::cast(
            batch.column(1),
            &DataType::Timestamp(TimeUnit::Microsecond, None),
        )?;
        let ids = ids.as_string::<i32>();
        let times = times.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        for i in 0..batch.num_rows() {
            if ids.is_valid(i) {
                out.insert(super::dedup_key(ids.value(i)), times.value(i));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(fields: Vec<Field>) -> Target {
        let schema = Arc::new(Schema::new(fields));
        Target {
            reference: TableReference::partial("public", "events"),
            has_received_at: schema.field_with_name("received_at").is_ok(),
            has_event_date: schema.field_with_name("event_date").is_ok(),
            schema,
        }
    }

    #[test]
    fn batch_follows_the_table_schema() {
        let mut fields: Vec<Field> = seglake_engine::demo::events_schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new("event_date", DataType::Date32, true));
        fields.push(Field::new("note", DataType::Utf8, true));
        let t = target(fields);
        check_schema(&t.reference, &t.schema).unwrap();
        let e = Event {
            event_id: "e1".into(),
            profile_id: None,
            device_id: Some("d".into()),
            event_time: 86_400_000_000 + 5,
            event_type: "t".into(),
            channel: "c".into(),
            source: "s".into(),
            category: None,
            product_id: None,
            amount: Some(1.5),
        };
        let batch = build_batch(&t, &[(&e, 7)]).unwrap();
        assert_eq!(batch.schema(), t.schema);
        assert_eq!(batch.num_rows(), 1);
        // The demo schema has received_at (filled), then event_date and note.
        let received_at = batch
            .column(10)
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        assert_eq!(received_at.value(0), 7);
        let date = batch
            .column(11)
            .as_primitive::<arrow::datatypes::Date32Type>();
        assert_eq!(date.value(0), 1);
        assert!(batch.column(12).is_null(0));
    }

    #[test]
    fn incompatible_tables_are_refused() {
        let t = target(vec![Field::new("event_id", DataType::Utf8, false)]);
        assert!(check_schema(&t.reference, &t.schema).is_err());
        let mut fields: Vec<Field> = seglake_engine::demo::events_schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new("score", DataType::Int32, false));
        let t = target(fields);
        let e = check_schema(&t.reference, &t.schema).unwrap_err();
        assert!(e.to_string().contains("score"), "{e}");
    }
}
