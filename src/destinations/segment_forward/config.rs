//! Settings of the `segment_forward` destination.

use serde::{Deserialize, Serialize};

/// Largest `batchSize`: Segment's limit of events per batch request.
pub const MAX_BATCH_SIZE: usize = 2_500;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SegmentForwardConfig {
    /// The Segment-compatible endpoint, e.g. `https://api.segment.io`, `https://events.eu1.segmentapis.com`
    /// or another Sluice. Events are POSTed to `<url>/v1/batch` (a URL already ending in `/v1`
    /// or `/v1/batch` is used as it is).
    pub url: String,
    /// The write key of the source there, sent as the HTTP Basic user name (a secret).
    pub write_key: String,
    /// Most events per delivered batch (default 100). A batch is split into several requests
    /// when needed to stay under Segment's 500 KB per request.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Send request bodies gzip-compressed (`Content-Encoding: gzip`; default false).
    #[serde(default)]
    pub gzip: bool,
    /// Request timeout in milliseconds (default 10 000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_batch_size() -> usize {
    100
}

fn default_timeout_ms() -> u64 {
    10_000
}

impl SegmentForwardConfig {
    pub fn validate(&self) -> Result<(), String> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| format!("url {:?} is not a valid URL: {e}", self.url))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "url must start with http:// or https:// (got {:?})",
                self.url
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err("url must not have a query or fragment".into());
        }
        if self.write_key.trim().is_empty() {
            return Err("writeKey must not be empty".into());
        }
        reqwest::header::HeaderValue::from_str(&self.write_key)
            .map_err(|_| "writeKey contains characters that cannot be sent in a header")?;
        if !(1..=MAX_BATCH_SIZE).contains(&self.batch_size) {
            return Err(format!("batchSize must be between 1 and {MAX_BATCH_SIZE}"));
        }
        if !(100..=300_000).contains(&self.timeout_ms) {
            return Err("timeoutMs must be between 100 and 300000".into());
        }
        Ok(())
    }

    /// Where batches are POSTed.
    pub fn endpoint(&self) -> Result<reqwest::Url, String> {
        let mut url = reqwest::Url::parse(&self.url).map_err(|e| e.to_string())?;
        let path = url.path().trim_end_matches('/').to_owned();
        let path = if path.ends_with("/v1/batch") {
            path
        } else if path.ends_with("/v1") {
            format!("{path}/batch")
        } else {
            format!("{path}/v1/batch")
        };
        url.set_path(&path);
        Ok(url)
    }
}
