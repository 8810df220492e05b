//! Profiles page: look a person up by userId or anonymousId; their ids and devices, their consent
//! per category with where each value came from, and the consent ledger as a timeline. The
//! ledger can be downloaded as JSON lines (for a data-subject access request).
//!
//! Everything comes from the handlers behind `GET /api/v1/profiles/{id}`, `…/consent-history`
//! and `…/consent-history/export`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;

use super::auth::ConsoleUser;
use super::page::{Shell, render};
use crate::admin::profiles as api;
use crate::app::App;
use crate::error::ApiError;
use crate::profiles::store::{LedgerEntry, ProfileView};

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/profiles", get(page))
        .route("/profiles/export", get(export))
}

const PROFILE: &str = "/api/v1/profiles/{id}";
const HISTORY: &str = "/api/v1/profiles/{id}/consent-history";
const EXPORT: &str = "/api/v1/profiles/{id}/consent-history/export";

/// Longest id accepted in the search box (ids are at most a few hundred characters).
const MAX_ID: usize = 1_000;

#[derive(Deserialize, Default)]
pub struct IdQuery {
    id: Option<String>,
}

/// One category of the profile's consent, with its provenance.
struct ConsentRow {
    category: String,
    /// The category's name when it is configured in this workspace.
    name: Option<String>,
    /// `granted`, `refused` or `conflict`.
    value: &'static str,
    at: String,
    message_id: String,
    /// From the ledger entry of the same message, when there is one.
    source: Option<String>,
    generated: bool,
}

/// One entry of the consent ledger, as shown.
struct LedgerRow {
    entry: LedgerEntry,
    preferences: Vec<(String, bool)>,
    /// `preferences` is `{}`: every category refused.
    empty: bool,
    source: Option<String>,
}

struct Found {
    profile: ProfileView,
    traits: Vec<(String, String)>,
    consent: Vec<ConsentRow>,
    ledger: Vec<LedgerRow>,
}

#[derive(askama::Template)]
#[template(path = "console/profiles.html")]
struct Page {
    shell: Shell,
    id: String,
    error: Option<String>,
    not_found: bool,
    found: Option<Found>,
    may_read: Result<(), &'static str>,
    may_export: Result<(), &'static str>,
    export_href: String,
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn build(
    profile: ProfileView,
    entries: Vec<LedgerEntry>,
    categories: &HashMap<String, String>,
    sources: &HashMap<String, String>,
) -> Found {
    let source_name = |id: &Option<String>| {
        id.as_ref()
            .map(|id| sources.get(id).cloned().unwrap_or_else(|| id.clone()))
    };
    let consent = profile
        .consent
        .iter()
        .map(|(category, c)| {
            let from = entries.iter().rev().find(|e| e.message_id == c.message_id);
            ConsentRow {
                category: category.clone(),
                name: categories.get(category).cloned(),
                value: match &c.value {
                    Value::Bool(true) => "granted",
                    Value::Bool(false) => "refused",
                    _ => "conflict",
                },
                at: c.at.clone(),
                message_id: c.message_id.clone(),
                source: from.and_then(|e| source_name(&e.source_id)),
                generated: from.is_some_and(|e| e.generated),
            }
        })
        .collect();
    let traits = match &profile.traits {
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
        _ => Vec::new(),
    };
    let ledger = entries
        .into_iter()
        .rev()
        .map(|entry| {
            let preferences: Vec<(String, bool)> = match &entry.preferences {
                Value::Object(map) => map
                    .iter()
                    .map(|(k, v)| (k.clone(), *v == Value::Bool(true)))
                    .collect(),
                _ => Vec::new(),
            };
            LedgerRow {
                empty: preferences.is_empty(),
                preferences,
                source: source_name(&entry.source_id),
                entry,
            }
        })
        .collect();
    Found {
        profile,
        traits,
        consent,
        ledger,
    }
}

async fn page(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Query(q): Query<IdQuery>,
) -> Response {
    let id = q.id.unwrap_or_default().trim().to_owned();
    let may_read = user
        .may(Method::GET, PROFILE)
        .and(user.may(Method::GET, HISTORY));
    let mut page = Page {
        shell: Shell::new(&user, "profiles", "Profiles"),
        export_href: format!("/profiles/export?id={}", super::auth::urlencode(&id)),
        id: id.clone(),
        error: None,
        not_found: false,
        found: None,
        may_read,
        may_export: user.may(Method::GET, EXPORT),
    };
    let mut status = StatusCode::OK;
    if id.len() > MAX_ID {
        page.error = Some(format!("An id has at most {MAX_ID} characters."));
        status = StatusCode::BAD_REQUEST;
    } else if !id.is_empty() && page.may_read.is_ok() {
        let looked_up = tokio::try_join!(
            api::get(State(Arc::clone(&app)), Path(id.clone())),
            api::history(State(Arc::clone(&app)), Path(id.clone())),
        );
        match looked_up {
            Ok((Json(profile), Json(history))) => {
                let (categories, sources) =
                    tokio::join!(app.store.categories(), app.store.sources());
                let categories = categories
                    .unwrap_or_default()
                    .into_iter()
                    .map(|c| (c.id, c.name))
                    .collect();
                let sources = sources
                    .unwrap_or_default()
                    .into_iter()
                    .map(|s| (s.id, s.name))
                    .collect();
                page.found = Some(build(profile, history.entries, &categories, &sources));
            }
            Err(e) if e.status == StatusCode::NOT_FOUND => {
                page.not_found = true;
                status = StatusCode::NOT_FOUND;
            }
            Err(e) => {
                page.error = Some(e.message);
                status = e.status;
            }
        }
    }
    let mut response = render(&page);
    if response.status().is_success() {
        *response.status_mut() = status;
    }
    response
}

/// The consent ledger as a JSON-lines download.
async fn export(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Query(q): Query<IdQuery>,
) -> Response {
    if let Err(reason) = user.may(Method::GET, EXPORT) {
        return user.refuse(reason);
    }
    let id = q.id.unwrap_or_default().trim().to_owned();
    if id.is_empty() || id.len() > MAX_ID {
        return ApiError::bad_request("invalid", "give the person's userId or anonymousId as ?id=")
            .into_response();
    }
    match api::export(State(app), Path(id)).await {
        Ok(download) => download.into_response(),
        Err(e) => e.into_response(),
    }
}
