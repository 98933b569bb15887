//! The cluster secret: how a coordinator proves to its workers (and a worker
//! to the workers it reads shuffled data from) that it may send them plan
//! fragments.
//!
//! Every call to a worker carries a fresh token in the
//! `x-seglake-cluster-token` header: `v1.<issued>.<nonce>.<mac>`, where
//! `issued` is the issue time in Unix seconds, `nonce` 128 random bits in
//! hex and `mac` the HMAC-SHA256, keyed with the secret, of the version,
//! issue time and nonce. A worker accepts a token whose MAC matches (a
//! fixed-time comparison) and whose issue time is within
//! [`TOKEN_LIFETIME`] of its own clock, give or take [`CLOCK_SKEW`]. The
//! secret itself never travels.
//!
//! The token authenticates the caller, it does not hide the traffic: on a
//! network that others can read, a captured token could be replayed until
//! it expires, so such networks need TLS between coordinator and workers.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{EngineError, Result};

/// The header carrying the token on every call to a worker.
pub const CLUSTER_TOKEN_HEADER: &str = "x-seglake-cluster-token";

/// How long a token is accepted after it was issued. A token is minted for
/// each call, so this only has to cover the call's way to the worker (the
/// check happens once, when the call starts: long streams are not cut).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// How far the clocks of a coordinator and a worker may disagree.
pub const CLOCK_SKEW: Duration = Duration::from_secs(30);

/// Shortest secret accepted: a short shared secret can be guessed offline
/// from one captured token.
pub const MIN_SECRET_LEN: usize = 16;

const TOKEN_VERSION: &str = "v1";

type HmacSha256 = Hmac<Sha256>;

/// The secret shared by a coordinator and its workers (`--cluster-secret`).
/// Its `Debug` form never shows it.
#[derive(Clone)]
pub struct ClusterSecret {
    key: Arc<[u8]>,
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterSecret(<redacted>)")
    }
}

/// Why a worker refuses a call. The messages say what to fix and nothing
/// about the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error(
        "this worker requires the cluster secret: start the coordinator with the same --cluster-secret"
    )]
    Missing,
    #[error("invalid cluster token: the caller does not hold this worker's --cluster-secret")]
    Invalid,
    #[error(
        "expired cluster token: the clocks of the coordinator and the worker disagree by more than {} s",
        CLOCK_SKEW.as_secs()
    )]
    Expired,
}

impl ClusterSecret {
    /// The secret in `text`, without surrounding white space (a trailing
    /// newline from a file or a Kubernetes Secret is not part of it).
    /// Refuses one shorter than [`MIN_SECRET_LEN`] bytes; the error does not
    /// repeat it.
    pub fn new(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.len() < MIN_SECRET_LEN {
            return Err(EngineError::InvalidArgument(format!(
                "the cluster secret must be at least {MIN_SECRET_LEN} characters long \
                 (for example the output of `openssl rand -hex 32`)"
            )));
        }
        Ok(Self {
            key: Arc::from(text.as_bytes()),
        })
    }

    /// A token for one call, issued now.
    pub fn token(&self) -> String {
        self.token_issued_at(unix_now())
    }

    /// A token issued at `issued` (Unix seconds), with a fresh nonce.
    pub fn token_issued_at(&self, issued: u64) -> String {
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let mac = self.mac(issued, &nonce).finalize().into_bytes();
        format!("{TOKEN_VERSION}.{issued}.{nonce}.{}", hex(&mac))
    }

    /// Checks the token a call carries (`None`: the call has none), now.
    pub fn check(&self, token: Option<&str>) -> std::result::Result<(), TokenError> {
        match token {
            None => Err(TokenError::Missing),
            Some(token) => self.verify(token, unix_now()),
        }
    }

    /// Checks `token` at time `now` (Unix seconds).
    pub fn verify(&self, token: &str, now: u64) -> std::result::Result<(), TokenError> {
        let mut parts = token.split('.');
        let (Some(version), Some(issued), Some(nonce), Some(mac), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(TokenError::Invalid);
        };
        if version != TOKEN_VERSION
            || nonce.len() != 32
            || !nonce.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(TokenError::Invalid);
        }
        let issued: u64 = issued.parse().map_err(|_| TokenError::Invalid)?;
        let mac = unhex(mac).ok_or(TokenError::Invalid)?;
        // `verify_slice` compares in fixed time.
        self.mac(issued, nonce)
            .verify_slice(&mac)
            .map_err(|_| TokenError::Invalid)?;
        // Time is checked after the MAC: only a holder of the secret learns
        // that its clock is off.
        let skew = CLOCK_SKEW.as_secs();
        if issued > now.saturating_add(skew)
            || now > issued.saturating_add(TOKEN_LIFETIME.as_secs() + skew)
        {
            return Err(TokenError::Expired);
        }
        Ok(())
    }

    fn mac(&self, issued: u64, nonce: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        // The domain first, so that the MAC is not valid for anything else
        // keyed with the same secret.
        mac.update(b"seglake-cluster-token\0");
        mac.update(TOKEN_VERSION.as_bytes());
        mac.update(b"\0");
        mac.update(issued.to_string().as_bytes());
        mac.update(b"\0");
        mac.update(nonce.as_bytes());
        mac
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A channel to a worker that adds a fresh token to every request (gRPC
/// calls are HTTP/2 requests: this covers every RPC, health probes
/// included).
#[derive(Clone)]
pub(crate) struct WithClusterToken<S> {
    inner: S,
    secret: ClusterSecret,
}

impl<S> WithClusterToken<S> {
    pub(crate) fn new(inner: S, secret: ClusterSecret) -> Self {
        Self { inner, secret }
    }
}

impl<S, B> tower_service::Service<http::Request<B>> for WithClusterToken<S>
where
    S: tower_service::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<std::result::Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // A token is ASCII (digits, hex and dots): always a valid value.
        if let Ok(mut value) = http::HeaderValue::from_str(&self.secret.token()) {
            value.set_sensitive(true);
            request
                .headers_mut()
                .insert(http::HeaderName::from_static(CLUSTER_TOKEN_HEADER), value);
        }
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef-cluster";

    #[test]
    fn a_token_of_the_secret_is_accepted_within_its_lifetime() {
        let secret = ClusterSecret::new(SECRET).unwrap();
        let issued = 1_700_000_000;
        let token = secret.token_issued_at(issued);
        assert_eq!(secret.verify(&token, issued), Ok(()));
        assert_eq!(secret.verify(&token, issued + 60 + 30), Ok(()));
        assert_eq!(secret.verify(&token, issued - 30), Ok(()));
        assert_eq!(
            secret.verify(&token, issued + 60 + 31),
            Err(TokenError::Expired)
        );
        assert_eq!(secret.verify(&token, issued - 31), Err(TokenError::Expired));
        assert_eq!(secret.check(Some(&secret.token())), Ok(()));
        assert_eq!(secret.check(None), Err(TokenError::Missing));
        // Two tokens of one second differ (the nonce).
        assert_ne!(token, secret.token_issued_at(issued));
    }

    #[test]
    fn a_token_of_another_secret_or_altered_is_refused() {
        let secret = ClusterSecret::new(SECRET).unwrap();
        let other = ClusterSecret::new("another-secret-of-16+").unwrap();
        let issued = 1_700_000_000;
        let token = other.token_issued_at(issued);
        assert_eq!(secret.verify(&token, issued), Err(TokenError::Invalid));
        // An expired token of another secret says nothing about time.
        assert_eq!(
            secret.verify(&other.token_issued_at(1), issued),
            Err(TokenError::Invalid)
        );
        let good = secret.token_issued_at(issued);
        let parts: Vec<&str> = good.split('.').collect();
        // A later issue time with the old MAC.
        let moved = format!("v1.{}.{}.{}", issued + 1, parts[2], parts[3]);
        assert_eq!(secret.verify(&moved, issued), Err(TokenError::Invalid));
        for bad in [
            "",
            "v1",
            "v1.1.2.3",
            &good.replacen("v1", "v2", 1),
            &format!("{good}.x"),
            &good[..good.len() - 2],
            &format!("v1.x.{}.{}", parts[2], parts[3]),
        ] {
            assert_eq!(
                secret.verify(bad, issued),
                Err(TokenError::Invalid),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_secret_is_trimmed_long_enough_and_never_shown() {
        assert!(ClusterSecret::new("short").is_err());
        assert!(ClusterSecret::new("   fifteen chars  \n").is_err());
        let err = ClusterSecret::new("tooshort").unwrap_err().to_string();
        assert!(!err.contains("tooshort"), "{err}");
        let a = ClusterSecret::new(&format!("{SECRET}\n")).unwrap();
        let b = ClusterSecret::new(SECRET).unwrap();
        assert_eq!(b.verify(&a.token_issued_at(5), 5), Ok(()));
        assert!(!format!("{a:?}").contains(SECRET));
    }
}
