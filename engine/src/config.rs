//! Seglake's settings (`seglake.*`): a DataFusion [`ConfigExtension`], so
//! they are listed by `SHOW ALL` / `information_schema.df_settings`, set per
//! session with `SET seglake.<name> = <value>` or Flight SQL session
//! options, and given server-wide defaults with `--datafusion-config`.
//!
//! Adding a setting: a field below with its doc comment and default, its
//! arm in `set` and its entry in `entries`, read where it applies with
//! [`SeglakeOptions::of`], and a row in docs/sql.md ("Session settings").

use std::any::Any;

use datafusion::config::{ConfigEntry, ConfigExtension, ConfigOptions, ExtensionOptions};
use datafusion::error::{DataFusionError, Result};

/// Seglake's own settings. Written by hand rather than with DataFusion's
/// `extensions_options!`, whose entries drop the prefix: `SHOW ALL` must
/// list `seglake.write_row_group_rows`, the name `SET` takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeglakeOptions {
    /// Rows per Parquet row group in the files Seglake writes (managed
    /// tables: CREATE TABLE AS, INSERT, UPDATE, MERGE, ingest, the
    /// collector, segment refreshes). Smaller groups let more cores scan a
    /// small file and prune finer; larger ones compress better.
    pub write_row_group_rows: usize,
    /// Longest a statement of the session may run; the server's
    /// `--statement-timeout-secs` caps it (`None`: the server's).
    pub statement_timeout: Option<std::time::Duration>,
}

impl Default for SeglakeOptions {
    fn default() -> Self {
        Self {
            write_row_group_rows: 1024 * 1024,
            statement_timeout: None,
        }
    }
}

const WRITE_ROW_GROUP_ROWS: &str = "write_row_group_rows";
const STATEMENT_TIMEOUT: &str = "statement_timeout";

/// `500ms`, `30s`, `5min`, `2h`, or a number of seconds.
fn parse_duration(value: &str) -> Option<std::time::Duration> {
    let v = value.trim().to_ascii_lowercase();
    let split = v
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let n: f64 = number
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n > 0.0)?;
    let seconds = match unit.trim() {
        "" | "s" | "sec" | "secs" | "second" | "seconds" => n,
        "ms" => n / 1000.0,
        "m" | "min" | "mins" | "minute" | "minutes" => n * 60.0,
        "h" | "hour" | "hours" => n * 3600.0,
        _ => return None,
    };
    (0.001..1e9)
        .contains(&seconds)
        .then(|| std::time::Duration::from_secs_f64(seconds))
}

impl ConfigExtension for SeglakeOptions {
    const PREFIX: &'static str = "seglake";
}

impl ExtensionOptions for SeglakeOptions {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }

    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let prefix = Self::PREFIX;
        match key {
            WRITE_ROW_GROUP_ROWS => {
                self.write_row_group_rows = value
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                    DataFusionError::Configuration(format!(
                        "{prefix}.{key} takes a positive number of rows, got '{value}'"
                    ))
                })?;
                Ok(())
            }
            STATEMENT_TIMEOUT => {
                self.statement_timeout = Some(parse_duration(value).ok_or_else(|| {
                    DataFusionError::Configuration(format!(
                        "{prefix}.{key} takes a duration such as '30s', '5min' or '500ms', got '{value}'"
                    ))
                })?);
                Ok(())
            }
            _ => Err(DataFusionError::Configuration(format!(
                "unknown setting '{prefix}.{key}' (Seglake's settings: {prefix}.{WRITE_ROW_GROUP_ROWS}, \
                 {prefix}.{STATEMENT_TIMEOUT})"
            ))),
        }
    }

    fn entries(&self) -> Vec<ConfigEntry> {
        vec![
            ConfigEntry {
                key: format!("{}.{WRITE_ROW_GROUP_ROWS}", Self::PREFIX),
                value: Some(self.write_row_group_rows.to_string()),
                description: "Rows per Parquet row group in the files Seglake writes (managed tables, \
                          ingest, the collector, segment refreshes)",
            },
            ConfigEntry {
                key: format!("{}.{STATEMENT_TIMEOUT}", Self::PREFIX),
                value: self
                    .statement_timeout
                    .map(|d| format!("{}ms", d.as_millis())),
                description: "Longest a statement may run ('30s', '5min'); the server's \
                          --statement-timeout-secs caps it (unset: the server's)",
            },
        ]
    }
}

impl SeglakeOptions {
    /// The settings of a session's (or statement's) configuration.
    pub fn of(options: &ConfigOptions) -> Self {
        options
            .extensions
            .get::<Self>()
            .cloned()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionConfig;

    use super::*;

    #[test]
    fn settable_and_listed() {
        let mut config = SessionConfig::new().with_option_extension(SeglakeOptions::default());
        assert_eq!(
            SeglakeOptions::of(config.options()).write_row_group_rows,
            1 << 20
        );
        config
            .options_mut()
            .set("seglake.write_row_group_rows", "1000")
            .unwrap();
        assert_eq!(
            SeglakeOptions::of(config.options()).write_row_group_rows,
            1000
        );
        for bad in ["many", "0", "-1"] {
            assert!(
                config
                    .options_mut()
                    .set("seglake.write_row_group_rows", bad)
                    .is_err()
            );
        }
        assert_eq!(
            SeglakeOptions::of(config.options()).write_row_group_rows,
            1000
        );
        assert!(config.options_mut().set("seglake.no_such", "1").is_err());
        let listed: Vec<String> = config
            .options()
            .entries()
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert!(listed.contains(&"seglake.write_row_group_rows".to_string()));
        assert!(listed.contains(&"seglake.statement_timeout".to_string()));
    }

    #[test]
    fn durations() {
        let d = |s: &str| parse_duration(s).map(|d| d.as_millis());
        assert_eq!(d("30s"), Some(30_000));
        assert_eq!(d("30"), Some(30_000));
        assert_eq!(d(" 5min "), Some(300_000));
        assert_eq!(d("2h"), Some(7_200_000));
        assert_eq!(d("500ms"), Some(500));
        assert_eq!(d("1.5s"), Some(1_500));
        for bad in ["", "0", "-1s", "soon", "5 parsecs", "nan", "inf"] {
            assert_eq!(d(bad), None, "{bad}");
        }
    }
}
