//! `/api/v1/sources`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::extract::{double_option, ts};
use super::{ApiJson, Caller};
use crate::app::App;
use crate::consent::MissingConsentPolicy;
use crate::error::ApiError;
use crate::store::{NewSource, Role, Source, SourcePatch};

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceView {
    pub(crate) id: String,
    pub(crate) name: String,
    /// In full for owners (SPEC §1) and for whoever just created the source; masked otherwise.
    pub(crate) write_key: String,
    pub(crate) enabled: bool,
    pub(crate) rate_limit_per_second: Option<u32>,
    /// `null` means the workspace policy applies.
    pub(crate) missing_consent_policy: Option<MissingConsentPolicy>,
    pub(crate) created_at: String,
}

impl SourceView {
    fn new(source: &Source, full_key: bool) -> SourceView {
        SourceView {
            id: source.id.clone(),
            name: source.name.clone(),
            write_key: if full_key {
                source.write_key.clone()
            } else {
                source.masked_write_key()
            },
            enabled: source.enabled,
            rate_limit_per_second: source.rate_limit_per_second,
            missing_consent_policy: source.missing_consent_policy,
            created_at: ts(source.created_at),
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateSource {
    name: String,
    rate_limit_per_second: Option<u32>,
    missing_consent_policy: Option<MissingConsentPolicy>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PatchSource {
    name: Option<String>,
    enabled: Option<bool>,
    /// `null` removes the limit.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u32>)]
    rate_limit_per_second: Option<Option<u32>>,
    /// `null` falls back to the workspace policy.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<MissingConsentPolicy>)]
    missing_consent_policy: Option<Option<MissingConsentPolicy>>,
}

/// All sources (write keys in full for owners only).
#[utoipa::path(get, path = "/api/v1/sources", tag = "sources", responses((status = 200, body = Vec<SourceView>)))]
pub async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
) -> Result<Json<Vec<SourceView>>, ApiError> {
    let owner = caller.user.role == Role::Owner;
    Ok(Json(
        app.store
            .sources()
            .await?
            .iter()
            .map(|s| SourceView::new(s, owner))
            .collect(),
    ))
}

/// One source.
#[utoipa::path(get, path = "/api/v1/sources/{id}", tag = "sources", params(("id" = String, Path, description = "Source id")),
    responses((status = 200, body = SourceView), (status = 404, body = super::ErrorBody)))]
pub async fn get(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<SourceView>, ApiError> {
    let source = app.store.source(&id).await?;
    Ok(Json(SourceView::new(
        &source,
        caller.user.role == Role::Owner,
    )))
}

/// Create a source; the answer holds its write key.
#[utoipa::path(post, path = "/api/v1/sources", tag = "sources", request_body = CreateSource,
    responses((status = 201, body = SourceView), (status = 400, body = super::ErrorBody)))]
pub async fn create(
    State(app): State<Arc<App>>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateSource>,
) -> Result<(StatusCode, Json<SourceView>), ApiError> {
    let _change = app.change_config().await;
    let source = app
        .store
        .create_source(
            NewSource {
                name: body.name,
                rate_limit_per_second: body.rate_limit_per_second,
                missing_consent_policy: body.missing_consent_policy,
                write_key: None,
            },
            &caller.actor(),
        )
        .await?;
    app.reload().await?;
    Ok((StatusCode::CREATED, Json(SourceView::new(&source, true))))
}

/// Rename, enable or disable, rate-limit a source.
#[utoipa::path(patch, path = "/api/v1/sources/{id}", tag = "sources", params(("id" = String, Path, description = "Source id")), request_body = PatchSource,
    responses((status = 200, body = SourceView), (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn patch(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PatchSource>,
) -> Result<Json<SourceView>, ApiError> {
    let _change = app.change_config().await;
    let (_, after) = app
        .store
        .update_source(
            &id,
            SourcePatch {
                name: body.name,
                enabled: body.enabled,
                rate_limit_per_second: body.rate_limit_per_second,
                missing_consent_policy: body.missing_consent_policy,
            },
            &caller.actor(),
        )
        .await?;
    app.reload().await?;
    Ok(Json(SourceView::new(
        &after,
        caller.user.role == Role::Owner,
    )))
}

/// Delete a source (its write key stops working at once).
#[utoipa::path(delete, path = "/api/v1/sources/{id}", tag = "sources", params(("id" = String, Path, description = "Source id")),
    responses((status = 204), (status = 404, body = super::ErrorBody)))]
pub async fn delete(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let _change = app.change_config().await;
    app.store.delete_source(&id, &caller.actor()).await?;
    app.reload().await?;
    Ok(StatusCode::NO_CONTENT)
}
