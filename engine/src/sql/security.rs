//! Users, roles and grants in SQL (PostgreSQL's syntax, `docs/security.md`):
//!
//! ```sql
//! CREATE USER [IF NOT EXISTS] name [WITH] PASSWORD 'secret'
//! ALTER USER name [WITH] PASSWORD 'secret'
//! DROP USER [IF EXISTS] name
//! CREATE ROLE [IF NOT EXISTS] name
//! DROP ROLE [IF EXISTS] name
//! GRANT role [, ...] TO user [, ...]
//! REVOKE role [, ...] FROM user [, ...]
//! GRANT { privilege [, ...] | ALL [PRIVILEGES] }
//!     ON { [TABLE] name | ALL TABLES IN SCHEMA s | SCHEMA s | WAREHOUSE }
//!     TO grantee [, ...]
//! REVOKE ... FROM grantee [, ...]
//! SHOW GRANTS [FOR name]
//! CREATE INGEST KEY name FOR TABLE t [ALLOW ORIGIN 'https://a' [, ...]]
//! DROP INGEST KEY [IF EXISTS] name
//! ```
//!
//! A password is a string literal or a `?`/`$n` parameter. Errors never
//! quote the tokens after `PASSWORD`, and the statement's `Debug` form
//! hides the password (statements are logged at DEBUG).

use std::fmt;

use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;
use seglake_catalog::security::{Privilege, Securable};

use super::parse_error;
use crate::{EngineError, Result};

/// A password as written: a literal, or a `$n` parameter until bound.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Password {
    Literal(String),
    Parameter(usize),
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Literal(_) => f.write_str("Password(***)"),
            Self::Parameter(n) => write!(f, "Password(${n})"),
        }
    }
}

/// A statement on users, roles or grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SecurityStatement {
    CreateUser {
        name: String,
        password: Password,
        if_not_exists: bool,
    },
    AlterUser {
        name: String,
        password: Password,
    },
    DropUser {
        name: String,
        if_exists: bool,
    },
    CreateRole {
        name: String,
        if_not_exists: bool,
    },
    DropRole {
        name: String,
        if_exists: bool,
    },
    /// `GRANT role TO user` (`revoke`: `REVOKE role FROM user`).
    Membership {
        roles: Vec<String>,
        users: Vec<String>,
        revoke: bool,
    },
    /// `CREATE INGEST KEY name FOR TABLE t [ALLOW ORIGIN ...]`: answers
    /// one row, the key.
    CreateIngestKey {
        name: String,
        schema: String,
        table: String,
        origins: Vec<String>,
    },
    DropIngestKey {
        name: String,
        if_exists: bool,
    },
    /// `GRANT privilege ON object TO grantee` (`revoke`: `REVOKE ...`).
    Privileges {
        privileges: Vec<Privilege>,
        on: Securable,
        grantees: Vec<String>,
        revoke: bool,
    },
}

impl SecurityStatement {
    /// The password's parameter, if it is one.
    pub(crate) fn password_mut(&mut self) -> Option<&mut Password> {
        match self {
            Self::CreateUser { password, .. } | Self::AlterUser { password, .. } => Some(password),
            _ => None,
        }
    }
}

/// Whether the leading words start one of these statements.
pub(crate) fn is_security_statement(words: &[String]) -> bool {
    let w = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
    matches!(
        (w(0), w(1)),
        ("CREATE" | "DROP", "USER" | "ROLE" | "INGEST")
            | ("ALTER", "USER")
            | ("GRANT" | "REVOKE", _)
    )
}

/// Whether the leading words are `SHOW GRANTS`.
pub(crate) fn is_show_grants(words: &[String]) -> bool {
    words.first().is_some_and(|w| w == "SHOW") && words.get(1).is_some_and(|w| w == "GRANTS")
}

/// `SHOW GRANTS [FOR name]` as SQL over `system.grants`.
pub(crate) fn show_grants(mut p: Parser<'_>) -> Result<String> {
    p.next_token();
    p.next_token();
    let name = if word(&mut p, "FOR") {
        Some(name(&mut p, "user or role")?)
    } else {
        None
    };
    end(&mut p)?;
    let filter = match name {
        // A name is checked (letters, digits, `_-.@`): it quotes safely.
        Some(n) => format!(" WHERE grantee = '{n}'"),
        None => String::new(),
    };
    Ok(format!(
        "SELECT grantee, privilege, object_type, object FROM system.grants{filter} \
         ORDER BY grantee, object_type, object, privilege"
    ))
}

fn word(p: &mut Parser<'_>, w: &str) -> bool {
    let matches = matches!(&p.peek_token().token, Token::Word(x) if x.value.eq_ignore_ascii_case(w) && x.quote_style.is_none());
    if matches {
        p.next_token();
    }
    matches
}

fn expect(p: &mut Parser<'_>, w: &str, usage: &str) -> Result<()> {
    if word(p, w) {
        Ok(())
    } else {
        Err(EngineError::InvalidArgument(format!(
            "expected {w}: {usage}"
        )))
    }
}

/// A user or role name: an identifier (quoted or not), as written.
fn name(p: &mut Parser<'_>, what: &str) -> Result<String> {
    let ident = p
        .parse_identifier()
        .map_err(|_| EngineError::InvalidArgument(format!("expected a {what} name")))?;
    seglake_catalog::security::check_name(what, &ident.value)?;
    Ok(ident.value)
}

fn names(p: &mut Parser<'_>, what: &str) -> Result<Vec<String>> {
    let mut out = vec![name(p, what)?];
    while p.consume_token(&Token::Comma) {
        out.push(name(p, what)?);
    }
    Ok(out)
}

fn end(p: &mut Parser<'_>) -> Result<()> {
    let _ = p.consume_token(&Token::SemiColon);
    if p.peek_token().token != Token::EOF {
        return Err(EngineError::InvalidArgument(format!(
            "unexpected '{}' at the end of the statement",
            p.peek_token().token
        )));
    }
    Ok(())
}

fn password(p: &mut Parser<'_>) -> Result<Password> {
    let usage = || {
        EngineError::InvalidArgument(
            "expected PASSWORD followed by a string literal or a parameter".into(),
        )
    };
    let _ = word(p, "WITH");
    if !word(p, "PASSWORD") {
        return Err(usage());
    }
    let password = match p.next_token().token {
        Token::Placeholder(name) => super::seglake::placeholder_index(&name)
            .map(Password::Parameter)
            .ok_or_else(usage)?,
        Token::SingleQuotedString(s) => Password::Literal(s),
        _ => return Err(usage()),
    };
    // Nothing after the password is quoted back.
    let _ = p.consume_token(&Token::SemiColon);
    if p.peek_token().token != Token::EOF {
        return Err(EngineError::InvalidArgument(
            "nothing may follow the password".into(),
        ));
    }
    Ok(password)
}

/// Parses a statement [`is_security_statement`] recognised.
pub(crate) fn parse(mut p: Parser<'_>) -> Result<SecurityStatement> {
    let statement = if word(&mut p, "CREATE") {
        if word(&mut p, "INGEST") {
            expect(&mut p, "KEY", INGEST_KEY_USAGE)?;
            let name = name(&mut p, "ingest key")?;
            expect(&mut p, "FOR", INGEST_KEY_USAGE)?;
            let _ = p.parse_keyword(Keyword::TABLE);
            let (schema, table) = table_name(&mut p)?;
            let mut origins = vec![];
            if word(&mut p, "ALLOW") {
                expect(&mut p, "ORIGIN", INGEST_KEY_USAGE)?;
                loop {
                    origins.push(p.parse_literal_string().map_err(|_| {
                        EngineError::InvalidArgument(format!(
                            "expected an origin string: {INGEST_KEY_USAGE}"
                        ))
                    })?);
                    if !p.consume_token(&Token::Comma) {
                        break;
                    }
                }
            }
            SecurityStatement::CreateIngestKey {
                name,
                schema,
                table,
                origins,
            }
        } else if word(&mut p, "USER") {
            let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
            let name = name(&mut p, "user")?;
            let password = password(&mut p)?;
            return Ok(SecurityStatement::CreateUser {
                name,
                password,
                if_not_exists,
            });
        } else {
            expect(&mut p, "ROLE", "CREATE USER or CREATE ROLE")?;
            let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
            SecurityStatement::CreateRole {
                name: name(&mut p, "role")?,
                if_not_exists,
            }
        }
    } else if word(&mut p, "ALTER") {
        expect(&mut p, "USER", "ALTER USER name WITH PASSWORD '...'")?;
        let name = name(&mut p, "user")?;
        let password = password(&mut p)?;
        return Ok(SecurityStatement::AlterUser { name, password });
    } else if word(&mut p, "DROP") {
        if word(&mut p, "INGEST") {
            expect(&mut p, "KEY", "DROP INGEST KEY [IF EXISTS] name")?;
            let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
            let name = name(&mut p, "ingest key")?;
            end(&mut p)?;
            return Ok(SecurityStatement::DropIngestKey { name, if_exists });
        }
        let user = word(&mut p, "USER");
        if !user {
            expect(&mut p, "ROLE", "DROP USER or DROP ROLE")?;
        }
        let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
        if user {
            SecurityStatement::DropUser {
                name: name(&mut p, "user")?,
                if_exists,
            }
        } else {
            SecurityStatement::DropRole {
                name: name(&mut p, "role")?,
                if_exists,
            }
        }
    } else if word(&mut p, "GRANT") {
        grant(&mut p, false)?
    } else if word(&mut p, "REVOKE") {
        grant(&mut p, true)?
    } else {
        return Err(EngineError::InvalidArgument("unknown statement".into()));
    };
    end(&mut p)?;
    Ok(statement)
}

const GRANT_USAGE: &str = "GRANT { privilege [, ...] | ALL } ON { TABLE name | ALL TABLES IN \
                           SCHEMA name | SCHEMA name | WAREHOUSE } TO name [, ...], or GRANT \
                           role [, ...] TO user [, ...]";

/// After `GRANT` or `REVOKE`.
fn grant(p: &mut Parser<'_>, revoke: bool) -> Result<SecurityStatement> {
    let to = if revoke { "FROM" } else { "TO" };
    // Privilege words or role names, up to ON (privileges) or TO/FROM
    // (roles).
    let mut items = vec![];
    let mut all = false;
    loop {
        let token = p.next_token().token;
        match token {
            Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("ALL") => {
                all = true;
                let _ = word(p, "PRIVILEGES");
            }
            Token::Word(w) => items.push(w),
            _ => {
                return Err(EngineError::InvalidArgument(format!(
                    "expected {GRANT_USAGE}"
                )));
            }
        }
        if !p.consume_token(&Token::Comma) {
            break;
        }
    }
    if word(p, to) {
        if all {
            return Err(EngineError::InvalidArgument(format!(
                "expected {GRANT_USAGE}"
            )));
        }
        let roles = items
            .into_iter()
            .map(|w| {
                seglake_catalog::security::check_name("role", &w.value)?;
                Ok(w.value)
            })
            .collect::<Result<Vec<_>>>()?;
        let users = names(p, "user")?;
        return Ok(SecurityStatement::Membership {
            roles,
            users,
            revoke,
        });
    }
    expect(p, "ON", GRANT_USAGE)?;
    let on = if word(p, "WAREHOUSE") {
        Securable::Warehouse
    } else if word(p, "SCHEMA") {
        Securable::Schema {
            schema: object_part(p)?,
        }
    } else if p.parse_keywords(&[Keyword::ALL, Keyword::TABLES, Keyword::IN, Keyword::SCHEMA]) {
        Securable::AllTablesIn {
            schema: object_part(p)?,
        }
    } else {
        let _ = p.parse_keyword(Keyword::TABLE);
        let (schema, table) = table_name(p)?;
        Securable::Table { schema, table }
    };
    let privileges = if all {
        if !items.is_empty() {
            return Err(EngineError::InvalidArgument(format!(
                "expected {GRANT_USAGE}"
            )));
        }
        Privilege::all_on(&on).to_vec()
    } else {
        items
            .iter()
            .map(|w| {
                Privilege::parse(&w.value).ok_or_else(|| {
                    EngineError::InvalidArgument(format!(
                        "unknown privilege '{}': SELECT, INSERT, UPDATE, DELETE, CREATE, \
                         SEGMENTS, ACTIVATE, FORGET, MAINTAIN, EXTERNAL or ALL",
                        w.value
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?
    };
    expect(p, to, GRANT_USAGE)?;
    let grantees = names(p, "user or role")?;
    Ok(SecurityStatement::Privileges {
        privileges,
        on,
        grantees,
        revoke,
    })
}

const INGEST_KEY_USAGE: &str =
    "CREATE INGEST KEY name FOR TABLE t [ALLOW ORIGIN 'https://shop.example' [, ...]]";

/// `table`, `schema.table` or `seglake.schema.table` (the default schema
/// is `public`, as the catalog's).
fn table_name(p: &mut Parser<'_>) -> Result<(String, String)> {
    let name = p.parse_object_name(false).map_err(parse_error)?;
    let parts = super::seglake::object_name_parts(&name);
    match parts.as_slice() {
        [table] => Ok((seglake_catalog::DEFAULT_SCHEMA.to_string(), table.clone())),
        [schema, table] => Ok((schema.clone(), table.clone())),
        [catalog, schema, table] if catalog == seglake_catalog::DEFAULT_CATALOG => {
            Ok((schema.clone(), table.clone()))
        }
        _ => Err(EngineError::InvalidArgument(format!(
            "'{name}' is not a table name: use table, schema.table or seglake.schema.table"
        ))),
    }
}

/// A schema name: one identifier.
fn object_part(p: &mut Parser<'_>) -> Result<String> {
    p.parse_identifier()
        .map(|i| i.value)
        .map_err(|_| EngineError::InvalidArgument("expected a schema name".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::config::SqlParserOptions;

    fn parse(sql: &str) -> Result<SecurityStatement> {
        match super::super::parse(sql, &SqlParserOptions::default())? {
            super::super::Parsed::Seglake(super::super::SeglakeStatement::Security(s)) => Ok(s),
            other => panic!("{sql}: {other:?}"),
        }
    }

    fn table(schema: &str, table: &str) -> Securable {
        Securable::Table {
            schema: schema.into(),
            table: table.into(),
        }
    }

    #[test]
    fn users_and_roles() {
        assert_eq!(
            parse("CREATE USER ann WITH PASSWORD 'p w'").unwrap(),
            SecurityStatement::CreateUser {
                name: "ann".into(),
                password: Password::Literal("p w".into()),
                if_not_exists: false,
            }
        );
        assert_eq!(
            parse("create user if not exists \"bi.tool\" password ?").unwrap(),
            SecurityStatement::CreateUser {
                name: "bi.tool".into(),
                password: Password::Parameter(1),
                if_not_exists: true,
            }
        );
        assert_eq!(
            parse("ALTER USER ann PASSWORD 'x';").unwrap(),
            SecurityStatement::AlterUser {
                name: "ann".into(),
                password: Password::Literal("x".into()),
            }
        );
        assert_eq!(
            parse("DROP USER IF EXISTS ann").unwrap(),
            SecurityStatement::DropUser {
                name: "ann".into(),
                if_exists: true,
            }
        );
        assert_eq!(
            parse("CREATE ROLE analyst").unwrap(),
            SecurityStatement::CreateRole {
                name: "analyst".into(),
                if_not_exists: false,
            }
        );
        assert_eq!(
            parse("DROP ROLE analyst").unwrap(),
            SecurityStatement::DropRole {
                name: "analyst".into(),
                if_exists: false,
            }
        );
    }

    #[test]
    fn grants() {
        assert_eq!(
            parse("GRANT analyst, reader TO ann, bob").unwrap(),
            SecurityStatement::Membership {
                roles: vec!["analyst".into(), "reader".into()],
                users: vec!["ann".into(), "bob".into()],
                revoke: false,
            }
        );
        assert_eq!(
            parse("REVOKE analyst FROM ann").unwrap(),
            SecurityStatement::Membership {
                roles: vec!["analyst".into()],
                users: vec!["ann".into()],
                revoke: true,
            }
        );
        assert_eq!(
            parse("GRANT SELECT, insert ON TABLE events TO analyst").unwrap(),
            SecurityStatement::Privileges {
                privileges: vec![Privilege::Select, Privilege::Insert],
                on: table("public", "events"),
                grantees: vec!["analyst".into()],
                revoke: false,
            }
        );
        assert_eq!(
            parse("GRANT ALL PRIVILEGES ON ALL TABLES IN SCHEMA work TO ann").unwrap(),
            SecurityStatement::Privileges {
                privileges: vec![
                    Privilege::Select,
                    Privilege::Insert,
                    Privilege::Update,
                    Privilege::Delete
                ],
                on: Securable::AllTablesIn {
                    schema: "work".into()
                },
                grantees: vec!["ann".into()],
                revoke: false,
            }
        );
        assert_eq!(
            parse("REVOKE CREATE ON SCHEMA work FROM ann").unwrap(),
            SecurityStatement::Privileges {
                privileges: vec![Privilege::Create],
                on: Securable::Schema {
                    schema: "work".into()
                },
                grantees: vec!["ann".into()],
                revoke: true,
            }
        );
        assert_eq!(
            parse("GRANT SEGMENTS, ACTIVATE ON WAREHOUSE TO marketer").unwrap(),
            SecurityStatement::Privileges {
                privileges: vec![Privilege::Segments, Privilege::Activate],
                on: Securable::Warehouse,
                grantees: vec!["marketer".into()],
                revoke: false,
            }
        );
        assert_eq!(
            parse("GRANT SELECT ON seglake.segments.buyers TO m").unwrap(),
            SecurityStatement::Privileges {
                privileges: vec![Privilege::Select],
                on: table("segments", "buyers"),
                grantees: vec!["m".into()],
                revoke: false,
            }
        );
    }

    #[test]
    fn ingest_keys() {
        assert_eq!(
            parse("CREATE INGEST KEY web FOR TABLE events ALLOW ORIGIN 'https://a.example', 'http://b:8080'")
                .unwrap(),
            SecurityStatement::CreateIngestKey {
                name: "web".into(),
                schema: "public".into(),
                table: "events".into(),
                origins: vec!["https://a.example".into(), "http://b:8080".into()],
            }
        );
        assert_eq!(
            parse("create ingest key srv for crm.hits").unwrap(),
            SecurityStatement::CreateIngestKey {
                name: "srv".into(),
                schema: "crm".into(),
                table: "hits".into(),
                origins: vec![],
            }
        );
        assert_eq!(
            parse("DROP INGEST KEY IF EXISTS web").unwrap(),
            SecurityStatement::DropIngestKey {
                name: "web".into(),
                if_exists: true,
            }
        );
        let e = parse("CREATE INGEST KEY web TABLE events")
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected FOR"), "{e}");
    }

    #[test]
    fn errors_name_the_problem_and_never_the_password() {
        for (sql, needle) in [
            ("GRANT FLY ON TABLE t TO ann", "unknown privilege 'FLY'"),
            ("GRANT SELECT ON TABLE t", "expected TO"),
            ("REVOKE SELECT ON TABLE t TO ann", "expected FROM"),
            ("GRANT ALL TO ann", "expected GRANT"),
            ("CREATE USER ann", "expected PASSWORD"),
            ("CREATE USER \"a b\" PASSWORD 'x'", "invalid user name"),
            ("DROP ROLE", "expected a role name"),
        ] {
            let e = parse(sql).unwrap_err().to_string();
            assert!(e.contains(needle), "{sql}: {e}");
        }
        for sql in [
            "CREATE USER ann PASSWORD 'hunter2' 'hunter3'",
            "ALTER USER ann WITH PASSWORD 'hunter2' EXTRA",
            "CREATE USER ann PASSWORD hunter2",
        ] {
            let e = parse(sql).unwrap_err().to_string();
            assert!(!e.contains("hunter"), "{sql}: {e}");
        }
        let debug = format!("{:?}", parse("CREATE USER ann PASSWORD 'hunter2'").unwrap());
        assert!(!debug.contains("hunter2"), "{debug}");
    }
}
