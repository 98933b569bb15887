//! System tables of segments and activation:
//!
//! - from the catalog: `system.segments`, `system.segment_versions`,
//!   `system.destinations`;
//! - views over the `segment_data` tables: `system.segment_history`,
//!   `system.segment_changes`, `system.segment_overlap`,
//!   `system.activations`.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::error::Result;
use seglake_catalog::{DestinationKind, SEGMENT_DATA_SCHEMA, Snapshot};

use super::activation::activations_schema;
use super::plan_view;
use super::refresh::{
    ACTIVATIONS_TABLE, CHANGES_TABLE, HISTORY_TABLE, changes_schema, history_schema,
};
use crate::Engine;

pub(crate) const TABLES: &[&str] = &[
    "activations",
    "destinations",
    "segment_changes",
    "segment_history",
    "segment_overlap",
    "segment_versions",
    "segments",
];

/// The provider of system table `name`, if it is one of these.
pub(crate) async fn table(
    engine: &Arc<Engine>,
    snapshot: &Arc<Snapshot>,
    name: &str,
) -> Result<Option<Arc<dyn TableProvider>>> {
    let source = |table: &str, schema: SchemaRef| {
        if snapshot.state.table(SEGMENT_DATA_SCHEMA, table).is_ok() {
            format!("{SEGMENT_DATA_SCHEMA}.\"{table}\"")
        } else {
            empty_relation(&schema)
        }
    };
    let sql = match name {
        "segments" => return memory(segments(snapshot)),
        "segment_versions" => return memory(segment_versions(snapshot)),
        "destinations" => return memory(destinations(snapshot)),
        "segment_history" => format!(
            "SELECT segment, version, refreshed_at, size, entered, exited, duration_ms, \
             refresh_id, snapshot_version FROM {}",
            source(HISTORY_TABLE, history_schema())
        ),
        "segment_changes" => format!(
            "SELECT c.segment, c.profile_id, c.change, c.at, c.refresh_id FROM {} c \
             WHERE c.refresh_id IN (SELECT refresh_id FROM {})",
            source(CHANGES_TABLE, changes_schema()),
            source(HISTORY_TABLE, history_schema())
        ),
        "activations" => format!(
            "SELECT destination, segment, refresh_id, change, rows_sent, status, error, \
             attempts, target, at FROM {}",
            source(ACTIVATIONS_TABLE, activations_schema())
        ),
        "segment_overlap" => overlap_sql(snapshot),
        _ => return Ok(None),
    };
    plan_view(engine, snapshot, &sql).await.map(Some)
}

/// A relation with `schema` and no rows, as SQL.
fn empty_relation(schema: &Schema) -> String {
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("arrow_cast(NULL, '{}') AS \"{}\"", f.data_type(), f.name()))
        .collect();
    format!("(SELECT {} WHERE false)", columns.join(", "))
}

fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Every pair of refreshed segments: sizes at the last refresh,
/// intersection and Jaccard index.
fn overlap_sql(snapshot: &Snapshot) -> String {
    let refreshed: Vec<&String> = snapshot
        .state
        .segments
        .iter()
        .filter(|(name, e)| {
            e.last_refresh.is_some() && snapshot.state.table(SEGMENT_DATA_SCHEMA, name).is_ok()
        })
        .map(|(name, _)| name)
        .collect();
    if refreshed.len() < 2 {
        return "SELECT arrow_cast(NULL, 'Utf8') AS segment_a, arrow_cast(NULL, 'Utf8') AS segment_b, \
                arrow_cast(NULL, 'Int64') AS size_a, arrow_cast(NULL, 'Int64') AS size_b, \
                arrow_cast(NULL, 'Int64') AS intersection, arrow_cast(NULL, 'Float64') AS jaccard \
                WHERE false"
            .to_string();
    }
    let members: Vec<String> = refreshed
        .iter()
        .map(|name| {
            format!(
                "SELECT {} AS segment, profile_id FROM {SEGMENT_DATA_SCHEMA}.\"{}\"",
                sql_string(name),
                name.replace('"', "\"\"")
            )
        })
        .collect();
    let names: Vec<String> = refreshed
        .iter()
        .map(|n| format!("({})", sql_string(n)))
        .collect();
    format!(
        "WITH m AS ({members}), \
         s AS (SELECT column1 AS segment FROM (VALUES {names})), \
         c AS (SELECT segment, count(*) AS size FROM m GROUP BY segment), \
         sz AS (SELECT s.segment, COALESCE(c.size, 0) AS size FROM s LEFT JOIN c ON s.segment = c.segment), \
         i AS (SELECT x.segment AS a, y.segment AS b, count(*) AS n FROM m x JOIN m y \
               ON x.profile_id = y.profile_id AND x.segment < y.segment GROUP BY x.segment, y.segment) \
         SELECT sa.segment AS segment_a, sb.segment AS segment_b, sa.size AS size_a, sb.size AS size_b, \
                COALESCE(i.n, 0) AS intersection, \
                CASE WHEN sa.size + sb.size - COALESCE(i.n, 0) = 0 THEN 0.0 \
                     ELSE CAST(COALESCE(i.n, 0) AS DOUBLE) / CAST(sa.size + sb.size - COALESCE(i.n, 0) AS DOUBLE) END AS jaccard \
         FROM sz sa JOIN sz sb ON sa.segment < sb.segment \
         LEFT JOIN i ON i.a = sa.segment AND i.b = sb.segment",
        members = members.join(" UNION ALL "),
        names = names.join(", "),
    )
}

fn memory(batch: RecordBatch) -> Result<Option<Arc<dyn TableProvider>>> {
    let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
    Ok(Some(Arc::new(table)))
}

fn utc_ms() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

fn strings<'a>(values: impl IntoIterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(StringArray::from_iter(values))
}

fn times(values: impl IntoIterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from_iter(values).with_timezone("UTC"))
}

fn segments(snapshot: &Snapshot) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("comment", DataType::Utf8, true),
        Field::new("version", DataType::Int64, false),
        Field::new("refresh_every", DataType::Utf8, true),
        Field::new("size", DataType::Int64, true),
        Field::new("last_refreshed_at", utc_ms(), true),
        Field::new("activations", DataType::Utf8, true),
        Field::new("depends_on", DataType::Utf8, true),
        Field::new("author", DataType::Utf8, false),
        Field::new("updated_at", utc_ms(), false),
    ]));
    let entries: Vec<_> = snapshot.state.segments.iter().collect();
    let activations: Vec<String> = entries
        .iter()
        .map(|(_, e)| {
            e.activations
                .iter()
                .map(|a| a.destination.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect();
    let depends: Vec<String> = entries
        .iter()
        .map(|(_, e)| e.current().depends_on.join(", "))
        .collect();
    let columns: Vec<ArrayRef> = vec![
        strings(entries.iter().map(|(n, _)| Some(n.as_str()))),
        strings(entries.iter().map(|(_, e)| e.current().comment.as_deref())),
        Arc::new(Int64Array::from_iter_values(
            entries.iter().map(|(_, e)| e.current().version as i64),
        )),
        strings(
            entries
                .iter()
                .map(|(_, e)| e.refresh_every.as_ref().map(|r| r.text.as_str())),
        ),
        Arc::new(Int64Array::from_iter(
            entries
                .iter()
                .map(|(_, e)| e.last_refresh.as_ref().map(|r| r.size as i64)),
        )),
        times(
            entries
                .iter()
                .map(|(_, e)| e.last_refresh.as_ref().map(|r| r.at.timestamp_millis())),
        ),
        strings(
            activations
                .iter()
                .map(|a| Some(a.as_str()).filter(|s| !s.is_empty())),
        ),
        strings(
            depends
                .iter()
                .map(|d| Some(d.as_str()).filter(|s| !s.is_empty())),
        ),
        strings(
            entries
                .iter()
                .map(|(_, e)| Some(e.current().author.as_str())),
        ),
        times(
            entries
                .iter()
                .map(|(_, e)| Some(e.current().created_at.timestamp_millis())),
        ),
    ];
    RecordBatch::try_new(schema, columns).expect("schema matches columns")
}

fn segment_versions(snapshot: &Snapshot) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("segment", DataType::Utf8, false),
        Field::new("version", DataType::Int64, false),
        Field::new("created_at", utc_ms(), false),
        Field::new("author", DataType::Utf8, false),
        Field::new("comment", DataType::Utf8, true),
        Field::new("depends_on", DataType::Utf8, true),
        Field::new("sql", DataType::Utf8, false),
    ]));
    let rows: Vec<_> = snapshot
        .state
        .segments
        .iter()
        .flat_map(|(n, e)| e.versions.iter().map(move |v| (n, v)))
        .collect();
    let depends: Vec<String> = rows.iter().map(|(_, v)| v.depends_on.join(", ")).collect();
    let columns: Vec<ArrayRef> = vec![
        strings(rows.iter().map(|(n, _)| Some(n.as_str()))),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|(_, v)| v.version as i64),
        )),
        times(
            rows.iter()
                .map(|(_, v)| Some(v.created_at.timestamp_millis())),
        ),
        strings(rows.iter().map(|(_, v)| Some(v.author.as_str()))),
        strings(rows.iter().map(|(_, v)| v.comment.as_deref())),
        strings(
            depends
                .iter()
                .map(|d| Some(d.as_str()).filter(|s| !s.is_empty())),
        ),
        strings(rows.iter().map(|(_, v)| Some(v.sql.as_str()))),
    ];
    RecordBatch::try_new(schema, columns).expect("schema matches columns")
}

fn destinations(snapshot: &Snapshot) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("type", DataType::Utf8, false),
        Field::new("target", DataType::Utf8, false),
        Field::new("options", DataType::Utf8, true),
        Field::new("activations", DataType::Utf8, true),
        Field::new("author", DataType::Utf8, false),
        Field::new("created_at", utc_ms(), false),
    ]));
    let rows: Vec<_> = snapshot.state.destinations.iter().collect();
    let described: Vec<(&str, String, String)> = rows
        .iter()
        .map(|(_, d)| match &d.kind {
            DestinationKind::File { path, format } => (
                "file",
                path.clone(),
                format!("format {format:?}").to_lowercase(),
            ),
            DestinationKind::Webhook {
                url,
                batch_size,
                secret,
            } => (
                "webhook",
                url.clone(),
                // The secret itself is never shown.
                format!(
                    "batch_size {batch_size}, secret {}",
                    if secret.is_some() { "set" } else { "not set" }
                ),
            ),
        })
        .collect();
    let used: Vec<String> = rows
        .iter()
        .map(|(name, _)| {
            snapshot
                .state
                .segments
                .iter()
                .filter(|(_, e)| e.activations.iter().any(|a| &a.destination == *name))
                .map(|(s, _)| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect();
    let columns: Vec<ArrayRef> = vec![
        strings(rows.iter().map(|(n, _)| Some(n.as_str()))),
        strings(described.iter().map(|d| Some(d.0))),
        strings(described.iter().map(|d| Some(d.1.as_str()))),
        strings(described.iter().map(|d| Some(d.2.as_str()))),
        strings(
            used.iter()
                .map(|u| Some(u.as_str()).filter(|s| !s.is_empty())),
        ),
        strings(rows.iter().map(|(_, d)| Some(d.author.as_str()))),
        times(
            rows.iter()
                .map(|(_, d)| Some(d.created_at.timestamp_millis())),
        ),
    ];
    RecordBatch::try_new(schema, columns).expect("schema matches columns")
}
