//! Starting and stopping the Flight SQL server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use seglake_engine::Engine;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::server::Router;
use tracing::{info, warn};

use crate::auth::{Sessions, Users};
use crate::auth_layer::SeglakeService;
use crate::error::{Result, ServerError};
use crate::service::SeglakeFlightSql;

/// Largest message the server accepts or sends: ADBC ingest sends up to
/// 16 MiB messages, tonic's default limit is 4 MiB.
pub const MAX_MESSAGE_SIZE: usize = 256 * 1024 * 1024;

/// What the server needs besides the engine.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub listen: SocketAddr,
    pub users: Users,
    /// Sessions unused for this long are dropped (clients log in again).
    pub session_idle_timeout: Duration,
}

/// A server running in the background.
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<()>>>,
}

impl RunningServer {
    pub(crate) fn new(
        addr: SocketAddr,
        shutdown: oneshot::Sender<()>,
        task: JoinHandle<Result<()>>,
    ) -> Self {
        Self {
            addr,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting calls, lets running calls finish, and waits.
    pub async fn shutdown(mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => task
                .await
                .map_err(|e| ServerError::Io(std::io::Error::other(e)))?,
            None => Ok(()),
        }
    }

    /// Waits until the server stops (after `shutdown_signal` fires).
    pub async fn wait(mut self) -> Result<()> {
        match self.task.take() {
            Some(task) => task
                .await
                .map_err(|e| ServerError::Io(std::io::Error::other(e)))?,
            None => Ok(()),
        }
    }

    /// Triggers a graceful shutdown without waiting.
    pub fn trigger_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Binds `options.listen` and serves Flight SQL in a background task.
pub async fn start(engine: Arc<Engine>, options: ServerOptions) -> Result<RunningServer> {
    if options.users.is_empty() {
        return Err(ServerError::Config("no users configured".into()));
    }
    let listener = TcpListener::bind(options.listen).await?;
    let sessions = Arc::new(Sessions::new(
        engine,
        options.users,
        options.session_idle_timeout,
    ));
    let service = FlightServiceServer::new(SeglakeService::new(SeglakeFlightSql::new(sessions)))
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE);
    let router = tonic::transport::Server::builder().add_service(service);
    let running = serve(listener, router, "Flight SQL server")?;
    info!(addr = %running.addr(), "Flight SQL server listening");
    Ok(running)
}

/// Serves `router` on `listener` in a background task until the returned
/// server is shut down (running calls finish first). Every accepted
/// connection gets TCP_NODELAY: without it the small frames of a gRPC
/// exchange (a FlightInfo, the end of a stream, a plan fragment) wait for
/// the peer's delayed ACK, about 40 ms per call on loopback; tonic only sets
/// it on listeners it binds itself.
pub(crate) fn serve(
    listener: TcpListener,
    router: Router,
    name: &'static str,
) -> Result<RunningServer> {
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let incoming = TcpListenerStream::new(listener).map(|conn| {
        conn.inspect(|stream| {
            if let Err(e) = stream.set_nodelay(true) {
                warn!(error = %e, "could not set TCP_NODELAY");
            }
        })
    });
    let task = tokio::spawn(async move {
        router
            .serve_with_incoming_shutdown(incoming, async {
                let _ = rx.await;
            })
            .await?;
        info!("{name} stopped");
        Ok(())
    });
    Ok(RunningServer::new(addr, tx, task))
}
