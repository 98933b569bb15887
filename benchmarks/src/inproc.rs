//! The in-process Seglake engine of the suite: a `Session` on the warehouse,
//! in this process, driven by the same JSON-lines protocol as the Python
//! workers (`seglake-bench worker`).

use std::fs::File;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use arrow::record_batch::RecordBatch;
use futures::TryStreamExt;
use seglake_engine::{Engine, EngineConfig, Outcome, Session};

use crate::error::{IoContext, Result};
use crate::procs::{Request, Response};

/// How to open the in-process engine.
#[derive(Debug, Clone, Default)]
pub struct InprocOptions {
    pub warehouse: PathBuf,
    pub target_partitions: Option<usize>,
    pub batch_size: Option<usize>,
    pub memory_limit: Option<usize>,
    /// `KEY=VALUE` session settings, run as `SET KEY = 'VALUE'`.
    pub settings: Vec<String>,
}

/// Opens an engine and a session with the options.
pub async fn open_session(opts: &InprocOptions) -> Result<Session> {
    let mut config = EngineConfig::new(opts.warehouse.display().to_string());
    config.target_partitions = opts.target_partitions;
    config.batch_size = opts.batch_size;
    config.memory_limit = opts.memory_limit;
    let engine = Engine::open(config).await?;
    let session = engine.session("bench")?;
    for s in &opts.settings {
        let sql = set_statement(s)?;
        session.execute(&sql, vec![]).await?;
    }
    Ok(session)
}

/// `KEY=VALUE` as a `SET` statement.
pub fn set_statement(setting: &str) -> Result<String> {
    let (k, v) = setting.split_once('=').ok_or_else(|| {
        crate::BenchError::InvalidArgument(format!("setting '{setting}' is not KEY=VALUE"))
    })?;
    Ok(format!(
        "SET {} = '{}'",
        k.trim(),
        v.trim().replace('\'', "''")
    ))
}

/// Runs `sql` and collects the whole result.
pub async fn run_query(session: &Session, sql: &str) -> Result<Vec<RecordBatch>> {
    match session.execute(sql, vec![]).await? {
        Outcome::Rows { stream, .. } => Ok(stream.try_collect().await?),
        Outcome::Done { .. } => Ok(vec![]),
    }
}

/// Writes batches as an Arrow IPC file.
pub fn write_ipc(path: &Path, batches: &[RecordBatch]) -> Result<()> {
    let Some(first) = batches.first() else {
        // An empty result: an empty file with an empty schema.
        let schema = arrow::datatypes::Schema::empty();
        let f = File::create(path).at(path)?;
        let mut w = arrow::ipc::writer::FileWriter::try_new(f, &schema)?;
        w.finish()?;
        return Ok(());
    };
    let f = File::create(path).at(path)?;
    let mut w = arrow::ipc::writer::FileWriter::try_new(f, &first.schema())?;
    for b in batches {
        w.write(b)?;
    }
    w.finish()?;
    Ok(())
}

async fn answer(session: &Session, request: Request) -> Response {
    match request {
        Request::Info => Response {
            ok: true,
            engine: Some("seglake-inproc".into()),
            version: Some(format!("seglake {}", env!("CARGO_PKG_VERSION"))),
            pid: Some(std::process::id()),
            ..Response::default()
        },
        Request::Run { sql, out } => {
            let start = Instant::now();
            match run_query(session, &sql).await {
                Ok(batches) => {
                    let seconds = start.elapsed().as_secs_f64();
                    let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
                    let bytes = batches
                        .iter()
                        .map(|b| b.get_array_memory_size() as u64)
                        .sum();
                    if let Some(path) = out
                        && let Err(e) = write_ipc(&path, &batches)
                    {
                        return Response::error(e.to_string());
                    }
                    Response {
                        ok: true,
                        seconds: Some(seconds),
                        rows: Some(rows),
                        bytes: Some(bytes),
                        ..Response::default()
                    }
                }
                Err(e) => Response::error(e.to_string()),
            }
        }
        Request::Quit => Response::ok(),
    }
}

/// Serves requests from standard input until `quit` or end of input.
pub async fn serve_stdio(opts: &InprocOptions) -> Result<()> {
    let session = open_session(opts).await?;
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    for line in stdin.lock().lines() {
        let line = line.at("<stdin>")?;
        let request: Request = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                writeln!(
                    stdout,
                    "{}",
                    serde_json::to_string(&Response::error(e.to_string()))?
                )
                .at("<stdout>")?;
                continue;
            }
        };
        if request == Request::Quit {
            break;
        }
        let response = answer(&session, request).await;
        writeln!(stdout, "{}", serde_json::to_string(&response)?).at("<stdout>")?;
        stdout.flush().at("<stdout>")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_become_set_statements() {
        assert_eq!(
            set_statement("datafusion.execution.batch_size=16384").unwrap(),
            "SET datafusion.execution.batch_size = '16384'"
        );
        assert!(set_statement("nope").is_err());
    }
}
