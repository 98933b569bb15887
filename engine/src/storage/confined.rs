//! The object stores a worker reads through: read-only and confined to the
//! warehouse and the `--allow-location` prefixes, whatever a plan names.
//!
//! A worker checks the files of the Parquet and CSV scans it is sent before
//! running them (`distributed/worker.rs`), but not every reader names its
//! files in the plan: a Delta scan carries a serialized table snapshot and
//! re-plans on the worker, reading a Delta log whose location and whose
//! data files' paths (absolute paths are allowed in a Delta log) come from
//! the sender. So the worker's runtime hands out its object stores wrapped:
//! every read, head and listing is checked against the allowed locations
//! (local paths with their symlinks resolved, as `locations.rs` does), and
//! nothing writes, deletes, copies or renames (a fragment only reads;
//! shuffles go over Flight, spills to the local disk manager).

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::error::Result as DfResult;
use datafusion::execution::object_store::ObjectStoreRegistry;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};
use url::Url;

use super::locations::Locations;

/// The rule a write by a worker names (`docs/server.md`, "Distributed
/// workers"): the plan check's and these stores'.
pub(crate) const WORKER_READ_ONLY: &str = "worker-read-only";

/// Checked paths kept at most; beyond, the cache starts again empty.
const APPROVED_CAPACITY: usize = 100_000;

/// Local paths already found inside the allowed locations (resolving a
/// path's symlinks costs a system call per component; a scan reads each
/// file several times).
#[derive(Debug, Default)]
struct Approved(parking_lot::Mutex<HashSet<String>>);

impl Approved {
    fn contains(&self, url: &str) -> bool {
        self.0.lock().contains(url)
    }

    fn insert(&self, url: String) {
        let mut set = self.0.lock();
        if set.len() >= APPROVED_CAPACITY {
            set.clear();
        }
        set.insert(url);
    }
}

/// A registry handing out the stores of `inner` confined (see the module
/// docs). Stores registered through it land in `inner`, unwrapped, so the
/// storage that registers them (`Storage::ensure_object_store`) and this
/// registry see the same ones.
#[derive(Debug)]
pub(crate) struct ConfinedRegistry {
    inner: Arc<dyn ObjectStoreRegistry>,
    locations: Arc<Locations>,
    approved: Arc<Approved>,
}

impl ConfinedRegistry {
    pub(crate) fn new(inner: Arc<dyn ObjectStoreRegistry>, locations: Locations) -> Self {
        Self {
            inner,
            locations: Arc::new(locations),
            approved: Arc::default(),
        }
    }
}

impl ObjectStoreRegistry for ConfinedRegistry {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.inner.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> DfResult<Arc<dyn ObjectStore>> {
        self.inner.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> DfResult<Arc<dyn ObjectStore>> {
        let inner = self.inner.get_store(url)?;
        Ok(Arc::new(ConfinedStore {
            inner,
            // Object paths are relative to the store's root: `file:///`,
            // `s3://bucket/`.
            root: format!("{}://{}/", url.scheme(), url.host_str().unwrap_or_default()),
            locations: Arc::clone(&self.locations),
            approved: Arc::clone(&self.approved),
        }))
    }
}

/// One store of a [`ConfinedRegistry`].
struct ConfinedStore {
    inner: Arc<dyn ObjectStore>,
    root: String,
    locations: Arc<Locations>,
    approved: Arc<Approved>,
}

impl fmt::Debug for ConfinedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConfinedStore({}, {})", self.root, self.inner)
    }
}

impl fmt::Display for ConfinedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "confined {}", self.inner)
    }
}

fn denied(path: &str, e: crate::EngineError) -> object_store::Error {
    object_store::Error::PermissionDenied {
        path: path.to_string(),
        source: Box::new(e),
    }
}

impl ConfinedStore {
    /// Refuses `path` (or the store's root) outside the allowed locations.
    fn check(&self, path: Option<&Path>) -> object_store::Result<()> {
        let path = path.map(|p| p.to_string()).unwrap_or_default();
        let url = format!("{}{path}", self.root);
        if self.approved.contains(&url) {
            return Ok(());
        }
        self.locations.confine(&url).map_err(|e| denied(&path, e))?;
        self.approved.insert(url);
        Ok(())
    }

    fn read_only(&self, path: &Path) -> object_store::Error {
        denied(
            path.as_ref(),
            crate::EngineError::denied(
                WORKER_READ_ONLY,
                "a worker only reads: its object stores refuse writes",
            ),
        )
    }
}

#[async_trait::async_trait]
impl ObjectStore for ConfinedStore {
    async fn put_opts(
        &self,
        location: &Path,
        _payload: PutPayload,
        _opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        Err(self.read_only(location))
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        _opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        Err(self.read_only(location))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.check(Some(location))?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.check(Some(location))?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let refusal = self.read_only(&Path::default()).to_string();
        locations
            .map(move |path| {
                let path = path?;
                Err(object_store::Error::PermissionDenied {
                    path: path.to_string(),
                    source: refusal.clone().into(),
                })
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        match self.check(prefix) {
            Ok(()) => self.inner.list(prefix),
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        }
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        match self.check(prefix) {
            Ok(()) => self.inner.list_with_offset(prefix, offset),
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.check(prefix)?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        _from: &Path,
        to: &Path,
        _options: CopyOptions,
    ) -> object_store::Result<()> {
        Err(self.read_only(to))
    }

    async fn rename_opts(
        &self,
        _from: &Path,
        to: &Path,
        _options: RenameOptions,
    ) -> object_store::Result<()> {
        Err(self.read_only(to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::object_store::DefaultObjectStoreRegistry;
    use object_store::ObjectStoreExt;

    fn store(warehouse: &std::path::Path) -> Arc<dyn ObjectStore> {
        let locations = Locations::new(warehouse.to_str().unwrap(), &[]).unwrap();
        let registry =
            ConfinedRegistry::new(Arc::new(DefaultObjectStoreRegistry::new()), locations);
        registry
            .get_store(&Url::parse("file:///").unwrap())
            .unwrap()
    }

    fn path(p: &std::path::Path) -> Path {
        Path::from_absolute_path(p).unwrap()
    }

    fn is_denied(e: &object_store::Error, rule: &str) -> bool {
        matches!(e, object_store::Error::PermissionDenied { .. }) && e.to_string().contains(rule)
    }

    #[tokio::test]
    async fn reads_inside_the_warehouse_only() {
        let warehouse = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(warehouse.path().join("in.txt"), "inside").unwrap();
        std::fs::write(outside.path().join("out.txt"), "secret").unwrap();
        // A link inside the warehouse to the file outside it.
        std::os::unix::fs::symlink(
            outside.path().join("out.txt"),
            warehouse.path().join("link.txt"),
        )
        .unwrap();
        let store = store(warehouse.path());

        let inside = path(&warehouse.path().join("in.txt"));
        let bytes = store.get(&inside).await.unwrap().bytes().await.unwrap();
        assert_eq!(&bytes[..], b"inside");
        assert_eq!(store.head(&inside).await.unwrap().size, 6);
        let listed: Vec<_> = store
            .list(Some(&path(warehouse.path())))
            .collect::<Vec<_>>()
            .await;
        assert!(listed.iter().all(Result::is_ok), "{listed:?}");

        for hostile in [
            path(&outside.path().join("out.txt")),
            path(&warehouse.path().join("link.txt")),
            // `Path` keeps `..` out of its segments; a dotted name that is
            // not a parent is just outside.
            path(std::path::Path::new("/etc/passwd")),
        ] {
            let e = store.get(&hostile).await.unwrap_err();
            assert!(is_denied(&e, "confined-locations"), "{hostile}: {e}");
            let e = store.head(&hostile).await.unwrap_err();
            assert!(is_denied(&e, "confined-locations"), "{hostile}: {e}");
            let e = store.get_range(&hostile, 0..1).await.unwrap_err();
            assert!(is_denied(&e, "confined-locations"), "{hostile}: {e}");
        }
        // Listing the filesystem root or another folder: refused.
        for prefix in [None, Some(path(outside.path()))] {
            let listed: Vec<_> = store.list(prefix.as_ref()).collect::<Vec<_>>().await;
            assert_eq!(listed.len(), 1, "{listed:?}");
            let e = listed.into_iter().next().unwrap().unwrap_err();
            assert!(is_denied(&e, "confined-locations"), "{e}");
            let e = store
                .list_with_delimiter(prefix.as_ref())
                .await
                .unwrap_err();
            assert!(is_denied(&e, "confined-locations"), "{e}");
        }
    }

    #[tokio::test]
    async fn nothing_is_written_even_inside_the_warehouse() {
        let warehouse = tempfile::tempdir().unwrap();
        std::fs::write(warehouse.path().join("in.txt"), "inside").unwrap();
        let store = store(warehouse.path());
        let inside = path(&warehouse.path().join("in.txt"));
        let new = path(&warehouse.path().join("new.txt"));

        let e = store.put(&new, "x".into()).await.unwrap_err();
        assert!(is_denied(&e, "worker-read-only"), "{e}");
        let e = store.put_multipart(&new).await.unwrap_err();
        assert!(is_denied(&e, "worker-read-only"), "{e}");
        let e = store.delete(&inside).await.unwrap_err();
        assert!(is_denied(&e, "worker-read-only"), "{e}");
        let e = store.copy(&inside, &new).await.unwrap_err();
        assert!(is_denied(&e, "worker-read-only"), "{e}");
        let e = store.rename(&inside, &new).await.unwrap_err();
        assert!(is_denied(&e, "worker-read-only"), "{e}");

        assert!(!warehouse.path().join("new.txt").exists());
        assert_eq!(
            std::fs::read_to_string(warehouse.path().join("in.txt")).unwrap(),
            "inside"
        );
    }
}
