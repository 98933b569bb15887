//! Command-line configuration (every flag is also a `SEGLAKE_*` variable)
//! and the commands the `seglake` binary runs.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use seglake_engine::demo::DemoOptions;
use seglake_engine::distributed::{ClusterConfig, ClusterSecret};
use seglake_engine::{Engine, EngineConfig, S3Options};
use tracing::{info, warn};

use crate::auth::{SessionPolicy, Users};
use crate::collector::CollectorArgs;
use crate::error::{Result, ServerError};
use crate::server::{RunningServer, ServerOptions, start};
use crate::worker::{DEFAULT_MAX_MESSAGE_BYTES, WorkerOptions, start_worker};

#[derive(Debug, Parser)]
#[command(
    name = "seglake",
    version,
    about = "Seglake: a SQL segment engine for marketing data, served over Arrow Flight SQL"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the warehouse over Arrow Flight SQL.
    Serve(Box<ServeArgs>),
    /// Write the demo data set into a warehouse and register its tables.
    Demo(DemoArgs),
    /// Run a distributed worker: executes plan fragments sent by `seglake
    /// serve --workers ...` coordinators sharing the same warehouse.
    Worker(Box<WorkerArgs>),
    /// Read a password from standard input (one line) and print its
    /// argon2id hash, for `--user NAME:HASH`.
    HashPassword,
}

/// Where the warehouse is (shared by every command).
#[derive(Debug, Clone, Args)]
pub struct WarehouseArgs {
    /// Warehouse location: a local directory, a file:// URL, or s3://bucket/prefix.
    #[arg(long, env = "SEGLAKE_WAREHOUSE", default_value = "./warehouse")]
    pub warehouse: String,

    /// S3 endpoint (for S3-compatible servers); default from AWS_ENDPOINT.
    #[arg(long, env = "SEGLAKE_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,

    /// S3 region; default from AWS_REGION.
    #[arg(long, env = "SEGLAKE_S3_REGION")]
    pub s3_region: Option<String>,

    /// S3 access key id; default from AWS_ACCESS_KEY_ID.
    #[arg(long, env = "SEGLAKE_S3_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,

    /// S3 secret access key; default from AWS_SECRET_ACCESS_KEY.
    #[arg(long, env = "SEGLAKE_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,

    /// Allow plain-HTTP S3 endpoints; default from AWS_ALLOW_HTTP.
    #[arg(long, env = "SEGLAKE_S3_ALLOW_HTTP")]
    pub s3_allow_http: Option<bool>,

    /// A prefix outside the warehouse that external tables (LOCATION), file
    /// destinations and workers' scans may name: an absolute path or
    /// s3://bucket/prefix (repeatable; the variable takes a comma-separated
    /// list). Without any, only the warehouse is reachable. Its own folders
    /// (_seglake, tables/) never are.
    #[arg(
        long = "allow-location",
        env = "SEGLAKE_ALLOW_LOCATIONS",
        value_delimiter = ',',
        value_name = "PREFIX"
    )]
    pub allow_locations: Vec<String>,
}

impl WarehouseArgs {
    fn s3(&self) -> S3Options {
        S3Options {
            endpoint: self.s3_endpoint.clone(),
            region: self.s3_region.clone(),
            access_key_id: self.s3_access_key_id.clone(),
            secret_access_key: self.s3_secret_access_key.clone(),
            allow_http: self.s3_allow_http,
        }
    }
}

/// Query execution settings.
#[derive(Debug, Clone, Args)]
pub struct ExecutionArgs {
    /// Parallelism of query execution (default: number of cores).
    #[arg(long, env = "SEGLAKE_TARGET_PARTITIONS")]
    pub target_partitions: Option<usize>,

    /// Rows per record batch.
    #[arg(long, env = "SEGLAKE_BATCH_SIZE")]
    pub batch_size: Option<usize>,

    /// Size of the memory pool of query execution in MiB, shared by every
    /// statement of this process (spilling operators spill to the OS
    /// temporary directory, others fail the statement with
    /// RESOURCE_EXHAUSTED naming it). Default: 70 % of the machine's
    /// memory, or of the cgroup's limit when lower (a container).
    #[arg(long, env = "SEGLAKE_MEMORY_LIMIT_MB")]
    pub memory_limit_mb: Option<usize>,

    /// Longest a statement may run, in seconds (queries to their last
    /// row, commands to their end, single node and distributed); a
    /// session may lower it with `SET seglake.statement_timeout`. A
    /// statement past it answers DEADLINE_EXCEEDED.
    #[arg(long, env = "SEGLAKE_STATEMENT_TIMEOUT_SECS", default_value_t = 3600)]
    pub statement_timeout_secs: u64,

    /// Statements that run at once (default: twice the cores); the others
    /// wait for a slot, `queued` in system.queries, users served in turn.
    /// `seglake serve` only.
    #[arg(long, env = "SEGLAKE_MAX_RUNNING_QUERIES", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_running_queries: Option<u32>,

    /// Statements that may wait for a slot; past it a statement answers
    /// RESOURCE_EXHAUSTED at once. `seglake serve` only.
    #[arg(long, env = "SEGLAKE_MAX_QUEUED_QUERIES", default_value_t = 1000)]
    pub max_queued_queries: usize,

    /// Slots beside --max-running-queries that only the HTTP collector's
    /// commits and scheduled segment refreshes take, so that a server
    /// saturated by queries still ingests. `seglake serve` only.
    #[arg(long, env = "SEGLAKE_RESERVED_SERVICE_QUERIES", default_value_t = 2)]
    pub reserved_service_queries: usize,

    /// Defaults for DataFusion and Seglake settings as KEY=VALUE pairs
    /// separated by commas (for example
    /// `datafusion.execution.batch_size=16384,seglake.write_row_group_rows=262144`),
    /// set on every session after Seglake's own defaults. Sessions may still
    /// SET them. An unknown key or a bad value stops the start.
    #[arg(
        long,
        env = "SEGLAKE_DATAFUSION_CONFIG",
        value_delimiter = ',',
        value_parser = parse_setting,
        value_name = "KEY=VALUE"
    )]
    pub datafusion_config: Vec<(String, String)>,
}

/// `KEY=VALUE` of `--datafusion-config`.
fn parse_setting(text: &str) -> std::result::Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(format!("expected KEY=VALUE, got '{text}'")),
    }
}

/// Demo data size.
#[derive(Debug, Clone, Args)]
pub struct DemoSizeArgs {
    /// Number of profiles (events scale with it: about 50 per profile).
    #[arg(
        long = "profiles",
        env = "SEGLAKE_DEMO_PROFILES",
        default_value_t = 100_000
    )]
    pub profiles: u64,

    /// Random seed: the same seed gives the same data.
    #[arg(long = "seed", env = "SEGLAKE_DEMO_SEED", default_value_t = 42)]
    pub seed: u64,
}

impl DemoSizeArgs {
    fn options(&self) -> DemoOptions {
        DemoOptions {
            profiles: self.profiles,
            seed: self.seed,
            ..DemoOptions::default()
        }
    }
}

/// Distributed execution, on the coordinator.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Workers to distribute queries to, as http://HOST:PORT, or
    /// https://HOST:PORT over TLS (see --cluster-ca) (repeatable, or
    /// comma-separated). A host name that resolves to several addresses
    /// (a Kubernetes headless service) gives one worker per address.
    /// Without workers, queries run on this server alone.
    #[arg(long = "workers", env = "SEGLAKE_WORKERS", value_delimiter = ',')]
    pub workers: Vec<String>,

    /// How often workers are resolved and health-checked, in milliseconds.
    #[arg(long, env = "SEGLAKE_WORKER_PROBE_INTERVAL_MS", default_value_t = 2000)]
    pub worker_probe_interval_ms: u64,

    /// A worker that does not answer a health check within this many
    /// milliseconds gets no work until it answers again.
    #[arg(long, env = "SEGLAKE_WORKER_PROBE_TIMEOUT_MS", default_value_t = 2000)]
    pub worker_probe_timeout_ms: u64,

    /// Tasks per distributed stage at most (default: the number of live
    /// workers). Per session: SET distributed.max_tasks_per_stage = N.
    #[arg(long, env = "SEGLAKE_MAX_TASKS_PER_STAGE")]
    pub max_tasks_per_stage: Option<usize>,

    /// Bytes of Parquet per scan partition (default 16 MiB): lower means
    /// more tasks. Per session: SET distributed.file_scan_config_bytes_per_partition = N.
    #[arg(long, env = "SEGLAKE_SCAN_BYTES_PER_PARTITION")]
    pub scan_bytes_per_partition: Option<usize>,

    /// Deadline of a distributed query, in seconds.
    #[arg(long, env = "SEGLAKE_QUERY_TIMEOUT_SECS", default_value_t = 3600)]
    pub query_timeout_secs: u64,

    #[command(flatten)]
    pub secret: ClusterSecretArgs,

    #[command(flatten)]
    pub tls: ClusterTlsArgs,
}

/// TLS of a listener (`seglake serve`: Flight SQL and the collector;
/// `seglake worker`). The files are read at start: to rotate a
/// certificate, replace the files and restart.
#[derive(Debug, Clone, Args)]
pub struct TlsArgs {
    /// Serve TLS with this certificate chain (PEM, the server's certificate
    /// first). Needs --tls-key.
    #[arg(long, env = "SEGLAKE_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "SEGLAKE_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<std::path::PathBuf>,
}

impl TlsArgs {
    /// The loaded certificate and key, `None` without TLS; `client_ca`
    /// (workers' `--tls-client-ca`) makes clients present a certificate.
    pub fn server_tls(
        &self,
        client_ca: Option<&std::path::Path>,
    ) -> Result<Option<crate::tls::ServerTls>> {
        crate::tls::ServerTls::from_flags(
            self.tls_cert.as_deref(),
            self.tls_key.as_deref(),
            client_ca,
        )
    }
}

/// How `https://` workers are verified, on the coordinator and on workers
/// (a query's stages read from each other). Files read at start.
#[derive(Debug, Clone, Args)]
pub struct ClusterTlsArgs {
    /// CA certificate(s) (PEM) that the certificates of `https://` workers
    /// must be signed by. Without it, the system's trusted roots.
    #[arg(long, env = "SEGLAKE_CLUSTER_CA", value_name = "FILE")]
    pub cluster_ca: Option<std::path::PathBuf>,

    /// Client certificate (PEM) presented to workers that require one
    /// (--tls-client-ca). Needs --cluster-client-key.
    #[arg(long, env = "SEGLAKE_CLUSTER_CLIENT_CERT", value_name = "FILE")]
    pub cluster_client_cert: Option<std::path::PathBuf>,

    /// The private key of --cluster-client-cert (PEM).
    #[arg(long, env = "SEGLAKE_CLUSTER_CLIENT_KEY", value_name = "FILE")]
    pub cluster_client_key: Option<std::path::PathBuf>,

    /// The name workers' certificates are checked against. Default: the
    /// host of the --workers address a worker was resolved from, and the
    /// worker's IP address between workers (so a certificate without that
    /// address needs this flag on the workers too).
    #[arg(long, env = "SEGLAKE_CLUSTER_TLS_NAME", value_name = "NAME")]
    pub cluster_tls_name: Option<String>,
}

impl ClusterTlsArgs {
    pub fn cluster_tls(&self) -> Result<seglake_engine::distributed::ClusterTls> {
        crate::tls::cluster_tls(
            self.cluster_ca.as_deref(),
            self.cluster_client_cert.as_deref(),
            self.cluster_client_key.as_deref(),
            self.cluster_tls_name.as_deref(),
        )
    }
}

/// The secret shared by a coordinator and its workers (see docs/server.md,
/// "Distributed workers").
#[derive(Debug, Clone, Args)]
pub struct ClusterSecretArgs {
    /// Secret shared by the coordinator and its workers (at least 16
    /// characters): the coordinator proves it on every call, workers refuse
    /// calls without it. Prefer --cluster-secret-file.
    #[arg(
        long,
        env = "SEGLAKE_CLUSTER_SECRET",
        hide_env_values = true,
        value_name = "SECRET",
        conflicts_with = "cluster_secret_file"
    )]
    pub cluster_secret: Option<SecretText>,

    /// File holding the cluster secret (surrounding white space ignored),
    /// for example a mounted Kubernetes Secret: the secret then sits in no
    /// process environment or command line.
    #[arg(long, env = "SEGLAKE_CLUSTER_SECRET_FILE", value_name = "PATH")]
    pub cluster_secret_file: Option<std::path::PathBuf>,
}

impl ClusterSecretArgs {
    /// The secret given, checked; errors never repeat it.
    pub fn secret(&self) -> Result<Option<ClusterSecret>> {
        let text = match (&self.cluster_secret, &self.cluster_secret_file) {
            (Some(text), _) => text.0.clone(),
            (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| {
                ServerError::Config(format!(
                    "cannot read the cluster secret file {}: {e}",
                    path.display()
                ))
            })?,
            (None, None) => return Ok(None),
        };
        ClusterSecret::new(&text)
            .map(Some)
            .map_err(|e| ServerError::Config(e.to_string()))
    }
}

/// A secret given on the command line or in the environment: clap accepts
/// any text (so that its errors never print it) and `Debug` hides it.
#[derive(Clone)]
pub struct SecretText(String);

impl std::str::FromStr for SecretText {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(Self(s.to_string()))
    }
}

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl ClusterArgs {
    fn config(&self) -> Result<Option<ClusterConfig>> {
        let workers: Vec<String> = self
            .workers
            .iter()
            .map(|w| w.trim().to_string())
            .filter(|w| !w.is_empty())
            .collect();
        if workers.is_empty() {
            return Ok(None);
        }
        let mut config = ClusterConfig::new(workers);
        config.secret = self.secret.secret()?;
        if config.secret.is_none() {
            warn!("no --cluster-secret: only workers running without one accept this coordinator");
        }
        config.probe_interval = Duration::from_millis(self.worker_probe_interval_ms.max(100));
        config.probe_timeout = Duration::from_millis(self.worker_probe_timeout_ms.max(50));
        config.max_tasks_per_stage = self.max_tasks_per_stage;
        config.scan_bytes_per_partition = self.scan_bytes_per_partition;
        config.query_timeout = Duration::from_secs(self.query_timeout_secs.max(1));
        config.tls = self.tls.cluster_tls()?;
        Ok(Some(config))
    }
}

#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub warehouse: WarehouseArgs,

    #[command(flatten)]
    pub execution: ExecutionArgs,

    /// Address to listen on (port 0 picks a free port; the bound address is
    /// printed on standard output as `listening on ADDR`). A non-loopback
    /// address needs a cluster secret.
    #[arg(long, env = "SEGLAKE_LISTEN", default_value = "127.0.0.1:50052")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub secret: ClusterSecretArgs,

    /// Largest message the worker decodes, in MiB (a plan fragment, a batch
    /// of work units); larger ones are refused before they are read.
    #[arg(long, env = "SEGLAKE_MAX_MESSAGE_MB", default_value_t = DEFAULT_MAX_MESSAGE_BYTES / (1024 * 1024))]
    pub max_message_mb: usize,

    #[command(flatten)]
    pub tls: TlsArgs,

    /// Require callers to present a client certificate signed by this CA
    /// (PEM): mutual TLS. Needs --tls-cert and --tls-key; the coordinator
    /// then needs --cluster-client-cert/--cluster-client-key, and so do the
    /// workers (they read from each other).
    #[arg(long, env = "SEGLAKE_TLS_CLIENT_CA", value_name = "FILE")]
    pub tls_client_ca: Option<std::path::PathBuf>,

    #[command(flatten)]
    pub cluster_tls: ClusterTlsArgs,

    /// On SIGINT/SIGTERM, wait this long for running tasks before exiting.
    #[arg(long, env = "SEGLAKE_SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub warehouse: WarehouseArgs,

    #[command(flatten)]
    pub execution: ExecutionArgs,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// Address to listen on (port 0 picks a free port; the bound address is
    /// printed on standard output as `listening on ADDR`).
    #[arg(long, env = "SEGLAKE_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// A user allowed to connect, as NAME:PASSWORD or NAME:ARGON2ID_HASH
    /// (a PHC string `$argon2id$v=19$...`, see `seglake hash-password`);
    /// repeatable, and a value may list several, comma-separated. Without
    /// any, the server only starts on a loopback address, with the user
    /// seglake/seglake.
    // Split by `Users::parse`, not by clap: a hash holds commas itself.
    #[arg(
        long = "user",
        env = "SEGLAKE_USERS",
        hide_env_values = true,
        value_name = "NAME:PASSWORD"
    )]
    pub users: Vec<String>,

    /// Create the demo data set on first start if the warehouse has no tables.
    #[arg(long, env = "SEGLAKE_DEMO")]
    pub demo: bool,

    #[command(flatten)]
    pub demo_size: DemoSizeArgs,

    /// Drop sessions idle for this many seconds.
    #[arg(long, env = "SEGLAKE_SESSION_IDLE_TIMEOUT_SECS", default_value_t = 8 * 3600)]
    pub session_idle_timeout_secs: u64,

    /// Refuse a session (its bearer token) this many seconds after its
    /// login, however busy: the client logs in again.
    #[arg(long, env = "SEGLAKE_SESSION_MAX_LIFETIME_SECS", default_value_t = 24 * 3600)]
    pub session_max_lifetime_secs: u64,

    /// Open sessions per user at most: a login beyond it closes that
    /// user's least recently used session.
    #[arg(long, env = "SEGLAKE_MAX_SESSIONS_PER_USER", default_value_t = 64)]
    pub max_sessions_per_user: usize,

    /// Days the audit trail (`system.audit`) keeps its records; older days
    /// are deleted at start and daily.
    #[arg(long, env = "SEGLAKE_AUDIT_RETENTION_DAYS", default_value_t = 400)]
    pub audit_retention_days: u32,

    /// Largest DoPut message in MiB (bulk ingest, parameter batches; ADBC
    /// sends up to 16 MiB). Other calls take messages up to 16 MiB.
    #[arg(long, env = "SEGLAKE_MAX_MESSAGE_MB", default_value_t = 64)]
    pub max_message_mb: usize,

    /// On SIGINT/SIGTERM, wait this long for running calls before exiting.
    #[arg(long, env = "SEGLAKE_SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,

    #[command(flatten)]
    pub collector: CollectorArgs,

    #[command(flatten)]
    pub tls: TlsArgs,

    /// Run scheduled segment refreshes (`ALTER SEGMENT ... SET REFRESH
    /// EVERY`) in this server. With several servers on one warehouse, keep
    /// it on one of them (`--refresh-scheduler false` on the others).
    #[arg(long, env = "SEGLAKE_REFRESH_SCHEDULER", default_value_t = true, action = clap::ArgAction::Set)]
    pub refresh_scheduler: bool,

    /// How often the scheduler looks for due refreshes, in milliseconds.
    #[arg(long, env = "SEGLAKE_REFRESH_TICK_MS", default_value_t = 1000)]
    pub refresh_tick_ms: u64,

    /// A webhook host this server may deliver to although it is not
    /// public: a host name (exact), an IP address or a network, e.g.
    /// 127.0.0.1, 10.0.0.0/8, hooks.internal (repeatable; the variable
    /// takes a comma-separated list). Without any, webhooks reach public
    /// addresses only (not loopback, private, link-local, cloud metadata).
    #[arg(
        long = "allow-webhook",
        env = "SEGLAKE_ALLOW_WEBHOOKS",
        value_delimiter = ',',
        value_name = "HOST_OR_CIDR"
    )]
    pub allow_webhooks: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub warehouse: WarehouseArgs,

    #[command(flatten)]
    pub demo_size: DemoSizeArgs,
}

async fn open_engine(
    warehouse: &WarehouseArgs,
    execution: Option<&ExecutionArgs>,
    cluster: Option<ClusterConfig>,
    allow_webhooks: &[String],
    administrators: Option<Vec<String>>,
    audit_retention_days: Option<u32>,
) -> Result<std::sync::Arc<Engine>> {
    let mut config = EngineConfig::new(warehouse.warehouse.clone());
    config.administrators = administrators;
    if let Some(days) = audit_retention_days {
        config.audit_retention_days = days.max(1);
    }
    config.allow_webhooks = allow_webhooks.to_vec();
    config.s3 = warehouse.s3();
    config.allow_locations = warehouse.allow_locations.clone();
    config.cluster = cluster;
    if let Some(e) = execution {
        config.target_partitions = e.target_partitions;
        config.batch_size = e.batch_size;
        config.memory_limit = e.memory_limit_mb.map(|mb| mb * 1024 * 1024);
        config.statement_timeout = Duration::from_secs(e.statement_timeout_secs.max(1));
        if let Some(n) = e.max_running_queries {
            config.max_running_queries = n as usize;
        }
        config.max_queued_queries = e.max_queued_queries;
        config.reserved_service_queries = e.reserved_service_queries;
        config.settings = e.datafusion_config.clone();
    }
    Ok(Engine::open(config).await?)
}

/// A progress bar on standard error for the demo generator.
fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {percent}% {elapsed} (eta {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message("generating demo data");
    bar
}

async fn install_demo(engine: &Engine, size: &DemoSizeArgs, force: bool) -> Result<()> {
    let bar = progress_bar();
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let summary = engine
        .install_demo(&size.options(), force, &progress)
        .await?;
    bar.finish_and_clear();
    match summary {
        Some(s) => info!(
            profiles = s.profiles,
            events = s.events,
            identifiers = s.identifiers,
            "demo data written and registered: profiles, events, identifiers"
        ),
        None => info!("the warehouse already has tables: demo data not installed"),
    }
    Ok(())
}

fn users(args: &ServeArgs) -> Result<Users> {
    if args.users.is_empty() {
        for addr in std::iter::once(args.listen).chain(args.collector.collect) {
            if !addr.ip().is_loopback() {
                return Err(ServerError::Config(format!(
                    "refusing to listen on {addr} without users: pass --user NAME:PASSWORD (or SEGLAKE_USERS)"
                )));
            }
        }
        warn!(
            "no --user given: accepting only the default user seglake/seglake on the loopback address"
        );
        return Users::parse(["seglake:seglake"]);
    }
    Users::parse(args.users.iter().map(String::as_str))
}

/// Waits for SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// `seglake serve`. `on_listening` receives the bound address.
pub async fn serve(args: ServeArgs, on_listening: impl FnOnce(SocketAddr)) -> Result<()> {
    let users = users(&args)?;
    // Before the warehouse is opened: a bad file stops the start at once.
    let tls = args.tls.server_tls(None)?;
    // The server's own users are its administrators; users made with
    // CREATE USER have what they are granted (docs/security.md).
    let engine = open_engine(
        &args.warehouse,
        Some(&args.execution),
        args.cluster.config()?,
        &args.allow_webhooks,
        Some(
            users
                .names()
                .into_iter()
                .chain([crate::collector::COLLECTOR_USER])
                .map(str::to_string)
                .collect(),
        ),
        Some(args.audit_retention_days),
    )
    .await?;
    users.with_catalog_of(std::sync::Arc::clone(&engine));
    if args.demo {
        install_demo(&engine, &args.demo_size, false).await?;
    }
    let collector_options = args.collector.options(&users)?.map(|mut options| {
        options.tls = tls.clone();
        options
    });
    let server = start(
        std::sync::Arc::clone(&engine),
        ServerOptions {
            listen: args.listen,
            users: users.clone(),
            sessions: SessionPolicy {
                idle_timeout: Duration::from_secs(args.session_idle_timeout_secs.max(1)),
                max_lifetime: Duration::from_secs(args.session_max_lifetime_secs.max(1)),
                max_per_user: args.max_sessions_per_user.max(1),
            },
            max_message_size: args.max_message_mb.clamp(1, 4096) * 1024 * 1024,
            tls,
        },
    )
    .await?;
    on_listening(server.addr());
    // Dropped (and so stopped) when `serve` returns; restarted (logged at
    // ERROR, with a backoff) if it ever panics.
    let _scheduler = args.refresh_scheduler.then(|| {
        let engine = std::sync::Arc::clone(&engine);
        let tick = Duration::from_millis(args.refresh_tick_ms.max(10));
        AbortOnDrop(tokio::spawn(crate::supervise::supervise(
            "refresh scheduler",
            crate::supervise::Backoff::default(),
            std::future::pending(),
            move |_| {
                let engine = std::sync::Arc::clone(&engine);
                async move {
                    Box::pin(engine.run_refresh_scheduler(tick)).await;
                    Ok::<(), std::convert::Infallible>(())
                }
            },
        )))
    });
    let collector = match collector_options {
        Some(options) => {
            let collector =
                crate::collector::start(std::sync::Arc::clone(&engine), options).await?;
            // The second line on standard output (after `listening on`).
            #[allow(clippy::print_stdout)]
            {
                println!("collector listening on {}", collector.addr());
            }
            Some(collector)
        }
        None => None,
    };
    let stopped = stop_on_signal(server, collector, args.shutdown_grace_secs).await;
    // The last audit records (the collector's last commits included).
    if let Err(e) = engine.flush_audit().await {
        warn!(error = %e, "the last audit records could not be written");
    }
    stopped
}

/// Waits for SIGINT/SIGTERM, then stops `server` (and the collector)
/// gracefully.
async fn stop_on_signal(
    mut server: RunningServer,
    mut collector: Option<crate::collector::RunningCollector>,
    grace_secs: u64,
) -> Result<()> {
    shutdown_signal().await;
    info!(grace_secs, "shutting down: finishing running calls");
    server.trigger_shutdown();
    if let Some(c) = collector.as_mut() {
        // Requests already received are committed and answered first.
        c.trigger_shutdown();
    }
    let stopped = async {
        let flight = server.wait().await;
        let collected = match collector {
            Some(c) => c.wait().await,
            None => Ok(()),
        };
        flight.and(collected)
    };
    match tokio::time::timeout(Duration::from_secs(grace_secs), stopped).await {
        Ok(result) => result,
        Err(_) => {
            warn!("calls still running after the grace period: stopping anyway");
            Ok(())
        }
    }
}

/// `seglake worker`. `on_listening` receives the bound address.
pub async fn worker(args: WorkerArgs, on_listening: impl FnOnce(SocketAddr)) -> Result<()> {
    let options = WorkerOptions {
        listen: args.listen,
        cluster_secret: args.secret.secret()?,
        max_message_bytes: args.max_message_mb.max(1).saturating_mul(1024 * 1024),
        tls: args.tls.server_tls(args.tls_client_ca.as_deref())?,
        cluster_tls: args.cluster_tls.cluster_tls()?,
    };
    // Before the warehouse is opened: a refused start leaves nothing behind.
    options.check()?;
    let engine = open_engine(
        &args.warehouse,
        Some(&args.execution),
        None,
        &[],
        None,
        None,
    )
    .await?;
    let server = start_worker(engine, options).await?;
    on_listening(server.addr());
    stop_on_signal(server, None, args.shutdown_grace_secs).await
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `seglake demo`.
pub async fn demo(args: DemoArgs) -> Result<()> {
    let engine = open_engine(&args.warehouse, None, None, &[], None, None).await?;
    install_demo(&engine, &args.demo_size, true).await
}

/// Runs a parsed command line.
pub async fn run(cli: Cli, on_listening: impl FnOnce(SocketAddr)) -> Result<()> {
    crate::tls::install_crypto_provider();
    match cli.command {
        Command::Serve(args) => serve(*args, on_listening).await,
        Command::Demo(args) => demo(args).await,
        Command::Worker(args) => worker(*args, on_listening).await,
        Command::HashPassword => hash_password(),
    }
}

/// `seglake hash-password`: the password is the first line of standard
/// input (never an argument: it would sit in the shell history and the
/// process list).
fn hash_password() -> Result<()> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        return Err(ServerError::Config(
            "hash-password: no password on standard input".into(),
        ));
    }
    let hash = crate::auth::hash_password(password)?;
    #[allow(clippy::print_stdout)]
    {
        println!("{hash}");
    }
    Ok(())
}
