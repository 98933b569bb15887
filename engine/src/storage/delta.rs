//! Managed tables on Delta Lake.
//!
//! Every table Seglake writes (`CREATE TABLE`, `CREATE TABLE AS`, Flight SQL
//! ingest, the HTTP collector) is a Delta table in the warehouse under
//! `tables/<schema>/<table>/<uuid>/`: Parquet files plus a `_delta_log`.
//! Each statement is one Delta commit, so readers see all of it or none of
//! it; concurrent writers commit with a conditional put (`PutMode::Create`,
//! `If-None-Match` on S3) and retry on conflict (delta-rs decides which
//! conflicts are real, e.g. two rewrites of the same file).
//!
//! delta-rs reads and writes through the very object store the warehouse uses
//! (`DeltaTableBuilder::with_storage_backend`), so local paths and S3 behave
//! the same and no credentials are configured twice.

use std::collections::HashMap;
use std::sync::{Arc, Once};

use arrow::datatypes::SchemaRef;
use chrono::{DateTime, Utc};
use datafusion::catalog::TableProvider;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, col, lit};
use datafusion::prelude::SessionContext;
use deltalake_core::kernel::transaction::CommitProperties;
use deltalake_core::logstore::{
    LogStore, LogStoreFactory, ObjectStoreRef, StorageConfig, default_logstore, logstore_factories,
};
use deltalake_core::{DeltaResult, DeltaTable, DeltaTableBuilder, DeltaTableError};
use futures::TryStreamExt;
use seglake_udfs::erased_profiles::ErasedProfiles;
use url::Url;

use super::Storage;
use crate::{EngineError, Result};

/// Which version of a table to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeTravel {
    Version(i64),
    Timestamp(DateTime<Utc>),
}

impl std::fmt::Display for TimeTravel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Version(v) => write!(f, "version {v}"),
            Self::Timestamp(t) => write!(f, "timestamp {}", t.to_rfc3339()),
        }
    }
}

impl TimeTravel {
    /// The compact form used in hidden table names (`v3`, `t1700000000000`).
    pub(crate) fn encode(&self) -> String {
        match self {
            Self::Version(v) => format!("v{v}"),
            Self::Timestamp(t) => format!("t{}", t.timestamp_millis()),
        }
    }

    pub(crate) fn decode(s: &str) -> Option<Self> {
        if let Some(v) = s.strip_prefix('v') {
            return v.parse().ok().map(Self::Version);
        }
        let ms: i64 = s.strip_prefix('t')?.parse().ok()?;
        DateTime::from_timestamp_millis(ms).map(Self::Timestamp)
    }
}

/// Registers a conditional-put log store for `s3://` with delta-rs (it knows
/// only `file://` and `memory://` without its AWS crate). object_store's S3
/// client implements `PutMode::Create` with `If-None-Match`, which makes
/// commits safe without a locking service or an unsafe rename.
pub(crate) fn register_log_stores() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let factories = logstore_factories();
        for scheme in ["s3://", "s3a://"] {
            let url = Url::parse(scheme).expect("static URL");
            if !factories.contains_key(&url) {
                factories.insert(url, Arc::new(ConditionalPutLogStores));
            }
        }
    });
}

struct ConditionalPutLogStores;

impl LogStoreFactory for ConditionalPutLogStores {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}

/// How many times a commit is retried against newer versions before a
/// conflict is reported (appends never conflict; rewrites of the same file
/// do).
const COMMIT_RETRIES: usize = 25;

/// Commit properties with Seglake's own provenance (the user) recorded in
/// the commit info.
pub(crate) fn commit_properties(
    user: &str,
    extra: &[(&str, serde_json::Value)],
) -> CommitProperties {
    let mut meta: HashMap<String, serde_json::Value> = HashMap::new();
    meta.insert("seglake.user".into(), user.into());
    for (k, v) in extra {
        meta.insert(format!("seglake.{k}"), v.clone());
    }
    CommitProperties::default()
        .with_metadata(meta)
        .with_max_retries(COMMIT_RETRIES)
}

impl Storage {
    /// The Delta table at `location` (not loaded: for creating it).
    pub(crate) fn delta_handle(&self, location: &str) -> Result<DeltaTable> {
        let (store, url) = self.delta_store(location)?;
        Ok(DeltaTableBuilder::from_url(url.clone())?
            .with_storage_backend(store, url)
            .build()?)
    }

    /// The Delta table at `location`, loaded at its newest version or at
    /// `at`.
    pub(crate) async fn open_delta(
        &self,
        location: &str,
        at: Option<&TimeTravel>,
    ) -> Result<DeltaTable> {
        // A timestamp selects the newest commit whose commit time (the one
        // system.table_history shows) is at or before it; delta-rs would use
        // the log files' modification times instead.
        let resolved;
        let at = match at {
            Some(TimeTravel::Timestamp(t)) => {
                let newest = Box::pin(self.open_delta(location, None)).await?;
                let version = history(&newest)
                    .await?
                    .into_iter()
                    .filter(|c| c.timestamp.is_some_and(|ts| ts <= *t))
                    .map(|c| c.version)
                    .max()
                    .ok_or_else(|| {
                        EngineError::InvalidArgument(format!(
                            "no version of the table matches timestamp {} (the table is \
                             newer, or its older history was removed)",
                            t.to_rfc3339()
                        ))
                    })?;
                resolved = TimeTravel::Version(version);
                Some(&resolved)
            }
            other => other,
        };
        if at.is_none() {
            return self.open_newest(location).await;
        }
        if let Some(TimeTravel::Version(v)) = at {
            // delta-kernel's work grows with the requested version (1.5 s
            // per ten million versions past the last commit in a debug
            // build, with no await point): refuse a version newer than the
            // last commit before asking it, or `table_at(t,
            // 9223372036854775807)` keeps a core busy for ever, past the
            // statement's deadline.
            let newest = self.open_newest(location).await?.version().unwrap_or(0);
            if (*v).max(0) as u64 > newest {
                return Err(EngineError::InvalidArgument(format!(
                    "no version of the table matches {} (it is older than the table, newer \
                     than its last commit, or was vacuumed): the last commit is version {newest}",
                    TimeTravel::Version(*v)
                )));
            }
        }
        let (store, url) = self.delta_store(location)?;
        let mut builder =
            DeltaTableBuilder::from_url(url.clone())?.with_storage_backend(store, url);
        if let Some(TimeTravel::Version(v)) = at {
            builder = builder.with_version((*v).max(0) as u64);
        }
        builder.load().await.map_err(|e| match (at, e) {
            (
                Some(at),
                e @ (DeltaTableError::InvalidVersion(_)
                | DeltaTableError::NotATable(_)
                | DeltaTableError::KernelError(_)
                | DeltaTableError::Generic(_)),
            ) => EngineError::InvalidArgument(format!(
                "no version of the table matches {at} (it is older than the table, newer \
                 than its last commit, or was vacuumed): {e}"
            )),
            (_, e) => e.into(),
        })
    }

    /// The newest version of the Delta table at `location`: the cached state
    /// brought forward with the commits made since (one listing of the log
    /// after the cached version, by whoever wrote them), or a full load.
    async fn open_newest(&self, location: &str) -> Result<DeltaTable> {
        if let Some(mut table) = self.delta_tables.get(location) {
            match table.update_incremental(None).await {
                Ok(()) => {
                    self.delta_tables.put(location, &table);
                    return Ok(table);
                }
                Err(e) => {
                    // A log rewritten under us: start again from scratch.
                    tracing::debug!(location, error = %e, "cached Delta state not updatable; reloading");
                    self.delta_tables.remove(location);
                }
            }
        }
        let (store, url) = self.delta_store(location)?;
        let table = DeltaTableBuilder::from_url(url.clone())?
            .with_storage_backend(store, url)
            .load()
            .await?;
        self.delta_tables.put(location, &table);
        Ok(table)
    }

    /// Forgets the cached state of the Delta tables under `prefix` (their
    /// files were deleted or replaced in place).
    pub(crate) fn forget_delta_tables(&self, prefix: &str) {
        self.delta_tables.remove_prefix(prefix);
    }

    /// A DataFusion table reading the Delta table at `location`.
    pub(crate) async fn delta_provider(
        &self,
        location: &str,
        at: Option<&TimeTravel>,
    ) -> Result<Arc<dyn TableProvider>> {
        let table = self.open_delta(location, at).await?;
        let builder = table.table_provider().with_session(self.scan_session()?);
        if self.is_distributed() {
            // A coordinator: scans that workers can run (delta_scan.rs).
            let scan = builder.build().await?;
            return Ok(Arc::new(
                crate::storage::delta_scan::DistributedDeltaTable::new(scan),
            ));
        }
        Ok(Arc::new(crate::storage::delta_scan::LocalDeltaTable::new(
            builder.await?,
        )))
    }

    fn delta_store(&self, location: &str) -> Result<(ObjectStoreRef, Url)> {
        register_log_stores();
        let (store, _) = self.store_for(location)?;
        let url = Url::parse(location).map_err(|e| {
            EngineError::InvalidArgument(format!("bad table location {location}: {e}"))
        })?;
        Ok((store, url))
    }
}

/// The newest loaded state of Delta tables by location, so that planning a
/// statement reads only the log commits made since the last one instead of
/// replaying the whole log (two plannings per Flight SQL query: GetFlightInfo
/// and DoGet). Cloning a `DeltaTable` shares its loaded state. Table
/// locations are never reused (a new table gets a new generation
/// directory), except the demo's, which `install_demo` forgets; a dropped
/// table is forgotten by the server that drops it (elsewhere its state
/// stays until the capacity evicts it).
#[derive(Debug, Default)]
pub(crate) struct TableCache {
    tables: parking_lot::Mutex<HashMap<String, DeltaTable>>,
}

/// Tables kept at most; beyond, an arbitrary one is dropped.
const TABLE_CACHE_CAPACITY: usize = 256;

impl TableCache {
    fn lock(&self) -> parking_lot::MutexGuard<'_, HashMap<String, DeltaTable>> {
        self.tables.lock()
    }

    fn get(&self, location: &str) -> Option<DeltaTable> {
        self.lock().get(location).cloned()
    }

    /// Keeps `table` unless a newer version of it is cached already.
    fn put(&self, location: &str, table: &DeltaTable) {
        let mut tables = self.lock();
        if tables
            .get(location)
            .is_some_and(|t| t.version() > table.version())
        {
            return;
        }
        if tables.len() >= TABLE_CACHE_CAPACITY && !tables.contains_key(location) {
            let victim = tables.keys().next().cloned();
            if let Some(victim) = victim {
                tables.remove(&victim);
            }
        }
        tables.insert(location.to_string(), table.clone());
    }

    fn remove(&self, location: &str) {
        self.lock().remove(location);
    }

    fn remove_prefix(&self, prefix: &str) {
        self.lock().retain(|k, _| !k.starts_with(prefix));
    }
}

/// Turns a directory of Parquet files (hive-partitioned by `partition`)
/// into a Delta table whose version 0 adopts the files as they are.
pub(crate) async fn convert_parquet_dir(
    engine: &Storage,
    location: &str,
    name: &str,
    partition: Option<&arrow::datatypes::Field>,
) -> Result<()> {
    use deltalake_core::kernel::engine::arrow_conversion::TryIntoKernel;
    use deltalake_core::operations::convert_to_delta::ConvertToDeltaBuilder;
    let handle = engine.delta_handle(location)?;
    let mut builder = ConvertToDeltaBuilder::new()
        .with_log_store(handle.log_store())
        .with_table_name(name)
        .with_commit_properties(commit_properties("seglake", &[]));
    if let Some(field) = partition {
        let field: deltalake_core::kernel::StructField = field
            .try_into_kernel()
            .map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        builder = builder.with_partition_schema(vec![field]);
    }
    builder.await?;
    Ok(())
}

/// Version, time, operation and row counts of every commit of `table`,
/// newest first.
#[derive(Debug, Clone)]
pub struct CommitRecord {
    pub version: i64,
    pub timestamp: Option<DateTime<Utc>>,
    pub operation: String,
    pub user: Option<String>,
    pub rows_added: Option<u64>,
    pub rows_removed: Option<u64>,
    pub files_added: Option<u64>,
    pub files_removed: Option<u64>,
    pub parameters: String,
}

pub(crate) async fn history(table: &DeltaTable) -> Result<Vec<CommitRecord>> {
    let newest = table.version().unwrap_or(0) as i64;
    let infos: Vec<_> = table.history(None).try_collect().await?;
    Ok(infos
        .into_iter()
        .enumerate()
        .map(|(i, info)| {
            let metrics = info
                .info
                .get("operationMetrics")
                .and_then(|m| m.as_object())
                .cloned()
                .unwrap_or_default();
            let num = |keys: &[&str]| -> Option<u64> {
                let mut found = None;
                for k in keys {
                    if let Some(v) = metrics.get(*k).and_then(json_u64) {
                        found = Some(found.unwrap_or(0) + v);
                    }
                }
                found
            };
            let seglake = |k: &str| info.info.get(&format!("seglake.{k}")).and_then(json_u64);
            let operation = info.operation.clone().unwrap_or_default();
            let rows_added = seglake("rows_added").or_else(|| {
                num(&[
                    "num_added_rows",
                    "num_target_rows_inserted",
                    "num_target_rows_updated",
                    "num_updated_rows",
                ])
            });
            let rows_removed = seglake("rows_removed").or_else(|| {
                num(&[
                    "num_deleted_rows",
                    "num_target_rows_deleted",
                    "num_target_rows_updated",
                    "num_updated_rows",
                ])
            });
            CommitRecord {
                version: newest - i as i64,
                timestamp: info.timestamp.and_then(DateTime::from_timestamp_millis),
                operation,
                user: info
                    .info
                    .get("seglake.user")
                    .and_then(|u| u.as_str())
                    .map(str::to_string),
                rows_added,
                rows_removed,
                files_added: num(&[
                    "num_added_files",
                    "num_target_files_added",
                    "numFilesAdded",
                    "num_files_added",
                ]),
                files_removed: num(&[
                    "num_removed_files",
                    "num_target_files_removed",
                    "numFilesRemoved",
                    "num_files_removed",
                ]),
                parameters: info
                    .operation_parameters
                    .as_ref()
                    .map(|p| serde_json::to_string(p).unwrap_or_default())
                    .unwrap_or_default(),
            }
        })
        .collect())
}

fn json_u64(v: &serde_json::Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// Rows added by the newest commit of `table` (after a write).
pub(crate) async fn last_commit_rows_added(table: &DeltaTable) -> Result<u64> {
    let infos: Vec<_> = table.history(Some(1)).try_collect().await?;
    Ok(infos
        .first()
        .and_then(|i| i.info.get("operationMetrics"))
        .and_then(|m| m.get("num_added_rows"))
        .and_then(json_u64)
        .unwrap_or(0))
}

/// `plan` without the rows of erased profiles, when the table it writes
/// (`target`) has a `profile_id` column and tombstones exist.
pub(crate) fn drop_erased(
    plan: LogicalPlan,
    target: &SchemaRef,
    erased: &ErasedProfiles,
) -> Result<LogicalPlan> {
    if erased.is_empty() || target.field_with_name("profile_id").is_err() {
        return Ok(plan);
    }
    let keep = col("profile_id")
        .is_null()
        .or(erased.erased(col("profile_id")).is_not_true());
    Ok(LogicalPlanBuilder::from(plan).filter(keep)?.build()?)
}

/// A session state for delta-rs operations: ours (functions, catalog,
/// object stores, settings) with delta-rs's query planner, which knows its
/// own logical nodes (write metrics, merge barriers). With `erased`, the
/// predicates and expressions delta-rs parses may call `seglake_erased`
/// and `seglake_refuse_erased` (SQL of users never can: the functions are
/// only in this state).
pub(crate) fn session_for_delta(
    ctx: &SessionContext,
    erased: Option<&ErasedProfiles>,
) -> Arc<dyn datafusion::catalog::Session> {
    let mut state = datafusion::execution::SessionStateBuilder::new_from_existing(ctx.state())
        .with_query_planner(deltalake_core::delta_datafusion::planner::DeltaPlanner::new())
        .build();
    if let Some(erased) = erased {
        use datafusion::execution::FunctionRegistry;
        for f in [erased.erased(lit(0)), erased.refuse_erased(lit(0))] {
            if let Expr::ScalarFunction(f) = f {
                // Never replaces a function of the user's session: these
                // names are ours alone.
                let _ = state.register_udf(f.func);
            }
        }
    }
    Arc::new(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Engine, EngineConfig, Outcome};
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int64Type;

    async fn count(engine: &Arc<Engine>, sql: &str) -> i64 {
        let session = engine.session("test").unwrap();
        let Outcome::Rows { stream, .. } = session.execute(sql, vec![]).await.unwrap() else {
            panic!("{sql}: not a query");
        };
        let batches: Vec<_> = stream.try_collect().await.unwrap();
        let c = batches[0].column(0);
        assert_eq!(c.len(), 1);
        c.as_primitive::<Int64Type>().value(0)
    }

    async fn run(engine: &Arc<Engine>, sql: &str) {
        let session = engine.session("test").unwrap();
        match session.execute(sql, vec![]).await.unwrap() {
            Outcome::Rows { stream, .. } => {
                let _: Vec<_> = stream.try_collect().await.unwrap();
            }
            Outcome::Done { .. } => {}
        }
    }

    async fn open(dir: &tempfile::TempDir) -> Arc<Engine> {
        Engine::open(EngineConfig::new(dir.path().to_str().unwrap()))
            .await
            .unwrap()
    }

    /// Two engines on one warehouse stand for two servers: each sees every
    /// commit of the other although both keep loaded table states.
    #[tokio::test]
    async fn cached_tables_see_every_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (open(&dir).await, open(&dir).await);
        run(&a, "CREATE TABLE t AS VALUES (1), (2)").await;
        assert_eq!(count(&a, "SELECT count(*) FROM t").await, 2);
        assert_eq!(count(&b, "SELECT count(*) FROM t").await, 2);
        run(&b, "INSERT INTO t VALUES (3)").await;
        assert_eq!(count(&a, "SELECT count(*) FROM t").await, 3);
        run(&a, "INSERT INTO t VALUES (4), (5)").await;
        assert_eq!(count(&b, "SELECT sum(column1) FROM t").await, 15);
        assert_eq!(count(&a, "SELECT sum(column1) FROM t").await, 15);
        run(&b, "DELETE FROM t WHERE column1 > 3").await;
        assert_eq!(count(&a, "SELECT sum(column1) FROM t").await, 6);
        // a's cached state moved with the commits: it is at the version a
        // full load of the log gives.
        let location = a
            .catalog()
            .await
            .unwrap()
            .state
            .table("public", "t")
            .unwrap()
            .location
            .clone();
        let fresh = open(&dir)
            .await
            .storage()
            .open_delta(&location, None)
            .await
            .unwrap();
        assert!(
            fresh.version().unwrap() >= 3,
            "create, write, 2 inserts, delete"
        );
        assert_eq!(
            a.storage().delta_tables.get(&location).unwrap().version(),
            fresh.version()
        );
    }

    async fn first_value(outcome: Outcome) -> i64 {
        let Outcome::Rows { stream, .. } = outcome else {
            panic!("not a query");
        };
        let batches: Vec<_> = stream.try_collect().await.unwrap();
        batches[0].column(0).as_primitive::<Int64Type>().value(0)
    }

    /// A query planned by `prepare` runs without planning again, on the
    /// table versions of its planning; only fully bound queries are planned.
    #[tokio::test]
    async fn a_planned_query_reads_the_versions_it_planned() {
        use datafusion::common::ScalarValue;
        let dir = tempfile::tempdir().unwrap();
        let engine = open(&dir).await;
        run(&engine, "CREATE TABLE t AS VALUES (1), (2)").await;
        let session = engine.session("test").unwrap();
        let all = session
            .prepare("SELECT sum(column1) FROM t", &[])
            .await
            .unwrap();
        let above = session
            .prepare(
                "SELECT count(*) FROM t WHERE column1 > $1",
                &[ScalarValue::Int64(Some(1))],
            )
            .await
            .unwrap();
        run(&engine, "INSERT INTO t VALUES (3), (4)").await;
        let planned = all.planned.expect("a query without parameters is planned");
        assert_eq!(
            first_value(session.run_planned(planned.clone()).await.unwrap()).await,
            3
        );
        assert_eq!(
            first_value(session.run_planned(planned).await.unwrap()).await,
            3
        );
        let planned = above.planned.expect("a query with its values is planned");
        assert_eq!(
            first_value(session.run_planned(planned).await.unwrap()).await,
            1
        );
        // Planned again, the insert is seen.
        assert_eq!(count(&engine, "SELECT sum(column1) FROM t").await, 10);
        // Not planned: parameters without values, commands.
        let unbound = session
            .prepare("SELECT count(*) FROM t WHERE column1 > $1", &[])
            .await
            .unwrap();
        assert!(unbound.planned.is_none());
        let command = session
            .prepare("INSERT INTO t VALUES (5)", &[])
            .await
            .unwrap();
        assert!(command.planned.is_none());
        assert_eq!(count(&engine, "SELECT count(*) FROM t").await, 4);
    }

    /// A dropped table's state leaves the cache (its location is not reused).
    #[tokio::test]
    async fn dropped_tables_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let engine = open(&dir).await;
        run(&engine, "CREATE SCHEMA s").await;
        let mut locations = vec![];
        for (schema, t) in [("public", "t1"), ("s", "t2")] {
            let name = format!("{schema}.{t}");
            run(&engine, &format!("CREATE TABLE {name} AS VALUES (1), (2)")).await;
            assert_eq!(
                count(&engine, &format!("SELECT count(*) FROM {name}")).await,
                2
            );
            let snapshot = engine.catalog().await.unwrap();
            let location = snapshot.state.table(schema, t).unwrap().location.clone();
            assert!(
                engine.storage().delta_tables.get(&location).is_some(),
                "{name} cached"
            );
            locations.push(location);
        }
        run(&engine, "DROP TABLE t1").await;
        assert!(engine.storage().delta_tables.get(&locations[0]).is_none());
        assert!(engine.storage().delta_tables.get(&locations[1]).is_some());
        run(&engine, "DROP SCHEMA s CASCADE").await;
        assert!(engine.storage().delta_tables.get(&locations[1]).is_none());
    }

    /// The demo rewrites its tables at the same locations: a re-install is
    /// seen, not the cached state of the previous one.
    #[tokio::test]
    async fn a_reinstalled_demo_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let engine = open(&dir).await;
        for profiles in [40, 70] {
            let options = crate::demo::DemoOptions {
                profiles,
                days: 5,
                ..Default::default()
            };
            engine
                .install_demo(&options, true, &|_, _| {})
                .await
                .unwrap();
            assert_eq!(
                count(&engine, "SELECT count(*) FROM profiles").await,
                profiles as i64
            );
        }
    }

    #[test]
    fn time_travel_codes() {
        for t in [
            TimeTravel::Version(0),
            TimeTravel::Version(42),
            TimeTravel::Timestamp(DateTime::from_timestamp_millis(1_700_000_000_123).unwrap()),
        ] {
            assert_eq!(TimeTravel::decode(&t.encode()), Some(t));
        }
        assert_eq!(TimeTravel::decode("x1"), None);
        assert_eq!(TimeTravel::decode("v"), None);
    }
}
