//! Storage: the warehouse, its object stores and catalog log, and the
//! tables' files. [`Storage`] is the handle every layer above takes (the
//! catalog providers, statement contexts, commands, workers): it reaches
//! files, never sessions or SQL.
//!
//! - `delta.rs`: Delta Lake tables through the warehouse's object store,
//!   the cache of loaded table states, log stores for `s3://`, history,
//!   erasure filters;
//! - `delta_scan.rs`: the providers wrapping delta-rs's (scans a coordinator
//!   ships to workers, corrections of filter and limit pushdown);
//! - `erasure.rs`: the erasure key and the tombstones writes filter;
//! - `key_uses.rs`: when ingest keys were last used;
//! - `audit.rs`: the audit trail (`system.audit`), JSON lines in the
//!   warehouse;
//! - `confined.rs`: the read-only, confined object stores of workers;
//! - `locations.rs`: which paths and buckets statements and plans may name.

pub(crate) mod audit;
pub(crate) mod confined;
pub(crate) mod delta;
pub(crate) mod delta_scan;
pub(crate) mod erasure;
pub(crate) mod key_uses;
pub(crate) mod locations;

use std::sync::{Arc, OnceLock};

use datafusion::datasource::listing::ListingTableUrl;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::SessionState;
use object_store::ObjectStore;
use object_store::path::Path;
use seglake_catalog::{CatalogStore, Snapshot, Warehouse};

use crate::{EngineError, Result};

/// The warehouse and what reads and writes it.
#[derive(Debug)]
pub(crate) struct Storage {
    warehouse: Warehouse,
    catalog: CatalogStore,
    runtime: Arc<RuntimeEnv>,
    /// The warehouse and the `--allow-location` prefixes.
    locations: locations::Locations,
    /// Whether queries run on workers (Delta scans are then built so that
    /// they can be shipped).
    distributed: bool,
    /// Settings Delta scans follow (view types, pushdown), given once by
    /// the engine that opened the storage.
    scan_session: OnceLock<Arc<SessionState>>,
    /// Newest loaded state of each Delta table, brought up to date on use.
    pub(crate) delta_tables: delta::TableCache,
    /// Who did what (`system.audit`).
    audit: audit::AuditLog,
    /// This server's statements (`system.queries`, `KILL QUERY`).
    pub(crate) queries: crate::workload::Queries,
    /// Ingest key uses not in the catalog yet.
    pub(crate) key_uses: key_uses::KeyUses,
    /// The warehouse's erasure key, once read or created.
    erasure_key: tokio::sync::OnceCell<seglake_udfs::erased_profiles::ErasureKey>,
}

impl Storage {
    pub(crate) fn new(
        warehouse: Warehouse,
        catalog: CatalogStore,
        runtime: Arc<RuntimeEnv>,
        distributed: bool,
        allowed_locations: &[String],
        audit_retention_days: u32,
    ) -> Result<Self> {
        let locations = locations::Locations::new(&warehouse.url(), allowed_locations)?;
        let audit = audit::AuditLog::new(
            warehouse.store(),
            warehouse.path(&["_seglake", "audit"]),
            audit_retention_days,
        );
        Ok(Self {
            audit,
            warehouse,
            catalog,
            runtime,
            locations,
            distributed,
            scan_session: OnceLock::new(),
            delta_tables: delta::TableCache::default(),
            erasure_key: tokio::sync::OnceCell::new(),
            key_uses: key_uses::KeyUses::default(),
            queries: crate::workload::Queries::default(),
        })
    }

    pub(crate) fn warehouse(&self) -> &Warehouse {
        &self.warehouse
    }

    /// The audit trail of the warehouse.
    pub(crate) fn audit(&self) -> &audit::AuditLog {
        &self.audit
    }

    /// Refuses (PERMISSION_DENIED) an absolute location outside the
    /// warehouse and the allowed prefixes: what a worker checks for every
    /// file a plan fragment scans.
    pub(crate) fn check_location(&self, url: &str) -> Result<()> {
        self.locations.confine(url).map(|_| ())
    }

    /// A location a user names (an external table's LOCATION, a file
    /// destination's path): resolved against the warehouse root when
    /// relative, normalised, confined to the warehouse (outside its own
    /// folders) and the allowed prefixes. The URL ends with `/` (a folder)
    /// unless `file` (a single file).
    pub(crate) fn user_location(&self, location: &str, file: bool) -> Result<String> {
        let mut url = self.warehouse.resolve_location(location)?;
        if file {
            url.pop();
        }
        let mut url = self.locations.confine_user(&url)?.url()?;
        if !file && !url.ends_with('/') {
            url.push('/');
        }
        Ok(url)
    }

    pub(crate) fn runtime(&self) -> &Arc<RuntimeEnv> {
        &self.runtime
    }

    /// The runtime plan fragments run with on a worker: this storage's
    /// memory pool, disk manager and caches, its object stores handed out
    /// read-only and confined to the allowed locations (`confined.rs`).
    pub(crate) fn worker_runtime(&self) -> Result<Arc<RuntimeEnv>> {
        let registry = confined::ConfinedRegistry::new(
            Arc::clone(&self.runtime.object_store_registry),
            self.locations.clone(),
        );
        Ok(RuntimeEnvBuilder::from_runtime_env(&self.runtime)
            .with_object_store_registry(Arc::new(registry))
            .build_arc()?)
    }

    pub(crate) fn is_distributed(&self) -> bool {
        self.distributed
    }

    /// The newest committed catalog.
    pub(crate) async fn catalog(&self) -> Result<Arc<Snapshot>> {
        Ok(self.catalog.current().await?)
    }

    pub(crate) fn catalog_store(&self) -> &CatalogStore {
        &self.catalog
    }

    /// Sets the session Delta scans follow (once, when the engine opens).
    pub(crate) fn set_scan_session(&self, state: SessionState) {
        let _ = self.scan_session.set(Arc::new(state));
    }

    /// The session whose settings Delta table scans follow, with Seglake's
    /// functions: also the state segment views are planned with.
    pub(crate) fn scan_session(&self) -> Result<Arc<SessionState>> {
        self.scan_session.get().cloned().ok_or_else(|| {
            EngineError::DataFusion(datafusion::error::DataFusionError::Internal(
                "the storage has no scan session yet".into(),
            ))
        })
    }

    /// Makes sure DataFusion can reach the store of `url` (a table outside
    /// the warehouse store: another bucket, or local files next to an S3
    /// warehouse).
    pub(crate) fn ensure_object_store(&self, url: &str) -> Result<()> {
        let table_url = ListingTableUrl::parse(url)?;
        let store_url = table_url.object_store();
        if self.runtime.object_store(&store_url).is_ok() {
            return Ok(());
        }
        let parsed: &url::Url = store_url.as_ref();
        let store: Arc<dyn ObjectStore> = match parsed.scheme() {
            "file" => Arc::new(object_store::local::LocalFileSystem::new()),
            "s3" => {
                let bucket = parsed.host_str().unwrap_or_default();
                self.warehouse.s3_options().build(bucket)?
            }
            other => {
                return Err(EngineError::InvalidArgument(format!(
                    "unsupported location scheme '{other}': use a path, file:// or s3://"
                )));
            }
        };
        self.runtime.register_object_store(parsed, store);
        Ok(())
    }

    /// The store and path of a table location URL.
    pub(crate) fn store_for(&self, url: &str) -> Result<(Arc<dyn ObjectStore>, Path)> {
        self.ensure_object_store(url)?;
        let table_url = ListingTableUrl::parse(url)?;
        let store = self.runtime.object_store(table_url.object_store())?;
        Ok((store, table_url.prefix().clone()))
    }
}
