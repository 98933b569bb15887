//! Seglake's logical optimizer rule, inserted among DataFusion's.
//!
//! [`CountBesideDistinct`]: a grouped aggregate with one `DISTINCT`
//! argument (`count(DISTINCT event_type)`) beside `count(*)` / `count(x)`
//! is typical of marketing queries ("events and distinct event types per
//! profile"). DataFusion rewrites a single distinct into a two-level
//! GROUP BY (`single_distinct_aggregation_to_group_by`) only when the other
//! aggregates are `sum`, `min` or `max`; with a `count` beside it, every
//! group keeps a hash set of distinct values, which at a million profiles
//! takes many GiB. Within a non-empty group `count(x)` equals
//! `sum(CASE WHEN x IS NULL THEN 0 ELSE 1 END)`, so this rule rewrites the
//! counts into sums (restoring the names and the non-null type in a
//! projection above) just before DataFusion's rule, which then applies.
//! Aggregates without GROUP BY are left alone (there, an empty input must
//! give `count = 0`).

use std::sync::Arc;

use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, Result};
use datafusion::functions_aggregate::expr_fn::sum;
use datafusion::logical_expr::expr::{AggregateFunction, AggregateFunctionParams};
use datafusion::logical_expr::{Aggregate, Expr, LogicalPlan, Projection, lit, when};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::prelude::coalesce;

/// The name of DataFusion's rule this one prepares for.
pub(crate) const BEFORE_RULE: &str = "single_distinct_aggregation_to_group_by";

#[derive(Debug, Default)]
pub(crate) struct CountBesideDistinct;

/// What a grouped aggregate's expressions are, for this rule.
fn rewritable(aggr_expr: &[Expr]) -> bool {
    let mut distinct_args = None;
    let mut counts = 0;
    for e in aggr_expr {
        let Expr::AggregateFunction(AggregateFunction { func, params }) = e else {
            return false;
        };
        if params.filter.is_some() || !params.order_by.is_empty() {
            return false;
        }
        let name = func.name().to_ascii_lowercase();
        if params.distinct {
            match &distinct_args {
                None => distinct_args = Some(&params.args),
                Some(a) if *a == &params.args => {}
                Some(_) => return false,
            }
        } else if name == "count" {
            if params.args.len() != 1 {
                return false;
            }
            counts += 1;
        } else if !matches!(name.as_str(), "sum" | "min" | "max") {
            return false;
        }
    }
    distinct_args.is_some_and(|a| a.len() == 1) && counts > 0
}

impl OptimizerRule for CountBesideDistinct {
    fn name(&self) -> &str {
        "seglake_count_beside_distinct"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Aggregate(agg) = plan else {
            return Ok(Transformed::no(plan));
        };
        if agg.group_expr.is_empty()
            || matches!(agg.group_expr.first(), Some(Expr::GroupingSet(_)))
            || !rewritable(&agg.aggr_expr)
        {
            return Ok(Transformed::no(LogicalPlan::Aggregate(agg)));
        }
        let mut counted = vec![];
        let aggr_expr: Vec<Expr> = agg
            .aggr_expr
            .iter()
            .map(|e| match e {
                Expr::AggregateFunction(AggregateFunction {
                    func,
                    params:
                        AggregateFunctionParams {
                            distinct: false,
                            args,
                            ..
                        },
                }) if func.name().eq_ignore_ascii_case("count") => {
                    counted.push(true);
                    let arg = &args[0];
                    let one = if matches!(arg, Expr::Literal(v, _) if !v.is_null()) {
                        lit(1i64)
                    } else {
                        when(arg.clone().is_null(), lit(0i64))
                            .otherwise(lit(1i64))
                            .expect("a valid CASE")
                    };
                    sum(one)
                }
                other => {
                    counted.push(false);
                    other.clone()
                }
            })
            .collect();
        let old_schema = Arc::clone(&agg.schema);
        let groups = agg.group_expr.len();
        let new = Aggregate::try_new(Arc::clone(&agg.input), agg.group_expr.clone(), aggr_expr)?;
        let new_schema = Arc::clone(&new.schema);
        let mut exprs = vec![];
        for (i, (qualifier, field)) in old_schema.iter().enumerate() {
            let (new_qualifier, new_field) = new_schema.qualified_field(i);
            let mut e = Expr::Column(Column::new(new_qualifier.cloned(), new_field.name()));
            if i >= groups && counted[i - groups] {
                // sum over a non-empty group is never NULL; coalesce keeps
                // count's non-null type.
                e = coalesce(vec![e, lit(0i64)]);
            }
            if new_field.name() != field.name() || i >= groups && counted[i - groups] {
                e = e.alias_qualified(qualifier.cloned(), field.name());
            }
            exprs.push(e);
        }
        let projection = Projection::try_new(exprs, Arc::new(LogicalPlan::Aggregate(new)))?;
        Ok(Transformed::yes(LogicalPlan::Projection(projection)))
    }
}

/// DataFusion's default rules with ours placed before [`BEFORE_RULE`].
pub(crate) fn rules() -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
    let mut rules = datafusion::optimizer::Optimizer::new().rules;
    let at = rules
        .iter()
        .position(|r| r.name() == BEFORE_RULE)
        .unwrap_or(rules.len());
    rules.insert(at, Arc::new(CountBesideDistinct));
    rules
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::execution::session_state::SessionStateBuilder;
    use datafusion::prelude::SessionContext;

    async fn optimized(sql: &str) -> String {
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_optimizer_rules(rules())
            .build();
        let ctx = SessionContext::new_with_state(state);
        let schema = Arc::new(Schema::new(vec![
            Field::new("profile_id", DataType::Utf8, true),
            Field::new("event_type", DataType::Utf8, true),
            Field::new("amount", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringArray::from(vec!["a"])),
                Arc::new(StringArray::from(vec!["view"])),
                Arc::new(Float64Array::from(vec![1.0])),
            ],
        )
        .unwrap();
        ctx.register_table(
            "t",
            Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()),
        )
        .unwrap();
        let plan = ctx.sql(sql).await.unwrap().into_optimized_plan().unwrap();
        plan.display_indent().to_string()
    }

    #[tokio::test]
    async fn count_beside_distinct_becomes_two_levels() {
        let plan = optimized(
            "SELECT profile_id, count(*), count(amount), count(DISTINCT event_type), max(amount) \
             FROM t GROUP BY profile_id",
        )
        .await;
        assert!(
            plan.contains("groupBy=[[t.profile_id, t.event_type AS alias1]]"),
            "{plan}"
        );
        assert!(
            plan.contains("aggr=[[sum(alias2), sum(alias3), count(alias1), max(alias4)]]"),
            "{plan}"
        );
    }

    #[tokio::test]
    async fn other_shapes_are_left_alone() {
        for sql in [
            // no GROUP BY: an empty input must count 0
            "SELECT count(*), count(DISTINCT event_type) FROM t",
            // two distinct arguments
            "SELECT profile_id, count(*), count(DISTINCT event_type), count(DISTINCT amount) FROM t GROUP BY profile_id",
            // an aggregate the two-level form cannot split
            "SELECT profile_id, count(*), avg(amount), count(DISTINCT event_type) FROM t GROUP BY profile_id",
        ] {
            let plan = optimized(sql).await;
            let aggregate = plan.lines().find(|l| l.contains("Aggregate:")).unwrap();
            assert!(aggregate.contains("count(DISTINCT"), "{sql}\n{plan}");
        }
    }
}
