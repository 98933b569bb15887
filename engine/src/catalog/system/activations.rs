//! `system.activations`: one row per activation delivery (a view over
//! `segment_data._activations`).

use seglake_catalog::Snapshot;

use super::{SystemView, segment_data};
use crate::catalog::segments::{ACTIVATIONS_TABLE, activations_schema};

#[derive(Debug)]
pub(super) struct Activations;

impl SystemView for Activations {
    fn name(&self) -> &'static str {
        "activations"
    }

    fn sql(&self, snapshot: &Snapshot) -> String {
        format!(
            "SELECT destination, segment, refresh_id, change, rows_sent, status, error, \
             attempts, target, at FROM {}",
            segment_data(snapshot, ACTIVATIONS_TABLE, &activations_schema())
        )
    }
}
