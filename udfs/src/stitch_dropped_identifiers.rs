//! `stitch_dropped_identifiers(source [, max_records_per_identifier])`: the
//! identifiers that `stitch_identities` ignores because of its over-merge
//! guard. Same arguments, same planning and execution node
//! ([`crate::stitch_identities::StitchIdentitiesExec`] in
//! [`StitchMode::DroppedIdentifiers`] mode).

use std::sync::{Arc, LazyLock};

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::error::Result;
use datafusion::logical_expr::Documentation;

use crate::docs::SECTION_TABLE;
use crate::stitch_identities::{StitchMode, call_stitch};

/// Name of the table function.
pub const NAME: &str = "stitch_dropped_identifiers";

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        SECTION_TABLE,
        "Lists the identifiers that `stitch_identities` treats as non-identifying with the \
         same arguments: those shared by more than `max_records_per_identifier` distinct \
         records. Returns `(id_type VARCHAR, id_value VARCHAR, record_count BIGINT)`, \
         `record_count` being the number of distinct records sharing the identifier. \
         Rows with a NULL `record_id`, a NULL `id_type` or a NULL or empty `id_value` are \
         not counted. The rows come out in no particular order.",
        "stitch_dropped_identifiers(source [, max_records_per_identifier])",
    )
    .with_sql_example(
        r#"```sql
> CREATE TABLE ids(record_id VARCHAR, id_type VARCHAR, id_value VARCHAR) AS VALUES
    ('a-1', 'device', 'kiosk'), ('a-2', 'device', 'kiosk'), ('a-3', 'device', 'kiosk'),
    ('a-1', 'email', 'ann@example.com'), ('a-2', 'email', 'ann@example.com');
> SELECT * FROM stitch_dropped_identifiers('ids', 2);
+---------+----------+--------------+
| id_type | id_value | record_count |
+---------+----------+--------------+
| device  | kiosk    | 3            |
+---------+----------+--------------+
```"#,
    )
    .with_argument(
        "source",
        "A string literal: a table name or a query returning `record_id`, `id_type` and \
         `id_value`, as for `stitch_identities`.",
    )
    .with_argument(
        "max_records_per_identifier",
        "Optional integer literal >= 1, default 100, as for `stitch_identities`.",
    )
    .with_related_udf(crate::stitch_identities::NAME)
    .build()
});

/// Documentation of `stitch_dropped_identifiers`.
pub fn documentation() -> &'static Documentation {
    &DOCUMENTATION
}

/// `stitch_dropped_identifiers` table function.
#[derive(Debug, Default)]
pub struct StitchDroppedIdentifiersFunc;

impl StitchDroppedIdentifiersFunc {
    pub fn new() -> Self {
        Self
    }
}

impl TableFunctionImpl for StitchDroppedIdentifiersFunc {
    fn call_with_args(&self, args: TableFunctionArgs<'_, '_>) -> Result<Arc<dyn TableProvider>> {
        call_stitch(StitchMode::DroppedIdentifiers, args)
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, Int64Array};

    #[tokio::test]
    async fn lists_identifiers_over_the_limit() {
        let ctx = crate::test_util::ctx();
        ctx.sql(
            "CREATE TABLE ids(record_id VARCHAR, id_type VARCHAR, id_value VARCHAR) AS VALUES \
             ('a-1', 'device', 'kiosk'), ('a-2', 'device', 'kiosk'), ('a-3', 'device', 'kiosk'), \
             ('a-3', 'device', 'kiosk'), (NULL, 'device', 'kiosk'), \
             ('a-1', 'email', 'ann@example.com'), ('a-2', 'email', 'ann@example.com'), \
             ('b-1', 'email', ''), ('b-2', 'email', '')",
        )
        .await
        .unwrap();
        let batches = ctx
            .sql("SELECT * FROM stitch_dropped_identifiers('ids', 2) ORDER BY id_type, id_value")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let batch = &batches[0];
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(batch.column(0).as_string::<i32>().value(0), "device");
        assert_eq!(batch.column(1).as_string::<i32>().value(0), "kiosk");
        let counts = batch
            .column(2)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(counts.value(0), 3);

        // default limit: nothing dropped
        let batches = ctx
            .sql("SELECT count(*) FROM stitch_dropped_identifiers('ids')")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let n = batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(n.value(0), 0);

        // limit 1: every shared identifier is dropped
        let batches = ctx
            .sql("SELECT id_type, id_value, record_count FROM stitch_dropped_identifiers('ids', 1) ORDER BY id_type")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let total: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(total, 2);
    }
}
