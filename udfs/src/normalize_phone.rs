//! `normalize_phone(s, default_region) -> VARCHAR`: a phone number in E.164
//! form (`+33612345678`), parsed and validated with libphonenumber's metadata
//! (the `phonenumber` crate).

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::str::FromStr;
use std::sync::{Arc, LazyLock};

use arrow::array::{Array, new_null_array};
use arrow::datatypes::DataType;
use datafusion::common::utils::take_function_args;
use datafusion::common::{exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use phonenumber::Mode;
use phonenumber::country::Id;

use crate::docs::SECTION_SCALAR;
use crate::strings::{StringOut, for_each_str, is_string_type, scalar_str, string_scalar};

/// Longest input that is parsed at all (libphonenumber's own limit); longer
/// strings give NULL without being looked at.
pub const MAX_INPUT_LEN: usize = 250;

/// Resolves an ISO 3166 alpha-2 region code (case-insensitive, surrounding
/// whitespace ignored); `None` when unknown.
pub fn resolve_region(region: &str) -> Option<Id> {
    let region = region.trim();
    if region.len() != 2 || !region.is_ascii() {
        return None;
    }
    Id::from_str(&region.to_ascii_uppercase()).ok()
}

/// The E.164 form of `input` read in `region`, or `None` when it is not a
/// valid number.
pub fn normalize_phone_in(input: &str, region: Id) -> Option<String> {
    let input = input.trim();
    if input.is_empty() || input.len() > MAX_INPUT_LEN {
        return None;
    }
    // The phonenumber crate has had panics on malformed inputs: a bad row
    // must give NULL, not bring the query (or a worker) down.
    catch_unwind(AssertUnwindSafe(|| {
        let number = phonenumber::parse(Some(region), input).ok()?;
        phonenumber::is_valid(&number).then(|| number.format().mode(Mode::E164).to_string())
    }))
    .ok()
    .flatten()
}

/// `normalize_phone` on plain strings: `None` for an unknown region or an
/// invalid number.
pub fn normalize_phone(input: &str, default_region: &str) -> Option<String> {
    normalize_phone_in(input, resolve_region(default_region)?)
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        SECTION_SCALAR,
        "Returns a phone number in E.164 form (`+33612345678`), parsed and validated \
         with libphonenumber's metadata. A number written without a country code \
         (`06 12 34 56 78`) is read in `default_region`; a number with one \
         (`+33 6 12 34 56 78`, or the region's international call prefix as in \
         `0033612345678` for FR) keeps its own country. Spaces, dots, dashes and \
         parentheses are ignored. Returns NULL when an argument is NULL, when the region \
         is unknown, or when the number is not valid for its country (too short, too \
         long, unassigned range). Inputs longer than 250 characters give NULL.",
        "normalize_phone(phone, default_region)",
    )
    .with_sql_example(
        r#"```sql
> SELECT normalize_phone('06 12 34 56 78', 'fr') AS national,
         normalize_phone('0033 6 12 34 56 78', 'FR') AS idd,
         normalize_phone('+1 (650) 253-0000', 'FR') AS international,
         normalize_phone('12', 'FR') AS invalid;
+--------------+--------------+---------------+---------+
| national     | idd          | international | invalid |
+--------------+--------------+---------------+---------+
| +33612345678 | +33612345678 | +16502530000  | NULL    |
+--------------+--------------+---------------+---------+
```"#,
    )
    .with_argument("phone", "The phone number as written: a string expression.")
    .with_argument(
        "default_region",
        "ISO 3166-1 alpha-2 code of the region used for numbers written without a \
         country code (`FR`, `us`, ...), case-insensitive. A constant is resolved once \
         per batch.",
    )
    .build()
});

/// Implementation of `normalize_phone`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct NormalizePhone {
    signature: Signature,
}

impl Default for NormalizePhone {
    fn default() -> Self {
        Self::new()
    }
}

impl NormalizePhone {
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// `normalize_phone` as a [`ScalarUDF`].
pub fn normalize_phone_udf() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(NormalizePhone::new()))
}

fn coerce_string(t: &DataType, what: &str) -> Result<DataType> {
    match t {
        t if is_string_type(t) => Ok(t.clone()),
        DataType::Null => Ok(DataType::Utf8),
        DataType::Dictionary(_, v) if is_string_type(v) => Ok(v.as_ref().clone()),
        t => plan_err!("normalize_phone expects a string {what}, got {t}"),
    }
}

impl ScalarUDFImpl for NormalizePhone {
    fn name(&self) -> &str {
        "normalize_phone"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types.first() {
            Some(t) if is_string_type(t) => Ok(t.clone()),
            _ => Ok(DataType::Utf8),
        }
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [phone, region] => Ok(vec![
                coerce_string(phone, "phone number")?,
                coerce_string(region, "default_region")?,
            ]),
            _ => plan_err!(
                "normalize_phone expects 2 arguments (phone, default_region), got {}",
                arg_types.len()
            ),
        }
    }

    fn is_strict(&self) -> bool {
        true
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [phone, region] = take_function_args(self.name(), &args.args)?;
        let out_type = args.return_type().clone();
        match (phone, region) {
            (ColumnarValue::Scalar(phone), ColumnarValue::Scalar(region)) => {
                let out = match (scalar_str(phone)?, scalar_str(region)?) {
                    (Some(p), Some(r)) => normalize_phone(p, r),
                    _ => None,
                };
                Ok(ColumnarValue::Scalar(string_scalar(&out_type, out)?))
            }
            (ColumnarValue::Array(phones), ColumnarValue::Scalar(region)) => {
                // The region is resolved once for the whole batch.
                let Some(region) = scalar_str(region)?.and_then(resolve_region) else {
                    return Ok(ColumnarValue::Array(new_null_array(
                        &out_type,
                        phones.len(),
                    )));
                };
                let mut out = StringOut::new(&out_type, phones.len())?;
                for_each_str(phones.as_ref(), |_, p| {
                    out.append_option(p.and_then(|p| normalize_phone_in(p, region)).as_deref());
                    Ok(())
                })?;
                Ok(ColumnarValue::Array(out.finish()))
            }
            (phone, region) => {
                let n = args.number_rows;
                let phones = phone.to_array(n)?;
                let regions = region.to_array(n)?;
                if phones.len() != regions.len() {
                    return exec_err!("normalize_phone: arguments of different lengths");
                }
                let mut region_values: Vec<Option<&str>> = Vec::with_capacity(n);
                for_each_str(regions.as_ref(), |_, r| {
                    region_values.push(r);
                    Ok(())
                })?;
                // Each distinct region string is resolved once per batch.
                let mut resolved: HashMap<&str, Option<Id>> = HashMap::new();
                let mut out = StringOut::new(&out_type, phones.len())?;
                for_each_str(phones.as_ref(), |i, p| {
                    let region = region_values[i]
                        .and_then(|r| *resolved.entry(r).or_insert_with(|| resolve_region(r)));
                    let value = match (p, region) {
                        (Some(p), Some(region)) => normalize_phone_in(p, region),
                        _ => None,
                    };
                    out.append_option(value.as_deref());
                    Ok(())
                })?;
                Ok(ColumnarValue::Array(out.finish()))
            }
        }
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{ArrayRef, LargeStringArray, StringArray, StringViewArray};
    use arrow::datatypes::Field;
    use datafusion::common::ScalarValue;
    use datafusion::config::ConfigOptions;

    use super::*;

    #[test]
    fn french_numbers() {
        for s in [
            "0612345678",
            "06 12 34 56 78",
            "06.12.34.56.78",
            "06-12-34-56-78",
            "+33612345678",
            "+33 6 12 34 56 78",
            "+33 (0)6 12 34 56 78",
            "0033612345678",
            "0033 6 12 34 56 78",
            "  06 12 34 56 78  ",
        ] {
            assert_eq!(
                normalize_phone(s, "FR").as_deref(),
                Some("+33612345678"),
                "{s:?}"
            );
        }
        assert_eq!(
            normalize_phone("01 42 68 53 00", "fr").as_deref(),
            Some("+33142685300")
        );
    }

    #[test]
    fn other_regions() {
        assert_eq!(
            normalize_phone("(650) 253-0000", "US").as_deref(),
            Some("+16502530000")
        );
        assert_eq!(
            normalize_phone("+1 650 253 0000", "FR").as_deref(),
            Some("+16502530000")
        );
        assert_eq!(
            normalize_phone("020 7946 0018", "gb").as_deref(),
            Some("+442079460018")
        );
        assert_eq!(
            normalize_phone("030 123456", " de ").as_deref(),
            Some("+4930123456")
        );
    }

    #[test]
    fn invalid_numbers_and_regions() {
        for s in [
            "",
            "  ",
            "12",
            "abc",
            "06 12",
            "+33 6 12 34 56 78 90 12",
            "+999 123456789",
        ] {
            assert_eq!(normalize_phone(s, "FR"), None, "{s:?}");
        }
        assert_eq!(normalize_phone("0612345678", "XX"), None);
        assert_eq!(normalize_phone("0612345678", ""), None);
        assert_eq!(normalize_phone("0612345678", "FRA"), None);
        assert_eq!(normalize_phone("+33612345678", "ZZ"), None);
        assert_eq!(normalize_phone(&"6".repeat(10_000), "FR"), None);
        // fuzz-like inputs that crashed older versions of the parser
        for s in [
            "  2 22#:",
            "003-836-4618x3001",
            "+",
            "++33",
            "tel:",
            ";;",
            "0\u{0}1",
        ] {
            let _ = normalize_phone(s, "CH");
            let _ = normalize_phone(s, "FR");
        }
    }

    fn invoke(args: Vec<ColumnarValue>, n: usize) -> Result<ColumnarValue> {
        let dt = args[0].data_type();
        let arg_fields = args
            .iter()
            .map(|a| Arc::new(Field::new("a", a.data_type(), true)))
            .collect();
        NormalizePhone::new().invoke_with_args(ScalarFunctionArgs {
            args,
            arg_fields,
            number_rows: n,
            return_field: Arc::new(Field::new("r", dt, true)),
            config_options: Arc::new(ConfigOptions::new()),
        })
    }

    fn strings(array: &ArrayRef) -> Vec<Option<String>> {
        (0..array.len())
            .map(|i| match ScalarValue::try_from_array(array, i).unwrap() {
                ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => v,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn scalar_region_with_every_layout() {
        let values = vec![
            Some("06 12 34 56 78"),
            None,
            Some("nope"),
            Some("+44 20 7946 0018"),
        ];
        let expected = vec![
            Some("+33612345678".to_string()),
            None,
            None,
            Some("+442079460018".to_string()),
        ];
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(values.clone())),
            Arc::new(LargeStringArray::from(values.clone())),
            Arc::new(StringViewArray::from(values.clone())),
        ];
        for array in arrays {
            let dt = array.data_type().clone();
            let out = invoke(
                vec![
                    ColumnarValue::Array(array),
                    ColumnarValue::Scalar(ScalarValue::Utf8(Some("fr".into()))),
                ],
                4,
            )
            .unwrap()
            .into_array(4)
            .unwrap();
            assert_eq!(out.data_type(), &dt);
            assert_eq!(strings(&out), expected);
        }
    }

    #[test]
    fn unknown_or_null_scalar_region_gives_nulls() {
        let phones: ArrayRef = Arc::new(StringArray::from(vec!["+33612345678", "0612345678"]));
        for region in [
            ScalarValue::Utf8(Some("XX".into())),
            ScalarValue::Utf8(None),
        ] {
            let out = invoke(
                vec![
                    ColumnarValue::Array(Arc::clone(&phones)),
                    ColumnarValue::Scalar(region),
                ],
                2,
            )
            .unwrap()
            .into_array(2)
            .unwrap();
            assert_eq!(out.null_count(), 2);
        }
    }

    #[test]
    fn region_column() {
        let phones: ArrayRef = Arc::new(StringArray::from(vec![
            Some("0612345678"),
            Some("(650) 253-0000"),
            Some("0612345678"),
            Some("0612345678"),
            None,
        ]));
        let regions: ArrayRef = Arc::new(StringViewArray::from(vec![
            Some("FR"),
            Some("us"),
            None,
            Some("QQ"),
            Some("FR"),
        ]));
        let out = invoke(
            vec![ColumnarValue::Array(phones), ColumnarValue::Array(regions)],
            5,
        )
        .unwrap()
        .into_array(5)
        .unwrap();
        assert_eq!(
            strings(&out),
            vec![
                Some("+33612345678".into()),
                Some("+16502530000".into()),
                None,
                None,
                None
            ]
        );
        // scalar phone, column region
        let regions: ArrayRef = Arc::new(StringArray::from(vec!["FR", "BE"]));
        let out = invoke(
            vec![
                ColumnarValue::Scalar(ScalarValue::Utf8(Some("+32 470 12 34 56".into()))),
                ColumnarValue::Array(regions),
            ],
            2,
        )
        .unwrap()
        .into_array(2)
        .unwrap();
        assert_eq!(
            strings(&out),
            vec![Some("+32470123456".into()), Some("+32470123456".into())]
        );
    }

    #[test]
    fn scalar_scalar_and_empty() {
        let out = invoke(
            vec![
                ColumnarValue::Scalar(ScalarValue::Utf8View(Some("0612345678".into()))),
                ColumnarValue::Scalar(ScalarValue::Utf8(Some("FR".into()))),
            ],
            1,
        )
        .unwrap();
        match out {
            ColumnarValue::Scalar(v) => {
                assert_eq!(v, ScalarValue::Utf8View(Some("+33612345678".into())))
            }
            other => panic!("{other:?}"),
        }
        let empty: ArrayRef = Arc::new(StringArray::from(Vec::<&str>::new()));
        let out = invoke(
            vec![
                ColumnarValue::Array(empty),
                ColumnarValue::Scalar(ScalarValue::Utf8(Some("FR".into()))),
            ],
            0,
        )
        .unwrap()
        .into_array(0)
        .unwrap();
        assert_eq!(out.len(), 0);
    }

    #[test]
    fn many_rows() {
        let n = 20_000;
        let phones: ArrayRef =
            Arc::new(StringArray::from_iter_values((0..n).map(|i| {
                format!("06 12 {:02} {:02} {:02}", i % 100, (i / 100) % 100, 34)
            })));
        let out = invoke(
            vec![
                ColumnarValue::Array(phones),
                ColumnarValue::Scalar(ScalarValue::Utf8(Some("FR".into()))),
            ],
            n,
        )
        .unwrap()
        .into_array(n)
        .unwrap();
        assert_eq!(out.len(), n);
        assert_eq!(out.null_count(), 0);
    }

    #[test]
    fn coercion() {
        let f = NormalizePhone::new();
        assert_eq!(
            f.coerce_types(&[DataType::LargeUtf8, DataType::Null])
                .unwrap(),
            vec![DataType::LargeUtf8, DataType::Utf8]
        );
        assert!(f.coerce_types(&[DataType::Int64, DataType::Utf8]).is_err());
        assert!(f.coerce_types(&[DataType::Utf8]).is_err());
    }
}
