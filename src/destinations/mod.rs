//! Destination types: where events go.
//!
//! Each type lives in its own folder with the same files: `config.rs` (its settings, serde with
//! `deny_unknown_fields` and a doc comment per field), `mod.rs` (delivery) and `tests.rs`.
//! A type implements two small traits: [`DestinationType`] (validate settings, name the secret
//! ones, build an instance) and [`Destination`] (deliver a batch, say whether a failure is
//! worth retrying).
//!
//! Adding a type: create its folder and add one line to [`REGISTRY`].
//!
//! Architecture Invariant: destinations never look at consent fields or routing decisions.
//! They deliver exactly what the delivery worker hands them, which the router already decided.

pub mod file;
pub mod webhook;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::log::Record;

/// Every destination type this build knows, by name.
pub static REGISTRY: &[&dyn DestinationType] = &[&webhook::WebhookType, &file::FileType];

/// Find a type by its name (`webhook`, `file`, …).
pub fn find(kind: &str) -> Option<&'static dyn DestinationType> {
    REGISTRY.iter().copied().find(|t| t.name() == kind)
}

/// The names of all types, for error messages.
pub fn type_names() -> Vec<&'static str> {
    REGISTRY.iter().map(|t| t.name()).collect()
}

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Worth trying again later (network error, 408, 429, 5xx …).
    #[error("{message}")]
    Retryable {
        message: String,
        /// The destination asked us to wait this long (e.g. `Retry-After`).
        retry_after: Option<Duration>,
    },
    /// Trying again will not help (4xx, invalid data …).
    #[error("{message}")]
    Permanent { message: String },
}

impl DeliveryError {
    pub fn retryable(message: impl Into<String>) -> Self {
        DeliveryError::Retryable {
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        DeliveryError::Permanent {
            message: message.into(),
        }
    }
}

/// One configured destination, ready to deliver.
#[async_trait]
pub trait Destination: Send + Sync {
    /// Deliver the records (in order). Either all of them are delivered or none is considered
    /// delivered; a retry sends the whole batch again.
    async fn deliver(&self, records: &[Record]) -> Result<(), DeliveryError>;

    /// Most records per `deliver` call.
    fn max_batch(&self) -> usize;

    /// Remove what this destination holds about these people (SPEC §7 `DELETE_ONLY`,
    /// `SUPPRESS_WITH_DELETE`). Returns how many records were removed. Types that cannot delete
    /// keep the default, which says so.
    async fn delete_people(
        &self,
        _user_ids: &[String],
        _anonymous_ids: &[String],
    ) -> Result<u64, DeletionError> {
        Err(DeletionError::NotSupported)
    }
}

/// Why a destination did not delete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeletionError {
    #[error("this destination type does not support deletion")]
    NotSupported,
    #[error("{0}")]
    Failed(String),
}

/// What building a destination may need from the process.
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// Relative file paths resolve under this directory.
    pub files_dir: PathBuf,
    /// Absolute file paths must be under one of these (besides `files_dir`).
    pub allowed_file_dirs: Vec<PathBuf>,
}

/// A destination type.
pub trait DestinationType: Send + Sync {
    /// The `type` value in the admin API.
    fn name(&self) -> &'static str;

    /// One line for listings and errors.
    fn description(&self) -> &'static str;

    /// Whether destinations of this type enforce consent unless told otherwise (SPEC §1:
    /// archival types such as object storage do not).
    fn enforce_consent_default(&self) -> bool {
        true
    }

    /// Check settings and return them with defaults filled in.
    fn validate(&self, settings: &Value, ctx: &BuildContext) -> Result<Value, String>;

    /// JSON pointers of settings that are secrets (redacted on read). A trailing `/*` means
    /// every value of that object.
    fn secret_paths(&self) -> &'static [&'static str];

    /// Build a destination from validated settings.
    fn build(&self, settings: &Value, ctx: &BuildContext) -> Result<Arc<dyn Destination>, String>;
}

/// What secrets look like on read. Sending it back in a PATCH keeps the stored value.
pub const REDACTED: &str = "********";

/// Replace secret values with [`REDACTED`].
pub fn redact(kind: &dyn DestinationType, settings: &Value) -> Value {
    let mut out = settings.clone();
    for path in kind.secret_paths() {
        for target in pointers(&out, path) {
            if let Some(v) = out.pointer_mut(&target)
                && !v.is_null()
            {
                *v = Value::String(REDACTED.into());
            }
        }
    }
    out
}

/// Redact settings of a destination of type `kind`; unknown types are redacted entirely.
pub fn redact_settings(kind: &str, settings: &Value) -> Value {
    match find(kind) {
        Some(t) => redact(t, settings),
        None => Value::String(REDACTED.into()),
    }
}

/// In new settings, put back the stored value of every secret sent as [`REDACTED`].
pub fn restore_secrets(kind: &dyn DestinationType, new: &mut Value, stored: &Value) {
    for path in kind.secret_paths() {
        for target in pointers(new, path) {
            let is_placeholder = new.pointer(&target).and_then(Value::as_str) == Some(REDACTED);
            if is_placeholder
                && let Some(old) = stored.pointer(&target).cloned()
                && let Some(slot) = new.pointer_mut(&target)
            {
                *slot = old;
            }
        }
    }
}

/// Expand a secret path (with an optional trailing `/*`) into concrete JSON pointers.
fn pointers(value: &Value, path: &str) -> Vec<String> {
    match path.strip_suffix("/*") {
        None => vec![path.to_owned()],
        Some(parent) => match value.pointer(parent) {
            Some(Value::Object(map)) => map
                .keys()
                .map(|k| format!("{parent}/{}", k.replace('~', "~0").replace('/', "~1")))
                .collect(),
            _ => Vec::new(),
        },
    }
}

/// Parse settings into a type's config struct, with an error message that names the field.
pub fn parse_settings<T: serde::de::DeserializeOwned>(
    kind: &str,
    settings: &Value,
) -> Result<T, String> {
    serde_json::from_value(settings.clone())
        .map_err(|e| format!("invalid settings for a {kind} destination: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redaction_round_trip() {
        let kind = find("webhook").unwrap();
        let stored = json!({"url": "http://x", "secret": "s3cr3t", "headers": {"Authorization": "Bearer abc", "X-A": "1"}});
        let shown = redact(kind, &stored);
        assert_eq!(shown["secret"], REDACTED);
        assert_eq!(shown["headers"]["Authorization"], REDACTED);
        assert_eq!(shown["url"], "http://x");
        let mut patched = shown.clone();
        patched["url"] = json!("http://y");
        patched["headers"]["X-A"] = json!("2");
        restore_secrets(kind, &mut patched, &stored);
        assert_eq!(
            patched,
            json!({"url": "http://y", "secret": "s3cr3t", "headers": {"Authorization": "Bearer abc", "X-A": "2"}})
        );
    }
}
