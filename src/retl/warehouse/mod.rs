//! Warehouses: PostgreSQL and MySQL/MariaDB through sqlx, SQLite through rusqlite.
//!
//! Every query a model runs is wrapped as a subquery (`SELECT … FROM (<model>) AS
//! sluice_model`) inside a read-only transaction with a statement timeout:
//!
//! | kind | read-only | timeout |
//! |---|---|---|
//! | postgres | `BEGIN READ ONLY` | `SET LOCAL statement_timeout` |
//! | mysql / mariadb | `SET SESSION TRANSACTION READ ONLY`, `START TRANSACTION READ ONLY` | `max_statement_time` (MariaDB) or `max_execution_time` (MySQL) |
//! | sqlite | opened `SQLITE_OPEN_READ_ONLY`, `PRAGMA query_only = 1` | interrupted by a timer |
//!
//! Rows are streamed: a producer task reads the result set and sends chunks of rows over a
//! bounded channel, so at most a few chunks are in memory whatever the size of the result.
//! Values become JSON: strings, numbers, booleans, nulls; timestamps as RFC 3339 (UTC when the
//! column has no zone); binary values as UTF-8 text when they are, base64 otherwise.
//! Postgres rows are converted by the server (`row_to_json`), which knows every type.

pub mod guard;
mod mysql;
mod postgres;
mod sqlite;
pub use sqlite::SqliteRoots;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use tokio::sync::mpsc;

/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Rows in flight between the warehouse reader and the sync: `CHANNEL_CHUNKS` chunks.
const CHANNEL_CHUNKS: usize = 2;

/// The alias of the wrapped model query.
const ALIAS: &str = "sluice_model";

/// A warehouse's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Postgres,
    Mysql,
    Sqlite,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Postgres => "postgres",
            Kind::Mysql => "mysql",
            Kind::Sqlite => "sqlite",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "postgres" => Kind::Postgres,
            "mysql" => Kind::Mysql,
            "sqlite" => Kind::Sqlite,
            _ => return None,
        })
    }

    /// Whether `url`'s scheme fits this kind.
    pub fn accepts(self, url: &str) -> bool {
        let scheme = url.split(':').next().unwrap_or("").to_ascii_lowercase();
        match self {
            Kind::Postgres => matches!(scheme.as_str(), "postgres" | "postgresql"),
            Kind::Mysql => matches!(scheme.as_str(), "mysql" | "mariadb"),
            Kind::Sqlite => scheme == "sqlite",
        }
    }

    fn example(self) -> &'static str {
        match self {
            Kind::Postgres => "postgres://user:password@host:5432/database",
            Kind::Mysql => "mysql://user:password@host:3306/database",
            Kind::Sqlite => "sqlite:///absolute/path/to/file.db",
        }
    }
}

/// Check a connection URL against its kind.
pub fn validate_url(kind: Kind, url: &str) -> Result<(), String> {
    if url.trim().is_empty() || url.len() > 2048 {
        return Err(format!(
            "url must be 1 to 2048 characters, e.g. {}",
            kind.example()
        ));
    }
    if !kind.accepts(url) {
        return Err(format!(
            "a {} connection needs a URL like {}",
            kind.as_str(),
            kind.example()
        ));
    }
    if kind == Kind::Sqlite && sqlite::path_of(url).is_empty() {
        return Err(format!("the URL names no file, e.g. {}", kind.example()));
    }
    Ok(())
}

/// The placeholder shown instead of a password.
pub const REDACTED: &str = "********";

/// Query parameters that hold secrets.
const SECRET_PARAMS: &[&str] = &["password", "pass", "pwd", "sslpassword"];

/// The URL with its password (in the user info or a `password=` parameter) replaced by
/// `********`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => {
            let (userinfo, host) = authority.split_at(at);
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:{REDACTED}{host}"),
                None => authority.to_owned(),
            }
        }
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if SECRET_PARAMS.iter().any(|s| k.eq_ignore_ascii_case(s)) => {
                        format!("{k}={REDACTED}")
                    }
                    _ => p.to_owned(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// A new URL as sent by a client that read the redacted one: every `********` is replaced by
/// the secret it stands for in `old`, so a password can be kept while the host changes.
pub fn unredact_url(new: &str, old: &str) -> String {
    if !new.contains(REDACTED) {
        return new.to_owned();
    }
    let mut out = new.to_owned();
    if let Some(password) = password_of(old)
        && out.contains(&format!(":{REDACTED}@"))
    {
        out = out.replacen(&format!(":{REDACTED}@"), &format!(":{password}@"), 1);
    }
    if let Some((_, query)) = old.split_once('?') {
        for param in query.split('&') {
            if let Some((k, v)) = param.split_once('=')
                && SECRET_PARAMS.iter().any(|s| k.eq_ignore_ascii_case(s))
            {
                out = out.replace(&format!("{k}={REDACTED}"), &format!("{k}={v}"));
            }
        }
    }
    out
}

fn password_of(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    userinfo.split_once(':').map(|(_, p)| p)
}

/// A result column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Column {
    pub name: String,
    /// The warehouse's type name, e.g. `TEXT`, `BOOL`, `TIMESTAMPTZ`.
    #[serde(rename = "type")]
    pub type_name: String,
}

/// One row's values, in column order.
pub type Row = Vec<Json>;

/// Why a warehouse call failed: a code for programs and a message that says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct WarehouseError {
    /// `invalid_url`, `unreachable`, `authentication_failed`, `database_not_found`,
    /// `permission_denied`, `invalid_query`, `timeout`, `read_only`, `warehouse_error`.
    pub code: &'static str,
    pub message: String,
}

impl WarehouseError {
    pub fn new(code: &'static str, message: impl Into<String>) -> WarehouseError {
        WarehouseError {
            code,
            message: message.into(),
        }
    }

    /// Errors about the query rather than about reaching the warehouse.
    pub fn is_query_error(&self) -> bool {
        matches!(
            self.code,
            "invalid_query" | "read_only" | "permission_denied" | "path_not_allowed"
        )
    }
}

/// Where and how to query.
#[derive(Debug, Clone)]
pub struct Target {
    pub kind: Kind,
    pub url: String,
    pub statement_timeout: Duration,
}

impl Target {
    /// Where a stored connection points; a SQLite file must be under `roots` (and is then
    /// named by its resolved path, so a symlink swapped later cannot redirect the query).
    pub fn of(
        kind: Kind,
        url: &str,
        statement_timeout: Duration,
        roots: &SqliteRoots,
    ) -> Result<Target, WarehouseError> {
        let url = match kind {
            Kind::Sqlite => format!("sqlite://{}", roots.check(url)?.display()),
            Kind::Postgres | Kind::Mysql => url.to_owned(),
        };
        Ok(Target {
            kind,
            url,
            statement_timeout,
        })
    }
}

/// What `test` found.
#[derive(Debug, Clone)]
pub struct Tested {
    pub server_version: String,
    pub latency: Duration,
}

/// Connect, run a trivial read-only query, and report the server's version.
pub async fn test(target: &Target) -> Result<Tested, WarehouseError> {
    let start = Instant::now();
    let server_version = match target.kind {
        Kind::Postgres => postgres::test(target).await?,
        Kind::Mysql => mysql::test(target).await?,
        Kind::Sqlite => sqlite::test(target).await?,
    };
    Ok(Tested {
        server_version,
        latency: start.elapsed(),
    })
}

/// The columns of a model query, without running it to completion.
pub async fn describe(target: &Target, query: &str) -> Result<Vec<Column>, WarehouseError> {
    let query =
        guard::check(query, target.kind).map_err(|m| WarehouseError::new("invalid_query", m))?;
    let columns = match target.kind {
        Kind::Postgres => postgres::describe(target, query).await?,
        Kind::Mysql => mysql::describe(target, query).await?,
        Kind::Sqlite => sqlite::describe(target, query).await?,
    };
    check_columns(&columns)?;
    Ok(columns)
}

/// Refuse results a record cannot be built from: no columns, or two columns with one name.
fn check_columns(columns: &[Column]) -> Result<(), WarehouseError> {
    if columns.is_empty() {
        return Err(WarehouseError::new(
            "invalid_query",
            "the query returns no columns",
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for c in columns {
        if !seen.insert(c.name.as_str()) {
            return Err(WarehouseError::new(
                "invalid_query",
                format!(
                    "the query returns two columns named {:?}; give them distinct names with AS",
                    c.name
                ),
            ));
        }
    }
    Ok(())
}

/// The first `limit` rows.
pub async fn preview(
    target: &Target,
    query: &str,
    limit: usize,
) -> Result<(Vec<Column>, Vec<Row>), WarehouseError> {
    let mut extraction = extract_inner(target, query, limit.max(1), Some(limit)).await?;
    let mut rows = Vec::new();
    while let Some(chunk) = extraction.next_chunk().await {
        rows.extend(chunk?);
        if rows.len() >= limit {
            break;
        }
    }
    rows.truncate(limit);
    Ok((extraction.columns, rows))
}

/// A streaming read of a model's rows.
pub struct Extraction {
    pub columns: Vec<Column>,
    chunks: mpsc::Receiver<Message>,
    /// Stops the reader when the extraction is dropped early.
    _reader: AbortOnDrop,
}

impl Extraction {
    /// The next chunk of rows; `None` once the result is exhausted.
    pub async fn next_chunk(&mut self) -> Option<Result<Vec<Row>, WarehouseError>> {
        match self.chunks.recv().await? {
            Message::Rows(rows) => Some(Ok(rows)),
            Message::Failed(e) => Some(Err(e)),
            Message::Columns(_) => Some(Err(WarehouseError::new(
                "warehouse_error",
                "the warehouse reader sent columns twice",
            ))),
        }
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a reader task sends: the columns first, then chunks of rows, or an error.
enum Message {
    Columns(Vec<Column>),
    Rows(Vec<Row>),
    Failed(WarehouseError),
}

/// The sending half handed to a reader.
struct Sink {
    tx: mpsc::Sender<Message>,
    chunk: usize,
}

impl Sink {
    /// `false` when the receiver is gone (the sync stopped): the reader should stop.
    async fn columns(&self, columns: Vec<Column>) -> bool {
        self.tx.send(Message::Columns(columns)).await.is_ok()
    }

    async fn rows(&self, rows: Vec<Row>) -> bool {
        self.tx.send(Message::Rows(rows)).await.is_ok()
    }

    fn blocking_rows(&self, rows: Vec<Row>) -> bool {
        self.tx.blocking_send(Message::Rows(rows)).is_ok()
    }

    fn blocking_columns(&self, columns: Vec<Column>) -> bool {
        self.tx.blocking_send(Message::Columns(columns)).is_ok()
    }
}

/// Stream a model's rows in chunks of `chunk` rows.
pub async fn extract(
    target: &Target,
    query: &str,
    chunk: usize,
) -> Result<Extraction, WarehouseError> {
    extract_inner(target, query, chunk, None).await
}

async fn extract_inner(
    target: &Target,
    query: &str,
    chunk: usize,
    limit: Option<usize>,
) -> Result<Extraction, WarehouseError> {
    let query = guard::check(query, target.kind)
        .map_err(|m| WarehouseError::new("invalid_query", m))?
        .to_owned();
    let (tx, mut rx) = mpsc::channel(CHANNEL_CHUNKS);
    let sink = Sink { tx, chunk };
    let target = target.clone();
    let reader = tokio::spawn(async move {
        let failed = sink.tx.clone();
        let result = match target.kind {
            Kind::Postgres => postgres::extract(&target, &query, limit, sink).await,
            Kind::Mysql => mysql::extract(&target, &query, limit, sink).await,
            Kind::Sqlite => sqlite::extract(&target, &query, limit, sink).await,
        };
        if let Err(e) = result {
            let _ = failed.send(Message::Failed(e)).await;
        }
    });
    let reader = AbortOnDrop(reader.abort_handle());
    match rx.recv().await {
        Some(Message::Columns(columns)) => {
            check_columns(&columns)?;
            Ok(Extraction {
                columns,
                chunks: rx,
                _reader: reader,
            })
        }
        Some(Message::Failed(e)) => Err(e),
        Some(Message::Rows(_)) | None => Err(WarehouseError::new(
            "warehouse_error",
            "the warehouse reader stopped before sending the columns",
        )),
    }
}

/// The model query wrapped as a subquery.
fn wrapped(select: &str, query: &str, limit: Option<usize>) -> String {
    let mut sql = format!("SELECT {select} FROM (\n{query}\n) AS {ALIAS}");
    if let Some(limit) = limit {
        sql.push_str(&format!(" LIMIT {limit}"));
    }
    sql
}

/// Classify an sqlx error (Postgres and MySQL share most of the shapes).
fn classify_sqlx(e: sqlx::Error, what: &str) -> WarehouseError {
    match e {
        sqlx::Error::Configuration(e) => WarehouseError::new(
            "invalid_url",
            format!("the connection URL is not valid: {e}"),
        ),
        sqlx::Error::Io(e) => WarehouseError::new(
            "unreachable",
            format!("cannot reach the {what} server: {e}; check the host and port"),
        ),
        sqlx::Error::Tls(e) => WarehouseError::new(
            "unreachable",
            format!("TLS with the {what} server failed: {e}; check sslmode / ssl-mode in the URL"),
        ),
        sqlx::Error::Protocol(e) => WarehouseError::new(
            "warehouse_error",
            format!(
                "the {what} server answered unexpectedly: {e}; is the port that of a {what} server?"
            ),
        ),
        sqlx::Error::Database(db) => {
            let message = db.message().to_owned();
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let number = db
                .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                .map(|e| e.number());
            classify_database(&code, number, message, what)
        }
        other => WarehouseError::new("warehouse_error", format!("{what}: {other}")),
    }
}

/// Classify a database error by SQLSTATE (and MySQL error number).
fn classify_database(
    sqlstate: &str,
    mysql_number: Option<u16>,
    message: String,
    what: &str,
) -> WarehouseError {
    let code = match (sqlstate, mysql_number) {
        (_, Some(1045)) | ("28P01" | "28000", None) => "authentication_failed",
        (_, Some(1049)) | ("3D000", None) => "database_not_found",
        (_, Some(1044 | 1142 | 1143)) | ("42501", None) => "permission_denied",
        (_, Some(1969 | 3024)) | ("57014", None) => "timeout",
        (_, Some(1792)) | ("25006", None) => "read_only",
        _ if sqlstate.starts_with("42") => "invalid_query",
        (_, Some(1054 | 1064 | 1146 | 1222 | 1248 | 1060)) => "invalid_query",
        _ => "warehouse_error",
    };
    let hint = match code {
        "authentication_failed" => "; check the user name and password in the URL",
        "database_not_found" => "; check the database name at the end of the URL",
        "permission_denied" => "; grant the connection's user SELECT on the tables the model reads",
        "timeout" => {
            "; the query ran longer than the connection's statementTimeoutSeconds: make it cheaper or raise the timeout"
        }
        "read_only" => "; model queries run read-only and may not write",
        "invalid_query" => "; fix the model's query",
        _ => "",
    };
    WarehouseError::new(code, format!("{what}: {message}{hint}"))
}

/// RFC 3339 for a timestamp without a zone, read as UTC: `2024-01-02 03:04:05.5` →
/// `2024-01-02T03:04:05.5Z`.
fn naive_timestamp_to_rfc3339(s: &str) -> String {
    let mut out = s.replacen(' ', "T", 1);
    let has_zone =
        out.ends_with('Z') || out.get(19..).is_some_and(|tail| tail.contains(['+', '-']));
    if !has_zone {
        out.push('Z');
    }
    out
}

/// Text for binary values: UTF-8 when it is, base64 otherwise.
fn bytes_to_json(bytes: &[u8]) -> Json {
    match std::str::from_utf8(bytes) {
        Ok(s) => Json::String(s.to_owned()),
        Err(_) => {
            use base64::Engine as _;
            Json::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
    }
}

/// A float as JSON (non-finite values, which JSON cannot hold, become null).
fn float_to_json(f: f64) -> Json {
    serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted_and_restored() {
        let cases = [
            (
                "postgres://app:s3cret@db.internal:5432/warehouse",
                "postgres://app:********@db.internal:5432/warehouse",
            ),
            (
                "postgres://app@db/warehouse?sslmode=require",
                "postgres://app@db/warehouse?sslmode=require",
            ),
            (
                "mysql://root:p%40ss@127.0.0.1:3306/test",
                "mysql://root:********@127.0.0.1:3306/test",
            ),
            (
                "postgres://db/w?user=app&password=hunter2&sslmode=disable",
                "postgres://db/w?user=app&password=********&sslmode=disable",
            ),
            ("postgres://a:b@c@host/db", "postgres://a:********@host/db"),
            ("sqlite:///var/data/w.db", "sqlite:///var/data/w.db"),
            ("not a url", "not a url"),
        ];
        for (url, redacted) in cases {
            assert_eq!(redact_url(url), redacted, "{url}");
            assert_eq!(unredact_url(redacted, url), url, "{url}");
        }
        // A new host with the old password.
        assert_eq!(
            unredact_url(
                "postgres://app:********@db2:5432/warehouse",
                "postgres://app:s3cret@db1:5432/warehouse"
            ),
            "postgres://app:s3cret@db2:5432/warehouse"
        );
    }

    #[test]
    fn urls_must_fit_their_kind() {
        assert!(validate_url(Kind::Postgres, "postgresql://u@h/d").is_ok());
        assert!(validate_url(Kind::Mysql, "mariadb://u@h/d").is_ok());
        assert!(validate_url(Kind::Sqlite, "sqlite:///tmp/x.db").is_ok());
        assert!(
            validate_url(Kind::Postgres, "mysql://u@h/d")
                .unwrap_err()
                .contains("postgres://")
        );
        assert!(validate_url(Kind::Sqlite, "sqlite://").is_err());
        assert!(validate_url(Kind::Mysql, "").is_err());
    }

    #[test]
    fn database_errors_are_classified() {
        let cases = [
            ("28P01", None, "authentication_failed"),
            ("3D000", None, "database_not_found"),
            ("42P01", None, "invalid_query"),
            ("57014", None, "timeout"),
            ("25006", None, "read_only"),
            ("28000", Some(1045), "authentication_failed"),
            ("42000", Some(1049), "database_not_found"),
            ("42S02", Some(1146), "invalid_query"),
            ("70100", Some(1969), "timeout"),
            ("25006", Some(1792), "read_only"),
            ("HY000", Some(2013), "warehouse_error"),
        ];
        for (state, number, code) in cases {
            assert_eq!(
                classify_database(state, number, "m".into(), "x").code,
                code,
                "{state} {number:?}"
            );
        }
    }

    #[test]
    fn naive_timestamps_become_utc() {
        assert_eq!(
            naive_timestamp_to_rfc3339("2024-01-02 03:04:05"),
            "2024-01-02T03:04:05Z"
        );
        assert_eq!(
            naive_timestamp_to_rfc3339("2024-01-02T03:04:05.25"),
            "2024-01-02T03:04:05.25Z"
        );
        assert_eq!(
            naive_timestamp_to_rfc3339("2024-01-02T03:04:05+00:00"),
            "2024-01-02T03:04:05+00:00"
        );
        assert_eq!(bytes_to_json(b"abc"), Json::String("abc".into()));
        assert_eq!(bytes_to_json(&[0xff, 0x00]), Json::String("/wA=".into()));
        assert_eq!(float_to_json(f64::NAN), Json::Null);
    }
}
