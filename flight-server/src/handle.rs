//! Statement handles and tickets.
//!
//! They are bytes the client holds and sends back, so they are sealed: a
//! JSON payload naming the user, followed by an HMAC-SHA256 over it with a
//! per-server secret. A handle forged, altered, or presented by another user
//! is refused. Handles carry everything needed to run the statement (SQL and
//! bound parameters), so the server needs no per-statement state and a
//! forgotten `ClosePreparedStatement` leaks nothing (the plans a session
//! keeps for the next `DoGet`, [`crate::planned`], are bounded, expire, and
//! only spare a planning).

use std::io::Cursor;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use base64::Engine as _;
use bytes::Bytes;
use datafusion::common::ScalarValue;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::{Result, ServerError};

type HmacSha256 = Hmac<Sha256>;
const MAC_LEN: usize = 32;

/// What a handle stands for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Payload {
    /// A statement, with bound parameters (Arrow IPC stream, base64) if any.
    Statement { sql: String, params: Option<String> },
    /// A command that already ran at `GetFlightInfo` time: its result is empty.
    Empty,
}

#[derive(Debug, Serialize, Deserialize)]
struct Sealed {
    user: String,
    payload: Payload,
    /// Random: every handle is unique, so cancelling one `FlightInfo`
    /// (its ticket) cancels no other.
    nonce: u64,
}

/// Seals and opens handles with one secret.
#[derive(Clone)]
pub struct Sealer {
    key: Arc<[u8; 32]>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// A sealer with a random secret (handles die with the process).
    pub fn random() -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self { key: Arc::new(key) }
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(self.key.as_ref()).expect("HMAC takes any key length")
    }

    pub fn seal(&self, user: &str, payload: Payload) -> Bytes {
        let mut body = serde_json::to_vec(&Sealed {
            user: user.to_string(),
            payload,
            nonce: rand::rng().next_u64(),
        })
        .expect("handles serialize");
        let mut mac = self.mac();
        mac.update(&body);
        body.extend_from_slice(&mac.finalize().into_bytes());
        Bytes::from(body)
    }

    /// Opens a handle for `user`.
    pub fn open(&self, user: &str, bytes: &[u8]) -> Result<Payload> {
        let invalid = || ServerError::InvalidArgument("invalid or expired statement handle".into());
        if bytes.len() < MAC_LEN {
            return Err(invalid());
        }
        let (body, tag) = bytes.split_at(bytes.len() - MAC_LEN);
        let mut mac = self.mac();
        mac.update(body);
        mac.verify_slice(tag).map_err(|_| invalid())?;
        let sealed: Sealed = serde_json::from_slice(body).map_err(|_| invalid())?;
        if sealed.user != user {
            return Err(ServerError::PermissionDenied(
                "this statement handle belongs to another user".into(),
            ));
        }
        Ok(sealed.payload)
    }
}

/// Encodes one row of parameter values for a handle.
pub fn encode_params(batch: &RecordBatch) -> Result<String> {
    let mut buf = Vec::new();
    {
        let mut w = StreamWriter::try_new(&mut buf, batch.schema_ref())?;
        w.write(batch)?;
        w.finish()?;
    }
    Ok(base64::engine::general_purpose::STANDARD.encode(buf))
}

/// The parameter values of row `row` of a batch.
pub fn row_values(batch: &RecordBatch, row: usize) -> Result<Vec<ScalarValue>> {
    batch
        .columns()
        .iter()
        .map(|c| ScalarValue::try_from_array(c, row).map_err(ServerError::from))
        .collect()
}

/// Decodes what [`encode_params`] wrote.
pub fn decode_params(encoded: &str) -> Result<Vec<ScalarValue>> {
    let bad =
        |e: String| ServerError::InvalidArgument(format!("invalid parameters in handle: {e}"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| bad(e.to_string()))?;
    let reader = StreamReader::try_new(Cursor::new(bytes), None)?;
    let mut out = vec![];
    for batch in reader {
        let batch = batch?;
        if batch.num_rows() > 0 {
            out = row_values(&batch, 0)?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};

    #[test]
    fn seal_and_open() {
        let s = Sealer::random();
        let p = Payload::Statement {
            sql: "select 1".into(),
            params: None,
        };
        let h = s.seal("alice", p.clone());
        assert_eq!(s.open("alice", &h).unwrap(), p);
        assert!(matches!(
            s.open("bob", &h),
            Err(ServerError::PermissionDenied(_))
        ));
        let mut forged = h.to_vec();
        forged[10] ^= 1;
        assert!(matches!(
            s.open("alice", &forged),
            Err(ServerError::InvalidArgument(_))
        ));
        assert!(
            Sealer::random().open("alice", &h).is_err(),
            "another server's secret"
        );
        assert!(s.open("alice", b"short").is_err());
    }

    #[test]
    fn params_round_trip() {
        let batch = RecordBatch::try_from_iter([
            ("0", Arc::new(Int64Array::from(vec![Some(7)])) as _),
            ("1", Arc::new(StringArray::from(vec![None::<&str>])) as _),
        ])
        .unwrap();
        let values = decode_params(&encode_params(&batch).unwrap()).unwrap();
        assert_eq!(
            values,
            vec![ScalarValue::Int64(Some(7)), ScalarValue::Utf8(None)]
        );
    }
}
