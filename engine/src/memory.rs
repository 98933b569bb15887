//! The server's memory: how big the query memory pool is by default, and
//! each statement's share of it.
//!
//! Every server (and worker) has one DataFusion memory pool: `--memory-limit-mb`,
//! or by default [`DEFAULT_POOL_PERCENT`] of the memory the process may use
//! (the machine's `MemTotal`, bounded by its cgroup's limit in a container).
//! Operators that can spill (sorts, hash aggregates, repartitions) spill to
//! the OS temporary directory when the pool is full; the others fail the
//! statement with RESOURCE_EXHAUSTED, never the process.
//!
//! Each statement runs with a runtime of its own whose pool is a
//! [`StatementPool`]: it forwards every reservation to the server's pool,
//! counts the statement's current and peak bytes (`system.queries.
//! peak_memory_bytes`), and names the statement in a refusal.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};
use datafusion::execution::runtime_env::RuntimeEnv;

/// The share of the process's memory the pool gets without
/// `--memory-limit-mb`: the rest is for what the pool does not track
/// (Arrow buffers in flight, object store and Parquet decoding buffers,
/// the catalog, caches, the allocator's overhead).
pub(crate) const DEFAULT_POOL_PERCENT: u64 = 70;

/// A cgroup v1 limit at or above this is "no limit" (the kernel writes
/// `PAGE_COUNTER_MAX` pages, about 2^63 bytes).
const CGROUP_V1_UNLIMITED: u64 = 1 << 60;

/// The memory this process may use: the machine's (`/proc/meminfo`
/// `MemTotal`) bounded by the memory limit of its cgroup (v2 `memory.max`
/// or v1 `memory.limit_in_bytes`, of its own group and the groups above
/// it). `None` when neither is known (not Linux).
pub(crate) fn available_memory() -> Option<u64> {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| parse_meminfo(&text));
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let groups = own_cgroups(&own);
    let v2 = cgroup_dirs(Path::new("/sys/fs/cgroup"), groups.v2.as_deref())
        .into_iter()
        .filter_map(|dir| std::fs::read_to_string(dir.join("memory.max")).ok())
        .filter_map(|text| parse_cgroup_v2(&text));
    let v1 = cgroup_dirs(Path::new("/sys/fs/cgroup/memory"), groups.v1.as_deref())
        .into_iter()
        .filter_map(|dir| std::fs::read_to_string(dir.join("memory.limit_in_bytes")).ok())
        .filter_map(|text| parse_cgroup_v1(&text));
    total.into_iter().chain(v2).chain(v1).min()
}

/// The pool's size without `--memory-limit-mb`: [`DEFAULT_POOL_PERCENT`]
/// of `memory` (`None`: unknown, no bound).
pub(crate) fn default_pool_size(memory: Option<u64>) -> Option<usize> {
    memory.map(|m| usize::try_from(m / 100 * DEFAULT_POOL_PERCENT).unwrap_or(usize::MAX))
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn parse_meminfo(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut words = line["MemTotal:".len()..].split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") | Some("KB") => value.checked_mul(1024),
        None => Some(value),
        Some(_) => None,
    }
}

/// cgroup v2 `memory.max`: bytes, or `max` (no limit).
fn parse_cgroup_v2(text: &str) -> Option<u64> {
    match text.trim() {
        "max" => None,
        n => n.parse().ok(),
    }
}

/// cgroup v1 `memory.limit_in_bytes`: bytes, a huge value when unlimited.
fn parse_cgroup_v1(text: &str) -> Option<u64> {
    text.trim()
        .parse()
        .ok()
        .filter(|&n: &u64| n < CGROUP_V1_UNLIMITED)
}

/// The process's groups, from `/proc/self/cgroup`.
#[derive(Debug, Default, PartialEq)]
struct OwnCgroups {
    /// The unified hierarchy's path (`0::/path`).
    v2: Option<String>,
    /// The v1 memory controller's path (`N:memory:/path`).
    v1: Option<String>,
}

fn own_cgroups(text: &str) -> OwnCgroups {
    let mut out = OwnCgroups::default();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            out.v2 = Some(path.to_string());
        } else if controllers.split(',').any(|c| c == "memory") {
            out.v1 = Some(path.to_string());
        }
    }
    out
}

/// `root` and, under it, each folder down to the group `path`: a limit
/// on any of them bounds the process. (In a container with its own cgroup
/// namespace `path` is `/` and `root` is the container's group.)
fn cgroup_dirs(root: &Path, path: Option<&str>) -> Vec<PathBuf> {
    let mut dirs = vec![root.to_path_buf()];
    let mut dir = root.to_path_buf();
    for part in path
        .unwrap_or("")
        .split('/')
        .filter(|p| !p.is_empty() && *p != "." && *p != "..")
    {
        dir.push(part);
        dirs.push(dir.clone());
    }
    dirs
}

/// A size in MiB (one decimal) for messages and logs.
pub(crate) fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// One statement's use of the server's pool: what it holds now and the
/// most it held at once.
#[derive(Debug, Default)]
pub(crate) struct StatementMemory {
    current: AtomicUsize,
    peak: AtomicUsize,
}

impl StatementMemory {
    /// Bytes the statement's operators hold now.
    pub(crate) fn current(&self) -> usize {
        self.current.load(Ordering::Relaxed)
    }

    /// The most the statement held at once.
    pub(crate) fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    fn grew(&self, bytes: usize) {
        let now = self.current.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    fn shrank(&self, bytes: usize) {
        // Never below zero, whatever the order of concurrent updates.
        let _ = self
            .current
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                Some(c.saturating_sub(bytes))
            });
    }
}

/// A statement's view of the server's pool: every call goes to the
/// server's pool (its limit, its fairness between spilling operators),
/// and the statement's bytes are counted on the way. A refusal names the
/// statement.
#[derive(Debug)]
pub(crate) struct StatementPool {
    server: Arc<dyn MemoryPool>,
    statement: String,
    usage: Arc<StatementMemory>,
}

impl StatementPool {
    pub(crate) fn new(
        server: Arc<dyn MemoryPool>,
        statement: impl Into<String>,
        usage: Arc<StatementMemory>,
    ) -> Self {
        Self {
            server,
            statement: statement.into(),
            usage,
        }
    }

    /// The server pool's refusal, as the statement's: still
    /// `ResourcesExhausted` (RESOURCE_EXHAUSTED), naming the statement and
    /// what it held.
    fn refused(&self, e: DataFusionError, additional: usize) -> DataFusionError {
        let detail = match e {
            DataFusionError::ResourcesExhausted(message) => message,
            other => other.to_string(),
        };
        let limit = match self.server.memory_limit() {
            MemoryLimit::Finite(n) => format!(" of {}", mib(n)),
            _ => String::new(),
        };
        DataFusionError::ResourcesExhausted(format!(
            "statement {} needs more memory than the server's pool{limit} has left \
             (it holds {}, asked for {} more; a larger --memory-limit-mb, fewer statements \
             at once, or a query that keeps less in memory helps): {detail}",
            self.statement,
            mib(self.usage.current()),
            mib(additional),
        ))
    }
}

impl std::fmt::Display for StatementPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "statement {} in {}", self.statement, self.server)
    }
}

impl MemoryPool for StatementPool {
    fn name(&self) -> &str {
        "statement"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.server.register(consumer)
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.server.unregister(consumer)
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.server.grow(reservation, additional);
        self.usage.grew(additional);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.server.shrink(reservation, shrink);
        self.usage.shrank(shrink);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        self.server
            .try_grow(reservation, additional)
            .map_err(|e| self.refused(e, additional))?;
        self.usage.grew(additional);
        Ok(())
    }

    /// The server's: what every statement holds.
    fn reserved(&self) -> usize {
        self.server.reserved()
    }

    fn memory_limit(&self) -> MemoryLimit {
        self.server.memory_limit()
    }
}

/// A runtime for the statement `statement`: `base`'s disk manager, caches
/// and object stores, with a [`StatementPool`] over `base`'s pool.
pub(crate) fn statement_runtime(
    base: &RuntimeEnv,
    statement: impl Into<String>,
    usage: Arc<StatementMemory>,
) -> Arc<RuntimeEnv> {
    let pool = StatementPool::new(Arc::clone(&base.memory_pool), statement, usage);
    Arc::new(RuntimeEnv {
        memory_pool: Arc::new(pool),
        ..base.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};

    #[test]
    fn meminfo_total_in_bytes() {
        let text = "MemTotal:       16318480 kB\nMemFree:         1183812 kB\n";
        assert_eq!(parse_meminfo(text), Some(16_318_480 * 1024));
        assert_eq!(parse_meminfo("MemFree: 12 kB\n"), None);
        assert_eq!(parse_meminfo("MemTotal: lots kB\n"), None);
    }

    #[test]
    fn cgroup_limits_and_their_absence() {
        assert_eq!(parse_cgroup_v2("max\n"), None);
        assert_eq!(parse_cgroup_v2("536870912\n"), Some(512 << 20));
        assert_eq!(parse_cgroup_v2("garbage"), None);
        assert_eq!(parse_cgroup_v1("9223372036854771712\n"), None);
        assert_eq!(parse_cgroup_v1("1073741824\n"), Some(1 << 30));
        assert_eq!(parse_cgroup_v1(""), None);
    }

    #[test]
    fn own_groups_and_the_folders_above_them() {
        let v2 = own_cgroups("0::/user.slice/app.scope\n");
        assert_eq!(v2.v2.as_deref(), Some("/user.slice/app.scope"));
        assert_eq!(v2.v1, None);
        let v1 = own_cgroups("12:cpu,cpuacct:/docker/x\n5:memory:/docker/abc\n0::/\n");
        assert_eq!(v1.v1.as_deref(), Some("/docker/abc"));
        assert_eq!(v1.v2.as_deref(), Some("/"));
        let root = Path::new("/sys/fs/cgroup");
        assert_eq!(
            cgroup_dirs(root, Some("/user.slice/app.scope")),
            vec![
                root.to_path_buf(),
                root.join("user.slice"),
                root.join("user.slice/app.scope")
            ]
        );
        // `..` never climbs out of the hierarchy.
        assert_eq!(cgroup_dirs(root, Some("/../..")), vec![root.to_path_buf()]);
        assert_eq!(cgroup_dirs(root, None), vec![root.to_path_buf()]);
    }

    #[test]
    fn the_default_is_seventy_percent() {
        assert_eq!(default_pool_size(Some(1000)), Some(700));
        assert_eq!(
            default_pool_size(Some(16 << 30)),
            Some((16 << 30) / 100 * 70)
        );
        assert_eq!(default_pool_size(None), None);
        // This machine (Linux) knows its memory.
        if cfg!(target_os = "linux") {
            let memory = available_memory().expect("memory of a Linux machine");
            assert!(memory > 16 << 20, "{memory}");
        }
    }

    fn server_pool(limit: usize) -> Arc<dyn MemoryPool> {
        Arc::new(TrackConsumersPool::new(
            FairSpillPool::new(limit),
            std::num::NonZeroUsize::new(3).unwrap(),
        ))
    }

    #[test]
    fn a_statement_counts_its_current_and_peak_bytes() {
        let server = server_pool(1000);
        let usage = Arc::new(StatementMemory::default());
        let pool: Arc<dyn MemoryPool> = Arc::new(StatementPool::new(
            Arc::clone(&server),
            "q1",
            Arc::clone(&usage),
        ));
        // Another statement's bytes count for the server, not for q1.
        let other = MemoryConsumer::new("other").register(&server);
        other.grow(100);
        let a = MemoryConsumer::new("a").register(&pool);
        let b = MemoryConsumer::new("b").register(&pool);
        a.try_grow(300).unwrap();
        b.grow(200);
        assert_eq!((usage.current(), usage.peak()), (500, 500));
        assert_eq!(server.reserved(), 600);
        a.shrink(250);
        b.try_grow(100).unwrap();
        assert_eq!((usage.current(), usage.peak()), (350, 500));
        drop(a);
        drop(b);
        assert_eq!((usage.current(), usage.peak()), (0, 500));
        assert_eq!(server.reserved(), 100);
    }

    #[test]
    fn a_refusal_names_the_statement_and_stays_resources_exhausted() {
        let server = server_pool(1000);
        let usage = Arc::new(StatementMemory::default());
        let pool: Arc<dyn MemoryPool> = Arc::new(StatementPool::new(
            Arc::clone(&server),
            "0190abcd",
            Arc::clone(&usage),
        ));
        let a = MemoryConsumer::new("HashJoinInput").register(&pool);
        a.try_grow(800).unwrap();
        let e = a.try_grow(500).unwrap_err();
        let DataFusionError::ResourcesExhausted(message) = &e else {
            panic!("not ResourcesExhausted: {e:?}");
        };
        assert!(message.contains("statement 0190abcd"), "{message}");
        assert!(message.contains("HashJoinInput"), "{message}");
        assert_eq!(
            crate::EngineError::from(e).kind(),
            crate::ErrorKind::ResourceExhausted
        );
        // The refused bytes were never counted.
        assert_eq!((usage.current(), usage.peak()), (800, 800));
        drop(a);
        assert_eq!(server.reserved(), 0);
    }
}
