//! The webhook egress policy: which addresses a webhook delivery may reach.
//!
//! Any user who can run `CREATE DESTINATION` chooses a webhook URL, and the
//! server delivers from inside the operator's network. Without a rule that
//! reaches loopback services, the private network and the cloud metadata
//! endpoint (169.254.169.254), and the delivery errors kept in
//! `system.activations` turn the server into a port scanner. So only public
//! unicast addresses may be reached, unless the operator opens an exception
//! (`--allow-webhook HOST_OR_CIDR`).
//!
//! The host is resolved here and every address is checked; the HTTP client
//! is then pinned to exactly those addresses and refuses to resolve any
//! other name, so a name whose answer changes between the check and the
//! connection (DNS rebinding) still only reaches what was checked.
//! Redirects are never followed (a redirect would be a new, unchecked
//! target).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use url::{Host, Url};

use crate::{EngineError, Result};

/// The rule named in refusals (`EngineError::denied`).
pub(crate) const RULE: &str = "webhook-egress";

/// How long resolving a webhook host may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server's exceptions to the rule: host names (exact, case-insensitive)
/// and networks. The default (no exceptions) allows public addresses only.
#[derive(Debug, Clone, Default)]
pub(crate) struct EgressPolicy {
    hosts: Vec<String>,
    nets: Vec<Net>,
}

/// An IP network, `addr/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Self {
        Self {
            addr: IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
            prefix,
        }
    }

    const fn v6(segments: [u16; 8], prefix: u8) -> Self {
        let [a, b, c, d, e, f, g, h] = segments;
        Self {
            addr: IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)),
            prefix,
        }
    }

    /// `addr` or `addr/prefix`; host bits below the prefix are ignored.
    /// `None` when `s` is not an address at all (a host name).
    fn parse(s: &str) -> Option<std::result::Result<Self, String>> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr = addr.trim_start_matches('[').trim_end_matches(']');
        let addr: IpAddr = match addr.parse() {
            Ok(a) => a,
            Err(_) if prefix.is_none() => return None,
            Err(_) => return Some(Err(format!("'{s}' is not a network (ADDRESS/PREFIX)"))),
        };
        let width = bits(addr).1;
        let prefix = match prefix {
            None => width,
            Some(p) => match p.parse::<u8>() {
                Ok(p) if p <= width => p,
                _ => {
                    return Some(Err(format!(
                        "'{s}': the prefix length must be 0 to {width}"
                    )));
                }
            },
        };
        Some(Ok(Self { addr, prefix }))
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let (net, width) = bits(self.addr);
        let (ip, ip_width) = bits(ip);
        if width != ip_width {
            return false;
        }
        // Compare the top `prefix` bits of the `width`-bit addresses.
        let shift = u32::from(width - self.prefix);
        shift >= u32::from(width) || (net >> shift) == (ip >> shift)
    }
}

/// The address as an integer and its width in bits.
fn bits(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    }
}

/// Networks a webhook may not reach by default, with what they are. The
/// first match names the kind, so narrower networks come first.
/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are checked as IPv4.
const SPECIAL: &[(Net, &str)] = &[
    (Net::v4(255, 255, 255, 255, 32), "broadcast"),
    (Net::v4(0, 0, 0, 0, 8), "unspecified"),
    (Net::v4(10, 0, 0, 0, 8), "private"),
    (Net::v4(100, 64, 0, 0, 10), "shared (carrier-grade NAT)"),
    (Net::v4(127, 0, 0, 0, 8), "loopback"),
    (Net::v4(169, 254, 0, 0, 16), "link-local"),
    (Net::v4(172, 16, 0, 0, 12), "private"),
    (Net::v4(192, 0, 0, 0, 24), "reserved"),
    (Net::v4(192, 0, 2, 0, 24), "documentation"),
    (Net::v4(192, 88, 99, 0, 24), "reserved"),
    (Net::v4(192, 168, 0, 0, 16), "private"),
    (Net::v4(198, 18, 0, 0, 15), "reserved"),
    (Net::v4(198, 51, 100, 0, 24), "documentation"),
    (Net::v4(203, 0, 113, 0, 24), "documentation"),
    (Net::v4(224, 0, 0, 0, 4), "multicast"),
    (Net::v4(240, 0, 0, 0, 4), "reserved"),
    (Net::v6([0, 0, 0, 0, 0, 0, 0, 0], 128), "unspecified"),
    (Net::v6([0, 0, 0, 0, 0, 0, 0, 1], 128), "loopback"),
    // IPv4-compatible (deprecated) and IPv4-translated forms.
    (Net::v6([0, 0, 0, 0, 0, 0, 0, 0], 96), "reserved"),
    (Net::v6([0, 0, 0, 0, 0xffff, 0, 0, 0], 96), "reserved"),
    (Net::v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48), "private"),
    (Net::v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), "reserved"),
    (
        Net::v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),
        "documentation",
    ),
    (Net::v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23), "reserved"),
    (Net::v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), "documentation"),
    (Net::v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), "private"),
    (Net::v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), "link-local"),
    (Net::v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), "private"),
    (Net::v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), "multicast"),
];

/// NAT64 (64:ff9b::/96) and 6to4 (2002::/16) addresses carry an IPv4
/// address that a translator or relay reaches on our behalf.
const NAT64: Net = Net::v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96);
const SIX_TO_FOUR: Net = Net::v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16);
/// Outside global unicast (2000::/3) IPv6 is unallocated or special.
const GLOBAL_UNICAST_V6: Net = Net::v6([0x2000, 0, 0, 0, 0, 0, 0, 0], 3);

/// What kind of non-public address `ip` is (`"loopback"`, `"private"`,
/// ...), or `None` for a public unicast address.
fn special_kind(ip: IpAddr) -> Option<&'static str> {
    let ip = ip.to_canonical();
    if let Some((_, kind)) = SPECIAL.iter().find(|(net, _)| net.contains(ip)) {
        return Some(*kind);
    }
    let IpAddr::V6(v6) = ip else {
        return None;
    };
    let bits = u128::from(v6);
    if NAT64.contains(ip) {
        return special_kind(IpAddr::V4(Ipv4Addr::from(bits as u32)));
    }
    if SIX_TO_FOUR.contains(ip) {
        return special_kind(IpAddr::V4(Ipv4Addr::from((bits >> 80) as u32)));
    }
    if !GLOBAL_UNICAST_V6.contains(ip) {
        return Some("reserved");
    }
    None
}

/// Why a webhook target may not be reached; the text is what a SQL user
/// reads (in an error or in `system.activations`), so it names the host the
/// user wrote and never the addresses a name resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// An address of the target is not public and not allowed.
    Policy(String),
    /// The host name did not resolve (or took too long).
    Unresolved(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Policy(m) => write!(f, "refused by the egress policy: {m}"),
            Self::Unresolved(m) => m.fmt(f),
        }
    }
}

impl Refusal {
    /// The statement error for a refusal at `CREATE DESTINATION`.
    pub(crate) fn into_error(self) -> EngineError {
        match self {
            Self::Policy(m) => EngineError::denied(
                RULE,
                format!(
                    "{m}; webhooks reach public addresses only, unless the server allows the \
                     host (--allow-webhook)"
                ),
            ),
            Self::Unresolved(m) => EngineError::InvalidArgument(format!("webhook url: {m}")),
        }
    }
}

/// A webhook URL whose addresses were checked: deliveries go to these
/// addresses and nowhere else.
#[derive(Debug, Clone)]
pub(crate) struct Vetted {
    url: Url,
    /// The host name and its checked addresses (`None` for an IP literal,
    /// which the client connects to without resolving).
    pinned: Option<(String, Vec<SocketAddr>)>,
}

impl Vetted {
    /// The checked addresses of the URL's host.
    #[cfg(test)]
    pub(crate) fn addresses(&self) -> Vec<SocketAddr> {
        self.pinned
            .as_ref()
            .map(|p| p.1.clone())
            .unwrap_or_default()
    }

    pub(crate) fn url(&self) -> &Url {
        &self.url
    }

    /// An HTTP client that reaches this URL's checked addresses only: it
    /// does not follow redirects, ignores proxy settings (a proxy would
    /// resolve the name again) and resolves no name itself.
    pub(crate) fn client(&self, timeout: Duration) -> reqwest::Result<reqwest::Client> {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(NoResolution));
        if let Some((host, addrs)) = &self.pinned {
            builder = builder.resolve_to_addrs(host, addrs);
        }
        builder.build()
    }
}

/// The client's resolver: every name the client may connect to is pinned
/// beforehand, so any other lookup is a bug and fails closed.
struct NoResolution;

impl reqwest::dns::Resolve for NoResolution {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let error: Box<dyn std::error::Error + Send + Sync> =
            format!("'{}' was not checked by the egress policy", name.as_str()).into();
        Box::pin(async move { Err::<reqwest::dns::Addrs, _>(error) })
    }
}

impl EgressPolicy {
    /// The policy with the exceptions `entries` (`--allow-webhook`): host
    /// names, IP addresses and networks (`10.0.0.0/8`, `fd00::/8`).
    pub(crate) fn new(entries: &[String]) -> Result<Self> {
        let mut policy = Self::default();
        for entry in entries {
            let entry = entry.trim();
            match Net::parse(entry) {
                Some(Ok(net)) => policy.nets.push(net),
                Some(Err(e)) => {
                    return Err(EngineError::InvalidArgument(format!(
                        "--allow-webhook: {e}"
                    )));
                }
                None => {
                    let host = normal_host(entry);
                    let valid = !host.is_empty()
                        && host
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
                    if !valid {
                        return Err(EngineError::InvalidArgument(format!(
                            "--allow-webhook: '{entry}' is not a host name, an IP address or a \
                             network (ADDRESS/PREFIX)"
                        )));
                    }
                    policy.hosts.push(host);
                }
            }
        }
        Ok(policy)
    }

    fn allows_host(&self, host: &str) -> bool {
        let host = normal_host(host);
        self.hosts.contains(&host)
    }

    /// The kind of `ip` when it may not be reached, `None` when it may.
    fn refused_kind(&self, ip: IpAddr) -> Option<&'static str> {
        let kind = special_kind(ip)?;
        let canonical = ip.to_canonical();
        let allowed = self
            .nets
            .iter()
            .any(|n| n.contains(ip) || n.contains(canonical));
        (!allowed).then_some(kind)
    }

    /// Resolves `url`'s host with the system resolver and checks every
    /// address.
    pub(crate) async fn vet(&self, url: &Url) -> std::result::Result<Vetted, Refusal> {
        self.vet_with(url, |host, port| async move {
            tokio::net::lookup_host((host.as_str(), port))
                .await
                .map(|addrs| addrs.collect())
        })
        .await
    }

    /// [`EgressPolicy::vet`] with the resolver `resolve` (host, port).
    pub(crate) async fn vet_with<F, Fut>(
        &self,
        url: &Url,
        resolve: F,
    ) -> std::result::Result<Vetted, Refusal>
    where
        F: FnOnce(String, u16) -> Fut,
        Fut: Future<Output = std::io::Result<Vec<SocketAddr>>>,
    {
        let port = url.port_or_known_default().unwrap_or(0);
        let host = match url.host() {
            None => return Err(Refusal::Policy("the url has no host".into())),
            Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            Some(Host::Domain(_)) => None,
        };
        if let Some(ip) = host {
            // An IP literal (the url crate has already turned the decimal,
            // octal and hexadecimal forms into dotted quads).
            if let Some(kind) = self.refused_kind(ip) {
                return Err(Refusal::Policy(format!("{ip} is a {kind} address")));
            }
            return Ok(Vetted {
                url: url.clone(),
                pinned: None,
            });
        }
        let name = url.host_str().unwrap_or_default().to_string();
        let addrs = match tokio::time::timeout(RESOLVE_TIMEOUT, resolve(name.clone(), port)).await {
            Ok(Ok(addrs)) if !addrs.is_empty() => addrs,
            Ok(Ok(_)) | Ok(Err(_)) => {
                return Err(Refusal::Unresolved(format!(
                    "the host {name} could not be resolved"
                )));
            }
            Err(_) => {
                return Err(Refusal::Unresolved(format!(
                    "resolving the host {name} timed out"
                )));
            }
        };
        if !self.allows_host(&name) {
            // Every address must pass: the client may use any of them.
            if let Some(kind) = addrs.iter().find_map(|a| self.refused_kind(a.ip())) {
                return Err(Refusal::Policy(format!(
                    "the host {name} resolves to a {kind} address"
                )));
            }
        }
        let addrs = addrs
            .into_iter()
            .map(|a| SocketAddr::new(a.ip(), port))
            .collect();
        Ok(Vetted {
            url: url.clone(),
            pinned: Some((name, addrs)),
        })
    }
}

/// A host name as compared with the allow-list: lower case, no final dot.
fn normal_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Checks a webhook URL's form: http(s), a host, no credentials (they would
/// be shown wherever the URL is, and deliveries are signed with the
/// destination's `secret` instead).
pub(crate) fn parse_webhook_url(url: &str) -> Result<Url> {
    let parsed = Url::parse(url).map_err(|e| {
        EngineError::InvalidArgument(format!("bad webhook url '{}': {e}", redacted(url)))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(EngineError::InvalidArgument(format!(
            "webhook url '{}' must be http:// or https://",
            redacted(url)
        )));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(EngineError::InvalidArgument(
            "a webhook url may not carry credentials (user:password@): sign deliveries with \
             OPTIONS (secret '...') instead"
                .into(),
        ));
    }
    if parsed.host().is_none() {
        return Err(EngineError::InvalidArgument(format!(
            "webhook url '{url}' has no host"
        )));
    }
    Ok(parsed)
}

/// `url` without the `user:password@` part, for display.
pub(crate) fn redacted(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            // Cannot fail on a URL that has a user part (it has a host).
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Ok(_) => url.to_string(),
        // Unparsable: drop everything up to a '@' of the authority.
        Err(_) => match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}://***@{}", &url[..scheme], &url[at + 1..])
            }
            _ => url.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn policy(entries: &[&str]) -> EgressPolicy {
        EgressPolicy::new(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn default_policy_refuses_every_non_public_address() {
        let p = EgressPolicy::default();
        for (addr, kind) in [
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("::1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.254", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("fe80::1", "link-local"),
            ("fc00::1", "private"),
            ("fd12:3456::1", "private"),
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "unspecified"),
            ("::", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("ff02::1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("100.64.0.1", "shared (carrier-grade NAT)"),
            ("192.0.2.7", "documentation"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.7", "documentation"),
            ("2001:db8::1", "documentation"),
            ("240.0.0.1", "reserved"),
            // IPv4-mapped IPv6 forms are the IPv4 address.
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.0.0.1", "private"),
            ("::ffff:169.254.169.254", "link-local"),
            // IPv4-compatible (deprecated) form.
            ("::127.0.0.1", "reserved"),
            // NAT64 and 6to4 forms of internal IPv4 addresses.
            ("64:ff9b::7f00:1", "loopback"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
            ("2002:a00:1::", "private"),
            ("2002:7f00:1::1", "loopback"),
        ] {
            assert_eq!(p.refused_kind(ip(addr)), Some(kind), "{addr}");
        }
        for addr in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2001:4860::8888",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::",
        ] {
            assert_eq!(p.refused_kind(ip(addr)), None, "{addr}");
        }
    }

    #[test]
    fn allow_list_entries() {
        let p = policy(&[
            "127.0.0.1",
            "10.0.0.0/8",
            "fd00::/8",
            "::1",
            "Hooks.Internal.",
        ]);
        for allowed in [
            "127.0.0.1",
            "::ffff:127.0.0.1",
            "10.0.0.1",
            "10.255.255.255",
            "fd00::5",
            "::1",
        ] {
            assert_eq!(p.refused_kind(ip(allowed)), None, "{allowed}");
        }
        for refused in [
            "127.0.0.2",
            "172.16.0.1",
            "192.168.0.1",
            "fc00::1",
            "169.254.169.254",
        ] {
            assert!(p.refused_kind(ip(refused)).is_some(), "{refused}");
        }
        assert!(p.allows_host("hooks.internal"));
        assert!(p.allows_host("HOOKS.internal."));
        assert!(!p.allows_host("other.internal"));
        assert!(!p.allows_host("x.hooks.internal"));
        // A prefix wider than the address family, junk, and host bits below
        // the prefix (ignored).
        for bad in ["10.0.0.0/33", "::/129", "10.0.0.0/x", "http://x", "a b", ""] {
            assert!(
                EgressPolicy::new(&[bad.to_string()]).is_err(),
                "{bad} should be refused"
            );
        }
        let p = policy(&["10.1.2.3/8", "0.0.0.0/0"]);
        assert_eq!(p.refused_kind(ip("10.200.0.1")), None);
        assert_eq!(p.refused_kind(ip("192.168.0.1")), None);
        // An IPv4 network does not open IPv6 addresses.
        assert!(p.refused_kind(ip("fc00::1")).is_some());
    }

    #[test]
    fn ip_literal_forms_are_normalised_by_the_url_parser() {
        let p = EgressPolicy::default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        for (url, shown) in [
            ("http://127.0.0.1:8080/", "127.0.0.1"),
            ("http://2130706433/", "127.0.0.1"),
            ("http://0x7f.1/", "127.0.0.1"),
            ("http://0177.0.0.1/", "127.0.0.1"),
            ("http://127.1/", "127.0.0.1"),
            ("http://[::ffff:7f00:1]/", "::ffff:127.0.0.1"),
            ("http://[::1]:9000/", "::1"),
            (
                "http://169.254.169.254/latest/meta-data/",
                "169.254.169.254",
            ),
            ("https://0xA9FEA9FE/", "169.254.169.254"),
        ] {
            let url = parse_webhook_url(url).unwrap();
            let refused = rt
                .block_on(p.vet_with(&url, |_, _| async {
                    panic!("an IP literal is not resolved")
                }))
                .unwrap_err();
            let Refusal::Policy(message) = refused else {
                panic!("{url}: {refused:?}")
            };
            assert!(
                message.starts_with(&format!("{shown} is a ")),
                "{url}: {message}"
            );
        }
        let url = parse_webhook_url("http://8.8.8.8/hook").unwrap();
        let vetted = rt
            .block_on(p.vet_with(&url, |_, _| async { panic!("not resolved") }))
            .unwrap();
        assert!(vetted.addresses().is_empty());
    }

    #[tokio::test]
    async fn every_resolved_address_is_checked() {
        let p = EgressPolicy::default();
        let url = parse_webhook_url("https://hooks.example.com/x").unwrap();
        let answer = |addrs: &'static [&'static str]| {
            move |host: String, port: u16| async move {
                assert_eq!((host.as_str(), port), ("hooks.example.com", 443));
                Ok(addrs.iter().map(|a| SocketAddr::new(ip(a), 0)).collect())
            }
        };
        // One internal address among public ones is enough to refuse.
        let refused = p
            .vet_with(&url, answer(&["8.8.8.8", "10.0.0.5", "2001:4860::8888"]))
            .await
            .unwrap_err();
        assert_eq!(
            refused,
            Refusal::Policy("the host hooks.example.com resolves to a private address".into())
        );
        // The message does not say which address the name resolved to.
        assert!(!refused.to_string().contains("10.0.0.5"));
        let vetted = p
            .vet_with(&url, answer(&["8.8.8.8", "2001:4860::8888"]))
            .await
            .unwrap();
        assert_eq!(
            vetted.addresses(),
            vec![
                SocketAddr::new(ip("8.8.8.8"), 443),
                SocketAddr::new(ip("2001:4860::8888"), 443)
            ]
        );
        // An allowed host name may resolve to anything.
        let p = policy(&["hooks.example.com"]);
        let vetted = p.vet_with(&url, answer(&["10.0.0.5"])).await.unwrap();
        assert_eq!(
            vetted.addresses(),
            vec![SocketAddr::new(ip("10.0.0.5"), 443)]
        );
        // No answer: refused, not allowed.
        let refused = p
            .vet_with(&url, |_, _| async { Ok(vec![]) })
            .await
            .unwrap_err();
        assert!(matches!(refused, Refusal::Unresolved(_)), "{refused:?}");
    }

    #[tokio::test]
    async fn localhost_resolves_to_loopback_and_is_refused() {
        let url = parse_webhook_url("http://localhost:9/hook").unwrap();
        let refused = EgressPolicy::default().vet(&url).await.unwrap_err();
        assert_eq!(
            refused,
            Refusal::Policy("the host localhost resolves to a loopback address".into())
        );
    }

    /// DNS rebinding: the delivery connects to the address that was
    /// checked, never to what the name resolves to later. The name used
    /// (`.invalid`, RFC 6761) resolves nowhere, so the request can only
    /// reach the listener through the pinned, checked address.
    #[tokio::test]
    async fn the_client_connects_to_the_checked_address_only() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = vec![];
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                assert!(n > 0, "the client closed the connection");
                request.extend_from_slice(&buf[..n]);
            }
            socket
                .write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8(request).unwrap()
        });
        let url = parse_webhook_url(&format!("http://rebind.invalid:{port}/hook")).unwrap();
        let lookups = std::sync::atomic::AtomicUsize::new(0);
        let counter = &lookups;
        let p = policy(&["127.0.0.1"]);
        // The resolver answers the check with the allowed loopback address;
        // a later lookup (the rebinding) could answer anything: there is none.
        let vetted = p
            .vet_with(&url, move |_, _| async move {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(vec![SocketAddr::new(ip("127.0.0.1"), 0)])
            })
            .await
            .unwrap();
        assert_eq!(
            vetted.addresses(),
            vec![SocketAddr::new(ip("127.0.0.1"), port)]
        );
        let client = vetted.client(Duration::from_secs(10)).unwrap();
        let response = client.get(vetted.url().clone()).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 204);
        assert_eq!(lookups.load(std::sync::atomic::Ordering::SeqCst), 1);
        let request = server.await.unwrap();
        assert!(
            request
                .to_ascii_lowercase()
                .contains(&format!("host: rebind.invalid:{port}")),
            "{request}"
        );
        // A name that was not checked is not resolved by the client at all.
        let other = Url::parse(&format!("http://other.invalid:{port}/")).unwrap();
        let err = client.get(other).send().await.unwrap_err();
        assert!(err.is_connect() || err.is_request(), "{err:?}");
    }

    #[test]
    fn credentials_in_the_url_are_refused_and_redacted() {
        let err = parse_webhook_url("https://user:hunter2@hooks.example.com/x").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(parse_webhook_url("https://user@hooks.example.com/x").is_err());
        let err = parse_webhook_url("ftp://user:hunter2@example.com/").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert_eq!(
            redacted("https://user:hunter2@hooks.example.com/x"),
            "https://hooks.example.com/x"
        );
        assert_eq!(
            redacted("https://hooks.example.com/x"),
            "https://hooks.example.com/x"
        );
        assert!(!redacted("notaurl://u:hunter2@[bad").contains("hunter2"));
    }
}
