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
    /// Segment definitions (`CREATE SEGMENT`), by name.
    #[serde(default)]
    pub segments: BTreeMap<String, SegmentEntry>,
    /// Activation destinations (`CREATE DESTINATION`), by name.
    #[serde(default)]
    pub destinations: BTreeMap<String, Destination>,
    /// Users, roles and grants (`CREATE USER`, `GRANT`, ...).
    #[serde(default)]
    pub security: crate::security::Security,
}

/// The schema whose managed tables hold segment snapshots, changes, refresh
/// history and activation runs (written by `REFRESH SEGMENT` only).
pub const SEGMENT_DATA_SCHEMA: &str = "segment_data";
/// The virtual schema where `segments.<name>` evaluates a segment live.
pub const SEGMENTS_SCHEMA: &str = "segments";

/// A segment: its definition history, schedule, last refresh and activations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentEntry {
    /// Every definition, oldest first; the last one is current.
    pub versions: Vec<SegmentVersion>,
    /// `ALTER SEGMENT ... SET REFRESH EVERY '15 minutes'`.
    #[serde(default)]
    pub refresh_every: Option<RefreshSchedule>,
    #[serde(default)]
    pub last_refresh: Option<LastRefresh>,
    #[serde(default)]
    pub activations: Vec<Activation>,
}

/// One definition of a segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentVersion {
    pub version: u32,
    /// The query, as written (returns `profile_id`).
    pub sql: String,
    #[serde(default)]
    pub comment: Option<String>,
    pub author: String,
    pub created_at: DateTime<Utc>,
    /// Segments this definition reads (`segments.<name>`).
    #[serde(default)]
    pub depends_on: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshSchedule {
    /// As written, e.g. `15 minutes`.
    pub text: String,
    pub seconds: u64,
}

/// The newest committed refresh of a segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastRefresh {
    pub refresh_id: String,
    pub at: DateTime<Utc>,
    pub size: u64,
    /// Delta version of the membership snapshot written by this refresh.
    pub snapshot_version: i64,
}

/// `ACTIVATE SEGMENT seg TO dest ...`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activation {
    pub destination: String,
    /// Output columns: name and SQL expression over the profile table.
    pub columns: Vec<(String, String)>,
    #[serde(default)]
    pub consent_column: Option<String>,
    /// Table the columns are read from (joined on `profile_id`).
    pub profiles_table: String,
    pub author: String,
    pub created_at: DateTime<Utc>,
}

/// Where activations send profiles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Destination {
    pub kind: DestinationKind,
    pub author: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum DestinationKind {
    /// One file per refresh and change kind under `path`.
    File { path: String, format: FileFormat },
    /// JSON batches POSTed to `url`, signed with HMAC-SHA256 of `secret`.
    Webhook {
        url: String,
        batch_size: usize,
        #[serde(default)]
        secret: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    Csv,
    Parquet,
}

impl SegmentEntry {
    /// The current definition.
    pub fn current(&self) -> &SegmentVersion {
        self.versions.last().expect("a segment has a definition")
    }
}

/// A tombstone and the receipt of `FORGET PROFILE` (`system.erasures`).
///
/// The erased id is never kept: `profile_hash` is its HMAC-SHA256 under the
/// warehouse's erasure key ([`crate::keys`]), which lets writes recognise
/// the id without anyone listing who asked to be forgotten. The tombstone
/// is written before any row is deleted, so writes drop the profile from
/// that moment; `pending` stays set until every table was erased (a
/// failed run is resumed by running `FORGET PROFILE` again).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErasureReceipt {
    /// HMAC-SHA256 of the erased profile id, 64 hex digits.
    #[serde(default)]
    pub profile_hash: String,
    /// Receipts written before keyed hashes kept the id in clear: the
    /// engine replaces it with `profile_hash` the first time it reads them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_id: Option<String>,
    /// When the tombstone was written.
    pub erased_at: DateTime<Utc>,
    /// When every table was erased (`None` while pending; receipts from
    /// before this field have neither).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
    /// Some table is not erased yet (a run failed or is in progress).
    #[serde(default)]
    pub pending: bool,
    /// Why the last run left tables not erased.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub user: String,
    /// What each run erased, per table (rows and files add up over runs).
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
    /// Whether `target` is among `from` or the segments they read,
    /// transitively.
    pub fn segment_reaches(&self, from: &[String], target: &str) -> bool {
        let mut stack: Vec<&str> = from.iter().map(String::as_str).collect();
        let mut seen = std::collections::BTreeSet::new();
        while let Some(s) = stack.pop() {
            if s == target {
                return true;
            }
            if !seen.insert(s) {
                continue;
            }
            if let Some(e) = self.segments.get(s) {
                stack.extend(e.current().depends_on.iter().map(String::as_str));
            }
        }
        false
    }

    /// Segment names ordered so that every segment comes after the
    /// segments it reads.
    pub fn segments_in_dependency_order(&self) -> Vec<String> {
        fn visit<'a>(
            st: &'a CatalogState,
            name: &'a str,
            done: &mut std::collections::BTreeSet<&'a str>,
            out: &mut Vec<String>,
        ) {
            if !done.insert(name) {
                return;
            }
            if let Some(e) = st.segments.get(name) {
                for d in &e.current().depends_on {
                    visit(st, d, done, out);
                }
                out.push(name.to_string());
            }
        }
        let mut done = std::collections::BTreeSet::new();
        let mut out = vec![];
        for name in self.segments.keys() {
            visit(self, name, &mut done, &mut out);
        }
        out
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
        if name == SYSTEM_SCHEMA || name == "information_schema" || name == SEGMENTS_SCHEMA {
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
        if schema == SYSTEM_SCHEMA || schema == SEGMENTS_SCHEMA {
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

    pub fn segment(&self, name: &str) -> Result<&SegmentEntry> {
        self.segments
            .get(name)
            .ok_or_else(|| CatalogError::SegmentNotFound(name.to_string()))
    }

    /// Adds a segment definition (a new version with `or_replace`). Every
    /// segment it reads must exist and must not read it back. Returns the
    /// new version number.
    pub fn define_segment(
        &mut self,
        name: &str,
        mut definition: SegmentVersion,
        or_replace: bool,
    ) -> Result<u32> {
        for d in &definition.depends_on {
            if d == name {
                return Err(CatalogError::SegmentCycle(format!("{name} -> {name}")));
            }
            self.segment(d)?;
        }
        if self.segment_reaches(&definition.depends_on, name) {
            return Err(CatalogError::SegmentCycle(format!(
                "{name} -> {} -> ... -> {name}",
                definition.depends_on.join(", ")
            )));
        }
        match self.segments.get_mut(name) {
            Some(_) if !or_replace => Err(CatalogError::SegmentExists(name.to_string())),
            Some(entry) => {
                definition.version = entry.current().version + 1;
                entry.versions.push(definition);
                Ok(entry.current().version)
            }
            None => {
                definition.version = 1;
                self.segments.insert(
                    name.to_string(),
                    SegmentEntry {
                        versions: vec![definition],
                        refresh_every: None,
                        last_refresh: None,
                        activations: vec![],
                    },
                );
                Ok(1)
            }
        }
    }

    /// Removes a segment that no other segment reads.
    pub fn drop_segment(&mut self, name: &str, if_exists: bool) -> Result<Option<SegmentEntry>> {
        if !self.segments.contains_key(name) {
            return if if_exists {
                Ok(None)
            } else {
                Err(CatalogError::SegmentNotFound(name.to_string()))
            };
        }
        if let Some((user, _)) = self
            .segments
            .iter()
            .find(|(_, e)| e.current().depends_on.iter().any(|d| d == name))
        {
            return Err(CatalogError::SegmentInUse {
                segment: name.to_string(),
                by: user.clone(),
            });
        }
        Ok(self.segments.remove(name))
    }

    pub fn destination(&self, name: &str) -> Result<&Destination> {
        self.destinations
            .get(name)
            .ok_or_else(|| CatalogError::DestinationNotFound(name.to_string()))
    }

    pub fn put_destination(
        &mut self,
        name: &str,
        destination: Destination,
        or_replace: bool,
    ) -> Result<()> {
        if self.destinations.contains_key(name) && !or_replace {
            return Err(CatalogError::DestinationExists(name.to_string()));
        }
        self.destinations.insert(name.to_string(), destination);
        Ok(())
    }

    /// Removes a destination no activation uses.
    pub fn drop_destination(&mut self, name: &str, if_exists: bool) -> Result<()> {
        if !self.destinations.contains_key(name) {
            return if if_exists {
                Ok(())
            } else {
                Err(CatalogError::DestinationNotFound(name.to_string()))
            };
        }
        if let Some((segment, _)) = self
            .segments
            .iter()
            .find(|(_, e)| e.activations.iter().any(|a| a.destination == name))
        {
            return Err(CatalogError::DestinationInUse {
                destination: name.to_string(),
                segment: segment.clone(),
            });
        }
        self.destinations.remove(name);
        Ok(())
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

    fn definition(depends_on: &[&str]) -> SegmentVersion {
        SegmentVersion {
            version: 0,
            sql: "SELECT profile_id FROM t".into(),
            comment: None,
            author: "u".into(),
            created_at: Utc::now(),
            depends_on: depends_on.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn segment_rules() {
        let mut s = CatalogState::initial(Utc::now());
        assert!(matches!(
            s.define_segment("b", definition(&["a"]), false),
            Err(CatalogError::SegmentNotFound(_))
        ));
        assert_eq!(s.define_segment("a", definition(&[]), false).unwrap(), 1);
        assert_eq!(s.define_segment("b", definition(&["a"]), false).unwrap(), 1);
        assert_eq!(s.define_segment("c", definition(&["b"]), false).unwrap(), 1);
        assert!(matches!(
            s.define_segment("a", definition(&[]), false),
            Err(CatalogError::SegmentExists(_))
        ));
        // a -> c -> b -> a
        assert!(matches!(
            s.define_segment("a", definition(&["c"]), true),
            Err(CatalogError::SegmentCycle(_))
        ));
        assert!(matches!(
            s.define_segment("a", definition(&["a"]), true),
            Err(CatalogError::SegmentCycle(_))
        ));
        assert_eq!(s.define_segment("a", definition(&[]), true).unwrap(), 2);
        assert_eq!(s.segment("a").unwrap().versions.len(), 2);
        // Dependencies first, whatever the names' order.
        s.define_segment("0first", definition(&["c"]), false)
            .unwrap();
        assert_eq!(s.segments_in_dependency_order(), ["a", "b", "c", "0first"]);
        assert!(matches!(
            s.drop_segment("b", false),
            Err(CatalogError::SegmentInUse { .. })
        ));
        assert!(s.drop_segment("0first", false).unwrap().is_some());
        assert!(s.drop_segment("0first", true).unwrap().is_none());
        assert!(matches!(
            s.create_schema("segments", true, Utc::now()),
            Err(CatalogError::ReservedSchema(_))
        ));
    }
}
