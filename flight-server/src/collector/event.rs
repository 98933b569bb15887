//! The JSON body of `POST /v1/events`: parsing and validation of every
//! field, with errors that name the row and the field.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

/// Longest accepted `event_id` (characters).
pub const MAX_EVENT_ID_CHARS: usize = 128;
/// Longest accepted value of any other string field (characters).
pub const MAX_STRING_CHARS: usize = 1024;
/// Events with an `event_time` later than now plus this are refused
/// (clock skew of the sender).
pub const MAX_FUTURE_SECS: i64 = 24 * 3600;
/// How many field errors a 400 answer lists at most.
pub const MAX_REPORTED_ERRORS: usize = 20;

/// One validated event, ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_id: String,
    pub profile_id: Option<String>,
    pub device_id: Option<String>,
    /// Microseconds since the epoch, UTC.
    pub event_time: i64,
    pub event_type: String,
    pub channel: String,
    pub source: String,
    pub category: Option<String>,
    pub product_id: Option<String>,
    pub amount: Option<f64>,
}

impl Event {
    /// Days since the epoch of `event_time` in UTC (the `event_date` column).
    pub fn event_date(&self) -> i32 {
        // event_time is validated to lie between 1970 and a day from now.
        self.event_time.div_euclid(86_400_000_000) as i32
    }
}

/// Why a field of a row is refused. `row` is the 0-based index in the
/// array; `None` when the body itself is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub row: Option<usize>,
    pub field: Option<String>,
    pub reason: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.row, &self.field) {
            (Some(r), Some(field)) => write!(f, "row {r}, field '{field}': {}", self.reason),
            (Some(r), None) => write!(f, "row {r}: {}", self.reason),
            _ => f.write_str(&self.reason),
        }
    }
}

/// The fields a client may send, in the order of the table.
pub const CLIENT_FIELDS: [&str; 10] = [
    "event_id",
    "profile_id",
    "device_id",
    "event_time",
    "event_type",
    "channel",
    "source",
    "category",
    "product_id",
    "amount",
];

/// Columns the server fills; a client sending them is refused.
pub const SERVER_FIELDS: [&str; 2] = ["received_at", "event_date"];

/// Parses and validates a whole body. `now` bounds `event_time`;
/// `new_id` makes the id of an event sent without one (UUIDv7 in the server).
/// On error, every problem found (at most [`MAX_REPORTED_ERRORS`]) in row
/// order; nothing of the batch may be written.
pub fn parse_events(
    body: &[u8],
    now: DateTime<Utc>,
    mut new_id: impl FnMut() -> String,
) -> Result<Vec<Event>, Vec<FieldError>> {
    let body_error = |reason: String| {
        vec![FieldError {
            row: None,
            field: None,
            reason,
        }]
    };
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| body_error(format!("the body is not valid JSON: {e}")))?;
    let Value::Array(items) = value else {
        return Err(body_error(
            "the body must be a JSON array of event objects".into(),
        ));
    };
    let max_time = now.timestamp_micros() + MAX_FUTURE_SECS * 1_000_000;
    let mut events = Vec::with_capacity(items.len());
    let mut errors = vec![];
    for (row, item) in items.into_iter().enumerate() {
        let mut row_errors = RowErrors {
            row,
            errors: vec![],
        };
        match item {
            Value::Object(map) => {
                if let Some(e) = parse_event(map, max_time, &mut new_id, &mut row_errors) {
                    events.push(e);
                }
            }
            other => row_errors.push(
                None,
                format!("an event must be a JSON object, not {}", kind(&other)),
            ),
        }
        errors.extend(row_errors.errors);
        if errors.len() >= MAX_REPORTED_ERRORS {
            errors.truncate(MAX_REPORTED_ERRORS);
            break;
        }
    }
    if errors.is_empty() {
        Ok(events)
    } else {
        Err(errors)
    }
}

struct RowErrors {
    row: usize,
    errors: Vec<FieldError>,
}

impl RowErrors {
    fn push(&mut self, field: Option<&str>, reason: String) {
        self.errors.push(FieldError {
            row: Some(self.row),
            field: field.map(str::to_string),
            reason,
        });
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A string field: `Ok(None)` when absent or null.
fn string_field(
    map: &mut Map<String, Value>,
    name: &str,
    required: bool,
    max_chars: usize,
    errors: &mut RowErrors,
) -> Option<String> {
    match map.remove(name) {
        None | Some(Value::Null) => {
            if required {
                errors.push(Some(name), "required (a non-empty string)".into());
            }
            None
        }
        Some(Value::String(s)) => {
            if s.is_empty() {
                errors.push(Some(name), "must not be empty".into());
                None
            } else if s.chars().count() > max_chars {
                errors.push(Some(name), format!("longer than {max_chars} characters"));
                None
            } else if s.chars().any(char::is_control) {
                errors.push(Some(name), "contains control characters".into());
                None
            } else {
                Some(s)
            }
        }
        Some(other) => {
            errors.push(
                Some(name),
                format!("must be a string, not {}", kind(&other)),
            );
            None
        }
    }
}

fn parse_event(
    mut map: Map<String, Value>,
    max_time: i64,
    new_id: &mut impl FnMut() -> String,
    errors: &mut RowErrors,
) -> Option<Event> {
    let event_id = string_field(&mut map, "event_id", false, MAX_EVENT_ID_CHARS, errors);
    let profile_id = string_field(&mut map, "profile_id", false, MAX_STRING_CHARS, errors);
    let device_id = string_field(&mut map, "device_id", false, MAX_STRING_CHARS, errors);
    let event_time = match map.remove("event_time") {
        None | Some(Value::Null) => {
            errors.push(
                Some("event_time"),
                "required (an RFC 3339 timestamp such as 2026-11-01T08:30:00Z)".into(),
            );
            None
        }
        Some(Value::String(s)) => match DateTime::parse_from_rfc3339(&s) {
            Ok(t) => {
                let micros = t.timestamp_micros();
                if micros < 0 {
                    errors.push(Some("event_time"), format!("'{s}' is before 1970"));
                    None
                } else if micros > max_time {
                    errors.push(
                        Some("event_time"),
                        format!(
                            "'{s}' is more than {} hours in the future",
                            MAX_FUTURE_SECS / 3600
                        ),
                    );
                    None
                } else {
                    Some(micros)
                }
            }
            Err(e) => {
                errors.push(
                    Some("event_time"),
                    format!(
                        "'{s}' is not an RFC 3339 timestamp ({e}); expected e.g. 2026-11-01T08:30:00Z"
                    ),
                );
                None
            }
        },
        Some(other) => {
            errors.push(
                Some("event_time"),
                format!("must be an RFC 3339 string, not {}", kind(&other)),
            );
            None
        }
    };
    let event_type = string_field(&mut map, "event_type", true, MAX_STRING_CHARS, errors);
    let channel = string_field(&mut map, "channel", true, MAX_STRING_CHARS, errors);
    let source = string_field(&mut map, "source", true, MAX_STRING_CHARS, errors);
    let category = string_field(&mut map, "category", false, MAX_STRING_CHARS, errors);
    let product_id = string_field(&mut map, "product_id", false, MAX_STRING_CHARS, errors);
    let amount = match map.remove("amount") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_f64() {
            Some(v) if v.is_finite() => Some(v),
            _ => {
                errors.push(Some("amount"), format!("{n} is not a finite number"));
                None
            }
        },
        Some(other) => {
            errors.push(
                Some("amount"),
                format!("must be a number, not {}", kind(&other)),
            );
            None
        }
    };
    // What is left is not a field of the schema.
    let mut rest: Vec<String> = map.into_iter().map(|(k, _)| k).collect();
    rest.sort();
    for name in rest {
        let reason = if SERVER_FIELDS.contains(&name.as_str()) {
            "is filled by the server and must not be sent".to_string()
        } else {
            format!("unknown field (known: {})", CLIENT_FIELDS.join(", "))
        };
        errors.push(Some(&name), reason);
    }
    if !errors.errors.is_empty() {
        return None;
    }
    Some(Event {
        event_id: event_id.unwrap_or_else(new_id),
        profile_id,
        device_id,
        event_time: event_time?,
        event_type: event_type?,
        channel: channel?,
        source: source?,
        category,
        product_id,
        amount,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-02T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn parse(body: &str) -> Result<Vec<Event>, Vec<FieldError>> {
        let mut n = 0;
        parse_events(body.as_bytes(), now(), || {
            n += 1;
            format!("gen-{n}")
        })
    }

    #[test]
    fn valid_events() {
        let events = parse(
            r#"[
              {"event_id": "e1", "profile_id": "p1", "event_time": "2026-11-01T23:30:00-01:00",
               "event_type": "purchase", "channel": "web", "source": "web",
               "category": "books", "product_id": "b1", "amount": 12.5},
              {"event_time": "2026-11-01T08:00:00.123456Z", "event_type": "page_view",
               "channel": "app", "source": "app", "amount": 3, "device_id": null}
            ]"#,
        )
        .unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].event_id, "e1");
        // 23:30 at -01:00 is 00:30 UTC the next day.
        assert_eq!(events[0].event_time, 1_793_579_400_000_000);
        assert_eq!(
            events[0].event_date(),
            chrono::NaiveDate::from_ymd_opt(2026, 11, 2)
                .unwrap()
                .signed_duration_since(chrono::NaiveDate::default())
                .num_days() as i32
        );
        assert_eq!(events[1].event_id, "gen-1");
        assert_eq!(events[1].amount, Some(3.0));
        assert_eq!(events[1].event_time % 1_000_000, 123_456);
        assert_eq!(events[1].device_id, None);
        assert!(parse("[]").unwrap().is_empty());
    }

    fn only_error(body: &str) -> FieldError {
        let errors = parse(body).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        errors.into_iter().next().unwrap()
    }

    #[test]
    fn errors_name_row_and_field() {
        let ok = r#"{"event_time": "2026-11-01T08:00:00Z", "event_type": "t", "channel": "c", "source": "s"}"#;
        let e = only_error(&format!(
            r#"[{ok}, {{"event_time": "yesterday", "event_type": "t", "channel": "c", "source": "s"}}]"#
        ));
        assert_eq!(e.row, Some(1));
        assert_eq!(e.field.as_deref(), Some("event_time"));
        assert!(e.reason.contains("RFC 3339"), "{e}");

        let e = only_error(&format!(
            r#"[{ok}, {ok}, {{"event_time": "2026-11-01T08:00:00Z", "event_type": "t", "channel": "c", "source": "s", "amount": "12"}}]"#
        ));
        assert_eq!((e.row, e.field.as_deref()), (Some(2), Some("amount")));

        let e = only_error(
            r#"[{"event_time": "2026-11-01T08:00:00Z", "channel": "c", "source": "s"}]"#,
        );
        assert_eq!((e.row, e.field.as_deref()), (Some(0), Some("event_type")));

        let e = only_error(
            r#"[{"event_time": "2026-11-01T08:00:00Z", "event_type": "t", "channel": "c", "source": "s", "colour": "red"}]"#,
        );
        assert_eq!(e.field.as_deref(), Some("colour"));

        let e = only_error(
            r#"[{"event_time": "2026-11-01T08:00:00Z", "event_type": "t", "channel": "c", "source": "s", "received_at": "x"}]"#,
        );
        assert_eq!(e.field.as_deref(), Some("received_at"));

        let e = only_error(
            r#"[{"event_time": "2026-11-09T08:00:00Z", "event_type": "t", "channel": "c", "source": "s"}]"#,
        );
        assert!(e.reason.contains("future"), "{e}");

        let e = only_error(
            r#"[{"event_id": "", "event_time": "2026-11-01T08:00:00Z", "event_type": "t", "channel": "c", "source": "s"}]"#,
        );
        assert_eq!(e.field.as_deref(), Some("event_id"));

        let e = only_error(r#"[1]"#);
        assert_eq!((e.row, e.field.as_deref()), (Some(0), None));

        let e = only_error(r#"{"event_type": "t"}"#);
        assert_eq!(e.row, None);
        let e = only_error(r#"[{"#);
        assert!(e.reason.contains("not valid JSON"), "{e}");
    }

    #[test]
    fn several_errors_are_reported_in_row_order() {
        let bad = r#"{"event_time": 5, "event_type": 1, "channel": "c", "source": "s"}"#;
        let body = format!("[{}]", vec![bad; 30].join(","));
        let errors = parse(&body).unwrap_err();
        assert_eq!(errors.len(), MAX_REPORTED_ERRORS);
        assert_eq!(errors[0].row, Some(0));
        assert_eq!(errors[0].field.as_deref(), Some("event_time"));
        assert_eq!(errors[1].field.as_deref(), Some("event_type"));
        assert_eq!(errors[2].row, Some(1));
    }
}
