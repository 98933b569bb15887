//! The warehouse's erasure key, `_seglake/keys/erasure`: 32 random bytes
//! (64 hex digits) that key the hashes `FORGET PROFILE` keeps instead of
//! the erased ids (see [`crate::ErasureReceipt`]).
//!
//! The key is its own object, next to the catalog and never inside it: a
//! reader of the catalog documents (a backup, a support bundle) sees only
//! keyed hashes and cannot test candidate ids against them. The first
//! server that needs the key creates it with a conditional put
//! ([`PutMode::Create`]); a server that loses the race reads the winner's,
//! so every server of a warehouse uses the same key. Losing the key makes
//! the tombstones unreadable: back it up with the warehouse.

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::{CatalogError, Result, Warehouse};

/// Where the key lives, under the warehouse root.
pub fn erasure_key_path(warehouse: &Warehouse) -> Path {
    warehouse.path(&["_seglake", "keys", "erasure"])
}

/// The erasure key of `warehouse`; when it has none yet, a new one if
/// `create`, else `None`.
pub async fn erasure_key(warehouse: &Warehouse, create: bool) -> Result<Option<[u8; 32]>> {
    let path = erasure_key_path(warehouse);
    let store = warehouse.store();
    match store.get(&path).await {
        Ok(found) => return parse(&path, &found.bytes().await?).map(Some),
        Err(object_store::Error::NotFound { .. }) if create => {}
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let mut key = [0u8; 32];
    {
        use rand::RngCore;
        rand::rng().fill_bytes(&mut key);
    }
    let text: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let opts = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    match store
        .put_opts(&path, PutPayload::from(Bytes::from(text)), opts)
        .await
    {
        Ok(_) => Ok(Some(key)),
        // Another server created it first: use theirs.
        Err(object_store::Error::AlreadyExists { .. }) => {
            let found = store.get(&path).await?.bytes().await?;
            parse(&path, &found).map(Some)
        }
        Err(e) => Err(e.into()),
    }
}

fn parse(path: &Path, bytes: &[u8]) -> Result<[u8; 32]> {
    let bad = || CatalogError::CorruptKey(path.to_string());
    let text = std::str::from_utf8(bytes).map_err(|_| bad())?.trim();
    if text.len() != 64 {
        return Err(bad());
    }
    let mut key = [0u8; 32];
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::S3Options;

    #[tokio::test]
    async fn one_key_per_warehouse_created_on_demand() {
        let dir = tempfile::tempdir().unwrap();
        let w = Warehouse::open(dir.path().to_str().unwrap(), &S3Options::default()).unwrap();
        assert_eq!(erasure_key(&w, false).await.unwrap(), None);
        let (a, b) = tokio::join!(erasure_key(&w, true), erasure_key(&w, true));
        let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
        assert_eq!(a, b, "racing servers agree on one key");
        assert_eq!(erasure_key(&w, false).await.unwrap(), Some(a));
        let on_disk = std::fs::read_to_string(dir.path().join("_seglake/keys/erasure")).unwrap();
        assert_eq!(on_disk.len(), 64);
        std::fs::write(dir.path().join("_seglake/keys/erasure"), "zz").unwrap();
        assert!(matches!(
            erasure_key(&w, false).await,
            Err(CatalogError::CorruptKey(_))
        ));
    }
}
