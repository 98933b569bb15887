//! Users, Basic-auth handshake, bearer tokens and per-connection sessions.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use parking_lot::Mutex;
use rand::RngCore;
use seglake_engine::{Engine, Session};
use sha2::{Digest, Sha256};
use tracing::info;

use crate::error::{Result, ServerError};

/// `name:password` pairs allowed to connect.
#[derive(Clone, Default)]
pub struct Users {
    /// name -> SHA-256 of the password (so that comparisons are fixed-time
    /// over equal-length digests and passwords are not kept in clear).
    users: HashMap<String, [u8; 32]>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.users.keys()).finish()
    }
}

fn digest(password: &str) -> [u8; 32] {
    Sha256::digest(password.as_bytes()).into()
}

impl Users {
    /// Parses `name:password` entries.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self> {
        let mut users = HashMap::new();
        for e in entries {
            let (name, password) = e
                .split_once(':')
                .filter(|(n, p)| !n.is_empty() && !p.is_empty())
                .ok_or_else(|| ServerError::Config(format!("user '{e}' is not NAME:PASSWORD")))?;
            users.insert(name.to_string(), digest(password));
        }
        Ok(Self { users })
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    pub fn names(&self) -> Vec<&str> {
        self.users.keys().map(String::as_str).collect()
    }

    pub fn check(&self, name: &str, password: &str) -> bool {
        let given = digest(password);
        match self.users.get(name) {
            // Fixed-time comparison of the digests.
            Some(expected) => {
                expected
                    .iter()
                    .zip(given)
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
            }
            None => false,
        }
    }
}

/// Decodes `authorization: Basic <b64>` (padding optional) into name and password.
pub fn decode_basic(value: &str) -> Result<(String, String)> {
    let bad = || ServerError::Unauthenticated("malformed Basic authorization header".into());
    let b64 = value.trim();
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(b64.trim_end_matches('='))
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (user, password) = text.split_once(':').ok_or_else(bad)?;
    Ok((user.to_string(), password.to_string()))
}

/// A logged-in connection.
#[derive(Debug)]
pub struct ClientSession {
    pub token: String,
    pub session: Session,
    last_used: Mutex<Instant>,
    /// Queries planned at GetFlightInfo, for their DoGet.
    pub(crate) planned: crate::planned::PlannedStatements,
}

impl ClientSession {
    pub fn user(&self) -> &str {
        self.session.user()
    }
}

/// Bearer token -> session. Sessions idle for longer than `idle_timeout`
/// are dropped.
#[derive(Debug)]
pub struct Sessions {
    engine: Arc<Engine>,
    users: Users,
    sessions: Mutex<HashMap<String, Arc<ClientSession>>>,
    idle_timeout: Duration,
}

const MAX_SESSIONS: usize = 10_000;

impl Sessions {
    pub fn new(engine: Arc<Engine>, users: Users, idle_timeout: Duration) -> Self {
        Self {
            engine,
            users,
            sessions: Mutex::new(HashMap::new()),
            idle_timeout,
        }
    }

    /// Checks a password and opens a session; returns its token.
    pub fn login(&self, user: &str, password: &str) -> Result<Arc<ClientSession>> {
        if !self.users.check(user, password) {
            info!(%user, "login refused");
            return Err(ServerError::Unauthenticated(
                "invalid user name or password".into(),
            ));
        }
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let session = Arc::new(ClientSession {
            token: token.clone(),
            session: self.engine.session(user)?,
            last_used: Mutex::new(Instant::now()),
            planned: Default::default(),
        });
        let mut sessions = self.sessions.lock();
        let now = Instant::now();
        sessions.retain(|_, s| now.duration_since(*s.last_used.lock()) < self.idle_timeout);
        if sessions.len() >= MAX_SESSIONS {
            return Err(ServerError::Unauthenticated(
                "too many open sessions".into(),
            ));
        }
        sessions.insert(token, Arc::clone(&session));
        info!(%user, "login");
        Ok(session)
    }

    /// The session of a bearer token.
    pub fn get(&self, token: &str) -> Result<Arc<ClientSession>> {
        let sessions = self.sessions.lock();
        let s = sessions.get(token).ok_or_else(|| {
            ServerError::Unauthenticated("invalid or expired token: log in again".into())
        })?;
        *s.last_used.lock() = Instant::now();
        Ok(Arc::clone(s))
    }

    /// Authenticates a request from its `authorization` header value:
    /// `Bearer <token>`, or `Basic <b64>` (a new session per call).
    pub fn authenticate(&self, header: Option<&str>) -> Result<Arc<ClientSession>> {
        let header = header.ok_or_else(|| {
            ServerError::Unauthenticated(
                "missing authorization header: log in with Handshake first".into(),
            )
        })?;
        if let Some(token) = strip_scheme(header, "bearer") {
            self.get(token.trim())
        } else if let Some(b64) = strip_scheme(header, "basic") {
            let (user, password) = decode_basic(b64)?;
            self.login(&user, &password)
        } else {
            Err(ServerError::Unauthenticated(
                "unsupported authorization scheme".into(),
            ))
        }
    }

    pub fn close(&self, token: &str) {
        self.sessions.lock().remove(token);
    }
}

/// `Scheme rest` with a case-insensitive scheme.
pub fn strip_scheme<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (s, rest) = header.split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_with_and_without_padding() {
        // "ab:c" -> YWI6Yw== ; without padding YWI6Yw
        assert_eq!(decode_basic("YWI6Yw==").unwrap(), ("ab".into(), "c".into()));
        assert_eq!(decode_basic("YWI6Yw").unwrap(), ("ab".into(), "c".into()));
        // Passwords may contain ':'.
        // "u:p:q" -> dTpwOnE=
        assert_eq!(
            decode_basic("dTpwOnE=").unwrap(),
            ("u".into(), "p:q".into())
        );
        assert!(decode_basic("!!!").is_err());
        assert!(decode_basic("bm9jb2xvbg").is_err(), "'nocolon' has no ':'");
    }

    #[test]
    fn users() {
        let u = Users::parse(["alice:secret", "bob:pw"]).unwrap();
        assert!(u.check("alice", "secret"));
        assert!(!u.check("alice", "pw"));
        assert!(!u.check("carol", "secret"));
        assert!(Users::parse(["nopassword"]).is_err());
        assert!(Users::parse([":x"]).is_err());
        assert_eq!(strip_scheme("bearer abc", "Bearer"), Some("abc"));
        assert_eq!(strip_scheme("Basic abc", "bearer"), None);
    }
}
