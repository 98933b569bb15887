//! `EXPLAIN MEMBERSHIP '<profile_id>' IN SEGMENT name`.
//!
//! Says whether the profile is in the segment now (live) and at the last
//! refresh, then, for a segment whose query is one `SELECT` (optionally
//! with GROUP BY / HAVING), which of the top-level `AND` / `OR` terms of
//! its WHERE and HAVING the profile satisfies. Each term is evaluated on
//! the profile's own rows of the query's FROM clause (the rows whose
//! `profile_id` expression equals the profile): a WHERE term is
//! `satisfied` when at least one of those rows satisfies it; a HAVING term
//! is evaluated on the profile's group after the WHERE clause. Queries of
//! another shape (UNION, CTEs, window functions in the projection) only get
//! the overall answer: best effort, see docs/segments.md.

use std::sync::Arc;

use arrow::array::{BooleanArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, GroupByExpr, Query, Select, SelectItem, SetExpr, Statement,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::pipeline::StatementContext;
use crate::{Outcome, Result};

pub(crate) fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("check", DataType::Utf8, false),
        Field::new("expression", DataType::Utf8, true),
        Field::new("result", DataType::Utf8, false),
        Field::new("member", DataType::Boolean, true),
    ]))
}

struct Row {
    check: String,
    expression: Option<String>,
    result: String,
    member: Option<bool>,
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Terms of a top-level AND (or OR) chain, and the operator.
fn split(expr: &Expr) -> (&'static str, Vec<&Expr>) {
    fn collect<'a>(e: &'a Expr, op: &BinaryOperator, out: &mut Vec<&'a Expr>) {
        match e {
            Expr::BinaryOp { left, op: o, right } if o == op => {
                collect(left, op, out);
                collect(right, op, out);
            }
            Expr::Nested(inner) if matches!(inner.as_ref(), Expr::BinaryOp { op: o, .. } if o == op) => {
                collect(inner, op, out)
            }
            other => out.push(other),
        }
    }
    for (name, op) in [("AND", BinaryOperator::And), ("OR", BinaryOperator::Or)] {
        if matches!(expr, Expr::BinaryOp { op: o, .. } if *o == op) {
            let mut out = vec![];
            collect(expr, &op, &mut out);
            return (name, out);
        }
    }
    ("AND", vec![expr])
}

/// The expression the query returns as `profile_id`.
fn profile_expr(select: &Select) -> Option<Expr> {
    select.projection.iter().find_map(|item| match item {
        SelectItem::ExprWithAlias { expr, alias }
            if alias.value.eq_ignore_ascii_case("profile_id") =>
        {
            Some(expr.clone())
        }
        SelectItem::UnnamedExpr(e @ Expr::Identifier(i))
            if i.value.eq_ignore_ascii_case("profile_id") =>
        {
            Some(e.clone())
        }
        SelectItem::UnnamedExpr(e @ Expr::CompoundIdentifier(parts))
            if parts
                .last()
                .is_some_and(|i| i.value.eq_ignore_ascii_case("profile_id")) =>
        {
            Some(e.clone())
        }
        _ => None,
    })
}

/// The single SELECT of a query without CTEs, if that is its shape.
fn single_select(query: &Query) -> Option<&Select> {
    if query.with.is_some() {
        return None;
    }
    match query.body.as_ref() {
        SetExpr::Select(s) => Some(s),
        _ => None,
    }
}

impl StatementContext {
    pub(crate) async fn explain_membership(
        &self,
        profile_id: &str,
        segment: &str,
    ) -> Result<Outcome> {
        let snapshot = self.refresh_catalog().await?;
        let entry = snapshot.state.segment(segment)?.clone();
        let definition = entry.current();
        let quoted_segment = segment.replace('"', "\"\"");
        let pid = quote(profile_id);
        let mut rows = vec![];

        let member = self
            .count(&format!(
                "SELECT count(*) FROM segments.\"{quoted_segment}\" WHERE CAST(profile_id AS VARCHAR) = {pid}"
            ))
            .await?
            > 0;
        rows.push(Row {
            check: "member now".into(),
            expression: None,
            result: if member { "yes" } else { "no" }.into(),
            member: Some(member),
        });
        match &entry.last_refresh {
            Some(_) => {
                let was = self
                    .count(&format!(
                        "SELECT count(*) FROM segment_data.\"{quoted_segment}\" WHERE profile_id = {pid}"
                    ))
                    .await?
                    > 0;
                rows.push(Row {
                    check: "member at last refresh".into(),
                    expression: None,
                    result: if was { "yes" } else { "no" }.into(),
                    member: Some(was),
                });
            }
            None => rows.push(Row {
                check: "member at last refresh".into(),
                expression: None,
                result: "never refreshed".into(),
                member: None,
            }),
        }

        let parsed = Parser::parse_sql(&GenericDialect {}, &definition.sql).ok();
        let select = parsed
            .as_ref()
            .and_then(|statements| match statements.as_slice() {
                [Statement::Query(q)] => single_select(q),
                _ => None,
            });
        let explained = match select {
            Some(select) => self.explain_terms(select, &pid, &mut rows).await?,
            None => false,
        };
        if !explained {
            rows.push(Row {
                check: "predicates".into(),
                expression: None,
                result: "not explained: the segment's query is not a single SELECT with a profile_id column".into(),
                member: None,
            });
        }

        let batch = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| r.check.as_str()),
                )),
                Arc::new(StringArray::from(
                    rows.iter()
                        .map(|r| r.expression.clone())
                        .collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| r.result.as_str()),
                )),
                Arc::new(BooleanArray::from(
                    rows.iter().map(|r| r.member).collect::<Vec<_>>(),
                )),
            ],
        )?;
        let stream = MemoryStream::try_new(vec![batch], schema(), None)?;
        Ok(Outcome::Rows {
            schema: schema(),
            stream: Box::pin(stream),
        })
    }

    /// Adds one row per WHERE / HAVING term; `false` if the query's shape
    /// does not allow it.
    async fn explain_terms(&self, select: &Select, pid: &str, rows: &mut Vec<Row>) -> Result<bool> {
        let Some(pid_expr) = profile_expr(select) else {
            return Ok(false);
        };
        if select.from.is_empty() {
            return Ok(false);
        }
        let from: Vec<String> = select.from.iter().map(|t| t.to_string()).collect();
        let from = from.join(", ");
        let mine = format!("CAST({pid_expr} AS VARCHAR) = {pid}");
        let where_all = select
            .selection
            .as_ref()
            .map(|w| format!("({w}) AND {mine}"))
            .unwrap_or_else(|| mine.clone());
        let rows_of_profile = self
            .count(&format!("SELECT count(*) FROM {from} WHERE {mine}"))
            .await?;
        rows.push(Row {
            check: "rows of the profile".into(),
            expression: Some(format!("FROM {from}")),
            result: rows_of_profile.to_string(),
            member: None,
        });
        if let Some(selection) = &select.selection {
            let (op, terms) = split(selection);
            for term in terms {
                let hits = self
                    .count(&format!(
                        "SELECT count(*) FROM {from} WHERE {mine} AND ({term}) IS TRUE"
                    ))
                    .await?;
                rows.push(Row {
                    check: format!("WHERE ({op})"),
                    expression: Some(term.to_string()),
                    result: if rows_of_profile == 0 {
                        "no rows".into()
                    } else if hits > 0 {
                        format!("satisfied ({hits} of {rows_of_profile} rows)")
                    } else {
                        "failed".into()
                    },
                    member: Some(hits > 0),
                });
            }
        }
        if let Some(having) = &select.having {
            let group_by = match &select.group_by {
                GroupByExpr::Expressions(exprs, _) if !exprs.is_empty() => format!(
                    " GROUP BY {}",
                    exprs
                        .iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                _ => String::new(),
            };
            let groups = self
                .count(&format!(
                    "SELECT count(*) FROM (SELECT 1 FROM {from} WHERE {where_all}{group_by})"
                ))
                .await?;
            let (op, terms) = split(having);
            for term in terms {
                let hits = self
                    .count(&format!(
                        "SELECT count(*) FROM (SELECT ({term}) IS TRUE AS ok FROM {from} WHERE {where_all}{group_by}) WHERE ok"
                    ))
                    .await?;
                rows.push(Row {
                    check: format!("HAVING ({op})"),
                    expression: Some(term.to_string()),
                    result: if groups == 0 {
                        "no rows after WHERE".into()
                    } else if hits > 0 {
                        "satisfied".into()
                    } else {
                        "failed".into()
                    },
                    member: Some(hits > 0),
                });
            }
        }
        Ok(true)
    }

    /// The single integer a `SELECT count(*) ...` returns.
    async fn count(&self, sql: &str) -> Result<u64> {
        let batches = self.context().sql(sql).await?.collect().await?;
        let value = batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .map(|b| arrow::compute::cast(b.column(0), &DataType::Int64))
            .transpose()?
            .map(|a| {
                arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(&a).value(0)
            })
            .unwrap_or(0);
        Ok(value.max(0) as u64)
    }
}
