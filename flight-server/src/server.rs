//! Starting and stopping the Flight SQL server.

use std::net::SocketAddr;
use std::sync::Arc;

use arrow_flight::flight_service_server::FlightServiceServer;
use seglake_engine::Engine;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::codegen::{Context, Poll, Service, http};
use tonic::transport::server::Router;
use tracing::{info, warn};

use crate::auth::{SessionPolicy, Sessions, Users};
use crate::auth_layer::SeglakeService;
use crate::error::{Result, ServerError};
use crate::service::SeglakeFlightSql;

/// Default largest DoPut message (`--max-message-mb`): ADBC ingest sends
/// messages of up to 16 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;
/// Largest message of every other call (commands, tickets, actions,
/// handshakes: small protobufs; 16 MiB still holds a statement with a
/// list of a few hundred thousand literals).
pub const MAX_COMMAND_SIZE: usize = 16 * 1024 * 1024;
/// Largest message the server sends (result batches are split near 2 MiB;
/// this only bounds a single huge value).
pub const MAX_ENCODED_MESSAGE_SIZE: usize = 256 * 1024 * 1024;

/// What the server needs besides the engine.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub listen: SocketAddr,
    pub users: Users,
    /// Idle timeout, absolute lifetime and per-user cap of sessions.
    pub sessions: SessionPolicy,
    /// Largest DoPut message decoded (bulk ingest, parameter batches);
    /// every other call is bounded by [`MAX_COMMAND_SIZE`] (or this, if
    /// smaller).
    pub max_message_size: usize,
    /// Serve TLS (`--tls-cert`/`--tls-key`); `None`: plain.
    pub tls: Option<crate::tls::ServerTls>,
}

impl Default for ServerOptions {
    /// Loopback on a free port, no users (set some), default limits.
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            users: Users::default(),
            sessions: SessionPolicy::default(),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            tls: None,
        }
    }
}

/// The Flight service with a decoding limit per kind of call. tonic
/// bounds decoded messages per service (`max_decoding_message_size`
/// applies to every method of a `FlightServiceServer`), and checks the
/// length prefix of each message before buffering it. So two servers over
/// the same implementation split the methods by path: DoPut, the one call
/// whose messages are legitimately large (ingest data, parameter batches),
/// gets `bulk`; all the others get `small`. A message over its limit is
/// refused with OUT_OF_RANGE without being read.
#[derive(Debug, Clone)]
struct SizedFlightService {
    bulk: FlightServiceServer<SeglakeService>,
    small: FlightServiceServer<SeglakeService>,
}

const DO_PUT_PATH: &str = "/arrow.flight.protocol.FlightService/DoPut";

impl SizedFlightService {
    fn new(service: SeglakeService, max_message_size: usize) -> Self {
        let service = Arc::new(service);
        let server = |limit: usize| {
            FlightServiceServer::from_arc(Arc::clone(&service))
                .max_decoding_message_size(limit)
                .max_encoding_message_size(MAX_ENCODED_MESSAGE_SIZE)
        };
        Self {
            bulk: server(max_message_size),
            small: server(MAX_COMMAND_SIZE.min(max_message_size)),
        }
    }
}

impl tonic::server::NamedService for SizedFlightService {
    const NAME: &'static str =
        <FlightServiceServer<SeglakeService> as tonic::server::NamedService>::NAME;
}

impl<B> Service<http::Request<B>> for SizedFlightService
where
    FlightServiceServer<SeglakeService>: Service<http::Request<B>>,
{
    type Response = <FlightServiceServer<SeglakeService> as Service<http::Request<B>>>::Response;
    type Error = <FlightServiceServer<SeglakeService> as Service<http::Request<B>>>::Error;
    type Future = <FlightServiceServer<SeglakeService> as Service<http::Request<B>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Both are always ready (generated servers answer Ready at once).
        match self.bulk.poll_ready(cx) {
            Poll::Ready(Ok(())) => self.small.poll_ready(cx),
            other => other,
        }
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() == DO_PUT_PATH {
            self.bulk.call(request)
        } else {
            self.small.call(request)
        }
    }
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
        self.trigger_shutdown();
        self.wait().await
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

/// Concurrent calls (HTTP/2 streams) per Flight SQL client connection.
const MAX_STREAMS_PER_CONNECTION: u32 = 128;

/// Binds `options.listen` and serves Flight SQL in a background task.
pub async fn start(engine: Arc<Engine>, options: ServerOptions) -> Result<RunningServer> {
    if options.users.is_empty() {
        return Err(ServerError::Config("no users configured".into()));
    }
    let listener = TcpListener::bind(options.listen).await?;
    let sessions = Arc::new(Sessions::new(engine, options.users, options.sessions));
    let service = SizedFlightService::new(
        SeglakeService::new(SeglakeFlightSql::new(sessions)),
        options.max_message_size,
    );
    // One client connection holds at most this many calls at once (more
    // wait for a free stream): a client cannot open streams until the
    // server runs out of memory. BI tools and drivers use a few.
    let router = crate::tls::grpc_server(options.tls.as_ref())?
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .add_service(service);
    let running = serve(listener, router, "Flight SQL server")?;
    info!(addr = %running.addr(), tls = options.tls.is_some(), "Flight SQL server listening");
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
