//! The CDN settings documents (SPEC §2), so unmodified analytics.js / analytics-next and
//! Segment's consent wrappers can load their settings from Sluice instead of Segment's CDN.
//!
//! * `GET /v1/projects/{writeKey}/settings` — what analytics-next fetches from `cdnURL`: the
//!   `Segment.io` integration pointing at this server, each enabled destination's mapped
//!   categories under `integrations[<integration>].consentSettings.categories`, and the
//!   top-level `consentSettings` that `@segment/analytics-consent-tools` reads.
//! * `GET /v1/projects/{writeKey}/integrations` — the legacy list the old consent manager reads.
//!
//! Destinations are listed without a `type`, so analytics-next never tries to load a
//! device-mode bundle for them: Sluice delivers server side.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::app::App;
use crate::error::ApiError;
use crate::router::Snapshot;

/// How long browsers and CDNs may cache the documents.
const CACHE_CONTROL: &str = "public, max-age=60";

/// `(apiHost without scheme, protocol)`: from `--public-url`, else from the request's Host.
pub(crate) fn api_host(app: &App, headers: &HeaderMap) -> (String, &'static str) {
    if let Some(url) = &app.config.server.public_url
        && let Ok(parsed) = reqwest::Url::parse(url)
    {
        let host = parsed.host_str().unwrap_or("localhost");
        let host = match parsed.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let path = parsed.path().trim_end_matches('/');
        let protocol = if parsed.scheme() == "https" {
            "https"
        } else {
            "http"
        };
        return (format!("{host}{path}/v1"), protocol);
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.len() < 256 && !h.contains(['/', ' ']))
        .map(str::to_owned)
        .unwrap_or_else(|| app.public_url().trim_start_matches("http://").to_owned());
    (format!("{host}/v1"), "http")
}

/// Per integration name: the enabled categories its enabled destinations require, or `None`
/// when one of them requires nothing (unmapped, or `enforceConsent: false`) and so receives
/// every event.
fn categories_by_integration(snapshot: &Snapshot) -> BTreeMap<String, Option<BTreeSet<String>>> {
    let mut out: BTreeMap<String, Option<BTreeSet<String>>> = BTreeMap::new();
    for dest in snapshot.destinations.iter().filter(|d| d.enabled) {
        let required: BTreeSet<String> = if dest.enforce_consent {
            snapshot
                .categories
                .iter()
                .filter(|c| c.enabled && c.destinations.contains(&dest.id))
                .map(|c| c.id.clone())
                .collect()
        } else {
            BTreeSet::new()
        };
        let entry = out
            .entry(dest.integration.clone())
            .or_insert_with(|| Some(BTreeSet::new()));
        match (entry.as_mut(), required.is_empty()) {
            (Some(_), true) => *entry = None,
            (Some(set), false) => set.extend(required),
            (None, _) => {}
        }
    }
    out
}

/// The settings document for a source.
pub fn settings_document(
    snapshot: &Snapshot,
    write_key: &str,
    api_host: &str,
    protocol: &str,
) -> Value {
    let by_integration = categories_by_integration(snapshot);
    let mut integrations = serde_json::Map::new();
    integrations.insert(
        "Segment.io".into(),
        json!({
            "apiKey": write_key,
            "apiHost": api_host,
            "protocol": protocol,
            "unbundledIntegrations": [],
            "addBundledMetadata": true,
            "maybeBundledConfigIds": {},
        }),
    );
    let mut all_categories = BTreeSet::new();
    let mut has_unmapped = false;
    for (integration, categories) in &by_integration {
        match categories {
            None => {
                has_unmapped = true;
                integrations.insert(integration.clone(), json!({}));
            }
            Some(categories) => {
                all_categories.extend(categories.iter().cloned());
                integrations.insert(
                    integration.clone(),
                    json!({"consentSettings": {"categories": categories}}),
                );
            }
        }
    }
    json!({
        "integrations": integrations,
        "plan": {
            "track": {"__default": {"enabled": true, "integrations": {}}},
            "identify": {"__default": {"enabled": true}},
            "group": {"__default": {"enabled": true}},
        },
        "edgeFunction": {},
        "analyticsNextEnabled": true,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        // Client-side metrics would only be posted to /v1/m and thrown away.
        "metrics": {"sampleRate": 0},
        "legacyVideoPluginsEnabled": false,
        "remotePlugins": [],
        "consentSettings": {
            "allCategories": all_categories,
            "hasUnmappedDestinations": has_unmapped,
        },
    })
}

pub(crate) fn cacheable(headers: &HeaderMap, body: Value) -> Response {
    let text = body.to_string();
    let etag = format!("\"{:016x}\"", fnv1a(text.as_bytes()));
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, "application/json")], text).into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    if let Ok(value) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, value);
    }
    response
}

/// A small stable hash for ETags (not for security).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

pub(crate) fn unknown() -> ApiError {
    ApiError::not_found("no source has this write key; copy it from GET /api/v1/sources")
}

pub async fn settings(
    State(app): State<Arc<App>>,
    Path(write_key): Path<String>,
    headers: HeaderMap,
) -> Response {
    let snapshot = app.snapshot();
    let Some(source) = snapshot
        .source_by_write_key(&write_key)
        .filter(|s| s.source.enabled)
    else {
        return unknown().into_response();
    };
    let (host, protocol) = api_host(&app, &headers);
    cacheable(
        &headers,
        settings_document(&snapshot, &source.source.write_key, &host, protocol),
    )
}

pub async fn integrations(
    State(app): State<Arc<App>>,
    Path(write_key): Path<String>,
    headers: HeaderMap,
) -> Response {
    let snapshot = app.snapshot();
    if snapshot
        .source_by_write_key(&write_key)
        .filter(|s| s.source.enabled)
        .is_none()
    {
        return unknown().into_response();
    }
    let list: Vec<Value> = categories_by_integration(&snapshot)
        .into_iter()
        .map(|(integration, categories)| {
            let category = snapshot
                .categories
                .iter()
                .find(|c| categories.as_ref().is_some_and(|set| set.contains(&c.id)))
                .map_or_else(|| "Other".to_owned(), |c| c.name.clone());
            json!({
                "name": integration,
                "creationName": integration,
                "description": format!("Delivered by Sluice to {integration}"),
                "website": "",
                "category": category,
            })
        })
        .collect();
    cacheable(&headers, Value::Array(list))
}
