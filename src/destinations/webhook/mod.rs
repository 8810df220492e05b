//! The `webhook` destination: HTTP POST of JSON, optionally batched and signed.
//!
//! Responses: 2xx is success; 408, 429 (honouring `Retry-After`) and 5xx are retryable; other
//! statuses, including redirects (which are not followed), are permanent. Network errors and
//! timeouts are retryable.

mod config;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER, USER_AGENT};
use serde_json::Value;
use sha2::Sha256;

pub use config::WebhookConfig;

use super::{BuildContext, DeliveryError, Destination, DestinationType, parse_settings};
use crate::log::Record;

pub struct WebhookType;

impl DestinationType for WebhookType {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn description(&self) -> &'static str {
        "HTTP POST of each event (or batch) as JSON, optionally HMAC-signed"
    }

    fn validate(&self, settings: &Value, _ctx: &BuildContext) -> Result<Value, String> {
        let config: WebhookConfig = parse_settings(self.name(), settings)?;
        config.validate()?;
        serde_json::to_value(config).map_err(|e| e.to_string())
    }

    fn secret_paths(&self) -> &'static [&'static str] {
        &["/secret", "/headers/*"]
    }

    fn build(&self, settings: &Value, _ctx: &BuildContext) -> Result<Arc<dyn Destination>, String> {
        let config: WebhookConfig = parse_settings(self.name(), settings)?;
        config.validate()?;
        Ok(Arc::new(Webhook::new(config)?))
    }
}

pub struct Webhook {
    config: WebhookConfig,
    client: reqwest::Client,
    url: reqwest::Url,
}

impl Webhook {
    pub fn new(config: WebhookConfig) -> Result<Webhook, String> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("sluice/", env!("CARGO_PKG_VERSION"))),
        );
        for (name, value) in &config.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?;
            let value = HeaderValue::from_str(value).map_err(|e| e.to_string())?;
            headers.insert(name, value);
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(Duration::from_millis(config.timeout_ms))
            .connect_timeout(Duration::from_millis(config.timeout_ms.min(5_000)))
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(8)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let url = reqwest::Url::parse(&config.url).map_err(|e| e.to_string())?;
        Ok(Webhook {
            config,
            client,
            url,
        })
    }

    /// The request body: the event itself, or `{"batch": [...]}`.
    fn body(&self, records: &[Record]) -> Vec<u8> {
        if self.config.batch_size == 1 && records.len() == 1 {
            return records[0].payload.clone();
        }
        let len: usize = records.iter().map(|r| r.payload.len() + 1).sum();
        let mut body = Vec::with_capacity(len + 12);
        body.extend_from_slice(b"{\"batch\":[");
        for (i, record) in records.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&record.payload);
        }
        body.extend_from_slice(b"]}");
        body
    }
}

/// `X-Signature` header value for a body.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Seconds or HTTP-date `Retry-After`, capped at one hour.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let secs = match value.parse::<u64>() {
        Ok(secs) => secs,
        Err(_) => {
            let at = httpdate_secs(value)?;
            (at - crate::clock::now_ms() / 1000).max(0) as u64
        }
    };
    Some(Duration::from_secs(secs.min(3_600)))
}

/// Parse an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) into Unix seconds.
fn httpdate_secs(value: &str) -> Option<i64> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let parsed = time::PrimitiveDateTime::parse(value, &format).ok()?;
    Some(parsed.assume_utc().unix_timestamp())
}

#[async_trait]
impl Destination for Webhook {
    async fn deliver(&self, records: &[Record]) -> Result<(), DeliveryError> {
        let body = self.body(records);
        let mut request = self.client.post(self.url.clone());
        if let Some(secret) = &self.config.secret {
            request = request.header("X-Signature", signature(secret, &body));
        }
        let response = request.body(body).send().await.map_err(|e| {
            let kind = if e.is_timeout() {
                "timed out"
            } else {
                "failed"
            };
            DeliveryError::retryable(format!("POST {} {kind}: {}", self.url, error_chain(&e)))
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let wait = retry_after(response.headers());
        // A short excerpt of the answer helps whoever reads the dead letter.
        let excerpt = response
            .text()
            .await
            .map(|t| t.chars().take(200).collect::<String>())
            .unwrap_or_default();
        let message = format!(
            "POST {} answered HTTP {}: {}",
            self.url,
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

    fn max_batch(&self) -> usize {
        self.config.batch_size
    }
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
