//! Segments: audiences defined as SQL, refreshed into snapshots, with their
//! history, changes, overlaps and activation to channels.
//!
//! - Definitions live in the catalog ([`seglake_catalog::SegmentEntry`]),
//!   one version per `CREATE [OR REPLACE] SEGMENT`.
//! - `segments.<name>` evaluates a segment live (a view over its query).
//! - `REFRESH SEGMENT` writes managed Delta tables in the `segment_data`
//!   schema: `segment_data.<name>` (the membership snapshot, overwritten by
//!   each refresh: time travel gives the membership of a past refresh),
//!   `segment_data._changes` (entered/exited profiles per refresh),
//!   `segment_data._history` (one row per refresh) and
//!   `segment_data._activations` (one row per activation delivery).
//!   The system tables `segment_history`, `segment_changes`,
//!   `segment_overlap` and `activations` read them.
//!
//! See `docs/segments.md`.

mod activation;
mod explain;
mod refresh;

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use seglake_catalog::{
    Activation, DEFAULT_CATALOG, Destination, DestinationKind, FileFormat, RefreshSchedule,
    SEGMENTS_SCHEMA, SegmentVersion,
};
use tracing::{info, warn};

pub(crate) use crate::sql::segments::SegmentStatement;

use crate::egress::{EgressPolicy, Refusal, Vetted};
use crate::pipeline::StatementContext;
use crate::{EngineError, Outcome, Result};

/// The result schema of a segment statement that returns rows.
pub(crate) fn result_schema(statement: &SegmentStatement) -> Option<SchemaRef> {
    match statement {
        SegmentStatement::ExplainMembership { .. } => Some(explain::schema()),
        _ => None,
    }
}

/// The longest segment name, in bytes: its snapshot's directory name must
/// fit in a file name (255 bytes on common file systems).
const MAX_SEGMENT_NAME_BYTES: usize = 128;

impl StatementContext {
    pub(crate) async fn run_segment(&self, statement: SegmentStatement) -> Result<Outcome> {
        let done = |rows: Option<u64>| Outcome::Done {
            rows_affected: rows,
        };
        match statement {
            SegmentStatement::Create {
                name,
                or_replace,
                comment,
                sql,
            } => {
                self.create_segment(&name, or_replace, comment, sql).await?;
                Ok(done(None))
            }
            SegmentStatement::Drop { name, if_exists } => {
                self.drop_segment(&name, if_exists).await?;
                Ok(done(None))
            }
            SegmentStatement::Refresh { name } => {
                let reports = match name {
                    Some(name) => vec![self.refresh_segment(&name).await?],
                    None => self.refresh_all_segments().await?,
                };
                Ok(done(Some(reports.iter().map(|r| r.size).sum())))
            }
            SegmentStatement::SetSchedule { name, every } => {
                let schedule = every
                    .map(|text| {
                        crate::sql::segments::parse_interval(&text).map(|seconds| RefreshSchedule {
                            text: text.trim().to_string(),
                            seconds,
                        })
                    })
                    .transpose()?;
                self.storage()
                    .catalog_store()
                    .update(|st| {
                        st.segments
                            .get_mut(&name)
                            .ok_or_else(|| {
                                seglake_catalog::CatalogError::SegmentNotFound(name.clone())
                            })?
                            .refresh_every = schedule.clone();
                        Ok(())
                    })
                    .await?;
                Ok(done(None))
            }
            SegmentStatement::ExplainMembership {
                profile_id,
                segment,
            } => self.explain_membership(&profile_id, &segment).await,
            SegmentStatement::CreateDestination {
                name,
                or_replace,
                kind,
                options,
            } => {
                let kind = destination_kind(&kind, options)?;
                if let DestinationKind::Webhook { url, .. } = &kind {
                    // Checked again at every delivery: the answer of the
                    // name may change.
                    self.vet_webhook(url).await.map_err(|refusal| {
                        warn!(user = %self.user(), destination = %name, %refusal,
                            "webhook destination refused");
                        refusal.into_error()
                    })?;
                }
                let destination = Destination {
                    kind,
                    author: self.user().to_string(),
                    created_at: chrono::Utc::now(),
                };
                self.storage()
                    .catalog_store()
                    .update(|st| st.put_destination(&name, destination.clone(), or_replace))
                    .await?;
                Ok(done(None))
            }
            SegmentStatement::DropDestination { name, if_exists } => {
                self.storage()
                    .catalog_store()
                    .update(|st| st.drop_destination(&name, if_exists))
                    .await?;
                Ok(done(None))
            }
            SegmentStatement::Activate {
                segment,
                destination,
                columns,
                consent_column,
                profiles_table,
            } => {
                self.activate(
                    &segment,
                    &destination,
                    columns,
                    consent_column,
                    profiles_table,
                )
                .await?;
                Ok(done(None))
            }
            SegmentStatement::Deactivate {
                segment,
                destination,
            } => {
                self.storage()
                    .catalog_store()
                    .update(|st| {
                        let entry = st.segments.get_mut(&segment).ok_or_else(|| {
                            seglake_catalog::CatalogError::SegmentNotFound(segment.clone())
                        })?;
                        entry.activations.retain(|a| a.destination != destination);
                        Ok(())
                    })
                    .await?;
                Ok(done(None))
            }
        }
    }

    /// The server's webhook egress policy (the strictest, no exceptions,
    /// for a session built without one).
    fn egress(&self) -> Arc<EgressPolicy> {
        self.context()
            .state_ref()
            .read()
            .config()
            .get_extension::<EgressPolicy>()
            .unwrap_or_default()
    }

    /// Resolves a webhook URL's host and checks every address against the
    /// egress policy.
    async fn vet_webhook(&self, url: &str) -> std::result::Result<Vetted, Refusal> {
        let parsed =
            crate::egress::parse_webhook_url(url).map_err(|e| Refusal::Policy(e.to_string()))?;
        self.egress().vet(&parsed).await
    }

    async fn create_segment(
        &self,
        name: &str,
        or_replace: bool,
        comment: Option<String>,
        sql: String,
    ) -> Result<()> {
        if name.starts_with('_') || name.contains('@') {
            return Err(EngineError::InvalidArgument(format!(
                "segment names may not start with '_' or contain '@' ('{name}')"
            )));
        }
        // The name is a directory of the snapshot table
        // (`tables/segment_data/<name>/`): a name that is not one directory
        // name, or longer than a file system allows, would be created here
        // and fail (or nest in another segment's directory) at every refresh.
        if name.contains(['/', '\\']) || name == "." || name == ".." {
            return Err(EngineError::InvalidArgument(format!(
                "segment names may not contain '/' or '\\' or be '.' or '..' ('{name}')"
            )));
        }
        if name.len() > MAX_SEGMENT_NAME_BYTES {
            return Err(EngineError::InvalidArgument(format!(
                "segment names are at most {MAX_SEGMENT_NAME_BYTES} bytes long ({} bytes given)",
                name.len()
            )));
        }
        self.refresh_catalog().await?;
        let state = self.context().state();
        let statement = crate::sql::parse_query(&sql, &state.config().options().sql_parser)?;
        let mut depends_on: Vec<String> = state
            .resolve_table_references(&statement)?
            .iter()
            .filter(|r| r.schema() == Some(SEGMENTS_SCHEMA))
            .filter(|r| r.catalog().is_none_or(|c| c == DEFAULT_CATALOG))
            .map(|r| r.table().to_string())
            .collect();
        depends_on.sort();
        depends_on.dedup();
        if depends_on.iter().any(|d| d == name) {
            return Err(
                seglake_catalog::CatalogError::SegmentCycle(format!("{name} -> {name}")).into(),
            );
        }
        let plan = state.statement_to_plan(statement).await.map_err(|e| {
            EngineError::InvalidArgument(format!("segment '{name}': its query does not plan: {e}"))
        })?;
        if !matches!(
            crate::pipeline::classify(&plan),
            crate::pipeline::StatementKind::Query
        ) {
            return Err(EngineError::InvalidArgument(format!(
                "segment '{name}': the definition must be a query (SELECT ...)"
            )));
        }
        let columns = plan.schema().as_arrow();
        if columns.field_with_name("profile_id").is_err() {
            let names: Vec<_> = columns.fields().iter().map(|f| f.name().as_str()).collect();
            return Err(EngineError::InvalidArgument(format!(
                "segment '{name}': the query must return a profile_id column (it returns: {})",
                names.join(", ")
            )));
        }
        let definition = SegmentVersion {
            version: 0,
            sql,
            comment,
            author: self.user().to_string(),
            created_at: chrono::Utc::now(),
            depends_on,
        };
        let (_, version) = self
            .storage()
            .catalog_store()
            .update(|st| st.define_segment(name, definition.clone(), or_replace))
            .await?;
        info!(user = %self.user(), segment = name, version, "segment defined");
        Ok(())
    }

    async fn drop_segment(&self, name: &str, if_exists: bool) -> Result<()> {
        let (_, dropped) = self
            .storage()
            .catalog_store()
            .update(|st| {
                let dropped = st.drop_segment(name, if_exists)?;
                // The membership snapshot goes with the segment; its history
                // and changes stay (they are the audit trail).
                let snapshot = if dropped.is_some() {
                    st.drop_table(seglake_catalog::SEGMENT_DATA_SCHEMA, name, true)?
                } else {
                    None
                };
                Ok((dropped, snapshot))
            })
            .await?;
        if let (Some(_), Some(snapshot)) = dropped {
            self.delete_managed_data(&snapshot).await;
        }
        Ok(())
    }

    async fn activate(
        &self,
        segment: &str,
        destination: &str,
        columns: Vec<(String, String)>,
        consent_column: Option<String>,
        profiles_table: Option<String>,
    ) -> Result<()> {
        let snapshot = self.refresh_catalog().await?;
        snapshot.state.segment(segment)?;
        snapshot.state.destination(destination)?;
        let columns = if columns.is_empty() {
            vec![("profile_id".to_string(), "\"profile_id\"".to_string())]
        } else {
            columns
        };
        let activation = Activation {
            destination: destination.to_string(),
            columns,
            consent_column,
            profiles_table: profiles_table.unwrap_or_else(|| "profiles".to_string()),
            author: self.user().to_string(),
            created_at: chrono::Utc::now(),
        };
        // Plan the delivery query once now, so that a wrong column, a
        // missing table or a non-boolean consent column fails here and not
        // at the next refresh.
        self.check_activation(&activation).await?;
        self.storage()
            .catalog_store()
            .update(|st| {
                let entry = st.segments.get_mut(segment).ok_or_else(|| {
                    seglake_catalog::CatalogError::SegmentNotFound(segment.to_string())
                })?;
                entry.activations.retain(|a| a.destination != destination);
                entry.activations.push(activation.clone());
                Ok(())
            })
            .await?;
        info!(user = %self.user(), segment, destination, "segment activated");
        Ok(())
    }
}

/// A destination from `TYPE ... OPTIONS (...)`, every option checked.
fn destination_kind(kind: &str, options: Vec<(String, String)>) -> Result<DestinationKind> {
    let mut options: std::collections::BTreeMap<String, String> = options.into_iter().collect();
    let mut take = |k: &str| options.remove(k);
    let kind = match kind {
        "file" => {
            let path = take("path").ok_or_else(|| {
                EngineError::InvalidArgument("a file destination needs OPTIONS (path '...')".into())
            })?;
            let format = match take("format").as_deref().unwrap_or("csv") {
                "csv" => FileFormat::Csv,
                "parquet" => FileFormat::Parquet,
                other => {
                    return Err(EngineError::InvalidArgument(format!(
                        "format '{other}' is not supported: use 'csv' or 'parquet'"
                    )));
                }
            };
            DestinationKind::File { path, format }
        }
        "webhook" => {
            let url = take("url").ok_or_else(|| {
                EngineError::InvalidArgument(
                    "a webhook destination needs OPTIONS (url 'https://...')".into(),
                )
            })?;
            crate::egress::parse_webhook_url(&url)?;
            let batch_size = match take("batch_size") {
                None => 500,
                Some(s) => s.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    EngineError::InvalidArgument(format!(
                        "batch_size must be a positive integer, got '{s}'"
                    ))
                })?,
            };
            DestinationKind::Webhook {
                url,
                batch_size,
                secret: take("secret"),
            }
        }
        other => {
            return Err(EngineError::InvalidArgument(format!(
                "destination type '{other}' is not supported: use file or webhook"
            )));
        }
    };
    if let Some(k) = options.keys().next() {
        return Err(EngineError::InvalidArgument(format!(
            "unknown destination option '{k}'"
        )));
    }
    Ok(kind)
}

/// Arrow schema of a membership snapshot (`segment_data.<name>`).
pub(crate) fn members_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "profile_id",
        DataType::Utf8,
        true,
    )]))
}
