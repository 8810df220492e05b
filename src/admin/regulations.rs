//! `/api/v1/regulations` and `/api/v1/suppressions` (owners only).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::extract::ts;
use super::{ApiJson, Caller};
use crate::app::App;
use crate::error::ApiError;
use crate::store::{Regulation, RegulationType};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateRegulation {
    regulation_type: RegulationType,
    /// Only `USER_ID` is supported.
    subject_type: String,
    /// 1 to 5,000 user ids.
    subject_ids: Vec<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegulationView {
    pub(crate) id: String,
    pub(crate) regulation_type: RegulationType,
    pub(crate) subject_type: String,
    pub(crate) subject_ids: Vec<String>,
    /// `INITIALIZED`, `RUNNING`, `FINISHED`, `FAILED` or `PARTIAL_SUCCESS`.
    pub(crate) status: String,
    /// Counts of what was suppressed or deleted, and per-destination results.
    #[schema(value_type = Object)]
    pub(crate) details: serde_json::Value,
    pub(crate) created_by: String,
    pub(crate) created_at: String,
    pub(crate) finished_at: Option<String>,
}

impl From<Regulation> for RegulationView {
    fn from(r: Regulation) -> Self {
        RegulationView {
            id: r.id,
            regulation_type: r.regulation_type,
            subject_type: r.subject_type,
            subject_ids: r.subject_ids,
            status: r.status,
            details: r.details,
            created_by: r.created_by,
            created_at: ts(r.created_at),
            finished_at: r.finished_at.map(ts),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuppressionView {
    pub(crate) user_id: String,
    pub(crate) regulation_id: String,
    pub(crate) created_at: String,
}

/// Create a regulation; it is processed in the background (owners).
#[utoipa::path(post, path = "/api/v1/regulations", tag = "regulations", request_body = CreateRegulation,
    responses((status = 201, body = RegulationView), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody)))]
pub async fn create(
    State(app): State<Arc<App>>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateRegulation>,
) -> Result<(StatusCode, Json<RegulationView>), ApiError> {
    let regulation = app
        .store
        .create_regulation(
            body.regulation_type,
            &body.subject_type,
            body.subject_ids,
            &caller.actor(),
        )
        .await?;
    tokio::spawn(crate::regulations::process(
        Arc::clone(&app),
        regulation.clone(),
    ));
    Ok((StatusCode::CREATED, Json(regulation.into())))
}

/// All regulations, newest first (owners).
#[utoipa::path(get, path = "/api/v1/regulations", tag = "regulations", responses((status = 200, body = Vec<RegulationView>)))]
pub async fn list(State(app): State<Arc<App>>) -> Result<Json<Vec<RegulationView>>, ApiError> {
    Ok(Json(
        app.store
            .regulations()
            .await?
            .into_iter()
            .map(RegulationView::from)
            .collect(),
    ))
}

/// One regulation with its status (owners).
#[utoipa::path(get, path = "/api/v1/regulations/{id}", tag = "regulations",
    params(("id" = String, Path, description = "Regulation id")),
    responses((status = 200, body = RegulationView), (status = 404, body = super::ErrorBody)))]
pub async fn get(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<RegulationView>, ApiError> {
    Ok(Json(app.store.regulation(&id).await?.into()))
}

/// The users whose events are dropped at the API (owners).
#[utoipa::path(get, path = "/api/v1/suppressions", tag = "regulations", responses((status = 200, body = Vec<SuppressionView>)))]
pub async fn suppressions(
    State(app): State<Arc<App>>,
) -> Result<Json<Vec<SuppressionView>>, ApiError> {
    Ok(Json(
        app.store
            .suppressions()
            .await?
            .into_iter()
            .map(|(user_id, regulation_id, at)| SuppressionView {
                user_id,
                regulation_id,
                created_at: ts(at),
            })
            .collect(),
    ))
}
