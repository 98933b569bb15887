//! The engine: one warehouse, one catalog, one DataFusion runtime, and the
//! sessions that run SQL against them.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::TableReference;
use datafusion::common::{ParamValues, ScalarValue, SchemaReference};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTableUrl};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{
    CreateExternalTable, DdlStatement, DmlStatement, LogicalPlan, WriteOp,
};
use datafusion::prelude::{SessionConfig, SessionContext};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use seglake_catalog::{
    CatalogStore, DEFAULT_CATALOG, DEFAULT_SCHEMA, PartitionColumn, S3Options, Snapshot,
    TableEntry, TableFormat, TableKind, Warehouse,
};
use tracing::{debug, info, warn};

use crate::catalog_provider::{SnapshotCatalog, validate_schema};
use crate::distributed::{self, Cluster, ClusterConfig};
use crate::sql::rewrite_placeholders;
use crate::{EngineError, Result};

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
    /// Memory limit for query execution in bytes; operators that can spill
    /// do so, others fail with a resources-exhausted error.
    pub memory_limit: Option<usize>,
    /// Workers to distribute queries to (`None`: single node).
    pub cluster: Option<ClusterConfig>,
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
        }
    }
}

/// Shared by every session of a server.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    warehouse: Warehouse,
    catalog: CatalogStore,
    runtime: Arc<RuntimeEnv>,
    cluster: Option<Cluster>,
    /// Settings Delta scans follow (view types, pushdown), built once.
    scan_session: std::sync::OnceLock<Arc<SessionState>>,
    /// Serialises segment refreshes in this process.
    refresh_lock: tokio::sync::Mutex<()>,
    /// Newest loaded state of each Delta table, brought up to date on use.
    pub(crate) delta_tables: crate::delta::TableCache,
}

/// A statement after the front-end: Seglake's own, or a DataFusion plan.
#[derive(Debug)]
pub(crate) enum Planned {
    Seglake(crate::statements::SeglakeStatement),
    DataFusion {
        plan: LogicalPlan,
        /// `PARTITIONED BY` of a CREATE TABLE.
        partition_by: Vec<String>,
    },
}

/// Whether a statement produces rows or changes something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    /// SELECT, EXPLAIN, SHOW, DESCRIBE...: rows, produced lazily.
    Query,
    /// DDL, DML and SET: runs once, eagerly, and reports a count.
    Command,
}

/// A statement planned but not executed.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub kind: StatementKind,
    /// Result schema for queries; empty for commands.
    pub schema: SchemaRef,
    /// One field per positional parameter (`$1`, `$2`, ...), typed where
    /// DataFusion could infer the type, `Null` otherwise.
    pub parameters: SchemaRef,
    /// A query with every parameter bound, as planned: run it with
    /// [`Session::run_planned`] instead of planning the SQL again.
    pub planned: Option<PlannedQuery>,
}

/// A query planned (logically, every parameter bound) by
/// [`Session::prepare`]. Its managed (Delta) tables are read at the versions
/// current when it was planned.
#[derive(Debug, Clone)]
pub struct PlannedQuery {
    plan: LogicalPlan,
}

/// What running a statement gave.
pub enum Outcome {
    /// Rows, streamed: dropping the stream cancels the query.
    Rows {
        schema: SchemaRef,
        stream: SendableRecordBatchStream,
    },
    /// A command ran; rows affected where that means something.
    Done { rows_affected: Option<u64> },
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rows { schema, .. } => f.debug_struct("Rows").field("schema", schema).finish(),
            Self::Done { rows_affected } => f
                .debug_struct("Done")
                .field("rows_affected", rows_affected)
                .finish(),
        }
    }
}

impl Engine {
    /// Opens (or initialises) the warehouse and its catalog.
    pub async fn open(config: EngineConfig) -> Result<Arc<Self>> {
        let warehouse = Warehouse::open(&config.warehouse, &config.s3)?;
        crate::delta::register_log_stores();
        // No list-files cache: other servers, workers and ingests add files
        // to the warehouse, and a query must see every committed file.
        let mut rt = RuntimeEnvBuilder::new()
            .with_cache_manager(CacheManagerConfig::default().with_list_files_cache_limit(0));
        if let Some(limit) = config.memory_limit {
            let pool = TrackConsumersPool::new(
                FairSpillPool::new(limit),
                std::num::NonZeroUsize::new(5).expect("non-zero"),
            );
            rt = rt.with_memory_pool(Arc::new(pool));
        }
        let runtime = rt.build_arc()?;
        runtime.register_object_store(warehouse.store_url(), warehouse.store());
        let catalog = CatalogStore::open(&warehouse).await?;
        let cluster = match &config.cluster {
            Some(c) => Some(Cluster::start(c.clone()).await?),
            None => None,
        };
        info!(warehouse = %warehouse.url(), "engine ready");
        Ok(Arc::new(Self {
            config,
            warehouse,
            catalog,
            runtime,
            cluster,
            scan_session: std::sync::OnceLock::new(),
            refresh_lock: tokio::sync::Mutex::new(()),
            delta_tables: crate::delta::TableCache::default(),
        }))
    }

    pub fn warehouse(&self) -> &Warehouse {
        &self.warehouse
    }

    pub fn runtime(&self) -> &Arc<RuntimeEnv> {
        &self.runtime
    }

    /// The workers of a coordinator (`None` on a single node).
    pub fn cluster(&self) -> Option<&Cluster> {
        self.cluster.as_ref()
    }

    /// The newest committed catalog.
    pub async fn catalog(&self) -> Result<Arc<Snapshot>> {
        Ok(self.catalog.current().await?)
    }

    pub(crate) fn refresh_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.refresh_lock
    }

    pub(crate) fn catalog_store(&self) -> &CatalogStore {
        &self.catalog
    }

    /// A fresh DataFusion session state with Seglake's configuration and
    /// functions (DataFusion's built-ins plus `seglake_udfs::register_all`).
    pub fn session_state(&self) -> Result<SessionState> {
        let mut config = SessionConfig::new()
            .with_default_catalog_and_schema(DEFAULT_CATALOG, DEFAULT_SCHEMA)
            .with_create_default_catalog_and_schema(false)
            .with_information_schema(true);
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
        let mut builder = SessionStateBuilder::new()
            .with_default_features()
            // DataFusion's rules plus ours (see optimizer.rs).
            .with_optimizer_rules(crate::optimizer::rules())
            .with_config(config)
            .with_runtime_env(Arc::clone(&self.runtime));
        if let Some(cluster) = &self.cluster {
            builder = cluster.configure(builder)?;
        }
        let mut state = builder.build();
        seglake_udfs::register_all(&mut state)?;
        Ok(state)
    }

    /// The session whose settings Delta table scans follow.
    pub(crate) fn scan_session(&self) -> Result<Arc<SessionState>> {
        if let Some(s) = self.scan_session.get() {
            return Ok(Arc::clone(s));
        }
        let state = Arc::new(self.session_state()?);
        Ok(Arc::clone(self.scan_session.get_or_init(|| state)))
    }

    /// A session for one client connection.
    pub fn session(self: &Arc<Self>, user: &str) -> Result<Session> {
        let ctx = SessionContext::new_with_state(self.session_state()?);
        Ok(Session {
            engine: Arc::clone(self),
            ctx,
            user: user.to_string(),
        })
    }

    /// Makes sure DataFusion can reach the store of `url` (a table outside
    /// the warehouse store: another bucket, or local files next to an S3
    /// warehouse).
    pub(crate) fn ensure_object_store(&self, url: &str) -> Result<()> {
        let table_url = ListingTableUrl::parse(url)?;
        let store_url = table_url.object_store();
        if self.runtime.object_store(&store_url).is_ok() {
            return Ok(());
        }
        let parsed: &url::Url = store_url.as_ref();
        let store: Arc<dyn ObjectStore> = match parsed.scheme() {
            "file" => Arc::new(object_store::local::LocalFileSystem::new()),
            "s3" => {
                let bucket = parsed.host_str().unwrap_or_default();
                self.warehouse.s3_options().build(bucket)?
            }
            other => {
                return Err(EngineError::InvalidArgument(format!(
                    "unsupported location scheme '{other}': use a path, file:// or s3://"
                )));
            }
        };
        self.runtime.register_object_store(parsed, store);
        Ok(())
    }

    /// The store and path of a table location URL.
    pub(crate) fn store_for(&self, url: &str) -> Result<(Arc<dyn ObjectStore>, Path)> {
        self.ensure_object_store(url)?;
        let table_url = ListingTableUrl::parse(url)?;
        let store = self.runtime.object_store(table_url.object_store())?;
        Ok((store, table_url.prefix().clone()))
    }
}

/// One client's SQL session: its own settings (`SET ...`), shared engine.
pub struct Session {
    engine: Arc<Engine>,
    ctx: SessionContext,
    user: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("user", &self.user).finish()
    }
}

impl Session {
    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The DataFusion context (settings, function registry).
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Installs the newest catalog version for the next statement.
    pub async fn refresh_catalog(&self) -> Result<Arc<Snapshot>> {
        let snapshot = self.engine.catalog().await?;
        let parquet = self.ctx.state().table_options().parquet.clone();
        self.ctx.register_catalog(
            DEFAULT_CATALOG,
            Arc::new(SnapshotCatalog::new(
                Arc::clone(&snapshot),
                parquet,
                Arc::clone(&self.engine),
            )),
        );
        Ok(snapshot)
    }

    async fn plan(&self, sql: &str) -> Result<Planned> {
        let (sql, _) = rewrite_placeholders(sql);
        let parsed = crate::statements::parse(&sql)?;
        self.refresh_catalog().await?;
        if let Some(statement) = parsed.statement {
            return Ok(Planned::Seglake(statement));
        }
        let state = self.ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        let statement = state.sql_to_statement(&parsed.sql, &dialect)?;
        Ok(Planned::DataFusion {
            plan: state.statement_to_plan(statement).await?,
            partition_by: parsed.partition_by,
        })
    }

    /// Plans `sql` without running it: its kind, result schema and
    /// parameter schema. With `params` (bound values, possibly none yet) the
    /// result schema is the one [`Session::execute`] will stream with the
    /// same values; without, parameters are unknowns.
    pub async fn prepare(&self, sql: &str, params: &[ScalarValue]) -> Result<Prepared> {
        let (plan, parameters) = match self.plan_with_params(sql, params, false).await? {
            (Planned::Seglake(statement), parameters) => {
                let rows = match &statement {
                    crate::statements::SeglakeStatement::Segment(s) => {
                        crate::segments::result_schema(s)
                    }
                    _ => None,
                };
                return Ok(Prepared {
                    kind: if rows.is_some() {
                        StatementKind::Query
                    } else {
                        StatementKind::Command
                    },
                    schema: rows.unwrap_or_else(|| Arc::new(Schema::empty())),
                    parameters,
                    planned: None,
                });
            }
            (Planned::DataFusion { plan, .. }, parameters) => (plan, parameters),
        };
        let kind = classify(&plan);
        let schema = match kind {
            StatementKind::Query => Arc::new(plan.schema().as_arrow().clone()),
            StatementKind::Command => Arc::new(Schema::empty()),
        };
        let planned = (kind == StatementKind::Query && parameters.fields().len() == params.len())
            .then(|| PlannedQuery { plan });
        Ok(Prepared {
            kind,
            schema,
            parameters,
            planned,
        })
    }

    /// Plans `sql` and binds `params`. With `exact`, the number of values
    /// must match the statement's parameters; otherwise no values means
    /// "not bound yet".
    async fn plan_with_params(
        &self,
        sql: &str,
        params: &[ScalarValue],
        exact: bool,
    ) -> Result<(Planned, SchemaRef)> {
        let (plan, partition_by) = match self.plan(sql).await? {
            Planned::Seglake(mut statement) => {
                let n = crate::statements::parameter_count(&statement);
                if exact || !params.is_empty() {
                    crate::statements::bind_parameters(&mut statement, params)?;
                }
                // Seglake statements are not typed by DataFusion: any type.
                let parameters = Arc::new(Schema::new(
                    (1..=n)
                        .map(|i| Field::new(format!("${i}"), DataType::Null, true))
                        .collect::<Vec<_>>(),
                ));
                return Ok((Planned::Seglake(statement), parameters));
            }
            Planned::DataFusion { plan, partition_by } => (plan, partition_by),
        };
        let wrap = |plan| Planned::DataFusion {
            plan,
            partition_by: partition_by.clone(),
        };
        let expected = parameter_schema(&plan)?;
        if params.is_empty() && !exact {
            return Ok((wrap(plan), expected));
        }
        if expected.fields().len() != params.len() {
            return Err(EngineError::InvalidArgument(format!(
                "the statement has {} parameter(s) but {} value(s) were bound",
                expected.fields().len(),
                params.len()
            )));
        }
        if params.is_empty() {
            return Ok((wrap(plan), expected));
        }
        let values = cast_params(params.to_vec(), &expected)?;
        Ok((
            wrap(plan.with_param_values(ParamValues::from(values))?),
            expected,
        ))
    }

    /// Runs `sql` with positional parameter values. Queries return a lazy
    /// stream; commands run to completion here.
    pub async fn execute(&self, sql: &str, params: Vec<ScalarValue>) -> Result<Outcome> {
        let (plan, partition_by) = match self.plan_with_params(sql, &params, true).await? {
            (Planned::Seglake(statement), _) => return self.run_seglake(statement).await,
            (Planned::DataFusion { plan, partition_by }, _) => (plan, partition_by),
        };
        match classify(&plan) {
            StatementKind::Query => self.run_query(plan).await,
            StatementKind::Command => self.run_command(plan, &partition_by).await,
        }
    }

    /// Runs a query [`Session::prepare`] planned, without planning it again.
    pub async fn run_planned(&self, query: PlannedQuery) -> Result<Outcome> {
        self.run_query(query.plan).await
    }

    async fn run_query(&self, plan: LogicalPlan) -> Result<Outcome> {
        if let Some(cluster) = self.engine.cluster() {
            let schema = Arc::new(plan.schema().as_arrow().clone());
            let stream =
                distributed::supervise(cluster, &self.ctx, plan, Arc::clone(&schema)).await?;
            return Ok(Outcome::Rows { schema, stream });
        }
        let df = self.ctx.execute_logical_plan(plan).await?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let stream = df.execute_stream().await?;
        Ok(Outcome::Rows { schema, stream })
    }

    async fn run_command(&self, plan: LogicalPlan, partition_by: &[String]) -> Result<Outcome> {
        if !partition_by.is_empty()
            && !matches!(&plan, LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(_)))
        {
            return Err(EngineError::InvalidArgument(
                "PARTITIONED BY belongs to CREATE TABLE".into(),
            ));
        }
        match plan {
            LogicalPlan::Ddl(ddl) => self.run_ddl(ddl, partition_by).await,
            LogicalPlan::Dml(DmlStatement {
                table_name,
                op: WriteOp::Insert(op),
                input,
                ..
            }) if self.is_managed(&table_name).await? => {
                let (schema, table) = self.resolve_table_name(&table_name)?;
                let entry = self.managed_entry(&schema, &table, "INSERT").await?;
                let mode = match op {
                    InsertOp::Append => crate::managed::WriteMode::Append,
                    InsertOp::Overwrite | InsertOp::Replace => crate::managed::WriteMode::Overwrite,
                };
                let rows = self
                    .insert_managed(&entry, Arc::unwrap_or_clone(input), mode)
                    .await?;
                Ok(Outcome::Done {
                    rows_affected: Some(rows),
                })
            }
            LogicalPlan::Dml(DmlStatement {
                table_name,
                op: WriteOp::Insert(_),
                ..
            }) => {
                let (schema, table) = self.resolve_table_name(&table_name)?;
                Err(EngineError::Unsupported(format!(
                    "'{schema}.{table}' is an external Parquet table (read-only): \
                     INSERT into a managed table (CREATE TABLE ... AS SELECT copies it)"
                )))
            }
            LogicalPlan::Dml(_) => {
                let batches = self.ctx.execute_logical_plan(plan).await?.collect().await?;
                let count = batches
                    .first()
                    .filter(|b| b.num_rows() == 1 && b.num_columns() == 1)
                    .and_then(|b| {
                        b.column(0)
                            .as_any()
                            .downcast_ref::<arrow::array::UInt64Array>()
                            .map(|a| a.value(0))
                    });
                Ok(Outcome::Done {
                    rows_affected: count,
                })
            }
            LogicalPlan::Copy(_) => Err(EngineError::Unsupported(
                "COPY is not supported: query the data through Flight SQL instead".into(),
            )),
            other => {
                // SET and other session statements.
                self.ctx
                    .execute_logical_plan(other)
                    .await?
                    .collect()
                    .await?;
                Ok(Outcome::Done {
                    rows_affected: None,
                })
            }
        }
    }

    /// Whether `name` is a managed (Delta) table.
    async fn is_managed(&self, name: &TableReference) -> Result<bool> {
        let (schema, table) = self.resolve_table_name(name)?;
        let snapshot = self.engine.catalog().await?;
        Ok(snapshot
            .state
            .table(&schema, &table)
            .is_ok_and(|e| e.format == TableFormat::Delta))
    }

    async fn run_ddl(&self, ddl: DdlStatement, partition_by: &[String]) -> Result<Outcome> {
        let catalog = self.engine.catalog_store();
        match ddl {
            DdlStatement::CreateExternalTable(cmd) => self.create_external_table(*cmd).await?,
            DdlStatement::CreateCatalogSchema(cmd) => {
                let name = self.schema_name(&cmd.schema_name)?;
                let now = chrono::Utc::now();
                catalog
                    .update(|st| st.create_schema(&name, cmd.if_not_exists, now))
                    .await?;
            }
            DdlStatement::DropCatalogSchema(cmd) => {
                let name = match &cmd.name {
                    SchemaReference::Bare { schema } => schema.to_string(),
                    SchemaReference::Full { schema, catalog } => {
                        self.check_catalog(catalog)?;
                        schema.to_string()
                    }
                };
                let (_, dropped) = catalog
                    .update(|st| st.drop_schema(&name, cmd.if_exists, cmd.cascade))
                    .await?;
                for t in dropped {
                    self.delete_managed_data(&t).await;
                }
            }
            DdlStatement::DropTable(cmd) => {
                let (schema, table) = self.resolve_table_name(&cmd.name)?;
                let (_, dropped) = catalog
                    .update(|st| st.drop_table(&schema, &table, cmd.if_exists))
                    .await?;
                if let Some(t) = dropped {
                    self.delete_managed_data(&t).await;
                }
            }
            DdlStatement::CreateMemoryTable(cmd) => {
                if cmd.temporary {
                    return Err(EngineError::Unsupported(
                        "TEMPORARY tables are not supported".into(),
                    ));
                }
                if !cmd.column_defaults.is_empty() {
                    return Err(EngineError::Unsupported(
                        "column DEFAULT values are not supported".into(),
                    ));
                }
                let (schema_name, table) = self.resolve_table_name(&cmd.name)?;
                let schema = Arc::new(cmd.input.schema().as_arrow().clone());
                let input = match cmd.input.as_ref() {
                    LogicalPlan::EmptyRelation(e) if !e.produce_one_row => None,
                    _ => Some(Arc::unwrap_or_clone(cmd.input)),
                };
                let result = self
                    .create_managed(
                        &schema_name,
                        &table,
                        input,
                        schema,
                        partition_by,
                        cmd.if_not_exists,
                        cmd.or_replace,
                    )
                    .await?;
                let rows = match result {
                    crate::managed::CreateResult::Created { rows } => Some(rows),
                    crate::managed::CreateResult::Existed => Some(0),
                    crate::managed::CreateResult::Raced => {
                        return Err(EngineError::AlreadyExists(format!(
                            "table '{schema_name}.{table}' was created concurrently"
                        )));
                    }
                };
                return Ok(Outcome::Done {
                    rows_affected: rows,
                });
            }
            other => {
                return Err(EngineError::Unsupported(format!(
                    "{} is not supported",
                    other.name()
                )));
            }
        }
        Ok(Outcome::Done {
            rows_affected: None,
        })
    }

    async fn create_external_table(&self, cmd: CreateExternalTable) -> Result<()> {
        if !cmd.file_type.eq_ignore_ascii_case("parquet") {
            return Err(EngineError::Unsupported(format!(
                "STORED AS {} is not supported: Seglake reads PARQUET",
                cmd.file_type
            )));
        }
        if cmd.temporary || cmd.unbounded {
            return Err(EngineError::Unsupported(
                "TEMPORARY and UNBOUNDED external tables are not supported".into(),
            ));
        }
        if !cmd.options.is_empty() {
            let keys: Vec<_> = cmd.options.keys().cloned().collect();
            return Err(EngineError::Unsupported(format!(
                "table OPTIONS are not supported ({})",
                keys.join(", ")
            )));
        }
        let [location] = cmd.locations.as_slice() else {
            return Err(EngineError::Unsupported(
                "exactly one LOCATION is supported".into(),
            ));
        };
        let (schema_name, table) = self.resolve_table_name(&cmd.name)?;
        let location = self.engine.warehouse.resolve_location(location)?;
        self.engine.ensure_object_store(&location)?;

        let declared = cmd.schema.as_arrow();
        let partition_columns: Vec<PartitionColumn> = cmd
            .table_partition_cols
            .iter()
            .map(|name| PartitionColumn {
                name: name.clone(),
                data_type: declared
                    .field_with_name(name)
                    .map(|f| f.data_type().clone())
                    .unwrap_or(DataType::Utf8),
            })
            .collect();
        let declared_file_fields: Vec<Field> = declared
            .fields()
            .iter()
            .filter(|f| !cmd.table_partition_cols.contains(f.name()))
            .map(|f| f.as_ref().clone())
            .collect();
        let file_schema = if declared_file_fields.is_empty() {
            let state = self.ctx.state();
            // Record the files' own Arrow types (Utf8, Binary), not the view
            // types DataFusion reads them as by default: the catalog schema
            // is what clients see.
            let mut parquet = state.table_options().parquet.clone();
            parquet.global.schema_force_view_types = false;
            let format = ParquetFormat::default().with_options(parquet);
            let options = ListingOptions::new(Arc::new(format)).with_file_extension(".parquet");
            let url = ListingTableUrl::parse(&location)?;
            let inferred = options.infer_schema(&state, &url).await.map_err(|e| {
                EngineError::InvalidArgument(format!(
                    "cannot read a Parquet schema at {location} (declare the columns, or point LOCATION at a directory of .parquet files): {e}"
                ))
            })?;
            Schema::new(inferred.fields().clone())
        } else {
            Schema::new(declared_file_fields)
        };
        validate_schema(&file_schema)?;
        for p in &partition_columns {
            if file_schema.field_with_name(&p.name).is_ok() {
                return Err(EngineError::InvalidArgument(format!(
                    "partition column '{}' is also a column of the Parquet files",
                    p.name
                )));
            }
        }
        let entry = TableEntry {
            location: location.clone(),
            format: TableFormat::Parquet,
            kind: TableKind::External,
            file_schema,
            partition_columns,
            created_at: chrono::Utc::now(),
            comment: None,
        };
        self.engine
            .catalog_store()
            .update(|st| {
                st.put_table(
                    &schema_name,
                    &table,
                    entry.clone(),
                    cmd.if_not_exists,
                    cmd.or_replace,
                )
            })
            .await?;
        info!(user = %self.user, table = %format!("{schema_name}.{table}"), %location, "external table registered");
        Ok(())
    }

    /// Deletes the files of a managed table (after its catalog entry is gone).
    pub(crate) async fn delete_managed_data(&self, entry: &TableEntry) {
        if entry.kind != TableKind::Managed {
            return;
        }
        // Its location is never reused: no reason to keep its state.
        self.engine.forget_delta_tables(&entry.location);
        match self.engine.store_for(&entry.location) {
            Ok((store, prefix)) => {
                if let Err(e) = delete_prefix(store.as_ref(), &prefix).await {
                    warn!(location = %entry.location, error = %e, "could not delete dropped table data");
                }
            }
            Err(e) => {
                warn!(location = %entry.location, error = %e, "could not delete dropped table data")
            }
        }
    }

    pub(crate) fn check_catalog_name(&self, catalog: &str) -> Result<()> {
        self.check_catalog(catalog)
    }

    pub(crate) fn default_schema_name(&self) -> String {
        self.default_schema()
    }

    fn check_catalog(&self, catalog: &str) -> Result<()> {
        if catalog == DEFAULT_CATALOG {
            Ok(())
        } else {
            Err(EngineError::NotFound(format!(
                "catalog '{catalog}' not found (Seglake serves the catalog '{DEFAULT_CATALOG}')"
            )))
        }
    }

    fn default_schema(&self) -> String {
        self.ctx
            .state()
            .config()
            .options()
            .catalog
            .default_schema
            .clone()
    }

    /// `schema` or `catalog.schema` as written in CREATE SCHEMA.
    fn schema_name(&self, name: &str) -> Result<String> {
        match name.split_once('.') {
            Some((catalog, schema)) => {
                self.check_catalog(catalog)?;
                Ok(schema.to_string())
            }
            None => Ok(name.to_string()),
        }
    }

    /// Resolves a table name against the session's default schema.
    pub fn resolve_table_name(&self, name: &TableReference) -> Result<(String, String)> {
        match name {
            TableReference::Bare { table } => Ok((self.default_schema(), table.to_string())),
            TableReference::Partial { schema, table } => {
                Ok((schema.to_string(), table.to_string()))
            }
            TableReference::Full {
                catalog,
                schema,
                table,
            } => {
                self.check_catalog(catalog)?;
                Ok((schema.to_string(), table.to_string()))
            }
        }
    }
}

/// Deletes every object under `prefix`.
pub(crate) async fn delete_prefix(store: &dyn ObjectStore, prefix: &Path) -> Result<()> {
    use futures::TryStreamExt;
    let objects: Vec<_> = store.list(Some(prefix)).try_collect().await?;
    for o in objects {
        store.delete(&o.location).await?;
    }
    debug!(%prefix, "deleted");
    Ok(())
}

pub(crate) fn classify(plan: &LogicalPlan) -> StatementKind {
    match plan {
        LogicalPlan::Ddl(_)
        | LogicalPlan::Dml(_)
        | LogicalPlan::Copy(_)
        | LogicalPlan::Statement(_) => StatementKind::Command,
        _ => StatementKind::Query,
    }
}

/// `$1..$n` in order, typed where DataFusion inferred a type.
fn parameter_schema(plan: &LogicalPlan) -> Result<SchemaRef> {
    let types = plan.get_parameter_types()?;
    let mut params: Vec<(usize, Option<DataType>)> = Vec::with_capacity(types.len());
    for (name, ty) in types {
        let index = name
            .strip_prefix('$')
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                EngineError::InvalidArgument(format!(
                    "named parameter '{name}' is not supported: use ? or $1, $2, ..."
                ))
            })?;
        params.push((index, ty));
    }
    params.sort_by_key(|(i, _)| *i);
    for (pos, (i, _)) in params.iter().enumerate() {
        if *i != pos + 1 {
            return Err(EngineError::InvalidArgument(format!(
                "parameter ${} is missing (parameters must be numbered from $1 without gaps)",
                pos + 1
            )));
        }
    }
    Ok(Arc::new(Schema::new(
        params
            .into_iter()
            .map(|(i, ty)| Field::new(format!("${i}"), ty.unwrap_or(DataType::Null), true))
            .collect::<Vec<_>>(),
    )))
}

/// Casts bound values to the parameter types DataFusion inferred, so that a
/// client's Int64 can fill an Int32 slot.
fn cast_params(values: Vec<ScalarValue>, expected: &Schema) -> Result<Vec<ScalarValue>> {
    values
        .into_iter()
        .zip(expected.fields())
        .map(|(v, f)| {
            let target = f.data_type();
            if target == &DataType::Null
                || &v.data_type() == target
                || v.is_null() && target.is_nested()
            {
                Ok(v)
            } else if v.is_null() {
                Ok(ScalarValue::try_from(target)?)
            } else {
                v.cast_to(target).map_err(|e| {
                    EngineError::InvalidArgument(format!(
                        "parameter {} expects {target}, got {}: {e}",
                        f.name(),
                        v.data_type()
                    ))
                })
            }
        })
        .collect()
}

/// A table as metadata clients (Flight SQL `GetTables`) see it.
#[derive(Debug, Clone)]
pub struct TableInfo {
    pub catalog: String,
    pub schema: String,
    pub name: String,
    /// `TABLE` or `VIEW`.
    pub table_type: &'static str,
    pub arrow_schema: SchemaRef,
}

impl Session {
    /// Schemas of the catalog, built-in ones included, sorted.
    pub async fn schemas(&self) -> Result<Vec<String>> {
        self.refresh_catalog().await?;
        let mut names = self
            .ctx
            .catalog(DEFAULT_CATALOG)
            .map(|c| c.schema_names())
            .unwrap_or_default();
        names.push("information_schema".to_string());
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Every table and view with its Arrow schema (`with_schema`) or an
    /// empty schema.
    pub async fn tables(&self, with_schema: bool) -> Result<Vec<TableInfo>> {
        self.refresh_catalog().await?;
        let listing = self
            .ctx
            .sql(
                "SELECT table_catalog, table_schema, table_name, table_type \
                 FROM information_schema.tables ORDER BY 1, 2, 3",
            )
            .await?
            .collect()
            .await?;
        let mut out = vec![];
        for batch in listing {
            let col = |i: usize| arrow::array::AsArray::as_string::<i32>(batch.column(i));
            let (cat, sch, name, ty) = (col(0), col(1), col(2), col(3));
            for row in 0..batch.num_rows() {
                let reference =
                    TableReference::full(cat.value(row), sch.value(row), name.value(row));
                let arrow_schema = if with_schema {
                    match self.ctx.table_provider(reference).await {
                        Ok(provider) => provider.schema(),
                        // A segment whose query no longer plans still lists.
                        Err(e) => {
                            warn!(table = %name.value(row), error = %e, "table without a schema");
                            Arc::new(Schema::empty())
                        }
                    }
                } else {
                    Arc::new(Schema::empty())
                };
                out.push(TableInfo {
                    catalog: cat.value(row).to_string(),
                    schema: sch.value(row).to_string(),
                    name: name.value(row).to_string(),
                    table_type: if ty.value(row) == "VIEW" {
                        "VIEW"
                    } else {
                        "TABLE"
                    },
                    arrow_schema,
                });
            }
        }
        Ok(out)
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
        let root = self.warehouse.path(&["demo"]);
        // A re-run replaces the previous demo files.
        delete_prefix(self.warehouse.store().as_ref(), &root).await?;
        // The demo tables are rewritten at the same locations.
        self.forget_delta_tables(&self.warehouse.dir_url(&root));
        let summary =
            crate::demo::generate(self.warehouse.store(), &root, options, progress).await?;
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
                .warehouse
                .dir_url(&self.warehouse.path(&["demo", name]));
            let mut fields: Vec<Field> =
                schema.fields().iter().map(|f| f.as_ref().clone()).collect();
            fields.extend(partition.clone());
            crate::delta::convert_parquet_dir(self, &location, name, partition.as_ref()).await?;
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
        self.catalog
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
