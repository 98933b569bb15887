//! Subqueries in the predicates and assignments of `DELETE` and `UPDATE`
//! on managed tables: delta-rs plans those expressions against the target
//! table alone, so another table named inside them cannot be resolved
//! there. Seglake runs each uncorrelated subquery first (its reads were
//! checked with the statement's) and puts its value in its place:
//! `x [NOT] IN (SELECT ...)` becomes a list of literals, `[NOT] EXISTS
//! (...)` a boolean, a scalar `(SELECT ...)` its one value. A correlated
//! subquery is refused with a pointer to `MERGE INTO`.

use std::collections::HashMap;
use std::ops::ControlFlow;

use arrow::array::Array;
use datafusion::common::ScalarValue;
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, Value, Visit, VisitMut, Visitor, VisitorMut,
};
use futures::TryStreamExt;

use crate::pipeline::StatementContext;
use crate::sql::seglake::scalar_to_sql;
use crate::{EngineError, Result};

/// Largest number of values an inlined `IN (SELECT ...)` may have.
const MAX_IN_VALUES: usize = 1_000_000;

impl StatementContext {
    /// Replaces the subqueries of `expr` by their values (see the module).
    pub(crate) async fn inline_subqueries(&self, expr: &mut SqlExpr, what: &str) -> Result<()> {
        struct Collect(Vec<String>);
        impl Visitor for Collect {
            type Break = ();
            fn pre_visit_expr(&mut self, expr: &SqlExpr) -> ControlFlow<()> {
                match expr {
                    SqlExpr::InSubquery { subquery, .. }
                    | SqlExpr::Exists { subquery, .. }
                    | SqlExpr::Subquery(subquery) => self.0.push(subquery.to_string()),
                    _ => {}
                }
                ControlFlow::Continue(())
            }
        }
        let mut found = Collect(vec![]);
        let _ = Visit::visit(&*expr, &mut found);
        if found.0.is_empty() {
            return Ok(());
        }
        let mut values: HashMap<String, Vec<ScalarValue>> = HashMap::new();
        for sql in found.0 {
            if values.contains_key(&sql) {
                continue;
            }
            let rows = self.subquery_values(&sql, what).await?;
            values.insert(sql, rows);
        }
        struct Replace<'a> {
            values: &'a HashMap<String, Vec<ScalarValue>>,
            error: Option<EngineError>,
        }
        impl VisitorMut for Replace<'_> {
            type Break = ();
            fn pre_visit_expr(&mut self, expr: &mut SqlExpr) -> ControlFlow<()> {
                let replaced = match expr {
                    SqlExpr::InSubquery {
                        expr: left,
                        subquery,
                        negated,
                    } => {
                        let rows = &self.values[&subquery.to_string()];
                        if rows.is_empty() {
                            // x IN (nothing) is false, x NOT IN (nothing) true.
                            Ok(SqlExpr::value(Value::Boolean(*negated)))
                        } else {
                            rows.iter()
                                .map(scalar_to_sql)
                                .collect::<Result<Vec<_>>>()
                                .map(|list| SqlExpr::InList {
                                    expr: left.clone(),
                                    list,
                                    negated: *negated,
                                })
                        }
                    }
                    SqlExpr::Exists { subquery, negated } => {
                        let any = !self.values[&subquery.to_string()].is_empty();
                        Ok(SqlExpr::value(Value::Boolean(any != *negated)))
                    }
                    SqlExpr::Subquery(subquery) => {
                        match self.values[&subquery.to_string()].as_slice() {
                            [] => Ok(SqlExpr::value(Value::Null)),
                            [one] => scalar_to_sql(one),
                            _ => Err(EngineError::InvalidArgument(
                                "a scalar subquery returned more than one row".into(),
                            )),
                        }
                    }
                    _ => return ControlFlow::Continue(()),
                };
                match replaced {
                    Ok(e) => {
                        *expr = SqlExpr::Nested(Box::new(e));
                        ControlFlow::Continue(())
                    }
                    Err(e) => {
                        self.error = Some(e);
                        ControlFlow::Break(())
                    }
                }
            }
        }
        let mut replace = Replace {
            values: &values,
            error: None,
        };
        let _ = VisitMut::visit(expr, &mut replace);
        replace.error.map_or(Ok(()), Err)
    }

    /// The first column of `sql`'s rows.
    async fn subquery_values(&self, sql: &str, what: &str) -> Result<Vec<ScalarValue>> {
        let df = self.context().sql(sql).await.map_err(|e| {
            EngineError::InvalidArgument(format!(
                "{what}: a subquery must stand on its own (correlated subqueries are not \
                 supported here: use MERGE INTO ... USING (...) ON ... WHEN MATCHED THEN ...): {e}"
            ))
        })?;
        if df.schema().fields().len() != 1 {
            return Err(EngineError::InvalidArgument(format!(
                "{what}: a subquery in an IN list or a scalar subquery returns one column"
            )));
        }
        let batches: Vec<_> = df.execute_stream().await?.try_collect().await?;
        let mut out = vec![];
        for b in &batches {
            let column = b.column(0);
            for i in 0..column.len() {
                out.push(ScalarValue::try_from_array(column.as_ref(), i)?);
                if out.len() > MAX_IN_VALUES {
                    return Err(EngineError::InvalidArgument(format!(
                        "{what}: a subquery returned more than {MAX_IN_VALUES} values: \
                         use MERGE INTO ... USING (subquery) instead"
                    )));
                }
            }
        }
        Ok(out)
    }
}
