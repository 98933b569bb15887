//! `system.grants`: every grant of a privilege to a user or a role, and
//! every role held by a user (privilege `ROLE`, object the role).
//! Administrators see every row, other users their own and their roles'
//! (`SHOW GRANTS [FOR name]` reads it).

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use seglake_catalog::security::Securable;

use super::{SystemContext, SystemTable, strings};

#[derive(Debug)]
pub(super) struct Grants;

/// `(object_type, object)` of a securable.
fn object(on: &Securable) -> (&'static str, String) {
    match on {
        Securable::Table { schema, table } => ("table", format!("{schema}.{table}")),
        Securable::AllTablesIn { schema } => ("all tables in schema", schema.clone()),
        Securable::Schema { schema } => ("schema", schema.clone()),
        Securable::Warehouse => ("warehouse", String::new()),
    }
}

#[async_trait]
impl SystemTable for Grants {
    fn name(&self) -> &'static str {
        "grants"
    }

    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("grantee", DataType::Utf8, false),
            Field::new("grantee_type", DataType::Utf8, false),
            Field::new("privilege", DataType::Utf8, false),
            Field::new("object_type", DataType::Utf8, false),
            Field::new("object", DataType::Utf8, false),
        ]))
    }

    async fn scan(&self, ctx: &SystemContext) -> crate::Result<RecordBatch> {
        let security = &ctx.snapshot.state.security;
        let kind = |name: &str| {
            if security.users.contains_key(name) {
                "user"
            } else {
                "role"
            }
        };
        let mut rows: Vec<(String, &'static str, String, &'static str, String)> = security
            .grants
            .iter()
            .map(|g| {
                let (object_type, object) = object(&g.on);
                (
                    g.grantee.clone(),
                    kind(&g.grantee),
                    g.privilege.name().to_string(),
                    object_type,
                    object,
                )
            })
            .collect();
        if let Some(grantees) = &ctx.grantees {
            rows.retain(|r| grantees.contains(&r.0));
        }
        for (name, user) in &security.users {
            if ctx.grantees.as_ref().is_some_and(|g| !g.contains(name)) {
                continue;
            }
            for role in &user.roles {
                rows.push((
                    name.clone(),
                    "user",
                    "ROLE".to_string(),
                    "role",
                    role.clone(),
                ));
            }
        }
        let columns: Vec<ArrayRef> = vec![
            strings(rows.iter().map(|r| Some(r.0.as_str()))),
            strings(rows.iter().map(|r| Some(r.1))),
            strings(rows.iter().map(|r| Some(r.2.as_str()))),
            strings(rows.iter().map(|r| Some(r.3))),
            strings(rows.iter().map(|r| Some(r.4.as_str()))),
        ];
        Ok(RecordBatch::try_new(self.schema(), columns)?)
    }
}
