//! Tests' view of query results: every value as text (`NULL` for null),
//! row by row, so expected rows are written as string literals.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;

/// The rows of `batches`, each value cast to text.
pub(crate) fn as_text(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    batches
        .iter()
        .flat_map(|b| {
            (0..b.num_rows()).map(move |i| {
                b.columns()
                    .iter()
                    .map(|c| {
                        let c = arrow::compute::cast(c, &DataType::Utf8).unwrap();
                        let c = c.as_string::<i32>();
                        if c.is_null(i) {
                            "NULL".to_string()
                        } else {
                            c.value(i).to_string()
                        }
                    })
                    .collect()
            })
        })
        .collect()
}
