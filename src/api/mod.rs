//! The Segment-compatible Tracking API (SPEC §2), plus health and metrics endpoints.

pub mod auth;
pub mod body;
pub mod cdn;
pub mod consent_script;
pub mod normalize;
pub mod tracking;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{Method, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

use crate::app::App;
use normalize::EventType;
use tracking::Endpoint;

/// Every Tracking API path, with the kind of body it takes.
pub const ENDPOINTS: &[(&str, Endpoint)] = &[
    ("/v1/track", Endpoint::Single(EventType::Track)),
    ("/v1/t", Endpoint::Single(EventType::Track)),
    ("/v1/identify", Endpoint::Single(EventType::Identify)),
    ("/v1/i", Endpoint::Single(EventType::Identify)),
    ("/v1/page", Endpoint::Single(EventType::Page)),
    ("/v1/p", Endpoint::Single(EventType::Page)),
    ("/v1/screen", Endpoint::Single(EventType::Screen)),
    ("/v1/s", Endpoint::Single(EventType::Screen)),
    ("/v1/group", Endpoint::Single(EventType::Group)),
    ("/v1/g", Endpoint::Single(EventType::Group)),
    ("/v1/alias", Endpoint::Single(EventType::Alias)),
    ("/v1/a", Endpoint::Single(EventType::Alias)),
    ("/v1/batch", Endpoint::Batch),
    ("/v1/b", Endpoint::Batch),
    ("/v1/import", Endpoint::Batch),
];

/// The Tracking API router, answering CORS preflights from any origin.
pub fn routes() -> Router<Arc<App>> {
    let mut router = Router::new();
    for &(path, endpoint) in ENDPOINTS {
        router = router.route(
            path,
            post(move |state, peer, headers, body| {
                tracking::handle(endpoint, state, peer, headers, body)
            }),
        );
    }
    // analytics-next posts its own client metrics here; accept and ignore them.
    router = router.route(
        "/v1/m",
        post(|| async { axum::Json(serde_json::json!({"success": true})) }),
    );
    router = router
        .route("/v1/projects/{write_key}/settings", get(cdn::settings))
        .route(
            "/v1/projects/{write_key}/integrations",
            get(cdn::integrations),
        )
        .merge(consent_script::routes());
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::mirror_request())
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers(AllowHeaders::mirror_request())
        .max_age(Duration::from_secs(86_400));
    router.layer(cors)
}

/// `/healthz`, `/readyz` and `/metrics`.
pub fn operational_routes() -> Router<Arc<App>> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(
                |axum::extract::State(app): axum::extract::State<Arc<App>>| async move {
                    match app.store.workspace().await {
                        Ok(_) => (StatusCode::OK, "ready").into_response(),
                        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}"))
                            .into_response(),
                    }
                },
            ),
        )
        .route(
            "/metrics",
            get(
                |axum::extract::State(app): axum::extract::State<Arc<App>>| async move {
                    let body = app.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
                    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
                },
            ),
        )
}
