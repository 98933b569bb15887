//! `stitch_identities(source [, max_records_per_identifier])`: identity
//! stitching as a table function.
//!
//! # How it plugs into DataFusion
//!
//! * [`StitchIdentitiesFunc::call_with_args`] (DataFusion 55's
//!   [`TableFunctionArgs`] gives the arguments, already simplified, and the
//!   calling [`Session`]) validates the literal arguments, checks the source
//!   SQL parses, and returns a [`StitchTable`] provider. Its schema is fixed,
//!   so no planning happens there.
//! * [`StitchTable::scan`] (async, with the session) plans the source: a bare
//!   table name becomes `SELECT record_id, id_type, id_value FROM <name>`,
//!   anything else is planned as a query. The three columns are picked by name
//!   and the resulting physical plan becomes the single child of a
//!   [`StitchIdentitiesExec`].
//! * [`StitchIdentitiesExec`] requires a single input partition (it coalesces
//!   its child when needed), consumes the whole input into an
//!   [`IdentityGraphBuilder`] (in chunks of whole batches, interning records
//!   and identifiers on two threads when the session has more than one
//!   target partition), computes the components and emits them in
//!   batches of the session batch size. Dropping its stream stops the work.
//!   It is shipped to workers by [`crate::SeglakeCodec`] (mode and maximum in
//!   the payload, the child through datafusion-proto's own children).
//!
//! `stitch_dropped_identifiers` (see [`crate::stitch_dropped_identifiers`])
//! shares all of this with another output ([`StitchMode::DroppedIdentifiers`]).

use std::fmt;
use std::sync::{Arc, LazyLock};

use arrow::array::{
    Array, ArrayRef, AsArray, LargeStringArray, RecordBatch, StringArray, StringBuilder,
    StringViewArray, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{
    Column, ScalarValue, exec_err, internal_err, plan_datafusion_err, plan_err,
};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{
    Documentation, Expr, LogicalPlan, LogicalPlanBuilder, TableType, cast,
};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_expr::expressions::Column as PhysicalColumn;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, ExecutionPlanProperties,
    Partitioning, PhysicalExpr, PlanProperties, ReplaceChildrenOptions, SendableRecordBatchStream,
};
use futures::{StreamExt, TryStreamExt};

use crate::docs::SECTION_TABLE;
use crate::identity_graph::{ByteColumn, IdentityGraph, IdentityGraphBuilder, Rows};
use crate::strings::is_string_type;

/// Name of the table function.
pub const NAME: &str = "stitch_identities";

/// Default of `max_records_per_identifier`.
pub const DEFAULT_MAX_RECORDS_PER_IDENTIFIER: u64 = 100;

/// The input columns, in this order.
pub const INPUT_COLUMNS: [&str; 3] = ["record_id", "id_type", "id_value"];

/// What a stitching node outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StitchMode {
    /// `(record_id, person_id, cluster_size)`: `stitch_identities`.
    Persons,
    /// `(id_type, id_value, record_count)`: `stitch_dropped_identifiers`.
    DroppedIdentifiers,
}

impl StitchMode {
    /// The output schema of this mode.
    pub fn schema(self) -> SchemaRef {
        static PERSONS: LazyLock<SchemaRef> = LazyLock::new(|| {
            Arc::new(Schema::new(vec![
                Field::new("record_id", DataType::Utf8, false),
                Field::new("person_id", DataType::Utf8, false),
                Field::new("cluster_size", DataType::Int64, false),
            ]))
        });
        static DROPPED: LazyLock<SchemaRef> = LazyLock::new(|| {
            Arc::new(Schema::new(vec![
                Field::new("id_type", DataType::Utf8, false),
                Field::new("id_value", DataType::Utf8, false),
                Field::new("record_count", DataType::Int64, false),
            ]))
        });
        match self {
            StitchMode::Persons => Arc::clone(&PERSONS),
            StitchMode::DroppedIdentifiers => Arc::clone(&DROPPED),
        }
    }

    /// The SQL name of the table function of this mode.
    pub fn function_name(self) -> &'static str {
        match self {
            StitchMode::Persons => NAME,
            StitchMode::DroppedIdentifiers => crate::stitch_dropped_identifiers::NAME,
        }
    }
}

impl fmt::Display for StitchMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StitchMode::Persons => "persons",
            StitchMode::DroppedIdentifiers => "dropped_identifiers",
        })
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        SECTION_TABLE,
        "Identity stitching: groups the records that belong to the same person. \
         `source` returns rows `(record_id, id_type, id_value)` (all strings). Two records \
         belong to the same person when they share an identifier `(id_type, id_value)`, \
         directly or through other records (connected components). \
         Returns one row per distinct `record_id`: `(record_id VARCHAR, person_id VARCHAR, \
         cluster_size BIGINT)`, where `person_id` is the smallest `record_id` (byte order) \
         of the cluster, stable whatever the input order or partitioning, and \
         `cluster_size` the number of records of the cluster. \
         A row with a NULL `record_id` is ignored; a NULL or empty `id_value` (or a NULL \
         `id_type`) creates no link, so a record without a usable identifier is its own \
         cluster of size 1. Over-merge guard: an identifier shared by more than \
         `max_records_per_identifier` distinct records (a shared device, a placeholder \
         e-mail...) is treated as non-identifying and creates no link; \
         `stitch_dropped_identifiers` lists them. The rows come out in no particular order.",
        "stitch_identities(source [, max_records_per_identifier])",
    )
    .with_sql_example(
        r#"```sql
> CREATE TABLE ids(record_id VARCHAR, id_type VARCHAR, id_value VARCHAR) AS VALUES
    ('crm-2', 'email', 'ann@example.com'),
    ('web-9', 'email', 'ann@example.com'),
    ('web-9', 'phone', '+33612345678'),
    ('pos-4', 'phone', '+33612345678'),
    ('crm-7', 'email', 'bob@example.com');
> SELECT * FROM stitch_identities('ids') ORDER BY record_id;
+-----------+-----------+--------------+
| record_id | person_id | cluster_size |
+-----------+-----------+--------------+
| crm-2     | crm-2     | 3            |
| crm-7     | crm-7     | 1            |
| pos-4     | crm-2     | 3            |
| web-9     | crm-2     | 3            |
+-----------+-----------+--------------+
> SELECT count(DISTINCT person_id) FROM stitch_identities(
    'SELECT customer_id AS record_id, ''email'' AS id_type, normalize_email(email) AS id_value
     FROM customers', 50);
```"#,
    )
    .with_argument(
        "source",
        "A string literal: a table name (read as `SELECT record_id, id_type, id_value FROM \
         <name>`), or a query returning the columns `record_id`, `id_type` and `id_value` \
         (Utf8, LargeUtf8 or Utf8View; other columns are ignored). Quotes inside the query \
         are doubled, as in any SQL string literal.",
    )
    .with_argument(
        "max_records_per_identifier",
        "Optional integer literal >= 1, default 100: an identifier shared by more distinct \
         records than this creates no link.",
    )
    .with_related_udf(crate::stitch_dropped_identifiers::NAME)
    .build()
});

/// Documentation of `stitch_identities`.
pub fn documentation() -> &'static Documentation {
    &DOCUMENTATION
}

/// Parses the arguments of both stitching table functions.
pub(crate) fn parse_args(name: &str, exprs: &[Expr]) -> Result<(String, u64)> {
    let usage = || format!("{name}(source [, max_records_per_identifier])");
    let (source, max) = match exprs {
        [source] => (source, None),
        [source, max] => (source, Some(max)),
        _ => {
            return plan_err!(
                "{name} expects 1 or 2 arguments, got {}: {}",
                exprs.len(),
                usage()
            );
        }
    };
    let source = match source {
        Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)),
            _,
        ) => s.trim().to_string(),
        other => {
            return plan_err!(
                "{name}: source must be a string literal (a table name or a query), got {other}"
            );
        }
    };
    if source.is_empty() {
        return plan_err!("{name}: source must not be empty");
    }
    let max = match max {
        None => DEFAULT_MAX_RECORDS_PER_IDENTIFIER,
        Some(Expr::Literal(value, _)) if value.data_type().is_integer() && !value.is_null() => {
            let ScalarValue::Int64(Some(v)) = value.cast_to(&DataType::Int64)? else {
                return plan_err!("{name}: invalid max_records_per_identifier {value}");
            };
            if v < 1 {
                return plan_err!("{name}: max_records_per_identifier must be >= 1, got {v}");
            }
            v as u64
        }
        Some(other) => {
            return plan_err!(
                "{name}: max_records_per_identifier must be an integer literal, got {other}"
            );
        }
    };
    Ok((source, max))
}

/// The SQL planned for `source`: a query as is, a table name wrapped in a
/// `SELECT` of the three input columns.
pub fn source_sql(source: &str) -> String {
    let source = source.trim();
    let first_word: String = source
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_lowercase();
    let is_query = source.starts_with('(')
        || matches!(first_word.as_str(), "select" | "with" | "values")
            && source[first_word.len()..]
                .chars()
                .next()
                .is_none_or(|c| c.is_whitespace() || c == '(');
    if is_query {
        source.to_string()
    } else {
        format!("SELECT {} FROM {source}", INPUT_COLUMNS.join(", "))
    }
}

/// `stitch_identities` table function.
#[derive(Debug, Default)]
pub struct StitchIdentitiesFunc;

impl StitchIdentitiesFunc {
    pub fn new() -> Self {
        Self
    }
}

/// Shared by both stitching table functions.
pub(crate) fn call_stitch(
    mode: StitchMode,
    args: TableFunctionArgs<'_, '_>,
) -> Result<Arc<dyn TableProvider>> {
    let (source, max) = parse_args(mode.function_name(), args.exprs())?;
    // Syntax errors surface at the call rather than at execution planning.
    if let Some(state) = args.session().as_any().downcast_ref::<SessionState>() {
        let dialect = state.config().options().sql_parser.dialect;
        state
            .sql_to_statement(&source_sql(&source), &dialect)
            .map_err(|e| {
                plan_datafusion_err!("{}: invalid source {source:?}: {e}", mode.function_name())
            })?;
    }
    Ok(Arc::new(StitchTable::new(source, max, mode)))
}

impl TableFunctionImpl for StitchIdentitiesFunc {
    fn call_with_args(&self, args: TableFunctionArgs<'_, '_>) -> Result<Arc<dyn TableProvider>> {
        call_stitch(StitchMode::Persons, args)
    }
}

/// The table provider returned by the stitching table functions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StitchTable {
    source: String,
    max_records_per_identifier: u64,
    mode: StitchMode,
}

impl StitchTable {
    pub fn new(
        source: impl Into<String>,
        max_records_per_identifier: u64,
        mode: StitchMode,
    ) -> Self {
        Self {
            source: source.into(),
            max_records_per_identifier,
            mode,
        }
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn max_records_per_identifier(&self) -> u64 {
        self.max_records_per_identifier
    }

    pub fn mode(&self) -> StitchMode {
        self.mode
    }

    /// The logical plan of the source, reduced to the three input columns.
    async fn source_plan(&self, state: &SessionState) -> Result<LogicalPlan> {
        let name = self.mode.function_name();
        let sql = source_sql(&self.source);
        let plan = state.create_logical_plan(&sql).await?;
        if !matches!(
            plan,
            LogicalPlan::Projection(_)
                | LogicalPlan::Filter(_)
                | LogicalPlan::Window(_)
                | LogicalPlan::Aggregate(_)
                | LogicalPlan::Sort(_)
                | LogicalPlan::Join(_)
                | LogicalPlan::Repartition(_)
                | LogicalPlan::Union(_)
                | LogicalPlan::TableScan(_)
                | LogicalPlan::EmptyRelation(_)
                | LogicalPlan::SubqueryAlias(_)
                | LogicalPlan::Limit(_)
                | LogicalPlan::Values(_)
                | LogicalPlan::Distinct(_)
                | LogicalPlan::RecursiveQuery(_)
                | LogicalPlan::Unnest(_)
                | LogicalPlan::Extension(_)
        ) {
            return plan_err!("{name}: source must be a table name or a query, got: {sql}");
        }
        let schema = Arc::clone(plan.schema());
        let mut exprs = Vec::with_capacity(INPUT_COLUMNS.len());
        for wanted in INPUT_COLUMNS {
            let matches: Vec<usize> = schema
                .fields()
                .iter()
                .enumerate()
                .filter(|(_, f)| f.name() == wanted)
                .map(|(i, _)| i)
                .collect();
            let index = match matches.as_slice() {
                [i] => *i,
                [] => {
                    return plan_err!(
                        "{name}: the source must return the columns record_id, id_type, \
                         id_value; column {wanted} is missing (columns: {})",
                        schema
                            .fields()
                            .iter()
                            .map(|f| f.name().as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
                _ => return plan_err!("{name}: the source returns column {wanted} more than once"),
            };
            let (qualifier, field) = schema.qualified_field(index);
            let column = Expr::Column(Column::new(qualifier.cloned(), field.name()));
            let expr = match field.data_type() {
                t if is_string_type(t) => column,
                DataType::Null => cast(column, DataType::Utf8),
                t => {
                    return plan_err!(
                        "{name}: column {wanted} must be a string (Utf8, LargeUtf8 or Utf8View), \
                         got {t}; CAST it to VARCHAR in the source query"
                    );
                }
            };
            exprs.push(expr.alias(wanted));
        }
        LogicalPlanBuilder::from(plan).project(exprs)?.build()
    }
}

#[async_trait]
impl TableProvider for StitchTable {
    fn schema(&self) -> SchemaRef {
        self.mode.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(state) = state.as_any().downcast_ref::<SessionState>() else {
            return plan_err!(
                "{} needs a DataFusion SessionState to plan its source",
                self.mode.function_name()
            );
        };
        let source = self.source_plan(state).await?;
        let input = state.create_physical_plan(&source).await?;
        let exec: Arc<dyn ExecutionPlan> = Arc::new(StitchIdentitiesExec::try_new(
            input,
            self.mode,
            self.max_records_per_identifier,
        )?);
        let schema = exec.schema();
        match projection {
            Some(p) if !p.iter().copied().eq(0..schema.fields().len()) => {
                let exprs: Vec<(Arc<dyn PhysicalExpr>, String)> = p
                    .iter()
                    .map(|&i| {
                        let name = schema.field(i).name().clone();
                        (
                            Arc::new(PhysicalColumn::new(&name, i)) as Arc<dyn PhysicalExpr>,
                            name,
                        )
                    })
                    .collect();
                Ok(Arc::new(ProjectionExec::try_new(exprs, exec)?))
            }
            _ => Ok(exec),
        }
    }
}

/// The execution plan of identity stitching: consumes its whole input
/// `(record_id, id_type, id_value)` and emits the stitched records (or the
/// dropped identifiers).
#[derive(Debug)]
pub struct StitchIdentitiesExec {
    input: Arc<dyn ExecutionPlan>,
    mode: StitchMode,
    max_records_per_identifier: u64,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl StitchIdentitiesExec {
    /// A node over `input`, whose first three columns are the string columns
    /// `record_id, id_type, id_value`.
    pub fn try_new(
        input: Arc<dyn ExecutionPlan>,
        mode: StitchMode,
        max_records_per_identifier: u64,
    ) -> Result<Self> {
        let input_schema = input.schema();
        if input_schema.fields().len() < INPUT_COLUMNS.len()
            || !input_schema
                .fields()
                .iter()
                .take(INPUT_COLUMNS.len())
                .all(|f| is_string_type(f.data_type()))
        {
            return plan_err!(
                "StitchIdentitiesExec expects an input of three string columns \
                 (record_id, id_type, id_value), got {input_schema}"
            );
        }
        if max_records_per_identifier < 1 {
            return plan_err!("max_records_per_identifier must be >= 1");
        }
        let properties = PlanProperties::new(
            EquivalenceProperties::new(mode.schema()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        Ok(Self {
            input,
            mode,
            max_records_per_identifier,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    pub fn input(&self) -> &Arc<dyn ExecutionPlan> {
        &self.input
    }

    pub fn mode(&self) -> StitchMode {
        self.mode
    }

    pub fn max_records_per_identifier(&self) -> u64 {
        self.max_records_per_identifier
    }
}

impl DisplayAs for StitchIdentitiesExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => write!(
                f,
                "StitchIdentitiesExec: mode={}, max_records_per_identifier={}",
                self.mode, self.max_records_per_identifier
            ),
            DisplayFormatType::TreeRender => write!(
                f,
                "mode={}\nmax_records_per_identifier={}",
                self.mode, self.max_records_per_identifier
            ),
        }
    }
}

impl ExecutionPlan for StitchIdentitiesExec {
    fn name(&self) -> &str {
        "StitchIdentitiesExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::SinglePartition]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![false]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return internal_err!(
                "StitchIdentitiesExec expects 1 child, got {}",
                children.len()
            );
        }
        Ok(Arc::new(Self::try_new(
            children.swap_remove(0),
            self.mode,
            self.max_records_per_identifier,
        )?))
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(
                datafusion::physical_plan::ChildrenPropertiesMode::Recompute,
            ),
        )
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return internal_err!("StitchIdentitiesExec has one partition, asked for {partition}");
        }
        let mut input = if self.input.output_partitioning().partition_count() == 1 {
            self.input.execute(0, Arc::clone(&context))?
        } else {
            CoalescePartitionsExec::new(Arc::clone(&self.input)).execute(0, Arc::clone(&context))?
        };
        let schema = self.schema();
        let mode = self.mode;
        let max = self.max_records_per_identifier;
        let batch_size = context.session_config().batch_size().max(1);
        let baseline = BaselineMetrics::new(&self.metrics, partition);
        let input_rows = MetricBuilder::new(&self.metrics).counter("input_rows", partition);
        let dropped_identifiers =
            MetricBuilder::new(&self.metrics).counter("dropped_identifiers", partition);
        let reservation =
            MemoryConsumer::new("StitchIdentitiesExec").register(context.memory_pool());

        // Interning is split over two threads when the session may use
        // more than one core (see `IdentityGraphBuilder::add_chunk`).
        let parallel = context.session_config().target_partitions() > 1;

        let out_schema = Arc::clone(&schema);
        let graph = futures::stream::once(async move {
            let mut builder = IdentityGraphBuilder::new();
            let mut pending = Vec::new();
            let mut pending_rows = 0;
            loop {
                let batch = input.next().await.transpose()?;
                let done = batch.is_none();
                if let Some(batch) = batch {
                    input_rows.add(batch.num_rows());
                    pending_rows += batch.num_rows();
                    pending.push(batch);
                }
                if pending_rows >= CHUNK_ROWS || (done && !pending.is_empty()) {
                    let _timer = baseline.elapsed_compute().timer();
                    add_batches(&mut builder, &pending, parallel)?;
                    pending.clear();
                    pending_rows = 0;
                    reservation.try_resize(builder.memory_size())?;
                }
                if done {
                    break;
                }
            }
            let graph = {
                let _timer = baseline.elapsed_compute().timer();
                builder.finish(max)
            };
            dropped_identifiers.add(graph.num_dropped());
            Ok::<_, DataFusionError>((graph, baseline, reservation))
        });
        let batches = graph
            .map_ok(move |(graph, baseline, reservation)| {
                let total = match mode {
                    StitchMode::Persons => graph.num_records(),
                    StitchMode::DroppedIdentifiers => graph.num_dropped(),
                };
                let schema = Arc::clone(&out_schema);
                futures::stream::iter((0..total).step_by(batch_size).map(move |start| {
                    // keep the reservation alive as long as the graph
                    let _ = &reservation;
                    let _timer = baseline.elapsed_compute().timer();
                    let len = batch_size.min(total - start);
                    let batch = output_batch(&graph, mode, &schema, start, len);
                    if let Ok(batch) = &batch {
                        baseline.record_output(batch.num_rows());
                    }
                    batch
                }))
            })
            .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// A string column of any layout.
enum StrColumn<'a> {
    Utf8(&'a StringArray),
    Large(&'a LargeStringArray),
    View(&'a StringViewArray),
}

impl<'a> StrColumn<'a> {
    fn new(array: &'a ArrayRef) -> Result<Self> {
        Ok(match array.data_type() {
            DataType::Utf8 => StrColumn::Utf8(array.as_string::<i32>()),
            DataType::LargeUtf8 => StrColumn::Large(array.as_string::<i64>()),
            DataType::Utf8View => StrColumn::View(array.as_string_view()),
            t => return exec_err!("stitch_identities: expected a string column, got {t}"),
        })
    }
}

impl ByteColumn for StrColumn<'_> {
    fn len(&self) -> usize {
        match self {
            StrColumn::Utf8(a) => a.len(),
            StrColumn::Large(a) => a.len(),
            StrColumn::View(a) => a.len(),
        }
    }

    #[inline]
    fn value(&self, i: usize) -> Option<&[u8]> {
        match self {
            StrColumn::Utf8(a) => a.is_valid(i).then(|| a.value(i).as_bytes()),
            StrColumn::Large(a) => a.is_valid(i).then(|| a.value(i).as_bytes()),
            StrColumn::View(a) => a.is_valid(i).then(|| a.value(i).as_bytes()),
        }
    }
}

/// Input rows are fed to the builder in chunks of about this many rows
/// (whole batches), so that a parallel chunk's thread spawn is amortised.
const CHUNK_ROWS: usize = 65_536;

/// Chunks smaller than this (the end of the input, small inputs) are
/// interned on one thread.
const PARALLEL_MIN_ROWS: usize = 16_384;

/// Feeds input batches (`record_id, id_type, id_value` first) to `builder`
/// as one chunk.
fn add_batches(
    builder: &mut IdentityGraphBuilder,
    batches: &[RecordBatch],
    parallel: bool,
) -> Result<()> {
    let mut chunk = Vec::with_capacity(batches.len());
    let mut rows = 0;
    for batch in batches {
        if batch.num_columns() < 3 {
            return exec_err!(
                "stitch_identities: expected 3 input columns, got {}",
                batch.num_columns()
            );
        }
        chunk.push(Rows {
            record_id: StrColumn::new(batch.column(0))?,
            id_type: StrColumn::new(batch.column(1))?,
            id_value: StrColumn::new(batch.column(2))?,
        });
        rows += batch.num_rows();
    }
    builder.add_chunk(&chunk, parallel && rows >= PARALLEL_MIN_ROWS);
    Ok(())
}

fn utf8(bytes: &[u8]) -> Result<&str> {
    std::str::from_utf8(bytes).map_err(|e| DataFusionError::Internal(format!("invalid UTF-8: {e}")))
}

/// Rows `start..start + len` of the output of `mode`.
fn output_batch(
    graph: &IdentityGraph,
    mode: StitchMode,
    schema: &SchemaRef,
    start: usize,
    len: usize,
) -> Result<RecordBatch> {
    let mut a = StringBuilder::with_capacity(len, len * 16);
    let mut b = StringBuilder::with_capacity(len, len * 16);
    let mut c = UInt64Builder::with_capacity(len);
    for i in start..start + len {
        let (x, y, n) = match mode {
            StitchMode::Persons => graph.record(i),
            StitchMode::DroppedIdentifiers => graph.dropped(i),
        };
        a.append_value(utf8(x)?);
        b.append_value(utf8(y)?);
        c.append_value(n);
    }
    let counts = arrow::compute::cast(&c.finish(), &DataType::Int64)?;
    let columns: Vec<ArrayRef> = vec![Arc::new(a.finish()), Arc::new(b.finish()), counts];
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow::array::Int64Array;
    use datafusion::physical_plan::{collect, displayable};
    use datafusion::prelude::{SessionConfig, SessionContext};
    use rand::rngs::StdRng;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};

    use super::*;

    #[test]
    fn source_sql_detection() {
        assert_eq!(
            source_sql("ids"),
            "SELECT record_id, id_type, id_value FROM ids"
        );
        assert_eq!(
            source_sql("my_schema.\"Ids\""),
            "SELECT record_id, id_type, id_value FROM my_schema.\"Ids\""
        );
        assert_eq!(source_sql(" SELECT 1 "), "SELECT 1");
        assert_eq!(source_sql("select\n1"), "select\n1");
        assert_eq!(
            source_sql("WITH x AS (SELECT 1) SELECT * FROM x"),
            "WITH x AS (SELECT 1) SELECT * FROM x"
        );
        assert_eq!(source_sql("(SELECT 1)"), "(SELECT 1)");
        assert_eq!(source_sql("VALUES (1)"), "VALUES (1)");
        // table names starting like keywords
        assert_eq!(
            source_sql("selection"),
            "SELECT record_id, id_type, id_value FROM selection"
        );
        assert_eq!(
            source_sql("values_t"),
            "SELECT record_id, id_type, id_value FROM values_t"
        );
    }

    async fn ctx_with_ids(
        config: SessionConfig,
        rows: &[(Option<&str>, Option<&str>, Option<&str>)],
    ) -> SessionContext {
        let ctx = crate::test_util::ctx_with_config(config);
        let schema = Arc::new(Schema::new(vec![
            Field::new("record_id", DataType::Utf8, true),
            Field::new("id_type", DataType::Utf8, true),
            Field::new("id_value", DataType::Utf8, true),
        ]));
        let col = |i: usize| -> ArrayRef {
            Arc::new(StringArray::from(
                rows.iter().map(|r| [r.0, r.1, r.2][i]).collect::<Vec<_>>(),
            ))
        };
        let batch =
            RecordBatch::try_new(Arc::clone(&schema), vec![col(0), col(1), col(2)]).unwrap();
        // split in several partitions
        let mut partitions = vec![];
        let n = batch.num_rows();
        let parts = 3.min(n.max(1));
        for p in 0..parts {
            let start = p * n / parts;
            let end = (p + 1) * n / parts;
            partitions.push(vec![batch.slice(start, end - start)]);
        }
        let table = datafusion::datasource::MemTable::try_new(schema, partitions).unwrap();
        ctx.register_table("ids", Arc::new(table)).unwrap();
        ctx
    }

    async fn query(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
        ctx.sql(sql).await?.collect().await
    }

    fn persons(batches: &[RecordBatch]) -> BTreeMap<String, (String, i64)> {
        let mut out = BTreeMap::new();
        for b in batches {
            let r = b.column(0).as_string::<i32>();
            let p = b.column(1).as_string::<i32>();
            let c = b.column(2).as_any().downcast_ref::<Int64Array>().unwrap();
            for i in 0..b.num_rows() {
                assert!(
                    out.insert(r.value(i).to_string(), (p.value(i).to_string(), c.value(i)))
                        .is_none()
                );
            }
        }
        out
    }

    const ROWS: &[(Option<&str>, Option<&str>, Option<&str>)] = &[
        (Some("crm-2"), Some("email"), Some("ann@example.com")),
        (Some("web-9"), Some("email"), Some("ann@example.com")),
        (Some("web-9"), Some("phone"), Some("+33612345678")),
        (Some("pos-4"), Some("phone"), Some("+33612345678")),
        (Some("crm-7"), Some("email"), Some("bob@example.com")),
        (Some("crm-8"), Some("email"), None),
        (Some("crm-9"), Some("email"), Some("")),
        (None, Some("email"), Some("bob@example.com")),
        (Some("a-1"), Some("device"), Some("kiosk")),
        (Some("a-2"), Some("device"), Some("kiosk")),
        (Some("a-3"), Some("device"), Some("kiosk")),
    ];

    #[tokio::test]
    async fn stitches_a_table_and_a_query() {
        let ctx = ctx_with_ids(SessionConfig::new().with_target_partitions(4), ROWS).await;
        let got = persons(
            &query(&ctx, "SELECT * FROM stitch_identities('ids')")
                .await
                .unwrap(),
        );
        let expected: BTreeMap<String, (String, i64)> = [
            ("crm-2", "crm-2", 3),
            ("web-9", "crm-2", 3),
            ("pos-4", "crm-2", 3),
            ("crm-7", "crm-7", 1),
            ("crm-8", "crm-8", 1),
            ("crm-9", "crm-9", 1),
            ("a-1", "a-1", 3),
            ("a-2", "a-1", 3),
            ("a-3", "a-1", 3),
        ]
        .into_iter()
        .map(|(a, b, c)| (a.to_string(), (b.to_string(), c)))
        .collect();
        assert_eq!(got, expected);

        // guard at 2: the kiosk device (3 records) creates no link
        let got = persons(
            &query(
                &ctx,
                "SELECT * FROM stitch_identities('SELECT id_value, record_id, id_type FROM ids WHERE id_type <> ''phone''', 2)",
            )
            .await
            .unwrap(),
        );
        assert_eq!(got["a-2"], ("a-2".to_string(), 1));
        assert_eq!(got["web-9"], ("crm-2".to_string(), 2));
        // pos-4 only has a phone: filtered out of the source
        assert!(!got.contains_key("pos-4"));

        let dropped = query(&ctx, "SELECT * FROM stitch_dropped_identifiers('ids', 2)")
            .await
            .unwrap();
        let rows: usize = dropped.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, 1);
        assert_eq!(dropped[0].column(1).as_string::<i32>().value(0), "kiosk");

        // projection and aggregates on top
        let batches = query(
            &ctx,
            "SELECT count(DISTINCT person_id) AS n FROM stitch_identities('ids')",
        )
        .await
        .unwrap();
        assert_eq!(
            ScalarValue::try_from_array(batches[0].column(0), 0).unwrap(),
            ScalarValue::Int64(Some(5))
        );
        let batches = query(
            &ctx,
            "SELECT cluster_size FROM stitch_identities('ids') WHERE record_id = 'pos-4'",
        )
        .await
        .unwrap();
        assert_eq!(
            ScalarValue::try_from_array(batches[0].column(0), 0).unwrap(),
            ScalarValue::Int64(Some(3))
        );
    }

    #[tokio::test]
    async fn string_layouts_and_null_columns() {
        let ctx = crate::test_util::ctx();
        let got = persons(
            &query(
                &ctx,
                "SELECT * FROM stitch_identities('SELECT arrow_cast(r, ''Utf8View'') AS record_id, \
                 arrow_cast(t, ''LargeUtf8'') AS id_type, v AS id_value \
                 FROM (VALUES (''b'', ''k'', ''1''), (''a'', ''k'', ''1''), (''c'', ''k'', NULL)) AS x(r, t, v)')",
            )
            .await
            .unwrap(),
        );
        assert_eq!(got["b"], ("a".to_string(), 2));
        assert_eq!(got["c"], ("c".to_string(), 1));
        let got = persons(
            &query(&ctx, "SELECT * FROM stitch_identities('SELECT ''x'' AS record_id, NULL AS id_type, NULL AS id_value')")
                .await
                .unwrap(),
        );
        assert_eq!(got["x"], ("x".to_string(), 1));
        // empty input
        let batches = query(
            &ctx,
            "SELECT * FROM stitch_identities('SELECT ''x'' AS record_id, ''t'' AS id_type, ''v'' AS id_value WHERE false')",
        )
        .await
        .unwrap();
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
    }

    #[tokio::test]
    async fn argument_and_source_errors() {
        let ctx = ctx_with_ids(SessionConfig::new(), ROWS).await;
        for (sql, expected) in [
            (
                "SELECT * FROM stitch_identities()",
                "expects 1 or 2 arguments",
            ),
            ("SELECT * FROM stitch_identities('ids', 0)", "must be >= 1"),
            (
                "SELECT * FROM stitch_identities('ids', 'x')",
                "integer literal",
            ),
            ("SELECT * FROM stitch_identities(42)", "string literal"),
            ("SELECT * FROM stitch_identities('')", "must not be empty"),
            (
                "SELECT * FROM stitch_identities('ids', 1, 2)",
                "expects 1 or 2 arguments",
            ),
            (
                "SELECT * FROM stitch_identities('SELECT (((')",
                "invalid source",
            ),
            (
                "SELECT * FROM stitch_identities('no_such_table')",
                "no_such_table",
            ),
            (
                "SELECT * FROM stitch_identities('SELECT record_id, id_type FROM ids')",
                "id_value is missing",
            ),
            (
                "SELECT * FROM stitch_identities('SELECT 1 AS record_id, id_type, id_value FROM ids')",
                "must be a string",
            ),
            (
                "SELECT * FROM stitch_dropped_identifiers('ids', -5)",
                "must be >= 1",
            ),
        ] {
            let err = match ctx.sql(sql).await {
                Ok(df) => df.collect().await.map(|_| ()).unwrap_err(),
                Err(e) => e,
            };
            assert!(err.to_string().contains(expected), "{sql}: {err}");
        }
    }

    #[tokio::test]
    async fn plan_shape_and_batch_size() {
        let ctx = ctx_with_ids(
            SessionConfig::new()
                .with_target_partitions(3)
                .with_batch_size(2),
            ROWS,
        )
        .await;
        let df = ctx
            .sql("SELECT * FROM stitch_identities('ids', 7)")
            .await
            .unwrap();
        let plan = df.create_physical_plan().await.unwrap();
        let text = displayable(plan.as_ref()).indent(false).to_string();
        // the source is coalesced to the single partition the node requires
        assert!(text.contains("  CoalescePartitionsExec"), "{text}");
        assert!(
            text.contains("StitchIdentitiesExec: mode=persons, max_records_per_identifier=7"),
            "{text}"
        );
        let batches = collect(plan, ctx.task_ctx()).await.unwrap();
        assert_eq!(batches.len(), 5); // 9 records in batches of 2
        assert!(batches.iter().all(|b| b.num_rows() <= 2));
    }

    /// Dropping the output stream while the input is still being consumed
    /// stops the work (the input is an endless stream).
    #[tokio::test]
    async fn cancellation() {
        let ctx = crate::test_util::ctx();
        let df = ctx
            .sql(
                "SELECT * FROM stitch_identities('SELECT CAST(value AS VARCHAR) AS record_id, ''k'' AS id_type, \
                 CAST(value % 1000 AS VARCHAR) AS id_value FROM generate_series(1, 9223372036854775806)')",
            )
            .await
            .unwrap();
        let mut stream = df.execute_stream().await.unwrap();
        let next = tokio::time::timeout(std::time::Duration::from_millis(300), stream.next()).await;
        assert!(
            next.is_err(),
            "the stream should still be consuming its input"
        );
        drop(stream);
    }

    #[tokio::test]
    async fn shuffled_and_repartitioned_inputs_agree() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut rows: Vec<(String, String, String)> = (0..3000)
            .map(|_| {
                (
                    format!("r{}", rng.random_range(0..800)),
                    ["email", "phone"][rng.random_range(0..2)].to_string(),
                    format!("v{}", rng.random_range(0..900)),
                )
            })
            .collect();
        let mut previous: Option<BTreeMap<String, (String, i64)>> = None;
        for partitions in [1, 2, 5] {
            rows.shuffle(&mut rng);
            let borrowed: Vec<(Option<&str>, Option<&str>, Option<&str>)> = rows
                .iter()
                .map(|(a, b, c)| (Some(a.as_str()), Some(b.as_str()), Some(c.as_str())))
                .collect();
            let ctx = ctx_with_ids(
                SessionConfig::new()
                    .with_target_partitions(partitions)
                    .with_batch_size(100),
                &borrowed,
            )
            .await;
            let got = persons(
                &query(&ctx, "SELECT * FROM stitch_identities('ids', 5)")
                    .await
                    .unwrap(),
            );
            if let Some(previous) = &previous {
                assert_eq!(&got, previous);
            }
            previous = Some(got);
        }
    }
}
