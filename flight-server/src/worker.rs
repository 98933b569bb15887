//! Starting a distributed worker (`seglake worker`): datafusion-distributed's
//! worker gRPC service over the engine (see `seglake_engine::distributed`).

use std::net::SocketAddr;
use std::sync::Arc;

use seglake_engine::Engine;
use tokio::net::TcpListener;
use tracing::info;

use crate::error::Result;
use crate::server::{RunningServer, serve};

/// Binds `listen` and serves the worker service in a background task.
pub async fn start_worker(engine: Arc<Engine>, listen: SocketAddr) -> Result<RunningServer> {
    let listener = TcpListener::bind(listen).await?;
    let router =
        tonic::transport::Server::builder().add_service(engine.worker().into_worker_server());
    let running = serve(listener, router, "worker")?;
    info!(addr = %running.addr(), "distributed worker listening");
    Ok(running)
}
