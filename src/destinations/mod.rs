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
pub mod nats;
pub mod object_storage;
pub mod postgres;
pub mod segment_forward;
pub mod webhook;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::log::Record;

/// Every destination type this build knows, by name.
pub static REGISTRY: &[&dyn DestinationType] = &[
    &webhook::WebhookType,
    &file::FileType,
    &postgres::PostgresType,
    &object_storage::ObjectStorageType,
    &nats::NatsType,
    &segment_forward::SegmentForwardType,
];

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
    /// every value of that object; a trailing `#password` means only the password inside the URL
    /// at that pointer (`postgres://user:********@host/db`).
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
        let (path, in_url) = split_secret_path(path);
        for target in pointers(&out, path) {
            if let Some(v) = out.pointer_mut(&target)
                && !v.is_null()
            {
                if !in_url {
                    *v = Value::String(REDACTED.into());
                } else if let Some(url) = v.as_str()
                    && let Some(span) = url_password(url)
                {
                    *v = Value::String(format!(
                        "{}{REDACTED}{}",
                        &url[..span.start],
                        &url[span.end..]
                    ));
                }
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
        let (path, in_url) = split_secret_path(path);
        for target in pointers(new, path) {
            if in_url {
                restore_url_password(new, stored, &target);
                continue;
            }
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

/// A secret path without its `#password` suffix, and whether it had one.
fn split_secret_path(path: &str) -> (&str, bool) {
    match path.strip_suffix("#password") {
        Some(path) => (path, true),
        None => (path, false),
    }
}

/// Where the password of `scheme://user:password@host/…` is, if there is a non-empty one.
pub fn url_password(url: &str) -> Option<std::ops::Range<usize>> {
    let start = url.find("://")? + 3;
    let authority_len = url[start..]
        .find(['/', '?', '#'])
        .unwrap_or(url.len() - start);
    let authority = &url[start..start + authority_len];
    let at = authority.rfind('@')?;
    let colon = authority[..at].find(':')?;
    (colon + 1 < at).then(|| start + colon + 1..start + at)
}

/// Put the stored password back into a URL sent with [`REDACTED`] as its password.
fn restore_url_password(new: &mut Value, stored: &Value, target: &str) {
    let Some(url) = new.pointer(target).and_then(Value::as_str) else {
        return;
    };
    let Some(span) = url_password(url).filter(|span| &url[span.clone()] == REDACTED) else {
        return;
    };
    let Some(old) = stored.pointer(target).and_then(Value::as_str) else {
        return;
    };
    let Some(old_span) = url_password(old) else {
        return;
    };
    let restored = format!(
        "{}{}{}",
        &url[..span.start],
        &old[old_span],
        &url[span.end..]
    );
    if let Some(slot) = new.pointer_mut(target) {
        *slot = Value::String(restored);
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

    #[test]
    fn passwords_inside_urls() {
        let cases = [
            ("postgres://u:pw@h:5432/db", Some("pw")),
            ("postgres://u:p%40w@h/db?sslmode=disable", Some("p%40w")),
            ("postgres://u:p@w@h/db", Some("p@w")),
            ("postgres://u@h/db", None),
            ("postgres://u:@h/db", None),
            ("postgres://h/db?password=x", None),
            ("nats://tok:en@127.0.0.1:4222", Some("en")),
            ("not a url", None),
        ];
        for (url, password) in cases {
            assert_eq!(url_password(url).map(|r| &url[r]), password, "{url}");
        }
        let kind = find("postgres").unwrap();
        let stored = json!({"url": "postgres://u:pw@h/db", "schema": "s"});
        let shown = redact(kind, &stored);
        assert_eq!(shown["url"], "postgres://u:********@h/db");
        let mut patched = shown.clone();
        patched["url"] = json!("postgres://u:********@other/db");
        restore_secrets(kind, &mut patched, &stored);
        assert_eq!(patched["url"], "postgres://u:pw@other/db");
        let mut changed = json!({"url": "postgres://u:new@h/db"});
        restore_secrets(kind, &mut changed, &stored);
        assert_eq!(changed["url"], "postgres://u:new@h/db");
    }
}
