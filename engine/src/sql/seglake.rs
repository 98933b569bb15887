//! Seglake's own statements (the front-end in `sql/mod.rs` decides which
//! statements are ours):
//! - `OPTIMIZE TABLE t`, `VACUUM { TABLE t | WAREHOUSE } [RETAIN n HOURS] [DRY RUN]`,
//!   `FORGET PROFILE '<id>' | $n`, parsed here with sqlparser's parser API;
//! - `UPDATE`, `DELETE` and `MERGE INTO` on managed tables: sqlparser parses
//!   them, Seglake runs them as Delta operations;
//! - segment statements (`crate::commands::segments`);
//! - users, roles and grants (`super::security`).
//!
//! Their `$n` parameters are bound here (DataFusion's binding does not apply
//! to statements it does not plan).

use datafusion::common::ScalarValue;
use datafusion::sql::sqlparser::ast::{
    self, Delete, Expr as SqlExpr, Merge, ObjectName, ObjectNamePart, Update, Value, VisitMut,
    VisitorMut,
};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;
use std::ops::ControlFlow;

use super::parse_error;
use super::security::{Password, SecurityStatement};
use crate::{EngineError, Result};

/// A statement Seglake runs itself.
#[derive(Debug, Clone)]
pub(crate) enum SeglakeStatement {
    Optimize {
        table: ObjectName,
    },
    /// `table` is `None` for `VACUUM WAREHOUSE`.
    Vacuum {
        table: Option<ObjectName>,
        retain_hours: Option<f64>,
        dry_run: bool,
    },
    ForgetProfile {
        profile_id: ProfileId,
    },
    /// `KILL [QUERY] '<query_id>'`.
    KillQuery {
        id: String,
    },
    Update(Box<Update>),
    Delete(Box<Delete>),
    Merge(Box<Merge>),
    Segment(super::segments::SegmentStatement),
    Security(SecurityStatement),
}

/// The profile `FORGET PROFILE` names: a literal, or a `$n` parameter
/// until [`bind_parameters`] replaces it with its bound value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProfileId {
    Literal(String),
    Parameter(usize),
}

/// `n` of a `$n` placeholder (`?` were rewritten to `$n` before parsing).
pub(crate) fn placeholder_index(name: &str) -> Option<usize> {
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

/// `OPTIMIZE`, `VACUUM` or `FORGET PROFILE` from the statement's parser.
pub(crate) fn parse_custom(mut p: Parser<'_>) -> Result<SeglakeStatement> {
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
        let table = if word(&mut p, "WAREHOUSE") {
            None
        } else {
            let _ = p.parse_keyword(Keyword::TABLE);
            Some(p.parse_object_name(false).map_err(parse_error)?)
        };
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
    } else if word(&mut p, "KILL") {
        let _ = word(&mut p, "QUERY");
        let id = p.parse_literal_string().map_err(|_| {
            EngineError::InvalidArgument(
                "expected KILL QUERY '<query_id>' (the query_id of system.queries)".into(),
            )
        })?;
        SeglakeStatement::KillQuery { id }
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
        SeglakeStatement::Security(security) => {
            if let Some(password) = security.password_mut()
                && let Password::Parameter(i) = *password
            {
                let value = params.get(i - 1).ok_or_else(|| {
                    EngineError::InvalidArgument(format!("no value bound for parameter ${i}"))
                })?;
                *password = Password::Literal(password_value(value)?);
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
        SeglakeStatement::Security(
            SecurityStatement::CreateUser {
                password: Password::Parameter(n),
                ..
            }
            | SecurityStatement::AlterUser {
                password: Password::Parameter(n),
                ..
            },
        ) => {
            c.0 = *n;
            ControlFlow::Continue(())
        }
        _ => ControlFlow::Continue(()),
    };
    c.0
}

/// The password a bound value stands for: a non-empty string (never
/// quoted in the error).
fn password_value(value: &ScalarValue) -> Result<String> {
    match value {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s))
            if !s.is_empty() =>
        {
            Ok(s.clone())
        }
        _ => Err(EngineError::InvalidArgument(
            "a password is a non-empty string".into(),
        )),
    }
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

pub(crate) fn scalar_to_sql(value: &ScalarValue) -> Result<SqlExpr> {
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

    /// The Seglake statement `sql` parses to.
    fn statement(sql: &str) -> SeglakeStatement {
        match crate::sql::parse(sql, &Default::default()).unwrap() {
            crate::sql::Parsed::Seglake(s) => s,
            other => panic!("{sql}: {other:?}"),
        }
    }

    fn parse(sql: &str) -> Result<crate::sql::Parsed> {
        crate::sql::parse(sql, &Default::default())
    }

    #[test]
    fn parameters() {
        let mut s = statement("DELETE FROM t WHERE a = $1 AND b = $2");
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
        // `?` is numbered `$1` by the front-end.
        let parsed = || statement("FORGET PROFILE ?");
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
        let s = statement("forget profile $1;");
        assert_eq!(parameter_count(&s), 1);
        assert!(parse("FORGET PROFILE $0").is_err());
        assert!(parse("FORGET PROFILE $1 junk").is_err());
    }
}
