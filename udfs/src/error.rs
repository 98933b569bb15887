//! The crate-boundary error type.
//!
//! Inside DataFusion code paths the functions use `exec_err!` / `plan_err!`;
//! [`UdfError`] is for conditions detected outside of them (registration,
//! codec payloads) and converts into a [`DataFusionError`].

use datafusion::error::DataFusionError;

/// Errors raised by the Seglake function crate itself.
#[derive(Debug, thiserror::Error)]
pub enum UdfError {
    /// A function name is already registered for a different function.
    #[error(
        "cannot register Seglake function '{0}': the name is already taken by another function"
    )]
    NameTaken(String),
    /// A codec payload could not be decoded.
    #[error("invalid Seglake codec payload: {0}")]
    InvalidPayload(String),
}

impl From<UdfError> for DataFusionError {
    fn from(err: UdfError) -> Self {
        match err {
            UdfError::NameTaken(_) => DataFusionError::Plan(err.to_string()),
            UdfError::InvalidPayload(_) => DataFusionError::Internal(err.to_string()),
        }
    }
}
