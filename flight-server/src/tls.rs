//! TLS of Seglake's listeners (Flight SQL, the HTTP collector, workers)
//! and of the coordinator's links to workers: PEM files read and checked
//! once at start (a certificate is rotated by restarting), rustls with the
//! ring provider.
//!
//! Errors name the file and the flag, never the file's content: a key file
//! printed in a log is a leaked key.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};
use std::time::Duration;

use seglake_engine::distributed::ClusterTls;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use crate::error::{Result, ServerError};

/// A client that has not finished its TLS handshake within this time is
/// dropped (it would hold a connection slot forever otherwise).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Installs ring as the process's rustls provider. ring and aws-lc-rs are
/// both in the dependency tree (delta-rs' HTTP client brings aws-lc-rs), so
/// rustls cannot pick a default by itself and tonic's server configuration
/// (`ServerConfig::builder()`) would panic. Called once at start and before
/// any server TLS configuration is built; later calls do nothing.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err: a provider is already installed (by an embedding program).
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn config_error(message: String) -> ServerError {
    ServerError::Config(message)
}

/// Reads a PEM file given by `flag`.
fn read_pem(path: &Path, flag: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        config_error(format!(
            "cannot read the {flag} file {}: {e}",
            path.display()
        ))
    })
}

/// The certificates of a PEM file (at least one).
fn certificates(pem: &[u8], path: &Path, flag: &str) -> Result<Vec<CertificateDer<'static>>> {
    // The parser's error may quote a line of the file: not shown.
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| {
            config_error(format!(
                "the {flag} file {} is not valid PEM",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(config_error(format!(
            "the {flag} file {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
fn private_key(pem: &[u8], path: &Path, flag: &str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| {
        config_error(match e {
            pem::Error::NoItemsFound => format!(
                "the {flag} file {} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)",
                path.display()
            ),
            _ => format!(
                "the {flag} file {} is not a valid PEM private key",
                path.display()
            ),
        })
    })
}

/// The trust anchors of a CA file, checked to be usable.
fn roots(pem: &[u8], path: &Path, flag: &str) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(pem, path, flag)? {
        roots.add(cert).map_err(|e| {
            config_error(format!(
                "the {flag} file {} holds a certificate that cannot be a CA: {e}",
                path.display()
            ))
        })?;
    }
    Ok(roots)
}

/// Both or neither of a certificate and its key.
fn pair<'a>(
    cert: Option<&'a Path>,
    key: Option<&'a Path>,
    cert_flag: &str,
    key_flag: &str,
) -> Result<Option<(&'a Path, &'a Path)>> {
    match (cert, key) {
        (Some(c), Some(k)) => Ok(Some((c, k))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(config_error(format!(
            "{cert_flag} needs {key_flag} (the certificate's private key)"
        ))),
        (None, Some(_)) => Err(config_error(format!(
            "{key_flag} needs {cert_flag} (the certificate it belongs to)"
        ))),
    }
}

/// A listener's certificate and key (and, on workers, the CA client
/// certificates must be signed by), loaded and checked.
#[derive(Clone)]
pub struct ServerTls {
    inner: Arc<Loaded>,
}

struct Loaded {
    cert_file: PathBuf,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    client_ca_pem: Option<Vec<u8>>,
    /// The same identity for HTTP/1.1 (the collector).
    http: Arc<ServerConfig>,
}

// The key stays out of logs and errors.
impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert_file", &self.inner.cert_file)
            .field("client_ca", &self.inner.client_ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// `--tls-cert`/`--tls-key` (and `--tls-client-ca`): `None` without
    /// any, an error naming the flag when one of the pair is missing.
    pub fn from_flags(
        cert: Option<&Path>,
        key: Option<&Path>,
        client_ca: Option<&Path>,
    ) -> Result<Option<Self>> {
        match pair(cert, key, "--tls-cert", "--tls-key")? {
            Some((cert, key)) => Self::load(cert, key, client_ca).map(Some),
            None if client_ca.is_some() => Err(config_error(
                "--tls-client-ca needs --tls-cert and --tls-key (client certificates are only \
                 asked for over TLS)"
                    .into(),
            )),
            None => Ok(None),
        }
    }

    /// Reads and checks a certificate chain (the server's certificate
    /// first), its private key and optionally a client CA.
    pub fn load(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<Self> {
        install_crypto_provider();
        let cert_pem = read_pem(cert, "--tls-cert")?;
        let key_pem = read_pem(key, "--tls-key")?;
        let chain = certificates(&cert_pem, cert, "--tls-cert")?;
        let private = private_key(&key_pem, key, "--tls-key")?;
        let client_ca_pem = match client_ca {
            Some(path) => {
                let pem = read_pem(path, "--tls-client-ca")?;
                let roots = roots(&pem, path, "--tls-client-ca")?;
                // The verifier tonic builds from the same file.
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                    .build()
                    .map_err(|e| {
                        config_error(format!(
                            "the --tls-client-ca file {} cannot verify clients: {e}",
                            path.display()
                        ))
                    })?;
                Some(pem)
            }
            None => None,
        };
        // Builds the configuration the listeners use: the key must match
        // the certificate, and be of a kind rustls signs with.
        let mut http = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| config_error(format!("TLS: {e}")))?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| {
                config_error(format!(
                    "the --tls-key file {} does not fit the --tls-cert file {}: {e}",
                    key.display(),
                    cert.display()
                ))
            })?;
        http.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            inner: Arc::new(Loaded {
                cert_file: cert.to_path_buf(),
                cert_pem,
                key_pem,
                client_ca_pem,
                http: Arc::new(http),
            }),
        })
    }

    /// Whether clients must present a certificate (`--tls-client-ca`).
    pub fn requires_client_certificates(&self) -> bool {
        self.inner.client_ca_pem.is_some()
    }

    /// The configuration of a gRPC listener (Flight SQL, a worker).
    pub fn grpc(&self) -> ServerTlsConfig {
        let config = ServerTlsConfig::new()
            .identity(Identity::from_pem(
                &self.inner.cert_pem,
                &self.inner.key_pem,
            ))
            .timeout(HANDSHAKE_TIMEOUT);
        match &self.inner.client_ca_pem {
            Some(ca) => config.client_ca_root(Certificate::from_pem(ca)),
            None => config,
        }
    }

    /// The acceptor of an HTTP/1.1 listener (the collector).
    pub(crate) fn http_acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(&self.inner.http))
    }
}

/// `tonic::transport::Server::builder()`, serving TLS when `tls` is given.
pub(crate) fn grpc_server(tls: Option<&ServerTls>) -> Result<tonic::transport::Server> {
    let builder = tonic::transport::Server::builder();
    match tls {
        Some(tls) => Ok(builder.tls_config(tls.grpc())?),
        None => Ok(builder),
    }
}

/// `--cluster-ca`, `--cluster-client-cert`/`--cluster-client-key` and
/// `--cluster-tls-name`: how the coordinator (and a worker calling another)
/// verifies `https://` workers and what it presents to them.
pub fn cluster_tls(
    ca: Option<&Path>,
    client_cert: Option<&Path>,
    client_key: Option<&Path>,
    server_name: Option<&str>,
) -> Result<ClusterTls> {
    let ca_pem = match ca {
        Some(path) => {
            let pem = read_pem(path, "--cluster-ca")?;
            roots(&pem, path, "--cluster-ca")?;
            Some(pem)
        }
        None => None,
    };
    let identity = match pair(
        client_cert,
        client_key,
        "--cluster-client-cert",
        "--cluster-client-key",
    )? {
        Some((cert, key)) => {
            let cert_pem = read_pem(cert, "--cluster-client-cert")?;
            let key_pem = read_pem(key, "--cluster-client-key")?;
            let chain = certificates(&cert_pem, cert, "--cluster-client-cert")?;
            let private = private_key(&key_pem, key, "--cluster-client-key")?;
            rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| config_error(format!("TLS: {e}")))?
                .with_root_certificates(RootCertStore::empty())
                .with_client_auth_cert(chain, private)
                .map_err(|e| {
                    config_error(format!(
                        "the --cluster-client-key file {} does not fit the --cluster-client-cert \
                         file {}: {e}",
                        key.display(),
                        cert.display()
                    ))
                })?;
            Some((cert_pem, key_pem))
        }
        None => None,
    };
    let server_name = server_name.map(str::trim).filter(|n| !n.is_empty());
    if let Some(name) = server_name {
        rustls::pki_types::ServerName::try_from(name).map_err(|_| {
            config_error(format!(
                "--cluster-tls-name '{name}' is not a DNS name or an IP address"
            ))
        })?;
    }
    Ok(ClusterTls {
        ca_pem,
        identity,
        server_name: server_name.map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CA, a server certificate it signed (for 127.0.0.1) and that
    /// certificate's key, as PEM files in `dir`; generated here, never
    /// committed.
    struct Files {
        _dir: tempfile::TempDir,
        ca: PathBuf,
        cert: PathBuf,
        key: PathBuf,
        other_key: PathBuf,
    }

    fn files() -> Files {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let other_key = rcgen::KeyPair::generate().unwrap();
        let path = |name: &str| dir.path().join(name);
        std::fs::write(path("ca.pem"), ca.pem()).unwrap();
        std::fs::write(path("cert.pem"), cert.pem()).unwrap();
        std::fs::write(path("key.pem"), key.serialize_pem()).unwrap();
        std::fs::write(path("other.key"), other_key.serialize_pem()).unwrap();
        Files {
            ca: path("ca.pem"),
            cert: path("cert.pem"),
            key: path("key.pem"),
            other_key: path("other.key"),
            _dir: dir,
        }
    }

    fn config_message(r: Result<impl std::fmt::Debug>) -> String {
        match r {
            Err(ServerError::Config(m)) => m,
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn a_certificate_and_its_key_load() {
        let f = files();
        let tls = ServerTls::from_flags(Some(&f.cert), Some(&f.key), None)
            .unwrap()
            .expect("TLS on");
        assert!(!tls.requires_client_certificates());
        tls.grpc();
        let tls = ServerTls::from_flags(Some(&f.cert), Some(&f.key), Some(&f.ca))
            .unwrap()
            .unwrap();
        assert!(tls.requires_client_certificates());
        // Neither: plain.
        assert!(ServerTls::from_flags(None, None, None).unwrap().is_none());
    }

    #[test]
    fn one_of_the_pair_alone_is_refused() {
        let f = files();
        let m = config_message(ServerTls::from_flags(Some(&f.cert), None, None));
        assert!(m.contains("--tls-cert needs --tls-key"), "{m}");
        let m = config_message(ServerTls::from_flags(None, Some(&f.key), None));
        assert!(m.contains("--tls-key needs --tls-cert"), "{m}");
        let m = config_message(ServerTls::from_flags(None, None, Some(&f.ca)));
        assert!(m.contains("--tls-client-ca needs --tls-cert"), "{m}");
        let m = config_message(cluster_tls(None, Some(&f.cert), None, None));
        assert!(
            m.contains("--cluster-client-cert needs --cluster-client-key"),
            "{m}"
        );
    }

    #[test]
    fn a_bad_file_is_named_never_printed() {
        let f = files();
        let dir = tempfile::tempdir().unwrap();
        let marker = "c2VjcmV0LWtleS1tYXRlcmlhbA";
        let bad = dir.path().join("bad.pem");
        std::fs::write(
            &bad,
            format!("-----BEGIN PRIVATE KEY-----\n{marker}!!\n-----END PRIVATE KEY-----\n"),
        )
        .unwrap();
        let m = config_message(ServerTls::load(&f.cert, &bad, None));
        assert!(
            m.contains("--tls-key") && m.contains(&*bad.to_string_lossy()),
            "{m}"
        );
        assert!(!m.contains(marker), "{m}");
        // A key where the certificate belongs: no certificate in it.
        let m = config_message(ServerTls::load(&f.key, &f.key, None));
        assert!(
            m.contains("--tls-cert") && m.contains("no PEM certificate"),
            "{m}"
        );
        assert!(!m.contains("PRIVATE KEY-----"), "{m}");
        // Not PEM at all.
        std::fs::write(&bad, format!("{marker}\n")).unwrap();
        let m = config_message(ServerTls::load(&f.cert, &bad, None));
        assert!(m.contains("holds no PEM private key"), "{m}");
        assert!(!m.contains(marker), "{m}");
        // Missing.
        let missing = dir.path().join("missing.pem");
        let m = config_message(ServerTls::load(&missing, &f.key, None));
        assert!(
            m.contains("cannot read the --tls-cert file") && m.contains("missing.pem"),
            "{m}"
        );
        let m = config_message(cluster_tls(Some(&f.key), None, None, None));
        assert!(
            m.contains("--cluster-ca") && m.contains("no PEM certificate"),
            "{m}"
        );
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let f = files();
        let m = config_message(ServerTls::load(&f.cert, &f.other_key, None));
        assert!(m.contains("does not fit"), "{m}");
        let m = config_message(cluster_tls(None, Some(&f.cert), Some(&f.other_key), None));
        assert!(m.contains("does not fit"), "{m}");
    }

    #[test]
    fn cluster_tls_files_load() {
        let f = files();
        let tls = cluster_tls(Some(&f.ca), Some(&f.cert), Some(&f.key), Some(" workers ")).unwrap();
        assert!(tls.ca_pem.is_some() && tls.identity.is_some());
        assert_eq!(tls.server_name.as_deref(), Some("workers"));
        assert!(!format!("{tls:?}").contains("PRIVATE"));
        let m = config_message(cluster_tls(None, None, None, Some("not a name!")));
        assert!(m.contains("--cluster-tls-name"), "{m}");
        let none = cluster_tls(None, None, None, None).unwrap();
        assert!(none.ca_pem.is_none() && none.identity.is_none() && none.server_name.is_none());
    }
}
