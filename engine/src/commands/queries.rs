//! `KILL QUERY`: stops a statement of this server (`system.queries`).

use crate::pipeline::StatementContext;
use crate::pipeline::privileges::RULE;
use crate::workload::KillError;
use crate::{EngineError, Result};

impl StatementContext {
    /// Stops the statement `id`: the user's own, or any for an
    /// administrator. Its client gets CANCELLED.
    pub(crate) fn kill_query(&self, id: &str) -> Result<u64> {
        let admin = self.principal().is_none_or(|p| p.admin);
        match self.storage().queries.kill(id.trim(), self.user(), admin) {
            Ok(()) => Ok(1),
            Err(KillError::NotFound) => Err(EngineError::NotFound(format!(
                "no statement '{id}' is in progress on this server (system.queries lists them)"
            ))),
            Err(KillError::NotYours) => Err(EngineError::denied(
                RULE,
                format!("statement '{id}' is another user's: only administrators may kill it"),
            )),
        }
    }
}
