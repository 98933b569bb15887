//! Documentation of the Seglake functions: doc sections, the hand-written
//! recipes, and the generator of `docs/functions.md`.
//!
//! `docs/functions.md` is generated from every function's
//! [`Documentation`](datafusion::logical_expr::Documentation) by
//! [`render_markdown`]; a test fails when the checked-in file is stale.
//! Regenerate it with:
//!
//! ```text
//! SEGLAKE_UPDATE_DOCS=1 cargo test -p seglake-udfs docs
//! ```

use datafusion::logical_expr::DocSection;

use crate::{FunctionDoc, FunctionKind, all_functions_docs};

pub const SECTION_SCALAR: DocSection = DocSection {
    include: true,
    label: "Seglake Scalar Functions",
    description: None,
};

pub const SECTION_AGGREGATE: DocSection = DocSection {
    include: true,
    label: "Seglake Aggregate Functions",
    description: None,
};

pub const SECTION_TABLE: DocSection = DocSection {
    include: true,
    label: "Seglake Table Functions",
    description: None,
};

/// The command that regenerates `docs/functions.md`.
pub const REGENERATE_COMMAND: &str = "SEGLAKE_UPDATE_DOCS=1 cargo test -p seglake-udfs docs";

/// The RFM recipe (runs as is on a `purchases(profile_id, event_time, amount)` table).
pub const RFM_RECIPE_SQL: &str = include_str!("rfm_recipe.sql");

/// Path of the generated file, from the root of the workspace.
pub const DOCS_FILE: &str = "docs/functions.md";

fn rfm_recipe_markdown() -> String {
    format!(
        "## Recipe: RFM segmentation\n\n\
RFM scores rank customers by **R**ecency (how recently they bought), **F**requency \
(how often) and **M**onetary value (how much), each on a 1..5 scale. \
`NTILE(5)` splits the profiles into five groups of (almost) equal size; \
`rfm_segment` then names the (R, F) cell.\n\n\
- R is *reversed*: the most recent buyers get 5. Ordering by the date of the last \
purchase ascending gives that directly (ordering by the number of days since the last \
purchase would need `DESC`).\n\
- Ranking windows need a total order: every `ORDER BY` ends with `profile_id`, so \
that profiles tied on a value always fall in the same tiles, whatever the partitioning.\n\
- `NTILE` returns an unsigned integer: `rfm_segment` accepts any integer type.\n\n\
```sql\n{}\n```\n",
        RFM_RECIPE_SQL.trim_end()
    )
}

fn anchor(name: &str) -> String {
    name.to_string()
}

fn render_function(out: &mut String, f: &FunctionDoc) {
    let doc = &f.doc;
    out.push_str(&format!("### `{}`\n\n", f.name));
    out.push_str(&format!("*{}*\n\n", f.kind.label()));
    out.push_str(doc.description.trim());
    out.push_str("\n\n#### Syntax\n\n```sql\n");
    out.push_str(doc.syntax_example.trim());
    out.push_str("\n```\n\n");
    if let Some(args) = &doc.arguments {
        out.push_str("#### Arguments\n\n");
        for (name, description) in args {
            out.push_str(&format!("- **{name}**: {}\n", description.trim()));
        }
        out.push('\n');
    }
    if let Some(example) = &doc.sql_example {
        out.push_str("#### Example\n\n");
        out.push_str(example.trim());
        out.push_str("\n\n");
    }
    if let Some(alternatives) = &doc.alternative_syntax {
        out.push_str("#### Alternative syntax\n\n");
        for alt in alternatives {
            out.push_str(&format!("```sql\n{}\n```\n\n", alt.trim()));
        }
    }
    if let Some(related) = &doc.related_udfs {
        out.push_str("#### Related functions\n\n");
        for r in related {
            out.push_str(&format!("- [{r}](#{})\n", anchor(r)));
        }
        out.push('\n');
    }
}

/// Renders `docs/functions.md`.
pub fn render_markdown() -> String {
    let docs = all_functions_docs();
    let mut out = String::new();
    out.push_str(&format!(
        "<!-- Generated from the functions' `Documentation` in udfs/src/: do not edit by hand.\n     \
         Regenerate with: {REGENERATE_COMMAND} -->\n\n"
    ));
    out.push_str("# Seglake SQL functions\n\n");
    out.push_str(
        "Seglake adds these functions to DataFusion's built-in ones, in every session of the \
         coordinator and of the workers (`seglake_udfs::register_all`).\n\n",
    );
    for kind in [
        FunctionKind::Aggregate,
        FunctionKind::Scalar,
        FunctionKind::Table,
    ] {
        let section = match kind {
            FunctionKind::Aggregate => SECTION_AGGREGATE,
            FunctionKind::Scalar => SECTION_SCALAR,
            FunctionKind::Table => SECTION_TABLE,
        };
        out.push_str(&format!("- {}\n", section.label));
        for f in docs.iter().filter(|f| f.kind == kind) {
            out.push_str(&format!("  - [{}](#{})\n", f.name, anchor(&f.name)));
        }
    }
    out.push_str("- [Recipe: RFM segmentation](#recipe-rfm-segmentation)\n\n");
    for kind in [
        FunctionKind::Aggregate,
        FunctionKind::Scalar,
        FunctionKind::Table,
    ] {
        let mut first = true;
        for f in docs.iter().filter(|f| f.kind == kind) {
            if first {
                out.push_str(&format!("## {}\n\n", f.doc.doc_section.label));
                first = false;
            }
            render_function(&mut out, f);
        }
    }
    out.push_str(&rfm_recipe_markdown());
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;

    use arrow::array::{AsArray, Float64Array, RecordBatch, StringArray, TimestampSecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit, UInt64Type};
    use datafusion::datasource::MemTable;

    use super::*;

    fn docs_path() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(DOCS_FILE)
    }

    /// Fails when docs/functions.md is stale; `SEGLAKE_UPDATE_DOCS=1` rewrites it.
    #[test]
    fn generated_docs_are_up_to_date() {
        let expected = render_markdown();
        let path = docs_path();
        if std::env::var_os("SEGLAKE_UPDATE_DOCS").is_some() {
            std::fs::write(&path, &expected).expect("write docs/functions.md");
            return;
        }
        let actual = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            actual == expected,
            "{DOCS_FILE} is out of date with the functions' documentation.\n\
             Regenerate it with:\n\n    {REGENERATE_COMMAND}\n"
        );
    }

    #[test]
    fn docs_mention_every_function_and_the_recipe() {
        let md = render_markdown();
        for name in crate::all_function_names() {
            assert!(md.contains(&format!("### `{name}`")), "{name}");
        }
        assert!(md.contains("NTILE(5) OVER (ORDER BY last_purchase ASC, profile_id ASC)"));
    }

    /// The recipe of the docs is the one checked by tests/slt/functions/rfm_segment.slt.
    #[test]
    fn docs_rfm_recipe_is_checked_by_the_slt_file() {
        let slt = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/slt/functions/rfm_segment.slt");
        let slt = std::fs::read_to_string(slt).unwrap();
        assert!(
            slt.contains(RFM_RECIPE_SQL.trim_end()),
            "rfm_segment.slt must contain udfs/src/rfm_recipe.sql verbatim"
        );
    }

    /// The documented recipe runs as is and feeds rfm_segment.
    #[tokio::test]
    async fn docs_rfm_recipe_runs() {
        let ctx = crate::test_util::ctx();
        let schema = Arc::new(Schema::new(vec![
            Field::new("profile_id", DataType::Utf8, false),
            Field::new(
                "event_time",
                DataType::Timestamp(TimeUnit::Second, None),
                false,
            ),
            Field::new("amount", DataType::Float64, false),
        ]));
        // p1..p5 buy once, on day 1..5; p5 buys 3 more times
        let mut ids = vec![];
        let mut times = vec![];
        let mut amounts = vec![];
        for i in 1..=5i64 {
            ids.push(format!("p{i}"));
            times.push(i * 86_400);
            amounts.push(10.0 * i as f64);
        }
        for _ in 0..3 {
            ids.push("p5".to_string());
            times.push(86_400);
            amounts.push(1.0);
        }
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringArray::from(ids)),
                Arc::new(TimestampSecondArray::from(times)),
                Arc::new(Float64Array::from(amounts)),
            ],
        )
        .unwrap();
        let table = MemTable::try_new(schema, vec![vec![batch]]).unwrap();
        ctx.register_table("purchases", Arc::new(table)).unwrap();
        let batches = ctx
            .sql(RFM_RECIPE_SQL)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        assert_eq!(batch.num_rows(), 5);
        let r = arrow::compute::cast(batch.column(1), &DataType::UInt64).unwrap();
        let f = arrow::compute::cast(batch.column(2), &DataType::UInt64).unwrap();
        let seg = batch.column(4).as_string::<i32>();
        // last purchases are days 1..5 in profile order: R = 1..5;
        // frequencies 1,1,1,1,4: ties broken by profile_id, so F = 1..5.
        assert_eq!(
            r.as_primitive::<UInt64Type>().values().to_vec(),
            vec![1, 2, 3, 4, 5]
        );
        assert_eq!(
            f.as_primitive::<UInt64Type>().values().to_vec(),
            vec![1, 2, 3, 4, 5]
        );
        assert_eq!(
            seg.iter().collect::<Vec<_>>(),
            vec![
                Some("Hibernating"),
                Some("Hibernating"),
                Some("Need Attention"),
                Some("Loyal Customers"),
                Some("Champions")
            ]
        );
    }
}
