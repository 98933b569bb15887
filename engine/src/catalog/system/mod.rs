//! The `system` schema: built-in, read-only tables over the catalog snapshot
//! a statement plans against.
//!
//! Every table is one file of this folder and one line of [`REGISTRY`],
//! in one of two kinds:
//!
//! - a [`SystemTable`] has a fixed schema and computes its rows when a
//!   statement *executes* its scan ([`SystemTableExec`]), not when the
//!   statement is planned: `table_history` (every commit of every managed
//!   table), `erasures` (receipts of `FORGET PROFILE`), `workers` (the
//!   workers of a distributed coordinator), `segments`,
//!   `segment_versions`, `destinations`, `users`, `grants` and
//!   `ingest_keys` (users, roles, privileges, the collector's keys),
//!   `audit` (the audit trail), `queries` (this server's statements);
//! - a [`SystemView`] is a query over the `segment_data` Delta tables,
//!   planned as a view when a statement resolves it (its schema is the one
//!   of those tables, and filters and projections reach their scans):
//!   `segment_history`, `segment_changes`, `segment_overlap`,
//!   `activations`.
//!
//! Listing (`information_schema.tables`, Flight SQL `GetTables`) asks
//! [`SystemSchema`] for table types only, which the registry answers: no
//! rows are computed, no view is planned, no Delta log is read.
//!
//! Adding a table: a file with a unit struct implementing [`SystemTable`]
//! (name, schema, rows) or [`SystemView`] (name, SQL), and its line in
//! [`REGISTRY`].

mod activations;
mod audit;
mod destinations;
mod erasures;
mod grants;
mod ingest_keys;
mod queries;
mod segment_changes;
mod segment_history;
mod segment_overlap;
mod segment_versions;
mod segments;
mod table_history;
mod users;
mod workers;

use std::fmt;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::common::internal_err;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_expr::{EquivalenceProperties, Partitioning};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PhysicalExpr, PlanProperties,
    ReplaceChildrenOptions,
};
use seglake_catalog::{SEGMENT_DATA_SCHEMA, SYSTEM_SCHEMA, Snapshot};

use crate::distributed::Cluster;
use crate::storage::Storage;

/// Every system table. Listings sort them by name.
static REGISTRY: &[Entry] = &[
    Entry::Table(&table_history::TableHistory),
    Entry::Table(&erasures::Erasures),
    Entry::Table(&workers::Workers),
    Entry::Table(&segments::Segments),
    Entry::Table(&segment_versions::SegmentVersions),
    Entry::Table(&destinations::Destinations),
    Entry::Table(&users::Users),
    Entry::Table(&grants::Grants),
    Entry::Table(&ingest_keys::IngestKeys),
    Entry::Table(&audit::Audit),
    Entry::Table(&queries::Queries),
    Entry::View(&segment_history::SegmentHistory),
    Entry::View(&segment_changes::SegmentChanges),
    Entry::View(&segment_overlap::SegmentOverlap),
    Entry::View(&activations::Activations),
];

/// A system table whose rows are computed when a statement scans it.
#[async_trait]
trait SystemTable: fmt::Debug + Send + Sync {
    fn name(&self) -> &'static str;

    /// The schema of the rows (no I/O: known when the table is resolved
    /// or listed).
    fn schema(&self) -> SchemaRef;

    /// The rows, with exactly [`SystemTable::schema`]; called when the scan
    /// executes.
    async fn scan(&self, ctx: &SystemContext) -> crate::Result<RecordBatch>;
}

/// A system table defined as a query over other tables, planned as a view
/// when a statement resolves it (never when tables are listed).
trait SystemView: fmt::Debug + Send + Sync {
    fn name(&self) -> &'static str;

    /// The query, against `snapshot` (unqualified names are in `public`).
    fn sql(&self, snapshot: &Snapshot) -> String;
}

/// A line of the [`REGISTRY`].
#[derive(Debug, Clone, Copy)]
enum Entry {
    Table(&'static dyn SystemTable),
    View(&'static dyn SystemView),
}

impl Entry {
    fn find(name: &str) -> Option<Self> {
        REGISTRY.iter().copied().find(|e| e.name() == name)
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Table(t) => t.name(),
            Self::View(v) => v.name(),
        }
    }

    /// What listings show: `BASE TABLE` for computed tables, `VIEW` for
    /// views (what their providers, `MemTable` and `ViewTable`, reported
    /// before the registry).
    fn table_type(&self) -> TableType {
        match self {
            Self::Table(_) => TableType::Base,
            Self::View(_) => TableType::View,
        }
    }
}

/// What system tables read: the catalog snapshot the statement plans
/// against, the storage (`table_history` opens Delta tables through its
/// table cache; views are planned with its scan session) and the workers
/// of a coordinator (`workers`; scans on a coordinator compute their rows
/// at planning, see `SystemTableProvider::scan`).
#[derive(Debug, Clone)]
struct SystemContext {
    snapshot: Arc<Snapshot>,
    storage: Arc<Storage>,
    cluster: Option<Cluster>,
    /// The grantees whose grants `system.grants` shows (`None`: all).
    grantees: Option<Arc<std::collections::BTreeSet<String>>>,
}

/// Whether `name` is a table of the `system` schema.
pub(crate) fn is_system_table(name: &str) -> bool {
    Entry::find(name).is_some()
}

/// The `system` schema of one catalog snapshot.
#[derive(Debug)]
pub(crate) struct SystemSchema {
    ctx: SystemContext,
}

impl SystemSchema {
    pub(crate) fn new(
        storage: Arc<Storage>,
        cluster: Option<Cluster>,
        snapshot: Arc<Snapshot>,
        grantees: Option<Arc<std::collections::BTreeSet<String>>>,
    ) -> Self {
        Self {
            ctx: SystemContext {
                snapshot,
                storage,
                cluster,
                grantees,
            },
        }
    }
}

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = REGISTRY.iter().map(|e| e.name().to_string()).collect();
        names.sort();
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        match Entry::find(name) {
            None => Ok(None),
            Some(Entry::Table(table)) => Ok(Some(Arc::new(SystemTableProvider {
                table,
                ctx: self.ctx.clone(),
            }))),
            Some(Entry::View(view)) => {
                let sql = view.sql(&self.ctx.snapshot);
                crate::catalog::segments::plan_view(
                    &self.ctx.storage,
                    self.ctx.cluster.as_ref(),
                    &self.ctx.snapshot,
                    &sql,
                )
                .await
                .map(Some)
            }
        }
    }

    /// From the registry: listing computes no rows and plans no view.
    async fn table_type(&self, name: &str) -> Result<Option<TableType>> {
        Ok(Entry::find(name).map(|e| e.table_type()))
    }

    fn table_exist(&self, name: &str) -> bool {
        Entry::find(name).is_some()
    }
}

/// The DataFusion table of a [`SystemTable`]: its scan computes the rows
/// when it executes.
#[derive(Debug)]
struct SystemTableProvider {
    table: &'static dyn SystemTable,
    ctx: SystemContext,
}

#[async_trait]
impl TableProvider for SystemTableProvider {
    fn schema(&self) -> SchemaRef {
        self.table.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if self.ctx.cluster.is_some() {
            // A coordinator: the distributed planner may ship the stage of
            // this scan to a worker, which can only decode plans of its own
            // (a worker has no catalog snapshot to compute the rows from),
            // so the rows are computed now, when the statement is planned
            // physically, into an in-memory scan that travels with the plan.
            let batch = self.table.scan(&self.ctx).await.map_err(external)?;
            return Ok(MemorySourceConfig::try_new_exec(
                &[vec![batch]],
                self.schema(),
                projection.cloned(),
            )?);
        }
        Ok(Arc::new(SystemTableExec::try_new(
            self.table,
            self.ctx.clone(),
            projection.cloned(),
        )?))
    }
}

/// Scans a [`SystemTable`]: one partition, whose rows are computed when it
/// executes.
#[derive(Debug)]
struct SystemTableExec {
    table: &'static dyn SystemTable,
    ctx: SystemContext,
    projection: Option<Vec<usize>>,
    properties: Arc<PlanProperties>,
}

impl SystemTableExec {
    fn try_new(
        table: &'static dyn SystemTable,
        ctx: SystemContext,
        projection: Option<Vec<usize>>,
    ) -> Result<Self> {
        let schema = table.schema();
        let schema = match &projection {
            Some(p) => Arc::new(schema.project(p)?),
            None => schema,
        };
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(Self {
            table,
            ctx,
            projection,
            properties,
        })
    }
}

impl DisplayAs for SystemTableExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                write!(
                    f,
                    "SystemTableExec: table={SYSTEM_SCHEMA}.{}",
                    self.table.name()
                )?;
                if self.projection.is_some() {
                    let schema = self.properties.eq_properties.schema();
                    let names: Vec<&str> =
                        schema.fields().iter().map(|f| f.name().as_str()).collect();
                    write!(f, ", projection=[{}]", names.join(", "))?;
                }
                Ok(())
            }
            DisplayFormatType::TreeRender => {
                write!(f, "table={SYSTEM_SCHEMA}.{}", self.table.name())
            }
        }
    }
}

impl ExecutionPlan for SystemTableExec {
    fn name(&self) -> &str {
        "SystemTableExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !children.is_empty() {
            return internal_err!("SystemTableExec has no children");
        }
        Ok(self)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !children.is_empty() {
            return internal_err!("SystemTableExec has no children");
        }
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return internal_err!("SystemTableExec has one partition, asked for {partition}");
        }
        let table = self.table;
        let ctx = self.ctx.clone();
        let projection = self.projection.clone();
        let rows = async move {
            let batch = table.scan(&ctx).await.map_err(external)?;
            Ok::<_, DataFusionError>(match &projection {
                Some(p) => batch.project(p)?,
                None => batch,
            })
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema(),
            futures::stream::once(rows),
        )))
    }
}

fn external(e: crate::EngineError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

// Helpers of the tables.

/// Timestamps in milliseconds, UTC.
fn utc_ms() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

fn strings<'a>(values: impl IntoIterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(StringArray::from_iter(values))
}

fn times(values: impl IntoIterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from_iter(values).with_timezone("UTC"))
}

/// The `segment_data` table `table` as SQL, or a relation with `schema` and
/// no rows while it does not exist (no segment was refreshed yet).
fn segment_data(snapshot: &Snapshot, table: &str, schema: &Schema) -> String {
    if snapshot.state.table(SEGMENT_DATA_SCHEMA, table).is_ok() {
        format!("{SEGMENT_DATA_SCHEMA}.\"{table}\"")
    } else {
        empty_relation(schema)
    }
}

/// A relation with `schema` and no rows, as SQL.
fn empty_relation(schema: &Schema) -> String {
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("arrow_cast(NULL, '{}') AS \"{}\"", f.data_type(), f.name()))
        .collect();
    format!("(SELECT {} WHERE false)", columns.join(", "))
}

/// A SQL string literal.
fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use std::ops::Range;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int64Type;
    use bytes::Bytes;
    use futures::TryStreamExt;
    use futures::stream::BoxStream;
    use object_store::path::Path;
    use object_store::{
        CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
        PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
    };

    use super::*;
    use crate::{Engine, EngineConfig, Outcome};

    /// The warehouse store, counting the reads of Delta logs: gets and
    /// listings of paths in a `_delta_log`.
    #[derive(Debug)]
    struct LogReadCounter {
        inner: Arc<dyn ObjectStore>,
        reads: Arc<AtomicUsize>,
    }

    impl LogReadCounter {
        fn count(&self, path: Option<&Path>) {
            if path.is_some_and(|p| p.as_ref().contains("_delta_log")) {
                self.reads.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    impl fmt::Display for LogReadCounter {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "LogReadCounter({})", self.inner)
        }
    }

    #[async_trait]
    impl ObjectStore for LogReadCounter {
        async fn put_opts(
            &self,
            location: &Path,
            payload: PutPayload,
            opts: PutOptions,
        ) -> object_store::Result<PutResult> {
            self.inner.put_opts(location, payload, opts).await
        }

        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: PutMultipartOptions,
        ) -> object_store::Result<Box<dyn MultipartUpload>> {
            self.inner.put_multipart_opts(location, opts).await
        }

        async fn get_opts(
            &self,
            location: &Path,
            options: GetOptions,
        ) -> object_store::Result<GetResult> {
            self.count(Some(location));
            self.inner.get_opts(location, options).await
        }

        async fn get_ranges(
            &self,
            location: &Path,
            ranges: &[Range<u64>],
        ) -> object_store::Result<Vec<Bytes>> {
            self.count(Some(location));
            self.inner.get_ranges(location, ranges).await
        }

        fn delete_stream(
            &self,
            locations: BoxStream<'static, object_store::Result<Path>>,
        ) -> BoxStream<'static, object_store::Result<Path>> {
            self.inner.delete_stream(locations)
        }

        fn list(
            &self,
            prefix: Option<&Path>,
        ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
            self.count(prefix);
            self.inner.list(prefix)
        }

        fn list_with_offset(
            &self,
            prefix: Option<&Path>,
            offset: &Path,
        ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
            self.count(prefix);
            self.inner.list_with_offset(prefix, offset)
        }

        async fn list_with_delimiter(
            &self,
            prefix: Option<&Path>,
        ) -> object_store::Result<ListResult> {
            self.count(prefix);
            self.inner.list_with_delimiter(prefix).await
        }

        async fn copy_opts(
            &self,
            from: &Path,
            to: &Path,
            options: CopyOptions,
        ) -> object_store::Result<()> {
            self.inner.copy_opts(from, to, options).await
        }

        async fn rename_opts(
            &self,
            from: &Path,
            to: &Path,
            options: RenameOptions,
        ) -> object_store::Result<()> {
            self.inner.rename_opts(from, to, options).await
        }
    }

    /// An engine on a new warehouse in `dir` whose Delta log reads are
    /// counted: every Delta table is opened through the store the runtime
    /// has for the warehouse (`Storage::store_for`), wrapped before any is.
    async fn open(dir: &tempfile::TempDir) -> (Arc<Engine>, Arc<AtomicUsize>) {
        let engine = Engine::open(EngineConfig::new(dir.path().to_str().unwrap()))
            .await
            .unwrap();
        let reads = Arc::new(AtomicUsize::new(0));
        // The store `Engine::open` registered for the warehouse.
        engine.runtime().register_object_store(
            engine.warehouse().store_url(),
            Arc::new(LogReadCounter {
                inner: engine.warehouse().store(),
                reads: Arc::clone(&reads),
            }),
        );
        (engine, reads)
    }

    async fn run(session: &crate::Session, sql: &str) -> Vec<RecordBatch> {
        match session.execute(sql, vec![]).await.unwrap() {
            Outcome::Rows { stream, .. } => stream.try_collect().await.unwrap(),
            Outcome::Done { .. } => vec![],
        }
    }

    fn strings_of(batches: &[RecordBatch], column: usize) -> Vec<String> {
        batches
            .iter()
            .flat_map(|b| {
                let c = b.column(column).as_string::<i32>();
                (0..c.len())
                    .map(|i| c.value(i).to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Listing tables (`information_schema.tables`, `Session::tables`, what
    /// Flight SQL `GetTables` runs) opens no Delta log, however many managed
    /// tables there are, and plans no system view; what it lists is
    /// unchanged.
    #[tokio::test]
    async fn listing_tables_reads_no_delta_log() {
        let dir = tempfile::tempdir().unwrap();
        let (engine, reads) = open(&dir).await;
        let session = engine.session("test").unwrap();
        for i in 0..50 {
            run(&session, &format!("CREATE TABLE t_{i} (a INT)")).await;
        }
        // A refreshed segment: the segment_data tables the system views
        // read exist (planning a view would open their logs).
        run(&session, "CREATE TABLE people AS SELECT 'p1' AS profile_id").await;
        run(
            &session,
            "CREATE SEGMENT everyone AS SELECT profile_id FROM people",
        )
        .await;
        run(&session, "REFRESH SEGMENTS").await;
        assert!(reads.load(Ordering::SeqCst) > 0, "the counter counts");

        reads.store(0, Ordering::SeqCst);
        let count = run(&session, "SELECT count(*) FROM information_schema.tables").await;
        assert_eq!(
            reads.load(Ordering::SeqCst),
            0,
            "information_schema.tables read Delta logs"
        );
        let count = count[0].column(0).as_primitive::<Int64Type>().value(0);
        let listed = session.tables(false).await.unwrap();
        assert_eq!(
            reads.load(Ordering::SeqCst),
            0,
            "Session::tables read Delta logs"
        );
        assert_eq!(listed.len() as i64, count);
        let kind = |schema: &str, name: &str| {
            listed
                .iter()
                .find(|t| t.schema == schema && t.name == name)
                .map(|t| t.table_type)
        };
        for i in 0..50 {
            assert_eq!(kind("public", &format!("t_{i}")), Some("TABLE"));
        }
        assert_eq!(kind("segment_data", "everyone"), Some("TABLE"));
        assert_eq!(kind("segment_data", "_history"), Some("TABLE"));
        assert_eq!(kind("segments", "everyone"), Some("VIEW"));

        // The system tables list as before the registry: computed tables
        // are base tables, the views over segment_data are views.
        let system = run(
            &session,
            "SELECT table_name, table_type FROM information_schema.tables \
             WHERE table_schema = 'system' ORDER BY table_name",
        )
        .await;
        assert_eq!(reads.load(Ordering::SeqCst), 0);
        let listed: Vec<(String, String)> = strings_of(&system, 0)
            .into_iter()
            .zip(strings_of(&system, 1))
            .collect();
        let expected = [
            ("activations", "VIEW"),
            ("audit", "BASE TABLE"),
            ("destinations", "BASE TABLE"),
            ("erasures", "BASE TABLE"),
            ("grants", "BASE TABLE"),
            ("ingest_keys", "BASE TABLE"),
            ("queries", "BASE TABLE"),
            ("segment_changes", "VIEW"),
            ("segment_history", "VIEW"),
            ("segment_overlap", "VIEW"),
            ("segment_versions", "BASE TABLE"),
            ("segments", "BASE TABLE"),
            ("table_history", "BASE TABLE"),
            ("users", "BASE TABLE"),
            ("workers", "BASE TABLE"),
        ];
        assert_eq!(
            listed,
            expected
                .iter()
                .map(|(n, t)| (n.to_string(), t.to_string()))
                .collect::<Vec<_>>()
        );
    }

    /// `system.table_history` is computed when its scan executes: planning
    /// a statement that reads it (logically and physically) reads no log;
    /// running it gives every commit of every managed table.
    #[tokio::test]
    async fn table_history_is_computed_when_scanned() {
        let dir = tempfile::tempdir().unwrap();
        let (engine, reads) = open(&dir).await;
        let session = engine.session("test").unwrap();
        run(&session, "CREATE TABLE a (x INT)").await;
        run(&session, "INSERT INTO a VALUES (1), (2)").await;
        run(&session, "CREATE TABLE b AS VALUES (1)").await;

        reads.store(0, Ordering::SeqCst);
        let sql = "SELECT table_schema, table_name, version, operation, user, rows_added \
                   FROM system.table_history";
        let prepared = session.prepare(sql, &[]).await.unwrap();
        assert!(prepared.planned.is_some());
        assert_eq!(reads.load(Ordering::SeqCst), 0, "logical planning");
        let Outcome::Rows { stream, .. } = session.execute(sql, vec![]).await.unwrap() else {
            panic!("not a query");
        };
        assert_eq!(reads.load(Ordering::SeqCst), 0, "physical planning");
        let batches: Vec<RecordBatch> = stream.try_collect().await.unwrap();
        assert!(reads.load(Ordering::SeqCst) > 0, "the logs were read");

        #[derive(Debug)]
        struct Commit {
            table: String,
            version: i64,
            operation: String,
            user: Option<String>,
            rows_added: Option<i64>,
        }
        let mut rows = vec![];
        for b in &batches {
            let schema = b.column(0).as_string::<i32>();
            let table = b.column(1).as_string::<i32>();
            let version = b.column(2).as_primitive::<Int64Type>();
            let operation = b.column(3).as_string::<i32>();
            let user = b.column(4).as_string::<i32>();
            let added = b.column(5).as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                assert_eq!(schema.value(i), "public");
                rows.push(Commit {
                    table: table.value(i).to_string(),
                    version: version.value(i),
                    operation: operation.value(i).to_string(),
                    user: user.is_valid(i).then(|| user.value(i).to_string()),
                    rows_added: added.is_valid(i).then(|| added.value(i)),
                });
            }
        }
        let a: Vec<&Commit> = rows.iter().filter(|r| r.table == "a").collect();
        let b: Vec<&Commit> = rows.iter().filter(|r| r.table == "b").collect();
        // Tables in name order, each newest first.
        assert_eq!(rows.len(), a.len() + b.len());
        assert!(
            rows.iter().position(|r| r.table == "b") > rows.iter().rposition(|r| r.table == "a")
        );
        assert!(a.windows(2).all(|w| w[0].version == w[1].version + 1));
        let (newest, oldest) = (a[0], a[a.len() - 1]);
        assert_eq!(
            (oldest.version, oldest.operation.as_str()),
            (0, "CREATE TABLE"),
            "{a:?}"
        );
        assert_eq!(
            (newest.operation.as_str(), newest.rows_added),
            ("WRITE", Some(2)),
            "{a:?}"
        );
        assert_eq!(newest.user.as_deref(), Some("test"));
        assert_eq!(b[b.len() - 1].version, 0);
        assert!(b.iter().any(|r| r.rows_added == Some(1)), "{b:?}");

        // The plan is the scan of the system table itself.
        let explain = run(&session, &format!("EXPLAIN {sql}")).await;
        let plans = strings_of(&explain, 1).join("\n");
        assert!(
            plans.contains("SystemTableExec: table=system.table_history"),
            "{plans}"
        );
    }

    /// One line per table, names unique.
    #[test]
    fn registry() {
        let mut names: Vec<&str> = REGISTRY.iter().map(|e| e.name()).collect();
        names.sort();
        let count = names.len();
        names.dedup();
        assert_eq!(names.len(), count, "duplicate names");
        assert_eq!(names.len(), 15);
    }
}
