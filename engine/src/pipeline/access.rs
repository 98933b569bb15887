//! What a statement reads and writes, found by walking its whole plan.

use std::collections::BTreeSet;

use datafusion::common::TableReference;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::{DdlStatement, LogicalPlan, WriteOp};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{FromTable, Statement, TableFactor};
use seglake_catalog::{DEFAULT_SCHEMA, SEGMENT_DATA_SCHEMA, SEGMENTS_SCHEMA, SYSTEM_SCHEMA};

use super::{Plan, StatementContext};
use crate::Result;
use crate::sql::segments::SegmentStatement;
use crate::sql::{SeglakeStatement, TIME_TRAVEL_SCHEMA, seglake::object_name_parts};

/// Something a statement reads or writes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Object {
    /// A table or view (`schema.table`; the schema may be `system`,
    /// `segments`, `segment_data` or `information_schema`).
    Table { schema: String, table: String },
    /// A schema itself (CREATE/DROP SCHEMA).
    Schema(String),
    /// Every managed table (`FORGET PROFILE`).
    AllTables,
    /// The warehouse's files (`VACUUM WAREHOUSE`).
    Warehouse,
    /// A statement of this server (`KILL QUERY`): a user's own, or any for
    /// an administrator, which the command decides.
    Statement(String),
    /// A location outside the catalog: a path or URL (external table
    /// LOCATION, COPY target, file destination path), as written.
    Location(String),
    /// A webhook destination's URL.
    Webhook(String),
    /// A segment definition (`None`: every segment).
    Segment(Option<String>),
    /// A destination definition.
    Destination(String),
    /// The session's settings (`SET`, `RESET`).
    Settings,
    /// Users, roles and grants.
    Security,
}

impl Object {
    /// How the audit trail names it (a webhook's credentials redacted).
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Table { schema, table } => format!("{schema}.{table}"),
            Self::Schema(s) => format!("schema {s}"),
            Self::AllTables => "every managed table".into(),
            Self::Warehouse => "the warehouse".into(),
            Self::Statement(id) => format!("statement {id}"),
            Self::Location(l) => format!("location {l}"),
            Self::Webhook(url) => format!("webhook {}", crate::egress::redacted(url)),
            Self::Segment(Some(s)) => format!("segment {s}"),
            Self::Segment(None) => "every segment".into(),
            Self::Destination(d) => format!("destination {d}"),
            Self::Settings => "settings".into(),
            Self::Security => "users, roles, grants and keys".into(),
        }
    }
}

/// A statement's read and write sets.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Access {
    pub reads: BTreeSet<Object>,
    pub writes: BTreeSet<Object>,
}

impl Access {
    /// Whether the statement changes something the audit trail records
    /// (data, schema, users, grants, keys, destinations, activations):
    /// anything written but the session's settings.
    pub(crate) fn changes(&self) -> bool {
        self.writes.iter().any(|o| *o != Object::Settings)
    }

    /// The objects written, else those read, as the audit trail names them.
    pub(crate) fn described(&self) -> Vec<String> {
        let set = if self.writes.is_empty() {
            &self.reads
        } else {
            &self.writes
        };
        set.iter().map(Object::describe).collect()
    }

    /// The tables read (`a.b, c.d`), `None` when none.
    pub(crate) fn tables_read(&self) -> Option<String> {
        let tables: Vec<String> = self
            .reads
            .iter()
            .filter(|o| matches!(o, Object::Table { .. }))
            .map(Object::describe)
            .collect();
        (!tables.is_empty()).then(|| tables.join(", "))
    }

    /// The access of a planned statement.
    pub(crate) fn of(cx: &StatementContext, plan: &Plan) -> Result<Self> {
        let mut access = Self::default();
        match plan {
            Plan::DataFusion {
                plan, described, ..
            } => {
                access.add_plan(cx, plan)?;
                for reference in described {
                    access.reads.insert(table(cx, reference));
                }
            }
            Plan::Seglake(s) => access.add_seglake(cx, s)?,
            Plan::Ingest { schema, table, .. } => {
                access.writes.insert(Object::Table {
                    schema: schema.clone(),
                    table: table.clone(),
                });
            }
        }
        Ok(access)
    }

    /// Every node of `plan`, subqueries and the inputs of `EXPLAIN`,
    /// `EXPLAIN ANALYZE` and `PREPARE` included.
    fn add_plan(&mut self, cx: &StatementContext, plan: &LogicalPlan) -> Result<()> {
        let mut failed = None;
        plan.apply_with_subqueries(|node| {
            match node {
                LogicalPlan::TableScan(scan) => match table_function_reads(cx, scan) {
                    Some(Ok(reads)) => self.reads.extend(reads),
                    Some(Err(e)) => failed = Some(e),
                    None => {
                        self.reads.insert(table(cx, &scan.table_name));
                    }
                },
                // DataFusion inlines a view where it is named, as a
                // subquery aliased with the view's name: the view itself is
                // read too (its tables are read below). A user's own alias
                // that happens to name a view only adds a read.
                LogicalPlan::SubqueryAlias(alias) => {
                    if let Object::Table {
                        schema,
                        table: name,
                    } = table(cx, &alias.alias)
                        && is_view(cx, &schema, &name)
                    {
                        self.reads.insert(Object::Table {
                            schema,
                            table: name,
                        });
                    }
                }
                LogicalPlan::Dml(dml) => {
                    self.writes.insert(table(cx, &dml.table_name));
                    if !matches!(dml.op, WriteOp::Insert(_)) {
                        // UPDATE/DELETE read the rows they change.
                        self.reads.insert(table(cx, &dml.table_name));
                    }
                }
                LogicalPlan::Copy(copy) => {
                    self.writes
                        .insert(Object::Location(copy.output_url.clone()));
                }
                LogicalPlan::Ddl(ddl) => match ddl {
                    DdlStatement::CreateExternalTable(c) => {
                        self.writes.insert(table(cx, &c.name));
                        for l in &c.locations {
                            self.reads.insert(Object::Location(l.clone()));
                        }
                    }
                    DdlStatement::CreateMemoryTable(c) => {
                        self.writes.insert(table(cx, &c.name));
                    }
                    DdlStatement::CreateView(c) => {
                        self.writes.insert(table(cx, &c.name));
                    }
                    DdlStatement::DropTable(d) => {
                        self.writes.insert(table(cx, &d.name));
                    }
                    DdlStatement::DropView(d) => {
                        self.writes.insert(table(cx, &d.name));
                    }
                    DdlStatement::CreateCatalogSchema(c) => {
                        self.writes.insert(Object::Schema(c.schema_name.clone()));
                    }
                    DdlStatement::DropCatalogSchema(d) => {
                        self.writes
                            .insert(Object::Schema(d.name.schema_name().to_string()));
                    }
                    DdlStatement::CreateIndex(c) => {
                        self.writes.insert(table(cx, &c.table));
                    }
                    // Catalogs and functions: refused when run.
                    DdlStatement::CreateCatalog(_)
                    | DdlStatement::CreateFunction(_)
                    | DdlStatement::DropFunction(_) => {}
                },
                LogicalPlan::Statement(_) => {
                    self.writes.insert(Object::Settings);
                }
                _ => {}
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        failed.map_or(Ok(()), Err)
    }

    fn add_seglake(&mut self, cx: &StatementContext, statement: &SeglakeStatement) -> Result<()> {
        let named = |name| table_of_parts(cx, &object_name_parts(name));
        match statement {
            SeglakeStatement::Optimize { table }
            | SeglakeStatement::Vacuum {
                table: Some(table), ..
            } => {
                self.writes.insert(named(table));
            }
            SeglakeStatement::Vacuum { table: None, .. } => {
                self.writes.insert(Object::Warehouse);
            }
            SeglakeStatement::ForgetProfile { .. } => {
                self.writes.insert(Object::AllTables);
            }
            SeglakeStatement::KillQuery { id } => {
                self.writes.insert(Object::Statement(id.clone()));
            }
            SeglakeStatement::Update(u) => {
                self.add_references(cx, Statement::Update(u.as_ref().clone()))?;
                if let TableFactor::Table { name, .. } = &u.table.relation {
                    self.writes.insert(named(name));
                }
            }
            SeglakeStatement::Delete(d) => {
                self.add_references(cx, Statement::Delete(d.as_ref().clone()))?;
                let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &d.from;
                for t in from {
                    if let TableFactor::Table { name, .. } = &t.relation {
                        self.writes.insert(named(name));
                    }
                }
            }
            SeglakeStatement::Merge(m) => {
                self.add_references(cx, Statement::Merge(m.as_ref().clone()))?;
                if let TableFactor::Table { name, .. } = &m.table {
                    self.writes.insert(named(name));
                }
            }
            SeglakeStatement::Segment(s) => self.add_segment(cx, s)?,
            SeglakeStatement::Security(_) => {
                self.writes.insert(Object::Security);
            }
        }
        Ok(())
    }

    fn add_segment(&mut self, cx: &StatementContext, statement: &SegmentStatement) -> Result<()> {
        let segment = |name: &str| Object::Segment(Some(name.to_string()));
        match statement {
            SegmentStatement::Create { name, sql, .. } => {
                self.writes.insert(segment(name));
                let options = cx.context().state().config().options().sql_parser.clone();
                if let Ok(query) = crate::sql::parse_query(sql, &options) {
                    self.add_statement_references(cx, &query)?;
                }
            }
            SegmentStatement::Drop { name, .. } | SegmentStatement::SetSchedule { name, .. } => {
                self.writes.insert(segment(name));
            }
            SegmentStatement::Refresh { name } => {
                self.writes.insert(Object::Segment(name.clone()));
                self.writes
                    .insert(Object::Schema(SEGMENT_DATA_SCHEMA.to_string()));
            }
            SegmentStatement::ExplainMembership { segment: name, .. } => {
                self.reads.insert(segment(name));
            }
            SegmentStatement::CreateDestination { name, options, .. } => {
                self.writes.insert(Object::Destination(name.clone()));
                for (key, value) in options {
                    match key.as_str() {
                        "path" => self.writes.insert(Object::Location(value.clone())),
                        "url" => self.writes.insert(Object::Webhook(value.clone())),
                        _ => false,
                    };
                }
            }
            SegmentStatement::DropDestination { name, .. } => {
                self.writes.insert(Object::Destination(name.clone()));
            }
            SegmentStatement::Activate {
                segment: name,
                destination,
                profiles_table,
                ..
            } => {
                self.writes.insert(segment(name));
                self.reads.insert(Object::Destination(destination.clone()));
                if let Some(t) = profiles_table {
                    self.reads.insert(table_of_parts(
                        cx,
                        &TableReference::from(t.as_str()).to_vec(),
                    ));
                }
            }
            SegmentStatement::Deactivate {
                segment: name,
                destination,
            } => {
                self.writes.insert(segment(name));
                self.reads.insert(Object::Destination(destination.clone()));
            }
        }
        Ok(())
    }

    /// The tables a query held as text (a segment's definition) reads.
    pub(crate) fn of_query(cx: &StatementContext, sql: &str) -> Result<Self> {
        let mut access = Self::default();
        let options = cx.context().state().config().options().sql_parser.clone();
        let query = crate::sql::parse_query(sql, &options)?;
        access.add_statement_references(cx, &query)?;
        Ok(access)
    }

    /// The tables a sqlparser statement names (CTE names excluded) are read.
    fn add_references(&mut self, cx: &StatementContext, statement: Statement) -> Result<()> {
        self.add_statement_references(cx, &DFStatement::Statement(Box::new(statement)))
    }

    fn add_statement_references(
        &mut self,
        cx: &StatementContext,
        statement: &DFStatement,
    ) -> Result<()> {
        for reference in cx.context().state().resolve_table_references(statement)? {
            self.reads.insert(table(cx, &reference));
        }
        Ok(())
    }
}

/// DataFusion's table functions that read no table.
const GENERATING_TABLE_FUNCTIONS: [&str; 2] = ["generate_series", "range"];

/// What a scan of a table function reads (`None`: not a table function):
/// nothing for the generating functions, the source's tables for
/// identity stitching.
fn table_function_reads(
    cx: &StatementContext,
    scan: &datafusion::logical_expr::TableScan,
) -> Option<Result<Vec<Object>>> {
    if let Ok(provider) = datafusion::datasource::source_as_provider(&scan.source)
        && let Some(stitch) =
            provider.downcast_ref::<seglake_udfs::stitch_identities::StitchTable>()
    {
        let sql = seglake_udfs::stitch_identities::source_sql(stitch.source());
        return Some(Access::of_query(cx, &sql).map(|a| a.reads.into_iter().collect()));
    }
    let name = scan.table_name.table();
    let function = name.strip_suffix(')')?.split('(').next()?;
    (scan.table_name.schema().is_none() && GENERATING_TABLE_FUNCTIONS.contains(&function))
        .then(|| Ok(vec![]))
}

/// Whether `schema.name` is a view Seglake serves: a segment
/// (`segments.<name>`) or a system table.
fn is_view(cx: &StatementContext, schema: &str, name: &str) -> bool {
    (schema == SEGMENTS_SCHEMA && cx.snapshot().state.segments.contains_key(name))
        || (schema == SYSTEM_SCHEMA && crate::catalog::system::is_system_table(name))
}

/// The catalog table a plan's reference names, resolved against the
/// session's default schema; a time-travel table is its base table.
pub(super) fn table(cx: &StatementContext, reference: &TableReference) -> Object {
    let schema = match reference.schema() {
        Some(s) => s.to_string(),
        None => default_schema(cx),
    };
    if schema == TIME_TRAVEL_SCHEMA {
        let base = reference.table();
        let base = base.rsplit_once('@').map_or(base, |(t, _)| t);
        return match base.split_once('.') {
            Some((s, t)) => Object::Table {
                schema: s.to_string(),
                table: t.to_string(),
            },
            None => Object::Table {
                schema: DEFAULT_SCHEMA.to_string(),
                table: base.to_string(),
            },
        };
    }
    Object::Table {
        schema,
        table: reference.table().to_string(),
    }
}

fn table_of_parts(cx: &StatementContext, parts: &[String]) -> Object {
    match parts {
        [t] => Object::Table {
            schema: default_schema(cx),
            table: t.clone(),
        },
        [.., s, t] => Object::Table {
            schema: s.clone(),
            table: t.clone(),
        },
        [] => Object::AllTables,
    }
}

fn default_schema(cx: &StatementContext) -> String {
    cx.context()
        .state()
        .config()
        .options()
        .catalog
        .default_schema
        .clone()
}
