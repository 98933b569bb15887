//! Parsing of the segment and activation statements.
//!
//! ```text
//! CREATE [OR REPLACE] SEGMENT name [COMMENT '...'] AS <query>
//! DROP SEGMENT [IF EXISTS] name
//! REFRESH SEGMENT name | REFRESH SEGMENTS
//! ALTER SEGMENT name SET REFRESH EVERY '15 minutes' | SET REFRESH MANUAL
//! EXPLAIN MEMBERSHIP '<profile_id>' IN SEGMENT name
//! CREATE [OR REPLACE] DESTINATION name TYPE file|webhook OPTIONS (key 'value', ...)
//! DROP DESTINATION [IF EXISTS] name
//! ACTIVATE SEGMENT seg TO dest [COLUMNS (col, name := expr, ...)]
//!     [CONSENT COLUMN col] [PROFILES table]
//! DEACTIVATE SEGMENT seg FROM dest
//! SHOW SEGMENTS | SHOW DESTINATIONS | DESCRIBE SEGMENT name   (rewritten to SQL)
//! ```

use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Location, Token};

use crate::{EngineError, Result};

/// A segment or activation statement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SegmentStatement {
    Create {
        name: String,
        or_replace: bool,
        comment: Option<String>,
        /// The query as written.
        sql: String,
    },
    Drop {
        name: String,
        if_exists: bool,
    },
    /// `None`: every segment, in dependency order.
    Refresh {
        name: Option<String>,
    },
    SetSchedule {
        name: String,
        /// `None`: manual refreshes only.
        every: Option<String>,
    },
    ExplainMembership {
        profile_id: String,
        segment: String,
    },
    CreateDestination {
        name: String,
        or_replace: bool,
        kind: String,
        options: Vec<(String, String)>,
    },
    DropDestination {
        name: String,
        if_exists: bool,
    },
    Activate {
        segment: String,
        destination: String,
        /// (output name, SQL expression); empty means `profile_id` only.
        columns: Vec<(String, String)>,
        consent_column: Option<String>,
        profiles_table: Option<String>,
    },
    Deactivate {
        segment: String,
        destination: String,
    },
}

/// What the first words of a statement make of it.
pub(crate) enum Recognised {
    Statement(SegmentStatement),
    /// SQL over the system tables that answers the statement.
    Sql(String),
}

fn error(message: impl Into<String>) -> EngineError {
    EngineError::InvalidArgument(message.into())
}

/// Whether the first (upper-cased) words of a statement make it a segment
/// statement.
pub(crate) fn is_segment_statement(words: &[String]) -> bool {
    let w = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
    match w(0) {
        "CREATE" => {
            let kind = if w(1) == "OR" { w(3) } else { w(1) };
            kind == "SEGMENT" || kind == "DESTINATION"
        }
        "DROP" => w(1) == "SEGMENT" || w(1) == "DESTINATION",
        "REFRESH" => w(1) == "SEGMENT" || w(1) == "SEGMENTS",
        "ALTER" => w(1) == "SEGMENT",
        "EXPLAIN" => w(1) == "MEMBERSHIP",
        "ACTIVATE" | "DEACTIVATE" => true,
        "SHOW" => w(1) == "SEGMENTS" || w(1) == "DESTINATIONS",
        "DESCRIBE" | "DESC" => w(1) == "SEGMENT",
        _ => false,
    }
}

/// Parses a segment statement from the statement's parser (the front-end's
/// tokens of `sql`).
pub(crate) fn parse_statement(sql: &str, p: Parser<'_>) -> Result<Recognised> {
    Parse { sql, p }.statement()
}

struct Parse<'a> {
    sql: &'a str,
    p: Parser<'a>,
}

impl Parse<'_> {
    /// Consumes the unquoted word `w` if it comes next.
    fn word(&mut self, w: &str) -> bool {
        let matches = matches!(&self.p.peek_token().token, Token::Word(x) if x.value.eq_ignore_ascii_case(w) && x.quote_style.is_none());
        if matches {
            self.p.next_token();
        }
        matches
    }

    fn expect_word(&mut self, w: &str, usage: &str) -> Result<()> {
        if self.word(w) {
            Ok(())
        } else {
            Err(self.unexpected(usage))
        }
    }

    fn unexpected(&self, usage: &str) -> EngineError {
        let found = self.p.peek_token().token;
        if found == Token::EOF {
            error(format!("unexpected end of statement: expected {usage}"))
        } else {
            error(format!("unexpected '{found}': expected {usage}"))
        }
    }

    /// A segment, destination or column name (quoted names keep their case,
    /// unquoted ones are lower-cased like DataFusion does).
    fn name(&mut self, usage: &str) -> Result<String> {
        let ident = self
            .p
            .parse_identifier()
            .map_err(|_| self.unexpected(usage))?;
        Ok(match ident.quote_style {
            Some(_) => ident.value,
            None => ident.value.to_lowercase(),
        })
    }

    /// A possibly qualified table name, as written (`crm.profiles`).
    fn table_name(&mut self, usage: &str) -> Result<String> {
        let name = self
            .p
            .parse_object_name(false)
            .map_err(|_| self.unexpected(usage))?;
        Ok(name.to_string())
    }

    fn string(&mut self, usage: &str) -> Result<String> {
        self.p
            .parse_literal_string()
            .map_err(|_| self.unexpected(usage))
    }

    /// `( item, item, ... )`, the opening parenthesis included.
    fn parenthesized<T>(
        &mut self,
        usage: &str,
        mut item: impl FnMut(&mut Self) -> Result<T>,
    ) -> Result<Vec<T>> {
        self.p
            .expect_token(&Token::LParen)
            .map_err(|_| self.unexpected(usage))?;
        let mut items = vec![item(self)?];
        while self.p.consume_token(&Token::Comma) {
            items.push(item(self)?);
        }
        self.p
            .expect_token(&Token::RParen)
            .map_err(|_| self.unexpected("',' or ')'"))?;
        Ok(items)
    }

    fn if_exists(&mut self) -> bool {
        self.p.parse_keywords(&[Keyword::IF, Keyword::EXISTS])
    }

    fn end(mut self) -> Result<()> {
        let _ = self.p.consume_token(&Token::SemiColon);
        match self.p.peek_token().token {
            Token::EOF => Ok(()),
            t => Err(error(format!(
                "unexpected '{t}' at the end of the statement"
            ))),
        }
    }

    fn statement(mut self) -> Result<Recognised> {
        let statement = if self.word("CREATE") {
            let or_replace = self.word("OR");
            if or_replace {
                self.expect_word("REPLACE", "OR REPLACE")?;
            }
            if self.word("SEGMENT") {
                return self.create_segment(or_replace).map(Recognised::Statement);
            }
            self.expect_word("DESTINATION", "SEGMENT or DESTINATION")?;
            self.create_destination(or_replace)?
        } else if self.word("DROP") {
            if self.word("SEGMENT") {
                let if_exists = self.if_exists();
                SegmentStatement::Drop {
                    if_exists,
                    name: self.name("a segment name")?,
                }
            } else {
                self.expect_word("DESTINATION", "SEGMENT or DESTINATION")?;
                let if_exists = self.if_exists();
                SegmentStatement::DropDestination {
                    if_exists,
                    name: self.name("a destination name")?,
                }
            }
        } else if self.word("REFRESH") {
            if self.word("SEGMENTS") {
                SegmentStatement::Refresh { name: None }
            } else {
                self.expect_word("SEGMENT", "SEGMENT name or SEGMENTS")?;
                SegmentStatement::Refresh {
                    name: Some(self.name("a segment name")?),
                }
            }
        } else if self.word("ALTER") {
            self.expect_word("SEGMENT", "SEGMENT")?;
            let name = self.name("a segment name")?;
            let usage = "SET REFRESH EVERY '<interval>' or SET REFRESH MANUAL";
            self.expect_word("SET", usage)?;
            self.expect_word("REFRESH", usage)?;
            let every = if self.word("MANUAL") {
                None
            } else {
                self.expect_word("EVERY", usage)?;
                Some(self.string("an interval such as '15 minutes'")?)
            };
            SegmentStatement::SetSchedule { name, every }
        } else if self.word("EXPLAIN") {
            self.expect_word("MEMBERSHIP", "MEMBERSHIP")?;
            let usage = "EXPLAIN MEMBERSHIP '<profile_id>' IN SEGMENT name";
            let profile_id = self.string(usage)?;
            self.expect_word("IN", usage)?;
            self.expect_word("SEGMENT", usage)?;
            SegmentStatement::ExplainMembership {
                profile_id,
                segment: self.name("a segment name")?,
            }
        } else if self.word("ACTIVATE") {
            self.activate()?
        } else if self.word("DEACTIVATE") {
            let usage = "DEACTIVATE SEGMENT seg FROM destination";
            self.expect_word("SEGMENT", usage)?;
            let segment = self.name(usage)?;
            self.expect_word("FROM", usage)?;
            SegmentStatement::Deactivate {
                segment,
                destination: self.name(usage)?,
            }
        } else if self.word("SHOW") {
            let sql = if self.word("SEGMENTS") {
                "SELECT name, comment, version, refresh_every, size, last_refreshed_at, \
                 activations FROM system.segments ORDER BY name"
            } else {
                self.expect_word("DESTINATIONS", "SEGMENTS or DESTINATIONS")?;
                "SELECT name, type, target, activations FROM system.destinations ORDER BY name"
            };
            self.end()?;
            return Ok(Recognised::Sql(sql.to_string()));
        } else if self.word("DESCRIBE") || self.word("DESC") {
            self.expect_word("SEGMENT", "SEGMENT name")?;
            let name = self.name("a segment name")?;
            self.end()?;
            return Ok(Recognised::Sql(format!(
                "SELECT version, created_at, author, comment, depends_on, sql \
                 FROM system.segment_versions WHERE segment = '{}' ORDER BY version",
                name.replace('\'', "''")
            )));
        } else {
            return Err(self.unexpected("a segment statement"));
        };
        self.end()?;
        Ok(Recognised::Statement(statement))
    }

    fn create_segment(mut self, or_replace: bool) -> Result<SegmentStatement> {
        let usage = "CREATE SEGMENT name [COMMENT '...'] AS <query>";
        let name = self.name(usage)?;
        let comment = if self.p.parse_keyword(Keyword::COMMENT) {
            Some(self.string("COMMENT '<text>'")?)
        } else {
            None
        };
        if !self.p.parse_keyword(Keyword::AS) {
            return Err(self.unexpected(usage));
        }
        let start = self.p.peek_token().span.start;
        let query = self.p.parse_query().map_err(|e| {
            error(format!(
                "the segment's query does not parse: {e} (expected {usage})"
            ))
        })?;
        drop(query);
        let end_token = {
            let _ = self.p.consume_token(&Token::SemiColon);
            self.p.peek_token()
        };
        if end_token.token != Token::EOF {
            return Err(error(format!(
                "unexpected '{}' after the segment's query",
                end_token.token
            )));
        }
        let from = offset(self.sql, start).ok_or_else(|| error(usage))?;
        let sql = self.sql[from..]
            .trim()
            .trim_end_matches(';')
            .trim_end()
            .to_string();
        Ok(SegmentStatement::Create {
            name,
            or_replace,
            comment,
            sql,
        })
    }

    fn create_destination(&mut self, or_replace: bool) -> Result<SegmentStatement> {
        let usage = "CREATE DESTINATION name TYPE file|webhook OPTIONS (key 'value', ...)";
        let name = self.name(usage)?;
        self.expect_word("TYPE", usage)?;
        let kind = self.name(usage)?;
        let mut options = vec![];
        if self.p.parse_keyword(Keyword::OPTIONS) {
            options = self.parenthesized("OPTIONS (", |this| {
                let key = this.name("an option name")?;
                let _ = this.p.consume_token(&Token::Eq);
                Ok((key, this.string("a quoted option value")?))
            })?;
        }
        Ok(SegmentStatement::CreateDestination {
            name,
            or_replace,
            kind,
            options,
        })
    }

    fn activate(&mut self) -> Result<SegmentStatement> {
        let usage = "ACTIVATE SEGMENT seg TO destination [COLUMNS (...)] [CONSENT COLUMN col] [PROFILES table]";
        self.expect_word("SEGMENT", usage)?;
        let segment = self.name(usage)?;
        self.expect_word("TO", usage)?;
        let destination = self.name(usage)?;
        let mut columns = vec![];
        let mut consent_column = None;
        let mut profiles_table = None;
        loop {
            if self.word("COLUMNS") {
                columns = self.parenthesized("COLUMNS (", |this| {
                    let name = this.name("a column name")?;
                    let expr = if this.p.consume_token(&Token::Assignment) {
                        this.p
                            .parse_expr()
                            .map_err(|e| error(format!("bad expression for column {name}: {e}")))?
                            .to_string()
                    } else {
                        format!("\"{}\"", name.replace('"', "\"\""))
                    };
                    Ok((name, expr))
                })?;
                if let Some(i) =
                    (1..columns.len()).find(|&i| columns[..i].iter().any(|c| c.0 == columns[i].0))
                {
                    return Err(error(format!("column '{}' is listed twice", columns[i].0)));
                }
            } else if self.word("CONSENT") {
                self.expect_word("COLUMN", "CONSENT COLUMN name")?;
                consent_column = Some(self.name("a boolean column name")?);
            } else if self.word("PROFILES") {
                profiles_table = Some(self.table_name("a table name")?);
            } else {
                break;
            }
        }
        Ok(SegmentStatement::Activate {
            segment,
            destination,
            columns,
            consent_column,
            profiles_table,
        })
    }
}

/// Byte offset of a tokenizer location (1-based line and character column).
fn offset(sql: &str, at: Location) -> Option<usize> {
    let mut line = 1;
    let mut column = 1;
    for (i, c) in sql.char_indices() {
        if line == at.line && column == at.column {
            return Some(i);
        }
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    None
}

/// `'15 minutes'`, `'1 hour'`, `'30 s'`, `'2 days'` in seconds.
pub(crate) fn parse_interval(text: &str) -> Result<u64> {
    let usage = || {
        error(format!(
            "cannot read '{text}' as an interval: use '<n> seconds|minutes|hours|days'"
        ))
    };
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n: u64 = t[..split].parse().map_err(|_| usage())?;
    let unit = t[split..].trim().to_ascii_lowercase();
    let factor = match unit.as_str() {
        "" | "s" | "sec" | "secs" | "second" | "seconds" => 1,
        "min" | "mins" | "minute" | "minutes" => 60,
        "h" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        _ => return Err(usage()),
    };
    let seconds = n.checked_mul(factor).ok_or_else(usage)?;
    if seconds == 0 {
        return Err(error("the refresh interval must be positive"));
    }
    Ok(seconds)
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::GenericDialect;

    use super::*;

    /// What the front-end makes of `sql` when it is a segment statement.
    fn parse(sql: &str) -> Result<Option<Recognised>> {
        let words: Vec<String> = sql
            .split_whitespace()
            .take(4)
            .map(|w| w.to_ascii_uppercase())
            .collect();
        if !is_segment_statement(&words) {
            return Ok(None);
        }
        let dialect = GenericDialect {};
        let p = Parser::new(&dialect)
            .try_with_sql(sql)
            .map_err(|e| error(format!("SQL error: {e}")))?;
        parse_statement(sql, p).map(Some)
    }

    fn statement(sql: &str) -> SegmentStatement {
        match parse(sql).unwrap() {
            Some(Recognised::Statement(s)) => s,
            _ => panic!("not a statement: {sql}"),
        }
    }

    #[test]
    fn create_segment_keeps_the_query_text() {
        let s = statement(
            "CREATE OR REPLACE SEGMENT High_Value COMMENT 'top spenders' AS\n  SELECT profile_id\n  FROM profiles WHERE x = 'a;b';",
        );
        assert_eq!(
            s,
            SegmentStatement::Create {
                name: "high_value".into(),
                or_replace: true,
                comment: Some("top spenders".into()),
                sql: "SELECT profile_id\n  FROM profiles WHERE x = 'a;b'".into(),
            }
        );
        assert!(parse("CREATE SEGMENT s AS").is_err());
        assert!(parse("CREATE SEGMENT s SELECT 1").is_err());
        assert!(parse("CREATE SEGMENT s AS SELECT 1 junk junk").is_err());
        assert!(parse("CREATE TABLE t (a int)").unwrap().is_none());
    }

    #[test]
    fn other_statements() {
        assert_eq!(
            statement("refresh segments"),
            SegmentStatement::Refresh { name: None }
        );
        assert_eq!(
            statement("DROP SEGMENT IF EXISTS \"A b\""),
            SegmentStatement::Drop {
                name: "A b".into(),
                if_exists: true
            }
        );
        assert_eq!(
            statement("ALTER SEGMENT s SET REFRESH EVERY '15 minutes'"),
            SegmentStatement::SetSchedule {
                name: "s".into(),
                every: Some("15 minutes".into())
            }
        );
        assert_eq!(
            statement("EXPLAIN MEMBERSHIP 'p1' IN SEGMENT s"),
            SegmentStatement::ExplainMembership {
                profile_id: "p1".into(),
                segment: "s".into()
            }
        );
        assert_eq!(
            statement(
                "ACTIVATE SEGMENT s TO d COLUMNS (profile_id, h := encode(sha256(email), 'hex')) CONSENT COLUMN consent_email PROFILES crm.people"
            ),
            SegmentStatement::Activate {
                segment: "s".into(),
                destination: "d".into(),
                columns: vec![
                    ("profile_id".into(), "\"profile_id\"".into()),
                    ("h".into(), "encode(sha256(email), 'hex')".into())
                ],
                consent_column: Some("consent_email".into()),
                profiles_table: Some("crm.people".into()),
            }
        );
        assert_eq!(
            statement(
                "CREATE DESTINATION hook TYPE webhook OPTIONS (url 'http://x', batch_size '2')"
            ),
            SegmentStatement::CreateDestination {
                name: "hook".into(),
                or_replace: false,
                kind: "webhook".into(),
                options: vec![
                    ("url".into(), "http://x".into()),
                    ("batch_size".into(), "2".into())
                ],
            }
        );
        assert!(matches!(
            parse("SHOW SEGMENTS").unwrap(),
            Some(Recognised::Sql(_))
        ));
        assert!(parse("ALTER SEGMENT s SET REFRESH SOMETIMES").is_err());
        assert!(parse("SHOW TABLES").unwrap().is_none());
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("15 minutes").unwrap(), 900);
        assert_eq!(parse_interval("1 hour").unwrap(), 3600);
        assert_eq!(parse_interval("2 days").unwrap(), 172_800);
        assert_eq!(parse_interval("30s").unwrap(), 30);
        assert!(parse_interval("0 minutes").is_err());
        assert!(parse_interval("soon").is_err());
        assert!(parse_interval("5 fortnights").is_err());
    }
}
