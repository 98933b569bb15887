use thiserror::Error;

/// Errors of the catalog crate.
#[derive(Debug, Error)]
pub enum CatalogError {
    #[error("object store error: {0}")]
    ObjectStore(#[from] object_store::Error),

    #[error("invalid catalog document {path}: {source}")]
    Corrupt {
        path: String,
        #[source]
        source: serde_json::Error,
    },

    /// Every catalog version in the log is corrupt (each one is named in
    /// a warning of the log).
    #[error(
        "no readable catalog version in {dir}: version {newest} and every older one are corrupt \
         (see the warnings in the log)"
    )]
    NoValidVersion { dir: String, newest: u64 },

    #[error("invalid warehouse location '{0}': {1}")]
    InvalidLocation(String, String),

    #[error("schema '{0}' not found")]
    SchemaNotFound(String),

    #[error("schema '{0}' already exists")]
    SchemaExists(String),

    #[error("schema '{0}' is not empty (use DROP SCHEMA ... CASCADE)")]
    SchemaNotEmpty(String),

    #[error("table '{schema}.{table}' not found")]
    TableNotFound { schema: String, table: String },

    #[error("table '{schema}.{table}' already exists")]
    TableExists { schema: String, table: String },

    #[error("schema '{0}' is reserved for built-in tables")]
    ReservedSchema(String),

    #[error("segment '{0}' not found")]
    SegmentNotFound(String),

    #[error("segment '{0}' already exists (use CREATE OR REPLACE SEGMENT)")]
    SegmentExists(String),

    #[error("segment '{segment}' is used by segment '{by}': drop or redefine '{by}' first")]
    SegmentInUse { segment: String, by: String },

    #[error("segments may not read each other in a cycle: {0}")]
    SegmentCycle(String),

    #[error("destination '{0}' not found")]
    DestinationNotFound(String),

    #[error("destination '{0}' already exists (use CREATE OR REPLACE DESTINATION)")]
    DestinationExists(String),

    #[error("destination '{destination}' is used by an activation of segment '{segment}'")]
    DestinationInUse {
        destination: String,
        segment: String,
    },

    #[error("user '{0}' not found")]
    UserNotFound(String),

    #[error(
        "user '{0}' already exists (names are shared by users, roles and the server's own users)"
    )]
    UserExists(String),

    #[error("role '{0}' not found")]
    RoleNotFound(String),

    #[error(
        "role '{0}' already exists (names are shared by users, roles and the server's own users)"
    )]
    RoleExists(String),

    #[error("ingest key '{0}' not found")]
    IngestKeyNotFound(String),

    #[error("ingest key '{0}' already exists")]
    IngestKeyExists(String),

    #[error("the warehouse's erasure key {0} is not 64 hex digits")]
    CorruptKey(String),

    #[error("no user or role named '{0}'")]
    GranteeNotFound(String),

    #[error("{0}")]
    InvalidSecurity(String),

    #[error("catalog update gave up after {0} attempts: too many concurrent updates")]
    TooManyConflicts(usize),
}

pub type Result<T, E = CatalogError> = std::result::Result<T, E>;
