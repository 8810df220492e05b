//! The query guard: a model's SQL must be one `SELECT` (or `WITH … SELECT`) statement.
//!
//! This is a lexical check, not a parser: it skips string literals, quoted identifiers and
//! comments, then requires the first word to be `SELECT`, `WITH`, `VALUES` or `TABLE`, refuses
//! a second statement, and refuses words that only writing statements use (`INSERT`, `INTO`,
//! `COPY` …). It is defence in depth and a friendly early error; the real guard is the
//! read-only transaction (or read-only SQLite connection) every model query runs in.

use super::Kind;

/// Longest model query accepted.
pub const MAX_QUERY_BYTES: usize = 100 * 1024;

/// Words a read-only query has no use for. A column with one of these names can still be used
/// when quoted (`"update"`).
const FORBIDDEN: &[&str] = &[
    "INSERT", "UPDATE", "DELETE", "MERGE", "UPSERT", "DROP", "ALTER", "CREATE", "TRUNCATE",
    "GRANT", "REVOKE", "COPY", "CALL", "EXECUTE", "ATTACH", "DETACH", "PRAGMA", "VACUUM", "INTO",
    "OUTFILE", "DUMPFILE", "LOCK",
];

/// Check `query` and return it without trailing semicolons, comments and whitespace, ready to
/// be wrapped as a subquery. The error says what to change.
pub fn check(query: &str, kind: Kind) -> Result<&str, String> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(format!(
            "the query is {} bytes; at most {} KB are accepted",
            query.len(),
            MAX_QUERY_BYTES / 1024
        ));
    }
    let tokens = lex(query, kind)?;
    // A semicolon is allowed only at the end (nothing but comments and whitespace after it).
    let mut end = query.len();
    if let Some(position) = tokens.iter().position(|t| matches!(t, Token::Semicolon(_))) {
        if tokens[position..]
            .iter()
            .any(|t| matches!(t, Token::Word(..)))
        {
            return Err(
                "a model query must be a single statement; remove everything after the first `;`"
                    .to_owned(),
            );
        }
        if let Token::Semicolon(at) = tokens[position] {
            end = at;
        }
    }
    let mut words = tokens.iter().filter_map(|t| match t {
        Token::Word(start, end) => Some(&query[*start..*end]),
        Token::Semicolon(_) => None,
    });
    let first = words.next().ok_or_else(|| {
        "the query is empty; write a SELECT statement, e.g. SELECT id, email FROM users".to_owned()
    })?;
    if !["SELECT", "WITH", "VALUES", "TABLE"]
        .iter()
        .any(|w| first.eq_ignore_ascii_case(w))
    {
        return Err(format!(
            "a model query must be a single SELECT (or WITH … SELECT) statement; it starts with {first:?}"
        ));
    }
    for word in std::iter::once(first).chain(words) {
        if let Some(bad) = FORBIDDEN.iter().find(|f| word.eq_ignore_ascii_case(f)) {
            return Err(format!(
                "a model query only reads: {bad} is not allowed (quote it if it is a column name)"
            ));
        }
    }
    Ok(query[..end].trim())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// Byte range of a bare word.
    Word(usize, usize),
    /// Byte offset of a `;`.
    Semicolon(usize),
}

fn lex(query: &str, kind: Kind) -> Result<Vec<Token>, String> {
    let bytes = query.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    let unterminated = |what: &str| format!("the query has an unterminated {what}");
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\'' => {
                i = skip_quoted(bytes, i, b'\'', kind == Kind::Mysql)
                    .ok_or_else(|| unterminated("string literal"))?
            }
            b'"' => {
                i = skip_quoted(bytes, i, b'"', kind == Kind::Mysql)
                    .ok_or_else(|| unterminated("quoted identifier"))?
            }
            b'`' if kind != Kind::Postgres => {
                i = skip_quoted(bytes, i, b'`', false)
                    .ok_or_else(|| unterminated("quoted identifier"))?
            }
            b'[' if kind == Kind::Sqlite => match query[i..].find(']') {
                Some(n) => i += n + 1,
                None => return Err(unterminated("[identifier]")),
            },
            b'-' if bytes.get(i + 1) == Some(&b'-') => i = skip_line(bytes, i),
            b'#' if kind == Kind::Mysql => i = skip_line(bytes, i),
            b'/' if bytes.get(i + 1) == Some(&b'*') => match query[i + 2..].find("*/") {
                Some(n) => i += n + 4,
                None => return Err(unterminated("/* comment */")),
            },
            b'$' if kind == Kind::Postgres => match dollar_tag(query, i) {
                Some(tag) => match query[i + tag.len()..].find(tag) {
                    Some(n) => i += tag.len() + n + tag.len(),
                    None => return Err(unterminated("$$ string")),
                },
                None => i += 1,
            },
            b';' => {
                tokens.push(Token::Semicolon(i));
                i += 1;
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'$')
                {
                    i += 1;
                }
                tokens.push(Token::Word(start, i));
            }
            _ => i += 1,
        }
    }
    Ok(tokens)
}

/// Index after the closing quote of a quoted run starting at `start`; a doubled quote is an
/// escaped one, and so is a backslash-escaped one when `backslash` (MySQL).
fn skip_quoted(bytes: &[u8], start: usize, quote: u8, backslash: bool) -> Option<usize> {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if backslash => i += 2,
            b if b == quote => {
                if bytes.get(i + 1) == Some(&quote) {
                    i += 2;
                } else {
                    return Some(i + 1);
                }
            }
            _ => i += 1,
        }
    }
    None
}

fn skip_line(bytes: &[u8], start: usize) -> usize {
    bytes[start..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(bytes.len(), |n| start + n + 1)
}

/// A Postgres dollar-quote tag (`$$` or `$tag$`) starting at `start`.
fn dollar_tag(query: &str, start: usize) -> Option<&str> {
    let rest = &query[start + 1..];
    let end = rest.find('$')?;
    let tag = &rest[..end];
    if tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !tag.starts_with(|c: char| c.is_ascii_digit())
    {
        Some(&query[start..start + end + 2])
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Ok(cleaned)` or `Err(part of the message)`.
    fn check_case(kind: Kind, query: &str, expected: Result<&str, &str>) {
        match (check(query, kind), expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{query:?}"),
            (Err(got), Err(want)) => assert!(got.contains(want), "{query:?}: {got}"),
            (got, want) => panic!("{query:?}: got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn accepted_queries() {
        use Kind::{Mysql, Postgres, Sqlite};
        let cases: &[(Kind, &str, &str)] = &[
            (Postgres, "SELECT id FROM users", "SELECT id FROM users"),
            (Postgres, "select id from users;", "select id from users"),
            (Postgres, "  SELECT 1 ;; -- done\n", "SELECT 1"),
            (
                Postgres,
                "WITH a AS (SELECT 1 AS id) SELECT * FROM a",
                "WITH a AS (SELECT 1 AS id) SELECT * FROM a",
            ),
            (
                Postgres,
                "SELECT 'DELETE; INTO' AS s, \"update\" FROM t",
                "SELECT 'DELETE; INTO' AS s, \"update\" FROM t",
            ),
            (
                Postgres,
                "SELECT $$ drop ; $$ AS x",
                "SELECT $$ drop ; $$ AS x",
            ),
            (
                Postgres,
                "SELECT $t$ insert $t$ AS x",
                "SELECT $t$ insert $t$ AS x",
            ),
            (
                Postgres,
                "/* insert */ SELECT updated_at, deleted FROM t",
                "/* insert */ SELECT updated_at, deleted FROM t",
            ),
            (
                Mysql,
                "SELECT `delete`, 'it\\'s' FROM t # comment",
                "SELECT `delete`, 'it\\'s' FROM t # comment",
            ),
            (Sqlite, "SELECT [into] FROM t;", "SELECT [into] FROM t"),
            (Postgres, "SELECT 'O''Brien' AS n", "SELECT 'O''Brien' AS n"),
            (Postgres, "VALUES (1, 'a')", "VALUES (1, 'a')"),
        ];
        for (kind, query, cleaned) in cases {
            check_case(*kind, query, Ok(cleaned));
        }
    }

    #[test]
    fn refused_queries() {
        use Kind::{Mysql, Postgres, Sqlite};
        let cases: &[(Kind, &str, &str)] = &[
            (Postgres, "", "empty"),
            (Postgres, "  -- nothing\n", "empty"),
            (Postgres, "DELETE FROM users", "starts with \"DELETE\""),
            (Postgres, "SELECT 1; DROP TABLE users", "single statement"),
            (Postgres, "SELECT 1; SELECT 2", "single statement"),
            (
                Postgres,
                "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
                "DELETE is not allowed",
            ),
            (
                Postgres,
                "SELECT * INTO backup FROM t",
                "INTO is not allowed",
            ),
            (
                Mysql,
                "SELECT * FROM t INTO OUTFILE '/tmp/x'",
                "INTO is not allowed",
            ),
            (
                Postgres,
                "SELECT * FROM t FOR UPDATE",
                "UPDATE is not allowed",
            ),
            (Postgres, "SELECT 'unterminated", "unterminated string"),
            (Sqlite, "PRAGMA table_info(t)", "starts with \"PRAGMA\""),
            (Sqlite, "ATTACH 'x.db' AS x", "starts with \"ATTACH\""),
            (Postgres, "SELECT 1 /* open", "unterminated /*"),
        ];
        for (kind, query, message) in cases {
            check_case(*kind, query, Err(message));
        }
        let long = format!("SELECT '{}'", "x".repeat(MAX_QUERY_BYTES));
        check_case(Postgres, &long, Err("at most"));
    }
}
