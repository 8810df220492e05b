//! The durable event log: accepted events, written once, read by every consumer.
//!
//! # Contract
//!
//! * [`EventLog::append`] returns only after the events are durably committed. A 200 from the
//!   Tracking API is sent after `append` returns, so nothing acknowledged is ever lost.
//! * Each event is stored once, with the list of destinations its routing decision allows
//!   (decided at acceptance, so configuration changes apply to the next event accepted).
//!   Every destination — and every internal consumer such as profiles — reads the log through
//!   its own cursor ([`Consumer`]); eight destinations do not mean eight copies.
//! * `messageId` deduplication happens inside `append`, atomically with the write: an event
//!   whose id was seen within the dedup window is reported as a duplicate and not stored.
//! * Consumers acknowledge progress with [`EventLog::ack`]. Acks are applied in order but
//!   lazily (with the next group commit): after a crash a consumer may see an event again, never
//!   miss one. Delivery is at-least-once.
//! * Events that failed delivery for good are moved into the destination's dead-letter store
//!   by the same ack, and can be replayed: a replay appends them again, addressed to that
//!   destination only.
//! * Delivery-overview counters are updated in the same transactions as the events and acks
//!   they count, so they add up after a crash too.
//!
//! The trait is shaped so that a NATS JetStream log (SPEC §12) can implement it: `append` is a
//! publish with the `messageId` as `Nats-Msg-Id` (JetStream deduplicates), consumers are
//! durable pull consumers, `ack` acknowledges up to a sequence.

mod chunk;
mod dedup;
pub mod sqlite;
mod stats;

#[cfg(test)]
mod tests;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::consent::FilterReason;

pub use stats::{DestinationCounts, Overview, OverviewQuery};

/// Position in the log. Sequences start at 1 and only grow.
pub type Seq = i64;

/// Internal numeric key of a destination (stable for the destination's life; never reused).
pub type DestKey = u32;

/// Internal numeric key of a source.
pub type SourceKey = u32;

/// A reader of the log with its own cursor.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Consumer {
    Destination(DestKey),
    /// An internal consumer, such as the profile builder.
    Internal(&'static str),
}

impl Consumer {
    pub fn name(&self) -> String {
        match self {
            Consumer::Destination(key) => format!("dest:{key}"),
            Consumer::Internal(name) => format!("internal:{name}"),
        }
    }
}

/// One accepted event, ready to store.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub message_id: String,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    /// The normalised event JSON.
    pub payload: Vec<u8>,
    /// Destinations the routing decision allows.
    pub deliver_to: Vec<DestKey>,
    /// Destinations that filtered the event, and why (counted in the delivery overview).
    pub filtered: Vec<(DestKey, FilterReason)>,
    /// Store the event, but deliver it only once the profile consumer releases it (a
    /// consent-update event, delivered only if it changes the device's preferences). Its
    /// `deliver_to` is kept as the intended destinations.
    pub hold: bool,
}

/// Where an append comes from, for the delivery-overview counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AppendKind {
    /// Events received from a client.
    #[default]
    Received,
    /// Events Sluice emits itself (generated consent-update events): accepted and routed,
    /// counted as generated rather than received.
    Generated,
    /// The release (or non-release) of held events: only their per-destination routing is
    /// counted, in the bucket of the original event.
    Release,
}

/// Everything one request contributes to the log.
#[derive(Debug, Clone, Default)]
pub struct Append {
    pub source: SourceKey,
    /// Server receive time of the request, Unix ms.
    pub received_at: i64,
    pub events: Vec<NewEvent>,
    /// Ingest failures by code (counted, never stored).
    pub rejected: Vec<&'static str>,
    /// Events dropped at the API before storage (suppressed users).
    pub filtered_at_source: u32,
    pub kind: AppendKind,
}

/// What `append` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Appended {
    /// Indexes (into `Append::events`) of events dropped as duplicates.
    pub duplicates: Vec<usize>,
    /// Sequence of the last stored event, or the current head when nothing was stored.
    pub last_seq: Seq,
}

/// An event as read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: Seq,
    pub source: SourceKey,
    pub received_at: i64,
    pub message_id: String,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    pub payload: Vec<u8>,
    /// Held for release by the profile consumer (see `NewEvent::hold`); destinations never see
    /// held records.
    pub held: bool,
    /// For held records, the destinations they are meant for.
    pub intended: Vec<DestKey>,
    /// Appended by Sluice itself (a release or a generated consent-update event).
    pub system: bool,
}

/// A page of records for one consumer.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub records: Vec<Record>,
    /// The last sequence examined. The consumer's cursor may move here once the records are
    /// handled, even if the last rows were addressed to other destinations.
    pub scanned_to: Seq,
}

/// An event that failed delivery for good.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub record: Record,
    pub attempts: u32,
    pub error: String,
}

/// Progress of one consumer.
#[derive(Debug, Clone)]
pub struct Ack {
    pub consumer: Consumer,
    /// Everything up to and including this sequence is handled.
    pub upto: Seq,
    /// Records delivered successfully (for the delivery overview): `(source, received_at)`.
    pub delivered: Vec<(SourceKey, i64)>,
    /// Records moved to the dead-letter store.
    pub dead: Vec<DeadLetter>,
}

/// What `delete_people` removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeletedEvents {
    /// Events blanked in the log (their slots stay, without ids or payload).
    pub events: usize,
    pub dead_letters: usize,
}

/// A dead letter as listed by the admin API.
#[derive(Debug, Clone)]
pub struct StoredDeadLetter {
    pub id: i64,
    pub source: SourceKey,
    pub message_id: String,
    pub received_at: i64,
    pub failed_at: i64,
    pub attempts: u32,
    pub error: String,
    pub payload: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("event log storage error: {0}")]
    Storage(String),
    #[error("the event log is shutting down")]
    Closed,
}

impl From<rusqlite::Error> for LogError {
    fn from(e: rusqlite::Error) -> Self {
        LogError::Storage(e.to_string())
    }
}

/// The durable event log. See the module documentation for the contract.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Store the events durably (deduplicating by `messageId`) and count the request.
    async fn append(&self, append: Append) -> Result<Appended, LogError>;

    /// Count a request that stored nothing (ingest failures) without waiting for the disk.
    fn count_only(&self, append: Append);

    /// Up to `limit` records addressed to `consumer`, after `after`.
    async fn read(&self, consumer: &Consumer, after: Seq, limit: usize) -> Result<Page, LogError>;

    /// Record a consumer's progress (applied with the next commit).
    fn ack(&self, ack: Ack);

    /// The consumer's cursor; registers it at the current head when it is new.
    async fn cursor(&self, consumer: &Consumer) -> Result<Seq, LogError>;

    /// Forget a consumer (its destination was deleted); its backlog no longer holds the log.
    async fn remove_consumer(&self, consumer: &Consumer) -> Result<(), LogError>;

    /// The last committed sequence, updated after every commit.
    fn committed(&self) -> watch::Receiver<Seq>;

    /// Change the `messageId` deduplication window.
    fn set_dedup_window(&self, window_ms: i64);

    /// Dead letters of a destination, oldest first, with ids greater than `after_id`.
    async fn dead_letters(
        &self,
        dest: DestKey,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<StoredDeadLetter>, LogError>;

    /// Append dead letters again for delivery to their destination (all of them, or the given
    /// ids). Returns how many were replayed.
    async fn replay_dead_letters(
        &self,
        dest: DestKey,
        ids: Option<Vec<i64>>,
    ) -> Result<usize, LogError>;

    /// Remove these people's events from the backlog (whatever no destination has delivered
    /// yet) and from the dead-letter stores (GDPR deletion, SPEC §7).
    async fn delete_people(
        &self,
        user_ids: Vec<String>,
        anonymous_ids: Vec<String>,
    ) -> Result<DeletedEvents, LogError>;

    /// Delivery-overview counters.
    async fn overview(&self, query: OverviewQuery) -> Result<Overview, LogError>;

    /// Apply everything queued and stop. Used by graceful shutdown.
    async fn close(&self);
}
