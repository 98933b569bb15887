//! The statements of this server (`system.queries`, `KILL QUERY`) and
//! their deadlines.
//!
//! Every statement that goes through the pipeline is registered here when
//! it begins ([`Queries::begin`]) and followed to its end: a query's rows
//! are counted as its stream is read ([`Tracked`]), and the statement ends
//! `finished`, `failed`, `cancelled` (killed, or its client went away) or
//! `timed_out`. The last [`KEEP_FINISHED`] ended statements are kept.
//!
//! Stopping a statement is dropping its work: a command's future is
//! dropped, a query's stream too (DataFusion then aborts the tasks it
//! spawned, and a distributed query's coordinator stops its workers'
//! tasks), so CPU and memory are released at once.

use std::collections::{BTreeMap, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use chrono::{DateTime, Utc};
use datafusion::error::DataFusionError;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use futures::{FutureExt, Stream};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::{EngineError, ErrorKind};

/// How many ended statements `system.queries` keeps.
pub(crate) const KEEP_FINISHED: usize = 1000;
/// The longest SQL text kept, in bytes.
pub(crate) const MAX_SQL_BYTES: usize = 4096;

/// Where a statement stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueryState {
    Queued,
    Running,
    Finished,
    Failed,
    Cancelled,
    TimedOut,
}

impl QueryState {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Finished => "finished",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::TimedOut => "timed_out",
        }
    }
}

/// What is known of a statement when it begins.
#[derive(Debug, Clone)]
pub(crate) struct QueryInfo {
    pub(crate) id: String,
    pub(crate) user: String,
    pub(crate) client: Option<String>,
    pub(crate) kind: String,
    pub(crate) sql: String,
}

/// One row of `system.queries`.
#[derive(Debug, Clone)]
pub(crate) struct QueryRow {
    pub(crate) info: QueryInfo,
    pub(crate) state: QueryState,
    pub(crate) queued_at: DateTime<Utc>,
    pub(crate) started_at: Option<DateTime<Utc>>,
    pub(crate) finished_at: Option<DateTime<Utc>>,
    pub(crate) rows: u64,
    pub(crate) bytes: u64,
    /// The most the statement held of this server's memory pool at once
    /// (`None`: not followed).
    pub(crate) peak_memory: Option<u64>,
    pub(crate) error: Option<String>,
}

impl QueryRow {
    /// Milliseconds from start (or queueing) to the end, or to now.
    pub(crate) fn elapsed_ms(&self) -> i64 {
        let from = self.started_at.unwrap_or(self.queued_at);
        let to = self.finished_at.unwrap_or_else(Utc::now);
        (to - from).num_milliseconds().max(0)
    }
}

/// A statement in progress.
#[derive(Debug)]
pub(crate) struct QueryEntry {
    queries: std::sync::Weak<QueriesInner>,
    info: QueryInfo,
    /// `info.kind` until the statement is planned.
    kind: parking_lot::Mutex<String>,
    /// The tables the statement reads, once checked (`a.b, c.d`): named in
    /// a failure to read their files.
    reads: parking_lot::Mutex<Option<String>>,
    queued_at: DateTime<Utc>,
    cancel: CancellationToken,
    /// Why the statement is being stopped: set before `cancel` fires.
    stop: parking_lot::Mutex<Option<(QueryState, String)>>,
    started_at: parking_lot::Mutex<Option<DateTime<Utc>>>,
    rows: AtomicU64,
    bytes: AtomicU64,
    /// The statement's use of the memory pool (`crate::memory`), once
    /// followed.
    memory: std::sync::OnceLock<Arc<crate::memory::StatementMemory>>,
    ended: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Default)]
struct QueriesInner {
    /// Weak: a statement whose work is dropped (its client went away)
    /// ends when its entry drops.
    active: parking_lot::Mutex<BTreeMap<String, std::sync::Weak<QueryEntry>>>,
    finished: parking_lot::Mutex<VecDeque<QueryRow>>,
}

/// The statements of this server.
#[derive(Debug, Clone, Default)]
pub(crate) struct Queries(Arc<QueriesInner>);

/// Why `KILL QUERY` did nothing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum KillError {
    NotFound,
    NotYours,
}

impl Queries {
    /// Registers a statement (queued until [`QueryEntry::start`]).
    pub(crate) fn begin(&self, mut info: QueryInfo) -> Arc<QueryEntry> {
        truncate(&mut info.sql, MAX_SQL_BYTES);
        let entry = Arc::new(QueryEntry {
            queries: Arc::downgrade(&self.0),
            kind: parking_lot::Mutex::new(info.kind.clone()),
            reads: parking_lot::Mutex::new(None),
            info,
            queued_at: Utc::now(),
            cancel: CancellationToken::new(),
            stop: parking_lot::Mutex::new(None),
            started_at: parking_lot::Mutex::new(None),
            rows: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            memory: std::sync::OnceLock::new(),
            ended: std::sync::atomic::AtomicBool::new(false),
        });
        self.0
            .active
            .lock()
            .insert(entry.info.id.clone(), Arc::downgrade(&entry));
        entry
    }

    /// Every statement in progress, then the ended ones, newest first.
    pub(crate) fn rows(&self) -> Vec<QueryRow> {
        let active: Vec<Arc<QueryEntry>> = self
            .0
            .active
            .lock()
            .values()
            .filter_map(std::sync::Weak::upgrade)
            .collect();
        let mut out: Vec<QueryRow> = active.iter().map(|e| e.row()).collect();
        out.sort_by_key(|r| std::cmp::Reverse(r.queued_at));
        out.extend(self.0.finished.lock().iter().rev().cloned());
        out
    }

    /// Stops the statement `id` on behalf of `by` (any statement when
    /// `admin`, else only `by`'s own).
    pub(crate) fn kill(&self, id: &str, by: &str, admin: bool) -> Result<(), KillError> {
        let entry = self
            .0
            .active
            .lock()
            .get(id)
            .and_then(std::sync::Weak::upgrade)
            .ok_or(KillError::NotFound)?;
        if !admin && entry.info.user != by {
            return Err(KillError::NotYours);
        }
        entry.stop_with(
            QueryState::Cancelled,
            format!("killed by {by} (KILL QUERY)"),
        );
        Ok(())
    }
}

impl QueryEntry {
    /// What the statement turned out to be, once planned.
    pub(crate) fn set_kind(&self, kind: &str) {
        *self.kind.lock() = kind.to_string();
    }

    /// Follows the statement's memory (`system.queries.peak_memory_bytes`).
    pub(crate) fn follow_memory(&self, memory: Arc<crate::memory::StatementMemory>) {
        let _ = self.memory.set(memory);
    }

    /// The tables the statement reads (`a.b, c.d`; `None`: none).
    pub(crate) fn set_reads(&self, tables: Option<String>) {
        *self.reads.lock() = tables;
    }

    /// `e` naming the tables the statement reads when it is a failure to
    /// read their files (a corrupt, truncated or missing file, a file whose
    /// schema disagrees), which DataFusion reports without them.
    pub(crate) fn naming_tables(&self, e: EngineError) -> EngineError {
        let EngineError::DataFusion(inner) = e else {
            return e;
        };
        let Some(tables) = self.reads.lock().clone() else {
            return EngineError::DataFusion(inner);
        };
        let reading = matches!(
            inner.find_root(),
            DataFusionError::ParquetError(_)
                | DataFusionError::ObjectStore(_)
                | DataFusionError::IoError(_)
                | DataFusionError::ArrowError(..)
        );
        EngineError::DataFusion(if reading {
            inner.context(format!("reading {tables}"))
        } else {
            inner
        })
    }

    /// The statement runs now (it left the queue).
    pub(crate) fn start(&self) {
        *self.started_at.lock() = Some(Utc::now());
    }

    /// Fires when the statement must stop.
    pub(crate) fn cancelled(&self) -> WaitForCancellationFutureOwned {
        self.cancel.clone().cancelled_owned()
    }

    /// Asks the statement to stop, as `state` with `message` (the first
    /// reason wins).
    pub(crate) fn stop_with(&self, state: QueryState, message: String) {
        let mut stop = self.stop.lock();
        if stop.is_none() {
            *stop = Some((state, message));
        }
        drop(stop);
        self.cancel.cancel();
    }

    /// The error a stopped statement answers.
    pub(crate) fn stop_error(&self) -> EngineError {
        match self.stop.lock().clone() {
            Some((QueryState::TimedOut, m)) => EngineError::DeadlineExceeded(m),
            Some((_, m)) => EngineError::Cancelled(m),
            None => EngineError::Cancelled("the statement was cancelled".into()),
        }
    }

    fn add(&self, batch: &RecordBatch) {
        self.rows
            .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
        self.bytes
            .fetch_add(batch.get_array_memory_size() as u64, Ordering::Relaxed);
    }

    /// The statement ended with `result` (the first end counts).
    pub(crate) fn end<T>(&self, result: &Result<T, EngineError>) {
        match result {
            Ok(_) => self.end_as(QueryState::Finished, None),
            Err(e) => self.end_error(e),
        }
    }

    /// The statement failed with `e`.
    pub(crate) fn end_error(&self, e: &EngineError) {
        let state = match e.kind() {
            ErrorKind::DeadlineExceeded => QueryState::TimedOut,
            ErrorKind::Cancelled => QueryState::Cancelled,
            _ => QueryState::Failed,
        };
        self.end_as(state, Some(e.to_string()));
    }

    fn end_as(&self, state: QueryState, error: Option<String>) {
        if self.ended.swap(true, Ordering::SeqCst) {
            return;
        }
        let Some(queries) = self.queries.upgrade() else {
            return;
        };
        let mut row = self.row();
        row.state = state;
        row.error = error;
        row.finished_at = Some(Utc::now());
        queries.active.lock().remove(&self.info.id);
        let mut finished = queries.finished.lock();
        finished.push_back(row);
        while finished.len() > KEEP_FINISHED {
            finished.pop_front();
        }
    }

    fn row(&self) -> QueryRow {
        let started_at = *self.started_at.lock();
        let mut info = self.info.clone();
        info.kind = self.kind.lock().clone();
        QueryRow {
            info,
            state: if started_at.is_some() {
                QueryState::Running
            } else {
                QueryState::Queued
            },
            queued_at: self.queued_at,
            started_at,
            finished_at: None,
            rows: self.rows.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            peak_memory: self.memory.get().map(|m| m.peak() as u64),
            error: None,
        }
    }
}

/// A statement that ends without an answer (its future dropped: the
/// client went away) ends `cancelled`.
impl Drop for QueryEntry {
    fn drop(&mut self) {
        self.end_as(
            QueryState::Cancelled,
            Some("the client went away".to_string()),
        );
    }
}

/// Runs `work` until it ends, the statement is stopped, or `deadline`
/// passes (then the statement times out); the work is dropped when it
/// does not end by itself.
///
/// A panic inside the work (ours or a dependency's) is caught here: the
/// statement fails with an INTERNAL error naming it, the panic is logged,
/// and the server goes on.
pub(crate) async fn supervise<T>(
    entry: &Arc<QueryEntry>,
    deadline: tokio::time::Instant,
    work: impl Future<Output = Result<T, EngineError>>,
) -> Result<T, EngineError> {
    let work = std::panic::AssertUnwindSafe(work).catch_unwind();
    tokio::select! {
        result = work => result.unwrap_or_else(|panic| Err(panicked(entry, panic.as_ref()))),
        _ = entry.cancelled() => Err(entry.stop_error()),
        _ = tokio::time::sleep_until(deadline) => {
            entry.stop_with(QueryState::TimedOut, timeout_message(entry));
            Err(entry.stop_error())
        }
    }
}

/// The INTERNAL error of a statement that panicked (logged with the
/// message; the panic hook printed the backtrace when RUST_BACKTRACE asks).
fn panicked(entry: &QueryEntry, panic: &(dyn std::any::Any + Send)) -> EngineError {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_string());
    tracing::error!(statement = %entry.info.id, user = %entry.info.user, panic = %message, "statement panicked");
    EngineError::Internal(format!(
        "statement {} failed inside the engine ({message}); the server goes on: please report it",
        entry.info.id
    ))
}

fn timeout_message(entry: &QueryEntry) -> String {
    format!(
        "statement {} ran past its timeout (seglake.statement_timeout, --statement-timeout-secs)",
        entry.info.id
    )
}

/// A query's stream, followed: rows and bytes counted, the end recorded,
/// stopped at once when the statement is killed or times out (the inner
/// stream is dropped then, which stops its work).
pub(crate) struct Tracked {
    schema: SchemaRef,
    inner: Option<SendableRecordBatchStream>,
    entry: Arc<QueryEntry>,
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
    deadline: Pin<Box<tokio::time::Sleep>>,
    /// The query's slot (`crate::admission`), given back when the stream
    /// ends or is dropped.
    permit: Option<crate::admission::Permit>,
}

impl Tracked {
    pub(crate) fn new(
        inner: SendableRecordBatchStream,
        entry: Arc<QueryEntry>,
        deadline: tokio::time::Instant,
        permit: Option<crate::admission::Permit>,
    ) -> Self {
        Self {
            schema: inner.schema(),
            cancelled: Box::pin(entry.cancelled()),
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            inner: Some(inner),
            entry,
            permit,
        }
    }

    fn stop(&mut self) -> Poll<Option<datafusion::error::Result<RecordBatch>>> {
        self.inner = None;
        self.permit = None;
        let e = self.entry.stop_error();
        self.entry.end_error(&e);
        Poll::Ready(Some(Err(DataFusionError::External(Box::new(e)))))
    }
}

impl Stream for Tracked {
    type Item = datafusion::error::Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            inner.as_mut().poll_next(cx)
        }));
        let polled = match polled {
            Ok(polled) => polled,
            Err(panic) => {
                self.inner = None;
                self.permit = None;
                let e = panicked(&self.entry, panic.as_ref());
                self.entry.end_error(&e);
                return Poll::Ready(Some(Err(DataFusionError::External(Box::new(e)))));
            }
        };
        match polled {
            Poll::Ready(Some(Ok(batch))) => {
                self.entry.add(&batch);
                return Poll::Ready(Some(Ok(batch)));
            }
            Poll::Ready(Some(Err(e))) => {
                self.inner = None;
                self.permit = None;
                let e = self.entry.naming_tables(EngineError::from(e));
                self.entry.end_error(&e);
                return Poll::Ready(Some(Err(DataFusionError::External(Box::new(e)))));
            }
            Poll::Ready(None) => {
                self.inner = None;
                self.permit = None;
                self.entry.end::<()>(&Ok(()));
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        if self.cancelled.poll_unpin(cx).is_ready() {
            return self.stop();
        }
        if self.deadline.poll_unpin(cx).is_ready() {
            let message = timeout_message(&self.entry);
            self.entry.stop_with(QueryState::TimedOut, message);
            return self.stop();
        }
        Poll::Pending
    }
}

impl RecordBatchStream for Tracked {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}

/// Cuts `s` to at most `max` bytes, at a character boundary.
fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut at = max;
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
    }
}

/// The shorter of the server's timeout and the session's.
pub(crate) fn effective_timeout(server: Duration, session: Option<Duration>) -> Duration {
    session.map_or(server, |s| s.min(server))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(queries: &Queries, id: &str) -> Arc<QueryEntry> {
        queries.begin(QueryInfo {
            id: id.into(),
            user: "ann".into(),
            client: None,
            kind: "query".into(),
            sql: "x".repeat(5000) + "é",
        })
    }

    #[tokio::test]
    async fn a_panicking_statement_fails_internal_and_is_recorded() {
        let queries = Queries::default();
        let e = entry(&queries, "q1");
        let far = tokio::time::Instant::now() + Duration::from_secs(60);
        let result: Result<(), EngineError> =
            supervise(&e, far, async { panic!("boom in a dependency") }).await;
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Internal);
        assert!(
            err.to_string().contains("q1") && err.to_string().contains("boom"),
            "{err}"
        );
        e.end::<()>(&Err(err));
        let rows = queries.rows();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].state, QueryState::Failed);
        assert_eq!(rows[0].info.sql.len(), MAX_SQL_BYTES);
    }

    #[test]
    fn the_finished_are_kept_up_to_a_bound_and_kill_checks_the_owner() {
        let queries = Queries::default();
        for i in 0..KEEP_FINISHED + 5 {
            let e = entry(&queries, &format!("q{i}"));
            e.start();
            e.end::<()>(&Ok(()));
        }
        assert_eq!(queries.rows().len(), KEEP_FINISHED);
        let running = entry(&queries, "live");
        running.start();
        assert_eq!(queries.kill("live", "bob", false), Err(KillError::NotYours));
        assert_eq!(queries.kill("gone", "ann", false), Err(KillError::NotFound));
        assert_eq!(queries.kill("live", "ann", false), Ok(()));
        assert!(matches!(running.stop_error(), EngineError::Cancelled(m) if m.contains("ann")));
        // A statement dropped without an end (its client went away).
        drop(running);
        let first = &queries.rows()[0];
        assert_eq!(
            (first.info.id.as_str(), first.state),
            ("live", QueryState::Cancelled)
        );
    }
}
