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

    #[error("catalog update gave up after {0} attempts: too many concurrent updates")]
    TooManyConflicts(usize),
}

pub type Result<T, E = CatalogError> = std::result::Result<T, E>;
