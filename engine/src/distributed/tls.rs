//! TLS of the links to workers: the coordinator's calls and, inside a
//! query, a worker's calls to the workers of the stage before (both use
//! [`super::Channels`]). A worker address with `https://` is reached over
//! TLS; `http://` stays plain.

use std::time::Duration;

use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// How `https://` workers are verified and what a caller presents to them.
/// The PEM files behind it are read once at start (`seglake serve` and
/// `seglake worker` read `--cluster-ca`, `--cluster-client-cert` and
/// `--cluster-client-key`): certificates are rotated by restarting.
#[derive(Clone, Default)]
pub struct ClusterTls {
    /// CA certificates (PEM) a worker's certificate must chain to
    /// (`--cluster-ca`). Without them, the system's trusted roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Certificate chain and private key (PEM) presented to workers that
    /// require a client certificate (`--tls-client-ca` on the worker).
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// The name every worker's certificate is checked against
    /// (`--cluster-tls-name`). Without it: the host name of the `--workers`
    /// address a worker was resolved from, or the address itself (a
    /// certificate with that IP address) when none is known, as on a worker
    /// calling another.
    pub server_name: Option<String>,
}

// Never print the private key.
impl std::fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterTls")
            .field("ca", &self.ca_pem.is_some())
            .field("client_identity", &self.identity.is_some())
            .field("server_name", &self.server_name)
            .finish()
    }
}

impl ClusterTls {
    /// The client configuration for a worker whose certificate must name
    /// `host` (unless [`ClusterTls::server_name`] says otherwise).
    pub(crate) fn client_config(&self, host: &str, handshake_timeout: Duration) -> ClientTlsConfig {
        let name = self.server_name.as_deref().unwrap_or(host);
        // An IPv6 host comes bracketed from a URL; certificates name the bare address.
        let name = name.trim_start_matches('[').trim_end_matches(']');
        let config = ClientTlsConfig::new()
            .domain_name(name)
            .timeout(handshake_timeout);
        let config = match &self.ca_pem {
            Some(ca) => config.ca_certificate(Certificate::from_pem(ca)),
            None => config.with_native_roots(),
        };
        match &self.identity {
            Some((cert, key)) => config.identity(Identity::from_pem(cert, key)),
            None => config,
        }
    }
}

#[cfg(test)]
mod tests {
    use url::Url;

    use super::super::{Channels, parse_worker_address};

    #[test]
    fn https_worker_addresses_keep_their_scheme() {
        assert_eq!(
            parse_worker_address("https://workers.seglake:7000")
                .unwrap()
                .as_str(),
            "https://workers.seglake:7000/"
        );
        // No scheme: plain, as before TLS existed.
        assert_eq!(
            parse_worker_address("10.0.0.1:7000").unwrap().scheme(),
            "http"
        );
    }

    #[test]
    fn a_resolved_address_is_verified_against_the_name_it_came_from() {
        let channels = Channels::default();
        let tls = Url::parse("https://10.0.0.1:7000/").unwrap();
        let plain = Url::parse("http://10.0.0.2:7000/").unwrap();
        assert_eq!(channels.name_of(&tls), "10.0.0.1");
        channels.resolved_from(&tls, "workers.seglake");
        channels.resolved_from(&plain, "workers.seglake");
        assert_eq!(channels.name_of(&tls), "workers.seglake");
        // A plain worker has no certificate to check.
        assert_eq!(channels.name_of(&plain), "10.0.0.2");
    }

    #[tokio::test]
    async fn a_channel_verifying_an_old_name_is_dropped() {
        // No CA certificate at all: nothing is connected here.
        let channels = Channels::default().with_tls(super::ClusterTls {
            ca_pem: Some(vec![]),
            ..Default::default()
        });
        let url = Url::parse("https://127.0.0.1:7000/").unwrap();
        channels.resolved_from(&url, "a.seglake");
        channels.client(&url).unwrap();
        assert!(channels.map.lock().unwrap().contains_key(&url));
        channels.resolved_from(&url, "a.seglake");
        assert!(channels.map.lock().unwrap().contains_key(&url));
        channels.resolved_from(&url, "b.seglake");
        assert!(!channels.map.lock().unwrap().contains_key(&url));
    }
}
