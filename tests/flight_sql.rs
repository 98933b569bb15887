//! Flight SQL protocol tests against an in-process server on 127.0.0.1:0,
//! with arrow-flight's own Flight SQL client.
//!
//! Expected values come from the spec of the demo data set (500 profiles in
//! the test fixture) or from the statement itself, never from Seglake's output.

use std::sync::Arc;

use arrow::array::{AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow_flight::error::FlightError;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{
    CommandGetDbSchemas, CommandGetPrimaryKeys, CommandGetTables, CommandStatementIngest, SqlInfo,
};
use arrow_flight::sql::{TableDefinitionOptions, TableExistsOption, TableNotExistOption};
use arrow_flight::{Action, FlightDescriptor};
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use seglake_tests::{TEST_PROFILES, TestServer, fetch};
use tonic::Code;
use tonic::transport::Channel;

mod hostile;

fn code(e: &FlightError) -> Code {
    match e {
        FlightError::Tonic(s) => s.code(),
        // The client reports handshake failures as text.
        FlightError::Arrow(arrow::error::ArrowError::IpcError(m))
            if m.contains("Can't handshake") =>
        {
            if m.contains("authentication credentials") {
                Code::Unauthenticated
            } else {
                Code::Unknown
            }
        }
        other => panic!("expected a gRPC status, got {other:?}"),
    }
}

fn int64(batches: &[RecordBatch]) -> i64 {
    let b = &batches[0];
    b.column(0)
        .as_primitive::<arrow::datatypes::Int64Type>()
        .value(0)
}

#[tokio::test]
async fn login_and_tokens() {
    let server = TestServer::start(false).await;
    let mut c = server.anonymous_client().await;
    let err = c.handshake("alice", "wrong").await.unwrap_err();
    assert_eq!(code(&err), Code::Unauthenticated);
    let err = c.handshake("mallory", "secret").await.unwrap_err();
    assert_eq!(code(&err), Code::Unauthenticated);
    // No token at all.
    let err = c.execute("SELECT 1".into(), None).await.unwrap_err();
    assert_eq!(code(&err), Code::Unauthenticated);
    // A made-up token.
    c.set_token("not-a-token".into());
    let err = c.execute("SELECT 1".into(), None).await.unwrap_err();
    assert_eq!(code(&err), Code::Unauthenticated);

    let mut alice = server.client("alice", "secret").await;
    let info = alice
        .execute("SELECT 41 + 1 AS answer".into(), None)
        .await
        .unwrap();
    let (_, batches) = fetch(&mut alice, info).await.unwrap();
    assert_eq!(int64(&batches), 42);
}

#[tokio::test]
async fn basic_auth_without_padding() {
    let server = TestServer::start(false).await;
    let mut c = server.anonymous_client().await;
    // "bob:hunter2" is "Ym9iOmh1bnRlcjI=" in padded base64.
    c.set_header("authorization", "Basic Ym9iOmh1bnRlcjI");
    let info = c.execute("SELECT 1".into(), None).await.unwrap();
    assert_eq!(info.endpoint.len(), 1);
}

#[tokio::test]
async fn tickets_and_handles_belong_to_their_user() {
    let server = TestServer::start(false).await;
    let mut alice = server.client("alice", "secret").await;
    let mut bob = server.client("bob", "hunter2").await;
    let info = alice.execute("SELECT 1".into(), None).await.unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let err = bob.do_get(ticket.clone()).await.unwrap_err();
    assert_eq!(code(&err), Code::PermissionDenied);
    // A tampered ticket is refused.
    let mut forged = ticket.ticket.to_vec();
    let n = forged.len();
    forged[n - 40] ^= 1;
    let err = alice
        .do_get(arrow_flight::Ticket::new(forged))
        .await
        .unwrap_err();
    assert_eq!(code(&err), Code::InvalidArgument);
    // Alice's own ticket works.
    let mut s = alice.do_get(ticket).await.unwrap();
    assert!(s.next().await.is_some());
}

#[tokio::test]
async fn query_schema_matches_flight_info_and_locations_are_empty() {
    let server = TestServer::start(true).await;
    let mut c = server.client("alice", "secret").await;
    let info = c
        .execute(
            "SELECT * FROM events WHERE event_type = 'purchase'".into(),
            None,
        )
        .await
        .unwrap();
    assert!(info.endpoint.iter().all(|e| e.location.is_empty()));
    let info_schema = Arc::new(Schema::try_from(info.clone()).unwrap());
    let (stream_schema, batches) = fetch(&mut c, info).await.unwrap();
    assert_eq!(stream_schema, info_schema);
    assert!(batches.iter().all(|b| b.schema() == info_schema));
    let event_type = info_schema.index_of("event_type").unwrap();
    for b in &batches {
        let col = b.column(event_type).as_string::<i32>();
        assert!(col.iter().all(|v| v == Some("purchase")));
    }

    let info = c
        .execute("SELECT count(*) AS n FROM profiles".into(), None)
        .await
        .unwrap();
    let (_, batches) = fetch(&mut c, info).await.unwrap();
    assert_eq!(int64(&batches), TEST_PROFILES as i64);
}

#[tokio::test]
async fn prepared_statements_with_parameters() {
    let server = TestServer::start(true).await;
    let mut c = server.client("alice", "secret").await;
    let mut stmt = c
        .prepare(
            "SELECT profile_id FROM profiles WHERE profile_id = ? OR birth_year > ?".into(),
            None,
        )
        .await
        .unwrap();
    let params = stmt.parameter_schema().unwrap().clone();
    assert_eq!(params.fields().len(), 2);
    assert_eq!(params.field(0).data_type(), &DataType::Utf8);
    assert_eq!(params.field(1).data_type(), &DataType::Int32);
    assert_eq!(stmt.dataset_schema().unwrap().field(0).name(), "profile_id");
    // The demo's profile ids are p + 9 digits; no one is born after 3000.
    let binding = RecordBatch::try_from_iter([
        ("0", Arc::new(StringArray::from(vec!["p000000007"])) as _),
        ("1", Arc::new(Int64Array::from(vec![3000])) as _),
    ])
    .unwrap();
    stmt.set_parameters(binding).unwrap();
    let info = stmt.execute().await.unwrap();
    let (_, batches) = fetch(&mut c, info).await.unwrap();
    let ids: Vec<_> = batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_string::<i32>()
                .iter()
                .map(|v| v.unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(ids, vec!["p000000007".to_string()]);
    stmt.close().await.unwrap();

    // Wrong number of parameters is the client's error.
    let mut stmt = c.prepare("SELECT ? + 1".into(), None).await.unwrap();
    let err = stmt.execute().await.unwrap_err();
    assert_eq!(code(&err), Code::InvalidArgument);
}

#[tokio::test]
async fn commands_run_at_get_flight_info() {
    let server = TestServer::start(true).await;
    let mut c = server.client("alice", "secret").await;
    // No DoGet: the schema must exist anyway.
    let info = c
        .execute("CREATE SCHEMA marketing".into(), None)
        .await
        .unwrap();
    assert_eq!(Schema::try_from(info).unwrap(), Schema::empty());
    let snapshot = server.engine.catalog().await.unwrap();
    assert!(snapshot.state.schemas.contains_key("marketing"));

    // Updates report counts: 0 for DDL, rows for INSERT.
    let n = c
        .execute_update(
            "CREATE TABLE marketing.copy (id VARCHAR, n BIGINT)".into(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(n, 0);
    let n = c
        .execute_update(
            "INSERT INTO marketing.copy VALUES ('a', 1), ('b', 2), ('c', 3)".into(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(n, 3);
    let info = c
        .execute("SELECT sum(n) FROM marketing.copy".into(), None)
        .await
        .unwrap();
    let (_, batches) = fetch(&mut c, info).await.unwrap();
    assert_eq!(int64(&batches), 6);

    // A prepared DDL statement reports an empty dataset schema (JDBC then
    // runs it as an update).
    let stmt = c
        .prepare("DROP TABLE marketing.copy".into(), None)
        .await
        .unwrap();
    assert_eq!(stmt.dataset_schema().unwrap(), &Schema::empty());
    let mut stmt = stmt;
    assert_eq!(stmt.execute_update().await.unwrap(), 0);
    assert!(
        !server.engine.catalog().await.unwrap().state.schemas["marketing"]
            .tables
            .contains_key("copy")
    );
}

#[tokio::test]
async fn errors_have_the_right_codes_and_the_server_survives() {
    let server = TestServer::start(true).await;
    let mut c = server.client("alice", "secret").await;
    let cases = [
        ("SELEC 1", Code::InvalidArgument),
        ("SELECT * FROM no_such_table", Code::NotFound),
        ("SELECT no_such_column FROM profiles", Code::InvalidArgument),
        ("SELECT no_such_function(1)", Code::InvalidArgument),
        ("CREATE TEMPORARY TABLE t (a INT)", Code::Unimplemented),
        ("DROP TABLE no_such_table", Code::NotFound),
    ];
    for (sql, expected) in cases {
        let err = c.execute(sql.into(), None).await.unwrap_err();
        assert_eq!(code(&err), expected, "{sql}: {err}");
    }
    // Runtime errors surface at DoGet.
    let info = c.execute("SELECT CAST('x' AS INT)".into(), None).await;
    if let Ok(info) = info {
        let err = fetch(&mut c, info).await.unwrap_err();
        assert_eq!(code(&err), Code::InvalidArgument);
    }
    let info = c
        .execute("SELECT count(*) FROM profiles".into(), None)
        .await
        .unwrap();
    let (_, batches) = fetch(&mut c, info).await.unwrap();
    assert_eq!(int64(&batches), TEST_PROFILES as i64);
}

#[tokio::test]
async fn metadata() {
    let server = TestServer::start(true).await;
    let mut c = server.client("alice", "secret").await;

    let info = c.get_catalogs().await.unwrap();
    let (_, b) = fetch(&mut c, info).await.unwrap();
    assert_eq!(b[0].column(0).as_string::<i32>().value(0), "seglake");
    assert_eq!(b[0].num_rows(), 1);

    // No catalog given (what ADBC sends).
    let info = c
        .get_db_schemas(CommandGetDbSchemas {
            catalog: None,
            db_schema_filter_pattern: None,
        })
        .await
        .unwrap();
    let (_, b) = fetch(&mut c, info).await.unwrap();
    let schemas: Vec<_> = b[0].column(1).as_string::<i32>().iter().flatten().collect();
    for s in ["information_schema", "public", "system"] {
        assert!(schemas.contains(&s), "{schemas:?}");
    }

    let info = c
        .get_tables(CommandGetTables {
            catalog: None,
            db_schema_filter_pattern: Some("pub%".into()),
            table_name_filter_pattern: Some("%e%".into()),
            table_types: vec![],
            include_schema: true,
        })
        .await
        .unwrap();
    let (_, b) = fetch(&mut c, info).await.unwrap();
    let names: Vec<_> = b[0].column(2).as_string::<i32>().iter().flatten().collect();
    assert_eq!(names, vec!["events", "identifiers", "profiles"]);
    let schema_bytes = b[0].column(4).as_binary::<i32>().value(0);
    let events = Schema::try_from(arrow_flight::IpcMessage(schema_bytes.to_vec().into())).unwrap();
    assert_eq!(
        events.field_with_name("event_date").unwrap().data_type(),
        &DataType::Date32
    );

    let info = c.get_table_types().await.unwrap();
    let (_, b) = fetch(&mut c, info).await.unwrap();
    let types: Vec<_> = b[0].column(0).as_string::<i32>().iter().flatten().collect();
    assert_eq!(types, vec!["TABLE", "VIEW"]);

    let info = c
        .get_primary_keys(CommandGetPrimaryKeys {
            catalog: None,
            db_schema: None,
            table: "profiles".into(),
        })
        .await
        .unwrap();
    let (schema, b) = fetch(&mut c, info).await.unwrap();
    assert_eq!(b.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
    assert_eq!(schema.field(5).name(), "key_sequence");

    // Every key the JDBC driver reads, in one call.
    let all: Vec<SqlInfo> = (0..=11)
        .chain(100..=101)
        .chain(500..=576)
        .filter_map(|i| SqlInfo::try_from(i).ok())
        .collect();
    let wanted = all.len();
    let info = c.get_sql_info(all).await.unwrap();
    let (_, b) = fetch(&mut c, info).await.unwrap();
    let got: usize = b.iter().map(|b| b.num_rows()).sum();
    assert_eq!(got, wanted);
    let info = c
        .get_sql_info(vec![SqlInfo::FlightSqlServerName])
        .await
        .unwrap();
    let (_, b) = fetch(&mut c, info).await.unwrap();
    let value = b[0]
        .column(1)
        .as_any()
        .downcast_ref::<arrow::array::UnionArray>()
        .unwrap();
    assert_eq!(value.value(0).as_string::<i32>().value(0), "Seglake");
}

#[tokio::test]
async fn get_schema() {
    let server = TestServer::start(true).await;
    let mut c = server.client("alice", "secret").await;
    let cmd = arrow_flight::sql::CommandStatementQuery {
        query: "SELECT profile_id, birth_year FROM profiles".into(),
        transaction_id: None,
    };
    let descriptor =
        FlightDescriptor::new_cmd(arrow_flight::sql::ProstMessageExt::as_any(&cmd).encode_to_vec());
    let mut req = tonic::Request::new(descriptor);
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", c.token().unwrap()).parse().unwrap(),
    );
    let result = c.inner_mut().get_schema(req).await.unwrap().into_inner();
    let schema = Schema::try_from(&result).unwrap();
    assert_eq!(schema.field(0).name(), "profile_id");
    assert_eq!(schema.field(1).data_type(), &DataType::Int32);
}

#[tokio::test]
async fn ingest_and_partial_ingest() {
    let server = TestServer::start(false).await;
    let mut c = server.client("alice", "secret").await;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(StringArray::from(vec![Some("a"), None, Some("c")])),
        ],
    )
    .unwrap();
    let cmd =
        |if_not_exist: TableNotExistOption, if_exists: TableExistsOption| CommandStatementIngest {
            table_definition_options: Some(TableDefinitionOptions {
                if_not_exist: if_not_exist.into(),
                if_exists: if_exists.into(),
            }),
            table: "people".into(),
            schema: None,
            catalog: None,
            temporary: false,
            transaction_id: None,
            options: Default::default(),
        };
    let create = cmd(TableNotExistOption::Create, TableExistsOption::Fail);
    let append = cmd(TableNotExistOption::Fail, TableExistsOption::Append);
    let n = c
        .execute_ingest(create.clone(), futures::stream::iter([Ok(batch.clone())]))
        .await
        .unwrap();
    assert_eq!(n, 3);
    let err = c
        .execute_ingest(create, futures::stream::iter([Ok(batch.clone())]))
        .await
        .unwrap_err();
    assert_eq!(code(&err), Code::AlreadyExists);
    let n = c
        .execute_ingest(
            append.clone(),
            futures::stream::iter([Ok(batch.clone()), Ok(batch.clone())]),
        )
        .await
        .unwrap();
    assert_eq!(n, 6);
    let info = c
        .execute(
            "SELECT count(*), sum(id), count(name) FROM people".into(),
            None,
        )
        .await
        .unwrap();
    let (_, b) = fetch(&mut c, info).await.unwrap();
    let row: Vec<i64> = (0..3)
        .map(|i| {
            b[0].column(i)
                .as_primitive::<arrow::datatypes::Int64Type>()
                .value(0)
        })
        .collect();
    assert_eq!(row, vec![9, 18, 6]);

    let info = c
        .execute("SELECT count(*) FROM people".into(), None)
        .await
        .unwrap();
    let (_, b) = fetch(&mut c, info).await.unwrap();
    assert_eq!(int64(&b), 9);
    let err = c
        .execute_ingest(
            append_to("missing"),
            futures::stream::iter([Ok(batch.clone())]),
        )
        .await
        .unwrap_err();
    assert_eq!(code(&err), Code::NotFound);
}

fn append_to(table: &str) -> CommandStatementIngest {
    CommandStatementIngest {
        table_definition_options: Some(TableDefinitionOptions {
            if_not_exist: TableNotExistOption::Fail.into(),
            if_exists: TableExistsOption::Append.into(),
        }),
        table: table.into(),
        schema: None,
        catalog: None,
        temporary: false,
        transaction_id: None,
        options: Default::default(),
    }
}

/// An ingest whose input fails midway (a client that dies, a bad batch)
/// leaves nothing visible: neither a table nor files for create, nor rows
/// for append. (Through Flight, a client that gives up simply ends its
/// stream, so the failure is injected at the engine's ingest boundary.)
#[tokio::test]
async fn failed_ingest_leaves_nothing() {
    let (dir, engine) = seglake_tests::engine_with_demo(false).await;
    let session = engine.session("alice").unwrap();
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![Arc::new(Int64Array::from(vec![1, 2, 3]))],
    )
    .unwrap();
    let failing = || {
        futures::stream::iter([
            Ok(batch.clone()),
            Err(seglake_engine::EngineError::InvalidArgument(
                "client went away".into(),
            )),
        ])
    };
    let table = datafusion::common::TableReference::bare("half");
    let mode = seglake_engine::IngestMode::Create;
    assert!(
        session
            .ingest(&table, mode, Arc::clone(&schema), failing())
            .await
            .is_err()
    );
    assert!(
        engine
            .catalog()
            .await
            .unwrap()
            .state
            .table("public", "half")
            .is_err()
    );
    assert!(walk(&dir.path().join("tables/public/half")).is_empty());

    let ok = futures::stream::iter([Ok(batch.clone())]);
    session
        .ingest(&table, mode, Arc::clone(&schema), ok)
        .await
        .unwrap();
    let append = seglake_engine::IngestMode::Append;
    assert!(
        session
            .ingest(&table, append, Arc::clone(&schema), failing())
            .await
            .is_err()
    );
    // Delta: the failed append committed nothing (versions 0 = create and
    // 1 = first ingest only); a data file it may have uploaded is not in
    // the log, so no reader sees it.
    let files = walk(&dir.path().join("tables/public/half"));
    let logs: Vec<_> = files
        .iter()
        .filter(|f| f.to_string_lossy().contains("_delta_log"))
        .collect();
    assert_eq!(logs.len(), 2, "only two commits: {files:?}");
    let replace = seglake_engine::IngestMode::Replace;
    assert!(
        session
            .ingest(&table, replace, Arc::clone(&schema), failing())
            .await
            .is_err()
    );
    assert_eq!(
        walk(&dir.path().join("tables/public/half")),
        files,
        "a failed replace keeps the old data"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// SetSessionOptions { key: SessionOptionValue { string_value: value } }:
/// field 1 map entry (field 1 key, field 2 value message with its field 1
/// string), encoded by hand.
fn set_option(key: &str, value: &str) -> Action {
    let mut option = vec![0x0a, value.len() as u8];
    option.extend_from_slice(value.as_bytes());
    let mut entry = vec![0x0a, key.len() as u8];
    entry.extend_from_slice(key.as_bytes());
    entry.extend_from_slice(&[0x12, option.len() as u8]);
    entry.extend_from_slice(&option);
    let mut body = vec![0x0a, entry.len() as u8];
    body.extend_from_slice(&entry);
    Action {
        r#type: "SetSessionOptions".into(),
        body: body.into(),
    }
}

/// The results of an action.
async fn do_action(
    c: &mut FlightSqlServiceClient<Channel>,
    action: Action,
) -> Vec<arrow_flight::Result> {
    c.do_action(action)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

#[tokio::test]
async fn session_options_and_close() {
    let server = TestServer::start(false).await;
    let mut c = server.client("alice", "secret").await;
    let get = Action {
        r#type: "GetSessionOptions".into(),
        body: Default::default(),
    };
    let results = do_action(&mut c, get.clone()).await;
    let text = String::from_utf8_lossy(&results[0].body);
    assert!(
        text.contains("catalog") && text.contains("seglake"),
        "{text}"
    );
    assert!(text.contains("public"));

    c.execute_update("CREATE SCHEMA crm".into(), None)
        .await
        .unwrap();
    let results = do_action(&mut c, set_option("schema", "crm")).await;
    assert!(results[0].body.is_empty(), "no errors reported");
    let results = do_action(&mut c, get.clone()).await;
    assert!(String::from_utf8_lossy(&results[0].body).contains("crm"));

    // Seglake's own settings are session options too.
    let text = String::from_utf8_lossy(&results[0].body).to_string();
    assert!(text.contains("seglake.write_row_group_rows"), "{text}");
    assert!(!text.contains("4321"), "{text}");
    let results = do_action(&mut c, set_option("seglake.write_row_group_rows", "4321")).await;
    assert!(results[0].body.is_empty(), "no errors reported");
    let results = do_action(&mut c, get).await;
    assert!(String::from_utf8_lossy(&results[0].body).contains("4321"));
    // An unknown setting is reported as an error of that option.
    for (key, value) in [
        ("seglake.no_such_setting", "1"),
        ("seglake.write_row_group_rows", "many"),
        // The runtime is the server's (rule no-runtime-settings).
        ("datafusion.runtime.memory_limit", "1G"),
    ] {
        let results = do_action(&mut c, set_option(key, value)).await;
        assert!(!results[0].body.is_empty(), "{key} = {value}: no error");
    }

    let close = Action {
        r#type: "CloseSession".into(),
        body: Default::default(),
    };
    c.do_action(close)
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    let err = c.execute("SELECT 1".into(), None).await.unwrap_err();
    assert_eq!(code(&err), Code::Unauthenticated);
}

#[tokio::test]
async fn dropped_stream_does_not_break_the_server() {
    let server = TestServer::start(true).await;
    let mut c = server.client("alice", "secret").await;
    for _ in 0..3 {
        let info = c
            .execute("SELECT * FROM events CROSS JOIN profiles".into(), None)
            .await
            .unwrap();
        let ticket = info.endpoint[0].ticket.clone().unwrap();
        let mut s = c.do_get(ticket).await.unwrap();
        let first = s.next().await.unwrap().unwrap();
        assert!(first.num_rows() > 0);
        drop(s);
    }
    let info = c
        .execute("SELECT count(*) FROM profiles".into(), None)
        .await
        .unwrap();
    let (_, b) = fetch(&mut c, info).await.unwrap();
    assert_eq!(int64(&b), TEST_PROFILES as i64);
}

#[tokio::test]
async fn restart_keeps_the_catalog() {
    let server = TestServer::start(false).await;
    let mut c = server.client("alice", "secret").await;
    c.execute_update("CREATE SCHEMA kept".into(), None)
        .await
        .unwrap();
    let (dir, _) = server.stop().await;
    let engine = seglake_engine::Engine::open(seglake_engine::EngineConfig::new(
        dir.path().to_str().unwrap(),
    ))
    .await
    .unwrap();
    let server = TestServer::start_on(dir, engine).await;
    let mut c = server.client("bob", "hunter2").await;
    let info = c
        .execute(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'kept'".into(),
            None,
        )
        .await
        .unwrap();
    let (_, b) = fetch(&mut c, info).await.unwrap();
    assert_eq!(int64(&b), 1);
}

/// DoGet runs the plan its GetFlightInfo made (once, in the same session):
/// a commit by another session in between is not seen by that first fetch,
/// a second fetch of the ticket plans again and sees it, and a command in
/// the session (here a DROP) drops the kept plans, so the query is planned
/// again and fails cleanly instead of reading deleted files.
#[tokio::test]
async fn do_get_runs_the_plan_of_its_flight_info_once() {
    async fn sum(c: &mut FlightSqlServiceClient<Channel>, ticket: arrow_flight::Ticket) -> i64 {
        let batches: Vec<RecordBatch> =
            c.do_get(ticket).await.unwrap().try_collect().await.unwrap();
        int64(&batches)
    }
    let server = TestServer::start(false).await;
    let mut a = server.client("alice", "secret").await;
    let mut other = server.client("alice", "secret").await;
    a.execute_update("CREATE TABLE planned AS VALUES (1), (2)".into(), None)
        .await
        .unwrap();
    let info = a
        .execute("SELECT sum(column1) FROM planned".into(), None)
        .await
        .unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    other
        .execute_update("INSERT INTO planned VALUES (3)".into(), None)
        .await
        .unwrap();
    assert_eq!(
        sum(&mut a, ticket.clone()).await,
        3,
        "planned before the insert"
    );
    assert_eq!(sum(&mut a, ticket.clone()).await, 6, "planned again");
    // Another session fetching the ticket plans it itself.
    let info = a
        .execute("SELECT sum(column1) FROM planned".into(), None)
        .await
        .unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    assert_eq!(sum(&mut other, ticket.clone()).await, 6);
    // A command in the session drops its kept plans.
    a.execute_update("DROP TABLE planned".into(), None)
        .await
        .unwrap();
    let err = a.do_get(ticket).await.unwrap_err();
    assert_eq!(code(&err), Code::NotFound, "{err}");
}
