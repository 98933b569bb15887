//! `system.segment_history`: one row per segment refresh (a view over
//! `segment_data._history`).

use seglake_catalog::Snapshot;

use super::{SystemView, segment_data};
use crate::catalog::segments::{HISTORY_TABLE, history_schema};

#[derive(Debug)]
pub(super) struct SegmentHistory;

impl SystemView for SegmentHistory {
    fn name(&self) -> &'static str {
        "segment_history"
    }

    fn sql(&self, snapshot: &Snapshot) -> String {
        format!(
            "SELECT segment, version, refreshed_at, size, entered, exited, duration_ms, \
             refresh_id, snapshot_version FROM {}",
            segment_data(snapshot, HISTORY_TABLE, &history_schema())
        )
    }
}
