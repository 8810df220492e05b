//! Reverse ETL with consent (SPEC §10): rows of a warehouse query become events for
//! destinations, with the end users' consent read from the rows.
//!
//! * [`warehouse`] — PostgreSQL, MySQL/MariaDB and SQLite: connection tests, query guard,
//!   read-only streaming reads with a statement timeout, values as JSON.
//! * [`store`] — `retl.db`: connections, models, consent and destination mappings, the
//!   per-record checkpoint (a 16-byte fingerprint per id, never the row), run history.
//! * [`consent`] — the pure part of consent for records: the preferences a row's consent
//!   columns state; the decision itself is the consent engine's.
//! * [`record`] — ids, fingerprints, the diff, deterministic event ids, the events.
//! * [`sync`] — one run: extract, diff, queue durably, then advance the checkpoint.
//!
//! [`Retl`] owns the store and the running syncs: at most one per model (a second request is
//! refused), each a task stopped at a chunk boundary on shutdown. [`spawn_scheduler`] starts
//! the models that have an interval schedule, and at start-up resumes runs a shutdown or a
//! crash interrupted.
//!
//! Architecture Invariant: a record's checkpoint entry moves only after the record's events
//! were durably appended to the event log; RETL never calls a destination.

pub mod consent;
pub mod record;
pub mod store;
pub mod sync;
pub mod warehouse;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use crate::app::App;
use crate::clock;
use crate::store::Actor;
pub use store::{RetlStore, Run};
pub use warehouse::WarehouseError;

#[derive(Debug, thiserror::Error)]
pub enum RetlError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Warehouse(WarehouseError),
    #[error("{0}")]
    Unavailable(String),
    #[error("reverse ETL storage error: {0}")]
    Storage(String),
}

impl From<rusqlite::Error> for RetlError {
    fn from(e: rusqlite::Error) -> Self {
        RetlError::Storage(e.to_string())
    }
}

pub type RetlResult<T> = Result<T, RetlError>;

/// Why a sync was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Manual,
    Schedule,
    /// At start-up, for a run a shutdown or crash interrupted.
    Resume,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Schedule => "schedule",
            Trigger::Resume => "resume",
        }
    }
}

/// Reverse ETL: the store and the running syncs.
pub struct Retl {
    pub store: RetlStore,
    /// Model id → the id of its running run (empty while the run is being created).
    running: Mutex<HashMap<String, String>>,
    tasks: TaskTracker,
}

impl Retl {
    pub fn open(path: &Path) -> RetlResult<Retl> {
        Ok(Retl {
            store: RetlStore::open(path)?,
            running: Mutex::new(HashMap::new()),
            tasks: TaskTracker::new(),
        })
    }

    /// The id of the model's running run, if one is running.
    pub fn running_run(&self, model_id: &str) -> Option<String> {
        self.lock().get(model_id).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start a sync of `model_id` in the background and return its run. Refused while the
    /// model is syncing, when it has no mappings, and during shutdown.
    pub async fn start_sync(
        &self,
        app: &Arc<App>,
        model_id: &str,
        trigger: Trigger,
        actor: Option<&Actor>,
    ) -> RetlResult<Run> {
        if app.background_token().is_cancelled() {
            return Err(RetlError::Unavailable(
                "the server is shutting down; start the sync after it restarts".into(),
            ));
        }
        {
            let mut running = self.lock();
            if let Some(run) = running.get(model_id) {
                return Err(RetlError::Conflict(format!(
                    "model {model_id} is already syncing (run {run}); wait for it to finish, or follow it with GET /api/v1/retl/runs/{run}"
                )));
            }
            running.insert(model_id.to_owned(), String::new());
        }
        let started = self.prepare_run(model_id, trigger, actor).await;
        let (model, connection, mappings, run) = match started {
            Ok(ok) => ok,
            Err(e) => {
                self.lock().remove(model_id);
                return Err(e);
            }
        };
        self.lock().insert(model_id.to_owned(), run.id.clone());
        let app2 = Arc::clone(app);
        let model_id = model_id.to_owned();
        let context = sync::RunContext {
            app: Arc::clone(app),
            model,
            connection,
            mappings,
            run: run.clone(),
            cancel: app.background_token().child_token(),
        };
        self.tasks.spawn(async move {
            sync::execute(context).await;
            app2.retl.lock().remove(&model_id);
        });
        Ok(run)
    }

    async fn prepare_run(
        &self,
        model_id: &str,
        trigger: Trigger,
        actor: Option<&Actor>,
    ) -> RetlResult<(
        store::Model,
        store::WarehouseConnection,
        Vec<store::Mapping>,
        Run,
    )> {
        let model = self.store.model(model_id).await?;
        let mappings = self.store.mappings(model_id).await?;
        if mappings.is_empty() {
            return Err(RetlError::Invalid(format!(
                "model {model_id} has no mappings, so a sync would send nothing; add one with POST /api/v1/retl/models/{model_id}/mappings"
            )));
        }
        let connection = self.store.connection(&model.connection_id).await?;
        let run = self
            .store
            .create_run(model_id, trigger.as_str(), actor.map(|a| a.label.clone()))
            .await?;
        Ok((model, connection, mappings, run))
    }
}

/// Start the scheduler: it starts models whose interval has elapsed, resumes interrupted runs
/// at start-up, and on shutdown waits for running syncs to stop at a chunk boundary.
pub fn spawn_scheduler(app: Arc<App>) -> JoinHandle<()> {
    tokio::spawn(schedule(app))
}

/// How often the scheduler looks for due models.
const TICK: Duration = Duration::from_secs(1);

async fn schedule(app: Arc<App>) {
    let cancelled = app.background_token();
    let mut starting = true;
    loop {
        if let Err(error) = start_due(&app, starting).await {
            tracing::warn!(%error, "Reverse ETL scheduler failed; retrying.");
        }
        starting = false;
        tokio::select! {
            () = tokio::time::sleep(TICK) => {}
            () = cancelled.cancelled() => break,
        }
    }
    app.retl.tasks.close();
    app.retl.tasks.wait().await;
}

async fn start_due(app: &Arc<App>, starting: bool) -> RetlResult<()> {
    let models = app.retl.store.models().await?;
    if models.is_empty() {
        return Ok(());
    }
    let latest = app.retl.store.latest_runs().await?;
    let now = clock::now_ms();
    for model in models {
        if app.retl.running_run(&model.id).is_some() {
            continue;
        }
        let last = latest.get(&model.id);
        let trigger = match (last, model.every_seconds) {
            (Some(run), _) if starting && run.status == "interrupted" => Trigger::Resume,
            (None, Some(_)) => Trigger::Schedule,
            (Some(run), Some(every)) if now >= run.started_at + i64::from(every) * 1000 => {
                Trigger::Schedule
            }
            _ => continue,
        };
        match app.retl.start_sync(app, &model.id, trigger, None).await {
            Ok(run) => {
                tracing::info!(model = %model.id, run = %run.id, trigger = trigger.as_str(), "Reverse ETL sync started.")
            }
            // Raced with a manual start, or the model lost its mappings: nothing to do.
            Err(RetlError::Conflict(_) | RetlError::Invalid(_) | RetlError::NotFound(_)) => {}
            Err(error) => {
                tracing::warn!(model = %model.id, %error, "Cannot start a scheduled reverse ETL sync.")
            }
        }
    }
    Ok(())
}
