//! The control-plane store: workspace settings, sources, destinations, consent categories,
//! users and API tokens, in an embedded SQLite database (`control.db`).
//!
//! Writes are rare and small, so one connection behind a mutex, used from blocking tasks, is
//! enough. Nothing on the ingest hot path reads this store: every change is followed by a
//! rebuild of the immutable routing snapshot (`crate::snapshot`), which is what the hot path
//! reads.
//!
//! Architecture Invariant: every change of configuration goes through a method here, and the
//! admin layer records it in the audit trail; nothing else writes `control.db`.
//!
//! Schema changes are numbered migrations applied at start-up (`PRAGMA user_version`).

pub mod audit;
mod categories;
mod destinations;
mod model;
mod regulations;
mod sessions;
mod sources;
mod users;
mod workspace;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use rusqlite::Connection;

pub use audit::{Actor, AuditEntry, AuditQuery};
pub use categories::{CategoryPatch, NewCategory};
pub use destinations::{DestinationPatch, NewDestination};
pub use model::{
    Category, ConfigData, Destination, Role, Source, Token, User, Workspace, validate_category_id,
    validate_category_name,
};
pub use regulations::{Regulation, RegulationType, Suppressed};
pub use sessions::Session;
pub use sources::{NewSource, SourcePatch};
pub use users::{NewUser, UserPatch};
pub use workspace::WorkspacePatch;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("configuration storage error: {0}")]
    Storage(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Storage(e.to_string())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Handle to the control database. Cheap to clone.
#[derive(Clone)]
pub struct ControlStore {
    conn: Arc<Mutex<Connection>>,
}

const MIGRATIONS: &[&str] = &[
    // 1: the core pipeline's configuration.
    "CREATE TABLE workspace(
         id INTEGER PRIMARY KEY CHECK (id = 1),
         missing_consent_policy TEXT NOT NULL,
         multi_category_rule TEXT NOT NULL,
         dedup_window_hours INTEGER NOT NULL);
     INSERT INTO workspace VALUES (1, 'allow', 'all', 24);
     CREATE TABLE sources(
         key INTEGER PRIMARY KEY AUTOINCREMENT,
         id TEXT NOT NULL UNIQUE,
         name TEXT NOT NULL,
         write_key TEXT NOT NULL UNIQUE,
         enabled INTEGER NOT NULL,
         rate_limit_per_second INTEGER,
         missing_consent_policy TEXT,
         created_at INTEGER NOT NULL);
     CREATE TABLE destinations(
         key INTEGER PRIMARY KEY AUTOINCREMENT,
         id TEXT NOT NULL UNIQUE,
         name TEXT NOT NULL,
         integration TEXT NOT NULL,
         type TEXT NOT NULL,
         settings TEXT NOT NULL,
         enabled INTEGER NOT NULL,
         enforce_consent INTEGER NOT NULL,
         created_at INTEGER NOT NULL);
     CREATE TABLE categories(
         key INTEGER PRIMARY KEY AUTOINCREMENT,
         id TEXT NOT NULL UNIQUE,
         name TEXT NOT NULL,
         name_folded TEXT NOT NULL UNIQUE,
         enabled INTEGER NOT NULL,
         created_at INTEGER NOT NULL);
     CREATE TABLE category_destinations(
         category_key INTEGER NOT NULL REFERENCES categories(key) ON DELETE CASCADE,
         destination_key INTEGER NOT NULL REFERENCES destinations(key) ON DELETE CASCADE,
         PRIMARY KEY (category_key, destination_key));
     CREATE TABLE users(
         id TEXT PRIMARY KEY,
         email TEXT NOT NULL UNIQUE,
         name TEXT NOT NULL,
         role TEXT NOT NULL,
         password_hash TEXT,
         created_at INTEGER NOT NULL);
     CREATE TABLE tokens(
         id TEXT PRIMARY KEY,
         user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
         name TEXT NOT NULL,
         hash BLOB NOT NULL UNIQUE,
         prefix TEXT NOT NULL,
         created_at INTEGER NOT NULL,
         last_used_at INTEGER,
         revoked_at INTEGER);
     CREATE TABLE audit(
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         at INTEGER NOT NULL,
         actor_id TEXT NOT NULL,
         actor_label TEXT NOT NULL,
         action TEXT NOT NULL,
         resource_type TEXT NOT NULL,
         resource_id TEXT NOT NULL,
         before TEXT,
         after TEXT);
     CREATE INDEX audit_at ON audit(at);",
    // 2: GDPR/CCPA regulations and suppressions.
    "CREATE TABLE regulations(
         id TEXT PRIMARY KEY,
         regulation_type TEXT NOT NULL,
         subject_type TEXT NOT NULL,
         subject_ids TEXT NOT NULL,
         status TEXT NOT NULL,
         details TEXT NOT NULL,
         created_by TEXT NOT NULL,
         created_at INTEGER NOT NULL,
         finished_at INTEGER);
     CREATE TABLE suppressions(
         user_id TEXT PRIMARY KEY,
         regulation_id TEXT NOT NULL,
         created_at INTEGER NOT NULL);
     CREATE TABLE suppressed_anonymous_ids(
         anonymous_id TEXT PRIMARY KEY,
         user_id TEXT NOT NULL REFERENCES suppressions(user_id) ON DELETE CASCADE);",
    // 3: destination filters.
    "ALTER TABLE destinations ADD COLUMN filters TEXT NOT NULL DEFAULT '[]';",
    // 4: console sessions.
    "CREATE TABLE sessions(
         hash BLOB PRIMARY KEY,
         user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
         csrf TEXT NOT NULL,
         created_at INTEGER NOT NULL,
         expires_at INTEGER NOT NULL);",
];

impl ControlStore {
    /// Open (and migrate) the store at `path`.
    pub fn open(path: &Path) -> StoreResult<ControlStore> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(Duration::from_secs(30))?;
        migrate(&mut conn)?;
        Ok(ControlStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Run `f` on the connection in a blocking task.
    pub(crate) async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock poisons it; the connection itself is still sound
            // (SQLite rolled back the transaction), so keep using it.
            let mut guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Storage(format!("store task failed: {e}")))?
    }

    /// Everything the routing snapshot is built from, read in one transaction.
    pub async fn load(&self) -> StoreResult<ConfigData> {
        self.call(|conn| {
            let tx = conn.transaction()?;
            let data = ConfigData {
                workspace: workspace::read(&tx)?,
                sources: sources::list(&tx)?,
                destinations: destinations::list(&tx)?,
                categories: categories::list(&tx)?,
                suppressed: regulations::suppressed(&tx)?,
            };
            tx.commit()?;
            Ok(data)
        })
        .await
    }
}

impl ControlStore {
    /// Audit entries, newest first.
    pub async fn audit(&self, query: AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        self.call(move |conn| audit::query(conn, &query)).await
    }

    /// Record an operational action that is not a configuration change (e.g. a replay).
    pub async fn record_audit(
        &self,
        actor: &Actor,
        action: &str,
        resource_type: &str,
        resource_id: &str,
        details: serde_json::Value,
    ) -> StoreResult<()> {
        let (actor, action, resource_type, resource_id) = (
            actor.clone(),
            action.to_owned(),
            resource_type.to_owned(),
            resource_id.to_owned(),
        );
        self.call(move |conn| {
            let tx = conn.transaction()?;
            audit::record(
                &tx,
                &actor,
                &action,
                &resource_type,
                &resource_id,
                None,
                Some(details),
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Delete audit entries older than `older_than_ms` (retention). Returns how many.
    pub async fn prune_audit(&self, older_than_ms: i64) -> StoreResult<usize> {
        self.call(move |conn| audit::prune(conn, older_than_ms))
            .await
    }
}

fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let version: usize =
        conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    if version > MIGRATIONS.len() {
        return Err(StoreError::Storage(format!(
            "control.db is at schema version {version}, newer than this binary knows ({}); \
             run a newer sluice or restore a backup",
            MIGRATIONS.len()
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (index + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

/// A random identifier: `prefix_` followed by `len` lowercase alphanumerics.
pub(crate) fn new_id(prefix: &str, len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let tail: String = (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}_{tail}")
}

/// A random secret of `len` alphanumerics (62 symbols: about 5.95 bits each).
pub(crate) fn new_secret(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Map a SQLite unique-constraint failure to a conflict with a message for the user.
pub(crate) fn conflict_on_unique(
    e: rusqlite::Error,
    message: impl FnOnce(&str) -> String,
) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(err, Some(detail))
            if err.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict(message(detail))
        }
        _ => StoreError::from(e),
    }
}

#[cfg(test)]
mod tests;
