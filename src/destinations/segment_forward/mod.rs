//! The `segment_forward` destination: batches to any Segment-compatible Tracking API (Segment
//! itself, another Sluice, RudderStack, …).
//!
//! # Requests
//!
//! `POST <url>/v1/batch` with HTTP Basic auth (`writeKey:`) and `{"batch": [event, …],
//! "sentAt": <now>}`, optionally gzipped. Events go as Sluice stored them — messageId,
//! `context` (the consent object included, unchanged), `integrations`, `timestamp` — except
//! `sentAt`, which is dropped from each event so the receiver computes its clock-skew
//! correction from the batch's `sentAt` (now) and the event's already-corrected `timestamp`.
//! The receiver sets its own `receivedAt`.
//!
//! A delivered batch larger than Segment's 500 KB request limit is sent as several requests.
//! Delivery is at-least-once: a batch retried after a partial failure sends its events again,
//! and Segment-compatible receivers drop them as duplicates by messageId.
//!
//! # Answers
//!
//! 2xx is success. Events the receiver rejected individually (a 200 with a `rejected` list,
//! as Sluice answers) are logged; retrying would not change the answer. 408, 429 (honouring
//! `Retry-After`), 5xx and network errors are retryable; other statuses (401 for a wrong write
//! key, 400 …) are permanent.

mod config;
#[cfg(test)]
mod tests;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{
    CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER, USER_AGENT,
};
use serde_json::Value;

pub use config::SegmentForwardConfig;

use super::{BuildContext, DeliveryError, Destination, DestinationType, parse_settings};
use crate::log::Record;

/// Request bodies stay under this many bytes (Segment allows 500 KB per batch request).
pub const MAX_REQUEST_BYTES: usize = 480 * 1024;

pub struct SegmentForwardType;

impl DestinationType for SegmentForwardType {
    fn name(&self) -> &'static str {
        "segment_forward"
    }

    fn description(&self) -> &'static str {
        "Batches to any Segment-compatible Tracking API (/v1/batch), consent object unchanged"
    }

    fn validate(&self, settings: &Value, _ctx: &BuildContext) -> Result<Value, String> {
        let config: SegmentForwardConfig = parse_settings(self.name(), settings)?;
        config.validate()?;
        serde_json::to_value(config).map_err(|e| e.to_string())
    }

    fn secret_paths(&self) -> &'static [&'static str] {
        &["/writeKey"]
    }

    fn build(&self, settings: &Value, _ctx: &BuildContext) -> Result<Arc<dyn Destination>, String> {
        let config: SegmentForwardConfig = parse_settings(self.name(), settings)?;
        config.validate()?;
        Ok(Arc::new(SegmentForward::new(config)?))
    }
}

pub struct SegmentForward {
    config: SegmentForwardConfig,
    endpoint: reqwest::Url,
    client: reqwest::Client,
}

impl SegmentForward {
    pub fn new(config: SegmentForwardConfig) -> Result<SegmentForward, String> {
        let endpoint = config.endpoint()?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("sluice/", env!("CARGO_PKG_VERSION"))),
        );
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(Duration::from_millis(config.timeout_ms))
            .connect_timeout(Duration::from_millis(config.timeout_ms.min(5_000)))
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(4)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(SegmentForward {
            config,
            endpoint,
            client,
        })
    }

    async fn post(&self, body: Vec<u8>) -> Result<(), DeliveryError> {
        let mut request = self
            .client
            .post(self.endpoint.clone())
            .basic_auth(&self.config.write_key, Some(""));
        let body = if self.config.gzip {
            request = request.header(CONTENT_ENCODING, "gzip");
            tokio::task::spawn_blocking(move || gzip(&body))
                .await
                .map_err(|e| DeliveryError::retryable(format!("compression task failed: {e}")))?
                .map_err(|e| DeliveryError::retryable(format!("compressing the batch: {e}")))?
        } else {
            body
        };
        let response = request.body(body).send().await.map_err(|e| {
            let kind = if e.is_timeout() {
                "timed out"
            } else {
                "failed"
            };
            DeliveryError::retryable(format!(
                "POST {} {kind}: {}",
                self.endpoint,
                error_chain(&e)
            ))
        })?;
        let status = response.status();
        let wait = retry_after(response.headers());
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            if let Ok(answer) = serde_json::from_str::<Value>(&text)
                && let Some(rejected) = answer.get("rejected").and_then(Value::as_array)
                && !rejected.is_empty()
            {
                let rejected = Value::Array(rejected.clone()).to_string();
                tracing::warn!(endpoint = %self.endpoint, %rejected,
                    "The receiver rejected some events of a batch; they are not retried.");
            }
            return Ok(());
        }
        let excerpt: String = text.chars().take(200).collect();
        let message = format!(
            "POST {} answered HTTP {}: {}",
            self.endpoint,
            status.as_u16(),
            excerpt.trim()
        );
        if status.as_u16() == 408 || status.as_u16() == 429 || status.is_server_error() {
            Err(DeliveryError::Retryable {
                message,
                retry_after: wait,
            })
        } else {
            Err(DeliveryError::permanent(message))
        }
    }
}

/// One event as forwarded: the stored event without its `sentAt`.
pub fn forwarded(payload: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Map<String, Value>>(payload) {
        Ok(mut event) if event.contains_key("sentAt") => {
            event.remove("sentAt");
            serde_json::to_vec(&event).unwrap_or_else(|_| payload.to_vec())
        }
        _ => payload.to_vec(),
    }
}

/// Request bodies for a batch: `{"batch":[…],"sentAt":"…"}`, each under `max_bytes` (an event
/// larger than that on its own still goes, alone) and at most `max_events` events.
pub fn request_bodies(
    events: &[Vec<u8>],
    sent_at: &str,
    max_bytes: usize,
    max_events: usize,
) -> Vec<Vec<u8>> {
    let tail = format!("],\"sentAt\":\"{sent_at}\"}}");
    let head = b"{\"batch\":[";
    let mut bodies = Vec::new();
    let mut body: Vec<u8> = Vec::new();
    let mut count = 0;
    for event in events {
        let grows_to = body.len().max(head.len()) + event.len() + 1 + tail.len();
        if count > 0 && (grows_to > max_bytes || count >= max_events) {
            body.extend_from_slice(tail.as_bytes());
            bodies.push(std::mem::take(&mut body));
            count = 0;
        }
        if count == 0 {
            body.extend_from_slice(head);
        } else {
            body.push(b',');
        }
        body.extend_from_slice(event);
        count += 1;
    }
    if count > 0 {
        body.extend_from_slice(tail.as_bytes());
        bodies.push(body);
    }
    bodies
}

fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    encoder.write_all(body)?;
    encoder.finish()
}

/// `Retry-After` in seconds or as an HTTP date, capped at one hour.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let secs = match value.parse::<u64>() {
        Ok(secs) => secs,
        Err(_) => {
            let format = time::macros::format_description!(
                "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
            );
            let at = time::PrimitiveDateTime::parse(value, &format)
                .ok()?
                .assume_utc()
                .unix_timestamp();
            (at - crate::clock::now_ms() / 1000).max(0) as u64
        }
    };
    Some(Duration::from_secs(secs.min(3_600)))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[async_trait]
impl Destination for SegmentForward {
    async fn deliver(&self, records: &[Record]) -> Result<(), DeliveryError> {
        if records.is_empty() {
            return Ok(());
        }
        let events: Vec<Vec<u8>> = records.iter().map(|r| forwarded(&r.payload)).collect();
        let sent_at = crate::clock::format_ms(crate::clock::now_ms());
        for body in request_bodies(&events, &sent_at, MAX_REQUEST_BYTES, config::MAX_BATCH_SIZE) {
            self.post(body).await?;
        }
        Ok(())
    }

    fn max_batch(&self) -> usize {
        self.config.batch_size
    }
}
