//! `system.segment_changes`: the profiles that entered or exited a segment
//! at each refresh (a view over `segment_data._changes`, restricted to the
//! refreshes that completed, those in `segment_data._history`).

use seglake_catalog::Snapshot;

use super::{SystemView, segment_data};
use crate::catalog::segments::{CHANGES_TABLE, HISTORY_TABLE, changes_schema, history_schema};

#[derive(Debug)]
pub(super) struct SegmentChanges;

impl SystemView for SegmentChanges {
    fn name(&self) -> &'static str {
        "segment_changes"
    }

    fn sql(&self, snapshot: &Snapshot) -> String {
        format!(
            "SELECT c.segment, c.profile_id, c.change, c.at, c.refresh_id FROM {} c \
             WHERE c.refresh_id IN (SELECT refresh_id FROM {})",
            segment_data(snapshot, CHANGES_TABLE, &changes_schema()),
            segment_data(snapshot, HISTORY_TABLE, &history_schema())
        )
    }
}
