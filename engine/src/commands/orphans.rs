//! `VACUUM WAREHOUSE`: every managed table's `VACUUM`, then the orphan
//! sweep: table directories under `tables/` that no catalog entry points
//! at (the data of a dropped or replaced table whose deletion failed, a
//! `CREATE TABLE` that failed before its catalog commit) are deleted once
//! their newest file is older than the retention, and never younger than
//! [`ORPHAN_MIN_RETAIN_HOURS`]: a `CREATE TABLE` in progress writes its
//! directory before the catalog names it.

use std::collections::HashSet;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use seglake_catalog::{TableFormat, TableKind};
use tracing::info;

use super::managed::ORPHAN_MIN_RETAIN_HOURS;
use crate::Result;
use crate::pipeline::StatementContext;

/// The default retention of `VACUUM` (Delta's: 7 days).
const DEFAULT_RETAIN_HOURS: f64 = 168.0;

impl StatementContext {
    /// `VACUUM WAREHOUSE [RETAIN n HOURS] [DRY RUN]`: files deleted (or that
    /// would be).
    pub(crate) async fn vacuum_warehouse(
        &self,
        retain_hours: Option<f64>,
        dry_run: bool,
    ) -> Result<u64> {
        let snapshot = self.storage().catalog().await?;
        let warehouse = self.storage().warehouse();
        let mut deleted = 0;
        let mut live: HashSet<Path> = HashSet::new();
        for (schema, s) in &snapshot.state.schemas {
            for (name, entry) in &s.tables {
                if let Some(p) = warehouse.path_in_store(&entry.location) {
                    live.insert(p);
                }
                if entry.kind == TableKind::Managed && entry.format == TableFormat::Delta {
                    deleted += self
                        .vacuum_entry(schema, name, &entry.location, retain_hours, dry_run)
                        .await?;
                }
            }
        }
        let retain = retain_hours
            .unwrap_or(DEFAULT_RETAIN_HOURS)
            .max(ORPHAN_MIN_RETAIN_HOURS);
        let cutoff =
            chrono::Utc::now() - chrono::Duration::milliseconds((retain * 3_600_000.0) as i64);
        let store = warehouse.store();
        let mut orphans = 0u64;
        for generation in table_generations(store.as_ref(), &warehouse.path(&["tables"])).await? {
            if live.contains(&generation) {
                continue;
            }
            let files: Vec<_> = store.list(Some(&generation)).try_collect().await?;
            if files.iter().any(|f| f.last_modified > cutoff) {
                continue;
            }
            if !dry_run {
                for f in &files {
                    match store.delete(&f.location).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            info!(user = %self.user(), directory = %generation, files = files.len(), dry_run, "orphan table directory swept");
            orphans += files.len() as u64;
        }
        info!(user = %self.user(), deleted, orphans, dry_run, "warehouse vacuum done");
        Ok(deleted + orphans)
    }
}

/// `tables/<schema>/<table>/<generation>` directories of the warehouse.
async fn table_generations(store: &dyn ObjectStore, tables: &Path) -> Result<Vec<Path>> {
    let mut out = vec![];
    for schema in store
        .list_with_delimiter(Some(tables))
        .await?
        .common_prefixes
    {
        for table in store
            .list_with_delimiter(Some(&schema))
            .await?
            .common_prefixes
        {
            out.extend(
                store
                    .list_with_delimiter(Some(&table))
                    .await?
                    .common_prefixes,
            );
        }
    }
    Ok(out)
}
