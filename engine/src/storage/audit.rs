//! The audit trail (`system.audit`, `docs/security.md`): who did what,
//! persisted in the warehouse so that it survives restarts and every server
//! of a warehouse writes to and reads the same trail.
//!
//! Records are buffered in memory and written in batches (every
//! [`FLUSH_INTERVAL`], at [`FLUSH_RECORDS`] records, when `system.audit` is
//! read and when the engine stops), one JSON-lines file per batch:
//! `_seglake/audit/<yyyy-mm-dd>/<server>-<sequence>.jsonl`. No file is ever
//! rewritten, so servers never contend. Day folders older than the
//! retention (`--audit-retention-days`) are deleted at start and daily.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, NaiveDate, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::Result;

/// Records buffered at most before a batch is written.
const FLUSH_RECORDS: usize = 1000;
/// A batch is written at the latest this long after its first record.
pub(crate) const FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// One line of the trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub at: DateTime<Utc>,
    pub user: String,
    /// The client's address, when known.
    #[serde(default)]
    pub client: Option<String>,
    /// `login`, or the statement's kind (`dml`, `ddl`, `security`, ...).
    pub kind: String,
    /// What it read or wrote, as `schema.table`, `segment x`, ...
    #[serde(default)]
    pub objects: Vec<String>,
    /// `ok`, `denied` or `failed`.
    pub outcome: String,
    #[serde(default)]
    pub message: Option<String>,
    /// The statement's id (`None` for a login).
    #[serde(default)]
    pub statement: Option<String>,
}

/// The warehouse's audit trail, as one server writes and reads it.
#[derive(Debug)]
pub(crate) struct AuditLog {
    store: Arc<dyn ObjectStore>,
    dir: Path,
    /// This process, in file names (a UUID v7: sortable by start).
    server: String,
    sequence: AtomicU64,
    buffer: parking_lot::Mutex<Vec<AuditRecord>>,
    /// Serialises writers so that a batch is written once.
    writing: tokio::sync::Mutex<()>,
    retention_days: u32,
}

impl AuditLog {
    pub(crate) fn new(store: Arc<dyn ObjectStore>, dir: Path, retention_days: u32) -> Self {
        Self {
            store,
            dir,
            server: uuid::Uuid::now_v7().simple().to_string(),
            sequence: AtomicU64::new(0),
            buffer: parking_lot::Mutex::new(vec![]),
            writing: tokio::sync::Mutex::new(()),
            retention_days,
        }
    }

    /// Adds a record; `true` when the buffer is full and should be
    /// written now.
    pub(crate) fn record(&self, record: AuditRecord) -> bool {
        let mut buffer = self.buffer.lock();
        buffer.push(record);
        buffer.len() >= FLUSH_RECORDS
    }

    /// Writes what is buffered, one file per day of the records. Records
    /// whose file could not be written go back to the buffer.
    pub(crate) async fn flush(&self) -> Result<()> {
        let _writing = self.writing.lock().await;
        let records = std::mem::take(&mut *self.buffer.lock());
        if records.is_empty() {
            return Ok(());
        }
        let mut by_day: std::collections::BTreeMap<NaiveDate, Vec<AuditRecord>> =
            Default::default();
        for r in records {
            by_day.entry(r.at.date_naive()).or_default().push(r);
        }
        let mut failure = None;
        let mut unwritten = vec![];
        for (day, records) in by_day {
            if failure.is_some() {
                unwritten.extend(records);
                continue;
            }
            let mut body = Vec::new();
            for r in &records {
                serde_json::to_writer(&mut body, r)
                    .map_err(|e| crate::EngineError::InvalidArgument(e.to_string()))?;
                body.push(b'\n');
            }
            let n = self.sequence.fetch_add(1, Ordering::Relaxed);
            let path = self
                .dir
                .clone()
                .join(day.to_string())
                .join(format!("{}-{n:08}.jsonl", self.server));
            if let Err(e) = self.store.put(&path, PutPayload::from(body)).await {
                failure = Some(e);
                unwritten.extend(records);
            }
        }
        match failure {
            None => Ok(()),
            Some(e) => {
                let mut buffer = self.buffer.lock();
                unwritten.append(&mut buffer);
                *buffer = unwritten;
                Err(e.into())
            }
        }
    }

    /// Every record of the trail (this server's buffer written first),
    /// oldest first.
    pub(crate) async fn read(&self) -> Result<Vec<AuditRecord>> {
        self.flush().await?;
        let files: Vec<_> = self
            .store
            .list(Some(&self.dir))
            .try_collect::<Vec<_>>()
            .await?;
        let mut out = vec![];
        for file in files {
            if !file.location.as_ref().ends_with(".jsonl") {
                continue;
            }
            let bytes = self.store.get(&file.location).await?.bytes().await?;
            for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                match serde_json::from_slice::<AuditRecord>(line) {
                    Ok(r) => out.push(r),
                    Err(e) => {
                        tracing::warn!(file = %file.location, error = %e, "unreadable audit line skipped")
                    }
                }
            }
        }
        out.sort_by_key(|r| r.at);
        Ok(out)
    }

    /// Deletes the day folders older than the retention.
    pub(crate) async fn expire(&self, now: DateTime<Utc>) -> Result<()> {
        let oldest = now.date_naive() - chrono::Days::new(u64::from(self.retention_days));
        let listing = self.store.list_with_delimiter(Some(&self.dir)).await?;
        for folder in listing.common_prefixes {
            let Some(day) = folder
                .filename()
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            else {
                continue;
            };
            if day < oldest {
                let files: Vec<_> = self
                    .store
                    .list(Some(&folder))
                    .map_ok(|m| m.location)
                    .try_collect()
                    .await?;
                for file in files {
                    self.store.delete(&file).await?;
                }
                tracing::info!(day = %day, "audit records past the retention deleted");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::local::LocalFileSystem;

    fn record(at: DateTime<Utc>, user: &str, outcome: &str) -> AuditRecord {
        AuditRecord {
            at,
            user: user.into(),
            client: None,
            kind: "ddl".into(),
            objects: vec!["public.t".into()],
            outcome: outcome.into(),
            message: None,
            statement: None,
        }
    }

    fn log(dir: &std::path::Path, retention_days: u32) -> AuditLog {
        AuditLog::new(
            Arc::new(LocalFileSystem::new()),
            Path::from_absolute_path(dir).unwrap().join("audit"),
            retention_days,
        )
    }

    #[tokio::test]
    async fn records_are_written_in_batches_read_by_every_server_and_expired() {
        let dir = tempfile::tempdir().unwrap();
        let day = |d: u32| {
            NaiveDate::from_ymd_opt(2026, 12, d)
                .unwrap()
                .and_hms_opt(12, 0, 0)
                .unwrap()
                .and_utc()
        };
        let a = log(dir.path(), 3);
        let b = log(dir.path(), 3);
        assert!(!a.record(record(day(1), "ann", "ok")));
        a.record(record(day(5), "ann", "denied"));
        b.record(record(day(4), "bob", "ok"));
        // Nothing on disk before a flush; one file per day and batch after.
        assert!(!dir.path().join("audit").exists());
        a.flush().await.unwrap();
        let files =
            |d: &str| std::fs::read_dir(dir.path().join("audit").join(d)).map_or(0, |r| r.count());
        assert_eq!((files("2026-12-01"), files("2026-12-05")), (1, 1));
        // A reader sees its own buffer and the other server's files.
        let users: Vec<(String, String)> = b
            .read()
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.user, r.outcome))
            .collect();
        assert_eq!(
            users,
            [("ann", "ok"), ("bob", "ok"), ("ann", "denied")]
                .map(|(u, o)| (u.to_string(), o.to_string()))
        );
        // Three days of retention on the 6th: the 1st goes, the 4th stays.
        a.expire(day(6)).await.unwrap();
        assert_eq!((files("2026-12-01"), files("2026-12-04")), (0, 1));
        assert_eq!(a.read().await.unwrap().len(), 2);
    }
}
