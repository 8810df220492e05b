//! The admin API under `/api/v1` (SPEC §13): JSON with camelCase fields, bearer tokens,
//! roles, and errors as `{"code", "message"}`.
//!
//! Access control is a table ([`ACCESS`]): every route is listed with the least role that may
//! call it and the reason shown to callers who lack it. A middleware looks the matched route up
//! in the table; a route missing from the table answers 500, so the route × role test catches
//! it. Handlers never check roles themselves.
//!
//! Routes are registered through `utoipa_axum`, so every mounted route is in the OpenAPI
//! document served at `/api/v1/openapi.json`.
//!
//! Every change goes through the control store, which writes its audit entry in the same
//! transaction, and is followed by `App::reload` before the handler answers.

pub(crate) mod audit;
pub(crate) mod categories;
pub(crate) mod dead_letters;
pub(crate) mod debugger;
pub(crate) mod destinations;
mod extract;
pub(crate) mod filters;
pub(crate) mod overview;
pub(crate) mod profiles;
pub(crate) mod regulations;
pub(crate) mod retl;
pub(crate) mod sources;
pub(crate) mod users;
pub(crate) mod workspace;

use std::sync::Arc;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use extract::{ApiJson, Caller};
pub use retl::ACCESS as RETL_ACCESS;
pub use users::hash_password;

use crate::app::App;
use crate::error::ApiError;
use crate::store::Role;

const OWNER_CONSENT: &str = "Only owners can change consent categories and consent settings";
const OWNER_USERS: &str = "Only owners can manage users";
const OWNER_AUDIT: &str = "Only owners can read the audit trail";
const OWNER_REGULATIONS: &str = "Only owners can see or file deletion and suppression requests";
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
        Method::GET,
        "/api/v1/sources/{id}/debugger",
        Role::Viewer,
        "",
    ),
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
    (
        Method::GET,
        "/api/v1/destinations/{id}/filters",
        Role::Viewer,
        "",
    ),
    (
        Method::PUT,
        "/api/v1/destinations/{id}/filters",
        Role::Member,
        MEMBER_DESTINATIONS,
    ),
    (
        Method::POST,
        "/api/v1/destination-filters/test",
        Role::Viewer,
        "",
    ),
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
    (Method::GET, "/api/v1/profiles/{id}", Role::Viewer, ""),
    (
        Method::GET,
        "/api/v1/profiles/{id}/consent-history",
        Role::Viewer,
        "",
    ),
    (
        Method::GET,
        "/api/v1/profiles/{id}/consent-history/export",
        Role::Viewer,
        "",
    ),
    (
        Method::POST,
        "/api/v1/regulations",
        Role::Owner,
        OWNER_REGULATIONS,
    ),
    (
        Method::GET,
        "/api/v1/regulations",
        Role::Owner,
        OWNER_REGULATIONS,
    ),
    (
        Method::GET,
        "/api/v1/regulations/{id}",
        Role::Owner,
        OWNER_REGULATIONS,
    ),
    (
        Method::GET,
        "/api/v1/suppressions",
        Role::Owner,
        OWNER_REGULATIONS,
    ),
    (Method::GET, "/api/v1/audit", Role::Owner, OWNER_AUDIT),
    (
        Method::GET,
        "/api/v1/audit/export",
        Role::Owner,
        OWNER_AUDIT,
    ),
];

/// The error body every admin route answers with (`{"code", "message"}`).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Machine-readable, e.g. `invalid`, `forbidden`, `not_found`.
    pub code: String,
    /// What went wrong and what to do next.
    pub message: String,
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Sluice admin API",
        description = "Configure sources, destinations and consent categories; read the delivery overview and the audit trail. Every call needs `Authorization: Bearer <token>`.",
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(ErrorBody)),
    tags(
        (name = "workspace", description = "Workspace consent settings"),
        (name = "sources", description = "Sources and write keys"),
        (name = "destinations", description = "Destinations"),
        (name = "consent", description = "Consent categories and mappings"),
        (name = "delivery", description = "Delivery overview and dead letters"),
        (name = "users", description = "Users and API tokens"),
        (name = "profiles", description = "People: ids, traits, consent state and the consent ledger"),
        (name = "regulations", description = "GDPR / CCPA deletion and suppression requests"),
        (name = "audit", description = "The audit trail"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
    }
}

/// Every admin route, registered together with its OpenAPI description: a route cannot be
/// mounted without appearing in the document.
fn documented() -> OpenApiRouter<Arc<App>> {
    use utoipa::OpenApi as _;
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(workspace::get, workspace::patch))
        .routes(routes!(sources::list, sources::create))
        .routes(routes!(sources::get, sources::patch, sources::delete))
        .routes(routes!(debugger::stream))
        .routes(routes!(destinations::list, destinations::create))
        .routes(routes!(
            destinations::get,
            destinations::patch,
            destinations::delete
        ))
        .routes(routes!(dead_letters::list))
        .routes(routes!(dead_letters::replay))
        .routes(routes!(destinations::types))
        .routes(routes!(filters::get, filters::put))
        .routes(routes!(filters::test))
        .routes(routes!(categories::list, categories::create))
        .routes(routes!(
            categories::get,
            categories::patch,
            categories::delete
        ))
        .routes(routes!(categories::disable))
        .routes(routes!(categories::enable))
        .routes(routes!(overview::get))
        .routes(routes!(users::me))
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::get, users::patch, users::delete))
        .routes(routes!(users::tokens, users::create_token))
        .routes(routes!(users::revoke_token))
        .routes(routes!(profiles::get))
        .routes(routes!(profiles::history))
        .routes(routes!(profiles::export))
        .routes(routes!(regulations::create, regulations::list))
        .routes(routes!(regulations::get))
        .routes(routes!(regulations::suppressions))
        .routes(routes!(audit::list))
        .routes(routes!(audit::export))
        .merge(retl::routes())
}

/// The OpenAPI document of the admin API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented().into_openapi()
}

/// The admin router: every documented route behind authentication and the access table, and
/// the document itself at `/api/v1/openapi.json` (public: it holds no data).
pub fn routes(app: Arc<App>) -> Router<Arc<App>> {
    let (router, api) = documented().split_for_parts();
    let api = Arc::new(api);
    router
        .route_layer(middleware::from_fn_with_state(app, authorize))
        // Admin bodies are small; 1 MiB is generous for config-as-code documents.
        .layer(axum::extract::DefaultBodyLimit::max(1024 * 1024))
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let api = Arc::clone(&api);
                async move { axum::Json(api.as_ref().clone()) }
            }),
        )
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
        .chain(retl::ACCESS.iter())
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
