//! Shared test fixtures: an in-process Seglake server on `127.0.0.1:0` over
//! a temporary demo warehouse, and Flight SQL clients logged in to it.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow_flight::FlightInfo;
use arrow_flight::sql::client::FlightSqlServiceClient;
use futures::TryStreamExt;
use seglake_engine::demo::DemoOptions;
use seglake_engine::{Engine, EngineConfig};
use seglake_flight_server::auth::Users;
use seglake_flight_server::{RunningServer, ServerOptions, start};
use tempfile::TempDir;
use tonic::transport::Channel;

/// Demo size used by the tests: small, deterministic.
pub const TEST_PROFILES: u64 = 500;

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
}

impl TestServer {
    /// Users: `alice:secret` and `bob:hunter2`.
    pub async fn start(demo: bool) -> Self {
        let (dir, engine) = engine_with_demo(demo).await;
        Self::start_on(dir, engine).await
    }

    pub async fn start_on(dir: TempDir, engine: Arc<Engine>) -> Self {
        let server = start(
            Arc::clone(&engine),
            ServerOptions {
                listen: "127.0.0.1:0".parse().expect("address"),
                users: Users::parse(["alice:secret", "bob:hunter2"]).expect("users"),
                session_idle_timeout: std::time::Duration::from_secs(600),
            },
        )
        .await
        .expect("server starts");
        Self {
            dir,
            engine,
            server: Some(server),
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
