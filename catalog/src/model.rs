//! The persisted catalog document.

use std::collections::BTreeMap;

use arrow_schema::{DataType, Schema};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{CatalogError, Result};

/// The one catalog name Seglake serves.
pub const DEFAULT_CATALOG: &str = "seglake";
/// The schema used when a statement names none.
pub const DEFAULT_SCHEMA: &str = "public";
/// Built-in tables (never stored in the catalog document).
pub const SYSTEM_SCHEMA: &str = "system";

/// Everything the catalog records. Maps are ordered so the JSON document is
/// deterministic. Unknown fields are kept out of the way with `#[serde(default)]`
/// so older servers read newer documents that only add fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct CatalogState {
    #[serde(default)]
    pub schemas: BTreeMap<String, SchemaEntry>,
    /// Receipts of `FORGET PROFILE`, oldest first. A profile id listed here
    /// is a tombstone: managed-table writes drop its rows.
    #[serde(default)]
    pub erasures: Vec<ErasureReceipt>,
}

/// What `FORGET PROFILE` erased, kept as proof (`system.erasures`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErasureReceipt {
    pub profile_id: String,
    pub erased_at: DateTime<Utc>,
    pub user: String,
    pub tables: Vec<ErasedTable>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErasedTable {
    pub schema: String,
    pub table: String,
    pub rows_removed: u64,
    pub files_rewritten: u64,
    /// Files physically deleted by the vacuum that followed.
    pub files_deleted: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaEntry {
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub tables: BTreeMap<String, TableEntry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TableFormat {
    /// A directory of Parquet files (optionally hive-partitioned).
    Parquet,
    /// A Delta Lake table (Parquet files and a `_delta_log`): every table
    /// Seglake writes.
    Delta,
}

/// Who owns the data files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TableKind {
    /// Registered with `CREATE EXTERNAL TABLE`: Seglake reads the files and
    /// never deletes them.
    External,
    /// Written by Seglake (ingest) inside the warehouse: `DROP TABLE` deletes
    /// the files.
    Managed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionColumn {
    pub name: String,
    pub data_type: DataType,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableEntry {
    /// Absolute URL of the table's directory, ending with `/`
    /// (`file:///...`, `s3://bucket/...`).
    pub location: String,
    pub format: TableFormat,
    pub kind: TableKind,
    /// Schema of the data files (without the partition columns).
    pub file_schema: Schema,
    /// Hive-style partition columns (`event_date=2026-01-01/`), appended
    /// after the file columns.
    #[serde(default)]
    pub partition_columns: Vec<PartitionColumn>,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub comment: Option<String>,
}

impl CatalogState {
    /// Whether `profile_id` was erased (a tombstone stands).
    pub fn is_forgotten(&self, profile_id: &str) -> bool {
        self.erasures.iter().any(|e| e.profile_id == profile_id)
    }

    /// Every erased profile id.
    pub fn forgotten(&self) -> std::collections::BTreeSet<&str> {
        self.erasures
            .iter()
            .map(|e| e.profile_id.as_str())
            .collect()
    }

    /// A new catalog: the `public` schema only.
    pub fn initial(now: DateTime<Utc>) -> Self {
        let mut state = Self::default();
        state.schemas.insert(
            DEFAULT_SCHEMA.to_string(),
            SchemaEntry {
                created_at: now,
                tables: BTreeMap::new(),
            },
        );
        state
    }

    pub fn schema(&self, name: &str) -> Result<&SchemaEntry> {
        self.schemas
            .get(name)
            .ok_or_else(|| CatalogError::SchemaNotFound(name.to_string()))
    }

    pub fn table(&self, schema: &str, table: &str) -> Result<&TableEntry> {
        self.schema(schema)?
            .tables
            .get(table)
            .ok_or_else(|| CatalogError::TableNotFound {
                schema: schema.to_string(),
                table: table.to_string(),
            })
    }

    pub fn create_schema(
        &mut self,
        name: &str,
        if_not_exists: bool,
        now: DateTime<Utc>,
    ) -> Result<()> {
        if name == SYSTEM_SCHEMA || name == "information_schema" {
            return Err(CatalogError::ReservedSchema(name.to_string()));
        }
        if self.schemas.contains_key(name) {
            return if if_not_exists {
                Ok(())
            } else {
                Err(CatalogError::SchemaExists(name.to_string()))
            };
        }
        self.schemas.insert(
            name.to_string(),
            SchemaEntry {
                created_at: now,
                tables: BTreeMap::new(),
            },
        );
        Ok(())
    }

    /// Removes a schema; returns the tables it held (so that the caller can
    /// delete managed data after the catalog commit).
    pub fn drop_schema(
        &mut self,
        name: &str,
        if_exists: bool,
        cascade: bool,
    ) -> Result<Vec<TableEntry>> {
        match self.schemas.get(name) {
            None if if_exists => Ok(vec![]),
            None => Err(CatalogError::SchemaNotFound(name.to_string())),
            Some(s) if !s.tables.is_empty() && !cascade => {
                Err(CatalogError::SchemaNotEmpty(name.to_string()))
            }
            Some(_) => Ok(self
                .schemas
                .remove(name)
                .map(|s| s.tables.into_values().collect())
                .unwrap_or_default()),
        }
    }

    /// Adds a table. With `replace`, an existing table is replaced and
    /// returned; otherwise an existing table is an error unless
    /// `if_not_exists` (then nothing changes).
    pub fn put_table(
        &mut self,
        schema: &str,
        table: &str,
        entry: TableEntry,
        if_not_exists: bool,
        replace: bool,
    ) -> Result<Option<TableEntry>> {
        if schema == SYSTEM_SCHEMA {
            return Err(CatalogError::ReservedSchema(schema.to_string()));
        }
        let s = self
            .schemas
            .get_mut(schema)
            .ok_or_else(|| CatalogError::SchemaNotFound(schema.to_string()))?;
        if s.tables.contains_key(table) && !replace {
            return if if_not_exists {
                Ok(None)
            } else {
                Err(CatalogError::TableExists {
                    schema: schema.to_string(),
                    table: table.to_string(),
                })
            };
        }
        Ok(s.tables.insert(table.to_string(), entry))
    }

    pub fn drop_table(
        &mut self,
        schema: &str,
        table: &str,
        if_exists: bool,
    ) -> Result<Option<TableEntry>> {
        let removed = self
            .schemas
            .get_mut(schema)
            .and_then(|s| s.tables.remove(table));
        match removed {
            None if !if_exists => Err(CatalogError::TableNotFound {
                schema: schema.to_string(),
                table: table.to_string(),
            }),
            r => Ok(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::Field;

    fn entry() -> TableEntry {
        TableEntry {
            location: "file:///tmp/t/".into(),
            format: TableFormat::Parquet,
            kind: TableKind::External,
            file_schema: Schema::new(vec![Field::new("a", DataType::Int64, true)]),
            partition_columns: vec![PartitionColumn {
                name: "d".into(),
                data_type: DataType::Utf8,
            }],
            created_at: Utc::now(),
            comment: None,
        }
    }

    #[test]
    fn json_round_trip() {
        let mut s = CatalogState::initial(Utc::now());
        s.put_table("public", "t", entry(), false, false).unwrap();
        let json = serde_json::to_string(&s).unwrap();
        let back: CatalogState = serde_json::from_str(&json).unwrap();
        assert_eq!(s, back);
    }

    #[test]
    fn table_rules() {
        let now = Utc::now();
        let mut s = CatalogState::initial(now);
        s.put_table("public", "t", entry(), false, false).unwrap();
        assert!(matches!(
            s.put_table("public", "t", entry(), false, false),
            Err(CatalogError::TableExists { .. })
        ));
        assert!(
            s.put_table("public", "t", entry(), true, false)
                .unwrap()
                .is_none()
        );
        assert!(
            s.put_table("public", "t", entry(), false, true)
                .unwrap()
                .is_some()
        );
        assert!(matches!(
            s.put_table("nope", "t", entry(), false, false),
            Err(CatalogError::SchemaNotFound(_))
        ));
        assert!(matches!(
            s.put_table("system", "t", entry(), false, false),
            Err(CatalogError::ReservedSchema(_))
        ));
        assert!(matches!(
            s.drop_schema("public", false, false),
            Err(CatalogError::SchemaNotEmpty(_))
        ));
        assert!(s.drop_table("public", "t", false).unwrap().is_some());
        assert!(s.drop_table("public", "t", true).unwrap().is_none());
        assert!(matches!(
            s.drop_table("public", "t", false),
            Err(CatalogError::TableNotFound { .. })
        ));
        s.create_schema("crm", false, now).unwrap();
        assert!(matches!(
            s.create_schema("crm", false, now),
            Err(CatalogError::SchemaExists(_))
        ));
        s.create_schema("crm", true, now).unwrap();
        assert!(matches!(
            s.create_schema("system", true, now),
            Err(CatalogError::ReservedSchema(_))
        ));
        assert_eq!(s.drop_schema("crm", false, false).unwrap().len(), 0);
    }
}
