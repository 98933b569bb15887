//! `generate`: the benchmark warehouse at a scale factor, written by the
//! engine's own demo generator (`seglake_engine::demo`, streamed day by day
//! to Parquet), registered in the warehouse catalog so that `seglake serve`
//! can serve it as is.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use seglake_engine::demo::{DemoOptions, EventOrder, MAX_ROW_GROUP_ROWS};
use seglake_engine::{Engine, EngineConfig};
use serde::{Deserialize, Serialize};

use crate::error::{BenchError, IoContext, Result};

/// Profiles at scale factor 1.
pub const PROFILES_PER_SF: f64 = 100_000.0;

/// The description of a generated warehouse, `seglake-bench.json` in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataInfo {
    pub scale: f64,
    pub profiles: u64,
    pub events: u64,
    pub identifiers: u64,
    pub event_files: u64,
    pub seed: u64,
    pub days: u32,
    pub end_date: String,
    pub parquet_bytes: u64,
    pub generation_seconds: f64,
    pub generated_at: String,
    /// The warehouse directory the catalog points at (data moved or
    /// copied elsewhere must be generated again).
    #[serde(default)]
    pub warehouse: Option<String>,
    /// How the event files are laid out (absent in files written before
    /// it could be chosen, which were sorted by time).
    #[serde(default = "Layout::by_time")]
    pub layout: Layout,
}

/// The layout of the event files: the settings of the writer a benchmark
/// can vary (`generate --event-order`, `--event-row-group-rows`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// Row order within a day's file: `time` or `type` (event_type, then time).
    pub event_order: Order,
    /// Maximum rows per row group of the event files.
    pub event_row_group_rows: usize,
}

impl Default for Layout {
    /// The demo generator's layout.
    fn default() -> Self {
        Self {
            event_order: Order::Type,
            event_row_group_rows: MAX_ROW_GROUP_ROWS,
        }
    }
}

impl Layout {
    /// The layout of every warehouse generated before the order could be
    /// chosen.
    pub fn by_time() -> Self {
        Self {
            event_order: Order::Time,
            ..Self::default()
        }
    }

    /// The layout in words, for reports.
    pub fn describe(&self) -> String {
        let order = match self.event_order {
            Order::Time => "event_time",
            Order::Type => "event_type, event_time",
        };
        format!(
            "event files sorted by {order}, at most {} rows per row group",
            self.event_row_group_rows
        )
    }
}

/// [`EventOrder`] as it is named on the command line and in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// By event_time.
    Time,
    /// By event_type, then event_time (the generator's default).
    Type,
}

impl From<Order> for EventOrder {
    fn from(o: Order) -> Self {
        match o {
            Order::Time => EventOrder::Time,
            Order::Type => EventOrder::TypeThenTime,
        }
    }
}

#[cfg(test)]
impl DataInfo {
    /// A small description, for unit tests of what reads one.
    pub(crate) fn for_tests() -> Self {
        Self {
            scale: 1.0,
            profiles: 10,
            events: 100,
            identifiers: 20,
            event_files: 1,
            seed: 42,
            days: 1,
            end_date: "2026-11-01".into(),
            parquet_bytes: 1,
            generation_seconds: 0.1,
            generated_at: "now".into(),
            warehouse: None,
            layout: Layout::default(),
        }
    }
}

/// Name of the description file.
pub const INFO_FILE: &str = "seglake-bench.json";

/// The default data directory of a scale: `benchmarks/data/sf<SF>`.
pub fn default_dir(scale: f64) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(format!("sf{}", scale_label(scale)))
}

/// `1`, `10`, `0.1`...
pub fn scale_label(scale: f64) -> String {
    let s = format!("{scale}");
    s.trim_end_matches(".0").to_string()
}

/// Demo options of a scale factor: 100 000 profiles per SF, 365 days.
pub fn options(scale: f64, layout: &Layout) -> Result<DemoOptions> {
    if !(scale.is_finite() && scale > 0.0) {
        return Err(BenchError::InvalidArgument(format!(
            "scale factor {scale} must be > 0"
        )));
    }
    let profiles = (PROFILES_PER_SF * scale).round() as u64;
    if profiles == 0 || profiles > seglake_engine::demo::MAX_PROFILES {
        return Err(BenchError::InvalidArgument(format!(
            "scale factor {scale} gives {profiles} profiles, outside 1..={}",
            seglake_engine::demo::MAX_PROFILES
        )));
    }
    if layout.event_row_group_rows == 0 {
        return Err(BenchError::InvalidArgument(
            "--event-row-group-rows must be at least 1".into(),
        ));
    }
    Ok(DemoOptions {
        profiles,
        event_order: layout.event_order.into(),
        event_row_group_rows: layout.event_row_group_rows,
        ..DemoOptions::default()
    })
}

/// Reads `seglake-bench.json` of a data directory, if there.
pub fn read_info(dir: &Path) -> Option<DataInfo> {
    let text = std::fs::read_to_string(dir.join(INFO_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

/// Generates the warehouse of `scale` with `layout` in `out` unless it is
/// already there (same scale, seed and layout) or `force`.
pub async fn generate(scale: f64, layout: &Layout, out: &Path, force: bool) -> Result<DataInfo> {
    let opts = options(scale, layout)?;
    if !force
        && let Some(info) = read_info(out)
        && info.profiles == opts.profiles
        && info.seed == opts.seed
        && info.days == opts.days
        && info.layout == *layout
        && out.canonicalize().ok().map(|p| p.display().to_string()) == info.warehouse
    {
        tracing::info!(dir = %out.display(), "data already generated");
        return Ok(info);
    }
    std::fs::create_dir_all(out).at(out)?;
    let out = out.canonicalize().at(out)?;
    let engine = Engine::open(EngineConfig::new(out.display().to_string())).await?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} (eta {eta})",
        )
        .expect("valid template"),
    );
    bar.set_message(format!(
        "SF {} ({} profiles)",
        scale_label(scale),
        opts.profiles
    ));
    bar.enable_steady_tick(Duration::from_millis(500));
    let progress = {
        let bar = bar.clone();
        move |done: u64, total: u64| {
            bar.set_length(total);
            bar.set_position(done);
        }
    };
    let start = Instant::now();
    let summary = engine
        .install_demo(&opts, true, &progress)
        .await?
        .ok_or_else(|| BenchError::Process("demo data not installed".into()))?;
    bar.finish();
    let info = DataInfo {
        scale,
        profiles: summary.profiles,
        events: summary.events,
        identifiers: summary.identifiers,
        event_files: summary.event_files,
        seed: opts.seed,
        days: opts.days,
        end_date: opts.end_date.to_string(),
        parquet_bytes: dir_size(&out.join("demo")),
        generation_seconds: start.elapsed().as_secs_f64(),
        generated_at: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        warehouse: Some(out.display().to_string()),
        layout: *layout,
    };
    let path = out.join(INFO_FILE);
    std::fs::write(&path, serde_json::to_string_pretty(&info)?).at(&path)?;
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_factor_sets_profiles() {
        let l = Layout::default();
        assert_eq!(options(1.0, &l).unwrap().profiles, 100_000);
        assert_eq!(options(100.0, &l).unwrap().profiles, 10_000_000);
        assert_eq!(options(0.01, &l).unwrap().profiles, 1_000);
        assert_eq!(options(1.0, &l).unwrap().days, 365);
        assert_eq!(options(1.0, &l).unwrap(), DemoOptions::default());
        assert!(options(0.0, &l).is_err());
        assert!(options(f64::NAN, &l).is_err());
        assert!(options(10_000.0, &l).is_err());
        assert_eq!(
            options(1.0, &l).unwrap().event_order,
            EventOrder::TypeThenTime
        );
        let by_time = Layout {
            event_order: Order::Time,
            event_row_group_rows: 4096,
        };
        let o = options(1.0, &by_time).unwrap();
        assert_eq!(o.event_order, EventOrder::Time);
        assert_eq!(o.event_row_group_rows, 4096);
        let zero = Layout {
            event_row_group_rows: 0,
            ..by_time
        };
        assert!(options(1.0, &zero).is_err());
    }

    #[test]
    fn info_without_a_layout_reads_as_sorted_by_time() {
        let mut json = serde_json::to_value(DataInfo {
            layout: Layout {
                event_order: Order::Type,
                event_row_group_rows: 10,
            },
            ..DataInfo::for_tests()
        })
        .unwrap();
        assert_eq!(json["layout"]["event_order"], "type");
        json.as_object_mut().unwrap().remove("layout");
        let info: DataInfo = serde_json::from_value(json).unwrap();
        assert_eq!(
            info.layout,
            Layout {
                event_order: Order::Time,
                event_row_group_rows: MAX_ROW_GROUP_ROWS,
            }
        );
    }

    #[test]
    fn labels() {
        assert_eq!(scale_label(1.0), "1");
        assert_eq!(scale_label(10.0), "10");
        assert_eq!(scale_label(0.1), "0.1");
        assert!(default_dir(10.0).ends_with("data/sf10"));
    }

    #[tokio::test]
    async fn generates_a_tiny_warehouse_once() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::default();
        let info = generate(0.01, &layout, dir.path(), false).await.unwrap();
        assert_eq!(info.profiles, 1_000);
        assert!(info.events > 0);
        assert_eq!(info.event_files, 365);
        // Second call: reused, not regenerated.
        let again = generate(0.01, &layout, dir.path(), false).await.unwrap();
        assert_eq!(again.generated_at, info.generated_at);
        // Another layout: generated again (the day files change), same rows.
        let day = dir
            .path()
            .join("demo/events/event_date=2026-11-01/part-00000.parquet");
        let by_type = std::fs::read(&day).unwrap();
        let by_time = Layout::by_time();
        assert_ne!(by_time, layout);
        let other = generate(0.01, &by_time, dir.path(), false).await.unwrap();
        assert_ne!(std::fs::read(&day).unwrap(), by_type);
        assert_eq!(other.layout, by_time);
        assert_eq!(read_info(dir.path()).unwrap().layout, by_time);
        assert_eq!((other.events, other.profiles), (info.events, info.profiles));
    }
}
