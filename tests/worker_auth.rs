//! Authenticated workers: the cluster secret on every worker call, the
//! bound on decoded messages, and what a worker refuses to run even from a
//! caller holding the secret (writes, files outside the allowed locations).
//!
//! The raw calls are made with tonic's generic client and message types
//! written here from `worker.proto`, not with Seglake's client, so that the
//! worker is checked against the wire, not against our own token code.

use std::net::SocketAddr;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::file_format::parquet::ParquetSink;
use datafusion::datasource::listing::{ListingTableUrl, PartitionedFile};
use datafusion::datasource::physical_plan::{CsvSource, FileScanConfigBuilder, FileSinkConfig};
use datafusion::datasource::sink::DataSinkExec;
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::TaskContext;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion_distributed::{MaybeEncoded, SetPlanRequest, TaskKey};
use futures::StreamExt;
use seglake_engine::distributed::{
    CLUSTER_TOKEN_HEADER, ClusterSecret, WORKER_VERSION, worker_client,
};
use seglake_engine::{Engine, EngineConfig, Outcome, Session};
use seglake_flight_server::{RunningServer, WorkerOptions, start_worker};
use seglake_tests::{engine_with_demo, test_cluster_config};
use tonic::Code;
use tonic::codegen::http::uri::PathAndQuery;

const SECRET: &str = "worker-auth-test-secret-0123456789";
const OTHER_SECRET: &str = "not-the-workers-secret-9876543210";

/// `GetWorkerInfoRequest` (no fields) with an unknown field to make it as
/// large as a test needs (a worker skips unknown fields once decoded).
#[derive(Clone, PartialEq, prost::Message)]
struct InfoRequest {
    #[prost(bytes = "vec", tag = "15")]
    padding: Vec<u8>,
}

/// `GetWorkerInfoResponse`.
#[derive(Clone, PartialEq, prost::Message)]
struct InfoResponse {
    #[prost(string, tag = "1")]
    version: String,
}

/// An `ExecuteTaskRequest` whose `task_key` (field 1) is not a message:
/// decoding it fails.
#[derive(Clone, PartialEq, prost::Message)]
struct Undecodable {
    #[prost(bytes = "vec", tag = "1")]
    task_key: Vec<u8>,
}

async fn start(warehouse: &str, secret: Option<&str>, max_message_bytes: usize) -> RunningServer {
    start_with(EngineConfig::new(warehouse), secret, max_message_bytes).await
}

async fn start_with(
    config: EngineConfig,
    secret: Option<&str>,
    max_message_bytes: usize,
) -> RunningServer {
    let engine = Engine::open(config).await.expect("worker engine opens");
    let mut options = WorkerOptions::new("127.0.0.1:0".parse().unwrap());
    options.cluster_secret = secret.map(|s| ClusterSecret::new(s).unwrap());
    options.max_message_bytes = max_message_bytes;
    start_worker(engine, options).await.expect("worker starts")
}

async fn grpc(addr: SocketAddr) -> tonic::client::Grpc<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("the worker accepts connections");
    tonic::client::Grpc::new(channel)
}

fn with_token<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert(CLUSTER_TOKEN_HEADER, token.parse().unwrap());
    }
    request
}

/// A raw `GetWorkerInfo` call.
async fn info(
    addr: SocketAddr,
    token: Option<&str>,
    padding: usize,
) -> Result<String, tonic::Status> {
    let mut grpc = grpc(addr).await;
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<InfoRequest, InfoResponse>::default();
    let request = with_token(
        InfoRequest {
            padding: vec![7; padding],
        },
        token,
    );
    grpc.unary(
        request,
        PathAndQuery::from_static("/worker.WorkerService/GetWorkerInfo"),
        codec,
    )
    .await
    .map(|r| r.into_inner().version)
}

/// A raw `ExecuteTask` call with a body that cannot be decoded.
async fn undecodable_task(addr: SocketAddr, token: Option<&str>) -> tonic::Status {
    let mut grpc = grpc(addr).await;
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<Undecodable, InfoResponse>::default();
    let request = with_token(
        Undecodable {
            task_key: vec![0xff; 16],
        },
        token,
    );
    match grpc
        .server_streaming(
            request,
            PathAndQuery::from_static("/worker.WorkerService/ExecuteTask"),
            codec,
        )
        .await
    {
        Ok(mut stream) => match stream.get_mut().message().await {
            Err(status) => status,
            Ok(message) => panic!("an undecodable task ran: {message:?}"),
        },
        Err(status) => status,
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn assert_unauthenticated(result: Result<String, tonic::Status>) -> tonic::Status {
    let status = result.expect_err("the call is refused");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(!status.message().contains(SECRET), "{status:?}");
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_without_a_valid_token_is_unauthenticated_before_anything_is_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let worker = start(dir.path().to_str().unwrap(), Some(SECRET), 64 << 20).await;
    let addr = worker.addr();
    let secret = ClusterSecret::new(SECRET).unwrap();

    // Right secret, fresh token: the worker answers.
    assert_eq!(
        info(addr, Some(&secret.token()), 0).await.unwrap(),
        WORKER_VERSION
    );

    // No token.
    let status = assert_unauthenticated(info(addr, None, 0).await);
    assert!(
        status.message().contains("requires the cluster secret"),
        "{status:?}"
    );
    // A token made with another secret.
    let other = ClusterSecret::new(OTHER_SECRET).unwrap();
    let status = assert_unauthenticated(info(addr, Some(&other.token()), 0).await);
    assert!(
        status.message().contains("invalid cluster token"),
        "{status:?}"
    );
    // The right secret, issued an hour ago, and one issued an hour ahead.
    for issued in [unix_now() - 3600, unix_now() + 3600] {
        let token = secret.token_issued_at(issued);
        let status = assert_unauthenticated(info(addr, Some(&token), 0).await);
        assert!(status.message().contains("expired"), "{status:?}");
    }
    // Not a token at all, and the secret itself sent as the token.
    assert_unauthenticated(info(addr, Some("v1.1.2.3"), 0).await);
    assert_unauthenticated(info(addr, Some(SECRET), 0).await);

    // A body the worker cannot decode: refused for the missing token, not
    // for the body (nothing was decoded); with the token, the body fails.
    let status = undecodable_task(addr, None).await;
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let status = undecodable_task(addr, Some(&secret.token())).await;
    assert_ne!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_ne!(status.code(), Code::Ok, "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_above_the_bound_is_refused_and_authentication_comes_first() {
    let dir = tempfile::tempdir().unwrap();
    let worker = start(dir.path().to_str().unwrap(), Some(SECRET), 1 << 20).await;
    let addr = worker.addr();
    let token = ClusterSecret::new(SECRET).unwrap().token();

    // Below the bound: decoded (the padding is an unknown field).
    assert_eq!(
        info(addr, Some(&token), 512 << 10).await.unwrap(),
        WORKER_VERSION
    );
    // Above it: refused, with or without a token, never decoded.
    let status = info(addr, Some(&token), 2 << 20)
        .await
        .expect_err("a 2 MiB message is refused by a 1 MiB bound");
    assert!(
        matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{status:?}"
    );
    assert!(status.message().contains("too large"), "{status:?}");
    assert_unauthenticated(info(addr, None, 2 << 20).await);
}

async fn rows(session: &Session, sql: &str) -> Vec<RecordBatch> {
    match session.execute(sql, vec![]).await.expect("statement plans") {
        Outcome::Rows { stream, .. } => datafusion::physical_plan::common::collect(stream)
            .await
            .expect("statement runs"),
        Outcome::Done { .. } => vec![],
    }
}

/// The single value of a one-row, one-column result, as text.
async fn value(session: &Session, sql: &str) -> String {
    let batches = rows(session, sql).await;
    let batches: Vec<_> = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
    assert_eq!(batches.len(), 1, "{sql}: {batches:?}");
    assert_eq!(batches[0].num_rows(), 1, "{sql}");
    arrow::util::display::array_value_to_string(batches[0].column(0), 0).unwrap()
}

async fn coordinator(
    warehouse: &str,
    workers: &[RunningServer],
    secret: Option<&str>,
) -> Arc<Engine> {
    let mut config = EngineConfig::new(warehouse);
    let urls: Vec<String> = workers
        .iter()
        .map(|w| format!("http://{}", w.addr()))
        .collect();
    let mut cluster = test_cluster_config(&urls);
    cluster.secret = secret.map(|s| ClusterSecret::new(s).unwrap());
    config.cluster = Some(cluster);
    Engine::open(config).await.expect("coordinator opens")
}

/// A query spread over the workers (the events span several files). Event
/// ids are distinct by construction (the day and the event's rank in it),
/// so it counts the events.
const DISTINCT_EVENTS: &str = "SELECT count(DISTINCT event_id) FROM events";
/// The states of the workers, one of each.
const STATES: &str = "SELECT string_agg(DISTINCT state, ',') FROM system.workers";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_a_coordinator_with_the_secret_gets_the_workers() {
    let (dir, single) = engine_with_demo(true).await;
    let warehouse = dir.path().to_str().unwrap().to_string();
    let events = value(
        &single.session("alice").unwrap(),
        "SELECT count(*) FROM events",
    )
    .await;
    // Two workers: a stage gets at most one task per live worker, and a
    // single task stays on the coordinator.
    let workers = [
        start(&warehouse, Some(SECRET), 64 << 20).await,
        start(&warehouse, Some(SECRET), 64 << 20).await,
    ];

    // The right secret: the workers are up and run the query's tasks.
    let good = coordinator(&warehouse, &workers, Some(SECRET)).await;
    assert_eq!(good.cluster().unwrap().live_urls().len(), 2);
    let session = good.session("alice").unwrap();
    assert_eq!(value(&session, DISTINCT_EVENTS).await, events);
    assert_eq!(value(&session, STATES).await, "up");
    let tasks: u64 = value(&session, "SELECT min(tasks) FROM system.workers")
        .await
        .parse()
        .unwrap();
    assert!(tasks > 0, "a worker got no task");

    // Another secret, then none: the workers answer but refuse; they are
    // unusable, say why, and queries run on the coordinator alone.
    for (secret, reason) in [
        (Some(OTHER_SECRET), "the worker refused the cluster secret"),
        (None, "the worker requires a cluster secret"),
    ] {
        let bad = coordinator(&warehouse, &workers, secret).await;
        assert!(bad.cluster().unwrap().live_urls().is_empty());
        let session = bad.session("alice").unwrap();
        assert_eq!(value(&session, STATES).await, "unusable");
        let error = value(&session, "SELECT min(last_error) FROM system.workers").await;
        assert!(error.contains(reason), "{error}");
        assert!(!error.contains(SECRET), "{error}");
        assert_eq!(value(&session, DISTINCT_EVENTS).await, events);
        assert_eq!(
            value(&session, "SELECT max(tasks) FROM system.workers").await,
            "0"
        );
    }
}

/// Sends `plan` to the worker as a coordinator holding the secret would
/// (SetPlanRequest on the coordinator channel): `Err` if the worker refuses
/// the fragment.
async fn set_plan(worker: &RunningServer, plan: Arc<dyn ExecutionPlan>) -> Result<(), String> {
    let url = url::Url::parse(&format!("http://{}", worker.addr())).unwrap();
    let mut client = worker_client(&url, Some(ClusterSecret::new(SECRET).unwrap())).unwrap();
    let request = SetPlanRequest {
        task_key: TaskKey {
            query_id: uuid::Uuid::new_v4(),
            stage_id: 1,
            task_number: 0,
        },
        task_count: 1,
        plan: MaybeEncoded::Decoded(plan),
        work_unit_feed_declarations: vec![],
        target_worker_url: url,
        query_start_time_ns: 0,
    };
    let ctx = Arc::new(TaskContext::default());
    client
        .coordinator_channel(
            Default::default(),
            request,
            futures::stream::empty().boxed(),
            ExecutionPlanMetricsSet::new(),
            &ctx,
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]))
}

/// A Parquet sink writing into `folder`.
fn sink_into(folder: &std::path::Path) -> Arc<dyn ExecutionPlan> {
    let url = format!("file://{}/", folder.display());
    let config = FileSinkConfig {
        original_url: url.clone(),
        object_store_url: ObjectStoreUrl::local_filesystem(),
        file_group: Default::default(),
        table_paths: vec![ListingTableUrl::parse(&url).unwrap()],
        output_schema: schema(),
        table_partition_cols: vec![],
        insert_op: InsertOp::Append,
        keep_partition_by_columns: false,
        file_extension: "parquet".into(),
        file_output_mode: Default::default(),
    };
    let sink = Arc::new(ParquetSink::new(config, Default::default()));
    Arc::new(DataSinkExec::new(
        Arc::new(EmptyExec::new(schema())),
        sink,
        None,
    ))
}

/// A CSV scan of the file at `path`.
fn scan_of(path: &std::path::Path) -> Arc<dyn ExecutionPlan> {
    let size = std::fs::metadata(path).unwrap().len();
    let file = PartitionedFile::new(path.to_str().unwrap(), size);
    let config = FileScanConfigBuilder::new(
        ObjectStoreUrl::local_filesystem(),
        Arc::new(CsvSource::new(schema())),
    )
    .with_file(file)
    .build();
    DataSourceExec::from_data_source(config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_refuses_fragments_that_write_or_read_outside_the_allowed_locations() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().to_str().unwrap().to_string();
    // The worker's engine writes the warehouse's first catalog version.
    let worker = start(&warehouse, Some(SECRET), 64 << 20).await;

    // A harmless fragment is accepted: the refusals below are the checks'.
    set_plan(&worker, Arc::new(EmptyExec::new(schema())))
        .await
        .expect("a fragment that only reads is accepted");

    // A sink, whatever it writes to: refused, nothing written.
    let out = tempfile::tempdir().unwrap();
    let err = set_plan(&worker, sink_into(out.path()))
        .await
        .expect_err("a fragment with a sink is refused");
    assert!(err.contains("worker-read-only"), "{err}");
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);

    // A scan of a file outside the warehouse: refused.
    let outside = tempfile::tempdir().unwrap();
    let secret_file = outside.path().join("secrets.csv");
    std::fs::write(&secret_file, "a\n1\n").unwrap();
    let err = set_plan(&worker, scan_of(&secret_file))
        .await
        .expect_err("a scan outside the allowed locations is refused");
    assert!(err.contains("confined-locations"), "{err}");

    // The same file inside the warehouse: accepted.
    let inside = dir.path().join("data");
    std::fs::create_dir_all(&inside).unwrap();
    let inside_file = inside.join("ok.csv");
    std::fs::copy(&secret_file, &inside_file).unwrap();
    set_plan(&worker, scan_of(&inside_file))
        .await
        .expect("a scan inside the warehouse is accepted");
}

/// The error of a statement, whether planning or running it fails.
async fn failure(session: &Session, sql: &str) -> String {
    match session.execute(sql, vec![]).await {
        Err(e) => e.to_string(),
        Ok(Outcome::Rows { stream, .. }) => datafusion::physical_plan::common::collect(stream)
            .await
            .expect_err("the statement fails")
            .to_string(),
        Ok(Outcome::Done { .. }) => panic!("{sql}: no rows, no error"),
    }
}

/// A Delta scan re-plans on the worker from a table snapshot its sender
/// serialized (the log's location, data file paths that may be absolute),
/// so a worker's object stores themselves only read its warehouse and
/// allowed locations, whoever holds the secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_reads_no_delta_table_outside_its_locations() {
    let (dir, single) = engine_with_demo(true).await;
    let warehouse = dir.path().to_str().unwrap().to_string();
    let events = value(
        &single.session("alice").unwrap(),
        "SELECT count(*) FROM events",
    )
    .await;
    // Workers of another warehouse: the coordinator's tables are outside it.
    let elsewhere = tempfile::tempdir().unwrap();
    let elsewhere = elsewhere.path().to_str().unwrap().to_string();
    let workers = [
        start(&elsewhere, Some(SECRET), 64 << 20).await,
        start(&elsewhere, Some(SECRET), 64 << 20).await,
    ];
    let outsider = coordinator(&warehouse, &workers, Some(SECRET)).await;
    assert_eq!(outsider.cluster().unwrap().live_urls().len(), 2);
    let session = outsider.session("alice").unwrap();
    let err = failure(&session, DISTINCT_EVENTS).await;
    assert!(err.contains("confined-locations"), "{err}");

    // The same workers with the coordinator's warehouse allowed: they read it.
    let workers = [(); 2].map(|_| {
        let mut config = EngineConfig::new(&elsewhere);
        config.allow_locations = vec![warehouse.clone()];
        config
    });
    let mut allowed = vec![];
    for config in workers {
        allowed.push(start_with(config, Some(SECRET), 64 << 20).await);
    }
    let good = coordinator(&warehouse, &allowed, Some(SECRET)).await;
    assert_eq!(good.cluster().unwrap().live_urls().len(), 2);
    let session = good.session("alice").unwrap();
    assert_eq!(value(&session, DISTINCT_EVENTS).await, events);
    let tasks: u64 = value(&session, "SELECT min(tasks) FROM system.workers")
        .await
        .parse()
        .unwrap();
    assert!(tasks > 0, "a worker got no task");
}
