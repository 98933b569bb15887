//! Comparison of result sets between engines.
//!
//! Engines return the same answer with different Arrow types (DuckDB's
//! `BIGINT` against DataFusion's `UInt64`, `Utf8View` against `Utf8`,
//! timestamps in different units), so results are first normalised to
//! [`Value`]s: every number (integers, floats, decimals, dates as days,
//! timestamps as UTC microseconds) becomes an `f64`, every string a `String`.
//! Rows are then sorted (row order is not part of the answer of most
//! queries; for the ordered ones the set is still what must agree) and
//! compared cell by cell, numbers with a relative tolerance, since sums of
//! floats depend on the order of the additions.

use std::cmp::Ordering;
use std::fs::File;
use std::path::Path;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit};
use arrow::ipc::reader::FileReader;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result};

/// One normalised cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
}

/// Relative tolerance of numeric comparisons.
pub const REL_TOLERANCE: f64 = 1e-6;

impl Value {
    /// A sort key that ignores float noise below the comparison tolerance.
    fn key(&self) -> String {
        match self {
            Value::Null => "0".to_string(),
            Value::Bool(b) => format!("1{b}"),
            Value::Num(n) => format!("2{n:.5e}"),
            Value::Str(s) => format!("3{s}"),
        }
    }

    /// Whether two cells hold the same value (numbers within tolerance).
    pub fn same(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Num(a), Value::Num(b)) => {
                if a == b {
                    return true;
                }
                let scale = a.abs().max(b.abs()).max(1e-9);
                (a - b).abs() / scale <= REL_TOLERANCE
            }
            _ => self == other,
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Num(n) => write!(f, "{n}"),
            Value::Str(s) => write!(f, "'{s}'"),
        }
    }
}

/// A normalised result set: rows of cells.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rows {
    pub columns: usize,
    pub rows: Vec<Vec<Value>>,
}

/// What the comparison of two result sets found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub rows_left: usize,
    pub rows_right: usize,
    pub equal: bool,
    /// A description of the first difference, when not equal.
    pub difference: Option<String>,
}

fn column_values(array: &ArrayRef) -> Result<Vec<Value>> {
    let n = array.len();
    let mut out = Vec::with_capacity(n);
    let dt = array.data_type().clone();
    match dt {
        DataType::Null => out.resize(n, Value::Null),
        DataType::Boolean => {
            let a = array.as_boolean();
            for i in 0..n {
                out.push(if a.is_null(i) {
                    Value::Null
                } else {
                    Value::Bool(a.value(i))
                });
            }
        }
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal32(_, _)
        | DataType::Decimal64(_, _)
        | DataType::Decimal128(_, _)
        | DataType::Decimal256(_, _) => {
            let c = cast(array, &DataType::Float64)?;
            let a = c.as_primitive::<Float64Type>();
            for i in 0..n {
                out.push(if a.is_null(i) {
                    Value::Null
                } else {
                    Value::Num(a.value(i))
                });
            }
        }
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _) => {
            // Dates as days since the epoch, timestamps as UTC microseconds.
            let c = match dt {
                DataType::Timestamp(_, _) => cast(
                    &cast(array, &DataType::Timestamp(TimeUnit::Microsecond, None))?,
                    &DataType::Int64,
                )?,
                DataType::Date64 => cast(&cast(array, &DataType::Date32)?, &DataType::Int64)?,
                _ => cast(array, &DataType::Int64)?,
            };
            let a = c.as_primitive::<Int64Type>();
            for i in 0..n {
                out.push(if a.is_null(i) {
                    Value::Null
                } else {
                    Value::Num(a.value(i) as f64)
                });
            }
        }
        _ => {
            let c = cast(array, &DataType::Utf8)?;
            let a = c.as_string::<i32>();
            for i in 0..n {
                out.push(if a.is_null(i) {
                    Value::Null
                } else {
                    Value::Str(a.value(i).to_string())
                });
            }
        }
    }
    Ok(out)
}

/// Normalises record batches into rows.
pub fn normalize(batches: &[RecordBatch]) -> Result<Rows> {
    let mut rows = Rows::default();
    for batch in batches {
        rows.columns = batch.num_columns();
        let columns = batch
            .columns()
            .iter()
            .map(column_values)
            .collect::<Result<Vec<_>>>()?;
        for r in 0..batch.num_rows() {
            rows.rows
                .push(columns.iter().map(|c| c[r].clone()).collect());
        }
    }
    if rows.columns == 0
        && let Some(b) = batches.first()
    {
        rows.columns = b.num_columns();
    }
    Ok(rows)
}

/// Reads an Arrow IPC file (as written by the engine workers) into rows.
pub fn read_ipc(path: &Path) -> Result<Rows> {
    let file = File::open(path).at(path)?;
    let reader = FileReader::try_new(file, None)?;
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    normalize(&batches)
}

fn sort_rows(rows: &mut [Vec<Value>]) {
    let mut keyed: Vec<(Vec<String>, Vec<Value>)> = rows
        .iter_mut()
        .map(|r| (r.iter().map(Value::key).collect(), std::mem::take(r)))
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    for (slot, (_, row)) in rows.iter_mut().zip(keyed) {
        *slot = row;
    }
}

/// Compares two result sets, ignoring row order and column names.
pub fn compare(left: &Rows, right: &Rows) -> Comparison {
    let mut out = Comparison {
        rows_left: left.rows.len(),
        rows_right: right.rows.len(),
        equal: false,
        difference: None,
    };
    if left.rows.len() != right.rows.len() {
        out.difference = Some(format!(
            "{} rows against {} rows",
            left.rows.len(),
            right.rows.len()
        ));
        return out;
    }
    if left.columns != right.columns && !left.rows.is_empty() {
        out.difference = Some(format!(
            "{} columns against {} columns",
            left.columns, right.columns
        ));
        return out;
    }
    let mut l = left.rows.clone();
    let mut r = right.rows.clone();
    sort_rows(&mut l);
    sort_rows(&mut r);
    for (i, (a, b)) in l.iter().zip(&r).enumerate() {
        for (c, (x, y)) in a.iter().zip(b).enumerate() {
            if !x.same(y) {
                out.difference = Some(format!("sorted row {i}, column {c}: {x} against {y}"));
                return out;
            }
        }
    }
    out.equal = true;
    out
}

/// Orders two values the way [`compare`] sorts (used by tests).
pub fn key_order(a: &Value, b: &Value) -> Ordering {
    a.key().cmp(&b.key())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        Float64Array, Int32Array, Int64Array, StringArray, StringViewArray,
        TimestampMicrosecondArray, TimestampNanosecondArray, UInt64Array,
    };
    use arrow::datatypes::{Field, Schema};

    use super::*;

    fn batch(columns: Vec<ArrayRef>) -> RecordBatch {
        let fields: Vec<Field> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| Field::new(format!("c{i}"), c.data_type().clone(), true))
            .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
    }

    #[test]
    fn different_types_same_values_are_equal() {
        // DataFusion: UInt64 counts, Utf8View strings, microsecond timestamps.
        let left = batch(vec![
            Arc::new(StringViewArray::from(vec!["b", "a"])),
            Arc::new(UInt64Array::from(vec![2, 1])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![1_000_000, 2_000_000]).with_timezone("UTC"),
            ),
        ]);
        // DuckDB: Int64 counts, Utf8 strings, nanoseconds, other row order.
        let right = batch(vec![
            Arc::new(StringArray::from(vec!["a", "b"])),
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(TimestampNanosecondArray::from(vec![
                2_000_000_000,
                1_000_000_000,
            ])),
        ]);
        let c = compare(&normalize(&[left]).unwrap(), &normalize(&[right]).unwrap());
        assert!(c.equal, "{c:?}");
        assert_eq!(c.rows_left, 2);
    }

    #[test]
    fn floats_within_tolerance_are_equal() {
        let left = batch(vec![Arc::new(Float64Array::from(vec![0.1 + 0.2, 1e9]))]);
        let right = batch(vec![Arc::new(Float64Array::from(vec![0.3, 1e9 + 1.0]))]);
        let c = compare(&normalize(&[left]).unwrap(), &normalize(&[right]).unwrap());
        assert!(c.equal, "{c:?}");
    }

    #[test]
    fn different_values_are_reported() {
        let left = batch(vec![Arc::new(Int32Array::from(vec![Some(1), None]))]);
        let right = batch(vec![Arc::new(Int32Array::from(vec![Some(1), Some(2)]))]);
        let c = compare(&normalize(&[left]).unwrap(), &normalize(&[right]).unwrap());
        assert!(!c.equal);
        assert!(c.difference.unwrap().contains("column 0"));
    }

    #[test]
    fn different_row_counts_are_reported() {
        let left = batch(vec![Arc::new(Int32Array::from(vec![1, 2, 3]))]);
        let right = batch(vec![Arc::new(Int32Array::from(vec![1, 2]))]);
        let c = compare(&normalize(&[left]).unwrap(), &normalize(&[right]).unwrap());
        assert!(!c.equal);
        assert_eq!(c.difference.as_deref(), Some("3 rows against 2 rows"));
    }

    #[test]
    fn ipc_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.arrow");
        let b = batch(vec![Arc::new(StringArray::from(vec![Some("x"), None]))]);
        let mut w =
            arrow::ipc::writer::FileWriter::try_new(File::create(&path).unwrap(), &b.schema())
                .unwrap();
        w.write(&b).unwrap();
        w.finish().unwrap();
        let rows = read_ipc(&path).unwrap();
        assert_eq!(
            rows.rows,
            vec![vec![Value::Str("x".into())], vec![Value::Null]]
        );
        assert_eq!(key_order(&Value::Null, &Value::Num(1.0)), Ordering::Less);
    }
}
