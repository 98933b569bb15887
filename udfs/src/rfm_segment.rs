//! `rfm_segment(r_score, f_score) -> VARCHAR`: the classic RFM segment name
//! of a recency score and a frequency score (both 1..5).

use std::sync::{Arc, LazyLock};

use arrow::array::{AsArray, StringBuilder};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};
use datafusion::common::utils::take_function_args;
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use crate::docs::SECTION_SCALAR;

/// Segment names, indexed by `[r - 1][f - 1]`.
const SEGMENTS: [[&str; 5]; 5] = [
    // R = 1
    [
        "Hibernating",
        "Hibernating",
        "At Risk",
        "At Risk",
        "Can't Lose Them",
    ],
    // R = 2
    [
        "Hibernating",
        "Hibernating",
        "At Risk",
        "At Risk",
        "Can't Lose Them",
    ],
    // R = 3
    [
        "About To Sleep",
        "About To Sleep",
        "Need Attention",
        "Loyal Customers",
        "Loyal Customers",
    ],
    // R = 4
    [
        "Promising",
        "Potential Loyalists",
        "Potential Loyalists",
        "Loyal Customers",
        "Loyal Customers",
    ],
    // R = 5
    [
        "New Customers",
        "Potential Loyalists",
        "Potential Loyalists",
        "Champions",
        "Champions",
    ],
];

/// The segment of an `(r, f)` pair, `None` when a score is NULL or outside 1..5.
pub fn segment(r: Option<i64>, f: Option<i64>) -> Option<&'static str> {
    let (r, f) = (r?, f?);
    if !(1..=5).contains(&r) || !(1..=5).contains(&f) {
        return None;
    }
    Some(SEGMENTS[(r - 1) as usize][(f - 1) as usize])
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    let mut matrix = String::from("| R \\ F | 1 | 2 | 3 | 4 | 5 |\n|---|---|---|---|---|---|\n");
    for (r, row) in SEGMENTS.iter().enumerate() {
        matrix.push_str(&format!("| {} | {} |\n", r + 1, row.join(" | ")));
    }
    Documentation::builder(
        SECTION_SCALAR,
        format!(
            "Returns the RFM segment name of a recency score and a frequency score. \
             Both scores are integers from 1 to 5 (5 = most recent / most frequent), \
             any integer type is accepted. A NULL score or a score outside 1..5 gives NULL. \
             The row is the R score, the column the F score:\n\n{matrix}\n\
             See the RFM recipe below for computing the scores with `NTILE(5)`."
        ),
        "rfm_segment(r_score, f_score)",
    )
    .with_sql_example(
        r#"```sql
> SELECT rfm_segment(5, 4) AS a, rfm_segment(1, 5) AS b, rfm_segment(3, 3) AS c, rfm_segment(0, 3) AS d;
+-----------+-----------------+----------------+------+
| a         | b               | c              | d    |
+-----------+-----------------+----------------+------+
| Champions | Can't Lose Them | Need Attention | NULL |
+-----------+-----------------+----------------+------+
```"#,
    )
    .with_argument("r_score", "Recency score, an integer from 1 (oldest purchase) to 5 (most recent).")
    .with_argument("f_score", "Frequency score, an integer from 1 (fewest purchases) to 5 (most).")
    .build()
});

/// Implementation of `rfm_segment`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RfmSegment {
    signature: Signature,
}

impl Default for RfmSegment {
    fn default() -> Self {
        Self::new()
    }
}

impl RfmSegment {
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// `rfm_segment` as a [`ScalarUDF`].
pub fn rfm_segment_udf() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(RfmSegment::new()))
}

fn scalar_to_i64(value: &ScalarValue) -> Result<Option<i64>> {
    if value.is_null() {
        return Ok(None);
    }
    match value.cast_to(&DataType::Int64)? {
        ScalarValue::Int64(v) => Ok(v),
        other => exec_err!("rfm_segment: unexpected score {other}"),
    }
}

impl ScalarUDFImpl for RfmSegment {
    fn name(&self) -> &str {
        "rfm_segment"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if arg_types.len() != 2 {
            return plan_err!(
                "rfm_segment expects 2 arguments (r_score, f_score), got {}",
                arg_types.len()
            );
        }
        arg_types
            .iter()
            .map(|t| {
                if t.is_integer() || t.is_null() {
                    Ok(DataType::Int64)
                } else {
                    plan_err!("rfm_segment expects integer scores, got {t}")
                }
            })
            .collect()
    }

    fn is_strict(&self) -> bool {
        true
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [r, f] = take_function_args(self.name(), &args.args)?;
        if let (ColumnarValue::Scalar(r), ColumnarValue::Scalar(f)) = (r, f) {
            let seg = segment(scalar_to_i64(r)?, scalar_to_i64(f)?);
            return Ok(ColumnarValue::Scalar(ScalarValue::Utf8(
                seg.map(str::to_string),
            )));
        }
        let n = args.number_rows;
        let r = cast(&r.to_array(n)?, &DataType::Int64)?;
        let f = cast(&f.to_array(n)?, &DataType::Int64)?;
        let (r, f) = (r.as_primitive::<Int64Type>(), f.as_primitive::<Int64Type>());
        let mut out = StringBuilder::with_capacity(r.len(), r.len() * 12);
        for (r, f) in r.iter().zip(f.iter()) {
            match segment(r, f) {
                Some(s) => out.append_value(s),
                None => out.append_null(),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{ArrayRef, Int8Array, Int64Array, StringArray, UInt16Array};
    use arrow::datatypes::Field;
    use datafusion::config::ConfigOptions;

    use super::*;

    fn invoke(args: Vec<ColumnarValue>, n: usize) -> Result<ColumnarValue> {
        let arg_fields = args
            .iter()
            .map(|a| Arc::new(Field::new("a", a.data_type(), true)))
            .collect();
        RfmSegment::new().invoke_with_args(ScalarFunctionArgs {
            args,
            arg_fields,
            number_rows: n,
            return_field: Arc::new(Field::new("r", DataType::Utf8, true)),
            config_options: Arc::new(ConfigOptions::new()),
        })
    }

    #[test]
    fn full_matrix() {
        let expected = [
            ("Hibernating", vec![(1, 1), (1, 2), (2, 1), (2, 2)]),
            ("At Risk", vec![(1, 3), (1, 4), (2, 3), (2, 4)]),
            ("Can't Lose Them", vec![(1, 5), (2, 5)]),
            ("About To Sleep", vec![(3, 1), (3, 2)]),
            ("Need Attention", vec![(3, 3)]),
            ("Loyal Customers", vec![(3, 4), (3, 5), (4, 4), (4, 5)]),
            ("Promising", vec![(4, 1)]),
            ("Potential Loyalists", vec![(4, 2), (4, 3), (5, 2), (5, 3)]),
            ("New Customers", vec![(5, 1)]),
            ("Champions", vec![(5, 4), (5, 5)]),
        ];
        let mut count = 0;
        for (name, cells) in expected {
            for (r, f) in cells {
                assert_eq!(segment(Some(r), Some(f)), Some(name), "r={r} f={f}");
                count += 1;
            }
        }
        assert_eq!(count, 25);
    }

    #[test]
    fn out_of_range_and_null() {
        for (r, f) in [
            (0, 1),
            (6, 1),
            (1, 0),
            (1, 6),
            (-1, 3),
            (i64::MAX, 1),
            (i64::MIN, 5),
        ] {
            assert_eq!(segment(Some(r), Some(f)), None);
        }
        assert_eq!(segment(None, Some(1)), None);
        assert_eq!(segment(Some(1), None), None);
    }

    #[test]
    fn scalar_and_array_arguments() {
        let r: ArrayRef = Arc::new(Int64Array::from(vec![Some(5), None, Some(3), Some(9)]));
        let out = invoke(
            vec![
                ColumnarValue::Array(r),
                ColumnarValue::Scalar(ScalarValue::Int64(Some(5))),
            ],
            4,
        )
        .unwrap()
        .into_array(4)
        .unwrap();
        let out = out.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(
            out.iter().collect::<Vec<_>>(),
            vec![Some("Champions"), None, Some("Loyal Customers"), None]
        );

        let out = invoke(
            vec![
                ColumnarValue::Scalar(ScalarValue::Int64(Some(4))),
                ColumnarValue::Scalar(ScalarValue::Int64(Some(1))),
            ],
            1,
        )
        .unwrap();
        match out {
            ColumnarValue::Scalar(ScalarValue::Utf8(Some(s))) => assert_eq!(s, "Promising"),
            other => panic!("unexpected {other:?}"),
        }
        let out = invoke(
            vec![
                ColumnarValue::Scalar(ScalarValue::Int64(None)),
                ColumnarValue::Scalar(ScalarValue::Int64(Some(1))),
            ],
            1,
        )
        .unwrap();
        assert!(matches!(
            out,
            ColumnarValue::Scalar(ScalarValue::Utf8(None))
        ));
    }

    #[test]
    fn other_integer_types_and_empty_input() {
        let r: ArrayRef = Arc::new(Int8Array::from(vec![1, 5]));
        let f: ArrayRef = Arc::new(UInt16Array::from(vec![5, 1]));
        let out = invoke(vec![ColumnarValue::Array(r), ColumnarValue::Array(f)], 2)
            .unwrap()
            .into_array(2)
            .unwrap();
        let out = out.as_string::<i32>();
        assert_eq!(out.value(0), "Can't Lose Them");
        assert_eq!(out.value(1), "New Customers");

        let empty: ArrayRef = Arc::new(Int64Array::from(Vec::<i64>::new()));
        let out = invoke(
            vec![
                ColumnarValue::Array(Arc::clone(&empty)),
                ColumnarValue::Array(empty),
            ],
            0,
        )
        .unwrap()
        .into_array(0)
        .unwrap();
        assert_eq!(out.len(), 0);
    }

    #[test]
    fn coercion_accepts_integers_only() {
        let f = RfmSegment::new();
        assert_eq!(
            f.coerce_types(&[DataType::UInt8, DataType::Int32]).unwrap(),
            vec![DataType::Int64, DataType::Int64]
        );
        assert_eq!(
            f.coerce_types(&[DataType::Null, DataType::Int16]).unwrap(),
            vec![DataType::Int64, DataType::Int64]
        );
        assert!(
            f.coerce_types(&[DataType::Float64, DataType::Int32])
                .is_err()
        );
        assert!(f.coerce_types(&[DataType::Utf8, DataType::Int32]).is_err());
        assert!(f.coerce_types(&[DataType::Int32]).is_err());
    }

    #[test]
    fn huge_input() {
        let n = 1_000_000;
        let r: ArrayRef = Arc::new(Int64Array::from_iter_values((0..n).map(|i| i % 7)));
        let f: ArrayRef = Arc::new(Int64Array::from_iter_values((0..n).map(|i| i % 5 + 1)));
        let out = invoke(
            vec![ColumnarValue::Array(r), ColumnarValue::Array(f)],
            n as usize,
        )
        .unwrap()
        .into_array(n as usize)
        .unwrap();
        assert_eq!(out.len(), n as usize);
        // r = 0 and r = 6 give NULL: 2 rows out of 7
        let nulls = out.null_count();
        assert_eq!(nulls, (0..n).filter(|i| i % 7 == 0 || i % 7 == 6).count());
    }

    #[tokio::test]
    async fn through_sql() {
        let ctx = crate::test_util::ctx();
        let batches = ctx
            .sql("SELECT rfm_segment(CAST(5 AS TINYINT), CAST(5 AS BIGINT)) AS s")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let col = batches[0].column(0);
        assert_eq!(
            ScalarValue::try_from_array(col, 0).unwrap(),
            ScalarValue::Utf8(Some("Champions".into()))
        );
        let err = ctx.sql("SELECT rfm_segment(1.5, 2)").await.unwrap_err();
        assert!(err.to_string().contains("integer"), "{err}");
    }
}
