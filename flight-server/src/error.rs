//! The one place where errors become gRPC statuses.

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
    Unimplemented(String),

    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),

    #[error(transparent)]
    Flight(#[from] arrow_flight::error::FlightError),

    #[error("transport error: {0}")]
    Transport(#[from] tonic::transport::Error),

    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),

    #[error("invalid configuration: {0}")]
    Config(String),
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
    }
}

impl From<ServerError> for Status {
    fn from(e: ServerError) -> Self {
        let code = match &e {
            ServerError::Engine(e) => engine_code(e.kind()),
            ServerError::Unauthenticated(_) => Code::Unauthenticated,
            ServerError::PermissionDenied(_) => Code::PermissionDenied,
            ServerError::InvalidArgument(_) | ServerError::Arrow(_) => Code::InvalidArgument,
            ServerError::Unimplemented(_) => Code::Unimplemented,
            ServerError::Flight(arrow_flight::error::FlightError::Tonic(s)) => s.code(),
            ServerError::Flight(_) => Code::InvalidArgument,
            ServerError::Transport(_) | ServerError::Io(_) => Code::Unavailable,
            ServerError::Config(_) => Code::InvalidArgument,
        };
        if code == Code::Internal {
            tracing::error!(error = %e, "internal error");
        } else {
            tracing::debug!(error = %e, ?code, "request failed");
        }
        Status::new(code, e.to_string())
    }
}
