//! The HTTP event collector (`seglake serve --collect ADDR`): `POST
//! /v1/events` takes a JSON array of events, validates every field, and a
//! single committer task appends them to the managed `public.events` table,
//! one Delta commit per batch of requests (every `batch_rows` rows or
//! `flush_interval`). A request is answered 200 only after the commit that
//! holds its rows; if that commit fails, every request in it gets a 5xx.
//!
//! Event ids (UUIDv7 when the client sends none) are deduplicated against
//! the ids committed during the last `dedup_window` (at most
//! `dedup_max_ids` of them), a set the committer owns and rebuilds from the
//! table at startup (see `docs/collector.md`).
//!
//! Limits against slow or too many clients (`listen.rs`): a cap on open
//! connections, on the time to send a request's head and its body. The
//! committer runs supervised (`crate::supervise`): if it fails it is
//! restarted, around the same queue of submissions.

mod event;
mod listen;
mod table;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use std::time::Instant as StdInstant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use chrono::Utc;
use clap::Args;
use seglake_engine::{Engine, ErrorKind, Session};
use serde::Serialize;
use serde_json::json;
use sha2::Digest;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

pub use event::{Event, FieldError, parse_events};

use crate::auth::{LoginError, Users, decode_basic, strip_scheme, whole_seconds};
use crate::error::{Result, ServerError};
use crate::supervise::{Backoff, supervise};

/// The user the collector's committer writes as (an administrator: it
/// creates the table if missing; no one logs in with it).
pub const COLLECTOR_USER: &str = "seglake-collector";

/// The challenge of a 401: a user's password or an ingest key.
const CHALLENGE: &str = r#"Basic realm="seglake", charset="UTF-8", Bearer realm="seglake""#;

/// The table the collector writes.
pub const TABLE_SCHEMA: &str = seglake_engine::DEFAULT_SCHEMA;
pub const TABLE_NAME: &str = "events";

/// Command-line flags of the collector (flattened into `seglake serve`).
#[derive(Debug, Clone, Args)]
pub struct CollectorArgs {
    /// Serve the HTTP event collector (POST /v1/events) on this address
    /// (port 0 picks a free port; the bound address is printed on standard
    /// output as `collector listening on ADDR`). Off by default.
    #[arg(long = "collect", env = "SEGLAKE_COLLECT")]
    pub collect: Option<SocketAddr>,

    /// Commit buffered events once this many rows are waiting.
    #[arg(long, env = "SEGLAKE_COLLECT_BATCH_ROWS", default_value_t = 10_000)]
    pub collect_batch_rows: usize,

    /// Commit buffered events at the latest this many milliseconds after the
    /// first of them arrived.
    #[arg(long, env = "SEGLAKE_COLLECT_FLUSH_MS", default_value_t = 1000)]
    pub collect_flush_ms: u64,

    /// Largest accepted request body in bytes (larger: 413).
    #[arg(long, env = "SEGLAKE_COLLECT_MAX_BODY_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub collect_max_body_bytes: usize,

    /// Event ids committed during this many seconds are remembered: a
    /// re-sent event within the window is not written again.
    #[arg(
        long,
        env = "SEGLAKE_COLLECT_DEDUP_WINDOW_SECS",
        default_value_t = 3600
    )]
    pub collect_dedup_window_secs: u64,

    /// Open connections at most; more wait in the kernel's accept queue
    /// until one closes.
    #[arg(long, env = "SEGLAKE_COLLECT_MAX_CONNECTIONS", default_value_t = 1024)]
    pub collect_max_connections: u32,

    /// Seconds a client has to send a request's head (request line and
    /// headers; over TLS, the handshake too); a keep-alive connection idle
    /// that long is closed as well.
    #[arg(
        long,
        env = "SEGLAKE_COLLECT_HEADER_TIMEOUT_SECS",
        default_value_t = 10
    )]
    pub collect_header_timeout_secs: u64,

    /// Seconds a client has to send a request's body (longer: 408).
    #[arg(long, env = "SEGLAKE_COLLECT_BODY_TIMEOUT_SECS", default_value_t = 30)]
    pub collect_body_timeout_secs: u64,

    /// Event ids the deduplication set holds at most (each takes about 90
    /// bytes, whatever its length); when full, the oldest are forgotten
    /// before the end of the window.
    #[arg(
        long,
        env = "SEGLAKE_COLLECT_DEDUP_MAX_IDS",
        default_value_t = 10_000_000
    )]
    pub collect_dedup_max_ids: usize,
}

impl CollectorArgs {
    /// The collector's options, or `None` without `--collect`.
    pub fn options(&self, users: &Users) -> Result<Option<CollectorOptions>> {
        let Some(listen) = self.collect else {
            return Ok(None);
        };
        if self.collect_batch_rows == 0 || self.collect_flush_ms == 0 {
            return Err(ServerError::Config(
                "--collect-batch-rows and --collect-flush-ms must be positive".into(),
            ));
        }
        if !(1..=MAX_CONNECTIONS).contains(&self.collect_max_connections) {
            return Err(ServerError::Config(format!(
                "--collect-max-connections must be between 1 and {MAX_CONNECTIONS}"
            )));
        }
        if self.collect_header_timeout_secs == 0
            || self.collect_body_timeout_secs == 0
            || self.collect_dedup_max_ids == 0
        {
            return Err(ServerError::Config(
                "--collect-header-timeout-secs, --collect-body-timeout-secs and --collect-dedup-max-ids must be positive".into(),
            ));
        }
        Ok(Some(CollectorOptions {
            listen,
            users: users.clone(),
            batch_rows: self.collect_batch_rows,
            flush_interval: Duration::from_millis(self.collect_flush_ms),
            max_body_bytes: self.collect_max_body_bytes,
            dedup_window: Duration::from_secs(self.collect_dedup_window_secs),
            dedup_max_ids: self.collect_dedup_max_ids,
            max_connections: self.collect_max_connections,
            header_timeout: Duration::from_secs(self.collect_header_timeout_secs),
            body_timeout: Duration::from_secs(self.collect_body_timeout_secs),
            tls: None,
        }))
    }
}

/// What the collector needs besides the engine.
#[derive(Debug, Clone)]
pub struct CollectorOptions {
    pub listen: SocketAddr,
    pub users: Users,
    pub batch_rows: usize,
    pub flush_interval: Duration,
    pub max_body_bytes: usize,
    pub dedup_window: Duration,
    /// Event ids remembered at most (the oldest are forgotten first).
    pub dedup_max_ids: usize,
    /// Open connections at most (more wait in the accept queue).
    pub max_connections: u32,
    /// Time to send a request's head (and the TLS handshake).
    pub header_timeout: Duration,
    /// Time to send a request's body.
    pub body_timeout: Duration,
    /// Serve HTTPS (`--tls-cert`/`--tls-key`, shared with Flight SQL);
    /// `None`: plain HTTP.
    pub tls: Option<crate::tls::ServerTls>,
}

/// A collector running in the background.
#[derive(Debug)]
pub struct RunningCollector {
    addr: SocketAddr,
    shutdown: Option<watch::Sender<bool>>,
    task: Option<JoinHandle<Result<()>>>,
}

impl RunningCollector {
    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting requests; requests already received are committed
    /// and answered before the collector stops.
    pub fn trigger_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(true);
        }
    }

    /// Waits until the collector has stopped (after `trigger_shutdown`).
    pub async fn wait(mut self) -> Result<()> {
        match self.task.take() {
            Some(task) => task
                .await
                .map_err(|e| ServerError::Io(std::io::Error::other(e)))?,
            None => Ok(()),
        }
    }

    /// `trigger_shutdown` and `wait`.
    pub async fn shutdown(mut self) -> Result<()> {
        self.trigger_shutdown();
        self.wait().await
    }
}

impl Drop for RunningCollector {
    fn drop(&mut self) {
        self.trigger_shutdown();
    }
}

/// Prepares the table (creating `public.events` if missing), loads the ids
/// of the deduplication window, binds `options.listen` and serves in a
/// background task.
pub async fn start(engine: Arc<Engine>, options: CollectorOptions) -> Result<RunningCollector> {
    if options.users.is_empty() {
        return Err(ServerError::Config("no users configured".into()));
    }
    // The committer's own user, an administrator of the server (`serve`
    // lists it): each request's user is checked for INSERT on the table.
    // A service session: its commits take the slots reserved for the
    // service when queries fill the general ones.
    let session = engine.service_session(COLLECTOR_USER)?;
    let target = table::prepare(&session, TABLE_SCHEMA, TABLE_NAME).await?;
    if !target.has_received_at {
        warn!(
            table = %target.reference,
            "the collector's table has no received_at column: after a restart, duplicates are recognised by event_time within the window only (see docs/collector.md)"
        );
    }
    let window = micros(options.dedup_window);
    let mut dedup = Dedup::new(options.dedup_max_ids);
    dedup.load(table::recent_ids(&session, &target, now_micros() - window - LOAD_MARGIN).await?);
    info!(
        table = %target.reference,
        remembered_ids = dedup.len(),
        max_ids = options.dedup_max_ids,
        "collector: deduplication window loaded"
    );
    dedup.warn_when_full();

    let listener = TcpListener::bind(options.listen).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = mpsc::channel::<Submission>(QUEUE_REQUESTS);
    let pending_rows = Arc::new(AtomicUsize::new(0));
    let state = Arc::new(AppState {
        users: options.users.clone(),
        engine: Arc::clone(&engine),
        table: target.reference.clone(),
        tx,
        pending_rows: Arc::clone(&pending_rows),
        body_timeout: options.body_timeout,
    });
    let events = Router::new()
        .route("/v1/events", post(post_events))
        .layer(DefaultBodyLimit::max(options.max_body_bytes))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            require_basic_auth,
        ));
    let app = Router::new()
        .route("/health", get(health))
        // A browser's CORS preflight carries no credentials.
        .route("/v1/events", axum::routing::options(preflight))
        .merge(events)
        .with_state(state);

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let committer = Committer {
        state: CommitterState {
            session,
            target,
            dedup,
            batch_rows: options.batch_rows,
            flush_interval: options.flush_interval,
            window,
            pending_rows,
        },
        rx,
        shutdown: shutdown_rx.clone(),
    };
    let limits = listen::ConnectionLimits {
        max_connections: options.max_connections,
        header_timeout: options.header_timeout,
    };
    let tls = options
        .tls
        .as_ref()
        .map(crate::tls::ServerTls::http_acceptor);
    let task = tokio::spawn(async move {
        // On shutdown the committer commits what it holds at once and
        // refuses new submissions; the HTTP server stops accepting
        // connections and waits for the requests in flight to be answered.
        let committer = tokio::spawn(supervised(committer));
        listen::serve(listener, tls, app, limits, shutdown_rx).await;
        committer
            .await
            .map_err(|e| ServerError::Io(std::io::Error::other(e)))?;
        info!("collector stopped");
        Ok(())
    });
    info!(%addr, tls = options.tls.is_some(), "HTTP event collector listening");
    Ok(RunningCollector {
        addr,
        shutdown: Some(shutdown_tx),
        task: Some(task),
    })
}

/// `--collect-max-connections` at most (the semaphore's permits are u32).
const MAX_CONNECTIONS: u32 = 1 << 20;
/// Bodies larger than this are parsed on the blocking thread pool.
const BLOCKING_PARSE_BYTES: usize = 256 * 1024;
/// Requests waiting for the committer before senders wait (back pressure).
const QUEUE_REQUESTS: usize = 1024;
/// Extra time loaded at startup so that a row received just before the
/// window but committed inside it is still remembered.
const LOAD_MARGIN: i64 = 10 * 60 * 1_000_000;

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 2)
}

fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

struct AppState {
    users: Users,
    /// Each request's user is checked against the table (INSERT).
    engine: Arc<Engine>,
    table: datafusion::common::TableReference,
    tx: mpsc::Sender<Submission>,
    /// Rows received by the committer and not yet committed (`/health`).
    pending_rows: Arc<AtomicUsize>,
    /// Time to read a request's body (`--collect-body-timeout-secs`).
    body_timeout: Duration,
}

/// The answer to an accepted request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Ack {
    /// Rows written.
    pub accepted: usize,
    /// Rows not written because their event id was already committed (or
    /// appears earlier in the same batch).
    pub duplicates: usize,
    /// Rows not written because their profile was erased (`FORGET PROFILE`).
    pub forgotten: usize,
}

/// Why a commit failed (the same for every request of the batch).
#[derive(Debug, Clone)]
struct CommitFailure {
    status: StatusCode,
    message: String,
}

struct Submission {
    events: Vec<Event>,
    /// When the request arrived (UTC micros): `received_at`.
    received_at: i64,
    reply: oneshot::Sender<Result<Ack, CommitFailure>>,
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

fn error_response(status: StatusCode, message: impl Into<String>) -> Response {
    json_response(status, &json!({ "error": message.into() }))
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    let pending = state.pending_rows.load(Ordering::Relaxed);
    json_response(
        StatusCode::OK,
        &json!({ "status": "ok", "pending_rows": pending }),
    )
}

/// The address of a client connection, plain or TLS (set on each request
/// by the accept loop, `listen.rs`).
#[derive(Debug, Clone, Copy)]
struct Peer(SocketAddr);

/// HTTP Basic auth against the Flight SQL users, checked like a Flight SQL
/// login (a password verified recently passes without its argon2 hash
/// being verified again; failures are throttled per user and address with
/// Flight SQL's counts): 401 with a challenge, or 429 with `Retry-After`
/// while throttled.
async fn require_basic_auth(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if let Some(key) = authorization.and_then(|v| strip_scheme(v, "bearer")) {
        let key = key.trim().to_string();
        return with_ingest_key(&state, &key, request, next).await;
    }
    let credentials = authorization
        .and_then(|v| strip_scheme(v, "basic"))
        .and_then(|b64| decode_basic(b64).ok());
    let peer = request
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .map(|c| c.0.0.ip());
    let refused = match credentials {
        Some((user, password)) => match state.users.verify(&user, &password, peer).await {
            Ok(()) => return authorized(&state, &user, request, next).await,
            Err(e) => e,
        },
        None => LoginError::BadCredentials,
    };
    match refused {
        LoginError::BadCredentials => {
            let mut response = error_response(
                StatusCode::UNAUTHORIZED,
                "HTTP Basic authentication with a Seglake user is required",
            );
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static(CHALLENGE),
            );
            response
        }
        LoginError::Throttled { retry_after } => {
            let mut response = error_response(StatusCode::TOO_MANY_REQUESTS, refused.to_string());
            let secs = whole_seconds(retry_after);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
            response
        }
        LoginError::Internal(_) => {
            error_response(StatusCode::INTERNAL_SERVER_ERROR, refused.to_string())
        }
    }
}

/// The `Origin` header of a browser's request.
fn origin_of(request: &Request) -> Option<String> {
    request
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Whether ingest key `info` appends to the collector's table.
fn for_this_table(state: &AppState, info: &seglake_engine::IngestKeyInfo) -> bool {
    info.table.schema() == state.table.schema() && info.table.table() == state.table.table()
}

/// A request with `Authorization: Bearer <ingest key>`: the key must exist
/// (in the newest catalog), append to this collector's table and, from a
/// browser, allow the request's origin; the answer then allows that origin
/// (CORS). An unknown key is 401, a key for another table or origin 403.
async fn with_ingest_key(state: &AppState, key: &str, request: Request, next: Next) -> Response {
    let found = match state.engine.session(COLLECTOR_USER) {
        Ok(session) => session.ingest_key(key).await,
        Err(e) => Err(e),
    };
    let info = match found {
        Ok(Some(info)) => info,
        Ok(None) => {
            warn!("collector: request with an unknown ingest key refused");
            let mut response = error_response(StatusCode::UNAUTHORIZED, "unknown ingest key");
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static(CHALLENGE),
            );
            return response;
        }
        Err(e) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    if !for_this_table(state, &info) {
        return error_response(
            StatusCode::FORBIDDEN,
            format!(
                "ingest key '{}' appends to {}, and this collector writes {}",
                info.name, info.table, state.table
            ),
        );
    }
    let origin = origin_of(&request);
    if let Some(origin) = &origin
        && !info.origins.contains(origin)
    {
        return error_response(
            StatusCode::FORBIDDEN,
            format!(
                "ingest key '{}' does not allow the origin {origin} (CREATE INGEST KEY ... ALLOW ORIGIN)",
                info.name
            ),
        );
    }
    state.engine.ingest_key_used(key);
    let mut response = next.run(request).await;
    if let Some(origin) = origin
        && let Ok(value) = header::HeaderValue::from_str(&origin)
    {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.insert(header::VARY, header::HeaderValue::from_static("Origin"));
    }
    response
}

/// The CORS preflight of `POST /v1/events`: allowed for an origin that an
/// ingest key of this collector's table allows (the preflight carries no
/// key: the POST itself is checked against its key's origins).
async fn preflight(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let Some(origin) = origin_of(&request) else {
        return error_response(StatusCode::BAD_REQUEST, "a CORS preflight needs an Origin");
    };
    let allowed = match state.engine.catalog().await {
        Ok(snapshot) => snapshot.state.security.ingest_keys.values().any(|k| {
            k.schema == state.table.schema().unwrap_or_default()
                && k.table == state.table.table()
                && k.origins.contains(&origin)
        }),
        Err(e) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let Ok(value) = header::HeaderValue::from_str(&origin) else {
        return error_response(StatusCode::FORBIDDEN, "origin not allowed");
    };
    if !allowed {
        return error_response(StatusCode::FORBIDDEN, "origin not allowed");
    }
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    headers.insert(header::VARY, header::HeaderValue::from_static("Origin"));
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        header::HeaderValue::from_static("POST"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        header::HeaderValue::from_static("authorization, content-type"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        header::HeaderValue::from_static("600"),
    );
    response
}

/// Passes a request whose user may append to the collector's table (the
/// pipeline's check of an ingest); 403 otherwise.
async fn authorized(state: &AppState, user: &str, request: Request, next: Next) -> Response {
    let checked = match state.engine.session(user) {
        Ok(session) => session.check_append(&state.table).await,
        Err(e) => Err(e),
    };
    match checked {
        Ok(()) => next.run(request).await,
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            error_response(StatusCode::FORBIDDEN, e.to_string())
        }
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn post_events(State(state): State<Arc<AppState>>, request: Request) -> Response {
    // A client that trickles its body is cut off (with the body limit of
    // `DefaultBodyLimit`, `Bytes` keeps its 413).
    let body = match tokio::time::timeout(state.body_timeout, Bytes::from_request(request, &state))
        .await
    {
        Ok(Ok(b)) => b,
        Ok(Err(rejection)) => return error_response(rejection.status(), rejection.body_text()),
        Err(_) => {
            let mut response = error_response(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body took longer than {} s (--collect-body-timeout-secs); nothing was written",
                    state.body_timeout.as_secs()
                ),
            );
            // The rest of the body is not read: the connection ends.
            response.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            return response;
        }
    };
    let now = Utc::now();
    let large = body.len() > BLOCKING_PARSE_BYTES;
    let parse = move || parse_events(&body, now, || uuid::Uuid::now_v7().to_string());
    // Large bodies are parsed off the async workers.
    let parsed = if large {
        match tokio::task::spawn_blocking(parse).await {
            Ok(parsed) => parsed,
            Err(e) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    } else {
        parse()
    };
    let events = match parsed {
        Ok(events) => events,
        Err(errors) => {
            let first = &errors[0];
            return json_response(
                StatusCode::BAD_REQUEST,
                &json!({
                    "error": format!("{first}; nothing of the batch was written"),
                    "row": first.row,
                    "field": first.field,
                    "errors": errors,
                }),
            );
        }
    };
    if events.is_empty() {
        return json_response(StatusCode::OK, &json!(Ack::default()));
    }
    let (reply, answer) = oneshot::channel();
    let submission = Submission {
        events,
        received_at: now.timestamp_micros(),
        reply,
    };
    if state.tx.send(submission).await.is_err() {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "the collector is shutting down",
        );
    }
    match answer.await {
        Ok(Ok(ack)) => json_response(StatusCode::OK, &json!(ack)),
        Ok(Err(failure)) => error_response(
            failure.status,
            format!(
                "commit failed, nothing of the batch was acknowledged: {}",
                failure.message
            ),
        ),
        // The committer dropped the request unanswered: it stopped, or
        // failed (and is restarted) before committing its batch.
        Err(_) => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "the batch was not committed (the collector stopped or its committer failed): send it again",
        ),
    }
}

// ---------------------------------------------------------------------------
// Committer
// ---------------------------------------------------------------------------

/// The deduplication set's key of an event id: the first 128 bits of its
/// SHA-256. Fixed-size (an id of any length costs the same memory) and
/// collision resistant (a client cannot craft an id that passes for
/// another's).
pub(crate) type DedupKey = [u8; 16];

pub(crate) fn dedup_key(id: &str) -> DedupKey {
    let digest = sha2::Sha256::digest(id.as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// How often a full deduplication set is reported.
const DEDUP_FULL_WARNING_EVERY: Duration = Duration::from_secs(60);

/// Event ids committed recently, with their arrival time, oldest first,
/// `max_ids` at most: when full, the oldest are dropped before their
/// window ends (and a warning says so, at most once a minute).
///
/// Memory: each id is a 16-byte key in a hash set (17 bytes a bucket, the
/// table 44 to 88 % full) and in the queue with its time (24 bytes, the
/// queue half to wholly used): 45 to 90 bytes an id, so about
/// min(window × event rate, `max_ids`) × 90 bytes at most (900 MB for the
/// default 10 million).
#[derive(Debug)]
struct Dedup {
    ids: HashSet<DedupKey>,
    /// Exactly the keys of `ids`, by arrival time.
    order: VecDeque<(i64, DedupKey)>,
    max_ids: usize,
    /// Ids dropped because the set was full, since the last warning.
    dropped: u64,
    warned: Option<StdInstant>,
}

impl Dedup {
    fn new(max_ids: usize) -> Self {
        Self {
            ids: HashSet::new(),
            order: VecDeque::new(),
            max_ids: max_ids.max(1),
            dropped: 0,
            warned: None,
        }
    }

    fn len(&self) -> usize {
        self.ids.len()
    }

    fn contains(&self, key: &DedupKey) -> bool {
        self.ids.contains(key)
    }

    fn insert(&mut self, key: DedupKey, at: i64) {
        if self.ids.insert(key) {
            self.order.push_back((at, key));
            self.evict();
        }
    }

    /// Merges ids read from the table.
    fn load(&mut self, ids: HashMap<DedupKey, i64>) {
        let mut new: Vec<(i64, DedupKey)> = ids
            .into_iter()
            .filter(|(key, _)| !self.ids.contains(key))
            .map(|(key, at)| (at, key))
            .collect();
        new.sort();
        for (at, key) in new {
            self.ids.insert(key);
            self.order.push_back((at, key));
        }
        self.order.make_contiguous().sort();
        self.evict();
    }

    /// Forgets everything (before a reload from the table).
    fn clear(&mut self) {
        self.ids = HashSet::new();
        self.order = VecDeque::new();
    }

    /// Forgets ids that arrived before `before`.
    fn expire(&mut self, before: i64) {
        while let Some((at, _)) = self.order.front() {
            if *at >= before {
                break;
            }
            if let Some((_, key)) = self.order.pop_front() {
                self.ids.remove(&key);
            }
        }
    }

    /// Drops the oldest ids beyond `max_ids`.
    fn evict(&mut self) {
        while self.ids.len() > self.max_ids {
            let Some((_, key)) = self.order.pop_front() else {
                break;
            };
            if self.ids.remove(&key) {
                self.dropped += 1;
            }
        }
    }

    /// The ids dropped since the last warning, when one is due at `now`
    /// (at most one a minute).
    fn full_warning(&mut self, now: StdInstant) -> Option<u64> {
        if self.dropped == 0
            || self
                .warned
                .is_some_and(|at| now.duration_since(at) < DEDUP_FULL_WARNING_EVERY)
        {
            return None;
        }
        self.warned = Some(now);
        Some(std::mem::take(&mut self.dropped))
    }

    /// Logs that the set is full, at most once a minute.
    fn warn_when_full(&mut self) {
        if let Some(dropped) = self.full_warning(StdInstant::now()) {
            let oldest_kept_secs = self
                .order
                .front()
                .map(|(at, _)| (now_micros() - at).max(0) / 1_000_000);
            warn!(
                max_ids = self.max_ids,
                dropped,
                oldest_kept_secs,
                "collector: the deduplication set is full (--collect-dedup-max-ids): the oldest event ids were forgotten before the end of the window, a re-sent event older than the oldest kept id is written again"
            );
        }
    }
}

/// What the committer keeps across restarts of its task.
struct CommitterState {
    session: Session,
    target: table::Target,
    dedup: Dedup,
    batch_rows: usize,
    flush_interval: Duration,
    /// Dedup window in micros.
    window: i64,
    /// Shared with [`AppState::pending_rows`].
    pending_rows: Arc<AtomicUsize>,
}

/// The committer: its state, the queue of submissions (the receiver
/// outlives a failed run: queued requests are not lost) and the shutdown
/// signal.
struct Committer {
    state: CommitterState,
    rx: mpsc::Receiver<Submission>,
    shutdown: watch::Receiver<bool>,
}

/// Resolves once shutdown was asked for (or its sender is gone).
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Runs the committer until it has stopped (shutdown, then its queue
/// drained), restarting it when it panics (`crate::supervise`: logged at
/// ERROR, 1 s doubling to 30 s). The requests of the batch a failed run
/// held are answered 503 (their reply channels are dropped with it); the
/// queue is kept, and the restarted committer first reloads its
/// deduplication set from the table (the failed run may have committed
/// without recording the ids). A failure during shutdown ends it: the
/// queued requests are then answered 503.
async fn supervised(committer: Committer) {
    let mut stop_rx = committer.shutdown.clone();
    let stop = async move { stopping(&mut stop_rx).await };
    let committer = Arc::new(tokio::sync::Mutex::new(committer));
    supervise(
        "collector committer",
        Backoff::default(),
        stop,
        move |attempt| {
            let committer = Arc::clone(&committer);
            async move {
                let mut committer = committer.lock().await;
                if attempt > 0 {
                    committer.state.recover().await;
                }
                Box::pin(committer.run()).await;
                Ok::<(), std::convert::Infallible>(())
            }
        },
    )
    .await;
}

impl Committer {
    /// Collects submissions and commits them every `batch_rows` rows or
    /// `flush_interval`; on shutdown, commits what it holds and what was
    /// already queued, then returns.
    async fn run(&mut self) {
        let Self {
            state,
            rx,
            shutdown,
        } = self;
        let mut pending: Vec<Submission> = vec![];
        let mut rows = 0usize;
        let mut deadline: Option<Instant> = None;
        let mut closed = false;
        loop {
            tokio::select! {
                next = rx.recv() => match next {
                    Some(submission) => {
                        if pending.is_empty() {
                            deadline = Some(Instant::now() + state.flush_interval);
                        }
                        rows += submission.events.len();
                        state
                            .pending_rows
                            .fetch_add(submission.events.len(), Ordering::Relaxed);
                        pending.push(submission);
                        if rows >= state.batch_rows || closed {
                            state.flush(std::mem::take(&mut pending)).await;
                            rows = 0;
                            deadline = None;
                        }
                    }
                    None => {
                        state.flush(std::mem::take(&mut pending)).await;
                        return;
                    }
                },
                _ = sleep_until(deadline) => {
                    state.flush(std::mem::take(&mut pending)).await;
                    rows = 0;
                    deadline = None;
                }
                _ = stopping(shutdown), if !closed => {
                    // No new submissions; those already queued are still
                    // received (then `recv` gives `None`).
                    closed = true;
                    rx.close();
                    state.flush(std::mem::take(&mut pending)).await;
                    rows = 0;
                    deadline = None;
                }
            }
        }
    }
}

impl CommitterState {
    /// Before a restart: the failed run's batch is gone (answered 503), and
    /// its commit may or may not have happened: the deduplication set is
    /// read again from the table (kept as it is if that fails).
    async fn recover(&mut self) {
        self.pending_rows.store(0, Ordering::Relaxed);
        match table::recent_ids(
            &self.session,
            &self.target,
            now_micros() - self.window - LOAD_MARGIN,
        )
        .await
        {
            Ok(ids) => {
                self.dedup.clear();
                self.dedup.load(ids);
                self.dedup.warn_when_full();
                info!(
                    remembered_ids = self.dedup.len(),
                    "collector: committer restarted, deduplication window reloaded"
                );
            }
            Err(e) => {
                error!(error = %e, "collector: committer restarted, but cannot re-read recent event ids");
            }
        }
    }

    /// Commits `batch` (one Delta commit) and answers its requests.
    async fn flush(&mut self, batch: Vec<Submission>) {
        if batch.is_empty() {
            return;
        }
        let rows: usize = batch.iter().map(|s| s.events.len()).sum();
        self.flush_batch(batch).await;
        self.pending_rows.fetch_sub(rows, Ordering::Relaxed);
    }

    async fn flush_batch(&mut self, batch: Vec<Submission>) {
        self.dedup.expire(now_micros() - self.window);
        let answers = match self.commit(&batch).await {
            Ok(acks) => acks.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(e) => {
                let status = match &e {
                    ServerError::Engine(e)
                        if matches!(
                            e.kind(),
                            ErrorKind::Conflict
                                | ErrorKind::Unavailable
                                | ErrorKind::ResourceExhausted
                        ) =>
                    {
                        StatusCode::SERVICE_UNAVAILABLE
                    }
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                };
                warn!(error = %e, requests = batch.len(), "collector: commit failed");
                // The commit may have happened even though it reported an
                // error (a lost answer from the store): re-read the window so
                // that a retry of these events is recognised.
                match table::recent_ids(
                    &self.session,
                    &self.target,
                    now_micros() - self.window - LOAD_MARGIN,
                )
                .await
                {
                    Ok(ids) => self.dedup.load(ids),
                    Err(e) => warn!(error = %e, "collector: cannot re-read recent event ids"),
                }
                let failure = CommitFailure {
                    status,
                    message: e.to_string(),
                };
                batch.iter().map(|_| Err(failure.clone())).collect()
            }
        };
        for (submission, answer) in batch.into_iter().zip(answers) {
            // The client may have gone: its rows are committed anyway.
            let _ = submission.reply.send(answer);
        }
    }

    async fn commit(&mut self, batch: &[Submission]) -> Result<Vec<Ack>> {
        // The ingest below drops erased profiles too: this counts them.
        let erased = self.session.engine().erasures().await?;
        let mut seen: HashSet<DedupKey> = HashSet::new();
        let mut rows: Vec<table::Row<'_>> = vec![];
        let mut keys: Vec<(DedupKey, i64)> = vec![];
        let mut acks = Vec::with_capacity(batch.len());
        for submission in batch {
            let mut ack = Ack::default();
            for event in &submission.events {
                let key = dedup_key(&event.event_id);
                if self.dedup.contains(&key) || !seen.insert(key) {
                    ack.duplicates += 1;
                } else if event
                    .profile_id
                    .as_deref()
                    .is_some_and(|p| erased.contains(p))
                {
                    ack.forgotten += 1;
                } else {
                    ack.accepted += 1;
                    rows.push((event, submission.received_at));
                    keys.push((key, submission.received_at));
                }
            }
            acks.push(ack);
        }
        if !rows.is_empty() {
            let record_batch = table::build_batch(&self.target, &rows)?;
            let written = table::append(&self.session, &self.target, record_batch).await?;
            debug!(
                rows = rows.len(),
                written,
                requests = batch.len(),
                "collector: committed"
            );
            for (key, received_at) in keys {
                self.dedup.insert(key, received_at);
            }
            self.dedup.warn_when_full();
        }
        Ok(acks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> DedupKey {
        dedup_key(id)
    }

    #[test]
    fn dedup_expires_oldest_first() {
        let mut d = Dedup::new(100);
        d.insert(key("a"), 10);
        d.insert(key("b"), 20);
        d.load(HashMap::from([(key("c"), 5), (key("b"), 99)]));
        assert_eq!(d.len(), 3);
        d.expire(11);
        assert!(!d.contains(&key("a")) && !d.contains(&key("c")));
        assert!(d.contains(&key("b")));
        d.expire(21);
        assert_eq!(d.len(), 0);
        assert_eq!(d.order.len(), 0);
    }

    #[test]
    fn dedup_keeps_the_newest_max_ids() {
        let (max, extra) = (50usize, 7usize);
        let mut d = Dedup::new(max);
        for i in 0..max + extra {
            d.insert(key(&format!("e{i}")), i as i64);
        }
        assert_eq!(d.len(), max);
        assert_eq!(d.order.len(), max);
        for i in 0..extra {
            assert!(
                !d.contains(&key(&format!("e{i}"))),
                "e{i} is among the oldest"
            );
        }
        for i in extra..max + extra {
            assert!(
                d.contains(&key(&format!("e{i}"))),
                "e{i} is among the newest"
            );
        }
        assert_eq!(d.dropped, extra as u64);
        // A reload past the cap keeps the newest too (loaded ones older
        // than the set's are dropped first).
        d.load(
            (0..10)
                .map(|i| (key(&format!("old{i}")), -100 + i))
                .chain((0..5).map(|i| (key(&format!("new{i}")), 1000 + i)))
                .collect(),
        );
        assert_eq!(d.len(), max);
        assert!((0..10).all(|i| !d.contains(&key(&format!("old{i}")))));
        assert!((0..5).all(|i| d.contains(&key(&format!("new{i}")))));
        assert!(!d.contains(&key(&format!("e{}", extra + 4))));
        assert!(d.contains(&key(&format!("e{}", extra + 5))));
        // Expiry still works on what is kept.
        d.expire(1000);
        assert_eq!(d.len(), 5);
    }

    #[test]
    fn a_full_dedup_set_warns_at_most_once_a_minute() {
        let mut d = Dedup::new(2);
        let t0 = StdInstant::now();
        assert_eq!(d.full_warning(t0), None, "nothing dropped yet");
        for i in 0..5 {
            d.insert(key(&format!("e{i}")), i);
        }
        assert_eq!(d.full_warning(t0), Some(3));
        d.insert(key("e5"), 5);
        assert_eq!(d.full_warning(t0 + Duration::from_secs(59)), None);
        assert_eq!(d.full_warning(t0 + Duration::from_secs(60)), Some(1));
        assert_eq!(d.full_warning(t0 + Duration::from_secs(200)), None);
    }

    #[test]
    fn dedup_keys_are_fixed_size_and_distinct() {
        let long = "x".repeat(128);
        assert_ne!(key("a"), key("b"));
        assert_ne!(key(&long), key(&long[..127]));
        assert_eq!(key("a"), key("a"));
    }
}
