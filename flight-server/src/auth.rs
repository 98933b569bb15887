//! Users (argon2id password hashes), logins (rate-limited, their successes
//! cached), bearer tokens and per-connection sessions.
//!
//! Verifying an argon2id hash costs tens of milliseconds and about 19 MiB by
//! design, so it runs on the blocking pool, a few at a time, and is paid
//! once per login: a password verified recently is recognised by a keyed
//! digest (HMAC-SHA-256 under a key drawn at start, never stored), and HTTP
//! Basic on an ordinary call reuses one cached session per user instead of
//! opening a new one per call.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use rand::RngCore;
use seglake_engine::{Engine, Session};
use sha2::Sha256;
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::error::{Result, ServerError};

/// A keyed digest (HMAC-SHA-256 under [`UsersInner::key`]).
type Digest = [u8; 32];

/// Failed logins a user name may have before each further one waits.
const FREE_FAILURES_PER_USER: u32 = 5;
/// Failed logins a client address may have before each further one waits
/// (higher than per user: several people may share an address).
const FREE_FAILURES_PER_ADDRESS: u32 = 20;
/// The wait after the first failure past the free ones; it doubles with
/// every further failure, up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(60);
/// Failures are forgotten after this long without another one.
const FORGET_FAILURES_AFTER: Duration = Duration::from_secs(15 * 60);
/// User names (as digests) and addresses tracked at most, each: beyond it
/// the forgotten entries go first, then the oldest.
const MAX_TRACKED: usize = 10_000;
/// How long a verified password is recognised without verifying its hash
/// again.
const VERIFIED_TTL: Duration = Duration::from_secs(10 * 60);
/// Upper bounds on the cost of a configured hash (argon2 m in KiB, t), so
/// that a typo cannot make every login take the machine's memory.
const MAX_M_COST_KIB: u32 = 256 * 1024;
const MAX_T_COST: u32 = 64;
const MAX_P_COST: u32 = 16;
/// Open sessions of all users at most.
const MAX_SESSIONS: usize = 10_000;
/// How often any access sweeps expired sessions out of the table.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// User names are shown in logs up to this many characters.
const SHOWN_NAME_CHARS: usize = 64;

/// The time as the session and login tables see it: the system's, or in
/// tests one that only moves when told.
#[derive(Debug, Clone, Default)]
pub(crate) struct Clock {
    manual: Option<Arc<Mutex<Instant>>>,
}

impl Clock {
    fn now(&self) -> Instant {
        match &self.manual {
            Some(t) => *t.lock(),
            None => Instant::now(),
        }
    }

    #[cfg(test)]
    fn manual() -> Self {
        Self {
            manual: Some(Arc::new(Mutex::new(Instant::now()))),
        }
    }

    #[cfg(test)]
    fn advance(&self, by: Duration) {
        let t = self.manual.as_ref().expect("a manual clock");
        let mut t = t.lock();
        *t += by;
    }
}

/// Why a login was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("invalid user name or password")]
    BadCredentials,
    /// Too many recent failures for the user name or the client address:
    /// the password was not checked.
    #[error(
        "too many failed logins for this user or address: try again in {} s",
        whole_seconds(*retry_after)
    )]
    Throttled { retry_after: Duration },
    #[error("password verification failed: {0}")]
    Internal(String),
}

/// A wait in whole seconds, rounded up (what `Retry-After` takes).
pub fn whole_seconds(d: Duration) -> u64 {
    u64::try_from(d.as_millis().div_ceil(1000))
        .unwrap_or(u64::MAX)
        .max(1)
}

impl From<LoginError> for ServerError {
    fn from(e: LoginError) -> Self {
        match e {
            LoginError::Internal(_) => ServerError::Internal(e.to_string()),
            e => ServerError::Unauthenticated(e.to_string()),
        }
    }
}

/// A user name as logs show it: escaped (a name with a newline cannot
/// forge a log line) and cut.
fn shown(name: &str) -> String {
    let cut: String = name.chars().take(SHOWN_NAME_CHARS).collect();
    if cut.len() < name.len() {
        format!("{cut:?}...")
    } else {
        format!("{cut:?}")
    }
}

/// A client address as logs show it.
fn shown_peer(peer: Option<impl std::fmt::Display>) -> String {
    peer.map_or_else(|| "unknown".to_string(), |p| p.to_string())
}

/// The users allowed to connect and how their logins are checked. Clones
/// share the recently verified passwords and the failure counts (the Flight
/// SQL server and the collector throttle the same attacker together).
#[derive(Clone)]
pub struct Users {
    inner: Arc<UsersInner>,
}

/// No users (a server refuses to start without any).
impl Default for Users {
    fn default() -> Self {
        Self::from_hashes(HashMap::new(), Clock::default())
    }
}

struct UsersInner {
    /// name -> argon2id PHC string: the server's own users (`--user`).
    hashes: HashMap<String, String>,
    /// The engine whose catalog holds the users made with `CREATE USER`
    /// (read at each check: a user made, changed or dropped on any server
    /// of the warehouse counts at once).
    catalog: OnceLock<Arc<Engine>>,
    /// Verified for unknown names, so that they cost what known ones do
    /// (made on first use, with the parameters of a configured hash).
    dummy: OnceLock<String>,
    /// Key of the digests below, drawn at start.
    key: Digest,
    /// name -> digest of the password verified last, and when.
    verified: Mutex<HashMap<String, (Digest, Instant)>>,
    throttle: Mutex<Throttle>,
    /// argon2 verifications running at once at most (each holds its
    /// memory cost).
    verifications: Semaphore,
    clock: Clock,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.inner.hashes.keys()).finish()
    }
}

/// The argon2id parameters of hashes made here: the crate's defaults, the
/// OWASP recommendation (19 MiB, 2 passes, 1 lane).
fn default_params() -> Params {
    Params::default()
}

/// An argon2id PHC string of `password` with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String> {
    hash_with(password, default_params())
}

fn hash_with(password: &str, params: Params) -> Result<String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(ServerError::internal)?;
    let hash = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .map_err(ServerError::internal)?;
    Ok(hash.to_string())
}

/// Checks that `phc` is an argon2id hash Seglake accepts (version 19, a
/// salt, a hash, bounded costs).
fn check_phc(name: &str, phc: &str) -> Result<()> {
    let bad = |why: String| {
        ServerError::Config(format!("the password hash of user {}: {why}", shown(name)))
    };
    let hash = PasswordHash::new(phc).map_err(|e| bad(format!("not a PHC string ({e})")))?;
    if hash.algorithm.as_str() != "argon2id" {
        return Err(bad(format!(
            "{} is not supported, use argon2id",
            hash.algorithm
        )));
    }
    if hash.version != Some(19) {
        return Err(bad("only argon2 version 19 (v=19) is supported".into()));
    }
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err(bad("salt or hash missing".into()));
    }
    let params = Params::try_from(&hash).map_err(|e| bad(e.to_string()))?;
    if params.m_cost() > MAX_M_COST_KIB
        || params.t_cost() > MAX_T_COST
        || params.p_cost() > MAX_P_COST
    {
        return Err(bad(format!(
            "costs above m={MAX_M_COST_KIB},t={MAX_T_COST},p={MAX_P_COST}"
        )));
    }
    Ok(())
}

/// `true` if `password` matches the PHC string `phc` (slow: argon2).
fn verify_phc(phc: &str, password: &str) -> bool {
    seglake_catalog::security::verify_password(phc, password)
}

/// The entries of `--user` values: `NAME:PASSWORD` or `NAME:$argon2id$...`,
/// comma-separated. A PHC string holds commas itself (`m=19456,t=2,p=1`):
/// a piece without ':' continues the entry before it. Empty pieces (a
/// trailing comma) are skipped.
fn split_entries(value: &str) -> Vec<String> {
    let mut entries: Vec<String> = vec![];
    for piece in value.split(',').filter(|p| !p.is_empty()) {
        match entries.last_mut() {
            Some(last) if !piece.contains(':') => {
                last.push(',');
                last.push_str(piece);
            }
            _ => entries.push(piece.to_string()),
        }
    }
    entries
}

fn constant_time_eq(a: &Digest, b: &Digest) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Users {
    /// Parses `--user` values: `NAME:PASSWORD` (hashed here with argon2id
    /// and a random salt) or `NAME:$argon2id$v=19$...` (a PHC string, kept
    /// as it is); a value may hold several entries separated by commas.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Self> {
        Self::parse_with(values, default_params(), Clock::default())
    }

    fn parse_with<'a>(
        values: impl IntoIterator<Item = &'a str>,
        params: Params,
        clock: Clock,
    ) -> Result<Self> {
        let mut hashes = HashMap::new();
        for value in values {
            for e in split_entries(value) {
                let (name, secret) = e
                    .split_once(':')
                    .filter(|(n, p)| !n.is_empty() && !p.is_empty())
                    .ok_or_else(|| {
                        // Never the entry itself: it holds a password.
                        let name = e.split_once(':').map_or("", |(n, _)| n);
                        ServerError::Config(format!(
                            "a user ({}) is not NAME:PASSWORD or NAME:$argon2id$...",
                            shown(name)
                        ))
                    })?;
                let phc = if secret.starts_with("$argon2") {
                    check_phc(name, secret)?;
                    secret.to_string()
                } else {
                    hash_with(secret, params.clone())?
                };
                hashes.insert(name.to_string(), phc);
            }
        }
        Ok(Self::from_hashes(hashes, clock))
    }

    fn from_hashes(hashes: HashMap<String, String>, clock: Clock) -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            inner: Arc::new(UsersInner {
                hashes,
                catalog: OnceLock::new(),
                dummy: OnceLock::new(),
                key,
                verified: Mutex::new(HashMap::new()),
                throttle: Mutex::new(Throttle::default()),
                verifications: Semaphore::new(parallel.max(2)),
                clock,
            }),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.inner.hashes.is_empty()
    }

    pub fn names(&self) -> Vec<&str> {
        self.inner.hashes.keys().map(String::as_str).collect()
    }

    fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Lets the users made with `CREATE USER` in `engine`'s catalog log
    /// in too (the server's own users come first).
    pub fn with_catalog_of(&self, engine: Arc<Engine>) {
        let _ = self.inner.catalog.set(engine);
    }

    /// A refused login, in the audit trail of the engine's warehouse (the
    /// name cut as in the logs; the trail's JSON escapes it).
    fn audit_login(&self, user: &str, peer: Option<IpAddr>, message: &str) {
        if let Some(engine) = self.inner.catalog.get() {
            engine.audit(seglake_engine::AuditRecord {
                at: chrono::Utc::now(),
                user: user.chars().take(SHOWN_NAME_CHARS).collect(),
                client: peer.map(|p| p.to_string()),
                kind: "login".into(),
                objects: vec![],
                outcome: "denied".into(),
                message: Some(message.into()),
                statement: None,
            });
        }
    }

    /// The password hash `user` logs in with now: a server user's, or the
    /// catalog's for a user made in SQL; `None` for an unknown name.
    async fn current_hash(&self, user: &str) -> Result<Option<String>, LoginError> {
        if let Some(phc) = self.inner.hashes.get(user) {
            return Ok(Some(phc.clone()));
        }
        let Some(engine) = self.inner.catalog.get() else {
            return Ok(None);
        };
        let snapshot = engine
            .catalog()
            .await
            .map_err(|e| LoginError::Internal(e.to_string()))?;
        Ok(snapshot
            .state
            .security
            .users
            .get(user)
            .map(|u| u.password_hash.clone()))
    }

    /// The keyed digest of a user name, password and the hash it was
    /// checked against (the name's length first, so that no two pairs
    /// share an input; the hash, so that a changed or dropped user's old
    /// password is not taken from the cache).
    fn digest(&self, user: &str, password: &str, phc: &str) -> Digest {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.inner.key).expect("any key length");
        mac.update(&(user.len() as u64).to_le_bytes());
        mac.update(user.as_bytes());
        mac.update(&(phc.len() as u64).to_le_bytes());
        mac.update(phc.as_bytes());
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The keyed digest of a user name alone (the failure table's key: its
    /// size does not depend on what a client sends).
    fn name_key(&self, user: &str) -> Digest {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.inner.key).expect("any key length");
        mac.update(b"name\0");
        mac.update(user.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// `true` if `digest` is that of the password verified for `user`
    /// within [`VERIFIED_TTL`].
    fn recently_verified(&self, user: &str, digest: &Digest) -> bool {
        let now = self.clock().now();
        let mut verified = self.inner.verified.lock();
        match verified.get(user) {
            Some((d, at)) if now.saturating_duration_since(*at) < VERIFIED_TTL => {
                constant_time_eq(d, digest)
            }
            Some(_) => {
                verified.remove(user);
                false
            }
            None => false,
        }
    }

    /// Checks a user name and password from `peer`: a password verified
    /// recently passes at once; otherwise, unless the name or the address
    /// has failed too often lately (then refused without checking), the
    /// argon2 hash is verified on the blocking pool. Failures are counted
    /// and logged (name escaped, address, never the password); a success
    /// clears the name's failures.
    pub async fn verify(
        &self,
        user: &str,
        password: &str,
        peer: Option<IpAddr>,
    ) -> Result<(), LoginError> {
        let phc = self.current_hash(user).await?;
        let digest = self.digest(user, password, phc.as_deref().unwrap_or_default());
        if phc.is_some() && self.recently_verified(user, &digest) {
            return Ok(());
        }
        let name_key = self.name_key(user);
        let address = peer.map(address_key);
        // The throttle is consulted with a verification permit held, so
        // guesses sent in parallel queue here and see the failures of
        // those before them.
        let _permit = self
            .inner
            .verifications
            .acquire()
            .await
            .map_err(|e| LoginError::Internal(e.to_string()))?;
        let blocked =
            self.inner
                .throttle
                .lock()
                .blocked(&name_key, address.as_ref(), self.clock().now());
        if let Some(retry_after) = blocked {
            self.audit_login(
                user,
                peer,
                "too many recent failures: refused without checking",
            );
            warn!(
                user = %shown(user),
                peer = %shown_peer(peer),
                retry_after_secs = retry_after.as_secs_f32(),
                "login refused without checking the password: too many recent failures"
            );
            return Err(LoginError::Throttled { retry_after });
        }
        if self.check_password(phc, password).await? {
            self.inner.throttle.lock().succeeded(&name_key);
            self.inner
                .verified
                .lock()
                .insert(user.to_string(), (digest, self.clock().now()));
            Ok(())
        } else {
            self.inner
                .throttle
                .lock()
                .failed(name_key, address, self.clock().now());
            self.audit_login(user, peer, "invalid user name or password");
            warn!(
                user = %shown(user),
                peer = %shown_peer(peer),
                "login refused: invalid user name or password"
            );
            Err(LoginError::BadCredentials)
        }
    }

    /// Verifies the argon2 hash (a dummy one for unknown names) on the
    /// blocking pool (the caller holds a verification permit).
    async fn check_password(
        &self,
        phc: Option<String>,
        password: &str,
    ) -> Result<bool, LoginError> {
        let users = self.clone();
        let password = password.to_string();
        tokio::task::spawn_blocking(move || match phc {
            Some(phc) => Ok(verify_phc(&phc, &password)),
            None => {
                // Spent for its time only: an unknown name answers as late
                // as a known one.
                let _ = verify_phc(&users.dummy()?, &password);
                Ok(false)
            }
        })
        .await
        .map_err(|e| LoginError::Internal(e.to_string()))?
    }

    /// The hash verified for unknown names: a random password's, with the
    /// parameters of a configured hash.
    fn dummy(&self) -> Result<String, LoginError> {
        if let Some(d) = self.inner.dummy.get() {
            return Ok(d.clone());
        }
        let params = self
            .inner
            .hashes
            .values()
            .next()
            .and_then(|phc| {
                PasswordHash::new(phc)
                    .ok()
                    .and_then(|h| Params::try_from(&h).ok())
            })
            .unwrap_or_else(default_params);
        let mut random = [0u8; 16];
        rand::rng().fill_bytes(&mut random);
        let password = base64::engine::general_purpose::STANDARD.encode(random);
        let hash = hash_with(&password, params).map_err(|e| LoginError::Internal(e.to_string()))?;
        Ok(self.inner.dummy.get_or_init(|| hash).clone())
    }
}

/// The failure table's key of a client address: IPv6 clients by their /64
/// (one host usually holds a whole /64), IPv4 as it is.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

/// Recent failed logins of one user name or one address.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

/// Failed logins by key, bounded to [`MAX_TRACKED`] keys.
#[derive(Debug)]
struct FailureTable<K> {
    /// Failures allowed before each further one waits.
    free: u32,
    entries: HashMap<K, Failures>,
}

impl<K: Hash + Eq + Copy> FailureTable<K> {
    fn new(free: u32) -> Self {
        Self {
            free,
            entries: HashMap::new(),
        }
    }

    /// How long `key` must still wait, if at all.
    fn blocked(&self, key: &K, now: Instant) -> Option<Duration> {
        let until = self.entries.get(key)?.blocked_until?;
        let left = until.saturating_duration_since(now);
        (!left.is_zero()).then_some(left)
    }

    fn failed(&mut self, key: K, now: Instant) {
        if !self.entries.contains_key(&key) && self.entries.len() >= MAX_TRACKED {
            self.make_room(now);
        }
        let fresh = Failures {
            count: 0,
            last: now,
            blocked_until: None,
        };
        let f = self.entries.entry(key).or_insert(fresh);
        if now.saturating_duration_since(f.last) >= FORGET_FAILURES_AFTER {
            *f = fresh;
        }
        f.count += 1;
        f.last = now;
        if f.count >= self.free {
            let doublings = (f.count - self.free).min(16);
            let delay = FIRST_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY);
            f.blocked_until = Some(now + delay);
        }
    }

    fn forget(&mut self, key: &K) {
        self.entries.remove(key);
    }

    /// Drops the forgotten entries, or else the one failed longest ago.
    fn make_room(&mut self, now: Instant) {
        self.entries
            .retain(|_, f| now.saturating_duration_since(f.last) < FORGET_FAILURES_AFTER);
        if self.entries.len() >= MAX_TRACKED {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, f)| f.last)
                .map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                self.entries.remove(&oldest);
            }
        }
    }
}

/// Failed logins per user name (as a keyed digest) and per address.
#[derive(Debug)]
struct Throttle {
    by_name: FailureTable<Digest>,
    by_address: FailureTable<IpAddr>,
}

impl Default for Throttle {
    fn default() -> Self {
        Self {
            by_name: FailureTable::new(FREE_FAILURES_PER_USER),
            by_address: FailureTable::new(FREE_FAILURES_PER_ADDRESS),
        }
    }
}

impl Throttle {
    fn blocked(&self, name: &Digest, peer: Option<&IpAddr>, now: Instant) -> Option<Duration> {
        let by_name = self.by_name.blocked(name, now);
        let by_address = peer.and_then(|p| self.by_address.blocked(p, now));
        by_name.max(by_address)
    }

    fn failed(&mut self, name: Digest, peer: Option<IpAddr>, now: Instant) {
        self.by_name.failed(name, now);
        if let Some(p) = peer {
            self.by_address.failed(p, now);
        }
    }

    /// A success clears the name's failures, not the address's: otherwise
    /// anyone holding one valid account (the collector's write key sits in
    /// web pages) could reset the address between guesses at others.
    fn succeeded(&mut self, name: &Digest) {
        self.by_name.forget(name);
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

/// How long sessions live and how many a user may hold.
#[derive(Debug, Clone)]
pub struct SessionPolicy {
    /// A session unused for this long is refused and dropped.
    pub idle_timeout: Duration,
    /// A session (its bearer token) is refused this long after its login,
    /// however busy.
    pub max_lifetime: Duration,
    /// Open sessions per user at most: a new login beyond it closes the
    /// user's least recently used session.
    pub max_per_user: usize,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(8 * 3600),
            max_lifetime: Duration::from_secs(24 * 3600),
            max_per_user: 64,
        }
    }
}

/// A logged-in connection.
#[derive(Debug)]
pub struct ClientSession {
    pub token: String,
    pub session: Session,
    created: Instant,
    last_used: Mutex<Instant>,
    /// Queries planned at GetFlightInfo, for their DoGet.
    pub(crate) planned: crate::planned::PlannedStatements,
}

impl ClientSession {
    pub fn user(&self) -> &str {
        self.session.user()
    }

    fn last_used(&self) -> Instant {
        *self.last_used.lock()
    }

    fn expired(&self, now: Instant, policy: &SessionPolicy) -> bool {
        now.saturating_duration_since(self.last_used()) >= policy.idle_timeout
            || now.saturating_duration_since(self.created) >= policy.max_lifetime
    }
}

/// The open sessions.
#[derive(Debug)]
struct Table {
    by_token: HashMap<String, Arc<ClientSession>>,
    /// user -> (digest of the password, token) of the session that HTTP
    /// Basic on ordinary calls shares.
    basic: HashMap<String, (Digest, String)>,
    next_sweep: Instant,
}

impl Table {
    fn remove(&mut self, token: &str) -> Option<Arc<ClientSession>> {
        let removed = self.by_token.remove(token)?;
        if self
            .basic
            .get(removed.user())
            .is_some_and(|(_, t)| t == token)
        {
            self.basic.remove(removed.user());
        }
        Some(removed)
    }

    /// The live session of `token` (marked used), or why not: an expired
    /// one is removed.
    fn live(
        &mut self,
        token: &str,
        now: Instant,
        policy: &SessionPolicy,
    ) -> Result<Arc<ClientSession>> {
        let s = self.by_token.get(token).ok_or_else(|| {
            ServerError::Unauthenticated("invalid or expired token: log in again".into())
        })?;
        if s.expired(now, policy) {
            self.remove(token);
            return Err(ServerError::Unauthenticated(
                "session expired: log in again".into(),
            ));
        }
        *s.last_used.lock() = now;
        Ok(Arc::clone(s))
    }

    fn sweep(&mut self, now: Instant, policy: &SessionPolicy) {
        let expired: Vec<String> = self
            .by_token
            .iter()
            .filter(|(_, s)| s.expired(now, policy))
            .map(|(t, _)| t.clone())
            .collect();
        for token in expired {
            self.remove(&token);
        }
        self.next_sweep = now + SWEEP_INTERVAL;
    }

    fn sweep_if_due(&mut self, now: Instant, policy: &SessionPolicy) {
        if now >= self.next_sweep {
            self.sweep(now, policy);
        }
    }
}

/// Bearer token -> session, with idle expiry and an absolute lifetime
/// checked on every use, a cap per user and one overall.
#[derive(Debug)]
pub struct Sessions {
    engine: Arc<Engine>,
    users: Users,
    policy: SessionPolicy,
    table: Mutex<Table>,
}

impl Sessions {
    pub fn new(engine: Arc<Engine>, users: Users, mut policy: SessionPolicy) -> Self {
        policy.max_per_user = policy.max_per_user.max(1);
        let now = users.clock().now();
        Self {
            engine,
            users,
            policy,
            table: Mutex::new(Table {
                by_token: HashMap::new(),
                basic: HashMap::new(),
                next_sweep: now + SWEEP_INTERVAL,
            }),
        }
    }

    fn now(&self) -> Instant {
        self.users.clock().now()
    }

    /// Checks a password (see [`Users::verify`]) and opens a session.
    pub async fn login(
        &self,
        user: &str,
        password: &str,
        peer: Option<SocketAddr>,
    ) -> Result<Arc<ClientSession>> {
        self.users
            .verify(user, password, peer.map(|p| p.ip()))
            .await?;
        let client = self.open(user, None, peer)?;
        info!(user = %shown(user), peer = %shown_peer(peer), "login");
        Ok(client)
    }

    /// Opens a session for `user` (already authenticated). With `basic`,
    /// it becomes the session HTTP Basic calls with that password share,
    /// unless another call made one meanwhile (then that one is returned).
    /// `peer`: the client's address, kept with the session for the audit
    /// trail (a shared Basic session keeps its opener's).
    fn open(
        &self,
        user: &str,
        basic: Option<Digest>,
        peer: Option<SocketAddr>,
    ) -> Result<Arc<ClientSession>> {
        // Outside the lock: a session state takes a while to build.
        let session = self.engine.session(user)?.with_client(peer);
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let now = self.now();
        let client = Arc::new(ClientSession {
            token: token.clone(),
            session,
            created: now,
            last_used: Mutex::new(now),
            planned: Default::default(),
        });
        let mut table = self.table.lock();
        if let Some(digest) = &basic
            && let Some(shared) = self.basic_session(&mut table, user, digest, now)
        {
            return Ok(shared);
        }
        table.sweep(now, &self.policy);
        let mine: Vec<(&String, Instant)> = table
            .by_token
            .iter()
            .filter(|(_, s)| s.user() == user)
            .map(|(t, s)| (t, s.last_used()))
            .collect();
        if mine.len() >= self.policy.max_per_user {
            let lru = mine
                .iter()
                .min_by_key(|(_, used)| *used)
                .map(|(t, _)| (*t).clone());
            if let Some(lru) = lru {
                table.remove(&lru);
                info!(
                    user = %shown(user),
                    max_per_user = self.policy.max_per_user,
                    "session cap reached: closed the user's least recently used session"
                );
            }
        }
        if table.by_token.len() >= MAX_SESSIONS {
            return Err(ServerError::Unauthenticated(
                "too many open sessions".into(),
            ));
        }
        table.by_token.insert(token.clone(), Arc::clone(&client));
        if let Some(digest) = basic {
            table.basic.insert(user.to_string(), (digest, token));
        }
        Ok(client)
    }

    /// The live session Basic calls of `user` with the password of
    /// `digest` share, if any.
    fn basic_session(
        &self,
        table: &mut Table,
        user: &str,
        digest: &Digest,
        now: Instant,
    ) -> Option<Arc<ClientSession>> {
        let (d, token) = table.basic.get(user)?;
        if !constant_time_eq(d, digest) {
            return None;
        }
        let token = token.clone();
        table.live(&token, now, &self.policy).ok()
    }

    /// The session of a bearer token; an expired one is refused and
    /// dropped.
    pub fn get(&self, token: &str) -> Result<Arc<ClientSession>> {
        let now = self.now();
        let mut table = self.table.lock();
        table.sweep_if_due(now, &self.policy);
        table.live(token, now, &self.policy)
    }

    /// Authenticates a request from its `authorization` header value:
    /// `Bearer <token>`, or `Basic <b64>` (the user's shared Basic session,
    /// opened by the first such call; the password is verified only then).
    pub async fn authenticate(
        &self,
        header: Option<&str>,
        peer: Option<SocketAddr>,
    ) -> Result<Arc<ClientSession>> {
        let header = header.ok_or_else(|| {
            ServerError::Unauthenticated(
                "missing authorization header: log in with Handshake first".into(),
            )
        })?;
        if let Some(token) = strip_scheme(header, "bearer") {
            self.get(token.trim())
        } else if let Some(b64) = strip_scheme(header, "basic") {
            let (user, password) = decode_basic(b64)?;
            // Keyed by the password's current hash too: after ALTER USER or
            // DROP USER the old password finds no shared session.
            let phc = self.users.current_hash(&user).await?;
            let digest = self
                .users
                .digest(&user, &password, phc.as_deref().unwrap_or_default());
            {
                let now = self.now();
                let mut table = self.table.lock();
                table.sweep_if_due(now, &self.policy);
                if let Some(shared) = self.basic_session(&mut table, &user, &digest, now) {
                    return Ok(shared);
                }
            }
            self.users
                .verify(&user, &password, peer.map(|p| p.ip()))
                .await?;
            self.open(&user, Some(digest), peer)
        } else {
            Err(ServerError::Unauthenticated(
                "unsupported authorization scheme".into(),
            ))
        }
    }

    pub fn close(&self, token: &str) {
        self.table.lock().remove(token);
    }

    /// Open sessions (expired ones not yet swept included).
    pub fn len(&self) -> usize {
        self.table.lock().by_token.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

    /// Cheap argon2 parameters: the tests hash and verify many times.
    fn cheap() -> Params {
        Params::new(Params::MIN_M_COST, 1, 1, None).expect("valid params")
    }

    fn users(entries: &[&str]) -> (Users, Clock) {
        let clock = Clock::manual();
        let users = Users::parse_with(entries.iter().copied(), cheap(), clock.clone()).unwrap();
        (users, clock)
    }

    fn basic(user: &str, password: &str) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {b64}")
    }

    async fn sessions(
        entries: &[&str],
        policy: SessionPolicy,
    ) -> (Sessions, Clock, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(seglake_engine::EngineConfig::new(
            dir.path().to_str().unwrap(),
        ))
        .await
        .unwrap();
        let (users, clock) = users(entries);
        (Sessions::new(engine, users, policy), clock, dir)
    }

    /// The gRPC code a client receives for `e`, and its message.
    fn status(e: ServerError) -> (tonic::Code, String) {
        let s = tonic::Status::from(e);
        (s.code(), s.message().to_string())
    }

    const PEER: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)));

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
        assert_eq!(strip_scheme("bearer abc", "Bearer"), Some("abc"));
        assert_eq!(strip_scheme("Basic abc", "bearer"), None);
    }

    #[tokio::test]
    async fn clear_passwords_are_stored_as_salted_argon2id() {
        let (u, _) = users(&["alice:secret", "bob:secret"]);
        let a = &u.inner.hashes["alice"];
        let b = &u.inner.hashes["bob"];
        assert!(a.starts_with("$argon2id$v=19$"), "{a}");
        assert!(!a.contains("secret"));
        // The same password, two salts: two different hashes.
        assert_ne!(a, b);
        assert!(u.verify("alice", "secret", PEER).await.is_ok());
        assert!(matches!(
            u.verify("alice", "pw", PEER).await,
            Err(LoginError::BadCredentials)
        ));
        assert!(matches!(
            u.verify("carol", "secret", PEER).await,
            Err(LoginError::BadCredentials)
        ));
    }

    #[tokio::test]
    async fn argon2id_hashes_are_accepted() {
        // Made with the argon2 crate directly, as an operator would with
        // any argon2id tool; its parameters contain commas.
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let phc = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(64, 1, 2, None).unwrap(),
        )
        .hash_password(b"p4ss,word", &salt)
        .unwrap()
        .to_string();
        assert!(phc.contains("m=64,t=1,p=2"), "{phc}");
        // One value with two entries, the way SEGLAKE_USERS holds them.
        let (u, _) = users(&[&format!("alice:{phc},bob:pw,")]);
        let mut names = u.names();
        names.sort();
        assert_eq!(names, ["alice", "bob"]);
        assert_eq!(u.inner.hashes["alice"], phc, "kept as given");
        assert!(u.verify("alice", "p4ss,word", PEER).await.is_ok());
        assert!(u.verify("alice", "p4ss", PEER).await.is_err());
        assert!(u.verify("bob", "pw", PEER).await.is_ok());
        assert_eq!(
            split_entries("a:p,w,b:x:y,,c:$argon2id$v=19$m=64,t=1,p=2$s$h"),
            ["a:p,w", "b:x:y", "c:$argon2id$v=19$m=64,t=1,p=2$s$h"]
        );
    }

    #[test]
    fn parse_errors() {
        let parse = |e: &str| Users::parse_with([e], cheap(), Clock::manual());
        for bad in [
            "nopassword",
            ":x",
            "alice:",
            // argon2i and argon2d are not accepted, nor a broken string.
            "alice:$argon2i$v=19$m=64,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$cmFuZG9tYnl0ZXNyYW5kb21ieXRlcw",
            "alice:$argon2id$v=19$m=64,t=1,p=1$broken",
            "alice:$argon2id$v=16$m=64,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$cmFuZG9tYnl0ZXNyYW5kb21ieXRlcw",
            // A cost far above the bound.
            "alice:$argon2id$v=19$m=4194304,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$cmFuZG9tYnl0ZXNyYW5kb21ieXRlcw",
        ] {
            let e = parse(bad).expect_err(bad).to_string();
            let secret = bad.split_once(':').map_or(bad, |(_, s)| s);
            assert!(secret.len() < 4 || !e.contains(secret), "{e}");
        }
        // The error names the user, never the password.
        let e = parse("alice:").unwrap_err().to_string();
        assert!(e.contains("\"alice\""), "{e}");
    }

    #[test]
    fn shown_names_are_escaped_and_cut() {
        assert_eq!(shown("alice"), "\"alice\"");
        assert_eq!(shown("a\nINFO forged"), "\"a\\nINFO forged\"");
        let long = "x".repeat(1000);
        assert!(shown(&long).len() < 80);
    }

    #[tokio::test]
    async fn failed_logins_are_throttled_per_user_and_per_address() {
        let (u, clock) = users(&["alice:right", "bob:right"]);
        let other = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2)));
        for _ in 0..FREE_FAILURES_PER_USER {
            assert!(matches!(
                u.verify("alice", "wrong", PEER).await,
                Err(LoginError::BadCredentials)
            ));
        }
        // Now even the right password is refused, from any address.
        for peer in [PEER, other] {
            match u.verify("alice", "right", peer).await {
                Err(LoginError::Throttled { retry_after }) => {
                    assert_eq!(retry_after, FIRST_DELAY);
                }
                other => panic!("expected throttled, got {other:?}"),
            }
        }
        // Another user from the same address is not affected.
        assert!(u.verify("bob", "right", PEER).await.is_ok());
        // Once the delay has passed, the right password gets in and clears
        // the count: five more failures before the next wait.
        clock.advance(FIRST_DELAY);
        assert!(u.verify("alice", "right", PEER).await.is_ok());
        // A wrong password now is checked (and fails), not throttled.
        assert!(matches!(
            u.verify("alice", "wrong", PEER).await,
            Err(LoginError::BadCredentials)
        ));
    }

    #[tokio::test]
    async fn throttle_delays_double_up_to_the_cap() {
        let (u, clock) = users(&["alice:right"]);
        let mut expected = FIRST_DELAY;
        for failure in 1..=(FREE_FAILURES_PER_USER + 8) {
            assert!(matches!(
                u.verify("alice", "wrong", None).await,
                Err(LoginError::BadCredentials)
            ));
            if failure < FREE_FAILURES_PER_USER {
                continue;
            }
            match u.verify("alice", "right", None).await {
                Err(LoginError::Throttled { retry_after }) => assert_eq!(retry_after, expected),
                other => panic!("failure {failure}: expected throttled, got {other:?}"),
            }
            clock.advance(expected);
            expected = (expected * 2).min(MAX_DELAY);
        }
        assert_eq!(expected, MAX_DELAY);
        // Quiet for long enough: forgotten.
        clock.advance(FORGET_FAILURES_AFTER);
        assert!(u.verify("alice", "wrong", None).await.is_err());
        assert!(u.verify("alice", "right", None).await.is_ok());
    }

    #[tokio::test]
    async fn an_address_rotating_user_names_is_throttled() {
        let (u, _) = users(&["alice:right"]);
        for i in 0..FREE_FAILURES_PER_ADDRESS {
            assert!(matches!(
                u.verify(&format!("guess{i}"), "x", PEER).await,
                Err(LoginError::BadCredentials)
            ));
        }
        assert!(matches!(
            u.verify("alice", "right", PEER).await,
            Err(LoginError::Throttled { .. })
        ));
        // IPv6 neighbours in the same /64 share a count.
        assert_eq!(
            address_key("2001:db8::1".parse().unwrap()),
            address_key("2001:db8::ffff:1".parse().unwrap())
        );
        assert_ne!(
            address_key("2001:db8:0:1::1".parse().unwrap()),
            address_key("2001:db8::1".parse().unwrap())
        );
        // Another address is not affected.
        assert!(u.verify("alice", "right", None).await.is_ok());
    }

    #[test]
    fn failure_tables_are_bounded() {
        let start = Instant::now();
        let mut t = FailureTable::<u32>::new(5);
        for i in 0..(MAX_TRACKED as u32 + 500) {
            t.failed(i, start + Duration::from_millis(u64::from(i)));
        }
        assert_eq!(t.entries.len(), MAX_TRACKED);
        // The oldest went first.
        assert!(!t.entries.contains_key(&0));
        assert!(t.entries.contains_key(&(MAX_TRACKED as u32 + 499)));
    }

    #[tokio::test]
    async fn sessions_expire_when_idle_on_every_use() {
        let policy = SessionPolicy {
            idle_timeout: Duration::from_secs(10),
            ..SessionPolicy::default()
        };
        let (s, clock, _dir) = sessions(&["alice:pw"], policy).await;
        let a = s.login("alice", "pw", None).await.unwrap();
        // Used within the timeout: alive, and each use restarts the clock.
        for _ in 0..3 {
            clock.advance(Duration::from_secs(9));
            assert!(s.get(&a.token).is_ok());
        }
        clock.advance(Duration::from_secs(10));
        // No other login happened: the expiry is checked on use.
        let (code, message) = status(s.get(&a.token).unwrap_err());
        assert_eq!(code, tonic::Code::Unauthenticated);
        assert!(message.contains("session expired"), "{message}");
        assert_eq!(s.len(), 0, "the expired session is dropped");
        assert!(s.get(&a.token).is_err());
    }

    #[tokio::test]
    async fn sessions_have_an_absolute_lifetime() {
        let policy = SessionPolicy {
            idle_timeout: Duration::from_secs(100),
            max_lifetime: Duration::from_secs(250),
            ..SessionPolicy::default()
        };
        let (s, clock, _dir) = sessions(&["alice:pw"], policy).await;
        let a = s.login("alice", "pw", None).await.unwrap();
        for _ in 0..4 {
            clock.advance(Duration::from_secs(60));
            assert!(s.get(&a.token).is_ok());
        }
        clock.advance(Duration::from_secs(10));
        let (code, message) = status(s.get(&a.token).unwrap_err());
        assert_eq!(code, tonic::Code::Unauthenticated);
        assert!(message.contains("session expired"), "{message}");
    }

    #[tokio::test]
    async fn expired_sessions_are_swept_without_being_used() {
        let policy = SessionPolicy {
            idle_timeout: Duration::from_secs(10),
            ..SessionPolicy::default()
        };
        let (s, clock, _dir) = sessions(&["alice:pw", "bob:pw"], policy).await;
        for _ in 0..5 {
            s.login("alice", "pw", None).await.unwrap();
        }
        let b = s.login("bob", "pw", None).await.unwrap();
        assert_eq!(s.len(), 6);
        // Bob stays busy; alice's sessions are never used again.
        for _ in 0..(SWEEP_INTERVAL.as_secs() / 5 + 1) {
            clock.advance(Duration::from_secs(5));
            s.get(&b.token).unwrap();
        }
        assert_eq!(s.len(), 1);
    }

    #[tokio::test]
    async fn one_user_at_the_cap_does_not_lock_out_another() {
        let policy = SessionPolicy {
            max_per_user: 3,
            ..SessionPolicy::default()
        };
        let (s, clock, _dir) = sessions(&["alice:pw", "bob:pw"], policy).await;
        let mut alice = vec![];
        for _ in 0..3 {
            alice.push(s.login("alice", "pw", None).await.unwrap());
            clock.advance(Duration::from_secs(1));
        }
        // The first is the least recently used once the others are used.
        s.get(&alice[1].token).unwrap();
        s.get(&alice[2].token).unwrap();
        let fourth = s.login("alice", "pw", None).await.unwrap();
        assert_eq!(s.len(), 3);
        let (code, _) = status(s.get(&alice[0].token).unwrap_err());
        assert_eq!(code, tonic::Code::Unauthenticated);
        for kept in [&alice[1], &alice[2], &fourth] {
            assert!(s.get(&kept.token).is_ok());
        }
        // Bob logs in whatever alice does.
        for _ in 0..10 {
            s.login("alice", "pw", None).await.unwrap();
        }
        let b = s.login("bob", "pw", None).await.unwrap();
        assert!(s.get(&b.token).is_ok());
        assert_eq!(s.len(), 4);
    }

    #[tokio::test]
    async fn basic_on_every_call_shares_one_session() {
        let policy = SessionPolicy {
            idle_timeout: Duration::from_secs(10),
            ..SessionPolicy::default()
        };
        let (s, clock, _dir) = sessions(&["alice:pw", "bob:pw"], policy).await;
        let header = basic("alice", "pw");
        let first = s.authenticate(Some(&header), None).await.unwrap();
        for _ in 0..100 {
            let again = s.authenticate(Some(&header), None).await.unwrap();
            assert_eq!(again.token, first.token);
        }
        assert_eq!(s.len(), 1);
        // A wrong password does not get the shared session.
        let e = s
            .authenticate(Some(&basic("alice", "nope")), None)
            .await
            .unwrap_err();
        assert_eq!(status(e).0, tonic::Code::Unauthenticated);
        // Bob's calls get their own.
        let b = s
            .authenticate(Some(&basic("bob", "pw")), None)
            .await
            .unwrap();
        assert_ne!(b.token, first.token);
        assert_eq!(s.len(), 2);
        // The shared session dies with its idle timeout; the next call
        // opens a new one in its place.
        clock.advance(Duration::from_secs(10));
        let next = s.authenticate(Some(&header), None).await.unwrap();
        assert_ne!(next.token, first.token);
        assert!(s.get(&first.token).is_err());
        assert_eq!(s.len(), 1, "bob's idle session went too");
    }

    #[tokio::test]
    async fn verified_passwords_are_not_verified_again() {
        let (u, clock) = users(&["alice:pw"]);
        u.verify("alice", "pw", None).await.unwrap();
        // While the verification is fresh, the hash is not touched: a
        // throttled name still gets in with the password it proved.
        for _ in 0..(FREE_FAILURES_PER_USER + 1) {
            let _ = u.verify("alice", "wrong", None).await;
        }
        assert!(u.verify("alice", "pw", None).await.is_ok());
        // Once it is stale, the throttle applies again (one more failure:
        // the earlier delay has passed meanwhile).
        clock.advance(VERIFIED_TTL);
        let _ = u.verify("alice", "wrong", None).await;
        assert!(matches!(
            u.verify("alice", "pw", None).await,
            Err(LoginError::Throttled { .. })
        ));
    }
}
