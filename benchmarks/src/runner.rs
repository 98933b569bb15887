//! `run`: the segment suite on every engine, each in its own process,
//! alternating engines, with a checking run that compares the results.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::compare::{Comparison, compare, read_ipc};
use crate::datagen::{DataInfo, read_info, scale_label};
use crate::error::{BenchError, IoContext, Result};
use crate::machine::Machine;
use crate::procs::{Request, Server, Worker, peak_rss};
use crate::report::{EngineInfo, EngineTiming, QueryResult, REFERENCE, SuiteReport};
use crate::stats::summarize;
use crate::suite::Query;

/// Engine names.
pub const FLIGHT: &str = "seglake-flight";
pub const INPROC: &str = "seglake-inproc";
pub const DUCKDB: &str = "duckdb";

/// What to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub scale: f64,
    pub data: PathBuf,
    pub reps: usize,
    pub engines: Vec<String>,
    pub queries: Vec<Query>,
    pub python: PathBuf,
    pub seglake_bin: PathBuf,
    pub bench_bin: PathBuf,
    pub results: PathBuf,
    pub duckdb_threads: Option<usize>,
    pub check: bool,
    pub label: Option<String>,
    pub settings: Vec<String>,
    pub target_partitions: Option<usize>,
    pub batch_size: Option<usize>,
    pub memory_limit_mb: Option<usize>,
}

/// The Python scripts directory (`benchmarks/python`).
pub fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python")
}

/// A running engine: its worker, and the server behind it for Flight SQL.
struct Running {
    name: String,
    worker: Worker,
    server: Option<Server>,
    version: String,
}

impl Running {
    fn work_pid(&self) -> u32 {
        self.server.as_ref().map_or(self.worker.pid(), Server::pid)
    }
}

fn engine_flags(opts: &RunOptions) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(n) = opts.target_partitions {
        args.extend(["--target-partitions".to_string(), n.to_string()]);
    }
    if let Some(n) = opts.batch_size {
        args.extend(["--batch-size".to_string(), n.to_string()]);
    }
    if let Some(n) = opts.memory_limit_mb {
        args.extend(["--memory-limit-mb".to_string(), n.to_string()]);
    }
    args
}

fn start_engine(name: &str, opts: &RunOptions, scratch: &Path) -> Result<Running> {
    let script = python_dir().join("bench_worker.py");
    let (mut worker, server) = match name {
        FLIGHT => {
            let server = Server::start(
                &opts.seglake_bin,
                &opts.data,
                &engine_flags(opts),
                &scratch.join("seglake-server.log"),
            )?;
            let mut cmd = Command::new(&opts.python);
            cmd.arg(&script)
                .arg("flight")
                .arg("--uri")
                .arg(server.uri());
            (Worker::spawn(name, cmd)?, Some(server))
        }
        INPROC => {
            let mut cmd = Command::new(&opts.bench_bin);
            cmd.arg("worker").arg("--data").arg(&opts.data);
            cmd.args(engine_flags(opts));
            for s in &opts.settings {
                cmd.arg("--set").arg(s);
            }
            (Worker::spawn(name, cmd)?, None)
        }
        DUCKDB => {
            let mut cmd = Command::new(&opts.python);
            cmd.arg(&script).arg("duckdb").arg("--data").arg(&opts.data);
            if let Some(t) = opts.duckdb_threads {
                cmd.arg("--threads").arg(t.to_string());
            }
            if let Some(m) = opts.memory_limit_mb {
                cmd.arg("--memory-limit-mb").arg(m.to_string());
            }
            (Worker::spawn(name, cmd)?, None)
        }
        other => {
            return Err(BenchError::InvalidArgument(format!(
                "unknown engine '{other}' (engines: {FLIGHT}, {INPROC}, {DUCKDB})"
            )));
        }
    };
    let info = worker.request(&Request::Info)?;
    if !info.ok {
        return Err(BenchError::Process(format!(
            "{name}: {}",
            info.error.unwrap_or_default()
        )));
    }
    if name == FLIGHT {
        // Session settings of the Flight SQL session.
        for s in &opts.settings {
            let sql = crate::inproc::set_statement(s)?;
            let r = worker.request(&Request::Run { sql, out: None })?;
            if !r.ok {
                return Err(BenchError::Process(format!(
                    "{name}: setting {s}: {}",
                    r.error.unwrap_or_default()
                )));
            }
        }
    }
    Ok(Running {
        name: name.to_string(),
        worker,
        server,
        version: info.version.unwrap_or_default(),
    })
}

/// The order of the engines for repetition `rep` of query `q`: rotated so
/// that every engine runs first, in the middle and last equally often.
pub fn engine_order(n: usize, rep: usize, q: usize) -> Vec<usize> {
    (0..n).map(|i| (i + rep + q) % n).collect()
}

fn log(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// Runs the suite and writes `results/<label>.{json,md}`.
pub fn run(opts: &RunOptions) -> Result<(SuiteReport, PathBuf)> {
    let data: DataInfo = read_info(&opts.data).ok_or_else(|| {
        BenchError::InvalidArgument(format!(
            "{} holds no generated data: run `seglake-bench generate --scale {}` first",
            opts.data.display(),
            scale_label(opts.scale)
        ))
    })?;
    let mut machine = Machine::probe();
    let started_at = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let label = opts.label.clone().unwrap_or_else(|| {
        format!(
            "{}-sf{}",
            chrono::Utc::now().format("%Y%m%d-%H%M"),
            scale_label(opts.scale)
        )
    });
    let scratch = opts.results.join("tmp").join(&label);
    std::fs::create_dir_all(&scratch).at(&scratch)?;

    let mut engines = Vec::new();
    for name in &opts.engines {
        log(&format!("starting {name}"));
        engines.push(start_engine(name, opts, &scratch)?);
    }
    let reference = if opts.engines.iter().any(|e| e == REFERENCE) {
        REFERENCE.to_string()
    } else {
        opts.engines[0].clone()
    };

    let mut results: Vec<QueryResult> = opts
        .queries
        .iter()
        .map(|q| QueryResult {
            name: q.name.clone(),
            title: q.title.clone(),
            duckdb_note: q.duckdb_note.clone(),
            engines: engines
                .iter()
                .map(|e| (e.name.clone(), EngineTiming::default()))
                .collect(),
        })
        .collect();

    // Checking (and warming) run: every engine once, results compared.
    for (qi, q) in opts.queries.iter().enumerate() {
        let mut files = BTreeMap::new();
        for e in &mut engines {
            let sql = if e.name == DUCKDB {
                &q.duckdb_sql
            } else {
                &q.sql
            };
            let out = opts
                .check
                .then(|| scratch.join(format!("{}-{}.arrow", q.name, e.name)));
            let r = e.worker.request(&Request::Run {
                sql: sql.clone(),
                out: out.clone(),
            })?;
            let t = results[qi].engines.get_mut(&e.name).expect("engine");
            if r.ok {
                t.rows = r.rows;
                if let Some(f) = out {
                    files.insert(e.name.clone(), f);
                }
                log(&format!(
                    "check {} {}: {} rows in {:.3} s",
                    q.name,
                    e.name,
                    r.rows.unwrap_or(0),
                    r.seconds.unwrap_or(0.0)
                ));
            } else {
                log(&format!(
                    "check {} {}: FAILED {:?}",
                    q.name, e.name, r.error
                ));
                t.error = r.error;
            }
        }
        if let Some(ref_file) = files.get(&reference) {
            let ref_rows = read_ipc(ref_file)?;
            for (name, f) in &files {
                if *name == reference {
                    continue;
                }
                let c: Comparison = compare(&read_ipc(f)?, &ref_rows)?;
                if !c.equal {
                    log(&format!(
                        "check {} {name}: DIFFERS {:?}",
                        q.name, c.difference
                    ));
                }
                results[qi].engines.get_mut(name).expect("engine").check = Some(c);
            }
        }
    }

    // Timed repetitions, engines alternating.
    let n = engines.len();
    for rep in 0..opts.reps {
        log(&format!("repetition {}/{}", rep + 1, opts.reps));
        for (qi, q) in opts.queries.iter().enumerate() {
            for ei in engine_order(n, rep, qi) {
                let e = &mut engines[ei];
                if results[qi].engines[&e.name].error.is_some() {
                    continue;
                }
                let sql = if e.name == DUCKDB {
                    &q.duckdb_sql
                } else {
                    &q.sql
                };
                let r = e.worker.request(&Request::Run {
                    sql: sql.clone(),
                    out: None,
                })?;
                let t = results[qi].engines.get_mut(&e.name).expect("engine");
                match (r.ok, r.seconds) {
                    (true, Some(s)) => t.seconds.push(s),
                    _ => t.error = r.error.or_else(|| Some("no timing".into())),
                }
            }
        }
    }
    for q in &mut results {
        for t in q.engines.values_mut() {
            if t.error.is_none() {
                t.summary = summarize(&t.seconds);
            }
        }
    }
    let engine_infos = engines
        .iter()
        .map(|e| EngineInfo {
            name: e.name.clone(),
            version: e.version.clone(),
            peak_rss_bytes: peak_rss(e.work_pid()),
            client_peak_rss_bytes: e.server.as_ref().and_then(|_| peak_rss(e.worker.pid())),
        })
        .collect();
    drop(engines);
    machine.finish();
    let mut settings = engine_flags(opts);
    settings.extend(opts.settings.iter().cloned());
    let mut report = SuiteReport {
        label: label.clone(),
        started_at,
        scale: opts.scale,
        data,
        machine,
        reps: opts.reps,
        engines: engine_infos,
        settings,
        queries: results,
        geomean_seconds: BTreeMap::new(),
        geomean_ratio: BTreeMap::new(),
    };
    report.compute_aggregates();
    std::fs::create_dir_all(&opts.results).at(&opts.results)?;
    let json = opts.results.join(format!("{label}.json"));
    std::fs::write(&json, serde_json::to_string_pretty(&report)?).at(&json)?;
    let md = opts.results.join(format!("{label}.md"));
    std::fs::write(&md, report.markdown()).at(&md)?;
    let _ = std::fs::remove_dir_all(&scratch);
    Ok((report, md))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_order_rotates() {
        assert_eq!(engine_order(3, 0, 0), vec![0, 1, 2]);
        assert_eq!(engine_order(3, 1, 0), vec![1, 2, 0]);
        assert_eq!(engine_order(3, 0, 2), vec![2, 0, 1]);
        // Over n repetitions every engine is first once.
        let firsts: Vec<usize> = (0..3).map(|r| engine_order(3, r, 5)[0]).collect();
        let mut sorted = firsts.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![0, 1, 2]);
    }
}
