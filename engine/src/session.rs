//! A client's session: a thin dispatcher that takes every statement through
//! the pipeline (`crate::pipeline`): begin → parse → plan → check → execute.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{ParamValues, ScalarValue, TableReference};
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use futures::Stream;
use seglake_catalog::DEFAULT_CATALOG;
use tracing::warn;

use crate::pipeline::{
    Access, Kind, Outcome, Plan, Source, StatementContext, StatementKind, check, classify,
};
use crate::sql::{self, Parsed, SeglakeStatement};
use crate::storage::audit::AuditRecord;
use crate::workload::{self, QueryEntry, QueryInfo, Tracked};
use crate::{Engine, EngineError, ErrorKind, IngestMode, Result};

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

/// A query planned (logically, every parameter bound) and checked by
/// [`Session::prepare`], with the statement context it was planned in. Its
/// managed (Delta) tables are read at the versions current when it was
/// planned.
#[derive(Clone)]
pub struct PlannedQuery {
    plan: LogicalPlan,
    cx: Arc<StatementContext>,
    /// Its text, for `system.queries`.
    sql: String,
    /// The tables it reads (`Access::tables_read`).
    reads: Option<String>,
}

impl std::fmt::Debug for PlannedQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlannedQuery")
            .field("statement", &self.cx.id())
            .finish()
    }
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

/// An ingest key of the collector (`CREATE INGEST KEY`), without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestKeyInfo {
    pub name: String,
    /// The one table it appends to.
    pub table: TableReference,
    /// Browser origins allowed to post with it.
    pub origins: Vec<String>,
}

/// One client's SQL session: its own settings (`SET ...`), shared engine.
pub struct Session {
    engine: Arc<Engine>,
    /// The session's settings. Statements plan in a context of their own
    /// made from it (`StatementContext`); only `SET`/`RESET` change it.
    ctx: SessionContext,
    user: String,
    /// The client's address (the audit trail's `client`), when known.
    client: Option<String>,
    /// The server's own work (`Engine::service_session`): its statements
    /// may take the slots reserved for the service.
    service: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("user", &self.user).finish()
    }
}

impl Session {
    pub(crate) fn new(engine: Arc<Engine>, ctx: SessionContext, user: &str) -> Self {
        Self {
            engine,
            ctx,
            user: user.to_string(),
            client: None,
            service: false,
        }
    }

    /// The session of the server's own work (`Engine::service_session`).
    pub(crate) fn into_service(mut self) -> Self {
        self.service = true;
        self
    }

    /// The session's client address, recorded with its statements in the
    /// audit trail.
    pub fn with_client(mut self, client: Option<std::net::SocketAddr>) -> Self {
        self.client = client.map(|c| c.ip().to_string());
        self
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The session's DataFusion context (settings, function registry).
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Step 1: a new statement, with the newest catalog snapshot.
    pub(crate) async fn begin(&self, source: Source) -> Result<StatementContext> {
        StatementContext::begin(self.engine.handles(), &self.ctx, &self.user, source).await
    }

    /// Steps 2 and 3: parse once, plan, bind `params`. With `exact`, the
    /// number of values must match the statement's parameters; otherwise no
    /// values means "not bound yet".
    pub(crate) async fn plan(
        &self,
        cx: &StatementContext,
        sql: &str,
        params: &[ScalarValue],
        exact: bool,
    ) -> Result<(Plan, SchemaRef)> {
        let state = cx.context().state();
        let (statement, partition_by) = match sql::parse(sql, &state.config().options().sql_parser)?
        {
            Parsed::Seglake(mut statement) => {
                let n = sql::seglake::parameter_count(&statement);
                if exact || !params.is_empty() {
                    sql::seglake::bind_parameters(&mut statement, params)?;
                }
                // Seglake statements are not typed by DataFusion: any type.
                let parameters = Arc::new(Schema::new(
                    (1..=n)
                        .map(|i| Field::new(format!("${i}"), DataType::Null, true))
                        .collect::<Vec<_>>(),
                ));
                return Ok((Plan::Seglake(statement), parameters));
            }
            Parsed::DataFusion {
                statement,
                partition_by,
            } => (statement, partition_by),
        };
        // The tables the statement reads (a CREATE's own target does not
        // exist yet).
        let created = created_table(&statement);
        let references: Vec<TableReference> = state
            .resolve_table_references(&statement)?
            .into_iter()
            .filter(|r| Some(r) != created.as_ref())
            .collect();
        let plan = match state.statement_to_plan(statement).await {
            Ok(plan) => plan,
            // A table the statement names is not in its snapshot: NotFound,
            // decided by resolving the names, not by reading the message.
            Err(e) => {
                return Err(
                    match references
                        .iter()
                        .find_map(|r| crate::catalog::missing(cx.context(), r))
                    {
                        Some(missing) => EngineError::NotFound(format!("{missing}: {e}")),
                        None => e.into(),
                    },
                );
            }
        };
        let wrap = |plan: LogicalPlan| Plan::DataFusion {
            described: match &plan {
                LogicalPlan::DescribeTable(_) => references.clone(),
                _ => vec![],
            },
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

    /// Plans `sql` without running it: its kind, result schema and
    /// parameter schema. With `params` (bound values, possibly none yet) the
    /// result schema is the one [`Session::execute`] will stream with the
    /// same values; without, parameters are unknowns.
    pub async fn prepare(&self, sql: &str, params: &[ScalarValue]) -> Result<Prepared> {
        let cx = self.begin(Source::Sql).await?;
        let (plan, parameters) = self.plan(&cx, sql, params, false).await?;
        let reads = self.checked(&cx, &plan)?.tables_read();
        let plan = match plan {
            Plan::DataFusion { plan, .. } => plan,
            Plan::Seglake(statement) => {
                let rows = match &statement {
                    SeglakeStatement::Segment(s) => crate::commands::segments::result_schema(s),
                    SeglakeStatement::Security(s) => crate::commands::security::result_schema(s),
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
            Plan::Ingest { .. } => unreachable!("SQL does not plan to an ingest"),
        };
        let kind = classify(&plan);
        let schema = match kind {
            StatementKind::Query => Arc::new(self.result_schema(&plan)?),
            StatementKind::Command => Arc::new(Schema::empty()),
        };
        let planned = (kind == StatementKind::Query && parameters.fields().len() == params.len())
            .then(|| PlannedQuery {
                plan,
                cx: Arc::new(cx),
                sql: sql.to_string(),
                reads,
            });
        Ok(Prepared {
            kind,
            schema,
            parameters,
            planned,
        })
    }

    /// Runs `sql` with positional parameter values. Queries return a lazy
    /// stream; commands run to completion here.
    pub async fn execute(&self, sql: &str, params: Vec<ScalarValue>) -> Result<Outcome> {
        let cx = self.begin(Source::Sql).await?;
        let entry = self.track(&cx, "statement", sql);
        let deadline = cx.deadline();
        let result = workload::supervise(
            &entry,
            deadline,
            Box::pin(async {
                let (plan, _) = self.plan(&cx, sql, &params, true).await?;
                let kind = plan.kind();
                entry.set_kind(kind.label());
                let access = self.checked(&cx, &plan)?;
                entry.set_reads(access.tables_read());
                let permit = self.admit(needs_slot(&plan), self.service).await?;
                entry.start();
                let audit = Audited::arm(self, &cx, kind, &access);
                let result = cx
                    .run(plan, &self.ctx)
                    .await
                    .map_err(|e| entry.naming_tables(e));
                audit.done(&result);
                result.map(|outcome| (outcome, permit))
            }),
        )
        .await;
        followed(entry, deadline, result)
    }

    /// The schema `plan`'s rows will have: that of the analysed plan, whose
    /// types are coerced (`SELECT 1.5 UNION ALL SELECT 'a'` is text, while
    /// the unanalysed plan still says the first input's Float64).
    fn result_schema(&self, plan: &LogicalPlan) -> Result<Schema> {
        crate::commands::result_schema(&self.ctx.state(), plan)
    }

    /// Runs a query [`Session::prepare`] planned and checked, without
    /// planning it again.
    pub async fn run_planned(&self, query: PlannedQuery) -> Result<Outcome> {
        let PlannedQuery {
            plan,
            cx,
            sql,
            reads,
        } = query;
        let entry = self.track(&cx, Kind::Query.label(), &sql);
        entry.set_reads(reads);
        let deadline = cx.deadline();
        let result = workload::supervise(
            &entry,
            deadline,
            Box::pin(async {
                let permit = self.admit(query_needs_slot(&plan), self.service).await?;
                entry.start();
                let outcome = cx
                    .run_query(plan)
                    .await
                    .map_err(|e| entry.naming_tables(e))?;
                Ok((outcome, permit))
            }),
        )
        .await;
        followed(entry, deadline, result)
    }

    /// A slot to run in when the statement `needs` one (`crate::admission`;
    /// `service`: it may take a reserved slot), waiting for its turn; the
    /// statement is `queued` in `system.queries` meanwhile.
    async fn admit(&self, needs: bool, service: bool) -> Result<Option<crate::admission::Permit>> {
        if !needs {
            return Ok(None);
        }
        Ok(Some(
            self.engine.admission().acquire(&self.user, service).await?,
        ))
    }

    /// Registers the statement of `cx` in `system.queries`.
    fn track(&self, cx: &StatementContext, kind: &str, sql: &str) -> Arc<QueryEntry> {
        let entry = self.engine.queries().begin(QueryInfo {
            id: cx.id().to_string(),
            user: self.user.clone(),
            client: self.client.clone(),
            kind: kind.to_string(),
            sql: sql.to_string(),
        });
        entry.follow_memory(Arc::clone(cx.memory()));
        entry
    }

    /// Ingests a stream of batches into `table` and returns the number of
    /// rows written. `schema` is the stream's schema. Each ingest is one
    /// Delta commit (create: the catalog commit that registers the new
    /// table), so a failed ingest leaves nothing visible.
    pub async fn ingest<S>(
        &self,
        table: &TableReference,
        mode: IngestMode,
        schema: SchemaRef,
        batches: S,
    ) -> Result<u64>
    where
        S: Stream<Item = Result<RecordBatch>> + Send + Unpin + 'static,
    {
        let cx = self.begin(Source::Ingest).await?;
        let entry = self.track(&cx, Kind::Ingest.label(), &format!("INGEST INTO {table}"));
        let deadline = cx.deadline();
        let result = workload::supervise(
            &entry,
            deadline,
            Box::pin(async {
                let (schema_name, table_name) = cx.resolve_table_name(table)?;
                let plan = Plan::Ingest {
                    schema: schema_name.clone(),
                    table: table_name.clone(),
                    replace: mode == IngestMode::Replace,
                };
                let access = self.checked(&cx, &plan)?;
                let _permit = self.admit(true, self.service).await?;
                entry.start();
                let audit = Audited::arm(self, &cx, Kind::Ingest, &access);
                let result = cx
                    .ingest(&schema_name, &table_name, mode, schema, batches)
                    .await;
                audit.done(&result);
                result
            }),
        )
        .await;
        entry.end(&result);
        result
    }

    /// Refuses (`PERMISSION_DENIED`) unless this session's user may append
    /// rows to `table`, without appending anything: the check an ingest
    /// passes. The HTTP collector asks it for each request, whose rows its
    /// own committer writes later.
    pub async fn check_append(&self, table: &TableReference) -> Result<()> {
        let cx = self.begin(Source::Ingest).await?;
        let (schema, table) = cx.resolve_table_name(table)?;
        self.checked(
            &cx,
            &Plan::Ingest {
                schema,
                table,
                replace: false,
            },
        )?;
        Ok(())
    }

    /// The ingest key whose secret is `key` in the newest catalog: its
    /// name and the table it appends to (`None`: no such key).
    pub async fn ingest_key(&self, key: &str) -> Result<Option<IngestKeyInfo>> {
        let snapshot = self.engine.catalog().await?;
        Ok(snapshot
            .state
            .security
            .ingest_key(key)
            .map(|(name, k)| IngestKeyInfo {
                name: name.to_string(),
                table: TableReference::full(DEFAULT_CATALOG, k.schema.clone(), k.table.clone()),
                origins: k.origins.clone(),
            }))
    }

    /// Refreshes a segment as the scheduler does (a statement of its own,
    /// through the check like any other).
    pub async fn refresh_segment(&self, name: &str) -> Result<()> {
        let cx = self.begin(Source::Scheduler).await?;
        let entry = self.track(
            &cx,
            Kind::Segment.label(),
            &format!("REFRESH SEGMENT {name} -- scheduled"),
        );
        let deadline = cx.deadline();
        let result = workload::supervise(
            &entry,
            deadline,
            Box::pin(async {
                let plan = Plan::Seglake(SeglakeStatement::Segment(
                    sql::segments::SegmentStatement::Refresh {
                        name: Some(name.to_string()),
                    },
                ));
                let access = self.checked(&cx, &plan)?;
                // The scheduler's work: a reserved slot if need be.
                let _permit = self.admit(true, true).await?;
                entry.start();
                let audit = Audited::arm(self, &cx, Kind::Segment, &access);
                let result = cx.run(plan, &self.ctx).await.map(|_| ());
                audit.done(&result);
                result
            }),
        )
        .await;
        entry.end(&result);
        result
    }

    /// The check step; a refusal goes to the audit trail.
    fn checked(&self, cx: &StatementContext, plan: &Plan) -> Result<Access> {
        check(cx, plan).inspect_err(|e| {
            if e.kind() == ErrorKind::PermissionDenied {
                let objects = Access::of(cx, plan)
                    .map(|a| a.described())
                    .unwrap_or_default();
                self.audit(cx, plan.kind(), objects, "denied", Some(e.to_string()));
            }
        })
    }

    /// A statement that changes something goes to the audit trail, with
    /// its outcome.
    fn audited<T>(&self, cx: &StatementContext, kind: Kind, access: &Access, result: &Result<T>) {
        if !access.changes() {
            return;
        }
        let (outcome, message) = match result {
            Ok(_) => ("ok", None),
            Err(e) => ("failed", Some(e.to_string())),
        };
        self.audit(cx, kind, access.described(), outcome, message);
    }

    fn audit(
        &self,
        cx: &StatementContext,
        kind: Kind,
        objects: Vec<String>,
        outcome: &str,
        message: Option<String>,
    ) {
        self.engine.audit(AuditRecord {
            at: chrono::Utc::now(),
            user: cx.user().to_string(),
            client: self.client.clone(),
            kind: kind.label().to_string(),
            objects,
            outcome: outcome.to_string(),
            message,
            statement: Some(cx.id().to_string()),
        });
    }

    /// Schemas of the catalog, built-in ones included, sorted.
    pub async fn schemas(&self) -> Result<Vec<String>> {
        let cx = self.begin(Source::Metadata).await?;
        let mut names = cx
            .context()
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
        let cx = self.begin(Source::Metadata).await?;
        let ctx = cx.context();
        let listing = ctx
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
                    match ctx.table_provider(reference).await {
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

/// The table a CREATE statement creates.
fn created_table(statement: &datafusion::sql::parser::Statement) -> Option<TableReference> {
    use datafusion::sql::parser::Statement as DFStatement;
    use datafusion::sql::sqlparser::ast::Statement;
    let name = match statement {
        DFStatement::CreateExternalTable(c) => &c.name,
        DFStatement::Statement(s) => match s.as_ref() {
            Statement::CreateTable(c) => &c.name,
            Statement::CreateView(c) => &c.name,
            _ => return None,
        },
        _ => return None,
    };
    datafusion::sql::planner::object_name_to_table_reference(name.clone(), true).ok()
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

/// The audit record of a statement that runs: written when it ends
/// ([`Audited::done`]), or, when its work is dropped first (`KILL QUERY`,
/// a timeout, its client gone), written then with the outcome `cancelled`:
/// a write stopped midway is on the trail too.
struct Audited<'a> {
    session: &'a Session,
    cx: &'a StatementContext,
    kind: Kind,
    access: &'a Access,
    armed: bool,
}

impl<'a> Audited<'a> {
    fn arm(session: &'a Session, cx: &'a StatementContext, kind: Kind, access: &'a Access) -> Self {
        Self {
            session,
            cx,
            kind,
            access,
            armed: true,
        }
    }

    fn done<T>(mut self, result: &Result<T>) {
        self.armed = false;
        self.session
            .audited(self.cx, self.kind, self.access, result);
    }
}

impl Drop for Audited<'_> {
    fn drop(&mut self) {
        if self.armed && self.access.changes() {
            self.session.audit(
                self.cx,
                self.kind,
                self.access.described(),
                "cancelled",
                Some(
                    "stopped before its end (KILL QUERY, its timeout, or its client went away); \
                     a commit it made before is in the table's history"
                        .to_string(),
                ),
            );
        }
    }
}

/// A statement's outcome, followed to its end: a query's rows as they are
/// read (its stream stops when the statement is killed or times out), a
/// command's end at once.
///
/// `permit`, the statement's slot, is held by a query's stream until it
/// ends or is dropped; a command's is given back here, at its end.
fn followed(
    entry: Arc<QueryEntry>,
    deadline: tokio::time::Instant,
    result: Result<(Outcome, Option<crate::admission::Permit>)>,
) -> Result<Outcome> {
    match result {
        Ok((Outcome::Rows { schema, stream }, permit)) => Ok(Outcome::Rows {
            schema,
            stream: Box::pin(Tracked::new(stream, entry, deadline, permit)),
        }),
        Ok((outcome, permit)) => {
            let outcome = Ok(outcome);
            entry.end(&outcome);
            drop(permit);
            outcome
        }
        Err(e) => {
            let other = Err(e);
            entry.end::<Outcome>(&other);
            other
        }
    }
}

/// Whether a statement takes a slot of the admission control
/// (`crate::admission`). Everything that reads or writes data does; what
/// a saturated server must still answer, so that an administrator can see
/// and stop what runs, does not: `SET`/`RESET` and the other session
/// statements, `KILL QUERY`, and the metadata queries of
/// [`query_needs_slot`].
fn needs_slot(plan: &Plan) -> bool {
    match plan {
        Plan::Seglake(SeglakeStatement::KillQuery { .. }) => false,
        Plan::Seglake(_) | Plan::Ingest { .. } => true,
        Plan::DataFusion { plan, .. } => match plan {
            LogicalPlan::Statement(_) => false,
            plan if classify(plan) == StatementKind::Command => true,
            plan => query_needs_slot(plan),
        },
    }
}

/// Whether a query takes a slot: all do but `DESCRIBE` and a query over
/// exactly one metadata table and nothing else (no join, no union, no
/// subquery: its cost is bounded by that table's size), the table being
/// one of `information_schema` (what `SHOW` reads) or `system.queries`.
fn query_needs_slot(plan: &LogicalPlan) -> bool {
    let (mut leaves, mut metadata) = (0, false);
    let walked = plan.apply_with_subqueries(|node| {
        if node.inputs().is_empty() {
            leaves += 1;
            metadata = is_metadata(node);
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    !(walked.is_ok() && leaves == 1 && metadata)
}

/// `DESCRIBE`, or a scan of a table of `information_schema` or of
/// `system.queries` (schema-qualified: both schema names are reserved).
fn is_metadata(leaf: &LogicalPlan) -> bool {
    match leaf {
        LogicalPlan::DescribeTable(_) => true,
        LogicalPlan::TableScan(scan) => {
            let name = &scan.table_name;
            name.catalog().is_none_or(|c| c == DEFAULT_CATALOG)
                && match name.schema() {
                    Some("information_schema") => true,
                    Some(schema) => {
                        schema == seglake_catalog::SYSTEM_SCHEMA && name.table() == "queries"
                    }
                    None => false,
                }
        }
        _ => false,
    }
}
