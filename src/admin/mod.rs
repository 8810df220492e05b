//! The admin API under `/api/v1` (SPEC §13): JSON with camelCase fields, bearer tokens,
//! roles, and errors as `{"code", "message"}`.
//!
//! Access control is a table ([`ACCESS`]): every route is listed with the least role that may
//! call it and the reason shown to callers who lack it. A middleware looks the matched route up
//! in the table; a route missing from the table answers 500, so the route × role test catches
//! it. Handlers never check roles themselves.
//!
//! Every change goes through the control store, which writes its audit entry in the same
//! transaction, and is followed by `App::reload` before the handler answers.

mod audit;
mod categories;
mod dead_letters;
mod destinations;
mod extract;
mod overview;
mod sources;
mod users;
mod workspace;

use std::sync::Arc;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use extract::{ApiJson, Caller};

use crate::app::App;
use crate::error::ApiError;
use crate::store::Role;

const OWNER_CONSENT: &str = "Only owners can change consent categories and consent settings";
const OWNER_USERS: &str = "Only owners can manage users";
const OWNER_AUDIT: &str = "Only owners can read the audit trail";
const MEMBER_SOURCES: &str = "Viewers cannot change sources";
const MEMBER_DESTINATIONS: &str = "Viewers cannot change destinations";

/// Who may call what: `(method, route, least role, reason when refused)`.
pub static ACCESS: &[(Method, &str, Role, &str)] = &[
    (Method::GET, "/api/v1/workspace", Role::Viewer, ""),
    (
        Method::PATCH,
        "/api/v1/workspace",
        Role::Owner,
        OWNER_CONSENT,
    ),
    (Method::GET, "/api/v1/sources", Role::Viewer, ""),
    (
        Method::POST,
        "/api/v1/sources",
        Role::Member,
        MEMBER_SOURCES,
    ),
    (Method::GET, "/api/v1/sources/{id}", Role::Viewer, ""),
    (
        Method::PATCH,
        "/api/v1/sources/{id}",
        Role::Member,
        MEMBER_SOURCES,
    ),
    (
        Method::DELETE,
        "/api/v1/sources/{id}",
        Role::Member,
        MEMBER_SOURCES,
    ),
    (Method::GET, "/api/v1/destinations", Role::Viewer, ""),
    (
        Method::POST,
        "/api/v1/destinations",
        Role::Member,
        MEMBER_DESTINATIONS,
    ),
    (Method::GET, "/api/v1/destinations/{id}", Role::Viewer, ""),
    (
        Method::PATCH,
        "/api/v1/destinations/{id}",
        Role::Member,
        MEMBER_DESTINATIONS,
    ),
    (
        Method::DELETE,
        "/api/v1/destinations/{id}",
        Role::Member,
        MEMBER_DESTINATIONS,
    ),
    (
        Method::GET,
        "/api/v1/destinations/{id}/dead-letters",
        Role::Viewer,
        "",
    ),
    (
        Method::POST,
        "/api/v1/destinations/{id}/dead-letters/replay",
        Role::Member,
        MEMBER_DESTINATIONS,
    ),
    (Method::GET, "/api/v1/destination-types", Role::Viewer, ""),
    (Method::GET, "/api/v1/consent/categories", Role::Viewer, ""),
    (
        Method::POST,
        "/api/v1/consent/categories",
        Role::Owner,
        OWNER_CONSENT,
    ),
    (
        Method::GET,
        "/api/v1/consent/categories/{id}",
        Role::Viewer,
        "",
    ),
    (
        Method::PATCH,
        "/api/v1/consent/categories/{id}",
        Role::Owner,
        OWNER_CONSENT,
    ),
    (
        Method::DELETE,
        "/api/v1/consent/categories/{id}",
        Role::Owner,
        OWNER_CONSENT,
    ),
    (
        Method::POST,
        "/api/v1/consent/categories/{id}/disable",
        Role::Owner,
        OWNER_CONSENT,
    ),
    (
        Method::POST,
        "/api/v1/consent/categories/{id}/enable",
        Role::Owner,
        OWNER_CONSENT,
    ),
    (Method::GET, "/api/v1/delivery-overview", Role::Viewer, ""),
    (Method::GET, "/api/v1/me", Role::Viewer, ""),
    (Method::GET, "/api/v1/users", Role::Viewer, ""),
    (Method::POST, "/api/v1/users", Role::Owner, OWNER_USERS),
    (Method::GET, "/api/v1/users/{id}", Role::Viewer, ""),
    (
        Method::PATCH,
        "/api/v1/users/{id}",
        Role::Owner,
        OWNER_USERS,
    ),
    (
        Method::DELETE,
        "/api/v1/users/{id}",
        Role::Owner,
        OWNER_USERS,
    ),
    (
        Method::GET,
        "/api/v1/users/{id}/tokens",
        Role::Owner,
        OWNER_USERS,
    ),
    (
        Method::POST,
        "/api/v1/users/{id}/tokens",
        Role::Owner,
        OWNER_USERS,
    ),
    (
        Method::DELETE,
        "/api/v1/users/{id}/tokens/{token_id}",
        Role::Owner,
        OWNER_USERS,
    ),
    (Method::GET, "/api/v1/audit", Role::Owner, OWNER_AUDIT),
    (
        Method::GET,
        "/api/v1/audit/export",
        Role::Owner,
        OWNER_AUDIT,
    ),
];

/// The admin router.
pub fn routes(app: Arc<App>) -> Router<Arc<App>> {
    Router::new()
        .route(
            "/api/v1/workspace",
            get(workspace::get).patch(workspace::patch),
        )
        .route("/api/v1/sources", get(sources::list).post(sources::create))
        .route(
            "/api/v1/sources/{id}",
            get(sources::get)
                .patch(sources::patch)
                .delete(sources::delete),
        )
        .route(
            "/api/v1/destinations",
            get(destinations::list).post(destinations::create),
        )
        .route(
            "/api/v1/destinations/{id}",
            get(destinations::get)
                .patch(destinations::patch)
                .delete(destinations::delete),
        )
        .route(
            "/api/v1/destinations/{id}/dead-letters",
            get(dead_letters::list),
        )
        .route(
            "/api/v1/destinations/{id}/dead-letters/replay",
            post(dead_letters::replay),
        )
        .route("/api/v1/destination-types", get(destinations::types))
        .route(
            "/api/v1/consent/categories",
            get(categories::list).post(categories::create),
        )
        .route(
            "/api/v1/consent/categories/{id}",
            get(categories::get)
                .patch(categories::patch)
                .delete(categories::delete),
        )
        .route(
            "/api/v1/consent/categories/{id}/disable",
            post(categories::disable),
        )
        .route(
            "/api/v1/consent/categories/{id}/enable",
            post(categories::enable),
        )
        .route("/api/v1/delivery-overview", get(overview::get))
        .route("/api/v1/me", get(users::me))
        .route("/api/v1/users", get(users::list).post(users::create))
        .route(
            "/api/v1/users/{id}",
            get(users::get).patch(users::patch).delete(users::delete),
        )
        .route(
            "/api/v1/users/{id}/tokens",
            get(users::tokens).post(users::create_token),
        )
        .route(
            "/api/v1/users/{id}/tokens/{token_id}",
            axum::routing::delete(users::revoke_token),
        )
        .route("/api/v1/audit", get(audit::list))
        .route("/api/v1/audit/export", get(audit::export))
        .route_layer(middleware::from_fn_with_state(app, authorize))
        // Admin bodies are small; 1 MiB is generous for config-as-code documents.
        .layer(axum::extract::DefaultBodyLimit::max(1024 * 1024))
}

/// Authenticate the bearer token and check the caller's role against [`ACCESS`].
async fn authorize(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let caller = match Caller::authenticate(&app, &parts.headers).await {
        Ok(caller) => caller,
        Err(error) => return error.into_response(),
    };
    let Some(path) = parts
        .extensions
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
    else {
        return ApiError::not_found("no such admin route").into_response();
    };
    let Some((_, _, role, reason)) = ACCESS
        .iter()
        .find(|(m, p, _, _)| *m == parts.method && *p == path)
    else {
        tracing::error!(method = %parts.method, %path, "Admin route missing from the access table.");
        return ApiError::internal("this route has no access rule; this is a bug").into_response();
    };
    if caller.user.role < *role {
        return ApiError::forbidden(format!(
            "{reason} (you are signed in as {}, a {})",
            caller.user.email,
            caller.user.role.as_str()
        ))
        .into_response();
    }
    parts.extensions.insert(caller);
    next.run(Request::from_parts(parts, body)).await
}
