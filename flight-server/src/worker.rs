//! Starting a distributed worker (`seglake worker`): datafusion-distributed's
//! worker gRPC service over the engine (see `seglake_engine::distributed`),
//! behind the cluster secret check and a bound on the messages it decodes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use seglake_engine::Engine;
use seglake_engine::distributed::{CLUSTER_TOKEN_HEADER, ClusterSecret};
use tokio::net::TcpListener;
use tonic::service::interceptor::InterceptedService;
use tracing::{debug, info, warn};

use crate::error::{Result, ServerError};
use crate::server::{RunningServer, serve};

/// Largest message a worker decodes by default (`--max-message-mb`): a
/// plan fragment listing thousands of files is a few MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// How a worker listens and whom it trusts.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub listen: SocketAddr,
    /// Callers must prove it on every call. Without one the worker only
    /// starts on a loopback address.
    pub cluster_secret: Option<ClusterSecret>,
    /// Largest gRPC message (a plan fragment, a batch of work units) the
    /// worker decodes; a larger one is refused before it is read.
    pub max_message_bytes: usize,
    /// Serve TLS (`--tls-cert`/`--tls-key`, and `--tls-client-ca` for
    /// client certificates); `None`: plain.
    pub tls: Option<crate::tls::ServerTls>,
    /// How this worker verifies the `https://` workers it reads from in a
    /// query (`--cluster-ca`, ...).
    pub cluster_tls: seglake_engine::distributed::ClusterTls,
}

impl WorkerOptions {
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            cluster_secret: None,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            tls: None,
            cluster_tls: Default::default(),
        }
    }

    /// Refuses a non-loopback address without a cluster secret: anyone who
    /// reaches the port could otherwise run plans with the worker's
    /// credentials.
    pub fn check(&self) -> Result<()> {
        if self.cluster_secret.is_none() && !self.listen.ip().is_loopback() {
            return Err(ServerError::Config(format!(
                "refusing to listen on {} without a cluster secret: pass --cluster-secret-file \
                 PATH or --cluster-secret (or SEGLAKE_CLUSTER_SECRET), the same as the coordinator's",
                self.listen
            )));
        }
        Ok(())
    }
}

/// Binds `options.listen` and serves the worker service in a background
/// task.
pub async fn start_worker(engine: Arc<Engine>, options: WorkerOptions) -> Result<RunningServer> {
    options.check()?;
    if options.cluster_secret.is_none() {
        warn!("no --cluster-secret: the worker accepts plan fragments from any local process");
    }
    let listener = TcpListener::bind(options.listen).await?;
    let service = engine
        .worker(options.cluster_secret.clone(), options.cluster_tls.clone())?
        .into_worker_server()
        .max_decoding_message_size(options.max_message_bytes);
    // The interceptor runs on the request's headers, before the service
    // decodes anything of its body.
    let service = InterceptedService::new(service, ClusterAuth::new(options.cluster_secret));
    let router = crate::tls::grpc_server(options.tls.as_ref())?.add_service(service);
    let running = serve(listener, router, "worker")?;
    info!(
        addr = %running.addr(),
        tls = options.tls.is_some(),
        client_certificates = options.tls.as_ref().is_some_and(|t| t.requires_client_certificates()),
        "distributed worker listening"
    );
    Ok(running)
}

/// Checks the cluster token of every call (see
/// `seglake_engine::distributed::auth`); passes everything through when the
/// worker has no secret.
#[derive(Clone)]
struct ClusterAuth {
    secret: Option<ClusterSecret>,
    /// Unix seconds of the last refusal logged at WARN: a misconfigured
    /// coordinator probes every few seconds, one line a minute is enough.
    last_warning: Arc<AtomicU64>,
}

impl ClusterAuth {
    fn new(secret: Option<ClusterSecret>) -> Self {
        Self {
            secret,
            last_warning: Arc::new(AtomicU64::new(0)),
        }
    }

    fn log_refusal(&self, remote: Option<SocketAddr>, reason: &str) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let last = self.last_warning.load(Ordering::Relaxed);
        if now >= last + 60
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            warn!(remote = ?remote, reason, "refused a call without a valid cluster token");
        } else {
            debug!(remote = ?remote, reason, "refused a call without a valid cluster token");
        }
    }
}

impl tonic::service::Interceptor for ClusterAuth {
    fn call(
        &mut self,
        request: tonic::Request<()>,
    ) -> std::result::Result<tonic::Request<()>, tonic::Status> {
        let Some(secret) = &self.secret else {
            return Ok(request);
        };
        let token = request
            .metadata()
            .get(CLUSTER_TOKEN_HEADER)
            .map(|v| v.to_str().unwrap_or_default());
        match secret.check(token) {
            Ok(()) => Ok(request),
            Err(e) => {
                let reason = e.to_string();
                self.log_refusal(request.remote_addr(), &reason);
                Err(ServerError::Unauthenticated(reason).into())
            }
        }
    }
}
