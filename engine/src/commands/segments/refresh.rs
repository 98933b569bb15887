//! `REFRESH SEGMENT`: evaluate, diff against the previous snapshot, record.
//!
//! One refresh, in this order:
//! 1. evaluate the segment (`SELECT DISTINCT profile_id`), erased profiles
//!    removed;
//! 2. diff against the current snapshot `segment_data.<name>`: entered =
//!    new − old, exited = old − new;
//! 3. append the changes to `segment_data._changes` (tagged with a new
//!    refresh id);
//! 4. overwrite the snapshot (one Delta commit: readers see the old or the
//!    new membership, never a mix);
//! 5. append the refresh to `segment_data._history` — the refresh counts as
//!    done from here: `system.segment_changes` only shows changes of
//!    refreshes in the history, so a refresh that died between 3 and 5
//!    leaves nothing visible (its snapshot, if written, is the base of the
//!    next diff, which then reports the same movements again);
//! 6. record the refresh in the catalog (SHOW SEGMENTS, the scheduler) and
//!    deliver the changes to the segment's activations.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::LogicalPlan;
use seglake_catalog::{LastRefresh, SEGMENT_DATA_SCHEMA, TableEntry};
use tracing::{info, warn};

use super::members_schema;
use crate::catalog::segments::{CHANGES_TABLE, HISTORY_TABLE, changes_schema, history_schema};
use crate::commands::managed::WriteMode;
use crate::pipeline::StatementContext;
use crate::{EngineError, Result};

/// What one refresh found (the rest is in `system.segment_history`).
#[derive(Debug, Clone)]
pub(crate) struct RefreshReport {
    pub size: u64,
}

fn rows(batches: &[RecordBatch]) -> u64 {
    batches.iter().map(|b| b.num_rows() as u64).sum()
}

/// The `profile_id` strings of `batches` (one Utf8 column).
fn ids(batches: &[RecordBatch]) -> impl Iterator<Item = &str> {
    batches.iter().flat_map(|b| {
        arrow::array::AsArray::as_string::<i32>(b.column(0))
            .iter()
            .flatten()
    })
}

impl StatementContext {
    /// The managed table `segment_data.<name>`, created empty with `schema`
    /// when missing.
    pub(crate) async fn segment_data_table(
        &self,
        name: &str,
        schema: SchemaRef,
    ) -> Result<TableEntry> {
        let snapshot = self.storage().catalog().await?;
        if let Ok(entry) = snapshot.state.table(SEGMENT_DATA_SCHEMA, name) {
            return Ok(entry.clone());
        }
        let now = chrono::Utc::now();
        self.storage()
            .catalog_store()
            .update(|st| st.create_schema(SEGMENT_DATA_SCHEMA, true, now))
            .await?;
        // Created, existed or raced: in every case the table now exists.
        self.create_managed(SEGMENT_DATA_SCHEMA, name, None, schema, &[], true, false)
            .await?;
        let snapshot = self.storage().catalog().await?;
        Ok(snapshot.state.table(SEGMENT_DATA_SCHEMA, name)?.clone())
    }

    /// Refreshes every segment, each after the segments it reads. A segment
    /// that fails does not stop the others, but the segments that read it
    /// are skipped (they would read a stale snapshot's dependents); the
    /// failures are reported together at the end.
    pub(crate) async fn refresh_all_segments(&self) -> Result<Vec<RefreshReport>> {
        let snapshot = self.storage().catalog().await?;
        let mut reports = vec![];
        let mut failed: Vec<String> = vec![];
        let mut errors: Vec<String> = vec![];
        for name in snapshot.state.segments_in_dependency_order() {
            let reads = &snapshot.state.segments[&name].current().depends_on;
            if failed
                .iter()
                .any(|f| snapshot.state.segment_reaches(reads, f))
            {
                failed.push(name.clone());
                errors.push(format!("{name}: skipped (it reads a segment that failed)"));
                continue;
            }
            match self.refresh_segment(&name).await {
                Ok(r) => reports.push(r),
                Err(e) => {
                    warn!(segment = %name, error = %e, "refresh failed");
                    errors.push(format!("{name}: {e}"));
                    failed.push(name);
                }
            }
        }
        if errors.is_empty() {
            Ok(reports)
        } else {
            Err(EngineError::InvalidArgument(format!(
                "REFRESH SEGMENTS: {} segment(s) refreshed, {} not: {}",
                reports.len(),
                errors.len(),
                errors.join("; ")
            )))
        }
    }

    /// Refreshes one segment (see the module documentation).
    pub(crate) async fn refresh_segment(&self, name: &str) -> Result<RefreshReport> {
        // One refresh at a time per server: two refreshes of one segment
        // would diff against the same snapshot.
        let _guard = self.refresh_lock().lock().await;
        let started = Instant::now();
        let at = chrono::Utc::now();
        let snapshot = self.refresh_catalog().await?;
        let definition = snapshot.state.segment(name)?.current().clone();
        let members_entry = self.segment_data_table(name, members_schema()).await?;
        let changes_entry = self
            .segment_data_table(CHANGES_TABLE, changes_schema())
            .await?;
        let history_entry = self
            .segment_data_table(HISTORY_TABLE, history_schema())
            .await?;
        self.refresh_catalog().await?;

        // 1. Evaluate.
        let quoted = name.replace('"', "\"\"");
        let plan = self
            .context()
            .sql(&format!(
                "SELECT DISTINCT CAST(profile_id AS VARCHAR) AS profile_id \
                 FROM segments.\"{quoted}\" WHERE profile_id IS NOT NULL"
            ))
            .await
            .map_err(|e| EngineError::InvalidArgument(format!("segment '{name}': {e}")))?
            .into_unoptimized_plan();
        let plan =
            crate::storage::delta::drop_erased(plan, &members_schema(), &self.erasures().await?)?;
        let new = self
            .context()
            .execute_logical_plan(plan)
            .await?
            .collect()
            .await?
            .iter()
            .map(|b| {
                let ids = arrow::compute::cast(b.column(0), &DataType::Utf8)?;
                Ok(RecordBatch::try_new(members_schema(), vec![ids])?)
            })
            .collect::<Result<Vec<_>>>()?;

        // 2. Diff (both sides are distinct, so EXCEPT ALL is EXCEPT).
        let ctx = self.context();
        let new_df = ctx.read_table(Arc::new(MemTable::try_new(
            members_schema(),
            vec![new.clone()],
        )?))?;
        let old_df = ctx.read_table(
            self.storage()
                .delta_provider(&members_entry.location, None)
                .await?,
        )?;
        let entered = new_df.clone().except(old_df.clone())?.collect().await?;
        let exited = old_df.except(new_df)?.collect().await?;

        // 3. Changes.
        let refresh_id = uuid::Uuid::now_v7().to_string();
        let (n_entered, n_exited) = (rows(&entered), rows(&exited));
        if n_entered + n_exited > 0 {
            let changes: Vec<(&str, &str)> = ids(&entered)
                .map(|p| (p, "entered"))
                .chain(ids(&exited).map(|p| (p, "exited")))
                .collect();
            let n = changes.len();
            let batch = RecordBatch::try_new(
                changes_schema(),
                vec![
                    Arc::new(StringArray::from_iter_values(std::iter::repeat_n(name, n))),
                    Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
                        refresh_id.as_str(),
                        n,
                    ))),
                    Arc::new(StringArray::from_iter_values(changes.iter().map(|c| c.0))),
                    Arc::new(StringArray::from_iter_values(changes.iter().map(|c| c.1))),
                    Arc::new(
                        TimestampMicrosecondArray::from_iter_values(std::iter::repeat_n(
                            at.timestamp_micros(),
                            n,
                        ))
                        .with_timezone("UTC"),
                    ),
                ],
            )?;
            self.append_rows(&changes_entry, changes_schema(), vec![batch])
                .await?;
        }

        // 4. Snapshot.
        let size = rows(&new);
        let table = self
            .storage()
            .open_delta(&members_entry.location, None)
            .await?;
        let (table, _) = self
            .write_plan(
                table,
                batches_plan(self, members_schema(), new)?,
                &members_schema(),
                WriteMode::Overwrite,
            )
            .await?;
        let snapshot_version = table.version().unwrap_or(0) as i64;

        // 5. History.
        let duration_ms = started.elapsed().as_millis() as i64;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![name])),
            Arc::new(Int64Array::from(vec![definition.version as i64])),
            Arc::new(StringArray::from(vec![refresh_id.as_str()])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![at.timestamp_micros()]).with_timezone("UTC"),
            ),
            Arc::new(Int64Array::from(vec![size as i64])),
            Arc::new(Int64Array::from(vec![n_entered as i64])),
            Arc::new(Int64Array::from(vec![n_exited as i64])),
            Arc::new(Int64Array::from(vec![duration_ms])),
            Arc::new(Int64Array::from(vec![snapshot_version])),
        ];
        let batch = RecordBatch::try_new(history_schema(), columns)?;
        self.append_rows(&history_entry, history_schema(), vec![batch])
            .await?;

        // 6. Catalog, activations.
        let last = LastRefresh {
            refresh_id: refresh_id.clone(),
            at,
            size,
            snapshot_version,
        };
        self.storage()
            .catalog_store()
            .update(|st| {
                if let Some(s) = st.segments.get_mut(name) {
                    s.last_refresh = Some(last.clone());
                }
                Ok(())
            })
            .await?;
        info!(
            user = %self.user(), segment = name, size, entered = n_entered, exited = n_exited,
            duration_ms, "segment refreshed"
        );
        if let Err(e) = self.deliver_activations(name).await {
            // The refresh is committed; undelivered changes are sent again
            // after the next refresh (see activation.rs).
            warn!(segment = name, error = %e, "activation failed");
        }
        Ok(RefreshReport { size })
    }

    /// Appends `batches` to a managed table as one commit.
    pub(crate) async fn append_rows(
        &self,
        entry: &TableEntry,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> Result<()> {
        let table = self.storage().open_delta(&entry.location, None).await?;
        let plan = batches_plan(self, Arc::clone(&schema), batches)?;
        self.write_plan(table, plan, &schema, WriteMode::Append)
            .await?;
        Ok(())
    }
}

/// A plan that produces `batches` (possibly none).
fn batches_plan(
    session: &StatementContext,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) -> Result<LogicalPlan> {
    let table = MemTable::try_new(schema, vec![batches])?;
    Ok(session
        .context()
        .read_table(Arc::new(table))?
        .into_unoptimized_plan())
}
