//! Users, roles and grants (`crate::sql::security`): one catalog commit
//! each, so every server sharing the warehouse sees them at its next
//! statement or login.

use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::physical_plan::memory::MemoryStream;
use seglake_catalog::security::{self as model, Grant};

use crate::pipeline::{Outcome, StatementContext};
use crate::sql::security::{Password, SecurityStatement};
use crate::{EngineError, Result};

/// The rows a statement answers (`CREATE INGEST KEY`: the key, once), or
/// `None` for a command.
pub(crate) fn result_schema(statement: &SecurityStatement) -> Option<SchemaRef> {
    match statement {
        SecurityStatement::CreateIngestKey { .. } => Some(ingest_key_schema()),
        _ => None,
    }
}

fn ingest_key_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("table", DataType::Utf8, false),
        Field::new("key", DataType::Utf8, false),
    ]))
}

/// An argon2id hash of the password, made on the blocking pool (tens of
/// milliseconds of CPU and 19 MiB by design).
async fn hash(password: Password) -> Result<String> {
    let Password::Literal(password) = password else {
        return Err(EngineError::InvalidArgument(
            "no value bound for the password parameter".into(),
        ));
    };
    if password.is_empty() {
        return Err(EngineError::InvalidArgument(
            "a password may not be empty".into(),
        ));
    }
    tokio::task::spawn_blocking(move || model::hash_password(&password))
        .await
        .map_err(|e| {
            EngineError::DataFusion(datafusion::error::DataFusionError::External(Box::new(e)))
        })?
        .map_err(Into::into)
}

impl StatementContext {
    /// A grant names a table or schema that exists (segments and system
    /// tables included); a revoke may name one that is gone.
    fn check_securable(&self, on: &model::Securable) -> Result<()> {
        let catalog = self.context().catalog(seglake_catalog::DEFAULT_CATALOG);
        let schema = |name: &str| catalog.as_ref().and_then(|c| c.schema(name));
        match on {
            model::Securable::Table { schema: s, table } => {
                if schema(s).is_some_and(|p| p.table_exist(table)) {
                    Ok(())
                } else {
                    Err(EngineError::NotFound(format!(
                        "table '{s}.{table}' not found"
                    )))
                }
            }
            model::Securable::AllTablesIn { schema: s }
            | model::Securable::Schema { schema: s } => {
                if schema(s).is_some() {
                    Ok(())
                } else {
                    Err(EngineError::NotFound(format!("schema '{s}' not found")))
                }
            }
            model::Securable::Warehouse => Ok(()),
        }
    }

    pub(crate) async fn run_security(&self, statement: SecurityStatement) -> Result<Outcome> {
        let catalog = self.storage().catalog_store();
        let by = self.user().to_string();
        let now = chrono::Utc::now();
        let administrators = self.administrators();
        // The server's own users are not in the catalog: their names are
        // taken.
        let reserved = |name: &str| administrators.iter().any(|a| a == name);
        match statement {
            SecurityStatement::CreateUser {
                name,
                password,
                if_not_exists,
            } => {
                let hash = hash(password).await?;
                catalog
                    .update(|st| {
                        st.security.create_user(
                            &name,
                            hash.clone(),
                            if_not_exists,
                            &reserved,
                            &by,
                            now,
                        )
                    })
                    .await?;
            }
            SecurityStatement::AlterUser { name, password } => {
                if reserved(&name) {
                    return Err(EngineError::InvalidArgument(format!(
                        "'{name}' is one of the server's own users (--user): its password is \
                         set where the server is started"
                    )));
                }
                let hash = hash(password).await?;
                catalog
                    .update(|st| st.security.set_password(&name, hash.clone()))
                    .await?;
            }
            SecurityStatement::DropUser { name, if_exists } => {
                if reserved(&name) {
                    return Err(EngineError::InvalidArgument(format!(
                        "'{name}' is one of the server's own users (--user): remove it from \
                         the server's configuration"
                    )));
                }
                catalog
                    .update(|st| st.security.drop_user(&name, if_exists))
                    .await?;
            }
            SecurityStatement::CreateRole {
                name,
                if_not_exists,
            } => {
                catalog
                    .update(|st| {
                        st.security
                            .create_role(&name, if_not_exists, &reserved, &by, now)
                    })
                    .await?;
            }
            SecurityStatement::DropRole { name, if_exists } => {
                catalog
                    .update(|st| st.security.drop_role(&name, if_exists))
                    .await?;
            }
            SecurityStatement::Membership {
                roles,
                users,
                revoke,
            } => {
                catalog
                    .update(|st| {
                        for user in &users {
                            for role in &roles {
                                if revoke {
                                    st.security.revoke_role(role, user)?;
                                } else {
                                    st.security.grant_role(role, user)?;
                                }
                            }
                        }
                        Ok(())
                    })
                    .await?;
            }
            SecurityStatement::CreateIngestKey {
                name,
                schema,
                table,
                origins,
            } => {
                self.check_securable(&model::Securable::Table {
                    schema: schema.clone(),
                    table: table.clone(),
                })?;
                let key = model::new_ingest_key();
                let entry = model::IngestKey {
                    schema: schema.clone(),
                    table: table.clone(),
                    origins,
                    key_sha256: model::ingest_key_digest(&key),
                    created_at: now,
                    created_by: by.clone(),
                    last_used_at: None,
                };
                catalog
                    .update(|st| st.security.create_ingest_key(&name, entry.clone()))
                    .await?;
                let schema_ref = ingest_key_schema();
                let batch = RecordBatch::try_new(
                    Arc::clone(&schema_ref),
                    vec![
                        Arc::new(StringArray::from(vec![name])),
                        Arc::new(StringArray::from(vec![format!("{schema}.{table}")])),
                        Arc::new(StringArray::from(vec![key])),
                    ],
                )?;
                let stream = MemoryStream::try_new(vec![batch], Arc::clone(&schema_ref), None)?;
                return Ok(Outcome::Rows {
                    schema: schema_ref,
                    stream: Box::pin(stream),
                });
            }
            SecurityStatement::DropIngestKey { name, if_exists } => {
                catalog
                    .update(|st| st.security.drop_ingest_key(&name, if_exists))
                    .await?;
            }
            SecurityStatement::Privileges {
                privileges,
                on,
                grantees,
                revoke,
            } => {
                if !revoke {
                    self.check_securable(&on)?;
                }
                catalog
                    .update(|st| {
                        for grantee in &grantees {
                            for privilege in &privileges {
                                let grant = Grant {
                                    grantee: grantee.clone(),
                                    privilege: *privilege,
                                    on: on.clone(),
                                };
                                if revoke {
                                    st.security.revoke(&grant)?;
                                } else {
                                    st.security.grant(grant)?;
                                }
                            }
                        }
                        Ok(())
                    })
                    .await?;
            }
        }
        Ok(Outcome::Done {
            rows_affected: None,
        })
    }
}
