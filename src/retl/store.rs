//! `retl.db`: warehouse connections, models, consent mappings, destination mappings, the
//! per-record checkpoint, and run history.
//!
//! ```text
//! connections(key, id, name UNIQUE, kind, url, statement_timeout_secs, created_at, updated_at)
//! models(key, id, name UNIQUE, connection_key, query, unique_id_column, user_id_column,
//!        columns JSON, every_seconds, row_limit, consent JSON {column: category}, ...)
//! mappings(key, id, model_key, destination_id | source_id, operation, event, on_* flags)
//! checkpoints(model_key, record_id, fp BLOB(16) | NULL, version, seen_run, granted, user_id)
//!        PRIMARY KEY (model_key, record_id) WITHOUT ROWID
//! runs(key, id, model_key, trigger, started_by, status, phase, started_at, finished_at,
//!      counters JSON, errors JSON, warnings JSON, error, resumed_from)
//! ```
//!
//! **The checkpoint** holds, per model and record id, a 16-byte fingerprint of the row as last
//! synced (never the row itself), a version that grows with every change sent, the run that
//! last saw the record, the consent categories the row granted (for deletions, whose row is
//! gone) and, when the user id comes from another column than the unique id, the user id.
//! A deleted record keeps its row with `fp = NULL` (a tombstone) so that its version keeps
//! growing if it comes back: event ids are derived from `(record, version, fingerprint)` and
//! must never repeat within the log's deduplication window.
//!
//! Like the control store: one connection behind a mutex, used from blocking tasks; WAL and
//! `synchronous=FULL`, so a committed checkpoint survives a power cut.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

use super::warehouse::{Column, Kind};
use super::{RetlError, RetlResult};
use crate::clock;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS connections(
    key INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    url TEXT NOT NULL,
    statement_timeout_secs INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS models(
    key INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE,
    connection_key INTEGER NOT NULL REFERENCES connections(key),
    query TEXT NOT NULL,
    unique_id_column TEXT NOT NULL,
    user_id_column TEXT,
    columns TEXT NOT NULL,
    every_seconds INTEGER,
    row_limit INTEGER,
    consent TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS mappings(
    key INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    model_key INTEGER NOT NULL REFERENCES models(key) ON DELETE CASCADE,
    destination_id TEXT,
    source_id TEXT,
    operation TEXT NOT NULL,
    event TEXT,
    on_added INTEGER NOT NULL,
    on_updated INTEGER NOT NULL,
    on_deleted INTEGER NOT NULL,
    created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints(
    model_key INTEGER NOT NULL,
    record_id TEXT NOT NULL,
    fp BLOB,
    version INTEGER NOT NULL,
    seen_run INTEGER NOT NULL,
    granted TEXT,
    user_id TEXT,
    PRIMARY KEY (model_key, record_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs(
    key INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    model_key INTEGER NOT NULL REFERENCES models(key) ON DELETE CASCADE,
    trigger TEXT NOT NULL,
    started_by TEXT,
    status TEXT NOT NULL,
    phase TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    counters TEXT NOT NULL,
    errors TEXT NOT NULL,
    warnings TEXT NOT NULL,
    error TEXT,
    resumed_from TEXT);
CREATE INDEX IF NOT EXISTS runs_model ON runs(model_key, key);
";

/// A warehouse connection. `url` holds the password; show it with [`super::warehouse::redact_url`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarehouseConnection {
    pub key: i64,
    pub id: String,
    pub name: String,
    pub kind: Kind,
    pub url: String,
    pub statement_timeout_secs: u32,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A model: a query, its unique-id column, and how to sync it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    pub key: i64,
    pub id: String,
    pub name: String,
    pub connection_id: String,
    pub query: String,
    pub unique_id_column: String,
    /// The column holding the user id of events; the unique id column when `None`.
    pub user_id_column: Option<String>,
    /// The query's columns, as last described by the warehouse.
    pub columns: Vec<Column>,
    pub every_seconds: Option<u32>,
    /// At most this many records queued per run (consent-filtered ones do not count).
    pub row_limit: Option<u64>,
    /// Consent mapping: column → category id. Empty: consent is not enforced.
    pub consent: BTreeMap<String, String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Model {
    pub fn user_id_column(&self) -> &str {
        self.user_id_column
            .as_deref()
            .unwrap_or(&self.unique_id_column)
    }
}

/// The event a mapping sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Identify,
    Track,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Identify => "identify",
            Operation::Track => "track",
        }
    }

    fn parse(s: &str) -> Operation {
        if s == "track" {
            Operation::Track
        } else {
            Operation::Identify
        }
    }
}

/// What happened to a record since the last sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Added,
    Updated,
    Deleted,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Updated => "updated",
            Change::Deleted => "deleted",
        }
    }
}

/// Where a mapping sends records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MappingTarget {
    /// Straight to one destination; RETL decides consent.
    Destination(String),
    /// Into the event pipeline as events of this source; the router decides consent.
    Connections(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub id: String,
    pub model_id: String,
    pub target: MappingTarget,
    pub operation: Operation,
    /// The event name of `track` mappings.
    pub event: Option<String>,
    pub on_added: bool,
    pub on_updated: bool,
    pub on_deleted: bool,
    pub created_at: i64,
}

impl Mapping {
    pub fn wants(&self, change: Change) -> bool {
        match change {
            Change::Added => self.on_added,
            Change::Updated => self.on_updated,
            Change::Deleted => self.on_deleted,
        }
    }

    pub fn on(&self) -> Vec<Change> {
        [Change::Added, Change::Updated, Change::Deleted]
            .into_iter()
            .filter(|c| self.wants(*c))
            .collect()
    }

    pub fn audit_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "id": self.id,
            "modelId": self.model_id,
            "operation": self.operation,
            "event": self.event,
            "on": self.on(),
        });
        match &self.target {
            MappingTarget::Destination(d) => v["destinationId"] = d.clone().into(),
            MappingTarget::Connections(s) => {
                v["connections"] = true.into();
                v["sourceId"] = s.clone().into();
            }
        }
        v
    }
}

/// Counters of one run, updated as it goes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct Counters {
    /// Rows read from the warehouse.
    pub extracted: u64,
    pub added: u64,
    pub updated: u64,
    pub deleted: u64,
    pub unchanged: u64,
    /// Changed records that consent kept from every mapping that wanted them.
    pub filtered_by_consent: u64,
    /// Changed records durably queued for at least one mapping.
    pub queued: u64,
    /// Records of users under a suppression regulation: not sent.
    pub suppressed: u64,
    /// Rows that could not be synced (NULL or duplicate id, invalid event); see `errors`.
    pub failed: u64,
    /// Changed records left for the next run because the row limit was reached.
    pub deferred: u64,
    /// Per mapping id.
    pub mappings: BTreeMap<String, MappingCounters>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct MappingCounters {
    /// Events durably queued (in the log) for this mapping.
    pub queued: u64,
    /// Records withheld by end-user consent (`FILTERED_BY_END_USER_CONSENT`).
    pub filtered_by_consent: u64,
    /// Records withheld for another reason (destination disabled, destination filters).
    pub filtered: u64,
}

/// One row that could not be synced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordError {
    /// 1-based position of the row in the query's result (absent for deletions).
    pub row: Option<u64>,
    pub record_id: Option<String>,
    /// `null_id`, `duplicate_id`, `invalid_event` …
    pub code: String,
    pub message: String,
}

/// How many record errors a run keeps (the counters count them all).
pub const MAX_SAMPLED_ERRORS: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub key: i64,
    pub id: String,
    pub model_id: String,
    pub trigger: String,
    pub started_by: Option<String>,
    /// `running`, `succeeded`, `partial` (some rows failed), `failed`, `interrupted`.
    pub status: String,
    /// `extracting`, `deleting`, `done`.
    pub phase: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub counters: Counters,
    pub errors: Vec<RecordError>,
    pub warnings: Vec<String>,
    pub error: Option<String>,
    pub resumed_from: Option<String>,
}

/// A record's checkpoint entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// `None`: the record was deleted (tombstone).
    pub fp: Option<[u8; 16]>,
    pub version: i64,
    pub seen_run: i64,
    /// Categories the row granted when last synced (`None`: no consent mapping then).
    pub granted: Option<Vec<String>>,
    pub user_id: Option<String>,
}

/// A checkpoint write for one record.
#[derive(Debug, Clone)]
pub enum CheckpointWrite {
    /// Seen in this run, nothing sent: only `seen_run` moves (no-op for unknown records).
    Seen { record_id: String },
    /// A change was queued: new fingerprint (or tombstone), version + 1.
    Synced {
        record_id: String,
        fp: Option<[u8; 16]>,
        version: i64,
        granted: Option<Vec<String>>,
        user_id: Option<String>,
    },
}

/// Handle to `retl.db`. Cheap to clone.
#[derive(Clone)]
pub struct RetlStore {
    conn: Arc<Mutex<Connection>>,
}

impl RetlStore {
    /// Open (and create) the store. Runs left `running` by a crash are marked `interrupted`.
    pub fn open(path: &Path) -> RetlResult<RetlStore> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.execute_batch(SCHEMA)?;
        conn.execute(
            "UPDATE runs SET status = 'interrupted', finished_at = ?1,
                 error = 'the server stopped during the sync; it resumes from its checkpoint'
             WHERE status = 'running'",
            [clock::now_ms()],
        )?;
        Ok(RetlStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Run `f` on the connection in a blocking task.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> RetlResult<T> + Send + 'static,
    ) -> RetlResult<T> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock poisons it; SQLite rolled the transaction back, so
            // the connection is still sound.
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| RetlError::Storage(format!("retl store task failed: {e}")))?
    }

    // ---- connections ----

    pub async fn connections(&self) -> RetlResult<Vec<WarehouseConnection>> {
        self.call(|c| {
            let mut stmt = c.prepare(&format!("{CONNECTION_COLUMNS} ORDER BY key"))?;
            let rows = stmt.query_map([], connection_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    pub async fn connection(&self, id: &str) -> RetlResult<WarehouseConnection> {
        let id = id.to_owned();
        self.call(move |c| connection_by_id(c, &id)).await
    }

    pub async fn create_connection(
        &self,
        name: String,
        kind: Kind,
        url: String,
        statement_timeout_secs: u32,
    ) -> RetlResult<WarehouseConnection> {
        self.call(move |c| {
            let id = crate::store::new_id("conn", 12);
            let now = clock::now_ms();
            c.execute(
                "INSERT INTO connections(id, name, kind, url, statement_timeout_secs, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                params![id, name, kind.as_str(), url, statement_timeout_secs, now],
            )
            .map_err(|e| unique(e, format!("a connection named {name:?} already exists; pick another name")))?;
            connection_by_id(c, &id)
        })
        .await
    }

    pub async fn update_connection(
        &self,
        id: &str,
        name: Option<String>,
        url: Option<String>,
        statement_timeout_secs: Option<u32>,
    ) -> RetlResult<(WarehouseConnection, WarehouseConnection)> {
        let id = id.to_owned();
        self.call(move |c| {
            let before = connection_by_id(c, &id)?;
            let name = name.unwrap_or_else(|| before.name.clone());
            c.execute(
                "UPDATE connections SET name = ?2, url = ?3, statement_timeout_secs = ?4, updated_at = ?5
                 WHERE id = ?1",
                params![
                    id,
                    name,
                    url.unwrap_or_else(|| before.url.clone()),
                    statement_timeout_secs.unwrap_or(before.statement_timeout_secs),
                    clock::now_ms()
                ],
            )
            .map_err(|e| unique(e, format!("a connection named {name:?} already exists; pick another name")))?;
            Ok((before, connection_by_id(c, &id)?))
        })
        .await
    }

    pub async fn delete_connection(&self, id: &str) -> RetlResult<WarehouseConnection> {
        let id = id.to_owned();
        self.call(move |c| {
            let conn = connection_by_id(c, &id)?;
            let models: Vec<String> = c
                .prepare("SELECT name FROM models WHERE connection_key = ?1 ORDER BY key")?
                .query_map([conn.key], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            if !models.is_empty() {
                return Err(RetlError::Conflict(format!(
                    "connection {id} is used by the models {}; delete those models first",
                    models.join(", ")
                )));
            }
            c.execute("DELETE FROM connections WHERE key = ?1", [conn.key])?;
            Ok(conn)
        })
        .await
    }

    // ---- models ----

    pub async fn models(&self) -> RetlResult<Vec<Model>> {
        self.call(|c| {
            let mut stmt = c.prepare(&format!("{MODEL_COLUMNS} ORDER BY m.key"))?;
            let rows = stmt.query_map([], model_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    pub async fn model(&self, id: &str) -> RetlResult<Model> {
        let id = id.to_owned();
        self.call(move |c| model_by_id(c, &id)).await
    }

    pub async fn create_model(&self, new: NewModel) -> RetlResult<Model> {
        self.call(move |c| {
            let connection = connection_by_id(c, &new.connection_id)
                .map_err(|_| RetlError::Invalid(format!("no connection with id {}; create it with POST /api/v1/retl/connections", new.connection_id)))?;
            let id = crate::store::new_id("model", 12);
            let now = clock::now_ms();
            c.execute(
                "INSERT INTO models(id, name, connection_key, query, unique_id_column, user_id_column,
                                    columns, every_seconds, row_limit, consent, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, '{}', ?10, ?10)",
                params![
                    id,
                    new.name,
                    connection.key,
                    new.query,
                    new.unique_id_column,
                    new.user_id_column,
                    serde_json::to_string(&new.columns).unwrap_or_default(),
                    new.every_seconds,
                    new.row_limit.map(|l| l as i64),
                    now
                ],
            )
            .map_err(|e| unique(e, format!("a model named {:?} already exists; pick another name", new.name)))?;
            model_by_id(c, &id)
        })
        .await
    }

    /// Replace a model's settings (the caller has merged the patch). Returns before and after.
    pub async fn update_model(&self, model: Model) -> RetlResult<(Model, Model)> {
        self.call(move |c| {
            let before = model_by_id(c, &model.id)?;
            c.execute(
                "UPDATE models SET name = ?2, query = ?3, unique_id_column = ?4, user_id_column = ?5,
                        columns = ?6, every_seconds = ?7, row_limit = ?8, updated_at = ?9
                 WHERE id = ?1",
                params![
                    model.id,
                    model.name,
                    model.query,
                    model.unique_id_column,
                    model.user_id_column,
                    serde_json::to_string(&model.columns).unwrap_or_default(),
                    model.every_seconds,
                    model.row_limit.map(|l| l as i64),
                    clock::now_ms()
                ],
            )
            .map_err(|e| unique(e, format!("a model named {:?} already exists; pick another name", model.name)))?;
            Ok((before, model_by_id(c, &model.id)?))
        })
        .await
    }

    pub async fn set_consent_mapping(
        &self,
        id: &str,
        consent: BTreeMap<String, String>,
    ) -> RetlResult<(Model, Model)> {
        let id = id.to_owned();
        self.call(move |c| {
            let before = model_by_id(c, &id)?;
            c.execute(
                "UPDATE models SET consent = ?2, updated_at = ?3 WHERE id = ?1",
                params![
                    id,
                    serde_json::to_string(&consent).unwrap_or_default(),
                    clock::now_ms()
                ],
            )?;
            Ok((before, model_by_id(c, &id)?))
        })
        .await
    }

    /// Delete a model with its mappings, checkpoint and runs.
    pub async fn delete_model(&self, id: &str) -> RetlResult<Model> {
        let id = id.to_owned();
        self.call(move |c| {
            let model = model_by_id(c, &id)?;
            let tx = c.transaction()?;
            tx.execute("DELETE FROM checkpoints WHERE model_key = ?1", [model.key])?;
            tx.execute("DELETE FROM runs WHERE model_key = ?1", [model.key])?;
            tx.execute("DELETE FROM mappings WHERE model_key = ?1", [model.key])?;
            tx.execute("DELETE FROM models WHERE key = ?1", [model.key])?;
            tx.commit()?;
            Ok(model)
        })
        .await
    }

    // ---- mappings ----

    pub async fn mappings(&self, model_id: &str) -> RetlResult<Vec<Mapping>> {
        let model_id = model_id.to_owned();
        self.call(move |c| {
            let model = model_by_id(c, &model_id)?;
            mappings_of(c, &model)
        })
        .await
    }

    pub async fn create_mapping(&self, mapping: Mapping) -> RetlResult<Mapping> {
        self.call(move |c| {
            let model = model_by_id(c, &mapping.model_id)?;
            let (destination, source) = match &mapping.target {
                MappingTarget::Destination(d) => (Some(d.clone()), None),
                MappingTarget::Connections(s) => (None, Some(s.clone())),
            };
            let id = crate::store::new_id("map", 12);
            c.execute(
                "INSERT INTO mappings(id, model_key, destination_id, source_id, operation, event,
                                      on_added, on_updated, on_deleted, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    id,
                    model.key,
                    destination,
                    source,
                    mapping.operation.as_str(),
                    mapping.event,
                    mapping.on_added,
                    mapping.on_updated,
                    mapping.on_deleted,
                    clock::now_ms()
                ],
            )?;
            mappings_of(c, &model)?
                .into_iter()
                .find(|m| m.id == id)
                .ok_or_else(|| RetlError::Storage("the new mapping vanished".into()))
        })
        .await
    }

    pub async fn delete_mapping(&self, model_id: &str, mapping_id: &str) -> RetlResult<Mapping> {
        let (model_id, mapping_id) = (model_id.to_owned(), mapping_id.to_owned());
        self.call(move |c| {
            let model = model_by_id(c, &model_id)?;
            let mapping = mappings_of(c, &model)?
                .into_iter()
                .find(|m| m.id == mapping_id)
                .ok_or_else(|| {
                    RetlError::NotFound(format!(
                        "model {model_id} has no mapping {mapping_id}; GET /api/v1/retl/models/{model_id}/mappings lists them"
                    ))
                })?;
            c.execute("DELETE FROM mappings WHERE id = ?1", [&mapping_id])?;
            Ok(mapping)
        })
        .await
    }

    // ---- runs ----

    pub async fn create_run(
        &self,
        model_id: &str,
        trigger: &str,
        started_by: Option<String>,
    ) -> RetlResult<Run> {
        let (model_id, trigger) = (model_id.to_owned(), trigger.to_owned());
        self.call(move |c| {
            let model = model_by_id(c, &model_id)?;
            // The run this one resumes: the model's last run, if it did not finish.
            let resumed_from: Option<String> = c
                .query_row(
                    "SELECT id, status FROM runs WHERE model_key = ?1 ORDER BY key DESC LIMIT 1",
                    [model.key],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
                )
                .optional()?
                .filter(|(_, status)| status == "interrupted" || status == "failed")
                .map(|(id, _)| id);
            let id = crate::store::new_id("run", 12);
            c.execute(
                "INSERT INTO runs(id, model_key, trigger, started_by, status, phase, started_at,
                                  counters, errors, warnings, resumed_from)
                 VALUES (?1, ?2, ?3, ?4, 'running', 'extracting', ?5, '{}', '[]', '[]', ?6)",
                params![
                    id,
                    model.key,
                    trigger,
                    started_by,
                    clock::now_ms(),
                    resumed_from
                ],
            )?;
            run_by_id(c, &id)
        })
        .await
    }

    pub async fn run(&self, id: &str) -> RetlResult<Run> {
        let id = id.to_owned();
        self.call(move |c| run_by_id(c, &id)).await
    }

    /// A model's runs, newest first.
    pub async fn runs(&self, model_id: &str, limit: usize) -> RetlResult<Vec<Run>> {
        let model_id = model_id.to_owned();
        self.call(move |c| {
            let model = model_by_id(c, &model_id)?;
            let mut stmt = c.prepare(&format!(
                "{RUN_COLUMNS} WHERE r.model_key = ?1 ORDER BY r.key DESC LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![model.key, limit as i64], run_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// The latest run of every model: `(model id, run)`.
    pub async fn latest_runs(&self) -> RetlResult<BTreeMap<String, Run>> {
        self.call(|c| {
            let mut stmt = c.prepare(&format!(
                "{RUN_COLUMNS} WHERE r.key IN (SELECT MAX(key) FROM runs GROUP BY model_key)"
            ))?;
            let rows = stmt.query_map([], run_row)?;
            let mut out = BTreeMap::new();
            for run in rows {
                let run = run?;
                out.insert(run.model_id.clone(), run);
            }
            Ok(out)
        })
        .await
    }

    /// Record a run's end.
    pub async fn finish_run(
        &self,
        run: i64,
        status: &str,
        counters: Counters,
        errors: Vec<RecordError>,
        warnings: Vec<String>,
        error: Option<String>,
    ) -> RetlResult<()> {
        let status = status.to_owned();
        self.call(move |c| {
            c.execute(
                "UPDATE runs SET status = ?2, phase = 'done', finished_at = ?3, counters = ?4,
                        errors = ?5, warnings = ?6, error = ?7
                 WHERE key = ?1",
                params![
                    run,
                    status,
                    clock::now_ms(),
                    serde_json::to_string(&counters).unwrap_or_default(),
                    serde_json::to_string(&errors).unwrap_or_default(),
                    serde_json::to_string(&warnings).unwrap_or_default(),
                    error
                ],
            )?;
            Ok(())
        })
        .await
    }

    // ---- checkpoint ----

    /// The checkpoint entries of these records (missing ones are new records).
    pub async fn checkpoints(
        &self,
        model: i64,
        record_ids: Vec<String>,
    ) -> RetlResult<Vec<Option<Checkpoint>>> {
        self.call(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT fp, version, seen_run, granted, user_id FROM checkpoints
                 WHERE model_key = ?1 AND record_id = ?2",
            )?;
            let mut out = Vec::with_capacity(record_ids.len());
            for id in &record_ids {
                out.push(
                    stmt.query_row(params![model, id], checkpoint_row)
                        .optional()?,
                );
            }
            Ok(out)
        })
        .await
    }

    /// Records of a model not seen by `run` and not deleted, in id order after `after`.
    pub async fn unseen(
        &self,
        model: i64,
        run: i64,
        after: Option<String>,
        limit: usize,
    ) -> RetlResult<Vec<(String, Checkpoint)>> {
        self.call(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT record_id, fp, version, seen_run, granted, user_id FROM checkpoints
                 WHERE model_key = ?1 AND seen_run != ?2 AND fp IS NOT NULL
                   AND (?3 IS NULL OR record_id > ?3)
                 ORDER BY record_id LIMIT ?4",
            )?;
            let rows = stmt.query_map(params![model, run, after, limit as i64], |r| {
                Ok((r.get::<_, String>(0)?, checkpoint_at(r, 1)?))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// Apply one chunk's checkpoint writes and the run's progress in one transaction.
    pub async fn commit_chunk(
        &self,
        model: i64,
        run: i64,
        writes: Vec<CheckpointWrite>,
        counters: Counters,
        errors: Vec<RecordError>,
        phase: &'static str,
    ) -> RetlResult<()> {
        self.call(move |c| {
            let tx = c.transaction()?;
            apply_writes(&tx, model, run, &writes)?;
            tx.execute(
                "UPDATE runs SET counters = ?2, errors = ?3, phase = ?4 WHERE key = ?1",
                params![
                    run,
                    serde_json::to_string(&counters).unwrap_or_default(),
                    serde_json::to_string(&errors).unwrap_or_default(),
                    phase
                ],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// How many records a model's checkpoint holds (deleted ones excluded).
    pub async fn checkpoint_size(&self, model_id: &str) -> RetlResult<u64> {
        let model_id = model_id.to_owned();
        self.call(move |c| {
            let model = model_by_id(c, &model_id)?;
            Ok(c.query_row(
                "SELECT COUNT(*) FROM checkpoints WHERE model_key = ?1 AND fp IS NOT NULL",
                [model.key],
                |r| r.get::<_, i64>(0),
            )? as u64)
        })
        .await
    }
}

/// What a new model needs (validated by the caller).
#[derive(Debug, Clone)]
pub struct NewModel {
    pub name: String,
    pub connection_id: String,
    pub query: String,
    pub unique_id_column: String,
    pub user_id_column: Option<String>,
    pub columns: Vec<Column>,
    pub every_seconds: Option<u32>,
    pub row_limit: Option<u64>,
}

fn apply_writes(
    tx: &Transaction<'_>,
    model: i64,
    run: i64,
    writes: &[CheckpointWrite],
) -> rusqlite::Result<()> {
    let mut seen = tx.prepare_cached(
        "UPDATE checkpoints SET seen_run = ?3 WHERE model_key = ?1 AND record_id = ?2",
    )?;
    let mut synced = tx.prepare_cached(
        "INSERT INTO checkpoints(model_key, record_id, fp, version, seen_run, granted, user_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT(model_key, record_id) DO UPDATE SET
             fp = excluded.fp, version = excluded.version, seen_run = excluded.seen_run,
             granted = excluded.granted, user_id = excluded.user_id",
    )?;
    for write in writes {
        match write {
            CheckpointWrite::Seen { record_id } => {
                seen.execute(params![model, record_id, run])?;
            }
            CheckpointWrite::Synced {
                record_id,
                fp,
                version,
                granted,
                user_id,
            } => {
                synced.execute(params![
                    model,
                    record_id,
                    fp.as_ref().map(|f| &f[..]),
                    version,
                    run,
                    granted.as_ref().map(|g| g.join("\n")),
                    user_id
                ])?;
            }
        }
    }
    Ok(())
}

const CONNECTION_COLUMNS: &str = "SELECT key, id, name, kind, url, statement_timeout_secs, created_at, updated_at FROM connections";

fn connection_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<WarehouseConnection> {
    Ok(WarehouseConnection {
        key: r.get(0)?,
        id: r.get(1)?,
        name: r.get(2)?,
        kind: Kind::parse(&r.get::<_, String>(3)?).unwrap_or(Kind::Postgres),
        url: r.get(4)?,
        statement_timeout_secs: r.get(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
    })
}

fn connection_by_id(c: &Connection, id: &str) -> RetlResult<WarehouseConnection> {
    c.query_row(
        &format!("{CONNECTION_COLUMNS} WHERE id = ?1"),
        [id],
        connection_row,
    )
    .optional()?
    .ok_or_else(|| {
        RetlError::NotFound(format!(
            "no connection with id {id}; GET /api/v1/retl/connections lists them"
        ))
    })
}

const MODEL_COLUMNS: &str =
    "SELECT m.key, m.id, m.name, c.id, m.query, m.unique_id_column, m.user_id_column,
        m.columns, m.every_seconds, m.row_limit, m.consent, m.created_at, m.updated_at
    FROM models m JOIN connections c ON c.key = m.connection_key";

fn model_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Model> {
    Ok(Model {
        key: r.get(0)?,
        id: r.get(1)?,
        name: r.get(2)?,
        connection_id: r.get(3)?,
        query: r.get(4)?,
        unique_id_column: r.get(5)?,
        user_id_column: r.get(6)?,
        columns: serde_json::from_str(&r.get::<_, String>(7)?).unwrap_or_default(),
        every_seconds: r.get(8)?,
        row_limit: r.get::<_, Option<i64>>(9)?.map(|l| l.max(0) as u64),
        consent: serde_json::from_str(&r.get::<_, String>(10)?).unwrap_or_default(),
        created_at: r.get(11)?,
        updated_at: r.get(12)?,
    })
}

fn model_by_id(c: &Connection, id: &str) -> RetlResult<Model> {
    c.query_row(&format!("{MODEL_COLUMNS} WHERE m.id = ?1"), [id], model_row)
        .optional()?
        .ok_or_else(|| {
            RetlError::NotFound(format!(
                "no model with id {id}; GET /api/v1/retl/models lists them"
            ))
        })
}

fn mappings_of(c: &Connection, model: &Model) -> RetlResult<Vec<Mapping>> {
    let mut stmt = c.prepare(
        "SELECT id, destination_id, source_id, operation, event, on_added, on_updated, on_deleted, created_at
         FROM mappings WHERE model_key = ?1 ORDER BY key",
    )?;
    let rows = stmt.query_map([model.key], |r| {
        let destination: Option<String> = r.get(1)?;
        let source: Option<String> = r.get(2)?;
        Ok(Mapping {
            id: r.get(0)?,
            model_id: model.id.clone(),
            target: match destination {
                Some(d) => MappingTarget::Destination(d),
                None => MappingTarget::Connections(source.unwrap_or_default()),
            },
            operation: Operation::parse(&r.get::<_, String>(3)?),
            event: r.get(4)?,
            on_added: r.get(5)?,
            on_updated: r.get(6)?,
            on_deleted: r.get(7)?,
            created_at: r.get(8)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

const RUN_COLUMNS: &str =
    "SELECT r.key, r.id, m.id, r.trigger, r.started_by, r.status, r.phase, r.started_at,
        r.finished_at, r.counters, r.errors, r.warnings, r.error, r.resumed_from
    FROM runs r JOIN models m ON m.key = r.model_key";

fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Run> {
    Ok(Run {
        key: r.get(0)?,
        id: r.get(1)?,
        model_id: r.get(2)?,
        trigger: r.get(3)?,
        started_by: r.get(4)?,
        status: r.get(5)?,
        phase: r.get(6)?,
        started_at: r.get(7)?,
        finished_at: r.get(8)?,
        counters: serde_json::from_str(&r.get::<_, String>(9)?).unwrap_or_default(),
        errors: serde_json::from_str(&r.get::<_, String>(10)?).unwrap_or_default(),
        warnings: serde_json::from_str(&r.get::<_, String>(11)?).unwrap_or_default(),
        error: r.get(12)?,
        resumed_from: r.get(13)?,
    })
}

fn run_by_id(c: &Connection, id: &str) -> RetlResult<Run> {
    c.query_row(&format!("{RUN_COLUMNS} WHERE r.id = ?1"), [id], run_row)
        .optional()?
        .ok_or_else(|| RetlError::NotFound(format!("no run with id {id}")))
}

fn checkpoint_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Checkpoint> {
    checkpoint_at(r, 0)
}

fn checkpoint_at(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Checkpoint> {
    let fp: Option<Vec<u8>> = r.get(at)?;
    let granted: Option<String> = r.get(at + 3)?;
    Ok(Checkpoint {
        fp: fp.and_then(|f| <[u8; 16]>::try_from(f.as_slice()).ok()),
        version: r.get(at + 1)?,
        seen_run: r.get(at + 2)?,
        granted: granted.map(|g| {
            g.split('\n')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        }),
        user_id: r.get(at + 4)?,
    })
}

fn unique(e: rusqlite::Error, message: String) -> RetlError {
    match &e {
        rusqlite::Error::SqliteFailure(err, _)
            if err.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            RetlError::Conflict(message)
        }
        _ => RetlError::from(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, RetlStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = RetlStore::open(&dir.path().join("retl.db")).unwrap();
        (dir, store)
    }

    async fn model(store: &RetlStore) -> Model {
        let conn = store
            .create_connection("wh".into(), Kind::Sqlite, "sqlite:///tmp/x.db".into(), 30)
            .await
            .unwrap();
        store
            .create_model(NewModel {
                name: "users".into(),
                connection_id: conn.id,
                query: "SELECT 1 AS id".into(),
                unique_id_column: "id".into(),
                user_id_column: None,
                columns: vec![],
                every_seconds: None,
                row_limit: None,
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn checkpoint_writes_and_unseen_records() {
        let (_dir, store) = store();
        let model = model(&store).await;
        let run = store.create_run(&model.id, "manual", None).await.unwrap();
        let fp = |b: u8| Some([b; 16]);
        store
            .commit_chunk(
                model.key,
                run.key,
                vec![
                    CheckpointWrite::Synced {
                        record_id: "a".into(),
                        fp: fp(1),
                        version: 1,
                        granted: Some(vec!["C1".into(), "C2".into()]),
                        user_id: None,
                    },
                    CheckpointWrite::Synced {
                        record_id: "b".into(),
                        fp: fp(2),
                        version: 1,
                        granted: None,
                        user_id: Some("user-b".into()),
                    },
                    CheckpointWrite::Seen {
                        record_id: "unknown".into(),
                    },
                ],
                Counters::default(),
                vec![],
                "extracting",
            )
            .await
            .unwrap();
        let got = store
            .checkpoints(model.key, vec!["a".into(), "b".into(), "unknown".into()])
            .await
            .unwrap();
        assert_eq!(
            got[0],
            Some(Checkpoint {
                fp: fp(1),
                version: 1,
                seen_run: run.key,
                granted: Some(vec!["C1".into(), "C2".into()]),
                user_id: None
            })
        );
        assert_eq!(got[1].as_ref().unwrap().user_id.as_deref(), Some("user-b"));
        assert_eq!(got[2], None);

        // A second run sees only "a": "b" is unseen until it is tombstoned.
        let run2 = store.create_run(&model.id, "manual", None).await.unwrap();
        store
            .commit_chunk(
                model.key,
                run2.key,
                vec![CheckpointWrite::Seen {
                    record_id: "a".into(),
                }],
                Counters::default(),
                vec![],
                "extracting",
            )
            .await
            .unwrap();
        let unseen = store.unseen(model.key, run2.key, None, 10).await.unwrap();
        assert_eq!(unseen.len(), 1);
        assert_eq!(unseen[0].0, "b");
        store
            .commit_chunk(
                model.key,
                run2.key,
                vec![CheckpointWrite::Synced {
                    record_id: "b".into(),
                    fp: None,
                    version: 2,
                    granted: None,
                    user_id: None,
                }],
                Counters::default(),
                vec![],
                "deleting",
            )
            .await
            .unwrap();
        assert!(
            store
                .unseen(model.key, run2.key, None, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.checkpoint_size(&model.id).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn interrupted_runs_are_marked_on_open_and_resumed_from() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("retl.db");
        let (model_id, run_id) = {
            let store = RetlStore::open(&path).unwrap();
            let model = model(&store).await;
            let run = store.create_run(&model.id, "manual", None).await.unwrap();
            (model.id, run.id)
        };
        let store = RetlStore::open(&path).unwrap();
        let run = store.run(&run_id).await.unwrap();
        assert_eq!(run.status, "interrupted");
        let next = store.create_run(&model_id, "resume", None).await.unwrap();
        assert_eq!(next.resumed_from.as_deref(), Some(run_id.as_str()));
    }

    #[tokio::test]
    async fn connections_in_use_cannot_be_deleted() {
        let (_dir, store) = store();
        let model = model(&store).await;
        let err = store
            .delete_connection(&model.connection_id)
            .await
            .unwrap_err();
        assert!(matches!(err, RetlError::Conflict(_)), "{err:?}");
        store.delete_model(&model.id).await.unwrap();
        store.delete_connection(&model.connection_id).await.unwrap();
    }
}
