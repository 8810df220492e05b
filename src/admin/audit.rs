//! `GET /api/v1/audit` (filtered, paginated) and `GET /api/v1/audit/export` (JSON lines).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};

use super::extract::ts;
use crate::app::App;
use crate::clock;
use crate::error::ApiError;
use crate::store::{AuditEntry, AuditQuery};

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct Params {
    from: Option<String>,
    to: Option<String>,
    actor: Option<String>,
    resource_type: Option<String>,
    resource_id: Option<String>,
    action: Option<String>,
    cursor: Option<i64>,
    limit: Option<usize>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AuditEntry)]
pub struct EntryView {
    pub(crate) id: i64,
    pub(crate) at: String,
    pub(crate) actor: String,
    pub(crate) actor_id: String,
    pub(crate) action: String,
    pub(crate) resource_type: String,
    pub(crate) resource_id: String,
    #[schema(value_type = Option<Object>)]
    pub(crate) before: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub(crate) after: Option<serde_json::Value>,
}

impl From<AuditEntry> for EntryView {
    fn from(e: AuditEntry) -> Self {
        EntryView {
            id: e.id,
            at: ts(e.at),
            actor: e.actor.label,
            actor_id: e.actor.id,
            action: e.action,
            resource_type: e.resource_type,
            resource_id: e.resource_id,
            before: e.before,
            after: e.after,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AuditPage)]
pub struct Page {
    pub(crate) entries: Vec<EntryView>,
    pub(crate) next_cursor: Option<i64>,
}

fn query(params: &Params, limit: usize) -> Result<AuditQuery, ApiError> {
    let time = |field: &str, v: &Option<String>| -> Result<Option<i64>, ApiError> {
        v.as_deref()
            .map(|s| {
                clock::parse_ms(s).ok_or_else(|| {
                    ApiError::bad_request("invalid", format!("{field} must be an RFC 3339 time"))
                })
            })
            .transpose()
    };
    Ok(AuditQuery {
        from_ms: time("from", &params.from)?,
        to_ms: time("to", &params.to)?,
        actor: params.actor.clone(),
        resource_type: params.resource_type.clone(),
        resource_id: params.resource_id.clone(),
        action: params.action.clone(),
        before_id: params.cursor,
        limit,
    })
}

/// The audit trail, newest first (owners).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(Params),
    responses((status = 200, body = Page), (status = 403, body = super::ErrorBody)))]
pub async fn list(
    State(app): State<Arc<App>>,
    Query(params): Query<Params>,
) -> Result<Json<Page>, ApiError> {
    let limit = params.limit.unwrap_or(100).clamp(1, 1000);
    let entries = app.store.audit(query(&params, limit)?).await?;
    let next_cursor = (entries.len() == limit)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    Ok(Json(Page {
        entries: entries.into_iter().map(EntryView::from).collect(),
        next_cursor,
    }))
}

/// Every matching entry, oldest first, one JSON object per line (owners).
#[utoipa::path(get, path = "/api/v1/audit/export", tag = "audit", params(Params),
    responses((status = 200, content_type = "application/x-ndjson", description = "JSON lines"), (status = 403, body = super::ErrorBody)))]
pub async fn export(
    State(app): State<Arc<App>>,
    Query(params): Query<Params>,
) -> Result<impl IntoResponse, ApiError> {
    let mut all = Vec::new();
    let mut q = query(&params, 1000)?;
    loop {
        let page = app.store.audit(q.clone()).await?;
        let done = page.len() < q.limit;
        q.before_id = page.last().map(|e| e.id);
        all.extend(page);
        if done {
            break;
        }
    }
    all.reverse();
    let mut body = String::new();
    for entry in all {
        body.push_str(&serde_json::to_string(&EntryView::from(entry)).unwrap_or_default());
        body.push('\n');
    }
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"sluice-audit.jsonl\"",
            ),
        ],
        body,
    ))
}
