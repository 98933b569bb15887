//! Confined locations: which paths and buckets statements may name.
//!
//! External tables, file destinations and the scans a worker is sent may
//! only reach the warehouse or a prefix the operator listed with
//! `--allow-location` (the server-level form of Unity Catalog's external
//! locations). Locations are normalised before they are compared, so `..`,
//! `file://`, repeated slashes and, on a local disk, symlinks cannot lead
//! out of an allowed prefix. The warehouse's own folders (`_seglake`, the
//! managed tables under `tables/`, any `_delta_log`) are never a location a
//! user names: registering them as an external table would read other
//! tables' files around their Delta log, and a file destination there would
//! corrupt them.

use std::path::{Component, Path as FsPath, PathBuf};

use url::Url;

use crate::{EngineError, Result};

/// The rule a refusal names (`docs/server.md`, "Confined locations").
pub(crate) const RULE: &str = "confined-locations";
/// The rule that keeps users out of the warehouse's own folders.
pub(crate) const INTERNAL_RULE: &str = "warehouse-internal";

/// Top-level folders of the warehouse that Seglake alone writes.
const INTERNAL_FOLDERS: [&str; 2] = ["_seglake", "tables"];

/// A normalised location: a local absolute path, or a bucket and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Place {
    /// Absolute, without `.`/`..`, symlinks of its existing part resolved.
    Local(PathBuf),
    /// `s3://bucket/key`: the key's non-empty segments.
    S3 { bucket: String, key: Vec<String> },
}

impl Place {
    /// Normalises an absolute URL (`file://`, `s3://`) or absolute path.
    pub(crate) fn parse(location: &str) -> Result<Self> {
        let bad = |why: &str| {
            EngineError::InvalidArgument(format!("location '{location}' is not valid: {why}"))
        };
        let location = location.trim();
        if location.starts_with('/') {
            return Ok(Self::Local(normalise_local(FsPath::new(location))));
        }
        let url = Url::parse(location).map_err(|e| bad(&e.to_string()))?;
        match url.scheme() {
            "file" => {
                if url
                    .host_str()
                    .is_some_and(|h| !h.is_empty() && h != "localhost")
                {
                    return Err(bad(
                        "a file:// URL names a path on this machine, not a host",
                    ));
                }
                let path = url
                    .to_file_path()
                    .map_err(|_| bad("not a local file URL"))?;
                Ok(Self::Local(normalise_local(&path)))
            }
            "s3" => {
                let bucket = url
                    .host_str()
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| bad("missing bucket name"))?
                    .to_string();
                let mut key = vec![];
                for segment in url.path().split('/').filter(|s| !s.is_empty()) {
                    // `url` already removes `.` and `..` segments; their
                    // percent-encoded forms are refused rather than guessed.
                    let decoded = percent_decode(segment);
                    if decoded == "." || decoded == ".." {
                        return Err(bad("'.' and '..' are not allowed in an S3 key"));
                    }
                    key.push(segment.to_string());
                }
                Ok(Self::S3 { bucket, key })
            }
            other => Err(bad(&format!(
                "unsupported scheme '{other}': use a path, file:// or s3://"
            ))),
        }
    }

    /// The URL of this place (`file:///...`, `s3://bucket/key`).
    pub(crate) fn url(&self) -> Result<String> {
        match self {
            Self::Local(path) => Url::from_file_path(path).map(String::from).map_err(|_| {
                EngineError::InvalidArgument(format!("'{}' is not a valid path", path.display()))
            }),
            Self::S3 { .. } => Ok(self.to_string()),
        }
    }

    /// Whether `self` is `prefix` or inside it (whole segments compared).
    pub(crate) fn is_within(&self, prefix: &Place) -> bool {
        match (self, prefix) {
            (Self::Local(p), Self::Local(prefix)) => p.starts_with(prefix),
            (
                Self::S3 { bucket, key },
                Self::S3 {
                    bucket: b,
                    key: prefix,
                },
            ) => bucket == b && key.starts_with(prefix),
            _ => false,
        }
    }

    /// Whether one of the two contains the other.
    fn overlaps(&self, other: &Place) -> bool {
        self.is_within(other) || other.is_within(self)
    }

    fn segments(&self) -> Vec<String> {
        match self {
            Self::Local(p) => p
                .components()
                .filter_map(|c| match c {
                    Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                    _ => None,
                })
                .collect(),
            Self::S3 { key, .. } => key.clone(),
        }
    }

    fn join(&self, part: &str) -> Place {
        match self {
            Self::Local(p) => Self::Local(p.join(part)),
            Self::S3 { bucket, key } => {
                let mut key = key.clone();
                key.push(part.to_string());
                Self::S3 {
                    bucket: bucket.clone(),
                    key,
                }
            }
        }
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local(p) => write!(f, "{}", p.display()),
            Self::S3 { bucket, key } => write!(f, "s3://{bucket}/{}", key.join("/")),
        }
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// An absolute path without `.`/`..` (resolved lexically, as the URL a
/// scan is given would be), then with the symlinks of its longest existing
/// ancestor resolved, so a link inside an allowed prefix that points out of
/// it is judged by where it points.
fn normalise_local(path: &FsPath) -> PathBuf {
    let mut lexical = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(s) => lexical.push(s),
            Component::ParentDir => {
                lexical.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    let mut existing = lexical.clone();
    let mut rest = vec![];
    loop {
        if let Ok(real) = existing.canonicalize() {
            let mut out = real;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return out;
        }
        match (
            existing.file_name().map(|n| n.to_os_string()),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return lexical,
        }
    }
}

/// Where statements may point: the warehouse and the allowed prefixes.
#[derive(Debug, Clone)]
pub(crate) struct Locations {
    warehouse: Place,
    allowed: Vec<Place>,
}

impl Locations {
    /// `warehouse`: the warehouse root URL; `allowed`: `--allow-location`
    /// prefixes (paths, `file://` or `s3://bucket/prefix` URLs).
    pub(crate) fn new(warehouse: &str, allowed: &[String]) -> Result<Self> {
        let allowed = allowed
            .iter()
            .map(|a| a.trim())
            .filter(|a| !a.is_empty())
            .map(|a| {
                if !(a.starts_with('/') || a.contains("://")) {
                    return Err(EngineError::InvalidArgument(format!(
                        "--allow-location '{a}' must be an absolute path or a file:// or s3:// URL"
                    )));
                }
                Place::parse(a)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            warehouse: Place::parse(warehouse)?,
            allowed,
        })
    }

    /// The normalised form of an absolute location, refused with
    /// PERMISSION_DENIED unless it is inside the warehouse or an allowed
    /// prefix. The warehouse's own folders pass: workers scan managed
    /// tables there.
    pub(crate) fn confine(&self, location: &str) -> Result<Place> {
        let place = Place::parse(location)?;
        if place.is_within(&self.warehouse) || self.allowed.iter().any(|a| place.is_within(a)) {
            Ok(place)
        } else {
            Err(EngineError::denied(
                RULE,
                format!(
                    "'{location}' is outside the warehouse and the locations this server \
                     allows (an operator adds one with --allow-location)"
                ),
            ))
        }
    }

    /// [`Locations::confine`], and not one of the warehouse's own folders
    /// (nor a folder holding one): what an external table or a file
    /// destination may name.
    pub(crate) fn confine_user(&self, location: &str) -> Result<Place> {
        let place = self.confine(location)?;
        let internal = INTERNAL_FOLDERS
            .iter()
            .map(|f| self.warehouse.join(f))
            .any(|folder| place.overlaps(&folder));
        if internal || place.segments().iter().any(|s| s == "_delta_log") {
            return Err(EngineError::denied(
                INTERNAL_RULE,
                format!(
                    "'{location}' is or holds the warehouse's own data (its catalog, managed \
                     tables or a Delta log): name a folder of your own files"
                ),
            ));
        }
        Ok(place)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(p: &str) -> Place {
        Place::Local(PathBuf::from(p))
    }

    #[test]
    fn paths_are_normalised() {
        // Paths that do not exist are only normalised lexically.
        let cases = [
            ("/nonexistent-seglake/a/../b", "/nonexistent-seglake/b"),
            ("/nonexistent-seglake//a///b/", "/nonexistent-seglake/a/b"),
            ("/nonexistent-seglake/./a", "/nonexistent-seglake/a"),
            ("file:///nonexistent-seglake/a/../../x", "/x"),
            (
                "file://localhost/nonexistent-seglake/a",
                "/nonexistent-seglake/a",
            ),
            ("/../../nonexistent-seglake", "/nonexistent-seglake"),
        ];
        for (given, want) in cases {
            assert_eq!(Place::parse(given).unwrap(), local(want), "{given}");
        }
        assert_eq!(
            Place::parse("s3://b/x//y/").unwrap(),
            Place::S3 {
                bucket: "b".into(),
                key: vec!["x".into(), "y".into()]
            }
        );
        // `url` resolves dot segments of s3:// URLs too.
        assert_eq!(
            Place::parse("s3://b/x/../../y").unwrap(),
            Place::S3 {
                bucket: "b".into(),
                key: vec!["y".into()]
            }
        );
        // Percent-encoded dots are dot segments too: never a way out.
        let encoded = Place::parse("s3://b/x/%2e%2e/%2E%2e/y").unwrap();
        assert_eq!(
            encoded,
            Place::S3 {
                bucket: "b".into(),
                key: vec!["y".into()]
            }
        );
        assert!(Place::parse("file://otherhost/etc").is_err());
        assert!(Place::parse("http://example.com/x").is_err());
        assert!(Place::parse("s3:///x").is_err());
    }

    #[test]
    fn prefixes_compare_whole_segments() {
        assert!(local("/data/a/b").is_within(&local("/data/a")));
        assert!(local("/data/a").is_within(&local("/data/a")));
        assert!(!local("/data/ab").is_within(&local("/data/a")));
        let s3 = |b: &str, k: &[&str]| Place::S3 {
            bucket: b.into(),
            key: k.iter().map(|s| s.to_string()).collect(),
        };
        assert!(s3("b", &["x", "y"]).is_within(&s3("b", &["x"])));
        assert!(!s3("b", &["xy"]).is_within(&s3("b", &["x"])));
        assert!(!s3("c", &["x"]).is_within(&s3("b", &["x"])));
        assert!(!s3("b", &["x"]).is_within(&local("/b/x")));
    }

    #[test]
    fn only_the_warehouse_and_allowed_prefixes_pass() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path().canonicalize().unwrap();
        let warehouse = root.join("wh");
        let shared = root.join("shared");
        let other = root.join("other");
        for d in [&warehouse, &shared, &other] {
            std::fs::create_dir_all(d).unwrap();
        }
        let locations = Locations::new(
            warehouse.to_str().unwrap(),
            &[
                shared.to_str().unwrap().to_string(),
                "s3://lake/marketing/".to_string(),
            ],
        )
        .unwrap();
        let ok = |l: &str| locations.confine_user(l).map(|p| p.to_string());
        let denied = |l: &str| match locations.confine_user(l) {
            Err(EngineError::PermissionDenied { rule, .. }) => rule,
            other => panic!("{l}: {other:?}"),
        };
        let w = warehouse.display();
        let s = shared.display();
        assert_eq!(
            ok(&format!("{w}/demo/profiles")).unwrap(),
            format!("{w}/demo/profiles")
        );
        assert_eq!(
            ok(&format!("file://{s}/x.parquet")).unwrap(),
            format!("{s}/x.parquet")
        );
        assert!(ok("s3://lake/marketing/events/").is_ok());
        assert_eq!(denied("s3://lake/marketingx/"), RULE);
        assert_eq!(denied("s3://lake/"), RULE);
        assert_eq!(denied("s3://other/marketing/"), RULE);
        assert_eq!(denied("/"), RULE);
        assert_eq!(denied("/etc"), RULE);
        assert_eq!(denied(&format!("{s}/../other")), RULE);
        assert_eq!(denied(&format!("file://{s}/../other/")), RULE);
        assert_eq!(denied(&other.display().to_string()), RULE);
        // The warehouse's own folders, and folders holding them.
        assert_eq!(denied(&w.to_string()), INTERNAL_RULE);
        assert_eq!(denied(&format!("{w}/_seglake/catalog")), INTERNAL_RULE);
        assert_eq!(denied(&format!("{w}/tables/public/t/1")), INTERNAL_RULE);
        assert_eq!(denied(&format!("{w}/demo/x/_delta_log")), INTERNAL_RULE);
        // ... which workers still scan.
        assert!(locations.confine(&format!("{w}/tables/public/t/1")).is_ok());
        // A symlink inside an allowed prefix pointing out of it.
        std::os::unix::fs::symlink(&other, shared.join("link")).unwrap();
        assert_eq!(denied(&format!("{s}/link/")), RULE);
        assert_eq!(denied(&format!("{s}/link/sub/x.parquet")), RULE);
        // A symlink pointing into the warehouse's catalog.
        std::os::unix::fs::symlink(warehouse.join("_seglake"), shared.join("cat")).unwrap();
        std::fs::create_dir_all(warehouse.join("_seglake")).unwrap();
        assert_eq!(denied(&format!("{s}/cat")), INTERNAL_RULE);
        assert!(Locations::new(w.to_string().as_str(), &["relative/dir".into()]).is_err());
    }
}
