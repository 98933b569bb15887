//! The SQL front-end: a statement's text is tokenised once, with the
//! session's dialect, and parsed once.
//!
//! The first words decide who parses the tokens (the pattern of DataFusion's
//! `custom_sql_parser.rs` example):
//! - Seglake's own statements (`OPTIMIZE`, `VACUUM`, `FORGET PROFILE` in
//!   `seglake.rs`; the segment, destination and activation statements and
//!   `EXPLAIN MEMBERSHIP` in `segments.rs`; users, roles and grants in
//!   `security.rs`) are parsed with sqlparser's parser API over the same
//!   tokens;
//! - `UPDATE`, `DELETE` and `MERGE INTO` are parsed by sqlparser and run by
//!   Seglake as Delta operations;
//! - everything else goes to DataFusion's [`DFParser`] (which knows
//!   `CREATE EXTERNAL TABLE`, `COPY`, `EXPLAIN`), built from the same
//!   tokens. `PARTITIONED BY (col, ...)` of a `CREATE TABLE` is taken out of
//!   the token stream first.
//!
//! Rewrites happen on the tokens or on the tree, never on the text: `?`
//! placeholders become `$1..$n` in the token stream ([`placeholders`]),
//! `table_at(...)` becomes a hidden time-travel table in the tree
//! ([`time_travel`]).

mod placeholders;
pub(crate) mod security;
pub(crate) mod seglake;
pub(crate) mod segments;
pub(crate) mod time_travel;

use datafusion::common::not_impl_err;
use datafusion::config::SqlParserOptions;
use datafusion::error::DataFusionError;
use datafusion::sql::parser::{DFParserBuilder, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::{Dialect, dialect_from_str};
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Word};

pub(crate) use seglake::{ProfileId, SeglakeStatement};
pub(crate) use time_travel::TIME_TRAVEL_SCHEMA;

use self::segments::Recognised;
use crate::{EngineError, Result};

/// A statement as the front-end parsed it.
#[derive(Debug)]
pub(crate) enum Parsed {
    /// A statement Seglake runs itself.
    Seglake(SeglakeStatement),
    /// A statement DataFusion plans, with the clauses Seglake handles taken
    /// out.
    DataFusion {
        statement: DFStatement,
        /// `PARTITIONED BY (...)` of a `CREATE TABLE`.
        partition_by: Vec<String>,
    },
}

pub(crate) fn parse_error(e: impl std::fmt::Display) -> EngineError {
    EngineError::InvalidArgument(format!("SQL error: {e}"))
}

/// Parses one statement with the session's parser options (dialect,
/// recursion limit). `?` placeholders are numbered `$1..$n`.
pub(crate) fn parse(sql: &str, options: &SqlParserOptions) -> Result<Parsed> {
    let dialect = dialect(options)?;
    let mut tokens = Tokenizer::new(dialect.as_ref(), sql)
        .tokenize_with_location()
        .map_err(parse_error)?;
    placeholders::number(&mut tokens);
    let words = leading_words(&tokens);
    if segments::is_segment_statement(&words) {
        return match segments::parse_statement(sql, sqlparser(dialect.as_ref(), options, tokens))? {
            Recognised::Statement(s) => Ok(Parsed::Seglake(SeglakeStatement::Segment(s))),
            // SHOW SEGMENTS and friends: SQL of ours over the system tables.
            Recognised::Sql(text) => parse(&text, options),
        };
    }
    if security::is_security_statement(&words) {
        return Ok(Parsed::Seglake(SeglakeStatement::Security(
            security::parse(sqlparser(dialect.as_ref(), options, tokens))?,
        )));
    }
    if security::is_show_grants(&words) {
        let text = security::show_grants(sqlparser(dialect.as_ref(), options, tokens))?;
        return parse(&text, options);
    }
    match words.first().map(String::as_str).unwrap_or("") {
        "OPTIMIZE" | "VACUUM" | "FORGET" | "KILL" => Ok(Parsed::Seglake(seglake::parse_custom(
            sqlparser(dialect.as_ref(), options, tokens),
        )?)),
        "UPDATE" | "DELETE" | "MERGE" => {
            let mut statements = sqlparser(dialect.as_ref(), options, tokens)
                .parse_statements()
                .map_err(parse_error)?;
            if statements.len() != 1 {
                return Err(EngineError::InvalidArgument(
                    "exactly one statement is expected".into(),
                ));
            }
            Ok(Parsed::Seglake(match statements.remove(0) {
                Statement::Update(u) => SeglakeStatement::Update(Box::new(u)),
                Statement::Delete(d) => SeglakeStatement::Delete(Box::new(d)),
                Statement::Merge(m) => SeglakeStatement::Merge(Box::new(m)),
                other => {
                    return Err(EngineError::Unsupported(format!(
                        "unsupported statement: {other}"
                    )));
                }
            }))
        }
        "CREATE" if !words.iter().any(|w| w == "EXTERNAL") => {
            let (tokens, partition_by) = strip_partitioned_by(tokens)?;
            Ok(Parsed::DataFusion {
                statement: datafusion_statement(dialect.as_ref(), options, tokens)?,
                partition_by,
            })
        }
        _ => Ok(Parsed::DataFusion {
            statement: datafusion_statement(dialect.as_ref(), options, tokens)?,
            partition_by: vec![],
        }),
    }
}

/// Parses a query Seglake itself holds as text (a segment's definition), as
/// DataFusion plans it, with `table_at(...)` rewritten.
pub(crate) fn parse_query(sql: &str, options: &SqlParserOptions) -> Result<DFStatement> {
    let dialect = dialect(options)?;
    let tokens = Tokenizer::new(dialect.as_ref(), sql)
        .tokenize_with_location()
        .map_err(parse_error)?;
    datafusion_statement(dialect.as_ref(), options, tokens)
}

fn dialect(options: &SqlParserOptions) -> Result<Box<dyn Dialect>> {
    dialect_from_str(options.dialect).ok_or_else(|| {
        EngineError::InvalidArgument(format!("unsupported SQL dialect: {}", options.dialect))
    })
}

fn sqlparser<'a>(
    dialect: &'a dyn Dialect,
    options: &SqlParserOptions,
    tokens: Vec<TokenWithSpan>,
) -> Parser<'a> {
    Parser::new(dialect)
        .with_recursion_limit(options.recursion_limit.get())
        .with_tokens_with_locations(tokens)
}

/// One statement through DataFusion's parser, `table_at(...)` rewritten.
fn datafusion_statement(
    dialect: &dyn Dialect,
    options: &SqlParserOptions,
    tokens: Vec<TokenWithSpan>,
) -> Result<DFStatement> {
    let mut statements = DFParserBuilder::new(tokens)
        .with_dialect(dialect)
        .with_recursion_limit(options.recursion_limit.get())
        .build()?
        .parse_statements()?;
    if statements.len() > 1 {
        return Err(not_impl_err!(
            "The context currently only supports a single SQL statement"
        )?);
    }
    let mut statement = statements.pop_front().ok_or_else(|| {
        DataFusionError::Plan("No SQL statements were provided in the query string".into())
    })?;
    time_travel::rewrite(&mut statement)?;
    Ok(statement)
}

/// The first four significant tokens, upper-cased words (other tokens
/// as empty strings): enough to recognise every statement of Seglake's.
fn leading_words(tokens: &[TokenWithSpan]) -> Vec<String> {
    tokens
        .iter()
        .filter_map(|t| match &t.token {
            Token::Word(w) => Some(w.value.to_ascii_uppercase()),
            Token::Whitespace(_) => None,
            _ => Some(String::new()),
        })
        .take(4)
        .collect()
}

/// `PARTITIONED BY (a, b)` at the top level of a CREATE TABLE, taken out of
/// the token stream.
fn strip_partitioned_by(tokens: Vec<TokenWithSpan>) -> Result<(Vec<TokenWithSpan>, Vec<String>)> {
    let significant: Vec<usize> = tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| !matches!(t.token, Token::Whitespace(_)))
        .map(|(i, _)| i)
        .collect();
    let is_word = |i: usize, w: &str| matches!(&tokens[i].token, Token::Word(x) if x.value.eq_ignore_ascii_case(w) && x.quote_style.is_none());
    let mut depth = 0i32;
    for (k, &i) in significant.iter().enumerate() {
        match &tokens[i].token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            _ => {}
        }
        if depth != 0 || !is_word(i, "PARTITIONED") {
            continue;
        }
        let by = significant.get(k + 1).is_some_and(|&j| is_word(j, "BY"));
        let paren = significant
            .get(k + 2)
            .is_some_and(|&j| tokens[j].token == Token::LParen);
        if !(by && paren) {
            return Err(EngineError::InvalidArgument(
                "expected PARTITIONED BY (column, ...)".into(),
            ));
        }
        let mut columns = vec![];
        let mut end = None;
        let mut expect_name = true;
        for &j in &significant[k + 3..] {
            match &tokens[j].token {
                Token::Word(Word { value, .. }) if expect_name => {
                    columns.push(value.clone());
                    expect_name = false;
                }
                Token::Comma if !expect_name => expect_name = true,
                Token::RParen if !expect_name => {
                    end = Some(j);
                    break;
                }
                other => {
                    return Err(EngineError::InvalidArgument(format!(
                        "PARTITIONED BY takes column names, found '{other}'"
                    )));
                }
            }
        }
        let end = end.ok_or_else(|| {
            EngineError::InvalidArgument("unterminated PARTITIONED BY (...)".into())
        })?;
        let rest = tokens
            .into_iter()
            .enumerate()
            .filter(|(n, _)| *n < i || *n > end)
            .map(|(_, t)| t)
            .collect();
        return Ok((rest, columns));
    }
    Ok((tokens, vec![]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(sql: &str) -> Result<Parsed> {
        super::parse(sql, &SqlParserOptions::default())
    }

    fn seglake(sql: &str) -> SeglakeStatement {
        match parse(sql).unwrap() {
            Parsed::Seglake(s) => s,
            other => panic!("{sql}: {other:?}"),
        }
    }

    fn partition_by(sql: &str) -> (String, Vec<String>) {
        match parse(sql).unwrap() {
            Parsed::DataFusion {
                statement,
                partition_by,
            } => (statement.to_string(), partition_by),
            other => panic!("{sql}: {other:?}"),
        }
    }

    #[test]
    fn custom_statements() {
        assert!(matches!(
            seglake("OPTIMIZE TABLE events"),
            SeglakeStatement::Optimize { .. }
        ));
        match seglake("vacuum table crm.events retain 0 hours dry run;") {
            SeglakeStatement::Vacuum {
                table,
                retain_hours,
                dry_run,
            } => {
                assert_eq!(
                    seglake::object_name_parts(&table.unwrap()),
                    ["crm", "events"]
                );
                assert_eq!(retain_hours, Some(0.0));
                assert!(dry_run);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            seglake("VACUUM WAREHOUSE RETAIN 200 HOURS"),
            SeglakeStatement::Vacuum {
                table: None,
                retain_hours: Some(200.0),
                dry_run: false
            }
        ));
        match seglake("FORGET PROFILE 'p-1'") {
            SeglakeStatement::ForgetProfile { profile_id } => {
                assert_eq!(profile_id, ProfileId::Literal("p-1".into()))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            seglake("KILL QUERY '0196abc'"),
            SeglakeStatement::KillQuery { id } if id == "0196abc"
        ));
        assert!(matches!(
            seglake("kill 'x';"),
            SeglakeStatement::KillQuery { id } if id == "x"
        ));
        assert!(parse("KILL QUERY 42").is_err());
        assert!(parse("FORGET PROFILE ''").is_err());
        assert!(parse("FORGET 'x'").is_err());
        assert!(parse("VACUUM TABLE t RETAIN x HOURS").is_err());
        assert!(parse("OPTIMIZE TABLE t junk").is_err());
        assert!(matches!(
            parse("SELECT 1").unwrap(),
            Parsed::DataFusion { .. }
        ));
        assert!(matches!(
            seglake("DELETE FROM t WHERE a = 1"),
            SeglakeStatement::Delete(_)
        ));
        // A comment before the first word does not hide the statement.
        assert!(matches!(
            seglake("-- maintenance\nOPTIMIZE TABLE events"),
            SeglakeStatement::Optimize { .. }
        ));
    }

    #[test]
    fn partitioned_by() {
        let (sql, columns) =
            partition_by("CREATE TABLE t (a INT, d DATE) PARTITIONED BY (d) AS SELECT 1");
        assert_eq!(columns, ["d"]);
        assert!(!sql.to_uppercase().contains("PARTITIONED"));
        assert!(sql.contains("(a INT, d DATE)"), "{sql}");
        let (_, columns) =
            partition_by("create table t partitioned by (a, \"B\") as select 1 as a, 2 as \"B\"");
        assert_eq!(columns, ["a", "B"]);
        assert!(parse("CREATE TABLE t PARTITIONED BY d AS SELECT 1").is_err());
        assert!(partition_by("CREATE TABLE t (a int)").1.is_empty());
    }

    #[test]
    fn one_statement() {
        let e = parse("SELECT 1; SELECT 2").unwrap_err();
        assert!(
            e.to_string()
                .contains("only supports a single SQL statement"),
            "{e}"
        );
        let e = parse("").unwrap_err();
        assert!(e.to_string().contains("No SQL statements"), "{e}");
        assert!(parse("DELETE FROM t; DELETE FROM u").is_err());
    }

    #[test]
    fn placeholders_are_numbered_in_the_tree() {
        let (sql, _) = partition_by("CREATE TABLE t AS SELECT ? AS a, '?' AS b, ? AS c");
        assert!(sql.contains("$1 AS a, '?' AS b, $2 AS c"), "{sql}");
        match seglake("FORGET PROFILE ?") {
            SeglakeStatement::ForgetProfile { profile_id } => {
                assert_eq!(profile_id, ProfileId::Parameter(1))
            }
            other => panic!("{other:?}"),
        }
    }
}
