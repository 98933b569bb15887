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
use tracing::{debug, info, warn};

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
///
/// **A corrupt version** (a file that does not parse as a catalog: damaged
/// on disk, written by hand) does not stop the warehouse: the newest
/// version that parses is served, with a warning naming the bad file, and
/// the bad file is left where it is for the operator to inspect. Its
/// number stays taken, since conditional puts cannot overwrite it, so the
/// next commit goes *after* it (`head + 1`, built on the version served):
/// a commit never loses its race against a file that cannot be read, and
/// once it lands the corrupt version is simply superseded. What the
/// corrupt version changed is lost (it cannot be read); the warning says
/// so. Only when no version parses is it an error
/// ([`CatalogError::NoValidVersion`]).
#[derive(Debug)]
pub struct CatalogStore {
    store: Arc<dyn ObjectStore>,
    dir: Path,
    /// What this process has seen last, to list only newer files.
    cached: Mutex<Option<Head>>,
}

/// The newest catalog file this process has listed and the snapshot it
/// serves for it: the same version, or an older one when the newest files
/// are corrupt.
#[derive(Debug)]
struct Head {
    /// The newest version number in the log, readable or not: listings
    /// start after it and the next commit is `head + 1`.
    head: u64,
    snapshot: Arc<Snapshot>,
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

    /// The newest committed catalog (the newest readable one, see
    /// [`CatalogStore`]).
    pub async fn current(&self) -> Result<Arc<Snapshot>> {
        Ok(self.head().await?.1)
    }

    /// The newest version number in the log and the snapshot served for it.
    async fn head(&self) -> Result<(u64, Arc<Snapshot>)> {
        let mut cached = self.cached.lock().await;
        let after = cached.as_ref().map(|c| c.head);
        let newest = self.latest_version(after).await?;
        match (newest, cached.as_ref()) {
            (None, Some(c)) => Ok((c.head, Arc::clone(&c.snapshot))),
            (Some(v), known) => {
                // Old versions may be cleaned up under our feet: retry once
                // from a fresh listing.
                let (head, snap) = match self.read_version(v).await {
                    Ok(s) => (v, Arc::new(s)),
                    Err(CatalogError::ObjectStore(object_store::Error::NotFound { .. })) => {
                        let v = self.latest_version(None).await?.unwrap_or(v);
                        (v, self.newest_valid(v, known).await?)
                    }
                    Err(CatalogError::Corrupt { .. }) => (v, self.newest_valid(v, known).await?),
                    Err(e) => return Err(e),
                };
                *cached = Some(Head {
                    head,
                    snapshot: Arc::clone(&snap),
                });
                Ok((head, snap))
            }
            (None, None) => Err(CatalogError::ObjectStore(object_store::Error::NotFound {
                path: self.dir.to_string(),
                source: "the warehouse has no catalog".into(),
            })),
        }
    }

    /// The newest version at or below `newest` that parses, warning about
    /// every corrupt one skipped; `known` (the snapshot this process
    /// already holds) is not read again.
    async fn newest_valid(&self, newest: u64, known: Option<&Head>) -> Result<Arc<Snapshot>> {
        let mut versions: Vec<u64> = self
            .store
            .list(Some(&self.dir))
            .try_collect::<Vec<_>>()
            .await?
            .iter()
            .filter_map(|m| parse_version(&m.location))
            .filter(|v| *v <= newest)
            .collect();
        versions.sort_unstable();
        let mut skipped = vec![];
        for version in versions.into_iter().rev() {
            if let Some(k) = known.filter(|k| k.snapshot.version == version) {
                warn_fallback(&skipped, version);
                return Ok(Arc::clone(&k.snapshot));
            }
            match self.read_version(version).await {
                Ok(s) => {
                    warn_fallback(&skipped, version);
                    return Ok(Arc::new(s));
                }
                Err(CatalogError::Corrupt { path, source }) => {
                    warn!(
                        file = %path,
                        error = %source,
                        "corrupt catalog version {version}: trying the previous one"
                    );
                    skipped.push(version);
                }
                // Deleted by a cleanup since the listing.
                Err(CatalogError::ObjectStore(object_store::Error::NotFound { .. })) => {}
                Err(e) => return Err(e),
            }
        }
        Err(CatalogError::NoValidVersion {
            dir: self.dir.to_string(),
            newest,
        })
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
            // After the newest file, even when that one is corrupt and
            // `base` an older version (see [`CatalogStore`]).
            let (head, base) = self.head().await?;
            let mut state = base.state.clone();
            let out = change(&mut state)?;
            let version = head + 1;
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
                    *self.cached.lock().await = Some(Head {
                        head: version,
                        snapshot: Arc::clone(&snap),
                    });
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

/// The warning of a fallback: which version is served instead of which.
fn warn_fallback(skipped: &[u64], served: u64) {
    if let Some(newest) = skipped.first() {
        warn!(
            served,
            corrupt = ?skipped,
            "catalog version {newest} is corrupt: serving version {served}; the changes \
             of the corrupt version(s) are not in effect, and the next catalog change \
             is committed after them (see docs/server.md, \"Corrupt data\")"
        );
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

    fn corrupt(dir: &std::path::Path, version: u64, bytes: &[u8]) {
        let file = dir.join(format!("_seglake/catalog/{version:020}.json"));
        std::fs::write(file, bytes).unwrap();
    }

    /// The newest version is garbage: the previous one is served (to a
    /// process that had read it and to a new one), and the next commit
    /// goes after the corrupt version, on top of the one served.
    #[tokio::test]
    async fn a_corrupt_newest_version_falls_back_to_the_previous_one() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(dir.path()).await;
        c.update(|st| st.create_schema("kept", false, Utc::now()))
            .await
            .unwrap();
        assert_eq!(c.current().await.unwrap().version, 2);
        // Version 3 is garbage, version 4 valid JSON of another shape
        // (e.g. a truncated document that still parses).
        corrupt(dir.path(), 3, b"\0\x01 not json");
        corrupt(dir.path(), 4, br#"{"schemas": 42}"#);

        let s = c.current().await.unwrap();
        assert_eq!(s.version, 2, "the process that knew version 2");
        assert!(s.state.schemas.contains_key("kept"));
        let fresh = open(dir.path()).await;
        let s = fresh.current().await.unwrap();
        assert_eq!(s.version, 2, "a new process");
        assert!(s.state.schemas.contains_key("kept"));

        // A commit after the fallback lands after the corrupt versions and
        // keeps what version 2 had.
        let (s, ()) = fresh
            .update(|st| st.create_schema("after", false, Utc::now()))
            .await
            .unwrap();
        assert_eq!(s.version, 5);
        for process in [&c, &fresh, &open(dir.path()).await] {
            let s = process.current().await.unwrap();
            assert_eq!(s.version, 5);
            assert!(s.state.schemas.contains_key("kept"));
            assert!(s.state.schemas.contains_key("after"));
        }
        // The corrupt files are left for the operator.
        assert!(
            dir.path()
                .join(format!("_seglake/catalog/{:020}.json", 3))
                .exists()
        );
        // And the log goes on normally.
        let (s, ()) = c
            .update(|st| st.create_schema("later", false, Utc::now()))
            .await
            .unwrap();
        assert_eq!(s.version, 6);
    }

    /// Concurrent writers after a fallback all commit (none conflicts
    /// forever with the corrupt version).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn writers_after_a_fallback_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        open(dir.path()).await;
        corrupt(dir.path(), 2, b"{");
        let mut handles = vec![];
        for w in 0..3 {
            let path = dir.path().to_path_buf();
            handles.push(tokio::spawn(async move {
                let c = open(&path).await;
                for i in 0..5 {
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
        assert_eq!(s.version, 17, "1, the corrupt 2, then 15 commits");
        assert_eq!(s.state.schemas.len(), 16, "public + 15 created schemas");
    }

    /// No version parses: a clear error (not a new empty catalog).
    #[tokio::test]
    async fn every_version_corrupt_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(dir.path()).await;
        c.update(|st| st.create_schema("x", false, Utc::now()))
            .await
            .unwrap();
        corrupt(dir.path(), 1, b"garbage");
        corrupt(dir.path(), 2, b"");
        let w = Warehouse::open(dir.path().to_str().unwrap(), &S3Options::default()).unwrap();
        let err = CatalogStore::open(&w).await.unwrap_err();
        assert!(
            matches!(err, CatalogError::NoValidVersion { newest: 2, .. }),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains("_seglake/catalog"), "{text}");
        // The files are not replaced by a new catalog.
        assert_eq!(
            std::fs::read(dir.path().join(format!("_seglake/catalog/{:020}.json", 1))).unwrap(),
            b"garbage"
        );
        // A process that read version 2 before it was damaged lists
        // nothing newer and keeps serving what it read.
        assert_eq!(c.current().await.unwrap().version, 2);
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
