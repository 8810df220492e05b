//! Delivery: one worker per enabled destination, each reading the log through its own cursor.
//!
//! A worker reads the next events addressed to its destination, delivers them as one batch,
//! and retries retryable failures with exponential backoff and full jitter (honouring
//! `Retry-After`) up to `delivery.max_attempts`; then, or at once for a permanent failure, the
//! batch goes to the dead-letter store. Either way the cursor moves on with one ack.
//!
//! Properties this gives:
//! * **Isolation.** A slow or dead destination only holds back its own cursor. Its backlog is
//!   the log on disk; nothing queues in memory, and ingestion never waits for delivery.
//! * **Order.** Events reach a destination in log order; a failing batch is retried before
//!   anything after it is sent ("in order as far as retries allow").
//! * **At least once.** The cursor moves only after delivery (or dead-lettering). A crash, or
//!   a shutdown in the middle of backing off, means the batch is sent again after restart.
//!
//! The [`Supervisor`] starts, restarts (when settings change) and stops workers to match the
//! configuration, and publishes which batches are being retried (for the delivery overview).
//!
//! A disabled destination keeps a *paused* worker: it delivers nothing and keeps the backlog
//! that was routed to it before it was disabled (delivered when it is enabled again), but it
//! moves its cursor over events addressed to others, so a paused destination with no backlog
//! does not hold back log truncation.

mod backoff;
mod worker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Mutex as AsyncMutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use backoff::Backoff;

use crate::config::DeliveryConfig;
use crate::destinations::{self, BuildContext};
use crate::log::{DestKey, EventLog, SourceKey};
use crate::store::Destination;

/// The batch a destination is currently retrying.
#[derive(Debug, Clone, Default)]
pub struct Retrying {
    /// `(source, received_at)` of each event in the failing batch.
    pub events: Vec<(SourceKey, i64)>,
    pub attempts: u32,
    pub last_error: String,
    /// When the next attempt is due (Unix ms).
    pub next_attempt_at: i64,
}

/// What the workers publish about themselves.
#[derive(Default)]
pub struct DeliveryStatus {
    retrying: Mutex<HashMap<DestKey, Retrying>>,
    build_errors: Mutex<HashMap<DestKey, String>>,
}

impl DeliveryStatus {
    pub fn retrying(&self, dest: DestKey) -> Option<Retrying> {
        self.retrying
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&dest)
            .cloned()
    }

    fn set_retrying(&self, dest: DestKey, state: Option<Retrying>) {
        let mut map = self.retrying.lock().unwrap_or_else(|p| p.into_inner());
        match state {
            Some(state) => map.insert(dest, state),
            None => map.remove(&dest),
        };
    }

    /// Why a destination could not be started, if it could not.
    pub fn build_error(&self, dest: DestKey) -> Option<String> {
        self.build_errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&dest)
            .cloned()
    }
}

struct WorkerHandle {
    /// What the worker was built from; a change restarts it.
    fingerprint: String,
    cancel: CancellationToken,
    join: JoinHandle<()>,
}

/// Keeps one worker per enabled destination.
pub struct Supervisor {
    log: Arc<dyn EventLog>,
    settings: DeliveryConfig,
    build_ctx: BuildContext,
    workers: AsyncMutex<HashMap<DestKey, WorkerHandle>>,
    pub status: Arc<DeliveryStatus>,
}

impl Supervisor {
    pub fn new(
        log: Arc<dyn EventLog>,
        settings: DeliveryConfig,
        build_ctx: BuildContext,
    ) -> Supervisor {
        Supervisor {
            log,
            settings,
            build_ctx,
            workers: AsyncMutex::new(HashMap::new()),
            status: Arc::new(DeliveryStatus::default()),
        }
    }

    /// Make the running workers match `destinations`.
    pub async fn reconcile(&self, destinations: &[Destination]) {
        let mut workers = self.workers.lock().await;
        let wanted: HashMap<DestKey, &Destination> =
            destinations.iter().map(|d| (d.key, d)).collect();

        // Stop workers that are gone, disabled or changed; wait for them, so that a restarted
        // worker starts from the cursor its predecessor left.
        let stale: Vec<DestKey> = workers
            .iter()
            .filter(|(key, handle)| {
                wanted
                    .get(key)
                    .is_none_or(|d| fingerprint(d) != handle.fingerprint)
            })
            .map(|(key, _)| *key)
            .collect();
        for key in stale {
            if let Some(handle) = workers.remove(&key) {
                handle.cancel.cancel();
                let _ = handle.join.await;
                self.status.set_retrying(key, None);
            }
        }

        for (key, dest) in wanted {
            if workers.contains_key(&key) {
                continue;
            }
            let Some(kind) = destinations::find(&dest.kind) else {
                self.record_build_error(key, format!("unknown destination type {:?}", dest.kind));
                continue;
            };
            let instance = match kind.build(&dest.settings, &self.build_ctx) {
                Ok(instance) => instance,
                Err(error) => {
                    tracing::error!(destination = %dest.id, %error, "Destination cannot be started.");
                    self.record_build_error(key, error);
                    continue;
                }
            };
            self.status
                .build_errors
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
            let cancel = CancellationToken::new();
            let worker = worker::Worker {
                key,
                id: dest.id.clone(),
                destination: instance,
                log: Arc::clone(&self.log),
                backoff: Backoff::from_config(&self.settings),
                max_attempts: self.settings.max_attempts,
                status: Arc::clone(&self.status),
                cancel: cancel.clone(),
                paused: !dest.enabled,
                transforms: crate::filters::Program::compile(&dest.filters)
                    .ok()
                    .filter(crate::filters::Program::transforms)
                    .map(Arc::new),
            };
            let join = tokio::spawn(worker.run());
            workers.insert(
                key,
                WorkerHandle {
                    fingerprint: fingerprint(dest),
                    cancel,
                    join,
                },
            );
        }
    }

    fn record_build_error(&self, key: DestKey, error: String) {
        self.status
            .build_errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, error);
    }

    /// Stop every worker, letting in-flight deliveries finish.
    pub async fn shutdown(&self) {
        let mut workers = self.workers.lock().await;
        for handle in workers.values() {
            handle.cancel.cancel();
        }
        for (_, handle) in workers.drain() {
            let _ = handle.join.await;
        }
    }
}

fn fingerprint(dest: &Destination) -> String {
    format!(
        "{}\u{0}{}\u{0}{}\u{0}{}",
        dest.kind,
        dest.enabled,
        dest.settings,
        serde_json::to_string(&dest.filters).unwrap_or_default()
    )
}
