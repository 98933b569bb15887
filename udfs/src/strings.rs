//! Helpers shared by the string functions: reading any of the three arrow
//! string layouts (Utf8, LargeUtf8, Utf8View) and building one of them.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, LargeStringBuilder, StringBuilder, StringViewBuilder,
};
use arrow::datatypes::DataType;
use datafusion::common::{ScalarValue, exec_err};
use datafusion::error::Result;

/// True for Utf8, LargeUtf8 and Utf8View.
pub(crate) fn is_string_type(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// Calls `f(row, value)` for every row of a string array (`None` for NULL).
pub(crate) fn for_each_str<'a>(
    array: &'a dyn Array,
    mut f: impl FnMut(usize, Option<&'a str>) -> Result<()>,
) -> Result<()> {
    match array.data_type() {
        DataType::Utf8 => {
            for (i, v) in array.as_string::<i32>().iter().enumerate() {
                f(i, v)?;
            }
        }
        DataType::LargeUtf8 => {
            for (i, v) in array.as_string::<i64>().iter().enumerate() {
                f(i, v)?;
            }
        }
        DataType::Utf8View => {
            for (i, v) in array.as_string_view().iter().enumerate() {
                f(i, v)?;
            }
        }
        other => return exec_err!("expected a string array, got {other}"),
    }
    Ok(())
}

/// The string inside a string scalar (`None` for NULL), or an error.
pub(crate) fn scalar_str(value: &ScalarValue) -> Result<Option<&str>> {
    match value {
        ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => {
            Ok(v.as_deref())
        }
        ScalarValue::Null => Ok(None),
        other => exec_err!("expected a string, got {}", other.data_type()),
    }
}

/// A scalar string of type `dt`.
pub(crate) fn string_scalar(dt: &DataType, value: Option<String>) -> Result<ScalarValue> {
    Ok(match dt {
        DataType::Utf8 => ScalarValue::Utf8(value),
        DataType::LargeUtf8 => ScalarValue::LargeUtf8(value),
        DataType::Utf8View => ScalarValue::Utf8View(value),
        other => return exec_err!("expected a string type, got {other}"),
    })
}

/// Builder for one of the three string layouts.
pub(crate) enum StringOut {
    Utf8(StringBuilder),
    Large(LargeStringBuilder),
    View(StringViewBuilder),
}

impl StringOut {
    pub(crate) fn new(dt: &DataType, capacity: usize) -> Result<Self> {
        Ok(match dt {
            DataType::Utf8 => {
                StringOut::Utf8(StringBuilder::with_capacity(capacity, capacity * 16))
            }
            DataType::LargeUtf8 => {
                StringOut::Large(LargeStringBuilder::with_capacity(capacity, capacity * 16))
            }
            DataType::Utf8View => StringOut::View(StringViewBuilder::with_capacity(capacity)),
            other => return exec_err!("expected a string type, got {other}"),
        })
    }

    pub(crate) fn append_value(&mut self, v: &str) {
        match self {
            StringOut::Utf8(b) => b.append_value(v),
            StringOut::Large(b) => b.append_value(v),
            StringOut::View(b) => b.append_value(v),
        }
    }

    pub(crate) fn append_null(&mut self) {
        match self {
            StringOut::Utf8(b) => b.append_null(),
            StringOut::Large(b) => b.append_null(),
            StringOut::View(b) => b.append_null(),
        }
    }

    pub(crate) fn append_option(&mut self, v: Option<&str>) {
        match v {
            Some(v) => self.append_value(v),
            None => self.append_null(),
        }
    }

    pub(crate) fn finish(self) -> ArrayRef {
        match self {
            StringOut::Utf8(mut b) => Arc::new(b.finish()),
            StringOut::Large(mut b) => Arc::new(b.finish()),
            StringOut::View(mut b) => Arc::new(b.finish()),
        }
    }
}
