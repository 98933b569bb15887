//! A description of the machine a benchmark ran on.

use serde::{Deserialize, Serialize};

/// Machine facts written into every result file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    /// `/proc/loadavg` (1, 5, 15 min) at the start and at the end of the run.
    pub load_start: Option<[f64; 3]>,
    pub load_end: Option<[f64; 3]>,
    pub git_commit: Option<String>,
}

fn first_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> Option<[f64; 3]> {
    parse_loadavg(&std::fs::read_to_string("/proc/loadavg").ok()?)
}

/// Parses `/proc/loadavg`.
pub fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

impl Machine {
    /// Reads the machine facts (load at start).
    pub fn probe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kb: f64 = first_value(&meminfo, "MemTotal")
            .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
            .unwrap_or(0.0);
        let git_commit = std::process::Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        Self {
            cpu: first_value(&cpuinfo, "model name").unwrap_or_else(|| "unknown".into()),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_gib: mem_kb / 1024.0 / 1024.0,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            load_start: load_average(),
            load_end: None,
            git_commit,
        }
    }

    /// Records the load at the end of the run.
    pub fn finish(&mut self) {
        self.load_end = load_average();
    }

    /// One line for reports.
    pub fn describe(&self) -> String {
        let load = |l: Option<[f64; 3]>| {
            l.map_or_else(
                || "?".into(),
                |l| format!("{:.2}/{:.2}/{:.2}", l[0], l[1], l[2]),
            )
        };
        format!(
            "{} ({} cores), {:.0} GiB RAM, Linux {}; load average (1/5/15 min) {} at start, {} at end; commit {}",
            self.cpu,
            self.cores,
            self.memory_gib,
            self.kernel,
            load(self.load_start),
            load(self.load_end),
            self.git_commit.as_deref().unwrap_or("?")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_loadavg() {
        assert_eq!(
            parse_loadavg("1.07 0.98 0.94 2/345 6789\n"),
            Some([1.07, 0.98, 0.94])
        );
        assert_eq!(parse_loadavg("x"), None);
    }

    #[test]
    fn probes_this_machine() {
        let mut m = Machine::probe();
        m.finish();
        assert!(m.cores >= 1);
        assert!(m.describe().contains("cores"));
    }
}
