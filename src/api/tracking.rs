//! The Tracking API handlers: `/v1/{track,identify,page,screen,group,alias,batch,import}` and
//! the short aliases analytics.js and the mobile SDKs use (SPEC §2).
//!
//! One request's path: read the body within limits (gzip included) → parse the top-level object
//! → find the source by write key (Basic auth, else `writeKey` in the body) → rate limit →
//! validate and normalise each event → route each against the configuration snapshot → append
//! all of them to the log (one durable group commit) → answer 200.
//!
//! Architecture Invariant: a 200 is sent only after `EventLog::append` returned, i.e. after the
//! events are on disk. Handlers never call a destination.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::value::RawValue;

use super::auth;
use super::body::{self, MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_EVENT_BYTES};
use super::normalize::{self, EventType, RequestContext};
use super::wire::{Envelope, RawObject, raw_str};
use crate::app::App;
use crate::clock;
use crate::error::ApiError;
use crate::log::{Append, NewEvent};
use crate::router::SourceEntry;

/// What kind of Tracking API endpoint was called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v1/track` and friends: the body is one event of this type.
    Single(EventType),
    /// `/v1/batch`, `/v1/import`, `/v1/b`: the body is `{"batch": [...]}`.
    Batch,
}

#[derive(Serialize)]
struct Rejected {
    index: usize,
    code: &'static str,
    message: String,
}

#[derive(Serialize)]
struct Accepted {
    success: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    rejected: Vec<Rejected>,
}

/// axum handler for one endpoint kind.
pub async fn handle(
    endpoint: Endpoint,
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match ingest(&app, endpoint, peer, &headers, body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

/// Count a whole-request failure against the source, when we know it.
fn count_failure(app: &App, source: Option<&SourceEntry>, received_at: i64, error: &ApiError) {
    metrics::counter!("sluice_requests_rejected_total", "code" => error.code.to_string())
        .increment(1);
    if let Some(source) = source {
        let code: &'static str = match error.code.as_ref() {
            "payload_too_large" => "payload_too_large",
            "invalid_json" => "invalid_json",
            "invalid_gzip" => "invalid_gzip",
            "invalid_batch" => "invalid_batch",
            "empty_batch" => "empty_batch",
            "too_many_events" => "too_many_events",
            "event_too_large" => "event_too_large",
            "unsupported_encoding" => "unsupported_encoding",
            _ => "invalid_request",
        };
        app.log.count_only(Append {
            source: source.source.key,
            received_at,
            rejected: vec![code],
            ..Append::default()
        });
    }
}

async fn ingest(
    app: &App,
    endpoint: Endpoint,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let received_at = clock::now_ms();
    let snapshot = app.snapshot();
    let header_key = auth::basic_write_key(headers);
    let header_source = header_key
        .as_deref()
        .and_then(|key| snapshot.source_by_write_key(key))
        .cloned();

    let limit = match endpoint {
        Endpoint::Single(_) => MAX_EVENT_BYTES,
        Endpoint::Batch => MAX_BATCH_BYTES,
    };
    let bytes = body::read(body, headers, limit)
        .await
        .inspect_err(|e| count_failure(app, header_source.as_deref(), received_at, e))?;
    let Envelope { fields: top, batch } = serde_json::from_slice(&bytes).map_err(|e| {
        let error = ApiError::bad_request(
            "invalid_json",
            format!("the body must be a JSON object: {e}"),
        );
        count_failure(app, header_source.as_deref(), received_at, &error);
        error
    })?;

    // The write key: Basic auth first, else `writeKey` in the body.
    let source = match (header_key, &header_source) {
        (Some(_), Some(source)) => Arc::clone(source),
        (Some(_), None) => return Err(unknown_key()),
        (None, _) => {
            let body_key = raw_str(top.get("writeKey")).ok().flatten().ok_or_else(|| {
                ApiError::unauthorized(
                    "missing_write_key",
                    "send the source's write key as the Basic auth username, or as writeKey in the body",
                )
            })?;
            snapshot
                .source_by_write_key(&body_key)
                .cloned()
                .ok_or_else(unknown_key)?
        }
    };
    if !source.source.enabled {
        return Err(ApiError::unauthorized(
            "source_disabled",
            "this source is disabled; enable it in the admin API or console to send events",
        ));
    }
    if let Some(limiter) = &source.limiter
        && let Err(not_until) = limiter.check()
    {
        let wait = not_until.wait_time_from(governor::clock::Clock::now(
            &governor::clock::DefaultClock::default(),
        ));
        metrics::counter!("sluice_requests_rate_limited_total").increment(1);
        return Err(ApiError::too_many_requests(
            wait.as_secs_f64().ceil() as u64,
            format!(
                "source {} is over its rate limit of {} requests per second; retry after the Retry-After delay",
                source.source.id,
                source.source.rate_limit_per_second.unwrap_or_default()
            ),
        ));
    }

    let ip = Some(auth::client_ip(peer, headers, &app.trusted_proxies));
    let ((items, not_objects), request) = match endpoint {
        Endpoint::Single(kind) => (
            (vec![(0, top.clone(), Some(kind))], Vec::new()),
            RequestContext {
                received_at,
                ip,
                batch_context: None,
                batch_integrations: None,
                batch_sent_at: None,
            },
        ),
        Endpoint::Batch => {
            let items = batch_items(batch)
                .inspect_err(|e| count_failure(app, Some(&source), received_at, e))?;
            let request = RequestContext {
                received_at,
                ip,
                batch_context: top.get_non_null("context").and_then(RawObject::parse),
                batch_integrations: top.get_non_null("integrations").and_then(RawObject::parse),
                batch_sent_at: top.get_non_null("sentAt"),
            };
            (items, request)
        }
    };

    let mut append = Append {
        source: source.source.key,
        received_at,
        events: Vec::with_capacity(items.len()),
        ..Append::default()
    };
    let mut rejected = Vec::new();
    let mut scratch = Vec::with_capacity(snapshot.dest_keys.len());
    // The debugger costs nothing unless someone watches this source.
    let mut debug = app.debugger.watching(source.source.key).then(Vec::new);
    for (index, item, kind) in &items {
        let index = *index;
        match normalize::normalize(item, *kind, &request) {
            Ok(event)
                if snapshot
                    .is_suppressed(event.user_id.as_deref(), event.anonymous_id.as_deref()) =>
            {
                // Suppressed users' events are dropped here: never stored, never routed.
                append.filtered_at_source += 1;
                if let Some(debug) = &mut debug {
                    debug.push(DebugItem::Suppressed(event.payload));
                }
            }
            Ok(event) => {
                let route = snapshot.route(&source, &event.facts, &event.payload, &mut scratch);
                if let Some(debug) = &mut debug {
                    debug.push(DebugItem::Accepted {
                        index: append.events.len(),
                        payload: event.payload.clone(),
                        route: route.clone(),
                        held: event.facts.is_consent_update,
                    });
                }
                append.events.push(NewEvent {
                    message_id: event.message_id,
                    user_id: event.user_id,
                    anonymous_id: event.anonymous_id,
                    payload: event.payload,
                    deliver_to: route.deliver_to,
                    filtered: route.filtered,
                    // Consent-update events are delivered once the profile consumer has seen
                    // that they change the device's preferences (SPEC §5).
                    hold: event.facts.is_consent_update,
                });
            }
            Err(rejection) => {
                if let Some(debug) = &mut debug {
                    debug.push(DebugItem::Rejected {
                        code: rejection.code,
                        message: rejection.message.to_string(),
                        raw: item
                            .iter()
                            .map(|(k, v)| (k.to_owned(), v.get().to_owned()))
                            .collect(),
                    });
                }
                append.rejected.push(rejection.code);
                rejected.push(Rejected {
                    index,
                    code: rejection.code,
                    message: rejection.message.into_owned(),
                });
            }
        }
    }
    for index in not_objects {
        append.rejected.push("invalid_type");
        rejected.push(Rejected {
            index,
            code: "invalid_type",
            message: "each batch item must be an event object".into(),
        });
    }
    rejected.sort_by_key(|r| r.index);

    let stored = append.events.len();
    if let Endpoint::Single(_) = endpoint
        && !rejected.is_empty()
    {
        let first = rejected.swap_remove(0);
        app.log.count_only(append);
        if let Some(debug) = debug {
            app.debugger.publish(
                source.source.key,
                debug_events(&snapshot, debug, &[], received_at),
            );
        }
        metrics::counter!("sluice_events_rejected_total", "code" => first.code).increment(1);
        return Err(ApiError::bad_request(first.code, first.message));
    }
    for r in &rejected {
        metrics::counter!("sluice_events_rejected_total", "code" => r.code).increment(1);
    }
    let waiting = std::time::Instant::now();
    let appended = app.log.append(append).await?;
    if let Some(debug) = debug {
        app.debugger.publish(
            source.source.key,
            debug_events(&snapshot, debug, &appended.duplicates, received_at),
        );
    }
    metrics::histogram!("sluice_ingest_durable_wait_seconds")
        .record(waiting.elapsed().as_secs_f64());
    metrics::counter!("sluice_events_accepted_total")
        .increment((stored - appended.duplicates.len()) as u64);
    metrics::counter!("sluice_events_duplicate_total").increment(appended.duplicates.len() as u64);
    Ok(Json(Accepted {
        success: true,
        rejected,
    })
    .into_response())
}

fn unknown_key() -> ApiError {
    ApiError::unauthorized(
        "invalid_write_key",
        "unknown write key; copy the source's write key from GET /api/v1/sources or the console",
    )
}

/// A batch's items: the objects (with their index; they carry their own type) and the
/// indexes of items that are not objects.
type BatchItems<'a> = (Vec<(usize, RawObject<'a>, Option<EventType>)>, Vec<usize>);

fn batch_items(batch: Option<Result<Vec<&RawValue>, ()>>) -> Result<BatchItems<'_>, ApiError> {
    let items = match batch {
        None => {
            return Err(ApiError::bad_request(
                "invalid_batch",
                "a batch request needs a \"batch\" array of events",
            ));
        }
        Some(Err(())) => {
            return Err(ApiError::bad_request(
                "invalid_batch",
                "\"batch\" must be an array of events",
            ));
        }
        Some(Ok(items)) => items,
    };
    if items.is_empty() {
        return Err(ApiError::bad_request(
            "empty_batch",
            "the batch is empty; send at least one event",
        ));
    }
    if items.len() > MAX_BATCH_EVENTS {
        return Err(ApiError::bad_request(
            "too_many_events",
            format!(
                "the batch has {} events; send at most {MAX_BATCH_EVENTS} per request",
                items.len()
            ),
        ));
    }
    if let Some((index, item)) = items
        .iter()
        .enumerate()
        .find(|(_, i)| i.get().len() > MAX_EVENT_BYTES)
    {
        return Err(ApiError::bad_request(
            "event_too_large",
            format!(
                "batch item {index} is {} bytes; each event must be at most {} KB",
                item.get().len(),
                MAX_EVENT_BYTES / 1024
            ),
        ));
    }
    let mut objects = Vec::with_capacity(items.len());
    let mut not_objects = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        match RawObject::parse(item) {
            Some(object) => objects.push((index, object, None)),
            None => not_objects.push(index),
        }
    }
    Ok((objects, not_objects))
}

/// What the debugger needs about one item of a request, kept only while someone watches.
enum DebugItem {
    Accepted {
        index: usize,
        payload: Vec<u8>,
        route: crate::router::Route,
        held: bool,
    },
    Suppressed(Vec<u8>),
    Rejected {
        code: &'static str,
        message: String,
        raw: Vec<(String, String)>,
    },
}

fn debug_events(
    snapshot: &crate::router::Snapshot,
    items: Vec<DebugItem>,
    duplicates: &[usize],
    received_at: i64,
) -> Vec<crate::debugger::DebugEvent> {
    use crate::debugger::{DebugEvent, Decision};
    let received = clock::format_ms(received_at);
    let name = |key| {
        snapshot
            .destinations
            .iter()
            .find(|d| d.key == key)
            .map_or_else(
                || (String::new(), String::new()),
                |d| (d.id.clone(), d.name.clone()),
            )
    };
    items
        .into_iter()
        .map(|item| match item {
            DebugItem::Accepted {
                index,
                payload,
                route,
                held,
            } => {
                let event: serde_json::Value = serde_json::from_slice(&payload).unwrap_or_default();
                let duplicate = duplicates.contains(&index);
                let mut decisions: Vec<Decision> = route
                    .deliver_to
                    .iter()
                    .map(|key| {
                        let (destination_id, name) = name(*key);
                        Decision {
                            destination_id,
                            name,
                            decision: if held { "held" } else { "delivered" },
                            reason: None,
                        }
                    })
                    .collect();
                decisions.extend(route.filtered.iter().map(|(key, reason)| {
                    let (destination_id, name) = name(*key);
                    Decision {
                        destination_id,
                        name,
                        decision: "filtered",
                        reason: Some(reason.as_str()),
                    }
                }));
                DebugEvent {
                    received_at: received.clone(),
                    message_id: event
                        .get("messageId")
                        .and_then(|v| v.as_str())
                        .map(str::to_owned),
                    status: if duplicate { "duplicate" } else { "accepted" },
                    rejection: None,
                    consent: event
                        .pointer("/context/consent")
                        .cloned()
                        .unwrap_or_default(),
                    decisions: if duplicate { Vec::new() } else { decisions },
                    event,
                }
            }
            DebugItem::Suppressed(payload) => {
                let event: serde_json::Value = serde_json::from_slice(&payload).unwrap_or_default();
                DebugEvent {
                    received_at: received.clone(),
                    message_id: event
                        .get("messageId")
                        .and_then(|v| v.as_str())
                        .map(str::to_owned),
                    status: "suppressed",
                    rejection: None,
                    consent: event
                        .pointer("/context/consent")
                        .cloned()
                        .unwrap_or_default(),
                    decisions: Vec::new(),
                    event,
                }
            }
            DebugItem::Rejected { code, message, raw } => {
                let event: serde_json::Map<String, serde_json::Value> = raw
                    .into_iter()
                    .map(|(k, v)| (k, serde_json::from_str(&v).unwrap_or_default()))
                    .collect();
                let event = serde_json::Value::Object(event);
                DebugEvent {
                    received_at: received.clone(),
                    message_id: event
                        .get("messageId")
                        .and_then(|v| v.as_str())
                        .map(str::to_owned),
                    status: "rejected",
                    rejection: Some(serde_json::json!({"code": code, "message": message})),
                    consent: event
                        .pointer("/context/consent")
                        .cloned()
                        .unwrap_or_default(),
                    decisions: Vec::new(),
                    event,
                }
            }
        })
        .collect()
}
