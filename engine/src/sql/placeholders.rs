//! JDBC/ODBC-style `?` placeholders, numbered in the token stream.

use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan};

/// Rewrites `?` placeholders to DataFusion's positional `$1`, `$2`, ...
/// (DataFusion gives every `?` the same id). Works on tokens, so question
/// marks inside string literals, quoted identifiers and comments are never
/// seen. Returns the number of `?` replaced.
pub(super) fn number(tokens: &mut [TokenWithSpan]) -> usize {
    let mut n = 0;
    for t in tokens {
        if matches!(&t.token, Token::Placeholder(p) if p == "?") {
            n += 1;
            t.token = Token::Placeholder(format!("${n}"));
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::tokenizer::Tokenizer;

    use super::*;

    fn tokens(sql: &str) -> Vec<Token> {
        Tokenizer::new(&GenericDialect {}, sql)
            .tokenize_with_location()
            .unwrap()
            .into_iter()
            .map(|t| t.token)
            .collect()
    }

    /// The statement's tokens after numbering, and the tokens of `sql`
    /// with its numbering written out (`expected`), to compare.
    fn rewrite_placeholders(sql: &str) -> (Vec<Token>, usize) {
        let mut with_spans = Tokenizer::new(&GenericDialect {}, sql)
            .tokenize_with_location()
            .unwrap();
        let n = number(&mut with_spans);
        (with_spans.into_iter().map(|t| t.token).collect(), n)
    }

    fn expected(sql: &str, n: usize) -> (Vec<Token>, usize) {
        (tokens(sql), n)
    }

    #[test]
    fn placeholders() {
        assert_eq!(
            rewrite_placeholders("select ?, ?"),
            expected("select $1, $2", 2)
        );
        assert_eq!(
            rewrite_placeholders("select '?', \"a?\" , ? -- ?\n, /* ? */ ?"),
            expected("select '?', \"a?\" , $1 -- ?\n, /* ? */ $2", 2)
        );
        assert_eq!(
            rewrite_placeholders("select 'it''s ?', ?"),
            expected("select 'it''s ?', $1", 1)
        );
        assert_eq!(rewrite_placeholders("select $1"), expected("select $1", 0));
        assert_eq!(rewrite_placeholders(""), expected("", 0));
    }
}
