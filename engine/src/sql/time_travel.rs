//! `table_at('t', <version> | TIMESTAMP '...')` in FROM clauses, rewritten
//! on the parsed statement to a hidden table name that the catalog resolves
//! to that version of a managed table.

use std::ops::ControlFlow;

use datafusion::sql::parser::{CopyToSource, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, FunctionArg, FunctionArgExpr, Ident, ObjectName, ObjectNamePart, TableAlias,
    TableFactor, Value, VisitMut, VisitorMut,
};

use crate::storage::delta::TimeTravel;
use crate::{EngineError, Result};

/// The hidden schema whose tables are past versions of managed tables.
pub(crate) const TIME_TRAVEL_SCHEMA: &str = "$time_travel";

/// Rewrites `table_at('name', 3)` / `table_at('name', TIMESTAMP '...')` in
/// the FROM clauses of `statement` to `"$time_travel"."schema.table@v3"`
/// (aliased as the table), which the catalog resolves to that version of
/// the table. Works on the tree: the text is never printed and parsed again.
pub(crate) fn rewrite(statement: &mut DFStatement) -> Result<()> {
    let mut visitor = TimeTravelRewriter { error: None };
    match statement {
        DFStatement::Statement(s) => {
            let _ = s.visit(&mut visitor);
        }
        DFStatement::Explain(e) => return rewrite(&mut e.statement),
        DFStatement::CopyTo(c) => {
            if let CopyToSource::Query(q) = &mut c.source {
                let _ = q.visit(&mut visitor);
            }
        }
        DFStatement::CreateExternalTable(_) | DFStatement::Reset(_) => {}
    }
    match visitor.error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

struct TimeTravelRewriter {
    error: Option<EngineError>,
}

impl VisitorMut for TimeTravelRewriter {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let TableFactor::Table {
            name, args, alias, ..
        } = factor
        else {
            return ControlFlow::Continue(());
        };
        let is_table_at = name.0.len() == 1
            && matches!(&name.0[0], ObjectNamePart::Identifier(i) if i.value.eq_ignore_ascii_case("table_at"));
        let Some(function_args) = args.as_ref().filter(|_| is_table_at) else {
            return ControlFlow::Continue(());
        };
        match time_travel_target(&function_args.args) {
            Ok((table, at)) => {
                let short = table.rsplit('.').next().unwrap_or(&table).to_string();
                *name = ObjectName(vec![
                    ObjectNamePart::Identifier(Ident::with_quote('"', TIME_TRAVEL_SCHEMA)),
                    ObjectNamePart::Identifier(Ident::with_quote(
                        '"',
                        format!("{table}@{}", at.encode()),
                    )),
                ]);
                *args = None;
                if alias.is_none() {
                    *alias = Some(TableAlias {
                        explicit: true,
                        name: Ident::with_quote('"', short),
                        columns: vec![],
                        at: None,
                    });
                }
                ControlFlow::Continue(())
            }
            Err(e) => {
                self.error = Some(e);
                ControlFlow::Break(())
            }
        }
    }
}

fn time_travel_target(args: &[FunctionArg]) -> Result<(String, TimeTravel)> {
    let usage = || {
        EngineError::InvalidArgument(
            "table_at takes a table name and a version or a timestamp: \
             table_at('events', 3) or table_at('events', TIMESTAMP '2026-01-01 00:00:00')"
                .into(),
        )
    };
    let exprs: Vec<&SqlExpr> = args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e),
            _ => Err(usage()),
        })
        .collect::<Result<_>>()?;
    let [table, at] = exprs.as_slice() else {
        return Err(usage());
    };
    let table = match table {
        SqlExpr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => s.clone(),
            _ => return Err(usage()),
        },
        SqlExpr::Identifier(i) => i.value.clone(),
        SqlExpr::CompoundIdentifier(parts) => parts
            .iter()
            .map(|p| p.value.clone())
            .collect::<Vec<_>>()
            .join("."),
        _ => return Err(usage()),
    };
    let at = match at {
        SqlExpr::Value(v) => match &v.value {
            Value::Number(n, _) => TimeTravel::Version(n.parse().map_err(|_| usage())?),
            Value::SingleQuotedString(s) => TimeTravel::Timestamp(parse_timestamp(s)?),
            _ => return Err(usage()),
        },
        SqlExpr::TypedString(ts) => match &ts.value.value {
            Value::SingleQuotedString(s) => TimeTravel::Timestamp(parse_timestamp(s)?),
            _ => return Err(usage()),
        },
        _ => return Err(usage()),
    };
    if matches!(at, TimeTravel::Version(v) if v < 0) {
        return Err(EngineError::InvalidArgument(
            "table versions start at 0".into(),
        ));
    }
    Ok((table, at))
}

/// RFC 3339, or `YYYY-MM-DD[ HH:MM:SS[.fff]]` taken as UTC.
pub(crate) fn parse_timestamp(s: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, f) {
            return Ok(t.and_utc());
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
    }
    Err(EngineError::InvalidArgument(format!(
        "cannot read '{s}' as a timestamp (use '2026-01-31 12:00:00' or RFC 3339)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The statement after the rewrite, printed (only to compare).
    fn rewritten(sql: &str) -> Result<String> {
        let mut statement = crate::sql::parse_query(sql, &Default::default())?;
        rewrite(&mut statement)?;
        Ok(statement.to_string())
    }

    #[test]
    fn time_travel() {
        let sql = rewritten("SELECT count(*) FROM table_at('events', 3) e").unwrap();
        assert!(sql.contains("\"$time_travel\".\"events@v3\" e"), "{sql}");
        let sql = rewritten(
            "SELECT * FROM table_at('crm.events', TIMESTAMP '2026-01-02 03:04:05') JOIN x ON true",
        )
        .unwrap();
        let ms = parse_timestamp("2026-01-02 03:04:05")
            .unwrap()
            .timestamp_millis();
        assert!(
            sql.contains(&format!("\"crm.events@t{ms}\" AS \"events\"")),
            "{sql}"
        );
        assert!(rewritten("SELECT * FROM table_at('e')").is_err());
        assert!(rewritten("SELECT * FROM table_at('e', -1)").is_err());
        assert_eq!(rewritten("SELECT 1").unwrap(), "SELECT 1");
        // Inside EXPLAIN and subqueries too.
        let sql = rewritten("EXPLAIN SELECT * FROM t WHERE a IN (SELECT a FROM table_at('u', 0))")
            .unwrap();
        assert!(sql.contains("\"$time_travel\".\"u@v0\""), "{sql}");
    }
}
