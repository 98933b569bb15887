//! The engine, the composition root: one warehouse, one catalog, one
//! DataFusion runtime, the workers of a coordinator, and the sessions that
//! run SQL against them.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};
use seglake_catalog::{
    CatalogStore, DEFAULT_CATALOG, DEFAULT_SCHEMA, S3Options, Snapshot, TableEntry, TableFormat,
    TableKind, Warehouse,
};
use tracing::info;

use crate::commands::delete_prefix;
use crate::distributed::{Cluster, ClusterConfig};
use crate::egress::EgressPolicy;
use crate::pipeline::Handles;
use crate::storage::Storage;
use crate::storage::audit::AuditRecord;
use crate::{EngineError, Result, Session};

/// How to open an [`Engine`].
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Local path, `file://` URL or `s3://bucket/prefix`.
    pub warehouse: String,
    pub s3: S3Options,
    /// DataFusion target partitions (default: number of cores).
    pub target_partitions: Option<usize>,
    /// Rows per batch (default: DataFusion's 8192).
    pub batch_size: Option<usize>,
    /// Size of the memory pool of query execution in bytes
    /// (`--memory-limit-mb`); `None`: 70 % of the machine's memory, or of
    /// its cgroup's limit when lower (`memory.rs`). Operators that can
    /// spill do so, others fail the statement with RESOURCE_EXHAUSTED.
    pub memory_limit: Option<usize>,
    /// Workers to distribute queries to (`None`: single node).
    pub cluster: Option<ClusterConfig>,
    /// Defaults for DataFusion and Seglake settings (`key`, `value`), set on
    /// every session after Seglake's own defaults (`--datafusion-config`):
    /// an operator changes a default without a release.
    pub settings: Vec<(String, String)>,
    /// Prefixes (paths, `file://` or `s3://bucket/prefix` URLs) outside the
    /// warehouse that external tables, file destinations and workers' scans
    /// may name (`--allow-location`).
    pub allow_locations: Vec<String>,
    /// Exceptions to the webhook egress policy (`--allow-webhook`): host
    /// names, IP addresses and networks (`10.0.0.0/8`) that webhook
    /// destinations may reach besides public addresses.
    pub allow_webhooks: Vec<String>,
    /// Access control (`docs/security.md`): `Some(names)` for a server,
    /// whose `--user` users are administrators and whose other users (made
    /// with `CREATE USER`) have what they are granted; `None` (the default)
    /// for an engine embedded in a program or a test, where every user is
    /// an administrator.
    pub administrators: Option<Vec<String>>,
    /// Days the audit trail keeps (`--audit-retention-days`).
    pub audit_retention_days: u32,
    /// Longest a statement may run (`--statement-timeout-secs`); sessions
    /// may lower it (`seglake.statement_timeout`).
    pub statement_timeout: std::time::Duration,
    /// Statements that run at once (`--max-running-queries`, at least 1;
    /// default twice the cores); the others wait in a queue, users served
    /// in turn (`crate::admission`).
    pub max_running_queries: usize,
    /// Statements that may wait for a slot (`--max-queued-queries`); past
    /// it a statement is refused with RESOURCE_EXHAUSTED.
    pub max_queued_queries: usize,
    /// Slots beside the general ones that only the HTTP collector's
    /// commits and scheduled refreshes take (`--reserved-service-queries`),
    /// so that a server saturated by queries still ingests.
    pub reserved_service_queries: usize,
}

impl EngineConfig {
    pub fn new(warehouse: impl Into<String>) -> Self {
        Self {
            warehouse: warehouse.into(),
            s3: S3Options::default(),
            target_partitions: None,
            batch_size: None,
            memory_limit: None,
            cluster: None,
            settings: vec![],
            allow_locations: vec![],
            allow_webhooks: vec![],
            administrators: None,
            audit_retention_days: 400,
            statement_timeout: std::time::Duration::from_secs(3600),
            max_running_queries: default_max_running_queries(),
            max_queued_queries: 1000,
            reserved_service_queries: 2,
        }
    }
}

/// Twice the cores: a statement often waits on storage, so a core can
/// serve two.
pub fn default_max_running_queries() -> usize {
    2 * std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Shared by every session of a server: the composition root that puts the
/// storage, the workers and the session settings together.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    storage: Arc<Storage>,
    cluster: Option<Cluster>,
    /// Serialises segment refreshes in this process.
    refresh_lock: Arc<tokio::sync::Mutex<()>>,
    /// Where webhook deliveries may go; statements find it in their
    /// session config.
    egress: Arc<EgressPolicy>,
    /// `EngineConfig::administrators`.
    administrators: Option<Arc<std::collections::BTreeSet<String>>>,
    /// Bytes of the server's memory pool.
    pool_size: usize,
    /// The slots statements run in (`EngineConfig::max_running_queries`).
    admission: crate::admission::Admission,
}

impl Engine {
    /// Opens (or initialises) the warehouse and its catalog.
    pub async fn open(config: EngineConfig) -> Result<Arc<Self>> {
        let warehouse = Warehouse::open(&config.warehouse, &config.s3)?;
        // A bad `--allow-webhook` entry fails here, at start.
        let egress = Arc::new(EgressPolicy::new(&config.allow_webhooks)?);
        let admission = crate::admission::Admission::new(crate::admission::Limits {
            running: config.max_running_queries,
            queued: config.max_queued_queries,
            reserved: config.reserved_service_queries,
        })?;
        crate::storage::delta::register_log_stores();
        // No list-files cache: other servers, workers and ingests add files
        // to the warehouse, and a query must see every committed file.
        // One memory pool for every statement of this process (each runs
        // with a per-statement view of it, `memory::StatementPool`); spill
        // files go to the OS temporary directory (DataFusion's default disk
        // manager).
        let pool_size = pool_size(&config);
        let pool = TrackConsumersPool::new(
            FairSpillPool::new(pool_size),
            std::num::NonZeroUsize::new(5).expect("non-zero"),
        );
        let runtime = RuntimeEnvBuilder::new()
            .with_cache_manager(CacheManagerConfig::default().with_list_files_cache_limit(0))
            .with_memory_pool(Arc::new(pool))
            .build_arc()?;
        runtime.register_object_store(warehouse.store_url(), warehouse.store());
        let catalog = CatalogStore::open(&warehouse).await?;
        let cluster = match &config.cluster {
            Some(c) => Some(Cluster::start(c.clone()).await?),
            None => None,
        };
        info!(warehouse = %warehouse.url(), "engine ready");
        let storage = Arc::new(Storage::new(
            warehouse,
            catalog,
            runtime,
            cluster.is_some(),
            &config.allow_locations,
            config.audit_retention_days,
        )?);
        let administrators = config
            .administrators
            .as_ref()
            .map(|names| Arc::new(names.iter().cloned().collect()));
        let engine = Arc::new(Self {
            config,
            storage,
            cluster,
            refresh_lock: Arc::new(tokio::sync::Mutex::new(())),
            pool_size,
            egress,
            administrators,
            admission,
        });
        // A bad `--datafusion-config` setting fails here, at start.
        engine.storage.set_scan_session(engine.session_state()?);
        tokio::spawn(write_audit(Arc::downgrade(&engine.storage)));
        Ok(engine)
    }

    /// Adds a record to the audit trail (written in the next batch).
    pub fn audit(&self, record: AuditRecord) {
        if self.storage.audit().record(record) {
            let storage = Arc::clone(&self.storage);
            tokio::spawn(async move {
                if let Err(e) = storage.audit().flush().await {
                    tracing::warn!(error = %e, "audit records not written yet");
                }
            });
        }
    }

    /// Writes the buffered audit records and ingest key uses now (a
    /// server stopping).
    pub async fn flush_audit(&self) -> Result<()> {
        self.storage.flush_key_uses().await?;
        self.storage.audit().flush().await
    }

    /// The collector accepted a request with the ingest key `key`
    /// (`system.ingest_keys.last_used_at`).
    pub fn ingest_key_used(&self, key: &str) {
        self.storage.key_uses.note(key, chrono::Utc::now());
    }

    /// The storage handle (statements get it through [`Engine::handles`]).
    #[cfg(test)]
    pub(crate) fn storage(&self) -> &Arc<Storage> {
        &self.storage
    }

    pub fn warehouse(&self) -> &Warehouse {
        self.storage.warehouse()
    }

    pub fn runtime(&self) -> &Arc<RuntimeEnv> {
        self.storage.runtime()
    }

    /// Bytes of the server's memory pool (`--memory-limit-mb`, or 70 % of
    /// the machine's or cgroup's memory).
    pub fn memory_pool_size(&self) -> usize {
        self.pool_size
    }

    /// The workers of a coordinator (`None` on a single node).
    pub fn cluster(&self) -> Option<&Cluster> {
        self.cluster.as_ref()
    }

    /// The newest committed catalog.
    pub async fn catalog(&self) -> Result<Arc<Snapshot>> {
        self.storage.catalog().await
    }

    /// The tombstones of `FORGET PROFILE` in the newest catalog: what
    /// every write drops.
    pub async fn erasures(&self) -> Result<seglake_udfs::erased_profiles::ErasedProfiles> {
        self.storage.current_erasures().await
    }

    /// This server's statements.
    pub(crate) fn queries(&self) -> &crate::workload::Queries {
        &self.storage.queries
    }

    /// The slots statements run in.
    pub(crate) fn admission(&self) -> &crate::admission::Admission {
        &self.admission
    }

    /// What a statement needs of the engine (`pipeline::StatementContext`).
    pub(crate) fn handles(&self) -> Handles {
        Handles {
            storage: Arc::clone(&self.storage),
            cluster: self.cluster.clone(),
            refresh_lock: Arc::clone(&self.refresh_lock),
            administrators: self.administrators.clone(),
            statement_timeout: self.config.statement_timeout,
        }
    }

    /// The worker service of `seglake worker`: plan fragments run with this
    /// engine's memory pool and its object stores, read-only and confined
    /// to the allowed locations; `secret` signs its calls to
    /// other workers (the service checks callers, see `seglake worker`),
    /// `tls` verifies the `https://` ones.
    pub fn worker(
        &self,
        secret: Option<crate::distributed::ClusterSecret>,
        tls: crate::distributed::ClusterTls,
    ) -> Result<datafusion_distributed::Worker> {
        crate::distributed::worker(Arc::clone(&self.storage), secret, tls)
    }

    /// A fresh DataFusion session state with Seglake's configuration and
    /// functions (DataFusion's built-ins plus `seglake_udfs::register_all`).
    pub fn session_state(&self) -> Result<SessionState> {
        let mut config = SessionConfig::new()
            .with_option_extension(crate::SeglakeOptions::default())
            .with_default_catalog_and_schema(DEFAULT_CATALOG, DEFAULT_SCHEMA)
            .with_create_default_catalog_and_schema(false)
            .with_information_schema(true)
            // Not a setting: `SET` cannot reach a config extension.
            .with_extension(Arc::clone(&self.egress));
        if let Some(n) = self.config.target_partitions {
            config = config.with_target_partitions(n);
        }
        if let Some(n) = self.config.batch_size {
            config = config.with_batch_size(n);
        }
        let opts = config.options_mut();
        // Prune row groups with their statistics and pages with the page
        // index. The index pays on files sorted by a filtered column, which
        // is how the demo writes event files (by event_type, then time:
        // `demo::EventOrder`; managed-table writes are not sorted yet):
        // measured in benchmarks/README.md ("Settings"), the SF 10 suite runs
        // ~20 % faster with it on those files, while on files sorted by time
        // alone reading it costs 4-8 %.
        // `SET datafusion.execution.parquet.enable_page_index = false` turns
        // it off for a session's scans, Delta tables included (delta-rs
        // reads the Parquet options of the querying session).
        opts.execution.parquet.enable_page_index = true;
        opts.execution.parquet.pruning = true;
        // Strings as Utf8, not Utf8View: Flight SQL clients (JDBC, older
        // ADBC/pyarrow, BI tools) do not all read view types, and results
        // keep the types the tables were written with.
        opts.execution.parquet.schema_force_view_types = false;
        // DataFusion 55 compares an aggregate's logical and physical input
        // schemas field by field, nullability included, and some grouping
        // expressions (`x IS FALSE`, `SELECT DISTINCT (x <= 0.0) IS FALSE`)
        // differ there only: valid SQL would fail INTERNAL. The check guards
        // DataFusion's own planner, not the data; found by the random-SQL
        // suite (tests/python/test_random_sql.py).
        opts.execution.skip_physical_aggregate_schema_check = true;
        // A sort that may spill first reserves this much for merging its
        // runs, outside the share spilling operators divide: with a small
        // pool DataFusion's 10 MiB per partition would leave nothing to
        // sort in, so it is at most an eighth of the pool per partition.
        let partitions = opts.execution.target_partitions.max(1);
        opts.execution.sort_spill_reservation_bytes = opts
            .execution
            .sort_spill_reservation_bytes
            .min(self.pool_size / 8 / partitions);
        // The operator's defaults (`--datafusion-config`) come last.
        for (key, value) in &self.config.settings {
            opts.set(key, value).map_err(|e| {
                EngineError::InvalidArgument(format!("setting '{key}' = '{value}': {e}"))
            })?;
        }
        let mut builder = SessionStateBuilder::new()
            .with_default_features()
            // DataFusion's rules plus ours (see optimizer.rs).
            .with_optimizer_rules(crate::optimizer::rules())
            .with_config(config)
            .with_runtime_env(Arc::clone(self.storage.runtime()));
        if let Some(cluster) = &self.cluster {
            builder = cluster.configure(builder)?;
        }
        let mut state = builder.build();
        seglake_udfs::register_all(&mut state)?;
        Ok(state)
    }

    /// A session for one client connection.
    pub fn session(self: &Arc<Self>, user: &str) -> Result<Session> {
        let ctx = SessionContext::new_with_state(self.session_state()?);
        Ok(Session::new(Arc::clone(self), ctx, user))
    }

    /// A session of the server's own work (the HTTP collector's committer,
    /// the refresh scheduler): its statements may take the slots reserved
    /// for the service (`EngineConfig::reserved_service_queries`) and are
    /// never refused for a full queue. Never for a client's connection.
    pub fn service_session(self: &Arc<Self>, user: &str) -> Result<Session> {
        Ok(self.session(user)?.into_service())
    }
}

impl Engine {
    /// Writes the demo data set into `<warehouse>/demo/` and registers its
    /// tables (`profiles`, `events` partitioned by `event_date`,
    /// `identifiers`) in the `public` schema. Unless `force`, does nothing
    /// (returns `None`) when the warehouse already has tables.
    pub async fn install_demo(
        &self,
        options: &crate::demo::DemoOptions,
        force: bool,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<Option<crate::demo::DemoSummary>> {
        let snapshot = self.catalog().await?;
        if !force
            && snapshot
                .state
                .schemas
                .values()
                .any(|s| !s.tables.is_empty())
        {
            return Ok(None);
        }
        let root = self.warehouse().path(&["demo"]);
        // A re-run replaces the previous demo files.
        delete_prefix(self.warehouse().store().as_ref(), &root).await?;
        // The demo tables are rewritten at the same locations.
        self.storage
            .forget_delta_tables(&self.warehouse().dir_url(&root));
        let summary =
            crate::demo::generate(self.warehouse().store(), &root, options, progress).await?;
        // The generated Parquet directories become managed Delta tables
        // (a log that adopts the files as version 0), so that UPDATE,
        // DELETE, MERGE, FORGET PROFILE and the collector work on the demo.
        let now = chrono::Utc::now();
        let mut tables = vec![];
        for (name, schema, partition) in [
            ("profiles", crate::demo::profiles_schema(), None),
            (
                "events",
                crate::demo::events_schema(),
                Some(Field::new("event_date", DataType::Date32, true)),
            ),
            ("identifiers", crate::demo::identifiers_schema(), None),
        ] {
            let location = self
                .warehouse()
                .dir_url(&self.warehouse().path(&["demo", name]));
            let mut fields: Vec<Field> =
                schema.fields().iter().map(|f| f.as_ref().clone()).collect();
            fields.extend(partition.clone());
            crate::storage::delta::convert_parquet_dir(
                &self.storage,
                &location,
                name,
                partition.as_ref(),
            )
            .await?;
            tables.push((
                name,
                TableEntry {
                    location,
                    format: TableFormat::Delta,
                    kind: TableKind::Managed,
                    file_schema: Schema::new(fields),
                    partition_columns: vec![],
                    created_at: now,
                    comment: Some(format!("Seglake demo data ({name})")),
                },
            ));
        }
        self.storage
            .catalog_store()
            .update(|st| {
                for (name, entry) in &tables {
                    st.put_table(DEFAULT_SCHEMA, name, entry.clone(), false, true)?;
                }
                Ok(())
            })
            .await?;
        info!(
            profiles = summary.profiles,
            events = summary.events,
            "demo warehouse installed"
        );
        Ok(Some(summary))
    }
}

/// The memory pool's size: `--memory-limit-mb`, else 70 % of what the
/// process may use (the machine's memory, its cgroup's limit), else (not
/// Linux) no bound. Logged: an operator sees what a server runs with.
fn pool_size(config: &EngineConfig) -> usize {
    if let Some(limit) = config.memory_limit {
        info!(
            pool = %crate::memory::mib(limit),
            "query memory pool (--memory-limit-mb)"
        );
        return limit;
    }
    let memory = crate::memory::available_memory();
    match crate::memory::default_pool_size(memory) {
        Some(size) => {
            info!(
                pool = %crate::memory::mib(size),
                memory = %crate::memory::mib(memory.unwrap_or_default() as usize),
                "query memory pool: {} % of the memory of the machine or its cgroup \
                 (--memory-limit-mb to change)",
                crate::memory::DEFAULT_POOL_PERCENT
            );
            size
        }
        None => {
            tracing::warn!(
                "the machine's memory is unknown: the query memory pool has no bound \
                 (set --memory-limit-mb)"
            );
            usize::MAX
        }
    }
}

/// Writes the audit trail's batches every `FLUSH_INTERVAL` and expires old
/// days at start and daily, while the storage lives.
async fn write_audit(storage: std::sync::Weak<Storage>) {
    let mut expired_at: Option<std::time::Instant> = None;
    loop {
        let Some(storage) = storage.upgrade() else {
            return;
        };
        if expired_at.is_none_or(|at| at.elapsed() > std::time::Duration::from_secs(86_400)) {
            expired_at = Some(std::time::Instant::now());
            if let Err(e) = storage.audit().expire(chrono::Utc::now()).await {
                tracing::warn!(error = %e, "old audit records not deleted");
            }
        }
        if let Err(e) = storage.audit().flush().await {
            tracing::warn!(error = %e, "audit records not written yet (kept for the next batch)");
        }
        if let Err(e) = storage.flush_key_uses().await {
            tracing::warn!(error = %e, "ingest key uses not written yet (kept for the next batch)");
        }
        drop(storage);
        tokio::time::sleep(crate::storage::audit::FLUSH_INTERVAL).await;
    }
}
