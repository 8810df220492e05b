//! Destinations: the list, the create flow (choose a type, then its form), and per destination
//! its settings, delivery state with dead letters and replay, destination filters with a
//! "test against a sample event" box, enable / disable and delete.
//!
//! Settings forms are generated from [`FORMS`]: per destination type, the settings fields
//! with their input, label, help and an example, written from the doc comments of the type's
//! `config.rs`. Which fields are secrets comes from the type itself (`secret_paths`). A type
//! without an entry gets one JSON box for all its settings, so a new type works at once; the
//! unit tests check every entry against the type's own validation.
//!
//! Secrets are write-only: their fields are never filled in. On edit, an empty secret field
//! sends the API's `********` placeholder, which the PATCH handler replaces with the stored
//! value; a URL's password is shown as `********` inside the URL, with the same effect.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::auth::ConsoleUser;
use super::page::{ConfirmByName, CsrfOnly, Shell, back, confirmed, render};
use super::{body, failed};
use crate::admin::ApiJson;
use crate::admin::destinations::{self as api, DestinationView};
use crate::app::App;
use crate::destinations::{self as types, DestinationType, REDACTED};
use crate::error::ApiError;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/destinations", get(list))
        .route("/destinations/new", get(new_page).post(create))
        .route("/destinations/{id}", get(detail).post(save))
        .route("/destinations/{id}/enable", post(enable))
        .route("/destinations/{id}/disable", post(disable))
        .route("/destinations/{id}/delete", post(delete))
        .route("/destinations/{id}/replay", post(replay))
        .route("/destinations/{id}/filters", post(filters))
}

const DESTINATIONS: &str = "/api/v1/destinations";
const DESTINATION: &str = "/api/v1/destinations/{id}";
const FILTERS: &str = "/api/v1/destinations/{id}/filters";
const FILTER_TEST: &str = "/api/v1/destination-filters/test";
const REPLAY: &str = "/api/v1/destinations/{id}/dead-letters/replay";

// ---- Settings forms ---------------------------------------------------------------------------

/// How a setting is typed in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Input {
    Text,
    /// A whole number; empty means the type's default.
    Number,
    /// `true` when ticked.
    Checkbox,
    /// A JSON value (an object of headers, say).
    Json,
}

/// One setting of a destination type.
struct Field {
    /// JSON pointer into the settings (`/url`, `/s3/bucket`); empty for the whole settings.
    pointer: &'static str,
    label: &'static str,
    input: Input,
    required: bool,
    help: &'static str,
    /// A valid value, shown as the placeholder (and used by the tests).
    example: &'static str,
    /// Words in the type's error messages that are about this field, besides its name.
    mentions: &'static [&'static str],
    /// Fields of one group are shown together (object storage: local or S3).
    group: Option<&'static str>,
}

const fn field(
    pointer: &'static str,
    label: &'static str,
    input: Input,
    help: &'static str,
    example: &'static str,
) -> Field {
    Field {
        pointer,
        label,
        input,
        required: false,
        help,
        example,
        mentions: &[],
        group: None,
    }
}

const fn required(field: Field) -> Field {
    Field {
        required: true,
        ..field
    }
}

const fn grouped(group: &'static str, field: Field) -> Field {
    Field {
        group: Some(group),
        ..field
    }
}

const BATCH_HELP: &str = "How many events are sent together. Leave empty for the default.";
const TIMEOUT_HELP: &str = "How long to wait for an answer before trying again later. Leave empty for 10 000 (10 seconds).";

/// The settings form of each destination type, in the order the fields are shown.
static FORMS: &[(&str, &[Field])] = &[
    (
        "webhook",
        &[
            required(field(
                "/url",
                "Webhook URL",
                Input::Text,
                "Where events are sent, as JSON in an HTTP POST. Starts with http:// or https://.",
                "https://hooks.example.com/sluice",
            )),
            Field {
                mentions: &["header"],
                ..field(
                    "/headers",
                    "Extra request headers",
                    Input::Json,
                    "A JSON object of header names and values, for example an Authorization header the receiver expects. The values are secret: after saving they show as ********; leave ******** to keep a value.",
                    "{\"Authorization\": \"Bearer abc123\"}",
                )
            },
            field(
                "/batchSize",
                "Events per request",
                Input::Number,
                "1 (the default) sends each event on its own; more sends them together as {\"batch\": [...]}, up to 1000.",
                "1",
            ),
            field(
                "/timeoutMs",
                "Timeout in milliseconds",
                Input::Number,
                TIMEOUT_HELP,
                "10000",
            ),
            field(
                "/secret",
                "Signing secret",
                Input::Text,
                "When set, every request carries an X-Signature header (sha256=HMAC of the body) so the receiver can check it came from Sluice.",
                "a-long-random-secret",
            ),
        ],
    ),
    (
        "file",
        &[
            required(field(
                "/path",
                "File",
                Input::Text,
                "The file events are appended to, one JSON object per line. A relative path is inside the data directory's files folder.",
                "events/all.jsonl",
            )),
            field(
                "/rotateBytes",
                "Start a new file after (bytes)",
                Input::Number,
                "When the file reaches this size it is renamed with the time and a new one is started. Leave empty for 100 MiB.",
                "104857600",
            ),
            field(
                "/batchSize",
                "Events per write",
                Input::Number,
                BATCH_HELP,
                "500",
            ),
        ],
    ),
    (
        "postgres",
        &[
            required(field(
                "/url",
                "Database URL",
                Input::Text,
                "postgres://user:password@host:5432/database. The password is secret: after saving it shows as ********; keep ******** to keep it.",
                "postgres://sluice:password@db.example.com:5432/analytics",
            )),
            field(
                "/schema",
                "Schema",
                Input::Text,
                "The schema tables are written to; created if missing. Leave empty for “sluice”.",
                "sluice",
            ),
            field(
                "/batchSize",
                "Events per transaction",
                Input::Number,
                BATCH_HELP,
                "500",
            ),
            field(
                "/connectTimeoutMs",
                "Connection timeout in milliseconds",
                Input::Number,
                TIMEOUT_HELP,
                "10000",
            ),
        ],
    ),
    (
        "object_storage",
        &[
            grouped(
                "Local directory",
                field(
                    "/local/path",
                    "Directory",
                    Input::Text,
                    "Fill in either this directory or the bucket below. A relative path is inside the data directory's files folder.",
                    "archive",
                ),
            ),
            grouped(
                "S3-compatible bucket",
                field(
                    "/s3/bucket",
                    "Bucket",
                    Input::Text,
                    "The bucket must exist already.",
                    "analytics-archive",
                ),
            ),
            grouped(
                "S3-compatible bucket",
                field(
                    "/s3/region",
                    "Region",
                    Input::Text,
                    "Leave empty for us-east-1.",
                    "eu-west-1",
                ),
            ),
            grouped(
                "S3-compatible bucket",
                field(
                    "/s3/endpoint",
                    "Endpoint URL",
                    Input::Text,
                    "Only for S3-compatible stores such as MinIO or Cloudflare R2; leave empty for AWS.",
                    "http://127.0.0.1:9000",
                ),
            ),
            grouped(
                "S3-compatible bucket",
                field(
                    "/s3/accessKeyId",
                    "Access key id",
                    Input::Text,
                    "Leave both keys empty to use the server's own AWS credentials.",
                    "AKIAEXAMPLE",
                ),
            ),
            grouped(
                "S3-compatible bucket",
                field(
                    "/s3/secretAccessKey",
                    "Secret access key",
                    Input::Text,
                    "Secret: never shown again after saving.",
                    "example-secret-key",
                ),
            ),
            grouped(
                "S3-compatible bucket",
                field(
                    "/s3/prefix",
                    "Key prefix",
                    Input::Text,
                    "Objects go under prefix/dt=…/hour=…/ in the bucket.",
                    "segment-logs",
                ),
            ),
            field(
                "/batchSize",
                "Events per object",
                Input::Number,
                "Most events in one object. Leave empty for 1000.",
                "1000",
            ),
        ],
    ),
    (
        "nats",
        &[
            field(
                "/url",
                "Server URL",
                Input::Text,
                "Leave empty for nats://127.0.0.1:4222. A password in the URL is secret: after saving it shows as ********; keep ******** to keep it.",
                "nats://127.0.0.1:4222",
            ),
            field(
                "/token",
                "Token",
                Input::Text,
                "Only if the server asks for one. Secret: never shown again after saving.",
                "s3cr3t-token",
            ),
            field(
                "/subject",
                "Subject",
                Input::Text,
                "Where each event is published. {type} becomes the event type and {event} the event name. Leave empty for events.{type}.",
                "events.{type}",
            ),
            field(
                "/stream",
                "JetStream stream",
                Input::Text,
                "Publish with acknowledgements into this stream (created if missing). Leave empty for core NATS, which keeps nothing when nobody listens.",
                "EVENTS",
            ),
            field(
                "/batchSize",
                "Events per batch",
                Input::Number,
                BATCH_HELP,
                "100",
            ),
            field(
                "/timeoutMs",
                "Timeout in milliseconds",
                Input::Number,
                TIMEOUT_HELP,
                "10000",
            ),
        ],
    ),
    (
        "segment_forward",
        &[
            required(field(
                "/url",
                "Endpoint",
                Input::Text,
                "A Segment-compatible Tracking API, such as https://api.segment.io or another Sluice.",
                "https://api.segment.io",
            )),
            required(field(
                "/writeKey",
                "Write key there",
                Input::Text,
                "The write key of the source events are forwarded to. Secret: never shown again after saving.",
                "abc123writekey",
            )),
            field(
                "/batchSize",
                "Events per batch",
                Input::Number,
                "Up to 2500. Leave empty for 100.",
                "100",
            ),
            field(
                "/gzip",
                "Compress requests with gzip",
                Input::Checkbox,
                "Smaller requests; the receiver must accept gzip.",
                "true",
            ),
            field(
                "/timeoutMs",
                "Timeout in milliseconds",
                Input::Number,
                TIMEOUT_HELP,
                "10000",
            ),
        ],
    ),
];

/// For types without an entry in [`FORMS`]: all settings as one JSON object.
static RAW_SETTINGS: &[Field] = &[field(
    "",
    "Settings (JSON)",
    Input::Json,
    "The settings of this destination type as a JSON object; see the README.",
    "{}",
)];

fn form_of(kind: &str) -> &'static [Field] {
    FORMS
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(RAW_SETTINGS, |(_, fields)| fields)
}

/// Whether the type redacts this setting (an exact secret path, or every value under it).
fn is_secret(kind: &dyn DestinationType, pointer: &str) -> bool {
    kind.secret_paths().contains(&pointer)
}

/// Whether every value of this object setting is secret (webhook headers: `/headers/*`).
fn has_secret_values(kind: &dyn DestinationType, pointer: &str) -> bool {
    !pointer.is_empty()
        && kind
            .secret_paths()
            .iter()
            .any(|p| p.strip_suffix("/*") == Some(pointer))
}

/// Whether the password inside this URL setting is secret (`/url#password`).
fn has_secret_password(kind: &dyn DestinationType, pointer: &str) -> bool {
    !pointer.is_empty()
        && kind
            .secret_paths()
            .iter()
            .any(|p| p.strip_suffix("#password") == Some(pointer))
}

/// A typed value as it may be shown back: the secrets in it replaced by [`REDACTED`]. A
/// secret is never sent to the browser, not even one just typed into a form that failed.
fn mask_typed(kind: &dyn DestinationType, field: &Field, raw: &str) -> String {
    if has_secret_values(kind, field.pointer) {
        return match serde_json::from_str::<Value>(raw) {
            Ok(Value::Object(map)) => {
                let masked: Map<String, Value> = map
                    .into_iter()
                    .map(|(k, v)| {
                        if v.is_null() {
                            (k, v)
                        } else {
                            (k, Value::String(REDACTED.into()))
                        }
                    })
                    .collect();
                serde_json::to_string_pretty(&Value::Object(masked)).unwrap_or_default()
            }
            // Not an object: nothing to show that would not risk a secret.
            _ => String::new(),
        };
    }
    if has_secret_password(kind, field.pointer)
        && let Some(span) = types::url_password(raw)
    {
        return format!("{}{REDACTED}{}", &raw[..span.start], &raw[span.end..]);
    }
    raw.to_owned()
}

/// Secrets sent as [`REDACTED`] that have no stored value to stand for (creating, or a value
/// masked on a form that failed): they must be typed again, not saved as `********`.
fn placeholders_without_secret(
    kind: &dyn DestinationType,
    settings: &Value,
    stored: Option<&Value>,
) -> Vec<(String, String)> {
    let stored_at = |pointer: &str| {
        stored
            .and_then(|s| s.pointer(pointer))
            .filter(|v| !v.is_null())
    };
    let mut errors = Vec::new();
    for path in kind.secret_paths() {
        if let Some(parent) = path.strip_suffix("/*") {
            let Some(Value::Object(map)) = settings.pointer(parent) else {
                continue;
            };
            let missing: Vec<&str> = map
                .iter()
                .filter(|(k, v)| {
                    v.as_str() == Some(REDACTED)
                        && stored_at(&format!(
                            "{parent}/{}",
                            k.replace('~', "~0").replace('/', "~1")
                        ))
                        .is_none()
                })
                .map(|(k, _)| k.as_str())
                .collect();
            if !missing.is_empty() {
                errors.push((
                    parent.to_owned(),
                    format!("Type the value of {} again: secret values are never shown back, so ******** here stands for nothing.", missing.join(", ")),
                ));
            }
        } else if let Some(pointer) = path.strip_suffix("#password") {
            let Some(url) = settings.pointer(pointer).and_then(Value::as_str) else {
                continue;
            };
            let placeholder = types::url_password(url).is_some_and(|span| &url[span] == REDACTED);
            let kept = stored_at(pointer)
                .and_then(Value::as_str)
                .and_then(types::url_password)
                .is_some();
            if placeholder && !kept {
                errors.push((pointer.to_owned(), "Type the password in this URL again: passwords are never shown back, so ******** here stands for nothing.".to_owned()));
            }
        } else if settings.pointer(path).and_then(Value::as_str) == Some(REDACTED)
            && stored_at(path).is_none()
        {
            errors.push((
                path.to_string(),
                "Type this secret: ******** stands for a saved value, and there is none."
                    .to_owned(),
            ));
        }
    }
    errors
}

fn form_name(field: &Field) -> String {
    format!("setting:{}", field.pointer)
}

fn html_id(field: &Field) -> String {
    let tail: String = field
        .pointer
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("setting{tail}")
}

/// A setting's dotted name as the type's error messages spell it (`s3.bucket`).
fn dotted(field: &Field) -> String {
    field.pointer.trim_start_matches('/').replace('/', ".")
}

/// Put `value` at `pointer`, creating the objects on the way.
fn insert(settings: &mut Value, pointer: &str, value: Value) {
    if pointer.is_empty() {
        *settings = value;
        return;
    }
    let mut at = settings;
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        if !at.is_object() {
            *at = Value::Object(Map::new());
        }
        let map = at.as_object_mut().expect("made an object above");
        if i + 1 == parts.len() {
            map.insert((*part).to_owned(), value);
            return;
        }
        at = map
            .entry((*part).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

/// The settings form as typed: `setting:<pointer>` fields, and `clear:<pointer>` boxes that
/// remove a stored secret.
#[derive(Default, Clone)]
struct Typed {
    values: HashMap<String, String>,
    clear: Vec<String>,
}

impl Typed {
    fn value(&self, field: &Field) -> &str {
        self.values
            .get(&form_name(field))
            .map_or("", String::as_str)
    }
}

/// Build the API's `settings` from the form. `stored` is the destination's settings as the
/// API shows them (secrets redacted) when editing. Errors are per field pointer.
fn build_settings(
    kind: &dyn DestinationType,
    typed: &Typed,
    stored: Option<&Value>,
) -> Result<Value, Vec<(String, String)>> {
    let fields = form_of(kind.name());
    let mut settings = Value::Object(Map::new());
    let mut errors = Vec::new();
    let mut kept_secrets = Vec::new();
    for f in fields {
        let raw = typed.value(f);
        let value = match f.input {
            Input::Checkbox => Some(Value::Bool(!raw.is_empty())),
            _ if raw.trim().is_empty() => None,
            Input::Number => match raw.trim().parse::<u64>() {
                Ok(n) => Some(json!(n)),
                Err(_) => {
                    errors.push((
                        f.pointer.to_owned(),
                        "Enter a whole number, or leave it empty for the default.".to_owned(),
                    ));
                    None
                }
            },
            Input::Json => match serde_json::from_str::<Value>(raw) {
                Ok(v) => Some(v),
                Err(e) if has_secret_values(kind, f.pointer) => {
                    errors.push((f.pointer.to_owned(), format!("This was not valid JSON ({e}). Its values are secret and not shown back: type them again.")));
                    None
                }
                Err(e) => {
                    errors.push((
                        f.pointer.to_owned(),
                        format!("This is not valid JSON: {e}."),
                    ));
                    None
                }
            },
            // Secrets are taken as typed; other text without surrounding spaces.
            Input::Text if is_secret(kind, f.pointer) => Some(Value::String(raw.to_owned())),
            Input::Text => Some(Value::String(raw.trim().to_owned())),
        };
        match value {
            Some(v) => insert(&mut settings, f.pointer, v),
            // An empty secret field keeps the stored secret, unless its box says to remove it.
            None if is_secret(kind, f.pointer)
                && !typed.clear.iter().any(|c| c == f.pointer)
                && stored
                    .and_then(|s| s.pointer(f.pointer))
                    .is_some_and(|v| !v.is_null()) =>
            {
                kept_secrets.push(f.pointer);
            }
            None => {}
        }
    }
    // A kept secret does not on its own bring back the group it belongs to (switching object
    // storage from S3 to a local directory leaves no S3 settings).
    for pointer in kept_secrets {
        let parent = &pointer[..pointer.rfind('/').unwrap_or(0)];
        if parent.is_empty() || settings.pointer(parent).is_some() {
            insert(&mut settings, pointer, Value::String(REDACTED.into()));
        }
    }
    if errors.is_empty() {
        errors = placeholders_without_secret(kind, &settings, stored);
    }
    if errors.is_empty() {
        Ok(settings)
    } else {
        Err(errors)
    }
}

/// The field an API error message is about, if any.
fn field_of_message(fields: &[Field], message: &str) -> Option<&'static str> {
    let mut best: Option<(&'static str, usize)> = None;
    for f in fields.iter().filter(|f| !f.pointer.is_empty()) {
        let name = dotted(f);
        let last = name.rsplit('.').next().unwrap_or(&name);
        let named = message.starts_with(&format!("{name} "))
            || message.contains(&format!(" {name} "))
            || message.contains(&format!("`{last}`"))
            || f.mentions.iter().any(|m| message.contains(m));
        if named && best.is_none_or(|(_, len)| name.len() > len) {
            best = Some((f.pointer, name.len()));
        }
    }
    best.map(|(p, _)| p)
}

/// A setting as the template shows it.
struct FieldView {
    id: String,
    name: String,
    pointer: &'static str,
    label: &'static str,
    help: &'static str,
    example: &'static str,
    /// `text`, `secret`, `number`, `checkbox` or `json`.
    input: &'static str,
    required: bool,
    value: String,
    checked: bool,
    /// A secret is stored (editing): an empty field keeps it.
    stored_secret: bool,
    error: Option<String>,
}

struct GroupView {
    legend: Option<&'static str>,
    fields: Vec<FieldView>,
}

/// The settings part of the create and edit forms.
struct SettingsView {
    kind: &'static str,
    description: &'static str,
    name: String,
    integration: String,
    enforce_consent: bool,
    enabled: bool,
    groups: Vec<GroupView>,
    name_error: Option<String>,
    integration_error: Option<String>,
    form_error: Option<String>,
}

impl SettingsView {
    fn has_errors(&self) -> bool {
        self.name_error.is_some()
            || self.integration_error.is_some()
            || self.form_error.is_some()
            || self
                .groups
                .iter()
                .flat_map(|g| &g.fields)
                .any(|f| f.error.is_some())
    }

    /// The form as typed, with `errors` next to their fields.
    fn new(
        kind: &'static dyn DestinationType,
        common: &Common,
        typed: &Typed,
        stored: Option<&Value>,
        errors: &[(String, String)],
    ) -> SettingsView {
        let mut groups: Vec<GroupView> = Vec::new();
        for f in form_of(kind.name()) {
            let secret = is_secret(kind, f.pointer);
            let input = match f.input {
                Input::Text if secret => "secret",
                Input::Text => "text",
                Input::Number => "number",
                Input::Checkbox => "checkbox",
                Input::Json => "json",
            };
            let raw = typed.value(f);
            let view = FieldView {
                id: html_id(f),
                name: form_name(f),
                pointer: f.pointer,
                label: f.label,
                help: f.help,
                example: f.example,
                input,
                required: f.required,
                // Never echo a secret, not even one just typed.
                value: if secret {
                    String::new()
                } else {
                    mask_typed(kind, f, raw)
                },
                checked: !raw.is_empty(),
                stored_secret: secret
                    && stored
                        .and_then(|s| s.pointer(f.pointer))
                        .is_some_and(|v| !v.is_null()),
                error: errors
                    .iter()
                    .find(|(p, _)| p == f.pointer)
                    .map(|(_, m)| m.clone()),
            };
            match groups.last_mut() {
                Some(g) if g.legend == f.group => g.fields.push(view),
                _ => groups.push(GroupView {
                    legend: f.group,
                    fields: vec![view],
                }),
            }
        }
        let field_errors = errors
            .iter()
            .filter(|(p, _)| p != "name" && p != "integration" && p != "form");
        let placed = |p: &str| form_of(kind.name()).iter().any(|f| f.pointer == p);
        let unplaced: Vec<&str> = field_errors
            .filter(|(p, _)| !placed(p))
            .map(|(_, m)| m.as_str())
            .collect();
        let pick = |key: &str| {
            errors
                .iter()
                .find(|(p, _)| p == key)
                .map(|(_, m)| m.clone())
        };
        let form_error =
            pick("form").or_else(|| (!unplaced.is_empty()).then(|| unplaced.join(" ")));
        SettingsView {
            kind: kind.name(),
            description: kind.description(),
            name: common.name.clone(),
            integration: common.integration.clone(),
            enforce_consent: common.enforce_consent,
            enabled: common.enabled,
            groups,
            name_error: pick("name"),
            integration_error: pick("integration"),
            form_error,
        }
    }

    /// The form of a stored destination.
    fn of(kind: &'static dyn DestinationType, dest: &DestinationView) -> SettingsView {
        let mut typed = Typed::default();
        for f in form_of(kind.name()) {
            let value = if f.pointer.is_empty() {
                Some(&dest.settings)
            } else {
                dest.settings.pointer(f.pointer)
            };
            let text = match value {
                None | Some(Value::Null) => String::new(),
                // Stored secrets stay out of the form (the view has them redacted anyway).
                Some(_) if is_secret(kind, f.pointer) => String::new(),
                Some(Value::Bool(b)) => {
                    if *b {
                        "on".into()
                    } else {
                        String::new()
                    }
                }
                Some(Value::String(s)) if f.input != Input::Json => s.clone(),
                Some(Value::Object(m))
                    if m.is_empty() && f.input == Input::Json && !f.pointer.is_empty() =>
                {
                    String::new()
                }
                Some(v) if f.input == Input::Json => {
                    serde_json::to_string_pretty(v).unwrap_or_default()
                }
                Some(v) => v.to_string(),
            };
            typed.values.insert(form_name(f), text);
        }
        let common = Common {
            name: dest.name.clone(),
            integration: dest.integration.clone(),
            enforce_consent: dest.enforce_consent,
            enabled: dest.enabled,
        };
        SettingsView::new(kind, &common, &typed, Some(&dest.settings), &[])
    }
}

/// The fields every destination has.
struct Common {
    name: String,
    integration: String,
    enforce_consent: bool,
    enabled: bool,
}

/// Parse the settings form (`setting:` fields repeat by pointer; checkboxes are absent when off).
fn parse_settings_form(raw: &[u8]) -> (String, Common, Typed, String) {
    let mut csrf = String::new();
    let mut kind = String::new();
    let mut common = Common {
        name: String::new(),
        integration: String::new(),
        enforce_consent: false,
        enabled: false,
    };
    let mut typed = Typed::default();
    for (key, value) in form_urlencoded::parse(raw) {
        match key.as_ref() {
            "_csrf" => csrf = value.into_owned(),
            "type" => kind = value.into_owned(),
            "name" => common.name = value.into_owned(),
            "integration" => common.integration = value.into_owned(),
            "enforce_consent" => common.enforce_consent = true,
            "enabled" => common.enabled = true,
            k if k.starts_with("setting:") => {
                typed.values.insert(k.to_owned(), value.into_owned());
            }
            k if k.starts_with("clear:") => typed.clear.push(k["clear:".len()..].to_owned()),
            _ => {}
        }
    }
    (csrf, common, typed, kind)
}

/// Place an API error: a settings field, the name, the integration, or the form.
fn place_error(kind: &dyn DestinationType, message: String) -> Vec<(String, String)> {
    let key = if message.starts_with("destination name") {
        "name".to_owned()
    } else if message.starts_with("integration") {
        "integration".to_owned()
    } else {
        field_of_message(form_of(kind.name()), &message)
            .unwrap_or("form")
            .to_owned()
    };
    vec![(key, message)]
}

/// The delivery state's pill class and words (`delivering`, `retrying`, `paused`, `error`).
fn state_class(state: &str) -> &'static str {
    match state {
        "delivering" => "on",
        "retrying" => "warn",
        "paused" => "off",
        _ => "bad",
    }
}

fn state_label(state: &str) -> &'static str {
    match state {
        "delivering" => "Delivering",
        "retrying" => "Retrying",
        "paused" => "Disabled",
        _ => "Cannot start",
    }
}

// ---- List -------------------------------------------------------------------------------------

#[derive(Deserialize)]
pub struct Flash {
    ok: Option<String>,
    error: Option<String>,
}

struct Row {
    dest: DestinationView,
    categories: Vec<(String, String)>,
    dead: DeadCount,
}

/// Dead letters of a destination, counted up to a page.
struct DeadCount {
    count: usize,
    more: bool,
}

const DEAD_PAGE: usize = 100;

/// The destination's dead letters through the admin API (first page), newest last.
async fn dead_letters(app: &Arc<App>, id: &str) -> (DeadCount, Vec<Value>) {
    let Ok(params) = body(json!({"limit": DEAD_PAGE})) else {
        return (
            DeadCount {
                count: 0,
                more: false,
            },
            Vec::new(),
        );
    };
    match crate::admin::dead_letters::list(
        State(Arc::clone(app)),
        Path(id.to_owned()),
        Query(params),
    )
    .await
    {
        Ok(Json(page)) => {
            let page = serde_json::to_value(page).unwrap_or_default();
            let entries = page["entries"].as_array().cloned().unwrap_or_default();
            (
                DeadCount {
                    count: entries.len(),
                    more: !page["nextCursor"].is_null(),
                },
                entries,
            )
        }
        Err(_) => (
            DeadCount {
                count: 0,
                more: false,
            },
            Vec::new(),
        ),
    }
}

#[derive(askama::Template)]
#[template(path = "console/destinations.html")]
struct ListPage {
    shell: Shell,
    rows: Vec<Row>,
    may_create: Result<(), &'static str>,
}

impl ListPage {
    fn state_class(&self, state: &str) -> &'static str {
        state_class(state)
    }

    fn state_label(&self, state: &str) -> &'static str {
        state_label(state)
    }
}

/// The enabled categories mapped to a destination: `(id, name)`.
fn mapped(categories: &[crate::store::Category], id: &str) -> Vec<(String, String)> {
    categories
        .iter()
        .filter(|c| c.enabled && c.destinations.iter().any(|d| d == id))
        .map(|c| (c.id.clone(), c.name.clone()))
        .collect()
}

async fn list(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Query(flash): Query<Flash>,
) -> Response {
    let Json(views) = match api::list(State(Arc::clone(&app))).await {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let categories = app.store.categories().await.unwrap_or_default();
    let mut rows = Vec::with_capacity(views.len());
    for dest in views {
        let (dead, _) = dead_letters(&app, &dest.id).await;
        rows.push(Row {
            categories: mapped(&categories, &dest.id),
            dest,
            dead,
        });
    }
    render(&ListPage {
        shell: Shell::new(&user, "destinations", "Destinations").with_flash(flash.ok, flash.error),
        rows,
        may_create: user.may(Method::POST, DESTINATIONS),
    })
}

// ---- Create -----------------------------------------------------------------------------------

#[derive(askama::Template)]
#[template(path = "console/destinations_new.html")]
struct NewPage {
    shell: Shell,
    /// `(name, description)` of every type, when no type is chosen yet.
    choices: Vec<(&'static str, &'static str)>,
    settings: Option<SettingsView>,
    may_create: Result<(), &'static str>,
}

impl NewPage {
    fn locked(&self) -> bool {
        self.may_create.is_err()
    }
}

#[derive(Deserialize)]
struct NewQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// A suggested integration name per type: what clients put in the `integrations` object.
fn default_integration(kind: &str) -> &'static str {
    match kind {
        "webhook" => "Webhooks",
        "postgres" => "PostgreSQL",
        "object_storage" => "Amazon S3",
        "nats" => "NATS",
        "segment_forward" => "Segment",
        "file" => "File",
        _ => "",
    }
}

async fn new_page(user: ConsoleUser, Query(q): Query<NewQuery>) -> Response {
    let may_create = user.may(Method::POST, DESTINATIONS);
    let Some(name) = q.kind else {
        return render(&NewPage {
            shell: Shell::new(&user, "destinations", "Add a destination"),
            choices: types::REGISTRY
                .iter()
                .map(|t| (t.name(), t.description()))
                .collect(),
            settings: None,
            may_create,
        });
    };
    let Some(kind) = types::find(&name) else {
        return back(
            "/destinations/new",
            "error",
            &format!("There is no destination type “{name}”; choose one of these."),
        );
    };
    let common = Common {
        name: String::new(),
        integration: default_integration(kind.name()).to_owned(),
        enforce_consent: kind.enforce_consent_default(),
        enabled: true,
    };
    render(&NewPage {
        shell: Shell::new(
            &user,
            "destinations",
            format!("Add a {} destination", kind.name()),
        ),
        choices: Vec::new(),
        settings: Some(SettingsView::new(
            kind,
            &common,
            &Typed::default(),
            None,
            &[],
        )),
        may_create,
    })
}

async fn create(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    raw: axum::body::Bytes,
) -> Response {
    let (csrf, common, typed, name) = parse_settings_form(&raw);
    let caller = match user.guard(&csrf, Method::POST, DESTINATIONS) {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    let Some(kind) = types::find(&name) else {
        return back(
            "/destinations/new",
            "error",
            &format!("There is no destination type “{name}”; choose one of these."),
        );
    };
    let invalid = |errors: Vec<(String, String)>| {
        let mut response = render(&NewPage {
            shell: Shell::new(
                &user,
                "destinations",
                format!("Add a {} destination", kind.name()),
            ),
            choices: Vec::new(),
            settings: Some(SettingsView::new(kind, &common, &typed, None, &errors)),
            may_create: Ok(()),
        });
        *response.status_mut() = StatusCode::BAD_REQUEST;
        response
    };
    let settings = match build_settings(kind, &typed, None) {
        Ok(s) => s,
        Err(errors) => return invalid(errors),
    };
    let request = match body(json!({
        "name": common.name,
        "integration": common.integration,
        "type": kind.name(),
        "settings": settings,
        "enabled": common.enabled,
        "enforceConsent": common.enforce_consent,
    })) {
        Ok(b) => b,
        Err(e) => return invalid(place_error(kind, e.message)),
    };
    match api::create(State(Arc::clone(&app)), caller, ApiJson(request)).await {
        Ok((_, Json(created))) => back(
            &format!("/destinations/{}", created.id),
            "ok",
            &format!(
                "Destination “{}” created.{}",
                created.name,
                if created.enabled {
                    " Events accepted from now on are delivered to it."
                } else {
                    ""
                }
            ),
        ),
        Err(e) => invalid(place_error(kind, e.message)),
    }
}

// ---- Detail: settings, delivery, filters ------------------------------------------------------

/// A filter rule as edited.
#[derive(Clone, Default)]
struct RuleRow {
    condition: String,
    action: String,
    /// Comma-separated field paths.
    fields: String,
    error: Option<String>,
    /// The error is about the field list rather than the condition.
    error_on_fields: bool,
    /// After a test: whether the condition matched the sample event.
    matched: Option<bool>,
}

impl RuleRow {
    fn blank(&self) -> bool {
        self.condition.trim().is_empty() && self.fields.trim().is_empty()
    }

    fn to_json(&self) -> Value {
        let fields: Vec<&str> = self
            .fields
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .collect();
        json!({"if": self.condition.trim(), "action": self.action, "fields": fields})
    }
}

/// The filter actions: `(value, label)`.
const ACTIONS: &[(&str, &str)] = &[
    ("drop", "Drop the event"),
    ("keep", "Keep only matching events"),
    ("dropProperties", "Remove these fields"),
    ("keepProperties", "Keep only these properties"),
];

/// The outcome of a filter test.
struct TestOutcome {
    delivered: bool,
    /// 1-based number of the rule that dropped the event.
    dropped_by: Option<usize>,
    event: String,
}

/// A realistic event to try rules on.
const SAMPLE_EVENT: &str = r#"{
  "type": "track",
  "event": "Order Completed",
  "userId": "user-4821",
  "anonymousId": "6f1c2b9e-3a4d-4c1e-9b7a-2d5e8f0a1b3c",
  "messageId": "ajs-next-1732540000000-4c1e9b7a",
  "timestamp": "2026-11-25T10:15:00.000Z",
  "properties": {
    "orderId": "50314b8e9bcf000000000000",
    "total": 27.5,
    "currency": "EUR",
    "coupon": "WINTER10",
    "email": "jane.doe@example.com",
    "products": [{"productId": "507f1f77bcf86cd799439011", "name": "Monopoly: 3rd Edition", "price": 19, "quantity": 1}]
  },
  "context": {
    "ip": "203.0.113.7",
    "locale": "de-DE",
    "page": {"path": "/checkout/complete", "url": "https://shop.example.com/checkout/complete"},
    "library": {"name": "analytics.js", "version": "next-1.70.0"},
    "consent": {"categoryPreferences": {"Analytics": true, "Advertising": false}}
  }
}"#;

struct FiltersView {
    rows: Vec<RuleRow>,
    /// Rows differ from what is saved.
    unsaved: bool,
    error: Option<String>,
    sample: String,
    sample_error: Option<String>,
    test: Option<TestOutcome>,
}

impl FiltersView {
    fn saved(rules: &[crate::filters::Rule]) -> FiltersView {
        let rows = rules
            .iter()
            .map(|r| RuleRow {
                condition: r.condition.clone(),
                action: serde_json::to_value(r.action)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                fields: r.fields.join(", "),
                ..RuleRow::default()
            })
            .collect();
        FiltersView {
            rows,
            unsaved: false,
            error: None,
            sample: SAMPLE_EVENT.to_owned(),
            sample_error: None,
            test: None,
        }
    }
}

struct DeadRow {
    failed_at: String,
    error: String,
    message_id: String,
}

#[derive(askama::Template)]
#[template(path = "console/destinations_detail.html")]
struct DetailPage {
    shell: Shell,
    dest: DestinationView,
    categories: Vec<(String, String)>,
    dead: DeadCount,
    /// The most recent dead letters, newest first.
    recent_dead: Vec<DeadRow>,
    settings: SettingsView,
    filters: FiltersView,
    actions: &'static [(&'static str, &'static str)],
    may_change: Result<(), &'static str>,
    may_filter: Result<(), &'static str>,
    may_replay: Result<(), &'static str>,
}

impl DetailPage {
    fn locked(&self) -> bool {
        self.may_change.is_err()
    }

    fn state_class(&self, state: &str) -> &'static str {
        state_class(state)
    }

    fn state_label(&self, state: &str) -> &'static str {
        state_label(state)
    }

    fn action_selected(&self, row: &RuleRow, value: &str) -> bool {
        row.action == value
    }
}

/// The destination page; `settings` / `filters` are forms sent back with their errors.
async fn detail_page(
    app: &Arc<App>,
    user: &ConsoleUser,
    id: &str,
    settings: Option<SettingsView>,
    filters: Option<FiltersView>,
    flash: Flash,
) -> Response {
    let (Json(dest), stored) = match tokio::try_join!(
        api::get(State(Arc::clone(app)), Path(id.to_owned())),
        async { app.store.destination(id).await.map_err(ApiError::from) }
    ) {
        Ok(found) => found,
        Err(e) => return failed("/destinations", &e),
    };
    let Some(kind) = types::find(&dest.kind) else {
        return back(
            "/destinations",
            "error",
            &format!(
                "Destination “{}” has a type this server does not know ({}).",
                dest.name, dest.kind
            ),
        );
    };
    let categories = app.store.categories().await.unwrap_or_default();
    let (dead, entries) = dead_letters(app, id).await;
    let recent_dead = entries
        .iter()
        .rev()
        .take(5)
        .map(|e| DeadRow {
            failed_at: e["failedAt"].as_str().unwrap_or_default().to_owned(),
            error: e["error"].as_str().unwrap_or_default().to_owned(),
            message_id: e["messageId"].as_str().unwrap_or_default().to_owned(),
        })
        .collect();
    let status = if settings.as_ref().is_some_and(SettingsView::has_errors)
        || filters.as_ref().is_some_and(|f| {
            f.error.is_some()
                || f.sample_error.is_some()
                || f.rows.iter().any(|r| r.error.is_some())
        }) {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let mut response = render(&DetailPage {
        shell: Shell::new(user, "destinations", format!("Destination “{}”", dest.name))
            .with_flash(flash.ok, flash.error),
        categories: mapped(&categories, id),
        dead,
        recent_dead,
        settings: settings.unwrap_or_else(|| SettingsView::of(kind, &dest)),
        filters: filters.unwrap_or_else(|| FiltersView::saved(&stored.filters)),
        actions: ACTIONS,
        dest,
        may_change: user.may(Method::PATCH, DESTINATION),
        may_filter: user.may(Method::PUT, FILTERS),
        may_replay: user.may(Method::POST, REPLAY),
    });
    if response.status() == StatusCode::OK {
        *response.status_mut() = status;
    }
    response
}

fn no_flash() -> Flash {
    Flash {
        ok: None,
        error: None,
    }
}

async fn detail(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Path(id): Path<String>,
    Query(flash): Query<Flash>,
) -> Response {
    detail_page(&app, &user, &id, None, None, flash).await
}

async fn save(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Path(id): Path<String>,
    raw: axum::body::Bytes,
) -> Response {
    let (csrf, common, typed, _) = parse_settings_form(&raw);
    let caller = match user.guard(&csrf, Method::PATCH, DESTINATION) {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    let Json(dest) = match api::get(State(Arc::clone(&app)), Path(id.clone())).await {
        Ok(d) => d,
        Err(e) => return failed("/destinations", &e),
    };
    let Some(kind) = types::find(&dest.kind) else {
        return back(
            "/destinations",
            "error",
            &format!(
                "Destination “{}” has a type this server does not know.",
                dest.name
            ),
        );
    };
    let common = Common {
        enabled: dest.enabled,
        ..common
    };
    let invalid = |errors: Vec<(String, String)>| {
        let view = SettingsView::new(kind, &common, &typed, Some(&dest.settings), &errors);
        detail_page(&app, &user, &id, Some(view), None, no_flash())
    };
    let settings = match build_settings(kind, &typed, Some(&dest.settings)) {
        Ok(s) => s,
        Err(errors) => return invalid(errors).await,
    };
    let request = match body(json!({
        "name": common.name,
        "integration": common.integration,
        "settings": settings,
        "enforceConsent": common.enforce_consent,
    })) {
        Ok(b) => b,
        Err(e) => return invalid(place_error(kind, e.message)).await,
    };
    match api::patch(
        State(Arc::clone(&app)),
        caller,
        Path(id.clone()),
        ApiJson(request),
    )
    .await
    {
        Ok(Json(after)) => back(
            &format!("/destinations/{id}"),
            "ok",
            &format!(
                "Destination “{}” saved. The change applies to the next event accepted.",
                after.name
            ),
        ),
        Err(e) => invalid(place_error(kind, e.message)).await,
    }
}

async fn set_enabled(
    app: Arc<App>,
    user: ConsoleUser,
    id: String,
    csrf: &str,
    enabled: bool,
) -> Response {
    let caller = match user.guard(csrf, Method::PATCH, DESTINATION) {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    let here = format!("/destinations/{id}");
    let request = match body(json!({"enabled": enabled})) {
        Ok(b) => b,
        Err(e) => return failed(&here, &e),
    };
    match api::patch(State(app), caller, Path(id), ApiJson(request)).await {
        Ok(Json(after)) if enabled => back(
            &here,
            "ok",
            &format!(
                "Destination “{}” turned on: delivery resumes, starting with the events that waited.",
                after.name
            ),
        ),
        Ok(Json(after)) => back(
            &here,
            "ok",
            &format!(
                "Destination “{}” turned off: nothing is delivered to it, and its events wait until you turn it on again.",
                after.name
            ),
        ),
        Err(e) => failed(&here, &e),
    }
}

async fn enable(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Path(id): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    set_enabled(app, user, id, &form.csrf, true).await
}

async fn disable(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Path(id): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    set_enabled(app, user, id, &form.csrf, false).await
}

async fn delete(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Path(id): Path<String>,
    Form(form): Form<ConfirmByName>,
) -> Response {
    let caller = match user.guard(&form.csrf, Method::DELETE, DESTINATION) {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    let here = format!("/destinations/{id}");
    match app.store.destination(&id).await {
        Ok(d) => {
            if let Err(refused) = confirmed(&form.confirm_name, &d.name, &here, "destination") {
                return refused;
            }
        }
        Err(e) => return failed("/destinations", &ApiError::from(e)),
    }
    match api::delete(State(app), caller, Path(id)).await {
        Ok(_) => back(
            "/destinations",
            "ok",
            &format!(
                "Destination “{}” deleted, with the events that waited for it and its dead letters.",
                form.confirm_name
            ),
        ),
        Err(e) => failed(&here, &e),
    }
}

async fn replay(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Path(id): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    let caller = match user.guard(&form.csrf, Method::POST, REPLAY) {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    let here = format!("/destinations/{id}");
    let request = match body(json!({})) {
        Ok(b) => b,
        Err(e) => return failed(&here, &e),
    };
    match crate::admin::dead_letters::replay(State(app), caller, Path(id), ApiJson(request)).await {
        Ok(Json(answer)) => {
            let n = answer["replayed"].as_u64().unwrap_or(0);
            let message = match n {
                0 => "There were no dead letters to send again.".to_owned(),
                1 => "1 event is being delivered again.".to_owned(),
                n => format!("{n} events are being delivered again."),
            };
            back(&here, "ok", &message)
        }
        Err(e) => failed(&here, &e),
    }
}

// ---- Filters ----------------------------------------------------------------------------------

/// Redirect to a part of a page with a flash message (the query before the fragment, or the
/// browser would keep the message in the fragment).
fn back_to(path: &str, fragment: &str, kind: &str, message: &str) -> Response {
    axum::response::Redirect::to(&format!(
        "{path}?{kind}={}#{fragment}",
        super::auth::urlencode(&super::page::sentence(message))
    ))
    .into_response()
}

/// The filters form: rows of `if` / `action` / `fields` in order, the sample event, and the
/// button pressed (`op`: save, test, add, remove:N, up:N, down:N).
struct FiltersForm {
    csrf: String,
    op: String,
    rows: Vec<RuleRow>,
    sample: String,
}

fn parse_filters_form(raw: &[u8]) -> FiltersForm {
    let mut form = FiltersForm {
        csrf: String::new(),
        op: String::new(),
        rows: Vec::new(),
        sample: String::new(),
    };
    let (mut conditions, mut actions, mut fields) = (Vec::new(), Vec::new(), Vec::new());
    for (key, value) in form_urlencoded::parse(raw) {
        match key.as_ref() {
            "_csrf" => form.csrf = value.into_owned(),
            "op" => form.op = value.into_owned(),
            "sample" => form.sample = value.into_owned(),
            "if" => conditions.push(value.into_owned()),
            "action" => actions.push(value.into_owned()),
            "fields" => fields.push(value.into_owned()),
            _ => {}
        }
    }
    for (i, condition) in conditions.into_iter().enumerate() {
        form.rows.push(RuleRow {
            condition,
            action: actions.get(i).cloned().unwrap_or_else(|| "drop".into()),
            fields: fields.get(i).cloned().unwrap_or_default(),
            ..RuleRow::default()
        });
    }
    form
}

/// The rules to send (blank rows left out), and for each the row it came from.
fn rules_of(rows: &[RuleRow]) -> (Vec<Value>, Vec<usize>) {
    rows.iter()
        .enumerate()
        .filter(|(_, r)| !r.blank())
        .map(|(i, r)| (r.to_json(), i))
        .unzip()
}

/// Show a rule error (`rule N: …`, N counting the rules sent) next to its row.
fn place_rule_error(rows: &mut [RuleRow], sent: &[usize], message: String) -> Option<String> {
    let index = message
        .strip_prefix("rule ")
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse::<usize>().ok());
    match index
        .and_then(|i| sent.get(i))
        .and_then(|row| rows.get_mut(*row))
    {
        Some(row) => {
            let text = message
                .split_once(": ")
                .map_or(message.as_str(), |(_, m)| m)
                .to_owned();
            row.error_on_fields = !text.starts_with("invalid condition");
            row.error = Some(text);
            None
        }
        None => Some(message),
    }
}

/// The 1-based number of the rule that dropped the event: the first matching `drop`, or the
/// first `keep` that did not match (the order the filters module applies them in).
fn dropped_by(rows: &[RuleRow], sent: &[usize], matched: &[bool]) -> Option<usize> {
    sent.iter()
        .zip(matched)
        .position(|(row, m)| match rows[*row].action.as_str() {
            "drop" => *m,
            "keep" => !*m,
            _ => false,
        })
        .map(|i| sent[i] + 1)
}

async fn filters(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Path(id): Path<String>,
    raw: axum::body::Bytes,
) -> Response {
    let mut form = parse_filters_form(&raw);
    // Saving changes the destination; everything else only edits or tries the rules here.
    let route = if form.op == "save" {
        (Method::PUT, FILTERS)
    } else {
        (Method::POST, FILTER_TEST)
    };
    let caller = match user.guard(&form.csrf, route.0, route.1) {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    let here = format!("/destinations/{id}");
    let sample = if form.sample.trim().is_empty() {
        SAMPLE_EVENT.to_owned()
    } else {
        std::mem::take(&mut form.sample)
    };
    let mut view = FiltersView {
        rows: form.rows,
        unsaved: true,
        error: None,
        sample,
        sample_error: None,
        test: None,
    };
    let (op, at) = form
        .op
        .split_once(':')
        .map_or((form.op.as_str(), None), |(op, n)| {
            (op, n.parse::<usize>().ok())
        });
    match (op, at) {
        ("add", _) => view.rows.push(RuleRow {
            action: "drop".into(),
            ..RuleRow::default()
        }),
        ("remove", Some(i)) if i < view.rows.len() => {
            view.rows.remove(i);
        }
        ("up", Some(i)) if i > 0 && i < view.rows.len() => view.rows.swap(i - 1, i),
        ("down", Some(i)) if i + 1 < view.rows.len() => view.rows.swap(i, i + 1),
        ("test", _) => {
            let (rules, sent) = rules_of(&view.rows);
            match serde_json::from_str::<Value>(&view.sample) {
                Err(e) => {
                    view.sample_error = Some(format!("The sample event is not valid JSON: {e}."))
                }
                Ok(event) => {
                    let result = match body(json!({"rules": rules, "event": event})) {
                        Ok(request) => crate::admin::filters::test(ApiJson(request))
                            .await
                            .map(|Json(r)| r),
                        Err(e) => Err(e),
                    };
                    match result {
                        Ok(result) => {
                            for (row, m) in sent.iter().zip(&result.matched) {
                                view.rows[*row].matched = Some(*m);
                            }
                            view.test = Some(TestOutcome {
                                delivered: result.delivered,
                                dropped_by: if result.delivered {
                                    None
                                } else {
                                    dropped_by(&view.rows, &sent, &result.matched)
                                },
                                event: result
                                    .event
                                    .as_ref()
                                    .map(|e| serde_json::to_string_pretty(e).unwrap_or_default())
                                    .unwrap_or_default(),
                            });
                        }
                        Err(e) => view.error = place_rule_error(&mut view.rows, &sent, e.message),
                    }
                }
            }
        }
        ("save", _) => {
            let (rules, sent) = rules_of(&view.rows);
            let result = match body(json!({"rules": rules})) {
                Ok(request) => {
                    crate::admin::filters::put(
                        State(Arc::clone(&app)),
                        caller,
                        Path(id.clone()),
                        ApiJson(request),
                    )
                    .await
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(Json(saved)) => {
                    let n = saved.rules.len();
                    let message = match n {
                        0 => "Filters removed: every event the consent rules allow is delivered."
                            .to_owned(),
                        1 => {
                            "1 filter rule saved. It applies to the next event accepted.".to_owned()
                        }
                        n => format!(
                            "{n} filter rules saved. They apply to the next event accepted."
                        ),
                    };
                    return back_to(&here, "filters-heading", "ok", &message);
                }
                Err(e) if e.status == StatusCode::BAD_REQUEST => {
                    view.error = place_rule_error(&mut view.rows, &sent, e.message)
                }
                Err(e) => return failed(&here, &e),
            }
        }
        _ => {}
    }
    // The banner says "not saved yet" only when the rows differ from the saved rules.
    if let Ok(saved) = app.store.destination(&id).await {
        let (rules, _) = rules_of(&view.rows);
        let typed: Option<Vec<crate::filters::Rule>> =
            serde_json::from_value(Value::Array(rules)).ok();
        view.unsaved = typed.as_ref() != Some(&saved.filters);
    }
    detail_page(&app, &user, &id, None, Some(view), no_flash()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> types::BuildContext {
        types::BuildContext {
            files_dir: std::env::temp_dir(),
            allowed_file_dirs: Vec::new(),
        }
    }

    fn typed(pairs: &[(&Field, &str)]) -> Typed {
        Typed {
            values: pairs
                .iter()
                .map(|(f, v)| (form_name(f), (*v).to_owned()))
                .collect(),
            clear: Vec::new(),
        }
    }

    /// Every form field exists in its type's settings: the examples of each group, filled in,
    /// pass the type's own validation (which refuses unknown fields).
    #[test]
    fn forms_match_the_types() {
        for (name, fields) in FORMS {
            let kind = types::find(name)
                .unwrap_or_else(|| panic!("FORMS has {name}, which is not a type"));
            let groups: Vec<Option<&str>> = fields
                .iter()
                .map(|f| f.group)
                .filter(Option::is_some)
                .chain([None])
                .collect();
            for group in groups {
                let chosen: Vec<(&Field, &str)> = fields
                    .iter()
                    .filter(|f| f.group.is_none() || f.group == group)
                    .map(|f| (f, f.example))
                    .collect();
                if group.is_none() && fields.iter().any(|f| f.group.is_some()) {
                    continue;
                }
                let settings = build_settings(kind, &typed(&chosen), None)
                    .unwrap_or_else(|e| panic!("{name}: {e:?}"));
                kind.validate(&settings, &ctx())
                    .unwrap_or_else(|e| panic!("{name} {group:?}: {e}\n{settings}"));
            }
            for f in *fields {
                if f.pointer.is_empty() {
                    continue;
                }
                assert!(
                    f.example.len() < 80,
                    "{name}{}: keep examples short",
                    f.pointer
                );
            }
        }
    }

    /// Every setting of every type has a field: the settings a type fills in (defaults
    /// included) are all reachable from its form.
    #[test]
    fn forms_cover_every_setting() {
        fn leaves(value: &Value, at: String, out: &mut Vec<String>) {
            match value {
                Value::Object(map) if !map.is_empty() => {
                    for (k, v) in map {
                        leaves(v, format!("{at}/{k}"), out);
                    }
                }
                _ => out.push(at),
            }
        }
        for (name, fields) in FORMS {
            let kind = types::find(name).unwrap();
            let groups: Vec<Option<&str>> = fields.iter().map(|f| f.group).collect();
            for group in groups.iter().filter(|g| g.is_some()).copied().chain([None]) {
                if group.is_none() && groups.iter().any(Option::is_some) {
                    continue;
                }
                let chosen: Vec<(&Field, &str)> = fields
                    .iter()
                    .filter(|f| f.group.is_none() || f.group == group)
                    .map(|f| (f, f.example))
                    .collect();
                let settings = build_settings(kind, &typed(&chosen), None).unwrap();
                let normalized = kind.validate(&settings, &ctx()).unwrap();
                let mut found = Vec::new();
                leaves(&normalized, String::new(), &mut found);
                for pointer in found {
                    assert!(
                        fields.iter().any(|f| f.pointer == pointer
                            || (f.input == Input::Json
                                && pointer.starts_with(&format!("{}/", f.pointer)))),
                        "{name}: the setting {pointer} has no field in the form"
                    );
                }
            }
        }
    }

    #[test]
    fn empty_secrets_keep_the_stored_value_unless_removed() {
        let kind = types::find("webhook").unwrap();
        let fields = form_of("webhook");
        let url = &fields[0];
        let secret = fields.iter().find(|f| f.pointer == "/secret").unwrap();
        let stored = json!({"url": "http://a", "secret": REDACTED, "headers": {}});
        let kept = build_settings(
            kind,
            &typed(&[(url, "http://b"), (secret, "")]),
            Some(&stored),
        )
        .unwrap();
        assert_eq!(kept, json!({"url": "http://b", "secret": REDACTED}));
        let mut removing = typed(&[(url, "http://b"), (secret, "")]);
        removing.clear.push("/secret".into());
        assert_eq!(
            build_settings(kind, &removing, Some(&stored)).unwrap(),
            json!({"url": "http://b"})
        );
        let replaced = build_settings(
            kind,
            &typed(&[(url, "http://b"), (secret, " new ")]),
            Some(&stored),
        )
        .unwrap();
        assert_eq!(replaced["secret"], " new ");
        // Creating: nothing stored, nothing kept.
        assert_eq!(
            build_settings(kind, &typed(&[(url, "http://b")]), None).unwrap(),
            json!({"url": "http://b"})
        );
    }

    #[test]
    fn a_kept_secret_does_not_bring_back_its_group() {
        let kind = types::find("object_storage").unwrap();
        let fields = form_of("object_storage");
        let local = fields.iter().find(|f| f.pointer == "/local/path").unwrap();
        let stored = json!({"s3": {"bucket": "b", "secretAccessKey": REDACTED, "accessKeyId": "k"}, "batchSize": 1000});
        assert_eq!(
            build_settings(kind, &typed(&[(local, "archive")]), Some(&stored)).unwrap(),
            json!({"local": {"path": "archive"}})
        );
        let bucket = fields.iter().find(|f| f.pointer == "/s3/bucket").unwrap();
        let kept = build_settings(kind, &typed(&[(bucket, "b")]), Some(&stored)).unwrap();
        assert_eq!(
            kept,
            json!({"s3": {"bucket": "b", "secretAccessKey": REDACTED}})
        );
    }

    #[test]
    fn bad_numbers_and_json_are_named() {
        let kind = types::find("webhook").unwrap();
        let fields = form_of("webhook");
        let batch = fields.iter().find(|f| f.pointer == "/batchSize").unwrap();
        let headers = fields.iter().find(|f| f.pointer == "/headers").unwrap();
        let errors =
            build_settings(kind, &typed(&[(batch, "ten"), (headers, "{oops")]), None).unwrap_err();
        let pointers: Vec<&str> = errors.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(pointers, ["/headers", "/batchSize"]);
    }

    #[test]
    fn api_errors_find_their_field() {
        let cases = [
            (
                "webhook",
                "url \"nope\" is not a valid URL: relative URL without a base",
                "/url",
            ),
            (
                "webhook",
                "batchSize must be between 1 and 1000",
                "/batchSize",
            ),
            (
                "webhook",
                "header name \"a b\" is not a valid HTTP header name",
                "/headers",
            ),
            (
                "webhook",
                "invalid settings for a webhook destination: missing field `url`",
                "/url",
            ),
            (
                "object_storage",
                "s3.bucket \"A\" is not a valid bucket name",
                "/s3/bucket",
            ),
            (
                "object_storage",
                "set both s3.accessKeyId and s3.secretAccessKey, or neither",
                "/s3/accessKeyId",
            ),
            (
                "object_storage",
                "set exactly one of local ({\"path\": …}) and s3 ({\"bucket\": …, …})",
                "form",
            ),
            ("segment_forward", "writeKey must not be empty", "/writeKey"),
            (
                "webhook",
                "destination name must be 1 to 100 characters long",
                "name",
            ),
            (
                "webhook",
                "integration cannot be \"All\": that key switches every destination",
                "integration",
            ),
        ];
        for (kind, message, expected) in cases {
            let placed = place_error(types::find(kind).unwrap(), message.into());
            assert_eq!(placed[0].0, expected, "{message}");
        }
    }

    #[test]
    fn rule_errors_go_to_their_row() {
        let mut rows = vec![
            RuleRow {
                condition: "event = \"a\"".into(),
                action: "drop".into(),
                ..RuleRow::default()
            },
            RuleRow::default(),
            RuleRow {
                condition: "properties.total >".into(),
                action: "drop".into(),
                ..RuleRow::default()
            },
        ];
        let (rules, sent) = rules_of(&rows);
        assert_eq!((rules.len(), sent.clone()), (2, vec![0, 2]));
        let left = place_rule_error(
            &mut rows,
            &sent,
            "rule 1: invalid condition \"properties.total >\" at column 19: expected a value"
                .into(),
        );
        assert_eq!(left, None);
        assert!(
            rows[2]
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with("invalid condition"))
        );
        assert!(!rows[2].error_on_fields);
        assert_eq!(
            place_rule_error(&mut rows, &sent, "something else".into()).as_deref(),
            Some("something else")
        );
    }

    #[test]
    fn the_deciding_rule_is_the_first_drop() {
        let row = |action: &str| RuleRow {
            condition: "x".into(),
            action: action.into(),
            ..RuleRow::default()
        };
        let rows = vec![row("dropProperties"), row("keep"), row("drop")];
        let sent = vec![0, 1, 2];
        assert_eq!(dropped_by(&rows, &sent, &[true, true, true]), Some(3));
        assert_eq!(dropped_by(&rows, &sent, &[true, false, true]), Some(2));
        assert_eq!(dropped_by(&rows, &sent, &[true, true, false]), None);
    }

    #[test]
    fn typed_secrets_are_never_shown_back() {
        let webhook = types::find("webhook").unwrap();
        let headers = form_of("webhook")
            .iter()
            .find(|f| f.pointer == "/headers")
            .unwrap();
        let shown = mask_typed(
            webhook,
            headers,
            r#"{"Authorization": "Bearer abc", "X-Empty": null}"#,
        );
        assert_eq!(
            serde_json::from_str::<Value>(&shown).unwrap(),
            json!({"Authorization": REDACTED, "X-Empty": null})
        );
        assert_eq!(
            mask_typed(webhook, headers, "{\"Authorization\": \"Bearer abc"),
            ""
        );
        let url = &form_of("webhook")[0];
        assert_eq!(
            mask_typed(webhook, url, "https://u:p@hooks.example.com"),
            "https://u:p@hooks.example.com"
        );
        let postgres = types::find("postgres").unwrap();
        let db = &form_of("postgres")[0];
        assert_eq!(
            mask_typed(postgres, db, "postgres://u:hunter2@db/x"),
            format!("postgres://u:{REDACTED}@db/x")
        );
        assert_eq!(
            mask_typed(postgres, db, "postgres://db/x"),
            "postgres://db/x"
        );
    }

    #[test]
    fn placeholders_must_stand_for_a_saved_secret() {
        let webhook = types::find("webhook").unwrap();
        let fields = form_of("webhook");
        let url = &fields[0];
        let headers = fields.iter().find(|f| f.pointer == "/headers").unwrap();
        let masked = format!("{{\"Authorization\": \"{REDACTED}\"}}");
        // Creating: there is nothing for ******** to stand for.
        let errors = build_settings(
            webhook,
            &typed(&[(url, "http://a"), (headers, &masked)]),
            None,
        )
        .unwrap_err();
        assert_eq!(errors[0].0, "/headers");
        assert!(errors[0].1.contains("Authorization"), "{}", errors[0].1);
        // Editing: a saved header is kept; a new one must be typed.
        let stored = json!({"url": "http://a", "headers": {"Authorization": REDACTED}});
        assert!(
            build_settings(
                webhook,
                &typed(&[(url, "http://a"), (headers, &masked)]),
                Some(&stored)
            )
            .is_ok()
        );
        let added = format!("{{\"Authorization\": \"{REDACTED}\", \"X-Key\": \"{REDACTED}\"}}");
        let errors = build_settings(
            webhook,
            &typed(&[(url, "http://a"), (headers, &added)]),
            Some(&stored),
        )
        .unwrap_err();
        assert!(
            errors[0].1.contains("X-Key") && !errors[0].1.contains("Authorization"),
            "{}",
            errors[0].1
        );
        // A URL password: kept when one is saved, refused otherwise.
        let postgres = types::find("postgres").unwrap();
        let db = &form_of("postgres")[0];
        let masked_url = format!("postgres://u:{REDACTED}@db/x");
        assert_eq!(
            build_settings(postgres, &typed(&[(db, &masked_url)]), None).unwrap_err()[0].0,
            "/url"
        );
        let saved = json!({"url": format!("postgres://u:{REDACTED}@db/x")});
        assert!(build_settings(postgres, &typed(&[(db, &masked_url)]), Some(&saved)).is_ok());
        // A secret field typed as ******** with nothing saved.
        let secret = fields.iter().find(|f| f.pointer == "/secret").unwrap();
        assert_eq!(
            build_settings(
                webhook,
                &typed(&[(url, "http://a"), (secret, REDACTED)]),
                None
            )
            .unwrap_err()[0]
                .0,
            "/secret"
        );
    }

    #[test]
    fn the_sample_event_is_json() {
        let event: Value = serde_json::from_str(SAMPLE_EVENT).unwrap();
        assert_eq!(event["type"], "track");
    }
}
