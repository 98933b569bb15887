//! `system.users`: the users made with `CREATE USER` and their roles
//! (never a password hash). The server's own `--user` administrators are
//! not in the catalog and not listed. Administrators only.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;

use super::{SystemContext, SystemTable, strings, times, utc_ms};

#[derive(Debug)]
pub(super) struct Users;

#[async_trait]
impl SystemTable for Users {
    fn name(&self) -> &'static str {
        "users"
    }

    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("roles", DataType::Utf8, false),
            Field::new("created_at", utc_ms(), false),
            Field::new("created_by", DataType::Utf8, false),
        ]))
    }

    async fn scan(&self, ctx: &SystemContext) -> crate::Result<RecordBatch> {
        let users: Vec<_> = ctx.snapshot.state.security.users.iter().collect();
        let roles: Vec<String> = users
            .iter()
            .map(|(_, u)| u.roles.iter().cloned().collect::<Vec<_>>().join(", "))
            .collect();
        let columns: Vec<ArrayRef> = vec![
            strings(users.iter().map(|(n, _)| Some(n.as_str()))),
            strings(roles.iter().map(|r| Some(r.as_str()))),
            times(
                users
                    .iter()
                    .map(|(_, u)| Some(u.created_at.timestamp_millis())),
            ),
            strings(users.iter().map(|(_, u)| Some(u.created_by.as_str()))),
        ];
        Ok(RecordBatch::try_new(self.schema(), columns)?)
    }
}
