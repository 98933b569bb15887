//! Scheduled refreshes (`ALTER SEGMENT name SET REFRESH EVERY '15 minutes'`).
//!
//! The schedule lives in the catalog, so it survives restarts: after a
//! restart, a segment whose last refresh is older than its interval is
//! refreshed at the next tick. Several servers sharing a warehouse may all
//! run the scheduler; a refresh that loses the race for the snapshot commit
//! fails with a conflict and is logged (the winner's refresh stands). Run
//! it on one server (`seglake serve --no-scheduler` on the others) to
//! avoid the wasted work.

use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, warn};

use crate::{Engine, Result};

/// The user scheduled refreshes run as (recorded in the commit history).
pub const SCHEDULER_USER: &str = "seglake-scheduler";

impl Engine {
    /// Segments whose scheduled refresh is due now.
    pub async fn due_segments(&self) -> Result<Vec<String>> {
        let snapshot = self.catalog().await?;
        let now = chrono::Utc::now();
        let due: Vec<String> = snapshot
            .state
            .segments_in_dependency_order()
            .into_iter()
            .filter(|name| {
                let entry = &snapshot.state.segments[name];
                match (&entry.refresh_every, &entry.last_refresh) {
                    (None, _) => false,
                    (Some(_), None) => true,
                    (Some(every), Some(last)) => {
                        (now - last.at).num_milliseconds() >= every.seconds as i64 * 1000
                    }
                }
            })
            .collect();
        Ok(due)
    }

    /// Refreshes due segments every `tick` until the task is dropped.
    pub async fn run_refresh_scheduler(self: Arc<Self>, tick: Duration) {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            interval.tick().await;
            let due = match self.due_segments().await {
                Ok(due) => due,
                Err(e) => {
                    warn!(error = %e, "refresh scheduler: cannot read the catalog");
                    continue;
                }
            };
            if due.is_empty() {
                continue;
            }
            let session = match self.service_session(SCHEDULER_USER) {
                Ok(s) => s,
                Err(e) => {
                    warn!(error = %e, "refresh scheduler: no session");
                    continue;
                }
            };
            for name in due {
                debug!(segment = %name, "scheduled refresh");
                if let Err(e) = Box::pin(session.refresh_segment(&name)).await {
                    warn!(segment = %name, error = %e, "scheduled refresh failed");
                }
            }
        }
    }
}
