//! `GET`/`PATCH /api/v1/workspace`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::{ApiJson, Caller};
use crate::app::App;
use crate::consent::{MissingConsentPolicy, MultiCategoryRule};
use crate::error::ApiError;
use crate::store::{Workspace, WorkspacePatch};

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceView {
    missing_consent_policy: MissingConsentPolicy,
    multi_category_rule: MultiCategoryRule,
    dedup_window_hours: u32,
}

impl From<&Workspace> for WorkspaceView {
    fn from(w: &Workspace) -> Self {
        WorkspaceView {
            missing_consent_policy: w.missing_consent_policy,
            multi_category_rule: w.multi_category_rule,
            dedup_window_hours: w.dedup_window_hours,
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PatchWorkspace {
    missing_consent_policy: Option<MissingConsentPolicy>,
    multi_category_rule: Option<MultiCategoryRule>,
    dedup_window_hours: Option<u32>,
}

/// Workspace consent settings.
#[utoipa::path(get, path = "/api/v1/workspace", tag = "workspace",
    responses((status = 200, body = WorkspaceView), (status = 401, body = super::ErrorBody)))]
pub async fn get(State(app): State<Arc<App>>) -> Result<Json<WorkspaceView>, ApiError> {
    Ok(Json(WorkspaceView::from(&app.store.workspace().await?)))
}

/// Change workspace settings (owners).
#[utoipa::path(patch, path = "/api/v1/workspace", tag = "workspace", request_body = PatchWorkspace,
    responses((status = 200, body = WorkspaceView), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody)))]
pub async fn patch(
    State(app): State<Arc<App>>,
    caller: Caller,
    ApiJson(body): ApiJson<PatchWorkspace>,
) -> Result<Json<WorkspaceView>, ApiError> {
    let _change = app.change_config().await;
    let (_, after) = app
        .store
        .update_workspace(
            WorkspacePatch {
                missing_consent_policy: body.missing_consent_policy,
                multi_category_rule: body.multi_category_rule,
                dedup_window_hours: body.dedup_window_hours,
            },
            &caller.actor(),
        )
        .await?;
    app.reload().await?;
    Ok(Json(WorkspaceView::from(&after)))
}
