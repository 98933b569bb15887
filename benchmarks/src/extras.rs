//! `transfer`, `ingest`, `collect` and `concurrency`: Flight SQL and HTTP
//! collector measurements driven by `python/flight_extras.py` against a
//! `seglake serve` process.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{BenchError, IoContext, Result};
use crate::machine::Machine;
use crate::procs::{Server, peak_rss};

/// Which measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Extra {
    Transfer,
    Ingest,
    /// Events posted to the HTTP collector (`serve --collect`) of a server
    /// on a fresh, empty warehouse (the benchmark data is only read).
    Collect,
    Concurrency,
}

impl Extra {
    pub fn name(self) -> &'static str {
        match self {
            Extra::Transfer => "transfer",
            Extra::Ingest => "ingest",
            Extra::Collect => "collect",
            Extra::Concurrency => "concurrency",
        }
    }
}

/// Options of one measurement.
#[derive(Debug, Clone)]
pub struct ExtraOptions {
    pub what: Extra,
    pub data: PathBuf,
    pub python: PathBuf,
    pub seglake_bin: PathBuf,
    pub results: PathBuf,
    pub label: Option<String>,
    /// Extra arguments of the Python script (`--rows`, `--clients`...).
    pub script_args: Vec<String>,
    /// Extra arguments of `seglake serve`.
    pub server_args: Vec<String>,
}

/// A measurement's result file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtraReport {
    pub label: String,
    pub what: Extra,
    pub started_at: String,
    pub machine: Machine,
    pub data: PathBuf,
    pub server_args: Vec<String>,
    pub server_peak_rss_bytes: Option<u64>,
    pub result: Value,
}

/// Runs one measurement and writes `results/<label>.{json,md}`.
pub fn run(opts: &ExtraOptions) -> Result<(ExtraReport, PathBuf)> {
    let mut machine = Machine::probe();
    let started_at = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let label = opts.label.clone().unwrap_or_else(|| {
        format!(
            "{}-{}",
            chrono::Utc::now().format("%Y%m%d-%H%M"),
            opts.what.name()
        )
    });
    let log = std::env::temp_dir().join(format!("seglake-bench-{label}.log"));
    let mut server_args = opts.server_args.clone();
    // The collector writes `events`: it gets a warehouse of its own.
    let scratch = (opts.what == Extra::Collect)
        .then(|| std::env::temp_dir().join(format!("seglake-bench-{label}-warehouse")));
    if let Some(dir) = &scratch {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).at(dir)?;
        server_args.extend(["--collect".to_string(), "127.0.0.1:0".to_string()]);
    }
    let server = Server::start(
        &opts.seglake_bin,
        scratch.as_deref().unwrap_or(&opts.data),
        &server_args,
        &log,
    )?;
    let mut script = Command::new(&opts.python);
    script
        .arg(crate::runner::python_dir().join("flight_extras.py"))
        .arg(opts.what.name())
        .arg("--uri")
        .arg(server.uri())
        .arg("--data")
        .arg(&opts.data);
    if let Some(url) = server.collector_url() {
        script.arg("--collector").arg(url);
    }
    let output = script
        .args(&opts.script_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| BenchError::Process(format!("flight_extras.py: {e}")))?;
    let server_peak_rss_bytes = peak_rss(server.pid());
    drop(server);
    if let Some(dir) = &scratch {
        let _ = std::fs::remove_dir_all(dir);
    }
    if !output.status.success() {
        return Err(BenchError::Process(format!(
            "flight_extras.py {} failed: {} (server log: {})",
            opts.what.name(),
            output.status,
            log.display()
        )));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| BenchError::Process("flight_extras.py printed no result".into()))?;
    let result: Value = serde_json::from_str(line)?;
    machine.finish();
    let report = ExtraReport {
        label: label.clone(),
        what: opts.what,
        started_at,
        machine,
        data: opts.data.clone(),
        server_args,
        server_peak_rss_bytes,
        result,
    };
    std::fs::create_dir_all(&opts.results).at(&opts.results)?;
    let json = opts.results.join(format!("{label}.json"));
    std::fs::write(&json, serde_json::to_string_pretty(&report)?).at(&json)?;
    let md = opts.results.join(format!("{label}.md"));
    std::fs::write(&md, markdown(&report)).at(&md)?;
    Ok((report, md))
}

fn median_of(runs: &[Value], key: &str) -> Option<f64> {
    let v: Vec<f64> = runs.iter().filter_map(|r| r[key].as_f64()).collect();
    crate::stats::quantile(&v, 0.5)
}

/// The markdown summary of a measurement.
pub fn markdown(r: &ExtraReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "### {} (`{}`)\n", r.what.name(), r.label);
    let _ = writeln!(
        s,
        "- Started {}; machine: {}",
        r.started_at,
        r.machine.describe()
    );
    let _ = writeln!(
        s,
        "- Server peak RSS {}; server flags: `{}`\n",
        crate::report::mib(r.server_peak_rss_bytes),
        r.server_args.join(" ")
    );
    let empty = Vec::new();
    match r.what {
        Extra::Transfer => {
            let _ = writeln!(s, "| path | rows | median s | median MB/s (Arrow bytes) |");
            let _ = writeln!(s, "|---|---:|---:|---:|");
            // `flight_raw` is missing from results of before session 9.
            for (key, path) in [
                ("flight", "Flight SQL, ADBC (`flight`)"),
                ("flight_raw", "Flight SQL, pyarrow.flight (`flight_raw`)"),
                ("pyarrow_local", "local, pyarrow (`pyarrow_local`)"),
            ] {
                let Some(runs) = r.result[key].as_array() else {
                    continue;
                };
                let _ = writeln!(
                    s,
                    "| {path} | {} | {:.3} | {:.0} |",
                    runs.first().and_then(|x| x["rows"].as_u64()).unwrap_or(0),
                    median_of(runs, "seconds").unwrap_or(f64::NAN),
                    median_of(runs, "mb_per_s").unwrap_or(f64::NAN)
                );
            }
        }
        Extra::Ingest => {
            let runs = r.result["runs"].as_array().unwrap_or(&empty);
            let _ = writeln!(s, "| rows | median s | rows/s | MB/s |");
            let _ = writeln!(s, "|---:|---:|---:|---:|");
            let _ = writeln!(
                s,
                "| {} | {:.3} | {:.0} | {:.0} |",
                r.result["rows"].as_u64().unwrap_or(0),
                median_of(runs, "seconds").unwrap_or(f64::NAN),
                median_of(runs, "rows_per_s").unwrap_or(f64::NAN),
                median_of(runs, "mb_per_s").unwrap_or(f64::NAN)
            );
        }
        Extra::Collect => {
            let runs = r.result["runs"].as_array().unwrap_or(&empty);
            let _ = writeln!(
                s,
                "| rows | events per request | concurrent clients | median s | rows/s (acknowledged = committed) | request p95 |"
            );
            let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|");
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.3} | {:.0} | {} |",
                r.result["rows"].as_u64().unwrap_or(0),
                r.result["batch"].as_u64().unwrap_or(0),
                r.result["clients"].as_u64().unwrap_or(0),
                median_of(runs, "seconds").unwrap_or(f64::NAN),
                median_of(runs, "rows_per_s").unwrap_or(f64::NAN),
                median_of(runs, "request_p95").map_or_else(|| "-".into(), crate::report::ms)
            );
        }
        Extra::Concurrency => {
            let _ = writeln!(
                s,
                "| clients | queries | errors | queries/s | median | p95 |"
            );
            let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|");
            for l in r.result["levels"].as_array().unwrap_or(&empty) {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {:.2} | {} | {} |",
                    l["clients"],
                    l["queries"],
                    l["errors"],
                    l["queries_per_s"].as_f64().unwrap_or(f64::NAN),
                    l["median"]
                        .as_f64()
                        .map_or_else(|| "-".into(), crate::report::ms),
                    l["p95"]
                        .as_f64()
                        .map_or_else(|| "-".into(), crate::report::ms)
                );
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_each_kind() {
        let base = |what, result| ExtraReport {
            label: "x".into(),
            what,
            started_at: "now".into(),
            machine: Machine::probe(),
            data: PathBuf::from("d"),
            server_args: vec![],
            server_peak_rss_bytes: Some(1 << 20),
            result,
        };
        let t = base(
            Extra::Transfer,
            serde_json::json!({"flight": [{"seconds": 2.0, "rows": 10, "mb_per_s": 500.0}],
                               "pyarrow_local": [{"seconds": 1.0, "rows": 10, "mb_per_s": 900.0}]}),
        );
        let md = markdown(&t);
        assert!(md.contains("| Flight SQL, ADBC (`flight`) | 10 | 2.000 | 500 |"));
        assert!(md.contains("| local, pyarrow (`pyarrow_local`) | 10 | 1.000 | 900 |"));
        assert!(!md.contains("flight_raw"), "absent path printed");
        let c = base(
            Extra::Concurrency,
            serde_json::json!({"levels": [{"clients": 4, "queries": 8, "errors": 0,
                               "queries_per_s": 2.5, "median": 0.1, "p95": 0.2}]}),
        );
        assert!(markdown(&c).contains("| 4 | 8 | 0 | 2.50 | 100 ms | 200 ms |"));
        let i = base(
            Extra::Ingest,
            serde_json::json!({"rows": 5, "runs": [{"seconds": 0.5, "rows_per_s": 10.0, "mb_per_s": 1.0}]}),
        );
        assert!(markdown(&i).contains("| 5 | 0.500 | 10 | 1 |"));
        let k = base(
            Extra::Collect,
            serde_json::json!({"rows": 6, "batch": 2, "clients": 3,
                               "runs": [{"seconds": 0.5, "rows_per_s": 12.0, "request_p95": 0.25}]}),
        );
        assert!(markdown(&k).contains("| 6 | 2 | 3 | 0.500 | 12 | 250 ms |"));
    }
}
