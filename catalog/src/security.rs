//! Users, roles and grants: who may read and change what (`docs/security.md`).
//!
//! The model is small and deny-by-default:
//! - a **user** logs in with a password (kept only as an argon2id hash) and
//!   holds roles; a **role** is a named set of grants;
//! - a **grant** gives one privilege on one securable to a user or a role:
//!   `SELECT`, `INSERT`, `UPDATE`, `DELETE` on a table or on every table of
//!   a schema (those present and those created later), `CREATE` on a schema
//!   (create, replace and drop its tables), and Seglake's own privileges on
//!   the whole warehouse: `SEGMENTS` (define, change, refresh and drop
//!   segments), `ACTIVATE` (destinations and activations), `FORGET`
//!   (`FORGET PROFILE`), `MAINTAIN` (`VACUUM`, `OPTIMIZE`), `EXTERNAL`
//!   (external tables over files);
//! - two built-in roles: `admin` (everything, user and grant management
//!   included) and `reader` (`SELECT` on every table, segment and the
//!   system tables that hold no secret nor personal data);
//! - users given to the server at start (`--user`) are administrators.
//!
//! Nothing here evaluates SQL: the engine's check step computes what a
//! statement reads and writes and asks [`Principal::may`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{CatalogError, Result};

/// The built-in role that may do everything.
pub const ADMIN_ROLE: &str = "admin";
/// The built-in role that reads every table and segment.
pub const READER_ROLE: &str = "reader";

/// Users, roles and grants, as the catalog stores them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Security {
    #[serde(default)]
    pub users: BTreeMap<String, UserEntry>,
    #[serde(default)]
    pub roles: BTreeMap<String, RoleEntry>,
    #[serde(default)]
    pub grants: BTreeSet<Grant>,
    /// Ingest keys of the HTTP collector (`CREATE INGEST KEY`), by name.
    #[serde(default)]
    pub ingest_keys: BTreeMap<String, IngestKey>,
}

/// A credential that only appends events to one table through the HTTP
/// collector (a web tag's, public in its page): never a SQL login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestKey {
    pub schema: String,
    pub table: String,
    /// Browser origins allowed to post with it (CORS); empty: none (server
    /// to server only).
    #[serde(default)]
    pub origins: Vec<String>,
    /// SHA-256 of the key, hex: the key itself is shown once, at creation
    /// (256 random bits: a fast hash is enough, no salt needed).
    pub key_sha256: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    /// When the collector last accepted a request with it (to the
    /// minute: servers record uses at most once a minute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A new ingest key: `sgk_` and 64 hex digits (256 random bits).
pub fn new_ingest_key() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let mut key = String::from("sgk_");
    for b in bytes {
        key.push_str(&format!("{b:02x}"));
    }
    key
}

/// The SHA-256 of an ingest key, hex (what the catalog keeps).
pub fn ingest_key_digest(key: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks a CORS origin: `http(s)://host[:port]`, nothing after it.
pub fn check_origin(origin: &str) -> Result<()> {
    let bad = || {
        CatalogError::InvalidSecurity(format!(
            "origin '{}' is not scheme://host[:port] (for example https://shop.example)",
            origin.escape_debug()
        ))
    };
    let url = url::Url::parse(origin).map_err(|_| bad())?;
    let canonical = url.origin().ascii_serialization();
    if !matches!(url.scheme(), "http" | "https") || canonical != origin {
        return Err(bad());
    }
    Ok(())
}

/// A user created with `CREATE USER`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserEntry {
    /// argon2id, PHC string format (`$argon2id$v=19$...`): never the
    /// password.
    pub password_hash: String,
    #[serde(default)]
    pub roles: BTreeSet<String>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

/// A role created with `CREATE ROLE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleEntry {
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

/// What a grant allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Privilege {
    Select,
    Insert,
    Update,
    Delete,
    /// Create, replace and drop the tables of a schema.
    Create,
    /// Define, change, refresh and drop segments.
    Segments,
    /// Create and drop destinations, activate and deactivate segments.
    Activate,
    /// `FORGET PROFILE`.
    Forget,
    /// `VACUUM` and `OPTIMIZE`.
    Maintain,
    /// `CREATE EXTERNAL TABLE` (over files in the allowed locations).
    External,
}

impl Privilege {
    pub const ALL: [Privilege; 10] = [
        Self::Select,
        Self::Insert,
        Self::Update,
        Self::Delete,
        Self::Create,
        Self::Segments,
        Self::Activate,
        Self::Forget,
        Self::Maintain,
        Self::External,
    ];

    /// The SQL keyword.
    pub fn name(self) -> &'static str {
        match self {
            Self::Select => "SELECT",
            Self::Insert => "INSERT",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
            Self::Create => "CREATE",
            Self::Segments => "SEGMENTS",
            Self::Activate => "ACTIVATE",
            Self::Forget => "FORGET",
            Self::Maintain => "MAINTAIN",
            Self::External => "EXTERNAL",
        }
    }

    pub fn parse(word: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(word))
    }

    /// The privileges `ALL` stands for on `on`.
    pub fn all_on(on: &Securable) -> &'static [Privilege] {
        match on {
            Securable::Table { .. } | Securable::AllTablesIn { .. } => {
                &[Self::Select, Self::Insert, Self::Update, Self::Delete]
            }
            Securable::Schema { .. } => &[Self::Create],
            Securable::Warehouse => &[
                Self::Segments,
                Self::Activate,
                Self::Forget,
                Self::Maintain,
                Self::External,
            ],
        }
    }

    /// Whether this privilege can be granted on `on`.
    pub fn applies_to(self, on: &Securable) -> bool {
        Self::all_on(on).contains(&self)
    }
}

impl fmt::Display for Privilege {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a grant is on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Securable {
    /// One table (or view, segment, system table) by schema and name.
    Table { schema: String, table: String },
    /// Every table of a schema, present and future.
    AllTablesIn { schema: String },
    /// A schema itself (`CREATE`).
    Schema { schema: String },
    /// The whole warehouse (Seglake's own privileges).
    Warehouse,
}

impl fmt::Display for Securable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Table { schema, table } => write!(f, "TABLE {schema}.{table}"),
            Self::AllTablesIn { schema } => write!(f, "ALL TABLES IN SCHEMA {schema}"),
            Self::Schema { schema } => write!(f, "SCHEMA {schema}"),
            Self::Warehouse => f.write_str("WAREHOUSE"),
        }
    }
}

/// One privilege on one securable, given to a user or a role.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Grant {
    pub grantee: String,
    pub privilege: Privilege,
    pub on: Securable,
}

/// An argon2id PHC string of `password` with a fresh random salt and the
/// OWASP parameters (19 MiB, 2 passes, 1 lane): slow by design, run it
/// off the async threads.
pub fn hash_password(password: &str) -> Result<String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    use rand::RngCore;
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| CatalogError::InvalidSecurity(format!("password salt: {e}")))?;
    let hash = argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| CatalogError::InvalidSecurity(format!("password hash: {e}")))?;
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `phc` (slow: argon2).
pub fn verify_password(phc: &str, password: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(phc).is_ok_and(|hash| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// Whether a name is a built-in role's.
pub fn is_builtin_role(name: &str) -> bool {
    name == ADMIN_ROLE || name == READER_ROLE
}

/// User and role names: letters, digits, `_`, `-`, `.` and `@`, starting
/// with a letter or digit, at most 63 characters (they appear unquoted in
/// logs and in `system.users`).
pub fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'));
    if ok {
        Ok(())
    } else {
        Err(CatalogError::InvalidSecurity(format!(
            "invalid {what} name '{}': use letters, digits, '_', '-', '.' or '@', starting \
             with a letter or digit, at most 63 characters",
            name.escape_debug()
        )))
    }
}

impl Security {
    pub fn user(&self, name: &str) -> Result<&UserEntry> {
        self.users
            .get(name)
            .ok_or_else(|| CatalogError::UserNotFound(name.to_string()))
    }

    /// Whether `name` names a role (built-in or created).
    pub fn is_role(&self, name: &str) -> bool {
        is_builtin_role(name) || self.roles.contains_key(name)
    }

    /// `CREATE USER`. `reserved`: names taken outside the catalog (the
    /// server's `--user` administrators).
    pub fn create_user(
        &mut self,
        name: &str,
        password_hash: String,
        if_not_exists: bool,
        reserved: &dyn Fn(&str) -> bool,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        check_name("user", name)?;
        if self.users.contains_key(name) {
            return if if_not_exists {
                Ok(())
            } else {
                Err(CatalogError::UserExists(name.to_string()))
            };
        }
        if self.is_role(name) || reserved(name) {
            return Err(CatalogError::UserExists(name.to_string()));
        }
        self.users.insert(
            name.to_string(),
            UserEntry {
                password_hash,
                roles: BTreeSet::new(),
                created_at: now,
                created_by: by.to_string(),
            },
        );
        Ok(())
    }

    /// `ALTER USER ... WITH PASSWORD`.
    pub fn set_password(&mut self, name: &str, password_hash: String) -> Result<()> {
        self.users
            .get_mut(name)
            .ok_or_else(|| CatalogError::UserNotFound(name.to_string()))?
            .password_hash = password_hash;
        Ok(())
    }

    /// `DROP USER`: the user and its grants.
    pub fn drop_user(&mut self, name: &str, if_exists: bool) -> Result<()> {
        if self.users.remove(name).is_none() {
            return if if_exists {
                Ok(())
            } else {
                Err(CatalogError::UserNotFound(name.to_string()))
            };
        }
        self.grants.retain(|g| g.grantee != name);
        Ok(())
    }

    /// `CREATE ROLE`.
    pub fn create_role(
        &mut self,
        name: &str,
        if_not_exists: bool,
        reserved: &dyn Fn(&str) -> bool,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        check_name("role", name)?;
        if self.roles.contains_key(name) {
            return if if_not_exists {
                Ok(())
            } else {
                Err(CatalogError::RoleExists(name.to_string()))
            };
        }
        if is_builtin_role(name) || self.users.contains_key(name) || reserved(name) {
            return Err(CatalogError::RoleExists(name.to_string()));
        }
        self.roles.insert(
            name.to_string(),
            RoleEntry {
                created_at: now,
                created_by: by.to_string(),
            },
        );
        Ok(())
    }

    /// `DROP ROLE`: the role, its grants and its memberships.
    pub fn drop_role(&mut self, name: &str, if_exists: bool) -> Result<()> {
        if is_builtin_role(name) {
            return Err(CatalogError::InvalidSecurity(format!(
                "'{name}' is a built-in role and cannot be dropped"
            )));
        }
        if self.roles.remove(name).is_none() {
            return if if_exists {
                Ok(())
            } else {
                Err(CatalogError::RoleNotFound(name.to_string()))
            };
        }
        self.grants.retain(|g| g.grantee != name);
        for user in self.users.values_mut() {
            user.roles.remove(name);
        }
        Ok(())
    }

    /// The roles `user` holds, once `role` is known to exist.
    fn roles_of_user(&mut self, role: &str, user: &str) -> Result<&mut BTreeSet<String>> {
        if !self.is_role(role) {
            return Err(CatalogError::RoleNotFound(role.to_string()));
        }
        Ok(&mut self
            .users
            .get_mut(user)
            .ok_or_else(|| CatalogError::UserNotFound(user.to_string()))?
            .roles)
    }

    /// `GRANT role TO user`.
    pub fn grant_role(&mut self, role: &str, user: &str) -> Result<()> {
        self.roles_of_user(role, user)?.insert(role.to_string());
        Ok(())
    }

    /// `REVOKE role FROM user`.
    pub fn revoke_role(&mut self, role: &str, user: &str) -> Result<()> {
        self.roles_of_user(role, user)?.remove(role);
        Ok(())
    }

    /// `GRANT privilege ON securable TO grantee`: `grantee` is a user or a
    /// created role (built-in roles have fixed rights).
    pub fn grant(&mut self, grant: Grant) -> Result<()> {
        self.check_grant(&grant)?;
        self.grants.insert(grant);
        Ok(())
    }

    /// `REVOKE privilege ON securable FROM grantee` (nothing to revoke is
    /// not an error, as in PostgreSQL).
    pub fn revoke(&mut self, grant: &Grant) -> Result<()> {
        self.check_grant(grant)?;
        self.grants.remove(grant);
        Ok(())
    }

    fn check_grant(&self, grant: &Grant) -> Result<()> {
        if is_builtin_role(&grant.grantee) {
            return Err(CatalogError::InvalidSecurity(format!(
                "'{}' is a built-in role: its rights are fixed (grant them to a role of your own)",
                grant.grantee
            )));
        }
        if !self.users.contains_key(&grant.grantee) && !self.roles.contains_key(&grant.grantee) {
            return Err(CatalogError::GranteeNotFound(grant.grantee.clone()));
        }
        if !grant.privilege.applies_to(&grant.on) {
            return Err(CatalogError::InvalidSecurity(format!(
                "{} cannot be granted ON {} (on a table: SELECT, INSERT, UPDATE, DELETE; on a \
                 schema: CREATE; ON WAREHOUSE: SEGMENTS, ACTIVATE, FORGET, MAINTAIN, EXTERNAL)",
                grant.privilege, grant.on
            )));
        }
        Ok(())
    }

    /// `CREATE INGEST KEY`.
    pub fn create_ingest_key(&mut self, name: &str, key: IngestKey) -> Result<()> {
        check_name("ingest key", name)?;
        for origin in &key.origins {
            check_origin(origin)?;
        }
        if self.ingest_keys.contains_key(name) {
            return Err(CatalogError::IngestKeyExists(name.to_string()));
        }
        self.ingest_keys.insert(name.to_string(), key);
        Ok(())
    }

    /// `DROP INGEST KEY`.
    pub fn drop_ingest_key(&mut self, name: &str, if_exists: bool) -> Result<()> {
        if self.ingest_keys.remove(name).is_none() && !if_exists {
            return Err(CatalogError::IngestKeyNotFound(name.to_string()));
        }
        Ok(())
    }

    /// Records uses of ingest keys (`uses`: key digest to the time of its
    /// last use) that are at least `step` newer than the recorded one;
    /// whether any was.
    pub fn record_key_uses(
        &mut self,
        uses: &std::collections::HashMap<String, DateTime<Utc>>,
        step: chrono::Duration,
    ) -> bool {
        let mut changed = false;
        for key in self.ingest_keys.values_mut() {
            if let Some(at) = uses.get(&key.key_sha256)
                && key.last_used_at.is_none_or(|last| *at - last >= step)
            {
                key.last_used_at = Some(*at);
                changed = true;
            }
        }
        changed
    }

    /// The ingest key whose secret is `key`, with its name.
    pub fn ingest_key(&self, key: &str) -> Option<(&str, &IngestKey)> {
        let digest = ingest_key_digest(key);
        self.ingest_keys
            .iter()
            .find(|(_, k)| k.key_sha256 == digest)
            .map(|(n, k)| (n.as_str(), k))
    }

    /// The principal `user` logs in as; `bootstrap`: a `--user`
    /// administrator of the server.
    pub fn principal(&self, user: &str, bootstrap: bool) -> Principal {
        let roles = self
            .users
            .get(user)
            .map(|u| u.roles.clone())
            .unwrap_or_default();
        Principal {
            name: user.to_string(),
            admin: bootstrap || roles.contains(ADMIN_ROLE),
            reader: roles.contains(READER_ROLE),
            grants: self
                .grants
                .iter()
                .filter(|g| g.grantee == user || roles.contains(&g.grantee))
                .cloned()
                .collect(),
            roles,
        }
    }
}

/// A user's rights, resolved once per statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub roles: BTreeSet<String>,
    pub admin: bool,
    /// Holds the built-in `reader` role.
    pub reader: bool,
    /// The user's own grants and its roles'.
    pub grants: Vec<Grant>,
}

impl Principal {
    /// An administrator (the server's own users, the scheduler's
    /// maintenance).
    pub fn admin(name: &str) -> Self {
        Self {
            name: name.to_string(),
            roles: [ADMIN_ROLE.to_string()].into(),
            admin: true,
            reader: false,
            grants: vec![],
        }
    }

    /// Whether a grant (of the user or one of its roles) gives `privilege`
    /// on `on`. Table privileges come from the table's own grant or its
    /// schema's `ALL TABLES`. Built-in roles are not consulted here (the
    /// engine knows which tables `reader` reads).
    pub fn granted(&self, privilege: Privilege, on: &Securable) -> bool {
        self.grants.iter().any(|g| {
            g.privilege == privilege
                && match (&g.on, on) {
                    (a, b) if a == b => true,
                    (Securable::AllTablesIn { schema: s }, Securable::Table { schema, .. }) => {
                        s == schema
                    }
                    _ => false,
                }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn none(_: &str) -> bool {
        false
    }

    fn table(schema: &str, table: &str) -> Securable {
        Securable::Table {
            schema: schema.into(),
            table: table.into(),
        }
    }

    fn grant(to: &str, privilege: Privilege, on: Securable) -> Grant {
        Grant {
            grantee: to.into(),
            privilege,
            on,
        }
    }

    #[test]
    fn ingest_keys_are_found_by_their_secret_only() {
        let mut s = Security::default();
        let secret = new_ingest_key();
        assert!(secret.starts_with("sgk_") && secret.len() == 68, "{secret}");
        assert_ne!(secret, new_ingest_key());
        let key = |origins: Vec<&str>| IngestKey {
            schema: "public".into(),
            table: "events".into(),
            origins: origins.into_iter().map(String::from).collect(),
            key_sha256: ingest_key_digest(&secret),
            created_at: now(),
            created_by: "root".into(),
            last_used_at: None,
        };
        for bad in [
            "https://shop.example/",
            "shop.example",
            "ftp://x",
            "https://a.b/path",
            "*",
        ] {
            assert!(
                matches!(
                    s.create_ingest_key("web", key(vec![bad])),
                    Err(CatalogError::InvalidSecurity(_))
                ),
                "{bad}"
            );
        }
        s.create_ingest_key(
            "web",
            key(vec!["https://shop.example", "http://localhost:8080"]),
        )
        .unwrap();
        assert!(matches!(
            s.create_ingest_key("web", key(vec![])),
            Err(CatalogError::IngestKeyExists(_))
        ));
        let (name, found) = s.ingest_key(&secret).unwrap();
        assert_eq!((name, found.table.as_str()), ("web", "events"));
        assert!(s.ingest_key(&new_ingest_key()).is_none());
        assert!(
            s.ingest_key(&found.key_sha256).is_none(),
            "the digest is not the key"
        );
        s.drop_ingest_key("web", false).unwrap();
        assert!(s.ingest_key(&secret).is_none());
        s.drop_ingest_key("web", true).unwrap();
        assert!(s.drop_ingest_key("web", false).is_err());
    }

    #[test]
    fn passwords_are_salted_argon2id_hashes() {
        let a = hash_password("correct horse").unwrap();
        let b = hash_password("correct horse").unwrap();
        assert!(a.starts_with("$argon2id$v=19$"), "{a}");
        assert_ne!(a, b, "a fresh salt each time");
        assert!(!a.contains("correct"));
        assert!(verify_password(&a, "correct horse"));
        assert!(verify_password(&b, "correct horse"));
        assert!(!verify_password(&a, "correct horse "));
        assert!(!verify_password("not a hash", "correct horse"));
    }

    #[test]
    fn names_are_checked_and_unique_across_users_roles_and_the_server() {
        let mut s = Security::default();
        s.create_user("bob", "h".into(), false, &none, "root", now())
            .unwrap();
        assert!(matches!(
            s.create_user("bob", "h".into(), false, &none, "root", now()),
            Err(CatalogError::UserExists(_))
        ));
        s.create_user("bob", "other".into(), true, &none, "root", now())
            .unwrap();
        assert_eq!(s.user("bob").unwrap().password_hash, "h");
        for taken in ["admin", "reader", "bob"] {
            assert!(s.create_role(taken, false, &none, "root", now()).is_err());
        }
        assert!(
            s.create_user("root", "h".into(), false, &|n| n == "root", "root", now())
                .is_err()
        );
        let long = "x".repeat(64);
        for bad in ["", "a b", "-x", "x\ny", "'; DROP", long.as_str()] {
            assert!(
                matches!(
                    s.create_user(bad, "h".into(), false, &none, "root", now()),
                    Err(CatalogError::InvalidSecurity(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn grants_resolve_through_roles_and_schemas() {
        let mut s = Security::default();
        s.create_user("ann", "h".into(), false, &none, "root", now())
            .unwrap();
        s.create_role("analyst", false, &none, "root", now())
            .unwrap();
        s.grant(grant(
            "analyst",
            Privilege::Select,
            Securable::AllTablesIn {
                schema: "public".into(),
            },
        ))
        .unwrap();
        s.grant(grant("ann", Privilege::Insert, table("work", "t")))
            .unwrap();

        let ann = s.principal("ann", false);
        assert!(!ann.admin && !ann.reader);
        assert!(!ann.granted(Privilege::Select, &table("public", "events")));
        assert!(ann.granted(Privilege::Insert, &table("work", "t")));
        assert!(!ann.granted(Privilege::Insert, &table("work", "u")));

        s.grant_role("analyst", "ann").unwrap();
        let ann = s.principal("ann", false);
        assert!(ann.granted(Privilege::Select, &table("public", "events")));
        assert!(!ann.granted(Privilege::Select, &table("other", "events")));
        assert!(!ann.granted(Privilege::Delete, &table("public", "events")));

        s.revoke_role("analyst", "ann").unwrap();
        assert!(
            !s.principal("ann", false)
                .granted(Privilege::Select, &table("public", "e"))
        );

        s.grant_role("admin", "ann").unwrap();
        assert!(s.principal("ann", false).admin);
        assert!(s.principal("someone", true).admin);
        assert!(!s.principal("someone", false).admin);
    }

    #[test]
    fn dropping_a_user_or_role_takes_its_grants() {
        let mut s = Security::default();
        s.create_user("ann", "h".into(), false, &none, "root", now())
            .unwrap();
        s.create_role("r", false, &none, "root", now()).unwrap();
        s.grant(grant("r", Privilege::Select, table("public", "t")))
            .unwrap();
        s.grant(grant("ann", Privilege::Select, table("public", "u")))
            .unwrap();
        s.grant_role("r", "ann").unwrap();
        s.drop_role("r", false).unwrap();
        assert!(s.user("ann").unwrap().roles.is_empty());
        assert_eq!(s.grants.len(), 1);
        s.drop_user("ann", false).unwrap();
        assert!(s.grants.is_empty());
        assert!(matches!(
            s.drop_user("ann", false),
            Err(CatalogError::UserNotFound(_))
        ));
        s.drop_user("ann", true).unwrap();
        assert!(s.drop_role("admin", true).is_err());
    }

    #[test]
    fn a_grant_needs_a_grantee_and_a_privilege_that_fits_its_object() {
        let mut s = Security::default();
        assert!(matches!(
            s.grant(grant("nobody", Privilege::Select, table("p", "t"))),
            Err(CatalogError::GranteeNotFound(_))
        ));
        s.create_role("r", false, &none, "root", now()).unwrap();
        for (privilege, on) in [
            (Privilege::Create, table("p", "t")),
            (Privilege::Select, Securable::Schema { schema: "p".into() }),
            (Privilege::Forget, table("p", "t")),
            (Privilege::Select, Securable::Warehouse),
        ] {
            assert!(
                matches!(
                    s.grant(grant("r", privilege, on.clone())),
                    Err(CatalogError::InvalidSecurity(_))
                ),
                "{privilege} ON {on}"
            );
        }
        assert!(
            s.grant(grant("reader", Privilege::Select, table("p", "t")))
                .is_err()
        );
        s.grant(grant("r", Privilege::Forget, Securable::Warehouse))
            .unwrap();
        assert!(
            !s.principal("x", false)
                .granted(Privilege::Forget, &Securable::Warehouse)
        );
    }
}
