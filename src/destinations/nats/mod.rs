//! The `nats` destination: each event published to a subject, on core NATS or JetStream.
//!
//! # Subjects
//!
//! The `subject` template (default `events.{type}`) is filled per event: `{type}` is the event
//! type, `{event}` a track's event name made a subject token (`Order Completed` →
//! `order_completed`; the type for other events). The message is the event JSON as Sluice
//! stored it, with the messageId in the `Nats-Msg-Id` header.
//!
//! # Core NATS or JetStream
//!
//! Without `stream`, a batch counts as delivered once the server has it (the client flushed):
//! core NATS keeps nothing, so only subscribers connected at that moment see the events.
//!
//! With `stream`, every publish is acknowledged by JetStream and a batch counts as delivered
//! when every acknowledgement is in (publishes are pipelined, at most 256 unacknowledged). The
//! stream deduplicates on `Nats-Msg-Id` within its duplicate window (two minutes by
//! default), so a batch retried after a lost acknowledgement is not stored twice. Each publish
//! carries `Nats-Expected-Stream`, so an event never lands in another stream by accident.
//!
//! On first use the stream is created if it does not exist, capturing the template's subjects
//! (`events.{type}` → `events.*`), with the server's defaults otherwise (file storage, limits
//! retention). An existing stream is used as it is, but must capture those subjects; if it
//! does not, batches fail permanently with a message saying which subjects to add. A stream
//! deleted while Sluice runs is created again on the next attempt.
//!
//! # Errors
//!
//! Connection failures, timeouts and missing acknowledgements are retryable. A message larger
//! than the server's `max_payload`, a stream that does not capture the subjects, or subjects
//! overlapping another stream's are permanent.

mod config;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::context::{CreateStreamErrorKind, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_trait::async_trait;
use bytes::Bytes;
use serde_json::Value;

pub use config::{NatsConfig, SubjectTemplate, check_subject, covers, event_token};

use super::{BuildContext, DeliveryError, Destination, DestinationType, parse_settings};
use crate::log::Record;

/// Most JetStream publishes awaiting their acknowledgement at once.
const MAX_PENDING_ACKS: usize = 256;

pub struct NatsType;

impl DestinationType for NatsType {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn description(&self) -> &'static str {
        "Each event published to a NATS subject (core NATS, or JetStream with acknowledgements)"
    }

    fn validate(&self, settings: &Value, _ctx: &BuildContext) -> Result<Value, String> {
        let config: NatsConfig = parse_settings(self.name(), settings)?;
        config.validate()?;
        serde_json::to_value(config).map_err(|e| e.to_string())
    }

    fn secret_paths(&self) -> &'static [&'static str] {
        &["/url#password", "/token"]
    }

    fn build(&self, settings: &Value, _ctx: &BuildContext) -> Result<Arc<dyn Destination>, String> {
        let config: NatsConfig = parse_settings(self.name(), settings)?;
        config.validate()?;
        Ok(Arc::new(Nats::new(config)?))
    }
}

pub struct Nats {
    config: NatsConfig,
    template: SubjectTemplate,
    timeout: Duration,
    /// The server, without credentials, for messages.
    target: String,
    connection: tokio::sync::Mutex<Option<Connection>>,
}

struct Connection {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    /// The stream exists and captures our subjects (checked once per connection, and again
    /// after a publish found no stream).
    stream_ready: bool,
}

/// The subject of one event.
pub fn subject_for(template: &SubjectTemplate, payload: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(rename = "type")]
        kind: Option<String>,
        event: Option<Value>,
    }
    let head: Head = serde_json::from_slice(payload).unwrap_or(Head {
        kind: None,
        event: None,
    });
    let kind = head
        .kind
        .as_deref()
        .map_or_else(|| "unknown".to_owned(), event_token);
    let event = match (&head.event, kind.as_str()) {
        (Some(Value::String(name)), "track") => event_token(name),
        _ => kind.clone(),
    };
    template.render(&kind, &event)
}

impl Nats {
    pub fn new(config: NatsConfig) -> Result<Nats, String> {
        let template = SubjectTemplate::parse(&config.subject)?;
        let target = match super::url_password(&config.url) {
            Some(span) => format!(
                "{}{}{}",
                &config.url[..span.start],
                super::REDACTED,
                &config.url[span.end..]
            ),
            None => config.url.clone(),
        };
        Ok(Nats {
            timeout: Duration::from_millis(config.timeout_ms),
            config,
            template,
            target,
            connection: tokio::sync::Mutex::new(None),
        })
    }

    async fn connect(&self) -> Result<Connection, DeliveryError> {
        let mut options = async_nats::ConnectOptions::new()
            .name("sluice")
            .connection_timeout(self.timeout)
            .request_timeout(Some(self.timeout));
        if let Some(token) = &self.config.token {
            options = options.token(token.clone());
        }
        let client = options
            .connect(self.config.url.as_str())
            .await
            .map_err(|e| {
                DeliveryError::retryable(format!("connecting to NATS at {}: {e}", self.target))
            })?;
        let mut jetstream = jetstream::new(client.clone());
        jetstream.set_timeout(self.timeout);
        Ok(Connection {
            client,
            jetstream,
            stream_ready: false,
        })
    }

    /// Create the stream if it does not exist; check that it captures our subjects.
    async fn ensure_stream(
        &self,
        jetstream: &jetstream::Context,
        name: &str,
    ) -> Result<(), DeliveryError> {
        let filter = self.template.filter();
        let stream = jetstream
            .get_or_create_stream(jetstream::stream::Config {
                name: name.to_owned(),
                subjects: vec![filter.clone()],
                ..Default::default()
            })
            .await
            .map_err(|e| {
                let message = format!("creating or finding JetStream stream {name} at {}: {e}", self.target);
                match e.kind() {
                    CreateStreamErrorKind::JetStream(js)
                        if js.error_code() == jetstream::ErrorCode::STREAM_SUBJECT_OVERLAP =>
                    {
                        DeliveryError::permanent(format!(
                            "{message}; subjects {filter} are already captured by another stream: name that stream in `stream`, or change `subject`"
                        ))
                    }
                    _ => DeliveryError::retryable(message),
                }
            })?;
        let subjects = &stream.cached_info().config.subjects;
        if !subjects.iter().any(|s| covers(s, &filter)) {
            return Err(DeliveryError::permanent(format!(
                "JetStream stream {name} captures {subjects:?}, not {filter}: add {filter} to the stream's subjects, or change `subject`"
            )));
        }
        Ok(())
    }

    async fn publish_jetstream(
        &self,
        connection: &mut Connection,
        stream: &str,
        records: &[Record],
    ) -> Result<(), DeliveryError> {
        if !connection.stream_ready {
            self.ensure_stream(&connection.jetstream, stream).await?;
            connection.stream_ready = true;
        }
        let failure = |e: jetstream::context::PublishError| {
            let message = format!(
                "publishing to JetStream stream {stream} at {}: {e}",
                self.target
            );
            let code = std::error::Error::source(&e)
                .and_then(|s| s.downcast_ref::<jetstream::Error>())
                .map(jetstream::Error::error_code);
            match (e.kind(), code) {
                (PublishErrorKind::MaxPayloadExceeded, _) => DeliveryError::permanent(message),
                (_, Some(code))
                    if code == jetstream::ErrorCode::STREAM_NOT_MATCH
                        || code == jetstream::ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM =>
                {
                    DeliveryError::permanent(message)
                }
                _ => DeliveryError::retryable(message),
            }
        };
        let mut pending = VecDeque::with_capacity(MAX_PENDING_ACKS);
        let result: Result<(), (PublishErrorKind, DeliveryError)> = async {
            for record in records {
                let subject = subject_for(&self.template, &record.payload);
                let message = PublishMessage::build()
                    .payload(Bytes::from(record.payload.clone()))
                    .message_id(&record.message_id)
                    .expected_stream(stream);
                let ack = connection
                    .jetstream
                    .send_publish(subject, message)
                    .await
                    .map_err(|e| (e.kind(), failure(e)))?;
                pending.push_back(ack);
                if pending.len() >= MAX_PENDING_ACKS
                    && let Some(ack) = pending.pop_front()
                {
                    ack.await.map_err(|e| (e.kind(), failure(e)))?;
                }
            }
            while let Some(ack) = pending.pop_front() {
                ack.await.map_err(|e| (e.kind(), failure(e)))?;
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => Ok(()),
            Err((kind, error)) => {
                if kind == PublishErrorKind::StreamNotFound {
                    // Deleted behind our back: create it again on the next attempt.
                    connection.stream_ready = false;
                }
                Err(error)
            }
        }
    }

    async fn publish_core(
        &self,
        connection: &Connection,
        records: &[Record],
    ) -> Result<(), DeliveryError> {
        for record in records {
            let subject = subject_for(&self.template, &record.payload);
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(
                async_nats::header::NATS_MESSAGE_ID,
                record.message_id.as_str(),
            );
            connection
                .client
                .publish_with_headers(subject, headers, Bytes::from(record.payload.clone()))
                .await
                .map_err(|e| {
                    let message = format!("publishing to NATS at {}: {e}", self.target);
                    match e.kind() {
                        async_nats::client::PublishErrorKind::MaxPayloadExceeded
                        | async_nats::client::PublishErrorKind::InvalidSubject => {
                            DeliveryError::permanent(message)
                        }
                        _ => DeliveryError::retryable(message),
                    }
                })?;
        }
        connection.client.flush().await.map_err(|e| {
            DeliveryError::retryable(format!("flushing to NATS at {}: {e}", self.target))
        })
    }
}

#[async_trait]
impl Destination for Nats {
    async fn deliver(&self, records: &[Record]) -> Result<(), DeliveryError> {
        let mut slot = self.connection.lock().await;
        let work = async {
            if slot.is_none() {
                *slot = Some(self.connect().await?);
            }
            let connection = slot.as_mut().expect("connected above");
            match &self.config.stream {
                Some(stream) => self.publish_jetstream(connection, stream, records).await,
                None => self.publish_core(connection, records).await,
            }
        };
        // A disconnected client queues publishes and waits; bound the whole batch.
        let budget = self.timeout * 2 + Duration::from_millis(records.len() as u64);
        match tokio::time::timeout(budget, work).await {
            Ok(result) => result,
            Err(_) => Err(DeliveryError::retryable(format!(
                "NATS at {} did not take the batch within {} ms",
                self.target,
                budget.as_millis()
            ))),
        }
    }

    fn max_batch(&self) -> usize {
        self.config.batch_size
    }
}
