//! Settings of the `nats` destination, and the subject template.

use serde::{Deserialize, Serialize};

/// Largest `batchSize`.
pub const MAX_BATCH_SIZE: usize = 10_000;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NatsConfig {
    /// The server (default `nats://127.0.0.1:4222`). Credentials may be in the URL
    /// (`nats://user:password@host:4222`); the password is a secret, shown as `********`.
    #[serde(default = "default_url")]
    pub url: String,
    /// Authentication token, if the server wants one (a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Subject each event is published to (default `events.{type}`). Placeholders: `{type}`
    /// (`track`, `identify`, …) and `{event}` (a track's event name as a subject token,
    /// `Order Completed` → `order_completed`; the type for other events).
    #[serde(default = "default_subject")]
    pub subject: String,
    /// A JetStream stream: publish with acknowledgements, the messageId as `Nats-Msg-Id` (the
    /// stream drops duplicates within its duplicate window). Created, capturing the subjects of
    /// the template, if it does not exist; an existing stream must capture them. Without it,
    /// events go to core NATS: delivered once the server has them, kept by no one unless a
    /// subscriber is listening.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// Events per batch (default 100).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Connection, flush and acknowledgement timeout in milliseconds (default 10 000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_url() -> String {
    "nats://127.0.0.1:4222".into()
}

fn default_subject() -> String {
    "events.{type}".into()
}

fn default_batch_size() -> usize {
    100
}

fn default_timeout_ms() -> u64 {
    10_000
}

impl NatsConfig {
    pub fn validate(&self) -> Result<(), String> {
        let scheme_ok = ["nats://", "tls://", "ws://", "wss://"]
            .iter()
            .any(|s| self.url.starts_with(s));
        if !scheme_ok {
            return Err(
                "url must start with nats:// or tls:// (e.g. nats://127.0.0.1:4222)".into(),
            );
        }
        let addr = self
            .url
            .parse::<async_nats::ServerAddr>()
            .map_err(|e| format!("url is not a valid NATS server address: {e}"))?;
        if addr.host().is_empty() {
            return Err("url has no host (e.g. nats://127.0.0.1:4222)".into());
        }
        // `nats://<token>@host` would show the token on read (only passwords are redacted).
        if let Some(userinfo) = self.url.split_once("://").and_then(|(_, rest)| {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            authority.rsplit_once('@').map(|(userinfo, _)| userinfo)
        }) && !userinfo.contains(':')
        {
            return Err(
                "url holds a token (nats://<token>@host); put it in `token` instead, which is kept secret"
                    .into(),
            );
        }
        SubjectTemplate::parse(&self.subject)?;
        if let Some(stream) = &self.stream {
            let valid = !stream.is_empty()
                && stream.len() <= 64
                && stream
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
            if !valid {
                return Err(format!(
                    "stream {stream:?} is not a valid stream name (1 to 64 letters, digits, '-' or '_')"
                ));
            }
        }
        if self.token.as_deref() == Some("") {
            return Err("token must not be empty; omit it to connect without one".into());
        }
        if !(1..=MAX_BATCH_SIZE).contains(&self.batch_size) {
            return Err(format!("batchSize must be between 1 and {MAX_BATCH_SIZE}"));
        }
        if !(100..=300_000).contains(&self.timeout_ms) {
            return Err("timeoutMs must be between 100 and 300000".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Type,
    Event,
}

/// A parsed subject template such as `events.{type}.{event}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectTemplate {
    pieces: Vec<Piece>,
}

impl SubjectTemplate {
    pub fn parse(template: &str) -> Result<SubjectTemplate, String> {
        let mut pieces = Vec::new();
        let mut rest = template;
        while !rest.is_empty() {
            match rest.find(['{', '}']) {
                None => {
                    pieces.push(Piece::Text(rest.to_owned()));
                    rest = "";
                }
                Some(i) if rest[i..].starts_with('}') => {
                    return Err(format!("subject {template:?} has a '}}' without '{{'"));
                }
                Some(i) => {
                    if i > 0 {
                        pieces.push(Piece::Text(rest[..i].to_owned()));
                    }
                    let Some(end) = rest[i..].find('}') else {
                        return Err(format!("subject {template:?} has a '{{' without '}}'"));
                    };
                    pieces.push(match &rest[i + 1..i + end] {
                        "type" => Piece::Type,
                        "event" => Piece::Event,
                        other => {
                            return Err(format!(
                                "subject {template:?}: unknown placeholder {{{other}}}; use {{type}} or {{event}}"
                            ));
                        }
                    });
                    rest = &rest[i + end + 1..];
                }
            }
        }
        let parsed = SubjectTemplate { pieces };
        let sample = parsed.render("track", "order_completed");
        if let Err(why) = check_subject(&sample) {
            return Err(format!(
                "subject {template:?} is not a valid NATS subject: {why}"
            ));
        }
        Ok(parsed)
    }

    /// The subject for an event; `event` must already be a token (see `event_token`).
    pub fn render(&self, kind: &str, event: &str) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Type => out.push_str(kind),
                Piece::Event => out.push_str(event),
            }
        }
        out
    }

    /// The subjects the template can produce, as a NATS filter: every token holding a
    /// placeholder becomes `*` (`events.{type}` → `events.*`).
    pub fn filter(&self) -> String {
        // Placeholders render as one token, so mark them and replace their tokens.
        let marked = self.render("\u{1}", "\u{1}");
        marked
            .split('.')
            .map(|token| if token.contains('\u{1}') { "*" } else { token })
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// A subject we may publish to: non-empty tokens, no whitespace, no wildcards.
pub fn check_subject(subject: &str) -> Result<(), String> {
    if subject.is_empty() {
        return Err("it is empty".into());
    }
    if subject.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("it contains whitespace".into());
    }
    if subject.contains(['*', '>']) {
        return Err("it contains a wildcard ('*' or '>')".into());
    }
    if subject.split('.').any(str::is_empty) {
        return Err("it has an empty token (a leading, trailing or double '.')".into());
    }
    Ok(())
}

/// A track event's name as one subject token: `Order Completed` → `order_completed`.
pub fn event_token(name: &str) -> String {
    let token = crate::destinations::postgres::rows::snake_case(name);
    if token.is_empty() { "_".into() } else { token }
}

/// Whether a stream subject filter captures every subject matching `ours`.
pub fn covers(filter: &str, ours: &str) -> bool {
    let filter: Vec<&str> = filter.split('.').collect();
    let ours: Vec<&str> = ours.split('.').collect();
    for (i, token) in filter.iter().enumerate() {
        if *token == ">" {
            return ours.len() > i;
        }
        let Some(mine) = ours.get(i) else {
            return false;
        };
        if *mine == ">" {
            return false;
        }
        if *token == "*" {
            continue;
        }
        if *mine == "*" || token != mine {
            return false;
        }
    }
    filter.len() == ours.len()
}
