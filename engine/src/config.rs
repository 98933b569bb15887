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
}

impl Default for SeglakeOptions {
    fn default() -> Self {
        Self {
            write_row_group_rows: 1024 * 1024,
        }
    }
}

const WRITE_ROW_GROUP_ROWS: &str = "write_row_group_rows";

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
            _ => Err(DataFusionError::Configuration(format!(
                "unknown setting '{prefix}.{key}' (Seglake's settings: {prefix}.{WRITE_ROW_GROUP_ROWS})"
            ))),
        }
    }

    fn entries(&self) -> Vec<ConfigEntry> {
        vec![ConfigEntry {
            key: format!("{}.{WRITE_ROW_GROUP_ROWS}", Self::PREFIX),
            value: Some(self.write_row_group_rows.to_string()),
            description: "Rows per Parquet row group in the files Seglake writes (managed tables, \
                          ingest, the collector, segment refreshes)",
        }]
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
    }
}
