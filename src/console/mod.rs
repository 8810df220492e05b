//! The web console at `/`: server-rendered pages (askama templates in `templates/console/`) for
//! privacy and marketing staff, with a little vendored JavaScript for copy buttons, dialogs and
//! live views. Assets are compiled into the binary.
//!
//! Every action calls the same admin handler the API route does (same validation, audit and
//! reload), after checking the session, the CSRF token and the API's role table. So what a
//! viewer may not do through the API, it may not do here either.

mod audit;
mod auth;
mod consent;
mod debugger;
mod destinations;
mod overview;
mod page;
mod profiles;
mod regulations;
mod retl;
mod sources;
mod users;

use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

pub use auth::{COOKIE_NAME, ConsoleUser};

use crate::admin::Caller;
use crate::app::App;
use crate::error::ApiError;

/// Every console route.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/consent") }))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/console/assets/{name}", get(asset))
        .merge(consent::routes())
        .merge(sources::routes())
        .merge(destinations::routes())
        .merge(overview::routes())
        .merge(debugger::routes())
        .merge(profiles::routes())
        .merge(regulations::routes())
        .merge(audit::routes())
        .merge(retl::routes())
        .merge(users::routes())
        .layer(axum::middleware::map_response(security_headers))
}

/// Console pages may not be framed, sniffed or leak their URLs; scripts only from here.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.entry(header::CONTENT_SECURITY_POLICY).or_insert(HeaderValue::from_static(
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'",
    ));
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Stylesheet and scripts, embedded at build time.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/console/console.css"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/console/console.js"),
    ),
    (
        "debugger.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/console/debugger.js"),
    ),
    (
        "retl.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/console/retl.js"),
    ),
];

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=300"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "No such console asset.").into_response(),
    }
}

impl ConsoleUser {
    /// The admin API caller acting for this console user.
    pub fn caller(&self) -> Caller {
        Caller {
            user: self.user.clone(),
            token: None,
        }
    }

    /// Check a form before acting: its CSRF token, then the role the API route needs.
    #[allow(clippy::result_large_err)] // the error is the response to send
    pub fn guard(&self, csrf: &str, method: Method, api_path: &str) -> Result<Caller, Response> {
        self.check_csrf(csrf)?;
        self.may(method, api_path)
            .map_err(|reason| self.refuse(reason))?;
        Ok(self.caller())
    }
}

/// Build an admin request body from form fields, with the API's own validation.
pub fn body<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_json::from_value(value).map_err(|e| ApiError::bad_request("invalid_body", e.to_string()))
}

/// A rejected action shown as a message on the page it came from.
pub fn failed(path: &str, error: &ApiError) -> Response {
    page::back(path, "error", &error.message)
}
