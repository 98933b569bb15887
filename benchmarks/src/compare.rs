//! Comparison of result sets between engines.
//!
//! Engines return the same answer with different Arrow types (DuckDB's
//! `BIGINT` against DataFusion's `UInt64`, `Utf8View` against `Utf8`,
//! timestamps in different units), so each column is first normalised to one
//! of five Arrow types: every number (integers, floats, decimals) becomes
//! `Float64`, dates (days) and timestamps (UTC microseconds) `Int64`,
//! booleans stay `Boolean`, everything else becomes `Utf8` (all-null columns
//! stay `Null`).
//! Both results are then sorted (row order is not part of the answer of most
//! queries; for the ordered ones the set is still what must agree) and
//! compared cell by cell, numbers with a relative tolerance, since sums of
//! floats depend on the order of the additions; dates and timestamps exactly.
//!
//! Results stay columnar throughout (a 10 M-row result costs about its Arrow
//! size, not a boxed value per cell): the sort is an index permutation from
//! arrow's row format over sort keys in which numbers are rounded below the
//! tolerance, so float noise does not reorder rows.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, new_null_array};
use arrow::compute::{cast, concat};
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit};
use arrow::ipc::reader::FileReader;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result};

/// Relative tolerance of numeric comparisons.
pub const REL_TOLERANCE: f64 = 1e-6;

/// Significant digits numbers keep in sort keys (coarser than
/// [`REL_TOLERANCE`], so values equal within it almost always share a key).
const KEY_DIGITS: i32 = 5;

/// One cell of a normalised result, borrowed from its column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Num(f64),
    /// Dates (days) and timestamps (UTC microseconds): compared exactly.
    Time(i64),
    Str(&'a str),
}

impl Value<'_> {
    /// Whether two cells hold the same value (numbers within tolerance).
    pub fn same(&self, other: &Value<'_>) -> bool {
        match (self, other) {
            (Value::Num(a), Value::Num(b)) => {
                if a == b || (a.is_nan() && b.is_nan()) {
                    return true;
                }
                let scale = a.abs().max(b.abs()).max(1e-9);
                (a - b).abs() / scale <= REL_TOLERANCE
            }
            _ => self == other,
        }
    }
}

impl std::fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Num(n) => write!(f, "{n}"),
            Value::Time(t) => write!(f, "{t}"),
            Value::Str(s) => write!(f, "'{s}'"),
        }
    }
}

/// A normalised result set: one column per result column, each `Float64`,
/// `Int64` (dates, timestamps), `Boolean`, `Utf8` or `Null`.
#[derive(Debug, Clone, Default)]
pub struct Columns {
    pub num_rows: usize,
    pub columns: Vec<ArrayRef>,
}

impl Columns {
    /// The cell at `row` of column `col`.
    pub fn value(&self, col: usize, row: usize) -> Value<'_> {
        let a = &self.columns[col];
        if a.is_null(row) {
            return Value::Null;
        }
        match a.data_type() {
            DataType::Boolean => Value::Bool(a.as_boolean().value(row)),
            DataType::Float64 => Value::Num(a.as_primitive::<Float64Type>().value(row)),
            DataType::Int64 => Value::Time(a.as_primitive::<Int64Type>().value(row)),
            DataType::Utf8 => Value::Str(a.as_string::<i32>().value(row)),
            _ => Value::Null,
        }
    }

    /// The row numbers in sorted order (see the module documentation).
    fn sorted_indices(&self) -> Result<Vec<usize>> {
        if self.columns.is_empty() {
            return Ok((0..self.num_rows).collect());
        }
        let keys: Vec<ArrayRef> = self.columns.iter().map(sort_key).collect();
        let converter = RowConverter::new(
            keys.iter()
                .map(|k| SortField::new(k.data_type().clone()))
                .collect(),
        )?;
        let rows = converter.convert_columns(&keys)?;
        drop(keys);
        let mut indices: Vec<usize> = (0..self.num_rows).collect();
        indices.sort_unstable_by(|&a, &b| rows.row(a).cmp(&rows.row(b)));
        Ok(indices)
    }
}

/// Rounds `x` to [`KEY_DIGITS`] significant digits (and -0 to 0).
fn round_key(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x + 0.0;
    }
    let magnitude = x.abs().log10().floor() as i32;
    let scale = 10f64.powi(KEY_DIGITS - 1 - magnitude);
    if !scale.is_finite() || scale == 0.0 {
        return x;
    }
    (x * scale).round() / scale
}

fn sort_key(column: &ArrayRef) -> ArrayRef {
    match column.data_type() {
        DataType::Float64 => {
            let a = column.as_primitive::<Float64Type>();
            let rounded: Float64Array = a.unary(round_key);
            Arc::new(rounded)
        }
        _ => Arc::clone(column),
    }
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

/// One result column as `Float64`, `Int64` (dates, timestamps), `Boolean`,
/// `Utf8` or `Null`.
fn normalize_column(array: &ArrayRef) -> Result<ArrayRef> {
    let dt = array.data_type().clone();
    Ok(match dt {
        DataType::Null | DataType::Boolean | DataType::Float64 | DataType::Utf8 => {
            Arc::clone(array)
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
        | DataType::Decimal32(_, _)
        | DataType::Decimal64(_, _)
        | DataType::Decimal128(_, _)
        | DataType::Decimal256(_, _) => cast(array, &DataType::Float64)?,
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _) => {
            // Dates as days since the epoch, timestamps as UTC microseconds.
            match dt {
                DataType::Timestamp(_, _) => cast(
                    &cast(array, &DataType::Timestamp(TimeUnit::Microsecond, None))?,
                    &DataType::Int64,
                )?,
                DataType::Date64 => cast(&cast(array, &DataType::Date32)?, &DataType::Int64)?,
                _ => cast(array, &DataType::Int64)?,
            }
        }
        _ => cast(array, &DataType::Utf8)?,
    })
}

/// Appends normalised batches, one at a time (so a reader's batches can be
/// dropped as they are normalised).
#[derive(Default)]
struct Builder {
    num_columns: Option<usize>,
    num_rows: usize,
    parts: Vec<Vec<ArrayRef>>,
}

impl Builder {
    fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        self.num_columns.get_or_insert(batch.num_columns());
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.num_rows += batch.num_rows();
        let columns = batch
            .columns()
            .iter()
            .map(normalize_column)
            .collect::<Result<Vec<_>>>()?;
        self.parts.push(columns);
        Ok(())
    }

    fn finish(self) -> Result<Columns> {
        let n = self.num_columns.unwrap_or(0);
        let mut columns = Vec::with_capacity(n);
        for c in 0..n {
            let parts: Vec<&ArrayRef> = self.parts.iter().map(|p| &p[c]).collect();
            // All-null columns are `Null` in one batch and typed in another:
            // they take the type of the typed parts.
            let typed = parts
                .iter()
                .map(|p| p.data_type())
                .find(|t| **t != DataType::Null)
                .cloned();
            let column = match (parts.len(), typed) {
                (0, _) => new_null_array(&DataType::Null, 0),
                (_, Some(t)) => {
                    let cast_parts = parts
                        .iter()
                        .map(|p| {
                            if *p.data_type() == t {
                                Ok(Arc::clone(*p))
                            } else {
                                Ok(new_null_array(&t, p.len()))
                            }
                        })
                        .collect::<Result<Vec<_>>>()?;
                    let refs: Vec<&dyn Array> = cast_parts.iter().map(|p| p.as_ref()).collect();
                    concat(&refs)?
                }
                (_, None) => new_null_array(&DataType::Null, self.num_rows),
            };
            columns.push(column);
        }
        Ok(Columns {
            num_rows: self.num_rows,
            columns,
        })
    }
}

/// Normalises record batches into columns.
pub fn normalize(batches: &[RecordBatch]) -> Result<Columns> {
    let mut b = Builder::default();
    for batch in batches {
        b.push(batch)?;
    }
    b.finish()
}

/// Reads an Arrow IPC file (as written by the engine workers), normalising
/// each batch as it is read.
pub fn read_ipc(path: &Path) -> Result<Columns> {
    let file = File::open(path).at(path)?;
    let reader = FileReader::try_new(std::io::BufReader::new(file), None)?;
    let mut b = Builder {
        num_columns: Some(reader.schema().fields().len()),
        ..Builder::default()
    };
    for batch in reader {
        b.push(&batch?)?;
    }
    b.finish()
}

/// Compares two result sets, ignoring row order and column names.
pub fn compare(left: &Columns, right: &Columns) -> Result<Comparison> {
    let mut out = Comparison {
        rows_left: left.num_rows,
        rows_right: right.num_rows,
        equal: false,
        difference: None,
    };
    if left.num_rows != right.num_rows {
        out.difference = Some(format!(
            "{} rows against {} rows",
            left.num_rows, right.num_rows
        ));
        return Ok(out);
    }
    if left.columns.len() != right.columns.len() && left.num_rows > 0 {
        out.difference = Some(format!(
            "{} columns against {} columns",
            left.columns.len(),
            right.columns.len()
        ));
        return Ok(out);
    }
    let l = left.sorted_indices()?;
    let r = right.sorted_indices()?;
    for (i, (&a, &b)) in l.iter().zip(&r).enumerate() {
        for c in 0..left.columns.len() {
            let (x, y) = (left.value(c, a), right.value(c, b));
            if !x.same(&y) {
                out.difference = Some(format!("sorted row {i}, column {c}: {x} against {y}"));
                return Ok(out);
            }
        }
    }
    out.equal = true;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use arrow::array::{
        BooleanArray, Float64Array, Int32Array, Int64Array, NullArray, StringArray,
        StringViewArray, TimestampMicrosecondArray, TimestampNanosecondArray, UInt64Array,
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

    fn cmp(left: &[RecordBatch], right: &[RecordBatch]) -> Comparison {
        compare(&normalize(left).unwrap(), &normalize(right).unwrap()).unwrap()
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
        let c = cmp(&[left], &[right]);
        assert!(c.equal, "{c:?}");
        assert_eq!(c.rows_left, 2);
    }

    #[test]
    fn a_mismatched_timestamp_is_found() {
        let left = batch(vec![Arc::new(TimestampMicrosecondArray::from(vec![
            1_000_000,
        ]))]);
        let right = batch(vec![Arc::new(TimestampNanosecondArray::from(vec![
            1_000_001_000,
        ]))]);
        // 1 µs apart (a relative difference of 1e-6, within the numeric
        // tolerance): timestamps compare exactly, so they differ.
        let c = cmp(std::slice::from_ref(&left), &[right]);
        assert_eq!(
            c.difference.as_deref(),
            Some("sorted row 0, column 0: 1000000 against 1000001")
        );
        let same = batch(vec![Arc::new(TimestampNanosecondArray::from(vec![
            1_000_000_000,
        ]))]);
        assert!(cmp(&[left], &[same]).equal);
    }

    #[test]
    fn floats_within_tolerance_are_equal() {
        let left = batch(vec![Arc::new(Float64Array::from(vec![0.1 + 0.2, 1e9]))]);
        let right = batch(vec![Arc::new(Float64Array::from(vec![0.3, 1e9 + 1.0]))]);
        let c = cmp(&[left], &[right]);
        assert!(c.equal, "{c:?}");
    }

    #[test]
    fn float_noise_does_not_reorder_rows() {
        // Sorted exactly, left would order (0.3 + 1e-12, "a") after
        // (0.3, "b") while right orders them the other way round; with keys
        // rounded to 5 significant digits both sort by the string.
        let left = batch(vec![
            Arc::new(Float64Array::from(vec![0.3 + 1e-12, 0.3])),
            Arc::new(StringArray::from(vec!["a", "b"])),
        ]);
        let right = batch(vec![
            Arc::new(Float64Array::from(vec![0.3, 0.3 + 1e-12])),
            Arc::new(StringArray::from(vec!["a", "b"])),
        ]);
        let c = cmp(&[left], &[right]);
        assert!(c.equal, "{c:?}");
    }

    #[test]
    fn different_values_are_reported() {
        let left = batch(vec![Arc::new(Int32Array::from(vec![Some(1), None]))]);
        let right = batch(vec![Arc::new(Int32Array::from(vec![Some(1), Some(2)]))]);
        let c = cmp(&[left], &[right]);
        assert!(!c.equal);
        // Nulls sort first: NULL against 1 in sorted row 0.
        assert_eq!(
            c.difference.as_deref(),
            Some("sorted row 0, column 0: NULL against 1")
        );
    }

    #[test]
    fn different_row_counts_are_reported() {
        let left = batch(vec![Arc::new(Int32Array::from(vec![1, 2, 3]))]);
        let right = batch(vec![Arc::new(Int32Array::from(vec![1, 2]))]);
        let c = cmp(&[left], &[right]);
        assert!(!c.equal);
        assert_eq!(c.difference.as_deref(), Some("3 rows against 2 rows"));
    }

    #[test]
    fn batches_split_differently_and_null_typed_parts_agree() {
        // Left in two batches, its first all-null part typed Null (as an
        // engine may send for a batch without values); right in one batch.
        let l1 = batch(vec![
            Arc::new(Int64Array::from(vec![3])),
            Arc::new(NullArray::new(1)),
        ]);
        let l2 = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("c0", DataType::Int64, true),
                Field::new("c1", DataType::Utf8, true),
            ])),
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec![Some("x"), None])),
            ],
        )
        .unwrap();
        let right = batch(vec![
            Arc::new(Int64Array::from(vec![2, 3, 1])),
            Arc::new(StringArray::from(vec![None, None, Some("x")])),
        ]);
        let c = cmp(&[l1, l2], &[right]);
        assert!(c.equal, "{c:?}");
        let left = normalize(&[batch(vec![Arc::new(BooleanArray::from(vec![true]))])]).unwrap();
        assert_eq!(left.value(0, 0), Value::Bool(true));
    }

    #[test]
    fn key_rounding() {
        assert_eq!(round_key(123_456.7), 123_460.0);
        assert_eq!(round_key(-0.0).to_bits(), 0.0f64.to_bits());
        assert_eq!(round_key(0.000_123_456), 0.000_123_46);
        assert!(round_key(f64::NAN).is_nan());
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
        w.write(&b).unwrap();
        w.finish().unwrap();
        let cols = read_ipc(&path).unwrap();
        assert_eq!(cols.num_rows, 4);
        assert_eq!(cols.value(0, 2), Value::Str("x"));
        assert_eq!(cols.value(0, 3), Value::Null);
    }

    #[test]
    fn empty_results_are_equal() {
        let e = batch(vec![Arc::new(Int32Array::from(Vec::<i32>::new()))]);
        let same = std::slice::from_ref(&e);
        assert!(cmp(same, same).equal);
        assert!(cmp(&[], &[]).equal);
    }
}
