//! Seglake's statements on top of DataFusion's SQL.
//!
//! Recognised here, before DataFusion plans the text:
//! - `OPTIMIZE TABLE t`, `VACUUM TABLE t [RETAIN n HOURS] [DRY RUN]`,
//!   `FORGET PROFILE '<id>' | $n`: Seglake statements, parsed with
//!   sqlparser's parser API;
//! - `UPDATE`, `DELETE` and `MERGE INTO` on managed tables: sqlparser parses
//!   them, Seglake runs them as Delta operations;
//! - `CREATE TABLE ... PARTITIONED BY (col, ...)`: the clause is taken out
//!   and the rest is planned by DataFusion;
//! - `table_at('t', <version> | TIMESTAMP '...')` in FROM: rewritten to a
//!   hidden table name that the catalog resolves to that version.

use datafusion::common::ScalarValue;
use datafusion::sql::sqlparser::ast::{
    self, Delete, Expr as SqlExpr, FunctionArg, FunctionArgExpr, Ident, Merge, ObjectName,
    ObjectNamePart, Statement, TableAlias, TableFactor, Update, Value, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer, Word};
use std::ops::ControlFlow;

use crate::delta::TimeTravel;
use crate::{EngineError, Result};

/// The hidden schema whose tables are past versions of managed tables.
pub(crate) const TIME_TRAVEL_SCHEMA: &str = "$time_travel";

/// A statement Seglake runs itself.
#[derive(Debug, Clone)]
pub(crate) enum SeglakeStatement {
    Optimize {
        table: ObjectName,
    },
    Vacuum {
        table: ObjectName,
        retain_hours: Option<f64>,
        dry_run: bool,
    },
    ForgetProfile {
        profile_id: ProfileId,
    },
    Update(Box<Update>),
    Delete(Box<Delete>),
    Merge(Box<Merge>),
    Segment(crate::segments::SegmentStatement),
}

/// The profile `FORGET PROFILE` names: a literal, or a `$n` parameter
/// until [`bind_parameters`] replaces it with its bound value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProfileId {
    Literal(String),
    Parameter(usize),
}

/// What the front-end made of a statement's text.
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    /// A Seglake statement, or `None` for DataFusion to plan `sql`.
    pub statement: Option<SeglakeStatement>,
    /// The text DataFusion plans (clauses Seglake handles removed).
    pub sql: String,
    /// `PARTITIONED BY (...)` of a `CREATE TABLE`.
    pub partition_by: Vec<String>,
}

fn parse_error(e: impl std::fmt::Display) -> EngineError {
    EngineError::InvalidArgument(format!("SQL error: {e}"))
}

/// Splits off Seglake's statements and clauses; `sql` has `$n` parameters.
pub(crate) fn parse(sql: &str) -> Result<Parsed> {
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize()
        .map_err(parse_error)?;
    let words: Vec<String> = tokens
        .iter()
        .filter_map(|t| match t {
            Token::Word(w) => Some(w.value.to_ascii_uppercase()),
            Token::Whitespace(_) => None,
            _ => Some(String::new()),
        })
        .take(4)
        .collect();
    let first = words.first().map(String::as_str).unwrap_or("");
    let plain = |sql: String| Parsed {
        statement: None,
        sql,
        partition_by: vec![],
    };
    match crate::segments::recognise(&words, sql)? {
        Some(crate::segments::Recognised::Statement(s)) => {
            return Ok(Parsed {
                statement: Some(SeglakeStatement::Segment(s)),
                sql: sql.to_string(),
                partition_by: vec![],
            });
        }
        Some(crate::segments::Recognised::Sql(sql)) => return Ok(plain(sql)),
        None => {}
    }
    match first {
        "OPTIMIZE" | "VACUUM" | "FORGET" => Ok(Parsed {
            statement: Some(parse_custom(sql)?),
            sql: sql.to_string(),
            partition_by: vec![],
        }),
        "UPDATE" | "DELETE" | "MERGE" => {
            let mut statements = Parser::parse_sql(&dialect, sql).map_err(parse_error)?;
            if statements.len() != 1 {
                return Err(EngineError::InvalidArgument(
                    "exactly one statement is expected".into(),
                ));
            }
            let statement = match statements.remove(0) {
                Statement::Update(u) => SeglakeStatement::Update(Box::new(u)),
                Statement::Delete(d) => SeglakeStatement::Delete(Box::new(d)),
                Statement::Merge(m) => SeglakeStatement::Merge(Box::new(m)),
                other => {
                    return Err(EngineError::Unsupported(format!(
                        "unsupported statement: {other}"
                    )));
                }
            };
            Ok(Parsed {
                statement: Some(statement),
                sql: sql.to_string(),
                partition_by: vec![],
            })
        }
        "CREATE" if !words.iter().any(|w| w == "EXTERNAL") => {
            let (rest, partition_by) = strip_partitioned_by(&tokens)?;
            Ok(Parsed {
                statement: None,
                sql: rewrite_time_travel(&rest)?,
                partition_by,
            })
        }
        _ => Ok(plain(rewrite_time_travel(sql)?)),
    }
}

/// `PARTITIONED BY (a, b)` at the top level of a CREATE TABLE, removed.
fn strip_partitioned_by(tokens: &[Token]) -> Result<(String, Vec<String>)> {
    let significant: Vec<usize> = tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| !matches!(t, Token::Whitespace(_)))
        .map(|(i, _)| i)
        .collect();
    let is_word = |i: usize, w: &str| matches!(&tokens[i], Token::Word(x) if x.value.eq_ignore_ascii_case(w) && x.quote_style.is_none());
    let mut depth = 0i32;
    for (k, &i) in significant.iter().enumerate() {
        match &tokens[i] {
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
            .is_some_and(|&j| tokens[j] == Token::LParen);
        if !(by && paren) {
            return Err(EngineError::InvalidArgument(
                "expected PARTITIONED BY (column, ...)".into(),
            ));
        }
        let mut columns = vec![];
        let mut end = None;
        let mut expect_name = true;
        for &j in &significant[k + 3..] {
            match &tokens[j] {
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
        let mut out = String::new();
        for (n, t) in tokens.iter().enumerate() {
            if n < i || n > end {
                out.push_str(&t.to_string());
            }
        }
        return Ok((out, columns));
    }
    let text: String = tokens.iter().map(|t| t.to_string()).collect();
    Ok((text, vec![]))
}

/// `n` of a `$n` placeholder (`?` were rewritten to `$n` before parsing).
fn placeholder_index(name: &str) -> Option<usize> {
    name.strip_prefix('$')
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| *n >= 1)
}

fn check_profile_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(EngineError::InvalidArgument(
            "FORGET PROFILE needs a non-empty profile id".into(),
        ));
    }
    Ok(())
}

fn parse_custom(sql: &str) -> Result<SeglakeStatement> {
    let dialect = GenericDialect {};
    let mut p = Parser::new(&dialect)
        .try_with_sql(sql)
        .map_err(parse_error)?;
    let word = |p: &mut Parser<'_>, w: &str| -> bool {
        let matches = matches!(&p.peek_token().token, Token::Word(x) if x.value.eq_ignore_ascii_case(w) && x.quote_style.is_none());
        if matches {
            p.next_token();
        }
        matches
    };
    let statement = if word(&mut p, "OPTIMIZE") {
        let _ = p.parse_keyword(Keyword::TABLE);
        let table = p.parse_object_name(false).map_err(parse_error)?;
        SeglakeStatement::Optimize { table }
    } else if word(&mut p, "VACUUM") {
        let _ = p.parse_keyword(Keyword::TABLE);
        let table = p.parse_object_name(false).map_err(parse_error)?;
        let mut retain_hours = None;
        let mut dry_run = false;
        loop {
            if word(&mut p, "RETAIN") {
                let retain_usage = || {
                    EngineError::InvalidArgument(
                        "RETAIN expects a number of hours: RETAIN 24 HOURS".into(),
                    )
                };
                let n = match p.parse_number_value().map_err(|_| retain_usage())?.value {
                    Value::Number(n, _) => n.parse::<f64>().map_err(|_| retain_usage())?,
                    _ => return Err(retain_usage()),
                };
                if !(word(&mut p, "HOURS") || word(&mut p, "HOUR")) {
                    return Err(EngineError::InvalidArgument(
                        "expected RETAIN <n> HOURS".into(),
                    ));
                }
                if n < 0.0 {
                    return Err(EngineError::InvalidArgument(
                        "RETAIN takes a non-negative number of hours".into(),
                    ));
                }
                retain_hours = Some(n);
            } else if word(&mut p, "DRY") {
                if !word(&mut p, "RUN") {
                    return Err(EngineError::InvalidArgument("expected DRY RUN".into()));
                }
                dry_run = true;
            } else {
                break;
            }
        }
        SeglakeStatement::Vacuum {
            table,
            retain_hours,
            dry_run,
        }
    } else if word(&mut p, "FORGET") {
        let usage = || {
            EngineError::InvalidArgument(
                "expected FORGET PROFILE '<profile_id>' (or a parameter: ? or $1)".into(),
            )
        };
        if !word(&mut p, "PROFILE") {
            return Err(usage());
        }
        let profile_id = if let Token::Placeholder(name) = &p.peek_token().token {
            let index = placeholder_index(name).ok_or_else(usage)?;
            p.next_token();
            ProfileId::Parameter(index)
        } else {
            let id = p.parse_literal_string().map_err(|_| usage())?;
            check_profile_id(&id)?;
            ProfileId::Literal(id)
        };
        SeglakeStatement::ForgetProfile { profile_id }
    } else {
        return Err(EngineError::InvalidArgument("unknown statement".into()));
    };
    let _ = p.consume_token(&Token::SemiColon);
    if p.peek_token().token != Token::EOF {
        return Err(EngineError::InvalidArgument(format!(
            "unexpected '{}' at the end of the statement",
            p.peek_token().token
        )));
    }
    Ok(statement)
}

/// Rewrites `table_at('name', 3)` / `table_at('name', TIMESTAMP '...')` in
/// FROM clauses to `"$time_travel"."schema.table@v3"` (aliased as the
/// table), which the catalog resolves to that version of the table.
pub(crate) fn rewrite_time_travel(sql: &str) -> Result<String> {
    if !sql.to_ascii_lowercase().contains("table_at") {
        return Ok(sql.to_string());
    }
    let dialect = GenericDialect {};
    let mut statements = match Parser::parse_sql(&dialect, sql) {
        Ok(s) => s,
        // Let DataFusion report the syntax error (it knows more statements).
        Err(_) => return Ok(sql.to_string()),
    };
    let mut visitor = TimeTravelRewriter { error: None };
    for s in &mut statements {
        let _ = s.visit(&mut visitor);
    }
    if let Some(e) = visitor.error {
        return Err(e);
    }
    Ok(statements
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join("; "))
}

struct TimeTravelRewriter {
    error: Option<EngineError>,
}

impl VisitorMut for TimeTravelRewriter {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let TableFactor::Table {
            name, args, alias, ..
        } = factor
        else {
            return ControlFlow::Continue(());
        };
        let is_table_at = name.0.len() == 1
            && matches!(&name.0[0], ObjectNamePart::Identifier(i) if i.value.eq_ignore_ascii_case("table_at"));
        let Some(function_args) = args.as_ref().filter(|_| is_table_at) else {
            return ControlFlow::Continue(());
        };
        match time_travel_target(&function_args.args) {
            Ok((table, at)) => {
                let short = table.rsplit('.').next().unwrap_or(&table).to_string();
                *name = ObjectName(vec![
                    ObjectNamePart::Identifier(Ident::with_quote('"', TIME_TRAVEL_SCHEMA)),
                    ObjectNamePart::Identifier(Ident::with_quote(
                        '"',
                        format!("{table}@{}", at.encode()),
                    )),
                ]);
                *args = None;
                if alias.is_none() {
                    *alias = Some(TableAlias {
                        explicit: true,
                        name: Ident::with_quote('"', short),
                        columns: vec![],
                        at: None,
                    });
                }
                ControlFlow::Continue(())
            }
            Err(e) => {
                self.error = Some(e);
                ControlFlow::Break(())
            }
        }
    }
}

fn time_travel_target(args: &[FunctionArg]) -> Result<(String, TimeTravel)> {
    let usage = || {
        EngineError::InvalidArgument(
            "table_at takes a table name and a version or a timestamp: \
             table_at('events', 3) or table_at('events', TIMESTAMP '2026-01-01 00:00:00')"
                .into(),
        )
    };
    let exprs: Vec<&SqlExpr> = args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e),
            _ => Err(usage()),
        })
        .collect::<Result<_>>()?;
    let [table, at] = exprs.as_slice() else {
        return Err(usage());
    };
    let table = match table {
        SqlExpr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => s.clone(),
            _ => return Err(usage()),
        },
        SqlExpr::Identifier(i) => i.value.clone(),
        SqlExpr::CompoundIdentifier(parts) => parts
            .iter()
            .map(|p| p.value.clone())
            .collect::<Vec<_>>()
            .join("."),
        _ => return Err(usage()),
    };
    let at = match at {
        SqlExpr::Value(v) => match &v.value {
            Value::Number(n, _) => TimeTravel::Version(n.parse().map_err(|_| usage())?),
            Value::SingleQuotedString(s) => TimeTravel::Timestamp(parse_timestamp(s)?),
            _ => return Err(usage()),
        },
        SqlExpr::TypedString(ts) => match &ts.value.value {
            Value::SingleQuotedString(s) => TimeTravel::Timestamp(parse_timestamp(s)?),
            _ => return Err(usage()),
        },
        _ => return Err(usage()),
    };
    if matches!(at, TimeTravel::Version(v) if v < 0) {
        return Err(EngineError::InvalidArgument(
            "table versions start at 0".into(),
        ));
    }
    Ok((table, at))
}

/// RFC 3339, or `YYYY-MM-DD[ HH:MM:SS[.fff]]` taken as UTC.
pub(crate) fn parse_timestamp(s: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, f) {
            return Ok(t.and_utc());
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
    }
    Err(EngineError::InvalidArgument(format!(
        "cannot read '{s}' as a timestamp (use '2026-01-31 12:00:00' or RFC 3339)"
    )))
}

/// Replaces `$n` placeholders in `statement` with the bound values as SQL
/// literals (Seglake statements are not planned by DataFusion, so its
/// parameter binding does not apply).
pub(crate) fn bind_parameters(
    statement: &mut SeglakeStatement,
    params: &[ScalarValue],
) -> Result<()> {
    struct Binder<'a> {
        params: &'a [ScalarValue],
        error: Option<EngineError>,
        count: usize,
    }
    impl VisitorMut for Binder<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &mut SqlExpr) -> ControlFlow<()> {
            if let SqlExpr::Value(v) = expr
                && let Value::Placeholder(p) = &v.value
            {
                let index = placeholder_index(p);
                match index.and_then(|i| self.params.get(i - 1)) {
                    Some(value) => match scalar_to_sql(value) {
                        Ok(e) => {
                            self.count = self.count.max(index.unwrap_or(0));
                            *expr = e;
                        }
                        Err(e) => {
                            self.error = Some(e);
                            return ControlFlow::Break(());
                        }
                    },
                    None => {
                        self.error = Some(EngineError::InvalidArgument(format!(
                            "no value bound for parameter {p}"
                        )));
                        return ControlFlow::Break(());
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut binder = Binder {
        params,
        error: None,
        count: 0,
    };
    let _ = match statement {
        SeglakeStatement::Update(u) => u.visit(&mut binder),
        SeglakeStatement::Delete(d) => d.visit(&mut binder),
        SeglakeStatement::Merge(m) => m.visit(&mut binder),
        SeglakeStatement::ForgetProfile { profile_id } => {
            if let ProfileId::Parameter(i) = *profile_id {
                let value = params.get(i - 1).ok_or_else(|| {
                    EngineError::InvalidArgument(format!("no value bound for parameter ${i}"))
                })?;
                let id = profile_id_value(value)?;
                check_profile_id(&id)?;
                *profile_id = ProfileId::Literal(id);
                binder.count = i;
            }
            ControlFlow::Continue(())
        }
        _ => ControlFlow::Continue(()),
    };
    if let Some(e) = binder.error {
        return Err(e);
    }
    if binder.count != params.len() {
        return Err(EngineError::InvalidArgument(format!(
            "the statement has {} parameter(s) but {} value(s) were bound",
            binder.count,
            params.len()
        )));
    }
    Ok(())
}

/// Number of `$n` placeholders of a Seglake statement.
pub(crate) fn parameter_count(statement: &SeglakeStatement) -> usize {
    struct Counter(usize);
    impl ast::Visitor for Counter {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &SqlExpr) -> ControlFlow<()> {
            if let SqlExpr::Value(v) = expr
                && let Value::Placeholder(p) = &v.value
                && let Some(n) = placeholder_index(p)
            {
                self.0 = self.0.max(n);
            }
            ControlFlow::Continue(())
        }
    }
    use ast::Visit;
    let mut c = Counter(0);
    let _ = match statement {
        SeglakeStatement::Update(u) => u.visit(&mut c),
        SeglakeStatement::Delete(d) => d.visit(&mut c),
        SeglakeStatement::Merge(m) => m.visit(&mut c),
        SeglakeStatement::ForgetProfile {
            profile_id: ProfileId::Parameter(n),
        } => {
            c.0 = *n;
            ControlFlow::Continue(())
        }
        _ => ControlFlow::Continue(()),
    };
    c.0
}

/// The profile id a bound value stands for: a non-null string.
fn profile_id_value(value: &ScalarValue) -> Result<String> {
    match value {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Ok(s.clone()),
        v if v.is_null() => Err(EngineError::InvalidArgument(
            "FORGET PROFILE needs a non-empty profile id, the parameter is NULL".into(),
        )),
        other => Err(EngineError::InvalidArgument(format!(
            "FORGET PROFILE takes a string profile id, the parameter is {}",
            other.data_type()
        ))),
    }
}

fn scalar_to_sql(value: &ScalarValue) -> Result<SqlExpr> {
    if value.is_null() {
        return Ok(SqlExpr::value(Value::Null));
    }
    let text = value.to_string();
    let quoted = |s: String| SqlExpr::value(Value::SingleQuotedString(s));
    Ok(match value {
        ScalarValue::Boolean(_) => SqlExpr::value(Value::Boolean(text == "true")),
        v if v.data_type().is_numeric() => SqlExpr::value(Value::Number(text, false)),
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => quoted(s.clone()),
        ScalarValue::Date32(_) | ScalarValue::Date64(_) => SqlExpr::Cast {
            kind: ast::CastKind::Cast,
            expr: Box::new(quoted(text)),
            data_type: ast::DataType::Date,
            array: false,
            format: None,
        },
        ScalarValue::TimestampSecond(..)
        | ScalarValue::TimestampMillisecond(..)
        | ScalarValue::TimestampMicrosecond(..)
        | ScalarValue::TimestampNanosecond(..) => SqlExpr::Cast {
            kind: ast::CastKind::Cast,
            expr: Box::new(quoted(text)),
            data_type: ast::DataType::Timestamp(None, ast::TimezoneInfo::None),
            array: false,
            format: None,
        },
        other => {
            return Err(EngineError::InvalidArgument(format!(
                "parameters of type {} are not supported in this statement",
                other.data_type()
            )));
        }
    })
}

/// `schema.table` or `table` from an object name.
pub(crate) fn object_name_parts(name: &ObjectName) -> Vec<String> {
    name.0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => i.value.clone(),
            other => other.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_statements() {
        assert!(matches!(
            parse("OPTIMIZE TABLE events").unwrap().statement,
            Some(SeglakeStatement::Optimize { .. })
        ));
        match parse("vacuum table crm.events retain 0 hours dry run;")
            .unwrap()
            .statement
        {
            Some(SeglakeStatement::Vacuum {
                table,
                retain_hours,
                dry_run,
            }) => {
                assert_eq!(object_name_parts(&table), ["crm", "events"]);
                assert_eq!(retain_hours, Some(0.0));
                assert!(dry_run);
            }
            other => panic!("{other:?}"),
        }
        match parse("FORGET PROFILE 'p-1'").unwrap().statement {
            Some(SeglakeStatement::ForgetProfile { profile_id }) => {
                assert_eq!(profile_id, ProfileId::Literal("p-1".into()))
            }
            other => panic!("{other:?}"),
        }
        assert!(parse("FORGET PROFILE ''").is_err());
        assert!(parse("FORGET 'x'").is_err());
        assert!(parse("VACUUM TABLE t RETAIN x HOURS").is_err());
        assert!(parse("OPTIMIZE TABLE t junk").is_err());
        assert!(parse("SELECT 1").unwrap().statement.is_none());
        assert!(matches!(
            parse("DELETE FROM t WHERE a = 1").unwrap().statement,
            Some(SeglakeStatement::Delete(_))
        ));
    }

    #[test]
    fn partitioned_by() {
        let p = parse("CREATE TABLE t (a INT, d DATE) PARTITIONED BY (d) AS SELECT 1").unwrap();
        assert_eq!(p.partition_by, ["d"]);
        assert!(!p.sql.to_uppercase().contains("PARTITIONED"));
        assert!(p.sql.contains("(a INT, d DATE)"));
        let p =
            parse("create table t partitioned by (a, \"B\") as select 1 as a, 2 as \"B\"").unwrap();
        assert_eq!(p.partition_by, ["a", "B"]);
        assert!(parse("CREATE TABLE t PARTITIONED BY d AS SELECT 1").is_err());
        assert!(
            parse("CREATE TABLE t (a int)")
                .unwrap()
                .partition_by
                .is_empty()
        );
    }

    #[test]
    fn time_travel() {
        let sql = rewrite_time_travel("SELECT count(*) FROM table_at('events', 3) e").unwrap();
        assert!(sql.contains("\"$time_travel\".\"events@v3\" e"), "{sql}");
        let sql = rewrite_time_travel(
            "SELECT * FROM table_at('crm.events', TIMESTAMP '2026-01-02 03:04:05') JOIN x ON true",
        )
        .unwrap();
        let ms = parse_timestamp("2026-01-02 03:04:05")
            .unwrap()
            .timestamp_millis();
        assert!(
            sql.contains(&format!("\"crm.events@t{ms}\" AS \"events\"")),
            "{sql}"
        );
        assert!(rewrite_time_travel("SELECT * FROM table_at('e')").is_err());
        assert!(rewrite_time_travel("SELECT * FROM table_at('e', -1)").is_err());
        assert_eq!(rewrite_time_travel("SELECT 1").unwrap(), "SELECT 1");
    }

    #[test]
    fn parameters() {
        let mut s = parse("DELETE FROM t WHERE a = $1 AND b = $2")
            .unwrap()
            .statement
            .unwrap();
        assert_eq!(parameter_count(&s), 2);
        bind_parameters(
            &mut s,
            &[
                ScalarValue::Int64(Some(3)),
                ScalarValue::Utf8(Some("it's".into())),
            ],
        )
        .unwrap();
        let SeglakeStatement::Delete(d) = s else {
            panic!()
        };
        assert_eq!(d.selection.unwrap().to_string(), "a = 3 AND b = 'it''s'");
    }

    #[test]
    fn forget_profile_parameter() {
        // `?` is rewritten to `$1` before parsing.
        let (sql, _) = crate::sql::rewrite_placeholders("FORGET PROFILE ?");
        let parsed = || parse(&sql).unwrap().statement.unwrap();
        let mut s = parsed();
        assert_eq!(parameter_count(&s), 1);
        bind_parameters(&mut s, &[ScalarValue::Utf8(Some("p-'7".into()))]).unwrap();
        assert!(matches!(
            s,
            SeglakeStatement::ForgetProfile { profile_id: ProfileId::Literal(ref p) } if p == "p-'7"
        ));
        let mut s = parsed();
        bind_parameters(&mut s, &[ScalarValue::Utf8View(Some("p-8".into()))]).unwrap();
        assert!(matches!(
            s,
            SeglakeStatement::ForgetProfile { profile_id: ProfileId::Literal(ref p) } if p == "p-8"
        ));
        for bad in [
            vec![],
            vec![ScalarValue::Utf8(None)],
            vec![ScalarValue::Utf8(Some(String::new()))],
            vec![ScalarValue::Int64(Some(7))],
            vec![
                ScalarValue::Utf8(Some("a".into())),
                ScalarValue::Utf8(Some("b".into())),
            ],
        ] {
            let mut s = parsed();
            let e = bind_parameters(&mut s, &bad).unwrap_err();
            assert!(matches!(e, EngineError::InvalidArgument(_)), "{bad:?}: {e}");
        }
        let s = parse("forget profile $1;").unwrap().statement.unwrap();
        assert_eq!(parameter_count(&s), 1);
        assert!(parse("FORGET PROFILE $0").is_err());
        assert!(parse("FORGET PROFILE $1 junk").is_err());
    }
}
