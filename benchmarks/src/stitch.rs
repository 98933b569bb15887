//! `stitch`: identity stitching on a synthetic graph ([`crate::synth`]):
//! Seglake's `stitch_identities` against DuckDB iterative min-label
//! propagation and scipy's `connected_components` (the reference), each in
//! its own process, with a check that all give the same person of every
//! record.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};

use crate::error::{BenchError, IoContext, Result};
use crate::machine::Machine;
use crate::stats::{Summary, summarize};

/// One engine's measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct StitchTiming {
    pub engine: String,
    pub seconds: Vec<f64>,
    pub summary: Option<Summary>,
    pub rows_per_second: Option<f64>,
    pub peak_rss_bytes: Option<u64>,
    pub records: Option<u64>,
    pub people: Option<u64>,
    /// Same person for every record as the reference (scipy).
    pub same_as_reference: Option<bool>,
    pub difference: Option<String>,
    pub error: Option<String>,
}

/// A run of the stitching benchmark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StitchReport {
    pub label: String,
    pub started_at: String,
    pub machine: Machine,
    pub rows: u64,
    pub records: u64,
    pub max_records_per_identifier: u64,
    pub engines: Vec<StitchTiming>,
}

/// What a stitching child process prints (one JSON line).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ChildResult {
    pub seconds: Vec<f64>,
    pub records: u64,
    pub people: u64,
    #[serde(default)]
    pub peak_rss_bytes: Option<u64>,
}

/// Runs `stitch_identities` on the links file `reps` times in this process,
/// writing the last result to `out` as Parquet `(record_id, person_id)`.
pub async fn run_seglake(links: &Path, out: &Path, reps: usize, max: u64) -> Result<ChildResult> {
    let mut state = SessionContext::new_with_config(SessionConfig::new()).state();
    seglake_udfs::register_all(&mut state)?;
    let ctx = SessionContext::new_with_state(state);
    ctx.register_parquet(
        "links",
        links.display().to_string(),
        ParquetReadOptions::default(),
    )
    .await?;
    let sql = format!("SELECT record_id, person_id FROM stitch_identities('links', {max})");
    let mut result = ChildResult::default();
    let mut last = Vec::new();
    for _ in 0..reps {
        let start = Instant::now();
        let batches = ctx.sql(&sql).await?.collect().await?;
        result.seconds.push(start.elapsed().as_secs_f64());
        last = batches;
    }
    result.records = last.iter().map(|b| b.num_rows() as u64).sum();
    let mut people = std::collections::HashSet::new();
    for b in &last {
        let p = cast(b.column(1), &DataType::Utf8)?;
        let p = p.as_string::<i32>();
        for i in 0..p.len() {
            people.insert(p.value(i).to_string());
        }
    }
    result.people = people.len() as u64;
    if let Some(first) = last.first() {
        let file = File::create(out).at(out)?;
        let mut w = ArrowWriter::try_new(file, first.schema(), None)?;
        for b in &last {
            w.write(b)?;
        }
        w.close()?;
    }
    result.peak_rss_bytes = crate::procs::own_peak_rss();
    Ok(result)
}

/// Reads `(record_id, person_id)` Parquet into a map.
pub fn read_assignment(path: &Path) -> Result<HashMap<String, String>> {
    let file = File::open(path).at(path)?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)?.build()?;
    let mut map = HashMap::new();
    for batch in reader {
        let batch: RecordBatch = batch?;
        let r = cast(batch.column(0), &DataType::Utf8)?;
        let p = cast(batch.column(1), &DataType::Utf8)?;
        let (r, p) = (r.as_string::<i32>(), p.as_string::<i32>());
        for i in 0..batch.num_rows() {
            map.insert(r.value(i).to_string(), p.value(i).to_string());
        }
    }
    Ok(map)
}

/// Compares two assignments record by record.
pub fn compare_assignments(
    a: &HashMap<String, String>,
    b: &HashMap<String, String>,
) -> std::result::Result<(), String> {
    if a.len() != b.len() {
        return Err(format!("{} records against {}", a.len(), b.len()));
    }
    let mut diffs = 0usize;
    let mut first = None;
    for (r, p) in a {
        match b.get(r) {
            Some(q) if q == p => {}
            other => {
                diffs += 1;
                if first.is_none() {
                    first = Some(format!("record {r}: {p} against {other:?}"));
                }
            }
        }
    }
    match first {
        None => Ok(()),
        Some(f) => Err(format!("{diffs} records differ, first: {f}")),
    }
}

/// Options of the stitching benchmark.
#[derive(Debug, Clone)]
pub struct StitchOptions {
    pub rows: u64,
    pub data: PathBuf,
    pub reps: usize,
    pub engines: Vec<String>,
    pub max_records: u64,
    pub python: PathBuf,
    pub bench_bin: PathBuf,
    pub results: PathBuf,
    pub label: Option<String>,
}

fn run_child(mut cmd: Command, name: &str) -> Result<(ChildResult, Option<u64>)> {
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| BenchError::Process(format!("{name}: {e}")))?;
    let output = child
        .wait_with_output()
        .map_err(|e| BenchError::Process(format!("{name}: {e}")))?;
    if !output.status.success() {
        return Err(BenchError::Process(format!(
            "{name} failed: {}",
            output.status
        )));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| BenchError::Process(format!("{name}: no result line")))?;
    let r: ChildResult = serde_json::from_str(line)?;
    let rss = r.peak_rss_bytes;
    Ok((r, rss))
}

/// Runs the stitching benchmark and writes `results/<label>.json`.
pub fn run(opts: &StitchOptions) -> Result<(StitchReport, PathBuf)> {
    std::fs::create_dir_all(&opts.data).at(&opts.data)?;
    let links = opts.data.join("links.parquet");
    let summary_path = opts.data.join("graph.json");
    let (rows, records) = match std::fs::read_to_string(&summary_path)
        .ok()
        .and_then(|t| serde_json::from_str::<(u64, u64)>(&t).ok())
    {
        Some(s) if links.exists() => s,
        _ => {
            let s = crate::synth::generate(&links, opts.rows, 42)?;
            std::fs::write(&summary_path, serde_json::to_string(&(s.rows, s.records))?)
                .at(&summary_path)?;
            (s.rows, s.records)
        }
    };
    let mut machine = Machine::probe();
    let started_at = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let mut timings = Vec::new();
    let mut outputs: HashMap<String, PathBuf> = HashMap::new();
    for engine in &opts.engines {
        let out = opts.data.join(format!("out-{engine}.parquet"));
        let cmd = if engine == "seglake" {
            let mut c = Command::new(&opts.bench_bin);
            c.arg("stitch-worker")
                .arg("--links")
                .arg(&links)
                .arg("--out")
                .arg(&out)
                .arg("--reps")
                .arg(opts.reps.to_string())
                .arg("--max-records")
                .arg(opts.max_records.to_string());
            c
        } else {
            let mut c = Command::new(&opts.python);
            c.arg(crate::runner::python_dir().join("stitch.py"))
                .arg(engine)
                .arg("--links")
                .arg(&links)
                .arg("--out")
                .arg(&out)
                .arg("--reps")
                .arg(opts.reps.to_string())
                .arg("--max-records")
                .arg(opts.max_records.to_string());
            c
        };
        let mut t = StitchTiming {
            engine: engine.clone(),
            ..StitchTiming::default()
        };
        match run_child(cmd, engine) {
            Ok((r, rss)) => {
                t.summary = summarize(&r.seconds);
                t.rows_per_second = t.summary.map(|s| rows as f64 / s.median);
                t.seconds = r.seconds;
                t.peak_rss_bytes = rss;
                t.records = Some(r.records);
                t.people = Some(r.people);
                outputs.insert(engine.clone(), out);
            }
            Err(e) => t.error = Some(e.to_string()),
        }
        timings.push(t);
    }
    let reference = if outputs.contains_key("scipy") {
        Some("scipy")
    } else {
        None
    };
    if let Some(reference) = reference {
        let ref_map = read_assignment(&outputs[reference])?;
        for t in &mut timings {
            if t.engine == reference {
                continue;
            }
            if let Some(path) = outputs.get(&t.engine) {
                let m = read_assignment(path)?;
                match compare_assignments(&m, &ref_map) {
                    Ok(()) => t.same_as_reference = Some(true),
                    Err(d) => {
                        t.same_as_reference = Some(false);
                        t.difference = Some(d);
                    }
                }
            }
        }
    }
    machine.finish();
    let label = opts
        .label
        .clone()
        .unwrap_or_else(|| format!("stitch-{}", rows));
    let report = StitchReport {
        label: label.clone(),
        started_at,
        machine,
        rows,
        records,
        max_records_per_identifier: opts.max_records,
        engines: timings,
    };
    std::fs::create_dir_all(&opts.results).at(&opts.results)?;
    let json = opts.results.join(format!("{label}.json"));
    std::fs::write(&json, serde_json::to_string_pretty(&report)?).at(&json)?;
    let md = opts.results.join(format!("{label}.md"));
    std::fs::write(&md, markdown(&report)).at(&md)?;
    Ok((report, md))
}

/// The markdown table of a stitching run.
pub fn markdown(r: &StitchReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "### Identity stitching: {} identifier links, {} records (guard: {} records per identifier)\n",
        r.rows, r.records, r.max_records_per_identifier
    );
    let _ = writeln!(
        s,
        "- Started {}; machine: {}\n",
        r.started_at,
        r.machine.describe()
    );
    let _ = writeln!(
        s,
        "| engine | median (p95) | links/s | peak RSS | people | result |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---|");
    for t in &r.engines {
        let time = t.summary.map_or_else(
            || "failed".into(),
            |sm| {
                format!(
                    "{} ({})",
                    crate::report::ms(sm.median),
                    crate::report::ms(sm.p95)
                )
            },
        );
        let rate = t
            .rows_per_second
            .map_or_else(|| "-".into(), |v| format!("{:.2} M", v / 1e6));
        let result = match (&t.error, t.same_as_reference) {
            (Some(e), _) => format!("error: {e}"),
            (None, Some(true)) => "same as scipy".into(),
            (None, Some(false)) => {
                format!("**differs**: {}", t.difference.as_deref().unwrap_or("?"))
            }
            (None, None) => "reference".into(),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            t.engine,
            time,
            rate,
            crate::report::mib(t.peak_rss_bytes),
            t.people.map_or_else(|| "-".into(), |p| p.to_string()),
            result
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_compare_record_by_record() {
        let a: HashMap<String, String> = [("r1", "r1"), ("r2", "r1")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let mut b = a.clone();
        assert!(compare_assignments(&a, &b).is_ok());
        b.insert("r2".into(), "r2".into());
        let e = compare_assignments(&a, &b).unwrap_err();
        assert!(e.contains("1 records differ"), "{e}");
        b.insert("r3".into(), "r3".into());
        assert!(
            compare_assignments(&a, &b)
                .unwrap_err()
                .contains("records against")
        );
    }

    #[tokio::test]
    async fn seglake_stitches_the_synthetic_graph() {
        let dir = tempfile::tempdir().unwrap();
        let links = dir.path().join("links.parquet");
        let g = crate::synth::generate(&links, 5_000, 3).unwrap();
        let out = dir.path().join("out.parquet");
        let r = run_seglake(&links, &out, 1, 100).await.unwrap();
        assert_eq!(r.records, g.records);
        assert!(r.people <= g.people && r.people > 0);
        let m = read_assignment(&out).unwrap();
        assert_eq!(m.len() as u64, g.records);
        // Every person id is a record of its own cluster (the smallest).
        assert!(m.iter().all(|(r, p)| p <= r));
    }
}
