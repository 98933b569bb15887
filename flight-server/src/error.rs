//! The one place where errors become gRPC statuses.

use arrow_flight::error::FlightError;
use seglake_engine::{EngineError, ErrorKind};
use thiserror::Error;
use tonic::{Code, Status};

/// Errors of the server crate.
#[derive(Debug, Error)]
pub enum ServerError {
    #[error(transparent)]
    Engine(#[from] EngineError),

    #[error("{0}")]
    Unauthenticated(String),

    #[error("{0}")]
    PermissionDenied(String),

    #[error("{0}")]
    InvalidArgument(String),

    #[error("{0}")]
    NotFound(String),

    #[error("{0}")]
    Unimplemented(String),

    /// A failure of the server itself, never the client's fault.
    #[error("{0}")]
    Internal(String),

    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),

    /// From Arrow Flight: a status received from the client or the
    /// transport (sent back as it is), or a failure to decode or encode
    /// Flight data (internal, as arrow-flight reports it).
    #[error(transparent)]
    Flight(#[from] FlightError),

    #[error("transport error: {0}")]
    Transport(#[from] tonic::transport::Error),

    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),

    #[error("invalid configuration: {0}")]
    Config(String),
}

impl ServerError {
    /// A failure of the server itself (e.g. building a result it sends).
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<datafusion::error::DataFusionError> for ServerError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        Self::Engine(EngineError::DataFusion(e))
    }
}

pub type Result<T, E = ServerError> = std::result::Result<T, E>;

fn engine_code(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::InvalidArgument => Code::InvalidArgument,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::AlreadyExists => Code::AlreadyExists,
        ErrorKind::ResourceExhausted => Code::ResourceExhausted,
        ErrorKind::Unimplemented => Code::Unimplemented,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::Cancelled => Code::Cancelled,
        ErrorKind::Conflict => Code::Aborted,
        ErrorKind::Internal => Code::Internal,
        ErrorKind::DeadlineExceeded => Code::DeadlineExceeded,
        ErrorKind::PermissionDenied => Code::PermissionDenied,
    }
}

fn code(e: &ServerError) -> Code {
    match e {
        ServerError::Engine(e) => engine_code(e.kind()),
        ServerError::Unauthenticated(_) => Code::Unauthenticated,
        ServerError::PermissionDenied(_) => Code::PermissionDenied,
        ServerError::InvalidArgument(_) | ServerError::Arrow(_) => Code::InvalidArgument,
        ServerError::NotFound(_) => Code::NotFound,
        ServerError::Unimplemented(_) => Code::Unimplemented,
        ServerError::Internal(_) => Code::Internal,
        ServerError::Flight(FlightError::Tonic(s)) => s.code(),
        ServerError::Flight(_) => Code::Internal,
        ServerError::Transport(_) | ServerError::Io(_) => Code::Unavailable,
        ServerError::Config(_) => Code::InvalidArgument,
    }
}

impl From<ServerError> for Status {
    fn from(e: ServerError) -> Self {
        let code = code(&e);
        if code == Code::Internal {
            tracing::error!(error = %e, "internal error");
        } else {
            tracing::debug!(error = %e, ?code, "request failed");
        }
        match e {
            // Arrow Flight's own conversion: a received status unchanged,
            // anything else internal with the error's own message.
            ServerError::Flight(e) => Status::from(e),
            e => Status::new(code, e.to_string()),
        }
    }
}

/// A status of arrow-flight's Flight SQL dispatcher, with its one
/// misclassification undone: arrow-flight 59 answers a command, ticket or
/// action body whose `Any` names a Flight SQL message but whose value does
/// not decode (truncated, not UTF-8) with INTERNAL (`arrow_error_to_status`,
/// a `ParseError(..)` in Debug form, which none of our own errors produce).
/// That is the client's garbage: INVALID_ARGUMENT.
pub(crate) fn dispatch_status(status: Status) -> Status {
    if status.code() == Code::Internal && status.message().starts_with("ParseError(") {
        tracing::debug!(message = status.message(), "undecodable Flight SQL message");
        Status::invalid_argument(format!("invalid Flight SQL message: {}", status.message()))
    } else {
        status
    }
}
