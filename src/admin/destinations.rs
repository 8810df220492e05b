//! `/api/v1/destinations` and `/api/v1/destination-types`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::extract::ts;
use super::{ApiJson, Caller};
use crate::app::App;
use crate::destinations::{self, DestinationType};
use crate::error::ApiError;
use crate::log::Consumer;
use crate::store::{Destination, DestinationPatch, NewDestination};

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DestinationView {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) integration: String,
    #[serde(rename = "type")]
    pub(crate) kind: String,
    /// Secrets are replaced by `********`; send that back to keep a secret unchanged.
    #[schema(value_type = Object)]
    pub(crate) settings: Value,
    pub(crate) enabled: bool,
    pub(crate) enforce_consent: bool,
    pub(crate) created_at: String,
    pub(crate) status: DeliveryState,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeliveryState {
    /// `delivering`, `retrying`, `paused` (disabled) or `error` (cannot start).
    pub(crate) state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) next_attempt_at: Option<String>,
}

pub fn view(app: &App, d: &Destination) -> DestinationView {
    let status = if let Some(error) = app.delivery.status.build_error(d.key) {
        DeliveryState {
            state: "error",
            last_error: Some(error),
            attempts: None,
            next_attempt_at: None,
        }
    } else if !d.enabled {
        DeliveryState {
            state: "paused",
            last_error: None,
            attempts: None,
            next_attempt_at: None,
        }
    } else if let Some(r) = app.delivery.status.retrying(d.key) {
        DeliveryState {
            state: "retrying",
            last_error: Some(r.last_error),
            attempts: Some(r.attempts),
            next_attempt_at: Some(ts(r.next_attempt_at)),
        }
    } else {
        DeliveryState {
            state: "delivering",
            last_error: None,
            attempts: None,
            next_attempt_at: None,
        }
    };
    DestinationView {
        id: d.id.clone(),
        name: d.name.clone(),
        integration: d.integration.clone(),
        kind: d.kind.clone(),
        settings: destinations::redact_settings(&d.kind, &d.settings),
        enabled: d.enabled,
        enforce_consent: d.enforce_consent,
        created_at: ts(d.created_at),
        status,
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateDestination {
    name: String,
    integration: String,
    #[serde(rename = "type")]
    kind: String,
    /// Type settings; see `GET /api/v1/destination-types`.
    #[serde(default)]
    #[schema(value_type = Object)]
    settings: Value,
    enabled: Option<bool>,
    enforce_consent: Option<bool>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PatchDestination {
    name: Option<String>,
    integration: Option<String>,
    #[schema(value_type = Option<Object>)]
    settings: Option<Value>,
    enabled: Option<bool>,
    enforce_consent: Option<bool>,
}

fn kind_of(name: &str) -> Result<&'static dyn DestinationType, ApiError> {
    destinations::find(name).ok_or_else(|| {
        ApiError::bad_request(
            "invalid",
            format!(
                "unknown destination type {name:?}; known types: {}",
                destinations::type_names().join(", ")
            ),
        )
    })
}

fn validate(app: &App, kind: &dyn DestinationType, settings: &Value) -> Result<Value, ApiError> {
    kind.validate(settings, &app.build_ctx)
        .map_err(|m| ApiError::bad_request("invalid", m))
}

/// All destinations, with secrets redacted and their delivery state.
#[utoipa::path(get, path = "/api/v1/destinations", tag = "destinations", responses((status = 200, body = Vec<DestinationView>)))]
pub async fn list(State(app): State<Arc<App>>) -> Result<Json<Vec<DestinationView>>, ApiError> {
    Ok(Json(
        app.store
            .destinations()
            .await?
            .iter()
            .map(|d| view(&app, d))
            .collect(),
    ))
}

/// One destination.
#[utoipa::path(get, path = "/api/v1/destinations/{id}", tag = "destinations", params(("id" = String, Path, description = "Destination id")),
    responses((status = 200, body = DestinationView), (status = 404, body = super::ErrorBody)))]
pub async fn get(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<DestinationView>, ApiError> {
    Ok(Json(view(&app, &app.store.destination(&id).await?)))
}

/// Create a destination.
#[utoipa::path(post, path = "/api/v1/destinations", tag = "destinations", request_body = CreateDestination,
    responses((status = 201, body = DestinationView), (status = 400, body = super::ErrorBody)))]
pub async fn create(
    State(app): State<Arc<App>>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateDestination>,
) -> Result<(StatusCode, Json<DestinationView>), ApiError> {
    let kind = kind_of(&body.kind)?;
    let settings = validate(&app, kind, &body.settings)?;
    let _change = app.change_config().await;
    let created = app
        .store
        .create_destination(
            NewDestination {
                name: body.name,
                integration: body.integration,
                kind: body.kind,
                settings,
                enabled: body.enabled.unwrap_or(true),
                enforce_consent: body
                    .enforce_consent
                    .unwrap_or(kind.enforce_consent_default()),
            },
            &caller.actor(),
        )
        .await?;
    app.reload().await?;
    Ok((StatusCode::CREATED, Json(view(&app, &created))))
}

/// Change a destination. Settings are replaced as a whole; `********` keeps a stored secret.
#[utoipa::path(patch, path = "/api/v1/destinations/{id}", tag = "destinations", params(("id" = String, Path, description = "Destination id")), request_body = PatchDestination,
    responses((status = 200, body = DestinationView), (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn patch(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PatchDestination>,
) -> Result<Json<DestinationView>, ApiError> {
    let _change = app.change_config().await;
    let stored = app.store.destination(&id).await?;
    let kind = kind_of(&stored.kind)?;
    let settings = match body.settings {
        Some(mut settings) => {
            destinations::restore_secrets(kind, &mut settings, &stored.settings);
            Some(validate(&app, kind, &settings)?)
        }
        None => None,
    };
    let (_, after) = app
        .store
        .update_destination(
            &id,
            DestinationPatch {
                name: body.name,
                integration: body.integration,
                settings,
                enabled: body.enabled,
                enforce_consent: body.enforce_consent,
            },
            &caller.actor(),
        )
        .await?;
    app.reload().await?;
    Ok(Json(view(&app, &after)))
}

/// Delete a destination, its backlog and its dead letters.
#[utoipa::path(delete, path = "/api/v1/destinations/{id}", tag = "destinations", params(("id" = String, Path, description = "Destination id")),
    responses((status = 204), (status = 404, body = super::ErrorBody)))]
pub async fn delete(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let _change = app.change_config().await;
    let deleted = app.store.delete_destination(&id, &caller.actor()).await?;
    app.reload().await?;
    // The worker is stopped by the reload; now its cursor and dead letters can go.
    app.log
        .remove_consumer(&Consumer::Destination(deleted.key))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TypeView {
    name: &'static str,
    description: &'static str,
    enforce_consent_default: bool,
    secret_settings: &'static [&'static str],
}

/// The destination types this server knows.
#[utoipa::path(get, path = "/api/v1/destination-types", tag = "destinations", responses((status = 200, body = Vec<TypeView>)))]
pub async fn types() -> Json<Vec<TypeView>> {
    Json(
        destinations::REGISTRY
            .iter()
            .map(|t| TypeView {
                name: t.name(),
                description: t.description(),
                enforce_consent_default: t.enforce_consent_default(),
                secret_settings: t.secret_paths(),
            })
            .collect(),
    )
}
