//! Shared test fixtures: an in-process Seglake server on `127.0.0.1:0` over
//! a temporary demo warehouse, and Flight SQL clients logged in to it.
//!
//! Every fixture takes a [`Topology`]: a single node, or a coordinator with
//! [`TEST_WORKERS`] in-process workers (`seglake worker`'s service) on
//! `127.0.0.1:0` sharing the warehouse. `SEGLAKE_TEST_TOPOLOGIES`
//! (`single,distributed` by default) selects the topologies that tests
//! parameterised by [`Topology::selected`] run against.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow_flight::FlightInfo;
use arrow_flight::sql::client::FlightSqlServiceClient;
use futures::TryStreamExt;
use seglake_engine::demo::DemoOptions;
use seglake_engine::distributed::ClusterConfig;
use seglake_engine::{Engine, EngineConfig};
use seglake_flight_server::auth::Users;
use seglake_flight_server::{RunningServer, ServerOptions, WorkerOptions, start, start_worker};
use tempfile::TempDir;
use tonic::transport::Channel;

/// Demo size used by the tests: small, deterministic.
pub const TEST_PROFILES: u64 = 500;

/// Workers of the distributed topology.
pub const TEST_WORKERS: usize = 3;

/// Where the queries of a test run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// One server.
    Single,
    /// A coordinator and [`TEST_WORKERS`] workers.
    Distributed,
}

impl Topology {
    pub fn name(self) -> &'static str {
        match self {
            Self::Single => "single",
            Self::Distributed => "distributed",
        }
    }

    /// The topologies named in `SEGLAKE_TEST_TOPOLOGIES` (comma-separated;
    /// default: both).
    pub fn selected() -> Vec<Self> {
        let names = std::env::var("SEGLAKE_TEST_TOPOLOGIES")
            .unwrap_or_else(|_| "single,distributed".into());
        names
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(|n| match n {
                "single" => Self::Single,
                "distributed" => Self::Distributed,
                other => panic!("unknown topology '{other}' in SEGLAKE_TEST_TOPOLOGIES"),
            })
            .collect()
    }
}

/// Workers running in this process on `127.0.0.1:0`, each with its own
/// engine on the shared warehouse; stopped on drop.
pub struct TestWorkers {
    servers: Vec<Option<RunningServer>>,
    urls: Vec<String>,
}

impl TestWorkers {
    pub async fn start(warehouse: &str, n: usize) -> Self {
        let mut servers = vec![];
        let mut urls = vec![];
        for _ in 0..n {
            let engine = Engine::open(EngineConfig::new(warehouse))
                .await
                .expect("worker engine opens");
            let options = WorkerOptions::new("127.0.0.1:0".parse().expect("address"));
            let server = start_worker(engine, options).await.expect("worker starts");
            urls.push(format!("http://{}", server.addr()));
            servers.push(Some(server));
        }
        Self { servers, urls }
    }

    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// Stops worker `i` (its port stops answering).
    pub async fn stop(&mut self, i: usize) {
        if let Some(s) = self.servers[i].take() {
            s.shutdown().await.expect("worker stops");
        }
    }
}

/// The coordinator settings of the tests: small scan partitions so that
/// the small demo data is spread over every worker, fast health checks.
pub fn test_cluster_config(urls: &[String]) -> ClusterConfig {
    let mut c = ClusterConfig::new(urls.to_vec());
    c.scan_bytes_per_partition = Some(16 * 1024);
    c.probe_interval = std::time::Duration::from_millis(300);
    c.probe_timeout = std::time::Duration::from_millis(1000);
    c.query_timeout = std::time::Duration::from_secs(300);
    c
}

/// An engine of `topology` on a fresh temporary warehouse, optionally with
/// the demo data; the workers (distributed) live as long as the returned
/// handle.
pub async fn engine_on(
    topology: Topology,
    demo: bool,
) -> (TempDir, Arc<Engine>, Option<TestWorkers>) {
    let (dir, engine) = engine_with_demo(demo).await;
    match topology {
        Topology::Single => (dir, engine, None),
        Topology::Distributed => {
            let path = dir.path().to_str().expect("utf-8 path").to_string();
            let workers = TestWorkers::start(&path, TEST_WORKERS).await;
            let mut config = EngineConfig::new(path);
            config.cluster = Some(test_cluster_config(workers.urls()));
            let coordinator = Engine::open(config).await.expect("coordinator opens");
            assert_eq!(
                coordinator.cluster().expect("cluster").live_urls().len(),
                TEST_WORKERS,
                "every worker answers"
            );
            (dir, coordinator, Some(workers))
        }
    }
}

/// Opens an engine on a fresh temporary warehouse, optionally with the demo data.
pub async fn engine_with_demo(demo: bool) -> (TempDir, Arc<Engine>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = Engine::open(EngineConfig::new(dir.path().to_str().expect("utf-8 path")))
        .await
        .expect("engine opens");
    if demo {
        let options = DemoOptions {
            profiles: TEST_PROFILES,
            days: 60,
            ..DemoOptions::default()
        };
        engine
            .install_demo(&options, true, &|_, _| {})
            .await
            .expect("demo installs");
    }
    (dir, engine)
}

/// A server running in this process, stopped on drop.
pub struct TestServer {
    pub dir: TempDir,
    pub engine: Arc<Engine>,
    server: Option<RunningServer>,
    /// The workers of a distributed server.
    pub workers: Option<TestWorkers>,
}

impl TestServer {
    /// Users: `alice:secret` and `bob:hunter2`.
    pub async fn start(demo: bool) -> Self {
        let (dir, engine) = engine_with_demo(demo).await;
        Self::start_on(dir, engine).await
    }

    /// A server of `topology` (see [`engine_on`]).
    pub async fn start_topology(topology: Topology, demo: bool) -> Self {
        let (dir, engine, workers) = engine_on(topology, demo).await;
        let mut server = Self::start_on(dir, engine).await;
        server.workers = workers;
        server
    }

    pub async fn start_on(dir: TempDir, engine: Arc<Engine>) -> Self {
        let server = start(
            Arc::clone(&engine),
            ServerOptions {
                listen: "127.0.0.1:0".parse().expect("address"),
                users: Users::parse(["alice:secret", "bob:hunter2"]).expect("users"),
                tls: None,
                ..ServerOptions::default()
            },
        )
        .await
        .expect("server starts");
        Self {
            dir,
            engine,
            server: Some(server),
            workers: None,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.server.as_ref().expect("running").addr())
    }

    /// A client that has not logged in.
    pub async fn anonymous_client(&self) -> FlightSqlServiceClient<Channel> {
        let channel = Channel::from_shared(self.url())
            .expect("url")
            .connect()
            .await
            .expect("connects");
        FlightSqlServiceClient::new(channel)
    }

    /// A client logged in as `user`.
    pub async fn client(&self, user: &str, password: &str) -> FlightSqlServiceClient<Channel> {
        let mut c = self.anonymous_client().await;
        c.handshake(user, password).await.expect("login");
        c
    }

    /// Stops the server and returns the warehouse (for restart tests).
    pub async fn stop(mut self) -> (TempDir, Arc<Engine>) {
        if let Some(s) = self.server.take() {
            s.shutdown().await.expect("clean shutdown");
        }
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
        (dir, Arc::clone(&self.engine))
    }
}

/// Fetches every endpoint of a FlightInfo.
pub async fn fetch(
    client: &mut FlightSqlServiceClient<Channel>,
    info: FlightInfo,
) -> Result<(arrow::datatypes::SchemaRef, Vec<RecordBatch>), arrow_flight::error::FlightError> {
    let mut batches = vec![];
    let mut schema = None;
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.expect("ticket");
        let mut stream = client.do_get(ticket).await?;
        while let Some(b) = stream.try_next().await? {
            batches.push(b);
        }
        if schema.is_none() {
            schema = stream.schema().cloned();
        }
    }
    Ok((
        schema.unwrap_or_else(|| Arc::new(arrow::datatypes::Schema::empty())),
        batches,
    ))
}
