//! Validation and normalisation of one Segment event (SPEC §2).
//!
//! Input is an event's top-level object borrowed from the request body; output is the
//! normalised event as JSON bytes (what destinations receive) plus the few parsed facts the
//! pipeline needs (ids, type, the consent and integrations views). Validation errors carry
//! Segment's discard codes.
//!
//! Normalisation, in order:
//! * batch-level `context` and `integrations` are merged into the item (the item wins, key by
//!   key at the top level of each object);
//! * `messageId` is kept (at most 100 characters) or assigned a UUID;
//! * `receivedAt` is the server time of the request;
//! * a client `timestamp` is kept as `originalTimestamp`, and when `sentAt` is known (on the
//!   item or the batch) `timestamp = receivedAt − (sentAt − originalTimestamp)` corrects the
//!   device clock's skew; without a client timestamp, `timestamp = receivedAt`;
//! * `context.ip` is set from the peer address unless the client sent one;
//! * `writeKey` is removed, so destinations never see a source's key.

use std::borrow::Cow;
use std::net::IpAddr;

use serde_json::value::RawValue;

use super::wire::{ObjectWriter, RawObject, is_object, raw_str};
use crate::clock;
use crate::consent::{self, ConsentSignal, EventFacts, Integrations};

/// Longest accepted `messageId` (Segment's limit).
pub const MAX_MESSAGE_ID_CHARS: usize = 100;

/// The six Segment call types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    Track,
    Identify,
    Page,
    Screen,
    Group,
    Alias,
}

impl EventType {
    pub fn parse(s: &str) -> Option<EventType> {
        Some(match s {
            "track" => EventType::Track,
            "identify" => EventType::Identify,
            "page" => EventType::Page,
            "screen" => EventType::Screen,
            "group" => EventType::Group,
            "alias" => EventType::Alias,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Track => "track",
            EventType::Identify => "identify",
            EventType::Page => "page",
            EventType::Screen => "screen",
            EventType::Group => "group",
            EventType::Alias => "alias",
        }
    }
}

/// Why an event was rejected at ingest: a Segment discard code and a message that says what to
/// fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: &'static str,
    pub message: Cow<'static, str>,
}

impl Rejection {
    fn new(code: &'static str, message: impl Into<Cow<'static, str>>) -> Rejection {
        Rejection {
            code,
            message: message.into(),
        }
    }
}

/// Request-level values every event of the request shares.
pub struct RequestContext<'a> {
    /// Server time of the request, Unix ms.
    pub received_at: i64,
    /// The client address, after trusted-proxy resolution.
    pub ip: Option<IpAddr>,
    /// Batch-level `context`, `integrations` and `sentAt`, if any.
    pub batch_context: Option<RawObject<'a>>,
    pub batch_integrations: Option<RawObject<'a>>,
    pub batch_sent_at: Option<&'a RawValue>,
}

/// A valid event, normalised.
#[derive(Debug)]
pub struct Normalized<'a> {
    pub kind: EventType,
    pub message_id: String,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    /// The `event` name of a track call.
    pub event_name: Option<String>,
    pub facts: EventFacts<'a>,
    /// The normalised event, as destinations will receive it.
    pub payload: Vec<u8>,
    /// Event time after skew correction, Unix ms.
    pub timestamp: i64,
}

/// Validate and normalise one event. `endpoint_type` is the type implied by a single-event
/// endpoint (`/v1/track` …); batch items must carry their own `type`.
pub fn normalize<'a>(
    item: &RawObject<'a>,
    endpoint_type: Option<EventType>,
    request: &RequestContext<'a>,
) -> Result<Normalized<'a>, Rejection> {
    let kind = match endpoint_type {
        Some(kind) => kind,
        None => {
            let raw = raw_str(item.get("type"))
                .map_err(|_| Rejection::new("invalid_type", "type must be a string"))?;
            let raw = raw.ok_or_else(|| {
                Rejection::new(
                    "invalid_type",
                    "every batch item needs a type: track, identify, page, screen, group or alias",
                )
            })?;
            EventType::parse(&raw).ok_or_else(|| {
                Rejection::new(
                    "invalid_type",
                    format!(
                        "unknown type {raw:?}: use track, identify, page, screen, group or alias"
                    ),
                )
            })?
        }
    };

    let user_id = id_field(item, "userId")?;
    let anonymous_id = id_field(item, "anonymousId")?;
    if user_id.is_none() && anonymous_id.is_none() {
        return Err(Rejection::new(
            "no_user_anon_id",
            "every event needs a userId or an anonymousId",
        ));
    }

    let mut event_name = None;
    match kind {
        EventType::Track => {
            let name = raw_str(item.get("event")).map_err(|_| {
                Rejection::new(
                    "event_not_string",
                    "the event name of a track call must be a string",
                )
            })?;
            match name {
                Some(name) if !name.is_empty() => event_name = Some(name.into_owned()),
                _ => {
                    return Err(Rejection::new(
                        "event_not_defined",
                        "a track call needs an event name in `event`",
                    ));
                }
            }
            object_field(item, "properties", "properties_not_object")?;
        }
        EventType::Page | EventType::Screen => {
            object_field(item, "properties", "properties_not_object")?;
            if raw_str(item.get("name")).is_err() {
                return Err(Rejection::new("name_not_string", "name must be a string"));
            }
            if raw_str(item.get("category")).is_err() {
                return Err(Rejection::new(
                    "category_not_string",
                    "category must be a string",
                ));
            }
        }
        EventType::Identify => object_field(item, "traits", "traits_not_object")?,
        EventType::Group => {
            object_field(item, "traits", "traits_not_object")?;
            required_id(item, "groupId", "a group call needs a groupId")?;
        }
        EventType::Alias => {
            required_id(item, "previousId", "an alias call needs a previousId")?;
            if user_id.is_none() {
                return Err(Rejection::new(
                    "id_required",
                    "an alias call needs a userId",
                ));
            }
        }
    }

    let message_id = match raw_str(item.get("messageId")) {
        Err(_) => {
            return Err(Rejection::new(
                "message_id_not_string",
                "messageId must be a string",
            ));
        }
        Ok(Some(id)) if id.chars().count() > MAX_MESSAGE_ID_CHARS => {
            return Err(Rejection::new(
                "message_id_too_long",
                format!("messageId is longer than {MAX_MESSAGE_ID_CHARS} characters"),
            ));
        }
        Ok(Some(id)) if !id.is_empty() => id.into_owned(),
        Ok(_) => uuid::Uuid::new_v4().to_string(),
    };

    // Context and integrations, merged with the batch-level defaults.
    let mut context = nested_object(item, "context", "context_not_object")?;
    if let Some(defaults) = &request.batch_context {
        context
            .get_or_insert_with(RawObject::default)
            .merge_defaults(defaults);
    }
    let mut integrations = nested_object(item, "integrations", "integrations_not_object")?;
    if let Some(defaults) = &request.batch_integrations {
        integrations
            .get_or_insert_with(RawObject::default)
            .merge_defaults(defaults);
    }

    let consent_raw = context.as_ref().and_then(|c| c.get("consent"));
    let is_consent_update = event_name
        .as_deref()
        .is_some_and(consent::is_consent_update_event);
    if is_consent_update {
        consent::validate_consent_update(consent_raw)
            .map_err(|e| Rejection::new(e.code(), e.message()))?;
    }
    let facts = EventFacts {
        integrations: match &integrations {
            Some(obj) => Integrations::from_entries(obj.entries()),
            None => Integrations::default(),
        },
        consent: ConsentSignal::read(consent_raw),
        is_consent_update,
    };

    // Timestamps.
    let original = item.get_non_null("timestamp");
    let original_ms = original
        .and_then(|raw| raw_str(Some(raw)).ok().flatten())
        .and_then(|s| clock::parse_ms(&s));
    let sent_at_raw = item.get_non_null("sentAt").or(request.batch_sent_at);
    let sent_at_ms = sent_at_raw
        .and_then(|raw| raw_str(Some(raw)).ok().flatten())
        .and_then(|s| clock::parse_ms(&s));
    let timestamp = match (original_ms, sent_at_ms) {
        (Some(original), Some(sent)) => request.received_at - (sent - original),
        (Some(original), None) => original,
        (None, _) => request.received_at,
    };

    // Write the normalised event: the item's own fields first, in their order, then ours.
    let mut payload = Vec::with_capacity(item_len_hint(item) + 256);
    let mut out = ObjectWriter::new(&mut payload);
    for (key, value) in item.iter() {
        match key {
            "type" | "messageId" | "timestamp" | "originalTimestamp" | "receivedAt" | "sentAt"
            | "context" | "integrations" | "writeKey" => {}
            _ => out.raw(key, value.get()),
        }
    }
    out.string("type", kind.as_str());
    out.string("messageId", &message_id);
    if let Some(context) = &context {
        out.object("context", |c| {
            for (key, value) in context.iter() {
                c.raw(key, value.get());
            }
            if context.get("ip").is_none()
                && let Some(ip) = request.ip
            {
                c.string("ip", &ip.to_string());
            }
        });
    } else if let Some(ip) = request.ip {
        out.object("context", |c| c.string("ip", &ip.to_string()));
    }
    if let Some(integrations) = &integrations {
        out.object("integrations", |o| {
            for (key, value) in integrations.iter() {
                o.raw(key, value.get());
            }
        });
    }
    if original_ms.is_some()
        && let Some(original) = original
    {
        out.raw("originalTimestamp", original.get());
    }
    let mut stamp = String::with_capacity(24);
    clock::write_ms(&mut stamp, timestamp);
    out.string("timestamp", &stamp);
    if let Some(sent_at) = sent_at_raw {
        out.raw("sentAt", sent_at.get());
    }
    stamp.clear();
    clock::write_ms(&mut stamp, request.received_at);
    out.string("receivedAt", &stamp);
    out.finish();

    Ok(Normalized {
        kind,
        message_id,
        user_id,
        anonymous_id,
        event_name,
        facts,
        payload,
        timestamp,
    })
}

fn item_len_hint(item: &RawObject<'_>) -> usize {
    item.iter().map(|(k, v)| k.len() + v.get().len() + 4).sum()
}

/// `userId` / `anonymousId`: absent, null or empty means not set; anything but a string is
/// rejected.
fn id_field(item: &RawObject<'_>, key: &str) -> Result<Option<String>, Rejection> {
    match raw_str(item.get(key)) {
        Ok(Some(id)) if !id.is_empty() => Ok(Some(id.into_owned())),
        Ok(_) => Ok(None),
        Err(_) => Err(Rejection::new(
            "id_not_string",
            format!("{key} must be a string"),
        )),
    }
}

fn required_id(item: &RawObject<'_>, key: &str, missing: &'static str) -> Result<(), Rejection> {
    match raw_str(item.get(key)) {
        Ok(Some(id)) if !id.is_empty() => Ok(()),
        Ok(_) => Err(Rejection::new("id_required", missing)),
        Err(_) => Err(Rejection::new(
            "id_not_string",
            format!("{key} must be a string"),
        )),
    }
}

/// A field that must be an object when present (null counts as absent).
fn object_field(item: &RawObject<'_>, key: &str, code: &'static str) -> Result<(), Rejection> {
    match item.get_non_null(key) {
        Some(value) if !is_object(value) => {
            Err(Rejection::new(code, format!("{key} must be an object")))
        }
        _ => Ok(()),
    }
}

fn nested_object<'a>(
    item: &RawObject<'a>,
    key: &str,
    code: &'static str,
) -> Result<Option<RawObject<'a>>, Rejection> {
    match item.get_non_null(key) {
        None => Ok(None),
        Some(value) => RawObject::parse(value)
            .map(Some)
            .ok_or_else(|| Rejection::new(code, format!("{key} must be an object"))),
    }
}

#[cfg(test)]
mod tests;
