//! `GET /api/v1/delivery-overview`: Segment's delivery steps per source and destination.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};

use super::extract::ts;
use crate::app::App;
use crate::clock;
use crate::error::ApiError;
use crate::log::OverviewQuery;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct Params {
    source_id: Option<String>,
    destination_id: Option<String>,
    /// RFC 3339; default 24 hours ago.
    from: Option<String>,
    /// RFC 3339; default now.
    to: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OverviewView {
    pub(crate) from: String,
    pub(crate) to: String,
    /// Every event that reached the API, valid or not.
    pub(crate) received: i64,
    pub(crate) failed_on_ingest: BTreeMap<String, i64>,
    /// Dropped at the API (suppressed users).
    pub(crate) filtered_at_source: i64,
    /// Accepted with a 200 but not routed again (messageId seen within the dedup window).
    pub(crate) duplicates: i64,
    /// Stored and routed (including `generated`).
    pub(crate) accepted: i64,
    /// Consent-update events Sluice emitted itself because an event carried new preferences.
    pub(crate) generated: i64,
    pub(crate) destinations: Vec<DestinationSteps>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DestinationSteps {
    pub(crate) destination_id: String,
    pub(crate) name: String,
    /// Accepted events whose routing decision allowed this destination.
    pub(crate) routed: i64,
    /// By reason: FILTERED_BY_END_USER_CONSENT, FILTERED_BY_INTEGRATIONS_OBJECT, …
    pub(crate) filtered: BTreeMap<String, i64>,
    /// Routed, not yet attempted.
    pub(crate) pending: i64,
    /// In a batch that failed and will be retried.
    pub(crate) retrying: i64,
    /// Failed for good; in the dead-letter store.
    pub(crate) dead: i64,
    pub(crate) delivered: i64,
    /// Removed from the backlog by a deletion request.
    pub(crate) deleted: i64,
}

fn parse_time(field: &str, value: Option<&str>, default: i64) -> Result<i64, ApiError> {
    match value {
        None => Ok(default),
        Some(s) => clock::parse_ms(s).ok_or_else(|| {
            ApiError::bad_request(
                "invalid",
                format!("{field} must be an RFC 3339 time such as 2026-11-25T10:00:00Z"),
            )
        }),
    }
}

/// Delivery overview: Segment's steps per source and destination over a time range.
#[utoipa::path(get, path = "/api/v1/delivery-overview", tag = "delivery", params(Params),
    responses((status = 200, body = OverviewView), (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn get(
    State(app): State<Arc<App>>,
    Query(params): Query<Params>,
) -> Result<Json<OverviewView>, ApiError> {
    let now = clock::now_ms();
    let to = parse_time("to", params.to.as_deref(), now)?;
    let from = parse_time("from", params.from.as_deref(), to - 24 * 3_600_000)?;
    if from >= to {
        return Err(ApiError::bad_request("invalid", "from must be before to"));
    }
    let snapshot = app.snapshot();
    let source = match &params.source_id {
        Some(id) => Some(
            snapshot
                .source_by_id(id)
                .map(|s| s.source.key)
                .ok_or_else(|| ApiError::not_found(format!("no source with id {id}")))?,
        ),
        None => None,
    };
    let dest_filter = match &params.destination_id {
        Some(id) => Some(
            snapshot
                .destination_by_id(id)
                .map(|d| d.key)
                .ok_or_else(|| ApiError::not_found(format!("no destination with id {id}")))?,
        ),
        None => None,
    };
    let overview = app
        .log
        .overview(OverviewQuery {
            source,
            dest: dest_filter,
            from_ms: from,
            to_ms: to,
        })
        .await?;
    let destinations = snapshot
        .destinations
        .iter()
        .filter(|d| dest_filter.is_none_or(|k| k == d.key))
        .map(|d| {
            let counts = overview
                .destinations
                .get(&d.key)
                .cloned()
                .unwrap_or_default();
            // The failing batch, counted within the same source and time filter.
            let retrying = app
                .delivery
                .status
                .retrying(d.key)
                .map(|r| {
                    r.events
                        .iter()
                        .filter(|(s, at)| source.is_none_or(|k| k == *s) && *at >= from && *at < to)
                        .count() as i64
                })
                .unwrap_or(0);
            let in_flight = counts.in_flight();
            DestinationSteps {
                destination_id: d.id.clone(),
                name: d.name.clone(),
                routed: counts.routed,
                filtered: counts.filtered.clone(),
                pending: (in_flight - retrying).max(0),
                retrying: retrying.min(in_flight),
                dead: counts.dead,
                delivered: counts.delivered,
                deleted: counts.deleted,
            }
        })
        .collect();
    Ok(Json(OverviewView {
        from: ts(from),
        to: ts(to),
        received: overview.received,
        failed_on_ingest: overview.failed_on_ingest,
        filtered_at_source: overview.filtered_at_source,
        duplicates: overview.duplicates,
        accepted: overview.accepted,
        generated: overview.generated,
        destinations,
    }))
}
