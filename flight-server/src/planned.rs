//! Queries planned at `GetFlightInfo`, kept for the `DoGet` that follows.
//!
//! A Flight SQL query is two calls: `GetFlightInfo` plans it (the client
//! needs its schema) and `DoGet` runs it. Tickets stay self-contained (a
//! sealed handle carrying the SQL, see [`crate::handle`]); what is kept here
//! only spares `DoGet` a second planning. Each session keeps its last few
//! plans for a short while; the first `DoGet` of a ticket in the same
//! session takes the plan, and any other `DoGet` (another session, a second
//! fetch of the ticket, an expired or evicted entry) plans the SQL again. A
//! command run in the session drops them all, so that a query planned before
//! a `DROP TABLE` does not run against what the drop removed.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use seglake_engine::PlannedQuery;

/// Plans kept per session at most (the oldest goes first).
const CAPACITY: usize = 16;
/// How long a plan waits for its `DoGet`.
const TTL: Duration = Duration::from_secs(30);

/// The planned queries of one session, by ticket handle.
#[derive(Debug, Default)]
pub struct PlannedStatements {
    slots: Mutex<VecDeque<Slot>>,
}

#[derive(Debug)]
struct Slot {
    handle: Bytes,
    planned_at: Instant,
    query: PlannedQuery,
}

impl PlannedStatements {
    /// Keeps the plan of the query whose ticket carries `handle`.
    pub(crate) fn keep(&self, handle: Bytes, query: PlannedQuery) {
        self.keep_at(handle, query, Instant::now());
    }

    fn keep_at(&self, handle: Bytes, query: PlannedQuery, now: Instant) {
        let mut slots = self.slots.lock();
        slots.retain(|s| s.handle != handle && now.duration_since(s.planned_at) < TTL);
        if slots.len() >= CAPACITY {
            slots.pop_front();
        }
        slots.push_back(Slot {
            handle,
            planned_at: now,
            query,
        });
    }

    /// The plan kept for `handle`, if still fresh; it is kept no longer.
    pub(crate) fn take(&self, handle: &[u8]) -> Option<PlannedQuery> {
        self.take_at(handle, Instant::now())
    }

    fn take_at(&self, handle: &[u8], now: Instant) -> Option<PlannedQuery> {
        let mut slots = self.slots.lock();
        let i = slots.iter().position(|s| s.handle == handle)?;
        let slot = slots.remove(i)?;
        (now.duration_since(slot.planned_at) < TTL).then_some(slot.query)
    }

    /// Drops every kept plan (a command ran in the session).
    pub(crate) fn clear(&self) {
        self.slots.lock().clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use seglake_engine::{Engine, EngineConfig};

    async fn planned(sql: &str) -> PlannedQuery {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(EngineConfig::new(dir.path().to_str().unwrap()))
            .await
            .unwrap();
        let session = engine.session("u").unwrap();
        session.prepare(sql, &[]).await.unwrap().planned.unwrap()
    }

    fn h(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[tokio::test]
    async fn taken_once_within_the_ttl() {
        let q = planned("SELECT 1").await;
        let kept = PlannedStatements::default();
        let t0 = Instant::now();
        kept.keep_at(h("a"), q.clone(), t0);
        kept.keep_at(h("b"), q.clone(), t0);
        assert!(kept.take_at(b"a", t0).is_some());
        assert!(kept.take_at(b"a", t0).is_none(), "single use");
        assert!(kept.take_at(b"zzz", t0).is_none());
        // Expired: not given out, and gone.
        assert!(kept.take_at(b"b", t0 + TTL).is_none());
        assert_eq!(kept.len(), 0);
        // Keeping again the same handle replaces it.
        kept.keep_at(h("c"), q.clone(), t0);
        kept.keep_at(h("c"), q.clone(), t0);
        assert_eq!(kept.len(), 1);
        kept.clear();
        assert!(kept.take_at(b"c", t0).is_none());
    }

    #[tokio::test]
    async fn bounded_and_expired_entries_pruned() {
        let q = planned("SELECT 1").await;
        let kept = PlannedStatements::default();
        let t0 = Instant::now();
        for i in 0..CAPACITY + 5 {
            kept.keep_at(h(&format!("q{i}")), q.clone(), t0);
        }
        assert_eq!(kept.len(), CAPACITY);
        assert!(kept.take_at(b"q0", t0).is_none(), "the oldest went first");
        assert!(
            kept.take_at(format!("q{}", CAPACITY + 4).as_bytes(), t0)
                .is_some()
        );
        // A keep after the TTL prunes the expired ones.
        kept.keep_at(h("late"), q, t0 + TTL);
        assert_eq!(kept.len(), 1);
    }
}
