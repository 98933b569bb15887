//! When ingest keys were last used (`system.ingest_keys.last_used_at`).
//!
//! The collector notes every accepted request in memory; the catalog is
//! updated in the background (with the audit batches), at most once a
//! minute per key, so a busy web tag does not cost a catalog commit per
//! request. `system.ingest_keys` shows the newer of the catalog's time
//! and this server's pending one.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use seglake_catalog::security::ingest_key_digest;

use super::Storage;
use crate::Result;

/// How much newer a use must be than the recorded one to be written.
pub(crate) fn step() -> chrono::Duration {
    chrono::Duration::seconds(60)
}

/// Uses not written to the catalog yet, by key digest.
#[derive(Debug, Default)]
pub(crate) struct KeyUses(parking_lot::Mutex<HashMap<String, DateTime<Utc>>>);

impl KeyUses {
    pub(crate) fn note(&self, key: &str, at: DateTime<Utc>) {
        self.0.lock().insert(ingest_key_digest(key), at);
    }

    /// This server's newest use of the key with digest `digest`.
    pub(crate) fn pending(&self, digest: &str) -> Option<DateTime<Utc>> {
        self.0.lock().get(digest).copied()
    }
}

impl Storage {
    /// Writes the uses the catalog lacks (one commit for all keys, none
    /// when every recorded time is recent enough).
    pub(crate) async fn flush_key_uses(&self) -> Result<()> {
        let uses = self.key_uses.0.lock().clone();
        if uses.is_empty() {
            return Ok(());
        }
        let mut probe = self.catalog().await?.state.security.clone();
        if probe.record_key_uses(&uses, step()) {
            self.catalog_store()
                .update(|st| Ok(st.security.record_key_uses(&uses, step())))
                .await?;
        }
        // Written or recent enough in the catalog: keep only newer uses.
        let mut pending = self.key_uses.0.lock();
        pending.retain(|digest, at| uses.get(digest) != Some(at));
        Ok(())
    }
}
