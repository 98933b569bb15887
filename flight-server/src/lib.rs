//! Seglake's Arrow Flight SQL server.
//!
//! - [`server::start`] binds and serves an [`seglake_engine::Engine`];
//! - [`collector::start`] serves the HTTP event collector next to it;
//! - [`cli`] holds the `seglake` command line (the binary only parses it and
//!   calls [`cli::run`]).

pub mod auth;
mod auth_layer;
pub mod cli;
pub mod collector;
pub mod error;
pub mod handle;
mod planned;
pub mod server;
mod service;
mod session_options;
mod sql_info;
pub mod supervise;
pub mod tls;
pub mod worker;

pub use error::{Result, ServerError};
pub use server::{RunningServer, ServerOptions, start};
pub use worker::{WorkerOptions, start_worker};
