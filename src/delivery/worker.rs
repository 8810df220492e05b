//! One destination's delivery loop.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Backoff, DeliveryStatus, Retrying};
use crate::clock;
use crate::destinations::{DeliveryError, Destination};
use crate::log::{Ack, Consumer, DeadLetter, DestKey, EventLog, Page, Record, Seq};

pub(super) struct Worker {
    pub key: DestKey,
    pub id: String,
    pub destination: Arc<dyn Destination>,
    pub log: Arc<dyn EventLog>,
    pub backoff: Backoff,
    pub max_attempts: u32,
    pub status: Arc<DeliveryStatus>,
    pub cancel: CancellationToken,
    /// The destination is disabled: keep the backlog, deliver nothing.
    pub paused: bool,
    /// Destination filters that rewrite payloads (drop / keep properties), applied just before
    /// delivery.
    pub transforms: Option<Arc<crate::filters::Program>>,
}

enum Outcome {
    Delivered,
    Dead {
        attempts: u32,
        error: String,
    },
    /// Shutdown while backing off: leave the batch for the next start.
    Interrupted,
}

impl Worker {
    pub async fn run(self) {
        let consumer = Consumer::Destination(self.key);
        let mut committed = self.log.committed();
        let Some(mut cursor) = self.initial_cursor(&consumer).await else {
            return;
        };
        tracing::debug!(destination = %self.id, cursor, "Delivery worker started.");
        let batch = self.destination.max_batch().max(1);
        while !self.cancel.is_cancelled() {
            let mut page = match self.log.read(&consumer, cursor, batch).await {
                Ok(page) => page,
                Err(error) => {
                    tracing::warn!(destination = %self.id, %error, "Reading the log failed; retrying.");
                    if self.pause(Duration::from_secs(1)).await {
                        break;
                    }
                    continue;
                }
            };
            if page.scanned_to == cursor {
                // Caught up: wait for the next commit.
                tokio::select! {
                    changed = committed.changed() => if changed.is_err() { break },
                    () = self.cancel.cancelled() => break,
                }
                continue;
            }
            if !page.records.is_empty() && self.paused {
                // Hold here until the destination is enabled (the supervisor restarts us) or
                // deleted. Only the rows before the backlog were skipped.
                if page.records[0].seq > cursor + 1 {
                    let upto = page.records[0].seq - 1;
                    self.log.ack(Ack {
                        consumer: consumer.clone(),
                        upto,
                        delivered: Vec::new(),
                        dead: Vec::new(),
                    });
                }
                self.cancel.cancelled().await;
                break;
            }
            let outcome = if page.records.is_empty() {
                Outcome::Delivered
            } else {
                self.deliver(&consumer, cursor, batch, &mut page).await
            };
            // `deliver` may have re-read the page (a retry sees deletions made meanwhile).
            let mut ack = Ack {
                consumer: consumer.clone(),
                upto: page.scanned_to,
                delivered: Vec::new(),
                dead: Vec::new(),
            };
            {
                match outcome {
                    Outcome::Delivered => {
                        ack.delivered = page
                            .records
                            .iter()
                            .map(|r| (r.source, r.received_at))
                            .collect();
                        metrics::counter!("sluice_delivered_total", "destination" => self.id.clone())
                            .increment(page.records.len() as u64);
                    }
                    Outcome::Dead { attempts, error } => {
                        tracing::warn!(destination = %self.id, events = page.records.len(), attempts, %error,
                            "Delivery failed for good; events moved to the dead-letter store.");
                        metrics::counter!("sluice_dead_lettered_total", "destination" => self.id.clone())
                            .increment(page.records.len() as u64);
                        ack.dead = page
                            .records
                            .into_iter()
                            .map(|record| DeadLetter {
                                record,
                                attempts,
                                error: error.clone(),
                            })
                            .collect();
                    }
                    Outcome::Interrupted => break,
                }
            }
            self.log.ack(ack);
            cursor = page.scanned_to;
        }
        tracing::debug!(destination = %self.id, "Delivery worker stopped.");
    }

    async fn initial_cursor(&self, consumer: &Consumer) -> Option<Seq> {
        loop {
            match self.log.cursor(consumer).await {
                Ok(cursor) => return Some(cursor),
                Err(error) => {
                    tracing::warn!(destination = %self.id, %error, "Cannot read the delivery cursor; retrying.");
                    if self.pause(Duration::from_secs(1)).await {
                        return None;
                    }
                }
            }
        }
    }

    /// Sleep, unless cancelled first. Returns whether it was cancelled.
    async fn pause(&self, duration: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(duration) => false,
            () = self.cancel.cancelled() => true,
        }
    }

    /// Deliver one page with retries. An attempt in progress is never abandoned: shutdown
    /// waits for it (graceful), and only interrupts the waits between attempts. Before each
    /// retry the page is read again from the cursor, so events deleted meanwhile (a GDPR
    /// request) are not sent.
    async fn deliver(
        &self,
        consumer: &Consumer,
        cursor: Seq,
        batch: usize,
        page: &mut Page,
    ) -> Outcome {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let transformed;
            let records: &[Record] = match &self.transforms {
                Some(program) => {
                    transformed = transform(program, &page.records);
                    &transformed
                }
                None => &page.records,
            };
            let error = match self.destination.deliver(records).await {
                Ok(()) => {
                    if attempt > 1 {
                        self.status.set_retrying(self.key, None);
                        tracing::info!(destination = %self.id, attempt, "Delivery recovered.");
                    }
                    return Outcome::Delivered;
                }
                Err(error) => error,
            };
            let (message, retry_after) = match error {
                DeliveryError::Permanent { message } => {
                    self.status.set_retrying(self.key, None);
                    return Outcome::Dead {
                        attempts: attempt,
                        error: message,
                    };
                }
                DeliveryError::Retryable {
                    message,
                    retry_after,
                } => (message, retry_after),
            };
            metrics::counter!("sluice_delivery_retries_total", "destination" => self.id.clone())
                .increment(1);
            if attempt >= self.max_attempts {
                self.status.set_retrying(self.key, None);
                return Outcome::Dead {
                    attempts: attempt,
                    error: message,
                };
            }
            let delay = self.backoff.delay(attempt, retry_after);
            tracing::info!(destination = %self.id, attempt, delay_ms = delay.as_millis() as u64, error = %message,
                "Delivery failed; retrying.");
            self.status.set_retrying(
                self.key,
                Some(Retrying {
                    events: records.iter().map(|r| (r.source, r.received_at)).collect(),
                    attempts: attempt,
                    last_error: message,
                    next_attempt_at: clock::now_ms() + delay.as_millis() as i64,
                }),
            );
            if self.pause(delay).await {
                return Outcome::Interrupted;
            }
            if let Ok(fresh) = self.log.read(consumer, cursor, batch).await {
                *page = fresh;
                if page.records.is_empty() {
                    self.status.set_retrying(self.key, None);
                    return Outcome::Delivered;
                }
            }
        }
    }
}

/// The records with their payloads rewritten by the destination's property rules.
fn transform(program: &crate::filters::Program, records: &[Record]) -> Vec<Record> {
    records
        .iter()
        .map(|record| {
            let mut record = record.clone();
            if let Ok(mut event) = serde_json::from_slice::<serde_json::Value>(&record.payload) {
                program.apply(&mut event);
                record.payload = event.to_string().into_bytes();
            }
            record
        })
        .collect()
}
