//! Seglake benchmarks: the benchmark data set, the segment suite against
//! DuckDB (through Flight SQL, in-process, and DuckDB on the same Parquet),
//! identity stitching against DuckDB and scipy, Flight SQL transfer, ingest
//! and concurrency. Driven by the `seglake-bench` binary; see
//! `benchmarks/README.md`.
//!
//! Every engine runs in its own process (peak RSS is per process), speaking
//! JSON lines ([`procs::Request`]) with the runner.

pub mod compare;
pub mod datagen;
mod error;
pub mod extras;
pub mod inproc;
pub mod machine;
pub mod procs;
pub mod report;
pub mod runner;
pub mod stats;
pub mod stitch;
pub mod suite;
pub mod synth;

pub use error::{BenchError, Result};
