//! A small client for the admin API (`/api/v1`), for the command line.
//!
//! It speaks the API's conventions (bearer token, JSON bodies, errors as `{"code", "message"}`)
//! and turns every failure into a [`ClientError`] whose message is the server's own, followed by
//! a `hint:` line that says what to try next (check the token, start the server, …). The
//! response types mirror the JSON the admin handlers write; they ignore fields they do not know,
//! so a newer server does not break an older CLI.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::consent::{MissingConsentPolicy, MultiCategoryRule};

/// How long one admin request may take before the CLI gives up.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why an admin API call failed. The `Display` text is meant for a person at a terminal.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "no API token given\nhint: pass --token or set SLUICE_TOKEN (the owner token is printed when `sluice serve` first starts, or set with SLUICE_BOOTSTRAP_OWNER_TOKEN)"
    )]
    NoToken,
    #[error(
        "--url {url:?} is not a usable URL: {detail}\nhint: give the server's base URL, for example http://127.0.0.1:8080"
    )]
    BadUrl { url: String, detail: String },
    #[error(
        "cannot reach Sluice at {url}: {detail}\nhint: is `sluice serve` running at {url}? Point --url or SLUICE_URL at it."
    )]
    Unreachable { url: String, detail: String },
    #[error("{message} (HTTP {status}, {code}){}", hint_line(*status, code))]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error(
        "{method} {url} answered HTTP {status} with a body that is not Sluice's JSON: {detail}\nhint: is --url / SLUICE_URL the base URL of a Sluice server?"
    )]
    NotSluice {
        method: Method,
        url: String,
        status: u16,
        detail: String,
    },
}

/// The `hint:` line for an error answer, or nothing when the server's message says it all.
fn hint_line(status: u16, code: &str) -> String {
    let hint = match status {
        401 => "check --token / SLUICE_TOKEN: it must be a live API token of this server",
        403 => {
            "your token's role does not allow this; use an owner's token (members may manage sources and destinations)"
        }
        404 => "check the id; the `list` commands show what exists",
        // 409s (a taken name, a connection still in use, the last owner) say what to do.
        429 => "the server is rate-limiting; wait a moment and try again",
        // A warehouse or destination the server talks to failed, not the server.
        502 | 504 => return String::new(),
        500..=599 => "the server failed; its log says why",
        _ if code == "invalid_body" => "see `sluice <command> --help` for the expected arguments",
        _ => return String::new(),
    };
    format!("\nhint: {hint}")
}

/// An admin API client bound to one server and token.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    /// A client for the server at `url` (its base URL, e.g. `http://127.0.0.1:8080`).
    pub fn new(url: &str, token: Option<&str>) -> Result<Client, ClientError> {
        let token = token
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(ClientError::NoToken)?
            .to_owned();
        let base = url.trim().trim_end_matches('/').to_owned();
        let parsed = reqwest::Url::parse(&base).map_err(|e| ClientError::BadUrl {
            url: url.to_owned(),
            detail: e.to_string(),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ClientError::BadUrl {
                url: url.to_owned(),
                detail: "it must start with http:// or https://".into(),
            });
        }
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("sluice-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::BadUrl {
                url: url.to_owned(),
                detail: format!("cannot build an HTTP client: {e}"),
            })?;
        Ok(Client { http, base, token })
    }

    /// The server's base URL, as given.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Call `method path` with an optional JSON body; `None` for an empty answer (204).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| ClientError::Unreachable {
            url: self.base.clone(),
            detail: describe(&e),
        })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ClientError::Unreachable {
                url: self.base.clone(),
                detail: format!("the answer was cut short: {}", describe(&e)),
            })?;
        let not_sluice = |detail: String| ClientError::NotSluice {
            method: method.clone(),
            url: url.clone(),
            status: status.as_u16(),
            detail,
        };
        if status.is_success() {
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(None);
            }
            return serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| not_sluice(e.to_string()));
        }
        #[derive(Deserialize)]
        struct ErrorBody {
            code: String,
            message: String,
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(e) => Err(ClientError::Api {
                status: status.as_u16(),
                code: e.code,
                message: e.message,
            }),
            Err(_) => Err(not_sluice(snippet(&bytes, status))),
        }
    }

    /// `GET` and decode.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let value = self.call(Method::GET, path, None).await?;
        self.decode(Method::GET, path, value)
    }

    /// `GET` the raw JSON (for `--json` output, which shows every field the server sent).
    pub async fn get_value(&self, path: &str) -> Result<Value, ClientError> {
        Ok(self
            .call(Method::GET, path, None)
            .await?
            .unwrap_or(Value::Null))
    }

    /// `POST` a JSON body and return the raw JSON answer.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        Ok(self
            .call(Method::POST, path, Some(body))
            .await?
            .unwrap_or(Value::Null))
    }

    /// `PATCH` a JSON body and return the raw JSON answer.
    pub async fn patch(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        Ok(self
            .call(Method::PATCH, path, Some(body))
            .await?
            .unwrap_or(Value::Null))
    }

    /// `DELETE`.
    pub async fn delete(&self, path: &str) -> Result<(), ClientError> {
        self.call(Method::DELETE, path, None).await.map(|_| ())
    }

    /// Decode an answer into one of the response types.
    pub fn decode<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        value: Option<Value>,
    ) -> Result<T, ClientError> {
        serde_json::from_value(value.unwrap_or(Value::Null)).map_err(|e| ClientError::NotSluice {
            method,
            url: format!("{}{path}", self.base),
            status: 200,
            detail: format!("unexpected shape: {e}"),
        })
    }
}

/// A reqwest error in words: for a failed connection its root cause (e.g. "Connection
/// refused"), otherwise the error with its causes.
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return format!("no answer within {} s", REQUEST_TIMEOUT.as_secs());
    }
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    if e.is_connect()
        && let Some(root) = causes.last()
    {
        return root.clone();
    }
    let mut text = e.to_string();
    for cause in causes {
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// The start of a non-JSON error body, for messages.
fn snippet(bytes: &[u8], status: StatusCode) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.is_empty() {
        return status.canonical_reason().unwrap_or("no body").to_owned();
    }
    text.chars().take(200).collect()
}

/// Percent-encode one path segment or query value.
pub fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `GET /api/v1/workspace`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Workspace {
    pub missing_consent_policy: MissingConsentPolicy,
    pub multi_category_rule: MultiCategoryRule,
    pub dedup_window_hours: u32,
}

/// A source as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub write_key: String,
    pub enabled: bool,
    #[serde(default)]
    pub rate_limit_per_second: Option<u32>,
    #[serde(default)]
    pub missing_consent_policy: Option<MissingConsentPolicy>,
    #[serde(default)]
    pub created_at: String,
}

/// A destination as the admin API shows it (secret settings are `********`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Destination {
    pub id: String,
    pub name: String,
    pub integration: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub settings: Value,
    pub enabled: bool,
    pub enforce_consent: bool,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub status: Option<DeliveryStatus>,
}

/// How a destination's delivery is doing.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryStatus {
    pub state: String,
    #[serde(default)]
    pub last_error: Option<String>,
}

/// A consent category; `destinations` are destination ids.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Category {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    #[serde(default)]
    pub destinations: Vec<String>,
    #[serde(default)]
    pub created_at: String,
}

/// A user of the admin API and console.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: String,
    #[serde(default)]
    pub has_password: bool,
    #[serde(default)]
    pub created_at: String,
}

/// An API token; `token` is present only in the answer to its creation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Token {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub last_used_at: Option<String>,
    #[serde(default)]
    pub revoked_at: Option<String>,
    #[serde(default)]
    pub token: Option<String>,
}

/// One entry of the audit trail.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    pub actor: String,
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub resource_type: String,
    #[serde(default)]
    pub resource_id: String,
}

/// A page of `GET /api/v1/audit` (newest first).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    pub entries: Vec<Value>,
    #[serde(default)]
    pub next_cursor: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_a_hint_by_status() {
        let e = ClientError::Api {
            status: 401,
            code: "invalid_token".into(),
            message: "this token is unknown or revoked".into(),
        };
        let text = e.to_string();
        assert!(text.starts_with("this token is unknown or revoked (HTTP 401, invalid_token)"));
        assert!(
            text.contains("hint: check --token / SLUICE_TOKEN"),
            "{text}"
        );
        let e = ClientError::Api {
            status: 400,
            code: "invalid".into(),
            message: "bad".into(),
        };
        assert_eq!(e.to_string(), "bad (HTTP 400, invalid)");
    }

    #[test]
    fn urls_are_checked() {
        assert!(matches!(
            Client::new("127.0.0.1:8080", Some("t")),
            Err(ClientError::BadUrl { .. })
        ));
        assert!(matches!(
            Client::new("http://127.0.0.1:8080", None),
            Err(ClientError::NoToken)
        ));
        let c = Client::new("http://127.0.0.1:8080/", Some("t")).unwrap();
        assert_eq!(c.base_url(), "http://127.0.0.1:8080");
    }

    #[test]
    fn encoding() {
        assert_eq!(encode("C0004"), "C0004");
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }
}
