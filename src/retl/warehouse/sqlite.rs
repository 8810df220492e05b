//! SQLite: the file opened read-only (`SQLITE_OPEN_READ_ONLY`, `PRAGMA query_only = 1`) on a
//! blocking thread, a timer that interrupts a query running past the timeout, rows streamed.
//!
//! URLs: `sqlite:///absolute/path.db`, `sqlite://relative/path.db` or `sqlite:path.db`;
//! relative paths are relative to `<data-dir>/warehouses`.
//!
//! Only files under the allowed directories are opened ([`SqliteRoots`]): without that, anyone
//! who may create a connection could read any SQLite file the server can, Sluice's own
//! `control.db` (with destination secrets and token digests) first of all.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use serde_json::Value as Json;

use super::{Column, Sink, Target, WarehouseError, bytes_to_json, float_to_json, wrapped};

/// The file path of a `sqlite:` URL.
pub fn path_of(url: &str) -> &str {
    let rest = url.strip_prefix("sqlite:").unwrap_or(url);
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    rest.split('?').next().unwrap_or("")
}

/// The directories SQLite warehouse files may be read from.
#[derive(Debug, Clone)]
pub struct SqliteRoots {
    /// Sluice's data directory: never readable, except for `warehouses` inside it.
    pub data_dir: PathBuf,
    /// `<data-dir>/warehouses`, where relative paths resolve.
    pub warehouses: PathBuf,
    /// `retl.sqlite_allowed_dirs`.
    pub allowed: Vec<PathBuf>,
}

/// A path with symlinks resolved as far as it exists (a file not created yet resolves through
/// its directory).
fn real(path: &Path) -> PathBuf {
    if let Ok(p) = path.canonicalize() {
        return p;
    }
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => real(parent).join(name),
        _ => path.to_owned(),
    }
}

impl SqliteRoots {
    pub fn new(data_dir: &Path, allowed: &[PathBuf]) -> SqliteRoots {
        SqliteRoots {
            data_dir: data_dir.to_owned(),
            warehouses: data_dir.join("warehouses"),
            allowed: allowed.to_vec(),
        }
    }

    /// The file a `sqlite:` URL names, if it is under an allowed directory; else why not.
    pub fn check(&self, url: &str) -> Result<PathBuf, WarehouseError> {
        let given = Path::new(path_of(url));
        if given.components().any(|c| c == Component::ParentDir) {
            return Err(WarehouseError::new(
                "path_not_allowed",
                format!("the SQLite path {} must not contain '..'", given.display()),
            ));
        }
        let path = real(&if given.is_relative() {
            self.warehouses.join(given)
        } else {
            given.to_owned()
        });
        let warehouses = real(&self.warehouses);
        if path.starts_with(&warehouses) {
            return Ok(path);
        }
        if path.starts_with(real(&self.data_dir)) {
            return Err(WarehouseError::new(
                "path_not_allowed",
                format!(
                    "{} is inside Sluice's own data directory, which reverse ETL may not read; put warehouse files in {}",
                    path.display(),
                    warehouses.display()
                ),
            ));
        }
        if self.allowed.iter().any(|dir| path.starts_with(real(dir))) {
            return Ok(path);
        }
        let dirs: Vec<String> = std::iter::once(&warehouses)
            .chain(&self.allowed)
            .map(|d| d.display().to_string())
            .collect();
        Err(WarehouseError::new(
            "path_not_allowed",
            format!(
                "{} is outside the directories SQLite warehouses may be read from ({}); move the file there, or add its directory to retl.sqlite_allowed_dirs (SLUICE_RETL__SQLITE_ALLOWED_DIRS)",
                path.display(),
                dirs.join(", ")
            ),
        ))
    }
}

fn open(target: &Target) -> Result<Connection, WarehouseError> {
    let path = path_of(&target.url);
    if !std::path::Path::new(path).exists() {
        return Err(WarehouseError::new(
            "database_not_found",
            format!(
                "there is no SQLite database at {path}; check the path in the URL (sqlite:///absolute/path.db)"
            ),
        ));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| classify(e, "cannot open the SQLite database"))?;
    conn.pragma_update(None, "query_only", 1)
        .map_err(|e| classify(e, "cannot make the SQLite connection read-only"))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(|e| classify(e, "cannot configure the SQLite connection"))?;
    Ok(conn)
}

fn classify(e: rusqlite::Error, what: &str) -> WarehouseError {
    let code = match &e {
        rusqlite::Error::SqliteFailure(err, _) => match err.code {
            rusqlite::ErrorCode::OperationInterrupted => "timeout",
            rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::NotADatabase => {
                "database_not_found"
            }
            rusqlite::ErrorCode::PermissionDenied => "permission_denied",
            rusqlite::ErrorCode::ReadOnly => "read_only",
            _ => "invalid_query",
        },
        _ => "warehouse_error",
    };
    let hint = match code {
        "timeout" => {
            "; the query ran longer than the connection's statementTimeoutSeconds: make it cheaper or raise the timeout"
        }
        "invalid_query" => "; fix the model's query",
        _ => "",
    };
    WarehouseError::new(code, format!("{what}: {e}{hint}"))
}

/// Run `f` on a blocking thread with a read-only connection, interrupted after the timeout.
async fn with_connection<T: Send + 'static>(
    target: &Target,
    f: impl FnOnce(&Connection) -> Result<T, WarehouseError> + Send + 'static,
) -> Result<T, WarehouseError> {
    let target = target.clone();
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let conn = open(&target)?;
        let interrupt = conn.get_interrupt_handle();
        let timeout = target.statement_timeout;
        let timer = runtime.spawn(async move {
            tokio::time::sleep(timeout).await;
            interrupt.interrupt();
        });
        let result = f(&conn);
        timer.abort();
        result
    })
    .await
    .map_err(|e| WarehouseError::new("warehouse_error", format!("SQLite reader failed: {e}")))?
}

pub async fn test(target: &Target) -> Result<String, WarehouseError> {
    with_connection(target, |conn| {
        conn.query_row("SELECT sqlite_version()", [], |r| r.get::<_, String>(0))
            .map(|v| format!("SQLite {v}"))
            .map_err(|e| classify(e, "SQLite"))
    })
    .await
}

fn columns_of(statement: &rusqlite::Statement<'_>) -> Vec<Column> {
    // Declared types need rusqlite's `column_decltype`; SQLite values carry their own type.
    statement
        .column_names()
        .into_iter()
        .map(|name| Column {
            name: name.to_owned(),
            type_name: String::new(),
        })
        .collect()
}

pub async fn describe(target: &Target, query: &str) -> Result<Vec<Column>, WarehouseError> {
    let sql = wrapped("*", query, None);
    with_connection(target, move |conn| {
        let statement = conn.prepare(&sql).map_err(|e| classify(e, "SQLite"))?;
        Ok(columns_of(&statement))
    })
    .await
}

pub async fn extract(
    target: &Target,
    query: &str,
    limit: Option<usize>,
    sink: Sink,
) -> Result<(), WarehouseError> {
    let sql = wrapped("*", query, limit);
    with_connection(target, move |conn| {
        let mut statement = conn.prepare(&sql).map_err(|e| classify(e, "SQLite"))?;
        let width = statement.column_count();
        if !sink.blocking_columns(columns_of(&statement)) {
            return Ok(());
        }
        let mut rows = statement.query([]).map_err(|e| classify(e, "SQLite"))?;
        let mut chunk = Vec::with_capacity(sink.chunk);
        while let Some(row) = rows.next().map_err(|e| classify(e, "SQLite"))? {
            let mut values = Vec::with_capacity(width);
            for i in 0..width {
                let value = row.get_ref(i).map_err(|e| classify(e, "SQLite"))?;
                values.push(to_json(value));
            }
            chunk.push(values);
            if chunk.len() >= sink.chunk
                && !sink.blocking_rows(std::mem::replace(
                    &mut chunk,
                    Vec::with_capacity(sink.chunk),
                ))
            {
                return Ok(());
            }
        }
        if !chunk.is_empty() {
            sink.blocking_rows(chunk);
        }
        Ok(())
    })
    .await
}

fn to_json(value: ValueRef<'_>) -> Json {
    match value {
        ValueRef::Null => Json::Null,
        ValueRef::Integer(i) => Json::from(i),
        ValueRef::Real(f) => float_to_json(f),
        ValueRef::Text(t) => Json::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => bytes_to_json(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_urls() {
        assert_eq!(path_of("sqlite:///var/w.db"), "/var/w.db");
        assert_eq!(path_of("sqlite://w.db"), "w.db");
        assert_eq!(path_of("sqlite:w.db?mode=ro"), "w.db");
        assert_eq!(path_of("sqlite://"), "");
    }

    #[test]
    fn only_files_under_the_allowed_directories_are_read() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        let shared = root.path().join("shared");
        let elsewhere = root.path().join("elsewhere");
        for dir in [&data.join("warehouses"), &shared, &elsewhere] {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(data.join("control.db"), b"").unwrap();
        let roots = SqliteRoots::new(&data, std::slice::from_ref(&shared));
        let url = |p: &Path| format!("sqlite://{}", p.display());
        let allowed = |u: &str| roots.check(u).map_err(|e| (e.code, e.message));

        // Relative paths resolve under <data>/warehouses; allowed dirs are readable.
        let inside = allowed("sqlite://crm.db").unwrap();
        assert!(inside.ends_with("data/warehouses/crm.db"), "{inside:?}");
        assert!(allowed(&url(&shared.join("w.db"))).is_ok());
        // Sluice's own files, '..' escapes and other directories are not.
        for bad in [
            url(&data.join("control.db")),
            url(&shared.join("../data/control.db")),
            "sqlite://../control.db".to_owned(),
            url(&elsewhere.join("w.db")),
        ] {
            let (code, message) = allowed(&bad).unwrap_err();
            assert_eq!(code, "path_not_allowed", "{bad}: {message}");
        }
        assert!(
            allowed(&url(&data.join("control.db")))
                .unwrap_err()
                .1
                .contains("own data directory")
        );
        // A symlink in an allowed directory pointing at the control store is resolved first.
        #[cfg(unix)]
        {
            let link = shared.join("innocent.db");
            std::os::unix::fs::symlink(data.join("control.db"), &link).unwrap();
            assert_eq!(allowed(&url(&link)).unwrap_err().0, "path_not_allowed");
        }
    }

    #[tokio::test]
    async fn reads_stream_and_writes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE t(id INTEGER, name TEXT, score REAL, raw BLOB);
                 INSERT INTO t VALUES (1, 'a', 1.5, x'ff00'), (2, NULL, NULL, x'6869'), (3, 'c', 2, NULL);",
            )
            .unwrap();
        }
        let target = Target {
            kind: super::super::Kind::Sqlite,
            url: format!("sqlite://{}", path.display()),
            statement_timeout: Duration::from_secs(5),
        };
        let mut extraction = super::super::extract(&target, "SELECT * FROM t ORDER BY id", 2)
            .await
            .unwrap();
        let names: Vec<_> = extraction.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "name", "score", "raw"]);
        let first = extraction.next_chunk().await.unwrap().unwrap();
        assert_eq!(
            first,
            vec![
                vec![
                    Json::from(1),
                    Json::from("a"),
                    Json::from(1.5),
                    Json::from("/wA=")
                ],
                vec![Json::from(2), Json::Null, Json::Null, Json::from("hi")],
            ]
        );
        let second = extraction.next_chunk().await.unwrap().unwrap();
        assert_eq!(second.len(), 1);
        assert!(extraction.next_chunk().await.is_none());

        // The guard refuses writes; a write smuggled past it is refused by SQLite.
        let e = super::super::describe(&target, "DELETE FROM t")
            .await
            .unwrap_err();
        assert_eq!(e.code, "invalid_query");
        let e = super::super::test(&Target {
            url: "sqlite:///nonexistent/dir/w.db".into(),
            ..target.clone()
        })
        .await
        .unwrap_err();
        assert_eq!(e.code, "database_not_found");
        let e = with_connection(&target, |c| {
            c.execute("DELETE FROM t", [])
                .map_err(|e| classify(e, "SQLite"))
        })
        .await
        .unwrap_err();
        assert_eq!(e.code, "read_only", "{e:?}");
    }

    #[tokio::test]
    async fn slow_queries_are_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t(x)")
            .unwrap();
        let target = Target {
            kind: super::super::Kind::Sqlite,
            url: format!("sqlite://{}", path.display()),
            statement_timeout: Duration::from_millis(200),
        };
        let slow = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT COUNT(*) AS n FROM c";
        let (_, rows) = match super::super::preview(&target, slow, 10).await {
            Err(e) => {
                assert_eq!(e.code, "timeout", "{e:?}");
                return;
            }
            Ok(r) => r,
        };
        panic!("an endless query returned {rows:?}");
    }
}
