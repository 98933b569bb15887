//! `generate`: the benchmark warehouse at a scale factor, written by the
//! engine's own demo generator (`seglake_engine::demo`, streamed day by day
//! to Parquet), registered in the warehouse catalog so that `seglake serve`
//! can serve it as is.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use seglake_engine::demo::DemoOptions;
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
pub fn options(scale: f64) -> Result<DemoOptions> {
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
    Ok(DemoOptions {
        profiles,
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

/// Generates the warehouse of `scale` in `out` unless it is already there
/// (same scale and seed) or `force`.
pub async fn generate(scale: f64, out: &Path, force: bool) -> Result<DataInfo> {
    let opts = options(scale)?;
    if !force
        && let Some(info) = read_info(out)
        && info.profiles == opts.profiles
        && info.seed == opts.seed
        && info.days == opts.days
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
        assert_eq!(options(1.0).unwrap().profiles, 100_000);
        assert_eq!(options(100.0).unwrap().profiles, 10_000_000);
        assert_eq!(options(0.01).unwrap().profiles, 1_000);
        assert_eq!(options(1.0).unwrap().days, 365);
        assert!(options(0.0).is_err());
        assert!(options(f64::NAN).is_err());
        assert!(options(10_000.0).is_err());
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
        let info = generate(0.01, dir.path(), false).await.unwrap();
        assert_eq!(info.profiles, 1_000);
        assert!(info.events > 0);
        assert_eq!(info.event_files, 365);
        // Second call: reused, not regenerated.
        let again = generate(0.01, dir.path(), false).await.unwrap();
        assert_eq!(again.generated_at, info.generated_at);
    }
}
