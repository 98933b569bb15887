//! Child processes: engine workers speaking JSON lines, the Seglake server,
//! and their peak memory.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::error::{BenchError, Result};

/// Peak resident set size (`VmHWM`) of a process in bytes, if readable.
pub fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kb(&status, "VmHWM:").map(|kb| kb * 1024)
}

/// Peak resident set size of the current process in bytes.
pub fn own_peak_rss() -> Option<u64> {
    peak_rss(std::process::id())
}

/// Reads a `Key:   123 kB` line of `/proc/PID/status`.
pub fn parse_status_kb(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A request to an engine worker.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Info,
    Run {
        sql: String,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        out: Option<PathBuf>,
    },
    Quit,
}

/// A worker's answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

impl Response {
    pub fn ok() -> Self {
        Self {
            ok: true,
            ..Self::default()
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Self {
            ok: false,
            error: Some(message.into()),
            ..Self::default()
        }
    }
}

/// An engine in its own process, driven by JSON lines on its stdin/stdout.
#[derive(Debug)]
pub struct Worker {
    name: String,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    /// Starts `command` with piped stdin/stdout (stderr inherited).
    pub fn spawn(name: &str, mut command: Command) -> Result<Self> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| BenchError::Process(format!("{name}: cannot start {command:?}: {e}")))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Ok(Self {
            name: name.to_string(),
            child,
            stdin,
            stdout,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a request and waits for its answer.
    pub fn request(&mut self, request: &Request) -> Result<Response> {
        let line = serde_json::to_string(request)?;
        writeln!(self.stdin, "{line}")
            .and_then(|()| self.stdin.flush())
            .map_err(|e| BenchError::Process(format!("{}: cannot write: {e}", self.name)))?;
        let mut answer = String::new();
        let n = self
            .stdout
            .read_line(&mut answer)
            .map_err(|e| BenchError::Process(format!("{}: cannot read: {e}", self.name)))?;
        if n == 0 {
            return Err(BenchError::Process(format!(
                "{} exited unexpectedly (see its standard error above)",
                self.name
            )));
        }
        Ok(serde_json::from_str(&answer)?)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.request(&Request::Quit);
        // Only this worker's own child process.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `seglake serve` process on a free loopback port.
#[derive(Debug)]
pub struct Server {
    child: Child,
    addr: SocketAddr,
    /// The HTTP collector's address (when started with `--collect`).
    collector: Option<SocketAddr>,
}

impl Server {
    /// Starts `bin serve --warehouse DIR --listen 127.0.0.1:0 ARGS...` and
    /// waits for its `listening on ADDR` line (and, with `--collect`, its
    /// `collector listening on ADDR` line). Its log (warnings only unless
    /// `RUST_LOG` says otherwise) goes to `log`.
    pub fn start(bin: &Path, warehouse: &Path, args: &[String], log: &Path) -> Result<Self> {
        let log_file = std::fs::File::create(log)
            .map_err(|e| BenchError::Process(format!("cannot create {}: {e}", log.display())))?;
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg("--warehouse")
            .arg(warehouse)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file);
        let mut child = cmd
            .spawn()
            .map_err(|e| BenchError::Process(format!("cannot start {}: {e}", bin.display())))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let wants_collector = args.iter().any(|a| a == "--collect");
        let mut addr = None;
        let mut collector = None;
        while addr.is_none() || (wants_collector && collector.is_none()) {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.kill();
                let _ = child.wait();
                return Err(BenchError::Process(format!(
                    "seglake exited before listening (see {})",
                    log.display()
                )));
            };
            let (slot, a) = if let Some(a) = line.strip_prefix("collector listening on ") {
                (&mut collector, a)
            } else if let Some(a) = line.strip_prefix("listening on ") {
                (&mut addr, a)
            } else {
                continue;
            };
            match a.trim().parse::<SocketAddr>() {
                Ok(parsed) => *slot = Some(parsed),
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(BenchError::Process(format!("bad address '{a}': {e}")));
                }
            }
        }
        let addr = addr.expect("loop ends with an address");
        Ok(Self {
            child,
            addr,
            collector,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn uri(&self) -> String {
        format!("grpc://{}", self.addr)
    }

    /// `http://ADDR` of the HTTP collector, if the server runs one.
    pub fn collector_url(&self) -> Option<String> {
        self.collector.map(|a| format!("http://{a}"))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vm_hwm() {
        let status = "Name:\tx\nVmPeak:\t  2000 kB\nVmHWM:\t    1234 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(parse_status_kb(status, "VmHWM:"), Some(1234));
        assert_eq!(parse_status_kb(status, "VmSwap:"), None);
        assert!(own_peak_rss().unwrap() > 0);
    }

    #[test]
    fn protocol_is_json_lines() {
        let r = Request::Run {
            sql: "SELECT 1".into(),
            out: None,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"op":"run","sql":"SELECT 1"}"#
        );
        assert_eq!(
            serde_json::to_string(&Request::Info).unwrap(),
            r#"{"op":"info"}"#
        );
        let resp: Response =
            serde_json::from_str(r#"{"ok": true, "seconds": 0.5, "rows": 3, "bytes": 10}"#)
                .unwrap();
        assert!(resp.ok);
        assert_eq!(resp.rows, Some(3));
    }
}
