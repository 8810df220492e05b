//! Debugger page: a live list of a source's events with the consent object and the decision for
//! every destination. The page is a frame; `assets/console/debugger.js` fills it from
//! `/debugger/stream?source=<id>`, the same server-sent events as
//! `GET /api/v1/sources/{id}/debugger`, authenticated by the console session instead of a token.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::auth::{ConsoleUser, NotSignedIn};
use super::page::{Shell, render};
use crate::app::App;
use crate::store::Source;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/debugger", get(page))
        .route("/debugger/stream", get(stream))
}

const STREAM: &str = "/api/v1/sources/{id}/debugger";

/// Events kept on the page; older ones are removed as new ones arrive.
const SHOWN: usize = 200;

#[derive(Deserialize, Default)]
pub struct SourceQuery {
    source: Option<String>,
}

#[derive(askama::Template)]
#[template(path = "console/debugger.html")]
struct Page {
    shell: Shell,
    sources: Vec<Source>,
    /// The chosen source, if it exists.
    selected: Option<Source>,
    /// A `?source=` that matches no source.
    unknown: bool,
    may_watch: Result<(), &'static str>,
    shown: usize,
}

async fn page(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Query(q): Query<SourceQuery>,
) -> Response {
    let sources = app.store.sources().await.unwrap_or_default();
    let wanted = q.source.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let selected = wanted
        .and_then(|id| sources.iter().find(|s| s.id == id))
        .cloned();
    // With a single source there is nothing to choose.
    let selected = selected.or_else(|| {
        if wanted.is_none() && sources.len() == 1 {
            sources.first().cloned()
        } else {
            None
        }
    });
    let unknown = wanted.is_some() && selected.is_none();
    let mut response = render(&Page {
        shell: Shell::new(&user, "debugger", "Debugger"),
        sources,
        selected,
        unknown,
        may_watch: user.may(Method::GET, STREAM),
        shown: SHOWN,
    });
    if unknown {
        *response.status_mut() = StatusCode::NOT_FOUND;
    }
    response
}

/// The live stream for the page. Without a session it answers 401 rather than redirecting to
/// the sign-in page, so `EventSource` stops instead of parsing a login form.
async fn stream(
    State(app): State<Arc<App>>,
    user: Result<ConsoleUser, NotSignedIn>,
    Query(q): Query<SourceQuery>,
) -> Response {
    let Ok(user) = user else {
        return (
            StatusCode::UNAUTHORIZED,
            "Sign in to the console to watch the debugger.",
        )
            .into_response();
    };
    if let Err(reason) = user.may(Method::GET, STREAM) {
        return user.refuse(reason);
    }
    let Some(id) = q.source.filter(|s| !s.is_empty()) else {
        return (
            StatusCode::BAD_REQUEST,
            "Choose a source: /debugger/stream?source=<source id>.",
        )
            .into_response();
    };
    match crate::admin::debugger::stream(State(app), Path(id)).await {
        Ok(sse) => sse.into_response(),
        Err(error) => error.into_response(),
    }
}
