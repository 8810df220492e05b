//! Delivery overview page: Segment's delivery steps (SPEC §8) per destination over a chosen time
//! range, as a funnel chart (inline SVG, drawn on the server) and a table with the same numbers.
//!
//! The numbers come from the handler behind `GET /api/v1/delivery-overview`, called with the
//! same query the API would get, so the page and the API always agree. Every number carries
//! `data-step` (the API's field name), and `data-destination` / `data-reason` / `data-code`
//! where they apply, so a browser test can compare them with the API.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::auth::ConsoleUser;
use super::body;
use super::page::{Shell, render};
use crate::admin::overview as api;
use crate::app::App;
use crate::clock;
use crate::error::ApiError;
use crate::store::Source;

pub fn routes() -> Router<Arc<App>> {
    Router::new().route("/overview", get(page))
}

/// The time ranges offered as presets: `(key, label, length in ms)`.
const PRESETS: &[(&str, &str, i64)] = &[
    ("1h", "Last hour", 3_600_000),
    ("24h", "Last 24 hours", 24 * 3_600_000),
    ("7d", "Last 7 days", 7 * 24 * 3_600_000),
];

#[derive(Deserialize, Default)]
pub struct OverviewForm {
    range: Option<String>,
    from: Option<String>,
    to: Option<String>,
    source: Option<String>,
}

/// One step of the funnel, as a bar and a table row.
pub struct Step {
    /// The API's field name: `received`, `failedOnIngest`, `filtered`, `delivered` …
    pub key: &'static str,
    pub label: String,
    /// `data-reason` / `data-code` for steps split by reason or code.
    pub reason: Option<String>,
    pub code: Option<String>,
    pub value: i64,
    pub shown: String,
    /// Bar colour class (`bar`, `bar filtered`, `bar failed`, `bar ok`, `bar generated`); the
    /// label says the same, colour is never the only signal.
    pub class: &'static str,
    /// Part of a step above it (a reason, a code): indented in the table.
    pub sub: bool,
    /// Geometry of the bar in the SVG.
    pub y: u32,
    pub width: u32,
}

impl Step {
    fn new(key: &'static str, label: impl Into<String>, value: i64, class: &'static str) -> Step {
        Step {
            key,
            label: label.into(),
            reason: None,
            code: None,
            value,
            shown: thousands(value),
            class,
            sub: false,
            y: 0,
            width: 0,
        }
    }

    pub fn text_y(&self) -> u32 {
        self.y + BAR_HEIGHT - 7
    }

    /// Where the number is written: just right of the bar.
    pub fn number_x(&self) -> u32 {
        LABEL_WIDTH + self.width + 8
    }
}

/// Chart geometry (in SVG user units; the chart scales with the page).
const LABEL_WIDTH: u32 = 330;
const BAR_MAX: u32 = 330;
const BAR_HEIGHT: u32 = 24;
const ROW: u32 = 30;
pub const CHART_WIDTH: u32 = LABEL_WIDTH + BAR_MAX + 90;

pub struct Chart {
    pub destination_id: String,
    pub name: String,
    pub steps: Vec<Step>,
    pub height: u32,
    /// A one-sentence summary for `aria-label`.
    pub summary: String,
}

impl Chart {
    pub fn bar_x(&self) -> u32 {
        LABEL_WIDTH
    }

    pub fn width(&self) -> u32 {
        CHART_WIDTH
    }
}

#[derive(askama::Template)]
#[template(path = "console/overview.html")]
struct Page {
    shell: Shell,
    range: String,
    presets: &'static [(&'static str, &'static str, i64)],
    from_input: String,
    to_input: String,
    source: String,
    sources: Vec<Source>,
    errors: FormErrors,
    /// `None` when the form has errors.
    view: Option<View>,
}

#[derive(Default)]
struct FormErrors {
    from: Option<String>,
    to: Option<String>,
    source: Option<String>,
}

struct View {
    from: String,
    to: String,
    source_name: Option<String>,
    /// Workspace-wide steps, before destinations.
    summary: Vec<Step>,
    generated: i64,
    generated_shown: String,
    charts: Vec<Chart>,
}

/// A readable label for a filter reason; unknown reasons show their code.
pub fn reason_label(reason: &str) -> String {
    match reason {
        "FILTERED_BY_END_USER_CONSENT" => "Filtered: the end user did not consent".into(),
        "FILTERED_BY_INTEGRATIONS_OBJECT" => {
            "Filtered: turned off in the event's integrations object".into()
        }
        "FILTERED_BY_RULES" => "Filtered: dropped by a destination filter".into(),
        "FILTERED_UNCHANGED_CONSENT" => "Filtered: consent update that changed nothing".into(),
        "DESTINATION_DISABLED" => "Not sent: destination turned off".into(),
        other => format!("Filtered: {other}"),
    }
}

/// A readable label for an ingest failure code (Segment's validation codes).
pub fn code_label(code: &str) -> String {
    let text = match code {
        "no_user_anon_id" => "no userId or anonymousId",
        "id_not_string" => "an id is not text",
        "event_not_defined" => "track without an event name",
        "event_not_string" => "event name is not text",
        "name_not_string" => "name is not text",
        "properties_not_object" => "properties is not an object",
        "traits_not_object" => "traits is not an object",
        "context_not_object" => "context is not an object",
        "integrations_not_object" => "integrations is not an object",
        "invalid_type" => "unknown event type",
        "id_required" => "a required id is missing",
        "message_id_too_long" => "messageId longer than 100 characters",
        "event_too_large" => "event larger than 32 KB",
        "payload_too_large" => "request too large",
        "too_many_events" => "more than 2,500 events in a batch",
        "invalid_json" => "not valid JSON",
        "invalid_gzip" => "broken gzip body",
        "empty_batch" => "empty batch",
        "invalid_batch" => "batch is not a list",
        c if c.starts_with("consent_categorypreferences") => {
            "consent update without valid preferences"
        }
        _ => return format!("Failed on ingest: {code}"),
    };
    format!("Failed on ingest: {text}")
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A `datetime-local` value (`2026-11-25T10:00`, read as UTC) or any RFC 3339 time.
pub(super) fn parse_input(value: &str) -> Option<i64> {
    let value = value.trim();
    if value.len() == 16 {
        clock::parse_ms(&format!("{value}:00"))
    } else {
        clock::parse_ms(value)
    }
}

/// Unix ms as a `datetime-local` value in UTC.
fn input_value(ms: i64) -> String {
    clock::format_ms(ms)[..16].to_owned()
}

fn lay_out(mut steps: Vec<Step>) -> (Vec<Step>, u32) {
    let max = steps.iter().map(|s| s.value).max().unwrap_or(0).max(1);
    for (i, step) in steps.iter_mut().enumerate() {
        step.y = i as u32 * ROW + 4;
        let w = (step.value.max(0) as f64 / max as f64 * f64::from(BAR_MAX)).round() as u32;
        // A step with events always shows a sliver, so it is not mistaken for zero.
        step.width = if step.value > 0 { w.max(2) } else { 0 };
    }
    let height = steps.len() as u32 * ROW + 8;
    (steps, height)
}

fn summary_steps(o: &api::OverviewView) -> Vec<Step> {
    let mut steps = vec![
        Step::new(
            "received",
            "Successfully received from your sources",
            o.received,
            "bar",
        ),
        Step::new(
            "generated",
            "Created by Sluice: consent-update events",
            o.generated,
            "bar generated",
        ),
        Step::new(
            "failedOnIngest",
            "Failed on ingest (invalid events)",
            o.failed_on_ingest.values().sum(),
            "bar failed",
        ),
    ];
    for (code, n) in &o.failed_on_ingest {
        let mut step = Step::new("failedOnIngest", code_label(code), *n, "bar failed");
        step.code = Some(code.clone());
        step.sub = true;
        steps.push(step);
    }
    steps.push(Step::new(
        "filteredAtSource",
        "Filtered at source: suppressed users",
        o.filtered_at_source,
        "bar filtered",
    ));
    steps.push(Step::new(
        "duplicates",
        "Duplicates: already received, not sent again",
        o.duplicates,
        "bar filtered",
    ));
    steps.push(Step::new(
        "accepted",
        "Accepted and stored for delivery",
        o.accepted,
        "bar",
    ));
    steps
}

fn destination_steps(d: &api::DestinationSteps) -> Vec<Step> {
    let mut steps = vec![Step::new(
        "filtered",
        "Filtered at destination",
        d.filtered.values().sum(),
        "bar filtered",
    )];
    for (reason, n) in &d.filtered {
        let mut step = Step::new("filtered", reason_label(reason), *n, "bar filtered");
        step.reason = Some(reason.clone());
        step.sub = true;
        steps.push(step);
    }
    steps.extend([
        Step::new("routed", "Allowed for this destination", d.routed, "bar"),
        Step::new("pending", "Waiting to be sent", d.pending, "bar"),
        Step::new(
            "retrying",
            "Failed delivery: retrying",
            d.retrying,
            "bar failed",
        ),
        Step::new(
            "dead",
            "Failed delivery: gave up (dead letters)",
            d.dead,
            "bar failed",
        ),
        Step::new(
            "deleted",
            "Removed by a deletion request",
            d.deleted,
            "bar filtered",
        ),
        Step::new("delivered", "Successfully delivered", d.delivered, "bar ok"),
    ]);
    steps
}

fn chart(o: &api::OverviewView, d: &api::DestinationSteps) -> Chart {
    // Each destination's funnel starts with the workspace-wide steps, as Segment's does.
    let mut steps: Vec<Step> = summary_steps(o).into_iter().filter(|s| !s.sub).collect();
    steps.extend(destination_steps(d));
    let summary = format!(
        "Delivery funnel for {}: {} received, {} accepted, {} filtered at destination, {} failed, {} delivered.",
        d.name,
        thousands(o.received),
        thousands(o.accepted),
        thousands(d.filtered.values().sum()),
        thousands(d.retrying + d.dead),
        thousands(d.delivered)
    );
    let (steps, height) = lay_out(steps);
    Chart {
        destination_id: d.destination_id.clone(),
        name: d.name.clone(),
        steps,
        height,
        summary,
    }
}

async fn page(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Query(form): Query<OverviewForm>,
) -> Response {
    let sources = app.store.sources().await.unwrap_or_default();
    let now = clock::now_ms();
    let has_custom = form.from.as_deref().is_some_and(|s| !s.trim().is_empty());
    let range = match form.range.as_deref() {
        Some(r) if r == "custom" || PRESETS.iter().any(|(k, _, _)| *k == r) => r.to_owned(),
        _ if has_custom => "custom".to_owned(),
        _ => "24h".to_owned(),
    };
    let source = form.source.clone().unwrap_or_default().trim().to_owned();
    let mut errors = FormErrors::default();

    let (from, to) = if let Some((_, _, len)) = PRESETS.iter().find(|(k, _, _)| *k == range) {
        (Some(now - len), Some(now))
    } else {
        let to = match form.to.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => Some(now),
            Some(s) => parse_input(s).or_else(|| {
                errors.to =
                    Some("Enter an end date and time, for example 2026-11-25T18:00.".into());
                None
            }),
        };
        let from = match form
            .from
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => {
                errors.from = Some("Enter a start date and time for a custom range.".into());
                None
            }
            Some(s) => parse_input(s).or_else(|| {
                errors.from =
                    Some("Enter a start date and time, for example 2026-11-25T10:00.".into());
                None
            }),
        };
        if let (Some(f), Some(t)) = (from, to)
            && f >= t
        {
            errors.to = Some("The end must be after the start.".into());
        }
        (from, to)
    };
    if !source.is_empty() && !sources.iter().any(|s| s.id == source) {
        errors.source = Some("This source does not exist any more; choose another.".into());
    }

    let mut view = None;
    if errors.from.is_none()
        && errors.to.is_none()
        && errors.source.is_none()
        && let (Some(from), Some(to)) = (from, to)
    {
        let mut query = json!({"from": clock::format_ms(from), "to": clock::format_ms(to)});
        if !source.is_empty() {
            query["sourceId"] = json!(source);
        }
        let result = match body::<api::Params>(query) {
            Ok(params) => api::get(State(Arc::clone(&app)), Query(params)).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(Json(o)) => {
                let charts = o.destinations.iter().map(|d| chart(&o, d)).collect();
                view = Some(View {
                    from: o.from.clone(),
                    to: o.to.clone(),
                    source_name: sources
                        .iter()
                        .find(|s| s.id == source)
                        .map(|s| s.name.clone()),
                    summary: summary_steps(&o),
                    generated: o.generated,
                    generated_shown: thousands(o.generated),
                    charts,
                });
            }
            Err(ApiError { message, .. }) => errors.to = Some(message),
        }
    }

    let bad = view.is_none();
    let mut response = render(&Page {
        shell: Shell::new(&user, "overview", "Delivery overview"),
        range,
        presets: PRESETS,
        from_input: from.map(input_value).or(form.from).unwrap_or_default(),
        to_input: to.map(input_value).or(form.to).unwrap_or_default(),
        source,
        sources,
        errors,
        view,
    });
    if bad {
        *response.status_mut() = StatusCode::BAD_REQUEST;
    }
    response.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        for (n, s) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (1234567, "1,234,567"),
            (-1200, "-1,200"),
        ] {
            assert_eq!(thousands(n), s);
        }
    }

    #[test]
    fn inputs_read_as_utc() {
        assert_eq!(
            parse_input("2026-11-25T10:00"),
            clock::parse_ms("2026-11-25T10:00:00Z")
        );
        assert_eq!(
            parse_input("2026-11-25T10:00:00.000Z"),
            clock::parse_ms("2026-11-25T10:00:00Z")
        );
        assert_eq!(parse_input("yesterday"), None);
        assert_eq!(
            input_value(clock::parse_ms("2026-11-25T10:07:08Z").unwrap()),
            "2026-11-25T10:07"
        );
    }
}
