//! The versioned catalog log and its optimistic update loop.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use rand::Rng;
use tokio::sync::Mutex;
use tracing::{debug, info};

use crate::{CatalogError, CatalogState, Result, Warehouse};

/// How many old versions are kept (for inspection and for slow readers).
const KEEP_VERSIONS: u64 = 100;
/// Attempts before an update reports [`CatalogError::TooManyConflicts`].
const MAX_ATTEMPTS: usize = 64;

/// One committed version of the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub version: u64,
    pub state: CatalogState,
}

/// Reads and updates the catalog log `<warehouse>/_seglake/catalog/`.
///
/// Cheap to share (`Arc`); every method goes to the object store for the
/// newest version, so several processes sharing a warehouse stay in step.
#[derive(Debug)]
pub struct CatalogStore {
    store: Arc<dyn ObjectStore>,
    dir: Path,
    /// The newest snapshot this process has seen, to list only newer files.
    cached: Mutex<Option<Arc<Snapshot>>>,
}

fn version_file(dir: &Path, version: u64) -> Path {
    dir.clone().join(format!("{version:020}.json").as_str())
}

fn parse_version(path: &Path) -> Option<u64> {
    path.filename()?.strip_suffix(".json")?.parse().ok()
}

impl CatalogStore {
    /// Opens the catalog of a warehouse, creating version 1 (schema `public`)
    /// if the warehouse has none.
    pub async fn open(warehouse: &Warehouse) -> Result<Self> {
        let this = Self {
            store: warehouse.store(),
            dir: warehouse.path(&["_seglake", "catalog"]),
            cached: Mutex::new(None),
        };
        if this.latest_version(None).await?.is_none() {
            match this
                .write_version(1, &CatalogState::initial(Utc::now()))
                .await
            {
                Ok(()) => info!(dir = %this.dir, "created a new catalog"),
                // Another process created it first: fine.
                Err(CatalogError::ObjectStore(object_store::Error::AlreadyExists { .. })) => {}
                Err(e) => return Err(e),
            }
        }
        this.current().await?;
        Ok(this)
    }

    /// The newest version number, listing only files after `after`.
    async fn latest_version(&self, after: Option<u64>) -> Result<Option<u64>> {
        let listing: Vec<_> = match after {
            Some(v) => {
                let offset = version_file(&self.dir, v);
                self.store
                    .list_with_offset(Some(&self.dir), &offset)
                    .try_collect()
                    .await?
            }
            None => self.store.list(Some(&self.dir)).try_collect().await?,
        };
        Ok(listing
            .iter()
            .filter_map(|m| parse_version(&m.location))
            .filter(|v| after.is_none_or(|a| *v > a))
            .max())
    }

    async fn read_version(&self, version: u64) -> Result<Snapshot> {
        let path = version_file(&self.dir, version);
        let bytes = self.store.get(&path).await?.bytes().await?;
        let state = serde_json::from_slice(&bytes).map_err(|source| CatalogError::Corrupt {
            path: path.to_string(),
            source,
        })?;
        Ok(Snapshot { version, state })
    }

    async fn write_version(&self, version: u64, state: &CatalogState) -> Result<()> {
        let json = serde_json::to_vec_pretty(state).map_err(|source| CatalogError::Corrupt {
            path: version_file(&self.dir, version).to_string(),
            source,
        })?;
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        self.store
            .put_opts(
                &version_file(&self.dir, version),
                PutPayload::from(Bytes::from(json)),
                opts,
            )
            .await?;
        Ok(())
    }

    /// The newest committed catalog.
    pub async fn current(&self) -> Result<Arc<Snapshot>> {
        let mut cached = self.cached.lock().await;
        let after = cached.as_ref().map(|s| s.version);
        let newest = self.latest_version(after).await?;
        match (newest, cached.as_ref()) {
            (None, Some(s)) => Ok(Arc::clone(s)),
            (Some(v), _) => {
                // Old versions may be cleaned up under our feet: retry once
                // from a fresh listing.
                let snap = match self.read_version(v).await {
                    Ok(s) => s,
                    Err(CatalogError::ObjectStore(object_store::Error::NotFound { .. })) => {
                        let v = self.latest_version(None).await?.unwrap_or(v);
                        self.read_version(v).await?
                    }
                    Err(e) => return Err(e),
                };
                let snap = Arc::new(snap);
                *cached = Some(Arc::clone(&snap));
                Ok(snap)
            }
            (None, None) => Err(CatalogError::ObjectStore(object_store::Error::NotFound {
                path: self.dir.to_string(),
                source: "the warehouse has no catalog".into(),
            })),
        }
    }

    /// Applies `change` to the newest catalog and commits it as the next
    /// version. If another writer committed first, `change` is applied
    /// again to the newer catalog: it must be a pure function of the state
    /// it is given. Returns the committed snapshot and what `change`
    /// returned.
    pub async fn update<T, F>(&self, mut change: F) -> Result<(Arc<Snapshot>, T)>
    where
        F: FnMut(&mut CatalogState) -> Result<T>,
    {
        for attempt in 0..MAX_ATTEMPTS {
            let base = self.current().await?;
            let mut state = base.state.clone();
            let out = change(&mut state)?;
            let version = base.version + 1;
            match self.write_version(version, &state).await {
                Ok(()) => {
                    // A writer that was more than KEEP_VERSIONS behind could
                    // have re-created a version number that cleanup had
                    // deleted. Cleanup only deletes `v` once the newest
                    // version is at least `v + KEEP_VERSIONS`, so that is
                    // the sign of a stale commit (a newer version just above
                    // ours is a writer that built on our commit).
                    if let Some(newest) = self.latest_version(Some(version)).await?
                        && newest >= version + KEEP_VERSIONS
                    {
                        let _ = self.store.delete(&version_file(&self.dir, version)).await;
                        debug!(version, newest, "stale catalog commit undone, retrying");
                        continue;
                    }
                    let snap = Arc::new(Snapshot { version, state });
                    *self.cached.lock().await = Some(Arc::clone(&snap));
                    self.cleanup(version).await;
                    return Ok((snap, out));
                }
                Err(CatalogError::ObjectStore(object_store::Error::AlreadyExists { .. })) => {
                    debug!(version, attempt, "catalog commit lost a race, retrying");
                    let backoff = rand::rng().random_range(1..=(5 * (attempt as u64 + 1)).min(200));
                    tokio::time::sleep(Duration::from_millis(backoff)).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(CatalogError::TooManyConflicts(MAX_ATTEMPTS))
    }

    /// Best-effort removal of versions older than `KEEP_VERSIONS`.
    async fn cleanup(&self, newest: u64) {
        if newest <= KEEP_VERSIONS || !newest.is_multiple_of(10) {
            return;
        }
        let Ok(files) = self
            .store
            .list(Some(&self.dir))
            .try_collect::<Vec<_>>()
            .await
        else {
            return;
        };
        for f in files {
            if parse_version(&f.location).is_some_and(|v| v + KEEP_VERSIONS <= newest) {
                let _ = self.store.delete(&f.location).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::S3Options;

    async fn open(dir: &std::path::Path) -> CatalogStore {
        let w = Warehouse::open(dir.to_str().unwrap(), &S3Options::default()).unwrap();
        CatalogStore::open(&w).await.unwrap()
    }

    #[tokio::test]
    async fn create_reopen_and_update() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(dir.path()).await;
        let s = c.current().await.unwrap();
        assert_eq!(s.version, 1);
        assert!(s.state.schemas.contains_key("public"));
        c.update(|st| st.create_schema("crm", false, Utc::now()))
            .await
            .unwrap();
        // A second process sees the change.
        let c2 = open(dir.path()).await;
        let s2 = c2.current().await.unwrap();
        assert_eq!(s2.version, 2);
        assert!(s2.state.schemas.contains_key("crm"));
        // A failing change commits nothing.
        let err = c2
            .update(|st| st.create_schema("crm", false, Utc::now()))
            .await;
        assert!(matches!(err, Err(CatalogError::SchemaExists(_))));
        assert_eq!(c.current().await.unwrap().version, 2);
    }

    /// Many writers in several "processes" (separate stores) race; every
    /// update must survive.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_updates_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut handles = vec![];
        for w in 0..4 {
            let path = dir.path().to_path_buf();
            handles.push(tokio::spawn(async move {
                let c = open(&path).await;
                for i in 0..10 {
                    c.update(|st| st.create_schema(&format!("s_{w}_{i}"), false, Utc::now()))
                        .await
                        .unwrap();
                }
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        let s = open(dir.path()).await.current().await.unwrap();
        assert_eq!(s.version, 41);
        assert_eq!(s.state.schemas.len(), 41, "public + 40 created schemas");
    }

    #[tokio::test]
    async fn old_versions_are_cleaned_up() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(dir.path()).await;
        for i in 0..120 {
            c.update(|st| st.create_schema(&format!("s{i}"), false, Utc::now()))
                .await
                .unwrap();
        }
        let files = std::fs::read_dir(dir.path().join("_seglake/catalog"))
            .unwrap()
            .count();
        assert!(files <= KEEP_VERSIONS as usize + 10, "{files} files kept");
        let s = open(dir.path()).await.current().await.unwrap();
        assert_eq!(s.version, 121);
        assert_eq!(s.state.schemas.len(), 121);
    }
}
