//! Distributed execution on `datafusion-distributed`: the coordinator side
//! (worker discovery and health, planning, retries and deadlines) and the
//! worker side (the session every plan fragment runs in).
//!
//! * A [`Cluster`] holds the configured workers. A background task resolves
//!   them (a host name may resolve to several addresses: one worker each) and
//!   probes each with the worker service's `GetWorkerInfo` call; only workers
//!   that answered the last probe are handed to the distributed planner (it
//!   is the [`WorkerResolver`]). With no live worker, queries run on the
//!   coordinator alone.
//! * Workers are reached over gRPC channels with connect and HTTP/2
//!   keep-alive timeouts, so a machine that vanishes is noticed instead of
//!   hanging a query.
//! * [`supervise`] runs a query: if a worker stopped answering before the
//!   first batch reached the client, the query runs again once on the
//!   remaining workers; after that the client gets an `Unavailable` error
//!   naming the worker. Every query has a deadline.
//! * [`worker`] builds the worker service: the same functions
//!   (`seglake_udfs::register_all`, appended to DataFusion's) and codec as the
//!   coordinator, and the engine's runtime (object stores, memory pool); it
//!   refuses fragments that write or scan outside the allowed locations.
//! * [`auth`]: with a cluster secret, every call to a worker carries a
//!   short-lived token signed with it; a worker that refuses the
//!   coordinator's token is `unusable` and gets no work.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use arrow::array::{RecordBatch, StringBuilder, TimestampMillisecondBuilder, UInt64Builder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::datasource::physical_plan::{FileGroup, FileGroupPartitioner, FileScanConfig};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{LogicalPlan, PlanType, StringifiedPlan, ToStringifiedPlan};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::physical_plan::explain::ExplainExec;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use datafusion::prelude::SessionContext;
use datafusion_distributed::grpc::{BoxCloneSyncChannel, create_worker_client};
use datafusion_distributed::{
    ChannelResolver, CoordinatorToWorkerMsg, DistributedExt, DistributedLeafExec,
    ExecuteTaskRequest, GetWorkerInfoRequest, GetWorkerInfoResponse, ScaleUpLeafNodeEvent,
    ScaleUpLeafNodeEventResponse, SessionStateBuilderExt, SetPlanRequest, WorkerChannel,
    WorkerResolver, WorkerToCoordinatorMsg, display_plan_ascii,
};
use futures::StreamExt;
use futures::stream::BoxStream;
use seglake_udfs::SeglakeCodec;
use tokio::time::Instant;
use tracing::{debug, info, warn};
use url::Url;
use uuid::Uuid;

use crate::{EngineError, Result};

pub mod auth;
mod tls;
mod worker;

pub use auth::{CLUSTER_TOKEN_HEADER, ClusterSecret, TokenError};
pub use tls::ClusterTls;
pub(crate) use worker::worker;

/// The codec of plan fragments, on coordinators and workers alike:
/// Seglake's functions and plan nodes, then Delta table scans
/// ([`crate::storage::delta_scan::DeltaScanCodec`]).
pub fn codec() -> SeglakeCodec {
    SeglakeCodec::new().with_fallback(Arc::new(crate::storage::delta_scan::DeltaScanCodec))
}

/// Version a worker reports; the coordinator only uses workers of its own
/// version (plan fragments are not compatible across versions).
pub const WORKER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// How a coordinator finds and uses its workers.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Worker addresses: `http://host:port`, `https://host:port` (TLS, see
    /// [`ClusterConfig::tls`]) or `host:port` (plain). A host name that
    /// resolves to several addresses (a Kubernetes headless service) gives
    /// one worker per address, re-resolved at every probe.
    pub workers: Vec<String>,
    /// How often workers are resolved and probed.
    pub probe_interval: Duration,
    /// A worker that does not answer a probe within this time is down.
    pub probe_timeout: Duration,
    /// Tasks per stage at most (default: the number of live workers);
    /// `SET distributed.max_tasks_per_stage` per session.
    pub max_tasks_per_stage: Option<usize>,
    /// Bytes of Parquet each scan partition should read: lower means more
    /// tasks; `SET distributed.file_scan_config_bytes_per_partition`.
    pub scan_bytes_per_partition: Option<usize>,
    /// Deadline of a query (planning to last batch).
    pub query_timeout: Duration,
    /// Proven to the workers on every call (`--cluster-secret`); `None`
    /// only reaches workers that run without one.
    pub secret: Option<ClusterSecret>,
    /// How `https://` workers are verified (`--cluster-ca`) and what the
    /// coordinator presents to them (see [`ClusterTls`]).
    pub tls: ClusterTls,
}

impl ClusterConfig {
    pub fn new(workers: Vec<String>) -> Self {
        Self {
            workers,
            probe_interval: Duration::from_secs(2),
            probe_timeout: Duration::from_secs(2),
            max_tasks_per_stage: None,
            scan_bytes_per_partition: None,
            query_timeout: Duration::from_secs(3600),
            secret: None,
            tls: ClusterTls::default(),
        }
    }
}

/// Parses a worker address into a URL (`http://` by default).
pub fn parse_worker_address(spec: &str) -> Result<Url> {
    let spec = spec.trim();
    let with_scheme = if spec.contains("://") {
        spec.to_string()
    } else {
        format!("http://{spec}")
    };
    let url = Url::parse(&with_scheme).map_err(|e| {
        EngineError::InvalidArgument(format!("invalid worker address '{spec}': {e}"))
    })?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none()
        || url.port_or_known_default().is_none()
    {
        return Err(EngineError::InvalidArgument(format!(
            "invalid worker address '{spec}': expected http://HOST:PORT or https://HOST:PORT"
        )));
    }
    Ok(url)
}

/// Whether a worker answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerHealth {
    /// Not probed yet.
    Unknown,
    /// Answered the last probe: gets work.
    Up,
    /// Did not answer the last probe: gets no work until it answers again.
    Down,
    /// Answers, but runs another Seglake version: gets no work.
    Incompatible,
    /// Answers, but refuses the coordinator's credentials (no cluster
    /// secret, or another one): gets no work.
    Unusable,
}

impl WorkerHealth {
    pub fn label(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Up => "up",
            Self::Down => "down",
            Self::Incompatible => "incompatible",
            Self::Unusable => "unusable",
        }
    }
}

/// One row of `system.workers`.
#[derive(Debug, Clone)]
pub struct WorkerStatus {
    pub url: String,
    pub state: WorkerHealth,
    /// Last time the worker answered a probe.
    pub last_seen: Option<DateTime<Utc>>,
    /// Queries that sent this worker at least one task.
    pub queries: u64,
    /// Tasks (plan fragments) sent to this worker.
    pub tasks: u64,
    pub last_error: Option<String>,
}

#[derive(Debug)]
struct WorkerEntry {
    url: Url,
    state: WorkerHealth,
    last_seen: Option<DateTime<Utc>>,
    queries: u64,
    tasks: u64,
    last_error: Option<String>,
    /// Recent query ids, to count queries rather than tasks.
    recent_queries: VecDeque<Uuid>,
}

impl WorkerEntry {
    fn new(url: Url) -> Self {
        Self {
            url,
            state: WorkerHealth::Unknown,
            last_seen: None,
            queries: 0,
            tasks: 0,
            last_error: None,
            recent_queries: VecDeque::new(),
        }
    }
}

/// gRPC channels to workers, one per URL, created lazily (they reconnect
/// by themselves) with connect and keep-alive timeouts. With a cluster
/// secret, every request on them carries a fresh token.
#[derive(Debug, Default)]
struct Channels {
    connect_timeout: Duration,
    secret: Option<ClusterSecret>,
    map: Mutex<HashMap<Url, tonic::transport::Channel>>,
    /// TLS of the `https://` workers.
    tls: ClusterTls,
    /// The host name each resolved worker address came from: its
    /// certificate names the host, not the address.
    names: Mutex<HashMap<Url, String>>,
}

impl Channels {
    fn new(connect_timeout: Duration, secret: Option<ClusterSecret>) -> Self {
        Self {
            connect_timeout,
            secret,
            map: Mutex::new(HashMap::new()),
            tls: ClusterTls::default(),
            names: Mutex::new(HashMap::new()),
        }
    }

    fn with_tls(mut self, tls: ClusterTls) -> Self {
        self.tls = tls;
        self
    }

    /// Remembers that `url` is an address `host` resolved to.
    fn resolved_from(&self, url: &Url, host: &str) {
        if url.scheme() != "https" {
            return;
        }
        let previous = self
            .names
            .lock()
            .expect("names poisoned")
            .insert(url.clone(), host.to_string());
        if previous.is_some_and(|p| p != host) {
            // The channel verifies the previous name.
            self.map.lock().expect("channel map poisoned").remove(url);
        }
    }

    /// The name `url`'s certificate must hold: the host it was resolved
    /// from, else its own host.
    fn name_of(&self, url: &Url) -> String {
        let names = self.names.lock().expect("names poisoned");
        match names.get(url) {
            Some(name) => name.clone(),
            None => url.host_str().unwrap_or_default().to_string(),
        }
    }

    fn client(&self, url: &Url) -> DfResult<Box<dyn WorkerChannel>> {
        let mut map = self.map.lock().expect("channel map poisoned");
        let channel = match map.get(url) {
            Some(c) => c.clone(),
            None => {
                let mut endpoint = tonic::transport::Endpoint::from_shared(url.to_string())
                    .map_err(|e| DataFusionError::External(Box::new(e)))?
                    .connect_timeout(self.connect_timeout)
                    .tcp_nodelay(true)
                    .http2_keep_alive_interval(Duration::from_secs(10))
                    .keep_alive_timeout(Duration::from_secs(20))
                    .keep_alive_while_idle(true);
                if url.scheme() == "https" {
                    let host = self.name_of(url);
                    endpoint = endpoint
                        .tls_config(self.tls.client_config(&host, self.connect_timeout))
                        .map_err(|e| DataFusionError::External(Box::new(e)))?;
                }
                let channel = endpoint.connect_lazy();
                map.insert(url.clone(), channel.clone());
                channel
            }
        };
        Ok(create_worker_client(match &self.secret {
            Some(secret) => {
                BoxCloneSyncChannel::new(auth::WithClusterToken::new(channel, secret.clone()))
            }
            None => BoxCloneSyncChannel::new(channel),
        }))
    }
}

/// A client of the worker at `url` made as a coordinator makes it (with
/// `secret`, every call carries a token): for tools and tests that talk to
/// a worker directly.
pub fn worker_client(url: &Url, secret: Option<ClusterSecret>) -> Result<Box<dyn WorkerChannel>> {
    Ok(Channels::new(Duration::from_secs(5), secret).client(url)?)
}

/// The [`ChannelResolver`] of coordinators and workers. On the coordinator
/// it also counts the tasks and queries each worker receives.
#[derive(Clone)]
struct SeglakeChannels {
    channels: Arc<Channels>,
    cluster: Option<Weak<ClusterInner>>,
}

#[async_trait]
impl ChannelResolver for SeglakeChannels {
    async fn get_worker_client_for_url(&self, url: &Url) -> DfResult<Box<dyn WorkerChannel>> {
        let inner = self.channels.client(url)?;
        Ok(match &self.cluster {
            Some(cluster) => Box::new(CountingChannel {
                url: url.clone(),
                inner,
                cluster: Weak::clone(cluster),
            }),
            None => inner,
        })
    }
}

/// A worker client that records, on the coordinator, the plan fragments it
/// sends.
struct CountingChannel {
    url: Url,
    inner: Box<dyn WorkerChannel>,
    cluster: Weak<ClusterInner>,
}

#[async_trait]
impl WorkerChannel for CountingChannel {
    async fn coordinator_channel(
        &mut self,
        headers: http::HeaderMap,
        set_plan_request: SetPlanRequest,
        c2w_stream: BoxStream<'static, CoordinatorToWorkerMsg>,
        metrics: ExecutionPlanMetricsSet,
        task_ctx: &Arc<TaskContext>,
    ) -> DfResult<BoxStream<'static, DfResult<WorkerToCoordinatorMsg>>> {
        if let Some(cluster) = self.cluster.upgrade() {
            cluster.record_task(&self.url, set_plan_request.task_key.query_id);
        }
        self.inner
            .coordinator_channel(headers, set_plan_request, c2w_stream, metrics, task_ctx)
            .await
    }

    async fn execute_task(
        &mut self,
        headers: http::HeaderMap,
        request: ExecuteTaskRequest,
        metrics: ExecutionPlanMetricsSet,
        task_ctx: &Arc<TaskContext>,
    ) -> DfResult<Vec<BoxStream<'static, DfResult<RecordBatch>>>> {
        self.inner
            .execute_task(headers, request, metrics, task_ctx)
            .await
    }

    async fn get_worker_info(
        &mut self,
        request: GetWorkerInfoRequest,
    ) -> DfResult<GetWorkerInfoResponse> {
        self.inner.get_worker_info(request).await
    }
}

#[derive(Debug)]
struct ClusterInner {
    config: ClusterConfig,
    specs: Vec<Url>,
    channels: Arc<Channels>,
    workers: RwLock<BTreeMap<String, WorkerEntry>>,
    /// Serialises refreshes (the background task and query retries).
    refreshing: tokio::sync::Mutex<()>,
}

impl ClusterInner {
    fn live_urls(&self) -> Vec<Url> {
        self.workers
            .read()
            .expect("workers lock poisoned")
            .values()
            .filter(|w| w.state == WorkerHealth::Up)
            .map(|w| w.url.clone())
            .collect()
    }

    fn record_task(&self, url: &Url, query_id: Uuid) {
        let mut workers = self.workers.write().expect("workers lock poisoned");
        if let Some(w) = workers.get_mut(url.as_str()) {
            w.tasks += 1;
            if !w.recent_queries.contains(&query_id) {
                w.queries += 1;
                w.recent_queries.push_back(query_id);
                if w.recent_queries.len() > 256 {
                    w.recent_queries.pop_front();
                }
            }
        }
    }

    /// Resolves the configured addresses (one URL per resolved address).
    async fn resolve(&self) -> Vec<Url> {
        let mut out = vec![];
        for spec in &self.specs {
            let host = spec.host_str().unwrap_or_default();
            let literal = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok();
            if literal {
                out.push(spec.clone());
                continue;
            }
            let port = spec.port_or_known_default().unwrap_or(80);
            match tokio::net::lookup_host((host, port)).await {
                Ok(addrs) => {
                    for url in urls_of_addresses(spec, addrs) {
                        self.channels.resolved_from(&url, host);
                        if !out.contains(&url) {
                            out.push(url);
                        }
                    }
                }
                Err(e) => warn!(worker = %spec, error = %e, "cannot resolve worker address"),
            }
        }
        out
    }

    async fn probe(&self, url: &Url) -> std::result::Result<String, ProbeError> {
        let call = async {
            let mut client = self
                .channels
                .client(url)
                .map_err(|e| ProbeError::Failed(e.to_string()))?;
            client
                .get_worker_info(GetWorkerInfoRequest {})
                .await
                .map(|r| r.version)
                .map_err(|e| match grpc_status(&e) {
                    Some(status) if status.code() == tonic::Code::Unauthenticated => {
                        ProbeError::Refused(match self.channels.secret {
                            Some(_) => format!(
                                "the worker refused the cluster secret: {}",
                                status.message()
                            ),
                            None => "the worker requires a cluster secret: start the coordinator \
                                     with the workers' --cluster-secret"
                                .to_string(),
                        })
                    }
                    _ => ProbeError::Failed(e.to_string()),
                })
        };
        match tokio::time::timeout(self.config.probe_timeout, call).await {
            Ok(r) => r,
            Err(_) => Err(ProbeError::Failed(format!(
                "no answer within {} ms",
                self.config.probe_timeout.as_millis()
            ))),
        }
    }

    /// Resolves and probes every worker now.
    async fn refresh(&self) {
        let _guard = self.refreshing.lock().await;
        let urls = self.resolve().await;
        let results = futures::future::join_all(urls.iter().map(|u| self.probe(u))).await;
        let now = Utc::now();
        let mut workers = self.workers.write().expect("workers lock poisoned");
        workers.retain(|k, _| urls.iter().any(|u| u.as_str() == k));
        for (url, result) in urls.into_iter().zip(results) {
            let entry = workers
                .entry(url.to_string())
                .or_insert_with(|| WorkerEntry::new(url.clone()));
            let before = entry.state;
            match result {
                Ok(version) if version == WORKER_VERSION => {
                    entry.state = WorkerHealth::Up;
                    entry.last_seen = Some(now);
                    entry.last_error = None;
                }
                Ok(version) => {
                    entry.state = WorkerHealth::Incompatible;
                    entry.last_seen = Some(now);
                    entry.last_error = Some(format!(
                        "worker runs version '{version}', the coordinator {WORKER_VERSION}"
                    ));
                }
                Err(ProbeError::Refused(e)) => {
                    entry.state = WorkerHealth::Unusable;
                    entry.last_seen = Some(now);
                    entry.last_error = Some(e);
                }
                Err(ProbeError::Failed(e)) => {
                    entry.state = WorkerHealth::Down;
                    entry.last_error = Some(e);
                }
            }
            if before != entry.state {
                match entry.state {
                    WorkerHealth::Up => info!(worker = %url, "worker up"),
                    _ => warn!(
                        worker = %url,
                        state = entry.state.label(),
                        error = entry.last_error.as_deref().unwrap_or_default(),
                        "worker unavailable"
                    ),
                }
            }
        }
    }
}

/// Why a probe did not find a worker usable.
enum ProbeError {
    /// The worker answered and refused the coordinator's credentials.
    Refused(String),
    /// No answer, or a failure on the way.
    Failed(String),
}

/// The gRPC status a worker answered with, if the error is one.
fn grpc_status(e: &DataFusionError) -> Option<&tonic::Status> {
    match e {
        DataFusionError::External(e) => e.downcast_ref::<tonic::Status>(),
        DataFusionError::Shared(e) => grpc_status(e),
        DataFusionError::Context(_, e) => grpc_status(e),
        _ => None,
    }
}

/// The workers of a coordinator (see the module documentation).
#[derive(Debug, Clone)]
pub struct Cluster {
    inner: Arc<ClusterInner>,
}

impl Cluster {
    /// Resolves and probes the workers once, then keeps probing them in the
    /// background for as long as the cluster lives.
    pub async fn start(config: ClusterConfig) -> Result<Self> {
        if config.workers.is_empty() {
            return Err(EngineError::InvalidArgument(
                "a cluster needs at least one worker address".into(),
            ));
        }
        let specs = config
            .workers
            .iter()
            .map(|s| parse_worker_address(s))
            .collect::<Result<Vec<_>>>()?;
        let inner = Arc::new(ClusterInner {
            channels: Arc::new(
                Channels::new(config.probe_timeout, config.secret.clone())
                    .with_tls(config.tls.clone()),
            ),
            config,
            specs,
            workers: RwLock::new(BTreeMap::new()),
            refreshing: tokio::sync::Mutex::new(()),
        });
        inner.refresh().await;
        let weak = Arc::downgrade(&inner);
        let interval = inner.config.probe_interval;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(inner) = weak.upgrade() else { break };
                inner.refresh().await;
            }
        });
        let cluster = Self { inner };
        info!(
            workers = cluster.inner.config.workers.join(","),
            live = cluster.live_urls().len(),
            "distributed execution enabled"
        );
        Ok(cluster)
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.inner.config
    }

    /// Workers that answered the last probe.
    pub fn live_urls(&self) -> Vec<Url> {
        self.inner.live_urls()
    }

    /// Resolves and probes every worker now.
    pub async fn refresh(&self) {
        self.inner.refresh().await
    }

    /// Every known worker, for `system.workers`.
    pub fn statuses(&self) -> Vec<WorkerStatus> {
        self.inner
            .workers
            .read()
            .expect("workers lock poisoned")
            .values()
            .map(|w| WorkerStatus {
                url: w.url.to_string(),
                state: w.state,
                last_seen: w.last_seen,
                queries: w.queries,
                tasks: w.tasks,
                last_error: w.last_error.clone(),
            })
            .collect()
    }

    /// Adds the distributed planner, worker resolver, channels, codec and
    /// parallelism settings to a coordinator's session.
    pub(crate) fn configure(&self, builder: SessionStateBuilder) -> Result<SessionStateBuilder> {
        let mut builder = builder
            .with_distributed_planner()
            .with_distributed_worker_resolver(ClusterResolver(Arc::clone(&self.inner)))
            .with_distributed_channel_resolver(SeglakeChannels {
                channels: Arc::clone(&self.inner.channels),
                cluster: Some(Arc::downgrade(&self.inner)),
            })
            .with_distributed_user_codec(codec())
            .with_distributed_desired_task_count_handler(
                crate::storage::delta_scan::delta_scan_task_count,
            )
            .with_distributed_scale_up_leaf_node_handler(
                crate::storage::delta_scan::split_delta_scan,
            )
            .with_distributed_scale_up_leaf_node_handler(split_file_scan);
        if let Some(n) = self.inner.config.max_tasks_per_stage {
            builder = builder.with_distributed_max_tasks_per_stage(n)?;
        }
        if let Some(n) = self.inner.config.scan_bytes_per_partition {
            builder = builder.with_distributed_file_scan_config_bytes_per_partition(n)?;
        }
        // datafusion-distributed 4.0.0's NetworkShuffleExec merges the
        // streams of several tasks in arrival order but advertises its
        // input's sort order, so plans relying on the order of sorted
        // Parquet files (sorted aggregation, merges without a sort) give
        // wrong results: forget that order before anything relies on it.
        builder
            .physical_optimizer_rules()
            .get_or_insert_with(|| PhysicalOptimizer::new().rules)
            .insert(0, Arc::new(ForgetFileOrdering));
        // Plan on the coordinator alone while no worker is live.
        let distributed = builder.query_planner().take().ok_or_else(|| {
            EngineError::DataFusion(DataFusionError::Internal(
                "the distributed planner is missing".into(),
            ))
        })?;
        Ok(builder.with_query_planner(Arc::new(ClusterQueryPlanner {
            distributed,
            cluster: self.clone(),
        })))
    }

    /// Workers live at `before` that are not live now (after a probe).
    async fn lost_since(&self, before: &[Url]) -> Vec<Url> {
        self.refresh().await;
        let now = self.live_urls();
        before
            .iter()
            .filter(|u| !now.contains(u))
            .cloned()
            .collect()
    }
}

/// Drops the sort order that file scans derive from Parquet metadata (see
/// [`Cluster::configure`]); sorts are then planned explicitly.
#[derive(Debug)]
struct ForgetFileOrdering;

impl PhysicalOptimizerRule for ForgetFileOrdering {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if let Some(source) = node.downcast_ref::<DataSourceExec>()
                && let Some(scan) = source.data_source().downcast_ref::<FileScanConfig>()
                && !scan.output_ordering.is_empty()
            {
                let mut scan = scan.clone();
                scan.output_ordering.clear();
                let node: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(scan);
                return Ok(Transformed::yes(node));
            }
            Ok(Transformed::no(node))
        })
        .data()
    }

    fn name(&self) -> &str {
        "seglake_forget_file_ordering"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Splits a Parquet scan over `task_count` tasks, every task getting the
/// same number of partitions (datafusion-distributed 4.0.0's own split
/// gives tasks different partition counts when the files cannot be split
/// into `partitions × tasks` groups, which fails planning): the files are
/// spread over the tasks and the shorter tasks get empty partitions.
fn split_file_scan(ev: ScaleUpLeafNodeEvent<'_>) -> Option<DfResult<ScaleUpLeafNodeEventResponse>> {
    let source = ev.plan.downcast_ref::<DataSourceExec>()?;
    let scan = source.data_source().downcast_ref::<FileScanConfig>()?;
    let tasks = ev.task_count.max(1);
    let target = ev.plan.output_partitioning().partition_count().max(1) * tasks;
    let groups: Vec<FileGroup> = if !scan.output_ordering.is_empty() {
        // Groups as planned: each keeps its files' order.
        scan.file_groups.clone()
    } else if scan.output_partitioning.is_some() {
        // Whole files, spread evenly.
        let mut groups = vec![vec![]; target];
        for (i, file) in scan.file_groups.iter().flat_map(|g| g.iter()).enumerate() {
            groups[i % target].push(file.clone());
        }
        groups.into_iter().map(FileGroup::new).collect()
    } else {
        FileGroupPartitioner::new()
            .with_target_partitions(target)
            .with_repartition_file_min_size(0)
            .repartition_file_groups(&scan.file_groups)
            .unwrap_or_else(|| scan.file_groups.clone())
    };
    let mut per_task: Vec<Vec<FileGroup>> = vec![vec![]; tasks];
    for (i, group) in groups.into_iter().enumerate() {
        per_task[i % tasks].push(group);
    }
    let width = per_task.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let variants = per_task.into_iter().map(|mut groups| {
        groups.resize_with(width, || FileGroup::new(vec![]));
        let mut variant = scan.clone();
        variant.file_groups = groups;
        DataSourceExec::from_data_source(variant) as Arc<dyn ExecutionPlan>
    });
    Some(
        DistributedLeafExec::try_new(Arc::clone(ev.plan), variants)
            .map(|leaf| ScaleUpLeafNodeEventResponse::new(Arc::new(leaf))),
    )
}

/// The live workers, for the distributed planner.
struct ClusterResolver(Arc<ClusterInner>);

impl WorkerResolver for ClusterResolver {
    fn get_urls(&self) -> DfResult<Vec<Url>> {
        Ok(self.0.live_urls())
    }
}

/// The distributed planner while workers are live, DataFusion's own
/// otherwise.
struct ClusterQueryPlanner {
    distributed: Arc<dyn QueryPlanner + Send + Sync>,
    cluster: Cluster,
}

impl std::fmt::Debug for ClusterQueryPlanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterQueryPlanner").finish()
    }
}

#[async_trait]
impl QueryPlanner for ClusterQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session_state: &dyn datafusion::catalog::Session,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if self.cluster.live_urls().is_empty() {
            debug!("no live worker: planning on the coordinator alone");
            return DefaultPhysicalPlanner::default()
                .create_physical_plan(logical_plan, session_state)
                .await;
        }
        // DataFusion's EXPLAIN plans its input with its own physical
        // planner: show the distributed plan (stages, tasks) instead.
        if let LogicalPlan::Explain(explain) = logical_plan
            && explain.logical_optimization_succeeded
        {
            let plan = self
                .distributed
                .create_physical_plan(&explain.plan, session_state)
                .await?;
            let mut plans: Vec<StringifiedPlan> = explain.stringified_plans.clone();
            if !plans
                .iter()
                .any(|p| p.plan_type == PlanType::FinalLogicalPlan)
            {
                plans.push(explain.plan.to_stringified(PlanType::FinalLogicalPlan));
            }
            plans.push(StringifiedPlan::new(
                PlanType::FinalPhysicalPlan,
                display_plan_ascii(plan.as_ref(), false),
            ));
            return Ok(Arc::new(ExplainExec::new(
                Arc::clone(explain.schema.inner()),
                plans,
                explain.verbose,
            )));
        }
        self.distributed
            .create_physical_plan(logical_plan, session_state)
            .await
    }
}

async fn start_query(
    ctx: &SessionContext,
    plan: &LogicalPlan,
) -> Result<SendableRecordBatchStream> {
    let df = ctx.execute_logical_plan(plan.clone()).await?;
    Ok(df.execute_stream().await?)
}

fn deadline_error(timeout: Duration) -> DataFusionError {
    DataFusionError::External(Box::new(EngineError::DeadlineExceeded(format!(
        "the query did not finish within its deadline of {} s (--query-timeout-secs)",
        timeout.as_secs()
    ))))
}

fn lost_error(lost: &[Url], cause: &DataFusionError) -> DataFusionError {
    let names: Vec<_> = lost.iter().map(Url::as_str).collect();
    DataFusionError::External(Box::new(EngineError::WorkerUnavailable {
        worker: names.join(", "),
        message: cause.to_string(),
    }))
}

/// Runs a query on the cluster: a retry on the remaining workers if one
/// was lost before any batch was produced, an `Unavailable` error naming
/// the worker after that, and a deadline.
pub(crate) async fn supervise(
    cluster: &Cluster,
    ctx: &SessionContext,
    plan: LogicalPlan,
    schema: SchemaRef,
) -> Result<SendableRecordBatchStream> {
    let timeout = cluster.config().query_timeout;
    let deadline = Instant::now() + timeout;
    let live = cluster.live_urls();
    let first = tokio::time::timeout_at(deadline, start_query(ctx, &plan))
        .await
        .map_err(|_| EngineError::DataFusion(deadline_error(timeout)))?;
    let (stream, retried, live) = match first {
        Ok(s) => (s, false, live),
        Err(e) => {
            let lost = cluster.lost_since(&live).await;
            if lost.is_empty() {
                return Err(e);
            }
            warn!(lost = ?lost.iter().map(Url::as_str).collect::<Vec<_>>(), error = %e, "worker lost while starting a query: retrying once");
            let live = cluster.live_urls();
            let s = tokio::time::timeout_at(deadline, start_query(ctx, &plan))
                .await
                .map_err(|_| EngineError::DataFusion(deadline_error(timeout)))??;
            (s, true, live)
        }
    };
    let state = Supervised {
        stream: Some(stream),
        cluster: cluster.clone(),
        ctx: ctx.clone(),
        plan,
        live,
        sent: false,
        retried,
        deadline,
        timeout,
    };
    let stream = futures::stream::unfold(state, |mut st| async move {
        let item = st.next().await?;
        Some((item, st))
    });
    Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
}

struct Supervised {
    /// `None` once the query ended.
    stream: Option<SendableRecordBatchStream>,
    cluster: Cluster,
    ctx: SessionContext,
    plan: LogicalPlan,
    /// Workers live when the current attempt started.
    live: Vec<Url>,
    /// Whether a batch was produced (and so may have reached the client).
    sent: bool,
    retried: bool,
    deadline: Instant,
    timeout: Duration,
}

impl Supervised {
    async fn next(&mut self) -> Option<DfResult<RecordBatch>> {
        loop {
            let stream = self.stream.as_mut()?;
            let item = match tokio::time::timeout_at(self.deadline, stream.next()).await {
                Ok(item) => item,
                Err(_) => {
                    self.stream = None;
                    return Some(Err(deadline_error(self.timeout)));
                }
            };
            match item {
                None => {
                    self.stream = None;
                    return None;
                }
                Some(Ok(batch)) => {
                    self.sent = true;
                    return Some(Ok(batch));
                }
                Some(Err(e)) => {
                    self.stream = None;
                    let lost = self.cluster.lost_since(&self.live).await;
                    if lost.is_empty() {
                        return Some(Err(e));
                    }
                    if self.sent || self.retried {
                        warn!(lost = ?lost.iter().map(Url::as_str).collect::<Vec<_>>(), error = %e, "worker lost during a query");
                        return Some(Err(lost_error(&lost, &e)));
                    }
                    warn!(lost = ?lost.iter().map(Url::as_str).collect::<Vec<_>>(), error = %e, "worker lost before the first batch: retrying the query once");
                    self.retried = true;
                    self.live = self.cluster.live_urls();
                    match tokio::time::timeout_at(self.deadline, start_query(&self.ctx, &self.plan))
                        .await
                    {
                        Ok(Ok(s)) => self.stream = Some(s),
                        Ok(Err(e)) => return Some(Err(DataFusionError::External(Box::new(e)))),
                        Err(_) => return Some(Err(deadline_error(self.timeout))),
                    }
                }
            }
        }
    }
}

/// The schema of `system.workers`.
pub fn workers_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("url", DataType::Utf8, false),
        Field::new("state", DataType::Utf8, false),
        Field::new(
            "last_seen",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ),
        Field::new("queries", DataType::UInt64, false),
        Field::new("tasks", DataType::UInt64, false),
        Field::new("last_error", DataType::Utf8, true),
    ]))
}

/// The rows of `system.workers` (none on a single node).
pub fn workers_batch(cluster: Option<&Cluster>) -> Result<RecordBatch> {
    let statuses = cluster.map(Cluster::statuses).unwrap_or_default();
    let mut url = StringBuilder::new();
    let mut state = StringBuilder::new();
    let mut last_seen = TimestampMillisecondBuilder::new().with_timezone("UTC");
    let mut queries = UInt64Builder::new();
    let mut tasks = UInt64Builder::new();
    let mut last_error = StringBuilder::new();
    for s in statuses {
        url.append_value(&s.url);
        state.append_value(s.state.label());
        last_seen.append_option(s.last_seen.map(|t| t.timestamp_millis()));
        queries.append_value(s.queries);
        tasks.append_value(s.tasks);
        last_error.append_option(s.last_error);
    }
    Ok(RecordBatch::try_new(
        workers_schema(),
        vec![
            Arc::new(url.finish()),
            Arc::new(state.finish()),
            Arc::new(last_seen.finish()),
            Arc::new(queries.finish()),
            Arc::new(tasks.finish()),
            Arc::new(last_error.finish()),
        ],
    )?)
}

/// One worker URL per address a worker name resolved to. A name with IPv4
/// addresses is served there (`localhost` also resolves to `::1`, the same
/// process), so IPv6 addresses count only for IPv6-only names.
fn urls_of_addresses(spec: &Url, addrs: impl IntoIterator<Item = SocketAddr>) -> Vec<Url> {
    let addrs: Vec<SocketAddr> = addrs.into_iter().collect();
    let v4 = addrs.iter().any(|a| a.is_ipv4());
    let mut out: Vec<Url> = vec![];
    for a in addrs.into_iter().filter(|a| a.is_ipv4() == v4) {
        let mut url = spec.clone();
        if url.set_ip_host(a.ip()).is_ok() && !out.contains(&url) {
            out.push(url);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_addresses() {
        assert_eq!(
            parse_worker_address("127.0.0.1:50052").unwrap().as_str(),
            "http://127.0.0.1:50052/"
        );
        assert_eq!(
            parse_worker_address(" http://workers.seglake:7000 ")
                .unwrap()
                .as_str(),
            "http://workers.seglake:7000/"
        );
        assert!(parse_worker_address("ftp://x:1").is_err());
        assert!(parse_worker_address("http://").is_err());
    }

    #[test]
    fn a_name_gives_one_worker_per_address() {
        let spec = parse_worker_address("http://workers.seglake:7000").unwrap();
        let addrs: Vec<SocketAddr> = [
            "10.0.0.1:7000",
            "[fd00::1]:7000",
            "10.0.0.2:7000",
            "10.0.0.1:7000",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        let urls: Vec<String> = urls_of_addresses(&spec, addrs)
            .iter()
            .map(|u| u.to_string())
            .collect();
        assert_eq!(urls, ["http://10.0.0.1:7000/", "http://10.0.0.2:7000/"]);
        let v6_only: Vec<SocketAddr> = vec!["[fd00::1]:7000".parse().unwrap()];
        let urls = urls_of_addresses(&spec, v6_only);
        assert_eq!(urls.len(), 1);
        assert_eq!(urls[0].as_str(), "http://[fd00::1]:7000/");
    }

    #[tokio::test]
    async fn a_host_name_is_resolved() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut config = ClusterConfig::new(vec![format!("http://localhost:{port}")]);
        config.probe_timeout = Duration::from_millis(500);
        let cluster = Cluster::start(config).await.unwrap();
        let statuses = cluster.statuses();
        assert_eq!(statuses.len(), 1);
        assert_eq!(statuses[0].url, format!("http://127.0.0.1:{port}/"));
    }

    #[tokio::test]
    async fn unreachable_worker_is_down() {
        // A port nobody listens on (bound, then released).
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut config = ClusterConfig::new(vec![format!("127.0.0.1:{port}")]);
        config.probe_timeout = Duration::from_millis(500);
        let cluster = Cluster::start(config).await.unwrap();
        assert!(cluster.live_urls().is_empty());
        let statuses = cluster.statuses();
        assert_eq!(statuses.len(), 1);
        assert_eq!(statuses[0].state, WorkerHealth::Down);
        let batch = workers_batch(Some(&cluster)).unwrap();
        assert_eq!(batch.num_rows(), 1);
    }
}
