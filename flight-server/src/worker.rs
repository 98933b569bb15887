//! Starting a distributed worker (`seglake worker`): datafusion-distributed's
//! worker gRPC service over the engine (see `seglake_engine::distributed`).

use std::net::SocketAddr;
use std::sync::Arc;

use seglake_engine::Engine;
use seglake_engine::distributed::worker;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_stream::wrappers::TcpListenerStream;
use tracing::info;

use crate::error::Result;
use crate::server::RunningServer;

/// Binds `listen` and serves the worker service in a background task.
pub async fn start_worker(engine: Arc<Engine>, listen: SocketAddr) -> Result<RunningServer> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let service = worker(engine).into_worker_server();
    let (tx, rx) = oneshot::channel::<()>();
    let incoming = TcpListenerStream::new(listener);
    let task = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = rx.await;
            })
            .await?;
        info!("worker stopped");
        Ok(())
    });
    info!(%addr, "distributed worker listening");
    Ok(RunningServer::new(addr, tx, task))
}
