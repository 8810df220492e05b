//! Destination filters: `GET`/`PUT /api/v1/destinations/{id}/filters`, and
//! `POST /api/v1/destination-filters/test` to try rules on a sample event.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ApiJson, Caller};
use crate::app::App;
use crate::error::ApiError;
use crate::filters::{Program, Rule, Verdict};

#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// In order; the first `drop` (or failed `keep`) stops the event.
    pub(crate) rules: Vec<Rule>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    rules: Vec<Rule>,
    /// A sample event, as destinations would receive it.
    #[schema(value_type = Object)]
    event: Value,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TestResult {
    /// Whether the destination would receive the event.
    pub(crate) delivered: bool,
    /// Whether each rule's condition matches the event.
    pub(crate) matched: Vec<bool>,
    /// The event as delivered (after property rules), or null when dropped.
    #[schema(value_type = Option<Object>)]
    pub(crate) event: Option<Value>,
}

fn compile(rules: &[Rule]) -> Result<Program, ApiError> {
    Program::compile(rules).map_err(|e| ApiError::bad_request("invalid_filter", e.to_string()))
}

/// A destination's filter rules.
#[utoipa::path(get, path = "/api/v1/destinations/{id}/filters", tag = "destinations",
    params(("id" = String, Path, description = "Destination id")),
    responses((status = 200, body = Rules), (status = 404, body = super::ErrorBody)))]
pub async fn get(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Rules>, ApiError> {
    Ok(Json(Rules {
        rules: app.store.destination(&id).await?.filters,
    }))
}

/// Replace a destination's filter rules. Invalid rules are refused with the rule index and the
/// column of the error; the change applies to the next event accepted.
#[utoipa::path(put, path = "/api/v1/destinations/{id}/filters", tag = "destinations",
    params(("id" = String, Path, description = "Destination id")), request_body = Rules,
    responses((status = 200, body = Rules), (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn put(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Rules>,
) -> Result<Json<Rules>, ApiError> {
    compile(&body.rules)?;
    let _change = app.change_config().await;
    let (_, after) = app
        .store
        .set_destination_filters(&id, body.rules, &caller.actor())
        .await?;
    app.reload().await?;
    Ok(Json(Rules {
        rules: after.filters,
    }))
}

/// Evaluate rules against a sample event, without saving anything.
#[utoipa::path(post, path = "/api/v1/destination-filters/test", tag = "destinations", request_body = TestRequest,
    responses((status = 200, body = TestResult), (status = 400, body = super::ErrorBody)))]
pub async fn test(ApiJson(body): ApiJson<TestRequest>) -> Result<Json<TestResult>, ApiError> {
    Ok(Json(evaluate(&body.rules, body.event)?))
}

/// Shared with the CLI: what the rules do to one event.
pub fn evaluate(rules: &[Rule], mut event: Value) -> Result<TestResult, ApiError> {
    let program = compile(rules)?;
    let matched = program.trace(&event);
    let delivered = program.verdict(&event) != Verdict::Drop;
    if delivered {
        program.apply(&mut event);
    }
    Ok(TestResult {
        delivered,
        matched,
        event: delivered.then_some(event),
    })
}
