//! Runs every `.slt` file under `tests/slt/` (sqllogictest format).
//!
//! - `slt/engine/**`: through a full Seglake session on a fresh temporary
//!   warehouse holding the demo data set (DDL persists in the catalog).
//! - any other directory (e.g. `slt/functions/`): a plain DataFusion context
//!   built from Seglake's session state (same functions and settings), where
//!   `CREATE TABLE ... AS VALUES` makes in-memory fixtures.
//!
//! Every file runs once per topology of `SEGLAKE_TEST_TOPOLOGIES` (default
//! `single,distributed`: a coordinator with 3 in-process workers), with the
//! same expected results.
//!
//! `cargo test -p seglake-tests --test sqllogictests -- <filter>` runs the
//! files whose path contains `<filter>`; files run several at a time.
//! `... -- --complete [<filter>]` rewrites the expected results of those
//! files with Seglake's answers (single node), as DataFusion's runner does:
//! check the diff by hand before committing, expected values must come from
//! an independent source.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider};
use datafusion::prelude::SessionContext;
use seglake_engine::{DEFAULT_CATALOG, DEFAULT_SCHEMA, Engine, Outcome, Session};
use seglake_tests::{TestWorkers, Topology};
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct SltError(String);

enum Target {
    Seglake(Session),
    DataFusion(SessionContext),
}

struct Db {
    target: Target,
    // Keeps the warehouse alive for the file's duration.
    _dir: Option<tempfile::TempDir>,
    _engine: Arc<Engine>,
    _workers: Option<TestWorkers>,
}

fn column_type(t: &DataType) -> DefaultColumnType {
    match t {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => DefaultColumnType::Integer,
        DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Decimal128(..) => {
            DefaultColumnType::FloatingPoint
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => DefaultColumnType::Text,
        _ => DefaultColumnType::Any,
    }
}

/// Cell text: NULL as `NULL`, empty strings as `(empty)`, floats rounded to
/// 12 significant digits so results do not depend on summation order.
fn cell(array: &dyn Array, row: usize) -> Result<String, SltError> {
    if array.is_null(row) {
        return Ok("NULL".into());
    }
    let text = match array.data_type() {
        DataType::Float64 => {
            let v = array
                .as_any()
                .downcast_ref::<arrow::array::Float64Array>()
                .expect("f64")
                .value(row);
            format_float(v)
        }
        DataType::Float32 => {
            let v = array
                .as_any()
                .downcast_ref::<arrow::array::Float32Array>()
                .expect("f32")
                .value(row);
            format_float(v as f64)
        }
        _ => {
            let f = ArrayFormatter::try_new(array, &FormatOptions::default())
                .map_err(|e| SltError(e.to_string()))?;
            f.value(row).to_string()
        }
    };
    Ok(if text.is_empty() {
        "(empty)".into()
    } else {
        text
    })
}

fn format_float(v: f64) -> String {
    if v.is_nan() || v.is_infinite() || v == v.trunc() && v.abs() < 1e15 {
        return format!("{v}");
    }
    let s = format!("{:.*e}", 11, v);
    let parsed: f64 = s.parse().expect("float");
    format!("{parsed}")
}

fn to_output(batches: &[RecordBatch]) -> Result<DBOutput<DefaultColumnType>, SltError> {
    let Some(first) = batches.first() else {
        return Ok(DBOutput::Rows {
            types: vec![],
            rows: vec![],
        });
    };
    let types = first
        .schema()
        .fields()
        .iter()
        .map(|f| column_type(f.data_type()))
        .collect();
    let mut rows = vec![];
    for b in batches {
        for r in 0..b.num_rows() {
            rows.push(
                b.columns()
                    .iter()
                    .map(|c| cell(c.as_ref(), r))
                    .collect::<Result<Vec<_>, _>>()?,
            );
        }
    }
    Ok(DBOutput::Rows { types, rows })
}

#[async_trait]
impl AsyncDB for Db {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<Self::ColumnType>, Self::Error> {
        let err = |e: &dyn std::fmt::Display| SltError(e.to_string());
        match &self.target {
            Target::Seglake(session) => {
                match session.execute(sql, vec![]).await.map_err(|e| err(&e))? {
                    Outcome::Rows { stream, .. } => {
                        let batches: Vec<RecordBatch> =
                            datafusion::physical_plan::common::collect(stream)
                                .await
                                .map_err(|e| err(&e))?;
                        to_output(&batches)
                    }
                    Outcome::Done { rows_affected } => {
                        Ok(DBOutput::StatementComplete(rows_affected.unwrap_or(0)))
                    }
                }
            }
            Target::DataFusion(ctx) => {
                let df = ctx.sql(sql).await.map_err(|e| err(&e))?;
                let batches = df.collect().await.map_err(|e| err(&e))?;
                if batches.is_empty() || batches[0].num_columns() == 0 {
                    return Ok(DBOutput::StatementComplete(0));
                }
                to_output(&batches)
            }
        }
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "seglake"
    }
}

fn slt_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            slt_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "slt") {
            out.push(p);
        }
    }
}

async fn open_db(path: &Path, topology: Topology) -> Db {
    let engine_dir = path.components().any(|c| c.as_os_str() == "engine");
    let (dir, engine, workers) = seglake_tests::engine_on(topology, engine_dir).await;
    let target = if engine_dir {
        Target::Seglake(engine.session("slt").expect("session"))
    } else {
        let ctx = SessionContext::new_with_state(engine.session_state().expect("state"));
        // In-memory `seglake.public` for `CREATE TABLE ... AS VALUES` fixtures.
        let catalog = MemoryCatalogProvider::new();
        catalog
            .register_schema(DEFAULT_SCHEMA, Arc::new(MemorySchemaProvider::new()))
            .expect("schema");
        ctx.register_catalog(DEFAULT_CATALOG, Arc::new(catalog));
        Target::DataFusion(ctx)
    };
    Db {
        target,
        _dir: Some(dir),
        _engine: engine,
        _workers: workers,
    }
}

/// Runs one file on one topology; `Err` carries the failure's text.
async fn run_file(file: &Path, topology: Topology, complete: bool) -> Result<(), String> {
    let db = open_db(file, topology).await;
    let mut runner = sqllogictest::Runner::new({
        let cell = Arc::new(std::sync::Mutex::new(Some(db)));
        move || {
            let cell = Arc::clone(&cell);
            async move {
                cell.lock()
                    .expect("lock")
                    .take()
                    .ok_or_else(|| SltError("only one connection per file".into()))
            }
        }
    });
    if complete {
        runner
            .update_test_file(
                file,
                " ",
                sqllogictest::default_validator,
                sqllogictest::default_normalizer,
                sqllogictest::default_column_validator,
            )
            .await
            .map_err(|e| e.to_string())
    } else {
        runner.run_file_async(file).await.map_err(|e| e.to_string())
    }
}

#[tokio::main]
async fn main() {
    use futures::StreamExt;

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("slt");
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `--complete` rewrites the expected results of the selected files with
    // what Seglake answers (single node): review the diff before committing.
    let complete = args.iter().any(|a| a == "--complete");
    let filter: Option<&String> = args.iter().find(|a| !a.starts_with('-'));
    let mut files = vec![];
    slt_files(&root, &mut files);
    let files: Vec<_> = files
        .into_iter()
        .filter(|f| filter.is_none_or(|p| f.to_string_lossy().contains(p.as_str())))
        .collect();
    let topologies = if complete {
        vec![Topology::Single]
    } else {
        Topology::selected()
    };
    let runs: Vec<(Topology, &PathBuf)> = topologies
        .iter()
        .flat_map(|t| files.iter().map(move |f| (*t, f)))
        .collect();
    // Files are independent (each has its own warehouse): run several at
    // once, and report in a stable order.
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    let root = root.as_path();
    let mut results: Vec<(String, Result<(), String>)> = futures::stream::iter(runs)
        .map(|(topology, file)| async move {
            let name = format!(
                "[{}] {}",
                topology.name(),
                file.strip_prefix(root).unwrap_or(file).display()
            );
            (name, run_file(file, topology, complete).await)
        })
        .buffer_unordered(jobs)
        .collect()
        .await;
    results.sort_by(|a, b| a.0.cmp(&b.0));
    let mut failed = 0;
    for (name, result) in &results {
        match result {
            Ok(()) => eprintln!("ok   {name}"),
            Err(e) => {
                failed += 1;
                eprintln!("FAIL {name}\n{e}\n");
            }
        }
    }
    let passed = results.len() - failed;
    // The closing line test runners are read by.
    eprintln!("sqllogictests: {passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
