//! `normalize_email(s) -> VARCHAR`: a canonical form of an e-mail address, or
//! NULL when the string is not a plausible address.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::DataType;
use datafusion::common::plan_err;
use datafusion::common::utils::take_function_args;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use crate::docs::SECTION_SCALAR;
use crate::strings::{StringOut, for_each_str, is_string_type, scalar_str, string_scalar};

/// Normalizes `input` into `out` (cleared first). Returns `false` (and leaves
/// `out` unspecified) when `input` is not a plausible e-mail address.
///
/// Rules, in order:
/// 1. trim surrounding whitespace, lowercase (Unicode);
/// 2. exactly one `@`, non-empty local part and domain, no whitespace inside,
///    a dot in the domain; otherwise not plausible;
/// 3. for `gmail.com` and `googlemail.com` (the same mailboxes): drop the
///    `+tag` suffix of the local part, remove its dots, and rewrite the
///    domain to `gmail.com`; an empty local part after that is not plausible.
///    Other domains keep their local part untouched (`+tag` included): not
///    every provider treats `+` as a tag separator.
pub fn normalize_email_into(input: &str, out: &mut String) -> bool {
    out.clear();
    let s = input.trim();
    if s.is_ascii() {
        out.push_str(s);
        out.make_ascii_lowercase();
    } else {
        out.extend(s.chars().flat_map(char::to_lowercase));
    }
    let Some(at) = out.find('@') else {
        return false;
    };
    let (local, domain) = (&out[..at], &out[at + 1..]);
    if local.is_empty()
        || domain.is_empty()
        || domain.contains('@')
        || !domain.contains('.')
        || out.chars().any(char::is_whitespace)
    {
        return false;
    }
    if domain == "gmail.com" || domain == "googlemail.com" {
        let untagged = local.split('+').next().unwrap_or_default();
        let canonical: String = untagged.chars().filter(|c| *c != '.').collect();
        if canonical.is_empty() {
            return false;
        }
        out.clear();
        out.push_str(&canonical);
        out.push_str("@gmail.com");
    }
    true
}

/// Convenience wrapper around [`normalize_email_into`].
pub fn normalize_email(input: &str) -> Option<String> {
    let mut out = String::new();
    normalize_email_into(input, &mut out).then_some(out)
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        SECTION_SCALAR,
        "Returns the canonical form of an e-mail address, for matching profiles across \
         sources: surrounding whitespace trimmed and the address lowercased. \
         For `gmail.com` and `googlemail.com` (the same mailboxes), the `+tag` suffix of \
         the local part is removed, the dots of the local part are removed, and the domain \
         is rewritten to `gmail.com`. Other domains keep their local part as is, `+tag` \
         included, since not every provider treats `+` as a tag separator. \
         Returns NULL when the input is NULL or not a plausible address: not exactly one \
         `@`, an empty local part or domain, whitespace inside the address, or a domain \
         without a dot. Accepts Utf8, LargeUtf8 and Utf8View; the result has the type of \
         the input.",
        "normalize_email(email)",
    )
    .with_sql_example(
        r#"```sql
> SELECT normalize_email('  John.Doe+promo@GoogleMail.com ') AS gmail,
         normalize_email('Jane+news@Example.org') AS other,
         normalize_email('not an email') AS invalid;
+-------------------+-----------------------+---------+
| gmail             | other                 | invalid |
+-------------------+-----------------------+---------+
| johndoe@gmail.com | jane+news@example.org | NULL    |
+-------------------+-----------------------+---------+
```"#,
    )
    .with_argument(
        "email",
        "The e-mail address to normalize: a string expression (Utf8, LargeUtf8 or Utf8View).",
    )
    .build()
});

/// Implementation of `normalize_email`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct NormalizeEmail {
    signature: Signature,
}

impl Default for NormalizeEmail {
    fn default() -> Self {
        Self::new()
    }
}

impl NormalizeEmail {
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// `normalize_email` as a [`ScalarUDF`].
pub fn normalize_email_udf() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(NormalizeEmail::new()))
}

impl ScalarUDFImpl for NormalizeEmail {
    fn name(&self) -> &str {
        "normalize_email"
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
            [t] if is_string_type(t) => Ok(vec![t.clone()]),
            [DataType::Null] => Ok(vec![DataType::Utf8]),
            [DataType::Dictionary(_, v)] if is_string_type(v) => Ok(vec![v.as_ref().clone()]),
            [t] => plan_err!("normalize_email expects a string argument, got {t}"),
            _ => plan_err!(
                "normalize_email expects 1 argument, got {}",
                arg_types.len()
            ),
        }
    }

    fn is_strict(&self) -> bool {
        true
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [arg] = take_function_args(self.name(), &args.args)?;
        let out_type = args.return_type().clone();
        let mut buf = String::new();
        match arg {
            ColumnarValue::Scalar(v) => {
                let out = scalar_str(v)?
                    .and_then(|s| normalize_email_into(s, &mut buf).then(|| buf.clone()));
                Ok(ColumnarValue::Scalar(string_scalar(&out_type, out)?))
            }
            ColumnarValue::Array(array) => {
                let mut out = StringOut::new(&out_type, array.len())?;
                for_each_str(array.as_ref(), |_, v| {
                    match v {
                        Some(s) if normalize_email_into(s, &mut buf) => out.append_value(&buf),
                        _ => out.append_null(),
                    }
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
    use arrow::array::{Array, ArrayRef, AsArray, LargeStringArray, StringArray, StringViewArray};
    use arrow::datatypes::Field;
    use datafusion::common::ScalarValue;
    use datafusion::config::ConfigOptions;

    use super::*;

    fn n(s: &str) -> Option<String> {
        normalize_email(s)
    }

    #[test]
    fn basic_normalization() {
        assert_eq!(
            n("  John.Doe@Example.COM "),
            Some("john.doe@example.com".into())
        );
        assert_eq!(
            n("jane+news@example.org"),
            Some("jane+news@example.org".into())
        );
        assert_eq!(n("\tA@B.C\n"), Some("a@b.c".into()));
        assert_eq!(n("élodie@Exemple.FR"), Some("élodie@exemple.fr".into()));
        assert_eq!(n("ÉLODIE@EXEMPLE.FR"), Some("élodie@exemple.fr".into()));
    }

    #[test]
    fn gmail_rules() {
        assert_eq!(
            n("John.Doe+promo@gmail.com"),
            Some("johndoe@gmail.com".into())
        );
        assert_eq!(n("j.o.h.n@googlemail.com"), Some("john@gmail.com".into()));
        assert_eq!(n("john+a+b@GMAIL.com"), Some("john@gmail.com".into()));
        assert_eq!(
            n("john.doe@gmail.co.uk"),
            Some("john.doe@gmail.co.uk".into())
        );
        assert_eq!(
            n("john.doe@mail.gmail.com"),
            Some("john.doe@mail.gmail.com".into())
        );
        // the local part vanishes
        assert_eq!(n("+promo@gmail.com"), None);
        assert_eq!(n("...@gmail.com"), None);
        assert_eq!(n(".+x@googlemail.com"), None);
    }

    #[test]
    fn implausible_addresses() {
        for s in [
            "",
            "   ",
            "john",
            "john@",
            "@example.com",
            "john@@example.com",
            "a@b@example.com",
            "john doe@example.com",
            "john@exa mple.com",
            "john@localhost",
            "john@example\u{a0}x.com",
        ] {
            assert_eq!(n(s), None, "{s:?}");
        }
    }

    fn invoke(arg: ColumnarValue, n: usize) -> Result<ColumnarValue> {
        let dt = arg.data_type();
        NormalizeEmail::new().invoke_with_args(ScalarFunctionArgs {
            args: vec![arg],
            arg_fields: vec![Arc::new(Field::new("a", dt.clone(), true))],
            number_rows: n,
            return_field: Arc::new(Field::new("r", dt, true)),
            config_options: Arc::new(ConfigOptions::new()),
        })
    }

    #[test]
    fn all_string_layouts() {
        let values = vec![Some(" A.B@GMAIL.COM"), None, Some("bad"), Some("x@y.z")];
        let expected = [Some("ab@gmail.com"), None, None, Some("x@y.z")];
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(values.clone())),
            Arc::new(LargeStringArray::from(values.clone())),
            Arc::new(StringViewArray::from(values.clone())),
        ];
        for array in arrays {
            let dt = array.data_type().clone();
            let out = invoke(ColumnarValue::Array(array), 4)
                .unwrap()
                .into_array(4)
                .unwrap();
            assert_eq!(out.data_type(), &dt);
            let got: Vec<Option<String>> = (0..out.len())
                .map(|i| match ScalarValue::try_from_array(&out, i).unwrap() {
                    ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => {
                        v
                    }
                    other => panic!("{other:?}"),
                })
                .collect();
            let expected: Vec<Option<String>> =
                expected.iter().map(|v| v.map(String::from)).collect();
            assert_eq!(got, expected, "{dt}");
        }
    }

    #[test]
    fn scalar_arguments() {
        for (scalar, expected) in [
            (
                ScalarValue::Utf8(Some("A@B.CO".into())),
                ScalarValue::Utf8(Some("a@b.co".into())),
            ),
            (
                ScalarValue::Utf8View(Some("nope".into())),
                ScalarValue::Utf8View(None),
            ),
            (ScalarValue::LargeUtf8(None), ScalarValue::LargeUtf8(None)),
        ] {
            match invoke(ColumnarValue::Scalar(scalar), 1).unwrap() {
                ColumnarValue::Scalar(v) => assert_eq!(v, expected),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn empty_and_huge_input() {
        let empty: ArrayRef = Arc::new(StringArray::from(Vec::<Option<&str>>::new()));
        let out = invoke(ColumnarValue::Array(empty), 0)
            .unwrap()
            .into_array(0)
            .unwrap();
        assert_eq!(out.len(), 0);

        // one huge value and many rows
        let huge = format!("{}@example.com", "x".repeat(1 << 20));
        assert_eq!(n(&huge).map(|s| s.len()), Some(huge.len()));
        let rows = 200_000;
        let array: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..rows).map(|i| format!("User.{i}+x@GoogleMail.com")),
        ));
        let out = invoke(ColumnarValue::Array(array), rows)
            .unwrap()
            .into_array(rows)
            .unwrap();
        let out = out.as_string::<i32>();
        assert_eq!(out.len(), rows);
        assert_eq!(out.null_count(), 0);
        assert_eq!(out.value(12345), "user12345@gmail.com");
    }

    #[test]
    fn coercion() {
        let f = NormalizeEmail::new();
        assert_eq!(
            f.coerce_types(&[DataType::Utf8View]).unwrap(),
            vec![DataType::Utf8View]
        );
        assert_eq!(
            f.coerce_types(&[DataType::Null]).unwrap(),
            vec![DataType::Utf8]
        );
        assert!(f.coerce_types(&[DataType::Int32]).is_err());
        assert!(f.coerce_types(&[DataType::Utf8, DataType::Utf8]).is_err());
    }
}
