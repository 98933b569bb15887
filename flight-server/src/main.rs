//! The `seglake` binary: parses the command line, sets up logging, runs.

use clap::Parser;
use seglake_flight_server::cli::{Cli, run};
use tracing_subscriber::EnvFilter;

/// The log filter without `RUST_LOG`: Seglake's own events at INFO, its
/// dependencies' only from WARN (delta-rs and delta_kernel log an INFO line
/// per table scan). `RUST_LOG=info` shows everything again.
const DEFAULT_LOG_FILTER: &str = "warn,seglake=info,seglake_engine=info,seglake_catalog=info,\
     seglake_flight_server=info,seglake_udfs=info,seglake_demo=info";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER)),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    run(cli, |addr| {
        // The one line on standard output: scripts and tests read the bound
        // address from it (the server may listen on port 0).
        #[allow(clippy::print_stdout)]
        {
            println!("listening on {addr}");
        }
    })
    .await?;
    Ok(())
}
