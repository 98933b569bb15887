//! The error type of the benchmark library.

use std::path::PathBuf;

/// Everything that can go wrong while generating data or running a benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("process error: {0}")]
    Process(String),

    #[error("engine error: {0}")]
    Engine(#[from] seglake_engine::EngineError),

    #[error("DataFusion error: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),

    #[error("Arrow error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),

    #[error("Parquet error: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),

    #[error("JSON error: {0}")]
    Json(#[from] serde_json::Error),

    #[error("invalid query file {path}: {reason}")]
    QueryFile { path: PathBuf, reason: String },

    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// The result type of the benchmark library.
pub type Result<T, E = BenchError> = std::result::Result<T, E>;

/// Attaches a path to an I/O error.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| BenchError::Io {
            path: path.into(),
            source,
        })
    }
}
