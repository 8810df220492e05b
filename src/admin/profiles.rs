//! `/api/v1/profiles/{id}`: a person's ids, traits and consent state, and their consent ledger.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;

use crate::app::App;
use crate::error::ApiError;
use crate::profiles::ProfileError;
use crate::profiles::store::{LedgerEntry, ProfileView};

impl From<ProfileError> for ApiError {
    fn from(e: ProfileError) -> Self {
        tracing::error!(error = %e, "Profile store failed.");
        ApiError::internal("the profile store failed; see the server log")
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("no profile has the userId or anonymousId {id:?}"))
}

/// A profile: its ids, traits, and per-category consent (`true`, `false` or `"conflict"`) with
/// when and from which message it was set.
#[utoipa::path(get, path = "/api/v1/profiles/{id}", tag = "profiles",
    params(("id" = String, Path, description = "A userId or anonymousId of the person")),
    responses((status = 200, description = "`{id, userIds, anonymousIds, traits, consent}`"), (status = 404, body = super::ErrorBody)))]
pub async fn get(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<ProfileView>, ApiError> {
    app.profiles
        .lookup(&id)
        .await?
        .map(Json)
        .ok_or_else(|| not_found(&id))
}

#[derive(Serialize)]
pub struct History {
    pub(crate) entries: Vec<LedgerEntry>,
}

/// The person's consent ledger, oldest first: every consent-update event and every change of a
/// device's preferences.
#[utoipa::path(get, path = "/api/v1/profiles/{id}/consent-history", tag = "profiles",
    params(("id" = String, Path, description = "A userId or anonymousId of the person")),
    responses((status = 200, description = "`{entries: [{at, receivedAt, anonymousId, userId, preferences, sourceId, messageId, generated, kind, library, userAgent, ip}]}`"),
        (status = 404, body = super::ErrorBody)))]
pub async fn history(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<History>, ApiError> {
    let entries = app
        .profiles
        .history(&id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(History { entries }))
}

/// The same ledger as JSON lines, for a data-subject access request.
#[utoipa::path(get, path = "/api/v1/profiles/{id}/consent-history/export", tag = "profiles",
    params(("id" = String, Path, description = "A userId or anonymousId of the person")),
    responses((status = 200, content_type = "application/x-ndjson", description = "JSON lines"), (status = 404, body = super::ErrorBody)))]
pub async fn export(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let entries = app
        .profiles
        .history(&id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    let mut body = String::new();
    for entry in entries {
        body.push_str(&serde_json::to_string(&entry).unwrap_or_default());
        body.push('\n');
    }
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"consent-history.jsonl\"",
            ),
        ],
        body,
    ))
}
