//! The collector's accept loop, plain or TLS: at most `max_connections`
//! connections at once (more wait in the kernel's accept queue until one
//! ends), and HTTP/1 connections whose TLS handshake and each request's
//! head must arrive within `header_timeout` (hyper's header read timeout,
//! which also closes a keep-alive connection left idle that long).
//! `axum::serve` sets neither, hence this loop.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use super::{Peer, stopping};

/// Limits of the collector's connections (`--collect-max-connections`,
/// `--collect-header-timeout-secs`).
#[derive(Debug, Clone, Copy)]
pub(super) struct ConnectionLimits {
    pub(super) max_connections: u32,
    pub(super) header_timeout: Duration,
}

/// How often the "connection limit reached" warning may be logged.
const FULL_WARNING_EVERY: Duration = Duration::from_secs(60);

/// Serves `router` on `listener` until `shutdown`; then stops accepting,
/// lets each connection finish its request in flight (idle ones close at
/// once) and returns when every connection has ended.
pub(super) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    limits: ConnectionLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections as usize));
    let mut warned: Option<Instant> = None;
    loop {
        // A slot first: at the limit, connections stay in the accept
        // queue (the kernel's backlog) until a connection ends.
        let permit = match Arc::clone(&slots).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if warned.is_none_or(|at| at.elapsed() >= FULL_WARNING_EVERY) {
                    warned = Some(Instant::now());
                    warn!(
                        max_connections = limits.max_connections,
                        "collector: connection limit reached (--collect-max-connections): new connections wait until one closes"
                    );
                }
                tokio::select! {
                    permit = Arc::clone(&slots).acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => return,
                    },
                    () = stopping(&mut shutdown) => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little
                    // rather than spin (a reset connection is not worth it).
                    if !matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                    ) {
                        warn!(error = %e, "collector: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    continue;
                }
            },
            () = stopping(&mut shutdown) => break,
        };
        // Small answers go out without waiting for the client's delayed ACK.
        if let Err(e) = stream.set_nodelay(true) {
            warn!(error = %e, "could not set TCP_NODELAY");
        }
        tokio::spawn(connection(
            stream,
            peer,
            tls.clone(),
            router.clone(),
            limits.header_timeout,
            shutdown.clone(),
            permit,
        ));
    }
    drop(listener);
    // Every slot back: every connection has ended.
    let _ = slots.acquire_many(limits.max_connections).await;
}

/// One connection; its slot is released when it ends.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    router: Router,
    header_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let Some(acceptor) = tls else {
        return http(stream, peer, router, header_timeout, shutdown).await;
    };
    let handshake = tokio::select! {
        handshake = tokio::time::timeout(header_timeout, acceptor.accept(stream)) => handshake,
        () = stopping(&mut shutdown) => return,
    };
    match handshake {
        Ok(Ok(stream)) => http(stream, peer, router, header_timeout, shutdown).await,
        Ok(Err(e)) => debug!(%peer, error = %e, "collector: TLS handshake failed"),
        Err(_) => debug!(%peer, "collector: TLS handshake timed out"),
    }
}

/// HTTP/1.1 on an established connection, until the client closes it, a
/// request's head takes longer than `header_timeout`, or shutdown (after
/// the request in flight).
async fn http<I>(
    io: I,
    peer: SocketAddr,
    router: Router,
    header_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        // The client's address, for the login throttle.
        request.extensions_mut().insert(ConnectInfo(Peer(peer)));
        let mut router = router.clone();
        async move { tower_service::Service::call(&mut router, request).await }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = stopping(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        debug!(%peer, error = %e, "collector: connection ended with an error");
    }
}
