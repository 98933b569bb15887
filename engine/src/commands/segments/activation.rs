//! Activation: after each refresh, the entered and exited profiles of a
//! segment go to its destinations, with the chosen columns, consenting
//! profiles only.
//!
//! Delivery is at least once. Every delivery (refresh × change kind ×
//! destination) is recorded in `segment_data._activations`; after each
//! refresh, every delivery of a refresh since the activation was created
//! that has no `ok` record is (re)sent, oldest first. Webhook batches carry
//! an `Idempotency-Key` (`<refresh_id>:<change>:<batch>`) so a receiver can
//! drop the repeats.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{AsArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, SchemaRef};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use object_store::{ObjectStoreExt, PutPayload};
use seglake_catalog::{Activation, Destination, DestinationKind, FileFormat};
use sha2::Sha256;
use tracing::{info, warn};

use crate::catalog::segments::{
    ACTIVATIONS_TABLE, CHANGES_TABLE, HISTORY_TABLE, activations_schema, changes_schema,
};
use crate::pipeline::StatementContext;
use crate::{EngineError, Result};

/// Attempts per webhook batch, and the first back-off (doubled each time).
const WEBHOOK_ATTEMPTS: u32 = 5;
const WEBHOOK_BACKOFF: Duration = Duration::from_millis(100);
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(30);

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The rows of one delivery: the activation's columns for the profiles of
/// one refresh and change kind, consenting profiles only.
fn delivery_sql(segment: &str, a: &Activation, refresh_id: &str, change: &str) -> String {
    let columns: Vec<String> = a
        .columns
        .iter()
        .map(|(name, expr)| format!("{expr} AS \"{}\"", name.replace('"', "\"\"")))
        .collect();
    let consent = a
        .consent_column
        .as_ref()
        .map(|c| format!(" AND \"{}\" IS TRUE", c.replace('"', "\"\"")))
        .unwrap_or_default();
    format!(
        "SELECT {} FROM {} WHERE CAST(profile_id AS VARCHAR) IN \
         (SELECT profile_id FROM segment_data.\"_changes\" WHERE segment = {} AND refresh_id = {} AND change = {}){consent} \
         ORDER BY CAST(profile_id AS VARCHAR)",
        columns.join(", "),
        a.profiles_table,
        quote(segment),
        quote(refresh_id),
        quote(change),
    )
}

/// What one delivery did.
struct Delivery {
    rows_sent: u64,
    attempts: u64,
    target: String,
    error: Option<String>,
}

impl StatementContext {
    /// Plans the delivery query of `a` (no rows read) so that bad columns
    /// fail at `ACTIVATE` time.
    pub(crate) async fn check_activation(&self, a: &Activation) -> Result<()> {
        self.segment_data_table(CHANGES_TABLE, changes_schema())
            .await?;
        self.refresh_catalog().await?;
        let sql = delivery_sql("", a, "", "entered");
        self.context().sql(&sql).await.map_err(|e| {
            EngineError::InvalidArgument(format!("the activation's columns do not plan: {e}"))
        })?;
        if let Some(c) = &a.consent_column {
            let df = self
                .context()
                .sql(&format!(
                    "SELECT \"{}\" FROM {}",
                    c.replace('"', "\"\""),
                    a.profiles_table
                ))
                .await?;
            let ty = df.schema().field(0).data_type().clone();
            if ty != DataType::Boolean {
                return Err(EngineError::InvalidArgument(format!(
                    "consent column '{c}' must be BOOLEAN, it is {ty}"
                )));
            }
        }
        Ok(())
    }

    /// Sends every pending delivery of `segment`'s activations.
    pub(crate) async fn deliver_activations(&self, segment: &str) -> Result<()> {
        let snapshot = self.storage().catalog().await?;
        let Some(entry) = snapshot.state.segments.get(segment) else {
            return Ok(());
        };
        if entry.activations.is_empty() {
            return Ok(());
        }
        let log = self
            .segment_data_table(ACTIVATIONS_TABLE, activations_schema())
            .await?;
        self.refresh_catalog().await?;
        let refreshes = self
            .query_strings(&format!(
                "SELECT refresh_id, CAST(refreshed_at AS BIGINT) AS at_us FROM segment_data.\"{HISTORY_TABLE}\" \
                 WHERE segment = {} ORDER BY refreshed_at",
                quote(segment)
            ))
            .await?;
        for activation in &entry.activations {
            let destination = snapshot.state.destination(&activation.destination)?;
            let done: HashSet<(String, String)> = self
                .query_strings(&format!(
                    "SELECT refresh_id, change FROM segment_data.\"{ACTIVATIONS_TABLE}\" \
                     WHERE destination = {} AND segment = {} AND status = 'ok'",
                    quote(&activation.destination),
                    quote(segment)
                ))
                .await?
                .into_iter()
                .map(|r| (r[0].clone(), r[1].clone()))
                .collect();
            let since = activation.created_at.timestamp_micros();
            for refresh in &refreshes {
                // Refreshes before the activation existed are not sent.
                if refresh[1].parse::<i64>().unwrap_or(i64::MIN) < since {
                    continue;
                }
                for change in ["entered", "exited"] {
                    if done.contains(&(refresh[0].clone(), change.to_string())) {
                        continue;
                    }
                    let delivery = self
                        .deliver(segment, activation, destination, &refresh[0], change)
                        .await;
                    let delivery = match delivery {
                        Ok(d) => d,
                        Err(e) => Delivery {
                            rows_sent: 0,
                            attempts: 1,
                            target: String::new(),
                            error: Some(e.to_string()),
                        },
                    };
                    match &delivery.error {
                        None => info!(
                            segment, destination = %activation.destination, refresh_id = %refresh[0],
                            change, rows = delivery.rows_sent, "activation delivered"
                        ),
                        Some(e) => warn!(
                            segment, destination = %activation.destination, refresh_id = %refresh[0],
                            change, error = %e, "activation failed; retried after the next refresh"
                        ),
                    }
                    let failed = delivery.error.is_some();
                    self.append_rows(
                        &log,
                        activations_schema(),
                        vec![record(
                            &activation.destination,
                            segment,
                            &refresh[0],
                            change,
                            &delivery,
                        )?],
                    )
                    .await?;
                    if failed {
                        // Keep the order of deliveries: stop at the first
                        // failure of this activation.
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// Rows of a query whose columns are all strings.
    async fn query_strings(&self, sql: &str) -> Result<Vec<Vec<String>>> {
        let batches = self.context().sql(sql).await?.collect().await?;
        let mut out = vec![];
        for b in &batches {
            let cols: Vec<_> = (0..b.num_columns())
                .map(|i| arrow::compute::cast(b.column(i), &DataType::Utf8))
                .collect::<std::result::Result<_, _>>()?;
            for row in 0..b.num_rows() {
                out.push(
                    cols.iter()
                        .map(|c| c.as_string::<i32>().value(row).to_string())
                        .collect(),
                );
            }
        }
        Ok(out)
    }

    async fn deliver(
        &self,
        segment: &str,
        activation: &Activation,
        destination: &Destination,
        refresh_id: &str,
        change: &str,
    ) -> Result<Delivery> {
        let df = self
            .context()
            .sql(&delivery_sql(segment, activation, refresh_id, change))
            .await?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await?;
        let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
        match &destination.kind {
            DestinationKind::File { path, format } => {
                // Confined again at every delivery: the allowed locations
                // may have changed since CREATE DESTINATION.
                let dir = self.storage().user_location(path, false)?;
                let (store, prefix) = self.storage().store_for(&dir)?;
                let ext = match format {
                    FileFormat::Csv => "csv",
                    FileFormat::Parquet => "parquet",
                };
                let file = format!("{refresh_id}-{change}.{ext}");
                let location = prefix.clone().join(segment).join(file.as_str());
                let bytes = encode_file(*format, &schema, &batches)?;
                store
                    .put(&location, PutPayload::from(Bytes::from(bytes)))
                    .await?;
                Ok(Delivery {
                    rows_sent: rows,
                    attempts: 1,
                    target: format!("{dir}{segment}/{file}"),
                    error: None,
                })
            }
            DestinationKind::Webhook {
                url,
                batch_size,
                secret,
            } => {
                let target = crate::egress::redacted(url);
                // Resolved and checked at every delivery; the client then
                // connects to the checked addresses only.
                let vetted = match self.vet_webhook(url).await {
                    Ok(vetted) => vetted,
                    Err(refusal) => {
                        return Ok(Delivery {
                            rows_sent: 0,
                            attempts: 0,
                            target,
                            error: Some(refusal.to_string()),
                        });
                    }
                };
                let client = vetted
                    .client(WEBHOOK_TIMEOUT)
                    .map_err(|e| EngineError::Unsupported(format!("HTTP client: {e}")))?;
                let mut attempts = 0;
                let mut sent = 0;
                let total = arrow::compute::concat_batches(&schema, &batches)?;
                let mut batch_no = 0;
                let mut offset = 0;
                while offset < total.num_rows() {
                    let len = (*batch_size).min(total.num_rows() - offset);
                    let slice = total.slice(offset, len);
                    let body = webhook_body(segment, refresh_id, change, &slice)?;
                    let key = format!("{refresh_id}:{change}:{batch_no}");
                    match post(&client, vetted.url(), secret.as_deref(), &key, body).await {
                        (n, Ok(())) => attempts += n,
                        (n, Err(e)) => {
                            return Ok(Delivery {
                                rows_sent: sent,
                                attempts: attempts + n,
                                target,
                                error: Some(e),
                            });
                        }
                    }
                    sent += len as u64;
                    offset += len;
                    batch_no += 1;
                }
                Ok(Delivery {
                    rows_sent: sent,
                    attempts,
                    target,
                    error: None,
                })
            }
        }
    }
}

fn record(
    destination: &str,
    segment: &str,
    refresh_id: &str,
    change: &str,
    d: &Delivery,
) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        activations_schema(),
        vec![
            Arc::new(StringArray::from(vec![destination])),
            Arc::new(StringArray::from(vec![segment])),
            Arc::new(StringArray::from(vec![refresh_id])),
            Arc::new(StringArray::from(vec![change])),
            Arc::new(Int64Array::from(vec![d.rows_sent as i64])),
            Arc::new(StringArray::from(vec![if d.error.is_some() {
                "failed"
            } else {
                "ok"
            }])),
            Arc::new(StringArray::from(vec![d.error.clone()])),
            Arc::new(Int64Array::from(vec![d.attempts as i64])),
            Arc::new(StringArray::from(vec![d.target.as_str()])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![chrono::Utc::now().timestamp_micros()])
                    .with_timezone("UTC"),
            ),
        ],
    )?)
}

fn encode_file(format: FileFormat, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let mut buf = vec![];
    match format {
        FileFormat::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut buf);
            if batches.is_empty() {
                w.write(&RecordBatch::new_empty(Arc::clone(schema)))?;
            }
            for b in batches {
                w.write(b)?;
            }
        }
        FileFormat::Parquet => {
            let mut w = parquet::arrow::ArrowWriter::try_new(&mut buf, Arc::clone(schema), None)?;
            for b in batches {
                w.write(b)?;
            }
            w.close()?;
        }
    }
    Ok(buf)
}

/// `{"segment": ..., "refresh_id": ..., "change": ..., "rows": [...]}`.
fn webhook_body(
    segment: &str,
    refresh_id: &str,
    change: &str,
    rows: &RecordBatch,
) -> Result<Vec<u8>> {
    let mut json_rows = vec![];
    {
        let mut w = arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow::json::writer::JsonArray>(&mut json_rows);
        w.write(rows)?;
        w.finish()?;
    }
    if json_rows.is_empty() {
        json_rows.extend_from_slice(b"[]");
    }
    let s = |v: &str| serde_json::Value::from(v).to_string();
    let mut body = format!(
        "{{\"segment\":{},\"refresh_id\":{},\"change\":{},\"rows\":",
        s(segment),
        s(refresh_id),
        s(change)
    )
    .into_bytes();
    body.extend_from_slice(&json_rows);
    body.push(b'}');
    Ok(body)
}

/// `sha256=<hex HMAC-SHA256 of body>`.
pub(crate) fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// POSTs one batch, retrying connection errors, 429 and 5xx with
/// exponential back-off. Returns the attempts made and the outcome.
///
/// The outcome is what SQL users read in `system.activations`: the status
/// the receiver answered, or "timed out" / "connection failed". Never the
/// receiver's body, and never why a connection failed (refused, reset,
/// unreachable): those would map the network for whoever chose the URL.
/// The server log has the details.
async fn post(
    client: &reqwest::Client,
    url: &url::Url,
    secret: Option<&str>,
    key: &str,
    body: Vec<u8>,
) -> (u64, std::result::Result<(), String>) {
    let mut backoff = WEBHOOK_BACKOFF;
    let mut last = String::new();
    for attempt in 1..=WEBHOOK_ATTEMPTS {
        let mut request = client
            .post(url.clone())
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", key)
            .body(body.clone());
        if let Some(secret) = secret {
            request = request.header("X-Seglake-Signature", signature(secret, &body));
        }
        match request.send().await {
            Ok(r) if r.status().is_success() => return (attempt as u64, Ok(())),
            Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => {
                last = format!("the receiver answered HTTP {}", r.status().as_u16());
            }
            Ok(r) if r.status().is_redirection() => {
                return (
                    attempt as u64,
                    Err(format!(
                        "the receiver answered HTTP {} (redirects are not followed)",
                        r.status().as_u16()
                    )),
                );
            }
            Ok(r) => {
                return (
                    attempt as u64,
                    Err(format!(
                        "the receiver answered HTTP {}",
                        r.status().as_u16()
                    )),
                );
            }
            Err(e) => {
                warn!(url = %url, attempt, error = %error_chain(&e), "webhook request failed");
                last = if e.is_timeout() {
                    "timed out".to_string()
                } else {
                    "connection failed".to_string()
                };
            }
        }
        if attempt < WEBHOOK_ATTEMPTS {
            tokio::time::sleep(backoff).await; // retry back-off
            backoff *= 2;
        }
    }
    (WEBHOOK_ATTEMPTS as u64, Err(last))
}

/// An error and its causes, for the server log.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, Schema};

    #[test]
    fn signature_matches_rfc4231_case_2() {
        // RFC 4231 test case 2: key "Jefe".
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn body_shape() {
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("profile_id", DataType::Utf8, true),
                Field::new("n", DataType::Int64, true),
            ])),
            vec![
                Arc::new(StringArray::from(vec![Some("p1"), Some("p\"2")])),
                Arc::new(Int64Array::from(vec![Some(1), None])),
            ],
        )
        .unwrap();
        let body = webhook_body("s", "r", "entered", &batch).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"segment": "s", "refresh_id": "r", "change": "entered",
                "rows": [{"profile_id": "p1", "n": 1}, {"profile_id": "p\"2", "n": null}]})
        );
        let empty = webhook_body("s", "r", "exited", &batch.slice(0, 0)).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&empty).unwrap();
        assert_eq!(v["rows"], serde_json::json!([]));
    }
}
