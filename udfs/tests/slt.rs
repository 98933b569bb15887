//! Runs the sqllogictest files of the Seglake functions
//! (`tests/slt/functions/*.slt` at the root of the workspace) against a plain
//! DataFusion `SessionContext` with `seglake_udfs::register_all` applied, one
//! fresh session per file.
//!
//! Results are rendered as DataFusion's own sqllogictest runner does: `NULL`,
//! `(empty)` for an empty string, `true`/`false`, floats rounded to 12
//! decimals without trailing zeros, other values with arrow's display.
//! Column types: `B` boolean, `I` integer, `R` float/decimal, `T` text,
//! `D` date/time, `P` timestamp, `?` anything else (not checked).

use std::path::{Path, PathBuf};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float16Type, Float32Type, Float64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use async_trait::async_trait;
use datafusion::error::DataFusionError;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::physical_plan::collect;
use datafusion::prelude::SessionContext;
use sqllogictest::{ColumnType, DBOutput};

#[derive(Debug, Clone, PartialEq, Eq)]
enum DfColumnType {
    Boolean,
    DateTime,
    Integer,
    Float,
    Text,
    Timestamp,
    Another,
}

impl ColumnType for DfColumnType {
    fn from_char(value: char) -> Option<Self> {
        Some(match value {
            'B' => Self::Boolean,
            'D' => Self::DateTime,
            'I' => Self::Integer,
            'P' => Self::Timestamp,
            'R' => Self::Float,
            'T' => Self::Text,
            _ => Self::Another,
        })
    }

    fn to_char(&self) -> char {
        match self {
            Self::Boolean => 'B',
            Self::DateTime => 'D',
            Self::Integer => 'I',
            Self::Timestamp => 'P',
            Self::Float => 'R',
            Self::Text => 'T',
            Self::Another => '?',
        }
    }
}

fn column_type(dt: &DataType) -> DfColumnType {
    match dt {
        DataType::Boolean => DfColumnType::Boolean,
        t if t.is_integer() => DfColumnType::Integer,
        t if t.is_floating() => DfColumnType::Float,
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => DfColumnType::Float,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => DfColumnType::Text,
        DataType::Date32 | DataType::Date64 | DataType::Time32(_) | DataType::Time64(_) => {
            DfColumnType::DateTime
        }
        DataType::Timestamp(..) => DfColumnType::Timestamp,
        DataType::Dictionary(_, v) => column_type(v),
        _ => DfColumnType::Another,
    }
}

fn float_to_string(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    let s = format!("{v:.12}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

fn cell(array: &ArrayRef, formatter: &ArrayFormatter<'_>, row: usize) -> String {
    if array.is_null(row) {
        return "NULL".to_string();
    }
    let text = match array.data_type() {
        DataType::Float64 => float_to_string(array.as_primitive::<Float64Type>().value(row)),
        DataType::Float32 => float_to_string(array.as_primitive::<Float32Type>().value(row) as f64),
        DataType::Float16 => {
            float_to_string(array.as_primitive::<Float16Type>().value(row).to_f64())
        }
        _ => formatter.value(row).to_string(),
    };
    if text.is_empty() {
        "(empty)".to_string()
    } else {
        text
    }
}

fn rows(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>, DataFusionError> {
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            out.push(
                batch
                    .columns()
                    .iter()
                    .zip(&formatters)
                    .map(|(c, f)| cell(c, f, row))
                    .collect(),
            );
        }
    }
    Ok(out)
}

struct SeglakeDb {
    ctx: SessionContext,
}

impl SeglakeDb {
    fn new() -> Result<Self, DataFusionError> {
        let mut state = SessionStateBuilder::new().with_default_features().build();
        seglake_udfs::register_all(&mut state)?;
        Ok(Self {
            ctx: SessionContext::new_with_state(state),
        })
    }
}

#[async_trait]
impl sqllogictest::AsyncDB for SeglakeDb {
    type Error = DataFusionError;
    type ColumnType = DfColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<Self::ColumnType>, Self::Error> {
        let df = self.ctx.sql(sql).await?;
        let plan = df.create_physical_plan().await?;
        let schema = plan.schema();
        let batches = collect(plan, self.ctx.task_ctx()).await?;
        let types: Vec<DfColumnType> = schema
            .fields()
            .iter()
            .map(|f| column_type(f.data_type()))
            .collect();
        let rows = rows(&batches)?;
        if rows.is_empty() && types.is_empty() {
            Ok(DBOutput::StatementComplete(0))
        } else {
            Ok(DBOutput::Rows { types, rows })
        }
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "seglake-datafusion"
    }
}

fn slt_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/slt/functions")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_slt_files() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(slt_dir())
        .expect("tests/slt/functions exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .slt file in {}", slt_dir().display());

    let mut failures = Vec::new();
    for file in &files {
        let mut runner = sqllogictest::Runner::new(|| async { SeglakeDb::new() });
        if let Err(e) = runner.run_file_async(file).await {
            failures.push(format!("{}:\n{}", file.display(), e.display(false)));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} slt files failed:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}

#[test]
fn float_formatting() {
    assert_eq!(float_to_string(0.5), "0.5");
    assert_eq!(float_to_string(1.0), "1");
    assert_eq!(float_to_string(4.0 / 7.0), "0.571428571429");
    assert_eq!(float_to_string(-0.0), "0");
    assert_eq!(float_to_string(f64::NAN), "NaN");
}
