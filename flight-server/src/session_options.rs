//! Flight session options (`SetSessionOptions`, `GetSessionOptions`,
//! `CloseSession`), which arrow-flight 59 has no typed hooks or messages for.
//! The messages below follow `Flight.proto`.
//!
//! Options: `catalog` (only `seglake`), `schema` (the default schema), and
//! any DataFusion or Seglake setting by its full name
//! (`datafusion.execution.batch_size`, `seglake.write_row_group_rows`).

use std::collections::HashMap;
use std::sync::Arc;

use arrow_flight::Action;
use bytes::Bytes;
use prost::Message;
use seglake_engine::DEFAULT_CATALOG;

use crate::auth::{ClientSession, Sessions};
use crate::error::{Result, ServerError};

#[derive(Clone, PartialEq, Message)]
pub struct StringListValue {
    #[prost(string, repeated, tag = "1")]
    pub values: Vec<String>,
}

/// Names follow `Flight.proto`.
#[allow(clippy::enum_variant_names)]
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum OptionValue {
    #[prost(string, tag = "1")]
    StringValue(String),
    #[prost(bool, tag = "2")]
    BoolValue(bool),
    #[prost(sfixed64, tag = "3")]
    Int64Value(i64),
    #[prost(double, tag = "4")]
    DoubleValue(f64),
    #[prost(message, tag = "5")]
    StringListValue(StringListValue),
}

#[derive(Clone, PartialEq, Message)]
pub struct SessionOptionValue {
    #[prost(oneof = "OptionValue", tags = "1, 2, 3, 4, 5")]
    pub option_value: Option<OptionValue>,
}

#[derive(Clone, PartialEq, Message)]
pub struct SetSessionOptionsRequest {
    #[prost(map = "string, message", tag = "1")]
    pub session_options: HashMap<String, SessionOptionValue>,
}

#[derive(Clone, PartialEq, Message)]
pub struct SetSessionOptionsError {
    /// 0 unspecified, 1 invalid name, 2 invalid value, 3 error.
    #[prost(int32, tag = "1")]
    pub value: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct SetSessionOptionsResult {
    #[prost(map = "string, message", tag = "1")]
    pub errors: HashMap<String, SetSessionOptionsError>,
}

#[derive(Clone, PartialEq, Message)]
pub struct GetSessionOptionsResult {
    #[prost(map = "string, message", tag = "1")]
    pub session_options: HashMap<String, SessionOptionValue>,
}

#[derive(Clone, PartialEq, Message)]
pub struct CloseSessionResult {
    /// 1 closed.
    #[prost(int32, tag = "1")]
    pub status: i32,
}

const INVALID_NAME: i32 = 1;
const INVALID_VALUE: i32 = 2;

fn string(v: impl Into<String>) -> SessionOptionValue {
    SessionOptionValue {
        option_value: Some(OptionValue::StringValue(v.into())),
    }
}

fn as_text(v: &SessionOptionValue) -> Option<String> {
    Some(match v.option_value.as_ref()? {
        OptionValue::StringValue(s) => s.clone(),
        OptionValue::BoolValue(b) => b.to_string(),
        OptionValue::Int64Value(i) => i.to_string(),
        OptionValue::DoubleValue(d) => d.to_string(),
        OptionValue::StringListValue(l) => l.values.join(","),
    })
}

/// Runs a session action and returns the encoded result message.
pub async fn handle_action(
    sessions: &Sessions,
    client: &Arc<ClientSession>,
    action: Action,
) -> Result<Bytes> {
    let ctx = client.session.context();
    match action.r#type.as_str() {
        "SetSessionOptions" => {
            let req = SetSessionOptionsRequest::decode(action.body).map_err(|e| {
                ServerError::InvalidArgument(format!("bad SetSessionOptionsRequest: {e}"))
            })?;
            let mut errors = HashMap::new();
            for (name, value) in req.session_options {
                let Some(text) = as_text(&value) else {
                    errors.insert(
                        name,
                        SetSessionOptionsError {
                            value: INVALID_VALUE,
                        },
                    );
                    continue;
                };
                let outcome = match name.as_str() {
                    "catalog" if text == DEFAULT_CATALOG => Ok(()),
                    "catalog" => Err(INVALID_VALUE),
                    "schema" => {
                        set_config(client, "datafusion.catalog.default_schema", &text).await
                    }
                    n if n.starts_with("datafusion.") || n.starts_with("seglake.") => {
                        set_config(client, n, &text).await
                    }
                    _ => Err(INVALID_NAME),
                };
                if let Err(code) = outcome {
                    errors.insert(name, SetSessionOptionsError { value: code });
                }
            }
            Ok(SetSessionOptionsResult { errors }.encode_to_vec().into())
        }
        "GetSessionOptions" => {
            let state = ctx.state();
            let options = state.config().options();
            let mut out = HashMap::new();
            out.insert("catalog".to_string(), string(DEFAULT_CATALOG));
            out.insert(
                "schema".to_string(),
                string(options.catalog.default_schema.clone()),
            );
            for entry in options.entries() {
                if let Some(v) = entry.value {
                    out.insert(entry.key, string(v));
                }
            }
            Ok(GetSessionOptionsResult {
                session_options: out,
            }
            .encode_to_vec()
            .into())
        }
        "CloseSession" => {
            sessions.close(&client.token);
            Ok(CloseSessionResult { status: 1 }.encode_to_vec().into())
        }
        other => Err(ServerError::InvalidArgument(format!(
            "unknown action '{other}'"
        ))),
    }
}

async fn set_config(client: &ClientSession, key: &str, value: &str) -> Result<(), i32> {
    let quoted = value.replace('\'', "''");
    client
        .session
        .execute(&format!("SET {key} = '{quoted}'"), vec![])
        .await
        .map(|_| ())
        .map_err(|_| INVALID_VALUE)
}
