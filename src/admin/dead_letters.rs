//! Dead letters of a destination: list and replay.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::extract::ts;
use super::{ApiJson, Caller};
use crate::app::App;
use crate::error::ApiError;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// At most this many (default 50, at most 500).
    limit: Option<usize>,
    /// `nextCursor` of the previous page.
    cursor: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = DeadLetterPage)]
pub struct Page {
    entries: Vec<Entry>,
    next_cursor: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = DeadLetter)]
struct Entry {
    id: i64,
    message_id: String,
    source_id: Option<String>,
    received_at: String,
    failed_at: String,
    attempts: u32,
    error: String,
    #[schema(value_type = Object)]
    event: Value,
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayBody {
    /// Replay only these dead letters (default: all of them).
    ids: Option<Vec<i64>>,
}

/// Dead letters of a destination, oldest first.
#[utoipa::path(get, path = "/api/v1/destinations/{id}/dead-letters", tag = "delivery", params(("id" = String, Path, description = "Destination id"), ListParams),
    responses((status = 200, body = Page), (status = 404, body = super::ErrorBody)))]
pub async fn list(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<Json<Page>, ApiError> {
    let dest = app.store.destination(&id).await?;
    let limit = params.limit.unwrap_or(50).clamp(1, 500);
    let rows = app
        .log
        .dead_letters(dest.key, params.cursor.unwrap_or(0), limit)
        .await?;
    let snapshot = app.snapshot();
    let sources = app.store.sources().await?;
    let next_cursor = (rows.len() == limit)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    let entries = rows
        .into_iter()
        .map(|r| Entry {
            id: r.id,
            message_id: r.message_id,
            source_id: sources
                .iter()
                .find(|s| s.key == r.source)
                .map(|s| s.id.clone()),
            received_at: ts(r.received_at),
            failed_at: ts(r.failed_at),
            attempts: r.attempts,
            error: r.error,
            event: serde_json::from_slice(&r.payload).unwrap_or(Value::Null),
        })
        .collect();
    drop(snapshot);
    Ok(Json(Page {
        entries,
        next_cursor,
    }))
}

/// Deliver dead letters again (all, or the given ids).
#[utoipa::path(post, path = "/api/v1/destinations/{id}/dead-letters/replay", tag = "delivery", params(("id" = String, Path, description = "Destination id")), request_body = ReplayBody,
    responses((status = 200, description = "`{\"replayed\": n}`"), (status = 404, body = super::ErrorBody)))]
pub async fn replay(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ReplayBody>,
) -> Result<Json<Value>, ApiError> {
    let dest = app.store.destination(&id).await?;
    if body.ids.as_ref().is_some_and(|ids| ids.len() > 10_000) {
        return Err(ApiError::bad_request(
            "invalid",
            "replay at most 10000 ids per request, or omit ids to replay all",
        ));
    }
    let replayed = app.log.replay_dead_letters(dest.key, body.ids).await?;
    app.store
        .record_audit(
            &caller.actor(),
            "dead_letters.replayed",
            "destination",
            &dest.id,
            serde_json::json!({"replayed": replayed}),
        )
        .await?;
    Ok(Json(serde_json::json!({ "replayed": replayed })))
}
