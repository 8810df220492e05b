//! The consent banner for sites without a consent-management platform (SPEC §11).
//!
//! * `GET /consent.js` — the script (`assets/consent.js`, embedded in the binary): a banner and
//!   a preferences dialog listing the workspace's enabled categories, default reject, the choice
//!   kept in the `tracking-preferences` cookie, analytics.js loaded only when the choice allows
//!   it, consent stamped on every event and a consent-update event on each change.
//! * `GET /v1/projects/{writeKey}/consent` — what the script reads: the enabled categories and
//!   whether each is mapped to a destination, whether some destination needs no consent, the
//!   source's missing-consent policy, and where events go. Derived from the same settings
//!   document analytics-next loads (`api::cdn`), so the two never disagree.
//!
//! Both are public (the write key is public in every page that sends events), cacheable, and
//! answer CORS requests from any origin (the layer in `api::routes`).

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::cdn;
use crate::app::App;
use crate::router::{Snapshot, SourceEntry};

/// The script, as shipped.
pub const SCRIPT: &str = include_str!("../../assets/consent.js");

/// The script changes only with Sluice itself; the ETag lets browsers revalidate after that.
const SCRIPT_CACHE_CONTROL: &str = "public, max-age=3600";

/// The script gzipped once, on first use.
static SCRIPT_GZIP: LazyLock<Vec<u8>> = LazyLock::new(|| gzip(SCRIPT.as_bytes()));

static SCRIPT_ETAG: LazyLock<String> =
    LazyLock::new(|| format!("\"{:016x}\"", cdn::fnv1a(SCRIPT.as_bytes())));

/// The same version, gzipped: a strong ETag must differ per content encoding.
static SCRIPT_GZIP_ETAG: LazyLock<String> =
    LazyLock::new(|| format!("\"{:016x}-gz\"", cdn::fnv1a(SCRIPT.as_bytes())));

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder
        .write_all(bytes)
        .and_then(|()| encoder.finish())
        .expect("gzip into memory cannot fail")
}

/// `/consent.js` and `/v1/projects/{writeKey}/consent`.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/consent.js", get(script))
        .route("/v1/projects/{write_key}/consent", get(consent))
}

/// Whether `Accept-Encoding` allows gzip (`gzip` or `*`, with a non-zero q).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or("");
            let zero = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !zero
        })
}

async fn script(headers: HeaderMap) -> Response {
    let gzipped = accepts_gzip(&headers);
    let etag: &str = if gzipped {
        &SCRIPT_GZIP_ETAG
    } else {
        &SCRIPT_ETAG
    };
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else if gzipped {
        (
            [
                (
                    header::CONTENT_TYPE,
                    "application/javascript; charset=utf-8",
                ),
                (header::CONTENT_ENCODING, "gzip"),
            ],
            SCRIPT_GZIP.as_slice(),
        )
            .into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                "application/javascript; charset=utf-8",
            )],
            SCRIPT,
        )
            .into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(SCRIPT_CACHE_CONTROL),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(value) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, value);
    }
    response
}

/// The document `/consent.js` reads, for one source.
///
/// `categories`: the enabled categories in creation order, each `mapped` when at least one
/// enabled destination requires it (granting an unmapped category changes no delivery).
/// `hasUnmappedDestinations`: some enabled destination receives events whatever the consent.
pub fn consent_document(
    snapshot: &Snapshot,
    source: &SourceEntry,
    api_host: &str,
    protocol: &str,
) -> Value {
    let settings = cdn::settings_document(snapshot, &source.source.write_key, api_host, protocol);
    let consent = &settings["consentSettings"];
    let mapped: BTreeSet<&str> = consent["allCategories"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let categories: Vec<Value> = snapshot
        .categories
        .iter()
        .filter(|c| c.enabled)
        .map(|c| json!({"id": c.id, "name": c.name, "mapped": mapped.contains(c.id.as_str())}))
        .collect();
    let segmentio = &settings["integrations"]["Segment.io"];
    json!({
        "categories": categories,
        "hasUnmappedDestinations": consent["hasUnmappedDestinations"],
        "missingConsentPolicy": source.missing_consent_policy,
        "apiHost": segmentio["apiHost"],
        "protocol": segmentio["protocol"],
    })
}

async fn consent(
    State(app): State<Arc<App>>,
    Path(write_key): Path<String>,
    headers: HeaderMap,
) -> Response {
    let snapshot = app.snapshot();
    let Some(source) = snapshot
        .source_by_write_key(&write_key)
        .filter(|s| s.source.enabled)
    else {
        return cdn::unknown().into_response();
    };
    let (host, protocol) = cdn::api_host(&app, &headers);
    cdn::cacheable(
        &headers,
        consent_document(&snapshot, source, &host, protocol),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SPEC §11: the banner must stay small.
    #[test]
    fn script_is_under_15_kb_gzipped() {
        let size = SCRIPT_GZIP.len();
        assert!(size < 15 * 1024, "consent.js is {size} bytes gzipped");
        assert!(SCRIPT.len() > 1000, "consent.js looks empty");
    }

    #[test]
    fn gzip_is_negotiated() {
        let with = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_str(value).unwrap(),
            );
            accepts_gzip(&h)
        };
        assert!(with("gzip, deflate, br, zstd"));
        assert!(with("br;q=1.0, GZIP;q=0.5"));
        assert!(with("*"));
        assert!(!with("gzip;q=0"));
        assert!(!with("br, identity"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
