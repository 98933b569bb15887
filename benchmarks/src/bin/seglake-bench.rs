//! `seglake-bench`: parses the command line and calls the library.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use seglake_benchmarks::{datagen, extras, inproc, runner, stitch, suite};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "seglake-bench",
    version,
    about = "Seglake benchmarks: the segment suite through Flight SQL, in-process, and DuckDB"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write the benchmark data set (a ready Seglake warehouse) at a scale factor.
    Generate(GenerateArgs),
    /// Run the segment suite and write results/<label>.{json,md}.
    Run(RunArgs),
    /// EXPLAIN ANALYZE one suite query through an in-process Seglake session.
    Explain(ExplainArgs),
    /// List the queries of the suite.
    Queries,
    /// Identity stitching on a synthetic graph: Seglake vs DuckDB label propagation vs scipy.
    Stitch(StitchArgs),
    /// Flight SQL transfer: a large result through ADBC against pyarrow reading the same Parquet.
    Transfer(ExtraArgs),
    /// Ingest throughput through ADBC `adbc_ingest`.
    Ingest(ExtraArgs),
    /// Ingest throughput through the HTTP collector (`serve --collect`, on a fresh warehouse).
    Collect(ExtraArgs),
    /// 1, 4, 16 ADBC clients running the suite at once (queries/s, p95, errors).
    Concurrency(ExtraArgs),
    /// One stitching engine run of `stitch` (Seglake, in this process).
    #[command(hide = true)]
    StitchWorker(StitchWorkerArgs),
    /// The in-process Seglake engine of `run` (JSON lines on stdin/stdout).
    #[command(hide = true)]
    Worker(WorkerArgs),
}

#[derive(Debug, Args)]
struct GenerateArgs {
    /// Scale factor: SF 1 = 100 000 profiles, about 5 M events over 365 days.
    #[arg(long, env = "SEGLAKE_BENCH_SCALE", default_value_t = 1.0)]
    scale: f64,
    /// Warehouse directory to write (default: benchmarks/data/sf<SF>).
    #[arg(long, env = "SEGLAKE_BENCH_OUT")]
    out: Option<PathBuf>,
    /// Generate again even if the directory already holds this scale.
    #[arg(long, env = "SEGLAKE_BENCH_FORCE")]
    force: bool,
    /// Row order of each day's event file.
    #[arg(
        long,
        env = "SEGLAKE_BENCH_EVENT_ORDER",
        value_enum,
        default_value = "type"
    )]
    event_order: datagen::Order,
    /// Maximum rows per row group of the event files.
    #[arg(long, env = "SEGLAKE_BENCH_EVENT_ROW_GROUP_ROWS", default_value_t = seglake_engine::demo::MAX_ROW_GROUP_ROWS)]
    event_row_group_rows: usize,
}

#[derive(Debug, Clone, Args)]
struct SeglakeArgs {
    /// Seglake target partitions (default: the number of cores).
    #[arg(long, env = "SEGLAKE_BENCH_TARGET_PARTITIONS")]
    target_partitions: Option<usize>,
    /// Seglake rows per batch.
    #[arg(long, env = "SEGLAKE_BENCH_BATCH_SIZE")]
    batch_size: Option<usize>,
    /// Memory limit in MiB for Seglake's memory pool (and DuckDB's memory_limit).
    #[arg(long, env = "SEGLAKE_BENCH_MEMORY_LIMIT_MB")]
    memory_limit_mb: Option<usize>,
    /// Session setting KEY=VALUE for Seglake (repeatable; the variable takes
    /// a comma-separated list), e.g. datafusion.execution.parquet.pushdown_filters=true
    #[arg(long = "set", env = "SEGLAKE_BENCH_SET", value_delimiter = ',')]
    settings: Vec<String>,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Scale factor of the data (see `generate`).
    #[arg(long, env = "SEGLAKE_BENCH_SCALE", default_value_t = 1.0)]
    scale: f64,
    /// Warehouse directory written by `generate` (default: benchmarks/data/sf<SF>).
    #[arg(long, env = "SEGLAKE_BENCH_DATA")]
    data: Option<PathBuf>,
    /// Timed repetitions per query and engine.
    #[arg(long, env = "SEGLAKE_BENCH_REPS", default_value_t = 5)]
    reps: usize,
    /// Engines, comma-separated.
    #[arg(
        long,
        env = "SEGLAKE_BENCH_ENGINES",
        value_delimiter = ',',
        default_value = "seglake-flight,seglake-inproc,duckdb"
    )]
    engines: Vec<String>,
    /// Queries to run (q01,q05...; default: the whole suite).
    #[arg(long, env = "SEGLAKE_BENCH_QUERIES", value_delimiter = ',')]
    queries: Vec<String>,
    /// Python with pyarrow, duckdb and adbc-driver-flightsql (default: benchmarks/.venv/bin/python).
    #[arg(long, env = "SEGLAKE_BENCH_PYTHON")]
    python: Option<PathBuf>,
    /// The seglake server binary (default: `seglake` next to this binary).
    #[arg(long, env = "SEGLAKE_BENCH_SEGLAKE_BIN")]
    seglake_bin: Option<PathBuf>,
    /// Directory of the result files (default: benchmarks/results).
    #[arg(long, env = "SEGLAKE_BENCH_RESULTS")]
    results: Option<PathBuf>,
    /// DuckDB threads (default: DuckDB's, the number of cores).
    #[arg(long, env = "SEGLAKE_BENCH_DUCKDB_THREADS")]
    duckdb_threads: Option<usize>,
    /// Skip the comparison of the results (row counts are still reported).
    #[arg(long, env = "SEGLAKE_BENCH_NO_CHECK")]
    no_check: bool,
    /// A label for this run: the result file names (default: <date>-sf<SF>).
    #[arg(long, env = "SEGLAKE_BENCH_LABEL")]
    label: Option<String>,
    #[command(flatten)]
    seglake: SeglakeArgs,
}

#[derive(Debug, Args)]
struct ExplainArgs {
    /// The query (q09 or its full name).
    query: String,
    #[arg(long, env = "SEGLAKE_BENCH_SCALE", default_value_t = 1.0)]
    scale: f64,
    #[arg(long, env = "SEGLAKE_BENCH_DATA")]
    data: Option<PathBuf>,
    #[command(flatten)]
    seglake: SeglakeArgs,
}

#[derive(Debug, Args)]
struct StitchArgs {
    /// Identifier rows of the synthetic graph (1000000, 10000000...).
    #[arg(long, env = "SEGLAKE_BENCH_STITCH_ROWS", default_value_t = 1_000_000)]
    rows: u64,
    /// Directory of the graph (default: benchmarks/data/stitch-<rows>).
    #[arg(long, env = "SEGLAKE_BENCH_STITCH_DATA")]
    data: Option<PathBuf>,
    /// Timed runs per engine.
    #[arg(long, env = "SEGLAKE_BENCH_REPS", default_value_t = 3)]
    reps: usize,
    /// Engines, comma-separated (scipy is the reference).
    #[arg(
        long,
        env = "SEGLAKE_BENCH_STITCH_ENGINES",
        value_delimiter = ',',
        default_value = "seglake,duckdb-lp,scipy"
    )]
    engines: Vec<String>,
    /// Over-merge guard: identifiers shared by more records create no link.
    #[arg(long, env = "SEGLAKE_BENCH_MAX_RECORDS", default_value_t = 100)]
    max_records: u64,
    /// Python with pyarrow, duckdb and scipy (default: benchmarks/.venv/bin/python).
    #[arg(long, env = "SEGLAKE_BENCH_PYTHON")]
    python: Option<PathBuf>,
    #[arg(long, env = "SEGLAKE_BENCH_RESULTS")]
    results: Option<PathBuf>,
    #[arg(long, env = "SEGLAKE_BENCH_LABEL")]
    label: Option<String>,
}

#[derive(Debug, Args)]
struct StitchWorkerArgs {
    #[arg(long)]
    links: PathBuf,
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 3)]
    reps: usize,
    #[arg(long, default_value_t = 100)]
    max_records: u64,
}

#[derive(Debug, Args)]
struct ExtraArgs {
    /// Scale factor of the data served.
    #[arg(long, env = "SEGLAKE_BENCH_SCALE", default_value_t = 10.0)]
    scale: f64,
    #[arg(long, env = "SEGLAKE_BENCH_DATA")]
    data: Option<PathBuf>,
    #[arg(long, env = "SEGLAKE_BENCH_PYTHON")]
    python: Option<PathBuf>,
    #[arg(long, env = "SEGLAKE_BENCH_SEGLAKE_BIN")]
    seglake_bin: Option<PathBuf>,
    #[arg(long, env = "SEGLAKE_BENCH_RESULTS")]
    results: Option<PathBuf>,
    #[arg(long, env = "SEGLAKE_BENCH_LABEL")]
    label: Option<String>,
    /// Arguments passed to python/flight_extras.py (e.g. --rows 10000000, --clients 1,4,16).
    #[arg(last = true)]
    script_args: Vec<String>,
    #[command(flatten)]
    seglake: SeglakeArgs,
}

#[derive(Debug, Args)]
struct WorkerArgs {
    #[arg(long)]
    data: PathBuf,
    #[command(flatten)]
    seglake: SeglakeArgs,
}

fn bench_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn inproc_options(data: PathBuf, s: &SeglakeArgs) -> inproc::InprocOptions {
    inproc::InprocOptions {
        warehouse: data,
        target_partitions: s.target_partitions,
        batch_size: s.batch_size,
        memory_limit: s.memory_limit_mb.map(|m| m * 1024 * 1024),
        settings: s.settings.clone(),
    }
}

fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe.with_file_name(name))
}

fn server_flags(s: &SeglakeArgs) -> Vec<String> {
    let mut v = Vec::new();
    if let Some(n) = s.target_partitions {
        v.extend(["--target-partitions".to_string(), n.to_string()]);
    }
    if let Some(n) = s.batch_size {
        v.extend(["--batch-size".to_string(), n.to_string()]);
    }
    if let Some(n) = s.memory_limit_mb {
        v.extend(["--memory-limit-mb".to_string(), n.to_string()]);
    }
    v
}

fn extra(what: extras::Extra, a: ExtraArgs) -> anyhow::Result<extras::ExtraOptions> {
    Ok(extras::ExtraOptions {
        what,
        data: a
            .data
            .unwrap_or_else(|| datagen::default_dir(a.scale))
            .canonicalize()
            .context("the data directory (run `seglake-bench generate` first)")?,
        python: a
            .python
            .unwrap_or_else(|| bench_root().join(".venv/bin/python")),
        seglake_bin: match a.seglake_bin {
            Some(p) => p,
            None => sibling_binary("seglake")?,
        },
        results: a.results.unwrap_or_else(|| bench_root().join("results")),
        label: a.label,
        script_args: a.script_args,
        server_args: server_flags(&a.seglake),
    })
}

fn emit(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{text}");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let command = match cli.command {
        Command::Transfer(a) => Some(extra(extras::Extra::Transfer, a)?),
        Command::Ingest(a) => Some(extra(extras::Extra::Ingest, a)?),
        Command::Collect(a) => Some(extra(extras::Extra::Collect, a)?),
        Command::Concurrency(a) => Some(extra(extras::Extra::Concurrency, a)?),
        other => {
            run_command(other).await?;
            None
        }
    };
    if let Some(opts) = command {
        let (report, md) = tokio::task::spawn_blocking(move || extras::run(&opts)).await??;
        emit(&extras::markdown(&report));
        emit(&format!("written: {}", md.display()));
    }
    Ok(())
}

async fn run_command(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Generate(a) => {
            let out = a.out.unwrap_or_else(|| datagen::default_dir(a.scale));
            let layout = datagen::Layout {
                event_order: a.event_order,
                event_row_group_rows: a.event_row_group_rows,
            };
            let info = datagen::generate(a.scale, &layout, &out, a.force)
                .await
                .with_context(|| format!("generating SF {} in {}", a.scale, out.display()))?;
            emit(&serde_json::to_string_pretty(&info)?);
        }
        Command::Run(a) => {
            let queries = suite::load(&suite::default_dir(), &a.queries)?;
            let opts = runner::RunOptions {
                scale: a.scale,
                data: a
                    .data
                    .unwrap_or_else(|| datagen::default_dir(a.scale))
                    .canonicalize()
                    .context("the data directory (run `seglake-bench generate` first)")?,
                reps: a.reps,
                engines: a.engines,
                queries,
                python: a
                    .python
                    .unwrap_or_else(|| bench_root().join(".venv/bin/python")),
                seglake_bin: match a.seglake_bin {
                    Some(p) => p,
                    None => sibling_binary("seglake")?,
                },
                bench_bin: std::env::current_exe()?,
                results: a.results.unwrap_or_else(|| bench_root().join("results")),
                duckdb_threads: a.duckdb_threads,
                check: !a.no_check,
                label: a.label,
                settings: a.seglake.settings.clone(),
                target_partitions: a.seglake.target_partitions,
                batch_size: a.seglake.batch_size,
                memory_limit_mb: a.seglake.memory_limit_mb,
            };
            // The runner is synchronous (child processes): keep it off the
            // async workers.
            let (report, md) = tokio::task::spawn_blocking(move || runner::run(&opts)).await??;
            emit(&report.markdown());
            emit(&format!("written: {}", md.display()));
        }
        Command::Explain(a) => {
            let q = suite::load(&suite::default_dir(), std::slice::from_ref(&a.query))?;
            let data = a.data.unwrap_or_else(|| datagen::default_dir(a.scale));
            let session = inproc::open_session(&inproc_options(data, &a.seglake)).await?;
            let batches =
                inproc::run_query(&session, &format!("EXPLAIN ANALYZE {}", q[0].sql)).await?;
            emit(&arrow::util::pretty::pretty_format_batches(&batches)?.to_string());
        }
        Command::Queries => {
            for q in suite::load(&suite::default_dir(), &[])? {
                let note = q
                    .duckdb_note
                    .map(|n| format!(" [DuckDB: {n}]"))
                    .unwrap_or_default();
                emit(&format!("{}: {}{note}", q.name, q.title));
            }
        }
        Command::Stitch(a) => {
            let opts = stitch::StitchOptions {
                rows: a.rows,
                data: a
                    .data
                    .unwrap_or_else(|| bench_root().join(format!("data/stitch-{}", a.rows))),
                reps: a.reps,
                engines: a.engines,
                max_records: a.max_records,
                python: a
                    .python
                    .unwrap_or_else(|| bench_root().join(".venv/bin/python")),
                bench_bin: std::env::current_exe()?,
                results: a.results.unwrap_or_else(|| bench_root().join("results")),
                label: a.label,
            };
            let (report, md) = tokio::task::spawn_blocking(move || stitch::run(&opts)).await??;
            emit(&stitch::markdown(&report));
            emit(&format!("written: {}", md.display()));
        }
        Command::StitchWorker(a) => {
            let r = stitch::run_seglake(&a.links, &a.out, a.reps, a.max_records).await?;
            emit(&serde_json::to_string(&r)?);
        }
        Command::Transfer(a)
        | Command::Ingest(a)
        | Command::Collect(a)
        | Command::Concurrency(a) => {
            unreachable!("handled above: {a:?}")
        }
        Command::Worker(a) => {
            inproc::serve_stdio(&inproc_options(a.data, &a.seglake)).await?;
        }
    }
    Ok(())
}
