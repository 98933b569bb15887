use datafusion::error::DataFusionError;
use seglake_catalog::CatalogError;
use thiserror::Error;

/// Errors of the engine crate. The server maps them to gRPC status codes in
/// exactly one place (`seglake_flight_server::error`), using [`EngineError::kind`].
#[derive(Debug, Error)]
pub enum EngineError {
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),

    #[error(transparent)]
    Catalog(#[from] CatalogError),

    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),

    #[error(transparent)]
    Parquet(#[from] parquet::errors::ParquetError),

    #[error(transparent)]
    ObjectStore(#[from] object_store::Error),

    #[error(transparent)]
    Demo(#[from] crate::demo::DemoError),

    /// A managed-table (Delta Lake) operation failed.
    #[error("{0}")]
    Delta(#[from] deltalake_core::DeltaTableError),

    /// The statement is well formed but Seglake does not run it.
    #[error("{0}")]
    Unsupported(String),

    /// Bad input from the client (wrong parameters, bad table name, ...).
    #[error("{0}")]
    InvalidArgument(String),

    #[error("{0}")]
    NotFound(String),

    #[error("{0}")]
    AlreadyExists(String),

    /// A distributed worker stopped answering during a query.
    #[error("worker {worker} is unavailable: {message}")]
    WorkerUnavailable { worker: String, message: String },

    /// The query ran past its deadline.
    #[error("{0}")]
    DeadlineExceeded(String),

    /// A security rule refuses the statement (a write outside Seglake's
    /// write paths, a location or webhook outside what the operator
    /// allowed). `rule` names the rule, so the refusal can be looked up in
    /// `docs/server.md`.
    #[error("permission denied ({rule}): {message}")]
    PermissionDenied { rule: &'static str, message: String },

    /// A statement stopped part way and can be run again to finish
    /// (`FORGET PROFILE` with a table it could not erase).
    #[error("{0}")]
    Incomplete(String),

    /// The statement was stopped (`KILL QUERY`, its client went away).
    #[error("{0}")]
    Cancelled(String),

    /// A limit of the server was reached (the admission queue is full).
    #[error("{0}")]
    ResourceExhausted(String),

    /// Seglake's own state is not what it should be.
    #[error("internal error: {0}")]
    Internal(String),
}

/// What kind of failure an error is, independent of the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The client's input is wrong (bad SQL, bad parameters, type errors).
    InvalidArgument,
    /// A table or schema that does not exist (an unknown column is an
    /// InvalidArgument: the statement is wrong, not the catalog).
    NotFound,
    AlreadyExists,
    /// Memory or another resource limit was hit.
    ResourceExhausted,
    /// The client asked for something Seglake does not do.
    Unimplemented,
    /// Storage could not be reached.
    Unavailable,
    /// The query was cancelled.
    Cancelled,
    /// A concurrent change won (a commit conflict that retrying the same
    /// statement may resolve).
    Conflict,
    /// A bug or corrupt state on our side.
    Internal,
    /// The query ran past its deadline.
    DeadlineExceeded,
    /// A security rule refused the statement.
    PermissionDenied,
}

impl EngineError {
    /// A refusal by the security rule `rule`.
    pub fn denied(rule: &'static str, message: impl Into<String>) -> Self {
        Self::PermissionDenied {
            rule,
            message: message.into(),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::DataFusion(e) => datafusion_kind(e),
            Self::Catalog(e) => match e {
                CatalogError::SchemaNotFound(_)
                | CatalogError::TableNotFound { .. }
                | CatalogError::SegmentNotFound(_)
                | CatalogError::DestinationNotFound(_)
                | CatalogError::UserNotFound(_)
                | CatalogError::RoleNotFound(_)
                | CatalogError::GranteeNotFound(_)
                | CatalogError::IngestKeyNotFound(_) => ErrorKind::NotFound,
                CatalogError::SchemaExists(_)
                | CatalogError::TableExists { .. }
                | CatalogError::SegmentExists(_)
                | CatalogError::DestinationExists(_)
                | CatalogError::UserExists(_)
                | CatalogError::RoleExists(_)
                | CatalogError::IngestKeyExists(_) => ErrorKind::AlreadyExists,
                CatalogError::SegmentInUse { .. }
                | CatalogError::SegmentCycle(_)
                | CatalogError::DestinationInUse { .. }
                | CatalogError::InvalidLocation(..)
                | CatalogError::SchemaNotEmpty(_)
                | CatalogError::ReservedSchema(_)
                | CatalogError::InvalidSecurity(_) => ErrorKind::InvalidArgument,
                CatalogError::ObjectStore(e) => object_store_kind(e),
                CatalogError::TooManyConflicts(_) => ErrorKind::Unavailable,
                CatalogError::Corrupt { .. }
                | CatalogError::NoValidVersion { .. }
                | CatalogError::CorruptKey(_) => ErrorKind::Internal,
            },
            Self::Arrow(_) => ErrorKind::InvalidArgument,
            Self::Parquet(_) | Self::Demo(_) => ErrorKind::Internal,
            Self::Delta(e) => delta_kind(e),
            Self::ObjectStore(e) => object_store_kind(e),
            Self::Unsupported(_) => ErrorKind::Unimplemented,
            Self::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::AlreadyExists(_) => ErrorKind::AlreadyExists,
            Self::Incomplete(_) => ErrorKind::Unavailable,
            Self::Internal(_) => ErrorKind::Internal,
            Self::Cancelled(_) => ErrorKind::Cancelled,
            Self::ResourceExhausted(_) => ErrorKind::ResourceExhausted,
            Self::WorkerUnavailable { .. } => ErrorKind::Unavailable,
            Self::DeadlineExceeded(_) => ErrorKind::DeadlineExceeded,
            Self::PermissionDenied { .. } => ErrorKind::PermissionDenied,
        }
    }
}

fn object_store_kind(e: &object_store::Error) -> ErrorKind {
    match e {
        object_store::Error::NotFound { .. } => ErrorKind::NotFound,
        object_store::Error::AlreadyExists { .. } => ErrorKind::AlreadyExists,
        object_store::Error::InvalidPath { .. } => ErrorKind::InvalidArgument,
        _ => ErrorKind::Unavailable,
    }
}

fn datafusion_kind(e: &DataFusionError) -> ErrorKind {
    match e {
        // Unknown tables are found by resolving the statement's table
        // references against its snapshot (`Session::plan`), which raises
        // `EngineError::NotFound`: a plan error is the statement's fault.
        DataFusionError::SQL(..) | DataFusionError::Plan(_) => ErrorKind::InvalidArgument,
        DataFusionError::SchemaError(..) => ErrorKind::InvalidArgument,
        DataFusionError::NotImplemented(_) => ErrorKind::Unimplemented,
        DataFusionError::ResourcesExhausted(_) => ErrorKind::ResourceExhausted,
        DataFusionError::ArrowError(..) | DataFusionError::Execution(_) => {
            ErrorKind::InvalidArgument
        }
        DataFusionError::ObjectStore(e) => object_store_kind(e),
        DataFusionError::IoError(_) => ErrorKind::Unavailable,
        DataFusionError::Configuration(_) => ErrorKind::InvalidArgument,
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
            datafusion_kind(inner)
        }
        DataFusionError::Shared(inner) => datafusion_kind(inner),
        // A bad regex pattern is the statement's fault: the expression
        // simplifier parses constant patterns while planning
        // (`regex_syntax::Error`), the regex functions the others while
        // running (`regex::Error`); both come as `External`.
        DataFusionError::External(inner)
            if inner.is::<regex::Error>() || inner.is::<regex_syntax::Error>() =>
        {
            ErrorKind::InvalidArgument
        }
        DataFusionError::External(inner) => match inner.downcast_ref::<EngineError>() {
            Some(engine) => engine.kind(),
            None => match inner.downcast_ref::<DataFusionError>() {
                Some(df) => datafusion_kind(df),
                None => ErrorKind::Internal,
            },
        },
        DataFusionError::Collection(errs) => errs
            .first()
            .map(datafusion_kind)
            .unwrap_or(ErrorKind::Internal),
        _ => ErrorKind::Internal,
    }
}

fn delta_kind(e: &deltalake_core::DeltaTableError) -> ErrorKind {
    use deltalake_core::DeltaTableError as D;
    use deltalake_core::kernel::transaction::TransactionError as T;
    match e {
        D::ObjectStore { source } => object_store_kind(source),
        D::Transaction { source } => match source {
            T::VersionAlreadyExists(_) | T::CommitConflict(_) | T::MaxCommitAttempts(_) => {
                ErrorKind::Conflict
            }
            T::ObjectStore { source } => object_store_kind(source),
            _ => ErrorKind::Internal,
        },
        D::VersionAlreadyExists(_) => ErrorKind::Conflict,
        D::NotATable(_) => ErrorKind::NotFound,
        D::Generic(_)
        | D::GenericError { .. }
        | D::SchemaMismatch { .. }
        | D::InvalidData { .. }
        | D::Arrow { .. }
        | D::InvalidDateTimeString { .. }
        | D::InvalidVersion(_)
        | D::PartitionError { .. }
        | D::InvalidPartitionFilter { .. } => ErrorKind::InvalidArgument,
        D::Io { .. } => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;

    use super::*;

    /// The error DataFusion really raises for `sql`, planned and run.
    async fn error_of(sql: &str) -> DataFusionError {
        let ctx = SessionContext::new();
        let result = match ctx.sql(sql).await {
            Ok(df) => df.collect().await.map(|_| ()),
            Err(e) => Err(e),
        };
        result.expect_err(sql)
    }

    #[tokio::test]
    async fn bad_regex_patterns_are_the_statements_fault() {
        // An unclosed class or group, a reversed range: rejected while
        // simplifying (a constant pattern) or while running (a pattern
        // from a column, or one the simplifier leaves to the function).
        for sql in [
            "SELECT regexp_like('a', '[')",
            "SELECT 'a' ~ '('",
            "SELECT 'a' !~* '[z-a]'",
            "SELECT regexp_replace(x, '(', 'y') FROM (VALUES ('a')) t(x)",
            "SELECT regexp_like(x, p) FROM (VALUES ('a', '[')) t(x, p)",
        ] {
            let e = error_of(sql).await;
            assert_eq!(
                EngineError::DataFusion(e).kind(),
                ErrorKind::InvalidArgument,
                "{sql}"
            );
        }
    }
}
