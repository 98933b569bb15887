//! Result files of the segment suite: the JSON document and its markdown
//! table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::compare::Comparison;
use crate::datagen::DataInfo;
use crate::machine::Machine;
use crate::stats::{Summary, geomean};

/// The engine every ratio is measured against.
pub const REFERENCE: &str = "duckdb";

/// One engine of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineInfo {
    pub name: String,
    pub version: String,
    /// Peak RSS of the process doing the work (the server for Flight SQL).
    pub peak_rss_bytes: Option<u64>,
    /// Peak RSS of the client process, when separate (Flight SQL).
    pub client_peak_rss_bytes: Option<u64>,
}

/// One query on one engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct EngineTiming {
    pub seconds: Vec<f64>,
    pub summary: Option<Summary>,
    pub rows: Option<u64>,
    pub error: Option<String>,
    /// Against the reference engine (absent for the reference itself).
    pub check: Option<Comparison>,
}

/// One query of the suite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryResult {
    pub name: String,
    pub title: String,
    pub duckdb_note: Option<String>,
    pub engines: BTreeMap<String, EngineTiming>,
}

impl QueryResult {
    /// Median of `engine` over median of the reference engine.
    pub fn ratio(&self, engine: &str) -> Option<f64> {
        let e = self.engines.get(engine)?.summary?.median;
        let r = self.engines.get(REFERENCE)?.summary?.median;
        (r > 0.0).then(|| e / r)
    }
}

/// A run of the suite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteReport {
    pub label: String,
    pub started_at: String,
    pub scale: f64,
    pub data: DataInfo,
    pub machine: Machine,
    pub reps: usize,
    pub engines: Vec<EngineInfo>,
    /// Seglake settings of the run (flags and `SET`s).
    pub settings: Vec<String>,
    pub queries: Vec<QueryResult>,
    /// Per engine: geometric mean of the medians over the queries every
    /// engine answered.
    pub geomean_seconds: BTreeMap<String, f64>,
    /// Per engine: geometric mean of the per-query ratios to DuckDB.
    pub geomean_ratio: BTreeMap<String, f64>,
}

impl SuiteReport {
    /// Fills `geomean_seconds` and `geomean_ratio` from the queries.
    pub fn compute_aggregates(&mut self) {
        let names: Vec<String> = self.engines.iter().map(|e| e.name.clone()).collect();
        let common: Vec<&QueryResult> = self
            .queries
            .iter()
            .filter(|q| {
                names
                    .iter()
                    .all(|n| q.engines.get(n).and_then(|t| t.summary).is_some())
            })
            .collect();
        self.geomean_seconds.clear();
        self.geomean_ratio.clear();
        for n in &names {
            let medians: Vec<f64> = common
                .iter()
                .filter_map(|q| q.engines[n].summary.map(|s| s.median))
                .collect();
            if let Some(g) = geomean(&medians) {
                self.geomean_seconds.insert(n.clone(), g);
            }
            if n != REFERENCE {
                let ratios: Vec<f64> = common.iter().filter_map(|q| q.ratio(n)).collect();
                if let Some(g) = geomean(&ratios) {
                    self.geomean_ratio.insert(n.clone(), g);
                }
            }
        }
    }

    /// The markdown table of the run.
    pub fn markdown(&self) -> String {
        let names: Vec<&str> = self.engines.iter().map(|e| e.name.as_str()).collect();
        let mut s = String::new();
        let _ = writeln!(
            s,
            "### Segment suite, SF {} ({} profiles, {} events), run `{}`\n",
            crate::datagen::scale_label(self.scale),
            self.data.profiles,
            self.data.events,
            self.label
        );
        let _ = writeln!(
            s,
            "- Started {}; machine: {}",
            self.started_at,
            self.machine.describe()
        );
        let _ = writeln!(s, "- Data: {}", self.data.layout.describe());
        let _ = writeln!(
            s,
            "- {} timed repetitions per query and engine after one untimed checking run, engines alternating; latency = SQL submitted to whole result held as Arrow by the client.",
            self.reps
        );
        for e in &self.engines {
            let _ = writeln!(s, "- `{}`: {}", e.name, e.version);
        }
        if !self.settings.is_empty() {
            let _ = writeln!(s, "- Seglake settings: `{}`", self.settings.join("`, `"));
        }
        let _ = writeln!(s);
        let _ = write!(s, "| query |");
        for n in &names {
            let _ = write!(s, " {n} median (p95) |");
            if *n != REFERENCE {
                let _ = write!(s, " ratio |");
            }
        }
        let _ = writeln!(s, " rows | results |");
        let _ = write!(s, "|---|");
        for n in &names {
            let _ = write!(s, "---:|");
            if *n != REFERENCE {
                let _ = write!(s, "---:|");
            }
        }
        let _ = writeln!(s, "---:|---|");
        for q in &self.queries {
            let _ = write!(s, "| {} |", q.name);
            for n in &names {
                let t = q.engines.get(*n);
                match t.and_then(|t| t.summary) {
                    Some(sm) => {
                        let _ = write!(s, " {} ({}) |", ms(sm.median), ms(sm.p95));
                    }
                    None => {
                        let _ = write!(s, " failed |");
                    }
                }
                if *n != REFERENCE {
                    match q.ratio(n) {
                        Some(r) if r > 2.0 => {
                            let _ = write!(s, " **{r:.2}** |");
                        }
                        Some(r) => {
                            let _ = write!(s, " {r:.2} |");
                        }
                        None => {
                            let _ = write!(s, " - |");
                        }
                    }
                }
            }
            let rows = q
                .engines
                .values()
                .find_map(|t| t.rows)
                .map_or_else(|| "-".into(), |r| r.to_string());
            let _ = writeln!(s, " {rows} | {} |", check_cell(q));
        }
        let _ = write!(s, "| **geometric mean** |");
        for n in &names {
            match self.geomean_seconds.get(*n) {
                Some(g) => {
                    let _ = write!(s, " **{}** |", ms(*g));
                }
                None => {
                    let _ = write!(s, " - |");
                }
            }
            if *n != REFERENCE {
                match self.geomean_ratio.get(*n) {
                    Some(r) => {
                        let _ = write!(s, " **{r:.2}** |");
                    }
                    None => {
                        let _ = write!(s, " - |");
                    }
                }
            }
        }
        let _ = writeln!(s, " | |");
        let _ = write!(s, "| peak RSS |");
        for e in &self.engines {
            let _ = write!(s, " {} |", mib(e.peak_rss_bytes));
            if e.name != REFERENCE {
                let _ = write!(s, " |");
            }
        }
        let _ = writeln!(s, " | |");
        let errors: Vec<String> = self
            .queries
            .iter()
            .flat_map(|q| {
                q.engines.iter().filter_map(move |(n, t)| {
                    t.error
                        .as_ref()
                        .map(|e| format!("- {} on {n}: {e}", q.name))
                })
            })
            .collect();
        if !errors.is_empty() {
            let _ = writeln!(s, "\nErrors:\n{}", errors.join("\n"));
        }
        let notes: Vec<String> = self
            .queries
            .iter()
            .filter_map(|q| q.duckdb_note.as_ref().map(|n| format!("- {}: {n}", q.name)))
            .collect();
        if !notes.is_empty() {
            let _ = writeln!(
                s,
                "\nDuckDB runs the same SQL except:\n{}",
                notes.join("\n")
            );
        }
        s
    }
}

fn check_cell(q: &QueryResult) -> String {
    let mut bad = Vec::new();
    let mut checked = 0;
    for (n, t) in &q.engines {
        if let Some(c) = &t.check {
            checked += 1;
            if !c.equal {
                bad.push(format!(
                    "**{n} differs**: {}",
                    c.difference.as_deref().unwrap_or("?")
                ));
            }
        }
    }
    if !bad.is_empty() {
        bad.join("; ")
    } else if checked > 0 {
        "same".into()
    } else {
        "not checked".into()
    }
}

/// Seconds as milliseconds for tables.
pub fn ms(seconds: f64) -> String {
    let m = seconds * 1000.0;
    if m >= 100.0 {
        format!("{m:.0} ms")
    } else {
        format!("{m:.1} ms")
    }
}

/// Bytes as MiB for tables.
pub fn mib(bytes: Option<u64>) -> String {
    bytes.map_or_else(
        || "-".into(),
        |b| format!("{:.0} MiB", b as f64 / 1048576.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::summarize;

    fn timing(seconds: &[f64]) -> EngineTiming {
        EngineTiming {
            seconds: seconds.to_vec(),
            summary: summarize(seconds),
            rows: Some(3),
            error: None,
            check: None,
        }
    }

    fn report() -> SuiteReport {
        let q = |name: &str, duck: f64, seg: f64| QueryResult {
            name: name.into(),
            title: name.into(),
            duckdb_note: None,
            engines: BTreeMap::from([
                ("duckdb".to_string(), timing(&[duck])),
                ("seglake-inproc".to_string(), timing(&[seg])),
            ]),
        };
        SuiteReport {
            label: "test".into(),
            started_at: "now".into(),
            scale: 1.0,
            data: DataInfo::for_tests(),
            // Fixed values (not `Machine::probe()`): a float such as the
            // memory size must survive the JSON round trip below exactly.
            machine: Machine {
                cpu: "test cpu".into(),
                cores: 2,
                memory_gib: 24.0,
                kernel: "test".into(),
                load_start: Some([0.5, 0.25, 1.0]),
                load_end: None,
                git_commit: None,
            },
            reps: 1,
            engines: vec![
                EngineInfo {
                    name: "seglake-inproc".into(),
                    version: "x".into(),
                    peak_rss_bytes: Some(1 << 20),
                    client_peak_rss_bytes: None,
                },
                EngineInfo {
                    name: "duckdb".into(),
                    version: "y".into(),
                    peak_rss_bytes: None,
                    client_peak_rss_bytes: None,
                },
            ],
            settings: vec![],
            queries: vec![q("q01", 0.1, 0.2), q("q02", 0.4, 0.2)],
            geomean_seconds: BTreeMap::new(),
            geomean_ratio: BTreeMap::new(),
        }
    }

    #[test]
    fn aggregates_are_geometric_means() {
        let mut r = report();
        r.compute_aggregates();
        assert!((r.geomean_ratio["seglake-inproc"] - 1.0).abs() < 1e-12);
        assert!((r.geomean_seconds["duckdb"] - 0.2).abs() < 1e-12);
        assert!((r.geomean_seconds["seglake-inproc"] - 0.2).abs() < 1e-12);
        assert!(!r.geomean_ratio.contains_key("duckdb"));
    }

    #[test]
    fn failed_queries_are_left_out_of_the_means() {
        let mut r = report();
        let t = r.queries[1].engines.get_mut("seglake-inproc").unwrap();
        t.summary = None;
        t.error = Some("boom".into());
        r.compute_aggregates();
        assert!((r.geomean_ratio["seglake-inproc"] - 2.0).abs() < 1e-12);
        let md = r.markdown();
        assert!(md.contains("| q02 |"), "{md}");
        assert!(md.contains("failed"));
        assert!(md.contains("q02 on seglake-inproc: boom"));
    }

    #[test]
    fn markdown_has_one_row_per_query_and_the_means() {
        let mut r = report();
        r.compute_aggregates();
        let md = r.markdown();
        assert!(
            md.contains("| q01 | 200 ms (200 ms) | 2.00 | 100 ms (100 ms) | 3 | not checked |"),
            "{md}"
        );
        assert!(md.contains("**geometric mean**"));
        assert!(md.contains("1 MiB"));
        let json = serde_json::to_string(&r).unwrap();
        let back: SuiteReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn formats() {
        assert_eq!(ms(0.0123), "12.3 ms");
        assert_eq!(ms(1.5), "1500 ms");
        assert_eq!(mib(Some(3 * 1048576)), "3 MiB");
        assert_eq!(mib(None), "-");
    }
}
