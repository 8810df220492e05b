//! The live debugger (SPEC §8): a per-source tail of events as received (after normalisation),
//! with their consent object and the routing decision for every destination, streamed as
//! server-sent events by `GET /api/v1/sources/{id}/debugger`.
//!
//! * **Zero cost when nobody listens.** The ingest path checks one atomic counter; messages are
//!   only built when a subscriber exists for the source.
//! * **A slow viewer never slows ingestion.** Each subscriber has a bounded queue; when it is
//!   full, messages for that subscriber are dropped (and counted, and reported to it).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::log::SourceKey;

/// Messages a subscriber may have waiting before new ones are dropped.
pub const QUEUE: usize = 256;

/// One event as the debugger shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DebugEvent {
    pub received_at: String,
    pub message_id: Option<String>,
    /// `accepted`, `duplicate`, `rejected` or `suppressed`.
    pub status: &'static str,
    /// For rejected events, Segment's code and the reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejection: Option<Value>,
    /// The normalised event (for accepted ones) or what was sent (for rejected ones).
    pub event: Value,
    /// `context.consent` as received.
    pub consent: Value,
    pub decisions: Vec<Decision>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub destination_id: String,
    pub name: String,
    /// `delivered` (routed to it), `held` (a consent-update event, released if it changes the
    /// device's preferences) or `filtered`.
    pub decision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

struct Subscriber {
    id: u64,
    tx: mpsc::Sender<Arc<DebugEvent>>,
    dropped: Arc<AtomicU64>,
}

/// Fan-out of debugger messages to subscribers.
#[derive(Default)]
pub struct Hub {
    /// Number of subscribers over all sources: the ingest path's only cost when it is 0.
    active: AtomicUsize,
    next_id: AtomicU64,
    subscribers: Mutex<HashMap<SourceKey, Vec<Subscriber>>>,
}

/// A subscription; unsubscribes when dropped.
pub struct Subscription {
    hub: Arc<Hub>,
    source: SourceKey,
    id: u64,
    pub rx: mpsc::Receiver<Arc<DebugEvent>>,
    /// Messages dropped because this subscriber fell behind.
    pub dropped: Arc<AtomicU64>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut map = self
            .hub
            .subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(list) = map.get_mut(&self.source) {
            let before = list.len();
            list.retain(|s| s.id != self.id);
            if list.len() < before {
                self.hub.active.fetch_sub(1, Ordering::Relaxed);
            }
            if list.is_empty() {
                map.remove(&self.source);
            }
        }
    }
}

impl Hub {
    pub fn subscribe(self: &Arc<Self>, source: SourceKey) -> Subscription {
        let (tx, rx) = mpsc::channel(QUEUE);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let dropped = Arc::new(AtomicU64::new(0));
        self.subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(source)
            .or_default()
            .push(Subscriber {
                id,
                tx,
                dropped: Arc::clone(&dropped),
            });
        self.active.fetch_add(1, Ordering::Relaxed);
        Subscription {
            hub: Arc::clone(self),
            source,
            id,
            rx,
            dropped,
        }
    }

    /// Whether anybody watches this source (cheap when nobody watches anything).
    pub fn watching(&self, source: SourceKey) -> bool {
        self.active.load(Ordering::Relaxed) > 0
            && self
                .subscribers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&source)
                .is_some_and(|l| !l.is_empty())
    }

    /// Send to every subscriber of the source, dropping for those whose queue is full.
    pub fn publish(&self, source: SourceKey, events: Vec<DebugEvent>) {
        let map = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        let Some(list) = map.get(&source) else { return };
        for event in events {
            let event = Arc::new(event);
            for subscriber in list {
                if subscriber.tx.try_send(Arc::clone(&event)).is_err() {
                    subscriber.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    pub fn subscriber_count(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }
}
