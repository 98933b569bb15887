//! Tombstones of `FORGET PROFILE`: the warehouse's erasure key and the
//! keyed hashes of the erased ids, as the filter every write applies
//! ([`ErasedProfiles`], see `udfs/src/erased_profiles.rs`).

use seglake_catalog::{CatalogState, ErasureReceipt, Snapshot};
use seglake_udfs::erased_profiles::{ErasedProfiles, ErasureHash, ErasureKey};
use tracing::warn;

use super::Storage;
use crate::{EngineError, Result};

/// 64 hex digits.
pub(crate) fn to_hex(hash: &ErasureHash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Option<ErasureHash> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Replaces the clear ids of receipts written before keyed hashes by
/// their hash; whether anything changed.
pub(crate) fn hash_legacy_receipts(state: &mut CatalogState, key: &ErasureKey) -> bool {
    let mut changed = false;
    for e in &mut state.erasures {
        if let Some(id) = e.profile_id.take() {
            e.profile_hash = to_hex(&key.hash(&id));
            changed = true;
        }
    }
    changed
}

/// The receipt of `hash`, if any.
pub(crate) fn receipt_mut<'a>(
    state: &'a mut CatalogState,
    hash: &str,
) -> Option<&'a mut ErasureReceipt> {
    state.erasures.iter_mut().find(|e| e.profile_hash == hash)
}

impl Storage {
    /// The warehouse's erasure key, created by the first caller that
    /// passes `create` (see `seglake_catalog::keys`).
    pub(crate) async fn erasure_key(&self, create: bool) -> Result<Option<ErasureKey>> {
        if let Some(k) = self.erasure_key.get() {
            return Ok(Some(k.clone()));
        }
        match seglake_catalog::keys::erasure_key(self.warehouse(), create).await? {
            Some(bytes) => Ok(Some(
                self.erasure_key
                    .get_or_init(|| async { ErasureKey::new(bytes) })
                    .await
                    .clone(),
            )),
            None => Ok(None),
        }
    }

    /// The tombstones of `snapshot`. Receipts that still hold a clear id
    /// (written before keyed hashes) are hashed here and rewritten in the
    /// catalog.
    pub(crate) async fn erased_profiles(&self, snapshot: &Snapshot) -> Result<ErasedProfiles> {
        let erasures = &snapshot.state.erasures;
        if erasures.is_empty() {
            return Ok(ErasedProfiles::new(ErasureKey::new([0; 32]), []));
        }
        let key = self.erasure_key(true).await?.ok_or_else(|| {
            EngineError::Internal("the warehouse has tombstones but no erasure key".into())
        })?;
        let mut hashes = Vec::with_capacity(erasures.len());
        let mut legacy = false;
        for e in erasures {
            match &e.profile_id {
                Some(id) => {
                    legacy = true;
                    hashes.push(key.hash(id));
                }
                None => hashes.push(from_hex(&e.profile_hash).ok_or_else(|| {
                    EngineError::Internal(format!(
                        "malformed tombstone in the catalog: '{}'",
                        e.profile_hash
                    ))
                })?),
            }
        }
        if legacy {
            let update = self
                .catalog_store()
                .update(|st| Ok(hash_legacy_receipts(st, &key)))
                .await;
            if let Err(e) = update {
                warn!(error = %e, "could not replace clear ids of old erasure receipts by their hash");
            }
        }
        Ok(ErasedProfiles::new(key, hashes))
    }

    /// The tombstones of the newest catalog.
    pub(crate) async fn current_erasures(&self) -> Result<ErasedProfiles> {
        let snapshot = self.catalog().await?;
        self.erased_profiles(&snapshot).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let key = ErasureKey::new([1; 32]);
        let h = key.hash("p1");
        assert_eq!(from_hex(&to_hex(&h)), Some(h));
        assert_eq!(from_hex("zz"), None);
    }
}
