//! Privileges: what a statement needs of its user's grants
//! (`seglake_catalog::security`, `docs/security.md`).
//!
//! The check step ([`super::check`]) asks [`authorize`] once it has the
//! statement's read and write sets. Each object read or written maps to
//! one or more privileges ([`needs`]); an administrator has them all, other
//! users only what their grants (their own and their roles') and the
//! built-in `reader` role give. The first one missing refuses the
//! statement with PERMISSION_DENIED naming the privilege and the object.
//!
//! The same rule decides what a user sees in listings ([`may_read`]):
//! `information_schema`, `SHOW TABLES` and Flight SQL `GetTables` list
//! the tables the user may read, nothing else.

use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{DdlStatement, LogicalPlan, WriteOp};
use seglake_catalog::security::{Principal, Privilege, Securable};
use seglake_catalog::{SEGMENT_DATA_SCHEMA, SEGMENTS_SCHEMA, SYSTEM_SCHEMA};

use super::{Access, Object, Plan, StatementContext};
use crate::sql::SeglakeStatement;
use crate::sql::segments::SegmentStatement;
use crate::{EngineError, Result};

/// The rule a missing privilege names.
pub(crate) const RULE: &str = "privileges";

/// System tables holding secrets or personal data (passwords' owners,
/// erased ids, destinations' URLs, delivery errors): administrators only,
/// whatever is granted. (`system.grants` and `system.queries` are
/// everyone's: their rows are the user's own, and its roles' grants.)
const SENSITIVE_SYSTEM_TABLES: [&str; 6] = [
    "audit",
    "users",
    "ingest_keys",
    "erasures",
    "destinations",
    "activations",
];

/// One thing a statement needs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Need {
    Grant(Privilege, Securable),
    /// Administrators only: what it is.
    Admin(String),
}

impl std::fmt::Display for Need {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Grant(p, on) => write!(f, "{p} ON {on}"),
            Self::Admin(what) => write!(f, "{what} (administrators only)"),
        }
    }
}

fn table(schema: &str, table: &str) -> Securable {
    Securable::Table {
        schema: schema.to_string(),
        table: table.to_string(),
    }
}

/// Whether `principal` may read `schema.table` (a table, view, segment or
/// system table).
/// System tables every user reads, with only its own rows in them.
const PERSONAL_SYSTEM_TABLES: [&str; 2] = ["grants", "queries"];

/// Whether listings show `schema.name` to `principal`: what it may read,
/// except the personal system tables (readable by all, listed for readers
/// only, so that a user given one table sees that table alone).
pub(crate) fn may_list(principal: &Principal, schema: &str, name: &str) -> bool {
    may_read(principal, schema, name)
        && (principal.reader || schema != SYSTEM_SCHEMA || !PERSONAL_SYSTEM_TABLES.contains(&name))
}

pub(crate) fn may_read(principal: &Principal, schema: &str, name: &str) -> bool {
    satisfied(principal, &read_need(schema, name))
}

fn read_need(schema: &str, name: &str) -> Option<Need> {
    if schema == "information_schema"
        || (schema == SYSTEM_SCHEMA && PERSONAL_SYSTEM_TABLES.contains(&name))
    {
        // Their rows are filtered for the user.
        return None;
    }
    if schema == SYSTEM_SCHEMA && SENSITIVE_SYSTEM_TABLES.contains(&name) {
        return Some(Need::Admin(format!("reading system.{name}")));
    }
    Some(Need::Grant(Privilege::Select, table(schema, name)))
}

fn satisfied(principal: &Principal, need: &Option<Need>) -> bool {
    match need {
        None => true,
        Some(_) if principal.admin => true,
        Some(Need::Admin(_)) => false,
        Some(Need::Grant(Privilege::Select, Securable::Table { .. })) if principal.reader => true,
        Some(Need::Grant(privilege, on)) => principal.granted(*privilege, on),
    }
}

/// Refuses the statement unless its user holds every privilege it needs.
/// `principal`: `None` when the engine runs without access control (an
/// embedded engine: every user is an administrator).
pub(crate) fn authorize(
    cx: &StatementContext,
    plan: &Plan,
    access: &Access,
    principal: Option<&Principal>,
) -> Result<()> {
    let Some(principal) = principal else {
        return Ok(());
    };
    if principal.admin {
        return Ok(());
    }
    for need in needs(cx, plan, access) {
        if !satisfied(principal, &Some(need.clone())) {
            return Err(EngineError::denied(
                RULE,
                format!(
                    "user '{}' lacks {need}: an administrator grants it (docs/security.md)",
                    principal.name
                ),
            ));
        }
    }
    Ok(())
}

/// A segment's refresh reads its definition's tables with the rights of
/// the definition's author (as a PostgreSQL materialized view is refreshed
/// with its owner's): whoever refreshes it, a user with `SEGMENTS` or the
/// scheduler, the author must still be allowed to read them.
pub(crate) fn authorize_refresh(cx: &StatementContext, plan: &Plan) -> Result<()> {
    let Plan::Seglake(SeglakeStatement::Segment(SegmentStatement::Refresh { name })) = plan else {
        return Ok(());
    };
    let snapshot = cx.snapshot();
    let names: Vec<String> = match name {
        Some(n) => vec![n.clone()],
        None => snapshot.state.segments.keys().cloned().collect(),
    };
    for name in names {
        // A missing segment is the command's NOT_FOUND.
        let Ok(entry) = snapshot.state.segment(&name) else {
            continue;
        };
        let definition = entry.current();
        let Some(author) = cx.principal_of(&definition.author) else {
            return Ok(());
        };
        if !author.admin {
            let reads = Access::of_query(cx, &definition.sql)?.reads;
            for object in reads {
                if let Object::Table { schema, table } = object
                    && !may_read(&author, &schema, &table)
                {
                    return Err(EngineError::denied(
                        RULE,
                        format!(
                            "segment '{name}' reads {schema}.{table}, which its author '{}' may \
                             no longer read (SELECT ON TABLE {schema}.{table}): a segment \
                             refreshes with its author's rights",
                            author.name
                        ),
                    ));
                }
            }
        }
        // A refresh delivers to the segment's activations: each with the
        // rights of whoever activated it.
        for activation in &entry.activations {
            authorize_delivery(cx, &name, activation)?;
        }
    }
    Ok(())
}

/// The author of `activation` may still activate and read the profiles
/// table it ships columns of.
fn authorize_delivery(
    cx: &StatementContext,
    segment: &str,
    activation: &seglake_catalog::Activation,
) -> Result<()> {
    let Some(author) = cx.principal_of(&activation.author) else {
        return Ok(());
    };
    if author.admin {
        return Ok(());
    }
    let refuse = |missing: String| {
        Err(EngineError::denied(
            RULE,
            format!(
                "segment '{segment}' delivers to '{}' on behalf of '{}', who no longer holds \
                 {missing}: a delivery runs with the rights of whoever activated it \
                 (DEACTIVATE SEGMENT {segment} FROM {}, or activate it again)",
                activation.destination, author.name, activation.destination
            ),
        ))
    };
    if !author.granted(Privilege::Activate, &Securable::Warehouse) {
        return refuse("ACTIVATE ON WAREHOUSE".into());
    }
    let parts: Vec<&str> = activation.profiles_table.split('.').collect();
    let (schema, table) = match parts.as_slice() {
        [.., schema, table] => (*schema, *table),
        _ => (
            seglake_catalog::DEFAULT_SCHEMA,
            activation.profiles_table.as_str(),
        ),
    };
    if !may_read(&author, schema, table) {
        return refuse(format!("SELECT ON TABLE {schema}.{table}"));
    }
    Ok(())
}

/// Everything `plan` needs, from its read and write sets.
fn needs(cx: &StatementContext, plan: &Plan, access: &Access) -> Vec<Need> {
    let warehouse = |p| Need::Grant(p, Securable::Warehouse);
    let mut out: Vec<Need> = vec![];
    for object in &access.reads {
        match object {
            Object::Table { schema, table } => out.extend(read_need(schema, table)),
            Object::Segment(Some(name)) => out.extend(read_need(SEGMENTS_SCHEMA, name)),
            Object::Segment(None) => out.push(warehouse(Privilege::Segments)),
            // CREATE EXTERNAL TABLE reads its LOCATION.
            Object::Location(_) => out.push(warehouse(Privilege::External)),
            Object::Destination(_) | Object::Webhook(_) => out.push(warehouse(Privilege::Activate)),
            Object::AllTables => out.push(warehouse(Privilege::Forget)),
            Object::Warehouse => out.push(warehouse(Privilege::Maintain)),
            Object::Schema(s) => out.push(Need::Admin(format!("reading schema {s}"))),
            Object::Settings | Object::Security | Object::Statement(_) => {}
        }
    }
    let segment_statement = matches!(plan, Plan::Seglake(SeglakeStatement::Segment(_)));
    for object in &access.writes {
        match object {
            Object::Table {
                schema,
                table: name,
            } => {
                out.extend(table_write_needs(cx, plan, schema, name));
            }
            // REFRESH writes segment_data: part of SEGMENTS.
            Object::Schema(s) if segment_statement && s == SEGMENT_DATA_SCHEMA => {}
            Object::Schema(s) => out.push(Need::Admin(format!("CREATE or DROP SCHEMA {s}"))),
            Object::AllTables => out.push(warehouse(Privilege::Forget)),
            Object::Warehouse => out.push(warehouse(Privilege::Maintain)),
            Object::Segment(_) => match plan {
                Plan::Seglake(SeglakeStatement::Segment(
                    SegmentStatement::Activate { .. } | SegmentStatement::Deactivate { .. },
                )) => out.push(warehouse(Privilege::Activate)),
                _ => out.push(warehouse(Privilege::Segments)),
            },
            Object::Destination(_) | Object::Webhook(_) => out.push(warehouse(Privilege::Activate)),
            // A file destination's path: part of ACTIVATE.
            Object::Location(_) if segment_statement => out.push(warehouse(Privilege::Activate)),
            Object::Location(l) => out.push(Need::Admin(format!("writing to {l}"))),
            Object::Settings | Object::Statement(_) => {}
            Object::Security => {
                out.push(Need::Admin("managing users, roles and grants".to_string()))
            }
        }
    }
    out
}

/// What writing `schema.table` needs for this kind of statement.
fn table_write_needs(cx: &StatementContext, plan: &Plan, schema: &str, name: &str) -> Vec<Need> {
    let on = || table(schema, name);
    let grant = |p| Need::Grant(p, on());
    let create = || {
        Need::Grant(
            Privilege::Create,
            Securable::Schema {
                schema: schema.to_string(),
            },
        )
    };
    match plan {
        Plan::Seglake(s) => match s {
            SeglakeStatement::Update(_) => vec![grant(Privilege::Update)],
            SeglakeStatement::Delete(_) => vec![grant(Privilege::Delete)],
            SeglakeStatement::Merge(_) => vec![
                grant(Privilege::Insert),
                grant(Privilege::Update),
                grant(Privilege::Delete),
            ],
            SeglakeStatement::Optimize { .. } | SeglakeStatement::Vacuum { .. } => {
                vec![Need::Grant(Privilege::Maintain, Securable::Warehouse)]
            }
            _ => vec![Need::Admin(format!("writing {schema}.{name}"))],
        },
        Plan::Ingest { replace, .. } => {
            if cx.snapshot().state.table(schema, name).is_ok() {
                let mut needs = vec![grant(Privilege::Insert)];
                if *replace {
                    needs.push(grant(Privilege::Delete));
                }
                needs
            } else {
                vec![create()]
            }
        }
        Plan::DataFusion { plan, .. } => {
            let mut needs = vec![];
            let _ = plan.apply_with_subqueries(|node| {
                match node {
                    LogicalPlan::Dml(dml)
                        if super::access::table(cx, &dml.table_name)
                            == (Object::Table {
                                schema: schema.to_string(),
                                table: name.to_string(),
                            }) =>
                    {
                        match dml.op {
                            WriteOp::Insert(InsertOp::Append) => {
                                needs.push(grant(Privilege::Insert));
                            }
                            WriteOp::Insert(_) => {
                                needs.push(grant(Privilege::Insert));
                                needs.push(grant(Privilege::Delete));
                            }
                            WriteOp::Update => needs.push(grant(Privilege::Update)),
                            WriteOp::Delete | WriteOp::Truncate => {
                                needs.push(grant(Privilege::Delete));
                            }
                            WriteOp::Ctas => needs.push(create()),
                            WriteOp::MergeInto(_) => {
                                needs.push(grant(Privilege::Insert));
                                needs.push(grant(Privilege::Update));
                                needs.push(grant(Privilege::Delete));
                            }
                            // A write DataFusion adds later: administrators
                            // only until it is mapped here.
                            _ => needs.push(Need::Admin(format!("writing {schema}.{name}"))),
                        }
                    }
                    LogicalPlan::Ddl(ddl) => {
                        needs.push(create());
                        if matches!(ddl, DdlStatement::CreateExternalTable(_)) {
                            needs.push(Need::Grant(Privilege::External, Securable::Warehouse));
                        }
                    }
                    _ => {}
                }
                Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
            });
            if needs.is_empty() {
                needs.push(Need::Admin(format!("writing {schema}.{name}")));
            }
            needs
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use seglake_catalog::security::Grant;

    fn principal(reader: bool, grants: &[(Privilege, Securable)]) -> Principal {
        Principal {
            name: "u".into(),
            roles: Default::default(),
            admin: false,
            reader,
            grants: grants
                .iter()
                .map(|(p, on)| Grant {
                    grantee: "u".into(),
                    privilege: *p,
                    on: on.clone(),
                })
                .collect(),
        }
    }

    #[test]
    fn reading_follows_grants_reader_and_sensitivity() {
        let nobody = principal(false, &[]);
        let reader = principal(true, &[]);
        let granted = principal(
            false,
            &[
                (Privilege::Select, table("public", "events")),
                (Privilege::Select, table("system", "erasures")),
            ],
        );
        let admin = Principal::admin("root");
        for (who, schema, name, expected) in [
            (&nobody, "public", "events", false),
            (&nobody, "information_schema", "tables", true),
            (&nobody, "system", "workers", false),
            (&reader, "public", "events", true),
            (&reader, "segments", "buyers", true),
            (&reader, "system", "workers", true),
            (&reader, "system", "erasures", false),
            (&reader, "system", "users", false),
            (&granted, "public", "events", true),
            (&granted, "public", "profiles", false),
            (&granted, "system", "erasures", false),
            (&admin, "system", "users", true),
            (&admin, "public", "anything", true),
        ] {
            assert_eq!(may_read(who, schema, name), expected, "{schema}.{name}");
        }
    }
}
