//! Settings of the `webhook` destination.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Largest `batchSize`.
pub const MAX_BATCH_SIZE: usize = 1_000;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WebhookConfig {
    /// Where events are POSTed, `http://` or `https://`.
    pub url: String,
    /// Extra request headers, e.g. `{"Authorization": "Bearer …"}`. Values are secrets.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Events per request. `1` (the default) sends the event object itself; more sends
    /// `{"batch": [event, …]}`.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Request timeout in milliseconds (default 10 000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// When set, each request carries `X-Signature: sha256=<hex HMAC-SHA256 of the body>`
    /// keyed with this secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

fn default_batch_size() -> usize {
    1
}

fn default_timeout_ms() -> u64 {
    10_000
}

impl WebhookConfig {
    pub fn validate(&self) -> Result<(), String> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| format!("url {:?} is not a valid URL: {e}", self.url))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "url must start with http:// or https:// (got {:?})",
                self.url
            ));
        }
        if !(1..=MAX_BATCH_SIZE).contains(&self.batch_size) {
            return Err(format!("batchSize must be between 1 and {MAX_BATCH_SIZE}"));
        }
        if !(100..=300_000).contains(&self.timeout_ms) {
            return Err("timeoutMs must be between 100 and 300000".into());
        }
        for (name, value) in &self.headers {
            reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("header name {name:?} is not a valid HTTP header name"))?;
            reqwest::header::HeaderValue::from_str(value).map_err(|_| {
                format!("the value of header {name:?} is not a valid HTTP header value")
            })?;
        }
        if self.secret.as_deref() == Some("") {
            return Err("secret must not be empty; omit it to send unsigned requests".into());
        }
        Ok(())
    }
}
