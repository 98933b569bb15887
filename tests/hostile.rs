//! Hostile protocol input (a module of the `flight_sql` test crate): bytes
//! no well-behaved client sends, sent with arrow-flight's raw
//! `FlightServiceClient`. Every case must be answered with a gRPC error of
//! a sensible code (the client's fault: `INVALID_ARGUMENT` mostly, never
//! `INTERNAL`), within a deadline (never a hang), and the server must then
//! answer a normal query on the same connection.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Any, CommandGetTables, CommandPreparedStatementQuery,
    CommandStatementIngest, CommandStatementQuery, ProstMessageExt, TableDefinitionOptions,
    TableExistsOption, TableNotExistOption, TicketStatementQuery,
};
use arrow_flight::utils::batches_to_flight_data;
use arrow_flight::{Action, FlightData, FlightDescriptor, Ticket};
use futures::TryStreamExt;
use prost::Message;
use seglake_flight_server::auth::Users;
use seglake_flight_server::{ServerOptions, start};
use seglake_tests::TestServer;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

/// Long enough for a debug build on a loaded machine; a hang fails.
const DEADLINE: Duration = Duration::from_secs(60);

/// A logged-in raw Flight client: every request carries the bearer token.
struct Raw {
    client: FlightServiceClient<Channel>,
    token: String,
}

impl Raw {
    async fn connect(url: String) -> Self {
        let channel = Channel::from_shared(url)
            .expect("url")
            .connect()
            .await
            .expect("connects");
        let mut sql = arrow_flight::sql::client::FlightSqlServiceClient::new(channel.clone());
        sql.handshake("alice", "secret").await.expect("login");
        let token = sql.token().expect("a bearer token").clone();
        Self {
            client: FlightServiceClient::new(channel),
            token,
        }
    }

    fn req<T>(&self, message: T) -> Request<T> {
        let mut r = Request::new(message);
        r.metadata_mut().insert(
            "authorization",
            format!("Bearer {}", self.token).parse().expect("header"),
        );
        r
    }

    /// GetFlightInfo of `cmd`: the error's status, or the FlightInfo.
    async fn info(
        &mut self,
        cmd: impl Into<prost::bytes::Bytes>,
    ) -> Result<arrow_flight::FlightInfo, Status> {
        let req = self.req(FlightDescriptor::new_cmd(cmd));
        let call = self.client.get_flight_info(req);
        tokio::time::timeout(DEADLINE, call)
            .await
            .expect("GetFlightInfo answers in time")
            .map(|r| r.into_inner())
    }

    /// DoGet of `ticket` to the end: the first error, or the messages.
    async fn get(
        &mut self,
        ticket: impl Into<prost::bytes::Bytes>,
    ) -> Result<Vec<FlightData>, Status> {
        let req = self.req(Ticket::new(ticket));
        let client = &mut self.client;
        let call = async move { client.do_get(req).await?.into_inner().try_collect().await };
        tokio::time::timeout(DEADLINE, call)
            .await
            .expect("DoGet answers in time")
    }

    /// DoAction to the end: the first error, or the result bodies.
    async fn action(
        &mut self,
        kind: &str,
        body: impl Into<prost::bytes::Bytes>,
    ) -> Result<Vec<prost::bytes::Bytes>, Status> {
        let req = self.req(Action::new(kind, body));
        let client = &mut self.client;
        let call = async move {
            let results: Vec<arrow_flight::Result> = client
                .do_action(req)
                .await?
                .into_inner()
                .try_collect()
                .await?;
            Ok(results.into_iter().map(|r| r.body).collect())
        };
        tokio::time::timeout(DEADLINE, call)
            .await
            .expect("DoAction answers in time")
    }

    /// DoPut of `messages` to the end: the first error, or the put results.
    async fn put(
        &mut self,
        messages: Vec<FlightData>,
    ) -> Result<Vec<arrow_flight::PutResult>, Status> {
        let req = self.req(futures::stream::iter(messages));
        let client = &mut self.client;
        let call = async move { client.do_put(req).await?.into_inner().try_collect().await };
        tokio::time::timeout(DEADLINE, call)
            .await
            .expect("DoPut answers in time")
    }

    /// A normal query still works on this connection: 41 + 1 = 42.
    async fn still_serving(&mut self, after: &str) {
        let cmd = CommandStatementQuery {
            query: "SELECT 41 + 1 AS answer".into(),
            transaction_id: None,
        };
        let info = self
            .info(cmd.as_any().encode_to_vec())
            .await
            .unwrap_or_else(|e| panic!("after {after}: query refused: {e}"));
        let ticket = info.endpoint[0].ticket.clone().expect("ticket");
        let data = self
            .get(ticket.ticket)
            .await
            .unwrap_or_else(|e| panic!("after {after}: fetch failed: {e}"));
        let batches = arrow_flight::utils::flight_data_to_batches(&data).expect("decodes");
        let value = batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("an Int64 column")
            .value(0);
        assert_eq!(value, 42, "after {after}");
    }
}

/// Asserts `result` failed with one of `codes` (never INTERNAL) and the
/// server still answers.
async fn refused<T: std::fmt::Debug>(
    raw: &mut Raw,
    case: &str,
    result: Result<T, Status>,
    codes: &[Code],
) {
    let status = match result {
        Err(s) => s,
        Ok(v) => panic!("{case}: accepted: {v:?}"),
    };
    assert_ne!(status.code(), Code::Internal, "{case}: {status:?}");
    assert!(
        codes.contains(&status.code()),
        "{case}: expected one of {codes:?}, got {status:?}"
    );
    raw.still_serving(case).await;
}

/// `Any` of `type_url` with `value`.
fn any(type_url: &str, value: impl Into<prost::bytes::Bytes>) -> Vec<u8> {
    Any {
        type_url: type_url.into(),
        value: value.into(),
    }
    .encode_to_vec()
}

/// `message` packed in an `Any`, its value cut in half (a field's length
/// prefix then claims bytes that are not there).
fn truncated<M: ProstMessageExt>(message: &M) -> Vec<u8> {
    let value = message.encode_to_vec();
    assert!(value.len() > 4, "long enough to truncate");
    any(M::type_url(), value[..value.len() / 2].to_vec())
}

/// Bytes that are no protobuf: a field tag with the invalid wire type 7.
const GARBAGE: &[u8] = &[0xff, 0xff, 0xff, 0xff, 0x0f, 0x07, 0x42];

/// `CommandStatementQuery` whose text is not UTF-8 (prost refuses it).
fn not_utf8_query() -> Vec<u8> {
    // Field 1 (query), length 3, bytes that are not UTF-8.
    any(
        CommandStatementQuery::type_url(),
        vec![0x0a, 3, 0xc3, 0x28, 0xff],
    )
}

#[tokio::test]
async fn garbage_commands_and_tickets() {
    let server = TestServer::start(false).await;
    let mut raw = Raw::connect(server.url()).await;
    let query = CommandStatementQuery {
        query: "SELECT 'a statement long enough to cut' AS x".into(),
        transaction_id: None,
    };
    let tables = CommandGetTables {
        catalog: Some("seglake".into()),
        db_schema_filter_pattern: Some("public".into()),
        table_name_filter_pattern: Some("%".into()),
        table_types: vec!["TABLE".into()],
        include_schema: true,
    };
    let bad = [Code::InvalidArgument];
    // An unknown command is not supported: INVALID_ARGUMENT or UNIMPLEMENTED.
    let unknown = [Code::InvalidArgument, Code::Unimplemented];
    let cases: Vec<(&str, Vec<u8>, &[Code])> = vec![
        ("not a protobuf", GARBAGE.to_vec(), &bad),
        (
            "an unknown type_url",
            any("type.googleapis.com/no.such.Command", GARBAGE.to_vec()),
            &unknown,
        ),
        ("an empty command", vec![], &unknown),
        ("a truncated CommandStatementQuery", truncated(&query), &bad),
        ("a truncated CommandGetTables", truncated(&tables), &bad),
        ("a query that is not UTF-8", not_utf8_query(), &bad),
        (
            "a prepared statement handle that is garbage",
            CommandPreparedStatementQuery {
                prepared_statement_handle: GARBAGE.to_vec().into(),
            }
            .as_any()
            .encode_to_vec(),
            &bad,
        ),
    ];
    for (case, cmd, codes) in &cases {
        let result = raw.info(cmd.clone()).await;
        refused(
            &mut raw,
            &format!("GetFlightInfo with {case}"),
            result,
            codes,
        )
        .await;
    }

    // DoGet: the same garbage as tickets, and statement handles that are
    // not ours.
    let mut tickets = cases;
    tickets.push((
        "a statement ticket with a made-up handle",
        TicketStatementQuery {
            statement_handle: GARBAGE.to_vec().into(),
        }
        .as_any()
        .encode_to_vec(),
        &bad,
    ));
    tickets.push((
        "a truncated TicketStatementQuery",
        truncated(&TicketStatementQuery {
            statement_handle: vec![7; 64].into(),
        }),
        &bad,
    ));
    for (case, ticket, codes) in tickets {
        let result = raw.get(ticket).await;
        refused(&mut raw, &format!("DoGet with {case}"), result, codes).await;
    }
}

#[tokio::test]
async fn garbage_actions() {
    let server = TestServer::start(false).await;
    let mut raw = Raw::connect(server.url()).await;
    let create = ActionCreatePreparedStatementRequest {
        query: "SELECT 'a statement long enough to cut'".into(),
        transaction_id: None,
    };
    let close = ActionClosePreparedStatementRequest {
        prepared_statement_handle: vec![1; 48].into(),
    };
    let bad = [Code::InvalidArgument];
    let cases: Vec<(&str, &str, Vec<u8>, &[Code])> = vec![
        ("an unknown action", "NoSuchAction", vec![], &bad),
        (
            "an unknown action with a body",
            "DropEverything",
            GARBAGE.to_vec(),
            &bad,
        ),
        (
            "CreatePreparedStatement, not a protobuf",
            "CreatePreparedStatement",
            GARBAGE.to_vec(),
            &bad,
        ),
        (
            "CreatePreparedStatement, another message",
            "CreatePreparedStatement",
            close.as_any().encode_to_vec(),
            &bad,
        ),
        (
            "CreatePreparedStatement, truncated",
            "CreatePreparedStatement",
            truncated(&create),
            &bad,
        ),
        (
            "CreatePreparedStatement, empty",
            "CreatePreparedStatement",
            vec![],
            &bad,
        ),
        (
            "ClosePreparedStatement, not a protobuf",
            "ClosePreparedStatement",
            GARBAGE.to_vec(),
            &bad,
        ),
        (
            "ClosePreparedStatement, truncated",
            "ClosePreparedStatement",
            truncated(&close),
            &bad,
        ),
        (
            "ClosePreparedStatement, a made-up handle",
            "ClosePreparedStatement",
            close.as_any().encode_to_vec(),
            &bad,
        ),
        (
            "SetSessionOptions, not a protobuf",
            "SetSessionOptions",
            GARBAGE.to_vec(),
            &bad,
        ),
    ];
    for (case, kind, body, codes) in cases {
        let result = raw.action(kind, body).await;
        refused(&mut raw, &format!("DoAction {case}"), result, codes).await;
    }
    // Cancel actions: an error of any code but INTERNAL.
    let any_code = [
        Code::InvalidArgument,
        Code::NotFound,
        Code::Unimplemented,
        Code::PermissionDenied,
    ];
    for kind in ["CancelFlightInfo", "CancelQuery"] {
        for (what, body) in [
            ("not a protobuf", GARBAGE.to_vec()),
            ("an unknown Any", any("x", vec![1, 2])),
        ] {
            let result = raw.action(kind, body).await;
            refused(
                &mut raw,
                &format!("DoAction {kind}, {what}"),
                result,
                &any_code,
            )
            .await;
        }
    }

    // A real prepared statement still works after all that.
    let body = raw
        .action(
            "CreatePreparedStatement",
            ActionCreatePreparedStatementRequest {
                query: "SELECT 7".into(),
                transaction_id: None,
            }
            .as_any()
            .encode_to_vec(),
        )
        .await
        .expect("a prepared statement");
    let result: ActionCreatePreparedStatementResult = Any::decode(body[0].clone())
        .expect("an Any")
        .unpack()
        .expect("decodes")
        .expect("the result message");
    assert!(!result.prepared_statement_handle.is_empty());
}

/// Flight.proto's session option messages (arrow-flight 59 has none).
mod session {
    use std::collections::HashMap;

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(string, tag = "1")]
        String(String),
        #[prost(bool, tag = "2")]
        Bool(bool),
        #[prost(sfixed64, tag = "3")]
        Int64(i64),
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct OptionValue {
        #[prost(oneof = "Value", tags = "1, 2, 3")]
        pub value: Option<Value>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SetRequest {
        #[prost(map = "string, message", tag = "1")]
        pub options: HashMap<String, OptionValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Error {
        #[prost(int32, tag = "1")]
        pub value: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SetResult {
        #[prost(map = "string, message", tag = "1")]
        pub errors: HashMap<String, Error>,
    }

    /// `SetSessionOptionsError.ErrorValue`.
    pub const INVALID_NAME: i32 = 1;
    pub const INVALID_VALUE: i32 = 2;
}

/// SetSessionOptions answers per option (Flight.proto): an unknown name or
/// a value of the wrong type is an error of that option in the result, not
/// a failed call; the valid options of the same request still apply.
#[tokio::test]
async fn unknown_session_options_and_wrong_value_types() {
    use session::{OptionValue, SetRequest, SetResult, Value};
    let server = TestServer::start(false).await;
    let mut raw = Raw::connect(server.url()).await;
    let options = [
        (
            "no_such_option",
            OptionValue {
                value: Some(Value::String("1".into())),
            },
        ),
        (
            "seglake.no_such_setting",
            OptionValue {
                value: Some(Value::Int64(1)),
            },
        ),
        (
            "seglake.write_row_group_rows",
            OptionValue {
                value: Some(Value::Bool(true)),
            },
        ),
        (
            "datafusion.execution.batch_size",
            OptionValue {
                value: Some(Value::String("many".into())),
            },
        ),
        (
            "catalog",
            OptionValue {
                value: Some(Value::String("other".into())),
            },
        ),
        ("schema", OptionValue { value: None }),
        // Valid: applied despite the others.
        (
            "datafusion.execution.batch_size",
            OptionValue {
                value: Some(Value::Int64(1234)),
            },
        ),
    ];
    let (valid, invalid) = options.split_last().expect("options");
    let request = SetRequest {
        options: invalid
            .iter()
            .cloned()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    };
    let body = raw
        .action("SetSessionOptions", request.encode_to_vec())
        .await
        .expect("SetSessionOptions answers with per-option errors");
    let result = SetResult::decode(body[0].clone()).expect("a SetSessionOptionsResult");
    let mut errors: Vec<(String, i32)> = result
        .errors
        .into_iter()
        .map(|(k, e)| (k, e.value))
        .collect();
    errors.sort();
    assert_eq!(
        errors,
        vec![
            ("catalog".to_string(), session::INVALID_VALUE),
            (
                "datafusion.execution.batch_size".to_string(),
                session::INVALID_VALUE
            ),
            ("no_such_option".to_string(), session::INVALID_NAME),
            ("schema".to_string(), session::INVALID_VALUE),
            (
                "seglake.no_such_setting".to_string(),
                session::INVALID_VALUE
            ),
            (
                "seglake.write_row_group_rows".to_string(),
                session::INVALID_VALUE
            ),
        ]
    );
    let request = SetRequest {
        options: [(valid.0.to_string(), valid.1.clone())].into(),
    };
    let body = raw
        .action("SetSessionOptions", request.encode_to_vec())
        .await
        .expect("a valid option");
    assert!(
        SetResult::decode(body[0].clone())
            .expect("decodes")
            .errors
            .is_empty()
    );
    raw.still_serving("session options").await;
}

fn ingest_descriptor(table: &str) -> FlightDescriptor {
    let cmd = CommandStatementIngest {
        table_definition_options: Some(TableDefinitionOptions {
            if_not_exist: TableNotExistOption::Create.into(),
            if_exists: TableExistsOption::Fail.into(),
        }),
        table: table.into(),
        schema: None,
        catalog: None,
        temporary: false,
        transaction_id: None,
        options: Default::default(),
    };
    FlightDescriptor::new_cmd(cmd.as_any().encode_to_vec())
}

/// The IPC messages (schema first) of one batch with `n` rows of (id, name).
fn people(n: i64) -> (Arc<Schema>, Vec<FlightData>) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(Int64Array::from_iter_values(0..n)),
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("name {i}")),
            )),
        ],
    )
    .expect("batch");
    let data = batches_to_flight_data(&schema, vec![batch]).expect("encodes");
    (schema, data)
}

#[tokio::test]
async fn malformed_arrow_ipc_in_do_put() {
    let server = TestServer::start(false).await;
    let mut raw = Raw::connect(server.url()).await;
    let (_, good) = people(100);
    assert_eq!(good.len(), 2, "a schema message and a batch");
    let with_descriptor = |mut messages: Vec<FlightData>, table: &str| {
        messages[0].flight_descriptor = Some(ingest_descriptor(table));
        messages
    };

    // Another schema's batch after the schema: (flag: Boolean) rows sent
    // under the (id, name) schema.
    let other = Arc::new(Schema::new(vec![Field::new(
        "flag",
        DataType::Boolean,
        false,
    )]));
    let other_batch = RecordBatch::try_new(
        Arc::clone(&other),
        vec![Arc::new(arrow::array::BooleanArray::from(vec![true; 100]))],
    )
    .expect("batch");
    let other_data = batches_to_flight_data(&other, vec![other_batch]).expect("encodes");
    // A batch of the right schema whose body is cut short.
    let mut short = good.clone();
    let body = short[1].data_body.clone();
    short[1].data_body = body.slice(..body.len() / 3);

    let cases: Vec<(&str, Vec<FlightData>)> =
        vec![
            (
                "a data_header that is garbage",
                vec![
                    FlightData::new()
                        .with_descriptor(ingest_descriptor("hostile_a"))
                        .with_data_header(GARBAGE.to_vec()),
                ],
            ),
            (
                "a batch message before any schema",
                with_descriptor(vec![good[1].clone()], "hostile_b"),
            ),
            (
                "a batch whose body is shorter than its header says",
                with_descriptor(short, "hostile_c"),
            ),
            (
                "a batch of another schema",
                with_descriptor(vec![good[0].clone(), other_data[1].clone()], "hostile_d"),
            ),
            (
                "a schema message cut short",
                with_descriptor(
                    vec![FlightData::new().with_data_header(
                        good[0].data_header.slice(..good[0].data_header.len() / 2),
                    )],
                    "hostile_e",
                ),
            ),
        ];
    for (case, messages) in cases {
        let result = raw.put(messages).await;
        refused(
            &mut raw,
            &format!("ingest with {case}"),
            result,
            &[Code::InvalidArgument],
        )
        .await;
    }
    // Nothing was created by the failed ingests.
    for t in [
        "hostile_a",
        "hostile_b",
        "hostile_c",
        "hostile_d",
        "hostile_e",
    ] {
        let cmd = CommandStatementQuery {
            query: format!("SELECT * FROM {t}"),
            transaction_id: None,
        };
        let status = raw.info(cmd.as_any().encode_to_vec()).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{t}: {status:?}");
    }

    // No descriptor, no message at all, a descriptor that is garbage.
    let cases: Vec<(&str, Vec<FlightData>)> = vec![
        ("no descriptor", good.clone()),
        ("no message", vec![]),
        ("a descriptor that is not a protobuf", {
            let mut m = good.clone();
            m[0].flight_descriptor = Some(FlightDescriptor::new_cmd(GARBAGE.to_vec()));
            m
        }),
        ("a truncated CommandStatementIngest", {
            let mut m = good.clone();
            let cmd = CommandStatementIngest {
                table: "hostile_f".into(),
                ..Default::default()
            };
            m[0].flight_descriptor = Some(FlightDescriptor::new_cmd(truncated(&cmd)));
            m
        }),
    ];
    for (case, messages) in cases {
        let result = raw.put(messages).await;
        refused(
            &mut raw,
            &format!("DoPut with {case}"),
            result,
            &[Code::InvalidArgument],
        )
        .await;
    }

    // Parameters of a prepared statement: garbage IPC.
    let body = raw
        .action(
            "CreatePreparedStatement",
            ActionCreatePreparedStatementRequest {
                query: "SELECT ? + 1".into(),
                transaction_id: None,
            }
            .as_any()
            .encode_to_vec(),
        )
        .await
        .expect("a prepared statement");
    let prepared: ActionCreatePreparedStatementResult = Any::decode(body[0].clone())
        .expect("an Any")
        .unpack()
        .expect("decodes")
        .expect("the result message");
    let bind = FlightDescriptor::new_cmd(
        CommandPreparedStatementQuery {
            prepared_statement_handle: prepared.prepared_statement_handle,
        }
        .as_any()
        .encode_to_vec(),
    );
    let cases: Vec<(&str, Vec<FlightData>)> = vec![
        (
            "a data_header that is garbage",
            vec![
                FlightData::new()
                    .with_descriptor(bind.clone())
                    .with_data_header(GARBAGE.to_vec()),
            ],
        ),
        ("a batch before any schema", {
            let mut m = vec![good[1].clone()];
            m[0].flight_descriptor = Some(bind.clone());
            m
        }),
        ("a batch cut short", {
            let (_, mut m) = people(1);
            let body = m[1].data_body.clone();
            m[1].data_body = body.slice(..body.len() / 3);
            m[0].flight_descriptor = Some(bind.clone());
            m
        }),
    ];
    for (case, messages) in cases {
        let result = raw.put(messages).await;
        refused(
            &mut raw,
            &format!("parameters with {case}"),
            result,
            &[Code::InvalidArgument],
        )
        .await;
    }
}

/// Messages over `--max-message-mb` are refused unread (tonic checks the
/// length prefix): OUT_OF_RANGE, and the server goes on.
#[tokio::test]
async fn oversize_messages() {
    let (dir, engine) = seglake_tests::engine_with_demo(false).await;
    let running = start(
        Arc::clone(&engine),
        ServerOptions {
            users: Users::parse(["alice:secret"]).expect("users"),
            max_message_size: 1024 * 1024,
            ..ServerOptions::default()
        },
    )
    .await
    .expect("server starts");
    let mut raw = Raw::connect(format!("http://{}", running.addr())).await;
    // A DoPut batch of about 2 MiB.
    let (_, mut big) = people(60_000);
    assert!(
        big[1].data_body.len() > 1024 * 1024,
        "{}",
        big[1].data_body.len()
    );
    big[0].flight_descriptor = Some(ingest_descriptor("too_big"));
    let result = raw.put(big).await;
    refused(
        &mut raw,
        "a DoPut message over the limit",
        result,
        &[Code::OutOfRange, Code::ResourceExhausted],
    )
    .await;
    // A command over the limit.
    let cmd = CommandStatementQuery {
        query: format!("SELECT '{}'", "x".repeat(2 * 1024 * 1024)),
        transaction_id: None,
    };
    let result = raw.info(cmd.as_any().encode_to_vec()).await;
    refused(
        &mut raw,
        "a command over the limit",
        result,
        &[Code::OutOfRange, Code::ResourceExhausted],
    )
    .await;
    // A ticket over the limit.
    let result = raw.get(vec![0u8; 2 * 1024 * 1024]).await;
    refused(
        &mut raw,
        "a ticket over the limit",
        result,
        &[Code::OutOfRange, Code::ResourceExhausted],
    )
    .await;
    running.shutdown().await.expect("stops");
    drop(dir);
}

/// Many hostile calls at once on separate connections do not stop the
/// server answering (no global state is poisoned by a failed call).
#[tokio::test]
async fn hostile_calls_in_parallel() {
    let server = TestServer::start(false).await;
    let url = server.url();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move {
                let mut raw = Raw::connect(url).await;
                for _ in 0..5 {
                    let (_, good) = people(10);
                    let status = match i % 3 {
                        0 => raw.info(GARBAGE.to_vec()).await.map(|_| ()),
                        1 => raw.get(GARBAGE.to_vec()).await.map(|_| ()),
                        _ => raw.put(good).await.map(|_| ()),
                    }
                    .expect_err("refused");
                    assert_ne!(status.code(), Code::Internal, "{status:?}");
                }
                raw.still_serving("parallel garbage").await;
            })
        })
        .collect();
    for t in futures::future::join_all(tasks).await {
        t.expect("task");
    }
    let mut raw = Raw::connect(url).await;
    raw.still_serving("parallel garbage, new connection").await;
}
