//! The warehouse: one object store and a root prefix inside it.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use url::Url;

use crate::{CatalogError, Result};

/// S3 settings. Every field is optional: unset fields come from the usual
/// `AWS_*` environment variables (`AWS_ENDPOINT`, `AWS_REGION`,
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP`, ...).
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub allow_http: Option<bool>,
}

impl S3Options {
    /// A store for `bucket` with these options layered over the environment.
    pub fn build(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>> {
        let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
        let opts = [
            (AmazonS3ConfigKey::Endpoint, self.endpoint.clone()),
            (AmazonS3ConfigKey::Region, self.region.clone()),
            (AmazonS3ConfigKey::AccessKeyId, self.access_key_id.clone()),
            (
                AmazonS3ConfigKey::SecretAccessKey,
                self.secret_access_key.clone(),
            ),
            (
                AmazonS3ConfigKey::Client(object_store::ClientConfigKey::AllowHttp),
                self.allow_http.map(|b| b.to_string()),
            ),
        ];
        for (k, v) in opts {
            if let Some(v) = v {
                b = b.with_config(k, v);
            }
        }
        // An endpoint of the form http://host:port serves buckets by path, as
        // S3-compatible servers (moto, MinIO, s3s) expect.
        if self.endpoint.is_some() || std::env::var_os("AWS_ENDPOINT").is_some() {
            b = b.with_virtual_hosted_style_request(false);
        }
        let store = b
            .build()
            .map_err(|e| CatalogError::InvalidLocation(format!("s3://{bucket}"), e.to_string()))?;
        Ok(Arc::new(store))
    }
}

/// Where the warehouse is and how to reach it.
///
/// For a local warehouse the store is the whole local filesystem (registered
/// under `file:///`) and [`Warehouse::root`] is the absolute directory; for
/// S3 the store is the bucket (`s3://bucket`) and the root is the prefix.
#[derive(Debug, Clone)]
pub struct Warehouse {
    /// `file:///` or `s3://bucket/`: the URL the store is registered under.
    store_url: Url,
    store: Arc<dyn ObjectStore>,
    root: Path,
    s3: S3Options,
}

impl Warehouse {
    /// Opens a warehouse given as a local path, a `file://` URL or an
    /// `s3://bucket/prefix` URL. A local directory is created if missing.
    pub fn open(location: &str, s3: &S3Options) -> Result<Self> {
        let invalid = |m: &str| CatalogError::InvalidLocation(location.to_string(), m.to_string());
        if let Some(rest) = location.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(invalid("missing bucket name"));
            }
            let store = s3.build(bucket)?;
            return Ok(Self {
                store_url: Url::parse(&format!("s3://{bucket}/"))
                    .map_err(|e| invalid(&e.to_string()))?,
                store,
                root: Path::parse(prefix.trim_matches('/')).map_err(|e| invalid(&e.to_string()))?,
                s3: s3.clone(),
            });
        }
        let dir: PathBuf = if location.starts_with("file://") {
            Url::parse(location)
                .map_err(|e| invalid(&e.to_string()))?
                .to_file_path()
                .map_err(|_| invalid("not a local file URL"))?
        } else if location.contains("://") {
            return Err(invalid(
                "only local paths, file:// and s3:// URLs are supported",
            ));
        } else {
            PathBuf::from(location)
        };
        std::fs::create_dir_all(&dir).map_err(|e| invalid(&e.to_string()))?;
        let dir = dir.canonicalize().map_err(|e| invalid(&e.to_string()))?;
        Ok(Self {
            store_url: Url::parse("file:///").expect("valid URL"),
            store: Arc::new(LocalFileSystem::new()),
            root: Path::from_absolute_path(&dir).map_err(|e| invalid(&e.to_string()))?,
            s3: s3.clone(),
        })
    }

    pub fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.store)
    }

    /// The URL under which [`Warehouse::store`] must be registered with a
    /// query engine (`file:///` or `s3://bucket/`).
    pub fn store_url(&self) -> &Url {
        &self.store_url
    }

    /// The warehouse root inside the store.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn s3_options(&self) -> &S3Options {
        &self.s3
    }

    /// `root/<parts...>`.
    pub fn path(&self, parts: &[&str]) -> Path {
        let mut p = self.root.clone();
        for part in parts {
            p = p.join(*part);
        }
        p
    }

    /// The absolute URL of a path of the store, as a directory (ends with `/`).
    pub fn dir_url(&self, path: &Path) -> String {
        let mut s = format!("{}{}", self.store_url, path);
        if !s.ends_with('/') {
            s.push('/');
        }
        s
    }

    /// The absolute URL of the warehouse root.
    pub fn url(&self) -> String {
        self.dir_url(&self.root)
    }

    /// Resolves a table location given by a user: an absolute URL
    /// (`s3://...`, `file:///...`), an absolute local path, or a path
    /// relative to the warehouse root. The result ends with `/`.
    pub fn resolve_location(&self, location: &str) -> Result<String> {
        let invalid = |m: &str| CatalogError::InvalidLocation(location.to_string(), m.to_string());
        let location = location.trim();
        if location.is_empty() {
            return Err(invalid("empty location"));
        }
        let mut url = if location.contains("://") {
            Url::parse(location)
                .map_err(|e| invalid(&e.to_string()))?
                .to_string()
        } else if location.starts_with('/') {
            Url::from_directory_path(location)
                .map_err(|_| invalid("not an absolute path"))?
                .to_string()
        } else {
            if location.split(['/', '\\']).any(|part| part == "..") {
                return Err(invalid("'..' is not allowed in a relative location"));
            }
            let rel =
                Path::parse(location.trim_matches('/')).map_err(|e| invalid(&e.to_string()))?;
            let mut p = self.root.clone();
            for part in rel.parts() {
                p = p.join(part);
            }
            self.dir_url(&p)
        };
        if !url.ends_with('/') {
            url.push('/');
        }
        Ok(url)
    }

    /// If `url` is inside this warehouse's store, its path in the store.
    pub fn path_in_store(&self, url: &str) -> Option<Path> {
        let rest = url.strip_prefix(self.store_url.as_str())?;
        Path::parse(rest.trim_end_matches('/')).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths() {
        let dir = tempfile::tempdir().unwrap();
        let wh_dir = dir.path().join("wh");
        let w = Warehouse::open(wh_dir.to_str().unwrap(), &S3Options::default()).unwrap();
        assert!(wh_dir.is_dir(), "a missing local warehouse is created");
        let canon = wh_dir.canonicalize().unwrap();
        assert_eq!(w.url(), format!("file://{}/", canon.display()));
        assert_eq!(
            w.resolve_location("demo/events").unwrap(),
            format!("file://{}/demo/events/", canon.display())
        );
        assert_eq!(w.resolve_location("/data/x").unwrap(), "file:///data/x/");
        assert_eq!(w.resolve_location("s3://b/k").unwrap(), "s3://b/k/");
        assert!(w.resolve_location("../etc").is_err());
        assert_eq!(
            w.path_in_store(&w.resolve_location("demo/events").unwrap())
                .unwrap(),
            w.path(&["demo", "events"])
        );
        let w2 = Warehouse::open(
            &format!("file://{}", canon.display()),
            &S3Options::default(),
        )
        .unwrap();
        assert_eq!(w2.url(), w.url());
        assert!(Warehouse::open("gs://x", &S3Options::default()).is_err());
    }

    #[test]
    fn s3_urls() {
        let opts = S3Options {
            endpoint: Some("http://127.0.0.1:1".into()),
            region: Some("us-east-1".into()),
            access_key_id: Some("k".into()),
            secret_access_key: Some("s".into()),
            allow_http: Some(true),
        };
        let w = Warehouse::open("s3://bucket/some/prefix/", &opts).unwrap();
        assert_eq!(w.store_url().as_str(), "s3://bucket/");
        assert_eq!(w.url(), "s3://bucket/some/prefix/");
        assert_eq!(
            w.resolve_location("t").unwrap(),
            "s3://bucket/some/prefix/t/"
        );
        assert!(Warehouse::open("s3:///x", &opts).is_err());
    }
}
