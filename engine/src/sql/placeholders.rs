//! Placeholder rewriting. Seglake's own statements and clauses are split
//! off in `statements.rs` before DataFusion's parser sees the text;
//! everything else is DataFusion's dialect (`CREATE EXTERNAL TABLE`
//! included).

/// Rewrites JDBC/ODBC-style `?` placeholders to DataFusion's positional
/// `$1`, `$2`, ... (DataFusion gives every `?` the same id). Question marks
/// inside string literals, quoted identifiers and comments are left alone.
/// Returns the rewritten SQL and the number of `?` replaced.
pub fn rewrite_placeholders(sql: &str) -> (String, usize) {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' | '`' => {
                out.push(c);
                // Quoted text; a doubled quote is an escaped quote and simply
                // re-enters the loop.
                for d in chars.by_ref() {
                    out.push(d);
                    if d == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                out.push(c);
                for d in chars.by_ref() {
                    out.push(d);
                    if d == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                out.push(c);
                out.push(chars.next().expect("peeked"));
                let mut prev = ' ';
                for d in chars.by_ref() {
                    out.push(d);
                    if prev == '*' && d == '/' {
                        break;
                    }
                    prev = d;
                }
            }
            '?' => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    (out, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        assert_eq!(
            rewrite_placeholders("select ?, ?"),
            ("select $1, $2".into(), 2)
        );
        assert_eq!(
            rewrite_placeholders("select '?', \"a?\" , ? -- ?\n, /* ? */ ?"),
            ("select '?', \"a?\" , $1 -- ?\n, /* ? */ $2".into(), 2)
        );
        assert_eq!(
            rewrite_placeholders("select 'it''s ?', ?"),
            ("select 'it''s ?', $1".into(), 1)
        );
        assert_eq!(rewrite_placeholders("select $1"), ("select $1".into(), 0));
        assert_eq!(rewrite_placeholders(""), (String::new(), 0));
    }
}
