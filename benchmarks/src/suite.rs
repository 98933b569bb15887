//! The segment suite: SQL files under `benchmarks/queries/`.
//!
//! Each `NAME.sql` starts with a `-- title: ...` line, optionally followed by
//! `-- duckdb: ...` (how DuckDB runs it, e.g. which macro stands in for a
//! Seglake function). DuckDB runs the same text unless
//! `queries/duckdb/NAME.sql` holds a variant. `queries/duckdb_macros.sql`
//! defines plain-SQL equivalents of Seglake's functions for DuckDB.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{BenchError, IoContext, Result};

/// One query of the suite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Query {
    /// File stem, e.g. `q01_attribute_filter`.
    pub name: String,
    pub title: String,
    /// SQL for Seglake.
    pub sql: String,
    /// SQL for DuckDB.
    pub duckdb_sql: String,
    /// How DuckDB runs it, when not the same text.
    pub duckdb_note: Option<String>,
}

impl Query {
    /// The short id (`q01`) of the name.
    pub fn id(&self) -> &str {
        self.name.split('_').next().unwrap_or(&self.name)
    }
}

/// The default query directory (`benchmarks/queries`).
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("queries")
}

/// Parses the header of a query file: `(title, duckdb note, sql)`.
pub fn parse(path: &Path, text: &str) -> Result<(String, Option<String>, String)> {
    let mut title = None;
    let mut note = None;
    let mut body = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(t) = trimmed.strip_prefix("-- title:") {
            title = Some(t.trim().to_string());
        } else if let Some(n) = trimmed.strip_prefix("-- duckdb:") {
            note = Some(n.trim().to_string());
        } else {
            body.push(line);
        }
    }
    let sql = body
        .join("\n")
        .trim()
        .trim_end_matches(';')
        .trim()
        .to_string();
    let title = title.ok_or_else(|| BenchError::QueryFile {
        path: path.to_path_buf(),
        reason: "missing '-- title:' line".into(),
    })?;
    if sql.is_empty() {
        return Err(BenchError::QueryFile {
            path: path.to_path_buf(),
            reason: "no SQL".into(),
        });
    }
    Ok((title, note, sql))
}

/// Loads the suite from `dir`, sorted by name, keeping only `only` when
/// given (names or ids such as `q09`).
pub fn load(dir: &Path, only: &[String]) -> Result<Vec<Query>> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).at(dir)?;
    for entry in entries {
        let path = entry.at(dir)?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("sql") {
            continue;
        }
        let Some(name) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        if name == "duckdb_macros" {
            continue;
        }
        let text = std::fs::read_to_string(&path).at(&path)?;
        let (title, duckdb_note, sql) = parse(&path, &text)?;
        let variant = dir.join("duckdb").join(format!("{name}.sql"));
        let duckdb_sql = if variant.exists() {
            let text = std::fs::read_to_string(&variant).at(&variant)?;
            parse(&variant, &text)?.2
        } else {
            sql.clone()
        };
        out.push(Query {
            name,
            title,
            sql,
            duckdb_sql,
            duckdb_note,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    if !only.is_empty() {
        out.retain(|q| only.iter().any(|o| o == &q.name || o == q.id()));
        if out.len() != only.len() {
            return Err(BenchError::InvalidArgument(format!(
                "unknown query in {only:?}"
            )));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_header_and_body() {
        let (title, note, sql) = parse(
            Path::new("q.sql"),
            "-- title: A query\n-- duckdb: macro x\nSELECT 1\nFROM t;\n",
        )
        .unwrap();
        assert_eq!(title, "A query");
        assert_eq!(note.as_deref(), Some("macro x"));
        assert_eq!(sql, "SELECT 1\nFROM t");
    }

    #[test]
    fn missing_title_is_an_error() {
        assert!(parse(Path::new("q.sql"), "SELECT 1").is_err());
        assert!(parse(Path::new("q.sql"), "-- title: t\n").is_err());
    }

    #[test]
    fn the_shipped_suite_loads() {
        let suite = load(&default_dir(), &[]).unwrap();
        assert!(suite.len() >= 10, "{} queries", suite.len());
        let q09 = load(&default_dir(), &["q09".into()]).unwrap();
        assert_eq!(q09.len(), 1);
        assert!(q09[0].name.starts_with("q09_"));
        assert!(load(&default_dir(), &["nope".into()]).is_err());
    }
}
