//! The context of one statement.

use std::sync::Arc;
use std::time::Instant;

use datafusion::catalog::MemoryCatalogProviderList;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::SessionContext;
use seglake_catalog::security::Principal;
use seglake_catalog::{DEFAULT_CATALOG, Snapshot};
use tokio_util::sync::CancellationToken;

use crate::Result;
use crate::catalog::SnapshotCatalog;
use crate::distributed::Cluster;
use crate::memory::StatementMemory;
use crate::storage::Storage;

/// A statement's id, unique in this process and sortable by start time
/// (a UUID v7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatementId(uuid::Uuid);

impl std::fmt::Display for StatementId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.simple().fmt(f)
    }
}

/// Which entry point a statement came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// SQL text (Flight SQL statements and prepared statements, DoPut
    /// updates, SQL the collector runs).
    Sql,
    /// A bulk ingest (Flight SQL `CommandStatementIngest`, collector commits).
    Ingest,
    /// A scheduled segment refresh.
    Scheduler,
    /// Catalog metadata for clients (Flight SQL `GetTables`, `GetDbSchemas`).
    Metadata,
}

/// What a statement reaches of the engine: the storage, the workers of a
/// coordinator, the lock that serialises segment refreshes.
#[derive(Debug, Clone)]
pub(crate) struct Handles {
    pub(crate) storage: Arc<Storage>,
    pub(crate) cluster: Option<Cluster>,
    pub(crate) refresh_lock: Arc<tokio::sync::Mutex<()>>,
    /// The users that are administrators without a grant (the server's
    /// `--user` users); `None`: no access control, every user is an
    /// administrator (an engine embedded in a program, tests).
    pub(crate) administrators: Option<Arc<std::collections::BTreeSet<String>>>,
    /// `EngineConfig::statement_timeout`.
    pub(crate) statement_timeout: std::time::Duration,
}

/// One statement: who runs it, since when, how to stop it, and the
/// DataFusion context it plans and runs in.
///
/// The context is the session's settings with a catalog list of its own
/// holding this statement's catalog snapshot: two statements of one session
/// running at once each see their own snapshot.
pub struct StatementContext {
    id: StatementId,
    user: String,
    source: Source,
    started_at: chrono::DateTime<chrono::Utc>,
    started: Instant,
    cancel: CancellationToken,
    handles: Handles,
    ctx: SessionContext,
    /// The catalog version installed in `ctx`.
    snapshot: parking_lot::RwLock<Option<Arc<Snapshot>>>,
    /// What the statement holds of the server's memory pool, and its peak.
    memory: Arc<StatementMemory>,
}

impl std::fmt::Debug for StatementContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatementContext")
            .field("id", &self.id)
            .field("user", &self.user)
            .field("source", &self.source)
            .finish()
    }
}

impl StatementContext {
    /// Starts a statement of `user` with the settings of `session` and the
    /// newest catalog snapshot.
    pub(crate) async fn begin(
        handles: Handles,
        session: &SessionContext,
        user: &str,
        source: Source,
    ) -> Result<Self> {
        let id = StatementId(uuid::Uuid::now_v7());
        // The server's runtime with a pool that counts this statement's
        // bytes and names it in a refusal: whatever runs in the statement's
        // context (its plan's TaskContext) reserves through it.
        let memory = Arc::new(StatementMemory::default());
        let runtime = crate::memory::statement_runtime(
            handles.storage.runtime(),
            id.to_string(),
            Arc::clone(&memory),
        );
        let state = SessionStateBuilder::new_from_existing(session.state())
            .with_catalog_list(Arc::new(MemoryCatalogProviderList::new()))
            .with_runtime_env(runtime)
            .build();
        let cx = Self {
            id,
            user: user.to_string(),
            source,
            started_at: chrono::Utc::now(),
            started: Instant::now(),
            cancel: CancellationToken::new(),
            handles,
            ctx: SessionContext::new_with_state(state),
            snapshot: parking_lot::RwLock::new(None),
            memory,
        };
        cx.refresh_catalog().await?;
        Ok(cx)
    }

    pub fn id(&self) -> StatementId {
        self.id
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn source(&self) -> Source {
        self.source
    }

    pub fn started_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.started_at
    }

    /// Time since the statement began.
    pub fn elapsed(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// When work starting now must have ended: the server's
    /// `--statement-timeout-secs` from now, or the session's
    /// `seglake.statement_timeout` when shorter.
    pub(crate) fn deadline(&self) -> tokio::time::Instant {
        let session = crate::config::SeglakeOptions::of(self.ctx.state().config().options())
            .statement_timeout;
        tokio::time::Instant::now()
            + crate::workload::effective_timeout(self.handles.statement_timeout, session)
    }

    /// The statement's use of the server's memory pool (on a coordinator:
    /// its own share, not its workers').
    pub(crate) fn memory(&self) -> &Arc<StatementMemory> {
        &self.memory
    }

    /// Cancelled when the statement must stop.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }

    pub(crate) fn storage(&self) -> &Arc<Storage> {
        &self.handles.storage
    }

    /// The workers of a coordinator (`None` on a single node).
    pub(crate) fn cluster(&self) -> Option<&Cluster> {
        self.handles.cluster.as_ref()
    }

    /// Serialises segment refreshes in this process.
    pub(crate) fn refresh_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.handles.refresh_lock
    }

    /// The statement's DataFusion context (the session's settings, this
    /// statement's catalog snapshot).
    pub(crate) fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Installs the newest catalog version in this statement's context
    /// (a command that committed a catalog change reads its own writes).
    pub(crate) async fn refresh_catalog(&self) -> Result<Arc<Snapshot>> {
        let snapshot = self.handles.storage.catalog().await?;
        let parquet = self.ctx.state().table_options().parquet.clone();
        // Listings show what the user may read; a name that is not shown
        // still resolves, so that the check refuses it by its privilege.
        let viewer = self.principal_in(&snapshot).filter(|p| !p.admin).map(|p| {
            let mut grantees = p.roles.clone();
            grantees.insert(p.name.clone());
            crate::catalog::Viewer {
                grantees: Arc::new(grantees),
                visible: Arc::new(move |schema: &str, table: &str| {
                    super::privileges::may_list(&p, schema, table)
                }),
            }
        });
        self.ctx.register_catalog(
            DEFAULT_CATALOG,
            Arc::new(SnapshotCatalog::new(
                Arc::clone(&snapshot),
                parquet,
                Arc::clone(&self.handles.storage),
                self.handles.cluster.clone(),
                viewer,
            )),
        );
        *self.snapshot.write() = Some(Arc::clone(&snapshot));
        Ok(snapshot)
    }

    /// The rights of the statement's user in `snapshot` (`None`: no access
    /// control). The scheduler refreshes segments as an administrator;
    /// the reads of a segment's definition are checked against its
    /// author's rights (`privileges::authorize`).
    pub(crate) fn principal_in(&self, snapshot: &Snapshot) -> Option<Principal> {
        let administrators = self.handles.administrators.as_ref()?;
        if self.source == Source::Scheduler {
            return Some(Principal::admin(&self.user));
        }
        Some(
            snapshot
                .state
                .security
                .principal(&self.user, administrators.contains(&self.user)),
        )
    }

    /// The server's own users (`--user`), administrators without a grant.
    pub(crate) fn administrators(&self) -> Vec<String> {
        self.handles
            .administrators
            .as_ref()
            .map(|a| a.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The rights of `user` (not the statement's) in the statement's
    /// snapshot: a segment author's.
    pub(crate) fn principal_of(&self, user: &str) -> Option<Principal> {
        let administrators = self.handles.administrators.as_ref()?;
        Some(
            self.snapshot()
                .state
                .security
                .principal(user, administrators.contains(user)),
        )
    }

    /// The rights of the statement's user (`None`: no access control).
    pub(crate) fn principal(&self) -> Option<Principal> {
        self.principal_in(&self.snapshot())
    }

    /// The catalog version the statement plans against.
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(
            self.snapshot
                .read()
                .as_ref()
                .expect("begin installs a snapshot"),
        )
    }
}
