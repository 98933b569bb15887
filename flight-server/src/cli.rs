//! Command-line configuration (every flag is also a `SEGLAKE_*` variable)
//! and the commands the `seglake` binary runs.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use seglake_engine::demo::DemoOptions;
use seglake_engine::distributed::ClusterConfig;
use seglake_engine::{Engine, EngineConfig, S3Options};
use tracing::{info, warn};

use crate::auth::Users;
use crate::collector::CollectorArgs;
use crate::error::{Result, ServerError};
use crate::server::{RunningServer, ServerOptions, start};
use crate::worker::start_worker;

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
    Worker(WorkerArgs),
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

    /// Memory limit for query execution in MiB (spilling operators spill,
    /// others fail with ResourceExhausted). Default: unlimited.
    #[arg(long, env = "SEGLAKE_MEMORY_LIMIT_MB")]
    pub memory_limit_mb: Option<usize>,

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
    /// Workers to distribute queries to, as http://HOST:PORT (repeatable,
    /// or comma-separated). A host name that resolves to several addresses
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
}

impl ClusterArgs {
    fn config(&self) -> Option<ClusterConfig> {
        let workers: Vec<String> = self
            .workers
            .iter()
            .map(|w| w.trim().to_string())
            .filter(|w| !w.is_empty())
            .collect();
        if workers.is_empty() {
            return None;
        }
        let mut config = ClusterConfig::new(workers);
        config.probe_interval = Duration::from_millis(self.worker_probe_interval_ms.max(100));
        config.probe_timeout = Duration::from_millis(self.worker_probe_timeout_ms.max(50));
        config.max_tasks_per_stage = self.max_tasks_per_stage;
        config.scan_bytes_per_partition = self.scan_bytes_per_partition;
        config.query_timeout = Duration::from_secs(self.query_timeout_secs.max(1));
        Some(config)
    }
}

#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub warehouse: WarehouseArgs,

    #[command(flatten)]
    pub execution: ExecutionArgs,

    /// Address to listen on (port 0 picks a free port; the bound address is
    /// printed on standard output as `listening on ADDR`). The worker port
    /// has no authentication: keep it on the cluster's private network.
    #[arg(long, env = "SEGLAKE_LISTEN", default_value = "127.0.0.1:50052")]
    pub listen: SocketAddr,

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

    /// A user allowed to connect, as NAME:PASSWORD (repeatable; the
    /// variable takes a comma-separated list). Without any, the server only
    /// starts on a loopback address, with the user seglake/seglake.
    #[arg(long = "user", env = "SEGLAKE_USERS", value_delimiter = ',')]
    pub users: Vec<String>,

    /// Create the demo data set on first start if the warehouse has no tables.
    #[arg(long, env = "SEGLAKE_DEMO")]
    pub demo: bool,

    #[command(flatten)]
    pub demo_size: DemoSizeArgs,

    /// Drop sessions idle for this many seconds.
    #[arg(long, env = "SEGLAKE_SESSION_IDLE_TIMEOUT_SECS", default_value_t = 8 * 3600)]
    pub session_idle_timeout_secs: u64,

    /// On SIGINT/SIGTERM, wait this long for running calls before exiting.
    #[arg(long, env = "SEGLAKE_SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,

    #[command(flatten)]
    pub collector: CollectorArgs,

    /// Run scheduled segment refreshes (`ALTER SEGMENT ... SET REFRESH
    /// EVERY`) in this server. With several servers on one warehouse, keep
    /// it on one of them (`--refresh-scheduler false` on the others).
    #[arg(long, env = "SEGLAKE_REFRESH_SCHEDULER", default_value_t = true, action = clap::ArgAction::Set)]
    pub refresh_scheduler: bool,

    /// How often the scheduler looks for due refreshes, in milliseconds.
    #[arg(long, env = "SEGLAKE_REFRESH_TICK_MS", default_value_t = 1000)]
    pub refresh_tick_ms: u64,
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
) -> Result<std::sync::Arc<Engine>> {
    let mut config = EngineConfig::new(warehouse.warehouse.clone());
    config.s3 = warehouse.s3();
    config.cluster = cluster;
    if let Some(e) = execution {
        config.target_partitions = e.target_partitions;
        config.batch_size = e.batch_size;
        config.memory_limit = e.memory_limit_mb.map(|mb| mb * 1024 * 1024);
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
    let engine = open_engine(
        &args.warehouse,
        Some(&args.execution),
        args.cluster.config(),
    )
    .await?;
    if args.demo {
        install_demo(&engine, &args.demo_size, false).await?;
    }
    let collector_options = args.collector.options(&users)?;
    let server = start(
        std::sync::Arc::clone(&engine),
        ServerOptions {
            listen: args.listen,
            users: users.clone(),
            session_idle_timeout: Duration::from_secs(args.session_idle_timeout_secs),
        },
    )
    .await?;
    on_listening(server.addr());
    // Dropped (and so stopped) when `serve` returns.
    let _scheduler = args.refresh_scheduler.then(|| {
        AbortOnDrop(tokio::spawn(
            std::sync::Arc::clone(&engine)
                .run_refresh_scheduler(Duration::from_millis(args.refresh_tick_ms.max(10))),
        ))
    });
    let collector = match collector_options {
        Some(options) => {
            let collector = crate::collector::start(engine, options).await?;
            // The second line on standard output (after `listening on`).
            #[allow(clippy::print_stdout)]
            {
                println!("collector listening on {}", collector.addr());
            }
            Some(collector)
        }
        None => None,
    };
    stop_on_signal(server, collector, args.shutdown_grace_secs).await
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
    let engine = open_engine(&args.warehouse, Some(&args.execution), None).await?;
    let server = start_worker(engine, args.listen).await?;
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
    let engine = open_engine(&args.warehouse, None, None).await?;
    install_demo(&engine, &args.demo_size, true).await
}

/// Runs a parsed command line.
pub async fn run(cli: Cli, on_listening: impl FnOnce(SocketAddr)) -> Result<()> {
    match cli.command {
        Command::Serve(args) => serve(*args, on_listening).await,
        Command::Demo(args) => demo(args).await,
        Command::Worker(args) => worker(args, on_listening).await,
    }
}
